"""OVRO-LWA drift-scan files (each integration phased to its own zenith) become one dataset over
time, rephased to one centre: compared with the same sky simulated at one fixed centre."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

import dask

from radiocal.astro import format_dec, format_ra
from radiocal.store import schema as S
from radiocal.ms.read import read_ms
from radiocal.ms.rephase import rephase
from radiocal.simulate import SimConfig, geometry, lwa_files

REAL_LWA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "ovro_mma_lwa" / "ovro_mma_lwa.ms"


def _forbid_compute(*args, **kwargs):
    raise AssertionError("graph building computed something")


def _config(**changes):
    """3 sub-bands x 4 channels, 4 integrations of 10 antennas; the A-team (Cyg A, Cas A, tens
    of kJy) fringing through every baseline, so any error of the rephasing shows."""
    options = dict(n_subbands=3, n_channels=4, n_integrations=4, n_antennas=10)
    return SimConfig.lwa(**{**options, **changes})


def _centre_text(ra, dec):
    return f"{format_ra(ra, 7)} {format_dec(dec, 6)}"


@pytest.fixture(scope="module")
def noiseless(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    config = _config(noise=0.0)
    return dict(fixed=lwa_files(root / "fixed", config),
                drift=lwa_files(root / "drift", config.replace(drift_scan=True)), root=root)


def test_simulated_drift_files_are_phased_to_their_own_zenith(noiseless):
    import casacore.tables as pt

    sim = noiseless["drift"]
    centres = sim.truth.phase_centers
    assert np.all(np.diff(centres[:, 0]) > 0) and np.ptp(centres[:, 1]) == 0   # RA follows LST
    for path in sim.paths:
        with pt.table(str(path), ack=False) as ms, pt.table(str(path / "FIELD"), ack=False) as field:
            k = int(np.searchsorted(sim.truth.times, ms.getcol("TIME")[0]))
            np.testing.assert_allclose(field.getcol("PHASE_DIR")[0, 0], centres[k], rtol=0, atol=1e-12)
            expected = geometry.uvw(sim.datasets[0][S.ANTENNA_POSITION].values, ms.getcol("ANTENNA1"),
                                    ms.getcol("ANTENNA2"), ms.getcol("TIME")[:1], *centres[k])[0]
            np.testing.assert_allclose(ms.getcol("UVW"), expected, rtol=0, atol=1e-9)


def test_drift_files_rephased_equal_the_fixed_centre_simulation(noiseless):
    """Rephased to the fixed simulation's centre, the joined drift scan is that simulation: UVW
    to 1e-9 m, visibilities to complex64 rounding of the A-team's fringes."""
    fixed, drift = noiseless["fixed"], noiseless["drift"]
    spec = fixed.config.fields[0]
    with dask.config.set(scheduler=_forbid_compute):
        (ds,) = read_ms(noiseless["root"] / "drift", phase_centre=(spec.ra, spec.dec))
    (want,) = read_ms(noiseless["root"] / "fixed")
    assert ds.sizes[S.TIME] == 4 and ds.sizes[S.FREQUENCY] == 12
    assert ds.attrs[S.ATTR_PHASE_CENTER] == [spec.ra, spec.dec]
    np.testing.assert_allclose(ds[S.UVW].values, want[S.UVW].values, rtol=0, atol=1e-9)
    got, expected = ds[S.VISIBILITY].values, want[S.VISIBILITY].values
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() < 3e-7 * scale
    # without the rephasing the integrations differ by the A-team's fringes
    raw = drift.datasets[0][S.VISIBILITY].values - fixed.datasets[0][S.VISIBILITY].values
    assert np.abs(raw).max() > 0.01 * scale


def test_drift_files_default_to_the_first_integrations_zenith(noiseless):
    sim = noiseless["drift"]
    (ds,) = read_ms(noiseless["root"] / "drift")
    first = sim.truth.phase_centers[0]
    assert ds.attrs[S.ATTR_PHASE_CENTER] == [float(first[0]), float(first[1])]
    positions = ds[S.ANTENNA_POSITION].values
    expected = geometry.uvw(positions, ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values,
                            ds[S.TIME].values, *first)
    np.testing.assert_allclose(ds[S.UVW].values, expected, rtol=0, atol=1e-9)


def test_fields_of_one_name_away_from_the_zenith_stay_apart(tmp_path):
    """Two pointings of one name that are not at the zenith (a mosaic) are not merged."""
    config = _config(n_integrations=1, noise=0.0)
    spec = config.fields[0]
    lwa_files(tmp_path / "raw", config)
    moved = dataclasses.replace(spec, ra=spec.ra + 0.3)
    lwa_files(tmp_path / "raw", config.replace(start_time=config.start_time + 10.0, fields=(moved,)))
    datasets = read_ms(tmp_path / "raw")
    assert len({ds.attrs[S.ATTR_FIELD_ID] for ds in datasets}) == 2


@pytest.mark.skipif(not REAL_LWA.exists(), reason="../shared/data/real/ovro_mma_lwa is absent")
def test_real_ovro_lwa_rephased_uvw_match_casacore_measures():
    """The real file's UVW are casacore's for its PHASE_DIR (7e-8 m); rotated to Cyg A they
    are casacore's for Cyg A to 1e-4 of the baselines (measured 3.3 mm on 92 m: casacore's
    J2000 UVW carry the annual aberration, <= 20 arcsec, of each direction; the rotation, as
    chgcentre's, keeps the file's frame), and rephasing there and back gives the data again."""
    from casacore.measures import measures
    from casacore.quanta import quantity

    from radiocal.model.ateam import pick_sources

    (cyg,) = pick_sources(["CygA"])
    (ds,) = read_ms(REAL_LWA, phase_centre=(cyg.ra, cyg.dec))
    (original,) = read_ms(REAL_LWA)
    positions = ds[S.ANTENNA_POSITION].values
    dm = measures()
    dm.do_frame(dm.epoch("UTC", quantity(float(ds[S.TIME].values[0]), "s")))
    dm.do_frame(dm.position("ITRF", *(quantity(x, "m") for x in positions.mean(axis=0))))
    dm.do_frame(dm.direction("J2000", quantity(cyg.ra, "rad"), quantity(cyg.dec, "rad")))
    baseline = dm.baseline("ITRF", *(quantity(list(positions[:, i]), "m") for i in range(3)))
    per_antenna = np.array(dm.to_uvw(baseline)["xyz"].get_value()).reshape(-1, 3)
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    expected = per_antenna[a2] - per_antenna[a1]            # the MS's antenna2 - antenna1
    present = ds[S.ROW_PRESENT].values[0]
    got = ds[S.UVW].values[0]
    length = np.linalg.norm(expected[present], axis=-1).max()
    assert np.abs(got[present] - expected[present]).max() < 1e-4 * length
    assert not np.allclose(original[S.UVW].values[0][present], expected[present], atol=1.0)
    back = rephase(ds, *original.attrs[S.ATTR_PHASE_CENTER])
    np.testing.assert_allclose(back[S.UVW].values, original[S.UVW].values, rtol=0, atol=1e-9)
    vis = original[S.VISIBILITY].values
    assert np.abs(back[S.VISIBILITY].values - vis).max() <= 1e-6 * np.abs(vis).max()

def _spectrum(run_cli, raw: Path, out: Path, *convert_args):
    from radiocal.dynspec.dataset import open_dynspec

    store, spectrum = out / "store.zarr", out / "dynspec.zarr"
    result = run_cli("--scheduler", "threads", "convert", raw, "-o", store, *convert_args)
    assert result.exit_code == 0, result.err
    result = run_cli("--scheduler", "threads", "dynspec", store, "--field", "ZENITH", "-o", spectrum,
                     "--max-channel-noise", "0")
    assert result.exit_code == 0, result.err
    return open_dynspec(spectrum).compute()


def test_drift_scan_convert_dynspec_export_equal_a_fixed_centre(tmp_path, run_cli):
    """Through the commands, with noise: the drift scan's dynamic spectrum at the fixed
    simulation's centre is the fixed one's within noise; the exported MS has one field at that
    centre and the fixed simulation's UVW."""
    import casacore.tables as pt

    config = _config(n_integrations=6)
    fixed = lwa_files(tmp_path / "fixed", config)
    lwa_files(tmp_path / "drift", config.replace(drift_scan=True))
    spec = config.fields[0]
    want = _spectrum(run_cli, tmp_path / "fixed", tmp_path / "f")
    got = _spectrum(run_cli, tmp_path / "drift", tmp_path / "d", "--phase-centre",
                    _centre_text(spec.ra, spec.dec))
    n = want["n_baselines"].values
    assert np.array_equal(got["n_baselines"].values, n) and n.min() == 45
    # Each spectrum's noise in I: noise / sqrt(2) per real part, / sqrt(2) for (XX + YY) / 2,
    # / sqrt(n) baselines; the two noise draws differ by the rephasing's rotation, so their
    # difference is at most sqrt(2) of it
    floor = config.noise / 2 / np.sqrt(n)
    ratios = {name: math.sqrt(np.mean((got[name].values - want[name].values) ** 2 / floor ** 2))
              for name in ("I", "XX", "YY")}
    assert max(ratios.values()) < math.sqrt(2) * 1.1, ratios
    assert np.abs(want["I"].values).max() > 20 * floor.max()   # the sky is far above the noise

    result = run_cli("export", tmp_path / "d" / "store.zarr", tmp_path / "drift.ms")
    assert result.exit_code == 0, result.err
    with pt.table(str(tmp_path / "drift.ms" / "FIELD"), ack=False) as field:
        assert field.nrows() == 1
        np.testing.assert_allclose(field.getcol("PHASE_DIR")[0, 0], [spec.ra, spec.dec], rtol=0, atol=1e-9)
    with pt.table(str(tmp_path / "drift.ms"), ack=False) as ms:
        times, a1, a2, uvw = (ms.getcol(c) for c in ("TIME", "ANTENNA1", "ANTENNA2", "UVW"))
    positions = fixed.datasets[0][S.ANTENNA_POSITION].values
    unique = np.unique(times)
    expected = geometry.uvw(positions, a1, a2, unique, spec.ra, spec.dec)   # (time, row, uvw)
    np.testing.assert_allclose(uvw, expected[np.searchsorted(unique, times), np.arange(times.size)],
                               rtol=0, atol=1e-6)
    print(f"drift vs fixed: rms difference / Stokes I noise of one spectrum {ratios}; sky rms "
          f"{np.sqrt(np.mean(want['I'].values ** 2)):.0f} Jy, noise {floor.mean():.1f} Jy")
