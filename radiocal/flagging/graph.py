"""Dask wrappers around the flagging kernels. Builders only build graphs; nothing here computes.

Arrays are ``(time, baseline, frequency, polarization)``. The time-frequency detectors
(SumThreshold, MAD, dilation, antenna health) need a baseline's whole time x frequency plane, so
they work on "planes": chunks of every time, channel and correlation of as many baselines as fit
in the chunk budget (:func:`radiocal.budget.chunk_bytes`). A plane larger than the budget stops
the run before it starts (:func:`radiocal.budget.require`). Visibilities are read from the store's
files in planes by the task that uses them (:func:`radiocal.store.rawchunks.reading`), never
regrouped from whole store chunks nor read ahead of their pass. Flags
are turned into planes once (:func:`to_planes`) and stay in them through a strategy; every
flagger returns flags chunked like the flags it was given.

Where a pass needs all of an earlier pass's output before any of its own chunks (a decision over
every plane OR-ed into each plane, stored chunks that each take a slice of every plane), the
earlier output is spilled to disk when a spill directory is set
(:func:`radiocal.store.rawchunks.spill`): held in memory, it would grow with the data.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from radiocal import budget
from radiocal._numba import record
from radiocal.engine import numba as jit
from radiocal.flagging import background as bg
from radiocal.flagging import basic_kernels as bk
from radiocal.flagging import kernels as k
from radiocal.flagging import spectral as sp
from radiocal.store import rawchunks
from radiocal.store.zarr_store import channel_free


def as_dask(array, chunks=None) -> da.Array:
    """A dask array view of ``array`` (numpy arrays become one chunk unless ``chunks`` is given)."""
    if isinstance(array, da.Array):
        return array
    return da.from_array(np.asarray(array), chunks=chunks or array.shape)


# A pass over planes waits for its slowest plane before the next starts (decisions over every
# plane), so a partition is cut into at least this many planes while each still holds
# 1/MIN_PLANES of the budget: with 6 planes of a 352-antenna integration on 2 threads, one
# thread idled through most of a plane at every such barrier. Not more: every plane is a dozen
# tasks (reads, spills, kernels, counts) of ~1 ms each on the default scheduler, and with the
# 8 MiB budget a small scan would be cut finer than its kernels' work pays for (VLA-like x1,
# 28 scans of 30-72 integrations x 351 baselines: `radiocal flag` 52 CPU-s at 16, 33 at 4).
MIN_PLANES = 4


def plane_chunks(shape) -> dict:
    """Chunks of whole (time, frequency, polarization) planes, baselines split by the budget
    (and into :data:`MIN_PLANES` where the planes stay large enough).

    The budget counts complex64 visibilities (as every step's chunks), whatever the dtype of the
    array being chunked, so flags and visibilities of a partition get the same planes.
    """
    n_t, n_b, n_f, n_p = shape
    per_baseline = max(1, n_t * n_f * n_p * budget.VISIBILITY_ITEMSIZE)
    budget.require(per_baseline, f"flagging one baseline's plane of {n_t} integrations x {n_f} "
                                 f"channels x {n_p} correlations",
                   "split the scan in time (convert with --timerange)")
    fits = budget.chunk_bytes() // per_baseline
    spread = max(-(-n_b // MIN_PLANES), fits // MIN_PLANES)
    return {0: -1, 1: int(max(1, min(n_b, fits, spread))), 2: -1, 3: -1}


def to_planes(flag: da.Array) -> da.Array:
    """``flag`` in :func:`plane_chunks`: through the spill directory when one is set (a plane
    takes a slice of every stored chunk, so a rechunk in memory would hold them all), else by
    a rechunk (or by regions, for raw chunk files)."""
    chunks = da.core.normalize_chunks(plane_chunks(flag.shape), flag.shape)
    if flag.chunks == chunks:
        return flag
    directory = rawchunks.spill_dir()
    if directory is None:
        return rawchunks.rechunk(flag, chunks)
    return rawchunks.spill(flag, directory, chunks)


def hold(flag: da.Array) -> da.Array:
    """``flag`` as it will be read after a decision taken over all of it: spilled when a spill
    directory is set (see the module's docstring), else itself. The same ``flag`` gives the same
    keys, so the flagger and its counting share one spill."""
    directory = rawchunks.spill_dir()
    return flag if directory is None else rawchunks.spill(flag, directory)


def in_chunks(array: da.Array, chunks, token: str, after=None) -> da.Array:
    """``array`` (visibilities or weights of a partition) in ``chunks``, read under keys of its
    own (``token``): raw chunk files by regions, anything else by a rechunk; a channel-free
    weight is its small channel-free source rechunked, with a frequency axis of length 1 that
    the task broadcasts (:func:`channels`). Broadcast as tasks of their own, the weights of
    every plane were made at once, cheap and ready first, and waited in memory for their
    visibilities (1.06 GB of a 352-antenna, 6-integration store)."""
    compact = channel_free(array)
    if compact is not None:
        return compact.rechunk((chunks[0], chunks[1], chunks[3]))[:, :, None, :]
    if rawchunks.is_raw(array):
        return rawchunks.reread(array, chunks, token, after)
    return array.rechunk(chunks)


# Tasks call the numba kernels through these plain functions: a jitted function pickled to a
# worker process arrives without its on-disk cache and is recompiled there on every run. The
# planes are made C-contiguous and writable (copies only when they are not), so one
# specialization serves every task and is the one compiled ahead (:func:`compile_ahead`).
def canonical(vis, flag, *args):
    return (np.require(vis, requirements="CW"), np.require(flag, requirements="CW")) + args


def _sumthreshold_block(*args):
    return k.sumthreshold_block(*canonical(*args))


def _mad_block(*args):
    return k.mad_block(*canonical(*args))


def _sumthreshold_mad_block(*args):
    return k.sumthreshold_mad_block(*canonical(*args))


def _spectral_block(*args):
    return sp.spectral_block(*canonical(*args))


def compile_ahead(kernel, vis, flag, *args):
    """Name ``kernel`` and its argument types to :func:`radiocal.engine.numba.compile_parallel`
    (the planes as :func:`canonical` makes them), and the LOESS background every detector
    calls, so that it is compiled once, not in each process compiling a detector; before it,
    the background's own kernels (its fit first, the longest to compile), in parallel."""
    plane, stack, mask = np.empty((0, 0)), np.empty((0, 0, 0)), np.empty((0, 0), bool)
    jit.ahead(bg._loess, stack, plane, 0.0, 0, False, plane, False, first=2)
    jit.ahead(bg.running_median_lanes, plane, plane, 0, first=2)
    jit.ahead(bg.lane_medians, plane, mask, first=2)
    jit.ahead(bg.lane_median_below, plane, plane, mask, np.empty(0), first=2)
    jit.ahead(bg._abs_median, plane, plane, plane, first=2)
    jit.ahead(bg._bisquare, plane, 0.0, plane, first=2)
    # SumThreshold's rows, which both detectors call: compiled in each detector's process, the
    # last save's symbol left the other's cached callers a miss, compiled again in the next run
    row = np.empty(0)
    jit.ahead(k._sumthreshold_rows, plane, np.zeros((2, 4), bool)[:, ::2], 0, 0.0,
              np.zeros((2, 4), bool)[:, ::2], row, row, row, first=2)
    jit.ahead(bg.robust_loess_stack, stack, plane, 0.0, 0, 0, plane, first=True)
    jit.ahead(kernel, np.empty((0,) * 4, vis.dtype), np.empty((0,) * 4, flag.dtype), *args)


def _model_residual_block(*args):
    return sp.model_residual_block(*args)


def _dilate_block(*args):
    return k.dilate_block(*args)


def _shadow_block(*args):
    return bk.shadow_block(*args)


def _reading(kernel, name, reads, flag, *args, token: str = "", **kwargs) -> da.Array:
    """``da.map_blocks(kernel, *reads, flag, *args, **kwargs)`` in ``flag``'s chunks, the arrays
    of ``reads`` read inside each task where they are raw (never ahead of the pass: see
    :func:`radiocal.store.rawchunks.reading`), else as arrays of their own (``token``: see
    :func:`in_chunks`)."""
    inside = rawchunks.reading(kernel, reads)
    if inside is None:
        reads = [in_chunks(array, flag.chunks, token, after=flag) for array in reads]
        return da.map_blocks(kernel, *reads, flag, *args, **kwargs,
                             name=f"{name}-{tokenize(kernel.__name__, *reads, flag, args)}")
    return da.map_blocks(inside, flag, *args, **kwargs,
                         name=f"{name}-{tokenize(inside, flag, args)}")


def _planes(kernel, name, vis, flag, *params, dtype=bool) -> da.Array:
    f = flag.rechunk(plane_chunks(flag.shape))
    out = _reading(kernel, name, [vis], f, *params, dtype=dtype, meta=np.empty((0,) * 4, dtype))
    return out.rechunk(flag.chunks)


def sumthreshold_flags(vis, flag, params) -> da.Array:
    """Lazy :func:`radiocal.flagging.kernels.sumthreshold_block` over a partition.

    Parameters
    ----------
    vis : dask.array, complex, shape (time, baseline, frequency, polarization)
    flag : dask.array, bool, same shape
    params : radiocal.flagging.params.SumThresholdParams

    Returns
    -------
    dask.array, bool, same shape and chunks as ``flag``
    """
    compile_ahead(k.codes_kernel(params), vis, flag, *k.sumthreshold_args(params))
    return _planes(_sumthreshold_block, "flag-sumthreshold", vis, flag, params)


def mad_flags(vis, flag, params) -> da.Array:
    """Lazy :func:`radiocal.flagging.kernels.mad_block` (``params``: a
    ``params.MadParams``; shapes as :func:`sumthreshold_flags`)."""
    compile_ahead(k._mad_flags, vis, flag, record(params))
    return _planes(_mad_block, "flag-mad", vis, flag, params)


def sumthreshold_mad_codes(vis, flag, sumthreshold, mad) -> da.Array:
    """Lazy :func:`radiocal.flagging.kernels.sumthreshold_mad_block`: SumThreshold, then MAD on
    its flags, in one pass (``params.SumThresholdParams``, ``params.MadParams``).

    Returns
    -------
    dask.array, uint8, same shape and chunks as ``flag``
        0, ``kernels.BY_SUMTHRESHOLD`` or ``kernels.BY_MAD`` per sample.
    """
    compile_ahead(k.codes_kernel(sumthreshold, mad), vis, flag,
                  *k.sumthreshold_args(sumthreshold, mad))
    return _planes(_sumthreshold_mad_block, "flag-sumthreshold-mad", vis, flag, sumthreshold,
                   mad, dtype=np.uint8)


def spectral_flags(vis, flag, params, edges) -> da.Array:
    """Lazy :func:`radiocal.flagging.spectral.spectral_block` (``params``: a
    ``params.SpectralParams``, ``edges`` from :func:`radiocal.flagging.spectral.segment_edges`;
    shapes as :func:`sumthreshold_flags`)."""
    edges = np.asarray(edges, np.int64)
    compile_ahead(sp._spectral_flags, vis, flag, *sp.spectral_args(params, edges))
    return _planes(_spectral_block, "flag-spectral", vis, flag, params, edges)


def model_residual(vis, model, flag, width, edges) -> da.Array:
    """Lazy :func:`radiocal.flagging.spectral.model_residual_block`, in planes (whole spectra;
    the spectral detector reads the same planes)."""
    f = flag.rechunk(plane_chunks(flag.shape))
    return _reading(_model_residual_block, "flag-model-residual", [vis, model], f, float(width),
                    np.asarray(edges, np.int64), dtype=np.complex64,
                    meta=np.empty((0,) * 4, np.complex64))


def dilate_flags(flag, params):
    """Lazy :func:`radiocal.flagging.kernels.dilate_block` (``params``: a
    ``params.DilateParams``); returns flags chunked like ``flag``."""
    f = flag.rechunk(plane_chunks(flag.shape))
    out = da.map_blocks(_dilate_block, f, params, dtype=bool, meta=np.empty((0,) * 4, bool),
                        name=f"flag-dilate-{tokenize(f, params)}")
    return out.rechunk(flag.chunks)


def channels(weight, like):
    """``weight`` over every channel of ``like`` (a no-op when it has them already)."""
    return np.ascontiguousarray(np.broadcast_to(weight, like.shape))


def _clip_flags_only(vis, flag, weight, params):
    return bk.clip_block(vis, channels(weight, vis), flag, params)[0]


def _clip_counts_only(vis, flag, weight, params):
    return bk.clip_block(vis, channels(weight, vis), flag, params)[1].reshape(1, 1, 1, 1, 4)


def clip_flags(vis, weight, flag, params):
    """Lazy :func:`radiocal.flagging.basic_kernels.clip_block` (``params``: a
    ``params.ClipParams``).

    Returns
    -------
    flags : dask.array, bool, shape (time, baseline, frequency, polarization), chunks of ``flag``
    counts : dask.array, int64, shape (4,)
        Newly flagged samples: non-finite, zero weight, exact zero, amplitude range.
    """
    # own reads (the visibilities' too, see _reading): the planes' detectors read them again
    # after decisions over all
    weight = in_chunks(weight, flag.chunks, "clip")
    flags = _reading(_clip_flags_only, "flag-clip", [vis], flag, weight, params, token="clip",
                     dtype=bool, meta=np.empty((0,) * 4, bool))
    per_block = _reading(_clip_counts_only, "flag-clip-counts", [vis], flag, weight, params,
                         token="clip", dtype=np.int64, new_axis=4,
                         chunks=tuple((1,) * len(c) for c in flag.chunks) + ((4,),),
                         meta=np.empty((0,) * 5, np.int64))
    return flags, per_block.sum(axis=(0, 1, 2, 3))


def shadow_flags(uvw, antenna1, antenna2, diameter, params):
    """Lazy :func:`radiocal.flagging.basic_kernels.shadow_block` (``params``: a
    ``params.ShadowParams``).

    Parameters
    ----------
    uvw : dask.array, float64, shape (time, baseline, uvw_label), all baselines in each chunk
    antenna1, antenna2 : ndarray, int, shape (baseline,)
    diameter : ndarray, float64, shape (antenna,)

    Returns
    -------
    dask.array, bool, shape (time, baseline)

    A store's UVW is read inside the tasks, each of as many whole stored chunks as fit in the
    chunk budget (a VLA-like scan's in one task, not a read and a mask per stored chunk: 234 of
    the 1534 tasks flagging the VLA-like x4 store took, ~2 ms of the scheduler's each).
    """
    a1 = np.asarray(antenna1, np.int64)
    a2 = np.asarray(antenna2, np.int64)
    diam = np.asarray(diameter, np.float64)
    files = rawchunks.chunk_files(uvw)
    if files is not None:
        name = f"flag-shadow-{tokenize(uvw.name, a1, a2, diam, params)}"
        stored = files.chunk_shape[0]
        stored_bytes = stored * int(np.prod(uvw.shape[1:])) * uvw.dtype.itemsize
        starts = np.cumsum((0,) + budget.chunk_sizes(
            uvw.shape[0], stored * max(1, budget.chunk_bytes() // max(1, stored_bytes))))
        layer = {(name, i, 0): (_shadow_region, files, slice(a, b), a1, a2, diam, params)
                 for i, (a, b) in enumerate(zip(starts[:-1], starts[1:]))}
        return da.Array(HighLevelGraph.from_collections(name, layer, dependencies=()), name,
                        (tuple(np.diff(starts)), (uvw.shape[1],)), meta=np.empty((0, 0), bool))
    uvw = uvw.rechunk({1: -1, 2: -1})
    return da.map_blocks(_shadow_block, uvw, a1, a2, diam, params, dtype=bool,
                         drop_axis=2, meta=np.empty((0, 0), bool),
                         name=f"flag-shadow-{tokenize(uvw, a1, a2, diam, params)}")


def _shadow_region(files, times, *args):
    return bk.shadow_block(files[times], *args)


def _stats_block(vis, flag, hands, params):
    return bk.baseline_stats(vis[..., hands], flag[..., hands], params)


def baseline_health(vis, flag, hands, antenna1, antenna2, n_antenna, params):
    """Lazy per-baseline health mask of a partition (see ``basic_kernels.health_decision``).

    Statistics are taken per baseline over the partition's whole time axis, in planes (so they
    do not depend on how the store is chunked); only the small per-baseline statistics meet in
    one chunk for the decision.

    Parameters
    ----------
    vis : dask.array, complex, shape (time, baseline, frequency, polarization)
    flag : dask.array, bool, same shape
    hands : ndarray, int
        The polarization indices the statistics use (the parallel hands).
    params : radiocal.flagging.params.AntennaHealthParams

    Returns
    -------
    dask.array, bool, shape (baseline,)
        True for baselines to flag.
    """
    # Its own reads: the detectors after it read the same planes once the decision is made
    f = flag.rechunk(plane_chunks(flag.shape))
    hands = np.asarray(hands, np.int64)
    n_b, n_p = f.shape[1], len(hands)
    stats = _reading(_stats_block, "flag-health-stats", [vis], f, hands, params,
                     token="health", dtype=np.float64, drop_axis=0,
                     chunks=(f.chunks[1], (n_p,), (3,)), meta=np.empty((0,) * 3))
    a1 = np.asarray(antenna1, np.int64)
    a2 = np.asarray(antenna2, np.int64)
    n_antenna = int(n_antenna)

    def decide(s):
        return bk.health_decision(s, a1, a2, n_antenna, params)[0]

    return da.map_blocks(decide, stats.rechunk(-1), dtype=bool, drop_axis=(1, 2),
                         chunks=((n_b,),), meta=np.empty((0,), bool),
                         name=f"flag-health-{tokenize(stats, a1, a2, n_antenna, params)}")
