"""`radiocal lwa`: the A-team model, and the OVRO-LWA bandpass flow closed-loop on simulated files."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from .pipeline_testing import RADIOCAL, tree_digest

# The simulated LWA is a 12-antenna core only ~100 m across: at 55-69 MHz few baselines are longer
# than the OVRO-LWA cut of 10 wavelengths, and the simulated sky has no diffuse emission to cut.
UVRANGE = ">2lambda"
BAD = "LWA003"


def _apparent_sky_config(n_antennas=12):
    """An LWA-like configuration whose sky is the apparent A-team radiocal will model."""
    from radiocal.model.ateam import ateam_skymodel
    from radiocal.simulate import SimConfig
    from radiocal.simulate.config import LWA_SITE, PointSource
    from radiocal.simulate.geometry import enu_to_itrf

    base = SimConfig.lwa(n_subbands=3, n_channels=8, n_integrations=2, n_antennas=n_antennas,
                         gain_amp_rms=0.0, gain_phase_rms=0.0, seed=3)
    times = base.start_time + base.integration_time * np.array([0.5, 1.5])
    model, _ = ateam_skymodel(times, enu_to_itrf(np.zeros((1, 3)), LWA_SITE))
    field = base.fields[0]
    nu0 = 62e6
    flux = model.spectra([nu0 / 1.01, nu0, nu0 * 1.01])[:, :, 0]
    slope = np.log(flux[:, 2] / flux[:, 0]) / np.log(1.01 ** 2)   # local spectral index
    lmn = model.lmn([field.ra, field.dec])
    sky = tuple(PointSource(float(l), float(m), float(s), float(a))
                for (l, m, _), s, a in zip(lmn, flux[:, 1], slope))
    return base.replace(background=sky, reference_frequency=nu0)


@pytest.fixture(scope="module")
def lwa_run(tmp_path_factory):
    """Simulated OVRO-LWA files and one `radiocal lwa` run over them."""
    from radiocal.simulate.simulator import lwa_files

    root = tmp_path_factory.mktemp("lwa")
    config = _apparent_sky_config()
    sim = lwa_files(root / "raw", config)
    before = tree_digest(root / "raw")
    args = ["--scheduler", "threads", "lwa", str(root / "raw"), "-o", str(root / "out"),
            "--no-image", "--uvrange", UVRANGE, "--bad-antennas", BAD]
    result = subprocess.run(RADIOCAL + args, capture_output=True, text=True, timeout=600)
    return dict(root=root, sim=sim, result=result, args=args, before=before)


def test_ateam_elevations_and_fluxes():
    from radiocal.model.ateam import ATEAM, apparent_sources, dipole_beam
    from radiocal.simulate.config import LWA_SITE, LWA_START
    from radiocal.simulate.geometry import enu_to_itrf

    measures = pytest.importorskip("casacore.measures").measures()
    centre = enu_to_itrf(np.zeros((1, 3)), LWA_SITE)
    measures.do_frame(measures.epoch("UTC", f"{LWA_START}s"))
    measures.do_frame(measures.position("ITRF", *[f"{v}m" for v in centre[0]]))
    report = {r.name: r for r in apparent_sources([LWA_START], centre)}
    for src in ATEAM:   # casacore's measures (independent) agree, precession included
        azel = measures.measure(measures.direction("J2000", f"{src.ra}rad", f"{src.dec}rad"),
                                "AZELGEO")
        el = np.degrees(azel["m1"]["value"])
        assert abs(report[src.name].min_elevation_deg - el) < 1e-3, src.name
        assert report[src.name].used == (el > 0 and np.sin(np.radians(el)) ** 1.6 >= 0.01)
    assert report["CygA"].used and not report["TauA"].used
    assert report["TauA"].reason == "below the horizon"
    # Perley-Butler 2017 at 80 MHz against the OVRO-LWA pipeline's own source list (16300 Jy
    # Cyg A, 16530 Jy Cas A, 1770 Jy Tau A, 2400 Jy Vir A): same scale, different fits
    assert abs(report["CygA"].flux_80mhz / 16300 - 1) < 0.02
    assert abs(report["CasA"].flux_80mhz / 16530 - 1) < 0.06
    assert abs(report["TauA"].flux_80mhz / 1770 - 1) < 0.1
    assert 0.7 < report["VirA"].flux_80mhz / 2400 < 0.9
    assert dipole_beam(np.radians(90.0)) == pytest.approx(1.0)
    assert dipole_beam(np.radians(30.0)) == pytest.approx(0.5 ** 1.6)
    assert dipole_beam(np.radians(-5.0)) == 0.0


def test_ateam_model_text_round_trip():
    from radiocal.model.ateam import ateam_skymodel
    from radiocal.model.skymodel import format_skymodel, parse_skymodel
    from radiocal.simulate.config import LWA_SITE, LWA_START
    from radiocal.simulate.geometry import enu_to_itrf

    model, report = ateam_skymodel([LWA_START, LWA_START + 600],
                                   enu_to_itrf(np.zeros((1, 3)), LWA_SITE))
    assert list(model.name) == [r.name for r in report if r.used]
    back = parse_skymodel(format_skymodel(model))
    freqs = np.array([30e6, 60e6, 85e6])
    np.testing.assert_allclose(back.spectra(freqs), model.spectra(freqs), rtol=1e-6)
    np.testing.assert_allclose(back.ra, model.ra, atol=1e-9)
    beams = {r.name: r.beam for r in report}
    for k, name in enumerate(model.name):  # apparent = intrinsic x beam
        from radiocal.model.flux_standards import standard_model
        assert model.spectra([70e6])[k, 0, 0] == pytest.approx(
            beams[name] * standard_model(name)([70e6])[0], rel=1e-9)


def test_lwa_run_is_filed_successful(lwa_run):
    result, root = lwa_run["result"], lwa_run["root"]
    assert result.returncode == 0, result.stderr
    run = root / "out" / "successful" / "20260301_171500"
    assert not (root / "out" / "20260301_171500").exists()
    for name in ("store.zarr", "calibrated.ms", "caltables/bandpass.B", "caltables/delay.K",
                 "skymodel_ateam.txt", "plots/bandpass_amplitude_spw0.png", "report.pdf",
                 "qa.json", "log.txt", "provenance.json"):
        assert (run / name).exists(), name
    qa = json.loads((run / "qa.json").read_text())
    assert qa["status"] != "FAILED", qa["problems"]
    assert qa["criteria"] and all(c["passed"] is not False for c in qa["criteria"])
    assert [d["spw"] for d in qa["delays"]] == [0] and (run / "plots/delays_spw0.png").exists()
    assert "CygA" in (run / "skymodel_ateam.txt").read_text()
    assert tree_digest(root / "raw") == lwa_run["before"]   # inputs only read


def _bandpass_errors(run, truth):
    """Amplitude (fraction) and phase (deg) errors of the solved bandpass against the simulated
    G B, up to the reference phase; the bad antenna must be flagged, every other solved."""
    from radiocal.store import caltables as C
    from radiocal.store import schema as S

    (table,) = C.read_table_zarr(run / "store.zarr" / "caltables" / "bandpass")
    names = [str(n) for n in table[S.ANTENNA_NAME].values]
    bad = names.index(BAD)
    solved = table[C.GAIN].values[0]                        # (antenna, frequency, hand)
    flag = table[C.SOL_FLAG].values[0]
    assert flag[bad].all()                                  # the listed bad antenna
    good = np.ones(len(names), bool)
    good[bad] = False
    assert not flag[good].any()
    # truth: G (constant here) x B, channels of the three sub-bands in frequency order
    jones = truth.G[:, :, :1] * truth.B.reshape(truth.B.shape[0], 2, -1)   # (antenna, hand, freq)
    jones = jones.transpose(0, 2, 1)
    ratio = solved[good] / jones[good]
    # phases: the solution is referenced to one antenna; remove one phase per hand and channel
    ref = ratio[:1] / np.abs(ratio[:1])
    return np.abs(np.abs(ratio) - 1).max(), np.degrees(np.abs(np.angle(ratio / ref))).max()


def test_lwa_bandpass_matches_truth(lwa_run):
    """Closed loop: the solved bandpass equals the simulated G B up to the reference phase."""
    run = lwa_run["root"] / "out" / "successful" / "20260301_171500"
    amp_err, phase_err = _bandpass_errors(run, lwa_run["sim"].truth)
    assert amp_err < 0.01, amp_err   # measured 0.13%
    assert phase_err < 0.5, phase_err   # measured 0.09 deg


def test_lwa_flags_little_of_the_clean_simulation(lwa_run):
    """The simulation has no RFI: the flag step must leave the A-team's fringes and the three
    sub-bands' bandpasses (each rolling off into its edges, stepping at the joins) alone. Fitted
    across the joins the spectral background flagged 11% of it (18% with the cubic); fitted sub-band
    by sub-band 1.0% (measured). 3% is issue 13's bound on clean data."""
    from radiocal.store import schema as S
    from radiocal.store.zarr_store import open_store

    run = lwa_run["root"] / "out" / "successful" / "20260301_171500"
    flagged = n = 0
    for ds in open_store(run / "store.zarr"):
        names = [str(a) for a in ds[S.ANTENNA_NAME].values]
        a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
        keep = (a1 != a2) & (a1 != names.index(BAD)) & (a2 != names.index(BAD))
        flags = ds[S.FLAG].values[:, keep]
        flagged += flags.sum()
        n += flags.size
    assert 0 < n and flagged / n <= 0.03, flagged / n


def test_lwa_rerun_resumes_and_refiles(lwa_run, run_cli):
    root = lwa_run["root"]
    run = root / "out" / "successful" / "20260301_171500"
    bandpass = (run / "caltables" / "bandpass.B" / "table.f0").read_bytes() \
        if (run / "caltables" / "bandpass.B" / "table.f0").exists() else None
    result = run_cli(*lwa_run["args"])
    assert result.exit_code == 0, result.err
    assert "(0 run)" in result.out
    assert run.is_dir() and not (root / "out" / "20260301_171500").exists()
    if bandpass is not None:
        assert (run / "caltables" / "bandpass.B" / "table.f0").read_bytes() == bandpass


def test_lwa_delay_reference(lwa_run, run_cli, tmp_path):
    """The delays agree with their own table; a reference shifted by 5 ns on one antenna warns."""
    from radiocal.store import caltables as C

    run = lwa_run["root"] / "out" / "successful" / "20260301_171500"
    reference = C.read_table_zarr(run / "store.zarr" / "caltables" / "delay")
    shifted = [tds.assign({C.DELAY: (tds[C.DELAY].dims,
                                     tds[C.DELAY].values + np.where(
                                         np.arange(tds.sizes["antenna"]) == 5, 5e-9, 0.0
                                     )[None, :, None, None])}) for tds in reference]
    C.write_table_zarr(shifted, tmp_path / "reference.zarr")
    out = tmp_path / "out"
    shutil.copytree(lwa_run["root"] / "raw", tmp_path / "raw")
    result = run_cli("--scheduler", "threads", "lwa", str(tmp_path / "raw"), "-o", str(out),
                     "--no-image", "--uvrange", UVRANGE, "--delay-reference",
                     str(tmp_path / "reference.zarr"))
    assert result.exit_code == 0, result.err
    log = (out / "successful" / "20260301_171500" / "log.txt").read_text()
    moved = [line for line in log.splitlines() if "moved" in line and "WARNING" in line]
    assert len(moved) == 2 and all("LWA006" in line for line in moved), moved   # both hands
    qa = json.loads((out / "successful" / "20260301_171500" / "qa.json").read_text())
    (delays,) = qa["delays"]      # the report compares with the same reference
    assert [(a, round(ns)) for a, _, ns in delays["moved"]] == [("LWA006", -5), ("LWA006", -5)]


def test_lwa_no_usable_source_is_filed_unsuccessful(lwa_run, run_cli, tmp_path):
    shutil.copytree(lwa_run["root"] / "raw", tmp_path / "raw")
    out = tmp_path / "out"
    result = run_cli("--scheduler", "threads", "lwa", str(tmp_path / "raw"), "-o", str(out),
                     "--no-image", "--min-elevation", "89.5")
    assert result.exit_code != 0
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert "no A-team source" in result.err and "unsuccessful" in result.err
    assert (out / "unsuccessful" / "20260301_171500" / "log.txt").exists()
    assert not (out / "successful").exists()


def test_lwa_bad_antenna_file_must_exist(run_cli, tmp_path):
    result = run_cli("lwa", str(tmp_path), "-o", str(tmp_path / "out"), "--bad-antennas-file",
                     str(tmp_path / "missing.txt"))
    assert result.exit_code != 0 and "missing.txt" in result.err


def test_lwa_drift_scan_files(tmp_path):
    """Real OVRO-LWA files are phased to the zenith of their own integration: convert rephases
    them to the first one's, one field over time, and the bandpass solved on them is the
    simulated one as closely as on files of one fixed centre (test_lwa_bandpass_matches_truth)."""
    import casacore.tables as pt

    from radiocal.simulate.simulator import lwa_files

    sim = lwa_files(tmp_path / "raw", _apparent_sky_config().replace(drift_scan=True))
    result = subprocess.run(RADIOCAL + ["--scheduler", "threads", "lwa", str(tmp_path / "raw"),
                                        "-o", str(tmp_path / "out"), "--no-image",
                                        "--uvrange", UVRANGE, "--bad-antennas", BAD],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "successful" / "20260301_171500"
    amp_err, phase_err = _bandpass_errors(run, sim.truth)
    print(f"drift-scan lwa bandpass vs truth: amplitude {amp_err:.2%}, phase {phase_err:.2f} deg")
    assert amp_err < 0.01, amp_err
    assert phase_err < 0.5, phase_err
    assert (run / "skymodel_ateam.txt").exists()       # one field, one model
    with pt.table(str(run / "calibrated.ms" / "FIELD"), ack=False) as field:
        np.testing.assert_allclose(field.getcol("PHASE_DIR")[0], [sim.truth.phase_centers[0]],
                                   rtol=0, atol=1e-12)


def test_lwa_failed_run_resumes_to_the_same_result(lwa_run, tmp_path):
    """A run that stopped at the bandpass (a bad --refant) is filed unsuccessful; the corrected
    command takes it back, redoes only the bandpass onwards and ends where a clean run ends."""
    from radiocal.store import caltables as C

    shutil.copytree(lwa_run["root"] / "raw", tmp_path / "raw")
    base = ["--scheduler", "threads", "lwa", str(tmp_path / "raw"), "-o", str(tmp_path / "out"),
            "--no-image", "--uvrange", UVRANGE, "--bad-antennas", BAD]
    failed = subprocess.run(RADIOCAL + base + ["--refant", "NOPE"], capture_output=True,
                            text=True, timeout=600)
    assert failed.returncode != 0 and "refant 'NOPE'" in failed.stderr
    assert (tmp_path / "out" / "unsuccessful" / "20260301_171500" / "store.zarr").is_dir()
    fixed = subprocess.run(RADIOCAL + base, capture_output=True, text=True, timeout=600)
    assert fixed.returncode == 0, fixed.stderr
    assert "(3 run)" in fixed.stdout        # sky_bandpass, export, report; the rest was kept
    assert not (tmp_path / "out" / "unsuccessful").joinpath("20260301_171500").exists()
    run = tmp_path / "out" / "successful" / "20260301_171500"
    clean = lwa_run["root"] / "out" / "successful" / "20260301_171500"
    (resumed,) = C.read_table_zarr(run / "store.zarr" / "caltables" / "bandpass")
    (fresh,) = C.read_table_zarr(clean / "store.zarr" / "caltables" / "bandpass")
    np.testing.assert_array_equal(resumed[C.GAIN].values, fresh[C.GAIN].values)
    np.testing.assert_array_equal(resumed[C.SOL_FLAG].values, fresh[C.SOL_FLAG].values)


def test_lwa_report_measures_the_ateam_on_the_images(lwa_run, tmp_path):
    """With WSClean: each modelled source is found on the images at its model flux and place."""
    if shutil.which("wsclean") is None:
        pytest.skip("wsclean is not installed")
    shutil.copytree(lwa_run["root"] / "raw", tmp_path / "raw")
    result = subprocess.run(RADIOCAL + ["--scheduler", "threads", "lwa", str(tmp_path / "raw"),
                                        "-o", str(tmp_path / "out"), "--image", "--uvrange",
                                        UVRANGE, "--bad-antennas", BAD,
                                        "--set", "image.channels_out=2"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "successful" / "20260301_171500"
    qa = json.loads((run / "qa.json").read_text())
    band = {r["source"]: r for r in qa["ateam"] if r["band"]}
    assert set(band) == {"CasA", "CygA"}            # the two sources above the horizon
    for row in band.values():                       # measured 0.92 and 0.95, 0.09 and 0.03 deg
        assert abs(row["ratio"] - 1) < 0.15 and row["offset_deg"] < 0.25, row
    assert sum(not r["band"] for r in qa["ateam"]) == 4   # two channel images x two sources
    (ateam,) = [c for c in qa["criteria"] if "A-team" in c["criterion"]]
    assert ateam["passed"] is True
    assert (run / "plots" / "ateam_spectra.png").exists()
