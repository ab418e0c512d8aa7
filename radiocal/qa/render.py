"""Drawing the report's figures: in parallel worker processes, each laid out and drawn once.

A figure is described by a *job*, ``(stem, function, args)``: ``function(*args)`` (a module-level
function of :mod:`radiocal.qa.plots`, so that it pickles) returns a figure or a list of pages.
Workers draw each page once with Agg into PNG bytes; the driver writes ``plots/<stem>.png`` and
puts the same pixels on a page of the PDF, so no figure is laid out or drawn twice (before, the
PDF backend drew every scatter point and dynamic-spectrum cell again as vector paths, and that
cost as much as the PNGs).
"""

from __future__ import annotations

import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

DPI = 100
# Below this many figures a pool's start-up (a forkserver importing matplotlib) costs more than
# drawing them in this process saves.
MIN_PARALLEL_JOBS = 4


def draw(job) -> list[bytes]:
    """PNG bytes of every page of one job."""
    import matplotlib.pyplot as plt

    _, function, args = job
    figures = function(*args)
    pages = []
    for fig in figures if isinstance(figures, list) else [figures]:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
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

    ``processes``: worker processes (default: the usable cores); 1 draws here, serially.
    """
    processes = min(processes or usable_cores(), len(jobs))
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


def image_page(png: bytes):
    """A PDF page of the drawn figure's size showing its pixels at full resolution."""
    import matplotlib.pyplot as plt

    pixels = plt.imread(io.BytesIO(png), format="png")
    fig = plt.figure(figsize=(pixels.shape[1] / DPI, pixels.shape[0] / DPI))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    # 'none': vector backends embed the pixels as they are, without resampling them
    ax.imshow(pixels, interpolation="none", aspect="auto")
    return fig
