"""Counting votes on a Dask cluster: each partition is counted where it lies.

:func:`dask_cells` turns a :class:`dask.dataframe.DataFrame` of votes into the
same :class:`~attnmodel.data.engines.VoteCells` as the DuckDB engine. Every
partition is checked and reduced to partial counts per (user, pair) on the
worker that holds it; the partial counts are summed pairwise in a tree on the
workers, and only the final counts (one row per (user, pair)) and the first
bad row of each check reach the caller. The vote rows never cross the network.

A bad row is named by its partition and its 0-based position in the partition.
Needs the ``dask[dataframe]`` and ``distributed`` packages (``attnmodel[dask]``).
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

from attnmodel.data.engines import VoteCells
from attnmodel.data.spellings import LABEL_HELP, TIE, WINNER_CODES, label_code, same_text_error
from attnmodel.errors import VoteDataError

__all__ = ["dask_cells", "read_dask"]

# A row's place: partition in the high bits, position in the partition below.
_ROW_BITS = 40

_KEYS = ["u", "lo", "hi"]
_SUMS = ["n", "a", "t"]


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _blank(col: pd.Series) -> np.ndarray:
    """Missing values and strings empty after stripping."""
    bad = col.isna().to_numpy().copy()
    if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
        text = col.map(lambda v: isinstance(v, str) and not v.strip(), na_action="ignore")
        bad |= text.fillna(False).to_numpy(dtype=bool)
    return bad


def _stripped(col: pd.Series) -> pd.Series:
    return col.map(lambda v: v.strip() if isinstance(v, str) else v, na_action="ignore")


def _problem(bad: np.ndarray, col: pd.Series | None, base: int) -> tuple | None:
    """(first row's place, count, value) of a check in one partition, or None."""
    if not bad.any():
        return None
    pos = int(np.argmax(bad))
    value = None if col is None else _plain(col.iloc[pos])
    return (base + pos, int(bad.sum()), value)


def _label_codes(col: pd.Series) -> np.ndarray:
    """0/1 for accepted label spellings, -1 otherwise."""
    if col.dtype.kind == "b":
        return col.to_numpy().astype(np.int8)
    if col.dtype.kind in "iuf":
        arr = col.to_numpy()
        return np.where(arr == 1, 1, np.where(arr == 0, 0, -1)).astype(np.int8)

    return np.fromiter((label_code(v) for v in col), dtype=np.int8, count=len(col))


def _partition(df: pd.DataFrame, k: int, layout: str, names: dict[str, Any]) -> tuple:
    """Partial counts and the problems of one partition."""
    base = k << _ROW_BITS
    problems: dict[str, tuple | None] = {}
    u = df[names["user"]]
    problems["user"] = _problem(_blank(u), u, base)
    first = base + np.arange(len(df), dtype=np.int64)
    if layout == "raw":
        ca, cb, cw = df[names["model_a"]], df[names["model_b"]], df[names["winner"]]
        bad_a, bad_b = _blank(ca), _blank(cb)
        problems["a"] = _problem(bad_a, ca, base)
        problems["b"] = _problem(bad_b, cb, base)
        a, b = _stripped(ca), _stripped(cb)
        same = ~bad_a & ~bad_b & (a.to_numpy() == b.to_numpy())
        problems["same"] = _problem(same, a, base)
        w = (
            _stripped(cw)
            .map(lambda v: WINNER_CODES.get(v, -1) if isinstance(v, str) else -1)
            .fillna(-1)
            .to_numpy(dtype=np.int64)
        )
        problems["winner"] = _problem(w < 0, cw, base)
        if names["ties"] == "error":
            problems["tie"] = _problem(w == TIE, cw, base)
        if any(problems.values()):
            return None, problems
        av, bv = a.to_numpy(dtype=object), b.to_numpy(dtype=object)
        a_first = np.array([str(x) < str(y) for x, y in zip(av, bv, strict=True)], dtype=bool)
        lo, hi = np.where(a_first, av, bv), np.where(a_first, bv, av)
        won_lo = ((w == 0) & a_first) | ((w == 1) & ~a_first)
        part = pd.DataFrame(
            {
                "u": u.to_numpy(),
                "lo": lo,
                "hi": hi,
                "n": (w != TIE).astype(np.int64),
                "a": won_lo.astype(np.int64),
                "t": (w == TIE).astype(np.int64),
                "first": first,
            }
        )
    else:
        z = _label_codes(df[names["z"]])
        problems["label"] = _problem(z < 0, df[names["z"]], base)
        if names["pair"] is not None:
            pc = df[names["pair"]]
            problems["pair"] = _problem(_blank(pc), pc, base)
            pair = pc.to_numpy()
        else:
            pair = np.zeros(len(df), dtype=np.int64)
        if any(problems.values()):
            return None, problems
        part = pd.DataFrame(
            {
                "u": u.to_numpy(),
                "lo": pair,
                "hi": np.zeros(len(df), dtype=np.int64),
                "n": np.ones(len(df), dtype=np.int64),
                "a": (z == 1).astype(np.int64),
                "t": np.zeros(len(df), dtype=np.int64),
                "first": first,
            }
        )
    return _reduce(part), problems


def _reduce(part: pd.DataFrame) -> pd.DataFrame:
    agg = {name: "sum" for name in _SUMS} | {"first": "min"}
    return part.groupby(_KEYS, sort=False, dropna=False).agg(agg).reset_index()


def _combine(x: tuple, y: tuple) -> tuple:
    """Sum two partial results; keep the first bad row of each check."""
    (cx, px), (cy, py) = x, y
    problems = {}
    for key in px.keys() | py.keys():
        a, b = px.get(key), py.get(key)
        if a is None or b is None:
            problems[key] = a or b
        else:
            lead = a if a[0] <= b[0] else b
            problems[key] = (lead[0], a[1] + b[1], lead[2])
    if cx is None or cy is None:
        # A partition with a bad row returns no counts: the read fails anyway.
        return None, problems
    return _reduce(pd.concat([cx, cy], ignore_index=True)), problems


def _raise(problems: dict, key: str, column: Hashable, text: str) -> None:
    found = problems.get(key)
    if not found:
        return
    place, count, value = found
    k, pos = place >> _ROW_BITS, place & ((1 << _ROW_BITS) - 1)
    more = f" ({count - 1} more rows like it)" if count > 1 else ""
    raise VoteDataError(
        f"column {column!r}, partition {k}, row {pos}, value {value!r}: {text}{more}",
        column=column,
        row=(int(k), int(pos)),
        value=value,
    )


def dask_cells(ddf: Any, layout: str, names: dict[str, Any], client: Any = None) -> VoteCells:
    """Check and count a Dask DataFrame of votes, partition by partition.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
    layout : {"raw", "oriented"}
    names : dict
        Column options (``user``, ``z``, ``pair``, ``model_a``, ``model_b``,
        ``winner``, ``ties``), as for :meth:`attnmodel.data.votes.VoteData.from_frame`.
    client : distributed.Client, optional
        Where to compute; default Dask's current scheduler.

    Returns
    -------
    VoteCells

    Raises
    ------
    VoteDataError
        A missing column or a bad row (named by partition and row).
    """
    import dask

    columns = list(ddf.columns)
    needed = [names["user"]] + (
        [names["model_a"], names["model_b"], names["winner"]]
        if layout == "raw"
        else [names["z"]] + ([names["pair"]] if names["pair"] is not None else [])
    )
    for name in needed:
        if name not in columns:
            raise VoteDataError(
                f"missing column {name!r}; available columns: {columns}", column=name
            )
    parts = [
        dask.delayed(_partition)(p, k, layout, names)
        for k, p in enumerate(ddf[needed].to_delayed())
    ]
    while len(parts) > 1:
        pairs = [
            dask.delayed(_combine)(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)
        ]
        parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
    if client is not None:
        cells, problems = client.compute(parts[0]).result()
    else:
        cells, problems = parts[0].compute()
    user = names["user"]
    _raise(problems, "user", user, "user id is missing")
    if layout == "raw":
        _raise(problems, "a", names["model_a"], "model name is missing")
        _raise(problems, "b", names["model_b"], "model name is missing")
        if problems.get("same"):
            place, _, value = problems["same"]
            k, pos = place >> _ROW_BITS, place & ((1 << _ROW_BITS) - 1)
            raise VoteDataError(
                f"partition {k}, row {pos}: columns {names['model_a']!r} and "
                f"{names['model_b']!r} are both {value!r}; a vote compares two different models",
                row=(int(k), int(pos)),
                value=value,
            )
        _raise(
            problems,
            "winner",
            names["winner"],
            f"unknown winner; expected one of {sorted(WINNER_CODES)}",
        )
        if names["ties"] == "error":
            _raise(problems, "tie", names["winner"], "tie votes are not allowed (ties='error')")
    else:
        _raise(problems, "label", names["z"], LABEL_HELP)
        if names["pair"] is not None:
            _raise(problems, "pair", names["pair"], "pair label is missing")
    if cells is None or len(cells) == 0:
        raise VoteDataError("the table has no rows")
    return _to_cells(cells, layout, columns, user)


def _to_cells(cells: pd.DataFrame, layout: str, columns: list, user: Hashable) -> VoteCells:
    """Number users and pairs in order of first appearance."""
    by_user = cells.groupby("u", sort=False, dropna=False).agg(
        first=("first", "min"), n=("n", "sum")
    )
    by_user = by_user.sort_values("first")
    users = pd.Index(by_user.index.to_numpy(), dtype=cells["u"].dtype)
    first = by_user["first"].to_numpy()

    def where(k: int) -> tuple[str, tuple[int, int]]:
        part, pos = int(first[k]) >> _ROW_BITS, int(first[k]) & ((1 << _ROW_BITS) - 1)
        return f"partition {part}, row {pos}", (part, pos)

    error = same_text_error(user, users, where)
    if error is not None:
        raise error
    has_votes = by_user["n"].to_numpy() > 0
    by_pair = cells.groupby(["lo", "hi"], sort=False).agg(first=("first", "min"), t=("t", "sum"))
    by_pair = by_pair.sort_values("first")
    kept_pos = pd.Series(np.cumsum(has_votes) - 1, index=by_user.index)
    pair_pos = pd.Series(np.arange(len(by_pair)), index=by_pair.index)
    voted = cells[cells["n"] > 0]
    cell_user = kept_pos.reindex(voted["u"]).to_numpy(dtype=np.int64)
    keys = pd.MultiIndex.from_frame(voted[["lo", "hi"]])
    cell_pair = pair_pos.reindex(keys).to_numpy(dtype=np.int64)
    if layout == "raw":
        pairs: Any = list(by_pair.index)
    else:
        pairs = pd.Index(by_pair.index.get_level_values(0).to_numpy())
    return VoteCells(
        layout=layout,
        users=users,
        user_has_votes=has_votes,
        pairs=pairs,
        pair_ties=by_pair["t"].to_numpy(dtype=np.int64),
        cell_user=cell_user,
        cell_pair=cell_pair,
        cell_n=voted["n"].to_numpy(dtype=np.int64),
        cell_a=voted["a"].to_numpy(dtype=np.int64),
        n_rows=int(cells["n"].sum() + cells["t"].sum()),
        columns=columns,
    )


def _literal_id_options(files: list[str], user: Hashable) -> dict[str, Any]:
    """``read_csv`` options under which only an empty ``user`` cell is missing.

    As in :func:`attnmodel.data.io.read_table`, a user called ``NA`` or
    ``null`` is a user; every other column keeps pandas' missing values.
    """
    from pandas.io.parsers.readers import STR_NA_VALUES

    from attnmodel.data.io import peek_columns

    columns = peek_columns(files[0]) or []
    if user not in columns:
        return {}
    missing = {c: sorted(STR_NA_VALUES) for c in columns}
    missing[user] = [""]
    return {"keep_default_na": False, "na_values": missing}


def read_dask(path: str | os.PathLike, user: Hashable = "user") -> Any:
    """A Dask DataFrame of a table file, glob or folder (io module's rules for ids).

    CSV user ids are read as strings, only an empty one missing (a user
    called ``NA`` is a user), and JSON values keep their types, as by
    :func:`attnmodel.data.io.read_table`.
    """
    import dask.dataframe as dd

    from attnmodel.data.io import expand_table_path

    kind, files = expand_table_path(path, "votes")
    names = [str(f) for f in files]
    if kind == "parquet":
        return dd.read_parquet(names)
    if kind == "csv":
        return dd.read_csv(
            names, dtype={user: str}, blocksize=None, **_literal_id_options(names, user)
        )
    import dask

    # Dask would turn a column of JSON values into text, 1 and "1" alike.
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.read_json(names, lines=True, dtype=False, blocksize=None)
