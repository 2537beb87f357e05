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
