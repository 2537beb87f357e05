"""The result of a fit as an ArviZ ``xarray.DataTree``: its schema and its one builder.

Every inference method (MAP-EM, NUTS) hands back the same structure, built by
:func:`build_tree`, so that ArviZ functions, the filter and the plots treat
them alike:

root attributes
    Every result: ``attnmodel_result`` = 1 (the marker :func:`validate_tree`
    checks), ``attnmodel_version``, ``method`` (``"em"`` or ``"nuts"``),
    ``family``, ``n_components``, ``eta_star``, ``hdi_prob``, ``mu_spec``
    (JSON: ``{"pairs": [...], "known": {pair: value}, "priors": {pair:
    [alpha, beta, lower, upper]}}``), ``priors`` (JSON: family-parameter prior
    name -> text, and ``mu[pair]`` -> known value or prior) and ``settings``
    (JSON: the method's settings). EM adds ``converged`` (0/1), ``n_iter``,
    ``objective`` and ``best_start``; NUTS adds ``sampler``, ``variant``,
    ``parameterization``, ``chains``, ``draws``, ``tune``, ``seed``.
    Data provenance, when the fit was given it (``provenance=`` of
    :func:`build_tree` and :func:`attnmodel.inference.fitting.fit`):
    ``data_source`` (where the votes were read from, as text) and
    ``data_options`` (JSON: the options they were read with, so that the same
    votes can be read again to filter them). What the data was, whenever the
    builder is given its counts (``counts=``; both methods pass them):
    ``data_fingerprint`` (``"sha256:..."`` of every user's per-pair counts,
    :func:`attnmodel.data.counts.counts_fingerprint`) and ``data_counts``
    (JSON: ``{"users": m, "votes": N, "pairs": {pair: [votes, votes for the
    stronger model]}}``); with the per-user ``n_votes`` of ``attentiveness``
    they let :func:`check_same_data` refuse other data and say what differs.
    ``fit_warnings`` (JSON list of sentences, empty when none): why the fit
    may be degenerate (an estimate at a bound of the family's box, data too
    thin to inform it; :func:`attnmodel.model.checks.fit_warnings`), written
    with the counts and shown by ``summary``.
    ``mu_structure`` (JSON: the structure on ``mu`` across pairs,
    :mod:`attnmodel.model.mu_structure`: ``name``, its settings, ``reason``
    (chosen by the caller or by the data's rule) and, for Bradley-Terry,
    ``models`` and ``pair_models``, each pair's first and second model as
    indices into ``models``); results written before it existed lack it and
    read as ``"independent"``.
    netCDF attributes cannot be bool
    or None, so flags are 0/1 integers and missing values are absent.
``posterior``
    dims ``(chain, draw[, component][, pair][, hyper][, model][, user])``: one
    variable per family parameter, ``mu`` (dim ``pair``, known pairs constant),
    ``mu_hyper`` (dim ``hyper`` = ``mode``, ``concentration``) under
    ``mu_structure="pooled"``, ``theta`` (dim ``model``, the strengths, sum
    zero) under ``"bradley_terry"``, and ``eta``
    (dim ``user``) when per-user draws are stored. The *global parameters* are
    the variables without a ``user`` dim
    (:func:`attnmodel.results.summary.global_vars`).
``attentiveness``
    dims ``user[, ci_bound][, component]``: ``eta_mean``, ``eta_sd``,
    ``eta_hdi``, ``p_above`` (``P(eta_j >= eta_star | votes)``),
    ``p_above_mcse`` (its Monte Carlo standard error), ``log_bf`` (the
    evidence of the user's own votes for ``eta_j >= eta_star``: the log
    Bayes factor of that side of the cut against the other, in nats,
    :mod:`attnmodel.posterior.users`; NUTS: from the posterior and
    population odds averaged over the draws; results written before it was
    stored lack it), ``n_votes`` and, for discrete families,
    ``membership``. EM trees also hold ``eta_map``.
``em_trace`` (EM)
    dim ``iteration``: ``objective``, ``log_likelihood``, ``log_prior``,
    ``step`` and the parameters of every iterate of the best start; vector
    parameters keep their dim (``weights`` is ``(iteration, component)``,
    ``mu`` is ``(iteration, pair)``, ``theta`` ``(iteration, model)``,
    ``mu_hyper`` ``(iteration, hyper)``). ``em_runs`` holds the same for every
    start, dims ``(start, iteration)``, shorter runs padded with NaN.
``leaderboard`` (``mu_structure="bradley_terry"``)
    dim ``model``: ``strength``, ``strength_sd``, ``strength_lower``,
    ``strength_upper`` (:mod:`attnmodel.leaderboard`).
``sample_stats``, ``log_likelihood`` (NUTS)
    The sampler's statistics (``diverging``) and each user's marginal
    log-likelihood (variable ``votes``).

An EM tree (:func:`attnmodel.results.em.em_to_datatree`) stores its exact
per-user summaries and, in ``posterior``, one chain of ``n_draws`` draws: the
global parameters repeated at the EM estimate and ``eta`` drawn exactly from
each user's posterior at that estimate. A NUTS tree
(:func:`attnmodel.inference.nuts.sample_nuts`) stores the sampler's draws and
per-user summaries averaged over them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "RESULT_MARKER",
    "REQUIRED_GROUPS",
    "METHOD_GROUPS",
    "SAMPLE_DIMS",
    "build_tree",
    "is_result",
    "require_result",
    "validate_tree",
    "plain_strings",
    "json_safe",
    "mu_spec_to_json",
    "check_same_data",
    "check_same_fit_data",
]

#: Root attribute that marks a tree as an attnmodel result.
RESULT_MARKER = "attnmodel_result"
#: Groups every result has.
REQUIRED_GROUPS = ("posterior", "attentiveness")
#: Further groups by method.
METHOD_GROUPS = {"em": ("em_trace",), "nuts": ("sample_stats",)}
#: Dims of the draws in ``posterior``.
SAMPLE_DIMS = ("chain", "draw")


# ---------------------------------------------------------------------------
# JSON-safe attributes
# ---------------------------------------------------------------------------


def json_safe(value: Any, *, nonfinite: str | None = "text") -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays, paths, tuples, non-finite floats).

    Mappings and sequences are converted element by element; objects JSON has
    no type for become their text. Non-finite floats become their text
    (``nonfinite="text"``, what result attributes store) or None, JSON's null
    (``nonfinite=None``, what the command line's ``--json`` output prints).
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v, nonfinite=nonfinite) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v, nonfinite=nonfinite) for v in value.tolist()]
    if isinstance(value, np.generic):
        return json_safe(value.item(), nonfinite=nonfinite)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return str(value) if nonfinite == "text" else None
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


# ---------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------


def plain_strings(ds: xr.Dataset) -> xr.Dataset:
    """Text variables and coordinates of ``ds`` as object arrays, whatever their numpy kind.

    Results hold text as Python strings in object arrays, both when built and
    when read back from a file (which may give fixed-width or byte strings).
    """
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


def build_tree(
    method: str,
    family,
    mu_spec,
    priors: str | Mapping[str, Any],
    groups: Mapping[str, xr.Dataset],
    *,
    eta_star: float,
    hdi_prob: float,
    settings: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    counts=None,
    grid=None,
    structure=None,
) -> xr.DataTree:
    """Assemble a result tree and write every root attribute of the schema.

    Parameters
    ----------
    method : str
        The inference method's name (``"em"``, ``"nuts"``).
    family : Family
        The fitted family (its ``name`` and ``n_components`` are written).
    mu_spec : MuSpec
        Pairs, known win rates and priors (written as ``mu_spec``).
    priors : str or mapping
        The ``priors`` attribute, as JSON text or as a mapping to encode.
    groups : mapping of str to xarray.Dataset
        The groups, in order: ``posterior`` and ``attentiveness`` (every
        result has them), then the method's own (``em_trace``,
        ``sample_stats``, ...).
    eta_star, hdi_prob : float
        The cut of ``p_above`` and the mass of the per-user intervals.
    settings : mapping, optional
        The method's settings, written as JSON (``settings``).
    attrs : mapping, optional
        The method's own root attributes (``converged``, ``chains``, ...).
    provenance : mapping, optional
        Where the data came from: ``source`` (written as text to
        ``data_source``) and ``options`` (written as JSON to
        ``data_options``); keys that are absent or None are not written.
    counts : CountTable, optional
        The fitted counts, users in the order of ``attentiveness`` and pairs
        in the order of ``mu_spec``: written as ``data_fingerprint`` and
        ``data_counts``, and checked with the family parameters' estimates
        (mean over ``posterior``) for ``fit_warnings``.
    grid : LogitGrid, optional
        The fit's quadrature (it sets the box of continuous families).
    structure : MuStructure, optional
        The fit's ``mu`` structure: with ``counts``, its warnings about the
        ``mu_hyper`` estimate (mean over ``posterior``) join ``fit_warnings``
        (:func:`attnmodel.model.mu_structure.structure_warnings`).

    Returns
    -------
    xarray.DataTree
        Text variables and coordinates are object arrays, as
        :func:`attnmodel.results.io.load` returns them.

    Raises
    ------
    ValueError
        ``groups`` lacks a group every result has.
    """
    from attnmodel import __version__

    missing = [g for g in REQUIRED_GROUPS if g not in groups]
    if missing:
        raise ValueError(f"a result needs the group(s) {missing}")

    root: dict[str, Any] = {
        RESULT_MARKER: 1,
        "attnmodel_version": __version__,
        "method": str(method),
        "family": family.name,
        "n_components": int(family.n_components),
        "eta_star": float(eta_star),
        "hdi_prob": float(hdi_prob),
        "mu_spec": mu_spec_to_json(mu_spec),
        "priors": priors if isinstance(priors, str) else json.dumps(json_safe(priors)),
        "settings": json.dumps(json_safe(dict(settings or {}))),
    }
    root.update(attrs or {})
    provenance = provenance or {}
    if provenance.get("source") is not None:
        root["data_source"] = str(provenance["source"])
    if provenance.get("options") is not None:
        root["data_options"] = json.dumps(json_safe(provenance["options"]))
    if counts is not None:
        from attnmodel.model.checks import fit_warnings

        root.update(_data_record(counts, groups["attentiveness"]["user"].values, mu_spec.pairs))
        post = groups["posterior"]
        estimate = {
            name: post[name].mean([d for d in SAMPLE_DIMS if d in post[name].dims]).values
            for name in family.param_names
            if name in post
        }
        notes = fit_warnings(family, estimate, counts, grid)
        if structure is not None and "mu_hyper" in post:
            from attnmodel.model.mu_structure import structure_warnings

            hyper = post["mu_hyper"].mean([d for d in SAMPLE_DIMS if d in post["mu_hyper"].dims])
            notes += structure_warnings(structure, hyper.values)
        root["fit_warnings"] = json.dumps(notes)
    tree = {"/": xr.Dataset(attrs=root), **groups}
    return xr.DataTree.from_dict(tree).map_over_datasets(plain_strings)


# ---------------------------------------------------------------------------
# Checking a tree
# ---------------------------------------------------------------------------


def is_result(dt) -> bool:
    """Whether ``dt`` is a DataTree carrying the attnmodel result marker."""
    return isinstance(dt, xr.DataTree) and int(dt.attrs.get(RESULT_MARKER, 0) or 0) == 1


def require_result(dt) -> None:
    """Raise unless ``dt`` is an attnmodel result tree.

    Raises
    ------
    TypeError
        ``dt`` is not an ``xarray.DataTree``.
    ValueError
        The tree lacks the root attribute :data:`RESULT_MARKER`.
    """
    if not isinstance(dt, xr.DataTree):
        raise TypeError(f"expected an attnmodel result (xarray.DataTree), got {type(dt).__name__}")
    if not is_result(dt):
        raise ValueError(
            f"not an attnmodel result: the root attribute {RESULT_MARKER!r} is missing"
        )


def validate_tree(dt, source: str) -> None:
    """Raise ValueError, naming ``source``, unless ``dt`` is a complete result.

    Complete: the marker, the groups every result has and those of its method.
    """
    if not is_result(dt):
        raise ValueError(
            f"{source} is not an attnmodel result (no root attribute {RESULT_MARKER!r})"
        )
    method = dt.attrs.get("method")
    needed = REQUIRED_GROUPS + METHOD_GROUPS.get(str(method), ())
    missing = [g for g in needed if g not in dt.children]
    if missing:
        raise ValueError(
            f"{source} is an incomplete attnmodel result (method {method!r}): "
            f"group(s) {missing} missing"
        )


# ---------------------------------------------------------------------------
# The data a result was fitted to
# ---------------------------------------------------------------------------


def _data_record(counts, users, pairs) -> dict[str, str]:
    """The ``data_fingerprint`` and ``data_counts`` root attributes of counts."""
    from attnmodel.data.counts import counts_fingerprint, pair_totals

    n, s = pair_totals(counts)
    summary = {
        "users": int(counts.n_users),
        "votes": int(n.sum()),
        "pairs": {str(p): [int(a), int(b)] for p, a, b in zip(pairs, n, s, strict=True)},
    }
    return {
        "data_fingerprint": counts_fingerprint(counts, users, pairs),
        "data_counts": json.dumps(summary),
    }


def _differences(
    fit: Mapping[str, Any], other: Mapping[str, Any], other_name: str, fit_name: str = "the fit"
) -> list[str]:
    """What differs between two data records (``counts``, ``users`` -> ``n_votes``)."""
    out = []
    a_users, b_users = fit["users"], other["users"]
    missing = [u for u in b_users if u not in a_users]
    extra = [u for u in a_users if u not in b_users]
    if missing or extra:
        out.append(
            f"users: {len(missing)} of {other_name} are not in {fit_name} (e.g. {missing[:3]}), "
            f"{len(extra)} of {fit_name} are not in {other_name} (e.g. {extra[:3]})"
        )
    changed = [u for u in b_users if u in a_users and a_users[u] != b_users[u]]
    if changed:
        shown = ", ".join(
            f"{u!r}: {a_users[u]} in {fit_name}, {b_users[u]} in {other_name}" for u in changed[:3]
        )
        out.append(f"votes per user differ for {len(changed)} user(s) ({shown})")
    a_pairs, b_pairs = fit["counts"]["pairs"], other["counts"]["pairs"]
    if set(a_pairs) != set(b_pairs):
        out.append(f"pairs: {fit_name} has {sorted(a_pairs)}, {other_name} {sorted(b_pairs)}")
    else:
        for pair in a_pairs:
            (n0, s0), (n1, s1) = a_pairs[pair], b_pairs[pair]
            if (n0, s0) != (n1, s1):
                out.append(
                    f"pair {pair!r}: {fit_name} has {n0} votes ({s0} for the stronger "
                    f"model), {other_name} {n1} ({s1})"
                )
    if not out:
        out.append("the same users, votes per user and per-pair totals, but other per-user counts")
    return out


def _record_of_tree(dt) -> dict[str, Any] | None:
    if "data_fingerprint" not in dt.attrs:
        return None
    att = dt["attentiveness"]
    users = {str(u): int(n) for u, n in zip(att["user"].values, att["n_votes"].values, strict=True)}
    return {
        "fingerprint": str(dt.attrs["data_fingerprint"]),
        "counts": json.loads(dt.attrs["data_counts"]),
        "users": users,
    }


def check_same_data(dt, data, *, allow: str = "allow_other_data=True") -> None:
    """Raise unless ``data`` is the data the result ``dt`` was fitted to.

    Compares the tree's ``data_fingerprint`` with that of ``data``'s counts;
    a tree without one (written before fingerprints) is not checked.

    Parameters
    ----------
    dt : xarray.DataTree
    data : VoteData
    allow : str
        How the caller overrides the check, for the message.

    Raises
    ------
    DataMismatchError
        The data differ; the message names what differs (users, votes per
        user, per-pair totals).
    """
    from attnmodel.errors import DataMismatchError

    fit = _record_of_tree(dt)
    if fit is None:
        return
    given = _data_record(data.counts, data.users, data.pairs)
    if given["data_fingerprint"] == fit["fingerprint"]:
        return
    per_user = data.counts.votes_per_user()
    other = {
        "counts": json.loads(given["data_counts"]),
        "users": {str(u): int(n) for u, n in zip(data.users, per_user, strict=True)},
    }
    raise DataMismatchError(
        "the votes are not those the result was fitted to: "
        + "; ".join(_differences(fit, other, "the votes"))
        + f" (pass {allow} to use them anyway)"
    )


def check_same_fit_data(
    a, b, *, names=("the first result", "the second result"), allow: str = "allow_other_data=True"
) -> None:
    """Raise unless results ``a`` and ``b`` were fitted to the same data (when both record it).

    Raises
    ------
    DataMismatchError
        The fingerprints differ; the message names the two results and what differs.
    """
    from attnmodel.errors import DataMismatchError

    ra, rb = _record_of_tree(a), _record_of_tree(b)
    if ra is None or rb is None or ra["fingerprint"] == rb["fingerprint"]:
        return
    diffs = _differences(ra, rb, names[1], names[0])
    raise DataMismatchError(
        f"{names[0]} and {names[1]} were fitted to different votes: "
        + "; ".join(diffs)
        + f" (pass {allow} to compare them anyway)"
    )
