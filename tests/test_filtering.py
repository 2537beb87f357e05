"""Filtering rules on hand-built posteriors: the kept set is known by construction.

A real (small) fit supplies the data, the fitted family and its parameters;
the posterior summaries that the rules read are written by hand and passed
through ``posterior=``, so every expected decision is visible in the test.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from attnmodel import NotConvergedError, filter_users, fit_em, simulate_votes
from attnmodel.data.votes import VoteData
from attnmodel.filtering import DiagnosticsError, DiagnosticsWarning
from attnmodel.inference.em import ConvergenceWarning
from attnmodel.results.em import em_to_datatree
from tests.nuts_trees import nuts_like

N_USERS = 25
MODELS = ["gpt", "llama", "claude"]


def _vote_frame() -> pd.DataFrame:
    """Raw-layout votes of 25 users with text columns, some ties and a custom index.

    User ``u24`` casts only ties, so the data drops it; the others cast 2 to 9
    non-tie votes. The index is shuffled integers starting at 1000, so that a
    test can see that kept rows keep their original labels.
    """
    rng = np.random.default_rng(404)
    rows = []
    for j in range(N_USERS):
        n = rng.integers(3, 11)
        for _ in range(n):
            a, b = rng.choice(MODELS, size=2, replace=False)
            if j == N_USERS - 1:
                winner = "tie"
            else:
                winner = rng.choice(["model_a", "model_b", "tie"], p=[0.5, 0.4, 0.1])
            rows.append(
                {
                    "judge": f"u{j:02d}",
                    "model_a": a,
                    "model_b": b,
                    "winner": winner,
                    "prompt": f"question {rng.integers(1000)}",
                    "response_a": f"{a} says {rng.integers(100)}",
                    "response_b": f"{b} says {rng.integers(100)}",
                    "turn": int(rng.integers(1, 3)),
                }
            )
    df = pd.DataFrame(rows)
    # Interleave users so that rows of one user are not contiguous.
    df = df.sample(frac=1.0, random_state=3)
    df.index = 1000 + rng.permutation(len(df))
    return df


_FRAME = _vote_frame()
_TRUE_VOTES = _FRAME[_FRAME["winner"] != "tie"].groupby("judge").size()


@pytest.fixture(scope="module")
def frame():
    return _FRAME.copy()


@pytest.fixture(scope="module")
def fit(frame):
    data = VoteData.from_frame(frame, user="judge")
    res = fit_em(data, "beta", n_init=1, seed=0)
    assert res.converged_
    return res


@pytest.fixture(scope="module")
def users(fit):
    return list(fit.data.users)


def _posterior(users, eta_star=0.5, n_votes=None, **values) -> xr.Dataset:
    """A posterior Dataset shaped like user_posterior's, with chosen values.

    Summaries not given are NaN, so that a rule reading the wrong one keeps
    nobody and fails its test. ``n_votes`` defaults to the frame fixture's true
    counts, as user_posterior would give them.
    """
    m = len(users)
    if n_votes is None:
        n_votes = _TRUE_VOTES.reindex(list(users)).to_numpy()
    nan = np.full(m, np.nan)
    ds = xr.Dataset(
        {
            "eta_mean": ("user", np.asarray(values.get("eta_mean", nan), float)),
            "eta_sd": ("user", nan),
            "eta_map": ("user", np.asarray(values.get("eta_map", nan), float)),
            "eta_hdi": (("user", "ci_bound"), np.full((m, 2), np.nan)),
            "p_above": ("user", np.asarray(values.get("p_above", nan), float)),
            "n_votes": ("user", np.asarray(n_votes, dtype=np.int64)),
        },
        coords={"user": np.asarray(users, dtype=object), "ci_bound": ["lower", "upper"]},
        attrs={"family": "beta", "method": "hand", "eta_star": float(eta_star), "hdi_prob": 0.94},
    )
    ds["p_above"].attrs["eta_star"] = float(eta_star)
    return ds


def _expected_votes(frame, kept):
    """Input rows (every column, original index, input order) of kept users, ties left out."""
    return frame[frame["judge"].isin(list(kept)) & (frame["winner"] != "tie")]


def _check_kept(out, fit, frame, expected_users):
    expected_users = list(expected_users)
    assert list(out.kept_users) == [u for u in fit.data.users if u in set(expected_users)]
    assert set(out.dropped_users) == set(fit.data.users) - set(expected_users)
    assert out.keep.index.name == "user"
    assert list(out.keep.index) == list(fit.data.users)
    pd.testing.assert_frame_equal(out.votes, _expected_votes(frame, expected_users))
    per_user = fit.data.votes_per_user()
    c = out.counts
    assert c["users_kept"] == len(expected_users)
    assert c["users_kept"] + c["users_dropped"] == fit.data.n_users
    assert c["votes_kept"] == len(out.votes) == int(per_user[expected_users].sum())
    assert c["votes_kept"] + c["votes_dropped"] == fit.data.n_votes
    assert f"kept {c['users_kept']} of {fit.data.n_users} users" in out.summary()


def test_data_is_what_the_tests_assume(fit, frame):
    data = fit.data
    assert data.n_users == N_USERS - 1
    assert list(data.dropped_users) == [f"u{N_USERS - 1:02d}"]
    assert data.n_ties_dropped == int((frame["winner"] == "tie").sum())
    pd.testing.assert_frame_equal(data.votes, frame[frame["winner"] != "tie"])


def test_prob_rule_keeps_the_boundary(fit, frame, users):
    m = len(users)
    p = np.linspace(0.0, 1.0, m)
    p[:5] = [0.95, np.nextafter(0.95, 0.0), 0.9500001, 1.0, 0.0]
    post = _posterior(users, eta_star=0.5, p_above=p)
    # The synthetic posterior has no log_bf: the rule alone (no evidence screen).
    out = filter_users(fit, rule="prob", eta_star=0.5, prob=0.95, posterior=post, min_evidence=0)
    expected = [u for u, v in zip(users, p, strict=True) if v >= 0.95]
    assert users[0] in expected and users[1] not in expected
    _check_kept(out, fit, frame, expected)
    assert out.rule == "prob"
    # An EMResult is filtered as its tree: exact probabilities, MCSE 0, nobody undetermined.
    assert out.settings == {"eta_star": 0.5, "prob": 0.95, "mcse_k": 2.0, "min_evidence": 0.0}
    assert out.undetermined_users.empty


def test_top_rule_keeps_ties_at_the_cut_whole(fit, frame, users):
    m = len(users)  # 24
    mean = np.linspace(0.1, 0.5, m)
    # Five users share the 3rd-highest mean: top 3 / 24 = 0.125 cuts inside the tie.
    tied = [4, 9, 13, 17, 20]
    mean[[2, 7]] = [0.95, 0.9]
    mean[tied] = 0.8
    post = _posterior(users, eta_mean=mean)
    out = filter_users(fit, rule="top", top=3 / m, posterior=post)
    expected = [users[i] for i in [2, 7, *tied]]
    _check_kept(out, fit, frame, expected)
    assert out.settings["cut"] == 0.8
    assert out.settings["top"] == 3 / m
    assert out.settings["kept_fraction"] == pytest.approx(7 / m, rel=1e-15)


def test_top_rule_counts_users_exactly(fit, frame, users):
    # top = k / m keeps exactly k users for every k, and so does a fraction that
    # carries float noise: 1 - 11/24 is 13/24 plus an ulp, its product with 24 is
    # 13.000000000000002, and a bare ceil would keep 14 (likewise 0.07 of 100 users).
    m = len(users)
    mean = np.arange(m, dtype=float) / m  # all distinct
    order = np.argsort(-mean)
    for k in range(1, m + 1):
        out = filter_users(fit, rule="top", top=k / m, posterior=_posterior(users, eta_mean=mean))
        assert out.counts["users_kept"] == k, k
        assert set(out.kept_users) == {users[i] for i in order[:k]}
    noisy = 1 - 11 / m
    assert noisy * m > 13
    out = filter_users(fit, rule="top", top=noisy, posterior=_posterior(users, eta_mean=mean))
    assert out.counts["users_kept"] == 13
    # top = 1 keeps everyone.
    out = filter_users(fit, rule="top", top=1.0, posterior=_posterior(users, eta_mean=mean))
    _check_kept(out, fit, frame, users)


def test_map_rule(fit, frame, users):
    m = len(users)
    eta_map = np.linspace(0.0, 1.0, m)
    eta_map[:3] = [0.6, np.nextafter(0.6, 0.0), 0.61]
    post = _posterior(users, eta_map=eta_map)
    out = filter_users(fit, rule="map", threshold=0.6, posterior=post)
    expected = [u for u, v in zip(users, eta_map, strict=True) if v >= 0.6]
    assert users[0] in expected and users[1] not in expected
    _check_kept(out, fit, frame, expected)
    assert out.settings == {"threshold": 0.6}


@pytest.mark.parametrize("by", ["map", "mean"])
def test_quantile_rule_cuts_at_the_fitted_quantile(fit, frame, users, by):
    q = 0.4
    a, b = fit.params_["alpha"], fit.params_["beta"]
    cut = stats.beta.ppf(q, a, b)
    m = len(users)
    vals = np.linspace(0.0, 1.0, m)
    vals[:3] = [cut + 1e-9, cut - 1e-9, 0.0]
    post = _posterior(users, **{f"eta_{by}": vals})
    out = filter_users(fit, rule="quantile", quantile=q, by=by, posterior=post)
    # The package's Beta ppf is scipy's: the cut agrees to the last digits.
    assert out.settings["cut"] == pytest.approx(cut, rel=1e-12)
    assert out.settings["quantile"] == q and out.settings["by"] == by
    expected = [u for u, v in zip(users, vals, strict=True) if v >= out.settings["cut"]]
    assert users[0] in expected and users[1] not in expected
    _check_kept(out, fit, frame, expected)


def test_posterior_in_another_user_order_is_aligned(fit, frame, users):
    # The keep mask selects vote rows by user position: a posterior listing the
    # users in another order must still keep the right users' rows.
    m = len(users)
    eta_map = np.linspace(0.0, 1.0, m)
    post = _posterior(users, eta_map=eta_map)
    reordered = post.isel(user=np.random.default_rng(1).permutation(m))
    out = filter_users(fit, rule="map", threshold=0.5, posterior=reordered)
    expected = [u for u, v in zip(users, eta_map, strict=True) if v >= 0.5]
    _check_kept(out, fit, frame, expected)
    # Users the fit never saw are an error, not a silent misalignment.
    other = post.assign_coords(user=[f"x{i}" for i in range(m)])
    with pytest.raises(ValueError, match="users"):
        filter_users(fit, rule="map", threshold=0.5, posterior=other)
    with pytest.raises(ValueError, match="users"):
        filter_users(fit, rule="map", threshold=0.5, posterior=post.isel(user=slice(1, None)))


def test_default_posterior_is_the_fits_own(fit, frame):
    post = fit.posterior(eta_star=0.4)
    out = filter_users(fit, rule="prob", eta_star=0.4, prob=0.5)
    # Kept: p_above >= 0.5 and the user's votes favour eta >= 0.4 by a factor e (the
    # default min_evidence 1); dropped: p_above < 0.5 and the votes favour eta < 0.4 by e.
    p, bf, ids = post.p_above.values, post.log_bf.values, post.user.values
    kept, dropped = (p >= 0.5) & (bf >= 1.0), (p < 0.5) & (bf <= -1.0)
    assert list(out.kept_users) == list(ids[kept])
    assert list(out.dropped_users) == list(ids[dropped])
    assert list(out.little_evidence_users) == list(ids[~kept & ~dropped])
    # P_eta sits below the cut and users have 2 to 8 votes: the screen has work to do.
    assert out.counts["users_little_evidence"] > 0
    pd.testing.assert_frame_equal(out.votes, _expected_votes(frame, ids[kept]))
    plain = filter_users(fit, rule="prob", eta_star=0.4, prob=0.5, min_evidence=0)
    _check_kept(plain, fit, frame, ids[p >= 0.5])
    out_top = filter_users(fit, rule="top", top=0.5)
    assert (
        out_top.settings["cut"]
        == np.sort(post.eta_mean.values)[::-1][int(np.ceil(0.5 * fit.data.n_users)) - 1]
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rule": "best"}, "rule"),
        ({"rule": "PROB"}, "rule"),
        ({"rule": "prob", "prob": 0.0}, "prob"),
        ({"rule": "prob", "prob": 1.5}, "prob"),
        ({"rule": "prob", "prob": np.nan}, "prob"),
        ({"rule": "top"}, "top"),
        ({"rule": "top", "top": 0.0}, "top"),
        ({"rule": "top", "top": 1.01}, "top"),
        ({"rule": "top", "top": np.nan}, "top"),
        ({"rule": "map"}, "threshold"),
        ({"rule": "map", "threshold": -0.1}, "threshold"),
        ({"rule": "map", "threshold": 1.1}, "threshold"),
        ({"rule": "quantile"}, "quantile"),
        ({"rule": "quantile", "quantile": 0.0}, "quantile"),
        ({"rule": "quantile", "quantile": 1.0}, "quantile"),
        ({"rule": "quantile", "quantile": 0.5, "by": "median"}, "by"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(fit, users, kwargs, name):
    post = _posterior(
        users,
        p_above=np.zeros(len(users)),
        eta_mean=np.zeros(len(users)),
        eta_map=np.zeros(len(users)),
    )
    with pytest.raises(ValueError, match=name):
        filter_users(fit, posterior=post, **kwargs)


def test_non_converged_fit_is_refused_unless_forced(frame):
    data = VoteData.from_frame(frame, user="judge")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit_em(data, "beta", n_init=1, max_iter=2, accelerate=False)
    assert not res.converged_
    with pytest.raises(NotConvergedError, match="force=True"):
        filter_users(res, rule="top", top=0.5)
    out = filter_users(res, rule="top", top=0.5, force=True)
    assert out.counts["users_kept"] >= 12


def test_count_data_gives_no_vote_rows():
    n = np.array([[10, 0], [4, 4], [7, 2], [1, 0], [9, 9]])
    s = np.array([[9, 0], [2, 3], [7, 1], [0, 0], [9, 6]])
    data = VoteData.from_counts(n, s, users=["a", "b", "c", "d", "e"])
    res = fit_em(data, "beta", mu=0.8, n_init=1)
    post = _posterior(list(data.users), eta_map=[0.9, 0.1, 0.8, 0.2, 0.95], n_votes=n.sum(axis=1))
    out = filter_users(res, rule="map", threshold=0.5, posterior=post)
    assert out.votes is None
    assert list(out.kept_users) == ["a", "c", "e"]
    assert out.counts == {
        "users_kept": 3,
        "users_dropped": 2,
        "users_undetermined": 0,
        "votes_kept": 10 + 9 + 18,
        "votes_dropped": 8 + 1,
        "votes_undetermined": 0,
        "users_little_evidence": 0,
        "votes_little_evidence": 0,
    }


# ---------------------------------------------------------------------------
# Result trees (attnmodel.results) and the diagnostics gate
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_fit():
    """60 simulated users with 20 to 120 votes each: posteriors spread over [0, 1]."""
    sim = simulate_votes(
        "beta", {"alpha": 1.5, "beta": 1.5}, 60, (20, 120), 0.8, layout="raw", seed=7
    )
    res = fit_em(sim.to_data(), "beta", mu=0.8, n_init=1)
    assert res.converged_
    return res


@pytest.fixture(scope="module")
def em_tree(sim_fit):
    return em_to_datatree(sim_fit, n_draws=2000, seed=4)


@pytest.fixture(scope="module")
def nuts_good(sim_fit, em_tree):
    return nuts_like(sim_fit, em_tree, seed=0)


@pytest.fixture(scope="module")
def nuts_bad(sim_fit, em_tree):
    # Chain 0 sits 0.2 away from the others (spread 0.02), and 3 draws diverged.
    return nuts_like(sim_fit, em_tree, shift=0.2, divergences=3, seed=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rule": "prob", "eta_star": 0.5, "prob": 0.9},
        {"rule": "top", "top": 0.3},
        {"rule": "map", "threshold": 0.5},
        {"rule": "quantile", "quantile": 0.4, "by": "map"},
        {"rule": "quantile", "quantile": 0.6, "by": "mean"},
    ],
)
def test_em_tree_filters_like_the_em_result(sim_fit, em_tree, kwargs):
    from_fit = filter_users(sim_fit, **kwargs)
    from_tree = filter_users(em_tree, sim_fit.data, **kwargs)
    pd.testing.assert_series_equal(from_tree.keep, from_fit.keep)
    pd.testing.assert_frame_equal(from_tree.votes, from_fit.votes)
    assert from_tree.counts == from_fit.counts
    assert 0 < from_tree.counts["users_kept"] < sim_fit.data.n_users
    assert from_tree.undetermined_users.empty
    assert from_tree.settings == from_fit.settings
    assert from_tree.diagnostics.loc["converged", "passed"]


def test_tree_needs_its_data(sim_fit, em_tree):
    with pytest.raises(ValueError, match="data="):
        filter_users(em_tree, rule="top", top=0.5)
    n = sim_fit.data.votes_per_user().to_numpy()
    other = VoteData.from_counts(n, n // 2, users=[f"x{i}" for i in range(n.size)])
    with pytest.raises(ValueError, match=r"users.*x0"):
        filter_users(em_tree, other, rule="top", top=0.5)
    with pytest.raises(ValueError, match="posterior="):
        filter_users(em_tree, sim_fit.data, rule="top", top=0.5, posterior=sim_fit.posterior())
    # A tree listing the users in another order is aligned to the data.
    perm = np.random.default_rng(2).permutation(sim_fit.data.n_users)
    shuffled = em_tree.copy()
    shuffled["attentiveness"] = em_tree["attentiveness"].isel(user=perm)
    pd.testing.assert_series_equal(
        filter_users(shuffled, sim_fit.data, rule="map", threshold=0.5).keep,
        filter_users(sim_fit, rule="map", threshold=0.5).keep,
    )


def test_non_converged_em_tree_is_refused_unless_forced(sim_fit, em_tree):
    stale = em_tree.copy()
    stale.attrs["converged"] = 0
    with pytest.raises(NotConvergedError, match="force=True"):
        filter_users(stale, sim_fit.data, rule="top", top=0.5)
    out = filter_users(stale, sim_fit.data, rule="top", top=0.5, force=True)
    assert not out.diagnostics.loc["converged", "passed"]
    assert out.counts["users_kept"] == 30


def test_other_eta_star_recomputes_p_above_from_the_draws(sim_fit, em_tree):
    from attnmodel.posterior.draws import p_above_from_draws

    eta_star, prob = 0.3, 0.9
    exact = sim_fit.posterior(eta_star=eta_star)["p_above"].to_numpy()
    p, mcse, how = p_above_from_draws(em_tree, eta_star)
    assert how == "eta draws (iid MCSE)"
    n = 2000
    np.testing.assert_allclose(mcse, np.sqrt(p * (1 - p) / n), rtol=1e-12)
    # Indicator means of 2000 exact draws: within 4.5 binomial standard errors of
    # the exact probability (60 users; floor for p ~ 0 or 1).
    se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(p.to_numpy() - exact) <= 4.5 * se + 1e-9)

    # The tree's log_bf is for its own cut: at another, the evidence is estimated from
    # the draws too, and the screen only ever takes users out of the kept set.
    screened = filter_users(em_tree, sim_fit.data, rule="prob", eta_star=eta_star, prob=prob)
    assert screened.settings["log_bf_from"] == "eta draws"
    out = filter_users(
        em_tree, sim_fit.data, rule="prob", eta_star=eta_star, prob=prob, min_evidence=0
    )
    assert set(screened.kept_users) <= set(out.kept_users)
    assert out.settings["p_above_from"] == how and out.settings["eta_star"] == eta_star
    users = list(sim_fit.data.users)
    margin = np.abs(exact - prob)
    for u, e, m, s in zip(users, exact, margin, se, strict=True):
        if u in out.kept_users:
            assert e >= prob - 4.5 * s
        elif u in out.undetermined_users:
            assert m < (2 + 4.5) * s + 1e-9
        else:
            assert e <= prob + 4.5 * s
    # Users far from the cut are decided as the exact probabilities decide them.
    far = margin > 7 * se + 1e-9
    np.testing.assert_array_equal(out.keep.to_numpy()[far], (exact >= prob)[far])
    # Without eta draws there is nothing to recompute from.
    bare = em_to_datatree(sim_fit, n_draws=10, store_eta=False)
    with pytest.raises(ValueError, match="eta draws"):
        filter_users(bare, sim_fit.data, rule="prob", eta_star=eta_star)
    assert filter_users(bare, sim_fit.data, rule="prob", prob=0.9).counts["users_kept"] > 0


def test_nuts_gate_passes_a_good_fit(sim_fit, nuts_good):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = filter_users(nuts_good, sim_fit.data, rule="top", top=0.5)
    d = out.diagnostics
    assert list(d.index) == ["r_hat", "ess_bulk", "ess_tail", "divergences"]
    assert d["passed"].all()
    assert d.loc["r_hat", "threshold"] == 1.01 and d.loc["ess_bulk", "threshold"] == 400


def test_nuts_gate_refuses_a_bad_fit_naming_the_check(sim_fit, nuts_bad):
    with pytest.raises(DiagnosticsError) as err:
        filter_users(nuts_bad, sim_fit.data, rule="top", top=0.5)
    msg = str(err.value)
    assert re.search(r"r_hat of (alpha|beta) is \d\.\d+ > 1\.01", msg), msg
    assert "3 divergent transitions (allowed 0)" in msg and "force=True" in msg
    assert isinstance(err.value, NotConvergedError)
    with pytest.warns(DiagnosticsWarning, match="r_hat of"):
        out = filter_users(nuts_bad, sim_fit.data, rule="top", top=0.5, force=True)
    assert not out.diagnostics.loc["r_hat", "passed"]
    assert out.diagnostics.loc["divergences", "value"] == 3
    # The thresholds are arguments.
    loose = {"rhat_max": 10.0, "ess_min": 5, "max_divergences": 3}
    assert (
        filter_users(nuts_bad, sim_fit.data, rule="top", top=0.5, **loose)
        .diagnostics["passed"]
        .all()
    )


def test_nuts_gate_checks_ess(sim_fit, nuts_good):
    # 1000 independent draws give an ESS of about 1000: below a demand of 5000.
    with pytest.raises(DiagnosticsError, match=r"ess_bulk of \S+ is \d+ < 5000"):
        filter_users(nuts_good, sim_fit.data, rule="top", top=0.5, ess_min=5000)


def test_users_within_mcse_of_the_cut_are_undetermined(sim_fit, nuts_good):
    users = list(sim_fit.data.users)
    m = len(users)
    p = np.full(m, 0.2)
    mcse = np.full(m, 0.01)
    p[:6] = [0.95, 0.96, 0.94, 0.99, 0.95, 0.931]
    mcse[:6] = [0.01, 0.001, 0.01, 0.001, 0.0, 0.01]
    tree = nuts_good.copy()
    tree["attentiveness"] = (
        tree["attentiveness"].to_dataset().assign(p_above=("user", p), p_above_mcse=("user", mcse))
    )
    # The synthetic p_above do not go with the tree's log_bf: no evidence screen.
    out = filter_users(tree, sim_fit.data, rule="prob", prob=0.95, min_evidence=0)
    # |p - 0.95| < 2 MCSE: users 0 and 2; user 5 is 1.9 MCSE below: also undetermined.
    assert list(out.undetermined_users) == [users[0], users[2], users[5]]
    assert list(out.kept_users) == [users[1], users[3], users[4]]
    assert set(out.dropped_users) == set(users[6:])
    votes = sim_fit.data.votes
    pd.testing.assert_frame_equal(out.votes, votes[votes["user"].isin(list(out.kept_users))])
    per_user = sim_fit.data.votes_per_user()
    c = out.counts
    assert c["users_undetermined"] == 3
    assert c["votes_undetermined"] == int(per_user[[users[0], users[2], users[5]]].sum())
    assert c["votes_kept"] + c["votes_dropped"] + c["votes_undetermined"] == sim_fit.data.n_votes
    assert f"undetermined 3 users ({c['votes_undetermined']} votes)" in out.summary()
    assert f"kept 3 of {m} users" in out.summary()
    # With mcse_k = 0 every user is decided.
    strict = filter_users(tree, sim_fit.data, rule="prob", prob=0.95, mcse_k=0.0, min_evidence=0)
    assert strict.undetermined_users.empty
    assert list(strict.kept_users) == [users[0], users[1], users[3], users[4]]
    with pytest.raises(ValueError, match="mcse_k"):
        filter_users(tree, sim_fit.data, rule="prob", mcse_k=-1.0)


def test_map_and_quantile_on_a_nuts_tree(sim_fit, nuts_good):
    attn = nuts_good["attentiveness"]
    mean = attn["eta_mean"].to_numpy()
    out = filter_users(nuts_good, sim_fit.data, rule="map", threshold=0.5)
    # No eta_map in a NUTS tree: the rule reads the posterior mean and says so.
    assert out.settings["summary"] == "eta_mean"
    np.testing.assert_array_equal(out.keep.to_numpy(), mean >= 0.5)
    post = nuts_good["posterior"]
    a, b = float(post["alpha"].mean()), float(post["beta"].mean())
    out = filter_users(nuts_good, sim_fit.data, rule="quantile", quantile=0.4, by="mean")
    assert out.settings["cut"] == pytest.approx(stats.beta.ppf(0.4, a, b), rel=1e-12)
    np.testing.assert_array_equal(out.keep.to_numpy(), mean >= out.settings["cut"])


def test_a_registered_rule_is_used_by_name(fit, frame, users, monkeypatch):
    """A rule is one registry entry: filter_users finds it by name and reports its settings."""
    from attnmodel import filtering

    def decide(summaries, ppf, extra, args):
        n = summaries.sizes["user"]
        keep = np.arange(n) < n // 2
        return keep, np.zeros(n, dtype=bool), {"half": n // 2}

    rule = filtering.Rule("first_half", (), lambda kw, given_as: None, decide)
    monkeypatch.setitem(filtering.RULES, "first_half", rule)
    out = filter_users(fit, rule="first_half")
    assert out.settings["half"] == len(users) // 2
    assert out.keep.sum() == len(users) // 2
    assert list(out.keep.index[out.keep]) == users[: len(users) // 2]
    with pytest.raises(ValueError, match="top belongs to rule='top'"):
        filter_users(fit, rule="first_half", top=0.3)
    with pytest.raises(ValueError, match="first_half"):  # listed among the choices
        filter_users(fit, rule="no_such_rule")
