"""The Beta family, and the Beta helpers the Beta mixture shares."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from attnmodel.model.families.base import ContinuousFamily
from attnmodel.model.grid import LogitGrid, maximize_concave_1d

__all__ = [
    "BETA_SHAPE_MIN",
    "Beta",
    "beta_box",
    "beta_log_density_logit",
    "beta_mean_range",
    "beta_mle",
    "beta_moments",
    "beta_scale_range",
    "beta_variance_range",
    "beta_shape_max",
    "pymc_beta_log_density_logit",
]

#: Smallest Beta shape parameter: below it more than ``exp(-20)`` of the mass
#: would lie beyond the logit grid's ends (a shape ``b`` leaves about
#: ``exp(-b W)`` beyond ``|u| = W``; see :data:`attnmodel.model.grid.LOGIT_HALF_WIDTH`).
#: Logs whose votes push ``P_eta`` onto ``eta = 1`` (MT-Bench) have posterior
#: mass of ``beta`` down to this floor; the identified coordinates map onto the
#: box exactly (:func:`beta_variance_range`), so the floor is no wall for NUTS.
BETA_SHAPE_MIN = 0.1


def beta_shape_max(grid: LogitGrid | None) -> float:
    """Largest Beta shape parameter the grid resolves.

    ``Beta(a, b)`` has a standard deviation of about ``sqrt(1/a + 1/b)`` in
    logit space; capping both at ``1 / (2 h^2)`` keeps it at least ``h``.
    """
    h = 0.1 if grid is None else grid.spacing
    return float(max(50.0, 1.0 / (2.0 * h * h)))


def beta_box(grid: LogitGrid | None) -> dict[str, tuple[float, float]]:
    """Box of Beta shapes: from :data:`BETA_SHAPE_MIN` to what the grid resolves."""
    cap = beta_shape_max(grid)
    return {"alpha": (BETA_SHAPE_MIN, cap), "beta": (BETA_SHAPE_MIN, cap)}


def beta_moments(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Method-of-moments Beta shapes of weighted values (clipped into (0.02, 0.98))."""
    x = np.clip(x, 0.02, 0.98)
    m = np.average(x, weights=w)
    x -= m  # in place: x may hold millions of rows
    v = max(np.average(np.square(x, out=x), weights=w), 1e-3)
    c = max(m * (1 - m) / v - 1.0, 0.5)
    return float(m * c), float((1 - m) * c)


def beta_mle(
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


def beta_log_density_logit(u, a, b):
    """Log density of ``logit(eta)`` for ``eta ~ Beta(a, b)`` (numpy)."""
    return a * special.log_expit(u) + b * special.log_expit(-u) - special.betaln(a, b)


def pymc_beta_log_density_logit(u: np.ndarray, a, b):
    """:func:`beta_log_density_logit` in PyTensor: ``u`` numbers, ``a`` and ``b`` tensors."""
    import pytensor.tensor as pt

    log_s = -np.logaddexp(0.0, -u)
    log_1ms = -np.logaddexp(0.0, u)
    return a * log_s + b * log_1ms - (pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b))


def _mean_share_range(box) -> tuple[float, float]:
    """Range of the Beta mean ``alpha / (alpha + beta)`` over the box."""
    (a_min, a_max), (b_min, b_max) = box["alpha"], box["beta"]
    return a_min / (a_min + b_max), a_max / (a_max + b_min)


def beta_mean_range(c_lo, c_hi, box):
    """Range of ``D1 = c m`` (``m`` the Beta mean) over the box and ``c`` in ``[c_lo, c_hi]``."""
    m_lo, m_hi = _mean_share_range(box)
    return c_lo * m_lo, c_hi * m_hi


def beta_variance_range(d1, c_lo, c_hi, box, xp):
    """Range of ``V``, the variance of ``d = c eta``, that the box leaves at mean ``d1``.

    With ``m = d1 / c`` and concentration ``kappa``, ``V = d1 (c - d1) / (kappa + 1)``;
    ``alpha = m kappa`` and ``beta = (1 - m) kappa`` in the box bound ``kappa``
    at fixed ``c``, and ``m`` in its range bounds ``c`` to ``[c_a, c_b]``. At each
    bound of ``alpha`` or ``beta`` the variance increases with ``c``, so the
    largest ``V`` is at ``c_b`` with ``kappa`` at its smallest, the smallest at
    ``c_a`` with ``kappa`` at its largest. For ``d1`` inside
    :func:`beta_mean_range` every ``V`` strictly between them has an open
    interval of admissible scales (:func:`beta_scale_range`). ``xp`` is numpy
    or ``pytensor.tensor``. Returns ``(v_min, v_max)``.
    """
    from attnmodel.model.coords import array_ops

    maximum, minimum, _, _ = array_ops(xp)
    (a_min, a_max), (b_min, b_max) = box["alpha"], box["beta"]
    m_lo, m_hi = _mean_share_range(box)
    c_a = maximum(c_lo, d1 / m_hi)
    c_b = minimum(c_hi, d1 / m_lo)

    def at_alpha(c, a):  # V with alpha = a at scale c
        return d1 * d1 * (c - d1) / (a * c + d1)

    def at_beta(c, b):  # V with beta = b at scale c
        return d1 * (c - d1) ** 2 / ((1.0 + b) * c - d1)

    v_max = minimum(at_alpha(c_b, a_min), at_beta(c_b, b_min))
    v_min = maximum(at_alpha(c_a, a_max), at_beta(c_a, b_max))
    return v_min, v_max


def beta_scale_range(d1, var, lo, hi, box, xp):
    """Range of the scale ``c`` for the Beta family given the mean and variance of ``d``.

    ``alpha(c) = D1 (D1 c - D2) / (c V)`` and ``beta(c) = (c - D1)(D1 c - D2) / (c V)``
    both increase with ``c`` on ``c > D2 / D1``, so each bound of the box on
    ``alpha`` or ``beta`` is a bound on ``c``. ``xp`` is numpy or
    ``pytensor.tensor``. Returns ``(lo, hi, feasible)``.
    """
    from attnmodel.model.coords import array_ops

    maximum, minimum, where, sqrt = array_ops(xp)
    d2 = var + d1 * d1
    (a_min, a_max), (b_min, b_max) = box["alpha"], box["beta"]

    def larger_root(b):
        # Larger root of D1 x^2 + b x + D1 D2 (NaN when there is none).
        return (-b + sqrt(b * b - 4.0 * d1 * d1 * d2)) / (2.0 * d1)

    lo = maximum(lo, d2 / d1)
    lo = maximum(lo, d1 * d2 / (d1 * d1 - a_min * var))
    lo = maximum(lo, larger_root(-(d2 + d1 * d1 + b_min * var)))
    hi = where(d1 * d1 / var > a_max, minimum(hi, d1 * d2 / (d1 * d1 - a_max * var)), hi)
    hi = minimum(hi, larger_root(-(d2 + d1 * d1 + b_max * var)))
    feasible = (d1 * d1 - a_min * var > 0.0) & (lo < hi)
    return lo, hi, feasible


class Beta(ContinuousFamily):
    """``P_eta = Beta(alpha, beta)``."""

    name = "beta"
    more_components = "beta_mixture"
    mean_concentration = ("alpha", "beta")

    @property
    def param_dims(self):
        return {"alpha": (), "beta": ()}

    def _check_ranges(self, params):
        for key in ("alpha", "beta"):
            if params[key] <= 0:
                raise ValueError(f"beta parameter {key!r} must be > 0, got {params[key]}")

    def log_density_logit(self, u, params):
        return beta_log_density_logit(u, params["alpha"], params["beta"])

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
        a, b = beta_mle(
            t1, t2, params["alpha"], params["beta"], BETA_SHAPE_MIN, beta_shape_max(grid)
        )
        return {"alpha": a, "beta": b}

    def init_params(self, eta_hat, weight, rng, start):
        a, b = beta_moments(eta_hat, weight)
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
        return beta_box(grid)

    def vector_bounds(self, grid=None):
        lo, hi = np.log(self.box(grid)["alpha"])
        return np.full(2, lo), np.full(2, hi)

    # -- the PyMC model ----------------------------------------------------
    identified = True

    def pymc_log_density_logit(self, params, u):
        return pymc_beta_log_density_logit(u, params["alpha"], params["beta"])

    def pymc_latent_eta(self, params):
        import pymc as pm

        return pm.Beta("eta", alpha=params["alpha"], beta=params["beta"], dims="user")

    @property
    def n_identified_coords(self):
        # The mean and variance of d = eta (2 mu - 1) on the first pair, and the scale.
        return 3

    def _mean_coord_range(self, supports, grid):
        # D1's range: the box's Beta means times pair 1's own range of c.
        lo_k, hi_k = supports
        return beta_mean_range(float(lo_k[0]), float(hi_k[0]), self.box(grid))

    def identified_ratios(self, z, supports, grid):
        # D1 first, then each pair's ratio on the range that keeps that pair's mean
        # of d, D1 rho_k, within what its own c_k and the box's means allow: so
        # the scale's range below never closes, and no min over pairs enters D1.
        import pytensor.tensor as pt

        from attnmodel.model.coords import log_sigmoid_slope, logit_interval

        lo_k, hi_k = supports
        m_lo, m_hi = _mean_share_range(self.box(grid))
        d1 = logit_interval(*self._mean_coord_range(supports, grid), z[0])
        r_lo, r_hi = m_lo * lo_k[1:] / d1, m_hi * hi_k[1:] / d1
        free = z[self.n_identified_coords :]
        rho = logit_interval(r_lo, r_hi, free)
        return rho, pt.sum(pt.log(r_hi - r_lo) + log_sigmoid_slope(free))

    def identified_ratio_coords(self, params, c, rho, supports, grid):
        lo_k, hi_k = supports
        m_lo, m_hi = _mean_share_range(self.box(grid))
        d1, _ = self._head_mean(params, c, supports, grid)
        r_lo, r_hi = m_lo * lo_k[1:] / d1, m_hi * hi_k[1:] / d1
        return special.logit(np.clip((rho - r_lo) / (r_hi - r_lo), 1e-9, 1 - 1e-9))

    def _head_mean(self, params, c, supports, grid):
        # D1 = c m, pulled inside its range; and its position there.
        a, b = float(params["alpha"]), float(params["beta"])
        d1_lo, d1_hi = self._mean_coord_range(supports, grid)
        f1 = np.clip((c * a / (a + b) - d1_lo) / (d1_hi - d1_lo), 1e-3, 1 - 1e-3)
        return d1_lo + f1 * (d1_hi - d1_lo), f1

    def identified_params(self, z, c_lo, c_hi, grid, supports=None):
        import pymc as pm
        import pytensor.tensor as pt

        from attnmodel.model.coords import log_sigmoid_slope, logit_interval

        # D1 on its range (the pair ratios were bounded given it), then V on the
        # range the box leaves at that D1, then the scale: each coordinate moves
        # over the whole line, and every point is admissible (no wall inside the
        # sampler's space).
        box = self.box(grid)
        d1_lo, d1_hi = self._mean_coord_range(supports, grid)
        d1 = logit_interval(d1_lo, d1_hi, z[0])
        v_min, v_max = beta_variance_range(d1, c_lo, c_hi, box, pt)
        var = logit_interval(v_min, v_max, z[1])
        d2 = var + d1 * d1
        lo, hi, feasible = beta_scale_range(d1, var, c_lo, c_hi, box, pt)
        c = logit_interval(lo, hi, z[2])
        m = d1 / c
        kappa = (d1 * c - d2) / var
        alpha = pm.Deterministic("alpha", m * kappa)
        beta = pm.Deterministic("beta", (1.0 - m) * kappa)
        # |d(D1, V)/d(z0, z1)| (triangular: V's range depends on D1, not on z1), then
        # |d(alpha, beta)/d(D1, D2)| at fixed c, which is kappa * D1 (c - D1) / (c V^2).
        logdet = (
            pt.log(d1_hi - d1_lo)
            + log_sigmoid_slope(z[0])
            + pt.log(v_max - v_min)
            + log_sigmoid_slope(z[1])
            + pt.log(kappa)
            + pt.log(d1)
            + pt.log(c - d1)
            - pt.log(c)
            - 2.0 * pt.log(var)
        )
        return {"alpha": alpha, "beta": beta}, c, lo, hi, feasible, logdet

    def identified_head(self, params, c, c_lo, c_hi, grid, supports=None):
        eps = 1e-3
        box = self.box(grid)
        a, b = float(params["alpha"]), float(params["beta"])
        m, kappa = a / (a + b), a + b
        var = c * c * m * (1.0 - m) / (kappa + 1.0)
        d1, f1 = self._head_mean(params, c, supports, grid)
        v_min, v_max = beta_variance_range(d1, c_lo, c_hi, box, np)
        f2 = np.clip((var - v_min) / (v_max - v_min), eps, 1 - eps)
        var = v_min + f2 * (v_max - v_min)
        head = [special.logit(f1), special.logit(f2)]
        lo, hi, _ = beta_scale_range(d1, var, c_lo, c_hi, box, np)
        return head, lo, hi
