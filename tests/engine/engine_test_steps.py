"""Small steps for the engine's tests (registered on import; RADIOCAL_STEP_MODULES for subprocesses).

``test_scale`` rewrites VISIBILITY, ``test_clip`` ORs FLAG with an amplitude cut (it reads the
variable it rewrites, so a redo from partly updated flags would differ), ``test_correct`` creates
VISIBILITY_CORRECTED. ``delay`` makes each chunk sleep and ``marker`` names a file touched when a
chunk starts, so tests can interrupt a step while it computes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np

from radiocal.registry import register_step
from radiocal.store import schema as S


def _slow_marker(delay: float, marker: str) -> None:
    if marker:
        Path(marker).touch()
    if delay:
        time.sleep(delay)


def _scale_block(block, factor, delay, marker):
    _slow_marker(delay, marker)
    return (block.astype(np.complex128) * factor).astype(np.complex64)


def _clip_block(vis, flag, threshold, delay, marker, fail_if):
    _slow_marker(delay, marker)
    if fail_if and Path(fail_if).exists():
        raise RuntimeError("clip interrupted")
    return flag | (np.abs(vis) > threshold)


@dataclass(frozen=True)
class ScaleConfig:
    factor: float = field(default=2.0, metadata={"help": "multiply VISIBILITY by this"})
    delay: float = field(default=0.0, metadata={"help": "seconds each chunk sleeps"})
    marker: str = field(default="", metadata={"help": "file touched when a chunk starts"})


@register_step("test_scale", ScaleConfig)
def scale(datasets, config, context):
    """Multiply VISIBILITY by a factor."""
    out = []
    for ds in datasets:
        data = da.map_blocks(_scale_block, ds[S.VISIBILITY].data, config.factor, config.delay,
                             config.marker, dtype=np.complex64)
        out.append(ds.assign({S.VISIBILITY: ds[S.VISIBILITY].copy(data=data)}))
    return out


@dataclass(frozen=True)
class ClipConfig:
    threshold: float = field(default=1.0, metadata={"help": "flag |V| above this (Jy)"})
    delay: float = field(default=0.0, metadata={"help": "seconds each chunk sleeps"})
    marker: str = field(default="", metadata={"help": "file touched when a chunk starts"})
    fail_if: str = field(default="", metadata={"help": "chunks fail while this file exists"})


@register_step("test_clip", ClipConfig)
def clip(datasets, config, context):
    """Flag visibilities above an amplitude (ORed into the existing flags)."""
    out = []
    for ds in datasets:
        flags = da.map_blocks(_clip_block, ds[S.VISIBILITY].data, ds[S.FLAG].data,
                              config.threshold, config.delay, config.marker, config.fail_if,
                              dtype=bool)
        out.append(ds.assign({S.FLAG: ds[S.FLAG].copy(data=flags)}))
    return out


@dataclass(frozen=True)
class CorrectConfig:
    gain: float = field(default=0.5, metadata={"help": "VISIBILITY_CORRECTED = gain * VISIBILITY"})
    field_id: str = field(default="", metadata={"help": "only this field's partitions (empty: all)"})


@register_step("test_correct", CorrectConfig)
def correct(datasets, config, context):
    """Create VISIBILITY_CORRECTED from VISIBILITY (other fields' partitions pass unchanged)."""
    out = []
    for ds in datasets:
        if config.field_id and str(ds.attrs[S.ATTR_FIELD_ID]) != config.field_id:
            out.append(ds)
            continue
        data = da.map_blocks(_scale_block, ds[S.VISIBILITY].data, config.gain, 0.0, "",
                             dtype=np.complex64)
        out.append(ds.assign({S.VISIBILITY_CORRECTED: ds[S.VISIBILITY].copy(data=data)}))
    return out


def worker_pid() -> int:
    return os.getpid()


@dataclass(frozen=True)
class SimulateConfig:
    seed: int = field(default=3, metadata={"help": "simulator seed"})
    time_chunk: int = field(default=2, metadata={"help": "integrations per chunk"})


@register_step("test_simulate", SimulateConfig, kind="source")
def simulate_source(datasets, config, context):
    """Simulated datasets without an MS (keeps casacore out of in-process cluster tests)."""
    from radiocal.simulate import SimConfig, simulate

    sim = simulate(SimConfig(n_antennas=4, spws=((1.3e9, 4e6, 4),), n_correlations=2,
                             schedule=((0, 3), (1, 2), (2, 3), (1, 2)), seed=config.seed))
    return [ds.chunk({S.TIME: config.time_chunk}) for ds in sim.datasets]


# What test_mark and test_prepared did, in order (a step's run is called when it executes).
EVENTS: list[str] = []


@dataclass(frozen=True)
class MarkConfig:
    label: str = field(default="", metadata={"help": "appended to EVENTS when the step runs"})


@register_step("test_mark", MarkConfig)
def mark(datasets, config, context):
    """Pass the datasets on; note that the step ran."""
    EVENTS.append(config.label)
    return datasets


def _prepare_prepared(context) -> None:
    EVENTS.append(f"prepare {context.step_name}")


@register_step("test_prepared", MarkConfig, prepare=_prepare_prepared)
def prepared(datasets, config, context):
    """Pass the datasets on; its prepare notes when a run starts preparing it."""
    EVENTS.append(config.label)
    return datasets
