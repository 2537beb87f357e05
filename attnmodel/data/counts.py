"""Per-(user, pair) vote counts collapsed to distinct count rows.

Given ``mu``, a user's likelihood depends only on the counts ``(n, s)`` it gave
for each model pair (``n`` votes, ``s`` of them for the pair's stronger model).
Users with identical count rows share one likelihood and one posterior, so all
fitting works on the distinct rows, weighted by how many users share each.

With ties modelled (``ties="model"``) each entry also carries ``t``, the tie
votes of the user on the pair, and two users share a row only when their ties
agree too; an entry may then hold ties only (``n == 0``, ``t >= 1``).

Users with a single entry are grouped by an exact integer key. Users with
entries on several pairs are grouped by two independent 64-bit hashes of their
(pair, n, s) entries; every user is then compared entry by entry with the first
user of its group, and if any comparison fails (a hash collision, never seen
in practice) an exact sort-based grouping is used instead. The result is exact
either way.

This module works on plain integer arrays and knows nothing of pandas or files.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CountTable",
    "collapse_counts",
    "collapse_taken_counts",
    "counts_fingerprint",
    "group_by_row",
    "pair_sums",
    "pair_totals",
]

#: Grouping methods for users with entries on several pairs, see :func:`collapse_counts`.
COLLAPSE_METHODS = ("hash", "dense", "sort")

# The exact "dense" grouping builds a (users x 2*pairs) int64 matrix and runs
# np.unique(axis=0) on it (about 80 bytes per cell at peak); above this many
# cells the exact fallback refines groups by sorting instead.
_DENSE_CELL_LIMIT = 10_000_000

# Largest value the packed exact keys may take (int64 with headroom).
_PACK_LIMIT = 2**62

# Elementwise work on the entries runs in blocks of this many (bounds temporaries).
_BLOCK = 1 << 22

# From this many entries on, the per-user passes (hashes, verification, the
# copy of the rows' entries) run compiled and threaded
# (:mod:`attnmodel.data.grouping`), and the users with one entry are grouped
# in a thread beside those with several: the same table, on every core. Below
# it, loading the compiled passes (about 0.5 s) costs more than they save ...
_COMPILED_ENTRIES = 1 << 24
# ... unless the process has loaded that module already (the DuckDB reader
# counts its cells with it, so Numba and its threads are up): from this many
# entries on the passes then save more than loading three more functions costs
# (the 10^7-row log's 3.6 million entries: 0.33-0.42 s against 0.66-0.81 s).
_COMPILED_LOADED_ENTRIES = 1 << 21


def _compiled(n_entries: int) -> bool:
    """Whether a collapse of ``n_entries`` entries takes the compiled passes."""
    if n_entries >= _COMPILED_ENTRIES:
        return True
    return n_entries >= _COMPILED_LOADED_ENTRIES and "attnmodel.data.grouping" in sys.modules


# splitmix64 finaliser constants and the seeds of the two user hashes.
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SEED1 = np.uint64(0x9E3779B97F4A7C15)
_SEED2 = np.uint64(0xD6E8FEB86659FD93)
_LEN_MULT = np.uint64(0xC2B2AE3D27D4EB4F)
_PAIR_MULT = np.uint64(0xFF51AFD7ED558CCD)
_N_MULT = np.uint64(0xC4CEB9FE1A85EC53)
# The same constants for the compiled hashes (:func:`attnmodel.data.grouping.user_hashes`).
_HASH_CONSTANTS = np.array(
    [_MIX1, _MIX2, _SEED1, _SEED2, _LEN_MULT, _PAIR_MULT, _N_MULT], dtype=np.uint64
)


@dataclass(frozen=True)
class CountTable:
    """Distinct count rows in compressed sparse row layout.

    Attributes
    ----------
    n_pairs : int
        Number of model pairs ``P``.
    row_ptr : ndarray of int64, shape (R + 1,)
        Entries of row ``r`` are ``row_ptr[r]:row_ptr[r + 1]``.
    entry_pair : ndarray of int64, shape (E,)
        Pair index of each entry (sorted within a row).
    entry_n, entry_s : ndarray of int64, shape (E,)
        Votes and votes for the stronger model, ``0 <= s <= n``, ``n >= 1``.
    row_weight : ndarray of float64, shape (R,)
        Number of users sharing each distinct row.
    user_row : ndarray of int64, shape (m,)
        Distinct row of each user.
    entry_t : ndarray of int64, shape (E,), or None
        Tie votes of each entry when ties are modelled (then ``n + t >= 1``
        and ``n`` may be 0); None when ties were dropped.
    """

    n_pairs: int
    row_ptr: np.ndarray
    entry_pair: np.ndarray
    entry_n: np.ndarray
    entry_s: np.ndarray
    row_weight: np.ndarray
    user_row: np.ndarray
    entry_t: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        """Number of distinct count rows ``R``."""
        return int(self.row_ptr.size - 1)

    @property
    def n_users(self) -> int:
        """Number of users ``m``."""
        return int(self.user_row.size)

    @property
    def entry_row(self) -> np.ndarray:
        """Row index of each entry, shape (E,)."""
        return np.repeat(np.arange(self.n_rows), np.diff(self.row_ptr))

    @property
    def one_entry_per_row(self) -> bool:
        """True when every row holds exactly one entry (e.g. a single pair)."""
        return self.entry_n.size == self.n_rows

    def row_sum(self, entry_values: np.ndarray) -> np.ndarray:
        """Sum per-entry values (axis 0) into per-row values.

        Parameters
        ----------
        entry_values : ndarray, shape (E, ...)

        Returns
        -------
        ndarray, shape (R, ...)
        """
        if self.one_entry_per_row:
            return entry_values
        return np.add.reduceat(entry_values, self.row_ptr[:-1], axis=0)

    def user_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense per-user counts ``(n, s)``, each of shape (m, P)."""
        n_rows = np.zeros((self.n_rows, self.n_pairs), dtype=np.int64)
        s_rows = np.zeros((self.n_rows, self.n_pairs), dtype=np.int64)
        rows = self.entry_row
        n_rows[rows, self.entry_pair] = self.entry_n
        s_rows[rows, self.entry_pair] = self.entry_s
        return n_rows[self.user_row], s_rows[self.user_row]

    @property
    def has_ties(self) -> bool:
        """True when the table carries tie votes per entry (``ties="model"``)."""
        return self.entry_t is not None

    def row_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row: votes other than ties ``m_r`` and ties ``T_r``, each shape (R,), int64.

        ``T_r`` is zero when the table carries no ties.
        """
        rows = self.entry_row
        m = np.bincount(rows, weights=self.entry_n, minlength=self.n_rows)
        if self.entry_t is None:
            return np.rint(m).astype(np.int64), np.zeros(self.n_rows, dtype=np.int64)
        t = np.bincount(rows, weights=self.entry_t, minlength=self.n_rows)
        return np.rint(m).astype(np.int64), np.rint(t).astype(np.int64)

    def user_ties(self) -> np.ndarray:
        """Dense per-user tie votes, shape (m, P) (zeros when the table carries no ties)."""
        t_rows = np.zeros((self.n_rows, self.n_pairs), dtype=np.int64)
        if self.entry_t is not None:
            t_rows[self.entry_row, self.entry_pair] = self.entry_t
        return t_rows[self.user_row]

    def ties_per_user(self) -> np.ndarray:
        """Tie votes of each user, shape (m,) (zeros when the table carries no ties)."""
        return self.row_totals()[1][self.user_row]

    def votes_per_row(self) -> np.ndarray:
        """Total votes of each distinct row, shape (R,), int64 (0 for a row without entries).

        Formed once per table and kept (:meth:`_kept`).
        """
        from attnmodel.data.grouping import row_totals

        def votes() -> np.ndarray:
            return row_totals(*self._int64(self.row_ptr, self.entry_n))

        return self._kept("votes_per_row", votes)

    @staticmethod
    def _int64(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """The arrays as contiguous int64 (not copied when they are), as compiled passes want."""
        return tuple(np.ascontiguousarray(a, dtype=np.int64) for a in arrays)

    def entry_losses(self) -> np.ndarray:
        """Votes against the stronger model of each entry, ``n - s``, shape (E,), int64 (kept)."""
        return self._kept(
            "entry_losses", lambda: np.subtract(self.entry_n, self.entry_s, dtype=np.int64)
        )

    def _kept(self, name: str, make):
        """``make()``, formed on the first call and kept on the table, read-only.

        ``make`` returns an array or a tuple of arrays.

        A table's arrays are not changed after it is made, so what is derived
        from them holds; :func:`dataclasses.replace` makes a new table that
        keeps nothing.
        """
        kept = self.__dict__.setdefault("_kept_arrays", {})
        if name not in kept:
            value = make()
            for array in value if isinstance(value, tuple) else (value,):
                array.flags.writeable = False
            kept[name] = value
        return kept[name]

    def votes_per_user(self) -> np.ndarray:
        """Total votes of each user, shape (m,)."""
        return self.votes_per_row()[self.user_row]

    def users_by_row(self) -> tuple[np.ndarray, np.ndarray]:
        """The users grouped by row, :func:`group_by_row` of ``user_row`` (kept)."""
        return self._kept("users_by_row", lambda: group_by_row(self.user_row, self.n_rows))

    def take_rows(self, rows: np.ndarray) -> CountTable:
        """The table of the distinct rows ``rows`` (indices, in the order given).

        Each row keeps its entries and its weight; the result's users are its
        rows, one each (``user_row`` is ``0..len(rows)-1``).
        """
        rows = np.asarray(rows, dtype=np.int64)
        lens = np.diff(self.row_ptr)[rows]
        row_ptr = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(lens, out=row_ptr[1:])
        # Entry k of the result is entry `take[k]` of this table.
        take = np.repeat(self.row_ptr[rows] - row_ptr[:-1], lens) + np.arange(row_ptr[-1])
        return CountTable(
            n_pairs=self.n_pairs,
            row_ptr=row_ptr,
            entry_pair=self.entry_pair[take],
            entry_n=self.entry_n[take],
            entry_s=self.entry_s[take],
            row_weight=self.row_weight[rows],
            user_row=np.arange(rows.size, dtype=np.int64),
            entry_t=None if self.entry_t is None else self.entry_t[take],
        )


def group_by_row(rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices grouped by row: ``(ptr, items)``, both int64.

    ``items[ptr[r]:ptr[r + 1]]`` are the indices ``j`` with ``rows[j] == r``, in
    increasing order.
    """
    rows = np.asarray(rows, dtype=np.int64)
    items = np.argsort(rows, kind="stable").astype(np.int64, copy=False)
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=ptr[1:])
    return ptr, items


def pair_totals(counts: CountTable) -> tuple[np.ndarray, np.ndarray]:
    """Votes and votes for the stronger model on each pair, summed over users, each shape (P,).

    One pass over the entries, each weighted by its row's users
    (:func:`attnmodel.data.grouping.pair_weighted_totals`). Formed once per
    table and kept (see :meth:`CountTable.votes_per_row`).
    """
    both = counts._kept("pair_totals", lambda: np.stack(_pair_totals(counts)))
    return both[0], both[1]


def _pair_totals(counts: CountTable) -> tuple[np.ndarray, np.ndarray]:
    from attnmodel.data.grouping import pair_weighted_totals

    ptr, pair, n_e, s_e = counts._int64(
        counts.row_ptr, counts.entry_pair, counts.entry_n, counts.entry_s
    )
    weight = np.ascontiguousarray(counts.row_weight, dtype=np.float64)
    n, s = pair_weighted_totals(ptr, pair, n_e, s_e, weight, counts.n_pairs)
    return np.rint(n).astype(np.int64), np.rint(s).astype(np.int64)


def pair_sums(pair: np.ndarray, values: np.ndarray, n_pairs: int) -> np.ndarray:
    """Sum of ``values`` over the entries of each pair, as int64, shape (n_pairs,).

    Many entries (:func:`_compiled`) take one compiled pass
    (:func:`attnmodel.data.grouping.pair_value_sums`); the others a block at
    a time with ``np.bincount``, which copies each block's (possibly int32)
    indices to intp and values to float64: the first copies of a 10^7-row
    log's cells cost 0.2 s of fresh pages each. Each block's sums are exact
    in float64 while they stay below 2**53.
    """
    if _compiled(pair.size):
        from attnmodel.data.grouping import pair_value_sums

        return pair_value_sums(pair, values, n_pairs)
    total = np.zeros(n_pairs, dtype=np.int64)
    for lo in range(0, pair.size, _BLOCK):
        part = np.bincount(
            pair[lo : lo + _BLOCK], weights=values[lo : lo + _BLOCK], minlength=n_pairs
        )
        total += np.rint(part).astype(np.int64)
    return total


def counts_fingerprint(counts: CountTable, users, pairs) -> str:
    """SHA-256 of every user's counts, whatever the order of users and pairs.

    Two data sets share it exactly when they hold the same users (by their
    text), the same pairs (by label, which carries the orientation) and, for
    every user and pair, the same ``n`` and ``s`` (and ``t`` when ties are
    modelled): votes doubled, flipped or
    moved between users all change it.

    Parameters
    ----------
    counts : CountTable
    users, pairs : sequence
        Labels of the table's users and pairs (compared as text).

    Returns
    -------
    str
        ``"sha256:"`` followed by 64 hex digits.
    """
    import hashlib

    user_text = np.asarray(users).astype(str)
    pair_text = np.asarray(pairs).astype(str)
    if user_text.size != counts.n_users or pair_text.size != counts.n_pairs:
        raise ValueError("users and pairs must label the count table's users and pairs")
    user_order = np.argsort(user_text, kind="stable")
    pair_order = np.argsort(pair_text, kind="stable")
    user_rank = np.empty_like(user_order)
    user_rank[user_order] = np.arange(user_order.size)
    pair_rank = np.empty_like(pair_order)
    pair_rank[pair_order] = np.arange(pair_order.size)
    # Every (user, entry of its row), keyed by (user rank, pair rank) and sorted by the key.
    lens = np.diff(counts.row_ptr)[counts.user_row]
    start = counts.row_ptr[:-1][counts.user_row]
    owner = np.repeat(np.arange(counts.n_users), lens)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(lens) - lens, lens)
    entry = start[owner] + offset
    key = user_rank[owner] * max(counts.n_pairs, 1) + pair_rank[counts.entry_pair[entry]]
    order = np.argsort(key, kind="stable")
    h = hashlib.sha256()
    h.update("\x1f".join(user_text[user_order].tolist()).encode("utf-8") + b"\x1e")
    h.update("\x1f".join(pair_text[pair_order].tolist()).encode("utf-8") + b"\x1e")
    columns = [key[order], counts.entry_n[entry][order], counts.entry_s[entry][order]]
    if counts.entry_t is not None:
        # Modelled ties are data too; tables without them keep their old fingerprint.
        h.update(b"ties\x1e")
        columns.append(counts.entry_t[entry][order])
    for column in columns:
        h.update(np.ascontiguousarray(column, dtype="<i8").tobytes())
    return "sha256:" + h.hexdigest()


def collapse_counts(
    user: np.ndarray,
    pair: np.ndarray,
    n: np.ndarray,
    s: np.ndarray,
    n_users: int,
    n_pairs: int,
    *,
    method: str = "hash",
    t: np.ndarray | None = None,
) -> CountTable:
    """Collapse per-(user, pair) counts to distinct count rows.

    Parameters
    ----------
    user, pair : ndarray of int, shape (K,)
        User index in ``[0, n_users)`` and pair index in ``[0, n_pairs)``; each
        (user, pair) combination appears at most once. Any order; input already
        sorted by (user, pair), as :class:`~attnmodel.data.votes.VoteData` passes it,
        skips a sort.
    n, s : ndarray of int, shape (K,)
        Votes and votes for the stronger model; entries with ``n == 0`` are ignored.
    n_users, n_pairs : int
        Every user must have at least one vote.
    method : {"hash", "dense", "sort"}
        How users with entries on several pairs are grouped; all three give the
        same table. ``"hash"`` (default) groups them by two 64-bit hashes of
        their entries, then checks every user entry by entry against the first
        user of its group and falls back to an exact method if any check
        fails. ``"dense"`` runs ``np.unique`` on a dense
        (users x 2*pairs) matrix, and switches to ``"sort"`` above
        ``_DENSE_CELL_LIMIT`` cells; ``"sort"`` refines groups one entry
        position at a time. Both are exact without a check, but slower.
    t : ndarray of int, shape (K,), optional
        Tie votes of each entry (ties modelled). Entries with ``n == 0`` are
        then kept when ``t > 0``, and every user needs a vote or a tie.

    Returns
    -------
    CountTable
        Rows of users with one entry come first, ordered by (pair, n, s); then
        rows of users with several entries, in order of their first user. Two
        users share a row exactly when their counts agree on every pair.

    Raises
    ------
    ValueError
        ``s`` outside ``[0, n]``, an index out of range, a repeated
        (user, pair), or a user without votes.
    """
    if method not in COLLAPSE_METHODS:
        raise ValueError(f"method must be one of {COLLAPSE_METHODS}, got {method!r}")
    if t is not None:
        return _collapse_with_ties(user, pair, n, s, t, n_users, n_pairs, method)
    return collapse_taken_counts([user, pair, n, s], n_users, n_pairs, method=method)


def collapse_taken_counts(
    cells: list, n_users: int, n_pairs: int, *, method: str = "hash"
) -> CountTable:
    """:func:`collapse_counts` of ``cells = [user, pair, n, s]``, a list it empties.

    The collapse then holds the only references the caller gave it, and lets
    go of each array once it is done with it: the users after the grouping,
    each of the other three once its entries are copied into the output. A
    caller that keeps no other reference (a reader of a big log, whose cells
    are its largest arrays) has their memory back while the output is
    written, not after.
    """
    if method not in COLLAPSE_METHODS:
        raise ValueError(f"method must be one of {COLLAPSE_METHODS}, got {method!r}")
    if len(cells) != 4:
        raise ValueError("cells must be the list [user, pair, n, s]")
    user, pair, n, s = (_ints(x) for x in cells)
    cells.clear()
    if not user.size == pair.size == n.size == s.size:
        raise ValueError("user, pair, n and s must have the same length")
    keep = n > 0
    if not keep.all():
        user, pair, n, s = user[keep], pair[keep], n[keep], s[keep]
    del keep
    if n.size and (s.min() < 0 or np.any(s > n)):
        raise ValueError("counts must satisfy 0 <= s <= n")
    if n.size and (user.min() < 0 or user.max() >= n_users):
        raise ValueError(f"user indices must lie in [0, {n_users})")
    if n.size and (pair.min() < 0 or pair.max() >= n_pairs):
        raise ValueError(f"pair indices must lie in [0, {n_pairs})")
    # In blocks: bincount would copy int32 indices to intp all at once.
    entries_per_user = np.zeros(n_users, dtype=np.int64)
    for lo in range(0, user.size, _BLOCK):
        entries_per_user += np.bincount(user[lo : lo + _BLOCK], minlength=n_users)
    if np.any(entries_per_user == 0):
        missing = int(np.flatnonzero(entries_per_user == 0)[0])
        raise ValueError(f"user index {missing} has no votes")
    if n_users == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _table(n_pairs, empty, (empty, empty, empty), empty, empty)

    # Sort the entries by (user, pair) unless they already are; this also
    # exposes a repeated (user, pair).
    if not _sorted_cells(user, pair, n_pairs):
        cell = np.multiply(user, np.int64(n_pairs))
        cell += pair
        order = np.argsort(cell, kind="stable")
        cell = cell[order]
        if np.any(cell[1:] == cell[:-1]):
            raise ValueError("a (user, pair) combination appears more than once")
        del cell
        user, pair, n, s = user[order], pair[order], n[order], s[order]
        del order

    # An entry (pair, n, s) packs into one exact integer when this fits.
    base = int(n.max()) + 1
    packed = n_pairs * base * base <= _PACK_LIMIT
    b = np.int64(base)
    multi_users = np.flatnonzero(entries_per_user > 1)
    n_single_users = n_users - multi_users.size

    user_row = np.empty(n_users, dtype=np.int64)
    # Entries are sorted by user, so a per-user flag repeated per entry marks them.
    single = None
    if multi_users.size and n_single_users:
        single = np.repeat(entries_per_user == 1, entries_per_user)

    def single_rows(user, single, pair, n, s):
        """Users with one entry: exact integer key (pair, n, s), rows sorted by it."""
        if not n_single_users:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, empty
        if single is not None:
            p1, n1, s1, u1 = pair[single], n[single], s[single], user[single]
        else:
            p1, n1, s1, u1 = pair, n, s, user
        if packed:
            key = (p1 * b + n1) * b + s1
            keys_u, inv = np.unique(key, return_inverse=True)
            del key
            s_u = keys_u % b
            n_u = (keys_u // b) % b
            pair_u = keys_u // (b * b)
        else:
            order = np.lexsort((s1, n1, p1))
            p1, n1, s1 = p1[order], n1[order], s1[order]
            new = np.ones(order.size, dtype=bool)
            new[1:] = (p1[1:] != p1[:-1]) | (n1[1:] != n1[:-1]) | (s1[1:] != s1[:-1])
            inv = np.empty(order.size, dtype=np.int64)
            inv[order] = np.cumsum(new) - 1
            pair_u, n_u, s_u = p1[new], n1[new], s1[new]
        user_row[u1] = inv
        return pair_u, n_u, s_u, np.bincount(inv, minlength=pair_u.size)

    if not multi_users.size:
        pair_u, n_u, s_u, weight_single = single_rows(user, single, pair, n, s)
        lengths = np.ones(pair_u.size, dtype=np.int64)
        return _table(n_pairs, lengths, (pair_u, n_u, s_u), weight_single, user_row)

    # Users with several entries, left in place among the others: user k owns
    # entries start[k]:start[k] + lens[k] of the (sorted) input arrays, and
    # ``member`` marks the entries of these users (None: every entry).
    member = None if single is None else ~single
    lens = entries_per_user[multi_users]
    start = np.cumsum(entries_per_user) - entries_per_user
    start = start[multi_users]
    del entries_per_user
    cols = [pair, n, s]

    def multi_groups(member, start, lens, cols):
        """For each user with several entries, the first user with the same entries."""
        rep = None
        if method == "hash":
            rep = _hash_groups(*cols, b if packed else None, member, cols, start, lens)
        if rep is None:
            if method != "sort" and lens.size * 2 * n_pairs <= _DENSE_CELL_LIMIT:
                part = cols if member is None else [x[member] for x in cols]
                rep = _dense_groups(*part, lens, n_pairs)
                del part
            else:
                rep = _sort_groups(cols, start, lens)
        return rep

    if _compiled(pair.size):
        # The two groupings write different users' rows: they run side by side.
        with ThreadPoolExecutor(1) as pool:
            singles = pool.submit(single_rows, user, single, pair, n, s)
            rep = multi_groups(member, start, lens, cols)
            pair_u, n_u, s_u, weight_single = singles.result()
    else:
        pair_u, n_u, s_u, weight_single = single_rows(user, single, pair, n, s)
        rep = multi_groups(member, start, lens, cols)
    n_single_rows = pair_u.size
    del user, single, member  # the users' entries: no longer needed
    # Rows are numbered by their first user: the users with rep == themselves.
    is_rep = rep == np.arange(lens.size)
    row_of_user = np.cumsum(is_rep) - 1
    row_of_user = row_of_user[rep]
    del rep
    n_multi_rows = int(np.count_nonzero(is_rep))
    user_row[multi_users] = n_single_rows + row_of_user
    del multi_users
    weight_multi = np.bincount(row_of_user, minlength=n_multi_rows)
    del row_of_user

    # Write both blocks straight into the output arrays: the single rows, then
    # the entries of each multi row's first user, gathered a block of rows at
    # a time (the output is the largest thing alive here; no full-size
    # positions or gathered copies beside it).
    lens_rows = lens[is_rep]
    first_rows = start[is_rep]
    del start, lens
    n_entries = n_single_rows + int(lens_rows.sum())
    entries = []
    for single_part in (pair_u, n_u, s_u):
        out = np.empty(n_entries, dtype=np.int64)
        out[:n_single_rows] = single_part
        entries.append(out)
    del pair, n, s  # from here on held by cols alone
    if _compiled(cols[0].size):
        from attnmodel.data.grouping import gather_rows

        out_start = np.cumsum(lens_rows) - lens_rows + n_single_rows
        for k, out in enumerate(entries):
            gather_rows(first_rows, lens_rows, out_start, cols[k], out)
            cols[k] = None  # its entries are copied: freed unless the caller holds it
        del out_start
    else:
        at_out = n_single_rows
        for r0, r1 in _blocks(lens_rows, _BLOCK):
            at = _ranges(first_rows[r0:r1], lens_rows[r0:r1])
            for out, col in zip(entries, cols, strict=True):
                out[at_out : at_out + at.size] = col[at]
            at_out += at.size
    del cols
    return _table(
        n_pairs,
        np.concatenate([np.ones(n_single_rows, dtype=np.int64), lens_rows]),
        entries,
        np.concatenate([weight_single, weight_multi]),
        user_row,
    )


def _blocks(lens: np.ndarray, size: int):
    """Consecutive ranges ``(k0, k1)`` of the items whose ``lens`` sum to about ``size``.

    Each range holds at least one item, so an item longer than ``size`` is a
    range of its own.
    """
    ends = np.cumsum(lens)
    k0 = 0
    while k0 < lens.size:
        before = int(ends[k0]) - int(lens[k0])
        k1 = max(k0 + 1, int(np.searchsorted(ends, before + size, "right")))
        yield k0, k1
        k0 = k1


def _ranges(first: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Positions first[k], ..., first[k] + lens[k] - 1 for every k, concatenated."""
    offset = np.cumsum(lens) - lens
    at = np.repeat(first - offset, lens)
    at += np.arange(at.size)
    return at


def _collapse_with_ties(user, pair, n, s, t, n_users, n_pairs, method) -> CountTable:
    """:func:`collapse_counts` with ties: ``(n, s, t)`` rides as ``(n B + t, s B + t)``.

    With ``B = max t + 1`` the map is one-to-one and keeps ``0 <= s' <= n'``,
    so the grouping above (exact) groups users whose ``(n, s, t)`` agree on
    every pair; the entries are decoded afterwards.
    """
    t, n, s = _ints(t), _ints(n), _ints(s)
    if t.size != n.size:
        raise ValueError("user, pair, n, s and t must have the same length")
    if t.size and t.min() < 0:
        raise ValueError("tie counts must satisfy t >= 0")
    if n.size and (s.min() < 0 or np.any(s > n)):
        raise ValueError("counts must satisfy 0 <= s <= n")
    base = np.int64(int(t.max()) + 1 if t.size else 1)
    if n.size and (int(n.max()) + 1) * int(base) >= _PACK_LIMIT:
        raise ValueError("vote and tie counts too large to group exactly")
    table = collapse_counts(user, pair, n * base + t, s * base + t, n_users, n_pairs, method=method)
    return CountTable(
        n_pairs=table.n_pairs,
        row_ptr=table.row_ptr,
        entry_pair=table.entry_pair,
        entry_n=table.entry_n // base,
        entry_s=table.entry_s // base,
        row_weight=table.row_weight,
        user_row=table.user_row,
        entry_t=table.entry_n % base,
    )


def _ints(values) -> np.ndarray:
    """A flat integer array: int32 and int64 arrays as given, anything else as int64.

    The cells of a large log arrive as int32; keeping them so halves their
    memory here. Every product that can exceed 32 bits (packed keys, cell
    keys, hashes) has an int64 or uint64 operand, so it is formed in 64 bits.
    """
    values = np.asarray(values)
    if values.dtype in (np.int32, np.int64):
        return values.reshape(-1)
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _sorted_cells(user: np.ndarray, pair: np.ndarray, n_pairs: int) -> bool:
    """True if (user, pair) strictly increase, checked in blocks (small temporaries)."""
    block = 1 << 20
    for lo in range(0, user.size, block):
        hi = min(lo + block + 1, user.size)
        cell = user[lo:hi] * np.int64(n_pairs)
        cell += pair[lo:hi]
        if not np.all(cell[1:] > cell[:-1]):
            return False
    return True


def _table(n_pairs, row_lengths, entries, row_weight, user_row) -> CountTable:
    row_ptr = np.zeros(row_lengths.size + 1, dtype=np.int64)
    np.cumsum(row_lengths, out=row_ptr[1:])
    e_pair, e_n, e_s = entries
    return CountTable(
        n_pairs=int(n_pairs),
        row_ptr=row_ptr,
        entry_pair=np.array(e_pair, dtype=np.int64, copy=None),
        entry_n=np.array(e_n, dtype=np.int64, copy=None),
        entry_s=np.array(e_s, dtype=np.int64, copy=None),
        row_weight=row_weight.astype(np.float64),
        user_row=user_row,
    )


# ---------------------------------------------------------------------------
# Grouping of users with entries on several pairs.
#
# Each function takes those users' entries sorted by (user, pair) -- user k
# owns entries start[k]:start[k] + lens[k] -- and returns ``rep``: for each
# user, the smallest index of a user whose entries are identical to its own.

# Hash values of entries are looked up in a table when there are at most this
# many possible packed (pair, n, s) values.
_TABLE_LIMIT = 1 << 20

# Verification compares at most this many entries at a time (bounds memory).
_VERIFY_CHUNK = 1 << 22
# Chunks of users the compiled verification splits the users into (a few per thread).
_VERIFY_PARTS = 16


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, in place on a uint64 array (arithmetic wraps mod 2**64)."""
    for lo in range(0, x.size, _BLOCK):
        v = x[lo : lo + _BLOCK]
        v ^= v >> np.uint64(30)
        v *= _MIX1
        v ^= v >> np.uint64(27)
        v *= _MIX2
        v ^= v >> np.uint64(31)
    return x


def _sum_per_user(mixed, member, start, lens) -> np.ndarray:
    """Per user, the sum mod 2**64 of the values of its entries.

    ``mixed(lo, hi)`` gives the uint64 values of entries lo:hi (a new array);
    those outside ``member`` are zeroed. Users are taken in blocks of about
    ``_BLOCK`` entries, so the values of all entries never exist at once.
    """
    out = np.empty(lens.size, dtype=np.uint64)
    ends = start + lens
    u0 = 0
    while u0 < lens.size:
        u1 = max(u0 + 1, int(np.searchsorted(ends, start[u0] + _BLOCK, "right")))
        lo, hi = int(start[u0]), int(ends[u1 - 1])
        values = mixed(lo, hi)
        if member is not None:
            values[~member[lo:hi]] = 0
        out[u0:u1] = np.add.reduceat(values, start[u0:u1] - lo)
        u0 = u1
    return out


def _user_hashes(pair, n, s, base, member, start, lens) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each user's (pair, n, s) entries.

    Every entry is mixed by splitmix64 under two seeds and the mixed values are
    summed per user, mod 2**64. The pair is part of each entry, so no position
    weights are needed. The user's number of entries is folded into hash 1.
    Only determinism matters for exactness: identical users hash alike.
    An entry is the exact token ``(pair * base + n) * base + s`` when ``base``
    is given (counts small enough to pack), else a wrapping combination.
    Entries outside ``member`` (other users' entries between these users')
    count as zero.
    """
    if _compiled(pair.size):
        from attnmodel.data.grouping import user_hashes

        return user_hashes(pair, n, s, start, lens, _HASH_CONSTANTS)
    if base is not None:
        b = np.int64(base)
        n_tokens = (int(np.max(pair)) + 1) * int(base) ** 2
    else:
        n_tokens = _TABLE_LIMIT + 1

    def tokens(lo: int, hi: int) -> np.ndarray:
        if base is not None:
            t = np.multiply(pair[lo:hi], b)
            t += n[lo:hi]
            t *= b
            t += s[lo:hi]
            return t.view(np.uint64)
        t = pair[lo:hi].astype(np.uint64) * _PAIR_MULT
        t += n[lo:hi].astype(np.uint64) * _N_MULT
        t += s[lo:hi].astype(np.uint64)
        return t

    if n_tokens <= _TABLE_LIMIT and n_tokens * 4 <= pair.size:
        # Few possible tokens: mix each once and look the values up.
        values = np.arange(n_tokens, dtype=np.uint64)
        table1, table2 = _mix64(values + _SEED1), _mix64(values ^ _SEED2)

        def mixed1(lo: int, hi: int) -> np.ndarray:
            return table1[tokens(lo, hi)]

        def mixed2(lo: int, hi: int) -> np.ndarray:
            return table2[tokens(lo, hi)]

    else:

        def mixed1(lo: int, hi: int) -> np.ndarray:
            t = tokens(lo, hi)
            return _mix64(np.add(t, _SEED1, out=t))

        def mixed2(lo: int, hi: int) -> np.ndarray:
            t = tokens(lo, hi)
            return _mix64(np.bitwise_xor(t, _SEED2, out=t))

    h1 = _sum_per_user(mixed1, member, start, lens)
    h2 = _sum_per_user(mixed2, member, start, lens)
    h1 += lens.astype(np.uint64) * _LEN_MULT
    return h1, h2


def _hash_groups(pair, n, s, base, member, cols, start, lens) -> np.ndarray | None:
    """Group users by (hash 1, hash 2) and verify; None if a check fails."""
    n_users = lens.size
    h1, h2 = _user_hashes(pair, n, s, base, member, start, lens)
    order = np.argsort(h1)
    h1s, h2s = h1[order], h2[order]
    same = h1s[1:] == h1s[:-1]
    if np.any(same & (h2s[1:] != h2s[:-1])):
        # Hash 1 alone collides: order by (hash 1, hash 2) so equal keys are adjacent.
        order = np.lexsort((h2, h1))
        h1s, h2s = h1[order], h2[order]
        same = h1s[1:] == h1s[:-1]
    del h1, h2
    same &= h2s[1:] == h2s[:-1]
    del h1s, h2s
    group_start = np.flatnonzero(np.concatenate(([True], ~same)))
    del same
    first = np.minimum.reduceat(order, group_start)
    rep = np.empty(n_users, dtype=np.int64)
    rep[order] = np.repeat(first, np.diff(np.append(group_start, n_users)))
    del order, group_start, first

    # Verify that every user equals its group's first user, entry by entry.
    # Then users in one group are identical, and identical users hash alike so
    # they are in one group: the grouping is exactly "same counts".
    check = np.flatnonzero(rep != np.arange(n_users))
    if check.size == 0:
        return rep
    other = rep[check]
    if np.any(lens[check] != lens[other]):
        return None
    if _compiled(pair.size):
        from attnmodel.data.grouping import same_entries

        return rep if same_entries(check, other, start, lens, *cols, _VERIFY_PARTS) else None
    k = lens[check]
    ends = np.cumsum(k)
    lo = 0
    while lo < check.size:
        # Users check[lo:hi] hold about _VERIFY_CHUNK entries.
        hi = max(lo + 1, int(np.searchsorted(ends, ends[lo] - k[lo] + _VERIFY_CHUNK, "right")))
        kk = k[lo:hi]
        offset = np.cumsum(kk) - kk
        mine = np.repeat(start[check[lo:hi]] - offset, kk)
        mine += np.arange(mine.size)
        theirs = mine + np.repeat(start[other[lo:hi]] - start[check[lo:hi]], kk)
        for col in cols:
            if not np.array_equal(col[mine], col[theirs]):
                return None
        lo = hi
    return rep


def _first_members(inv: np.ndarray, n_groups: int) -> np.ndarray:
    """For group labels ``inv`` of users, each user's smallest fellow member."""
    first = np.full(n_groups, inv.size, dtype=np.int64)
    np.minimum.at(first, inv, np.arange(inv.size))
    return first[inv]


def _dense_groups(pair, n, s, lens, n_pairs) -> np.ndarray:
    """Exact: np.unique over the rows of a dense (users x 2*pairs) matrix."""
    local = np.repeat(np.arange(lens.size), lens)
    dense = np.zeros((lens.size, 2 * n_pairs), dtype=np.int64)
    dense[local, 2 * pair] = n
    dense[local, 2 * pair + 1] = s
    del local
    rows_u, inv = np.unique(dense, axis=0, return_inverse=True)
    return _first_members(inv.reshape(-1), rows_u.shape[0])


def _sort_groups(cols, start, lens) -> np.ndarray:
    """Exact: refine groups by the entry at position 0, 1, ... (memory O(users))."""
    n_users = lens.size
    gid = lens.astype(np.int64)  # users with different numbers of entries differ
    for k in range(int(lens.max())):
        has = lens > k
        at = start[has] + k
        for col in cols:
            v = np.full(n_users, -1, dtype=np.int64)  # -1: no entry at position k
            v[has] = col[at]
            order = np.lexsort((v, gid))
            gs, vs = gid[order], v[order]
            new = np.ones(n_users, dtype=bool)
            new[1:] = (gs[1:] != gs[:-1]) | (vs[1:] != vs[:-1])
            gid = np.empty(n_users, dtype=np.int64)
            gid[order] = np.cumsum(new) - 1
        if gid[order[-1]] == n_users - 1:  # every user on its own already
            break
    return _first_members(gid, int(gid.max()) + 1)
