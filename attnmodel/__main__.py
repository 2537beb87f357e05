"""``python -m attnmodel`` and the ``attnmodel`` console script; see :mod:`attnmodel.cli`."""

from __future__ import annotations

import sys

from attnmodel.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
