"""Subarrays (the MS ARRAY_ID) are kept apart like observations: read into a per-integration
``array_id``, carried by the store, written back on export, and never spanned by a solution
interval (there is no ``combine`` for them: antennas of two arrays share no baseline)."""

from __future__ import annotations

import numpy as np
import pytest

from radiocal.calibration.config import SolveOptions
from radiocal.calibration.dataset import solve
from radiocal.errors import InputError
from radiocal.simulate import SimConfig
from radiocal.store import caltables as C
from radiocal.store import schema as S

from . import variants as V

pytest.importorskip("casacore.tables", reason="needs python-casacore")


@pytest.fixture(scope="module")
def two_arrays(tmp_path_factory):
    """A concatenation whose two halves differ in ARRAY_ID only (one OBSERVATION_ID)."""
    import casacore.tables as ct

    v = V.steady_concat(tmp_path_factory.mktemp("arrays"), "two_arrays")
    with ct.table(str(v.ms), readonly=False, ack=False) as t:
        t.putcol("ARRAY_ID", t.getcol("OBSERVATION_ID"))
        t.putcol("OBSERVATION_ID", np.zeros(t.nrows(), np.int32))
    return v


def test_bandpass_is_solved_per_array(two_arrays):
    parts = V.fluxcal_parts(two_arrays)
    assert {int(a) for ds in parts for a in ds[S.ARRAY_ID].values} == {0, 1}
    assert {int(o) for ds in parts for o in ds[S.OBSERVATION_ID].values} == {0}
    (table,) = solve(parts, "B", SolveOptions(solint="inf", combine="scan,obs", refant="0"),
                     model=V.STEADY_FLUXCAL)
    assert table.sizes[C.SOL_TIME] == 2 and table[C.SOL_SCAN].values.tolist() == [1, 4]
    for row, truth in enumerate(two_arrays.truth.observations):
        ds = next(p for p in parts if int(p[S.ARRAY_ID].values[0]) == row)
        expected = truth.jones(ds)[:1].transpose(0, 1, 3, 2)[0]          # (ant, freq, hand)
        expected = expected * np.exp(-1j * np.angle(expected[:1]))
        got = table[C.GAIN].values[row]
        assert np.degrees(np.abs(np.angle(got * np.conj(expected)))).max() < 1.0, row
        np.testing.assert_allclose(np.abs(got), np.abs(expected), rtol=0.02)


def test_store_and_export_keep_array_ids(two_arrays, tmp_path):
    import casacore.tables as ct
    import xarray as xr

    from radiocal.ms.read import read_ms
    from radiocal.ms.write import write_ms
    from radiocal.store.zarr_store import open_store, write_store

    datasets = read_ms(two_arrays.ms)
    store = write_store(datasets, tmp_path / "store.zarr")
    back = open_store(store)
    for ds, again in zip(datasets, back):
        xr.testing.assert_identical(ds[S.ARRAY_ID], again[S.ARRAY_ID])
    out = tmp_path / "out.ms"
    write_ms(back, str(out))
    with ct.table(str(two_arrays.ms), ack=False) as a, ct.table(str(out), ack=False) as b:
        assert np.bincount(b.getcol("ARRAY_ID")).tolist() == \
            np.bincount(a.getcol("ARRAY_ID")).tolist() != [a.nrows()]
        assert set(b.getcol("OBSERVATION_ID").tolist()) == {0}


def test_simultaneous_subarrays_in_one_scan_are_a_one_line_error(tmp_path):
    import casacore.tables as ct

    from radiocal.ms.read import read_ms

    v = V._write(tmp_path, "subarrays", V.simulate(SimConfig(**V.STEADY)))
    with ct.table(str(v.ms), readonly=False, ack=False) as t:
        t.putcol("ARRAY_ID", (t.getcol("ANTENNA1") >= 3).astype(np.int32))
    with pytest.raises(InputError, match="several ARRAY_IDs at one time") as err:
        read_ms(v.ms)
    assert "\n" not in str(err.value)
