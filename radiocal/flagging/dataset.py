"""Flaggers on canonical datasets: each takes a partition and returns it with an updated ``FLAG``.

Flags only ever grow here (a flagger ORs its detections into ``FLAG``); nothing computes. Every
function accepts lazy (dask) or in-memory partitions and returns ``FLAG`` as a dask array chunked
like the input's ``FLAG``.
"""

from __future__ import annotations

import logging

import dask.array as da
import numpy as np
import xarray as xr

from radiocal import astro
from radiocal.errors import ConfigError
from radiocal.flagging import basic_kernels as bk
from radiocal.flagging import graph
from radiocal.flagging import params as P
from radiocal.flagging.kernels import BY_SUMTHRESHOLD
from radiocal.flagging.spectral import MIN_SEGMENT, segment_edges
from radiocal.store import schema as S

log = logging.getLogger("radiocal.flagging")
# warnings already given in this process (one per array, not one per partition)
_SAID: set[str] = set()

FLAG_DIMS = (S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION)


def _flag(ds: xr.Dataset) -> da.Array:
    flag = ds[S.FLAG]
    if tuple(flag.dims) != FLAG_DIMS:
        raise ConfigError(f"FLAG has dims {flag.dims}, expected {FLAG_DIMS}")
    n_pol = flag.sizes[S.POLARIZATION]
    if n_pol not in (1, 2, 4):
        raise ConfigError(f"{n_pol} correlations: only 1, 2 or 4 are supported")
    return graph.as_dask(flag.data)


def _column(ds: xr.Dataset, column: str, flag: da.Array) -> da.Array:
    if column not in S.VISIBILITY_VARS:
        raise ConfigError(f"column {column!r} is not one of {', '.join(S.VISIBILITY_VARS)}")
    if column not in ds:
        raise ConfigError(f"partition {ds.attrs.get(S.ATTR_PARTITION, '?')} has no {column}")
    return graph.as_dask(ds[column].data, flag.chunks)


def small(ds: xr.Dataset, name: str) -> np.ndarray:
    """A small coordinate (antenna table, baseline map, times) as numpy.

    Stores hand these over lazily; they are metadata, not visibilities, so they are read here
    with the synchronous scheduler rather than sent through whatever cluster is configured.
    """
    data = ds[name].data
    if isinstance(data, da.Array):
        return np.asarray(data.compute(scheduler="sync"))
    return np.asarray(data)


def with_flags(ds: xr.Dataset, flag: da.Array) -> xr.Dataset:
    """``ds`` with ``FLAG`` replaced by ``flag`` (same dims, coords and attrs)."""
    # a Variable, not a DataArray: nothing to align (xarray aligning the coordinates of a
    # DataArray cost half of the ~1.4 ms this takes, paid by every flagger on every partition)
    return ds.assign({S.FLAG: ds[S.FLAG].variable.copy(deep=False, data=flag)})


def new_counts(stages: list) -> list:
    """Samples newly flagged from each flag array of ``stages`` to the next (all chunked alike),
    as lazy scalars: one pass over them all and one sum, not a reduction per step (each costs
    ~5 ms of graph building and several tasks per partition; a scan-rich MS has hundreds)."""
    return _block_counts(_count_new_block, stages, len(stages) - 1)


def flagged_counts(flags: list) -> list:
    """Samples flagged in each of ``flags`` (all chunked alike), as lazy scalars from one pass."""
    return _block_counts(_count_block, flags, len(flags))


def _block_counts(count, flags: list, n: int) -> list:
    if n < 1:
        return []
    first = flags[0]
    per_block = da.map_blocks(count, *flags, new_axis=first.ndim,
                              chunks=tuple((1,) * len(c) for c in first.chunks) + ((n,),),
                              dtype=np.int64, meta=np.empty((0,) * (first.ndim + 1), np.int64))
    total = per_block.sum(axis=tuple(range(first.ndim)))
    return [total[i] for i in range(n)]


def _count_new_block(*flags):
    counts = [np.count_nonzero(b & ~a) for a, b in zip(flags, flags[1:])]
    return np.array(counts, np.int64).reshape((1,) * flags[0].ndim + (len(counts),))


def _count_block(*flags):
    counts = [np.count_nonzero(f) for f in flags]
    return np.array(counts, np.int64).reshape((1,) * flags[0].ndim + (len(counts),))


def _or_cells(ds: xr.Dataset, cells: da.Array) -> xr.Dataset:
    """OR a mask over (time, baseline) or (time, baseline, frequency, polarization) into FLAG."""
    flag = _flag(ds)
    if cells.ndim == 2:
        cells = cells[:, :, None, None]
    return with_flags(ds, flag | cells)


def flag_autocorrelations(ds: xr.Dataset) -> xr.Dataset:
    """Flag every baseline whose two antennas are the same."""
    flag = _flag(ds)
    auto = small(ds, S.BASELINE_ANTENNA1) == small(ds, S.BASELINE_ANTENNA2)
    return with_flags(ds, flag | da.from_array(auto)[None, :, None, None])


def flag_antennas(ds: xr.Dataset, antennas) -> xr.Dataset:
    """Flag all baselines of the listed antennas (names or antenna indices)."""
    flag = _flag(ds)
    bad = antenna_mask(ds, antennas)
    a1 = small(ds, S.BASELINE_ANTENNA1)
    a2 = small(ds, S.BASELINE_ANTENNA2)
    return with_flags(ds, flag | da.from_array(bad[a1] | bad[a2])[None, :, None, None])


def antenna_mask(ds: xr.Dataset, antennas) -> np.ndarray:
    """Bool (antenna,): the listed antennas (names or antenna indices)."""
    names = [str(n) for n in small(ds, S.ANTENNA_NAME)]
    bad = np.zeros(len(names), bool)
    for item in antennas:
        if isinstance(item, (int, np.integer)) and 0 <= int(item) < len(names):
            bad[int(item)] = True
        elif str(item) in names:
            bad[names.index(str(item))] = True
        else:
            raise ConfigError(f"unknown antenna {item!r} (antennas: {', '.join(names)})")
    return bad


def flag_shadow(ds: xr.Dataset, params: P.ShadowParams = P.ShadowParams()) -> xr.Dataset:
    """Flag baselines with an antenna shadowed by another (geometry from UVW and dish diameters)."""
    flag = _flag(ds)
    mask = shadow_mask(ds, params, flag.chunks)
    if mask is None:
        return ds
    return _or_cells(ds, mask.rechunk((flag.chunks[0], flag.chunks[1])))


def shadow_mask(ds: xr.Dataset, params: P.ShadowParams, chunks):
    """Lazy (time, baseline) mask of shadowed baselines, in the time and baseline ``chunks`` of
    the flags; None when the dish diameters cannot be physical: two dishes whose centres are
    closer than their diameters would overlap (PAPER's files say 25 m for dipoles 25 m apart),
    so the shadows they would cast say nothing."""
    a1, a2 = small(ds, S.BASELINE_ANTENNA1), small(ds, S.BASELINE_ANTENNA2)
    diameter = np.asarray(small(ds, S.ANTENNA_DIAMETER), np.float64)
    overlap = _overlapping_dishes(ds, a1, a2, diameter)
    if overlap:
        if overlap not in _SAID:   # once, not once per partition of the same array
            _SAID.add(overlap)
            log.warning("shadow: skipped: %s", overlap)
        return None
    uvw = graph.as_dask(ds[S.UVW].data, (chunks[0], chunks[1], 3))
    return graph.shadow_flags(uvw, a1, a2, diameter, params)


def _overlapping_dishes(ds, antenna1, antenna2, diameter) -> str:
    """Why the dish diameters cannot be physical ('' when they can): the closest pair of
    antennas of a cross-correlation whose dishes, that far apart, would overlap."""
    if S.ANTENNA_POSITION not in ds.coords:
        return ""
    position = np.asarray(small(ds, S.ANTENNA_POSITION), np.float64)
    a1, a2 = np.asarray(antenna1, np.int64), np.asarray(antenna2, np.int64)
    cross = a1 != a2
    a1, a2 = a1[cross], a2[cross]
    apart = np.linalg.norm(position[a1] - position[a2], axis=-1)
    span = 0.5 * (diameter[a1] + diameter[a2])
    over = np.flatnonzero(apart < span)
    if not over.size:
        return ""
    k = over[np.argmin(apart[over])]
    names = small(ds, S.ANTENNA_NAME) if S.ANTENNA_NAME in ds.coords else range(len(diameter))
    return (f"antennas {names[a1[k]]} and {names[a2[k]]} are {apart[k]:.1f} m apart, their dishes "
            f"{diameter[a1[k]]:g} and {diameter[a2[k]]:g} m: the ANTENNA table's DISH_DIAMETER "
            "cannot be the dishes'")


def flag_quack(ds: xr.Dataset, params: P.QuackParams = P.QuackParams()) -> xr.Dataset:
    """Flag integrations within ``params.begin_seconds`` of the scan start or
    ``params.end_seconds`` of its end.

    A partition is one scan, so its time axis spans the scan.
    """
    flag = _flag(ds)
    times = np.asarray(small(ds, S.TIME), np.float64)
    if S.INTEGRATION_TIME in ds.coords:
        interval = np.asarray(small(ds, S.INTEGRATION_TIME), np.float64)
    else:
        interval = np.full(times.shape, np.median(np.diff(times)) if times.size > 1 else 0.0)
    start = float(np.min(times - 0.5 * interval))
    end = float(np.max(times + 0.5 * interval))
    quack = bk.quack_times(times, interval, start, end, params)
    mask = da.from_array(quack, chunks=(flag.chunks[0],))
    return with_flags(ds, flag | mask[:, None, None, None])


def antenna_elevation(ds: xr.Dataset) -> np.ndarray:
    """Elevation (radians) of the partition's phase centre per (time, antenna).

    One astropy transform of the scan's times (precession and nutation included), computed while
    the graph is built: (time, antenna) is small.
    """
    ra, dec = (float(x) for x in ds.attrs[S.ATTR_PHASE_CENTER])
    return astro.elevation(np.asarray(small(ds, S.TIME), np.float64),
                           np.asarray(small(ds, S.ANTENNA_POSITION), np.float64), ra, dec)


def flag_elevation(ds: xr.Dataset, params: P.ElevationParams = P.ElevationParams()) -> xr.Dataset:
    """Flag baselines where either antenna sees the phase centre outside [min, max] degrees."""
    flag = _flag(ds)
    elev = np.degrees(antenna_elevation(ds))
    outside = (elev < params.min_elevation) | (elev > params.max_elevation)
    a1 = small(ds, S.BASELINE_ANTENNA1)
    a2 = small(ds, S.BASELINE_ANTENNA2)
    mask = da.from_array(outside[:, a1] | outside[:, a2], chunks=(flag.chunks[0], flag.chunks[1]))
    return _or_cells(ds, mask)


def flag_manual(ds: xr.Dataset, selection, reference_time: float | None = None) -> xr.Dataset:
    """Flag everything ``selection`` (a :class:`radiocal.select.selection.Selection`) selects."""
    from radiocal.select.selection import selection_mask

    flag = _flag(ds)
    mask = selection_mask(ds, selection, reference_time=reference_time)
    return with_flags(ds, flag | graph.as_dask(mask.data).rechunk(flag.chunks))


def flag_clip(ds: xr.Dataset, params: P.ClipParams = P.ClipParams(), column: str = S.VISIBILITY):
    """Flag NaN/Inf, zero-weight, exactly-zero and out-of-range samples.

    Returns
    -------
    ds : xarray.Dataset
    counts : dask.array, int64, shape (4,)
        Newly flagged samples: non-finite, zero weight, exact zero, amplitude range.
    """
    flag = _flag(ds)
    vis = _column(ds, column, flag)
    weight = graph.as_dask(ds[S.WEIGHT].data, flag.chunks)
    flags, counts = graph.clip_flags(vis, weight, flag, params)
    return with_flags(ds, flags), counts


def flag_sumthreshold(ds: xr.Dataset, params: P.SumThresholdParams = P.SumThresholdParams(),
                      column: str = S.VISIBILITY) -> xr.Dataset:
    """AOFlagger-style SumThreshold per baseline and correlation.

    Parameters are those of :func:`radiocal.flagging.kernels.sumthreshold_block`; each partition's
    whole time axis is processed at once (see ``graph.py``).
    """
    flag = _flag(ds)
    vis = _column(ds, column, flag)
    return with_flags(ds, graph.sumthreshold_flags(vis, flag, params))


def flag_mad(ds: xr.Dataset, params: P.MadParams = P.MadParams(),
             column: str = S.VISIBILITY) -> xr.Dataset:
    """rflag-like sliding-window MAD flagging of residuals (see ``kernels.mad_block``)."""
    flag = _flag(ds)
    vis = _column(ds, column, flag)
    return with_flags(ds, graph.mad_flags(vis, flag, params))


def flag_sumthreshold_mad(ds: xr.Dataset, sumthreshold: P.SumThresholdParams, mad: P.MadParams,
                          column: str = S.VISIBILITY) -> tuple[xr.Dataset, xr.Dataset]:
    """:func:`flag_sumthreshold` with ``sumthreshold``, then :func:`flag_mad` with ``mad``, in
    one pass over the visibilities (``kernels.sumthreshold_mad_block``: the same flags, MAD
    reusing SumThreshold's last background where it would fit the same one).

    Returns
    -------
    after_sumthreshold, after_mad : xarray.Dataset
        The partition with SumThreshold's flags, and with both flaggers' flags; they share the
        one computation.
    """
    flag = _flag(ds)
    vis = _column(ds, column, flag)
    code = graph.sumthreshold_mad_codes(vis, flag, sumthreshold, mad)
    return with_flags(ds, flag | (code == BY_SUMTHRESHOLD)), with_flags(ds, flag | (code > 0))


def flag_spectral(ds: xr.Dataset, params: P.SpectralParams = P.SpectralParams(),
                  column: str = S.VISIBILITY) -> xr.Dataset:
    """RFI along frequency, spectrum by spectrum, on the complex visibilities (for scans of few
    integrations; see ``spectral.py``), or on their residuals after ``VISIBILITY_MODEL``
    (``params.subtract_model``: True, False, or "auto": when the partition has a model and
    ``column`` is the calibrated data, in the model's units; on raw data the model's gain along
    frequency is only fitted, and what it leaves, gain error times a bright model, was measured
    to flag more than the model removes)."""
    flag = _flag(ds)
    vis = _column(ds, column, flag)
    edges = spectral_edges(ds, params.widths, params.coarse_channel)
    if subtracts_model(ds, params.subtract_model, column):
        model = _column(ds, S.VISIBILITY_MODEL, flag)
        vis = graph.model_residual(vis, model, flag, params.model_gain_width, edges)
    return with_flags(ds, graph.spectral_flags(vis, flag, params, edges))


def spectral_edges(ds: xr.Dataset, widths, coarse_channel: float = 0.0) -> np.ndarray:
    """The spectral flagger's segment edges on ``ds`` (logged when there are joins); checks
    ``widths``. With ``coarse_channel`` (Hz) the boundaries of coarse channels centred on its
    multiples are joins too (:func:`coarse_channel_starts`)."""
    if not widths:
        raise ConfigError("spectral: at least one kernel width is needed")
    frequency = small(ds, S.FREQUENCY)
    starts = tuple(ds.attrs.get(S.ATTR_SUBBAND_STARTS, ()))
    starts += tuple(coarse_channel_starts(frequency, coarse_channel))
    edges = segment_edges(frequency,
                          small(ds, S.CHANNEL_WIDTH) if S.CHANNEL_WIDTH in ds.coords else None,
                          starts)
    if edges.size > 2:
        log.info("partition %s: spectral backgrounds fitted in %d pieces (sub-band joins at "
                 "channels %s)", ds.attrs.get(S.ATTR_PARTITION, "?"), edges.size - 1,
                 ", ".join(str(e) for e in edges[1:-1]))
    return edges


def coarse_channel_starts(frequency, coarse_channel: float) -> np.ndarray:
    """Where coarse channels of ``coarse_channel`` Hz, centred on its multiples, start (Hz):
    ``(k + 1/2) coarse_channel`` inside the band. A polyphase filterbank's coarse channel has a
    passband of its own (the MWA's 1.28 MHz channels roll off into their edges, one scallop per
    coarse channel), which a fit across the boundaries cannot follow under a bright sky. None
    when ``coarse_channel`` is 0 or a coarse channel holds fewer than
    :data:`radiocal.flagging.spectral.MIN_SEGMENT` channels (averaged data: no scallop left to
    follow, and pieces that short would only weaken the fits)."""
    freq = np.asarray(frequency, np.float64)
    if not coarse_channel > 0.0 or freq.size < 2:
        return np.empty(0)
    spacing = np.median(np.abs(np.diff(freq)))
    if not spacing > 0.0 or coarse_channel / spacing < MIN_SEGMENT:
        return np.empty(0)
    # coarse channel k spans (k -+ 1/2) coarse_channel: the starts between the band's ends
    k = np.arange(np.ceil(freq.min() / coarse_channel - 0.5),
                  np.floor(freq.max() / coarse_channel - 0.5) + 1)
    return (k + 0.5) * coarse_channel


def subtracts_model(ds: xr.Dataset, subtract_model, column: str) -> bool:
    """Whether the spectral flagger works on ``column`` minus VISIBILITY_MODEL (logged)."""
    if subtract_model is True or (subtract_model == "auto" and S.VISIBILITY_MODEL in ds
                                  and column == S.VISIBILITY_CORRECTED):
        log.info("partition %s: spectral flags %s minus VISIBILITY_MODEL (subtract_model: %s)",
                 ds.attrs.get(S.ATTR_PARTITION, "?"), column, subtract_model)
        return True
    return False


def flag_array(ds: xr.Dataset, params: P.ArrayParams = P.ArrayParams()) -> xr.Dataset:
    """Flag a (time, channel, correlation) on every baseline when more than ``params.fraction``
    of the live cross-correlations (not flagged throughout) have it flagged: RFI that most of
    the array sees is there on the rest too, below their detection threshold."""
    flag = _flag(ds)
    fraction = params.fraction
    if fraction >= 1.0:
        return ds
    cross = small(ds, S.BASELINE_ANTENNA1) != small(ds, S.BASELINE_ANTENNA2)
    live = ~flag.all(axis=(0, 2, 3)) & da.from_array(cross, chunks=(flag.chunks[1],))
    n_live = live.sum()
    hits = (flag & live[None, :, None, None]).sum(axis=1)
    common = (hits > fraction * n_live) & (n_live > 0)
    # the flags are read again for the OR: held in memory, all of them would wait for ``common``
    return with_flags(ds, graph.hold(flag) | common[:, None, :, :])


def flag_dilate(ds: xr.Dataset, params: P.DilateParams = P.DilateParams()) -> xr.Dataset:
    """SIR dilation, then extension of mostly-flagged channels/times (``kernels.dilate_block``)."""
    return with_flags(ds, graph.dilate_flags(_flag(ds), params))


def parallel_hands(polarizations) -> np.ndarray:
    """Bool (polarization,): the parallel-hand (or Stokes I) correlations."""
    return np.array([p in ("RR", "LL", "XX", "YY", "I") for p in polarizations], bool)


def flag_antenna_health(ds: xr.Dataset, params: P.AntennaHealthParams = P.AntennaHealthParams(),
                        column: str = S.VISIBILITY) -> xr.Dataset:
    """Flag dead or outlying antennas and dead baselines, plus the user's list of bad antennas
    (``params.antennas``).

    Health comes from the parallel hands (see ``basic_kernels.health_decision``).
    """
    if params.antennas:
        ds = flag_antennas(ds, params.antennas)
    flag = _flag(ds)
    vis = _column(ds, column, flag)
    hands = parallel_hands([str(p) for p in small(ds, S.POLARIZATION)])
    if not hands.any():
        return ds
    idx = np.flatnonzero(hands)
    bad = graph.baseline_health(vis, flag, idx, small(ds, S.BASELINE_ANTENNA1),
                                small(ds, S.BASELINE_ANTENNA2), ds.sizes[S.ANTENNA], params)
    # as flag_array: the flags are read again once every plane's statistics are in
    return with_flags(ds, graph.hold(flag) | bad[None, :, None, None])


def propagate_correlations(ds: xr.Dataset) -> xr.Dataset:
    """Flag a sample in every correlation when it is flagged in any."""
    flag = _flag(ds)
    return with_flags(ds, da.broadcast_to(flag.any(axis=3, keepdims=True), flag.shape,
                                          chunks=flag.chunks))
