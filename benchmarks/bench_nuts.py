"""Benchmark: NUTS fits (``attnmodel.nuts.sample_nuts``) in the paper's setting and at 10^5 users.

What is measured
----------------
Each case runs in a fresh Python subprocess (``--case NAME``), so compilation
is paid as a user pays it and the peak RSS is the case's own. The data are
per-user counts (``simulate_counts`` + ``VoteData.from_counts``, data seed
20261126 as in ``bench_em.py``); ``sample_nuts`` runs with its defaults
(PyMC's NUTS, 4 chains, 1000 draws after 1000 tuning steps, target_accept
0.9) unless the case says otherwise, ``seed=0``, no progress bar.

* ``total``: wall time around the ``sample_nuts`` call (build, compile,
  sample, per-user post-processing, assembling the result tree).
* The split of that time, read without touching attnmodel's code:
  ``build`` (``build_model``, timed by wrapping the name in
  ``attnmodel.nuts``), ``compile`` (the result's ``settings.wall_time``, which
  is the whole ``pymc.sample`` call, minus ``sample_stats.sampling_time``:
  compiling logp and gradient, the initial point), ``sampling`` (PyMC's own
  ``sampling_time``), ``cond`` (``conditional_summaries``: one exact per-user
  E-step per posterior draw, also wrapped) and ``rest`` (MCSE, HDI, the tree).
* Convergence of the global parameters (posterior variables without a
  ``user`` dim; a known ``mu`` is constant and left out):
  ``attnmodel.results.convergence_table`` (max r_hat, min bulk and tail ESS
  over the parameters), divergences, and ESS/s = min bulk ESS divided by
  ``total`` (and by ``sampling`` alone).

Cases
-----
* ``paper-beta-*``: m = 400 users, n_j = 50, one pair, Beta(3, 5), mu = 0.8
  unknown with prior ``BetaPrior(8, 2)``: the latent variant (standard
  coordinates), the marginal variant in standard coordinates, and the
  marginal variant in identified coordinates (what ``"auto"`` picks).
* ``paper-twopoint-marginal``: 0.6 delta(0.4) + 0.4 delta(0.98), mu = 0.8 known.
* ``big-beta-marginal-*``: 10^5 users, n_j uniform in 50..100, Beta(3, 5),
  mu unknown with ``BetaPrior(8, 2)``, marginal variant with the default
  coordinates, ``store_eta=False, log_likelihood=False``.
  Target: total under 60 s on a 2-core machine.

  ``-full`` runs the defaults (4 chains x (1000 + 1000)); it takes hours here,
  so it runs only when ``--only`` names it. ``-short`` runs one chain of
  150 tuning steps and 100 draws and measures where the time goes: leapfrog
  steps per draw, the cost of one log-density + gradient evaluation (the
  model compiled again and timed at its initial point), seconds per sampler
  iteration and per draw of post-processing. From these it extrapolates the
  defaults' total (sampling time in proportion to the iterations,
  post-processing to the kept draws) and gives the target's verdict on that
  extrapolation. A short tuning phase leaves a cruder step size and mass
  matrix than 1000 steps do, so the extrapolated sampling time is indicative;
  the compile time and the post-processing alone are measured, not
  extrapolated, and already decide the verdict.

PyMC's default ``cores`` counts half the logical CPUs (it assumes hyperthreads),
so on a 2-core machine the chains run one after the other.

Run: ``.venv/bin/python benchmarks/bench_nuts.py`` (about 20 minutes on a
loaded 2-core machine). ``--case NAME`` runs one case and prints a JSON line;
``--list`` lists cases; ``--only PREFIX[,PREFIX]`` runs the cases whose names
start so (the only way to run ``big-beta-marginal-full``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings

from _harness import banner, peak_rss_mb, print_header, run_in_child

BETA = ("beta", {"alpha": 3.0, "beta": 5.0})
TWO_POINT = ("two_point", {"q_low": 0.6, "eta_low": 0.4, "eta_high": 0.98})
DATA_SEED = 20261126

BIG = (BETA, 100_000, (50, 100), None)
BIG_KW = {"store_eta": False, "log_likelihood": False}
SHORT = {"chains": 1, "tune": 150, "draws": 100}

# name: (family spec, n_users, n_votes, mu known (None: BetaPrior(8, 2)), sample_nuts kwargs)
CASES = {
    "paper-beta-latent": (
        BETA,
        400,
        50,
        None,
        {"variant": "latent", "parameterization": "standard"},
    ),
    "paper-beta-marginal-standard": (
        BETA,
        400,
        50,
        None,
        {"variant": "marginal", "parameterization": "standard"},
    ),
    "paper-beta-marginal-identified": (BETA, 400, 50, None, {}),
    "paper-twopoint-marginal": (TWO_POINT, 400, 50, 0.8, {}),
    "big-beta-marginal-short": (*BIG, {**BIG_KW, **SHORT}),
    "big-beta-marginal-short-nutpie": (*BIG, {**BIG_KW, **SHORT, "sampler": "nutpie"}),
    "big-beta-marginal-full": (*BIG, BIG_KW),
}
#: Cases that run only when ``--only`` names them (hours on 2 cores).
SLOW = ("big-beta-marginal-full",)
#: sample_nuts defaults, for the extrapolation of a short run.
DEFAULT_RUN = {"chains": 4, "tune": 1000, "draws": 1000}

BIG_TARGET_S = 60.0


class _PhaseTimer:
    """Times calls of functions that ``attnmodel.nuts`` looks up by module-global name."""

    def __init__(self, module, names: tuple[str, ...]) -> None:
        self.seconds = dict.fromkeys(names, 0.0)
        for name in names:
            setattr(module, name, self._timed(name, getattr(module, name)))

    def _timed(self, name, func):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0

        return timed


def run_case(name: str) -> dict:
    """Run one case in this process and return its figures."""
    import attnmodel as am
    import attnmodel.nuts as nuts
    from attnmodel.priors import BetaPrior
    from attnmodel.results import convergence_table, flat_globals, n_divergences

    (family, params), n_users, n_votes, mu, kwargs = CASES[name]
    n, s, _ = am.simulate_counts(family, params, n_users, n_votes, 0.8, seed=DATA_SEED)
    data = am.VoteData.from_counts(n, s)
    mu_kw = {"mu": mu} if mu is not None else {"mu_prior": BetaPrior(8.0, 2.0)}
    timer = _PhaseTimer(nuts, ("build_model", "conditional_summaries"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        dt = nuts.sample_nuts(data, family, seed=0, progressbar=False, **mu_kw, **kwargs)
        total = time.perf_counter() - t0
    settings = json.loads(dt.attrs["settings"])
    stats = dt["sample_stats"]
    wall = float(settings["wall_time"])
    # nutpie does not report its sampling time apart from its compile time.
    sampling = float(stats.attrs.get("sampling_time", "nan"))
    build = timer.seconds["build_model"]
    cond = timer.seconds["conditional_summaries"]
    table = convergence_table(dt)
    moving = table[~table["constant"]]
    means = {k: round(float(da.mean()), 4) for k, da in flat_globals(dt).items()}
    out = {
        "case": name,
        "family": family,
        "n_users": n_users,
        "n_rows": int(data.counts.n_rows),
        "mu": f"known {mu}" if mu is not None else "BetaPrior(8,2)",
        "variant": settings["variant"],
        "parameterization": settings["parameterization"],
        "chains": int(settings["chains"]),
        "draws": int(settings["draws"]),
        "tune": int(settings["tune"]),
        "total_s": total,
        "build_s": build,
        "compile_s": wall - sampling,
        "sampling_s": sampling,
        "cond_s": cond,
        "rest_s": total - build - wall - cond,
        "wall_time_s": wall,
        "max_rhat": float(moving["r_hat"].max()),
        "min_ess_bulk": float(moving["ess_bulk"].min()),
        "min_ess_tail": float(moving["ess_tail"].min()),
        "per_param": {
            k: [
                round(float(row["r_hat"]), 4),
                round(float(row["ess_bulk"])),
                round(float(row["ess_tail"])),
            ]
            for k, row in moving.iterrows()
        },
        "divergences": n_divergences(dt),
        "mean_tree_depth": float(stats["tree_depth" if "tree_depth" in stats else "depth"].mean()),
        "mean_steps": float(stats["n_steps"].mean()),
        "means": means,
        "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:80]}" for w in caught}),
        "peak_rss_mb": peak_rss_mb(),
    }
    if "-short" in name:
        out["gradient_ms"] = gradient_ms(data, family, mu_kw) * 1e3
        out.update(extrapolate(out))
    return out


def gradient_ms(data, family, mu_kw, repeats: int = 20) -> float:
    """Seconds per evaluation of the log density and its gradient (what a leapfrog step costs).

    Compiles the same model as ``sample_nuts`` (default coordinates) and times
    the compiled function at the initial point, after one warm-up call.
    """
    from pymc.blocking import DictToArrayBijection

    from attnmodel.pymc_model import build_model

    model = build_model(data, family, **mu_kw).model
    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    point = model.initial_point()
    x = DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars})
    fn(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return (time.perf_counter() - t0) / repeats


def extrapolate(r: dict) -> dict:
    """Total time of a run with the sample_nuts defaults, from a short run's phases.

    Sampling scales with the iterations (tuning included), the per-draw
    post-processing with the kept draws; build and compile stay. When the
    sampler does not report its sampling time apart (nutpie), the short run's
    whole ``pymc.sample`` time is kept and the remaining iterations are
    costed at leapfrog steps per draw times the cost of one gradient.
    """
    iters = r["chains"] * (r["tune"] + r["draws"])
    kept = r["chains"] * r["draws"]
    d_iters = DEFAULT_RUN["chains"] * (DEFAULT_RUN["tune"] + DEFAULT_RUN["draws"])
    d_kept = DEFAULT_RUN["chains"] * DEFAULT_RUN["draws"]
    per_gradient = r["mean_steps"] * r["gradient_ms"] / 1e3
    if math.isnan(r["sampling_s"]):
        sample_call = r["wall_time_s"] + per_gradient * (d_iters - iters)
        per_iteration = math.nan
    else:
        per_iteration = r["sampling_s"] / iters
        sample_call = r["compile_s"] + per_iteration * d_iters
    per_draw = (r["cond_s"] + r["rest_s"]) / kept * d_kept
    return {
        "per_iteration_s": per_iteration,
        "cond_per_draw_s": r["cond_s"] / kept,
        "extrapolated": {
            "sample_call_s": sample_call,
            "sampling_by_gradient_s": per_gradient * d_iters,
            "post_s": per_draw,
            "total_s": r["build_s"] + sample_call + per_draw,
        },
    }


def verdict(r: dict) -> tuple[str, str]:
    """(target text, PASS/MISS/info)."""
    if r["case"] == "big-beta-marginal-full":
        return "total < 60 s", "PASS" if r["total_s"] < BIG_TARGET_S else "MISS"
    if r["case"].startswith("big-beta-marginal-short"):
        ok = r["extrapolated"]["total_s"] < BIG_TARGET_S
        return "(4x1000) < 60 s", ("PASS" if ok else "MISS") + " (extrapolated)"
    return "-", "info"


def print_table(results: list[dict]) -> None:
    head = (
        f"{'case':31s} {'param':10s} {'total s':>8s} {'build':>6s} {'compile':>7s} "
        f"{'sample':>7s} {'cond':>6s} {'rest':>5s} {'ESSbulk':>7s} {'ESStail':>7s} "
        f"{'ESS/s':>6s} {'ESS/s smp':>9s} {'max rhat':>8s} {'div':>4s} {'peak MB':>7s}  "
        f"{'target':15s} result"
    )
    print_header(head)
    for r in results:
        target, tag = verdict(r)
        param = r["parameterization"] if r["variant"] == "marginal" else "latent"
        print(
            f"{r['case']:31s} {param:10s} {r['total_s']:>8.1f} {r['build_s']:>6.2f} "
            f"{r['compile_s']:>7.1f} {r['sampling_s']:>7.1f} {r['cond_s']:>6.1f} "
            f"{r['rest_s']:>5.1f} {r['min_ess_bulk']:>7.0f} {r['min_ess_tail']:>7.0f} "
            f"{r['min_ess_bulk'] / r['total_s']:>6.1f} "
            f"{r['min_ess_bulk'] / r['sampling_s']:>9.1f} {r['max_rhat']:>8.4f} "
            f"{r['divergences']:>4d} {r['peak_rss_mb']:>7.0f}  {target:15s} {tag}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help="run one case in this process and print JSON")
    ap.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("--only", default="", help="comma-separated case-name prefixes to run")
    args = ap.parse_args()
    if args.list:
        print("\n".join(CASES))
        return
    if args.case:
        print(json.dumps(run_case(args.case)))
        return

    prefixes = [p for p in args.only.split(",") if p]
    names = [c for c in CASES if any(c.startswith(p) for p in prefixes)]
    if not prefixes:
        names = [c for c in CASES if c not in SLOW]
    print(banner("bench_nuts"))
    results = []
    for name in names:
        r = run_in_child(__file__, name)
        if r is None:
            continue
        results.append(r)
        print(
            f"  {name}: {r['n_rows']} distinct rows, {r['chains']}x{r['draws']} draws "
            f"(tune {r['tune']}), mean tree depth {r['mean_tree_depth']:.2f}; "
            f"[r_hat, ESS bulk, ESS tail] {r['per_param']}; means {r['means']}; "
            f"warnings {r['warnings']}",
            flush=True,
        )
        if "extrapolated" in r:
            e = r["extrapolated"]
            print(
                f"  {name}: {r['mean_steps']:.1f} leapfrog steps per draw, "
                f"{r['gradient_ms']:.1f} ms per log-density + gradient evaluation, "
                f"{r['per_iteration_s']:.2f} s per iteration, conditional summaries "
                f"{r['cond_per_draw_s']:.3f} s per draw. With the defaults (4 chains x "
                f"(1000 + 1000)): pymc.sample ~{e['sample_call_s'] / 60:.0f} min "
                f"(steps x gradient alone: {e['sampling_by_gradient_s'] / 60:.0f} min), "
                f"per-draw post-processing ~{e['post_s'] / 60:.0f} min, "
                f"total ~{e['total_s'] / 60:.0f} min",
                flush=True,
            )
    print()
    print_table(results)


if __name__ == "__main__":
    main()
