"""DPO export: the chosen side follows the vote; files appear whole or not at all."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from attnmodel.errors import VoteDataError
from attnmodel.export import to_dpo, write_dpo


@pytest.fixture
def votes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": ["u1", "u1", "u2"],
            "question": ["q1", "q2", "q3"],
            "prompt": ["Sky colour?", "2+2?", "Capital of France?"],
            "response_a": ["blue", "5", "Paris"],
            "response_b": ["green", "4", "Lyon"],
            "winner": ["model_a", "model_b", "model_a"],
        },
        index=[10, 11, 12],
    )


def test_chosen_follows_the_vote(votes):
    out = to_dpo(votes, keep=["user", "question"])
    assert list(out.columns) == ["prompt", "chosen", "rejected", "user", "question"]
    assert out["chosen"].tolist() == ["blue", "4", "Paris"]
    assert out["rejected"].tolist() == ["green", "5", "Lyon"]
    assert out.index.tolist() == [10, 11, 12]


def test_z_labels_give_the_same_pairs(votes):
    labelled = votes.assign(a_won=(votes["winner"] == "model_a").astype(int))
    a = to_dpo(votes)
    b = to_dpo(labelled, z="a_won")
    pd.testing.assert_frame_equal(a, b)


def test_conversational_layout(votes):
    out = to_dpo(votes, conversational=True)
    assert out.loc[11, "prompt"] == [{"role": "user", "content": "2+2?"}]
    assert out.loc[11, "chosen"] == [{"role": "assistant", "content": "4"}]
    assert out.loc[11, "rejected"] == [{"role": "assistant", "content": "5"}]


def test_bad_rows_are_named(votes):
    tie = votes.copy()
    tie.loc[11, "winner"] = "tie"
    with pytest.raises(VoteDataError, match=r"'winner', row 1 .*'tie'"):
        to_dpo(tie)
    gap = votes.copy()
    gap.loc[12, "response_b"] = None
    with pytest.raises(VoteDataError, match=r"'response_b', row 2"):
        to_dpo(gap)
    with pytest.raises(VoteDataError, match="missing column 'answer_a'"):
        to_dpo(votes, response_a="answer_a")
    with pytest.raises(VoteDataError, match="not a 0/1 label"):
        to_dpo(votes.assign(z=[1, 2, 0]), z="z")


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_written_files_round_trip(votes, tmp_path, suffix):
    out = to_dpo(votes, keep=["user"])
    path = write_dpo(out, tmp_path / f"dpo{suffix}")
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert rows[1] == {"prompt": "2+2?", "chosen": "4", "rejected": "5", "user": "u1"}
    else:
        back = pd.read_parquet(path)
        assert back["chosen"].tolist() == ["blue", "4", "Paris"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_existing_file_is_kept_without_force(votes, tmp_path):
    path = tmp_path / "dpo.jsonl"
    path.write_text("precious\n")
    with pytest.raises(FileExistsError, match="force"):
        write_dpo(to_dpo(votes), path)
    assert path.read_text() == "precious\n"
    write_dpo(to_dpo(votes), path, force=True)
    assert path.read_text().count("\n") == 3


def test_filtered_votes_export_end_to_end():
    # Kept rows of a real fit carry every input column, so they export directly.
    from attnmodel import filter_users, fit_em, simulate_votes

    sim = simulate_votes(
        "beta", {"alpha": 3.0, "beta": 5.0}, 60, 20, {"x vs y": 0.8}, layout="raw", seed=1
    )
    v = sim.votes.assign(
        prompt=[f"p{i}" for i in range(len(sim.votes))],
        response_a=[f"{m}-answer" for m in sim.votes["model_a"]],
        response_b=[f"{m}-answer" for m in sim.votes["model_b"]],
    )
    from attnmodel.data.votes import VoteData

    fit = fit_em(VoteData.from_frame(v), "beta", mu=0.8)
    kept = filter_users(fit, rule="top", top=0.5)
    out = to_dpo(kept.votes, keep=["user"])
    assert len(out) == kept.counts["votes_kept"]
    winner_model = np.where(
        kept.votes["winner"] == "model_a", kept.votes["model_a"], kept.votes["model_b"]
    )
    assert (out["chosen"].to_numpy() == np.char.add(winner_model.astype(str), "-answer")).all()
