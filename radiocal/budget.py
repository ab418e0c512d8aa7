"""The memory budget: how many bytes of visibilities one chunk may hold.

Every step sizes its chunks from this one number, so the memory of a run is a few chunks per
worker thread whatever the size of the data. It lives at the bottom layer (it imports only dask)
so that io, the domains' graph builders and the engine can all read it; the engine sets it for a
run (global option ``--chunk-mb``, derived from the worker memory limit and thread count when not
given) through dask's config, which graph builders read in the client process where graphs are
built.

Use :func:`chunk_bytes` wherever a chunk is sized; never a module constant of your own.
"""

from __future__ import annotations

import contextlib

import dask

CONFIG_KEY = "radiocal.chunk-bytes"
DEFAULT_CHUNK_BYTES = 64 * 2**20
# The help of the budget's user-facing settings (global --chunk-mb, convert's chunk_mb)
CHUNK_MB_HELP = ("Memory budget of one visibility chunk, MiB (default: from the worker memory "
                 "limit and threads, at most 64)")
# A thread's working set is several chunks at once: its inputs (visibilities, flags, weights,
# model), float64 temporaries of a kernel, and the outputs on their way to the store. Measured
# peaks are 6-10 chunks per thread; 16 leaves room for dask's own bookkeeping and the page cache.
CHUNKS_PER_THREAD = 16
MIN_CHUNK_BYTES = 2**20
# Beyond 64 MiB a chunk's task runs for a second or more, so dask's per-task cost (~1 ms) is
# already negligible: bigger chunks only cost memory.
MAX_CHUNK_BYTES = DEFAULT_CHUNK_BYTES


def chunk_bytes() -> int:
    """The current budget for one chunk of ``VISIBILITY`` (complex64), in bytes."""
    return int(dask.config.get(CONFIG_KEY, DEFAULT_CHUNK_BYTES))


def mib_to_bytes(mib: float) -> int:
    """A budget given in MiB (``--chunk-mb``, ``chunk_mb``) in bytes; at least one byte."""
    return max(1, int(float(mib) * 2**20))


def budget_for(memory_limit_bytes: float | None, threads: int) -> int:
    """Chunk budget that keeps ``threads`` threads within ``memory_limit_bytes`` of one worker."""
    if not memory_limit_bytes:
        return DEFAULT_CHUNK_BYTES
    per_chunk = int(memory_limit_bytes) // (CHUNKS_PER_THREAD * max(1, int(threads)))
    return int(min(MAX_CHUNK_BYTES, max(MIN_CHUNK_BYTES, per_chunk)))


@contextlib.contextmanager
def chunk_budget(nbytes: int):
    """Run the enclosed graph building with a chunk budget of ``nbytes``."""
    with dask.config.set({CONFIG_KEY: int(nbytes)}):
        yield
