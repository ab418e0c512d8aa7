"""Delay (K) solving on per-channel sufficient statistics; no dask or xarray here.

Per solution cell and hand: (1) per-channel antenna gains by the shared StefCal solver
(:func:`radiocal.calibration.kernels.solve_cells`), referenced to the reference antenna;
(2) an FFT of each antenna's spectrum, zero-padded 8x, for a first guess that cannot fall on a
wrong phase wrap (:func:`first_guess`); (3) a global Gauss-Newton fit of ``phi_p - phi_q + 2 pi
(nu - nu_ref)(tau_p - tau_q)`` to the phases of every baseline and channel, weighted by
``2 Q |Y|^2``. Every step of the fit is a sum over baselines and channels of per-baseline sums
(:func:`phase_sums`), so the statistics are never needed in one piece: blocks of channels and
baselines each contribute their sums (:mod:`radiocal.calibration.delay_graph`). Convention (as in
the data model and CASA's K Jones): an antenna's gain phase is ``+2 pi tau (nu - nu_ref)``.
"""

from __future__ import annotations

import numpy as np

from radiocal.calibration import kernels as K
from radiocal._numba import njit

PAD = 8


def fft_delay(spectrum, valid, freqs):
    """First-guess delay (s) of ``spectrum (frequency,)`` from the peak of its padded FFT."""
    if valid.sum() < 2:
        return 0.0
    step = np.min(np.diff(np.sort(freqs))) if freqs.size > 1 else 1.0
    if not step > 0:
        return 0.0
    slot = np.rint((freqs - freqs.min()) / step).astype(np.int64)
    grid = np.zeros(int(slot.max()) + 1, dtype=np.complex128)
    grid[slot[valid]] = spectrum[valid]
    npad = 1 << int(np.ceil(np.log2(max(PAD * grid.size, 2))))
    power = np.abs(np.fft.fft(grid, npad))
    peak = int(np.argmax(power))
    if peak > npad // 2:
        peak -= npad
    return peak / (npad * step)


N_CONST = 5      # per baseline: sum w, sum w dnu, sum w dnu^2, samples, sum Q


@njit
def phase_data(stats, dnu):
    """What the phase fit needs of a block of statistics, and its constant sums.

    Parameters
    ----------
    stats : float64 (cell, frequency, baseline, hand, 5)
    dnu : float64 (frequency,), ``nu - nu_ref`` of the block's channels

    Returns
    -------
    yw : float64 (cell, frequency, baseline, hand, 3)
        ``Y = R / Q`` (real, imaginary) and the weight of its phase ``w = 2 Q |Y|^2``.
    const : float64 (cell, baseline, hand, N_CONST)
        Sums over the block's channels of ``w``, ``w dnu``, ``w dnu^2``, the count of samples
        with ``w > 0``, and ``Q``: with the per-iteration sums they make the normal equations.
    """
    ncell, nf, nbl, nh, _ = stats.shape
    yw = np.zeros((ncell, nf, nbl, nh, 3))
    const = np.zeros((ncell, nbl, nh, N_CONST))
    for c in range(ncell):
        for f in range(nf):
            d = 2.0 * np.pi * dnu[f]
            for b in range(nbl):
                for h in range(nh):
                    q = stats[c, f, b, h, K.STAT_Q]
                    const[c, b, h, 4] += q
                    if not (q > 0.0):
                        continue
                    yr = stats[c, f, b, h, K.STAT_RE] / q
                    yi = stats[c, f, b, h, K.STAT_IM] / q
                    w = 2.0 * q * (yr * yr + yi * yi)
                    yw[c, f, b, h, 0] = yr
                    yw[c, f, b, h, 1] = yi
                    yw[c, f, b, h, 2] = w
                    if not (w > 0.0):
                        continue
                    const[c, b, h, 0] += w
                    const[c, b, h, 1] += w * d
                    const[c, b, h, 2] += w * d * d
                    const[c, b, h, 3] += 1.0
    return yw, const


@njit
def phase_sums(yw, dnu, ant1, ant2, use_bl, phi, tau, nant):
    """A block's share of one Gauss-Newton iteration over :func:`phase_data`.

    ``use_bl``: bool (cell, hand, baseline) of the block's baselines; ``phi``, ``tau``: float64
    (cell, hand, antenna), the current phases and delays. Returns float64 (cell, hand,
    2 antenna + 1): the right-hand side of the normal equations (``sum w J r`` over the block's
    baselines and channels, ``r`` the wrapped phase residual) and ``sum w r^2``.
    """
    ncell, nf, nbl, nh, _ = yw.shape
    out = np.zeros((ncell, nh, 2 * nant + 1))
    for c in range(ncell):
        for h in range(nh):
            for b in range(nbl):
                if not use_bl[c, h, b]:
                    continue
                p = ant1[b]
                q = ant2[b]
                for f in range(nf):
                    w = yw[c, f, b, h, 2]
                    if not (w > 0.0):
                        continue
                    d = 2.0 * np.pi * dnu[f]
                    theta = phi[c, h, p] - phi[c, h, q] + d * (tau[c, h, p] - tau[c, h, q])
                    y = yw[c, f, b, h, 0] + 1j * yw[c, f, b, h, 1]
                    r = np.angle(y * np.exp(-1j * theta))
                    out[c, h, p] += w * r
                    out[c, h, q] -= w * r
                    out[c, h, nant + p] += w * d * r
                    out[c, h, nant + q] -= w * d * r
                    out[c, h, 2 * nant] += w * r * r
    return out


def first_guess(gains, gflag, used_ref, qsum, freqs, ref_freq, ant1, ant2, nant, minblperant):
    """Where the fit of one cell and hand starts: antennas and baselines used, reference, the
    FFT delays and mean phases of the per-channel gains (referenced to that antenna).

    Parameters
    ----------
    gains, gflag : (frequency, antenna) per-channel solutions and flags
    used_ref : int (frequency,), the reference antenna of each channel's solution
    qsum : float64 (baseline,), ``sum Q`` over channels

    Returns
    -------
    active : bool (antenna,), use_bl : bool (baseline,), ref : int, phi, tau : float64 (antenna,)
    (``ref`` is -1 when fewer than two antennas can be solved).
    """
    active, use_bl = K._active_antennas(qsum, ant1, ant2, nant, minblperant)
    tau = np.zeros(nant)
    phi = np.zeros(nant)
    if active.sum() < 2:
        return active, use_bl, -1, phi, tau
    dnu = np.asarray(freqs, np.float64) - float(ref_freq)
    solved = ~gflag
    ref = (int(np.bincount(used_ref[used_ref >= 0]).argmax()) if (used_ref >= 0).any()
           else int(np.flatnonzero(active)[0]))
    for a in np.flatnonzero(active):
        tau[a] = fft_delay(gains[:, a], solved[:, a], freqs)
        rot = gains[:, a] * np.exp(-2j * np.pi * dnu * tau[a])
        phi[a] = np.angle(np.sum(np.where(solved[:, a], rot, 0)))
    return active, use_bl, ref, phi - phi[ref], tau - tau[ref]


def normal_equations(const, ant1, ant2, nant, active, use_bl, ref):
    """The normal matrix of the phase fit (the same at every step) and its sample count.

    ``const``: (baseline, N_CONST) summed over all channels. Rows and columns of inactive
    antennas and of ``ref`` (held at zero) are the identity.
    """
    b = np.flatnonzero(use_bl)
    p, q = np.asarray(ant1)[b], np.asarray(ant2)[b]
    tp, tq = nant + p, nant + q
    sw, swd, swdd, nobs = (const[b, k] for k in range(4))
    normal = np.zeros((2 * nant, 2 * nant))
    for rows, cols, value in ((p, p, sw), (q, q, sw), (p, q, -sw), (q, p, -sw),
                              (p, tp, swd), (p, tq, -swd), (q, tp, -swd), (q, tq, swd),
                              (tp, p, swd), (tq, p, -swd), (tp, q, -swd), (tq, q, swd),
                              (tp, tp, swdd), (tq, tq, swdd), (tp, tq, -swdd), (tq, tp, -swdd)):
        np.add.at(normal, (rows, cols), value)
    fixed = np.flatnonzero(~np.asarray(active) | (np.arange(nant) == ref))
    for k in np.concatenate([fixed, nant + fixed]):
        normal[k, :] = 0.0
        normal[:, k] = 0.0
        normal[k, k] = 1.0
    return normal, float(nobs.sum())


def gauss_newton_step(normal, nobs, sums, active, ref, phi, tau, nant):
    """One step from the summed :func:`phase_sums` of every block (``sums``: 2 antenna + 1).

    Returns the new ``phi, tau`` and the reduced chi^2 at the old ones.
    """
    rhs = sums[:2 * nant].copy()
    fixed = np.flatnonzero(~np.asarray(active) | (np.arange(nant) == ref))
    rhs[fixed] = 0.0
    rhs[nant + fixed] = 0.0
    step = np.linalg.solve(normal, rhs)
    chi2 = float(sums[2 * nant])
    dof = nobs - 2 * (int(np.sum(active)) - 1)
    red = chi2 / dof if dof > 0 and chi2 > 0.0 else 1.0
    return phi + step[:nant], tau + step[nant:], red


def delay_solutions(active, ref, tau, cov, red, nant):
    """Delay, SNR, error and flag per antenna of one cell and hand from the final fit (the
    flag: what could not be solved; ``minsnr`` is applied by the caller, as to gains)."""
    delay = np.zeros(nant)
    snr = np.zeros(nant)
    err = np.zeros(nant)
    flag = np.ones(nant, dtype=bool)
    if ref < 0:
        return delay, snr, err, flag
    for a in np.flatnonzero(active):
        e_tau = np.sqrt(max(cov[nant + a, nant + a] * red, 0.0))
        e_phi = np.sqrt(max(cov[a, a] * red, 0.0))
        s = np.inf if a == ref else (1.0 / e_phi if e_phi > 0 else np.inf)
        delay[a] = tau[a]
        err[a] = e_tau
        snr[a] = s
        flag[a] = np.isnan(s) or not np.isfinite(tau[a])
    return delay, snr, err, flag
