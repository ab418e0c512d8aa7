"""The judged route (default flagging, calibrate, predict + subtract + dynspec) on a simulated
observation like ../shared/data/vla_small, with another seed: the star's I and V at the floor."""

import math

import numpy as np
import pytest

from radiocal.dynspec import dataset as D
from radiocal.dynspec.config import DynspecConfig
from radiocal.store import schema as S

simulator = pytest.importorskip("radiocal.simulate", reason="needs the project's simulator")


def floor_ratios(spec, truth):
    """rms error against truth over the floor sigma/sqrt(2)/sqrt(2 N_live), for I and V."""
    live = spec[D.SCAN_COORD].values >= 0
    ti = np.searchsorted(truth.times, spec[S.TIME].values[live])
    n = spec[D.N_BASELINES].values[live]
    out = {}
    for name in ("I", "V"):
        got = spec[name].values[live]
        want = getattr(truth, f"star_{name}")[ti, 0, :]
        ok = np.isfinite(got) & (n > 1)
        floor = truth.noise / math.sqrt(2) / np.sqrt(2 * n[ok])
        out[name] = math.sqrt(np.mean((got[ok] - want[ok]) ** 2)) / math.sqrt(np.mean(floor**2))
    return out


def test_vla_small_like_route_reaches_the_floor(tmp_path):
    pytest.importorskip("radiocal.flagging.step", reason="needs the flag step")
    pytest.importorskip("radiocal.calibration.step", reason="needs the calibration steps")
    from radiocal.engine.context import StepContext
    from radiocal.registry import all_steps, make_config

    sim = simulator.simulate(simulator.SimConfig.vla_small_like(seed=11))
    fluxcal, phasecal, target = (f.name for f in sim.config.fields)
    skymodel = tmp_path / "skymodel.txt"
    skymodel.write_text(sim.truth.sky.skymodel_text(2))
    steps = all_steps()
    context = StepContext.for_library(tmp_path)
    plan = [
        ("flag", {}),
        ("calibrate", {"fluxcal": fluxcal, "phasecal": phasecal, "targets": [target],
                       "fluxcal_model": "15,-0.5,1.4GHz", "calwt": True}),
    ]
    datasets = sim.datasets
    for name, options in plan:
        datasets = steps[name].run(datasets, make_config(steps[name], options), context)
    spectrum = D.dynamic_spectrum(datasets, DynspecConfig(field=target, skymodel=str(skymodel)))
    assert spectrum.attrs["data_column"] == S.VISIBILITY_CORRECTED
    spectrum = spectrum.compute()
    ratios = floor_ratios(spectrum, sim.truth)
    blanked = spectrum[D.CHANNEL_FLAG].values
    print("vla_small-like seed 11, radiocal flagging + calibration: rms error / floor", ratios,
          f"; channels blanked {np.flatnonzero(blanked).tolist()} of {blanked.size}")
    assert ratios["I"] < 1.10 and ratios["V"] < 1.10
    assert blanked.sum() <= blanked.size // 8


# What the excess is made of (seed 11): I is 1.18x on circular feeds too as soon as both hands
# drift together (the simulator's gains with an X-Y phase, even of 1e-6 rad and without
# leakage or feed rotation; independent hands: 1.05x), so it is the target's gain-transfer
# error adding coherently over the hands, not polarisation calibration. V of linear feeds is
# 1.19x without leakages and 1.33x with 5%.
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="issue 14's judged bound is not met with linear feeds: I 1.19x and "
                   "V 1.33x the floor (see the comment above)")
def test_linear_feeds_with_a_polarised_calibrator_reach_the_floor(tmp_path):
    """The same route on linear feeds: 3C286 with its Perley & Butler 2013 polarisation, an
    X-Y phase and delay, 5% leakages and alt-az feeds (issue 14: I and V within 1.10x)."""
    from dataclasses import replace

    from radiocal.calibration import polmodels
    from radiocal.engine.context import StepContext
    from radiocal.registry import all_steps, make_config

    base = simulator.SimConfig.vla_small_like()
    first, width, nchan = base.spws[0]
    q, u = polmodels.fractional_qu("3C286", [first + width * (nchan - 1) / 2])[0]
    cal = replace(base.fields[0], linear_fraction=float(np.hypot(q, u)),
                  polarization_angle=float(np.arctan2(u, q) / 2))
    config = simulator.SimConfig.vla_small_like(
        seed=11, feeds="linear", fields=(cal,) + base.fields[1:], parallactic=True,
        xy_phase=0.7, xy_delay=2e-9, leakage_rms=0.05)
    sim = simulator.simulate(config)
    fluxcal, phasecal, target = (f.name for f in config.fields)
    skymodel = tmp_path / "skymodel.txt"
    skymodel.write_text(sim.truth.sky.skymodel_text(2))
    steps, context = all_steps(), StepContext.for_library(tmp_path)
    datasets = sim.datasets
    for name, options in (("flag", {}), ("calibrate", {
            "fluxcal": fluxcal, "phasecal": phasecal, "targets": [target],
            "fluxcal_model": "15,-0.5,1.4GHz", "calwt": True})):
        datasets = steps[name].run(datasets, make_config(steps[name], options), context)
    spectrum = D.dynamic_spectrum(datasets, DynspecConfig(field=target, skymodel=str(skymodel)))
    ratios = floor_ratios(spectrum.compute(), sim.truth)
    print("linear feeds, polarised 3C286: rms error / floor", ratios)
    assert ratios["I"] < 1.10 and ratios["V"] < 1.10, ratios
