"""Compile the Numba kernels once and cache them on disk: ``python -m attnmodel.warmup``.

The compiled E-step, ``mu``'s derivatives and the per-user posterior pass
(:mod:`attnmodel.model.kernels`) are compiled on first use and cached on disk
(beside the package's sources, or under ``NUMBA_CACHE_DIR``). Without this
step, the first fit on a large log after installing pays that compilation,
20 to 60 s; every later process loads the cached machine code. Run it once
after installing (the set-up command of the README does); running it again
only loads the cache.

What it runs is what fits run: two small simulated logs (:data:`LOGS`), each
fitted by MAP-EM with the compiled engine for every family, with ties dropped
and (continuous families) with ties modelled, ``mu`` unknown, then the
per-user pass NUTS's post-processing makes at each draw, and the passes
of large logs' light rows as polynomials in ``eta``. Each kernel is
compiled for the argument types those calls give it. (The PyTensor graph
NUTS samples is compiled by PyTensor at the first NUTS fit, in its own cache.)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

__all__ = ["warm_up", "main"]


#: The warm-up's logs: most users on every pair (the E-step as dense products),
#: and users on a few of many pairs (the compiled pass over each row's entries).
LOGS = {
    "2 pairs": ({"gpt vs llama": 0.8, "claude vs alpaca": 0.7}, (5, 15)),
    "12 pairs": ({f"m{i} vs m{i + 1}": 0.6 + 0.03 * i for i in range(12)}, (1, 4)),
}


def _votes(log: str, ties: bool):
    """40 simulated users' votes of ``log`` (:data:`LOGS`), some of them ties when asked."""
    import numpy as np

    from attnmodel.data.votes import VoteData
    from attnmodel.model.simulate import simulate_votes

    mu, n_votes = LOGS[log]
    sim = simulate_votes("beta", {"alpha": 3.0, "beta": 5.0}, 40, n_votes, mu, layout="raw", seed=0)
    votes = sim.votes.copy()
    if not ties:
        return VoteData.from_frame(votes)
    votes.loc[np.arange(len(votes)) % 7 == 0, "winner"] = "tie"
    return VoteData.from_frame(votes, ties="model")


def warm_up(say: Callable[[str], None] | None = None) -> list[str]:
    """Compile (or load from the cache) every Numba kernel the fits use.

    Parameters
    ----------
    say : callable, optional
        Called with one line per step (default: nothing is said).

    Returns
    -------
    list of str
        The steps run, ``"LOG, FAMILY"`` (``", ties modelled"`` added when
        they are), then ``"per-user posterior"``.
    """
    import numpy as np

    from attnmodel.inference.em import EMState, fit_em
    from attnmodel.model.families import FAMILY_NAMES, get_family
    from attnmodel.posterior.conditional import conditional_summaries, grid_row_summaries

    say = say or (lambda line: None)
    steps = []
    last = None
    for log in LOGS:
        for ties in (False, True):
            data = _votes(log, ties)
            for family in FAMILY_NAMES:
                if ties and get_family(family).discrete:
                    continue  # ties are modelled for continuous families only
                clock = time.perf_counter()
                fit = fit_em(
                    data, family, priors="flat", n_init=1, max_iter=2, engine="numba", warn=False
                )
                step = f"{log}, {family}" + (", ties modelled" if ties else "")
                say(f"{step}: {time.perf_counter() - clock:.1f} s")
                steps.append(step)
                if family == "beta":
                    last = fit
    clock = time.perf_counter()
    state = EMState(last.params_, last.mu_.to_numpy(), last.mu_hyper_, last.ties_)
    conditional_summaries(
        last.problem,
        [[state, state]],
        eta_star=0.5,
        store_eta=True,
        log_likelihood=True,
        rng=np.random.default_rng(0),
    )
    # Small logs take the one-thread pass; compile the threaded one for large logs too.
    grid_row_summaries(last.problem, state, 0.5, np.random.default_rng(0), parallel=True)
    say(f"per-user posterior: {time.perf_counter() - clock:.1f} s")
    steps.append("per-user posterior")
    clock = time.perf_counter()
    _polynomial_rows(last.problem, state)
    say(f"polynomial rows: {time.perf_counter() - clock:.1f} s")
    steps.append("polynomial rows")
    return steps


def _polynomial_rows(problem, state) -> None:
    """The passes that large logs take with light rows as polynomials in ``eta``.

    The E-step of those rows (:func:`attnmodel.model.kernels.poly_estep_stats`)
    and the products-held profile's coefficients, sums and moments
    (:class:`attnmodel.inference.em.ProductProfile`), on the warm-up's rows:
    the small logs above take neither.
    """
    import numpy as np

    from attnmodel.model import kernels

    counts, grid = problem.counts, problem.grid
    rows = np.arange(counts.n_rows)
    half = np.full(counts.n_pairs, 0.5)
    win, loss = np.column_stack([half, state.mu]), np.column_stack([half, 1.0 - state.mu])
    n_max = int(counts.votes_per_row().max())
    table = kernels.bernstein_table(grid.log_eta, grid.log_one_minus_eta, n_max)
    kernels.poly_estep_stats(counts, rows, win, loss, table, problem.nodes(state.params)[2])
    coefs, start, _ = kernels.bernstein_coefs(counts, rows, win, loss)
    kernels.bernstein_sums(coefs, start, counts.row_weight, table[:, :2].T.copy())
    kernels.bernstein_moments(grid.log_eta, grid.log_one_minus_eta, np.exp(grid.log_weight), n_max)


def main() -> int:
    """``python -m attnmodel.warmup``: compile every kernel, one line per step on stderr."""
    clock = time.perf_counter()
    try:
        warm_up(lambda line: print(f"attnmodel warmup: {line}", file=sys.stderr))
    except KeyboardInterrupt:
        print("attnmodel warmup: interrupted", file=sys.stderr)
        return 130
    total = time.perf_counter() - clock
    print(f"attnmodel warmup: kernels compiled and cached in {total:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
