"""Base classes of the attentiveness distributions ``P_eta`` and their shared helpers.

A family owns everything about its distribution: its parameters (names and
dims, used unchanged in results, plots and docs), its density, CDF, quantiles
and sampling, its admissible range (:meth:`Family.box`), how to start EM, its
own M-step (the weighted maximum-likelihood update given the posterior weights
that the E-step puts on ``eta``), and its piece of the PyMC model: its
parameter variables, its log density in PyTensor, its latent ``eta`` and its
part of the identified parameterisation (:mod:`attnmodel.model.identified`).
PyMC and PyTensor are imported only inside those methods.

Discrete families place ``P_eta`` on a few atoms; the E-step is exact over the
atoms and the atoms' locations are updated by the EM driver together with
``mu``. Continuous families are integrated on the logit grid of
:mod:`attnmodel.model.grid`; their M-step sees only the total posterior weight
``W_g`` on each node, so its cost does not depend on the number of users.

Parameters are plain dicts ``name -> float or ndarray`` (component vectors
sorted by location, which removes label switching).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import special

from attnmodel.model.grid import LogitGrid

__all__ = [
    "ContinuousFamily",
    "DiscreteFamily",
    "Family",
    "LOG_RATIO_MAX",
    "MixtureFamily",
    "Params",
    "logsumexp_last",
    "weighted_quantile",
    "weights_bounds",
    "weights_from_vector",
    "weights_to_vector",
]

Params = dict[str, Any]

#: Bound on the log weight ratios used as unconstrained coordinates.
LOG_RATIO_MAX = 700.0


def weights_to_vector(w: np.ndarray) -> np.ndarray:
    """Mixture weights as ``K - 1`` log ratios against the last weight."""
    logw = np.log(np.maximum(w, 1e-300))
    return logw[:-1] - logw[-1]


def weights_from_vector(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`weights_to_vector` (a softmax with the last log weight 0)."""
    logw = np.concatenate([np.clip(v, -LOG_RATIO_MAX, LOG_RATIO_MAX), [0.0]])
    return np.exp(logw - special.logsumexp(logw))


def weights_bounds(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Box of the ``K - 1`` log ratios."""
    return np.full(k - 1, -LOG_RATIO_MAX), np.full(k - 1, LOG_RATIO_MAX)


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles ``q`` of the values ``x`` with weights ``w`` (smallest x reaching each level)."""
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    cw = cw / cw[-1]
    return x[order][np.minimum(np.searchsorted(cw, q), x.size - 1)]


def logsumexp_last(x: np.ndarray) -> np.ndarray:
    """``log(sum(exp(x)))`` over the last axis, safe where a whole row is ``-inf``."""
    peak = np.max(x, axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - peak), axis=-1)) + peak[..., 0]


class Family:
    """Base class of the attentiveness families."""

    name: ClassVar[str]
    discrete: ClassVar[bool]
    #: Number of components when none is given.
    default_components: ClassVar[int] = 1
    #: For a family with only its default number of components: the family taking others.
    more_components: ClassVar[str | None] = None
    #: The two Beta shapes that a :class:`~attnmodel.model.priors.MeanConcentration`
    #: prior covers jointly (through their mean and concentration), or None.
    mean_concentration: ClassVar[tuple[str, str] | None] = None

    def __init__(self, n_components: int | None = None) -> None:
        n = self.default_components if n_components is None else n_components
        if self.more_components is not None and n != self.default_components:
            k = self.default_components
            count = "one component" if k == 1 else f"exactly {k} components"
            raise ValueError(f"{self.name} has {count}; use {self.more_components} for more")
        if int(n) < 1:
            raise ValueError(f"n_components must be >= 1, got {n}")
        self.n_components = int(n)

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
        if self.n_components == 1 or self.more_components is not None:
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
        from attnmodel.model.priors import MEAN_CONCENTRATION

        box = self.box(grid)
        total = 0.0
        joint = priors.get(MEAN_CONCENTRATION)
        # Under a joint mean/concentration prior the shapes' own (flat) priors only
        # carry the box; the joint prior is their density.
        covered = self.mean_concentration if joint is not None else ()
        for name in self.param_names:
            if name in covered:
                continue
            lo, hi = box.get(name, (None, None))
            total += float(np.sum(priors[name].logpdf(params[name], lo, hi)))
        if joint is not None:
            a, b = self.mean_concentration
            lo, hi = self.shape_box(grid)
            total += float(np.sum(joint.logpdf(params[a], params[b], lo, hi)))
        return total

    def shape_box(self, grid: LogitGrid | None = None) -> tuple[float, float]:
        """The common range of the two shapes of :attr:`mean_concentration`."""
        a, b = self.mean_concentration  # type: ignore[misc]
        box = self.box(grid)
        if box[a] != box[b]:
            raise ValueError(f"{self.name}: {a} and {b} must share one admissible range")
        return box[a]

    def pymc_joint_prior(self, params: dict, priors: dict, grid: LogitGrid | None):
        """PyTensor log density of the joint mean/concentration prior (0 when there is none).

        Inside a model; ``params`` holds the shape tensors.
        """
        from attnmodel.model.priors import MEAN_CONCENTRATION

        joint = priors.get(MEAN_CONCENTRATION)
        if joint is None:
            return 0.0
        import pytensor.tensor as pt

        a, b = self.mean_concentration
        lo, hi = self.shape_box(grid)
        return pt.sum(joint.pymc_logp(params[a], params[b], lo, hi))

    # -- the PyMC model ----------------------------------------------------
    #: Parameters drawn in increasing order (PyMC's ordered transform), which
    #: removes label switching in the model.
    ordered_params: ClassVar[tuple[str, ...]] = ()
    #: Whether the family has coordinates in identified quantities
    #: (:mod:`attnmodel.model.identified`; see :meth:`identified_params`).
    identified: ClassVar[bool] = False

    @property
    def has_components(self) -> bool:
        """Whether some parameter has the ``component`` dim (the model then has that coord)."""
        return any(self.param_dims.values())

    def pymc_initval(self, name: str, lo: float, hi: float) -> dict[str, Any]:
        """Initial value of parameter ``name`` in the PyMC model (vectors spread over the box)."""
        if not self.param_dims[name]:
            return {}
        k = self.n_components
        return {"initval": lo + (hi - lo) * (np.arange(1, k + 1) / (k + 1))}

    def pymc_param(self, name: str, prior, grid: LogitGrid | None):
        """Create the PyMC variable of one parameter, its prior truncated to :meth:`box`.

        Must be called inside a ``pymc.Model`` context; mixture weights take
        their prior as it is (a distribution on the simplex).
        """
        import pymc as pm

        d = self.param_dims[name] or None
        if name == "weights":
            return getattr(pm, prior.dist)(name, **prior.params, dims=d)
        lo, hi = self.box(grid)[name]
        shape_kw: dict[str, Any] = {"dims": d} if d else {}
        shape_kw.update(self.pymc_initval(name, lo, hi))
        if prior.dist == "Uniform":
            lo, hi = prior.uniform_bounds(lo, hi)
        if name in self.ordered_params:
            shape_kw.update(self.ordered_transform(lo, hi))
        if prior.dist == "Uniform":
            return pm.Uniform(name, lower=lo, upper=hi, **shape_kw)
        return pm.Truncated(name, prior.pymc_dist(), lower=lo, upper=hi, **shape_kw)

    def ordered_transform(self, lo: float, hi: float) -> dict[str, Any]:
        """Keyword arguments that draw a parameter vector in increasing order on ``(lo, hi)``.

        PyMC applies ``transform`` on top of the default interval transform.
        """
        from pymc.distributions import transforms

        return {"transform": transforms.ordered}

    def pymc_params(self, grid: LogitGrid | None, priors: dict) -> dict:
        """Create the parameters' PyMC variables; returns name -> tensor (constrained).

        ``priors`` maps every parameter to an :class:`attnmodel.model.priors.Prior`
        (and may hold a joint mean/concentration prior of the shapes, added as the
        potential ``mean_concentration_prior``: the shapes' flat box priors then
        only carry the box, and their constant log density is taken back out).
        """
        import pymc as pm

        out = {name: self.pymc_param(name, priors[name], grid) for name in self.param_names}
        joint = self.pymc_joint_prior(out, priors, grid)
        if not isinstance(joint, float):
            lo, hi = self.shape_box(grid)
            size = 2 * (self.n_components if self.has_components else 1)
            pm.Potential("mean_concentration_prior", joint + size * np.log(hi - lo))
        return out

    @property
    def n_identified_coords(self) -> int:
        """Identified coordinates of the family, before the pair ratios (scale last)."""
        raise NotImplementedError(f"{self.name} has no identified parameterisation")

    def identified_ratios(self, z, supports, grid: LogitGrid | None):
        """Pair ratios ``rho_k = c_k / c_1`` (pairs after the first) from their coordinates.

        ``z[n_identified_coords:]`` are the ratios' coordinates; ``supports`` is
        ``(lo_k, hi_k)``, each pair's range of ``c_k``
        (:func:`attnmodel.model.identified.pair_scale_supports`). Returns
        ``(rho, log Jacobian)`` (PyTensor). Here ``rho_k = exp(z_k)``; a family
        may bound them by what its own coordinates leave admissible.
        """
        import pytensor.tensor as pt

        free = z[self.n_identified_coords :]
        return pt.exp(free), pt.sum(free)

    def identified_ratio_coords(self, params: Params, c: float, rho, supports, grid):
        """Inverse of :meth:`identified_ratios` in numpy (a starting point)."""
        return np.log(rho)

    def identified_params(self, z, c_lo, c_hi, grid: LogitGrid | None, supports=None):
        """The family's part of the identified parameterisation (PyTensor, in a model).

        Parameters
        ----------
        z : tensor
            The identified coordinates; the family reads its first
            :attr:`n_identified_coords`, the last of which places the scale
            ``c = 2 mu_1 - 1`` in the interval the others leave.
        c_lo, c_hi : tensor
            Range of ``c`` that keeps every ``mu`` in its support.
        grid : LogitGrid or None
        supports : tuple of arrays, optional
            ``(lo_k, hi_k)``, each pair's own range of ``c_k``.

        Returns
        -------
        params : dict
            Name -> tensor (registered as deterministics).
        c, lo, hi : tensor
            The scale and the interval it was mapped into.
        feasible : tensor
            False where the coordinates leave the admissible set.
        logdet : tensor
            Log Jacobian of the map from ``z`` to ``params`` (and ``c``'s
            position before its logistic map, which the caller adds).
        """
        raise NotImplementedError(f"{self.name} has no identified parameterisation")

    def identified_head(
        self, params: Params, c: float, c_lo: float, c_hi: float, grid, supports=None
    ):
        """Inverse of :meth:`identified_params` in numpy (a starting point).

        Returns the family's coordinates before the scale's and the interval
        ``(lo, hi)`` of the scale. Values on or beyond the edges of the
        admissible set are pulled slightly inside.
        """
        raise NotImplementedError(f"{self.name} has no identified parameterisation")

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

    def ordered_transform(self, lo: float, hi: float) -> dict[str, Any]:
        """The atoms' locations as order statistics (:mod:`attnmodel.model.transforms`)."""
        from attnmodel.model.transforms import OrderedInterval

        return {"default_transform": None, "transform": OrderedInterval(lo, hi)}

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
            loc = weighted_quantile(eta_hat, weight, levels)
            loc = np.clip(loc + np.linspace(-0.01, 0.01, k), 0.0, 1.0)
            w = np.full(k, 1.0 / k)
        else:
            loc = np.sort(rng.uniform(0.02, 0.98, size=k))
            w = rng.dirichlet(np.full(k, 2.0))
        return self.from_components(w, loc)

    def to_vector(self, params):
        w, loc = self.components(params)
        return np.concatenate([weights_to_vector(w), loc])

    def from_vector(self, vec, grid=None):
        k = self.n_components
        w = weights_from_vector(vec[: k - 1])
        loc = np.clip(vec[k - 1 :], 0.0, 1.0)
        return self.from_components(w, loc)

    def vector_bounds(self, grid=None):
        k = self.n_components
        w_lo, w_hi = weights_bounds(k)
        lo, hi = self.location_range
        return np.concatenate([w_lo, np.full(k, lo)]), np.concatenate([w_hi, np.full(k, hi)])

    # -- the PyMC model ----------------------------------------------------
    identified = True

    def pymc_atoms(self, params: dict):
        """(log weights, locations) as tensors of shape (K,)."""
        import pytensor.tensor as pt

        return pt.log(params["weights"]), params["locations"]

    @property
    def n_identified_coords(self) -> int:
        # Weights (K - 1), the atoms of d = eta (2 mu - 1) (K) and the scale.
        return 2 * self.n_components

    def identified_weights(self, w_free):
        """Weights from their ``K - 1`` free coordinates.

        Returns ``(log weights, log Jacobian, parameters holding the weights)``.
        """
        raise NotImplementedError

    def identified_weights_head(self, weights: np.ndarray) -> list[float]:
        """Inverse of :meth:`identified_weights` in numpy."""
        raise NotImplementedError

    def atom_params(self, locations) -> dict:
        """Parameters holding the atoms' locations (tensor of shape (K,))."""
        raise NotImplementedError

    def identified_params(self, z, c_lo, c_hi, grid, supports=None):
        import pymc as pm
        import pytensor.tensor as pt
        from pymc.distributions import transforms

        from attnmodel.model.coords import logit_interval

        k = self.n_components
        logw, logdet, weight_params = self.identified_weights(z[: k - 1])
        d_free = z[k - 1 : 2 * k - 1]
        ordered_free = transforms.ordered.backward(d_free)
        atoms_d = pm.math.sigmoid(ordered_free)  # ordered atoms of d in (0, 1)
        lo = pt.maximum(atoms_d[-1], c_lo)
        hi = c_hi
        feasible = pt.lt(lo, hi)
        c = logit_interval(lo, hi, z[2 * k - 1])
        loc = atoms_d / c
        raw = {**weight_params, **self.atom_params(loc)}
        params = {
            name: pm.Deterministic(name, value, dims=self.param_dims[name] or None)
            for name, value in raw.items()
        }
        # Ordered then logistic map to the atoms of d; the atoms of eta are d / c.
        logdet = (
            logdet
            + transforms.ordered.log_jac_det(d_free)
            + pt.sum(pt.log(atoms_d * (1.0 - atoms_d)))
            - k * pt.log(c)
        )
        return params, c, lo, hi, feasible, logdet

    def identified_head(self, params, c, c_lo, c_hi, grid, supports=None):
        eps = 1e-3
        weights, loc = self.components(params)
        order = np.argsort(loc, kind="stable")
        weights, loc = np.asarray(weights)[order], np.asarray(loc)[order]
        k = self.n_components
        weights = np.clip(weights, eps, None)
        weights = weights / weights.sum()
        head = self.identified_weights_head(weights)
        atoms = np.clip(loc * c, eps, 1 - eps)
        for i in range(1, k):  # strictly increasing, as the ordered coordinates need
            atoms[i] = max(atoms[i], atoms[i - 1] + eps)
        logits = special.logit(np.clip(atoms, eps, 1 - eps))
        head += [logits[0], *np.log(np.maximum(np.diff(logits), eps))]
        return head, max(float(atoms[-1]), float(c_lo)), c_hi


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

    # -- the PyMC model ----------------------------------------------------
    def pymc_log_density_logit(self, params: dict, u: np.ndarray):
        """PyTensor log density of ``logit(eta)`` at the nodes ``u`` (shape (G,))."""
        raise NotImplementedError

    def pymc_latent_eta(self, params: dict):
        """Create ``eta[user] ~ P_eta`` in the latent model (inside a model with a ``user`` dim)."""
        raise NotImplementedError


class MixtureFamily(ContinuousFamily):
    """Shared machinery of the K-component continuous mixtures."""

    default_components = 2
    #: Per-component parameters besides the weights, in order.
    component_params: ClassVar[tuple[str, ...]] = ()
    #: Those of them that must be positive.
    positive_params: ClassVar[tuple[str, ...]] = ()

    @property
    def param_dims(self):
        return {name: ("component",) for name in ("weights", *self.component_params)}

    def _check_ranges(self, params):
        self._check_weights(self.name, params["weights"])
        for key in self.positive_params:
            if np.any(params[key] <= 0):
                raise ValueError(f"{self.name} {key!r} must be > 0, got {params[key]}")

    def component_log_density_logit(self, u: np.ndarray, params: Params) -> np.ndarray:
        """``log weights[k] + log density_k(u)``, shape (G, K)."""
        raise NotImplementedError

    def log_density_logit(self, u, params):
        return logsumexp_last(self.component_log_density_logit(np.asarray(u)[..., None], params))

    def responsibilities(self, u: np.ndarray, params: Params) -> np.ndarray:
        """Posterior component probabilities at ``u``, shape (G, K)."""
        lc = self.component_log_density_logit(np.asarray(u)[:, None], params)
        return np.exp(lc - logsumexp_last(lc)[:, None])

    def sort_components(self, params: Params, key: np.ndarray) -> Params:
        order = np.argsort(key, kind="stable")
        return {k: np.asarray(v)[order] for k, v in params.items()}

    def pymc_component_log_density_logit(self, params: dict, u: np.ndarray):
        """PyTensor log density of ``logit(eta)`` per component, shape (K, G)."""
        raise NotImplementedError

    def pymc_log_density_logit(self, params, u):
        import pytensor.tensor as pt

        comp = self.pymc_component_log_density_logit(params, u)
        return pt.logsumexp(pt.log(params["weights"])[:, None] + comp, axis=0)
