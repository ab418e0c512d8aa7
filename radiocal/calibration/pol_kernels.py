"""Numba kernels of the polarisation solve and of full-Jones correction (numpy in, numpy out).

Measurement equation of the cross hands after the parallel-hand terms (K, B, G) are divided out,
in CASA's order ``D X P`` (``D = [[1, d_x], [d_y, 1]]`` leakage, ``X = diag(xi, 1)`` the
cross-hand phase of the reference antenna, ``P`` the feed rotation), to first order in ``d``::

    V_xy       = xi M_xy       + d_xp M_yy        + conj(d_yq) M_xx
    conj(V_yx) = xi conj(M_yx) + conj(d_yp) conj(M_xx) + d_xq conj(M_yy)

with ``M = P_p S P_q^H`` the sky coherency ``S`` rotated into the feed frame (``x, y`` stand for
the first and second hand: X/Y or R/L). Both are linear in ``u = (xi, d_x[0..N), conj(d_y)[0..N))``,
so each baseline reduces to the weighted sums of the normal equations of its two equations
(``N_POL_STATS`` numbers per channel), which add across chunks, scans and fields.
"""

from __future__ import annotations

import math

import numpy as np

from radiocal._numba import njit

# per equation: sum w |c_k|^2 (3), sum w conj(c_k) c_l for (0,1), (0,2), (1,2) as re/im (6),
# sum w conj(c_k) obs as re/im (6), sum w |obs|^2, count
EQ_STATS = 17
N_POL_STATS = 2 * EQ_STATS


@njit
def _sky(stokes, circular):
    i, q, u, v = stokes[0], stokes[1], stokes[2], stokes[3]
    s = np.empty((2, 2), dtype=np.complex128)
    if circular:
        s[0, 0], s[0, 1], s[1, 0], s[1, 1] = i + v, q + 1j * u, q - 1j * u, i - v
    else:
        s[0, 0], s[0, 1], s[1, 0], s[1, 1] = i + q, u + 1j * v, u - 1j * v, i - q
    return s


@njit
def _finite(z):
    return math.isfinite(z.real) and math.isfinite(z.imag)


@njit
def _sandwich(a, s, b, out):
    """``out = a s b^H`` for 2x2 complex matrices (no BLAS call per sample)."""
    for i in range(2):
        for j in range(2):
            acc = 0j
            for k in range(2):
                for n in range(2):
                    acc += a[i, k] * s[k, n] * np.conj(b[j, n])
            out[i, j] = acc


@njit
def _add_equation(out, c0, c1, c2, obs, w):
    c = (c0, c1, c2)
    for k in range(3):
        out[k] += w * (c[k].real ** 2 + c[k].imag ** 2)
    pairs = ((0, 1), (0, 2), (1, 2))
    for n in range(3):
        prod = w * np.conj(c[pairs[n][0]]) * c[pairs[n][1]]
        out[3 + 2 * n] += prod.real
        out[4 + 2 * n] += prod.imag
    for k in range(3):
        prod = w * np.conj(c[k]) * obs
        out[9 + 2 * k] += prod.real
        out[10 + 2 * k] += prod.imag
    out[15] += w * (obs.real ** 2 + obs.imag ** 2)
    out[16] += 1.0


@njit
def accumulate_pol_stats(vis, weight, flag, gains, rotation, stokes, ant1, ant2, corr,
                         circular):
    """Normal-equation sums of the cross hands, per channel and baseline.

    Parameters
    ----------
    vis : complex (time, baseline, frequency, polarization); weight float, flag bool alike
    gains : complex (time, antenna, frequency, 2)
        Parallel-hand terms to divide out (NaN or 0: no solution; the sample is skipped).
    rotation : complex (time, antenna, 2, 2)
        Feed rotation ``P`` of each antenna.
    stokes : float (frequency, 4)
        The source's ``I, Q, U, V`` (Jy), a point at the phase centre.
    corr : int (2, 2)
        Polarization index of each hand pair (``corr[0, 1]`` is XY or RL).
    circular : bool

    Returns
    -------
    float64 (frequency, baseline, N_POL_STATS)
    """
    nt, nbl, nf, _ = vis.shape
    out = np.zeros((nf, nbl, N_POL_STATS))
    ixy, iyx = corr[0, 1], corr[1, 0]
    m = np.empty((2, 2), dtype=np.complex128)
    sky = np.empty((nf, 2, 2), dtype=np.complex128)
    for f in range(nf):
        s = _sky(stokes[f], circular)
        for i in range(2):   # not sky[f] = ...: see calibration.kernels.hermite_nodes
            for j in range(2):
                sky[f, i, j] = s[i, j]
    for t in range(nt):
        for b in range(nbl):
            p, q = ant1[b], ant2[b]
            if p == q:
                continue
            pp = rotation[t, p]
            pq = rotation[t, q]
            for f in range(nf):
                _sandwich(pp, sky[f], pq, m)
                gpx, gpy = gains[t, p, f, 0], gains[t, p, f, 1]
                gqx, gqy = gains[t, q, f, 0], gains[t, q, f, 1]
                for eq in range(2):
                    k = ixy if eq == 0 else iyx
                    g = gpx * np.conj(gqy) if eq == 0 else gpy * np.conj(gqx)
                    w = weight[t, b, f, k]
                    d = vis[t, b, f, k]
                    if flag[t, b, f, k] or not w > 0 or not _finite(g) or g == 0 \
                            or not _finite(d):
                        continue
                    corrected = d / g
                    wc = w * (g.real ** 2 + g.imag ** 2)
                    row = out[f, b, eq * EQ_STATS:(eq + 1) * EQ_STATS]
                    if eq == 0:
                        _add_equation(row, m[0, 1], m[1, 1], m[0, 0], corrected, wc)
                    else:
                        _add_equation(row, np.conj(m[1, 0]), np.conj(m[0, 0]),
                                      np.conj(m[1, 1]), np.conj(corrected), wc)
    return out


@njit
def rotated_model(rotation, sky, instrument, ant1, ant2, corr):
    """Model visibilities ``(J_p P_p) S (J_q P_q)^H`` of a point source at the phase centre.

    Parameters
    ----------
    rotation : complex (time, antenna, 2, 2)
        Feed rotation ``P`` of each antenna.
    sky : complex (frequency, 2, 2)
        The source's coherency in the feed basis.
    instrument : complex (antenna, frequency, 2, 2)
        ``J`` of each antenna (KCROSS D X; identity matrices for none).
    corr : int (2, 2)
        Polarization index of each hand pair.

    Returns
    -------
    complex64 (time, baseline, frequency, 4)
    """
    nt, nant = rotation.shape[0], rotation.shape[1]
    nf, nbl = sky.shape[0], ant1.shape[0]
    out = np.empty((nt, nbl, nf, 4), dtype=np.complex64)
    feed = np.empty((nant, 2, 2), dtype=np.complex128)
    m = np.empty((2, 2), dtype=np.complex128)
    for t in range(nt):
        for f in range(nf):
            # each antenna's J P once per (time, channel), not once per baseline
            for a in range(nant):
                for i in range(2):
                    for j in range(2):
                        feed[a, i, j] = (instrument[a, f, i, 0] * rotation[t, a, 0, j]
                                         + instrument[a, f, i, 1] * rotation[t, a, 1, j])
            for b in range(nbl):
                _sandwich(feed[ant1[b]], sky[f], feed[ant2[b]], m)
                for i in range(2):
                    for j in range(2):
                        out[t, b, f, corr[i, j]] = m[i, j]
    return out


def apply_full_jones(vis, flag, weight, inverse, ant1, ant2, corr, calwt):
    """Correct 4-correlation visibilities by full Jones matrices: ``W_p V W_q^H``.

    Parameters
    ----------
    vis : complex64 (time, baseline, frequency, 4); flag bool, weight float32 alike
    inverse : complex128 (time, antenna, frequency, 2, 2)
        ``W = J^-1`` of each antenna; NaN where a term has no valid solution (the four
        correlations of its baselines are flagged, data untouched).
    corr : int (2, 2)
        Polarization index of each hand pair.
    calwt : bool
        Scale each correlation's weight by ``1 / |W_p,ii W_q,jj|^2``.

    Returns
    -------
    vis_out complex64, flag_out bool, weight_out float32 (like ``vis``; without ``calwt`` it is
    ``weight``)
    """
    vis_out = np.empty_like(vis)
    flag_out = np.empty_like(flag)
    weight_out = np.empty(vis.shape if calwt else (0, 0, 0, 0), dtype=weight.dtype)
    _apply_full(vis, flag, weight, inverse, ant1, ant2, corr, calwt, vis_out, flag_out,
                weight_out)
    return vis_out, flag_out, weight_out if calwt else weight


@njit
def _apply_full(vis, flag, weight, inverse, ant1, ant2, corr, calwt, vis_out, flag_out,
                weight_out):
    nt, nbl, nf, _ = vis.shape
    v = np.empty((2, 2), dtype=np.complex128)
    c = np.empty((2, 2), dtype=np.complex128)
    for t in range(nt):
        for b in range(nbl):
            p, q = ant1[b], ant2[b]
            for f in range(nf):
                wp = inverse[t, p, f]
                wq = inverse[t, q, f]
                ok = True
                for i in range(2):
                    for j in range(2):
                        ok = ok and _finite(wp[i, j]) and _finite(wq[i, j])
                for i in range(2):
                    for j in range(2):
                        v[i, j] = vis[t, b, f, corr[i, j]]
                if ok:
                    _sandwich(wp, v, wq, c)
                for i in range(2):
                    for j in range(2):
                        k = corr[i, j]
                        if ok:
                            vis_out[t, b, f, k] = c[i, j]
                            flag_out[t, b, f, k] = flag[t, b, f, k]
                        else:
                            vis_out[t, b, f, k] = vis[t, b, f, k]
                            flag_out[t, b, f, k] = True
                        if calwt:
                            scale = abs(wp[i, i] * wq[j, j]) ** 2 if ok else 0.0
                            weight_out[t, b, f, k] = (weight[t, b, f, k] / scale
                                                      if scale > 0 else weight[t, b, f, k])
