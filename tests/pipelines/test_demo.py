"""`radiocal demo`, the README's main-job command, end to end on the default local cluster."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from .pipeline_testing import RADIOCAL


@pytest.mark.slow
def test_demo_end_to_end_then_resume(tmp_path):
    from radiocal.dynspec.dataset import open_dynspec

    out = tmp_path / "demo_out"
    command = [*RADIOCAL, "demo", "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    run = out / "phaseref"
    assert (out / "input" / "demo.ms" / "table.dat").exists()
    assert (out / "input" / "skymodel.txt").read_text().count("POINT") == 3
    for name in ("plots/dynspec_STAR.png", "report.pdf", "calibrated.ms", "caltables/bandpass.B",
                 "dynspec_STAR.zarr", "provenance.json", "log.txt"):
        assert (run / name).exists(), name
    printed = result.stdout
    assert "flagged:" in printed and "fluxscale: J1407+2827" in printed
    assert str(run / "plots" / "dynspec_STAR.png") in printed

    qa = json.loads((run / "qa.json").read_text())
    assert qa["status"] != "FAILED", qa["problems"]
    (found,) = qa["fluxscale"]["J1407+2827"].values()
    assert abs(found["flux_jy"] / (2.5 * (found["frequency_hz"] / 1.4e9) ** -0.3) - 1) < 0.02
    # the simulated flare is there, and left-circularly polarised (flare V/I = -0.8)
    spectrum = open_dynspec(run / "dynspec_STAR.zarr").compute()
    light_i = spectrum["I_lightcurve"].values
    peak = int(np.nanargmax(light_i))
    assert light_i[peak] > 5 * np.nanmedian(light_i)
    assert spectrum["V_lightcurve"].values[peak] / light_i[peak] < -0.5

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "(0 run)" in again.stdout
    steps = json.loads((run / "provenance.json").read_text())["steps"]
    assert {s["status"] for s in steps} == {"skipped"}
