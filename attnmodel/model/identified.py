"""The identified parameterisation of the marginal model.

Only ``d = eta (2 mu - 1)`` reaches the votes: with every ``mu`` unknown,
scaling all ``c_k = 2 mu_k - 1`` up and ``eta`` down leaves the likelihood
(nearly) unchanged, and NUTS crawls along that ridge in the family's own
coordinates. Here the sampler moves in what the votes pin down (for beta: the
mean and variance of ``d`` on the first pair; for atoms: the atoms of ``d``;
for other pairs: ``c_k / c_1``), plus one coordinate for the scale ``c_1``
within the interval those leave admissible. The density is the model's prior
times the likelihood times the Jacobian of the map.

This module holds what is common to every family (the pair ratios, the scale's
range and coordinate, the priors and the Jacobian's shared terms); each family
with ``identified = True`` supplies its part
(:meth:`attnmodel.model.families.base.Family.identified_params` and
:meth:`~attnmodel.model.families.base.Family.identified_head`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import special

from attnmodel.model.coords import array_ops, log_sigmoid_slope
from attnmodel.model.priors import MEAN_CONCENTRATION, MuSpec, Prior, flat_priors
from attnmodel.model.pymc_mu import mu_prior_logp

if TYPE_CHECKING:
    from attnmodel.model.families import Family

__all__ = ["identified_globals", "identified_point", "pair_scale_supports", "scale_bounds"]


def pair_scale_supports(spec: MuSpec) -> tuple[np.ndarray, np.ndarray]:
    """Range of each pair's ``c_k = 2 mu_k - 1`` that its ``mu`` prior's support allows."""
    lo_k = np.array([max(2.0 * p.support[0] - 1.0, 0.0) for p in spec.priors])
    hi_k = np.array([2.0 * p.support[1] - 1.0 for p in spec.priors])
    return lo_k, hi_k


def scale_bounds(spec: MuSpec, rho, xp):
    """Range of ``c_1 = 2 mu_1 - 1`` keeping each ``mu_k = (1 + c_1 rho_k) / 2`` in its support.

    ``rho`` holds ``c_k / c_1`` for the pairs after the first; ``xp`` is numpy
    or ``pytensor.tensor``.
    """
    maximum, minimum, _, _ = array_ops(xp)
    lo_k, hi_k = pair_scale_supports(spec)
    lo, hi = lo_k[0], hi_k[0]
    if len(spec.pairs) > 1:
        lo = maximum(lo, xp.max(lo_k[1:] / rho))
        hi = minimum(hi, xp.min(hi_k[1:] / rho))
    return lo, hi


def identified_globals(fam: Family, grid, priors: dict[str, Prior], spec: MuSpec):
    """Create the identified coordinates and, from them, the family parameters and ``mu``.

    Called inside a ``pymc.Model``; adds the prior and the Jacobian as one
    potential. Returns ``(params, mu, feasible)``.
    """
    n_pairs = len(spec.pairs)
    mu_priors = [spec.priors[k] for k in range(n_pairs)]
    n_fixed = fam.n_identified_coords
    size = n_fixed + n_pairs - 1
    z = pm.Flat("identified_coords", shape=size, initval=np.zeros(size))
    supports = pair_scale_supports(spec)
    rho, log_jac_rho = fam.identified_ratios(z, supports, grid)
    c_lo, c_hi = scale_bounds(spec, rho, pt)
    params, c, lo, hi, feasible, logdet = fam.identified_params(z, c_lo, c_hi, grid, supports)
    c_index = n_fixed - 1
    c_all = pt.concatenate([c[None], c * rho]) if n_pairs > 1 else c[None]
    mu = pm.Deterministic("mu", 0.5 + 0.5 * c_all, dims="pair")
    # The model's prior, in the family's own coordinates.
    log_prior = mu_prior_logp(mu_priors, mu)
    flat = flat_priors(fam, grid)
    for name, prior in priors.items():
        if name == MEAN_CONCENTRATION or prior == flat[name]:
            continue  # the joint prior is added below; flat ones are constant on the box
        log_prior = log_prior + pt.sum(pm.logp(prior.pymc_dist(), params[name]))
    log_prior = log_prior + fam.pymc_joint_prior(params, priors, grid)
    # The scale: logistic on its interval; the other pairs: c_k = c rho_k, rho_k = exp(z_k).
    logdet = logdet + pt.log(hi - lo) + log_sigmoid_slope(z[c_index])
    if n_pairs > 1:
        logdet = logdet + log_jac_rho + (n_pairs - 1) * pt.log(c)
    pm.Potential("prior_and_jacobian", pt.switch(feasible, log_prior + logdet, -np.inf))
    return params, mu, feasible


def identified_point(attn, params: Mapping[str, Any], mu: np.ndarray) -> np.ndarray:
    """Identified coordinates of given family parameters and ``mu`` (a starting point).

    ``attn`` is the :class:`attnmodel.model.pymc_model.AttnModel` built with
    this parameterisation (its family, ``mu`` specification and grid are used).

    Values on or beyond the edges of the admissible set (an EM estimate at a
    box bound, an atom at 1) are pulled slightly inside, since the
    coordinates map the open set.
    """
    c_all = 2.0 * np.asarray(mu, dtype=float) - 1.0
    c = float(c_all[0])
    rho = c_all[1:] / c
    c_lo, c_hi = scale_bounds(attn.mu_spec, rho, np)
    supports = pair_scale_supports(attn.mu_spec)
    fam = attn.family
    head, lo, hi = fam.identified_head(params, c, c_lo, c_hi, attn.grid, supports)
    frac = np.clip((c - lo) / (hi - lo), 0.02, 0.98) if hi > lo else 0.5
    tail = fam.identified_ratio_coords(params, c, rho, supports, attn.grid)
    z = np.array([*head, special.logit(frac), *tail], dtype=float)
    return z
