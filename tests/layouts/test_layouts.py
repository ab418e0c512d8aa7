"""Every layout of tests/layouts/variants.py through ``radiocal phaseref`` (convert, flag,
calibrate, dynspec, export, report), and ``info`` on the input and the exported MS.

The dynamic spectrum of the star is checked against the simulated truth: the scatter of
(measured - true) over the reported error is about 1, and the calibrated amplitude scale is
right to a few per cent (calibration closed-loop through the flux and phase calibrators).
"""

from __future__ import annotations

import numpy as np
import pytest

from ..engine.engine_testing import tree_digest
from . import variants as V

ROLES = ["--fluxcal", V.FLUXCAL, "--fluxcal-model", "15.0,-0.5,1.4GHz", "--phasecal",
         V.PHASECAL, "--target", V.TARGET]

# variant -> (target integrations, channels of the spectrum, most baselines in one cell)
EXPECTED = {
    "separate_scans": (8, 32, 15),
    "mixed_setups": (8, 24, 15),
    "overlapping_spws": (8, 24, 30),   # 8 shared channels: both spws' baselines
    "missing_rows": (8, 32, 15),
    "autocorrelations": (8, 32, 15),   # autocorrelations never enter the spectrum
    "observations_and_arrays": (12, 32, 15),
    "blank_antennas": (8, 32, 15),
    "irregular_times": (8, 32, 15),
    "scans_channels_correlations": (8, 24, 15),
    "flagged_rows": (8, 32, 15),
    "empty_field_and_spw": (8, 32, 15),
    "channel_weights": (8, 32, 15),
    "sigma_only": (8, 32, 15),
    "corrected_only": (8, 32, 15),
    "baseline_ordered": (8, 32, 15),
    "concatenated": (16, 32, 15),
    "concatenated_shared_fields": (16, 32, 15),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(V.VARIANTS))
def test_layout_end_to_end(name, run_cli, tmp_path):
    from radiocal.dynspec.dataset import CELL_FLAG, N_BASELINES, SCAN_COORD, open_dynspec

    variant = V.VARIANTS[name](tmp_path)
    before = tree_digest(variant.ms)
    out = tmp_path / "out"
    result = run_cli("--scheduler", "threads", "phaseref", variant.ms, "-o", out, *ROLES,
                     "--skymodel", variant.skymodel)
    assert result.exit_code == 0, result.err
    assert tree_digest(variant.ms) == before
    for ms in (variant.ms, out / "calibrated.ms"):
        info = run_cli("info", ms)
        assert info.exit_code == 0 and V.TARGET in info.out, info.err

    n_times, n_chan, most = EXPECTED[name]
    spec = open_dynspec(out / f"dynspec_{V.TARGET}.zarr").compute()
    assert np.all(np.diff(spec["time"].values) > 0)          # one row per integration
    spec = spec.isel(time=spec[SCAN_COORD].values >= 0)
    assert spec.sizes == {"time": n_times, "frequency": n_chan}
    assert spec[N_BASELINES].values.max() == most
    assert not spec[CELL_FLAG].values.all()
    true_i, true_v = variant.star(spec["time"].values, spec["frequency"].values)
    for product, truth in (("I", true_i), ("V", true_v)):
        value, err = spec[product].values, spec[product + "_err"].values
        ok = np.isfinite(value) & np.isfinite(err)
        # Most cells measured: the missing rows and the few cells the flagger takes leave
        # at least 85%
        assert ok.mean() > 0.85, (product, ok.mean())
        z = (value[ok] - truth[ok]) / err[ok]
        assert np.sqrt(np.mean(z ** 2)) < 1.4, (product, np.sqrt(np.mean(z ** 2)))
        scale = np.sum(value[ok] * truth[ok]) / np.sum(truth[ok] ** 2)
        assert abs(scale - 1) < 0.03, (product, scale)
