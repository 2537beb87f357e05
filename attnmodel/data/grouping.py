"""Compiled, threaded passes over big tables of counts.

:func:`attnmodel.data.counts.collapse_counts`: on the counts of a 10^8-row
log (10^7 users, 4.8 x 10^7 entries) the numpy passes of the collapse each
run on one core and make a temporary per step. These passes visit each user's
entries once, in parallel over users, with no temporaries: the two 64-bit
hashes of every user's entries, the entry-by-entry check of every user against
its group's first user, and the copy of the distinct rows' entries into the
output. They compute what the numpy passes compute (the hashes are other
functions of the entries, but the grouping does not depend on which: it is
verified entry by entry either way), so the table is the same whichever runs.
Their inputs are the cells sorted by (user, pair): user ``k`` owns entries
``start[k]:start[k] + lens[k]``.

:func:`attnmodel.data.engines.duckdb_cells`: the votes' user keys looked up
among the distinct users' keys (:func:`key_table`, :func:`look_up_keys`), the
votes ordered by user (:func:`codes_by_user`), and each user's votes counted
per pair (:func:`user_cells`).

:class:`attnmodel.data.counts.CountTable`'s sums over a row's entries and over
a pair's entries (:func:`row_totals`, :func:`pair_row_dot`,
:func:`pair_weighted_totals`), and the readers' sums over a pair's cells
(:func:`pair_value_sums`): one pass, no array as long as the entries.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "codes_by_user",
    "gather_rows",
    "key_table",
    "look_up_keys",
    "pair_row_dot",
    "pair_value_sums",
    "pair_weighted_totals",
    "row_totals",
    "same_entries",
    "table_size",
    "user_cells",
    "user_hashes",
]

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


# ---------------------------------------------------------------------------
# The DuckDB reader's cells (:func:`attnmodel.data.engines.duckdb_cells`): each
# vote arrives as (user key, code), code = 2 * pair + (1 if the pair's first
# model won), and is counted here, so the engine needs no second grouping.

_KEY_MIX = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True)
def _slot(key, shift):
    return (key * _KEY_MIX) >> shift


def table_size(n_keys: int) -> int:
    """Slots of the table of :func:`key_table` for ``n_keys`` keys: a power of 2, at least twice."""
    return 1 << max(1, (2 * n_keys - 1).bit_length())


@numba.njit(cache=True)
def key_table(keys, slot_pos):
    """An open-addressing table of distinct 64-bit ``keys``: (slot keys, shift).

    ``slot_pos`` (:func:`table_size` integers, any signed type) is filled:
    slot ``j`` holds ``keys[slot_pos[j]]`` (``-1``: empty); at least half the
    slots are empty.
    """
    size = slot_pos.size
    bits = 0
    while (1 << bits) < size:
        bits += 1
    shift = np.uint64(64 - bits)
    mask = np.uint64(size - 1)
    slot_key = np.zeros(size, dtype=np.uint64)
    slot_pos[:] = -1
    for i in range(keys.size):
        j = _slot(keys[i], shift)
        while slot_pos[j] >= 0:
            j = (j + np.uint64(1)) & mask
        slot_key[j] = keys[i]
        slot_pos[j] = i
    return slot_key, shift


@numba.njit(cache=True, parallel=True)
def look_up_keys(slot_key, slot_pos, shift, keys, out):
    """``out[i]``: position of ``keys[i]`` in the table's keys; False if a key is absent."""
    mask = np.uint64(slot_key.size - 1)
    missing = 0
    for i in numba.prange(keys.size):
        j = _slot(keys[i], shift)
        while slot_pos[j] >= 0 and slot_key[j] != keys[i]:
            j = (j + np.uint64(1)) & mask
        if slot_pos[j] < 0:
            missing += 1
            out[i] = 0
        else:
            out[i] = slot_pos[j]
    return missing == 0


@numba.njit(cache=True)
def codes_by_user(user, code, start):
    """The codes reordered by user: user ``k``'s are ``out[start[k]:start[k + 1]]``."""
    fill = start[:-1].copy()
    out = np.empty_like(code)
    for i in range(user.size):
        k = user[i]
        out[fill[k]] = code[i]
        fill[k] += 1
    return out


@numba.njit(cache=True)
def _user_pairs(code, lo, hi, n_local, a_local, touched):
    """Count one user's codes ``code[lo:hi]``; its pairs, sorted, in ``touched[:k]``; k."""
    k = 0
    for e in range(lo, hi):
        p = code[e] >> 1
        if n_local[p] == 0:
            touched[k] = p
            k += 1
        n_local[p] += 1
        a_local[p] += code[e] & 1
    for i in range(1, k):  # a user has few pairs: insertion sort
        v = touched[i]
        j = i - 1
        while j >= 0 and touched[j] > v:
            touched[j + 1] = touched[j]
            j -= 1
        touched[j + 1] = v
    return k


@numba.njit(cache=True, parallel=True)
def user_cells(code, start, n_pairs, n_chunks, fill, per_user, cell_start, ui, pi, n, a):
    """Each user's cells (distinct pairs), from the codes ordered by user.

    ``fill`` False: writes each user's number of cells into ``per_user``.
    ``fill`` True: writes the cells (user, pair, votes, first-model wins), in
    (user, pair) order, user ``u``'s from ``cell_start[u]`` on.
    """
    m = start.size - 1
    size = (m + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        n_local = np.zeros(n_pairs, dtype=np.int64)
        a_local = np.zeros(n_pairs, dtype=np.int64)
        touched = np.empty(n_pairs, dtype=np.int64)
        for u in range(c * size, min(m, (c + 1) * size)):
            k = _user_pairs(code, start[u], start[u + 1], n_local, a_local, touched)
            if fill:
                o = cell_start[u]
                for i in range(k):
                    p = touched[i]
                    ui[o + i] = u
                    pi[o + i] = p
                    n[o + i] = n_local[p]
                    a[o + i] = a_local[p]
            else:
                per_user[u] = k
            for i in range(k):
                n_local[touched[i]] = 0
                a_local[touched[i]] = 0


@numba.njit(cache=True)
def row_totals(row_ptr, values):
    """``values`` summed over each row's entries ``row_ptr[r]:row_ptr[r + 1]``, in their dtype."""
    out = np.zeros(row_ptr.size - 1, dtype=values.dtype)
    for r in range(out.size):
        t = out[r]
        for e in range(row_ptr[r], row_ptr[r + 1]):
            t += values[e]
        out[r] = t
    return out


@numba.njit(cache=True)
def pair_row_dot(row_ptr, entry_pair, entry_n, per_pair):
    """``sum_e per_pair[pair_e] n_e`` over each row's entries, in entry order, float64."""
    out = np.zeros(row_ptr.size - 1)
    for r in range(out.size):
        t = 0.0
        for e in range(row_ptr[r], row_ptr[r + 1]):
            t += per_pair[entry_pair[e]] * entry_n[e]
        out[r] = t
    return out


@numba.njit(cache=True)
def pair_value_sums(pair, values, n_pairs):
    """Sum of ``values`` over the entries of each pair, as int64, shape (n_pairs,).

    One pass and no temporaries (numpy's ``bincount`` would copy the indices
    to intp and the values to float64: fresh pages for two arrays as long as
    the cells). Raises ValueError for a pair index outside ``[0, n_pairs)``.
    """
    total = np.zeros(n_pairs, dtype=np.int64)
    for i in range(pair.size):
        p = pair[i]
        if p < 0 or p >= n_pairs:
            raise ValueError("a pair index lies outside [0, n_pairs)")
        total[p] += values[i]
    return total


@numba.njit(cache=True)
def pair_weighted_totals(row_ptr, entry_pair, entry_n, entry_s, row_weight, n_pairs):
    """``(n, s)`` per pair: each entry's counts times its row's weight, summed in float64.

    Sums of integers (weights count users) are exact while below 2**53.
    """
    n = np.zeros(n_pairs)
    s = np.zeros(n_pairs)
    for r in range(row_ptr.size - 1):
        w = row_weight[r]
        for e in range(row_ptr[r], row_ptr[r + 1]):
            p = entry_pair[e]
            n[p] += w * entry_n[e]
            s[p] += w * entry_s[e]
    return n, s
