"""Resolution of parsed selection strings against one canonical partition.

Plain numpy on the partition's small coordinates (antenna table, baseline indices, channel
frequencies, times) for everything separable by dimension; a lazy xarray/dask expression on
``UVW`` for uv distance. Used by :mod:`radiocal.select.selection`; no user-facing API here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from radiocal.astro import SPEED_OF_LIGHT
from radiocal.errors import SelectionError
from radiocal.store import rawchunks, schema
from radiocal.select import syntax

# MS TIME values are float64 MJD seconds (~5e9), exact to ~1e-6 s; a time typed to the second
# must still match a stamp a rounding error away.
_TIME_TOLERANCE = 1e-5


# --- small helpers -----------------------------------------------------------------------------

def coord_values(array) -> np.ndarray:
    """A small coordinate as numpy; a dask-backed one is read on the local thread, because
    metadata lookups must work even where the data's scheduler forbids computing."""
    data = getattr(array, "data", array)
    if isinstance(data, da.Array):
        (data,) = da.compute(data, scheduler="sync")
    return np.asarray(data)


def listing(items: Iterable, limit: int = 12) -> str:
    """Distinct items, comma-separated, at most ``limit`` of them, for error messages."""
    unique = list(dict.fromkeys(str(v) for v in items))
    shown = ", ".join(unique[:limit])
    return shown + (f", ... ({len(unique)} in all)" if len(unique) > limit else "")


def partition_intents(ds: xr.Dataset) -> list[str]:
    """The partition's scan intents as a list (the attr may be a list or a comma-joined str)."""
    value = ds.attrs.get(schema.ATTR_INTENTS) or []
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    return [str(v) for v in np.ravel(value)]


def first_time(datasets: Sequence[xr.Dataset]) -> float:
    """The earliest ``time`` (MJD seconds) over ``datasets``: the date a date-less timerange
    refers to."""
    starts = [float(ds[schema.TIME].values.min()) for ds in datasets if ds.sizes[schema.TIME]]
    if not starts:
        raise SelectionError("the data hold no time samples")
    return min(starts)


# --- partition-level matching: field, scan, spw, intent ----------------------------------------

def channel_extent(frequency: np.ndarray, width: np.ndarray | None):
    """Lower and upper edge (Hz) of each channel, (frequency,) each."""
    if width is None:
        width = np.abs(np.gradient(frequency)) if frequency.size > 1 else np.zeros_like(frequency)
    half = np.abs(width) / 2.0
    return frequency - half, frequency + half


def field_matches(specs, attrs: dict) -> bool:
    for spec in specs:
        if isinstance(spec, syntax.IdSpec):
            if attrs.get(schema.ATTR_FIELD_ID) is not None and spec.contains(
                    int(attrs[schema.ATTR_FIELD_ID])):
                return True
        elif spec.matches(attrs.get(schema.ATTR_FIELD_NAME)) or spec.matches(
                attrs.get(schema.ATTR_FIELD_CODE) or None):
            return True
    return False


def scan_matches(specs, attrs: dict) -> bool:
    scan = attrs.get(schema.ATTR_SCAN)
    return scan is not None and any(spec.contains(int(scan)) for spec in specs)


def spw_item_matches(item, attrs, frequency, width) -> bool:
    spw = item.spw
    if isinstance(spw, syntax.AllSpec):
        return True
    if isinstance(spw, syntax.IdSpec):
        spw_id = attrs.get(schema.ATTR_SPW_ID)
        return spw_id is not None and spw.contains(int(spw_id))
    if isinstance(spw, syntax.NameSpec):
        return spw.matches(attrs.get(schema.ATTR_SPW_NAME))
    if frequency is None:
        return False
    low, high = channel_extent(frequency, width)
    return bool(np.any((low <= spw.high) & (high >= spw.low)))


def intent_matches(specs, intents: list[str]) -> bool:
    return any(spec.matches(intent) for spec in specs for intent in intents)


# --- dimension masks: channels, correlation, baselines, time -----------------------------------

def channel_mask(ds: xr.Dataset, items) -> np.ndarray:
    """Bool (frequency,): the union of the channel parts of the spw items matching ``ds``."""
    frequency = coord_values(ds[schema.FREQUENCY]).astype(float)
    width = coord_values(ds[schema.CHANNEL_WIDTH]) if schema.CHANNEL_WIDTH in ds.coords else None
    nchan = frequency.size
    mask = np.zeros(nchan, dtype=bool)
    for item in items:
        if not spw_item_matches(item, ds.attrs, frequency, width):
            continue
        if item.channels is None:
            return np.ones(nchan, dtype=bool)
        for chan in item.channels:
            if isinstance(chan, syntax.FreqRange):
                low, high = channel_extent(frequency, width)
                mask |= (low <= chan.high) & (high >= chan.low)
            else:
                stop = nchan - 1 if chan.stop is None else min(chan.stop, nchan - 1)
                mask[np.arange(chan.start, stop + 1, chan.step)] = True
    return mask


def polarization_mask(ds: xr.Dataset, names) -> np.ndarray:
    return np.isin(coord_values(ds[schema.POLARIZATION]).astype(str), names)


def antenna_set(items, names: np.ndarray, stations: np.ndarray | None) -> np.ndarray:
    """Bool (antenna,) for an antenna list. Integers match names first, then ids, and names
    that match no antenna name match stations, as in CASA."""
    n = names.size
    chosen = np.zeros(n, dtype=bool)
    for item in items:
        if item.kind == "all":
            chosen[:] = True
            continue
        if item.kind == "range":
            by_name = np.isin(names, [str(i) for i in range(item.low, item.high + 1)])
            if by_name.any():
                chosen |= by_name
            else:
                chosen[max(item.low, 0):min(item.high, n - 1) + 1] = True
            continue
        by_name = np.array([fnmatchcase(str(name), item.name) for name in names], bool)
        if not by_name.any() and item.kind == "int":
            if item.low < n:
                by_name[item.low] = True
        elif not by_name.any() and stations is not None:
            by_name = np.array([fnmatchcase(str(s), item.name) for s in stations], bool)
        chosen |= by_name
    return chosen


def _spec_baselines(spec, a1, a2, names, stations, as_exclusion: bool) -> np.ndarray:
    left = antenna_set(spec.left, names, stations)
    in_left1, in_left2 = left[a1], left[a2]
    auto = a1 == a2
    if spec.op is None:
        involving = in_left1 | in_left2
        # "!ANT" removes every baseline with ANT, autocorrelations included
        return involving if as_exclusion else involving & ~auto
    if spec.op == "&&&":
        return auto & in_left1
    if spec.right is None:
        pairs = in_left1 & in_left2
    else:
        right = antenna_set(spec.right, names, stations)
        pairs = (in_left1 & right[a2]) | (right[a1] & in_left2)
    return pairs if spec.op == "&&" else pairs & ~auto


def baseline_mask(ds: xr.Dataset, specs) -> np.ndarray:
    """Bool (baseline,): positive specs are united, negated ones removed from the result."""
    a1 = coord_values(ds[schema.BASELINE_ANTENNA1]).astype(int)
    a2 = coord_values(ds[schema.BASELINE_ANTENNA2]).astype(int)
    names = coord_values(ds[schema.ANTENNA_NAME]).astype(str)
    stations = (coord_values(ds[schema.ANTENNA_STATION]).astype(str)
                if schema.ANTENNA_STATION in ds.coords else None)
    positive = [s for s in specs if not s.negate]
    keep = np.zeros(a1.size, bool) if positive else np.ones(a1.size, bool)
    for spec in positive:
        keep |= _spec_baselines(spec, a1, a2, names, stations, as_exclusion=False)
    for spec in specs:
        if spec.negate:
            keep &= ~_spec_baselines(spec, a1, a2, names, stations, as_exclusion=True)
    return keep


def time_mask(ds: xr.Dataset, specs, reference: float) -> np.ndarray:
    """Bool (time,). ``T0~T1`` is inclusive, ``>T``/``<T`` strict, a single ``T`` picks the
    integrations whose interval holds it."""
    times = coord_values(ds[schema.TIME]).astype(float)
    if schema.INTEGRATION_TIME in ds.coords:
        interval = coord_values(ds[schema.INTEGRATION_TIME]).astype(float)
    else:
        step = np.median(np.diff(times)) if times.size > 1 else 0.0
        interval = np.full(times.size, step)
    mask = np.zeros(times.size, dtype=bool)
    for spec in specs:
        low, high = syntax.resolve_time(spec, reference)
        if spec.kind == "single":
            mask |= np.abs(times - low) <= interval / 2.0 + _TIME_TOLERANCE
        elif spec.kind == "gt":
            mask |= times > low + _TIME_TOLERANCE
        elif spec.kind == "lt":
            mask |= times < high - _TIME_TOLERANCE
        else:
            mask |= (times >= low - _TIME_TOLERANCE) & (times <= high + _TIME_TOLERANCE)
    return mask


# --- uv distance -------------------------------------------------------------------------------

def uv_distance(ds: xr.Dataset) -> xr.DataArray:
    """Lazy ``sqrt(u**2 + v**2)`` in metres, (time, baseline)."""
    if schema.UVW not in ds.data_vars:
        name = ds.attrs.get(schema.ATTR_PARTITION, "a partition")
        raise SelectionError(f"uvrange needs UVW, which {name} does not have")
    uvw = ds[schema.UVW]
    if schema.UVW_LABEL in uvw.coords:
        u = uvw.sel({schema.UVW_LABEL: schema.UVW_LABELS[0]})
        v = uvw.sel({schema.UVW_LABEL: schema.UVW_LABELS[1]})
    else:
        u, v = uvw.isel({schema.UVW_LABEL: 0}), uvw.isel({schema.UVW_LABEL: 1})
    return _length(u, v).drop_vars(schema.UVW_LABEL, errors="ignore")


def _length(u, v):
    return np.sqrt(u.astype(np.float64) ** 2 + v.astype(np.float64) ** 2)


def _in_range(values, spec: syntax.UvRange):
    low_ok = values >= spec.low if spec.low_inclusive else values > spec.low
    high_ok = values <= spec.high if spec.high_inclusive else values < spec.high
    return low_ok & high_ok


def _inside(distance, frequency, specs):
    """Whether |uv| = ``distance`` (metres) at ``frequency`` (Hz) lies in any of ``specs``:
    numpy or xarray operands that broadcast against each other."""
    mask = None
    for spec in specs:
        values = distance if spec.base == "m" else distance * (frequency / SPEED_OF_LIGHT)
        part = _in_range(values, spec)
        mask = part if mask is None else mask | part
    return mask


def uv_mask(ds: xr.Dataset, specs) -> xr.DataArray:
    """Lazy bool (time, baseline) for metre ranges only, else (time, baseline, frequency)."""
    frequency = xr.DataArray(coord_values(ds[schema.FREQUENCY]).astype(float),
                             dims=schema.FREQUENCY,
                             coords={schema.FREQUENCY: ds[schema.FREQUENCY]})
    mask = _inside(uv_distance(ds), frequency, specs)
    dims = [d for d in (schema.TIME, schema.BASELINE, schema.FREQUENCY) if d in mask.dims]
    return mask.transpose(*dims)


class OutsideUvFlags(rawchunks.Regions):
    """Stored flags with every cell outside uv ranges flagged, made region by region from the
    chunk files of ``FLAG`` and ``UVW`` (and the channel frequencies) inside the task that reads
    them. As a computed array, a solve's blocks took them from a rechunk, which dask ran far
    ahead of the solve: an LWA-like sky bandpass held half of them at once, and its memory
    grew with the integrations."""

    def __init__(self, flag, uvw, frequency, specs):
        super().__init__(flag.shape, flag.chunk_shape, flag.dtype, flag.compressor)
        self.flag, self.uvw = flag, uvw
        self.frequency, self.specs = np.asarray(frequency, dtype=float), tuple(specs)

    def __getitem__(self, key):
        time, baseline, frequency, polarization = rawchunks.slices(key, self.shape)
        uvw = self.uvw[time, baseline, :]
        distance = _length(uvw[:, :, 0], uvw[:, :, 1])[:, :, None]
        inside = _inside(distance, self.frequency[frequency], self.specs)
        return self.flag[time, baseline, frequency, polarization] | ~inside[:, :, :, None]

    def __dask_tokenize__(self):
        return (type(self).__name__, tokenize(self.flag), tokenize(self.uvw),
                self.frequency, self.specs)


def flagged_outside_uv(ds: xr.Dataset, specs) -> xr.DataArray:
    """``FLAG`` with every cell outside the uv ranges ``specs`` flagged, lazily: read with the
    uv cut inside the task that uses it (:class:`OutsideUvFlags`) when the store's chunk files
    hold ``FLAG`` and ``UVW``, else as an expression on ``UVW``."""
    flag, uvw = ds[schema.FLAG], ds.get(schema.UVW)
    files = [rawchunks.chunk_files(x.data) if isinstance(getattr(x, "data", None), da.Array)
             else None for x in (flag, uvw)]
    labels = (uvw is None or schema.UVW_LABEL not in uvw.coords
              or tuple(coord_values(uvw[schema.UVW_LABEL])[:2]) == schema.UVW_LABELS[:2])
    if None in files or flag.dims != schema.VIS_DIMS or not labels:
        return (flag | ~uv_mask(ds, specs)).transpose(*flag.dims)
    regions = OutsideUvFlags(*files, coord_values(ds[schema.FREQUENCY]), specs)
    # the arrays' names change when the store rewrites them; the files' paths do not
    name = "outside-uv-" + tokenize(regions, flag.data.name, uvw.data.name)
    return flag.copy(data=rawchunks.from_regions(regions, flag.chunks, name))


def uv_possible(ds: xr.Dataset, specs) -> bool:
    """False only when no range can hold any cell: |uv| never exceeds the baseline length, so
    a lower bound above the longest baseline (at the highest frequency) selects nothing."""
    if schema.ANTENNA_POSITION not in ds.coords or ds.sizes[schema.BASELINE] == 0:
        return True
    positions = coord_values(ds[schema.ANTENNA_POSITION]).astype(float)
    a1 = coord_values(ds[schema.BASELINE_ANTENNA1]).astype(int)
    a2 = coord_values(ds[schema.BASELINE_ANTENNA2]).astype(int)
    longest = float(np.max(np.linalg.norm(positions[a1] - positions[a2], axis=-1)))
    if not np.isfinite(longest) or longest == 0.0:   # positions unknown: nothing to conclude
        return True
    frequency = coord_values(ds[schema.FREQUENCY])
    fmax = float(np.max(frequency)) if frequency.size else 0.0
    for spec in specs:
        reach = longest if spec.base == "m" else longest * fmax / SPEED_OF_LIGHT
        # UVW is the baseline rotated (length kept); the margin covers frame and rounding effects
        if spec.low <= reach * (1 + 1e-3):
            return True
    return False
