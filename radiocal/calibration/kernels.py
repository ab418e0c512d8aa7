"""Numba kernels for calibration: one solver machinery for every diagonal Jones term.

Solving goes in two stages. :func:`accumulate_stats` reduces visibilities to per-baseline
sufficient statistics of each solution cell (a time interval x a frequency cell x an output hand)::

    R_pq = sum w V_pq conj(M'_pq)    Q_pq = sum w |M'_pq|^2    S_pq = sum w |V_pq|^2    N_pq = count

where ``M'`` is the model already corrupted by previously solved terms. For gains constant over the
cell the least-squares cost ``sum w |V - g_p M' conj(g_q)|^2`` depends on the data only through
these, so statistics from different chunks, scans or spectral windows simply add: chunks never
need to hold whole solution intervals, and combining scans or spectral windows is a sum.
:func:`solve_cells` then runs StefCal (alternating least squares, Salvini & Wijnholds 2014) on the
statistics of each cell for G (calmode ap/p/a), T (both hands summed into one), B (one cell per
channel), and the per-channel first step of K (see :mod:`radiocal.calibration.delay`).

Statistics layout, last axis of ``stats``: ``STAT_RE, STAT_IM`` (R), ``STAT_Q``, ``STAT_S``,
``STAT_N``. Everything accumulates in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from radiocal._numba import njit

STAT_RE, STAT_IM, STAT_Q, STAT_S, STAT_N = range(5)
N_STATS = 5
# a solved cell as the graphs hand it over, last axis: gain re, im (re holds a delay), SNR,
# error, flag (0/1), reference antenna used (-1: none)
N_PACKED = 6

MODE_AP, MODE_P, MODE_A = 0, 1, 2
CALMODES = {"ap": MODE_AP, "p": MODE_P, "a": MODE_A}


@njit
def accumulate_stats(vis, model, weight, flag, jones, piece, n_pieces, fcell, n_fcells,
                     ant1, ant2, corr_hand1, corr_hand2, corr_out, n_out):
    """Sufficient statistics of every (piece, frequency cell, baseline, output hand).

    Parameters
    ----------
    vis, model : complex64 (time, baseline, frequency, polarization)
    weight : float32 (time, baseline, frequency, polarization)
    flag : bool (time, baseline, frequency, polarization)
    jones : complex (time, antenna, frequency, hand)
        Previously solved terms; the model is corrupted by them (``J_p M conj(J_q)``).
    piece : int (time,)
        Index of the solution piece each time belongs to, ``0 .. n_pieces-1``.
    fcell : int (frequency,)
        Frequency cell of each channel, ``0 .. n_fcells-1``.
    ant1, ant2 : int (baseline,)
    corr_hand1, corr_hand2 : int (polarization,)
        Hand index (into ``jones``) of each side of a correlation.
    corr_out : int (polarization,)
        Output hand of a correlation, or -1 to leave it out (cross hands).

    Returns
    -------
    stats : float64 (piece, frequency cell, baseline, out hand, 5)
    """
    nt, nbl, nf, npol = vis.shape
    stats = np.zeros((n_pieces, n_fcells, nbl, n_out, N_STATS))
    for t in range(nt):
        k = piece[t]
        if k < 0:
            continue
        for b in range(nbl):
            p = ant1[b]
            q = ant2[b]
            if p == q:
                continue
            for f in range(nf):
                c = fcell[f]
                if c < 0:
                    continue
                for pol in range(npol):
                    o = corr_out[pol]
                    if o < 0 or flag[t, b, f, pol]:
                        continue
                    w = np.float64(weight[t, b, f, pol])
                    if not (w > 0.0):
                        continue
                    v = np.complex128(vis[t, b, f, pol])
                    m = (np.complex128(model[t, b, f, pol])
                         * np.complex128(jones[t, p, f, corr_hand1[pol]])
                         * np.conj(np.complex128(jones[t, q, f, corr_hand2[pol]])))
                    if not (np.isfinite(v.real) and np.isfinite(v.imag)
                            and np.isfinite(m.real) and np.isfinite(m.imag)):
                        continue
                    r = w * v * np.conj(m)
                    stats[k, c, b, o, STAT_RE] += r.real
                    stats[k, c, b, o, STAT_IM] += r.imag
                    stats[k, c, b, o, STAT_Q] += w * (m.real * m.real + m.imag * m.imag)
                    stats[k, c, b, o, STAT_S] += w * (v.real * v.real + v.imag * v.imag)
                    stats[k, c, b, o, STAT_N] += 1.0
    return stats


@njit
def segment_sum(stats, starts):
    """Sum consecutive rows of ``stats`` into segments beginning at ``starts`` (sorted)."""
    nseg = starts.shape[0]
    out = np.zeros((nseg,) + stats.shape[1:])
    for s in range(nseg):
        stop = stats.shape[0] if s == nseg - 1 else starts[s + 1]
        for i in range(starts[s], stop):
            out[s] += stats[i]
    return out


@njit
def _active_antennas(q_bl, ant1, ant2, nant, minblperant):
    """Antennas with at least ``minblperant`` usable baselines, removing the rest repeatedly."""
    nbl = ant1.shape[0]
    use_bl = np.zeros(nbl, dtype=np.bool_)
    for b in range(nbl):
        use_bl[b] = q_bl[b] > 0.0 and ant1[b] != ant2[b]
    active = np.ones(nant, dtype=np.bool_)
    changed = True
    while changed:
        changed = False
        count = np.zeros(nant, dtype=np.int64)
        for b in range(nbl):
            if use_bl[b] and active[ant1[b]] and active[ant2[b]]:
                count[ant1[b]] += 1
                count[ant2[b]] += 1
        for a in range(nant):
            if active[a] and count[a] < max(minblperant, 1):
                active[a] = False
                changed = True
    for b in range(nbl):
        use_bl[b] = use_bl[b] and active[ant1[b]] and active[ant2[b]]
    return active, use_bl


@njit
def _stefcal(y, qw, use_bl, active, ant1, ant2, nant, mode, max_iter, tol):
    """Alternating least squares for ``y_pq ~ g_p conj(g_q)`` with weights ``qw``."""
    nbl = ant1.shape[0]
    g = np.ones(nant, dtype=np.complex128)
    if mode != MODE_P:
        # start at the right overall amplitude so the first half-steps are not wasted
        num = 0.0
        den = 0.0
        for b in range(nbl):
            if use_bl[b]:
                num += qw[b] * abs(y[b])
                den += qw[b]
        if den > 0.0 and num > 0.0:
            for a in range(nant):
                g[a] = np.sqrt(num / den)
    for it in range(max_iter):
        numer = np.zeros(nant, dtype=np.complex128)
        denom = np.zeros(nant)
        for b in range(nbl):
            if not use_bl[b]:
                continue
            p = ant1[b]
            q = ant2[b]
            numer[p] += qw[b] * y[b] * g[q]
            denom[p] += qw[b] * (g[q].real ** 2 + g[q].imag ** 2)
            numer[q] += qw[b] * np.conj(y[b]) * g[p]
            denom[q] += qw[b] * (g[p].real ** 2 + g[p].imag ** 2)
        change = 0.0
        norm = 0.0
        for a in range(nant):
            if not active[a] or denom[a] <= 0.0:
                continue
            if mode == MODE_P:
                mag = abs(numer[a])
                new = numer[a] / mag if mag > 0.0 else g[a]
            elif mode == MODE_A:
                new = max(numer[a].real / denom[a], 1e-12) + 0j
            else:
                new = numer[a] / denom[a]
            if it % 2 == 1:
                # averaging every other step is what makes StefCal converge (no oscillation)
                new = 0.5 * (new + g[a])
                if mode == MODE_P:
                    mag = abs(new)
                    if mag > 0.0:
                        new = new / mag
            change += abs(new - g[a]) ** 2
            norm += abs(new) ** 2
            g[a] = new
        if it > 1 and norm > 0.0 and change <= tol * tol * norm:
            break
    return g


class SolveLimits(NamedTuple):
    """What a cell's solution needs to be made: the solve's options that :func:`solve_cells`
    reads, typed once (:meth:`of`) and passed whole. (Which solutions are kept, ``minsnr``, is
    the table's rule, applied to the SNR the solver returns: ``calibration/dataset.py``.)"""

    minblperant: int        # antennas with fewer usable baselines are left unsolved (flagged)
    max_iter: int = 100     # StefCal iterations at most
    tol: float = 1e-10      # StefCal's convergence: relative change of the gains

    @classmethod
    def of(cls, minblperant) -> SolveLimits:
        return cls(int(minblperant))


@njit
def solve_cells(stats, ant1, ant2, nant, refants, mode, limits):
    """Solve a diagonal gain per antenna for every cell of ``stats``.

    Parameters
    ----------
    stats : float64 (cell, frequency cell, baseline, hand, 5)
        From :func:`accumulate_stats`, summed over the pieces of each cell.
    ant1, ant2 : int (baseline,)
    refants : int (k,)
        Reference antennas in order of preference; the first one with a solution in a cell is
        used, else the lowest-numbered solved antenna. Empty: no phase referencing.
    mode : int
        ``MODE_AP``, ``MODE_P`` (unit amplitude) or ``MODE_A`` (real, positive).
    limits : SolveLimits

    Returns
    -------
    gain : complex128 (cell, frequency cell, antenna, hand)
        Flagged solutions are ``1+0j``.
    snr, err : float64 (cell, frequency cell, antenna, hand)
        ``err`` is the standard error of the real (or imaginary) part; ``snr = |g| / err``.
    flag : bool (cell, frequency cell, antenna, hand)
        What could not be solved (too few baselines, a non-finite gain or SNR); a solution
        whose SNR is below the solve's ``minsnr`` is flagged by the caller.
    used_ref : int (cell, frequency cell, hand)
        The reference antenna actually used, -1 if none.
    """
    ncell, nfc, nbl, nh, _ = stats.shape
    gain = np.ones((ncell, nfc, nant, nh), dtype=np.complex128)
    snr = np.zeros((ncell, nfc, nant, nh))
    err = np.zeros((ncell, nfc, nant, nh))
    flag = np.ones((ncell, nfc, nant, nh), dtype=np.bool_)
    used_ref = -np.ones((ncell, nfc, nh), dtype=np.int64)
    y = np.zeros(nbl, dtype=np.complex128)
    qw = np.zeros(nbl)
    for c in range(ncell):
        for fc in range(nfc):
            for h in range(nh):
                for b in range(nbl):
                    qw[b] = stats[c, fc, b, h, STAT_Q]
                    if qw[b] > 0.0:
                        y[b] = (stats[c, fc, b, h, STAT_RE]
                                + 1j * stats[c, fc, b, h, STAT_IM]) / qw[b]
                    else:
                        y[b] = 0.0
                active, use_bl = _active_antennas(qw, ant1, ant2, nant, limits.minblperant)
                nact = 0
                for a in range(nant):
                    if active[a]:
                        nact += 1
                if nact < 2:
                    continue
                g = _stefcal(y, qw, use_bl, active, ant1, ant2, nant, mode, limits.max_iter,
                             limits.tol)
                ref = -1
                for r in refants:
                    if 0 <= r < nant and active[r]:
                        ref = r
                        break
                if ref < 0 and refants.shape[0] > 0:
                    for a in range(nant):
                        if active[a]:
                            ref = a
                            break
                if ref >= 0 and mode != MODE_A:
                    rot = np.conj(g[ref]) / abs(g[ref]) if abs(g[ref]) > 0.0 else 1.0 + 0j
                    for a in range(nant):
                        g[a] = g[a] * rot
                used_ref[c, fc, h] = ref
                # Errors come from a fit with free amplitudes also when only phases are kept (as
                # CASA's): uncalibrated data are in correlator units, so unit-amplitude gains
                # would leave the whole amplitude scale in the residual and no phase solution
                # would pass minsnr (raw CARMA data: 0 of 20 solved, SNR 0.8 instead of 53)
                fit = _stefcal(y, qw, use_bl, active, ant1, ant2, nant, MODE_AP,
                               limits.max_iter, limits.tol) if mode == MODE_P else g
                # chi^2 of the full-resolution data follows from the statistics exactly
                chi2 = 0.0
                nsamp = 0.0
                info = np.zeros(nant)
                for b in range(nbl):
                    if not use_bl[b]:
                        continue
                    p = ant1[b]
                    q = ant2[b]
                    x = fit[p] * np.conj(fit[q])
                    rr = stats[c, fc, b, h, STAT_RE] + 1j * stats[c, fc, b, h, STAT_IM]
                    chi2 += (stats[c, fc, b, h, STAT_S] - 2.0 * (np.conj(x) * rr).real
                             + (x.real ** 2 + x.imag ** 2) * qw[b])
                    nsamp += stats[c, fc, b, h, STAT_N]
                    info[p] += qw[b] * (fit[q].real ** 2 + fit[q].imag ** 2)
                    info[q] += qw[b] * (fit[p].real ** 2 + fit[p].imag ** 2)
                npar = nact if mode == MODE_A else 2 * nact - 1
                dof = 2.0 * nsamp - npar
                red = chi2 / dof if dof > 0.0 and chi2 > 0.0 else 1.0
                for a in range(nant):
                    if not active[a] or info[a] <= 0.0:
                        continue
                    # chi2/dof estimates half the complex noise variance per weight unit
                    e = np.sqrt(red / info[a])
                    s = abs(fit[a]) / e if e > 0.0 else np.inf
                    err[c, fc, a, h] = e
                    snr[c, fc, a, h] = s
                    if (not np.isnan(s) and np.isfinite(g[a].real)
                            and np.isfinite(g[a].imag)):
                        gain[c, fc, a, h] = g[a]
                        flag[c, fc, a, h] = False
    return gain, snr, err, flag, used_ref


def apply_gains(vis, flag, weight, jones, jflag, ant1, ant2, corr_hand1, corr_hand2, calwt):
    """Correct visibilities by diagonal Jones terms: ``V / (J_p conj(J_q))``.

    Parameters
    ----------
    vis : complex64 (time, baseline, frequency, polarization)
    flag : bool, weight : float32, same shape as ``vis``
    jones : complex (time, antenna, frequency, hand)
        The product of every term of the chain, interpolated to the data.
    jflag : bool (time, antenna, frequency, hand)
        True where any term has no valid solution: those samples are flagged (data untouched).
    calwt : bool
        Scale weights by ``|J_p J_q|^2`` (the noise of corrected data scales by ``1/|J_p J_q|``).

    Returns
    -------
    vis_out : complex64, flag_out : bool, weight_out : float32 (same shape as ``vis``; without
    ``calwt`` it is ``weight``)
    """
    # Outputs come from numpy, not from inside the kernel: numpy asks the OS for huge pages for
    # large arrays, numba's allocator does not, and first touching fresh memory page by page
    # cost more than the correction itself.
    vis_out = np.empty_like(vis)
    flag_out = np.empty_like(flag)
    weight_out = np.empty(vis.shape if calwt else (0, 0, 0, 0), dtype=weight.dtype)
    _apply_gains(vis, flag, weight, jones, jflag, ant1, ant2, corr_hand1, corr_hand2, calwt,
                 vis_out, flag_out, weight_out)
    return vis_out, flag_out, weight_out if calwt else weight


@njit
def _apply_gains(vis, flag, weight, jones, jflag, ant1, ant2, corr_hand1, corr_hand2, calwt,
                 vis_out, flag_out, weight_out):
    nt, nbl, nf, npol = vis.shape
    # V / (J_p conj(J_q)) = V (1/J_p) conj(1/J_q): one division per antenna and hand instead
    # of one per visibility; a zero or flagged term becomes a zero inverse and flags.
    inverse = np.zeros(jones.shape, np.complex128)
    for t in range(nt):
        for a in range(jones.shape[1]):
            for f in range(nf):
                for h in range(jones.shape[3]):
                    g = np.complex128(jones[t, a, f, h])
                    if not jflag[t, a, f, h] and g != 0.0:
                        inverse[t, a, f, h] = 1.0 / g
    for t in range(nt):
        for b in range(nbl):
            p = ant1[b]
            q = ant2[b]
            for f in range(nf):
                for pol in range(npol):
                    x = inverse[t, p, f, corr_hand1[pol]] * np.conj(inverse[t, q, f, corr_hand2[pol]])
                    if x == 0.0:
                        vis_out[t, b, f, pol] = vis[t, b, f, pol]
                        flag_out[t, b, f, pol] = True
                        if calwt:
                            weight_out[t, b, f, pol] = weight[t, b, f, pol]
                        continue
                    vis_out[t, b, f, pol] = np.complex128(vis[t, b, f, pol]) * x
                    flag_out[t, b, f, pol] = flag[t, b, f, pol]
                    if calwt:
                        # |J_p J_q|^2 = 1 / |x|^2
                        weight_out[t, b, f, pol] = weight[t, b, f, pol] / (
                            x.real * x.real + x.imag * x.imag)


@njit
def interpolate_time(values, valid, sol_time, times, linear, propagate=False):
    """Interpolate solutions in time, column by column.

    Linear interpolation goes in amplitude and phase separately (the shorter way round), as
    CASA does, so interpolating between two unit-amplitude phases stays on the unit circle.
    Outside the span of the solutions the nearest one is used.

    Parameters
    ----------
    values : complex128 (solution, column)
    valid : bool (solution, column)
    sol_time : float64 (solution,), sorted ascending
    times : float64 (time,)
    linear : bool
        Linear, else nearest.
    propagate : bool
        False: flagged solutions are skipped (interpolate between the valid neighbours).
        True (CASA applycal): every solution takes part and a flagged one flags the samples
        it contributes to.

    Returns
    -------
    out : complex128 (time, column), flag : bool (time, column) where no valid solution applies
    """
    nsol, ncol = values.shape
    nt = times.shape[0]
    out = np.ones((nt, ncol), dtype=np.complex128)
    flag = np.ones((nt, ncol), dtype=np.bool_)
    idx = np.empty(nsol, dtype=np.int64)
    for c in range(ncol):
        n = 0
        for s in range(nsol):
            if valid[s, c] or propagate:
                idx[n] = s
                n += 1
        if n == 0:
            continue
        j = 0
        for t in range(nt):
            x = times[t]
            while j < n - 1 and sol_time[idx[j + 1]] <= x:
                j += 1
            lo = idx[j]
            if n == 1 or x <= sol_time[idx[0]]:
                out[t, c] = values[idx[0], c]
                flag[t, c] = not valid[idx[0], c]
            elif j == n - 1:
                out[t, c] = values[idx[n - 1], c]
                flag[t, c] = not valid[idx[n - 1], c]
            else:
                hi = idx[j + 1]
                t0 = sol_time[lo]
                t1 = sol_time[hi]
                if linear and t1 > t0:
                    frac = (x - t0) / (t1 - t0)
                    v0 = values[lo, c]
                    v1 = values[hi, c]
                    a0 = abs(v0)
                    a1 = abs(v1)
                    dphi = np.angle(v1 * np.conj(v0)) if a0 > 0.0 and a1 > 0.0 else 0.0
                    phi = np.angle(v0) + frac * dphi
                    amp = a0 + frac * (a1 - a0)
                    out[t, c] = amp * np.exp(1j * phi)
                    flag[t, c] = ((frac < 1.0 and not valid[lo, c])
                                  or (frac > 0.0 and not valid[hi, c]))
                else:
                    near = lo if x - t0 <= t1 - x else hi
                    out[t, c] = values[near, c]
                    flag[t, c] = not valid[near, c]
    return out, flag


@njit
def interpolate_frequency(values, valid, sol_freq, freqs, linear):
    """Interpolate solutions over frequency (last-but-one axis), skipping invalid channels.

    Parameters
    ----------
    values : complex128 (row, solution_frequency, column)
    valid : bool (row, solution_frequency, column)
    sol_freq : float64 (solution_frequency,), ascending
    freqs : float64 (frequency,)

    Returns
    -------
    out : complex128 (row, frequency, column), flag : bool (row, frequency, column)
    """
    nrow, nsf, ncol = values.shape
    nf = freqs.shape[0]
    out = np.ones((nrow, nf, ncol), dtype=np.complex128)
    flag = np.ones((nrow, nf, ncol), dtype=np.bool_)
    idx = np.empty(nsf, dtype=np.int64)
    for r in range(nrow):
        for c in range(ncol):
            n = 0
            for s in range(nsf):
                if valid[r, s, c]:
                    idx[n] = s
                    n += 1
            if n == 0:
                continue
            j = 0
            for f in range(nf):
                x = freqs[f]
                while j < n - 1 and sol_freq[idx[j + 1]] <= x:
                    j += 1
                if n == 1 or x <= sol_freq[idx[0]]:
                    out[r, f, c] = values[r, idx[0], c]
                elif j == n - 1:
                    out[r, f, c] = values[r, idx[n - 1], c]
                else:
                    lo = idx[j]
                    hi = idx[j + 1]
                    f0 = sol_freq[lo]
                    f1 = sol_freq[hi]
                    if linear and f1 > f0:
                        frac = (x - f0) / (f1 - f0)
                        v0 = values[r, lo, c]
                        v1 = values[r, hi, c]
                        a0 = abs(v0)
                        a1 = abs(v1)
                        dphi = np.angle(v1 * np.conj(v0)) if a0 > 0.0 and a1 > 0.0 else 0.0
                        out[r, f, c] = (a0 + frac * (a1 - a0)) * np.exp(
                            1j * (np.angle(v0) + frac * dphi))
                    else:
                        out[r, f, c] = values[r, lo, c] if x - f0 <= f1 - x else values[r, hi, c]
                flag[r, f, c] = False
    return out, flag


@njit
def _scan_nodes(values, valid, sol_time, sol_segment, c, node):
    """Nodes of column ``c`` for :func:`interpolate_time_hermite`: one per run of valid
    solutions sharing a scan, as rows ``(time, log amplitude, phase, log-amp rate, phase rate,
    has_rate, first time, last time, first solution)`` of ``node``. Returns the number of
    nodes."""
    nsol = values.shape[0]
    k = 0
    s = 0
    while s < nsol:
        if not valid[s, c] or values[s, c] == 0:
            s += 1
            continue
        scan = sol_segment[s]
        t_ref = sol_time[s]
        prev = values[s, c]
        phi = np.angle(prev)
        # least-squares line through (t, log|g|) and (t, unwrapped phase) of the scan
        n = st = stt = sa = sta = sp = stp = 0.0
        first = last = t_ref
        e = s
        while e < nsol and sol_segment[e] == scan:
            v = values[e, c]
            if valid[e, c] and v != 0:
                phi += np.angle(v * np.conj(prev))
                prev = v
                x = sol_time[e] - t_ref
                la = np.log(abs(v))
                n += 1.0
                st += x
                stt += x * x
                sa += la
                sta += x * la
                sp += phi
                stp += x * phi
                last = sol_time[e]
            e += 1
        xm = st / n
        sxx = stt - n * xm * xm
        has_rate = n >= 2.0 and sxx > 1e-12 * max(stt, 1.0)
        node[k, 0] = t_ref + xm
        node[k, 1] = sa / n
        node[k, 2] = sp / n
        node[k, 3] = (sta - xm * sa) / sxx if has_rate else 0.0
        node[k, 4] = (stp - xm * sp) / sxx if has_rate else 0.0
        node[k, 5] = 1.0 if has_rate else 0.0
        node[k, 6] = first
        node[k, 7] = last
        node[k, 8] = s
        if k > 0:
            # consecutive scans join the shorter way round, as linear interpolation does
            d = node[k, 2] - node[k - 1, 2]
            node[k, 2] -= 2.0 * np.pi * np.floor(d / (2.0 * np.pi) + 0.5)
        k += 1
        s = e
    for i in range(k):
        if node[i, 5] == 0.0 and k > 1:
            # no rate of its own: the slope through the neighbouring nodes
            lo, hi = max(i - 1, 0), min(i + 1, k - 1)
            span = node[hi, 0] - node[lo, 0]
            if span > 0.0:
                node[i, 3] = (node[hi, 1] - node[lo, 1]) / span
                node[i, 4] = (node[hi, 2] - node[lo, 2]) / span
    return k


@njit
def interpolate_time_hermite(values, valid, sol_time, sol_segment, times):
    """Interpolate solutions in time through per-scan values and rates (cubic Hermite).

    Each scan's valid solutions give a node: a least-squares line through their log amplitudes
    and unwrapped phases, i.e. the value at the scan's mean time and its rate of change. Between
    consecutive nodes log amplitude and phase follow the cubic Hermite curve that matches both
    nodes' values and rates, so a gain drifting smoothly between calibrator scans is followed
    along its curvature where linear interpolation cuts the chord. A scan with a single solution
    takes the slope through its neighbouring nodes. Consecutive nodes join the shorter way round,
    as in linear interpolation (the phase must change by less than pi between scans). Before the
    first node and after the last the node's line is followed across its own scan, then held.
    Flagged solutions never contribute.

    Parameters
    ----------
    values : complex128 (solution, column)
    valid : bool (solution, column)
    sol_time : float64 (solution,), sorted ascending
    sol_segment : int64 (solution,)
        Consecutive solutions with the same value form one scan's node (the scan number, or
        runs split further at gaps: :func:`radiocal.calibration.jones._solution_segments`).
    times : float64 (time,)

    Returns
    -------
    out : complex128 (time, column), flag : bool (time, column) where the column has no valid
    solution
    """
    nodes, present = hermite_nodes(values, valid, sol_time, sol_segment)
    return interpolate_nodes(nodes, present, times)


@njit
def hermite_nodes(values, valid, sol_time, sol_segment):
    """The nodes of :func:`interpolate_time_hermite`, computed once for a whole table.

    Returns
    -------
    nodes : float64 (run, column, 8)
        Row ``(time, log amplitude, phase, log-amp rate, phase rate, has_rate, first time,
        last time)`` of the node of each run of equal ``sol_segment`` (see
        :func:`_scan_nodes`): its phase already unwrapped against the column's earlier nodes and
        its borrowed rate already taken from its neighbours, so :func:`interpolate_nodes` on any
        range of runs that brackets some times gives what the whole table gives there.
    present : bool (run, column)
        Where the run has a node (a valid solution) in the column.
    """
    nsol, ncol = values.shape
    run = np.zeros(nsol, dtype=np.int64)
    for s in range(1, nsol):
        run[s] = run[s - 1] + (sol_segment[s] != sol_segment[s - 1])
    n_runs = run[nsol - 1] + 1 if nsol else 0
    nodes = np.zeros((n_runs, ncol, 8), dtype=np.float64)
    present = np.zeros((n_runs, ncol), dtype=np.bool_)
    node = np.empty((max(nsol, 1), 9), dtype=np.float64)
    for c in range(ncol):
        k = _scan_nodes(values, valid, sol_time, sol_segment, c, node)
        for i in range(k):
            r = run[int(node[i, 8])]
            # Element by element: an array assigned to a slice compiles numba's shape-mismatch
            # message (string formatting, ~4 CPU-s of a cold calibrate).
            for j in range(8):
                nodes[r, c, j] = node[i, j]
            present[r, c] = True
    return nodes, present


@njit
def interpolate_nodes(nodes, present, times):
    """Cubic Hermite interpolation (:func:`interpolate_time_hermite`) through given nodes.

    Parameters
    ----------
    nodes : float64 (run, column, 8), present : bool (run, column)
        From :func:`hermite_nodes`, or a range of runs of them.
    times : float64 (time,)

    Returns
    -------
    out : complex128 (time, column), flag : bool (time, column)
    """
    n_runs, ncol, _ = nodes.shape
    nt = times.shape[0]
    out = np.ones((nt, ncol), dtype=np.complex128)
    flag = np.ones((nt, ncol), dtype=np.bool_)
    node = np.empty((max(n_runs, 1), 8), dtype=np.float64)
    for c in range(ncol):
        k = 0
        for r in range(n_runs):
            if present[r, c]:
                for i in range(8):   # not node[k, :] = ...: see hermite_nodes
                    node[k, i] = nodes[r, c, i]
                k += 1
        if k == 0:
            continue
        j = 0
        for t in range(nt):
            x = times[t]
            while j < k - 2 and node[j + 1, 0] <= x:
                j += 1
            if k == 1 or x <= node[0, 0] or x >= node[k - 1, 0]:
                i = 0 if x <= node[0, 0] else k - 1
                dx = min(max(x, node[i, 6]), node[i, 7]) - node[i, 0]
                la = node[i, 1] + node[i, 3] * dx
                ph = node[i, 2] + node[i, 4] * dx
            else:
                h = node[j + 1, 0] - node[j, 0]
                u = (x - node[j, 0]) / h
                h00 = (1.0 + 2.0 * u) * (1.0 - u) ** 2
                h10 = u * (1.0 - u) ** 2
                h01 = u * u * (3.0 - 2.0 * u)
                h11 = u * u * (u - 1.0)
                la = (h00 * node[j, 1] + h10 * h * node[j, 3]
                      + h01 * node[j + 1, 1] + h11 * h * node[j + 1, 3])
                ph = (h00 * node[j, 2] + h10 * h * node[j, 4]
                      + h01 * node[j + 1, 2] + h11 * h * node[j + 1, 4])
            out[t, c] = np.exp(la) * np.exp(1j * ph)
            flag[t, c] = False
    return out, flag
