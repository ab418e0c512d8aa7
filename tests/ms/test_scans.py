"""Scan numbers from the data (``convert --renumber-scans``) and LO tunings kept apart or joined:
the ATA workflow, where one SCAN_NUMBER spans several sources and each tuning is its own MS."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from radiocal.cli.main import cli
from radiocal.store import schema as S
from radiocal.ms.read import read_ms
from radiocal.ms.write import write_ms
from radiocal.ms.scans import renumber_scans
from radiocal.store.zarr_store import open_store
from radiocal.simulate import SimConfig, simulate

# Flux calibrator, phase calibrator, target, phase calibrator: the phase calibrator twice
SCHEDULE = ((0, 2), (1, 2), (2, 3), (1, 2))
TUNINGS = ((1.30e9, 4.0e6, 4), (3.00e9, 4.0e6, 4))


def test_renumber_splits_where_the_field_changes_and_keeps_integrations_together():
    # Two rows (spws or baselines) per integration; fields A A B B A A under one scan number
    time = np.repeat([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 2)
    field = np.repeat([0, 0, 1, 1, 0, 0], 2)
    scan = np.ones_like(field)
    np.testing.assert_array_equal(renumber_scans(time, field, scan), np.repeat([1, 1, 2, 2, 3, 3], 2))
    # Rows out of time order get the numbers of their integration
    perm = np.random.default_rng(1).permutation(time.size)
    np.testing.assert_array_equal(renumber_scans(time[perm], field[perm], scan[perm]),
                                  np.repeat([1, 1, 2, 2, 3, 3], 2)[perm])


def test_renumber_keeps_recorded_boundaries_on_one_field():
    time = np.arange(6.0)
    field = np.zeros(6, dtype=int)
    scan = np.array([5, 5, 6, 6, 6, 9])
    np.testing.assert_array_equal(renumber_scans(time, field, scan), [1, 1, 2, 2, 2, 3])


def _one_scan_number(datasets):
    """What ATA's correlator writes: every row under scan 1."""
    out = []
    for ds in datasets:
        ds = ds.copy()
        ds.attrs[S.ATTR_SCAN] = 1
        ds.attrs[S.ATTR_PARTITION] = S.partition_name(ds.attrs[S.ATTR_FIELD_ID], ds.attrs[S.ATTR_SPW_ID], 1)
        out.append(ds)
    return out


@pytest.fixture(scope="module")
def sim():
    return simulate(SimConfig(n_antennas=4, spws=TUNINGS, schedule=SCHEDULE, noise=0.05, seed=3))


def _key(ds):
    return ds.attrs[S.ATTR_FIELD_NAME], float(ds[S.FREQUENCY].values[0]), float(ds[S.TIME].values[0])


def test_one_scan_number_across_sources_is_split_by_field(sim, tmp_path):
    ms = write_ms(_one_scan_number(sim.datasets), tmp_path / "onescan.ms")
    as_recorded = read_ms(ms)
    # The phase calibrator's two visits are one partition with the target's time in between
    assert len(as_recorded) == 6
    renumbered = read_ms(ms, renumber_scans=True)
    assert len(renumbered) == len(sim.datasets) == 8
    truth = {_key(ds): ds for ds in sim.datasets}
    for ds in renumbered:
        original = truth[_key(ds)]
        assert ds.attrs[S.ATTR_SCAN] == original.attrs[S.ATTR_SCAN]   # 1..4 in time order
        np.testing.assert_array_equal(ds[S.TIME].values, original[S.TIME].values)
        np.testing.assert_array_equal(ds[S.VISIBILITY].values, original[S.VISIBILITY].values)


def test_two_tunings_join_along_frequency_or_stay_apart(sim, tmp_path):
    """Each tuning its own MS, numbered differently; renumbered, they line up and join."""
    paths = []
    for spw, offset in ((0, 0), (1, 100)):
        parts = [ds for ds in _one_scan_number(sim.datasets) if ds.attrs[S.ATTR_SPW_ID] == spw]
        for ds in parts:
            ds.attrs[S.ATTR_SCAN] += offset
        paths.append(write_ms(parts, tmp_path / f"tuning{spw}.ms"))
    joined = read_ms(paths, renumber_scans=True)
    assert len(joined) == 4
    assert all(ds.sizes[S.FREQUENCY] == 8 for ds in joined)
    assert [ds.attrs[S.ATTR_SCAN] for ds in joined] == [1, 2, 3, 4]
    apart = read_ms(paths, renumber_scans=True, join_subbands=False)
    assert len(apart) == 8
    assert sorted({ds.attrs[S.ATTR_SPW_ID] for ds in apart}) == [0, 1]
    assert all(ds.sizes[S.FREQUENCY] == 4 for ds in apart)


def test_convert_renumber_scans_on_the_command_line(sim, tmp_path):
    ms = write_ms(_one_scan_number(sim.datasets), tmp_path / "onescan.ms")
    store = tmp_path / "out.zarr"
    result = CliRunner().invoke(cli, ["--scheduler", "sync", "convert", str(ms), "-o", str(store),
                                      "--renumber-scans"])
    assert result.exit_code == 0, result.output
    scans = sorted({ds.attrs[S.ATTR_SCAN] for ds in open_store(store)})
    assert scans == [1, 2, 3, 4]
