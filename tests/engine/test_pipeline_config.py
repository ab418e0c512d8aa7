"""Pipeline files: strict validation, --set overrides, inputs, and `radiocal config` output."""

from __future__ import annotations

import yaml
import pytest

from radiocal.engine.pipeline import defaults_yaml, load_pipeline
from radiocal.registry import all_steps
from radiocal.errors import ConfigError


def _base(ms="x.ms"):
    return [{"step": "convert", "ms": [ms]}, {"step": "test_clip", "threshold": 3}]


def test_valid_pipeline_builds_typed_configs():
    steps = load_pipeline(_base())
    assert [s.spec.name for s in steps] == ["convert", "test_clip"]
    assert steps[0].config.ms == ("x.ms",)
    # an integer where a float is declared is converted, not rejected
    assert steps[1].config.threshold == 3.0 and isinstance(steps[1].config.threshold, float)


def test_nested_config_form_is_accepted():
    steps = load_pipeline([{"step": "convert", "config": {"ms": "a.ms"}}])
    assert steps[0].config.ms == ("a.ms",)


@pytest.mark.parametrize("entries, fragment", [
    ([{"step": "convert"}, {"step": "nope"}], "unknown step 'nope'"),
    ([{"step": "convert", "bogus": 1}], "'convert' (step 1): unknown option 'bogus'"),
    ([{"step": "convert"}, {"step": "test_clip", "threshold": "high"}],
     "'test_clip' (step 2): option 'threshold' must be a number"),
    ([{"step": "convert", "chunk_mb": -1}], "chunk_mb must be positive"),
    ([{"step": "test_clip"}], "must start with a source step"),
    ([{"step": "convert"}, {"step": "convert"}], "a source step can only come first"),
    ([{"step": "convert"}, "test_clip"], "entry 2 is not a mapping"),
    ([], "non-empty list"),
])
def test_invalid_pipelines_give_one_line_errors(entries, fragment):
    with pytest.raises(ConfigError) as info:
        load_pipeline(entries)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_set_overrides_yaml_values_by_name_and_position(tmp_path):
    steps = load_pipeline(_base(), overrides=["test_clip.threshold=7.5", "1.chunk_mb=0.5"])
    assert steps[1].config.threshold == 7.5
    assert steps[0].config.chunk_mb == 0.5
    with pytest.raises(ConfigError, match="no step 'test_scale'"):
        load_pipeline(_base(), overrides=["test_scale.factor=2"])
    with pytest.raises(ConfigError, match="expected STEP.KEY=VALUE"):
        load_pipeline(_base(), overrides=["threshold=2"])
    with pytest.raises(ConfigError, match="unknown option 'treshold'"):
        load_pipeline(_base(), overrides=["test_clip.treshold=2"])


def test_positional_inputs_replace_the_source_inputs():
    steps = load_pipeline(_base("file.ms"), inputs=["a.ms", "b.ms"])
    assert steps[0].config.ms == ("a.ms", "b.ms")


def test_pipeline_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- step: convert\n  ms: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline(tmp_path / "missing.yaml")


def test_defaults_yaml_is_a_loadable_pipeline_with_help():
    text = defaults_yaml()
    entries = yaml.safe_load(text)
    names = [e["step"] for e in entries]
    assert names == list(all_steps())
    assert "# multiply VISIBILITY by this" in text
    # the printed defaults are valid configs (checked on the engine's own and the test steps;
    # domain steps may require a value, e.g. a sky model, that has no sensible default)
    ours = [e for e in entries if e["step"] in ("convert", "test_scale", "test_clip",
                                                "test_correct", "export")]
    steps = load_pipeline(ours)
    assert [s.spec.name for s in steps] == [e["step"] for e in ours]


def test_defaults_yaml_for_one_step():
    entries = yaml.safe_load(defaults_yaml(["test_scale"]))
    assert entries == [{"step": "test_scale", "factor": 2.0, "delay": 0.0, "marker": ""}]
    with pytest.raises(ConfigError, match="unknown step"):
        defaults_yaml(["nope"])


def test_unimportable_plugin_module_is_a_config_error(monkeypatch):
    from radiocal.registry import get_step

    monkeypatch.setenv("RADIOCAL_STEP_MODULES", "engine_test_steps, no_such_radiocal_plugin")
    with pytest.raises(ConfigError, match="cannot import 'no_such_radiocal_plugin'"):
        get_step("convert")


def test_transform_must_keep_partitions_and_shapes():
    import numpy as np
    import xarray as xr

    from radiocal.engine.runner import changed_variables

    def part(name, n=3):
        return xr.Dataset({"VISIBILITY": ("time", np.zeros(n, np.complex64))},
                          attrs={"partition": name})

    before = [part("a"), part("b")]
    assert changed_variables(before, before, "'x'") == ([], [])
    renamed = [before[0], part("c")]
    with pytest.raises(TypeError, match="changed the partitions"):
        changed_variables(before, renamed, "'x'")
    with pytest.raises(TypeError, match="changed the shape of VISIBILITY"):
        changed_variables(before, [before[0], part("b", 4)], "'x'")
    added = [before[0].assign(FLAG=("time", np.zeros(3, bool))), before[1]]
    assert changed_variables(before, added, "'x'") == ([], ["FLAG"])
