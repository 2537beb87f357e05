"""The cost of NUTS with ties modelled (``ties="model"``), per gradient and per SBC data set.

What is measured
----------------
The slow job's SBC case of the tie model (``tests/test_sbc.py``: Beta
``P_eta`` with flat shapes, one pair of ``mu = 0.8`` known, the tie
parameters from their priors, 40-80 users of ``--votes`` votes each, ties
included; the template model holds one user per ``(s, f, t)``), for each
``--votes`` (default 6 and 12):

* ``grad``: the log density and its gradient as the sampler compiles them
  (``model.logp_dlogp_function``, PyTensor's default mode) on the template
  with the users of the case's first data set, at the model's initial point:
  wall and process CPU per call, the median of 5 blocks of ``--calls`` calls
  (process CPU counts every thread of the process, so threads that spin show
  as CPU above wall);
* ``sbc``: ``--datasets`` data sets of the case run by
  ``tests.test_sbc.sbc_ranks`` (one compiled model, NUTS as the slow job runs
  it, ``tests.test_sbc.SAMPLING["ties"]``): wall and CPU per data set, the
  model's compilation timed apart (``--datasets 0``) and left out.

Each (tree, votes) case runs in a fresh process. With ``--before DIR`` (a
source tree of attnmodel at another commit, e.g. ``git archive COMMIT
attnmodel | tar -x -C DIR``) every case runs with that tree first on the path
too, in turns with this one, so both are measured under the same load; the
ratio is before / now.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_ties_nuts.py [--before DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# Appended, not put first: with --before the child's PYTHONPATH puts the other tree first.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._harness import ROOT, banner  # noqa: E402


def _timed(fn, *args, **kwargs):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


def run_case(votes: int, calls: int, datasets: int) -> dict:
    import numpy as np
    import pymc as pm
    from pymc.blocking import DictToArrayBijection

    from attnmodel.model.pymc_model import build_model
    from tests import test_sbc as sbc

    sbc.TIE_VOTES = votes
    case, names, seed, sampling, kw = sbc.tie_sbc_case()
    data, draw, simulate = case
    rng = np.random.default_rng([seed, 0])
    users = simulate(draw(rng), rng)
    attn = build_model(data, **kw)
    row_of_user = np.asarray(data.counts.user_row)
    weight = np.zeros(data.counts.n_rows)
    np.add.at(weight, row_of_user[users], 1.0)
    with attn.model:
        pm.set_data({"row_weight": weight})
    fn = attn.model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    point = attn.model.initial_point()
    x = DictToArrayBijection.map({v.name: point[v.name] for v in attn.model.value_vars})
    fn(x)
    walls, cpus = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn(x)
        walls.append((time.perf_counter() - t0) / calls)
        cpus.append((time.process_time() - c0) / calls)
    out = {
        "votes": votes,
        "rows": int(data.counts.n_rows),
        "nodes": int(attn.grid.size),
        "grad_wall_ms": float(np.median(walls)) * 1e3,
        "grad_cpu_ms": float(np.median(cpus)) * 1e3,
        "threads": len(os.listdir("/proc/self/task")),
    }
    if datasets:
        _, w0, c0 = _timed(sbc.sbc_ranks, case, names, seed, sampling, 0, **kw)
        _, w1, c1 = _timed(sbc.sbc_ranks, case, names, seed, sampling, datasets, **kw)
        out.update(
            compile_wall_s=w0,
            dataset_wall_s=(w1 - w0) / datasets,
            dataset_cpu_s=(c1 - c0) / datasets,
        )
    return out


def _child(tree: str, votes: int, calls: int, datasets: int) -> dict:
    path = os.pathsep.join([tree, ROOT] if tree != ROOT else [ROOT])
    code = "import attnmodel, sys; print(attnmodel.__file__)"
    env = {**os.environ, "PYTHONPATH": path}
    where = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", env=env, check=True
    ).stdout.strip()
    assert where.startswith(tree), (where, tree)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--case", str(votes),
         "--calls", str(calls), "--datasets", str(datasets)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"case {votes} in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--votes", type=int, nargs="+", default=[6, 12])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--datasets", type=int, default=3)
    ap.add_argument("--before", default=None, help="another attnmodel source tree")
    ap.add_argument("--case", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case is not None:
        print(json.dumps(run_case(args.case, args.calls, args.datasets)))
        return
    print(banner("bench_ties_nuts"))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    trees = [("now", ROOT)] + ([("before", os.path.abspath(args.before))] if args.before else [])
    head = (
        f"{'tree':6s} {'votes':>5s} {'rows':>4s} {'nodes':>5s} {'grad wall ms':>12s} "
        f"{'grad CPU ms':>11s} {'threads':>7s} {'data set wall s':>15s} {'data set CPU s':>14s}"
    )
    print(head)
    print("-" * len(head))
    results = {}
    for votes in args.votes:
        for name, tree in trees:
            r = _child(tree, votes, args.calls, args.datasets)
            results[name, votes] = r
            print(
                f"{name:6s} {votes:>5d} {r['rows']:>4d} {r['nodes']:>5d} "
                f"{r['grad_wall_ms']:>12.3f} {r['grad_cpu_ms']:>11.3f} {r['threads']:>7d} "
                f"{r.get('dataset_wall_s', float('nan')):>15.2f} "
                f"{r.get('dataset_cpu_s', float('nan')):>14.2f}",
                flush=True,
            )
    if args.before:
        for votes in args.votes:
            now, old = results["now", votes], results["before", votes]
            ratios = [
                f"{key} {old[key] / now[key]:.2f}x"
                for key in ("grad_wall_ms", "grad_cpu_ms", "dataset_wall_s", "dataset_cpu_s")
                if key in now
            ]
            print(f"votes {votes}: before / now: " + ", ".join(ratios))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
