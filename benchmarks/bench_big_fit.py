"""Benchmark: the Beta MAP-EM fit on the counts of the 10^8-row log (issue 13's last target).

What is measured
----------------
The counts of ``bench_read.py --big``'s log (10^8 votes, 10^7 users, 8 models
-> 28 pairs, 10 % ties dropped; about 4.03M distinct count rows) are read
once with DuckDB and kept in ``benchmarks/.cache/counts_raw_100000000.npz``
(gitignored; about a minute to write, several to read the log), so that the
fit can be timed without reading 10^8 rows each time (``bench_read.py --big``
times the read and the fit together).

The fit, in a fresh process:

* default: ``fit_em(data, "beta")`` (mu unknown, default starts, subsample
  screening, the run over every row);
* ``--fit-iter N``: ``fit_em(data, "beta", n_init=1, max_iter=N)``, and the
  time per E-step over every row;
* ``--estep``: one E-step over every row at the first start, with every row on
  the grid (``POLY_MAX_VOTES = 0``) and with the light rows as polynomials in
  ``eta`` (the default), alternating, ``--repeats`` times each.

Printed: wall and CPU time (user + system, all threads) of the fit, its
E-steps over every row (``em``, ``squarem``, ``secant``, ``lbfgs`` records;
``sample_...`` ones are on the 5,000-row subsample), the peak RSS of the
process, the estimate and the load average at the start and end.

Target: the whole fit under 30 s (2-core machine).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_big_fit.py`` (reads the
log first if the counts are not cached; ``--prepare`` only writes them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _harness import banner, peak_rss_mb, run_in_child

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
LOG = os.path.join(CACHE, "votes_raw_100000000")
COUNTS = os.path.join(CACHE, "counts_raw_100000000.npz")
FIT_TARGET_S = 30.0
# DuckDB's memory limit for the one read of the log.
MEMORY_LIMIT = "2GB"


def prepare() -> None:
    """Read the 10^8-row log once and keep its counts (arrays, pair labels, report)."""
    import numpy as np

    from attnmodel import VoteData

    if not os.path.isdir(LOG):
        sys.exit(f"{LOG} is missing: run benchmarks/bench_read.py --big --generate first")
    t0 = time.perf_counter()
    data = VoteData.from_file(LOG, user="user_id", engine="duckdb", memory_limit=MEMORY_LIMIT)
    c = data.counts
    tmp = COUNTS + ".tmp.npz"
    np.savez(
        tmp,
        n_pairs=c.n_pairs,
        row_ptr=c.row_ptr,
        entry_pair=c.entry_pair,
        entry_n=c.entry_n,
        entry_s=c.entry_s,
        row_weight=c.row_weight,
        user_row=c.user_row,
        pairs=np.asarray(data.pairs, dtype=str),
        report=data.report.to_json(),
        n_ties_dropped=data.n_ties_dropped,
    )
    os.replace(tmp, COUNTS)
    print(f"counts of {LOG} read in {time.perf_counter() - t0:.1f} s, kept in {COUNTS}")


def load():
    """The cached counts as a :class:`attnmodel.VoteData` (user ids ``0..m-1``)."""
    import io

    import numpy as np
    import pandas as pd

    from attnmodel import VoteData
    from attnmodel.data.counts import CountTable

    z = np.load(COUNTS)
    counts = CountTable(
        n_pairs=int(z["n_pairs"]),
        row_ptr=z["row_ptr"],
        entry_pair=z["entry_pair"],
        entry_n=z["entry_n"],
        entry_s=z["entry_s"],
        row_weight=z["row_weight"],
        user_row=z["user_row"],
    )
    report = pd.read_json(io.StringIO(str(z["report"])))
    pairs = pd.Index([str(p) for p in z["pairs"]], name="pair")
    report.index = pairs
    return VoteData(
        users=pd.RangeIndex(counts.n_users, name="user"),
        pairs=pairs,
        counts=counts,
        report=report,
        layout="counts",
        n_ties_dropped=int(z["n_ties_dropped"]),
    )


class _Cap(Exception):
    """Raised by the counted E-step at ``--max-full-esteps`` or ``--max-cpu``."""


def run_fit(
    fit_iter: int | None, max_full: int | None = None, max_cpu: float | None = None
) -> dict:
    """The fit on the cached counts, in this process.

    Every E-step over every row is counted by its caller (``_run_em:LINE``,
    ``_secant_step``, ``fun`` of the polish, ...); with ``max_full`` the fit
    stops after that many of them and only the counts are reported, and so
    with ``max_cpu`` once the process has used that many seconds of CPU.
    Every 25th E-step prints the counts so far on stderr.
    """
    import warnings

    import numpy as np

    from attnmodel import fit_em
    from attnmodel.inference.em import EMProblem

    data = load()
    c = data.counts
    out = {
        "count_rows": c.n_rows,
        "entries": int(c.entry_n.size),
        "users": c.n_users,
        "load_start": os.getloadavg()[0],
        "rss_before_fit_mb": peak_rss_mb(),
    }
    # Every E-step over every row is counted and timed (recorded or not).
    real_e_step = EMProblem.e_step
    calls = {"n": 0, "s": 0.0, "cpu_s": 0.0}
    by_caller: dict[str, int] = {}
    rows_seen: dict[int, int] = {}

    def counted_e_step(self, *args, **kwargs):
        rows_seen[self.counts.n_rows] = rows_seen.get(self.counts.n_rows, 0) + 1
        if sum(rows_seen.values()) % 25 == 0:
            print(f"E-steps by rows {rows_seen}, CPU {sum(os.times()[:4]):.0f} s", file=sys.stderr)
        if max_cpu is not None and sum(os.times()[:4]) > max_cpu:
            raise _Cap
        if self.counts.n_rows != c.n_rows:
            return real_e_step(self, *args, **kwargs)
        if max_full is not None and calls["n"] >= max_full:
            raise _Cap
        frame = sys._getframe(1)
        where = f"{frame.f_code.co_name}:{frame.f_lineno}"
        by_caller[where] = by_caller.get(where, 0) + 1
        c1, t1 = sum(os.times()[:4]), time.perf_counter()
        try:
            return real_e_step(self, *args, **kwargs)
        finally:
            calls["n"] += 1
            calls["s"] += time.perf_counter() - t1
            calls["cpu_s"] += sum(os.times()[:4]) - c1

    EMProblem.e_step = counted_e_step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c0 = sum(os.times()[:4])
        t0 = time.perf_counter()
        fit = None
        try:
            if fit_iter is None:
                fit = fit_em(data, "beta")
            else:
                fit = fit_em(data, "beta", n_init=1, max_iter=fit_iter)
        except _Cap:
            pass
        out["fit_s"] = time.perf_counter() - t0
        out["fit_cpu_s"] = sum(os.times()[:4]) - c0
    EMProblem.e_step = real_e_step
    out["by_caller"] = by_caller
    out["esteps_by_rows"] = {str(k): v for k, v in sorted(rows_seen.items())}
    out["full_esteps"] = calls["n"]
    out["full_estep_s"] = calls["s"]
    out["full_estep_cpu_s"] = calls["cpu_s"]
    out["load_end"] = os.getloadavg()[0]
    out["peak_rss_mb"] = peak_rss_mb()
    out["capped"] = fit is None
    if fit is None:
        return out
    steps = [s for run in fit.runs_ for s in run["step"]]
    out["steps"] = {s: steps.count(s) for s in dict.fromkeys(steps)}
    out["sample_esteps"] = sum(s.startswith("sample_") for s in steps)
    out["converged"] = bool(fit.converged_)
    out["objective"] = float(fit.objective_)
    out["grid_nodes"] = fit.settings["grid_size"]
    out["fit"] = {k: float(v) for k, v in fit.params_.items()}
    out["mu"] = [float(v) for v in fit.mu_.to_numpy()]
    out["mu_range"] = [float(np.min(out["mu"])), float(np.max(out["mu"]))]
    return out


def run_estep(repeats: int) -> dict:
    """One E-step over every row at the first start, light rows on the grid vs as polynomials.

    The grid pass alone is the E-step with :data:`attnmodel.model.kernels.POLY_MAX_VOTES`
    set to 0 (no row is light enough); the two alternate, ``repeats`` times each.
    """
    import numpy as np

    from attnmodel.inference.em import EMProblem
    from attnmodel.model import kernels
    from attnmodel.model.families import get_family
    from attnmodel.model.priors import resolve_mu

    data = load()
    spec = resolve_mu(list(data.pairs))
    state = EMProblem(data.counts, get_family("beta"), spec).initial_state(
        0, np.random.default_rng(0)
    )
    default = kernels.POLY_MAX_VOTES
    out = {"grid": [], "poly": [], "load": [os.getloadavg()[0]]}
    results = {}
    for _ in range(repeats):
        for name, n_max in (("grid", 0), ("poly", default)):
            kernels.POLY_MAX_VOTES = n_max
            problem = EMProblem(data.counts, get_family("beta"), spec)
            problem.e_step(state)  # compiles, splits the rows, builds the tables
            c0, t0 = sum(os.times()[:4]), time.perf_counter()
            results[name] = problem.e_step(state)
            out[name].append((time.perf_counter() - t0, sum(os.times()[:4]) - c0))
    kernels.POLY_MAX_VOTES = default
    out["load"].append(os.getloadavg()[0])
    g, p = results["grid"], results["poly"]
    out["objective"] = [g.objective, p.objective]
    out["max_abs_log_z_diff"] = float(np.max(np.abs(g.row_log_marginal - p.row_log_marginal)))
    votes = data.counts.row_sum(data.counts.entry_n)
    out["light_rows"] = float(np.mean(votes <= default))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help="'fit': run the fit in this process and print JSON")
    ap.add_argument("--prepare", action="store_true", help="only read the log and keep its counts")
    ap.add_argument("--fit-iter", type=int, help="N EM iterations of one start, not the whole fit")
    ap.add_argument(
        "--estep",
        action="store_true",
        help="one E-step over every row, the grid pass alone vs with polynomial rows",
    )
    ap.add_argument("--repeats", type=int, default=3, help="with --estep: runs of each")
    ap.add_argument(
        "--max-full-esteps",
        type=int,
        help="stop the fit after this many E-steps over every row; print where they went",
    )
    ap.add_argument("--max-cpu", type=float, help="stop the fit after this many s of CPU")
    args = ap.parse_args()
    if args.prepare:
        prepare()
        return
    if args.case == "estep":
        print(json.dumps(run_estep(args.repeats)))
        return
    if args.case == "fit":
        print(json.dumps(run_fit(args.fit_iter, args.max_full_esteps, args.max_cpu)))
        return
    print(banner("bench_big_fit"))
    if not os.path.exists(COUNTS):
        prepare()
    if args.estep:
        r = run_in_child(__file__, "estep", ("--repeats", str(args.repeats)))
        if r is None:
            sys.exit(1)
        print(
            f"one E-step over every row at the first start, {r['light_rows']:.1%} of the rows "
            f"light; load {r['load'][0]:.2f} -> {r['load'][1]:.2f}"
        )
        for name in ("grid", "poly"):
            wall = sorted(w for w, _ in r[name])
            cpu = sorted(c for _, c in r[name])
            print(
                f"  {name}: median {wall[len(wall) // 2]:.2f} s wall, "
                f"{cpu[len(cpu) // 2]:.2f} s CPU (CPU {cpu[0]:.2f}..{cpu[-1]:.2f})"
            )
        print(
            f"  objective {r['objective'][0]:.8f} vs {r['objective'][1]:.8f}; largest "
            f"difference of a row's log marginal {r['max_abs_log_z_diff']:.2e}; "
            f"peak RSS {r['peak_rss_mb']:.0f} MB"
        )
        return
    extra = ("--fit-iter", str(args.fit_iter)) if args.fit_iter else ()
    if args.max_full_esteps is not None:
        extra += ("--max-full-esteps", str(args.max_full_esteps))
    if args.max_cpu is not None:
        extra += ("--max-cpu", str(args.max_cpu))
    r = run_in_child(__file__, "fit", extra)
    if r is None:
        sys.exit(1)
    print(
        f"{r['count_rows']:,} distinct count rows, {r['entries']:,} entries, "
        f"{r['users']:,} users, {r.get('grid_nodes', '?')} grid nodes"
    )
    what = "beta fit (EM)" if args.fit_iter is None else f"{args.fit_iter} EM iterations"
    print(
        f"{what}: {r['fit_s']:.1f} s wall, {r['fit_cpu_s']:.1f} s CPU, "
        f"peak RSS {r['peak_rss_mb']:.0f} MB (before the fit {r['rss_before_fit_mb']:.0f} MB); "
        f"load {r['load_start']:.2f} -> {r['load_end']:.2f}"
    )
    print(
        f"  E-steps over every row: {r['full_esteps']}, {r['full_estep_s']:.1f} s wall and "
        f"{r['full_estep_cpu_s']:.1f} s CPU in all "
        f"({r['full_estep_cpu_s'] / max(r['full_esteps'], 1):.2f} s CPU each); "
        f"records on the subsample: {r.get('sample_esteps', '-')}"
    )
    print(f"  E-steps over every row by caller: {r['by_caller']}")
    print(f"  E-steps by number of rows: {r['esteps_by_rows']}")
    if r["capped"]:
        print("  stopped early (--max-full-esteps / --max-cpu)")
        return
    print(f"  records by step: {r['steps']}")
    print(f"  objective {r['objective']:.10f}, converged: {r['converged']}")
    print(f"  fit: {r['fit']}, mu in [{r['mu_range'][0]:.4f}, {r['mu_range'][1]:.4f}]")
    if args.fit_iter is None:
        ok = r["fit_s"] < FIT_TARGET_S
        print(f"target: under {FIT_TARGET_S:.0f} s: {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()
