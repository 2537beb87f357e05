"""The paper's synthetic experiments at small sizes: each checks a property, not a number.

Full-size runs (Table 4 with 20 seeds per cell, Figure 8 with 10 seeds) take
minutes; here every function runs on a few hundred users in a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from attnmodel.paper import experiments as ex

# ---------------------------------------------------------------------------
# relative error
# ---------------------------------------------------------------------------


def test_relative_error_is_the_largest_relative_gap():
    # |3.3 - 3| / 3 = 0.1 and |4 - 5| / 5 = 0.2.
    assert ex.relative_error({"alpha": 3.3, "beta": 4.0}, ex.BETA_TRUTH) == pytest.approx(0.2)
    # Component vectors count element by element; extra estimated keys are ignored.
    est = {"weights": [0.5, 0.5], "locations": [0.2, 0.99], "other": 1.0}
    truth = {"weights": [0.4, 0.6], "locations": [0.2, 0.9]}
    assert ex.relative_error(est, truth) == pytest.approx(0.25)  # 0.1 / 0.4
    assert ex.relative_error(ex.TWO_POINT_TRUTH, ex.TWO_POINT_TRUTH) == 0.0


def test_relative_error_rejects_missing_and_zero_parameters():
    with pytest.raises(KeyError, match="beta"):
        ex.relative_error({"alpha": 3.0}, ex.BETA_TRUTH)
    with pytest.raises(ValueError, match="eta_low"):
        ex.relative_error({"eta_low": 0.1}, {"eta_low": 0.0})
    with pytest.raises(ValueError, match="shape"):
        ex.relative_error({"weights": [0.5, 0.5]}, {"weights": [0.2, 0.3, 0.5]})


def test_paper_table4_holds_the_papers_numbers():
    paper = ex.PAPER_TABLE4.set_index(["family", "m", "n"])
    assert len(paper) == 2 * len(ex.TABLE4_CELLS)
    # Spot checks against the paper's Table 4, and Delta recomputed from its rounded estimates.
    assert paper.loc[("two_point", 200, 50), "delta"] == pytest.approx(0.12)
    assert paper.loc[("beta", 800, 200), "params"] == {"alpha": 3.01, "beta": 5.02}
    recomputed = ex.relative_error(paper.loc[("beta", 400, 100), "params"], ex.BETA_TRUTH)
    assert recomputed == pytest.approx(paper.loc[("beta", 400, 100), "delta"], abs=0.002)


# ---------------------------------------------------------------------------
# Figure 3
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["two_point", "beta"])
def trajectories(request):
    # Plain EM on Beta crawls (hundreds of steps) when users have few votes; 100-200
    # votes each keep it to ~60 steps per start.
    votes = (30, 60) if request.param == "two_point" else (100, 200)
    return ex.em_trajectories(request.param, n_users=150, n_votes=votes, seed=3)


def test_trajectories_start_at_the_inits_and_climb_monotonically(trajectories):
    paths = trajectories.paths
    assert paths["start"].nunique() == len(trajectories.inits) >= 6
    for k, init in enumerate(trajectories.inits):
        path = paths[paths["start"] == k]
        first = path.iloc[0]
        assert first["step"] == "start"
        for name, value in init.items():
            assert first[name] == pytest.approx(value, abs=1e-12)
        # Plain EM (the paper's Algorithm 1): no extrapolated or quasi-Newton steps.
        assert set(path["step"].iloc[1:]) == {"em"}
        obj = path["objective"].to_numpy()
        # Lemma 2: never decreases (up to rounding of a sum of ~10^4 terms of size ~1).
        assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[1:]))


def test_trajectories_end_at_the_em_maximum(trajectories):
    paths = trajectories.paths
    last = paths.groupby("start").tail(1)
    # EM stops once a step moves no coordinate by more than 1e-8; at its linear
    # rate (about 0.8 per step here) it is then within ~1e-7 of its fixed point.
    for name in trajectories.param_names:
        opt = trajectories.optimum[name]
        np.testing.assert_allclose(last[name], opt, rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(last["objective"], trajectories.optimum_objective, rtol=1e-10)
    # Every start is far from the maximum: the paths cover ground.
    first = paths.groupby("start").head(1)
    spread = max(
        np.max(np.abs(first[n] - trajectories.optimum[n]) / abs(trajectories.optimum[n]))
        for n in trajectories.param_names
    )
    assert spread > 0.5


def test_trajectories_accelerated_paths_reach_the_same_maximum():
    tr = ex.em_trajectories(
        "two_point", n_users=150, n_votes=(30, 60), seed=3, accelerate=True, inits=None
    )
    last = tr.paths.groupby("start").tail(1)
    np.testing.assert_allclose(last["eta_high"], tr.optimum["eta_high"], rtol=1e-5)
    assert "squarem" in set(tr.paths["step"])


def test_trajectories_reject_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        ex.em_trajectories("beta", inits=[], n_users=20)
    with pytest.raises(ValueError, match="truth="):
        ex.em_trajectories("beta_mixture", n_users=20)


# ---------------------------------------------------------------------------
# Table 4
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_table():
    return ex.relative_error_table([(100, 20), (800, 200)], seeds=range(4))


def test_table4_errors_shrink_with_more_users_and_votes(small_table):
    runs = small_table.runs
    assert len(runs) == 2 * 2 * 4 and runs["converged"].all()
    mean = runs.groupby(["family", "m", "n"])["delta"].mean()
    # 8x the users and 10x the votes: the errors shrink by about sqrt(8) or more;
    # asking for a factor 2 leaves room for the spread over 4 seeds.
    for family in ("two_point", "beta"):
        assert mean[(family, 800, 200)] < 0.5 * mean[(family, 100, 20)], family
    # Each run's delta is the relative error of its own estimates.
    row = runs[runs["family"] == "beta"].iloc[0]
    assert row["delta"] == pytest.approx(
        ex.relative_error({"alpha": row["alpha"], "beta": row["beta"]}, ex.BETA_TRUTH)
    )


def test_table4_summary_sits_beside_the_papers_runs(small_table):
    summary = small_table.summary.set_index(["family", "m", "n"])
    runs = small_table.runs
    for key, grp in runs.groupby(["family", "m", "n"]):
        assert summary.loc[key, "delta_median"] == pytest.approx(np.median(grp["delta"]))
        assert (
            summary.loc[key, "delta_q25"]
            <= summary.loc[key, "delta_median"]
            <= summary.loc[key, "delta_q75"]
        )
    # (800, 200) is one of the paper's cells, (100, 20) is not.
    assert summary.loc[("beta", 800, 200), "paper_delta"] == pytest.approx(0.004)
    assert summary.loc[("two_point", 800, 200), "paper_eta_high"] == pytest.approx(0.98)
    assert np.isnan(summary.loc[("beta", 100, 20), "paper_delta"])
    share = np.mean(runs.query("family == 'beta' and m == 800")["delta"] <= 0.004)
    assert summary.loc[("beta", 800, 200), "paper_percentile"] == pytest.approx(share)


def test_table4_cells_get_different_data():
    # Seeds are mixed per cell: two cells with the same m never share votes.
    a = ex.relative_error_table([(50, 20), (50, 21)], seeds=[0], families=["two_point"])
    assert a.runs["q_low"].nunique() == 2
    with pytest.raises(ValueError, match="family"):
        ex.relative_error_table([(50, 20)], seeds=[0], families=["k_point"])


# ---------------------------------------------------------------------------
# Figures 4 and 7
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def misspecified():
    return ex.misspecification(n_users=300, n_init=2)


def test_two_point_fit_finds_the_two_clusters(misspecified):
    fit = misspecified[0]
    assert fit.fit_family == "two_point" and fit.converged
    # The clusters are Beta(4, 16) (mean 0.2) with weight 0.6 and Beta(16, 4)
    # (mean 0.8). Sampling sd of a fitted atom here is about 0.01 (cluster sd
    # 0.09 and per-user noise 0.1 over ~150 users each); 0.05 is 5 sd. The
    # weight's sd is about sqrt(0.24 / 300) = 0.03; 0.1 is 3.5 sd.
    assert fit.fit_params["eta_low"] == pytest.approx(0.2, abs=0.05)
    assert fit.fit_params["eta_high"] == pytest.approx(0.8, abs=0.05)
    assert fit.fit_params["q_low"] == pytest.approx(0.6, abs=0.1)
    atoms = fit.atoms
    assert list(atoms["side"]) == ["fit", "fit"]
    assert atoms["weight"].sum() == pytest.approx(1.0)
    assert fit.curves["fit_pdf"].isna().all()


def test_beta_fit_approximates_the_logistic_normal(misspecified):
    fit = misspecified[1]
    c = fit.curves
    # Both densities integrate to 1 on the grid (midpoint rule, 2001 points).
    dx = 1.0 / len(c)
    assert c["true_pdf"].sum() * dx == pytest.approx(1.0, abs=1e-4)
    assert c["fit_pdf"].sum() * dx == pytest.approx(1.0, abs=1e-4)
    # The truth's CDF is Phi((logit(eta) + 0.6) / 0.8).
    expected = stats.norm.cdf((special.logit(c["eta"]) + 0.6) / 0.8)
    np.testing.assert_allclose(c["true_cdf"], expected, atol=1e-12)
    # The best Beta is close to this truth (KS about 0.03 in the population);
    # with 300 users the fitted CDF adds about 0.03 of noise.
    assert fit.distance["ks"] < 0.1
    assert fit.distance["ks"] == pytest.approx(np.max(np.abs(c["true_cdf"] - c["fit_cdf"])))
    assert 0 < fit.distance["wasserstein"] <= fit.distance["ks"]


def test_logistic_normal_mixture_places_components_on_the_atoms():
    truth = ex.FIGURE7_TRUTHS[2]  # 0.2 delta(0.2) + 0.6 delta(0.6) + 0.2 delta(0.9)
    (fit,) = ex.logistic_normal_truths([truth], n_users=600, n_votes=100, n_init=1)
    assert fit.fit_family == "logistic_normal_mixture"
    means = np.array([fit.fit_params[f"logit_mean[{k}]"] for k in range(3)])
    weights = np.array([fit.fit_params[f"weights[{k}]"] for k in range(3)])
    # Per-user logit noise is about 0.5 with 100 votes; over >= 120 users per atom
    # a component mean has sd < 0.05: 0.15 is 3 sd.
    np.testing.assert_allclose(means, special.logit([0.2, 0.6, 0.9]), atol=0.15)
    # Weight sd is at most sqrt(0.24 / 600) = 0.02: 0.06 is 3 sd.
    np.testing.assert_allclose(weights, [0.2, 0.6, 0.2], atol=0.06)
    assert list(fit.atoms["side"]) == ["true"] * 3
    assert fit.curves["true_pdf"].isna().all()


# ---------------------------------------------------------------------------
# Figure 8
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def accuracy():
    return ex.accuracy_vs_mu((0.6, 0.9), n_users=200, seeds=range(2), n_init=1)


def test_accuracy_grows_with_mu(accuracy):
    assert len(accuracy) == 2 * 2 * 2 * 3
    mean = accuracy.groupby(["selection", "mu_mode", "mu"])["recall"].mean()
    # Ranking recall: about 0.6 at mu = 0.6 and 0.8 at mu = 0.9 (a binomial
    # share over ~200 attentive users: sd 0.035); a gap of 0.1 is 3 sd.
    for mode in ("known", "prior"):
        assert mean[("ranking", mode, 0.9)] > mean[("ranking", mode, 0.6)] + 0.1
    acc = accuracy.groupby(["mu", "selection"])["accuracy"].mean()
    assert acc[(0.9, "ranking")] > acc[(0.6, "ranking")]


def test_accuracy_selections_do_what_they_say(accuracy):
    ranking = accuracy[accuracy["selection"] == "ranking"]
    # Top half by posterior mean; users tied at the cut are kept together.
    assert (ranking["kept_fraction"] >= 0.5).all() and (ranking["kept_fraction"] < 0.56).all()
    known = accuracy[accuracy["mu_mode"] == "known"]
    np.testing.assert_allclose(known["mu_hat"], known["mu"])
    prior = accuracy[accuracy["mu_mode"] == "prior"]
    assert ((prior["mu_hat"] > 0.5) & (prior["mu_hat"] < 1.0)).all()
    # Asking for 95% certainty keeps fewer users than the MAP cut at the same eta.
    thr = accuracy.set_index(["mu", "seed", "mu_mode", "selection"])["kept_fraction"]
    for mu, seed, mode, sel in thr.index:
        if sel == "threshold":
            assert thr[(mu, seed, mode, sel)] <= thr[(mu, seed, mode, "map_threshold")]
    for col in ("recall", "accuracy", "kept_fraction"):
        assert accuracy[col].between(0, 1).all()


# ---------------------------------------------------------------------------
# Section 4.2 trade-off
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tradeoff():
    return ex.filter_tradeoff(n_users=200, seed=4)


def test_tradeoff_keeps_fewer_votes_as_the_filter_tightens(tradeoff):
    prob = tradeoff[tradeoff["rule"] == "prob"]
    top = tradeoff[tradeoff["rule"] == "top"]
    assert prob["setting"].is_monotonic_increasing and top["setting"].is_monotonic_decreasing
    for part in (prob, top):
        assert np.all(np.diff(part["votes_kept"]) <= 0)
        assert np.all(np.diff(part["users_kept"]) <= 0)
    assert top["votes_kept"].iloc[0] == 200 * 50  # top = 1 keeps everything
    assert top["votes_kept"].iloc[-1] < 0.2 * 200 * 50
    assert prob["votes_kept"].iloc[-1] < prob["votes_kept"].iloc[0]
    assert tradeoff.attrs == {"casual_below": 0.3, "truth": "Beta(4, 4)", "prob": 0.95}


def test_tradeoff_casual_shares_against_the_truth(tradeoff):
    data, eta = ex.simulate_data("beta", {"alpha": 4.0, "beta": 4.0}, 200, 50, 0.8, seed=4)
    full = tradeoff[(tradeoff["rule"] == "top") & (tradeoff["setting"] == 1.0)].iloc[0]
    # Every user casts 50 votes, so the true casual share of all votes is the share of users.
    assert full["casual_share_true"] == pytest.approx(np.mean(eta < 0.3))
    assert full["casual_users_kept_true"] == np.sum(eta < 0.3)
    # The posterior share estimates the population's P(eta < 0.3) = 0.126; its
    # sampling sd over 200 users is about 0.025 (3 sd: 0.075).
    assert full["casual_share_posterior"] == pytest.approx(stats.beta.cdf(0.3, 4, 4), abs=0.075)
    # Tight filters leave few casual votes, by either account.
    tight = tradeoff[(tradeoff["rule"] == "top") & (tradeoff["setting"] <= 0.3)]
    assert (tight["casual_share_true"] < 0.5 * full["casual_share_true"]).all()
    assert (tight["casual_share_posterior"] < 0.5 * full["casual_share_posterior"]).all()
    empty = tradeoff[tradeoff["votes_kept"] == 0]
    assert empty["casual_share_posterior"].isna().all()


@pytest.mark.slow
def test_figure8_at_the_papers_size():
    """Figure 8 at m = 400, n_j in 50..100, 5 seeds per mu.

    Ranking recall over 20 seeds: 0.59, 0.68, 0.73, 0.78 for mu = 0.6 .. 0.9,
    with a spread of 0.025 per seed: a mean over 5 seeds has sd 0.011, so the
    smallest step (0.045) is 3 sd of a difference. Ranking by posterior mean
    hardly depends on the scale that the prior on mu sets: over 20 seeds the
    known-mu and prior recalls differed by at most 0.001.
    """
    table = ex.accuracy_vs_mu(seeds=range(5))
    ranking = table[table["selection"] == "ranking"]
    recall = ranking.groupby(["mu_mode", "mu"])["recall"].mean()
    for mode in ("known", "prior"):
        assert np.all(np.diff(recall[mode].to_numpy()) > 0), recall[mode]
    np.testing.assert_allclose(recall["known"], recall["prior"], atol=0.01)
    # The prior (mode 0.875) pulls mu up when it is small, and the fitted eta
    # shrink with 2 mu - 1: cuts on the eta scale then keep almost nobody.
    mu_hat = table[table["mu_mode"] == "prior"].groupby("mu")["mu_hat"].mean()
    assert mu_hat[0.6] > 0.75
    kept = table.groupby(["mu_mode", "selection", "mu"])["kept_fraction"].mean()
    assert kept[("prior", "map_threshold", 0.6)] < 0.05 < kept[("known", "map_threshold", 0.6)]


def test_selection_scores_count_by_hand():
    selected = np.array([True, True, False, False, True])
    attentive = np.array([True, False, True, False, True])
    s = ex.selection_scores(selected, attentive)
    # 2 of the 3 selected are attentive; 2 of the 3 attentive are selected; 3 of 5 right.
    assert s == {"kept_fraction": 0.6, "recall": 2 / 3, "precision": 2 / 3, "accuracy": 0.6}
    none = ex.selection_scores(np.zeros(3, bool), np.array([True, False, False]))
    assert none["recall"] == 0.0 and np.isnan(none["precision"]) and none["accuracy"] == 2 / 3
