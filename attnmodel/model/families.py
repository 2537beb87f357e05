"""Attentiveness distributions ``P_eta``.

Each family knows its parameters (names and dims, used unchanged in results,
plots and docs), its density, CDF, quantiles and sampling, how to start EM, and
its own M-step: the weighted maximum-likelihood update given the posterior
weights that the E-step puts on ``eta``.

Discrete families (``two_point``, ``k_point``) place ``P_eta`` on a few atoms;
the E-step is exact over the atoms and the atoms' locations are updated by the
EM driver together with ``mu``. Continuous families (``beta``,
``beta_mixture``, ``logistic_normal_mixture``) are integrated on the logit
grid of :mod:`attnmodel.model.grid`; their M-step sees only the total posterior
weight ``W_g`` on each node, so its cost does not depend on the number of users.

Parameters are plain dicts ``name -> float or ndarray`` (component vectors
sorted by location, which removes label switching).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import special, stats

from attnmodel.model.grid import LogitGrid, maximize_concave_1d

__all__ = [
    "Family",
    "DiscreteFamily",
    "ContinuousFamily",
    "TwoPoint",
    "KPoint",
    "Beta",
    "BetaMixture",
    "LogisticNormalMixture",
    "get_family",
    "family_for_params",
    "FAMILY_NAMES",
]

Params = dict[str, Any]

#: Smallest Beta shape parameter: below it more than ``exp(-20)`` of the mass
#: would lie beyond the logit grid's ends.
BETA_SHAPE_MIN = 0.2


def beta_shape_max(grid: LogitGrid | None) -> float:
    """Largest Beta shape parameter the grid resolves.

    ``Beta(a, b)`` has a standard deviation of about ``sqrt(1/a + 1/b)`` in
    logit space; capping both at ``1 / (2 h^2)`` keeps it at least ``h``.
    """
    h = 0.1 if grid is None else grid.spacing
    return float(max(50.0, 1.0 / (2.0 * h * h)))


def logit_sd_min(grid: LogitGrid | None) -> float:
    """Smallest logistic-normal scale: two central grid spacings."""
    h = 0.1 if grid is None else grid.spacing
    return 2.0 * h


#: Upper bound of a logistic-normal component's logit scale.
LOGIT_SD_MAX = float(np.exp(5.0))
#: Bound of a logistic-normal component's logit mean (beyond the grid's reach).
LOGIT_MEAN_MAX = 50.0


#: Bound on the log weight ratios used as unconstrained coordinates.
_LOG_RATIO_MAX = 700.0


def _weights_to_vector(w: np.ndarray) -> np.ndarray:
    """Mixture weights as ``K - 1`` log ratios against the last weight."""
    logw = np.log(np.maximum(w, 1e-300))
    return logw[:-1] - logw[-1]


def _weights_from_vector(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_weights_to_vector` (a softmax with the last log weight 0)."""
    logw = np.concatenate([np.clip(v, -_LOG_RATIO_MAX, _LOG_RATIO_MAX), [0.0]])
    return np.exp(logw - special.logsumexp(logw))


def _weights_bounds(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Box of the ``K - 1`` log ratios."""
    return np.full(k - 1, -_LOG_RATIO_MAX), np.full(k - 1, _LOG_RATIO_MAX)


class Family:
    """Base class of the attentiveness families."""

    name: ClassVar[str]
    discrete: ClassVar[bool]

    def __init__(self, n_components: int = 1) -> None:
        if int(n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components = int(n_components)

    # -- description -----------------------------------------------------
    @property
    def param_dims(self) -> dict[str, tuple[str, ...]]:
        """Parameter names and their dims (``()`` or ``("component",)``)."""
        raise NotImplementedError

    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameter names, in a fixed order."""
        return tuple(self.param_dims)

    def __repr__(self) -> str:
        if self.n_components == 1 or self.name == "two_point":
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(n_components={self.n_components})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.n_components == other.n_components  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.n_components))

    def validate(self, params: Params) -> Params:
        """Check names, shapes and ranges; return a normalised copy."""
        missing = [k for k in self.param_names if k not in params]
        extra = [k for k in params if k not in self.param_names]
        if missing or extra:
            raise ValueError(
                f"{self.name} parameters are {list(self.param_names)}; "
                f"missing {missing}, unexpected {extra}"
            )
        out: Params = {}
        for key, dims in self.param_dims.items():
            val = np.asarray(params[key], dtype=np.float64)
            if dims:
                if val.shape != (self.n_components,):
                    raise ValueError(
                        f"{self.name} parameter {key!r} must have shape ({self.n_components},), "
                        f"got {val.shape}"
                    )
                out[key] = val.copy()
            else:
                if val.shape != ():
                    raise ValueError(f"{self.name} parameter {key!r} must be a scalar")
                out[key] = float(val)
            if not np.all(np.isfinite(val)):
                raise ValueError(f"{self.name} parameter {key!r} must be finite, got {val}")
        self._check_ranges(out)
        return out

    def _check_ranges(self, params: Params) -> None:
        raise NotImplementedError

    @staticmethod
    def _check_weights(name: str, w: np.ndarray) -> None:
        if np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-9):
            raise ValueError(f"{name} weights must be >= 0 and sum to 1, got {w}")

    # -- distribution ----------------------------------------------------
    def log_pdf(self, eta: np.ndarray, params: Params) -> np.ndarray:
        """Log density (continuous) or log mass at the atoms (discrete)."""
        raise NotImplementedError

    def cdf(self, eta: np.ndarray, params: Params) -> np.ndarray:
        """``P(eta_j <= eta)``."""
        raise NotImplementedError

    def ppf(self, q: np.ndarray, params: Params) -> np.ndarray:
        """Quantile function: smallest ``eta`` with ``cdf(eta) >= q``."""
        q = np.asarray(q, dtype=np.float64)
        if np.any((q < 0) | (q > 1)):
            raise ValueError("quantile levels must be in [0, 1]")
        # Bisection on the monotone CDF: exact enough (2^-60) for any family.
        lo = np.zeros_like(q)
        hi = np.ones_like(q)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid, params) < q
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return hi

    def sample(self, params: Params, size: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``size`` attentiveness values."""
        raise NotImplementedError

    def mean(self, params: Params) -> float:
        """Mean attentiveness under ``P_eta``."""
        raise NotImplementedError

    # -- fitting ---------------------------------------------------------
    def init_params(
        self, eta_hat: np.ndarray, weight: np.ndarray, rng: np.random.Generator, start: int
    ) -> Params:
        """Starting point for EM.

        Parameters
        ----------
        eta_hat : ndarray, shape (R,)
            Crude per-row attentiveness estimates in [0, 1].
        weight : ndarray, shape (R,)
            Users per row.
        rng : Generator
            Used only when ``start > 0``.
        start : int
            0 gives a deterministic moment-based start; larger values give
            random starts spread over the parameter space.
        """
        raise NotImplementedError

    def to_vector(self, params: Params) -> np.ndarray:
        """Unconstrained coordinates of the parameters (for extrapolation and optimisers)."""
        raise NotImplementedError

    def from_vector(self, vec: np.ndarray, grid: LogitGrid | None = None) -> Params:
        """Inverse of :meth:`to_vector`, projected onto the admissible set."""
        raise NotImplementedError

    def box(self, grid: LogitGrid | None = None) -> dict[str, tuple[float, float]]:
        """Admissible range of each parameter other than mixture weights.

        The one statement of the admissible set: MAP-EM searches it (in the
        coordinates of :meth:`to_vector`, see :meth:`vector_bounds`), the PyMC
        model truncates the priors to it and the default priors are flat on it.
        """
        raise NotImplementedError

    def vector_bounds(self, grid: LogitGrid | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Box of the admissible set in the coordinates of :meth:`to_vector` (from :meth:`box`)."""
        raise NotImplementedError

    def log_prior(self, params: Params, priors: dict, grid: LogitGrid | None = None) -> float:
        """Log prior density of ``params`` (numpy), each prior truncated to :meth:`box`.

        ``priors`` maps every parameter name to an
        :class:`attnmodel.model.priors.Prior`; the result equals ``pm.logp`` of
        the variables the PyMC model creates for them.
        """
        box = self.box(grid)
        total = 0.0
        for name in self.param_names:
            lo, hi = box.get(name, (None, None))
            total += float(np.sum(priors[name].logpdf(params[name], lo, hi)))
        return total

    def flat(self, params: Params) -> dict[str, float]:
        """Scalars ``name`` or ``name[k]`` for tables and traces."""
        out: dict[str, float] = {}
        for key, dims in self.param_dims.items():
            if dims:
                for k, v in enumerate(np.asarray(params[key])):
                    out[f"{key}[{k}]"] = float(v)
            else:
                out[key] = float(params[key])
        return out


# ---------------------------------------------------------------------------
# Discrete families
# ---------------------------------------------------------------------------


class DiscreteFamily(Family):
    """``P_eta`` with a finite number of atoms."""

    discrete = True
    #: Admissible range of each atom's location.
    location_range = (0.0, 1.0)

    def components(self, params: Params) -> tuple[np.ndarray, np.ndarray]:
        """``(weights, locations)``, each of shape (K,), locations increasing."""
        raise NotImplementedError

    def from_components(self, weights: np.ndarray, locations: np.ndarray) -> Params:
        """Parameters from weights and locations (sorted by location)."""
        raise NotImplementedError

    def _check_ranges(self, params: Params) -> None:
        w, loc = self.components(params)
        self._check_weights(self.name, w)
        if np.any((loc < 0) | (loc > 1)):
            raise ValueError(f"{self.name} locations must be in [0, 1], got {loc}")

    def log_pdf(self, eta: np.ndarray, params: Params) -> np.ndarray:
        w, loc = self.components(params)
        eta = np.asarray(eta, dtype=np.float64)
        mass = np.zeros(eta.shape)
        for wk, lk in zip(w, loc, strict=True):
            mass = mass + np.where(eta == lk, wk, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(mass)

    def cdf(self, eta: np.ndarray, params: Params) -> np.ndarray:
        w, loc = self.components(params)
        eta = np.asarray(eta, dtype=np.float64)
        return np.sum(w * (loc <= eta[..., None]), axis=-1)

    def ppf(self, q: np.ndarray, params: Params) -> np.ndarray:
        w, loc = self.components(params)
        q = np.asarray(q, dtype=np.float64)
        cum = np.cumsum(w)
        idx = np.minimum(np.searchsorted(cum, q - 1e-15, side="left"), w.size - 1)
        return loc[idx]

    def sample(self, params: Params, size: int, rng: np.random.Generator) -> np.ndarray:
        w, loc = self.components(params)
        return loc[rng.choice(w.size, size=size, p=w / w.sum())]

    def mean(self, params: Params) -> float:
        w, loc = self.components(params)
        return float(np.dot(w, loc))

    def init_params(self, eta_hat, weight, rng, start):
        k = self.n_components
        if start == 0:
            levels = (np.arange(k) + 0.5) / k
            loc = _weighted_quantile(eta_hat, weight, levels)
            loc = np.clip(loc + np.linspace(-0.01, 0.01, k), 0.0, 1.0)
            w = np.full(k, 1.0 / k)
        else:
            loc = np.sort(rng.uniform(0.02, 0.98, size=k))
            w = rng.dirichlet(np.full(k, 2.0))
        return self.from_components(w, loc)

    def to_vector(self, params):
        w, loc = self.components(params)
        return np.concatenate([_weights_to_vector(w), loc])

    def from_vector(self, vec, grid=None):
        k = self.n_components
        w = _weights_from_vector(vec[: k - 1])
        loc = np.clip(vec[k - 1 :], 0.0, 1.0)
        return self.from_components(w, loc)

    def vector_bounds(self, grid=None):
        k = self.n_components
        w_lo, w_hi = _weights_bounds(k)
        lo, hi = self.location_range
        return np.concatenate([w_lo, np.full(k, lo)]), np.concatenate([w_hi, np.full(k, hi)])


class KPoint(DiscreteFamily):
    """``P_eta = sum_k weights[k] * delta(locations[k])``."""

    name = "k_point"

    def __init__(self, n_components: int = 3) -> None:
        super().__init__(n_components)

    @property
    def param_dims(self):
        return {"weights": ("component",), "locations": ("component",)}

    def box(self, grid=None):
        return {"locations": self.location_range}

    def components(self, params):
        return np.asarray(params["weights"], float), np.asarray(params["locations"], float)

    def from_components(self, weights, locations):
        order = np.argsort(locations, kind="stable")
        return {
            "weights": np.asarray(weights, float)[order],
            "locations": np.asarray(locations, float)[order],
        }


class TwoPoint(DiscreteFamily):
    """``P_eta = q_low * delta(eta_low) + (1 - q_low) * delta(eta_high)``.

    Casual users sit at ``eta_low``, attentive ones at ``eta_high``.
    """

    name = "two_point"

    def __init__(self, n_components: int = 2) -> None:
        if n_components != 2:
            raise ValueError("two_point has exactly 2 components; use k_point for more")
        super().__init__(2)

    @property
    def param_dims(self):
        return {"q_low": (), "eta_low": (), "eta_high": ()}

    def box(self, grid=None):
        loc = self.location_range
        return {"q_low": (0.0, 1.0), "eta_low": loc, "eta_high": loc}

    def log_prior(self, params, priors, grid=None):
        # The PyMC model draws the two locations as one ordered pair, flat on the
        # location range (their priors must be Uniform), whatever the bounds given.
        from attnmodel.model.priors import Prior

        lo, hi = self.location_range
        flat = Prior("Uniform", lower=lo, upper=hi)
        locations = [params["eta_low"], params["eta_high"]]
        return float(
            np.sum(priors["q_low"].logpdf(params["q_low"], *self.box(grid)["q_low"]))
            + np.sum(flat.logpdf(locations))
        )

    def components(self, params):
        q = float(params["q_low"])
        return (
            np.array([q, 1.0 - q]),
            np.array([float(params["eta_low"]), float(params["eta_high"])]),
        )

    def from_components(self, weights, locations):
        order = np.argsort(locations, kind="stable")
        w = np.asarray(weights, float)[order]
        loc = np.asarray(locations, float)[order]
        return {"q_low": float(w[0] / w.sum()), "eta_low": float(loc[0]), "eta_high": float(loc[1])}

    def _check_ranges(self, params):
        if not 0 <= params["q_low"] <= 1:
            raise ValueError(f"two_point q_low must be in [0, 1], got {params['q_low']}")
        super()._check_ranges(params)


# ---------------------------------------------------------------------------
# Continuous families
# ---------------------------------------------------------------------------


class ContinuousFamily(Family):
    """``P_eta`` with a density on (0, 1), integrated on the logit grid."""

    discrete = False

    def log_density_logit(self, u: np.ndarray, params: Params) -> np.ndarray:
        """Log density of ``u = logit(eta)`` (includes the Jacobian ``eta (1 - eta)``)."""
        raise NotImplementedError

    def log_pdf(self, eta, params):
        eta = np.asarray(eta, dtype=np.float64)
        with np.errstate(divide="ignore"):
            u = special.logit(eta)
            jac = np.log(eta) + np.log1p(-eta)
        return self.log_density_logit(u, params) - jac

    def m_step(self, grid: LogitGrid, weight: np.ndarray, params: Params) -> Params:
        """Weighted MLE update.

        Returns parameters that do not decrease
        ``sum_g weight[g] * log_density_logit(u_g)`` relative to ``params``
        (the exact maximiser where one exists in closed form or by Newton; one
        inner EM step for mixtures).
        """
        raise NotImplementedError


def _beta_mle(
    t1: float, t2: float, a0: float, b0: float, lo: float, hi: float
) -> tuple[float, float]:
    """Maximise ``a t1 + b t2 - log B(a, b)`` over the box ``[lo, hi]^2``.

    ``t1``, ``t2`` are weighted means of ``log eta`` and ``log(1 - eta)``; the
    stationarity conditions are the digamma equations
    ``psi(a) - psi(a + b) = t1``, ``psi(b) - psi(a + b) = t2``. The objective is
    concave, so Newton with step halving converges from any start; a box
    violation is handled by L-BFGS-B.
    """

    def f(x):
        return x[0] * t1 + x[1] * t2 - special.betaln(x[0], x[1])

    x = np.clip(np.array([a0, b0], float), lo, hi)
    fx = f(x)
    for _ in range(100):
        # Scalar ufuncs: trigamma(x) is zeta(2, x).
        dab = special.psi(x[0] + x[1])
        g0 = t1 - special.psi(x[0]) + dab
        g1 = t2 - special.psi(x[1]) + dab
        tab = special.zeta(2.0, x[0] + x[1])
        h00 = tab - special.zeta(2.0, x[0])
        h11 = tab - special.zeta(2.0, x[1])
        det = h00 * h11 - tab * tab
        step = np.array([-(h11 * g0 - tab * g1) / det, -(h00 * g1 - tab * g0) / det])
        t = 1.0
        while True:
            x_new = x + t * step
            if x_new[0] > 0 and x_new[1] > 0:
                f_new = f(x_new)
                if f_new >= fx - 1e-15 * abs(fx):
                    break
            t *= 0.5
            if t < 1e-12:
                x_new, f_new = x, fx
                break
        converged = abs(x_new[0] - x[0]) <= 1e-12 * x[0] and abs(x_new[1] - x[1]) <= 1e-12 * x[1]
        x, fx = x_new, f_new
        if converged:
            break
    if np.all((x >= lo) & (x <= hi)):
        return float(x[0]), float(x[1])
    # The maximum over the box lies on its boundary: the best of the four edges,
    # each a concave 1-D problem.
    best = None
    for fixed_axis in (0, 1):
        for bound in (lo, hi):
            t_free = t2 if fixed_axis == 0 else t1

            def grad(y, bound=bound, t_free=t_free):
                return t_free - special.psi(y) + special.psi(y + bound)

            def hess(y, bound=bound):
                return special.zeta(2.0, y + bound) - special.zeta(2.0, y)

            y = maximize_concave_1d(grad, hess, np.array([lo]), np.array([hi]), np.array([1.0]))[0]
            cand = np.array([bound, y]) if fixed_axis == 0 else np.array([y, bound])
            val = f(cand)
            if best is None or val > best[0]:
                best = (val, cand)
    return float(best[1][0]), float(best[1][1])


def _beta_log_density_logit(u, a, b):
    return a * special.log_expit(u) + b * special.log_expit(-u) - special.betaln(a, b)


class Beta(ContinuousFamily):
    """``P_eta = Beta(alpha, beta)``."""

    name = "beta"

    def __init__(self, n_components: int = 1) -> None:
        if n_components != 1:
            raise ValueError("beta has one component; use beta_mixture for more")
        super().__init__(1)

    @property
    def param_dims(self):
        return {"alpha": (), "beta": ()}

    def _check_ranges(self, params):
        for key in ("alpha", "beta"):
            if params[key] <= 0:
                raise ValueError(f"beta parameter {key!r} must be > 0, got {params[key]}")

    def log_density_logit(self, u, params):
        return _beta_log_density_logit(u, params["alpha"], params["beta"])

    def cdf(self, eta, params):
        return stats.beta.cdf(eta, params["alpha"], params["beta"])

    def ppf(self, q, params):
        return stats.beta.ppf(q, params["alpha"], params["beta"])

    def sample(self, params, size, rng):
        return rng.beta(params["alpha"], params["beta"], size=size)

    def mean(self, params):
        return float(params["alpha"] / (params["alpha"] + params["beta"]))

    def m_step(self, grid, weight, params):
        total = weight.sum()
        t1 = float(np.dot(weight, grid.log_eta) / total)
        t2 = float(np.dot(weight, grid.log_one_minus_eta) / total)
        a, b = _beta_mle(
            t1, t2, params["alpha"], params["beta"], BETA_SHAPE_MIN, beta_shape_max(grid)
        )
        return {"alpha": a, "beta": b}

    def init_params(self, eta_hat, weight, rng, start):
        a, b = _beta_moments(eta_hat, weight)
        if start > 0:
            a, b = np.exp(np.log([a, b]) + rng.normal(0.0, 0.8, size=2))
        lo, hi = BETA_SHAPE_MIN, beta_shape_max(None)
        return {"alpha": float(np.clip(a, lo, hi)), "beta": float(np.clip(b, lo, hi))}

    def to_vector(self, params):
        return np.log([params["alpha"], params["beta"]])

    def from_vector(self, vec, grid=None):
        # Clip the exponent first: optimisers may probe far outside the box.
        ab = np.clip(np.exp(np.clip(vec, -30.0, 30.0)), BETA_SHAPE_MIN, beta_shape_max(grid))
        return {"alpha": float(ab[0]), "beta": float(ab[1])}

    def box(self, grid=None):
        return _beta_box(grid)

    def vector_bounds(self, grid=None):
        lo, hi = np.log(self.box(grid)["alpha"])
        return np.full(2, lo), np.full(2, hi)


def _beta_box(grid: LogitGrid | None) -> dict[str, tuple[float, float]]:
    """Box of Beta shapes: from :data:`BETA_SHAPE_MIN` to what the grid resolves."""
    cap = beta_shape_max(grid)
    return {"alpha": (BETA_SHAPE_MIN, cap), "beta": (BETA_SHAPE_MIN, cap)}


def _beta_moments(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    x = np.clip(x, 0.02, 0.98)
    m = np.average(x, weights=w)
    v = max(np.average((x - m) ** 2, weights=w), 1e-3)
    c = max(m * (1 - m) / v - 1.0, 0.5)
    return float(m * c), float((1 - m) * c)


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    cw = cw / cw[-1]
    return x[order][np.minimum(np.searchsorted(cw, q), x.size - 1)]


def _logsumexp_last(x: np.ndarray) -> np.ndarray:
    peak = np.max(x, axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - peak), axis=-1)) + peak[..., 0]


class _MixtureFamily(ContinuousFamily):
    """Shared machinery of the K-component continuous mixtures."""

    def __init__(self, n_components: int = 2) -> None:
        super().__init__(n_components)

    def _component_logpdf_logit(self, u: np.ndarray, params: Params) -> np.ndarray:
        """``log weights[k] + log density_k(u)``, shape (G, K)."""
        raise NotImplementedError

    def log_density_logit(self, u, params):
        return _logsumexp_last(self._component_logpdf_logit(np.asarray(u)[..., None], params))

    def responsibilities(self, u: np.ndarray, params: Params) -> np.ndarray:
        """Posterior component probabilities at ``u``, shape (G, K)."""
        lc = self._component_logpdf_logit(np.asarray(u)[:, None], params)
        return np.exp(lc - _logsumexp_last(lc)[:, None])

    def _sorted(self, params: Params, key: np.ndarray) -> Params:
        order = np.argsort(key, kind="stable")
        return {k: np.asarray(v)[order] for k, v in params.items()}


class BetaMixture(_MixtureFamily):
    """``P_eta = sum_k weights[k] * Beta(alpha[k], beta[k])``."""

    name = "beta_mixture"

    @property
    def param_dims(self):
        return {"weights": ("component",), "alpha": ("component",), "beta": ("component",)}

    def _check_ranges(self, params):
        self._check_weights(self.name, params["weights"])
        for key in ("alpha", "beta"):
            if np.any(params[key] <= 0):
                raise ValueError(f"beta_mixture {key!r} must be > 0, got {params[key]}")

    def _component_logpdf_logit(self, u, params):
        with np.errstate(divide="ignore"):
            logw = np.log(params["weights"])
        return logw + _beta_log_density_logit(u, params["alpha"], params["beta"])

    def cdf(self, eta, params):
        eta = np.asarray(eta, dtype=np.float64)[..., None]
        return np.sum(
            params["weights"] * stats.beta.cdf(eta, params["alpha"], params["beta"]), axis=-1
        )

    def sample(self, params, size, rng):
        k = rng.choice(self.n_components, size=size, p=params["weights"])
        return rng.beta(params["alpha"][k], params["beta"][k])

    def mean(self, params):
        return float(
            np.dot(params["weights"], params["alpha"] / (params["alpha"] + params["beta"]))
        )

    def m_step(self, grid, weight, params):
        r = self.responsibilities(grid.u, params)
        wk = weight[:, None] * r
        tot = wk.sum(axis=0)
        new_w = tot / tot.sum()
        alpha = np.array(params["alpha"], float)
        beta = np.array(params["beta"], float)
        hi = beta_shape_max(grid)
        for k in range(self.n_components):
            if tot[k] <= 0:
                continue
            t1 = float(np.dot(wk[:, k], grid.log_eta) / tot[k])
            t2 = float(np.dot(wk[:, k], grid.log_one_minus_eta) / tot[k])
            alpha[k], beta[k] = _beta_mle(t1, t2, alpha[k], beta[k], BETA_SHAPE_MIN, hi)
        out = {"weights": new_w, "alpha": alpha, "beta": beta}
        return self._sorted(out, alpha / (alpha + beta))

    def init_params(self, eta_hat, weight, rng, start):
        k = self.n_components
        if start == 0:
            edges = _weighted_quantile(eta_hat, weight, np.linspace(0, 1, k + 1)[1:-1])
            group = np.searchsorted(edges, eta_hat, side="right")
            a, b, w = np.empty(k), np.empty(k), np.empty(k)
            for c in range(k):
                sel = group == c
                if sel.sum() < 2:
                    sel = np.ones_like(sel)
                a[c], b[c] = _beta_moments(eta_hat[sel], weight[sel])
                w[c] = max(weight[group == c].sum(), 1e-3)
            w = w / w.sum()
        else:
            m = np.sort(rng.uniform(0.05, 0.95, size=k))
            c = np.exp(rng.uniform(np.log(3.0), np.log(30.0), size=k))
            a, b = m * c, (1 - m) * c
            w = rng.dirichlet(np.full(k, 2.0))
        lo, hi = BETA_SHAPE_MIN, beta_shape_max(None)
        out = {"weights": w, "alpha": np.clip(a, lo, hi), "beta": np.clip(b, lo, hi)}
        return self._sorted(out, out["alpha"] / (out["alpha"] + out["beta"]))

    def to_vector(self, params):
        return np.concatenate(
            [_weights_to_vector(params["weights"]), np.log(params["alpha"]), np.log(params["beta"])]
        )

    def from_vector(self, vec, grid=None):
        k = self.n_components
        w = _weights_from_vector(vec[: k - 1])
        lo, hi = BETA_SHAPE_MIN, beta_shape_max(grid)
        a = np.clip(np.exp(np.clip(vec[k - 1 : 2 * k - 1], -30.0, 30.0)), lo, hi)
        b = np.clip(np.exp(np.clip(vec[2 * k - 1 :], -30.0, 30.0)), lo, hi)
        return self._sorted({"weights": w, "alpha": a, "beta": b}, a / (a + b))

    def box(self, grid=None):
        return _beta_box(grid)

    def vector_bounds(self, grid=None):
        k = self.n_components
        lo, hi = np.log(self.box(grid)["alpha"])
        w_lo, w_hi = _weights_bounds(k)
        return (
            np.concatenate([w_lo, np.full(2 * k, lo)]),
            np.concatenate([w_hi, np.full(2 * k, hi)]),
        )


class LogisticNormalMixture(_MixtureFamily):
    """``logit(eta) ~ sum_k weights[k] * Normal(logit_mean[k], logit_sd[k])``."""

    name = "logistic_normal_mixture"

    @property
    def param_dims(self):
        return {"weights": ("component",), "logit_mean": ("component",), "logit_sd": ("component",)}

    def _check_ranges(self, params):
        self._check_weights(self.name, params["weights"])
        if np.any(params["logit_sd"] <= 0):
            raise ValueError(f"logit_sd must be > 0, got {params['logit_sd']}")

    def _component_logpdf_logit(self, u, params):
        with np.errstate(divide="ignore"):
            logw = np.log(params["weights"])
        return logw + stats.norm.logpdf(u, params["logit_mean"], params["logit_sd"])

    def cdf(self, eta, params):
        eta = np.asarray(eta, dtype=np.float64)
        with np.errstate(divide="ignore"):
            u = special.logit(eta)[..., None]
        return np.sum(
            params["weights"] * stats.norm.cdf(u, params["logit_mean"], params["logit_sd"]), axis=-1
        )

    def sample(self, params, size, rng):
        k = rng.choice(self.n_components, size=size, p=params["weights"])
        return special.expit(rng.normal(params["logit_mean"][k], params["logit_sd"][k]))

    def mean(self, params):
        # No closed form: Gauss-Hermite per component is exact to ~1e-12 here.
        x, w = np.polynomial.hermite_e.hermegauss(80)
        vals = special.expit(params["logit_mean"][:, None] + params["logit_sd"][:, None] * x)
        return float(np.dot(params["weights"], vals @ w / np.sqrt(2 * np.pi)))

    def m_step(self, grid, weight, params):
        r = self.responsibilities(grid.u, params)
        wk = weight[:, None] * r
        tot = wk.sum(axis=0)
        safe = np.maximum(tot, 1e-300)
        m = (wk * grid.u[:, None]).sum(axis=0) / safe
        v = (wk * (grid.u[:, None] - m) ** 2).sum(axis=0) / safe
        # The weighted log-likelihood is unimodal in the variance, so clipping
        # at the floor is the constrained maximiser.
        sd = np.maximum(np.sqrt(v), logit_sd_min(grid))
        empty = tot <= 0
        m = np.where(empty, params["logit_mean"], m)
        sd = np.where(empty, params["logit_sd"], sd)
        out = {"weights": tot / tot.sum(), "logit_mean": m, "logit_sd": sd}
        return self._sorted(out, m)

    def init_params(self, eta_hat, weight, rng, start):
        k = self.n_components
        u = special.logit(np.clip(eta_hat, 0.02, 0.98))
        if start == 0:
            m = _weighted_quantile(u, weight, (np.arange(k) + 0.5) / k) + np.linspace(
                -0.01, 0.01, k
            )
            sd = (
                np.full(k, max(np.sqrt(np.cov(u, aweights=weight)) / k, 0.3))
                if u.size > 1
                else np.full(k, 1.0)
            )
            w = np.full(k, 1.0 / k)
        else:
            m = np.sort(rng.uniform(-3.0, 3.0, size=k))
            sd = np.exp(rng.uniform(np.log(0.3), np.log(1.5), size=k))
            w = rng.dirichlet(np.full(k, 2.0))
        return self._sorted({"weights": w, "logit_mean": m, "logit_sd": sd}, m)

    def to_vector(self, params):
        return np.concatenate(
            [
                _weights_to_vector(params["weights"]),
                params["logit_mean"],
                np.log(params["logit_sd"]),
            ]
        )

    def from_vector(self, vec, grid=None):
        k = self.n_components
        w = _weights_from_vector(vec[: k - 1])
        # Means beyond the grid's reach and scales beyond e^5 describe nothing new.
        m_lo, m_hi = self.box(grid)["logit_mean"]
        m = np.clip(np.asarray(vec[k - 1 : 2 * k - 1], float), m_lo, m_hi)
        sd_lo, sd_hi = self.box(grid)["logit_sd"]
        sd = np.clip(np.exp(np.clip(vec[2 * k - 1 :], -30.0, np.log(sd_hi))), sd_lo, None)
        return self._sorted({"weights": w, "logit_mean": m, "logit_sd": sd}, m)

    def box(self, grid=None):
        return {
            "logit_mean": (-LOGIT_MEAN_MAX, LOGIT_MEAN_MAX),
            "logit_sd": (logit_sd_min(grid), LOGIT_SD_MAX),
        }

    def vector_bounds(self, grid=None):
        k = self.n_components
        w_lo, w_hi = _weights_bounds(k)
        (m_lo, m_hi), (sd_lo, sd_hi) = self.box(grid)["logit_mean"], self.box(grid)["logit_sd"]
        return (
            np.concatenate([w_lo, np.full(k, m_lo), np.full(k, np.log(sd_lo))]),
            np.concatenate([w_hi, np.full(k, m_hi), np.full(k, np.log(sd_hi))]),
        )


def family_for_params(family: str | Family, params: Params) -> Family:
    """The family instance whose component count matches ``params``.

    A name such as ``"k_point"`` says nothing about K; the parameters do.
    """
    if isinstance(family, Family):
        return family
    fam = get_family(family)
    for key, dims in fam.param_dims.items():
        if dims and key in params:
            return get_family(family, int(np.size(params[key])))
    return fam


_FAMILIES: dict[str, type[Family]] = {
    cls.name: cls for cls in (TwoPoint, KPoint, Beta, BetaMixture, LogisticNormalMixture)
}
FAMILY_NAMES = tuple(_FAMILIES)


def get_family(family: str | Family, n_components: int | None = None) -> Family:
    """Return a family instance from a name (``"beta"``, ``"two_point"``, ...) or an instance.

    Parameters
    ----------
    family : str or Family
    n_components : int, optional
        For ``k_point`` (default 3), ``beta_mixture`` and
        ``logistic_normal_mixture`` (default 2).
    """
    if isinstance(family, Family):
        if n_components is not None and n_components != family.n_components:
            raise ValueError("n_components conflicts with the given family instance")
        return family
    try:
        cls = _FAMILIES[str(family)]
    except KeyError:
        raise ValueError(
            f"unknown family {family!r}; choose one of {', '.join(FAMILY_NAMES)}"
        ) from None
    return cls() if n_components is None else cls(n_components)
