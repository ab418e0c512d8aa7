"""Compiling a graph's kernels in parallel processes before it computes (the settings every
kernel is compiled with are in :mod:`radiocal._numba`).

Compiling in parallel: numba compiles under one lock per process, so however many threads a
worker has, a cold run's kernels compile one after another (the demo's two flagging detectors,
~30 CPU-s each). Graph builders name the kernels and argument types their tasks will call
(:func:`ahead`); before computing, :func:`compile_parallel` compiles those missing from numba's
on-disk cache, one per process (at most one process per usable core, this one included), and
loads them here from the cache. A warm run finds them all cached and starts no process.

A callee that several named kernels share is compiled once, before them, when named with
``first=True``: the processes compiling its callers then load it from the cache instead of each
compiling it again (the two flagging detectors share their LOESS background: ~20 CPU-s cold,
which each detector's process compiled). ``first=2`` names a callee of a ``first=True`` one,
compiled in a wave before it: the LOESS background's own large callees (its fit, ~23 CPU-s, and
its running medians, ~14) compiled one after the other in one process, on the critical path of a
cold run, while the other core had only the background prewarm to do. A process compiles its
share of a wave's kernels one after another (an interpreter and numba imported once, not per
kernel).

Compiling in the background (:func:`prewarm`): the kernels a pipeline's later steps compile on
first use (calibration, sky model, dynamic spectrum, the flag step's clip, shadow and antenna
statistics) are listed per step, with their argument types, in ``pipelines/kernels.json``
(recorded from a cold ``radiocal demo`` by ``benchmarks/record_kernels.py``). At the start of a
run those missing from the cache are compiled into it by one low-priority process, while this one
converts and compiles the flagging detectors: in a cold demo a core idled through the ~30 s in
which the detectors' shared LOESS background compiled, and the later steps' ~15 CPU-s of
compilation ran after the flagging, one kernel after another. An entry whose types no longer
match a kernel's calls costs only its compile; the kernel compiles on first use as before.
"""

import atexit
import contextlib
import contextvars
import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
from numba.core import types

log = logging.getLogger("radiocal.engine")

_WANTED: contextvars.ContextVar = contextvars.ContextVar("radiocal_numba_wanted", default=None)


@contextlib.contextmanager
def collect():
    """Collect the :func:`ahead` calls of the graph builders run inside; yields the list that
    :func:`compile_parallel` takes. An enclosing collection gets them too."""
    wanted: list = []
    token = _WANTED.set(wanted)
    try:
        yield wanted
    finally:
        _WANTED.reset(token)
        outer = _WANTED.get()
        if outer is not None:
            outer.extend(wanted)


def ahead(kernel, *example_args, first: int = 0) -> None:
    """Note that tasks will call the jitted ``kernel`` with arguments typed as ``example_args``
    (values or empty arrays of the same dtype, dimensions, layout and writability). Outside
    :func:`collect` it does nothing.

    ``first``: ``kernel`` is a callee of other named kernels (with these argument types), to be
    compiled before them, and only when one of them is missing from the cache; ``True`` (1)
    before the kernels named without it, 2 before those named ``True``, and so on."""
    wanted = _WANTED.get()
    if wanted is not None:
        wanted.append((kernel, tuple(numba.typeof(a) for a in example_args), int(first)))


def _describe(t) -> list:
    if isinstance(t, types.Array):
        return ["array", str(np.dtype(numba.np.numpy_support.as_dtype(t.dtype))), t.ndim,
                t.layout, not t.mutable]
    if isinstance(t, types.Record):     # a kernel's options (radiocal._numba.record)
        return ["record", numba.np.numpy_support.as_dtype(t).descr]
    return ["scalar", str(np.dtype(numba.np.numpy_support.as_dtype(t)))]


def _rebuild(description):
    if description[0] == "record":
        return numba.from_dtype(np.dtype([tuple(field) for field in description[1]]))
    dtype = numba.from_dtype(np.dtype(description[1]))
    if description[0] == "array":
        return types.Array(dtype, description[2], description[3], readonly=description[4])
    return dtype


def _cached(kernel, signature) -> bool:
    """Whether ``kernel`` has ``signature`` in this process or in numba's on-disk cache."""
    if signature in kernel.overloads:
        return True
    cache = getattr(kernel, "_cache", None)
    try:
        return cache is not None and cache.load_overload(signature, kernel.targetctx) is not None
    except Exception:  # noqa: BLE001 - a cache numba cannot read is a cache miss
        return False


def _indexed(kernel, signature) -> bool:
    """Whether numba's on-disk cache holds ``kernel`` for ``signature`` (its index only: the
    code stays on disk until the kernel is called)."""
    cache = getattr(kernel, "_cache", None)
    if cache is None:
        return False
    try:
        key = cache._index_key(signature, kernel.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - an index numba cannot read is a cache miss
        return False


def manifest_path() -> Path:
    """The kernels the steps compile on first use (see the module docstring)."""
    return Path(__file__).resolve().parents[1] / "pipelines" / "kernels.json"


def _manifest(steps) -> list:
    """The entries ``[module, name, descriptions]`` of ``steps`` (names) in the manifest, in
    step order, each once."""
    try:
        listed = json.loads(manifest_path().read_text())
    except (OSError, ValueError):
        return []
    entries = []
    for step in steps:
        for entry in listed.get(step, []):
            if entry not in entries:
                entries.append(entry)
    return entries


def _missing(entries) -> list:
    out = []
    for module, name, descriptions in entries:
        try:
            kernel = getattr(importlib.import_module(module), name)
            signature = tuple(_rebuild(d) for d in descriptions)
        except Exception:  # noqa: BLE001 - a stale entry: nothing to compile ahead
            continue
        if not _indexed(kernel, signature):
            out.append([module, name, descriptions])
    return out


_BACKGROUND: list = []


def prewarm(steps) -> None:
    """Compile the manifest's kernels of ``steps`` (step names, see the module docstring)
    missing from numba's cache, in one low-priority process in the background. Returns at once;
    the process is ended with this one if it is still running."""
    if numba.core.config.DISABLE_JIT:
        return
    if any(proc.poll() is None for proc, _ in _BACKGROUND):
        return   # an earlier run's is still compiling (the same kernels, for all it knows)
    missing = _missing(_manifest(steps))
    if not missing:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(missing, f)
    log.info("compiling %d numba kernel(s) in the background", len(missing))
    proc = subprocess.Popen([sys.executable, "-m", __name__, "--many", f.name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **_child())
    _BACKGROUND.append((proc, f.name))
    if len(_BACKGROUND) == 1:
        atexit.register(_end_background)


def _end_background() -> None:
    for proc, path in _BACKGROUND:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
        with contextlib.suppress(OSError):
            os.unlink(path)
    _BACKGROUND.clear()


def compile_parallel(wanted) -> None:
    """Compile each ``(kernel, signature, first)`` of ``wanted`` (from :func:`collect`) in this
    process: those missing from numba's cache first in parallel processes, the first of them
    here; the kernels named ``first`` in waves before the others, the highest first.

    A process that fails only costs time: its kernels then compile here, as they would have.
    """
    jobs = list(dict.fromkeys(wanted))
    callers = [(k, s) for k, s, first in jobs if not first]
    missing = [(k, s) for k, s in callers if not _cached(k, s)]
    if missing:
        for wave in sorted({first for _, _, first in jobs if first}, reverse=True):
            _compile_spread([(k, s) for k, s, first in jobs
                             if first == wave and not _cached(k, s)])
        _compile_spread(missing)
    for kernel, signature in callers:
        kernel.compile(signature)   # from the cache when compiled elsewhere


def _compile_spread(missing) -> None:
    """Compile ``missing`` ``(kernel, signature)`` pairs into the cache: the first here, the
    others in processes (at most one per usable core besides this one, each compiling its
    share in turn)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    elsewhere = missing[1:] if (cores or 1) > 1 else []
    if not elsewhere:
        for kernel, signature in missing:
            kernel.compile(signature)
        return
    processes = min(len(elsewhere), cores - 1)
    log.info("compiling %d numba kernel(s) in %d process(es)", len(missing), processes + 1)
    pool = ThreadPoolExecutor(max_workers=processes)
    futures = [pool.submit(_compile_elsewhere, elsewhere[i::processes])
               for i in range(processes)]
    try:
        for kernel, signature in missing[:1]:
            kernel.compile(signature)
        for future in futures:
            future.result()
    finally:
        pool.shutdown(wait=True)


def _child() -> dict:
    """How a compiling process is started: importing this radiocal, not another install. ``-m``
    puts the working directory first on the path, so it runs from this radiocal's root (from a
    checkout of another version, the child imported that one and filled the cache with it)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return dict(env=env, cwd=root, stdin=subprocess.DEVNULL)


def _compile_elsewhere(jobs) -> None:
    """Compile ``jobs`` (``(kernel, signature)`` pairs) in turn in one process."""
    specs = [[kernel.py_func.__module__, kernel.py_func.__name__,
              [_describe(t) for t in signature]] for kernel, signature in jobs]
    done = subprocess.run([sys.executable, "-m", __name__, json.dumps(specs)],
                          capture_output=True, text=True, **_child())
    if done.returncode:
        log.debug("compiling %s in a process failed (%s); compiling here",
                  ", ".join(spec[1] for spec in specs),
                  (done.stderr.strip().splitlines() or ["no message"])[-1])


def _main(argv) -> None:
    if argv[0] == "--many":   # prewarm's list, in order; a stale entry is skipped
        # Below the run it serves: it fills a core the run leaves idle, and never slows the
        # compiles the run is waiting for.
        with contextlib.suppress(OSError, AttributeError):
            os.nice(10)
        for module, name, descriptions in json.loads(Path(argv[1]).read_text()):
            with contextlib.suppress(Exception):
                kernel = getattr(importlib.import_module(module), name)
                kernel.compile(tuple(_rebuild(d) for d in descriptions))
        return
    for module, name, descriptions in json.loads(argv[0]):
        kernel = getattr(importlib.import_module(module), name)
        kernel.compile(tuple(_rebuild(d) for d in descriptions))


if __name__ == "__main__":
    _main(sys.argv[1:])
