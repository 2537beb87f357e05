"""Tests for attnmodel.data.votes (VoteData) and attnmodel.errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from attnmodel.data.votes import VoteData
from attnmodel.errors import AttnmodelWarning, VoteDataError

MTBENCH = Path("/work/shared/data/mtbench_human_judgments.csv")


def raw_frame(rows, index=None):
    """Raw-layout frame from (user, model_a, model_b, winner) tuples."""
    return pd.DataFrame(rows, columns=["user", "model_a", "model_b", "winner"], index=index)


def oriented_frame(users, z, index=None, **extra):
    return pd.DataFrame({"user": users, "z": z, **extra}, index=index)


# --------------------------------------------------------------------------
# errors module


def test_error_types_and_attributes():
    err = VoteDataError("bad", column="c", row=3, value="x")
    assert isinstance(err, ValueError)
    assert str(err) == "bad"
    assert (err.column, err.row, err.value) == ("c", 3, "x")
    assert VoteDataError("plain").column is None
    assert issubclass(AttnmodelWarning, UserWarning)


# --------------------------------------------------------------------------
# oriented layout


@pytest.mark.parametrize(
    "z",
    [
        [1, 0, 1, 1],
        [True, False, True, True],
        [1.0, 0.0, 1.0, 1.0],
        ["1", "0", "1", "1"],
        pd.array([True, False, True, True], dtype="boolean"),
        pd.Series([1, 0, 1, 1], dtype="category"),
    ],
)
def test_oriented_accepts_label_spellings(z):
    data = VoteData.from_frame(oriented_frame(["b", "a", "b", "c"], z))
    assert data.layout == "oriented"
    assert list(data.users) == ["b", "a", "c"]  # order of first appearance
    assert data.users.name == "user"
    assert list(data.pairs) == ["A vs B"] and data.pairs.name == "pair"
    assert data.vote_z.dtype == np.int8
    assert data.vote_z.tolist() == [1, 0, 1, 1]
    assert data.vote_user.tolist() == [0, 1, 0, 2]
    n, s = data.user_counts()
    assert n["A vs B"].tolist() == [2, 1, 1]
    assert s["A vs B"].tolist() == [2, 0, 1]
    rep = data.report.loc["A vs B"]
    assert rep["designated_by"] == "input" and rep["stronger"] is None
    assert rep["win_rate"] == pytest.approx(0.75)


@pytest.mark.parametrize("bad", [2, 0.5, "yes", np.nan, -1])
def test_oriented_bad_label_names_column_row_value(bad):
    z = np.array([1, 0, bad, 1], dtype=object if isinstance(bad, str) else None)
    df = oriented_frame(["a", "b", "c", "d"], z, index=["r0", "r1", "r2", "r3"])
    with pytest.raises(VoteDataError) as info:
        VoteData.from_frame(df)
    msg = str(info.value)
    assert "'z'" in msg
    assert "row 2" in msg and "'r2'" in msg
    assert f"value {bad!r}:" in msg
    assert info.value.column == "z" and info.value.row == 2
    if bad == bad:  # NaN never equals itself
        assert info.value.value == bad


def test_oriented_bad_label_in_string_column():
    df = oriented_frame(["a", "b", "c"], pd.Series(["1", "0", "yes"], dtype="str"))
    with pytest.raises(VoteDataError, match=r"column 'z', row 2 .*'yes'"):
        VoteData.from_frame(df)


def test_oriented_pair_column():
    df = oriented_frame(["a", "a", "b", "b", "c"], [1, 0, 1, 1, 0], pair=["p", "q", "p", "p", "q"])
    data = VoteData.from_frame(df, pair="pair")
    assert list(data.pairs) == ["p", "q"]
    n, s = data.user_counts()
    assert n.loc["a"].tolist() == [1, 1] and s.loc["a"].tolist() == [1, 0]
    assert n.loc["b"].tolist() == [2, 0] and s.loc["b"].tolist() == [2, 0]
    assert data.report["n_votes"].tolist() == [3, 2]
    assert data.report["win_rate"].tolist() == pytest.approx([1.0, 0.0])


def test_oriented_unused_pair_column_warns():
    df = oriented_frame(["a", "b"], [1, 0], pair=["p", "q"])
    with pytest.warns(AttnmodelWarning, match="pair='pair'"):
        data = VoteData.from_frame(df)
    assert list(data.pairs) == ["A vs B"]


def test_oriented_missing_pair_label():
    df = oriented_frame(["a", "b", "c"], [1, 0, 1], pair=["p", None, "q"])
    with pytest.raises(VoteDataError, match=r"'pair', row 1"):
        VoteData.from_frame(df, pair="pair")


# --------------------------------------------------------------------------
# table-level errors


@pytest.mark.parametrize(
    ("kwargs", "drop", "missing"),
    [
        ({}, "user", "user"),
        ({"layout": "raw"}, "model_b", "model_b"),
        ({"layout": "raw"}, "winner", "winner"),
        ({"user": "judge"}, None, "judge"),
    ],
)
def test_missing_column_is_named_with_available_columns(kwargs, drop, missing):
    df = raw_frame([("u1", "x", "y", "model_a")])
    if drop:
        df = df.drop(columns=drop)
    with pytest.raises(VoteDataError) as info:
        VoteData.from_frame(df, **kwargs)
    msg = str(info.value)
    assert f"missing column {missing!r}" in msg
    assert "'model_a'" in msg  # lists what is available
    assert info.value.column == missing


def test_oriented_missing_z_column():
    with pytest.raises(VoteDataError, match="missing column 'z'"):
        VoteData.from_frame(pd.DataFrame({"user": ["a"]}), layout="oriented")


def test_layout_cannot_be_told():
    with pytest.raises(VoteDataError) as info:
        VoteData.from_frame(pd.DataFrame({"user": ["a"], "label": [1]}))
    msg = str(info.value)
    assert "'winner'" in msg and "'z'" in msg and "'label'" in msg


def test_empty_table():
    with pytest.raises(VoteDataError, match="no rows"):
        VoteData.from_frame(raw_frame([]))
    with pytest.raises(VoteDataError, match="no rows"):
        VoteData.from_frame(pd.DataFrame({"user": [], "z": []}))


def test_empty_after_dropping_ties():
    df = raw_frame([("u1", "x", "y", "tie"), ("u2", "x", "y", "tie (bothbad)")])
    with pytest.raises(VoteDataError, match="no votes left after dropping 2 ties"):
        VoteData.from_frame(df)


@pytest.mark.parametrize("missing", [None, np.nan, "", "  "])
def test_missing_user_id(missing):
    df = raw_frame(
        [("u1", "x", "y", "model_a"), ("u2", "x", "y", "model_b"), (missing, "x", "y", "model_a")],
        index=[10, 11, 12],
    )
    with pytest.raises(VoteDataError) as info:
        VoteData.from_frame(df)
    msg = str(info.value)
    assert "'user'" in msg and "row 2" in msg and "index label 12" in msg
    assert "missing" in msg
    assert info.value.row == 2


def test_missing_user_id_in_numeric_column():
    df = oriented_frame([1.0, np.nan, 3.0], [1, 0, 1])
    with pytest.raises(VoteDataError, match=r"'user', row 1 .*nan"):
        VoteData.from_frame(df)


def test_user_ids_with_colliding_text_forms():
    df = oriented_frame(pd.Series([1, "a", "1", 2], dtype=object), [1, 0, 1, 0])
    with pytest.raises(VoteDataError) as info:
        VoteData.from_frame(df)
    msg = str(info.value)
    assert "'user'" in msg
    assert "row 0" in msg and "row 2" in msg
    assert "1 (row 0" in msg and "'1' (row 2" in msg
    assert info.value.row == (0, 2)
    assert info.value.value == (1, "1")


def test_mixed_user_types_without_collision_are_kept():
    df = oriented_frame(pd.Series([1, "a", 2.5], dtype=object), [1, 0, 1])
    data = VoteData.from_frame(df)
    assert list(data.users) == [1, "a", 2.5]
    assert isinstance(data.users[0], int)


@pytest.mark.parametrize("bad", ["model_c", "Tie", "a", np.nan])
def test_unknown_winner(bad):
    df = raw_frame(
        [("u1", "x", "y", "model_a"), ("u2", "x", "y", bad), ("u3", "x", "y", "tie")],
        index=["a", "b", "c"],
    )
    with pytest.raises(VoteDataError) as info:
        VoteData.from_frame(df)
    msg = str(info.value)
    assert "'winner'" in msg and "row 1" in msg and "'b'" in msg
    assert repr(bad) in msg


def test_winner_whitespace_is_ignored():
    df = raw_frame([("u1", "x", "y", " model_a "), ("u2", "x", "y", "model_b\n")])
    data = VoteData.from_frame(df)
    assert data.n_votes == 2


def test_same_model_on_both_sides():
    df = raw_frame([("u1", "x", "y", "model_a"), ("u2", "gpt", "gpt", "model_b")])
    with pytest.raises(VoteDataError) as info:
        VoteData.from_frame(df)
    msg = str(info.value)
    assert "row 1" in msg and "'gpt'" in msg
    assert info.value.row == 1 and info.value.value == "gpt"


@pytest.mark.parametrize("column", ["model_a", "model_b"])
@pytest.mark.parametrize("missing", [None, ""])
def test_missing_model_name(column, missing):
    df = raw_frame([("u1", "x", "y", "model_a"), ("u2", "x", "y", "model_b")])
    df.loc[1, column] = missing
    with pytest.raises(VoteDataError) as info:
        VoteData.from_frame(df)
    msg = str(info.value)
    assert repr(column) in msg and "row 1" in msg and "missing" in msg


def test_ties_error_names_row():
    df = raw_frame([("u1", "x", "y", "model_a"), ("u2", "x", "y", "tie")])
    with pytest.raises(VoteDataError, match=r"'winner', row 1 .*'tie'"):
        VoteData.from_frame(df, ties="error")


def test_bad_arguments():
    df = raw_frame([("u1", "x", "y", "model_a")])
    with pytest.raises(ValueError, match="ties"):
        VoteData.from_frame(df, ties="keep")
    with pytest.raises(ValueError, match="layout"):
        VoteData.from_frame(df, layout="wide")
    with pytest.raises(TypeError):
        VoteData.from_frame(df.to_dict())


# --------------------------------------------------------------------------
# orientation of pairs


def test_orientation_by_win_rate():
    df = raw_frame(
        [
            ("u1", "a", "b", "model_b"),  # b wins
            ("u1", "b", "a", "model_a"),  # b wins
            ("u2", "a", "b", "model_a"),  # a wins
            ("u2", "b", "a", "model_a"),  # b wins
            ("u3", "a", "c", "model_a"),  # a wins
        ]
    )
    data = VoteData.from_frame(df)
    assert list(data.pairs) == ["b vs a", "a vs c"]
    rep = data.report
    assert rep.loc["b vs a", "stronger"] == "b" and rep.loc["b vs a", "weaker"] == "a"
    assert rep.loc["b vs a", "win_rate"] == pytest.approx(0.75)
    assert rep.loc["b vs a", "designated_by"] == "win rate"
    assert rep.loc["a vs c", "win_rate"] == 1.0
    assert data.vote_z.tolist() == [1, 1, 0, 1, 1]
    assert data.vote_pair.tolist() == [0, 0, 0, 0, 1]


def test_equal_win_rates_pick_alphabetically_first():
    df = raw_frame([("u1", "zeta", "alpha", "model_a"), ("u2", "zeta", "alpha", "model_b")])
    data = VoteData.from_frame(df)
    assert list(data.pairs) == ["alpha vs zeta"]
    assert data.report.loc["alpha vs zeta", "win_rate"] == 0.5
    assert data.vote_z.tolist() == [0, 1]


@pytest.mark.parametrize("key", [frozenset({"a", "b"}), ("a", "b"), ("b", "a"), "a vs b", "b vs a"])
def test_orientation_by_caller(key):
    df = raw_frame(
        [
            ("u1", "a", "b", "model_b"),
            ("u2", "a", "b", "model_b"),
            ("u3", "b", "a", "model_b"),
            ("u3", "b", "a", "model_a"),
            ("u3", "c", "a", "model_a"),
        ]
    )
    data = VoteData.from_frame(df, stronger={key: "a"})
    rep = data.report
    assert list(data.pairs) == ["a vs b", "c vs a"]
    assert rep.loc["a vs b", "designated_by"] == "caller"
    assert rep.loc["a vs b", "win_rate"] == pytest.approx(0.25)
    assert rep.loc["c vs a", "designated_by"] == "win rate"
    assert data.vote_z.tolist() == [0, 0, 1, 0, 1]


def test_caller_stronger_not_in_pair():
    df = raw_frame([("u1", "a", "b", "model_b")])
    with pytest.raises(VoteDataError, match=r"'c' is not a model of that pair"):
        VoteData.from_frame(df, stronger={("a", "b"): "c"})


def test_caller_key_for_absent_pair_warns():
    df = raw_frame([("u1", "a", "b", "model_b")])
    with pytest.warns(AttnmodelWarning, match="do not occur"):
        data = VoteData.from_frame(df, stronger={("a", "z"): "a"})
    assert data.report["designated_by"].tolist() == ["win rate"]


# --------------------------------------------------------------------------
# ties and dropped users


def test_ties_are_dropped_and_counted():
    df = raw_frame(
        [
            ("u1", "a", "b", "model_a"),
            ("u1", "a", "b", "tie"),
            ("u2", "b", "a", "tie (bothbad)"),
            ("u2", "a", "b", "model_b"),
            ("u2", "a", "c", "tie"),
            ("u3", "c", "a", "model_b"),
        ],
        index=list("pqrstu"),
    )
    data = VoteData.from_frame(df)
    assert data.n_ties_dropped == 3
    assert data.n_votes == 3
    assert list(data.votes.index) == ["p", "s", "u"]
    assert data.report.loc["a vs c", "n_ties"] == 1
    assert data.report["n_ties"].sum() == 3
    assert data.report["n_votes"].sum() == 3
    assert len(data.dropped_users) == 0


def test_user_with_only_ties_is_dropped_and_counted():
    df = raw_frame(
        [
            ("u1", "a", "b", "model_a"),
            ("only_ties", "a", "b", "tie"),
            ("u2", "a", "b", "model_b"),
            ("only_ties", "b", "a", "tie"),
        ]
    )
    data = VoteData.from_frame(df)
    assert list(data.users) == ["u1", "u2"]
    assert list(data.dropped_users) == ["only_ties"]
    assert data.n_ties_dropped == 2
    assert data.counts.n_users == 2
    assert data.rows_for_users(["only_ties"]).empty
    assert "only ties: 1" in data.summary()


def test_pair_with_only_ties_is_dropped_with_warning():
    df = raw_frame([("u1", "a", "b", "model_a"), ("u1", "c", "d", "tie"), ("u2", "a", "b", "tie")])
    with pytest.warns(AttnmodelWarning, match="only tie votes"):
        data = VoteData.from_frame(df)
    assert list(data.pairs) == ["a vs b"]
    assert data.n_ties_dropped == 2
    assert list(data.dropped_users) == ["u2"]


# --------------------------------------------------------------------------
# counts


def test_identical_users_share_a_count_row():
    users = ["a", "a", "b", "b", "c", "d", "d"]
    z = [1, 0, 0, 1, 1, 1, 1]
    data = VoteData.from_frame(oriented_frame(users, z))
    table = data.counts
    # a and b have (n=2, s=1); c has (1, 1); d has (2, 2).
    assert table.n_rows == 3
    assert table.user_row[0] == table.user_row[1]
    assert len(set(table.user_row.tolist())) == 3
    assert table.row_weight.sum() == 4
    assert table.row_weight[table.user_row[0]] == 2
    for i in range(4):
        r = table.user_row[i]
        sl = slice(table.row_ptr[r], table.row_ptr[r + 1])
        mine = data.vote_user == i
        assert table.entry_n[sl].sum() == mine.sum()
        assert table.entry_s[sl].sum() == data.vote_z[mine].sum()


def random_raw(seed, n_rows=4000, n_users=300, uniform=False):
    rng = np.random.default_rng(seed)
    models = np.array(["m0", "m1", "m2", "m3", "m4"])
    a = rng.integers(0, 5, n_rows)
    b = (a + rng.integers(1, 5, n_rows)) % 5
    winner = rng.choice(["model_a", "model_b", "tie"], n_rows, p=[0.45, 0.4, 0.15])
    if uniform:
        user = rng.integers(0, n_users, n_rows)
    else:
        # Unequal activity: a few heavy users and many rare ones sharing count rows.
        user = rng.zipf(1.6, n_rows) % n_users
    return pd.DataFrame(
        {
            "user": [f"u{k}" for k in user],
            "model_a": models[a],
            "model_b": models[b],
            "winner": winner,
            "extra": rng.random(n_rows),
        },
        index=pd.RangeIndex(100, 100 + n_rows),
    )


# Zipf-drawn users leave fewer (user, pair) cells than votes, uniform draws over
# 20000 ids more; VoteData counts the two cases differently.
@pytest.mark.parametrize(("seed", "uniform"), [(0, False), (1, False), (2, True)])
def test_user_counts_match_groupby(seed, uniform):
    df = random_raw(seed, n_users=20_000 if uniform else 300, uniform=uniform)
    data = VoteData.from_frame(df)
    assert (data.n_users * data.n_pairs > data.n_votes) == uniform
    kept = df[df["winner"] != "tie"]

    # Independent recomputation of each pair's stronger model by win rate.
    pair_key = [frozenset(t) for t in zip(kept["model_a"], kept["model_b"], strict=True)]
    won = np.where(kept["winner"] == "model_a", kept["model_a"], kept["model_b"])
    stronger = {}
    for key, grp in pd.Series(won, index=kept.index).groupby(pd.Series(pair_key, index=kept.index)):
        x, y = sorted(key)
        rate_x = (grp == x).mean()
        stronger[key] = x if rate_x >= 0.5 else y
    label = [f"{stronger[k]} vs {(set(k) - {stronger[k]}).pop()}" for k in pair_key]
    z = (won == np.array([stronger[k] for k in pair_key])).astype(int)
    frame = pd.DataFrame({"user": kept["user"].to_numpy(), "pair": label, "z": z})
    n_exp = frame.groupby(["user", "pair"]).size().unstack(fill_value=0)
    s_exp = frame.groupby(["user", "pair"])["z"].sum().unstack(fill_value=0)

    n, s = data.user_counts()
    assert set(n.columns) == set(n_exp.columns)
    assert set(n.index) == set(n_exp.index)
    pd.testing.assert_frame_equal(
        n.loc[n_exp.index, n_exp.columns], n_exp, check_names=False, check_dtype=False
    )
    pd.testing.assert_frame_equal(
        s.loc[s_exp.index, s_exp.columns], s_exp, check_names=False, check_dtype=False
    )
    assert (data.report["win_rate"] >= 0.5).all()
    assert data.n_ties_dropped == int((df["winner"] == "tie").sum())
    pd.testing.assert_series_equal(
        data.votes_per_user(), n.sum(axis=1).rename("n_votes"), check_dtype=False
    )
    assert data.counts.n_rows < data.n_users  # some users share rows

    # The per-vote arrays line up with the rows of `votes`.
    votes = data.votes
    assert list(votes.columns) == list(df.columns)
    assert (data.users[data.vote_user] == votes["user"].to_numpy()).all()
    assert (data.pairs[data.vote_pair] == np.array(label)).all()
    assert (data.vote_z == z).all()


def test_rows_for_users():
    df = random_raw(3, n_rows=500, n_users=40)
    data = VoteData.from_frame(df)
    who = [data.users[0], data.users[5]]
    rows = data.rows_for_users(who)
    expected = df[df["user"].isin(who) & (df["winner"] != "tie")]
    pd.testing.assert_frame_equal(rows, expected)
    first = data.users[0]
    pd.testing.assert_frame_equal(
        data.rows_for_users(first), df[(df["user"] == first) & (df["winner"] != "tie")]
    )
    with pytest.raises(KeyError, match="nobody"):
        data.rows_for_users(["nobody"])


# --------------------------------------------------------------------------
# from_counts


def test_from_counts_one_pair():
    n = np.array([3, 1, 3, 2])
    s = np.array([2, 1, 2, 0])
    data = VoteData.from_counts(n, s)
    assert list(data.users) == [0, 1, 2, 3]
    assert list(data.pairs) == ["A vs B"]
    assert data.votes is None and data.vote_z is None
    assert data.n_votes == 9
    assert data.counts.n_rows == 3
    assert data.counts.user_row[0] == data.counts.user_row[2]
    nn, ss = data.user_counts()
    assert nn["A vs B"].tolist() == n.tolist() and ss["A vs B"].tolist() == s.tolist()
    assert data.report.loc["A vs B", "win_rate"] == pytest.approx(5 / 9)
    with pytest.raises(VoteDataError, match="no vote rows"):
        data.rows_for_users([0])


def test_from_counts_many_pairs_with_labels():
    n = np.array([[1, 0, 2], [0, 3, 0]])
    s = np.array([[1, 0, 0], [0, 2, 0]])
    data = VoteData.from_counts(n, s, users=["x", "y"])
    assert list(data.pairs) == ["pair 0", "pair 1", "pair 2"]
    assert data.votes_per_user().to_dict() == {"x": 3, "y": 3}
    nn, ss = data.user_counts()
    assert (nn.to_numpy() == n).all() and (ss.to_numpy() == s).all()


@pytest.mark.parametrize(
    ("n", "s", "match"),
    [
        ([2, 1], [3, 0], r"user 'b' \(row 0\), pair 'A vs B': n=2, s=3"),
        ([2, 1], [1, -1], r"user 'c' \(row 1\).*s=-1"),
        ([2, 0], [1, 0], r"user 'c' \(row 1\) has no votes"),
        ([[2, 0], [0, 0]], [[1, 0], [0, 0]], r"user 'c' \(row 1\) has no votes"),
        ([2, 1], [1, 0, 0], "differ in shape"),
        ([2.5, 1], [1, 0], "not a whole number"),
    ],
)
def test_from_counts_errors(n, s, match):
    with pytest.raises(VoteDataError, match=match):
        VoteData.from_counts(np.array(n), np.array(s), users=["b", "c"])


# --------------------------------------------------------------------------
# files and input safety


def file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet", ".pq", ".jsonl", ".ndjson"])
def test_from_file_round_trip(tmp_path, suffix):
    df = random_raw(4, n_rows=300, n_users=30).reset_index(drop=True)
    path = tmp_path / f"votes{suffix}"
    if ".csv" in suffix:
        df.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    before = file_digest(path)

    data = VoteData.from_file(path)
    ref = VoteData.from_frame(df)
    assert file_digest(path) == before
    assert data.source == str(path)
    assert list(data.users) == list(ref.users)
    assert list(data.pairs) == list(ref.pairs)
    for got, want in zip(data.user_counts(), ref.user_counts(), strict=True):
        pd.testing.assert_frame_equal(got, want)
    assert list(data.votes.columns) == list(df.columns)
    assert f"from {path}" in data.summary()


def test_from_file_keeps_json_strings(tmp_path):
    path = tmp_path / "v.jsonl"
    path.write_text('{"user": "007", "z": 1}\n{"user": "7", "z": 0}\n')
    data = VoteData.from_file(path)
    assert list(data.users) == ["007", "7"]


def test_from_file_passes_options_and_prefixes_errors(tmp_path):
    path = tmp_path / "v.csv"
    pd.DataFrame({"judge": ["a", "b"], "label": [1, 3]}).to_csv(path, index=False)
    with pytest.raises(VoteDataError) as info:
        VoteData.from_file(path, user="judge", z="label")
    assert str(info.value).startswith(repr(str(path)))
    assert info.value.column == "label" and info.value.row == 1 and info.value.value == 3


def test_from_file_bad_paths(tmp_path):
    with pytest.raises(VoteDataError, match="unknown file type") as info:
        VoteData.from_file(tmp_path / "votes.xlsx")
    assert "votes.xlsx" in str(info.value)
    with pytest.raises(VoteDataError, match="no such file") as info:
        VoteData.from_file(tmp_path / "absent.csv")
    assert "absent.csv" in str(info.value)
    garbage = tmp_path / "bad.parquet"
    garbage.write_bytes(b"not parquet")
    with pytest.raises(VoteDataError, match="could not be read") as info:
        VoteData.from_file(garbage)
    assert "bad.parquet" in str(info.value)


@pytest.mark.parametrize("layout", ["raw", "oriented"])
def test_input_frame_is_not_modified(layout):
    if layout == "raw":
        df = random_raw(5, n_rows=200, n_users=20)
        df.loc[df.index[3], "model_a"] = " m1 "  # whitespace is stripped internally only
        df.loc[df.index[3], "model_b"] = "m2"
        kwargs = {}
    else:
        df = oriented_frame(
            pd.array(["a", "b", 3, "c"], dtype=object),
            pd.array(["1", "0", 1.0, True], dtype=object),
            pair=pd.Categorical(["p", "q", "p", "q"]),
            index=[9, 8, 7, 6],
        )
        kwargs = {"pair": "pair"}
    snapshot = df.copy(deep=True)
    data = VoteData.from_frame(df, **kwargs)
    pd.testing.assert_frame_equal(df, snapshot)
    # Writing into the result must not reach the caller's frame either.
    votes = data.votes
    votes.iloc[0, 0] = "changed"
    pd.testing.assert_frame_equal(df, snapshot)


# --------------------------------------------------------------------------
# the real MT-Bench file


@pytest.mark.skipif(not MTBENCH.exists(), reason="MT-Bench data file not present")
def test_mtbench_file_loads():
    data = VoteData.from_file(MTBENCH, user="user_id")
    assert data.layout == "raw"
    assert data.n_users == 65
    assert data.n_pairs == 15
    assert data.n_ties_dropped == 780
    assert data.n_votes == 3355 - 780
    assert len(data.votes) == 3355 - 780
    assert (data.report["win_rate"] >= 0.5).all()
    assert (data.report["designated_by"] == "win rate").all()
    assert data.report["n_ties"].sum() == 780
    assert data.votes_per_user().sum() == data.n_votes
    assert set(data.report["stronger"]) <= {
        "gpt-4",
        "gpt-3.5-turbo",
        "claude-v1",
        "vicuna-13b-v1.2",
        "alpaca-13b",
        "llama-13b",
    }
    assert (data.report.loc["gpt-4 vs llama-13b", "stronger"]) == "gpt-4"
    text = repr(data)
    assert "65 users" in text and "15 pairs" in text and "780 ties dropped" in text


def test_csv_user_ids_keep_leading_zeros(tmp_path):
    # "007" and "7" are different users; reading ids as numbers would merge them.
    path = tmp_path / "votes.csv"
    path.write_text("user_id,z\n007,1\n7,0\n007,1\n")
    data = VoteData.from_file(path, user="user_id")
    assert list(data.users) == ["007", "7"]
    assert data.votes_per_user().tolist() == [2, 1]
