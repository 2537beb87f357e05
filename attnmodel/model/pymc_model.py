"""The hierarchical attentiveness model, stated once in PyMC.

For data with users ``j``, pairs ``k``, counts ``n_jk`` and wins ``s_jk`` of the
stronger model::

    mu_k        ~ prior on (1/2, 1]               (or known; or a structure across
                                                   pairs, attnmodel.model.mu_structure)
    theta       ~ prior of the family's parameters (priors.default_priors by default)
    eta_j       ~ P_eta(theta)
    s_jk | eta_j ~ Binomial(n_jk, 1/2 + eta_j (mu_k - 1/2))

:func:`build_model` writes it in two variants that share every prior:

``"latent"``
    ``eta[user]`` is a random variable of the model: the model as one reads it.
    For discrete families the component indicator is summed out per user.
``"marginal"``
    ``eta`` is integrated out per distinct count row, by the same logit-space
    quadrature MAP-EM uses (atoms for discrete families), and each row's
    log-marginal enters, weighted by the number of users sharing it, as a
    potential. The sampler then moves only the global parameters; per-user
    ``eta`` draws are made afterwards from their exact conditional given each
    posterior draw (:mod:`attnmodel.inference.nuts`).

The priors are those of :mod:`attnmodel.model.priors`, whose numpy log densities
(:class:`attnmodel.model.priors.ModelPrior`) MAP-EM adds to the likelihood: so EM
maximises the same posterior that NUTS samples, without building this model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from attnmodel.data.counts import CountTable
from attnmodel.model.families import FAMILIES, Family, get_family
from attnmodel.model.grid import LogitGrid, make_logit_grid
from attnmodel.model.identified import identified_globals
from attnmodel.model.mu_structure import IndependentMu, describe_mu_priors, resolve_mu_structure
from attnmodel.model.priors import MuSpec, Prior, resolve_mu, resolve_priors
from attnmodel.model.pymc_mu import mu_rv, structured_mu

__all__ = ["AttnModel", "build_model"]

VARIANTS = ("marginal", "latent")
PARAMETERIZATIONS = ("auto", "identified", "standard")


def _binomial_log_const(counts: CountTable) -> np.ndarray:
    """``sum_k log C(n_k, s_k)`` per distinct row, shape (R,)."""
    from scipy.special import gammaln

    n, s = counts.entry_n.astype(float), counts.entry_s.astype(float)
    c = gammaln(n + 1) - gammaln(s + 1) - gammaln(n - s + 1)
    return counts.row_sum(c)


# -- the model ------------------------------------------------------------------


@dataclass
class AttnModel:
    """A built model and what is needed to read its draws.

    Attributes
    ----------
    model : pymc.Model
    family : Family
    mu_spec : MuSpec
    counts : CountTable
    grid : LogitGrid or None
    variant : str
    priors : dict
        Family parameter name -> :class:`Prior` (defaults filled in).
    global_names : list of str
        Names of the global variables, as in the result's ``posterior`` group.
    """

    model: pm.Model
    family: Family
    mu_spec: MuSpec
    counts: CountTable
    grid: LogitGrid | None
    variant: str
    priors: dict[str, Prior]
    users: Any
    global_names: list[str]
    parameterization: str = "standard"
    mu_structure: Any = None
    mu_structure_reason: str = ""

    def priors_json(self) -> str:
        """Family priors and ``mu`` priors as a JSON object of strings."""
        out = {k: str(v) for k, v in self.priors.items()}
        out.update(describe_mu_priors(self.mu_structure, self.mu_spec))
        return json.dumps(out)


def build_model(
    data,
    family: str | Family = "beta",
    *,
    mu: float | Mapping[str, float] | None = None,
    mu_prior=None,
    priors: Mapping[str, Prior] | None = None,
    mu_structure=None,
    n_components: int | None = None,
    variant: str = "marginal",
    parameterization: str = "auto",
    grid: LogitGrid | None = None,
    likelihood: bool = True,
) -> AttnModel:
    """Build the hierarchical model for ``data``.

    Parameters
    ----------
    data : VoteData
    family : str or Family
    mu, mu_prior
        Known ``mu`` (a number or a per-pair mapping) and/or the prior of the
        unknown ones, as in :func:`attnmodel.fit_em`.
    priors : mapping of str to Prior, or "flat", optional
        Priors of the family's parameters, read by
        :func:`attnmodel.model.priors.resolve_priors`: those not given take the
        weakly informative defaults of :func:`attnmodel.model.priors.default_priors`;
        ``"flat"`` makes them flat on the admissible box (Dirichlet(1) for weights).
    mu_structure : str or structure, optional
        Structure on ``mu`` across pairs, as in :func:`attnmodel.fit_em`
        (:mod:`attnmodel.model.mu_structure`; None or ``"auto"`` chooses from
        the data). Pooled adds ``mu_pop_mode``, ``mu_pop_concentration`` and
        their stack ``mu_hyper`` (dims ``hyper``); Bradley-Terry adds ``theta``
        (dims ``model``) and makes ``mu`` deterministic.
    n_components : int, optional
    variant : {"marginal", "latent"}
    parameterization : {"auto", "identified", "standard"}
        Coordinates the sampler moves in. ``"identified"`` (what ``"auto"`` picks
        for the marginal variant of the beta, two_point and k_point families when
        every ``mu`` is unknown and independent) samples the quantities the votes determine
        (moments or atoms of ``eta (2 mu - 1)``, ratios between pairs) and the
        overall scale within the range they leave; the prior is the same, carried
        over with the Jacobian of the change of variables. ``"standard"`` samples
        the family parameters and ``mu`` themselves.
    grid : LogitGrid, optional
        Quadrature of the marginal variant; built from the data when omitted.
    likelihood : bool
        False builds the priors alone.

    Returns
    -------
    AttnModel
        ``.model`` is the ``pymc.Model``; coords ``user`` (input ids), ``pair``
        and, for mixtures, ``component``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    ties = bool(getattr(data.counts, "has_ties", False))
    if ties and (variant != "marginal" or parameterization == "identified"):
        raise ValueError(
            "votes with ties as evidence (ties='model') are modelled by the marginal "
            "variant in the standard parameterization"
        )
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
        )
    fam = get_family(family, n_components)
    counts = data.counts
    spec = resolve_mu(data.pairs, mu, mu_prior)
    structure, structure_reason = resolve_mu_structure(mu_structure, data, mu, mu_prior)
    independent = isinstance(structure, IndependentMu)
    if ties and fam.discrete:
        raise ValueError(
            f"ties='model' needs a continuous family (beta, beta_mixture, "
            f"logistic_normal_mixture), got {fam.name!r}"
        )
    if not fam.discrete and grid is None:
        # With ties as evidence, they narrow a user's posterior too (as in MAP-EM).
        votes = counts.entry_n if counts.entry_t is None else counts.entry_n + counts.entry_t
        grid = make_logit_grid(int(counts.row_sum(votes.astype(np.float64)).max()))
    if fam.discrete:
        grid = None
    chosen = resolve_priors(fam, grid, priors)
    users = data.users
    coords = {"pair": list(spec.pairs)}
    if fam.has_components:
        coords["component"] = list(range(fam.n_components))
    if variant == "latent" and likelihood:
        coords["user"] = list(users)
    unknown = spec.unknown
    identified = (
        variant == "marginal"
        and not ties
        and parameterization != "standard"
        and unknown.size == len(spec.pairs)
        and fam.identified
        and independent
    )
    if parameterization == "identified" and not identified:
        names = [name for name, cls in FAMILIES.items() if cls.identified]
        raise ValueError(
            "the identified parameterization needs the marginal variant, a family among "
            f"{tuple(names)} and every mu unknown and independent"
        )
    with pm.Model(coords=coords) as model:
        feasible = None
        if identified:
            params, mu_t, feasible = identified_globals(fam, grid, chosen, spec)
        elif not independent:
            params = fam.pymc_params(grid, chosen)
            mu_t, structure_names = structured_mu(structure, spec, model)
        else:
            params = fam.pymc_params(grid, chosen)
            mu_t = _mu_tensor(spec, unknown, model)
        if ties and likelihood:
            from attnmodel.model.pymc_ties import tie_potential

            tie_potential(fam, params, mu_t, counts, grid)
        elif not likelihood:
            pass
        elif variant == "marginal":
            _marginal_potential(fam, params, mu_t, counts, grid, spec, feasible)
        else:
            _latent_likelihood(fam, params, mu_t, data, spec)
    names = list(fam.param_names) + ["mu"]
    if not independent:
        names += structure_names
    if ties:
        from attnmodel.model.pymc_ties import TIE_NAMES

        names += list(TIE_NAMES)
    return AttnModel(
        model,
        fam,
        spec,
        counts,
        grid,
        variant,
        chosen,
        users,
        names,
        "identified" if identified else "standard",
        structure,
        structure_reason,
    )


def _mu_tensor(spec: MuSpec, unknown: np.ndarray, model: pm.Model):
    pairs = spec.pairs
    if unknown.size == len(pairs):
        return mu_rv("mu", [spec.priors[k] for k in unknown], "pair")
    if unknown.size == 0:
        return pm.Deterministic("mu", pt.as_tensor_variable(spec.known.copy()), dims="pair")
    model.add_coord("pair_unknown", [pairs[k] for k in unknown])
    free = mu_rv("mu_unknown", [spec.priors[k] for k in unknown], "pair_unknown")
    full = pt.set_subtensor(pt.as_tensor_variable(spec.known.copy())[unknown], free)
    return pm.Deterministic("mu", full, dims="pair")


def _pair_log_probs_tensor(eta, one_minus_eta, mu):
    """``log g`` and ``log(1 - g)`` per (pair, node) as tensors (see ``grid.pair_log_probs``)."""
    half = 0.5 * one_minus_eta[None, :]
    m = mu[:, None]
    return pt.log(half + eta[None, :] * m), pt.log(half + eta[None, :] * (1.0 - m))


def _marginal_potential(fam, params, mu_t, counts, grid, spec, feasible=None) -> None:
    from attnmodel.model.kernels import fused_pays
    from attnmodel.model.ops import marginal_votes, marginal_votes_mu

    const = _binomial_log_const(counts)
    # Users per distinct row, as data: a model built on a table that lists every
    # possible row (with zero weights allowed) serves many data sets with one
    # compilation (``pm.set_data({"row_weight": ...})``), as calibration checks need.
    weight = pm.Data("row_weight", counts.row_weight.astype(np.float64))
    if fam.discrete:
        log_mass, loc = fam.pymc_atoms(params)
        log_g, log_1mg = _pair_log_probs_tensor(loc, 1.0 - loc, mu_t)
    else:
        log_mass = grid.log_weight + fam.pymc_log_density_logit(params, grid.u)
        if spec.unknown.size == 0:
            from attnmodel.model.grid import pair_log_probs

            log_g, log_1mg = (
                pt.as_tensor_variable(x)
                for x in pair_log_probs(grid.eta, grid.one_minus_eta, spec.known)
            )
        elif fused_pays(counts, grid.size):
            log_g = None
        else:
            log_g, log_1mg = _pair_log_probs_tensor(
                pt.as_tensor_variable(grid.eta), pt.as_tensor_variable(grid.one_minus_eta), mu_t
            )
    # The E-step kernel gives the log-likelihood and, by Fisher's identity, its
    # gradient in one pass over the rows (see attnmodel.model.ops).
    if log_g is None:
        # log g formed inside the kernel, on the nodes the rows reach, and the
        # gradient in mu summed there: no (pairs x nodes) tensor in the graph.
        total = marginal_votes_mu(counts, weight, mu_t, grid, log_mass)
    else:
        spacing = 0.0 if fam.discrete else grid.spacing
        total = marginal_votes(counts, weight, log_g, log_1mg, log_mass, spacing)
    total = total + pt.dot(weight, const)
    if feasible is not None:
        # Outside the admissible set the parameters are meaningless (possibly NaN).
        total = pt.switch(feasible, total, -np.inf)
    pm.Potential("votes", total)


def _latent_likelihood(fam, params, mu_t, data, spec) -> None:
    counts = data.counts
    # One (user, pair) cell per observed entry.
    user_of_row = counts.user_row
    # Expand each user's row entries.
    starts = counts.row_ptr[user_of_row]
    lens = counts.row_ptr[user_of_row + 1] - starts
    user_idx = np.repeat(np.arange(user_of_row.size), lens)
    entry = np.concatenate([np.arange(a, a + n) for a, n in zip(starts, lens, strict=True)])
    pair_idx = counts.entry_pair[entry]
    n = counts.entry_n[entry]
    s = counts.entry_s[entry]
    if fam.discrete:
        logw, loc = fam.pymc_atoms(params)
        d = (mu_t[pair_idx] - 0.5)[:, None]
        lp = s[:, None] * pt.log(0.5 + loc[None, :] * d) + (n - s)[:, None] * pt.log(
            0.5 - loc[None, :] * d
        )
        per_user = pt.zeros((user_of_row.size, lp.shape[1]))
        per_user = pt.inc_subtensor(per_user[user_idx], lp)
        from scipy.special import gammaln

        const = float(np.sum(gammaln(n + 1) - gammaln(s + 1) - gammaln(n - s + 1)))
        pm.Potential("votes", pt.sum(pt.logsumexp(per_user + logw[None, :], axis=1)) + const)
        return
    eta = fam.pymc_latent_eta(params)
    p = 0.5 + eta[user_idx] * (mu_t[pair_idx] - 0.5)
    pm.Binomial("s", n=n, p=p, observed=s)
