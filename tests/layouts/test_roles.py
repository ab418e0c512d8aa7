"""Calibrator and target roles from scan intents and calibrator names (radiocal.calibration.roles)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from radiocal.calibration.roles import flux_standard, infer_roles, require
from radiocal.errors import ConfigError
from radiocal.store import schema as S
from radiocal.simulate import FieldSpec, SimConfig, simulate

from ..conftest import SHARED_DATA

CARMA = SHARED_DATA / "real" / "carma_sza_3c273" / "carma_sza_3c273.ms"


@pytest.fixture(scope="module")
def observed():
    """The simulator's phase-referencing run: flux/bandpass calibrator, phase calibrator, STAR."""
    return simulate(SimConfig(n_antennas=3, spws=((1.3e9, 4e6, 2),), seed=1)).datasets


def _without_intents(datasets):
    out = []
    for ds in datasets:
        ds = ds.copy()
        ds.attrs[S.ATTR_INTENTS] = []
        out.append(ds)
    return out


def test_roles_from_intents(observed):
    roles = require(infer_roles(observed), [])
    assert (roles.fluxcal, roles.bpcal, roles.phasecal, roles.targets) == (
        "J1331+3030", "J1331+3030", "J1407+2827", ["STAR"])
    assert roles.why["fluxcal"] == "CALIBRATE_FLUX intent"
    assert roles.why["targets"] == "OBSERVE_TARGET intent"
    assert "phase calibrator J1407+2827" in roles.describe()


def test_roles_from_names_without_intents(observed):
    roles = require(infer_roles(_without_intents(observed)), [])
    assert (roles.fluxcal, roles.bpcal, roles.phasecal, roles.targets) == (
        "J1331+3030", "J1331+3030", "J1407+2827", ["STAR"])
    assert roles.why["fluxcal"] == "known flux standard 3C286"
    assert roles.why["phasecal"] == "the field visited most often"


def test_given_roles_win_and_are_not_reused(observed):
    roles = infer_roles(observed, targets=["J1407+2827"])
    assert roles.targets == ["J1407+2827"] and roles.phasecal == ""   # its intent says phase
    with pytest.raises(ConfigError, match="--phasecal"):
        require(roles, ["J1331+3030", "J1407+2827", "STAR"])
    roles = infer_roles(observed, phasecal="STAR")
    assert roles.phasecal == "STAR" and roles.targets == []
    with pytest.raises(ConfigError, match="NOPE"):
        infer_roles(observed, fluxcal="NOPE")


@pytest.mark.parametrize("name, standard", [
    ("3C286", "3C286"), ("J1331+3030", "3C286"), ("1331+305", "3C286"), ("3C48", "3C48"),
    ("J0137+3309", "3C48"), ("3c138", "3C138"), ("J0542+4951", "3C147"), ("3C196", "3C196"),
    ("J1411+5212", "3C295"), ("1934-638", "1934-638"), ("PKS 1934-638", "1934-638"),
    ("J1939-6342", "1934-638"), ("STAR", None), ("3C273", None)])
def test_flux_standard_names(name, standard):
    assert flux_standard(name) == standard


def test_flux_standard_by_name_among_other_fields():
    fields = (FieldSpec("1934-638", 5.1, -1.1, "flux"), FieldSpec("1921-293", 5.0, -0.5, "phase"),
              FieldSpec("SGR_TARGET", 4.6, -0.5, "target"))
    sim = simulate(SimConfig(n_antennas=3, spws=((1.3e9, 4e6, 2),), fields=fields,
                             schedule=((0, 2), (1, 1), (2, 2), (1, 1), (2, 2), (1, 1)), seed=1))
    roles = require(infer_roles(_without_intents(sim.datasets)), [])
    assert (roles.fluxcal, roles.phasecal, roles.targets) == ("1934-638", "1921-293", ["SGR_TARGET"])


def test_carma_roles_from_names():
    """CARMA/SZA writes no intents: 3C273 is a known bandpass calibrator, 1159+292 the only other
    sky field, NOISE (the noise source) no field at all; no flux standard was observed."""
    if not (CARMA / "table.dat").exists():
        pytest.skip(f"reference data absent: {CARMA}")
    from radiocal.ms.read import read_ms

    datasets = read_ms([str(CARMA)])
    roles = infer_roles(datasets)
    assert (roles.fluxcal, roles.bpcal, roles.phasecal, roles.targets) == ("", "3C273", "1159+292", [])
    with pytest.raises(ConfigError, match="flux calibrator"):
        require(roles, [])
    # With the flux density given, the bandpass calibrator sets the scale
    assert infer_roles(datasets, flux_model_given=True).fluxcal == "3C273"


def test_phaseref_says_which_role_it_cannot_tell(tmp_path):
    from radiocal.ms.write import write_ms

    sim = simulate(SimConfig(n_antennas=3, spws=((1.3e9, 4e6, 2),), schedule=((2, 2),), seed=1))
    ms = tmp_path / "star_only.ms"
    write_ms(_without_intents(sim.datasets), str(ms))
    done = subprocess.run([sys.executable, "-m", "radiocal.cli.main", "--scheduler", "threads",
                           "phaseref", str(ms), "-o", str(tmp_path / "out")],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "radiocal: error: cannot tell the flux calibrator from the data (no scan intent or known "
        "calibrator name among STAR); give --fluxcal"]


def test_calibrate_infers_roles_and_calibrates(run_cli, tmp_path):
    """`radiocal calibrate STORE` with no roles: intents choose them, and the phase calibrator's
    bootstrapped flux density is the simulated 2.5 Jy (nu / 1.4 GHz)^-0.3."""
    import re

    from radiocal.store.zarr_store import write_store

    config = SimConfig(n_antennas=5, spws=((1.3e9, 4e6, 8),), noise=0.02, seed=4)
    store = tmp_path / "sim.zarr"
    write_store(simulate(config).datasets, store)
    result = run_cli("--scheduler", "threads", "calibrate", store, "--fluxcal-model", "15.0,-0.5,1.4GHz")
    assert result.exit_code == 0, result.err
    assert ("roles: flux calibrator J1331+3030 (CALIBRATE_FLUX intent); bandpass calibrator "
            "J1331+3030 (CALIBRATE_BANDPASS intent); phase calibrator J1407+2827 (CALIBRATE_PHASE "
            "intent); targets STAR (OBSERVE_TARGET intent)") in result.out
    found = re.search(r"Flux density for J1407\+2827 in SpW=0 \(freq=([0-9.]+) GHz\) is: ([0-9.]+)",
                      result.out)
    assert found, result.out
    nu, flux = float(found.group(1)) * 1e9, float(found.group(2))
    assert abs(flux / (2.5 * (nu / 1.4e9) ** -0.3) - 1) < 0.03


def test_inferred_flux_standards_have_standard_models():
    """Every flux standard roles.py recognises has a `standard` model; 1934-638's (Reynolds 1994,
    published in MHz) agrees with the published polynomial evaluated directly."""
    import numpy as np

    from radiocal.model.flux_standards import standard_model
    from radiocal.calibration.roles import FLUX_STANDARDS

    for canonical, aliases in FLUX_STANDARDS.items():
        names = {standard_model(n).name for n in (canonical, *aliases)}
        assert len(names) == 1 and names.pop().endswith(canonical)
    nu = np.array([0.8e9, 1.4e9, 2.1e9, 5.0e9, 8.6e9])
    y = np.log10(nu / 1e6)
    reynolds = 10 ** (-30.7667 + 26.4908 * y - 7.0977 * y ** 2 + 0.605334 * y ** 3)
    np.testing.assert_allclose(standard_model("PKS 1934-638")(nu), reynolds, rtol=1e-4)
    assert abs(reynolds[1] - 14.9) < 0.1   # the familiar 1.4 GHz value
