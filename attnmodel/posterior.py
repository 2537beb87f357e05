"""Per-user attentiveness summaries at a fitted model.

Given fitted ``P_eta`` and ``mu``, user ``j``'s posterior is
``p(eta | votes_j) ∝ likelihood_j(eta) * P_eta(eta)``. Users with identical
count rows share it, so everything is computed per distinct row and then
indexed out to users.

For continuous families the posterior lives on the logit grid: its CDF is
the cumulative node mass, interpolated linearly inside each node's cell,
which gives ``P(eta >= eta_star)``, quantiles and the highest-density interval
(HDI, the shortest interval holding ``hdi_prob``, found by golden-section
search over the lower tail mass; exact for unimodal posteriors, which every
single-component family gives). The MAP is refined from the best node by a
golden-section search on the exact log density. For discrete families the
posterior is a membership probability per atom and every summary is exact.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special

__all__ = ["user_posterior", "row_summaries"]

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


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
    """Posterior CDF in logit space for every row, piecewise linear within cells."""

    def __init__(self, u: np.ndarray, post: np.ndarray) -> None:
        edges = 0.5 * (u[1:] + u[:-1])
        first = u[0] - (edges[0] - u[0])
        last = u[-1] + (u[-1] - edges[-1])
        self.edges = np.concatenate([[first], edges, [last]])  # (G + 1,)
        self.cum = np.concatenate([np.zeros((post.shape[0], 1)), np.cumsum(post, axis=1)], axis=1)
        self.cum /= self.cum[:, -1:]
        self.post = post

    def cdf(self, x: float) -> np.ndarray:
        """``P(u <= x)`` per row."""
        i = int(np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0, self.edges.size - 2))
        frac = np.clip((x - self.edges[i]) / (self.edges[i + 1] - self.edges[i]), 0.0, 1.0)
        return self.cum[:, i] + frac * (self.cum[:, i + 1] - self.cum[:, i])

    def quantile(self, p: np.ndarray) -> np.ndarray:
        """Logit-space quantile per row at levels ``p`` (shape (R,))."""
        r = np.arange(self.cum.shape[0])
        lo = np.zeros(r.size, dtype=np.int64)
        hi = np.full(r.size, self.cum.shape[1] - 1, dtype=np.int64)
        # Binary search for the cell whose cumulative range holds p.
        while np.any(hi - lo > 1):
            mid = (lo + hi) // 2
            below = self.cum[r, mid] <= p
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        c0, c1 = self.cum[r, lo], self.cum[r, hi]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(c1 > c0, (p - c0) / (c1 - c0), 0.0)
        return self.edges[lo] + np.clip(frac, 0.0, 1.0) * (self.edges[hi] - self.edges[lo])


def row_summaries(result, eta_star: float = 0.5, hdi_prob: float = 0.94) -> dict[str, np.ndarray]:
    """Posterior summaries per distinct count row of an :class:`~attnmodel.em.EMResult`.

    Returns
    -------
    dict
        ``eta_mean``, ``eta_sd``, ``eta_map``, ``hdi_lower``, ``hdi_upper``,
        ``p_above`` (each shape (R,)) and, for discrete families,
        ``membership`` of shape (R, K).
    """
    if not 0.0 < eta_star < 1.0:
        raise ValueError(f"eta_star must be in (0, 1), got {eta_star}")
    if not 0.0 < hdi_prob < 1.0:
        raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob}")
    problem = result.problem
    family = result.family
    post = result.estep_.posterior
    out: dict[str, np.ndarray] = {}
    if family.discrete:
        _, loc = family.components(result.params_)
        mean = post @ loc
        out["eta_mean"] = mean
        out["eta_sd"] = np.sqrt(np.maximum(post @ loc**2 - mean**2, 0.0))
        out["eta_map"] = loc[np.argmax(post, axis=1)]
        out["p_above"] = post @ (loc >= eta_star).astype(float)
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
    out["eta_sd"] = np.sqrt(np.maximum(np.einsum("rg,rg->r", post, (eta[None, :] - mean[:, None]) ** 2), 0.0))
    cdf = _GridCDF(grid.u, post)
    out["p_above"] = np.clip(1.0 - cdf.cdf(float(special.logit(eta_star))), 0.0, 1.0)

    def width(p_lo):
        return special.expit(cdf.quantile(p_lo + hdi_prob)) - special.expit(cdf.quantile(p_lo))

    zeros = np.zeros(post.shape[0])
    p_lo = _golden_min(width, zeros, zeros + (1.0 - hdi_prob), n_iter=60)
    out["hdi_lower"] = special.expit(cdf.quantile(p_lo))
    out["hdi_upper"] = special.expit(cdf.quantile(p_lo + hdi_prob))
    out["eta_map"] = _map_continuous(result, post)
    return out


def _map_continuous(result, post: np.ndarray) -> np.ndarray:
    """MAP of ``eta`` per row: best node, refined on the exact log density."""
    problem = result.problem
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

    def neg_log_density(x):
        xe = x[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.where(s > 0, s * np.log(0.5 + xe * d), 0.0) + np.where(
                f > 0, f * np.log(0.5 - xe * d), 0.0
            )
            val = counts.row_sum(ll) + family.log_pdf(x, params)
        return -np.where(np.isfinite(val), val, -np.inf) * 1.0

    with np.errstate(invalid="ignore"):
        refined = _golden_min(neg_log_density, lo, hi, n_iter=80)
    # Keep a boundary node when the density is largest there (e.g. alpha < 1).
    at_edge = (best == 0) | (best == eta.size - 1)
    return np.where(at_edge, eta[best], refined)


def user_posterior(result, eta_star: float = 0.5, hdi_prob: float = 0.94) -> xr.Dataset:
    """Per-user attentiveness posterior summaries at a MAP-EM fit.

    Parameters
    ----------
    result : EMResult
    eta_star : float
        Cut for ``p_above = P(eta_j >= eta_star | votes_j)``.
    hdi_prob : float
        Mass of the highest-density interval.

    Returns
    -------
    xarray.Dataset
        Indexed by ``user`` (the input ids): ``eta_mean``, ``eta_sd``,
        ``eta_map``, ``eta_hdi`` (dim ``ci_bound`` = lower, upper),
        ``p_above``, ``n_votes`` and, for discrete families,
        ``membership`` (dims ``user``, ``component``).
    """
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
    if "membership" in rows:
        ds["membership"] = (("user", "component"), rows["membership"][idx])
        ds = ds.assign_coords(component=np.arange(rows["membership"].shape[1]))
    return ds
