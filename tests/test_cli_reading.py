"""``attnmodel fit`` reads globs and folders of partitions with every engine."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from attnmodel import cli
from tests.test_data import random_raw
from tests.test_engines import split_log


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reading")
    df = random_raw(7, n_rows=400, n_users=25).reset_index(drop=True)
    df = df[["user", "model_a", "model_b", "winner"]]
    split_log(df, root / "logs", parts=3)
    df.to_csv(root / "all.csv", index=False)
    return root


def fit_summary(capsys, root: Path, votes: str, out: str, *options: str) -> tuple[dict, str]:
    capsys.readouterr()
    args = ["fit", votes, "--family", "beta", "--out", str(root / out), "--force", *options]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert cli.main(["summary", str(root / out), "--json"]) == 0
    return json.loads(capsys.readouterr().out), err


def test_fit_reads_a_glob_and_a_folder_like_one_file(logs, capsys):
    want, _ = fit_summary(capsys, logs, str(logs / "all.csv"), "one.nc", "--engine", "pandas")
    glob = str(logs / "logs" / "date=*" / "part-*.parquet")
    got_glob, err = fit_summary(capsys, logs, glob, "glob.nc", "--engine", "duckdb")
    assert "400 rows scanned" in err
    got_dir, _ = fit_summary(capsys, logs, str(logs / "logs"), "dir.nc", "--engine", "pandas")
    for got in (got_glob, got_dir):
        for key in ("parameters", "mu", "n_users"):
            assert got.get(key) == want.get(key), key


def test_filter_reads_the_vote_rows_of_a_glob(logs, capsys):
    glob = str(logs / "logs" / "date=*" / "part-*.parquet")
    fit_summary(capsys, logs, glob, "glob.nc", "--engine", "duckdb")
    for votes, out in ((glob, "kept_glob.csv"), (str(logs / "all.csv"), "kept_one.csv")):
        args = ["filter", str(logs / "glob.nc"), votes, "--rule", "top", "--top", "0.5"]
        args += ["--out", str(logs / out), "--force"]
        assert cli.main(args) == 0
    got = pd.read_csv(logs / "kept_glob.csv")
    want = pd.read_csv(logs / "kept_one.csv")
    pd.testing.assert_frame_equal(got, want)
    assert len(got) > 0


def test_reading_options_are_checked(logs, capsys):
    args = ["fit", str(logs / "logs"), "--family", "beta", "--out", str(logs / "x.nc")]
    assert cli.main([*args, "--engine", "pandas", "--scheduler", "tcp://h:1"]) == 1
    assert "--scheduler is for --engine dask" in capsys.readouterr().err
    assert cli.main(["fit", str(logs / "none" / "*.parquet"), *args[2:]]) == 1
    assert "no file matches" in capsys.readouterr().err
    assert cli.main([*args, "--engine", "duckdb", "--memory-limit", "lots"]) == 1
    assert "memory_limit='lots'" in capsys.readouterr().err
