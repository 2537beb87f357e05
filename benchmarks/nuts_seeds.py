"""Divergent transitions of the MT-Bench NUTS fit over seeds, at a given ``target_accept``.

A single NUTS run with 0 divergences says little about how often a default
leaves one: the diagnostics gate refuses a fit with any. This script fits the
MT-Bench file (the ``human`` split of lmsys/mt_bench_human_judgments, Zheng et
al. 2023, arXiv:2306.05685, CC-BY-4.0, in ``shared/data`` beside the clone) by
``attnmodel.fit(data, "beta", method="nuts", seed=S, target_accept=T)`` with
every other default, once per seed, and prints for each run the divergent
transitions, the mean leapfrog steps a draw and the wall time, then the count
of runs with any divergence.

    PYTHONPATH=. python benchmarks/nuts_seeds.py --target-accept 0.8 --seeds 100:116

``--target-accept default`` uses :func:`attnmodel.inference.nuts.default_target_accept`.
"""

from __future__ import annotations

import argparse
import json
import time

from bench_nuts_real import _find_mtbench

import attnmodel as am


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target-accept", default="default", help="a number or 'default'")
    ap.add_argument("--seeds", default="100:110", help="START:STOP (STOP excluded)")
    ap.add_argument(
        "--data", default=None, help="the MT-Bench CSV (default: found beside the clone)"
    )
    args = ap.parse_args()
    path = args.data or _find_mtbench()
    if path is None:
        raise SystemExit("mtbench_human_judgments.csv not found: pass --data PATH")
    ta = None if args.target_accept == "default" else float(args.target_accept)
    start, stop = (int(x) for x in args.seeds.split(":"))
    data = am.VoteData.from_file(path, user="user_id")
    failed = 0
    for seed in range(start, stop):
        t0 = time.perf_counter()
        dt = am.fit(data, "beta", method="nuts", seed=seed, target_accept=ta, progressbar=False)
        stats = dt["sample_stats"]
        div = int(stats["diverging"].values.sum())
        steps = float(stats["n_steps"].values.mean())
        used = json.loads(dt.attrs["settings"])["target_accept"]
        failed += div > 0
        print(
            f"seed {seed} (target_accept {used}): divergences {div}, "
            f"leapfrog steps a draw {steps:.1f}, "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    print(f"target_accept {args.target_accept}: {failed} of {stop - start} runs with divergences")


if __name__ == "__main__":
    main()
