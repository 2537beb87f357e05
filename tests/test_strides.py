"""Rows on strided sub-grids of the logit grid agree with the full grid.

The E-step sums a light row over every ``k``-th node only (``estep_stats(...,
spacing=grid.spacing)``); the references here are the same E-step on every node
(``spacing=0``), so that what is checked is the stride alone.
"""

import numpy as np
import pytest
from scipy.special import logsumexp

from attnmodel.data.votes import VoteData
from attnmodel.model.families import get_family
from attnmodel.model.grid import make_logit_grid, pair_log_probs
from attnmodel.model.kernels import (
    STRIDE_TOL,
    estep_stats,
    prior_start_levels,
    row_posterior,
    stride_multipliers,
    stride_plan,
)

#: Win rates near 1/2 (a flat likelihood in eta) and near 1 (a steep one).
MU = np.array([0.5001, 0.55, 0.97, 0.9999])
#: Beta shapes at both ends of the box, and one inside.
SHAPES = [(0.1, 0.1), (0.1, 50.0), (50.0, 0.1), (50.0, 50.0), (2.0, 3.0)]


def _mixed_log(seed=0):
    """1-vote users, users with tens of votes and users with 10^4 votes, on four pairs."""
    rng = np.random.default_rng(seed)
    n_users = 300
    n = np.zeros((n_users, MU.size), dtype=np.int64)
    light = rng.integers(0, MU.size, size=100)
    n[np.arange(100), light] = 1
    n[100:280] = rng.integers(0, 40, size=(180, MU.size))
    n[100:280, 0] = np.maximum(n[100:280, 0], 1)
    n[280:] = rng.multinomial(10_000, np.full(MU.size, 1 / MU.size), size=20)
    eta = rng.beta(0.5, 0.5, size=(n_users, 1))
    s = rng.binomial(n, 0.5 + eta * (MU - 0.5))
    # Some users vote against the stronger model throughout (likelihood piled at eta = 0).
    s[100:120] = 0
    return VoteData.from_counts(n, s).counts


def _nodes(counts, shapes):
    grid = make_logit_grid(int(counts.row_sum(counts.entry_n.astype(float)).max()))
    alpha, beta = shapes
    log_mass = grid.log_weight + get_family("beta").log_density_logit(
        grid.u, {"alpha": alpha, "beta": beta}
    )
    log_g, log_1mg = pair_log_probs(grid.eta, grid.one_minus_eta, MU)
    return grid, log_g, log_1mg, log_mass


def _integrals(grid, weight, s_stat, f_stat):
    """What the M-steps take from the statistics: sums of smooth functions over the nodes.

    ``sum W log eta`` and ``sum W log(1 - eta)`` (the Beta M-step), ``sum W``,
    ``sum W eta``, and each pair's derivative of ``sum S log g + F log(1 - g)`` in ``mu``.
    """
    eta, om = grid.eta, grid.one_minus_eta
    g = 0.5 * om[None, :] + eta[None, :] * MU[:, None]
    dmu = (s_stat * eta / g - f_stat * eta / (1.0 - g)).sum(axis=1)
    moments = [weight.sum(), weight @ eta, weight @ grid.log_eta, weight @ grid.log_one_minus_eta]
    return np.array(moments), dmu


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize(
    "path", [{"dense": False}, {"dense": False, "tables": False}, {"dense": True}]
)
def test_strided_estep_agrees_with_the_full_grid(shapes, path):
    counts = _mixed_log()
    grid, log_g, log_1mg, log_mass = _nodes(counts, shapes)
    full = estep_stats(counts, log_g, log_1mg, log_mass, **path)
    got = estep_stats(counts, log_g, log_1mg, log_mass, spacing=grid.spacing, **path)
    # A row keeps stride k when its sums with k and 2k agree to STRIDE_TOL; the
    # error of stride k is then smaller still (geometrically so inside the grid;
    # at least 3.5 times so where a Beta shape of 0.1 leaves exp(-20) of the
    # mass past the grid's ends, and the error falls as the spacing squared).
    # Rows whose posterior piles at eta = 0 weigh that tail up to ~3 times more:
    # hence 3 STRIDE_TOL on each row's log Z (relative on Z).
    np.testing.assert_allclose(got[0], full[0], rtol=0, atol=3 * STRIDE_TOL)
    total = float(counts.row_weight @ full[0])
    assert abs(float(counts.row_weight @ got[0]) - total) <= 3 * STRIDE_TOL * counts.n_users
    # Users per node still add up to the users (every row is normalised).
    np.testing.assert_allclose(got[1].sum(), counts.row_weight.sum(), rtol=1e-12)
    # The statistics' integrals: each row's posterior expectation of a smooth
    # function moves by about its log Z's error times the function's size
    # (|log eta| < 200 on the grid, |d log g / d mu| < 2 / (1 - mu) = 2e4 at
    # mu = 0.9999), summed over users (or their votes).
    m_got, d_got = _integrals(grid, *got[1:4])
    m_full, d_full = _integrals(grid, *full[1:4])
    np.testing.assert_allclose(m_got, m_full, rtol=0, atol=200 * 3 * STRIDE_TOL * counts.n_users)
    n_votes = float(counts.row_weight @ counts.row_sum(counts.entry_n.astype(float)))
    np.testing.assert_allclose(d_got, d_full, rtol=0, atol=2e4 * 3 * STRIDE_TOL * n_votes)


@pytest.mark.parametrize("shapes", SHAPES)
def test_numpy_strides_match_the_compiled_pass(shapes):
    """The numpy form (row_posterior) picks the same strides and sums as the compiled pass."""
    counts = _mixed_log(1)
    grid, log_g, log_1mg, log_mass = _nodes(counts, shapes)
    ll = counts.row_sum(
        counts.entry_s[:, None] * log_g[counts.entry_pair]
        + (counts.entry_n - counts.entry_s)[:, None] * log_1mg[counts.entry_pair]
    )
    level, mult = stride_plan(counts, grid.size, grid.spacing)
    level = prior_start_levels(level, log_mass[None, :], np.zeros(level.size, np.int64), mult)
    log_z, post = row_posterior(ll + log_mass, level, mult)
    got = estep_stats(counts, log_g, log_1mg, log_mass, spacing=grid.spacing, dense=False)
    # Same sums over the same nodes, in a different order (1e-12 relative on |log Z| < 1e4).
    np.testing.assert_allclose(log_z, got[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(counts.row_weight @ post, got[1], rtol=1e-9, atol=1e-12)


def test_light_rows_take_strides_and_the_check_halves_them():
    """1-vote rows on a grid built for 10^4 votes sum over a coarse sub-grid only.

    Under a uniform prior they keep the largest stride their votes allow; under
    Beta(50, 50), narrower than that stride resolves, the check sends them to
    finer sub-grids. The reference is a trapezoid sum over every node written
    again here with scipy.
    """
    n = np.zeros((40, 2), dtype=np.int64)
    n[:, 0] = 1
    s = np.arange(40)[:, None] % 2 * n
    counts = VoteData.from_counts(n, s).counts
    grid = make_logit_grid(10_000)
    mult = stride_multipliers(grid.size, grid.spacing)
    top = mult.shape[0] - 2
    # Spacing 0.025; strides up to 16 (spacing 0.4, STRIDE_SPACING_MAX).
    assert top == 4
    log_g, log_1mg = pair_log_probs(grid.eta, grid.one_minus_eta, np.array([0.8, 0.9]))
    # Beta(50, 50) has a logit standard deviation of 0.2: the sums with strides 4
    # and 8 (spacings 0.1, 0.2) differ by 1e-8, those with 2 and 4 by 1e-15.
    # A uniform eta (logistic in u, tails exp(-|u|)) is resolved at stride 16.
    for shapes, coarsest in (((1.0, 1.0), top), ((50.0, 50.0), 1)):
        log_mass = grid.log_weight + get_family("beta").log_density_logit(
            grid.u, dict(zip(("alpha", "beta"), shapes, strict=True))
        )
        log_z, weight, *_ = estep_stats(counts, log_g, log_1mg, log_mass, spacing=grid.spacing)
        used = weight > 0
        # Only the nodes of the level-`coarsest` sub-grid carry weight ...
        assert not np.any(used & (mult[coarsest] == 0)), shapes
        # ... and not all of those of the next finer one: the rows took that stride.
        assert np.any(~used & (mult[coarsest - 1] > 0)), shapes
        ref = logsumexp(
            log_mass[None, :] + s[:, :1] * log_g[0] + (1 - s[:, :1]) * log_1mg[0], axis=1
        )
        np.testing.assert_allclose(log_z[counts.user_row], ref, rtol=0, atol=3 * STRIDE_TOL)


def test_multipliers_are_trapezoid_weights_of_nested_sub_grids():
    for n_nodes in (371, 1253, 1475):
        mult = stride_multipliers(n_nodes, 0.025)
        centre = (n_nodes - 1) // 2
        for lv in range(mult.shape[0]):
            on = mult[lv] > 0
            # The centre and both ends are on every sub-grid; the total weight is the grid's span.
            assert on[centre] and on[0] and on[-1]
            # Full-grid weights are 1 inside and 1/2 at the ends (in spacings):
            # every sub-grid's weights add up to the same span.
            half_ends = np.ones(n_nodes)
            half_ends[[0, -1]] = 0.5
            assert mult[lv] @ half_ends == pytest.approx(n_nodes - 1, abs=1e-9)
            if lv + 1 < mult.shape[0]:
                assert np.all(on[mult[lv + 1] > 0])
            inside = np.flatnonzero(on)[2:-2]
            np.testing.assert_array_equal(mult[lv, inside], 2**lv)
    assert stride_multipliers(371, 0.0).shape == (2, 371)


@pytest.mark.parametrize("shapes", SHAPES)
def test_dense_products_take_the_compiled_pass_strides(shapes):
    """The dense path forms each row on its own sub-grid and matches the compiled pass.

    Both take every row from its start level down until its sums with strides
    k and 2k agree, with the peak and the cut below it taken on the row's
    sub-grid; they differ only in the order of the sums (matrix products
    against one pass per entry), hence 1e-12 relative on log Z (|log Z| < 1e4)
    and 1e-9 on the statistics, whose nodes hold sums over many rows.
    """
    counts = _mixed_log(2)
    grid, log_g, log_1mg, log_mass = _nodes(counts, shapes)
    dense = estep_stats(counts, log_g, log_1mg, log_mass, spacing=grid.spacing, dense=True)
    compiled = estep_stats(counts, log_g, log_1mg, log_mass, spacing=grid.spacing, dense=False)
    np.testing.assert_allclose(dense[0], compiled[0], rtol=1e-12, atol=1e-12)
    for got, ref in zip(dense[1:4], compiled[1:4], strict=True):
        # Nodes off every row's sub-grid carry nothing on either path.
        np.testing.assert_array_equal(got == 0, ref == 0)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12 * float(np.abs(ref).max()))


def test_compiled_estep_numbers_do_not_depend_on_its_work_space(monkeypatch):
    """The chunks' sums in a kept work space full of NaN give the numbers of a fresh one.

    The E-step sums its chunks in this thread's work space
    (:func:`attnmodel.model.workspace.work_buffer`): each level must zero what
    it uses, and the outputs must be arrays of their own. Compared bit for bit
    with the kernel given no work space (it then allocates its own): the same
    operations in the same order.
    """
    from attnmodel.model import kernels, workspace

    counts = _mixed_log(3)
    grid, log_g, log_1mg, log_mass = _nodes(counts, (2.0, 3.0))
    args = (counts, log_g, log_1mg, log_mass)
    workspace.release_work_buffer()
    try:
        workspace.work_buffer(10_000_000)[:] = np.nan
        kept = estep_stats(*args, spacing=grid.spacing, dense=False)
        buf = workspace.work_buffer(0)
        assert np.isnan(buf).any() and not np.isnan(buf).all()  # the E-step used the space
        assert not any(np.shares_memory(a, buf) for a in kept[:4])
        again = estep_stats(*args, spacing=grid.spacing, dense=False)
    finally:
        workspace.release_work_buffer()
    monkeypatch.setattr(kernels, "work_buffer", lambda size: np.empty(0))
    own = estep_stats(*args, spacing=grid.spacing, dense=False)
    for a, b, c in zip(kept[:4], again[:4], own[:4], strict=True):
        assert np.array_equal(a, c)
        assert np.array_equal(b, c)


def test_rows_start_below_the_levels_their_prior_fails():
    """A row starts at the largest level, at most its own, where its key's prior passes.

    The prior's sums with strides k and 2k are written again here with numpy.
    On a grid for 10^4 votes Beta(4, 1.5) differs by about 8e-8 between
    strides 16 and 32 (level 4 fails) and by under 1e-15 below; the uniform
    prior passes every level, and Beta(50, 50) fails from level 2 up.
    """
    grid = make_logit_grid(10_000)
    mult = stride_multipliers(grid.size, grid.spacing)
    top = mult.shape[0] - 2
    family = get_family("beta")
    shapes = [(1.0, 1.0), (4.0, 1.5), (50.0, 50.0)]
    log_mass = np.stack(
        [
            grid.log_weight + family.log_density_logit(grid.u, {"alpha": a, "beta": b})
            for a, b in shapes
        ]
    )
    z = np.exp(log_mass - log_mass.max(axis=1, keepdims=True)) @ mult.T
    ok = np.abs(z[:, :-1] - z[:, 1:]) <= STRIDE_TOL * z[:, :-1]
    ok[:, 0] = True
    assert ok[0].all() and not ok[1, top] and ok[1, :top].all() and not ok[2, 2:].any()
    rng = np.random.default_rng(5)
    level = rng.integers(0, top + 1, size=300)
    row_key = rng.integers(0, len(shapes), size=300)
    given = level.copy()
    got = prior_start_levels(level, log_mass, row_key, mult)
    want = np.array(
        [max(lv for lv in range(s + 1) if ok[k, lv]) for s, k in zip(level, row_key, strict=True)]
    )
    np.testing.assert_array_equal(got, want)
    assert np.all(got <= level) and np.any(got < level)
    # The input is left as it was.
    np.testing.assert_array_equal(level, given)
