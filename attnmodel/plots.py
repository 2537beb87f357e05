"""Figures of a fit (matplotlib).

Every function returns the :class:`matplotlib.figure.Figure` it drew and
neither saves nor shows it: the caller does (``fig.savefig("x.png")``), and
closes it (``matplotlib.pyplot.close(fig)``) when drawing many.

===========================  ========================================================
function                     draws
===========================  ========================================================
:func:`plot_em_objective`    EM's objective by iteration, one line per start
:func:`plot_attentiveness`   per-user ``eta`` with intervals and the ``eta_star`` cut
===========================  ========================================================

The figures of the paper's experiments are :mod:`attnmodel.paper.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

__all__ = [
    "plot_em_objective",
    "plot_attentiveness",
]

#: Colours of the truth and of the estimate (the paper draws them red and orange).
TRUE_COLOR = "tab:red"
FIT_COLOR = "tab:orange"


def _paths(traj) -> pd.DataFrame:
    """``start``, ``iteration``, ``objective`` rows from any of the inputs that hold EM paths."""
    if isinstance(traj, xr.DataTree):
        paths = _tree_paths(traj)
    elif isinstance(traj, pd.DataFrame):
        paths = traj
    elif isinstance(getattr(traj, "paths", None), pd.DataFrame):
        # attnmodel.paper.experiments.Trajectories
        paths = traj.paths
    elif hasattr(traj, "runs_"):
        paths = pd.concat([r.assign(start=k) for k, r in enumerate(traj.runs_)], ignore_index=True)
    else:
        raise TypeError(
            "plot_em_objective takes em_trajectories() output, its paths table, an EMResult "
            f"or an EM result tree, got {type(traj).__name__}"
        )
    missing = [c for c in ("start", "iteration", "objective") if c not in paths.columns]
    if missing:
        raise ValueError(f"trajectory table lacks columns {missing}; pass em_trajectories() output")
    return paths


def _tree_paths(dt: xr.DataTree) -> pd.DataFrame:
    """Every start's path from ``em_runs``, else the best start's from ``em_trace``."""
    if "em_runs" in dt.children:
        runs = dt["em_runs"].to_dataset()
        # Shorter runs are padded with NaN up to the longest.
        return runs["objective"].to_dataframe().reset_index().dropna(subset=["objective"])
    if "em_trace" in dt.children:
        trace = dt["em_trace"]
        return pd.DataFrame(
            {
                "start": 0,
                "iteration": np.asarray(trace["iteration"]),
                "objective": np.asarray(trace["objective"]),
            }
        )
    raise ValueError(
        "the result tree has no 'em_runs' or 'em_trace' group: only EM fits record their iterations"
    )


def _fit_title(traj) -> str | None:
    """``"MAP-EM, family beta: votes.csv, 65 users, 2575 votes, 15 pairs"`` for a fit or a tree."""
    if isinstance(traj, xr.DataTree):
        attrs = traj.attrs
        family = attrs.get("family")
        source = attrs.get("data_source")
        users = votes = pairs = None
        if "attentiveness" in traj.children:
            users = traj["attentiveness"].sizes.get("user")
            if "n_votes" in traj["attentiveness"]:
                votes = int(traj["attentiveness"]["n_votes"].sum())
        if "posterior" in traj.children:
            pairs = traj["posterior"].sizes.get("pair")
    elif hasattr(traj, "runs_") and hasattr(traj, "family"):
        family = traj.family.name
        data = getattr(traj, "data", None)
        source = getattr(data, "source", None)
        users = getattr(data, "n_users", None)
        votes = getattr(data, "n_votes", None)
        pairs = getattr(data, "n_pairs", None)
    else:
        return None
    parts = [f"{n} {what}" for n, what in ((users, "users"), (votes, "votes"), (pairs, "pairs"))]
    described = ", ".join(p for p in parts if not p.startswith("None"))
    data_text = ": ".join(str(x) for x in (source, described) if x)
    return f"MAP-EM, family {family}" + (f": {data_text}" if data_text else "")


def plot_em_objective(traj, *, figsize=(10.0, 4.0), title: str | None = None) -> Figure:
    """EM's objective by iteration, one line per start.

    Left: the log posterior ``L(theta(t))`` (the log-likelihood when ``mu`` is
    known), which EM never lowers. Right: its distance below the best value
    reached, ``L* - L(theta(t))``, on a log scale, where EM's linear rate of
    convergence shows as a straight line.

    Parameters
    ----------
    traj : Trajectories, pandas.DataFrame, EMResult or xarray.DataTree
        Output of :func:`attnmodel.paper.experiments.em_trajectories` (or its
        ``paths`` table: ``start``, ``iteration``, ``objective``), a fit from
        :func:`attnmodel.inference.em.fit_em` (every start in ``runs_``) or an EM result
        tree (every start in its ``em_runs`` group, else the best start in
        ``em_trace``).
    figsize : tuple of float
    title : str, optional
        The figure's title. Default for a fit or a result tree: the family and
        the data (its file when recorded, users, votes, pairs); none for a
        table of paths.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes.
    """
    paths = _paths(traj)
    best = float(paths["objective"].max())
    if hasattr(traj, "optimum_objective"):
        best = max(best, traj.optimum_objective)
    fig, (ax_l, ax_gap) = plt.subplots(1, 2, figsize=figsize, layout="constrained")
    for start, grp in paths.groupby("start", sort=True):
        it, obj = grp["iteration"].to_numpy(), grp["objective"].to_numpy()
        (line,) = ax_l.plot(it, obj, marker=".", ms=3, lw=1, label=f"start {start}")
        gap = best - obj
        # Iterates at the optimum (gap 0 up to rounding) have no place on a log axis.
        ok = gap > 0
        ax_gap.plot(it[ok], gap[ok], marker=".", ms=3, lw=1, color=line.get_color())
    ax_l.axhline(best, color="k", ls=":", lw=1, label="best value")
    ax_l.set_xlabel("iteration")
    ax_l.set_ylabel("log posterior L(θ)")
    ax_l.set_title("objective (never decreases)")
    ax_gap.set_yscale("log")
    ax_gap.set_xlabel("iteration")
    ax_gap.set_ylabel("L* − L(θ)")
    ax_gap.set_title("distance below the best value")
    ax_l.legend(fontsize="small")
    title = _fit_title(traj) if title is None else title
    if title:
        fig.suptitle(title)
    return fig


def _attentiveness_dataset(post) -> tuple[xr.Dataset, dict[str, Any]]:
    """The per-user summaries and the attributes that describe them."""
    if isinstance(post, xr.Dataset):
        return post, dict(post.attrs)
    if isinstance(post, xr.DataTree):
        node = post["attentiveness"] if "attentiveness" in post.children else post
        attrs = {**node.root.attrs, **node.attrs}
        return node.to_dataset(), attrs
    raise TypeError(
        "plot_attentiveness takes the Dataset of user_posterior() or a result DataTree "
        f"(or its 'attentiveness' group), got {type(post).__name__}"
    )


def plot_attentiveness(
    post,
    *,
    eta_star: float | None = None,
    prob: float = 0.95,
    true_eta: Sequence[float] | None = None,
    ax=None,
    figsize=(9.0, 4.5),
) -> Figure:
    """Each user's attentiveness with its interval, sorted, and the ``eta_star`` cut.

    Points are posterior means, vertical bars the highest-density intervals.
    A user is coloured as kept when ``P(eta_j >= eta_star | votes) >= prob``;
    when the summaries carry a Monte Carlo error (NUTS fits), users within
    three errors of ``prob`` are marked undetermined.

    Parameters
    ----------
    post : xarray.Dataset or xarray.DataTree
        :func:`attnmodel.posterior.users.user_posterior` output, a result DataTree,
        or its ``attentiveness`` group; needs ``eta_mean``, ``eta_hdi`` and
        ``p_above``.
    eta_star : float, optional
        The cut (default: the one the summaries were computed for, from their
        attributes).
    prob : float
        Level of the rule ``prob``.
    true_eta : sequence of float, optional
        True attentiveness per user (simulations), in the order of ``post``'s
        users, drawn as crosses.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    figsize : tuple of float

    Returns
    -------
    matplotlib.figure.Figure
    """
    ds, attrs = _attentiveness_dataset(post)
    missing = [v for v in ("eta_mean", "eta_hdi", "p_above") if v not in ds]
    if missing:
        raise ValueError(f"attentiveness summaries lack {missing}; have {list(ds.data_vars)}")
    stored = attrs.get("eta_star", ds["p_above"].attrs.get("eta_star"))
    if eta_star is None:
        if stored is None:
            raise ValueError("eta_star is not recorded in the summaries; pass eta_star=")
        eta_star = float(stored)
    elif stored is not None and not np.isclose(float(stored), eta_star):
        raise ValueError(
            f"p_above was computed for eta_star={stored}, not {eta_star}: recompute the "
            "summaries at that cut"
        )
    mean = ds["eta_mean"].to_numpy()
    lower = ds["eta_hdi"].sel(ci_bound="lower").to_numpy()
    upper = ds["eta_hdi"].sel(ci_bound="upper").to_numpy()
    p_above = ds["p_above"].to_numpy()
    mcse = ds["p_above_mcse"].to_numpy() if "p_above_mcse" in ds else np.zeros_like(p_above)
    undetermined = np.abs(p_above - prob) <= 3.0 * mcse
    undetermined &= mcse > 0
    kept = (p_above >= prob) & ~undetermined
    order = np.argsort(mean, kind="stable")
    x = np.arange(mean.size)
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    else:
        fig = ax.figure
    alpha = 0.6 if mean.size <= 300 else 0.25
    ax.vlines(x, lower[order], upper[order], color="0.6", lw=1, alpha=alpha, label="HDI")
    groups = (
        (~kept & ~undetermined, "tab:blue", "dropped"),
        (kept, "tab:green", f"kept: P(η ≥ {eta_star:.3g}) ≥ {prob:g}"),
        (undetermined, "tab:purple", "undetermined (within 3 MCSE)"),
    )
    for mask, color, label in groups:
        sel = mask[order]
        if sel.any():
            ax.plot(x[sel], mean[order][sel], "o", ms=3, color=color, label=label)
    if true_eta is not None:
        t = np.asarray(true_eta, dtype=np.float64)
        if t.shape != mean.shape:
            raise ValueError(f"true_eta has shape {t.shape}, expected {mean.shape}")
        ax.plot(x, t[order], "x", ms=3, color=TRUE_COLOR, alpha=0.7, label="true eta")
    ax.axhline(eta_star, color="k", ls="--", lw=1, label=f"eta_star = {eta_star:.3g}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(-1, mean.size)
    ax.set_xlabel("users, sorted by posterior mean")
    ax.set_ylabel("eta (posterior mean and HDI)")
    hdi = attrs.get("hdi_prob")
    method = attrs.get("method", "")
    ax.set_title(
        f"{int(kept.sum())} of {mean.size} users kept"
        + (f"; {float(hdi):.0%} HDI" if hdi is not None else "")
        + (f" ({method})" if method else "")
    )
    # Beside the axes, not over them: whichever corner a legend takes inside, some
    # fit has its users there (on MT-Bench the dropped users sit at the upper left).
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig
