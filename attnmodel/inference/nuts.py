"""Full posterior sampling of the attentiveness model with NUTS.

:func:`sample_nuts` builds the model of :mod:`attnmodel.model.pymc_model`, runs a NUTS
implementation chosen by name, and returns the result structure shared with
MAP-EM (an ``xarray.DataTree``; see :mod:`attnmodel.results.tree`).

Per-user quantities are computed from the global draws, whichever variant was
sampled: for every posterior draw of ``(P_eta, mu)`` each user's conditional
``p(eta_j | votes_j, P_eta, mu)`` is exact up to quadrature, so

- ``eta_mean``, ``eta_sd`` and ``p_above = P(eta_j >= eta_star | data)`` are
  averages of conditional moments and tail masses over the draws
  (Rao-Blackwellised: their Monte Carlo error comes from the global
  parameters only), with ``p_above_mcse`` from ArviZ's MCSE of those averages;
- ``eta[user]`` draws (marginal variant) are drawn from that conditional, one
  per user and posterior draw; the latent variant keeps the sampler's own;
- ``log_likelihood["votes"]`` is each user's marginal log-likelihood per draw,
  the pointwise quantity ``az.loo`` needs to rank families.
"""

from __future__ import annotations

import importlib.util
import json
import time
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr
from scipy import special

from attnmodel.posterior.conditional import AtomCells, grid_row_summaries
from attnmodel.inference.em import EMProblem, EMState
from attnmodel.model.grid import pair_log_probs
from attnmodel.model.pymc_model import AttnModel, build_model
from attnmodel.results.tree import mu_spec_to_json

__all__ = ["SAMPLERS", "sample_nuts", "conditional_summaries"]

#: Sampler names: PyMC's default choice, PyMC's own NUTS, nutpie, numpyro.
SAMPLERS = ("default", "pymc", "nutpie", "numpyro")

#: Above this many (draw, user) values per-user draws and pointwise log-likelihoods
#: are not stored unless asked for.
STORE_LIMIT = 20_000_000

#: Per-row summaries are averaged over at most about this many (draw, distinct row)
#: pairs: beyond it every k-th draw is used (unless per-user draws or pointwise
#: log-likelihoods are stored, which need every draw).
SUMMARY_BUDGET = 1_000_000


def _check_sampler(sampler: str) -> str | None:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "default":
        return None
    needs = {"nutpie": "nutpie", "numpyro": "numpyro"}
    module = needs.get(sampler)
    if module and importlib.util.find_spec(module) is None:
        raise ImportError(f"sampler {sampler!r} needs the {module!r} package: pip install {module}")
    return sampler


def sample_nuts(
    data,
    family="beta",
    *,
    mu=None,
    mu_prior=None,
    priors=None,
    n_components: int | None = None,
    variant: str = "marginal",
    parameterization: str = "auto",
    sampler: str = "pymc",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    target_accept: float = 0.9,
    seed: int = 0,
    progressbar: bool = True,
    eta_star: float = 0.5,
    hdi_prob: float = 0.94,
    store_eta: bool | str = "auto",
    log_likelihood: bool | str = "auto",
    **sample_kwargs: Any,
) -> xr.DataTree:
    """Sample the posterior of the model with NUTS.

    Parameters
    ----------
    data : VoteData
    family : str or Family
    mu, mu_prior, priors, n_components
        As in :func:`attnmodel.model.pymc_model.build_model`.
    variant : {"marginal", "latent"}
        ``"marginal"`` (default) integrates each user's ``eta`` out and samples
        only the global parameters; ``"latent"`` samples ``eta[user]`` too.
    parameterization : {"auto", "identified", "standard"}
        See :func:`attnmodel.model.pymc_model.build_model`.
    sampler : {"pymc", "default", "nutpie", "numpyro"}
        ``"pymc"`` is PyMC's own NUTS (the default here: no extra compiler,
        and it meets the convergence checks on the marginal model);
        ``"default"`` lets :func:`pymc.sample` choose (nutpie when installed).
    draws, tune, chains, target_accept
        Passed to :func:`pymc.sample`.
    cores : int, optional
        Chains run in parallel processes. Default: the CPUs this process may
        use, at most 4 and at most ``chains``. (PyMC's own default halves the
        logical CPU count, assuming hyperthreads; on a 2-core machine without
        them it would run the chains one after another.)
    seed : int
        Seeds the sampler and the per-user draws; equal seeds give equal results.
    progressbar : bool
    eta_star : float
        Cut for ``p_above``.
    hdi_prob : float
        Probability of the per-user HDI.
    store_eta, log_likelihood : bool or "auto"
        Store per-user ``eta`` draws / pointwise log-likelihoods; ``"auto"``
        stores them when ``chains * draws * n_users`` is at most
        :data:`STORE_LIMIT`.
    **sample_kwargs
        Further arguments of :func:`pymc.sample`.

    Returns
    -------
    xarray.DataTree
    """
    nuts_sampler = _check_sampler(sampler)
    if not 0.0 <= eta_star <= 1.0:
        raise ValueError(f"eta_star must lie in [0, 1], got {eta_star}")
    clock = time.perf_counter()
    timings: dict[str, float] = {}
    # What both the model and the MAP-EM start are built from.
    model_kw = {"mu": mu, "mu_prior": mu_prior, "priors": priors, "n_components": n_components}
    attn = build_model(data, family, **model_kw, variant=variant, parameterization=parameterization)
    kwargs: dict[str, Any] = {
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "random_seed": seed,
        "progressbar": progressbar,
        "nuts": {"target_accept": target_accept},
        "compute_convergence_checks": False,
    }
    kwargs["cores"] = default_cores(chains) if cores is None else cores
    if nuts_sampler is not None:
        kwargs["nuts_sampler"] = nuts_sampler
    timings["build"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if attn.parameterization == "identified" and "initvals" not in sample_kwargs:
        kwargs.update(
            _identified_starts(
                attn, data, family, model_kw, chains, seed, nuts_sampler, target_accept
            )
        )
    if "step" in kwargs:
        # The step carries target_accept itself.
        del kwargs["nuts"]
    elif nuts_sampler == "pymc":
        kwargs["compile_kwargs"] = {"mode": _compile_mode()}
    kwargs.update(sample_kwargs)
    timings["start"] = time.perf_counter() - clock
    clock = time.perf_counter()
    with attn.model:
        idata = pm.sample(**kwargs)
    wall = time.perf_counter() - clock
    timings["sample"] = wall
    clock = time.perf_counter()
    n_users = len(attn.users)
    total = chains * draws * n_users
    if store_eta == "auto":
        store_eta = total <= STORE_LIMIT
    if log_likelihood == "auto":
        log_likelihood = total <= STORE_LIMIT
    tree = _to_datatree(
        attn,
        idata,
        eta_star=eta_star,
        hdi_prob=hdi_prob,
        store_eta=bool(store_eta),
        log_likelihood=bool(log_likelihood),
        seed=seed,
        info={
            "sampler": sampler,
            "variant": variant,
            "parameterization": attn.parameterization,
            "chains": chains,
            "draws": draws,
            "tune": tune,
            "seed": seed,
            "target_accept": target_accept,
            "wall_time": wall,
        },
    )
    # Seconds per phase: building the model, the start (MAP-EM, and for PyMC's
    # NUTS compiling the step and the curvature), pm.sample, post-processing.
    timings["post"] = time.perf_counter() - clock
    settings = json.loads(tree.attrs["settings"])
    settings["timings"] = {k: round(v, 3) for k, v in timings.items()}
    tree.attrs["settings"] = json.dumps(settings)
    return tree


def default_cores(chains: int) -> int:
    """Worker processes for ``chains`` chains: usable CPUs, at most 4 and at most ``chains``."""
    import os

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        usable = os.cpu_count() or 1
    return max(1, min(4, usable, chains))


def _identified_starts(
    attn, data, family, model_kw, chains, seed, nuts_sampler, target_accept
) -> dict[str, Any]:
    """Starting points and (PyMC's NUTS) a mass matrix for the identified coordinates.

    The chains start at the MAP-EM estimate. The identified coordinates are
    defined only where the votes' moments leave room for a scale, and PyMC's
    default jitter of every coordinate often leaves that set when there are
    many pairs; instead each chain's scale coordinate (the weakly identified
    direction) is moved by a uniform draw on ``(-w, w)``, ``w`` the smaller of
    1 and twice its posterior sd at the mode, which still spreads the chains
    for r_hat.

    For PyMC's NUTS the diagonal mass matrix starts from the curvature at the
    mode (central differences of the gradient) rather than from ones: with
    many users the posterior is narrow, and a unit mass matrix makes the
    first hundreds of tuning steps build deep trees with tiny step sizes.
    """
    from attnmodel.inference.em import fit_em
    from attnmodel.model.identified import identified_point

    em = fit_em(data, family, **model_kw, n_init=1, warn=False)
    z0 = identified_point(attn, em.params_, em.mu_.to_numpy())
    k = attn.family.n_identified_coords - 1
    step = None
    var = None
    if nuts_sampler == "pymc":
        with attn.model:
            step = pm.NUTS(target_accept=target_accept, compile_kwargs={"mode": _compile_mode()})
        var = _mode_variance(step, {"identified_coords": z0})
        if var is not None:
            from pymc.step_methods.hmc.integration import CpuLeapfrogIntegrator
            from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt

            step.potential = QuadPotentialDiagAdapt(z0.size, z0, var, 10)
            step.integrator = CpuLeapfrogIntegrator(step.potential, step._logp_dlogp_func)
    spread = 1.0 if var is None else min(1.0, 2.0 * float(np.sqrt(var[k])))
    rng = np.random.default_rng([seed, 2])
    starts = []
    for _ in range(chains):
        z = z0.copy()
        z[k] += spread * rng.uniform(-1.0, 1.0)
        starts.append({"identified_coords": z})
    if step is not None:
        return {"initvals": starts, "step": step}
    return {"initvals": starts[0]}


def _compile_mode():
    """PyTensor's default mode without the in-place rewrite.

    On the identified model's gradient graph that rewrite alone takes about
    20 s (against under 4 s for the whole compilation without it), and the
    vectors it would save copies of have a handful of elements.
    """
    from pytensor.compile.mode import get_default_mode

    return get_default_mode().excluding("inplace")


def _mode_variance(step, point: dict[str, np.ndarray]) -> np.ndarray | None:
    """Diagonal of the inverse negative Hessian of the log density at ``point``, or None.

    Central differences of the step's own compiled gradient (no second
    compilation). None when the curvature is not that of a mode (a start on
    the admissible set's edge, say), in which case PyMC's unit start is kept.
    """
    from pymc.blocking import DictToArrayBijection

    fn = step._logp_dlogp_func
    fn.set_extra_values({})
    x0 = DictToArrayBijection.map(point)
    n = x0.data.size
    hess = np.empty((n, n))
    for j in range(n):
        h = 1e-4 * max(1.0, abs(float(x0.data[j])))
        grads = []
        for sign in (1.0, -1.0):
            x = x0.data.copy()
            x[j] += sign * h
            _, g = fn(x0._replace(data=x))
            grads.append(np.asarray(g, dtype=float))
        hess[:, j] = (grads[0] - grads[1]) / (2.0 * h)
    hess = 0.5 * (hess + hess.T)
    if not np.all(np.isfinite(hess)):
        return None
    try:
        cov = np.linalg.inv(-hess)
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    return np.diag(cov).copy()


def _global_draws(attn: AttnModel, posterior: xr.Dataset) -> xr.Dataset:
    """The family parameters and ``mu`` of the sampler's output, as the result names them."""
    keep = [name for name in attn.global_names if name in posterior]
    missing = sorted(set(attn.global_names) - set(keep))
    if missing:
        raise RuntimeError(f"the sampler's output lacks {missing}")
    return posterior[keep]


def _state(attn: AttnModel, draws: xr.Dataset, c: int, d: int) -> EMState:
    params = {}
    for name in attn.family.param_names:
        v = draws[name].values[c, d]
        params[name] = float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float)
    return EMState(params, np.asarray(draws["mu"].values[c, d], dtype=float))


def conditional_summaries(
    attn: AttnModel,
    draws: xr.Dataset,
    *,
    eta_star: float,
    store_eta: bool,
    log_likelihood: bool,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Per-row conditional quantities for every global draw.

    Returns arrays of shape (chain, draw, R) (``mean``, ``second``, ``tail``,
    ``eta_row``, ``loglik_row``), (chain, draw, R, K) ``membership`` for discrete
    families, and (chain, draw, n_users) ``eta_user`` when asked for. On the
    grid, one compiled pass per draw does all of it
    (:func:`attnmodel.posterior.conditional.grid_row_summaries`).
    """
    counts = attn.counts
    problem = EMProblem(counts, attn.family, attn.mu_spec, grid=attn.grid)
    n_chain, n_draw = draws.sizes["chain"], draws.sizes["draw"]
    n_rows = counts.n_rows
    shape = (n_chain, n_draw, n_rows)
    out = {
        "mean": np.empty(shape),
        "second": np.empty(shape),
        "tail": np.empty(shape),
        "eta_row": np.empty(shape),
    }
    if log_likelihood:
        out["loglik_row"] = np.empty(shape)
        const = _binomial_const(counts)
    if attn.family.discrete:
        out["membership"] = np.empty(shape + (attn.family.n_components,))
    if store_eta:
        out["eta_user"] = np.empty((n_chain, n_draw, counts.user_row.size), dtype=np.float32)
    all_rows = np.arange(n_rows)
    for c in range(n_chain):
        for d in range(n_draw):
            state = _state(attn, draws, c, d)
            if attn.family.discrete:
                estep = problem.e_step(state, posterior=True)
                post = estep.posterior
                _, eta = attn.family.components(state.params)
                order = np.argsort(eta, kind="stable")
                out["membership"][c, d] = post[:, order]
                cells = AtomCells(post, eta)
                row = {
                    "log_z": estep.row_log_marginal,
                    "mean": post @ eta,
                    "second": post @ eta**2,
                    "tail": cells.tail(eta_star),
                    "eta_row": cells.sample(all_rows, rng),
                }
                if store_eta:
                    row["eta_user"] = cells.sample(counts.user_row, rng)
            else:
                eta, one_minus_eta, log_mass = problem.nodes(state.params)
                log_g, log_1mg = pair_log_probs(eta, one_minus_eta, state.mu)
                row = grid_row_summaries(
                    counts,
                    attn.grid,
                    log_g,
                    log_1mg,
                    log_mass,
                    eta_star,
                    rng,
                    counts.user_row if store_eta else None,
                )
            for name in ("mean", "second", "tail", "eta_row"):
                out[name][c, d] = row[name]
            if store_eta:
                out["eta_user"][c, d] = row["eta_user"]
            if log_likelihood:
                out["loglik_row"][c, d] = row["log_z"] + const
    return out


def summary_thin(n_draws: int, n_rows: int, every_draw: bool) -> int:
    """Stride over the draws for the per-row summaries (1: every draw).

    The Rao-Blackwellised averages need far fewer draws than the global
    parameters do; with many distinct rows, every k-th draw keeps their cost
    within :data:`SUMMARY_BUDGET` (their MCSE is computed from the draws used).
    ``every_draw`` (per-user draws or pointwise log-likelihoods are stored)
    forces a stride of 1.
    """
    if every_draw or n_draws * n_rows <= SUMMARY_BUDGET:
        return 1
    return int(np.ceil(n_draws * n_rows / SUMMARY_BUDGET))


def _binomial_const(counts) -> np.ndarray:
    n, s = counts.entry_n.astype(float), counts.entry_s.astype(float)
    c = special.gammaln(n + 1) - special.gammaln(s + 1) - special.gammaln(n - s + 1)
    return counts.row_sum(c)


def _to_datatree(
    attn: AttnModel,
    idata,
    *,
    eta_star: float,
    hdi_prob: float,
    store_eta: bool,
    log_likelihood: bool,
    seed: int,
    info: dict[str, Any],
) -> xr.DataTree:
    import arviz as az

    import attnmodel

    posterior_in = idata["posterior"].to_dataset()
    draws = _global_draws(attn, posterior_in)
    rng = np.random.default_rng([seed, 1])
    latent_eta = attn.variant == "latent" and "eta" in posterior_in
    thin = summary_thin(
        draws.sizes["chain"] * draws.sizes["draw"],
        attn.counts.n_rows,
        (store_eta and not latent_eta) or log_likelihood,
    )
    summ = conditional_summaries(
        attn,
        draws.isel(draw=slice(None, None, thin)),
        eta_star=eta_star,
        store_eta=store_eta and not latent_eta,
        log_likelihood=log_likelihood,
        rng=rng,
    )
    users = list(attn.users)
    user_row = attn.counts.user_row
    chain_draw = {"chain": draws["chain"].values, "draw": draws["draw"].values}
    used = {"chain": draws["chain"].values, "draw": draws["draw"].values[::thin]}
    posterior = draws.copy()
    posterior["mu"] = posterior["mu"].astype(float)
    if latent_eta:
        posterior["eta"] = posterior_in["eta"].assign_coords(user=users)
    elif store_eta:
        posterior["eta"] = xr.DataArray(
            summ["eta_user"], dims=("chain", "draw", "user"), coords={**chain_draw, "user": users}
        )
    row_ds = xr.Dataset(
        {
            "tail": (("chain", "draw", "row"), summ["tail"]),
            "eta_row": (("chain", "draw", "row"), summ["eta_row"]),
        },
        coords=used,
    )
    mean_row = summ["mean"].mean(axis=(0, 1))
    second_row = summ["second"].mean(axis=(0, 1))
    p_row = summ["tail"].mean(axis=(0, 1))
    mcse_row = az.mcse(row_ds[["tail"]])["tail"].values
    # A probability that every draw puts at exactly 0 or 1 has no Monte Carlo error.
    mcse_row = np.where(np.ptp(summ["tail"], axis=(0, 1)) == 0, 0.0, mcse_row)
    hdi_row = az.hdi(row_ds[["eta_row"]], prob=hdi_prob)["eta_row"].transpose("row", "ci_bound")
    att = xr.Dataset(
        {
            "eta_mean": ("user", mean_row[user_row]),
            "eta_sd": ("user", np.sqrt(np.maximum(second_row - mean_row**2, 0.0))[user_row]),
            "eta_hdi": (("user", "ci_bound"), hdi_row.values[user_row]),
            "p_above": ("user", p_row[user_row]),
            "p_above_mcse": ("user", np.nan_to_num(mcse_row)[user_row]),
            "n_votes": ("user", attn.counts.votes_per_user()),
        },
        coords={"user": users, "ci_bound": ["lower", "upper"]},
        attrs={"eta_star": float(eta_star), "hdi_prob": float(hdi_prob), "summary_thin": thin},
    )
    if attn.family.discrete:
        k = attn.family.n_components
        att["membership"] = (
            ("user", "component"),
            summ["membership"].mean(axis=(0, 1))[user_row],
        )
        att = att.assign_coords(component=np.arange(k))
    groups: dict[str, xr.Dataset] = {"posterior": posterior, "attentiveness": att}
    if "sample_stats" in idata.children:
        groups["sample_stats"] = idata["sample_stats"].to_dataset()
    if log_likelihood:
        groups["log_likelihood"] = xr.Dataset(
            {
                "votes": xr.DataArray(
                    summ["loglik_row"][:, :, user_row],
                    dims=("chain", "draw", "user"),
                    coords={**chain_draw, "user": users},
                )
            }
        )
    tree = xr.DataTree.from_dict(groups)
    spec = attn.mu_spec
    tree.attrs = {
        "attnmodel_result": 1,
        "attnmodel_version": attnmodel.__version__,
        "method": "nuts",
        "family": attn.family.name,
        "n_components": int(attn.family.n_components),
        "eta_star": float(eta_star),
        "hdi_prob": float(hdi_prob),
        "mu_spec": mu_spec_to_json(spec),
        "priors": attn.priors_json(),
        "settings": json.dumps(info),
        "sampler": info["sampler"],
        "variant": info["variant"],
        "parameterization": info["parameterization"],
        "chains": int(info["chains"]),
        "draws": int(info["draws"]),
        "tune": int(info["tune"]),
        "seed": int(info["seed"]),
    }
    return tree
