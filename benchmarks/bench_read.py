"""Benchmark: reading a 10^7-row vote log with ``VoteData.from_file``, pandas vs DuckDB.

What is measured
----------------
Two Parquet files are generated once and cached in ``benchmarks/.cache/``
(gitignored; delete it to regenerate, about 1 minute):

* ``raw`` layout, 10^7 rows: ``user_id`` (16-hex-digit strings), ``model_a``,
  ``model_b``, ``winner`` (``model_a``/``model_b``/``tie``/``tie (bothbad)``,
  about 10 % ties) and ``question_id`` (int). 10^6 users with skewed vote
  counts (1 + multinomial with log-normal weights: median 3, mean 10, max in
  the thousands), 7 models -> 21 pairs with skewed popularity, model pairs
  shown in random order, rows shuffled (users interleave as in a real log).
  Votes follow the model: P(stronger wins) = 1/2 + eta (mu_pair - 1/2),
  eta ~ Beta(3, 5).
* ``oriented`` layout, 10^7 rows: ``user_id`` and ``z`` (int8), one pair,
  same users and vote counts.

Cases, each run 3 times, every run in a fresh subprocess whose peak RSS
(``ru_maxrss`` at its end) is recorded:

* ``raw-duckdb`` / ``oriented-duckdb``: ``VoteData.from_file(path,
  user="user_id", engine="duckdb")`` end to end (DuckDB reads, checks, orients
  and counts per (user, pair); then the pair designation and the collapse to
  distinct count rows), with DuckDB's default memory limit (1GB);
  ``raw-duckdb-512MB`` with ``memory_limit="512MB"`` (DuckDB spills part of
  its work to disk).
* ``raw-pandas`` / ``oriented-pandas``: the same with ``engine="pandas"``
  (the whole table in pandas, then ``from_frame``).
* ``raw-read``: ``pandas.read_parquet(path)`` alone, to split reading from the rest.

The time spent in the collapse (``collapse_counts``) is measured by a wrapper and shown
separately. Table: median wall time, min..max, median of the peak RSS.

Each DuckDB read also prints where its wall time went (wrappers, medians over
the runs): ``users``, the pass over the log that finds the distinct users
(``engines._users``); ``cells``, the pass that streams every vote's user key
and code out of DuckDB and counts them in compiled code (``engines._counted_cells``,
or ``_grouped_cells`` when DuckDB groups), whatever is left of Numba's start
(which runs in a thread beside DuckDB) included; ``collapse``; and ``rest``,
everything else (opening the files, checks, the combinations, the
designation). The case ``numba-start`` times Numba's start alone in a fresh
process: importing :mod:`attnmodel.data.grouping` (and Numba with it), then
the rest of what that thread runs (``engines._load_counting``: the first
cached call).

The CPU time (user + system, all threads) of each read is shown beside its
wall time: on a machine shared with other jobs it says what the read costs
when the wall time does not.

``--big`` runs instead the 10^8-row cases, once each: a raw log of 10^8 rows
in 100 Parquet files of 10^6 rows (``benchmarks/.cache/votes_raw_100000000/``,
2.2 GB, written once, file by file, in about 4 minutes): 10^7 users with the
same skew of votes per user, 8 models -> 28 pairs, 10 % ties.

* ``big-duckdb``: ``VoteData.from_file(folder, user="user_id",
  engine="duckdb", memory_limit=BIG_MEMORY_LIMIT)``, then ``fit_em(data,
  "beta")`` (mu unknown, default starts) on its counts;
* ``big-read``: ``big-duckdb`` without the fit (``--big --no-fit``);
  ``--fit-iter N`` runs instead ``N`` EM iterations of one start
  (``fit_em(data, "beta", n_init=1, max_iter=N)``) and prints their time
  per iteration, with the distinct count rows, their entries and the grid's
  nodes: what an E-step costs on these counts, when the whole fit is too
  long to wait for;
* ``big-dask``: ``engine="dask"`` on a ``LocalCluster`` of 2 worker processes
  with one thread each (its start-up is not timed); the counts' fingerprint
  (:func:`attnmodel.data.counts.counts_fingerprint`) must equal DuckDB's, and
  the users and pairs must come in DuckDB's order (a digest of them in order).
  CPU time is the client's plus the workers' (each worker reports its own);
  the workers' peak RSS is shown beside the client's. ``--dask-files 10``
  runs DuckDB and Dask on the first 10 files instead (``big10-...``).

Targets
-------
* raw layout, 10^7 rows, DuckDB: under 3 s end to end, peak RSS under 1 GB.
* pandas: no target (the figure the DuckDB reader replaces).
* 10^8 rows, DuckDB: under 60 s, peak RSS under 3 GB; the Beta fit under 30 s;
  Dask: the same counts (its time is shown beside DuckDB's).

Run: ``.venv/bin/python benchmarks/bench_read.py`` (a few minutes once the
files exist); ``--big`` for the 10^8-row cases. ``--case NAME`` runs one case
and prints a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _harness import banner, peak_rss_mb, print_header, run_in_child

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
N_ROWS = 10_000_000
N_USERS = 1_000_000
MODELS = [
    "gpt-4",
    "claude-2",
    "gemini-pro",
    "mixtral-8x7b",
    "llama-2-70b",
    "vicuna-33b",
    "alpaca-13b",
]
SEED = 20261126
RAW = os.path.join(CACHE, f"votes_raw_{N_ROWS}.parquet")
ORIENTED = os.path.join(CACHE, f"votes_oriented_{N_ROWS}.parquet")
TARGET_S = 3.0
TARGET_MB = 1024.0
REPEATS = 3

# The 10^8-row log (--big): 100 Parquet files in one folder.
BIG_ROWS = 100_000_000
BIG_USERS = 10_000_000
BIG_PARTS = 100
BIG_MODELS = [*MODELS, "qwen-72b"]  # 8 models -> 28 pairs
BIG = os.path.join(CACHE, f"votes_raw_{BIG_ROWS}")
BIG_TARGET_S = 60.0
BIG_TARGET_MB = 3072.0
BIG_FIT_TARGET_S = 30.0
# DuckDB's memory limit for the 10^8-row read (what the figures were measured with).
BIG_MEMORY_LIMIT = "2GB"
# A 10^8-row case still running after this long is stopped and left out of the table.
BIG_TIMEOUT_S = 1800.0

CASES = {
    "raw-duckdb": (RAW, "duckdb"),
    "raw-duckdb-512MB": (RAW, "duckdb-512MB"),
    "raw-pandas": (RAW, "pandas"),
    "raw-read": (RAW, "read"),
    "oriented-duckdb": (ORIENTED, "duckdb"),
    "oriented-pandas": (ORIENTED, "pandas"),
    "numba-start": (None, "numba"),
}

# What the DuckDB reads' phase wrappers time (see the module docstring).
PHASES = {"users": ("_users",), "cells": ("_counted_cells", "_grouped_cells")}


# ---------------------------------------------------------------------------
# data generation


def _users_and_counts(rng):
    import numpy as np

    weights = rng.lognormal(0.0, 1.5, N_USERS)
    per_user = 1 + rng.multinomial(N_ROWS - N_USERS, weights / weights.sum())
    ids = np.unique(rng.integers(0, 2**63, N_USERS + 1000, dtype=np.int64))[:N_USERS]
    ids = rng.permutation(ids)
    user_ids = [f"{int(x):016x}" for x in ids]
    user = np.repeat(np.arange(N_USERS), per_user)
    eta = rng.beta(3.0, 5.0, N_USERS)
    return user_ids, user, eta


def generate() -> None:
    """Write the two Parquet files (skipped when they exist)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(CACHE, exist_ok=True)
    if not os.path.exists(RAW):
        t0 = time.perf_counter()
        rng = np.random.default_rng(SEED)
        user_ids, user, eta = _users_and_counts(rng)
        order = rng.permutation(N_ROWS)  # interleave users
        user = user[order]
        del order
        k = len(MODELS)
        strength = np.linspace(1.2, 0.0, k)  # MODELS[0] strongest
        lo, hi = np.triu_indices(k, 1)  # lo is the stronger model
        mu = 1.0 / (1.0 + np.exp(-(strength[lo] - strength[hi])))
        pop = rng.dirichlet(np.full(lo.size, 0.7))  # skewed pair popularity
        pair = rng.choice(lo.size, N_ROWS, p=pop)
        z = rng.random(N_ROWS) < 0.5 + eta[user] * (mu[pair] - 0.5)
        swap = rng.random(N_ROWS) < 0.5
        a = np.where(swap, hi[pair], lo[pair])
        b = np.where(swap, lo[pair], hi[pair])
        a_won = z ^ swap
        winner = np.where(a_won, 0, 1).astype(np.int8)
        tie = rng.random(N_ROWS)
        winner[tie < 0.10] = 2
        winner[tie < 0.03] = 3
        names = pa.array(MODELS)
        table = pa.table(
            {
                "user_id": pa.array(user_ids).take(pa.array(user)),
                "model_a": names.take(pa.array(a)),
                "model_b": names.take(pa.array(b)),
                "winner": pa.array(["model_a", "model_b", "tie", "tie (bothbad)"]).take(
                    pa.array(winner)
                ),
                "question_id": pa.array(rng.integers(0, 200_000, N_ROWS)),
            }
        )
        pq.write_table(table, RAW + ".tmp")
        os.replace(RAW + ".tmp", RAW)
        print(f"wrote {RAW} in {time.perf_counter() - t0:.1f} s", flush=True)
    if not os.path.exists(ORIENTED):
        t0 = time.perf_counter()
        rng = np.random.default_rng(SEED + 1)
        user_ids, user, eta = _users_and_counts(rng)
        user = user[rng.permutation(N_ROWS)]
        z = (rng.random(N_ROWS) < 0.5 + eta[user] * 0.3).astype(np.int8)
        table = pa.table({"user_id": pa.array(user_ids).take(pa.array(user)), "z": pa.array(z)})
        pq.write_table(table, ORIENTED + ".tmp")
        os.replace(ORIENTED + ".tmp", ORIENTED)
        print(f"wrote {ORIENTED} in {time.perf_counter() - t0:.1f} s", flush=True)


def generate_big() -> None:
    """Write the 10^8-row log as BIG_PARTS Parquet files, one at a time.

    Memory stays at a few hundred MB: the users' ids, weights and
    attentiveness are held once (10^7 of each), and each file's 10^6 rows
    are made, written and dropped. Every user votes at least once (user i's
    first vote is in file i mod BIG_PARTS, after a shuffle); the other votes
    pick their user with the same skewed weights as the 10^7-row log, so a
    user's votes spread over the files. A file is written under a temporary
    name and renamed when complete, and each file has its own seed, so an
    interrupted run resumes where it stopped.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(BIG, exist_ok=True)
    parts = [os.path.join(BIG, f"part-{p:03d}.parquet") for p in range(BIG_PARTS)]
    if all(os.path.exists(f) for f in parts):
        return
    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED + 2)
    weights = rng.lognormal(0.0, 1.5, BIG_USERS)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    del weights
    ids = np.unique(rng.integers(0, 2**63, BIG_USERS + 10_000, dtype=np.int64))[:BIG_USERS]
    ids = rng.permutation(ids)
    user_ids = pa.array([f"{int(x):016x}" for x in ids])
    del ids
    eta = rng.beta(3.0, 5.0, BIG_USERS)
    first_of = rng.permutation(BIG_USERS).astype(np.int32)  # user's guaranteed vote
    k = len(BIG_MODELS)
    strength = np.linspace(1.2, 0.0, k)
    lo, hi = np.triu_indices(k, 1)
    mu = 1.0 / (1.0 + np.exp(-(strength[lo] - strength[hi])))
    pop = rng.dirichlet(np.full(lo.size, 0.7))
    names = pa.array(BIG_MODELS)
    winners = pa.array(["model_a", "model_b", "tie", "tie (bothbad)"])
    rows = BIG_ROWS // BIG_PARTS
    for p, path in enumerate(parts):
        if os.path.exists(path):
            continue
        prng = np.random.default_rng([SEED, p])
        guaranteed = first_of[p::BIG_PARTS].astype(np.int64)
        drawn = np.searchsorted(cdf, prng.random(rows - guaranteed.size), side="right")
        user = prng.permutation(np.concatenate([guaranteed, np.minimum(drawn, BIG_USERS - 1)]))
        pair = prng.choice(lo.size, rows, p=pop)
        z = prng.random(rows) < 0.5 + eta[user] * (mu[pair] - 0.5)
        swap = prng.random(rows) < 0.5
        a = np.where(swap, hi[pair], lo[pair])
        b = np.where(swap, lo[pair], hi[pair])
        winner = np.where(z ^ swap, 0, 1).astype(np.int8)
        tie = prng.random(rows)
        winner[tie < 0.10] = 2
        winner[tie < 0.03] = 3
        table = pa.table(
            {
                "user_id": user_ids.take(pa.array(user)),
                "model_a": names.take(pa.array(a)),
                "model_b": names.take(pa.array(b)),
                "winner": winners.take(pa.array(winner)),
                "question_id": pa.array(prng.integers(0, 200_000, rows)),
            }
        )
        pq.write_table(table, path + ".tmp")
        os.replace(path + ".tmp", path)
    print(f"wrote {BIG} ({BIG_PARTS} files) in {time.perf_counter() - t0:.1f} s", flush=True)


# ---------------------------------------------------------------------------


def describe(data) -> dict:
    """What was read: rows, users, pairs, ties, distinct count rows and their entries."""
    return {
        "rows": int(data.n_votes + data.n_ties_dropped),
        "users": data.n_users,
        "pairs": data.n_pairs,
        "ties": data.n_ties_dropped,
        "count_rows": data.counts.n_rows,
        "entries": int(data.counts.entry_n.size),
    }


def _process_cpu_s() -> float:
    """CPU time (user + system) of the calling process so far."""
    return sum(os.times()[:2])


def _process_peak_mb() -> float:
    return peak_rss_mb()


def _worker_figures(out: dict, client, cpu_before: dict) -> None:
    """Each Dask worker's CPU time during the read and its peak RSS (worker processes)."""
    cpu_after = client.run(_process_cpu_s)
    peaks = client.run(_process_peak_mb)
    out["workers_cpu_s"] = sum(cpu_after[w] - cpu_before.get(w, 0.0) for w in cpu_after)
    out["workers_peak_rss_mb"] = sorted(round(v) for v in peaks.values())


def users_digest(data) -> str:
    """SHA-256 of the users and pairs in their order: engines that number them alike share it."""
    import hashlib

    h = hashlib.sha256()
    for labels in (data.users, data.pairs):
        h.update("\x00".join(map(str, labels)).encode())
        h.update(b"\x01")
    return "sha256:" + h.hexdigest()


def run_big_case(name: str, fit_iter: int | None = None) -> dict:
    """The 10^8-row cases: DuckDB then the Beta fit, or Dask on a 2-worker LocalCluster.

    ``fit_iter``: the fit is ``fit_iter`` EM iterations of one start instead
    of the default fit.
    """
    import warnings

    import numpy as np

    from attnmodel import VoteData, fit_em
    from attnmodel.data.counts import counts_fingerprint

    # "big-...": the 100 files; "big10-...": the first 10 (10^7 rows).
    path = BIG if name.startswith("big-") else os.path.join(BIG, "part-00?.parquet")
    # "big-read" is "big-duckdb" without the fit.
    engine_case = "big-duckdb" if name == "big-read" else name
    out = {"case": name, "rss_after_import_mb": peak_rss_mb()}
    c0 = sum(os.times()[:2])
    t0 = time.perf_counter()
    if engine_case.endswith("-duckdb"):
        data = VoteData.from_file(
            path, user="user_id", engine="duckdb", memory_limit=BIG_MEMORY_LIMIT
        )
    else:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
            with Client(cluster) as client:
                workers_c0 = client.run(_process_cpu_s)
                t0 = time.perf_counter()  # the cluster's start-up is not timed
                c0 = sum(os.times()[:2])
                data = VoteData.from_file(path, user="user_id", engine="dask", scheduler=client)
                out["time_s"] = time.perf_counter() - t0
                out["cpu_s"] = sum(os.times()[:2]) - c0  # this process only
                _worker_figures(out, client, workers_c0)
    if "time_s" not in out:
        out["time_s"] = time.perf_counter() - t0
        out["cpu_s"] = sum(os.times()[:2]) - c0
    out["read_peak_rss_mb"] = peak_rss_mb()
    out.update(describe(data))
    print(json.dumps(out), file=sys.stderr, flush=True)  # the read's figures, before the fit
    if name == "big-duckdb":  # the Beta fit on the counts
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            c0 = sum(os.times()[:2])
            if fit_iter is not None:
                out["fit_iter"] = fit_iter
            try:
                if fit_iter is None:
                    fit = fit_em(data, "beta")
                else:
                    fit = fit_em(data, "beta", n_init=1, max_iter=fit_iter)
            except MemoryError as e:  # reported in the table, with the read's figures
                out["fit_s"] = time.perf_counter() - t0
                out["fit_cpu_s"] = sum(os.times()[:2]) - c0
                out["fit_error"] = f"MemoryError: {e}"
                out["peak_rss_mb"] = peak_rss_mb()
                out["fingerprint"] = counts_fingerprint(data.counts, data.users, data.pairs)
                return out
            out["fit_s"] = time.perf_counter() - t0
            out["fit_cpu_s"] = sum(os.times()[:2]) - c0
        out["fit_converged"] = bool(fit.converged_)
        out["fit_estep_records"] = sum(len(r) for r in fit.runs_)  # E-steps kept, all starts
        out["grid_nodes"] = fit.settings["grid_size"]
        out["fit"] = {k: round(float(v), 4) for k, v in fit.params_.items()}
        out["fit_mu_range"] = [
            round(float(np.min(fit.mu_.to_numpy())), 4),
            round(float(np.max(fit.mu_.to_numpy())), 4),
        ]
    # The peak so far (the read's, or the fit's); the fingerprint (about 6 GB on
    # the 10^8-row counts) comes after it.
    out["peak_rss_mb"] = peak_rss_mb()
    out["fingerprint"] = counts_fingerprint(data.counts, data.users, data.pairs)
    out["order_digest"] = users_digest(data)
    return out


def run_case(name: str) -> dict:
    """Run one case in this process and return its figures."""
    import pandas as pd

    import attnmodel.data.votes as data_mod
    from attnmodel import VoteData

    path, what = CASES[name]
    rss_import = peak_rss_mb()
    out = {"case": name, "rss_after_import_mb": rss_import}
    if what == "numba":
        from attnmodel.data import engines

        t0 = time.perf_counter()
        import attnmodel.data.grouping  # noqa: F401 - its import timed apart

        out["import_s"] = time.perf_counter() - t0
        # What the DuckDB reads start beside their scans: the first cached call.
        t0 = time.perf_counter()
        engines._load_counting()
        out["first_call_s"] = time.perf_counter() - t0
        out["time_s"] = out["import_s"] + out["first_call_s"]
    elif what == "read":
        t0 = time.perf_counter()
        df = pd.read_parquet(path)
        out["time_s"] = time.perf_counter() - t0
        out["rows"] = len(df)
        out["dtypes"] = {str(k): str(v) for k, v in df.dtypes.items()}
    else:
        phases = dict.fromkeys([*PHASES, "collapse"], 0.0)

        def timed(phase, real):
            def timed_phase(*a, **kw):
                t = time.perf_counter()
                try:
                    return real(*a, **kw)
                finally:
                    phases[phase] += time.perf_counter() - t

            return timed_phase

        # The readers collapse with one or the other (an engine's cells are handed over).
        for name in ("collapse_counts", "collapse_taken_counts"):
            setattr(data_mod, name, timed("collapse", getattr(data_mod, name)))
        if what.startswith("duckdb"):
            import attnmodel.data.engines as engines

            for phase, funcs in PHASES.items():
                for func in funcs:
                    setattr(engines, func, timed(phase, getattr(engines, func)))
        c0 = sum(os.times()[:2])
        t0 = time.perf_counter()
        engine, _, limit = what.partition("-")
        extra = {"memory_limit": limit} if limit else {}
        data = VoteData.from_file(path, user="user_id", engine=engine, **extra)
        out["time_s"] = time.perf_counter() - t0
        out["cpu_s"] = sum(os.times()[:2]) - c0
        out["collapse_s"] = phases["collapse"]
        if what.startswith("duckdb"):
            out["phases_s"] = dict(phases, rest=out["time_s"] - sum(phases.values()))
        out.update(describe(data))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help="run one case in this process and print JSON")
    ap.add_argument(
        "--generate",
        action="store_true",
        help="only write the cached files (with --big: the 10^8-row log)",
    )
    ap.add_argument("--repeats", type=int, default=REPEATS)
    ap.add_argument(
        "--dask-files",
        type=int,
        choices=(0, 10, 100),
        default=100,
        help="with --big: the files Dask counts (10: the first 10, with DuckDB on the same "
        "10 for the comparison; 0: no Dask case)",
    )
    ap.add_argument(
        "--big",
        action="store_true",
        help="only the 10^8-row cases (100 files, written once, ~2.3 GB): DuckDB, the Beta "
        "fit and Dask on a 2-worker LocalCluster, one run each",
    )
    ap.add_argument(
        "--fit-iter",
        type=int,
        help="with --big: N EM iterations of one start instead of the whole Beta fit "
        "(what an E-step costs on the 10^8-row counts)",
    )
    ap.add_argument(
        "--no-fit",
        action="store_true",
        help="with --big: the DuckDB read without the Beta fit on its counts (case big-read)",
    )
    args = ap.parse_args()
    if args.case:
        big = args.case.startswith(("big-", "big10-"))
        print(json.dumps(run_big_case(args.case, args.fit_iter) if big else run_case(args.case)))
        return
    if args.generate:
        generate_big() if args.big else generate()
        return
    if args.big:
        big_main(args.dask_files, fit=not args.no_fit, fit_iter=args.fit_iter)
        return
    if not (os.path.exists(RAW) and os.path.exists(ORIENTED)):
        # Generate in a child process; the measured cases run in their own.
        subprocess.run([sys.executable, os.path.abspath(__file__), "--generate"], check=True)

    print(
        f"{banner('bench_read')}; load average {os.getloadavg()[0]:.1f}; files: "
        f"{os.path.getsize(RAW) / 2**20:.0f} MB raw, {os.path.getsize(ORIENTED) / 2**20:.0f} MB "
        f"oriented"
    )
    rows = []
    for name in CASES:
        runs = []
        for _ in range(args.repeats):
            child = run_in_child(__file__, name)
            if child is None:
                break
            runs.append(child)
        if not runs:
            continue
        times = [r["time_s"] for r in runs]
        r = dict(runs[-1])
        r["times"] = times
        r["time_s"] = statistics.median(times)
        r["peak_rss_mb"] = statistics.median(x["peak_rss_mb"] for x in runs)
        for key in ("collapse_s", "cpu_s"):
            if key in r:
                r[key] = statistics.median(x[key] for x in runs)
        rows.append(r)
        extra = {k: r[k] for k in ("users", "pairs", "ties", "count_rows", "entries") if k in r}
        print(f"  {name}: times {[round(t, 2) for t in times]} s {extra}", flush=True)
        if "phases_s" in r:
            median = {k: statistics.median(x["phases_s"][k] for x in runs) for k in r["phases_s"]}
            print("    phases (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in median.items()))
        if "import_s" in r:
            print(
                "    import of attnmodel.data.grouping (median s) "
                f"{statistics.median(x['import_s'] for x in runs):.3f}, first call "
                f"{statistics.median(x['first_call_s'] for x in runs):.3f}"
            )

    print()
    head = (
        f"{'case':16s} {'median s':>9s} {'min..max s':>13s} {'cpu s':>6s} {'collapse s':>10s} "
        f"{'peak MB':>8s}  {'target':22s} result"
    )
    print_header(head)
    for r in rows:
        if r["case"] == "raw-duckdb":
            target = "< 3 s, < 1024 MB"
            ok = r["time_s"] < TARGET_S and r["peak_rss_mb"] < TARGET_MB
            tag = "PASS" if ok else "MISS"
        else:
            target, tag = "-", "info"
        col = f"{r['collapse_s']:.2f}" if "collapse_s" in r else "-"
        cpu = f"{r['cpu_s']:.2f}" if "cpu_s" in r else "-"
        span = f"{min(r['times']):.2f}..{max(r['times']):.2f}"
        print(
            f"{r['case']:16s} {r['time_s']:>9.2f} {span:>13s} {cpu:>6s} {col:>10s} "
            f"{r['peak_rss_mb']:>8.0f}  {target:22s} {tag}"
        )


def _print_fit(duck: dict) -> None:
    """The Beta fit's estimate and what it worked on."""
    print(f"  fit: {duck['fit']}, mu in {duck['fit_mu_range']}")
    print(
        f"  {duck['count_rows']:,} distinct count rows, {duck['entries']:,} entries, "
        f"{duck['grid_nodes']} grid nodes; {duck['fit_estep_records']} E-steps recorded, "
        f"converged: {duck['fit_converged']}"
    )
    if "fit_iter" in duck:
        print(
            f"  (--fit-iter {duck['fit_iter']}: one start, {duck['fit_iter']} EM iterations, "
            f"not the whole fit: {duck['fit_s'] / duck['fit_estep_records']:.1f} s per E-step "
            "recorded, set-up included)"
        )


def big_main(dask_files: int, fit: bool = True, fit_iter: int | None = None) -> None:
    """Run the 10^8-row cases once each and print their table."""
    import shutil

    need = 2.5 * 2**30
    if not os.path.isdir(BIG) and shutil.disk_usage(HERE).free < 2 * need:
        sys.exit(f"bench_read --big: the log takes 2.5 GB; {HERE} has less than twice that")
    generate_big()  # here: the cases run in their own processes
    size = sum(os.path.getsize(os.path.join(BIG, f)) for f in os.listdir(BIG))
    print(
        f"{banner('bench_read --big')}; load average {os.getloadavg()[0]:.1f}; "
        f"{BIG_PARTS} files, {size / 2**30:.2f} GB"
    )
    runs = {}
    first = "big-duckdb" if fit else "big-read"
    names = {
        0: [first],
        10: [first, "big10-duckdb", "big10-dask"],
        100: [first, "big-dask"],
    }[dask_files]
    for name in names:
        extra = ("--fit-iter", str(fit_iter)) if fit_iter and name == "big-duckdb" else ()
        child = run_in_child(__file__, name, extra, timeout=BIG_TIMEOUT_S)
        if child is not None:
            runs[name] = child
            extra = {k: child[k] for k in ("users", "pairs", "ties", "count_rows", "entries")}
            print(f"  {name}: {child['time_s']:.1f} s {extra}", flush=True)
    print()
    head = f"{'case':16s} {'time s':>8s} {'cpu s':>8s} {'peak MB':>8s}  {'target':22s} result"
    print_header(head)
    duck = runs.get("big-duckdb") or runs.get("big-read")
    if duck:
        ok = duck["time_s"] < BIG_TARGET_S and duck["read_peak_rss_mb"] < BIG_TARGET_MB
        print(
            f"{'duckdb read':16s} {duck['time_s']:>8.1f} {duck['cpu_s']:>8.1f} "
            f"{duck['read_peak_rss_mb']:>8.0f}  {'< 60 s, < 3072 MB':22s} "
            f"{'PASS' if ok else 'MISS'}"
        )
        if "fit_s" in duck:
            ok = duck["fit_s"] < BIG_FIT_TARGET_S
            # Part of the fit (--fit-iter) can only show that the whole one misses.
            tag = "PASS" if ok else "MISS"
            if "fit_iter" in duck and ok:
                tag = "partial"
            print(
                f"{'beta fit (EM)':16s} {duck['fit_s']:>8.1f} {duck['fit_cpu_s']:>8.1f} "
                f"{duck['peak_rss_mb']:>8.0f}  {'< 30 s':22s} {tag}"
            )
            if "fit_error" in duck:
                print(f"  the fit stopped after {duck['fit_s']:.1f} s: {duck['fit_error']}")
            else:
                _print_fit(duck)
        else:
            print(f"{'beta fit (EM)':16s} {'not run (--no-fit)':>26s}")
    sub = runs.get("big10-duckdb")
    if sub:
        print(
            f"{'duckdb, 10 files':16s} {sub['time_s']:>8.1f} {sub['cpu_s']:>8.1f} "
            f"{sub['read_peak_rss_mb']:>8.0f}  {'-':22s} info"
        )
    dask = runs.get("big-dask") or runs.get("big10-dask")
    if dask:
        ref = duck if dask_files == 100 else sub
        same = ref is not None and dask["fingerprint"] == ref["fingerprint"]
        same_order = ref is not None and dask.get("order_digest") == ref.get("order_digest")
        label = "dask (2 workers)" if dask_files == 100 else "dask, 10 files"
        cpu = dask["cpu_s"] + dask.get("workers_cpu_s", float("nan"))
        print(
            f"{label:16s} {dask['time_s']:>8.1f} {cpu:>8.1f} "
            f"{dask['read_peak_rss_mb']:>8.0f}  {'same counts as duckdb':22s} "
            f"{'PASS' if same else 'MISS'}"
        )
        print(
            f"  dask: CPU of the client {dask['cpu_s']:.1f} s + the workers "
            f"{dask.get('workers_cpu_s', float('nan')):.1f} s; peak RSS of the client "
            f"{dask['read_peak_rss_mb']:.0f} MB, of each worker "
            f"{dask.get('workers_peak_rss_mb')} MB; users and pairs in the same order as "
            f"duckdb: {'yes' if same_order else 'NO'}"
        )
    if duck:
        print(f"  counts fingerprint: {duck['fingerprint']}")


if __name__ == "__main__":
    main()
