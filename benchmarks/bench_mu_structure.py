"""Benchmark: MAP-EM under each ``mu_structure`` on a simulated many-pair log.

What is measured
----------------
13 models (78 pairs) with Bradley-Terry strengths evenly spaced in [-1.5, 1.5];
200 users with ``eta ~ Beta(4, 1.5)`` and a heavy-tailed number of votes
(``10 * 10^U``, ``U ~ Uniform(0, 2)``: 10 to 1000), each vote on a uniformly
drawn pair, as per-user counts (``VoteData.from_counts``). For each structure:
wall time of ``fit_em(data, "beta", mu_structure=..., n_init=1)`` (median of
3 after one warm-up), the log posterior, the iterations, and the root mean
square error of the fitted ``2 mu - 1`` against the truth, with the spread of
the truth for scale. No targets: the figures are for comparison between
structures.

Run: ``.venv/bin/python benchmarks/bench_mu_structure.py`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np
from scipy import special

from attnmodel.data.votes import VoteData
from attnmodel.inference.em import fit_em


def simulate(seed: int = 0):
    rng = np.random.default_rng(seed)
    n_models, n_users = 13, 200
    theta = np.linspace(-1.5, 1.5, n_models)
    pairs = [(i, j) for i in range(n_models) for j in range(i + 1, n_models)]
    a = np.array([j for i, j in pairs])
    b = np.array([i for i, j in pairs])
    mu = special.expit(theta[a] - theta[b])
    eta = rng.beta(4, 1.5, n_users)
    total = np.round(10 * 10 ** rng.uniform(0, 2, n_users)).astype(int)
    n = np.stack([np.bincount(rng.integers(0, len(pairs), t), minlength=len(pairs)) for t in total])
    s = rng.binomial(n, 0.5 + eta[:, None] * (mu[None, :] - 0.5))
    labels = [f"m{x} vs m{y}" for x, y in zip(a, b, strict=True)]
    return VoteData.from_counts(n, s, pairs=labels), mu


def main() -> None:
    data, mu = simulate()
    x_true = 2 * mu - 1
    print(f"{data.n_users} users, {len(data.pairs)} pairs, {data.n_votes} votes; "
          f"sd of the true 2 mu - 1: {x_true.std():.3f}")  # fmt: skip
    for structure in ("independent", "pooled", "bradley_terry"):
        times = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit_em(data, "beta", mu_structure=structure, n_init=1)
            for _ in range(3):
                t0 = time.perf_counter()
                res = fit_em(data, "beta", mu_structure=structure, n_init=1)
                times.append(time.perf_counter() - t0)
        rmse = float(np.sqrt(np.mean((2 * res.mu_.to_numpy() - 1 - x_true) ** 2)))
        print(f"{structure:>14}: median {statistics.median(times):6.2f} s, "
              f"log posterior {res.objective_:.2f}, {res.n_iter_} iterations, "
              f"converged {res.converged_}, RMSE of 2 mu - 1 {rmse:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
