"""The library face: README's worked script runs as written, and each step function is the step."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import radiocal
from radiocal.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_library_script() -> str:
    """The python block of README's "Library use" section, exactly as a reader copies it."""
    section = README.read_text().split("## Library use", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return block


def test_readme_library_script_runs_as_written(tmp_path, monkeypatch):
    from radiocal.store import schema as S
    from radiocal.ms.write import write_ms
    from radiocal.simulate import SimConfig, simulate

    # The inputs `radiocal demo` writes, at its paths, from a smaller simulation (same fields)
    sim = simulate(SimConfig(n_antennas=5, seed=3))
    inputs = tmp_path / "demo_out" / "input"
    inputs.mkdir(parents=True)
    write_ms(sim.datasets, str(inputs / "demo.ms"))
    target = [f.name for f in sim.config.fields].index("STAR")
    (inputs / "skymodel.txt").write_text(sim.truth.sky.skymodel_text(target))
    monkeypatch.chdir(tmp_path)

    exec(compile(readme_library_script(), "README.md", "exec"), {})

    out = tmp_path / "lib_out"
    stored = radiocal.open(out / "store.zarr")
    assert all(S.VISIBILITY_CORRECTED in ds for ds in stored)
    assert (out / "caltables" / "bandpass.zarr").is_dir() and (out / "caltables" / "bandpass.B").is_dir()
    # lib_out/store.zarr is a store by then: solve keeps its table there, as a pipeline's would
    assert (out / "store.zarr" / "caltables" / "phase_check").is_dir()
    assert (out / "caltables" / "phase_check.G").is_dir()
    assert (out / "dynspec_STAR.png").stat().st_size > 0
    assert (out / "calibrated.ms" / "table.dat").exists()
    spectrum = radiocal.open(out / "calibrated.ms")
    assert sum(ds.sizes[S.TIME] for ds in spectrum) == sum(ds.sizes[S.TIME] for ds in stored)
    from radiocal.dynspec.dataset import open_dynspec

    ds = open_dynspec(out / "dynspec_STAR.zarr")
    assert ds.attrs["model_subtracted"] and np.isfinite(ds["I"].values).any()


def test_step_functions_check_options_like_the_yaml(tmp_path):
    with pytest.raises(ConfigError, match="step 'flag': unknown option"):
        radiocal.flag([], thresold=5.0)
    with pytest.raises(ConfigError, match="output"):
        radiocal.solve([], kind="gain")
