"""`radiocal phaseref` on ../shared/data/vla_small, and a run killed mid-step that resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pytest

from ..conftest import VLA_SMALL_PHASE_CONVENTION
from .pipeline_testing import RADIOCAL, tree_digest

FLUXCAL, PHASECAL, TARGET = "J1331+3030", "J1407+2827", "STAR"


def _phaseref_args(ms, sky, outdir, *extra):
    return ["phaseref", str(ms), "--fluxcal", FLUXCAL, "--fluxcal-model", "15.0,-0.5,1.4GHz",
            "--phasecal", PHASECAL, "--target", TARGET, "--skymodel", str(sky), "-o", str(outdir),
            *extra]


def test_phaseref_vla_small(vla_small_dir, run_cli, tmp_path):
    ms = vla_small_dir / "vla_small.ms"
    before = tree_digest(ms)
    out = tmp_path / "out"
    result = run_cli("--scheduler", "threads", *_phaseref_args(ms, vla_small_dir / "skymodel.txt", out,
                                                               "--refant", "W01", "--set",
                                                               "dynspec.phase_convention="
                                                               + VLA_SMALL_PHASE_CONVENTION))
    assert result.exit_code == 0, result.err
    for name in ("store.zarr", "calibrated.ms", "caltables/bandpass.B", "caltables/flux.G",
                 f"dynspec_{TARGET}.zarr", f"plots/dynspec_{TARGET}.png", "plots/flags.png",
                 f"plots/calibrator_{PHASECAL}_after.png", "plots/bandpass_amplitude_spw0.png",
                 "report.pdf", "log.txt", "provenance.json", "qa.json"):
        assert (out / name).exists(), name
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert (out / "store.zarr" / "caltables" / "bandpass").is_dir()  # zarr tables in the store
    qa = json.loads((out / "qa.json").read_text())
    assert qa["status"] != "FAILED", qa["problems"]
    # the phase calibrator's flux density, bootstrapped by fluxscale and measured on the
    # calibrated data, against the README's truth 2.5 Jy (nu / 1.4 GHz)^-0.3
    (found,) = qa["fluxscale"][PHASECAL].values()
    truth = 2.5 * (found["frequency_hz"] / 1.4e9) ** -0.3
    assert abs(found["flux_jy"] / truth - 1) < 0.02, found
    measured = qa["measured"][PHASECAL]
    assert abs(measured["s0"] / (2.5 * (measured["nu0"] / 1.4e9) ** -0.3) - 1) < 0.02, measured
    assert abs(measured["alpha"] + 0.3) < 0.1, measured
    assert 0.05 < qa["flagged"]["final"] < 0.6  # the dead antenna and the RFI, not everything
    assert f"fluxscale: {PHASECAL}" in result.out and "dynamic spectrum:" in result.out
    assert tree_digest(ms) == before  # the input MS was never written


def _records(store):
    from radiocal.engine import checkpoint

    try:
        return checkpoint.read_records(store)
    except Exception:  # the store is being created
        return []


def _outputs(outdir):
    import radiocal
    from radiocal.dynspec.dataset import open_dynspec

    stores = [ds.compute() for ds in radiocal.open(outdir)]
    spectrum = open_dynspec(outdir / f"dynspec_{TARGET}.zarr").compute()
    qa = json.loads((outdir / "qa.json").read_text())
    return stores, spectrum, {k: qa[k] for k in ("fluxscale", "measured", "flagged", "solutions")}


@pytest.mark.slow
def test_killed_run_resumes_to_identical_outputs(small_phaseref, tmp_path):
    import xarray as xr

    ms, sky, _ = small_phaseref
    before = tree_digest(ms)
    out = tmp_path / "out"
    command = [*RADIOCAL, "--scheduler", "threads",
               *_phaseref_args(ms, sky, out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # kill as soon as the calibrate step has started (its record says 'running')
        while not any(r.get("name") == "calibrate" and r.get("status") == "running"
                      for r in _records(out / "store.zarr")):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "calibrate never started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    statuses = {r["name"]: r["status"] for r in _records(out / "store.zarr")}
    assert statuses["flag"] == "complete" and statuses["calibrate"] == "running", statuses
    assert not (out / "report.pdf").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    steps = json.loads((out / "provenance.json").read_text())["steps"]
    assert [s["status"] for s in steps] == ["skipped", "skipped", "ran", "ran", "ran", "ran"]

    fresh = tmp_path / "fresh"
    result = subprocess.run([*command[:-1], str(fresh)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (stores_a, spec_a, qa_a), (stores_b, spec_b, qa_b) = _outputs(out), _outputs(fresh)
    assert [ds.attrs["partition"] for ds in stores_a] == [ds.attrs["partition"] for ds in stores_b]
    for a, b in zip(stores_a, stores_b):
        xr.testing.assert_identical(a, b)
    for name in spec_a.data_vars:
        np.testing.assert_array_equal(spec_a[name].values, spec_b[name].values)
    assert qa_a == qa_b
    assert tree_digest(ms) == before


def test_packaged_yaml_runs_with_set(small_phaseref, run_cli, tmp_path):
    ms, sky, _ = small_phaseref
    out = tmp_path / "yaml_run"
    result = run_cli("--scheduler", "threads", "run", "phaseref", ms, "-o", out,
                     "--set", f"calibrate.fluxcal={FLUXCAL}", "--set", f"calibrate.phasecal={PHASECAL}",
                     "--set", "calibrate.fluxcal_model=15.0,-0.5,1.4GHz",
                     "--set", f"calibrate.targets=[{TARGET}]", "--set", f"dynspec.field={TARGET}",
                     "--set", f"dynspec.skymodel={sky}")
    assert result.exit_code == 0, result.err
    for name in ("dynspec.zarr", "calibrated.ms", "report.pdf", f"plots/dynspec_{TARGET}.png"):
        assert (out / name).exists(), name
    qa = json.loads((out / "qa.json").read_text())
    (found,) = qa["fluxscale"][PHASECAL].values()
    assert abs(found["flux_jy"] / (2.5 * (found["frequency_hz"] / 1.4e9) ** -0.3) - 1) < 0.05


def test_report_takes_over_figures_drawn_ahead_unless_their_inputs_changed(
        small_phaseref, run_cli, tmp_path, monkeypatch):
    import os

    from radiocal.qa import render, report

    ms, sky, _ = small_phaseref
    out = tmp_path / "out"
    assert run_cli("--scheduler", "threads", *_phaseref_args(ms, sky, out)).exit_code == 0
    store = out / "store.zarr"
    monkeypatch.setattr(render, "usable_cores", lambda: 2)    # begun on one core too
    info = report.RunInfo(outdir=out, store=store)
    report.start_figures(out, store)
    drawer, tables = report._take_over(info, None)
    with drawer:
        jobs = report._solution_figures(tables) + report._dynspec_figures(out)
        assert len(jobs) > 4 and set(drawer._futures) == {stem for stem, _, _ in jobs}
        # drawn ahead, the figures are those the run's report drew
        for stem, png in drawer.pages(jobs):
            assert png == (out / "plots" / f"{stem}.png").read_bytes(), stem
    report.start_figures(out, store)
    report._BEGUN[out][1].result()      # the tables read, the figures submitted
    table = next(p for p in (store / "caltables").rglob("*") if p.is_file())
    os.utime(table, ns=(table.stat().st_atime_ns, table.stat().st_mtime_ns + 10**9))
    drawer, tables = report._take_over(info, None)
    with drawer:   # a table rewritten meanwhile: the report reads and draws it again
        assert tables is None and not drawer._futures


def test_missing_roles_are_one_line_errors(small_phaseref, run_cli, tmp_path):
    ms, sky, _ = small_phaseref
    # Roles left out are inferred from the data (tests/layouts/test_roles.py); one that is not
    # there is an error before anything runs
    result = run_cli("phaseref", ms, "--fluxcal", "NOPE", "--target", TARGET, "-o", tmp_path / "x")
    assert result.exit_code != 0 and "'NOPE' is not in the data" in result.err
    assert not (tmp_path / "x").exists()
    result = run_cli("--scheduler", "threads", *_phaseref_args(ms, sky, tmp_path / "y")[:-2],
                     "-o", tmp_path / "y", "--set", "report.max_flagged=2")
    assert result.exit_code == 1
    assert result.err.strip().splitlines() == [
        "radiocal: error: step 'report': max_flagged must be in (0, 1], not 2.0"]


def test_run_warnings_are_those_of_the_runs_that_made_the_outputs(tmp_path):
    """A resumed run keeps the warnings of the steps it skipped (their outputs are the earlier
    run's) and replaces those of the steps it runs again; a run from the first step forgets
    every earlier one."""
    from radiocal.qa.report import run_warnings

    log = tmp_path / "log.txt"
    first = (
        "2026-01-01 00:00:00,000 INFO radiocal.engine: step 1/3 convert: running\n"
        "2026-01-01 00:00:01,000 WARNING radiocal.ms: 3 rows without a time\n"
        "2026-01-01 00:00:02,000 INFO radiocal.engine: step 2/3 flag: running\n"
        "2026-01-01 00:00:03,000 WARNING radiocal.step.flag: old problem\n"
        "2026-01-01 00:00:04,000 ERROR radiocal.engine: step 2/3 flag failed\n")
    resumed = (
        "2026-01-01 00:01:00,000 INFO radiocal.engine: step 1/3 convert: already complete, skipped\n"
        "2026-01-01 00:01:02,000 INFO radiocal.engine: step 2/3 flag: running\n"
        "2026-01-01 00:01:03,000 WARNING radiocal.calibration: antenna E09 has no solutions\n"
        "2026-01-01 00:01:04,000 INFO radiocal.engine: step 3/3 report: running\n")
    log.write_text(first + resumed)
    assert run_warnings(log) == ["radiocal.ms: 3 rows without a time",
                                 "radiocal.calibration: antenna E09 has no solutions"]
    log.write_text(first + resumed.replace("convert: already complete, skipped", "convert: running"))
    assert run_warnings(log) == ["radiocal.calibration: antenna E09 has no solutions"]
    assert run_warnings(tmp_path / "absent.txt") == []
