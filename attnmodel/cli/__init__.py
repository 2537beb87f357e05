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

import sys
import warnings
from collections.abc import Sequence

from attnmodel.cli.parser import PROG, build_parser

__all__ = ["main"]


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def _command(name: str):
    """The function that runs subcommand ``name`` (its module is imported now)."""
    if name == "demo":
        from attnmodel.cli import demo

        return demo.cmd_demo
    from attnmodel.cli import commands

    return getattr(commands, f"cmd_{name}")


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
        interrupted. Usage errors exit with status 2 through ``SystemExit``.
    """
    args = build_parser().parse_args(argv)
    from attnmodel.cli.commands import Progress
    from attnmodel.errors import AttnmodelError

    progress = Progress(quiet=bool(getattr(args, "quiet", False)))
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(_command(args.command)(args, progress))
        except AttnmodelError as e:
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
