"""store.chunktasks: one task per chunk of a partition's writes, nothing computed twice."""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numpy as np

from radiocal.store import schema as S
from radiocal.store.chunktasks import per_chunk

DIMS = (S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION)


class Calls:
    """Counts the calls of a block function (tasks run on several threads)."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, block):
        with self._lock:
            self.count += 1
        return block


def _writes(sources, targets):
    return [(da.store(source, target, lock=False, compute=False), dims)
            for (source, dims), target in zip(sources, targets)]


def test_one_task_per_chunk_and_the_values_written():
    base = np.arange(6 * 3 * 4 * 2, dtype=np.float32).reshape(6, 3, 4, 2)
    read = Calls()
    cube = da.from_array(base, chunks=(2, 3, 4, 2)).map_blocks(read, meta=np.array((), np.float32))
    uvw = cube[..., 0].sum(axis=2)   # (time, baseline): a variable without frequency
    sources = [(cube * 2, DIMS), (cube + 1, DIMS), (uvw, DIMS[:2])]
    targets = [np.zeros(base.shape, np.float32), np.zeros(base.shape, np.float32),
               np.zeros((6, 3), np.float32)]
    lazy = per_chunk(_writes(sources, targets))
    graph = dict(lazy.__dask_graph__())
    chunk_tasks = [k for k in graph if isinstance(k, tuple) and str(k[0]).startswith("write-chunk-")]
    assert len(chunk_tasks) == 3
    assert len(graph) <= 3 + 2      # the chunk tasks, the extra's and the final task
    assert lazy.compute(scheduler="threads") is None
    np.testing.assert_array_equal(targets[0], base * 2)
    np.testing.assert_array_equal(targets[1], base + 1)
    np.testing.assert_array_equal(targets[2], base[..., 0].sum(axis=2))
    assert read.count == 3          # each chunk read once, for all three variables


def test_shared_tasks_and_extra_are_computed_once():
    base = np.arange(8 * 2 * 2 * 1, dtype=np.float64).reshape(8, 2, 2, 1)
    read = Calls()
    cube = da.from_array(base, chunks=(2, 2, 2, 1)).map_blocks(read, meta=np.array(()))
    applied = cube * cube.sum()     # every chunk needs every chunk's read (a solve)
    target = np.zeros(base.shape)
    counted = Calls()
    extra = applied.map_blocks(counted, meta=np.array(())).sum()  # reads the written values
    lazy = per_chunk(_writes([(applied, DIMS)], [target]), extra=extra)
    result = dask.compute(lazy, scheduler="threads")[0]
    np.testing.assert_allclose(target, base * base.sum())
    np.testing.assert_allclose(result, (base * base.sum()).sum())
    assert read.count == 4
    assert counted.count == 4


def test_a_one_chunk_partition_computes_what_its_extra_shares_once():
    # An extra alone in its graph is optimised there: with one chunk the read, the sum and its
    # finalisation are a linear chain fused under new names, which the writes' graph no longer
    # shares (flagging's passes were run twice, each writing its spill files).
    base = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    read = Calls()
    cube = da.from_array(base, chunks=base.shape).map_blocks(read, meta=np.array((), np.float32))
    target = np.zeros(base.shape, np.float32)
    extra = (cube.sum(), [cube.max(), 7])
    lazy = per_chunk(_writes([(cube * 2, DIMS)], [target]), extra=extra)
    total, (peak, seven) = dask.compute(lazy, scheduler="threads")[0]
    np.testing.assert_array_equal(target, base * 2)
    assert (total, peak, seven) == (base.sum(), base.max(), 7)
    assert read.count == 1


def test_per_group_is_one_task_per_group_and_shares_what_groups_share():
    from radiocal.store.chunktasks import per_group

    calls = Calls()
    shared = da.arange(6, chunks=3).map_blocks(calls, dtype=int)   # both groups need it
    total = shared.sum()
    groups = [[da.ones((2, 3), chunks=(1, 3)) * i, total, np.float64(i) + da.zeros(2),
               np.arange(i + 1)] for i in range(2)]
    delayeds = per_group(groups)
    before = calls.count             # map_blocks may call it once on its meta
    graph = dict(delayeds[0].__dask_graph__())
    own = [k for k in graph if isinstance(k, tuple) and str(k[0]).startswith("group-")]
    assert len(own) == 2
    values = dask.compute(*delayeds, scheduler="threads")
    for i, (ones, summed, zeros, in_memory) in enumerate(values):
        np.testing.assert_array_equal(in_memory, np.arange(i + 1))
        np.testing.assert_array_equal(ones, np.full((2, 3), i))
        assert summed == 15
        np.testing.assert_array_equal(zeros, np.full(2, float(i)))
    assert calls.count - before == 2   # the shared chunks once, not once per group


def test_per_block_fuses_what_a_block_alone_needs_and_keeps_shared_tasks():
    from radiocal.store.chunktasks import per_block

    calls = Calls()
    model = da.arange(4.0, chunks=4).map_blocks(calls, dtype=float)   # every block needs it
    data = da.from_array(np.arange(24.0).reshape(6, 4), chunks=(2, 4))
    flags = data > 7
    result = da.where(flags, 0.0, (data * 3 - model[None, :]) ** 2)
    fused = per_block(result)
    graph = dict(fused.__dask_graph__())
    # a task per block, beside the shared model's (its read and its slice, perhaps an alias),
    # where the unfused graph has a chain of tasks per block
    own = [key for key in graph if key[0] == fused.name]
    assert len(own) == result.numblocks[0] and len(graph) - len(own) <= 2
    assert len(graph) < len(dict(result.__dask_graph__()))
    before = calls.count
    np.testing.assert_array_equal(fused.compute(scheduler="threads"), result.compute(scheduler="sync"))
    assert calls.count - before == 2   # the model once in each compute, not once per block


def test_per_block_copies_a_held_value_into_each_block():
    from radiocal.store.chunktasks import per_block

    # a value the graph holds (a constant, a store's chunk files) is no task of its own
    constant = da.from_array(np.arange(4.0), chunks=4)
    data = da.from_array(np.arange(24.0).reshape(6, 4), chunks=(2, 4))
    result = data * 2 - constant
    fused = per_block(result)
    assert len(dict(fused.__dask_graph__())) == result.numblocks[0]
    np.testing.assert_array_equal(fused.compute(scheduler="sync"), result.compute(scheduler="sync"))


def test_per_group_copies_a_held_value_into_each_group():
    from radiocal.store.chunktasks import per_group

    constant = da.from_array(np.arange(4.0), chunks=4)
    data = da.from_array(np.arange(24.0).reshape(6, 4), chunks=(2, 4))
    result = data * 2 - constant
    groups = [[result.blocks[i]] for i in range(result.numblocks[0])]
    delayed = per_group(groups)
    assert len(dict(delayed[0].__dask_graph__())) == len(groups)
    for (value,), block in zip(dask.compute(*delayed, scheduler="sync"), groups):
        np.testing.assert_array_equal(value, block[0].compute(scheduler="sync"))


def test_a_fused_shared_chain_is_one_task_under_its_own_key():
    # dask fuses each block's read -> map -> partial sum under a new name and leaves an Alias
    # under the old key, which distributed runs as a task of its own
    from dask._task_spec import Alias

    base = np.arange(8 * 2 * 2 * 1, dtype=np.float64).reshape(8, 2, 2, 1)
    read = Calls()
    weights = da.from_array(np.arange(8.0), chunks=2).map_blocks(read, meta=np.array(()))
    cube = da.from_array(base, chunks=(2, 2, 2, 1))
    applied = cube * weights.sum()      # every chunk needs the sum over every block
    target = np.zeros(base.shape)
    lazy = per_chunk(_writes([(applied, DIMS)], [target]))
    graph = dict(lazy.__dask_graph__())
    assert not [key for key, node in graph.items() if isinstance(node, Alias)]
    assert len(graph) <= 4 + 1 + 4 + 1   # the blocks' partial sums, their sum, chunks, final
    assert lazy.compute(scheduler="threads") is None
    np.testing.assert_allclose(target, base * np.arange(8.0).sum())
    assert read.count == 4
