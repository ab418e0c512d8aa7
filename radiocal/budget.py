"""The memory budget: how many bytes of visibilities one chunk may hold.

Every step sizes its chunks from this one number, so the memory of a run is a few chunks per
worker thread whatever the size of the data. It lives at the bottom layer (it imports only dask)
so that ms/, store/, the domains' graph builders and the engine can read it; the engine sets it for a
run (global option ``--chunk-mb``, derived from the worker memory limit and thread count when not
given) through dask's config, which graph builders read in the client process where graphs are
built.

Use :func:`chunk_bytes` wherever a chunk is sized; never a module constant of your own.
"""

from __future__ import annotations

import contextlib
import math

import dask

CONFIG_KEY = "radiocal.chunk-bytes"
LIMIT_KEY = "radiocal.chunk-limit"
# A run's memory is a few chunks per thread, so chunks at the budget keep it the same for any
# size of data past the budget, and smaller data sit below it. At 64 MiB a VLA-like MS of 4x the
# length peaked at 1.2-1.7x the memory of the shorter one (its scans were chunks below the
# budget); at 8 MiB both are at the budget (docs/engine.md has the figures). 8 MiB once
# OOM-killed the lwa flow's sky_bandpass on the 3 GB 352-antenna set: per-channel solves read by
# channel chunk then; they spill their statistics now (calibration/graph.py) and the flow peaks
# at 1.70 GB.
DEFAULT_CHUNK_BYTES = 8 * 2**20
# The chunk limit where workers have no memory limit (an unsplittable unit: see chunk_limit)
DEFAULT_LIMIT_BYTES = 64 * 2**20
# The help of the budget's user-facing settings (global --chunk-mb, convert's chunk_mb)
CHUNK_MB_HELP = ("Memory budget of one visibility chunk, MiB (default: from the worker memory "
                 "limit and threads, at most 8)")
# A thread's working set is several chunks at once: its inputs (visibilities, flags, weights,
# model), float64 temporaries of a kernel, and the outputs on their way to the store. Measured
# peaks are 6-10 chunks per thread; 16 leaves room for dask's own bookkeeping and the page cache.
CHUNKS_PER_THREAD = 16
MIN_CHUNK_BYTES = 2**20
VISIBILITY_ITEMSIZE = 8    # complex64
# The derived budget never exceeds the default: bigger chunks only cost memory.
MAX_CHUNK_BYTES = DEFAULT_CHUNK_BYTES


def chunk_bytes() -> int:
    """The current budget for one chunk of ``VISIBILITY`` (complex64), in bytes."""
    return int(dask.config.get(CONFIG_KEY, DEFAULT_CHUNK_BYTES))


def chunk_limit() -> int:
    """The most bytes one chunk may hold when a step's unit of work cannot be split (one
    baseline's time x frequency plane, one averaging cell): the memory a chunk may take, never
    less than :func:`chunk_bytes`. Derived budgets keep their chunks small for flat memory, but
    a unit bigger than them still fits a worker; a budget the user sets is this limit too."""
    return max(chunk_bytes(), int(dask.config.get(LIMIT_KEY, 0) or 0))


def mib_to_bytes(mib: float) -> int:
    """A budget given in MiB (``--chunk-mb``, ``chunk_mb``) in bytes; at least one byte."""
    return max(1, int(float(mib) * 2**20))


def limit_for(memory_limit_bytes: float | None, threads: int) -> int:
    """The chunk limit (:func:`chunk_limit`) of ``threads`` threads sharing
    ``memory_limit_bytes`` of one worker: its memory per chunk."""
    if not memory_limit_bytes:
        return DEFAULT_LIMIT_BYTES
    per_chunk = int(memory_limit_bytes) // (CHUNKS_PER_THREAD * max(1, int(threads)))
    return int(max(MIN_CHUNK_BYTES, per_chunk))


def budget_for(memory_limit_bytes: float | None, threads: int) -> int:
    """Chunk budget that keeps ``threads`` threads within ``memory_limit_bytes`` of one worker."""
    if not memory_limit_bytes:
        return DEFAULT_CHUNK_BYTES
    return int(min(MAX_CHUNK_BYTES, limit_for(memory_limit_bytes, threads)))


def visibility_chunks(ntime: int, nbl: int, nchan: int, npol: int,
                      nbytes: int | None = None) -> tuple[int, int, int]:
    """Chunk sizes along (time, baseline, frequency) of a complex64 visibility array in the budget.

    Whole integrations (every baseline and channel of a time) are preferred, as many per chunk as
    fit in ``nbytes`` (default: :func:`chunk_bytes`). An integration larger than the budget is
    split along baseline, and a baseline's spectrum larger than the budget along frequency too, so
    no chunk ever exceeds it (down to one polarization vector of one cell).
    """
    nbytes = chunk_bytes() if nbytes is None else int(nbytes)
    cell = max(1, npol) * VISIBILITY_ITEMSIZE
    per_time = max(1, nbl) * max(1, nchan) * cell
    if per_time <= nbytes:
        return max(1, min(ntime, nbytes // per_time)), nbl, nchan
    per_baseline = max(1, nchan) * cell
    if per_baseline <= nbytes:
        return 1, max(1, min(nbl, nbytes // per_baseline)), nchan
    return 1, 1, max(1, min(nchan, nbytes // cell))


def chunk_sizes(n: int, size: int) -> tuple[int, ...]:
    """``n`` elements in chunks of ``size`` (the last one shorter), as zarr stores them."""
    size = max(1, int(size))
    return tuple(min(size, n - start) for start in range(0, n, size)) or (0,)


def require(nbytes: int, what: str, advice: str) -> None:
    """Stop before anything runs when ``what`` needs ``nbytes`` in one chunk, over the budget.

    A step whose smallest unit of work (one baseline's time x frequency plane, one averaging
    cell) cannot be split to fit calls this while it builds its graph, so that the run ends with
    one line saying what to change rather than with a worker killed for its memory. The unit may
    exceed the budget up to :func:`chunk_limit`.
    """
    limit = chunk_limit()
    if nbytes > limit:
        from radiocal.errors import ConfigError

        raise ConfigError(f"{what} needs {nbytes / 2**20:.1f} MiB in one chunk, over the chunk "
                          f"limit of {limit / 2**20:.1f} MiB: raise --chunk-mb to at least "
                          f"{math.ceil(nbytes / 2**20)} or {advice}")


@contextlib.contextmanager
def chunk_budget(nbytes: int, limit: int | None = None):
    """Run the enclosed graph building with a chunk budget of ``nbytes`` (and a chunk limit of
    ``limit``, default the budget itself)."""
    with dask.config.set({CONFIG_KEY: int(nbytes), LIMIT_KEY: int(limit or nbytes)}):
        yield
