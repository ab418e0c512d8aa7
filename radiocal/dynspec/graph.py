"""Dask wrappers of the dynamic-spectrum kernels; building a graph never computes."""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize

from radiocal import budget
from radiocal.dynspec import kernels
from radiocal.store.chunktasks import per_block


def subtract(data: da.Array, model: da.Array) -> da.Array:
    """``data - model`` lazily, complex64.

    IEEE subtraction of two complex64 values is already correctly rounded; going through
    complex128 would only add a second rounding and twice the memory per chunk.
    """
    return (data - model).astype(np.complex64, copy=False)


def _sums_block(vis, flag, weight, coeffs, timeavg, freqavg):
    sums = kernels.baseline_sums(
        np.ascontiguousarray(vis), np.ascontiguousarray(flag), np.ascontiguousarray(weight),
        coeffs, timeavg, freqavg,
    )
    return sums[:, None]      # this chunk's baselines: one entry of the baseline-chunk axis


def _round_up(n: int, multiple: int) -> int:
    return max(1, -(-int(n) // multiple)) * multiple


def average_chunks(shape, chunks, timeavg: int, freqavg: int) -> tuple[int, int, int]:
    """(time, baseline, frequency) chunk sizes for averaging: whole ``timeavg x freqavg`` blocks,
    near the input's chunks, within the chunk budget (baselines are split first: their partial
    sums add up). Stops with a one-line error when one baseline's block cannot fit."""
    ntime, nbl, nchan, npol = shape
    cell = max(1, npol) * budget.VISIBILITY_ITEMSIZE
    limit = budget.chunk_bytes()
    t = _round_up(max(chunks[0]) if chunks[0] else 1, timeavg)
    f = min(_round_up(max(chunks[2]) if chunks[2] else 1, freqavg), _round_up(nchan, freqavg))
    budget.require(min(timeavg, ntime) * min(freqavg, nchan) * cell,
                   f"averaging {timeavg} x {freqavg} samples of one baseline",
                   "lower timeavg/freqavg")
    t = min(t, max(timeavg, limit // (f * cell) // timeavg * timeavg))
    f = min(f, max(freqavg, limit // (t * cell) // freqavg * freqavg))
    b = max(1, min(max(chunks[1]) if chunks[1] else 1, limit // (min(t, ntime) * min(f, nchan) * cell)))
    return t, b, f


def baseline_average(vis: da.Array, flag: da.Array, weight: da.Array, coeffs: np.ndarray,
                     timeavg: int = 1, freqavg: int = 1) -> da.Array:
    """Lazy weighted mean and standard error over baselines, per time x frequency block.

    Each chunk of baselines gives partial sums (:func:`kernels.baseline_sums`); they are added
    by a tree reduction over the baseline chunks, so no chunk ever holds every baseline of a
    time. Chunks hold whole averaging blocks and stay within the chunk budget.

    Parameters
    ----------
    vis, flag, weight : (time, baseline, frequency, polarization) dask arrays
    coeffs : (product, polarization) complex128
    timeavg, freqavg : int >= 1

    Returns
    -------
    (time_out, frequency_out, product, 3) dask float64; the last axis is (mean, error, count).
    """
    t, b, f = average_chunks(vis.shape, vis.chunks, timeavg, freqavg)
    vis = vis.rechunk((t, b, f, -1))
    flag = flag.rechunk(vis.chunks)
    weight = weight.rechunk(vis.chunks)
    coeffs = np.ascontiguousarray(coeffs, dtype=np.complex128)
    tout = tuple((c + timeavg - 1) // timeavg for c in vis.chunks[0])
    fout = tuple((c + freqavg - 1) // freqavg for c in vis.chunks[2])
    name = "baseline-sums-" + tokenize(vis, flag, weight, coeffs, timeavg, freqavg)
    sums = da.blockwise(
        _sums_block, "tbfqs", vis, "tbfp", flag, "tbfp", weight, "tbfp",
        coeffs=coeffs, timeavg=int(timeavg), freqavg=int(freqavg),
        new_axes={"q": coeffs.shape[0], "s": kernels.NSUM},
        adjust_chunks={"t": tout, "b": 1, "f": fout}, concatenate=True, dtype=np.float64, name=name,
        meta=np.empty((0,) * 5, dtype=np.float64),
    )
    # one task a chunk from its reads to its sums: ~12 tasks a chunk otherwise
    total = per_block(sums).sum(axis=1)
    stats = total.map_blocks(kernels.finish_average, dtype=np.float64,
                             chunks=total.chunks[:3] + ((kernels.NSTAT,),),
                             meta=np.empty((0, 0, 0, 0), dtype=np.float64))
    # Every baseline in one chunk: a chunk's sum over the baseline chunks and its mean are
    # its own, one task from the reads to the mean, not three. (Several baseline chunks stay
    # tasks of their own, summed in the tree: one task would run them one after another.)
    return per_block(stats) if len(vis.chunks[1]) == 1 else stats
