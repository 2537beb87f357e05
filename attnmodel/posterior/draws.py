"""Per-user summaries from posterior draws.

Two sources of draws:

- draws of the global parameters (NUTS): each user's conditional given a draw
  is exact up to quadrature (:func:`attnmodel.posterior.conditional.conditional_summaries`),
  so ``eta_mean``, ``eta_sd`` and ``p_above`` are averages of conditional
  moments and tail masses over the draws (Rao-Blackwellised: their Monte
  Carlo error comes from the global parameters only), with ``p_above_mcse``
  from :func:`mean_mcse`, and ``log_bf`` compares the averaged posterior odds
  of ``eta >= eta_star`` with the odds under ``P_eta`` averaged over the same
  draws (:func:`attentiveness_from_draws`);
- stored ``eta`` draws of a result tree: ``P(eta_j >= eta_star)`` for a cut
  other than the tree's (:func:`p_above_from_draws`), and the evidence
  ``log_bf`` there (:func:`log_bf_from_draws`).

``p_above_mcse`` is a one-sigma upper confidence bound on the Monte Carlo
standard error rather than its point estimate (:func:`mean_mcse`). A user's
per-draw tail can sit near 1 on most draws and near 0 on a few clumped ones
(two-point ``P_eta`` with ``eta_high`` crossing ``eta_star`` on rare draws);
the whole error of the average then comes from how many such clumps a run
happens to hold, and ArviZ's MCSE of the mean (the sd over its effective
sample size) is typically too small, because the sample variance of a few
rare clumps is itself mostly too small. :func:`mean_mcse` scales ArviZ's MCSE
by ``sqrt(nu / chi2_0.16(nu))``, where ``nu`` is the effective degrees of
freedom of the variance estimate, ``2 B / (kurtosis - 1)`` from the means of
``B`` batches of ``floor(sqrt(draws))`` draws within each chain (``B`` for
normal batch means, about twice the number of clumps for rare events). For an
ordinary tail this adds a few percent (about 7% with 4 chains of 1000 draws);
for rare clumps it adds more, as the batch means' heavy tails call for
(``tests/test_posterior.py`` checks both against the sd of many independent
replicate chains). A larger MCSE only widens the undetermined band of the
``prob`` rule (:func:`attnmodel.filtering.prob_decisions`). No estimate from
one run can see clumps the run does not contain: a user whose rare draws a run
missed altogether still gets an MCSE that is too small.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special

from attnmodel.posterior.conditional import log_bayes_factor

__all__ = [
    "SUMMARY_BUDGET",
    "summary_thin",
    "mean_mcse",
    "attentiveness_from_draws",
    "p_above_from_draws",
    "log_bf_from_draws",
]

#: One-sided level of the upper confidence bound :func:`mean_mcse` puts on the
#: variance of an average (0.16: one sigma).
MCSE_UPPER_LEVEL = 0.16

#: Per-row summaries are averaged over at most about this many (draw, distinct row)
#: pairs: beyond it every k-th draw is used (unless per-user draws or pointwise
#: log-likelihoods are stored, which need every draw).
SUMMARY_BUDGET = 1_000_000


def summary_thin(n_draws: int, n_rows: int, every_draw: bool) -> int:
    """Stride over the draws for the per-row summaries (1: every draw).

    The Rao-Blackwellised averages need far fewer draws than the global
    parameters do; with many distinct rows, every k-th draw keeps their cost
    within :data:`SUMMARY_BUDGET` (their MCSE is computed from the draws used).
    ``every_draw`` (per-user draws or pointwise log-likelihoods are stored)
    forces a stride of 1.
    """
    if every_draw or n_draws * n_rows <= SUMMARY_BUDGET:
        return 1
    return int(np.ceil(n_draws * n_rows / SUMMARY_BUDGET))


def mean_mcse(x: np.ndarray) -> np.ndarray:
    """Monte Carlo standard error of the mean over chains and draws, conservative for rare clumps.

    ArviZ's MCSE of the mean (``method="mean"``) times ``sqrt(nu /
    chi2.ppf(MCSE_UPPER_LEVEL, nu))``: a one-sigma upper confidence bound on
    the variance, with ``nu = 2 B / (kurtosis - 1)`` (clipped to ``[1, B]``)
    the effective degrees of freedom of a variance estimated from ``B``
    batch means (batches of ``floor(sqrt(draws))`` draws within each chain).

    Parameters
    ----------
    x : ndarray
        Shape ``(chain, draw, ...)``.

    Returns
    -------
    ndarray
        Shape ``x.shape[2:]``; 0 where every draw holds the same value.
    """
    import arviz_stats as azs
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    rest = x.shape[2:]
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    n_chain, n_draw, k = flat.shape
    dims = ("chain", "draw", "item")
    base = azs.mcse(xr.Dataset({"x": (dims, flat)}), method="mean")["x"].to_numpy()
    size = max(int(np.sqrt(n_draw)), 1)
    n_batch = n_draw // size
    means = flat[:, : n_batch * size].reshape(n_chain, n_batch, size, k).mean(axis=2)
    dev = means.reshape(n_chain * n_batch, k) - means.mean(axis=(0, 1))
    m2 = (dev**2).mean(axis=0)
    m4 = (dev**4).mean(axis=0)
    big_b = n_chain * n_batch
    with np.errstate(divide="ignore", invalid="ignore"):
        kurt = np.where(m2 > 0, m4 / m2**2, 3.0)
        nu = np.clip(2.0 * big_b / np.maximum(kurt - 1.0, 1e-12), 1.0, max(big_b, 1))
    factor = np.sqrt(nu / stats.chi2.ppf(MCSE_UPPER_LEVEL, nu))
    out = np.nan_to_num(base * factor)
    # A quantity that every draw puts at the same value has no Monte Carlo error.
    out = np.where(np.ptp(flat, axis=(0, 1)) == 0, 0.0, out)
    return out.reshape(rest)


def attentiveness_from_draws(
    summ: dict[str, np.ndarray],
    *,
    user_row: np.ndarray,
    users,
    n_votes: np.ndarray,
    chains: np.ndarray,
    draws: np.ndarray,
    eta_star: float,
    hdi_prob: float,
    thin: int,
) -> xr.Dataset:
    """The ``attentiveness`` group from per-row conditional summaries over draws.

    Parameters
    ----------
    summ : dict
        Output of :func:`attnmodel.posterior.conditional.conditional_summaries`
        (``mean``, ``second``, ``tail``, ``log_above``, ``log_below``,
        ``prior_log_above``, ``prior_log_below``, ``eta_row`` and, for
        discrete families, ``membership``), over the draws used.
    user_row : ndarray of int
        Each user's distinct count row.
    users : sequence
        User ids (the ``user`` coordinate).
    n_votes : ndarray
        Votes per user.
    chains, draws : ndarray
        Coordinates of the draws used (``draws`` already thinned).
    eta_star, hdi_prob : float
        The cut of ``p_above`` and the mass of ``eta_hdi`` (an HDI of the
        per-row draws ``eta_row``).
    thin : int
        The stride the draws were taken with (recorded as ``summary_thin``).

    Returns
    -------
    xarray.Dataset
        ``eta_mean``, ``eta_sd``, ``eta_hdi``, ``p_above``, ``p_above_mcse``,
        ``log_bf``, ``n_votes`` and ``membership`` (discrete families), dim
        ``user``. ``log_bf`` is :func:`~attnmodel.posterior.conditional.log_bayes_factor`
        of the sides' masses averaged over the draws (in log space): the
        marginal posterior odds of ``eta >= eta_star`` against the odds of a new
        user's ``eta`` under the fitted population.
    """
    import arviz as az

    row_ds = xr.Dataset(
        {"eta_row": (("chain", "draw", "row"), summ["eta_row"])},
        coords={"chain": chains, "draw": draws},
    )
    mean_row = summ["mean"].mean(axis=(0, 1))
    second_row = summ["second"].mean(axis=(0, 1))
    p_row = summ["tail"].mean(axis=(0, 1))
    mcse_row = mean_mcse(summ["tail"])
    # Averages over draws in log space; the count of draws cancels from each odds.
    with np.errstate(divide="ignore"):
        lse = {k: special.logsumexp(summ[k], axis=(0, 1)) for k in (
            "log_above", "log_below", "prior_log_above", "prior_log_below")}  # fmt: skip
    log_bf_row = log_bayes_factor(
        lse["log_above"], lse["log_below"], lse["prior_log_above"], lse["prior_log_below"]
    )
    hdi_row = az.hdi(row_ds[["eta_row"]], prob=hdi_prob)["eta_row"].transpose("row", "ci_bound")
    att = xr.Dataset(
        {
            "eta_mean": ("user", mean_row[user_row]),
            "eta_sd": ("user", np.sqrt(np.maximum(second_row - mean_row**2, 0.0))[user_row]),
            "eta_hdi": (("user", "ci_bound"), hdi_row.values[user_row]),
            "p_above": ("user", p_row[user_row]),
            "p_above_mcse": ("user", mcse_row[user_row]),
            "log_bf": ("user", np.broadcast_to(log_bf_row, p_row.shape)[user_row]),
            "n_votes": ("user", n_votes),
        },
        coords={"user": users, "ci_bound": ["lower", "upper"]},
        attrs={"eta_star": float(eta_star), "hdi_prob": float(hdi_prob), "summary_thin": thin},
    )
    if "membership" in summ:
        member = summ["membership"]
        att["membership"] = (("user", "component"), member.mean(axis=(0, 1))[user_row])
        att = att.assign_coords(component=np.arange(member.shape[-1]))
    return att


def _eta_draws(dt: xr.DataTree, eta_star: float, held: str, what: str) -> xr.DataArray:
    """The tree's ``eta`` draws; without them a ValueError that says to refit at ``eta_star``."""
    post = dt["posterior"]
    if "eta" not in post:
        raise ValueError(
            f"the result holds {held} eta draws to {what} for eta_star={eta_star:g}; "
            f"refit with eta_star={eta_star:g} (or store the eta draws)"
        )
    return post["eta"]


def p_above_from_draws(dt: xr.DataTree, eta_star: float):
    """``P(eta_j >= eta_star | votes)`` and its Monte Carlo error from a tree's ``eta`` draws.

    For a cut other than the one a result's ``p_above`` was computed at: the
    share of each user's stored draws at or above ``eta_star``. Its Monte
    Carlo standard error is ``sqrt(p (1 - p) / S)`` for an EM tree, whose
    ``S`` draws are independent, and ArviZ's MCSE of the mean (which accounts
    for autocorrelation) otherwise.

    Parameters
    ----------
    dt : xarray.DataTree
        A result tree (:mod:`attnmodel.results.tree`).
    eta_star : float

    Returns
    -------
    p, mcse : xarray.DataArray
        Dim ``user``, in the order of the tree's draws.
    how : str
        ``"eta draws (iid MCSE)"`` or ``"eta draws (ArviZ MCSE)"``.

    Raises
    ------
    ValueError
        The tree stores no ``eta`` draws.
    """
    held = f"p_above for eta_star={float(dt.attrs['eta_star']):g} only and no"
    eta = _eta_draws(dt, eta_star, held, "recompute it")
    ind = (eta >= eta_star).astype(np.float64)
    p = ind.mean(("chain", "draw"))
    n = ind.sizes["chain"] * ind.sizes["draw"]
    if dt.attrs.get("method") == "em":
        return p, np.sqrt(p * (1.0 - p) / n), "eta draws (iid MCSE)"
    import arviz_stats as azs

    moving = (p > 0) & (p < 1)
    mcse = xr.zeros_like(p)
    if bool(moving.any()):
        sub = ind.isel(user=np.flatnonzero(moving.to_numpy()))
        est = azs.mcse(xr.Dataset({"ind": sub}), method="mean")["ind"]
        mcse[np.flatnonzero(moving.to_numpy())] = est.to_numpy()
    return p, mcse, "eta draws (ArviZ MCSE)"


def log_bf_from_draws(dt: xr.DataTree, eta_star: float) -> xr.DataArray:
    """Each user's ``log_bf`` at ``eta_star`` estimated from a tree's draws.

    For a cut the tree holds no ``log_bf`` for (another cut, or a result
    written before ``log_bf`` was stored). The posterior odds of ``eta >=
    eta_star`` are ``(k + 1/2) / (S - k + 1/2)`` for ``k`` of a user's ``S``
    ``eta`` draws at or above the cut (the half counts keep a user whose draws
    all fall on one side finite: odds of at most ``2 S + 1`` to 1, which never
    overstates the evidence of a run of ``S`` draws); the population's odds are
    those of ``P_eta`` averaged over the draws of the family parameters. Refit
    with that ``eta_star`` for the exact value.

    Parameters
    ----------
    dt : xarray.DataTree
        A result tree (:mod:`attnmodel.results.tree`) with ``eta`` draws.
    eta_star : float

    Returns
    -------
    xarray.DataArray
        Dim ``user``, in the order of the tree's draws.

    Raises
    ------
    ValueError
        The tree stores no ``eta`` draws.
    """
    from attnmodel.model.families import get_family

    post = dt["posterior"]
    what = "estimate log_bf (the evidence of each user's votes)"
    ind = (_eta_draws(dt, eta_star, "no", what) >= eta_star).astype(np.float64)
    n = ind.sizes["chain"] * ind.sizes["draw"]
    k = ind.sum(("chain", "draw"))
    fam = get_family(dt.attrs["family"], int(dt.attrs["n_components"]))
    stacked = {key: post[key].stack(sample=("chain", "draw")) for key in fam.param_dims}
    up = np.empty(n)
    for i in range(n):
        params = {key: stacked[key].isel(sample=i).to_numpy() for key in stacked}
        params = {key: (float(v) if v.ndim == 0 else v) for key, v in params.items()}
        if fam.discrete:
            w, loc = fam.components(params)
            up[i] = float(np.sum(w[loc >= eta_star]))
        else:
            up[i] = 1.0 - float(fam.cdf(np.array(eta_star), params))
    with np.errstate(divide="ignore"):
        log_bf = log_bayes_factor(
            np.log(k.to_numpy() + 0.5),
            np.log(n - k.to_numpy() + 0.5),
            np.log(np.mean(up)),
            np.log(np.mean(1.0 - up)),
        )
    return xr.DataArray(log_bf, dims=("user",), coords={"user": post["eta"]["user"].to_numpy()})
