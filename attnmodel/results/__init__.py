"""The result of a fit as an ArviZ DataTree: its schema and builder, summaries, files.

- :mod:`attnmodel.results.tree`: the documented schema, the marker and the one
  builder every inference method calls, and the checks of a tree;
- :mod:`attnmodel.results.em`: a MAP-EM fit as a tree;
- :mod:`attnmodel.results.summary`: headline numbers, diagnostics, the user table;
- :mod:`attnmodel.results.io`: ``save`` and ``load``.
"""

from attnmodel.results.em import em_to_datatree
from attnmodel.results.io import load, save
from attnmodel.results.summary import (
    align_to_data,
    convergence_table,
    diagnostic_checks,
    family_params,
    flat_globals,
    global_vars,
    n_divergences,
    point_estimate,
    scalar_hdi,
    summarize,
    user_table,
)
from attnmodel.results.tree import (
    RESULT_MARKER,
    build_tree,
    is_result,
    mu_spec_to_json,
    require_result,
    validate_tree,
)

__all__ = [
    "RESULT_MARKER",
    "align_to_data",
    "build_tree",
    "convergence_table",
    "diagnostic_checks",
    "em_to_datatree",
    "family_params",
    "flat_globals",
    "global_vars",
    "is_result",
    "load",
    "mu_spec_to_json",
    "n_divergences",
    "point_estimate",
    "require_result",
    "save",
    "scalar_hdi",
    "summarize",
    "user_table",
    "validate_tree",
]
