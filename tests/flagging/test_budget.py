"""Flagging within the chunk budget: a tiny budget changes the chunks, never the flags."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from radiocal import budget
from radiocal.errors import ConfigError
from radiocal.flagging import graph
from radiocal.flagging.strategy import apply_strategy, load_strategy
from radiocal.store import schema as S
from radiocal.simulate.chunks import oversized_chunks


def _plane_bytes(ds):
    n_t, _, n_f, n_p = ds[S.VISIBILITY].shape
    return n_t * n_f * n_p * budget.VISIBILITY_ITEMSIZE


@pytest.fixture(scope="module")
def stored(small_sim, tmp_path_factory):
    """``small_sim`` written twice: whole scans per chunk with a large budget, and chunks of one
    integration of 3 baselines with a budget of two baselines' planes (as a store of a large
    array is chunked), so flags are read back from chunk files either way."""
    from radiocal.store.zarr_store import open_store, write_store

    tiny = 2 * max(_plane_bytes(ds) for ds in small_sim.datasets)
    stores = {}
    for label, nbytes, chunks in (("large", 64 * 2**20, {S.TIME: -1}),
                                  ("tiny", tiny, {S.TIME: 1, S.BASELINE: 3})):
        chunked = [ds.chunk(chunks) for ds in small_sim.datasets]
        path = write_store(chunked, tmp_path_factory.mktemp("flagbudget") / f"{label}.zarr")
        stores[label] = (open_store(path), nbytes)
    return stores


def _flag(datasets, nbytes):
    with budget.chunk_budget(nbytes):
        out = [apply_strategy(ds, load_strategy("default"))[0] for ds in datasets]
    return out


def test_tiny_budget_flags_equal_the_large_budget_ones_and_no_chunk_exceeds_it(stored):
    tiny_inputs, tiny = stored["tiny"]
    large_inputs, large = stored["large"]
    assert any(len(ds[S.VISIBILITY].chunks[1]) > 1 for ds in tiny_inputs)    # baselines split
    flagged_tiny = _flag(tiny_inputs, tiny)
    flagged_large = _flag(large_inputs, large)
    assert oversized_chunks([ds[S.FLAG] for ds in flagged_tiny], tiny) == []
    assert oversized_chunks([ds[S.FLAG] for ds in flagged_large], tiny) != []   # can fail
    a = dask.compute(*[ds[S.FLAG].data for ds in flagged_tiny], scheduler="threads")
    b = dask.compute(*[ds[S.FLAG].data for ds in flagged_large], scheduler="threads")
    assert sum(f.sum() for f in b) > 0
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_flag_store_spilling_with_a_tiny_budget_gives_the_large_budget_flags(stored, small_sim,
                                                                             tmp_path):
    """``flag_store`` keeps flags in planes, spills what a later pass needs whole into the
    store's staging area and writes the planes back into the store's own chunks: the flags are
    the large budget's in memory, bit for bit, the stored chunks are unchanged and the spill is
    gone afterwards."""
    import os

    from radiocal.flagging.step import flag_store
    from radiocal.store.zarr_store import open_store, spill_dir, write_store

    _, tiny = stored["tiny"]
    large_inputs, large = stored["large"]
    path = write_store([ds.chunk({S.TIME: 1, S.BASELINE: 3}) for ds in small_sim.datasets],
                       tmp_path / "flagged.zarr")
    before = open_store(path)
    with budget.chunk_budget(tiny):
        with dask.config.set(scheduler="threads"):
            # the graph it computes: flags pass through spill files (can fail: none would be)
            with dask.config.set({"radiocal.spill-dir": spill_dir(path)}):
                planned = _flag(before, tiny)
            assert any(name.startswith("spilled-") for ds in planned
                       for name in ds[S.FLAG].data.dask.layers)
            summary = flag_store(path, load_strategy("default"))
    after = open_store(path)
    expected = dask.compute(*[ds[S.FLAG].data for ds in _flag(large_inputs, large)],
                            scheduler="threads")
    assert summary["after"][0] == sum(int(f.sum()) for f in expected) > summary["before"][0]
    for old, new, flags in zip(before, after, expected):
        assert new[S.FLAG].chunks == old[S.FLAG].chunks
        np.testing.assert_array_equal(new[S.FLAG].values, flags)
    assert not os.path.exists(os.path.dirname(spill_dir(path)))


def test_passes_read_visibilities_inside_their_own_tasks(stored):
    """The default strategy's passes read their visibilities from the store's files inside the
    task that uses them: the graph holds no read task of its own for them (dask ran those ahead
    of their passes, every plane of a scan waiting in memory) and no rechunk of them, and the
    flags are those of the visibilities held in memory."""
    datasets, nbytes = stored["tiny"]
    ds = datasets[0]
    vis = ds[S.VISIBILITY].data
    with budget.chunk_budget(nbytes):
        flagged, _ = apply_strategy(ds, load_strategy("default"))
        held = ds.assign({S.VISIBILITY: ds[S.VISIBILITY].copy(data=vis.compute())})
        expected, _ = apply_strategy(held, load_strategy("default"))
    layers = flagged[S.FLAG].data.dask.layers
    assert len(graph.plane_chunks(vis.shape)) and vis.name in ds[S.VISIBILITY].data.dask.layers
    assert not [name for name in layers if name.startswith(vis.name)]
    assert not [name for name in layers if "rechunk" in name and vis.name in name]
    np.testing.assert_array_equal(flagged[S.FLAG].data.compute(scheduler="sync"),
                                  expected[S.FLAG].data.compute(scheduler="sync"))


def test_a_baseline_plane_over_the_budget_stops_before_anything_runs(small_sim):
    ds = small_sim.datasets[0]
    with budget.chunk_budget(_plane_bytes(ds) - 1), \
            pytest.raises(ConfigError, match="one baseline's plane .* raise --chunk-mb"):
        apply_strategy(ds, load_strategy("default"))


@pytest.mark.slow
def test_flags_bit_identical_on_threads_and_a_two_worker_cluster(stored):
    """Planes read from the chunk files in worker processes give the threads' flags exactly."""
    from radiocal.engine.cluster import Engine

    datasets, nbytes = stored["tiny"]
    results = {}
    for label, options in (("threads", dict(scheduler="threads")),
                           ("cluster", dict(workers=2, threads_per_worker=1))):
        with Engine(chunk_bytes=nbytes, **options):
            flagged = _flag(datasets, nbytes)
            results[label] = dask.compute(*[ds[S.FLAG].data for ds in flagged])
    assert sum(f.sum() for f in results["threads"]) > 0
    for a, b in zip(results["threads"], results["cluster"]):
        np.testing.assert_array_equal(a, b)
