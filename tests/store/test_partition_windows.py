"""Partitions are computed a window at a time, so memory does not grow with their number."""

import dask
import dask.array as da
import numpy as np
from dask.callbacks import Callback

from radiocal import budget
from radiocal.store.zarr_store import WINDOW_CHUNKS, compute_by_partition


class _Computes(Callback):
    """Counts the graphs dask is given to compute."""

    def __init__(self):
        super().__init__()
        self.graphs = 0

    def _start(self, dsk):
        self.graphs += 1


def test_windows_hold_the_budget_and_keep_results_in_order():
    chunk = 1000
    parts = [da.full((10,), i, chunks=5).sum() for i in range(10)]
    # each partition a third of a window: windows of 3 partitions, the last of 1
    sizes = [WINDOW_CHUNKS * chunk // 3 + 1] * len(parts)
    with dask.config.set({budget.CONFIG_KEY: chunk}, scheduler="sync"), _Computes() as seen:
        results = compute_by_partition(parts, sizes)
    assert [int(r) for r in results] == [10 * i for i in range(10)]
    assert seen.graphs == 4


def test_a_partition_larger_than_a_window_is_computed_alone():
    parts = [(da.ones(4, chunks=2).sum(), np.int64(i)) for i in range(3)]
    with dask.config.set({budget.CONFIG_KEY: 10}, scheduler="sync"), _Computes() as seen:
        results = compute_by_partition(parts, [10 ** 6] * 3)
    assert [(int(a), int(b)) for a, b in results] == [(4, 0), (4, 1), (4, 2)]
    assert seen.graphs == 3


def _partition(i, seconds):
    """A partition's task: its index and when it ran."""
    import time

    start = time.monotonic()
    time.sleep(seconds)
    return i, start, time.monotonic()


def test_on_a_cluster_the_window_slides_and_results_keep_their_order():
    """On a distributed client partitions are submitted as earlier ones finish, never more
    than a window (or one partition per thread) in flight; results come back in order."""
    from radiocal.engine.cluster import Engine

    chunk = 1000
    # the first partition takes long: the others pass it one at a time
    parts = [(dask.delayed(_partition)(i, 0.6 if i == 0 else 0.05),
              da.full((10,), i, chunks=5).sum()) for i in range(7)]
    # each partition half a window: two in flight at most, on two threads
    sizes = [WINDOW_CHUNKS * chunk // 2] * len(parts)
    with Engine(workers=1, threads_per_worker=2), dask.config.set({budget.CONFIG_KEY: chunk}):
        results = compute_by_partition(parts, sizes)
    assert [(int(r[0][0]), int(r[1])) for r in results] == [(i, 10 * i) for i in range(7)]
    spans = [r[0][1:] for r in results]
    overlapping = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert overlapping == 2, spans
    assert spans[2][0] < spans[0][1], "the window waited for its slowest partition"


def test_on_a_cluster_each_thread_has_a_partition_even_past_the_window():
    """Partitions larger than the window still go one per thread (issue 16: a partition's
    decisions over all its planes left the other thread idle when it was alone in flight)."""
    from radiocal.engine.cluster import Engine

    parts = [dask.delayed(_partition)(i, 0.3) for i in range(4)]
    with Engine(workers=1, threads_per_worker=2), dask.config.set({budget.CONFIG_KEY: 10}):
        results = compute_by_partition(parts, [10 ** 6] * len(parts))
    assert [int(r[0]) for r in results] == list(range(4))
    spans = [r[1:] for r in results]
    overlapping = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert overlapping == 2, spans


def test_small_partitions_are_submitted_in_units_of_a_budget():
    from radiocal.store.zarr_store import _units

    # a budget of 10: consecutive partitions grouped up to it, a larger one alone
    assert _units([3, 3, 3, 3, 20, 4, 6, 1], 10) == [[0, 1, 2], [3], [4], [5, 6], [7]]


def test_on_a_cluster_units_of_small_partitions_keep_their_results_in_order():
    from radiocal.engine.cluster import Engine

    parts = [(dask.delayed(_partition)(i, 0.0), da.full((10,), i, chunks=5).sum())
             for i in range(9)]
    with Engine(workers=1, threads_per_worker=2), dask.config.set({budget.CONFIG_KEY: 1000}):
        results = compute_by_partition(parts, [300] * len(parts))
    assert [(int(r[0][0]), int(r[1])) for r in results] == [(i, 10 * i) for i in range(9)]
