"""Dask wrappers of the dynamic-spectrum kernels; building a graph never computes."""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize

from radiocal.dynspec import kernels


def _predict_block(uvw, frequency, brightness, lmn, gauss, sign):
    return kernels.predict_components(
        np.ascontiguousarray(uvw, dtype=np.float64),
        np.ascontiguousarray(frequency, dtype=np.float64),
        lmn,
        np.ascontiguousarray(brightness, dtype=np.complex128),
        gauss,
        sign,
    )


PHASE_SIGNS = {"casa": 1.0, "fourier": -1.0}


def predict(uvw: da.Array, frequency: da.Array, brightness: da.Array, lmn: np.ndarray,
            gauss: np.ndarray, chunks: tuple, convention: str = "casa") -> da.Array:
    """Lazy model visibilities.

    Parameters
    ----------
    uvw : (time, baseline, uvw_label) dask float64, metres
    frequency : (frequency,) dask float64, Hz
    brightness : (source, frequency, polarization) dask complex128, chunked along frequency like
        ``frequency``
    lmn : (source, 3) numpy float64
    gauss : (source, 3) numpy float64
    chunks : the (time, baseline, frequency, polarization) chunks of the visibilities to match
    convention : "casa" (``exp(+2 pi i (ul + vm + w(n-1)) nu / c)``, what CASA's ``ft`` writes and
        real interferometers' data follow) or "fourier" (the opposite sign)

    Returns
    -------
    (time, baseline, frequency, polarization) dask complex64
    """
    tchunks, bchunks, fchunks, pchunks = chunks
    uvw = uvw.rechunk((tchunks, bchunks, -1))
    frequency = frequency.rechunk((fchunks,))
    brightness = brightness.rechunk((-1, fchunks, -1))
    if len(pchunks) != 1:
        raise ValueError("polarization must be one chunk")
    sign = PHASE_SIGNS[convention]
    name = "predict-components-" + tokenize(uvw, frequency, brightness, lmn, gauss, sign)
    return da.blockwise(
        _predict_block, "tbfp",
        uvw, "tbx", frequency, "f", brightness, "sfp",
        lmn, None, gauss, None, sign, None,
        concatenate=True, dtype=np.complex64, name=name,
        meta=np.empty((0, 0, 0, 0), dtype=np.complex64),
    )


def subtract(data: da.Array, model: da.Array) -> da.Array:
    """``data - model`` lazily, complex64.

    IEEE subtraction of two complex64 values is already correctly rounded; going through
    complex128 would only add a second rounding and twice the memory per chunk.
    """
    return (data - model).astype(np.complex64, copy=False)


def _average_block(vis, flag, weight, coeffs, timeavg, freqavg):
    return kernels.baseline_average(
        np.ascontiguousarray(vis), np.ascontiguousarray(flag), np.ascontiguousarray(weight),
        coeffs, timeavg, freqavg,
    )


def baseline_average(vis: da.Array, flag: da.Array, weight: da.Array, coeffs: np.ndarray,
                     timeavg: int = 1, freqavg: int = 1) -> da.Array:
    """Lazy weighted mean and standard error over baselines, per time x frequency block.

    Parameters
    ----------
    vis, flag, weight : (time, baseline, frequency, polarization) dask arrays
    coeffs : (product, polarization) complex128
    timeavg, freqavg : int >= 1

    Returns
    -------
    (time_out, frequency_out, product, 3) dask float64; the last axis is (mean, error, count).
    """
    ntime = vis.shape[0]
    # Time chunks hold whole averaging blocks, so no block straddles two chunks.
    size = max(vis.chunks[0]) if vis.chunks[0] else 1
    size = max(1, int(round(size / timeavg))) * timeavg
    vis = vis.rechunk((size, -1, -1, -1))
    flag = flag.rechunk(vis.chunks)
    weight = weight.rechunk(vis.chunks)
    tout = tuple((c + timeavg - 1) // timeavg for c in vis.chunks[0]) if ntime else (0,)
    nfout = (vis.shape[2] + freqavg - 1) // freqavg
    coeffs = np.ascontiguousarray(coeffs, dtype=np.complex128)
    name = "baseline-average-" + tokenize(vis, flag, weight, coeffs, timeavg, freqavg)
    return da.map_blocks(
        _average_block, vis, flag, weight, coeffs=coeffs, timeavg=int(timeavg),
        freqavg=int(freqavg), chunks=(tout, (nfout,), (coeffs.shape[0],), (kernels.NSTAT,)),
        dtype=np.float64, name=name, meta=np.empty((0, 0, 0, 0), dtype=np.float64),
    )
