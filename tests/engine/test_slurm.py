"""radiocal on a real SLURM: worker jobs submitted with the job memory as --mem, used, cancelled.

The SLURM tests need a SLURM whose node is this machine (the test's data and the workers' paths
are local): ``.ci/start-slurm`` starts a one-node SLURM on 127.0.0.1 (munged, slurmctld, slurmd;
as root; CI runs it with --install before the suite), and the fixture calls it too, so a
developer gets the same. Where it cannot start one (not root, not installed) they skip with its
reason. What is checked comes from SLURM's own records: ``scontrol show job`` (finished jobs stay
listed for MinJobAge; no accounting database needed), ``scontrol write batch_script`` (the script
as submitted) and ``squeue``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import pytest

from radiocal.budget import budget_for, chunk_bytes
from radiocal.engine.cluster import Engine
from radiocal.errors import ConfigError

from .engine_testing import assert_same_outputs, chain, interruptible, subprocess_env, wait_for

REPO = Path(__file__).resolve().parents[2]
START_SLURM = REPO / ".ci" / "start-slurm"
RADIOCAL = [sys.executable, "-m", "radiocal.cli.main"]
# 1.5 GB = 1430.5 MiB: SLURM grants whole MiB, and dask-jobqueue alone would ask for --mem=2G.
MEMORY, MEM_MIB = "1.5GB", 1430
SLURM_OPTIONS = ["--cluster", "slurm", "--cores", "1", "--memory", MEMORY, "--interface", "lo"]


# -- without SLURM: what radiocal would submit ------------------------------------------------

def test_job_script_asks_for_the_memory_given():
    script = Engine(cluster="slurm", cores=2, memory=MEMORY).job_script()
    assert f"#SBATCH --mem={MEM_MIB}M" in script and "--nthreads 2" in script
    assert "#SBATCH --mem=16384M" in Engine(cluster="slurm", cores=1, memory="16GiB").job_script()


def test_bad_job_memory_is_one_config_error():
    for memory in ("lots", "100B"):
        with pytest.raises(ConfigError, match="--memory"):
            Engine(cluster="slurm", cores=1, memory=memory)


def test_choosing_a_batch_queue_keeps_our_sigint_handler():
    # dask_jobqueue sets SIGINT to sys.exit() on import: Ctrl-C would exit 0, silently.
    before = signal.getsignal(signal.SIGINT)
    Engine(cluster="pbs", cores=1, memory="1GB").job_script()  # imports dask_jobqueue
    assert signal.getsignal(signal.SIGINT) is before


def test_no_sbatch_is_one_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch (nor anything else) to be found
    with pytest.raises(ConfigError, match="sbatch not found"):
        Engine(cluster="slurm", cores=1, memory="1GB", interface="lo").start()


# -- on SLURM ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slurm():
    """A SLURM answering on this machine (started by .ci/start-slurm when needed), or skip."""
    if not START_SLURM.exists():
        pytest.skip(f"{START_SLURM} absent (not a source checkout)")
    started = subprocess.run(["bash", str(START_SLURM)], capture_output=True, text=True, timeout=180,
                             stdin=subprocess.DEVNULL)
    if started.returncode != 0:
        pytest.skip(f"no SLURM on this machine: {started.stderr.strip()}")
    for tool in ("sbatch", "squeue", "scontrol", "scancel"):
        if shutil.which(tool) is None:
            pytest.skip(f"SLURM's {tool} is not on PATH")


def _scontrol_jobs() -> dict[int, dict]:
    """Every job slurmctld still knows (running, and finished within MinJobAge): id -> fields."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "JobId" in fields:
            jobs[int(fields["JobId"])] = fields
    return jobs


def _radiocal_jobs_from(workdir: Path) -> dict[int, dict]:
    # sbatch runs in radiocal's working directory: a test's own, whoever else uses this SLURM
    return {i: job for i, job in _scontrol_jobs().items()
            if job["JobName"] == "radiocal" and job["WorkDir"] == str(workdir.resolve())}


def _queued() -> set[int]:
    out = subprocess.run(["squeue", "-h", "-n", "radiocal", "-o", "%i"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return {int(i) for i in out.split()}


def _batch_script(job_id: int) -> str:
    return subprocess.run(["scontrol", "write", "batch_script", str(job_id), "-"],
                          capture_output=True, text=True, timeout=30, check=True).stdout


def _assert_cancelled(job_ids, timeout=30.0):
    """The jobs have left the queue, cancelled (not completed or failed: radiocal ended them)."""
    deadline = time.monotonic() + timeout
    while _queued() & set(job_ids):
        assert time.monotonic() < deadline, f"jobs still queued: {_queued() & set(job_ids)}"
        time.sleep(0.5)
    states = {i: _scontrol_jobs()[i]["JobState"] for i in job_ids}
    assert set(states.values()) == {"CANCELLED"}, states


def _assert_submitted_as_asked(job: dict, script: str, cores: int) -> None:
    assert job["MinMemoryNode"] == f"{MEM_MIB}M" and int(job["NumCPUs"]) == cores
    assert f"#SBATCH --mem={MEM_MIB}M" in script and f"--cpus-per-task={cores}" in script
    assert f"--nthreads {cores}" in script and "--interface lo" in script
    assert re.search(r"dask_worker tcp://127\.0\.0\.1:\d+ ", script), script


def _node_cpus() -> int:
    out = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    return min(int(cpus) for cpus in out.split())


def _radiocal_env() -> dict:
    # The jobs run `python -m distributed.cli.dask_worker` with sbatch's default --export=ALL:
    # this checkout and the test steps must be importable there, whatever is pip-installed.
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env["PYTHONPATH"]])
    return env


def test_engine_worker_job_has_the_budget_runs_the_work_and_is_cancelled(slurm, tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)  # sbatch writes the job's slurm-<id>.out in the working directory
    monkeypatch.setenv("PYTHONPATH", _radiocal_env()["PYTHONPATH"])
    cores = min(2, _node_cpus())  # two threads, where the node has them
    with Engine(cluster="slurm", cores=cores, memory=MEMORY, interface="lo") as engine:
        [(job_id, job)] = _radiocal_jobs_from(tmp_path).items()
        assert job["JobState"] == "RUNNING" and job_id in _queued()
        _assert_submitted_as_asked(job, _batch_script(job_id), cores)
        # the scheduler (on loopback) knows one worker: the job's, with its threads and memory
        assert engine.client.scheduler.address.startswith("tcp://127.0.0.1:")
        [worker] = engine.client.scheduler_info()["workers"].values()
        assert worker["nthreads"] == cores and worker["host"] == "127.0.0.1"
        assert worker["memory_limit"] == pytest.approx(MEM_MIB * 2**20, rel=0.01)
        # work runs inside the SLURM job, which SLURM gave the memory and cores asked for
        # (a lambda: cloudpickle sends it by value, so os.environ is the worker's)
        seen = dask.delayed(lambda: [os.environ.get(f"SLURM_{name}")
                                     for name in ("JOB_ID", "MEM_PER_NODE", "CPUS_PER_TASK")])
        assert engine.compute(seen()) == ([str(job_id), str(MEM_MIB), str(cores)],)
        # the chunk budget is the job's: its memory as granted, per core
        assert chunk_bytes() == engine.budget == budget_for(MEM_MIB * 2**20, cores)
    _assert_cancelled([job_id])


def test_a_job_slurm_would_refuse_is_one_line_and_submits_nothing(slurm, tmp_path):
    out = subprocess.run(["sinfo", "-h", "-o", "%m"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    too_much = f"{max(int(mb.rstrip('+')) for mb in out.split()) + 1024}MiB"  # more than any node
    result = subprocess.run([*RADIOCAL, "--cluster", "slurm", "--cores", "1", "--memory", too_much,
                             "--interface", "lo", "run", "phaseref", "-o", str(tmp_path / "out")],
                            env=_radiocal_env(), capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "radiocal: error: SLURM would refuse the worker job: allocation failure: "
        "Requested node configuration is not available"]
    assert not _radiocal_jobs_from(tmp_path)


@pytest.mark.slow
def test_cli_run_on_slurm_matches_in_process_and_leaves_no_job(slurm, tiny_ms, tmp_path,
                                                               pipeline_file):
    pipeline = pipeline_file(chain(tiny_ms, export=False))
    env = _radiocal_env()
    threads = subprocess.run([*RADIOCAL, "--scheduler", "threads", "run", str(pipeline), "-o",
                              str(tmp_path / "threads")], env=env, capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
    assert threads.returncode == 0, threads.stderr
    result = subprocess.run([*RADIOCAL, *SLURM_OPTIONS, "run", str(pipeline), "-o",
                             str(tmp_path / "slurm")], env=env, capture_output=True, text=True,
                            timeout=300, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "4 step(s) complete (4 run" in result.stderr
    [(job_id, job)] = _radiocal_jobs_from(tmp_path).items()
    _assert_submitted_as_asked(job, _batch_script(job_id), cores=1)
    engine = json.loads((tmp_path / "slurm" / "provenance.json").read_text())["engine"]
    assert engine["kind"] == "slurm" and engine["workers"] == 1 and engine["threads"] == 1
    assert engine["chunk_bytes"] == budget_for(MEM_MIB * 2**20, 1)
    # the job's worker is the one that served the run's scheduler
    log = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert f"Registered to: {engine['scheduler']}" in " ".join(log.split())
    _assert_cancelled([job_id])
    assert_same_outputs(tmp_path / "threads", tmp_path / "slurm")


def test_ctrl_c_cancels_the_worker_jobs(slurm, tiny_ms, tmp_path, pipeline_file):
    marker = tmp_path / "scale-started"  # written by the step, in the worker inside the job
    pipeline = pipeline_file(chain(tiny_ms, scale_delay=60.0, marker=str(marker), export=False))
    proc = subprocess.Popen([*RADIOCAL, *SLURM_OPTIONS, "run", str(pipeline), "-o",
                             str(tmp_path / "out")], env=_radiocal_env(), cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        wait_for(marker, proc, timeout=120)  # the step started in the SLURM job
        [job_id] = _radiocal_jobs_from(tmp_path)
        assert job_id in _queued()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == ["radiocal: interrupted"]
    _assert_cancelled([job_id])
