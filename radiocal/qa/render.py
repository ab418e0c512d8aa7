"""Drawing the report's figures: in parallel worker processes, each laid out and drawn once.

A figure is described by a *job*, ``(stem, function, args)``: ``function(*args)`` (a module-level
function of :mod:`radiocal.qa.plots`, so that it pickles) returns a figure or a list of pages.
Workers draw each page once with Agg into RGB PNG bytes; the driver writes ``plots/<stem>.png``
and puts the same bytes on a page of the PDF (:mod:`radiocal.qa.pdf`), so no figure is laid out,
drawn or compressed twice.
"""

from __future__ import annotations

import io
import multiprocessing
import multiprocessing.forkserver
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

DPI = 100
# zlib level of the PNGs: 1 took 0.08 s for a dense scatter page, 6 (PIL's default) 0.11 s, for
# files 4% smaller
PNG_LEVEL = 1
# From 2 cores figures are drawn by worker processes. Started before the report's reductions are
# computed, their imports (matplotlib: ~1 CPU-s in the forkserver) and the figures that need no
# reduction (solutions, dynamic spectra) overlap that compute, which leaves cores idle between
# its tasks; the rest are drawn two at a time after it.
MIN_POOL_CORES = 2
# what the forkserver imports once, so that no worker imports it again
PRELOAD = ["radiocal.qa.plots", "matplotlib.pyplot"]


def draw(job) -> list[bytes]:
    """PNG bytes (8-bit RGB, as :mod:`radiocal.qa.pdf` embeds them) of every page of one job."""
    import numpy as np
    from PIL import Image

    _, function, args = job
    figures = function(*args)
    import matplotlib.pyplot as plt   # after the figure functions chose the Agg backend

    pages = []
    for fig in figures if isinstance(figures, list) else [figures]:
        fig.set_dpi(DPI)
        fig.canvas.draw()
        # the figure's background is opaque: its alpha channel carries nothing
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="png", compress_level=PNG_LEVEL)
        plt.close(fig)
        pages.append(buffer.getvalue())
    return pages


def _ready() -> None:
    """A worker's first job: nothing, so that the pool has started."""


def start_server() -> None:
    """Start the processes' server (and its imports) now, in the background, where a pool will be
    used: a run calls it as the step before the report starts, so that the report's workers
    start at once, ~2 s of imports done while that step leaves a core idle."""
    if usable_cores() >= MIN_POOL_CORES:
        _forkserver()
        multiprocessing.forkserver.ensure_running()


def _forkserver():
    # forkserver, not fork: this process runs dask's threads; the server imports the plotting
    # modules once and every worker starts from it
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # macOS
        return os.cpu_count() or 1


class Drawer:
    """Draws figure jobs as they are submitted, in worker processes from ``MIN_POOL_CORES`` usable
    cores on (one per core, or ``processes``), else here when their pages are asked for.

    Use as a context manager; :meth:`submit` the jobs whose inputs are ready early, then
    :meth:`pages` the whole report's jobs in order (it submits the rest).
    """

    def __init__(self, processes: int | None = None):
        cores = usable_cores()
        self.processes = processes or (cores if cores >= MIN_POOL_CORES else 1)
        self._pool = self._feeder = None
        self._futures: dict = {}
        if self.processes > 1:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=_forkserver())
            # Starting a worker waits for the server's imports (~2 s, unless start_server ran
            # before): a thread of its own submits, so that the caller goes on meanwhile. The
            # first job starts the pool now.
            self._feeder = ThreadPoolExecutor(1, thread_name_prefix="radiocal-draw")
            self._feeder.submit(self._pool.submit, _ready)

    def __enter__(self) -> "Drawer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers once they finish what they draw; jobs not started are dropped."""
        if self._pool is not None:
            self._feeder.shutdown(cancel_futures=True)
            self._pool.shutdown(cancel_futures=True)

    def background(self, function, *args):
        """A future of ``function(*args)`` run in the thread that submits jobs (after those
        already submitted; None without worker processes): what prepares a batch of jobs can
        run there too, so that the caller goes on at once."""
        return self._feeder.submit(function, *args) if self._pool is not None else None

    def forget(self) -> None:
        """Drop every job submitted so far (its inputs changed): :meth:`pages` draws it again."""
        self._futures.clear()

    def submit(self, job) -> None:
        """Start drawing ``job`` (a worker's; here, nothing until :meth:`pages`)."""
        if self._pool is not None and job[0] not in self._futures:
            self._futures[job[0]] = self._feeder.submit(self._pool.submit, draw, job)

    def pages(self, jobs):
        """``(stem, png bytes)`` of every page of ``jobs``, in order (a job's later pages get
        ``_2``, ...)."""
        for job in jobs:
            self.submit(job)
        for job in jobs:
            stem = job[0]
            try:
                drawn = self._futures[stem].result().result() if stem in self._futures else draw(job)
            except BrokenProcessPool:
                # workers could not start (a script that runs the report when its main module
                # is imported: each worker imports it again): draw here
                drawn = draw(job)
            for k, png in enumerate(drawn):
                yield (stem if k == 0 else f"{stem}_{k + 1}"), png


def draw_all(jobs: list, processes: int | None = None):
    """``(stem, png bytes)`` of every page, in job order (see :class:`Drawer`); 1 process draws
    here, serially."""
    with Drawer(processes) as drawer:
        yield from drawer.pages(jobs)
