"""Resume bookkeeping inside the output store: one record per step, chained hashes, backups.

Layout (see docs/engine.md)::

    store.zarr/steps/<NN>_<name>/             zarr group; its attributes are the step record
    store.zarr/steps/<NN>_<name>/previous/<partition>/   variables the step overwrote, as they
                                              were before it ran (lets a step be redone exactly)

A record's ``chain`` hash covers the step's name, its config, the identity of the input files and
the previous step's ``chain``, so changing one step invalidates it and everything after it. A
record with ``status != "complete"`` is a step that was interrupted (e.g. SIGKILL).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import xarray as xr
import zarr

from radiocal.store import schema

STEPS_GROUP = "steps"
PREVIOUS_GROUP = "previous"
ZARR_FORMAT = 2  # the store's own format (radiocal.store.zarr_store)


def _jsonable(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def config_dict(config) -> dict:
    """A step config as plain JSON types (for hashing, records and provenance)."""
    return _jsonable(config)


def input_paths(config) -> list[Path]:
    """Paths named by the config's ``input=True`` fields, resolved."""
    paths = []
    for f in dataclasses.fields(config):
        if not f.metadata.get("input"):
            continue
        value = getattr(config, f.name)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None and str(item) != "":
                paths.append(Path(item).expanduser().resolve())
    return paths


def path_identity(path: Path) -> dict:
    """Cheap identity of an input file or table directory: sizes and mtimes of its top-level files.

    A casacore table rewrites ``table.f*``/``table.dat`` when its contents change, so their size and
    mtime identify a version of the MS without reading the data.
    """
    path = Path(path)
    if not path.exists():
        return {"path": str(path), "missing": True}
    if path.is_file():
        st = path.stat()
        return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    files, tables = [], []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_file():
            st = entry.stat()
            files.append([entry.name, st.st_size, st.st_mtime_ns])
        elif entry.is_dir() and entry.name.endswith(".ms"):
            tables.append(path_identity(Path(entry.path)))  # a directory of MS (OVRO-LWA)
    identity = {"path": str(path), "files": files}
    if tables:
        identity["tables"] = tables
    return identity


def chain_hash(previous: str, name: str, config, inputs: list[dict]) -> str:
    """SHA-256 of the previous chain hash, the step name, its config and its input identities."""
    payload = json.dumps(
        {"previous": previous, "step": name, "config": config_dict(config), "inputs": inputs},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def record_key(index: int, name: str) -> str:
    return f"{index:02d}_{name}"


def _steps_path(store: Path) -> Path:
    return Path(store) / STEPS_GROUP


def read_records(store: Path) -> list[dict]:
    """Records of the steps that ran (complete or not) in pipeline order; [] for no store."""
    steps = _steps_path(store)
    if not steps.is_dir():
        return []
    records = []
    for entry in sorted(steps.iterdir()):
        if not entry.is_dir():
            continue
        try:
            attrs = dict(zarr.open_group(str(store), path=f"{STEPS_GROUP}/{entry.name}", mode="r",
                                         zarr_format=ZARR_FORMAT, use_consolidated=False).attrs)
        except Exception:  # a group whose metadata was cut short by a kill: treat as not run
            attrs = {"key": entry.name, "status": "corrupt"}
        attrs.setdefault("key", entry.name)
        records.append(attrs)
    records.sort(key=lambda r: r["key"])
    return records


def write_record(store: Path, record: dict) -> None:
    """Create or replace one step's record (its group's attributes)."""
    group = zarr.open_group(str(store), path=f"{STEPS_GROUP}/{record['key']}", mode="a",
                            zarr_format=ZARR_FORMAT, use_consolidated=False)
    group.attrs.put(_jsonable(record))


def delete_record(store: Path, key: str) -> None:
    """Remove a step's record and any backups it holds."""
    shutil.rmtree(_steps_path(store) / key, ignore_errors=True)


def incomplete_steps(store: Path) -> list[str]:
    """Keys of records that were started but not completed (an interrupted run)."""
    return [r["key"] for r in read_records(store) if r.get("status") != "complete"]


# -- backups of overwritten variables --------------------------------------------------------


def _previous_group(key: str, partition: str) -> str:
    return f"{STEPS_GROUP}/{key}/{PREVIOUS_GROUP}/{partition}"


def partition_of(ds: xr.Dataset) -> str:
    try:
        return ds.attrs[schema.ATTR_PARTITION]
    except KeyError:
        raise ValueError("dataset has no 'partition' attribute: was it opened from a store?") from None


def save_previous(store: Path, key: str, datasets: list[xr.Dataset], variables: list[str]) -> None:
    """Copy ``variables`` of every partition into the step's backup group.

    ``datasets`` are the store's own partitions (the step's inputs, as the runner opens them):
    variables stored as plain zarr arrays are copied by linking their files
    (:func:`radiocal.store.zarr_store.link_array`), the others are computed and written.
    """
    from radiocal.store.zarr_store import link_array, stored_array

    for ds in datasets:
        group = _previous_group(key, partition_of(ds))
        present = [v for v in variables if v in ds.data_vars]
        stored = {v: stored_array(store, ds, v) for v in present}
        subset = ds[[v for v in present if stored[v] is None]]
        subset = subset.drop_vars([c for c in subset.coords if c not in subset.dims])
        for var in subset.data_vars.values():
            var.encoding = {k: v for k, v in var.encoding.items() if k in ("chunks", "compressors")}
        subset.attrs = {}
        # written even when empty: it makes the (fresh) backup group the links go into
        subset.to_zarr(str(store), group=group, mode="w", consolidated=False,
                       zarr_format=ZARR_FORMAT)
        for var, path in stored.items():
            if path is not None:
                link_array(path, Path(store) / group / var)


def open_previous(store: Path, key: str, datasets: list[xr.Dataset], variables: list[str]) -> list[xr.Dataset]:
    """``datasets`` with ``variables`` replaced by their backed-up (pre-step) values."""
    out = []
    for ds in datasets:
        saved = xr.open_zarr(str(store), group=_previous_group(key, partition_of(ds)),
                             consolidated=False, zarr_format=ZARR_FORMAT)
        replaced = ds.copy()
        for var in variables:
            if var in saved:
                replaced[var] = ds[var].copy(data=saved[var].data)
        out.append(replaced)
    return out


def has_previous(store: Path, key: str) -> bool:
    return (_steps_path(store) / key / PREVIOUS_GROUP).is_dir()
