"""Compiled, threaded passes of :func:`attnmodel.data.counts.collapse_counts` on big tables.

On the counts of a 10^8-row log (10^7 users, 4.8 x 10^7 entries) the numpy
passes of the collapse each run on one core and make a temporary per step.
These passes visit each user's entries once, in parallel over users, with no
temporaries: the two 64-bit hashes of every user's entries, the entry-by-entry
check of every user against its group's first user, and the copy of the
distinct rows' entries into the output. They compute what the numpy passes
compute (the hashes are other functions of the entries, but the grouping
does not depend on which: it is verified entry by entry either way), so the
table is the same whichever runs.

The inputs are the cells sorted by (user, pair): user ``k`` owns entries
``start[k]:start[k] + lens[k]``.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["gather_rows", "same_entries", "user_hashes"]

SHIFT1, SHIFT2, SHIFT3 = np.uint64(30), np.uint64(27), np.uint64(31)


@numba.njit(cache=True)
def _mix(v, mix1, mix2):
    """splitmix64's finaliser (arithmetic wraps mod 2**64)."""
    v ^= v >> SHIFT1
    v *= mix1
    v ^= v >> SHIFT2
    v *= mix2
    v ^= v >> SHIFT3
    return v


@numba.njit(cache=True, parallel=True)
def user_hashes(pair, n, s, start, lens, constants):
    """Two independent 64-bit hashes of each user's (pair, n, s) entries, shape (m,) each.

    ``constants`` (uint64): the finaliser's two multipliers, the two seeds, and
    the multipliers of the entry count, the pair and ``n`` (those of
    :mod:`attnmodel.data.counts`). Each entry is mixed under the two seeds and
    the values are summed per user (mod 2**64), so the order of the entries
    does not matter; the number of entries is folded into the first hash.
    """
    mix1, mix2, seed1, seed2, len_mult, pair_mult, n_mult = constants
    m = lens.size
    h1 = np.empty(m, dtype=np.uint64)
    h2 = np.empty(m, dtype=np.uint64)
    for k in numba.prange(m):
        a = np.uint64(0)
        b = np.uint64(0)
        for e in range(start[k], start[k] + lens[k]):
            t = np.uint64(pair[e]) * pair_mult + np.uint64(n[e]) * n_mult + np.uint64(s[e])
            a += _mix(t + seed1, mix1, mix2)
            b += _mix(t ^ seed2, mix1, mix2)
        h1[k] = a + np.uint64(lens[k]) * len_mult
        h2[k] = b
    return h1, h2


@numba.njit(cache=True, parallel=True)
def same_entries(check, other, start, lens, pair, n, s, n_chunks):
    """True when every user ``check[i]`` has the entries of user ``other[i]``."""
    bad = np.zeros(n_chunks, dtype=np.bool_)
    size = (check.size + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        for i in range(c * size, min(check.size, (c + 1) * size)):
            j = check[i]
            k = other[i]
            if lens[j] != lens[k]:
                bad[c] = True
                break
            a = start[j]
            b = start[k]
            for e in range(lens[j]):
                if pair[a + e] != pair[b + e] or n[a + e] != n[b + e] or s[a + e] != s[b + e]:
                    bad[c] = True
                    break
            if bad[c]:
                break
    return not bad.any()


@numba.njit(cache=True, parallel=True)
def gather_rows(first, lens, out_start, column, out):
    """``out[out_start[r]:][:lens[r]] = column[first[r]:][:lens[r]]`` for every row ``r``."""
    for r in numba.prange(first.size):
        o = out_start[r]
        f = first[r]
        for e in range(lens[r]):
            out[o + e] = column[f + e]
