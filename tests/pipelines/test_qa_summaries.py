"""QA summaries against plain numpy: flagged samples never count, fluxscale read back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from radiocal.io import schema as S
from radiocal.qa import summaries as Q


@pytest.fixture(scope="module")
def calibrator():
    from radiocal.io.testing import SimConfig, simulate

    sim = simulate(SimConfig(n_antennas=4, spws=((1.3e9, 4e6, 4),), schedule=((0, 3),), seed=2))
    ds = sim.datasets[0].load()
    flag = ds[S.FLAG].values.copy()
    vis = ds[S.VISIBILITY].values.copy()
    flag[1, 2, :, 0] = True
    vis[1, 2, :, 0] = 1e6           # a flagged outlier must not show in any average
    flag[2, 0] = True               # a whole (time, baseline) cell flagged: NaN
    corrected = (vis * 2).astype(np.complex64)
    return ds.assign({S.FLAG: (ds[S.FLAG].dims, flag), S.VISIBILITY: (ds[S.VISIBILITY].dims, vis),
                      S.VISIBILITY_CORRECTED: (ds[S.VISIBILITY].dims, corrected)}).chunk({S.TIME: 1})


def test_visibility_summaries_match_numpy(calibrator):
    name = str(calibrator.attrs[S.ATTR_FIELD_NAME])
    (summary,) = Q.visibility_summaries([calibrator], [name])
    par = Q.parallel_hands(calibrator)
    assert [str(calibrator[S.POLARIZATION].values[i]) for i in par] == ["RR", "LL"]
    vis = calibrator[S.VISIBILITY].values[..., par].astype(np.complex128)
    ok = ~calibrator[S.FLAG].values[..., par]
    with np.errstate(invalid="ignore"):
        by_time = np.where(ok, vis, 0).sum((2, 3)) / ok.sum((2, 3))
        by_freq = np.where(ok, vis, 0).sum((0, 3)) / ok.sum((0, 3))
    np.testing.assert_allclose(summary.by_time["before"], by_time, rtol=1e-6)
    np.testing.assert_allclose(summary.by_frequency["before"], by_freq, rtol=1e-6)
    np.testing.assert_allclose(summary.by_time["after"], 2 * by_time, rtol=1e-6)
    assert np.isnan(summary.by_time["before"][2, 0])
    assert np.nanmax(np.abs(summary.by_time["before"])) < 1e3   # the flagged outlier is out
    uvw = calibrator[S.UVW].values
    np.testing.assert_allclose(summary.uvdist, np.hypot(uvw[..., 0], uvw[..., 1]))


def test_measured_flux_fits_a_power_law(calibrator):
    name = str(calibrator.attrs[S.ATTR_FIELD_NAME])
    (summary,) = Q.visibility_summaries([calibrator], [name])
    nu = summary.frequency
    spectrum = 3.0 * (nu / nu.mean()) ** -0.7
    summary.by_frequency["after"] = np.broadcast_to(spectrum, summary.by_frequency["after"].shape).copy()
    summary.by_frequency["after"][0] = np.nan   # a fully flagged baseline
    found = Q.measured_flux([summary], name)
    assert found["s0"] == pytest.approx(3.0, rel=1e-9)
    assert found["alpha"] == pytest.approx(-0.7, rel=1e-9)
    assert Q.measured_flux([summary], "elsewhere") is None
