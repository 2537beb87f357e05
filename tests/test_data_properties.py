"""Property-based tests of the data layer (hypothesis): what the counts may not depend on.

Any valid raw log gives per-user, per-pair counts; these must not change when the
rows are reordered, the models renamed, ``model_a``/``model_b`` swapped with the
winner swapped, the log split into two files (with users in both) and read back as
a folder, or the log written to CSV, Parquet or JSONL and read back. The distinct
count rows (what fitting iterates over) must expand to every user's counts and
carry each user once. An invalid cell is an error naming its column and row.

Counts are compared in a form that does not depend on which model of a pair
VoteData calls the stronger one (a pair with a 50% win rate may be read either
way): for each user and unordered pair of models, the votes each model won. The
reference is written again here from the rows with plain Python.
"""

from __future__ import annotations

import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import attnmodel as am
from attnmodel.errors import AttnmodelWarning

MODELS = ["gpt", "claude", "llama", "alpaca"]
USERS = ["u1", "u2", "NA", "007", "7", "zoe"]

# Fixed examples per run (derandomize): the suite is reproducible and its time bounded;
# the files written per example make the reading tests the slower ones.
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
FILE_SETTINGS = settings(SETTINGS, max_examples=12)


@st.composite
def raw_logs(draw) -> pd.DataFrame:
    """A raw log with at least one decided vote: user, model_a, model_b, winner."""
    n = draw(st.integers(1, 40))
    rows = []
    for _ in range(n):
        a, b = draw(st.permutations(MODELS))[:2]
        rows.append(
            (
                draw(st.sampled_from(USERS)),
                a,
                b,
                draw(st.sampled_from(["model_a", "model_b", "model_a", "model_b", "tie"])),
            )
        )
    frame = pd.DataFrame(rows, columns=["user", "model_a", "model_b", "winner"])
    assume((frame["winner"] != "tie").any())
    return frame


def reference_wins(frame: pd.DataFrame) -> Counter:
    """``{(user, frozenset({a, b}), model): wins}`` from the rows, ties left out."""
    wins: Counter = Counter()
    for user, a, b, winner in frame[["user", "model_a", "model_b", "winner"]].itertuples(
        index=False
    ):
        if winner == "tie":
            continue
        key = frozenset((a, b))
        won, lost = (a, b) if winner == "model_a" else (b, a)
        wins[(str(user), key, won)] += 1
        wins[(str(user), key, lost)] += 0
    return wins


def data_wins(data) -> Counter:
    """The same form from a VoteData (pair labels read ``stronger vs weaker``)."""
    n, s = data.user_counts()
    wins: Counter = Counter()
    for pair in data.pairs:
        strong, weak = str(pair).split(" vs ")
        for user in n.index:
            votes = int(n.loc[user, pair])
            if votes:
                key = frozenset((strong, weak))
                wins[(str(user), key, strong)] += int(s.loc[user, pair])
                wins[(str(user), key, weak)] += votes - int(s.loc[user, pair])
    return wins


def read(frame_or_path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttnmodelWarning)  # pairs or users with only ties
        if isinstance(frame_or_path, pd.DataFrame):
            return am.VoteData.from_frame(frame_or_path, **kwargs)
        return am.VoteData.from_file(frame_or_path, **kwargs)


@SETTINGS
@given(log=raw_logs())
def test_counts_are_those_of_the_rows(log):
    assert data_wins(read(log)) == reference_wins(log)


@SETTINGS
@given(log=raw_logs(), seed=st.integers(0, 2**32 - 1))
def test_reordering_rows_keeps_the_counts(log, seed):
    shuffled = log.sample(frac=1.0, random_state=np.random.RandomState(seed))
    assert data_wins(read(shuffled.reset_index(drop=True))) == data_wins(read(log))


@SETTINGS
@given(log=raw_logs(), names=st.permutations(["o1", "o2", "o3", "o4"]))
def test_renaming_models_renames_the_pairs_only(log, names):
    mapping = dict(zip(MODELS, names, strict=True))
    renamed = log.assign(model_a=log["model_a"].map(mapping), model_b=log["model_b"].map(mapping))
    back = {v: k for k, v in mapping.items()}
    got = Counter()
    for (user, pair, model), k in data_wins(read(renamed)).items():
        got[(user, frozenset(back[m] for m in pair), back[model])] += k
    assert got == data_wins(read(log))


@SETTINGS
@given(log=raw_logs(), flip=st.lists(st.booleans(), min_size=40, max_size=40))
def test_swapping_the_sides_with_the_winner_keeps_the_counts(log, flip):
    f = np.array(flip[: len(log)])
    swapped = log.copy()
    swapped.loc[f, "model_a"] = log.loc[f, "model_b"]
    swapped.loc[f, "model_b"] = log.loc[f, "model_a"]
    swapped.loc[f, "winner"] = log.loc[f, "winner"].map(
        {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
    )
    assert data_wins(read(swapped)) == data_wins(read(log))


@FILE_SETTINGS
@given(log=raw_logs(), cut=st.integers(0, 40), suffix=st.sampled_from([".csv", ".parquet"]))
def test_a_log_split_in_two_files_reads_as_the_whole(log, cut, suffix):
    """Users appear in both files; the folder reads as the concatenated log."""
    cut = min(cut, len(log))
    assume(0 < cut < len(log))
    whole = data_wins(read(log))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "logs"
        folder.mkdir()
        for k, part in enumerate((log.iloc[:cut], log.iloc[cut:])):
            path = folder / f"part-{k}{suffix}"
            if suffix == ".csv":
                part.to_csv(path, index=False)
            else:
                part.to_parquet(path, index=False)
        for engine in ("pandas", "duckdb"):
            assert data_wins(read(folder, engine=engine)) == whole, engine


@FILE_SETTINGS
@given(log=raw_logs(), suffix=st.sampled_from([".csv", ".parquet", ".jsonl"]))
def test_from_file_round_trips_from_frame(log, suffix):
    from_frame = read(log)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"votes{suffix}"
        if suffix == ".csv":
            log.to_csv(path, index=False)
        elif suffix == ".parquet":
            log.to_parquet(path, index=False)
        else:
            log.to_json(path, orient="records", lines=True)
        for engine in ("pandas", "duckdb"):
            got = read(path, engine=engine)
            assert [str(u) for u in got.users] == [str(u) for u in from_frame.users], engine
            assert list(got.pairs) == list(from_frame.pairs), engine
            assert data_wins(got) == data_wins(from_frame), engine


@SETTINGS
@given(log=raw_logs())
def test_distinct_rows_expand_to_every_users_counts(log):
    data = read(log)
    counts = data.counts
    n, s = counts.user_counts()
    # Every user once; each distinct row's weight is the number of users on it.
    assert counts.user_row.shape == (data.n_users,)
    np.testing.assert_array_equal(
        counts.row_weight, np.bincount(counts.user_row, minlength=counts.n_rows)
    )
    # Distinct rows are distinct, and every user's (n, s) is its row's.
    rows = {tuple(np.r_[n[j], s[j]]) for j in range(data.n_users)}
    assert len(rows) == counts.n_rows
    assert (counts.entry_n >= 1).all() and (counts.entry_s >= 0).all()
    assert (counts.entry_s <= counts.entry_n).all()
    assert int(n.sum()) == data.n_votes == int((log["winner"] != "tie").sum())


@SETTINGS
@given(
    log=raw_logs(),
    row=st.integers(0, 39),
    bad=st.sampled_from(
        [("winner", "model_c"), ("winner", None), ("user", None), ("model_b", "SAME")]
    ),
)
def test_an_invalid_cell_is_named_by_its_column_and_row(log, row, bad):
    row = row % len(log)
    column, value = bad
    broken = log.copy()
    if value == "SAME":
        value = broken.loc[row, "model_a"]
    broken[column] = broken[column].astype(object)
    broken.loc[row, column] = value
    with pytest.raises(am.VoteDataError) as err:
        read(broken)
    if bad[1] == "SAME":  # a fault of two columns together
        assert "columns 'model_a' and 'model_b' are both" in str(err.value)
    else:
        assert err.value.column == column
    first = err.value.row if np.isscalar(err.value.row) else min(np.atleast_1d(err.value.row))
    assert int(first) == row, str(err.value)
    assert f"row {row}" in str(err.value)
