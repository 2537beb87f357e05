"""Benchmark: ``collapse_counts`` for users voting on several pairs.

What is measured
----------------
Per-(user, pair) counts are simulated in a fresh subprocess per case and
collapsed with ``attnmodel.data.counts.collapse_counts``. Reported: wall time of
the collapse (median of 3 calls; 1 call for the slow dense method), the
peak of memory allocated during the collapse (``tracemalloc``, which numpy
reports its buffers to; inputs excluded, output included), and the child's
peak RSS (``ru_maxrss``; includes the interpreter and the simulated inputs).

Cases (sorted by (user, pair), as VoteData passes them):

* ``28pairs-*``: 10^6 users, 28 pairs, each (user, pair) with n uniform in
  0..3 (pair 0 at least 1), s ~ Binomial(n, 0.7): 2.1e7 entries, nearly all
  rows distinct. Methods ``hash`` (default), ``sort`` (exact refinement) and
  ``dense-unlimited``: the dense method, np.unique(axis=0) on the dense
  (users x 56) matrix, with its cell limit lifted.
* ``1e7-sparse``: 10^6 users x 10 of 28 pairs, n in 1..3: 10^7 entries,
  all rows distinct.
* ``1e7-identical``: 10^6 users on 10 pairs drawn from 50 distinct rows:
  10^7 entries, every user but 50 checked entry by entry.

Targets
-------
* 10^6 users x 28 pairs, default method: under 2 s (the dense method takes
  over 10 s on the same table).
* 10^7 entries: collapse allocation peak and child peak RSS under 2 GB.

Run: ``.venv/bin/python benchmarks/bench_collapse.py`` (about 2 minutes;
``--skip-dense`` leaves out the slow dense method).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _harness import banner, peak_rss_mb, print_header, run_in_child

CASES = {
    "28pairs-hash": ("28pairs", "hash", 3),
    "28pairs-sort": ("28pairs", "sort", 3),
    "28pairs-dense-unlimited": ("28pairs", "dense-unlimited", 1),
    "1e7-sparse-hash": ("sparse", "hash", 3),
    "1e7-identical-hash": ("identical", "hash", 3),
}


def make_data(kind: str):
    import numpy as np

    rng = np.random.default_rng(20261126)
    m, p = 1_000_000, 28
    if kind == "28pairs":
        n = rng.integers(0, 4, size=(m, p))
        n[:, 0] += 1
        s = rng.binomial(n, 0.7)
        ui, pk = np.nonzero(n)
        nk, sk = n[ui, pk], s[ui, pk]
        del n, s
    elif kind == "sparse":
        k = 10
        pk = np.sort(np.argsort(rng.random((m, p)), axis=1)[:, :k], axis=1).reshape(-1)
        ui = np.repeat(np.arange(m), k)
        nk = rng.integers(1, 4, ui.size)
        sk = rng.binomial(nk, 0.7)
    else:
        k = 10
        proto_n = rng.integers(1, 3, (50, k))
        proto_s = rng.binomial(proto_n, 0.5)
        pick = rng.integers(0, 50, m)
        ui = np.repeat(np.arange(m), k)
        pk = np.tile(np.arange(k), m)
        nk, sk = proto_n[pick].reshape(-1), proto_s[pick].reshape(-1)
    return [a.astype(np.int64) for a in (ui, pk, nk, sk)], m, p


def run_case(name: str) -> dict:
    import gc
    import tracemalloc

    from attnmodel.data import counts

    kind, method, repeats = CASES[name]
    (ui, pk, nk, sk), m, p = make_data(kind)
    if method == "dense-unlimited":
        counts._DENSE_CELL_LIMIT = 10**12
        method = "dense"
    gc.collect()
    times, alloc = [], []
    for _ in range(repeats):
        tracemalloc.start()
        t0 = time.perf_counter()
        table = counts.collapse_counts(ui, pk, nk, sk, m, p, method=method)
        times.append(time.perf_counter() - t0)
        alloc.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
        del table
        gc.collect()
    # tracemalloc slows allocation-heavy code a little; time once more without it.
    t0 = time.perf_counter()
    table = counts.collapse_counts(ui, pk, nk, sk, m, p, method=method)
    plain = time.perf_counter() - t0
    return {
        "case": name,
        "entries": int(ui.size),
        "users": m,
        "rows": int(table.n_rows),
        "time_s": statistics.median(times + [plain]),
        "times": times + [plain],
        "alloc_peak_mb": max(alloc),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help="run one case in this process and print JSON")
    ap.add_argument("--skip-dense", action="store_true", help="leave out the slow dense method")
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    print(banner("bench_collapse"))
    rows = []
    for name in CASES:
        if args.skip_dense and "dense" in name:
            continue
        r = run_in_child(__file__, name)
        if r is None:
            continue
        rows.append(r)
        print(f"  {name}: times {[round(t, 2) for t in r['times']]} s", flush=True)
    print()
    head = (
        f"{'case':24s} {'entries':>9s} {'rows':>8s} {'median s':>9s} {'alloc MB':>9s} "
        f"{'peak RSS MB':>11s}  {'target':26s} result"
    )
    print_header(head)
    for r in rows:
        if r["case"] == "28pairs-hash":
            target, tag = "< 2 s", "PASS" if r["time_s"] < 2.0 else "MISS"
        elif r["case"].startswith("1e7"):
            ok = r["alloc_peak_mb"] < 2048 and r["peak_rss_mb"] < 2048
            target, tag = "alloc and RSS < 2 GB", "PASS" if ok else "MISS"
        else:
            target, tag = "-", "info"
        print(
            f"{r['case']:24s} {r['entries']:>9d} {r['rows']:>8d} {r['time_s']:>9.2f} "
            f"{r['alloc_peak_mb']:>9.0f} {r['peak_rss_mb']:>11.0f}  {target:26s} {tag}"
        )


if __name__ == "__main__":
    main()
