"""Benchmark: NUTS fits (``sample_nuts``) in the paper's setting and at 10^5 users.

What is measured
----------------
Each case runs in a fresh Python subprocess (``--case NAME``), so compilation
is paid as a user pays it and the peak RSS is the case's own. The data are
per-user counts (``simulate_counts`` + ``VoteData.from_counts``, data seed
20261126 as in ``bench_em.py``); ``sample_nuts`` runs with its defaults
(PyMC's NUTS, 4 chains, 1000 draws after 1000 tuning steps, target_accept
0.9, one worker process per usable CPU up to 4) unless the case says otherwise, ``seed=0``, no
progress bar.

* ``total``: wall time around the ``sample_nuts`` call, from the votes in
  memory to the result tree.
* Its phases, as ``sample_nuts`` records them in the result's
  ``settings["timings"]``: ``build`` (``build_model``), ``start`` (the MAP-EM
  start of the identified coordinates and, for PyMC's NUTS, compiling its
  step and the curvature at the start), ``compile`` (the rest of the
  ``pymc.sample`` call outside PyMC's own ``sampling_time``: compiling,
  starting worker processes), ``sample`` (``sampling_time``) and ``post``
  (the per-user summaries, MCSE, HDI, the tree).
* Convergence of the global parameters (posterior variables without a
  ``user`` dim; a known ``mu`` is constant and left out):
  ``attnmodel.results.summary.convergence_table`` (max r_hat, min bulk and tail ESS
  over the parameters), divergences, and ESS/s = min bulk ESS divided by
  ``total`` (and by ``sample`` alone).
* For the large cases, ``grad ms``: one log density + gradient evaluation of
  the same model, compiled again in the child after the fit and timed at the
  initial point (mean of 200 calls).

Cases
-----
* ``paper-beta-*``: m = 400 users, n_j = 50, one pair, Beta(3, 5), mu = 0.8
  unknown with prior ``BetaPrior(8, 2)``: the latent variant (standard
  coordinates), the marginal variant in standard coordinates, and the
  marginal variant in identified coordinates (what ``"auto"`` picks).
* ``paper-twopoint-marginal``: 0.6 delta(0.4) + 0.4 delta(0.98), mu = 0.8 known.
* ``big-beta-marginal*``: 10^5 users, n_j uniform in 50..100 (1,789 distinct
  count rows), Beta(3, 5), mu unknown with ``BetaPrior(8, 2)``, the default
  variant and coordinates; per-user draws and pointwise log-likelihoods are
  not stored (``"auto"`` leaves them out at this size) and the per-row
  summaries use every 8th draw (``posterior.draws.SUMMARY_BUDGET``). Target: total under
  60 s on this 2-core machine. ``big-beta-marginal`` runs the defaults (the
  4 chains in 2 worker processes here: ``nuts.default_cores``),
  ``-1core`` passes ``cores=1`` (one chain after another, what PyMC's own
  default gives on this machine), ``-nutpie`` uses ``sampler="nutpie"``.

Run: ``.venv/bin/python benchmarks/bench_nuts.py`` (about 12 minutes on a
2-core machine). ``--case NAME`` runs one case and prints a JSON line;
``--list`` lists cases; ``--only PREFIX[,PREFIX]`` runs the cases whose names
start so.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

from _harness import banner, peak_rss_mb, print_header, run_in_child

BETA = ("beta", {"alpha": 3.0, "beta": 5.0})
TWO_POINT = ("two_point", {"q_low": 0.6, "eta_low": 0.4, "eta_high": 0.98})
DATA_SEED = 20261126

BIG = (BETA, 100_000, (50, 100), None)

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
    "big-beta-marginal": (*BIG, {}),
    "big-beta-marginal-1core": (*BIG, {"cores": 1}),
    "big-beta-marginal-nutpie": (*BIG, {"sampler": "nutpie"}),
}

BIG_TARGET_S = 60.0


def run_case(name: str) -> dict:
    """Run one case in this process and return its figures."""
    import attnmodel as am
    from attnmodel.inference.nuts import sample_nuts
    from attnmodel.model.priors import BetaPrior
    from attnmodel.results.summary import convergence_table, flat_globals, n_divergences

    (family, params), n_users, n_votes, mu, kwargs = CASES[name]
    n, s, _ = am.simulate_counts(family, params, n_users, n_votes, 0.8, seed=DATA_SEED)
    data = am.VoteData.from_counts(n, s)
    mu_kw = {"mu": mu} if mu is not None else {"mu_prior": BetaPrior(8.0, 2.0)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        dt = sample_nuts(data, family, seed=0, progressbar=False, **mu_kw, **kwargs)
        total = time.perf_counter() - t0
    settings = json.loads(dt.attrs["settings"])
    timings = settings["timings"]
    stats = dt["sample_stats"]
    # nutpie does not report its sampling time apart from its compile time.
    sampling = float(stats.attrs.get("sampling_time", "nan"))
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
        "sampler": settings["sampler"],
        "chains": int(settings["chains"]),
        "draws": int(settings["draws"]),
        "tune": int(settings["tune"]),
        "total_s": total,
        "build_s": timings["build"],
        "start_s": timings["start"],
        "compile_s": timings["sample"] - sampling,
        "sampling_s": sampling,
        "post_s": timings["post"],
        "summary_thin": int(dt["attentiveness"].attrs["summary_thin"]),
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
    if name.startswith("big-"):
        out["gradient_ms"] = gradient_seconds(data, family, mu_kw) * 1e3
    return out


def gradient_seconds(data, family, mu_kw, repeats: int = 200) -> float:
    """Seconds per evaluation of the log density and its gradient (what a leapfrog step costs).

    Compiles the same model as ``sample_nuts`` (default coordinates) and times
    the compiled function at the initial point, after one warm-up call.
    """
    from pymc.blocking import DictToArrayBijection

    from attnmodel.inference.nuts import _compile_mode
    from attnmodel.model.pymc_model import build_model

    model = build_model(data, family, **mu_kw).model
    fn = model.logp_dlogp_function(ravel_inputs=True, mode=_compile_mode())
    fn.set_extra_values({})
    point = model.initial_point()
    x = DictToArrayBijection.map({v.name: point[v.name] for v in model.value_vars})
    fn(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return (time.perf_counter() - t0) / repeats


def verdict(r: dict) -> tuple[str, str]:
    """(target text, PASS/MISS/info)."""
    if r["case"].startswith("big-"):
        return "total < 60 s", "PASS" if r["total_s"] < BIG_TARGET_S else "MISS"
    return "-", "info"


def print_table(results: list[dict]) -> None:
    head = (
        f"{'case':31s} {'param':10s} {'total s':>8s} {'build':>6s} {'start':>6s} "
        f"{'compile':>7s} {'sample':>7s} {'post':>5s} {'ESSbulk':>7s} {'ESStail':>7s} "
        f"{'ESS/s':>6s} {'ESS/s smp':>9s} {'max rhat':>8s} {'div':>4s} {'grad ms':>7s} "
        f"{'peak MB':>7s}  {'target':13s} result"
    )
    print_header(head)
    for r in results:
        target, tag = verdict(r)
        param = r["parameterization"] if r["variant"] == "marginal" else "latent"
        grad = f"{r['gradient_ms']:.2f}" if "gradient_ms" in r else "-"
        print(
            f"{r['case']:31s} {param:10s} {r['total_s']:>8.1f} {r['build_s']:>6.2f} "
            f"{r['start_s']:>6.1f} {r['compile_s']:>7.1f} {r['sampling_s']:>7.1f} "
            f"{r['post_s']:>5.1f} {r['min_ess_bulk']:>7.0f} {r['min_ess_tail']:>7.0f} "
            f"{r['min_ess_bulk'] / r['total_s']:>6.1f} "
            f"{r['min_ess_bulk'] / r['sampling_s']:>9.1f} {r['max_rhat']:>8.4f} "
            f"{r['divergences']:>4d} {grad:>7s} {r['peak_rss_mb']:>7.0f}  {target:13s} {tag}"
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
    names = [c for c in CASES if not prefixes or any(c.startswith(p) for p in prefixes)]
    print(banner("bench_nuts"))
    results = []
    for name in names:
        r = run_in_child(__file__, name)
        if r is None:
            continue
        results.append(r)
        print(
            f"  {name}: {r['n_rows']} distinct rows, {r['chains']}x{r['draws']} draws "
            f"(tune {r['tune']}), mean tree depth {r['mean_tree_depth']:.2f}, "
            f"{r['mean_steps']:.1f} leapfrog steps per draw, summaries every "
            f"{r['summary_thin']} draw(s); [r_hat, ESS bulk, ESS tail] {r['per_param']}; "
            f"means {r['means']}; warnings {r['warnings']}",
            flush=True,
        )
    print()
    print_table(results)


if __name__ == "__main__":
    main()
