"""Fixtures of the pipeline tests: a small simulated phase-referencing MS."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_phaseref(tmp_path_factory):
    """The simulator's default tiny phase-referencing MS (6 antennas, 16 channels, 4 scans) and
    its target's sky model; returns (ms, skymodel, SimConfig)."""
    from radiocal.simulate import SimConfig, simulate_ms

    config = SimConfig(seed=5)
    root = tmp_path_factory.mktemp("phaseref_input")
    ms = root / "small.ms"
    sim = simulate_ms(ms, config)
    sky = root / "skymodel.txt"
    sky.write_text(sim.truth.sky.skymodel_text([f.name for f in config.fields].index("STAR")))
    return ms, sky, config
