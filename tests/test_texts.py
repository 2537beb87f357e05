"""attnmodel.data.texts: synthetic prompts and answers that follow each vote."""

from __future__ import annotations

import pandas as pd

from attnmodel.data.texts import add_texts


def test_raw_votes_get_the_shown_models_answers_to_their_prompt():
    votes = pd.DataFrame(
        {"user": ["a", "b", "c"], "model_a": ["x", "y", "x"], "model_b": ["y", "x", "y"]}
    )
    out = add_texts(votes, seed=1, n_prompts=5)
    assert list(out.columns) == [*votes.columns, "prompt", "response_a", "response_b"]
    q = out["prompt"].str.removeprefix("Question ").astype(int)
    assert q.between(1, 5).all()
    assert (out["response_a"] == out["model_a"] + "'s answer to q" + q.astype(str)).all()
    assert (out["response_b"] == out["model_b"] + "'s answer to q" + q.astype(str)).all()
    pd.testing.assert_frame_equal(out[votes.columns], votes)
    assert "prompt" not in votes.columns  # the input is not modified
    pd.testing.assert_frame_equal(add_texts(votes, seed=1, n_prompts=5), out)


def test_oriented_votes_show_the_stronger_model_first():
    votes = pd.DataFrame(
        {"user": ["a", "b"], "pair": ["big vs small", "big vs small"], "z": [1, 0]}
    )
    out = add_texts(votes, seed=0)
    assert out["response_a"].str.startswith("big's answer").all()
    assert out["response_b"].str.startswith("small's answer").all()
