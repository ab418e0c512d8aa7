"""The registered pipeline steps run lazily on simulated data."""

import numpy as np
import pytest

from radiocal.registry import get_step, make_config
from radiocal.errors import ConfigError
from radiocal.store import caltables as C
from radiocal.store import schema as S


def test_calibrate_and_applycal_steps(tmp_path):
    testing = pytest.importorskip("radiocal.simulate")
    context_mod = pytest.importorskip("radiocal.engine.context")
    sim = testing.simulate(testing.SimConfig(n_antennas=5, noise=0.02, seed=8))
    context = context_mod.StepContext.for_library(tmp_path)
    spec = get_step("calibrate")
    config = make_config(spec, {"fluxcal": "J1331+3030", "phasecal": "J1407+2827",
                                "targets": ["STAR"], "fluxcal_model": "15,-0.5,1.4GHz"})
    out = spec.run(sim.datasets, config, context)
    assert all(S.VISIBILITY_CORRECTED in ds for ds in out)
    assert hasattr(out[0][S.VISIBILITY_CORRECTED].data, "dask")       # still lazy
    # no store yet (a library call): zarr tables next to the CASA ones, no stray store.zarr
    table_dir = tmp_path / "caltables" / "bandpass.zarr"
    assert C.is_table_zarr(table_dir) and not (tmp_path / "store.zarr").exists()
    assert (tmp_path / "caltables" / "bandpass.B" / "table.dat").exists()
    apply_spec = get_step("applycal")
    apply_config = make_config(apply_spec, {"gaintable": [str(table_dir)], "interp": ["nearest"]})
    again = apply_spec.run(sim.datasets, apply_config, context)
    assert len(again) == len(sim.datasets)
    # spwmap (one spectral window here): mapping window 0 to 0 changes nothing
    mapped = apply_spec.run(sim.datasets, make_config(apply_spec, {
        "gaintable": [str(table_dir)], "interp": ["nearest"], "spwmap": [0]}), context)
    np.testing.assert_array_equal(mapped[0][S.VISIBILITY_CORRECTED].values,
                                  again[0][S.VISIBILITY_CORRECTED].values)
    with pytest.raises(ConfigError, match="spwmap"):
        make_config(apply_spec, {"gaintable": ["t"], "spwmap": ["x"]})
    # solve: one more table on the phase calibrator, pre-applying the bandpass
    solve_spec = get_step("solve")
    passed = solve_spec.run(sim.datasets, make_config(solve_spec, {
        "kind": "gain", "calmode": "p", "field": ["J1407+2827"], "output": "check",
        "gaintable": [str(table_dir)]}), context)
    assert passed == sim.datasets
    check = C.read_table_zarr(tmp_path / "caltables" / "check.zarr")
    assert check[0].attrs[C.ATTR_CAL_TYPE] == "G"
    with pytest.raises(ConfigError, match="no partitions of field"):
        solve_spec.run(sim.datasets, make_config(solve_spec, {"output": "x", "field": ["NOPE"]}),
                       context)
    with pytest.raises(Exception):
        make_config(spec, {"fluxcal": "x", "no_such_option": 1})
