"""Numba kernels for RFI detection on one partition's time x frequency planes.

Everything here works on plain numpy arrays; ``graph.py`` maps these over dask blocks. Blocks are
``(time, baseline, frequency, polarization)``; the detectors need the whole time axis of a
partition in one block (``graph.py`` rechunks to guarantee it).

The detector follows AOFlagger (Offringa et al. 2010, 2012): per baseline and correlation the
amplitude plane ``A(time, frequency)`` is split into a smooth background and a residual, the
residual is scaled by a robust noise estimate (1.4826 x MAD) and SumThreshold flags runs whose mean
exceeds a window-dependent threshold in sigma; fit and thresholding are iterated with falling
thresholds, each fit ignoring what the previous iteration flagged. Two choices differ from
AOFlagger, both so that uncalibrated data with steep, rippled bandpasses and bright calibrators
are not over-flagged:

* by default the background is fitted along time only, channel by channel (``background.py``):
  the band shape is then never part of the residual, however sharp it is, while transient RFI
  (bursts, spikes, intermittent lines) stands out against the channel's own time behaviour;
* persistent lines, which a per-channel fit absorbs, are found by their excess variance: the
  standardized residuals of a channel (or integration) are chi-square distributed under the null,
  and a line is flagged whole when their sum of squares passes the chi-square tail at the same
  threshold in sigma. RFI added to fringing sky signal fluctuates, so this catches it without any
  assumption on the band shape. A steady-line test against a smooth spectrum is available for
  calibrated (flat-band) data.
"""

from __future__ import annotations

import math

import numpy as np

from radiocal._numba import njit, record
from radiocal.flagging.background import (
    robust_loess_rows,
    standardized_residual,
    standardized_residual_time,
)
from radiocal.flagging.params import MadParams
from radiocal.flagging.robust import (
    MAD_TO_SIGMA,
    masked_median,
    robust_sigma,
    window_median_mad,
)


@njit
def sumthreshold_rows(z, mask, window, threshold, out):
    """One SumThreshold pass along the last axis (in place on ``out``).

    A run of ``window`` consecutive unmasked samples (masked ones are skipped, as in AOFlagger) is
    flagged when the absolute value of its sum exceeds ``window * threshold``.

    Parameters
    ----------
    z : ndarray, float64, shape (row, sample)
        Residual in units of sigma.
    mask : ndarray, bool, shape (row, sample)
        Samples to skip (already flagged).
    window : int
    threshold : float
        Threshold on the window mean, in sigma.
    out : ndarray, bool, shape (row, sample)
        Newly flagged samples are set True. May be ``mask`` itself: each row's unmasked samples
        are listed before any of its flags change.
    """
    _sumthreshold_rows(z, mask, window, threshold, out, np.full(z.shape[0], np.inf),
                       np.full(z.shape[0], np.nan), np.full(z.shape[1], np.nan))


@njit
def _row_peaks(z):
    """Largest ``|z|`` of each row (NaN ignored)."""
    peaks = np.zeros(z.shape[0])
    for r in range(z.shape[0]):
        for j in range(z.shape[1]):
            a = abs(z[r, j])
            if a > peaks[r]:
                peaks[r] = a
    return peaks


# Scores are clipped to this in SumThreshold's sums (see _sumthreshold_rows).
_SCORE_CAP = 1e6


@njit
def _sumthreshold_rows(z, mask, window, threshold, out, peaks, spans, cross):
    """:func:`sumthreshold_rows`, skipping rows where no window mean can pass the threshold:
    by ``peaks`` (an upper bound of each row's ``|z|``) or by ``spans``, the range of the
    prefix sums of each row's unmasked samples (NaN where unknown), which bounds ``|sum|`` of
    every window. Spans are measured here and set NaN where a row gains flags, in ``spans``
    for this pass's rows and in ``cross`` (one per sample) for the rows across them."""
    n_rows, n = z.shape
    idx = np.empty(n, np.int64)
    kept = np.empty(n)
    limit = window * threshold
    # Margins for the rounding of the running and prefix sums.
    below = limit * (1.0 - 1e-9)
    for r in range(n_rows):
        # |sum of window values| <= window * peak
        if peaks[r] < threshold * (1.0 - 1e-9) or spans[r] < below:
            continue
        # Branch-free compaction of the unmasked samples, so the running sum reads contiguously,
        # and the range of their prefix sums (a NaN sum leaves it as it was: the running sum,
        # NaN from there on, flags nothing after it either).
        m = 0
        prefix, low, high = 0.0, 0.0, 0.0
        for j in range(n):
            idx[m] = j
            # Clipped: a sample beyond _SCORE_CAP passes every window with or without it (the
            # limits are < 2000), while 1e19 (a bit flip's score) in the running sum rounded
            # away every later sample's score to multiples of 2048 (garbage flags after it).
            v = z[r, j]
            v = math.copysign(_SCORE_CAP, v) if abs(v) > _SCORE_CAP else v   # NaN stays NaN
            kept[m] = v
            prefix += 0.0 if mask[r, j] else v
            low = prefix if prefix < low else low
            high = prefix if prefix > high else high
            m += 0 if mask[r, j] else 1
        spans[r] = high - low
        if m < window or spans[r] < below:
            continue
        total = 0.0
        for k in range(window):
            total += kept[k]
        flagged = False
        if abs(total) > limit:
            flagged = True
            for j in range(idx[0], idx[window - 1] + 1):
                out[r, j] = True
                cross[j] = np.nan
        # The running sum, the same additions in the same order; a loop from 1 with unsigned
        # offsets has no branch for the first window nor index wraparound in its body.
        last = np.uint64(window - 1)
        for start in range(np.uint64(1), np.uint64(m - window + 1)):
            total += kept[start + last] - kept[start - np.uint64(1)]
            if abs(total) > limit:
                flagged = True
                for j in range(idx[start], idx[start + last] + 1):
                    out[r, j] = True
                    cross[j] = np.nan
        if flagged:
            spans[r] = np.nan


@njit
def sumthreshold_2d(z, mask, first_threshold, rho, max_window_time, max_window_freq):
    """SumThreshold in both directions over windows 1, 2, 4, ... of one (time, frequency) plane.

    The threshold for window M is ``first_threshold / rho ** log2(M)``. Flags found with smaller
    windows are skipped by larger ones, as in AOFlagger.

    Returns
    -------
    ndarray, bool, shape (time, frequency)
        ``mask`` OR the new flags.
    """
    flags = mask.copy()
    n_t, n_f = z.shape
    z_t = z.T.copy()
    # The time passes work in place on a transposed view of the same flags (no copies). Both
    # passes take the flags as layout "A" (``[:, :]``), as spectral.py's passes do: numba
    # compiled _sumthreshold_rows for C and for F flags (~1.2 CPU-s each, cold).
    flags_a = flags[:, :]
    flags_t = flags.T[:, :]
    peaks = _row_peaks(z)
    peaks_t = _row_peaks(z_t)
    # Prefix-sum ranges of the rows along frequency and along time (see _sumthreshold_rows):
    # measured once, they rule out the larger windows of most rows.
    spans = np.full(n_t, np.nan)
    spans_t = np.full(n_f, np.nan)
    # Not the literal 1: numba would also compile _sumthreshold_rows for Literal[int](1)
    window = np.int64(1)
    while window <= max(max_window_time, max_window_freq):
        threshold = first_threshold / rho ** math.log2(window)
        if window <= max_window_freq and window <= n_f:
            _sumthreshold_rows(z, flags_a, window, threshold, flags_a, peaks, spans, spans_t)
        if window <= max_window_time and window <= n_t:
            _sumthreshold_rows(z_t, flags_t, window, threshold, flags_t, peaks_t, spans_t,
                               spans)
        window *= 2
    return flags


@njit
def sir_rows(flags, eta):
    """Scale-invariant rank dilation along the last axis (Offringa et al. 2012), linear time.

    A sample is flagged when some interval containing it has a flagged fraction >= 1 - eta.

    Parameters
    ----------
    flags : ndarray, bool, shape (row, sample)
    eta : float
        0 leaves flags unchanged; larger values dilate more aggressively.
    """
    out = flags.copy()
    if eta <= 0.0:
        return out
    n_rows, n = flags.shape
    prefix = np.empty(n + 1)
    min_left = np.empty(n + 1)
    max_right = np.empty(n + 1)
    for r in range(n_rows):
        prefix[0] = 0.0
        for j in range(n):
            prefix[j + 1] = prefix[j] + (eta if flags[r, j] else eta - 1.0)
        min_left[0] = prefix[0]
        for j in range(1, n + 1):
            min_left[j] = min(min_left[j - 1], prefix[j])
        max_right[n] = prefix[n]
        for j in range(n - 1, -1, -1):
            max_right[j] = max(max_right[j + 1], prefix[j])
        for j in range(n):
            # An interval [a, b) with a <= j < b has sum prefix[b] - prefix[a] >= 0 (with a
            # tolerance for the rounding of the prefix sums, so exact ties count as in theory).
            if max_right[j + 1] - min_left[j] >= -1e-9:
                out[r, j] = True
    return out


@njit(inline="always")  # one jitted caller: no level of its own
def spectral_lines(amp, mask, sigma_freq, degree, robust_iterations, threshold, rho, max_window,
                   noise):
    """Channels holding a steady line: outliers of the time-median spectrum from a smooth fit.

    Each integration is divided by its median over frequency (removing gain drifts), the
    time-median spectrum is predicted channel by channel from its neighbours (robust LOESS, leave
    one out), and the deviations are scaled by their robust spread across channels (never below
    the spectrum's thermal noise), so bandpass structure the smooth fit cannot follow sets the
    scale instead of being flagged. SumThreshold (windows 1, 2, 4, ... ``max_window``) on the
    scaled deviations finds the lines.

    Parameters
    ----------
    amp : ndarray, float64, shape (time, frequency)
    mask : ndarray, bool, shape (time, frequency)
    noise : float
        Thermal sigma of one amplitude sample.

    Returns
    -------
    ndarray, bool, shape (frequency,)
        Channels to flag at every time.
    """
    n_t, n_f = amp.shape
    lines = np.zeros(n_f, np.bool_)
    if n_f < 8:
        return lines  # too few channels to tell a line from the band shape
    level = np.full((1, n_t), np.nan)
    for t in range(n_t):
        level[0, t] = masked_median(amp[t], mask[t])
    spectrum = np.zeros((1, n_f))
    weights = np.zeros((1, n_f))
    counts = np.zeros(n_f)
    col = np.empty(n_t)
    for f in range(n_f):
        m = 0
        for t in range(n_t):
            if not mask[t, f] and level[0, t] > 0.0:
                col[m] = amp[t, f] / level[0, t]
                m += 1
        if m > 0:
            spectrum[0, f] = np.median(col[:m])
            weights[0, f] = 1.0
            counts[f] = m
    if weights.sum() < 8:
        return lines
    fit, _, var = robust_loess_rows(spectrum, weights, sigma_freq, robust_iterations, degree,
                                     np.ones((1, n_f)))
    dev = (spectrum - fit) / np.sqrt(1.0 + var)
    bad = (weights <= 0.0) | np.isnan(dev)
    spread = robust_sigma(dev, bad)
    typical = masked_median(level, np.isnan(level) | (level <= 0.0))
    scale = spread
    if typical > 0.0:
        # The median of m Gaussian samples has sigma ~ 1.2533 sigma / sqrt(m).
        m_typ = max(1.0, np.median(counts[counts > 0]))
        scale = max(spread, 1.2533 * noise / (typical * math.sqrt(m_typ)))
    if not scale > 0.0:
        return lines
    z = np.where(bad, 0.0, dev / scale)
    found = sumthreshold_2d(z.T.copy(), bad.T.copy(), threshold, rho, max_window, 0)
    for f in range(n_f):
        lines[f] = found[f, 0] and not bad[0, f]
    return lines


# Below this many integrations the background along time is a constant (the mean of the other
# integrations): a line or parabola through 2-4 points extrapolates wildly at the ends.
MIN_TIMES_FOR_SLOPE = 5


@njit
def _degree(n_times, degree):
    return degree if n_times >= MIN_TIMES_FOR_SLOPE else 0


@njit
def chi2_quantile(dof, z):
    """Wilson-Hilferty approximation of the chi-square quantile at ``z`` Gaussian sigmas."""
    c = 2.0 / (9.0 * dof)
    return dof * (1.0 - c + z * math.sqrt(c)) ** 3


@njit(inline="always")  # one jitted caller: no level of its own
def variance_lines(z, mask, threshold, min_samples):
    """Channels and integrations whose standardized residuals have excess variance.

    Under the null ``z`` is N(0, 1), so ``sum z^2`` over the m unmasked samples of a channel (or
    integration) is chi-square with m degrees of freedom; a line is flagged whole when the sum
    exceeds the chi-square quantile at ``threshold`` Gaussian sigmas. This finds persistent RFI
    whose amplitude fluctuates (as RFI added to fringing sky signal does) without any assumption
    on the band shape, which a time-only background leaves out of the residuals.

    Parameters
    ----------
    z : ndarray, float64, shape (time, frequency)
    mask : ndarray, bool, shape (time, frequency)
    threshold : float
    min_samples : int
        Lines with fewer unmasked samples are not tested.

    Returns
    -------
    channels : ndarray, bool, shape (frequency,)
    times : ndarray, bool, shape (time,)
    """
    # Both as layout "A" (``[:, :]``): one specialization, not one for C and one for F.
    return (_excess_variance_columns(z[:, :], mask[:, :], threshold, min_samples),
            _excess_variance_columns(z.T[:, :], mask.T[:, :], threshold, min_samples))


@njit
def _excess_variance_columns(z, mask, threshold, min_samples):
    """Columns of ``z`` (rows x columns) whose unmasked sum of squares passes the chi-square tail."""
    n_rows, n_cols = z.shape
    out = np.zeros(n_cols, np.bool_)
    for c in range(n_cols):
        total = 0.0
        m = 0
        for r in range(n_rows):
            if not mask[r, c]:
                total += z[r, c] * z[r, c]
                m += 1
        if m >= min_samples and total > chi2_quantile(m, threshold):
            out[c] = True
    return out


@njit
def _amplitude_plane(vis, flag, b, p, amp, mask):
    """|V| of baseline ``b``, correlation ``p`` into ``amp`` (time, frequency), 0 where flagged or
    not finite; ``mask`` True there."""
    n_t, n_f = amp.shape
    for t in range(n_t):
        for f in range(n_f):
            v = vis[t, b, f, p]
            a = math.sqrt(v.real * v.real + v.imag * v.imag)
            bad = flag[t, b, f, p] or not math.isfinite(a)
            amp[t, f] = 0.0 if bad else a
            mask[t, f] = bad


@njit(inline="always")  # one jitted caller: no level of its own
def _baseline_planes(vis, flag, b, amp, base):
    """Amplitude planes (correlation, time, frequency) of baseline ``b`` and their masks; True
    when everything is masked."""
    for p in range(amp.shape[0]):
        _amplitude_plane(vis, flag, b, p, amp[p], base[p])
    return base.all()


@njit(inline="always")  # no level of its own
def _set_plane(dst, src):
    """``dst[:, :] = src`` as a loop: numba compiles an array assignment with an error path that
    formats both shapes into its message (f-strings, ``str.join``, integers to strings), which
    cost ~1.5 CPU-s of every cold compile of a detector."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@njit
def _same(a, b):
    """Whether two bool planes are equal."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if a[i, j] != b[i, j]:
                return False
    return True


def _baseline_kernel(name, full):
    """:func:`_sumthreshold_baseline` (``full``) or :func:`_sumthreshold_baseline_time`, its
    variant without the background fit along frequency and the steady-line test: numba prunes
    the branches on ``full`` (a constant of the closure) before typing, so their call trees are
    not compiled. Only plain values may be the closure's: numba's cache keys a closure on them."""

    def baseline(amp, base, current, z, sigmas, fitted, p):
        n_c, n_t, n_f = amp.shape
        deg = _degree(n_t, p.degree)
        found = np.empty((n_c, n_t, n_f), np.bool_)
        for c in range(n_c):
            _set_plane(current[c], base[c])
            fitted[c] = True
            sigmas[c] = np.nan
        for it in range(p.iterations):
            factor = 2.0 ** (p.iterations - 1 - it)
            # Bisquare reweighting guards the first fit against unflagged RFI; later fits have
            # the RFI masked and use plain (cheaper) leave-one-out LOESS.
            robust = p.robust_iterations if it == 0 else 0
            for c in range(n_c):
                if base[c].all():
                    _set_plane(found[c], base[c])
                    continue
                # A plain fit with the mask of the previous plain fit is that fit (most planes
                # gain no flags in the later iterations): reuse it.
                if robust > 0 or fitted[c].all() or not _same(fitted[c], current[c]):
                    if full:
                        zc, sigmas[c] = standardized_residual(
                            amp[c], current[c], p.sigma_time, p.sigma_frequency, robust, deg,
                            p.noise_channels)
                    else:
                        zc, sigmas[c] = standardized_residual_time(
                            amp[c], current[c], p.sigma_time, robust, deg, p.noise_channels)
                    _set_plane(z[c], zc)
                    if robust > 0:
                        fitted[c] = True
                    else:
                        _set_plane(fitted[c], current[c])
                sigma = sigmas[c]
                if not sigma > 0.0:
                    _set_plane(found[c], base[c])
                    continue
                _set_plane(found[c], sumthreshold_2d(z[c], base[c], p.threshold * factor, p.rho,
                                                     p.max_window_time, p.max_window_frequency))
                if p.variance_test:
                    chans, times = variance_lines(z[c], found[c], p.threshold * factor, 4)
                    for f in range(n_f):
                        if chans[f]:
                            found[c, :, f] = True
                    for t in range(n_t):
                        if times[t]:
                            found[c, t, :] = True
                if full and p.line_threshold > 0.0:
                    lines = spectral_lines(amp[c], current[c] | found[c],
                                           p.line_sigma_frequency, p.degree, p.robust_iterations,
                                           p.line_threshold * factor, p.rho, p.max_line_width,
                                           sigma)
                    for f in range(n_f):
                        if lines[f]:
                            found[c, :, f] = True
            if p.combine_correlations:
                any_c = found[0].copy()
                for c in range(1, n_c):
                    any_c |= found[c]
                for c in range(n_c):
                    _set_plane(current[c], base[c] | any_c)
            else:
                for c in range(n_c):
                    _set_plane(current[c], found[c])

    baseline.__name__ = baseline.__qualname__ = name
    baseline.__doc__ = """Iterated SumThreshold on one baseline's planes (see
    :func:`sumthreshold_block`; ``p`` its parameters' :func:`record`).

    ``amp`` and ``base`` (correlation, time, frequency) come in; ``current`` goes out as ``base``
    OR the detections. The last background fit of each correlation is left in ``z``
    (standardized residual), ``sigmas`` and ``fitted`` (the mask it was fitted with; all True
    when there was no plain (non-bisquare) fit), so a later detector needing the same fit can
    reuse it."""
    # Inlined into its one caller, the entry point: compiled as a function of its own it was
    # one more level at which numba optimises and links the whole call tree below (~8 CPU-s).
    return njit(inline="always")(baseline)


_sumthreshold_baseline = _baseline_kernel("_sumthreshold_baseline", True)
_sumthreshold_baseline_time = _baseline_kernel("_sumthreshold_baseline_time", False)


# Codes of :func:`sumthreshold_mad_block`'s output.
BY_SUMTHRESHOLD, BY_MAD = 1, 2
# :func:`_sumthreshold_codes`'s MAD record when there is no MAD pass (its values unread).
_NO_MAD = record(MadParams())


def sumthreshold_block(vis, flag, params):
    """AOFlagger-style iterated SumThreshold on every baseline and correlation of a block.

    Parameters
    ----------
    vis : ndarray, complex, shape (time, baseline, frequency, polarization)
        Must hold the whole time axis of the partition.
    flag : ndarray, bool, shape (time, baseline, frequency, polarization)
        Existing flags: never used in fits or sums, always kept.
    params : radiocal.flagging.params.SumThresholdParams
        ``threshold``: a single sample's threshold in sigma at the final iteration (AOFlagger:
        6); ``rho``: the threshold's drop per doubling of the window (AOFlagger: 1.5);
        ``iterations``: background/threshold iterations, iteration i at ``threshold *
        2**(iterations-1-i)``; ``sigma_time``, ``sigma_frequency``: background kernel widths in
        samples, ``sigma_frequency`` 0 fitting the background along time only (every channel its
        own level: uncalibrated bandpass structure never looks like RFI; steady narrowband RFI
        is then left to the line tests); ``robust_iterations``, ``degree``: bisquare passes and
        local polynomial degree of the background fit; ``max_window_time``,
        ``max_window_frequency``: the largest SumThreshold windows; ``combine_correlations``:
        between iterations, mask a sample in every correlation when any flagged it, so RFI seen
        clearly in one correlation stays out of the background fit of the others;
        ``variance_test``: also flag whole channels/integrations with excess residual variance
        (:func:`variance_lines`); ``line_threshold``, ``line_sigma_frequency``,
        ``max_line_width``: :func:`spectral_lines`'s threshold in robust spreads (0 disables),
        kernel width of the spectrum's smooth fit and widest line, channels.

    Returns
    -------
    ndarray, bool, shape (time, baseline, frequency, polarization)
        ``flag`` OR the detections.
    """
    code = codes_kernel(params)(vis, flag, *sumthreshold_args(params))
    return flag | (code == BY_SUMTHRESHOLD)


def sumthreshold_args(sumthreshold, mad=None) -> tuple:
    """:func:`_sumthreshold_codes`'s arguments after ``vis, flag`` for SumThreshold's
    parameters and, if given, MAD's (``params.SumThresholdParams``, ``params.MadParams``)."""
    return record(sumthreshold), mad is not None, _NO_MAD if mad is None else record(mad)


@njit
def _mad_plane(z, sigma, mask, half_time, half_freq, threshold, variance_threshold, out):
    """:func:`mad_block`'s test on one plane's standardized residual ``z`` (noise ``sigma``):
    sets ``out`` (time, frequency) True where it flags."""
    if not (sigma > 0.0 and math.isfinite(sigma)):
        return
    local_med, local_mad = window_median_mad(z, mask, half_time, half_freq, 3)
    local_sig = MAD_TO_SIGMA * local_mad
    typical = masked_median(local_sig, mask | np.isnan(local_sig))
    if not typical > 0.0:
        return
    n_t, n_f = z.shape
    for t in range(n_t):
        for f in range(n_f):
            if mask[t, f] or np.isnan(local_med[t, f]):
                continue
            if (abs(z[t, f] - local_med[t, f]) > threshold * typical
                    or local_sig[t, f] > variance_threshold * typical):
                out[t, f] = True


def mad_block(vis, flag, params):
    """rflag-like flagging on residuals with sliding-window robust statistics.

    Per baseline and correlation the smooth background (:func:`background_2d`) is removed; in a
    (2 half_window_time + 1) x (2 half_window_frequency + 1) window around each sample the
    residual's median and MAD-sigma are measured. A sample is flagged when it deviates from its
    window median by more than ``threshold`` times the plane's typical local sigma (median of the
    window sigmas), or when its window's sigma exceeds ``variance_threshold`` times that typical
    sigma (a patch of raised variance, as rflag's time/frequency deviation tests). MAD windows
    ignore single spikes, so unlike rflag's rms windows they do not dilate flags around them. A
    plane whose robust noise is zero or undefined (constant amplitudes) is left alone.

    Parameters
    ----------
    vis : ndarray, complex, shape (time, baseline, frequency, polarization)
    flag : ndarray, bool, shape (time, baseline, frequency, polarization)
    params : radiocal.flagging.params.MadParams

    Returns
    -------
    ndarray, bool, shape (time, baseline, frequency, polarization)
    """
    return _mad_flags(vis, flag, record(params))


@njit
def _mad_flags(vis, flag, p):
    """:func:`mad_block` (``p`` its parameters' :func:`record`)."""
    n_t, n_b, n_f, n_p = vis.shape
    out = flag.copy()
    amp = np.empty((n_t, n_f))
    mask = np.empty((n_t, n_f), np.bool_)
    for b in range(n_b):
        for c in range(n_p):
            _amplitude_plane(vis, flag, b, c, amp, mask)
            if mask.all():
                continue
            z, sigma = standardized_residual(amp, mask, p.sigma_time, p.sigma_frequency,
                                             p.robust_iterations, _degree(n_t, p.degree),
                                             p.noise_channels)
            _mad_plane(z, sigma, mask, p.half_window_time, p.half_window_frequency, p.threshold,
                       p.variance_threshold, out[:, b, :, c])
    return out


def sumthreshold_mad_block(vis, flag, sumthreshold, mad):
    """:func:`sumthreshold_block`, then :func:`mad_block` on its flags, in one pass.

    The same flags as the two in turn, for less work: where SumThreshold's last iteration found
    nothing new, its last (plain) background fit is the one MAD would make with the same
    background parameters and no bisquare passes, so MAD uses it instead of fitting again.
    ``sumthreshold`` and ``mad`` are the two flaggers' parameters (``params.SumThresholdParams``,
    ``params.MadParams``).

    Returns
    -------
    ndarray, uint8, shape (time, baseline, frequency, polarization)
        0 where nothing changed, ``BY_SUMTHRESHOLD`` where SumThreshold flagged a sample ``flag``
        had not, ``BY_MAD`` where MAD flagged one SumThreshold had not.
    """
    return codes_kernel(sumthreshold, mad)(vis, flag, *sumthreshold_args(sumthreshold, mad))


def _codes_kernel(name, full):
    """:func:`_sumthreshold_codes` (``full``) or :func:`_sumthreshold_codes_time`, the one for
    parameters with no fit along frequency and no steady-line test (the strategies' defaults):
    compiled without those call trees, ~6 of ~30 CPU-s cold (see :func:`_baseline_kernel`).
    :func:`codes_kernel` picks the one for a flagger's parameters; their flags are the same."""

    def codes(vis, flag, st, with_mad, mad):
        n_t, n_b, n_f, n_p = vis.shape
        code = np.zeros(vis.shape, np.uint8)
        amp = np.empty((n_p, n_t, n_f))
        base = np.empty((n_p, n_t, n_f), np.bool_)
        current = np.empty((n_p, n_t, n_f), np.bool_)
        z = np.empty((n_p, n_t, n_f))
        fitted = np.empty((n_p, n_t, n_f), np.bool_)
        sigmas = np.empty(n_p)
        by_mad = np.empty((n_t, n_f), np.bool_)
        same_fit = (mad.robust_iterations == 0 and mad.sigma_time == st.sigma_time
                    and mad.sigma_frequency == st.sigma_frequency and mad.degree == st.degree
                    and mad.noise_channels == st.noise_channels)
        for b in range(n_b):
            if _baseline_planes(vis, flag, b, amp, base):
                continue
            if full:
                _sumthreshold_baseline(amp, base, current, z, sigmas, fitted, st)
            else:
                _sumthreshold_baseline_time(amp, base, current, z, sigmas, fitted, st)
            for p in range(n_p):
                mask = current[p]
                for t in range(n_t):
                    for f in range(n_f):
                        if mask[t, f] and not flag[t, b, f, p]:
                            code[t, b, f, p] = BY_SUMTHRESHOLD
                if not with_mad or mask.all():
                    continue
                # MAD masks what SumThreshold returns (``current``); samples masked there are
                # never read, so the amplitudes SumThreshold kept under its own new flags do no
                # harm.
                if same_fit and not fitted[p].all() and _same(fitted[p], mask):
                    zp, sigma = z[p], sigmas[p]
                elif full:
                    zp, sigma = standardized_residual(amp[p], mask, mad.sigma_time,
                                                      mad.sigma_frequency, mad.robust_iterations,
                                                      _degree(n_t, mad.degree),
                                                      mad.noise_channels)
                else:
                    zp, sigma = standardized_residual_time(amp[p], mask, mad.sigma_time,
                                                           mad.robust_iterations,
                                                           _degree(n_t, mad.degree),
                                                           mad.noise_channels)
                by_mad[:] = False
                _mad_plane(zp, sigma, mask, mad.half_window_time, mad.half_window_frequency,
                           mad.threshold, mad.variance_threshold, by_mad)
                for t in range(n_t):
                    for f in range(n_f):
                        if by_mad[t, f] and not mask[t, f]:
                            code[t, b, f, p] = BY_MAD
        return code

    codes.__name__ = codes.__qualname__ = name   # found by name (radiocal.engine.numba)
    codes.__doc__ = """:func:`sumthreshold_mad_block`, the MAD pass only ``with_mad`` (``st``,
    ``mad``: the flaggers' parameters as :func:`record`).

    The one jitted entry point of both detectors: numba re-optimizes the whole call tree below
    every jitted caller, so thin jitted wrappers above this cost seconds of compilation each."""
    return njit(codes)


_sumthreshold_codes = _codes_kernel("_sumthreshold_codes", True)
_sumthreshold_codes_time = _codes_kernel("_sumthreshold_codes_time", False)


def codes_kernel(sumthreshold, mad=None):
    """The jitted kernel of :func:`sumthreshold_mad_block` for these parameters
    (``params.SumThresholdParams``, ``params.MadParams`` or None): the variant compiled without
    the fit along frequency and the line test when neither flagger uses them."""
    plain = (sumthreshold.sigma_frequency <= 0.0 and sumthreshold.line_threshold <= 0.0
             and (mad is None or mad.sigma_frequency <= 0.0))
    return _sumthreshold_codes_time if plain else _sumthreshold_codes

def dilate_block(flag, params):
    """SIR dilation in time and frequency, then CASA-style extension of mostly-flagged lines.

    Parameters
    ----------
    flag : ndarray, bool, shape (time, baseline, frequency, polarization)
        Must hold the whole time axis.
    params : radiocal.flagging.params.DilateParams
        ``eta_time``, ``eta_frequency``: SIR aggressiveness along each axis (0 disables);
        ``grow_time``, ``grow_frequency``: a channel flagged at more than ``grow_time`` of the
        times is flagged at all times, a time flagged in more than ``grow_frequency`` of the
        channels is flagged in all channels (1 disables).

    Returns
    -------
    ndarray, bool, shape (time, baseline, frequency, polarization)
    """
    return _dilated(flag, record(params))


@njit
def _dilated(flag, p):
    """:func:`dilate_block` (``p``: its options' record)."""
    eta_time, eta_freq = p.eta_time, p.eta_frequency
    grow_time, grow_freq = p.grow_time, p.grow_frequency
    n_t, n_b, n_f, n_p = flag.shape
    out = flag.copy()
    for b in range(n_b):
        for p in range(n_p):
            plane = flag[:, b, :, p].copy()
            plane = sir_rows(plane, eta_freq)
            plane = sir_rows(plane.T.copy(), eta_time).T.copy()
            if grow_time < 1.0:
                for f in range(n_f):
                    if plane[:, f].sum() > grow_time * n_t:
                        plane[:, f] = True
            if grow_freq < 1.0:
                for t in range(n_t):
                    if plane[t, :].sum() > grow_freq * n_f:
                        plane[t, :] = True
            out[:, b, :, p] = plane
    return out
