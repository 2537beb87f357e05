"""Vote tables: validation, orientation of model pairs, per-user counts.

Two table layouts are understood:

``"raw"``
    One row per vote as a comparison product logs it: who voted (``user``),
    the two models shown (``model_a``, ``model_b``) and the ``winner``
    (``"model_a"``, ``"model_b"`` or a tie). Every unordered model pair is its
    own pair with its own win rate; one of its models is designated the
    stronger one, and a vote's label ``z`` is 1 when it went to that model.
``"oriented"``
    One row per vote that is already labelled: ``user``, ``z`` (1 = the pair's
    stronger model preferred) and optionally a ``pair`` label.

Per-row checks run on the distinct values of a column (``pd.factorize``) rather
than on every row, so checking costs one hashing pass per column and no Python
loop over rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping
from os import PathLike
from typing import Any, Literal

import numpy as np
import pandas as pd

from attnmodel.data.counts import CountTable, collapse_counts, collapse_taken_counts, pair_sums
from attnmodel.data.io import read_table
from attnmodel.data.spellings import (
    COLUMN_DEFAULTS,
    LABEL_HELP,
    SINGLE_PAIR_LABEL,
    TIE,
    WINNER_CODES,
    distinct_values,
    label_code,
    same_text_error,
)
from attnmodel.errors import AttnmodelWarning, TableFileError, VoteDataError, VoteDataTypeError

__all__ = ["VoteData", "TIE_OPTIONS", "require_vote_data"]

#: What to do with tie votes: leave them out, refuse them, or keep them as evidence.
TIE_OPTIONS = ("drop", "error", "model")


# ---------------------------------------------------------------------------
# helpers on columns


def _plain(v: Any) -> Any:
    """Python scalar for a numpy scalar, so messages read 3 rather than np.int64(3)."""
    return v.item() if isinstance(v, np.generic) else v


def _where(df: pd.DataFrame, pos: int) -> str:
    return f"row {pos} (index label {_plain(df.index[pos])!r})"


def _column(df: pd.DataFrame, name: Hashable) -> pd.Series:
    if name not in df.columns:
        raise VoteDataError(
            f"missing column {name!r}; available columns: {list(df.columns)}", column=name
        )
    col = df[name]
    if isinstance(col, pd.DataFrame):
        # Two columns with one name: which one holds the data is a guess.
        raise VoteDataError(
            f"column {name!r} appears {col.shape[1]} times; column names must be unique",
            column=name,
        )
    return col


def _blank_strings(uniques: pd.Index) -> np.ndarray:
    """Flag distinct values that are strings empty after stripping."""
    if len(uniques) == 0:
        return np.zeros(0, dtype=bool)
    if uniques.dtype == object:
        if pd.api.types.infer_dtype(uniques, skipna=True) != "string":
            return np.fromiter(
                (isinstance(v, str) and not v.strip() for v in uniques),
                dtype=bool,
                count=len(uniques),
            )
        return np.asarray(uniques.str.strip() == "", dtype=bool)
    if pd.api.types.is_string_dtype(uniques.dtype):
        return np.asarray(uniques.str.strip() == "", dtype=bool)
    return np.zeros(len(uniques), dtype=bool)


def _bad_rows_error(
    df: pd.DataFrame, column: Hashable, col: pd.Series, bad: np.ndarray, problem: str
) -> VoteDataError:
    positions = np.flatnonzero(bad)
    pos = int(positions[0])
    value = _plain(col.iloc[pos])
    more = f" ({positions.size - 1} more rows like it)" if positions.size > 1 else ""
    return VoteDataError(
        f"column {column!r}, {_where(df, pos)}, value {value!r}: {problem}{more}",
        column=column,
        row=pos,
        value=value,
    )


def _label_codes(
    df: pd.DataFrame, column: Hashable, what: str
) -> tuple[pd.Series, np.ndarray, pd.Index]:
    """The column, its codes and labels; rows whose label is missing or blank are an error."""
    col = _column(df, column)
    codes, uniques = distinct_values(col)
    bad = codes < 0
    blank = _blank_strings(uniques)
    if blank.any():
        bad |= blank[codes]
    if bad.any():
        raise _bad_rows_error(df, column, col, bad, f"{what} is missing")
    return col, codes, uniques


def _user_codes(df: pd.DataFrame, column: Hashable) -> tuple[np.ndarray, pd.Index]:
    _, codes, uniques = _label_codes(df, column, "user id")

    def where(k: int) -> tuple[str, int]:
        row = int(np.argmax(codes == k))
        return _where(df, row), row

    error = same_text_error(column, uniques, where)
    if error is not None:
        raise error
    return codes, uniques


def _labels01(df: pd.DataFrame, column: Hashable) -> np.ndarray:
    col = _column(df, column)
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        arr = col.to_numpy()
        if dtype.kind != "b":
            bad = (arr != 0) & (arr != 1)  # NaN fails both comparisons
            if bad.any():
                raise _bad_rows_error(df, column, col, bad, LABEL_HELP)
        return arr.astype(np.int8)
    codes, uniques = distinct_values(col)
    # The trailing -1 is what code -1 (a missing value) looks up.
    lookup = np.array([label_code(v) for v in uniques] + [-1], dtype=np.int8)
    z = lookup[codes]
    bad = z < 0
    if bad.any():
        raise _bad_rows_error(df, column, col, bad, LABEL_HELP)
    return z


def _winner_codes(df: pd.DataFrame, column: Hashable) -> np.ndarray:
    col = _column(df, column)
    codes, uniques = distinct_values(col)
    lookup = np.array(
        [WINNER_CODES.get(v.strip(), -1) if isinstance(v, str) else -1 for v in uniques] + [-1],
        dtype=np.int8,
    )
    w = lookup[codes]
    bad = w < 0
    if bad.any():
        raise _bad_rows_error(
            df, column, col, bad, f"unknown winner; expected one of {sorted(WINNER_CODES)}"
        )
    return w


def _model_codes(
    df: pd.DataFrame, columns: tuple[Hashable, Hashable]
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Model index per row for each of the two model columns, and the model names."""
    ids: dict[Any, int] = {}
    out = []
    for column in columns:
        col = _column(df, column)
        codes, uniques = distinct_values(col)
        lookup = np.full(len(uniques) + 1, -1, dtype=np.int64)
        for k, v in enumerate(uniques):
            # Stray whitespace would otherwise split one model into two.
            name = v.strip() if isinstance(v, str) else v
            if not (isinstance(name, str) and not name):
                lookup[k] = ids.setdefault(name, len(ids))
        g = lookup[codes]
        if (g < 0).any():
            raise _bad_rows_error(df, column, col, g < 0, "model name is missing")
        out.append(g)
    return out[0], out[1], list(ids)


def _norm_name(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def _caller_stronger(
    stronger: Mapping[Any, Any],
    models: list[Any],
    pair_lo: np.ndarray,
    pair_hi: np.ndarray,
) -> dict[int, int]:
    """Resolve the caller's designations to {pair index: stronger model index}."""
    by_set: dict[frozenset[Any], int] = {}
    by_label: dict[str, int] = {}
    for p, (a, b) in enumerate(zip(pair_lo, pair_hi, strict=True)):
        by_set[frozenset((models[a], models[b]))] = p
        by_label[f"{models[a]} vs {models[b]}"] = p
        by_label[f"{models[b]} vs {models[a]}"] = p
    model_id = {m: i for i, m in enumerate(models)}
    chosen: dict[int, int] = {}
    unknown = []
    for key, value in stronger.items():
        if isinstance(key, str):
            p = by_label.get(key.strip())
        elif isinstance(key, (frozenset, set, tuple, list)) and len(key) == 2:
            p = by_set.get(frozenset(_norm_name(k) for k in key))
        else:
            raise VoteDataError(
                f"stronger: key {key!r} is neither a pair of two model names nor a pair label",
                value=key,
            )
        if p is None:
            unknown.append(key)
            continue
        a, b = int(pair_lo[p]), int(pair_hi[p])
        g = model_id.get(_norm_name(value), -1)
        if g not in (a, b):
            raise VoteDataError(
                f"stronger[{key!r}] = {value!r} is not a model of that pair "
                f"({models[a]!r}, {models[b]!r})",
                value=value,
            )
        if chosen.get(p, g) != g:
            raise VoteDataError(
                f"stronger names both {models[a]!r} and {models[b]!r} for the same pair",
                value=value,
            )
        chosen[p] = g
    if unknown:
        warnings.warn(
            f"stronger: {len(unknown)} key(s) name pairs that do not occur in the votes "
            f"and were ignored: {unknown[:5]!r}",
            AttnmodelWarning,
            stacklevel=4,
        )
    return chosen


def _options(**kwargs: Any) -> dict[str, Any]:
    """The column options of :meth:`VoteData.from_frame` with their defaults, checked."""
    unknown = sorted(set(kwargs) - set(COLUMN_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown column options {unknown}; known: {sorted(COLUMN_DEFAULTS)}")
    names = {**COLUMN_DEFAULTS, **kwargs}
    ties, layout, stronger = names["ties"], names["layout"], names["stronger"]
    if ties not in TIE_OPTIONS:
        raise ValueError(f"ties must be 'drop', 'error' or 'model', got {ties!r}")
    if layout not in (None, "raw", "oriented"):
        raise ValueError(f"layout must be 'raw', 'oriented' or None, got {layout!r}")
    if layout == "oriented" and stronger is not None:
        raise ValueError("stronger applies to the raw layout only")
    return names


def _engine_ties(names: dict[str, Any], engine: str) -> None:
    """The out-of-core engines count ties per pair, not per user: refuse ``ties="model"``."""
    if names["ties"] == "model":
        raise VoteDataError(
            f"ties='model' needs the ties of every user and pair, which the {engine} engine "
            "does not count; read the votes with engine='pandas' (the default for "
            "ties='model')",
            value=engine,
        )


def _layout_of(
    columns: list[Any],
    layout: str | None,
    user: Hashable,
    z: Hashable,
    model_a: Hashable,
    model_b: Hashable,
    winner: Hashable,
) -> str:
    """The layout asked for, or the one the columns show."""
    if layout is None:
        if winner in columns:
            layout = "raw"
        elif z in columns:
            layout = "oriented"
        else:
            raise VoteDataError(
                f"cannot tell the layout: there is neither a {winner!r} column (raw "
                f"layout, with {user!r}, {model_a!r}, {model_b!r}) nor a {z!r} column "
                f"(oriented layout, with {user!r}); available columns: {columns}"
            )
    if layout not in ("raw", "oriented"):
        raise ValueError(f"layout must be 'raw', 'oriented' or None, got {layout!r}")
    return layout


def _designate(
    models: list[Any],
    pair_lo: np.ndarray,
    pair_hi: np.ndarray,
    n_votes: np.ndarray,
    n_ties: np.ndarray,
    lo_wins: np.ndarray,
    stronger: Mapping[Any, Any] | None,
) -> tuple[np.ndarray, np.ndarray, pd.Index, pd.DataFrame]:
    """Designate each pair's stronger model; the pairs kept and their report.

    Parameters
    ----------
    models : list
        Model names; ``pair_lo``/``pair_hi`` index it (the two models of each pair).
    n_votes, n_ties, lo_wins : ndarray of int, shape (P_all,)
        Per pair: votes other than ties, ties, and votes won by ``pair_lo``.
    stronger : mapping or None
        The caller's designations (see :meth:`VoteData.from_frame`).

    Returns
    -------
    strong : ndarray of int64, shape (P_all,)
        Index of the stronger model of each pair.
    has_votes : ndarray of bool, shape (P_all,)
        Pairs kept (those with votes other than ties).
    pairs : pd.Index, shape (P,)
        Labels ``"stronger vs weaker"`` of the kept pairs.
    report : pd.DataFrame
        The per-pair report of :class:`VoteData`, without its index.
    """
    n_all = len(n_votes)
    # Integer comparisons: 2 * wins vs votes decides the majority exactly.
    strong = np.where(2 * lo_wins >= n_votes, pair_lo, pair_hi)
    for p in np.flatnonzero(2 * lo_wins == n_votes):
        a, b = models[pair_lo[p]], models[pair_hi[p]]
        strong[p] = pair_lo[p] if str(a) <= str(b) else pair_hi[p]
    designated_by = np.full(n_all, "win rate", dtype=object)
    if stronger is not None:
        for p, g in _caller_stronger(stronger, models, pair_lo, pair_hi).items():
            strong[p] = g
            designated_by[p] = "caller"
    weak = pair_lo + pair_hi - strong
    strong_wins = np.where(strong == pair_lo, lo_wins, n_votes - lo_wins)

    if not n_votes.any():
        raise VoteDataError(f"no votes left after dropping {int(n_ties.sum())} ties")
    has_votes = n_votes > 0
    if not has_votes.all():
        # Named as a kept pair would be (the alphabetically first model first).
        gone = [f"{models[strong[p]]} vs {models[weak[p]]}" for p in np.flatnonzero(~has_votes)]
        shown = ", ".join(repr(g) for g in gone[:5])
        more = f" and {len(gone) - 5} more" if len(gone) > 5 else ""
        warnings.warn(
            f"{len(gone)} pair(s) have only tie votes and were left out: {shown}{more}",
            AttnmodelWarning,
            stacklevel=4,
        )
    kept = np.flatnonzero(has_votes)
    labels = [f"{models[strong[p]]} vs {models[weak[p]]}" for p in kept]
    pairs = pd.Index(labels)
    if not pairs.is_unique:
        raise VoteDataError(
            f"pair labels {pairs[pairs.duplicated()].tolist()} are not unique; "
            "model names containing ' vs ' make labels ambiguous"
        )
    report = pd.DataFrame(
        {
            "stronger": [models[strong[p]] for p in kept],
            "weaker": [models[weak[p]] for p in kept],
            "n_votes": n_votes[kept].astype(np.int64),
            "n_ties": n_ties[kept].astype(np.int64),
            "win_rate": strong_wins[kept] / n_votes[kept],
            "designated_by": designated_by[kept].tolist(),
        }
    )
    return strong, has_votes, pairs, report


# ---------------------------------------------------------------------------


class VoteData:
    """Validated votes and their per-(user, pair) counts.

    Build one with :meth:`from_frame`, :meth:`from_file` or :meth:`from_counts`.
    With ``m`` users, ``P`` pairs and ``N`` votes used for fitting:

    Attributes
    ----------
    users : pd.Index, shape (m,)
        User ids in order of first appearance, with their original values and
        types; named ``"user"``.
    pairs : pd.Index, shape (P,)
        Pair labels; named ``"pair"``.
    counts : CountTable
        Per-user counts collapsed to distinct count rows; user ``i`` of
        ``users`` is user ``i`` of the table.
    votes : pd.DataFrame or None, shape (N, columns of the input)
        The input rows used for fitting (ties dropped), every input column and
        the original index (taken on first access); None when built from counts.
    vote_user, vote_pair : ndarray of int64, shape (N,) or None
        Position of each vote's user in ``users`` and pair in ``pairs``.
    vote_z : ndarray of int8, shape (N,) or None
        1 when the vote went to the pair's stronger model, else 0.
    report : pd.DataFrame, shape (P, 6)
        Indexed by pair label; columns ``stronger``, ``weaker`` (model names,
        None unless the raw layout), ``n_votes`` (non-tie votes), ``n_ties``,
        ``win_rate`` (of the stronger model over non-tie votes) and
        ``designated_by`` (``"win rate"``, ``"caller"`` or ``"input"``).
    n_ties_dropped : int
        Tie votes left out.
    dropped_users : pd.Index
        Users left out because all their votes were ties.
    layout : {"raw", "oriented", "counts"}
        How the data came in.
    source : str or None
        Path of the file read, if any.
    """

    def __init__(
        self,
        *,
        users: pd.Index,
        pairs: pd.Index,
        counts: CountTable,
        report: pd.DataFrame,
        layout: str,
        frame: pd.DataFrame | None = None,
        vote_rows: np.ndarray | None = None,
        vote_user: np.ndarray | None = None,
        vote_pair: np.ndarray | None = None,
        vote_z: np.ndarray | None = None,
        n_ties_dropped: int = 0,
        dropped_users: pd.Index | None = None,
        source: str | None = None,
    ) -> None:
        self.users = users
        self.pairs = pairs
        self.counts = counts
        self.report = report
        self.layout = layout
        self._frame = frame
        self._vote_rows = vote_rows
        self._votes: pd.DataFrame | None = None
        self._vote_user = vote_user
        self._vote_pair = vote_pair
        self._vote_z = vote_z
        # (path, options) to read the vote rows from when they are first asked for.
        self._rows_from: tuple[str, dict[str, Any]] | None = None
        self.n_ties_dropped = int(n_ties_dropped)
        if dropped_users is None:
            dropped_users = pd.Index([], dtype=users.dtype, name="user")
        self.dropped_users = dropped_users
        self.source = source
        self._n_votes = int(report["n_votes"].sum())

    # -- constructors -------------------------------------------------------

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        layout: Literal["oriented", "raw"] | None = None,
        user: Hashable = "user",
        z: Hashable = "z",
        pair: Hashable | None = None,
        model_a: Hashable = "model_a",
        model_b: Hashable = "model_b",
        winner: Hashable = "winner",
        stronger: Mapping[Any, Any] | None = None,
        ties: Literal["drop", "error", "model"] = "drop",
    ) -> VoteData:
        """Validate a table of votes and count them per user and pair.

        Parameters
        ----------
        df : pd.DataFrame, shape (N_in, any columns)
            One row per vote. Not modified.
        layout : {"oriented", "raw"}, optional
            Default: ``"raw"`` when the ``winner`` column exists, else
            ``"oriented"``.
        user : hashable
            Column of user ids. Missing or blank ids are errors; so are ids of
            different types with the same text (``1`` and ``"1"``).
        z : hashable
            Oriented layout: column of 0/1 labels, 1 = the pair's stronger
            model preferred. Accepts ints, bools, 0.0/1.0 and "0"/"1".
        pair : hashable, optional
            Oriented layout: column of pair labels. None: all votes are one
            pair labelled ``"A vs B"``.
        model_a, model_b, winner : hashable
            Raw layout: the two models shown and the winner, one of
            ``"model_a"``, ``"model_b"``, ``"tie"`` or ``"tie (bothbad)"``
            (surrounding whitespace ignored).
        stronger : mapping, optional
            Raw layout: the stronger model of some pairs, keyed by
            ``frozenset({x, y})``, a tuple ``(x, y)`` in either order or the
            pair label ``"x vs y"``. Pairs not given are oriented by win rate
            over non-tie votes (equal rates: the alphabetically first model).
        ties : {"drop", "error", "model"}
            Drop tie votes (counted in the report), raise on the first one, or
            keep them per user and pair as evidence (``counts.entry_t``; see
            :mod:`attnmodel.model.ties`). With ``"model"``, users whose votes
            are all ties stay in; pairs with ties only are still left out
            (they have no direction).

        Returns
        -------
        VoteData

        Raises
        ------
        VoteDataError
            For input that cannot be used; the message names the column, the
            row (position and index label) and the value.
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if ties not in TIE_OPTIONS:
            raise ValueError(f"ties must be 'drop', 'error' or 'model', got {ties!r}")
        layout = _layout_of(list(df.columns), layout, user, z, model_a, model_b, winner)
        if layout == "oriented" and stronger is not None:
            raise ValueError("stronger applies to the raw layout only")
        if len(df) == 0:
            raise VoteDataError("the table has no rows")

        user_codes, user_ids = _user_codes(df, user)
        if layout == "oriented":
            return cls._oriented(df, user_codes, user_ids, z, pair, ties == "model")
        return cls._raw(df, user_codes, user_ids, model_a, model_b, winner, stronger, ties)

    @classmethod
    def _oriented(
        cls,
        df: pd.DataFrame,
        user_codes: np.ndarray,
        user_ids: pd.Index,
        z: Hashable,
        pair: Hashable | None,
        ties_model: bool = False,
    ) -> VoteData:
        labels = _labels01(df, z)
        if pair is None and "pair" in df.columns:
            # Easy to forget, and silently pooling all pairs would bias every mu.
            warnings.warn(
                "the table has a 'pair' column but pair=None, so all votes are treated as "
                "one pair; pass pair='pair' to use it",
                AttnmodelWarning,
                stacklevel=3,
            )
        if pair is None:
            pair_codes = np.zeros(len(df), dtype=np.int64)
            pairs = pd.Index([SINGLE_PAIR_LABEL])
        else:
            _, pair_codes, pairs = _label_codes(df, pair, "pair label")
        n_pairs = len(pairs)
        n_votes = np.bincount(pair_codes, minlength=n_pairs)
        wins = np.bincount(pair_codes, weights=labels, minlength=n_pairs)
        report = pd.DataFrame(
            {
                "stronger": pd.Series([None] * n_pairs, dtype=object),
                "weaker": pd.Series([None] * n_pairs, dtype=object),
                "n_votes": n_votes.astype(np.int64),
                "n_ties": np.zeros(n_pairs, dtype=np.int64),
                "win_rate": wins / n_votes,  # every pair label occurs, so n_votes >= 1
                "designated_by": ["input"] * n_pairs,
            }
        )
        return cls._from_rows(
            df,
            user_codes=user_codes,
            user_ids=user_ids,
            keep=None,
            pair_codes=pair_codes,
            z=labels,
            pairs=pairs,
            report=report,
            layout="oriented",
            tie_rows=np.zeros(0, dtype=np.int64) if ties_model else None,
        )

    @classmethod
    def _raw(
        cls,
        df: pd.DataFrame,
        user_codes: np.ndarray,
        user_ids: pd.Index,
        model_a: Hashable,
        model_b: Hashable,
        winner: Hashable,
        stronger: Mapping[Any, Any] | None,
        ties: str,
    ) -> VoteData:
        ga, gb, models = _model_codes(df, (model_a, model_b))
        same = ga == gb
        if same.any():
            pos = int(np.argmax(same))
            value = _plain(models[ga[pos]])
            raise VoteDataError(
                f"{_where(df, pos)}: columns {model_a!r} and {model_b!r} are both {value!r}; "
                f"a vote compares two different models",
                row=pos,
                value=value,
            )
        w = _winner_codes(df, winner)
        is_tie = w == TIE
        if ties == "error" and is_tie.any():
            raise _bad_rows_error(
                df, winner, _column(df, winner), is_tie, "tie votes are not allowed (ties='error')"
            )

        n_models = len(models)
        lo = np.minimum(ga, gb)
        key = lo * n_models + np.maximum(ga, gb)
        pair_codes, pair_keys = pd.factorize(key)
        pair_codes = np.asarray(pair_codes, dtype=np.int64)
        pair_lo = pair_keys // n_models
        pair_hi = pair_keys % n_models
        n_all = len(pair_keys)

        keep = ~is_tie
        winner_model = np.where(w == 0, ga, gb)
        n_votes = np.bincount(pair_codes[keep], minlength=n_all)
        n_ties = np.bincount(pair_codes[is_tie], minlength=n_all)
        lo_wins = np.bincount(pair_codes[keep & (winner_model == lo)], minlength=n_all)

        strong, has_votes, pairs, report = _designate(
            models, pair_lo, pair_hi, n_votes, n_ties, lo_wins, stronger
        )
        z_all = (winner_model == strong[pair_codes]).astype(np.int8)
        tie_rows = None
        if ties == "model":
            # Ties of pairs left out (ties only) have no direction to weigh against.
            tie_rows = np.flatnonzero(is_tie & has_votes[pair_codes])
        if not has_votes.all():
            # Rows of dropped pairs are all ties and never reach the counts, so
            # the code they get here does not matter.
            pair_codes = (np.cumsum(has_votes) - 1)[pair_codes]
        return cls._from_rows(
            df,
            user_codes=user_codes,
            user_ids=user_ids,
            keep=keep,
            pair_codes=pair_codes,
            z=z_all,
            pairs=pairs,
            report=report,
            layout="raw",
            tie_rows=tie_rows,
        )

    @classmethod
    def _from_rows(
        cls,
        df: pd.DataFrame,
        *,
        user_codes: np.ndarray,
        user_ids: pd.Index,
        keep: np.ndarray | None,
        pair_codes: np.ndarray,
        z: np.ndarray,
        pairs: pd.Index,
        report: pd.DataFrame,
        layout: str,
        tie_rows: np.ndarray | None = None,
    ) -> VoteData:
        """Shared tail: drop ties and tie-only users, aggregate, collapse.

        ``tie_rows`` (ties modelled): the input rows of ties to count per user
        and pair; users with ties only then stay.
        """
        n_ties = 0 if keep is None else int(keep.size - np.count_nonzero(keep))
        rows = None
        if n_ties:
            rows = np.flatnonzero(keep)
            u, p, z = user_codes[rows], pair_codes[rows], z[rows]
        else:
            u, p = user_codes, pair_codes
        z = np.ascontiguousarray(z, dtype=np.int8)

        has_vote = np.bincount(u, minlength=len(user_ids)) > 0
        if tie_rows is not None:
            tie_u, tie_p = user_codes[tie_rows], pair_codes[tie_rows]
            has_vote |= np.bincount(tie_u, minlength=len(user_ids)) > 0
        dropped = user_ids[~has_vote]
        if dropped.size:
            u = (np.cumsum(has_vote) - 1)[u]
            if tie_rows is not None:
                tie_u = (np.cumsum(has_vote) - 1)[tie_u]
            user_ids = user_ids[has_vote]
        users = user_ids.rename("user")
        pairs = pairs.rename("pair")
        report.index = pairs
        m, n_pairs = len(users), len(pairs)

        cell = u * n_pairs + p
        t_k = None
        if tie_rows is not None:
            # Cells of votes and cells of ties, one sorted list of both.
            occupied, inv = np.unique(
                np.concatenate([cell, tie_u * n_pairs + tie_p]), return_inverse=True
            )
            n_k = np.bincount(inv[: cell.size], minlength=occupied.size)
            s_k = np.bincount(inv[: cell.size][z == 1], minlength=occupied.size)
            t_k = np.bincount(inv[cell.size :], minlength=occupied.size)
        elif m * n_pairs <= cell.size:
            n_cell = np.bincount(cell, minlength=m * n_pairs)
            s_cell = np.bincount(cell[z == 1], minlength=m * n_pairs)
            occupied = np.flatnonzero(n_cell)
            n_k, s_k = n_cell[occupied], s_cell[occupied]
        else:
            # More cells than votes: a dense count would mostly hold zeros (and
            # huge fresh allocations are slow), so sort instead. The label rides
            # in the lowest bit so that one sort yields both counts.
            key = np.sort(cell * 2 + z)
            cell_sorted = key >> 1
            start = np.flatnonzero(np.concatenate(([True], cell_sorted[1:] != cell_sorted[:-1])))
            occupied = cell_sorted[start]
            n_k = np.diff(np.append(start, key.size))
            s_k = np.add.reduceat(key & 1, start)
        counts = collapse_counts(
            occupied // n_pairs, occupied % n_pairs, n_k, s_k, m, n_pairs, t=t_k
        )
        if tie_rows is not None:
            n_ties = 0  # modelled, not dropped
        return cls(
            users=users,
            pairs=pairs,
            counts=counts,
            report=report,
            layout=layout,
            # Copy-on-write keeps this shallow copy independent of the caller's frame.
            frame=df.copy(deep=False),
            vote_rows=rows,
            vote_user=np.asarray(u, dtype=np.int64),
            vote_pair=np.asarray(p, dtype=np.int64),
            vote_z=z,
            n_ties_dropped=n_ties,
            dropped_users=dropped.rename("user"),
        )

    @classmethod
    def from_file(
        cls,
        path: str | PathLike[str],
        *,
        engine: Literal["auto", "duckdb", "pandas", "dask"] = "auto",
        memory_limit: str | None = None,
        temp_directory: str | PathLike[str] | None = None,
        threads: int | None = None,
        scheduler: Any = None,
        progress: Callable[[float], None] | None = None,
        **kwargs: Any,
    ) -> VoteData:
        """Read votes from a file, a glob of files or a folder, and count them.

        Parameters
        ----------
        path : str or path-like
            ``.csv``/``.csv.gz``, ``.parquet``/``.pq`` or
            ``.jsonl``/``.ndjson`` (optionally ``.gz``); or a glob such as
            ``"logs/date=*/part-*.parquet"``, or a folder read recursively
            (Hive partition folders ``key=value`` add their columns), all of
            one format (:func:`attnmodel.data.io.expand_table_path`). Columns
            keep the types the format gives them (JSON values are not
            re-typed), and CSV user ids are read as strings
            (:mod:`attnmodel.data.io`).
        engine : {"auto", "duckdb", "pandas", "dask"}
            ``"duckdb"`` checks and counts the votes inside DuckDB, out of
            core: only the per-(user, pair) counts reach Python, so a log
            larger than memory can be read. ``"pandas"`` reads the whole
            table into memory (:func:`attnmodel.data.io.read_table`) and
            passes it to :meth:`from_frame`. ``"dask"`` counts the file's
            partitions on a Dask cluster (:meth:`from_dask`). All give the
            same result.
            ``"auto"`` (default): pandas for one file smaller than
            :data:`attnmodel.data.engines.SMALL_FILE_BYTES` (where DuckDB's
            start-up would cost more than the reading), else DuckDB.
        memory_limit, temp_directory, threads
            DuckDB's memory limit (e.g. ``"4GB"``), the folder it spills to,
            and its threads (:func:`attnmodel.data.engines.duckdb_cells`).
        scheduler : str or distributed.Client, optional
            Dask: the scheduler's address (``"tcp://10.0.0.5:8786"``) or a
            client; default Dask's current scheduler.
        progress : callable, optional
            DuckDB: called with the percentage of the log scanned.
        **kwargs
            Passed to :meth:`from_frame` (column names, ``layout``,
            ``stronger``, ``ties``).

        Returns
        -------
        VoteData
            With ``source`` set to ``str(path)``. With the DuckDB and Dask
            engines, ``votes`` and the ``vote_*`` arrays are read from the
            file with pandas when first asked for.

        Raises
        ------
        VoteDataError
            Unknown suffix, missing or unreadable file, or bad contents (the
            message then starts with the path).
        """
        if engine not in ("auto", "duckdb", "pandas", "dask"):
            raise ValueError(f"engine must be 'auto', 'duckdb', 'pandas' or 'dask', got {engine!r}")
        try:
            if engine == "auto" and kwargs.get("ties") == "model":
                engine = "pandas"  # the engines count ties per pair only
            elif engine == "auto":
                from attnmodel.data.engines import choose_engine

                engine = choose_engine(path)
            if engine == "pandas":
                df = read_table(path, id_columns=(kwargs.get("user", "user"),), what="votes")
                data = cls.from_frame(df, **kwargs)
            elif engine == "dask":
                from attnmodel.data.dask_engine import read_dask

                ddf = read_dask(path, user=kwargs.get("user", "user"))
                data = cls.from_dask(ddf, scheduler=scheduler, **kwargs)
                data._rows_from = (str(path), kwargs)
            else:
                data = cls._from_engine(
                    path,
                    engine,
                    dict(
                        memory_limit=memory_limit,
                        temp_directory=temp_directory,
                        threads=threads,
                        progress=progress,
                    ),
                    kwargs,
                )
        except TableFileError as e:
            raise VoteDataError(str(e), value=str(path)) from e
        except VoteDataError as e:
            raise VoteDataError(
                f"{str(path)!r}: {e}", column=e.column, row=e.row, value=e.value
            ) from e
        data.source = str(path)
        return data

    @classmethod
    def from_dask(cls, ddf: Any, *, scheduler: Any = None, **kwargs: Any) -> VoteData:
        """Check and count a Dask DataFrame of votes on a Dask cluster.

        Each partition is checked and counted per (user, pair) where it lies,
        its users named by 64-bit keys; the partial counts are summed on the
        workers and only the summed counts and the distinct users reach this
        process (:mod:`attnmodel.data.dask_engine`). The result is the one
        :meth:`from_frame` gives for ``ddf.compute()``, users and pairs in the
        same order.

        Parameters
        ----------
        ddf : dask.dataframe.DataFrame
            One row per vote, in any storage Dask reads.
        scheduler : str or distributed.Client, optional
            The scheduler's address (``"tcp://10.0.0.5:8786"``) or a client;
            default Dask's current scheduler (the client made last, if any).
        **kwargs
            Column options of :meth:`from_frame`.

        Returns
        -------
        VoteData
            ``votes`` and the ``vote_*`` arrays are None.

        Raises
        ------
        VoteDataError
            A missing column, or a bad row named by its partition and its
            position in the partition.
        """
        from attnmodel.data.dask_engine import dask_cells

        names = _options(**kwargs)
        _engine_ties(names, "dask")
        layout = _layout_of(
            list(ddf.columns),
            names["layout"],
            names["user"],
            names["z"],
            names["model_a"],
            names["model_b"],
            names["winner"],
        )
        client = scheduler
        if isinstance(scheduler, str):
            from distributed import Client

            client = Client(scheduler)
        try:
            cells = dask_cells(ddf, layout, names, client=client)
        finally:
            if isinstance(scheduler, str):
                client.close()
        return cls._from_cells(cells, names)

    @classmethod
    def _from_engine(
        cls, path: str | PathLike[str], engine: str, engine_options: dict, kwargs: dict
    ) -> VoteData:
        from attnmodel.data.engines import duckdb_cells

        names = _options(**kwargs)
        _engine_ties(names, engine)
        cells = duckdb_cells(
            path,
            names,
            resolve_layout=lambda columns: _layout_of(
                columns,
                None,
                names["user"],
                names["z"],
                names["model_a"],
                names["model_b"],
                names["winner"],
            ),
            **engine_options,
        )
        data = cls._from_cells(cells, names)
        data._rows_from = (str(path), kwargs)
        return data

    @classmethod
    def _from_cells(cls, cells: Any, names: dict[str, Any]) -> VoteData:
        """A VoteData from an engine's :class:`~attnmodel.data.engines.VoteCells`.

        Consumes ``cells``: its users and cells are taken out of it
        (:meth:`~attnmodel.data.engines.VoteCells.take`), and its ``cell_a`` is
        overwritten when writeable. The cells are freed one by one during the
        collapse (:func:`~attnmodel.data.counts.collapse_taken_counts`), and
        the users before it, unless the caller holds other references to them.
        """
        all_users, (user, pair, n, a) = cells.take()
        if cells.layout == "raw":
            if names["ties"] == "error" and cells.pair_ties.any():
                raise VoteDataError("tie votes are not allowed (ties='error')")
            models = sorted(
                {m for pr in cells.pairs for m in pr}, key=lambda v: (str(v), type(v).__name__)
            )
            model_id = {m: i for i, m in enumerate(models)}
            pair_lo = np.array([model_id[x] for x, _ in cells.pairs], dtype=np.int64)
            pair_hi = np.array([model_id[y] for _, y in cells.pairs], dtype=np.int64)
            n_all = len(cells.pairs)
            n_votes = pair_sums(pair, n, n_all)
            lo_wins = pair_sums(pair, a, n_all)
            strong, has_votes, pairs, report = _designate(
                models, pair_lo, pair_hi, n_votes, cells.pair_ties, lo_wins, names["stronger"]
            )
            # s: votes for the stronger model; a cell of a pair whose second model is
            # the stronger counts n - a. Written over a: the cells are the largest
            # arrays of a big log, and they are not used again.
            s = a if a.flags.writeable else a.copy()
            flip = strong != pair_lo
            if flip.any():
                np.subtract(n, a, out=s, where=flip[pair])
            pair_new = pair
            if not has_votes.all():
                pair_new = (np.cumsum(has_votes) - 1).astype(pair.dtype)[pair]
            n_ties_dropped = int(cells.pair_ties.sum())
        else:
            if names["stronger"] is not None:
                raise ValueError("stronger applies to the raw layout only")
            if names["pair"] is None:
                if "pair" in cells.columns:
                    warnings.warn(
                        "the table has a 'pair' column but pair=None, so all votes are "
                        "treated as one pair; pass pair='pair' to use it",
                        AttnmodelWarning,
                        stacklevel=4,
                    )
                pairs = pd.Index([SINGLE_PAIR_LABEL])
            else:
                pairs = cells.pairs
            n_pairs = len(pairs)
            n_votes = pair_sums(pair, n, n_pairs)
            wins = pair_sums(pair, a, n_pairs)
            report = pd.DataFrame(
                {
                    "stronger": pd.Series([None] * n_pairs, dtype=object),
                    "weaker": pd.Series([None] * n_pairs, dtype=object),
                    "n_votes": n_votes,
                    "n_ties": np.zeros(n_pairs, dtype=np.int64),
                    "win_rate": wins / n_votes,
                    "designated_by": ["input"] * n_pairs,
                }
            )
            s, pair_new, n_ties_dropped = a, pair, 0
        has = cells.user_has_votes
        users = (all_users if has.all() else all_users[has]).rename("user")
        dropped = all_users[~has]
        del all_users
        pairs = pairs.rename("pair")
        report.index = pairs
        # Handed over: the collapse frees each array once it is done with it.
        taken = [user, pair_new, n, s]
        del user, pair, pair_new, n, a, s
        counts = collapse_taken_counts(taken, len(users), len(pairs))
        return cls(
            users=users,
            pairs=pairs,
            counts=counts,
            report=report,
            layout=cells.layout,
            n_ties_dropped=n_ties_dropped,
            dropped_users=dropped.rename("user"),
        )

    @classmethod
    def from_counts(
        cls,
        n: np.ndarray,
        s: np.ndarray,
        *,
        users: Iterable[Hashable] | None = None,
        pairs: Iterable[Hashable] | None = None,
        t: np.ndarray | None = None,
    ) -> VoteData:
        """Build from per-user counts, e.g. from a simulator.

        Parameters
        ----------
        n, s : array_like of int, shape (m,) or (m, P)
            Votes of each user (per pair) and how many of them went to the
            pair's stronger model; ``0 <= s <= n`` and every user has at least
            one vote.
        users : iterable of hashable, length m, optional
            Distinct user ids; default ``range(m)``.
        pairs : iterable of hashable, length P, optional
            Distinct pair labels; default ``["A vs B"]`` when ``P == 1``,
            else ``["pair 0", ..., "pair P-1"]``.
        t : array_like of int, shape like ``n``, optional
            Tie votes of each user (per pair), kept as evidence (as
            ``ties="model"`` does); every user then needs a vote or a tie.

        Returns
        -------
        VoteData
            ``votes`` and the ``vote_*`` arrays are None.
        """
        n_arr, s_arr = np.asarray(n), np.asarray(s)
        if n_arr.shape != s_arr.shape:
            raise VoteDataError(f"n and s differ in shape: {n_arr.shape} vs {s_arr.shape}")
        if n_arr.ndim not in (1, 2):
            raise VoteDataError(f"n must have shape (m,) or (m, P), got {n_arr.shape}")
        n2 = _as_int_counts(n_arr, "n").reshape(n_arr.shape[0], -1)
        s2 = _as_int_counts(s_arr, "s").reshape(n2.shape)
        t2 = None
        if t is not None:
            t_arr = np.asarray(t)
            if t_arr.shape != n_arr.shape:
                raise VoteDataError(f"n and t differ in shape: {n_arr.shape} vs {t_arr.shape}")
            t2 = _as_int_counts(t_arr, "t").reshape(n2.shape)
        m, n_pairs = n2.shape
        if m == 0 or n_pairs == 0:
            raise VoteDataError(f"no counts: n has shape {n_arr.shape}")

        if users is None:
            user_ids = pd.RangeIndex(m, name="user")
        else:
            user_ids = pd.Index(list(users), name="user")
        if pairs is None:
            labels = [SINGLE_PAIR_LABEL] if n_pairs == 1 else [f"pair {k}" for k in range(n_pairs)]
            pair_ids = pd.Index(labels, name="pair")
        else:
            pair_ids = pd.Index(list(pairs), name="pair")
        for what, ids, size in (("users", user_ids, m), ("pairs", pair_ids, n_pairs)):
            if len(ids) != size:
                raise VoteDataError(f"{what} has {len(ids)} entries, counts have {size}")
            if not ids.is_unique:
                raise VoteDataError(f"{what} are not unique: {ids[ids.duplicated()].tolist()[:5]}")

        bad = (s2 < 0) | (s2 > n2)
        if bad.any():
            i, k = (int(x[0]) for x in np.nonzero(bad))
            raise VoteDataError(
                f"user {user_ids[i]!r} (row {i}), pair {pair_ids[k]!r}: n={n2[i, k]}, "
                f"s={s2[i, k]} do not satisfy 0 <= s <= n",
                row=i,
                value=(int(n2[i, k]), int(s2[i, k])),
            )
        if t2 is not None and np.any(t2 < 0):
            i, k = (int(x[0]) for x in np.nonzero(t2 < 0))
            raise VoteDataError(
                f"user {user_ids[i]!r} (row {i}), pair {pair_ids[k]!r}: t={t2[i, k]} is negative",
                row=i,
                value=int(t2[i, k]),
            )
        total = n2 if t2 is None else n2 + t2
        empty = total.sum(axis=1) == 0
        if empty.any():
            i = int(np.argmax(empty))
            raise VoteDataError(
                f"user {user_ids[i]!r} (row {i}) has no votes; every user needs at least one",
                row=i,
                value=user_ids[i],
            )

        ui, pk = np.nonzero(total)
        counts = collapse_counts(
            ui, pk, n2[ui, pk], s2[ui, pk], m, n_pairs, t=None if t2 is None else t2[ui, pk]
        )
        n_votes = n2.sum(axis=0)
        wins = s2.sum(axis=0)
        win_rate = np.full(n_pairs, np.nan)
        np.divide(wins, n_votes, out=win_rate, where=n_votes > 0)
        report = pd.DataFrame(
            {
                "stronger": pd.Series([None] * n_pairs, dtype=object),
                "weaker": pd.Series([None] * n_pairs, dtype=object),
                "n_votes": n_votes.astype(np.int64),
                "n_ties": (np.zeros(n_pairs) if t2 is None else t2.sum(axis=0)).astype(np.int64),
                "win_rate": win_rate,
                "designated_by": ["input"] * n_pairs,
            }
        )
        report.index = pair_ids
        return cls(
            users=user_ids,
            pairs=pair_ids,
            counts=counts,
            report=report,
            layout="counts",
        )

    # -- views --------------------------------------------------------------

    @property
    def votes(self) -> pd.DataFrame | None:
        """The input rows used for fitting, shape (N, columns of the input).

        Ties are left out; every input column and the original index are kept.
        None when built from counts. Taken from the input on first access,
        since copying ten million rows of strings costs seconds.
        """
        self._load_rows()
        if self._votes is None and self._frame is not None:
            if self._vote_rows is None:
                self._votes = self._frame
            else:
                self._votes = self._frame.iloc[self._vote_rows]
        return self._votes

    def _load_rows(self) -> None:
        """Read the vote rows of a log counted by an engine, on first use."""
        if self._frame is not None or self._rows_from is None:
            return
        path, kwargs = self._rows_from
        with warnings.catch_warnings():
            # Anything worth a warning was said when the log was counted.
            warnings.simplefilter("ignore", AttnmodelWarning)
            full = VoteData.from_file(path, engine="pandas", **kwargs)
        self._frame, self._vote_rows = full._frame, full._vote_rows
        self._vote_user, self._vote_pair, self._vote_z = (
            full._vote_user,
            full._vote_pair,
            full._vote_z,
        )

    @property
    def vote_user(self) -> np.ndarray | None:
        """Position of each vote's user in ``users``, shape (N,); None when built from counts."""
        self._load_rows()
        return self._vote_user

    @property
    def vote_pair(self) -> np.ndarray | None:
        """Position of each vote's pair in ``pairs``, shape (N,); None when built from counts."""
        self._load_rows()
        return self._vote_pair

    @property
    def vote_z(self) -> np.ndarray | None:
        """1 when the vote went to the pair's stronger model, else 0; shape (N,)."""
        self._load_rows()
        return self._vote_z

    @property
    def n_users(self) -> int:
        """Number of users ``m``."""
        return len(self.users)

    @property
    def n_pairs(self) -> int:
        """Number of pairs ``P``."""
        return len(self.pairs)

    @property
    def n_votes(self) -> int:
        """Number of votes used for fitting (ties excluded)."""
        return self._n_votes

    def votes_per_user(self) -> pd.Series:
        """Votes of each user, ties excluded.

        Returns
        -------
        pd.Series of int64, shape (m,)
            Indexed by ``users``.
        """
        return pd.Series(self.counts.votes_per_user(), index=self.users, name="n_votes")

    def user_counts(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-user counts as tables.

        Returns
        -------
        n, s : pd.DataFrame of int64, shape (m, P)
            Votes, and votes for the stronger model, indexed by ``users`` with
            one column per pair.
        """
        n, s = self.counts.user_counts()
        return (
            pd.DataFrame(n, index=self.users, columns=self.pairs),
            pd.DataFrame(s, index=self.users, columns=self.pairs),
        )

    def rows_for_users(self, user_ids: Hashable | Iterable[Hashable]) -> pd.DataFrame:
        """Vote rows of some users.

        Parameters
        ----------
        user_ids : hashable or iterable of hashable
            One id or several. Users dropped for having only ties are
            accepted and contribute no rows.

        Returns
        -------
        pd.DataFrame, shape (k, columns of the input)
            The rows of ``votes`` belonging to these users, in input order,
            with the original index.

        Raises
        ------
        KeyError
            For an id that never occurred in the data (often a type mismatch
            such as ``"1"`` for ``1``).
        """
        self._load_rows()
        if self._frame is None:
            raise VoteDataError("built from counts: there are no vote rows")
        if isinstance(user_ids, (str, bytes)) or not isinstance(user_ids, Iterable):
            user_ids = [user_ids]
        wanted = pd.Index(list(user_ids))
        pos = self.users.get_indexer(wanted)
        missing = pos < 0
        if missing.any():
            unknown = wanted[missing]
            unknown = unknown[self.dropped_users.get_indexer(unknown) < 0]
            if unknown.size:
                raise KeyError(f"unknown user ids: {unknown.tolist()[:5]}")
        selected = np.zeros(self.n_users, dtype=bool)
        selected[pos[~missing]] = True
        rows = np.flatnonzero(selected[self.vote_user])
        if self._vote_rows is not None:
            rows = self._vote_rows[rows]
        return self._frame.iloc[rows]

    @property
    def ties(self) -> str:
        """``"model"`` when the counts carry ties as evidence, else ``"drop"``."""
        return "model" if self.counts.has_ties else "drop"

    def __repr__(self) -> str:
        tie_note = (
            f"{int(self.report['n_ties'].sum())} ties modelled"
            if self.counts.has_ties
            else f"{self.n_ties_dropped} ties dropped"
        )
        return (
            f"VoteData({self.n_users} users, {self.n_pairs} pairs, {self.n_votes} votes, "
            f"{tie_note}, layout={self.layout!r})"
        )

    def summary(self) -> str:
        """Multi-line description of the data, including the per-pair report."""
        per_user = self.votes_per_user()
        lines = [
            f"{self.n_votes} votes from {self.n_users} users on {self.n_pairs} pair(s)"
            f" (layout {self.layout!r}" + (f", from {self.source}" if self.source else "") + ")",
            (
                f"ties modelled: {int(self.report['n_ties'].sum())}"
                if self.counts.has_ties
                else f"ties dropped: {self.n_ties_dropped}; users dropped for having only "
                f"ties: {len(self.dropped_users)}"
            ),
            f"votes per user: min {per_user.min()}, median {per_user.median():g}, "
            f"max {per_user.max()}",
            f"distinct count rows: {self.counts.n_rows}",
            "per pair:",
            self.report.to_string(),
        ]
        return "\n".join(lines)


def _as_int_counts(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if finite.all() and np.all(a == np.round(a)):
            return a.astype(np.int64)
        bad = ~finite | (a != np.round(np.where(finite, a, 0)))
        idx = tuple(int(x[0]) for x in np.nonzero(bad))
        raise VoteDataError(
            f"{name}[{', '.join(map(str, idx))}] = {a[idx]!r} is not a whole number",
            row=idx[0],
            value=a[idx],
        )
    raise VoteDataError(f"{name} must hold integers, got dtype {a.dtype}")


def require_vote_data(data: Any, where: str) -> Any:
    """Refuse a table, a path or simulated votes where votes (``VoteData``) are needed.

    Parameters
    ----------
    data : object
        What the caller gave.
    where : str
        The function that needs the votes (``"fit_em"``), named in the message.

    Returns
    -------
    object
        ``data`` itself, when it is none of those.

    Raises
    ------
    VoteDataTypeError
        Naming the constructor to use: :meth:`VoteData.from_frame` for a
        DataFrame, :meth:`VoteData.from_file` for a path,
        ``SimulatedVotes.to_data()`` for simulated votes.
    """
    if isinstance(data, pd.DataFrame):
        hint = (
            "a DataFrame of votes; build the votes first with "
            'am.VoteData.from_frame(df, user="user")'
        )
    elif isinstance(data, (str, PathLike)):
        hint = (
            f"a path ({str(data)!r}); read the votes first with "
            f'am.VoteData.from_file({str(data)!r}, user="user")'
        )
    elif type(data).__name__ == "SimulatedVotes" and hasattr(data, "to_data"):
        hint = "simulated votes; pass sim.to_data()"
    else:
        return data
    raise VoteDataTypeError(f"{where}() needs VoteData, got {hint} (the column names are options)")
