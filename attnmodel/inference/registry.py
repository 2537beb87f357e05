"""Inference methods by name: what :func:`attnmodel.inference.fitting.fit` dispatches to.

Each entry of :data:`METHODS` maps a method's name to a function
``run(data, family, *, mu, mu_prior, eta_star, seed, progressbar, **kwargs)``
that fits the model and returns the shared result tree
(:mod:`attnmodel.results.tree`, built by
:func:`~attnmodel.results.tree.build_tree`). A runner imports its method's
module when called, so that naming a method loads nothing heavy (NUTS loads
PyMC). A new method (SMC, ADVI, Pathfinder) is one module with its runner and
one line here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import xarray as xr

__all__ = ["METHODS", "run_em", "run_nuts"]

#: Keyword arguments of ``method="em"`` that shape the result tree rather than the fit.
EM_TREE_KWARGS = ("n_draws", "store_eta", "hdi_prob", "provenance")


def run_em(
    data, family, *, mu, mu_prior, eta_star, seed, progressbar, **kwargs: Any
) -> xr.DataTree:
    """MAP-EM and its tree.

    :func:`attnmodel.inference.em.fit_em`, then
    :func:`attnmodel.results.em.em_to_datatree`.

    ``n_draws``, ``store_eta``, ``hdi_prob`` and ``provenance`` go to the tree,
    every other keyword to :func:`~attnmodel.inference.em.fit_em`; MAP-EM shows
    no progress bar.

    Raises
    ------
    TypeError
        A keyword neither takes.
    """
    from attnmodel.inference.em import fit_em
    from attnmodel.results.em import em_to_datatree

    tree_kw = {k: kwargs.pop(k) for k in EM_TREE_KWARGS if k in kwargs}
    allowed = set(inspect.signature(fit_em).parameters) - {
        "data",
        "family",
        "mu",
        "mu_prior",
        "seed",
    }
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(
            f"fit(method='em') got unexpected argument(s) {unknown}; it takes "
            f"{sorted(allowed | set(EM_TREE_KWARGS))}"
        )
    em = fit_em(data, family, mu=mu, mu_prior=mu_prior, seed=seed, **kwargs)
    return em_to_datatree(em, eta_star=eta_star, seed=seed, **tree_kw)


def run_nuts(data, family, **kwargs: Any) -> xr.DataTree:
    """NUTS: every keyword goes to :func:`attnmodel.inference.nuts.sample_nuts`."""
    from attnmodel.inference.nuts import sample_nuts

    return sample_nuts(data, family, **kwargs)


#: Inference method name -> runner returning a result tree.
METHODS: dict[str, Callable[..., xr.DataTree]] = {
    "em": run_em,
    "nuts": run_nuts,
}
