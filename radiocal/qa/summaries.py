"""Small numeric summaries of a run for plots and the report (all computing happens here).

Visibility summaries average the parallel hands (an estimate of Stokes I for unpolarised
calibrators) over unflagged samples only; a cell with no unflagged sample is NaN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from radiocal.store import caltables as C
from radiocal.store import rawchunks
from radiocal.store import schema as S


# Scatter points per calibrator and plotted quantity, spread over its partitions: what the figures
# draw (and what reaches the driver) is bounded, whatever the number of integrations, baselines
# or channels. 40 000 keeps a 0.5 GB VLA-like run's phase calibrator dense to the eye.
SAMPLE_POINTS = 40_000


@dataclass
class VisSummary:
    """Parallel-hand averages of one calibrator partition, before and after calibration.

    ``by_time`` and ``uvdist`` hold a decimated sample of (time, baseline) cells, spread evenly
    over the partition (successive cells fall on other baselines), ``by_frequency`` a sample of
    baselines; ``spectrum`` is reduced over every baseline.

    Attributes
    ----------
    field, partition : str
    frequency : (frequency,) Hz
    time : (cell,) MJD seconds of the sampled cells
    uvdist : (cell,) metres
    by_time : {"before", "after"} -> (cell,) complex128, averaged over channels
    by_frequency : {"before", "after"} -> (sampled baseline, frequency) complex128, averaged
        over time
    spectrum : {"after"} -> ((frequency,) sum over baselines of ``by_frequency``'s values,
        (frequency,) number of baselines with data)
    """

    field: str
    partition: str
    frequency: np.ndarray
    time: np.ndarray
    uvdist: np.ndarray
    by_time: dict = field(default_factory=dict)
    by_frequency: dict = field(default_factory=dict)
    spectrum: dict = field(default_factory=dict)


def parallel_hands(ds) -> list[int]:
    """Indices of the parallel-hand correlations (RR, LL / XX, YY / I)."""
    pols = [str(p) for p in ds[S.POLARIZATION].values]
    return [i for i, p in enumerate(pols) if len(p) == 1 or p[0] == p[1]]


def sample_cells(n_time: int, n_baseline: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """(time, baseline) indices of at most ``budget`` cells spread evenly over the grid, in
    row-major order. The stride is not a multiple of the number of baselines in general, so
    successive integrations contribute other baselines and every part of the uv plane shows."""
    cells = n_time * n_baseline
    flat = np.arange(cells) if cells <= budget else \
        np.unique((np.arange(budget) * (cells / budget)).astype(np.int64))
    return flat // n_baseline, flat % n_baseline


def sample_indices(n: int, budget: int) -> np.ndarray:
    """At most ``budget`` indices of ``range(n)``, evenly spaced."""
    return np.arange(n) if n <= budget else np.unique(np.linspace(0, n - 1, budget).astype(np.int64))


def _mean(total, count):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class _Region:
    """One block of an array that the store's chunk files hold, read inside the task using it
    (no read task of its own; see :func:`radiocal.store.rawchunks.chunk_files`)."""

    def __init__(self, files, key):
        self.files, self.key = files, key

    def read(self):
        return self.files[self.key]

    def __dask_tokenize__(self):
        return (type(self).__name__, tokenize(self.files), self.key)


def _read(block):
    return block.read() if isinstance(block, _Region) else block


def _block_handles(array, chunks):
    """Per block of ``chunks`` (a dict: block index -> handle): a :class:`_Region` when the
    store's chunk files hold ``array`` in those chunks, else the block as a dask Delayed."""
    files = rawchunks.chunk_files(array) if array.chunks == chunks else None
    edges = [np.cumsum((0,) + tuple(c)) for c in chunks]
    if files is None:
        blocks = array.rechunk(chunks).to_delayed(optimize_graph=False)
    handles = {}
    for index in np.ndindex(*(len(c) for c in chunks)):
        if files is None:
            handles[index] = blocks[index]
        else:
            key = tuple(slice(int(e[i]), int(e[i + 1])) for e, i in zip(edges, index))
            handles[index] = _Region(files, key)
    return handles


def _counts(flag, present):
    """Flagged and total samples per (baseline, polarization) of one block: int64
    ``(baseline, pol, 2)`` (as :func:`radiocal.flagging.summary.lazy_counts` counts them)."""
    flagged = (flag & present[:, :, None, None]).sum(axis=(0, 2), dtype=np.int64)
    total = np.broadcast_to(present.sum(axis=0, dtype=np.int64)[:, None] * flag.shape[2],
                            flagged.shape)
    return np.stack([flagged, total], axis=-1)


def _reduce_block(plan, flag, present, saved, uvw, *columns):
    """Everything the report needs of one block, read once, by how it is put together
    (:func:`_finish_region`, :func:`_combine`): ``"flags"``, the flag counts by state (now and,
    with ``saved``, the oldest flag version's; :func:`_counts`), and for a calibrator its partial
    visibility sums (:class:`VisSummary`): ``"cells"``, a value per sampled cell (``"n"`` usable
    samples, ``"uvdist"``, each label's sum), and ``"time"``, each label's sum and count over the
    block's times per (baseline, channel) (``(label, "sum")``, ``(label, "n")``: every baseline
    for "after", the sampled ones for "before"). ``plan``: the block's sampled cells and
    baselines (local indices)."""
    flag = _read(flag)
    present = np.ones(flag.shape[:2], bool) if present is None else _read(present)
    flags = {"now": _counts(flag, present)}
    if saved is not None:
        flags["input"] = _counts(_read(saved), present)
    if plan is None:
        return {"flags": flags, "cells": {}, "time": {}}
    par, cell_t, cell_b, b_freq, labels = plan
    usable = ~flag[..., par] & present[:, :, None, None]
    cells = {"n": usable[cell_t, cell_b].sum(axis=(1, 2))}
    if uvw is not None:
        uvw = _read(uvw)[cell_t, cell_b]
        cells["uvdist"] = np.sqrt(uvw[:, 0] ** 2 + uvw[:, 1] ** 2)
    time = {}
    for label, column in zip(labels, columns):
        # complex64 as stored, summed in complex128
        vis = np.where(usable, _read(column)[..., par], np.complex64(0))
        cells[label] = vis[cell_t, cell_b].sum(axis=(1, 2), dtype=np.complex128)
        if label == "after":
            # every baseline's time average, for the measured flux and the sampled baselines
            time[label, "sum"] = vis.sum(axis=(0, 3), dtype=np.complex128)
            time[label, "n"] = usable.sum(axis=(0, 3))
        else:
            time[label, "sum"] = vis[:, b_freq].sum(axis=(0, 3), dtype=np.complex128)
            time[label, "n"] = usable[:, b_freq].sum(axis=(0, 3))
    return {"flags": flags, "cells": cells, "time": time}


def _add(totals, name, where, value, size):
    """``totals[name][where] += value``, ``totals[name]`` zeros of ``size`` at first."""
    if name not in totals:
        totals[name] = np.zeros(size, value.dtype)
    totals[name][where] += value


def _finish_region(rows, placed):
    """One region's results (a baseline block x a channel block, over every time block) from
    its blocks' :func:`_reduce_block` outputs; ``placed``: ``(cells, partial)`` per time block,
    in time order, ``cells`` the positions of the block's sampled cells in the partition's.

    Every baseline's time average of the calibrated data is finished here and reduced to what
    the report keeps: the sampled baselines' rows (``rows``, local indices) and the spectrum's
    sum over the region's baselines. A partition's combine then holds a few rows per region,
    not a baseline x channel plane per time block. Sums run in time order, as a dask reduction
    over the same chunks adds them.

    Returns ``"flags"`` and ``"cells"`` as the blocks give them (summed; concatenated, at the
    positions ``"at"``), ``"rows"`` and ``"spectrum"``: ``(label, "sum")``, ``(label, "n")``
    per (sampled baseline, channel) and per channel.
    """
    flags, time, at, cells = {}, {}, [], {}
    for where, partial in placed:
        at.append(where)
        for name, value in partial["flags"].items():
            _add(flags, name, ..., value, value.shape)
        for name, value in partial["time"].items():
            _add(time, name, ..., value, value.shape)
        for name, value in partial["cells"].items():   # each cell lies in one time block
            cells.setdefault(name, []).append(value)
    out = {"flags": flags, "at": np.concatenate(at) if at else np.zeros(0, np.int64),
           "cells": {name: np.concatenate(values) for name, values in cells.items()},
           "rows": {}, "spectrum": {}}
    for (label, quantity), value in time.items():
        if label != "after":
            out["rows"][label, quantity] = value
    if ("after", "sum") in time:
        t_sum, t_n = time["after", "sum"], time["after", "n"]
        out["rows"]["after", "sum"], out["rows"]["after", "n"] = t_sum[rows], t_n[rows]
        mean = np.where(t_n > 0, t_sum / np.maximum(t_n, 1), 0)
        out["spectrum"]["after", "sum"] = mean.real.sum(axis=0)
        out["spectrum"]["after", "n"] = (t_n > 0).sum(axis=0)
    return out


def _combine(shape, placed):
    """One partition's results from its regions' :func:`_finish_region` outputs, each group
    placed where it belongs: ``"flags"`` by baseline, ``"cells"`` by sampled cell, ``"rows"``
    by (sampled baseline, channel), ``"spectrum"`` by channel.

    ``shape``: (baselines, polarizations, channels, cells, sampled baselines); ``placed``:
    ``(where, region)`` per region in block order, ``where`` = (baseline slice, channel slice,
    sampled-baseline positions).
    """
    n_baseline, n_pol, n_freq, n_cell, n_bfreq = shape
    out = {"flags": {}, "cells": {}, "rows": {}, "spectrum": {}}
    for (b_sl, f_sl, b_pos), region in placed:
        places = {"flags": (b_sl, (n_baseline, n_pol, 2)), "cells": (region["at"], n_cell),
                  "rows": ((b_pos, f_sl), (n_bfreq, n_freq)), "spectrum": (f_sl, n_freq)}
        for group, (where, size) in places.items():
            for name, value in region[group].items():
                _add(out[group], name, where, value, size)
    return out


def _finish_partition(shape, where, rows, blocks, reduce: bool):
    """:func:`_combine` of a partition of one region from that region's blocks (their
    :func:`_reduce_block` outputs, or with ``reduce`` its arguments)."""
    if reduce:
        blocks = [(cells, _reduce_block(*args)) for cells, args in blocks]
    return _combine(shape, [(where, _finish_region(rows, blocks))])


def lazy_partition_summaries(datasets, fields, saved=None, budget: int = SAMPLE_POINTS):
    """The report's reductions of every partition, a task per chunk (plus one per partition):
    flag counts of the current flags and of ``saved`` (partition name -> the oldest flag
    version's ``FLAG`` DataArray), and for the partitions of ``fields`` (the calibrators) the
    visibility sums behind :class:`VisSummary`. Each chunk's variables are read once, inside
    its task when the store's chunk files hold them: on a scan-rich store this is a few hundred
    tasks where separate reductions of each quantity built ~1500.

    Returns
    -------
    (meta, lazy)
        Pass ``meta`` and the computed ``lazy`` (a list, one per partition) to
        :func:`finish_partition_summaries`.
    """
    wanted = set(fields)
    saved = saved or {}
    partitions = {}
    for ds in datasets:
        name = ds.attrs.get(S.ATTR_FIELD_NAME)
        if name in wanted:
            partitions[name] = partitions.get(name, 0) + 1
    lazy, meta = [], []
    for ds in datasets:
        flag = _dask(ds[S.FLAG].data)
        chunks = flag.chunks
        if len(chunks[3]) > 1:   # the parallel hands are picked within a block
            chunks = chunks[:3] + ((flag.shape[3],),)
        edges = [np.cumsum((0,) + tuple(c)) for c in chunks]
        n_time, n_baseline, n_freq, n_pol = flag.shape
        handles = {"flag": _block_handles(flag, chunks)}
        if S.ROW_PRESENT in ds:
            handles["present"] = _block_handles(_dask(ds[S.ROW_PRESENT].data), chunks[:2])
        name = ds.attrs.get(S.ATTR_PARTITION)
        if name in saved:
            handles["saved"] = _block_handles(_dask(saved[name].data), chunks)
        calibrator = ds.attrs.get(S.ATTR_FIELD_NAME) in wanted
        t_idx = b_idx = b_freq = np.zeros(0, np.int64)
        labels = []
        if calibrator:
            share = max(1, budget // partitions[ds.attrs.get(S.ATTR_FIELD_NAME)])
            t_idx, b_idx = sample_cells(n_time, n_baseline, share)
            b_freq = sample_indices(n_baseline, max(1, share // n_freq))
            par = parallel_hands(ds)
            labels = ["before"] + (["after"] if S.VISIBILITY_CORRECTED in ds else [])
            for label, var in zip(labels, (S.VISIBILITY, S.VISIBILITY_CORRECTED)):
                handles[label] = _block_handles(_dask(ds[var].data), chunks)
            uvw = _dask(ds[S.UVW].data)
            handles["uvw"] = _block_handles(uvw, chunks[:2] + (uvw.shape[2:],))
        placed = []
        n_t, n_b, n_f, _ = (len(c) for c in chunks)
        for j, k in np.ndindex(n_b, n_f):
            (b0, b1), (f0, f1) = ((int(e[n]), int(e[n + 1])) for e, n in zip(edges[1:3], (j, k)))
            b_pos = np.flatnonzero((b_freq >= b0) & (b_freq < b1))
            blocks = []
            for i in range(n_t):
                t0, t1 = int(edges[0][i]), int(edges[0][i + 1])
                plan, cells = None, np.zeros(0, np.int64)
                if calibrator:
                    cells = np.flatnonzero((t_idx >= t0) & (t_idx < t1)
                                           & (b_idx >= b0) & (b_idx < b1))
                    plan = (par, t_idx[cells] - t0, b_idx[cells] - b0, b_freq[b_pos] - b0,
                            labels)
                index = (i, j, k, 0)
                blocks.append((cells, (
                    plan, handles["flag"][index], handles.get("present", {}).get((i, j)),
                    handles.get("saved", {}).get(index),
                    handles["uvw"][(i, j, 0)] if calibrator and k == 0 else None,
                    *(handles[label][index] for label in labels))))
            placed.append(((slice(b0, b1), slice(f0, f1), b_pos), (b_freq[b_pos] - b0, blocks)))
        shape = (n_baseline, n_pol, n_freq, t_idx.size, b_freq.size)
        lazy.append(_partition_task(shape, placed))
        meta.append((ds, t_idx, calibrator))
    return meta, lazy


def _partition_task(shape, placed):
    """One partition's summaries, lazy: a task per block (:func:`_reduce_block`), per region
    (:func:`_finish_region`) and the partition's (:func:`_combine`), where they are several;
    a region and the combine of a partition of one region are one task, and a block too when it
    is the only one (each task ~1 ms of the in-process cluster's bookkeeping)."""
    def reduced(blocks):
        return [(cells, dask.delayed(_reduce_block, pure=True)(*args)) for cells, args in blocks]

    if len(placed) == 1:
        where, (rows, blocks) = placed[0]
        alone = len(blocks) == 1
        return dask.delayed(_finish_partition, pure=True)(
            shape, where, rows, blocks if alone else reduced(blocks), alone)
    return dask.delayed(_combine, pure=True)(shape, [
        (where, dask.delayed(_finish_region, pure=True)(rows, reduced(blocks)))
        for where, (rows, blocks) in placed])


def _dask(array):
    return array if isinstance(array, da.Array) else da.from_array(array, chunks=array.shape)


def finish_partition_summaries(meta, computed):
    """(list of :class:`VisSummary` of the calibrators' partitions, the flag counts by state:
    ``"now"`` and, with ``saved``, ``"input"``: lists of int64 ``(baseline, pol, 2)`` in the
    order of :func:`flag_states`' partitions) from :func:`lazy_partition_summaries`."""
    summaries, counts = [], {"now": []}
    for (ds, t_idx, calibrator), out in zip(meta, computed):
        flags, cells, rows, spectrum = (out[g] for g in ("flags", "cells", "rows", "spectrum"))
        counts["now"].append(flags["now"])
        if "input" in flags:
            counts.setdefault("input", []).append(flags["input"])
        if not calibrator:
            continue
        summary = VisSummary(str(ds.attrs.get(S.ATTR_FIELD_NAME)), str(ds.attrs.get(S.ATTR_PARTITION)),
                             ds[S.FREQUENCY].values, ds[S.TIME].values[t_idx],
                             cells.get("uvdist", np.zeros(t_idx.size)))
        n_cell = cells.get("n", np.zeros(t_idx.size, np.int64))
        for label in ("before", "after"):
            if label not in cells:
                continue
            summary.by_time[label] = _mean(cells[label], n_cell)
            summary.by_frequency[label] = _mean(rows[label, "sum"], rows[label, "n"])
            if (label, "sum") in spectrum:
                summary.spectrum[label] = (spectrum[label, "sum"], spectrum[label, "n"])
        summaries.append(summary)
    return summaries, counts


def visibility_summaries(datasets, fields, budget: int = SAMPLE_POINTS) -> list[VisSummary]:
    """Before/after calibration averages of the partitions of ``fields`` (one compute).

    Parameters
    ----------
    datasets : list of xr.Dataset
        Canonical partitions; ``VISIBILITY`` is "before", ``VISIBILITY_CORRECTED`` (when
        present) "after". The current ``FLAG`` selects the samples of both.
    fields : iterable of str
        Field names to summarise (the calibrators).
    budget : int
        Sampled cells (and baseline x channel values) per field, shared by its partitions.
    """
    wanted = set(fields)
    chosen = [ds for ds in datasets if ds.attrs.get(S.ATTR_FIELD_NAME) in wanted]
    meta, lazy = lazy_partition_summaries(chosen, fields, budget=budget)
    return finish_partition_summaries(meta, dask.compute(*lazy))[0]


def measured_flux(summaries, field_name):
    """Flux density of a calibrator measured from its calibrated data.

    The channel spectra of all its partitions (time- and baseline-averaged real part of the
    calibrated parallel hands: the mean over baselines of each baseline's time average) are
    fitted with ``S0 (nu / nu0)^alpha``, ``nu0`` the mean frequency.

    Returns
    -------
    dict or None
        ``frequency`` (Hz), ``flux`` (Jy) per channel, ``s0``, ``alpha``, ``nu0``; None when the
        field has no calibrated, unflagged data.
    """
    mine = [s for s in summaries if s.field == field_name and "after" in s.spectrum]
    if not mine:
        return None
    nu = np.concatenate([s.frequency for s in mine])
    # channel sums and counts over baselines of every partition, then one mean per frequency
    sums = np.concatenate([s.spectrum["after"][0] for s in mine])
    counts = np.concatenate([s.spectrum["after"][1] for s in mine])
    unique, inverse = np.unique(nu, return_inverse=True)
    total = np.bincount(inverse, weights=sums, minlength=unique.size)
    n = np.bincount(inverse, weights=counts, minlength=unique.size)
    flux = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    good = np.isfinite(flux) & (flux > 0)
    if not good.any():
        return None
    nu0 = float(unique[good].mean())
    if good.sum() >= 2:
        alpha, log_s0 = np.polyfit(np.log(unique[good] / nu0), np.log(flux[good]), 1)
    else:
        alpha, log_s0 = 0.0, np.log(flux[good][0])
    return {"frequency": unique, "flux": flux, "s0": float(np.exp(log_s0)), "alpha": float(alpha),
            "nu0": nu0}


# -- calibration tables ----------------------------------------------------------------------


def load_tables(store) -> dict:
    """Every calibration table saved in the store (``caltables/<name>``): name -> list of spw."""

    root = os.path.join(os.fspath(store), C.CALTABLES_GROUP)
    if not os.path.isdir(root):
        return {}
    tables = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if C.is_table_zarr(path):
            tables[name] = C.read_table_zarr(path)
    return tables


def solution_counts(tables: dict) -> list[dict]:
    """Per table and spw: expected/attempted/succeeded intervals and the flagged fraction."""
    rows = []
    for name, table in tables.items():
        for tds in table:
            counts = dict(tds.attrs.get(C.ATTR_COUNTS, {}))
            rows.append({"table": name, "type": tds.attrs.get(C.ATTR_CAL_TYPE, ""),
                         "spw": int(tds.attrs.get(S.ATTR_SPW_ID, 0)),
                         "expected": counts.get("expected"), "attempted": counts.get("attempted"),
                         "succeeded": counts.get("succeeded"),
                         "flagged": float(tds[C.SOL_FLAG].values.mean())})
    return rows


def fluxscale_from_tables(tables: dict, fluxcal: str = "") -> dict:
    """The flux densities fluxscale assigned, recovered from the saved amplitude tables.

    ``flux_cal`` is ``amp_cal`` divided by ``sqrt(S)`` for every transfer field (see
    :func:`radiocal.calibration.workflow.rescale`), so ``S = median(|amp_cal| / |flux_cal|)^2``
    over the field's unflagged solutions.

    Returns
    -------
    dict
        field name -> {spw id -> (frequency Hz, flux Jy)}.
    """
    if "amp_cal" not in tables or "flux_cal" not in tables:
        return {}
    out: dict = {}
    for raw, scaled in zip(tables["amp_cal"], tables["flux_cal"]):
        spw = int(raw.attrs.get(S.ATTR_SPW_ID, 0))
        names = [str(n) for n in raw.attrs.get(C.ATTR_FIELD_NAMES, [])]
        ids = [int(i) for i in raw.attrs.get(C.ATTR_FIELD_IDS, [])]
        g_raw, g_scaled = np.abs(raw[C.GAIN].values), np.abs(scaled[C.GAIN].values)
        ok = ~(raw[C.SOL_FLAG].values | scaled[C.SOL_FLAG].values) & (g_scaled > 0)
        sol_field = raw[C.SOL_FIELD].values
        freq = float(np.mean(raw[C.SOL_FREQ].values))
        for name, fid in zip(names, ids):
            if name == fluxcal:
                continue
            rows = ok & (sol_field == fid)[:, None, None, None]
            if rows.any():
                ratio = float(np.median(g_raw[rows] / g_scaled[rows]) ** 2)
                out.setdefault(name, {})[spw] = (freq, ratio)
    return out


def flag_states(store, datasets) -> dict:
    """The partitions whose flags the report counts: ``"now"`` (the datasets as they are) and,
    when the store keeps flag versions, ``"input"`` (the oldest version's flags)."""
    from radiocal.store.flag_versions import list_flag_versions, open_flag_version

    states = {"now": list(datasets)}
    versions = list_flag_versions(store)
    if versions:
        saved = open_flag_version(store, versions[0]["name"])
        states["input"] = [ds.assign({S.FLAG: (ds[S.FLAG].dims, saved[ds.attrs[S.ATTR_PARTITION]].data)})
                           for ds in datasets if ds.attrs[S.ATTR_PARTITION] in saved]
    return states


def visibility_and_flag_summaries(datasets, fields, store, budget: int = SAMPLE_POINTS):
    """:func:`visibility_summaries` of ``fields`` and the flag counts of :func:`flag_states`
    (``radiocal.flagging.summary.flag_summary``'s dicts by state), in one compute that reads
    each chunk once (:func:`lazy_partition_summaries`)."""
    from radiocal.flagging.summary import finish_summary

    states = flag_states(store, datasets)
    saved = {ds.attrs[S.ATTR_PARTITION]: ds[S.FLAG] for ds in states.get("input", [])}
    meta, lazy = lazy_partition_summaries(datasets, fields, saved, budget)
    vis, counts = finish_partition_summaries(meta, dask.compute(*lazy))
    return vis, {state: finish_summary(states[state], counts[state]) for state in states}


def fraction(pair) -> float:
    flagged, total = (int(x) for x in pair)
    return flagged / total if total else float("nan")
