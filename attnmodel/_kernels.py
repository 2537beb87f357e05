"""Compiled E-step: one pass over the distinct count rows, no (R, G) temporaries.

For each row ``r`` it forms ``a_g = log_mass_g + sum_e s_e log g_pg + f_e log(1 - g_pg)``,
normalises it with a log-sum-exp, and adds the row's posterior (times the
number of users sharing the row) into the sufficient statistics ``W``, ``S``
and ``F`` of the M-step. Rows are split into chunks that run in parallel, each
chunk accumulating into its own slice, so the result does not depend on
thread timing.

The numpy implementation in :mod:`attnmodel.em` computes the same numbers
(tests compare them); this one is used when the table is large enough for
its speed to matter.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["estep_stats"]


@numba.njit(cache=True, parallel=True, fastmath=False)
def _estep_stats(
    row_ptr, entry_pair, entry_s, entry_f, row_weight, log_g, log_1mg, log_mass, n_chunks, post
):
    n_rows = row_ptr.size - 1
    keep_post = post.shape[0] == n_rows
    n_nodes = log_mass.size
    n_pairs = log_g.shape[0]
    log_z = np.empty(n_rows)
    w_c = np.zeros((n_chunks, n_nodes))
    s_c = np.zeros((n_chunks, n_pairs, n_nodes))
    f_c = np.zeros((n_chunks, n_pairs, n_nodes))
    size = (n_rows + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        a = np.empty(n_nodes)
        for r in range(c * size, min(n_rows, (c + 1) * size)):
            for g in range(n_nodes):
                a[g] = log_mass[g]
            for e in range(row_ptr[r], row_ptr[r + 1]):
                p = entry_pair[e]
                s = entry_s[e]
                f = entry_f[e]
                # Skipping zero counts keeps 0 * log(0) out of the sum.
                if s > 0:
                    for g in range(n_nodes):
                        a[g] += s * log_g[p, g]
                if f > 0:
                    for g in range(n_nodes):
                        a[g] += f * log_1mg[p, g]
            peak = -np.inf
            for g in range(n_nodes):
                if a[g] > peak:
                    peak = a[g]
            if peak == -np.inf:
                log_z[r] = -np.inf
                continue
            total = 0.0
            lo = n_nodes
            hi = 0
            for g in range(n_nodes):
                d = a[g] - peak
                # Nodes below exp(-40) of the peak add under 4e-18 each to a sum
                # of at least 1, i.e. less than rounding; skipping them is the speed.
                if d > -40.0:
                    a[g] = np.exp(d)
                    total += a[g]
                    if g < lo:
                        lo = g
                    hi = g + 1
                else:
                    a[g] = 0.0
            log_z[r] = np.log(total) + peak
            scale = row_weight[r] / total
            inv = 1.0 / total
            if keep_post:
                for g in range(n_nodes):
                    post[r, g] = a[g] * inv
            for g in range(lo, hi):
                a[g] *= scale
                w_c[c, g] += a[g]
            for e in range(row_ptr[r], row_ptr[r + 1]):
                p = entry_pair[e]
                s = entry_s[e]
                f = entry_f[e]
                for g in range(lo, hi):
                    s_c[c, p, g] += s * a[g]
                    f_c[c, p, g] += f * a[g]
    return log_z, w_c.sum(axis=0), s_c.sum(axis=0), f_c.sum(axis=0)


def estep_stats(
    counts, log_g: np.ndarray, log_1mg: np.ndarray, log_mass: np.ndarray, posterior: bool = False
):
    """Row log-marginals and M-step statistics in one compiled pass.

    Parameters
    ----------
    counts : CountTable
    log_g, log_1mg : ndarray, shape (P, G)
    log_mass : ndarray, shape (G,)

    Returns
    -------
    log_z : ndarray, shape (R,)
    weight : ndarray, shape (G,)
    s_stat, f_stat : ndarray, shape (P, G)
    post : ndarray, shape (R, G), or None
        Posterior node probabilities per row, when ``posterior`` is true.
    """
    n_chunks = max(1, min(numba.get_num_threads() * 4, counts.n_rows))
    post = np.empty((counts.n_rows if posterior else 0, log_mass.size))
    out = _estep_stats(
        counts.row_ptr,
        counts.entry_pair,
        counts.entry_s.astype(np.float64),
        (counts.entry_n - counts.entry_s).astype(np.float64),
        counts.row_weight,
        np.ascontiguousarray(log_g),
        np.ascontiguousarray(log_1mg),
        np.ascontiguousarray(log_mass),
        n_chunks,
        post,
    )
    return (*out, post if posterior else None)
