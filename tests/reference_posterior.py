"""An independent reference posterior of the attentiveness model, for small data.

Written from the model's formulas with numpy/scipy only; nothing here calls
attnmodel's likelihood, quadrature or priors. The model: user ``j`` casts
``n_jk`` votes on pair ``k``, ``s_jk`` of them for the stronger model,

    s_jk | eta_j ~ Binomial(n_jk, 1/2 + eta_j (mu_k - 1/2)),   eta_j ~ P_eta(theta),

with the priors the package documents: for Beta, on the admissible box
(``alpha, beta`` in ``[0.1, cap]``, ``cap = max(50, 1 / (2 h^2))`` with the
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

BETA_SHAPE_LO = 0.1


def row_logsumexp(x: np.ndarray) -> np.ndarray:
    """``log(sum(exp(x), axis=1))`` of a 2-D array of finite values, shifted by each row's maximum.

    The grid references sum millions of terms a row; scipy's ``logsumexp``
    spends five times as long on its general checks as on the sum.
    """
    top = x.max(axis=1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


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
    return (
        s_r.sum(axis=1)[:, None] * np.log(g)[None, :]
        + (n_r - s_r).sum(axis=1)[:, None] * np.log1p(-g)[None, :]
    )


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


# -- importance sampling: references of more than three or four dimensions ----------
#
# For the mu structures and the tie model the global parameters have five to
# eight dimensions, beyond a grid. There the reference is self-normalised
# importance sampling from a multivariate t (5 degrees of freedom). The first
# pilot's proposal is the Laplace approximation at the posterior mode
# (numerical Hessian), its scale doubled; each of two pilots hands its weighted
# mean and covariance (scale x 1.2) to the next proposal, the last one to the
# final run. All in unconstrained coordinates with the Jacobians written out.
# Each estimate carries its own Monte Carlo standard error (the delta method for
# a ratio estimator); the Pareto k-hat of the weights (below 0.5: finite
# variance, the standard error is valid) and the effective sample size
# ``1 / sum w^2`` are reported with it.


def log_beta_shapes_prior(a: np.ndarray, b: np.ndarray, shapes: str) -> np.ndarray:
    """Log density in ``(alpha, beta)`` of the Beta family's prior on its box (box not checked)."""
    if shapes == "flat":
        return np.zeros(np.broadcast_shapes(np.shape(a), np.shape(b)))
    if shapes != "mean_concentration":
        raise ValueError(f"shapes must be 'flat' or 'mean_concentration', got {shapes!r}")
    k = a + b
    return stats.beta.logpdf(a / k, 1.5, 1.5) + stats.lognorm.logpdf(k, 0.8, scale=8.0) - np.log(k)


def _numerical_hessian(f, x: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Central-difference Hessian of the scalar function ``f`` at ``x``."""
    d = x.size
    h = np.zeros((d, d))
    eye = np.eye(d) * step
    for i in range(d):
        for j in range(i, d):
            v = (
                f(x + eye[i] + eye[j])
                - f(x + eye[i] - eye[j])
                - f(x - eye[i] + eye[j])
                + f(x - eye[i] - eye[j])
            ) / (4 * step * step)
            h[i, j] = h[j, i] = v
    return h


def _pareto_khat(log_w: np.ndarray) -> float:
    """Pareto k-hat of the weights' right tail (draws of weight zero left out)."""
    import warnings

    from arviz_stats.base.array import array_stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(
            array_stats.pareto_khat(
                log_w[np.isfinite(log_w)], chain_axis=None, draw_axis=-1, r_eff=1.0,
                tail="right", log_weights=True,
            )
        )  # fmt: skip


@dataclass
class WeightedReference:
    """Posterior summaries from weighted draws, each with its Monte Carlo standard error.

    ``values[name]`` holds each draw's value, ``weight`` the normalised
    importance weights, ``p_above``/``p_above_se`` each user's posterior
    probability of ``eta >= eta_star`` and its standard error.
    """

    values: dict[str, np.ndarray]
    weight: np.ndarray
    p_above: np.ndarray
    p_above_se: np.ndarray
    khat: float
    ess: float

    def _se(self, h: np.ndarray) -> float:
        w = self.weight
        return float(np.sqrt(np.sum(w * w * (h - w @ h) ** 2)))

    def mean(self, name: str) -> float:
        return float(self.weight @ self.values[name])

    def sd(self, name: str) -> float:
        x = self.values[name]
        return float(np.sqrt(self.weight @ (x - self.mean(name)) ** 2))

    def quantile(self, name: str, prob: float) -> float:
        x = self.values[name]
        order = np.argsort(x)
        cdf = np.cumsum(self.weight[order])
        return float(x[order][np.searchsorted(cdf, prob * cdf[-1])])

    def mean_se(self, name: str) -> float:
        return self._se(self.values[name])

    def sd_se(self, name: str) -> float:
        # sd = sqrt(E (x - m)^2): the delta method on the centred second moment.
        x, sd = self.values[name], self.sd(name)
        return self._se((x - self.mean(name)) ** 2) / (2.0 * sd)

    def quantile_se(self, name: str, prob: float) -> float:
        """``se(F_hat(q)) / f(q)``, with ``f`` a weighted Gaussian kernel density (Scott's rule)."""
        x, q = self.values[name], self.quantile(name, prob)
        below = (x <= q).astype(float)
        dens = stats.gaussian_kde(x, weights=self.weight)(q)[0]
        return self._se(below) / dens


def importance_reference(
    log_post,
    start: np.ndarray,
    summaries,
    *,
    n_draws: int = 100_000,
    n_pilot: int = 20_000,
    seed: int = 0,
    chunk: int = 10_000,
    df: float = 5.0,
) -> WeightedReference:
    """Self-normalised importance sampling of ``log_post`` (see above).

    Parameters
    ----------
    log_post : callable
        Unnormalised log posterior of draws ``x`` of shape (D, d) in
        unconstrained coordinates, returning shape (D,).
    start : ndarray, shape (d,)
        Where the search for the mode starts.
    summaries : callable
        ``summaries(x)`` returns ``(values, p_cond)``: a dict of each named
        quantity per draw, and each user's conditional ``P(eta >= eta_star |
        votes, globals)`` per draw, shape (D, users).
    """
    from scipy import optimize

    def scalar(v):
        out = float(log_post(v[None, :])[0])
        return -out if np.isfinite(out) else 1e300

    opts = {"xatol": 1e-7, "fatol": 1e-9, "maxiter": 20000, "maxfev": 40000}
    res = optimize.minimize(scalar, start, method="Nelder-Mead", options=opts)
    res = optimize.minimize(scalar, res.x, method="BFGS", options={"gtol": 1e-6})
    mode = res.x
    cov = np.linalg.inv(_numerical_hessian(scalar, mode))
    cov = 0.5 * (cov + cov.T)
    rng = np.random.default_rng(seed)

    def run(centre, scale, size):
        prop = stats.multivariate_t(loc=centre, shape=scale, df=df)
        x = prop.rvs(size=size, random_state=rng).reshape(size, -1)
        lp = np.concatenate([log_post(x[i : i + chunk]) for i in range(0, size, chunk)])
        log_w = lp - prop.logpdf(x)
        log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
        return x, log_w - special.logsumexp(log_w)

    centre, scale = mode, 4.0 * cov
    for _ in range(2):
        x, log_w = run(centre, scale, n_pilot)
        w = np.exp(log_w)
        centre = w @ x
        scale = 1.2 * (x - centre).T @ ((x - centre) * w[:, None]) * (df - 2) / df
    x, log_w = run(centre, scale, n_draws)
    w = np.exp(log_w)
    values, p_cond = {}, []
    for i in range(0, n_draws, chunk):
        v, p = summaries(x[i : i + chunk])
        for k, arr in v.items():
            values.setdefault(k, []).append(arr)
        p_cond.append(p)
    values = {k: np.concatenate(v) for k, v in values.items()}
    p_cond = np.concatenate(p_cond)
    p_above = w @ p_cond
    p_se = np.sqrt(np.sum((w * w)[:, None] * (p_cond - p_above[None, :]) ** 2, axis=0))
    return WeightedReference(
        values, w, p_above, p_se, _pareto_khat(log_w), float(1.0 / np.sum(w * w))
    )


def two_point_globals(u: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``q_low, eta_low, eta_high`` from ``(logit q, logit eta_high, logit(eta_low / eta_high))``.

    Returns the values and the log Jacobian: the flat prior on ``[0, 1]`` x the
    triangle ``eta_low < eta_high`` in these coordinates.
    """
    q, eh, r = special.expit(u[:, 0]), special.expit(u[:, 1]), special.expit(u[:, 2])
    log_jac = (
        special.log_expit(u[:, 0]) + special.log_expit(-u[:, 0])
        + special.log_expit(u[:, 1]) + special.log_expit(-u[:, 1]) + np.log(eh)
        + special.log_expit(u[:, 2]) + special.log_expit(-u[:, 2])
    )  # fmt: skip
    return {"q_low": q, "eta_low": r * eh, "eta_high": eh}, log_jac


def two_point_rows(n_rows, s_rows, params, mu, eta_star):
    """Log-likelihood of every count row at every draw, and each row's tail, both (D, R).

    ``n_rows``, ``s_rows`` (R, P); ``params`` per-draw two-point values; ``mu`` (D, P).
    """
    s_r, f_r = s_rows.astype(float), (n_rows - s_rows).astype(float)
    parts = []
    for name in ("eta_low", "eta_high"):
        g = 0.5 + params[name][:, None] * (mu - 0.5)  # (D, P)
        parts.append(np.log(g) @ s_r.T + np.log1p(-g) @ f_r.T)  # (D, R)
    log_q = np.log(params["q_low"])[:, None]
    log_1q = np.log1p(-params["q_low"])[:, None]
    low, high = log_q + parts[0], log_1q + parts[1]
    total = np.logaddexp(low, high)
    member_low = np.exp(low - total)
    tail = np.where((params["eta_low"] >= eta_star)[:, None], member_low, 0.0) + np.where(
        (params["eta_high"] >= eta_star)[:, None], 1.0 - member_low, 0.0
    )
    return total, tail


def two_point_structured_reference(
    n: np.ndarray,
    s: np.ndarray,
    structure: str,
    *,
    pair_a=None,
    pair_b=None,
    sigma: float = 1.0,
    mode_prior=(2.0, 2.0),
    concentration=(2.0, 0.1),
    eta_star: float = 0.5,
    start=None,
    **kw,
) -> WeightedReference:
    """Reference posterior of a two-point ``P_eta`` with every ``mu`` under a structure.

    ``structure="bradley_terry"``: ``mu_k = sigmoid(theta[pair_a[k]] -
    theta[pair_b[k]])``, ``theta`` a normal of sd ``sigma`` per model restricted
    to ``sum theta = 0`` (free coordinates: all but the last strength). Values
    ``theta[i]``. ``structure="pooled"``: ``x_k = 2 mu_k - 1 ~ Beta(1 + m c, 1 +
    (1 - m) c)``, ``m ~ Beta(mode_prior)``, ``c ~ Gamma(shape, rate)``
    (``concentration``), in coordinates ``logit m``, ``log c``, ``logit x_k``.
    Values ``mu_pop_mode``, ``mu_pop_concentration`` and ``mu[k]``.
    """
    rows, weight, inverse = distinct_rows(n, s)
    n_pairs = n.shape[1]
    n_rows, s_rows = rows[:, :n_pairs], rows[:, n_pairs:]

    def unpack(x):
        values, log_jac = two_point_globals(x[:, :3])
        rest = x[:, 3:]
        if structure == "bradley_terry":
            theta = np.concatenate([rest, -rest.sum(axis=1, keepdims=True)], axis=1)
            log_prior = -0.5 * np.sum(theta**2, axis=1) / sigma**2
            mu = special.expit(theta[:, pair_a] - theta[:, pair_b])
            for i in range(theta.shape[1]):
                values[f"theta[{i}]"] = theta[:, i]
        elif structure == "pooled":
            m, c = special.expit(rest[:, 0]), np.exp(rest[:, 1])
            z = rest[:, 2:]
            x_k = special.expit(z)
            a, b = 1.0 + m * c, 1.0 + (1.0 - m) * c
            log_prior = (
                stats.beta.logpdf(m, *mode_prior)
                + special.log_expit(rest[:, 0]) + special.log_expit(-rest[:, 0])
                + stats.gamma.logpdf(c, concentration[0], scale=1.0 / concentration[1])
                + rest[:, 1]
                + np.sum(
                    stats.beta.logpdf(x_k, a[:, None], b[:, None])
                    + special.log_expit(z) + special.log_expit(-z),
                    axis=1,
                )
            )  # fmt: skip
            mu = 0.5 + 0.5 * x_k
            values["mu_pop_mode"], values["mu_pop_concentration"] = m, c
        else:
            raise ValueError(structure)
        for k in range(n_pairs):
            values[f"mu[{k}]"] = mu[:, k]
        return values, log_jac + log_prior, mu

    def log_post(x):
        values, lp, mu = unpack(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            total, _ = two_point_rows(n_rows, s_rows, values, mu, eta_star)
        out = lp + total @ weight
        return np.where(np.isfinite(out), out, -np.inf)

    def summaries(x):
        values, _, mu = unpack(x)
        _, tail = two_point_rows(n_rows, s_rows, values, mu, eta_star)
        return values, tail[:, inverse]

    if start is None:
        extra = n_pairs - 1 if structure == "bradley_terry" else 2 + n_pairs
        start = np.concatenate([[0.0, 2.0, -2.0], np.full(extra, 0.5)])
    return importance_reference(log_post, np.asarray(start, float), summaries, **kw)


def tie_log_lik(s, f, t, eta, tau, mu, kappa):
    """Log-likelihood of rows ``(s, f, t)`` (R,) at nodes ``eta`` (E,) x ``tau`` (U,): (R, E, U).

    From the vote mechanism of ``ties="model"``: a vote is attentive with
    probability ``eta`` (then a tie with probability ``tau``, else for the
    stronger model with probability ``mu``), careless otherwise (then a tie with
    probability ``tau + (1 - tau) kappa``, else a coin flip).
    """
    e, u = eta[:, None], tau[None, :]
    careless = (1.0 - e) * (1.0 - kappa) / 2.0
    log_win = np.log((1.0 - u) * (e * mu + careless))
    log_loss = np.log((1.0 - u) * (e * (1.0 - mu) + careless))
    log_tie = np.log(u + (1.0 - u) * (1.0 - e) * kappa)
    return (
        s[:, None, None] * log_win[None]
        + f[:, None, None] * log_loss[None]
        + t[:, None, None] * log_tie[None]
    )


def log_beta_ratios(a, b, size, eta_star=None):
    """``log B(a + i, b + j) / B(a, b)`` for ``i, j < size``, per draw: (D, size, size).

    With ``eta_star``, each term times ``Q(a + i, b + j) = P(Beta(a + i, b + j) >=
    eta_star)``, from one incomplete Beta function per draw and the recurrences
    ``Q(p, q) = Q(p, q + 1) + x^p (1 - x)^q / (q B(p, q))`` and ``Q(p + 1, q) =
    Q(p, q) + x^p (1 - x)^q / (p B(p, q))`` (``x = eta_star``; DLMF 8.17.20-21):
    sums of positive terms, without cancellation.
    """
    i = np.arange(size)
    a1, b1 = a[:, None, None] + i[None, :, None], b[:, None, None] + i[None, None, :]
    out = special.betaln(a1, b1) - special.betaln(a, b)[:, None, None]
    if eta_star is None:
        return out
    # log x^p (1 - x)^q / B(p, q) on the grid; the steps divide it by q (down) or p (up).
    log_step = (
        a1 * np.log(eta_star) + b1 * np.log1p(-eta_star) - out - special.betaln(a, b)[:, None, None]
    )
    log_q = np.empty_like(out)
    with np.errstate(divide="ignore"):
        log_q[:, 0, -1] = np.log(special.betaincc(a, b + size - 1, eta_star))
    for j in range(size - 2, -1, -1):
        log_q[:, 0, j] = np.logaddexp(log_q[:, 0, j + 1], log_step[:, 0, j] - np.log(b1[:, 0, j]))
    for k in range(size - 1):
        log_q[:, k + 1, :] = np.logaddexp(log_q[:, k, :], log_step[:, k, :] - np.log(a1[:, k, :]))
    return out + log_q


def tie_row_integrals(rows, mu, a, b, kappa, ta, tb, eta_star=None):
    """Each row's log marginal likelihood with ties and, with ``eta_star``, its tail.

    ``rows = (s, f, t)``, each of shape (R,), one pair of known ``mu``; ``eta ~
    Beta(a, b)``, ``tau ~ Beta(ta, tb)``, ``kappa``: arrays of D draws. Returns
    ``log L`` of shape (D, R), and with ``eta_star`` also ``P(eta >= eta_star |
    row)`` (D, R).

    Exact, without quadrature: with ``A = (1 - kappa) / 2`` and ``n = s + f``, a
    row's likelihood (up to its multinomial constant) is

        (1 - tau)^n [mu eta + A (1 - eta)]^s [(1 - mu) eta + A (1 - eta)]^f
            [tau + kappa (1 - tau)(1 - eta)]^t,

    whose binomial expansions make it a sum over ``l = 0..t`` (careless ties)
    and ``m = 0..n`` (attentive votes) of the non-negative terms

        C(t, l) kappa^l A^(n - m) G_m  tau^(t - l) (1 - tau)^(n + l)  eta^m (1 - eta)^(n - m + l),

    ``G_m = sum_{i + j = m} C(s, i) mu^i C(f, j) (1 - mu)^j``; each monomial's
    expectation under a Beta density is a ratio of Beta functions, and its mass
    above ``eta_star`` adds the factor ``P(Beta(a + m, b + n - m + l) >= eta_star)``.
    """
    r_s, r_f, r_t = (np.asarray(v, dtype=np.int64) for v in rows)
    size = int((r_s + r_f + r_t).max()) + 1
    log_e = log_beta_ratios(a, b, size)
    log_u = log_beta_ratios(ta, tb, size)
    log_tail = None if eta_star is None else log_beta_ratios(a, b, size, eta_star)
    kappa = np.asarray(kappa, dtype=float)
    log_l = np.empty((a.size, r_s.size))
    tail = np.empty((a.size, r_s.size))
    for r in range(r_s.size):
        s, f, t = int(r_s[r]), int(r_f[r]), int(r_t[r])
        n = s + f
        log_g = _log_convolve(
            _log_binom_expansion(s, np.log([mu]))[0], _log_binom_expansion(f, np.log([1.0 - mu]))[0]
        )  # (n + 1,)
        ll, m = np.arange(t + 1)[:, None], np.arange(n + 1)[None, :]
        log_ct = _log_binom_expansion(t, np.zeros(1))[0]  # log C(t, l)
        # xlogy: kappa^0 = 1 even where kappa underflows to 0.
        static = (
            (log_ct[:, None] + log_g[None, :])[None]
            + special.xlogy(ll[None], kappa[:, None, None])
            + special.xlogy((n - m)[None], (1.0 - kappa[:, None, None]) / 2.0)
            + log_u[:, t - ll, n + ll]
        )  # fmt: skip
        log_l[:, r] = special.logsumexp(static + log_e[:, m, n - m + ll], axis=(1, 2))
        if log_tail is not None:
            upper = special.logsumexp(static + log_tail[:, m, n - m + ll], axis=(1, 2))
            tail[:, r] = np.exp(upper - log_l[:, r])
    return log_l if eta_star is None else (log_l, tail)


def beta_ties_reference(
    n: np.ndarray,
    s: np.ndarray,
    t: np.ndarray,
    mu: float,
    *,
    shapes: str = "mean_concentration",
    eta_star: float = 0.5,
    start=None,
    **kw,
) -> WeightedReference:
    """Reference posterior of ``alpha, beta, kappa, tau_mean, tau_conc`` with ties as evidence.

    One pair of known ``mu``; ``n`` (votes other than ties), ``s`` (for the
    stronger model) and ``t`` (ties) of shape (m,). Priors: the Beta family's on
    its box (``shapes``; the box's cap from each user's votes and ties),
    ``kappa ~ Beta(1.5, 1.5)``, ``tau_mean ~ Beta(1.5, 1.5)``, ``tau_conc ~
    LogNormal(log 10, 1.5)``; ``tau_j ~ Beta(tau_mean tau_conc, (1 - tau_mean)
    tau_conc)``. Coordinates ``logit(alpha / (alpha + beta)), log(alpha + beta),
    logit kappa, logit tau_mean, log tau_conc`` (in the mean and concentration
    of ``P_eta``, where the posterior is closer to a normal's shape than in
    ``log alpha, log beta``). Each user's integral over ``eta`` and ``tau`` is
    exact (:func:`tie_row_integrals`).
    """
    n, s, t = (np.asarray(v, dtype=np.int64).ravel() for v in (n, s, t))
    rows, weight, inverse = distinct_rows(np.stack([n, t], axis=1), s[:, None])
    r_n, r_t, r_s = rows[:, 0], rows[:, 1], rows[:, 2]
    row_counts = (r_s, r_n - r_s, r_t)
    cap = beta_shape_cap(int((n + t).max()))
    (k_a, k_b), (m_a, m_b) = (1.5, 1.5), (1.5, 1.5)
    conc_loc, conc_scale = np.log(10.0), 1.5

    def unpack(x):
        total = np.exp(x[:, 1])
        a, b = special.expit(x[:, 0]) * total, special.expit(-x[:, 0]) * total
        kappa, mean, conc = special.expit(x[:, 2]), special.expit(x[:, 3]), np.exp(x[:, 4])
        inside = (a >= BETA_SHAPE_LO) & (a <= cap) & (b >= BETA_SHAPE_LO) & (b <= cap)
        # d alpha d beta = (alpha + beta) d m d k, and m (1 - m) k in logit m, log k.
        log_jac = special.log_expit(x[:, 0]) + special.log_expit(-x[:, 0]) + 2.0 * x[:, 1]
        log_prior = (
            np.where(inside, log_beta_shapes_prior(a, b, shapes), -np.inf) + log_jac
            + stats.beta.logpdf(kappa, k_a, k_b) + special.log_expit(x[:, 2])
            + special.log_expit(-x[:, 2])
            + stats.beta.logpdf(mean, m_a, m_b) + special.log_expit(x[:, 3])
            + special.log_expit(-x[:, 3])
            + stats.lognorm.logpdf(conc, conc_scale, scale=np.exp(conc_loc)) + x[:, 4]
        )  # fmt: skip
        values = {"alpha": a, "beta": b, "kappa": kappa, "tau_mean": mean, "tau_conc": conc}
        return values, log_prior

    def rows_at(v, tails):
        return tie_row_integrals(
            row_counts, mu, v["alpha"], v["beta"], v["kappa"], v["tau_mean"] * v["tau_conc"],
            (1.0 - v["tau_mean"]) * v["tau_conc"], eta_star if tails else None,
        )  # fmt: skip

    def log_post(x):
        v, lp = unpack(x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = lp + rows_at(v, False) @ weight
        return np.where(np.isfinite(out), out, -np.inf)

    def summaries(x):
        v, _ = unpack(x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            _, tail = rows_at(v, True)
        return v, tail[:, inverse]

    if start is None:
        start = np.array([0.0, np.log(5.0), 0.0, -1.5, np.log(10.0)])
    return importance_reference(log_post, np.asarray(start, float), summaries, **kw)
