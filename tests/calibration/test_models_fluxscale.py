"""Flux models, fluxscale and the phase-referencing sequence, closed loop."""

import numpy as np
import pytest
import xarray as xr

from .conftest import make_partition, random_gains
from radiocal.calibration.dataset import solve
from radiocal.calibration.fluxscale import fit_spectrum, fluxscale
from radiocal.calibration.models import model_visibilities, resolve_model
from radiocal.calibration.config import CalibrateConfig, SolveOptions
from radiocal.calibration.workflow import calibrate, merge_tables
from radiocal.errors import ConfigError, SelectionError
from radiocal.model.flux_standards import FluxModel, parse_manual_model, standard_model
from radiocal.store import caltables as C
from radiocal.store import schema as S


def test_manual_model_parsing_and_spectrum():
    model = parse_manual_model("15.0,-0.5,1.4GHz")
    assert model.flux == 15.0 and model.alpha == -0.5 and model.ref_frequency == 1.4e9
    np.testing.assert_allclose(model([1.4e9, 2.8e9]), [15.0, 15.0 * 2 ** -0.5])
    assert parse_manual_model("2.5").alpha == 0.0
    assert parse_manual_model("1,0,1400MHz").ref_frequency == 1.4e9
    for bad in ("abc", "1,x", "1,0,1.4parsecs", "-1,0,1GHz"):
        with pytest.raises(ConfigError):
            parse_manual_model(bad)


def test_perley_butler_2017_standard():
    model = standard_model("J1331+3030")
    assert model is not None and "3C286" in model.name
    # log10 S = sum a_k log10(nu_GHz)^k: at 1 GHz only a0 remains
    np.testing.assert_allclose(model([1e9]), [10 ** 1.2481])
    for name in ("3C48", "3C138", "3C147", "3c286"):
        flux = standard_model(name)(np.array([1.4e9, 5e9]))
        assert (flux > 0).all() and flux[0] > flux[1]     # all steep-spectrum at L/C band
    with pytest.raises(ConfigError):
        standard_model("J0000+0000")
    assert resolve_model("standard", "3C48").name.endswith("3C48")
    assert resolve_model(2.0).flux == 2.0


def test_model_visibilities(rng):
    ds = make_partition(np.ones((2, 3, 4, 2)))
    mv = model_visibilities(ds, FluxModel(flux=2.0, alpha=-1.0, ref_frequency=1.3e9)).compute()
    freqs = ds[S.FREQUENCY].values
    np.testing.assert_allclose(mv[0, 0, :, 0], 2.0 * (freqs / 1.3e9) ** -1.0, rtol=1e-6)
    assert (mv[..., 1] == 0).all() and (mv[..., 2] == 0).all()
    np.testing.assert_allclose(model_visibilities(ds, None).compute()[..., 0], 1.0)
    column = ds.assign({S.VISIBILITY_MODEL: ds[S.VISIBILITY] * 0 + 7})
    np.testing.assert_allclose(model_visibilities(column, None).compute(), 7.0)


def test_fluxscale_recovers_a_secondary_flux(rng):
    g = random_gains(rng, 2, 6, 4, 2)
    parts = [make_partition(g, flux=10.0, field_id=0, field_name="FLUX", scan=1, noise=0.01,
                            seed=1),
             make_partition(g, flux=1.7, field_id=1, field_name="PHASE", scan=2, t0=5e9 + 100,
                            noise=0.01, seed=2)]
    amp = merge_tables([solve(parts[:1], "G", SolveOptions(solint="inf", refant="ea01"),
                              model=10.0),
                        solve(parts[1:], "G", SolveOptions(solint="inf", refant="ea01"),
                              model=1.0)])
    for method in ("interpolate", "mean", "fit"):
        scaled, results = fluxscale(amp, "FLUX", ["PHASE"], method=method)
        assert abs(results["PHASE"].flux[0] / 1.7 - 1) < 0.005
        assert "PHASE" in results["PHASE"].summary()
    rows = scaled[0][C.SOL_FIELD].values == 1
    np.testing.assert_allclose(np.abs(scaled[0][C.GAIN].values[rows]),
                               np.abs(amp[0][C.GAIN].values[~rows]), rtol=0.01)
    with pytest.raises(ConfigError):
        fluxscale(amp, "FLUX", ["NOPE"])


def test_fluxscale_drift_fit_beats_time_averaging(rng):
    """Gains drifting in time: the joint drift fit recovers S, the time-averaged ratio cannot."""
    nant, nt = 6, 6
    drift = 1 + 0.004 * np.arange(3 * nt)                       # 0.4% per integration
    phase = np.exp(1j * rng.uniform(-np.pi, np.pi, (1, nant, 1, 2)))
    amp0 = rng.uniform(0.8, 1.2, (1, nant, 1, 2))
    g = drift[:, None, None, None] * amp0 * phase                # (time, antenna, 1, hand)
    ref = make_partition(g[:nt], flux=10.0, field_id=0, field_name="FLUX", scan=1, t0=0.0,
                         noise=0.005, seed=1)
    far = make_partition(g[2 * nt:], flux=1.7, field_id=1, field_name="PHASE", scan=3,
                         t0=20.0 * nt, noise=0.005, seed=2)
    amp = merge_tables([solve([ref], "G", SolveOptions(solint="int", refant="ea01"), model=10.0),
                        solve([far], "G", SolveOptions(solint="int", refant="ea01"), model=1.0)])
    fit = fluxscale(amp, "FLUX", ["PHASE"], method="fit", degree=2, local=True)[1]["PHASE"]
    mean = fluxscale(amp, "FLUX", ["PHASE"], method="mean")[1]["PHASE"]
    assert abs(fit.flux[0] / 1.7 - 1) < 0.005
    assert abs(mean.flux[0] / 1.7 - 1) > 0.05



def test_fluxscale_without_transfer_fields(rng):
    """One calibrator for every role (ATCA's 1934-638 alone): nothing to bootstrap, for every
    method; the drift fit stacked an empty list of fields and raised ValueError."""
    g = random_gains(rng, 1, 6, 4, 2)
    ref = make_partition(g, flux=10.0, field_id=0, field_name="FLUX", scan=1, noise=0.01, seed=1)
    amp = solve([ref], "G", SolveOptions(solint="int", refant="ea01"), model=10.0)
    for method in ("interpolate", "mean", "fit"):
        scaled, results = fluxscale(amp, "FLUX", [], method=method, local=True)
        assert results == {}
        np.testing.assert_array_equal(scaled[0][C.GAIN].values, amp[0][C.GAIN].values)


def test_fluxscale_bridges_to_a_scan_with_solutions(rng):
    """The transfer field's scan nearest the reference has every row flagged (FLAG_ROW set at
    the telescope): the drift fit bridges to its next scan instead of finding nothing."""
    g = random_gains(rng, 1, 6, 4, 2)
    ref = make_partition(g, flux=10.0, field_id=0, field_name="FLUX", scan=1, noise=0.01, seed=1)
    near = make_partition(g, flux=1.7, field_id=1, field_name="PHASE", scan=2, t0=5e9 + 100,
                          noise=0.01, seed=2)
    near = near.assign({S.FLAG: near[S.FLAG] | True})
    far = make_partition(g, flux=1.7, field_id=1, field_name="PHASE", scan=4, t0=5e9 + 400,
                         noise=0.01, seed=3)
    amp = merge_tables([solve([ref], "G", SolveOptions(solint="inf", refant="ea01"), model=10.0),
                        solve([near, far], "G", SolveOptions(solint="inf", refant="ea01"),
                              model=1.0)])
    for method, local in (("fit", True), ("fit", False), ("interpolate", False)):
        result = fluxscale(amp, "FLUX", ["PHASE"], method=method, local=local)[1]["PHASE"]
        assert abs(result.flux[0] / 1.7 - 1) < 0.005, (method, local, result.flux)



def test_one_source_under_two_field_ids(rng):
    """Concatenated observations may list a source in two FIELD rows (positions a little
    apart): fluxscale, its rescaling and gainfield take every id of the name."""
    from radiocal.calibration.jones import _field_rows
    from radiocal.calibration.workflow import rescale

    g = random_gains(rng, 1, 6, 4, 2)
    ref = make_partition(g, flux=10.0, field_id=0, field_name="FLUX", scan=1, noise=0.01, seed=1)
    first, second = (make_partition(g, flux=1.7, field_id=fid, field_name="PHASE", scan=scan,
                                    t0=5e9 + 100 * scan, noise=0.01, seed=fid)
                     for fid, scan in ((1, 2), (3, 4)))
    amp = merge_tables([solve([ref], "G", SolveOptions(solint="inf", refant="ea01"), model=10.0),
                        solve([first, second], "G", SolveOptions(solint="inf", refant="ea01"),
                              model=1.0)])
    tds = amp[0]
    assert sorted(C.field_ids(tds, "PHASE")) == [1, 3]
    for method in ("fit", "mean"):
        scaled, flux = fluxscale(amp, "FLUX", ["PHASE"], method=method, local=True)
        assert abs(flux["PHASE"].flux[0] / 1.7 - 1) < 0.005, (method, flux["PHASE"].flux)
        rows = tds[C.SOL_FIELD].values != 0
        for table in (scaled, rescale(amp, flux)):
            np.testing.assert_allclose(np.abs(table[0][C.GAIN].values[rows]),
                                       np.abs(tds[C.GAIN].values[rows]) / np.sqrt(flux["PHASE"].flux[0]),
                                       rtol=1e-5)
    np.testing.assert_array_equal(_field_rows(tds, ref, "PHASE"), tds[C.SOL_FIELD].values != 0)


def test_fit_spectrum():
    freqs = {0: 1e9, 1: 2e9, 2: 4e9}
    flux = {k: 3.0 * (v / 2e9) ** -0.7 for k, v in freqs.items()}
    s0, alpha, nu0 = fit_spectrum(freqs, flux, {k: 0.01 for k in freqs})
    np.testing.assert_allclose(alpha, -0.7)
    np.testing.assert_allclose(s0 * (2e9 / nu0) ** alpha, 3.0)
    assert fit_spectrum({0: 1e9}, {0: 1.0}, {0: 0.1}) is None


def test_calibrate_sequence_closed_loop():
    sim_mod = pytest.importorskip("radiocal.simulate")
    config = sim_mod.SimConfig(n_antennas=7, noise=0.02, schedule=((0, 4), (1, 3), (2, 4), (1, 3)),
                               seed=3)
    sim = sim_mod.simulate(config)
    names = [str(n) for n in sim.datasets[0][S.ANTENNA_NAME].values]
    cfg = CalibrateConfig(fluxcal="J1331+3030", phasecal="J1407+2827", targets=("STAR",),
                          fluxcal_model="15.0,-0.5,1.4GHz", refant=names[0])
    out, tables, flux = calibrate(sim.datasets, cfg)
    freq = sim.datasets[0][S.FREQUENCY].values.mean()
    assert abs(flux["J1407+2827"].flux[0] / (2.5 * (freq / 1.4e9) ** -0.3) - 1) < 0.01
    assert set(tables) >= {"bpphase", "bandpass", "phase_int", "phase_inf", "amp", "flux"}
    for ds in out:
        if ds.attrs[S.ATTR_FIELD_NAME] == "STAR":
            continue
        model = sim.truth.model[ds.attrs[S.ATTR_PARTITION]][..., [0, 3]]
        resid = (ds[S.VISIBILITY_CORRECTED].values[..., [0, 3]] - model)
        # within a few per cent of the source: amplitude solutions are per scan (solint inf)
        assert np.sqrt(np.mean(np.abs(resid) ** 2)) < 0.02 * np.abs(model).mean()
    with pytest.raises(SelectionError):
        calibrate(sim.datasets, CalibrateConfig(fluxcal="NOPE", phasecal="J1407+2827"))


def test_calibrate_skips_a_spw_without_common_antennas(caplog):
    """The phase calibrator wholly flagged in one spw (CARMA's upper band): that spw gets no
    flux scale and is skipped with a warning, its targets flagged on apply (CASA's applycal
    without solutions); the other spw's tables and data are those of a run without it."""
    sim_mod = pytest.importorskip("radiocal.simulate")
    config = sim_mod.SimConfig(n_antennas=7, noise=0.02, n_correlations=2, seed=3,
                               spws=((1.30e9, 4.0e6, 8), (1.40e9, 4.0e6, 8)),
                               schedule=((0, 4), (1, 3), (2, 4), (1, 3)))
    datasets = sim_mod.simulate(config).datasets
    names = [str(n) for n in datasets[0][S.ANTENNA_NAME].values]
    cfg = CalibrateConfig(fluxcal="J1331+3030", phasecal="J1407+2827", targets=("STAR",),
                          fluxcal_model="15.0,-0.5,1.4GHz", refant=names[0])

    def spw(ds):
        return int(ds.attrs[S.ATTR_SPW_ID])

    def phasecal_flagged(ds, spws):
        if ds.attrs[S.ATTR_FIELD_NAME] == cfg.phasecal and spw(ds) in spws:
            return ds.assign({S.FLAG: ds[S.FLAG] | True})
        return ds

    with caplog.at_level("WARNING", logger="radiocal.calibration.workflow"):
        out, tables, flux = calibrate([phasecal_flagged(ds, {1}) for ds in datasets], cfg)
    assert "no common unflagged antennas for 'J1407+2827' and 'J1331+3030' in spw 1" in caplog.text
    alone_out, alone_tables, alone_flux = calibrate([ds for ds in datasets if spw(ds) == 0], cfg)
    assert flux[cfg.phasecal].skipped == (1,) and set(flux[cfg.phasecal].flux) == {0}
    assert flux[cfg.phasecal].flux == alone_flux[cfg.phasecal].flux
    for name, table in alone_tables.items():
        xr.testing.assert_identical(tables[name][0], table[0])
    for name in ("flux", "flux_cal"):
        tds = tables[name][1]
        rows = tds[C.SOL_FIELD].values == C.field_ids(tds, cfg.phasecal)[0]
        assert tds[C.SOL_FLAG].values[rows].all() and not tds[C.SOL_FLAG].values[~rows].all()
    alone = {ds.attrs[S.ATTR_PARTITION]: ds for ds in alone_out}
    for ds in out:
        if spw(ds) == 0:
            mine = alone[ds.attrs[S.ATTR_PARTITION]]
            for var in (S.VISIBILITY_CORRECTED, S.FLAG, S.WEIGHT):
                np.testing.assert_array_equal(ds[var].values, mine[var].values)
        elif ds.attrs[S.ATTR_FIELD_NAME] == "STAR":
            assert ds[S.FLAG].values.all()
        elif ds.attrs[S.ATTR_FIELD_NAME] == cfg.fluxcal:
            assert not ds[S.FLAG].values.all()     # its own gains need no flux scale
    with pytest.raises(ConfigError, match="in any spw"):
        calibrate([phasecal_flagged(ds, {0, 1}) for ds in datasets], cfg)
