"""The vocabulary of vote tables: winner spellings, label spellings, default names.

Every reader (pandas, DuckDB, Dask) accepts exactly these spellings and words
its messages with them, so that the engines agree on what a valid vote is.
"""

from __future__ import annotations

__all__ = ["LABEL_HELP", "SINGLE_PAIR_LABEL", "TIE", "WINNER_CODES"]

#: Pair label used when the votes carry no pair information.
SINGLE_PAIR_LABEL = "A vs B"

#: Code of a tie in :data:`WINNER_CODES`.
TIE = 2

#: Accepted values of the winner column (surrounding whitespace ignored) -> code.
WINNER_CODES = {"model_a": 0, "model_b": 1, "tie": TIE, "tie (bothbad)": TIE}

#: The end of the message for a value that is not a 0/1 label.
LABEL_HELP = "expected a 0/1 label (0, 1, False, True, 0.0, 1.0, '0' or '1')"
