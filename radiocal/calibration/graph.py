"""Dask wrappers around the calibration kernels: accumulate, reduce-and-solve, interpolate, apply.

Solving is a map-reduce. Every (time, baseline, frequency) chunk of every partition is reduced to
sufficient statistics of the solution cells it touches (one "piece" per chunk x cell); the pieces
of each cell are summed by a tree reduction (:mod:`radiocal.calibration.reduce`) and groups of
cells are solved. Applying maps over the chunks of the data as they are. Every chunk is sized
from :func:`radiocal.budget.chunk_bytes`. Nothing here computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.layers import ArrayBlockwiseDep, ArraySliceDep

from radiocal.budget import DEFAULT_LIMIT_BYTES, chunk_bytes, chunk_limit
from radiocal.budget import chunk_sizes as budget_chunks
from radiocal.calibration import kernels as K
from radiocal.calibration import delay_graph, reduce
from radiocal.store import rawchunks
from radiocal.store.zarr_store import channel_free

MODE_DELAY = -1

# Set on a lazy array made by :func:`made_in_blocks`: (its dask name, its InBlocks recipe)
_IN_BLOCKS = "_radiocal_in_blocks"


@dataclass(frozen=True, eq=False)
class InBlocks:
    """How to make any block, over the data's time and frequency chunks, of an array a kernel
    needs (a model (time, baseline, frequency, polarization), a chain's terms (time, antenna,
    frequency, hand)) from small inputs: ``func(data block shape, *input blocks, **kwargs)``.

    ``inputs`` are ``(dask array, index)`` pairs; an index names each axis of its array with
    ``t``, ``b`` or ``f`` (the data's time, baseline, frequency) or another letter (an axis
    taken whole).
    """

    func: object
    inputs: tuple
    kwargs: dict = field(default_factory=dict)


def made_in_blocks(array: da.Array, recipe: InBlocks) -> da.Array:
    """``array`` marked as made by ``recipe``: :func:`accumulate` then makes each of its blocks
    inside the task that uses it instead of reading it (:func:`apply` takes a recipe itself).
    A model computed as tasks of its own
    was either made ahead of its solve (a visibility chunk's size each, ~20 at once: a 200 MB
    spike at 4x the data) or tied to the read of its visibilities, which were then held until
    both the model and the solve had used them."""
    setattr(array, _IN_BLOCKS, (array.name, recipe))
    return array


def in_blocks(array) -> InBlocks | None:
    """The recipe :func:`made_in_blocks` marked ``array`` with, else None (dask arrays can be
    assigned to in place, under a new name: then the mark no longer holds)."""
    marker = getattr(array, _IN_BLOCKS, None)
    if marker is None or marker[0] != getattr(array, "name", None):
        return None
    return marker[1]


def _recipe_block(*blocks, recipe):
    func, kwargs = recipe
    return func(None, *(_only_block(b) for b in blocks), **kwargs)


def from_recipe(recipe: InBlocks, index: str, new_axes: dict, dtype) -> da.Array:
    """What ``recipe`` makes, as an array of its own (a task per block) in its inputs' chunks:
    ``index`` names its axes by the inputs' letters and ``new_axes``."""
    args = [x for array_index in recipe.inputs for x in array_index]
    return da.blockwise(_recipe_block, index, *args, new_axes=new_axes, align_arrays=False,
                        concatenate=False, dtype=dtype, meta=np.empty((0,) * len(index), dtype),
                        recipe=(recipe.func, recipe.kwargs))


def _recipe_args(recipe: InBlocks, chunks, taken: str, freq: str) -> list:
    """Blockwise arguments of ``recipe``'s inputs for blocks in ``chunks`` (time, baseline,
    frequency): the data's axes as ``t``, ``b`` and ``freq``, every other letter renamed away
    from ``taken`` (each a single chunk)."""
    data = {"t": ("t", chunks[0]), "b": ("b", chunks[1]), "f": (freq, chunks[2])}
    spare = iter(c for c in "ABCDEGHIJKLMNOQRSTUVWXYZabcdegijklmnqruvwxy" if c not in taken)
    renamed: dict = {}
    args = []
    for array, index in recipe.inputs:
        letters, target = "", {}
        for axis, letter in enumerate(index):
            if letter in data:
                letters += data[letter][0]
                target[axis] = data[letter][1]
            else:
                letters += renamed.setdefault(letter, next(spare))
                target[axis] = -1
        # a blockwise literal (one value per block) comes in the data's chunks already
        args += [array.rechunk(target) if isinstance(array, da.Array) else array, letters]
    return args


class PerBlock(ArrayBlockwiseDep):
    """A blockwise input whose block ``i`` (along one axis) is ``values[i]``, put into that
    block's task itself: no task of its own (a small array's chunks as a dask array were a task
    each, ~1 ms of the distributed scheduler's time per chunk and run)."""

    ndim = 1

    def __init__(self, chunks, values, token):
        super().__init__(chunks)
        self.values = values
        self.token = token

    def __getitem__(self, idx):
        return self.values[idx[0]]

    def __dask_tokenize__(self):
        return self.token


def per_block(values, chunks) -> PerBlock:
    """A small 1-d array ``values`` as a blockwise input in ``chunks``."""
    values = np.asarray(values)
    edges = np.cumsum((0,) + tuple(chunks))
    return PerBlock((tuple(chunks),), [values[a:b] for a, b in zip(edges[:-1], edges[1:])],
                    tokenize(values, tuple(chunks)))


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


def _split(chunks, most: int) -> tuple:
    """``chunks`` with every chunk split into near-equal parts of at most ``most``."""
    out = []
    for size in chunks:
        parts = -(-size // max(1, most))
        base, extra = divmod(size, parts)
        out.extend([base + 1] * extra + [base] * (parts - extra))
    return tuple(out)


def _fit_axis(chunks, cost, axis, limit=None):
    """Split ``chunks[axis]`` until ``cost(sizes)`` of the largest block is within ``limit``
    (default: the chunk budget)."""
    limit = chunk_bytes() if limit is None else limit
    sizes = [max(c) for c in chunks]
    most = sizes[axis]
    while most > 1 and cost(sizes[:axis] + [most] + sizes[axis + 1:]) > limit:
        most = -(-most // 2)
    chunks = list(chunks)
    chunks[axis] = _split(chunks[axis], most)
    return tuple(chunks)


def _solve_limit() -> int:
    """What one per-channel solve task may hold: a channel chunk's statistics of every baseline
    are a unit of their own, allowed up to the chunk limit (at most its default)."""
    return max(chunk_bytes(), min(chunk_limit(), DEFAULT_LIMIT_BYTES))


def solve_channel_chunks(nchan: int, nbl: int, n_out: int) -> tuple:
    """Channel chunks of a per-channel solve: a chunk's statistics of every baseline (float64
    ``n_out x N_STATS`` per channel and baseline) within :func:`_solve_limit`."""
    stat = n_out * K.N_STATS * 8
    return _fit_axis(((nchan,),), lambda s: s[0] * nbl * stat, 0, _solve_limit())[0]


def accumulation_chunks(chunks, npol, nbl, per_channel, n_out, whole_band=False,
                        summed=False, pieces=None):
    """Chunks (time, baseline, frequency) for :func:`accumulate` within the chunk budget.

    A block's visibilities and its statistics (up to one piece per integration, at most
    ``pieces`` (the most solution cells a time chunk of the data touches): float64
    ``n_out x N_STATS`` per baseline, and per channel when ``per_channel``; one piece with
    ``summed``, statistics summed over the block's integrations) stay within
    :func:`radiocal.budget.chunk_bytes`. Per channel, either every block holds the whole band
    (``whole_band``: its statistics are spilled and read back in solve chunks; baselines are
    split, in equal chunks as spill files are, then time), or the frequency chunks are the
    solve's (:func:`solve_channel_chunks`), split further if need be, then baselines, then time.
    """
    stat = n_out * K.N_STATS * 8

    def cost(sizes):
        t, b, f = sizes
        held = 1 if summed else t if pieces is None else min(t, pieces)
        return max(t * b * f * npol * 8, held * b * (f if per_channel else 1) * stat)

    chunks = tuple(tuple(c) for c in chunks)
    if whole_band:
        nchan = sum(chunks[2])
        chunks = _fit_axis(chunks[:2] + ((nchan,),), cost, 1)
        chunks = (chunks[0], budget_chunks(nbl, max(chunks[1])), chunks[2])
        return _fit_axis(chunks, cost, 0)
    if per_channel:
        # split to the 8 MiB budget, 352 antennas' statistics came in ~1-channel chunks, each
        # read the whole stored chunk of its channels' data, and sky_bandpass went from 0.70 to
        # > 7 GB (OOM-killed) on a 0.76 GB LWA store
        chunks = _fit_axis(chunks, lambda s: s[2] * nbl * stat, 2, _solve_limit())
    for axis in (2, 1, 0):
        chunks = _fit_axis(chunks, cost, axis)
    return chunks


def weights(weight, chunks, read=rawchunks.rechunk):
    """``weight`` (time, baseline, frequency, polarization) for a kernel's blocks in ``chunks``.

    A channel-free weight (one per time, baseline and correlation, as stores keep them) comes
    back as (time, baseline, 1, polarization), for :func:`full_weight` to broadcast over the
    block's channels as a view: materialized, it is half a visibility chunk per block, and dask
    made those copies ahead of the kernels (90 MiB of them held at once by an apply of
    16 MiB chunks). Anything else is ``read(weight, chunks)``. Give the result the frequency
    index of the visibilities only where its frequency axis is theirs (``weight_index``).
    """
    compact = channel_free(weight)
    if compact is None:
        return read(weight, chunks)
    return compact.rechunk((chunks[0], chunks[1], chunks[3]))[:, :, None, :]


def weight_index(weight, nchan: int, freq: str) -> str:
    """The blockwise index of what :func:`weights` returned: ``freq`` unless channel-free."""
    return f"tb{freq}p" if weight.shape[2] == nchan else "tbzp"


def full_weight(weight, vis):
    """A block's weights shaped like its visibilities (a read-only view when channel-free)."""
    weight = _only_block(weight)
    return weight if weight.shape == vis.shape else np.broadcast_to(weight, vis.shape)


def _reads(array, chunks, per_channel: bool, token: str) -> da.Array:
    """``array`` in ``chunks``; per channel, every chunk of channels read by tasks of its own.

    Per channel, the statistics of a channel chunk are only complete once every (time,
    baseline) chunk has been read, so the solve goes channel chunk by channel chunk (a cell's
    statistics of every channel and baseline can be bigger than the data: 352 antennas, 768
    channels, 3.8 GB). Were the inputs read whole and sliced, dask would hold each read until
    its last channel chunk was done: every flag and weight of the cell. So arrays in the store's
    raw chunk files are read region by region, a channel-free weight is broadcast block by
    block, and anything else is read again for each channel chunk (its own keys).
    """
    if not per_channel or len(chunks[2]) == 1 or rawchunks.is_raw(array):
        return rawchunks.rechunk(array, chunks)
    # each channel chunk re-reads only its slice's graph (rechunked and sliced after, every
    # channel chunk's copy of the whole graph made it grow as channel chunks x data chunks)
    edges = np.cumsum((0,) + tuple(chunks[2]))
    return da.concatenate([rawchunks.reread(array[:, :, lo:hi],
                                            chunks[:2] + ((hi - lo,),) + tuple(chunks[3:]),
                                            f"{token}-{i}")
                           for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))], axis=2)


def _accumulate_block(region, vis, model, weight, flag, jones, piece, ant1, ant2, *made,
                      per_channel, hand1, hand2, corr_out, n_out, recipe=None,
                      jones_recipe=None, files=None):
    if files is not None:
        vis, flag, weight = _read_stored(region, files, vis, flag, weight)
    vis, flag = (_only_block(b) for b in (vis, flag))
    made = [_only_block(b) for b in made]
    if recipe is None:
        model = _only_block(model)
    else:
        func, kwargs, n = recipe
        model, made = func(vis.shape, *made[:n], **kwargs), made[n:]
    if jones_recipe is None:
        jones = _only_block(jones)
    else:
        func, kwargs = jones_recipe
        jones = func(vis.shape, *made, **kwargs)
    weight = full_weight(weight, vis)
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
        One frequency cell per channel (B, K), else one for the whole spw (G, T). The data keep
        their chunks, split further where :func:`accumulation_chunks` says; per channel the
        frequency chunks stay separate, otherwise their statistics are summed by a tree
        reduction.

    Returns
    -------
    stats : dask array float64 (piece, frequency cell, baseline, out hand, 5)
    piece_cell : numpy int (piece,)
        The global cell of each piece.
    """
    vis = _as_dask(vis).rechunk({3: -1})
    data_chunks = vis.chunks
    npol, nbl = vis.shape[3], vis.shape[1]
    # in a run, per-channel statistics are spilled and read back by channel chunk
    # (reduce_and_solve): blocks then take every channel
    spill = rawchunks.spill_dir() if per_channel else None
    # a block holds a piece per cell it touches, not per integration: a bandpass (one cell per
    # scan) counted as one piece per integration split its blocks' baselines away from the
    # stored chunks, and every flag chunk was rechunked (x4 VLA-like store: 715 tasks for
    # 0.5 s of accumulation)
    edges = np.cumsum((0,) + tuple(vis.chunks[0]))
    pieces = max((len(np.unique(np.asarray(cell_of_time[a:b]))) for a, b in
                  zip(edges[:-1], edges[1:])), default=1)
    tchunks, bchunks, fchunks = accumulation_chunks(vis.chunks[:3], npol, nbl, per_channel,
                                                    n_out, whole_band=spill is not None,
                                                    pieces=pieces)
    chunks = (tchunks, bchunks, fchunks, (npol,))
    token = tokenize(vis, model, weight, flag, chunks)
    # with the statistics spilled every block reads its data once, as any pass does
    by_channel = per_channel and spill is None
    recipe = in_blocks(model)
    stored = _as_dask(vis), _as_dask(flag), _as_dask(weight)
    # what the store holds in the blocks' chunks is read inside the block's task; the others,
    # and the per-channel reads of every channel chunk (by_channel), are tasks of their own
    files = (None, None, None) if by_channel else _stored_inputs(*stored)
    vis_in, flag_in, weight_in = block_inputs(
        stored, files, chunks, lambda x, c, name: _reads(x, c, by_channel, f"{token}-{name}"),
        "F")
    # a model with a recipe is made inside the accumulate task, from small inputs
    made = [] if recipe is None else _recipe_args(recipe, chunks, "tbFposahz", "F")
    if recipe is None:
        model = _reads(_as_dask(model), chunks, by_channel, f"{token}-2")
    # prior terms with a recipe are made inside the task too, when it is in the data's chunks
    # (its solutions come by time chunk of the data)
    jones_recipe = in_blocks(jones)
    if jones_recipe is not None and (tchunks, fchunks) == (data_chunks[0], data_chunks[2]):
        made += _recipe_args(jones_recipe, chunks, "tbFposahz" + "".join(made[1::2]), "F")
    else:
        jones_recipe = None
        jones = _as_dask(jones)
        jones = _reads(jones, (tchunks, (jones.shape[1],), fchunks, (jones.shape[3],)),
                       by_channel, f"{token}-jones")
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
    piece = per_block(local, tchunks)
    a1 = per_block(np.asarray(ant1, np.int64), bchunks)
    a2 = per_block(np.asarray(ant2, np.int64), bchunks)
    name = "calib-accumulate-" + tokenize(token, model, jones, local, per_channel, ant1, ant2,
                                          hand1, hand2, corr_out, n_out)
    stats = da.blockwise(
        _accumulate_block, "tFbos", ArraySliceDep(chunks[:3]), "tbF",
        *vis_in, *((model, "tbFp") if recipe is None else (None, None)),
        *weight_in, *flag_in,
        *((jones, "taFh") if jones_recipe is None else (None, None)), piece, "t",
        a1, "b", a2, "b", *made,
        new_axes={"o": n_out, "s": K.N_STATS},
        adjust_chunks={"t": tuple(pieces_per_chunk),
                       "F": fchunks if per_channel else (1,) * len(fchunks)},
        concatenate=False, dtype=np.float64, name=name,
        meta=np.empty((0,) * 5, dtype=np.float64), per_channel=bool(per_channel),
        hand1=np.asarray(hand1, np.int64), hand2=np.asarray(hand2, np.int64),
        corr_out=np.asarray(corr_out, np.int64), n_out=int(n_out),
        recipe=None if recipe is None else (recipe.func, recipe.kwargs, len(recipe.inputs)),
        jones_recipe=None if jones_recipe is None else (jones_recipe.func, jones_recipe.kwargs),
        files=files if any(read is not None for read in files) else None,
        # every input is in the blocks' chunks already (a recipe's literals and the blockwise
        # dependencies cannot be aligned)
        align_arrays=False,
    )
    if not per_channel and len(fchunks) > 1:
        stats = stats.sum(axis=1, keepdims=True)
    return stats, np.asarray(piece_cell, dtype=np.int64)


def _spilled(stats, directory, fchunks):
    """Summed per-channel statistics of solution cells (every channel of a few baselines per
    chunk) written to raw chunk files and read back in the solve's channel chunks, each chunk of
    every baseline by one task, once every chunk is written.

    A solve task needs a channel chunk of every baseline, and the data come as every channel of
    a few baselines: held in memory, a cell's statistics (2.5x an integration's visibilities;
    352 antennas x 768 channels: 3.8 GB) would all wait for the first solve. Read by channel
    chunk from the data instead, each solve chunk re-read its part of every stored chunk: at
    small chunks a task per channel and baseline chunk, a graph that grew as their product (the
    3 GB LWA set was OOM-killed at 8 MiB chunks). Spilled after the sum over time, the spill is
    the size of the cells' statistics, not of the integrations'.
    """
    return rawchunks.spill(stats, directory, (stats.chunks[0], fchunks, (stats.shape[2],))
                           + stats.chunks[3:])


def _solve_block(stats, *, ant1, ant2, nant, refants, mode, limits):
    gain, snr, err, flag, used_ref = K.solve_cells(stats, ant1, ant2, nant, refants, mode,
                                                   limits)
    packed = np.empty(gain.shape + (K.N_PACKED,))
    packed[..., 0] = gain.real
    packed[..., 1] = gain.imag
    packed[..., 2] = snr
    packed[..., 3] = err
    packed[..., 4] = flag
    packed[..., 5] = used_ref[:, :, None, :]
    return packed


def _common_chunks(arrays, axis):
    """The coarsest chunks along ``axis`` that split every array's chunks only."""
    bounds = set()
    for array in arrays:
        bounds.update(np.cumsum((0,) + array.chunks[axis]).tolist())
    bounds = sorted(bounds)
    return tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))


def reduce_and_solve(stats_list, piece_cells, ant1, ant2, nant, refants, mode,
                     limits: K.SolveLimits, freqs=None, ref_freq=0.0):
    """Sum the pieces of each cell (a tree reduction) and solve.

    ``mode`` is a :data:`radiocal.calibration.kernels.CALMODES` value or :data:`MODE_DELAY`
    (then the frequency cells are channels at ``freqs`` and one delay per cell is returned).
    Cells are solved in groups whose statistics of every baseline fit the chunk budget, the
    channels in the chunks they were accumulated in (a delay: :mod:`radiocal.calibration.delay_graph`).

    Parameters
    ----------
    stats_list : list of dask arrays (piece, frequency cell, baseline, hand, 5)
    piece_cells : list of numpy int (piece,)
        Global cell of each piece (every cell ``0 .. n-1`` must have at least one piece).

    Returns
    -------
    packed : dask array float64 (cell, frequency cell, antenna, hand, 5)
        ``[..., 0] + 1j [..., 1]`` is the gain, then SNR, error, flag (0/1) and the reference
        antenna used in the cell (the same for every antenna; -1 where none).
    """
    common = {axis: _common_chunks(stats_list, axis) for axis in (1, 2)}
    stats_list = [s.rechunk(common) for s in stats_list]
    n_cells = int(max(int(c.max()) for c in piece_cells if c.size)) + 1
    nbl, nh = stats_list[0].shape[2], stats_list[0].shape[3]
    per_cell = max(common[1]) * nbl * nh * K.N_STATS * 8
    stats = reduce.cell_sums(stats_list, piece_cells, n_cells,
                             max(1, chunk_bytes() // per_cell))
    spill = rawchunks.spill_dir()
    if spill is not None and len(common[1]) == 1 and common[1][0] > 1:
        # per channel, every channel of a block came at once (accumulate): spill, read back
        # by channel chunk of every baseline, unless one solve task can take them all
        fchunks = solve_channel_chunks(common[1][0], nbl, nh)
        if len(fchunks) > 1:
            stats = _spilled(stats, spill, fchunks)
    if mode == MODE_DELAY:
        return delay_graph.solve(stats, freqs, ref_freq, ant1, ant2, nant, refants, limits)
    name = "calib-solve-" + tokenize(stats, ant1, ant2, nant, refants, mode, limits)
    return da.blockwise(
        _solve_block, "kcahs",
        stats, "kcbhs",
        new_axes={"a": nant},
        adjust_chunks={"s": K.N_PACKED},
        concatenate=True, dtype=np.float64, name=name,
        meta=np.empty((0,) * 5, dtype=np.float64),
        ant1=np.asarray(ant1, np.int64), ant2=np.asarray(ant2, np.int64), nant=int(nant),
        refants=np.asarray(refants, np.int64), mode=int(mode), limits=limits,
    )


def _apply_block(region, vis, flag, weight, jones, jflag, ant1, ant2, *made, hand1, hand2,
                 calwt, recipe=None, files=None):
    if files is not None:
        vis, flag, weight = _read_stored(region, files, vis, flag, weight)
    if recipe is None:
        jones, jflag = _only_block(jones), _only_block(jflag)
    else:
        func, kwargs = recipe
        jones = func(vis.shape, *(_only_block(b) for b in made), **kwargs)
        jflag = ~np.isfinite(jones)
        jones = np.where(jflag, 1, jones)
    vis_out, flag_out, weight_out = K.apply_gains(
        vis, flag, full_weight(weight, vis), jones, jflag, ant1, ant2, hand1, hand2, calwt)
    return (vis_out, flag_out, weight_out) if calwt else (vis_out, flag_out)


def _stored(array):
    """The chunk files ``array`` is read from, else None. A task reads its block's region of
    them whatever its chunks (decoding each compressed chunk the region touches): a block that
    splits the stored chunks (per-channel statistics of a few baselines) otherwise took its
    flags and weights from a rechunk, which dask ran far ahead of the accumulation (an
    8-integration LWA-like store held half of its rechunked flags and weights at once)."""
    return rawchunks.chunk_files(array)


def _stored_inputs(vis, flag, weight) -> tuple:
    """The chunk files of the visibilities, flags and weights (channel-free ones too) that the
    store holds (None for the others): a kernel's task reads its region of them
    (:func:`_read_stored`) rather than taking reads that are tasks of their own (four per chunk,
    each ~1 ms of the distributed scheduler's time)."""
    compact = channel_free(weight)
    return (_stored(vis), _stored(flag), _stored(weight if compact is None else compact))


def block_inputs(stored, files, chunks, read, freq: str) -> tuple:
    """Blockwise ``(array, index)`` arguments of the visibilities, flags and weights
    ``stored`` for a kernel's blocks in ``chunks`` (time, baseline, frequency, polarization):
    ``(None, None)`` for those its task reads from ``files`` itself (:func:`_stored_inputs`),
    else ``read(array, chunks, name)`` (``name``: "vis", "flag" or "weight"), the weights as
    :func:`weights` gives them. ``freq`` is the blocks' letter for the data's frequency axis."""
    vis, flag, weight = stored
    out = []
    for name, array, read_in_task in zip(("vis", "flag"), (vis, flag), files[:2]):
        out.append((None, None) if read_in_task is not None
                   else (read(array, chunks, name), f"tb{freq}p"))
    if files[2] is not None:
        out.append((None, None))
    else:
        blocks = weights(weight, chunks, lambda w, c: read(w, c, "weight"))
        out.append((blocks, weight_index(blocks, vis.shape[2], freq)))
    return tuple(out)


def _read_stored(region, files, vis, flag, weight):
    """``vis``, ``flag`` and ``weight`` of a block, those with files (:func:`_stored_inputs`)
    read from them at ``region`` (its time, baseline and frequency slices)."""
    vis_files, flag_files, weight_files = files
    # every correlation: blocks never split them (``region`` may name them or not)
    region = tuple(region[:3]) + (slice(None),)
    vis = vis if vis_files is None else vis_files[region]
    flag = flag if flag_files is None else flag_files[region]
    if weight_files is not None and len(weight_files.shape) == 3:     # channel-free
        weight = weight_files[(region[0], region[1], region[3])][:, :, None, :]
    elif weight_files is not None:
        weight = weight_files[region]
    return vis, flag, weight


def _pick(block, which):
    return block[which]


def apply(vis, flag, weight, jones, jflag, ant1, ant2, hand1, hand2, calwt):
    """Corrected visibilities, flags and weights (three dask arrays shaped like ``vis``).

    ``jones``/``jflag`` are (time, antenna, frequency, hand), chunked like ``vis`` on time and
    frequency (they are rechunked to it if not); or ``jones`` is an :class:`InBlocks` recipe of
    the terms, NaN where flagged (``jflag`` None), made inside each chunk's task (flagged
    terms: flagged samples, calibrated by 1). The kernel runs once per chunk of the data, in
    the data's own chunks, with the antenna terms of its times and channels; its outputs are
    picked from a tuple-valued intermediate so nothing is computed twice. Without ``calwt`` the
    weights are ``weight`` itself.
    """
    vis = _as_dask(vis)
    if len(vis.chunks[3]) > 1:
        vis = vis.rechunk({3: -1})
    flag = _as_dask(flag).rechunk(vis.chunks)
    weight = _as_dask(weight)
    blocks = weights(weight, vis.chunks, lambda w, c: w.rechunk(c))
    a1 = per_block(np.asarray(ant1, np.int64), vis.chunks[1])
    a2 = per_block(np.asarray(ant2, np.int64), vis.chunks[1])
    kwargs = dict(hand1=np.asarray(hand1, np.int64), hand2=np.asarray(hand2, np.int64),
                  calwt=bool(calwt))
    if isinstance(jones, InBlocks):
        made = _recipe_args(jones, vis.chunks[:3], "tbfpahz", "f")
        terms = [None, None, None, None]
        kwargs["recipe"] = (jones.func, jones.kwargs)
        token = tokenize(vis, flag, blocks, made, a1, a2, kwargs)
    else:
        jchunks = (vis.chunks[0], -1, vis.chunks[2], -1)
        jones = _as_dask(jones).rechunk(jchunks)
        jflag = _as_dask(jflag).rechunk(jchunks)
        made, terms = [], [jones, "tafh", jflag, "tafh"]
        token = tokenize(vis, flag, blocks, jones, jflag, a1, a2, kwargs)
    # arrays the store holds in these very chunks are read inside the kernel's task: as tasks
    # of their own, the reads were three more tasks per chunk
    files = _stored_inputs(vis, flag, weight)
    inputs = [vis, "tbfp", flag, "tbfp", blocks, weight_index(blocks, vis.shape[2], "f")]
    for k, read in enumerate(files):
        if read is not None:
            inputs[2 * k:2 * k + 2] = [None, None]
    if any(read is not None for read in files):
        kwargs["files"] = files
    packed = da.blockwise(
        _apply_block, "tbfp", ArraySliceDep(vis.chunks), "tbfp", *inputs,
        *terms, a1, "b", a2, "b", *made, concatenate=False, dtype=object,
        # every input is in the data's chunks already (the recipe's literals cannot be aligned)
        align_arrays=False,
        meta=np.empty((0,) * 4, dtype=object), name="calib-apply-" + token, **kwargs)
    outs = []
    for which, dtype in enumerate((vis.dtype, np.dtype(bool), weight.dtype)[:3 if calwt else 2]):
        outs.append(packed.map_blocks(_pick, which, dtype=dtype,
                                      meta=np.empty((0,) * 4, dtype=dtype),
                                      name=f"calib-apply{which}-" + token))
    return tuple(outs) + (() if calwt else (weight,))
