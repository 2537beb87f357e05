"""The result tree of a MAP-EM fit (:class:`~attnmodel.inference.em.EMResult` -> tree).

The tree holds the EM estimate as one chain of repeated draws of the global
parameters, exact per-user summaries at it (:mod:`attnmodel.posterior.users`)
with exact ``eta`` draws, and the optimiser's history; the schema is in
:mod:`attnmodel.results.tree`, whose :func:`~attnmodel.results.tree.build_tree`
assembles it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from attnmodel.leaderboard import laplace_strengths, leaderboard_dataset, normal_interval
from attnmodel.model.mu_structure import (
    BradleyTerryMu,
    PooledMu,
    describe_mu_priors,
    mu_structure_json,
)
from attnmodel.posterior.users import draw_eta, user_posterior
from attnmodel.results.tree import build_tree

__all__ = ["AUTO_ETA_LIMIT", "em_to_datatree"]

#: ``store_eta="auto"`` stores ``eta`` draws up to this many numbers (160 MB of float64).
AUTO_ETA_LIMIT = 20_000_000


def _priors_json(em_result) -> str:
    """The ``priors`` root attribute of an EM fit, in the layout NUTS results use.

    Family-parameter priors (name -> text) when the fit maximised the PyMC
    model's prior (``problem.prior``), and ``mu[pair]`` -> known value or prior.
    """
    prior = getattr(em_result.problem, "prior", None)
    out = {str(k): str(v) for k, v in (getattr(prior, "priors", None) or {}).items()}
    out.update(describe_mu_priors(em_result.mu_structure, em_result.mu_spec))
    return json.dumps(out)


def _user_coord(users) -> np.ndarray:
    """User ids as a numpy array: integers and floats keep their kind, anything else is object."""
    arr = np.asarray(users)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        return arr.astype(np.float64)
    return np.asarray(list(users), dtype=object)


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
    extra_coords: dict[str, Any] = {}
    for name, dim in (("theta", "model"), ("mu_hyper", "hyper")):
        cols = [c for c in frame.columns if str(c).startswith(f"{name}[")]
        if cols:
            data[name] = (("iteration", dim), frame[cols].to_numpy(dtype=np.float64))
            extra_coords[dim] = [str(c)[len(name) + 1 : -1] for c in cols]
            used.update(cols)
    # Columns added to the history later keep a valid variable name.
    for col in frame.columns:
        if col not in used and pd.api.types.is_numeric_dtype(frame[col]):
            name = "".join(ch if ch.isalnum() else "_" for ch in str(col))
            data[name] = ("iteration", frame[col].to_numpy(dtype=np.float64))
    coords: dict[str, Any] = {"iteration": np.arange(n), "pair": list(pairs), **extra_coords}
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
    summaries: xr.Dataset | None = None,
    provenance: Mapping[str, Any] | None = None,
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
    summaries : xarray.Dataset, optional
        The per-user summaries of :func:`attnmodel.posterior.users.user_posterior`
        at ``eta_star`` and ``hdi_prob``, users in the order of the fit's
        data, when already computed (otherwise they are computed here).
    provenance : mapping, optional
        Where the data came from; see :func:`attnmodel.results.tree.build_tree`.

    Returns
    -------
    xarray.DataTree
        See :mod:`attnmodel.results.tree`. ``attentiveness`` is exact
        (``p_above_mcse`` is 0).
    """
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    n_draws = int(n_draws)
    if store_eta not in ("auto", True, False):
        raise ValueError(f"store_eta must be 'auto', True or False, got {store_eta!r}")
    family = em_result.family
    spec = em_result.mu_spec
    pairs = list(spec.pairs)
    users = _user_coord(em_result.data.users)
    m = users.size

    if summaries is None:
        summaries = user_posterior(em_result, eta_star=eta_star, hdi_prob=hdi_prob)
    attn = summaries.drop_attrs().assign_coords(user=users)
    attn["p_above_mcse"] = ("user", np.zeros(m))
    attn["p_above"].attrs["eta_star"] = float(eta_star)
    attn["eta_hdi"].attrs["hdi_prob"] = float(hdi_prob)

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
    structure = em_result.mu_structure
    extra_coords: dict[str, Any] = {}
    hyper = em_result.mu_hyper_
    if isinstance(structure, BradleyTerryMu):
        posterior["theta"] = (
            ("chain", "draw", "model"),
            np.broadcast_to(hyper, (*shape, hyper.size)).copy(),
        )
        extra_coords["model"] = list(structure.models)
    elif isinstance(structure, PooledMu):
        posterior["mu_hyper"] = (
            ("chain", "draw", "hyper"),
            np.broadcast_to(hyper, (*shape, hyper.size)).copy(),
        )
        extra_coords["hyper"] = list(structure.hyper_names)
    ties = getattr(em_result, "ties_", None)
    if ties is not None:
        # Ties modelled: kappa and the population of tie propensities (attnmodel.model.ties).
        for key, value in ties.flat().items():
            posterior[key] = (("chain", "draw"), np.full(shape, float(value)))
    keep_eta = store_eta is True or (store_eta == "auto" and m * n_draws <= AUTO_ETA_LIMIT)
    if keep_eta:
        posterior["eta"] = (("chain", "draw", "user"), draw_eta(em_result, n_draws, seed)[None])
    coords: dict[str, Any] = {
        "chain": [0],
        "draw": np.arange(n_draws),
        "pair": pairs,
        "user": users,
        **extra_coords,
    }
    if any(family.param_dims.values()):
        coords["component"] = np.arange(family.n_components)
    post_ds = xr.Dataset(posterior, coords=coords)
    if not keep_eta:
        post_ds = post_ds.drop_vars("user")

    settings = dict(em_result.settings)
    settings.update({"n_draws": n_draws, "store_eta": keep_eta, "draw_seed": seed})
    settings["ties"] = "model" if ties is not None else "drop"
    groups = {
        "posterior": post_ds,
        "attentiveness": attn,
        "em_trace": _trace_dataset(em_result.history_, family, pairs),
    }
    if len(em_result.runs_) > 0:
        groups["em_runs"] = _runs_dataset(em_result.runs_, family, pairs)
    if isinstance(structure, BradleyTerryMu):
        sd = laplace_strengths(em_result.problem, em_result.state_)
        groups["leaderboard"] = leaderboard_dataset(
            structure.models, hyper, sd, *normal_interval(hyper, sd, hdi_prob)
        )
    own = {
        "converged": int(bool(em_result.converged_)),
        "n_iter": int(em_result.n_iter_),
        "objective": float(em_result.objective_),
        "best_start": int(em_result.best_start_),
        "mu_structure": mu_structure_json(structure, em_result.mu_structure_reason),
    }
    cuts = {"eta_star": eta_star, "hdi_prob": hdi_prob}
    return build_tree(
        "em", family, spec, _priors_json(em_result), groups,
        settings=settings, attrs=own, provenance=provenance, counts=em_result.data.counts,
        grid=em_result.problem.grid, structure=structure,
        **cuts
    )  # fmt: skip
