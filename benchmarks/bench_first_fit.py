"""Benchmark: the first MAP-EM fit in a fresh process, compiled kernels cached or not.

What is measured
----------------
The E-step and its helpers are Numba kernels compiled on first use and cached on
disk (``cache=True``: beside the package's sources, or under ``NUMBA_CACHE_DIR``).
A new user's first fit therefore costs either the compilation (nothing cached yet:
a fresh installation) or loading the cached machine code (every later process).
Each case runs in a fresh interpreter and times, in that process:

* ``import``: ``import attnmodel`` and ``from attnmodel import fit_em, simulate_votes``;
* ``data``: simulating the paper's setting (400 users, 50 to 100 votes each,
  ``Beta(3, 5)``, ``mu = 0.8``, one pair) and building its ``VoteData``;
* ``first fit``: ``fit_em(data, "beta")`` with ``mu`` unknown under the default
  prior and the default starts, as the README's first example runs it;
* ``second fit``: the same call again in the same process (what the fit itself
  costs once everything is compiled and loaded);
* ``total``: the whole child process, start to exit, as seen from outside.

Cases:

* ``cold``: ``NUMBA_CACHE_DIR`` set to a new, empty folder, so every kernel is
  compiled (the first fit after installing);
* ``warm``: the same folder again, now filled by the cold run (every later fit);
* ``warmup``: a new, empty folder filled by ``python -m attnmodel.warmup`` (the
  set-up step that compiles every kernel at installation; its own time is
  printed apart), then the first fit: what a user of a fresh installation pays.

Each case is repeated ``--runs`` times (a new empty cache folder for every cold
run); medians, minimum and maximum are printed. The machines are shared: quote the
medians of one run of this script.

Target
------
The first fit of the paper's setting in a fresh process (``first fit``) under 3 s:
PASS or MISS for each case.

Run: ``.venv/bin/python benchmarks/bench_first_fit.py`` (about three minutes at
``--runs 3`` on an idle 2-core machine, most of it compiling; ``--only paper`` for
the target case alone).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import banner, checkout_env, print_header

TARGET_S = 3.0
ROOT = Path(__file__).resolve().parents[1]


MTBENCH = ROOT.parent / "shared" / "data" / "mtbench_human_judgments.csv"

#: Case name -> what it fits (shown in the table).
CASES = {
    "paper": "paper setting: 400 users, 50..100 votes, Beta(3, 5), mu = 0.8 unknown",
    "paper-numba": "the same with engine='numba' (the compiled E-step larger logs use)",
    "mtbench": "the MT-Bench file: 65 judges, 15 pairs, every mu unknown",
}


def child(case: str) -> None:
    """Time the phases of a first fit of ``case`` in this (fresh) process; print one JSON line."""
    t0 = time.perf_counter()
    import attnmodel  # noqa: F401
    from attnmodel import VoteData, fit_em, simulate_votes

    t1 = time.perf_counter()
    kwargs = {}
    if case == "mtbench":
        data = VoteData.from_file(MTBENCH, user="user_id")
    else:
        sim = simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 400, (50, 100), mu=0.8, seed=0)
        data = VoteData.from_frame(sim.votes, user="user", z="z", pair="pair")
        if case == "paper-numba":
            kwargs["engine"] = "numba"
    t2 = time.perf_counter()
    first = fit_em(data, "beta", **kwargs)
    t3 = time.perf_counter()
    second = fit_em(data, "beta", **kwargs)
    t4 = time.perf_counter()
    print(
        json.dumps(
            {
                "import": t1 - t0,
                "data": t2 - t1,
                "first": t3 - t2,
                "second": t4 - t3,
                "converged": bool(first.converged_ and second.converged_),
            }
        )
    )


def run_case(case: str, cache_dir: str) -> dict:
    """One fresh interpreter running :func:`child` with ``NUMBA_CACHE_DIR=cache_dir``."""
    env = checkout_env(NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", case],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the child process failed:\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["total"] = total
    return out


def run_warmup(cache_dir: str) -> float:
    """``python -m attnmodel.warmup`` into ``cache_dir``; its wall time in seconds."""
    env = checkout_env(NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "attnmodel.warmup"], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the warm-up failed:\n{proc.stderr}")
    return time.perf_counter() - t0


def main() -> int:
    """Run each case cold and warm ``--runs`` times and print the table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repeats per case (default 3)")
    parser.add_argument(
        "--only", nargs="+", choices=sorted(CASES), default=None, help="run these cases only"
    )
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    print(banner("bench_first_fit"))
    names = args.only or [c for c in CASES if c != "mtbench" or MTBENCH.is_file()]
    results: dict[tuple[str, str], list[dict]] = {}
    warmups: list[float] = []
    with tempfile.TemporaryDirectory(prefix="attnmodel-numba-") as scratch:
        for name in names:
            for i in range(args.runs):
                cache = str(Path(scratch) / f"{name}-{i}")
                results.setdefault((name, "cold"), []).append(run_case(name, cache))
                results.setdefault((name, "warm"), []).append(run_case(name, cache))
                installed = str(Path(scratch) / f"{name}-{i}-warmup")
                warmups.append(run_warmup(installed))
                results.setdefault((name, "warmup"), []).append(run_case(name, installed))
    phases = ("import", "data", "first", "second", "total")
    for name in names:
        print(f"{name}: {CASES[name]}")
    print("raw seconds per run (import / data / first fit / second fit / total):")
    for (name, cache), runs in results.items():
        for r in runs:
            print(f"  {name} {cache}: " + " / ".join(f"{r[p]:.2f}" for p in phases))
    print(
        "python -m attnmodel.warmup into an empty cache: median "
        f"{statistics.median(warmups):.1f} s [{min(warmups):.1f}, {max(warmups):.1f}]"
    )
    print()
    print_header(
        f"{'case':<12} {'cache':<6} {'import':>7} {'data':>7} {'first fit [min, max]':>24} "
        f"{'second':>7} {'total':>7}  converged  first fit < {TARGET_S:g} s"
    )
    for (name, cache), runs in results.items():
        med = {p: statistics.median(r[p] for r in runs) for p in phases}
        lo = min(r["first"] for r in runs)
        hi = max(r["first"] for r in runs)
        verdict = "PASS" if med["first"] < TARGET_S else "MISS"
        conv = all(r["converged"] for r in runs)
        first = f"{med['first']:.2f}s [{lo:.2f}, {hi:.2f}]"
        print(
            f"{name:<12} {cache:<6} {med['import']:>6.2f}s {med['data']:>6.2f}s {first:>24} "
            f"{med['second']:>6.2f}s {med['total']:>6.2f}s  {str(conv):<9}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
