"""The vocabulary of vote tables: winner spellings, label spellings, default names.

Every reader (pandas, DuckDB, Dask) accepts exactly these spellings and words
its messages with them, so that the engines agree on what a valid vote is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "COLUMN_DEFAULTS",
    "LABEL_HELP",
    "SINGLE_PAIR_LABEL",
    "TIE",
    "WINNER_CODES",
    "label_code",
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


def label_code(v: Any) -> int:
    """0 or 1 for an accepted label spelling, -1 otherwise."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer, float, np.floating)):
        return int(v) if v in (0, 1) else -1
    if isinstance(v, str):
        return {"0": 0, "1": 1}.get(v.strip(), -1)
    return -1
