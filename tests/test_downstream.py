"""The preference-learning proxy (attnmodel.paper.downstream) and its response simulator.

Tolerances come from the sampling error of the quantities checked: a share
``p`` estimated from ``n`` independent draws has standard error
``sqrt(p (1 - p) / n)``, and checks allow 4 of them (a false alarm about once
in 15,000 runs); every random draw is seeded.
"""

import numpy as np
import pytest

from attnmodel.export import to_dpo
from attnmodel.model.simulate import ResponseFeatures, simulate_response_votes
from attnmodel.paper import downstream as ds
from attnmodel.paper.experiments import Truth

SMALL = ResponseFeatures(dim=20, curvature=0.0, angle=0.0, seed=3)
CLEAN = Truth("two_point", {"q_low": 0.5, "eta_low": 0.995, "eta_high": 1.0}, "clean")
COIN = Truth("two_point", {"q_low": 0.5, "eta_low": 0.0, "eta_high": 0.005}, "coin")


def _se(p, n):
    return np.sqrt(p * (1 - p) / n)


def _sim(truth, seed=0, responses=SMALL, **kw):
    return simulate_response_votes(
        truth.family, dict(truth.params), 60, 50, 0.8, responses=responses, seed=seed, **kw
    )


def test_stronger_model_wins_with_probability_mu():
    feats = ResponseFeatures(dim=10, curvature=0.3, seed=1)
    for mu in (0.6, 0.9):
        assert feats.win_rate(feats.shift_for(mu)) == pytest.approx(mu, abs=1e-6)
        sim = simulate_response_votes(
            "two_point", dict(CLEAN.params), 100, 100, mu, responses=feats, seed=2
        )
        v = sim.votes
        strong_a = v["model_a"] == "model-A"
        strong_r = np.where(strong_a, v["reward_a"], v["reward_b"])
        weak_r = np.where(strong_a, v["reward_b"], v["reward_a"])
        n = len(v)
        # Each vote's responses are independent draws: the share is binomial.
        assert np.mean(strong_r > weak_r) == pytest.approx(mu, abs=4 * _se(mu, n))


def test_rewards_and_features_agree_and_attentive_votes_follow_the_reward():
    sim = _sim(CLEAN)
    v = sim.votes
    ra = sim.responses.reward(sim.features[v["response_a"].astype(int)])
    np.testing.assert_allclose(ra, v["reward_a"])
    a_won = v["winner"] == "model_a"
    agree = np.mean(a_won == (v["reward_a"] > v["reward_b"]))
    # eta >= 0.995: at most 0.5% coin flips, half of them against the reward.
    n = len(v)
    assert agree >= 1 - 0.0025 - 4 * _se(0.0025, n)


def test_evaluation_accuracy_matches_the_angle_formula():
    # Linear reward, isotropic Gaussian responses: P(order right) = 1 - angle(theta, w) / pi.
    ev = ds.ProxyEvaluation(SMALL, n_pairs=20_000, seed=5)
    w = SMALL.directions()[0]
    rng = np.random.default_rng(0)
    for mix in (0.0, 0.5, 2.0):
        theta = w + mix * rng.standard_normal(SMALL.dim)
        angle = np.arccos(theta @ w / np.linalg.norm(theta))
        expected = 1 - angle / np.pi
        got = ev.score(theta)["accuracy"]
        assert got == pytest.approx(expected, abs=4 * _se(expected, 20_000))


def test_reward_model_is_the_penalised_logistic_optimum():
    rng = np.random.default_rng(1)
    chosen, rejected = rng.standard_normal((2, 500, 8))
    chosen[:, 0] += 1.0
    theta = ds.train_reward_model(chosen, rejected, l2=2.0)
    d = chosen - rejected
    # Stationarity written out again: l2 theta = sum_i d_i / (1 + exp(theta . d_i)).
    rhs = (d / (1.0 + np.exp(d @ theta))[:, None]).sum(axis=0)
    np.testing.assert_allclose(2.0 * theta, rhs, atol=1e-3 * np.abs(rhs).max())
    with pytest.raises(ValueError, match="l2"):
        ds.train_reward_model(chosen, rejected, l2=0.0)
    with pytest.raises(ValueError, match="shape"):
        ds.train_reward_model(chosen, rejected[:, :3])


def test_proxy_recovers_the_reward_direction_on_clean_votes():
    sim = _sim(CLEAN)
    chosen, rejected = ds.pair_features(to_dpo(sim.votes), sim.features)
    theta = ds.train_reward_model(chosen, rejected)
    w = SMALL.directions()[0]
    cosine = theta @ w / np.linalg.norm(theta)
    # 3000 clean pairs in 20 dimensions: the direction error is about sqrt(20 / 3000) rad.
    assert cosine > 0.95


def test_accuracy_drops_with_coin_flip_votes():
    ev = ds.ProxyEvaluation(SMALL, n_pairs=5000)
    clean = ds.proxy_quality(_sim(CLEAN), _sim(CLEAN).votes, ev)
    coin = ds.proxy_quality(_sim(COIN), _sim(COIN).votes, ev)
    assert clean["accuracy"] > 0.9
    # Random labels give a random direction: in 20 dimensions its cosine with w has sd
    # 1/sqrt(20) = 0.22, so the accuracy 1 - angle/pi lies within 0.5 +- 4 * 0.07.
    assert abs(coin["accuracy"] - 0.5) < 0.28
    assert coin["accuracy"] < clean["accuracy"] - 0.2
    # The win rate of best-of-2 lies between 1/2 (random) and 2/3 (perfect).
    assert coin["win_rate"] < clean["win_rate"] <= 2 / 3 + 4 * _se(2 / 3, 5000)


def test_proxy_is_deterministic_by_seed():
    ev = ds.ProxyEvaluation(SMALL, n_pairs=2000)
    a = ds.proxy_quality(_sim(CLEAN, seed=4), _sim(CLEAN, seed=4).votes, ev)
    b = ds.proxy_quality(_sim(CLEAN, seed=4), _sim(CLEAN, seed=4).votes, ev)
    c = ds.proxy_quality(_sim(CLEAN, seed=5), _sim(CLEAN, seed=5).votes, ev)
    assert a == b
    assert a != c


def test_response_features_refuse_bad_settings():
    with pytest.raises(ValueError, match="dim"):
        ResponseFeatures(dim=2)
    with pytest.raises(ValueError, match="angle"):
        ResponseFeatures(angle=2.0)
    with pytest.raises(ValueError, match="mu"):
        SMALL.shift_for(1.0)


def test_attached_features_follow_the_votes_as_simulated_ones_do():
    from attnmodel.model.simulate import attach_response_features, simulate_votes

    feats = ResponseFeatures(dim=5, seed=2)
    mu = 0.75
    # Attentive users (eta >= 0.995): the winner has the higher reward.
    sim = simulate_votes("two_point", dict(CLEAN.params), 80, 50, mu=mu, layout="raw", seed=3)
    out = attach_response_features(sim, feats, seed=4)
    v = out.votes
    ra = feats.reward(out.features[v["feature_a"].astype(int)])
    np.testing.assert_allclose(ra, v["reward_a"])
    a_won = v["winner"] == "model_a"
    n = len(v)
    assert np.mean(a_won == (v["reward_a"] > v["reward_b"])) >= 1 - 0.0025 - 4 * _se(0.0025, n)
    # Any users: the stronger model's response is better with probability mu overall.
    sim = simulate_votes("beta", {"alpha": 2.0, "beta": 2.0}, 200, 50, mu=mu, layout="raw", seed=5)
    v = attach_response_features(sim, feats, seed=6).votes
    strong_a = v["model_a"] == "A"
    better = np.where(strong_a, v["reward_a"] > v["reward_b"], v["reward_b"] > v["reward_a"])
    assert np.mean(better) == pytest.approx(mu, abs=4 * _se(mu, len(v)))
    assert list(sim.votes.columns) == ["user", "model_a", "model_b", "winner"]  # not modified
    with pytest.raises(ValueError, match="raw layout"):
        attach_response_features(simulate_votes("beta", {"alpha": 2, "beta": 2}, 5, 5), feats)


# ---------------------------------------------------------------------------
# The experiments at small sizes
# ---------------------------------------------------------------------------

HALF_COIN = Truth("two_point", {"q_low": 0.5, "eta_low": 0.0, "eta_high": 0.99}, "half coin")
TINY = {"n_users": 40, "n_votes": 30, "responses": SMALL, "n_eval": 4000}


def test_summarize_runs_against_numpy():
    rng = np.random.default_rng(0)
    acc = rng.random(10)
    runs = [
        {"truth": "t", "seed": s, "selection": sel, "pairs": 10, "accuracy": a, "win_rate": a / 2}
        for s in range(5)
        for sel, a in (("all", acc[s]), ("top0.8", acc[5 + s]))
    ]
    import pandas as pd

    out = ds.summarize_runs(pd.DataFrame(runs), ["truth"]).set_index("selection")
    top, base = acc[5:], acc[:5]
    assert out.loc["top0.8", "accuracy_mean"] == pytest.approx(top.mean())
    assert out.loc["top0.8", "accuracy_sd"] == pytest.approx(top.std(ddof=1))
    assert out.loc["top0.8", "accuracy_q10"] == pytest.approx(np.quantile(top, 0.1))
    assert out.loc["top0.8", "accuracy_gain"] == pytest.approx((top - base).mean())
    assert out.loc["top0.8", "win_rate_gain_sd"] == pytest.approx(((top - base) / 2).std(ddof=1))
    assert out.loc["all", "accuracy_gain"] == 0.0
    assert out.loc["all", "runs"] == 5


def test_proxy_runs_keep_what_they_say_and_the_oracle_gains_on_coin_flippers():
    runs = ds.proxy_runs((HALF_COIN,), fractions=(1.0, 0.5), seeds=range(4), **TINY)
    assert set(runs["selection"]) == {"all", "top0.5", "prob0.95", "oracle0.5"}
    assert len(runs) == 4 * 4
    by = runs.set_index(["seed", "selection"])
    for seed in range(4):
        assert by.loc[(seed, "all"), "pairs"] == 40 * 30
        assert by.loc[(seed, "oracle0.5"), "pairs"] == 20 * 30  # exactly half of the users
        # rule top keeps whole ties at the cut, so at least half.
        assert by.loc[(seed, "top0.5"), "pairs"] >= 20 * 30
    s = ds.summarize_runs(runs, ["truth"]).set_index("selection")
    # Half the users flip coins: dropping them must help. The paired gain over 4 seeds
    # must exceed 2 standard errors of its own mean (a one-sided test at about 5%,
    # whose power here is near 1: the gain is several times its spread).
    for sel in ("oracle0.5", "top0.5"):
        row = s.loc[sel]
        assert row["accuracy_gain"] > 2 * row["accuracy_gain_sd"] / np.sqrt(row["runs"])
    again = ds.proxy_runs((HALF_COIN,), fractions=(1.0, 0.5), seeds=range(1), **TINY)
    np.testing.assert_array_equal(again["accuracy"], runs[runs["seed"] == 0]["accuracy"])


def test_mu_tradeoff_and_tie_runs_at_small_sizes():
    mu = ds.mu_tradeoff((0.6, 0.9), truth=HALF_COIN, fraction=0.5, seeds=range(2), **TINY)
    assert sorted(mu["mu"].unique()) == [0.6, 0.9]
    assert set(mu["selection"]) == {"all", "top0.5", "oracle0.5"}
    assert len(mu) == 2 * 2 * 3
    ties = ds.tie_runs(truth=HALF_COIN, tau=0.1, kappa=0.6, seeds=range(2), **TINY)
    assert set(ties["selection"]) == {
        "all",
        "top0.8/drop",
        "prob0.95/drop",
        "oracle0.8",
        "top0.8/model",
        "prob0.95/model",
    }
    all_pairs = ties[ties["selection"] == "all"]["pairs"]
    # Ties are never exported: about 0.1 + 0.5 * 0.9 * 0.6 = 37% of 1200 votes are ties
    # (sd about 4% of them, mostly from how many of the 40 users flip coins).
    assert (all_pairs < 40 * 30 * 0.8).all() and (all_pairs > 40 * 30 * 0.45).all()
