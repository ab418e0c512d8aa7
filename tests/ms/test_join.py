"""Many MS joined into one logical observation: along frequency (sub-bands) and time."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import dask

from radiocal.errors import InputError
from radiocal.store import schema as S
from radiocal.ms.read import read_ms
from radiocal.ms.write import write_ms
from radiocal.simulate import SimConfig, lwa_files


def _forbid_compute(*args, **kwargs):
    raise AssertionError("graph building computed something")


def test_lwa_directory_becomes_one_dataset_of_3072_channels(tmp_path):
    """16 sub-bands of 192 channels, 2 integrations: 32 files -> one partition, 3072 channels."""
    config = SimConfig.lwa(n_subbands=16, n_channels=192, n_integrations=2, n_antennas=3)
    sim = lwa_files(tmp_path / "lwa", config)
    assert len(sim.paths) == 32
    with dask.config.set(scheduler=_forbid_compute):
        joined = read_ms(tmp_path / "lwa")
    assert len(joined) == 1
    ds = joined[0]
    assert ds.sizes[S.FREQUENCY] == 3072 and ds.sizes[S.TIME] == 2
    assert np.all(np.diff(ds[S.FREQUENCY].values) > 0)
    assert len(ds.attrs[S.ATTR_SOURCES]) == 32
    # one graph layer per variable, whatever the number of files: dask culls layer by layer,
    # quadratic in the layers a per-file join leaves (thousands of files)
    assert {name: len(var.data.dask.layers) for name, var in ds.data_vars.items()} == \
        {name: 1 for name in ds.data_vars}
    expected = xr.concat(sorted(sim.datasets, key=lambda d: float(d[S.FREQUENCY][0])), dim=S.FREQUENCY,
                         data_vars="minimal", coords="minimal", compat="override")
    np.testing.assert_array_equal(ds[S.FREQUENCY].values, expected[S.FREQUENCY].values)
    np.testing.assert_array_equal(ds[S.VISIBILITY].values, expected[S.VISIBILITY].values)
    np.testing.assert_array_equal(ds[S.FLAG].values, expected[S.FLAG].values)
    assert ds[S.ROW_PRESENT].values.all()


def test_split_in_time_and_frequency_joins_back(vla_small_ms, tmp_path):
    """One scan cut into 3 time pieces x 4 sub-bands (12 MS) reads back as the original scan."""
    original = read_ms(vla_small_ms)[2].compute()
    paths = []
    for t0, t1 in ((0, 5), (5, 13), (13, 24)):
        for c in range(0, 32, 8):
            piece = original.isel({S.TIME: slice(t0, t1), S.FREQUENCY: slice(c, c + 8)})
            paths.append(write_ms([piece], tmp_path / f"t{t0:02d}_c{c:02d}.ms"))
    joined = read_ms(paths[::-1])      # order of the inputs does not matter
    assert len(joined) == 1
    ds = joined[0].compute()
    for var in (S.VISIBILITY, S.FLAG, S.WEIGHT, S.UVW, S.ROW_PRESENT):
        np.testing.assert_array_equal(ds[var].values, original[var].values, err_msg=var)
    np.testing.assert_array_equal(ds[S.TIME].values, original[S.TIME].values)
    np.testing.assert_array_equal(ds[S.FREQUENCY].values, original[S.FREQUENCY].values)
    assert ds.attrs[S.ATTR_FIELD_NAME] == "STAR"


def test_whole_ms_split_by_scan_joins_with_consistent_ids(vla_small_ms, tmp_path):
    originals = read_ms(vla_small_ms)
    paths = [write_ms([ds], tmp_path / f"scan{ds.attrs[S.ATTR_SCAN]}.ms") for ds in originals]
    joined = read_ms(paths)
    assert [ds.attrs[S.ATTR_PARTITION] for ds in joined] == [ds.attrs[S.ATTR_PARTITION] for ds in originals]


def test_joining_different_arrays_is_refused(vla_small_ms, tmp_path):
    ds = read_ms(vla_small_ms)[0]
    moved = ds.assign_coords({S.ANTENNA_POSITION: ds[S.ANTENNA_POSITION] + 100.0})
    a = write_ms([ds], tmp_path / "a.ms")
    b = write_ms([moved], tmp_path / "b.ms")
    with pytest.raises(InputError, match="antenna table differs"):
        read_ms([a, b])


def test_overlapping_times_are_refused(vla_small_ms, tmp_path):
    ds = read_ms(vla_small_ms)[0]
    a = write_ms([ds.isel({S.TIME: slice(0, 6)})], tmp_path / "a.ms")
    b = write_ms([ds.isel({S.TIME: slice(4, 12)})], tmp_path / "b.ms")
    with pytest.raises(InputError, match="overlapping times"):
        read_ms([a, b])


def test_subtables_read_once_are_not_reused_for_files_that_differ(tmp_path):
    """Subtables are parsed once per content (OVRO-LWA's thousands of files share them): a file
    whose ANTENNA differs in one value, in a table of the same size, is read as itself and its
    join refused; FIELD and SPECTRAL_WINDOW, different per integration and sub-band, stay each
    file's own."""
    import shutil

    import casacore.tables as ct

    from radiocal.ms.meta import read_metadata

    config = SimConfig.lwa(n_subbands=2, n_channels=4, n_integrations=2, n_antennas=3)
    sim = lwa_files(tmp_path / "lwa", config)
    paths = sorted(str(p) for p in sim.paths)
    read_ms(paths)    # every subtable parsed and kept
    metas = [read_metadata(p) for p in paths]
    assert len({m.spws[0].chan_freq[0] for m in metas}) == 2
    for path, meta in zip(paths, metas):
        with ct.table(f"{path}/FIELD", ack=False) as t:
            assert meta.fields[0].phase_center == tuple(t.getcol("PHASE_DIR")[0, 0])
    moved = str(tmp_path / "moved.ms")
    shutil.copytree(paths[0], moved)
    with ct.table(f"{moved}/ANTENNA", readonly=False, ack=False) as t:
        position = t.getcol("POSITION")
        position[1, 0] += 100.0
        t.putcol("POSITION", position)
    np.testing.assert_array_equal(read_metadata(moved).antennas.position, position)
    np.testing.assert_array_equal(read_metadata(paths[0]).antennas.position[1, 0] + 100.0,
                                  position[1, 0])
    with pytest.raises(InputError, match="antenna table differs"):
        read_ms([moved] + paths[1:])
