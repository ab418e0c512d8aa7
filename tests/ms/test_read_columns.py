"""Which MS columns the canonical variables come from, when an MS lacks the usual ones.

Writers differ: some leave out WEIGHT (keeping SIGMA), FLAG, or DATA (a calibrated copy whose
raw data were dropped), or add WEIGHT_SPECTRUM / SIGMA_SPECTRUM. Each is read, not refused.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from radiocal.ms.read import read_ms
from radiocal.simulate import SimConfig, simulate_ms
from radiocal.store import schema as S


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    ms = tmp_path_factory.mktemp("cols") / "plain.ms"
    simulate_ms(ms, SimConfig(n_antennas=3, schedule=((0, 2), (2, 2)), noise=0.1, seed=4))
    return ms


def _variant(plain, tmp_path, edit):
    import casacore.tables as ct

    ms = tmp_path / "variant.ms"
    shutil.copytree(plain, ms)
    with ct.table(str(ms), readonly=False, ack=False) as t:
        edit(t, ct)
    return ms


def _read(ms):
    return [ds.compute() for ds in read_ms(str(ms))]


def _add_spectrum_column(t, ct, name, values):
    t.addcols(ct.maketabdesc(ct.makearrcoldesc(name, 0.0, 2, valuetype="float")))
    t.putcol(name, values.astype(np.float32))


def test_weights_from_sigma_when_weight_is_absent(plain, tmp_path):
    """1 / SIGMA**2, the MS definition's relation; SIGMA_SPECTRUM alone changes nothing."""
    def edit(t, ct):
        sigma = np.full(t.getcol("SIGMA").shape, 0.5, dtype=np.float32)
        sigma[0] = 0.0                          # no estimate: no weight, not infinity
        t.putcol("SIGMA", sigma)
        nchan = t.getcell("DATA", 0).shape[0]
        _add_spectrum_column(t, ct, "SIGMA_SPECTRUM", np.repeat(sigma[:, None], nchan, axis=1))
        t.removecols(["WEIGHT"])
    got = _read(_variant(plain, tmp_path, edit))
    weights = np.concatenate([ds[S.WEIGHT].values[ds[S.ROW_PRESENT].values].ravel() for ds in got])
    assert set(np.unique(weights)) == {0.0, 4.0}
    assert np.count_nonzero(weights == 0) == got[0].sizes[S.FREQUENCY] * got[0].sizes[S.POLARIZATION]


def test_unit_weights_and_no_flags_when_the_columns_are_absent(plain, tmp_path):
    def edit(t, ct):
        row_flags = np.zeros(t.nrows(), dtype=bool)
        row_flags[1] = True
        t.putcol("FLAG_ROW", row_flags)
        t.removecols(["WEIGHT", "SIGMA", "FLAG"])
    reference = _read(plain)
    got = _read(_variant(plain, tmp_path, edit))
    for ds, ref in zip(got, reference):
        present = ds[S.ROW_PRESENT].values
        assert (ds[S.WEIGHT].values[present] == 1).all()
        np.testing.assert_array_equal(ds[S.VISIBILITY].values, ref[S.VISIBILITY].values)
    # FLAG_ROW of row 1 (the first integration's second baseline) still flags its samples
    assert got[0][S.FLAG].values[0, 1].all() and not got[0][S.FLAG].values[0, 0].any()


def test_channel_weights_from_weight_spectrum(plain, tmp_path):
    ramp = None

    def edit(t, ct):
        nonlocal ramp
        nchan, ncorr = t.getcell("DATA", 0).shape
        ramp = np.linspace(0.5, 1.5, nchan)
        _add_spectrum_column(t, ct, "WEIGHT_SPECTRUM",
                             np.broadcast_to(ramp[None, :, None], (t.nrows(), nchan, ncorr)))
    got = _read(_variant(plain, tmp_path, edit))
    np.testing.assert_allclose(got[0][S.WEIGHT].values[0, 0, :, 0], ramp, rtol=1e-6)


def test_corrected_data_is_the_data_when_data_is_absent(plain, tmp_path, caplog):
    reference = _read(plain)
    got = _read(_variant(plain, tmp_path, lambda t, ct: t.renamecol("DATA", "CORRECTED_DATA")))
    assert "CORRECTED_DATA is read as the visibilities" in caplog.text
    for ds, ref in zip(got, reference):
        assert S.VISIBILITY_CORRECTED not in ds
        np.testing.assert_array_equal(ds[S.VISIBILITY].values, ref[S.VISIBILITY].values)
