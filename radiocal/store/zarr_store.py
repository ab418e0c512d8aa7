"""The radiocal zarr store: canonical partitions plus what later steps add to them.

The layout is a published contract (``docs/store.md``): each partition group opens with plain
``xarray.open_zarr(STORE/partitions/NAME)``, its coordinates zarr arrays whose attributes give
units and time scale (:data:`radiocal.store.schema.COORD_ATTRS`), and every partition is checked
against the schema when written and when opened (:func:`radiocal.store.schema.schema_problem`).
Stores are zarr format 2 (readable by every zarr and xarray release), without consolidated
metadata: readers open a partition's own files. The root attribute ``radiocal_complete`` is set
to false when a write starts and to true as the very last act, so an interrupted write is never
taken for a finished store.

radiocal itself creates, writes and opens the arrays with :mod:`radiocal.store.rawchunks` (a few
tenths of a millisecond per array, where zarr-python and xarray take several: a scan-rich MS has
hundreds of partitions of a dozen arrays each). A ``WEIGHT`` known to be constant over channels
is stored without its ``frequency`` axis; :func:`open_store` broadcasts it back, so radiocal's
readers always see canonical datasets.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Sequence

import dask
import dask.array as da
import numcodecs
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from radiocal import budget
from radiocal.errors import InputError, OutputError, OutputExistsError
from radiocal.store import rawchunks
from radiocal.store import schema as S
from radiocal.store.chunktasks import per_chunk

# 3: coordinates as zarr arrays with units (2 kept them in the attribute ``radiocal_coords``);
# channel-constant WEIGHT stored as (time, baseline, polarization)
# 4: coordinates other than ``time`` stored once per distinct value under ``coords/`` and linked
# from the partitions (3 wrote them into every partition; still read: links are transparent)
STORE_VERSION = 4
READ_VERSIONS = (3, 4)
ZARR_FORMAT = 2
# Every chunk is written: zarr's default compares each chunk with the fill value first, which cost
# more CPU than writing the uncompressed visibilities themselves (1.3 s of 1.5 s for 0.5 GB).
_WRITE_OPTIONS = dict(zarr_format=ZARR_FORMAT, write_empty_chunks=True)
COMPLETE_ATTR = "radiocal_complete"
VERSION_ATTR = "radiocal_store_version"
PARTITIONS_ATTR = "partitions"
PARTITIONS_GROUP = "partitions"
# A scan-rich MS has hundreds of partitions that share their antenna table, baselines, channels
# and correlations; written into each, those coordinates were 16 arrays (48 files) per partition,
# and creating files is what converting such an MS cost most (408 partitions: 26 500 files).
COORDS_GROUP = "coords"
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
    for ds in datasets:
        problem = S.schema_problem(ds)
        if problem:
            raise InputError(f"partition {ds.attrs.get(S.ATTR_PARTITION, '?')}: not a canonical "
                             f"dataset ({problem})")
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

    # The same .zgroup and .zattrs documents zarr-python writes, without importing it: zarr is
    # ~0.2 CPU-s of a `radiocal convert`'s imports, and convert needs nothing else of it.
    rawchunks.create_group(path, {VERSION_ATTR: STORE_VERSION, COMPLETE_ATTR: False,
                                  PARTITIONS_ATTR: names})
    rawchunks.create_group(os.path.join(path, PARTITIONS_GROUP), {})
    shared = os.path.join(path, COORDS_GROUP)
    rawchunks.create_group(shared, {})
    try:
        prepared = [_prepare(ds) for ds in datasets]
        written: set[str] = set()
        # each partition's arrays created when its unit is submitted, while the units before it
        # compute (as update_store's writes): created all first, they left the threads idle
        writes = OnDemand(len(prepared), lambda i: _lazy_writes(
            [prepared[i]], [partition_path(path, names[i])], shared=shared, written=written)[0])
        compute_by_partition(writes, [_cells(ds) for ds in prepared])
    except BaseException as err:
        # A failed conversion leaves nothing behind (a killed one leaves a store marked incomplete)
        shutil.rmtree(path, ignore_errors=True)
        # no space, a file size limit: the OS names no file, but the store is what failed
        if isinstance(err, OSError) and err.filename is None:
            raise OutputError.writing(path, err) from None
        raise
    _mark_complete(path)
    return path


def stored_array(store, ds: xr.Dataset, name: str) -> str | None:
    """The directory of variable ``name`` of partition ``ds`` when the store holds it as a plain
    zarr array in its canonical dims (so copying its files copies its values), else None.

    ``ds`` must be the store's own partition (as :func:`open_store` returns it): the files are
    what is compared, not the dataset's values.
    """
    if name in _UNCOMPRESSED or name not in ds.data_vars:
        return None       # raw chunk files and compact weights have their own on-disk form
    import zarr

    path = os.path.join(partition_path(store, ds.attrs.get(S.ATTR_PARTITION, "")), name)
    try:
        array = zarr.open_array(path, mode="r", zarr_format=ZARR_FORMAT)
    except (FileNotFoundError, ValueError, KeyError, zarr.errors.BaseZarrError):
        return None
    dims = tuple(array.attrs.get("_ARRAY_DIMENSIONS", ()))
    if dims != tuple(ds[name].dims) or array.shape != ds[name].shape:
        return None
    return path


def link_array(source, target) -> None:
    """Copy a stored zarr array directory by hard-linking its chunk files.

    Safe because the store never writes into an array's files: :func:`update_store` writes new
    arrays beside the old and swaps the directories, so a linked chunk keeps the values it had.
    The small metadata files are copied (zarr rewrites those in place). Where the file system
    has no hard links, the chunks are copied.
    """
    def link_or_copy(src, dst):
        if os.path.basename(src).startswith("."):
            return shutil.copyfile(src, dst)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        return dst

    if os.path.exists(target):
        shutil.rmtree(target)
    shutil.copytree(source, target, copy_function=link_or_copy)


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
    root = open_root(path)
    names = list(root.attrs.get(PARTITIONS_ATTR, []))
    if partitions is not None:
        missing = sorted(set(partitions) - set(names))
        if missing:
            raise InputError(f"{path}: no partition(s) {', '.join(missing)}")
        names = [n for n in names if n in set(partitions)]
    shared: dict = {}    # a linked coordinate's array -> its variable, read once for all partitions
    return [_open_partition(path, name, shared) for name in names]


def partition_attrs(path) -> dict[str, dict]:
    """name -> attributes of each partition of a complete store, in stored order, read without
    opening the partitions (to choose which to open with :func:`open_store`)."""
    names = list(open_root(path).attrs.get(PARTITIONS_ATTR, []))
    return {name: _group_attrs(partition_path(path, name)) for name in names}


def _group_attrs(group: str) -> dict:
    """A group's attributes (its ``.zattrs``), or a one-line error when they cannot be read."""
    try:
        with open(os.path.join(group, ".zattrs")) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise InputError(f"{group}: damaged zarr metadata ({type(err).__name__}: {err})") from None


def _open_partition(path, name: str, shared: dict) -> xr.Dataset:
    group = partition_path(path, name)
    parts = _read_arrays(group, shared)
    if parts is None:    # an array radiocal did not write (filters, objects): through xarray
        # a short chunk file is a one-line error, not a crash later
        rawchunks.check_zarr_arrays(group, skip=shared)
        try:
            # The partition's own metadata files, not the store's consolidated metadata: that
            # holds every partition, and parsing it once per partition made opening quadratic
            # in their number (96 partitions of a 7.5 MB CARMA set: 22 s instead of 1.2 s)
            ds = xr.open_zarr(group, consolidated=False, chunks={}, zarr_format=ZARR_FORMAT)
        except (KeyError, ValueError, TypeError, OSError) as err:
            raise InputError(f"{group}: damaged zarr metadata ({type(err).__name__}: {err})") from None
        parts = ({k: v.variable for k, v in ds.data_vars.items()},
                 {k: v.variable.load() for k, v in ds.coords.items()}, ds.attrs)
    ds = _restore(*parts, group)
    problem = S.schema_problem(ds)
    if problem:
        raise InputError(f"{group}: not a radiocal partition of store layout {STORE_VERSION} "
                         f"({problem})")
    return ds


# Array attributes that ask a reader for CF decoding (xarray's ``to_zarr`` writes them; radiocal's
# own writer never does): such a group is opened through xarray.
_CF_ENCODED = frozenset({"_FillValue", "missing_value", "scale_factor", "add_offset", "calendar",
                         "coordinates", "dtype", "_Unsigned", "_Encoding"})


def _read_group(group: str, shared: dict | None = None) -> xr.Dataset | None:
    """A group read with :func:`radiocal.store.rawchunks.open_array` (what ``xarray.open_zarr``
    gives, at a fraction of its cost: coordinates in memory, variables lazy by stored chunk), or
    None when an array needs zarr-python. See :func:`_read_arrays`."""
    parts = _read_arrays(group, shared)
    if parts is None:
        return None
    data_vars, coords, attrs = parts
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _read_arrays(group: str, shared: dict | None = None) -> tuple | None:
    """A group's variables, coordinates (name -> xarray.Variable each) and attributes, its chunk
    files checked (:func:`radiocal.store.rawchunks.check_chunks`), or None when an array needs
    zarr-python.

    ``shared``: coordinates linked from other groups (:func:`_link_coordinate`), by the path
    linked to, each read (and checked) once and kept here for the next group that links it."""
    attrs = _group_attrs(group)
    entries = sorted(os.listdir(group))    # readable: its .zattrs just was
    coord_names = set(str(attrs.pop("coordinates", "")).split())
    coords, data_vars = {}, {}
    for entry in entries:
        if entry.startswith("."):
            continue
        array_path = os.path.join(group, entry)
        linked = rawchunks.link_target(array_path) if shared is not None else None
        if linked is not None and linked in shared:
            coords[entry] = shared[linked].copy(deep=False)
            continue
        info = rawchunks.array_info(array_path)
        if info is None:
            if os.path.exists(os.path.join(array_path, ".zarray")):
                return None
            continue
        meta, dims, var_attrs = info
        if _CF_ENCODED.intersection(var_attrs) or " since " in str(var_attrs.get("units", "")):
            return None
        # a short chunk file is a one-line error, not a crash later
        rawchunks.check_chunks(array_path, meta)
        is_coord = entry in coord_names or dims == (entry,)
        values = rawchunks.open_array(array_path, meta, lazy=not is_coord)
        (coords if is_coord else data_vars)[entry] = xr.Variable(dims, values, attrs=var_attrs)
        if linked and is_coord:
            shared[linked] = coords[entry]
    return data_vars, coords, attrs


def update_store(datasets: list[xr.Dataset], path, variables, also=()) -> list:
    """Rewrite (or add) ``variables`` of existing partitions, matched by their ``partition`` attr.

    The new values are computed into a staging group first and only then moved into place, so a
    variable that is computed from its own stored values (flags from flags) is never read after
    it has been partly overwritten. The partitions' attributes are replaced by the datasets'. The
    store is marked incomplete while the moves happen.

    ``also``: per dataset, lazy values (counts, sums of the new values) computed in the same pass
    as its writes, chunk by chunk beside them; their results are returned, a list aligned with
    ``datasets``.
    """
    path = os.path.normpath(os.fspath(path))
    root = open_root(path)
    _check_partitions(root, path, datasets)
    variables = list(variables)
    staging = os.path.join(path, _STAGING_GROUP)
    if os.path.exists(staging):
        shutil.rmtree(staging)
    # only the variables: the partition's coordinates stay as they are
    prepared = [_stored_chunks(
        _prepare(ds[variables].drop_vars(list(ds[variables].coords))).assign_attrs(_disk_attrs(ds)),
        partition_path(path, ds.attrs[S.ATTR_PARTITION]), spill_dir(path)) for ds in datasets]
    import zarr

    zarr.open_group(staging, mode="w", zarr_format=ZARR_FORMAT)
    extra = list(also) if also else [()] * len(prepared)
    if len(extra) != len(prepared):
        raise ValueError(f"also: one entry per dataset ({len(prepared)}), got {len(extra)}")
    # each partition's writes built when its unit is submitted, while the units before it
    # compute: built all first, the driver's ~50 ms a partition of graph building and array
    # creation left the threads idle (calibrate x4 28 partitions: ~1.5 s)
    writes = OnDemand(len(prepared), lambda i: _lazy_writes(
        [prepared[i]], [os.path.join(staging, prepared[i].attrs[S.ATTR_PARTITION])], [extra[i]],
        groups=False)[0])
    try:
        results = compute_by_partition(writes, [_cells(ds) for ds in prepared])
    except BaseException as err:
        # nothing of the store has changed yet: it stays as it was, without the staging area
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, OSError) and err.filename is None:
            raise OutputError.writing(path, err) from None
        raise
    root.attrs[COMPLETE_ATTR] = False
    for ds in prepared:
        name = ds.attrs[S.ATTR_PARTITION]
        for var in variables:
            target = os.path.join(partition_path(path, name), var)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.rename(os.path.join(staging, name, var), target)
        rawchunks.update_attrs(partition_path(path, name), json_ready(ds.attrs))
    shutil.rmtree(staging)
    _mark_complete(path)
    return results


def spill_dir(path) -> str:
    """Where a graph that will be written by :func:`update_store` into the store at ``path``
    may spill (:func:`radiocal.store.rawchunks.spill`): inside the staging area, which
    :func:`update_store` removes once the new values are in place."""
    return os.path.join(os.path.normpath(os.fspath(path)), _STAGING_GROUP, ".spill")


def spilling_into(store):
    """dask config under which graphs built for :func:`update_store` into ``store`` spill
    (:func:`radiocal.store.rawchunks.spill`) into its staging area. Outside a run (``store``
    None, or not a store yet: a library call) nothing is spilled."""
    spill = spill_dir(store) if store is not None and is_store(store) else None
    return dask.config.set({rawchunks.SPILL_DIR_KEY: spill})


def _stored_chunks(ds: xr.Dataset, group_path: str, spill: str) -> xr.Dataset:
    """``ds`` with each variable the partition already stores in the stored array's chunks.

    A variable computed in other chunks (flags in planes of every time of a few baselines, for
    chunks of every baseline of a few times) is spilled and read back region by region: a
    rechunk would hold every chunk of the partition at once.
    """
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if not isinstance(var.data, da.Array):
            continue
        chunks = rawchunks.stored_chunks(os.path.join(group_path, name))
        if chunks is not None and var.shape == tuple(map(sum, chunks)) and chunks != var.data.chunks:
            out[name] = var.copy(data=rawchunks.spill(var.data, spill, chunks))
    return out


def drop_variables(path, variables, partitions=None) -> None:
    """Remove ``variables`` from the store's partitions (all, or the named ones) where present."""
    path = os.path.normpath(os.fspath(path))
    root = open_root(path)
    names = list(root.attrs.get(PARTITIONS_ATTR, [])) if partitions is None else list(partitions)
    root.attrs[COMPLETE_ATTR] = False
    for name in names:
        for var in variables:
            target = os.path.join(partition_path(path, name), var)
            if os.path.islink(target):      # a shared coordinate: only this partition's link
                os.remove(target)
            elif os.path.exists(target):
                shutil.rmtree(target)
    _mark_complete(path)


def _check_partitions(root, path, datasets) -> None:
    stored = set(root.attrs.get(PARTITIONS_ATTR, []))
    for ds in datasets:
        name = ds.attrs.get(S.ATTR_PARTITION)
        if name not in stored:
            raise InputError(f"{path}: no partition {name!r} to update")


def _lazy_writes(datasets: list[xr.Dataset], group_paths: list[str], also=None,
                 shared: str | None = None, groups: bool = True,
                 written: set[str] | None = None) -> list:
    """Create every partition's zarr arrays now; return each partition's writes, one delayed
    object per partition that computes to its entry of ``also`` (None without it).

    :mod:`radiocal.store.rawchunks` creates the arrays and writes their chunk files (zarr-python
    takes ~4 ms per array created; a scan-rich MS has hundreds): visibilities raw, everything else
    blosc-compressed as zarr-python would; coordinates (small) are written now, whole, as one
    chunk. With ``shared`` (a store's ``coords`` group) every coordinate but ``time`` is written
    there once per distinct value and linked into the partitions (:func:`_link_coordinate`). A
    partition with a coordinate of another kind (objects, scalars) is written by xarray's
    ``to_zarr``, its visibilities still raw. The chunks' writes are one task per chunk
    (:func:`radiocal.store.chunktasks.per_chunk`).

    ``written``: the shared coordinates already in ``shared`` (updated here), to share between
    calls that write into the same ``shared`` group.

    ``groups=False``: each path is a bare directory for the arrays, not a zarr group with the
    dataset's attributes (``update_store``'s staging area, whose arrays are moved into the
    partitions: two files fewer to write and remove per partition).
    """
    out = []
    written = set() if written is None else written
    for index, (ds, group_path) in enumerate(zip(datasets, group_paths)):
        writes, others = [], []
        if all(_plain(var) for var in ds.coords.values()):
            ours = list(ds.data_vars) + list(ds.coords)
            if os.path.exists(group_path):
                shutil.rmtree(group_path)
            if groups:
                rawchunks.create_group(group_path, json_ready(ds.attrs))
            else:
                os.makedirs(group_path)
        else:
            ours = [name for name in _UNCOMPRESSED if name in ds.data_vars]
            rest = ds.drop_vars(ours)
            rest.attrs.pop("coordinates", None)   # xarray writes its own
            others.append(rest.to_zarr(
                group_path, mode="w", compute=False, consolidated=False, **_WRITE_OPTIONS))
        for name in ours:
            var = ds[name].variable
            codec = None if name in _UNCOMPRESSED else _COMPRESSOR
            if name in ds.coords:
                if not (shared and name != S.TIME
                        and _link_coordinate(shared, written, group_path, name, var)):
                    _write_coordinate(group_path, name, var)
                continue
            data = _as_dask(var)
            writer = rawchunks.create_array(group_path, name, data, var.dims,
                                            json_ready(var.attrs), codec)
            writes.append((rawchunks.store(data, writer), var.dims))
        out.append(per_chunk(writes, None if also is None else also[index], alongside=others))
    return out


def _write_coordinate(group_path: str, name: str, var: xr.Variable) -> None:
    values = np.asarray(var.values)
    writer = rawchunks.create_array(group_path, name, values, var.dims, json_ready(var.attrs),
                                    _COMPRESSOR)
    writer[(slice(None),) * values.ndim] = values


def _link_coordinate(shared: str, written: set, group_path: str, name: str,
                     var: xr.Variable) -> bool:
    """Make coordinate ``name`` of a partition a relative symbolic link to the array of the same
    name and value in ``shared``, writing that array first if it is new; False where the file
    system has no symbolic links (then the caller writes it into the partition).

    A link costs one directory entry where an array is three files and a directory (~0.7 ms of
    CPU each on this project's VM), and readers decode each shared array once
    (:func:`open_store`); plain zarr and xarray readers follow links without knowing.
    """
    values = np.asarray(var.values)
    attrs = json_ready(var.attrs)
    digest = hashlib.blake2b(json.dumps([name, var.dims, values.dtype.str, values.shape, attrs],
                                        sort_keys=True).encode(), digest_size=8)
    digest.update(np.ascontiguousarray(values).tobytes())
    entry = f"{name}-{digest.hexdigest()}"
    target = os.path.join(shared, entry)
    try:
        os.symlink(os.path.join(os.path.relpath(shared, group_path), entry),
                   os.path.join(group_path, name), target_is_directory=True)
    except OSError:
        return False
    if entry not in written:
        _write_coordinate(shared, entry, var)
        written.add(entry)
    return True


# The partitions in flight hold this many chunk budgets of visibilities (at least one
# partition). Flagging a 0.6 GB 28-partition store at the 8 MiB budget with windows of 4 / 16 /
# 48 budgets took the same CPU (49-50 s) and wall time and peaked at 436 / 600 / 1210 MB.
WINDOW_CHUNKS = 4


def compute_by_partition(lazy: list, sizes: list[int]) -> list:
    """Compute ``lazy`` (one entry per partition), a window of partitions in flight at a time;
    the results in order.

    Within a partition, chunking bounds memory; across partitions nothing does: dask orders a
    graph of many small partitions by priorities that interleave them, and distributed does not
    queue their reads (each partition's arrays are task groups too small to be "root-ish"), so
    reads of many partitions ran ahead of their consumers (flagging a VLA-like store of 28 scans:
    2.5 GB held, most of it read regions waiting for their passes). The partitions in flight
    hold ``WINDOW_CHUNKS`` chunk budgets or more (``sizes``: each partition's, see
    :func:`_cells`). On a distributed client the window slides: partitions are submitted in
    units of up to one chunk budget (:func:`_units`), the next as soon as one finishes, so no
    thread waits for the last task of a window, and there is a unit per worker thread in flight,
    and one more, even when they exceed the window. Elsewhere (threaded, sync) windows are computed one after
    the other. ``lazy`` may be an :class:`OnDemand` sequence: each entry is then built when it is
    first needed (a unit's when the unit is submitted, a window's when it is computed).
    """
    window = WINDOW_CHUNKS * budget.chunk_bytes()
    client = _distributed_client()
    if client is not None:
        units = _units(sizes, budget.chunk_bytes())
        # each partition made a Delayed of its own first: dask.delayed of a list of tuples of
        # collections gave back the list's values regrouped (dask 2026.8, on distributed)
        done = _sliding(client, [functools.partial(_unit, lazy, unit) for unit in units],
                        [sum(sizes[i] for i in unit) for unit in units], window)
        return [value for values in done for value in values]
    results, batch, held = [], [], 0
    for item, size in zip(lazy, sizes):
        batch.append(item)
        held += size
        if held >= window:
            results.extend(dask.compute(*batch))
            batch, held = [], 0
    if batch:
        results.extend(dask.compute(*batch))
    return results


def _listed(*values) -> list:
    return list(values)


def _unit(lazy, unit: list[int]):
    """The entries ``unit`` of ``lazy`` as one Delayed (built now, if ``lazy`` is
    :class:`OnDemand`)."""
    return dask.delayed(_listed)(*(dask.delayed(lazy[i]) for i in unit))


class OnDemand(Sequence):
    """A sequence of ``n`` entries, entry ``i`` made by ``make(i)`` when it is first asked for
    (and kept): :func:`compute_by_partition` on a distributed client asks for a unit's entries
    only when it submits the unit, so the driver builds the next partitions' graphs while the
    workers compute the ones submitted."""

    def __init__(self, n: int, make):
        self._n, self._make, self._made = n, make, {}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if not -self._n <= index < self._n:
            raise IndexError(index)
        index %= self._n
        if index not in self._made:
            self._made[index] = self._make(index)
        return self._made[index]


def _units(sizes: list[int], most: int) -> list[list[int]]:
    """Consecutive partitions grouped into units of at most ``most`` (one chunk budget), a
    larger partition alone: each unit is one submission to the cluster. A scan-rich MS's
    partitions are far below a budget, and submitting each on its own cost ~10 ms of the
    client's and the scheduler's time (408 partitions of 0.7 MB)."""
    units: list[list[int]] = []
    held = 0
    for index, size in enumerate(sizes):
        if units and held + size <= most:
            units[-1].append(index)
            held += size
        else:
            units.append([index])
            held = size
    return units


def _distributed_client():
    """The distributed client dask computes on, or None (threaded or sync scheduler)."""
    if "distributed" not in sys.modules:
        # No client without distributed imported; importing it to find none cost a `radiocal
        # --scheduler threads convert` ~0.25 CPU-s
        return None
    try:
        from distributed import default_client
        client = default_client()
    except (ImportError, ValueError):
        return None
    return client if dask.base.get_scheduler() == client.get else None


def _sliding(client, lazy: list, sizes: list[int], window: int) -> list:
    """``lazy``: one callable per unit, called when the unit is submitted, giving its graph."""
    from distributed import wait

    results: list = [None] * len(lazy)
    in_flight: dict = {}       # future -> (index, size)
    held, following = 0, 0
    # A partition's flagging has steps that wait for all its planes (antenna health, array
    # statistics) and a last write: with a single large partition in flight (one over the
    # window) the other threads idled at each (VLA-like x4, 2 threads: 1.66x the speed of 1,
    # x1 with two 22 MB partitions in flight 1.81x). One partition per thread keeps them busy,
    # and one more waits at the scheduler (its tasks run after theirs, which were submitted
    # first) for a thread that one finishes or leaves at a barrier: submitted only once one was
    # done, it started 50-100 ms later (x4 store, 2 threads: the threads' idle gaps 5.6 -> 4.4
    # thread-s; 1 thread 2.8 -> 2.3 s; peaks the same; load ~2-5).
    threads = max(1, sum(client.nthreads().values()))
    try:
        while following < len(lazy) or in_flight:
            # top up: a partition per thread and one more, then as many as the window holds
            while following < len(lazy) and (len(in_flight) <= threads or held < window):
                future = client.compute(dask.delayed(lazy[following]()))
                in_flight[future] = (following, sizes[following])
                held += sizes[following]
                following += 1
            done, _ = wait(list(in_flight), return_when="FIRST_COMPLETED")
            for future in done:
                index, size = in_flight.pop(future)
                results[index] = future.result()
                held -= size
    finally:
        for future in in_flight:
            future.cancel()
    return results


def _cells(ds: xr.Dataset) -> int:
    """A partition's size in the budget's units: its visibilities' bytes (complex64), whichever
    of its variables are being written."""
    return max((var.size for var in ds.data_vars.values()), default=0) * budget.VISIBILITY_ITEMSIZE


# zarr-python's default compressor for zarr v2 arrays (what stores have always used)
_COMPRESSOR = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE, blocksize=0)


def _as_dask(var: xr.Variable) -> da.Array:
    if isinstance(var.data, da.Array):
        return var.data
    return da.from_array(np.asarray(var.data),
                         chunks={0: "auto", **{axis: -1 for axis in range(1, var.ndim)}})


def json_ready(value):
    """``value`` (attributes) with numpy arrays and scalars turned into JSON-ready Python."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


# Visibilities are noise-like and compress by a few per cent at best: store them raw, as casacore
# does, and read and write their chunk files directly. Flags and weights compress very well and
# keep the default compressor.
_UNCOMPRESSED = (S.VISIBILITY, S.VISIBILITY_CORRECTED, S.VISIBILITY_MODEL)
# Set on a lazy WEIGHT made by :func:`broadcast_channels`: (its dask name, the channel-free source)
_CHANNEL_FREE = "_radiocal_channel_free"
_WEIGHT_DIMS = (S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION)
_COMPACT_WEIGHT_DIMS = (S.TIME, S.BASELINE, S.POLARIZATION)


def broadcast_channels(weight: da.Array, chan_chunks: tuple[int, ...]) -> da.Array:
    """Lazily repeat a channel-free weight over channels, remembering where it came from.

    Parameters
    ----------
    weight : dask.array.Array
        (time, baseline, polarization) weights, the same for every channel.
    chan_chunks : tuple of int
        Chunks of the ``frequency`` axis to produce.

    Returns
    -------
    dask.array.Array
        (time, baseline, frequency, polarization), C-contiguous chunks like any other variable.
        The store writes it without the ``frequency`` axis (:func:`_prepare`) as long as it is
        this very array; any operation on it makes a new array that is stored in full.
    """
    # One task per block, built directly: slicing, da.broadcast_to and map_blocks took ~0.4 ms
    # per partition to build (a scan-rich store has hundreds, opened by every step)
    chan_chunks = tuple(int(n) for n in chan_chunks)
    chunks = (weight.chunks[0], weight.chunks[1], chan_chunks, weight.chunks[2])
    name = "channel-weights-" + tokenize(weight.name, chan_chunks)
    layer = {(name, t, b, f, p): (_repeat_channels, (weight.name, t, b, p), n)
             for t in range(len(chunks[0])) for b in range(len(chunks[1]))
             for f, n in enumerate(chan_chunks) for p in range(len(chunks[3]))}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[weight])
    full = da.Array(graph, name, chunks, meta=np.empty((0, 0, 0, 0), dtype=weight.dtype))
    setattr(full, _CHANNEL_FREE, (full.name, weight))
    return full


def _repeat_channels(block: np.ndarray, nchan: int) -> np.ndarray:
    """(time, baseline, polarization) -> (time, baseline, nchan, polarization), C-contiguous."""
    return np.repeat(block[:, :, None, :], nchan, axis=2)


def channel_free(array):
    """The channel-free source of a WEIGHT made by :func:`broadcast_channels`, else None."""
    marker = getattr(array, _CHANNEL_FREE, None)
    # dask arrays can be assigned to in place (a new name): then the marker no longer holds
    if marker is None or marker[0] != getattr(array, "name", None):
        return None
    return marker[1]


def _plain(var: xr.Variable) -> bool:
    """Numbers or fixed-width strings, not a scalar: an array :mod:`radiocal.store.rawchunks`
    writes and reads."""
    return var.dtype.kind in "biufU" and var.ndim > 0


def _meaning(names, attrs: dict) -> dict:
    """name -> the attributes the schema gives that coordinate or variable on disk, for the
    ``names`` of a group whose attributes are ``attrs``."""
    out = {name: dict(meaning) for name, meaning in {**S.COORD_ATTRS, **S.VARIABLE_ATTRS}.items()
           if name in names}
    if S.FREQUENCY in out and S.ATTR_FREQ_REF in attrs:
        out[S.FREQUENCY]["frame"] = attrs[S.ATTR_FREQ_REF]
    return out


def _prepare(ds: xr.Dataset) -> xr.Dataset:
    """The on-disk form of a canonical dataset (undone by :func:`_restore`): coordinates and
    variables carry the schema's units, a channel-free WEIGHT is stored without its channels.

    Made as one new dataset over the coordinates (and indexes) ``ds`` has: replacing a variable
    of a dataset aligns it again (~0.5 ms a partition)."""
    coords = ds.coords.copy()
    data_vars = {name: var.variable.copy(deep=False) for name, var in ds.data_vars.items()}
    weight = data_vars.get(S.WEIGHT)
    if weight is not None and weight.dims == _WEIGHT_DIMS:
        compact = channel_free(weight.data)
        if compact is not None:
            data_vars[S.WEIGHT] = xr.Variable(_COMPACT_WEIGHT_DIMS, compact, attrs=weight.attrs)
    meaning = _meaning(ds.variables, ds.attrs)
    for name, var in (*data_vars.items(), *coords.variables.items()):
        var.encoding = {}   # drop encodings inherited from another store
        if name in meaning:
            var.attrs = {**var.attrs, **meaning[name]}
    return xr.Dataset(data_vars, coords=coords, attrs=_disk_attrs(ds))


def _disk_attrs(ds: xr.Dataset) -> dict:
    """A group's attributes on disk: its own, plus (CF's ``coordinates``, as xarray writes it)
    the names of its coordinates that are not dimensions, so any xarray reader takes them for
    coordinates."""
    attrs = dict(ds.attrs)
    others = [name for name in ds.coords if name not in ds.dims]
    if others:
        attrs["coordinates"] = " ".join(others)
    return attrs


def write_group(ds: xr.Dataset, group_path) -> None:
    """Write a small in-memory dataset (a calibration table's spw) as a zarr group the way the
    store writes partitions: coordinates as arrays, any xarray reader opens it."""
    dask.compute(_lazy_writes([ds.assign_attrs(_disk_attrs(ds))], [os.fspath(group_path)])[0],
                 scheduler="sync")


def read_group(group_path) -> xr.Dataset:
    """A group :func:`write_group` wrote, in memory."""
    group_path = os.fspath(group_path)
    ds = _read_group(group_path)
    if ds is None:
        ds = xr.open_zarr(group_path, consolidated=False, chunks=None, zarr_format=ZARR_FORMAT)
    return ds.load(scheduler="sync")


def _restore(data_vars: dict, coords: dict, attrs: dict, group_path: str) -> xr.Dataset:
    """The canonical dataset from its on-disk form (see :func:`_prepare`): variables and
    coordinates (name -> xarray.Variable) as read, made into a dataset once (each assignment to
    a dataset aligns it again: ~3 ms a partition)."""
    for name in _UNCOMPRESSED:
        var = data_vars.get(name)
        if var is not None and not rawchunks.is_raw(var.data):   # opened by zarr
            raw = rawchunks.open_raw(os.path.join(group_path, name))
            if raw is not None:
                data_vars[name] = var.copy(data=raw)
    for name, meaning in _meaning({**data_vars, **coords}, attrs).items():
        # radiocal's datasets keep units in the schema, not on every copy (see _prepare)
        var = data_vars[name] if name in data_vars else coords[name]
        var.attrs = {k: v for k, v in var.attrs.items() if meaning.get(k, object()) != v}
    compact = data_vars.get(S.WEIGHT)
    if compact is not None and compact.dims == _COMPACT_WEIGHT_DIMS:
        like = data_vars.get(S.FLAG)
        chan_chunks = (like.chunks[like.dims.index(S.FREQUENCY)]
                       if like is not None and like.chunks is not None
                       else (coords[S.FREQUENCY].shape[0],))
        data_vars[S.WEIGHT] = xr.Variable(_WEIGHT_DIMS, broadcast_channels(compact.data, chan_chunks),
                                          attrs=compact.attrs)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def open_root(path):
    """The root group of a complete store of this layout version (InputError otherwise);
    checks the root's metadata only, not the partitions."""
    import zarr

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such store")
    if not is_store(path):
        raise InputError(f"{path}: not a radiocal zarr store")
    try:
        root = zarr.open_group(path, mode="r+", zarr_format=ZARR_FORMAT, use_consolidated=False)
        attrs = root.attrs.asdict()
    except (ValueError, KeyError, TypeError) as err:   # a truncated or garbled .zgroup/.zattrs
        raise InputError(f"{path}: damaged zarr metadata ({type(err).__name__}: {err})") from None
    if VERSION_ATTR not in attrs:
        raise InputError(f"{path}: a zarr group but not a radiocal store")
    if attrs[VERSION_ATTR] not in READ_VERSIONS:
        raise InputError(f"{path}: store layout version {attrs[VERSION_ATTR]}, this radiocal "
                         f"reads versions {', '.join(map(str, READ_VERSIONS))}; convert the "
                         f"Measurement Set again")
    if not attrs.get(COMPLETE_ATTR, False):
        raise InputError(f"{path}: store is incomplete (an interrupted write); write it again with --overwrite")
    return root


def _mark_complete(path) -> None:
    rawchunks.update_attrs(path, {**_group_attrs(os.fspath(path)), COMPLETE_ATTR: True})
    # No consolidated metadata: one document for the whole store grows with every partition,
    # flag version and table, and rewriting it at each change cost more than the change (CARMA,
    # 96 partitions: most of a flag run's CPU). Readers open a partition's own small files. A
    # document left by an older radiocal would describe a store that has since changed.
    stale = os.path.join(os.fspath(path), ".zmetadata")
    if os.path.exists(stale):
        os.remove(stale)
