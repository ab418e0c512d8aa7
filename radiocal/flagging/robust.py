"""Numba kernels for robust statistics: exact medians, MADs and sliding-window medians.

Plain numpy in and out; no dask or xarray. Medians of whole planes bracket the middle ranks with a
sample and select among the few values inside (exact, a few times faster than a full selection);
sliding-window medians sort every window of a row at once with a sorting network, which runs
branch-free and vectorized across the row; medians per lane select lane by lane.
"""

from __future__ import annotations

import math

import numpy as np

from radiocal._numba import njit

MAD_TO_SIGMA = 1.4826

# Lanes (windows) sorted together by one pass of a sorting network.
LANES = 512


@njit
def _select(a, lo, hi, k):
    """Reorder ``a[lo:hi + 1]`` so that ``a[k]`` holds its k-th smallest value, everything before
    it no larger and everything after no smaller (quickselect, median-of-three pivots; no NaN);
    returns ``a[k]``.

    The partitions are branch-free (Lomuto's, every element swapped and the boundary advanced by
    the comparison), then the pivot's equals are gathered the same way: residuals of fresh data
    made a branching partition mispredict about every other comparison, and the medians took
    ~3x longer than on repeated data (robust fits of the 48 x 6 LWA-like set's spectra: their
    medians and bisquare weights 468 -> 329 us per baseline).
    """
    while hi - lo > 6:
        mid = (lo + hi) // 2
        x, y, z = a[lo], a[mid], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        # a[lo:j] < pivot <= a[j:i]
        j = lo
        for i in range(lo, hi + 1):
            v = a[i]
            a[i] = a[j]
            a[j] = v
            j += v < pivot
        if k < j:
            hi = j - 1
            continue
        # a[j:e] == pivot < a[e:i] (the pivot is one of the values: at least one equal)
        e = j
        for i in range(j, hi + 1):
            v = a[i]
            a[i] = a[e]
            a[e] = v
            e += v <= pivot
        if k < e:
            return a[k]
        lo = e
    for i in range(lo + 1, hi + 1):      # a short range: insertion sort
        v = a[i]
        j = i - 1
        while j >= lo and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v
    return a[k]


@njit
def _middle(a, n, lo_rank, hi_rank):
    """Mean of the ``lo_rank``-th and ``hi_rank`` (= lo_rank or lo_rank + 1) smallest of
    ``a[:n]`` (reordered)."""
    low = _select(a, 0, n - 1, lo_rank)
    if hi_rank == lo_rank:
        return low
    high = a[hi_rank]
    for i in range(hi_rank + 1, n):     # everything after lo_rank is >= low: take the least
        high = min(high, a[i])
    return 0.5 * (low + high)


@njit
def median_scratch(buf, n):
    """Median of ``buf[:n]``, reordering ``buf``; NaN when ``n`` is 0 or a value is NaN.

    Exact. For long inputs an evenly strided sample of the values brackets the middle ranks, one
    branch-free pass keeps the values inside the bracket, and only those are searched (a
    bracket that misses falls back to a selection over all values).
    """
    if n == 0:
        return np.nan
    lo_rank, hi_rank = (n - 1) // 2, n // 2
    if n >= 1024:
        m = 512 if n >= 4096 else 256
        step = n // m
        sample = np.empty(m)
        for s in range(m):
            v = buf[s * step]
            if v != v:
                return np.nan
            sample[s] = v
        # The count of sample values below the median is Binomial(m, 1/2): +/- 4 sd.
        margin = 2 * int(math.sqrt(m)) + 1
        pos = (lo_rank * m) // n
        low = max(0, pos - margin)
        a = _select(sample, 0, m - 1, low)
        b = _select(sample, low, m - 1, min(m - 1, pos + margin))
        inside = np.empty(n)
        k = 0
        below = 0
        n_nan = 0
        for i in range(n):
            v = buf[i]
            inside[k] = v
            k += (v >= a) & (v <= b)
            below += v < a
            n_nan += v != v
        if n_nan > 0:
            return np.nan
        if below <= lo_rank and hi_rank < below + k:
            return _middle(inside, k, lo_rank - below, hi_rank - below)
    for i in range(n):
        if buf[i] != buf[i]:
            return np.nan
    return _middle(buf, n, lo_rank, hi_rank)


@njit
def _unmasked(values, mask):
    """``values[~mask]`` (any shape) into a new float64 buffer: ``(buffer, count)``."""
    flat_v = values.ravel()
    flat_m = mask.ravel()
    buf = np.empty(flat_v.size, np.float64)
    n = 0
    for i in range(flat_v.size):
        if not flat_m[i]:
            buf[n] = flat_v[i]
            n += 1
    return buf, n


@njit
def masked_median(values, mask):
    """Median of ``values[~mask]`` (any shape); NaN when all are masked (or a value is NaN)."""
    buf, n = _unmasked(values, mask)
    return median_scratch(buf, n)


@njit
def robust_sigma(values, mask):
    """Gaussian-equivalent sigma, 1.4826 x the MAD of ``values[~mask]``; NaN when all masked."""
    buf, n = _unmasked(values, mask)
    med = median_scratch(buf, n)
    if np.isnan(med):
        return np.nan
    for i in range(n):
        buf[i] = abs(buf[i] - med)
    return MAD_TO_SIGMA * median_scratch(buf, n)


# Columns of at most this many samples take their medians by one sorting network across all
# columns at once (:func:`_column_deviations`), longer ones by a selection each: the network's
# comparators grow as n log^2 n.
_NETWORK_SAMPLES = 128


@njit
def _column_deviations(resid, mask, centre):
    """Median of ``|resid - centre|`` over each column's unmasked samples: shapes (time,
    frequency) -> (frequency,), NaN where a column has none (or a NaN among them).

    Short columns are sorted all at once by a network pruned to their middle ranks, masked
    samples as +inf (they sort last and are not counted): a plane's 32 channels of ~60 times
    took 0.68 us each by selection, branchy code on fresh data."""
    n_t, n_f = resid.shape
    dev = np.full(n_f, np.nan)
    if n_t > _NETWORK_SAMPLES:
        col = np.empty(n_t)
        for f in range(n_f):
            m = 0
            for t in range(n_t):
                if not mask[t, f]:
                    col[m] = abs(resid[t, f] - centre)
                    m += 1
            if m > 0:
                dev[f] = median_scratch(col, m)
        return dev
    rows = np.empty((n_t, n_f))
    count = np.zeros(n_f, np.int64)
    n_nan = np.zeros(n_f, np.int64)
    for t in range(n_t):
        for f in range(n_f):
            d = abs(resid[t, f] - centre)
            ok = not mask[t, f]
            rows[t, f] = d if ok else np.inf
            count[f] += ok
            n_nan[f] += ok & (d != d)
    _network_medians(rows, count, dev)
    for f in range(n_f):
        if n_nan[f] > 0:
            dev[f] = np.nan
    return dev


@njit
def _network_medians(rows, count, out):
    """Median of the ``count[j]`` smallest values of each lane (column) of ``rows`` (sample,
    lane) into ``out[j]`` where ``count[j]`` > 0, the others left; samples left out come as
    +inf. Sorts ``rows`` by a network pruned to the middle ranks; the medians are those of
    :func:`median_scratch`, bit for bit (no NaN among the counted)."""
    n = rows.shape[0]
    _apply_network(rows, sorting_network(n, n // 2 + 1))
    for j in range(rows.shape[1]):
        m = count[j]
        if m > 0:
            low = rows[(m - 1) // 2, j]
            # the middle value itself when there is one, as _middle
            out[j] = low if m % 2 else 0.5 * (low + rows[m // 2, j])


@njit
def channel_noise(resid, mask, half):
    """Noise (Gaussian-equivalent sigma) of each channel of a residual plane, stepwise along
    frequency.

    Each channel's median ``|resid - centre|`` over its unmasked times (``centre`` the plane's
    median) is a noisy estimate of its own; a channel's noise is 1.4826 x the median of these over
    whichever window of channels holding it, ``[f - half, f + half]``, ``[f - half, f]`` or
    ``[f, f + half]``, has the least spread of their logarithms (Kuwahara's edge-preserving
    choice). At a step in noise (sub-bands of different system temperature merged into one
    window) the window on the channel's own side of it is chosen: a centred running median there
    takes, next to the step, the extreme values of the channel's own side (the quietest of the
    noisy half), which flagged a quarter to a half of the samples of the channels beside it. A
    few noisier channels (a persistent line) do not raise their neighbours' noise: windows
    holding them spread more, and they are a minority of any window. Windows cut short by the
    band's edges (spanning fewer than ``half + 1`` channels) are not chosen, nor windows with
    fewer than two channels to judge; with none left, the centred window is taken.

    Shapes (time, frequency) -> (frequency,); NaN where no channel in reach has an unmasked
    sample with a non-zero deviation.
    """
    n_t, n_f = resid.shape
    out = np.full(n_f, np.nan)
    buf, n = _unmasked(resid, mask)
    centre = median_scratch(buf, n)
    if np.isnan(centre):
        return out
    dev = _column_deviations(resid, mask, centre)
    # Prefix sums over the channels with a positive deviation of its log, its square, and count
    s1 = np.zeros(n_f + 1)
    s2 = np.zeros(n_f + 1)
    count = np.zeros(n_f + 1, np.int64)
    for f in range(n_f):
        d = dev[f]
        ok = d > 0.0
        dev[f] = d if ok else np.nan
        lg = math.log(d) if ok else 0.0
        s1[f + 1] = s1[f] + lg
        s2[f + 1] = s2[f] + lg * lg
        count[f + 1] = count[f] + (1 if ok else 0)
    window = np.empty(2 * half + 1)
    for f in range(n_f):
        best_lo, best_hi, best = -1, -1, np.inf
        for side in range(3):
            lo = max(0, f - half) if side < 2 else f
            hi = min(n_f - 1, f + half) if side != 1 else f
            k = count[hi + 1] - count[lo]
            if hi - lo < min(half, n_f - 1) or k < 2:
                continue
            mean = (s1[hi + 1] - s1[lo]) / k
            spread = (s2[hi + 1] - s2[lo]) / k - mean * mean
            if spread < best or best_lo < 0:
                best_lo, best_hi, best = lo, hi, spread
        if best_lo < 0:
            # too few channels anywhere near: the centred window's, whatever it holds
            best_lo, best_hi = max(0, f - half), min(n_f - 1, f + half)
        m = 0
        for j in range(best_lo, best_hi + 1):
            if not np.isnan(dev[j]):
                window[m] = dev[j]
                m += 1
        if m > 0:
            out[f] = MAD_TO_SIGMA * median_scratch(window, m)
    return out


@njit
def sorting_network(n, keep):
    """Batcher's odd-even merge sort network for ``n`` inputs, pruned to the ``keep`` smallest.

    Returns
    -------
    ndarray, int64, shape (comparator, 2)
        Pairs ``(i, j)``, ``i < j``, applied in order: put the smaller value at ``i``. After them
        positions ``0 .. keep - 1`` hold the ``keep`` smallest inputs in ascending order (the rest
        a permutation of the others).
    """
    pairs = _pair_space(n)
    m = 0
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    # i + j and i + j + k in one block of 2p (an integer division cost
                    # most of building a network: ~5 us for 60 inputs)
                    if ((i + j) ^ (i + j + k)) < 2 * p:
                        pairs[m, 0], pairs[m, 1] = i + j, i + j + k
                        m += 1
            k //= 2
        p *= 2
    return _pruned(pairs[:m], n, keep)


@njit
def bitonic_merger(n, keep):
    """A network sorting ``n`` inputs that are bitonic (non-increasing, then non-decreasing,
    such as the distances of sorted values from their median), pruned to the ``keep``
    smallest: Batcher's half-cleaners over the next power of two, the inputs beyond ``n``
    taken as +inf (their comparators exchange nothing, so they are left out). Pairs as
    :func:`sorting_network`'s."""
    pairs = _pair_space(n)
    m = 0
    size = 1
    while size < n:
        size *= 2
    half = size // 2
    while half >= 1:
        for start in range(0, size, 2 * half):
            for i in range(start, start + half):
                if i + half < n:
                    pairs[m, 0], pairs[m, 1] = i, i + half
                    m += 1
        half //= 2
    return _pruned(pairs[:m], n, keep)


@njit
def _pair_space(n):
    """Room for the comparators of either network on ``n`` inputs (at most size log2(size)^2
    for ``size`` the power of two from ``n``). Arrays, not lists of tuples: networks are built
    for every plane, and list appends made that ~5 us of each window statistic."""
    size, depth = 1, 0
    while size < n:
        size *= 2
        depth += 1
    return np.empty((size * (depth + 1) * (depth + 1), 2), np.int64)


@njit
def _pruned(pairs, n, keep):
    """``pairs`` without the comparators that cannot move a value into the first ``keep``
    positions."""
    # Walking backwards, a comparator matters only if it feeds a position still needed.
    needed = np.zeros(max(n, 1), np.bool_)
    needed[:keep] = True
    used = np.zeros(pairs.shape[0], np.bool_)
    for c in range(pairs.shape[0] - 1, -1, -1):
        i, j = pairs[c, 0], pairs[c, 1]
        if needed[i] or needed[j]:
            used[c] = True
            needed[i] = needed[j] = True
    out = np.empty((used.sum(), 2), np.int64)
    m = 0
    for c in range(pairs.shape[0]):
        if used[c]:
            out[m, 0], out[m, 1] = pairs[c, 0], pairs[c, 1]
            m += 1
    return out


@njit
def _apply_network(rows, network):
    """Sort ``rows`` (slot, lane) along its first axis in every lane at once (branch-free)."""
    # Indices, not row views: a view's reference counting cost as much as a comparator
    for c in range(network.shape[0]):
        i, j = network[c, 0], network[c, 1]
        for x in range(rows.shape[1]):
            a, b = rows[i, x], rows[j, x]
            s = a < b
            # + 0.0 makes both stores unconditional: storing back a value just loaded from
            # the same place, LLVM turned the pair into masked stores, slow on this AMD EPYC
            # (a comparator over 32 lanes 36 -> 14 ns). It turns -0.0 into +0.0, which
            # compares and subtracts the same.
            rows[i, x] = (a if s else b) + 0.0
            rows[j, x] = (b if s else a) + 0.0


@njit
def lane_medians(values, valid):
    """Median of every lane (column) of ``values`` over its ``valid``, finite samples.

    Shapes (sample, lane) -> (lane,); ``inf`` for a lane with no such sample. One exact
    selection per lane, or for at most :data:`_NETWORK_SAMPLES` samples and more than four
    lanes a sorting network across the lanes: spectra have few lanes (4 per baseline of one
    integration), where a network cost more to build (57 us for 192 samples) than the
    selections take; a time plane's 32 channels of 60 integrations took ~22 us by selection.
    """
    n, lanes = values.shape
    out = np.full(lanes, np.inf)
    if n <= _NETWORK_SAMPLES and lanes > 4:
        rows = np.empty((n, lanes))
        count = np.zeros(lanes, np.int64)
        for i in range(n):
            for j in range(lanes):
                v = values[i, j]
                ok = valid[i, j] and math.isfinite(v)
                rows[i, j] = v if ok else np.inf
                count[j] += ok
        _network_medians(rows, count, out)
        return out
    buf = np.empty(n)
    for j in range(lanes):
        m = 0
        for i in range(n):
            v = values[i, j]
            if valid[i, j] and math.isfinite(v):
                buf[m] = v
                m += 1
        if m > 0:
            out[j] = _middle(buf, m, (m - 1) // 2, m // 2)
    return out


@njit
def lane_median_below(values, centre, valid, bound):
    """Per lane (column): whether :func:`lane_medians` of ``|values - centre|`` is below
    ``bound`` (one value per lane), without that median: from counts of the lane's samples
    below the bound, which settle it unless the middle two straddle the bound (then the median
    is taken). A mean of two values both below (or both at or above) the bound is below (at or
    above) it in floating point too, so the answers are those of comparing the medians; a
    selection per lane cost as much as the rest of a robust start (robust fits of the 352 x 6
    LWA-like spectra: 14% of the spectral detector)."""
    n, lanes = values.shape
    m = np.zeros(lanes, np.int64)
    c = np.zeros(lanes, np.int64)
    for i in range(n):
        for j in range(lanes):
            d = abs(values[i, j] - centre[i, j])
            ok = valid[i, j] & math.isfinite(d)
            m[j] += ok
            c[j] += ok & (d < bound[j])
    out = np.zeros(lanes, np.bool_)
    buf = np.empty(n)
    for j in range(lanes):
        hi = m[j] // 2
        if m[j] == 0 or c[j] <= (m[j] - 1) // 2:
            continue
        if c[j] > hi:
            out[j] = True
            continue
        k = 0
        for i in range(n):
            d = abs(values[i, j] - centre[i, j])
            if valid[i, j] and math.isfinite(d):
                buf[k] = d
                k += 1
        out[j] = _middle(buf, k, (k - 1) // 2, hi) < bound[j]
    return out


@njit
def _window_median_mad_lanes(values, mask, half_row, half_lane, min_count, with_mad):
    """:func:`window_median_mad` with windows of +/- ``half_lane`` along the last axis (the lanes
    of the vectorized sort) and +/- ``half_row`` along the first; ``with_mad`` False skips the MAD
    (left NaN)."""
    n_r, n_l = values.shape
    wr, wl = 2 * half_row + 1, 2 * half_lane + 1
    slots = wr * wl
    # The masked median of at most ``slots`` values needs ranks up to slots // 2 only. The MAD
    # needs them all sorted: their distances from the median are then bitonic, and a merger
    # sorts those (25 slots: 140 + 40 comparators instead of twice 124).
    network = sorting_network(slots, slots if with_mad else slots // 2 + 1)
    merger = bitonic_merger(slots, slots // 2 + 1) if with_mad else network
    # Masked, non-finite and outside samples become +inf: they sort last and are not counted.
    padded = np.full((n_r + 2 * half_row, n_l + 2 * half_lane), np.inf)
    for r in range(n_r):
        for x in range(n_l):
            v = values[r, x]
            if not mask[r, x] and math.isfinite(v):
                padded[r + half_row, x + half_lane] = v
    median = np.full((n_r, n_l), np.nan)
    mad = np.full((n_r, n_l), np.nan)
    # Several rows share each pass of the network, so every comparator runs over a long
    # contiguous lane axis (short loops would spend their time in loop set-up).
    batch = max(1, min(n_r, LANES // max(n_l, 1)))
    width = batch * n_l
    window = np.empty((slots, width))
    count = np.empty(width, np.int64)
    centre = np.empty(width)
    need = max(min_count, 1)
    for r0 in range(0, n_r, batch):
        n_b = min(batch, n_r - r0)
        # Element loops, not slice copies: with few lanes (a spectrum's 4-24) a slice's set-up
        # cost more than its copy (running medians of 192 x 4 samples 128 -> 25 us).
        for b in range(batch):
            for dr in range(wr):
                for dl in range(wl):
                    s = dr * wl + dl
                    if b < n_b:
                        for x in range(n_l):
                            window[s, b * n_l + x] = padded[r0 + b + dr, dl + x]
                    else:
                        for x in range(n_l):
                            window[s, b * n_l + x] = np.inf
        count[:] = 0
        for s in range(slots):
            row = window[s]
            for x in range(width):
                count[x] += row[x] < np.inf
        _apply_network(window, network)
        for x in range(width):
            m = count[x]
            centre[x] = 0.0
            if m >= need:
                centre[x] = 0.5 * (window[(m - 1) // 2, x] + window[m // 2, x])
        for b in range(n_b):
            for x in range(n_l):
                if count[b * n_l + x] >= need:
                    median[r0 + b, x] = centre[b * n_l + x]
        if not with_mad:
            continue
        for s in range(slots):
            row = window[s]
            for x in range(width):
                row[x] = abs(row[x] - centre[x])
        _apply_network(window, merger)
        for b in range(n_b):
            for x in range(n_l):
                m = count[b * n_l + x]
                if m >= need:
                    mad[r0 + b, x] = 0.5 * (window[(m - 1) // 2, b * n_l + x]
                                            + window[m // 2, b * n_l + x])
    return median, mad


@njit
def window_median_mad(values, mask, half_time, half_freq, min_count):
    """Median and MAD of the unmasked samples in a sliding (time, frequency) window.

    The window around (t, f) spans t +/- ``half_time`` and f +/- ``half_freq``, clipped at the
    edges. Each window is sorted by a sorting network applied to all windows of a row at once
    (vectorized along the longer axis), the absolute deviations from the median likewise.

    Parameters
    ----------
    values : ndarray, float64, shape (time, frequency)
    mask : ndarray, bool, shape (time, frequency)
        Samples to leave out (non-finite values are left out too).
    half_time, half_freq : int
    min_count : int
        Windows with fewer unmasked samples get NaN.

    Returns
    -------
    median, mad : ndarray, float64, shape (time, frequency)
    """
    if values.shape[0] > values.shape[1]:
        med_t, mad_t = _window_median_mad_lanes(values.T.copy(), mask.T.copy(), half_freq,
                                                half_time, min_count, True)
        return med_t.T.copy(), mad_t.T.copy()
    return _window_median_mad_lanes(values, mask, half_time, half_freq, min_count, True)


# Windows wider than this, or of at most 4 lanes, are kept sorted sample by sample
# (:func:`_sliding_median_lanes`): a sorting network's work per window grows as w log^2 w, an
# insertion and a removal as w, and with few lanes its passes are short. Medians of 192 samples,
# network -> sliding: 4 lanes +/- 3 14 -> 7 us, 12 lanes +/- 24 453 -> 160 us; 24 lanes +/- 3
# (the network's case) 56 vs 64 us.
_NETWORK_SLOTS = 15


@njit
def _sliding_median_lanes(values, mask, half):
    """:func:`running_median_lanes` lane by lane from a sorted window that gains the sample
    entering it and loses the one leaving it at every step (the same medians: the mean of the
    middle two of the unmasked finite values in reach)."""
    n, lanes = values.shape
    out = np.full((n, lanes), np.nan)
    window = np.empty(2 * half + 1)
    for j in range(lanes):
        m = 0
        for i in range(-half, n):
            add = i + half
            if add < n and not mask[add, j] and math.isfinite(values[add, j]):
                v = values[add, j]
                k = m
                while k > 0 and window[k - 1] > v:
                    window[k] = window[k - 1]
                    k -= 1
                window[k] = v
                m += 1
            drop = i - half - 1
            if drop >= 0 and not mask[drop, j] and math.isfinite(values[drop, j]):
                v = values[drop, j]
                k = 0
                while window[k] != v:
                    k += 1
                for s in range(k, m - 1):
                    window[s] = window[s + 1]
                m -= 1
            if i >= 0 and m > 0:
                out[i, j] = 0.5 * (window[(m - 1) // 2] + window[m // 2])
    return out


@njit
def _median7_lanes(values, mask, half):
    """:func:`running_median_lanes` for ``half`` <= 3: each window's (up to) seven samples
    sorted by a network written out as selects (Knuth's 16 comparators for seven inputs, less
    the one that only orders the largest three; checked on every 0-1 input), all (sample, lane) positions in one loop over
    the flattened block that vectorizes (masked, non-finite and outside samples are +inf: they
    sort last and are not counted). A window of seven slid over 24 lanes of 192 samples: the
    general network's copies of every window cost ~6x this."""
    n, lanes = values.shape
    size = n * lanes
    # Three rows of +inf each side, whatever ``half``: slots beyond it are read as +inf.
    padded = np.full((n + 6) * lanes, np.inf)
    for i in range(n):
        for j in range(lanes):
            v = values[i, j]
            if not mask[i, j] and math.isfinite(v):
                padded[(i + 3) * lanes + j] = v
    out = np.empty((n, lanes))
    flat = out.reshape(size)
    r0, r1, r2 = padded[:size], padded[lanes:lanes + size], padded[2 * lanes:2 * lanes + size]
    r3, r4 = padded[3 * lanes:3 * lanes + size], padded[4 * lanes:4 * lanes + size]
    r5, r6 = padded[5 * lanes:5 * lanes + size], padded[6 * lanes:6 * lanes + size]
    far = half < 3
    near = half < 2
    for e in range(size):
        a0 = np.inf if far else r0[e]
        a1 = np.inf if near else r1[e]
        a2 = r2[e] if half >= 1 else np.inf
        a3 = r3[e]
        a4 = r4[e] if half >= 1 else np.inf
        a5 = np.inf if near else r5[e]
        a6 = np.inf if far else r6[e]
        m = ((a0 < np.inf) + (a1 < np.inf) + (a2 < np.inf) + (a3 < np.inf) + (a4 < np.inf)
             + (a5 < np.inf) + (a6 < np.inf))
        a0, a6 = (a0, a6) if a0 < a6 else (a6, a0)
        a2, a3 = (a2, a3) if a2 < a3 else (a3, a2)
        a4, a5 = (a4, a5) if a4 < a5 else (a5, a4)
        a0, a2 = (a0, a2) if a0 < a2 else (a2, a0)
        a1, a4 = (a1, a4) if a1 < a4 else (a4, a1)
        a3, a6 = (a3, a6) if a3 < a6 else (a6, a3)
        a0, a1 = (a0, a1) if a0 < a1 else (a1, a0)
        a2, a5 = (a2, a5) if a2 < a5 else (a5, a2)
        a3, a4 = (a3, a4) if a3 < a4 else (a4, a3)
        a1, a2 = (a1, a2) if a1 < a2 else (a2, a1)
        a4, a6 = (a4, a6) if a4 < a6 else (a6, a4)
        a2, a3 = (a2, a3) if a2 < a3 else (a3, a2)
        a4, a5 = (a4, a5) if a4 < a5 else (a5, a4)
        a1, a2 = (a1, a2) if a1 < a2 else (a2, a1)
        a3, a4 = (a3, a4) if a3 < a4 else (a4, a3)
        # ranks (m - 1) // 2 and m // 2 of the sorted a0 <= a1 <= a2 <= a3
        low = a0 if m <= 2 else (a1 if m <= 4 else (a2 if m <= 6 else a3))
        high = a0 if m <= 1 else (a1 if m <= 3 else (a2 if m <= 5 else a3))
        flat[e] = 0.5 * (low + high) if m > 0 else np.nan
    return out


@njit
def running_median_lanes(values, weights, half):
    """Median of the positively weighted samples within +/- ``half`` along the first axis.

    Returns NaN where no such sample is in reach (non-finite values are left out). Shapes
    (sample, lane) -> (sample, lane); windows of up to seven samples by
    :func:`_median7_lanes`, other narrow windows of many lanes all at once
    (:func:`window_median_mad`'s sorting network), others by :func:`_sliding_median_lanes`.
    """
    if half <= 3:
        return _median7_lanes(values, weights <= 0.0, half)
    if 2 * half + 1 > _NETWORK_SLOTS or values.shape[1] <= 4:
        return _sliding_median_lanes(values, weights <= 0.0, half)
    median, _ = _window_median_mad_lanes(values, weights <= 0.0, half, 0, 1, False)
    return median


@njit
def running_median_rows(values, weights, half):
    """:func:`running_median_lanes` along the last axis: shapes (row, sample) in and out."""
    return running_median_lanes(values.T.copy(), weights.T.copy(), half).T.copy()
