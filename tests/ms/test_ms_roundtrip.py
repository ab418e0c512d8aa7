"""MS -> canonical datasets -> zarr -> MS, on CASA's own MS and on variants of it."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import dask

from radiocal.store import schema as S
from radiocal.ms.read import read_ms
from radiocal.ms.write import write_ms
from radiocal.ms.meta import read_table
from radiocal.store.zarr_store import open_store, write_store

ROW_COLUMNS = ("DATA", "FLAG", "WEIGHT", "UVW", "TIME", "ANTENNA1", "ANTENNA2", "FIELD_ID",
               "SCAN_NUMBER", "DATA_DESC_ID")


def _table_columns(path, columns=ROW_COLUMNS):
    """Columns of an MS main table in (DATA_DESC_ID, TIME, ANTENNA1, ANTENNA2) order."""
    with read_table(str(path)) as t:
        cols = {c: t.getcol(c) for c in columns}
    order = np.lexsort((cols["ANTENNA2"], cols["ANTENNA1"], cols["TIME"], cols["DATA_DESC_ID"]))
    return {c: v[order] for c, v in cols.items()}


def _private_copy(ms, tmp_path) -> str:
    """A file-level copy: casacore shares open tables per process, and dask-ms may hold this one."""
    import shutil

    copy = tmp_path / "source.ms"
    shutil.copytree(ms, copy)
    return str(copy)


def _forbid_compute(*args, **kwargs):
    raise AssertionError("graph building computed something")


def test_grid_holds_every_row_of_casa_ms(vla_small_ms):
    datasets = read_ms(vla_small_ms)
    with read_table(vla_small_ms) as t:
        data, flag, weight, uvw = (t.getcol(c) for c in ("DATA", "FLAG", "WEIGHT", "UVW"))
        time, a1, a2, scan = (t.getcol(c) for c in ("TIME", "ANTENNA1", "ANTENNA2", "SCAN_NUMBER"))
    assert len(datasets) == 6
    assert sum(int(ds[S.ROW_PRESENT].sum()) for ds in datasets) == time.size
    for ds in datasets:
        rows = np.flatnonzero(scan == ds.attrs[S.ATTR_SCAN])
        ti = np.searchsorted(ds[S.TIME].values, time[rows])
        pairs = {(p, q): i for i, (p, q) in enumerate(zip(ds[S.BASELINE_ANTENNA1].values,
                                                          ds[S.BASELINE_ANTENNA2].values))}
        bi = np.array([pairs[(p, q)] for p, q in zip(a1[rows], a2[rows])])
        local = ds.compute()
        np.testing.assert_array_equal(local[S.VISIBILITY].values[ti, bi], data[rows])
        np.testing.assert_array_equal(local[S.FLAG].values[ti, bi], flag[rows])
        np.testing.assert_array_equal(local[S.UVW].values[ti, bi], uvw[rows])
        # WEIGHT (row, corr) is the same for every channel of the canonical WEIGHT
        np.testing.assert_array_equal(local[S.WEIGHT].values[ti, bi],
                                      np.repeat(weight[rows][:, None, :], ds.sizes[S.FREQUENCY], axis=1))
        assert local[S.TIME].values.tolist() == sorted(set(time[rows].tolist()))


def test_metadata_of_casa_ms(vla_small_ms):
    ds = read_ms(vla_small_ms)[0]
    assert ds.attrs[S.ATTR_FIELD_NAME] == "J1331+3030"
    assert ds.attrs[S.ATTR_TELESCOPE] == "VLA"
    assert ds[S.POLARIZATION].values.tolist() == ["RR", "RL", "LR", "LL"]
    assert ds.sizes[S.ANTENNA] == 10 and ds.sizes[S.BASELINE] == 45
    assert ds[S.ANTENNA_DIAMETER].values.tolist() == [25.0] * 10
    assert ds[S.FREQUENCY].values[0] == pytest.approx(1.3e9)
    assert np.diff(ds[S.FREQUENCY].values) == pytest.approx(2e6)
    assert ds.attrs[S.ATTR_INTENTS] == ["OBSERVE_TARGET.ON_SOURCE"]


def test_reading_builds_graph_without_computing(vla_small_ms):
    with dask.config.set(scheduler=_forbid_compute):
        datasets = read_ms(vla_small_ms, chunk_bytes=100_000)
    assert all(ds[S.VISIBILITY].chunks is not None for ds in datasets)
    # Small chunk target: several whole-integration chunks per partition
    assert max(len(ds[S.VISIBILITY].chunks[0]) for ds in datasets) > 1


def test_zarr_store_round_trip_is_identical(vla_small_ms, tmp_path):
    datasets = read_ms(vla_small_ms, chunk_bytes=200_000)
    write_store(datasets, tmp_path / "obs.zarr")
    back = open_store(tmp_path / "obs.zarr")
    assert [ds.attrs[S.ATTR_PARTITION] for ds in back] == [ds.attrs[S.ATTR_PARTITION] for ds in datasets]
    for original, stored in zip(datasets, back):
        xr.testing.assert_identical(original.compute(), stored.compute())
        assert stored[S.VISIBILITY].chunks == original[S.VISIBILITY].chunks


def test_ms_zarr_ms_round_trip_is_bit_exact(vla_small_ms, tmp_path, run_cli):
    store, out = tmp_path / "obs.zarr", tmp_path / "out.ms"
    assert run_cli("convert", vla_small_ms, "-o", store).exit_code == 0
    result = run_cli("export", store, out)
    assert result.exit_code == 0, result.err
    original, exported = _table_columns(vla_small_ms), _table_columns(out)
    for column in ROW_COLUMNS:
        assert original[column].dtype == exported[column].dtype, column
        np.testing.assert_array_equal(original[column], exported[column], err_msg=column)


def test_export_writes_corrected_and_model_columns(vla_small_ms, tmp_path):
    datasets = read_ms(vla_small_ms)
    with_cal = [ds.assign({S.VISIBILITY_CORRECTED: ds[S.VISIBILITY] * 2,
                           S.VISIBILITY_MODEL: xr.ones_like(ds[S.VISIBILITY])}) for ds in datasets]
    write_ms(with_cal, tmp_path / "cal.ms")
    cols = _table_columns(tmp_path / "cal.ms", ROW_COLUMNS + ("CORRECTED_DATA", "MODEL_DATA"))
    np.testing.assert_array_equal(cols["CORRECTED_DATA"], cols["DATA"] * 2)
    assert np.all(cols["MODEL_DATA"] == 1)
    back = read_ms(tmp_path / "cal.ms")
    assert S.VISIBILITY_CORRECTED in back[0] and S.VISIBILITY_MODEL in back[0]


def test_channel_varying_weights_go_to_weight_spectrum(vla_small_ms, tmp_path):
    datasets = read_ms(vla_small_ms)
    ramp = xr.DataArray(np.linspace(1, 2, datasets[0].sizes[S.FREQUENCY]), dims=S.FREQUENCY)
    weighted = [ds.assign({S.WEIGHT: (ds[S.WEIGHT] * ramp).astype(np.float32)}) for ds in datasets]
    write_ms(weighted, tmp_path / "ws.ms")
    back = read_ms(tmp_path / "ws.ms")
    for original, reread in zip(weighted, back):
        np.testing.assert_array_equal(original[S.WEIGHT].values, reread[S.WEIGHT].values)


def test_negative_weights_export_quietly(vla_small_ms, tmp_path):
    """ATA's uvh5 files written to MS hold WEIGHT -1.2e12: SIGMA 0, no RuntimeWarning from sqrt."""
    import warnings

    datasets = [ds.assign({S.WEIGHT: -ds[S.WEIGHT]}) for ds in read_ms(vla_small_ms)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        write_ms(datasets, tmp_path / "neg.ms")
    cols = _table_columns(tmp_path / "neg.ms", ROW_COLUMNS + ("SIGMA",))
    assert np.all(cols["WEIGHT"] < 0) and np.all(cols["SIGMA"] == 0)


def test_missing_rows_become_flagged_absent_cells(vla_small_ms, tmp_path):
    import casacore.tables as pt

    partial = tmp_path / "partial.ms"
    with read_table(_private_copy(vla_small_ms, tmp_path)) as t:
        # Drop one baseline in the first scan's first integration
        first = t.getcol("TIME").min()
        keep = t.query(f"NOT (TIME == {float(first)!r} AND ANTENNA1 == 0 AND ANTENNA2 == 1)")
        keep.copy(str(partial), deep=True).close()
        keep.close()
    ds = read_ms(partial)[0].compute()
    assert not ds[S.ROW_PRESENT].values[0, 0] and ds[S.ROW_PRESENT].values.sum() == ds[S.ROW_PRESENT].size - 1
    assert ds[S.FLAG].values[0, 0].all() and (ds[S.WEIGHT].values[0, 0] == 0).all()
    write_ms([ds], tmp_path / "again.ms")
    with pt.table(str(tmp_path / "again.ms"), ack=False) as t:
        assert t.nrows() == ds[S.ROW_PRESENT].values.sum()


def test_rows_not_sorted_by_time(vla_small_ms, tmp_path):
    shuffled = tmp_path / "shuffled.ms"
    with read_table(_private_copy(vla_small_ms, tmp_path)) as t:
        rng = np.random.default_rng(1)
        view = t.selectrows(rng.permutation(t.nrows()))
        view.copy(str(shuffled), deep=True).close()
        view.close()
    for expected, got in zip(read_ms(vla_small_ms), read_ms(shuffled)):
        xr.testing.assert_identical(expected.compute(), got.drop_attrs().assign_attrs(
            {**got.attrs, S.ATTR_SOURCES: expected.attrs[S.ATTR_SOURCES]}).compute())


def _two_spw_ms(vla_small_ms, path):
    """vla_small plus a second spectral window of 16 channels at other frequencies."""
    datasets = read_ms(vla_small_ms)
    second = []
    for ds in datasets:
        sub = ds.isel({S.FREQUENCY: slice(0, 16)})
        sub = sub.assign_coords({S.FREQUENCY: sub[S.FREQUENCY] + 1e8})
        sub.attrs = {**ds.attrs, S.ATTR_SPW_ID: 1, S.ATTR_SPW_NAME: "SPW1",
                     S.ATTR_PARTITION: S.partition_name(ds.attrs[S.ATTR_FIELD_ID], 1, ds.attrs[S.ATTR_SCAN])}
        second.append(sub)
    write_ms(datasets + second, path)
    return datasets, second


def test_spectral_windows_with_different_channel_counts(vla_small_ms, tmp_path):
    datasets, second = _two_spw_ms(vla_small_ms, tmp_path / "two.ms")
    back = read_ms(tmp_path / "two.ms")
    assert len(back) == 12
    assert sorted({ds.sizes[S.FREQUENCY] for ds in back}) == [16, 32]
    by_name = {ds.attrs[S.ATTR_PARTITION]: ds for ds in back}
    for ds in datasets + second:
        np.testing.assert_array_equal(by_name[ds.attrs[S.ATTR_PARTITION]][S.VISIBILITY].values,
                                      ds[S.VISIBILITY].values)


def test_repeated_identical_polarization_rows(vla_small_ms, tmp_path):
    """CASA's simulator writes one POLARIZATION row per spw; AOFlagger refuses that, we must not."""
    import casacore.tables as pt

    path = tmp_path / "two.ms"
    _two_spw_ms(vla_small_ms, path)
    with pt.table(str(path / "POLARIZATION"), readonly=False, ack=False) as pol:
        pol.copyrows(pol, startrowin=0, nrow=1)
        assert pol.nrows() == 2
    with pt.table(str(path / "DATA_DESCRIPTION"), readonly=False, ack=False) as dd:
        dd.putcell("POLARIZATION_ID", 1, 1)
    back = read_ms(path)
    assert len(back) == 12
    assert all(ds[S.POLARIZATION].values.tolist() == ["RR", "RL", "LR", "LL"] for ds in back)


def test_reading_again_after_computing(vla_small_ms):
    """casacore shares table objects in a process; dask-ms's locking must not break a second read."""
    first = read_ms(vla_small_ms)
    values = first[0][S.VISIBILITY].values
    second = read_ms(vla_small_ms)
    np.testing.assert_array_equal(second[0][S.VISIBILITY].values, values)


def test_update_store_rewrites_variables_and_attributes(vla_small_ms, tmp_path):
    from radiocal.store.zarr_store import drop_variables, update_store

    store = tmp_path / "obs.zarr"
    write_store(read_ms(vla_small_ms), store)
    stored = open_store(store)
    # Flags computed from the stored flags themselves, on other chunks, plus a new variable
    changed = [ds.assign({S.FLAG: ds[S.FLAG] | (abs(ds[S.VISIBILITY]) > 5),
                          S.VISIBILITY_CORRECTED: ds[S.VISIBILITY] * 2})
                 .chunk({S.TIME: 1}).assign_attrs(note="updated") for ds in stored]
    expected = [ds.compute() for ds in changed]
    update_store(changed, store, [S.FLAG, S.VISIBILITY_CORRECTED])
    back = open_store(store)
    for want, got in zip(expected, back):
        xr.testing.assert_identical(want, got.compute())
    drop_variables(store, [S.VISIBILITY_CORRECTED])
    assert all(S.VISIBILITY_CORRECTED not in ds for ds in open_store(store))


def test_duplicate_rows_are_an_error(vla_small_ms, tmp_path):
    from radiocal.errors import InputError

    doubled = tmp_path / "doubled.ms"
    with read_table(_private_copy(vla_small_ms, tmp_path)) as t:
        # Row 3 twice, the copy at the end of the table (not next to the original)
        view = t.selectrows(list(range(t.nrows())) + [3])
        view.copy(str(doubled), deep=True).close()
        view.close()
    with pytest.raises(InputError, match="1 duplicate"):
        read_ms(doubled)


def test_reading_enlarges_the_row_caches(tmp_path):
    """The index columns, the group queries and dask-ms's WEIGHT/UVW reads share one table whose
    StandardStMan cache holds the whole (small) file instead of two buckets of a few rows."""
    import casacore.tables as pt

    from radiocal.ms.read_one import _enlarge_row_caches
    from radiocal.simulate import SimConfig, simulate_ms

    path = str(tmp_path / "sim.ms")
    simulate_ms(path, SimConfig(n_antennas=6, spws=((1.4e9, 1e6, 4),), schedule=((0, 20),)))
    with pt.table(path, ack=False) as t:
        assert t.getdminfo("TIME")["TYPE"] == "StandardStMan"
        default = t.getdmprop("TIME")["MaxCacheSize"]
        time = t.getcol("TIME")
        _enlarge_row_caches(t)
        assert t.getdmprop("TIME")["MaxCacheSize"] > default
        np.testing.assert_array_equal(t.getcol("TIME"), time)
    datasets = read_ms(path)
    assert sum(int(ds[S.ROW_PRESENT].sum()) for ds in datasets) == time.size


def test_correlations_in_another_order_are_read_in_canonical_order(tmp_path):
    """OVRO-LWA writes XX YY XY YX: read as XX XY YX YY with the data moved with its labels."""
    import shutil

    import casacore.tables as ct

    from radiocal.simulate import SimConfig, simulate_ms

    canonical = tmp_path / "canonical.ms"
    simulate_ms(canonical, SimConfig(seed=3, n_antennas=4, feeds="linear", schedule=((0, 3),)))
    shuffled = tmp_path / "lwa_order.ms"
    shutil.copytree(canonical, shuffled)
    order = [0, 3, 1, 2]                                  # XX YY XY YX as positions of XX XY YX YY
    with ct.table(str(shuffled / "POLARIZATION"), readonly=False, ack=False) as pol:
        pol.putcell("CORR_TYPE", 0, [S.CORR_CODES[n] for n in ("XX", "YY", "XY", "YX")])
        pol.putcell("CORR_PRODUCT", 0, pol.getcell("CORR_PRODUCT", 0)[order])
    with ct.table(str(shuffled), readonly=False, ack=False) as t:
        for column in ("DATA", "FLAG", "WEIGHT", "SIGMA"):
            t.putcol(column, t.getcol(column)[..., order])

    expected, = read_ms(str(canonical))
    got, = read_ms(str(shuffled))
    assert list(got[S.POLARIZATION].values) == ["XX", "XY", "YX", "YY"]
    xr.testing.assert_identical(got.drop_attrs(), expected.drop_attrs())

    out = tmp_path / "exported.ms"
    write_ms([got], str(out))
    with ct.table(str(out / "POLARIZATION"), ack=False) as pol:
        assert [S.CORR_TYPES[c] for c in pol.getcell("CORR_TYPE", 0)] == ["XX", "XY", "YX", "YY"]
    np.testing.assert_array_equal(_table_columns(out)["DATA"], _table_columns(canonical)["DATA"])


def test_cross_hands_alone_are_read_flagged_and_exported(tmp_path):
    """PAPER and HERA wrote one correlation per file, XY among them: the cross hands alone are
    read (in canonical order), flagged and exported; what needs total intensity refuses them
    in one line."""
    import casacore.tables as ct

    import radiocal
    from radiocal.calibration.jones import data_hands
    from radiocal.errors import InputError
    from radiocal.simulate import SimConfig, simulate_ms

    ms = tmp_path / "yx_xy.ms"
    simulate_ms(ms, SimConfig(seed=4, n_antennas=5, feeds="linear", n_correlations=2,
                              schedule=((0, 4),)))
    with ct.table(str(ms / "POLARIZATION"), readonly=False, ack=False) as pol:
        pol.putcell("CORR_TYPE", 0, [S.CORR_CODES["YX"], S.CORR_CODES["XY"]])
    with ct.table(str(ms), ack=False) as t:
        data = t.getcol("DATA")
    got, = read_ms(str(ms))
    assert list(got[S.POLARIZATION].values) == ["XY", "YX"]
    flagged, = radiocal.flag([got])
    flags = flagged[S.FLAG].values
    assert flags.shape == got[S.FLAG].shape and not flags.all()
    out = tmp_path / "exported.ms"
    write_ms([got], str(out))
    with ct.table(str(out / "POLARIZATION"), ack=False) as pol:
        assert [S.CORR_TYPES[c] for c in pol.getcell("CORR_TYPE", 0)] == ["XY", "YX"]
    # the file's second correlation (XY) is the export's first
    np.testing.assert_array_equal(_table_columns(out)["DATA"][..., 0], data[..., 1])
    with pytest.raises(InputError, match="correlation layout"):
        data_hands(got)
