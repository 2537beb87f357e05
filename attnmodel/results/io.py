"""Result trees in files: ``.nc`` (netCDF via h5netcdf) or ``.zarr`` (a directory)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from attnmodel.data.io import atomic_write
from attnmodel.results.tree import plain_strings, require_result, validate_tree

__all__ = ["SUFFIXES", "save", "load"]

#: Suffixes :func:`save` and :func:`load` understand.
SUFFIXES = (".nc", ".zarr")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"{str(path)!r}: an attnmodel result is saved as .nc (netCDF) or .zarr, "
            f"not {suffix or 'a name without suffix'!r}"
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
    target = Path(path)
    suffix = _suffix(target)
    if target.exists() and not force:
        raise FileExistsError(f"{str(target)!r} exists; pass force=True to replace it")
    if suffix == ".nc":
        if target.is_dir():
            raise IsADirectoryError(f"{str(target)!r} is a directory, not a netCDF file")
        return atomic_write(
            target, lambda tmp: dt.to_netcdf(tmp, engine="h5netcdf", mode="w"), force=force
        )
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{str(target)!r} is a file, not a zarr store")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        store = tmp_dir / "store.zarr"
        dt.to_zarr(store, mode="w", consolidated=False)
        if target.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.replace(target, old / "store.zarr")
        os.replace(store, target)
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
    ValueError
        ``path`` has another suffix, cannot be read, or is not an attnmodel
        result (no marker, or a required group missing); the message names
        the file.
    """
    source = Path(path)
    suffix = _suffix(source)
    if not source.exists():
        raise FileNotFoundError(f"{str(source)!r} does not exist")
    try:
        if suffix == ".nc":
            with xr.open_datatree(source, engine="h5netcdf") as opened:
                dt = opened.load()
        else:
            with xr.open_datatree(source, engine="zarr", consolidated=False) as opened:
                dt = opened.load()
    except Exception as err:  # the backends raise many types for a file they cannot read
        raise ValueError(
            f"{str(source)!r} could not be read as a {suffix} attnmodel result: {err}"
        ) from err
    validate_tree(dt, repr(str(source)))
    # netCDF returns integer attributes as numpy scalars; make them plain.
    attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in dt.attrs.items()}
    out = dt.map_over_datasets(plain_strings)
    out.attrs = attrs
    return out
