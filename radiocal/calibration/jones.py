"""Apply calibration: tables interpolated onto the data's (time, antenna, frequency, hand) grid.

Each :class:`ApplyTable` of a chain has its own time interpolation (``nearest``/``linear``),
frequency interpolation (B tables), ``gainfield`` (all fields, ``"nearest"`` on the sky, or a
field name) and ``spwmap``. The chain's terms multiply (all diagonal); a sample whose solution is
flagged in any term is flagged. Interpolation runs per time chunk inside the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from radiocal.calibration import graph
from radiocal.calibration import kernels as K
from radiocal.calibration.config import INTERP_CHOICES
from radiocal.errors import ConfigError, InputError
from radiocal.store import caltables as C
from radiocal.store import schema as S

FREQ_INTERP_CHOICES = ("nearest", "linear")


@dataclass(frozen=True)
class ApplyTable:
    """One term of an apply chain.

    Parameters
    ----------
    table : list of xarray.Dataset
        A calibration table (per-spw datasets).
    interp : {"linear", "nearest", "hermite"}
        Time interpolation. ``hermite``: cubic Hermite through each scan's mean value and rate
        of change (a line fitted to the scan's solutions in log amplitude and phase), see
        :func:`radiocal.calibration.kernels.interpolate_time_hermite`. It is meant for
        per-integration solutions of a calibrator transferred to the target scans between its
        scans; flagged solutions are skipped whatever ``propagate_flags`` says.
    freq_interp : {"linear", "nearest"}
        Frequency interpolation (B tables).
    gainfield : str or None
        ``None``/``""``: solutions of every field; ``"nearest"``: the table field nearest to the
        data's phase centre; otherwise a field name in the table.
    spwmap : tuple of int or None
        ``spwmap[data_spw]`` is the table spw to use (CASA's spwmap).
    propagate_flags : bool
        False: interpolate between the nearest valid solutions. True (what CASA's applycal
        does): a flagged solution flags the data it would calibrate.
    """

    table: list = field(hash=False, compare=False)
    interp: str = "linear"
    freq_interp: str = "linear"
    gainfield: str | None = None
    spwmap: tuple | None = None
    propagate_flags: bool = False

    def __post_init__(self):
        for name, value, choices in (("interp", self.interp, INTERP_CHOICES),
                                     ("freq_interp", self.freq_interp, FREQ_INTERP_CHOICES)):
            if value not in choices:
                raise ConfigError(f"{name} {value!r} is not one of {', '.join(choices)}")


def data_hands(ds: xr.Dataset):
    """Feed hands of a dataset's correlations.

    Returns
    -------
    hands : tuple of str, hand1, hand2 : int (polarization,), parallel : bool (polarization,)
    """
    pols = tuple(str(p) for p in ds.variables[S.POLARIZATION].values)
    if pols not in S.SUPPORTED_POLARIZATIONS:
        raise InputError(f"correlation layout {pols} is not supported "
                         f"(1, 2 parallel hands or 4 correlations)")
    if pols == ("I",):
        return ("I",), np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, bool)
    hands = []
    for p in pols:
        for h in p:
            if h not in hands:
                hands.append(h)
    hand1 = np.array([hands.index(p[0]) for p in pols], dtype=np.int64)
    hand2 = np.array([hands.index(p[1]) for p in pols], dtype=np.int64)
    return tuple(hands), hand1, hand2, hand1 == hand2


def select_table_spw(table, ds: xr.Dataset, spwmap=None) -> xr.Dataset:
    """The dataset of ``table`` that applies to ``ds``'s spectral window.

    ``spwmap[data_spw]`` names the table spw explicitly; otherwise the table's own spw, or the
    solution of a solve that combined spectral windows covering the data's.
    """
    spw = int(ds.attrs[S.ATTR_SPW_ID])
    if spwmap is not None:
        if spw >= len(spwmap):
            raise ConfigError(f"spwmap {list(spwmap)} has no entry for spw {spw}")
        spw = int(spwmap[spw])
    for tds in table:
        if int(tds.attrs[S.ATTR_SPW_ID]) == spw:
            return tds
    if spwmap is None:
        for tds in table:
            if spw in [int(s) for s in tds.attrs.get("combined_spws", [])]:
                return tds
    raise InputError(f"calibration table has no solutions for spw {spw} (use spwmap)")


def _field_rows(tds: xr.Dataset, ds: xr.Dataset, gainfield) -> np.ndarray:
    fields = tds.variables[C.SOL_FIELD].values
    if gainfield is None or str(gainfield).strip() == "":
        return np.ones(fields.shape, dtype=bool)
    ids = [int(i) for i in tds.attrs.get(C.ATTR_FIELD_IDS, [])]
    names = [str(n) for n in tds.attrs.get(C.ATTR_FIELD_NAMES, [])]
    if gainfield == "nearest":
        centers = np.asarray(tds.attrs.get(C.ATTR_FIELD_CENTERS, []), dtype=float)
        present = np.unique(fields)
        ra0, dec0 = ds.attrs.get(S.ATTR_PHASE_CENTER, [0.0, 0.0])
        best, best_sep = None, np.inf
        for fid, (ra, dec) in zip(ids, centers):
            if fid not in present:
                continue
            cos_sep = (np.sin(dec) * np.sin(dec0)
                       + np.cos(dec) * np.cos(dec0) * np.cos(ra - ra0))
            sep = np.arccos(np.clip(cos_sep, -1, 1))
            if sep < best_sep:
                best, best_sep = fid, sep
        if best is None:
            raise InputError("gainfield='nearest': the table has no field positions")
        return fields == best
    # every field of the name: one source may have a FIELD row per concatenated observation
    wanted = [i for n in str(gainfield).split(",") for i in C.field_ids(tds, n.strip())]
    wanted += [int(n) for n in str(gainfield).split(",") if n.strip().isdigit()]
    if not wanted:
        raise InputError(f"gainfield {gainfield!r} is not a field of the table "
                         f"({', '.join(names)})")
    return np.isin(fields, wanted)


def _solution_segments(sol_time, sol_scan, interval) -> np.ndarray:
    """(solution,) int64: runs of time-ordered solutions from one stretch of data.

    A new run starts where the scan changes, or where the gap to the previous solution is
    longer than 1.5 of their solution intervals (a table whose scan numbers do not tell the
    calibrator visits apart). Each run is one node of ``hermite`` interpolation.
    """
    if sol_time.size == 0:
        return np.zeros(0, dtype=np.int64)
    width = np.maximum(interval[1:], interval[:-1])
    gap = (width > 0) & (np.diff(sol_time) > 1.5 * width)
    new = (np.diff(np.asarray(sol_scan, dtype=np.int64)) != 0) | gap
    return np.concatenate([[0], np.cumsum(new)]).astype(np.int64)


def _same_channels(sol_freq, freqs):
    """Indices of ``freqs`` (a chunk of the data's channels) in ``sol_freq``, None unless every
    channel has a solution of its own (then flags stay per channel, nothing is interpolated)."""
    index = np.clip(np.searchsorted(sol_freq, freqs), 0, sol_freq.size - 1)
    below = np.clip(index - 1, 0, sol_freq.size - 1)
    index = np.where(np.abs(sol_freq[below] - freqs) < np.abs(sol_freq[index] - freqs),
                     below, index)
    return index if np.allclose(sol_freq[index], freqs, rtol=0, atol=1.0) else None


@dataclass(frozen=True, eq=False)
class _Solutions:
    """What one time block of :func:`table_jones` needs of a table: time-sorted solutions
    ``values`` (solution, antenna, frequency_solution, hand; the table's dtype), ``valid`` and
    ``sol_time``, or with ``hermite`` interpolation their nodes (``nodes``/``present`` of
    :func:`radiocal.calibration.kernels.hermite_nodes`)."""

    values: np.ndarray | None = None
    valid: np.ndarray | None = None
    sol_time: np.ndarray | None = None
    nodes: np.ndarray | None = None
    present: np.ndarray | None = None


def _reach(times, ok, lo, hi):
    """Per block, the (start, end) indices along the first axis that bracket ``lo .. hi`` in
    every column; -1, -1 where no column has an entry.

    ``times`` (n,) or (n, column), ascending; ``ok`` (n, column): where a column has an entry;
    ``lo``, ``hi`` (block,). Per column, the last entry strictly before ``lo`` (else its first)
    and the first strictly after ``hi`` (else its last): every interpolator here, nearest or
    linear in time, brackets a time ``x`` by the last entry at or before it and the next one,
    so entries outside that range cannot change its value at ``lo <= x <= hi`` (strictly: an
    entry at exactly ``x`` is then inside, never the end of a range the kernel would take
    another branch at).
    """
    n = ok.shape[0]
    has = ok.any(axis=0)
    if not has.any():
        return np.full(len(lo), -1), np.full(len(lo), -1)
    ok = ok[:, has]
    row = np.arange(n)[:, None]
    # last entry at or before each row, first at or after it, per column
    last = np.maximum.accumulate(np.where(ok, row, -1), axis=0)
    first = np.minimum.accumulate(np.where(ok, row, n)[::-1], axis=0)[::-1]
    if times.ndim == 2:
        # per-column times (hermite nodes, a few per calibrator scan): compared whole
        times = times[:, has]
        before = ok[None] & (times[None] < lo[:, None, None])          # (block, run, column)
        after = ok[None] & (times[None] > hi[:, None, None])
        start = np.where(before.any(axis=1), n - 1 - before[:, ::-1].argmax(axis=1),
                         first[0][None])
        end = np.where(after.any(axis=1), after.argmax(axis=1), last[-1][None])
    else:
        k = np.searchsorted(times, lo, side="left")          # rows before lo
        m = np.searchsorted(times, hi, side="right")         # rows up to hi
        before = last[np.maximum(k - 1, 0)]
        start = np.where((k[:, None] > 0) & (before >= 0), before, first[0][None])
        after = first[np.minimum(m, n - 1)]
        end = np.where((m[:, None] < n) & (after < n), after, last[-1][None])
    return start.min(axis=1), end.max(axis=1)


def _block_solutions(values, valid, sol_time, edges, times, interp, propagate, delay):
    """Per time block (``times[edges[i]:edges[i + 1]]``), the part of a field's
    (time-sorted) table that can reach its data.

    Solutions are kept by time (all of a time where one of them is needed), so ties are cut the
    same way as in the whole table and the kernels give the same numbers, bit for bit.
    """
    # an empty block (no integrations) takes the solutions around the next one: never none
    spans = [(times[a:b].min(), times[a:b].max()) if b > a else (times[min(a, len(times) - 1)],) * 2
             for a, b in zip(edges[:-1], edges[1:])]
    lo, hi = (np.array(x, dtype=np.float64) for x in zip(*spans))
    if interp == "hermite" and not delay:
        nodes, present = values
        start, end = _reach(nodes[:, :, 0], present, lo, hi)
        return [_Solutions(nodes=nodes[a:b + 1], present=present[a:b + 1]) if b >= 0 else
                _Solutions(nodes=nodes[:1], present=present[:1]) for a, b in zip(start, end)]
    ok = (valid[:, :, 0, :] if delay else valid).reshape(len(sol_time), -1)
    if propagate and not delay:
        ok = np.ones_like(ok)
    start, end = _reach(sol_time, ok, lo, hi)
    first = np.searchsorted(sol_time, sol_time[np.maximum(start, 0)], side="left")
    last = np.searchsorted(sol_time, sol_time[np.maximum(end, 0)], side="right")
    return [_Solutions(values=values[a:b], valid=valid[a:b], sol_time=sol_time[a:b])
            if e >= 0 else _Solutions(values=values[:1], valid=valid[:1], sol_time=sol_time[:1])
            for a, b, e in zip(first, last, end)]


def _table_block(times, freqs, sols, *, shape, sol_freq, interp, freq_linear, hand_index,
                 delay_ref, propagate):
    linear = interp != "nearest"      # a delay table has no per-scan rates: hermite is linear
    nant, nsf, nh = shape
    nt = times.shape[0]
    if delay_ref is not None:
        values, valid, sol_time = sols.values, sols.valid, sols.sol_time
        nsol = values.shape[0]
        delays = np.empty((nt, nant * nh))
        tflag = np.ones((nt, nant * nh), dtype=bool)
        flat = values[:, :, 0, :].reshape(nsol, -1).real
        ok = valid[:, :, 0, :].reshape(nsol, -1)
        for c in range(flat.shape[1]):
            if ok[:, c].any():
                x, y = sol_time[ok[:, c]], flat[ok[:, c], c]
                delays[:, c] = (np.interp(times, x, y) if linear else
                                y[np.abs(times[:, None] - x[None, :]).argmin(axis=1)])
                tflag[:, c] = False
        delays = delays.reshape(nt, nant, 1, nh)
        jones = np.exp(2j * np.pi * delays * (freqs - delay_ref)[None, None, :, None])
        jflag = np.broadcast_to(tflag.reshape(nt, nant, 1, nh), jones.shape)
    else:
        if interp == "hermite":
            vt, ft = K.interpolate_nodes(sols.nodes, sols.present, times)
        else:
            nsol = sols.values.shape[0]
            vt, ft = K.interpolate_time(sols.values.reshape(nsol, -1).astype(np.complex128),
                                        sols.valid.reshape(nsol, -1), sols.sol_time, times,
                                        linear, propagate)
        vt = vt.reshape(nt, nant, nsf, nh)
        ft = ft.reshape(nt, nant, nsf, nh)
        if nsf == 1:
            jones = np.broadcast_to(vt, (nt, nant, freqs.size, nh))
            jflag = np.broadcast_to(ft, jones.shape)
        elif (same := _same_channels(sol_freq, freqs)) is not None:
            jones, jflag = vt[:, :, same], ft[:, :, same]
        else:
            # the kernel walks both axes upwards: descending channels go through it ascending
            up = np.argsort(freqs, kind="stable")
            jv, jf = K.interpolate_frequency(
                vt.transpose(0, 1, 3, 2).reshape(-1, nsf, 1),
                ~ft.transpose(0, 1, 3, 2).reshape(-1, nsf, 1), sol_freq, freqs[up], freq_linear)
            back = np.argsort(up)
            jones = jv[:, back].reshape(nt, nant, nh, freqs.size).transpose(0, 1, 3, 2)
            jflag = jf[:, back].reshape(nt, nant, nh, freqs.size).transpose(0, 1, 3, 2)
    jones = np.array(jones[..., hand_index], dtype=np.complex128)
    jones[np.asarray(jflag)[..., hand_index]] = np.nan
    return jones


def table_jones(ds: xr.Dataset, term: ApplyTable) -> da.Array:
    """One term's Jones on the data grid: complex128 (time, antenna, frequency, hand).

    NaN marks samples without a valid solution. Lazy; chunked like the data along time.
    """
    times, freqs, sols, kwargs = _table_inputs(ds, term)
    nant = kwargs["shape"][0]
    # one block per (time chunk, channel chunk) of the data: the terms of a chunk are as small
    # as its antennas, whatever the length of the observation or the width of the band
    return da.blockwise(
        _table_block, "tafh", times, "t", freqs, "f", sols, "t",
        new_axes={"a": nant, "h": len(kwargs["hand_index"])}, align_arrays=False,
        dtype=np.complex128, meta=np.empty((0, 0, 0, 0), np.complex128), **kwargs)


def _table_inputs(ds: xr.Dataset, term: ApplyTable):
    """What :func:`_table_block` takes for each block of ``ds``'s data: times (dask, by time
    chunk), frequencies (dask, by channel chunk), the solutions that reach each time chunk
    (a blockwise literal) and its keyword arguments."""
    tds = select_table_spw(term.table, ds, term.spwmap)
    # variables, not tds[name]: a DataArray costs ~0.1 ms to make, and this runs for every
    # partition and table (a scan-rich MS: thousands of times)
    tv, dv = tds.variables, ds.variables
    cal_type = tds.attrs[C.ATTR_CAL_TYPE]
    rows = _field_rows(tds, ds, term.gainfield)
    if not rows.any():
        raise InputError(f"no {cal_type} solutions for field {ds.attrs.get(S.ATTR_FIELD_NAME)!r}"
                         f" (gainfield={term.gainfield!r})")
    hands, _, _, _ = data_hands(ds)
    table_hands = [str(h) for h in tv[C.HAND].values]
    if table_hands == ["I"]:
        hand_index = np.zeros(len(hands), dtype=np.int64)
    else:
        missing = [h for h in hands if h not in table_hands]
        if not missing:
            hand_index = np.array([table_hands.index(h) for h in hands], dtype=np.int64)
        elif len(table_hands) == 2 and len(hands) <= 2:
            # CASA tables rarely record the feed basis; like CASA, match hands by position
            order = ("R", "L") if set(hands) <= {"R", "L"} else ("X", "Y")
            hand_index = np.array([order.index(h) for h in hands], dtype=np.int64)
        else:
            raise InputError(f"{cal_type} table has hands {table_hands}, data needs {missing}")
    var = C.DELAY if cal_type == "K" else C.GAIN
    sol_time = tv[C.SOL_TIME].values[rows]
    order = np.argsort(sol_time, kind="stable")
    segment = _solution_segments(sol_time[order], tv[C.SOL_SCAN].values[rows][order],
                                 tv[C.SOL_INTERVAL].values[rows][order])
    # The interpolators want ascending solution frequencies; a band written high to low
    # (ATCA's CABB, many LSB setups) gives a table in that order
    sol_freq = tv[C.SOL_FREQ].values.astype(np.float64)
    by_freq = np.argsort(sol_freq, kind="stable")
    # kept in the table's precision (complex64 gains) until a block interpolates: half the graph
    values = np.asarray(tv[var].values[rows][order])[:, :, by_freq]
    valid = ~np.asarray(tv[C.SOL_FLAG].values[rows][order], dtype=bool)[:, :, by_freq]
    vis = dv[S.VISIBILITY].data
    tchunks = vis.chunks[0] if isinstance(vis, da.Array) else (ds.sizes[S.TIME],)
    fchunks = vis.chunks[2] if isinstance(vis, da.Array) else (ds.sizes[S.FREQUENCY],)
    all_times = dv[S.TIME].values.astype(np.float64)
    times = graph.per_block(all_times, tchunks)
    freqs = dv[S.FREQUENCY].values.astype(np.float64)
    nsol, nant, nsf, nh = values.shape
    delay = cal_type == "K"
    delay_ref = float(tds.attrs.get(C.ATTR_DELAY_REF, freqs[0])) if delay else None
    sol_time = sol_time[order]
    if term.interp == "hermite" and not delay:
        # a node's phase is unwrapped against every earlier node: made once, sliced after
        table = K.hermite_nodes(values.reshape(nsol, -1).astype(np.complex128),
                                valid.reshape(nsol, -1), sol_time, segment)
    else:
        table = values
    # each time block carries only the solutions that can reach it: with the whole table in
    # every block the graph grew as blocks x solutions (11.7 MiB for a VLA-like x4 calibrate)
    edges = np.cumsum((0,) + tuple(tchunks))
    blocks = _block_solutions(table, valid, sol_time, edges, all_times, term.interp,
                              bool(term.propagate_flags), delay)
    # handed to each block's task as a literal of its own: as a dask array of their own, the
    # slices were one more task per block
    sols = graph.PerBlock((tuple(tchunks),), blocks, tokenize(
        values, valid, sol_time, segment, term.interp, term.propagate_flags, delay, all_times,
        tchunks))
    return times, graph.per_block(freqs, fchunks), sols, dict(
        shape=(nant, nsf, nh), sol_freq=sol_freq[by_freq], interp=term.interp,
        freq_linear=term.freq_interp == "linear", hand_index=hand_index, delay_ref=delay_ref,
        propagate=bool(term.propagate_flags))


def _chain_block(shape, *blocks, terms, flagged=None):
    jones = None
    for k, kwargs in enumerate(terms):
        j = _table_block(*blocks[3 * k:3 * k + 3], **kwargs)
        jones = j if jones is None else jones * j
    return jones if flagged is None else np.where(np.isfinite(jones), jones, flagged)


def chain_in_blocks(ds: xr.Dataset, chain, flagged=None) -> graph.InBlocks:
    """:func:`chain_jones`'s product as a recipe (:class:`radiocal.calibration.graph.InBlocks`)
    for a kernel's task to make its block's terms itself, in the data's chunks: as arrays of
    their own, the terms, their product, its flags and their replacement were five tasks more
    per chunk (2300 of the 4300 tasks of a VLA-like x4 calibrate's apply). ``flagged``: the
    value of samples without a valid solution (None: NaN)."""
    inputs, terms = [], []
    for term in chain:
        times, freqs, sols, kwargs = _table_inputs(ds, term)
        inputs += [(times, "t"), (freqs, "f"), (sols, "t")]
        terms.append(kwargs)
    return graph.InBlocks(_chain_block, tuple(inputs), {"terms": tuple(terms),
                                                       "flagged": flagged})


def chain_jones(ds: xr.Dataset, chain):
    """Product of the terms of ``chain`` on ``ds``'s grid, and where it is invalid.

    Returns
    -------
    jones : complex128 dask array (time, antenna, frequency, hand), NaN where flagged
    jflag : bool dask array, same shape
    """
    jones = None
    for term in chain:
        j = table_jones(ds, term)
        jones = j if jones is None else jones * j
    return jones, ~da.isfinite(jones)


def apply(datasets, chain, calwt=False) -> list[xr.Dataset]:
    """Calibrate ``VISIBILITY`` into ``VISIBILITY_CORRECTED`` through a chain of tables.

    Parameters
    ----------
    datasets : list of xarray.Dataset
    chain : sequence of ApplyTable, or a callable ``ds -> sequence of ApplyTable``
        The callable form lets calibrators and targets take different chains.
    calwt : bool
        Scale ``WEIGHT`` by ``|J_p J_q|^2``.

    Returns
    -------
    list of xarray.Dataset
        With ``VISIBILITY_CORRECTED`` (complex64), ``FLAG`` (solution flags added) and, with
        ``calwt``, the scaled ``WEIGHT``.
    """
    out = []
    for ds in datasets:
        terms = chain(ds) if callable(chain) else chain
        if not terms:
            raise ConfigError("apply: the chain of calibration tables is empty")
        _, hand1, hand2, _ = data_hands(ds)
        vis, flag, weight = graph.apply(
            ds[S.VISIBILITY].data, ds[S.FLAG].data, ds[S.WEIGHT].data,
            chain_in_blocks(ds, terms), None, ds[S.BASELINE_ANTENNA1].values,
            ds[S.BASELINE_ANTENNA2].values, hand1, hand2, calwt)
        dims = ds[S.VISIBILITY].dims
        new = {S.VISIBILITY_CORRECTED: (dims, vis), S.FLAG: (dims, flag)}
        if calwt:
            new[S.WEIGHT] = (dims, weight)
        # else the weights are the input's, value for value: keeping the very array tells the
        # store (and the pipeline's backups) that nothing there needs writing
        out.append(ds.assign(new))
    return out
