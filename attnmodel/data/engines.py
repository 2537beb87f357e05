"""Counting votes outside pandas: DuckDB for files of any size, Dask for clusters.

Fitting needs only the per-(user, pair) counts, so an engine reads the log,
checks it, orients every vote to its pair and aggregates it to
:class:`VoteCells`: one row per (user, pair) that occurs, with the votes, the
votes won by the pair's first model (in name order) and the ties. Only these
counts, the distinct users and the pairs reach Python; the memory they take
grows with the number of (user, pair) cells, not with the number of votes.
The cells stream into numpy in batches, as 32-bit integers when the log's
size allows, so Python never holds a second copy of them.
:meth:`attnmodel.data.votes.VoteData.from_file` then designates each pair's
stronger model exactly as the pandas reader does, so that every engine gives
the same :class:`~attnmodel.data.votes.VoteData`.

DuckDB reads the log three times: once for the distinct combinations of the
vote columns (a few hundred rows, where the checks run), once for the distinct
users (in order of first appearance), and once for the votes. When the 64-bit
hashes of the distinct user ids are distinct (checked on the users), that last
pass only streams each vote's user hash and pair into compiled passes
(:mod:`attnmodel.data.grouping`) that count the cells: a lookup per vote among
the users' hashes, where a grouping by (user, pair) in DuckDB would insert one
into a table of the cells and spill it to disk on a big log. Otherwise DuckDB
groups the votes by (user id, pair).

The checks are those of the pandas reader (:meth:`VoteData.from_frame
<attnmodel.data.votes.VoteData.from_frame>`), with the same messages naming the
column, the row and the value. A row is its 0-based position in its file; the
message names the file too when the log has several.

DuckDB runs out of core: it keeps at most ``memory_limit`` in memory and spills
the rest of its work to ``temp_directory`` (defaults:
:data:`DEFAULT_MEMORY_LIMIT` and a folder in the system's temporary folder).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attnmodel.data.io import expand_table_path, first_bad_jsonl_line
from attnmodel.data.spellings import LABEL_HELP, WINNER_CODES, same_text_error
from attnmodel.errors import TableFileError, VoteDataError

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "ENGINES",
    "SMALL_FILE_BYTES",
    "VoteCells",
    "choose_engine",
    "duckdb_cells",
    "table_columns",
]

#: Engines of :meth:`attnmodel.data.votes.VoteData.from_file`.
ENGINES = ("auto", "duckdb", "pandas", "dask")

#: ``engine="auto"`` reads a single file smaller than this with pandas.
SMALL_FILE_BYTES = 8 * 2**20

#: DuckDB's memory limit unless one is given: a 10^7-row log (5 million
#: (user, pair) cells) is counted within it without spilling; a bigger one
#: spills to the temporary folder. A lower limit saves memory for time.
DEFAULT_MEMORY_LIMIT = "1GB"

#: What pandas reads as missing in a CSV file (``pandas.read_csv``'s default
#: ``na_values``), so that DuckDB reads the same cells as missing.
CSV_NA_VALUES = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)

# Python's str.strip() removes these (and more exotic spaces, rare in logs).
_SPACE = "' \t\n\r' || chr(11) || chr(12)"

# A row's place in the log: file index in the high bits, row in the file below.
_ROW_BITS = 40

# Rows per batch when results stream into numpy, and per block of in-place work.
_BATCH_ROWS = 1 << 20

# DuckDB's memory limit for the moment it hands its freed buffers back (_Source.release_memory).
_SHRUNK_MEMORY = "64MB"

# Chunks of users the compiled counting of the cells splits the users into
# (many per thread: users' vote counts are skewed).
_USER_PARTS = 64

_STRING_TYPES = ("VARCHAR",)
_NUMBER_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
)


@dataclass
class VoteCells:
    """Votes aggregated per (user, pair): what an engine hands to :class:`VoteData`.

    :class:`VoteData` takes the users and the cells out of it (:meth:`take`).

    Attributes
    ----------
    layout : {"raw", "oriented"}
    users : pd.Index, shape (m_all,)
        Every user, tie-only ones included, in order of first appearance.
    user_has_votes : ndarray of bool, shape (m_all,)
        False for users whose votes are all ties.
    pairs : list of tuple or pd.Index, length P_all
        Raw layout: ``(x, y)``, the pair's two model names in name order, in
        order of the pair's first appearance (ties included). Oriented layout:
        the pair labels in order of first appearance.
    pair_ties : ndarray of int, shape (P_all,)
        Ties of each pair (raw layout; zeros otherwise).
    cell_user : ndarray of int32 or int64, shape (C,)
        Position of the cell's user among the users with votes
        (``users[user_has_votes]``).
    cell_pair : ndarray of int32 or int64, shape (C,)
        Position of the cell's pair in ``pairs``.
    cell_n : ndarray of int32 or int64, shape (C,)
        Votes other than ties, at least 1 (cells of ties only are left out).
    cell_a : ndarray of int32 or int64, shape (C,)
        Raw: of them, votes won by ``x``. Oriented: votes with ``z = 1``.
    n_rows : int
        Rows scanned.
    columns : list of str
        The log's columns.
    """

    layout: str
    users: pd.Index
    user_has_votes: np.ndarray
    pairs: Any
    pair_ties: np.ndarray
    cell_user: np.ndarray
    cell_pair: np.ndarray
    cell_n: np.ndarray
    cell_a: np.ndarray
    n_rows: int
    columns: list

    def take(self) -> tuple[pd.Index, list[np.ndarray]]:
        """The users and the cells ``[cell_user, cell_pair, cell_n, cell_a]``, no longer held here.

        The cells of a big log are the largest arrays of its read, and the
        users' ids the next: whoever takes them holds their only references
        (the engines keep none), so each can be freed as soon as its last use
        is over. Afterwards this object holds no users and no cells.
        """
        users = self.users
        cells = [self.cell_user, self.cell_pair, self.cell_n, self.cell_a]
        self.users = users[:0]
        self.cell_user = self.cell_pair = self.cell_n = self.cell_a = np.zeros(0, dtype=np.int64)
        return users, cells


def choose_engine(path: str | os.PathLike) -> str:
    """The engine ``"auto"`` stands for: pandas for one small file, else DuckDB.

    Raises
    ------
    TableFileError
        The path names no table file.
    """
    _, files = expand_table_path(path, "votes")
    if (
        len(files) == 1
        and str(files[0]) == str(path)
        and files[0].stat().st_size < SMALL_FILE_BYTES
    ):
        return "pandas"
    return "duckdb"


def _quote(name: Hashable) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _Source:
    """A DuckDB connection with the log as the view ``log`` (columns + ``_ord``)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        user: Hashable,
        memory_limit: str | None,
        temp_directory: str | os.PathLike | None,
        threads: int | None,
    ) -> None:
        import duckdb

        self.path = str(path)
        self.kind, files = expand_table_path(path, "votes")
        self.files = [str(f) for f in files]
        self.multi = len(self.files) > 1 or Path(self.path).is_dir() or self.path != self.files[0]
        self.memory_limit = memory_limit or DEFAULT_MEMORY_LIMIT
        config: dict[str, Any] = {
            "memory_limit": self.memory_limit,
            "temp_directory": str(
                temp_directory or Path(tempfile.gettempdir()) / "attnmodel-duckdb"
            ),
            # A CSV or JSON row's number is its place in the scan; a Parquet
            # row's is read from the file, so its scan may run in any order.
            "preserve_insertion_order": self.kind != "parquet",
        }
        if threads:
            config["threads"] = int(threads)
        try:
            self.con = duckdb.connect(config=config)
        except duckdb.Error as e:
            raise ValueError(
                f"DuckDB refused memory_limit={memory_limit!r}, "
                f"temp_directory={temp_directory!r} or threads={threads!r}: {e}"
            ) from e
        file_list = "[" + ", ".join(_literal(f) for f in self.files) + "]"
        hive = any("=" in part for f in files for part in Path(f).parent.parts)
        opts = f"hive_partitioning = {str(hive).lower()}, union_by_name = true"
        if self.kind == "parquet":
            reader = f"read_parquet({file_list}, {opts})"
            order = f"file_index * {2**_ROW_BITS} + file_row_number"
        elif self.kind == "csv":
            na = "[" + ", ".join(_literal(v) for v in CSV_NA_VALUES) + "]"
            reader = f"read_csv({file_list}, {opts}, nullstr = {na}"
            try:
                names = [
                    r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {reader})").fetchall()
                ]
            except duckdb.Error as e:
                raise TableFileError(
                    f"{self.path!r}: could not be read as csv: {e}", path=self.path
                ) from e
            if str(user) in names:
                reader += f", types = {{{_literal(str(user))}: 'VARCHAR'}}"
            reader += ")"
            if str(user) in names:
                reader = self._literal_ids_csv(file_list, opts, reader, str(user), na)
            order = "row_number() OVER () - 1"
        else:
            reader = f"read_json({file_list}, {opts}, format = 'newline_delimited')"
            order = "row_number() OVER () - 1"
        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
            self.types = {name: str(kind) for name, kind, *_ in described}
            if reader.startswith("(SELECT"):
                self.types.pop("file_index", None)  # carried by _literal_ids_csv, not a column
            if self.kind == "jsonl" and str(user) in self.types:
                # JSON values keep their own type: 7 and "007" are two users.
                columns = {name: kind for name, kind in self.types.items()}
                columns[str(user)] = "JSON"
                spec = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in columns.items())
                reader = (
                    f"read_json({file_list}, {opts}, format = 'newline_delimited', "
                    f"columns = {{{spec}}})"
                )
                self.types[str(user)] = "JSON"
            self.con.execute(
                f"CREATE TEMP VIEW log AS SELECT *, file_index AS _file, {order} AS _ord "
                f"FROM {reader}"
            )
        except duckdb.Error as e:
            bad = first_bad_jsonl_line(self.files) if self.kind == "jsonl" else None
            if bad is not None:
                raise TableFileError(
                    f"{str(bad[0])!r}: line {bad[1]} is not valid JSON ({bad[2]})",
                    path=str(bad[0]),
                ) from e
            raise TableFileError(
                f"{self.path!r}: could not be read as {self.kind}: {e}", path=self.path
            ) from e
        self._file_starts: list[int] | None = None

    def _literal_ids_csv(self, file_list: str, opts: str, reader: str, user: str, na: str) -> str:
        """A CSV reader whose user column has only empty cells missing (a user ``NA`` is a user).

        Every cell is read as written, and each other column is read as ``reader``
        reads it: the missing-value spellings become NULL, then the type DuckDB
        found for that column.
        """
        import duckdb

        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
        except duckdb.Error as e:
            raise TableFileError(
                f"{self.path!r}: could not be read as csv: {e}", path=self.path
            ) from e
        raw = f"read_csv({file_list}, {opts}, all_varchar = true, nullstr = [''])"
        columns = []
        for name, kind, *_ in described:
            col = _quote(name)
            if name == user:
                columns.append(col)
            else:
                columns.append(
                    f"CAST(CASE WHEN list_contains({na}, {col}) THEN NULL ELSE {col} END "
                    f"AS {kind}) AS {col}"
                )
        return f"(SELECT {', '.join(columns)}, file_index FROM {raw})"

    @property
    def columns(self) -> list[str]:
        return list(self.types)

    def sql(self, query: str):
        import duckdb

        try:
            return self.con.execute(query)
        except duckdb.Error as e:
            raise TableFileError(
                f"{self.path!r}: could not be read as {self.kind}: {e}", path=self.path
            ) from e

    def arrow(self, query: str):
        """A query's result as a pyarrow Table."""
        import duckdb

        try:
            return self.con.sql(query).to_arrow_table()
        except duckdb.Error as e:
            raise TableFileError(
                f"{self.path!r}: could not be read as {self.kind}: {e}", path=self.path
            ) from e

    def numpy(self, query: str, most_rows: int) -> dict[str, np.ndarray]:
        """A query's result as one numpy array per column, of the columns' own types.

        The result streams in batches, each copied into its place in arrays of
        ``most_rows`` rows (at least the result's rows) and then dropped, so
        Python holds the arrays and one batch, never the batches and their
        joined copy together. The arrays are returned cut to the result's rows;
        the pages of the part never written are never touched, so they take no
        memory.
        """
        import duckdb

        try:
            reader = self.con.sql(query).to_arrow_reader(_BATCH_ROWS)
            out = {
                f.name: np.empty(most_rows, dtype=f.type.to_pandas_dtype()) for f in reader.schema
            }
            done = 0
            for batch in reader:
                if done + batch.num_rows > most_rows:
                    raise RuntimeError(f"the query returned more than {most_rows} rows")
                for name, column in zip(batch.schema.names, batch.columns, strict=True):
                    out[name][done : done + batch.num_rows] = column.to_numpy(zero_copy_only=False)
                done += batch.num_rows
        except duckdb.Error as e:
            raise TableFileError(
                f"{self.path!r}: could not be read as {self.kind}: {e}", path=self.path
            ) from e
        return {name: values[:done] for name, values in out.items()}

    def release_memory(self) -> None:
        """Return the memory DuckDB keeps for reuse after its big steps to the system.

        DuckDB holds on to the buffers of a finished GROUP BY; lowering its
        memory limit for a moment hands them back (what little is still in
        use may move to the temporary folder).
        """
        import duckdb

        for limit in (_SHRUNK_MEMORY, self.memory_limit):
            try:
                self.con.execute(f"SET memory_limit = {_literal(limit)}")
            except duckdb.Error:
                pass  # memory kept, or a lower limit: slower, never wrong

    def where(self, ord_: int) -> tuple[str, Any]:
        """Words and ``row`` attribute for a row's ``_ord``."""
        if self.kind == "parquet":
            f, pos = ord_ >> _ROW_BITS, ord_ & ((1 << _ROW_BITS) - 1)
        else:
            if self._file_starts is None:
                rows = self.sql("SELECT _file, min(_ord) FROM log GROUP BY _file").fetchall()
                starts = dict(rows)
                self._file_starts = [starts.get(k, 0) for k in range(len(self.files))]
            f = max(k for k, s in enumerate(self._file_starts) if s <= ord_)
            pos = ord_ - self._file_starts[f]
        if not self.multi:
            return f"row {pos} (index label {pos})", pos
        return f"file {self.files[f]!r}, row {pos}", (self.files[f], pos)

    def value(self, column: Hashable, ord_: int) -> Any:
        """A cell's value as pandas would read it."""
        kind = self.types.get(str(column))
        q = f"SELECT {_quote(column)} AS v FROM log WHERE _ord = {int(ord_)}"
        table = self.arrow(q)
        if kind == "JSON":
            raw = table.column("v")[0].as_py()
            decoded = None if raw is None else json.loads(raw)
            # pandas reads a missing JSON value as NaN (as in a column of strings).
            return float("nan") if decoded is None else decoded
        v = table.column("v").to_pandas().iloc[0]
        return v.item() if isinstance(v, np.generic) else v


def table_columns(source: _Source) -> list[str]:
    """Column names of an opened log."""
    return source.columns


def _blank(expr: str, kind: str | None) -> str:
    """SQL: the value is missing, or a string empty after stripping."""
    if kind in _STRING_TYPES:
        return f"({expr} IS NULL OR trim({expr}, {_SPACE}) = '')"
    if kind == "JSON":
        return (
            f"({expr} IS NULL OR json_type({expr}) = 'NULL' OR (json_type({expr}) = 'VARCHAR' "
            f"AND trim({expr} ->> '$', {_SPACE}) = ''))"
        )
    return f"({expr} IS NULL)"


def _stripped(expr: str, kind: str | None) -> str:
    return f"trim({expr}, {_SPACE})" if kind in _STRING_TYPES else expr


class _Problems:
    """Checks on a table of distinct values (columns ``first`` and ``rows``)."""

    def __init__(self) -> None:
        self.checks: list[tuple[str, str]] = []

    def add(self, name: str, condition: str) -> None:
        self.checks.append((name, condition))

    def select(self) -> str:
        return ", ".join(
            f"min(first) FILTER (WHERE {c}) AS {n}_first, "
            f"coalesce(sum(rows) FILTER (WHERE {c}), 0) AS {n}_count"
            for n, c in self.checks
        )


def _raise_rows(src: _Source, column: Hashable, first: int, count: int, problem: str) -> None:
    words, row = src.where(int(first))
    value = src.value(column, int(first))
    more = f" ({count - 1} more rows like it)" if count > 1 else ""
    raise VoteDataError(
        f"column {column!r}, {words}, value {value!r}: {problem}{more}",
        column=column,
        row=row,
        value=value,
    )


def _require(src: _Source, *names: Hashable) -> None:
    for name in names:
        if str(name) not in src.types:
            raise VoteDataError(
                f"missing column {name!r}; available columns: {src.columns}", column=name
            )


def _users(src: _Source, user: Hashable) -> tuple[str, pd.Index, Any]:
    """The distinct users in order of first appearance (one pass over the log).

    Raises for a missing or blank user id. Returns the key the cells name a
    user by, as an SQL expression of a user column ``{u}``, the users, and
    each user's key (a pyarrow array, in the users' order). The key is the
    id's 64-bit hash (:data:`USER_KEY`), which is looked up much faster than
    long text ids, when the hashes tell the log's users apart, else the id
    itself. The users are sorted once, as they are fetched.
    """
    src.sql(
        f"CREATE TEMP TABLE users AS SELECT {_quote(user)} AS u, min(_ord) AS first "
        "FROM log GROUP BY u"
    )
    kind = src.types[str(user)]
    # Text made of spaces sorts before "!": a cheap filter ahead of the exact test.
    early = "(u IS NULL OR u < '!') AND " if kind in _STRING_TYPES else ""
    if src.sql(f"SELECT count(*) FROM users WHERE {early}{_blank('u', kind)}").fetchall()[0][0]:
        _raise_missing_users(src, user)
    distinct, total = src.sql(
        f"SELECT count(DISTINCT {USER_KEY.format(u='u')}), count(*) FROM users"
    ).fetchall()[0]
    key = USER_KEY if distinct == total else "{u}"
    arrow = src.arrow(f"SELECT u, first, {key.format(u='u')} AS k FROM users ORDER BY first")
    src.sql("DROP TABLE users")
    if kind == "JSON":
        values = [json.loads(v) for v in arrow.column("u").to_pylist()]
        users = pd.Index(values)
        first = arrow.column("first").to_numpy()
        error = same_text_error(user, users, lambda k: src.where(int(first[k])))
        if error is not None:
            raise error
        return key, users, arrow.column("k")
    return key, pd.Index(arrow.column("u").to_pandas()), arrow.column("k")


def _load_counting() -> None:
    """Import the compiled counting passes and load one of them from Numba's cache.

    Best effort: any error is left for the cells' own first use to raise.
    """
    try:
        from attnmodel.data.grouping import key_table, table_size

        # The argument types of _counted_cells's call: 64-bit keys, 32-bit slots.
        keys = np.arange(1, 3, dtype=np.uint64)
        key_table(keys, np.empty(table_size(keys.size), dtype=np.int32))
    except Exception:  # noqa: BLE001 - a warm-up; the read itself reports failures
        pass


def _start_counting_load() -> threading.Thread:
    """Start Numba (:func:`_load_counting`) in a thread beside DuckDB's scans.

    Numba's start (its import, its first dispatch, which imports SciPy's linear
    algebra, and a cached pass's machine code) takes about half a second of
    one core. DuckDB's queries release the interpreter, so in a thread it runs
    while they do; it saves what DuckDB leaves of the cores (on 2 cores, a
    10^7-row read: 6 % of the oriented layout's time, nothing measurable of the
    raw layout's; ``benchmarks/README.md``).
    """
    loading = threading.Thread(target=_load_counting, name="attnmodel-numba-start", daemon=True)
    loading.start()
    return loading


def _progress_thread(con, report: Callable[[float], None] | None):
    """Poll DuckDB's query progress into ``report`` until the returned event is set."""
    stop = threading.Event()
    if report is None:
        return stop, None

    def run() -> None:
        while not stop.wait(0.5):
            try:
                p = con.query_progress()
            except Exception:  # noqa: BLE001 - progress is best effort
                return
            if p is not None and p >= 0:
                report(float(p))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return stop, t


def duckdb_cells(
    path: str | os.PathLike,
    names: dict[str, Any],
    *,
    memory_limit: str | None = None,
    temp_directory: str | os.PathLike | None = None,
    threads: int | None = None,
    resolve_layout: Callable[[Sequence[str]], str] | None = None,
    progress: Callable[[float], None] | None = None,
) -> VoteCells:
    """Read, check and aggregate a vote log with DuckDB.

    Parameters
    ----------
    path : path-like
        A file, glob or folder (:func:`attnmodel.data.io.expand_table_path`).
    names : dict
        Column options (:data:`attnmodel.data.spellings.COLUMN_DEFAULTS`), as
        for :meth:`attnmodel.data.votes.VoteData.from_frame`; a ``layout`` of
        None lets ``resolve_layout(columns)`` decide.
    memory_limit : str, optional
        DuckDB's memory limit (e.g. ``"4GB"``); default :data:`DEFAULT_MEMORY_LIMIT`.
    temp_directory : path-like, optional
        Where DuckDB spills; default ``attnmodel-duckdb`` in the system's
        temporary folder.
    threads : int, optional
        DuckDB's threads; default one per core.
    resolve_layout : callable, optional
        Column names -> layout, when ``layout`` is None.
    progress : callable, optional
        Called with the fraction (0..100) of the scan done, about twice a second.

    Returns
    -------
    VoteCells

    Raises
    ------
    TableFileError
        The files cannot be found or read.
    VoteDataError
        Bad contents, with the message of the pandas reader.
    """
    user = names["user"]
    # Either layout's cells are counted by compiled passes: Numba starts meanwhile.
    loading = _start_counting_load()
    try:
        src = _Source(
            path,
            user=user,
            memory_limit=memory_limit,
            temp_directory=temp_directory,
            threads=threads,
        )
        try:
            return _layout_cells(src, names, resolve_layout, progress)
        finally:
            src.release_memory()  # closing alone leaves DuckDB's buffers with the process
            src.con.close()
    finally:
        loading.join()


def _layout_cells(
    src: _Source,
    names: dict[str, Any],
    resolve_layout: Callable[[Sequence[str]], str] | None,
    progress: Callable[[float], None] | None,
) -> VoteCells:
    """The cells of ``src`` in its layout, DuckDB's progress reported meanwhile."""
    user = names["user"]
    layout = names["layout"]
    if layout is None:
        if resolve_layout is None:
            raise ValueError("layout is None and there is no resolve_layout")
        layout = resolve_layout(src.columns)
    stop, thread = _progress_thread(src.con, progress)
    try:
        if layout == "raw":
            return _raw_cells(
                src, user, names["model_a"], names["model_b"], names["winner"], names["ties"]
            )
        return _oriented_cells(src, user, names["z"], names["pair"])
    finally:
        stop.set()
        if thread is not None:
            thread.join()


#: How the cells name a user ``{u}`` when the users' hashes are distinct (they
#: are checked on the table of distinct users first); else the id itself.
USER_KEY = "hash({u})"


def _raw_cells(
    src: _Source,
    user: Hashable,
    model_a: Hashable,
    model_b: Hashable,
    winner: Hashable,
    ties: str,
) -> VoteCells:
    _require(src, user)
    _require(src, model_a, model_b, winner)
    t = src.types
    ka, kb, kw = t[str(model_a)], t[str(model_b)], t[str(winner)]
    # The checks run on the distinct (model_a, model_b, winner) combinations,
    # a few hundred rows however long the log.
    src.sql(
        "CREATE TEMP TABLE combos AS SELECT "
        f"{_quote(model_a)} AS ma, {_quote(model_b)} AS mb, {_quote(winner)} AS mw, "
        "min(_ord) AS first, count(*) AS rows FROM log GROUP BY ALL"
    )
    a, b = _stripped("ma", ka), _stripped("mb", kb)
    if ka != kb:
        # One name type for both columns, so that a pair is one pair.
        a, b = f"CAST({a} AS VARCHAR)", f"CAST({b} AS VARCHAR)"
    if kw in _STRING_TYPES:
        cases = " ".join(f"WHEN {_literal(k)} THEN {v}" for k, v in WINNER_CODES.items())
        code = f"CASE trim(mw, {_SPACE}) {cases} ELSE -1 END"
    else:
        code = "-1"
    bad_a, bad_b = _blank("ma", ka), _blank("mb", kb)
    prob = _Problems()
    prob.add("a_missing", bad_a)
    prob.add("b_missing", bad_b)
    prob.add("same", f"NOT {bad_a} AND NOT {bad_b} AND {a} = {b}")
    prob.add("winner", f"{code} < 0")
    if ties == "error":
        prob.add("tie", f"{code} = 2")
    checks = _check_results(src, prob, "combos")
    if checks["rows"] == 0:
        raise VoteDataError("the table has no rows")
    if any(checks[f"{name}_count"] for name, _ in prob.checks):
        # A missing user id is reported first, as by the pandas reader.
        _raise_missing_users(src, user)
    _raise_first(src, checks, "a_missing", model_a, "model name is missing")
    _raise_first(src, checks, "b_missing", model_b, "model name is missing")
    if checks["same_count"]:
        first = int(checks["same_first"])
        words, row = src.where(first)
        value = src.value(model_a, first)
        value = value.strip() if isinstance(value, str) else value
        raise VoteDataError(
            f"{words}: columns {model_a!r} and {model_b!r} are both {value!r}; "
            f"a vote compares two different models",
            row=row,
            value=value,
        )
    _raise_first(
        src,
        checks,
        "winner",
        winner,
        f"unknown winner; expected one of {sorted(WINNER_CODES)}",
    )
    if ties == "error":
        _raise_first(src, checks, "tie", winner, "tie votes are not allowed (ties='error')")

    # Models get integer ids in name order, a pair is lo * k + hi, and each
    # combination says what one of its votes adds to its cell's counts.
    src.sql(
        "CREATE TEMP TABLE models AS SELECT name, (row_number() OVER (ORDER BY name) - 1) AS id "
        f"FROM (SELECT {a} AS name FROM combos UNION SELECT {b} AS name FROM combos)"
    )
    names = src.arrow("SELECT name FROM models ORDER BY id").column("name").to_pylist()
    k = max(len(names), 1)
    src.sql(
        f"""
        CREATE TEMP TABLE combo_codes AS
        SELECT ma, mb, mw, first, rows, {code} = 2 AS tie,
               least(x.id, y.id) * {k} + greatest(x.id, y.id) AS pr,
               CASE WHEN ({code} = 0 AND x.id < y.id) OR ({code} = 1 AND y.id < x.id)
                    THEN 1 ELSE 0 END AS win
        FROM combos JOIN models x ON {a} = x.name JOIN models y ON {b} = y.name
        """
    )
    on = f"{_quote(model_a)} = c.ma AND {_quote(model_b)} = c.mb AND {_quote(winner)} = c.mw"
    users, has_votes, pair_codes, ties, cells = _ranked_cells(src, user, on)
    pairs = [(names[int(c) // k], names[int(c) % k]) for c in pair_codes]
    return _cells("raw", users, has_votes, pairs, ties, cells, checks["rows"], src.columns)


def _raise_missing_users(src: _Source, user: Hashable) -> None:
    """Raise for missing or blank user ids (one pass over the log), if there are any."""
    bad = _blank(_quote(user), src.types[str(user)])
    first, count = src.sql(
        f"SELECT min(_ord) FILTER (WHERE {bad}), count(*) FILTER (WHERE {bad}) FROM log"
    ).fetchall()[0]
    if count:
        _raise_rows(src, user, first, int(count), "user id is missing")


def _ranked_cells(src: _Source, user: Hashable, on: str) -> tuple:
    """Count the cells (one pass over the log); users and pairs in order of first appearance.

    ``combo_codes`` (``c``) has one row per distinct combination of the
    log's vote columns, with its pair ``pr``, its ``first`` row, its
    ``rows``, ``tie`` and ``win`` (a vote for the pair's first model); ``on``
    joins a log row to its combination. Ties are counted per pair from the
    combinations, so the cells count the other votes only.

    When the users' hashes tell them apart (:func:`_users`), DuckDB only
    streams each vote's user hash and its code (pair and win), and the votes
    are counted in compiled passes (:mod:`attnmodel.data.grouping`): the
    hashes are looked up among the users' (every vote's hash is there), the
    codes ordered by user, and each user's codes counted. That is a lookup per
    vote where a grouping by (user, pair) would insert one. Otherwise DuckDB
    groups the votes by (user id, pair).

    Returns users, which users have votes, the pairs' codes, their ties, and
    the cells (``ui``: position among the users with votes), ordered by user
    and pair.
    """
    key, users, user_keys = _users(src, user)
    n_users = len(users)
    src.sql(
        "CREATE TEMP TABLE pair_rank AS SELECT pr, "
        "coalesce(sum(rows) FILTER (WHERE tie), 0)::BIGINT AS ties, "
        "(row_number() OVER (ORDER BY min(first)) - 1) AS idx FROM combo_codes GROUP BY pr"
    )
    pair_tab = src.arrow("SELECT pr, ties FROM pair_rank ORDER BY idx")
    # 32-bit columns when they hold the numbers: half the memory for the cells.
    n_rows = src.sql("SELECT sum(rows) FROM combo_codes").fetchall()[0][0]
    count_type = "INTEGER" if n_rows < 2**31 else "BIGINT"
    user_type = "INTEGER" if n_users < 2**31 else "BIGINT"
    # A cell holds at least one vote that is not a tie: that bounds the cells.
    votes = int(
        src.sql("SELECT coalesce(sum(rows), 0) FROM combo_codes WHERE NOT tie").fetchall()[0][0]
    )
    if key == "{u}":
        cells_out = _grouped_cells(src, user, on, user_keys, user_type, count_type, votes)
    else:
        cells_out = _counted_cells(
            src, user, on, key, user_keys, pair_tab.num_rows, user_type, count_type, votes
        )
    # Users whose every vote is a tie have no cell; the others are renumbered
    # (in place, a block at a time: the cells are the largest arrays here).
    ui = cells_out["ui"]
    has_votes = np.zeros(len(users), dtype=bool)
    for lo in range(0, ui.size, _BATCH_ROWS):
        has_votes[ui[lo : lo + _BATCH_ROWS]] = True
    if not has_votes.all():
        position = (np.cumsum(has_votes) - 1).astype(ui.dtype)
        for lo in range(0, ui.size, _BATCH_ROWS):
            ui[lo : lo + _BATCH_ROWS] = position[ui[lo : lo + _BATCH_ROWS]]
    ties = pair_tab.column("ties").to_numpy()
    return users, has_votes, pair_tab.column("pr").to_pylist(), ties, cells_out


def _grouped_cells(
    src: _Source,
    user: Hashable,
    on: str,
    user_keys: Any,
    user_type: str,
    count_type: str,
    votes: int,
) -> dict[str, np.ndarray]:
    """The cells grouped by (user id, pair) in DuckDB, the users' ranks sent back to it."""
    import pyarrow as pa

    ranks = pa.table({"k": user_keys, "idx": np.arange(len(user_keys), dtype=np.int64)})
    src.con.register("user_keys", ranks)
    src.sql("CREATE TEMP TABLE user_rank AS SELECT k, idx FROM user_keys")
    src.con.unregister("user_keys")
    del ranks
    cells = (
        f"SELECT {_quote(user)} AS k, c.pr, count(*) AS n, count_if(c.win = 1) AS a "
        f"FROM log JOIN (SELECT * FROM combo_codes WHERE NOT tie) c ON {on} GROUP BY k, c.pr"
    )
    return src.numpy(
        f"SELECT r.idx::{user_type} AS ui, p.idx::INTEGER AS pi, c.n::{count_type} AS n, "
        f"c.a::{count_type} AS a FROM ({cells}) c "
        "JOIN user_rank r ON c.k = r.k JOIN pair_rank p ON c.pr = p.pr ORDER BY ui, pi",
        votes,
    )


def _counted_cells(
    src: _Source,
    user: Hashable,
    on: str,
    key: str,
    user_keys: Any,
    n_pairs: int,
    user_type: str,
    count_type: str,
    votes: int,
) -> dict[str, np.ndarray]:
    """The cells counted from each vote's user hash and code (compiled passes)."""
    import duckdb

    from attnmodel.data.grouping import (
        codes_by_user,
        key_table,
        look_up_keys,
        table_size,
        user_cells,
    )

    src.release_memory()  # the users' GROUP BY's, before the arrays below
    n_users = len(user_keys)
    int_type = np.int32 if user_type == "INTEGER" else np.int64
    slot_pos = np.empty(table_size(n_users), dtype=int_type)
    slot_key, shift = key_table(user_keys.to_numpy(), slot_pos)
    vote_user = np.empty(votes, dtype=int_type)
    code_type = (
        "SMALLINT" if 2 * n_pairs < 2**15 else "INTEGER" if 2 * n_pairs < 2**31 else "BIGINT"
    )
    query = (
        f"SELECT {key.format(u=_quote(user))} AS k, (2 * c.idx + c.win)::{code_type} AS code "
        "FROM log JOIN (SELECT c.*, p.idx FROM combo_codes c JOIN pair_rank p ON c.pr = p.pr "
        f"WHERE NOT c.tie) c ON {on}"
    )
    done = 0
    try:
        reader = src.con.sql(query).to_arrow_reader(_BATCH_ROWS)
        vote_code = np.empty(votes, dtype=reader.schema.field("code").type.to_pandas_dtype())
        for batch in reader:
            rows = batch.num_rows
            if done + rows > votes:
                raise RuntimeError(f"the query returned more than {votes} rows")
            found = look_up_keys(
                slot_key,
                slot_pos,
                shift,
                batch.column(0).to_numpy(),
                vote_user[done : done + rows],
            )
            if not found:
                raise RuntimeError("a vote's user hash is not among the users'")
            vote_code[done : done + rows] = batch.column(1).to_numpy()
            done += rows
    except duckdb.Error as e:
        raise TableFileError(
            f"{src.path!r}: could not be read as {src.kind}: {e}", path=src.path
        ) from e
    del slot_key, slot_pos
    vote_user, vote_code = vote_user[:done], vote_code[:done]
    start = np.zeros(n_users + 1, dtype=np.int64)
    for lo in range(0, done, _BATCH_ROWS):
        start[1:] += np.bincount(vote_user[lo : lo + _BATCH_ROWS], minlength=n_users)
    np.cumsum(start, out=start)
    by_user = codes_by_user(vote_user, vote_code, start)
    del vote_user, vote_code
    per_user = np.empty(n_users, dtype=np.int64)
    none = np.empty(0, dtype=np.int64)
    user_cells(by_user, start, n_pairs, _USER_PARTS, False, per_user, none, none, none, none, none)
    cell_start = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(per_user, out=cell_start[1:])
    del per_user
    n_cells = int(cell_start[-1])
    count = np.int32 if count_type == "INTEGER" else np.int64
    out = {
        "ui": np.empty(n_cells, dtype=int_type),
        "pi": np.empty(n_cells, dtype=np.int32),
        "n": np.empty(n_cells, dtype=count),
        "a": np.empty(n_cells, dtype=count),
    }
    user_cells(by_user, start, n_pairs, _USER_PARTS, True, none, cell_start, *out.values())
    return out


def _oriented_cells(src: _Source, user: Hashable, z: Hashable, pair: Hashable | None) -> VoteCells:
    _require(src, user)
    _require(src, z)
    t = src.types
    kz = t[str(z)]
    if kz == "BOOLEAN":
        label = "CAST(zv AS INTEGER)"
    elif kz in _NUMBER_TYPES or kz.startswith("DECIMAL"):
        label = "CASE WHEN zv = 0 THEN 0 WHEN zv = 1 THEN 1 END"
    elif kz in _STRING_TYPES:
        label = f"CASE trim(zv, {_SPACE}) WHEN '0' THEN 0 WHEN '1' THEN 1 END"
    else:
        label = "CAST(NULL AS INTEGER)"
    if pair is not None:
        _require(src, pair)
    pr = "0" if pair is None else _quote(pair)
    # The checks run on the distinct (z, pair) combinations.
    src.sql(
        f"CREATE TEMP TABLE combos AS SELECT {_quote(z)} AS zv, {pr} AS pv, "
        "min(_ord) AS first, count(*) AS rows FROM log GROUP BY ALL"
    )
    prob = _Problems()
    prob.add("label", f"({label}) IS NULL")
    if pair is not None:
        prob.add("pair_missing", _blank("pv", t[str(pair)]))
    checks = _check_results(src, prob, "combos")
    if checks["rows"] == 0:
        raise VoteDataError("the table has no rows")
    if any(checks[f"{name}_count"] for name, _ in prob.checks):
        _raise_missing_users(src, user)
    _raise_first(src, checks, "label", z, LABEL_HELP)
    if pair is not None:
        _raise_first(src, checks, "pair_missing", pair, "pair label is missing")
    src.sql(
        "CREATE TEMP TABLE combo_codes AS SELECT zv, pv AS pr, first, rows, false AS tie, "
        f"CASE WHEN {label} = 1 THEN 1 ELSE 0 END AS win FROM combos"
    )
    on = f"{_quote(z)} = c.zv" + ("" if pair is None else f" AND {_quote(pair)} = c.pr")
    users, has_votes, pair_codes, ties, cells = _ranked_cells(src, user, on)
    pairs = pd.Index(pair_codes)
    return _cells("oriented", users, has_votes, pairs, ties, cells, checks["rows"], src.columns)


def _check_results(src: _Source, prob: _Problems, table: str) -> dict[str, Any]:
    """Rows, and the first bad row and the count of bad rows of each check."""
    rel = src.sql(f"SELECT coalesce(sum(rows), 0) AS rows, {prob.select()} FROM {table}")
    names = [d[0] for d in rel.description]
    values = rel.fetchall()[0]
    return dict(zip(names, values, strict=True))


def _raise_first(
    src: _Source, checks: dict[str, Any], name: str, column: Hashable, problem: str
) -> None:
    if checks[f"{name}_count"]:
        _raise_rows(src, column, checks[f"{name}_first"], int(checks[f"{name}_count"]), problem)


def _cells(
    layout: str,
    users: pd.Index,
    has_votes: np.ndarray,
    pairs: Any,
    ties: np.ndarray,
    cells: dict,
    n_rows: int,
    columns: list,
) -> VoteCells:
    def ints(values: Any) -> np.ndarray:
        values = np.asarray(values)
        return values if values.dtype in (np.int32, np.int64) else values.astype(np.int64)

    return VoteCells(
        layout=layout,
        users=users,
        user_has_votes=np.asarray(has_votes, dtype=bool),
        pairs=pairs,
        pair_ties=ints(ties),
        cell_user=ints(cells["ui"]),
        cell_pair=ints(cells["pi"]),
        cell_n=ints(cells["n"]),
        cell_a=ints(cells["a"]),
        n_rows=int(n_rows),
        columns=list(columns),
    )
