"""Full posterior sampling of the attentiveness model with NUTS.

:func:`sample_nuts` builds the model of :mod:`attnmodel.model.pymc_model`, runs a NUTS
implementation chosen by name, and returns the result structure shared with
MAP-EM (an ``xarray.DataTree``; see :mod:`attnmodel.results.tree`).

Per-user quantities are computed from the global draws, whichever variant was
sampled, by :mod:`attnmodel.posterior`: for every posterior draw of
``(P_eta, mu)`` each user's conditional ``p(eta_j | votes_j, P_eta, mu)`` is
exact up to quadrature, so

- ``eta_mean``, ``eta_sd`` and ``p_above = P(eta_j >= eta_star | data)`` are
  averages of conditional moments and tail masses over the draws
  (:func:`attnmodel.posterior.draws.attentiveness_from_draws`);
- ``eta[user]`` draws (marginal variant) are drawn from that conditional, one
  per user and posterior draw; the latent variant keeps the sampler's own;
- ``log_likelihood["votes"]`` is each user's marginal log-likelihood per draw,
  the pointwise quantity ``az.loo`` needs to rank families.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from attnmodel.errors import BoundaryWarning
from attnmodel.inference.em import EMProblem, EMState
from attnmodel.leaderboard import leaderboard_dataset
from attnmodel.model.mu_structure import BradleyTerryMu, mu_structure_json
from attnmodel.model.pymc_model import AttnModel, build_model
from attnmodel.model.ties import TieParams
from attnmodel.model.workspace import release_work_buffer
from attnmodel.posterior.conditional import conditional_summaries
from attnmodel.posterior.draws import attentiveness_from_draws, summary_thin
from attnmodel.results.tree import SAMPLE_DIMS, build_tree

__all__ = [
    "SAMPLERS",
    "GAUSSIAN_USERS",
    "TARGET_ACCEPT",
    "TUNE",
    "default_target_accept",
    "default_tune",
    "sample_nuts",
]

#: Sampler names: PyMC's default choice, PyMC's own NUTS, nutpie, numpyro.
SAMPLERS = ("default", "pymc", "nutpie", "numpyro")

#: Above this many (draw, user) values per-user draws and pointwise log-likelihoods
#: are not stored unless asked for.
STORE_LIMIT = 20_000_000

#: Default ``target_accept``: 0.8 in the identified coordinates of a continuous
#: family (Beta) on logs of at least :data:`GAUSSIAN_USERS` users, 0.95
#: everywhere else (:func:`default_target_accept`). With that many users the
#: votes pin the shape of ``P_eta`` and the identified posterior is close to
#: Gaussian: PyMC's usual 0.8 leaves no divergences on the 78-pair log of
#: ``benchmarks/bench_nuts_real.py`` and takes 15 leapfrog steps a draw there
#: against 38 at 0.95, and the Beta reference comparison of
#: ``tests/test_nuts_reference.py`` passes. On the MT-Bench file (65 users) the
#: concentration of ``P_eta`` is weakly pinned (its 94% interval spans a factor
#: of ten) and the posterior has a heavy tail: one divergent transition in 9
#: seeds at 0.8 and in 8 seeds at 0.9, none at 0.95. The identified two-point
#: model at 0.8 under-explored the lower tail of ``q_low`` in its reference
#: comparison (z = 4.3 on its 5% quantile), so the atom families keep 0.95, as
#: do the standard coordinates (on MT-Bench, with ``P_eta`` pushed onto
#: ``eta = 1``, 0.9 left divergences there).
TARGET_ACCEPT = {"identified_continuous": 0.8, "other": 0.95}

#: Users from which the identified Beta model gets the lower ``target_accept``.
GAUSSIAN_USERS = 150


#: Default tuning steps per chain: ``"from_mode"`` where PyMC's NUTS starts every
#: chain at the MAP-EM mode of a continuous family's identified coordinates with
#: its diagonal mass matrix from the curvature there (:func:`_identified_starts`),
#: PyMC's own 1000 everywhere else. From that start the step size and the mass
#: matrix have little to find: with 500 steps the 78-pair log of
#: ``benchmarks/bench_nuts_real.py`` and the MT-Bench file keep the gate's
#: r_hat, ESS and zero divergences over seeds, with the same leapfrog steps a
#: draw and step sizes as after 1000 (``benchmarks/README.md``); with 1000,
#: tuning took 68,384 of the 78-pair fit's 128,384 leapfrog steps (17.1 an
#: iteration against 15.0 a draw), with 500 36,392 of 96,408.
TUNE = {"from_mode": 500, "other": 1000}


def default_tune(attn: AttnModel, from_mode: bool) -> int:
    """Default tuning steps (:data:`TUNE`) of a built model.

    ``from_mode``: the chains start at the MAP-EM mode with the mass matrix
    from its curvature there.
    """
    if from_mode and attn.parameterization == "identified" and not attn.family.discrete:
        return TUNE["from_mode"]
    return TUNE["other"]


def default_target_accept(attn: AttnModel) -> float:
    """The default ``target_accept`` of a built model (see :data:`TARGET_ACCEPT`)."""
    if (
        attn.parameterization == "identified"
        and not attn.family.discrete
        and attn.counts.n_users >= GAUSSIAN_USERS
    ):
        return TARGET_ACCEPT["identified_continuous"]
    return TARGET_ACCEPT["other"]


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
    mu_structure=None,
    n_components: int | None = None,
    variant: str = "marginal",
    parameterization: str = "auto",
    sampler: str = "pymc",
    draws: int = 1000,
    tune: int | None = None,
    chains: int = 4,
    cores: int | None = None,
    target_accept: float | None = None,
    seed: int = 0,
    progressbar: bool = True,
    eta_star: float = 0.5,
    hdi_prob: float = 0.94,
    store_eta: bool | str = "auto",
    log_likelihood: bool | str = "auto",
    provenance: Mapping[str, Any] | None = None,
    **sample_kwargs: Any,
) -> xr.DataTree:
    """Sample the posterior of the model with NUTS.

    Parameters
    ----------
    data : VoteData
    family : str or Family
    mu, mu_prior, priors, mu_structure, n_components
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
        Passed to :func:`pymc.sample`. ``tune`` defaults to :data:`TUNE`:
        500 where the chains start at the MAP-EM mode with a mass matrix from
        the curvature there (PyMC's NUTS, continuous family, identified
        coordinates), 1000 otherwise. ``target_accept`` defaults to
        :func:`default_target_accept` of the model: 0.8 in the identified
        coordinates of the Beta family on logs of at least
        :data:`GAUSSIAN_USERS` users, 0.95 otherwise.
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
    provenance : mapping, optional
        Where the data came from; see :func:`attnmodel.results.tree.build_tree`.
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
    attn = build_model(
        data,
        family,
        **model_kw,
        mu_structure=mu_structure,
        variant=variant,
        parameterization=parameterization,
    )
    if target_accept is None:
        target_accept = default_target_accept(attn)
    kwargs: dict[str, Any] = {
        "draws": draws,
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
    # The start's Hessian and the sampler's log density in IEEE arithmetic (see
    # _exact_arithmetic): the same seed gives the same draws whatever PyTensor's cache holds.
    with _exact_arithmetic():
        from_mode = False
        if attn.parameterization == "identified" and "initvals" not in sample_kwargs:
            starts, from_mode = _identified_starts(
                attn, data, family, model_kw, chains, seed, nuts_sampler, target_accept
            )
            kwargs.update(starts)
        if tune is None:
            tune = default_tune(attn, from_mode)
        kwargs["tune"] = tune
        if "step" in kwargs:
            # The step carries target_accept itself.
            del kwargs["nuts"]
        elif nuts_sampler == "pymc":
            kwargs["compile_kwargs"] = {"mode": _compile_mode()}
        kwargs.update(sample_kwargs)
        timings["start"] = time.perf_counter() - clock
        clock = time.perf_counter()
        with attn.model, _interrupts() as interrupted:
            try:
                idata = pm.sample(**kwargs)
            except Exception:
                if interrupted:
                    raise KeyboardInterrupt from None
                raise
            finally:
                # The fused Op's work space, kept for the start's gradients, is not needed now.
                release_work_buffer()
    if interrupted:
        # PyMC stops at Ctrl-C and returns what it drew so far: not a result.
        raise KeyboardInterrupt
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
        provenance=provenance,
    )
    # Seconds per phase: building the model, the start (MAP-EM, and for PyMC's
    # NUTS compiling the step and the curvature), pm.sample, post-processing.
    timings["post"] = time.perf_counter() - clock
    settings = json.loads(tree.attrs["settings"])
    settings["timings"] = {k: round(v, 3) for k, v in timings.items()}
    tree.attrs["settings"] = json.dumps(settings)
    for note in json.loads(tree.attrs.get("fit_warnings", "[]")):
        name = attn.family.name
        warnings.warn(f"degenerate fit of {name}: {note}", BoundaryWarning, stacklevel=2)
    return tree


@contextlib.contextmanager
def _interrupts() -> Iterator[list[int]]:
    """Record Ctrl-C (SIGINT) while sampling, passing it on as before.

    :func:`pymc.sample` catches the ``KeyboardInterrupt`` and returns the
    draws so far (or fails for lack of them); the list yielded tells the
    caller that the user asked to stop. Outside the main thread, where no
    handler can be set, or where SIGINT is ignored, nothing is recorded.
    """
    seen: list[int] = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
    if previous is None or previous == signal.SIG_IGN:
        yield seen  # no handler can be set, or Ctrl-C is ignored on purpose
        return

    def handler(signum, frame):
        seen.append(signum)
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


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
) -> tuple[dict[str, Any], bool]:
    """Starting points and (PyMC's NUTS) a mass matrix for the identified coordinates.

    Returns the :func:`pymc.sample` arguments and whether the mass matrix
    starts from the curvature at the mode.

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
        return {"initvals": starts, "step": step}, var is not None
    return {"initvals": starts[0]}, False


def _exact_arithmetic():
    """PyTensor's Numba code compiled without fast-math.

    With fast-math the rounding of the compiled log density depends on
    whether Numba inlines the functions PyTensor keeps in its disk cache, so
    the same seed gave other draws from one state of that cache to the next;
    IEEE arithmetic gives the same draws whatever the cache holds.
    """
    import pytensor

    return pytensor.config.change_flags(numba__fastmath=False)


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


def _states(attn: AttnModel, draws: xr.Dataset) -> list[list[EMState]]:
    """The global parameters of every draw, ``states[chain][draw]``.

    With ties modelled each state carries the draw's tie parameters
    (:class:`attnmodel.model.ties.TieParams`), which the per-user conditional
    posterior needs (:func:`attnmodel.posterior.conditional.conditional_summaries`).
    """
    params = {name: draws[name].values for name in attn.family.param_names}
    mu = draws["mu"].values
    tie_draws = None
    if getattr(attn.counts, "has_ties", False):
        tie_draws = [draws[name].values for name in TieParams._fields]
    states = []
    for c in range(draws.sizes["chain"]):
        row = []
        for d in range(draws.sizes["draw"]):
            values = {}
            for name, arr in params.items():
                v = arr[c, d]
                values[name] = float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=float)
            ties = None if tie_draws is None else TieParams(*(float(t[c, d]) for t in tie_draws))
            row.append(EMState(values, np.asarray(mu[c, d], dtype=float), None, ties))
        states.append(row)
    return states


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
    provenance: Mapping[str, Any] | None,
) -> xr.DataTree:
    """The result tree of the sampler's output: its draws and per-user summaries over them."""
    posterior_in = idata["posterior"].to_dataset()
    draws = _global_draws(attn, posterior_in)
    rng = np.random.default_rng([seed, 1])
    latent_eta = attn.variant == "latent" and "eta" in posterior_in
    thin = summary_thin(
        draws.sizes["chain"] * draws.sizes["draw"],
        attn.counts.n_rows,
        (store_eta and not latent_eta) or log_likelihood,
    )
    used = draws.isel(draw=slice(None, None, thin))
    summ = conditional_summaries(
        EMProblem(attn.counts, attn.family, attn.mu_spec, grid=attn.grid),
        _states(attn, used),
        eta_star=eta_star,
        store_eta=store_eta and not latent_eta,
        log_likelihood=log_likelihood,
        rng=rng,
    )
    users = list(attn.users)
    user_row = attn.counts.user_row
    chain_draw = {"chain": draws["chain"].values, "draw": draws["draw"].values}
    posterior = draws.copy()
    posterior["mu"] = posterior["mu"].astype(float)
    structure = attn.mu_structure
    if latent_eta:
        posterior["eta"] = posterior_in["eta"].assign_coords(user=users)
    elif store_eta:
        posterior["eta"] = xr.DataArray(
            summ["eta_user"], dims=("chain", "draw", "user"), coords={**chain_draw, "user": users}
        )
    att = attentiveness_from_draws(
        summ,
        user_row=user_row,
        users=users,
        n_votes=attn.counts.votes_per_user(),
        chains=used["chain"].values,
        draws=used["draw"].values,
        eta_star=eta_star,
        hdi_prob=hdi_prob,
        thin=thin,
    )
    groups: dict[str, xr.Dataset] = {"posterior": posterior, "attentiveness": att}
    if isinstance(structure, BradleyTerryMu):
        theta = posterior["theta"].stack(sample=SAMPLE_DIMS).values
        tail = 0.5 * (1.0 - hdi_prob)
        groups["leaderboard"] = leaderboard_dataset(
            structure.models,
            theta.mean(axis=1),
            theta.std(axis=1, ddof=1),
            np.quantile(theta, tail, axis=1),
            np.quantile(theta, 1.0 - tail, axis=1),
        )
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
    own = {k: info[k] for k in ("sampler", "variant", "parameterization")}
    own["mu_structure"] = mu_structure_json(structure, attn.mu_structure_reason)
    own.update({k: int(info[k]) for k in ("chains", "draws", "tune", "seed")})
    cuts = {"eta_star": eta_star, "hdi_prob": hdi_prob}
    return build_tree(
        "nuts", attn.family, attn.mu_spec, attn.priors_json(), groups,
        settings=info, attrs=own, provenance=provenance, counts=attn.counts,
        grid=attn.grid, structure=structure, **cuts
    )  # fmt: skip
