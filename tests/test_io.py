"""attnmodel.data.io: table formats, the id rule, atomic writes; the CLI reads as the library."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from attnmodel.data import io
from attnmodel.data.votes import VoteData
from attnmodel.errors import TableFileError

SUFFIXES = [".csv", ".csv.gz", ".parquet", ".pq", ".jsonl", ".ndjson", ".jsonl.gz"]


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": ["007", "7", "u1", "12"],
            "z": [1, 0, 1, 1],
            "score": [0.5, 1.25, -2.0, 3.0],
            "text": ["a", "b, c", 'd "e"', "f"],
        }
    )


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_keeps_values_and_string_ids(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    df = frame()
    assert io.write_table(df, path) == path
    assert (
        io.table_format(path) == {"c": "csv", "p": "parquet", "j": "jsonl", "n": "jsonl"}[suffix[1]]
    )
    back = io.read_table(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    # "007" and "7" stay two users in every format.
    assert list(back["user"]) == ["007", "7", "u1", "12"]
    assert io.peek_columns(path) == ["user", "z", "score", "text"]


def test_csv_ids_are_strings_and_other_columns_are_inferred(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("user,judge,z\n007,1,1\n7,2,0\n")
    df = io.read_table(path)
    assert list(df["user"]) == ["007", "7"]
    assert df["judge"].dtype.kind == "i" and df["z"].dtype.kind == "i"
    named = io.read_table(path, id_columns=("judge",))
    assert list(named["judge"]) == ["1", "2"] and list(named["user"]) == [7, 7]


def test_json_keeps_the_types_the_file_gives(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"user": "007", "z": 1}\n{"user": 7, "z": 0}\n')
    assert list(io.read_table(path)["user"]) == ["007", 7]


def test_bad_names_missing_and_unreadable_files(tmp_path):
    with pytest.raises(TableFileError, match=r"'.*t\.xlsx': unknown file type for votes") as info:
        io.table_format(tmp_path / "t.xlsx", "votes")
    assert info.value.path.endswith("t.xlsx") and isinstance(info.value, ValueError)
    with pytest.raises(TableFileError, match="no such file"):
        io.read_table(tmp_path / "absent.csv")
    garbage = tmp_path / "bad.parquet"
    garbage.write_bytes(b"not parquet")
    with pytest.raises(TableFileError, match="could not be read as parquet"):
        io.read_table(garbage)
    assert io.peek_columns(garbage) is None
    assert io.peek_columns(tmp_path / "t.xlsx") is None
    with pytest.raises(TableFileError, match="unknown file type"):
        io.write_table(frame(), tmp_path / "t.txt")
    assert not (tmp_path / "t.txt").exists()


def test_existing_file_is_kept_without_force(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("precious\n")
    with pytest.raises(FileExistsError, match="force"):
        io.write_table(frame(), path)
    assert path.read_text() == "precious\n"
    io.write_table(frame(), path, force=True)
    assert len(io.read_table(path)) == 4


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")

    def crash(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.atomic_write(path, crash, force=True)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


# ---------------------------------------------------------------------------
# the command line reads tables as the library does


@pytest.fixture
def numeric_ids(tmp_path):
    """A raw log whose user ids look like numbers: "007" and "7" are two users."""
    rng = np.random.default_rng(3)
    ids = ["007", "7", "0", "12", "12.0", "u5"]
    n = [5, 9, 4, 7, 6, 8]
    rows = []
    for user, k in zip(ids, n, strict=True):
        for _ in range(k):
            a_first = bool(rng.integers(2))
            rows.append(
                {
                    "user": user,
                    "model_a": "gpt" if a_first else "llama",
                    "model_b": "llama" if a_first else "gpt",
                    "winner": "model_a" if rng.random() < 0.7 else "model_b",
                    "prompt": "q",
                    "response_a": "x",
                    "response_b": "y",
                }
            )
    path = tmp_path / "votes.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path, dict(zip(ids, n, strict=True))


def test_cli_and_from_file_agree_on_user_ids_and_counts(numeric_ids, tmp_path, capsys):
    from attnmodel.cli import main

    path, per_user = numeric_ids
    data = VoteData.from_file(path)
    # The reference: the ids as written, each with its number of votes.
    assert data.votes_per_user().to_dict() == per_user
    result, users_out = tmp_path / "fit.nc", tmp_path / "users.jsonl"
    fit = ["-q", "fit", str(path), "--family", "beta", "--mu", "0.8", "--out", str(result)]
    assert main(fit) == 0
    assert main(["-q", "users", str(result), "--out", str(users_out)]) == 0
    users = pd.read_json(users_out, lines=True, dtype=False)
    assert list(users["user"]) == list(data.users)
    assert dict(zip(users["user"], users["n_votes"], strict=True)) == per_user
    # export reads the kept votes through the same reader: the ids it carries along agree.
    dpo = tmp_path / "dpo.jsonl"
    assert main(["-q", "export", str(path), "--keep", "user", "--out", str(dpo)]) == 0
    rows = [json.loads(line) for line in dpo.read_text().splitlines()]
    assert pd.Series([r["user"] for r in rows]).value_counts().to_dict() == per_user
    capsys.readouterr()
