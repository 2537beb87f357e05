"""Sphinx configuration of the attnmodel documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``
(the test suite does, warnings as errors). Pages are Markdown (MyST); the API
reference comes from the numpy-style docstrings. Nothing here runs experiments or
notebooks: ``reproduce.md`` and ``generated/`` are written by ``docs/reproduce.py``
and ``docs/cli_examples.py`` and committed.
"""

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
