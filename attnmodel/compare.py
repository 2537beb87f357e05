"""How far MAP-EM and NUTS agree on one data set.

MAP-EM gives a point estimate of the global parameters and exact per-user
posteriors at it; NUTS integrates over the global parameters. Where the data
pin the global parameters down, the two should agree: every EM estimate
inside the NUTS highest-density interval, and each user's
``P(eta_j >= eta_star | votes)`` nearly the same, so that the ``prob`` rule
keeps the same users. :func:`compare_fits` measures that agreement and
:func:`plot_comparison` draws it; :func:`arviz_pair` hands both fits to
ArviZ's plots as one ``{"EM": ..., "NUTS": ...}`` dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from attnmodel.filtering import RULE_DEFAULTS, diagnostics_message, prob_decisions, screen_evidence
from attnmodel.results.summary import (
    align_to_data,
    diagnostic_checks,
    flat_globals,
    global_vars,
    point_estimate,
    scalar_hdi,
)
from attnmodel.results.tree import (
    SAMPLE_DIMS,
    check_same_data,
    check_same_fit_data,
    require_result,
)

__all__ = ["Comparison", "arviz_pair", "compare_fits", "plot_comparison"]


@dataclass
class Comparison:
    """EM against NUTS on the same data.

    Attributes
    ----------
    params : pandas.DataFrame
        One row per scalar global parameter (``alpha``, ``weights[0]``,
        ``mu[pair]``): ``em`` (the EM estimate), ``nuts_mean``,
        ``nuts_hdi_lower``, ``nuts_hdi_upper`` (at ``hdi_prob``) and
        ``inside`` (the EM estimate lies in the interval).
    users : pandas.DataFrame
        One row per user (indexed by user id): ``p_above_em``,
        ``p_above_nuts``, ``p_above_mcse_nuts``, ``abs_diff``, ``decision_em``
        and ``decision_nuts`` (``"kept"``, ``"dropped"``,
        ``"undetermined"`` or ``"too little evidence"`` under the ``prob``
        rule and its evidence screen, as ``filter`` decides) and ``n_votes``.
    agreement : dict
        ``params_inside`` (fraction of parameters whose EM estimate is inside
        the NUTS interval), ``frac_within_tol`` (fraction of users with
        ``abs_diff <= tol``), ``max_abs_diff`` and ``user_max_diff``,
        ``n_decisions_differ``, ``frac_decisions_agree``,
        ``votes_decisions_differ``, and the settings ``tol``, ``prob``,
        ``min_evidence`` (0 when the screen is off or a tree lacks
        ``log_bf``), ``hdi_prob``, ``eta_star``.
    """

    params: pd.DataFrame
    users: pd.DataFrame
    agreement: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """A few lines on the agreement."""
        a = self.agreement
        n_par = len(self.params)
        lines = [
            f"EM vs NUTS: {int(self.params['inside'].sum())} of {n_par} global parameters have "
            f"the EM estimate inside the NUTS {a['hdi_prob']:.0%} HDI",
            f"  P(eta >= {a['eta_star']:g}): {a['frac_within_tol']:.1%} of {len(self.users)} users "
            f"differ by at most {a['tol']:g}; largest difference {a['max_abs_diff']:.3g} "
            f"(user {a['user_max_diff']!r})",
            f"  rule prob >= {a['prob']:g}: decisions agree for {a['frac_decisions_agree']:.1%} of "
            f"users ({a['n_decisions_differ']} differ, {a['votes_decisions_differ']} votes)",
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Comparison(\n{self.summary()}\n)"


def _require_em_and_nuts(em: xr.DataTree, nuts: xr.DataTree) -> None:
    require_result(em)
    require_result(nuts)
    # Swapped arguments would silently read NUTS's first draw as "the EM estimate".
    for tree, side, method, kind in (
        (em, "first", "em", "an EM"),
        (nuts, "second", "nuts", "a NUTS"),
    ):
        if tree.attrs.get("method") != method:
            raise ValueError(
                f"the {side} fit must be {kind} fit; it has method={tree.attrs.get('method')!r}"
            )
    if em.attrs["family"] != nuts.attrs["family"]:
        raise ValueError(
            f"the fits use different families: {em.attrs['family']!r} (em) and "
            f"{nuts.attrs['family']!r} (nuts)"
        )


def _shared_globals(
    em: xr.DataTree, nuts: xr.DataTree, var_names: str | list[str] | None
) -> list[str]:
    """``var_names`` (default: all) checked to be global parameters of both fits."""
    shared = [v for v in global_vars(em) if v in global_vars(nuts)]
    if var_names is None:
        return shared
    names = [var_names] if isinstance(var_names, str) else list(var_names)
    for name in names:
        if name not in shared:
            raise ValueError(f"{name!r} is not a global parameter of both fits")
    return names


def _decisions(keep: np.ndarray, undetermined: np.ndarray, little: np.ndarray) -> np.ndarray:
    label = np.where(undetermined, "undetermined", "dropped")
    label = np.where(little, "too little evidence", label)
    return np.where(keep, "kept", label).astype(object)


def compare_fits(
    em: xr.DataTree,
    nuts: xr.DataTree,
    *,
    data=None,
    prob: float = 0.95,
    hdi_prob: float = 0.94,
    tol: float = 0.05,
    mcse_k: float = 2.0,
    min_evidence: float = RULE_DEFAULTS["min_evidence"],
    allow_other_data: bool = False,
) -> Comparison:
    """Compare an EM result tree with a NUTS result tree of the same data.

    Parameters
    ----------
    em, nuts : xarray.DataTree
        Results of :func:`attnmodel.inference.fitting.fit` with ``method="em"`` and
        ``method="nuts"`` (same family, same ``eta_star``).
    data : VoteData, optional
        The data both were fitted to: checks that the users match and counts
        votes from it (otherwise from the trees' ``n_votes``).
    prob : float
        Cut of the ``prob`` rule whose decisions are compared.
    hdi_prob : float
        Mass of the NUTS interval each EM estimate is checked against.
    tol : float
        Users whose ``p_above`` differ by at most ``tol`` count as agreeing.
    mcse_k : float
        Users within ``mcse_k`` Monte Carlo standard errors of ``prob`` are
        undetermined (as in :func:`attnmodel.filtering.filter_users`).
    min_evidence : float
        The ``prob`` rule's evidence screen, as in
        :func:`attnmodel.filtering.filter_users`: a decision must rest on a
        log Bayes factor of at least this (each tree's own ``log_bf``);
        others are ``"too little evidence"``. 0 turns it off.
    allow_other_data : bool
        Compare fits whose recorded data fingerprints differ (or that were
        fitted to other votes than ``data``); by default that is an error
        (:func:`attnmodel.results.tree.check_same_fit_data`).

    Returns
    -------
    Comparison

    Raises
    ------
    DataMismatchError
        The two results, or a result and ``data``, record different data.
    """
    _require_em_and_nuts(em, nuts)
    if not allow_other_data:
        check_same_fit_data(em, nuts, names=("the EM result", "the NUTS result"))
        if data is not None:
            check_same_data(em, data)
    if float(em.attrs["eta_star"]) != float(nuts.attrs["eta_star"]):
        raise ValueError(
            f"the fits' p_above use different cuts: eta_star={em.attrs['eta_star']} (em) and "
            f"{nuts.attrs['eta_star']} (nuts); refit one with the other's eta_star"
        )
    em_flat, nuts_flat = flat_globals(em), flat_globals(nuts)
    rows = []
    for name in em_flat:
        if name not in nuts_flat:
            continue
        lo, hi = scalar_hdi(nuts_flat[name], hdi_prob)
        est = point_estimate(em_flat[name], "em")
        mean = point_estimate(nuts_flat[name], "nuts")
        rows.append((name, est, mean, lo, hi, bool(lo <= est <= hi)))
    params = pd.DataFrame(
        rows, columns=["parameter", "em", "nuts_mean", "nuts_hdi_lower", "nuts_hdi_upper", "inside"]
    ).set_index("parameter")

    attn_em = em["attentiveness"].to_dataset()
    users = pd.Index(attn_em["user"].to_numpy(), name="user")
    if data is not None:
        users = pd.Index(data.users, name="user")
        attn_em = align_to_data(attn_em, users, what="data")
    attn_nuts = align_to_data(nuts["attentiveness"].to_dataset(), users, what="EM result")
    p_em = attn_em["p_above"].to_numpy()
    p_nuts = attn_nuts["p_above"].to_numpy()
    mcse_em = attn_em["p_above_mcse"].to_numpy()
    mcse_nuts = attn_nuts["p_above_mcse"].to_numpy()
    keep_em, und_em = prob_decisions(p_em, mcse_em, prob, mcse_k)
    keep_nuts, und_nuts = prob_decisions(p_nuts, mcse_nuts, prob, mcse_k)
    little_em = little_nuts = np.zeros(p_em.size, dtype=bool)
    if min_evidence > 0.0 and "log_bf" in attn_em and "log_bf" in attn_nuts:
        keep_em, und_em, little_em = screen_evidence(
            keep_em, und_em, attn_em["log_bf"].to_numpy(), min_evidence
        )
        keep_nuts, und_nuts, little_nuts = screen_evidence(
            keep_nuts, und_nuts, attn_nuts["log_bf"].to_numpy(), min_evidence
        )
    else:
        min_evidence = 0.0
    if data is not None:
        n_votes = data.votes_per_user().to_numpy()
    else:
        n_votes = attn_em["n_votes"].to_numpy()
    diff = np.abs(p_em - p_nuts)
    table = pd.DataFrame(
        {
            "p_above_em": p_em,
            "p_above_nuts": p_nuts,
            "p_above_mcse_nuts": mcse_nuts,
            "abs_diff": diff,
            "decision_em": _decisions(keep_em, und_em, little_em),
            "decision_nuts": _decisions(keep_nuts, und_nuts, little_nuts),
            "n_votes": n_votes.astype(np.int64),
        },
        index=users,
    )
    differ = (table["decision_em"] != table["decision_nuts"]).to_numpy()
    worst = int(np.argmax(diff))
    agreement = {
        "params_inside": float(params["inside"].mean()) if len(params) else float("nan"),
        "frac_within_tol": float(np.mean(diff <= tol)),
        "max_abs_diff": float(diff[worst]),
        "user_max_diff": users[worst],
        "n_decisions_differ": int(differ.sum()),
        "frac_decisions_agree": float(1.0 - differ.mean()),
        "votes_decisions_differ": int(n_votes[differ].sum()),
        "tol": float(tol),
        "prob": float(prob),
        "min_evidence": float(min_evidence),
        "hdi_prob": float(hdi_prob),
        "eta_star": float(em.attrs["eta_star"]),
    }
    return Comparison(params=params, users=table, agreement=agreement)


def arviz_pair(
    em: xr.DataTree, nuts: xr.DataTree, var_names: str | list[str] | None = None
) -> dict[str, xr.DataTree]:
    """Both fits' global parameters as a dict that ArviZ's plots take.

    ArviZ plots a dict of trees by stacking them along a ``model`` dim. The
    EM tree has one chain, so stacked as it is it would be padded with NaN
    (and xarray warns that it will refuse to stack them). Here the EM
    estimate is repeated over NUTS's chains and draws: the two trees have
    the same shape and EM shows as a point (an interval of width 0).

    Parameters
    ----------
    em, nuts : xarray.DataTree
        Results of :func:`attnmodel.inference.fitting.fit` with ``method="em"`` and
        ``method="nuts"`` (same family, same pairs).
    var_names : str or list of str, optional
        Global parameters to keep (posterior variables without a ``user``
        dim, such as ``alpha``, ``beta``, ``mu``); by default all those the
        two fits share.

    Returns
    -------
    dict of {str : xarray.DataTree}
        ``{"EM": ..., "NUTS": ...}``, each a tree with one group
        ``posterior`` holding ``var_names`` with NUTS's dims and coords
        (``chain``, ``draw``, then the variable's own dims such as ``pair``).
        Under ``"EM"`` every draw is the EM estimate.

    Raises
    ------
    ValueError
        If the fits use different families, if ``em`` is not an EM fit, if a
        name in ``var_names`` is not a global parameter of both fits, or if a
        variable's coordinates differ between them (other pairs or components).

    Examples
    --------
    >>> import arviz_plots as azp
    >>> import attnmodel as am
    >>> from attnmodel.compare import arviz_pair
    >>> sim = am.simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 200, 50, mu=0.8, seed=0)
    >>> data = sim.to_data()
    >>> em = am.fit(data, "beta", mu_prior=(8, 2))
    >>> nuts = am.fit(
    ...     data, "beta", method="nuts", mu_prior=(8, 2), draws=300, tune=300, chains=2,
    ...     progressbar=False, seed=1,
    ... )
    >>> pair = arviz_pair(em, nuts, var_names=["alpha", "beta"])
    >>> sorted(pair), dict(pair["EM"]["posterior"].sizes)
    (['EM', 'NUTS'], {'chain': 2, 'draw': 300})
    >>> pc = azp.plot_forest(pair, combined=True, ci_kind="hdi")

    ``mu`` lives in (0, 1) while ``alpha`` and ``beta`` can be tens, and a
    forest plot puts all its variables on one x axis: draw ``mu`` apart,
    ``azp.plot_forest(arviz_pair(em, nuts, ["mu"]), combined=True)``.
    """
    _require_em_and_nuts(em, nuts)
    names = _shared_globals(em, nuts, var_names)
    post = nuts["posterior"].to_dataset()[names]
    point = em["posterior"].to_dataset()[names].isel(chain=0, draw=0, drop=True)
    for name in names:
        try:
            xr.align(point[name], post[name], join="exact", exclude=SAMPLE_DIMS)
        except ValueError as err:
            raise ValueError(
                f"{name!r} has other coordinates in the two fits (were they fitted to the "
                f"same data?): {err}"
            ) from None
    point = point.expand_dims(chain=post["chain"].to_numpy(), draw=post["draw"].to_numpy())
    # NUTS's own coordinate values (the same labels, but perhaps another dtype), and a
    # copy: expand_dims gives read-only views.
    point = point.transpose(*SAMPLE_DIMS, ...).assign_coords(post.coords).copy(deep=True)
    return {
        "EM": xr.DataTree.from_dict({"posterior": point}),
        "NUTS": xr.DataTree.from_dict({"posterior": post}),
    }


def _panels(params: pd.DataFrame, names: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each variable's rows of ``params`` as ``(row, label)``, labelled by coordinate."""
    return {
        name: [
            (row, "" if row == name else row[len(name) + 1 : -1])
            for row in params.index
            if row == name or row.startswith(f"{name}[")
        ]
        for name in names
    }


def plot_comparison(
    em: xr.DataTree,
    nuts: xr.DataTree,
    *,
    prob: float = 0.95,
    hdi_prob: float = 0.94,
    var_names: list[str] | None = None,
    figsize: tuple[float, float] | None = None,
):
    """Forest plots of the global parameters beside a scatter of per-user ``p_above``.

    Left: one small forest plot per global variable, each on its own x scale
    (``mu`` lives in (0, 1), ``alpha`` and ``beta`` can be tens), one row
    per element: NUTS's mean with its 50% and ``hdi_prob`` HDIs, and EM's
    estimate. Right: ``p_above`` under NUTS against EM, one point per user,
    with the line ``y = x`` and the ``prob`` cut on both axes. The title names
    the family and the users; when the NUTS fit fails the filter's checks
    (:func:`attnmodel.results.summary.diagnostic_checks` at their defaults), a
    red line under it says which, since its intervals are then not to be trusted.

    Returns
    -------
    matplotlib.figure.Figure
        The forest axes have gids ``forest:<variable>``, the scatter
        ``p_above_scatter``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    cmp = compare_fits(em, nuts, prob=prob, hdi_prob=hdi_prob)
    panels = _panels(cmp.params, _shared_globals(em, nuts, var_names or None))
    n_rows = [len(rows) for rows in panels.values()]
    if figsize is None:
        figsize = (14.0, max(4.5, 0.8 + 0.55 * sum(n_rows) + 0.45 * len(n_rows)))
    fig = plt.figure(figsize=figsize, layout="constrained")
    outer = fig.add_gridspec(1, 2, width_ratios=(1.2, 1.0))
    left = outer[0].subgridspec(len(panels), 1, height_ratios=[n + 0.6 for n in n_rows])
    nuts_flat = flat_globals(nuts)
    for i, (name, rows) in enumerate(panels.items()):
        ax = fig.add_subplot(left[i])
        ax.set_gid(f"forest:{name}")
        table = cmp.params.loc[[row for row, _ in rows]]
        y = -np.arange(len(rows), dtype=float)
        half = np.array([scalar_hdi(nuts_flat[row], 0.5) for row, _ in rows])
        ax.hlines(y - 0.15, table["nuts_hdi_lower"], table["nuts_hdi_upper"], color="C1", lw=1)
        ax.hlines(y - 0.15, half[:, 0], half[:, 1], color="C1", lw=3.5)
        ax.scatter(table["nuts_mean"], y - 0.15, color="C1", s=30, zorder=3)
        ax.scatter(table["em"], y + 0.15, color="C0", marker="D", s=30, zorder=3)
        ax.set_ylim(y[-1] - 0.6, 0.6)
        ax.set_yticks(y, [label for _, label in rows])
        ax.tick_params(axis="y", length=0)
        ax.set_title(name, loc="left", fontsize="medium")
        ax.grid(axis="x", color="0.9")
        ax.spines[["top", "right", "left"]].set_visible(False)
    nuts_label = f"NUTS mean, 50% and {hdi_prob:.0%} HDI"
    key = [
        Line2D([], [], color="C0", marker="D", ls="", label="EM estimate"),
        Line2D([], [], color="C1", marker="o", lw=1, label=nuts_label),
    ]
    fig.legend(handles=key, loc="outside upper left", ncols=2, frameon=False)
    ax = fig.add_subplot(outer[1])
    users = cmp.users
    ax.scatter(users["p_above_em"], users["p_above_nuts"], s=12, alpha=0.6, label="users")
    ax.plot([0, 1], [0, 1], color="0.4", lw=1, label="y = x")
    ax.axvline(prob, color="C3", lw=0.8, ls="--", label=f"cut {prob:g}")
    ax.axhline(prob, color="C3", lw=0.8, ls="--")
    eta_star = cmp.agreement["eta_star"]
    ax.set_xlabel(f"EM  P(eta >= {eta_star:.3g} | votes)")
    ax.set_ylabel(f"NUTS  P(eta >= {eta_star:.3g} | votes)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_gid("p_above_scatter")
    title = f"MAP-EM against NUTS: family {em.attrs.get('family', '?')}, {len(users)} users"
    failed = diagnostic_checks(nuts)
    failed = failed[~failed["passed"]]
    if len(failed):
        fig.suptitle(
            f"{title}\n{diagnostics_message(failed)}: the NUTS intervals are not to be trusted",
            color="C3",
            gid="nuts_failed",
        )
    else:
        fig.suptitle(title)
    return fig
