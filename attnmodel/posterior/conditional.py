"""Each user's attentiveness given the global parameters: tail masses and exact draws.

Given ``P_eta`` and ``mu``, user ``j``'s conditional ``p(eta | votes_j)`` is known
up to quadrature: node masses on the logit grid (continuous families) or
membership probabilities of the atoms (discrete families), per distinct count
row (see :meth:`attnmodel.inference.em.EMProblem.e_step`). MAP-EM's result (at its
estimate) and NUTS post-processing (at every posterior draw) both turn those
masses into tail probabilities and draws here, on plain arrays.

The evidence a row's votes give for ``eta >= eta_star`` is the Bayes factor
of that side of the cut against the other, ``(posterior odds) / (odds under
P_eta)`` (:func:`log_bayes_factor`), in logs, from each side's mass summed
on its own (:func:`side_log_masses`), so that a side far in the tail keeps
its digits.

Tail probabilities on the grid combine the node masses with the exact
posterior density at a few nodes around the cut
(:func:`attnmodel.model.grid.tail_rule`); they agree with adaptive quadrature
to about 1e-11.

On the grid, the log density in ``u = logit(eta)`` is interpolated linearly
between nodes. Cells are picked with their exact mass under that
interpolation and a draw's place within its cell follows the same
interpolation (closed form), so draws are continuous and reproduce a smooth
posterior's mean and variance to the grid's accuracy (a uniform place within
the cell would add ``h^2 / 12`` to the variance in ``u``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import special

from attnmodel.data.counts import group_by_row
from attnmodel.model.grid import LogitGrid, pair_log_probs, row_loglik, side_weights, tail_rule

__all__ = [
    "AtomCells",
    "GridCells",
    "pick",
    "grid_row_summaries",
    "PARALLEL_MIN_WORK",
    "DRAW_THREADS_MIN_WORK",
    "DRAW_BATCH",
    "draw_threads",
    "grid_uniforms",
    "row_log_density",
    "conditional_summaries",
    "binomial_log_const",
    "LOG_ODDS_LIMIT",
    "above_nodes",
    "side_log_masses",
    "prior_side_log_masses",
    "posterior_side_log_masses",
    "log_bayes_factor",
]

#: Posterior log odds are resolved to this many nats: the E-step leaves out nodes
#: more than 45 nats below a row's peak (:mod:`attnmodel.model.kernels`).
LOG_ODDS_LIMIT = 45.0


def normalised_cum(prob: np.ndarray) -> np.ndarray:
    """Row-wise cumulative sums scaled so that each row ends at exactly 1."""
    cum = np.cumsum(prob, axis=1)
    cum /= cum[:, -1:]
    cum[:, -1] = 1.0
    return cum


def pick(flat: np.ndarray, n_cat: int, rows: np.ndarray, unif: np.ndarray) -> np.ndarray:
    """Index into each row's categories by inverse CDF.

    ``flat`` holds each row's cumulative probabilities (normalised so that
    the last is exactly 1) offset by the row index, so that row ``r``
    occupies ``[r, r + 1]`` and one ``searchsorted`` serves every row;
    ``side="right"`` never lands on a category of zero mass. ``rows`` and
    ``unif`` give one row and one uniform per draw.
    """
    idx = np.searchsorted(flat, rows + unif, side="right")
    # r + u can round up to r + 1 for u within an ulp of 1: stay in the row.
    return np.clip(idx - rows * n_cat, 0, n_cat - 1)


def _offset(cum: np.ndarray) -> np.ndarray:
    return (cum + np.arange(cum.shape[0])[:, None]).ravel()


def log_cell_mass(delta: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Log mass of a cell of width ``delta`` whose log density runs linearly from a to b."""
    d = np.abs(b - a)
    # exprel(-d) = (1 - e^-d) / d lies in (0, 1]: no overflow for steep cells.
    return np.log(delta) + np.maximum(a, b) + np.log(special.exprel(-d))


def within_cell(unif: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Position in [0, 1] of a draw from the density ``∝ exp(slope * x)`` on [0, 1]."""
    small = np.abs(slope) < 1e-9
    safe = np.where(small, 1.0, slope)
    x = np.log1p(unif * np.expm1(safe)) / safe
    return np.clip(np.where(small, unif, x), 0.0, 1.0)


class GridCells:
    """Per-row posterior on the logit grid, log-linear between nodes.

    Parameters
    ----------
    grid : LogitGrid
    post : ndarray, shape (R, G)
        Node masses per row (as the E-step returns them).
    """

    def __init__(self, grid: LogitGrid, post: np.ndarray) -> None:
        self.grid = grid
        self.post = post
        self.u = grid.u
        with np.errstate(divide="ignore"):
            log_dens = np.log(post) - grid.log_weight[None, :]
        # Far tails underflow to 0 mass; floor them far below the peak so that
        # every cell has a finite log-linear interpolation.
        log_dens = np.maximum(log_dens, log_dens.max(axis=1, keepdims=True) - 700.0)
        self.width = np.diff(grid.u)
        log_mass = log_cell_mass(self.width[None, :], log_dens[:, :-1], log_dens[:, 1:])
        self.cum = normalised_cum(np.exp(log_mass - log_mass.max(axis=1, keepdims=True)))
        self.flat = _offset(self.cum)
        self.slope = log_dens[:, 1:] - log_dens[:, :-1]

    def tail(self, eta_star: float, log_density) -> np.ndarray:
        """``P(eta >= eta_star)`` per row, shape (R,).

        By :func:`attnmodel.model.grid.tail_rule`: the node masses and the
        exact posterior at a few nodes around the cut, ``log_density(u)``
        (shape (R, len(u)): each row's normalised log posterior density in
        ``u``, see :func:`row_log_density`).
        """
        n_rows = self.post.shape[0]
        if eta_star <= 0.0:
            return np.ones(n_rows)
        if eta_star >= 1.0:
            return np.zeros(n_rows)
        rule = tail_rule(self.grid, eta_star)
        t = self.post @ rule.step + np.exp(log_density(rule.u)) @ rule.weight
        return np.clip(t, 0.0, 1.0)

    def sample(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One draw of ``eta`` for each entry of ``rows`` (row indices)."""
        rows = np.asarray(rows)
        cell = pick(self.flat, self.width.size, rows, rng.random(rows.shape))
        x = within_cell(rng.random(rows.shape), self.slope[rows, cell])
        return special.expit(self.u[cell] + x * self.width[cell])


class AtomCells:
    """Per-row membership of a discrete family's atoms.

    Parameters
    ----------
    post : ndarray, shape (R, K)
        Membership probabilities per row.
    locations : ndarray, shape (K,)
    """

    def __init__(self, post: np.ndarray, locations: np.ndarray) -> None:
        self.post = post
        self.locations = np.asarray(locations, dtype=float)
        self.cum = normalised_cum(post)
        self.flat = _offset(self.cum)

    def tail(self, eta_star: float) -> np.ndarray:
        """``P(eta >= eta_star)`` per row, shape (R,)."""
        return self.post[:, self.locations >= eta_star].sum(axis=1)

    def sample(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One atom for each entry of ``rows``, drawn by membership probability."""
        rows = np.asarray(rows)
        return self.locations[pick(self.flat, self.locations.size, rows, rng.random(rows.shape))]


def above_nodes(problem, state, eta_star: float) -> np.ndarray:
    """Each node's share of the side at or above the cut (the rest is below it).

    Atoms of a discrete family (in the order of its components): 1 at or
    above ``eta_star``, else 0. Grid nodes:
    :func:`attnmodel.model.grid.side_weights` of the smooth step of
    :func:`attnmodel.model.grid.tail_rule`, as
    :func:`attnmodel.model.kernels.grid_summaries` weights them.
    """
    family = problem.family
    if family.discrete:
        return (family.components(state.params)[1] >= eta_star).astype(np.float64)
    if not 0.0 < eta_star < 1.0:
        return np.full(problem.grid.eta.size, float(eta_star <= 0.0))
    return side_weights(tail_rule(problem.grid, eta_star).step)[0]


def side_log_masses(mass: np.ndarray, above: np.ndarray, correction=0.0):
    """Log of the mass on each side of the cut, each side summed on its own.

    Parameters
    ----------
    mass : ndarray, shape (..., G)
        Masses per node, each row summing to 1.
    above : ndarray, shape (G,)
        Each node's share of the upper side (:func:`above_nodes`).
    correction : float or ndarray, shape (...)
        Mass moved from the lower side to the upper one: the remainder of the
        tail rule (:func:`attnmodel.model.grid.tail_rule`), which turns the
        smooth step's shares into the sides of the sharp cut. Where it would
        empty a side (rounding), the side keeps its share.

    Returns
    -------
    log_above, log_below : ndarray, shape (...)
        ``log P(side)``; ``-inf`` for a side without mass.
    """
    up_w = np.asarray(above, dtype=np.float64)
    up, down = mass @ up_w, mass @ (1.0 - up_w)
    up = np.where(up + correction > 0.0, up + correction, up)
    down = np.where(down - correction > 0.0, down - correction, down)
    with np.errstate(divide="ignore"):
        return np.log(up), np.log(down)


def _cut_correction(problem, state, eta_star: float, log_density) -> np.ndarray | float:
    """The tail rule's remainder for log densities ``log_density(u)``; 0 off the grid."""
    if problem.family.discrete or not 0.0 < eta_star < 1.0:
        return 0.0
    rule = tail_rule(problem.grid, eta_star)
    return np.exp(log_density(rule.u)) @ rule.weight


def prior_side_log_masses(problem, state, eta_star: float):
    """:func:`side_log_masses` of ``P_eta`` at ``state``: ``log P_eta(side of eta_star)``."""
    log_mass = problem.nodes(state.params)[2]
    log_total = special.logsumexp(log_mass)
    with np.errstate(under="ignore"):
        mass = np.exp(log_mass - log_total)

    def log_density(u):
        return problem.family.log_density_logit(u, state.params) - log_total

    correction = _cut_correction(problem, state, eta_star, log_density)
    return side_log_masses(mass, above_nodes(problem, state, eta_star), correction)


def posterior_side_log_masses(problem, state, post, row_log_marginal, eta_star: float):
    """:func:`side_log_masses` of each row's posterior (node masses ``post``, shape (R, G))."""
    log_density = row_log_density(problem, state, row_log_marginal)
    correction = _cut_correction(problem, state, eta_star, log_density)
    return side_log_masses(post, above_nodes(problem, state, eta_star), correction)


def log_bayes_factor(post_above, post_below, prior_above, prior_below) -> np.ndarray:
    """Log Bayes factor of ``eta >= eta_star`` against ``eta < eta_star`` from a user's votes.

    ``log(posterior odds) - log(odds under P_eta)``, from the log masses of the
    two sides (:func:`side_log_masses`): the factor by which the user's own
    votes multiplied the population's odds of being above the cut. It does not
    depend on how much of ``P_eta`` lies above the cut, only on how the votes'
    likelihood compares across the two sides. A posterior side without mass
    (the E-step leaves out nodes far below a row's peak) counts as
    :data:`LOG_ODDS_LIMIT` nats below the other, a bound that never overstates
    the factor. Where ``P_eta`` puts no mass on one side, no votes can move
    the odds: 0.
    """
    with np.errstate(invalid="ignore"):
        post = np.asarray(post_above, dtype=np.float64) - np.asarray(post_below)
        post = np.where(np.isinf(post), np.sign(post) * LOG_ODDS_LIMIT, post)
        prior = np.asarray(prior_above, dtype=np.float64) - np.asarray(prior_below)
        out = post - prior
    return np.where(np.isfinite(prior), out, 0.0)


def row_log_density(problem, state, row_log_marginal: np.ndarray):
    """Each row's normalised log posterior density in ``u``, as a function of ``u``.

    ``log p(u) + log L_r(u) - log Z_r`` (prior density of ``u``, the row's
    likelihood without binomial constants, its log marginal from the E-step),
    for :meth:`GridCells.tail`; returns a callable of ``u`` (shape (K,)) giving
    shape (R, K). With ties modelled the likelihood's direction part is taken
    at the transformed nodes and the row's tie factor is added, as in the
    E-step (:meth:`attnmodel.inference.em.EMProblem.key_log_mass`).
    """

    def log_density(u: np.ndarray) -> np.ndarray:
        eta, one_minus_eta = special.expit(u), special.expit(-u)
        d_eta, d_om = problem.direction_nodes(eta, one_minus_eta, state)
        ll = row_loglik(problem.counts, *pair_log_probs(d_eta, d_om, state.mu))
        log_prior = problem.family.log_density_logit(u, state.params)
        key_mass, row_key = problem.key_log_mass(eta, one_minus_eta, log_prior, state)
        return key_mass[row_key] + ll - row_log_marginal[:, None]

    return log_density


#: Below this many (entry, node) products, :func:`grid_row_summaries` runs its
#: compiled pass in one thread (:func:`attnmodel.model.kernels.grid_summaries_serial`):
#: waking the thread pool at every draw cost more than the pass. On MT-Bench (690
#: entries x 371 nodes) one draw took 1.3 ms in one thread and 7.1 ms in two, on
#: a machine with other work (load 3).
PARALLEL_MIN_WORK = 10_000_000


def grid_uniforms(rng: np.random.Generator, n_rows: int, user_row: np.ndarray | None = None):
    """The uniforms one :func:`grid_row_summaries` pass takes, in the order it takes them.

    ``(pick, within, user_pick, user_within)``: the rows' cell picks and places
    within cells, then the same for ``user_row`` (empty without it), the order
    of :meth:`GridCells.sample`.
    """
    pick, within = rng.random(n_rows), rng.random(n_rows)
    if user_row is None:
        return pick, within, np.zeros(0), np.zeros(0)
    n = np.asarray(user_row).size
    return pick, within, rng.random(n), rng.random(n)


def grid_row_summaries(
    problem,
    state,
    eta_star: float,
    rng: np.random.Generator | None,
    user_row: np.ndarray | None = None,
    parallel: bool | None = None,
    uniforms: tuple[np.ndarray, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Everything :class:`GridCells` gives per row at one set of global parameters, compiled.

    ``problem`` is the :class:`attnmodel.inference.em.EMProblem` (continuous
    family), ``state`` the global parameters (an
    :class:`attnmodel.inference.em.EMState`). One pass of
    :func:`attnmodel.model.kernels.grid_summaries` over the count rows forms
    each row's posterior on the grid (as the E-step does), its cells and its
    tail (:func:`attnmodel.model.grid.tail_rule`), for NUTS post-processing at
    every draw. Uniforms are taken from
    ``rng`` in the order :meth:`GridCells.sample` takes them (rows' cell
    picks, rows' places within cells, then the same for ``user_row``), so
    the draws equal those of ``GridCells`` on the same posterior.
    ``parallel`` runs the pass in Numba's threads (True) or in one (False);
    by default threads are used from :data:`PARALLEL_MIN_WORK` (entry, node)
    products on. Both give the same values. ``uniforms`` (from
    :func:`grid_uniforms`) replaces the draws from ``rng``, so that passes
    over several draws can run in any order with the uniforms of a serial run.

    Returns
    -------
    dict with ``log_z``, ``mean``, ``second``, ``log_above``, ``log_below``
    (:func:`side_log_masses` of the posterior), ``tail``, ``eta_row`` (shape
    (R,)) and ``eta_user`` (shape of ``user_row``, when given).
    """
    import numba

    from attnmodel.model import kernels

    counts, grid = problem.counts, problem.grid
    eta, one_minus_eta, log_mass = problem.nodes(state.params)
    # With ties modelled: direction part at the transformed nodes, one log mass
    # per (m, T) (EMProblem.key_log_mass), as in the E-step.
    log_g, log_1mg = pair_log_probs(*problem.direction_nodes(eta, one_minus_eta, state), state.mu)
    key_mass, row_key = problem.key_log_mass(eta, one_minus_eta, log_mass, state)
    inside = 0.0 < eta_star < 1.0
    # Outside (0, 1) the tail is 1 or 0 (set below); any rule serves the pass.
    rule = tail_rule(grid, eta_star if inside else 0.5)
    sub_eta, sub_om = special.expit(rule.u), special.expit(-rule.u)
    sub_log_g, sub_log_1mg = pair_log_probs(
        *problem.direction_nodes(sub_eta, sub_om, state), state.mu
    )
    sub_log_prior = problem.key_log_mass(
        sub_eta, sub_om, problem.family.log_density_logit(rule.u, state.params), state
    )[0]
    n_rows = counts.n_rows
    if uniforms is None:
        uniforms = grid_uniforms(rng, n_rows, user_row)
    pick_u, within_u, user_pick, user_within = uniforms
    if user_row is None:
        user_ptr, row_users = np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    elif user_row is counts.user_row:
        user_ptr, row_users = counts.users_by_row()  # kept: grouped once for every draw
    else:
        user_ptr, row_users = group_by_row(user_row, n_rows)
    # One compiled signature: read-only, as the table keeps its grouping.
    for a in (user_ptr, row_users):
        a.flags.writeable = False
    n_chunks = max(1, min(numba.get_num_threads() * 4, n_rows))
    row_ptr, pair, s, f = kernels.count_arrays(counts)
    if parallel is None:
        parallel = counts.entry_n.size * grid.u.size >= PARALLEL_MIN_WORK
    kernel = kernels.grid_summaries if parallel else kernels.grid_summaries_serial
    out = kernel(
        row_ptr,
        pair,
        s,
        f,
        np.ascontiguousarray(log_g, dtype=np.float64),
        np.ascontiguousarray(log_1mg, dtype=np.float64),
        np.ascontiguousarray(key_mass, dtype=np.float64),
        row_key,
        grid.u,
        grid.log_weight,
        grid.eta,
        rule.step,
        rule.weight,
        np.ascontiguousarray(sub_log_prior, dtype=np.float64),
        np.ascontiguousarray(sub_log_g),
        np.ascontiguousarray(sub_log_1mg),
        pick_u,
        within_u,
        user_ptr,
        row_users,
        user_pick,
        user_within,
        n_chunks,
    )
    names = ("log_z", "mean", "second", "log_above", "log_below", "tail", "eta_row", "eta_user")
    result = dict(zip(names, out, strict=True))
    if eta_star <= 0.0:
        result["tail"] = np.ones(n_rows)
    elif eta_star >= 1.0:
        result["tail"] = np.zeros(n_rows)
    return result


#: From this many (entry, node) products per draw (and below
#: :data:`PARALLEL_MIN_WORK`, where each pass is threaded itself),
#: :func:`conditional_summaries` runs the draws' one-thread passes in as many
#: threads as Numba may use, a batch of :data:`DRAW_BATCH` draws at a time
#: (the compiled pass releases the GIL). On the 78-pair log of
#: ``benchmarks/bench_nuts_real.py`` (5,807 entries x 1,475 nodes) a draw's
#: pass takes about 7 ms in one thread; on MT-Bench (690 x 371) about 1 ms.
DRAW_THREADS_MIN_WORK = 1_000_000

#: Draws whose uniforms are drawn ahead of their threaded passes.
DRAW_BATCH = 64


def draw_threads(counts, n_nodes: int) -> int:
    """Threads that :func:`conditional_summaries` runs the draws' grid passes in (1: in turn)."""
    import numba

    work = counts.entry_n.size * n_nodes
    if not DRAW_THREADS_MIN_WORK <= work < PARALLEL_MIN_WORK:
        return 1
    return max(1, numba.get_num_threads())


def binomial_log_const(counts) -> np.ndarray:
    """Per row, the sum of ``log C(n, s)`` over its entries (the votes' binomial constants).

    The E-step's row marginals leave it out; a pointwise log-likelihood adds it.
    """
    n, s = counts.entry_n.astype(float), counts.entry_s.astype(float)
    c = special.gammaln(n + 1) - special.gammaln(s + 1) - special.gammaln(n - s + 1)
    return counts.row_sum(c)


def conditional_summaries(
    problem,
    states: Sequence[Sequence],
    *,
    eta_star: float,
    store_eta: bool,
    log_likelihood: bool,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Per-row conditional quantities for every draw of the global parameters.

    Parameters
    ----------
    problem : EMProblem
        The counts, family and grid (:class:`attnmodel.inference.em.EMProblem`).
    states : sequence of sequences of EMState
        The draws of the global parameters, ``states[chain][draw]``
        (:class:`attnmodel.inference.em.EMState`).
    eta_star : float
        Cut of the tail mass ``tail = P(eta >= eta_star | row, draw)``.
    store_eta, log_likelihood : bool
        Also draw ``eta`` for every user / compute each row's marginal
        log-likelihood (with its binomial constant).
    rng : numpy.random.Generator

    Returns
    -------
    dict
        Arrays of shape (chain, draw, R): ``mean``, ``second`` (the second
        moment), ``tail``, ``log_above`` and ``log_below`` (the posterior's
        :func:`side_log_masses` at ``eta_star``), ``eta_row`` (one draw per
        row) and ``loglik_row`` (when asked for); (chain, draw)
        ``prior_log_above`` and ``prior_log_below`` (the same for ``P_eta``);
        (chain, draw, R, K) ``membership`` (atoms in
        increasing order) for discrete families; (chain, draw, n_users)
        ``eta_user`` (float32) when asked for. On the grid, one compiled pass
        per draw does all of it (:func:`grid_row_summaries`).
    """
    counts = problem.counts
    family = problem.family
    n_chain, n_draw = len(states), len(states[0])
    n_rows = counts.n_rows
    shape = (n_chain, n_draw, n_rows)
    out = {
        "mean": np.empty(shape),
        "second": np.empty(shape),
        "tail": np.empty(shape),
        "log_above": np.empty(shape),
        "log_below": np.empty(shape),
        "prior_log_above": np.empty(shape[:2]),
        "prior_log_below": np.empty(shape[:2]),
        "eta_row": np.empty(shape),
    }
    const = None
    if log_likelihood:
        out["loglik_row"] = np.empty(shape)
        const = binomial_log_const(counts)
    if family.discrete:
        out["membership"] = np.empty(shape + (family.n_components,))
    if store_eta:
        out["eta_user"] = np.empty((n_chain, n_draw, counts.user_row.size), dtype=np.float32)
    all_rows = np.arange(n_rows)
    user_row = counts.user_row if store_eta else None
    threads = 1 if family.discrete else draw_threads(counts, problem.grid.u.size)
    if threads > 1:

        def one(cd, uniforms):
            c, d = cd
            state = states[c][d]
            sides = prior_side_log_masses(problem, state, eta_star)
            row = grid_row_summaries(
                problem, state, eta_star, None, user_row, parallel=False, uniforms=uniforms
            )
            _store(out, c, d, sides, row, const)

        order = [(c, d) for c in range(n_chain) for d in range(n_draw)]
        with ThreadPoolExecutor(threads) as pool:
            for start in range(0, len(order), DRAW_BATCH):
                batch = order[start : start + DRAW_BATCH]
                # The uniforms are drawn here, draw after draw, as the serial loop draws them.
                uniforms = [grid_uniforms(rng, n_rows, user_row) for _ in batch]
                list(pool.map(one, batch, uniforms))
        return out
    for c in range(n_chain):
        for d in range(n_draw):
            state = states[c][d]
            prior_sides = prior_side_log_masses(problem, state, eta_star)
            if family.discrete:
                estep = problem.e_step(state, posterior=True)
                post = estep.posterior
                _, eta = family.components(state.params)
                order = np.argsort(eta, kind="stable")
                out["membership"][c, d] = post[:, order]
                cells = AtomCells(post, eta)
                row = {
                    "log_z": estep.row_log_marginal,
                    "mean": post @ eta,
                    "second": post @ eta**2,
                    "tail": cells.tail(eta_star),
                    "eta_row": cells.sample(all_rows, rng),
                }
                sides = side_log_masses(post, above_nodes(problem, state, eta_star))
                row["log_above"], row["log_below"] = sides
                if store_eta:
                    row["eta_user"] = cells.sample(counts.user_row, rng)
            else:
                row = grid_row_summaries(problem, state, eta_star, rng, user_row)
            _store(out, c, d, prior_sides, row, const)
    return out


def _store(out, c, d, prior_sides, row, const) -> None:
    """Put one draw's summaries into :func:`conditional_summaries`' arrays at ``(c, d)``."""
    out["prior_log_above"][c, d], out["prior_log_below"][c, d] = prior_sides
    for name in ("mean", "second", "tail", "log_above", "log_below", "eta_row"):
        out[name][c, d] = row[name]
    if "eta_user" in out:
        out["eta_user"][c, d] = row["eta_user"]
    if const is not None:
        out["loglik_row"][c, d] = row["log_z"] + const
