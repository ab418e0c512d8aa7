"""Helpers shared by the engine tests: the test pipeline, subprocess environment, comparisons."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def tree_digest(path: Path) -> str:
    """SHA-256 over every file's relative name, bytes and mtime under ``path``."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = Path(root) / name
            digest.update(str(full.relative_to(path)).encode())
            digest.update(full.read_bytes())
            digest.update(str(full.stat().st_mtime_ns).encode())
    return digest.hexdigest()


def chain(ms, *, clip_delay=0.0, scale_delay=0.0, marker="", threshold=20.0, chunk_mb=64.0,
          fail_if="", export=True):
    """The test step chain: convert -> scale -> clip -> correct (-> export)."""
    source = ({"step": "convert", "ms": [str(ms)], "chunk_mb": chunk_mb} if ms is not None
              else {"step": "test_simulate"})  # no MS: simulated datasets, no casacore
    steps = [
        source,
        {"step": "test_scale", "factor": 1.5, "delay": scale_delay,
         "marker": marker if scale_delay else ""},
        {"step": "test_clip", "threshold": threshold, "delay": clip_delay,
         "marker": marker if clip_delay else "", "fail_if": fail_if},
        {"step": "test_correct", "gain": 0.25},
    ]
    return steps + [{"step": "export"}] if export else steps


def subprocess_env() -> dict:
    """Environment for `radiocal` subprocesses and dask workers: the test steps importable, and
    the radiocal under test rather than an installed copy (a `dask worker` does not start in it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), str(HERE.parents[1]), env.get("PYTHONPATH")]))
    env["RADIOCAL_STEP_MODULES"] = "engine_test_steps"
    return env


def interruptible() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: the default disposition, as
    a terminal's foreground job has. A shell starts a background job (`bash .ci/run &`) with
    SIGINT ignored, every child inherits that, and Python then installs no KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def load_outputs(outdir: Path) -> list:
    """The run's store, computed, for comparisons between runs."""
    import radiocal

    return [ds.compute() for ds in radiocal.open(outdir)]


def assert_same_outputs(a: Path, b: Path, rtol: float = 0.0) -> None:
    """Two runs' stores hold the same partitions and values (exactly, or to ``rtol``)."""
    import xarray as xr

    first, second = load_outputs(a), load_outputs(b)
    assert [ds.attrs["partition"] for ds in first] == [ds.attrs["partition"] for ds in second]
    for x, y in zip(first, second):
        assert sorted(x.data_vars) == sorted(y.data_vars)
        if rtol:
            for name in x.data_vars:
                np.testing.assert_allclose(x[name].values, y[name].values, rtol=rtol, atol=rtol)
        else:
            xr.testing.assert_identical(x, y)


def listening_addresses(pids) -> set:
    """(ip, port) of every listening inet socket held by the given processes."""
    import psutil

    found = set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except psutil.Error:
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return found


def wait_for(path: Path, proc, timeout: float = 60.0) -> None:
    """Wait until ``path`` exists (a step's marker), failing if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited early"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
