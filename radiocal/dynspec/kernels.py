"""Numba kernels for dynamic spectra: averaging over baselines.

Pure numba on numpy arrays; the dask wrappers are in ``graph.py``. (The predict's DFT kernel is
:mod:`radiocal.model.kernels`.)
"""

from __future__ import annotations

import math

import numpy as np

from radiocal._numba import njit

# Order of the statistics along the last axis of baseline_average's output.
STAT_MEAN, STAT_ERR, STAT_COUNT = 0, 1, 2
NSTAT = 3

# Sums over baselines per output cell, along the last axis of baseline_sums' output:
# sum w, sum w x, sum w x^2, sum w^2, count (of the per-baseline block means x with weights w).
NSUM = 5


@njit
def baseline_sums(vis, flag, weight, coeffs, timeavg, freqavg):
    """The sums over this chunk's baselines that :func:`finish_average` turns into statistics.

    Each baseline first averages its samples in a ``timeavg x freqavg`` block (weighted); the
    block means ``x`` with weights ``w`` (the block's summed weight) are then summed over the
    baselines: partial sums of baseline chunks add up to those of all baselines. Only the real
    part is kept: the target sits at the phase centre.

    A product sample exists when every correlation it uses is unflagged, finite and of positive
    weight; its weight is ``1 / sum_k |c_k|^2 / w_k`` (inverse variance of the combination).

    Parameters
    ----------
    vis : (time, baseline, frequency, polarization) complex
    flag : (time, baseline, frequency, polarization) bool
    weight : (time, baseline, frequency, polarization) float
    coeffs : (product, polarization) complex128
    timeavg, freqavg : int, block sizes

    Returns
    -------
    (time_out, frequency_out, product, NSUM) float64
    """
    ntime, nbl, nchan, npol = vis.shape
    nprod = coeffs.shape[0]
    ntout = (ntime + timeavg - 1) // timeavg
    nfout = (nchan + freqavg - 1) // freqavg
    out = np.zeros((ntout, nfout, nprod, NSUM), dtype=np.float64)
    block_w = np.empty((nfout, nprod), dtype=np.float64)
    block_wx = np.empty((nfout, nprod), dtype=np.float64)
    for to in range(ntout):
        t0, t1 = to * timeavg, min((to + 1) * timeavg, ntime)
        for b in range(nbl):
            block_w[:, :] = 0.0
            block_wx[:, :] = 0.0
            for t in range(t0, t1):
                for f in range(nchan):
                    fo = f // freqavg
                    for p in range(nprod):
                        value = 0.0 + 0.0j
                        inv_w = 0.0
                        ok = True
                        for k in range(npol):
                            c = coeffs[p, k]
                            if c == 0:
                                continue
                            x = vis[t, b, f, k]
                            wk = weight[t, b, f, k]
                            if flag[t, b, f, k] or not (wk > 0.0) or not (
                                math.isfinite(x.real) and math.isfinite(x.imag)
                            ):
                                ok = False
                                break
                            value += c * x
                            inv_w += (c.real * c.real + c.imag * c.imag) / wk
                        if ok:
                            ws = 1.0 / inv_w
                            block_w[fo, p] += ws
                            block_wx[fo, p] += ws * value.real
            for fo in range(nfout):
                for p in range(nprod):
                    wb = block_w[fo, p]
                    if wb > 0.0:
                        xb = block_wx[fo, p] / wb
                        out[to, fo, p, 0] += wb
                        out[to, fo, p, 1] += wb * xb
                        out[to, fo, p, 2] += wb * xb * xb
                        out[to, fo, p, 3] += wb * wb
                        out[to, fo, p, 4] += 1.0
    return out


@njit
def finish_average(sums):
    """Weighted mean over baselines, its standard error and the baseline count, from the sums.

    Parameters
    ----------
    sums : (time_out, frequency_out, product, NSUM) float64, from :func:`baseline_sums`

    Returns
    -------
    (time_out, frequency_out, product, NSTAT) float64
        ``[..., 0]`` weighted mean, ``[..., 1]`` its standard error over baselines, from their
        scatter (NaN with fewer than two baselines), ``[..., 2]`` baselines that contributed.
    """
    ntout, nfout, nprod = sums.shape[0], sums.shape[1], sums.shape[2]
    out = np.empty((ntout, nfout, nprod, NSTAT), dtype=np.float64)
    for to in range(ntout):
        for fo in range(nfout):
            for p in range(nprod):
                sw, swx, swxx, sww, count = (sums[to, fo, p, 0], sums[to, fo, p, 1], sums[to, fo, p, 2],
                                             sums[to, fo, p, 3], sums[to, fo, p, 4])
                out[to, fo, p, STAT_COUNT] = count
                if sw > 0.0:
                    mean = swx / sw
                    out[to, fo, p, STAT_MEAN] = mean
                    if count > 1.0:
                        # Unbiased weighted variance, then the variance of the weighted mean.
                        var = max(swxx - sw * mean * mean, 0.0) / (sw - sww / sw)
                        out[to, fo, p, STAT_ERR] = math.sqrt(var * sww) / sw
                    else:
                        out[to, fo, p, STAT_ERR] = np.nan
                else:
                    out[to, fo, p, STAT_MEAN] = np.nan
                    out[to, fo, p, STAT_ERR] = np.nan
    return out


@njit
def baseline_average(vis, flag, weight, coeffs, timeavg, freqavg):
    """Average products of correlations over baselines into time x frequency cells: the
    statistics of :func:`finish_average` from the :func:`baseline_sums` of every baseline."""
    return finish_average(baseline_sums(vis, flag, weight, coeffs, timeavg, freqavg))
