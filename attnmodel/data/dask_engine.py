"""Counting votes on a Dask cluster: each partition is counted where it lies.

:func:`dask_cells` turns a :class:`dask.dataframe.DataFrame` of votes into the
same :class:`~attnmodel.data.engines.VoteCells` as the DuckDB engine, in two
steps that run on the workers:

1. **Per partition**, the rows are checked and reduced to partial counts per
   (user, pair). A user is named by a 64-bit key, a hash of the user id
   (:func:`user_keys`), so the partial counts are integers: the user's key,
   the pair's place in the partition's small table of pairs, the votes and
   the votes won by the pair's first model. Each partition's distinct users
   (key, id, first row, votes) and its partial counts are split into
   ``buckets`` by key.
2. **Per bucket**, the pieces of every partition are merged: the users by key
   (two different ids with one key are a collision, and the whole count runs
   again with another hash key), the counts by (user, pair).

The caller receives, per partition, its checks (the first bad row of each) and
its pairs with their ties; per bucket, its users and its summed counts, the
user named by its place in the bucket. Users are numbered in order of first
appearance (partition, then row), as the DuckDB engine numbers them (file,
then row), and pairs likewise. What crosses the network is therefore the
partial counts of each partition (worker to worker), the summed counts and
the distinct users (worker to caller); the vote rows stay where they are read.

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
from attnmodel.data.spellings import (
    LABEL_HELP,
    TIE,
    WINNER_CODES,
    distinct_values,
    label_code,
    same_text_error,
)
from attnmodel.errors import VoteDataError

__all__ = ["HASH_KEYS", "dask_cells", "read_dask", "user_keys"]

# A row's place: partition in the high bits, position in the partition below.
_ROW_BITS = 40

#: Keys of the 64-bit hash of text user ids (:func:`user_keys`), tried in turn:
#: the next one only when two different ids of a log share a hash.
HASH_KEYS = ("attnmodel-user-0", "attnmodel-user-1", "attnmodel-user-2", "attnmodel-user-3")

# Buckets of users (and of their counts) merged in one task each.
_MAX_BUCKETS = 16

# Partitions whose pieces of a bucket are merged first, together.
_GROUP = 8


def _plain(v: Any) -> Any:
    """A Python value; pandas' NA (Dask's missing text) as the NaN pandas reads it as."""
    if v is pd.NA:
        return float("nan")
    return v.item() if isinstance(v, np.generic) else v


def _int_keys(values: np.ndarray) -> np.ndarray:
    """Keys of integers: a bijection of the 64-bit value (no two collide)."""
    from pandas.util import hash_array

    return hash_array(values.astype(np.int64, copy=False))


def _number_keys(values: np.ndarray) -> np.ndarray:
    """Keys of numbers: a whole float has its integer's key (7.0 is the user 7)."""
    from pandas.util import hash_array

    values = np.asarray(values)
    if values.dtype.kind in "biu":
        return _int_keys(values)
    values = values.astype(np.float64)
    whole = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2.0**63)
    keys = hash_array(values)
    if whole.any():
        keys[whole] = _int_keys(values[whole])
    return keys


def user_keys(ids: pd.Index, hash_key: str = HASH_KEYS[0]) -> np.ndarray:
    """A 64-bit key for each distinct user id, the same on every worker.

    Integers (and whole floats, so 7 and 7.0, one user to pandas, share a
    key) are mixed by a bijection of their 64 bits; text and any other
    value by SipHash of its text under ``hash_key``, a value that is not text
    tagged by its type so that ``1`` and ``"1"`` get different keys (and are
    refused later as two ids with one text). Keys of different ids can
    collide; :func:`dask_cells` checks every key against the ids.

    Parameters
    ----------
    ids : pd.Index
        Distinct ids, none missing.
    hash_key : str
        16 characters (:data:`HASH_KEYS`).

    Returns
    -------
    ndarray of uint64
    """
    from pandas.util import hash_array

    kind = ids.dtype.kind if isinstance(ids.dtype, np.dtype) else None
    if kind in ("b", "i", "u", "f"):
        return _number_keys(ids.to_numpy())
    values = np.asarray(ids, dtype=object)
    if pd.api.types.is_string_dtype(ids.dtype) and ids.dtype != object:
        return hash_array(values, hash_key=hash_key, categorize=False)
    is_text = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
    keys = np.empty(len(values), dtype=np.uint64)
    if is_text.any():
        keys[is_text] = hash_array(values[is_text], hash_key=hash_key, categorize=False)
    other = np.flatnonzero(~is_text)
    if other.size:
        number = np.fromiter(
            (isinstance(values[k], (int, float, np.integer, np.floating, np.bool_)) for k in other),
            dtype=bool,
            count=other.size,
        )
        if number.any():
            keys[other[number]] = _number_keys(
                np.array([float(values[k]) for k in other[number]], dtype=np.float64)
            )
        rest = other[~number]
        if rest.size:
            tagged = np.array([f"\0{type(values[k]).__name__}\0{values[k]}" for k in rest])
            keys[rest] = hash_array(tagged.astype(object), hash_key=hash_key, categorize=False)
    return keys


# ---------------------------------------------------------------------------
# one partition, on its worker


def _blank_values(uniques: pd.Index) -> np.ndarray:
    """Distinct values that are strings empty after stripping."""
    return np.fromiter(
        (isinstance(v, str) and not v.strip() for v in uniques), dtype=bool, count=len(uniques)
    )


def _bad_rows(codes: np.ndarray, bad_value: np.ndarray) -> np.ndarray:
    """Rows whose value is missing (code -1) or flagged in ``bad_value``."""
    bad = codes < 0
    if bad_value.any():
        bad |= bad_value[np.maximum(codes, 0)] & (codes >= 0)
    return bad


def _problem(bad: np.ndarray, col: pd.Series, base: int) -> tuple | None:
    """(first row's place, count, value) of a check in one partition, or None."""
    if not bad.any():
        return None
    pos = int(np.argmax(bad))
    return (base + pos, int(bad.sum()), _plain(col.iloc[pos]))


def _first_rows(codes: np.ndarray, n: int) -> np.ndarray:
    """The first row of each code in ``[0, n)`` (codes are in order of first appearance)."""
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(codes.size, dtype=np.int64))
    return first


def _split(keys: np.ndarray, buckets: int) -> list[np.ndarray]:
    """Positions of the rows of each bucket (``key % buckets``), each in its original order."""
    bucket = (keys % np.uint64(buckets)).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    edges = np.searchsorted(bucket[order], np.arange(buckets + 1))
    return [order[edges[b] : edges[b + 1]] for b in range(buckets)]


def _raw_rows(df: pd.DataFrame, names: dict[str, Any], base: int, problems: dict) -> tuple | None:
    """Pair identity, tie and win of every row, or None after a failed check.

    The checks run on the distinct values of each column. Returns
    ``(pair code per row, list of pair identities, tie per row, won-by-first per row)``.
    """
    ca, cb, cw = df[names["model_a"]], df[names["model_b"]], df[names["winner"]]
    code_a, uniq_a = distinct_values(ca)
    code_b, uniq_b = distinct_values(cb)
    bad_a = _bad_rows(code_a, _blank_values(uniq_a))
    bad_b = _bad_rows(code_b, _blank_values(uniq_b))
    problems["a"] = _problem(bad_a, ca, base)
    problems["b"] = _problem(bad_b, cb, base)
    # Model names stripped, numbered together; a pair is (lo, hi) in text order.
    stripped = [v.strip() if isinstance(v, str) else v for v in [*uniq_a, *uniq_b]]
    name_code, models = pd.factorize(pd.Series(stripped, dtype=object))
    to_a = np.asarray(name_code[: len(uniq_a)], dtype=np.int64)
    to_b = np.asarray(name_code[len(uniq_a) :], dtype=np.int64)
    na = np.where(code_a >= 0, to_a[np.maximum(code_a, 0)], -1)
    nb = np.where(code_b >= 0, to_b[np.maximum(code_b, 0)], -1)
    same = ~bad_a & ~bad_b & (na == nb)
    problems["same"] = _problem(same, ca, base)
    if problems["same"] is not None:  # the name, stripped, as the other readers give it
        place, count, value = problems["same"]
        problems["same"] = (place, count, value.strip() if isinstance(value, str) else value)
    code_w, uniq_w = distinct_values(cw)
    win_of = np.array(
        [WINNER_CODES.get(v.strip(), -1) if isinstance(v, str) else -1 for v in uniq_w] + [-1],
        dtype=np.int64,
    )
    w = win_of[code_w]  # code -1 (missing) takes the last entry, -1
    problems["winner"] = _problem(w < 0, cw, base)
    if names["ties"] == "error":
        problems["tie"] = _problem(w == TIE, cw, base)
    if any(problems.values()):
        return None
    texts = np.array([str(m) for m in models], dtype=object)
    rank = np.searchsorted(np.unique(texts), texts)
    a_first = rank[na] < rank[nb]
    lo, hi = np.where(a_first, na, nb), np.where(a_first, nb, na)
    pair_code, pair_key = pd.factorize(lo * len(models) + hi)
    pairs = [(_plain(models[k // len(models)]), _plain(models[k % len(models)])) for k in pair_key]
    won_lo = ((w == 0) & a_first) | ((w == 1) & ~a_first)
    return np.asarray(pair_code, dtype=np.int64), pairs, w == TIE, won_lo


def _oriented_rows(
    df: pd.DataFrame, names: dict[str, Any], base: int, problems: dict
) -> tuple | None:
    """As :func:`_raw_rows` for the oriented layout (a win is ``z = 1``)."""
    cz = df[names["z"]]
    if cz.dtype.kind in "biuf":
        arr = cz.to_numpy()
        z = np.where(arr == 1, 1, np.where(arr == 0, 0, -1)).astype(np.int8)
    else:
        code_z, uniq_z = distinct_values(cz)
        z = np.array([label_code(v) for v in uniq_z] + [-1], dtype=np.int8)[code_z]
    problems["label"] = _problem(z < 0, cz, base)
    if names["pair"] is not None:
        cp = df[names["pair"]]
        pair_code, labels = distinct_values(cp)
        problems["pair"] = _problem(_bad_rows(pair_code, _blank_values(labels)), cp, base)
        pairs = [_plain(v) for v in labels]
    else:
        pair_code, pairs = np.zeros(len(df), dtype=np.int64), [0]
    if any(problems.values()):
        return None
    return pair_code, pairs, np.zeros(len(df), dtype=bool), z == 1


def _partition(
    df: pd.DataFrame, k: int, layout: str, names: dict[str, Any], buckets: int, hash_key: str
) -> tuple:
    """Checks, pairs and partial counts of one partition, split into buckets.

    Returns ``(head, piece_0, ..., piece_{buckets-1})``: ``head`` holds the
    rows, the checks' first bad rows, and the pairs (identity, first row,
    ties); a piece holds the users of one bucket (key, id, first row, votes
    other than ties) and their partial counts (key, pair's place in the
    head's pairs, votes, votes won by the pair's first model).
    """
    base = k << _ROW_BITS
    problems: dict[str, tuple | None] = {}
    u = df[names["user"]]
    user_code, ids = distinct_values(u)
    problems["user"] = _problem(_bad_rows(user_code, _blank_values(ids)), u, base)
    rows = (_raw_rows if layout == "raw" else _oriented_rows)(df, names, base, problems)
    head = {"rows": len(df), "problems": problems, "pairs": [], "first": [], "ties": []}
    if rows is None or problems["user"] is not None:
        return (head, *([None] * buckets))
    pair_code, pairs, tie, won = rows
    head["pairs"] = pairs
    head["first"] = base + _first_rows(pair_code, len(pairs))
    head["ties"] = np.bincount(pair_code[tie], minlength=len(pairs)).astype(np.int64)
    keys = user_keys(ids, hash_key)
    first = base + _first_rows(user_code, len(ids))
    votes = ~tie
    user_votes = np.bincount(user_code[votes], minlength=len(ids)).astype(np.int32)
    # Partial counts: one per (user, pair) with a vote other than a tie.
    n_pairs = max(len(pairs), 1)
    cell_code, cell_key = pd.factorize(user_code[votes] * n_pairs + pair_code[votes])
    cell_code = np.asarray(cell_code, dtype=np.int64)
    cell_key = np.asarray(cell_key, dtype=np.int64)
    cell_n = np.bincount(cell_code, minlength=cell_key.size).astype(np.int32)
    cell_a = np.bincount(cell_code[won[votes]], minlength=cell_key.size).astype(np.int32)
    cell_user = cell_key // n_pairs
    cell_pair = (cell_key % n_pairs).astype(np.int32)
    pieces = []
    for users_b, cells_b in zip(
        _split(keys, buckets), _split(keys[cell_user], buckets), strict=True
    ):
        pieces.append(
            {
                "key": keys[users_b],
                "id": ids[users_b],
                "first": first[users_b],
                "votes": user_votes[users_b],
                "cell_key": keys[cell_user[cells_b]],
                "cell_pair": cell_pair[cells_b],
                "cell_n": cell_n[cells_b],
                "cell_a": cell_a[cells_b],
                "pairs": pairs,
                "collision": False,
            }
        )
    return (head, *pieces)


# ---------------------------------------------------------------------------
# one bucket, on its workers


def _merge(*pieces: dict | None) -> dict | None:
    """Pieces of one bucket as one piece: users summed by key, counts by (user, pair).

    A piece holds ``pairs`` (its pair identities), its users (``key``,
    ``id``, ``first``, ``votes``, sorted by key after a merge), their counts
    (``cell_key``, ``cell_pair`` into ``pairs``, ``cell_n``, ``cell_a``) and
    ``collision``: two different ids with one key.
    """
    got = [p for p in pieces if p is not None and p["key"].size]
    if not got:
        return None
    if len(got) == 1 and got[0].get("merged"):
        return got[0]
    place: dict = {}
    maps = [np.array([place.setdefault(q, len(place)) for q in p["pairs"]], np.int64) for p in got]
    key = np.concatenate([p["key"] for p in got])
    ids = got[0]["id"].append([p["id"] for p in got[1:]]) if len(got) > 1 else got[0]["id"]
    order = np.argsort(key, kind="stable")
    key = key[order]
    ids = ids.take(order)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    same_key = np.flatnonzero(key[1:] == key[:-1])
    collision = any(p["collision"] for p in got) or (
        bool(same_key.size)
        and not bool(np.all(np.asarray(ids.take(same_key + 1) == ids.take(same_key), dtype=bool)))
    )
    first = np.minimum.reduceat(np.concatenate([p["first"] for p in got])[order], starts)
    votes = np.add.reduceat(np.concatenate([p["votes"] for p in got])[order], starts)
    del order
    distinct = key[starts]
    cell_user = np.searchsorted(distinct, np.concatenate([p["cell_key"] for p in got]))
    cell_pair = np.concatenate([m[p["cell_pair"]] for p, m in zip(got, maps, strict=True)])
    n_pairs = max(len(place), 1)
    code, which = pd.factorize(cell_user * n_pairs + cell_pair)
    del cell_user, cell_pair
    which = np.asarray(which, dtype=np.int64)
    sums = {}
    for name in ("cell_n", "cell_a"):
        total = np.bincount(
            code, weights=np.concatenate([p[name] for p in got]), minlength=which.size
        )
        sums[name] = np.rint(total).astype(np.int64)
    return {
        "merged": True,
        "pairs": list(place),
        "key": distinct,
        "id": ids.take(starts),
        "first": first,
        "votes": votes,
        "cell_key": distinct[which // n_pairs],
        "cell_user": which // n_pairs,
        "cell_pair": (which % n_pairs).astype(np.int32),
        **sums,
        "collision": collision,
    }


def _bucket(*pieces: dict | None) -> tuple[dict, dict]:
    """The users of one bucket and their counts summed over the partitions.

    Returns ``(users, cells)``: ``users`` has each user's id, first row and
    votes, the bucket's pairs, its number of cells and ``collision``;
    ``cells`` has the user's place in ``users`` and the pair's place in the
    bucket's pairs, the votes and the votes won by the pair's first model.
    """
    piece = _merge(*pieces)
    if piece is None:
        return {"id": None, "pairs": [], "cells": 0, "collision": False}, {}
    users = {k: piece[k] for k in ("id", "first", "votes", "pairs", "collision")}
    if piece["collision"]:
        return {**users, "cells": 0}, {}
    n_users = piece["key"].size
    cells = {
        "user": piece["cell_user"].astype(np.int32 if n_users < 2**31 else np.int64),
        "pair": piece["cell_pair"],
        "n": piece["cell_n"],
        "a": piece["cell_a"],
    }
    return {**users, "cells": int(cells["n"].size)}, cells


# ---------------------------------------------------------------------------
# the caller


def _merge_problems(heads: list[dict]) -> dict:
    """The first bad row of each check over all partitions, with the count of bad rows."""
    problems: dict = {}
    for head in heads:
        for key, found in head["problems"].items():
            if found is None:
                continue
            seen = problems.get(key)
            if seen is None:
                problems[key] = found
            else:
                lead = seen if seen[0] <= found[0] else found
                problems[key] = (lead[0], seen[1] + found[1], lead[2])
    return problems


def _place(place: int) -> tuple[int, int]:
    return place >> _ROW_BITS, place & ((1 << _ROW_BITS) - 1)


def _raise(problems: dict, key: str, column: Hashable, text: str) -> None:
    found = problems.get(key)
    if not found:
        return
    place, count, value = found
    k, pos = _place(place)
    more = f" ({count - 1} more rows like it)" if count > 1 else ""
    raise VoteDataError(
        f"column {column!r}, partition {k}, row {pos}, value {value!r}: {text}{more}",
        column=column,
        row=(int(k), int(pos)),
        value=value,
    )


def _raise_problems(problems: dict, layout: str, names: dict[str, Any]) -> None:
    """Raise for the first failed check, in the order of the pandas reader."""
    _raise(problems, "user", names["user"], "user id is missing")
    if layout == "raw":
        _raise(problems, "a", names["model_a"], "model name is missing")
        _raise(problems, "b", names["model_b"], "model name is missing")
        if problems.get("same"):
            place, _, value = problems["same"]
            k, pos = _place(place)
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


class _Runner:
    """Computes a graph on a distributed client, or on Dask's current scheduler."""

    def __init__(self, client: Any) -> None:
        if client is None:
            try:
                from distributed import default_client

                client = default_client()
            except (ImportError, ValueError):
                client = None
        self.client = client

    def start(self, tasks: list) -> list:
        if self.client is not None:
            return self.client.compute(tasks)
        import dask

        return list(dask.compute(*tasks))

    def get(self, handles: list) -> list:
        if self.client is not None:
            return self.client.gather(handles)
        return handles

    def cancel(self, handles: list) -> None:
        """Stop what is still running (after an error) and let the workers drop the rest."""
        if self.client is not None and handles:
            self.client.cancel([h for h in handles if not h.done()])


def _count(ddf: Any, layout: str, names: dict, runner: _Runner, hash_key: str) -> tuple:
    """One pass: heads, bucket users and bucket cells (cells as handles, fetched later)."""
    import dask

    needed = _needed(layout, names)
    parts = ddf[needed].to_delayed()
    buckets = max(1, min(_MAX_BUCKETS, len(parts)))
    split = [
        dask.delayed(_partition, nout=buckets + 1, pure=True)(
            p, k, layout, names, buckets, hash_key
        )
        for k, p in enumerate(parts)
    ]
    heads = [s[0] for s in split]
    merged = []
    for b in range(buckets):
        pieces = [s[1 + b] for s in split]
        if len(pieces) > _GROUP:
            # Partitions' pieces are merged a group at a time, so a worker
            # drops a partition's pieces long before the last partition is read.
            pieces = [
                dask.delayed(_merge, pure=True)(*pieces[i : i + _GROUP])
                for i in range(0, len(pieces), _GROUP)
            ]
        merged.append(dask.delayed(_bucket, nout=2, pure=True)(*pieces))
    handles = runner.start(heads + [m[0] for m in merged] + [m[1] for m in merged])
    return (
        handles[: len(heads)],
        handles[len(heads) : len(heads) + buckets],
        handles[len(heads) + buckets :],
    )


def _needed(layout: str, names: dict[str, Any]) -> list:
    return [names["user"]] + (
        [names["model_a"], names["model_b"], names["winner"]]
        if layout == "raw"
        else [names["z"]] + ([names["pair"]] if names["pair"] is not None else [])
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
        Users and pairs in order of first appearance, as the DuckDB engine gives them.

    Raises
    ------
    VoteDataError
        A missing column or a bad row (named by partition and row).
    """
    columns = list(ddf.columns)
    for name in _needed(layout, names):
        if name not in columns:
            raise VoteDataError(
                f"missing column {name!r}; available columns: {columns}", column=name
            )
    runner = _Runner(client)
    for hash_key in HASH_KEYS:
        head_h, users_h, cells_h = _count(ddf, layout, names, runner, hash_key)
        try:
            heads = runner.get(head_h)
            problems = _merge_problems(heads)
            _raise_problems(problems, layout, names)
            if sum(h["rows"] for h in heads) == 0:
                raise VoteDataError("the table has no rows")
            buckets = runner.get(users_h)
            if any(b["collision"] for b in buckets):
                continue  # two ids share a key: count again with the next hash key
            return _to_cells(heads, buckets, cells_h, runner, layout, columns, names["user"])
        finally:
            runner.cancel([h for h in head_h + users_h + cells_h if h is not None])
    raise RuntimeError(f"user ids collide under every hash key of {HASH_KEYS}")


def _as_read(users: pd.Index) -> pd.Index:
    """The ids with the dtype pandas gives them when it reads them (as the other readers).

    Text is pandas' default string dtype whatever string dtype the partitions
    had, and a column of Python objects keeps the type its values share.
    """
    if pd.api.types.is_string_dtype(users.dtype) and users.dtype != object:
        return users.astype("str")
    if users.dtype == object:
        return pd.Index(users.to_numpy())
    return users


def _to_cells(
    heads: list[dict],
    buckets: list[dict],
    cells_h: list,
    runner: _Runner,
    layout: str,
    columns: list,
    user: Hashable,
) -> VoteCells:
    """Number users and pairs in order of first appearance; fetch the cells bucket by bucket."""
    # Pairs: first row and ties summed over the partitions.
    pair_first: dict = {}
    pair_ties: dict = {}
    for head in heads:
        for p, f, t in zip(head["pairs"], head["first"], head["ties"], strict=True):
            pair_first[p] = min(pair_first.get(p, f), f)
            pair_ties[p] = pair_ties.get(p, 0) + int(t)
    pairs = sorted(pair_first, key=pair_first.__getitem__)
    pair_place = {p: k for k, p in enumerate(pairs)}
    # Users: each bucket's in one block; all of them ordered by first row.
    kept = [b for b in buckets if b["id"] is not None and len(b["id"])]
    ids = kept[0]["id"].append([b["id"] for b in kept[1:]]) if len(kept) > 1 else kept[0]["id"]
    first = np.concatenate([b["first"] for b in kept])
    votes = np.concatenate([b["votes"] for b in kept])
    order = np.argsort(first, kind="stable")
    users = _as_read(ids.take(order))
    first = first[order]

    def where(k: int) -> tuple[str, tuple[int, int]]:
        part, pos = _place(int(first[k]))
        return f"partition {part}, row {pos}", (part, pos)

    error = same_text_error(user, users, where)
    if error is not None:
        raise error
    has_votes = votes[order] > 0
    del votes
    # A bucket's user j is users[rank[offset + j]]; cells name users with votes.
    position = np.cumsum(has_votes) - 1
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size, dtype=np.int64)
    to_kept = position[rank]
    del rank, order, position
    n_rows = sum(h["rows"] for h in heads)
    count_type = np.int32 if n_rows < 2**31 else np.int64
    user_type = np.int32 if users.size < 2**31 else np.int64
    total = sum(b["cells"] for b in buckets)
    out = {
        "user": np.empty(total, dtype=user_type),
        "pair": np.empty(total, dtype=np.int32),
        "n": np.empty(total, dtype=count_type),
        "a": np.empty(total, dtype=count_type),
    }
    done, offset = 0, 0
    for i, b in enumerate(buckets):
        if b["cells"]:
            (cells,) = runner.get([cells_h[i]])
            cells_h[i] = None  # the worker may drop it
            end = done + b["cells"]
            out["user"][done:end] = to_kept[offset + cells["user"]]
            place = np.array([pair_place[p] for p in b["pairs"]], dtype=np.int32)
            out["pair"][done:end] = place[cells["pair"]]
            out["n"][done:end] = cells["n"]
            out["a"][done:end] = cells["a"]
            done = end
            del cells
        if b["id"] is not None:
            offset += len(b["id"])
    if layout == "raw":
        pair_labels: Any = list(pairs)
    else:
        pair_labels = pd.Index(pairs)
    return VoteCells(
        layout=layout,
        users=users,
        user_has_votes=has_votes,
        pairs=pair_labels,
        pair_ties=np.array([pair_ties[p] for p in pairs], dtype=np.int64),
        cell_user=out["user"],
        cell_pair=out["pair"],
        cell_n=out["n"],
        cell_a=out["a"],
        n_rows=int(n_rows),
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
