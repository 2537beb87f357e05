"""The hierarchical attentiveness model, stated once in PyMC.

For data with users ``j``, pairs ``k``, counts ``n_jk`` and wins ``s_jk`` of the
stronger model::

    mu_k        ~ prior on (1/2, 1]               (or known)
    theta       ~ prior of the family's parameters (flat on the admissible box by default)
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
from pymc.distributions import transforms
from scipy import special

from attnmodel.data.counts import CountTable
from attnmodel.model.families import Family, get_family
from attnmodel.model.grid import LogitGrid, make_logit_grid
from attnmodel.model.priors import (
    BetaPrior,
    MuSpec,
    Prior,
    check_priors,
    default_priors,
    resolve_mu,
)

__all__ = ["AttnModel", "build_model"]

VARIANTS = ("marginal", "latent")
PARAMETERIZATIONS = ("auto", "identified", "standard")
#: Families with a parameterization in identified quantities.
IDENTIFIED_FAMILIES = ("beta", "two_point", "k_point")

# -- the mu prior ------------------------------------------------------------


def _mu_log_norm(priors: list[BetaPrior]) -> np.ndarray:
    """Log normalising constant of each truncated, scaled Beta prior (fixed numbers)."""
    from scipy import special, stats

    out = []
    for p in priors:
        x_lo = (p.support[0] - p.lower) / (p.upper - p.lower)
        log_mass = stats.beta.logsf(x_lo, p.alpha, p.beta) if x_lo > 0 else 0.0
        out.append(special.betaln(p.alpha, p.beta) + np.log(p.upper - p.lower) + log_mass)
    return np.array(out)


def _mu_logp(value, a, b, lower, upper, lo, log_norm):
    """Log density of ``lower + (upper - lower) * Beta(a, b)`` truncated to ``(lo, upper]``."""
    x = (value - lower) / (upper - lower)
    dens = (a - 1) * pt.log(x) + (b - 1) * pt.log1p(-x) - log_norm
    return pt.switch(pt.and_(pt.gt(value, lo), pt.le(value, upper)), dens, -np.inf)


def _mu_random(a, b, lower, upper, lo, log_norm, rng=None, size=None):
    from scipy import stats

    rng = np.random.default_rng(rng)
    f_lo = stats.beta.cdf((lo - lower) / (upper - lower), a, b)
    x = stats.beta.ppf(rng.uniform(f_lo, 1.0, size=size), a, b)
    return lower + (upper - lower) * x


def _vector_interval(lower: np.ndarray, upper: np.ndarray):
    """Interval transform with per-element bounds."""
    lo_t, hi_t = pt.as_tensor_variable(lower), pt.as_tensor_variable(upper)
    return transforms.Interval(bounds_fn=lambda *inputs: (lo_t, hi_t))


def _mu_rv(name: str, priors: list[BetaPrior], dims: str):
    a = np.array([p.alpha for p in priors])
    b = np.array([p.beta for p in priors])
    lower = np.array([p.lower for p in priors])
    upper = np.array([p.upper for p in priors])
    lo = np.array([p.support[0] for p in priors])
    return pm.CustomDist(
        name,
        a,
        b,
        lower,
        upper,
        lo,
        _mu_log_norm(priors),
        logp=_mu_logp,
        random=_mu_random,
        dims=dims,
        default_transform=_vector_interval(lo, upper),
        initval=np.array([p.mode() for p in priors]),
    )


# -- family parameters in the model --------------------------------------------


def _family_rvs(family: Family, grid: LogitGrid | None, priors: dict[str, Prior]):
    """Create the family's parameter variables; returns name -> tensor (constrained)."""
    box = family.box(grid)
    out = {}
    dims = family.param_dims
    for name in family.param_names:
        prior = priors[name]
        d = dims[name] if dims[name] else None
        if name == "weights":
            out[name] = getattr(pm, prior.dist)(name, **prior.params, dims=d)
            continue
        lo, hi = box[name]
        ordered = name in ("locations", "logit_mean") or (
            family.name == "beta_mixture" and name == "alpha"
        )
        if name in ("eta_low", "eta_high"):
            continue
        shape_kw: dict[str, Any] = {"dims": d} if d else {}
        shape_kw.update(_init(name, d, lo, hi, family))
        # PyMC applies ``transform`` on top of the default interval transform.
        if ordered:
            shape_kw["transform"] = transforms.ordered
        if prior.dist == "Uniform":
            lo, hi = prior.uniform_bounds(lo, hi)
            out[name] = pm.Uniform(name, lower=lo, upper=hi, **shape_kw)
        else:
            out[name] = pm.Truncated(name, prior.pymc_dist(), lower=lo, upper=hi, **shape_kw)
    if family.name == "two_point":
        lo_p, hi_p = priors["eta_low"], priors["eta_high"]
        for p in (lo_p, hi_p):
            if p.dist != "Uniform":
                raise ValueError(
                    "two_point locations take Uniform priors (they are ordered: "
                    "eta_low < eta_high); give other shapes through the k_point family"
                )
        locs = pm.Uniform(
            "_locations",
            lower=0.0,
            upper=1.0,
            shape=2,
            transform=transforms.ordered,
            initval=np.array([0.3, 0.8]),
        )
        out["eta_low"] = pm.Deterministic("eta_low", locs[0])
        out["eta_high"] = pm.Deterministic("eta_high", locs[1])
    return out


def _init(name, dims, lo, hi, family) -> dict[str, Any]:
    if not dims:
        return {}
    k = family.n_components
    inside = lo + (hi - lo) * (np.arange(1, k + 1) / (k + 1))
    if name in ("alpha", "beta"):
        inside = np.clip(np.geomspace(1.0, 10.0, k), lo, hi)
    if name == "logit_sd":
        inside = np.full(k, np.clip(1.0, lo, hi))
    if name == "logit_mean":
        inside = np.linspace(-2.0, 2.0, k)
    return {"initval": inside}


def _family_params_tensor(family: Family, rvs: dict) -> dict:
    return {name: rvs[name] for name in family.param_names}


# -- log densities in PyTensor ------------------------------------------------------


def _log_density_logit(family: Family, params: dict, u: np.ndarray):
    """Log density of ``logit(eta)`` at the nodes ``u`` (tensor of shape (G,))."""
    log_s = -np.logaddexp(0.0, -u)
    log_1ms = -np.logaddexp(0.0, u)
    name = family.name

    def beta_lpdf(a, b):
        return a * log_s + b * log_1ms - (pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b))

    if name == "beta":
        return beta_lpdf(params["alpha"], params["beta"])
    if name == "beta_mixture":
        a = params["alpha"][:, None]
        b = params["beta"][:, None]
        comp = (
            a * log_s[None, :]
            + b * log_1ms[None, :]
            - (pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b))
        )
        return pt.logsumexp(pt.log(params["weights"])[:, None] + comp, axis=0)
    if name == "logistic_normal_mixture":
        m = params["logit_mean"][:, None]
        s = params["logit_sd"][:, None]
        comp = -0.5 * ((u[None, :] - m) / s) ** 2 - pt.log(s) - 0.5 * np.log(2 * np.pi)
        return pt.logsumexp(pt.log(params["weights"])[:, None] + comp, axis=0)
    raise ValueError(f"family {name!r} has no logit density")


def _atoms(family: Family, params: dict):
    """(log weights, locations) of a discrete family, tensors of shape (K,)."""
    if family.name == "two_point":
        q = params["q_low"]
        logw = pt.stack([pt.log(q), pt.log1p(-q)])
        return logw, pt.stack([params["eta_low"], params["eta_high"]])
    return pt.log(params["weights"]), params["locations"]


def _binomial_log_const(counts: CountTable) -> np.ndarray:
    """``sum_k log C(n_k, s_k)`` per distinct row, shape (R,)."""
    from scipy.special import gammaln

    n, s = counts.entry_n.astype(float), counts.entry_s.astype(float)
    c = gammaln(n + 1) - gammaln(s + 1) - gammaln(n - s + 1)
    return counts.row_sum(c)


# -- identified coordinates -------------------------------------------------------
#
# Only ``d = eta (2 mu - 1)`` reaches the votes: with every ``mu`` unknown, scaling all
# ``c_k = 2 mu_k - 1`` up and ``eta`` down leaves the likelihood (nearly) unchanged, and
# NUTS crawls along that ridge in the family's own coordinates. Here the sampler moves
# in what the votes pin down (for beta: the mean and variance of ``d`` on the first
# pair; for atoms: the atoms of ``d``; for other pairs: ``c_k / c_1``), plus one
# coordinate for the scale ``c_1`` within the interval those leave admissible. The
# density is the model's prior times the likelihood times the Jacobian of the map.


def _logit_interval(lo, hi, z):
    return lo + (hi - lo) * pm.math.sigmoid(z)


def _ops(xp):
    """(maximum, minimum, where, sqrt) for numpy or PyTensor."""
    if xp is np:
        return np.maximum, np.minimum, np.where, np.sqrt
    return pt.maximum, pt.minimum, pt.switch, pt.sqrt


def _scale_bounds(spec: MuSpec, rho, xp):
    """Range of ``c_1 = 2 mu_1 - 1`` keeping each ``mu_k = (1 + c_1 rho_k) / 2`` in its support.

    ``rho`` holds ``c_k / c_1`` for the pairs after the first.
    """
    maximum, minimum, _, _ = _ops(xp)
    lo_k = np.array([max(2.0 * p.support[0] - 1.0, 0.0) for p in spec.priors])
    hi_k = np.array([2.0 * p.support[1] - 1.0 for p in spec.priors])
    lo, hi = lo_k[0], hi_k[0]
    if len(spec.pairs) > 1:
        lo = maximum(lo, xp.max(lo_k[1:] / rho))
        hi = minimum(hi, xp.min(hi_k[1:] / rho))
    return lo, hi


def _beta_scale_range(d1, var, lo, hi, box, xp):
    """Range of the scale ``c`` for the Beta family given the mean and variance of ``d``.

    ``alpha(c) = D1 (D1 c - D2) / (c V)`` and ``beta(c) = (c - D1)(D1 c - D2) / (c V)``
    both increase with ``c`` on ``c > D2 / D1``, so each bound of the box on
    ``alpha`` or ``beta`` is a bound on ``c``. Returns ``(lo, hi, feasible)``.
    """
    maximum, minimum, where, sqrt = _ops(xp)
    d2 = var + d1 * d1
    (a_min, a_max), (b_min, b_max) = box["alpha"], box["beta"]

    def larger_root(b):
        # Larger root of D1 x^2 + b x + D1 D2 (NaN when there is none).
        return (-b + sqrt(b * b - 4.0 * d1 * d1 * d2)) / (2.0 * d1)

    lo = maximum(lo, d2 / d1)
    lo = maximum(lo, d1 * d2 / (d1 * d1 - a_min * var))
    lo = maximum(lo, larger_root(-(d2 + d1 * d1 + b_min * var)))
    hi = where(d1 * d1 / var > a_max, minimum(hi, d1 * d2 / (d1 * d1 - a_max * var)), hi)
    hi = minimum(hi, larger_root(-(d2 + d1 * d1 + b_max * var)))
    feasible = (d1 * d1 - a_min * var > 0.0) & (lo < hi)
    return lo, hi, feasible


def _n_fixed(fam: Family) -> int:
    """Identified coordinates before the pair ratios: 3 for beta, 2K for K atoms."""
    return 3 if fam.name == "beta" else 2 * fam.n_components


def _identified_globals(fam: Family, grid, priors: dict[str, Prior], spec: MuSpec):
    n_pairs = len(spec.pairs)
    mu_priors = [spec.priors[k] for k in range(n_pairs)]
    n_fixed = _n_fixed(fam)
    size = n_fixed + n_pairs - 1
    z = pm.Flat("identified_coords", shape=size, initval=np.zeros(size))
    rho = pt.exp(z[n_fixed:])
    c_lo, c_hi = _scale_bounds(spec, rho, pt)
    if fam.name == "beta":
        d1 = pm.math.sigmoid(z[0])
        var = pm.math.sigmoid(z[1]) * d1 * (1.0 - d1)
        d2 = var + d1 * d1
        lo, hi, feasible = _beta_scale_range(d1, var, c_lo, c_hi, fam.box(grid), pt)
        c = _logit_interval(lo, hi, z[2])
        m = d1 / c
        kappa = (d1 * c - d2) / var
        alpha = pm.Deterministic("alpha", m * kappa)
        beta = pm.Deterministic("beta", (1.0 - m) * kappa)
        params = {"alpha": alpha, "beta": beta}
        # |d(D1, D2)/d(z0, z1)| (triangular), then |d(alpha, beta)/d(D1, D2)| at fixed c,
        # which is kappa * D1 (c - D1) / (c V^2).
        s1 = pm.math.sigmoid(z[1])
        logdet = (
            2.0 * pt.log(d1 * (1.0 - d1))
            + pt.log(s1 * (1.0 - s1))
            + pt.log(kappa)
            + pt.log(d1)
            + pt.log(c - d1)
            - pt.log(c)
            - 2.0 * pt.log(var)
        )
        c_index = 2
    else:
        k = fam.n_components
        if fam.name == "two_point":
            w_logit = z[:1]
            q = pm.math.sigmoid(w_logit[0])
            logw = pt.stack([pt.log(q), pt.log1p(-q)])
        else:
            # Stick-breaking free coordinates for the weights.
            w_free = z[: k - 1]
            w = transforms.simplex.backward(w_free)
            logw = pt.log(w)
        d_free = z[k - 1 : 2 * k - 1]
        ordered_free = transforms.ordered.backward(d_free)
        atoms_d = pm.math.sigmoid(ordered_free)  # ordered atoms of d in (0, 1)
        lo = pt.maximum(atoms_d[-1], c_lo)
        hi = c_hi
        feasible = pt.lt(lo, hi)
        c = _logit_interval(lo, hi, z[2 * k - 1])
        loc = atoms_d / c
        if fam.name == "two_point":
            params = {
                "q_low": pm.Deterministic("q_low", q),
                "eta_low": pm.Deterministic("eta_low", loc[0]),
                "eta_high": pm.Deterministic("eta_high", loc[1]),
            }
            logdet = pt.log(q * (1.0 - q))
        else:
            params = {
                "weights": pm.Deterministic("weights", pt.exp(logw), dims="component"),
                "locations": pm.Deterministic("locations", loc, dims="component"),
            }
            logdet = transforms.simplex.log_jac_det(w_free)
        # Ordered then logistic map to the atoms of d; the atoms of eta are d / c.
        logdet = (
            logdet
            + transforms.ordered.log_jac_det(d_free)
            + pt.sum(pt.log(atoms_d * (1.0 - atoms_d)))
            - k * pt.log(c)
        )
        c_index = 2 * k - 1
    c_all = pt.concatenate([c[None], c * rho]) if n_pairs > 1 else c[None]
    mu = pm.Deterministic("mu", 0.5 + 0.5 * c_all, dims="pair")
    # The model's prior, in the family's own coordinates.
    log_prior = _mu_prior_logp(mu_priors, mu)
    for name, prior in priors.items():
        if prior.dist in ("Uniform", "Dirichlet") and prior == default_priors(fam, grid)[name]:
            continue  # constant on the admissible set
        log_prior = log_prior + pt.sum(pm.logp(prior.pymc_dist(), params[name]))
    # The scale: logistic on its interval; the other pairs: c_k = c rho_k, rho_k = exp(z_k).
    sc = pm.math.sigmoid(z[c_index])
    logdet = logdet + pt.log((hi - lo) * sc * (1.0 - sc))
    if n_pairs > 1:
        logdet = logdet + pt.sum(z[n_fixed:]) + (n_pairs - 1) * pt.log(c)
    pm.Potential("prior_and_jacobian", pt.switch(feasible, log_prior + logdet, -np.inf))
    return params, mu, feasible


def identified_point(attn: "AttnModel", params: Mapping[str, Any], mu: np.ndarray) -> np.ndarray:
    """Identified coordinates of given family parameters and ``mu`` (a starting point).

    Values on or beyond the edges of the admissible set (an EM estimate at a
    box bound, an atom at 1) are pulled slightly inside, since the
    coordinates map the open set.
    """
    fam, spec = attn.family, attn.mu_spec
    c_all = 2.0 * np.asarray(mu, dtype=float) - 1.0
    c = float(c_all[0])
    rho = c_all[1:] / c
    c_lo, c_hi = _scale_bounds(spec, rho, np)
    eps = 1e-3
    if fam.name == "beta":
        a, b = float(params["alpha"]), float(params["beta"])
        m, kappa = a / (a + b), a + b
        d1 = c * m
        d2 = c * c * m * (a + 1.0) / (kappa + 1.0)
        var = d2 - d1 * d1
        share = np.clip(var / (d1 * (1.0 - d1)), eps, 1 - eps)
        var = share * d1 * (1.0 - d1)
        head = [special.logit(d1), special.logit(share)]
        lo, hi, _ = _beta_scale_range(d1, var, c_lo, c_hi, fam.box(attn.grid), np)
    else:
        weights, loc = fam.components(params)
        order = np.argsort(loc, kind="stable")
        weights, loc = np.asarray(weights)[order], np.asarray(loc)[order]
        k = fam.n_components
        weights = np.clip(weights, eps, None)
        weights = weights / weights.sum()
        if fam.name == "two_point":
            head = [special.logit(weights[0])]
        else:
            head = list(transforms.simplex.forward(pt.as_tensor(weights)).eval())
        atoms = np.clip(loc * c, eps, 1 - eps)
        for i in range(1, k):  # strictly increasing, as the ordered coordinates need
            atoms[i] = max(atoms[i], atoms[i - 1] + eps)
        logits = special.logit(np.clip(atoms, eps, 1 - eps))
        head += [logits[0], *np.log(np.maximum(np.diff(logits), eps))]
        lo, hi = max(float(atoms[-1]), float(c_lo)), c_hi
    frac = np.clip((c - lo) / (hi - lo), 0.02, 0.98) if hi > lo else 0.5
    z = np.array([*head, special.logit(frac), *np.log(rho)], dtype=float)
    return z


def _mu_prior_logp(priors: list[BetaPrior], mu):
    a = np.array([p.alpha for p in priors])
    b = np.array([p.beta for p in priors])
    lower = np.array([p.lower for p in priors])
    upper = np.array([p.upper for p in priors])
    lo = np.array([p.support[0] for p in priors])
    return pt.sum(_mu_logp(mu, a, b, lower, upper, lo, _mu_log_norm(priors)))


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

    def priors_json(self) -> str:
        """Family priors and ``mu`` priors as a JSON object of strings."""
        out = {k: str(v) for k, v in self.priors.items()}
        out.update({f"mu[{p}]": d for p, d in self.mu_spec.describe().items()})
        return json.dumps(out)


def build_model(
    data,
    family: str | Family = "beta",
    *,
    mu: float | Mapping[str, float] | None = None,
    mu_prior=None,
    priors: Mapping[str, Prior] | None = None,
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
    priors : mapping of str to Prior, optional
        Priors of the family's parameters; those not given are flat on the
        admissible box (Dirichlet(1) for weights).
    n_components : int, optional
    variant : {"marginal", "latent"}
    parameterization : {"auto", "identified", "standard"}
        Coordinates the sampler moves in. ``"identified"`` (what ``"auto"`` picks
        for the marginal variant of the beta, two_point and k_point families when
        every ``mu`` is unknown) samples the quantities the votes determine
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
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
        )
    fam = get_family(family, n_components)
    counts = data.counts
    spec = resolve_mu(data.pairs, mu, mu_prior)
    if not fam.discrete and grid is None:
        grid = make_logit_grid(int(counts.row_sum(counts.entry_n.astype(np.float64)).max()))
    if fam.discrete:
        grid = None
    chosen = {**default_priors(fam, grid), **check_priors(fam, priors)}
    users = data.users
    coords = {"pair": list(spec.pairs)}
    if fam.name not in ("two_point", "beta"):
        coords["component"] = list(range(fam.n_components))
    if variant == "latent" and likelihood:
        coords["user"] = list(users)
    unknown = spec.unknown
    identified = (
        variant == "marginal"
        and parameterization != "standard"
        and unknown.size == len(spec.pairs)
        and fam.name in IDENTIFIED_FAMILIES
    )
    if parameterization == "identified" and not identified:
        raise ValueError(
            "the identified parameterization needs the marginal variant, a family among "
            f"{IDENTIFIED_FAMILIES} and every mu unknown"
        )
    with pm.Model(coords=coords) as model:
        feasible = None
        if identified:
            params, mu_t, feasible = _identified_globals(fam, grid, chosen, spec)
        else:
            rvs = _family_rvs(fam, grid, chosen)
            mu_t = _mu_tensor(spec, unknown, model)
            params = _family_params_tensor(fam, rvs)
        if not likelihood:
            pass
        elif variant == "marginal":
            _marginal_potential(fam, params, mu_t, counts, grid, spec, feasible)
        else:
            _latent_likelihood(fam, params, mu_t, data, spec)
    names = list(fam.param_names) + ["mu"]
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
    )


def _mu_tensor(spec: MuSpec, unknown: np.ndarray, model: pm.Model):
    pairs = spec.pairs
    if unknown.size == len(pairs):
        return _mu_rv("mu", [spec.priors[k] for k in unknown], "pair")
    if unknown.size == 0:
        return pm.Deterministic("mu", pt.as_tensor_variable(spec.known.copy()), dims="pair")
    model.add_coord("pair_unknown", [pairs[k] for k in unknown])
    free = _mu_rv("mu_unknown", [spec.priors[k] for k in unknown], "pair_unknown")
    full = pt.set_subtensor(pt.as_tensor_variable(spec.known.copy())[unknown], free)
    return pm.Deterministic("mu", full, dims="pair")


def _pair_log_probs_tensor(eta, one_minus_eta, mu):
    """``log g`` and ``log(1 - g)`` per (pair, node), as :func:`attnmodel.model.grid.pair_log_probs`."""
    half = 0.5 * one_minus_eta[None, :]
    m = mu[:, None]
    return pt.log(half + eta[None, :] * m), pt.log(half + eta[None, :] * (1.0 - m))


def _marginal_potential(fam, params, mu_t, counts, grid, spec, feasible=None) -> None:
    from attnmodel.inference.ops import marginal_votes

    const = _binomial_log_const(counts)
    # Users per distinct row, as data: a model built on a table that lists every
    # possible row (with zero weights allowed) serves many data sets with one
    # compilation (``pm.set_data({"row_weight": ...})``), as calibration checks need.
    weight = pm.Data("row_weight", counts.row_weight.astype(np.float64))
    if fam.discrete:
        log_mass, loc = _atoms(fam, params)
        log_g, log_1mg = _pair_log_probs_tensor(loc, 1.0 - loc, mu_t)
    else:
        log_mass = grid.log_weight + _log_density_logit(fam, params, grid.u)
        if spec.unknown.size == 0:
            from attnmodel.model.grid import pair_log_probs

            log_g, log_1mg = (
                pt.as_tensor_variable(x)
                for x in pair_log_probs(grid.eta, grid.one_minus_eta, spec.known)
            )
        else:
            log_g, log_1mg = _pair_log_probs_tensor(
                pt.as_tensor_variable(grid.eta), pt.as_tensor_variable(grid.one_minus_eta), mu_t
            )
    # The E-step kernel gives the log-likelihood and, by Fisher's identity, its
    # gradient in one pass over the rows (see attnmodel.inference.ops).
    total = marginal_votes(counts, weight, log_g, log_1mg, log_mass) + pt.dot(weight, const)
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
        logw, loc = _atoms(fam, params)
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
    if fam.name == "beta":
        eta = pm.Beta("eta", alpha=params["alpha"], beta=params["beta"], dims="user")
    elif fam.name == "beta_mixture":
        comps = [
            pm.Beta.dist(alpha=params["alpha"][k], beta=params["beta"][k])
            for k in range(fam.n_components)
        ]
        eta = pm.Mixture("eta", w=params["weights"], comp_dists=comps, dims="user")
    else:
        x = pm.NormalMixture(
            "eta_logit",
            w=params["weights"],
            mu=params["logit_mean"],
            sigma=params["logit_sd"],
            dims="user",
        )
        eta = pm.Deterministic("eta", pm.math.sigmoid(x), dims="user")
    p = 0.5 + eta[user_idx] * (mu_t[pair_idx] - 0.5)
    pm.Binomial("s", n=n, p=p, observed=s)
