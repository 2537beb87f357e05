"""NUTS's per-draw tail ``P(eta >= eta_star | votes, globals)`` against adaptive quadrature.

At fixed global parameters a user's conditional posterior is one-dimensional;
``scipy.integrate.quad`` integrates it in ``u = logit(eta)`` (Beta prior
density times the binomial likelihood, written here from the formulas, after
subtracting the log integrand's maximum) to about 1e-12. The package's value is
the compiled per-row pass NUTS post-processing runs at every draw
(``grid_row_summaries``) and its numpy twin (``GridCells``).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, special

from attnmodel.data.votes import VoteData
from attnmodel.inference.em import EMProblem, EMState
from attnmodel.model.families import get_family
from attnmodel.model.priors import resolve_mu
from attnmodel.posterior.conditional import GridCells, grid_row_summaries, row_log_density

ALPHA, BETA = 3.0, 5.0


def _log_integrand(u, n, s, mu, a=ALPHA, b=BETA):
    """log [Beta(a, b) density of eta = expit(u) times d eta / d u times binomial likelihood]."""
    le, l1e = special.log_expit(u), special.log_expit(-u)
    eta, one_m = np.exp(le), np.exp(l1e)
    log_g = np.log(0.5 * one_m + eta * mu)
    log_1mg = np.log(0.5 * one_m + eta * (1.0 - mu))
    return a * le + b * l1e + s * log_g + (n - s) * log_1mg


def quad_tail(n, s, mu, eta_star):
    """``P(eta >= eta_star | s of n votes)`` by adaptive quadrature in logit space."""
    mode = optimize.minimize_scalar(
        lambda u: -_log_integrand(u, n, s, mu),
        bounds=(-40.0, 40.0),
        method="bounded",
        options={"xatol": 1e-10},
    ).x
    peak = _log_integrand(mode, n, s, mu)
    # Width of the peak from the curvature; pieces a few widths apart keep quad on it.
    d = 1e-4
    curv = (
        -(_log_integrand(mode + d, n, s, mu) - 2 * peak + _log_integrand(mode - d, n, s, mu)) / d**2
    )
    sd = 1.0 / np.sqrt(max(curv, 1e-8))
    edges = np.concatenate([[-np.inf], mode + sd * np.arange(-12.0, 12.5, 1.0), [np.inf]])
    u_star = special.logit(eta_star)
    edges = np.sort(np.append(edges, u_star))

    def piece(lo, hi):
        val, _ = integrate.quad(
            lambda u: np.exp(_log_integrand(u, n, s, mu) - peak),
            lo,
            hi,
            epsabs=0.0,
            epsrel=1e-13,
            limit=200,
        )
        return val

    parts = np.array([piece(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
    above = parts[edges[:-1] >= u_star].sum()
    return above / parts.sum()


# Users (n, s) on one pair; the grid is built from the largest count (2000 votes).
USERS = [
    (100, 62),
    (100, 80),
    (500, 340),
    (500, 420),
    (2000, 1290),
    (2000, 1500),
    (2000, 1950),
    (1, 1),
    (10, 6),
    (30, 25),
]


def _package_tails(mu, eta_star):
    n = np.array([[k] for k, _ in USERS])
    s = np.array([[j] for _, j in USERS])
    counts = VoteData.from_counts(n, s).counts
    problem = EMProblem(counts, get_family("beta"), resolve_mu(["p"], None))
    state = EMState({"alpha": ALPHA, "beta": BETA}, np.array([mu]))
    out = grid_row_summaries(problem, state, eta_star, np.random.default_rng(0))
    estep = problem.e_step(state, posterior=True)
    cells = GridCells(problem.grid, estep.posterior)
    twin = cells.tail(eta_star, row_log_density(problem, state, estep.row_log_marginal))
    idx = counts.user_row
    return out["tail"][idx], twin[idx]


@pytest.mark.parametrize("mu", [0.8, 0.99])
@pytest.mark.parametrize("eta_star", [0.3, 0.5, 0.62, 0.9])
def test_tail_matches_quadrature(mu, eta_star):
    compiled, numpy_twin = _package_tails(mu, eta_star)
    ref = np.array([quad_tail(n, s, mu, eta_star) for n, s in USERS])
    err = np.abs(compiled - ref)
    print(f"mu={mu} eta_star={eta_star} max |tail - quad| = {err.max():.3e}")
    assert err.max() < 1e-6, list(zip(USERS, err, strict=True))
    np.testing.assert_allclose(numpy_twin, compiled, rtol=0, atol=1e-13)


@pytest.mark.parametrize("eta_star", [0.3, 0.4, 0.5, 0.98, 0.99])
def test_two_point_tail_is_exact(eta_star):
    """Two-point family: the tail is the membership of the atoms at or above the cut.

    Bayes' rule by hand over the two atoms (log space, max shift) against the
    per-draw tails of NUTS post-processing, two draws of the globals; no
    quadrature, so equal to rounding (1e-12). A cut at an atom includes it.
    """
    from attnmodel.posterior.conditional import conditional_summaries

    users = USERS + [(5, 0), (2000, 1000)]
    n = np.array([[k] for k, _ in users])
    s = np.array([[j] for _, j in users])
    counts = VoteData.from_counts(n, s).counts
    family = get_family("two_point")
    problem = EMProblem(counts, family, resolve_mu(["p"], None))
    draws = [
        ({"q_low": 0.6, "eta_low": 0.4, "eta_high": 0.98}, 0.8),
        ({"q_low": 0.3, "eta_low": 0.05, "eta_high": 0.5}, 0.99),
    ]
    states = [[EMState(p, np.array([mu])) for p, mu in draws]]
    out = conditional_summaries(
        problem,
        states,
        eta_star=eta_star,
        store_eta=False,
        log_likelihood=False,
        rng=np.random.default_rng(0),
    )
    for d, (p, mu) in enumerate(draws):
        w = np.array([p["q_low"], 1.0 - p["q_low"]])
        loc = np.array([p["eta_low"], p["eta_high"]])
        g = 0.5 + loc * (mu - 0.5)
        n_votes, wins = np.array(users, dtype=float).T
        log_post = np.log(w) + wins[:, None] * np.log(g) + (n_votes - wins)[:, None] * np.log1p(-g)
        log_post -= log_post.max(axis=1, keepdims=True)
        member = np.exp(log_post) / np.exp(log_post).sum(axis=1, keepdims=True)
        expected = member[:, loc >= eta_star].sum(axis=1)
        got = out["tail"][0, d][counts.user_row]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_tail_rule_kept_between_calls_is_the_rule_of_its_grid_and_cut():
    """The kept rules (``tail_rule`` is asked for the same one at every draw) are not stale.

    A second call returns the same numbers as a first; a caller changing the
    arrays it got does not change what the next call returns; another cut or a
    grid with other nodes gets its own rule, as computed on a fresh cache.
    """
    from attnmodel.model import grid as grid_mod

    grid = grid_mod.make_logit_grid(400)
    other = grid_mod.make_logit_grid(2000)
    first = grid_mod.tail_rule(grid, 0.6)
    kept = [a.copy() for a in (first.step, first.u, first.weight)]
    first.step[:] = -1.0
    again = grid_mod.tail_rule(grid, 0.6)
    for a, b in zip((again.step, again.u, again.weight), kept, strict=True):
        assert np.array_equal(a, b)
    cases = [(grid, 0.7), (other, 0.6)]
    got = [grid_mod.tail_rule(g, cut) for g, cut in cases]
    grid_mod._tail_rule.cache_clear()
    for (g, cut), rule in zip(cases, got, strict=True):
        fresh = grid_mod.tail_rule(g, cut)
        assert not np.array_equal(rule.step, again.step)
        for name in ("step", "u", "weight"):
            assert np.array_equal(getattr(rule, name), getattr(fresh, name)), name
