"""Priors of the model's global parameters: each pair's win rate ``mu`` and the family's.

The family parameters' priors are :class:`Prior` objects (a PyMC distribution
name and its parameters) with numpy log densities, truncated to the family's
admissible box, and, for the Beta shapes, a joint :class:`MeanConcentration`
prior in the coordinates people read (mean and concentration of ``P_eta``).
:func:`default_priors` gives weakly informative defaults that keep away from
the box's edges (the box is the quadrature's resolution limit and stays a
hard bound); :func:`flat_priors` (``priors="flat"``) the paper's flat priors
on the box; :func:`resolve_priors` combines the defaults with those given.
:class:`ModelPrior` gathers every global prior for MAP-EM, which thus
maximises the posterior the PyMC model states without importing PyMC (the
mode in the coordinates :class:`MeanConcentration` documents).

The rest of this docstring is about ``mu``.

Each model pair's ``mu`` is either known (a number in ``(1/2, 1]``) or unknown
with a prior. Only ``eta_j * (2 mu - 1)`` is identified by the votes: scaling
every ``2 mu_k - 1`` up by a factor and every ``eta_j`` down by the same factor
leaves all vote probabilities unchanged, as long as no ``eta_j`` exceeds 1 and
no ``mu_k`` exceeds 1. With ``mu`` unknown the prior therefore sets that one
overall scale; for the two-point and K-point families it is the only thing
that sets it.

The default prior is flat-topped over the plausible range rather than the
paper's ``Beta(8, 2)``: ``2 mu - 1 ~ Beta(2, 2)``, that is ``mu`` on
``(1/2, 1)`` with its mode at 3/4 and zero density at both ends. It excludes
``mu <= 1/2`` (the model's premise is that one model is stronger), keeps away
from the ``mu = 1`` boundary where the scale of ``eta`` collapses, and, being
wide, suits logs with many pairs of very different strength. Users with a few
dozen expert labels should build an informative prior with
:meth:`BetaPrior.from_expert_labels`; the paper's single-pair choice is
``BetaPrior(8, 2)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = [
    "BetaPrior",
    "DEFAULT_LOGIT_MEAN",
    "DEFAULT_LOGIT_SD",
    "DEFAULT_MEAN_CONCENTRATION",
    "DEFAULT_MU_PRIOR",
    "MEAN_CONCENTRATION",
    "MeanConcentration",
    "ModelPrior",
    "MuSpec",
    "NUMPY_PRIORS",
    "Prior",
    "check_priors",
    "default_priors",
    "flat_priors",
    "resolve_mu",
    "resolve_priors",
]


@dataclass(frozen=True)
class BetaPrior:
    """Scaled Beta prior on ``mu``, truncated to ``mu > 1/2``.

    ``mu = lower + (upper - lower) * X`` with ``X ~ Beta(alpha, beta)``.

    Parameters
    ----------
    alpha, beta : float
        Shapes, both ``>= 1`` so that the log prior is concave and MAP-EM's
        ``mu`` update has a unique maximiser.
    lower, upper : float
        Support before truncation, ``0 <= lower < upper <= 1`` and ``upper > 1/2``.
    """

    alpha: float
    beta: float
    lower: float = 0.0
    upper: float = 1.0

    def __post_init__(self) -> None:
        if not (self.alpha >= 1 and self.beta >= 1):
            raise ValueError(
                "mu prior shapes must be >= 1 (log-concave), "
                f"got alpha={self.alpha}, beta={self.beta}"
            )
        if not (0 <= self.lower < self.upper <= 1 and self.upper > 0.5):
            raise ValueError(
                f"mu prior support must satisfy 0 <= lower < upper <= 1 and upper > 1/2, "
                f"got [{self.lower}, {self.upper}]"
            )

    @classmethod
    def from_expert_labels(cls, wins: int, total: int) -> BetaPrior:
        """Beta-binomial posterior of ``mu`` from ``wins`` of ``total`` expert-labelled pairs.

        Starts from a uniform prior, so the result is ``Beta(1 + wins, 1 + total - wins)``.
        """
        if not (0 <= wins <= total):
            raise ValueError(f"need 0 <= wins <= total, got wins={wins}, total={total}")
        return cls(1.0 + wins, 1.0 + total - wins)

    @property
    def support(self) -> tuple[float, float]:
        """Interval on which the truncated prior has mass."""
        return max(self.lower, 0.5), self.upper

    def _x(self, mu):
        return (np.asarray(mu, dtype=np.float64) - self.lower) / (self.upper - self.lower)

    @functools.cached_property
    def log_norm(self) -> float:
        """Log normaliser: Beta function, scale and the mass left after truncation."""
        lo = self.support[0]
        trunc = stats.beta.logsf(self._x(lo), self.alpha, self.beta) if lo > self.lower else 0.0
        scale = np.log(self.upper - self.lower)
        return float(special.betaln(self.alpha, self.beta) + scale + trunc)

    def logpdf(self, mu: np.ndarray) -> np.ndarray:
        """Log density of the truncated prior (``-inf`` outside its support)."""
        mu = np.asarray(mu, dtype=np.float64)
        lo, hi = self.support
        x = self._x(mu)
        with np.errstate(divide="ignore", invalid="ignore"):
            dens = (
                special.xlogy(self.alpha - 1, x)
                + special.xlog1py(self.beta - 1, -x)
                - self.log_norm
            )
        return np.where((mu > lo) & (mu <= hi), dens, -np.inf)

    def dlogpdf(self, mu: np.ndarray) -> np.ndarray:
        """First derivative of :meth:`logpdf` in ``mu``."""
        mu = np.asarray(mu, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.alpha - 1) / (mu - self.lower) - (self.beta - 1) / (self.upper - mu)

    def d2logpdf(self, mu: np.ndarray) -> np.ndarray:
        """Second derivative of :meth:`logpdf` in ``mu``."""
        mu = np.asarray(mu, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (
                -(self.alpha - 1) / (mu - self.lower) ** 2
                - (self.beta - 1) / (self.upper - mu) ** 2
            )

    def mode(self) -> float:
        """Mode of the truncated prior."""
        a, b = self.alpha, self.beta
        x = 0.5 if a == b == 1 else (a - 1) / (a + b - 2)
        lo, hi = self.support
        return float(np.clip(self.lower + (self.upper - self.lower) * x, lo + 1e-6, hi))

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from the truncated prior (inverse-CDF, exact)."""
        lo, _ = self.support
        f_lo = stats.beta.cdf(self._x(lo), self.alpha, self.beta)
        x = stats.beta.ppf(rng.uniform(f_lo, 1.0, size=size), self.alpha, self.beta)
        return self.lower + (self.upper - self.lower) * x

    def __str__(self) -> str:
        if (self.lower, self.upper) == (0.0, 1.0):
            return f"Beta({self.alpha:g}, {self.beta:g}) truncated to mu > 1/2"
        return f"{self.lower:g} + {self.upper - self.lower:g} * Beta({self.alpha:g}, {self.beta:g})"


#: ``2 mu - 1 ~ Beta(2, 2)``; see the module docstring for why.
DEFAULT_MU_PRIOR = BetaPrior(2.0, 2.0, lower=0.5, upper=1.0)


@dataclass(frozen=True)
class MuSpec:
    """Per-pair ``mu``: known values and priors for the rest.

    Attributes
    ----------
    pairs : tuple of str
    known : ndarray, shape (P,)
        Known ``mu`` or NaN.
    priors : tuple
        ``BetaPrior`` for unknown pairs, None for known ones.
    """

    pairs: tuple[str, ...]
    known: np.ndarray
    priors: tuple[BetaPrior | None, ...]

    @property
    def unknown(self) -> np.ndarray:
        """Indices of pairs whose ``mu`` is estimated."""
        return np.flatnonzero(np.isnan(self.known))

    def initial(self) -> np.ndarray:
        """Known values, and prior modes for the unknown ones, shape (P,) (a fresh copy)."""
        return self._initial.copy()

    @functools.cached_property
    def _initial(self) -> np.ndarray:
        out = self.known.copy()
        for k in self.unknown:
            out[k] = self.priors[k].mode()  # type: ignore[union-attr]
        return out

    def log_prior(self, mu: np.ndarray) -> float:
        """Sum of the log priors of the unknown ``mu``."""
        return float(sum(self.priors[k].logpdf(mu[k]) for k in self.unknown))  # type: ignore[union-attr]

    def describe(self) -> dict[str, str]:
        """Pair -> human-readable description (for attributes and reports)."""
        return {
            p: (
                f"known {self.known[k]:g}"
                if np.isfinite(self.known[k])
                else f"prior {self.priors[k]}"
            )
            for k, p in enumerate(self.pairs)
        }


def _as_prior(value) -> BetaPrior:
    if isinstance(value, BetaPrior):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (2, 4):
        return BetaPrior(*map(float, value))
    raise ValueError(f"a mu prior is a BetaPrior or (alpha, beta[, lower, upper]), got {value!r}")


def resolve_mu(
    pairs: Sequence[str],
    mu: float | Mapping[str, float] | None = None,
    mu_prior: BetaPrior | Sequence[float] | Mapping[str, BetaPrior | Sequence[float]] | None = None,
) -> MuSpec:
    """Combine known values and priors into a :class:`MuSpec`.

    Parameters
    ----------
    pairs : sequence of str
        Pair labels of the data.
    mu : float or mapping, optional
        A number applies to every pair; a mapping gives known values for some
        pairs (the rest get priors).
    mu_prior : BetaPrior, (alpha, beta[, lower, upper]) or mapping, optional
        Prior for the pairs whose ``mu`` is not known; defaults to
        :data:`DEFAULT_MU_PRIOR`.
    """
    pairs = tuple(str(p) for p in pairs)
    known = np.full(len(pairs), np.nan)
    if mu is not None:
        if isinstance(mu, Mapping):
            unknown_keys = [k for k in mu if str(k) not in pairs]
            if unknown_keys:
                raise ValueError(
                    f"mu given for unknown pair(s) {unknown_keys}; pairs are {list(pairs)}"
                )
            for k, v in mu.items():
                known[pairs.index(str(k))] = float(v)
        else:
            known[:] = float(mu)
    for k, p in enumerate(pairs):
        v = known[k]
        if np.isnan(v):
            continue
        if not np.isfinite(v) or v > 1:
            raise ValueError(f"mu for pair {p!r} is {v}; it must lie in (1/2, 1]")
        if v <= 0.5:
            raise ValueError(
                f"mu for pair {p!r} is {v} <= 1/2: either the labels of the two models are "
                "swapped (the stronger model must be the one counted as a win) or the models "
                "are equally strong, in which case votes say nothing about attentiveness"
            )
    if isinstance(mu_prior, Mapping):
        bad = [k for k in mu_prior if str(k) not in pairs]
        if bad:
            raise ValueError(f"mu_prior given for unknown pair(s) {bad}; pairs are {list(pairs)}")
        by_pair = {str(k): _as_prior(v) for k, v in mu_prior.items()}
        priors = tuple(
            None if np.isfinite(known[k]) else by_pair.get(p, DEFAULT_MU_PRIOR)
            for k, p in enumerate(pairs)
        )
    else:
        prior = DEFAULT_MU_PRIOR if mu_prior is None else _as_prior(mu_prior)
        priors = tuple(None if np.isfinite(known[k]) else prior for k in range(len(pairs)))
    return MuSpec(pairs=pairs, known=known, priors=priors)


# ---------------------------------------------------------------------------
# Priors of the family parameters
# ---------------------------------------------------------------------------


def _sigma(params: Mapping[str, Any], default: float | None = 1.0) -> float:
    """PyMC's ``sigma`` or ``tau`` (precision) as a scale."""
    if "tau" in params:
        return float(params["tau"]) ** -0.5
    return float(params.get("sigma", default))


def _frozen_normal(p):
    return stats.norm(float(p.get("mu", 0.0)), _sigma(p))


def _frozen_truncated_normal(p):
    m, s = float(p.get("mu", 0.0)), _sigma(p)
    lo = -np.inf if p.get("lower") is None else float(p["lower"])
    hi = np.inf if p.get("upper") is None else float(p["upper"])
    return stats.truncnorm((lo - m) / s, (hi - m) / s, loc=m, scale=s)


def _frozen_gamma(p):
    if "mu" in p:
        m, s = float(p["mu"]), float(p["sigma"])
        return stats.gamma(m * m / (s * s), scale=s * s / m)
    return stats.gamma(float(p["alpha"]), scale=1.0 / float(p["beta"]))


def _frozen_exponential(p):
    return stats.expon(scale=float(p["scale"]) if "scale" in p else 1.0 / float(p["lam"]))


#: Scalar distributions with a scipy density: PyMC name -> (accepted parameters, frozen
#: scipy distribution in PyMC's parameterisation).
_SCIPY_DISTS: dict[str, tuple[frozenset[str], Any]] = {
    "Normal": (frozenset({"mu", "sigma", "tau"}), _frozen_normal),
    "HalfNormal": (frozenset({"sigma", "tau"}), lambda p: stats.halfnorm(scale=_sigma(p))),
    "LogNormal": (
        frozenset({"mu", "sigma", "tau"}),
        lambda p: stats.lognorm(_sigma(p), scale=np.exp(float(p.get("mu", 0.0)))),
    ),
    "Gamma": (frozenset({"alpha", "beta", "mu", "sigma"}), _frozen_gamma),
    "Exponential": (frozenset({"lam", "scale"}), _frozen_exponential),
    "Beta": (
        frozenset({"alpha", "beta"}),
        lambda p: stats.beta(float(p["alpha"]), float(p["beta"])),
    ),
    "HalfCauchy": (frozenset({"beta"}), lambda p: stats.halfcauchy(scale=float(p["beta"]))),
    "Cauchy": (
        frozenset({"alpha", "beta"}),
        lambda p: stats.cauchy(float(p["alpha"]), float(p["beta"])),
    ),
    "TruncatedNormal": (
        frozenset({"mu", "sigma", "tau", "lower", "upper"}),
        _frozen_truncated_normal,
    ),
}

#: Distributions whose log density :class:`Prior` evaluates with numpy/scipy.
NUMPY_PRIORS = ("Uniform", "Dirichlet", *_SCIPY_DISTS)

#: Compiled PyMC log densities of priors without a numpy one, by (prior, bounds).
_PYMC_LOGP_CACHE: dict[tuple, Any] = {}


def _log_diff_exp(a: float, b: float) -> float:
    """``log(exp(a) - exp(b))`` for ``a >= b``."""
    with np.errstate(divide="ignore"):
        return float(a + np.log1p(-np.exp(b - a))) if a > -np.inf else -np.inf


def _float64_params(prior: Prior) -> dict[str, Any]:
    """A prior's numeric parameters as float64 arrays (others, such as None, as they are)."""
    return {
        k: np.asarray(v, dtype=np.float64) if isinstance(v, int | float | list | tuple) else v
        for k, v in prior.params.items()
    }


@dataclass(frozen=True)
class Prior:
    """A prior for one family parameter: a PyMC distribution name and its parameters.

    The parameters follow PyMC's parameterisation (``Gamma(alpha, beta)`` with
    ``beta`` a rate, ``Normal(mu, sigma)``, ...). In a model the distribution is
    truncated to the parameter's admissible box (the range on which the
    quadrature resolves the density; see ``Family.box``), so a prior with wider
    support only loses its mass outside the box.

    :meth:`logpdf` evaluates that truncated log density with numpy/scipy for the
    distributions in :data:`NUMPY_PRIORS` (which is all MAP-EM needs, without
    PyMC); for any other PyMC distribution it compiles PyMC's own log density
    on first use. The PyMC distribution itself is created only when a PyMC
    model is built (:meth:`pymc_dist`).

    Examples
    --------
    >>> Prior("Gamma", alpha=2.0, beta=0.2)
    Prior('Gamma', alpha=2.0, beta=0.2)
    """

    dist: str
    params: dict[str, Any] = field(default_factory=dict)

    def __init__(self, dist: str, **params: Any) -> None:
        if not self.numpy_density_of(dist, params):
            import pymc as pm

            if not hasattr(pm, dist):
                raise ValueError(f"unknown PyMC distribution {dist!r} in a prior")
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "params", dict(params))

    @staticmethod
    def numpy_density_of(dist: str, params: Mapping[str, Any]) -> bool:
        """Whether ``dist`` with these parameter names has a numpy log density here."""
        if dist == "Uniform":
            return set(params) <= {"lower", "upper"}
        if dist == "Dirichlet":
            return set(params) == {"a"}
        return dist in _SCIPY_DISTS and set(params) <= _SCIPY_DISTS[dist][0]

    @property
    def has_numpy_density(self) -> bool:
        """True when :meth:`logpdf` needs no PyMC."""
        return self.numpy_density_of(self.dist, self.params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Prior({self.dist!r}{', ' if args else ''}{args})"

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.dist}({args})"

    def __hash__(self) -> int:
        return hash(repr(self))

    def pymc_dist(self, **extra: Any):
        """The unnamed PyMC distribution (imports PyMC).

        Numbers go in as float64 arrays: PyTensor would keep a Python float that
        is exact in float32 (``2.5``) as a float32 constant and evaluate the
        density in float32.
        """
        import pymc as pm

        return getattr(pm, self.dist).dist(**_float64_params(self), **extra)

    def frozen(self):
        """The frozen scipy distribution of a prior (not Uniform or Dirichlet).

        Built once per prior: freezing a scipy distribution costs more than
        evaluating it, and MAP-EM evaluates the priors thousands of times.
        """
        if self.dist not in _SCIPY_DISTS:
            raise ValueError(f"{self.dist} has no scipy distribution here")
        return _frozen_dist(self)

    def uniform_bounds(self, lower: float, upper: float) -> tuple[float, float]:
        """Support of a ``Uniform`` prior within the box ``[lower, upper]``."""
        return (
            max(lower, float(self.params.get("lower", 0.0))),
            min(upper, float(self.params.get("upper", 1.0))),
        )

    def logpdf(
        self, value: Any, lower: float | None = None, upper: float | None = None
    ) -> np.ndarray:
        """Elementwise log density, truncated to ``[lower, upper]`` when given.

        Matches ``pm.logp`` of the variable a PyMC model creates for this prior
        on that box: ``Uniform`` on the intersection of its range with the box,
        other scalar distributions through ``pm.Truncated`` (density divided by
        the mass in the box, ``-inf`` outside), ``Dirichlet`` untruncated (a
        log density of the whole weight vector, a scalar).
        """
        x = np.asarray(value, dtype=np.float64)
        if not self.has_numpy_density:
            return self._pymc_logpdf(x, lower, upper)
        if self.dist == "Dirichlet":
            a = np.asarray(self.params["a"], dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                dens = np.sum(special.xlogy(a - 1.0, x) - special.gammaln(a)) + special.gammaln(
                    a.sum()
                )
            return np.asarray(-np.inf if np.any((x < 0) | (x > 1)) else dens)
        if self.dist == "Uniform":
            lo, hi = float(self.params.get("lower", 0.0)), float(self.params.get("upper", 1.0))
            if lower is not None:
                lo, hi = self.uniform_bounds(lower, upper)
            return np.where((x >= lo) & (x <= hi), -np.log(hi - lo), -np.inf)
        closed = _CLOSED_LOGPDF.get(self.dist)
        with np.errstate(divide="ignore", invalid="ignore"):
            dens = self.frozen().logpdf(x) if closed is None else closed(x, self.params)
        if lower is None:
            return np.asarray(dens)
        log_mass = _truncated_log_mass(self, float(lower), float(upper))
        return np.where((x >= lower) & (x <= upper), dens - log_mass, -np.inf)

    def _pymc_logpdf(self, x: np.ndarray, lower: float | None, upper: float | None) -> np.ndarray:
        """PyMC's log density, compiled once per prior and box (for distributions not above)."""
        key = (repr(self), lower, upper, x.ndim)
        fn = _PYMC_LOGP_CACHE.get(key)
        if fn is None:
            import pymc as pm
            import pytensor
            import pytensor.tensor as pt

            dist = self.pymc_dist()
            if lower is not None:
                dist = pm.Truncated.dist(dist, lower=lower, upper=upper)
            value = pt.tensor("value", dtype="float64", shape=(None,) * x.ndim)
            fn = pytensor.function([value], pm.logp(dist, value), mode="FAST_COMPILE")
            _PYMC_LOGP_CACHE[key] = fn
        with np.errstate(all="ignore"):
            return np.asarray(fn(x))


#: Key of the joint mean/concentration prior of Beta shapes in a priors mapping.
MEAN_CONCENTRATION = "mean_concentration"


@functools.lru_cache(maxsize=256)
def _frozen_dist(prior: Prior):
    """The frozen scipy distribution of ``prior`` (see :meth:`Prior.frozen`)."""
    return _SCIPY_DISTS[prior.dist][1](prior.params)


@functools.lru_cache(maxsize=256)
def _truncated_log_mass(prior: Prior, lower: float, upper: float) -> float:
    """Log of the mass ``prior`` puts on ``[lower, upper]`` (the truncation's normaliser)."""
    frozen = prior.frozen()
    return _log_diff_exp(float(frozen.logcdf(upper)), float(frozen.logcdf(lower)))


def _normal_logpdf(x, p):
    m, s = float(p.get("mu", 0.0)), _sigma(p)
    return -0.5 * ((x - m) / s) ** 2 - np.log(s) - _HALF_LOG_2PI


def _lognormal_logpdf(x, p):
    m, s = float(p.get("mu", 0.0)), _sigma(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_x = np.log(x)
        dens = -0.5 * ((log_x - m) / s) ** 2 - np.log(s) - _HALF_LOG_2PI - log_x
    return np.where(x > 0, dens, -np.inf)


def _beta_logpdf(x, p):
    a, b = float(p["alpha"]), float(p["beta"])
    dens = special.xlogy(a - 1.0, x) + special.xlog1py(b - 1.0, -x) - special.betaln(a, b)
    return np.where((x >= 0) & (x <= 1), dens, -np.inf)


_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)

#: Closed-form log densities of the default priors' distributions (the scipy ones
#: cost more in call overhead than in arithmetic for the scalars MAP-EM asks about).
_CLOSED_LOGPDF = {"Normal": _normal_logpdf, "LogNormal": _lognormal_logpdf, "Beta": _beta_logpdf}


@functools.lru_cache(maxsize=64)
def _box_log_mass(joint: MeanConcentration, lo: float, hi: float) -> float:
    """Log prior mass of ``[lo, hi]^2`` in (alpha, beta) under ``joint`` (1-D quadrature).

    For a concentration ``k`` the box leaves the means between
    ``max(lo / k, 1 - hi / k)`` and ``min(hi / k, 1 - lo / k)``.
    """
    from scipy import integrate

    m_dist, k_dist = joint.mean.frozen(), joint.concentration.frozen()

    def integrand(k):
        m_lo, m_hi = max(lo / k, 1.0 - hi / k), min(hi / k, 1.0 - lo / k)
        return float(k_dist.pdf(k) * max(m_dist.cdf(m_hi) - m_dist.cdf(m_lo), 0.0))

    mass, _ = integrate.quad(
        integrand, 2.0 * lo, 2.0 * hi, points=[lo + hi], limit=400, epsabs=1e-14, epsrel=1e-12
    )
    return float(np.log(mass))


@dataclass(frozen=True)
class MeanConcentration:
    """Joint prior of Beta shapes ``(alpha, beta)`` through their mean and concentration.

    ``m = alpha / (alpha + beta) ~ mean`` and ``kappa = alpha + beta ~
    concentration``, independently, truncated to the box ``[lo, hi]^2`` of the
    shapes (and normalised on it). As a density of the shapes themselves,
    the coordinates in which the model states it, it is

        p(alpha, beta) = p_m(m) p_kappa(kappa) / kappa / Z_box

    (``1 / kappa`` is the Jacobian of ``(alpha, beta) -> (m, kappa)``): this is
    :meth:`logpdf`, and what the PyMC model states.

    A mode depends on the coordinates. MAP-EM takes it in
    ``(logit m, log kappa)``, the coordinates in which the prior is read, which
    are also ``(log alpha, log beta)`` up to a map of unit Jacobian: it
    maximises the posterior density in ``(alpha, beta)`` plus
    :meth:`map_log_jacobian`, ``log alpha + log beta``. In the shapes
    themselves the ``1 / kappa`` and the density of the mean near its ends
    would put the mode of the prior at a smaller concentration and nearer the
    box (for the default, at ``kappa`` about 2 instead of 8).

    Parameters
    ----------
    mean : Prior
        A distribution on (0, 1) with a scipy density (default ``Beta(1.5, 1.5)``).
    concentration : Prior
        A distribution on the positive numbers with a scipy density (default
        ``LogNormal(log 8, 0.8)``).

    Examples
    --------
    >>> joint = MeanConcentration(Prior("Beta", alpha=4.0, beta=2.0), Prior("LogNormal", sigma=1.0))
    >>> print(joint)
    mean Beta(alpha=4.0, beta=2.0), concentration LogNormal(sigma=1.0)
    """

    mean: Prior = field(default_factory=lambda: Prior("Beta", alpha=1.5, beta=1.5))
    concentration: Prior = field(
        default_factory=lambda: Prior("LogNormal", mu=float(np.log(8.0)), sigma=0.8)
    )

    def __post_init__(self) -> None:
        for role, prior in (("mean", self.mean), ("concentration", self.concentration)):
            if not isinstance(prior, Prior) or prior.dist not in _SCIPY_DISTS:
                raise ValueError(
                    f"the {role} of a MeanConcentration prior must be a Prior with a scipy "
                    f"density (one of {sorted(_SCIPY_DISTS)}), got {prior!r}"
                )

    def __str__(self) -> str:
        return f"mean {self.mean}, concentration {self.concentration}"

    def log_box_mass(self, lo: float, hi: float) -> float:
        """Log of the prior mass that falls in the box ``[lo, hi]^2`` of the shapes."""
        return _box_log_mass(self, float(lo), float(hi))

    def logpdf(self, alpha: Any, beta: Any, lo: float, hi: float) -> np.ndarray:
        """Log density in ``(alpha, beta)``, elementwise, ``-inf`` outside ``[lo, hi]^2``."""
        a = np.asarray(alpha, dtype=np.float64)
        b = np.asarray(beta, dtype=np.float64)
        kappa = a + b
        with np.errstate(divide="ignore", invalid="ignore"):
            dens = (
                self.mean.logpdf(a / kappa)
                + self.concentration.logpdf(kappa)
                - np.log(kappa)
                - self.log_box_mass(lo, hi)
            )
        inside = (a >= lo) & (a <= hi) & (b >= lo) & (b <= hi)
        return np.where(inside, dens, -np.inf)

    @staticmethod
    def map_log_jacobian(alpha: Any, beta: Any) -> np.ndarray:
        """``log |d(alpha, beta) / d(logit m, log kappa)| = log alpha + log beta``.

        Added to :meth:`logpdf` it gives the density in the coordinates whose
        mode MAP-EM takes.
        """
        return np.log(np.asarray(alpha, dtype=np.float64)) + np.log(
            np.asarray(beta, dtype=np.float64)
        )

    def pymc_logp(self, alpha, beta, lo: float, hi: float):
        """:meth:`logpdf` in PyTensor for shape tensors inside the box (imports PyMC)."""
        import pymc as pm
        import pytensor.tensor as pt

        kappa = alpha + beta
        return (
            pm.logp(self.mean.pymc_dist(), alpha / kappa)
            + pm.logp(self.concentration.pymc_dist(), kappa)
            - pt.log(kappa)
            - np.float64(self.log_box_mass(lo, hi))
        )

    def sample(self, size: int, rng: np.random.Generator, lo: float, hi: float):
        """``(alpha, beta)`` draws from the truncated prior (rejection outside the box)."""
        out_a, out_b, have = [], [], 0
        m_dist, k_dist = self.mean.frozen(), self.concentration.frozen()
        while have < size:
            m = m_dist.rvs(size=2 * size, random_state=rng)
            k = k_dist.rvs(size=2 * size, random_state=rng)
            a, b = m * k, (1.0 - m) * k
            keep = (a >= lo) & (a <= hi) & (b >= lo) & (b <= hi)
            out_a.append(a[keep])
            out_b.append(b[keep])
            have += int(keep.sum())
        return np.concatenate(out_a)[:size], np.concatenate(out_b)[:size]


#: Default mean/concentration prior of Beta shapes; see :func:`default_priors`.
DEFAULT_MEAN_CONCENTRATION = MeanConcentration()


def flat_priors(family, grid=None) -> dict[str, Prior]:
    """Flat priors on the family's admissible box (Dirichlet(1) for mixture weights).

    With these, MAP-EM is the maximum-likelihood estimate in the family's
    parameters and a MAP estimate only in ``mu`` (the paper's Algorithm 1).
    Pass ``priors="flat"`` to a fitting function to use them.

    Parameters
    ----------
    family : attnmodel.model.families.Family
    grid : LogitGrid, optional
        Quadrature of continuous families (it sets their box).
    """
    k = family.n_components
    box = family.box(grid)
    out: dict[str, Prior] = {}
    for name in family.param_names:
        if name == "weights":
            out[name] = Prior("Dirichlet", a=[1.0] * k)
        else:
            lo, hi = box[name]
            out[name] = Prior("Uniform", lower=lo, upper=hi)
    return out


#: Default priors of the logistic-normal components' logit mean and scale.
DEFAULT_LOGIT_MEAN = Prior("Normal", mu=1.0, sigma=2.5)
DEFAULT_LOGIT_SD = Prior("LogNormal", mu=0.0, sigma=0.6)


def default_priors(family, grid=None) -> dict[str, Prior | MeanConcentration]:
    """The default priors of the family parameters: weakly informative, off the box's edges.

    The box (:meth:`Family.box <attnmodel.model.families.base.Family.box>`)
    is the range the quadrature resolves; it stays a hard bound, and the
    defaults put almost no mass near it, so that an estimate there is the
    data's doing (and :func:`attnmodel.model.checks.fit_warnings` says so).

    - ``beta`` and each component of ``beta_mixture``: the shapes through their
      mean ``m = alpha / (alpha + beta)`` and concentration
      ``kappa = alpha + beta`` (:class:`MeanConcentration`), ``m ~ Beta(1.5, 1.5)``
      (no preferred attentiveness, zero density at the all-careless and
      all-attentive ends) and ``kappa ~ LogNormal(log 8, 0.8)`` (median 8,
      95% between 1.7 and 38: from nearly flat ``P_eta`` to a population whose
      users differ by about ``0.1`` in ``eta``). The shapes themselves are flat
      on the box.
    - ``logistic_normal_mixture``: each component's ``logit_mean ~ Normal(1, 2.5)``
      and ``logit_sd ~ LogNormal(0, 0.6)`` (95% between 0.3 and 3.2).
    - ``two_point`` and ``k_point``: flat, as :func:`flat_priors`. Their box is
      ``eta``'s own range ``[0, 1]``, not a limit of the quadrature: an atom at
      ``eta = 1`` (fully attentive users) is a statement the votes can make,
      and the weights' Dirichlet(1) is uniform on the simplex.

    Parameters
    ----------
    family : attnmodel.model.families.Family
    grid : LogitGrid, optional
        Quadrature of continuous families (it sets their box).
    """
    out: dict[str, Prior | MeanConcentration] = dict(flat_priors(family, grid))
    if family.mean_concentration is not None:
        out[MEAN_CONCENTRATION] = DEFAULT_MEAN_CONCENTRATION
    if family.name == "logistic_normal_mixture":
        out["logit_mean"] = DEFAULT_LOGIT_MEAN
        out["logit_sd"] = DEFAULT_LOGIT_SD
    return out


def check_priors(family, priors: Mapping[str, Prior] | None) -> dict[str, Prior]:
    """Validate user-given family priors: known parameter names and :class:`Prior` values."""
    priors = dict(priors or {})
    allowed = set(family.param_names)
    if family.mean_concentration is not None:
        allowed.add(MEAN_CONCENTRATION)
    unknown = sorted(set(priors) - allowed)
    if unknown:
        raise ValueError(
            f"priors given for {unknown}, which are not parameters of {family.name!r} "
            f"(its parameters: {sorted(allowed)})"
        )
    for key, value in priors.items():
        kind = MeanConcentration if key == MEAN_CONCENTRATION else Prior
        if not isinstance(value, kind):
            raise TypeError(
                f"prior for {key!r} must be an attnmodel {kind.__name__}, got {value!r}"
            )
    return priors


def resolve_priors(family, grid=None, priors=None) -> dict[str, Prior | MeanConcentration]:
    """The family priors of a fit: the defaults, with the ones given put in their place.

    ``priors`` is None (the defaults of :func:`default_priors`), ``"flat"``
    (:func:`flat_priors`) or a mapping from parameter names (and, for the Beta
    families, :data:`MEAN_CONCENTRATION`) to priors. A prior given for
    ``alpha`` or ``beta`` replaces the default mean/concentration prior, which
    is a prior on both; a :class:`MeanConcentration` needs ``alpha`` and
    ``beta`` flat on the box (it is their joint prior).
    """
    flat = flat_priors(family, grid)
    if isinstance(priors, str):
        if priors != "flat":
            raise ValueError(f"priors must be a mapping, None or 'flat', got {priors!r}")
        return flat
    given = check_priors(family, priors)
    out = default_priors(family, grid)
    joint = family.mean_concentration
    if joint is not None:
        shapes_given = [name for name in joint if name in given]
        if MEAN_CONCENTRATION in given:
            bad = [name for name in shapes_given if given[name] != flat[name]]
            if bad:
                raise ValueError(
                    f"priors for {bad} and a {MEAN_CONCENTRATION} prior both given: the "
                    f"{MEAN_CONCENTRATION} prior is the joint prior of {list(joint)}; "
                    "give one or the other"
                )
        elif shapes_given:
            out.pop(MEAN_CONCENTRATION, None)
    out.update(given)
    return out


class _StackedPriors:
    """Several ``BetaPrior`` as arrays, so that its elementwise methods evaluate them at once."""

    def __init__(self, priors: list[BetaPrior]) -> None:
        def arr(f):
            return np.array([f(p) for p in priors], dtype=float)

        self.alpha, self.beta = arr(lambda p: p.alpha), arr(lambda p: p.beta)
        self.lower, self.upper = arr(lambda p: p.lower), arr(lambda p: p.upper)
        self.support = (arr(lambda p: p.support[0]), arr(lambda p: p.support[1]))
        self.log_norm = arr(lambda p: p.log_norm)

    def _x(self, mu):
        return BetaPrior._x(self, mu)


class ModelPrior:
    """Log prior of the global parameters of the model (what MAP-EM adds to the likelihood).

    The same priors the PyMC model of :func:`attnmodel.model.pymc_model.build_model`
    states, evaluated with numpy: the ``mu`` priors of ``mu_spec`` (closed-form
    log density and derivatives, as EM's Newton update needs) and the family
    parameters' priors, truncated to the family's box (``family.log_prior``).

    Parameters
    ----------
    family : attnmodel.model.families.Family
    mu_spec : MuSpec
    grid : LogitGrid, optional
    priors : mapping of str to Prior, or "flat", optional
        Family priors, as :func:`resolve_priors` reads them (those not given
        take the defaults of :func:`default_priors`).

    Notes
    -----
    :meth:`family_logp` is a density in the family's own parameters (the
    Beta shapes, say, not their mean and concentration), so MAP-EM's estimate
    is the mode of the posterior density in those coordinates: the one
    ``model.compile_logp(jacobian=False)`` of the PyMC model evaluates.
    """

    def __init__(self, family, mu_spec: MuSpec, grid=None, priors=None) -> None:
        self.family = family
        self.mu_spec = mu_spec
        self.grid = grid
        self.priors = resolve_priors(family, grid, priors)
        unknown = mu_spec.unknown
        self.mu_priors: list[BetaPrior] = [mu_spec.priors[k] for k in unknown]  # type: ignore[misc]
        self._stacked = _StackedPriors(self.mu_priors)
        # With flat family priors EM's closed-form M-steps are exact.
        self.flat = self.priors == flat_priors(family, grid)

    def family_logp(self, params: Mapping[str, Any]) -> float:
        """Log prior density of the family parameters in MAP-EM's coordinates.

        The density of :meth:`Family.log_prior
        <attnmodel.model.families.base.Family.log_prior>` (the PyMC model's),
        plus, under a :class:`MeanConcentration` prior, its
        :meth:`~MeanConcentration.map_log_jacobian` (``-inf`` outside the support).
        """
        total = float(self.family.log_prior(params, self.priors, self.grid))
        joint = self.priors.get(MEAN_CONCENTRATION)
        if joint is not None:
            a, b = self.family.mean_concentration
            total += float(np.sum(joint.map_log_jacobian(params[a], params[b])))
        return total

    def mu_logp(self, mu_unknown: np.ndarray) -> np.ndarray:
        """Log prior of each unknown ``mu``."""
        return BetaPrior.logpdf(self._stacked, np.asarray(mu_unknown, dtype=float))

    def mu_dlogp(self, mu_unknown: np.ndarray) -> np.ndarray:
        """First derivative of :meth:`mu_logp`."""
        return BetaPrior.dlogpdf(self._stacked, np.asarray(mu_unknown, dtype=float))

    def mu_d2logp(self, mu_unknown: np.ndarray) -> np.ndarray:
        """Second derivative of :meth:`mu_logp`."""
        return BetaPrior.d2logpdf(self._stacked, np.asarray(mu_unknown, dtype=float))
