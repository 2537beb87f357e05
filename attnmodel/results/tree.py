"""The result of a fit as an ArviZ ``xarray.DataTree``, and its file format.

Both fitters (MAP-EM and NUTS) hand back the same structure, so that ArviZ
functions, the filter and the plots treat them alike:

root attributes
    ``attnmodel_result`` = 1 (the marker :func:`load` checks),
    ``attnmodel_version``, ``method`` (``"em"`` or ``"nuts"``), ``family``,
    ``n_components``, ``eta_star``, ``hdi_prob``, ``mu_spec`` (JSON:
    ``{"pairs": [...], "known": {pair: value}, "priors": {pair: [alpha, beta,
    lower, upper]}}``), ``priors`` (JSON: family-parameter prior name -> text)
    and ``settings`` (JSON). EM adds ``converged`` (0/1), ``n_iter``,
    ``objective``; NUTS adds ``sampler``, ``variant``, ``chains``, ``draws``,
    ``tune``, ``seed``. netCDF attributes cannot be bool or None, so flags are
    0/1 integers and missing values are absent.
``posterior``
    dims ``(chain, draw[, component][, pair][, user])``: one variable per
    family parameter, ``mu`` (dim ``pair``, known pairs constant) and ``eta``
    (dim ``user``) when per-user draws are stored. The *global parameters* are
    the variables without a ``user`` dim (:func:`global_vars`).
``attentiveness``
    dims ``user[, ci_bound][, component]``: ``eta_mean``, ``eta_sd``,
    ``eta_hdi``, ``p_above`` (``P(eta_j >= eta_star | votes)``),
    ``p_above_mcse`` (its Monte Carlo standard error), ``n_votes`` and, for
    discrete families, ``membership``. EM trees also hold ``eta_map``.
``em_trace`` (EM)
    dim ``iteration``: ``objective``, ``log_likelihood``, ``log_prior``,
    ``step`` and the parameters of every iterate of the best start; vector
    parameters keep their dim (``weights`` is ``(iteration, component)``,
    ``mu`` is ``(iteration, pair)``). ``em_runs`` holds the same for every
    start, dims ``(start, iteration)``, shorter runs padded with NaN.
``sample_stats``, ``log_likelihood`` (NUTS)
    The sampler's statistics (``diverging``) and each user's marginal
    log-likelihood (variable ``votes``).

An EM tree stores its exact per-user summaries and, in ``posterior``, one
chain of ``n_draws`` draws: the global parameters repeated at the EM estimate
and ``eta`` drawn exactly from each user's posterior at that estimate.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from attnmodel.posterior.conditional import AtomCells, GridCells
from attnmodel.data.io import atomic_write

__all__ = [
    "RESULT_MARKER",
    "em_to_datatree",
    "save",
    "load",
    "summarize",
    "global_vars",
    "user_table",
    "flat_globals",
    "convergence_table",
    "diagnostic_checks",
    "family_params",
    "mu_spec_to_json",
    "draw_eta",
    "n_divergences",
]

#: Root attribute that marks a tree as an attnmodel result.
RESULT_MARKER = "attnmodel_result"
#: Groups every result has.
REQUIRED_GROUPS = ("posterior", "attentiveness")
#: Further groups by method.
METHOD_GROUPS = {"em": ("em_trace",), "nuts": ("sample_stats",)}
#: ``store_eta="auto"`` stores ``eta`` draws up to this many numbers (160 MB of float64).
AUTO_ETA_LIMIT = 20_000_000
#: Users whose draws are generated at once (bounds the sampler's temporary memory).
_DRAW_CHUNK = 2_000_000
#: Suffixes :func:`save` and :func:`load` understand.
SUFFIXES = (".nc", ".zarr")
SAMPLE_DIMS = ("chain", "draw")


# ---------------------------------------------------------------------------
# JSON-safe attributes
# ---------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Plain JSON types for settings (numpy scalars and arrays, paths, tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def mu_spec_to_json(spec) -> str:
    """The ``mu_spec`` root attribute: pairs, known values and priors of a MuSpec."""
    known = {p: float(v) for p, v in zip(spec.pairs, spec.known, strict=True) if np.isfinite(v)}
    priors = {
        p: [float(pr.alpha), float(pr.beta), float(pr.lower), float(pr.upper)]
        for p, pr in zip(spec.pairs, spec.priors, strict=True)
        if pr is not None
    }
    return json.dumps({"pairs": list(spec.pairs), "known": known, "priors": priors})


def _priors_json(em_result) -> str:
    """The ``priors`` root attribute of an EM fit, in the layout NUTS results use.

    Family-parameter priors (name -> text) when the fit maximised the PyMC
    model's prior (``problem.prior``), and ``mu[pair]`` -> known value or prior.
    """
    prior = getattr(em_result.problem, "prior", None)
    out = {str(k): str(v) for k, v in (getattr(prior, "priors", None) or {}).items()}
    out.update({f"mu[{p}]": d for p, d in em_result.mu_spec.describe().items()})
    return json.dumps(out)


# ---------------------------------------------------------------------------
# EM result -> tree
# ---------------------------------------------------------------------------


def _user_coord(users) -> np.ndarray:
    """User ids as a numpy array: integers and floats keep their kind, anything else is object."""
    arr = np.asarray(users)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        return arr.astype(np.float64)
    return np.asarray(list(users), dtype=object)


def _node_masses(result) -> np.ndarray:
    """Posterior mass of each node (atom or grid node) per distinct count row, (R, G)."""
    post = getattr(result.estep_, "posterior", None)
    if post is None:
        post = result.problem.e_step(result.state_, posterior=True).posterior
    return np.asarray(post, dtype=np.float64)


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
    cell would add ``h^2 / 12`` to the variance in ``u``).

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
    post = _node_masses(result)
    user_row = np.asarray(result.data.counts.user_row, dtype=np.int64)
    m = user_row.size
    family = result.family
    if family.discrete:
        cells = AtomCells(post, family.components(result.params_)[1])
    else:
        cells = GridCells(result.problem.grid, post)
    # Users are visited in the order of their rows: searchsorted is several
    # times faster on keys that rise than on keys scattered over all rows.
    by_row = np.argsort(user_row, kind="stable")
    out = np.empty((n_draws, m))
    step = max(1, _DRAW_CHUNK // max(n_draws, 1))
    for start in range(0, m, step):
        users = by_row[start : start + step]
        rows = np.repeat(user_row[users], n_draws)
        eta = cells.sample(rows, rng)
        out[:, users] = eta.reshape(-1, n_draws).T
    return out


def _trace_dataset(frame: pd.DataFrame, family, pairs) -> xr.Dataset:
    """One EM history (rows = iterates) as a Dataset with dim ``iteration``."""
    n = len(frame)
    used = {"iteration"}
    data: dict[str, Any] = {}
    for name in ("objective", "log_likelihood", "log_prior"):
        if name in frame:
            data[name] = ("iteration", frame[name].to_numpy(dtype=np.float64))
            used.add(name)
    if "step" in frame:
        data["step"] = ("iteration", np.asarray(frame["step"].astype(str), dtype=object))
        used.add("step")
    for key, dims in family.param_dims.items():
        if dims:
            cols = [f"{key}[{k}]" for k in range(family.n_components)]
            data[key] = (("iteration", "component"), frame[cols].to_numpy(dtype=np.float64))
            used.update(cols)
        else:
            data[key] = ("iteration", frame[key].to_numpy(dtype=np.float64))
            used.add(key)
    mu_cols = [f"mu[{p}]" for p in pairs]
    if all(c in frame for c in mu_cols):
        data["mu"] = (("iteration", "pair"), frame[mu_cols].to_numpy(dtype=np.float64))
        used.update(mu_cols)
    # Columns added to the history later keep a valid variable name.
    for col in frame.columns:
        if col not in used and pd.api.types.is_numeric_dtype(frame[col]):
            name = "".join(ch if ch.isalnum() else "_" for ch in str(col))
            data[name] = ("iteration", frame[col].to_numpy(dtype=np.float64))
    coords: dict[str, Any] = {"iteration": np.arange(n), "pair": list(pairs)}
    if any(family.param_dims.values()):
        coords["component"] = np.arange(family.n_components)
    return xr.Dataset(data, coords=coords)


def _runs_dataset(runs, family, pairs) -> xr.Dataset:
    """Every start's history, dims ``(start, iteration)``, padded with NaN (``step``: "")."""
    sets = [_trace_dataset(r, family, pairs) for r in runs]
    longest = max(ds.sizes["iteration"] for ds in sets)
    padded = []
    for ds in sets:
        pad = longest - ds.sizes["iteration"]
        if pad:
            ds = ds.reindex(iteration=np.arange(longest))
            if "step" in ds:
                step = ds["step"].to_numpy()
                step[-pad:] = ""
                ds["step"] = ("iteration", step.astype(object))
        padded.append(ds)
    out = xr.concat(padded, dim="start", data_vars="all", coords="minimal", compat="override")
    return out.assign_coords(start=np.arange(len(sets)))


def em_to_datatree(
    em_result,
    *,
    eta_star: float = 0.5,
    hdi_prob: float = 0.94,
    n_draws: int = 500,
    store_eta: bool | str = "auto",
    seed: int | None = 0,
) -> xr.DataTree:
    """The shared result structure from a MAP-EM fit.

    Parameters
    ----------
    em_result : EMResult
    eta_star : float
        Cut of ``p_above = P(eta_j >= eta_star | votes)``.
    hdi_prob : float
        Mass of the per-user highest-density intervals.
    n_draws : int
        Draws in the single chain of ``posterior``.
    store_eta : {"auto", True, False}
        Store per-user ``eta`` draws in ``posterior``. ``"auto"`` stores them
        when ``n_users * n_draws <= 2e7`` (160 MB of float64); above that the
        exact per-user summaries in ``attentiveness`` are all the tree holds.
    seed : int, optional
        Seeds the ``eta`` draws.

    Returns
    -------
    xarray.DataTree
        See the module docstring. ``attentiveness`` is exact (``p_above_mcse``
        is 0).
    """
    from attnmodel import __version__
    from attnmodel.posterior.users import user_posterior

    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    n_draws = int(n_draws)
    if store_eta not in ("auto", True, False):
        raise ValueError(f"store_eta must be 'auto', True or False, got {store_eta!r}")
    family = em_result.family
    spec = em_result.mu_spec
    pairs = list(spec.pairs)
    data = em_result.data
    users = _user_coord(data.users)
    m = users.size

    post = user_posterior(em_result, eta_star=eta_star, hdi_prob=hdi_prob)
    attn = post.drop_attrs().assign_coords(user=users)
    attn["p_above_mcse"] = ("user", np.zeros(m))
    attn["p_above"].attrs["eta_star"] = float(eta_star)
    attn["eta_hdi"].attrs["hdi_prob"] = float(hdi_prob)

    k = family.n_components
    shape = (1, n_draws)
    posterior: dict[str, Any] = {}
    for key, dims in family.param_dims.items():
        val = np.asarray(em_result.params_[key], dtype=np.float64)
        posterior[key] = (
            ("chain", "draw", *dims),
            np.broadcast_to(val, (*shape, *val.shape)).copy(),
        )
    mu = em_result.mu_.reindex(pairs).to_numpy(dtype=np.float64)
    posterior["mu"] = (("chain", "draw", "pair"), np.broadcast_to(mu, (*shape, mu.size)).copy())
    keep_eta = store_eta is True or (store_eta == "auto" and m * n_draws <= AUTO_ETA_LIMIT)
    if keep_eta:
        posterior["eta"] = (("chain", "draw", "user"), draw_eta(em_result, n_draws, seed)[None])
    coords: dict[str, Any] = {
        "chain": [0],
        "draw": np.arange(n_draws),
        "pair": pairs,
        "user": users,
    }
    if any(family.param_dims.values()):
        coords["component"] = np.arange(k)
    post_ds = xr.Dataset(posterior, coords=coords)
    if not keep_eta:
        post_ds = post_ds.drop_vars("user")

    settings = dict(em_result.settings)
    settings.update({"n_draws": n_draws, "store_eta": keep_eta, "draw_seed": seed})
    root = xr.Dataset(
        attrs={
            RESULT_MARKER: 1,
            "attnmodel_version": __version__,
            "method": "em",
            "family": family.name,
            "n_components": int(k),
            "eta_star": float(eta_star),
            "hdi_prob": float(hdi_prob),
            "mu_spec": mu_spec_to_json(spec),
            "priors": _priors_json(em_result),
            "settings": json.dumps(_json_safe(settings)),
            "converged": int(bool(em_result.converged_)),
            "n_iter": int(em_result.n_iter_),
            "objective": float(em_result.objective_),
            "best_start": int(em_result.best_start_),
        }
    )
    groups = {
        "/": root,
        "posterior": post_ds,
        "attentiveness": attn,
        "em_trace": _trace_dataset(em_result.history_, family, pairs),
    }
    if len(em_result.runs_) > 0:
        groups["em_runs"] = _runs_dataset(em_result.runs_, family, pairs)
    return xr.DataTree.from_dict(groups).map_over_datasets(_plain_strings)


# ---------------------------------------------------------------------------
# Reading a tree
# ---------------------------------------------------------------------------


def _is_result(dt) -> bool:
    return isinstance(dt, xr.DataTree) and int(dt.attrs.get(RESULT_MARKER, 0) or 0) == 1


def _require_result(dt) -> None:
    if not isinstance(dt, xr.DataTree):
        raise TypeError(f"expected an attnmodel result (xarray.DataTree), got {type(dt).__name__}")
    if not _is_result(dt):
        raise ValueError(
            f"not an attnmodel result: the root attribute {RESULT_MARKER!r} is missing"
        )


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


def _point(da: xr.DataArray, method: str) -> float:
    # EM draws and known mu repeat one value: take it exactly (a mean could be an ulp off).
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
        ``eta_star``.
    """
    _require_result(dt)
    method = dt.attrs["method"]
    flat = flat_globals(dt)
    fam_names = set(family_params(dt))
    params, mu, params_hdi = {}, {}, {}
    for name, da in flat.items():
        base = name.split("[", 1)[0]
        if base == "mu":
            mu[name[3:-1]] = _point(da, method)
        elif base in fam_names:
            params[name] = _point(da, method)
            if method != "em":
                params_hdi[name] = _hdi(da, float(dt.attrs.get("hdi_prob", 0.94)))
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
    }


def _hdi(da: xr.DataArray, prob: float) -> tuple[float, float]:
    """Highest-density interval of one scalar parameter's draws."""
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
        ``eta_hdi_upper``, ``p_above``, ``p_above_mcse``, ``n_votes``.
    """
    _require_result(dt)
    a = dt["attentiveness"]
    hdi = a["eta_hdi"]
    return pd.DataFrame(
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


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"{str(path)!r}: an attnmodel result is saved as .nc (netCDF) or .zarr, "
            f"not {suffix or 'a name without suffix'!r}"
        )
    return suffix


def save(dt: xr.DataTree, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write a result to ``.nc`` (netCDF via h5netcdf) or ``.zarr`` (a directory).

    The tree is written to a temporary sibling first and moved into place
    once complete, so a crash never leaves a partial result under ``path``;
    with ``force`` an existing result is replaced only after the new one is
    complete.

    Parameters
    ----------
    dt : xarray.DataTree
        An attnmodel result.
    path : path-like
        Target ending in ``.nc`` or ``.zarr``.
    force : bool
        Replace an existing file or directory.

    Returns
    -------
    pathlib.Path
    """
    _require_result(dt)
    target = Path(path)
    suffix = _suffix(target)
    if target.exists() and not force:
        raise FileExistsError(f"{str(target)!r} exists; pass force=True to replace it")
    if suffix == ".nc":
        if target.is_dir():
            raise IsADirectoryError(f"{str(target)!r} is a directory, not a netCDF file")
        return atomic_write(
            target, lambda tmp: dt.to_netcdf(tmp, engine="h5netcdf", mode="w"), force=force
        )
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{str(target)!r} is a file, not a zarr store")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        store = tmp_dir / "store.zarr"
        dt.to_zarr(store, mode="w", consolidated=False)
        if target.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.replace(target, old / "store.zarr")
        os.replace(store, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _plain_strings(ds: xr.Dataset) -> xr.Dataset:
    """Text variables and coordinates as object arrays, whatever the file format gave."""
    changes = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in "UST":
            vals = var.values
            if vals.dtype.kind == "S":
                vals = np.char.decode(vals, "utf-8")
            changes[name] = var.copy(data=vals.astype(object))
    if not changes:
        return ds
    coords = {k: v for k, v in changes.items() if k in ds.coords}
    data = {k: v for k, v in changes.items() if k not in ds.coords}
    return ds.assign_coords(coords).assign(data)


def load(path: str | os.PathLike) -> xr.DataTree:
    """Read a result saved by :func:`save` fully into memory.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` has another suffix, cannot be read, or is not an attnmodel
        result (no marker, or a required group missing); the message names
        the file.
    """
    source = Path(path)
    suffix = _suffix(source)
    if not source.exists():
        raise FileNotFoundError(f"{str(source)!r} does not exist")
    try:
        if suffix == ".nc":
            with xr.open_datatree(source, engine="h5netcdf") as opened:
                dt = opened.load()
        else:
            with xr.open_datatree(source, engine="zarr", consolidated=False) as opened:
                dt = opened.load()
    except Exception as err:  # the backends raise many types for a file they cannot read
        raise ValueError(
            f"{str(source)!r} could not be read as a {suffix} attnmodel result: {err}"
        ) from err
    if not _is_result(dt):
        raise ValueError(
            f"{str(source)!r} is not an attnmodel result (no root attribute {RESULT_MARKER!r})"
        )
    method = dt.attrs.get("method")
    needed = REQUIRED_GROUPS + METHOD_GROUPS.get(str(method), ())
    missing = [g for g in needed if g not in dt.children]
    if missing:
        raise ValueError(
            f"{str(source)!r} is an incomplete attnmodel result (method {method!r}): "
            f"group(s) {missing} missing"
        )
    # netCDF returns integer attributes as numpy scalars; make them plain.
    attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in dt.attrs.items()}
    out = dt.map_over_datasets(_plain_strings)
    out.attrs = attrs
    return out
