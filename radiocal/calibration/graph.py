"""Dask wrappers around the calibration kernels: accumulate, reduce-and-solve, interpolate, apply.

Solving is a map-reduce. Every time chunk of every partition is reduced to sufficient statistics
of the solution cells it touches (one "piece" per chunk x cell); the pieces are then gathered by
cell (a take + rechunk on cell boundaries, on arrays far smaller than the visibilities) and each
chunk of cells is solved. Nothing here computes.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize

from radiocal.calibration import kernels as K
from radiocal.calibration.delay import solve_delays

N_PACKED = 5  # re, im, snr, err, flag of a packed solution (re holds the delay for K)
MODE_DELAY = -1


def _as_dask(array, like_chunks=None):
    if isinstance(array, da.Array):
        return array
    return da.from_array(np.asarray(array), chunks=like_chunks or -1)


def _only_block(blocks):
    """The one block blockwise hands over (as nested lists) for axes it contracts.

    The wrappers here call blockwise with ``concatenate=False`` and a single chunk along every
    contracted axis: with ``concatenate=True`` dask copies each such input into a new array,
    even a single block (the visibilities, and the broadcast model materialized in full).
    """
    while isinstance(blocks, list):
        if len(blocks) != 1:
            raise ValueError(f"expected one block along a contracted axis, got {len(blocks)}")
        blocks = blocks[0]
    return blocks


def _accumulate_block(vis, model, weight, flag, jones, piece, *, per_channel, ant1, ant2,
                      hand1, hand2, corr_out, n_out):
    vis, model, weight, flag, jones = (_only_block(b) for b in (vis, model, weight, flag, jones))
    n_pieces = int(piece.max()) + 1 if piece.size else 0
    nf = vis.shape[2]
    fcell = np.arange(nf, dtype=np.int64) if per_channel else np.zeros(nf, dtype=np.int64)
    return K.accumulate_stats(vis, model, weight, flag, jones, piece, n_pieces, fcell,
                              nf if per_channel else 1, ant1, ant2, hand1, hand2, corr_out,
                              n_out)


def accumulate(vis, model, weight, flag, jones, cell_of_time, per_channel, ant1, ant2,
               hand1, hand2, corr_out, n_out):
    """Per-chunk sufficient statistics of one partition.

    Parameters
    ----------
    vis, model, weight, flag : dask arrays (time, baseline, frequency, polarization)
    jones : dask array (time, antenna, frequency, hand)
        Prior terms (ones when there are none).
    cell_of_time : int (time,)
        Global solution cell of each integration.
    per_channel : bool
        One frequency cell per channel (B, K), else one for the whole spw (G, T). Frequency
        chunks of the data are kept: per channel they stay separate, otherwise their
        statistics are summed by a tree reduction.

    Returns
    -------
    stats : dask array float64 (piece, frequency cell, baseline, out hand, 5)
    piece_cell : numpy int (piece,)
        The global cell of each piece.
    """
    vis = _as_dask(vis).rechunk({1: -1, 3: -1})
    tchunks, fchunks = vis.chunks[0], vis.chunks[2]
    model = _as_dask(model).rechunk(vis.chunks)
    weight = _as_dask(weight).rechunk(vis.chunks)
    flag = _as_dask(flag).rechunk(vis.chunks)
    jones = _as_dask(jones).rechunk((tchunks, -1, fchunks, -1))
    local = np.empty(len(cell_of_time), dtype=np.int64)
    piece_cell = []
    pieces_per_chunk = []
    start = 0
    for size in tchunks:
        cells = np.asarray(cell_of_time[start:start + size])
        uniq, inverse = np.unique(cells, return_inverse=True)
        local[start:start + size] = inverse
        piece_cell.extend(uniq.tolist())
        pieces_per_chunk.append(len(uniq))
        start += size
    piece = da.from_array(local, chunks=(tchunks,))
    name = "calib-accumulate-" + tokenize(vis, model, weight, flag, jones, local, per_channel,
                                          ant1, ant2, hand1, hand2, corr_out, n_out)
    stats = da.blockwise(
        _accumulate_block, "tFbos",
        vis, "tbFp", model, "tbFp", weight, "tbFp", flag, "tbFp", jones, "taFh", piece, "t",
        new_axes={"o": n_out, "s": K.N_STATS},
        adjust_chunks={"t": tuple(pieces_per_chunk),
                       "F": fchunks if per_channel else (1,) * len(fchunks)},
        concatenate=False, dtype=np.float64, name=name,
        meta=np.empty((0,) * 5, dtype=np.float64), per_channel=bool(per_channel),
        ant1=np.asarray(ant1, np.int64), ant2=np.asarray(ant2, np.int64),
        hand1=np.asarray(hand1, np.int64), hand2=np.asarray(hand2, np.int64),
        corr_out=np.asarray(corr_out, np.int64), n_out=int(n_out),
    )
    if not per_channel and len(fchunks) > 1:
        stats = stats.sum(axis=1, keepdims=True)
    return stats, np.asarray(piece_cell, dtype=np.int64)


def _solve_block(stats, is_start, *, ant1, ant2, nant, refants, mode, minblperant, minsnr,
                 max_iter, tol, freqs, ref_freq):
    starts = np.flatnonzero(is_start).astype(np.int64)
    summed = K.segment_sum(stats, starts)
    if mode == MODE_DELAY:
        gain, snr, err, flag = solve_delays(summed, freqs, ref_freq, ant1, ant2, nant, refants,
                                            minblperant, minsnr)
    else:
        gain, snr, err, flag, _ = K.solve_cells(summed, ant1, ant2, nant, refants, mode,
                                                minblperant, minsnr, max_iter, tol)
    packed = np.empty(gain.shape + (N_PACKED,))
    packed[..., 0] = gain.real
    packed[..., 1] = gain.imag
    packed[..., 2] = snr
    packed[..., 3] = err
    packed[..., 4] = flag
    return packed


def reduce_and_solve(stats_list, piece_cells, ant1, ant2, nant, refants, mode, minblperant,
                     minsnr, max_iter=100, tol=1e-10, cells_per_chunk=512, freqs=None,
                     ref_freq=0.0):
    """Sum the pieces of each cell and solve.

    ``mode`` is a :data:`radiocal.calibration.kernels.CALMODES` value or :data:`MODE_DELAY`
    (then the frequency cells are channels at ``freqs`` and one delay per cell is returned).

    Parameters
    ----------
    stats_list : list of dask arrays (piece, frequency cell, baseline, hand, 5)
    piece_cells : list of numpy int (piece,)
        Global cell of each piece (every cell ``0 .. n-1`` must have at least one piece).

    Returns
    -------
    packed : dask array float64 (cell, frequency cell, antenna, hand, 5)
        ``[..., 0] + 1j [..., 1]`` is the gain, then SNR, error, flag (0/1).
    """
    stats = da.concatenate(stats_list, axis=0) if len(stats_list) > 1 else stats_list[0]
    cells = np.concatenate(piece_cells)
    order = np.argsort(cells, kind="stable")
    stats = stats[order]
    cells = cells[order]
    is_start = np.ones(len(cells), dtype=bool)
    is_start[1:] = cells[1:] != cells[:-1]
    starts = np.flatnonzero(is_start)
    if len(starts) != cells[-1] + 1:
        raise ValueError("every solution cell needs at least one piece of data")
    # chunk boundaries on cell boundaries, ~cells_per_chunk cells per chunk
    bounds = list(starts[::cells_per_chunk]) + [len(cells)]
    piece_chunks = tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))
    cell_chunks = tuple(int(is_start[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:]))
    # per-channel cells solve independently, so frequency chunks stay; a delay needs them all
    stats = stats.rechunk({0: piece_chunks, 1: -1 if mode == MODE_DELAY else stats.chunks[1],
                           2: -1, 3: -1, 4: -1})
    is_start_d = da.from_array(is_start, chunks=(piece_chunks,))
    name = "calib-solve-" + tokenize(stats, is_start, ant1, ant2, nant, refants, mode,
                                     minblperant, minsnr, max_iter, tol)
    adjust = {"k": cell_chunks, "s": N_PACKED}
    if mode == MODE_DELAY:
        adjust["c"] = 1
    return da.blockwise(
        _solve_block, "kcahs",
        stats, "kcbhs", is_start_d, "k",
        new_axes={"a": nant},
        adjust_chunks=adjust,
        concatenate=True, dtype=np.float64, name=name,
        meta=np.empty((0,) * 5, dtype=np.float64),
        ant1=np.asarray(ant1, np.int64), ant2=np.asarray(ant2, np.int64), nant=int(nant),
        refants=np.asarray(refants, np.int64), mode=int(mode),
        minblperant=int(minblperant), minsnr=float(minsnr), max_iter=int(max_iter),
        tol=float(tol), freqs=None if freqs is None else np.asarray(freqs, np.float64),
        ref_freq=float(ref_freq),
    )


def _apply_block(vis, flag, weight, jones, jflag, *, ant1, ant2, hand1, hand2, calwt):
    return K.apply_gains(vis, flag, weight, _only_block(jones), _only_block(jflag), ant1, ant2,
                         hand1, hand2, calwt)


def _pick(block, which):
    return block[which]


def apply(vis, flag, weight, jones, jflag, ant1, ant2, hand1, hand2, calwt):
    """Corrected visibilities, flags and weights (three dask arrays shaped like ``vis``).

    ``jones``/``jflag`` are (time, antenna, frequency, hand), chunked like ``vis`` on time and
    frequency. The kernel runs once per chunk; its three outputs are picked from a tuple-valued
    intermediate so nothing is computed twice.
    """
    vis = _as_dask(vis).rechunk({1: -1, 3: -1})
    flag = _as_dask(flag).rechunk(vis.chunks)
    weight = _as_dask(weight).rechunk(vis.chunks)
    jchunks = (vis.chunks[0], -1, vis.chunks[2], -1)
    jones = _as_dask(jones).rechunk(jchunks)
    jflag = _as_dask(jflag).rechunk(jchunks)
    kwargs = dict(ant1=np.asarray(ant1, np.int64), ant2=np.asarray(ant2, np.int64),
                  hand1=np.asarray(hand1, np.int64), hand2=np.asarray(hand2, np.int64),
                  calwt=bool(calwt))
    token = tokenize(vis, flag, weight, jones, jflag, kwargs)
    packed = da.blockwise(
        _apply_block, "tbfp", vis, "tbfp", flag, "tbfp", weight, "tbfp",
        jones, "tafh", jflag, "tafh", concatenate=False, dtype=object,
        meta=np.empty((0,) * 4, dtype=object), name="calib-apply-" + token, **kwargs)
    outs = []
    for which, dtype in enumerate((vis.dtype, np.dtype(bool), weight.dtype)):
        outs.append(packed.map_blocks(_pick, which, dtype=dtype,
                                      meta=np.empty((0,) * 4, dtype=dtype),
                                      name=f"calib-apply{which}-" + token))
    return tuple(outs)
