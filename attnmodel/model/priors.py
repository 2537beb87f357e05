"""Priors of the model's global parameters: each pair's win rate ``mu`` and the family's.

The family parameters' priors are :class:`Prior` objects (a PyMC distribution
name and its parameters) with numpy log densities, truncated to the family's
admissible box; :func:`default_priors` makes them flat on it.
:class:`ModelPrior` gathers every global prior for MAP-EM, which thus
maximises the posterior the PyMC model states without importing PyMC.

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
    "DEFAULT_MU_PRIOR",
    "ModelPrior",
    "MuSpec",
    "NUMPY_PRIORS",
    "Prior",
    "check_priors",
    "default_priors",
    "resolve_mu",
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
        """Known values, and prior modes for the unknown ones, shape (P,)."""
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
        """The unnamed PyMC distribution (imports PyMC)."""
        import pymc as pm

        return getattr(pm, self.dist).dist(**self.params, **extra)

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
        frozen = _SCIPY_DISTS[self.dist][1](self.params)
        with np.errstate(divide="ignore", invalid="ignore"):
            dens = frozen.logpdf(x)
        if lower is None:
            return np.asarray(dens)
        log_mass = _log_diff_exp(float(frozen.logcdf(upper)), float(frozen.logcdf(lower)))
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


def default_priors(family, grid=None) -> dict[str, Prior]:
    """Flat priors on the family's admissible box (Dirichlet(1) for mixture weights).

    With these, MAP-EM is the maximum-likelihood estimate in the family's
    parameters and a MAP estimate only in ``mu`` (the paper's Algorithm 1).

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


def check_priors(family, priors: Mapping[str, Prior] | None) -> dict[str, Prior]:
    """Validate user-given family priors: known parameter names and :class:`Prior` values."""
    priors = dict(priors or {})
    unknown = sorted(set(priors) - set(family.param_names))
    if unknown:
        raise ValueError(
            f"priors given for {unknown}, which are not parameters of {family.name!r} "
            f"(its parameters: {list(family.param_names)})"
        )
    for key, value in priors.items():
        if not isinstance(value, Prior):
            raise TypeError(f"prior for {key!r} must be an attnmodel Prior, got {value!r}")
    return priors


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
    priors : mapping of str to Prior, optional
        Family priors; those not given are flat on the box (:func:`default_priors`).
    """

    def __init__(self, family, mu_spec: MuSpec, grid=None, priors=None) -> None:
        self.family = family
        self.mu_spec = mu_spec
        self.grid = grid
        defaults = default_priors(family, grid)
        self.priors = {**defaults, **check_priors(family, priors)}
        unknown = mu_spec.unknown
        self.mu_priors: list[BetaPrior] = [mu_spec.priors[k] for k in unknown]  # type: ignore[misc]
        self._stacked = _StackedPriors(self.mu_priors)
        # With the default (flat) family priors EM's closed-form M-steps are exact.
        self.flat = self.priors == defaults

    def family_logp(self, params: Mapping[str, Any]) -> float:
        """Log prior density of the family parameters (``-inf`` outside the support)."""
        return float(self.family.log_prior(params, self.priors, self.grid))

    def mu_logp(self, mu_unknown: np.ndarray) -> np.ndarray:
        """Log prior of each unknown ``mu``."""
        return BetaPrior.logpdf(self._stacked, np.asarray(mu_unknown, dtype=float))

    def mu_dlogp(self, mu_unknown: np.ndarray) -> np.ndarray:
        """First derivative of :meth:`mu_logp`."""
        return BetaPrior.dlogpdf(self._stacked, np.asarray(mu_unknown, dtype=float))

    def mu_d2logp(self, mu_unknown: np.ndarray) -> np.ndarray:
        """Second derivative of :meth:`mu_logp`."""
        return BetaPrior.d2logpdf(self._stacked, np.asarray(mu_unknown, dtype=float))
