"""Numba kernel of the predict: model visibilities of sky-model components by direct Fourier
transform.

Pure numba on numpy arrays; the dask wrapper is in ``graph.py``.
"""

from __future__ import annotations

import math

import numpy as np

from radiocal.astro import SPEED_OF_LIGHT
from radiocal._numba import njit

# Fourier transform of a unit-flux Gaussian of FWHM a: exp(-pi^2 a^2 q^2 / (4 ln 2)), q in wavelengths.
_GAUSS_SCALE = math.pi**2 / (4.0 * math.log(2.0))
# Channels between exact re-evaluations of the fringe in predict_components.
_ANCHOR = 32


@njit
def predict_components(uvw, frequency, lmn, brightness, gauss, sign=1.0):
    """Model visibilities of point and Gaussian components by direct Fourier transform.

    ``V = sum_s B_s(nu) G_s(u, v, nu) exp(+2 pi i (u l + v m + w (n - 1)) nu / c)``: CASA's sign
    (``ft`` of a component list gives exactly this with the MS's UVW), so real data subtract.

    Parameters
    ----------
    uvw : (time, baseline, 3) float64, metres
    frequency : (frequency,) float64, Hz
    lmn : (source, 3) float64, direction cosines relative to the phase centre
    brightness : (source, frequency, polarization) complex128, the coherency of each source
    gauss : (source, 3) float64, major FWHM, minor FWHM (radians), position angle (radians east
        of north); zero axes make a point.
    sign : float
        +1 (CASA's convention) or -1 (data written with the opposite, "Fourier" sign).

    Returns
    -------
    (time, baseline, frequency, polarization) complex64
    """
    ntime, nbl = uvw.shape[0], uvw.shape[1]
    nchan = frequency.shape[0]
    nsrc, npol = brightness.shape[0], brightness.shape[2]
    out = np.empty((ntime, nbl, nchan, npol), dtype=np.complex64)
    acc = np.empty((nchan, npol), dtype=np.complex128)
    phase_scale = sign * 2.0 * math.pi / SPEED_OF_LIGHT
    # On a regular channel grid the fringe advances by a fixed rotation per channel: one complex
    # multiply instead of a cos and a sin. It is re-anchored exactly every _ANCHOR channels so
    # rounding cannot build up.
    step_hz = frequency[1] - frequency[0] if nchan > 1 else 0.0
    regular = nchan > 2
    for f in range(1, nchan):
        if abs(frequency[f] - frequency[f - 1] - step_hz) > 1e-9 * abs(step_hz):
            regular = False
    for t in range(ntime):
        for b in range(nbl):
            u, v, w = uvw[t, b, 0], uvw[t, b, 1], uvw[t, b, 2]
            acc[:, :] = 0.0
            for s in range(nsrc):
                l, m, n = lmn[s, 0], lmn[s, 1], lmn[s, 2]
                phase_per_hz = phase_scale * (u * l + v * m + w * (n - 1.0))
                extended = gauss[s, 0] > 0.0 or gauss[s, 1] > 0.0
                gauss_per_hz2 = 0.0
                if extended:
                    sin_pa, cos_pa = math.sin(gauss[s, 2]), math.cos(gauss[s, 2])
                    u_major = u * sin_pa + v * cos_pa
                    u_minor = u * cos_pa - v * sin_pa
                    gauss_per_hz2 = -_GAUSS_SCALE * (
                        (gauss[s, 0] * u_major) ** 2 + (gauss[s, 1] * u_minor) ** 2
                    ) / SPEED_OF_LIGHT**2
                rotation = complex(math.cos(phase_per_hz * step_hz), math.sin(phase_per_hz * step_hz))
                fringe = 1.0 + 0.0j
                for f in range(nchan):
                    nu = frequency[f]
                    if not regular or f % _ANCHOR == 0:
                        phase = phase_per_hz * nu
                        fringe = complex(math.cos(phase), math.sin(phase))
                    else:
                        fringe = fringe * rotation
                    value = fringe * math.exp(gauss_per_hz2 * nu * nu) if extended else fringe
                    for p in range(npol):
                        acc[f, p] += value * brightness[s, f, p]
            for f in range(nchan):
                for p in range(npol):
                    out[t, b, f, p] = acc[f, p]
    return out
