"""Every engine of VoteData.from_file gives the same VoteData and the same errors.

The pandas reader (``engine="pandas"``: the whole table through
``VoteData.from_frame``) is the reference; DuckDB must agree with it field by
field, on random valid logs (hypothesis) and on every kind of bad input.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnmodel.data.votes import VoteData
from attnmodel.errors import AttnmodelWarning, VoteDataError

MTBENCH = Path("/work/shared/data/mtbench_human_judgments.csv")
COUNT_FIELDS = ("row_ptr", "entry_pair", "entry_n", "entry_s", "row_weight", "user_row")


def write(df: pd.DataFrame, path: Path) -> Path:
    name = path.name
    if ".csv" in name:
        df.to_csv(path, index=False)
    elif name.endswith((".parquet", ".pq")):
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    return path


def assert_same(got: VoteData, want: VoteData) -> None:
    """Field-by-field identity of two VoteData (index dtypes included)."""
    pd.testing.assert_index_equal(got.users, want.users, exact=True)
    pd.testing.assert_index_equal(got.pairs, want.pairs, exact=True)
    pd.testing.assert_frame_equal(got.report, want.report, check_exact=True)
    pd.testing.assert_index_equal(got.dropped_users, want.dropped_users, exact=True)
    for field in COUNT_FIELDS:
        a, b = getattr(got.counts, field), getattr(want.counts, field)
        assert a.dtype == b.dtype and np.array_equal(a, b), field
    assert got.counts.n_pairs == want.counts.n_pairs
    assert (got.n_ties_dropped, got.n_votes, got.layout) == (
        want.n_ties_dropped,
        want.n_votes,
        want.layout,
    )


def read_both(path: Path, **kwargs):
    """(result or error, warnings) of each engine."""
    out = []
    for engine in ("duckdb", "pandas"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AttnmodelWarning)
            try:
                res = VoteData.from_file(path, engine=engine, **kwargs)
            except VoteDataError as e:
                res = e
        out.append((res, sorted(str(w.message) for w in caught)))
    return out


# --------------------------------------------------------------------------
# random valid logs

USER_IDS = ["007", "7", "12", "0", "1e3", "alice", "bob", " carol", "Dave"]
MODELS = ["m1", "m2", " m3", "gpt-4", "b", "a"]
WINNERS = ["model_a", "model_b", "tie", "tie (bothbad)", " model_a", "model_b "]


@st.composite
def raw_logs(draw):
    n = draw(st.integers(1, 40))
    users = draw(st.lists(st.sampled_from(USER_IDS), min_size=n, max_size=n))
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(MODELS), st.sampled_from(MODELS)).filter(
                lambda ab: ab[0].strip() != ab[1].strip()
            ),
            min_size=n,
            max_size=n,
        )
    )
    winners = draw(st.lists(st.sampled_from(WINNERS), min_size=n, max_size=n))
    if all(w.strip().startswith("tie") for w in winners):
        winners[0] = "model_a"
    return pd.DataFrame(
        {
            "user": users,
            "model_a": [a for a, _ in pairs],
            "model_b": [b for _, b in pairs],
            "winner": winners,
        }
    )


@st.composite
def oriented_logs(draw):
    n = draw(st.integers(1, 40))
    users = draw(st.lists(st.sampled_from(USER_IDS), min_size=n, max_size=n))
    z = draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n))
    pair = draw(st.lists(st.sampled_from(["p", "q", "r s"]), min_size=n, max_size=n))
    return pd.DataFrame({"user": users, "z": z, "pair": pair})


SUFFIXES = [".csv", ".parquet", ".jsonl"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=raw_logs(), suffix=st.sampled_from(SUFFIXES), numeric=st.booleans())
def test_engines_agree_on_random_raw_logs(df, suffix, numeric):
    if numeric and suffix != ".csv":
        # Numbers stay numbers in Parquet and JSON; in CSV they are read as strings.
        df = df.assign(user=df["user"].map({u: k for k, u in enumerate(USER_IDS)}))
    with tempfile.TemporaryDirectory() as tmp:
        path = write(df, Path(tmp) / f"votes{suffix}")
        (got, got_w), (want, want_w) = read_both(path)
    if isinstance(want, VoteDataError):
        assert isinstance(got, VoteDataError) and str(got) == str(want)
        return
    assert not isinstance(got, Exception), got
    assert_same(got, want)
    assert got_w == want_w


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=oriented_logs(), suffix=st.sampled_from(SUFFIXES), use_pair=st.booleans())
def test_engines_agree_on_random_oriented_logs(df, suffix, use_pair):
    with tempfile.TemporaryDirectory() as tmp:
        path = write(df, Path(tmp) / f"votes{suffix}")
        (got, got_w), (want, want_w) = read_both(path, pair="pair" if use_pair else None)
    assert_same(got, want)
    assert got_w == want_w


def test_ties_and_swapped_models_count_as_the_pandas_reader(tmp_path):
    rows = [
        ("u1", "a", "b", "model_a"),
        ("u1", "b", "a", "model_b"),  # the same vote, the models swapped
        ("u2", "b", "a", "model_a"),
        ("u2", "a", "b", "tie"),
        ("u3", "a", "c", "tie (bothbad)"),  # u3 only ties, a vs c only ties
        ("u4", "c", "b", "model_b"),
    ]
    df = pd.DataFrame(rows, columns=["user", "model_a", "model_b", "winner"])
    path = write(df, tmp_path / "v.parquet")
    (got, got_w), (want, want_w) = read_both(path)
    assert_same(got, want)
    assert list(got.dropped_users) == ["u3"] and got.n_ties_dropped == 2
    assert list(got.pairs) == ["a vs b", "b vs c"]
    n, s = got.user_counts()
    assert n.loc["u1", "a vs b"] == 2 and s.loc["u1", "a vs b"] == 2
    assert n.loc["u2", "a vs b"] == 1 and s.loc["u2", "a vs b"] == 0
    assert got_w == want_w and any("only tie votes" in w for w in got_w)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("layout", ["raw", "oriented"])
def test_colliding_user_hashes_fall_back_to_the_ids(tmp_path, monkeypatch, suffix, layout):
    """Cells are grouped by a hash of the user id only when the hashes tell the users apart.

    A key with two values makes most users collide; grouping by it would merge
    their counts, so agreeing with pandas shows that the engine saw the
    collision and grouped by the ids themselves.
    """
    import attnmodel.data.engines as engines

    df = raw_with_everything(3)
    if layout == "oriented":
        rng = np.random.default_rng(3)
        df = pd.DataFrame({"user": df["user"], "z": rng.integers(0, 2, len(df)), "pair": "p"})
    path = write(df, tmp_path / f"v{suffix}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttnmodelWarning)
        want = VoteData.from_file(path, engine="pandas")
        monkeypatch.setattr(engines, "USER_KEY", "(hash({u}) % 2)")
        got = VoteData.from_file(path, engine="duckdb")
    assert want.n_users > 2
    assert_same(got, want)


@pytest.mark.parametrize("engine", ["duckdb", "pandas"])
def test_csv_user_ids_are_strings_in_every_engine(tmp_path, engine):
    path = tmp_path / "v.csv"
    path.write_text("user,z\n007,1\n7,0\n007,1\n")
    data = VoteData.from_file(path, engine=engine)
    assert list(data.users) == ["007", "7"]
    assert data.votes_per_user().tolist() == [2, 1]


@pytest.mark.skipif(not MTBENCH.exists(), reason="MT-Bench data file not present")
def test_engines_agree_on_the_mtbench_file():
    (got, got_w), (want, want_w) = read_both(MTBENCH, user="user_id")
    assert_same(got, want)
    assert got.n_users == 65 and got.n_ties_dropped == 780
    assert got_w == want_w


def test_auto_engine_reads_small_files_with_pandas_and_folders_with_duckdb(tmp_path):
    from attnmodel.data.engines import SMALL_FILE_BYTES, choose_engine

    small = write(pd.DataFrame({"user": ["a"], "z": [1]}), tmp_path / "small.csv")
    assert choose_engine(small) == "pandas"
    assert choose_engine(tmp_path) == "duckdb"
    big = tmp_path / "big.csv"
    big.write_text("user,z\n" + "a,1\n" * (SMALL_FILE_BYTES // 4 + 1))
    assert choose_engine(big) == "duckdb"


def test_json_ids_keep_their_types(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_text('{"user": 7, "z": 1}\n{"user": "007", "z": 0}\n{"user": 7, "z": 0}\n')
    (got, _), (want, _) = read_both(path)
    assert_same(got, want)
    assert list(got.users) == [7, "007"]


def test_vote_rows_are_read_when_asked_for(tmp_path):
    df = pd.DataFrame(
        {"user": ["a", "b", "a", "c"], "z": [1, 0, 0, 1], "extra": [1.5, 2.5, 3.5, 4.5]}
    )
    path = write(df, tmp_path / "v.parquet")
    data = VoteData.from_file(path, engine="duckdb")
    assert data._frame is None  # noqa: SLF001 - only counts were read
    pd.testing.assert_frame_equal(data.votes, df)
    assert data.vote_user.tolist() == [0, 1, 0, 2]
    assert data.vote_z.tolist() == [1, 0, 0, 1]
    assert data.rows_for_users("a")["extra"].tolist() == [1.5, 3.5]


# --------------------------------------------------------------------------
# bad input: the same message from every engine

BAD_RAW = {
    "missing user": [(None, "a", "b", "model_a")],
    "blank user": [("  ", "a", "b", "model_a")],
    "missing model_a": [("u", None, "b", "model_a")],
    "blank model_b": [("u", "a", " ", "model_a")],
    "same model": [("u", " a", "a ", "model_a")],
    "unknown winner": [("u", "a", "b", "Tie"), ("v", "a", "b", "draw")],
    "missing winner": [("u", "a", "b", None)],
    "only ties": [("u", "a", "b", "tie"), ("u", "a", "b", "tie")],
}


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("case", sorted(BAD_RAW))
def test_bad_raw_rows_give_the_same_error(tmp_path, suffix, case):
    good = [("g1", "a", "b", "model_b"), ("g2", "b", "a", "model_a")]
    rows = BAD_RAW[case] if case == "only ties" else good + BAD_RAW[case] + good
    df = pd.DataFrame(rows, columns=["user", "model_a", "model_b", "winner"])
    path = write(df, tmp_path / f"votes{suffix}")
    (got, _), (want, _) = read_both(path)
    assert isinstance(want, VoteDataError), want
    assert isinstance(got, VoteDataError), got
    assert str(got) == str(want)
    assert (got.column, got.row) == (want.column, want.row)
    assert str(path) in str(got)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("case", "kwargs"),
    [
        ("ties error", {"ties": "error"}),
        ("missing column", {"user": "judge"}),
        ("no layout", {"winner": "w", "z": "label"}),
    ],
)
def test_bad_options_give_the_same_error(tmp_path, suffix, case, kwargs):
    df = pd.DataFrame(
        [("u", "a", "b", "model_a"), ("v", "a", "b", "tie"), ("w", "a", "b", "tie")],
        columns=["user", "model_a", "model_b", "winner"],
    )
    path = write(df, tmp_path / f"votes{suffix}")
    (got, _), (want, _) = read_both(path, **kwargs)
    assert isinstance(got, VoteDataError) and isinstance(want, VoteDataError)
    assert str(got) == str(want)
    assert (got.column, got.row) == (want.column, want.row)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("z", "pair"), [([1, 0, 3, 1], ["p"] * 4), (["1", "0", "yes", "1"], ["p"] * 4)]
)
def test_bad_labels_give_the_same_error(tmp_path, suffix, z, pair):
    df = pd.DataFrame({"user": ["a", "b", "c", "d"], "z": z, "pair": pair})
    path = write(df, tmp_path / f"votes{suffix}")
    (got, _), (want, _) = read_both(path, pair="pair")
    assert isinstance(got, VoteDataError) and isinstance(want, VoteDataError)
    assert str(got) == str(want)
    assert (got.column, got.row, got.value) == (want.column, want.row, want.value)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_missing_pair_label_gives_the_same_error(tmp_path, suffix):
    df = pd.DataFrame({"user": ["a", "b", "c"], "z": [1, 0, 1], "pair": ["p", None, "q"]})
    path = write(df, tmp_path / f"votes{suffix}")
    (got, _), (want, _) = read_both(path, pair="pair")
    assert isinstance(got, VoteDataError) and isinstance(want, VoteDataError)
    assert str(got) == str(want)


def test_json_ids_with_one_text_are_refused(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_text('{"user": 1, "z": 1}\n{"user": "x", "z": 0}\n{"user": "1", "z": 0}\n')
    (got, _), (want, _) = read_both(path)
    assert isinstance(got, VoteDataError) and str(got) == str(want)
    assert got.row == want.row == (0, 2)


# --------------------------------------------------------------------------
# many files


def split_log(df: pd.DataFrame, folder: Path, parts: int = 3) -> list[Path]:
    paths = []
    for k, chunk in enumerate(np.array_split(np.arange(len(df)), parts)):
        sub = folder / f"date=2026-11-{k + 10}"
        sub.mkdir(parents=True)
        paths.append(write(df.iloc[chunk], sub / "part-0.parquet"))
    return paths


def test_glob_and_hive_folder_read_like_one_table(tmp_path):
    from tests.test_data import random_raw

    df = random_raw(3, n_rows=500, n_users=40).reset_index(drop=True)
    split_log(df, tmp_path / "logs")
    want = VoteData.from_frame(df)
    for path in (str(tmp_path / "logs" / "date=*" / "part-*.parquet"), tmp_path / "logs"):
        got = VoteData.from_file(path)
        assert_same(got, want)
        assert got.source == str(path)
        same_rows = VoteData.from_file(path, engine="pandas")
        assert_same(same_rows, want)


def test_error_in_a_partition_names_the_file_and_row(tmp_path):
    df = pd.DataFrame(
        {
            "user": ["a", "b", "c", "d", "e", "f"],
            "model_a": ["x", "x", "x", "x", "x", "x"],
            "model_b": ["y", "y", "y", "y", "y", "y"],
            "winner": ["model_a", "model_b", "model_a", "model_a", "bad", "model_a"],
        }
    )
    files = split_log(df, tmp_path / "logs", parts=3)
    with pytest.raises(VoteDataError) as info:
        VoteData.from_file(tmp_path / "logs")
    assert info.value.row == (str(files[2]), 0)
    assert f"file {str(files[2])!r}, row 0" in str(info.value)
    assert "value 'bad'" in str(info.value)


def test_empty_glob_and_mixed_formats_are_errors(tmp_path):
    with pytest.raises(VoteDataError, match="no file matches"):
        VoteData.from_file(tmp_path / "*.parquet")
    (tmp_path / "a.csv").write_text("user,z\na,1\n")
    pd.DataFrame({"user": ["b"], "z": [0]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(VoteDataError, match="several formats"):
        VoteData.from_file(tmp_path)


# --------------------------------------------------------------------------
# memory options


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_cells_in_batches_count_as_the_pandas_reader(tmp_path, monkeypatch, suffix):
    """Cells reach Python in batches and are renumbered and counted in blocks.

    Batches and blocks of 7 rows split users and pairs at many places; users
    whose votes are all ties (renumbered around) sit between the others.
    """
    from attnmodel.data import counts, engines

    rng = np.random.default_rng(13)
    rows = 600
    models = np.array(["a", "b", "c", "d"])
    ab = np.array([rng.choice(4, size=2, replace=False) for _ in range(rows)])
    df = pd.DataFrame(
        {
            "user": [f"u{k}" for k in rng.integers(0, 150, rows)],
            "model_a": models[ab[:, 0]],
            "model_b": models[ab[:, 1]],
            "winner": rng.choice(["model_a", "model_b", "tie"], rows, p=[0.45, 0.35, 0.2]),
        }
    )
    tie_only = df["user"].isin(["u3", "u70", "u140"])
    df.loc[tie_only, "winner"] = "tie"
    path = write(df, tmp_path / f"v{suffix}")
    want = VoteData.from_file(path, engine="pandas")
    monkeypatch.setattr(engines, "_BATCH_ROWS", 7)
    monkeypatch.setattr(counts, "_BLOCK", 7)
    got = VoteData.from_file(path, engine="duckdb")
    assert_same(got, want)
    assert len(got.dropped_users) >= 3 and got.counts.entry_n.size > 7


def test_memory_options_reach_duckdb(tmp_path):
    df = pd.DataFrame({"user": ["a", "b", "a"], "z": [1, 0, 1]})
    path = write(df, tmp_path / "v.parquet")
    spill = tmp_path / "spill"
    data = VoteData.from_file(
        path, engine="duckdb", memory_limit="200MB", temp_directory=spill, threads=1
    )
    assert_same(data, VoteData.from_frame(df))
    with pytest.raises(ValueError, match="memory_limit"):
        VoteData.from_file(path, engine="duckdb", memory_limit="plenty")


# --------------------------------------------------------------------------
# Dask


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def raw_with_everything(seed: int) -> pd.DataFrame:
    """A random raw log plus swapped models, a tie-only user and a tie-only pair."""
    from tests.test_data import random_raw

    df = random_raw(seed, n_rows=400, n_users=40).reset_index(drop=True)
    extra = pd.DataFrame(
        [("only-ties", "m1", "m2", "tie"), ("u1", "zz", "m1", "tie (bothbad)")],
        columns=["user", "model_a", "model_b", "winner"],
    )
    return pd.concat([df[extra.columns], extra], ignore_index=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("npartitions", [1, 3, 7])
def test_dask_counts_equal_the_pandas_reader(dask_client, seed, npartitions):
    dd = pytest.importorskip("dask.dataframe")
    df = raw_with_everything(seed)
    ddf = dd.from_pandas(df, npartitions=npartitions, sort=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttnmodelWarning)
        got = VoteData.from_dask(ddf, scheduler=dask_client)
        want = VoteData.from_frame(df)
    assert_same(got, want)
    assert "only-ties" in list(got.dropped_users)


def test_dask_oriented_with_numeric_ids_and_pairs(dask_client):
    dd = pytest.importorskip("dask.dataframe")
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {
            "user": rng.integers(0, 30, 300),
            "z": rng.integers(0, 2, 300),
            "pair": rng.choice(["p", "q", "r"], 300),
        }
    )
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    assert_same(
        VoteData.from_dask(ddf, pair="pair", scheduler=dask_client),
        VoteData.from_frame(df, pair="pair"),
    )


def test_dask_engine_reads_a_hive_folder(dask_client, tmp_path):
    df = raw_with_everything(4)
    split_log(df, tmp_path / "logs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttnmodelWarning)
        got = VoteData.from_file(tmp_path / "logs", engine="dask", scheduler=dask_client)
        duck = VoteData.from_file(tmp_path / "logs", engine="duckdb")
        want = VoteData.from_frame(df)
    assert_same(got, want)
    assert_same(duck, want)
    assert len(got.votes) == want.n_votes  # rows read with pandas when asked for


def test_dask_bad_row_names_partition_row_and_value(dask_client):
    dd = pytest.importorskip("dask.dataframe")
    df = pd.DataFrame(
        {
            "user": list("abcdef"),
            "model_a": ["x"] * 6,
            "model_b": ["y"] * 6,
            "winner": ["model_a", "model_b", "model_a", "model_a", "banana", "model_a"],
        }
    )
    ddf = dd.from_pandas(df, npartitions=3, sort=False)
    with pytest.raises(VoteDataError) as info:
        VoteData.from_dask(ddf, scheduler=dask_client)
    assert info.value.row == (2, 0) and info.value.value == "banana"
    assert "column 'winner', partition 2, row 0, value 'banana'" in str(info.value)
    with pytest.raises(VoteDataError, match="missing column 'judge'"):
        VoteData.from_dask(ddf, user="judge", scheduler=dask_client)


# --------------------------------------------------------------------------
# the documented warehouse recipe


def test_warehouse_sql_recipe_gives_the_counts_of_the_reader():
    import duckdb

    df = raw_with_everything(9).rename(columns={"user": "user_id"})
    sql = (Path(__file__).resolve().parents[1] / "docs" / "warehouse_counts.sql").read_text()
    con = duckdb.connect()
    con.register("votes", df)
    counts = con.sql(sql).df()
    n = counts.pivot(index="user_id", columns="pair", values="n").fillna(0).astype("int64")
    s = counts.pivot(index="user_id", columns="pair", values="s").reindex_like(n)
    data = VoteData.from_counts(
        n.to_numpy(), s.fillna(0).astype("int64").to_numpy(), users=n.index, pairs=n.columns
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttnmodelWarning)
        want = VoteData.from_frame(df, user="user_id")
    got_n, got_s = data.user_counts()
    want_n, want_s = want.user_counts()
    order = (want_n.index, want_n.columns)
    pd.testing.assert_frame_equal(
        got_n.loc[order].rename_axis(index="user", columns="pair"), want_n, check_names=False
    )
    pd.testing.assert_frame_equal(
        got_s.loc[order].rename_axis(index="user", columns="pair"), want_s, check_names=False
    )


def test_dask_same_model_on_both_sides(dask_client):
    dd = pytest.importorskip("dask.dataframe")
    df = pd.DataFrame(
        {"user": ["a", "b", "c"], "model_a": ["x", "x", " y"], "model_b": ["y", "y", "y "]}
    ).assign(winner="model_a")
    with pytest.raises(VoteDataError) as info:
        VoteData.from_dask(dd.from_pandas(df, npartitions=2, sort=False), scheduler=dask_client)
    assert info.value.row == (1, 0) and info.value.value == "y"
    assert "partition 1, row 0: columns 'model_a' and 'model_b' are both 'y'" in str(info.value)


def test_dask_refuses_ids_of_two_types_with_one_text(dask_client, tmp_path):
    """1 and "1" are refused by Dask too, each named by its partition and row."""
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    df = pd.DataFrame({"user": pd.Series([1, "x", "1", 2], dtype=object), "z": [1, 0, 0, 1]})
    want = "are different values with the same text '1'; give the column a single type"
    # Dask turns object columns into text unless told not to (then 1 and "1" merge).
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(df, npartitions=2, sort=False)
    with pytest.raises(VoteDataError, match=want) as err:
        VoteData.from_dask(ddf, scheduler=dask_client)
    assert "user ids 1 (partition 0, row 0) and '1' (partition 1, row 0)" in str(err.value)
    assert err.value.row == ((0, 0), (1, 0)) and err.value.value == (1, "1")
    path = tmp_path / "v.jsonl"
    path.write_text('{"user": 1, "z": 1}\n{"user": "x", "z": 0}\n{"user": "1", "z": 0}\n')
    with pytest.raises(VoteDataError, match=want) as err:
        VoteData.from_file(path, engine="dask", scheduler=dask_client)
    assert err.value.row == ((0, 0), (0, 2))


# --------------------------------------------------------------------------
# Dask against the other engines on the same logs


def read_with_dask(path: Path, client, **kwargs):
    """(result or error, warnings) of ``engine="dask"``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AttnmodelWarning)
        try:
            res = VoteData.from_file(path, engine="dask", scheduler=client, **kwargs)
        except VoteDataError as e:
            res = e
    return res, sorted(str(w.message) for w in caught if issubclass(w.category, AttnmodelWarning))


def assert_same_error(got, want) -> None:
    """The same error, a row named by its partition where pandas names it by its index.

    One file is one partition, so ``partition 0, row 3`` is pandas'
    ``row 3 (index label 3)``.
    """
    import re

    assert isinstance(want, VoteDataError), want
    assert isinstance(got, VoteDataError), got
    text = re.sub(r"partition 0, row (\d+)", r"row \1 (index label \1)", str(got))
    assert text == str(want)
    row = got.row[1] if isinstance(got.row, tuple) and len(got.row) == 2 else got.row
    if isinstance(got.row, tuple) and isinstance(got.row[0], tuple):  # two rows
        row = tuple(r[1] for r in got.row)
    assert (got.column, row) == (want.column, want.row)
    assert got.value == want.value or (got.value != got.value and want.value != want.value)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=raw_logs(), suffix=st.sampled_from(SUFFIXES), numeric=st.booleans())
def test_dask_agrees_on_random_raw_logs(dask_client, df, suffix, numeric):
    if numeric and suffix != ".csv":
        df = df.assign(user=df["user"].map({u: k for k, u in enumerate(USER_IDS)}))
    with tempfile.TemporaryDirectory() as tmp:
        path = write(df, Path(tmp) / f"votes{suffix}")
        (duck, _), (want, want_w) = read_both(path)
        got, got_w = read_with_dask(path, dask_client)
    if isinstance(want, VoteDataError):
        assert_same_error(got, want)
        return
    assert not isinstance(got, Exception), got
    assert_same(got, want)
    assert_same(got, duck)
    assert got_w == want_w


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=oriented_logs(), suffix=st.sampled_from(SUFFIXES), use_pair=st.booleans())
def test_dask_agrees_on_random_oriented_logs(dask_client, df, suffix, use_pair):
    pair = "pair" if use_pair else None
    with tempfile.TemporaryDirectory() as tmp:
        path = write(df, Path(tmp) / f"votes{suffix}")
        (_, _), (want, want_w) = read_both(path, pair=pair)
        got, got_w = read_with_dask(path, dask_client, pair=pair)
    assert_same(got, want)
    assert got_w == want_w


@pytest.mark.skipif(not MTBENCH.exists(), reason="MT-Bench data file not present")
@pytest.mark.parametrize("npartitions", [1, 6])
def test_dask_agrees_on_the_mtbench_file(dask_client, npartitions):
    """The MT-Bench file through Dask, as one partition or cut into 6, equals DuckDB's read."""
    dd = pytest.importorskip("dask.dataframe")
    duck = VoteData.from_file(MTBENCH, user="user_id", engine="duckdb")
    if npartitions == 1:
        got, _ = read_with_dask(MTBENCH, dask_client, user="user_id")
    else:
        df = pd.read_csv(MTBENCH, dtype={"user_id": str})
        ddf = dd.from_pandas(df, npartitions=npartitions, sort=False)
        assert ddf.npartitions == npartitions
        got = VoteData.from_dask(ddf, user="user_id", scheduler=dask_client)
    assert_same(got, duck)
    assert got.n_users == 65 and got.n_ties_dropped == 780


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("case", sorted(BAD_RAW))
def test_dask_bad_raw_rows_give_the_same_error(dask_client, tmp_path, suffix, case):
    good = [("g1", "a", "b", "model_b"), ("g2", "b", "a", "model_a")]
    rows = BAD_RAW[case] if case == "only ties" else good + BAD_RAW[case] + good
    df = pd.DataFrame(rows, columns=["user", "model_a", "model_b", "winner"])
    path = write(df, tmp_path / f"votes{suffix}")
    (_, _), (want, _) = read_both(path)
    got, _ = read_with_dask(path, dask_client)
    assert_same_error(got, want)
    assert str(path) in str(got)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_dask_bad_labels_and_pairs_give_the_same_error(dask_client, tmp_path, suffix):
    for z, pair in (([1, 0, 3, 1], ["p"] * 4), (["1", "0", "yes", "1"], ["p"] * 4)):
        df = pd.DataFrame({"user": ["a", "b", "c", "d"], "z": z, "pair": pair})
        path = write(df, tmp_path / f"labels{suffix}")
        (_, _), (want, _) = read_both(path, pair="pair")
        assert_same_error(read_with_dask(path, dask_client, pair="pair")[0], want)
    df = pd.DataFrame({"user": ["a", "b", "c"], "z": [1, 0, 1], "pair": ["p", None, "q"]})
    path = write(df, tmp_path / f"pairs{suffix}")
    (_, _), (want, _) = read_both(path, pair="pair")
    assert_same_error(read_with_dask(path, dask_client, pair="pair")[0], want)


def test_dask_json_ids_keep_their_types(dask_client, tmp_path):
    """Mixed id types: 7 and "007" are two users; 7 in one file and 7.0 in another are one."""
    path = tmp_path / "v.jsonl"
    path.write_text('{"user": 7, "z": 1}\n{"user": "007", "z": 0}\n{"user": 7, "z": 0}\n')
    (_, _), (want, _) = read_both(path)
    got, _ = read_with_dask(path, dask_client)
    assert_same(got, want)
    assert list(got.users) == [7, "007"]
    dd = pytest.importorskip("dask.dataframe")
    parts = [pd.DataFrame({"user": [7, 8], "z": [1, 0]}), pd.DataFrame({"user": [7.0], "z": [1]})]
    ddf = dd.from_delayed([__import__("dask").delayed(p) for p in parts], meta=parts[0])
    got = VoteData.from_dask(ddf, scheduler=dask_client)
    assert list(got.users) == [7, 8] and got.votes_per_user().tolist() == [2, 1]


def dask_and_pandas(df: pd.DataFrame, npartitions: int, client) -> tuple:
    """``from_dask`` on ``df`` cut into partitions, and ``from_frame`` on ``df``."""
    dd = pytest.importorskip("dask.dataframe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttnmodelWarning)
        ddf = dd.from_pandas(df, npartitions=npartitions, sort=False)
        return VoteData.from_dask(ddf, scheduler=client), VoteData.from_frame(df)


def test_dask_colliding_user_keys_count_again_with_another_key(dask_client, monkeypatch):
    """Under the first hash key every id gets one of two keys; the count must notice and redo.

    Merging users by a colliding key would merge their counts, so agreeing
    with pandas shows that the collision was seen and the next key used.
    """
    import attnmodel.data.dask_engine as dask_engine

    real = dask_engine.user_keys
    used = []

    def colliding(ids, hash_key=dask_engine.HASH_KEYS[0]):
        used.append(hash_key)
        keys = real(ids, hash_key)
        return keys % np.uint64(2) if hash_key == dask_engine.HASH_KEYS[0] else keys

    monkeypatch.setattr(dask_engine, "user_keys", colliding)  # in-process workers see it
    got, want = dask_and_pandas(raw_with_everything(11), 5, dask_client)
    assert_same(got, want)
    assert want.n_users > 2 and set(used) == set(dask_engine.HASH_KEYS[:2])


@pytest.mark.parametrize(("group", "buckets"), [(2, 1), (2, 3), (3, 16)])
def test_dask_partial_counts_merged_in_groups_and_buckets(dask_client, monkeypatch, group, buckets):
    """Pieces merged two or three partitions at a time, into 1, 3 or 16 buckets, count alike."""
    import attnmodel.data.dask_engine as dask_engine

    monkeypatch.setattr(dask_engine, "_GROUP", group)
    monkeypatch.setattr(dask_engine, "_MAX_BUCKETS", buckets)
    got, want = dask_and_pandas(raw_with_everything(12), 9, dask_client)
    assert_same(got, want)


def test_compiled_cell_counting_matches_a_numpy_reference():
    """The DuckDB reader's compiled counting: hashes looked up, votes counted per (user, pair).

    Random 64-bit keys, skewed votes per user (some users on every one of
    40 pairs, some with no vote) in random order; the reference counts with
    numpy's unique and add.at, independently of the compiled passes.
    """
    from attnmodel.data import grouping as g

    rng = np.random.default_rng(11)
    m, n_pairs, votes = 300, 40, 20_000
    keys = np.unique(rng.integers(0, 2**64, m + 10, dtype=np.uint64))[:m]
    keys = rng.permutation(keys)
    user = rng.choice(m - 5, votes, p=rng.dirichlet(np.full(m - 5, 0.3)))  # last 5: no votes
    pair = rng.integers(0, n_pairs, votes)
    win = rng.integers(0, 2, votes)

    slot_pos = np.empty(g.table_size(keys.size), dtype=np.int32)  # as the reader makes it
    slot_key, shift = g.key_table(keys, slot_pos)
    found = np.empty(votes, dtype=np.int32)
    assert g.look_up_keys(slot_key, slot_pos, shift, keys[user], found)
    np.testing.assert_array_equal(found, user)
    absent = np.setdiff1d(rng.integers(0, 2**64, 50, dtype=np.uint64), keys)
    assert not g.look_up_keys(slot_key, slot_pos, shift, absent, np.empty(absent.size, np.int64))

    start = np.zeros(m + 1, dtype=np.int64)
    start[1:] = np.cumsum(np.bincount(found, minlength=m))
    by_user = g.codes_by_user(found, (2 * pair + win).astype(np.int16), start)
    per_user = np.empty(m, dtype=np.int64)
    none = np.empty(0, dtype=np.int64)
    g.user_cells(by_user, start, n_pairs, 7, False, per_user, none, none, none, none, none)
    cell_start = np.concatenate([[0], np.cumsum(per_user)])
    out = [np.empty(cell_start[-1], dtype=np.int32) for _ in range(4)]
    g.user_cells(by_user, start, n_pairs, 7, True, none, cell_start, *out)

    cells, inverse = np.unique(user * n_pairs + pair, return_inverse=True)
    n = np.zeros(cells.size, dtype=np.int64)
    a = np.zeros(cells.size, dtype=np.int64)
    np.add.at(n, inverse, 1)
    np.add.at(a, inverse, win)
    assert per_user.max() == n_pairs and per_user[-5:].sum() == 0
    np.testing.assert_array_equal(out[0], cells // n_pairs)
    np.testing.assert_array_equal(out[1], cells % n_pairs)
    np.testing.assert_array_equal(out[2], n)
    np.testing.assert_array_equal(out[3], a)


def _numba_start_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "attnmodel-numba-start"]


def test_numba_start_thread_ends_with_the_read(tmp_path):
    """A DuckDB read starts Numba in a thread beside its scans and joins it, on success and error.

    A thread left running past the read could still be importing when the
    interpreter shuts down; a read that fails must not leave one either.
    """
    import time

    import attnmodel.data.engines as engines

    started = []
    real = engines._start_counting_load
    real_load = engines._load_counting

    def slow_load():
        # Slower than these small reads, so a thread not joined would still be running.
        time.sleep(0.5)
        real_load()

    def spy():
        thread = real()
        started.append(thread)
        return thread

    good = write(raw_with_everything(4), tmp_path / "good.parquet")
    oriented = tmp_path / "oriented.csv"
    oriented.write_text("user,z\nu1,1\nu2,0\nu1,1\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("user,model_a,model_b,winner\nu1,a,b,model_a\nu2,a,a,model_b\n")
    unreadable = tmp_path / "unreadable.parquet"
    unreadable.write_text("not parquet")
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore", AttnmodelWarning)
        mp.setattr(engines, "_start_counting_load", spy)
        mp.setattr(engines, "_load_counting", slow_load)
        data = VoteData.from_file(good, engine="duckdb")
        assert VoteData.from_file(oriented, engine="duckdb").n_users == 2
        with pytest.raises(VoteDataError, match="both 'a'"):
            VoteData.from_file(bad, engine="duckdb")
        with pytest.raises(VoteDataError, match="could not be read as parquet"):
            VoteData.from_file(unreadable, engine="duckdb")
    assert data.n_users > 0
    assert len(started) == 4
    assert not any(t.is_alive() for t in started)
    assert _numba_start_threads() == []


def test_numba_start_failure_is_silent_and_leaves_the_read_its_error(monkeypatch, capsys):
    """A warm-up that fails says nothing: the cells' own first use reports any real error."""
    import attnmodel.data.engines as engines
    import attnmodel.data.grouping as grouping

    def broken(*args):
        raise RuntimeError("no compiled code")

    monkeypatch.setattr(grouping, "key_table", broken)
    assert engines._load_counting() is None
    out, err = capsys.readouterr()
    assert out == "" and err == ""
