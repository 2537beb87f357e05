"""The ``attnmodel`` command line.

- :mod:`attnmodel.cli.parser`: the argument parser and its option groups;
- :mod:`attnmodel.cli.commands`: the subcommands and what they share;
- :mod:`attnmodel.cli.demo`: ``attnmodel demo``.

Errors a user can fix (a missing file, a bad column or value, an unknown
family, a file that is not an attnmodel result, an output that exists) are
:class:`attnmodel.errors.AttnmodelError` and print one line
``attnmodel: error: ...`` naming the culprit, with exit status 1; malformed
command lines exit with status 2 (argparse). Anything else is a bug and keeps
its traceback. Progress goes to stderr and ``--quiet`` silences it; results go
to stdout.

Only the parser is loaded before the arguments are parsed, so ``--help`` and
usage errors answer without importing the numerical libraries.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Sequence

from attnmodel.cli.parser import PROG, build_parser
from attnmodel.errors import AttnmodelError

__all__ = ["main"]


def _warning_printer(progress):
    """``warnings.showwarning`` for the command line: one ``attnmodel: warning:`` line.

    A progress line still open ("fitting beta by MAP-EM...") is ended first,
    so that the warning does not land in its middle.
    """

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if progress is not None:
            progress.break_line()
        print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)

    return show


def _command(name: str):
    """The function that runs subcommand ``name`` (its module is imported now)."""
    if name == "demo":
        from attnmodel.cli import demo

        return demo.cmd_demo
    from attnmodel.cli import commands

    return getattr(commands, f"cmd_{name}")


#: Options whose value may start with a minus sign (``--mu-prior -1,2``).
_NUMERIC_OPTIONS = ("--mu-prior", "--mu", "--eta-star", "--params")


def _attach_negative_values(argv: Sequence[str]) -> list[str]:
    """``--mu-prior -1,2`` as ``--mu-prior=-1,2``, so that the value is not read as an option.

    argparse takes ``-1,2`` for an unknown option and reports the value as
    missing; a number list after an option that takes numbers is its value
    (and is then checked, with a message naming it).
    """
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if a in _NUMERIC_OPTIONS and nxt is not None and re.match(r"-[\d.]", nxt):
            out.append(f"{a}={nxt}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


class _PipeGuard:
    """A text stream that, once its reader has gone (a closed pipe), drops what is written.

    ``attnmodel summary RESULT | head -1`` closes the pipe after one line; a
    Unix tool then stops writing without a word. Here the command goes on
    with its files (``compare`` still writes its tables), only the text for
    the closed pipe is dropped: the stream's file descriptor is pointed at
    ``os.devnull`` so that nothing, not even the final flush, fails.
    """

    def __init__(self, stream) -> None:
        self._stream = stream
        self.broken = False

    def _drop(self) -> None:
        self.broken = True
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``attnmodel`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 for an error in the input, 130 when
        interrupted (Ctrl-C, also while the libraries load). Usage errors
        exit with status 2 through ``SystemExit``. A closed pipe on stdout
        or stderr (``... | head``) is not an error: the text is dropped and
        the command finishes its files.
    """
    args = build_parser().parse_args(
        _attach_negative_values(sys.argv[1:] if argv is None else argv)
    )
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PipeGuard(out), _PipeGuard(err)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(None)
            try:
                # Inside the try: Ctrl-C while the libraries load is an interruption too.
                from attnmodel.cli.commands import Progress

                progress = Progress(quiet=bool(getattr(args, "quiet", False)))
                warnings.showwarning = _warning_printer(progress)
                return int(_command(args.command)(args, progress))
            except AttnmodelError as e:
                print(f"{PROG}: error: {e}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print(f"{PROG}: interrupted", file=sys.stderr)
                return 130
    finally:
        for guard in (sys.stdout, sys.stderr):
            if isinstance(guard, _PipeGuard):
                guard.flush()
        sys.stdout, sys.stderr = out, err
