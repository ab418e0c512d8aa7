"""Dask graphs and dataset flaggers: lazy, chunking-independent, equal to the kernels."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from radiocal.flagging import dataset as fd
from radiocal.flagging import graph
from radiocal.flagging import kernels as k
from radiocal.flagging.params import ElevationParams, QuackParams, SumThresholdParams
from radiocal.flagging.strategy import apply_strategy, load_strategy, parse_strategy
from radiocal.store import schema as S

from .conftest import raising_scheduler


def _chunked(ds, time_chunk):
    return ds.chunk({S.TIME: time_chunk})


def test_default_strategy_builds_without_computing(small_sim):
    ds = _chunked(small_sim.datasets[0], 2)
    spec = {"flaggers": [{"flagger": name} for name in
                         ("clip", "autocorrelations", "shadow", "quack", "elevation",
                          "antenna_health", "sumthreshold", "mad", "dilate")]}
    with dask.config.set(scheduler=raising_scheduler):
        out, counts = apply_strategy(ds, parse_strategy(spec))
        # flags stay in planes through the strategy (the store writes them in its own chunks)
        planes = da.core.normalize_chunks(graph.plane_chunks(ds[S.FLAG].shape), ds[S.FLAG].shape)
        assert out[S.FLAG].chunks == planes != ds[S.FLAG].chunks
        with pytest.raises(AssertionError, match="computed"):
            out[S.FLAG].values


@pytest.mark.parametrize("time_chunk", [1, 3, -1])
def test_sumthreshold_graph_equals_kernel_for_any_chunking(small_sim, time_chunk):
    ds = small_sim.datasets[0]
    expected = k.sumthreshold_block(ds[S.VISIBILITY].values, ds[S.FLAG].values,
                                    SumThresholdParams())
    out = fd.flag_sumthreshold(_chunked(ds, time_chunk))
    assert out[S.FLAG].chunks == _chunked(ds, time_chunk)[S.FLAG].chunks
    np.testing.assert_array_equal(out[S.FLAG].values, expected)


def test_strategy_runs_sumthreshold_then_mad_in_one_pass_with_the_same_result(small_sim):
    ds = _chunked(small_sim.datasets[0], 2)
    fused = parse_strategy({"flaggers": [{"flagger": "sumthreshold"},
                                         {"flagger": "mad", "robust_iterations": 0}]})
    apart = parse_strategy({"flaggers": [{"flagger": "sumthreshold"}, {"flagger": "clip"},
                                         {"flagger": "mad", "robust_iterations": 0}]})
    out, counts = apply_strategy(ds, fused)
    # one pass over the planes, one task per plane (the kernel's codes turned into flags
    # and counts in the same task)
    passes = [name for name in out[S.FLAG].data.dask.layers
              if name.startswith("flag-pass-") and not name.startswith("flag-pass-flags")]
    assert len(passes) == 1
    assert len(out[S.FLAG].data.dask.layers[passes[0]]) == out[S.FLAG].data.numblocks[1]
    ref, ref_counts = apply_strategy(ds, apart)   # clip between them: apart in the kernels
    flags, counts, ref_flags, ref_counts = dask.compute(out[S.FLAG].data, counts,
                                                        ref[S.FLAG].data, ref_counts)
    assert {key for key in counts if ":" in key} == {"0:sumthreshold", "1:mad"}
    np.testing.assert_array_equal(flags, ref_flags)
    assert counts["0:sumthreshold"] == ref_counts["0:sumthreshold"] > 0
    assert counts["1:mad"] == ref_counts["2:mad"]


def test_clip_counts_nonfinite_and_zero_weight(small_sim):
    ds = small_sim.datasets[1].copy(deep=True)
    vis = ds[S.VISIBILITY].values
    weight = ds[S.WEIGHT].values
    vis[0, 0, 0, 0] = np.nan
    vis[1, 1, 1, 1] = np.inf + 0j
    weight[2, 0, 3, 0] = 0.0
    vis[2, 1, 4, 0] = 0.0
    ds = _chunked(ds, 1)
    out, counts = fd.flag_clip(ds)
    flags, counts = dask.compute(out[S.FLAG].data, counts)
    assert counts.tolist() == [2, 1, 1, 0]
    assert flags[0, 0, 0, 0] and flags[1, 1, 1, 1] and flags[2, 0, 3, 0] and flags[2, 1, 4, 0]
    assert flags.sum() == ds[S.FLAG].values.sum() + 4


def test_autocorrelation_antenna_and_propagation(small_sim):
    from radiocal.simulate import SimConfig, simulate

    ds = simulate(SimConfig(n_antennas=3, autocorrelations=True, seed=3)).datasets[0]
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    auto = fd.flag_autocorrelations(ds)[S.FLAG].values
    np.testing.assert_array_equal(auto.all(axis=(0, 2, 3)), a1 == a2)
    assert not auto[:, a1 != a2].any()
    name = str(ds[S.ANTENNA_NAME].values[1])
    by_name = fd.flag_antennas(ds, [name])[S.FLAG].values
    np.testing.assert_array_equal(by_name.all(axis=(0, 2, 3)), (a1 == 1) | (a2 == 1))
    with pytest.raises(Exception, match="unknown antenna"):
        fd.flag_antennas(ds, ["nope"])
    flag = np.zeros(ds[S.FLAG].shape, bool)
    flag[0, 0, 0, 1] = True
    prop = fd.propagate_correlations(ds.assign({S.FLAG: (ds[S.FLAG].dims, flag)}))[S.FLAG].values
    assert prop[0, 0, 0].all() and prop.sum() == ds.sizes[S.POLARIZATION]


def test_quack_flags_scan_start_and_end(small_sim):
    ds = small_sim.datasets[0]
    out = fd.flag_quack(ds, QuackParams(begin_seconds=15.0, end_seconds=5.0))[S.FLAG].values
    times = ds[S.TIME].values
    half = 0.5 * ds[S.INTEGRATION_TIME].values
    start, end = (times - half).min(), (times + half).max()
    expected = (times - half < start + 15.0) | (times + half > end - 5.0)
    np.testing.assert_array_equal(out.all(axis=(1, 2, 3)), expected)
    assert not out[~expected].any()


def test_elevation_limit_uses_geometry(small_sim):
    ds = small_sim.datasets[0]
    elev = np.degrees(fd.antenna_elevation(ds))
    assert np.isfinite(elev).all() and (np.abs(elev) <= 90).all()
    limit = float(np.median(elev))
    out = fd.flag_elevation(ds, ElevationParams(min_elevation=limit))[S.FLAG].values
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    low = (elev[:, a1] < limit) | (elev[:, a2] < limit)
    np.testing.assert_array_equal(out.all(axis=(2, 3)), low | ds[S.FLAG].values.all(axis=(2, 3)))


def test_shadow_flags_close_pairs(small_sim):
    ds = small_sim.datasets[0].copy(deep=True)
    uvw = ds[S.UVW].values
    uvw[2, 0] = [3.0, 4.0, 50.0]  # 5 m apart on the sky plane: antenna 0 is shadowed
    out = fd.flag_shadow(_chunked(ds, 2))[S.FLAG].values
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    shadowed = (a1 == a1[0]) | (a2 == a1[0])
    assert out[2, shadowed].all()
    assert not out[[0, 1, 3]].any() or ds[S.FLAG].values[[0, 1, 3]].any()


def test_no_shadows_from_diameters_that_cannot_be_physical(small_sim, caplog):
    """Dishes wider than the distance between their centres would overlap (PAPER's MS say 25 m
    for dipoles 25 m apart): the shadows such diameters cast are not flagged, with one warning,
    by the flagger and by the fused strategy alike."""
    ds = small_sim.datasets[0].copy(deep=True)
    ds[S.UVW].values[2, 0] = [3.0, 4.0, 50.0]   # shadowed, were the dishes what they say
    position = ds[S.ANTENNA_POSITION].values
    closest = min(np.linalg.norm(position[i] - position[j]) for i in range(len(position))
                  for j in range(i))
    ds[S.ANTENNA_DIAMETER].values[:] = 1.01 * closest
    before = ds[S.FLAG].values.copy()
    fd._SAID.clear()
    with caplog.at_level("WARNING", logger="radiocal.flagging"):
        out = fd.flag_shadow(_chunked(ds, 2))[S.FLAG].values
        fused, counts = apply_strategy(_chunked(ds, 2), parse_strategy(
            {"flaggers": [{"flagger": "shadow"}]}))
        fused = fused[S.FLAG].values
    np.testing.assert_array_equal(out, before)
    np.testing.assert_array_equal(fused, before)
    said = [r.getMessage() for r in caplog.records if "shadow: skipped" in r.getMessage()]
    assert len(said) == 1 and "DISH_DIAMETER" in said[0]
    # dishes that fit between their neighbours still shadow
    ds[S.ANTENNA_DIAMETER].values[:] = 0.99 * closest
    assert fd.flag_shadow(_chunked(ds, 2))[S.FLAG].values[2].any()


def test_shadow_mask_read_from_a_store_in_budget_sized_tasks(small_sim, tmp_path):
    from radiocal.flagging.params import ShadowParams
    from radiocal.store.zarr_store import open_store, write_store

    ds = small_sim.datasets[0].copy(deep=True)
    ds[S.UVW].values[2, 0] = [3.0, 4.0, 50.0]  # antenna 0 shadowed at time 2
    stored = open_store(write_store([ds.chunk({S.TIME: 1})], tmp_path / "s.zarr"))[0]
    args = (fd.small(ds, S.BASELINE_ANTENNA1), fd.small(ds, S.BASELINE_ANTENNA2),
            fd.small(ds, S.ANTENNA_DIAMETER), ShadowParams())
    assert stored[S.UVW].data.numblocks[0] == ds.sizes[S.TIME] > 1
    mask = graph.shadow_flags(stored[S.UVW].data, *args)
    assert mask.numblocks == (1, 1)           # every stored chunk of UVW in one task
    assert len(dict(mask.__dask_graph__())) == 1
    with dask.config.set({"radiocal.chunk-bytes": ds[S.UVW].nbytes // 3}):
        split = graph.shadow_flags(stored[S.UVW].data, *args)
    per_task = ds.sizes[S.TIME] // 3       # whole stored chunks (of one time) in the budget
    assert split.numblocks[0] >= 3 and set(split.chunks[0][:-1]) == {per_task}
    expected = graph.shadow_flags(da.from_array(ds[S.UVW].values, chunks=(2, -1, -1)), *args)
    assert expected.compute()[2].any()
    np.testing.assert_array_equal(mask.compute(), expected.compute())
    np.testing.assert_array_equal(split.compute(), expected.compute())


def test_manual_flagger_uses_selection(small_sim):
    pytest.importorskip("radiocal.select.selection")
    spec = {"flaggers": [{"flagger": "manual", "antenna": str(small_sim.datasets[0][S.ANTENNA_NAME].values[2])}]}
    ds = small_sim.datasets[0]
    out, _ = apply_strategy(ds, parse_strategy(spec))
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    np.testing.assert_array_equal(out[S.FLAG].values.all(axis=(0, 2, 3)), (a1 == 2) | (a2 == 2))


def test_antenna_health_flags_the_dead_antenna(small_sim):
    ds = small_sim.datasets[0]  # the flux calibrator: every live baseline sees it
    out = fd.flag_antenna_health(_chunked(ds, 2))[S.FLAG].values
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    dead = (a1 == 4) | (a2 == 4)
    assert out[:, dead].all()
    assert not out[:, ~dead].any()


def test_antenna_health_keeps_a_live_low_gain_antenna_and_flags_the_dead_one():
    """Antenna 2's signal chain has a seventh of its peers' voltage gain (as a 3.5 m dish beside
    10 m ones): its crosses are 7x, its autocorrelation 49x weaker. With the autocorrelations
    it is kept and only the dead antenna 4 goes; with the crosses alone its raw amplitude is an
    outlier and it goes too."""
    from radiocal.simulate import SimConfig, simulate

    ds = simulate(SimConfig(n_antennas=6, dead_antenna=4, autocorrelations=True,
                            seed=21)).datasets[0]
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    gain = np.where(np.arange(6) == 2, 1 / 7, 1.0)
    vis = ds[S.VISIBILITY] * xr.DataArray(gain[a1] * gain[a2], dims=S.BASELINE)
    ds = ds.assign({S.VISIBILITY: vis.astype(ds[S.VISIBILITY].dtype)})
    out = fd.flag_antenna_health(_chunked(ds, 2))[S.FLAG].values
    dead = (a1 == 4) | (a2 == 4)
    np.testing.assert_array_equal(out.any(axis=(0, 2, 3)), dead)
    cross = ds.isel({S.BASELINE: np.flatnonzero(a1 != a2)})
    out = fd.flag_antenna_health(_chunked(cross, 2))[S.FLAG].values
    c1, c2 = a1[a1 != a2], a2[a1 != a2]
    expected = np.isin(c1, (2, 4)) | np.isin(c2, (2, 4))
    np.testing.assert_array_equal(out.any(axis=(0, 2, 3)), expected)


def test_strategy_counts_match_flags(small_sim):
    ds = _chunked(small_sim.datasets[2], 2)
    out, counts = apply_strategy(ds, load_strategy())
    flags, counts = dask.compute(out[S.FLAG].data, counts)
    assert flags.sum() - ds[S.FLAG].values.sum() == sum(
        v for key, v in counts.items() if ":" in key or key == "propagate_correlations")
    assert (flags | ~ds[S.FLAG].values).all()  # flags only grow


def test_flaggers_reject_unsupported_layouts(small_sim):
    ds = small_sim.datasets[0]
    three = ds.isel({S.POLARIZATION: [0, 1, 2]})
    with pytest.raises(Exception, match="only 1, 2 or 4"):
        fd.flag_sumthreshold(three)
    with pytest.raises(Exception, match="no VISIBILITY_CORRECTED"):
        fd.flag_sumthreshold(ds, column=S.VISIBILITY_CORRECTED)
