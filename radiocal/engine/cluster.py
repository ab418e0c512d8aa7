"""Where dask work runs: an embedded LocalCluster, an existing scheduler, a batch queue or in-process.

:class:`Engine` is a context manager owning that choice for one run. Everything the engine starts
listens on 127.0.0.1 only, except the scheduler of a batch-queue cluster, which compute nodes must
reach (asking for ``cluster="slurm"`` is asking for that; ``interface`` says where). The dashboard is
optional and loopback-only.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading

import dask
import psutil
from dask.utils import parse_bytes

from radiocal import budget
from radiocal.errors import ConfigError

log = logging.getLogger("radiocal.engine")

CLUSTERS = ("local", "slurm", "pbs", "sge")
IN_PROCESS = {"sync": "synchronous", "synchronous": "synchronous", "threads": "threads"}
LOOPBACK = "127.0.0.1"


def _job_memory(memory: str | int | None) -> int:
    """Bytes of a batch job's --memory, whole MiB (the unit batch systems grant memory in)."""
    try:
        nbytes = parse_bytes(memory)
    except (TypeError, ValueError):
        raise ConfigError(f"--memory {memory!r} is not a size like 16GB") from None
    if nbytes < 2**20:
        raise ConfigError(f"--memory {memory!r} is less than 1 MiB")
    return nbytes // 2**20 * 2**20


def _usable_cores() -> int:
    # The affinity mask, not the machine's core count: a batch job or taskset may give us fewer.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


# On a small machine the embedded cluster's workers are threads of the radiocal process: numba
# kernels release the GIL, so threads use every core, while worker processes each start an
# interpreter, load every kernel and receive their data by copy. Measured on 2 cores (VLA-like
# x1, bench_scale.py, docs/engine.md "Threads or processes"): convert 8.9 CPU-s in-process (load
# 14) against 18.8 CPU-s with two one-thread worker processes (load 24), the threaded scheduler
# 5.9 CPU-s (load 24); earlier, convert + calibrate + dynspec of a 0.56 GB MS took 41 s with two
# worker processes and 20 s in-process.
THREAD_WORKERS_MAX_CORES = 4

# What an embedded cluster without a dashboard does in the background and nobody reads: each
# worker's statistical profiler walks every thread's stack 100 times a second (it feeds only the
# dashboard's profile pages), and every server checks its event loop's health 50 times a second.
# Idle, the in-process cluster took 0.49 CPU-s per 10 s with them and 0.12 without (2 cores);
# under load the profiler's share grows with the threads it samples (~15% of the event loop's
# CPU in a profile of `radiocal convert`). A blocked loop is still reported, at most 1 s late.
# The scheduler and every worker also sample their process's CPU, memory, file descriptors and
# the host's network and disk counters every 0.5 s for the dashboard's graphs (psutil, ~0.7 ms
# a sample on the event loop, 0.5 ms without the disks; in a stack sample of `radiocal
# calibrate` the loop was in these reads half the time it was not idle, file reads' waits
# included). Without a dashboard nobody plots them: every 2 s keeps the heartbeats' figures, no
# disks. The worker's memory limit does not read them (its own memory monitor still samples
# every 0.1 s). With the memory monitor's cheaper walk (progress.py) an idle engine used 0.46
# instead of 1.25 CPU-s per 30 s (event loop 0.49 -> 0.36 CPU-s; load ~14).
QUIET_LOCAL_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.system-monitor.disk": False,
    "distributed.admin.system-monitor.gil.enabled": False,
}

# And what the one worker of an in-process cluster (thread workers) has no use for, sharing the
# process, and the GIL, with the event loop and the driver: the active memory manager compares
# replicas among workers every 2 s, work stealing balances workers and follows every task's
# transitions. ``radiocal calibrate`` of the VLA-like x4 store at 2 threads held the GIL ~0.3 s
# in them (py-spy --gil, load ~5); with the profiler off too it used 2.2-2.6 CPU-s (~11%) less
# (two interleaved pairs, load 8-13).
QUIET_IN_PROCESS = {
    "distributed.scheduler.active-memory-manager.start": False,
    "distributed.scheduler.work-stealing": False,
}


def local_layout(workers: int | None = None, threads_per_worker: int | None = None) -> tuple[int, int]:
    """Worker processes and threads per worker for this machine, so that workers x threads = cores.

    Numba kernels release the GIL, so threads scale; a few processes keep zarr/xarray bookkeeping
    (which holds the GIL) from serialising everything. Given one of the two, the other follows.
    """
    from distributed.deploy.utils import nprocesses_nthreads

    cores = _usable_cores()
    if workers is None and threads_per_worker is None:
        return nprocesses_nthreads(cores)
    if workers is None:
        return max(1, cores // threads_per_worker), threads_per_worker
    if threads_per_worker is None:
        return workers, max(1, cores // workers)
    return workers, threads_per_worker


# distributed batches the messages between client, scheduler and worker and flushes each stream
# every 2-10 ms (fixed in distributed's code; dask/distributed#5036). Across a network that
# saves packets; between threads of this process (inproc:// comms, a queue put each) it is only
# waiting, paid at every hop of a dependency chain: a compute of a small graph took 75-78 ms
# wall for 28-31 ms of CPU, 37-44 ms with this (the threaded scheduler: 10.5 ms). The
# in-process cluster's streams flush after this instead. (Whole routes on 2 cores gained
# within noise: there the cost is the scheduler's per-task bookkeeping, see docs/engine.md.)
IN_PROCESS_FLUSH_S = 0.0002


def _flush_promptly(client, cluster) -> None:
    """Shorten the flush interval of every batched stream of an in-process LocalCluster (client
    to scheduler, scheduler to worker and client, worker to scheduler). A distributed without
    these attributes keeps its own intervals."""
    scheduler = cluster.scheduler
    streams = [getattr(client, "scheduler_comm", None),
               *(getattr(w, "batched_stream", None) for w in cluster.workers.values()),
               *getattr(scheduler, "stream_comms", {}).values(),
               *getattr(scheduler, "client_comms", {}).values()]
    for stream in streams:
        if isinstance(getattr(stream, "interval", None), float):
            stream.interval = min(stream.interval, IN_PROCESS_FLUSH_S)


class Engine:
    """Run dask work locally, on an existing cluster, through a batch queue or in-process.

    Parameters
    ----------
    scheduler : str, optional
        ``"tcp://HOST:PORT"`` to use a running dask scheduler; ``"sync"`` or ``"threads"`` for
        in-process execution without distributed (a thread per core, or ``threads_per_worker``).
        None starts a cluster.
    cluster : {"local", "slurm", "pbs", "sge"}
        What to start when ``scheduler`` is None: an embedded ``distributed.LocalCluster``
        (default) or dask-jobqueue workers submitted to a batch system.
    workers, threads_per_worker : int, optional
        Local cluster layout; default: sized to the machine (workers x threads = usable cores).
    memory_limit : str or int, optional
        Memory limit per local worker (``"4GB"``); default: available memory / workers.
    processes : bool, optional
        Local workers as processes or as threads of this process. Default: threads on machines
        with up to ``THREAD_WORKERS_MAX_CORES`` usable cores (unless ``workers`` is given),
        processes beyond.
    jobs, cores, memory, walltime, queue :
        Batch-queue cluster: number of jobs, cores and memory per job, wall time, queue name.
    interface : str, optional
        Batch-queue cluster: network interface (``"ib0"``, ``"lo"``) the scheduler and workers
        listen on; default dask-jobqueue's (its config, else every interface of this host).
    dashboard : bool
        Serve the dask dashboard (on 127.0.0.1 for a local cluster).
    chunk_bytes : int, optional
        The chunk budget of the run (``radiocal --chunk-mb``), set as dask config
        ``radiocal.chunk-bytes`` while the engine runs. Default: :func:`radiocal.budget.budget_for`
        the smallest worker memory limit per thread (local cluster, a running scheduler), the
        batch job's memory per core, or the available memory per core in-process.

    Examples
    --------
    >>> with Engine(scheduler="threads") as eng:       # doctest: +SKIP
    ...     result = eng.compute(lazy_thing)
    """

    connect_timeout = "20s"  # for --scheduler: how long to try before giving up

    def __init__(
        self,
        scheduler: str | None = None,
        cluster: str = "local",
        *,
        workers: int | None = None,
        threads_per_worker: int | None = None,
        memory_limit: str | int | None = None,
        processes: bool | None = None,
        jobs: int = 1,
        cores: int | None = None,
        memory: str | None = None,
        walltime: str | None = None,
        queue: str | None = None,
        interface: str | None = None,
        dashboard: bool = False,
        chunk_bytes: int | None = None,
    ):
        if cluster not in CLUSTERS:
            raise ConfigError(f"unknown cluster {cluster!r} (choose from {', '.join(CLUSTERS)})")
        if scheduler is not None and scheduler not in IN_PROCESS and "://" not in scheduler:
            raise ConfigError(
                f"scheduler {scheduler!r} is neither an address like tcp://HOST:PORT nor sync/threads"
            )
        if scheduler is not None and cluster != "local":
            raise ConfigError("give either --scheduler or --cluster, not both")
        for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker),
                            ("jobs", jobs), ("cores", cores)):
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if chunk_bytes is not None and int(chunk_bytes) < 1:
            raise ConfigError(f"the chunk budget must be positive, got {chunk_bytes} bytes")
        if cluster != "local" and (cores is None or memory is None):
            raise ConfigError(f"--cluster {cluster} needs --cores and --memory per job")
        self.scheduler = scheduler
        self.cluster_kind = cluster
        self.workers, self.threads_per_worker = workers, threads_per_worker
        self.memory_limit = memory_limit
        if processes is None:
            processes = workers is not None or _usable_cores() > THREAD_WORKERS_MAX_CORES
        self.processes = processes
        self.jobs, self.cores, self.memory = jobs, cores, memory
        self.walltime, self.queue, self.interface = walltime, queue, interface
        self.job_memory = _job_memory(memory) if cluster != "local" else None
        self.dashboard = dashboard
        self.chunk_bytes = None if chunk_bytes is None else int(chunk_bytes)
        self.budget: int | None = None     # the run's chunk budget, known once started
        self.client = None
        self.cluster = None
        self._stack: contextlib.ExitStack | None = None

    # -- description --------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"sync"``, ``"threads"``, ``"local"``, ``"remote"`` or the batch system name."""
        if self.scheduler in IN_PROCESS:
            return "sync" if IN_PROCESS[self.scheduler] == "synchronous" else "threads"
        if self.scheduler is not None:
            return "remote"
        return self.cluster_kind

    @property
    def distributed(self) -> bool:
        """True when work goes through a distributed scheduler (progress and memory differ)."""
        return self.kind not in ("sync", "threads")

    def describe(self) -> dict:
        """JSON-ready description of where work ran, for provenance."""
        info = {"kind": self.kind}
        if self.client is not None:
            info["scheduler"] = self.client.scheduler.address
            workers = self.client.scheduler_info()["workers"]
            info["workers"] = len(workers)
            info["threads"] = sum(w["nthreads"] for w in workers.values())
        elif self.kind == "threads":
            info["threads"] = self._in_process_threads()
        if self.budget is not None:
            info["chunk_bytes"] = self.budget
        return info

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> "Engine":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "Engine":
        """Start (or connect to) the cluster and make it dask's default for this process."""
        if self._stack is not None:
            return self
        stack = contextlib.ExitStack()
        try:
            if self.kind in ("sync", "threads"):
                threads = self._in_process_threads()
                # One pool for every thread that computes: without it dask's threaded scheduler
                # gives each calling thread a pool of its own, and export's two batch threads
                # ran twice the threads asked for.
                pool = (stack.enter_context(concurrent.futures.ThreadPoolExecutor(
                    threads, thread_name_prefix="radiocal-dask")) if self.kind == "threads"
                    else None)
                stack.enter_context(dask.config.set(scheduler=self._in_process_get(),
                                                    num_workers=threads, pool=pool))
                log.info("engine: in-process %s scheduler", self.kind)
            else:
                self._start_distributed(stack)
            self.budget, limit, origin = self._chunk_budget()
            stack.enter_context(budget.chunk_budget(self.budget, limit))
            log.info("engine: chunk budget %.1f MiB, limit %.1f MiB (%s)", self.budget / 2**20,
                     limit / 2**20, origin)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def _chunk_budget(self) -> tuple[int, int, str]:
        """The run's chunk budget and limit (:func:`radiocal.budget.chunk_limit`) and where they
        come from (for the log)."""
        if self.chunk_bytes is not None:
            return self.chunk_bytes, self.chunk_bytes, "--chunk-mb"
        memory, threads = self._worker_memory()
        if not memory:
            return (budget.DEFAULT_CHUNK_BYTES, budget.DEFAULT_LIMIT_BYTES,
                    "default: workers have no memory limit")
        return (budget.budget_for(memory, threads), budget.limit_for(memory, threads),
                f"from {memory / 2**30:.1f} GiB per worker of {threads} thread(s)")

    def _worker_memory(self) -> tuple[float | None, int]:
        """Memory limit and threads of the tightest worker (least memory per thread)."""
        if self.kind in ("sync", "threads"):
            return psutil.virtual_memory().available, self._in_process_threads()
        if self.kind in ("slurm", "pbs", "sge"):
            # Jobs may not have started yet: the job's request is what its workers will get
            return self.job_memory, self.cores
        workers = self.client.scheduler_info()["workers"].values()
        limits = [(w.get("memory_limit") or 0, max(1, int(w.get("nthreads") or 1))) for w in workers]
        limits = [(memory, threads) for memory, threads in limits if memory]
        if not limits:
            return None, 1
        return min(limits, key=lambda pair: pair[0] / pair[1])

    def _in_process_get(self):
        # The scheduler's function, not its name: given a name, every dask.compute imports
        # distributed to look for a client (~0.3 s of a `radiocal convert`'s whole process).
        import dask.local
        import dask.threaded

        return dask.local.get_sync if self.kind == "sync" else dask.threaded.get

    def _in_process_threads(self) -> int:
        if self.kind == "sync":
            return 1
        return self.threads_per_worker or _usable_cores()

    def _start_distributed(self, stack: contextlib.ExitStack) -> None:
        from distributed import Client

        if self.kind == "remote":
            try:
                self.client = stack.enter_context(Client(self.scheduler, timeout=self.connect_timeout))
            except OSError as err:
                raise ConfigError(f"cannot reach scheduler {self.scheduler}: {err}") from None
            log.info("engine: connected to %s", self.scheduler)
            return
        if self.kind == "local":
            if not self.dashboard:
                stack.enter_context(dask.config.set(QUIET_LOCAL_CLUSTER))
                if not self.processes:
                    stack.enter_context(dask.config.set(QUIET_IN_PROCESS))
            self.cluster = stack.enter_context(self._local_cluster())
        else:
            self.cluster = stack.enter_context(self._jobqueue_cluster())
            if self.cluster_kind == "slurm":
                self._check_submission()
            self.cluster.scale(jobs=self.jobs)
        self.client = stack.enter_context(Client(self.cluster))
        if self.kind == "local" and not self.processes:
            _flush_promptly(self.client, self.cluster)
        log.info("engine: %s cluster at %s%s", self.kind, self.cluster.scheduler_address,
                 f", dashboard {self.client.dashboard_link}" if self.dashboard else "")
        if self.kind != "local":
            # Nothing runs before a job starts; then the run's provenance records its worker too.
            log.info("engine: waiting for the first of %d %s job(s) to start", self.jobs, self.kind)
            self.client.wait_for_workers(1)

    def _local_cluster(self):
        from distributed import LocalCluster

        if self.processes:
            workers, threads = local_layout(self.workers, self.threads_per_worker)
        else:   # one in-process worker uses every core through its threads
            workers = self.workers or 1
            threads = self.threads_per_worker or max(1, _usable_cores() // workers)
        memory_limit = self.memory_limit
        if memory_limit is None:
            memory_limit = int(psutil.virtual_memory().available * 0.9 / workers)
        # Worker processes, nannies and the scheduler all bind to loopback (port 0 avoids
        # clashes); thread workers talk to the scheduler in memory (inproc://), no socket at all.
        network = dict(host=LOOPBACK, scheduler_port=0) if self.processes else {}
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            processes=self.processes,
            memory_limit=memory_limit,
            **network,
            # The scheduler's HTTP server (health, metrics, dashboard) always runs: keep it on
            # loopback and off the well-known port 8787 another user's dashboard may hold.
            dashboard_address=f"{LOOPBACK}:0",
            scheduler_kwargs={"dashboard": self.dashboard},
            worker_dashboard_address=None,
            silence_logs=logging.WARNING,
        )

    def _jobqueue_kwargs(self) -> dict:
        # One worker process per job: its memory limit is the job's memory, its threads the cores.
        kwargs = dict(cores=self.cores, memory=self.job_memory, processes=1, job_name="radiocal")
        if self.cluster_kind == "slurm":
            # dask-jobqueue rounds --mem up to whole GiB (1.5GB -> 2G): ask for what was asked.
            kwargs["job_mem"] = f"{self.job_memory // 2**20}M"
        if self.walltime:
            kwargs["walltime"] = self.walltime
        if self.queue:
            kwargs["queue"] = self.queue
        if self.interface:
            kwargs["interface"] = self.interface
        return kwargs

    def _jobqueue_module(self):
        # Importing dask_jobqueue (its runner module) replaces this process's SIGINT handler with
        # sys.exit(): Ctrl-C would then exit 0 mid-run, silently. Keep the handler we had.
        handler = signal.getsignal(signal.SIGINT)
        try:
            import dask_jobqueue
        finally:
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, handler)

        return {"slurm": (dask_jobqueue.SLURMCluster, "slurm", "SLURMJob"),
                "pbs": (dask_jobqueue.PBSCluster, "pbs", "PBSJob"),
                "sge": (dask_jobqueue.SGECluster, "sge", "SGEJob")}[self.cluster_kind]

    def _jobqueue_cluster(self):
        cluster_class, _, _ = self._jobqueue_module()
        # Passing scheduler options replaces the configured ones (host, say): keep those.
        configured = dask.config.get(f"jobqueue.{self.cluster_kind}.scheduler-options", None) or {}
        options = {**configured, "dashboard_address": f"{LOOPBACK}:0", "dashboard": self.dashboard}
        return cluster_class(**self._jobqueue_kwargs(), scheduler_options=options)

    def _check_submission(self) -> None:
        """Have SLURM validate the job script (sbatch --test-only), so a job it would refuse is a
        one-line error: scale() submits in the background, where sbatch's error is only logged
        and the run would wait for a worker forever."""
        with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
            script.write(self.cluster.job_script())
            script.flush()
            try:
                checked = subprocess.run(["sbatch", "--test-only", script.name], capture_output=True,
                                         text=True, timeout=60, stdin=subprocess.DEVNULL)
            except FileNotFoundError:
                raise ConfigError("--cluster slurm: sbatch not found (run on a SLURM login node)") from None
        if checked.returncode != 0:
            lines = [line.strip() for line in checked.stderr.splitlines() if line.strip()] or ["?"]
            raise ConfigError(f"SLURM would refuse the worker job: {lines[-1]}")

    def job_script(self) -> str:
        """The batch script one worker job would be submitted with; submits nothing, starts nothing.

        The scheduler address in the script is a placeholder (the real one is chosen at start).
        """
        if self.kind not in ("slurm", "pbs", "sge"):
            raise ConfigError("a job script exists only with --cluster slurm, pbs or sge")
        import importlib

        _, module, job_class = self._jobqueue_module()
        job = getattr(importlib.import_module(f"dask_jobqueue.{module}"), job_class)
        placeholder = f"tcp://{socket.gethostname()}:SCHEDULER_PORT"
        header = (f"# radiocal would submit {self.jobs} job(s) like this to {self.kind}; "
                  f"the scheduler port is chosen at start.\n")
        return header + job(scheduler=placeholder, name="radiocal-worker",
                            **self._jobqueue_kwargs()).job_script()

    def close(self) -> None:
        """Shut workers and scheduler down (idempotent); called on exceptions and Ctrl-C too."""
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                stack.close()
            finally:
                self.client = None
                self.cluster = None
                self.budget = None

    # -- work ---------------------------------------------------------------------------------

    def compute(self, *collections, **kwargs):
        """``dask.compute`` on this engine (the engine must be started)."""
        if self._stack is None:
            raise RuntimeError("Engine not started: use it as a context manager")
        return dask.compute(*collections, **kwargs)

    def process_pids(self) -> list[int]:
        """PIDs of local worker processes (empty for remote or in-process engines)."""
        if self.client is None or self.kind != "local" or not self.processes:
            return []
        return sorted(self.client.run(os.getpid).values())

    def worker_memory(self) -> int | None:
        """Current total memory of the workers in bytes, as the scheduler last heard it."""
        if self.client is None:
            return None
        workers = self.client.scheduler_info()["workers"].values()
        return sum(int(w.get("metrics", {}).get("memory", 0)) for w in workers)
