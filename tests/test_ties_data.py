"""Ties as evidence, the data side: counts (n, s, t), the collapse, readers, the simulator."""

import numpy as np
import pandas as pd
import pytest

from attnmodel.data.counts import collapse_counts, counts_fingerprint
from attnmodel.data.votes import VoteData
from attnmodel.errors import VoteDataError
from attnmodel.model.simulate import simulate_tie_counts, simulate_votes


def _dense(table, what):
    out = np.zeros((table.n_rows, table.n_pairs), dtype=np.int64)
    out[table.entry_row, table.entry_pair] = what
    return out[table.user_row]


@pytest.mark.parametrize("method", ["hash", "dense", "sort"])
def test_collapse_with_ties_groups_users_exactly_by_n_s_t(method):
    rng = np.random.default_rng(3)
    m, p = 400, 3
    n = rng.integers(0, 3, size=(m, p))
    s = rng.binomial(n, 0.6)
    t = rng.integers(0, 3, size=(m, p))
    t[(n + t).sum(axis=1) == 0, 0] = 1
    ui, pk = np.nonzero(n + t)
    table = collapse_counts(ui, pk, n[ui, pk], s[ui, pk], m, p, method=method, t=t[ui, pk])
    np.testing.assert_array_equal(_dense(table, table.entry_n), n)
    np.testing.assert_array_equal(_dense(table, table.entry_s), s)
    np.testing.assert_array_equal(_dense(table, table.entry_t), t)
    # Two users share a row exactly when (n, s, t) agree on every pair.
    key = [tuple(r) for r in np.concatenate([n, s, t], axis=1)]
    same_key = np.array([[a == b for b in key] for a in key])
    same_row = table.user_row[:, None] == table.user_row[None, :]
    np.testing.assert_array_equal(same_key, same_row)
    # Users differing only in ties exist here, so the check above is not vacuous.
    assert len(set(key)) > len({tuple(r) for r in np.concatenate([n, s], axis=1)})
    m_r, t_r = table.row_totals()
    np.testing.assert_array_equal(m_r[table.user_row], n.sum(axis=1))
    np.testing.assert_array_equal(table.ties_per_user(), t.sum(axis=1))


def test_collapse_with_ties_rejects_bad_counts():
    with pytest.raises(ValueError, match="t >= 0"):
        collapse_counts([0], [0], [1], [0], 1, 1, t=[-1])
    with pytest.raises(ValueError, match="0 <= s <= n"):
        collapse_counts([0], [0], [1], [2], 1, 1, t=[0])
    with pytest.raises(ValueError, match="no votes"):
        collapse_counts([0], [0], [1], [1], 2, 1, t=[0])


def test_raw_votes_with_ties_modelled_match_a_groupby():
    sim = simulate_votes(
        "beta",
        {"alpha": 2.0, "beta": 1.0},
        60,
        (1, 25),
        {"A vs B": 0.8, "C vs D": 0.7},
        layout="raw",
        tau=(1.0, 3.0),
        kappa=0.6,
        seed=11,
    )
    votes = sim.votes
    # A user made of ties only must stay in under ties="model".
    votes = pd.concat(
        [
            votes,
            pd.DataFrame(
                {"user": ["tie-only"] * 3, "model_a": "A", "model_b": "B", "winner": "tie"}
            ),
        ],
        ignore_index=True,
    )
    data = VoteData.from_frame(votes, ties="model")
    dropped = VoteData.from_frame(votes)
    assert "tie-only" in data.users and "tie-only" not in dropped.users
    assert data.ties == "model" and dropped.ties == "drop"
    assert data.n_ties_dropped == 0 and dropped.n_ties_dropped == int((votes.winner == "tie").sum())
    t = _dense(data.counts, data.counts.entry_t)
    n = _dense(data.counts, data.counts.entry_n)
    expect_t = (
        votes[votes.winner == "tie"]
        .assign(pair=lambda d: np.where(d.model_a.isin(["A", "B"]), "A vs B", "C vs D"))
        .groupby(["user", "pair"])
        .size()
    )
    for (user, pair), value in expect_t.items():
        assert t[data.users.get_loc(user), data.pairs.get_loc(pair)] == value
    assert t.sum() == len(votes[votes.winner == "tie"])
    assert n.sum() == dropped.n_votes == data.n_votes
    # The ties change the data's fingerprint; the tie-free table keeps its own.
    assert counts_fingerprint(data.counts, data.users, data.pairs) != counts_fingerprint(
        dropped.counts, dropped.users, dropped.pairs
    )


def test_from_counts_with_ties_and_its_errors():
    n = np.array([[3, 0], [0, 0]])
    s = np.array([[2, 0], [0, 0]])
    t = np.array([[1, 0], [0, 4]])
    data = VoteData.from_counts(n, s, t=t)
    np.testing.assert_array_equal(data.counts.user_ties(), t)
    assert data.report["n_ties"].tolist() == [1, 4]
    with pytest.raises(VoteDataError, match="t=-1"):
        VoteData.from_counts(n, s, t=-t)
    with pytest.raises(VoteDataError, match="no votes"):
        VoteData.from_counts(n, s, t=np.zeros_like(t))
    with pytest.raises(VoteDataError, match="shape"):
        VoteData.from_counts(n, s, t=t[:, :1])


def test_out_of_core_engines_refuse_modelled_ties(tmp_path):
    path = tmp_path / "votes.csv"
    pd.DataFrame(
        {
            "user": ["a", "a", "b"],
            "model_a": "X",
            "model_b": "Y",
            "winner": ["model_a", "tie", "model_b"],
        }
    ).to_csv(path, index=False)
    with pytest.raises(VoteDataError, match="engine='pandas'"):
        VoteData.from_file(path, engine="duckdb", ties="model")
    data = VoteData.from_file(path, ties="model")  # auto picks pandas
    assert data.counts.user_ties().sum() == 1


def test_simulated_tie_frequencies_follow_the_derived_likelihood():
    """The mechanism (vote by vote) against the closed form of the tie model.

    Per user 20000 votes on one pair: each frequency's standard error is at
    most sqrt(0.25 / 20000) = 0.0035; the tolerance is 5 of them.
    """
    eta = np.array([0.95, 0.9, 0.05, 0.5])
    tau = np.array([0.6, 0.05, 0.0, 0.3])
    kappa, mu, votes = 0.7, 0.8, 20000
    n, s, t = simulate_tie_counts(eta, tau, kappa, votes, mu, seed=5)
    c = 1.0 - (1.0 - eta) * kappa
    p_strong = (1 - tau) * (eta * mu + (1 - eta) * (1 - kappa) / 2)
    p_tie = 1.0 - (1.0 - tau) * c
    tol = 5 * np.sqrt(0.25 / votes)
    np.testing.assert_allclose(t[:, 0] / votes, p_tie, atol=tol)
    np.testing.assert_allclose(s[:, 0] / votes, p_strong, atol=tol)
    assert np.all(n + t == votes)


def test_simulated_raw_votes_write_ties():
    sim = simulate_votes(
        "beta", {"alpha": 1.0, "beta": 1.0}, 20, 10, 0.8, layout="raw", tau=0.5, seed=0
    )
    share = (sim.votes.winner == "tie").mean()
    assert 0.35 < share < 0.65  # 200 votes, tie rate 1/2: 3 standard errors 0.106
    assert sim.tau is not None and sim.kappa == 0.0
    with pytest.raises(ValueError, match="raw layout"):
        simulate_votes("beta", {"alpha": 1.0, "beta": 1.0}, 5, 5, 0.8, tau=0.5)
