"""A Bradley-Terry fit's leaderboard: model strengths with intervals, beside plain Bradley-Terry.

Under ``mu_structure="bradley_terry"`` (:mod:`attnmodel.model.mu_structure`)
every model has a strength ``theta`` (sum zero) and any pair's win rate
follows, ``mu_ab = sigmoid(theta_a - theta_b)``, whether the pair was compared
directly or not. The result tree's ``leaderboard`` group (dim ``model``)
holds, per model: ``strength`` (posterior mean for NUTS, the MAP for EM),
``strength_sd`` and ``strength_lower``/``strength_upper``, the central
interval of mass ``hdi_prob``. NUTS takes them from the draws (standard
deviation and quantiles); MAP-EM from the curvature of the log posterior at
the estimate (Laplace: the inverse of minus the Hessian of ``L`` in all
unconstrained coordinates, family parameters at a bound of their box held
fixed, carried to the sum-zero strengths; the interval is the normal one).

:func:`leaderboard` adds plain Bradley-Terry with every vote weighted
equally (:func:`attnmodel.model.mu_structure.plain_bradley_terry`), fitted on
the per-pair vote totals the result stores (``data_counts``), so no vote file
is needed: attentive and careless votes count alike there, which shrinks its
strengths towards zero, while attnmodel's are those of attentive users.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from attnmodel.model.mu_structure import BradleyTerryMu, plain_bradley_terry

__all__ = [
    "laplace_strengths",
    "leaderboard",
    "leaderboard_dataset",
    "normal_interval",
    "plot_leaderboard",
]


def laplace_strengths(problem, state, step: float = 1e-4) -> np.ndarray:
    """Standard deviations of the Bradley-Terry strengths from the curvature of ``L``.

    Parameters
    ----------
    problem : attnmodel.inference.em.EMProblem
        With a Bradley-Terry structure.
    state : EMState
        The MAP estimate.
    step : float
        Relative step of the central differences of the gradient
        (Fisher's identity, :meth:`EMProblem.gradient`).

    Returns
    -------
    ndarray, shape (n_models,)
        NaN when minus the Hessian is not positive definite.
    """
    bt = problem.structure
    v = problem.to_vector(state)
    lo, hi = problem.vector_bounds()
    n_theta = len(bt.models) - 1
    with np.errstate(invalid="ignore"):
        inside = (v > lo + 1e-8 * (1 + np.abs(lo))) & (v < hi - 1e-8 * (1 + np.abs(hi)))
    free = np.flatnonzero(inside)
    free = np.union1d(free, np.arange(v.size - n_theta, v.size))
    hess = np.empty((free.size, free.size))
    for col, i in enumerate(free):
        h = step * (1.0 + abs(v[i]))
        grads = []
        for sign in (1.0, -1.0):
            w = v.copy()
            w[i] += sign * h
            st = problem.from_vector(w)
            grads.append(problem.gradient(st, problem.e_step(st))[free])
        hess[:, col] = (grads[0] - grads[1]) / (2.0 * h)
    hess = 0.5 * (hess + hess.T)
    try:
        cov = np.linalg.inv(-hess)
        np.linalg.cholesky(-hess)
    except np.linalg.LinAlgError:
        return np.full(len(bt.models), np.nan)
    k = free.size - n_theta
    jac = BradleyTerryMu.free_jacobian(len(bt.models))
    cov_theta = jac @ cov[k:, k:] @ jac.T
    return np.sqrt(np.clip(np.diag(cov_theta), 0.0, None))


def leaderboard_dataset(models, strength, sd, lower, upper) -> xr.Dataset:
    """The ``leaderboard`` group of a result tree (dim ``model``)."""
    return xr.Dataset(
        {
            "strength": ("model", np.asarray(strength, dtype=float)),
            "strength_sd": ("model", np.asarray(sd, dtype=float)),
            "strength_lower": ("model", np.asarray(lower, dtype=float)),
            "strength_upper": ("model", np.asarray(upper, dtype=float)),
        },
        coords={"model": np.asarray(list(models), dtype=object)},
    )


def normal_interval(mean, sd, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Central normal interval of mass ``prob``."""
    z = stats.norm.ppf(0.5 + 0.5 * prob)
    mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
    return mean - z * sd, mean + z * sd


def leaderboard(tree: xr.DataTree) -> pd.DataFrame:
    """The models ranked by strength, beside plain Bradley-Terry.

    Parameters
    ----------
    tree : xarray.DataTree
        A result fitted with ``mu_structure="bradley_terry"``.

    Returns
    -------
    pandas.DataFrame
        Indexed by model, strongest first: ``rank``, ``strength``,
        ``strength_sd``, ``lower``, ``upper`` (attnmodel), ``plain``,
        ``plain_se``, ``plain_lower``, ``plain_upper`` (plain Bradley-Terry,
        every vote weighted equally, normal interval of the same mass) and
        ``votes`` (votes on the model's pairs).

    Raises
    ------
    ValueError
        The result was not fitted with ``mu_structure="bradley_terry"``.
    """
    info = json.loads(tree.attrs.get("mu_structure", "{}") or "{}")
    if info.get("name") != "bradley_terry" or "leaderboard" not in tree.children:
        name = info.get("name", "independent")
        raise ValueError(
            f"this result was fitted with mu_structure={name!r}; a leaderboard needs "
            "mu_structure='bradley_terry' (attnmodel fit --mu-structure bradley_terry)"
        )
    board = tree["leaderboard"].to_dataset()
    models = [str(m) for m in board["model"].values]
    pair_models = np.asarray(info["pair_models"], dtype=np.int64).reshape(-1, 2)
    counts = json.loads(tree.attrs["data_counts"])["pairs"]
    pairs = json.loads(tree.attrs["mu_spec"])["pairs"]
    n = np.array([counts[p][0] for p in pairs], dtype=float)
    wins = np.array([counts[p][1] for p in pairs], dtype=float)
    plain, se = plain_bradley_terry(wins, n, pair_models[:, 0], pair_models[:, 1], len(models))
    prob = float(tree.attrs.get("hdi_prob", 0.94))
    p_lo, p_hi = normal_interval(plain, se, prob)
    votes = np.zeros(len(models))
    np.add.at(votes, pair_models[:, 0], n)
    np.add.at(votes, pair_models[:, 1], n)
    table = pd.DataFrame(
        {
            "strength": board["strength"].values,
            "strength_sd": board["strength_sd"].values,
            "lower": board["strength_lower"].values,
            "upper": board["strength_upper"].values,
            "plain": plain,
            "plain_se": se,
            "plain_lower": p_lo,
            "plain_upper": p_hi,
            "votes": votes.astype(np.int64),
        },
        index=pd.Index(models, name="model"),
    ).sort_values("strength", ascending=False, kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def plot_leaderboard(table: pd.DataFrame, ax=None):
    """Strengths with intervals, attnmodel beside plain Bradley-Terry, one row per model.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`leaderboard`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 0.35 * len(table) + 1.2))
    y = np.arange(len(table))[::-1]
    for col, lo, hi, label, off in (
        ("strength", "lower", "upper", "attnmodel (attentive users)", 0.15),
        ("plain", "plain_lower", "plain_upper", "plain Bradley-Terry (every vote)", -0.15),
    ):
        mid = table[col].to_numpy()
        err = np.vstack([mid - table[lo].to_numpy(), table[hi].to_numpy() - mid])
        ax.errorbar(mid, y + off, xerr=err, fmt="o", capsize=2, label=label)
    ax.set_yticks(y, [str(m) for m in table.index])
    ax.axvline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("strength theta (sum zero)")
    ax.legend(loc="lower right", fontsize="small")
    ax.figure.tight_layout()
    return ax.figure
