"""Every exception and warning attnmodel raises.

All exceptions derive from :class:`AttnmodelError` and all warnings from
:class:`AttnmodelWarning`, so that ``except AttnmodelError`` catches every
problem the package reports on purpose. Each one also keeps the built-in class
it has always been (``VoteDataError`` is a ``ValueError``, ``NotConvergedError``
a ``RuntimeError``), so existing ``except ValueError`` clauses keep working.

- :class:`AttnmodelError` (``Exception``): the base class of the exceptions.
- :class:`VoteDataError` (also a ``ValueError``): votes or counts that cannot be
  used as given.
- :class:`TableFileError` (also a ``ValueError``): a table file of unknown
  type, missing or unreadable.
- :class:`NotConvergedError` (also a ``RuntimeError``): filtering a fit that did
  not converge; :class:`DiagnosticsError`, one of them, for a NUTS fit that
  failed its diagnostics.
- :class:`ArgumentError` (also a ``ValueError``): an argument value or a
  combination of arguments a function cannot use.
- :class:`DataMismatchError` (also a ``ValueError``): data, or a second
  result, other than the data a result was fitted to.
- :class:`ResultFileError` (also a ``ValueError``): a result file that cannot
  be read, is not an attnmodel result, or whose content fails its checksum.
- :class:`VoteDataTypeError` (also a ``TypeError``): a table or a path where
  a function needs :class:`~attnmodel.data.votes.VoteData`.
- :class:`CommandError`: a problem with the command line's input or files.
- :class:`AttnmodelWarning` (``UserWarning``): the base class of the warnings.
- :class:`ConvergenceWarning`: EM stopped at ``max_iter``.
- :class:`DiagnosticsWarning`: a fit that failed its checks was filtered anyway.
- :class:`BoundaryWarning`: a degenerate fit, with an estimate at a bound of
  its admissible range or data too thin to inform the family.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AttnmodelError",
    "AttnmodelWarning",
    "BoundaryWarning",
    "ArgumentError",
    "CommandError",
    "DataMismatchError",
    "ResultFileError",
    "ConvergenceWarning",
    "DiagnosticsError",
    "DiagnosticsWarning",
    "NotConvergedError",
    "TableFileError",
    "VoteDataError",
    "VoteDataTypeError",
]


class AttnmodelError(Exception):
    """Base class of every exception attnmodel raises on purpose."""


class VoteDataError(AttnmodelError, ValueError):
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


class TableFileError(AttnmodelError, ValueError):
    """A table file whose name gives no known format, or that is missing or unreadable.

    Parameters
    ----------
    message : str
        Human-readable description, starting with the path.
    path : str, optional
        The file.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class NotConvergedError(AttnmodelError, RuntimeError):
    """Filtering was asked of a fit that did not converge."""


class DiagnosticsError(NotConvergedError):
    """A NUTS fit failed its convergence diagnostics (r_hat, ESS, divergences)."""


class ArgumentError(AttnmodelError, ValueError):
    """An argument value, or a combination of arguments, that cannot be used.

    The message names the argument as the caller spelled it.
    """


class DataMismatchError(AttnmodelError, ValueError):
    """Votes (or a second result) other than those a result was fitted to.

    The message says what differs: users, votes per user, per-pair totals.
    """


class ResultFileError(AttnmodelError, ValueError):
    """A result file that cannot be read, is not an attnmodel result, or fails its checksum.

    Parameters
    ----------
    message : str
        Human-readable description, naming the file.
    path : str, optional
        The file.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class VoteDataTypeError(AttnmodelError, TypeError):
    """A table, a path or simulated votes given where a function needs ``VoteData``.

    The message names the constructor that turns what was given into votes.
    """


class CommandError(AttnmodelError):
    """A problem with the command line's input or files, reported as one line with exit status 1."""


class AttnmodelWarning(UserWarning):
    """Base class of attnmodel's warnings: something the caller may not expect."""


class ConvergenceWarning(AttnmodelWarning):
    """EM stopped at ``max_iter`` before meeting its tolerance."""


class DiagnosticsWarning(AttnmodelWarning):
    """A fit that failed its checks was filtered anyway (``force=True``)."""


class BoundaryWarning(AttnmodelWarning):
    """A degenerate fit: an estimate at a bound of its admissible range, or data too thin.

    The reasons are also stored in the result (root attribute ``fit_warnings``)
    and shown by ``summary``; see :mod:`attnmodel.model.checks`.
    """
