"""The radiocal zarr store: canonical partitions plus what later steps add to them.

Layout and rules are in ``docs/data-model.md``. Stores are zarr format 2 with consolidated
metadata (readable by every zarr and xarray release). The root attribute ``radiocal_complete`` is
set to false when a write starts and to true as the very last act, so an interrupted write is never
taken for a finished store.
"""

from __future__ import annotations

import os
import shutil

import dask
import numpy as np
import xarray as xr
import zarr

from radiocal.errors import InputError, OutputExistsError
from radiocal.io import schema as S

STORE_VERSION = 1
ZARR_FORMAT = 2
# Every chunk is written: zarr's default compares each chunk with the fill value first, which cost
# more CPU than writing the uncompressed visibilities themselves (1.3 s of 1.5 s for 0.5 GB).
_WRITE_OPTIONS = dict(zarr_format=ZARR_FORMAT, write_empty_chunks=True)
COMPLETE_ATTR = "radiocal_complete"
VERSION_ATTR = "radiocal_store_version"
PARTITIONS_ATTR = "partitions"
PARTITIONS_GROUP = "partitions"
_STAGING_GROUP = "staging"


def partition_path(store, name: str) -> str:
    """Path of a partition's group inside the store."""
    return os.path.join(os.fspath(store), PARTITIONS_GROUP, name)


def is_store(path) -> bool:
    """Whether ``path`` is a radiocal zarr store (complete or not)."""
    path = os.fspath(path)
    return os.path.isdir(path) and os.path.exists(os.path.join(path, ".zgroup"))


def write_store(datasets: list[xr.Dataset], path, overwrite: bool = False) -> str:
    """Write canonical ``datasets`` to a new store at ``path``, computing them.

    Parameters
    ----------
    datasets : list of xarray.Dataset
        Canonical partitions (lazy or in memory), each with a unique ``partition`` attribute.
    path : str or os.PathLike
        The store to create; an existing path is refused unless ``overwrite``.
    overwrite : bool
        Replace an existing store.

    Returns
    -------
    str
        The store's path.
    """
    path = os.path.normpath(os.fspath(path))
    if not datasets:
        raise InputError("nothing to write: no partitions")
    names = [ds.attrs[S.ATTR_PARTITION] for ds in datasets]
    if len(set(names)) != len(names):
        raise InputError(f"duplicate partition names: {sorted(n for n in set(names) if names.count(n) > 1)}")
    sources = {os.path.realpath(p) for ds in datasets for p in ds.attrs.get(S.ATTR_SOURCES, [])}
    if os.path.realpath(path) in sources:
        raise OutputExistsError(f"{path}: refusing to overwrite an input")
    if os.path.exists(path):
        if not overwrite:
            raise OutputExistsError(f"{path}: already exists (use --overwrite to replace it)")
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    root = zarr.open_group(path, mode="w", zarr_format=ZARR_FORMAT)
    root.attrs.update({VERSION_ATTR: STORE_VERSION, COMPLETE_ATTR: False, PARTITIONS_ATTR: names})
    try:
        writes = [_prepare(ds).to_zarr(path, group=f"{PARTITIONS_GROUP}/{name}", mode="w",
                                       compute=False, consolidated=False, **_WRITE_OPTIONS)
                  for ds, name in zip(datasets, names)]
        dask.compute(*writes)
    except BaseException:
        # A failed conversion leaves nothing behind (a killed one leaves a store marked incomplete)
        shutil.rmtree(path, ignore_errors=True)
        raise
    _mark_complete(path)
    return path


def open_store(path, partitions=None) -> list[xr.Dataset]:
    """Open a complete store lazily.

    Parameters
    ----------
    path : str or os.PathLike
        The store.
    partitions : list of str, optional
        Only these partitions (default: all, in stored order).

    Returns
    -------
    list of xarray.Dataset
        Canonical datasets backed by the store's zarr chunks.
    """
    root = _open_root(path)
    names = list(root.attrs.get(PARTITIONS_ATTR, []))
    if partitions is not None:
        missing = sorted(set(partitions) - set(names))
        if missing:
            raise InputError(f"{path}: no partition(s) {', '.join(missing)}")
        names = [n for n in names if n in set(partitions)]
    return [_restore(xr.open_zarr(os.fspath(path), group=f"{PARTITIONS_GROUP}/{name}",
                                  consolidated=True, chunks={}, zarr_format=ZARR_FORMAT))
            for name in names]


def update_store(datasets: list[xr.Dataset], path, variables) -> None:
    """Rewrite (or add) ``variables`` of existing partitions, matched by their ``partition`` attr.

    The new values are computed into a staging group first and only then moved into place, so a
    variable that is computed from its own stored values (flags from flags) is never read after
    it has been partly overwritten. The partitions' attributes are replaced by the datasets'. The
    store is marked incomplete while the moves happen.
    """
    path = os.path.normpath(os.fspath(path))
    root = _open_root(path)
    _check_partitions(root, path, datasets)
    variables = list(variables)
    staging = os.path.join(path, _STAGING_GROUP)
    if os.path.exists(staging):
        shutil.rmtree(staging)
    prepared = [_prepare(ds[variables]).assign_attrs(_disk_attrs(ds)) for ds in datasets]
    writes = [ds.to_zarr(path, group=f"{_STAGING_GROUP}/{ds.attrs[S.ATTR_PARTITION]}", mode="w",
                         compute=False, consolidated=False, **_WRITE_OPTIONS)
              for ds in prepared]
    dask.compute(*writes)
    root.attrs[COMPLETE_ATTR] = False
    for ds in prepared:
        name = ds.attrs[S.ATTR_PARTITION]
        for var in variables:
            target = os.path.join(partition_path(path, name), var)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.rename(os.path.join(staging, name, var), target)
        group = zarr.open_group(path, path=f"{PARTITIONS_GROUP}/{name}", mode="r+", zarr_format=ZARR_FORMAT)
        group.attrs.put(dict(ds.attrs))
    shutil.rmtree(staging)
    _mark_complete(path)


def drop_variables(path, variables, partitions=None) -> None:
    """Remove ``variables`` from the store's partitions (all, or the named ones) where present."""
    path = os.path.normpath(os.fspath(path))
    root = _open_root(path)
    names = list(root.attrs.get(PARTITIONS_ATTR, [])) if partitions is None else list(partitions)
    root.attrs[COMPLETE_ATTR] = False
    for name in names:
        for var in variables:
            target = os.path.join(partition_path(path, name), var)
            if os.path.exists(target):
                shutil.rmtree(target)
    _mark_complete(path)


def _check_partitions(root, path, datasets) -> None:
    stored = set(root.attrs.get(PARTITIONS_ATTR, []))
    for ds in datasets:
        name = ds.attrs.get(S.ATTR_PARTITION)
        if name not in stored:
            raise InputError(f"{path}: no partition {name!r} to update")


# The antenna table travels in each partition's attributes rather than as six tiny arrays: on a
# scan-rich MS the per-array metadata files, not the data, dominate the cost of writing a store.
_ANTENNA_COORDS = (S.ANTENNA_NAME, S.ANTENNA_STATION, S.ANTENNA_POSITION, S.ANTENNA_DIAMETER,
                   S.ANTENNA_MOUNT)
_ANTENNAS_ATTR = "radiocal_antennas"
# Visibilities are noise-like and compress by a few per cent at best: store them raw, as casacore
# does. Flags and weights compress very well and keep the default compressor.
_UNCOMPRESSED = (S.VISIBILITY, S.VISIBILITY_CORRECTED, S.VISIBILITY_MODEL)


def _prepare(ds: xr.Dataset) -> xr.Dataset:
    """The on-disk form of a canonical dataset (undone by :func:`_restore`)."""
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {}   # drop encodings inherited from another store
    for name in _UNCOMPRESSED:
        if name in ds:
            ds[name].encoding = {"compressors": None}
    ds.attrs = _disk_attrs(ds)
    return ds.drop_vars([*_ANTENNA_COORDS, S.CARTESIAN], errors="ignore")


def _disk_attrs(ds: xr.Dataset) -> dict:
    """A partition's attributes on disk: its own plus the antenna table."""
    attrs = dict(ds.attrs)
    if S.ANTENNA_NAME in ds.coords:
        attrs[_ANTENNAS_ATTR] = {name: ds[name].values.tolist() for name in _ANTENNA_COORDS}
    return attrs


def _restore(ds: xr.Dataset) -> xr.Dataset:
    antennas = ds.attrs.pop(_ANTENNAS_ATTR, None)
    if antennas is None:
        return ds
    coords = {name: ((S.ANTENNA, S.CARTESIAN) if name == S.ANTENNA_POSITION else (S.ANTENNA,),
                     np.asarray(values, dtype=np.float64 if name in (S.ANTENNA_POSITION,
                                                                     S.ANTENNA_DIAMETER) else str))
              for name, values in antennas.items()}
    coords[S.CARTESIAN] = (S.CARTESIAN, np.array(S.CARTESIAN_LABELS))
    return ds.assign_coords(coords)


def _open_root(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such store")
    if not is_store(path):
        raise InputError(f"{path}: not a radiocal zarr store")
    root = zarr.open_group(path, mode="r+", zarr_format=ZARR_FORMAT, use_consolidated=False)
    if VERSION_ATTR not in root.attrs:
        raise InputError(f"{path}: a zarr group but not a radiocal store")
    if not root.attrs.get(COMPLETE_ATTR, False):
        raise InputError(f"{path}: store is incomplete (an interrupted write); write it again with --overwrite")
    return root


def _mark_complete(path) -> None:
    root = zarr.open_group(path, mode="r+", zarr_format=ZARR_FORMAT, use_consolidated=False)
    root.attrs[COMPLETE_ATTR] = True
    # One consolidated metadata document at the root serves every partition's reader; it is
    # rewritten whenever the store changes (per-group documents cost as much again to write)
    zarr.consolidate_metadata(path, zarr_format=ZARR_FORMAT)
