"""The compiled E-step's two row paths (power tables, log space) against each other."""

import numpy as np
import pytest

from attnmodel.data.votes import VoteData
from attnmodel.model.families import get_family
from attnmodel.model.grid import make_logit_grid, pair_log_probs
from attnmodel.model.kernels import TABLE_MAX_COUNT, estep_stats


def _table(rng, n_users=300, n_pairs=3, big=()):
    """Users with 1..120 votes per pair, some pairs left out, plus the given large counts."""
    n = rng.integers(0, 120, size=(n_users, n_pairs))
    n[:, 0] = np.maximum(n[:, 0], 1)
    for i, count in enumerate(big):
        n[i, i % n_pairs] = count
    s = rng.binomial(n, 0.7)
    return VoteData.from_counts(n, s).counts


def _inputs(counts, mu, family="beta", params=None):
    grid = make_logit_grid(200)
    fam = get_family(family)
    params = params or {"alpha": 2.0, "beta": 3.0}
    log_mass = grid.log_weight + fam.log_density_logit(grid.u, params)
    log_g, log_1mg = pair_log_probs(grid.eta, grid.one_minus_eta, np.asarray(mu, dtype=float))
    return log_g, log_1mg, log_mass


@pytest.mark.parametrize(
    ("mu", "big"),
    [
        ((0.8, 0.6, 0.95), ()),
        # Counts past the tables' reach, and rows whose likelihood underflows in
        # linear space (thousands of votes): those rows take the log-space path.
        ((0.8, 0.6, 0.95), (TABLE_MAX_COUNT + 1, 5000, 20_000)),
        # mu = 1: log(1 - g) = -inf at eta = 1.
        ((1.0, 0.6, 0.7), (3000,)),
    ],
)
def test_tables_match_log_space(mu, big):
    counts = _table(np.random.default_rng(3), big=big)
    args = _inputs(counts, mu)
    fast = estep_stats(counts, *args, posterior=True, tables=True)
    slow = estep_stats(counts, *args, posterior=True, tables=False)
    # Same products, formed as exp(sum of logs) or as products of exp's: both carry
    # relative errors of a few ulp times |log term| (< 1e3 here), so 1e-12 relative.
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-12)
    np.testing.assert_allclose(fast[4], slow[4], rtol=1e-11, atol=1e-15)
    for x, y in zip(fast[1:4], slow[1:4], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12 * np.abs(y).max())


def test_rows_with_thousands_of_votes_stay_finite():
    counts = _table(np.random.default_rng(4), big=(10_000, 4000))
    log_z, weight, *_ = estep_stats(counts, *_inputs(counts, (0.9, 0.6, 0.8)))
    assert np.all(np.isfinite(log_z))
    # 10,000 votes: the row's log marginal is about n log(1/2)-ish, far below exp's range.
    assert log_z[counts.user_row[0]] < -5000
    np.testing.assert_allclose(weight.sum(), counts.row_weight.sum(), rtol=1e-12)


def test_impossible_nodes_and_zero_mass():
    counts = _table(np.random.default_rng(5))
    log_g, log_1mg, log_mass = _inputs(counts, (0.8, 0.6, 0.95))
    log_mass = log_mass.copy()
    log_mass[::2] = -np.inf
    fast = estep_stats(counts, log_g, log_1mg, log_mass, posterior=True, tables=True)
    slow = estep_stats(counts, log_g, log_1mg, log_mass, posterior=True, tables=False)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-12)
    assert np.all(fast[4][:, ::2] == 0.0)
    log_z, *_ = estep_stats(counts, log_g, log_1mg, np.full_like(log_mass, -np.inf))
    assert np.all(log_z == -np.inf)


def test_ordinary_rows_take_the_table_path():
    # The comparison above is only meaningful if the tables are used: every row
    # of ordinary size must be formed from them (a return of -1 means log space).
    from attnmodel.model import kernels as k

    counts = _table(np.random.default_rng(6), big=(5000,))
    log_g, log_1mg, log_mass = _inputs(counts, (0.8, 0.6, 0.95))
    row_ptr, pair, s, f = k.count_arrays(counts)
    kmax = k._table_plan(pair, s, f, counts.n_pairs, log_mass.size, TABLE_MAX_COUNT)
    lo_g, hi_g, off_g = k._power_tables(log_g, kmax[0])
    lo_1, hi_1, off_1 = k._power_tables(log_1mg, kmax[1])
    mass = np.exp(log_mass - log_mass.max())
    x = np.empty(log_mass.size)
    big_row = counts.user_row[0]
    for r in range(counts.n_rows):
        total = k._row_by_tables(
            x, r, row_ptr, pair, s, f, kmax, lo_g, hi_g, off_g, lo_1, hi_1, off_1, mass
        )
        assert (total == -1.0) == (r == big_row), r


@pytest.mark.parametrize("eta_star", [0.0, 0.3618, 0.5, 0.999, 1.0])
def test_compiled_row_summaries_equal_grid_cells(eta_star):
    """NUTS post-processing's compiled pass gives GridCells' tails and draws.

    Same posterior, same uniforms in the same order: equal to rounding. Rows
    with thousands of votes (log-space path) are included.
    """
    from attnmodel.inference.em import EMProblem, EMState
    from attnmodel.model.priors import resolve_mu
    from attnmodel.posterior.conditional import GridCells, grid_row_summaries, row_log_density

    counts = _table(np.random.default_rng(7), big=(4000,))
    data_pairs = [f"pair {i}" for i in range(counts.n_pairs)]
    problem = EMProblem(counts, get_family("beta"), resolve_mu(data_pairs, None))
    state = EMState({"alpha": 2.0, "beta": 3.0}, np.array([0.8, 0.6, 0.95]))
    estep = problem.e_step(state, posterior=True)
    eta = problem.grid.eta
    cells = GridCells(problem.grid, estep.posterior)
    rng_old, rng_new = np.random.default_rng(11), np.random.default_rng(11)
    old_rows = cells.sample(np.arange(counts.n_rows), rng_old)
    old_users = cells.sample(counts.user_row, rng_old)
    new = grid_row_summaries(problem, state, eta_star, rng_new, counts.user_row)
    old_tail = cells.tail(eta_star, row_log_density(problem, state, estep.row_log_marginal))
    np.testing.assert_allclose(new["tail"], old_tail, rtol=0, atol=1e-13)
    np.testing.assert_allclose(new["eta_row"], old_rows, rtol=1e-12)
    np.testing.assert_allclose(new["eta_user"], old_users, rtol=1e-12)
    np.testing.assert_allclose(new["mean"], estep.posterior @ eta, rtol=1e-12)
    np.testing.assert_allclose(new["second"], estep.posterior @ eta**2, rtol=1e-12)
    np.testing.assert_allclose(new["log_z"], estep.row_log_marginal, rtol=1e-13)


def test_row_summaries_in_one_thread_equal_the_threaded_pass():
    """The one-thread copy of the compiled pass gives the threaded pass's values exactly."""
    from attnmodel.inference.em import EMProblem, EMState
    from attnmodel.model.priors import resolve_mu
    from attnmodel.posterior.conditional import grid_row_summaries

    counts = _table(np.random.default_rng(7), big=(4000,))
    problem = EMProblem(
        counts, get_family("beta"), resolve_mu([f"pair {i}" for i in range(counts.n_pairs)], None)
    )
    state = EMState({"alpha": 2.0, "beta": 3.0}, np.array([0.8, 0.6, 0.95]))
    one, many = (
        grid_row_summaries(
            problem, state, 0.5, np.random.default_rng(3), counts.user_row, parallel=parallel
        )
        for parallel in (False, True)
    )
    assert one.keys() == many.keys()
    for key in one:
        np.testing.assert_array_equal(one[key], many[key], err_msg=key)


def test_draws_in_threads_equal_the_draws_one_after_another(monkeypatch):
    """The threaded loop over draws gives the serial loop's numbers exactly.

    Same states, same seed: each draw's uniforms are drawn in the serial
    order, so tails, moments, the per-row and per-user draws and the
    pointwise log-likelihoods agree bit for bit (3 threads, batches of 4
    draws, so that the last batch is partial).
    """
    from attnmodel.inference.em import EMProblem, EMState
    from attnmodel.model.priors import resolve_mu
    from attnmodel.posterior import conditional

    counts = _table(np.random.default_rng(7), n_users=120, big=(4000,))
    problem = EMProblem(
        counts, get_family("beta"), resolve_mu([f"pair {i}" for i in range(counts.n_pairs)], None)
    )
    rng = np.random.default_rng(5)
    states = [
        [
            EMState(
                {"alpha": 2.0 + rng.random(), "beta": 3.0 + rng.random()},
                np.array([0.8, 0.6, 0.95]) + 0.02 * rng.random(3),
            )
            for _ in range(5)
        ]
        for _ in range(2)
    ]
    kw = {"eta_star": 0.5, "store_eta": True, "log_likelihood": True}
    monkeypatch.setattr(conditional, "DRAW_BATCH", 4)
    runs = []
    for threads in (1, 3):
        monkeypatch.setattr(conditional, "draw_threads", lambda counts, n, k=threads: k)
        out = conditional.conditional_summaries(problem, states, rng=np.random.default_rng(3), **kw)
        runs.append(out)
    one, many = runs
    assert one.keys() == many.keys()
    for key in one:
        np.testing.assert_array_equal(one[key], many[key], err_msg=key)
    # Different draws, different numbers: the comparison is not of constants.
    assert not np.array_equal(one["mean"][0, 0], one["mean"][1, 4])


def test_draw_threads_only_between_the_thresholds():
    """Threads over draws only for passes long enough and not threaded themselves."""
    import numba

    from attnmodel.posterior import conditional

    counts = _table(np.random.default_rng(7), n_users=50)
    n = counts.entry_n.size
    assert conditional.draw_threads(counts, 1) == 1
    many = conditional.draw_threads(counts, conditional.DRAW_THREADS_MIN_WORK // n + 1)
    assert many == numba.get_num_threads()
    assert conditional.draw_threads(counts, conditional.PARALLEL_MIN_WORK // n + 1) == 1


def _many_pair_table(rng, n_users=60, n_pairs=12):
    """Users on most of many pairs, votes per user heavy-tailed up to thousands."""
    n_votes = np.minimum(np.exp(rng.normal(np.log(40.0), 1.5, n_users)), 6000).astype(int) + 5
    n_votes[0] = 6000
    n = np.stack([rng.multinomial(k, np.full(n_pairs, 1.0 / n_pairs)) for k in n_votes])
    mu = np.linspace(0.55, 0.97, n_pairs)
    s = rng.binomial(n, 0.5 + rng.beta(3, 1.5, n_users)[:, None] * (mu - 0.5))
    return VoteData.from_counts(n, s).counts, mu


def _reference_estep(counts, log_g, log_1mg, log_mass):
    """The E-step written again with dense numpy arrays and scipy's logsumexp."""
    from scipy.special import logsumexp

    n_user, s_user = counts.user_counts()
    rows = counts.user_row
    first = np.unique(rows, return_index=True)[1]
    n_row, s_row = n_user[first], s_user[first]
    a = s_row @ log_g + (n_row - s_row) @ log_1mg + log_mass
    log_z = logsumexp(a, axis=1)
    post = np.exp(a - log_z[:, None])
    wpost = post * counts.row_weight[:, None]
    return log_z, wpost.sum(axis=0), s_row.T @ wpost, (n_row - s_row).T @ wpost, post


@pytest.mark.parametrize("path", [{"dense": True}, {"tables": False}, {"tables": True}, {}])
def test_every_path_matches_a_dense_reference_on_many_pairs(path):
    """Dense products, log space cut to each row's support, tables: all equal a reference.

    Rows with thousands of votes have supports of a few dozen nodes out of
    hundreds, so the support search is exercised; the reference uses every node.
    """
    counts, mu = _many_pair_table(np.random.default_rng(8))
    grid = make_logit_grid(6000)
    log_mass = grid.log_weight + get_family("beta").log_density_logit(
        grid.u, {"alpha": 2.0, "beta": 0.8}
    )
    log_g, log_1mg = pair_log_probs(grid.eta, grid.one_minus_eta, mu)
    got = estep_stats(counts, log_g, log_1mg, log_mass, posterior=True, **path)
    ref = _reference_estep(counts, log_g, log_1mg, log_mass)
    # log-marginals of up to 6000 votes (|log Z| ~ 4e3): sums of that size carry
    # ~1e-12 absolute rounding, i.e. well under 1e-13 relative.
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-13)
    for x, y in zip(got[1:4], ref[1:4], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12 * np.abs(y).max())
    np.testing.assert_allclose(got[4], ref[4], rtol=1e-9, atol=1e-15)


def _searched_table(alpha, beta):
    """A many-pair table on a grid for 6000 votes under Beta(alpha, beta), prepared for search."""
    from attnmodel.model import kernels as k

    counts, mu = _many_pair_table(np.random.default_rng(9))
    grid = make_logit_grid(6000)
    log_mass = grid.log_weight + get_family("beta").log_density_logit(
        grid.u, {"alpha": alpha, "beta": beta}
    )
    log_g, log_1mg = pair_log_probs(grid.eta, grid.one_minus_eta, mu)
    row_ptr, pair, s, f = k.count_arrays(counts)
    prep = k._prepare(pair, s, f, log_g, log_1mg, log_mass[None, :], -1, 0)
    ref = _reference_estep(counts, log_g, log_1mg, log_mass)[4]
    return counts, grid, log_mass, (row_ptr, pair, s, f), prep, ref


def test_support_search_cuts_heavy_rows_and_keeps_their_mass():
    """A row with thousands of votes is evaluated on a narrow support only."""
    from attnmodel.model import kernels as k

    counts, grid, log_mass, (row_ptr, pair, s, f), prep, ref = _searched_table(3.0, 2.0)
    heavy = counts.user_row[0]
    lo, hi = k._row_support(heavy, row_ptr, pair, s, f, prep[9], prep[10], log_mass, prep[11][0])
    assert 0 < hi - lo < grid.size // 4
    outside = np.r_[ref[heavy, :lo], ref[heavy, hi:]]
    # Left out: nodes more than 45 below the row's peak, i.e. below e^-45 each.
    assert outside.max() < np.exp(-45.0)


def test_light_rows_leave_out_only_nodes_the_prior_makes_negligible():
    """A row of a few votes on a grid built for thousands sums over the prior's span.

    A likelihood is at most 1, so a node whose log mass lies 45 below a lower
    bound on the row's peak cannot weigh more than e^-45 of it; the reference
    posterior (every node, scipy) must put less than that on every node left out.
    """
    from attnmodel.model import kernels as k

    counts, grid, log_mass, (row_ptr, pair, s, f), prep, ref = _searched_table(3.8, 1.4)
    side_max = prep[11][0]
    mode = k._prior_mode(side_max)
    assert mode == np.argmax(log_mass)
    rows = range(row_ptr.size - 1)
    light = [r for r in rows if k._row_votes(r, row_ptr, s, f) < k.SUPPORT_MIN_VOTES]
    assert len(light) >= 10
    cut_any = False
    for r in light:
        at_mode = k._row_loglik_at(mode, r, row_ptr, pair, s, f, prep[9], prep[10])
        lo, hi = k._prior_span(side_max, mode, at_mode + log_mass[mode] - k._SUPPORT_CUT)
        assert lo <= mode < hi
        cut_any |= hi - lo < grid.size
        outside = np.r_[ref[r, :lo], ref[r, hi:]]
        if outside.size:
            assert outside.max() < np.exp(-45.0)
    # The prior's tails fall far within the outer nodes, so the span is a cut.
    assert cut_any


def _mu_statistics(seed: int, n_pairs: int, max_votes: int):
    """``(rng, eta, half, S, F)``: random positive win/loss sums on a logit grid."""
    rng = np.random.default_rng(seed)
    grid = make_logit_grid(max_votes)
    s_stat = rng.gamma(2.0, 3.0, size=(n_pairs, grid.size))
    f_stat = rng.gamma(2.0, 1.0, size=(n_pairs, grid.size))
    return rng, grid.eta, 0.5 * grid.one_minus_eta, s_stat, f_stat


def test_mu_derivatives_match_finite_differences():
    """The compiled derivatives of the mu M-step's objective, against central differences."""
    from attnmodel.model.kernels import mu_derivatives

    _, eta, half, s_stat, f_stat = _mu_statistics(10, 5, 400)
    x = np.array([0.55, 0.7, 0.8, 0.9, 0.99])

    def q(xv):
        g = half + eta * xv[:, None]
        h = half + eta * (1.0 - xv[:, None])
        return np.sum(s_stat * np.log(g) + f_stat * np.log(h), axis=1)

    def grad(xv):
        return mu_derivatives(xv, s_stat, f_stat, eta, half)[0]

    step = 1e-6
    grad_got, hess_got = mu_derivatives(x, s_stat, f_stat, eta, half)
    # Central differences: truncation ~ step^2 * third derivative, rounding ~ eps * |q| / step.
    np.testing.assert_allclose(grad_got, (q(x + step) - q(x - step)) / (2 * step), rtol=1e-6)
    np.testing.assert_allclose(hess_got, (grad(x + step) - grad(x - step)) / (2 * step), rtol=1e-6)


def test_mu_derivatives_split_between_threads_are_the_same_numbers():
    """Each pair's sums stay in one thread: the parallel pass equals the serial one exactly."""
    from attnmodel.model.kernels import mu_derivatives, mu_derivatives_parallel

    rng, eta, half, s_stat, f_stat = _mu_statistics(12, 300, 900)
    x = rng.uniform(0.5, 1.0, 300)
    for got, want in zip(
        mu_derivatives_parallel(x, s_stat, f_stat, eta, half),
        mu_derivatives(x, s_stat, f_stat, eta, half),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)
