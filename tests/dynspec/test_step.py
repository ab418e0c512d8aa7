"""The registered predict, subtract and dynspec steps."""

import dask
import dask.array as da
import numpy as np
import pytest

from radiocal.dynspec.dataset import ATTR_MODEL_SUBTRACTED, open_dynspec
from radiocal.engine.context import StepContext
from radiocal.registry import all_steps, get_step, make_config
from radiocal.errors import ConfigError
from radiocal.store import schema as S


def _raise(*args, **kwargs):
    raise RuntimeError("a step computed")


def test_steps_are_registered():
    steps = all_steps()
    assert {"predict", "subtract", "dynspec"} <= set(steps)
    assert steps["dynspec"].kind == "sink" and steps["predict"].kind == "transform"


def test_predict_then_subtract_lazily_on_the_target_only(star, tmp_path):
    context = StepContext.for_library(tmp_path)
    predict, subtract = get_step("predict"), get_step("subtract")
    datasets = [ds.drop_vars(S.VISIBILITY_CORRECTED) for ds in star["calibrated"]]
    with dask.config.set(scheduler=_raise):
        out = predict.run(datasets, make_config(predict, {"skymodel": star["skymodel"], "field": "STAR"}), context)
        out = subtract.run(out, make_config(subtract, {"field": "STAR"}), context)
    for ds in out:
        if ds.attrs[S.ATTR_FIELD_NAME] == "STAR":
            assert isinstance(ds[S.VISIBILITY_CORRECTED].data, da.Array) and ds.attrs[ATTR_MODEL_SUBTRACTED]
        else:
            assert S.VISIBILITY_MODEL not in ds and S.VISIBILITY_CORRECTED not in ds
    target = next(ds for ds in out if ds.attrs[S.ATTR_FIELD_NAME] == "STAR")
    want = target[S.VISIBILITY].values - target[S.VISIBILITY_MODEL].values
    np.testing.assert_array_equal(target[S.VISIBILITY_CORRECTED].values, want)


def test_dynspec_step_writes_its_product(star, tmp_path):
    context = StepContext.for_library(tmp_path)
    step = get_step("dynspec")
    config = make_config(step, {"field": "STAR", "skymodel": star["skymodel"], "output": "star.zarr",
                                "exclude_baselines": ["N01&E01"]})
    assert config.exclude_baselines == ("N01&E01",)
    out = step.run(star["calibrated"], config, context)
    assert out is star["calibrated"]
    spectrum = open_dynspec(tmp_path / "star.zarr")
    assert spectrum.attrs["exclude_baselines"] == ["N01&E01"] and "I" in spectrum


def test_step_config_errors():
    with pytest.raises(ConfigError, match="skymodel"):
        make_config(get_step("predict"), {})
    with pytest.raises(ConfigError, match="unknown option"):
        make_config(get_step("dynspec"), {"fieldname": "x"})
    step = get_step("dynspec")
    with pytest.raises(ConfigError, match="field"):
        step.run([], make_config(step, {}), StepContext.for_library("."))
