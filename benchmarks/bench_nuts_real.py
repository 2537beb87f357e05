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
or ``--only pairs78`` for one case).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help="run one case in this process and print JSON")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--repeats", type=int, default=1, help="fresh runs per case (median)")
    ap.add_argument("--data", default=None, help=f"path of {MTBENCH}")
    ap.add_argument("--timeout", type=float, default=None, help="seconds before a run is ended")
    args = ap.parse_args()
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
