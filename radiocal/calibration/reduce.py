"""Tree reduction of per-chunk sufficient statistics into solution cells (graph only).

:func:`radiocal.calibration.graph.accumulate` turns every chunk of visibilities into the
statistics of the solution cells its integrations belong to (one "piece" per chunk x cell).
A cell spans any number of chunks (``solint='inf'``, ``combine='scan,spw'``), so its pieces are
summed by a tree of partial sums: each partial holds a contiguous range of the cells of one cell
group, and a group is sized from the chunk budget. Nothing is ever concatenated along time, so
the memory of a solve is a few partials per thread whatever the length of the observation.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

SPLIT_EVERY = 8   # partials summed per tree node


def _scatter(block, rows, cells):
    """One chunk's pieces of a cell group as a partial: (first cell, stats of cells lo..hi)."""
    lo = int(cells.min())
    if len(rows) == len(block) and np.array_equal(cells, lo + np.arange(len(cells))) \
            and np.array_equal(rows, np.arange(len(rows))):
        return lo, block        # already in place: no copy (tasks never modify their inputs)
    out = np.zeros((int(cells.max()) - lo + 1,) + block.shape[1:], dtype=np.float64)
    np.add.at(out, cells - lo, block[rows])
    return lo, out


def _add(partials, n_cells=None):
    """Sum partials; with ``n_cells``, the dense statistics of the whole group."""
    lo = 0 if n_cells is not None else min(p[0] for p in partials)
    hi = n_cells if n_cells is not None else max(p[0] + len(p[1]) for p in partials)
    if len(partials) == 1 and partials[0][0] == lo and len(partials[0][1]) == hi - lo:
        return partials[0][1] if n_cells is not None else partials[0]
    out = np.zeros((hi - lo,) + partials[0][1].shape[1:], dtype=np.float64)
    for start, values in partials:
        out[start - lo:start - lo + len(values)] += values
    return out if n_cells is not None else (lo, out)


def _add_leaves(blocks, rows, cells, n_cells=None):
    """:func:`_add` of the leaves' :func:`_scatter`: one task where there were one per leaf, each
    microseconds of work for ~1 ms of the scheduler's bookkeeping (600 of calibrate's 1620
    tasks on a 2 GB store)."""
    return _add([_scatter(b, r, c) for b, r, c in zip(blocks, rows, cells)], n_cells)


def _leaves_task(leaves, *n_cells):
    keys, rows, cells = zip(*leaves)
    return (_add_leaves, list(keys), list(rows), list(cells), *n_cells)


def _partials_task(partials, *n_cells):
    return (_add, list(partials), *n_cells)


def cell_sums(stats_list, piece_cells, n_cells: int, cells_per_group: int) -> da.Array:
    """Statistics of every solution cell: the sum of its pieces.

    Parameters
    ----------
    stats_list : list of dask arrays float64 (piece, frequency cell, baseline, hand, stat)
        Chunked alike along every axis but the first.
    piece_cells : list of numpy int (piece,)
        Cell (``0 .. n_cells-1``) of each piece.
    cells_per_group : int
        Cells per output chunk.

    Returns
    -------
    dask array float64 (cell, frequency cell, baseline, hand, stat)
    """
    first = stats_list[0]
    _, fchunks, bchunks, hchunks, schunks = first.chunks
    for stats in stats_list[1:]:
        if stats.chunks[1:] != first.chunks[1:]:
            raise ValueError("statistics to reduce must share their chunks but along pieces")
    n_groups = -(-n_cells // cells_per_group)
    leaves = [[] for _ in range(n_groups)]
    for stats, cells in zip(stats_list, piece_cells):
        start = 0
        for ti, size in enumerate(stats.chunks[0]):
            local = np.asarray(cells[start:start + size], dtype=np.int64)
            group = local // cells_per_group
            for g in np.unique(group):
                rows = np.flatnonzero(group == g)
                leaves[g].append((stats.name, ti, rows, local[rows] - g * cells_per_group))
            start += size
    if any(not group for group in leaves):
        raise ValueError("every solution cell needs at least one piece of data")
    name = "calib-cellsum-" + tokenize([s.name for s in stats_list], piece_cells, n_cells,
                                      cells_per_group)
    partial = name + "-partial"
    dsk = {}
    sizes = []
    for g, group in enumerate(leaves):
        n_here = min(cells_per_group, n_cells - g * cells_per_group)
        sizes.append(n_here)
        # neighbouring cells meet first, so partials cover short ranges of cells
        group = sorted(group, key=lambda leaf: int(leaf[3].min()))
        for fi in range(len(fchunks)):
            for bi in range(len(bchunks)):
                # the leaves (a chunk's pieces) are scattered inside the first sums
                level = [((sname, ti, fi, bi, 0, 0), rows, local) for sname, ti, rows, local in group]
                combine = _leaves_task
                depth = 0
                while len(level) > SPLIT_EVERY:
                    depth += 1
                    nxt = []
                    for k in range(0, len(level), SPLIT_EVERY):
                        key = (partial, g, fi, bi, depth, k // SPLIT_EVERY)
                        dsk[key] = combine(level[k:k + SPLIT_EVERY])
                        nxt.append(key)
                    level, combine = nxt, _partials_task
                dsk[(name, g, fi, bi, 0, 0)] = combine(level, n_here)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=list(stats_list))
    return da.Array(graph, name, (tuple(sizes), fchunks, bchunks, hchunks, schunks),
                    dtype=np.float64, meta=np.empty((0,) * 5, dtype=np.float64))
