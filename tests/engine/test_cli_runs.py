"""`radiocal run` as users run it: subprocesses killed mid-step, Ctrl-C, an external scheduler."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from radiocal.engine import checkpoint

from .engine_testing import (assert_same_outputs, chain, interruptible, listening_addresses,
                             subprocess_env, tree_digest, wait_for)

RADIOCAL = [sys.executable, "-m", "radiocal.cli.main"]


def _radiocal(*args, check=True, timeout=120):
    result = subprocess.run([*RADIOCAL, *map(str, args)], env=subprocess_env(), capture_output=True,
                            text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_cli_config_and_errors(pipeline_file, small_ms):
    shown = _radiocal("config", "test_scale").stdout
    assert "- step: test_scale" in shown and "# multiply VISIBILITY by this" in shown
    steps = chain(small_ms, export=False)
    steps[2]["treshold"] = 3
    result = _radiocal("--scheduler", "sync", "run", pipeline_file(steps), "-o", "out", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "radiocal: error: step 'test_clip' (step 3): unknown option 'treshold' "
        "(valid: delay, fail_if, marker, threshold)"]


@pytest.mark.slow
def test_sigkill_during_a_step_then_rerun_gives_identical_outputs(tiny_ms, tmp_path, pipeline_file):
    marker = tmp_path / "clip-started"
    pipeline = pipeline_file(chain(tiny_ms, clip_delay=1.0, marker=str(marker)))
    before = tree_digest(tiny_ms)
    out = tmp_path / "out"
    # the default engine: a LocalCluster with worker processes
    proc = subprocess.Popen([*RADIOCAL, "--workers", "2", "--threads-per-worker", "1", "run",
                             str(pipeline), "-o", str(out)], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(marker, proc)
        children = _descendants(proc.pid)
        assert len(children) >= 2  # the worker processes
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # workers notice their parent died and exit: nothing is left behind
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, alive

    records = {r["name"]: r["status"] for r in checkpoint.read_records(out / "store.zarr")}
    assert records["test_clip"] == "running" and records["test_scale"] == "complete"

    _radiocal("--scheduler", "threads", "run", pipeline, "-o", out)
    statuses = [s["status"] for s in json.loads((out / "provenance.json").read_text())["steps"]]
    assert statuses == ["skipped", "skipped", "ran", "ran", "ran"]
    _radiocal("--scheduler", "threads", "run", pipeline, "-o", tmp_path / "fresh")
    assert_same_outputs(out, tmp_path / "fresh")
    assert tree_digest(tiny_ms) == before  # the input MS was never written


def test_ctrl_c_shuts_the_cluster_down(tiny_ms, tmp_path, pipeline_file):
    marker = tmp_path / "scale-started"
    pipeline = pipeline_file(chain(tiny_ms, scale_delay=2.0, marker=str(marker), export=False))
    proc = subprocess.Popen([*RADIOCAL, "--workers", "1", "--threads-per-worker", "1", "run",
                             str(pipeline), "-o", str(tmp_path / "out")], env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    try:
        wait_for(marker, proc)
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == "radiocal: interrupted"
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, alive


@pytest.mark.slow
def test_external_scheduler_on_loopback(tiny_ms, tmp_path, pipeline_file):
    pipeline = pipeline_file(chain(tiny_ms, export=False))
    _radiocal("--scheduler", "threads", "run", pipeline, "-o", tmp_path / "threads")
    scheduler_file = tmp_path / "scheduler.json"
    env = subprocess_env()
    scheduler = subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--dashboard-address", "127.0.0.1:0", "--scheduler-file",
                                  str(scheduler_file)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert scheduler.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", address)
        worker = subprocess.Popen(["dask", "worker", "--scheduler-file", str(scheduler_file),
                                   "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
                                   "--dashboard-address", "127.0.0.1:0"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        result = _radiocal("--scheduler", address, "run", pipeline, "-o", tmp_path / "remote")
        assert "4 step(s) complete" in result.stderr
        provenance = json.loads((tmp_path / "remote" / "provenance.json").read_text())
        assert provenance["engine"]["kind"] == "remote" and provenance["engine"]["workers"] == 2
        pids = [scheduler.pid, worker.pid, *[p.pid for p in _descendants(scheduler.pid)],
                *[p.pid for p in _descendants(worker.pid)]]
        addresses = listening_addresses(pids)
        assert len(addresses) >= 3 and {ip for ip, _ in addresses} == {"127.0.0.1"}
    finally:
        for proc in (worker, scheduler):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert_same_outputs(tmp_path / "threads", tmp_path / "remote", rtol=1e-6)


@pytest.mark.parametrize("given, expected", [(None, "1"), ("3", "3")])
def test_command_runs_openblas_on_one_thread_unless_told(given, expected):
    """numpy's OpenBLAS threads only spin in radiocal's processes: the command starts them with
    one thread, before numpy loads, and keeps a user's own setting."""
    env = {k: v for k, v in subprocess_env().items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = "import os, radiocal.cli.main; print(os.environ['OPENBLAS_NUM_THREADS'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
