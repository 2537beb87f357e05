"""Exception and warning types raised by attnmodel."""

from __future__ import annotations

from typing import Any

__all__ = ["AttnmodelWarning", "VoteDataError"]


class VoteDataError(ValueError):
    """Input votes or counts that cannot be used as given.

    The message is written for a person and names the offending column, row
    and value; the same facts are kept as attributes so that calling code can
    act on them without parsing the message.

    Parameters
    ----------
    message : str
        Human-readable description of the problem.
    column : str, optional
        Column the problem was found in.
    row : int or tuple of int, optional
        0-based position(s) of the offending row(s) in the input table.
    value : object, optional
        The offending value(s).
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        row: Any = None,
        value: Any = None,
    ) -> None:
        super().__init__(message)
        self.column = column
        self.row = row
        self.value = value


class AttnmodelWarning(UserWarning):
    """Something in the input was handled in a way the caller may not expect."""
