"""Per-user attentiveness summaries at a fitted model.

Given fitted ``P_eta`` and ``mu``, user ``j``'s posterior is
``p(eta | votes_j) ∝ likelihood_j(eta) * P_eta(eta)``. Users with identical
count rows share it, so everything is computed per distinct row and then
indexed out to users.

For continuous families the posterior lives on the logit grid. Mean and
standard deviation are sums over the node masses (the trapezoid rule, accurate
to near machine precision). The CDF comes from a cubic spline of the log
density through the nodes, integrated cell by cell; it gives
``P(eta >= eta_star)``, quantiles and the highest-density interval (HDI, the
shortest interval holding ``hdi_prob``, found by golden-section search over the
lower tail mass; the shortest one for unimodal posteriors, which every
single-component family gives). The MAP is refined from the best node by a
golden-section search on the exact log density. For discrete families the
posterior is a membership probability per atom and every summary is exact.

``log_bf`` is the evidence of a user's own votes for ``eta >= eta_star``: the
log Bayes factor of that side of the cut against the other
(:func:`attnmodel.posterior.conditional.log_bayes_factor`), the log of the
factor by which the votes multiplied the population's odds. ``p_above`` mixes
it with those odds: a user with one or two votes has ``p_above`` close to
``P_eta``'s share above the cut and ``log_bf`` close to 0, whatever that share
is. Each side's mass is summed on its own (so that a side far in a tail
keeps its digits), by the tail rule of :func:`attnmodel.model.grid.tail_rule`
on the grid, in posterior and prior alike. Against adaptive quadrature it
agrees to about 1e-6 (tests/test_evidence.py) unless ``P_eta`` puts a mass
below about e^-30 on one side and falls steeply there (a fit at the edge of
its box, such as Beta(50, 0.2) with the cut at 0.5): the grid's quadrature of
so steep a tail then limits ``log_bf`` to within about 0.1.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import interpolate, special

from attnmodel.model.ties import direction_nodes
from attnmodel.posterior.conditional import (
    AtomCells,
    GridCells,
    log_bayes_factor,
    posterior_side_log_masses,
    prior_side_log_masses,
)
from attnmodel.posterior.draws import log_bf_from_draws, p_above_from_draws

__all__ = ["user_posterior", "row_summaries", "draw_eta"]

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


#: Above this many (row, node) values the per-row summaries work a block of rows
#: at a time, each block's posterior recomputed (:func:`row_summaries`): 400 MB
#: of float64 per block, never the whole (rows x nodes) matrix.
SUMMARY_CELLS = 50_000_000
#: Rows of the posterior handled at once by the continuous summaries (cells per chunk).
_CHUNK_CELLS = 2_000_000
#: Log density (relative to the row's peak) below which the CDF spline is floored.
_LOG_FLOOR = -60.0
#: Users whose ``eta`` draws are generated at once (bounds the sampler's temporary memory).
_DRAW_CHUNK = 2_000_000


def _final_estep(result):
    """The E-step at the fitted state with its posterior node masses (shape (R, G)).

    The fit's final E-step when it kept them; otherwise (an E-step that
    returns only sufficient statistics) recomputed at the fitted state.
    """
    if getattr(result.estep_, "posterior", None) is not None:
        return result.estep_
    return result.problem.e_step(result.state_, posterior=True)


def _golden_min(fun, lo: np.ndarray, hi: np.ndarray, n_iter: int = 80) -> np.ndarray:
    """Vectorised golden-section minimisation of unimodal functions on [lo, hi]."""
    a, b = lo.astype(float).copy(), hi.astype(float).copy()
    c = b - _GOLDEN * (b - a)
    d = a + _GOLDEN * (b - a)
    fc, fd = fun(c), fun(d)
    for _ in range(n_iter):
        left = fc <= fd
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        new_c = b - _GOLDEN * (b - a)
        new_d = a + _GOLDEN * (b - a)
        c_next = np.where(left, new_c, d)
        d_next = np.where(left, c, new_d)
        f_eval = fun(np.where(left, new_c, new_d))
        fc, fd = np.where(left, f_eval, fd), np.where(left, fc, f_eval)
        c, d = c_next, d_next
    return 0.5 * (a + b)


class _GridCDF:
    """Posterior CDF in logit space for every row, from a spline of the log density.

    The node masses fix the log density in ``u`` at the nodes
    (``log post - log weight``, up to a constant per row). A cubic spline
    through those values, exponentiated and integrated cell by cell with
    8-point Gauss-Legendre, gives a CDF within about 1e-7 of quadrature of the
    exact posterior (tests/test_posterior.py); treating the density as constant
    within a cell instead is off by up to ``h^2 / 8 * max f'`` (about 1e-2 for
    users with thousands of votes, where ``h`` is close to the posterior's width).
    """

    _GL_X, _GL_W = np.polynomial.legendre.leggauss(8)

    def __init__(self, u: np.ndarray, log_weight: np.ndarray, post: np.ndarray) -> None:
        with np.errstate(divide="ignore"):
            log_dens = np.log(post) - log_weight[None, :]
        peak = log_dens.max(axis=1, keepdims=True)
        # Floor the far tails at exp(-60) of the peak (negligible mass even summed over
        # the whole grid): it keeps -inf out of the spline, and the kink where a steep
        # tail meets the floor makes the spline ring by a fraction of (slope jump) * h,
        # which must stay small next to 60 (with a floor at -745 it reached e^+15).
        log_dens = np.maximum(log_dens - peak, _LOG_FLOOR)
        self.u = u
        self.dx = np.diff(u)  # (G - 1,)
        self.coef = interpolate.CubicSpline(u, log_dens, axis=1).c  # (4, G - 1, R)
        n_rows = post.shape[0]
        c = self.coef
        mass = np.zeros((self.dx.size, n_rows))
        for x, w in zip(self._GL_X, self._GL_W, strict=True):
            t = (0.5 * self.dx * (1.0 + x))[:, None]
            mass += w * np.exp(((c[0] * t + c[1]) * t + c[2]) * t + c[3])
        mass *= 0.5 * self.dx[:, None]
        cum = np.concatenate([np.zeros((1, n_rows)), np.cumsum(mass, axis=0)], axis=0)
        self.total = cum[-1]  # (R,)
        self.cum = (cum / self.total).T  # (R, G), normalised
        self.rows = np.arange(n_rows)

    def _cell_coef(self, cell: np.ndarray) -> np.ndarray:
        """Spline coefficients of each row's ``cell``, shape (4, R)."""
        return self.coef[:, cell, self.rows]

    @staticmethod
    def _poly(cc: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Spline log density at offset ``t`` into the cells of ``cc``."""
        return ((cc[0] * t + cc[1]) * t + cc[2]) * t + cc[3]

    def _partial(self, cc: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Normalised mass between each row's cell start and ``t`` past it."""
        acc = np.zeros(t.shape)
        for x, w in zip(self._GL_X, self._GL_W, strict=True):
            acc += w * np.exp(self._poly(cc, 0.5 * t * (1.0 + x)))
        return 0.5 * t * acc / self.total

    def cdf(self, x: float) -> np.ndarray:
        """``P(u <= x)`` per row."""
        if x <= self.u[0]:
            return np.zeros(self.rows.size)
        if x >= self.u[-1]:
            return np.ones(self.rows.size)
        i = int(np.clip(np.searchsorted(self.u, x, side="right") - 1, 0, self.dx.size - 1))
        t = np.full(self.rows.size, x - self.u[i])
        return np.clip(self.cum[:, i] + self._partial(self.coef[:, i, :], t), 0.0, 1.0)

    def quantile(self, p: np.ndarray) -> np.ndarray:
        """Logit-space quantile per row at levels ``p`` (shape (R,))."""
        r = self.rows
        lo = np.zeros(r.size, dtype=np.int64)
        hi = np.full(r.size, self.cum.shape[1] - 1, dtype=np.int64)
        # Binary search for the cell whose cumulative range holds p.
        while np.any(hi - lo > 1):
            mid = (lo + hi) // 2
            below = self.cum[r, mid] <= p
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        c0, c1 = self.cum[r, lo], self.cum[r, hi]
        target = np.clip(p - c0, 0.0, None)
        width = self.dx[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(c1 > c0, target / (c1 - c0), 0.0)
        t = np.clip(frac, 0.0, 1.0) * width
        # Newton on the within-cell mass, kept inside a shrinking bracket (bisection fallback).
        cc = self._cell_coef(lo)
        a, b = np.zeros(r.size), width.copy()
        for _ in range(40):
            resid = self._partial(cc, t) - target
            a = np.where(resid <= 0, t, a)
            b = np.where(resid >= 0, t, b)
            dens = np.exp(self._poly(cc, t)) / self.total
            with np.errstate(invalid="ignore", divide="ignore"):
                step = resid / dens
            t_new = t - step
            bad = ~np.isfinite(t_new) | (t_new < a) | (t_new > b)
            t_new = np.where(bad, 0.5 * (a + b), t_new)
            done = np.abs(t_new - t) <= 1e-14 * (1.0 + np.abs(self.u[lo]))
            t = t_new
            if np.all(done):
                break
        return self.u[lo] + t


def row_summaries(result, eta_star: float = 0.5, hdi_prob: float = 0.94) -> dict[str, np.ndarray]:
    """Posterior summaries per distinct count row of an :class:`~attnmodel.inference.em.EMResult`.

    A table whose posterior matrix (rows x grid nodes or atoms) would hold more
    than :data:`SUMMARY_CELLS` values is summarised a block of rows at a time,
    each block's posterior recomputed at the fitted state (the rows are
    independent given it), so the whole matrix is never formed.

    Returns
    -------
    dict
        ``eta_mean``, ``eta_sd``, ``eta_map``, ``hdi_lower``, ``hdi_upper``,
        ``p_above``, ``log_bf`` (each shape (R,)) and, for discrete
        families, ``membership`` of shape (R, K).
    """
    if not 0.0 < eta_star < 1.0:
        raise ValueError(f"eta_star must be in (0, 1), got {eta_star}")
    if not 0.0 < hdi_prob < 1.0:
        raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob}")
    prior_sides = prior_side_log_masses(result.problem, result.state_, eta_star)
    blocks = [
        _block_summaries(result, problem, estep, prior_sides, eta_star, hdi_prob)
        for _, problem, estep in _posterior_blocks(result)
    ]
    if len(blocks) == 1:
        return blocks[0]
    return {key: np.concatenate([b[key] for b in blocks]) for key in blocks[0]}


def _posterior_blocks(result):
    """``(first row, problem, E-step with its posterior matrix)`` for blocks of rows.

    One block, the fit's own problem and final E-step (:func:`_final_estep`),
    when the table's matrix holds at most :data:`SUMMARY_CELLS` values; else
    consecutive blocks of rows, each a problem of its own whose E-step is run
    at the fitted state as the block is reached.
    """
    problem = result.problem
    counts = problem.counts
    n_rows = counts.n_rows
    if problem.grid is None:
        nodes = len(result.family.components(result.params_)[1])
    else:
        nodes = problem.grid.size
    step = max(1, SUMMARY_CELLS // max(nodes, 1))
    if n_rows <= step:
        yield 0, problem, _final_estep(result)
        return
    state = result.state_
    for start in range(0, n_rows, step):
        sub = problem.on_rows(counts.take_rows(np.arange(start, min(start + step, n_rows))))
        yield start, sub, sub.e_step(state, posterior=True)


def _block_summaries(result, problem, estep, prior_sides, eta_star, hdi_prob) -> dict:
    """:func:`row_summaries` of the rows of ``problem`` (``estep``: its E-step with the matrix)."""
    family = result.family
    post = np.asarray(estep.posterior, dtype=np.float64)
    state = result.state_
    sides = posterior_side_log_masses(problem, state, post, estep.row_log_marginal, eta_star)
    out: dict[str, np.ndarray] = {"log_bf": log_bayes_factor(*sides, *prior_sides)}
    if family.discrete:
        _, loc = family.components(result.params_)
        # Memberships sum to 1 only up to rounding: keep the sums inside their ranges
        # (an atom at 1 gave means and probabilities of 1 + 2e-16).
        mean = np.clip(post @ loc, loc.min(), loc.max())
        out["eta_mean"] = mean
        out["eta_sd"] = np.sqrt(np.maximum(post @ loc**2 - mean**2, 0.0))
        out["eta_map"] = loc[np.argmax(post, axis=1)]
        out["p_above"] = np.clip(post @ (loc >= eta_star).astype(float), 0.0, 1.0)
        order = np.argsort(-post, axis=1, kind="stable")
        sorted_post = np.take_along_axis(post, order, axis=1)
        # Smallest set of atoms holding hdi_prob (mass needed before each atom < hdi_prob).
        need = (np.cumsum(sorted_post, axis=1) - sorted_post) < hdi_prob - 1e-12
        locs = np.where(need, loc[order], np.nan)
        out["hdi_lower"] = np.nanmin(locs, axis=1)
        out["hdi_upper"] = np.nanmax(locs, axis=1)
        out["membership"] = post
        return out

    grid = problem.grid
    eta = grid.eta
    mean = post @ eta
    out["eta_mean"] = mean
    out["eta_sd"] = np.sqrt(
        np.maximum(np.einsum("rg,rg->r", post, (eta[None, :] - mean[:, None]) ** 2), 0.0)
    )
    x_star = float(special.logit(eta_star))
    n_rows = post.shape[0]
    p_above, hdi_lower, hdi_upper = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows)
    # The spline holds 4 coefficients per (row, cell): bound the memory by chunking rows.
    # Rows are taken in order of their posterior mean, so that each chunk's rows
    # share a band of nodes; nodes outside every row's band (mass below e^-70 of
    # the row's largest) are left out of the chunk's spline.
    step = max(1, _CHUNK_CELLS // post.shape[1])
    order = np.argsort(mean, kind="stable")
    for start in range(0, n_rows, step):
        sl = order[start : start + step]
        block = post[sl]
        floor = block.max(axis=1, keepdims=True) * np.exp(-70.0)
        live = np.flatnonzero((block > floor).any(axis=0))
        lo = max(int(live[0]) - 2, 0)
        hi = min(int(live[-1]) + 3, post.shape[1])
        cdf = _GridCDF(grid.u[lo:hi], grid.log_weight[lo:hi], block[:, lo:hi])
        p_above[sl] = np.clip(1.0 - cdf.cdf(x_star), 0.0, 1.0)

        def width(p_lo, cdf=cdf):
            return special.expit(cdf.quantile(p_lo + hdi_prob)) - special.expit(cdf.quantile(p_lo))

        zeros = np.zeros(cdf.rows.size)
        # 28 golden steps pin the lower tail mass to ~1e-7 of its 1 - hdi_prob range.
        p_lo = _golden_min(width, zeros, zeros + (1.0 - hdi_prob), n_iter=28)
        hdi_lower[sl] = special.expit(cdf.quantile(p_lo))
        hdi_upper[sl] = special.expit(cdf.quantile(p_lo + hdi_prob))
    out["p_above"] = p_above
    out["hdi_lower"] = hdi_lower
    out["hdi_upper"] = hdi_upper
    out["eta_map"] = _map_continuous(result, problem, post)
    return out


def _map_continuous(result, problem, post: np.ndarray) -> np.ndarray:
    """MAP of ``eta`` per row of ``problem``: best node, refined on the exact log density."""
    grid = problem.grid
    counts = problem.counts
    mu = result.mu_.to_numpy()
    params = result.params_
    family = result.family
    # Density in eta (not u): divide the node posterior by the cell width in eta.
    with np.errstate(divide="ignore"):
        log_dens = np.log(post) - grid.log_weight[None, :] - grid.log_eta - grid.log_one_minus_eta
    best = np.argmax(log_dens, axis=1)
    eta = grid.eta
    lo = np.where(best > 0, eta[np.maximum(best - 1, 0)], 0.0)
    hi = np.where(best < eta.size - 1, eta[np.minimum(best + 1, eta.size - 1)], 1.0)
    s = counts.entry_s.astype(float)
    f = (counts.entry_n - counts.entry_s).astype(float)
    d = mu[counts.entry_pair] - 0.5
    rows = counts.entry_row
    ties = result.ties_ if problem.ties_modelled else None

    def neg_log_density(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            if ties is None:
                xd, tie_part = x, 0.0
            else:
                # Ties modelled: the direction part at eta' = eta / c(eta), and
                # the row's tie factor (attnmodel.model.ties).
                xd, _, log_c, log_1mc = direction_nodes(x, 1.0 - x, ties.kappa)
                tie_part = problem.tie_term.log_factor_rows(
                    problem.tie_term.row_key, log_c, log_1mc, ties.a, ties.b
                )
            xe = xd[rows]
            ll = np.where(s > 0, s * np.log(0.5 + xe * d), 0.0) + np.where(
                f > 0, f * np.log(0.5 - xe * d), 0.0
            )
            val = counts.row_sum(ll) + tie_part + family.log_pdf(x, params)
        return -np.where(np.isfinite(val), val, -np.inf) * 1.0

    with np.errstate(invalid="ignore"):
        refined = _golden_min(neg_log_density, lo, hi, n_iter=80)
    # Keep a boundary node when the density is largest there (e.g. alpha < 1).
    at_edge = (best == 0) | (best == eta.size - 1)
    return np.where(at_edge, eta[best], refined)


def user_posterior(
    result, eta_star: float | None = None, hdi_prob: float | None = None
) -> xr.Dataset:
    """Per-user attentiveness posterior summaries of a fit.

    Parameters
    ----------
    result : EMResult or xarray.DataTree
        A MAP-EM fit, whose summaries are computed exactly at its estimate,
        or a result tree of any method (:mod:`attnmodel.results.tree`), whose
        ``attentiveness`` group holds them.
    eta_star : float, optional
        Cut for ``p_above = P(eta_j >= eta_star | votes_j)``. Default: 0.5
        for an EMResult, the tree's own cut for a tree; another cut on a tree
        is estimated from its ``eta`` draws
        (:func:`attnmodel.posterior.draws.p_above_from_draws`), with its
        ``p_above_mcse``, and so is ``log_bf``
        (:func:`attnmodel.posterior.draws.log_bf_from_draws`).
    hdi_prob : float, optional
        Mass of the highest-density interval. Default: 0.94 for an EMResult,
        the tree's own for a tree (which holds intervals at that mass only).

    Returns
    -------
    xarray.Dataset
        Indexed by ``user`` (the input ids): ``eta_mean``, ``eta_sd``,
        ``eta_map`` (EM), ``eta_hdi`` (dim ``ci_bound`` = lower, upper),
        ``p_above``, ``log_bf`` (see the module notes; trees written before
        it lack it), ``n_votes``, ``n_ties`` (ties modelled), ``p_above_mcse``
        (trees) and, for discrete
        families, ``membership`` (dims ``user``, ``component``). Attributes
        ``family``, ``method``, ``eta_star``, ``hdi_prob`` (and those of the
        tree's group).

    Raises
    ------
    ValueError
        A tree asked for another ``hdi_prob``, or for another ``eta_star``
        without ``eta`` draws to estimate it from.
    """
    if isinstance(result, xr.DataTree):
        return _tree_posterior(result, eta_star, hdi_prob)
    eta_star = 0.5 if eta_star is None else eta_star
    hdi_prob = 0.94 if hdi_prob is None else hdi_prob
    rows = row_summaries(result, eta_star=eta_star, hdi_prob=hdi_prob)
    data = result.data
    idx = data.counts.user_row
    users = np.asarray(data.users)
    ds = xr.Dataset(
        {
            "eta_mean": ("user", rows["eta_mean"][idx]),
            "eta_sd": ("user", rows["eta_sd"][idx]),
            "eta_map": ("user", rows["eta_map"][idx]),
            "eta_hdi": (
                ("user", "ci_bound"),
                np.stack([rows["hdi_lower"][idx], rows["hdi_upper"][idx]], axis=1),
            ),
            "p_above": ("user", rows["p_above"][idx]),
            "log_bf": ("user", rows["log_bf"][idx]),
            "n_votes": ("user", data.counts.votes_per_user()),
        },
        coords={"user": users, "ci_bound": ["lower", "upper"]},
        attrs={
            "family": result.family.name,
            "method": "em",
            "eta_star": float(eta_star),
            "hdi_prob": float(hdi_prob),
        },
    )
    ds["p_above"].attrs["eta_star"] = float(eta_star)
    if data.counts.has_ties:
        # Ties modelled: they are evidence too, so each user's count of them goes along.
        ds["n_ties"] = ("user", data.counts.ties_per_user())
    if "membership" in rows:
        ds["membership"] = (("user", "component"), rows["membership"][idx])
        ds = ds.assign_coords(component=np.arange(rows["membership"].shape[1]))
    return ds


def _tree_posterior(dt: xr.DataTree, eta_star: float | None, hdi_prob: float | None) -> xr.Dataset:
    """:func:`user_posterior` of a result tree: its ``attentiveness``, at another cut if asked."""
    if "attentiveness" not in dt.children or "eta_star" not in dt.attrs:
        raise ValueError("not an attnmodel result tree (no attentiveness group or eta_star)")
    fitted_star, fitted_hdi = float(dt.attrs["eta_star"]), float(dt.attrs["hdi_prob"])
    if hdi_prob is not None and float(hdi_prob) != fitted_hdi:
        raise ValueError(
            f"the result holds intervals at hdi_prob={fitted_hdi:g} only; refit with "
            f"hdi_prob={float(hdi_prob):g}"
        )
    ds = dt["attentiveness"].to_dataset()
    eta_star = fitted_star if eta_star is None else float(eta_star)
    if eta_star != fitted_star:
        p, mcse, _ = p_above_from_draws(dt, eta_star)
        users = ds["user"].to_numpy()
        # The stored log_bf is that of the fitted cut: estimated from the draws too.
        ds = ds.assign(
            p_above=("user", p.sel(user=users).to_numpy()),
            p_above_mcse=("user", mcse.sel(user=users).to_numpy()),
            log_bf=("user", log_bf_from_draws(dt, eta_star).sel(user=users).to_numpy()),
        )
    ds.attrs = {
        **ds.attrs,
        "family": dt.attrs["family"],
        "method": dt.attrs["method"],
        "eta_star": eta_star,
        "hdi_prob": fitted_hdi,
    }
    ds["p_above"].attrs["eta_star"] = eta_star
    return ds


def draw_eta(result, n_draws: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Exact draws of every user's ``eta`` from its posterior at an EM fit.

    Discrete families: an atom per draw, picked with the user's membership
    probabilities. Continuous families: the node masses of the final E-step
    fix the posterior's log density in ``u = logit(eta)`` at the grid nodes;
    a cell between two nodes is picked with its mass under the log-linear
    interpolation of that density, and the draw's position within the cell by
    the inverse CDF of the same interpolation (closed form). The draws are
    continuous, and log-linear interpolation reproduces a smooth posterior's
    mean and variance to the accuracy of the grid (a uniform jitter within the
    cell would add ``h^2 / 12`` to the variance in ``u``). A table too large
    for one posterior matrix is drawn from a block of rows at a time, as
    :func:`row_summaries` summarises it.

    Parameters
    ----------
    result : EMResult
    n_draws : int
        Draws per user.
    seed : int, Generator or None

    Returns
    -------
    ndarray, shape (n_draws, m)
        ``eta`` draws, users in the order of ``result.data.users``.
    """
    rng = np.random.default_rng(seed)
    user_row = np.asarray(result.data.counts.user_row, dtype=np.int64)
    m = user_row.size
    family = result.family
    # Users are visited in the order of their rows.
    user_ptr, by_row = result.data.counts.users_by_row()
    out = np.empty((n_draws, m))
    step = max(1, _DRAW_CHUNK // max(n_draws, 1))
    for first, _, estep in _posterior_blocks(result):
        post = np.asarray(estep.posterior, dtype=np.float64)
        if family.discrete:
            cells = AtomCells(post, family.components(result.params_)[1])
        else:
            cells = GridCells(result.problem.grid, post)
        # The users of this block's rows are by_row[u0:u1].
        u0, u1 = user_ptr[first], user_ptr[first + post.shape[0]]
        for start in range(int(u0), int(u1), step):
            users = by_row[start : min(start + step, int(u1))]
            rows = np.repeat(user_row[users] - first, n_draws)
            eta = cells.sample(rows, rng)
            out[:, users] = eta.reshape(-1, n_draws).T
    return out
