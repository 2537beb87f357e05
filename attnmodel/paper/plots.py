"""Figures of the paper's experiments (matplotlib).

They draw what :mod:`attnmodel.paper.experiments` and
:mod:`attnmodel.paper.downstream` return; the figures of a
fit (EM's objective, per-user attentiveness) are :mod:`attnmodel.plots`. Every
function returns the :class:`matplotlib.figure.Figure` it drew and neither
saves nor shows it.

============================  ========================================================
function                      draws
============================  ========================================================
:func:`plot_trajectories`     EM paths in parameter space, truth and optimum marked
:func:`plot_density_fit`      fitted against true ``P_eta``
:func:`plot_accuracy_vs_mu`   recovery of attentive users against ``mu``
:func:`plot_tradeoff`         votes kept against the share of casual votes among them
:func:`plot_sweet_spot`       proxy quality against the kept fraction of users
:func:`plot_mu_tradeoff`      proxy quality of all / filtered / oracle votes against ``mu``
============================  ========================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from attnmodel.paper.experiments import DensityFit, Trajectories
from attnmodel.plots import FIT_COLOR, TRUE_COLOR

__all__ = [
    "plot_trajectories",
    "plot_density_fit",
    "plot_accuracy_vs_mu",
    "plot_tradeoff",
    "plot_sweet_spot",
    "plot_mu_tradeoff",
]

#: Default axes of :func:`plot_trajectories` per family.
TRAJECTORY_AXES = {"two_point": ("eta_low", "eta_high"), "beta": ("alpha", "beta")}


def _as_list(obj) -> list:
    return list(obj) if isinstance(obj, (list, tuple)) else [obj]


def _trajectory_panel(ax, traj: Trajectories, x: str, y: str) -> None:
    for name in (x, y):
        if name not in traj.param_names:
            raise ValueError(f"{name!r} is not a parameter of {traj.family}: {traj.param_names}")
    paths = traj.paths
    span_x = np.ptp(paths[x].to_numpy()) or 1.0
    span_y = np.ptp(paths[y].to_numpy()) or 1.0
    for _, grp in paths.groupby("start", sort=True):
        px, py = grp[x].to_numpy(), grp[y].to_numpy()
        (line,) = ax.plot(px, py, lw=1, marker=".", ms=2, alpha=0.8)
        color = line.get_color()
        ax.plot(px[0], py[0], "o", ms=8, mfc="none", mec=color, mew=1.5)
        # Arrows on the steps long enough to see; the rest crowd the optimum.
        for i in range(px.size - 1):
            if np.hypot((px[i + 1] - px[i]) / span_x, (py[i + 1] - py[i]) / span_y) > 0.03:
                ax.annotate(
                    "",
                    xy=(px[i + 1], py[i + 1]),
                    xytext=(px[i], py[i]),
                    arrowprops={"arrowstyle": "->", "color": color, "lw": 1},
                )
    ax.plot(traj.truth[x], traj.truth[y], "*", ms=16, color=TRUE_COLOR, mec="k", zorder=5)
    ax.plot(traj.optimum[x], traj.optimum[y], "X", ms=9, color="k", zorder=6)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    m = traj.data.counts.n_users
    ax.set_title(f"{traj.family}: {traj.paths['start'].nunique()} starts, m = {m}")


def plot_trajectories(
    trajs: Trajectories | Sequence[Trajectories],
    *,
    axes: Sequence[tuple[str, str]] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """EM paths in parameter space (the paper's Figure 3), one panel per data set.

    Each start is a circle, each visible step an arrow; the red star is the
    truth and the black cross the maximum EM reaches on this data set (it
    differs from the truth by the sampling error).

    Parameters
    ----------
    trajs : Trajectories or sequence of Trajectories
    axes : sequence of (str, str), optional
        Parameters on the x and y axes of each panel (default
        ``eta_low``/``eta_high`` for two-point, ``alpha``/``beta`` for Beta,
        else the first two parameters).
    figsize : tuple of float, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes per trajectory set.
    """
    trajs = _as_list(trajs)
    if axes is None:
        axes = [TRAJECTORY_AXES.get(t.family, tuple(t.param_names[:2])) for t in trajs]
    if len(axes) != len(trajs):
        raise ValueError(f"axes has {len(axes)} entries for {len(trajs)} trajectory sets")
    fig, axs = plt.subplots(
        1, len(trajs), figsize=figsize or (5.0 * len(trajs), 4.5), layout="constrained"
    )
    axs = np.atleast_1d(axs)
    for ax, traj, (x, y) in zip(axs, trajs, axes, strict=True):
        _trajectory_panel(ax, traj, x, y)
    handles = [
        Line2D([], [], marker="o", ls="", mfc="none", mec="0.3", ms=8, label="start"),
        Line2D([], [], marker="*", ls="", color=TRUE_COLOR, mec="k", ms=14, label="truth"),
        Line2D([], [], marker="X", ls="", color="k", ms=9, label="EM maximum on these data"),
    ]
    axs[0].legend(handles=handles, fontsize="small")
    return fig


def _density_panel(ax, fit: DensityFit, kind: str) -> None:
    c = fit.curves
    if kind == "cdf":
        ax.plot(c["eta"], c["true_cdf"], color=TRUE_COLOR, lw=2, label="true")
        ax.plot(c["eta"], c["fit_cdf"], color=FIT_COLOR, lw=2, ls="--", label="fitted")
        ax.set_ylabel("P(η ≤ eta)")
    else:
        for side, color, ls in (("true", TRUE_COLOR, "-"), ("fit", FIT_COLOR, "--")):
            label = "true" if side == "true" else "fitted"
            if c[f"{side}_pdf"].notna().any():
                ax.plot(c["eta"], c[f"{side}_pdf"], color=color, lw=2, ls=ls, label=label)
        ax.set_ylabel("density")
        atoms = fit.atoms
        if len(atoms):
            # Atoms carry mass, not density: they get their own axis.
            twin = ax.twinx()
            for side, color in (("true", TRUE_COLOR), ("fit", FIT_COLOR)):
                a = atoms[atoms["side"] == side]
                if len(a):
                    label = ("true" if side == "true" else "fitted") + " atoms"
                    twin.vlines(a["location"], 0, a["weight"], color=color, lw=3, label=label)
                    twin.plot(a["location"], a["weight"], "o", color=color)
            twin.set_ylim(0, 1.05)
            twin.set_ylabel("atom mass")
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = twin.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize="small", loc="upper center")
    if kind == "cdf" or not len(fit.atoms):
        ax.legend(fontsize="small")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("eta")
    d = fit.distance
    ax.set_title(
        f"true: {fit.truth.label}\n"
        f"fit: {fit.fit_family} (KS {d['ks']:.3f}, W1 {d['wasserstein']:.3f})",
        fontsize="medium",
    )


def plot_density_fit(
    fits: DensityFit | Sequence[DensityFit],
    *,
    kind: str = "pdf",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Fitted against true ``P_eta``, one panel per fit (the paper's Figures 4 and 7).

    Parameters
    ----------
    fits : DensityFit or sequence of DensityFit
        From :func:`attnmodel.paper.experiments.misspecification`,
        :func:`~attnmodel.paper.experiments.logistic_normal_truths` or
        :func:`~attnmodel.paper.experiments.density_fit`.
    kind : {"pdf", "cdf"}
        Densities (atoms of a discrete side drawn as stems on a second axis,
        their height the mass) or distribution functions (comparable for any
        pair of families).
    figsize : tuple of float, optional

    Returns
    -------
    matplotlib.figure.Figure
        One main axes per fit, plus a twin axes per ``pdf`` panel with atoms.
    """
    if kind not in ("pdf", "cdf"):
        raise ValueError(f"kind must be 'pdf' or 'cdf', got {kind!r}")
    fits = _as_list(fits)
    fig, axs = plt.subplots(
        1, len(fits), figsize=figsize or (4.5 * len(fits), 4.0), layout="constrained"
    )
    for ax, fit in zip(np.atleast_1d(axs), fits, strict=True):
        _density_panel(ax, fit, kind)
    return fig


#: Colours per selection rule and line styles per ``mu`` mode in :func:`plot_accuracy_vs_mu`.
SELECTION_COLORS = {"ranking": "tab:blue", "threshold": "tab:green", "map_threshold": "tab:orange"}
MU_MODE_STYLES = {"known": "-", "prior": "--"}
SELECTION_LABELS = {
    "ranking": "ranking (top share)",
    "threshold": "P(η ≥ cut) ≥ prob",
    "map_threshold": "MAP ≥ cut",
}


def plot_accuracy_vs_mu(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("recall", "precision"),
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Recovery of attentive users against ``mu`` (the paper's Figure 8).

    One line per (``mu`` known or under a prior) x (selection rule): the mean
    over seeds with bars of one standard error across seeds.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`attnmodel.paper.experiments.accuracy_vs_mu`.
    metrics : sequence of str
        Columns to draw, one panel each (``recall`` is the paper's "accuracy").
    figsize : tuple of float, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes per metric.
    """
    need = ["mu", "mu_mode", "selection", *metrics]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; pass accuracy_vs_mu() output")
    fig, axs = plt.subplots(
        1, len(metrics), figsize=figsize or (5.0 * len(metrics), 4.0), layout="constrained"
    )
    axs = np.atleast_1d(axs)
    mus = np.sort(table["mu"].unique())
    # Lines often coincide (ranking does not depend on the scale of mu): shift each a little.
    lines = list(table.groupby(["mu_mode", "selection"], sort=True).groups)
    step = 0.15 * (np.min(np.diff(mus)) if mus.size > 1 else 0.1) / max(len(lines), 1)
    for ax, metric in zip(axs, metrics, strict=True):
        for i, ((mode, sel), grp) in enumerate(table.groupby(["mu_mode", "selection"], sort=True)):
            stats = grp.groupby("mu")[metric].agg(["mean", "std", "count"])
            stats = stats[stats["count"] > 0].dropna(subset=["mean"])
            if stats.empty:
                continue
            se = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0)
            ax.errorbar(
                stats.index + (i - (len(lines) - 1) / 2) * step,
                stats["mean"],
                yerr=se,
                color=SELECTION_COLORS.get(sel),
                ls=MU_MODE_STYLES.get(mode, ":"),
                marker="o",
                ms=4,
                capsize=3,
                label=f"mu {mode}, {SELECTION_LABELS.get(sel, sel)}",
            )
        ax.set_xlabel("mu (true win rate)")
        ax.set_ylabel(metric)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks(mus)
        ax.grid(alpha=0.3)
    axs[0].set_title("share of attentive users selected" if metrics[0] == "recall" else "")
    if len(metrics) > 1 and metrics[1] == "precision":
        axs[1].set_title("share of selected users that are attentive")
    axs[-1].legend(fontsize="small")
    return fig


def plot_tradeoff(table: pd.DataFrame, *, figsize: tuple[float, float] | None = None) -> Figure:
    """Votes kept against the share of them cast by casual users, one panel per rule.

    Solid lines read the casual share off the posterior (available on real
    logs), dashed lines count it from the true attentiveness (simulations);
    points are labelled with the rule's setting (``eta_star`` or ``top``).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`attnmodel.paper.experiments.filter_tradeoff` (its
        ``attrs["casual_below"]``, when present, goes into the axis label).
    figsize : tuple of float, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes per rule in the table.
    """
    need = ["rule", "setting", "votes_kept_fraction", "casual_share_posterior"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; pass filter_tradeoff() output")
    rules = list(dict.fromkeys(table["rule"]))
    fig, axs = plt.subplots(
        1, len(rules), figsize=figsize or (5.5 * len(rules), 4.2), layout="constrained"
    )
    axs = np.atleast_1d(axs)
    setting_name = {"prob": "eta_star", "top": "top"}
    cut = table.attrs.get("casual_below")
    casual = f" (eta < {cut:g})" if cut is not None else ""
    for ax, rule in zip(axs, rules, strict=True):
        grp = table[(table["rule"] == rule) & (table["votes_kept_fraction"] > 0)]
        x = grp["votes_kept_fraction"].to_numpy()
        ax.plot(x, grp["casual_share_posterior"], "o-", color="tab:blue", ms=4, label="posterior")
        if "casual_share_true" in grp:
            ax.plot(x, grp["casual_share_true"], "s--", color=TRUE_COLOR, ms=3, label="truth")
        # Label points at least 6% of the axis apart, so that the labels stay legible
        # (settings that keep the same users share a point).
        last = -np.inf
        for xi, yi, s in zip(x, grp["casual_share_posterior"], grp["setting"], strict=True):
            if abs(xi - last) >= 0.06:
                ax.annotate(
                    f"{s:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7
                )
                last = xi
        ax.set_xlabel("share of votes kept")
        ax.set_ylabel(f"share of kept votes from casual users{casual}")
        ax.set_xlim(-0.02, 1.08)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        name = setting_name.get(rule, "setting")
        ax.set_title(f"rule {rule} (labels: {name})")
        ax.legend(fontsize="small")
    return fig


def _band(ax, x, rows: pd.DataFrame, metric: str, **style) -> None:
    """Mean over seeds as a line, the 10-90% band over seeds shaded."""
    ax.plot(x, rows[f"{metric}_mean"], marker="o", ms=4, **style)
    ax.fill_between(
        x, rows[f"{metric}_q10"], rows[f"{metric}_q90"], color=style.get("color"), alpha=0.12
    )


def _need(table: pd.DataFrame, cols: Sequence[str], source: str) -> None:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; pass {source} output")


def plot_sweet_spot(
    summary: pd.DataFrame,
    *,
    metric: str = "accuracy",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Proxy quality against the kept fraction of users (the paper's Figure 6).

    One colour per truth: solid, users ranked by the fit (rule ``top``);
    dashed, ranked by their true ``eta`` (oracle). Lines are means over seeds,
    bands the 10-90% range; a star marks the best kept fraction of the fit.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`attnmodel.paper.downstream.summarize_runs` of
        :func:`~attnmodel.paper.downstream.proxy_runs` by ``truth``.
    metric : {"accuracy", "win_rate"}
    figsize : tuple of float, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need(summary, ["truth", "selection", f"{metric}_mean", f"{metric}_q10"], "summarize_runs()")
    fig, ax = plt.subplots(figsize=figsize or (6.5, 4.2), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (truth, grp) in enumerate(summary.groupby("truth", sort=False)):
        color = colors[k % len(colors)]
        for prefix, ls, name in (("top", "-", "fit"), ("oracle", "--", "oracle")):
            rows = grp[grp["selection"].str.startswith(prefix) | (grp["selection"] == "all")]
            frac = rows["selection"].map(
                lambda s, p=prefix: 1.0 if s == "all" else float(s[len(p) :])
            )
            rows = rows.assign(frac=frac.to_numpy()).sort_values("frac", ascending=False)
            label = f"{truth} ({name})"
            _band(ax, rows["frac"], rows, metric, color=color, ls=ls, label=label)
            if prefix == "top":
                best = rows.loc[rows[f"{metric}_mean"].idxmax()]
                ax.plot(best["frac"], best[f"{metric}_mean"], "*", ms=16, color=color, mec="k")
    ax.set_xlabel("kept fraction of users")
    ax.set_ylabel(metric.replace("_", " "))
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_mu_tradeoff(
    summary: pd.DataFrame,
    *,
    metric: str = "accuracy",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Proxy quality of all, filtered and oracle-filtered votes against ``mu`` (Table 2).

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`attnmodel.paper.downstream.summarize_runs` of
        :func:`~attnmodel.paper.downstream.mu_tradeoff` by ``mu``.
    metric : {"accuracy", "win_rate"}
    figsize : tuple of float, optional

    Returns
    -------
    matplotlib.figure.Figure
        Left: the quality (mean over seeds, 10-90% band); right: the
        oracle's lead over the filter (mean over seeds of the paired
        difference).
    """
    _need(summary, ["mu", "selection", f"{metric}_mean", f"{metric}_gain"], "summarize_runs()")
    fig, axs = plt.subplots(1, 2, figsize=figsize or (11, 4.0), layout="constrained")
    styles = {"all": ("tab:gray", "all votes"), "top": (FIT_COLOR, "filtered (top, fit)")}
    styles["oracle"] = (TRUE_COLOR, "oracle (top, true eta)")
    for sel, grp in summary.groupby("selection", sort=False):
        kind = next((k for k in styles if sel.startswith(k)), None)
        if kind is None:
            continue
        color, label = styles[kind]
        grp = grp.sort_values("mu")
        _band(axs[0], grp["mu"], grp, metric, color=color, label=f"{label}: {sel}")
    axs[0].set_xlabel("mu (true win rate of the stronger model)")
    axs[0].set_ylabel(metric.replace("_", " "))
    axs[0].grid(alpha=0.3)
    axs[0].legend(fontsize="small")
    top = summary[summary["selection"].str.startswith("top")].sort_values("mu")
    orc = summary[summary["selection"].str.startswith("oracle")].sort_values("mu")
    lead = orc[f"{metric}_gain"].to_numpy() - top[f"{metric}_gain"].to_numpy()
    axs[1].plot(top["mu"], lead, "o-", color="k")
    axs[1].axhline(0.0, color="0.5", lw=1)
    axs[1].set_xlabel("mu (true win rate of the stronger model)")
    axs[1].set_ylabel(f"oracle minus filter ({metric.replace('_', ' ')})")
    axs[1].grid(alpha=0.3)
    return fig
