"""``python -m attnmodel`` and the ``attnmodel`` console script; see :mod:`attnmodel.cli`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run :func:`attnmodel.cli.main`, importing it here.

    Ctrl-C while the command line itself is imported, or its arguments
    parsed, exits with status 130 and one line, as it does later on (only
    the interpreter's own start and ``import attnmodel`` come before this).
    """
    try:
        from attnmodel.cli import main as run

        return run(argv)
    except KeyboardInterrupt:
        print("attnmodel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
