"""The vocabulary of vote tables: winner spellings, label spellings, default names.

Every reader (pandas, DuckDB, Dask) accepts exactly these spellings and words
its messages with them, so that the engines agree on what a valid vote is.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pandas as pd

from attnmodel.errors import VoteDataError

__all__ = [
    "COLUMN_DEFAULTS",
    "LABEL_HELP",
    "SINGLE_PAIR_LABEL",
    "TIE",
    "WINNER_CODES",
    "distinct_values",
    "label_code",
    "same_text_error",
]

#: Pair label used when the votes carry no pair information.
SINGLE_PAIR_LABEL = "A vs B"

#: Code of a tie in :data:`WINNER_CODES`.
TIE = 2

#: Accepted values of the winner column (surrounding whitespace ignored) -> code.
WINNER_CODES = {"model_a": 0, "model_b": 1, "tie": TIE, "tie (bothbad)": TIE}

#: The end of the message for a value that is not a 0/1 label.
LABEL_HELP = "expected a 0/1 label (0, 1, False, True, 0.0, 1.0, '0' or '1')"

#: The column options of :meth:`attnmodel.data.votes.VoteData.from_frame` and their defaults.
COLUMN_DEFAULTS: dict[str, Any] = {
    "layout": None,
    "user": "user",
    "z": "z",
    "pair": None,
    "model_a": "model_a",
    "model_b": "model_b",
    "winner": "winner",
    "stronger": None,
    "ties": "drop",
}


def distinct_values(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes (``-1`` for missing) and distinct values in order of first appearance.

    How every reader that sees values in pandas (the pandas reader, each Dask
    partition) tells values apart.
    """
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    if isinstance(uniques, pd.CategoricalIndex):
        # Ids should keep the categories' own type, not become categorical.
        uniques = uniques.astype(uniques.categories.dtype)
    return np.asarray(codes, dtype=np.int64), pd.Index(uniques)


def label_code(v: Any) -> int:
    """0 or 1 for an accepted label spelling, -1 otherwise."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer, float, np.floating)):
        return int(v) if v in (0, 1) else -1
    if isinstance(v, str):
        return {"0": 0, "1": 1}.get(v.strip(), -1)
    return -1


def same_text_error(
    column: Hashable, users: pd.Index, where: Callable[[int], tuple[str, Any]]
) -> VoteDataError | None:
    """The error for two user ids of different types with the same text, or None.

    1 and "1" are different users to pandas but the same user to anyone reading
    a report or a CSV written from it, so every reader refuses to guess.
    ``users`` are the distinct ids in order of first appearance; ``where(k)``
    gives the words and the ``row`` attribute naming the first row of
    ``users[k]``.
    """
    if users.dtype != object or pd.api.types.infer_dtype(users, skipna=True) in (
        "string",
        "integer",
        "boolean",
        "floating",
    ):
        return None
    text = pd.Index([str(v) for v in users])
    dup = text.duplicated(keep=False)
    if not dup.any():
        return None
    clash = np.flatnonzero(text == text[dup][0])[:2]
    places = [where(int(k)) for k in clash]
    values = tuple(v.item() if isinstance(v, np.generic) else v for v in users[clash])
    return VoteDataError(
        f"column {column!r}: user ids {values[0]!r} ({places[0][0]}) and "
        f"{values[1]!r} ({places[1][0]}) are different values with the same "
        f"text {text[clash[0]]!r}; give the column a single type",
        column=column,
        row=tuple(p[1] for p in places),
        value=values,
    )
