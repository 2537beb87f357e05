"""Per-(user, pair) vote counts collapsed to distinct count rows.

Given ``mu``, a user's likelihood depends only on the counts ``(n, s)`` it gave
for each model pair (``n`` votes, ``s`` of them for the pair's stronger model).
Users with identical count rows share one likelihood and one posterior, so all
fitting works on the distinct rows, weighted by how many users share each.

This module works on plain integer arrays and knows nothing of pandas or files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CountTable", "collapse_counts"]

# Above this many cells a dense (users x 2*pairs) matrix is not built for the
# exact multi-pair collapse; users voting on several pairs then keep a row each.
_DENSE_CELL_LIMIT = 50_000_000


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
    """

    n_pairs: int
    row_ptr: np.ndarray
    entry_pair: np.ndarray
    entry_n: np.ndarray
    entry_s: np.ndarray
    row_weight: np.ndarray
    user_row: np.ndarray

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

    def votes_per_user(self) -> np.ndarray:
        """Total votes of each user, shape (m,)."""
        per_row = np.bincount(self.entry_row, weights=self.entry_n, minlength=self.n_rows)
        return per_row[self.user_row].astype(np.int64)


def collapse_counts(
    user: np.ndarray,
    pair: np.ndarray,
    n: np.ndarray,
    s: np.ndarray,
    n_users: int,
    n_pairs: int,
) -> CountTable:
    """Collapse per-(user, pair) counts to distinct count rows.

    Parameters
    ----------
    user, pair : ndarray of int, shape (K,)
        User index in ``[0, n_users)`` and pair index in ``[0, n_pairs)``; each
        (user, pair) combination appears at most once.
    n, s : ndarray of int, shape (K,)
        Votes and votes for the stronger model; entries with ``n == 0`` are ignored.
    n_users, n_pairs : int
        Every user must have at least one vote.

    Returns
    -------
    CountTable
    """
    user = np.asarray(user, dtype=np.int64)
    pair = np.asarray(pair, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    keep = n > 0
    user, pair, n, s = user[keep], pair[keep], n[keep], s[keep]
    if np.any(s < 0) or np.any(s > n):
        raise ValueError("counts must satisfy 0 <= s <= n")
    entries_per_user = np.bincount(user, minlength=n_users)
    if np.any(entries_per_user == 0):
        missing = int(np.flatnonzero(entries_per_user == 0)[0])
        raise ValueError(f"user index {missing} has no votes")

    single = entries_per_user[user] == 1
    # Users with one entry: exact integer key (pair, n, s).
    # n and s are at most max(n), so (pair * base + n) * base + s is exact.
    base = np.int64(n.max() + 1)
    key_single = (pair[single] * base + n[single]) * base + s[single]
    multi_users = np.flatnonzero(entries_per_user > 1)

    keys_u, inv_single = np.unique(key_single, return_inverse=True)
    s_u = keys_u % base
    n_u = (keys_u // base) % base
    pair_u = keys_u // (base * base)
    n_single_rows = keys_u.size
    row_weight = [np.bincount(inv_single, minlength=n_single_rows).astype(np.float64)]
    user_row = np.empty(n_users, dtype=np.int64)
    user_row[user[single]] = inv_single
    row_lengths = [np.ones(n_single_rows, dtype=np.int64)]
    e_pair, e_n, e_s = [pair_u], [n_u], [s_u]

    if multi_users.size:
        sel = ~single
        mu_user, mu_pair, mu_n, mu_s = user[sel], pair[sel], n[sel], s[sel]
        local = np.searchsorted(multi_users, mu_user)
        if multi_users.size * 2 * n_pairs <= _DENSE_CELL_LIMIT:
            dense = np.zeros((multi_users.size, 2 * n_pairs), dtype=np.int64)
            dense[local, 2 * mu_pair] = mu_n
            dense[local, 2 * mu_pair + 1] = mu_s
            rows_u, inv_multi, weight_multi = np.unique(
                dense, axis=0, return_inverse=True, return_counts=True
            )
            inv_multi = inv_multi.reshape(-1)
            nz_r, nz_p = np.nonzero(rows_u[:, 0::2])
            e_pair.append(nz_p)
            e_n.append(rows_u[nz_r, 2 * nz_p])
            e_s.append(rows_u[nz_r, 2 * nz_p + 1])
            row_lengths.append(np.bincount(nz_r, minlength=rows_u.shape[0]))
            row_weight.append(weight_multi.astype(np.float64))
            user_row[multi_users] = n_single_rows + inv_multi
        else:
            order = np.lexsort((mu_pair, local))
            e_pair.append(mu_pair[order])
            e_n.append(mu_n[order])
            e_s.append(mu_s[order])
            row_lengths.append(np.bincount(local, minlength=multi_users.size))
            row_weight.append(np.ones(multi_users.size))
            user_row[multi_users] = n_single_rows + np.arange(multi_users.size)

    lengths = np.concatenate(row_lengths)
    row_ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return CountTable(
        n_pairs=int(n_pairs),
        row_ptr=row_ptr,
        entry_pair=np.concatenate(e_pair).astype(np.int64),
        entry_n=np.concatenate(e_n).astype(np.int64),
        entry_s=np.concatenate(e_s).astype(np.int64),
        row_weight=np.concatenate(row_weight),
        user_row=user_row,
    )
