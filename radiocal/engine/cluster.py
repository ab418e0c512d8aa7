"""Where dask work runs: an embedded LocalCluster, an existing scheduler, a batch queue or in-process.

:class:`Engine` is a context manager owning that choice for one run. Everything the engine starts
listens on 127.0.0.1 only, except the scheduler of a batch-queue cluster, which compute nodes must
reach (asking for ``cluster="slurm"`` is asking for that). The dashboard is optional and loopback-only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

import dask
import psutil

from radiocal.errors import ConfigError

log = logging.getLogger("radiocal.engine")

CLUSTERS = ("local", "slurm", "pbs", "sge")
IN_PROCESS = {"sync": "synchronous", "synchronous": "synchronous", "threads": "threads"}
LOOPBACK = "127.0.0.1"


def _usable_cores() -> int:
    # The affinity mask, not the machine's core count: a batch job or taskset may give us fewer.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


# On a small machine the embedded cluster's workers are threads of the radiocal process: numba
# kernels release the GIL, so threads use every core, while worker processes would each start an
# interpreter, load every kernel and receive their data by copy. Measured on a 2-core machine,
# convert + calibrate + dynspec of a 0.56 GB MS: 41 s with two worker processes, 20 s with one
# in-process worker of two threads.
THREAD_WORKERS_MAX_CORES = 4


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


class Engine:
    """Run dask work locally, on an existing cluster, through a batch queue or in-process.

    Parameters
    ----------
    scheduler : str, optional
        ``"tcp://HOST:PORT"`` to use a running dask scheduler; ``"sync"`` or ``"threads"`` for
        in-process execution without distributed (tests, debugging). None starts a cluster.
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
    dashboard : bool
        Serve the dask dashboard (on 127.0.0.1 for a local cluster).

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
        dashboard: bool = False,
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
        self.walltime, self.queue = walltime, queue
        self.dashboard = dashboard
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
            info["threads"] = _usable_cores()
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
                stack.enter_context(dask.config.set(scheduler=IN_PROCESS[self.scheduler]))
                log.info("engine: in-process %s scheduler", self.kind)
            else:
                self._start_distributed(stack)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

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
            self.cluster = stack.enter_context(self._local_cluster())
        else:
            self.cluster = stack.enter_context(self._jobqueue_cluster())
            self.cluster.scale(jobs=self.jobs)
        self.client = stack.enter_context(Client(self.cluster))
        log.info("engine: %s cluster at %s%s", self.kind, self.cluster.scheduler_address,
                 f", dashboard {self.client.dashboard_link}" if self.dashboard else "")

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
        kwargs = dict(cores=self.cores, memory=self.memory, processes=1, job_name="radiocal")
        if self.walltime:
            kwargs["walltime"] = self.walltime
        if self.queue:
            kwargs["queue"] = self.queue
        return kwargs

    def _jobqueue_module(self):
        import dask_jobqueue

        return {"slurm": (dask_jobqueue.SLURMCluster, "slurm", "SLURMJob"),
                "pbs": (dask_jobqueue.PBSCluster, "pbs", "PBSJob"),
                "sge": (dask_jobqueue.SGECluster, "sge", "SGEJob")}[self.cluster_kind]

    def _jobqueue_cluster(self):
        cluster_class, _, _ = self._jobqueue_module()
        options = {"dashboard_address": f"{LOOPBACK}:0", "dashboard": self.dashboard}
        return cluster_class(**self._jobqueue_kwargs(), scheduler_options=options)

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
