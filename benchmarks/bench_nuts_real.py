"""Benchmark: NUTS with the package defaults on a real log and on a simulated many-pair log.

What is measured
----------------
Each case runs in a fresh Python subprocess (``--case NAME``); its figures
are those of the diagnostics gate (:func:`attnmodel.results.summary.diagnostic_checks`
at its defaults: ``r_hat <= 1.01``, bulk and tail ESS ``>= 400`` over the
global parameters, 0 divergences) and the time taken.

* ``mtbench``: ``attnmodel fit mtbench_human_judgments.csv --family beta
  --method nuts --out R.nc``, run through :func:`attnmodel.cli.main` in the
  child (reading, the MAP-EM start, compilation, sampling, the per-user
  summaries and writing the result: what the command costs). The file is
  the ``human`` split of lmsys/mt_bench_human_judgments (Zheng et al. 2023,
  arXiv:2306.05685), CC-BY-4.0, in ``shared/data`` beside the clone (or
  ``--data PATH``): 65 judges, 15 pairs, 2,575 votes after dropping ties.
* ``pairs78``: the 78-pair log of ``bench_many_pairs.py`` (200 users x 13
  models, about 40,000 votes, votes per user heavy-tailed from 10 to 10^4,
  ``eta ~ Beta(4, 1.5)``, ``mu`` from model strengths), fitted by
  ``attnmodel.fit(data, "beta", method="nuts")`` with every default.

Wall time is the call's; CPU time is the process's and its waited-for
children's (PyMC runs the chains in worker processes): on a shared machine
it tells the work apart from the waiting. Target per case: the gate passes
and the wall time is **under 120 s** on 2 cores. ``--repeats N`` runs each
case N times in fresh processes and prints the median.

Run: ``.venv/bin/python benchmarks/bench_nuts_real.py`` (``--only mtbench``
or ``--only pairs78`` for one case). ``--gradient`` prints instead the CPU
and wall time of one log density + gradient of the ``pairs78`` model (the
function NUTS calls) and of the fused kernel alone (:func:`gradient_timing`);
``--post`` the time per draw of the ``pairs78`` per-user summaries, the draws
one after another and in threads (:func:`post_timing`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _harness import banner, print_header, run_in_child

CASES = ("mtbench", "pairs78")
TARGET_S = 120.0
MTBENCH = "mtbench_human_judgments.csv"


def _find_mtbench() -> Path | None:
    here = Path(__file__).resolve()
    for root in (here.parents[2], here.parents[1].parent, here.parents[1]):
        path = root / "shared" / "data" / MTBENCH
        if path.is_file():
            return path
    return None


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def pairs78_data():
    """The ``pairs78`` log of ``bench_many_pairs.py`` as VoteData (users x pairs counts)."""
    from bench_many_pairs import CASES as MANY
    from bench_many_pairs import many_pair_counts

    from attnmodel.data.votes import VoteData

    n_users, n_models, total, _, _ = MANY["pairs78"]
    data, _ = many_pair_counts(n_users, n_models, total)
    c = data.counts
    n = np.zeros((c.n_users, c.n_pairs), dtype=np.int64)
    s = np.zeros_like(n)
    for j, row in enumerate(c.user_row):
        sl = slice(c.row_ptr[row], c.row_ptr[row + 1])
        n[j, c.entry_pair[sl]] = c.entry_n[sl]
        s[j, c.entry_pair[sl]] = c.entry_s[sl]
    return VoteData.from_counts(n, s, pairs=data.pairs)


def run_case(name: str, data_path: str | None) -> dict:
    import attnmodel as am
    from attnmodel.results import load
    from attnmodel.results.summary import diagnostic_checks

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if name == "mtbench":
            path = data_path or _find_mtbench()
            if path is None:
                raise SystemExit(f"{MTBENCH} not found; pass --data PATH")
            from attnmodel.cli import main

            out = Path(tmp) / "r.nc"
            argv = ["fit", str(path), "--family", "beta", "--user-col", "user_id"]
            argv += ["--method", "nuts", "--out", str(out)]
            t0, c0 = time.perf_counter(), _cpu_s()
            code = main(argv)
            wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
            if code != 0:
                raise SystemExit(f"attnmodel {' '.join(argv)} exited with {code}")
            tree = load(out)
        else:
            data = pairs78_data()
            t0, c0 = time.perf_counter(), _cpu_s()
            tree = am.fit(data, "beta", method="nuts", progressbar=False)
            wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
        checks = diagnostic_checks(tree)
    settings = json.loads(tree.attrs["settings"])
    post = tree["posterior"]
    stats = tree["sample_stats"]
    steps = stats["n_steps"].values
    return {
        "case": name,
        "n_users": int(post.sizes.get("user", 0)) or int(tree["attentiveness"].sizes["user"]),
        "n_pairs": int(post.sizes["pair"]),
        "wall_s": wall,
        "cpu_s": cpu,
        "timings": settings.get("timings", {}),
        "r_hat_max": float(checks.loc["r_hat", "value"]),
        "ess_bulk_min": float(checks.loc["ess_bulk", "value"]),
        "ess_tail_min": float(checks.loc["ess_tail", "value"]),
        "divergences": int(checks.loc["divergences", "value"]),
        "gate": bool(checks["passed"].all()),
        "worst": {k: str(checks.loc[k, "variable"]) for k in ("r_hat", "ess_bulk", "ess_tail")},
        "steps_per_draw": float(steps.mean()),
        "gradients": int(steps.sum()),
        "tree_depth_max": int(stats["tree_depth"].values.max()),
        "step_size": float(stats["step_size"].values.mean()),
        "alpha": float(post["alpha"].mean()),
        "beta": float(post["beta"].mean()),
        "fit_warnings": json.loads(tree.attrs.get("fit_warnings", "[]")),
        "warnings": len(caught),
    }


def gradient_timing(calls: int = 50, repeats: int = 20) -> dict:
    """CPU and wall time of one log density + gradient of the ``pairs78`` NUTS model.

    The function PyMC's NUTS calls (``step._logp_dlogp_func``, compiled in
    PyTensor's default mode), at ``calls`` points around the MAP-EM start (every
    coordinate moved by N(0, 0.01)), ``repeats`` times; medians per call. Also
    the fused kernel alone (:func:`attnmodel.model.kernels.marginal_votes_mu`
    in the Op's kept work space) on the model's counts at the start, so the
    rest of the graph shows as the difference; and the minor page faults per
    call (none expected: see :func:`attnmodel.model.ops.work_buffer`).
    """
    import pymc as pm
    import pytensor
    from pymc.blocking import DictToArrayBijection
    from pytensor.graph.traversal import ancestors

    from attnmodel.inference.em import fit_em
    from attnmodel.inference.nuts import default_target_accept
    from attnmodel.model import ops
    from attnmodel.model.identified import identified_point
    from attnmodel.model.ops import MarginalVotesMu
    from attnmodel.model.pymc_model import build_model

    data = pairs78_data()
    attn = build_model(data, "beta")
    em = fit_em(data, "beta", n_init=1, warn=False)
    z0 = identified_point(attn, em.params_, em.mu_.to_numpy())
    with attn.model:
        step = pm.NUTS(target_accept=default_target_accept(attn))
    fn = step._logp_dlogp_func
    fn.set_extra_values({})
    x0 = DictToArrayBijection.map({"identified_coords": z0})
    rng = np.random.default_rng(0)
    points = [x0._replace(data=x0.data + rng.normal(0, 0.01, x0.data.size)) for _ in range(calls)]

    # The kernel's inputs at the start, from the model's log density graph.
    logp = attn.model.logp()
    node = next(
        v.owner
        for v in ancestors([logp])
        if v.owner is not None and isinstance(v.owner.op, MarginalVotesMu)
    )
    shared = [x.get_value() for x in node.inputs[:4]]
    floats = pytensor.function(attn.model.value_vars, node.inputs[4:])(z0)
    args = [np.ascontiguousarray(a) for a in (*shared, *floats)]

    def per_call(f, items):
        for item in items:  # warm-up (compilation, caches)
            f(item)
        cpu, wall = [], []
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            for item in items:
                f(item)
            cpu.append((time.process_time() - c0) / len(items) * 1e3)
            wall.append((time.perf_counter() - t0) / len(items) * 1e3)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        return statistics.median(cpu), statistics.median(wall), faults / (repeats * len(items))

    spacing = node.op.spacing
    counts = attn.counts
    return {
        "rows": int(counts.n_rows),
        "entries": int(counts.entry_pair.size),
        "nodes": int(attn.grid.size),
        "coords": int(z0.size),
        "logp_dlogp_ms": per_call(fn, points),
        "kernel_ms": per_call(lambda _: ops._mu_kernel(*args, spacing), range(calls)),
    }


def post_timing(n_draws: int = 400) -> dict:
    """Wall and CPU time per draw of the per-user summaries of the ``pairs78`` model.

    :func:`attnmodel.posterior.conditional.conditional_summaries` as NUTS
    post-processing calls it (every draw's per-user draws and pointwise
    log-likelihoods stored), on ``n_draws`` draws of the global parameters
    around the MAP-EM estimate (``alpha``, ``beta`` times ``1 + N(0, 0.01)``,
    ``mu + N(0, 0.005)``, 2 chains), once with the draws one after another
    and once with the draws' passes in threads
    (:func:`attnmodel.posterior.conditional.draw_threads`); the two must
    give the same numbers bit for bit.
    """
    from attnmodel.inference.em import EMProblem, EMState, fit_em
    from attnmodel.model.pymc_model import build_model
    from attnmodel.posterior import conditional

    data = pairs78_data()
    attn = build_model(data, "beta")
    em = fit_em(data, "beta", n_init=1, warn=False)
    rng = np.random.default_rng(0)
    mu0 = em.mu_.to_numpy()

    def state():
        params = {k: float(v) * (1.0 + 0.01 * rng.normal()) for k, v in em.params_.items()}
        return EMState(params, np.clip(mu0 + 0.005 * rng.normal(size=mu0.size), 0.01, 0.99))

    states = [[state() for _ in range(n_draws // 2)] for _ in range(2)]
    problem = EMProblem(attn.counts, attn.family, attn.mu_spec, grid=attn.grid)
    kw = {"eta_star": 0.5, "store_eta": True, "log_likelihood": True}
    # Compile first (a cold cache would count its compilation).
    conditional.conditional_summaries(problem, [states[0][:2]], rng=rng, **kw)
    threads = conditional.draw_threads(attn.counts, attn.grid.size)
    out, times = [], {}
    for name, k in (("one after another", 1), (f"{threads} threads", threads)):
        pick = conditional.draw_threads
        conditional.draw_threads = lambda counts, n_nodes, k=k: k
        try:
            c0, t0 = _cpu_s(), time.perf_counter()
            out.append(conditional.conditional_summaries(
                problem, states, rng=np.random.default_rng(1), **kw
            ))  # fmt: skip
            wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
        finally:
            conditional.draw_threads = pick
        times[name] = (wall / n_draws * 1e3, cpu / n_draws * 1e3)
    same = all(np.array_equal(out[0][k], out[1][k], equal_nan=True) for k in out[0])
    return {"draws": n_draws, "times": times, "same": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help="run one case in this process and print JSON")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--repeats", type=int, default=1, help="fresh runs per case (median)")
    ap.add_argument("--data", default=None, help=f"path of {MTBENCH}")
    ap.add_argument("--timeout", type=float, default=None, help="seconds before a run is ended")
    ap.add_argument(
        "--gradient", action="store_true", help="time one gradient of the pairs78 model instead"
    )
    ap.add_argument(
        "--post", action="store_true", help="time the pairs78 per-user summaries per draw instead"
    )
    args = ap.parse_args()
    if args.post:
        print(banner("bench_nuts_real --post"))
        load0 = os.getloadavg()[0]
        p = post_timing()
        for name, (wall, cpu) in p["times"].items():
            print(f"  {name}: wall {wall:.2f} ms, CPU {cpu:.2f} ms per draw")
        print(
            f"  ({p['draws']} draws; same numbers: {p['same']}; load {load0:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at end)"
        )
        return
    if args.gradient:
        print(banner("bench_nuts_real --gradient"))
        load0 = os.getloadavg()[0]
        g = gradient_timing()
        print(
            f"  pairs78: {g['rows']} rows, {g['entries']} entries, {g['nodes']} nodes, "
            f"{g['coords']} coordinates\n"
            f"  log density + gradient (NUTS's function): CPU {g['logp_dlogp_ms'][0]:.3f} ms, "
            f"wall {g['logp_dlogp_ms'][1]:.3f} ms, {g['logp_dlogp_ms'][2]:.1f} page faults "
            f"per call\n"
            f"  fused kernel alone: CPU {g['kernel_ms'][0]:.3f} ms, "
            f"wall {g['kernel_ms'][1]:.3f} ms, {g['kernel_ms'][2]:.1f} page faults per call\n"
            f"  (medians of 20 x 50 calls; load {load0:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at end)"
        )
        return
    if args.case:
        print(json.dumps(run_case(args.case, args.data)))
        return
    only = [c for c in args.only.split(",") if c]
    print(banner("bench_nuts_real"))
    print(f"  load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    extra = ("--data", args.data) if args.data else ()
    rows = []
    for name in CASES:
        if only and name not in only:
            continue
        runs = []
        for _ in range(args.repeats):
            r = run_in_child(__file__, name, extra, args.timeout)
            if r is None:
                continue
            runs.append(r)
            print(
                f"  {name}: {r['n_users']} users, {r['n_pairs']} pairs; wall {r['wall_s']:.1f} s, "
                f"CPU {r['cpu_s']:.1f} s (phases {r['timings']}); r_hat max "
                f"{r['r_hat_max']:.4f}, ESS bulk min {r['ess_bulk_min']:.0f}, tail min "
                f"{r['ess_tail_min']:.0f} (worst {r['worst']}), divergences {r['divergences']}; "
                f"leapfrog steps per draw {r['steps_per_draw']:.1f} ({r['gradients']} after "
                f"tuning), tree depth max {r['tree_depth_max']}, step size {r['step_size']:.3g}; "
                f"alpha {r['alpha']:.3g}, beta {r['beta']:.3g}; fit warnings "
                f"{r['fit_warnings']}; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        if not runs:
            continue
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s")}
        gate = all(r["gate"] for r in runs)
        ok = gate and med["wall_s"] < TARGET_S
        rows.append((name, len(runs), med, max(r["r_hat_max"] for r in runs),
                     min(r["ess_bulk_min"] for r in runs), min(r["ess_tail_min"] for r in runs),
                     max(r["divergences"] for r in runs), "PASS" if ok else "MISS"))  # fmt: skip
    print()
    print_header(
        f"{'case':8s} {'runs':>4s} {'wall':>8s} {'CPU':>8s} {'r_hat':>7s} {'ESS bulk':>8s} "
        f"{'ESS tail':>8s} {'div':>4s}  target (gate, < {TARGET_S:g} s)"
    )
    for name, n, med, rhat, bulk, tail, div, tag in rows:
        print(
            f"{name:8s} {n:>4d} {med['wall_s']:>7.1f}s {med['cpu_s']:>7.1f}s {rhat:>7.4f} "
            f"{bulk:>8.0f} {tail:>8.0f} {div:>4d}  {tag}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
