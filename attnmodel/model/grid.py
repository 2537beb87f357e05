"""Quadrature in logit space and the vote likelihood evaluated on it.

Everything here works on plain numpy arrays.

Continuous attentiveness densities are integrated in ``u = logit(eta)``: a
density that piles up at ``eta = 0`` or ``eta = 1`` becomes an exponentially
decaying tail in ``u``, which a trapezoid rule integrates to near machine
precision. The nodes are ``u = A * sinh(t / A)`` for equally spaced ``t``:
spacing ``h`` near ``u = 0``, growing in the tails where neither the likelihood
nor any admissible density varies quickly, and reaching ``|u| = 100``
(``eta`` within ``4e-44`` of 0 or 1) with a few hundred nodes.

The likelihood of one vote for the stronger model is
``g = 1/2 + eta * (mu - 1/2) = (1 - eta) / 2 + eta * mu``; it is evaluated in
that second form, from ``eta`` and ``1 - eta`` held separately, so that neither
``g`` nor ``1 - g`` loses digits when ``eta`` or ``mu`` is close to 1.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit, ndtr

from attnmodel.data.counts import CountTable

__all__ = [
    "LogitGrid",
    "make_logit_grid",
    "default_spacing",
    "pair_log_probs",
    "row_loglik",
    "maximize_concave_1d",
    "TailRule",
    "tail_rule",
]

#: Half-width of the logit grid: ``BETA_SHAPE_MIN * LOGIT_HALF_WIDTH = 20`` keeps
#: the Beta mass beyond the ends below ``exp(-20)``.
LOGIT_HALF_WIDTH = 200.0
#: Scale of the sinh stretch: spacing stays within 25% of ``h`` for ``|u| < 3``.
LOGIT_STRETCH = 4.0
#: Central spacing that resolves ``n`` votes, times ``sqrt(n)`` (see :func:`default_spacing`).
SPACING_ROOT_VOTES = 2.5
#: Largest central spacing that resolves every admissible prior density.
SPACING_MAX = 0.1


@dataclass(frozen=True)
class LogitGrid:
    """Trapezoid quadrature nodes in ``u = logit(eta)``.

    Attributes
    ----------
    u : ndarray, shape (G,)
        Nodes, increasing.
    log_weight : ndarray, shape (G,)
        Log trapezoid weights (in ``u``).
    spacing : float
        Node spacing at ``u = 0``.
    """

    u: np.ndarray
    log_weight: np.ndarray
    spacing: float

    @property
    def size(self) -> int:
        """Number of nodes ``G``."""
        return int(self.u.size)

    @property
    def eta(self) -> np.ndarray:
        """``sigmoid(u)``, shape (G,)."""
        return expit(self.u)

    @property
    def one_minus_eta(self) -> np.ndarray:
        """``1 - eta`` computed as ``sigmoid(-u)``, shape (G,)."""
        return expit(-self.u)

    @property
    def log_eta(self) -> np.ndarray:
        """``log(eta)``, shape (G,)."""
        return log_expit(self.u)

    @property
    def log_one_minus_eta(self) -> np.ndarray:
        """``log(1 - eta)``, shape (G,)."""
        return log_expit(-self.u)


def default_spacing(max_votes: int) -> float:
    """Central node spacing that resolves the likelihood of ``max_votes`` votes.

    A user's likelihood in ``u`` has a standard deviation of at least about
    ``3.3 / sqrt(n)`` (attained for ``mu = 1``, ``eta`` near 0.6). The trapezoid
    error for a Gaussian of standard deviation ``sigma`` sampled every ``h`` is
    about ``exp(-2 pi^2 sigma^2 / h^2)``; ``h = 2.5 / sqrt(n)`` makes that
    below ``1e-7`` and ``h <= 0.1`` keeps every admissible prior density
    resolved (see the families' bounds).
    """
    return float(min(SPACING_MAX, SPACING_ROOT_VOTES / np.sqrt(max(int(max_votes), 1))))


def make_logit_grid(max_votes: int = 1, spacing: float | None = None) -> LogitGrid:
    """Build the logit-space quadrature for data whose largest count row holds ``max_votes``.

    Parameters
    ----------
    max_votes : int
        Largest number of votes of one user on one pair.
    spacing : float, optional
        Central spacing; defaults to :func:`default_spacing`.
    """
    h = default_spacing(max_votes) if spacing is None else float(spacing)
    if not (0 < h <= 1):
        raise ValueError(f"grid spacing must be in (0, 1], got {h}")
    a = LOGIT_STRETCH
    t_max = a * np.arcsinh(LOGIT_HALF_WIDTH / a)
    k = int(np.ceil(t_max / h))
    t = h * np.arange(-k, k + 1)
    u = a * np.sinh(t / a)
    dudt = np.cosh(t / a)
    w = h * dudt
    # End nodes carry half weight (trapezoid); the integrands vanish there anyway.
    w[0] *= 0.5
    w[-1] *= 0.5
    return LogitGrid(u=u, log_weight=np.log(w), spacing=h)


#: Width of the smoothed step of :func:`tail_rule`, in node spacings (of ``t``).
TAIL_SMOOTH = 2.0
#: Gauss-Legendre nodes on each side of the cut in :func:`tail_rule`.
TAIL_NODES = 24


@dataclass(frozen=True)
class TailRule:
    """Quadrature of ``P(u >= u_star)`` from the grid's node masses and a few exact values.

    ``P(u >= u_star) = sum_g post_g * step_g + sum_k weight_k * p(u_k)``, where
    ``post`` are a row's normalised node masses and ``p(u_k)`` its normalised
    posterior density in ``u`` at the extra nodes ``u_k``.

    Attributes
    ----------
    step : ndarray, shape (G,)
        The smoothed step at the grid nodes.
    u : ndarray, shape (2 K,)
        Extra nodes around the cut.
    weight : ndarray, shape (2 K,)
        Their weights (in ``u``).
    """

    step: np.ndarray
    u: np.ndarray
    weight: np.ndarray


@functools.cache
def _tail_gauss_legendre() -> tuple[np.ndarray, np.ndarray]:
    """The ``TAIL_NODES`` Gauss-Legendre nodes and weights on [-1, 1], computed once.

    NUTS post-processing builds a tail rule at every draw; computing the nodes
    anew each time took an eighth of its time.
    """
    x, w = np.polynomial.legendre.leggauss(TAIL_NODES)
    x.setflags(write=False)
    w.setflags(write=False)
    return x, w


def tail_rule(grid: LogitGrid, eta_star: float) -> TailRule:
    """The rule of :class:`TailRule` for the cut ``eta_star`` (strictly inside (0, 1)).

    The indicator ``1[t >= t_star]`` (in the grid's coordinate ``t``, where the
    nodes are equally spaced) is split into a smooth step
    ``S(t) = Phi((t - t_star) / w)`` with ``w = TAIL_SMOOTH * h`` and the
    remainder ``1[t >= t_star] - S(t)``, which is concentrated within ``8.5 w``
    of the cut. The posterior times ``S`` is as smooth as the posterior at the
    scale of ``h`` (the trapezoid rule's aliasing error for a Gaussian of
    standard deviation ``s`` times ``S`` is about ``exp(-2 pi^2 / (h^2 / s^2 +
    h^2 / w^2))``), so the grid's node masses integrate it as accurately as
    they integrate the posterior itself; the remainder, smooth on each side of
    the cut, takes ``TAIL_NODES`` Gauss-Legendre nodes per side of the exact
    posterior density. Against adaptive quadrature the tail is within about
    1e-11 for users with up to 2000 votes (tests/test_tail.py); a
    piecewise log-linear density between the nodes is off by up to 1e-3 there.

    NUTS post-processing asks for the same rule three times per draw (0.5 to
    0.8 ms each on 1,475 nodes): the last few rules are kept, keyed by the
    grid's nodes and the cut, and every call returns copies of their arrays.
    """
    u_bytes = np.ascontiguousarray(grid.u, dtype=np.float64).tobytes()
    rule = _tail_rule(u_bytes, float(grid.spacing), float(eta_star))
    return TailRule(step=rule.step.copy(), u=rule.u.copy(), weight=rule.weight.copy())


@functools.lru_cache(maxsize=8)
def _tail_rule(u_bytes: bytes, spacing: float, eta_star: float) -> TailRule:
    """:func:`tail_rule` of the grid with nodes ``u_bytes`` (float64) and central ``spacing``."""
    u_nodes = np.frombuffer(u_bytes, dtype=np.float64)
    a = LOGIT_STRETCH
    t_star = a * np.arcsinh(float(np.log(eta_star) - np.log1p(-eta_star)) / a)
    w = TAIL_SMOOTH * spacing
    half = 0.5 * 8.5 * w
    x, gw = _tail_gauss_legendre()
    tau = half * (x + 1.0)
    rest = half * gw * ndtr(-tau / w)
    t_sub = np.concatenate([t_star + tau, t_star - tau])
    weight = np.concatenate([rest, -rest]) * np.cosh(t_sub / a)
    step = ndtr((a * np.arcsinh(u_nodes / a) - t_star) / w)
    return TailRule(step=step, u=a * np.sinh(t_sub / a), weight=weight)


#: Smooth-step values within this of 0 or 1 count as exactly 0 or 1 in :func:`side_weights`.
SIDE_ROUND = 1e-12


def side_weights(step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each node's share of the two sides of a cut, from the smooth step of :func:`tail_rule`.

    A node's mass goes above the cut with weight ``step`` and below it with
    ``1 - step``, so that the cut is blurred symmetrically over a few nodes
    rather than moved to a cell edge. Far from the cut the weights are
    exactly 0 and 1 (values within :data:`SIDE_ROUND` of them are rounded),
    so that a side far in a tail is the sum of its own nodes' masses and not
    a rounding residue of ``1 - step``.
    """
    above = np.where(step > 1.0 - SIDE_ROUND, 1.0, np.where(step < SIDE_ROUND, 0.0, step))
    return above, 1.0 - above


def pair_log_probs(
    eta: np.ndarray, one_minus_eta: np.ndarray, mu: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Log probability of a vote for / against the stronger model.

    Parameters
    ----------
    eta, one_minus_eta : ndarray, shape (G,)
        Attentiveness values and their complements.
    mu : ndarray, shape (P,)
        Win rate of each pair's stronger model.

    Returns
    -------
    log_g, log_1mg : ndarray, shape (P, G)
    """
    mu = np.asarray(mu, dtype=np.float64)[:, None]
    half = 0.5 * one_minus_eta[None, :]
    with np.errstate(divide="ignore"):
        log_g = np.log(half + eta[None, :] * mu)
        log_1mg = np.log(half + eta[None, :] * (1.0 - mu))
    return log_g, log_1mg


def row_loglik(counts: CountTable, log_g: np.ndarray, log_1mg: np.ndarray) -> np.ndarray:
    """Log-likelihood of each distinct count row at each node.

    This is the likelihood of the observed sequence of votes (a product of
    Bernoulli terms), which is what the per-vote model defines; it omits the
    binomial coefficients, which do not depend on any parameter.

    Parameters
    ----------
    counts : CountTable
    log_g, log_1mg : ndarray, shape (P, G)
        From :func:`pair_log_probs`.

    Returns
    -------
    ndarray, shape (R, G)
    """
    s = counts.entry_s.astype(np.float64)[:, None]
    f = (counts.entry_n - counts.entry_s).astype(np.float64)[:, None]
    if np.isfinite(log_g).all() and np.isfinite(log_1mg).all():
        if counts.n_pairs == 1:
            ll = s * log_g[0] + f * log_1mg[0]
        else:
            ll = s * log_g[counts.entry_pair] + f * log_1mg[counts.entry_pair]
    else:
        # 0 * (-inf) must count as 0: a vote that was never cast costs nothing.
        with np.errstate(invalid="ignore"):
            ll = np.where(s > 0, s * log_g[counts.entry_pair], 0.0) + np.where(
                f > 0, f * log_1mg[counts.entry_pair], 0.0
            )
    return counts.row_sum(ll)


def maximize_concave_1d(
    grad,
    hess,
    lo: np.ndarray,
    hi: np.ndarray,
    x0: np.ndarray,
    *,
    xtol: float = 1e-13,
    max_iter: int = 200,
) -> np.ndarray:
    """Vectorised maximiser of concave functions on intervals.

    Newton steps safeguarded by bisection on the sign of the gradient, so it
    converges for any concave function and returns a boundary when the
    maximum lies there.

    Parameters
    ----------
    grad, hess : callable
        ``grad(x)`` and ``hess(x)`` for an array ``x`` of shape (K,).
    lo, hi : ndarray, shape (K,)
        Interval bounds, ``lo < hi``.
    x0 : ndarray, shape (K,)
        Starting points.

    Returns
    -------
    ndarray, shape (K,)
    """
    lo = np.array(lo, dtype=np.float64)
    hi = np.array(hi, dtype=np.float64)
    x = np.clip(np.asarray(x0, dtype=np.float64), lo, hi)
    a, b = lo.copy(), hi.copy()
    # Maximum at a boundary: the gradient there points outwards.
    g_lo, g_hi = grad(a), grad(b)
    at_lo = g_lo <= 0
    at_hi = g_hi >= 0
    active = ~(at_lo | at_hi)
    x = np.where(at_lo, lo, np.where(at_hi, hi, x))
    for _ in range(max_iter):
        if not active.any():
            break
        g = grad(x)
        # Keep the bracket [a, b] around the root of the gradient.
        a = np.where(active & (g > 0), x, a)
        b = np.where(active & (g < 0), x, b)
        h = hess(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(h < 0, -g / h, np.nan)
        x_new = x + step
        # A Newton step below tolerance ends the search (it may round onto the bracket).
        tiny = np.isfinite(step) & (np.abs(step) <= xtol * (1 + np.abs(x)))
        bad = ~np.isfinite(x_new) | (x_new < a) | (x_new > b)
        x_new = np.where(bad & ~tiny, 0.5 * (a + b), x_new)
        done = tiny | (g == 0) | (b - a <= xtol * (1 + np.abs(x)))
        x = np.where(active, np.clip(x_new, lo, hi), x)
        active = active & ~done
    return x
