"""Ties as evidence under NUTS: each user's conditional posterior at a draw, and the CLI.

NUTS summarises users from each draw of the global parameters by the user's
conditional posterior of ``eta`` (:mod:`attnmodel.posterior.conditional`). With
ties modelled that posterior carries the tie factor and the direction part at
the transformed nodes. The reference here writes it again from the vote
mechanism (per-vote probabilities of a win, a loss and a tie) and integrates
``tau`` and ``eta`` numerically, independently of :mod:`attnmodel.model.ties`.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import special

from attnmodel.data.votes import VoteData
from attnmodel.inference.em import EMProblem, EMState
from attnmodel.model.families import get_family
from attnmodel.model.priors import resolve_mu
from attnmodel.model.simulate import simulate_tie_counts
from attnmodel.model.ties import TieParams
from attnmodel.posterior.conditional import conditional_summaries
from tests.reference_posterior import row_logsumexp

MU = np.array([0.8, 0.65])


def _reference_posterior(n, s, t, mu, alpha, beta, kappa, tau_mean, tau_conc, cut=0.7):
    """Each user's posterior of ``u = logit(eta)`` on a fine grid: ``(u, weights (m, K))``.

    Trapezoid rules in ``u`` and in ``v = logit(tau)``: the integrands are
    smooth and fall off exponentially in both, where the trapezoid rule
    converges geometrically; 3001 x 801 nodes put its error far below 1e-9.
    One node of ``u`` lies on ``logit(cut)``, so that a tail is the trapezoid
    rule on its own half-line (half the weight of the cut's node).
    """
    u = special.logit(cut) + 0.02 * np.arange(-1500, 1501)
    v = np.linspace(-30.0, 30.0, 801)
    eta, tau = special.expit(u), special.expit(v)
    a, b = tau_mean * tau_conc, (1.0 - tau_mean) * tau_conc
    # Beta(a, b) in logit coordinates: tau^a (1 - tau)^b / B(a, b).
    log_pt = a * special.log_expit(v) + b * special.log_expit(-v) - special.betaln(a, b)
    log_pe = alpha * special.log_expit(u) + beta * special.log_expit(-u)
    log_pe -= special.betaln(alpha, beta)
    e, tt = eta[:, None], tau[None, :]
    careless = (1.0 - e) * (1.0 - kappa) / 2.0
    log_tie = np.log(tt + (1.0 - tt) * (1.0 - e) * kappa)
    # Per pair, the log-probabilities of a win and of a loss on the grid (the same for every user).
    log_win = [np.log((1.0 - tt) * (e * mu_k + careless)) for mu_k in mu]
    log_loss = [np.log((1.0 - tt) * (e * (1.0 - mu_k) + careless)) for mu_k in mu]
    out = np.empty((n.shape[0], u.size))
    for j in range(n.shape[0]):
        ll = t[j].sum() * log_tie
        for k in range(len(mu)):
            ll = ll + s[j, k] * log_win[k] + (n[j, k] - s[j, k]) * log_loss[k]
        inner = row_logsumexp(ll + log_pt[None, :]) + np.log(v[1] - v[0])
        out[j] = inner + log_pe
    out -= special.logsumexp(out, axis=1, keepdims=True)
    return u, np.exp(out)


@pytest.fixture(scope="module")
def tie_log():
    rng = np.random.default_rng(3)
    eta = rng.beta(2.0, 1.2, 40)
    n, s, t = simulate_tie_counts(eta, (2.0, 4.0), 0.5, (5, 40), list(MU), seed=4)
    return n, s, t


def test_conditional_posterior_with_ties_equals_the_reference(tie_log):
    """Tails, means and posterior odds at a fixed draw equal the independent quadrature.

    The draw is not EM's estimate (any global parameters must do). The
    conditional posterior is computed on the package's logit grid, spaced for
    a relative error below 1e-7 per user in the marginal
    (:func:`attnmodel.model.grid.default_spacing`); tail masses and means
    inherit an error of that order, so 1e-6 absolute leaves a margin of ten.
    """
    n, s, t = tie_log
    data = VoteData.from_counts(n, s, t=t)
    counts = data.counts
    problem = EMProblem(
        counts, get_family("beta"), resolve_mu(data.pairs, dict(zip(data.pairs, MU, strict=True)))
    )
    ties = TieParams(kappa=0.45, tau_mean=0.3, tau_conc=5.0)
    state = EMState({"alpha": 2.5, "beta": 1.3}, MU.copy(), None, ties)
    out = conditional_summaries(
        problem,
        [[state]],
        eta_star=0.7,
        store_eta=True,
        log_likelihood=False,
        rng=np.random.default_rng(0),
    )
    u, w = _reference_posterior(n, s, t, MU, 2.5, 1.3, 0.45, 0.3, 5.0)
    eta = special.expit(u)
    at = np.argmin(np.abs(u - special.logit(0.7)))
    rows = counts.user_row
    # Trapezoid rule on [cut, inf) with its Euler-Maclaurin end correction
    # h^2 / 12 * f'(cut) (central difference), leaving an O(h^4) error.
    ref_tail = w[:, at + 1 :].sum(axis=1) + 0.5 * w[:, at] + (w[:, at + 1] - w[:, at - 1]) / 24.0
    np.testing.assert_allclose(out["tail"][0, 0, rows], ref_tail, atol=1e-6)
    np.testing.assert_allclose(out["mean"][0, 0, rows], w @ eta, atol=1e-6)
    np.testing.assert_allclose(out["second"][0, 0, rows], w @ eta**2, atol=1e-6)
    # Users' draws are finite and inside (0, 1).
    draws = out["eta_user"][0, 0]
    assert np.all((draws > 0) & (draws < 1))
    # Without the tie term these users would not match: the test can fail.
    no_tie_ref = _reference_posterior(n, s, 0 * t, MU, 2.5, 1.3, 0.45, 0.3, 5.0)[1] @ eta
    assert np.abs(no_tie_ref - w @ eta).max() > 1e-3


def test_conditional_posterior_with_ties_equals_em_posterior(tie_log):
    """At EM's own state the NUTS summaries equal EM's per-user posterior (same grid)."""
    from attnmodel.inference.em import fit_em
    from attnmodel.posterior.users import row_summaries

    n, s, t = tie_log
    data = VoteData.from_counts(n, s, t=t)
    res = fit_em(data, "beta", mu={"pair 0": MU[0], "pair 1": MU[1]}, n_init=1, seed=0)
    out = conditional_summaries(
        res.problem,
        [[res.state_]],
        eta_star=0.5,
        store_eta=False,
        log_likelihood=False,
        rng=np.random.default_rng(0),
    )
    em = row_summaries(res, eta_star=0.5)
    # Both from the same node masses, the tails by two rules (the tail rule with
    # the exact density near the cut, against EM's spline CDF); each is within
    # the grid's error, spaced for 1e-7 relative per user, of the exact tail, and
    # their difference within ten times that.
    np.testing.assert_allclose(out["tail"][0, 0], em["p_above"], atol=1e-6)
    np.testing.assert_allclose(out["mean"][0, 0], em["eta_mean"], atol=1e-12)
    from attnmodel.posterior.conditional import log_bayes_factor

    lbf = log_bayes_factor(
        out["log_above"][0, 0],
        out["log_below"][0, 0],
        out["prior_log_above"][0, 0],
        out["prior_log_below"][0, 0],
    )
    np.testing.assert_allclose(lbf, em["log_bf"], atol=1e-8)


def test_cli_fits_modelled_ties_by_nuts_and_filters(tie_log, tmp_path):
    """``attnmodel fit LOG --ties model --method nuts`` end to end, then filter and summary."""
    n, s, t = tie_log
    names = (("gpt", "llama"), ("claude", "alpaca"))
    rows = []
    for j in range(n.shape[0]):
        for k, (a, b) in enumerate(names):
            rows += [(f"u{j}", a, b, "model_a")] * int(s[j, k])
            rows += [(f"u{j}", a, b, "model_b")] * int(n[j, k] - s[j, k])
            rows += [(f"u{j}", a, b, "tie")] * int(t[j, k])
    pd.DataFrame(rows, columns=["user", "model_a", "model_b", "winner"]).to_csv(
        tmp_path / "votes.csv", index=False
    )

    def cli(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "attnmodel", *map(str, args)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        return proc

    cli("-q", "fit", "votes.csv", "--family", "beta", "--ties", "model", "--method", "nuts",
        "--mu", "0.8", "--draws", 60, "--tune", 60, "--chains", 2, "--out", "r.nc")  # fmt: skip
    from attnmodel.results.io import load

    tree = load(tmp_path / "r.nc")
    post = tree["posterior"].to_dataset()
    for name in ("kappa", "tau_mean", "tau_conc"):
        assert np.all(np.isfinite(post[name].to_numpy()))
    att = tree["attentiveness"].to_dataset()
    p = att["p_above"].to_numpy()
    assert p.shape == (n.shape[0],) and np.all((p >= 0) & (p <= 1))
    assert np.all(np.isfinite(att["eta_mean"].to_numpy()))
    assert np.all(np.isfinite(att["log_bf"].to_numpy()))
    proc = cli("filter", "r.nc", "votes.csv", "--ignore-diagnostics", "--ties", "model",
               "--out", "kept.csv")  # fmt: skip
    assert (tmp_path / "kept.csv").is_file(), proc.stdout
