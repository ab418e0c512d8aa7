"""Fixtures for the engine tests: a tiny simulated MS and pipeline files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # engine_test_steps registers the test steps on import

import engine_test_steps  # noqa: E402,F401


def _write_ms(datasets, path):
    try:
        from radiocal.ms.write import write_ms
    except ImportError:
        from radiocal.ms.write import write_ms
    write_ms(datasets, str(path))


def _simulated_ms(tmp_path_factory, schedule) -> Path:
    from radiocal.simulate import SimConfig, simulate

    config = SimConfig(n_antennas=4, spws=((1.3e9, 4e6, 4),), n_correlations=2,
                       schedule=schedule, seed=3)
    path = tmp_path_factory.mktemp("ms") / "tiny.ms"
    _write_ms(simulate(config).datasets, path)
    return path


@pytest.fixture(scope="session")
def tiny_ms(tmp_path_factory) -> Path:
    """A 4-antenna, 4-channel, 2-correlation MS with 4 scans (4 partitions) of 2-3 integrations."""
    return _simulated_ms(tmp_path_factory, ((0, 3), (1, 2), (2, 3), (1, 2)))


@pytest.fixture(scope="session")
def small_ms(tmp_path_factory) -> Path:
    """As ``tiny_ms`` with 2 scans: the runner tests' input (fewer partitions, less I/O)."""
    return _simulated_ms(tmp_path_factory, ((0, 3), (2, 2)))


@pytest.fixture
def pipeline_file(tmp_path):
    """Write a pipeline (list of step mappings) to a YAML file and return its path."""

    def write(steps, name="pipeline.yaml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(steps, sort_keys=False))
        return path

    return write
