"""One entry point for fitting, whichever the inference method.

``fit(data, family, method="em" | "nuts")`` returns the shared result tree
(:mod:`attnmodel.results.tree`): MAP-EM through :func:`attnmodel.inference.em.fit_em` and
:func:`attnmodel.results.tree.em_to_datatree`, NUTS through
:func:`attnmodel.inference.nuts.sample_nuts` (imported only when asked for, since it
loads PyMC).
"""

from __future__ import annotations

import inspect
from typing import Any

import xarray as xr

__all__ = ["fit", "METHODS"]

#: Inference methods :func:`fit` knows.
METHODS = ("em", "nuts")
#: Keyword arguments of :func:`fit` with ``method="em"`` that shape the result tree.
_TREE_KWARGS = ("n_draws", "store_eta", "hdi_prob")


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
    **kwargs: Any,
) -> xr.DataTree:
    """Fit the attentiveness model and return the shared result tree.

    Parameters
    ----------
    data : VoteData
    family : str or Family
        ``"two_point"``, ``"k_point"``, ``"beta"``, ``"beta_mixture"`` or
        ``"logistic_normal_mixture"``.
    method : {"em", "nuts"}
        MAP-EM (fast, exact per-user posteriors at the MAP estimate) or NUTS
        (full posterior of the global parameters).
    mu, mu_prior
        Known win rates and the prior of the unknown ones; see
        :func:`attnmodel.model.priors.resolve_mu`.
    eta_star : float
        Cut of ``p_above = P(eta_j >= eta_star | votes)`` in the result.
    seed : int, optional
        Seeds EM's random starts and its ``eta`` draws, or the sampler.
    progressbar : bool
        Show the sampler's progress (NUTS; MAP-EM has none).
    **kwargs
        ``method="em"``: ``n_draws``, ``store_eta`` and ``hdi_prob`` go to
        :func:`~attnmodel.results.tree.em_to_datatree`, everything else to
        :func:`~attnmodel.inference.em.fit_em` (``n_components``, ``n_init``,
        ``max_iter``, ...). ``method="nuts"``: passed to
        :func:`attnmodel.inference.nuts.sample_nuts`.

    Returns
    -------
    xarray.DataTree
    """
    if method not in METHODS:
        raise ValueError(
            f"unknown method {method!r}; choose one of {', '.join(map(repr, METHODS))}"
        )
    if method == "nuts":
        from attnmodel.inference.nuts import sample_nuts

        return sample_nuts(
            data,
            family,
            mu=mu,
            mu_prior=mu_prior,
            eta_star=eta_star,
            seed=seed,
            progressbar=progressbar,
            **kwargs,
        )

    from attnmodel.inference.em import fit_em
    from attnmodel.results.tree import em_to_datatree

    tree_kw = {k: kwargs.pop(k) for k in _TREE_KWARGS if k in kwargs}
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
            f"{sorted(allowed | set(_TREE_KWARGS))}"
        )
    em = fit_em(data, family, mu=mu, mu_prior=mu_prior, seed=seed, **kwargs)
    return em_to_datatree(em, eta_star=eta_star, seed=seed, **tree_kw)
