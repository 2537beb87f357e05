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

__all__ = ["mu_prior_logp", "mu_rv"]


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
