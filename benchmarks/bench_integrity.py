"""Benchmark: what the integrity checks of results cost.

What is measured
----------------
On simulated counts with three pairs and ``--users`` users (default 10,000 and
1,000,000), the median over ``--runs`` runs (after one warm-up) of:

* ``counts_fingerprint``: the data fingerprint a result records when it is built
  and that ``filter`` and ``compare`` compute again for the votes they are given;
* ``content_checksum`` of the MAP-EM result tree of the smaller data set
  (500 ``eta`` draws per user), written by ``save`` and recomputed by ``load``,
  beside the time of ``save`` and ``load`` themselves (``.nc``).

The machines are shared: quote medians, and read a wide spread as a busy machine.
There is no target; the figures say what the checks add to a fit, a save and a load.

Run: ``.venv/bin/python benchmarks/bench_integrity.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def median_seconds(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from attnmodel import fit
    from attnmodel.data.counts import counts_fingerprint
    from attnmodel.data.votes import VoteData
    from attnmodel.errors import BoundaryWarning
    from attnmodel.results import load, save
    from attnmodel.results.io import content_checksum

    rng = np.random.default_rng(0)
    datasets = {}
    for m in args.users:
        n = rng.integers(1, 60, size=(m, 3))
        data = VoteData.from_counts(n, rng.binomial(n, 0.7), users=[f"user{i}" for i in range(m)])
        datasets[m] = data
        sec = median_seconds(
            lambda d=data: counts_fingerprint(d.counts, d.users, d.pairs), args.runs
        )
        print(f"counts_fingerprint, {m} users x 3 pairs: median {sec:.3f} s")

    small = datasets[min(datasets)]
    with warnings.catch_warnings():
        # Every simulated user votes alike, a degenerate fit; only its size matters here.
        warnings.simplefilter("ignore", BoundaryWarning)
        tree = fit(small, "beta", n_draws=500)
    print(f"result tree of {small.n_users} users, 500 eta draws: {tree.nbytes / 1e6:.1f} MB")
    sec = median_seconds(lambda: content_checksum(tree), args.runs)
    print(f"content_checksum: median {sec:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.nc"
        sec = median_seconds(lambda: save(tree, path, force=True), args.runs)
        print(f"save .nc (checksum included): median {sec:.3f} s")
        sec = median_seconds(lambda: load(path), args.runs)
        print(f"load .nc (checksum verified): median {sec:.3f} s")


if __name__ == "__main__":
    main()
