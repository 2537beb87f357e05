"""The ``mu`` prior in PyMC: the truncated, scaled Beta of a ``BetaPrior``.

See :class:`attnmodel.model.priors.BetaPrior`.

Shared by the standard coordinates of :mod:`attnmodel.model.pymc_model` (a
random variable per unknown ``mu``) and the identified ones of
:mod:`attnmodel.model.identified` (a log density of a deterministic ``mu``).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions import transforms
from scipy import stats

from attnmodel.model.priors import BetaPrior

__all__ = ["mu_prior_logp", "mu_rv", "structured_mu"]


def _arrays(priors: list[BetaPrior]):
    """Shapes, support before truncation, truncation point and log normaliser, as arrays."""

    def arr(f):
        return np.array([f(p) for p in priors])

    return (
        arr(lambda p: p.alpha),
        arr(lambda p: p.beta),
        arr(lambda p: p.lower),
        arr(lambda p: p.upper),
        arr(lambda p: p.support[0]),
        arr(lambda p: p.log_norm),
    )


def _mu_logp(value, a, b, lower, upper, lo, log_norm):
    """Log density of ``lower + (upper - lower) * Beta(a, b)`` truncated to ``(lo, upper]``."""
    x = (value - lower) / (upper - lower)
    dens = (a - 1) * pt.log(x) + (b - 1) * pt.log1p(-x) - log_norm
    return pt.switch(pt.and_(pt.gt(value, lo), pt.le(value, upper)), dens, -np.inf)


def _mu_random(a, b, lower, upper, lo, log_norm, rng=None, size=None):
    rng = np.random.default_rng(rng)
    f_lo = stats.beta.cdf((lo - lower) / (upper - lower), a, b)
    x = stats.beta.ppf(rng.uniform(f_lo, 1.0, size=size), a, b)
    return lower + (upper - lower) * x


def _vector_interval(lower: np.ndarray, upper: np.ndarray):
    """Interval transform with per-element bounds."""
    lo_t, hi_t = pt.as_tensor_variable(lower), pt.as_tensor_variable(upper)
    return transforms.Interval(bounds_fn=lambda *inputs: (lo_t, hi_t))


def mu_rv(name: str, priors: list[BetaPrior], dims: str):
    """A random variable ``name`` (one element per prior) with the truncated Beta priors."""
    a, b, lower, upper, lo, log_norm = _arrays(priors)
    return pm.CustomDist(
        name,
        a,
        b,
        lower,
        upper,
        lo,
        log_norm,
        logp=_mu_logp,
        random=_mu_random,
        dims=dims,
        default_transform=_vector_interval(lo, upper),
        initval=np.array([p.mode() for p in priors]),
    )


def mu_prior_logp(priors: list[BetaPrior], mu):
    """Sum of the log priors of the tensor ``mu`` (one element per prior)."""
    return pt.sum(_mu_logp(mu, *_arrays(priors)))


# -- structures on mu across pairs (attnmodel.model.mu_structure) ---------------


def _pooled_logp(value, a, b):
    """Log density of ``z = logit(x)``, ``x ~ Beta(a, b)``: ``a log x + b log(1 - x) - log B``."""
    log_beta = pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b)
    return -a * pt.softplus(-value) - b * pt.softplus(value) - log_beta


def _pooled_random(a, b, rng=None, size=None):
    rng = np.random.default_rng(rng)
    x = rng.beta(a, b, size=size)
    return np.log(x) - np.log1p(-x)


def structured_mu(structure, spec, model: pm.Model):
    """``mu`` (dims ``pair``) under a pooled or Bradley-Terry structure, and the new globals.

    Pooled: ``mu_pop_mode ~ Beta(mode_prior)``, ``mu_pop_concentration ~
    Gamma(shape, rate)``, their stack as ``mu_hyper`` (dims ``hyper``), the
    unknown pairs' ``mu_logit = logit(2 mu - 1)`` from the population and ``mu``
    deterministic. Bradley-Terry: ``theta ~
    ZeroSumNormal(sigma)`` (dims ``model``) and ``mu`` deterministic. See
    :mod:`attnmodel.model.mu_structure`.

    Returns
    -------
    mu : tensor
    names : list of str
        The structure's variables in the result's ``posterior`` group.
    """
    from attnmodel.model.mu_structure import BradleyTerryMu, PooledMu

    if isinstance(structure, BradleyTerryMu):
        model.add_coord("model", list(structure.models))
        theta = pm.ZeroSumNormal("theta", sigma=structure.sigma, dims="model")
        diff = theta[structure.index_a] - theta[structure.index_b]
        return pm.Deterministic("mu", pt.sigmoid(diff), dims="pair"), ["theta"]
    if not isinstance(structure, PooledMu):
        raise TypeError(f"structured_mu needs a pooled or Bradley-Terry structure, got {structure}")
    model.add_coord("hyper", list(structure.hyper_names))
    a0, b0 = structure.mode_prior
    m = pm.Beta("mu_pop_mode", alpha=a0, beta=b0)
    c = pm.Gamma(
        "mu_pop_concentration",
        alpha=structure.concentration_shape,
        beta=structure.concentration_rate,
    )
    pm.Deterministic("mu_hyper", pt.stack([m, c]), dims="hyper")
    a, b = 1.0 + m * c, 1.0 + (1.0 - m) * c
    unknown, pairs = spec.unknown, spec.pairs
    all_unknown = unknown.size == len(pairs)
    if not all_unknown:
        model.add_coord("pair_unknown", [pairs[k] for k in unknown])
    z = pm.CustomDist(
        "mu_logit",
        a,
        b,
        logp=_pooled_logp,
        random=_pooled_random,
        dims="pair" if all_unknown else "pair_unknown",
        initval=np.zeros(unknown.size),
    )
    free = 0.5 + 0.5 * pt.sigmoid(z)
    if all_unknown:
        return pm.Deterministic("mu", free, dims="pair"), ["mu_hyper"]
    full = pt.set_subtensor(pt.as_tensor_variable(spec.known.copy())[unknown], free)
    return pm.Deterministic("mu", full, dims="pair"), ["mu_hyper"]
