"""Delay (K) solving on per-channel sufficient statistics; no dask or xarray here.

Per solution cell and hand: (1) per-channel antenna gains by the shared StefCal solver
(:func:`radiocal.calibration.kernels.solve_cells`), referenced to the reference antenna;
(2) an FFT of each antenna's spectrum, zero-padded 8x, for a first guess that cannot fall on a
wrong phase wrap; (3) a global Gauss-Newton fit of ``phi_p - phi_q + 2 pi (nu - nu_ref)(tau_p -
tau_q)`` to the phases of every baseline and channel, weighted by ``2 Q |Y|^2``. Convention (as in
the data model and CASA's K Jones): an antenna's gain phase is ``+2 pi tau (nu - nu_ref)``.
"""

from __future__ import annotations

import numba
import numpy as np

from radiocal.calibration import kernels as K
from radiocal.engine.numba import JIT

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


@numba.njit(**JIT)
def _refine(y, qw, use_bl, ant1, ant2, nant, active, ref, dnu, phi, tau, n_iter):
    """Gauss-Newton on (phi, tau) of active antennas; ``ref`` is held at zero."""
    nbl, nf = y.shape
    npar = 2 * nant
    red = 1.0
    cov = np.zeros((npar, npar))
    for _ in range(n_iter):
        normal = np.zeros((npar, npar))
        rhs = np.zeros(npar)
        chi2 = 0.0
        nobs = 0
        for b in range(nbl):
            if not use_bl[b]:
                continue
            p = ant1[b]
            q = ant2[b]
            for f in range(nf):
                w = 2.0 * qw[b, f] * (y[b, f].real ** 2 + y[b, f].imag ** 2)
                if not (w > 0.0):
                    continue
                theta = phi[p] - phi[q] + 2.0 * np.pi * dnu[f] * (tau[p] - tau[q])
                r = np.angle(y[b, f] * np.exp(-1j * theta))
                chi2 += w * r * r
                nobs += 1
                d = 2.0 * np.pi * dnu[f]
                idx = (p, q, nant + p, nant + q)
                jac = (1.0, -1.0, d, -d)
                for i in range(4):
                    rhs[idx[i]] += w * jac[i] * r
                    for j in range(4):
                        normal[idx[i], idx[j]] += w * jac[i] * jac[j]
        for a in range(nant):
            if not active[a] or a == ref:
                for k in (a, nant + a):
                    normal[k, :] = 0.0
                    normal[:, k] = 0.0
                    normal[k, k] = 1.0
                    rhs[k] = 0.0
        step = np.linalg.solve(normal, rhs)
        for a in range(nant):
            phi[a] += step[a]
            tau[a] += step[nant + a]
        dof = nobs - 2 * (np.sum(active) - 1)
        red = chi2 / dof if dof > 0 and chi2 > 0.0 else 1.0
        cov = np.linalg.inv(normal)
    return phi, tau, cov, red


def solve_delays(stats, freqs, ref_freq, ant1, ant2, nant, refants, minblperant, minsnr,
                 n_iter=6):
    """Delays per antenna and hand for every cell.

    Parameters
    ----------
    stats : float64 (cell, frequency, baseline, hand, 5)
        Per-channel statistics (one frequency cell per channel).
    freqs : float64 (frequency,)
    ref_freq : float
        ``nu_ref`` of the phase convention.

    Returns
    -------
    delay, snr, err : float64 (cell, 1, antenna, hand)
        Seconds, SNR of the fit, standard error (s).
    flag : bool (cell, 1, antenna, hand)
    """
    ncell, nf, nbl, nh, _ = stats.shape
    ant1 = np.asarray(ant1, np.int64)
    ant2 = np.asarray(ant2, np.int64)
    refants = np.asarray(refants, np.int64)
    delay = np.zeros((ncell, 1, nant, nh))
    snr = np.zeros_like(delay)
    err = np.zeros_like(delay)
    flag = np.ones(delay.shape, dtype=bool)
    dnu = np.asarray(freqs, np.float64) - float(ref_freq)
    gains, _, _, gflag, used_ref = K.solve_cells(stats, ant1, ant2, nant, refants, K.MODE_AP,
                                                 minblperant, 0.0, 100, 1e-10)
    for c in range(ncell):
        for h in range(nh):
            qw = stats[c, :, :, h, K.STAT_Q].T.copy()
            with np.errstate(invalid="ignore", divide="ignore"):
                y = np.where(qw > 0, (stats[c, :, :, h, K.STAT_RE]
                                      + 1j * stats[c, :, :, h, K.STAT_IM]).T / qw, 0)
            active, use_bl = K._active_antennas(qw.sum(axis=1), ant1, ant2, nant, minblperant)
            if active.sum() < 2:
                continue
            solved = ~gflag[c, :, :, h]                 # (frequency, antenna)
            refs = used_ref[c, :, h]
            ref = int(np.bincount(refs[refs >= 0]).argmax()) if (refs >= 0).any() else \
                int(np.flatnonzero(active)[0])
            tau = np.zeros(nant)
            phi = np.zeros(nant)
            for a in np.flatnonzero(active):
                tau[a] = fft_delay(gains[c, :, a, h], solved[:, a], freqs)
                rot = gains[c, :, a, h] * np.exp(-2j * np.pi * dnu * tau[a])
                phi[a] = np.angle(np.sum(np.where(solved[:, a], rot, 0)))
            tau -= tau[ref]
            phi -= phi[ref]
            phi, tau, cov, red = _refine(y, qw, use_bl, ant1, ant2, nant, active, ref, dnu,
                                         phi, tau, n_iter)
            for a in np.flatnonzero(active):
                e_tau = np.sqrt(max(cov[nant + a, nant + a] * red, 0.0))
                e_phi = np.sqrt(max(cov[a, a] * red, 0.0))
                s = np.inf if a == ref else (1.0 / e_phi if e_phi > 0 else np.inf)
                delay[c, 0, a, h] = tau[a]
                err[c, 0, a, h] = e_tau
                snr[c, 0, a, h] = s
                flag[c, 0, a, h] = not (s >= minsnr and np.isfinite(tau[a]))
    return delay, snr, err, flag
