"""Sphinx configuration of the attnmodel documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``
(the test suite does, warnings as errors). Pages are Markdown (MyST); the API
reference comes from the numpy-style docstrings. Nothing here runs experiments or
notebooks: ``reproduce.md`` and ``generated/`` are written by ``docs/reproduce.py``
and ``docs/cli_examples.py`` and committed.
"""

import re

import attnmodel

project = "attnmodel"
author = "the attnmodel authors"
copyright = "the attnmodel authors"
release = attnmodel.__version__
version = attnmodel.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
# generated/ holds files included by pages (and figures), not pages of their own.
exclude_patterns = ["_build", "generated"]

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # the numpy docstrings give types; signatures stay readable
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# "Attributes" sections become fields of their class: documenting them as separate
# attribute entries would repeat the members autodoc already lists (NamedTuple fields,
# properties), which Sphinx reports as duplicates.
napoleon_use_ivar = True
# Field names in those lists are linked by name; a name that several classes define
# (n_users) is ambiguous, and Sphinx links the first match. That is harmless, so the
# ambiguity warning (and only it) is off.
suppress_warnings = ["ref.python"]

html_theme = "furo"
html_title = f"attnmodel {release}"


# -- Module docstrings with two-column simple tables narrower than their entries ------
# The summary tables of these modules have first-column borders shorter than their
# longest entry, which docutils rejects ("Malformed table"). Until the borders are
# widened in the modules themselves, such tables are re-laid out here; the handler
# leaves every other docstring, and any well-formed table, untouched.
NARROW_TABLES = {"attnmodel.experiments", "attnmodel.plots"}
_BORDER = re.compile(r"^(\s*)=+ +=+\s*$")
_FIRST_CELL = re.compile(r"^(:\w+:`[^`]+`|\S+)\s*(.*)$")


def _relayout_two_column_tables(lines: list[str]) -> None:
    """Widen the columns of each two-column simple table to fit its entries (in place)."""
    borders = [i for i, line in enumerate(lines) if _BORDER.match(line)]
    for top, mid, bottom in zip(borders[0::3], borders[1::3], borders[2::3], strict=False):
        indent = _BORDER.match(lines[top]).group(1)
        # The first column of these tables holds one word or one role (":func:`name`"),
        # which may run into the second column with a single space between them.
        rows = {
            i: list(_FIRST_CELL.match(lines[i].strip()).groups(""))
            for i in range(top + 1, bottom)
            if i != mid
        }
        w0 = max(len(a) for a, _ in rows.values())
        w1 = max(len(b) for _, b in rows.values())
        border = f"{indent}{'=' * w0}  {'=' * w1}"
        for i in range(top, bottom + 1):
            if i in rows:
                a, b = rows[i]
                lines[i] = f"{indent}{a.ljust(w0)}  {b}".rstrip()
            else:
                lines[i] = border


def _fix_narrow_tables(app, what, name, obj, options, lines):
    if what == "module" and name in NARROW_TABLES:
        _relayout_two_column_tables(lines)


def setup(app):
    """Register the docstring handler above."""
    app.connect("autodoc-process-docstring", _fix_narrow_tables)
