"""Ties as evidence, by simulation: recovery, careful frequent tiers, and ranking against drop.

Votes are drawn vote by vote by the mechanism of attnmodel.model.ties
(attnmodel.model.simulate.simulate_tie_counts), not from the likelihood EM uses.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from attnmodel.data.votes import VoteData
from attnmodel.inference.em import fit_em
from attnmodel.model.simulate import simulate_tie_counts


def _auc(score, positive):
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    ranks = stats.rankdata(score)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _fit_both(n, s, t, **kwargs):
    """eta_mean per user with ties modelled and with ties dropped (same votes)."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_em(VoteData.from_counts(n, s, t=t), "beta", n_init=1, **kwargs)
        keep = n.sum(axis=1) > 0  # dropping ties leaves out users with ties only
        drop = fit_em(VoteData.from_counts(n[keep], s[keep]), "beta", n_init=1, **kwargs)
    out["model"] = model.posterior()["eta_mean"].to_numpy()
    eta_drop = np.full(n.shape[0], np.nan)
    eta_drop[keep] = drop.posterior()["eta_mean"].to_numpy()
    out["drop"] = eta_drop
    out["fit"] = model
    return out


def test_tie_spammers_lose_the_eta_that_dropping_ties_leaves_them():
    """300 careful users and 100 careless ones whose careless votes tie extra (kappa 0.8).

    Tie propensities ~ Beta(1.2, 2.5) for everyone (the model's population);
    careless votes then tie at tau + (1 - tau) 0.8, so the careless users
    are tie spammers. 20 votes each. Dropping ties leaves a spammer a few
    coin flips, which barely move it from the population; modelling them
    puts it where it belongs. Margins: with 20 votes a user's posterior sd of
    eta is 0.1-0.2, so means over 100 users are known to ~0.02; the margins
    (0.3, 0.1) are many of those, and the AUCs are over 30,000 pairs.

    Careful users who tie often by style: see the next test.
    """
    rng = np.random.default_rng(21)
    careless = np.repeat([False, True], [300, 100])
    eta = np.where(careless, rng.uniform(0.0, 0.1, 400), rng.uniform(0.85, 1.0, 400))
    tau = rng.beta(1.2, 2.5, 400)
    n, s, t = simulate_tie_counts(eta, tau, 0.8, 20, 0.8, seed=22)
    got = _fit_both(n, s, t, mu=0.8)
    e, d = got["model"], got["drop"]
    kept = ~np.isnan(d)
    assert np.mean(e[careless]) < np.nanmean(d[careless]) - 0.3
    assert np.mean(e[careless]) < 0.25
    # Careful users who tie at most at the population's usual rate keep their eta.
    usual = ~careless & (tau < 0.3)
    assert np.median(e[usual]) > 0.85
    assert abs(np.median(e[usual]) - np.median(d[usual])) < 0.1
    assert _auc(e[kept], ~careless[kept]) > _auc(d[kept], ~careless[kept])
    assert got["fit"].ties_.kappa > 0.6


def test_careful_frequent_tiers_keep_their_eta_under_a_two_component_p_eta():
    """The same population; the frequent tiers are the careful users with tau > 0.5.

    At high kappa a careful user who ties often looks, vote by vote, like a
    partly careless one whose careless votes became ties (its non-tie votes
    are attentive either way). Only ``P_eta`` tells them apart: a
    two-component mixture says users are careful or careless, and then the
    frequent tiers rank with the careful (40 votes each here). A single Beta
    fitted to the same votes gives them a median ``eta_mean`` near 0.5
    (benchmarks/bench_ties.py prints both). Margins as above: medians of
    ~70 users known to ~0.03.

    The family prior is flat: this is about the shape a two-component
    ``P_eta`` can take. The default prior's concentration (LogNormal(log 8,
    0.8) per component) widens the careful component (here uniform on
    [0.85, 1], concentration ~80), which pulls the frequent tiers' median to
    0.80, against 0.91 for the usual tiers.
    """
    rng = np.random.default_rng(21)
    careless = np.repeat([False, True], [300, 100])
    eta = np.where(careless, rng.uniform(0.0, 0.1, 400), rng.uniform(0.85, 1.0, 400))
    tau = rng.beta(1.2, 2.5, 400)
    n, s, t = simulate_tie_counts(eta, tau, 0.8, 40, 0.8, seed=22)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_em(
            VoteData.from_counts(n, s, t=t), "beta_mixture", n_components=2, n_init=1, mu=0.8,
            priors="flat",
        )  # fmt: skip
    e = res.posterior()["eta_mean"].to_numpy()
    tier = ~careless & (tau > 0.5)
    usual = ~careless & (tau < 0.3)
    assert tier.sum() > 50
    assert np.median(e[tier]) > np.median(e[usual]) - 0.1
    assert np.median(e[tier]) > 0.8
    assert np.mean(e[careless]) < 0.25
    assert _auc(e, ~careless) > 0.95


@pytest.mark.slow
def test_recovery_of_tie_rates_and_p_eta_over_seeds():
    """kappa, the mean tie propensity and the mean of P_eta over 4 seeds, 2000 users x 30 votes.

    Tolerance from the sampling error: the mean of the 4 estimates must lie
    within 3 standard errors (their spread / sqrt(4)) plus 0.01 of the
    truth, and each estimate within 4 spreads (no seed far off).
    """
    truth = {"kappa": 0.5, "tau_mean": 0.25, "eta_mean": 3.0 / 4.5}
    est = {k: [] for k in truth}
    for seed in range(4):
        rng = np.random.default_rng(seed)
        eta = rng.beta(3.0, 1.5, 2000)
        n, s, t = simulate_tie_counts(eta, (2.0, 6.0), 0.5, 30, [0.8], seed=100 + seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit_em(VoteData.from_counts(n, s, t=t), "beta", n_init=1, mu=0.8)
        est["kappa"].append(res.ties_.kappa)
        est["tau_mean"].append(res.ties_.tau_mean)
        a, b = res.params_["alpha"], res.params_["beta"]
        est["eta_mean"].append(a / (a + b))
    for key, value in truth.items():
        x = np.asarray(est[key])
        se = x.std(ddof=1) / np.sqrt(x.size)
        assert abs(x.mean() - value) <= 3 * se + 0.01, (key, x, value)
        assert np.all(np.abs(x - value) <= 4 * x.std(ddof=1) + 0.02), (key, x, value)


@pytest.mark.slow
def test_modelled_ties_rank_users_better_when_careless_users_tie_more():
    """AUC of eta_mean for careful (eta > 0.5) against careless users, 5 seeds.

    320 careful users (eta ~ Beta(8, 2)) and 80 careless (eta ~ Beta(1, 8)),
    tie propensities ~ Beta(2, 8) for all, careless votes tie extra with
    kappa = 0.6; 4 to 20 votes each, mu unknown. Modelled ties must win on
    every seed and on average by more than 2 standard errors of the
    per-seed differences.
    """
    diffs = []
    for seed in range(5):
        rng = np.random.default_rng(1000 + seed)
        careful = rng.random(400) < 0.8
        eta = np.where(careful, rng.beta(8, 2, 400), rng.beta(1, 8, 400))
        n, s, t = simulate_tie_counts(eta, (2.0, 8.0), 0.6, (4, 20), [0.8, 0.7], seed=seed)
        got = _fit_both(n, s, t)
        keep = ~np.isnan(got["drop"])
        truth = eta[keep] > 0.5
        diffs.append(_auc(got["model"][keep], truth) - _auc(got["drop"][keep], truth))
    diffs = np.asarray(diffs)
    assert np.all(diffs > 0), diffs
    assert diffs.mean() > 2 * diffs.std(ddof=1) / np.sqrt(diffs.size), diffs
