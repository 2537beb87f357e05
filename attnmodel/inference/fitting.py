"""One entry point for fitting, whichever the inference method.

``fit(data, family, method="em" | "nuts")`` returns the shared result tree
(:mod:`attnmodel.results.tree`). The methods are looked up by name in
:data:`attnmodel.inference.registry.METHODS`: MAP-EM through
:func:`attnmodel.inference.em.fit_em` and
:func:`attnmodel.results.em.em_to_datatree`, NUTS through
:func:`attnmodel.inference.nuts.sample_nuts` (imported only when asked for,
since it loads PyMC).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import xarray as xr

from attnmodel.data.votes import require_vote_data
from attnmodel.inference.registry import METHODS

__all__ = ["fit", "data_provenance"]


def data_provenance(data) -> dict[str, Any] | None:
    """Where ``data`` was read from: its ``source`` and ``read_options``, when it records them.

    Returns
    -------
    dict or None
        ``{"source": ..., "options": ...}`` (the result tree's ``data_source``
        and ``data_options``), or None when the data records neither.
    """
    source = getattr(data, "source", None)
    options = getattr(data, "read_options", None)
    if source is None and options is None:
        return None
    return {"source": source, "options": options}


def fit(
    data,
    family,
    *,
    method: str = "em",
    mu=None,
    mu_prior=None,
    eta_star: float = 0.5,
    seed: int | None = 0,
    progressbar: bool = True,
    provenance: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> xr.DataTree:
    """Fit the attentiveness model and return the shared result tree.

    Parameters
    ----------
    data : VoteData
        The votes (:meth:`VoteData.from_file`, :meth:`VoteData.from_frame`); a
        DataFrame or a path is refused with a
        :class:`~attnmodel.errors.VoteDataTypeError` naming them.
    family : str or Family
        ``"two_point"``, ``"k_point"``, ``"beta"``, ``"beta_mixture"`` or
        ``"logistic_normal_mixture"``.
    method : str
        A name in :data:`attnmodel.inference.registry.METHODS`: ``"em"``
        (MAP-EM: fast, exact per-user posteriors at the MAP estimate) or
        ``"nuts"`` (full posterior of the global parameters).
    mu, mu_prior
        Known win rates and the prior of the unknown ones; see
        :func:`attnmodel.model.priors.resolve_mu`.
    eta_star : float
        Cut of ``p_above = P(eta_j >= eta_star | votes)`` in the result.
    seed : int, optional
        Seeds EM's random starts and its ``eta`` draws, or the sampler.
    progressbar : bool
        Show the sampler's progress (NUTS; MAP-EM has none).
    provenance : mapping, optional
        Where the data came from, ``{"source": ..., "options": {...}}``,
        written to the tree's ``data_source`` and ``data_options``
        (:func:`attnmodel.results.tree.build_tree`). Default: taken from the
        data (:func:`data_provenance`), when it records it.
    **kwargs
        ``method="em"``: ``n_draws``, ``store_eta`` and ``hdi_prob`` go to
        :func:`~attnmodel.results.em.em_to_datatree`, everything else to
        :func:`~attnmodel.inference.em.fit_em` (``n_components``, ``n_init``,
        ``max_iter``, ...). ``method="nuts"``: passed to
        :func:`attnmodel.inference.nuts.sample_nuts`.

    Returns
    -------
    xarray.DataTree
    """
    data = require_vote_data(data, "fit")
    if method not in METHODS:
        raise ValueError(
            f"unknown method {method!r}; choose one of {', '.join(map(repr, METHODS))}"
        )
    if provenance is None:
        provenance = data_provenance(data)
    if provenance is not None:
        kwargs["provenance"] = provenance
    return METHODS[method](
        data,
        family,
        mu=mu,
        mu_prior=mu_prior,
        eta_star=eta_star,
        seed=seed,
        progressbar=progressbar,
        **kwargs,
    )
