"""The dask wrapper of the predict kernel; building a graph never computes."""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize

from radiocal.model import kernels


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
