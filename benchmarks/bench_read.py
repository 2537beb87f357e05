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

The time spent in ``collapse_counts`` is measured by a wrapper and shown
separately. Table: median wall time, min..max, median of the peak RSS.

Targets
-------
* raw layout, 10^7 rows, DuckDB: under 3 s end to end, peak RSS under 1 GB.
* pandas: no target (the figure the DuckDB reader replaces).

Run: ``.venv/bin/python benchmarks/bench_read.py`` (a few minutes once the
files exist). ``--case NAME`` runs one case and prints a JSON line.
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

CASES = {
    "raw-duckdb": (RAW, "duckdb"),
    "raw-duckdb-512MB": (RAW, "duckdb-512MB"),
    "raw-pandas": (RAW, "pandas"),
    "raw-read": (RAW, "read"),
    "oriented-duckdb": (ORIENTED, "duckdb"),
    "oriented-pandas": (ORIENTED, "pandas"),
}


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


# ---------------------------------------------------------------------------


def run_case(name: str) -> dict:
    """Run one case in this process and return its figures."""
    import pandas as pd

    import attnmodel.data.votes as data_mod
    from attnmodel import VoteData

    path, what = CASES[name]
    rss_import = peak_rss_mb()
    out = {"case": name, "rss_after_import_mb": rss_import}
    if what == "read":
        t0 = time.perf_counter()
        df = pd.read_parquet(path)
        out["time_s"] = time.perf_counter() - t0
        out["rows"] = len(df)
        out["dtypes"] = {str(k): str(v) for k, v in df.dtypes.items()}
    else:
        collapse_time = []
        real = data_mod.collapse_counts

        def timed_collapse(*a, **kw):
            t = time.perf_counter()
            res = real(*a, **kw)
            collapse_time.append(time.perf_counter() - t)
            return res

        data_mod.collapse_counts = timed_collapse
        t0 = time.perf_counter()
        engine, _, limit = what.partition("-")
        extra = {"memory_limit": limit} if limit else {}
        data = VoteData.from_file(path, user="user_id", engine=engine, **extra)
        out["time_s"] = time.perf_counter() - t0
        out["collapse_s"] = sum(collapse_time)
        out["rows"] = int(data.n_votes + data.n_ties_dropped)
        out["users"] = data.n_users
        out["pairs"] = data.n_pairs
        out["ties"] = data.n_ties_dropped
        out["count_rows"] = data.counts.n_rows
        out["entries"] = int(data.counts.entry_n.size)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help="run one case in this process and print JSON")
    ap.add_argument("--generate", action="store_true", help="only write the cached files")
    ap.add_argument("--repeats", type=int, default=REPEATS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    if args.generate:
        generate()
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
        if "collapse_s" in r:
            r["collapse_s"] = statistics.median(x["collapse_s"] for x in runs)
        rows.append(r)
        extra = {k: r[k] for k in ("users", "pairs", "ties", "count_rows", "entries") if k in r}
        print(f"  {name}: times {[round(t, 2) for t in times]} s {extra}", flush=True)

    print()
    head = (
        f"{'case':15s} {'median s':>9s} {'min..max s':>13s} {'collapse s':>10s} "
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
        span = f"{min(r['times']):.2f}..{max(r['times']):.2f}"
        print(
            f"{r['case']:15s} {r['time_s']:>9.2f} {span:>13s} {col:>10s} "
            f"{r['peak_rss_mb']:>8.0f}  {target:22s} {tag}"
        )


if __name__ == "__main__":
    main()
