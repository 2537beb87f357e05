"""Compiled E-step: one pass over the distinct count rows, no (R, G) temporaries.

For each row ``r`` the pass forms the unnormalised posterior over the nodes,
``x_g = mass_g * prod_e g_pg ** s_e * (1 - g_pg) ** f_e``, its sum ``Z_r`` (the
row's marginal likelihood) and adds ``x / Z_r`` (times the number of users
sharing the row) into the sufficient statistics ``W``, ``S`` and ``F`` of the
M-step. The same numbers are the log-likelihood's gradient (Fisher's identity),
which is what :mod:`attnmodel.model.pymc_model` hands NUTS.

A row costs its entries times the nodes it needs; nothing grows with the
largest count of a pair unless that is the cheaper way. Two ways to form ``x``:

* **Power tables**, when they cost fewer exponentials than the log-space path
  spends on the rows (many rows, few pairs and moderate counts: 10^6
  single-pair users). Every factor is at most 1, so ``x`` is formed in linear
  space from tables of ``g ** k`` and ``(1 - g) ** k``: for each pair,
  ``exp(j * log g)`` for ``j < 16`` and ``exp(16 i * log g)`` for ``16 i`` up
  to the pair's largest count, so that ``g ** k`` is one product of two table
  entries. A row then costs a few multiplications per node and no ``exp``. A
  row is accepted when ``Z_r > 1e-250``: every product that underflowed on the
  way is then below ``1e-58`` of ``Z_r``'s rounding error.
* **Log space** (otherwise, and for rows with a count above
  :data:`TABLE_MAX_COUNT` or whose ``Z_r`` would underflow, e.g. thousands of
  votes): ``a_g = log mass_g + sum_e s_e log g_pg + f_e log(1 - g_pg)``,
  normalised by a log-sum-exp, over the row's support only: the nodes outside
  it, found by bisection (:func:`_row_support`), lie more than 45 below the
  row's peak, where the pass would set them to zero anyway; a row of fewer
  than :data:`SUPPORT_MIN_VOTES` votes leaves out the nodes where the prior
  alone lies that far below it (:func:`_prior_span`).

Rows are split into chunks that run in parallel, each accumulating into its
own slice, so the result does not depend on thread timing.

Rows of at most :data:`POLY_MAX_VOTES` votes can also be summed as polynomials
in ``eta`` (:func:`poly_estep_stats`): exact on every node, at a cost per row
that does not grow with the nodes; :class:`attnmodel.inference.em.EMProblem`
takes that path for them when it pays (:func:`poly_pays`).

When the rows fill most of the (rows, pairs) cells (a few hundred users on
many pairs each), :func:`estep_stats` forms the same numbers as two dense
matrix products instead (:func:`_dense_estep`), which BLAS runs faster per
cell than the entry-by-entry pass.

The numpy implementation in :mod:`attnmodel.inference.em` computes the same numbers
(tests compare them, and the paths here against each other).
"""

from __future__ import annotations

import functools
import types

import numba
import numpy as np
from llvmlite import ir
from numba.core import types as nb_types
from numba.extending import intrinsic

from attnmodel.model.grid import SIDE_ROUND, SPACING_ROOT_VOTES
from attnmodel.model.workspace import work_buffer

__all__ = [
    "estep_stats",
    "estep_serial",
    "estep_serial_keys",
    "mu_derivatives",
    "mu_derivatives_parallel",
    "MU_PARALLEL_CELLS",
    "stride_multipliers",
    "stride_start_levels",
    "prior_start_levels",
    "stride_plan",
    "row_posterior",
    "grid_summaries",
    "grid_summaries_serial",
    "marginal_votes_mu",
    "mu_work_size",
    "fused_pays",
    "FUSED_MIN_CELLS",
    "TABLE_MAX_COUNT",
    "STRIDE_MAX",
    "STRIDE_SPACING_MAX",
    "STRIDE_TOL",
    "STRIDE_MIN_SAVING",
    "POLY_MAX_VOTES",
    "poly_max_votes",
    "poly_pays",
    "bernstein_offsets",
    "bernstein_table",
    "bernstein_moments",
    "poly_estep_stats",
    "bernstein_coefs",
    "bernstein_sums",
]

#: Counts above this use the log-space path (the tables would grow past 130 rows per pair).
TABLE_MAX_COUNT = 2048
#: Largest power tables built, in float64 values (64 MB); beyond it every row goes to log space.
TABLE_BUDGET = 8_000_000
#: Tables are built only when their exponentials number under 1/this of the log path's.
TABLE_COST_RATIO = 4
#: The dense E-step is used when rows x pairs is at most this many times the entries.
DENSE_FILL = 4
#: ... and rows x (2 pairs + nodes) at most this many values (the dense matrices' size).
DENSE_CELL_LIMIT = 30_000_000
#: Grids of at least this many nodes have each log-space row cut to its support.
SUPPORT_MIN_NODES = 64
#: ... for rows with at least this many votes: fewer leave the likelihood too wide
#: (and the prior's tails too heavy) for the search to pay.
SUPPORT_MIN_VOTES = 100
#: Nodes whose log weight is surely this far below a row's peak are skipped (the
#: log-space path sets those more than 40 below to zero anyway).
_SUPPORT_CUT = 45.0
#: A table row's sum must exceed this to be kept (see the module docstring).
_TINY = 1e-250
#: Largest node stride of a row on a logit grid (a power of two).
STRIDE_MAX = 16
#: ... and the largest central spacing a stride may reach (four times the
#: finest spacing any prior needs, :data:`attnmodel.model.grid.SPACING_MAX`).
STRIDE_SPACING_MAX = 0.4
#: A row keeps stride ``k`` when its sums with strides ``k`` and ``2 k`` agree to
#: this, relative. The trapezoid error of a smooth, decaying integrand falls
#: geometrically as the spacing shrinks, so that of stride ``k`` is then far
#: smaller; near the grid's ends, where a Beta shape of 0.1 leaves ``exp(-20)``
#: of the mass beyond ``|u| = 200``, it falls as the spacing squared and stays
#: below a third of this, below the grid's own truncation error.
STRIDE_TOL = 1e-9
#: Rows take strides only when that saves at least this share of the E-step's
#: entries times nodes (see :func:`stride_start_levels`).
STRIDE_MIN_SAVING = 0.5
#: Values the parallel chunks' per-key node weights may hold together (with one
#: log mass per key); fewer chunks run when there are many keys.
_KEY_SUM_BUDGET = 8_000_000
#: Values the chunks' per-pair win and loss sums may hold together: with many
#: pairs and nodes, zeroing and adding them would cost more than finer chunks
#: balance (down to one chunk per thread).
_PAIR_SUM_BUDGET = 4_000_000


@numba.njit(cache=True)
def _table_plan(entry_pair, entry_s, entry_f, n_pairs, n_nodes, cap, n_rows=0):
    """Largest tabulated count per pair and direction (``-1``: none), within the budget.

    With ``n_rows > 0`` the tables are built only when they cost fewer
    exponentials than the log-space path spends on ``n_rows`` rows
    (``n_nodes`` each): tables grow with the largest count per pair, the log
    path with the rows.
    """
    kmax = np.full((2, n_pairs), -1, dtype=np.int64)
    for e in range(entry_pair.size):
        p = entry_pair[e]
        s = entry_s[e]
        f = entry_f[e]
        if s <= cap and s > kmax[0, p]:
            kmax[0, p] = s
        if f <= cap and f > kmax[1, p]:
            kmax[1, p] = f
    size = 0
    for d in range(2):
        for p in range(n_pairs):
            if kmax[d, p] >= 0:
                size += (16 + kmax[d, p] // 16 + 1) * n_nodes
    if size > TABLE_BUDGET or (n_rows > 0 and size * TABLE_COST_RATIO > n_rows * n_nodes):
        kmax[:, :] = -1
    return kmax


@numba.njit(cache=True)
def _power_tables(log_p, kmax):
    """``lo[p, j] = exp(j log p)`` (j < 16) and ``hi[off[p] + i] = exp(16 i log p)``.

    Without any table (``kmax < 0`` everywhere) ``lo`` has no nodes: an
    unused array of ``16 P G`` doubles, allocated and freed at every call,
    moves the C allocator's thresholds so that the caller's other arrays
    come back as fresh pages, faulted in again each time.
    """
    n_pairs, n_nodes = log_p.shape
    off = np.zeros(n_pairs + 1, dtype=np.int64)
    for p in range(n_pairs):
        off[p + 1] = off[p] + (kmax[p] // 16 + 1 if kmax[p] >= 0 else 0)
    lo = np.empty((n_pairs, 16, n_nodes if off[n_pairs] > 0 else 0))
    hi = np.empty((off[n_pairs], n_nodes))
    for p in range(n_pairs):
        if kmax[p] < 0:
            continue
        for g in range(n_nodes):
            lp = log_p[p, g]
            lo[p, 0, g] = 1.0
            for j in range(1, 16):
                lo[p, j, g] = np.exp(j * lp)
            hi[off[p], g] = 1.0
            for i in range(1, off[p + 1] - off[p]):
                hi[off[p] + i, g] = np.exp(16.0 * i * lp)
    return lo, hi, off


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _sum4(x):
    n = x.size
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    m = n - n % 4
    for g in range(0, m, 4):
        a0 += x[g]
        a1 += x[g + 1]
        a2 += x[g + 2]
        a3 += x[g + 3]
    for g in range(m, n):
        a0 += x[g]
    return (a0 + a1) + (a2 + a3)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _row_by_tables(
    x,
    r,
    row_ptr,
    entry_pair,
    entry_s,
    entry_f,
    kmax,
    lo_g,
    hi_g,
    off_g,
    lo_1mg,
    hi_1mg,
    off_1mg,
    mass,
):
    """Fill ``x`` with the row's products; return their sum, or -1 if the tables cannot."""
    n_nodes = x.size
    for e in range(row_ptr[r], row_ptr[r + 1]):
        p = entry_pair[e]
        if entry_s[e] > kmax[0, p] or entry_f[e] > kmax[1, p]:
            return -1.0
    e0 = row_ptr[r]
    for e in range(e0, row_ptr[r + 1]):
        p = entry_pair[e]
        i1 = entry_s[e] & 15
        j1 = off_g[p] + (entry_s[e] >> 4)
        i2 = entry_f[e] & 15
        j2 = off_1mg[p] + (entry_f[e] >> 4)
        if e == e0:
            for g in range(n_nodes):
                x[g] = mass[g] * (
                    (lo_g[p, i1, g] * hi_g[j1, g]) * (lo_1mg[p, i2, g] * hi_1mg[j2, g])
                )
        else:
            for g in range(n_nodes):
                x[g] *= (lo_g[p, i1, g] * hi_g[j1, g]) * (lo_1mg[p, i2, g] * hi_1mg[j2, g])
    total = _sum4(x)
    if total > _TINY:
        return total
    return -1.0


@numba.njit(cache=True)
def _row_loglik_at(g, r, row_ptr, entry_pair, entry_s, entry_f, log_g_t, log_1mg_t):
    """Log-likelihood of row ``r`` at node ``g`` (from the node-major copies of the logs)."""
    acc = 0.0
    for e in range(row_ptr[r], row_ptr[r + 1]):
        p = entry_pair[e]
        if entry_s[e] > 0:
            acc += entry_s[e] * log_g_t[g, p]
        if entry_f[e] > 0:
            acc += entry_f[e] * log_1mg_t[g, p]
    return acc


@numba.njit(cache=True)
def _row_votes(r, row_ptr, entry_s, entry_f):
    total = 0
    for e in range(row_ptr[r], row_ptr[r + 1]):
        total += entry_s[e] + entry_f[e]
    return total


@numba.njit(cache=True)
def _row_support(r, row_ptr, entry_pair, entry_s, entry_f, log_g_t, log_1mg_t, log_mass, side_max):
    """Nodes ``lo..hi-1`` outside which row ``r``'s log weight is surely below its peak - 45.

    The likelihood is concave in ``eta`` (a sum of logs of functions linear in
    it), hence unimodal along the nodes: its peak node is found by bisection
    on the sign of its differences between neighbours, and on either side of
    it ``loglik(g) + (largest log mass from g outwards)`` falls monotonically,
    so the edges are found by bisection too. ``best``, the log weight at the
    likelihood's peak node, is at most the row's true peak, so no node left
    out is above ``peak - 45``. About 45 likelihood evaluations (each one pass
    over the row's entries) instead of one per node.
    """
    n_nodes = log_mass.size
    a = 0
    b = n_nodes - 1
    while a < b:
        mid = (a + b) // 2
        up = _row_loglik_at(mid + 1, r, row_ptr, entry_pair, entry_s, entry_f, log_g_t, log_1mg_t)
        here = _row_loglik_at(mid, r, row_ptr, entry_pair, entry_s, entry_f, log_g_t, log_1mg_t)
        if up > here:
            a = mid + 1
        else:
            b = mid
    top = a
    l_top = _row_loglik_at(top, r, row_ptr, entry_pair, entry_s, entry_f, log_g_t, log_1mg_t)
    cut = l_top + log_mass[top] - _SUPPORT_CUT
    # Left edge: first node in 0..top whose bound reaches the cut (side_max[0] = max from the left).
    a = 0
    b = top
    while a < b:
        mid = (a + b) // 2
        l_mid = _row_loglik_at(mid, r, row_ptr, entry_pair, entry_s, entry_f, log_g_t, log_1mg_t)
        if l_mid + side_max[0, mid] >= cut:
            b = mid
        else:
            a = mid + 1
    lo = a
    # Right edge: last node in top..G-1 whose bound reaches the cut (side_max[1] = from the right).
    a = top
    b = n_nodes - 1
    while a < b:
        mid = (a + b + 1) // 2
        l_mid = _row_loglik_at(mid, r, row_ptr, entry_pair, entry_s, entry_f, log_g_t, log_1mg_t)
        if l_mid + side_max[1, mid] >= cut:
            a = mid
        else:
            b = mid - 1
    return lo, a + 1


@numba.njit(cache=True)
def _first_reaching(run_max, b, cut):
    """The first node in ``0..b`` where the running maximum ``run_max`` reaches ``cut``, or b."""
    a = 0
    while a < b:
        mid = (a + b) // 2
        if run_max[mid] >= cut:
            b = mid
        else:
            a = mid + 1
    return a


@numba.njit(cache=True)
def _prior_mode(side_max):
    """The first node where the log mass peaks, from its running maxima (``side_max[0]``)."""
    n = side_max.shape[1]
    return _first_reaching(side_max[0], n - 1, side_max[0, n - 1])


@numba.njit(cache=True)
def _prior_span(side_max, mode, cut):
    """Nodes ``lo..hi-1`` outside which the log mass and every log mass beyond lie below ``cut``.

    A light row's support, found without its likelihood's shape: a
    likelihood is at most 1, so a node whose log mass is below ``cut = log
    L(mode) + log mass(mode) - 45`` (a lower bound on the row's peak, less
    45) weighs less than ``exp(-45)`` of the peak, and the log-space pass
    would set it to zero. Two bisections on the running maxima of the log
    mass from either end (:func:`_prepare`); the row pays one likelihood
    evaluation, at the prior's mode. On a logit grid built for heavy rows,
    where the prior's tails fall tens of log units within the outer nodes,
    light rows leave those nodes out.
    """
    n = side_max.shape[1]
    lo = _first_reaching(side_max[0], mode, cut)
    a = mode
    b = n - 1
    while a < b:
        mid = (a + b + 1) // 2
        if side_max[1, mid] >= cut:
            a = mid
        else:
            b = mid - 1
    return lo, a + 1


# -- exponentials in loops that vectorise --------------------------------------------
#
# As for the logs (:func:`batch_log`): Numba's ``np.exp`` is one C library call a
# value (about 4 ns here); fdlibm's ``__ieee754_exp`` written out compiles to
# vector instructions (about 0.9 ns), within 1 ulp of the exact value.

# log 2 in two parts (the high one with trailing zero bits, so that k * _LN2_HI
# is exact), shared with :func:`batch_log`.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08

#: Nodes more than this many log units below a row's peak weigh zero: each adds
#: under 4e-18 to a sum of at least 1, less than its rounding.
EXP_CUT = 40.0


@intrinsic
def _as_double(typingctx, bits):
    """The float64 whose bits are the int64 ``bits`` (a reinterpretation, no conversion)."""
    if not (isinstance(bits, nb_types.Integer) and bits.bitwidth == 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return nb_types.float64(bits), codegen


# The numpy error model: the division then raises nothing, which a vector loop
# needs; IEEE arithmetic stated, as for batch_log.
@numba.njit(cache=True, error_model="numpy", fastmath=False)
def exp_below_peak(x, peak):
    """``x = exp(x - peak)``, 0 where ``x - peak`` is not above ``-EXP_CUT`` (NaN included).

    fdlibm's reduction ``d = k log 2 + r``, ``|r| <= log(2) / 2``, and its
    rational approximation of ``exp(r)``; ``2^k`` from its bits (``k >= -58``
    here, far from subnormals). ``peak`` is finite.
    """
    for i in range(x.size):
        d = x[i] - peak
        keep = d > -EXP_CUT
        v = d if keep else -EXP_CUT
        ki = np.int64(v * _INV_LN2 - 0.5)  # v <= 0: truncation rounds to the nearest
        k = np.float64(ki)
        hi = v - k * _LN2_HI
        lo = k * _LN2_LO
        r = hi - lo
        t = r * r
        c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
        y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
        x[i] = y * _as_double((ki + 1023) << 52) if keep else 0.0


@numba.njit(cache=True)
def _row_by_logs(x, r, row_ptr, entry_pair, entry_s, entry_f, log_g, log_1mg, log_mass, lo, hi):
    """Fill ``x[lo:hi]`` with ``exp(a_g - peak)``; return ``(sum, peak)``.

    The loops run over slices from index 0, which Numba compiles without
    negative-index checks (and so vectorises).
    """
    xs = x[lo:hi]
    n = xs.size
    lm = log_mass[lo:hi]
    for i in range(n):
        xs[i] = lm[i]
    for e in range(row_ptr[r], row_ptr[r + 1]):
        p = entry_pair[e]
        s = entry_s[e]
        f = entry_f[e]
        # Skipping zero counts keeps 0 * log(0) out of the sum; an entry with
        # wins and losses adds both in one pass over the nodes.
        if s > 0 and f > 0:
            lg = log_g[p, lo:hi]
            l1 = log_1mg[p, lo:hi]
            for i in range(n):
                xs[i] += s * lg[i] + f * l1[i]
        elif s > 0:
            lg = log_g[p, lo:hi]
            for i in range(n):
                xs[i] += s * lg[i]
        elif f > 0:
            l1 = log_1mg[p, lo:hi]
            for i in range(n):
                xs[i] += f * l1[i]
    peak = -np.inf
    for i in range(n):
        if xs[i] > peak:
            peak = xs[i]
    if peak == -np.inf:
        return 0.0, peak
    exp_below_peak(xs, peak)
    return _sum4(xs), peak


@numba.njit(cache=True)
def _prepare(entry_pair, entry_s, entry_f, log_g, log_1mg, log_mass, cap, cost_rows):
    """What every row needs: mass scales and normalised masses, tables, support search.

    ``log_mass`` has one row per key (shape (D, G)): each count row takes the
    log mass of its key (one key for all rows when the prior mass is shared;
    with ties modelled, the prior plus the tie factor of the row's ``(m, T)``).
    The power tables follow :func:`_table_plan` (``cap``, ``cost_rows``); the
    support search needs the node-major logs and, per key, the running maxima
    of the log mass from either end (empty arrays on grids too small to search).
    """
    n_keys, n_nodes = log_mass.shape
    lmax = np.empty(n_keys)
    mass = np.zeros((n_keys, n_nodes))
    for d in range(n_keys):
        top = -np.inf
        for g in range(n_nodes):
            if log_mass[d, g] > top:
                top = log_mass[d, g]
        lmax[d] = top
        if top > -np.inf:
            for g in range(n_nodes):
                mass[d, g] = np.exp(log_mass[d, g] - top)
    kmax = _table_plan(entry_pair, entry_s, entry_f, log_g.shape[0], n_nodes, cap, cost_rows)
    lo_g, hi_g, off_g = _power_tables(log_g, kmax[0])
    lo_1mg, hi_1mg, off_1mg = _power_tables(log_1mg, kmax[1])
    if n_nodes >= SUPPORT_MIN_NODES:
        log_g_t = np.ascontiguousarray(log_g.T)
        log_1mg_t = np.ascontiguousarray(log_1mg.T)
        side_max = np.empty((n_keys, 2, n_nodes))
        for d in range(n_keys):
            side_max[d, 0, 0] = log_mass[d, 0]
            for g in range(1, n_nodes):
                side_max[d, 0, g] = max(side_max[d, 0, g - 1], log_mass[d, g])
            side_max[d, 1, n_nodes - 1] = log_mass[d, n_nodes - 1]
            for g in range(n_nodes - 2, -1, -1):
                side_max[d, 1, g] = max(side_max[d, 1, g + 1], log_mass[d, g])
    else:
        log_g_t = np.empty((0, 0))
        log_1mg_t = np.empty((0, 0))
        side_max = np.empty((n_keys, 2, 0))
    return (
        lmax, mass, kmax, lo_g, hi_g, off_g, lo_1mg, hi_1mg, off_1mg,
        log_g_t, log_1mg_t, side_max,
    )  # fmt: skip


@numba.njit(cache=True)
def _row_weights(
    x, r, row_ptr, entry_pair, entry_s, entry_f, log_g, log_1mg, log_mass_all, row_key, prep
):
    """Fill ``x[lo:hi]`` with row ``r``'s node weights; return ``(sum, log Z_r, lo, hi)``.

    The row's log mass is ``log_mass_all[row_key[r]]`` (see :func:`_prepare`).
    Tables where they serve (all nodes), log space otherwise (the nodes of the
    row's support, see :func:`_row_support`, or for a row of fewer votes the
    prior's, :func:`_prior_span`; the nodes left out weigh zero, as the full
    log-space pass makes them); a row no node can explain returns
    ``(0, -inf, 0, 0)``.
    """
    key = row_key[r]
    log_mass = log_mass_all[key]
    lmax = prep[0][key]
    mass = prep[1][key]
    kmax, lo_g, hi_g, off_g, lo_1mg, hi_1mg, off_1mg = prep[2:9]
    log_g_t, log_1mg_t = prep[9], prep[10]
    side_max = prep[11][key]
    n_nodes = x.size
    if lmax == -np.inf:
        return 0.0, -np.inf, 0, 0
    total = _row_by_tables(
        x, r, row_ptr, entry_pair, entry_s, entry_f, kmax,
        lo_g, hi_g, off_g, lo_1mg, hi_1mg, off_1mg, mass,
    )  # fmt: skip
    if total > 0.0:
        return total, np.log(total) + lmax, 0, n_nodes
    lo = 0
    hi = n_nodes
    searched = side_max.shape[1] == n_nodes
    if searched and _row_votes(r, row_ptr, entry_s, entry_f) >= SUPPORT_MIN_VOTES:
        lo, hi = _row_support(
            r, row_ptr, entry_pair, entry_s, entry_f, log_g_t, log_1mg_t, log_mass, side_max
        )
    elif searched:
        mode = _prior_mode(side_max)
        at_mode = _row_loglik_at(mode, r, row_ptr, entry_pair, entry_s, entry_f, log_g_t, log_1mg_t)
        lo, hi = _prior_span(side_max, mode, at_mode + log_mass[mode] - _SUPPORT_CUT)
    total, peak = _row_by_logs(
        x, r, row_ptr, entry_pair, entry_s, entry_f, log_g, log_1mg, log_mass, lo, hi
    )
    if peak == -np.inf:
        return 0.0, -np.inf, 0, 0
    return total, np.log(total) + peak, lo, hi


@numba.njit(cache=True, fastmath={"contract"})
def _accumulate(x, lo, hi, scale, w_acc, s_acc, f_acc, r, row_ptr, entry_pair, entry_s, entry_f):
    """Add the row's ``scale * x[lo:hi]`` into the node weights and the per-pair win/loss sums.

    The polynomial rows (:func:`_poly_pass`) add their scaled coefficients the
    same way, into per-``(n, k)`` sums.
    """
    xs = x[lo:hi]
    n = xs.size
    ws = w_acc[lo:hi]
    for i in range(n):
        xs[i] *= scale
        ws[i] += xs[i]
    for e in range(row_ptr[r], row_ptr[r + 1]):
        p = entry_pair[e]
        # Most entries hold one vote: a zero count adds nothing to its sums.
        if entry_s[e] > 0:
            s = float(entry_s[e])
            sa = s_acc[p, lo:hi]
            for i in range(n):
                sa[i] += s * xs[i]
        if entry_f[e] > 0:
            f = float(entry_f[e])
            fa = f_acc[p, lo:hi]
            for i in range(n):
                fa[i] += f * xs[i]


@numba.njit(cache=True)
def stride_multipliers(n_nodes, spacing):
    """Node multipliers of the strided sub-grids of a logit grid, shape (L + 2, G).

    Row ``l`` belongs to stride ``k = 2 ** l``: the nodes ``K + i k`` (``K``
    the central node) and the two end nodes, each with its trapezoid weight on
    that sub-grid divided by its weight on the full grid (``k`` inside, less
    at the ends, where the last gap is shorter); zero off the sub-grid. Row 0
    is all ones. Each sub-grid holds the next one, so a row's sums with
    strides ``k`` and ``2 k`` come from one evaluation. ``L`` is the largest
    level a row may take: ``2 ** L <= STRIDE_MAX`` and ``2 ** L * spacing <=
    STRIDE_SPACING_MAX`` (``L = 0``, no stride, when ``spacing <= 0``); the
    last row, level ``L + 1``, only checks level ``L``.
    """
    top = 0
    if spacing > 0.0:
        while (
            2 ** (top + 1) <= STRIDE_MAX
            and 2 ** (top + 1) * spacing <= STRIDE_SPACING_MAX
            and 2 ** (top + 1) * 8 <= n_nodes
        ):
            top += 1
    mult = np.zeros((top + 2, n_nodes))
    centre = (n_nodes - 1) // 2
    for level in range(top + 2):
        k = 2**level
        first = centre % k
        pos = []
        if first > 0:
            pos.append(0)
        for j in range(first, n_nodes, k):
            pos.append(j)
        if pos[-1] < n_nodes - 1:
            pos.append(n_nodes - 1)
        for i in range(len(pos)):
            left = pos[i] - pos[i - 1] if i > 0 else 0
            right = pos[i + 1] - pos[i] if i < len(pos) - 1 else 0
            end = i == 0 or i == len(pos) - 1
            # The full grid's own weight is 1 spacing (half of one at its ends).
            mult[level, pos[i]] = 0.5 * (left + right) / (0.5 if end else 1.0)
    return mult


@numba.njit(cache=True)
def stride_start_levels(row_ptr, entry_s, entry_f, spacing, top):
    """Each row's first stride level: ``2 ** l * spacing`` within what its votes need.

    A row of ``n`` votes is resolved by the spacing
    ``SPACING_ROOT_VOTES / sqrt(n)`` (see
    :func:`attnmodel.model.grid.default_spacing`), the largest power of two
    times ``spacing`` below that, at most level ``top``. The E-step checks the
    level and halves the stride until it passes (:data:`STRIDE_TOL`). When the
    strides would save less than :data:`STRIDE_MIN_SAVING` of the rows' entries
    times nodes (most rows as heavy as the grid allows), every row stays on
    the full grid: the passes over the sub-grids would cost more than they save.
    """
    n_rows = row_ptr.size - 1
    level = np.zeros(n_rows, dtype=np.int64)
    if top == 0:
        return level
    full = 0.0
    strided = 0.0
    for r in range(n_rows):
        votes = max(_row_votes(r, row_ptr, entry_s, entry_f), 1)
        room = SPACING_ROOT_VOTES / np.sqrt(votes) / spacing
        lv = 0
        while lv < top and 2 ** (lv + 1) <= room:
            lv += 1
        level[r] = lv
        cost = row_ptr[r + 1] - row_ptr[r]
        full += cost
        strided += cost / 2**lv
    if strided > (1.0 - STRIDE_MIN_SAVING) * full:
        level[:] = 0
    return level


@numba.njit(cache=True)
def prior_start_levels(level, log_mass, row_key, mult):
    """Start levels (:func:`stride_start_levels`) lowered past the levels the prior fails.

    A row is as smooth as its log mass ``log_mass[row_key[r]]`` (shape (D,
    G)) times a likelihood that is nearly flat when its votes are few, so
    where the prior mass alone has sums with strides ``k`` and ``2 k`` that
    differ by more than :data:`STRIDE_TOL` (Beta(4, 1.5) at stride 16 on a
    grid for 10^4 votes, by 8e-8), the rows starting there fail the same check and only
    pay for the sub-grid they leave. Each row starts instead at the largest
    level at most its own where its key's prior passes; the check still runs
    on the level it starts at, so a row is never summed more coarsely than
    before, at most more finely. Returns a new array.
    """
    out = level.copy()
    top = mult.shape[0] - 2
    if top == 0:
        return out
    n_keys, n_nodes = log_mass.shape
    used = np.zeros(n_keys, dtype=np.bool_)
    for r in range(level.size):
        if level[r] > 0:
            used[row_key[r]] = True
    ok = np.ones((n_keys, top + 1), dtype=np.bool_)
    m = np.empty(n_nodes)
    z = np.empty(top + 2)
    for k in range(n_keys):
        if not used[k]:
            continue
        lmax = -np.inf
        for g in range(n_nodes):
            lmax = max(lmax, log_mass[k, g])
        if lmax == -np.inf:
            continue
        for g in range(n_nodes):
            m[g] = np.exp(log_mass[k, g] - lmax)
        for lv in range(top + 2):
            z[lv] = _dot(m, mult[lv])
        for lv in range(1, top + 1):
            ok[k, lv] = abs(z[lv] - z[lv + 1]) <= STRIDE_TOL * z[lv]
    for r in range(level.size):
        lv = out[r]
        while lv > 0 and not ok[row_key[r], lv]:
            lv -= 1
        out[r] = lv
    return out


@numba.njit(cache=True)
def _sub_grid(a, idx, extra=None):
    """Columns ``idx`` of the 2-D ``a`` (contiguous), plus ``extra`` per column if given."""
    out = np.empty((a.shape[0], idx.size))
    for i in range(a.shape[0]):
        for j in range(idx.size):
            out[i, j] = a[i, idx[j]]
            if extra is not None:
                out[i, j] += extra[j]
    return out


@numba.njit(cache=True, parallel=True)
def _estep_stats(
    row_ptr,
    entry_pair,
    entry_s,
    entry_f,
    row_weight,
    log_g,
    log_1mg,
    log_mass,
    row_key,
    n_chunks,
    post,
    cap,
    cost_rows,
    spacing,
    work,
):
    n_rows = row_ptr.size - 1
    keep_post = post.shape[0] == n_rows
    n_keys, n_nodes = log_mass.shape
    n_pairs = log_g.shape[0]
    log_z = np.empty(n_rows)
    w_all = np.zeros((n_keys, n_nodes))
    s_all = np.zeros((n_pairs, n_nodes))
    f_all = np.zeros((n_pairs, n_nodes))
    # Per-row posteriors live on the full grid: no strides then.
    mult = stride_multipliers(n_nodes, 0.0 if keep_post else spacing)
    top = mult.shape[0] - 2
    level = stride_start_levels(row_ptr, entry_s, entry_f, spacing, top)
    level = prior_start_levels(level, log_mass, row_key, mult)
    for lv in range(top, -1, -1):
        rows = np.nonzero(level == lv)[0]
        if rows.size == 0:
            continue
        idx = np.nonzero(mult[lv] > 0.0)[0]
        g_lv = idx.size
        ratio = np.empty(g_lv)
        for j in range(g_lv):
            ratio[j] = mult[lv + 1, idx[j]] / mult[lv, idx[j]]
        if lv == 0:
            lg, l1, lm = log_g, log_1mg, log_mass
        else:
            lg = _sub_grid(log_g, idx)
            l1 = _sub_grid(log_1mg, idx)
            lm = _sub_grid(log_mass, idx, np.log(mult[lv, idx]))
        n_c = min(n_chunks, rows.size)
        # The chunks' sums in the work space when it is large enough (each
        # chunk zeroes its own), else in a new array.
        n_w, n_s = n_c * n_keys * g_lv, n_c * n_pairs * g_lv
        space = work if work.size >= n_w + 2 * n_s else np.empty(n_w + 2 * n_s)
        w_c = space[:n_w].reshape((n_c, n_keys, g_lv))
        s_c = space[n_w : n_w + n_s].reshape((n_c, n_pairs, g_lv))
        f_c = space[n_w + n_s : n_w + 2 * n_s].reshape((n_c, n_pairs, g_lv))
        coarse = np.zeros(rows.size, dtype=np.bool_)
        prep = _prepare(entry_pair, entry_s, entry_f, lg, l1, lm, cap, min(cost_rows, rows.size))
        size = (rows.size + n_c - 1) // n_c
        for c in numba.prange(n_c):
            w_c[c] = 0.0
            s_c[c] = 0.0
            f_c[c] = 0.0
            x = np.empty(g_lv)
            for i in range(c * size, min(rows.size, (c + 1) * size)):
                r = rows[i]
                total, log_z[r], lo, hi = _row_weights(
                    x, r, row_ptr, entry_pair, entry_s, entry_f, lg, l1, lm, row_key, prep
                )
                if total == 0.0:
                    if lv > 0:
                        # No sub-grid node explains the row: perhaps a finer grid's does.
                        coarse[i] = True
                    elif keep_post:
                        post[r, :] = 0.0
                    continue
                if lv > 0 and abs(total - _dot(x[lo:hi], ratio[lo:hi])) > STRIDE_TOL * total:
                    # The sums with strides k and 2k differ: try k / 2.
                    coarse[i] = True
                    continue
                inv = 1.0 / total
                if keep_post:
                    post[r, :lo] = 0.0
                    for g in range(lo, hi):
                        post[r, g] = x[g] * inv
                    post[r, hi:] = 0.0
                _accumulate(
                    x,
                    lo,
                    hi,
                    row_weight[r] * inv,
                    w_c[c, row_key[r]],
                    s_c[c],
                    f_c[c],
                    r,
                    row_ptr,
                    entry_pair,
                    entry_s,
                    entry_f,
                )
        for i in range(rows.size):
            if coarse[i]:
                level[rows[i]] = lv - 1
        # The sub-grid's sums land on its nodes of the full grid (chunks added
        # in order, row by row of the chunks' arrays).
        _add_chunks(w_c, idx, w_all)
        _add_chunks(s_c, idx, s_all)
        _add_chunks(f_c, idx, f_all)
    return log_z, w_all, s_all, f_all


@numba.njit(cache=True)
def _add_chunks(parts, idx, out):
    """``out[:, idx] += parts.sum(axis=0)``, the chunks summed in order, without temporaries."""
    n_c, n_out, n_idx = parts.shape
    acc = np.empty(n_idx)
    for p in range(n_out):
        acc[:] = 0.0
        for c in range(n_c):
            row = parts[c, p]
            for j in range(n_idx):
                acc[j] += row[j]
        for j in range(n_idx):
            out[p, idx[j]] += acc[j]


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def mu_derivatives(x, s_stat, f_stat, eta, half):
    """Gradient and Hessian in ``mu_k = x_k`` of ``sum_g S_kg log g + F_kg log(1 - g)``.

    ``g = half_g + eta_g x_k`` and ``1 - g = half_g + eta_g (1 - x_k)``, with
    ``half = (1 - eta) / 2``: the M-step's objective for each unknown ``mu``
    (without its prior), both derivatives in one pass over the nodes. The
    sums over the nodes may be reassociated, so that they run in vector
    lanes (four times faster on 77 pairs x 1,475 nodes; the order changes
    the sums by rounding only).
    """
    n_pairs, n_nodes = s_stat.shape
    grad = np.empty(n_pairs)
    hess = np.empty(n_pairs)
    for k in numba.prange(n_pairs):
        xk = x[k]
        yk = 1.0 - xk
        d1 = 0.0
        d2 = 0.0
        for g in range(n_nodes):
            e = eta[g]
            win = half[g] + e * xk
            loss = half[g] + e * yk
            a = s_stat[k, g] / win
            b = f_stat[k, g] / loss
            d1 += e * (a - b)
            d2 += e * e * (a / win + b / loss)
        grad[k] = d1
        hess[k] = -d2
    return grad, hess


#: (pairs x nodes) values from which :func:`mu_derivatives_parallel` pays for its threads.
MU_PARALLEL_CELLS = 400_000


def _serial_clone(func, name):
    """``func`` under another name, so Numba caches its serial compilation apart.

    Numba cannot cache a function that calls a parallel one, and PyTensor
    caches the graphs it compiles only if every part can be cached; the Op of
    :mod:`attnmodel.model.ops` therefore calls this serial copy (``prange`` runs as
    ``range``). Chains running in parallel processes keep both cores busy.
    """
    clone = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__)
    clone.__qualname__ = name
    clone.__doc__ = func.__doc__
    return clone


_estep_stats_serial = numba.njit(cache=True)(
    _serial_clone(_estep_stats.py_func, "_estep_stats_serial")
)


#: :func:`mu_derivatives` with its pairs split between threads (each pair's sums
#: stay in one thread, so the numbers do not change), for many pairs and nodes.
mu_derivatives_parallel = numba.njit(
    cache=True, parallel=True, error_model="numpy", fastmath={"reassoc"}
)(_serial_clone(mu_derivatives.py_func, "mu_derivatives_parallel"))


@numba.njit(cache=True)
def estep_serial_keys(
    row_ptr, entry_pair, entry_s, entry_f, row_weight, log_g, log_1mg, log_mass, row_key, spacing
):
    """:func:`estep_serial` with one log mass per key (shape (D, G)).

    Row ``r`` takes the log mass of key ``row_key[r]`` (e.g. the prior plus
    the tie factor of its ``(m, T)``). Returns ``log_z`` (R,), the node
    weights per key (D, G) and ``S``, ``F`` (P, G).
    """
    post = np.empty((0, log_mass.shape[1]))
    return _estep_stats_serial(
        row_ptr,
        entry_pair,
        entry_s,
        entry_f,
        row_weight,
        log_g,
        log_1mg,
        np.ascontiguousarray(log_mass),
        row_key,
        1,
        post,
        TABLE_MAX_COUNT,
        row_ptr.size - 1,
        spacing,
        np.empty(0),
    )


@numba.njit(cache=True)
def estep_serial(
    row_ptr, entry_pair, entry_s, entry_f, row_weight, log_g, log_1mg, log_mass, spacing
):
    """The E-step on the table's arrays in one thread, callable from compiled code.

    ``spacing`` is the logit grid's (:attr:`attnmodel.model.grid.LogitGrid.spacing`)
    when the nodes are one, so that rows take strides (see :func:`estep_stats`);
    0 for other nodes (atoms).
    """
    log_z, w, s, f = estep_serial_keys(
        row_ptr,
        entry_pair,
        entry_s,
        entry_f,
        row_weight,
        log_g,
        log_1mg,
        np.ascontiguousarray(log_mass).reshape(1, log_mass.size),
        np.zeros(row_ptr.size - 1, dtype=np.int64),
        spacing,
    )
    return log_z, w[0], s, f


def count_arrays(counts) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(row_ptr, entry_pair, entry_s, entry_f)`` of a count table, as the kernel takes them."""
    return counts._int64(counts.row_ptr, counts.entry_pair, counts.entry_s, counts.entry_losses())


def estep_stats(
    counts,
    log_g: np.ndarray,
    log_1mg: np.ndarray,
    log_mass: np.ndarray,
    posterior: bool = False,
    *,
    tables: bool | None = None,
    dense: bool | None = None,
    row_key: np.ndarray | None = None,
    spacing: float = 0.0,
):
    """Row log-marginals and M-step statistics, in one compiled pass or as dense products.

    On a logit grid (``spacing`` its central spacing, see
    :class:`attnmodel.model.grid.LogitGrid`) each row is summed over every
    ``k``-th node only, with the trapezoid weights of that sub-grid
    (:func:`stride_multipliers`): ``k`` starts at what the row's votes allow
    (:func:`stride_start_levels`), below any level where the prior mass alone
    fails the check (:func:`prior_start_levels`), and is halved until the
    row's sums with strides ``k`` and ``2 k`` agree to :data:`STRIDE_TOL`. A light row's
    posterior is as wide as the prior, while the grid's spacing serves the
    heaviest row; the sub-grid's sums agree with the full grid's to about
    ``STRIDE_TOL``. Its statistics land on the sub-grid's nodes of the full
    grid (``k`` times a full node's weight), so that they are the derivatives
    of the strided log-likelihood (Fisher's identity) and the M-steps need
    nothing else. ``posterior=True`` keeps every row on the full grid.

    Parameters
    ----------
    counts : CountTable
    log_g, log_1mg : ndarray, shape (P, G)
    log_mass : ndarray, shape (G,), or shape (D, G) with ``row_key``
        Log prior mass of the nodes: one for all rows, or one per key, row
        ``r`` taking ``log_mass[row_key[r]]`` (e.g. the prior plus a tie
        factor per distinct ``(m, T)``, :mod:`attnmodel.model.ties`).
    posterior : bool
        Also return the posterior node probabilities per row.
    tables : bool, optional
        ``None`` (default): power tables where they apply, if they cost fewer
        exponentials than the log-space path (see :func:`_table_plan`);
        ``True``: the tables wherever they apply; ``False``: the log-space
        path for every row (the tests compare the paths).
    dense : bool, optional
        ``None`` (default): with ``tables=None``, the dense path of
        :func:`_dense_estep` when the rows fill at least 1/:data:`DENSE_FILL`
        of the (rows, pairs) cells, the tables are not chosen and the logs are
        finite; ``True``: the dense path whenever the logs are finite;
        ``False``: never.
    spacing : float
        The logit grid's central spacing, or 0 (default) for no strides (and
        for nodes that are not a logit grid, such as atoms).

    Returns
    -------
    log_z : ndarray, shape (R,)
    weight : ndarray, shape (G,), or (D, G) with ``row_key``
        Expected users per node (per key and node with ``row_key``).
    s_stat, f_stat : ndarray, shape (P, G)
    post : ndarray, shape (R, G), or None
    """
    arrays = count_arrays(counts)
    log_g = np.ascontiguousarray(log_g, dtype=np.float64)
    log_1mg = np.ascontiguousarray(log_1mg, dtype=np.float64)
    per_key = row_key is not None
    log_mass = np.ascontiguousarray(np.atleast_2d(log_mass), dtype=np.float64)
    if per_key:
        row_key = np.ascontiguousarray(row_key, dtype=np.int64)
    else:
        row_key = np.zeros(counts.n_rows, dtype=np.int64)
    if dense is not False and _dense_pays(counts, arrays, log_g, log_1mg, tables, dense):
        out = _dense_estep(counts, log_g, log_1mg, log_mass, row_key, posterior, spacing)
    else:
        n_keys, n_nodes = log_mass.shape
        # Each chunk sums its node weights per key: bound those slices' memory.
        threads = numba.get_num_threads()
        n_chunks = max(
            1,
            min(
                threads * 4,
                counts.n_rows,
                _KEY_SUM_BUDGET // (n_keys * n_nodes),
                max(threads, _PAIR_SUM_BUDGET // (2 * log_g.shape[0] * n_nodes)),
            ),
        )
        post = np.empty((counts.n_rows if posterior else 0, n_nodes))
        work = work_buffer(n_chunks * (n_keys + 2 * log_g.shape[0]) * n_nodes)
        out = _estep_stats(
            *arrays,
            np.ascontiguousarray(counts.row_weight, dtype=np.float64),
            log_g,
            log_1mg,
            log_mass,
            row_key,
            n_chunks,
            post,
            -1 if tables is False else TABLE_MAX_COUNT,
            counts.n_rows if tables is None else 0,
            float(spacing),
            work,
        )
        out = (*out, post if posterior else None)
    log_z, weight, s_stat, f_stat, post = out
    return log_z, weight if per_key else weight[0], s_stat, f_stat, post


def _dense_pays(counts, arrays, log_g, log_1mg, tables, dense) -> bool:
    """Whether :func:`estep_stats` takes the dense path (see its ``dense`` parameter)."""
    if not (np.isfinite(log_g).all() and np.isfinite(log_1mg).all()):
        return False
    if dense:
        return True
    n_rows, n_pairs, n_nodes = counts.n_rows, counts.n_pairs, log_g.shape[1]
    if tables is not None or n_rows * n_pairs > DENSE_FILL * counts.entry_n.size:
        return False
    if n_rows * (2 * n_pairs + n_nodes) > DENSE_CELL_LIMIT:
        return False
    _, pair, s, f = arrays
    kmax = _table_plan(pair, s, f, n_pairs, n_nodes, TABLE_MAX_COUNT, n_rows)
    return bool(np.all(kmax < 0))


def _dense_estep(counts, log_g, log_1mg, log_mass, row_key, posterior, spacing=0.0):
    """The E-step as matrix products, for rows that fill most of the (rows, pairs) cells.

    The rows' log weights are ``[S | F] @ [log g; log(1 - g)] + log mass``
    with ``S``, ``F`` the (rows, pairs) wins and losses, and the statistics
    ``[S | F].T @ (scaled posterior)``: two BLAS products in place of one pass
    per entry and node. Nodes more than 40 below a row's peak weigh zero, as
    in the compiled pass. The logs must be finite (``0 * log 0`` would give NaN).

    The products run in one BLAS thread: they take milliseconds, and BLAS's
    threads, which spin while they wait, cost more than they save when the
    cores are shared (several times slower on a loaded 2-core machine).
    """
    with one_blas_thread():
        return _dense_products(counts, log_g, log_1mg, log_mass, row_key, posterior, spacing)


def one_blas_thread():
    """A context in which BLAS (numpy's, scipy's) runs in one thread.

    For the many small products and factorisations of an EM fit (milliseconds
    each): BLAS's threads spin while they wait, and on shared cores they cost
    more than they save (MAP-EM on 78 pairs took twice the CPU time with two).
    """
    return _blas_controller().limit(limits=1, user_api="blas")


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _dense_products(counts, log_g, log_1mg, log_mass, row_key, posterior, spacing):
    n_rows, n_pairs = counts.n_rows, counts.n_pairs
    sf = np.zeros((n_rows, 2 * n_pairs))
    rows = counts.entry_row
    sf[rows, counts.entry_pair] = counts.entry_s
    sf[rows, n_pairs + counts.entry_pair] = counts.entry_n - counts.entry_s
    if spacing > 0 and not posterior:
        return _dense_strided(counts, sf, log_g, log_1mg, log_mass, row_key, spacing)
    a = sf @ np.concatenate([log_g, log_1mg])
    a += log_mass[0] if log_mass.shape[0] == 1 else log_mass[row_key]
    log_z, a = row_posterior(a)
    post = a.copy() if posterior else None
    a *= counts.row_weight[:, None]
    if log_mass.shape[0] == 1:
        weight = a.sum(axis=0)[None, :]
    else:
        weight = np.zeros(log_mass.shape)
        np.add.at(weight, row_key, a)
    stats = sf.T @ a
    return log_z, weight, stats[:n_pairs], stats[n_pairs:], post


def _dense_strided(counts, sf, log_g, log_1mg, log_mass, row_key, spacing):
    """:func:`_dense_products` with each row on its sub-grid, as the compiled pass takes it.

    The rows of one stride level form their products on that level's nodes
    only (a row of ten votes on a grid built for 10^4 takes one node in 16),
    from the coarsest level down; a row whose sums with strides ``k`` and
    ``2 k`` differ by more than :data:`STRIDE_TOL` moves to the next finer
    level (:func:`_stride_fails`), and the peak and the cut 40 below it are
    the sub-grid's, as in :func:`_row_by_logs`.
    """
    n_rows, n_pairs = counts.n_rows, counts.n_pairs
    n_nodes = log_g.shape[1]
    level, mult = stride_plan(counts, n_nodes, spacing)
    level = prior_start_levels(level, log_mass, row_key, mult)
    log_z = np.full(n_rows, -np.inf)
    weight = np.zeros(log_mass.shape)
    # Node-major: a level's nodes are rows of these, taken and added whole.
    logs = np.empty((n_nodes, 2 * n_pairs))
    logs[:, :n_pairs] = log_g.T
    logs[:, n_pairs:] = log_1mg.T
    stats = np.zeros((n_nodes, 2 * n_pairs))
    for lv in range(mult.shape[0] - 2, -1, -1):
        rows = np.flatnonzero(level == lv)
        if rows.size == 0:
            continue
        idx = np.flatnonzero(mult[lv] > 0.0)
        sf_lv = sf[rows]
        a = sf_lv @ logs[idx].T
        a += log_mass[0, idx] if log_mass.shape[0] == 1 else log_mass[row_key[rows]][:, idx]
        peak, ok = _below_peak(a)
        total = a @ mult[lv, idx]
        if lv > 0:
            fails = _stride_fails(total, a @ mult[lv + 1, idx])
            level[rows[fails]] = lv - 1
            keep = ~fails
            rows, a, sf_lv = rows[keep], a[keep], sf_lv[keep]
            peak, ok, total = peak[keep], ok[keep], total[keep]
        a *= mult[lv, idx]
        log_z[rows], inv = _log_z_inverse(total, peak, ok)
        a *= (inv * counts.row_weight[rows])[:, None]
        if log_mass.shape[0] == 1:
            weight[0, idx] += a.sum(axis=0)
        else:
            part = np.zeros((log_mass.shape[0], idx.size))
            np.add.at(part, row_key[rows], a)
            weight[:, idx] += part
        stats[idx] += a.T @ sf_lv
    s_stat = np.ascontiguousarray(stats[:, :n_pairs].T)
    return log_z, weight, s_stat, np.ascontiguousarray(stats[:, n_pairs:].T), None


def stride_plan(counts, n_nodes: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """``(start level per row, multipliers)`` for the numpy forms of the strided E-step.

    See :func:`stride_start_levels` and :func:`stride_multipliers`.
    """
    mult = stride_multipliers(n_nodes, float(spacing))
    row_ptr, _, entry_s, entry_f = count_arrays(counts)
    return stride_start_levels(row_ptr, entry_s, entry_f, float(spacing), mult.shape[0] - 2), mult


def _stride_fails(z_k: np.ndarray, z_2k: np.ndarray) -> np.ndarray:
    """Rows whose sums with strides ``k`` and ``2 k`` differ by more than :data:`STRIDE_TOL`.

    A sub-grid that misses the row entirely (a zero sum) is no answer either.
    """
    return ~(np.abs(z_k - z_2k) <= STRIDE_TOL * z_k) | (z_k == 0)


def row_posterior(a: np.ndarray, level=None, mult=None) -> tuple[np.ndarray, np.ndarray]:
    """Row log-marginals and normalised node weights from log weights ``a`` (R, G), in place.

    Nodes more than 40 below a row's peak weigh zero, as in the compiled
    pass; a row without a finite weight gets ``log Z = -inf`` and zero
    weights. With ``level`` and ``mult`` (:func:`stride_plan`) each row takes
    its stride as the compiled pass does (see :func:`estep_stats`): from its
    start level down until the sums with strides ``k`` and ``2 k`` agree to
    :data:`STRIDE_TOL`; its weights are then zero off that sub-grid.
    """
    peak, ok = _below_peak(a)
    if mult is None:
        total = a.sum(axis=1)
    else:
        z = a @ mult.T
        level = np.array(level, dtype=np.int64)
        for lv in range(mult.shape[0] - 2, 0, -1):
            here = level == lv
            coarse = _stride_fails(z[here, lv], z[here, lv + 1])
            level[np.flatnonzero(here)[coarse]] -= 1
        total = z[np.arange(a.shape[0]), level]
        a *= mult[level]
    log_z, inv = _log_z_inverse(total, peak, ok)
    a *= inv[:, None]
    return log_z, a


def _below_peak(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a`` (R, G) becomes ``exp(a - its row's peak)``, in place, 0 more than 40 below it.

    Returns the peaks and which rows have a finite one.
    """
    peak = a.max(axis=1)
    ok = peak > -np.inf
    a -= np.where(ok, peak, 0.0)[:, None]
    a[a < -40.0] = -np.inf
    np.exp(a, out=a)
    return peak, ok


def _log_z_inverse(total, peak, ok) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``log Z`` and ``1 / total`` from its weights' sum below its peak.

    A row without a finite peak or with a zero sum gets ``-inf`` and 0.
    """
    ok = ok & (total > 0)
    with np.errstate(divide="ignore"):
        log_z = np.where(ok, np.log(np.where(ok, total, 1.0)) + peak, -np.inf)
    return log_z, np.where(ok, 1.0 / np.where(ok, total, 1.0), 0.0)


# -- the E-step of light rows as polynomials in eta --------------------------------
#
# A vote's probability is linear in eta: g = (1 - eta) g0 + eta g1 with g0 = 1/2
# and g1 = mu (a win) or 1 - mu (a loss), both non-negative. A row of n votes
# therefore has the likelihood sum_k b_k eta^k (1 - eta)^(n - k), a polynomial
# in the Bernstein basis of degree n whose coefficients b_k are sums of
# products of the g0's and g1's, all non-negative. Its marginal and every
# M-step statistic are then linear in the b_k with per-node tables
# V[n, k, g] = eta_g^k (1 - eta_g)^(n - k): Z = sum_k b_k M[n, k] with the
# moments M[n, k] = sum_g mass_g V[n, k, g], and the posterior node weights of
# the row are mass_g sum_k b_k V[n, k, g] / Z. Summed over rows these need only
# per-(n, k) sums of b_k / Z (times a row's weight and its counts per pair),
# contracted with V once per E-step. A row costs O(n^2 + n x entries) in place
# of O(entries x nodes), and the quadrature is the full grid's.
#
# The coefficients are formed over the product of the votes' g0's (each factor
# as g0 ((1 - eta) + (g1 / g0) eta)), which cancels from the posterior weights
# and is added back to log Z. Every term is non-negative, so nothing cancels:
# b_k carries at most 2 n ulp of relative rounding, Z and the node weights
# (sums of non-negative terms) at most (n + 2 + G) ulp more. A row is kept when
# Z > 1e-250 (relative to the largest node mass): a coefficient that
# underflowed on the way lost less than 2.3e-308 x 3^n (with g0 = 1/2 the
# coefficients sum to at most 3^n), so with n <= 64 votes and M[n, k] <= G
# nodes (at most 1e4) all of them together are below 1e-20 of a kept Z, far
# below its rounding; rows that fail go to the grid path.

#: Rows with at most this many votes take the polynomial path (:func:`poly_estep_stats`).
POLY_MAX_VOTES = 64


def poly_max_votes(n_nodes: int) -> int:
    """Most votes of a polynomial row on ``n_nodes`` nodes.

    :data:`POLY_MAX_VOTES`, or fewer so that :func:`bernstein_table` holds at
    most :data:`TABLE_BUDGET` values.
    """
    n_max = POLY_MAX_VOTES
    while n_max > 0 and (n_max + 1) * (n_max + 2) // 2 * n_nodes > TABLE_BUDGET:
        n_max -= 1
    return n_max


def poly_pays(counts, light: np.ndarray, n_max: int, n_nodes: int) -> bool:
    """Whether the rows ``light`` (a mask) cost less as polynomials than on the grid.

    Per E-step the polynomials cost about ``n^2 / 2 + n x entries`` per row and
    the contraction of the ``(1 + 2 P)`` sums with :func:`bernstein_table`
    (``NK x G``); the grid pass at least the rows' entries times the nodes over
    :data:`STRIDE_MAX` (its largest stride). A few light rows beside many
    pairs (a few hundred users on 78 pairs) stay on the grid.
    """
    votes = counts.votes_per_row()[light].astype(np.float64)
    entries = np.diff(counts.row_ptr)[light]
    n_nk = (n_max + 1) * (n_max + 2) // 2
    poly = float(np.sum(votes * votes / 2.0 + votes * entries))
    poly += (1 + 2 * counts.n_pairs) * n_nk * n_nodes
    return poly < float(np.sum(entries)) * n_nodes / STRIDE_MAX


def bernstein_offsets(n_max: int) -> np.ndarray:
    """Where degree ``n``'s coefficients start in the flat ``(n, k)`` index; shape (n_max + 2,)."""
    n = np.arange(n_max + 2, dtype=np.int64)
    return n * (n + 1) // 2


def bernstein_table(log_eta: np.ndarray, log_one_minus_eta: np.ndarray, n_max: int) -> np.ndarray:
    """``V[off[n] + k, g] = eta_g^k (1 - eta_g)^(n - k)`` for ``n <= n_max``, shape (NK, G).

    ``off`` is :func:`bernstein_offsets`; each value is one ``exp`` of a sum
    of logs (a value below the smallest double is 0, see the module notes).
    """
    off = bernstein_offsets(n_max)
    table = np.empty((int(off[-1]), log_eta.size))
    for n in range(n_max + 1):
        k = np.arange(n + 1, dtype=np.float64)[:, None]
        np.exp(k * log_eta + (n - k) * log_one_minus_eta, out=table[off[n] : off[n + 1]])
    return table


@numba.njit(cache=True, parallel=True, fastmath={"contract"})
def _bernstein_moments(log_x, log_1mx, mass, n_max, n_chunks):
    nk = (n_max + 1) * (n_max + 2) // 2
    parts = np.zeros((n_chunks, nk))
    size = (mass.size + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        out = parts[c]
        v = np.empty(n_max + 1)
        for g in range(c * size, min(mass.size, (c + 1) * size)):
            m = mass[g]
            if m == 0.0:
                continue
            x = np.exp(log_x[g])
            y = np.exp(log_1mx[g])
            v[0] = 1.0
            out[0] += m
            o = 0
            for n in range(1, n_max + 1):
                o += n
                # x^k (1 - x)^(n - k) from degree n - 1's: times (1 - x), the last times x.
                v[n] = v[n - 1] * x
                for k in range(n):
                    v[k] *= y
                for k in range(n + 1):
                    # Below 1e-300 a value is 0 (see the notes above), and no product
                    # runs on through subnormals.
                    t = v[k] if v[k] >= 1e-300 else 0.0
                    v[k] = t
                    out[o + k] += m * t
    total = np.zeros(nk)
    for c in range(n_chunks):  # in order: the sums do not depend on thread timing
        total += parts[c]
    return total


def bernstein_moments(log_x: np.ndarray, log_one_minus_x: np.ndarray, mass: np.ndarray, n_max: int):
    """``bernstein_table(log_x, log_one_minus_x, n_max) @ mass`` without forming the table.

    ``M[off[n] + k] = sum_g mass_g x_g^k (1 - x_g)^(n - k)``: each node's
    values by products of degree ``n - 1``'s (at most ``n`` roundings each,
    about as accurate as one ``exp`` of a sum of logs of that size), values
    below 1e-300 taken as 0; the nodes split between the threads. A fifth
    to a tenth of the table's time on 1,400 nodes and degree 64.
    """
    mass = np.ascontiguousarray(mass, dtype=np.float64)
    return _bernstein_moments(
        np.ascontiguousarray(log_x, dtype=np.float64),
        np.ascontiguousarray(log_one_minus_x, dtype=np.float64),
        mass,
        int(n_max),
        max(1, min(numba.get_num_threads(), mass.size)),
    )


@numba.njit(cache=True)
def _even_bounds(cum, n_chunks):
    """Bounds ``(n_chunks + 1,)`` cutting items ``0..N-1``, in order, into runs of about equal cost.

    ``cum`` is the items' cumulative cost. A ``prange`` over chunks hands each
    thread an equal share of the chunks, so chunks of equal cost keep the
    threads equally busy; chunks of equal length do not where the cost per
    item drifts along the items (count rows come roughly sorted by votes).
    """
    bounds = np.empty(n_chunks + 1, dtype=np.int64)
    bounds[0] = 0
    total = cum[-1] if cum.size else 0.0
    for c in range(1, n_chunks):
        bounds[c] = np.searchsorted(cum, total * c / n_chunks)
    bounds[n_chunks] = cum.size
    return bounds


@numba.njit(cache=True)
def _poly_bounds(rows, row_ptr, votes, n_chunks, per_entry, per_row):
    """:func:`_even_bounds` of polynomial rows, a row of ``n`` votes and ``e`` entries weighed.

    Its cost is about ``(n + 1)(n / 2 + per_entry e + 1) + per_row``:
    ``n^2 / 2`` for its coefficients, ``n + 1`` per entry for adding them
    into per-pair sums (``per_entry`` 1; 0 where they are not added), and
    what a row costs whatever its size (its log, its loops' set-up).
    """
    cum = np.empty(rows.size)
    t = 0.0
    for i in range(rows.size):
        r = rows[i]
        n = float(votes[r])
        t += (n + 1.0) * (0.5 * n + per_entry * (row_ptr[r + 1] - row_ptr[r]) + 1.0) + per_row
        cum[i] = t
    return _even_bounds(cum, n_chunks)


@numba.njit(cache=True, fastmath={"contract"})
def _bernstein_row(b, nb, r, row_ptr, entry_pair, entry_s, entry_f, ratio, log_a0):
    """Row ``r``'s Bernstein coefficients over the product of its ``a0``'s; ``(coefs, log a0s)``.

    A vote's factor ``a0 (1 - eta) + a1 eta`` is ``a0`` times ``(1 - eta) + (a1 / a0) eta``;
    ``ratio[side, p] = a1 / a0`` and ``log_a0[side, p]`` (side 0 a win, 1 a loss).
    Each vote is one forward pass from one buffer into the other.
    """
    b[0] = 1.0
    deg = 0
    log_scale = 0.0
    for e in range(row_ptr[r], row_ptr[r + 1]):
        p = entry_pair[e]
        for side in range(2):
            times = entry_s[e] if side == 0 else entry_f[e]
            if times == 0:
                continue
            q = ratio[side, p]
            log_scale += times * log_a0[side, p]
            for _ in range(times):
                nb[0] = b[0]
                for k in range(1, deg + 1):
                    nb[k] = b[k] + q * b[k - 1]
                nb[deg + 1] = q * b[deg]
                deg += 1
                b, nb = nb, b
    return b[: deg + 1], log_scale


@numba.njit(cache=True, parallel=True, fastmath={"contract"})
def _poly_pass(
    row_ptr, entry_pair, entry_s, entry_f, row_weight, rows, ratio, log_a0, moments, off,
    bounds, n_max,
):  # fmt: skip
    """The polynomial rows' log-marginals and per-(n, k) sums (see the notes above).

    ``ratio`` and ``log_a0`` describe the votes' factors (:func:`_bernstein_row`).
    Returns ``log_z`` (the log of ``Z`` relative to the moments' mass;
    ``-inf`` for a row left to the grid path) and ``A[nk] = sum_r w_r b_rk /
    Z_r``, ``S[p, nk]``, ``F[p, nk]`` the same times the row's wins / losses
    on pair ``p``. Chunk ``c`` takes rows ``bounds[c]:bounds[c + 1]``.
    """
    n_rows = rows.size
    n_chunks = bounds.size - 1
    n_pairs = ratio.shape[1]
    nk = moments.size
    log_z = np.empty(n_rows)
    a_c = np.zeros((n_chunks, nk))
    s_c = np.zeros((n_chunks, n_pairs, nk))
    f_c = np.zeros((n_chunks, n_pairs, nk))
    log_tiny = np.log(_TINY)
    for c in numba.prange(n_chunks):
        buf = np.empty(n_max + 2)
        nbuf = np.empty(n_max + 2)
        for i in range(bounds[c], bounds[c + 1]):
            r = rows[i]
            b, log_scale = _bernstein_row(
                buf, nbuf, r, row_ptr, entry_pair, entry_s, entry_f, ratio, log_a0
            )
            deg = b.size - 1
            o = off[deg]
            m = moments[o : o + deg + 1]
            z = 0.0
            for k in range(deg + 1):
                z += b[k] * m[k]
            if not z > 0.0 or np.log(z) + log_scale <= log_tiny:
                log_z[i] = -np.inf
                continue
            log_z[i] = np.log(z) + log_scale
            # The a0's cancel from the posterior weights b_k V_k / sum_k b_k M_k.
            _accumulate(
                b,
                0,
                deg + 1,
                row_weight[r] / z,
                a_c[c, o : o + deg + 1],
                s_c[c, :, o : o + deg + 1],
                f_c[c, :, o : o + deg + 1],
                r,
                row_ptr,
                entry_pair,
                entry_s,
                entry_f,
            )
    # The chunks summed in order, so the result does not depend on thread timing.
    a_all = np.zeros(nk)
    s_all = np.zeros((n_pairs, nk))
    f_all = np.zeros((n_pairs, nk))
    for c in range(n_chunks):
        a_all += a_c[c]
        s_all += s_c[c]
        f_all += f_c[c]
    return log_z, a_all, s_all, f_all


def _vote_factors(win, loss, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ratio, log a0)`` of :func:`_bernstein_row` from each pair's vote probabilities.

    ``win``, ``loss`` (shape (P, 2)) hold a vote's probability at ``name = 0``
    and ``name = 1``; a vote's factor ``a0 (1 - name) + a1 name`` is kept as
    ``a0`` and ``a1 / a0`` (side 0 a win, 1 a loss), so ``a0`` must be above 0.
    """
    win, loss = np.asarray(win, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    if not (np.all(win[:, 0] > 0) and np.all(loss[:, 0] > 0)):
        raise ValueError(f"the polynomials need votes with a probability above 0 at {name} = 0")
    a0 = np.stack([win[:, 0], loss[:, 0]])
    return np.stack([win[:, 1], loss[:, 1]]) / a0, np.log(a0)


def poly_estep_stats(counts, rows, win, loss, table, log_mass):
    """The E-step of rows ``rows`` of ``counts`` as polynomials in ``eta``.

    Parameters
    ----------
    counts : CountTable
    rows : ndarray of int64
        Rows of at most ``n_max`` votes each, ``table`` covering degree ``n_max``.
    win, loss : ndarray, shape (P, 2)
        Probability of a vote for / against each pair's stronger model at
        ``eta = 0`` and ``eta = 1`` (it is linear in ``eta`` between).
    table : ndarray, shape (NK, G)
        :func:`bernstein_table` at the nodes.
    log_mass : ndarray, shape (G,)
        Log prior mass of the nodes.

    Returns
    -------
    log_z : ndarray, shape (len(rows),)
        Row log-marginals, ``-inf`` for the rows left to the grid path (their
        marginal below 1e-250 of the largest node mass).
    weight : ndarray, shape (G,)
    s_stat, f_stat : ndarray, shape (P, G)
        Those rows' part of :func:`estep_stats`'s statistics, on every node.
    """
    n_nk, n_nodes = table.shape
    n_max = int(round((np.sqrt(8.0 * n_nk + 1.0) - 3.0) / 2.0))
    lmax = float(np.max(log_mass))
    if not np.isfinite(lmax):
        n_pairs = counts.n_pairs
        zeros = np.zeros((n_pairs, n_nodes))
        return np.full(len(rows), -np.inf), np.zeros(n_nodes), zeros, zeros.copy()
    mass = np.exp(log_mass - lmax)
    moments = table @ mass
    ratio, log_a0 = _vote_factors(win, loss, "eta")
    row_ptr, pair, s, f = count_arrays(counts)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    threads = numba.get_num_threads()
    n_chunks = max(1, min(threads * 4, len(rows), _PAIR_SUM_BUDGET // (2 * counts.n_pairs * n_nk)))
    log_z, a_k, s_k, f_k = _poly_pass(
        row_ptr,
        pair,
        s,
        f,
        np.ascontiguousarray(counts.row_weight, dtype=np.float64),
        rows,
        ratio,
        log_a0,
        moments,
        bernstein_offsets(n_max),
        # A row's fixed cost, 200 units, timed on 3.9M rows of 1..64 votes (28 pairs).
        _poly_bounds(rows, row_ptr, counts.votes_per_row(), n_chunks, 1.0, 200.0),
        n_max,
    )
    log_z += lmax
    with one_blas_thread():
        stats = np.vstack([a_k[None, :], s_k, f_k]) @ table
    stats *= mass
    n_pairs = counts.n_pairs
    return log_z, stats[0], stats[1 : n_pairs + 1], stats[n_pairs + 1 :]


# Rows whose coefficients stay fixed while the nodes move (the profile of L along the
# family with every pair's product E[eta] c_k held, in MAP-EM's curvature finish)
# keep them once, flat, row i's at ``start[i]:start[i + 1]``, and each evaluation
# contracts them with moment tables alone.


@numba.njit(cache=True, parallel=True, fastmath={"contract"})
def _bernstein_coefs(
    row_ptr, entry_pair, entry_s, entry_f, rows, ratio, log_a0, start, bounds, n_max
):  # fmt: skip
    n_rows = rows.size
    coefs = np.empty(start[-1])
    log_scale = np.empty(n_rows)
    for c in numba.prange(bounds.size - 1):
        buf = np.empty(n_max + 2)
        nbuf = np.empty(n_max + 2)
        for i in range(bounds[c], bounds[c + 1]):
            b, log_scale[i] = _bernstein_row(
                buf, nbuf, rows[i], row_ptr, entry_pair, entry_s, entry_f, ratio, log_a0
            )
            o = start[i]
            for k in range(b.size):
                coefs[o + k] = b[k]
    return coefs, log_scale


def bernstein_coefs(counts, rows, win, loss):
    """Bernstein coefficients of rows ``rows`` of ``counts``, flat: ``(coefs, start, log_scale)``.

    ``win``, ``loss`` (shape (P, 2)) are each pair's vote probabilities at
    ``x = 0`` and ``x = 1`` of the variable the rows are polynomials in (as
    :func:`poly_estep_stats` takes them). Row ``rows[i]`` of ``n`` votes has
    likelihood ``exp(log_scale[i]) sum_k coefs[start[i] + k] x^k (1 - x)^(n - k)``.
    """
    ratio, log_a0 = _vote_factors(win, loss, "x")
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    votes = counts.votes_per_row()[rows]
    start = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(votes + 1, out=start[1:])
    n_max = int(votes.max()) if rows.size else 0
    n_chunks = max(1, min(numba.get_num_threads() * 4, rows.size))
    row_ptr, pair, s, f = count_arrays(counts)
    coefs, log_scale = _bernstein_coefs(
        row_ptr,
        pair,
        s,
        f,
        rows,
        ratio,
        log_a0,
        start,
        _poly_bounds(rows, row_ptr, counts.votes_per_row(), n_chunks, 0.0, 0.0),
        n_max,
    )
    return coefs, start, log_scale


@numba.njit(cache=True, parallel=True, fastmath={"contract"})
def _bernstein_sums(coefs, start, weight, tables, off, n_chunks, n_outer):
    n_tab = tables.shape[0]
    n_out = n_tab + n_outer * n_outer
    parts = np.zeros((n_chunks, n_out))
    failed = np.zeros(n_chunks, dtype=np.int64)
    # A row costs its coefficients and a log: chunks of about equal cost.
    cum = np.empty(start.size - 1)
    for i in range(cum.size):
        cum[i] = start[i + 1] + 8.0 * (i + 1)
    bounds = _even_bounds(cum, n_chunks)
    for c in numba.prange(n_chunks):
        acc = np.zeros(n_out)
        ratio = np.empty(n_tab)
        for i in range(bounds[c], bounds[c + 1]):
            lo, hi = start[i], start[i + 1]
            o = off[hi - lo - 1]
            z = 0.0
            for k in range(hi - lo):
                z += coefs[lo + k] * tables[0, o + k]
            if not z > _TINY:
                failed[c] += 1
                continue
            acc[0] += weight[i] * np.log(z)
            for j in range(1, n_tab):
                t = 0.0
                for k in range(hi - lo):
                    t += coefs[lo + k] * tables[j, o + k]
                ratio[j] = t / z
                acc[j] += weight[i] * ratio[j]
            for a in range(n_outer):
                for b in range(n_outer):
                    acc[n_tab + a * n_outer + b] += weight[i] * ratio[1 + a] * ratio[1 + b]
        parts[c] = acc
    out = np.zeros(n_out)
    for c in range(n_chunks):  # in order: the sums do not depend on thread timing
        out += parts[c]
    return out, failed.sum()


def bernstein_sums(coefs, start, weight, tables, outer: int = 0):
    """``sum_i w_i log Z_i`` and ``sum_i w_i Z_i^(j) / Z_i`` of :func:`bernstein_coefs`' rows.

    ``tables`` (shape (J, NK), flattened ``(n, k)`` as :func:`bernstein_offsets`)
    holds the moments ``M[n, k]`` first, so that ``Z_i = sum_k b_ik M[n_i, k]``
    (the rows' ``log_scale`` not included), then any other tables ``j``
    contracted the same way (derivatives of the moments, for instance).
    With ``outer = q``, the J sums are followed by the q x q sums
    ``sum_i w_i (Z_i^(1+a) / Z_i) (Z_i^(1+b) / Z_i)``, row-major (what a
    Hessian of ``sum_i w_i log Z_i`` needs beside the second derivatives).
    Returns the sums and how many rows have ``Z`` at or below 1e-250
    (left out of the sums: the caller must not trust sums with such rows).
    """
    tables = np.ascontiguousarray(np.atleast_2d(tables), dtype=np.float64)
    n_nk = tables.shape[1]
    n_max = int(round((np.sqrt(8.0 * n_nk + 1.0) - 3.0) / 2.0))
    n_rows = start.size - 1
    if n_rows and int(np.max(np.diff(start))) - 1 > n_max:
        raise ValueError(f"the tables cover degree {n_max}, the rows reach a higher one")
    if not 0 <= outer < tables.shape[0]:
        raise ValueError(f"outer={outer}: at most {tables.shape[0] - 1} tables follow the moments")
    n_chunks = max(1, min(numba.get_num_threads() * 4, n_rows))
    return _bernstein_sums(
        coefs,
        np.ascontiguousarray(start, dtype=np.int64),
        np.ascontiguousarray(weight, dtype=np.float64),
        tables,
        bernstein_offsets(n_max),
        n_chunks,
        int(outer),
    )


# -- per-row conditional summaries on the grid (NUTS post-processing) ----------------
#
# The same numbers as attnmodel.posterior.conditional.GridCells built on the E-step's
# posterior (log density linear in u between nodes, floored 700 below the
# row's peak), computed only over the cells next to nodes holding more than
# 1e-20 of the row's largest node mass: the cells left out carry less than
# 1e-17 of the row's mass together, below rounding.

#: Nodes below this share of a row's largest node mass are left out of its cells.
_CELL_CUT = 1e-20
#: exp(-700): GridCells floors log densities 700 below a row's peak.
_E700 = np.exp(-700.0)


@numba.njit(cache=True)
def _exprel_neg(t):
    """``(1 - exp(-t)) / t`` for ``t >= 0`` (1 at 0), as scipy's ``exprel(-t)``."""
    if t == 0.0:
        return 1.0
    return -np.expm1(-t) / t


@numba.njit(cache=True)
def _within_cell(unif, slope):
    if abs(slope) < 1e-9:
        return unif
    x = np.log1p(unif * np.expm1(slope)) / slope
    return min(max(x, 0.0), 1.0)


@numba.njit(cache=True)
def _dot(x, y):
    acc = 0.0
    for g in range(x.size):
        acc += x[g] * y[g]
    return acc


@numba.njit(cache=True)
def _sub_node_mass(
    r, row_ptr, entry_pair, entry_s, entry_f, weight, log_prior, log_g, log_1mg, log_z
):
    """``sum_k weight_k * p_r(u_k)``: the row's normalised posterior density at extra nodes."""
    acc = 0.0
    for k in range(weight.size):
        a = log_prior[k] - log_z
        for e in range(row_ptr[r], row_ptr[r + 1]):
            p = entry_pair[e]
            # Zero counts stay out of the sum (0 * log 0).
            if entry_s[e] > 0:
                a += entry_s[e] * log_g[p, k]
            if entry_f[e] > 0:
                a += entry_f[e] * log_1mg[p, k]
        acc += weight[k] * np.exp(a)
    return acc


@numba.njit(cache=True)
def _pick_cell(cum, lo, hi, unif):
    """First cell in ``lo..hi-1`` whose cumulative share exceeds ``unif`` (the last if none)."""
    a = lo
    b = hi - 1
    while a < b:
        mid = (a + b) // 2
        if cum[mid] > unif:
            b = mid
        else:
            a = mid + 1
    return a


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def _row_cells(x, inv_weight, width, cum, slope, dens, log_ratio):
    """Cells of one row from its node weights ``x``; returns (first cell, end cell).

    The cells' masses are those of :class:`attnmodel.posterior.conditional.GridCells`
    (log density linear between nodes, floored 700 below the row's peak)
    relative to the peak density, computed from density ratios: a cell whose
    log density falls by ``t = -log r`` from its upper end has mass
    ``width * upper density * (1 - r) / t``, in which neither a small nor a
    large ``t`` loses digits (``1 - r`` is exact for ``r >= 1/2``). The
    ratios' logarithms are taken in one vector loop (:func:`batch_log`);
    ``dens`` and ``log_ratio`` are scratch arrays of the grid's size.
    """
    n_nodes = x.size
    big = 0.0
    for g in range(n_nodes):
        if x[g] > big:
            big = x[g]
    cut = big * _CELL_CUT
    lo = 0
    while x[lo] <= cut:
        lo += 1
    hi = n_nodes
    while x[hi - 1] <= cut:
        hi -= 1
    c0 = max(lo - 1, 0)
    c1 = min(hi, n_nodes - 1)  # cells c0..c1-1
    m = c1 - c0
    # Slices from index 0 compile without negative-index checks, and so vectorise.
    ds = dens[c0 : c1 + 1]
    xs = x[c0 : c1 + 1]
    iw = inv_weight[c0 : c1 + 1]
    for g in range(m + 1):
        ds[g] = xs[g] * iw[g]
    dpeak = 0.0
    for g in range(m + 1):
        if ds[g] > dpeak:
            dpeak = ds[g]
    floor = dpeak * _E700
    inv_peak = 1.0 / dpeak
    # Each cell's ratio (lower over upper density), then t = -log r and
    # (1 - r) / t (1 where r = 1), all in vector loops; cells with an end
    # below the floor are done apart below.
    ex = slope[c0:c1]
    lt = log_ratio[c0:c1]
    for i in range(m):
        ex[i] = min(ds[i], ds[i + 1]) / max(ds[i], ds[i + 1])
    batch_log(ex, lt)
    for i in range(m):
        t = 0.0 - lt[i]
        q = (1.0 - ex[i]) / t
        lt[i] = t
        ex[i] = q if t > 0.0 else 1.0
    acc = 0.0
    for i in range(m):
        da = ds[i]
        db = ds[i + 1]
        hi_d = max(da, db)
        lo_d = min(da, db)
        if lo_d >= floor:
            e = ex[i]
            t = lt[i]
            w = hi_d * inv_peak
        else:
            # One end below the floor: both ends in logs relative to the peak, floored.
            a = max(np.log(hi_d * inv_peak), -700.0) if hi_d > 0.0 else -700.0
            t = a + 700.0
            e = _exprel_neg(t)
            w = np.exp(a)
        ex[i] = t if db >= da else -t
        acc += width[c0 + i] * w * e
        cum[c0 + i] = acc
    inv = 1.0 / acc
    for i in range(c0, c1):
        cum[i] *= inv
    cum[c1 - 1] = 1.0
    return c0, c1


@numba.njit(cache=True, parallel=True)
def grid_summaries(
    row_ptr,
    entry_pair,
    entry_s,
    entry_f,
    log_g,
    log_1mg,
    log_mass,
    row_key,
    u,
    log_weight,
    eta,
    step,
    sub_weight,
    sub_log_prior,
    sub_log_g,
    sub_log_1mg,
    unif_pick,
    unif_within,
    user_ptr,
    row_users,
    unif_user_pick,
    unif_user_within,
    n_chunks,
):
    """Per-row conditional summaries at one global draw, on the logit grid.

    Returns ``log_z``, ``mean``, ``second``, ``log_above`` and ``log_below``
    (the logs of the posterior mass on either side of the cut: each node
    weighted as :func:`attnmodel.model.grid.side_weights` weights it, plus the
    tail rule's remainder; ``-inf`` for a side without mass),
    ``tail`` (``P(u >= u_star)`` by the
    rule of :func:`attnmodel.model.grid.tail_rule`: ``step`` at the nodes,
    ``sub_weight`` at its extra nodes, where the prior's log density is
    ``sub_log_prior`` and the pairs' vote log probabilities ``sub_log_g`` /
    ``sub_log_1mg``),
    ``log_mass`` (shape (D, G)) and ``sub_log_prior`` (shape (D, K)) hold one
    row per key, row ``r`` taking key ``row_key[r]`` (see :func:`_prepare`),
    ``eta_row`` (one draw per row from ``unif_pick`` / ``unif_within``) and
    ``eta_user`` (one draw per user ``j`` from the user uniforms, the users of
    row ``r`` being ``row_users[user_ptr[r]:user_ptr[r + 1]]``, as
    :func:`attnmodel.data.counts.group_by_row` gives them; empty when the
    uniforms are).
    """
    n_rows = row_ptr.size - 1
    n_nodes = log_mass.shape[1]
    width = u[1:] - u[:-1]
    inv_weight = np.exp(-log_weight)
    log_z = np.empty(n_rows)
    mean = np.empty(n_rows)
    second = np.empty(n_rows)
    tail = np.empty(n_rows)
    log_above = np.empty(n_rows)
    log_below = np.empty(n_rows)
    eta_row = np.empty(n_rows)
    # Each row's users are drawn while the row's cells are at hand.
    eta_user = np.empty(unif_user_pick.size)
    prep = _prepare(entry_pair, entry_s, entry_f, log_g, log_1mg, log_mass, TABLE_MAX_COUNT, n_rows)
    size = (n_rows + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        x = np.empty(n_nodes)
        cum = np.empty(n_nodes)
        slope = np.empty(n_nodes)
        dens = np.empty(n_nodes)
        log_ratio = np.empty(n_nodes)
        for r in range(c * size, min(n_rows, (c + 1) * size)):
            total, log_z[r], lo, hi = _row_weights(
                x, r, row_ptr, entry_pair, entry_s, entry_f, log_g, log_1mg, log_mass, row_key, prep
            )
            x[:lo] = 0.0
            x[hi:] = 0.0
            if total == 0.0:
                # No node explains the row: nothing to summarise.
                mean[r] = second[r] = tail[r] = eta_row[r] = np.nan
                log_above[r] = log_below[r] = np.nan
                for i in range(user_ptr[r], user_ptr[r + 1]):
                    eta_user[row_users[i]] = np.nan
                continue
            c0, c1 = _row_cells(x, inv_weight, width, cum, slope, dens, log_ratio)
            m1 = 0.0
            m2 = 0.0
            for g in range(c0, c1 + 1):
                m1 += x[g] * eta[g]
                m2 += x[g] * eta[g] * eta[g]
            mean[r] = m1 / total
            second[r] = m2 / total
            # Each side summed over its own nodes: a small side keeps its digits.
            up = 0.0
            down = 0.0
            for g in range(lo, hi):
                w = step[g]
                if w > 1.0 - SIDE_ROUND:
                    up += x[g]
                elif w < SIDE_ROUND:
                    down += x[g]
                else:
                    up += x[g] * w
                    down += x[g] * (1.0 - w)
            rest = _sub_node_mass(
                r, row_ptr, entry_pair, entry_s, entry_f,
                sub_weight, sub_log_prior[row_key[r]], sub_log_g, sub_log_1mg, log_z[r],
            )  # fmt: skip
            t = _dot(x, step) / total + rest
            tail[r] = min(max(t, 0.0), 1.0)
            # The tail rule's remainder moves mass across the cut, unless it would
            # empty a side (as attnmodel.posterior.conditional.side_log_masses).
            up /= total
            down /= total
            if up + rest > 0.0:
                up += rest
            if down - rest > 0.0:
                down -= rest
            log_above[r] = np.log(up) if up > 0.0 else -np.inf
            log_below[r] = np.log(down) if down > 0.0 else -np.inf
            k = _pick_cell(cum, c0, c1, unif_pick[r])
            eta_row[r] = _expit(u[k] + _within_cell(unif_within[r], slope[k]) * width[k])
            for i in range(user_ptr[r], user_ptr[r + 1]):
                j = row_users[i]
                k = _pick_cell(cum, c0, c1, unif_user_pick[j])
                eta_user[j] = _expit(u[k] + _within_cell(unif_user_within[j], slope[k]) * width[k])
    return log_z, mean, second, log_above, log_below, tail, eta_row, eta_user


#: :func:`grid_summaries` in one thread (``prange`` runs as ``range``), for small
#: tables, where waking the thread pool at every draw costs more than it saves;
#: each row's results do not depend on the chunking, so both give the same values.
#: It releases the GIL, so that several draws' passes can run in Python threads.
grid_summaries_serial = numba.njit(cache=True, nogil=True)(
    _serial_clone(grid_summaries.py_func, "grid_summaries_serial")
)


@numba.njit(cache=True)
def _expit(v):
    if v >= 0:
        return 1.0 / (1.0 + np.exp(-v))
    e = np.exp(v)
    return e / (1.0 + e)


# -- the marginal likelihood and its gradient in mu, for NUTS ---------------------------


#: :func:`marginal_votes_mu` serves tables of at least this many (pairs x nodes)
#: cells: one log density + gradient of the NUTS model on 78 pairs x 1,475
#: nodes took 3.2 ms fused against 8.7 ms through the E-step Op and the
#: graph's logs; on 15 pairs x 371 nodes (MT-Bench) 0.59 ms against 0.35 ms.
FUSED_MIN_CELLS = 50_000


def fused_pays(counts, n_nodes: int) -> bool:
    """Whether the NUTS model takes :func:`marginal_votes_mu` for ``counts`` on ``n_nodes``.

    Yes for at least :data:`FUSED_MIN_CELLS` (pairs x nodes) cells, where the
    graph's (pairs x nodes) logs and statistics cost the most, unless the
    E-step would build power tables (the rule of :func:`_table_plan` with every
    row counted; with strides a level holds fewer rows and nodes, so tables
    refused here are refused on every level), which the fused kernel lacks.
    """
    if counts.n_pairs * n_nodes < FUSED_MIN_CELLS:
        return False
    _, pair, s, f = count_arrays(counts)
    kmax = _table_plan(pair, s, f, counts.n_pairs, n_nodes, TABLE_MAX_COUNT, counts.n_rows)
    return not bool(np.any(kmax >= 0))


@numba.njit(cache=True)
def _support_mu(r, row_ptr, entry_pair, entry_s, entry_f, logs, lm, side_max):
    """The sub-grid nodes ``lo..hi-1`` of row ``r``'s support, as :func:`_row_support` finds them.

    The same bisections (peak of the concave likelihood, then either edge
    against the running maxima ``side_max`` of the log mass ``lm``), with the
    logs formed only at the nodes visited: the rows of a level visit many of
    the same nodes, and none forms the logs of nodes a heavy row does not
    reach. ``logs`` is ``(mu, eta, half, idx, done, lg, l1, dg, d1, ...)``,
    the arguments of :func:`_node_logs_mu` after the node.
    """
    done = logs[4]
    lg_t = logs[5].T
    l1_t = logs[6].T

    def at(j):
        # Handing the arrays on to form a node costs more than the row's
        # sum: only for nodes not yet formed.
        if not done[j]:
            _node_logs_mu(j, *logs)
        return _row_loglik_at(j, r, row_ptr, entry_pair, entry_s, entry_f, lg_t, l1_t)

    n = lm.size
    a = 0
    b = n - 1
    while a < b:
        mid = (a + b) // 2
        if at(mid + 1) > at(mid):
            a = mid + 1
        else:
            b = mid
    top = a
    cut = at(top) + lm[top] - _SUPPORT_CUT
    a = 0
    b = top
    while a < b:
        mid = (a + b) // 2
        if at(mid) + side_max[0, mid] >= cut:
            b = mid
        else:
            a = mid + 1
    lo = a
    a = top
    b = n - 1
    while a < b:
        mid = (a + b + 1) // 2
        if at(mid) + side_max[1, mid] >= cut:
            a = mid
        else:
            b = mid - 1
    return lo, a + 1


# -- logarithms in loops that vectorise ---------------------------------------------
#
# Numba's ``np.log`` calls the C library once a value (about 4 ns here), which
# the compiler cannot vectorise; in the fused kernel on 78 pairs it took about a
# fifth of the time. The same algorithm written out (the reduction and the
# polynomial of fdlibm's ``__ieee754_log``, an error below 1 ulp) compiles to
# vector instructions.

_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_DBL_MIN = 2.2250738585072014e-308
_DBL_MAX = 1.7976931348623157e308


# No contraction into fused multiply-adds: vector and scalar iterations then
# round alike, so a value does not depend on where in an array it falls.
# ``fastmath=False`` is stated, not left to the default: Numba lets a caller's
# fast-math flags pass to a callee that sets none (PyTensor's Numba backend
# compiles with them), and its cache would then keep that callee's code.
@numba.njit(cache=True, error_model="numpy", fastmath=False)
def batch_log(x, out):
    """``out[:m] = log(x)`` with ``m = x.size``, in loops that vectorise.

    ``x`` and ``out`` must not overlap. A positive normal ``x = 2^k m`` with ``m`` in ``[sqrt(2)/2,
    sqrt(2))`` gives ``k log 2 + log m``, ``log m`` from ``s = (m - 1) / (m +
    1)`` by fdlibm's polynomial; every other value (zero, negative, subnormal,
    infinite, NaN) is handed to the C library's ``log``.
    """
    m = x.size
    xb = x.view(np.int64)
    for i in range(m):
        hx = xb[i]
        # Adding 0x95f64 to the high word's mantissa carries into bit 20 exactly
        # when m >= sqrt(2): then m is halved and k raised by one.
        hm = (hx >> 32) & 0xFFFFF
        t = (hm + 0x95F64) & 0x100000
        f = _as_double((hx & 0x000FFFFFFFFFFFFF) | ((0x3FF00000 ^ t) << 32)) - 1.0
        k = np.float64(((hx >> 52) - 1023) + (t >> 20))
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
        hfsq = 0.5 * f * f
        # fdlibm's two forms, chosen (without a branch) by the mantissa's high
        # bits: the first where f is near its largest.
        wide = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)
        near = k * _LN2_HI - ((s * (f - r) - k * _LN2_LO) - f)
        out[i] = wide if ((hm - 0x6147A) | (0x6B851 - hm)) > 0 else near
    for i in range(m):
        if not (_DBL_MIN <= x[i] <= _DBL_MAX):
            out[i] = np.log(x[i])


@numba.njit(cache=True)
def mu_log_scratch(n_pairs):
    """Scratch of :func:`_node_logs_mu`: one node's probabilities and their logs."""
    return np.empty(4 * n_pairs)


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def _node_logs_mu(j, mu, eta, half, idx, done, lg, l1, dg, d1, prev_slot, prev_done, prev, scratch):
    """Fill ``log g``, ``log(1 - g)`` and their derivatives in ``mu`` at sub-grid node ``j``.

    Arrays of shape (P, idx.size) on the sub-grid ``idx``; a node already
    ``done`` is left as it is. ``g = half + eta mu`` and ``1 - g = half + eta
    (1 - mu)``, as :func:`attnmodel.model.grid.pair_log_probs` forms them,
    their logs by :func:`batch_log` (``scratch``: :func:`mu_log_scratch`). A
    node the previous (coarser) level formed is copied from there: ``prev``
    holds that level's four arrays stacked (4, P, n'), ``prev_slot`` each grid
    node's column in them (-1 if none), ``prev_done`` which were formed.
    """
    if done[j]:
        return
    done[j] = True
    g = idx[j]
    k = prev_slot[g]
    n_pairs = mu.size
    if k >= 0 and prev_done[k]:
        for p in range(n_pairs):
            lg[p, j] = prev[0, p, k]
            l1[p, j] = prev[1, p, k]
            dg[p, j] = prev[2, p, k]
            d1[p, j] = prev[3, p, k]
        return
    vals = scratch[: 2 * n_pairs]
    logs = scratch[2 * n_pairs : 4 * n_pairs]
    for p in range(n_pairs):
        vals[p] = half[g] + eta[g] * mu[p]
        vals[n_pairs + p] = half[g] + eta[g] * (1.0 - mu[p])
    batch_log(vals, logs)
    for p in range(n_pairs):
        lg[p, j] = logs[p]
        l1[p, j] = logs[n_pairs + p]
        dg[p, j] = eta[g] / vals[p]
        d1[p, j] = -eta[g] / vals[n_pairs + p]


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _dot_both(x, y, z):
    """``(x . y, x . z)`` in one pass, summed in whatever order vectorises."""
    a = 0.0
    b = 0.0
    for g in range(x.size):
        a += x[g] * y[g]
        b += x[g] * z[g]
    return a, b


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def _form_range(a, b, mu, eta_l, half_l, lg, l1, dg, d1):
    """The four tables of :func:`_node_logs_mu` on sub-grid nodes ``a..b-1``.

    Pair by pair, so that every loop runs over contiguous nodes and
    vectorises; ``eta_l`` and ``half_l`` are the sub-grid's, and the
    arithmetic is :func:`_node_logs_mu`'s, so a node has the same values
    whichever of the two formed it.
    """
    m = b - a
    e = eta_l[a:b]
    h = half_l[a:b]
    for p in range(mu.size):
        wg = lg[p, a:b]
        wl = l1[p, a:b]
        vg = dg[p, a:b]
        vl = d1[p, a:b]
        m_p = mu[p]
        q_p = 1.0 - m_p
        # The probabilities go through the derivatives' rows, then their logs
        # into the log rows (batch_log needs the two apart).
        for i in range(m):
            vg[i] = h[i] + e[i] * m_p
            vl[i] = h[i] + e[i] * q_p
        batch_log(vg, wg)
        batch_log(vl, wl)
        for i in range(m):
            vg[i] = e[i] / vg[i]
            vl[i] = -e[i] / vl[i]


@numba.njit(cache=True)
def _form_spans(lo_r, hi_r, idx, mu, eta, half, lg, l1, dg, d1):
    """Form the tables of :func:`_form_range` on the union of the rows' spans ``lo_r..hi_r``.

    Every node a row sums over is formed here, whatever the support search
    formed before it (the same values). Spans closer than 8 nodes are formed
    as one range.
    """
    n = idx.size
    eta_l = np.empty(n)
    half_l = np.empty(n)
    for j in range(n):
        eta_l[j] = eta[idx[j]]
        half_l[j] = half[idx[j]]
    order = np.argsort(lo_r)
    a = -1
    b = -1
    for k in range(order.size):
        lo = lo_r[order[k]]
        hi = hi_r[order[k]]
        if lo >= hi:
            continue
        if a >= 0 and lo <= b + 8:
            b = max(b, hi)
            continue
        if a >= 0:
            _form_range(a, b, mu, eta_l, half_l, lg, l1, dg, d1)
        a = lo
        b = hi
    if a >= 0:
        _form_range(a, b, mu, eta_l, half_l, lg, l1, dg, d1)


#: Stride levels of at most this many nodes are formed whole before
#: :func:`marginal_votes_mu` searches their rows' supports (on 78 pairs the search
#: visits a third to a half of such a level's nodes, one at a time).
WHOLE_LEVEL_NODES = 512


@numba.njit(cache=True)
def weighted_total(row_weight, log_z):
    """``sum_r weight_r log Z_r``; a row nobody has (weight 0) adds nothing, even at ``-inf``."""
    total = 0.0
    for r in range(log_z.size):
        if row_weight[r] != 0.0:
            total += row_weight[r] * log_z[r]
    return total


@numba.njit(cache=True)
def mu_work_size(n_pairs, n_nodes):
    """Doubles of work space :func:`marginal_votes_mu` uses: two (4, P, G) log tables.

    A level's tables and the previous (coarser) level's, from which it copies,
    take turns in the two halves.
    """
    return 8 * n_pairs * n_nodes


@numba.njit(cache=True)
def marginal_votes_mu(
    row_ptr, entry_pair, entry_s, entry_f, row_weight, mu, eta, half, log_mass, spacing, work
):
    """``(total, log_z, W, d total / d mu)`` of the count rows on a logit grid, in one thread.

    The log-likelihood ``total = sum_r weight_r log Z_r`` of the rows with
    ``g_pg = half_g + eta_g mu_p``, and its gradient: ``W`` (G,) in the log
    node masses and ``sum_e s_e dg / g - f_e dg / (1 - g)`` averaged over each
    row's posterior in ``mu`` (P,) (Fisher's identity). The rows, strides
    and supports are those of :func:`estep_serial` (log space, no power
    tables: see :func:`fused_pays`), so the numbers are the same up to
    rounding; what differs is that ``log g`` and ``log(1 - g)`` are formed
    here (by :func:`batch_log`), on a small level's every node and on a large
    one's only where its rows reach (:data:`WHOLE_LEVEL_NODES`), and that the
    gradient in ``mu`` is summed per entry instead of returned as the
    (P, G) statistics ``S`` and ``F``.

    ``work`` holds the log tables (:func:`mu_work_size` doubles; a smaller
    one is replaced by a fresh array): the caller keeps it from call to call,
    since tables of megabytes allocated and freed at every gradient can make
    the C allocator hand their pages back to the system and fault them in
    again at the next call. Nothing returned refers to it.
    """
    n_rows = row_ptr.size - 1
    n_nodes = log_mass.size
    n_pairs = mu.size
    log_z = np.full(n_rows, -np.inf)
    w_all = np.zeros(n_nodes)
    grad = np.zeros(n_pairs)
    mult = stride_multipliers(n_nodes, spacing)
    top = mult.shape[0] - 2
    level = stride_start_levels(row_ptr, entry_s, entry_f, spacing, top)
    level = prior_start_levels(
        level, log_mass.reshape((1, n_nodes)), np.zeros(n_rows, dtype=np.int64), mult
    )
    x = np.empty(n_nodes)
    scratch = mu_log_scratch(n_pairs)
    half_work = mu_work_size(n_pairs, n_nodes) // 2
    if work.size < 2 * half_work:
        work = np.empty(2 * half_work)
    turn = 0
    # The logs of the last level done, for the next (finer) one, which holds its nodes.
    prev = work[half_work : half_work + 4 * n_pairs].reshape((4, n_pairs, 1))
    prev_done = np.zeros(1, dtype=np.bool_)
    prev_slot = np.full(n_nodes, -1, dtype=np.int64)
    for lv in range(top, -1, -1):
        rows = np.nonzero(level == lv)[0]
        if rows.size == 0:
            continue
        idx = np.nonzero(mult[lv] > 0.0)[0]
        n = idx.size
        ratio = np.empty(n)
        lm = np.empty(n)
        for j in range(n):
            ratio[j] = mult[lv + 1, idx[j]] / mult[lv, idx[j]]
            lm[j] = log_mass[idx[j]] + np.log(mult[lv, idx[j]])
        lmax = -np.inf
        for j in range(n):
            lmax = max(lmax, lm[j])
        searched = n >= SUPPORT_MIN_NODES and lmax > -np.inf
        side_max = np.empty((2, n))
        if searched:
            side_max[0, 0] = lm[0]
            for j in range(1, n):
                side_max[0, j] = max(side_max[0, j - 1], lm[j])
            side_max[1, n - 1] = lm[n - 1]
            for j in range(n - 2, -1, -1):
                side_max[1, j] = max(side_max[1, j + 1], lm[j])
        # The other half than the previous level's tables, which this one reads.
        start = turn * half_work
        tabs = work[start : start + 4 * n_pairs * n].reshape((4, n_pairs, n))
        turn = 1 - turn
        lg = tabs[0]
        l1 = tabs[1]
        dg = tabs[2]
        d1 = tabs[3]
        done = np.zeros(n, dtype=np.bool_)
        logs = (mu, eta, half, idx, done, lg, l1, dg, d1, prev_slot, prev_done, prev, scratch)
        lo_r = np.zeros(rows.size, dtype=np.int64)
        hi_r = np.full(rows.size, n, dtype=np.int64)
        # A small level is formed whole before the support search, which then
        # reads its nodes; a large one node by node as the search visits them,
        # then on the rows' spans.
        whole = lmax > -np.inf and n <= WHOLE_LEVEL_NODES
        if whole:
            _form_spans(lo_r[:1], hi_r[:1], idx, mu, eta, half, lg, l1, dg, d1)
            done[:] = True
        mode = 0
        if searched:
            # The light rows' spans start from the prior's mode: its logs, once a level.
            mode = _prior_mode(side_max)
            _node_logs_mu(mode, *logs)
        for i in range(rows.size):
            r = rows[i]
            if searched and _row_votes(r, row_ptr, entry_s, entry_f) >= SUPPORT_MIN_VOTES:
                lo_r[i], hi_r[i] = _support_mu(
                    r, row_ptr, entry_pair, entry_s, entry_f, logs, lm, side_max
                )
            elif searched:
                at_mode = _row_loglik_at(mode, r, row_ptr, entry_pair, entry_s, entry_f, lg.T, l1.T)
                lo_r[i], hi_r[i] = _prior_span(side_max, mode, at_mode + lm[mode] - _SUPPORT_CUT)
        if lmax > -np.inf and not whole:
            _form_spans(lo_r, hi_r, idx, mu, eta, half, lg, l1, dg, d1)
        w_s = np.zeros(n)
        coarse = np.zeros(rows.size, dtype=np.bool_)
        for i in range(rows.size):
            r = rows[i]
            lo = lo_r[i]
            hi = hi_r[i]
            if lmax == -np.inf:
                continue
            total, peak = _row_by_logs(
                x, r, row_ptr, entry_pair, entry_s, entry_f, lg, l1, lm, lo, hi
            )
            if peak == -np.inf:
                # No sub-grid node explains the row: perhaps a finer grid's does.
                coarse[i] = lv > 0
                continue
            # The nodes _row_by_logs set to zero add nothing below: skip them.
            while x[lo] == 0.0:
                lo += 1
            while x[hi - 1] == 0.0:
                hi -= 1
            xs = x[lo:hi]
            if lv > 0 and abs(total - _dot(xs, ratio[lo:hi])) > STRIDE_TOL * total:
                coarse[i] = True
                continue
            log_z[r] = np.log(total) + peak
            scale = row_weight[r] / total
            ws = w_s[lo:hi]
            for k in range(xs.size):
                ws[k] += scale * xs[k]
            for e in range(row_ptr[r], row_ptr[r + 1]):
                p = entry_pair[e]
                win, loss = _dot_both(xs, dg[p, lo:hi], d1[p, lo:hi])
                grad[p] += scale * (entry_s[e] * win + entry_f[e] * loss)
        for i in range(rows.size):
            if coarse[i]:
                level[rows[i]] = lv - 1
        for j in range(n):
            w_all[idx[j]] += w_s[j]
        prev_slot[:] = -1
        for j in range(n):
            prev_slot[idx[j]] = j
        prev = tabs
        prev_done = done
    return weighted_total(row_weight, log_z), log_z, w_all, grad
