"""Write canonical datasets to a new Measurement Set that CASA and WSClean open.

The subtables are made from the datasets' own metadata (antennas, fields, spectral windows,
correlations, intents), so a store joined from many MS, or a simulation, exports the same way as a
single converted MS. Field and spectral-window ids are renumbered densely in order of their
original ids (a complete MS keeps its ids). The MS is written under ``<path>.incomplete`` and
renamed only when every row is in, so an interrupted export is never mistaken for a finished one.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
from dataclasses import dataclass

import dask
import numpy as np
import xarray as xr

from radiocal import budget
from radiocal.errors import InputError, OutputExistsError
from radiocal.store import schema as S
from radiocal.store.chunktasks import per_group
from radiocal.store.zarr_store import channel_free
from radiocal.ms.meta import FREQ_FRAME_CODES
from radiocal.ms.tables import put_channels, staged, written


@dataclass(frozen=True)
class _Layout:
    """How partitions map onto the ids of the new MS's subtables."""

    field_ids: dict[int, int]      # dataset field_id -> new FIELD row
    spw_ids: dict[int, int]        # dataset spw_id -> new SPECTRAL_WINDOW row
    pol_ids: dict[tuple, int]      # correlation names -> POLARIZATION row
    ddids: dict[tuple, int]        # (new spw, pol row) -> DATA_DESCRIPTION row
    state_ids: dict[tuple, int]    # intents -> STATE row


def write_ms(datasets: list[xr.Dataset], path, overwrite: bool = False) -> str:
    """Write canonical ``datasets`` to a new Measurement Set at ``path``.

    Parameters
    ----------
    datasets : list of xarray.Dataset
        Canonical partitions (lazy or in memory) sharing one antenna table.
    path : str or os.PathLike
        The MS to create. An existing path is refused unless ``overwrite``; a path that is one of
        the datasets' own source MS is always refused.
    overwrite : bool
        Replace an existing ``path``.

    Returns
    -------
    str
        The path written.

    Notes
    -----
    Columns: DATA (and CORRECTED_DATA / MODEL_DATA when any partition has them), FLAG, FLAG_ROW,
    WEIGHT, SIGMA, WEIGHT_SPECTRUM when weights vary across channels, UVW, TIME, TIME_CENTROID,
    INTERVAL, EXPOSURE, ANTENNA1/2, FIELD_ID, DATA_DESC_ID, SCAN_NUMBER, STATE_ID. Only cells with
    ``ROW_PRESENT`` become rows.
    """
    path = os.path.normpath(os.fspath(path))
    _check_output(datasets, path, overwrite)
    datasets = sorted(datasets, key=lambda ds: (float(ds[S.TIME].values[0]), ds.attrs[S.ATTR_SPW_ID]))
    layout = _layout(datasets)
    optional = [v for v in (S.VISIBILITY_CORRECTED, S.VISIBILITY_MODEL) if any(v in ds for ds in datasets)]
    spectral_weights = _weights_vary(datasets)
    with staged(path) as tmp:
        _create_ms(tmp, optional, spectral_weights,
                   {ds.sizes[S.POLARIZATION] for ds in datasets})
        _write_subtables(tmp, datasets, layout)
        _write_main(tmp, datasets, layout, optional, spectral_weights)
    return path


def _check_output(datasets, path, overwrite):
    if not datasets:
        raise InputError("nothing to write: no partitions")
    sources = {os.path.realpath(p) for ds in datasets for p in ds.attrs.get(S.ATTR_SOURCES, [])}
    if os.path.realpath(path) in sources:
        raise OutputExistsError(f"{path}: refusing to overwrite an input Measurement Set")
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --overwrite to replace it)")
    names = datasets[0][S.ANTENNA_NAME].values
    for ds in datasets[1:]:
        if not np.array_equal(ds[S.ANTENNA_NAME].values, names):
            raise InputError(f"partition {ds.attrs.get(S.ATTR_PARTITION)} has a different antenna table")
    for ds in datasets:
        if S.VISIBILITY not in ds:
            raise InputError(f"partition {ds.attrs.get(S.ATTR_PARTITION)} has no {S.VISIBILITY}")


def _layout(datasets) -> _Layout:
    field_ids = {f: i for i, f in enumerate(sorted({ds.attrs[S.ATTR_FIELD_ID] for ds in datasets}))}
    spw_ids = {s: i for i, s in enumerate(sorted({ds.attrs[S.ATTR_SPW_ID] for ds in datasets}))}
    pols = sorted({tuple(ds[S.POLARIZATION].values.tolist()) for ds in datasets},
                  key=lambda p: [S.CORR_CODES[c] for c in p])
    pol_ids = {p: i for i, p in enumerate(pols)}
    dd_keys = sorted({(spw_ids[ds.attrs[S.ATTR_SPW_ID]], pol_ids[tuple(ds[S.POLARIZATION].values.tolist())])
                      for ds in datasets})
    intents = sorted({tuple(ds.attrs.get(S.ATTR_INTENTS, [])) for ds in datasets} - {()})
    return _Layout(field_ids, spw_ids, pol_ids, {k: i for i, k in enumerate(dd_keys)},
                   {k: i for i, k in enumerate(intents)})


def _weights_vary(datasets) -> bool:
    """Whether any weight differs across channels (then WEIGHT_SPECTRUM is needed).

    A weight the store keeps channel-free cannot: only the others are read (reading every
    partition's weights took ~1.5 s of a 12 s export of a 0.6 GB MS)."""
    checks = [(ds[S.WEIGHT] != ds[S.WEIGHT].isel({S.FREQUENCY: 0})).any().data for ds in datasets
              if channel_free(ds[S.WEIGHT].data) is None]
    return bool(np.any(dask.compute(*checks)))


# -- table creation ----------------------------------------------------------------------------

def _create_ms(path, optional, spectral_weights, correlations: set):
    import casacore.tables as pt

    columns = [pt.makearrcoldesc("DATA", 0j, ndim=2, valuetype="complex", datamanagergroup="TiledData",
                                 datamanagertype="TiledShapeStMan")]
    for var in optional:
        columns.append(pt.makearrcoldesc(S.MS_COLUMN[var], 0j, ndim=2, valuetype="complex",
                                         datamanagergroup="Tiled" + S.MS_COLUMN[var],
                                         datamanagertype="TiledShapeStMan"))
    columns.append(pt.makearrcoldesc("FLAG", False, ndim=2, valuetype="boolean",
                                     datamanagergroup="TiledFlag", datamanagertype="TiledShapeStMan"))
    if spectral_weights:
        columns.append(pt.makearrcoldesc("WEIGHT_SPECTRUM", 0.0, ndim=2, valuetype="float",
                                         datamanagergroup="TiledWgtSpectrum",
                                         datamanagertype="TiledShapeStMan"))
    if len(correlations) == 1:
        # One shape for every row: WEIGHT and SIGMA stored in the rows' buckets, not as a
        # variable-shape array per row in a file of their own (half their write time).
        shape = [next(iter(correlations))]
        columns += [pt.makearrcoldesc("WEIGHT", 0.0, shape=shape, valuetype="float", options=_FIXED_SHAPE,
                                      comment="Weight for each polarization spectrum"),
                    pt.makearrcoldesc("SIGMA", 0.0, shape=shape, valuetype="float", options=_FIXED_SHAPE,
                                      comment="Estimated rms noise for channel with unity bandpass response")]
    desc = pt.maketabdesc(columns)
    with written(pt.default_ms(path, desc, {"*1": {"NAME": "MainScalars", "TYPE": "StandardStMan",
                                                   "SPEC": {"BUCKETSIZE": _SCALAR_BUCKET_BYTES},
                                                   "COLUMNS": list(_SCALAR_COLUMNS)}})):
        pass


# The main table's scalar and small fixed-shape columns share one StandardStMan, written a column
# at a time per batch of rows. At casacore's default bucket of ~4 kB (~28 rows of all of them)
# and a cache of 2 buckets, each column's write read and wrote every bucket of the batch again
# (phaseref's export of a 0.5 GB MS: ~3 s of its putcol time in 2-8 MB columns). A 120 000-row
# write of them took 0.37 s at 4 kB, 0.22 s at 16 kB, 0.22 s at 32 kB (system time 0.18, 0.07,
# 0.06 s); 16 kB keeps an empty MS small (a nearly full disk fails in the rows' writes, where
# radiocal reports it, not inside casacore's creation of the MS).
_SCALAR_BUCKET_BYTES = 16384
_FIXED_SHAPE = 4    # casacore ColumnDesc::FixedShape
_SCALAR_COLUMNS = ("ANTENNA1", "ANTENNA2", "ARRAY_ID", "DATA_DESC_ID", "EXPOSURE", "FEED1", "FEED2",
                   "FIELD_ID", "FLAG_ROW", "INTERVAL", "OBSERVATION_ID", "PROCESSOR_ID",
                   "SCAN_NUMBER", "SIGMA", "STATE_ID", "TIME", "TIME_CENTROID", "UVW", "WEIGHT")


def _put(table, column, values):
    table.putcol(column, np.asarray(values))


def _subtable(path, name):
    import casacore.tables as pt

    return written(pt.table(os.path.join(path, name), readonly=False, ack=False))


def _write_subtables(path, datasets, layout):
    first = datasets[0]
    t_start = min(float(ds[S.TIME].values[0]) for ds in datasets)
    t_end = max(float(ds[S.TIME].values[-1]) for ds in datasets)
    nant = first.sizes[S.ANTENNA]

    with _subtable(path, "ANTENNA") as t:
        t.addrows(nant)
        _put(t, "NAME", first[S.ANTENNA_NAME].values.astype(str).tolist())
        _put(t, "STATION", first[S.ANTENNA_STATION].values.astype(str).tolist())
        _put(t, "POSITION", first[S.ANTENNA_POSITION].values.astype(np.float64))
        _put(t, "DISH_DIAMETER", first[S.ANTENNA_DIAMETER].values.astype(np.float64))
        _put(t, "MOUNT", first[S.ANTENNA_MOUNT].values.astype(str).tolist())
        _put(t, "TYPE", ["GROUND-BASED"] * nant)
        _put(t, "OFFSET", np.zeros((nant, 3)))

    by_field = {ds.attrs[S.ATTR_FIELD_ID]: ds for ds in datasets}
    with _subtable(path, "FIELD") as t:
        t.addrows(len(layout.field_ids))
        for old, new in layout.field_ids.items():
            ds = by_field[old]
            direction = np.asarray(ds.attrs[S.ATTR_PHASE_CENTER], dtype=np.float64).reshape(1, 2)
            t.putcell("NAME", new, ds.attrs[S.ATTR_FIELD_NAME])
            t.putcell("CODE", new, ds.attrs.get(S.ATTR_FIELD_CODE, ""))
            for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
                t.putcell(col, new, direction)
            t.putcell("SOURCE_ID", new, new)
            t.putcell("TIME", new, t_start)
            t.putcell("NUM_POLY", new, 0)

    by_spw = {ds.attrs[S.ATTR_SPW_ID]: ds for ds in datasets}
    with _subtable(path, "SPECTRAL_WINDOW") as t:
        t.addrows(len(layout.spw_ids))
        for old, new in layout.spw_ids.items():
            ds = by_spw[old]
            freq = ds[S.FREQUENCY].values.astype(np.float64)
            put_channels(t, new, freq, ds[S.CHANNEL_WIDTH].values.astype(np.float64))
            t.putcell("REF_FREQUENCY", new, float(ds.attrs.get(S.ATTR_REF_FREQUENCY, freq[0])))
            t.putcell("MEAS_FREQ_REF", new, FREQ_FRAME_CODES.get(ds.attrs.get(S.ATTR_FREQ_REF, "TOPO"), 5))
            t.putcell("NAME", new, ds.attrs.get(S.ATTR_SPW_NAME, f"SPW{new}"))
            t.putcell("NET_SIDEBAND", new, 1)

    with _subtable(path, "POLARIZATION") as t:
        t.addrows(len(layout.pol_ids))
        for corrs, row in layout.pol_ids.items():
            t.putcell("CORR_TYPE", row, np.array([S.CORR_CODES[c] for c in corrs], dtype=np.int32))
            t.putcell("CORR_PRODUCT", row, np.array([_receptors(c) for c in corrs], dtype=np.int32))
            t.putcell("NUM_CORR", row, len(corrs))

    with _subtable(path, "DATA_DESCRIPTION") as t:
        t.addrows(len(layout.ddids))
        for (spw, pol), row in layout.ddids.items():
            t.putcell("SPECTRAL_WINDOW_ID", row, spw)
            t.putcell("POLARIZATION_ID", row, pol)

    basis = _feed_letters(datasets)
    with _subtable(path, "FEED") as t:
        t.addrows(nant)
        _put(t, "ANTENNA_ID", np.arange(nant, dtype=np.int32))
        _put(t, "FEED_ID", np.zeros(nant, dtype=np.int32))
        _put(t, "SPECTRAL_WINDOW_ID", np.full(nant, -1, dtype=np.int32))
        _put(t, "BEAM_ID", np.full(nant, -1, dtype=np.int32))
        _put(t, "TIME", np.full(nant, (t_start + t_end) / 2))
        _put(t, "INTERVAL", np.full(nant, 1e30))
        _put(t, "NUM_RECEPTORS", np.full(nant, 2, dtype=np.int32))
        for row in range(nant):
            t.putcell("POLARIZATION_TYPE", row, list(basis))
            t.putcell("RECEPTOR_ANGLE", row, np.zeros(2))
            t.putcell("POL_RESPONSE", row, np.eye(2, dtype=np.complex64))
            t.putcell("BEAM_OFFSET", row, np.zeros((2, 2)))
            t.putcell("POSITION", row, np.zeros(3))

    with _subtable(path, "OBSERVATION") as t:
        # rows are indexed by the main table's OBSERVATION_ID: one per observation the data hold
        spans = _observation_spans(datasets)
        t.addrows(len(spans))
        for row, span in enumerate(spans):
            t.putcell("TELESCOPE_NAME", row, first.attrs.get(S.ATTR_TELESCOPE, ""))
            t.putcell("OBSERVER", row, first.attrs.get(S.ATTR_OBSERVER, ""))
            t.putcell("PROJECT", row, first.attrs.get(S.ATTR_PROJECT, ""))
            t.putcell("TIME_RANGE", row, np.array(span if span else [t_start, t_end]))

    with _subtable(path, "STATE") as t:
        t.addrows(len(layout.state_ids))
        for intents, row in layout.state_ids.items():
            t.putcell("OBS_MODE", row, ",".join(intents))
            t.putcell("SIG", row, True)

    with _subtable(path, "PROCESSOR") as t:
        t.addrows(1)
        t.putcell("TYPE", 0, "CORRELATOR")
        t.putcell("TYPE_ID", 0, -1)
        t.putcell("MODE_ID", 0, -1)


def _observation_spans(datasets) -> list:
    """[first, last] time of each OBSERVATION_ID from 0 to the largest (None where absent)."""
    spans: dict = {}
    for ds in datasets:
        times = ds[S.TIME].values
        obs = (ds[S.OBSERVATION_ID].values if S.OBSERVATION_ID in ds.coords
               else np.zeros(times.size, np.int64))
        for o in np.unique(obs):
            mine = times[obs == o]
            lo, hi = spans.get(int(o), (np.inf, -np.inf))
            spans[int(o)] = (min(lo, float(mine.min())), max(hi, float(mine.max())))
    return [spans.get(o) for o in range(max(spans, default=0) + 1)]


def _receptors(corr: str) -> tuple[int, int]:
    """CORR_PRODUCT of one correlation: which receptor of each antenna (R/X = 0, L/Y = 1)."""
    if len(corr) != 2:
        return (0, 0)
    return tuple(0 if hand in "RX" else 1 for hand in corr)


def _feed_letters(datasets) -> tuple[str, str]:
    corrs = {c for ds in datasets for c in ds[S.POLARIZATION].values.tolist()}
    return ("X", "Y") if corrs & set(S.LINEAR) else ("R", "L")


# -- main table --------------------------------------------------------------------------------

def _write_main(path, datasets, layout, optional, spectral_weights):
    """Append every partition's rows, chunk by chunk, in (time, baseline) order.

    casacore tables take one writer, so rows are written by this thread; meanwhile the next
    batches of chunks are computed on the engine, each block's tasks reading the store (perhaps
    applying calibration) and picking its present rows into MS columns. Reading and writing
    overlap, and at most ``2 * _PER_COMPUTE`` batches, each within half the chunk budget (or
    one chunk), are in memory: those being written and those computing.
    """
    import casacore.tables as pt

    batches = _batches([(ds, fixed, where) for ds in datasets
                        for fixed in [_fixed_columns(ds, layout)] for where in _blocks(ds)])
    computes = [batches[i:i + _PER_COMPUTE] for i in range(0, len(batches), _PER_COMPUTE)]
    with written(pt.table(path, readonly=False, ack=False)) as ms:
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="export") as pool:
            pending = collections.deque()
            for batches in computes:
                pending.append(pool.submit(_compute_batches, batches, optional, spectral_weights))
                if len(pending) > 1:
                    _append_batches(ms, pending.popleft().result())
            while pending:
                _append_batches(ms, pending.popleft().result())


# Batches computed together, while this thread writes the previous ones: each compute costs the
# in-process cluster ~7 ms of bookkeeping besides its tasks' (a graph's submission, its futures,
# the gather), so two batches a compute, on both of two cores, where two computes of one batch
# each ran side by side before (with one batch a compute and one in flight, a batch of a few
# chunks kept one of two cores busy and the write waited on it: phaseref's export of a 0.5 GB MS
# on 2 cores, 4.9 s wall for 5.1 CPU-s).
_PER_COMPUTE = 2


def _compute_batches(batches, optional, spectral_weights) -> list[list]:
    """:func:`_compute_batch` of several batches in one compute: their blocks' columns, by batch."""
    blocks = _compute_batch([block for batch in batches for block in batch], optional,
                            spectral_weights)
    out, start = [], 0
    for batch in batches:
        out.append(blocks[start:start + len(batch)])
        start += len(batch)
    return out


def _append_batches(ms, batches: list[list]) -> None:
    for blocks in batches:     # a batch's rows in one putcol a column, as when computed alone
        _append(ms, blocks)


def _fixed_columns(ds, layout) -> dict:
    ddid = layout.ddids[(layout.spw_ids[ds.attrs[S.ATTR_SPW_ID]],
                         layout.pol_ids[tuple(ds[S.POLARIZATION].values.tolist())])]
    return dict(
        FIELD_ID=layout.field_ids[ds.attrs[S.ATTR_FIELD_ID]],
        DATA_DESC_ID=ddid,
        SCAN_NUMBER=ds.attrs[S.ATTR_SCAN],
        STATE_ID=layout.state_ids.get(tuple(ds.attrs.get(S.ATTR_INTENTS, [])), -1),
    )


def _blocks(ds):
    """(time, baseline) selections of the visibility chunks, with every channel: MS rows hold
    whole spectra. In time then baseline order, so rows come out as the MS sorts them."""
    chunks = ds[S.VISIBILITY].chunks or ((ds.sizes[S.TIME],), (ds.sizes[S.BASELINE],))
    edges = [np.cumsum((0,) + tuple(c)) for c in chunks[:2]]
    return [{S.TIME: slice(int(t0), int(t1)), S.BASELINE: slice(int(b0), int(b1))}
            for t0, t1 in zip(edges[0][:-1], edges[0][1:])
            for b0, b1 in zip(edges[1][:-1], edges[1][1:])]


def _batches(blocks) -> list[list]:
    """Consecutive blocks grouped up to half the chunk budget (two batches are in memory at
    once), so that a scan-rich MS of small partitions costs one compute per batch, not per chunk."""
    limit = budget.chunk_bytes() // 2
    batches, current, size = [], [], 0
    for ds, fixed, where in blocks:
        whole = all(where[dim] == slice(0, ds.sizes[dim]) for dim in where)
        block = ds if whole else ds.isel(where)   # a small partition is one block
        # a weight the store keeps channel-free is read as it is stored
        compact = channel_free(ds[S.WEIGHT].data)
        if compact is not None:
            compact = compact[where[S.TIME], where[S.BASELINE]]
        nbytes = block[S.VISIBILITY].size * budget.VISIBILITY_ITEMSIZE
        if current and size + nbytes > limit:
            batches.append(current)
            current, size = [], 0
        current.append((block, fixed, compact))
        size += nbytes
    return batches + ([current] if current else [])


def _compute_batch(batch, optional, spectral_weights) -> list:
    """The MS columns of every block of a batch (:func:`_block_columns`), in one compute: a task
    per block reads its variables and picks its rows. Without WEIGHT_SPECTRUM, WEIGHT is (time,
    baseline, polarization): one channel's."""
    groups, finish = [], []
    for block, fixed, compact in batch:
        names = sorted({S.VISIBILITY, S.FLAG, S.ROW_PRESENT, S.UVW, S.WEIGHT}
                       | {v for v in optional if v in block})
        groups.append([compact if name == S.WEIGHT and compact is not None and not spectral_weights
                       # a slice, not an index: the store's chunk readers take slices
                       else block[name].data[:, :, :1] if name == S.WEIGHT and not spectral_weights
                       else block[name].data
                       for name in names])
        finish.append(functools.partial(_block_columns, names, _row_coords(block), fixed, optional,
                                        spectral_weights))
    return list(dask.compute(*per_group(groups, finish)))


def _row_coords(block) -> dict:
    """The coordinates a block's rows take their TIME, INTERVAL, antennas and ids from."""
    names = (S.TIME, S.INTEGRATION_TIME, S.BASELINE_ANTENNA1, S.BASELINE_ANTENNA2,
             S.OBSERVATION_ID, S.ARRAY_ID)
    return {name: block[name].values for name in names if name in block.coords}


def _append(ms, blocks: list) -> None:
    """Append the rows of consecutive blocks (their columns, None for a block without rows),
    concatenated where their cells have the same shapes: one ``addrows`` and one ``putcol`` per
    column for a batch of a scan-rich MS's small partitions, where each block's own took ~20
    casacore calls (408 partitions: ~8 000 calls, a quarter of the export's CPU)."""
    def same_shapes(columns):
        return [(name, values.shape[1:], values.dtype) for name, values in columns.items()]

    runs: list[list[dict]] = []
    for columns in blocks:
        if columns is None:
            continue
        if runs and same_shapes(runs[-1][0]) == same_shapes(columns):
            runs[-1].append(columns)
        else:
            runs.append([columns])
    for run in runs:
        nrow = sum(len(columns["TIME"]) for columns in run)
        start = ms.nrows()
        ms.addrows(nrow)
        for name in run[0]:
            values = (run[0][name] if len(run) == 1
                      else np.concatenate([columns[name] for columns in run]))
            ms.putcol(name, values, startrow=start, nrow=nrow)


def _block_columns(names, coords, fixed, optional, spectral_weights, values) -> dict | None:
    """The main-table columns of the present rows of one block, from its computed variables
    (``values``, in the order of ``names``) and row coordinates; None when it has none."""
    computed = {name: np.asarray(value) for name, value in zip(names, values)}
    if computed[S.WEIGHT].ndim == 4 and not spectral_weights:
        computed[S.WEIGHT] = computed[S.WEIGHT][:, :, 0]
    cubes = {"DATA": S.VISIBILITY, "FLAG": S.FLAG}
    cubes.update({S.MS_COLUMN[v]: v for v in optional})
    if spectral_weights:
        cubes["WEIGHT_SPECTRUM"] = S.WEIGHT
    # A partition without CORRECTED/MODEL gets DATA / zeros, as CASA initialises them
    sources = {col: var if var in computed else (S.VISIBILITY if var == S.VISIBILITY_CORRECTED else None)
               for col, var in cubes.items()}
    t_idx, b_idx = np.nonzero(computed[S.ROW_PRESENT])
    nrow = t_idx.size
    if nrow == 0:
        return None
    weights = computed[S.WEIGHT][t_idx, b_idx]
    # CASA's convention: WEIGHT is the median of WEIGHT_SPECTRUM over channels
    weight = (np.median(weights, axis=1) if spectral_weights else weights).astype(np.float32)
    # Negative weights (ATA's uvh5 writes -1.2e12) take the 0 branch: no warning for the other
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(weight > 0, 1.0 / np.sqrt(weight), 0.0).astype(np.float32)
    flag = computed[S.FLAG][t_idx, b_idx]
    times = coords[S.TIME][t_idx]
    interval = coords[S.INTEGRATION_TIME][t_idx]
    columns = {
        "TIME": times, "TIME_CENTROID": times, "INTERVAL": interval, "EXPOSURE": interval,
        "ANTENNA1": coords[S.BASELINE_ANTENNA1][b_idx].astype(np.int32),
        "ANTENNA2": coords[S.BASELINE_ANTENNA2][b_idx].astype(np.int32),
        "UVW": computed[S.UVW][t_idx, b_idx].astype(np.float64),
        "FLAG_ROW": flag.all(axis=(1, 2)),
        "WEIGHT": weight, "SIGMA": sigma,
        **{name: np.full(nrow, value, dtype=np.int32) for name, value in fixed.items()},
    }
    for column, coord in (("OBSERVATION_ID", S.OBSERVATION_ID), ("ARRAY_ID", S.ARRAY_ID)):
        if coord in coords:
            columns[column] = coords[coord][t_idx].astype(np.int32)
    for column, source in sources.items():
        columns[column] = (computed[source][t_idx, b_idx] if source is not None
                           else np.zeros(flag.shape, dtype=np.complex64))
    return columns
