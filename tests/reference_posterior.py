"""An independent reference posterior of the attentiveness model, for small data.

Written from the model's formulas with numpy/scipy only; nothing here calls
attnmodel's likelihood, quadrature or priors. The model: user ``j`` casts
``n_jk`` votes on pair ``k``, ``s_jk`` of them for the stronger model,

    s_jk | eta_j ~ Binomial(n_jk, 1/2 + eta_j (mu_k - 1/2)),   eta_j ~ P_eta(theta),

with the priors the package documents: for Beta, on the admissible box
(``alpha, beta`` in ``[0.2, cap]``, ``cap = max(50, 1 / (2 h^2))`` with the
grid spacing ``h = min(0.1, 2.5 / sqrt(max votes of a user))``) either flat
or the default mean/concentration prior (``m = a / (a + b) ~ Beta(1.5, 1.5)``,
``k = a + b ~ LogNormal(log 8, 0.8)``, density ``p(m) p(k) / k`` in ``(a,
b)``); two-point ``q_low`` in [0, 1] and ``eta_low < eta_high`` uniform on
the triangle; and for an unknown ``mu`` the scaled Beta prior ``mu = lower +
(upper - lower) X``, ``X ~ Beta(a, b)``, truncated to ``mu > 1/2``.

Per-user marginal likelihood, without quadrature error:

- Beta ``P_eta``: with ``c_k = 2 mu_k - 1``, a vote's probability is
  ``(1 + c eta) / 2`` for and ``(1 - c eta) / 2`` against, and ``1 + c eta =
  (1 - eta) + (1 + c) eta``, ``1 - c eta = (1 - eta) + (1 - c) eta``. The
  user's likelihood is therefore ``2^-N sum_m beta_m eta^m (1 - eta)^(N - m)``
  (``N`` the user's votes) with non-negative Bernstein coefficients
  ``beta_m`` (a convolution of binomial expansions: no cancellation), and its
  integral against ``Beta(a, b)`` is exact:
  ``sum_m beta_m B(a + m, b + N - m) / B(a, b)``; the mass above ``eta_star``
  adds the factor ``P(Beta(a + m, b + N - m) > eta_star)`` to each term.
- two-point ``P_eta``: a sum over the two atoms; an unknown ``mu`` (one pair)
  adds an axis of ``mu`` cells.

The global parameters are integrated by the midpoint rule on a fine regular
grid of cells (in ``log alpha``, ``log beta`` for Beta, whose box is a
rectangle there; in ``q_low``, ``eta_low``, ``eta_high`` for two-point, with
the cells on the diagonal ``eta_low = eta_high`` counted half; in ``mu``),
whose error is O(h^2): means, sds, the marginal CDFs (linear within a cell)
and thus quantiles, and each user's posterior ``P(eta_j >= eta_star |
votes)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

BETA_SHAPE_LO = 0.2


def beta_shape_cap(max_user_votes: int) -> float:
    """Upper end of the documented ``alpha``/``beta`` box for data with this many votes per user."""
    h = min(0.1, 2.5 / np.sqrt(max(int(max_user_votes), 1)))
    return float(max(50.0, 1.0 / (2.0 * h * h)))


def log_mu_prior(mu: np.ndarray, a: float, b: float, lower: float = 0.0, upper: float = 1.0):
    """Unnormalised log density of ``mu = lower + (upper - lower) X``, X ~ Beta(a, b), mu > 1/2."""
    x = (mu - lower) / (upper - lower)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = special.xlogy(a - 1, x) + special.xlog1py(b - 1, -x)
    return np.where((mu > max(lower, 0.5)) & (mu <= upper) & (x > 0) & (x < 1), out, -np.inf)


def distinct_rows(n: np.ndarray, s: np.ndarray):
    """Distinct ``(n, s)`` rows of (m, P) counts: rows (R, 2P), multiplicities, each user's row."""
    both = np.concatenate([n, s], axis=1)
    rows, inverse, weight = np.unique(both, axis=0, return_inverse=True, return_counts=True)
    return rows, weight.astype(float), inverse.ravel()


def _log_binom_expansion(count: int, log_coef: np.ndarray) -> np.ndarray:
    """``log`` of the coefficients of ``((1 - eta) + A eta)^count`` in the Bernstein basis.

    ``log_coef`` holds ``log A`` for several ``A`` (shape (C,)); returns shape (C, count + 1).
    """
    i = np.arange(count + 1)
    log_comb = special.gammaln(count + 1) - special.gammaln(i + 1) - special.gammaln(count - i + 1)
    with np.errstate(invalid="ignore"):
        out = log_comb[None, :] + i[None, :] * log_coef[:, None]
    # 0 * log(0) = 0: the i = 0 term is 1 whatever A.
    out[:, 0] = log_comb[0]
    return out


def _log_convolve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Log of the convolution of ``exp(x)`` and ``exp(y)`` on the last axis (leading broadcast)."""
    nx, ny = x.shape[-1], y.shape[-1]
    out = np.full(np.broadcast_shapes(x.shape[:-1], y.shape[:-1]) + (nx + ny - 1,), -np.inf)
    for i in range(nx):
        out[..., i : i + ny] = np.logaddexp(out[..., i : i + ny], x[..., i : i + 1] + y)
    return out


def bernstein_log_coefs(n_row: np.ndarray, s_row: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Log Bernstein coefficients of one count row's likelihood times ``2^N``.

    Parameters
    ----------
    n_row, s_row : ndarray, shape (P,)
    c : ndarray, shape (C, P)
        ``2 mu_k - 1`` for each of C values of ``mu``.

    Returns
    -------
    ndarray, shape (C, N + 1)
    """
    out = np.zeros((c.shape[0], 1))
    for k in range(n_row.size):
        up = _log_binom_expansion(int(s_row[k]), np.log1p(c[:, k]))
        with np.errstate(divide="ignore"):
            down = _log_binom_expansion(int(n_row[k] - s_row[k]), np.log1p(-c[:, k]))
        out = _log_convolve(_log_convolve(out, up), down)
    return out


def _log_matmul(log_a: np.ndarray, log_b: np.ndarray) -> np.ndarray:
    """``log(exp(log_a) @ exp(log_b).T)`` for (I, M) and (J, M), scaled per row."""
    ma = np.max(log_a, axis=1, keepdims=True)
    mb = np.max(log_b, axis=1, keepdims=True)
    ma = np.where(np.isfinite(ma), ma, 0.0)
    mb = np.where(np.isfinite(mb), mb, 0.0)
    prod = np.exp(log_a - ma) @ np.exp(log_b - mb).T
    with np.errstate(divide="ignore"):
        return np.log(prod) + ma + mb.T


@dataclass
class Reference:
    """Reference posterior on a grid of cells.

    ``values[name]`` holds each cell's parameter value (flattened grid),
    ``edges[name]`` the cell edges of the parameter's own axis (for the CDF),
    ``axis[name]`` the index of each cell on that axis, ``mass`` the
    normalised posterior mass of each cell, ``p_above`` each user's posterior
    probability of ``eta >= eta_star``.
    """

    values: dict[str, np.ndarray]
    edges: dict[str, np.ndarray]
    axis: dict[str, np.ndarray]
    transform: dict[str, object]
    mass: np.ndarray
    p_above: np.ndarray

    def mean(self, name: str) -> float:
        return float(self.mass @ self.values[name])

    def sd(self, name: str) -> float:
        m = self.mean(name)
        return float(np.sqrt(self.mass @ (self.values[name] - m) ** 2))

    def quantile(self, name: str, prob: float) -> float:
        """Quantile from the marginal CDF, linear within each cell of the parameter's axis."""
        edges = self.edges[name]
        cell_mass = np.bincount(self.axis[name], weights=self.mass, minlength=edges.size - 1)
        cdf = np.concatenate([[0.0], np.cumsum(cell_mass)])
        cdf /= cdf[-1]
        x = float(np.interp(prob, cdf, edges))
        return float(self.transform[name](x))


def _midpoints(lo: float, hi: float, size: int):
    edges = np.linspace(lo, hi, size + 1)
    return edges, 0.5 * (edges[:-1] + edges[1:])


def _mu_cells(n_pairs: int, mu_prior: tuple[float, float, float, float], size: int):
    """Cell edges, midpoints and log prior of one pair's unknown ``mu``."""
    if n_pairs != 1:
        raise ValueError("the reference handles an unknown mu for one pair only")
    pa, pb, plo, pup = mu_prior
    edges, mids = _midpoints(max(plo, 0.5), pup, size)
    return edges, mids, log_mu_prior(mids, pa, pb, plo, pup)


def beta_reference(
    n: np.ndarray,
    s: np.ndarray,
    *,
    mu: float | list[float] | None = None,
    mu_prior: tuple[float, float, float, float] | None = None,
    eta_star: float = 0.5,
    size: int = 120,
    mu_size: int = 60,
    shapes: str = "flat",
) -> Reference:
    """Reference posterior of ``alpha``, ``beta`` (and one pair's ``mu``) for Beta ``P_eta``.

    ``n``, ``s`` have shape (m, P). ``mu`` known (one value for all pairs) or,
    with one pair, under ``mu_prior = (a, b, lower, upper)``. ``shapes`` is
    ``"flat"`` or ``"mean_concentration"`` (the default prior, see above).
    """
    rows, weight, inverse = distinct_rows(n, s)
    n_pairs = n.shape[1]
    totals = rows[:, :n_pairs].sum(axis=1)
    cap = beta_shape_cap(int(n.sum(axis=1).max()))
    lo, hi = np.log(BETA_SHAPE_LO), np.log(cap)
    edges, mids = _midpoints(lo, hi, size)
    la, lb = np.meshgrid(mids, mids, indexing="ij")
    la, lb = la.ravel(), lb.ravel()
    a, b = np.exp(la), np.exp(lb)
    if mu is not None:
        c = np.broadcast_to(2.0 * np.asarray(mu, dtype=float) - 1.0, (n_pairs,))[None, :]
        log_prior_mu = np.zeros(1)
    else:
        mu_edges, mu_mids, log_prior_mu = _mu_cells(n_pairs, mu_prior, mu_size)
        c = 2.0 * mu_mids[:, None] - 1.0  # (C, 1)
    n_cells = a.size
    # Log-likelihood and log tail mass per (mu cell, (a, b) cell, row).
    log_lik = np.zeros((c.shape[0], n_cells))
    log_tail_ratio = np.empty((c.shape[0], n_cells, rows.shape[0]))
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for r in range(rows.shape[0]):
        total = int(totals[r])
        if total not in cache:
            m = np.arange(total + 1)
            a1, b1 = a[:, None] + m[None, :], b[:, None] + (total - m)[None, :]
            lbeta = special.betaln(a1, b1) - special.betaln(a, b)[:, None]
            with np.errstate(divide="ignore"):
                ltail = lbeta + np.log(special.betaincc(a1, b1, eta_star))
            cache[total] = (lbeta, ltail)
        lbeta, ltail = cache[total]
        coefs = bernstein_log_coefs(rows[r, :n_pairs], rows[r, n_pairs:], c)  # (C, N + 1)
        full = _log_matmul(coefs, lbeta) - total * np.log(2.0)  # (C, cells)
        tail = _log_matmul(coefs, ltail) - total * np.log(2.0)
        log_lik += weight[r] * full
        log_tail_ratio[:, :, r] = tail - full
    # Cells are regular in (log alpha, log beta): a density in (alpha, beta) carries
    # alpha * beta there.
    log_shapes = la + lb
    if shapes == "mean_concentration":
        k = a + b
        log_shapes = log_shapes + (
            stats.beta.logpdf(a / k, 1.5, 1.5) + stats.lognorm.logpdf(k, 0.8, scale=8.0) - np.log(k)
        )
    elif shapes != "flat":
        raise ValueError(f"shapes must be 'flat' or 'mean_concentration', got {shapes!r}")
    log_post = log_lik + log_shapes[None, :] + log_prior_mu[:, None]
    log_post -= np.max(log_post)
    mass = np.exp(log_post)
    mass /= mass.sum()
    p_row = np.einsum("cg,cgr->r", mass, np.exp(log_tail_ratio))
    ia = np.repeat(np.arange(size), size)
    ib = np.tile(np.arange(size), size)
    values = {
        "alpha": np.broadcast_to(a, mass.shape).ravel(),
        "beta": np.broadcast_to(b, mass.shape).ravel(),
    }
    axis = {
        "alpha": np.broadcast_to(ia, mass.shape).ravel(),
        "beta": np.broadcast_to(ib, mass.shape).ravel(),
    }
    grid_edges = {"alpha": edges, "beta": edges}
    transform = {"alpha": np.exp, "beta": np.exp}
    if mu is None:
        values["mu"] = np.broadcast_to(mu_mids[:, None], mass.shape).ravel()
        axis["mu"] = np.broadcast_to(np.arange(mu_mids.size)[:, None], mass.shape).ravel()
        grid_edges["mu"] = mu_edges
        transform["mu"] = float
    return Reference(values, grid_edges, axis, transform, mass.ravel(), p_row[inverse])


def two_point_log_lik(rows: np.ndarray, n_pairs: int, eta: np.ndarray, mu: float) -> np.ndarray:
    """Log-likelihood of each count row at each attentiveness ``eta``: shape (R, G)."""
    n_r, s_r = rows[:, :n_pairs], rows[:, n_pairs:]
    g = 0.5 + eta * (mu - 0.5)
    return s_r.sum(axis=1)[:, None] * np.log(g)[None, :] + (n_r - s_r).sum(axis=1)[
        :, None
    ] * np.log1p(-g)[None, :]


def two_point_reference(
    n: np.ndarray,
    s: np.ndarray,
    *,
    mu: float | None = None,
    mu_prior: tuple[float, float, float, float] | None = None,
    eta_star: float = 0.5,
    size: int = 200,
    q_size: int = 100,
    mu_size: int = 40,
) -> Reference:
    """Reference posterior of ``q_low``, ``eta_low``, ``eta_high`` (and ``mu``): two-point.

    ``mu`` known (one value for all pairs) or, with one pair, under
    ``mu_prior = (a, b, lower, upper)`` (``mu_size`` midpoint cells in ``mu``).
    ``eta_star`` must be an edge of the ``eta`` cells (``size * eta_star`` an
    integer), so that no cell straddles the cut.
    """
    if abs(size * eta_star - round(size * eta_star)) > 1e-9:
        raise ValueError("eta_star must fall on a cell edge")
    rows, weight, inverse = distinct_rows(n, s)
    n_pairs = n.shape[1]
    if mu is not None:
        mus, log_prior_mu = np.array([float(mu)]), np.zeros(1)
    else:
        mu_edges, mus, log_prior_mu = _mu_cells(n_pairs, mu_prior, mu_size)
    eta_edges, eta = _midpoints(0.0, 1.0, size)
    q_edges, q = _midpoints(0.0, 1.0, q_size)
    il, ih = np.triu_indices(size)  # eta_low cell <= eta_high cell
    tri_w = np.where(il == ih, 0.5, 1.0)
    # Likelihoods scaled by each row's largest over the eta cells (a few votes per
    # user: the ratio stays far above underflow), so mixtures need no logaddexp.
    lik, log_scale = [], np.zeros(mus.size)
    for k, m in enumerate(mus):
        lf = two_point_log_lik(rows, n_pairs, eta, m)  # (R, G)
        peak = lf.max(axis=1)
        lik.append(np.exp(lf - peak[:, None]))
        log_scale[k] = weight @ peak
    q_col = q[:, None]

    def per_row(like, r):
        low = q_col * like[r, il][None, :]
        return low, low + (1.0 - q_col) * like[r, ih][None, :]

    # Pass 1: the posterior mass of every (mu, q_low, triangle) cell.
    log_post = np.zeros((mus.size, q_size, il.size))
    for k, like in enumerate(lik):
        for r in range(rows.shape[0]):
            log_post[k] += weight[r] * np.log(per_row(like, r)[1])
    log_post += np.log(tri_w)[None, None, :] + (log_prior_mu + log_scale)[:, None, None]
    log_post -= log_post.max()
    mass = np.exp(log_post)
    mass /= mass.sum()
    # Pass 2: each row's P(eta >= eta_star), averaged over the cells.
    low_above = (eta[il] >= eta_star)[None, :]
    high_above = (eta[ih] >= eta_star)[None, :]
    p_row = np.zeros(rows.shape[0])
    for k, like in enumerate(lik):
        for r in range(rows.shape[0]):
            low, tot = per_row(like, r)
            member_low = low / tot
            p_cond = np.where(low_above, member_low, 0.0) + np.where(
                high_above, 1.0 - member_low, 0.0
            )
            p_row[r] += np.sum(mass[k] * p_cond)
    shape = mass.shape
    values = {
        "q_low": np.broadcast_to(q[None, :, None], shape).ravel(),
        "eta_low": np.broadcast_to(eta[il][None, None, :], shape).ravel(),
        "eta_high": np.broadcast_to(eta[ih][None, None, :], shape).ravel(),
    }
    axis = {
        "q_low": np.broadcast_to(np.arange(q_size)[None, :, None], shape).ravel(),
        "eta_low": np.broadcast_to(il[None, None, :], shape).ravel(),
        "eta_high": np.broadcast_to(ih[None, None, :], shape).ravel(),
    }
    edges = {"q_low": q_edges, "eta_low": eta_edges, "eta_high": eta_edges}
    if mu is None:
        values["mu"] = np.broadcast_to(mus[:, None, None], shape).ravel()
        axis["mu"] = np.broadcast_to(np.arange(mus.size)[:, None, None], shape).ravel()
        edges["mu"] = mu_edges
    transform = {k: float for k in values}
    return Reference(values, edges, axis, transform, mass.ravel(), p_row[inverse])
