"""Reading a result tree: its global parameters, headline numbers, diagnostics and user table.

Every function takes a result tree of any method (:mod:`attnmodel.results.tree`).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from attnmodel.results.tree import SAMPLE_DIMS, require_result

__all__ = [
    "global_vars",
    "flat_globals",
    "point_estimate",
    "scalar_hdi",
    "family_params",
    "convergence_table",
    "n_divergences",
    "diagnostic_checks",
    "summarize",
    "user_table",
    "align_to_data",
]


def global_vars(dt: xr.DataTree) -> list[str]:
    """Names of the global parameters: posterior variables without a ``user`` dim."""
    post = dt["posterior"]
    return [str(v) for v, da in post.data_vars.items() if "user" not in da.dims]


def flat_globals(dt: xr.DataTree) -> dict[str, xr.DataArray]:
    """Each scalar element of the global parameters, dims ``(chain, draw)``.

    Names are ``alpha``, ``weights[0]``, ``mu[gpt vs llama]``: a vector
    variable gives one entry per coordinate value of its extra dim.
    """
    post = dt["posterior"].to_dataset()
    out: dict[str, xr.DataArray] = {}
    for name in global_vars(dt):
        da = post[name]
        extra = [d for d in da.dims if d not in SAMPLE_DIMS]
        if not extra:
            out[name] = da
            continue
        stacked = da.stack(_element=extra)
        for i, key in enumerate(stacked["_element"].to_numpy()):
            label = ", ".join(str(x) for x in key) if isinstance(key, tuple) else str(key)
            out[f"{name}[{label}]"] = stacked.isel(_element=i).drop_vars(
                ["_element", *extra], errors="ignore"
            )
    return out


def point_estimate(da: xr.DataArray, method: str) -> float:
    """One scalar parameter's estimate: its EM value, or the mean of its draws (NUTS).

    EM draws and known ``mu`` repeat one value, which is taken exactly (a
    mean could be an ulp off).
    """
    first = float(da.isel(chain=0, draw=0))
    if method == "em" or float(da.max()) == float(da.min()):
        return first
    return float(da.mean())


def family_params(dt: xr.DataTree) -> dict[str, Any]:
    """Family parameters at the EM estimate (EM) or the posterior mean (NUTS)."""
    post = dt["posterior"]
    method = dt.attrs.get("method")
    out: dict[str, Any] = {}
    from attnmodel.model.families import get_family

    fam = get_family(dt.attrs["family"], int(dt.attrs["n_components"]))
    for key, dims in fam.param_dims.items():
        da = post[key]
        if method == "em":
            val = da.isel(chain=0, draw=0).to_numpy()
        else:
            val = da.mean(SAMPLE_DIMS).to_numpy()
        out[key] = val.astype(np.float64) if dims else float(val)
    return out


def convergence_table(dt: xr.DataTree) -> pd.DataFrame:
    """r_hat, bulk ESS and tail ESS of every scalar global parameter.

    Elements that never move (a known ``mu``, every EM draw) have no defined
    r_hat; they are listed with ``constant`` True and NaN statistics.

    Returns
    -------
    pandas.DataFrame
        Index: flattened parameter names; columns ``r_hat``, ``ess_bulk``,
        ``ess_tail``, ``constant``.
    """
    import arviz_stats as azs

    flat = flat_globals(dt)
    const = {k: bool(float(da.max()) == float(da.min())) for k, da in flat.items()}
    moving = xr.Dataset({k: da for k, da in flat.items() if not const[k]})
    table = pd.DataFrame(
        np.nan,
        index=pd.Index(list(flat), name="parameter"),
        columns=["r_hat", "ess_bulk", "ess_tail"],
    )
    if moving.data_vars and moving.sizes.get("chain", 0) * moving.sizes.get("draw", 0) > 3:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            stats = {
                "r_hat": azs.rhat(moving),
                "ess_bulk": azs.ess(moving, method="bulk"),
                "ess_tail": azs.ess(moving, method="tail"),
            }
        for col, ds in stats.items():
            for k in moving.data_vars:
                table.loc[k, col] = float(ds[k])
    table["constant"] = [const[k] for k in table.index]
    return table


def n_divergences(dt: xr.DataTree) -> int:
    """Divergent transitions in ``sample_stats.diverging`` (0 when there is none)."""
    if "sample_stats" not in dt.children or "diverging" not in dt["sample_stats"]:
        return 0
    return int(dt["sample_stats"]["diverging"].sum())


def diagnostic_checks(
    dt: xr.DataTree,
    *,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    max_divergences: int = 0,
) -> pd.DataFrame:
    """The NUTS convergence checks over the global parameters, one row per check.

    A check that is NaN for every parameter (all constant) passes.

    Returns
    -------
    pandas.DataFrame
        Index ``check`` (``r_hat``, ``ess_bulk``, ``ess_tail``,
        ``divergences``); columns ``variable`` (the worst parameter),
        ``value``, ``threshold``, ``passed``.
    """
    table = convergence_table(dt)
    rows = []
    for check, worst, threshold in (
        ("r_hat", "max", rhat_max),
        ("ess_bulk", "min", ess_min),
        ("ess_tail", "min", ess_min),
    ):
        col = table[check].dropna()
        if col.empty:
            rows.append((check, "", np.nan, float(threshold), True))
            continue
        name = col.idxmax() if worst == "max" else col.idxmin()
        value = float(col[name])
        ok = value <= threshold if worst == "max" else value >= threshold
        rows.append((check, str(name), value, float(threshold), bool(ok)))
    div = n_divergences(dt)
    rows.append(("divergences", "", float(div), float(max_divergences), div <= max_divergences))
    return pd.DataFrame(
        rows, columns=["check", "variable", "value", "threshold", "passed"]
    ).set_index("check")


def summarize(dt: xr.DataTree) -> dict[str, Any]:
    """The headline numbers of a result.

    Returns
    -------
    dict
        ``family``, ``method``, ``params`` (flattened family parameter ->
        EM estimate or posterior mean), ``params_hdi`` (NUTS: name ->
        ``(lower, upper)`` at the tree's ``hdi_prob``; empty for EM), ``mu``
        (pair -> value), ``converged`` (EM: the fit's flag; NUTS: all
        diagnostic checks pass at their default thresholds),
        ``diagnostics`` (EM: ``n_iter``, ``objective``; NUTS: ``max_rhat``,
        ``min_ess_bulk``, ``min_ess_tail``, ``divergences``), ``n_users``,
        ``eta_star`` and ``warnings`` (the tree's ``fit_warnings``: why the
        fit may be degenerate; empty when none, or when the tree predates them),
        ``mu_structure`` (its name: ``independent``, ``pooled``,
        ``bradley_terry``), ``structure`` (flattened ``theta`` or ``mu_hyper``
        -> estimate; empty for ``independent``) and ``ties`` (``kappa``,
        ``tau_mean``, ``tau_conc`` when ties are modelled; else empty), the
        last two with their HDIs in ``params_hdi`` for NUTS.
    """
    from attnmodel.model.ties import TieParams

    require_result(dt)
    method = dt.attrs["method"]
    flat = flat_globals(dt)
    fam_names = set(family_params(dt))
    params, mu, params_hdi = {}, {}, {}
    structure, ties = {}, {}
    tie_names = set(TieParams._fields)
    hdi_prob = float(dt.attrs.get("hdi_prob", 0.94))
    for name, da in flat.items():
        base = name.split("[", 1)[0]
        if base == "mu":
            mu[name[3:-1]] = point_estimate(da, method)
            continue
        group = {"theta": structure, "mu_hyper": structure}.get(base)
        if group is None:
            group = params if base in fam_names else ties if base in tie_names else None
        if group is None:
            continue
        group[name] = point_estimate(da, method)
        if method != "em":
            params_hdi[name] = scalar_hdi(da, hdi_prob)
    if method == "em":
        diagnostics: dict[str, Any] = {
            "n_iter": int(dt.attrs.get("n_iter", -1)),
            "objective": float(dt.attrs.get("objective", np.nan)),
        }
        converged = bool(int(dt.attrs.get("converged", 0)))
    else:
        checks = diagnostic_checks(dt)
        diagnostics = {
            "max_rhat": float(checks.loc["r_hat", "value"]),
            "min_ess_bulk": float(checks.loc["ess_bulk", "value"]),
            "min_ess_tail": float(checks.loc["ess_tail", "value"]),
            "divergences": int(checks.loc["divergences", "value"]),
        }
        converged = bool(checks["passed"].all())
    return {
        "family": dt.attrs["family"],
        "method": method,
        "params": params,
        "params_hdi": params_hdi,
        "mu": mu,
        "converged": converged,
        "diagnostics": diagnostics,
        "n_users": int(dt["attentiveness"].sizes["user"]),
        "eta_star": float(dt.attrs["eta_star"]),
        "warnings": list(json.loads(dt.attrs.get("fit_warnings", "[]"))),
        "mu_structure": str(
            json.loads(dt.attrs.get("mu_structure", "{}")).get("name", "independent")
        ),
        "structure": structure,
        "ties": ties,
    }


def scalar_hdi(da: xr.DataArray, prob: float) -> tuple[float, float]:
    """Highest-density interval ``(lower, upper)`` of one scalar parameter's draws.

    A parameter that never moves has the interval ``(value, value)``.
    """
    import arviz_stats as azs

    if float(da.max()) == float(da.min()):
        v = float(da.max())
        return v, v
    h = azs.hdi(da, prob=prob)
    return float(h.sel(ci_bound="lower")), float(h.sel(ci_bound="upper"))


def user_table(dt: xr.DataTree) -> pd.DataFrame:
    """One row per user: attentiveness summaries and vote counts.

    Returns
    -------
    pandas.DataFrame
        Columns ``user``, ``eta_mean``, ``eta_sd``, ``eta_hdi_lower``,
        ``eta_hdi_upper``, ``p_above``, ``p_above_mcse``, ``log_bf`` (the
        evidence of the user's own votes for ``eta >= eta_star``, see
        :mod:`attnmodel.posterior.users`; absent from results written before
        it was stored), ``n_votes``.
    """
    require_result(dt)
    a = dt["attentiveness"]
    hdi = a["eta_hdi"]
    table = pd.DataFrame(
        {
            "user": a["user"].to_numpy(),
            "eta_mean": a["eta_mean"].to_numpy(),
            "eta_sd": a["eta_sd"].to_numpy(),
            "eta_hdi_lower": hdi.sel(ci_bound="lower").to_numpy(),
            "eta_hdi_upper": hdi.sel(ci_bound="upper").to_numpy(),
            "p_above": a["p_above"].to_numpy(),
            "p_above_mcse": a["p_above_mcse"].to_numpy(),
            "n_votes": a["n_votes"].to_numpy().astype(np.int64),
        }
    )
    if "log_bf" in a:
        table.insert(table.columns.get_loc("n_votes"), "log_bf", a["log_bf"].to_numpy())
    return table


def align_to_data(summaries, users: pd.Index, what: str = "fitted data"):
    """Per-user summaries (a Dataset or DataArray with dim ``user``) in the order of ``users``.

    Decisions index the data's vote rows by user position, so summaries
    listing the same users in another order are reordered, and ones listing
    other users are an error (``what`` names the side ``users`` comes from in
    its message).

    Raises
    ------
    ValueError
        The summaries' users are not exactly ``users``.
    """
    post_users = pd.Index(summaries["user"].to_numpy())
    if post_users.equals(users):
        return summaries
    pos = post_users.get_indexer(users) if post_users.is_unique else None
    if pos is None or post_users.size != users.size or np.any(pos < 0):
        missing = users.difference(post_users) if post_users.is_unique else users[:0]
        extra = post_users.difference(users) if post_users.is_unique else post_users[:0]
        raise ValueError(
            f"posterior users do not match the {what}'s users: {len(missing)} user(s) of the "
            f"data are missing from the result (e.g. {list(missing[:3])}), {len(extra)} user(s) "
            f"of the result are not in the data (e.g. {list(extra[:3])}); pass the data the "
            "model was fitted to"
        )
    return summaries.isel(user=pos)
