"""Polarisation calibration closed loop: parallactic angle, KCROSS / Xf / Df, apply, Stokes V.

A linear-feed observation (8 antennas at the VLA, alt-az) of a 9.4 % polarised 3C286 seen over
~120 degrees of parallactic angle, an unpolarised phase calibrator and a circularly polarised
star, with a cross-hand phase and delay, 5 % leakages and drifting gains (the second hand's
gain a constant multiple of the first's, as in a real instrument). The sequence solves the
parallel hands, then the polarisation terms; they are compared with what the truth says they
must be after the parallel-hand solutions (the reference antenna's residual X-Y gain ratio
enters both), within the solves' own errors.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
import pytest

from radiocal.calibration.config import SolveOptions
from radiocal.astro import itrf, parallactic_angles
from radiocal.calibration import polmodels
from radiocal.calibration.jones import ApplyTable, apply, chain_jones
from radiocal.calibration.parang import dataset_parang
from radiocal.calibration.polapply import apply_polarized
from radiocal.calibration.polflow import solve_polarization_terms
from radiocal.calibration.workflow import CalibrateConfig, sequence_chain, solve_sequence
from radiocal.dynspec.config import DynspecConfig
from radiocal.dynspec.dataset import SCAN_COORD, dynamic_spectrum
from radiocal.ms import casa_caltables
from radiocal.store import caltables as C
from radiocal.store import schema as S
from radiocal.simulate import SimConfig, simulate
from radiocal.simulate.config import DEFAULT_FIELDS, VLA_START

VLA = (math.radians(-107.6184), math.radians(34.0784), 2124.0)
FRACTION, ANGLE = 0.094, math.radians(33.0)


def test_parallactic_angle_matches_casacore_measures():
    """Astropy's angle against casacore's apparent hour angle and declination and the
    geodetic latitude, at the VLA, for 3C286 over eight hours through transit."""
    cm = pytest.importorskip("casacore.measures")
    qa = pytest.importorskip("casacore.quanta")
    position = itrf(*VLA)
    ra, dec = math.radians(202.784533), math.radians(30.509155)
    times = VLA_START + np.arange(-4 * 3600, 4 * 3600, 1800.0)
    chi = parallactic_angles(times, position[None], ra, dec)[:, 0]
    dm = cm.measures()
    where = dm.position("ITRF", *[qa.quantity(x, "m") for x in position])
    lat = dm.measure(where, "WGS84")["m1"]["value"]
    dm.do_frame(where)
    source = dm.direction("J2000", qa.quantity(ra, "rad"), qa.quantity(dec, "rad"))
    want = []
    for t in times:
        dm.do_frame(dm.epoch("UTC", qa.quantity(t, "s")))
        hadec = dm.measure(source, "HADEC")
        h, d = hadec["m0"]["value"], hadec["m1"]["value"]
        want.append(math.atan2(math.sin(h), math.cos(d) * math.tan(lat)
                               - math.sin(d) * math.cos(h)))
    assert np.degrees(np.abs(np.angle(np.exp(1j * (chi - np.array(want)))))).max() < 0.01
    # through transit north of the zenith the angle sweeps from east to west
    assert chi[0] < -0.5 and chi[-1] > 0.5


def test_equatorial_mounts_do_not_rotate():
    sim = simulate(SimConfig(n_antennas=3, schedule=((0, 2),), spws=((1.3e9, 2e6, 2),)))
    ds = sim.datasets[0]
    mounts = np.array(["ALT-AZ", "EQUATORIAL", "alt-az+nasmyth-r"])
    chi = dataset_parang(ds.assign_coords({S.ANTENNA_MOUNT: (S.ANTENNA, mounts)})).compute()
    assert np.all(chi[:, 1] == 0) and np.all(np.abs(chi[:, [0, 2]]) > 0.01)


def test_perley_butler_2013_models():
    q, u = polmodels.fractional_qu("J1331+3030", [1.47e9])[0]
    assert math.hypot(q, u) == pytest.approx(0.098)
    assert math.degrees(math.atan2(u, q) / 2) == pytest.approx(33.0)
    q, u = polmodels.fractional_qu("3C138", [1.45e9])[0]
    assert math.hypot(q, u) == pytest.approx(0.075)
    assert math.degrees(math.atan2(u, q) / 2) == pytest.approx(-11.0)
    assert not polmodels.is_polarised("3C48", [1.4e9])         # Faraday-scrambled at L band
    assert polmodels.is_polarised("3C48", [5e9])
    stokes = polmodels.stokes_model("3C286", [1.47e9])
    assert stokes[0, 0] == pytest.approx(14.9, rel=0.02)       # Perley & Butler 2017


def _stokes(freqs):
    spec = DEFAULT_FIELDS[0]
    i = 15.0 * (np.asarray(freqs) / 1.4e9) ** spec.spectral_index
    out = np.zeros(np.shape(freqs) + (4,))
    out[..., 0] = i
    out[..., 1] = FRACTION * i * math.cos(2 * ANGLE)
    out[..., 2] = FRACTION * i * math.sin(2 * ANGLE)
    return out


@pytest.fixture(scope="module", params=["linear", "circular"])
def observed(request):
    cal = replace(DEFAULT_FIELDS[0], linear_fraction=FRACTION, polarization_angle=ANGLE)
    star = replace(DEFAULT_FIELDS[2], variability=0.0)
    schedule = tuple(s for _ in range(5) for s in ((0, 3), (1, 2), (2, 6), (1, 2)))
    config = SimConfig(n_antennas=8, feeds=request.param, spws=((1.30e9, 2e6, 16),),
                       schedule=schedule, scan_gap=900.0, start_time=VLA_START - 3 * 3600,
                       fields=(cal, DEFAULT_FIELDS[1], star), background=(), parallactic=True,
                       xy_phase=0.7, xy_delay=2e-9, leakage_rms=0.05, noise=0.05,
                       gain_timescale=3000.0)
    sim = simulate(config)
    datasets = [ds.chunk({S.TIME: 4}) for ds in sim.datasets]
    calib = CalibrateConfig(fluxcal="J1331+3030", phasecal="J1407+2827", targets=("STAR",))
    tables, _ = solve_sequence(datasets, calib)
    outcome = solve_polarization_terms(
        datasets, tables, calibrators=["J1331+3030", "J1407+2827"], fluxcal="J1331+3030",
        fluxcal_model="standard", stokes=_stokes)
    return sim, datasets, calib, tables, outcome


def _residual_xy_ratio(sim, datasets, prior):
    """Per channel: the true gain of the second hand over the first, divided by the same
    ratio of the solved parallel-hand chain, averaged over the calibrator's integrations and
    antennas; the solves reference both hands to the reference antenna, so this ratio is what
    is left in the cross hands for Xf and Df to find."""
    ratios = []
    for ds in datasets:
        solved = chain_jones(ds, prior)[0].compute()                   # (t, a, f, hand)
        true = sim.truth.jones(ds).transpose(0, 1, 3, 2)
        left = true / solved
        ratios.append((left[..., 1] / left[..., 0]).reshape(-1, left.shape[2]))
    return np.nanmean(np.concatenate(ratios), axis=0)


def test_cross_hand_phase_and_leakage_recovered(observed):
    sim, datasets, _, tables, outcome = observed
    assert outcome.terms is not None, outcome.decisions
    linear = sim.config.feeds == "linear"
    assert any(("absolute" if linear else "relative") in line for line in outcome.decisions)
    cal = [ds for ds in datasets if ds.attrs[S.ATTR_FIELD_NAME] == "J1331+3030"]
    prior = [ApplyTable(tables["bandpass"]), ApplyTable(outcome.tables["pol_gain"])]
    r = _residual_xy_ratio(sim, cal, prior)
    freqs = cal[0][S.FREQUENCY].values
    # X = diag(xi, 1) after the parallel hands: xi = x / r, d_x' = d_x / r, d_y' = d_y r,
    # then CASA's frame (KCROSS before D): d_x / k, d_y k
    xi_true = np.exp(1j * sim.truth.xy_phase[0, :freqs.size]) / r
    kc = outcome.tables["kcross"][0]
    tau = kc[C.DELAY].values[0, 0, 0, 0]
    k = np.exp(2j * np.pi * tau * (freqs - kc.attrs[C.ATTR_DELAY_REF]))
    xf = outcome.tables["xf"][0]
    xi = k * xf[C.GAIN].values[0, 0, :, 0]
    err = xf[C.PARAMERR].values[0, 0, :, 0]
    z = np.angle(xi / xi_true) / err
    assert np.abs(z).max() < 4 and np.sqrt(np.mean(z ** 2)) < 1.5, z
    df = outcome.tables["df"][0]
    d = df[C.GAIN].values[0]                                       # (antenna, frequency, 2)
    d_err = df[C.PARAMERR].values[0]                               # (antenna, frequency, 2)
    want_x = sim.truth.leakage[:, :1] / r[None]
    want_y = sim.truth.leakage[:, 1:] * r[None]
    if not linear:      # relative leakages: d_x + c, d_y - conj(c) with d_x = 0 on the refant
        offset = want_x[int(df[C.SOL_REFANT].values[0])].copy()
        want_x, want_y = want_x - offset, want_y + np.conj(offset)
    want_x, want_y = want_x / k[None], want_y * k[None]
    for hand, want in enumerate((want_x, want_y)):
        got, err = d[..., hand], d_err[..., hand]
        fixed = err == 0                     # the reference antenna's d_x when relative
        assert np.all(got[fixed] == 0)
        assert fixed.sum() == (freqs.size if hand == 0 and not linear else 0)
        z = np.abs(got - want)[~fixed] / err[~fixed]
        # |complex error| / its rms is Rayleigh: P(> 4) = exp(-16) per value. The rms is
        # 1.0-1.25 (first-order solve, gains from solutions per integration)
        assert z.max() < 4 and np.sqrt(np.mean(z ** 2)) < 1.5, (z.max(), np.sqrt(np.mean(z ** 2)))
        # a leakage held at zero must not flag its antenna's data
        assert not df[C.SOL_FLAG].values.any()


@pytest.mark.parametrize("calibrators", [["J1331+3030"], ["J1331+3030", "J1407+2827"]])
def test_unpolarised_calibrator_applies_nothing(calibrators):
    """A calibrator named 3C286 whose cross hands hold no signal: no terms, and the log says
    why (the simulator's default observation: circular feeds, four correlations). The
    unpolarised phase calibrator J1407+2827 among the calibrators changes nothing: with circular
    feeds it does not join the solve, and a polarised calibrator contradicting its model stops
    the polarisation calibration, Df on the unpolarised one included."""
    sim = simulate(SimConfig(seed=2))
    calib = CalibrateConfig(fluxcal="J1331+3030", phasecal="J1407+2827", targets=("STAR",))
    tables, _ = solve_sequence(sim.datasets, calib)
    outcome = solve_polarization_terms(sim.datasets, tables, calibrators=calibrators,
                                       fluxcal="J1331+3030", fluxcal_model="standard")
    assert outcome.terms is None and outcome.tables == {}
    assert any("do not show the model's polarisation" in line for line in outcome.decisions)
    assert not any("J1407+2827" in line for line in outcome.decisions), outcome.decisions


def _star_v(sim, spec):
    idx = np.searchsorted(sim.truth.times, spec[S.TIME].values)
    return sim.truth.star_V[np.minimum(idx, sim.truth.times.size - 1), 0, :spec.sizes[S.FREQUENCY]]


def test_stokes_v_of_linear_feeds_after_polarisation_calibration(observed, caplog):
    sim, datasets, calib, tables, outcome = observed
    target = [ds for ds in datasets if ds.attrs[S.ATTR_FIELD_NAME] == "STAR"]
    chain = sequence_chain(tables, calib)
    spec = dynamic_spectrum(apply_polarized(target, chain, outcome.terms),
                            DynspecConfig(field="STAR")).compute()
    spec = spec.isel({S.TIME: spec[SCAN_COORD].values >= 0})      # not the blank gap rows
    value, err = spec["V"].values, spec["V_err"].values
    ok = np.isfinite(value) & np.isfinite(err)
    assert ok.mean() > 0.75                                     # band edges are blanked
    residual = np.sqrt(np.mean((value - _star_v(sim, spec))[ok] ** 2))
    floor = np.sqrt(np.mean(err[ok] ** 2))
    assert residual < 1.10 * floor, (residual, floor)
    # without the cross-hand solve V is not written, and the log says why in one line
    with caplog.at_level(logging.INFO, logger="radiocal"):
        plain = dynamic_spectrum(apply(target, chain), DynspecConfig(field="STAR"))
    lines = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
    if sim.config.feeds == "linear":
        assert "V" not in plain and "U" not in plain and "I" in plain
        assert len(lines) == 1 and "X-Y" in lines[0] and "\n" not in lines[0], lines
    else:       # V of circular feeds needs no cross-hand phase; Q and U do
        assert "V" in plain and "Q" not in plain and "U" not in plain
        assert len(lines) == 1 and "R-L" in lines[0], lines


def test_polarisation_tables_open_in_casacore(observed, tmp_path):
    ct = pytest.importorskip("casacore.tables")
    sim, _, _, _, outcome = observed
    expect = {"kcross": ("Kcross Jones", "FPARAM", (1, 2)), "xf": ("Xf Jones", "CPARAM", (16, 1)),
              "df": ("Df Jones", "CPARAM", (16, 2))}
    for name, (viscal, column, shape) in expect.items():
        path = tmp_path / f"cal.{name}"
        casa_caltables.write_casa_table(outcome.tables[name], path)
        with ct.table(str(path), ack=False) as t:
            assert t.getkeyword("VisCal") == viscal
            assert t.getkeyword("PolBasis") == sim.config.feeds
            assert t.info()["type"] == "Calibration"      # what CASA's applycal checks
            assert t.nrows() == 8
            assert t.getcell(column, 0).shape == shape
        back = casa_caltables.read_casa_table(path)
        var = C.DELAY if name == "kcross" else C.GAIN
        np.testing.assert_allclose(back[0][var].values, outcome.tables[name][0][var].values,
                                   rtol=1e-6, atol=1e-15)


def test_model_blocks_are_made_inside_the_solve(observed):
    """A gain solve against the polarised calibrator's model makes each model block inside
    the task that accumulates its chunk (as tasks of their own, model blocks were made ahead of
    the solve, or held their visibilities' read until both had used it), with the solutions of
    the model computed on its own."""
    import dask.array as da

    from radiocal.calibration.dataset import solve_graph
    from radiocal.calibration.polcal import polarized_model

    _, datasets, *_ = observed
    ds = next(d for d in datasets if d.attrs[S.ATTR_FIELD_NAME] == "J1331+3030")
    ds = ds.chunk({S.TIME: 1})
    model = polarized_model(ds, _stokes)
    assert model.chunks == ds[S.VISIBILITY].data.chunks
    inside = solve_graph([ds.assign({S.VISIBILITY_MODEL: (ds[S.VISIBILITY].dims, model)})], "G",
                         SolveOptions(solint="int"), model="column").packed
    assert not any(isinstance(k, tuple) and k[0] == model.name for k in inside.__dask_graph__())
    computed = da.from_array(model.compute(), chunks=model.chunks)
    alone = solve_graph([ds.assign({S.VISIBILITY_MODEL: (ds[S.VISIBILITY].dims, computed)})], "G",
                        SolveOptions(solint="int"), model="column").packed
    np.testing.assert_array_equal(inside.compute(), alone.compute())


@pytest.mark.parametrize("feeds", ["linear", "circular"])
def test_leakages_from_unpolarised_calibrators_alone(feeds):
    """No polarised calibrator: 3C147 (unpolarised below 4 GHz) as flux calibrator and
    J1407+2827 (OQ208) as phase calibrator, 5% leakages, a cross-hand phase and alt-az feeds.
    The sequence solves Df on both (CASA's poltype 'Df' on unpolarised sources: relative
    leakages), applies it with no Xf, and the leakages match the injected ones within their
    errors. The cross-hand phase and the feed rotation leave an unpolarised source's cross
    hands, so only the parallel-hand solutions' residual X-Y ratio enters the comparison."""
    fluxcal = replace(DEFAULT_FIELDS[0], name="J0542+4951")
    config = SimConfig(n_antennas=8, feeds=feeds, spws=((1.30e9, 2e6, 16),),
                       schedule=((0, 6), (1, 4), (2, 6), (1, 4)), seed=5,
                       fields=(fluxcal, DEFAULT_FIELDS[1], DEFAULT_FIELDS[2]), background=(),
                       parallactic=True, xy_phase=0.7, xy_delay=2e-9, leakage_rms=0.05,
                       noise=0.05)
    sim = simulate(config)
    calib = CalibrateConfig(fluxcal="J0542+4951", phasecal="J1407+2827", targets=("STAR",),
                            fluxcal_model="15,-0.5,1.4GHz")
    tables, _ = solve_sequence(sim.datasets, calib)
    outcome = solve_polarization_terms(
        sim.datasets, tables, calibrators=["J0542+4951", "J1407+2827"],
        fluxcal="J0542+4951", fluxcal_model=calib.fluxcal_model)
    assert any("no polarised calibrator" in line for line in outcome.decisions)
    assert any("solved on the unpolarised calibrator(s) J0542+4951, J1407+2827" in line
               for line in outcome.decisions), outcome.decisions
    assert sorted(outcome.tables) == ["df"]
    assert outcome.terms.xf is None and outcome.terms.df is not None and outcome.terms.parang
    cal = [ds for ds in sim.datasets if ds.attrs[S.ATTR_FIELD_NAME] == "J1407+2827"]
    prior = [ApplyTable(tables["bandpass"]),
             ApplyTable(tables["phase_int"], gainfield="J1407+2827"),
             ApplyTable(tables["amp_cal"], gainfield="J1407+2827")]
    r = _residual_xy_ratio(sim, cal, prior)
    df = outcome.tables["df"][0]
    d, d_err = df[C.GAIN].values[0], df[C.PARAMERR].values[0]       # (antenna, frequency, 2)
    want_x = sim.truth.leakage[:, :1] / r[None]
    want_y = sim.truth.leakage[:, 1:] * r[None]
    offset = want_x[int(df[C.SOL_REFANT].values[0])].copy()       # d_x = 0 on the refant
    want_x, want_y = want_x - offset, want_y + np.conj(offset)
    for hand, want in enumerate((want_x, want_y)):
        fixed = d_err[..., hand] == 0
        assert fixed.sum() == (d.shape[1] if hand == 0 else 0)
        z = np.abs(d[..., hand] - want)[~fixed] / d_err[..., hand][~fixed]
        assert z.max() < 4 and np.sqrt(np.mean(z ** 2)) < 1.5, (z.max(), np.sqrt(np.mean(z ** 2)))
    # applied: the data say leakage and parallactic angle, not the cross-hand phase
    target = [ds for ds in sim.datasets if ds.attrs[S.ATTR_FIELD_NAME] == "STAR"]
    done = apply_polarized(target, sequence_chain(tables, calib), outcome.terms)
    assert done[0].attrs[S.ATTR_POLCAL] == {"cross_hand_phase": False, "leakage": True,
                                            "parallactic_angle": True}
