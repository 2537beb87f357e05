"""collapse_counts: exact grouping of users into distinct count rows."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pytest

from attnmodel.data import counts as counts_mod
from attnmodel.data.counts import CountTable, collapse_counts

METHODS = ("hash", "dense", "sort")


# ---------------------------------------------------------------------------
# seeded inputs: dense per-user counts n, s of shape (m, P)


def one_pair(rng):
    m = 3000
    n = rng.integers(1, 40, size=(m, 1))
    return n, rng.binomial(n, 0.7)


def sparse_many_pairs(rng):
    # 28 pairs, each user votes on a few of them; many users share rows.
    m, p = 4000, 28
    n = np.zeros((m, p), dtype=np.int64)
    k = rng.integers(1, 5, size=m)
    for i in range(m):
        cols = rng.choice(p, size=k[i], replace=False)
        n[i, cols] = rng.integers(1, 4, size=k[i])
    return n, rng.binomial(n, 0.6)


def identical_users(rng):
    # Few distinct rows, each repeated many times, users shuffled.
    p = 6
    proto_n = rng.integers(0, 5, size=(7, p))
    proto_n[:, 0] += 1
    proto_s = rng.binomial(proto_n, 0.5)
    pick = rng.integers(0, 7, size=2500)
    return proto_n[pick], proto_s[pick]


def all_pairs_user(rng):
    # Sparse users plus one (and a copy of it) voting on every pair.
    p = 15
    n = np.zeros((500, p), dtype=np.int64)
    n[np.arange(500), rng.integers(0, p, 500)] = rng.integers(1, 3, 500)
    n[rng.random((500, p)) < 0.05] += 1
    n[17] = rng.integers(1, 9, size=p)
    n[400] = n[17]
    s = rng.binomial(n, 0.8)
    s[400] = s[17]
    return n, s


def dense_random(rng):
    # Every user on every pair with varied counts: nearly all rows distinct.
    n = rng.integers(1, 30, size=(2000, 10))
    return n, rng.binomial(n, 0.55)


def huge_counts(rng):
    # Counts too large to pack (pair, n, s) into one int64: unpacked paths.
    base = np.array(
        [[2**40, 7], [2**40, 7], [3, 2**40 + 1], [3, 5], [2**40, 7]]
        + [[2**40, 0], [0, 3], [2**40, 0]],
        dtype=np.int64,
    )
    n = np.concatenate([base, base[[0]], rng.integers(1, 3, size=(50, 2))])
    s = n // 2
    return n, s


CASES = {
    "one_pair": one_pair,
    "sparse_many_pairs": sparse_many_pairs,
    "identical_users": identical_users,
    "all_pairs_user": all_pairs_user,
    "dense_random": dense_random,
    "huge_counts": huge_counts,
}


def entries(n, s, rng=None):
    """Sparse (user, pair, n, s) of the nonzero cells, optionally shuffled."""
    ui, pk = np.nonzero(n)
    order = np.arange(ui.size) if rng is None else rng.permutation(ui.size)
    ui, pk = ui[order], pk[order]
    return ui, pk, n[ui, pk], s[ui, pk]


def collapse(n, s, rng=None, **kw):
    ui, pk, nk, sk = entries(n, s, rng)
    return collapse_counts(ui, pk, nk, sk, n.shape[0], n.shape[1], **kw)


def python_groups(n, s):
    """Reference grouping: users keyed by the tuple of their counts."""
    groups = defaultdict(list)
    for i in range(n.shape[0]):
        groups[tuple(n[i].tolist()) + tuple(s[i].tolist())].append(i)
    return list(groups.values())


def check_table(table: CountTable, n, s):
    m, p = n.shape
    assert table.n_users == m and table.n_pairs == p
    # CSR layout.
    assert table.row_ptr[0] == 0 and table.row_ptr[-1] == table.entry_n.size
    lengths = np.diff(table.row_ptr)
    assert np.all(lengths >= 1)
    for arr in (table.row_ptr, table.entry_pair, table.entry_n, table.entry_s, table.user_row):
        assert arr.dtype == np.int64
    assert table.row_weight.dtype == np.float64
    assert np.all(table.entry_n >= 1)
    assert np.all((table.entry_s >= 0) & (table.entry_s <= table.entry_n))
    rows = table.entry_row
    same_row = rows[1:] == rows[:-1]
    assert np.all(np.diff(table.entry_pair)[same_row] > 0), "pairs must increase within a row"

    # (a) per-user dense counts reproduced exactly.
    n_out, s_out = table.user_counts()
    np.testing.assert_array_equal(n_out, n)
    np.testing.assert_array_equal(s_out, s)
    np.testing.assert_array_equal(table.votes_per_user(), n.sum(axis=1))

    # (b) two users share a row iff their count rows are identical.
    groups = python_groups(n, s)
    assert table.n_rows == len(groups)
    seen_rows = set()
    for members in groups:
        r = set(table.user_row[members].tolist())
        assert len(r) == 1, "identical users split over rows"
        (r,) = r
        assert r not in seen_rows, "different users merged into one row"
        seen_rows.add(r)
        # (c) row weight = group size.
        assert table.row_weight[r] == len(members)
    assert table.row_weight.sum() == m
    sizes = np.bincount(table.user_row, minlength=table.n_rows)
    np.testing.assert_array_equal(table.row_weight, sizes)


def tables_equal(a: CountTable, b: CountTable):
    assert a.n_pairs == b.n_pairs
    for name in ("row_ptr", "entry_pair", "entry_n", "entry_s", "row_weight", "user_row"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("shuffle", [False, True])
def test_collapse_is_exact(case, shuffle):
    rng = np.random.default_rng(sum(map(ord, case)))
    n, s = CASES[case](rng)
    table = collapse(n, s, rng if shuffle else None)
    check_table(table, n, s)


@pytest.mark.parametrize("case", list(CASES))
def test_hash_and_exact_fallbacks_agree(case, monkeypatch):
    # (d) every method gives the identical table (same rows in the same order).
    rng = np.random.default_rng(7 + len(case))
    n, s = CASES[case](rng)
    ref = collapse(n, s, method="hash")
    for method in ("dense", "sort"):
        tables_equal(ref, collapse(n, s, method=method))
    # "dense" above the cell limit refines by sorting; still the same table.
    monkeypatch.setattr(counts_mod, "_DENSE_CELL_LIMIT", 0)
    tables_equal(ref, collapse(n, s, method="dense"))


def test_hash_collisions_fall_back_to_exact(monkeypatch):
    # A deliberately weak hash (number of entries only) makes different users collide;
    # the verification must catch it and the exact path must take over.
    rng = np.random.default_rng(3)
    n, s = sparse_many_pairs(rng)
    ref = collapse(n, s, method="sort")

    def weak_hashes(*args):
        tot = args[-1].astype(np.uint64)  # the users' numbers of entries
        return tot, np.zeros_like(tot)

    calls = {"dense": 0, "sort": 0}
    real_dense, real_sort = counts_mod._dense_groups, counts_mod._sort_groups

    def spy_dense(*a):
        calls["dense"] += 1
        return real_dense(*a)

    def spy_sort(*a):
        calls["sort"] += 1
        return real_sort(*a)

    monkeypatch.setattr(counts_mod, "_user_hashes", weak_hashes)
    monkeypatch.setattr(counts_mod, "_dense_groups", spy_dense)
    monkeypatch.setattr(counts_mod, "_sort_groups", spy_sort)
    table = collapse(n, s)
    assert calls["dense"] == 1
    check_table(table, n, s)
    tables_equal(ref, table)

    # Colliding users of different lengths, and the sort fallback.
    monkeypatch.setattr(counts_mod, "_DENSE_CELL_LIMIT", 0)
    table = collapse(n, s)
    assert calls["sort"] == 1
    tables_equal(ref, table)


def test_hash1_collision_with_different_hash2(monkeypatch):
    # Hash 1 equal for all users, hash 2 exact-ish: grouping must use both keys.
    rng = np.random.default_rng(4)
    n, s = identical_users(rng)
    real = counts_mod._user_hashes

    def h1_constant(*a):
        h1, h2 = real(*a)
        return np.zeros_like(h1), h2

    monkeypatch.setattr(counts_mod, "_user_hashes", h1_constant)
    table = collapse(n, s)
    check_table(table, n, s)
    tables_equal(collapse(n, s, method="sort"), table)


def test_verification_in_small_chunks(monkeypatch):
    # Tiny verification chunks: the chunked comparison covers every entry.
    monkeypatch.setattr(counts_mod, "_VERIFY_CHUNK", 5)
    rng = np.random.default_rng(5)
    n, s = identical_users(rng)
    table = collapse(n, s)
    check_table(table, n, s)


def test_multi_rows_are_ordered_by_first_user():
    n = np.array([[1, 0], [2, 1], [1, 1], [2, 1], [1, 1], [3, 0]])
    s = np.array([[1, 0], [1, 1], [0, 1], [1, 1], [0, 1], [2, 0]])
    table = collapse(n, s)
    # Single-entry users (0 and 5) first, sorted by (pair, n, s); then rows of
    # users 1 and 2 in that order.
    np.testing.assert_array_equal(table.user_row, [0, 2, 3, 2, 3, 1])
    np.testing.assert_array_equal(table.row_weight, [1, 1, 2, 2])
    np.testing.assert_array_equal(table.row_ptr, [0, 1, 2, 4, 6])
    np.testing.assert_array_equal(table.entry_pair, [0, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(table.entry_n, [1, 3, 2, 1, 1, 1])
    np.testing.assert_array_equal(table.entry_s, [1, 2, 1, 1, 0, 1])


def test_zero_count_entries_are_ignored():
    table = collapse_counts([0, 0, 1], [0, 1, 1], [2, 0, 2], [1, 0, 1], 2, 2)
    n, s = table.user_counts()
    np.testing.assert_array_equal(n, [[2, 0], [0, 2]])
    np.testing.assert_array_equal(s, [[1, 0], [0, 1]])


# (e) invalid input


@pytest.mark.parametrize("method", METHODS)
def test_s_above_n_raises(method):
    with pytest.raises(ValueError, match="0 <= s <= n"):
        collapse_counts([0, 1], [0, 0], [3, 2], [4, 1], 2, 1, method=method)


def test_negative_s_raises():
    with pytest.raises(ValueError, match="0 <= s <= n"):
        collapse_counts([0, 1], [0, 0], [3, 2], [-1, 1], 2, 1)


@pytest.mark.parametrize("method", METHODS)
def test_user_without_votes_raises(method):
    with pytest.raises(ValueError, match="user index 1 has no votes"):
        collapse_counts([0, 2, 2], [0, 0, 1], [3, 2, 1], [1, 1, 0], 3, 2, method=method)
    # A user whose only entry has n == 0 has no votes either.
    with pytest.raises(ValueError, match="user index 1 has no votes"):
        collapse_counts([0, 1], [0, 0], [3, 0], [1, 0], 2, 1, method=method)


def test_repeated_cell_raises():
    with pytest.raises(ValueError, match="more than once"):
        collapse_counts([0, 1, 0], [1, 0, 1], [3, 2, 1], [1, 1, 0], 2, 2)


def test_out_of_range_indices_raise():
    with pytest.raises(ValueError, match="user indices"):
        collapse_counts([0, 2], [0, 0], [1, 1], [0, 0], 2, 1)
    with pytest.raises(ValueError, match="pair indices"):
        collapse_counts([0, 1], [0, 1], [1, 1], [0, 0], 2, 1)
    with pytest.raises(ValueError, match="method"):
        collapse_counts([0], [0], [1], [0], 1, 1, method="fast")


def test_table_does_not_alias_the_inputs():
    # Sorted input, all users on several pairs, all rows distinct: the output
    # entries must still be copies, not views of the caller's arrays.
    n = np.array([[1, 2], [2, 1], [3, 3]])
    s = np.array([[0, 1], [1, 1], [2, 0]])
    ui, pk, nk, sk = entries(n, s)
    table = collapse_counts(ui, pk, nk, sk, 3, 2)
    for arr in (table.entry_pair, table.entry_n, table.entry_s):
        for given in (ui, pk, nk, sk):
            assert not np.may_share_memory(arr, given)
    nk[:] = 99
    np.testing.assert_array_equal(table.user_counts()[0], n)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ties", [False, True])
def test_int32_inputs_give_the_int64_table(method, ties):
    # Engines hand int32 cells over unwidened. Counts up to 60000 make the packed
    # (pair, n, s) keys and the (user, pair) keys exceed 2**31, so a product
    # formed in 32 bits would wrap and change the grouping or the sort.
    rng = np.random.default_rng(32)
    n, s = sparse_many_pairs(rng)
    n[n > 0] *= rng.integers(1, 20000, size=int(np.count_nonzero(n)))
    n[:5] = n[5:10]  # some users share rows
    s = rng.binomial(n, 0.6)
    s[:5] = s[5:10]
    ui, pk, nk, sk = entries(n, s, rng)  # shuffled: the int32 sort path too
    tk = rng.integers(0, 3, size=nk.size) if ties else None
    wide = collapse_counts(ui, pk, nk, sk, n.shape[0], n.shape[1], method=method, t=tk)
    narrow = collapse_counts(
        *(a.astype(np.int32) for a in (ui, pk, nk, sk)),
        n.shape[0],
        n.shape[1],
        method=method,
        t=None if tk is None else tk.astype(np.int32),
    )
    tables_equal(wide, narrow)
    if not ties:
        check_table(narrow, n, s)
    assert narrow.entry_n.max() > 2**15


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("method", METHODS)
def test_blockwise_work_gives_the_same_table(case, method, monkeypatch):
    # Big inputs are packed, hashed and counted a block of entries at a time;
    # blocks of 5 entries split users and tokens at every possible place.
    rng = np.random.default_rng(11 + len(case))
    n, s = CASES[case](rng)
    ref = collapse(n, s, method=method)
    monkeypatch.setattr(counts_mod, "_BLOCK", 5)
    table = collapse(n, s, rng, method=method)
    tables_equal(ref, table)
    check_table(table, n, s)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("int32", [False, True])
def test_compiled_passes_give_the_same_table(case, int32, monkeypatch):
    # Big inputs hash, verify and copy the rows' entries in compiled, threaded
    # passes, and group single-entry users in a thread: same table as numpy's.
    rng = np.random.default_rng(13 + len(case))
    n, s = CASES[case](rng)
    ui, pk, nk, sk = entries(n, s, rng)
    if int32 and n.max() < 2**31:  # as engines hand cells over (huge_counts stays int64)
        ui, pk, nk, sk = (x.astype(np.int32) for x in (ui, pk, nk, sk))
    ref = collapse_counts(ui, pk, nk, sk, n.shape[0], n.shape[1])
    monkeypatch.setattr(counts_mod, "_COMPILED_ENTRIES", 0)
    table = collapse_counts(ui, pk, nk, sk, n.shape[0], n.shape[1])
    tables_equal(ref, table)
    check_table(table, n, s)


def test_compiled_verification_catches_collisions(monkeypatch):
    # The compiled check must find the users a weak hash put together.
    rng = np.random.default_rng(3)
    n, s = sparse_many_pairs(rng)
    ref = collapse(n, s, method="sort")
    monkeypatch.setattr(counts_mod, "_COMPILED_ENTRIES", 0)

    def weak_hashes(*args):
        tot = args[-1].astype(np.uint64)  # the users' numbers of entries
        return tot, np.zeros_like(tot)

    monkeypatch.setattr(counts_mod, "_user_hashes", weak_hashes)
    tables_equal(ref, collapse(n, s))
    # Same hashes, the check alone: it reports the first mismatch.
    from attnmodel.data.grouping import same_entries

    # Users 1 to 4 against user 0: 1 is the same, 2 differs in n, 3 in s, 4 in a pair.
    start = np.arange(0, 10, 2)
    lens = np.full(5, 2)
    pair = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 2])
    n_e = np.array([3, 4, 3, 4, 3, 5, 3, 4, 3, 4])
    s_e = np.array([1, 2, 1, 2, 1, 2, 1, 3, 1, 2])
    zero = np.zeros(1, dtype=np.int64)
    assert same_entries(np.array([1]), zero, start, lens, pair, n_e, s_e, 4)
    for other in (2, 3, 4):
        assert not same_entries(np.array([1, other]), zero[[0, 0]], start, lens, pair, n_e, s_e, 4)


@pytest.mark.parametrize("compiled", [False, True])
def test_taken_cells_are_freed_during_the_collapse(compiled, monkeypatch):
    # collapse_taken_counts empties the list it is given and lets go of each array
    # once done with it: by the time the output is copied (compiled path), the
    # users' array is gone, and each column is gone before the next one's copy.
    # Same table as collapse_counts either way.
    import weakref

    import attnmodel.data.grouping as grouping

    rng = np.random.default_rng(21)
    n, s = sparse_many_pairs(rng)
    ui, pk, nk, sk = (x.astype(np.int32) for x in entries(n, s))
    ref = collapse_counts(ui, pk, nk, sk, n.shape[0], n.shape[1])
    if compiled:
        monkeypatch.setattr(counts_mod, "_COMPILED_ENTRIES", 0)
    refs = [weakref.ref(x) for x in (ui, pk, nk, sk)]
    alive_at_copy = []
    real_gather = grouping.gather_rows

    def spy_gather(*args):
        alive_at_copy.append([r() is not None for r in refs])
        return real_gather(*args)

    monkeypatch.setattr(grouping, "gather_rows", spy_gather)
    taken = [ui, pk, nk, sk]
    del ui, pk, nk, sk
    table = counts_mod.collapse_taken_counts(taken, n.shape[0], n.shape[1])
    assert taken == []
    assert all(r() is None for r in refs)
    tables_equal(ref, table)
    check_table(table, n, s)
    if compiled:
        # user, pair, n, s alive at the copies of pair, n and s
        assert alive_at_copy == [
            [False, True, True, True],
            [False, False, True, True],
            [False, False, False, True],
        ]
    else:
        assert alive_at_copy == []


@pytest.mark.parametrize("case", list(CASES))
def test_pair_totals_are_the_users_sums(case):
    # The reference sums the users' dense (n, s) over users.
    rng = np.random.default_rng(17 + len(case))
    n, s = CASES[case](rng)
    table = collapse(n, s)
    got_n, got_s = counts_mod.pair_totals(table)
    assert got_n.dtype == got_s.dtype == np.int64
    np.testing.assert_array_equal(got_n, n.sum(axis=0))
    np.testing.assert_array_equal(got_s, s.sum(axis=0))


@pytest.mark.parametrize("case", list(CASES))
def test_row_sums_over_entries_are_the_dense_rows_sums(case):
    from attnmodel.data.grouping import pair_row_dot, row_totals

    rng = np.random.default_rng(29 + len(case))
    n, s = CASES[case](rng)
    table = collapse(n, s)
    first = np.unique(table.user_row, return_index=True)[1]  # a user of each row
    np.testing.assert_array_equal(row_totals(table.row_ptr, table.entry_s), s[first].sum(axis=1))
    per_pair = rng.uniform(-0.5, 0.5, table.n_pairs)
    got = pair_row_dot(table.row_ptr, table.entry_pair, table.entry_n, per_pair)
    np.testing.assert_allclose(got, n[first] @ per_pair, rtol=1e-13, atol=1e-12)


def test_what_a_table_keeps_is_formed_once_read_only_and_not_carried_by_replace():
    rng = np.random.default_rng(23)
    n, s = CASES[list(CASES)[0]](rng)
    table = collapse(n, s)
    votes, losses = table.votes_per_row(), table.entry_losses()
    assert table.votes_per_row() is votes and table.entry_losses() is losses
    assert not votes.flags.writeable and not losses.flags.writeable
    with pytest.raises(ValueError):
        votes[0] = 0
    np.testing.assert_array_equal(losses, table.entry_n - table.entry_s)
    assert losses.dtype == np.int64
    # A table made by replace keeps nothing of the old one's.
    other = dataclasses.replace(table, entry_n=table.entry_n * 2, entry_s=table.entry_s * 2)
    np.testing.assert_array_equal(other.votes_per_row(), 2 * votes)
    np.testing.assert_array_equal(other.entry_losses(), 2 * losses)
    np.testing.assert_array_equal(counts_mod.pair_totals(other)[0], 2 * n.sum(axis=0))


@pytest.mark.parametrize("case", list(CASES))
def test_votes_per_row_and_user_are_the_dense_sums(case):
    rng = np.random.default_rng(19 + len(case))
    n, s = CASES[case](rng)
    table = collapse(n, s)
    np.testing.assert_array_equal(table.votes_per_user(), n.sum(axis=1))
    per_row = table.votes_per_row()
    assert per_row.dtype == np.int64
    np.testing.assert_array_equal(per_row[table.user_row], n.sum(axis=1))
    # A row without entries has no votes (its neighbours keep theirs).
    ptr = table.row_ptr
    empty = CountTable(
        n_pairs=table.n_pairs,
        row_ptr=np.concatenate([ptr[:1], ptr]),
        entry_pair=table.entry_pair,
        entry_n=table.entry_n,
        entry_s=table.entry_s,
        row_weight=np.concatenate([[1.0], table.row_weight]),
        user_row=np.concatenate([[0], table.user_row + 1]),
    )
    np.testing.assert_array_equal(empty.votes_per_row(), np.concatenate([[0], per_row]))


def test_compiled_passes_from_fewer_entries_once_they_are_loaded(monkeypatch):
    # A reader that counted its cells with the compiled passes has paid for
    # loading them: its collapse takes them from _COMPILED_LOADED_ENTRIES on;
    # a process without them, only from _COMPILED_ENTRIES.
    import sys

    import attnmodel.data.grouping  # noqa: F401 - loaded, as after the DuckDB reader

    few, many = counts_mod._COMPILED_LOADED_ENTRIES, counts_mod._COMPILED_ENTRIES
    assert few < many
    assert counts_mod._compiled(few) and counts_mod._compiled(many)
    assert not counts_mod._compiled(few - 1)
    monkeypatch.delitem(sys.modules, "attnmodel.data.grouping")
    assert not counts_mod._compiled(few) and not counts_mod._compiled(many - 1)
    assert counts_mod._compiled(many)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_pair_sums_compiled_and_blocked_equal_an_exact_sum(dtype, monkeypatch):
    """Both ways of ``pair_sums`` give the exact int64 sums per pair.

    Reference: ``np.add.at`` into int64 (no float conversion). The values are
    large enough that a float32 or an int32 accumulator would be wrong, and
    one pair has no entries. Blocks smaller than the input exercise the
    blocked path's carry between blocks.
    """
    rng = np.random.default_rng(5)
    n_pairs = 9
    pair = rng.choice(np.array([0, 1, 2, 3, 5, 6, 7, 8]), 50_001).astype(dtype)
    values = rng.integers(0, 2**20, pair.size).astype(dtype)
    want = np.zeros(n_pairs, dtype=np.int64)
    np.add.at(want, pair.astype(np.int64), values.astype(np.int64))
    assert want[4] == 0 and want.max() > 2**31
    monkeypatch.setattr(counts_mod, "_BLOCK", 4096)
    for compiled in (True, False):
        monkeypatch.setattr(counts_mod, "_compiled", lambda n, c=compiled: c)
        got = counts_mod.pair_sums(pair, values, n_pairs)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want, err_msg=f"compiled={compiled}")


def test_compiled_pair_sums_refuse_an_index_outside_the_pairs():
    from attnmodel.data.grouping import pair_value_sums

    values = np.ones(3, dtype=np.int64)
    for bad in (np.array([0, 3, 1]), np.array([0, -1, 1])):
        with pytest.raises(ValueError, match="outside"):
            pair_value_sums(bad, values, 3)


def test_users_grouped_by_row_in_order_and_kept():
    """``group_by_row`` lists each row's indices in increasing order (rows without
    any included); a table forms its users' grouping once and keeps it read-only."""
    import attnmodel as am
    from attnmodel.data.counts import group_by_row

    rng = np.random.default_rng(3)
    rows = rng.integers(0, 7, 200)
    rows[rows == 4] = 5  # row 4 has no index, row 7 is past every index
    ptr, items = group_by_row(rows, 8)
    assert ptr[0] == 0 and ptr[-1] == rows.size
    for r in range(8):
        np.testing.assert_array_equal(items[ptr[r] : ptr[r + 1]], np.flatnonzero(rows == r))

    n = rng.integers(1, 4, (60, 3))
    counts = am.VoteData.from_counts(n, rng.binomial(n, 0.7)).counts
    grouped = counts.users_by_row()
    assert counts.users_by_row() is grouped
    assert not any(a.flags.writeable for a in grouped)
    for r in range(counts.n_rows):
        users = grouped[1][grouped[0][r] : grouped[0][r + 1]]
        np.testing.assert_array_equal(users, np.flatnonzero(counts.user_row == r))
