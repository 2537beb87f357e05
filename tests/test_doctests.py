"""The examples in docstrings run as written."""

from __future__ import annotations

import doctest

import attnmodel


def test_package_docstring_example_runs():
    result = doctest.testmod(attnmodel, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
