"""Out-of-core calibration: the chunk budget changes the chunks of a solve or an apply, never
its results; no task of the graphs holds more than the budget; threads and a cluster agree."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from dask.callbacks import Callback

from .conftest import make_partition, random_gains
from radiocal.calibration.config import SolveOptions
from radiocal.budget import chunk_budget
from radiocal.calibration.dataset import solve
from radiocal.calibration.jones import ApplyTable, apply
from radiocal.store import caltables as C
from radiocal.store import schema as S

TINY = 4096            # bytes: a chunk of 128 visibilities
LARGE = 256 * 2**20

# (type, solint, combine): per-integration and interval cells, cells spanning scans, per channel
SOLVES = [("G", "int", ""), ("G", "inf", "scan"), ("T", "20s", ""), ("B", "inf", "scan"),
          ("K", "inf", "scan")]
SMALL = 16384          # enough chunks for a tree, few enough tasks for a cluster test


def _partitions(rng, nant=8, nf=16, nt=6):
    """Two scans of one calibrator, stored as a store would hold them for a tiny budget."""
    g = random_gains(rng, 2 * nt, nant, nf, 2, constant_time=False)
    g *= np.exp(2j * np.pi * 3e-9 * 2e6 * np.arange(nf))[None, None, :, None]   # 3 ns delay
    out = []
    for scan in (1, 2):
        ds = make_partition(g[(scan - 1) * nt:scan * nt], flux=2.0, noise=0.05, seed=scan,
                            scan=scan, t0=5.0e9 + (scan - 1) * 200.0)
        out.append(ds.compute().chunk({S.TIME: 1, S.BASELINE: 7, S.FREQUENCY: 4}))
    return out


def _solve(datasets, cal_type, solint, combine, budget):
    with chunk_budget(budget):
        return solve(datasets, cal_type,
                     SolveOptions(solint=solint, combine=combine, refant="ea01"), model=2.0)


class _Largest(Callback):
    """Records the largest array any task returns (a tuple's arrays counted one by one)."""

    def __init__(self):
        super().__init__()
        self.largest = (0, None)

    def _posttask(self, key, result, dsk, state, worker_id):
        if str(key).startswith("finalize-"):
            return      # the result handed back (a table, the whole corrected data here)
        for value in result if isinstance(result, tuple) else (result,):
            size = getattr(value, "nbytes", 0)
            if isinstance(value, np.ndarray) and size > self.largest[0]:
                self.largest = (size, key)


@pytest.mark.parametrize("cal_type, solint, combine", SOLVES)
def test_tiny_budget_gives_the_same_solutions(rng, cal_type, solint, combine):
    datasets = _partitions(rng)
    (large,) = _solve(datasets, cal_type, solint, combine, LARGE)
    (tiny,) = _solve(datasets, cal_type, solint, combine, TINY)
    var = C.DELAY if cal_type == "K" else C.GAIN
    np.testing.assert_array_equal(large[C.SOL_FLAG].values, tiny[C.SOL_FLAG].values)
    assert not large[C.SOL_FLAG].values.all()
    # the statistics are summed in another order: float64 rounding, then the solver's tolerance
    np.testing.assert_allclose(tiny[var].values, large[var].values, rtol=1e-9, atol=1e-18)
    np.testing.assert_allclose(tiny[C.SNR].values, large[C.SNR].values, rtol=1e-6)


@pytest.mark.parametrize("cal_type, solint, combine", SOLVES)
def test_no_task_holds_more_than_the_budget(rng, cal_type, solint, combine):
    datasets = _partitions(rng)
    with _Largest() as largest, dask.config.set(scheduler="sync"):
        table = _solve(datasets, cal_type, solint, combine, TINY)
    assert largest.largest[0] <= TINY, largest.largest
    with _Largest() as largest, dask.config.set(scheduler="sync"), chunk_budget(TINY):
        out = apply(datasets, [ApplyTable(table)])
        dask.compute(*[ds[S.VISIBILITY_CORRECTED].data for ds in out])
    assert largest.largest[0] <= TINY, largest.largest
    # structural: every chunk of the visibilities keeps the data's own chunks
    assert out[0][S.VISIBILITY_CORRECTED].data.chunks == datasets[0][S.VISIBILITY].data.chunks


def test_apply_is_the_same_in_any_chunks(rng):
    datasets = _partitions(rng)
    table = _solve(datasets, "B", "inf", "scan", LARGE)
    whole = [ds.chunk({S.TIME: -1, S.BASELINE: -1, S.FREQUENCY: -1}) for ds in datasets]
    a = apply(datasets, [ApplyTable(table)], calwt=True)[1]
    b = apply(whole, [ApplyTable(table)], calwt=True)[1]
    for name in (S.VISIBILITY_CORRECTED, S.FLAG, S.WEIGHT):
        np.testing.assert_array_equal(a[name].values, b[name].values)


@pytest.mark.slow     # two worker processes start, import and compile: ~40 s on a busy machine
def test_threads_and_a_local_cluster_agree(rng):
    distributed = pytest.importorskip("distributed")
    datasets = _partitions(rng)

    def run():
        bandpass = _solve(datasets, "B", "inf", "scan", SMALL)
        gains = _solve(datasets, "G", "int", "", SMALL)
        out = apply(datasets, [ApplyTable(bandpass), ApplyTable(gains)])
        return bandpass, gains, dask.compute(*[ds[S.VISIBILITY_CORRECTED].data for ds in out])

    with dask.config.set(scheduler="threads", num_workers=2):
        threaded = run()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        clustered = run()
    for (a,), (b,) in zip(threaded[:2], clustered[:2]):
        np.testing.assert_array_equal(a[C.GAIN].values, b[C.GAIN].values)
        np.testing.assert_array_equal(a[C.SOL_FLAG].values, b[C.SOL_FLAG].values)
    for a, b in zip(threaded[2], clustered[2]):
        np.testing.assert_array_equal(a, b)


def _with_model_and_uvw(ds, rng):
    """``ds`` with VISIBILITY_MODEL (the 2 Jy source) and UVW of a random array."""
    nt, nbl = ds.sizes[S.TIME], ds.sizes[S.BASELINE]
    uvw = np.broadcast_to(rng.normal(scale=40.0, size=(1, nbl, 3)), (nt, nbl, 3)).copy()
    vis = ds[S.VISIBILITY]
    parallel = np.array([p[0] == p[1] for p in ds[S.POLARIZATION].values])
    model = np.broadcast_to((2.0 * parallel).astype(np.complex64), vis.shape).copy()
    return ds.assign({S.UVW: ((S.TIME, S.BASELINE, S.UVW_LABEL), uvw),
                      S.VISIBILITY_MODEL: (vis.dims, model)}).chunk(
        {S.TIME: 1, S.BASELINE: 7, S.FREQUENCY: 4})


def test_sky_bandpass_with_a_tiny_budget(rng, tmp_path):
    """The lwa flow's step: uv cut, B and K against the model column, post-processing, apply."""
    from radiocal.calibration.skycal import SkyBandpassConfig, sky_bandpass_step
    from radiocal.engine.context import StepContext

    datasets = [_with_model_and_uvw(ds, rng) for ds in _partitions(rng)]
    # the shortest baselines (about a third at 1.3 GHz) fall outside the cut
    config = SkyBandpassConfig(uvrange=">150lambda", minblperant=3)
    results = {}
    for name, budget in (("large", LARGE), ("tiny", TINY)):
        context = StepContext(outdir=tmp_path / name, store=tmp_path / name / "no-store")
        with chunk_budget(budget), _Largest() as largest, dask.config.set(scheduler="sync"):
            out = sky_bandpass_step(datasets, config, context)
            corrected = dask.compute(*[ds[S.VISIBILITY_CORRECTED].data for ds in out])
        if name == "tiny":
            assert largest.largest[0] <= TINY, largest.largest
        tables = {t: C.read_table_zarr(tmp_path / name / "caltables" / f"{t}.zarr")[0]
                  for t in ("bandpass", "delay")}
        results[name] = tables, corrected
    (large, large_vis), (tiny, tiny_vis) = results["large"], results["tiny"]
    assert not large["bandpass"][C.SOL_FLAG].values.all()
    for table, var in (("bandpass", C.GAIN), ("delay", C.DELAY)):
        np.testing.assert_array_equal(tiny[table][C.SOL_FLAG].values,
                                      large[table][C.SOL_FLAG].values)
        np.testing.assert_allclose(tiny[table][var].values, large[table][var].values,
                                   rtol=1e-9, atol=1e-18)
    for a, b in zip(tiny_vis, large_vis):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def _ancestor_reads(graph, key, memo):
    """Keys of the 4-d chunk reads (tasks without dependencies, keyed by 4 chunk indices) that
    ``key`` depends on."""
    if key not in memo:
        deps = graph[key].dependencies
        if not deps:
            memo[key] = frozenset([key]) if isinstance(key, tuple) and len(key) == 5 else frozenset()
        else:
            memo[key] = frozenset().union(*(_ancestor_reads(graph, d, memo) for d in deps))
    return memo[key]


def test_per_channel_solves_read_each_channel_chunk_on_its_own(rng, tmp_path):
    """A store holds every channel of a baseline in one chunk; a per-channel solve sums and solves
    channel chunk by channel chunk, so no read of visibilities, model or flags may feed two channel
    chunks (dask would hold it, and with it a whole cell's flags, until the last one was done)."""
    from dask._task_spec import convert_legacy_graph

    from radiocal.calibration.dataset import _plan
    from radiocal.select.selection import flag_outside_uv
    from radiocal.store.zarr_store import open_store, write_store

    datasets = [_with_model_and_uvw(ds, rng).chunk({S.FREQUENCY: -1}).assign_attrs(partition=f"p{i}")
                for i, ds in enumerate(_partitions(rng))]
    store = write_store(datasets, tmp_path / "s.zarr")
    cut = [flag_outside_uv(ds, ">150lambda") for ds in open_store(store)]
    with chunk_budget(TINY):
        (graphs, _), = [_plan(cut, "B", SolveOptions(solint="inf", combine="scan"), model="column")]
    graph = convert_legacy_graph(dict(graphs[0].packed.__dask_graph__()))
    memo, readers = {}, {}
    for key in graph:
        if isinstance(key, tuple) and str(key[0]).startswith("calib-accumulate-"):
            for read in _ancestor_reads(graph, key, memo):
                readers.setdefault(read, set()).add(key[2])     # key: (name, t, F, b, o, s)
    assert readers, "no reads found under the accumulation"
    shared = {read: chunks for read, chunks in readers.items() if len(chunks) > 1}
    assert not shared, list(shared.items())[:3]


def _full_weight_layers(arrays):
    """Array layers of the graphs holding weights (float32) on the whole visibility grid."""
    found = set()
    for array in arrays:
        for name, layer in array.dask.layers.items():
            notes = layer.collection_annotations or {}
            size = notes.get("chunksize", ())
            if notes.get("dtype") == np.float32 and len(size) == 4 and size[2] > 1:
                found.add(name)
    return found


def test_channel_free_weights_reach_the_kernels_without_a_copy(rng):
    """Stores keep one weight per time, baseline and correlation; a solve and an apply hand it
    to their kernels as it is (broadcast there as a view), with the results of full weights."""
    from radiocal.calibration.dataset import solve_graph
    from radiocal.store.zarr_store import broadcast_channels

    full, free = [], []
    for ds in _partitions(rng):
        vis = ds[S.VISIBILITY].data
        compact = ds[S.WEIGHT].values[:, :, 0, :]
        full.append(ds.assign({S.WEIGHT: (ds[S.WEIGHT].dims, da.from_array(
            np.broadcast_to(compact[:, :, None, :], vis.shape).copy(), chunks=vis.chunks))}))
        free.append(ds.assign({S.WEIGHT: (ds[S.WEIGHT].dims, broadcast_channels(
            da.from_array(compact, chunks=(vis.chunks[0], vis.chunks[1], -1)), vis.chunks[2]))}))
    for cal_type, solint, combine in (("G", "int", ""), ("B", "inf", "scan")):
        with chunk_budget(TINY):
            packed = solve_graph(free, cal_type,
                                 SolveOptions(solint=solint, combine=combine, refant="ea01"),
                                 model=2.0).packed
        assert not _full_weight_layers([packed]), cal_type
        want, table = (_solve(d, cal_type, solint, combine, TINY) for d in (full, free))
        np.testing.assert_array_equal(want[0][C.GAIN].values, table[0][C.GAIN].values)
    out = apply(free, [ApplyTable(table)])
    assert out[0][S.WEIGHT].data is free[0][S.WEIGHT].data     # without calwt: the very weights
    corrected = [ds[name].data for ds in out for name in (S.VISIBILITY_CORRECTED, S.FLAG)]
    assert not _full_weight_layers(corrected)
    want = apply(full, [ApplyTable(table)])
    for got, ref in zip(dask.compute(*corrected),
                        dask.compute(*[ds[n].data for ds in want
                                       for n in (S.VISIBILITY_CORRECTED, S.FLAG)])):
        np.testing.assert_array_equal(got, ref)


def _spilling(path):
    from radiocal.store.rawchunks import SPILL_DIR_KEY

    return dask.config.set({SPILL_DIR_KEY: str(path)})


@pytest.mark.parametrize("cal_type", ["B", "K"])
def test_spilled_per_channel_statistics_give_the_same_solutions(rng, tmp_path, cal_type):
    """In a run, per-channel statistics are spilled and read back by channel chunk: the same
    solutions as held in memory, and no task above a tiny budget."""
    datasets = _partitions(rng)
    (large,) = _solve(datasets, cal_type, "inf", "scan", LARGE)
    with _spilling(tmp_path / "spill"), _Largest() as largest, \
            dask.config.set(scheduler="sync"):
        (tiny,) = _solve(datasets, cal_type, "inf", "scan", TINY)
    assert largest.largest[0] <= TINY, largest.largest
    assert any((tmp_path / "spill").iterdir()), "nothing was spilled"
    var = C.DELAY if cal_type == "K" else C.GAIN
    np.testing.assert_array_equal(large[C.SOL_FLAG].values, tiny[C.SOL_FLAG].values)
    np.testing.assert_allclose(tiny[var].values, large[var].values, rtol=1e-9, atol=1e-18)


def test_spilled_per_channel_solves_read_every_chunk_once(rng, tmp_path):
    """With statistics spilled, a per-channel solve accumulates every channel of a block of the
    data in one task (each chunk is read for one pass, whatever the solve's channel chunks), and
    reads back each channel chunk's summed statistics of every baseline in one task, after every
    block is written. Read by channel chunk from the data, the graph grew as channel
    chunks x data chunks and the 3 GB LWA set ran out of memory at 8 MiB chunks."""
    from dask._task_spec import convert_legacy_graph

    from radiocal.calibration.dataset import _plan
    from radiocal.select.selection import flag_outside_uv
    from radiocal.store.zarr_store import open_store, write_store

    datasets = [_with_model_and_uvw(ds, rng).chunk({S.FREQUENCY: -1}).assign_attrs(partition=f"p{i}")
                for i, ds in enumerate(_partitions(rng))]
    store = write_store(datasets, tmp_path / "s.zarr")
    cut = [flag_outside_uv(ds, ">150lambda") for ds in open_store(store)]
    with chunk_budget(TINY), _spilling(tmp_path / "spill"):
        (graphs, _), = [_plan(cut, "B", SolveOptions(solint="inf", combine="scan"), model="column")]
    packed = graphs[0].packed
    graph = convert_legacy_graph(dict(packed.__dask_graph__()))
    accumulations = [key for key in graph if isinstance(key, tuple)
                     and str(key[0]).startswith("calib-accumulate-")]
    assert accumulations
    assert {key[2] for key in accumulations} == {0}, "accumulations of parts of the band"
    solves = [key for key in graph if str(key[0]).startswith("calib-solve-")]
    assert len(solves) == packed.numblocks[1] > 1      # channel chunks, each solved on its own
    done = [key for key in graph if str(key).startswith("spill-done-")]
    assert len(done) == 1, done
    spilled = [key for key in graph if str(key[0]).startswith("spilled-")]
    assert len(spilled) == len(solves)      # one cell (solint inf): one read per channel chunk
    for key in spilled:        # every baseline of a channel chunk, once every block is written
        assert key[3] == 0 and set(graph[key].dependencies) == set(done), key
