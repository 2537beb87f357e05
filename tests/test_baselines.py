"""The agreement score and the tie rate against hand computations and a plain loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attnmodel.baselines import agreement_score, tie_rate
from attnmodel.data.votes import VoteData
from attnmodel.errors import VoteDataError
from tests.test_data import random_raw


def _votes(rows):
    return pd.DataFrame(rows, columns=["user", "model_a", "model_b", "winner"])


# Two pairs: (x, y) and (x, w). Non-tie votes for x over y: a 2 of 2, b 1 of 2, c 0 of 1;
# for x over w: a 1 of 1, b 0 of 1; c has one tie on (x, y).
HAND = _votes(
    [
        ("a", "x", "y", "model_a"),
        ("a", "y", "x", "model_b"),
        ("a", "x", "w", "model_a"),
        ("b", "x", "y", "model_a"),
        ("b", "x", "y", "model_b"),
        ("b", "w", "x", "model_a"),
        ("c", "y", "x", "model_a"),
        ("c", "x", "y", "tie"),
    ]
)


def test_agreement_score_by_hand():
    data = VoteData.from_frame(HAND)
    # Pair (x, y): 3 of 5 votes for x, so x is the stronger model; pair (x, w): 1 of 2,
    # a tie of win rates broken alphabetically, so w is "stronger" there. Orientation does
    # not matter to the score: it uses (2 mu_hat - 1)(2 s - n) and both flip sign together.
    # Leave-one-out, user a: others on (x, y) 1 of 3 for x -> 2 mu - 1 = -1/3; a's votes
    # there 2 of 2 for x -> 2 s - n = +2 (in x's favour). On (x, w) the others (b) voted w:
    # from x's side 2 mu - 1 = -1, a voted x: +1. num = (-1/3)(2) + (-1)(1) = -5/3;
    # den = 2 (1/9) + 1 = 11/9; score -15/11.
    # User b: others on (x, y) 2 of 3 for x (a twice, c once against) -> +1/3, b's votes
    # 1 for x, 1 against -> 0; on (x, w) others (a) voted x -> +1, b voted w -> -1.
    # num = 0 - 1 = -1, den = 2 (1/9) + 1 = 11/9, score -9/11.
    # User c: others on (x, y) 3 of 4 for x -> +1/2, c voted y -> -1: num -1/2, den 1/4,
    # score -2.
    loo = agreement_score(data)
    assert loo.name == "agreement"
    assert list(loo.index) == ["a", "b", "c"]
    np.testing.assert_allclose(loo.to_numpy(), [-15 / 11, -9 / 11, -2.0], rtol=1e-12)
    # In-sample: (x, y) 3 of 5 -> 2 mu - 1 = 1/5; (x, w) 1 of 2 -> 0 (no direction).
    # a: num (1/5)(2) = 2/5, den 2/25 -> 5; b: num 0, den 2/25 -> 0; c: num -1/5,
    # den 1/25 -> -5.
    ins = agreement_score(data, leave_one_out=False)
    np.testing.assert_allclose(ins.to_numpy(), [5.0, 0.0, -5.0], rtol=1e-12, atol=1e-12)


def test_agreement_score_nan_without_a_direction():
    votes = _votes([("a", "x", "y", "model_a"), ("b", "x", "z", "model_a")])
    # Nobody else voted on a's or b's pair: no leave-one-out direction.
    assert agreement_score(VoteData.from_frame(votes)).isna().all()


def _loop_reference(votes: pd.DataFrame, leave_one_out: bool) -> pd.Series:
    """The moment estimator vote by vote, from the raw rows with plain Python."""
    rows = votes[votes["winner"] != "tie"]
    out = {}
    for user in dict.fromkeys(rows["user"]):
        num = den = 0.0
        for _, v in rows[rows["user"] == user].iterrows():
            key = frozenset((v["model_a"], v["model_b"]))
            winner = v["model_a"] if v["winner"] == "model_a" else v["model_b"]
            pool = rows[
                [frozenset(p) == key for p in zip(rows["model_a"], rows["model_b"], strict=True)]
            ]
            if leave_one_out:
                pool = pool[pool["user"] != user]
            if len(pool) == 0:
                continue
            won = np.where(pool["winner"] == "model_a", pool["model_a"], pool["model_b"])
            d = 2.0 * np.mean(won == winner) - 1.0  # from the side of the model this vote chose
            num += d  # the vote agrees with its own side: 2 z - 1 = +1
            den += d * d
        out[user] = num / den if den > 0 else np.nan
    return pd.Series(out)


@pytest.mark.parametrize("leave_one_out", [True, False])
def test_agreement_score_matches_a_plain_loop(leave_one_out):
    votes = random_raw(3, n_rows=150, n_users=25, uniform=True)
    got = agreement_score(VoteData.from_frame(votes), leave_one_out=leave_one_out)
    ref = _loop_reference(votes, leave_one_out).reindex(got.index)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-10, atol=1e-12)
    assert got.notna().sum() > 15  # the comparison is not all NaN


def test_tie_rate_by_hand_keeps_users_with_only_ties():
    votes = pd.concat([HAND, _votes([("d", "x", "y", "tie"), ("d", "w", "x", "tie")])])
    got = tie_rate(votes)
    assert list(got.index) == ["a", "b", "c", "d"]
    assert got["n_votes"].tolist() == [3, 3, 2, 2]
    assert got["n_ties"].tolist() == [0, 0, 1, 2]
    np.testing.assert_allclose(got["tie_rate"], [0.0, 0.0, 0.5, 1.0])


def test_tie_rate_other_column_names():
    votes = HAND.rename(columns={"user": "judge", "winner": "verdict"})
    got = tie_rate(votes, user="judge", winner="verdict")
    assert got["n_ties"].tolist() == [0, 0, 1]


def test_tie_rate_bad_winner_names_row_and_value():
    votes = HAND.copy()
    votes.loc[4, "winner"] = "left"
    with pytest.raises(VoteDataError, match=r"'winner'.*row 4.*'left'"):
        tie_rate(votes)
