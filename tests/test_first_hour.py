"""What a new user meets in the first hour (issue 11, "First hour").

The README's examples run as written (tests/test_doc_examples.py runs every block);
these tests hold the API behind them: the fitters refuse a table or a path with a
message naming the constructor, ``simulate_votes`` makes the same log as the
command line's ``simulate``, the figures say what they show, and the command line
and the API decide alike at a cut other than the fitted one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import attnmodel as am
from attnmodel.errors import VoteDataTypeError

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "MPLBACKEND": "Agg",
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}


def cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "attnmodel", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
        env=ENV,
    )


@pytest.fixture(scope="module")
def raw_votes():
    return am.simulate_votes(
        "beta", {"alpha": 3.0, "beta": 5.0}, 40, 20, mu=0.8, layout="raw", seed=1
    ).votes


# ---------------------------------------------------------------------------
# the fitters are given a table or a path


@pytest.mark.parametrize("fitter", ["fit_em", "fit"])
def test_a_dataframe_is_refused_naming_from_frame(raw_votes, fitter):
    with pytest.raises(VoteDataTypeError, match=r"VoteData\.from_frame\(df") as err:
        getattr(am, fitter)(raw_votes, "beta")
    assert isinstance(err.value, TypeError)
    assert str(err.value).startswith(f"{fitter}() needs VoteData, got a DataFrame")


@pytest.mark.parametrize("fitter", ["fit_em", "fit"])
def test_a_path_is_refused_naming_from_file(fitter, tmp_path):
    path = tmp_path / "votes.parquet"
    for given in (str(path), path):
        with pytest.raises(VoteDataTypeError, match=r"VoteData\.from_file\(") as err:
            getattr(am, fitter)(given, "beta")
        assert repr(str(path)) in str(err.value)


def test_simulated_votes_are_refused_naming_to_data():
    sim = am.simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 200, 30, seed=0)
    with pytest.raises(VoteDataTypeError, match=r"sim\.to_data\(\)"):
        am.fit_em(sim, "beta")
    assert am.fit_em(sim.to_data(), "beta", mu=0.8, n_init=1).converged_


# ---------------------------------------------------------------------------
# simulate_votes and the command line's simulate


def test_simulate_votes_with_texts_is_the_command_lines_log(tmp_path):
    """``simulate_votes(..., layout="raw", texts=True)`` writes what ``simulate --texts`` does."""
    proc = cli(
        "-q", "simulate", "--family", "beta", "--params", "alpha=3", "beta=5",
        "--users", 30, "--votes", "5..9", "--mu", 0.8, "--texts", "--seed", 7,
        "--out", tmp_path / "cli.csv", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sim = am.simulate_votes(
        "beta", {"alpha": 3, "beta": 5}, 30, (5, 9), mu=0.8, layout="raw", texts=True, seed=7
    )
    assert {"prompt", "response_a", "response_b"} <= set(sim.votes.columns)
    from_cli = pd.read_csv(tmp_path / "cli.csv", dtype={"user": str})
    pd.testing.assert_frame_equal(from_cli, sim.votes.reset_index(drop=True), check_dtype=False)
    # The answer shown first is model_a's, so that the texts follow each vote.
    first = sim.votes.iloc[0]
    assert first["response_a"].startswith(f"{first['model_a']}'s answer")
    # Without texts= the log has no text columns (the default stays as it was).
    plain = am.simulate_votes("beta", {"alpha": 3, "beta": 5}, 30, (5, 9), layout="raw", seed=7)
    assert "prompt" not in plain.votes.columns
