"""The fused Op (``log g`` formed from ``mu`` in the kernel) against the E-step Op.

:class:`attnmodel.model.ops.MarginalVotesMu` must give the log-likelihood of
:class:`attnmodel.model.ops.MarginalVotes` fed with ``log g`` and
``log(1 - g)`` that PyTensor forms from ``mu``, and the same gradient in
``mu``, the row weights and the log node masses (the reference's gradient in
``mu`` is PyTensor's chain rule through those logs, not the fused kernel's
sum). Data: many pairs with votes per user from 1 to thousands, so that rows
take every stride level and the heavy ones the support cut. Tolerance 1e-10
relative: both sum the same terms in another order (rounding, about 1e-13).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import attnmodel as am
from attnmodel.model import kernels, workspace
from attnmodel.model.grid import make_logit_grid
from attnmodel.model.ops import marginal_votes, marginal_votes_mu


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n_users, n_pairs = 120, 12
    eta = rng.beta(4.0, 1.5, n_users)
    mu = rng.uniform(0.55, 0.95, n_pairs)
    votes = np.clip(np.exp(rng.normal(np.log(20.0), 1.6, n_users)), 1, 5000).astype(int)
    votes[0] = 5000
    n = np.stack([rng.multinomial(v, np.full(n_pairs, 1.0 / n_pairs)) for v in votes])
    s = rng.binomial(n, 0.5 + eta[:, None] * (mu - 0.5))
    return am.VoteData.from_counts(n, s)


NAMES = ("total", "d/d mu", "d/d log_mass", "d/d weight")


def _graphs(counts, grid):
    mu = pt.dvector("mu")
    log_mass = pt.dvector("log_mass")
    weight = pt.dvector("weight")
    eta = pt.as_tensor_variable(grid.eta)
    half = 0.5 * pt.as_tensor_variable(grid.one_minus_eta)
    log_g = pt.log(half[None, :] + eta[None, :] * mu[:, None])
    log_1mg = pt.log(half[None, :] + eta[None, :] * (1.0 - mu[:, None]))
    old = marginal_votes(counts, weight, log_g, log_1mg, log_mass, grid.spacing)
    new = marginal_votes_mu(counts, weight, mu, grid, log_mass)
    out = []
    for total in (old, new):
        grads = pytensor.grad(total, [mu, log_mass, weight])
        out.append(pytensor.function([mu, log_mass, weight], [total, *grads]))
    return out


def test_fused_op_equals_the_e_step_op(data):
    counts = data.counts
    votes = counts.row_sum((counts.entry_n).astype(float))
    grid = make_logit_grid(int(votes.max()))
    assert not kernels.fused_pays(counts, grid.size)  # below the size rule: the kernel alone
    old, new = _graphs(counts, grid)
    rng = np.random.default_rng(3)
    weight = counts.row_weight.astype(float)
    for _ in range(3):
        mu = rng.uniform(0.52, 0.99, counts.n_pairs)
        a, b = rng.uniform(0.5, 6.0, 2)
        u = grid.u
        log_mass = grid.log_weight + a * -np.logaddexp(0, -u) + b * -np.logaddexp(0, u)
        ref = old(mu, log_mass, weight)
        got = new(mu, log_mass, weight)
        for name, r, g in zip(NAMES, ref, got, strict=True):
            r, g = np.asarray(r), np.asarray(g)
            assert np.isfinite(r).all()
            scale = max(1.0, float(np.abs(r).max()))
            assert np.abs(g - r).max() <= 1e-10 * scale, name


@pytest.mark.parametrize("n_pairs", [12, 80])
def test_model_takes_the_op_the_rule_picks(n_pairs):
    """The model's potential goes through the fused Op exactly when ``fused_pays`` says so."""
    from pytensor.graph.traversal import ancestors

    from attnmodel.model.ops import MarginalVotes, MarginalVotesMu

    rng = np.random.default_rng(n_pairs)
    eta = rng.beta(4.0, 1.5, 40)
    n = rng.integers(0, 60, size=(40, n_pairs))
    s = rng.binomial(n, 0.5 + eta[:, None] * 0.3)
    attn = am.build_model(am.VoteData.from_counts(n, s), "beta")
    ops = {type(v.owner.op) for v in ancestors(attn.model.potentials) if v.owner is not None}
    fused = kernels.fused_pays(attn.counts, attn.grid.size)
    assert fused == (n_pairs * attn.grid.size >= kernels.FUSED_MIN_CELLS)
    assert (MarginalVotesMu in ops) == fused
    assert (MarginalVotes in ops) == (not fused)


def _log_mass(grid, a=2.5, b=1.5):
    u = grid.u
    return grid.log_weight + a * -np.logaddexp(0, -u) + b * -np.logaddexp(0, u)


def test_fused_kernel_matches_numpy_on_the_full_grid(data):
    """The kernel's value and gradients against a numpy sum over every node (no strides).

    With spacing 0 every row stays on the full grid, so the reference is the
    plain sum; the kernel still cuts heavy rows to their support and skips the
    nodes whose weight it sets to zero, which leave out terms below exp(-40)
    of each row's peak (under 1e-17 relative). Tolerance 1e-10 as above.
    """
    from scipy.special import logsumexp

    counts = data.counts
    votes = counts.row_sum((counts.entry_n).astype(float))
    grid = make_logit_grid(int(votes.max()))
    arrays = kernels.count_arrays(counts)
    row_ptr, pair, s, f = arrays
    weight = counts.row_weight.astype(float)
    rng = np.random.default_rng(11)
    for _ in range(3):
        mu = rng.uniform(0.52, 0.99, counts.n_pairs)
        log_mass = _log_mass(grid, *rng.uniform(0.5, 6.0, 2))
        half = 0.5 * grid.one_minus_eta
        win = half[None, :] + grid.eta[None, :] * mu[:, None]
        loss = half[None, :] + grid.eta[None, :] * (1.0 - mu[:, None])
        # Dense (rows, pairs) counts, then the (rows, nodes) log weights.
        rows = np.repeat(np.arange(counts.n_rows), np.diff(row_ptr))
        s_rp = np.zeros((counts.n_rows, counts.n_pairs))
        f_rp = np.zeros_like(s_rp)
        np.add.at(s_rp, (rows, pair), s)
        np.add.at(f_rp, (rows, pair), f)
        a = log_mass[None, :] + s_rp @ np.log(win) + f_rp @ np.log(loss)
        log_z = logsumexp(a, axis=1)
        post = weight[:, None] * np.exp(a - log_z[:, None])
        eta = grid.eta[None, :]
        grad = (s_rp.T @ post * (eta / win)).sum(1) - (f_rp.T @ post * (eta / loss)).sum(1)
        ref = (weight @ log_z, log_z, post.sum(0), grad)
        got = kernels.marginal_votes_mu(
            *arrays, weight, mu, grid.eta, half, log_mass, 0.0, np.empty(0)
        )
        for name, r, g in zip(("total", "log_z", "W", "d/d mu"), ref, got, strict=True):
            scale = max(1.0, float(np.abs(r).max()))
            assert np.abs(np.asarray(g) - r).max() <= 1e-10 * scale, name


def test_kernel_numbers_do_not_depend_on_its_work_space(data):
    """A work space reused from call to call, or full of NaN, leaves the numbers as they were.

    The kernel keeps its log tables in the caller's work space (on the
    strided grid, so that every level's tables and the copies between them
    are used): each call must read only what it wrote itself, whatever a
    previous call left there, and return arrays of its own. Compared bit for
    bit with calls that allocate their own space: the same operations in the
    same order.
    """
    from attnmodel.model import ops

    counts = data.counts
    votes = counts.row_sum((counts.entry_n).astype(float))
    grid = make_logit_grid(int(votes.max()))
    arrays = kernels.count_arrays(counts)
    weight = counts.row_weight.astype(float)
    half = 0.5 * grid.one_minus_eta
    rng = np.random.default_rng(13)
    points = [
        (rng.uniform(0.52, 0.99, counts.n_pairs), _log_mass(grid, *rng.uniform(0.5, 6.0, 2)))
        for _ in range(3)
    ]

    def call(mu, log_mass, work):
        args = (*arrays, weight, mu, grid.eta, half, log_mass, grid.spacing)
        return kernels.marginal_votes_mu(*args, work)

    own = [call(mu, lm, np.empty(0)) for mu, lm in points]
    kept = [[np.copy(a) for a in out] for out in own]
    work = np.full(kernels.mu_work_size(counts.n_pairs, grid.size), np.nan)
    for out, (mu, lm) in zip(own, points, strict=True):
        got = call(mu, lm, work)
        assert not any(np.shares_memory(np.asarray(a), work) for a in got)
        for name, r, g in zip(("total", "log_z", "W", "d/d mu"), out, got, strict=True):
            assert np.array_equal(np.asarray(g), np.asarray(r)), name
    # The later calls changed none of the earlier outputs.
    for out, copies in zip(own, kept, strict=True):
        assert all(np.array_equal(np.asarray(a), c) for a, c in zip(out, copies, strict=True))
    # The Op's kernel takes this thread's kept work space, with the same numbers.
    mu, lm = points[0]
    via_op = ops._mu_kernel(*arrays, weight, mu, grid.eta, half, lm, grid.spacing)
    assert workspace.work_buffer(0).size >= kernels.mu_work_size(counts.n_pairs, grid.size)
    for r, g in zip(own[0], via_op, strict=True):
        assert np.array_equal(np.asarray(g), np.asarray(r))


def test_batch_log_is_within_an_ulp_and_does_not_depend_on_position():
    """``kernels.batch_log`` against long-double logs (64-bit mantissa), and edge values.

    fdlibm's bound for its ``log`` is below 1 ulp, so every finite result is
    within 1 ulp of the long-double log rounded to double. Zero, negative,
    subnormal, infinite and NaN inputs go to the C library: the same values as
    numpy. A value's log does not depend on its place in the array (vector
    and scalar iterations round alike).
    """
    rng = np.random.default_rng(11)
    x = np.concatenate(
        [
            rng.uniform(1e-9, 1.0, 100_000),
            rng.uniform(0.4999, 0.5001, 20_000),
            np.sqrt(2.0) * (1.0 + rng.uniform(-1e-12, 1e-12, 1_000)),
            np.sqrt(0.5) * (1.0 + rng.uniform(-1e-12, 1e-12, 1_000)),
            10.0 ** rng.uniform(-307, 307, 20_000),
            [
                1.0,
                0.5,
                2.0,
                np.nextafter(1.0, 0.0),
                np.nextafter(1.0, 2.0),
                2.2250738585072014e-308,
            ],
        ]
    )
    out = np.empty_like(x)
    kernels.batch_log(x, out)
    ref = np.log(x.astype(np.longdouble))
    ulps = np.abs(out.astype(np.longdouble) - ref) / np.spacing(np.abs(out))
    assert ulps.max() <= 1.0, (ulps.max(), x[np.argmax(ulps)])
    assert np.all(out[-6:-1] == np.log(x[-6:-1]))  # 0, -log 2, log 2, near 1: exact here

    edge = np.array([0.0, -0.0, -1.0, 5e-324, 1e-310, np.inf, -np.inf, np.nan])
    got = np.empty_like(edge)
    kernels.batch_log(edge, got)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(got, np.log(edge))

    one_by_one = np.empty_like(x[:997])
    for i in range(997):
        kernels.batch_log(x[i : i + 1], one_by_one[i : i + 1])
    np.testing.assert_array_equal(one_by_one, out[:997])


def test_exp_below_peak_is_within_an_ulp_and_cuts_at_its_bound():
    """``kernels.exp_below_peak`` against long-double exponentials, and its cut.

    fdlibm's bound for its ``exp`` is below 1 ulp. Values at or below
    ``peak - EXP_CUT`` (and NaN, and -inf) give 0, as the C library path did;
    the peak itself gives exactly 1; a value does not depend on its place.
    """
    rng = np.random.default_rng(12)
    cut = kernels.EXP_CUT
    d = np.concatenate(
        [
            rng.uniform(-cut, 0.0, 100_000),
            rng.uniform(-1e-6, 0.0, 10_000),
            -np.log(2.0) / 2 * (1.0 + rng.uniform(-1e-12, 1e-12, 1_000)),
            [0.0, -1e-300, np.nextafter(-cut, 0.0)],
        ]
    )
    peak = 123.25
    x = d + peak
    got = x.copy()
    kernels.exp_below_peak(got, peak)
    shifted = x - peak  # as the kernel forms it, in double
    kept = shifted > -cut
    assert kept.mean() > 0.99
    np.testing.assert_array_equal(got[~kept], 0.0)
    ref = np.exp(shifted[kept].astype(np.longdouble))
    ulps = np.abs(got[kept].astype(np.longdouble) - ref) / np.spacing(got[kept])
    assert ulps.max() <= 1.0, (ulps.max(), shifted[kept][np.argmax(ulps)])
    assert got[-3] == 1.0 and got[-2] == 1.0

    edge = np.array([peak - cut, peak - 50.0, -np.inf, np.nan])
    kernels.exp_below_peak(edge, peak)
    np.testing.assert_array_equal(edge, np.zeros(4))

    one_by_one = x[:997].copy()
    for i in range(997):
        kernels.exp_below_peak(one_by_one[i : i + 1], peak)
    np.testing.assert_array_equal(one_by_one, got[:997])


_FAST_MATH_CALLER = """
import json, sys
import numpy as np
import pytensor, pytensor.tensor as pt
import attnmodel as am
from attnmodel.model import kernels
from attnmodel.model.grid import make_logit_grid
from attnmodel.model.ops import marginal_votes_mu

rng = np.random.default_rng(7)
n = rng.integers(0, 30, (40, 80))
counts = am.VoteData.from_counts(n, rng.binomial(n, 0.7)).counts
grid = make_logit_grid(int(n.sum(1).max()))
mu, lm, w = pt.dvector("mu"), pt.dvector("lm"), pt.dvector("w")
total = marginal_votes_mu(counts, w, mu, grid, lm)
f = pytensor.function([mu, lm, w], [total, *pytensor.grad(total, [mu])], mode="NUMBA")
f(np.full(80, 0.7), grid.log_weight, counts.row_weight.astype(float))
x = np.load(sys.argv[1])
logs = np.empty_like(x)
kernels.batch_log(x, logs)
exps = np.log(x)
kernels.exp_below_peak(exps, 0.0)
print(json.dumps([logs.tolist(), exps.tolist()]))
"""


def test_kernels_keep_their_arithmetic_under_a_fast_math_caller(tmp_path):
    """Kernels compiled first for PyTensor's Numba backend give the bits they give alone.

    That backend compiles with fast-math flags, and Numba hands a caller's
    flags to every callee that sets none of its own, then keeps the code in a
    cache that does not key on them: ``batch_log`` so compiled was 1.5 ulp off
    (fused multiply-adds) in every later process. In a fresh Numba and
    PyTensor cache, the fused Op's graph is compiled in Numba mode first; the
    two vectorised functions must then give this process's values, bit for bit.
    """
    x = np.random.default_rng(13).uniform(1e-3, 1.0, 20_000)
    x[0] = 0.6962709778518877  # the value where the fast-math build was seen off
    np.save(tmp_path / "x.npy", x)
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
        "PYTENSOR_FLAGS": f"compiledir={tmp_path / 'pytensor'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", _FAST_MATH_CALLER, str(tmp_path / "x.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    logs, exps = (np.array(v) for v in json.loads(done.stdout.splitlines()[-1]))
    want_logs = np.empty_like(x)
    kernels.batch_log(x, want_logs)
    want_exps = np.log(x)
    kernels.exp_below_peak(want_exps, 0.0)
    np.testing.assert_array_equal(logs, want_logs)
    np.testing.assert_array_equal(exps, want_exps)


def test_support_search_on_formed_nodes_equals_the_e_steps(data):
    """``_support_mu`` (logs formed as visited) finds the nodes ``_row_support`` finds.

    Both bisect the same concave likelihood; the first reads logs formed
    on demand from ``mu``, the second a full table of them: every heavy row on
    every stride level must get the same nodes. The full table is formed as
    the kernel forms the rows' spans (``_form_range``), checked against numpy's
    logs to 1e-13 relative (both logs are within an ulp of the exact value).
    """
    counts = data.counts
    votes = counts.row_sum((counts.entry_n).astype(float))
    grid = make_logit_grid(int(votes.max()))
    row_ptr, pair, s, f = kernels.count_arrays(counts)
    mu = np.random.default_rng(5).uniform(0.52, 0.99, counts.n_pairs)
    half = 0.5 * grid.one_minus_eta
    mult = kernels.stride_multipliers(grid.size, grid.spacing)
    log_mass = _log_mass(grid)
    checked = 0
    for lv in range(mult.shape[0] - 1):
        idx = np.nonzero(mult[lv] > 0)[0]
        n = idx.size
        lm = log_mass[idx] + np.log(mult[lv, idx])
        side = np.stack([np.maximum.accumulate(lm), np.maximum.accumulate(lm[::-1])[::-1]])
        no_prev = (np.full(grid.size, -1), np.zeros(1, dtype=bool), np.empty((4, mu.size, 1)))
        full = [np.empty((counts.n_pairs, n)) for _ in range(4)]
        scratch = kernels.mu_log_scratch(counts.n_pairs)
        kernels._form_range(0, n, mu, grid.eta[idx], half[idx], *full)
        np.testing.assert_allclose(
            full[0], np.log(half[idx] + grid.eta[idx] * mu[:, None]), rtol=1e-13
        )
        np.testing.assert_allclose(
            full[1], np.log(half[idx] + grid.eta[idx] * (1.0 - mu[:, None])), rtol=1e-13
        )
        lg_t, l1_t = full[0].T.copy(), full[1].T.copy()
        tables = [np.empty((counts.n_pairs, n)) for _ in range(4)]
        done = np.zeros(n, dtype=bool)
        logs = (mu, grid.eta, half, idx, done, *tables, *no_prev, scratch)
        for r in range(counts.n_rows):
            if votes[r] < kernels.SUPPORT_MIN_VOTES:
                continue
            ref = kernels._row_support(r, row_ptr, pair, s, f, lg_t, l1_t, lm, side)
            got = kernels._support_mu(r, row_ptr, pair, s, f, logs, lm, side)
            assert got == ref, (lv, r)
            checked += 1
        # Only the nodes visited were formed, node by node, and they hold the
        # bits that the pairs' spans get (so the sums do not depend on which).
        assert 0 < done.sum() < n
        for formed, table in zip(tables, full, strict=True):
            np.testing.assert_array_equal(formed[:, done], table[:, done])
    assert checked >= 10


def test_op_kernels_are_cached_under_the_sources_they_call():
    """Each Op kernel holds the hash of ops.py, kernels.py and ties.py in a closure cell.

    Numba checks a cached function against its own file only, and an Op kernel
    compiled into its cache the code of the ``kernels.py`` functions it calls:
    after an edit there it kept running the old code. Numba's cache key holds a
    hash of a function's closure cells, so with the sources' hash in a cell an
    edit of any of the three files makes a new key. The hash is recomputed here
    from the files themselves.
    """
    import hashlib
    from pathlib import Path

    from attnmodel.model import ops, ties

    files = [kernels.__file__, ties.__file__, ops.__file__]
    want = int(hashlib.sha256(b"".join(Path(f).read_bytes() for f in files)).hexdigest()[:12], 16)
    assert ops.SOURCE_VERSION == want
    for kernel in (ops._marginal_votes_kernel, ops._mu_kernel, ops._marginal_votes_ties_kernel):
        cells = [c.cell_contents for c in kernel.py_func.__closure__ or ()]
        assert cells == [want], kernel.py_func.__name__
