"""The calibrate sequence's gain transfer onto targets, closed loop on simulated drifting gains."""

import dataclasses

import numpy as np
import xarray as xr
import pytest

from radiocal.calibration.config import CalibrateConfig
from radiocal.calibration.workflow import calibrate
from radiocal.errors import ConfigError
from radiocal.store import schema as S


def test_target_interp_must_be_a_known_choice():
    with pytest.raises(ConfigError, match="target_interp"):
        CalibrateConfig(fluxcal="A", phasecal="B", target_interp="cubic")
    assert CalibrateConfig().target_interp == "hermite"


def test_target_gains_follow_the_drift_between_phase_calibrator_scans():
    """Gains drifting on the simulator's ~15-minute timescale: the target's calibrated
    visibilities match the true sky far better through the phase calibrator's per-scan rates
    (hermite) than along the chord between its scans (linear, CASA's recipe)."""
    sim_mod = pytest.importorskip("radiocal.simulate")
    config = sim_mod.SimConfig.vla_small_like(
        n_antennas=6, spws=((1.3e9, 4e6, 8),), dead_antenna=None, rfi_channels=0, rfi_bursts=0,
        rfi_spike_fraction=0.0, noise=0.01, bandpass_rolloff=0.0, seed=11)
    sim = sim_mod.simulate(config)
    names = [f.name for f in config.fields]
    base = CalibrateConfig(fluxcal=names[0], phasecal=names[1], targets=(names[2],),
                           fluxcal_model="15.0,-0.5,1.4GHz")
    rms = {}
    for interp in ("linear", "hermite"):
        out, _, _ = calibrate(sim.datasets, dataclasses.replace(base, target_interp=interp))
        resid = []
        for ds in out:
            if ds.attrs[S.ATTR_FIELD_NAME] == names[2]:
                model = sim.truth.model[ds.attrs[S.ATTR_PARTITION]][..., [0, 3]]
                good = ~ds[S.FLAG].values[..., [0, 3]]
                resid.append((ds[S.VISIBILITY_CORRECTED].values[..., [0, 3]] - model)[good])
        rms[interp] = float(np.sqrt(np.mean(np.abs(np.concatenate(resid)) ** 2)))
    # the noise alone leaves ~0.01 Jy; linear interpolation leaves several times that
    print("target residual rms (Jy):", rms)
    assert rms["hermite"] < 0.5 * rms["linear"], rms
    assert rms["hermite"] < 2.0 * config.noise, rms


def test_fluxcal_scans_last_solves_on_the_flux_calibrators_last_visit_only():
    """ATA's recipe: of two flux-calibrator visits, only the last one feeds the solutions."""
    from radiocal.calibration.workflow import solve_sequence
    from radiocal.store import caltables as C
    from radiocal.simulate import SimConfig, simulate

    sim = simulate(SimConfig(n_antennas=5, spws=((1.3e9, 4e6, 4),), schedule=((0, 2), (1, 2), (2, 2),
                                                                              (0, 2), (1, 2)),
                             noise=0.02, seed=5))
    names = [f.name for f in sim.config.fields]
    scans = sorted({ds.attrs[S.ATTR_SCAN] for ds in sim.datasets if ds.attrs[S.ATTR_FIELD_NAME] == names[0]})
    assert len(scans) == 2
    base = CalibrateConfig(fluxcal=names[0], phasecal=names[1], fluxcal_model="15.0,-0.5,1.4GHz")
    with pytest.raises(ConfigError, match="fluxcal_scans"):
        dataclasses.replace(base, fluxcal_scans="first")
    for choice, expected in (("all", scans), ("last", scans[-1:])):
        tables, _ = solve_sequence(sim.datasets, dataclasses.replace(base, fluxcal_scans=choice))
        flux_id = tables["phase_int"][0].attrs[C.ATTR_FIELD_NAMES].index(names[0])
        solved = set()
        for tds in tables["phase_int"]:
            mine = tds[C.SOL_FIELD].values == tds.attrs[C.ATTR_FIELD_IDS][flux_id]
            solved |= set(tds[C.SOL_SCAN].values[mine].tolist())
        assert sorted(solved) == expected, choice


def test_fluxcal_scans_last_is_the_last_visit_when_observations_reuse_scan_numbers():
    """Two observations each numbering their scans from 1 (one partition may then hold scan 1
    of both): 'last' is the second observation's visit only."""
    from radiocal.calibration.workflow import _last_scan_of
    from radiocal.simulate import SimConfig, simulate

    sim = simulate(SimConfig(n_antennas=4, spws=((1.3e9, 4e6, 2),), n_correlations=1,
                             schedule=((0, 2), (1, 2), (0, 3), (1, 2)), seed=5))
    flux = sim.config.fields[0].name
    parts = []
    for ds in sim.datasets:     # scans 3-4 become the second observation's scans 1-2
        second = ds.attrs[S.ATTR_SCAN] > 2
        parts.append(ds.assign_coords({S.OBSERVATION_ID: (S.TIME, np.full(
            ds.sizes[S.TIME], int(second), np.int32))}))
        parts[-1].attrs[S.ATTR_SCAN] -= 2 * second
    merged = xr.concat([p for p in parts if p.attrs[S.ATTR_FIELD_NAME] == flux], dim=S.TIME,
                       data_vars="minimal", coords="minimal", compat="override",
                       combine_attrs="override")
    others = [p for p in parts if p.attrs[S.ATTR_FIELD_NAME] != flux]
    for given in ([merged] + others, parts):
        kept = [ds for ds in _last_scan_of(given, flux) if ds.attrs[S.ATTR_FIELD_NAME] == flux]
        assert [ds.sizes[S.TIME] for ds in kept] == [3]
        assert kept[0][S.OBSERVATION_ID].values.tolist() == [1, 1, 1]


def test_calibrate_hands_over_each_table_once_as_soon_as_it_is_final(monkeypatch):
    """The step writes tables while the sequence goes on: each table reaches ``solved`` once,
    the bandpass's before the phases' pass, the phases' before the amplitudes' pass."""
    from radiocal.calibration import workflow
    from radiocal.simulate import SimConfig, simulate

    sim = simulate(SimConfig(n_antennas=5, spws=((1.3e9, 4e6, 4),), noise=0.02, seed=5))
    names = [f.name for f in sim.config.fields]
    passes = []
    joint = workflow.solve_jointly

    def counted(requests):
        passes.append(len(requests))
        return joint(requests)

    monkeypatch.setattr(workflow, "solve_jointly", counted)
    handed = []
    _, tables, _ = calibrate(
        sim.datasets, CalibrateConfig(fluxcal=names[0], phasecal=names[1], targets=(names[2],),
                                      fluxcal_model="15.0,-0.5,1.4GHz"),
        solved=lambda name, table: handed.append((name, table, len(passes))))
    assert [name for name, _, _ in handed] == list(tables)
    assert all(table is tables[name] for name, table, _ in handed)
    when = {name: done for name, _, done in handed}
    # bpphase and bandpass are solve() calls of their own; the phases' pass is the first joint one
    assert when["bpphase"] == when["bandpass"] == 0
    assert when["phase_int"] == when["phase_inf"] == 1
    assert when["amp"] == when["amp_cal"] == when["flux"] == when["flux_cal"] == 2
