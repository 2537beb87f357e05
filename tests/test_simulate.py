"""The simulator draws what the model says, in both layouts and both schemes."""

from __future__ import annotations

import numpy as np
import pytest

from attnmodel.data.votes import VoteData
from attnmodel.model.simulate import draw_n_votes, simulate_counts, simulate_votes

TRUTH = {"alpha": 3.0, "beta": 5.0}


def _z_sd(p, n):
    return np.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("reward_scores", [False, True])
def test_vote_rate_follows_attentiveness(reward_scores):
    # Pool votes by user: the mean of z - (1/2 + eta (mu - 1/2)) is zero in
    # expectation; 4 standard errors bound it (a false failure is a 6e-5 event).
    sim = simulate_votes("beta", TRUTH, 300, 200, mu=0.85, seed=3, reward_scores=reward_scores)
    v = sim.votes
    eta = sim.eta.reindex(v["user"]).to_numpy()
    p = 0.5 + eta * 0.35
    resid = v["z"].to_numpy() - p
    assert abs(resid.mean()) <= 4 * np.sqrt(np.mean(p * (1 - p)) / len(v))
    # Attentive users agree more: regress z on eta, slope should be mu - 1/2.
    slope = np.polyfit(eta, v["z"].to_numpy(), 1)[0]
    assert slope == pytest.approx(0.35, abs=4 * np.sqrt(0.25 / len(v)) / eta.std())


def test_reward_scores_decide_attentive_votes():
    # With eta = 1 every vote follows the reward scores; with eta = 0 none does more than chance.
    sim = simulate_votes(
        "k_point",
        {"weights": [0.5, 0.5], "locations": [0.0, 1.0]},
        200,
        50,
        mu=0.8,
        seed=4,
        reward_scores=True,
    )
    v = sim.votes
    eta = sim.eta.reindex(v["user"]).to_numpy()
    follows = (v["z"].to_numpy() == 1) == (v["reward_a"].to_numpy() > v["reward_b"].to_numpy())
    assert follows[eta == 1.0].all()
    n0 = int((eta == 0.0).sum())
    assert abs(follows[eta == 0.0].mean() - 0.5) <= 4 * _z_sd(0.5, n0)


def test_raw_layout_orients_back_to_the_same_counts():
    mu = {"gpt vs llama": 0.9, "claude vs alpaca": 0.7}
    raw = simulate_votes("beta", TRUTH, 80, (1, 30), mu, layout="raw", seed=6)
    oriented = simulate_votes("beta", TRUTH, 80, (1, 30), mu, layout="oriented", seed=6)
    # Same seed, same draws of eta, counts and labels: the two layouts must agree.
    np.testing.assert_array_equal(raw.eta.to_numpy(), oriented.eta.to_numpy())
    stronger = {frozenset(p.split(" vs ")): p.split(" vs ")[0] for p in mu}
    d_raw = VoteData.from_frame(raw.votes, user="user", stronger=stronger)
    d_or = oriented.to_data()
    n_raw, s_raw = d_raw.user_counts()
    n_or, s_or = d_or.user_counts()
    cols = sorted(n_or.columns)
    np.testing.assert_array_equal(n_raw[cols].to_numpy(), n_or[cols].to_numpy())
    np.testing.assert_array_equal(s_raw[cols].to_numpy(), s_or[cols].to_numpy())
    # Display order is random: model_a is the stronger model about half the time.
    first_strong = raw.votes["model_a"].isin(["gpt", "claude"]).mean()
    assert abs(first_strong - 0.5) <= 4 * _z_sd(0.5, len(raw.votes))


def test_votes_per_user_forms():
    rng = np.random.default_rng(0)
    assert (draw_n_votes(7, 5, rng) == 7).all()
    r = draw_n_votes((30, 500), 10000, rng)
    assert r.min() >= 30 and r.max() <= 500 and r.min() <= 35 and r.max() >= 495
    given = np.arange(1, 6)
    np.testing.assert_array_equal(draw_n_votes(given, 5, rng), given)
    with pytest.raises(ValueError, match="n_votes"):
        draw_n_votes(0, 3, rng)
    with pytest.raises(ValueError, match="n_votes"):
        draw_n_votes([3, 0, 2], 3, rng)


def test_counts_simulator_matches_its_model():
    n, s, eta = simulate_counts(
        "two_point", {"q_low": 0.5, "eta_low": 0.0, "eta_high": 1.0}, 20000, 40, mu=0.9, seed=8
    )
    assert set(np.unique(eta)) == {0.0, 1.0}
    for level, p in ((0.0, 0.5), (1.0, 0.9)):
        sel = eta == level
        rate = s[sel].sum() / n[sel].sum()
        assert rate == pytest.approx(p, abs=4 * _z_sd(p, n[sel].sum()))


def test_mu_must_favour_the_stronger_model():
    with pytest.raises(ValueError, match="mu must lie in"):
        simulate_votes("beta", TRUTH, 10, 5, mu=0.4)
