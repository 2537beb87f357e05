"""Result trees in files: ``.nc`` (netCDF via h5netcdf) or ``.zarr`` (a directory).

:func:`save` writes the root attribute ``content_sha256``, a checksum of the
tree's content (:func:`content_checksum`: every group, variable, coordinate,
value and attribute), and :func:`load` recomputes it: a file damaged or edited
after it was saved is an error naming it, never a result that silently gives
other answers. Files written before checksums load unchecked.

A ``.nc`` file also ends with a line checking its bytes
(:data:`FILE_CHECKSUM_TAG` and the SHA-256 of everything before it), verified
before the HDF5 library opens the file: damaged HDF5 metadata can make that
library spin for ever instead of failing, so a damaged file is refused
before it gets the chance. When that line matches, every byte is as saved, and the
content checksum is not computed again. HDF5 ignores bytes after the end of its data, so
the file stays an ordinary netCDF file for every other reader.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from attnmodel.data.io import atomic_write, output_mode, temporary_beside
from attnmodel.errors import ResultFileError
from attnmodel.results.tree import json_safe, plain_strings, require_result, validate_tree

__all__ = ["SUFFIXES", "CHECKSUM_ATTR", "FILE_CHECKSUM_TAG", "content_checksum", "save", "load"]

#: Root attribute holding :func:`content_checksum` of a saved result.
CHECKSUM_ATTR = "content_sha256"

#: Start of the line that ends a ``.nc`` result: the tag, then the SHA-256 of
#: every byte before the line in hexadecimal, then a newline.
FILE_CHECKSUM_TAG = b"\nattnmodel-file-sha256:"
_TRAILER_LEN = len(FILE_CHECKSUM_TAG) + 64 + 1

#: Suffixes :func:`save` and :func:`load` understand.
SUFFIXES = (".nc", ".zarr")


def _canonical_bytes(values: np.ndarray) -> bytes:
    """Values as bytes that survive a round trip through netCDF or zarr unchanged."""
    kind = values.dtype.kind
    if kind == "f":
        return np.ascontiguousarray(values, dtype="<f8").tobytes()
    if kind in "iu":
        return np.ascontiguousarray(values, dtype="<i8").tobytes()
    if kind == "b":
        return np.ascontiguousarray(values, dtype="u1").tobytes()
    if kind in "mM":
        ns = values.astype(f"{values.dtype.str[:2]}8[ns]")
        return np.ascontiguousarray(ns.view("<i8")).tobytes()
    if kind == "S":
        values = np.char.decode(values, "utf-8")
    return json.dumps([str(v) for v in values.reshape(-1).tolist()]).encode("utf-8")


def _canonical_attrs(attrs) -> bytes:
    return json.dumps(json_safe(dict(attrs)), sort_keys=True).encode("utf-8")


def content_checksum(dt: xr.DataTree) -> str:
    """SHA-256 of a result's content, the same before :func:`save` and after :func:`load`.

    Covers every group (by path), its attributes and each of its variables
    and coordinates (name, dims, shape, values, attributes); numbers are taken
    as 64-bit and text as UTF-8, so the file format's choice of types does not
    change it. The root attribute :data:`CHECKSUM_ATTR` itself is left out:
    :func:`save` writes it, :func:`load` checks it and returns the tree
    without it, as it was given to :func:`save`.
    """
    h = hashlib.sha256()
    for node in sorted(dt.subtree, key=lambda n: n.path):
        h.update(b"\x1dgroup " + node.path.encode("utf-8"))
        attrs = {k: v for k, v in node.attrs.items() if k != CHECKSUM_ATTR}
        h.update(_canonical_attrs(attrs))
        ds = node.to_dataset(inherit=False)
        for name in sorted(ds.variables, key=str):
            var = ds.variables[name]
            head = json.dumps([str(name), list(map(str, var.dims)), list(var.shape)])
            h.update(b"\x1dvar " + head.encode("utf-8"))
            h.update(_canonical_bytes(np.asarray(var.values)))
            h.update(_canonical_attrs(var.attrs))
    return "sha256:" + h.hexdigest()


#: Room left for netCDF's own structures beyond the arrays' bytes.
_NETCDF_OVERHEAD = 1 << 20


def _require_space(dt: xr.DataTree, folder: Path) -> None:
    """Refuse a netCDF write that cannot fit on its disk, before HDF5 starts it.

    Refused before the file is built in memory (:func:`_write_netcdf`), so
    that a disk too small is reported at once.
    """
    need = _NETCDF_OVERHEAD + sum(
        int(var.nbytes)
        for node in dt.subtree
        for var in node.to_dataset(inherit=False).variables.values()
    )
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device: about {need / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free",
        )


def _write_netcdf(dt: xr.DataTree, path: Path) -> None:
    """Write ``dt`` as netCDF to ``path``: built in memory, then written by Python.

    HDF5 may crash the process when the disk fills while it writes, which the
    space check before the write cannot rule out (another program may fill
    the disk meanwhile). Built in memory, the file reaches the disk through
    ordinary writes, where a full disk is an ``OSError``. The price is a
    copy of the file in memory while it is written. The file ends with its
    checksum line (:data:`FILE_CHECKSUM_TAG`).
    """
    built = io.BytesIO()
    dt.to_netcdf(built, engine="h5netcdf")
    with built.getbuffer() as data, open(path, "wb") as f:
        f.write(data)
        f.write(FILE_CHECKSUM_TAG + hashlib.sha256(data).hexdigest().encode() + b"\n")


def _verify_file_checksum(path: Path) -> bool:
    """Refuse a ``.nc`` result whose bytes do not match its checksum line.

    Returns True when the line was there and matched (every byte is as
    saved, so the content checksum need not be recomputed); False for a
    file without the line (written before it existed), whose content
    checksum is then verified after reading. A line that is present but
    damaged counts as a mismatch.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 4 * _TRAILER_LEN))
        tail = f.read()
        if FILE_CHECKSUM_TAG.strip() not in tail:
            return False
        trailer = tail[-_TRAILER_LEN:]
        ok = trailer.startswith(FILE_CHECKSUM_TAG) and trailer.endswith(b"\n")
        if ok:
            expected = trailer[len(FILE_CHECKSUM_TAG) : -1].decode("ascii", "replace")
            f.seek(0)
            h = hashlib.sha256()
            remaining = size - _TRAILER_LEN
            while remaining > 0:
                block = f.read(min(remaining, 1 << 22))
                if not block:
                    break
                h.update(block)
                remaining -= len(block)
            ok = h.hexdigest() == expected
    if not ok:
        raise ResultFileError(
            f"{str(path)!r}: its bytes do not match the checksum it was saved with "
            "(its last line); the file is damaged or was changed after it was written. "
            "Refit, or restore it from a copy",
            path=str(path),
        )
    return True


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ResultFileError(
            f"{str(path)!r}: an attnmodel result is saved as .nc (netCDF) or .zarr, "
            f"not {suffix or 'a name without suffix'!r}",
            path=str(path),
        )
    return suffix


def save(dt: xr.DataTree, path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write a result to ``.nc`` (netCDF via h5netcdf) or ``.zarr`` (a directory).

    The tree is written to a temporary sibling first and moved into place
    once complete, so a crash never leaves a partial result under ``path``;
    with ``force`` an existing result is replaced only after the new one is
    complete.

    Parameters
    ----------
    dt : xarray.DataTree
        An attnmodel result.
    path : path-like
        Target ending in ``.nc`` or ``.zarr``.
    force : bool
        Replace an existing file or directory.

    Returns
    -------
    pathlib.Path
    """
    require_result(dt)
    dt = dt.copy(deep=False)
    dt.attrs = {**dt.attrs, CHECKSUM_ATTR: content_checksum(dt)}
    target = Path(path)
    suffix = _suffix(target)
    if target.exists() and not force:
        raise FileExistsError(f"{str(target)!r} exists; pass force=True to replace it")
    if suffix == ".nc":
        if target.is_dir():
            raise IsADirectoryError(f"{str(target)!r} is a directory, not a netCDF file")
        _require_space(dt, target.parent)
        return atomic_write(target, lambda tmp: _write_netcdf(dt, tmp), force=force)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{str(target)!r} is a file, not a zarr store")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = temporary_beside(target, directory=True)
    old = None
    try:
        store = tmp_dir / "store.zarr"
        dt.to_zarr(store, mode="w", consolidated=False)
        os.chmod(store, output_mode(target, directory=True))
        if target.exists():
            # The previous store is moved aside whole (a folder cannot be
            # replaced in one step); if this process dies before the new one
            # takes its place, the next write of ``target`` moves it back.
            old = temporary_beside(target, ".old", directory=True)
            os.rename(target, old)
        os.replace(store, target)
    except BaseException:
        if old is not None and not target.exists():
            os.rename(old, target)
            old = None
        raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load(path: str | os.PathLike) -> xr.DataTree:
    """Read a result saved by :func:`save` fully into memory.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ResultFileError
        ``path`` has another suffix, cannot be read, is not an attnmodel
        result (no marker, or a required group missing) or its content does
        not match the checksum it was saved with; the message names the file.
        A :class:`ValueError`, as before.
    """
    source = Path(path)
    suffix = _suffix(source)
    if not source.exists():
        raise FileNotFoundError(f"{str(source)!r} does not exist")
    bytes_checked = suffix == ".nc" and source.is_file() and _verify_file_checksum(source)
    try:
        if suffix == ".nc":
            with xr.open_datatree(source, engine="h5netcdf") as opened:
                dt = opened.load()
        else:
            with xr.open_datatree(source, engine="zarr", consolidated=False) as opened:
                dt = opened.load()
    except Exception as err:  # the backends raise many types for a file they cannot read
        raise ResultFileError(
            f"{str(source)!r} could not be read as a {suffix} attnmodel result: {err}",
            path=str(source),
        ) from err
    try:
        validate_tree(dt, repr(str(source)))
    except ValueError as err:
        raise ResultFileError(str(err), path=str(source)) from None
    # netCDF returns integer attributes as numpy scalars; make them plain.
    attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in dt.attrs.items()}
    out = dt.map_over_datasets(plain_strings)
    expected = attrs.pop(CHECKSUM_ATTR, None)
    out.attrs = attrs
    if expected is not None and not bytes_checked and content_checksum(out) != expected:
        raise ResultFileError(
            f"{str(source)!r}: its content does not match the checksum it was saved with "
            f"({CHECKSUM_ATTR}); the file is damaged or was changed after it was written. "
            "Refit, or restore it from a copy",
            path=str(source),
        )
    return out
