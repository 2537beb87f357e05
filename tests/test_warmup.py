"""``python -m attnmodel.warmup`` compiles every kernel a fit uses, once, into the cache.

The check runs in fresh processes on an empty Numba cache folder: the warm-up
fills it, then fits of other data (other sizes, layouts, families, ties, the
per-user posterior pass) must find every compiled kernel they call there,
compiling nothing (Numba counts the cache's hits and misses per kernel).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

#: Fits of data unlike the warm-up's, then the kernels' cache hits and misses.
WORKLOAD = """
import json
import numba
import numpy as np
from attnmodel.data.votes import VoteData
from attnmodel.inference.em import EMState, fit_em
from attnmodel.model import kernels
from attnmodel.model.simulate import simulate_votes
from attnmodel.posterior.conditional import conditional_summaries

sim = simulate_votes("beta", {"alpha": 2.0, "beta": 2.0}, 150, (1, 40),
                     {"a vs b": 0.9, "c vs d": 0.75, "e vs f": 0.6}, layout="raw", seed=3)
votes = sim.votes
plain = VoteData.from_frame(votes)
with_ties = VoteData.from_frame(votes.assign(winner=np.where(np.arange(len(votes)) % 5 == 0,
                                                             "tie", votes["winner"])),
                                ties="model")
sparse = VoteData.from_frame(simulate_votes(
    "beta", {"alpha": 3.0, "beta": 1.5}, 300, (1, 6),
    {f"x{i} vs y{i}": 0.55 + 0.02 * i for i in range(20)}, layout="raw", seed=4).votes)
fit = fit_em(sparse, "beta", engine="numba", n_init=2)
fit_em(plain, "beta", engine="numba", n_init=2)
fit_em(plain, "beta_mixture", engine="numba", priors="flat", max_iter=5)
fit_em(plain, "two_point", engine="numba", mu=0.8, max_iter=5)
tied = fit_em(with_ties, "logistic_normal_mixture", engine="numba", priors="flat", max_iter=5)
for f in (fit, tied):
    state = EMState(f.params_, f.mu_.to_numpy(), f.mu_hyper_, f.ties_)
    conditional_summaries(f.problem, [[state] * 3] * 2, eta_star=0.7, store_eta=False,
                          log_likelihood=True, rng=np.random.default_rng(1))
# The light rows' passes of large logs, on this small one's rows.
counts, grid = fit.problem.counts, fit.problem.grid
rows = np.arange(counts.n_rows)
half = np.full(counts.n_pairs, 0.5)
mu = fit.mu_.to_numpy()
win, loss = np.column_stack([half, mu]), np.column_stack([half, 1 - mu])
table = kernels.bernstein_table(grid.log_eta, grid.log_one_minus_eta, 8)
kernels.poly_estep_stats(counts, rows, win, loss, table, np.zeros(grid.size))
coefs, start, _ = kernels.bernstein_coefs(counts, rows, win, loss)
kernels.bernstein_sums(coefs, start, counts.row_weight, table[:, :3].T.copy())
kernels.bernstein_moments(grid.log_eta, grid.log_one_minus_eta, np.exp(grid.log_weight), 8)
stats = {}
for name, obj in vars(kernels).items():
    if isinstance(obj, numba.core.registry.CPUDispatcher):
        s = obj.stats
        stats[name] = [sum(s.cache_hits.values()), sum(s.cache_misses.values())]
print(json.dumps(stats))
"""


def test_after_the_warmup_no_fit_compiles_a_kernel(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    warm = subprocess.run([sys.executable, "-m", "attnmodel.warmup"], env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert warm.returncode == 0, warm.stderr
    assert warm.stderr.splitlines()[-1].startswith("attnmodel warmup: kernels compiled and cached")
    run = subprocess.run([sys.executable, "-c", WORKLOAD], env=env,
                         capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert run.returncode == 0, run.stderr
    stats = json.loads(run.stdout.strip().splitlines()[-1])
    compiled = {name: misses for name, (_, misses) in stats.items() if misses}
    assert compiled == {}, f"compiled after the warm-up: {compiled}"
    loaded = {name for name, (hits, _) in stats.items() if hits}
    # The kernels fits call directly: the E-step, mu's derivatives, the per-user pass
    # (a small log's: the one-thread copy), the light rows' passes.
    expected = {"_estep_stats", "_table_plan", "mu_derivatives", "grid_summaries_serial"}
    expected |= {"_poly_pass", "_bernstein_coefs", "_bernstein_sums", "_bernstein_moments"}
    assert expected <= loaded, stats
