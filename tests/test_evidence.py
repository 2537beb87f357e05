"""Decisions that rest on evidence: ``log_bf`` and the ``min_evidence`` screen of the ``prob`` rule.

``log_bf`` is the log Bayes factor of ``eta >= eta_star`` against ``eta < eta_star``
from a user's own votes. The references below integrate it directly with scipy
(continuous families) or sum it over the atoms (discrete families), without the
package's likelihood or grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from attnmodel import cli, filter_users, fit, fit_em
from attnmodel.data.votes import VoteData
from attnmodel.errors import ArgumentError
from attnmodel.filtering import evidence_decisions
from attnmodel.inference.em import EMState
from attnmodel.posterior.conditional import conditional_summaries
from attnmodel.posterior.draws import attentiveness_from_draws
from attnmodel.results.io import load, save

MU = 0.8
PAIR = ("gpt", "llama")


def _frame() -> pd.DataFrame:
    """30 careful users (40 votes, 32 to 35 for the stronger model) and four with 1 or 2 votes.

    The careful users agree with ``gpt`` at least as often as ``mu = 0.8`` allows
    an attentive user to, so the fitted ``P_eta`` has nearly all its mass above 0.5.
    """
    rows = []
    counts = {f"c{k:02d}": (40, 32 + k % 4) for k in range(30)}
    counts.update({"one_against": (1, 0), "one_for": (1, 1), "two_for": (2, 2), "split": (2, 1)})
    for user, (n, s) in counts.items():
        for i in range(n):
            winner = "model_a" if i < s else "model_b"
            rows.append({"user": user, "model_a": PAIR[0], "model_b": PAIR[1], "winner": winner})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame()


@pytest.fixture(scope="module")
def data(frame) -> VoteData:
    return VoteData.from_frame(frame)


@pytest.fixture(scope="module")
def em(data):
    return fit_em(data, "beta", mu=MU, n_init=1, warn=False)


def _beta_log_bf(n, s, alpha, beta, cut, mu=MU):
    """log BF of eta >= cut from s of n votes, Beta(alpha, beta) population, by quadrature."""

    def side(lo, hi):
        def f(e):
            g = 0.5 + e * (mu - 0.5)
            return np.exp(s * np.log(g) + (n - s) * np.log1p(-g)) * stats.beta.pdf(e, alpha, beta)

        val = integrate.quad(f, lo, hi, epsabs=0.0, epsrel=1e-11, limit=400, points=[cut])[0]
        return np.log(val)

    prior = np.log(stats.beta.sf(cut, alpha, beta)) - np.log(stats.beta.cdf(cut, alpha, beta))
    return side(cut, 1.0) - side(0.0, cut) - prior


# ---------------------------------------------------------------------------
# The measure
# ---------------------------------------------------------------------------


SMALL_N = np.array([1, 2, 30, 30, 12, 5, 1])
SMALL_S = np.array([0, 2, 27, 15, 10, 1, 1])


@pytest.fixture(scope="module")
def small():
    """Seven users whose posteriors straddle the cuts (P_eta fitted U-shaped)."""
    data = VoteData.from_counts(SMALL_N[:, None], SMALL_S[:, None], users=list("abcdefg"))
    return fit_em(data, "beta", mu=MU, n_init=1, warn=False)


@pytest.mark.parametrize("eta_star", [0.5, 0.7])
def test_log_bf_equals_direct_integration_beta(small, eta_star):
    n, s, res = SMALL_N, SMALL_S, small
    a, b = res.params_["alpha"], res.params_["beta"]
    post = res.posterior(eta_star=eta_star)
    ref = np.array([_beta_log_bf(nn, ss, a, b, eta_star) for nn, ss in zip(n, s, strict=True)])
    # The tail rule agrees with adaptive quadrature to ~1e-11 in probability
    # (tests/test_tail.py); every side here holds more than 1e-5, so < 1e-5 in log odds.
    np.testing.assert_allclose(post["log_bf"].to_numpy(), ref, rtol=0, atol=1e-5)
    # A vote for the stronger model is evidence for eta >= eta_star, one against it against.
    bf = dict(zip(post["user"].to_numpy(), post["log_bf"].to_numpy(), strict=True))
    assert bf["g"] > 0 > bf["a"]
    assert bf["b"] > bf["g"]


def test_log_bf_two_point_is_the_likelihood_ratio_of_the_atoms():
    n = np.array([[1], [3], [10], [10]])
    s = np.array([[0], [3], [9], [5]])
    data = VoteData.from_counts(n, s, users=["a", "b", "c", "d"])
    res = fit_em(data, "two_point", mu=MU, n_init=1, warn=False)
    w, loc = res.family.components(res.params_)
    assert loc[0] < 0.5 <= loc[1]
    g = 0.5 + loc * (MU - 0.5)
    ll = s * np.log(g) + (n - s) * np.log1p(-g)  # (user, atom)
    # One atom on each side: the Bayes factor is the likelihood ratio, whatever the weights.
    np.testing.assert_allclose(
        res.posterior()["log_bf"].to_numpy(), ll[:, 1] - ll[:, 0], rtol=0, atol=1e-9
    )


def test_log_bf_over_draws_is_the_marginal_odds_ratio(em, data):
    """The NUTS path: per-draw conditionals (compiled grid kernel) averaged in log space."""
    problem = em.problem
    draws = [(0.9, 0.2), (1.4, 0.35), (2.0, 0.3)]
    fam, mu = em.family, em.state_.mu
    states = [[EMState(fam.validate({"alpha": a, "beta": b}), mu) for a, b in draws]]
    cut = 0.6
    summ = conditional_summaries(
        problem, states, eta_star=cut, store_eta=False, log_likelihood=False,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    att = attentiveness_from_draws(
        summ, user_row=data.counts.user_row, users=np.asarray(data.users),
        n_votes=np.asarray(data.counts.votes_per_user()), chains=np.arange(1),
        draws=np.arange(len(draws)), eta_star=cut, hdi_prob=0.9, thin=1,
    )  # fmt: skip
    # Reference: P(side | votes) per draw by quadrature, averaged over the draws; the
    # population's odds likewise.
    users = ["c00", "one_against", "two_for", "split"]
    n_s = {"c00": (40, 32), "one_against": (1, 0), "two_for": (2, 2), "split": (2, 1)}
    for user in users:
        n, s = n_s[user]
        up, down, p_up, p_down = [], [], [], []
        for a, b in draws:

            def f(e, a=a, b=b, n=n, s=s):
                g = 0.5 + e * (MU - 0.5)
                return g**s * (1 - g) ** (n - s) * stats.beta.pdf(e, a, b)

            hi = integrate.quad(f, cut, 1, epsabs=0, epsrel=1e-11, limit=400)[0]
            lo = integrate.quad(f, 0, cut, epsabs=0, epsrel=1e-11, limit=400)[0]
            up.append(hi / (hi + lo))
            down.append(lo / (hi + lo))
            p_up.append(stats.beta.sf(cut, a, b))
            p_down.append(stats.beta.cdf(cut, a, b))
        ref = np.log(np.mean(up) / np.mean(down)) - np.log(np.mean(p_up) / np.mean(p_down))
        got = float(att["log_bf"].sel(user=user))
        assert got == pytest.approx(ref, abs=1e-6), user


# ---------------------------------------------------------------------------
# The screen
# ---------------------------------------------------------------------------


def test_one_vote_against_the_majority_is_not_kept(em):
    post = em.posterior(eta_star=0.5)
    p = pd.Series(post["p_above"].to_numpy(), index=post["user"].to_numpy())
    # The case: P_eta has its mass above the cut, so the rule alone keeps the user
    # whose only vote went against the majority.
    plain = filter_users(em, rule="prob", eta_star=0.5, min_evidence=0)
    assert p["one_against"] >= 0.95 and "one_against" in plain.kept_users
    out = filter_users(em, rule="prob", eta_star=0.5)
    assert out.settings["min_evidence"] == 1.0
    assert "one_against" not in out.kept_users
    assert {"one_against", "one_for", "split"} <= set(out.little_evidence_users)
    # Users with 40 consistent votes are still kept.
    careful = [u for u in em.data.users if u.startswith("c")]
    assert set(careful) <= set(out.kept_users)
    assert set(out.kept_users) <= set(plain.kept_users)


def test_the_count_line_reports_too_little_evidence(em, data):
    out = filter_users(em, rule="prob", eta_star=0.5)
    c = out.counts
    few = out.little_evidence_users
    per_user = data.votes_per_user()
    assert c["users_little_evidence"] == len(few) > 0
    assert c["votes_little_evidence"] == int(per_user[list(few)].sum())
    assert c["users_kept"] + c["users_dropped"] + c["users_undetermined"] + len(few) == 34
    assert c["votes_kept"] + c["votes_dropped"] + c["votes_little_evidence"] == data.n_votes
    assert not set(few) & set(out.dropped_users)
    line = out.summary()
    assert f"kept {c['users_kept']} of 34 users" in line
    assert f"too little evidence {len(few)} users ({c['votes_little_evidence']} votes)" in line
    assert "min_evidence=1" in line


def test_evidence_decisions_by_hand():
    keep = np.array([True, True, True, False, False, False, True])
    log_bf = np.array([2.0, 0.5, -3.0, -2.0, -0.5, 3.0, np.nan])
    kept, little = evidence_decisions(keep, log_bf, 1.0)
    np.testing.assert_array_equal(kept, [True, False, False, False, False, False, False])
    # Kept against the votes, or dropped although they point up: not resting on them.
    np.testing.assert_array_equal(little, [False, True, True, False, True, True, True])
    off, none = evidence_decisions(keep, log_bf, 0.0)
    np.testing.assert_array_equal(off, keep)
    assert not none.any()


@pytest.mark.parametrize("value", [-0.5, np.nan, np.inf])
def test_bad_min_evidence_is_refused(em, value):
    with pytest.raises(ArgumentError, match=r"min_evidence="):
        filter_users(em, rule="prob", min_evidence=value)


def test_min_evidence_belongs_to_the_prob_rule(em):
    with pytest.raises(ArgumentError, match="min_evidence belongs to rule='prob'"):
        filter_users(em, rule="top", top=0.5, min_evidence=1.0)


# ---------------------------------------------------------------------------
# Result files and the command line
# ---------------------------------------------------------------------------


def test_log_bf_round_trips_and_old_results_are_refused(data, tmp_path):
    tree = fit(data, "beta", mu=MU, n_init=1, warn=False)
    path = tmp_path / "fit.nc"
    save(tree, path)
    back = load(path)
    np.testing.assert_array_equal(
        back["attentiveness"]["log_bf"].to_numpy(), tree["attentiveness"]["log_bf"].to_numpy()
    )
    a, b = filter_users(tree, data), filter_users(back, data)
    assert a.counts == b.counts and a.counts["users_little_evidence"] > 0
    # A result written before log_bf was stored: estimated from its eta draws ...
    old = back.copy()
    old["attentiveness"] = back["attentiveness"].to_dataset().drop_vars("log_bf")
    est = filter_users(old, data)
    assert est.settings["log_bf_from"] == "eta draws"
    # ... and without them, filtering says what to do.
    bare = old.copy()
    bare["posterior"] = old["posterior"].to_dataset().drop_vars("eta")
    with pytest.raises(ArgumentError, match=r"holds no log_bf.*refit, or pass min_evidence=0"):
        filter_users(bare, data)
    plain = filter_users(bare, data, min_evidence=0)
    assert plain.counts["users_kept"] >= a.counts["users_kept"]
    from attnmodel.results import user_table

    assert "log_bf" not in user_table(old) and "log_bf" in user_table(back)


def test_log_bf_from_draws_estimates_the_exact_value(small):
    from attnmodel.posterior.draws import log_bf_from_draws
    from attnmodel.results.em import em_to_datatree

    cut, n_draws = 0.7, 4000
    tree = em_to_datatree(small, n_draws=n_draws, seed=1)  # fitted at eta_star = 0.5
    exact = small.posterior(eta_star=cut)
    p = exact["p_above"].to_numpy()
    got = log_bf_from_draws(tree, cut).sel(user=exact["user"].to_numpy()).to_numpy()
    want = exact["log_bf"].to_numpy()
    # The estimated log odds have standard error sqrt(1 / (S p (1 - p))) (delta method),
    # where both sides hold at least 50 draws; tolerance 4.5 of them plus the half-count
    # smoothing (below 1 / (S min(p, 1 - p)) = 0.02 there).
    both = n_draws * np.minimum(p, 1 - p) >= 50
    assert both.sum() >= 3
    se = np.sqrt(1.0 / (n_draws * p * (1 - p)))
    assert np.all(np.abs(got - want)[both] <= 4.5 * se[both] + 0.02)


def test_log_bf_from_draws_never_overstates_when_the_draws_fall_on_one_side(em):
    from attnmodel.posterior.draws import log_bf_from_draws
    from attnmodel.results.em import em_to_datatree

    # The half counts cap the estimated posterior odds at 2 S + 1 for S draws on one
    # side. That never overstates a user whose exact posterior odds are beyond 2 S + 1
    # (the 40-vote users here); a user with smaller odds can still see a run of S draws
    # on one side (probability (1 - p)^S), and then the cap does overstate: the 1-vote
    # users, whose exact odds under the fitted P_eta (nearly all its mass above the
    # cut) are about e^6 < 2 S + 1, are left out for that reason.
    cut, n_draws = 0.7, 500
    tree = em_to_datatree(em, n_draws=n_draws, seed=1)
    users = list(em.data.users)
    share = (tree["posterior"]["eta"] >= cut).mean(("chain", "draw")).sel(user=users).to_numpy()
    got = log_bf_from_draws(tree, cut).sel(user=users).to_numpy()
    exact = em.posterior(eta_star=cut)
    want = exact["log_bf"].to_numpy()
    p = exact["p_above"].to_numpy()
    beyond_cap = np.abs(np.log(p) - np.log1p(-p)) >= np.log(2 * n_draws + 1)
    one_side = ((share == 0) | (share == 1)) & beyond_cap
    assert one_side.sum() >= 10  # the 40-vote users: every draw above the cut
    assert np.all(got[one_side] <= want[one_side] + 1e-9)


@pytest.fixture(scope="module")
def cli_work(tmp_path_factory, frame):
    d = tmp_path_factory.mktemp("evidence_cli")
    frame.to_csv(d / "votes.csv", index=False)
    args = ["--quiet", "fit", str(d / "votes.csv"), "--family", "beta", "--mu", str(MU)]
    assert cli.main([*args, "--out", str(d / "fit.nc")]) == 0
    return d


def _filter(d, *extra):
    args = ["--quiet", "filter", str(d / "fit.nc"), str(d / "votes.csv"), *extra]
    return cli.main([*map(str, args), "--force"])


def test_cli_min_evidence(cli_work, capsys):
    d = cli_work
    capsys.readouterr()
    assert _filter(d, "--out", d / "kept.csv", "--decisions-out", d / "dec.csv") == 0
    line = capsys.readouterr().out
    assert "min_evidence=1" in line and "too little evidence" in line
    dec = pd.read_csv(d / "dec.csv").set_index("user")["decision"]
    assert dec["one_against"] == "too_little_evidence"
    assert (dec[[f"c{k:02d}" for k in range(30)]] == "kept").all()
    kept = pd.read_csv(d / "kept.csv")
    assert set(kept["user"]) == set(dec.index[dec == "kept"])

    assert _filter(d, "--min-evidence", 0, "--out", d / "plain.csv", "--decisions-out",
                   d / "dec0.csv") == 0  # fmt: skip
    dec0 = pd.read_csv(d / "dec0.csv").set_index("user")["decision"]
    assert dec0["one_against"] == "kept" and "too_little_evidence" not in set(dec0)

    # A bad value names the option.
    assert _filter(d, "--min-evidence", -1, "--out", d / "x.csv") == 1
    assert "--min-evidence -1.0: must be" in capsys.readouterr().err
    # Another cut than the fitted one: the evidence is estimated from the eta draws.
    assert _filter(d, "--eta-star", 0.7, "--out", d / "x.csv") == 0
    assert "log_bf_from=eta draws" in capsys.readouterr().out


def test_users_command_shows_log_bf(cli_work):
    d = cli_work
    args = ["--quiet", "users", str(d / "fit.nc"), "--out", str(d / "users.csv"), "--force"]
    assert cli.main(args) == 0
    table = pd.read_csv(d / "users.csv").set_index("user")
    assert table.loc["one_against", "log_bf"] < 0 < table.loc["c00", "log_bf"]
    assert np.isfinite(table["log_bf"]).all()
    # Another cut: the stored evidence is for the fitted one, so it is estimated from
    # the eta draws, as the filter estimates it.
    other = [*args[:-1], "--eta-star", "0.7", "--force"]
    assert cli.main(other) == 0
    from attnmodel.posterior.draws import log_bf_from_draws

    tree = load(d / "fit.nc")
    table = pd.read_csv(d / "users.csv").set_index("user")
    want = log_bf_from_draws(tree, 0.7).sel(user=table.index.to_numpy()).to_numpy()
    np.testing.assert_allclose(table["log_bf"].to_numpy(), want, rtol=1e-12)
