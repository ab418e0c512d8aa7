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
