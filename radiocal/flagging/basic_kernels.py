"""Numba kernels for the non-statistical flaggers: clip, shadowing, quack, antenna health.

Plain numpy in, numpy out; ``graph.py`` maps them over dask blocks. Each takes its flagger's
options whole (a dataclass of ``params.py``) and hands its jitted part their
:func:`radiocal._numba.record`. Elevations are astronomy, not a kernel:
:func:`radiocal.astro.elevation`.
"""

from __future__ import annotations

import math

import numpy as np

from radiocal import nanstats
from radiocal._numba import njit, record
from radiocal.flagging.robust import median_scratch

# Reasons a sample is clipped, as indices of the counts returned by :func:`clip_block`
CLIP_NONFINITE, CLIP_ZERO_WEIGHT, CLIP_ZERO, CLIP_RANGE = 0, 1, 2, 3


def clip_block(vis, weight, flag, params):
    """Flag non-finite, zero-weight, exactly-zero and out-of-range samples.

    Parameters
    ----------
    vis : ndarray, complex, shape (time, baseline, frequency, polarization)
    weight : ndarray, float, shape (time, baseline, frequency, polarization)
    flag : ndarray, bool, shape (time, baseline, frequency, polarization)
    params : radiocal.flagging.params.ClipParams
        Keep ``min_amplitude <= |V| <= max_amplitude`` (0 and inf disable); ``zeros``: flag
        samples whose real and imaginary parts are both exactly 0.

    A zero (or negative, or non-finite) weight flags its sample only on a baseline and
    correlation with a positive weight in the block: a plane without one carries no weights
    at all (see ``_weighted_planes``). The flagging pass holds whole planes (every time and
    channel), so this is the partition's plane.

    Returns
    -------
    flags : ndarray, bool, same shape
        ``flag`` OR the clipped samples.
    counts : ndarray, int64, shape (4,)
        Newly flagged samples by reason: non-finite, zero weight (or non-finite weight), exact zero,
        amplitude range. A sample is counted under the first reason that applies.
    """
    return _clip_flags(vis, weight, flag, record(params))


@njit
def _clip_flags(vis, weight, flag, p):
    """:func:`clip_block` (``p``: its options' record)."""
    out = flag.copy()
    counts = np.zeros(4, np.int64)
    _, n_b, n_f, n_p = vis.shape
    weighted = _weighted_planes(weight)
    flat_v = vis.ravel()
    flat_w = weight.ravel()
    flat_f = flag.ravel()
    flat_o = out.ravel()
    for i in range(flat_v.size):
        v = flat_v[i]
        w = flat_w[i]
        reason = -1
        if not (math.isfinite(v.real) and math.isfinite(v.imag)):
            reason = CLIP_NONFINITE
        # the sample's plane (baseline, correlation) only for a weight that is not positive:
        # one loop over the flat arrays, which nested loops over (t, b, f, c) made 1.5x slower
        elif not (math.isfinite(w) and w > 0.0) and weighted[(i // (n_f * n_p)) % n_b, i % n_p]:
            reason = CLIP_ZERO_WEIGHT
        elif p.zeros and v.real == 0.0 and v.imag == 0.0:
            reason = CLIP_ZERO
        else:
            a = math.sqrt(v.real * v.real + v.imag * v.imag)
            if a < p.min_amplitude or a > p.max_amplitude:
                reason = CLIP_RANGE
        if reason >= 0:
            if not flat_f[i]:
                counts[reason] += 1
            flat_o[i] = True
    return out, counts


@njit
def _weighted_planes(weight):
    """Bool (baseline, polarization): whether any weight of the plane is positive and finite.

    Where none is, the weights say nothing: converters write one zero, or junk (ATA files
    -1.2e12), for every sample, and AOFlagger and CASA's flagdata ignore weights; a plane's
    zero weights flag it only where others of the plane are positive. A plane's search stops at
    its first positive weight, the first sample of nearly every plane.
    """
    n_t, n_b, n_f, n_p = weight.shape
    weighted = np.zeros((n_b, n_p), np.bool_)
    for b in range(n_b):
        for c in range(n_p):
            for t in range(n_t):
                for f in range(n_f):
                    w = weight[t, b, f, c]
                    if math.isfinite(w) and w > 0.0:
                        weighted[b, c] = True
                        break
                if weighted[b, c]:
                    break
    return weighted


def shadow_block(uvw, antenna1, antenna2, diameter, params):
    """Antennas shadowed by another antenna, from each baseline's projected separation.

    Antenna ``q`` of baseline ``(p, q)`` with UVW = X_q - X_p is behind ``p`` (further from the
    source) when ``w < 0``; it is shadowed when ``sqrt(u^2 + v^2) < (D_p + D_q)/2 - tolerance``.

    Parameters
    ----------
    uvw : ndarray, float64, shape (time, baseline, uvw_label)
    antenna1, antenna2 : ndarray, int, shape (baseline,)
    diameter : ndarray, float64, shape (antenna,)
        Dish diameters in metres.
    params : radiocal.flagging.params.ShadowParams
        ``tolerance``: metres of overlap allowed before an antenna counts as shadowed.

    Returns
    -------
    ndarray, bool, shape (time, baseline)
        True where either antenna of the baseline is shadowed at that time.
    """
    return _shadowed(uvw, antenna1, antenna2, diameter, record(params))


@njit
def _shadowed(uvw, antenna1, antenna2, diameter, options):
    """:func:`shadow_block` (``options``: their record)."""
    tolerance = options.tolerance
    n_t, n_b, _ = uvw.shape
    n_ant = diameter.shape[0]
    out = np.zeros((n_t, n_b), np.bool_)
    shadowed = np.zeros(n_ant, np.bool_)
    for t in range(n_t):
        shadowed[:] = False
        for b in range(n_b):
            p = antenna1[b]
            q = antenna2[b]
            if p == q:
                continue
            u, v, w = uvw[t, b, 0], uvw[t, b, 1], uvw[t, b, 2]
            if not (math.isfinite(u) and math.isfinite(v) and math.isfinite(w)):
                continue
            if u == 0.0 and v == 0.0 and w == 0.0:
                continue  # a missing row, not a collision
            if math.sqrt(u * u + v * v) < 0.5 * (diameter[p] + diameter[q]) - tolerance:
                shadowed[q if w < 0.0 else p] = True
        for b in range(n_b):
            out[t, b] = shadowed[antenna1[b]] or shadowed[antenna2[b]]
    return out


def quack_times(times, interval, scan_start, scan_end, params):
    """Times within ``begin_seconds`` of the scan start or ``end_seconds`` of the scan end.

    Parameters
    ----------
    times : ndarray, float64, shape (time,)
        Integration centres (MJD seconds).
    interval : ndarray, float64, shape (time,)
        Integration lengths (s).
    scan_start, scan_end : float
        Start of the first and end of the last integration of the scan.
    params : radiocal.flagging.params.QuackParams
        ``begin_seconds``, ``end_seconds``.

    Returns
    -------
    ndarray, bool, shape (time,)
    """
    return _quacked(times, interval, scan_start, scan_end, record(params))


@njit
def _quacked(times, interval, scan_start, scan_end, p):
    """:func:`quack_times` (``p``: its options' record)."""
    begin_seconds, end_seconds = p.begin_seconds, p.end_seconds
    out = np.zeros(times.shape[0], np.bool_)
    for i in range(times.shape[0]):
        start = times[i] - 0.5 * interval[i]
        end = times[i] + 0.5 * interval[i]
        # An integration is quacked if any part of it lies in the quacked stretch (CASA semantics).
        if begin_seconds > 0.0 and start < scan_start + begin_seconds - 1e-6:
            out[i] = True
        if end_seconds > 0.0 and end > scan_end - end_seconds + 1e-6:
            out[i] = True
    return out


def baseline_stats(vis, flag, params):
    """Per baseline and correlation: median amplitude and median coherence over a block.

    Coherence is that of neighbouring channels, ``|sum V_f conj(V_g)| / sum |V_f| |V_g|`` over
    the pairs of successive unflagged channels ``g, f`` in runs of ``channel_window`` of one
    integration: :func:`coherence_floor` for pure noise, near 1 for a detected signal. It tells
    a dead antenna from a live one even when their amplitudes match (both noise-like amplitudes
    at the same level). Of neighbours, not ``|sum V| / sum |V|``: a steady fringe along
    frequency (a delay; a bright source far from the phase centre on a long baseline) turns
    ``V`` across the run but not ``V_f conj(V_g)``. With 8 channels of 574 kHz under an
    LWA-like sky (1 integration, 24 dipoles), the plain sum judged 6-13 of 276 live baselines
    dead; with 16 or more channels (narrower), none.

    Parameters
    ----------
    vis : ndarray, complex, shape (time, baseline, frequency, polarization)
    flag : ndarray, bool, shape (time, baseline, frequency, polarization)
    params : radiocal.flagging.params.AntennaHealthParams
        Its ``channel_window``.

    Returns
    -------
    ndarray, float64, shape (baseline, polarization, 3)
        [..., 0] median |V|, [..., 1] median coherence (NaN when no unflagged data), [..., 2]
        the number of runs the coherence is the median of.
    """
    return _baseline_stats(vis, flag, record(params))


@njit
def _baseline_stats(vis, flag, p):
    """:func:`baseline_stats` (``p``: the antenna health options' record)."""
    channel_window = p.channel_window
    n_t, n_b, n_f, n_p = vis.shape
    out = np.full((n_b, n_p, 3), np.nan)
    amps = np.empty(n_t * n_f)
    cohs = np.empty(n_t * (n_f // max(channel_window, 1) + 1))
    for b in range(n_b):
        for p in range(n_p):
            na = 0
            nc = 0
            for t in range(n_t):
                sr = si = sa = 0.0
                ur = ui = ua = 0.0   # the previous unflagged sample of the run
                k = 0
                for f in range(n_f):
                    if flag[t, b, f, p]:
                        continue
                    v = vis[t, b, f, p]
                    a = math.sqrt(v.real * v.real + v.imag * v.imag)
                    if not math.isfinite(a):
                        continue
                    amps[na] = a
                    na += 1
                    if k > 0:
                        # v conj(u)
                        sr += v.real * ur + v.imag * ui
                        si += v.imag * ur - v.real * ui
                        sa += a * ua
                    ur, ui, ua = v.real, v.imag, a
                    k += 1
                    if k == channel_window:
                        if sa > 0.0:
                            cohs[nc] = math.sqrt(sr * sr + si * si) / sa
                            nc += 1
                        sr = si = sa = 0.0
                        k = 0
            # median_scratch, not np.median: the same values (the mean of the two middle
            # ones as (a + b) / 2 is 0.5 (a + b)), and numba's median, its partition and
            # selections compiled in ~2.5 CPU-s of a cold run (median_scratch is the flag
            # detectors' already). Reorders the scratch buffers, rewritten for each plane.
            if na > 0:
                out[b, p, 0] = median_scratch(amps, na)
            if nc > 0:
                out[b, p, 1] = median_scratch(cohs, nc)
            out[b, p, 2] = nc
    return out


# A baseline is judged dead on its own only from the median of at least this many runs: one run
# is one number, which RFI inside it (antenna health runs before the detectors) decides.
MIN_BASELINE_RUNS = 3


def coherence_floor(channel_window):
    """The mean coherence of pure noise in :func:`baseline_stats`: the ``m = channel_window - 1``
    products of neighbours are uncorrelated, each of mean modulus ``pi sigma^2 / 4``, so their
    sum is ~complex normal of mean modulus ``sqrt(pi m) sigma^2 / 2``: ``2 / sqrt(pi m)``."""
    return 2.0 / math.sqrt(math.pi * max(channel_window - 1, 1))


def health_decision(stats, antenna1, antenna2, n_antenna, params):
    """Decide which antennas and baselines are dead or far outside their peers.

    Plain numpy on the small per-baseline statistics of :func:`baseline_stats`.

    Deadness is judged on the coherence, which no gain changes. Amplitudes are judged, when
    every judged antenna's autocorrelation is among the statistics, as the normalised correlation
    ``|V_pq| / sqrt(V_pp V_qq)`` (of the medians): an antenna's gain cancels, so a live antenna
    of low gain (a smaller dish of a mixed array, a receiver's attenuator: calibration fixes
    both) is no outlier, while one whose crosses hold more or less than its power predicts is.
    Without autocorrelations, the raw amplitudes, which differ by gain as well.

    Parameters
    ----------
    stats : ndarray, float64, shape (baseline, polarization, 3)
        Median amplitude and coherence of the parallel-hand correlations, and the number of
        runs of the coherence (:func:`baseline_stats`).
    antenna1, antenna2 : ndarray, int, shape (baseline,)
    n_antenna : int
    params : radiocal.flagging.params.AntennaHealthParams
        ``channel_window``: the window :func:`baseline_stats` used (sets the noise-only
        coherence 1/sqrt(window)); ``dead_fraction``: an antenna (baseline) is dead when its
        coherence excess over noise is below this fraction of its peers' (of its two
        antennas'); ``min_coherence_excess``: peers must show at least this excess (0..1) for
        deadness to be decidable at all (in a noise-dominated field every antenna looks dead);
        ``amplitude_factor``, ``amplitude_sigma``: an antenna is an amplitude outlier when its
        median log amplitude (normalised or raw) is more than ``log(amplitude_factor)`` and
        ``amplitude_sigma`` robust sigmas from the peers' median.

    Returns
    -------
    bad_baseline : ndarray, bool, shape (baseline,)
    bad_antenna : ndarray, bool, shape (antenna,)
    """
    dead_fraction, min_coherence_excess = params.dead_fraction, params.min_coherence_excess
    # Baselines with no unflagged data have NaN statistics; they simply carry no vote.
    amp = nanstats.nanmedian(stats[..., 0], axis=1)
    coh = nanstats.nanmedian(stats[..., 1], axis=1)
    floor = coherence_floor(params.channel_window)
    excess = (coh - floor) / (1.0 - floor)
    log_amp = np.log(np.where(amp > 0, amp, np.nan))
    runs = np.nan_to_num(nanstats.nanmin(stats[..., 2], axis=1))
    cross = antenna1 != antenna2
    auto_log_amp = np.full(n_antenna, np.nan)
    auto_log_amp[antenna1[~cross]] = log_amp[~cross]
    # log |V_pq| / sqrt(V_pp V_qq)
    log_corr = log_amp - 0.5 * (auto_log_amp[antenna1] + auto_log_amp[antenna2])
    ant_excess = np.full(n_antenna, np.nan)
    ant_log_amp = np.full(n_antenna, np.nan)
    ant_log_corr = np.full(n_antenna, np.nan)
    for a in range(n_antenna):
        mine = cross & ((antenna1 == a) | (antenna2 == a))
        if mine.any() and np.isfinite(excess[mine]).any():
            ant_excess[a] = nanstats.nanmedian(excess[mine])
            ant_log_amp[a] = nanstats.nanmedian(log_amp[mine])
            ant_log_corr[a] = nanstats.nanmedian(log_corr[mine])   # NaN without autos
    # Normalised only when every judged antenna has it: raw and normalised do not compare.
    normalised = np.isfinite(ant_log_corr[np.isfinite(ant_log_amp)]).all()
    bad_antenna = np.zeros(n_antenna, bool)
    if np.isfinite(ant_excess).sum() >= 3:
        peers = nanstats.nanmedian(ant_excess)
        if peers > min_coherence_excess:
            bad_antenna |= np.nan_to_num(ant_excess, nan=np.inf) < dead_fraction * peers
        judged = ant_log_corr if normalised else ant_log_amp
        deviation = judged - nanstats.nanmedian(judged)
        spread = 1.4826 * nanstats.nanmedian(np.abs(deviation))
        limit = max(np.log(params.amplitude_factor), params.amplitude_sigma * spread)
        bad_antenna |= np.nan_to_num(np.abs(deviation), nan=0.0) > limit
    bad_baseline = bad_antenna[antenna1] | bad_antenna[antenna2]
    expected = np.minimum(ant_excess[antenna1], ant_excess[antenna2])
    with np.errstate(invalid="ignore"):
        dead_baseline = (cross & (expected > min_coherence_excess)
                         & (excess < dead_fraction * expected) & (runs >= MIN_BASELINE_RUNS))
    return bad_baseline | dead_baseline, bad_antenna
