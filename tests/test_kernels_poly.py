"""The E-step of light rows as polynomials in eta, against dense references on every node."""

import numpy as np
import pytest
from scipy.special import logsumexp

from attnmodel.data.votes import VoteData
from attnmodel.inference.em import EMProblem, EMState, fit_em
from attnmodel.model import kernels
from attnmodel.model.families import get_family
from attnmodel.model.grid import make_logit_grid
from attnmodel.model.kernels import (
    POLY_MAX_VOTES,
    TABLE_BUDGET,
    bernstein_table,
    poly_estep_stats,
    poly_max_votes,
    poly_pays,
)
from attnmodel.model.priors import resolve_mu

FAMILY_PARAMS = {
    "beta": {"alpha": 2.0, "beta": 3.0},
    "beta_mixture": {"weights": [0.3, 0.7], "alpha": [0.7, 6.0], "beta": [4.0, 1.5]},
    "logistic_normal_mixture": {
        "weights": [0.4, 0.6],
        "logit_mean": [-2.0, 1.5],
        "logit_sd": [0.8, 1.2],
    },
}


def _counts(rng, n_users=400, mu=(0.55, 0.7, 0.9, 0.99), votes=(1, 40), heavy=()):
    """Users with ``votes`` votes spread over the pairs, plus rows with ``heavy`` votes."""
    n_pairs = len(mu)
    total = rng.integers(votes[0], votes[1] + 1, n_users)
    total[: len(heavy)] = heavy
    n = np.stack([rng.multinomial(k, rng.dirichlet(np.ones(n_pairs))) for k in total])
    eta = rng.beta(2.0, 2.0, n_users)
    s = rng.binomial(n, 0.5 + eta[:, None] * (np.asarray(mu) - 0.5))
    return VoteData.from_counts(n, s).counts


def _reference(counts, mu, u, log_mass):
    """Dense numpy E-step on every node: log g written again from ``mu`` and ``eta``."""
    eta = 1.0 / (1.0 + np.exp(-u))
    one_minus = 1.0 / (1.0 + np.exp(u))
    n_row = np.zeros((counts.n_rows, counts.n_pairs))
    s_row = np.zeros_like(n_row)
    rows = np.repeat(np.arange(counts.n_rows), np.diff(counts.row_ptr))
    n_row[rows, counts.entry_pair] = counts.entry_n
    s_row[rows, counts.entry_pair] = counts.entry_s
    mu = np.asarray(mu, dtype=float)[:, None]
    with np.errstate(divide="ignore"):
        log_win = np.log(0.5 * one_minus + eta * mu)
        log_loss = np.log(0.5 * one_minus + eta * (1.0 - mu))
    f_row = n_row - s_row
    a = np.where(s_row[:, :, None] > 0, s_row[:, :, None] * log_win[None], 0.0).sum(axis=1)
    a += np.where(f_row[:, :, None] > 0, f_row[:, :, None] * log_loss[None], 0.0).sum(axis=1)
    a += log_mass
    log_z = logsumexp(a, axis=1)
    post = np.exp(a - log_z[:, None]) * counts.row_weight[:, None]
    return log_z, post.sum(axis=0), s_row.T @ post, f_row.T @ post


@pytest.fixture
def polynomial_rows(monkeypatch):
    """Light rows as polynomials whatever the cost model says; counts the polynomial passes.

    The tables here are small, where the grid pass is the cheaper one
    (:func:`poly_pays`); the tests compare the two paths on them.
    """
    calls = []
    real = kernels.poly_estep_stats

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "poly_pays", lambda *args: True)
    monkeypatch.setattr(kernels, "poly_estep_stats", counted)
    return calls


def _poly(counts, mu, grid, log_mass, rows=None):
    mu = np.asarray(mu, dtype=float)
    half = np.full(mu.size, 0.5)
    votes = counts.row_sum(counts.entry_n)
    rows = np.arange(counts.n_rows) if rows is None else rows
    table = bernstein_table(grid.log_eta, grid.log_one_minus_eta, int(votes[rows].max()))
    win, loss = np.column_stack([half, mu]), np.column_stack([half, 1.0 - mu])
    return poly_estep_stats(counts, rows, win, loss, table, log_mass)


@pytest.mark.parametrize("family", sorted(FAMILY_PARAMS))
@pytest.mark.parametrize("mu", [(0.55, 0.7, 0.9, 0.99), (0.5, 0.8, 1.0, 0.6)])
def test_polynomial_rows_equal_a_dense_reference(family, mu):
    """Rows of 1..40 votes: marginals and statistics equal a log-space sum over every node.

    Every term of the polynomial path is non-negative, so its error is a few
    ulp per vote and per node (< 1e-12 relative for 40 votes and a few hundred
    nodes); the reference's log-sum-exp is as accurate. ``mu = 1/2`` and
    ``mu = 1`` give zero coefficients.
    """
    counts = _counts(np.random.default_rng(11), mu=mu)
    grid = make_logit_grid(200)
    fam = get_family(family, 2 if "mixture" in family else None)
    log_mass = grid.log_weight + fam.log_density_logit(grid.u, FAMILY_PARAMS[family])
    got = _poly(counts, mu, grid, log_mass)
    ref = _reference(counts, mu, grid.u, log_mass)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
    for x, y in zip(got[1:], ref[1:], strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12 * np.abs(y).max())


def test_rows_too_small_for_the_polynomial_are_left_to_the_grid(polynomial_rows):
    """A marginal below 1e-250 of the largest node mass is refused (log Z = -inf).

    Users sure to be attentive (logit mean 40) against a pair with ``mu`` a
    hair below 1 that they lost 30 times: the likelihood at the prior's mass
    is about (1e-12)^30. ``EMProblem`` then sums those rows on the grid, in
    log space, which the reference matches.
    """
    fam = get_family("logistic_normal_mixture", 1)
    params = {"weights": [1.0], "logit_mean": [40.0], "logit_sd": [0.5]}
    mu = np.array([1.0 - 1e-12, 0.7])
    n = np.array([[30, 2], [3, 1], [30, 0], [1, 5]])
    s = np.array([[0, 2], [3, 0], [30, 0], [1, 2]])
    data = VoteData.from_counts(n, s, pairs=["a vs b", "c vs d"])
    grid = make_logit_grid(200)
    log_mass = grid.log_weight + fam.log_density_logit(grid.u, params)
    got = _poly(data.counts, mu, grid, log_mass)
    bad = data.counts.user_row[0]
    assert got[0][bad] == -np.inf
    assert np.isfinite(np.delete(got[0], bad)).all()
    problem = EMProblem(data.counts, fam, resolve_mu(list(data.pairs)), grid, engine="numba")
    estep = problem.e_step(EMState(fam.validate(params), mu))
    assert polynomial_rows
    ref = _reference(data.counts, mu, grid.u, log_mass)
    np.testing.assert_allclose(estep.row_log_marginal, ref[0], rtol=1e-12)
    assert estep.row_log_marginal[bad] < -700
    np.testing.assert_allclose(estep.weight, ref[1], rtol=1e-10, atol=1e-12 * ref[1].max())


@pytest.mark.parametrize("family", sorted(FAMILY_PARAMS))
@pytest.mark.parametrize("mu_known", [True, False])
def test_estep_with_polynomial_rows_equals_the_grid_pass_on_every_node(
    family, mu_known, polynomial_rows
):
    """Light rows by polynomial, heavy ones (65..400 votes) on the grid: the whole E-step.

    The reference is the compiled pass over every node (``posterior=True``
    keeps every row on the full grid, without strides), and a dense numpy sum.
    """
    mu = (0.6, 0.75, 0.95)
    counts = _counts(np.random.default_rng(5), mu=mu, heavy=(65, 120, 400, 90))
    fam = get_family(family, 2 if "mixture" in family else None)
    spec = resolve_mu([f"p{k}" for k in range(3)], 0.8 if mu_known else None)
    problem = EMProblem(counts, fam, spec, engine="numba")
    votes = counts.row_sum(counts.entry_n)
    assert (votes > POLY_MAX_VOTES).any() and (votes <= POLY_MAX_VOTES).any()
    mu_state = np.full(3, 0.8) if mu_known else np.asarray(mu)
    state = EMState(fam.validate(FAMILY_PARAMS[family]), mu_state)
    got = problem.e_step(state)
    assert polynomial_rows
    full = problem.e_step(state, posterior=True)
    assert got.objective == pytest.approx(full.objective, rel=1e-12)
    np.testing.assert_allclose(got.row_log_marginal, full.row_log_marginal, rtol=1e-12)
    log_mass = problem.nodes(state.params)[2]
    ref = _reference(counts, mu_state, problem.grid.u, log_mass)
    np.testing.assert_allclose(got.row_log_marginal, ref[0], rtol=1e-12)
    for x, y, z in zip(
        (got.weight, got.s_stat, got.f_stat),
        (full.weight, full.s_stat, full.f_stat),
        ref[1:],
        strict=True,
    ):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12 * np.abs(y).max())
        np.testing.assert_allclose(x, z, rtol=1e-10, atol=1e-12 * np.abs(z).max())


@pytest.mark.parametrize(
    ("family", "mu"), [("beta", None), ("beta_mixture", 0.8), ("two_point", None)]
)
def test_fits_with_polynomial_rows_reach_the_grid_fits_maximum(family, mu, polynomial_rows):
    """MAP-EM with the compiled E-step (light rows by polynomial) and with numpy's.

    Both maximise the same posterior; the numpy E-step sums light rows on
    sub-grids (strides, agreeing with the full grid to 1e-9 of each
    marginal), so the maxima agree to well under 1e-9 relative. Atoms
    (two_point) have no grid: their E-step is the same either way. The fixture
    sends the light rows to the polynomials whatever the log's size, so a
    small log (600 users, 580 distinct rows) checks the same sums.
    """
    counts = _counts(np.random.default_rng(7), n_users=600, mu=(0.6, 0.8, 0.95), heavy=(80, 200))
    data = VoteData.from_counts(*counts.user_counts(), pairs=["a vs b", "c vs d", "e vs f"])
    kw = {"mu": mu, "n_init": 2, "seed": 3, "warn": False}
    if family == "beta_mixture":
        kw["n_components"] = 2
    fast = fit_em(data, family, engine="numba", **kw)
    assert bool(polynomial_rows) == (family != "two_point")
    slow = fit_em(data, family, engine="numpy", **kw)
    assert fast.objective_ == pytest.approx(slow.objective_, rel=1e-9)


def test_polynomial_degree_stays_within_the_table_budget():
    assert poly_max_votes(1_000) == POLY_MAX_VOTES
    for nodes in (5_000, 50_000):
        n = poly_max_votes(nodes)
        assert (n + 1) * (n + 2) // 2 * nodes <= TABLE_BUDGET < (n + 2) * (n + 3) // 2 * nodes


def test_polynomial_rows_pay_only_with_many_light_rows_and_many_nodes():
    """A few hundred light rows on many pairs stay on the grid; millions would not."""
    rng = np.random.default_rng(2)
    counts = _counts(rng, n_users=300, mu=tuple(np.linspace(0.55, 0.95, 12)), votes=(5, 30))
    votes = counts.row_sum(counts.entry_n)
    light = votes <= POLY_MAX_VOTES
    assert not poly_pays(counts, light, POLY_MAX_VOTES, 1419)
    # The same rows repeated 2,000 times (weights aside, the cost is per row).
    many = counts.take_rows(np.tile(np.arange(counts.n_rows), 2000))
    assert poly_pays(many, np.tile(light, 2000), POLY_MAX_VOTES, 1419)


@pytest.mark.parametrize("n_items, n_chunks", [(0, 4), (3, 8), (1000, 8), (20_000, 16)])
def test_chunks_of_polynomial_rows_cover_every_row_once_at_about_equal_cost(n_items, n_chunks):
    """The chunks a ``prange`` hands out: in order, every item once, each near an equal share.

    Each cut falls at the first item whose cumulative cost reaches its share
    of the total, so it is off by at most one item, and a chunk's cost by at
    most two items' costs.
    Costs drift along the items, as votes do along count rows.
    """
    rng = np.random.default_rng(5)
    cost = rng.exponential(1.0, n_items) * np.linspace(1.0, 50.0, n_items)
    bounds = kernels._even_bounds(np.cumsum(cost), n_chunks)
    assert bounds.shape == (n_chunks + 1,)
    assert bounds[0] == 0 and bounds[-1] == n_items
    assert np.all(np.diff(bounds) >= 0)
    if n_items:
        share = cost.sum() / n_chunks
        per_chunk = np.array(
            [cost[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        )
        assert np.all(np.abs(per_chunk - share) <= 2.0 * cost.max() + 1e-9 * cost.sum())


def test_polynomial_row_chunks_follow_votes_and_entries():
    """:func:`kernels._poly_bounds` weighs a row by ``(n + 1)(n / 2 + e + 1) + c``.

    Heavy rows get short chunks.
    """
    counts = _counts(np.random.default_rng(2), n_users=3000, votes=(1, 60))
    votes = counts.row_sum(counts.entry_n)
    rows = np.argsort(votes, kind="stable").astype(np.int64)
    bounds = kernels._poly_bounds(rows, counts.row_ptr, votes, 4, 1.0, 3.0)
    n = votes[rows].astype(float)
    e = np.diff(counts.row_ptr)[rows]
    cost = (n + 1.0) * (0.5 * n + e + 1.0) + 3.0
    np.testing.assert_array_equal(bounds, kernels._even_bounds(np.cumsum(cost), 4))
    lengths = np.diff(bounds)
    assert lengths[0] > 2 * lengths[-1]


@pytest.mark.parametrize("lam", [1.0, 0.8, 0.3])
@pytest.mark.parametrize("n_nodes", [50, 1419])
def test_bernstein_moments_equal_the_table_contracted_with_the_masses(lam, n_nodes):
    """The moments by products agree with ``exp`` of sums of logs written in numpy.

    Each value is ``n <= 64`` products of numbers given to one ulp (about
    1.4e-14 relative), and each ``exp`` of a sum of logs of magnitude up to
    700 carries a few times 1e-14 as well: 1e-13 relative. The grid reaches
    ``eta`` of 1e-88, where high powers underflow: those values count as 0.
    """
    from attnmodel.model.kernels import bernstein_moments

    grid = make_logit_grid(n_nodes)
    log_x = np.log(lam) + grid.log_eta
    log_1mx = grid.log_one_minus_eta if lam == 1.0 else np.log1p(-lam * grid.eta)
    mass = np.exp(grid.log_weight - 0.5 * ((grid.eta - 0.3) / 0.15) ** 2)
    n_max = 64
    want = np.concatenate(
        [
            np.exp(k[:, None] * log_x + (n - k)[:, None] * log_1mx) @ mass
            for n in range(n_max + 1)
            for k in [np.arange(n + 1.0)]
        ]
    )
    got = bernstein_moments(log_x, log_1mx, mass, n_max)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
    assert want.min() > 0


def test_polynomials_refuse_a_vote_with_probability_zero_at_the_origin():
    """A vote's factor is kept as ``a0 (1 + (a1 / a0) x)``: ``a0 = 0`` cannot be, and is named."""
    from attnmodel.model.kernels import bernstein_coefs

    counts = _counts(np.random.default_rng(3), n_users=20, mu=(0.6, 0.8))
    grid = make_logit_grid(50)
    table = bernstein_table(grid.log_eta, grid.log_one_minus_eta, 40)
    win = np.array([[0.5, 0.6], [0.0, 0.8]])
    loss = np.array([[0.5, 0.4], [0.5, 0.2]])
    rows = np.arange(counts.n_rows)
    with pytest.raises(ValueError, match="above 0 at eta = 0"):
        poly_estep_stats(counts, rows, win, loss, table, grid.log_weight)
    with pytest.raises(ValueError, match="above 0 at x = 0"):
        bernstein_coefs(counts, rows, loss, win)
