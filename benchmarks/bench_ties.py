"""Study: careful frequent tiers and tie spammers, ties dropped or modelled.

What is measured
----------------
400 simulated users (attnmodel.model.simulate.simulate_tie_counts): 300
careful (``eta ~ U(0.85, 1)``) and 100 careless (``eta ~ U(0, 0.1)``), tie
propensities ``tau ~ Beta(1.2, 2.5)`` for everyone, careless votes tying extra
with ``kappa`` (``--kappa``, default 0.8: the careless users are then tie
spammers), ``--votes`` votes each (default 40), one pair with ``mu = 0.8``
known. For each fit the median ``eta_mean`` of the careful frequent tiers
(``tau > 0.5``), of the other careful users (``tau < 0.3``), the mean
``eta_mean`` of the careless, the AUC of ``eta_mean`` for careful against
careless, and the fitted ``kappa``:

* ties dropped, ``P_eta`` Beta;
* ties modelled, ``P_eta`` Beta;
* ties modelled, ``P_eta`` a two-component Beta mixture.

It shows why the default stays ``ties="drop"``: with a single Beta the
frequent tiers lose much of their ``eta`` (a careful user who ties often looks,
vote by vote, like a partly careless one whose careless votes became ties);
a two-component ``P_eta`` keeps them with the careful users, while modelling
ties is what takes the spammers' ``eta`` away.

With ``--ranking`` it prints instead, over 5 seeds, the AUC of ``eta_mean``
(careful ``eta > 0.5`` against careless) with ties modelled and dropped: 320
careful users (``eta ~ Beta(8, 2)``), 80 careless (``Beta(1, 8)``), ``tau ~
Beta(2, 8)``, ``kappa = 0.6``, 4 to 20 votes on two pairs, ``mu`` unknown (the
setting of ``tests/test_ties_recovery.py``).

With ``--speed`` it times MAP-EM with ties modelled on a larger log:
``--users`` users (default 5000) on 6 models (15 pairs), votes per user
heavy-tailed (log-normal, 10 to 3000, ties included), ``tau ~ Beta(2, 6)``,
``kappa = 0.5``, Beta ``P_eta``, at one fixed state. Per engine (the numpy
E-step, which ties took before the compiled one carried a per-row tie factor,
and the compiled one): the median wall and CPU seconds of one E-step and of
one M-step (:meth:`attnmodel.inference.em.EMProblem.m_step`, the tie update
included) over ``--reps`` repetitions, and the engines' objective difference.
Then the fit that the careless-user benchmark (``benchmarks/careless_users.py``)
runs with ties modelled: its ``mix`` log of seed 0 (MT-Bench plus 16 injected
careless users), ``fit_em(data, "beta", seed=0)`` with ties modelled and the
default 4 starts, ``--reps`` fits, each in a fresh process after a short fit that
compiles the kernels;
with ``--before DIR`` (a source tree of attnmodel at another commit, e.g.
``git archive COMMIT attnmodel | tar -x -C DIR``) the same fits with that tree
first on the path, in turns with this one, so both are timed in one run under
the same load: median wall and CPU seconds, iterations and objective per tree.

Run: ``.venv/bin/python benchmarks/bench_ties.py [--ranking | --speed [--before DIR]]``
(a few minutes on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

from attnmodel.data.votes import VoteData
from attnmodel.inference.em import fit_em
from attnmodel.model.simulate import simulate_tie_counts


def auc(score, positive):
    ranks = stats.rankdata(score)
    n_pos = int(positive.sum())
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (positive.size - n_pos))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--votes", type=int, default=40)
    ap.add_argument("--kappa", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--ranking", action="store_true")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--before", type=Path, help="--speed: another source tree to time beside")
    ap.add_argument("--fit-case", type=int, metavar="REPS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fit_case is not None:
        fit_case(args.fit_case)
        return
    if args.ranking:
        ranking()
        return
    if args.speed:
        speed(args.users, args.reps, args.seed)
        careless_fit_speed(args.reps, args.before)
        return
    rng = np.random.default_rng(args.seed)
    careless = np.repeat([False, True], [300, 100])
    eta = np.where(careless, rng.uniform(0.0, 0.1, 400), rng.uniform(0.85, 1.0, 400))
    tau = rng.beta(1.2, 2.5, 400)
    n, s, t = simulate_tie_counts(eta, tau, args.kappa, args.votes, 0.8, seed=args.seed + 1)
    tier, usual = ~careless & (tau > 0.5), ~careless & (tau < 0.3)
    keep = n.sum(axis=1) > 0
    print(
        f"{args.votes} votes per user, kappa {args.kappa}: {tier.sum()} frequent tiers, "
        f"{usual.sum()} other careful users, {careless.sum()} careless; "
        f"{(~keep).sum()} users with ties only (left out when ties are dropped)"
    )
    print(f"{'fit':<34}{'tiers':>7}{'usual':>7}{'careless':>9}{'AUC':>7}{'kappa':>7}{'s':>7}")
    fits = [
        ("ties dropped, Beta", dict(family="beta"), False),
        ("ties modelled, Beta", dict(family="beta"), True),
        ("ties modelled, Beta mixture (K=2)", dict(family="beta_mixture", n_components=2), True),
    ]
    for name, kw, model in fits:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if model:
                data, rows = VoteData.from_counts(n, s, t=t), np.arange(400)
            else:
                data, rows = VoteData.from_counts(n[keep], s[keep]), np.flatnonzero(keep)
            res = fit_em(data, n_init=1, mu=0.8, **kw)
        seconds = time.perf_counter() - t0
        e = np.full(400, np.nan)
        e[rows] = res.posterior()["eta_mean"].to_numpy()
        ok = ~np.isnan(e)
        kappa = f"{res.ties_.kappa:7.3f}" if res.ties_ is not None else f"{'-':>7}"
        print(
            f"{name:<34}{np.nanmedian(e[tier]):7.3f}{np.nanmedian(e[usual]):7.3f}"
            f"{np.nanmean(e[careless]):9.3f}{auc(e[ok], ~careless[ok]):7.3f}{kappa}{seconds:7.1f}"
        )


def ranking() -> None:
    diffs = []
    print(f"{'seed':>4}{'AUC model':>11}{'AUC drop':>10}{'diff':>8}")
    for seed in range(5):
        rng = np.random.default_rng(1000 + seed)
        careful = rng.random(400) < 0.8
        eta = np.where(careful, rng.beta(8, 2, 400), rng.beta(1, 8, 400))
        n, s, t = simulate_tie_counts(eta, (2.0, 8.0), 0.6, (4, 20), [0.8, 0.7], seed=seed)
        keep = n.sum(axis=1) > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = fit_em(VoteData.from_counts(n[keep], s[keep], t=t[keep]), "beta", n_init=1)
            drop = fit_em(VoteData.from_counts(n[keep], s[keep]), "beta", n_init=1)
        truth = eta[keep] > 0.5
        a_m = auc(model.posterior()["eta_mean"].to_numpy(), truth)
        a_d = auc(drop.posterior()["eta_mean"].to_numpy(), truth)
        diffs.append(a_m - a_d)
        print(f"{seed:>4}{a_m:11.4f}{a_d:10.4f}{a_m - a_d:8.4f}")
    d = np.asarray(diffs)
    sd = d.std(ddof=1)
    print(f"mean difference {d.mean():.4f}, sd {sd:.4f}, se {sd / np.sqrt(d.size):.4f}")


def _timed(func, reps: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``func()`` over ``reps`` calls."""
    wall, cpu = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        func()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def speed(n_users: int, reps: int, seed: int) -> None:
    from attnmodel.inference.em import EMProblem, EMState
    from attnmodel.model.families import get_family
    from attnmodel.model.priors import resolve_mu
    from attnmodel.model.ties import TieParams

    rng = np.random.default_rng(seed)
    models = 6
    n_pairs = models * (models - 1) // 2
    votes = np.clip(np.exp(rng.normal(np.log(40.0), 1.3, n_users)), 10, 3000).astype(int)
    eta = np.where(rng.random(n_users) < 0.8, rng.beta(8, 2, n_users), rng.beta(1, 6, n_users))
    mu = np.linspace(0.55, 0.9, n_pairs)
    n, s, t = simulate_tie_counts(eta, (2.0, 6.0), 0.5, votes, list(mu), seed=seed + 1)
    data = VoteData.from_counts(n, s, t=t)
    counts = data.counts
    print(
        f"{n_users} users, {n_pairs} pairs, {int(n.sum() + t.sum())} votes "
        f"({int(t.sum())} ties), {counts.n_rows} distinct rows, "
        f"{counts.entry_n.size} (row, pair) entries"
    )
    state = EMState({"alpha": 3.0, "beta": 1.0}, mu.copy(), None, TieParams(0.5, 0.25, 8.0))
    spec = resolve_mu(data.pairs, dict(zip(data.pairs, mu, strict=True)))
    head = f"{'engine':<8}{'nodes':>6}{'E-step wall':>12}{'cpu':>8}{'M-step wall':>12}{'cpu':>8}"
    print(head)
    print("-" * len(head))
    objectives = []
    for engine in ("numpy", "numba"):
        problem = EMProblem(counts, get_family("beta"), spec, engine=engine)
        estep = problem.e_step(state)  # compiles on first use
        objectives.append(estep.objective)
        e_w, e_c = _timed(lambda p=problem: p.e_step(state), reps)
        m_w, m_c = _timed(lambda p=problem, e=estep: p.m_step(state, e), reps)
        print(f"{engine:<8}{problem.grid.size:6d}{e_w:12.3f}{e_c:8.3f}{m_w:12.3f}{m_c:8.3f}")
    print(f"objective difference between the engines: {objectives[1] - objectives[0]:.3g}")


def fit_case(reps: int) -> None:
    """Child of :func:`careless_fit_speed`: one compiling fit, then ``reps`` timed; JSON out."""
    import pandas as pd
    from careless_users import CASES, MTBENCH, N_INJECT, inject

    real = pd.read_csv(MTBENCH)
    rng = np.random.default_rng([0, CASES.index("mix")])
    votes = pd.concat([real.assign(kind="real"), inject(real, "mix", N_INJECT, rng)])
    data = VoteData.from_frame(votes, user="user_id", ties="model")
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_em(data, "beta", seed=0, n_init=1, max_iter=2)  # compiles or loads the kernels
        for _ in range(reps):
            w0, c0 = time.perf_counter(), time.process_time()
            res = fit_em(data, "beta", seed=0)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            iters = sum(len(r) - 1 for r in res.runs_)
            out.append(dict(wall=wall, cpu=cpu, objective=res.objective_, iterations=iters))
    print(json.dumps(out))


def careless_fit_speed(reps: int, before: Path | None) -> None:
    """Time the careless-user benchmark's fit with ties modelled, this tree and ``before``."""
    from careless_users import MTBENCH

    if not MTBENCH.exists():
        print(f"careless-user fit: {MTBENCH} not found, case skipped")
        return
    here = Path(__file__).resolve().parent.parent
    trees = {"this tree": here} | ({} if before is None else {f"{before}": before.resolve()})
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    # One fit per child in turns, so a change of load falls on both trees alike.
    for _ in range(reps):
        for name, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=str(tree))
            proc = subprocess.run(
                [sys.executable, __file__, "--fit-case", "1"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            runs[name] += json.loads(proc.stdout.strip().splitlines()[-1])
    print()
    print(
        "careless-user benchmark's fit with ties modelled (mix log, seed 0: 81 users, 4 starts),"
        f" median of {reps} fits"
    )
    head = f"{'tree':<32}{'wall s':>9}{'cpu s':>9}{'iterations':>12}{'objective':>22}"
    print(head)
    print("-" * len(head))
    for name, rows in runs.items():
        med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
        print(
            f"{name:<32}{med['wall']:9.2f}{med['cpu']:9.2f}{med['iterations']:12.0f}"
            f"{med['objective']:22.10f}"
        )
    if before is not None:
        cpu = [float(np.median([r["cpu"] for r in rows])) for rows in runs.values()]
        obj = [rows[0]["objective"] for rows in runs.values()]
        print(
            f"CPU ratio (before / this tree) {cpu[1] / cpu[0]:.2f}; "
            f"objective difference {obj[0] - obj[1]:.3g}"
        )


if __name__ == "__main__":
    main()
