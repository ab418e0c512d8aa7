"""Numba kernels for RFI detection along frequency, for scans of few integrations.

With one or a few integrations per scan there is no time axis to fit a background along (the 2-D
detector of ``kernels.py`` then extrapolates and flags nearly everything). Each spectrum (time,
baseline, correlation) is flagged on its own instead, in the complex domain:

* background: a leave-one-out LOESS of the real and imaginary parts along frequency
  (``background.py``), robust (bisquare) in the first iteration. Fitting the complex visibility
  rather than its amplitude keeps RFI visible whatever its phase relative to a bright sky (an
  amplitude hides RFI that is weaker than the source and in quadrature with it);
* its width is chosen per baseline by robust leave-one-out cross-validation among a few widths:
  the median squared prediction error is smallest for the widest kernel that still follows the
  baseline's structure. Fringes of sources far from the phase centre (wide-field, low-frequency
  arrays: fast in frequency on long baselines) and steep bandpasses (wideband receivers) then
  get a narrow kernel; noise-dominated spectra a wide one, which keeps wide RFI visible;
* noise: the squared residual, divided by its prediction variance, is exponential under the null
  for complex Gaussian noise; its scale comes from medians over blocks of channels, interpolated
  (the noise follows the bandpass), and with three or more integrations from the median over
  time (so a broadband burst, which raises a whole spectrum, stands out against its baseline's
  other integrations);
* detection: the power is mapped to a standard normal score (exact under the null, one-sided) and
  SumThreshold runs along frequency with thresholds falling over the iterations, as AOFlagger;
* a baseline's correlation whose phase is incoherent from channel to channel while its
  amplitude is steady (a writer's scrambled signs, fringes beyond a quarter turn per channel)
  has no complex background to fit: it is judged on its amplitude instead, on its rises only
  (``incoherent.py``);
* optionally (``model_residual_block``) all this runs on the data minus a known model times its
  gain along frequency, so bright sources leave a smooth background.

Plain numpy in and out; no dask or xarray.
"""

from __future__ import annotations

import math

import numpy as np

from radiocal._numba import njit, record
from radiocal.flagging.background import _loess, robust_loess_stack
from radiocal.flagging.incoherent import (
    CHI1_LOG_MEDIAN_SPREAD,
    amplitudes,
    as_exponential,
    incoherent_rows,
)
from radiocal.flagging.kernels import _row_peaks, _sumthreshold_rows
from radiocal.flagging.robust import median_scratch

# Acklam's rational approximation of the normal quantile (relative error < 1.2e-9).
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
      3.754408661907416e+00)
_TAIL = 0.02425
# Scores below this are clipped: only excess power is RFI (a too-good fit is not).
_LOWEST_SCORE = -3.0
# Median of an Exp(1) variable.
_LN2 = math.log(2.0)
# Spread of the log of the median of n Exp(1) samples, times sqrt(n): 1 / (2 f(m) m) = 1 / ln 2
# (f(m) = 1/2 the density at the median m = ln 2).
_LOG_MEDIAN_SPREAD = 1.0 / _LN2
# A whole spectrum is raised only this far beyond its level's sampling scatter.
_BURST_SIGMAS = 5.0


@njit
def _tail_quantile(q):
    """Acklam's lower-tail quantile for ``q = sqrt(-2 ln p)``."""
    num = ((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]
    return num / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)


@njit(inline="always")  # the definition; the detector scores rows with _power_scores
def power_score(u):
    """Standard normal score of ``u ~ Exp(1)`` under the null: ``Phi^-1(1 - exp(-u))``.

    The upper tail is computed from ``sqrt(2 u)`` directly, so it neither underflows nor loses
    precision for strong RFI.
    """
    if u > -math.log(_TAIL):
        return -_tail_quantile(math.sqrt(2.0 * u))
    p = -math.expm1(-u)  # lower-tail probability
    if p < _TAIL:
        if p <= 0.0:
            return _LOWEST_SCORE
        return max(_tail_quantile(math.sqrt(-2.0 * math.log(p))), _LOWEST_SCORE)
    return _central_score(p)


@njit(inline="always")
def _central_score(p):
    """:func:`power_score` of a lower-tail probability ``p`` between the tails."""
    q = p - 0.5
    r = q * q
    num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    return num / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)


@njit(error_model="numpy")
def _central_scores(p, out):
    """:func:`_central_score` of every ``p`` into ``out`` (1-D), a loop that vectorizes: no
    branch, and ``error_model="numpy"`` has no test for a zero divisor (never zero here)."""
    for i in range(p.size):
        out[i] = _central_score(p[i])


@njit
def _power_scores(power, scale, given, z, skip, p, central):
    """``z = power_score(power / scale)`` where that is not NaN and the sample is not
    ``given``, else ``z = 0`` and ``skip`` (rows of ``power``; ``p`` and ``central`` work rows).

    :func:`power_score` with its steps apart: the lower-tail probabilities of a row (a libm
    call per sample), the central branch's rational function for all of them at once
    (vectorized: sample by sample its two Horner chains waited on each other's latency, ~7%
    of the spectral detector), then each sample's branch. The same operations per sample, so
    the same scores."""
    for i in range(power.shape[0]):
        for j in range(power.shape[1]):
            u = power[i, j] / scale[i, j]
            central_branch = u == u and not given[i, j] and not u > -math.log(_TAIL)
            p[j] = -math.expm1(-u) if central_branch else 0.5
        _central_scores(p, central)
        for j in range(power.shape[1]):
            u = power[i, j] / scale[i, j]
            if not (u == u and not given[i, j]):
                z[i, j] = 0.0
                skip[i, j] = True
                continue
            skip[i, j] = False
            if u > -math.log(_TAIL):
                z[i, j] = -_tail_quantile(math.sqrt(2.0 * u))
            elif p[j] < _TAIL:
                z[i, j] = (_LOWEST_SCORE if p[j] <= 0.0 else
                           max(_tail_quantile(math.sqrt(-2.0 * math.log(p[j]))), _LOWEST_SCORE))
            else:
                z[i, j] = central[j]


@njit
def _lanes(values):
    """A stack (group, row, channel), such as a spectrum's real and imaginary parts, as
    (group, channel, row): fitted along frequency with every spectrum a lane, the groups in
    one fit (they share weights)."""
    n_g, n_rows, n_f = values.shape
    out = np.empty((n_g, n_f, n_rows))
    for g in range(n_g):
        for i in range(n_rows):
            for j in range(n_f):
                out[g, j, i] = values[g, i, j]
    return out


@njit(inline="always")  # one jitted caller: no level of its own
def _fit_power(values, weights, width, robust_iterations, degree, edges, signed):
    """Leave-one-out LOESS of each group of ``values`` (group, row, channel: the real and
    imaginary parts, or the amplitudes), each segment ``edges[k]:edges[k + 1]`` of the channels
    on its own; returns the squared prediction error summed over the groups over its variance,
    ``(dr^2 + di^2) / (1 + var)`` (NaN where nothing is in reach); ``signed`` (one group):
    negative where the value is below its fit."""
    n_g, n_rows, n_f = values.shape
    out = np.empty((n_rows, n_f))
    for k in range(edges.size - 1):
        lo, hi = edges[k], edges[k + 1]
        lanes = _lanes(values[:, :, lo:hi])
        w_t = weights[:, lo:hi].T.copy()
        ones = np.ones(w_t.shape)
        if robust_iterations > 0:
            fit, _, each = robust_loess_stack(lanes, w_t, width, robust_iterations, degree, ones)
            var = each[0].copy()
            for g in range(1, n_g):
                var = np.maximum(var, each[g])
        else:
            # Same weights for all groups: one variance serves them all.
            fit, _, var = _loess(lanes, w_t, width, degree, True, ones, True)
        err = _squared_errors(lanes, fit)
        for j in range(hi - lo):
            for i in range(n_rows):
                out[i, lo + j] = err[j, i] / (1.0 + var[j, i])
                if signed and lanes[0, j, i] < fit[0, j, i]:
                    out[i, lo + j] = -out[i, lo + j]
    return out


@njit(inline="always")
def _squared_errors(values, fit):
    """``sum_g (values - fit)[g]^2``, (channel, lane) of (group, channel, lane): group by group,
    each loop contiguous arithmetic that vectorizes."""
    n_g, n, lanes = values.shape
    out = np.empty((n, lanes))
    for j in range(n):
        for i in range(lanes):
            d = values[0, j, i] - fit[0, j, i]
            out[j, i] = d * d
    for g in range(1, n_g):
        for j in range(n):
            for i in range(lanes):
                d = values[g, j, i] - fit[g, j, i]
                out[j, i] += d * d
    return out


# A width whose cross-validation error is this many times the best so far ends the search: the
# wider kernels' bias only grows (no wider width came back within the tolerance on the LWA-like
# simulations), and the widest kernels cost the most.
_GIVE_UP = 4.0


@njit(inline="always")  # one jitted caller: no level of its own
def choose_width(values, weights, rows, widths, degree, tolerance, edges):
    """The kernel width (channels) of a baseline by robust leave-one-out cross-validation.

    The widest of ``widths`` (ascending, as :func:`spectral_args` makes them) whose median
    squared prediction error (summed over the groups of ``values``, as in :func:`_fit_power`)
    over ``rows`` (every segment ``edges[s]:edges[s + 1]`` of the
    channels fitted on its own) is within ``tolerance`` (a factor) of the smallest; widths are
    tried from the narrowest, and the search stops at one ``_GIVE_UP`` times worse than the best
    so far.
    """
    # Layout "A", as _fit_power's slices of channels: one specialization of _lanes
    sub = _lanes(values[:, rows][:, :, :])
    sub_w = weights[rows].T.copy()
    buf = np.empty(sub_w.size)
    scores = np.full(widths.size, np.inf)
    best = np.inf
    for k in range(widths.size):
        n = 0
        for s in range(edges.size - 1):
            lo, hi = edges[s], edges[s + 1]
            seg = sub[:, lo:hi].copy()
            seg_w = sub_w[lo:hi].copy()
            ones = np.ones(seg_w.shape)
            fit, _, _ = _loess(seg, seg_w, widths[k], degree, True, ones, False)
            err = _squared_errors(seg, fit)
            for i in range(seg_w.shape[0]):
                for j in range(seg_w.shape[1]):
                    e = err[i, j]
                    if seg_w[i, j] > 0.0 and e == e:
                        buf[n] = e
                        n += 1
        scores[k] = median_scratch(buf, n) if n > 0 else np.inf
        best = min(best, scores[k])
        if scores[k] > _GIVE_UP * best:
            break
    chosen = widths[0]
    for k in range(widths.size):
        if scores[k] <= best * tolerance and widths[k] > chosen:
            chosen = widths[k]
    return chosen


@njit
def noise_scale(power, mask, block):
    """Noise power per sample of each row: medians over blocks of ``block`` channels (of the
    unmasked samples), linearly interpolated between block centres, divided by ln 2 (the median
    of Exp(1)). A row without unmasked samples gets NaN."""
    n_rows, n = power.shape
    n_blocks = max(1, n // block)
    edges = np.linspace(0.0, n, n_blocks + 1)
    centres = np.empty(n_blocks)
    level = np.empty(n_blocks)
    buf = np.empty(n)
    ok = np.empty(n_blocks, np.int64)
    out = np.full((n_rows, n), np.nan)
    for r in range(n_rows):
        for k in range(n_blocks):
            lo, hi = int(edges[k]), int(edges[k + 1])
            m = 0
            for j in range(lo, hi):
                v = power[r, j]
                if not mask[r, j] and v == v:
                    buf[m] = v
                    m += 1
            centres[k] = 0.5 * (lo + hi - 1)
            level[k] = median_scratch(buf, m) / _LN2 if m >= 4 else np.nan
        # Blocks with too few samples take the nearest usable block's level.
        n_ok = 0
        for k in range(n_blocks):
            if level[k] == level[k]:
                ok[n_ok] = k
                n_ok += 1
        if n_ok == 0:
            continue
        # Linear between usable block centres, constant beyond the outer ones (up to and at the
        # first centre, and from the last on). Segment by segment, so each loop is plain
        # arithmetic that vectorizes.
        x0, y0 = centres[ok[0]], level[ok[0]]
        j = 0
        while j < n and j <= x0:
            out[r, j] = y0
            j += 1
        for k in range(n_ok - 1):
            x0, y0 = centres[ok[k]], level[ok[k]]
            x1, y1 = centres[ok[k + 1]], level[ok[k + 1]]
            stop = j
            while stop < n and stop < x1:
                stop += 1
            for i in range(j, stop):
                out[r, i] = y0 if i <= x0 else y0 + (y1 - y0) * (i - x0) / (x1 - x0)
            j = stop
        y_last = level[ok[n_ok - 1]]
        for i in range(j, n):
            out[r, i] = y_last
    return out


@njit(inline="always")  # one jitted caller: no level of its own
def _segment_noise(power, mask, block, edges):
    """:func:`noise_scale` of each segment on its own (the noise follows each sub-band's
    bandpass); a row's segment with too few unmasked samples takes the whole row's level."""
    if edges.size == 2:
        return noise_scale(power, mask, block)
    out = np.empty(power.shape)
    whole = noise_scale(power, mask, block)
    for k in range(edges.size - 1):
        lo, hi = edges[k], edges[k + 1]
        part = noise_scale(power[:, lo:hi].copy(), mask[:, lo:hi].copy(), block)
        for r in range(power.shape[0]):
            for j in range(hi - lo):
                v = part[r, j]
                out[r, lo + j] = v if v == v else whole[r, lo + j]
    return out


@njit(inline="always")  # one jitted caller: no level of its own
def raised_spectra(scale, mask, n_p, factor, spread):
    """Bool per row: whole spectra (rows ``t * n_p + p``) whose median noise power exceeds ``factor``
    times the median over the baseline's integrations (a broadband burst raises all of it).

    The detection itself keeps each spectrum's own noise scale: the sky's misfit (fringes the
    kernel follows imperfectly) changes between integrations, and a shared scale would flag it.
    A spectrum's level is a median of its ``n`` unmasked samples' power, whose logarithm scatters
    by ``spread[row] / sqrt(n)`` (1 / ln 2 for Exp(1), the complex fit's power); with few
    channels the factor is raised to ``_BURST_SIGMAS`` of that scatter, so chance does not flag
    whole spectra (16 channels: 6.1x).
    """
    n_rows, n_f = scale.shape
    n_t = n_rows // n_p
    raised = np.zeros(n_rows, np.bool_)
    if n_t < 3:
        # No reference over time: the levels below (a median per spectrum) would go unused.
        return raised
    level = np.empty(n_rows)
    limit = np.empty(n_rows)
    for i in range(n_rows):
        level[i] = median_scratch(scale[i].copy(), n_f) if scale[i, 0] == scale[i, 0] else np.nan
        live = max(1, n_f - mask[i].sum())
        limit[i] = max(factor, math.exp(_BURST_SIGMAS * spread[i] / math.sqrt(live)))
    column = np.empty(n_t)
    for p in range(n_p):
        m = 0
        for t in range(n_t):
            v = level[t * n_p + p]
            if v == v:
                column[m] = v
                m += 1
        if m < 3:
            continue
        ref = median_scratch(column, m)
        for t in range(n_t):
            if level[t * n_p + p] > limit[t * n_p + p] * ref:
                raised[t * n_p + p] = True
    return raised


# A kernel of its own, called by the entry point (radiocal._numba: not linked into it), not
# inlined there: numba inlines a function by copying its IR block by block, each copy with the
# whole scope, 1.8 CPU-s for this one's 168 blocks (the detector cold 8.8 -> 7.8 CPU-s).
@njit
def _spectral_baseline(vis, base, b, current, p, widths, edges):
    """Iterated detection on one baseline; ``current`` (time, frequency, correlation) in/out
    (``p``, ``widths``, ``edges``: see :func:`spectral_args`).

    Each iteration judges every sample not flagged in ``base`` afresh, against a fit that leaves
    out the previous iteration's detections, and its detections replace those (AOFlagger's
    iterations refit after masking): a neighbour of strong RFI that the first fit was pulled
    towards and that was flagged for it is unflagged once the RFI no longer enters the fit.
    Where the new fit has nothing in reach of a sample its earlier flag stands. Correlations
    whose phase is incoherent along frequency and amplitude steady are judged on their
    amplitude, fitted with a width of their own (``incoherent.py``).
    """
    n_t, _, n_f, n_p = vis.shape
    degree = p.degree
    n_rows = n_t * n_p
    parts = np.empty((2, n_rows, n_f))
    for t in range(n_t):
        for c in range(n_p):
            for f in range(n_f):
                v = vis[t, b, f, c]
                parts[0, t * n_p + c, f] = v.real
                parts[1, t * n_p + c, f] = v.imag
    weights = np.empty((n_rows, n_f))
    given = np.empty((n_rows, n_f), np.bool_)
    for t in range(n_t):
        for c in range(n_p):
            for f in range(n_f):
                weights[t * n_p + c, f] = 0.0 if current[t, f, c] else 1.0
                given[t * n_p + c, f] = base[t, b, f, c]
    # The first correlation's spectra choose the width for all (they share the sky's structure;
    # every integration votes, so a burst in one does not decide).
    width = choose_width(parts, weights, np.arange(0, n_rows, n_p), widths, degree,
                         p.tolerance, edges)
    by_amplitude = np.flatnonzero(incoherent_rows(parts, weights, n_p, p.amplitude_snr))
    spread = np.full(n_rows, _LOG_MEDIAN_SPREAD)
    amplitude = np.empty((1, 0, n_f))
    amplitude_width = width
    if by_amplitude.size:
        amplitude = amplitudes(parts, by_amplitude)
        # Every integration of those correlations votes.
        amplitude_width = choose_width(amplitude, weights[by_amplitude],
                                       np.arange(by_amplitude.size), widths, degree,
                                       p.tolerance, edges)
        spread[by_amplitude] = CHI1_LOG_MEDIAN_SPREAD
    fitted = np.ones((n_rows, n_f), np.bool_)  # the mask of the last plain fit (none yet)
    power = np.empty((n_rows, n_f))
    z = np.zeros((n_rows, n_f))
    skip = np.empty((n_rows, n_f), np.bool_)
    raised = np.zeros(n_rows, np.bool_)
    peaks = np.zeros(n_rows)
    before = np.empty((n_t, n_f, n_p), np.bool_)
    tail_p = np.empty(n_f)
    central = np.empty(n_f)
    for it in range(p.iterations):
        threshold = p.threshold * 2.0 ** (p.iterations - 1 - it)
        robust = p.robust_iterations if it == 0 else 0
        mask = weights <= 0.0
        # A plain fit with the mask of the previous plain fit is that fit, and the scores and
        # raised spectra it gave are the same: reuse them.
        if robust > 0 or fitted.all() or not (mask == fitted).all():
            power = _fit_power(parts, weights, width, robust, degree, edges, False)
            if by_amplitude.size:
                power[by_amplitude] = _fit_power(amplitude, weights[by_amplitude],
                                                 amplitude_width, robust, degree, edges, True)
            dip = power < 0.0  # amplitudes below their fit (the complex fit's power is >= 0)
            power = np.abs(power)
            scale = _segment_noise(power, mask, p.noise_block, edges)
            fitted = mask if robust == 0 else np.ones((n_rows, n_f), np.bool_)
            raised = raised_spectra(scale, mask, n_p, p.burst_factor, spread)
            as_exponential(power, scale, by_amplitude, dip)
            # Every sample not flagged in the input is scored, the last detections too.
            _power_scores(power, scale, given, z, skip, tail_p, central)
            peaks = _row_peaks(z)
        found = skip.copy()
        # Not the literal 1: numba would also compile _sumthreshold_rows for Literal[int](1)
        window = np.int64(1)
        # The rows' prefix-sum ranges, kept between windows (the passes are along frequency
        # only: nothing across them to tell of new flags).
        spans = np.full(n_rows, np.nan)
        across = np.empty(n_f)
        while window <= min(p.max_window, n_f):
            # The flags as layout "A", as sumthreshold_2d passes them (one specialization)
            _sumthreshold_rows(z, found[:, :], window, threshold / p.rho ** math.log2(window),
                               found[:, :], peaks, spans, across)
            window *= 2
        for t in range(n_t):   # loops, not slice assignments (background.py's docstring)
            for f in range(n_f):
                for c in range(n_p):
                    before[t, f, c] = current[t, f, c]
        for t in range(n_t):
            for f in range(n_f):
                for c in range(n_p):
                    current[t, f, c] = base[t, b, f, c]
        for t in range(n_t):
            for f in range(n_f):
                hit = False
                for c in range(n_p):
                    i = t * n_p + c
                    # An earlier detection stands where this fit cannot judge the sample (nothing
                    # unmasked in reach, as in a spectrum flagged whole).
                    new = ((found[i, f] and not skip[i, f]) or raised[i]
                           or (before[t, f, c] and not power[i, f] == power[i, f]))
                    if p.combine_correlations:
                        hit |= new
                    elif new:
                        current[t, f, c] = True
                if hit:
                    for c in range(n_p):
                        current[t, f, c] = True
        for t in range(n_t):
            for c in range(n_p):
                for f in range(n_f):
                    weights[t * n_p + c, f] = 0.0 if current[t, f, c] else 1.0


def spectral_block(vis, flag, params, edges):
    """Flag RFI along frequency in every spectrum of a block (see the module docstring).

    Parameters
    ----------
    vis : ndarray, complex, shape (time, baseline, frequency, polarization)
        The whole time axis of the partition (the noise reference is a median over time).
    flag : ndarray, bool, same shape
        Existing flags: never used in fits, always kept.
    params : radiocal.flagging.params.SpectralParams
        ``threshold``: a single sample's threshold at the last iteration, in standard normal
        units; ``rho``: its drop per doubling of the SumThreshold window; ``iterations``:
        fit/detect iterations, iteration ``i`` at ``threshold * 2**(iterations-1-i)``;
        ``widths``: candidate kernel widths, channels (the cross-validation picks one per
        baseline); ``tolerance``: a wider kernel is preferred while its cross-validation score
        is within this factor; ``noise_block``: channels per block of the noise estimate;
        ``burst_factor``: with three or more integrations, a spectrum whose median noise power
        exceeds this factor times its baseline's median over time is flagged whole;
        ``robust_iterations``, ``degree``: bisquare passes of the first fit, local polynomial
        degree; ``max_window``: largest SumThreshold window, channels;
        ``combine_correlations``: a sample flagged in any correlation is flagged (and left out
        of fits) in all. (``subtract_model`` and ``model_gain_width`` are
        :func:`model_residual_block`'s, run before.)
    edges : ndarray, int
        Channel boundaries of the segments fitted on their own, from 0 to the channel count
        (sub-bands joined into one window each have a bandpass of their own: see
        :func:`segment_edges`).

    Returns
    -------
    ndarray, bool, same shape as ``flag``: ``flag`` OR the detections.
    """
    return _spectral_flags(vis, flag, *spectral_args(params, edges))


def spectral_args(params, edges) -> tuple:
    """:func:`_spectral_flags`'s arguments after ``vis, flag``: the scalar parameters as one
    :func:`radiocal._numba.record`, the widths (ascending) and edges as arrays."""
    # Sorted here, not in the kernel: numba's np.sort compiles its quicksort (~1 CPU-s of a
    # cold compile of the detector) for a handful of widths.
    return (record(params), np.asarray(sorted(params.widths), np.float64),
            np.asarray(edges, np.int64))


@njit
def _spectral_flags(vis, flag, params, widths, edges):
    """:func:`spectral_block` (arguments from :func:`spectral_args`)."""
    n_t, n_b, n_f, n_p = vis.shape
    out = flag.copy()
    bad = np.empty(vis.shape, np.bool_)
    for t in range(n_t):
        for bl in range(n_b):
            for f in range(n_f):
                for p in range(n_p):
                    v = vis[t, bl, f, p]
                    bad[t, bl, f, p] = flag[t, bl, f, p] or not (np.isfinite(v.real)
                                                                 and np.isfinite(v.imag))
    current = np.empty((n_t, n_f, n_p), np.bool_)
    for bl in range(n_b):
        if bad[:, bl].all():
            continue
        for t in range(n_t):
            for f in range(n_f):
                for p in range(n_p):
                    current[t, f, p] = bad[t, bl, f, p]
        _spectral_baseline(vis, bad, bl, current, params, widths, edges)
        for t in range(n_t):
            for f in range(n_f):
                for p in range(n_p):
                    out[t, bl, f, p] |= current[t, f, p]
    return out


@njit
def model_residual_block(vis, model, flag, width, edges):
    """``vis - g model`` per spectrum, ``g(frequency)`` the model's local complex gain.

    A known model (bright sources anywhere in the sky) is subtracted before the detection, so
    the background left to follow is smooth. The data need not be calibrated: ``g``, the
    bandpass, gains and delays between model and data, is a local linear fit of ``vis / model``
    along frequency with weights ``|model|^2`` (the least-squares gain of the window,
    ``sum vis conj(model) / sum |model|^2``) over a Gaussian of ``width`` channels, the
    unflagged, finite samples only. Where the model is zero or nothing is in reach, ``vis`` is
    kept as it is.

    Parameters
    ----------
    vis, model : ndarray, complex, shape (time, baseline, frequency, polarization)
    flag : ndarray, bool, same shape
    width : float
        Gaussian width of the gain's fit, channels.
    edges : ndarray, int64
        Segments of the channels whose gains are fitted on their own (:func:`segment_edges`).

    Returns
    -------
    ndarray, complex64, same shape
    """
    n_t, n_b, n_f, n_p = vis.shape
    n_lanes = n_t * n_p
    out = np.empty(vis.shape, np.complex64)
    quotient = np.empty((2, n_f, n_lanes))
    weight = np.empty((n_f, n_lanes))
    ones = np.ones((n_f, n_lanes))
    for b in range(n_b):
        for t in range(n_t):
            for f in range(n_f):
                for p in range(n_p):
                    d = vis[t, b, f, p]
                    m = model[t, b, f, p]
                    power = m.real * m.real + m.imag * m.imag
                    lane = t * n_p + p
                    ok = (not flag[t, b, f, p] and power > 0.0 and np.isfinite(d.real)
                          and np.isfinite(d.imag) and np.isfinite(power))
                    if ok:
                        q = d / m
                        quotient[0, f, lane] = q.real
                        quotient[1, f, lane] = q.imag
                        weight[f, lane] = power
                    else:
                        quotient[0, f, lane] = 0.0
                        quotient[1, f, lane] = 0.0
                        weight[f, lane] = 0.0
        gain = np.empty((2, n_f, n_lanes))
        for k in range(edges.size - 1):
            lo, hi = edges[k], edges[k + 1]
            gain[:, lo:hi] = robust_loess_stack(quotient[:, lo:hi].copy(), weight[lo:hi].copy(),
                                                width, 2, 1, ones[lo:hi].copy())[0]
        for t in range(n_t):
            for f in range(n_f):
                for p in range(n_p):
                    lane = t * n_p + p
                    d = vis[t, b, f, p]
                    g = complex(gain[0, f, lane], gain[1, f, lane])
                    if g == g:
                        out[t, b, f, p] = d - g * model[t, b, f, p]
                    else:
                        out[t, b, f, p] = d
    return out


# A segment shorter than this is fitted with its neighbour: a local cubic needs samples on both
# sides of the one it predicts.
MIN_SEGMENT = 4


def segment_edges(frequency, channel_width=None, subband_starts=()) -> np.ndarray:
    """Channel boundaries of the pieces of a spectral window whose backgrounds differ in kind.

    A join is where a sub-band recorded by the join of files starts (``subband_starts``, first
    frequencies in Hz: each OVRO-LWA sub-band has a bandpass of its own, stepping at the join),
    or where the channel spacing or width changes (channels of different windows side by side).
    Joins leaving a piece shorter than ``MIN_SEGMENT`` channels are ignored.

    Returns
    -------
    ndarray, int64: 0, the first channel of each piece after the first, the channel count.
    """
    freq = np.asarray(frequency, np.float64)
    n = freq.size
    joins = set()
    lo, hi = np.minimum(freq[:-1], freq[1:]), np.maximum(freq[:-1], freq[1:])
    for start in np.asarray(subband_starts, np.float64).ravel():
        joins.update((np.flatnonzero((lo < start) & (start <= hi)) + 1).tolist())
    if n > 2:
        step = np.diff(freq)
        typical = np.median(step)
        joins.update((np.flatnonzero(np.abs(step - typical) > 0.5 * abs(typical)) + 1).tolist())
        if channel_width is not None:
            width = np.abs(np.broadcast_to(np.asarray(channel_width, np.float64), freq.shape))
            joins.update((np.flatnonzero(np.abs(np.diff(width)) > 1e-3 * width[:-1]) + 1).tolist())
    edges = [0]
    for j in sorted(joins):
        if j - edges[-1] >= MIN_SEGMENT and n - j >= MIN_SEGMENT:
            edges.append(j)
    edges.append(n)
    return np.asarray(edges, np.int64)
