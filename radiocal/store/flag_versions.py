"""Flag versions kept in a radiocal store, with CASA ``flagmanager`` semantics.

A version is a named copy of every partition's ``FLAG``, stored as
``STORE.zarr/flag_versions/<version>/<partition>`` (see ``docs/data-model.md``) with the version's
comment and creation time as group attributes. ``save`` copies the current flags (refusing an
existing name unless asked to overwrite), ``restore`` writes a version back into the partitions
(``merge`` = ``replace``, ``or`` or ``and``, as flagmanager), ``delete`` removes it, ``list``
lists versions in creation order.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil

import dask
import dask.array as da
import xarray as xr
import zarr

from radiocal.errors import ConfigError, InputError, OutputExistsError
from radiocal.store import rawchunks
from radiocal.store import schema as S
from radiocal.store.zarr_store import (
    ZARR_FORMAT,
    link_array,
    open_root,
    open_store,
    stored_array,
    update_store,
)

VERSIONS_GROUP = "flag_versions"
MERGE_MODES = ("replace", "or", "and")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _check_name(name: str) -> str:
    if not name or not _NAME.match(name) or name.startswith("."):
        raise ConfigError(f"bad flag version name {name!r}: use letters, digits and _ . + -")
    return name


def _version_path(store, name: str) -> str:
    return os.path.join(os.fspath(store), VERSIONS_GROUP, name)


def list_flag_versions(store) -> list[dict]:
    """Versions saved in ``store``, oldest first.

    Returns
    -------
    list of dict
        Each with ``name``, ``comment``, ``created`` (ISO 8601 UTC) and ``partitions``.
    """
    open_root(store)  # validates the store (its root only: opening every partition cost ~1 s)
    root = os.path.join(os.fspath(store), VERSIONS_GROUP)
    if not os.path.isdir(root):
        return []
    versions = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if not os.path.isdir(path):
            continue
        attrs = dict(zarr.open_group(path, mode="r", zarr_format=ZARR_FORMAT).attrs)
        if not attrs.get("complete", False):
            continue  # an interrupted save: not a version
        versions.append({"name": name, "comment": attrs.get("comment", ""),
                         "created": attrs.get("created", ""),
                         "partitions": list(attrs.get("partitions", []))})
    return sorted(versions, key=lambda v: (v["created"], v["name"]))


def next_version_name(store, prefix: str = "flag") -> str:
    """``<prefix>_<n>`` with ``n`` one more than any existing version of that form."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)$")
    numbers = [int(m.group(1)) for v in list_flag_versions(store)
               if (m := pattern.match(v["name"]))]
    return f"{prefix}_{max(numbers, default=0) + 1}"


def save_flag_version(store, name: str, comment: str = "", datasets=None,
                      overwrite: bool = False, opened=None) -> str:
    """Save the flags of every partition as version ``name``.

    Parameters
    ----------
    store : str or os.PathLike
    name : str
    comment : str
    datasets : list of xarray.Dataset, optional
        Save these partitions' ``FLAG`` (matched by their ``partition`` attribute) instead of the
        store's current flags, e.g. the flags a pipeline step received.
    overwrite : bool
        Replace an existing version of that name.
    opened : list of xarray.Dataset, optional
        The store's partitions as :func:`open_store` returned them, when the caller has them
        (opening a partition costs ~7 ms; a scan-rich store has hundreds).

    Returns
    -------
    str
        The version's name.
    """
    _check_name(name)
    # The store's own flags are copied by linking their files; given datasets are written.
    from_store = datasets is None
    if opened is None:
        opened = open_store(store)
    if from_store:
        datasets = opened
    path = _version_path(store, name)
    if os.path.exists(path):
        if not overwrite:
            raise OutputExistsError(f"flag version {name!r} already exists in {store}")
        shutil.rmtree(path)
    # The parent must be a zarr group too, or zarr warns that the store holds a foreign object.
    zarr.open_group(os.path.dirname(path), mode="a", zarr_format=ZARR_FORMAT)
    group = zarr.open_group(path, mode="w", zarr_format=ZARR_FORMAT)
    group.attrs.update({"complete": False})
    writes = []
    names = []
    for ds in datasets:
        part = ds.attrs[S.ATTR_PARTITION]
        names.append(part)
        source = stored_array(store, ds, S.FLAG) if from_store else None
        if source is not None:
            zarr.open_group(path, path=part, mode="w", zarr_format=ZARR_FORMAT)
            link_array(source, os.path.join(path, part, S.FLAG))
            continue
        flag = ds[S.FLAG]
        only = xr.Dataset({S.FLAG: (flag.dims, flag.data)})
        writes.append(only.to_zarr(path, group=part, mode="w", compute=False, consolidated=False,
                                   zarr_format=ZARR_FORMAT))
    dask.compute(*writes)
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")
    group.attrs.update({"comment": comment, "created": created, "partitions": names,
                        "complete": True})
    return name


def open_flag_version(store, name: str) -> dict:
    """The saved flags of version ``name``: partition name -> lazy ``FLAG`` DataArray."""
    path = _version_path(store, _check_name(name))
    known = {v["name"]: v for v in list_flag_versions(store)}
    if name not in known:
        raise InputError(f"no flag version {name!r} in {store} (have: {', '.join(known) or 'none'})")
    # the arrays alone: an xarray open of each partition's group cost ~50 ms; read chunk file
    # by chunk file as the store's partitions are (zarr for layouts rawchunks does not read)
    out = {}
    for part in known[name]["partitions"]:
        array_path = os.path.join(path, part, S.FLAG)
        info = rawchunks.array_info(array_path)
        if info is not None:
            meta, dims, _ = info
            out[part] = xr.DataArray(rawchunks.open_array(array_path, meta), dims=dims)
            continue
        array = zarr.open_array(array_path, mode="r", zarr_format=ZARR_FORMAT)
        out[part] = xr.DataArray(da.from_zarr(array), dims=array.attrs["_ARRAY_DIMENSIONS"])
    return out


def restore_flag_version(store, name: str, merge: str = "replace") -> list[str]:
    """Write version ``name`` back into the store's partitions.

    Parameters
    ----------
    merge : {"replace", "or", "and"}
        Replace the current flags, or combine them with the saved ones.

    Returns
    -------
    list of str
        The partitions restored.
    """
    if merge not in MERGE_MODES:
        raise ConfigError(f"merge must be one of {', '.join(MERGE_MODES)}, not {merge!r}")
    saved = open_flag_version(store, name)
    current = {ds.attrs[S.ATTR_PARTITION]: ds for ds in open_store(store)}
    updated = []
    for part, flag in saved.items():
        if part not in current:
            continue  # a partition removed since the save: nothing to restore into
        ds = current[part]
        if ds[S.FLAG].shape != flag.shape:
            raise InputError(f"flag version {name!r}: partition {part} changed shape since the save")
        old = ds[S.FLAG].data
        new = flag.data.rechunk(old.chunks)
        if merge == "or":
            new = new | old
        elif merge == "and":
            new = new & old
        updated.append(ds.assign({S.FLAG: (ds[S.FLAG].dims, new)}))
    if updated:
        update_store(updated, store, [S.FLAG])
    return [ds.attrs[S.ATTR_PARTITION] for ds in updated]


def delete_flag_version(store, name: str) -> None:
    """Remove version ``name`` from the store."""
    open_store(store)
    path = _version_path(store, _check_name(name))
    if not os.path.isdir(path):
        raise InputError(f"no flag version {name!r} in {store}")
    shutil.rmtree(path)
