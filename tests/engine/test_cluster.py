"""The Engine: in-process schedulers, the embedded LocalCluster, batch-queue dry runs, bad options."""

from __future__ import annotations

import threading
import time

import dask
import dask.local
import dask.threaded
import numpy as np
import psutil
import pytest
from click.testing import CliRunner

import radiocal
from radiocal import budget
from radiocal.cli.main import cli
from radiocal.engine import checkpoint
from radiocal.engine.cluster import IN_PROCESS_FLUSH_S, Engine, local_layout
from radiocal.engine.pipeline import load_pipeline
from radiocal.engine.runner import run_pipeline
from radiocal.errors import ConfigError

from .engine_testing import assert_same_outputs, chain, listening_addresses, load_outputs


def test_in_process_engines_set_and_restore_the_scheduler():
    before = dask.config.get("scheduler", None)
    with Engine(scheduler="sync") as engine:
        assert dask.config.get("scheduler") is dask.local.get_sync
        assert engine.describe() == {"kind": "sync", "chunk_bytes": engine.budget} and not engine.distributed
        assert engine.compute(dask.delayed(sum)([1, 2])) == (3,)
    with Engine(scheduler="threads"):
        assert dask.config.get("scheduler") is dask.threaded.get
    assert dask.config.get("scheduler", None) == before


def test_threaded_engine_shares_one_pool_between_computing_threads():
    """Two threads computing at once (export computes batches while it writes) run no more
    tasks together than the threads asked for."""
    lock, active, peak = threading.Lock(), [0], [0]

    def task(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return i

    def compute():
        dask.compute(*[dask.delayed(task)(i) for i in range(12)])

    with Engine(scheduler="threads", threads_per_worker=2):
        callers = [threading.Thread(target=compute) for _ in range(2)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
    assert peak[0] == 2


def test_engine_sets_the_chunk_budget_for_its_run():
    outside = budget.chunk_bytes()
    with Engine(scheduler="threads", chunk_bytes=123_456) as engine:
        assert budget.chunk_bytes() == 123_456 and engine.describe()["chunk_bytes"] == 123_456
    assert budget.chunk_bytes() == outside
    # Not given: from the memory a thread has, within the budget's bounds
    with Engine(scheduler="threads") as engine:
        derived = budget.chunk_bytes()
        assert engine.budget == derived
        assert budget.MIN_CHUNK_BYTES <= derived <= budget.MAX_CHUNK_BYTES
    # A batch job's workers: the job's memory per core (jobs are not started to know it), as
    # SLURM grants it (512 MB = 488.3 MiB -> --mem=488M); the limit of an unsplittable chunk is
    # that memory per chunk, the budget no more than the default
    job = Engine(cluster="slurm", cores=4, memory="512MB")._chunk_budget()
    assert job[:2] == (budget.budget_for(488 * 2**20, 4), budget.limit_for(488 * 2**20, 4))
    assert job[0] < budget.MAX_CHUNK_BYTES
    big = Engine(cluster="slurm", cores=4, memory="8GB")._chunk_budget()
    assert big[0] == budget.MAX_CHUNK_BYTES < big[1] == budget.limit_for(7629 * 2**20, 4)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(chunk_bytes=0), "chunk budget must be positive"),
    (dict(cluster="lsf"), "unknown cluster 'lsf'"),
    (dict(scheduler="localhost"), "neither an address"),
    (dict(scheduler="tcp://127.0.0.1:1", cluster="slurm", cores=1, memory="1GB"), "not both"),
    (dict(workers=0), "workers must be at least 1"),
    (dict(cluster="slurm"), "needs --cores and --memory"),
])
def test_bad_engine_options_are_config_errors(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        Engine(**kwargs)


def test_unreachable_scheduler_is_a_config_error(monkeypatch):
    monkeypatch.setattr(Engine, "connect_timeout", "2s")
    with pytest.raises(ConfigError, match="cannot reach scheduler"):
        Engine(scheduler="tcp://127.0.0.1:9").start()


def test_local_layout_uses_every_core_once():
    cores = len(psutil.Process().cpu_affinity())
    workers, threads = local_layout()
    assert workers * threads == cores
    assert local_layout(workers=1) == (1, cores)
    assert local_layout(workers=3, threads_per_worker=5) == (3, 5)


@pytest.mark.parametrize("kind, directive", [("slurm", "#SBATCH"), ("pbs", "#PBS"), ("sge", "#$")])
def test_job_script_dry_run_submits_and_starts_nothing(kind, directive):
    me = psutil.Process()
    children, sockets = me.children(recursive=True), listening_addresses([me.pid])
    engine = Engine(cluster=kind, jobs=3, cores=4, memory="8GB", walltime="01:30:00", queue="short")
    script = engine.job_script()
    assert directive in script and "short" in script and "01:30:00" in script
    assert "--nthreads 4" in script and "radiocal would submit 3 job(s)" in script
    assert me.children(recursive=True) == children and listening_addresses([me.pid]) == sockets
    with pytest.raises(ConfigError, match="only with --cluster"):
        Engine().job_script()


def test_batch_queue_scheduler_keeps_its_http_server_on_loopback():
    # Compute nodes must reach a batch-queue scheduler, so only its comm port may be public.
    engine = Engine(cluster="slurm", cores=1, memory="1GB")
    cluster = engine._jobqueue_cluster()  # constructs the scheduler, submits no job
    try:
        port = int(cluster.scheduler_address.rsplit(":", 1)[1])
        others = {(ip, p) for ip, p in listening_addresses([psutil.Process().pid]) if p != port}
        assert others and {ip for ip, _ in others} == {"127.0.0.1"}
    finally:
        cluster.close()


def test_cli_dry_run_jobscript():
    result = CliRunner().invoke(cli, ["--cluster", "slurm", "--cores", "2", "--memory", "4GB",
                                      "--queue", "debug", "--dry-run-jobscript"])
    assert result.exit_code == 0, result.output
    assert "#SBATCH -p debug" in result.output and "--cpus-per-task=2" in result.output


# The in-process cluster tests start from simulated datasets (the test_simulate source step), not
# from an MS: casacore tables are then only opened by the ms tests and the CLI subprocess tests.


@pytest.fixture(scope="module")
def threads_reference(tmp_path_factory):
    """The test chain run once on the threaded scheduler: what every cluster must reproduce."""
    outdir = tmp_path_factory.mktemp("reference") / "threads"
    with Engine(scheduler="threads") as engine:
        run_pipeline(load_pipeline(chain(None, export=False)), outdir, engine)
    return outdir


def test_two_worker_local_cluster_matches_threads_on_loopback_only(threads_reference, tmp_path,
                                                                   capfd):
    with Engine(workers=2, threads_per_worker=1, dashboard=True) as engine:
        assert engine.describe()["workers"] == 2
        limit = min(w["memory_limit"] for w in engine.client.scheduler_info()["workers"].values())
        assert budget.chunk_bytes() == engine.budget == budget.budget_for(limit, 1)
        pids = engine.process_pids()
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        # scheduler, nannies, workers and dashboard: every listening socket is on 127.0.0.1
        ours = [psutil.Process().pid, *[c.pid for c in psutil.Process().children(recursive=True)]]
        addresses = listening_addresses(ours)
        assert len(addresses) >= 5 and {ip for ip, _ in addresses} == {"127.0.0.1"}
        assert engine.client.dashboard_link.startswith("http://127.0.0.1:")
        document = run_pipeline(load_pipeline(chain(None, export=False)), tmp_path / "cluster",
                                engine, show_progress=True)
    assert document["engine"]["kind"] == "local" and document["engine"]["workers"] == 2
    progress = capfd.readouterr().err
    assert "[3/4] test_clip [" in progress and "100%" in progress
    assert_same_outputs(threads_reference, tmp_path / "cluster")
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    assert not alive  # no orphan workers after the engine closed


def test_in_process_cluster_flushes_its_streams_promptly(threads_reference, tmp_path):
    """The embedded cluster's client, scheduler and worker talk in memory: none of their batched
    streams waits distributed's 2-10 ms before sending, and the results are the threaded
    scheduler's."""
    with Engine(workers=1, threads_per_worker=2, processes=False) as engine:
        scheduler = engine.cluster.scheduler
        streams = [engine.client.scheduler_comm, *scheduler.stream_comms.values(),
                   *scheduler.client_comms.values(),
                   *(w.batched_stream for w in engine.cluster.workers.values())]
        assert len(streams) == 4
        assert all(s.interval <= IN_PROCESS_FLUSH_S for s in streams)
        run_pipeline(load_pipeline(chain(None, export=False)), tmp_path / "inproc", engine)
    assert_same_outputs(threads_reference, tmp_path / "inproc")


def test_killed_worker_is_restarted_and_the_result_is_identical(threads_reference, tmp_path):
    marker = tmp_path / "started"
    killed = []
    with Engine(workers=2, threads_per_worker=1) as engine:
        pids = engine.process_pids()

        def kill_one_worker_mid_step():
            deadline = time.monotonic() + 60
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            psutil.Process(pids[0]).kill()
            killed.append(pids[0])

        killer = threading.Thread(target=kill_one_worker_mid_step)
        killer.start()
        steps = load_pipeline(chain(None, export=False, scale_delay=0.5, marker=str(marker)))
        run_pipeline(steps, tmp_path / "cluster", engine)
        killer.join()
        assert killed == [pids[0]] and not psutil.pid_exists(pids[0])
        engine.client.wait_for_workers(2, timeout=30)
        assert pids[0] not in engine.process_pids()  # the nanny started a new worker process
    records = checkpoint.read_records(tmp_path / "cluster" / "store.zarr")
    assert all(r["status"] == "complete" for r in records)
    # the delay only slows the chunks down: values must equal the threaded run's exactly
    for a, b in zip(load_outputs(threads_reference), load_outputs(tmp_path / "cluster")):
        assert sorted(a.data_vars) == sorted(b.data_vars)
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values)


def test_radiocal_open_reads_a_run(threads_reference):
    datasets = radiocal.open(threads_reference)
    assert len(datasets) == 4 and "VISIBILITY_CORRECTED" in datasets[0]
    assert datasets[0]["VISIBILITY"].chunks[0] == (2, 1)  # the source's time chunks survived
