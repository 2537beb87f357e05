"""Table files: every format attnmodel reads and writes, chosen by the file's name.

One module owns the formats, so that :meth:`attnmodel.VoteData.from_file`, the
DPO export and the command line read and write the same files the same way.

=========  ==============================================  ======================
format     suffixes                                        types of the columns
=========  ==============================================  ======================
CSV        ``.csv``, ``.csv.gz``                           inferred, except ids
Parquet    ``.parquet``, ``.pq``                           as stored
JSONL      ``.jsonl``, ``.ndjson`` (optionally ``.gz``)    as stored (not re-typed)
=========  ==============================================  ======================

A vote log may also be spread over many files of one format: a glob
(``logs/date=*/part-*.parquet``) or a folder, read recursively, whose
sub-folders may be Hive partitions (``date=2026-11-30/``).
:func:`expand_table_path` turns such a path into its files.

The rule for user ids: a CSV file carries no types, so the columns named in
``id_columns`` (by default ``user``) are read as strings: ids are labels, and
``"007"`` and ``"7"`` are two users. Parquet and JSONL files say what type a
value has and keep it (a JSON ``7`` stays a number, ``"007"`` a string).

Every file is written atomically (:func:`atomic_write`): the contents go to a
temporary file beside the target, which replaces the target only once it is
complete, so a crash never leaves a half-written file, and an existing file is
only replaced when asked. A process killed while writing (SIGKILL) can leave
its temporary file behind, named ``.NAME.PID-XXXXXXXX.tmp`` beside the
target; the next write to the same target removes the leftovers of processes
that are no longer running (:func:`remove_leftovers`).

A new format is one entry of :data:`TABLE_SUFFIXES` and one branch in each of
:func:`read_table`, :func:`peek_columns` and :func:`write_table`.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from attnmodel.errors import TableFileError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TABLE_SUFFIXES",
    "atomic_write",
    "current_umask",
    "output_mode",
    "expand_table_path",
    "remove_leftovers",
    "temporary_beside",
    "first_bad_jsonl_line",
    "is_multi_file",
    "peek_columns",
    "read_table",
    "table_format",
    "write_table",
]

#: File name ending -> table format.
TABLE_SUFFIXES = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
}


def table_format(path: str | os.PathLike, what: str = "table") -> str:
    """The format of a table file, from its name (``"csv"``, ``"parquet"`` or ``"jsonl"``).

    Parameters
    ----------
    path : path-like
    what : str
        What the table holds, for the message.

    Raises
    ------
    TableFileError
        The name ends in none of :data:`TABLE_SUFFIXES`.
    """
    name = Path(path).name.lower()
    for suffix, kind in TABLE_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    raise TableFileError(
        f"{str(path)!r}: unknown file type for {what}; expected a name ending in "
        + ", ".join(sorted(TABLE_SUFFIXES)),
        path=str(path),
    )


def is_multi_file(path: str | os.PathLike) -> bool:
    """True for a glob pattern or a folder, which may stand for many table files."""
    text = str(path)
    return glob.has_magic(text) or Path(text).is_dir()


def expand_table_path(path: str | os.PathLike, what: str = "table") -> tuple[str, list[Path]]:
    """The format and the files of a table path: one file, a glob or a folder.

    Parameters
    ----------
    path : path-like
        A file; a glob pattern (``**`` matches folders at any depth); or a
        folder, searched recursively for files of the known formats (hidden
        files and folders, and names starting with ``_``, are left out).
    what : str
        What the table holds, for messages.

    Returns
    -------
    kind : str
        ``"csv"``, ``"parquet"`` or ``"jsonl"``, one for all files.
    files : list of pathlib.Path
        Sorted by name.

    Raises
    ------
    TableFileError
        Unknown suffix, no such file, nothing matched, or files of several formats.
    """
    text = str(path)
    p = Path(text)
    if not is_multi_file(text):
        kind = table_format(p, what)
        if not p.is_file():
            raise TableFileError(f"{text!r}: no such file", path=text)
        return kind, [p]
    if p.is_dir():
        found = [
            f
            for f in sorted(p.rglob("*"))
            if f.is_file()
            and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)
        ]
        files = [f for f in found if _known(f)]
        if not files:
            raise TableFileError(
                f"{text!r}: the folder holds no file of {what} (names ending in "
                + ", ".join(sorted(TABLE_SUFFIXES))
                + ")",
                path=text,
            )
    else:
        files = [Path(f) for f in sorted(glob.glob(text, recursive=True)) if Path(f).is_file()]
        if not files:
            raise TableFileError(f"{text!r}: no file matches the pattern", path=text)
        for f in files:
            table_format(f, what)
    kinds = sorted({table_format(f, what) for f in files})
    if len(kinds) > 1:
        raise TableFileError(
            f"{text!r}: files of several formats ({', '.join(kinds)}); give one format",
            path=text,
        )
    return kinds[0], files


def _known(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in TABLE_SUFFIXES)


def read_table(
    path: str | os.PathLike, *, id_columns: Sequence[str] = ("user",), what: str = "table"
) -> pd.DataFrame:
    """Read a table file (format by suffix, see the module's table).

    Parameters
    ----------
    path : path-like
        A file, or a glob or folder (:func:`expand_table_path`) whose files are
        read in name order and stacked, with a fresh 0-based index.
    id_columns : sequence of str
        Columns of ids, read as strings from CSV (absent ones are ignored).
    what : str
        What the table holds, for messages.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    TableFileError
        Unknown suffix, missing file, or contents the format's reader rejects;
        the message starts with the path.
    """
    import pandas as pd

    if is_multi_file(path):
        _, files = expand_table_path(path, what)
        parts = [read_table(f, id_columns=id_columns, what=what) for f in files]
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    p = Path(path)
    kind = table_format(p, what)
    if not p.is_file():
        raise TableFileError(f"{str(path)!r}: no such file", path=str(path))
    try:
        if kind == "csv":
            _refuse_duplicate_csv_columns(p)
            # Ids are labels, not numbers (absent columns are ignored).
            return _literal_ids(pd.read_csv(p, dtype=dict.fromkeys(id_columns, str)), p, id_columns)
        if kind == "parquet":
            return pd.read_parquet(p)
        # dtype=False: "001" stays a string rather than becoming 1.
        return pd.read_json(p, lines=True, dtype=False)
    except TableFileError:
        raise
    except (OSError, ValueError) as e:
        bad = first_bad_jsonl_line([p]) if kind == "jsonl" else None
        if bad is not None:
            raise TableFileError(
                f"{str(bad[0])!r}: line {bad[1]} is not valid JSON ({bad[2]})", path=str(bad[0])
            ) from e
        raise TableFileError(
            f"{str(path)!r}: could not be read as {kind}: {e}", path=str(path)
        ) from e


def _literal_ids(frame, path: Path, id_columns: Sequence[str]):
    """Id columns of a CSV with only empty cells missing: a user called ``NA`` is a user.

    pandas reads ``NA``, ``null``, ``NaN`` and the like as missing; for ids they
    are labels. The id columns holding any such cell are read again as written.
    """
    import pandas as pd

    again = [c for c in id_columns if c in frame.columns and frame[c].isna().any()]
    if again:
        raw = pd.read_csv(path, usecols=again, dtype=str, keep_default_na=False, na_values=[""])
        for column in again:
            frame[column] = raw[column].to_numpy()
    return frame


def first_bad_jsonl_line(files: Sequence[str | os.PathLike]) -> tuple[Path, int, str] | None:
    """The first line of JSON-lines files that is not a JSON value: ``(file, line, reason)``.

    Lines count from 1; blank lines are skipped, as the readers skip them. None
    when every line parses. Compressed (``.gz``) files are read through gzip.
    """
    import gzip
    import json

    for f in files:
        path = Path(f)
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                except ValueError as e:
                    return path, number, f"{e.msg} at column {e.colno}"
    return None


def _refuse_duplicate_csv_columns(path: Path) -> None:
    """Refuse a CSV header naming a column twice (pandas would rename the copy ``NAME.1``)."""
    import pandas as pd

    try:
        header = pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0].tolist()
    except (pd.errors.EmptyDataError, IndexError):
        return
    seen: dict[str, int] = {}
    for name in header:
        seen[str(name)] = seen.get(str(name), 0) + 1
    twice = [name for name, k in seen.items() if k > 1]
    if twice:
        raise TableFileError(
            f"{str(path)!r}: column {twice[0]!r} appears {seen[twice[0]]} times in the header; "
            "rename or drop the copies (which one is meant cannot be told)",
            path=str(path),
        )


def peek_columns(path: str | os.PathLike) -> list[str] | None:
    """Column names of a table file without reading its rows (None when that fails)."""
    import pandas as pd

    p = Path(path)
    try:
        kind = table_format(p)
        if kind == "csv":
            return list(pd.read_csv(p, nrows=0).columns)
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(p).names)
        return list(pd.read_json(p, lines=True, nrows=1, dtype=False).columns)
    except (TableFileError, OSError, ValueError, ImportError):
        return None


def write_table(frame: pd.DataFrame, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write a table without its index, in the format its name asks for, atomically.

    Parameters
    ----------
    frame : pandas.DataFrame
    path : path-like
        A name ending in one of :data:`TABLE_SUFFIXES`; ``.gz`` compresses.
    force : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TableFileError
        Unknown suffix.
    FileExistsError
        The file exists and ``force`` is false.
    """
    p = Path(path)
    kind = table_format(p)
    compression = "gzip" if p.name.lower().endswith(".gz") else None

    def write(tmp: Path) -> None:
        if kind == "csv":
            frame.to_csv(tmp, index=False, compression=compression)
        elif kind == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_json(
                tmp, orient="records", lines=True, force_ascii=False, compression=compression
            )

    return atomic_write(p, write, force=force)


def current_umask() -> int:
    """The process's umask (read without changing it where the system tells it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def output_mode(target: str | os.PathLike, *, directory: bool = False) -> int:
    """Permission bits for a file (or directory) written at ``target`` as a plain ``open`` would.

    An existing target keeps its mode; a new one gets ``0o666`` (``0o777``
    for a directory) less the umask. Temporary files are created ``0o600``,
    so :func:`atomic_write` applies this before moving one into place.
    """
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return (0o777 if directory else 0o666) & ~current_umask()


#: Endings of the temporary siblings of a target: a file or folder being
#: written, and a folder's previous version moved aside while it is replaced.
TEMPORARY_SUFFIXES = (".tmp", ".old")


def _writer_running(pid: int) -> bool:
    """Whether process ``pid`` still runs (when in doubt, yes: its file is then kept)."""
    if os.name != "posix":
        return True  # elsewhere os.kill(pid, 0) is no mere question
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # running under another account
    return True


def _writer_pid(target: Path, sibling: Path) -> int | None:
    """The process id in a temporary sibling's name ``.NAME.PID-XXXXXXXX.SUFFIX``, if any."""
    head = f".{target.name}."
    name = sibling.name
    if not name.startswith(head) or not name.endswith(TEMPORARY_SUFFIXES):
        return None
    pid, dash, _ = name[len(head) :].partition("-")
    return int(pid) if dash and pid.isdigit() else None


def remove_leftovers(target: str | os.PathLike) -> list[Path]:
    """Remove what killed writes of ``target`` left beside it; return what was removed.

    A temporary file or folder of ``target`` (``.NAME.PID-XXXXXXXX.tmp``)
    whose process no longer runs is removed. A previous version moved aside
    (``.NAME.PID-XXXXXXXX.old``) by a process killed before the new version
    took its place is moved back when ``target`` is missing, else removed.
    Temporaries of a process still running, and names of another form, are
    left alone.
    """
    target = Path(target)
    removed: list[Path] = []
    try:
        siblings = list(target.parent.glob(f".{glob.escape(target.name)}.*"))
    except OSError:
        return removed
    for sibling in sorted(siblings, key=lambda p: p.suffix != ".old"):
        pid = _writer_pid(target, sibling)
        if pid is None or _writer_running(pid):
            continue
        try:
            if sibling.suffix == ".old" and not target.exists():
                os.rename(sibling, target)
                continue
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling)
            else:
                sibling.unlink()
        except OSError:
            continue  # another process got there first, or it cannot be removed: keep going
        removed.append(sibling)
    return removed


def temporary_beside(
    target: str | os.PathLike, suffix: str = ".tmp", *, directory: bool = False
) -> Path:
    """A new empty file (or folder) beside ``target`` to write it in, then move into place.

    Its name, ``.NAME.PID-XXXXXXXX.tmp`` (or ``.old``), carries this
    process's id so that a later write can tell a leftover of a killed
    process from a write still running; those leftovers are removed first
    (:func:`remove_leftovers`). Created with mode ``0o600`` (``0o700``).
    """
    target = Path(target)
    remove_leftovers(target)
    prefix = f".{target.name}.{os.getpid()}-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], None], *, force: bool = False
) -> Path:
    """Write a file through ``write(tmp_path)`` and move it into place.

    The file gets the permissions a plain ``open(path, "w")`` would give it
    (:func:`output_mode`): those of the file it replaces, else ``0o666``
    less the umask. If ``write`` or the move fails, the temporary file is
    removed and the target left as it was. A process killed meanwhile
    leaves either the old target or the new one, never a part of one, and
    possibly its temporary file, which the next write of ``path`` removes
    (:func:`temporary_beside`).

    Parameters
    ----------
    path : path-like
        Target file.
    write : callable
        Writes the complete contents to the temporary path it is given.
    force : bool
        Replace an existing file; without it an existing file raises
        :class:`FileExistsError` and is left untouched.
    """
    target = Path(path)
    if target.exists() and not force:
        raise FileExistsError(f"{str(target)!r} exists; pass force=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = output_mode(target)
    tmp_path = temporary_beside(target)
    try:
        write(tmp_path)
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return target
