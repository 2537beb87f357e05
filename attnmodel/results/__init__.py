"""The result of a fit as an ArviZ DataTree: building, summarising, saving, loading."""

from attnmodel.results.tree import (
    RESULT_MARKER,
    convergence_table,
    diagnostic_checks,
    draw_eta,
    em_to_datatree,
    family_params,
    flat_globals,
    global_vars,
    load,
    mu_spec_to_json,
    n_divergences,
    save,
    summarize,
    user_table,
)

__all__ = [
    "RESULT_MARKER",
    "convergence_table",
    "diagnostic_checks",
    "draw_eta",
    "em_to_datatree",
    "family_params",
    "flat_globals",
    "global_vars",
    "load",
    "mu_spec_to_json",
    "n_divergences",
    "save",
    "summarize",
    "user_table",
]
