"""Kept votes in the column layout that preference trainers read.

TRL's DPO trainer (and most reward-model trainers) take one row per
preference pair with ``prompt``, ``chosen`` and ``rejected``, either as plain
strings (the standard layout) or as lists of ``{"role", "content"}`` messages
(the conversational layout). The chosen side follows the user's vote.

Files are written atomically by :func:`attnmodel.data.io.write_table`: a crash
never leaves a half-written file, and an existing file is only replaced when
asked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from attnmodel.data.io import write_table
from attnmodel.errors import VoteDataError

__all__ = ["to_dpo", "write_dpo"]

_A_WINS = "model_a"
_B_WINS = "model_b"


def _plain(value):
    """A numpy scalar as the Python value it holds (``2``, not ``np.int64(2)``, in messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _require(votes: pd.DataFrame, column) -> pd.Series:
    if column not in votes.columns:
        raise VoteDataError(
            f"missing column {column!r}; available columns: {list(votes.columns)}", column=column
        )
    return votes[column]


def _text(votes: pd.DataFrame, column) -> np.ndarray:
    col = _require(votes, column)
    missing = col.isna().to_numpy()
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise VoteDataError(
            f"column {column!r}, row {pos} (index label {votes.index[pos]!r}): no text; "
            "every exported pair needs a prompt and both responses",
            column=column,
            row=pos,
        )
    return col.astype(str).to_numpy(dtype=object)


def to_dpo(
    votes: pd.DataFrame,
    *,
    prompt="prompt",
    response_a="response_a",
    response_b="response_b",
    winner="winner",
    z=None,
    conversational: bool = False,
    keep: Sequence = (),
) -> pd.DataFrame:
    """Preference pairs ``prompt``, ``chosen``, ``rejected`` from vote rows.

    Parameters
    ----------
    votes : pandas.DataFrame
        Vote rows (for example ``FilterResult.votes``), one per preference.
    prompt, response_a, response_b : column names
        The prompt and the two responses as shown (``response_a`` belongs to
        ``model_a``).
    winner : column name
        ``"model_a"`` or ``"model_b"`` per row (the raw layout). Ties are not
        preferences: a tie row is an error naming it.
    z : column name, optional
        Use a 0/1 label instead of ``winner``: 1 means the answer in
        ``response_a`` was preferred.
    conversational : bool
        Emit lists of ``{"role", "content"}`` messages (the prompt as a user
        turn, each response as an assistant turn) instead of strings.
    keep : sequence of column names
        Further input columns to carry along (ids for tracing a pair back).

    Returns
    -------
    pandas.DataFrame
        Columns ``prompt``, ``chosen``, ``rejected`` and then ``keep``, with
        the input's index.
    """
    for column in (prompt, response_a, response_b):
        _require(votes, column)  # a missing column first, before any row's label
    if z is not None:
        labels = _require(votes, z)
        a_won = labels.to_numpy()
        bad = ~np.isin(a_won, (0, 1))
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise VoteDataError(
                f"column {z!r}, row {pos}: value {_plain(a_won[pos])!r} is not a 0/1 label",
                column=z,
                row=pos,
                value=_plain(a_won[pos]),
            )
        a_won = a_won.astype(bool)
    else:
        w = _require(votes, winner).astype(str).str.strip().to_numpy(dtype=object)
        bad = ~np.isin(w, (_A_WINS, _B_WINS))
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise VoteDataError(
                f"column {winner!r}, row {pos} (index label {_plain(votes.index[pos])!r}): "
                f"value {w[pos]!r} is not a preference ('model_a' or 'model_b')"
                + ("; drop ties first" if "tie" in str(w[pos]).lower() else ""),
                column=winner,
                row=pos,
                value=w[pos],
            )
        a_won = w == _A_WINS
    p = _text(votes, prompt)
    ra = _text(votes, response_a)
    rb = _text(votes, response_b)
    chosen = np.where(a_won, ra, rb)
    rejected = np.where(a_won, rb, ra)
    if conversational:
        p = [[{"role": "user", "content": t}] for t in p]
        chosen = [[{"role": "assistant", "content": t}] for t in chosen]
        rejected = [[{"role": "assistant", "content": t}] for t in rejected]
    out = pd.DataFrame({"prompt": p, "chosen": chosen, "rejected": rejected}, index=votes.index)
    for col in keep:
        if col in ("prompt", "chosen", "rejected"):
            raise ValueError(f"cannot keep column {col!r}: the DPO layout already uses that name")
        out[col] = _require(votes, col).to_numpy()
    return out


def write_dpo(frame: pd.DataFrame, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write DPO rows to ``.jsonl`` (one JSON object per line) or ``.parquet``, atomically."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"{str(target)!r}: DPO rows are written as .jsonl or .parquet")
    return write_table(frame.reset_index(drop=True), target, force=force)
