"""Read a Measurement Set lazily into canonical datasets (one per field, spectral window, scan).

The main table's small index columns (TIME, ANTENNA1/2, FIELD_ID, ...) are read eagerly to lay out
the regular ``time x baseline`` grid; the visibility columns are read lazily by radiocal's own
tasks (:func:`_read_block`), one per grid chunk's rows, and scattered onto the grid chunk by
chunk. Rows absent from
the MS become flagged cells with zero weight and ``ROW_PRESENT = False``.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr

from radiocal import budget
from radiocal.errors import InputError
from radiocal.store import schema as S
from radiocal.ms.meta import MSMetadata, check_ms_path, metadata_of, read_table
from radiocal.ms.scans import renumber_scans as renumber_scans_of
from radiocal.store.zarr_store import broadcast_channels

log = logging.getLogger(__name__)

GROUP_COLS = ("FIELD_ID", "DATA_DESC_ID", "SCAN_NUMBER")
INDEX_COLS = ("TIME", "ANTENNA1", "ANTENNA2")


@dataclass(frozen=True)
class _Group:
    """Where one partition's rows sit in the main table and on the grid."""

    field_id: int
    ddid: int
    scan: int
    rows: np.ndarray         # table rows, sorted by TIME, ANTENNA1, ANTENNA2
    times: np.ndarray        # unique TIME values
    time_index: np.ndarray   # per sorted row
    baseline_index: np.ndarray   # per sorted row
    interval: np.ndarray     # per unique time
    intents: tuple[str, ...]
    observation: np.ndarray  # OBSERVATION_ID per unique time
    array: np.ndarray        # ARRAY_ID per unique time


def read_single_ms(path, chunk_bytes: int | None = None, meta: MSMetadata | None = None,
                   layout_channels: int = 0, renumber_scans: bool = False) -> list[xr.Dataset]:
    """Read one MS into lazy canonical datasets, one per (field, spw, scan) partition.

    Parameters
    ----------
    path : str or os.PathLike
        The Measurement Set (opened read-only).
    chunk_bytes : int, optional
        Most bytes of one ``VISIBILITY`` chunk (default: the run's budget). Chunks hold whole
        integrations; ``baseline`` is chunked only when one integration exceeds the budget, and
        ``frequency`` only when one baseline's spectrum does.
    meta : MSMetadata, optional
        The MS's metadata when the caller has read it already.
    layout_channels : int
        Chunk as if partitions had this many channels (the joined count, when the caller joins
        sub-bands), so that joining needs no rechunk.
    renumber_scans : bool
        Number scans from the data: a new scan wherever the field changes in time
        (:func:`radiocal.ms.scans.renumber_scans`), instead of the recorded SCAN_NUMBER.

    Returns
    -------
    list of xarray.Dataset
        Canonical datasets (see ``docs/data-model.md``) in order of first time.
    """
    chunk_bytes = budget.chunk_bytes() if chunk_bytes is None else int(chunk_bytes)
    path = meta.path if meta is not None else check_ms_path(path)
    # One open table for the metadata and all the planning: casacore shares a table between its
    # users in a process, so the queries here use the caches enlarged here
    with read_table(path) as ms:
        meta = metadata_of(ms, path) if meta is None else meta
        index = _index_columns(ms, meta, _enlarge_row_caches(ms))
        baselines = _baselines(index["ANTENNA1"], index["ANTENNA2"])
        if renumber_scans:
            index["SCAN_NUMBER"] = renumber_scans_of(index["TIME"], index["FIELD_ID"], index["SCAN_NUMBER"])
            order = _first_appearance(index)
        else:
            order = _group_order(ms)
        groups = _groups(meta, index, baselines, order)
        columns = _visibility_columns(ms, meta.path)
        blocks = []
        for group in groups:
            spw_id, corrs = meta.data_descriptions[group.ddid]
            nchan = meta.spws[spw_id].chan_freq.size
            blocks.append(_blocks(group, len(baselines[0]), nchan, len(corrs), chunk_bytes,
                                  layout_channels))
        arrays = _read_columns(ms, meta, groups, columns, blocks)
    datasets = [_canonical(meta, group, baselines, cols, layout, columns)
                for group, layout, cols in zip(groups, blocks, arrays)]
    datasets.sort(key=lambda ds: (float(ds[S.TIME].values[0]), ds.attrs[S.ATTR_SPW_ID]))
    return datasets


# -- index columns and grid layout -------------------------------------------------------------

def _enlarge_row_caches(ms) -> int:
    """Let the main table's row-wise storage managers keep up to one chunk budget in memory;
    return how many rows the smallest of these caches holds (the block of rows to read at a time).

    A StandardStMan's default cache is two buckets of a few kB (an IncrementalStMan's, one): the
    values of all its columns for a few dozen rows. Every full-column read (the index columns,
    the group queries of this module) then reads the whole file again from the OS, one bucket
    per call: on a 0.5 GB MS 120 000 calls, more system time than reading DATA. A block of rows
    larger than the cache is worse than the default cache: each column evicts the buckets the
    next one needs, at the cost of the larger cache's bookkeeping (the index columns of a
    0.5 GB MS: 0.59 CPU-s in blocks of 2**18 rows with an 8 MiB cache, 0.30 with the default
    cache, 0.12 in blocks of the cache's 2**16 rows).
    """
    rows = _INDEX_BLOCK_ROWS
    nrow = max(1, ms.nrows())
    try:
        # all data managers in one call: one call per column cost 0.3 ms each, 7 ms a file
        managers = ms.getdminfo().values()
    except RuntimeError:
        return rows
    for info in managers:
        try:
            bucket = int(info.get("SPEC", {}).get("BUCKETSIZE", 0))
            if info.get("TYPE") not in _ROW_STORAGE_MANAGERS or bucket <= 0 or not info.get("COLUMNS"):
                continue
            # casacore clips this to the number of buckets the file has
            cache = max(2, budget.chunk_bytes() // bucket)
            ms.setdmprop(info["COLUMNS"][0], {"MaxCacheSize": cache})
            size = os.path.getsize(os.path.join(ms.name(), f"table.f{info['SEQNR']}"))
            rows = min(rows, max(_MIN_BLOCK_ROWS, cache * bucket * nrow // max(1, size)))
        except (RuntimeError, TypeError, ValueError, OSError):
            continue   # only a cache: reading works without it
    return rows


_ROW_STORAGE_MANAGERS = ("StandardStMan", "IncrementalStMan")
# Index columns are read in blocks of rows that fit the enlarged caches (see
# _enlarge_row_caches), so that each column of a block finds the block's buckets already read
# for the previous one; at most this many rows at a time (other uses: blocks of the index
# columns' derived arrays, to bound the planning's memory)
_INDEX_BLOCK_ROWS = 2**18
_MIN_BLOCK_ROWS = 2**10


def _read_rows(ms, columns, nrow: int, block_rows: int = _INDEX_BLOCK_ROWS) -> dict[str, np.ndarray]:
    # filled block by block: concatenating the blocks held every column twice (the planning
    # peak of a 2M-row MS was 250 bytes a row)
    out = {}
    for start in range(0, nrow, block_rows):
        n = min(block_rows, nrow - start)
        for c in columns:
            block = np.asarray(ms.getcol(c, start, n))
            if c not in out:
                out[c] = np.empty((nrow,) + block.shape[1:], dtype=block.dtype)
            out[c][start:start + n] = block
    return out


def _index_columns(ms, meta: MSMetadata, block_rows: int = _INDEX_BLOCK_ROWS) -> dict[str, np.ndarray]:
    try:
        nrow = ms.nrows()
        if nrow == 0:
            raise InputError(f"{meta.path}: main table has no rows")
        names = ms.colnames()
        for column in ("DATA", "UVW"):
            if column not in names and not (column == "DATA" and "CORRECTED_DATA" in names):
                raise InputError(f"{meta.path}: main table has no {column} column")
        optional = tuple(c for c in ("STATE_ID", "OBSERVATION_ID", "ARRAY_ID") if c in names)
        cols = _read_rows(ms, GROUP_COLS + INDEX_COLS + ("INTERVAL",) + optional, nrow, block_rows)
        if "STATE_ID" not in cols:
            cols["STATE_ID"] = np.full(nrow, -1, dtype=np.int32)
        for column in ("OBSERVATION_ID", "ARRAY_ID"):
            if column not in cols:
                cols[column] = np.zeros(nrow, dtype=np.int32)
        # Touch the last cell of the data columns: a truncated file fails here, in one line,
        # rather than deep inside a dask task later.
        for col in ("DATA" if "DATA" in names else "CORRECTED_DATA", "FLAG"):
            if col in names:
                ms.getcell(col, nrow - 1)
        _check_rows(ms, meta, cols, "DATA" if "DATA" in names else "CORRECTED_DATA")
    except RuntimeError as err:
        raise InputError(f"{meta.path}: damaged main table ({str(err).strip().splitlines()[0]})") from None
    return cols


def _check_rows(ms, meta: MSMetadata, cols, data_column: str) -> None:
    """Refuse rows that name what the subtables lack, or hold values no grid can place.

    Only what the rows use is checked: a spectral window or field without rows may be a
    placeholder (pyuvdata and concat write them).
    """
    def bad(message):
        raise InputError(f"{meta.path}: {message}")

    ddids, first_rows = np.unique(cols["DATA_DESC_ID"], return_index=True)
    missing = set(ddids.tolist()) - set(meta.data_descriptions)
    if missing:
        bad(f"rows refer to missing DATA_DESCRIPTION ids {sorted(missing)}")
    for dd, row in zip(ddids.tolist(), first_rows.tolist()):
        spw_id, corrs = meta.data_descriptions[dd]
        if S.canonical_order(tuple(corrs)) is None:
            bad(f"correlation layout {list(corrs)} of data description {dd} is not supported "
                "(1 or 2 parallel hands, the cross hands alone, or the 4 correlations of one "
                "basis)")
        if spw_id not in meta.spws:
            bad(f"DATA_DESCRIPTION row {dd} names missing SPECTRAL_WINDOW row {spw_id}")
        freq = meta.spws[spw_id].chan_freq
        if freq.size == 0 or not np.all(np.isfinite(freq) & (freq > 0)):
            bad(f"SPECTRAL_WINDOW row {spw_id}: CHAN_FREQ is not a list of positive frequencies")
        shape = tuple(ms.getcell(data_column, row).shape)
        if shape != (freq.size, len(corrs)):
            bad(f"{data_column} cells of data description {dd} are {shape[0]} channels x "
                f"{shape[-1]} correlations, but its spectral window has {freq.size} channels and "
                f"its polarization {len(corrs)} correlations")
    field_ids = np.unique(cols["FIELD_ID"]).tolist()
    missing = set(field_ids) - set(meta.fields)
    if missing:
        bad(f"rows refer to missing FIELD ids {sorted(missing)}")
    for fid in field_ids:
        if not np.all(np.isfinite(meta.fields[fid].phase_center)):
            bad(f"FIELD row {fid} ({meta.fields[fid].name}): PHASE_DIR is not finite")
    nant = meta.antennas.name.size
    for column in ("ANTENNA1", "ANTENNA2"):
        if cols[column].min() < 0 or cols[column].max() >= nant:
            bad(f"rows refer to antennas beyond the {nant} in ANTENNA ({column} "
                f"{cols[column].min()}..{cols[column].max()})")
    for column in ("TIME", "INTERVAL"):
        finite = np.isfinite(cols[column])
        if not finite.all():
            bad(f"{column} is not finite in {np.count_nonzero(~finite)} rows")


def _baselines(ant1: np.ndarray, ant2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The baseline axis: every (ANTENNA1, ANTENNA2) pair that occurs, sorted."""
    n = int(max(ant1.max(), ant2.max())) + 1
    # unique codes block by block: one code per row of the whole table is 8 bytes a row
    code = np.unique(np.concatenate([
        np.unique(ant1[i:i + _INDEX_BLOCK_ROWS].astype(np.int64) * n + ant2[i:i + _INDEX_BLOCK_ROWS])
        for i in range(0, ant1.size, _INDEX_BLOCK_ROWS)]))
    return (code // n).astype(np.int32), (code % n).astype(np.int32)


def _group_order(ms) -> list[tuple[int, int, int]]:
    """The order of the partitions: TaQL's GROUPBY order (what dask-ms returned, kept for stable
    partition order)."""
    import casacore.tables as pt

    query = pt.taql(f"SELECT {', '.join(GROUP_COLS)} FROM $ms GROUPBY {', '.join(GROUP_COLS)}")
    try:
        return list(zip(*(query.getcol(c).tolist() for c in GROUP_COLS)))
    finally:
        query.close()


def _first_appearance(cols: dict[str, np.ndarray]) -> list[tuple[int, int, int]]:
    """The partitions' keys in order of their first row (when scan numbers are not the table's)."""
    keys = np.stack([cols[c].astype(np.int64) for c in GROUP_COLS], axis=1)
    unique, first = np.unique(keys, axis=0, return_index=True)
    return [tuple(k) for k in unique[np.argsort(first)].tolist()]


def _groups(meta: MSMetadata, cols: dict[str, np.ndarray], baselines, group_order) -> list[_Group]:
    nant = meta.antennas.name.size
    bl_lookup = np.full((nant, nant), -1, dtype=np.int64)
    bl_lookup[baselines[0], baselines[1]] = np.arange(baselines[0].size)
    # One integer per row for its (FIELD_ID, DATA_DESC_ID, SCAN_NUMBER): sorting it is much
    # cheaper than np.unique(axis=0) on the three columns, and nearly free on an MS in scan order
    field, ddid, scan = (cols[c] for c in GROUP_COLS)
    low, nscan, ndd = int(scan.min()), int(scan.max()) - int(scan.min()) + 1, int(ddid.max()) + 1
    code = field.astype(np.int64)
    code *= ndd
    code += ddid
    code *= nscan
    code += scan
    code -= low
    # Rows of each group in table order, without a pass over the table per group (int32 row
    # numbers where they fit: these arrays are the planning's memory, 4 bytes a row each)
    index_type = np.int32 if code.size < 2**31 else np.int64
    by_group = np.argsort(code, kind="stable").astype(index_type)
    code = code[by_group]
    starts = np.flatnonzero(np.concatenate([[True], code[1:] != code[:-1]]))
    del code
    edges = np.append(starts, by_group.size)
    firsts = by_group[starts]
    position = {key: i for i, key in enumerate(zip(*(cols[c][firsts].tolist() for c in GROUP_COLS)))}
    groups = []
    for key in group_order:
        g = position[tuple(key)]
        rows = by_group[edges[g]:edges[g + 1]]
        time, a1, a2 = (cols[c][rows] for c in INDEX_COLS)
        baseline_index = bl_lookup[a1, a2]   # increases with (ANTENNA1, ANTENNA2)
        # Table order within the group, lexsorted on the index
        # columns; an MS written in that order (the usual case) needs no sort
        step = np.diff(time)
        if not np.all((step > 0) | ((step == 0) & (np.diff(baseline_index) >= 0))):
            by_index = np.lexsort((a2, a1, time))
            rows, time, baseline_index = rows[by_index], time[by_index], baseline_index[by_index]
        baseline_index = baseline_index.astype(index_type)
        new_time = np.concatenate([[True], time[1:] != time[:-1]])
        first = np.flatnonzero(new_time)
        times, time_index = time[first], (np.cumsum(new_time) - 1).astype(index_type)
        # Sorted rows put duplicate (TIME, ANTENNA1, ANTENNA2) next to each other
        duplicates = int(np.count_nonzero(~new_time[1:] & (baseline_index[1:] == baseline_index[:-1])))
        if duplicates:
            raise InputError(
                f"{meta.path}: field {key[0]} spw-dd {key[1]} scan {key[2]} has "
                f"{duplicates} duplicate (TIME, ANTENNA1, ANTENNA2) rows"
            )
        arrays = cols["ARRAY_ID"][rows]
        if np.any(arrays != arrays[first][time_index]):
            # simultaneous subarrays on one field, spw and scan: one grid row would hold two
            # arrays, which the per-integration array_id cannot say
            raise InputError(
                f"{meta.path}: field {key[0]} spw-dd {key[1]} scan {key[2]} holds rows of "
                f"several ARRAY_IDs at one time (simultaneous subarrays): split the MS by "
                f"ARRAY_ID first (CASA: split(..., array='0'))")
        states = np.unique(cols["STATE_ID"][rows])
        intents = tuple(sorted({i for s in states if s >= 0 for i in meta.states.get(int(s), ())}))
        groups.append(_Group(int(key[0]), int(key[1]), int(key[2]), rows, times, time_index,
                             baseline_index, cols["INTERVAL"][rows][first], intents,
                             cols["OBSERVATION_ID"][rows][first].astype(np.int32),
                             arrays[first].astype(np.int32)))
    return groups


@dataclass(frozen=True)
class _Blocks:
    """How one partition is chunked: on the grid, and the table rows that fill each grid block.

    Rows are sorted by (time, baseline), so the rows of one (time chunk, baseline chunk) block
    are contiguous: each block with rows is one row chunk of the dask-ms read.
    """

    time_chunks: tuple[int, ...]
    baseline_chunks: tuple[int, ...]
    chan_chunks: tuple[int, ...]
    row_chunks: tuple[int, ...]    # the non-empty blocks' row counts, in row order
    block_rows: np.ndarray         # (time block, baseline block) -> its row chunk, -1 if none


def _blocks(group: _Group, nbl: int, nchan: int, ncorr: int, chunk_bytes: int,
            layout_channels: int) -> _Blocks:
    """Chunks within ``chunk_bytes``, as :func:`radiocal.budget.visibility_chunks` lays them out
    for ``layout_channels`` channels (more than ``nchan`` when sub-bands will be joined, so that
    the joined partition's chunks are these chunks side by side)."""
    ntime = len(group.times)
    t, b, f = budget.visibility_chunks(ntime, nbl, max(nchan, layout_channels), ncorr, chunk_bytes)
    time_chunks, baseline_chunks = budget.chunk_sizes(ntime, t), budget.chunk_sizes(nbl, b)
    chan_chunks = budget.chunk_sizes(nchan, min(f, nchan))
    nblock = len(baseline_chunks)
    key = (group.time_index // t) * nblock + group.baseline_index // b
    counts = np.bincount(key, minlength=len(time_chunks) * nblock)
    present = counts > 0
    block_rows = np.where(present, np.cumsum(present) - 1, -1).reshape(len(time_chunks), nblock)
    return _Blocks(time_chunks, baseline_chunks, chan_chunks,
                   tuple(int(c) for c in counts[present]), block_rows)


# -- lazy column reads -------------------------------------------------------------------------

def _visibility_columns(ms, path: str) -> dict[str, str]:
    """MS column -> canonical variable for the columns this MS has with data in them.

    Weights come from WEIGHT_SPECTRUM, else WEIGHT, else SIGMA (as 1 / SIGMA**2: the MS
    definition's relation), else are 1. An MS without DATA (a calibrated copy whose raw data
    were dropped) has its CORRECTED_DATA read as the visibilities; without FLAG, only
    FLAG_ROW and missing rows flag.
    """
    names = set(ms.colnames())

    def defined(col):
        return col in names and ms.iscelldefined(col, 0)

    wanted = {"UVW": S.UVW}
    if "DATA" in names:
        wanted["DATA"] = S.VISIBILITY
        for column, var in ((S.MS_COLUMN[S.VISIBILITY_CORRECTED], S.VISIBILITY_CORRECTED),
                            (S.MS_COLUMN[S.VISIBILITY_MODEL], S.VISIBILITY_MODEL)):
            if defined(column):
                wanted[column] = var
    else:
        log.warning("%s: no DATA column: CORRECTED_DATA is read as the visibilities", path)
        wanted["CORRECTED_DATA"] = S.VISIBILITY
        if defined(S.MS_COLUMN[S.VISIBILITY_MODEL]):
            wanted[S.MS_COLUMN[S.VISIBILITY_MODEL]] = S.VISIBILITY_MODEL
    if "FLAG" in names:
        wanted["FLAG"] = S.FLAG
    for column in ("WEIGHT_SPECTRUM", "WEIGHT", "SIGMA"):
        if defined(column) if column == "WEIGHT_SPECTRUM" else column in names:
            wanted[column] = S.WEIGHT
            break
    if "FLAG_ROW" in names:
        wanted["FLAG_ROW"] = "FLAG_ROW"
    return wanted


# One lock per table path: casacore shares one table object per process between all who open a
# path, and that object is not safe to read from two threads at once
_TABLE_LOCKS: dict[str, threading.Lock] = {}
_TABLE_LOCKS_GUARD = threading.Lock()
_NUMPY_TYPES = {"complex": np.complex64, "dcomplex": np.complex128, "boolean": np.bool_,
                "float": np.float32, "double": np.float64, "int": np.int32}


def _table_lock(path: str) -> threading.Lock:
    with _TABLE_LOCKS_GUARD:
        return _TABLE_LOCKS.setdefault(path, threading.Lock())


def _read_block(path, columns, rows, chans):
    """Every column of one row chunk (table rows ``rows``, channels ``chans`` of cube columns).

    The table is opened for the block and closed after it: a graph over thousands of files then
    holds no open tables, only file names and row numbers.
    """
    with _table_lock(path), read_table(path) as ms:
        contiguous = isinstance(rows, range)
        table = ms if contiguous else ms.selectrows(rows)
        start, nrow = (rows.start, len(rows)) if contiguous else (0, int(rows.size))
        out = []
        for column, ndim in columns:
            if ndim == 2 and chans is not None:
                ncorr = table.getcell(column, start).shape[1]
                values = table.getcolslice(column, [chans[0], 0], [chans[1] - 1, ncorr - 1], [],
                                           start, nrow)
            else:
                values = table.getcol(column, start, nrow)
            out.append(np.asarray(values))
        return tuple(out)


def _rows_literal(rows: np.ndarray):
    """A row chunk's table rows as a graph literal: a ``range`` when they are contiguous (the
    usual case: a few bytes, where an array costs 8 bytes a row in the driver's graph and again
    in the scheduler's, which grew the memory of a convert with the number of rows)."""
    if rows.size and rows[-1] - rows[0] + 1 == rows.size and np.all(np.diff(rows) == 1):
        return range(int(rows[0]), int(rows[-1]) + 1)
    return rows


def _column(block, index):
    # Not operator.getitem: dask's array optimisation takes getitem tasks for slicing and fuses them
    return block[index]


def _read_columns(ms, meta, groups, columns, blocks):
    """Lazy reads of every group's columns: one task per (row chunk, channel chunk), reading all
    columns at once (one table open per block)."""
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    ndims = {c: int(ms.getcoldesc(c).get("ndim", 0)) for c in columns}
    types = {c: _NUMPY_TYPES[ms.getcoldesc(c)["valueType"]] for c in columns}
    names = list(columns)
    results = []
    for group, layout in zip(groups, blocks):
        spw_id, corrs = meta.data_descriptions[group.ddid]
        nchan, ncorr = meta.spws[spw_id].chan_freq.size, len(corrs)
        whole = layout.chan_chunks == (nchan,)
        edges = np.cumsum((0,) + layout.row_chunks)
        chan_edges = np.cumsum((0,) + layout.chan_chunks)
        spec = tuple((c, ndims[c]) for c in names)
        rows = [_rows_literal(group.rows[a:b]) for a, b in zip(edges[:-1], edges[1:])]
        token = tokenize(meta.path, group.field_id, group.ddid, group.scan, layout.row_chunks,
                         layout.chan_chunks, spec)
        name = f"ms-read-{token}"
        graph = {}
        for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            for j, (c0, c1) in enumerate(zip(chan_edges[:-1], chan_edges[1:])):
                chans = None if whole else (int(c0), int(c1))
                graph[(name, i, j)] = (_read_block, meta.path, spec, rows[i], chans)
        cols = {}
        for k, column in enumerate(names):
            shape = {2: (layout.chan_chunks, (ncorr,)), 1: ((3,),) if column == "UVW" else ((ncorr,),),
                     0: ()}[ndims[column]]
            out_name = f"{column.lower()}-{token}"
            pick = {}
            for i in range(len(layout.row_chunks)):
                for j in range(len(layout.chan_chunks)):
                    key = (out_name, i) + ((j, 0) if ndims[column] == 2 else (0,) * ndims[column])
                    if ndims[column] == 2 or j == 0:
                        pick[key] = (_column, (name, i, j), k)
            graph_k = HighLevelGraph({name: graph, out_name: pick}, {name: set(), out_name: {name}})
            chunks = (layout.row_chunks,) + shape
            meta_array = np.empty((0,) * len(chunks), dtype=types[column])
            cols[column] = da.Array(graph_k, out_name, chunks, meta=meta_array)
        results.append(cols)
    return results


def _grid_block(values, time_index, baseline_index, *flag_row, origin, shape, fill):
    """Place one row chunk (row, ...) onto its (time, baseline, ...) block.

    ``origin`` is the block's first (time, baseline) on the grid and ``shape`` its size there;
    the indices are None when the rows fill the block in grid order. An optional FLAG_ROW chunk
    is folded into the flags.
    """
    if flag_row:
        values = values | flag_row[0].reshape((-1,) + (1,) * (values.ndim - 1))
    ntime, nbl = shape
    if time_index is None:
        # Every baseline of every time, in grid order (the usual case): the rows are the grid
        return values.reshape((ntime, nbl) + values.shape[1:])
    out = np.full((ntime, nbl) + values.shape[1:], fill, dtype=values.dtype)
    out[time_index - origin[0], baseline_index - origin[1]] = values
    return out


def _row_index(group: _Group, layout: _Blocks) -> list[tuple]:
    """Each row chunk's (time index, baseline index) on the grid, as numpy arrays, or
    ``(None, None)`` where its rows are every baseline of every time of its block in grid order
    (the usual case).

    They go into the grid tasks as literal arguments, not as dask arrays: a grid task then
    depends on its read alone. As tasks of their own they were root tasks beside the reads, and
    distributed's queue of root tasks released reads before the index pieces their grid tasks
    also waited for: converting a 0.24 GB MS held 25 read blocks at once (2.8 GB). Arrays only
    where needed: as literals they cost 16 bytes a row in the driver's graph and again in the
    scheduler's.
    """
    edges = np.cumsum((0,) + tuple(layout.row_chunks))
    starts = [np.cumsum((0,) + c)[:-1] for c in (layout.time_chunks, layout.baseline_chunks)]
    out = [None] * len(layout.row_chunks)
    for (it, ib), block in np.ndenumerate(layout.block_rows):
        if block < 0:
            continue
        a, b = edges[block], edges[block + 1]
        time_index, baseline_index = group.time_index[a:b], group.baseline_index[a:b]
        ntime, nbl = layout.time_chunks[it], layout.baseline_chunks[ib]
        full = b - a == ntime * nbl and np.array_equal(
            time_index, np.repeat(np.arange(starts[0][it], starts[0][it] + ntime), nbl)) \
            and np.array_equal(baseline_index,
                               np.tile(np.arange(starts[1][ib], starts[1][ib] + nbl), ntime))
        out[block] = (None, None) if full else (time_index, baseline_index)
    return out


def _to_grid(array, row_index, layout: _Blocks, fill, flag_row=None):
    """Scatter a row-chunked dask array (row, ...) onto the (time, baseline, ...) grid.

    Each row chunk becomes its (time chunk, baseline chunk) block; a block without rows is all
    ``fill``. ``row_index`` comes from :func:`_row_index` (each row chunk's grid indices).
    """
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    inputs = [array] + ([flag_row] if flag_row is not None else [])
    name = "grid-" + tokenize(*inputs, layout.time_chunks, layout.baseline_chunks, fill)
    starts = [np.cumsum((0,) + c)[:-1] for c in (layout.time_chunks, layout.baseline_chunks)]
    rest = array.chunks[1:]
    graph = {}
    for (it, ib), row_block in np.ndenumerate(layout.block_rows):
        shape = (layout.time_chunks[it], layout.baseline_chunks[ib])
        for inner in np.ndindex(*(len(c) for c in rest)):
            if row_block < 0:
                block = shape + tuple(c[i] for c, i in zip(rest, inner))
                graph[(name, it, ib, *inner)] = (np.full, block, fill, array.dtype)
                continue
            place = functools.partial(_grid_block, origin=(int(starts[0][it]), int(starts[1][ib])),
                                      shape=shape, fill=fill)
            time_index, baseline_index = row_index[row_block]
            graph[(name, it, ib, *inner)] = (place, (array.name, int(row_block), *inner),
                                             time_index, baseline_index,
                                             *((x.name, int(row_block)) for x in inputs[1:]))
    chunks = (layout.time_chunks, layout.baseline_chunks) + rest
    meta = np.empty((0,) * len(chunks), dtype=array.dtype)
    return da.Array(HighLevelGraph.from_collections(name, graph, dependencies=inputs), name,
                    chunks, meta=meta)


def _sigma_to_weight(sigma):
    with np.errstate(divide="ignore"):
        return np.where(sigma > 0, 1.0 / np.square(sigma, dtype=np.float64), 0.0).astype(np.float32)


def _weights(cols, columns, ncorr: int):
    """The row-chunked weights (row, corr) or (row, frequency, corr) from what the MS has."""
    column = next((c for c, var in columns.items() if var == S.WEIGHT), None)
    if column == "SIGMA":
        return da.map_blocks(_sigma_to_weight, cols["SIGMA"], dtype=np.float32)
    if column is not None:
        return cols[column].astype(np.float32)
    uvw = cols["UVW"]
    return da.ones((uvw.shape[0], ncorr), chunks=(uvw.chunks[0], (ncorr,)), dtype=np.float32)


def _canonical(meta: MSMetadata, group: _Group, baselines, cols, layout: _Blocks, columns):
    spw_id, corrs = meta.data_descriptions[group.ddid]
    order = S.canonical_order(corrs)
    if order != tuple(range(len(corrs))):
        # e.g. OVRO-LWA's XX YY XY YX: correlation-indexed columns take the canonical order
        cols = {name: col[..., list(order)] if name not in _UNCORRELATED else col
                for name, col in cols.items()}
        corrs = tuple(corrs[i] for i in order)
    spw = meta.spws[spw_id]
    field = meta.fields[group.field_id]
    nbl = baselines[0].size
    dims4 = (S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION)

    rows = _row_index(group, layout)
    cubes = {var: column for column, var in columns.items() if var in _CUBES}
    flags = cols["FLAG"] if "FLAG" in cols else da.zeros_like(cols[cubes[S.VISIBILITY]], dtype=bool)
    flag = _to_grid(flags, rows, layout, True, flag_row=cols.get("FLAG_ROW"))
    data_vars = {S.FLAG: (dims4, flag)}
    for var, column in cubes.items():
        data_vars[var] = (dims4, _to_grid(cols[column], rows, layout, 0))
    weight = _weights(cols, columns, len(corrs))
    if weight.ndim == 3:
        weight = _to_grid(weight, rows, layout, 0)
    else:
        # Made by the store's broadcast, so that a store keeps these weights once, not per channel
        weight = broadcast_channels(_to_grid(weight, rows, layout, 0), layout.chan_chunks)
    data_vars[S.WEIGHT] = (dims4, weight)
    data_vars[S.UVW] = ((S.TIME, S.BASELINE, S.UVW_LABEL), _to_grid(cols["UVW"], rows, layout, 0.0))
    present = np.zeros((group.times.size, nbl), dtype=bool)
    present[group.time_index, group.baseline_index] = True
    data_vars[S.ROW_PRESENT] = ((S.TIME, S.BASELINE),
                                da.from_array(present, chunks=(layout.time_chunks, layout.baseline_chunks)))

    ant = meta.antennas
    coords = {
        S.TIME: (S.TIME, group.times),
        S.INTEGRATION_TIME: (S.TIME, group.interval.astype(np.float64)),
        S.OBSERVATION_ID: (S.TIME, group.observation),
        S.ARRAY_ID: (S.TIME, group.array),
        S.BASELINE_ANTENNA1: (S.BASELINE, baselines[0]),
        S.BASELINE_ANTENNA2: (S.BASELINE, baselines[1]),
        S.FREQUENCY: (S.FREQUENCY, spw.chan_freq),
        S.CHANNEL_WIDTH: (S.FREQUENCY, spw.chan_width),
        S.POLARIZATION: (S.POLARIZATION, np.array(corrs)),
        S.UVW_LABEL: (S.UVW_LABEL, np.array(S.UVW_LABELS)),
        S.ANTENNA_NAME: (S.ANTENNA, ant.name),
        S.ANTENNA_STATION: (S.ANTENNA, ant.station),
        S.ANTENNA_POSITION: ((S.ANTENNA, S.CARTESIAN), ant.position),
        S.ANTENNA_DIAMETER: (S.ANTENNA, ant.diameter),
        S.ANTENNA_MOUNT: (S.ANTENNA, ant.mount),
        S.CARTESIAN: (S.CARTESIAN, np.array(S.CARTESIAN_LABELS)),
    }
    attrs = {
        S.ATTR_FIELD_ID: group.field_id,
        S.ATTR_FIELD_NAME: field.name,
        S.ATTR_FIELD_CODE: field.code,
        S.ATTR_PHASE_CENTER: list(field.phase_center),
        S.ATTR_SPW_ID: spw_id,
        S.ATTR_SPW_NAME: spw.name,
        S.ATTR_FREQ_REF: spw.frame,
        S.ATTR_REF_FREQUENCY: spw.ref_frequency,
        S.ATTR_SCAN: group.scan,
        S.ATTR_INTENTS: list(group.intents),
        S.ATTR_TELESCOPE: meta.telescope,
        S.ATTR_OBSERVER: meta.observer,
        S.ATTR_PROJECT: meta.project,
        S.ATTR_SOURCES: [meta.path],
        S.ATTR_PARTITION: S.partition_name(group.field_id, spw_id, group.scan),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


_UNCORRELATED = ("UVW", "FLAG_ROW")   # columns without a correlation axis
_CUBES = (S.VISIBILITY, S.VISIBILITY_CORRECTED, S.VISIBILITY_MODEL)
