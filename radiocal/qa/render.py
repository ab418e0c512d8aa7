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
import os
from concurrent.futures import ProcessPoolExecutor

DPI = 100
# zlib level of the PNGs: 1 took 0.08 s for a dense scatter page, 6 (PIL's default) 0.11 s, for
# files 4% smaller
PNG_LEVEL = 1
# Below this many figures a pool's start-up (a forkserver importing matplotlib) costs more than
# drawing them in this process saves.
MIN_PARALLEL_JOBS = 4
# With figures at 0.1-0.4 CPU-s each (~3.5 CPU-s for a 14-figure report), a pool on 2 cores saves
# less wall time than its forkserver's ~1 CPU-s of imports costs on a busy machine: from 3 cores.
MIN_POOL_CORES = 3


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


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # macOS
        return os.cpu_count() or 1


def draw_all(jobs: list, processes: int | None = None):
    """``(stem, png bytes)`` of every page, in job order (a job's later pages get ``_2``, ...).

    ``processes``: worker processes (default: the usable cores from ``MIN_POOL_CORES`` on,
    else 1); 1 draws here, serially.
    """
    cores = usable_cores()
    processes = min(processes or (cores if cores >= MIN_POOL_CORES else 1), len(jobs))
    if processes > 1 and len(jobs) >= MIN_PARALLEL_JOBS:
        # forkserver, not fork: this process runs dask's threads; the server imports the
        # plotting modules once and every worker starts from it
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["radiocal.qa.plots"])
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            drawn = list(pool.map(draw, jobs))
    else:
        drawn = [draw(job) for job in jobs]
    for (stem, _, _), pages in zip(jobs, drawn):
        for k, png in enumerate(pages):
            yield (stem if k == 0 else f"{stem}_{k + 1}"), png
