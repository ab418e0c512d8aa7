"""Helpers shared by the benchmarks: child processes with their own peak memory, page-cache
warming, summaries and the machine's state.

The orchestrating process must stay light (standard library only, nothing imported from numpy,
dask or casacore): Linux hands a parent's resident set size to a child it spawns (vfork + exec
records the parent's high-water mark in the child's ``ru_maxrss``), so a heavy parent would
inflate every child's peak. :func:`run_child` reports that floor as ``launcher_rss_mb``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
RESULT_PREFIX = "BENCH_RESULT "
_MB = 2**20


@dataclass
class ChildResult:
    """One child process: its wall time, CPU time (user + system, all threads), peak memory
    and the result it printed."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    returncode: int
    result: dict | None
    output: str


def launcher_rss_mb() -> float:
    """Peak RSS of this (orchestrating) process: the floor of every child's peak."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(argv: list[str], timeout: float | None = None,
              env: dict | None = None, cwd: str | os.PathLike | None = None) -> ChildResult:
    """Run ``argv`` to completion; time it and read its own peak RSS with ``wait4``.

    A child may print one line ``BENCH_RESULT {json}`` (see :func:`emit_result`); it is parsed
    into ``result``. Output goes to a temporary file, so a chatty child can never block on a pipe.
    ``wait4`` also counts the child's own reaped children (an ``aoflagger`` run by a Python child):
    its CPU time is their sum and its peak RSS the largest of them. ``cwd`` keeps stray files
    (CASA's logs, flag versions) out of the repository.
    """
    with tempfile.TemporaryFile(mode="w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        deadline = None if timeout is None else start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    result = None
    for line in text.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    return ChildResult(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                       proc.returncode, result, text)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far, all threads. On a shared machine it
    varies less than wall time, which also counts waiting for a CPU."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def python_child(script: Path | str, *args: str) -> list[str]:
    """argv running ``script`` with this interpreter."""
    return [sys.executable, str(script), *map(str, args)]


def emit_result(**values) -> None:
    """Print a child's result for :func:`run_child` (one line, JSON)."""
    print(RESULT_PREFIX + json.dumps(values), flush=True)


def ms_with_skymodel(ms_arg, skymodel_arg, default_ms: Path, script, *simulate_args) -> tuple[str, str]:
    """The MS and sky model to benchmark: the user's (``--ms``/``--skymodel``) or a cached simulated
    one, made once by ``script --child simulate MS *simulate_args``."""
    if ms_arg:
        ms = os.path.abspath(ms_arg)
        skymodel = os.path.abspath(skymodel_arg or ms + ".sky.txt")
        if not os.path.isdir(ms) or not os.path.isfile(skymodel):
            sys.exit(f"{ms} or its sky model {skymodel} does not exist (see --skymodel)")
        return ms, skymodel
    ms = str(default_ms)
    if not os.path.isdir(ms):
        print(f"simulating {ms} ...", file=sys.stderr)
        sim = run_child(python_child(script, "--child", "simulate", ms, *map(str, simulate_args)))
        if sim.returncode:
            sys.exit(f"simulation failed:\n{sim.output}")
    return ms, ms + ".sky.txt"


def warm_page_cache(path) -> int:
    """Read every file under ``path`` once, so that timed reads all start from a warm cache.

    Returns the number of bytes read.
    """
    total = 0
    buffer = bytearray(4 * _MB)   # reused: keeps this (launching) process small
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb", buffering=0) as fh:
                while n := fh.readinto(buffer):
                    total += n
    return total


def ms_cells(path) -> int:
    """Visibility cells (row x channel x correlation) of an MS's main table, every spectral
    window counted with its own shape."""
    from casacore.tables import table, taql

    with table(str(path), ack=False) as main:
        with table(main.getkeyword("DATA_DESCRIPTION"), ack=False) as dd, \
                table(main.getkeyword("SPECTRAL_WINDOW"), ack=False) as spw, \
                table(main.getkeyword("POLARIZATION"), ack=False) as pol:
            spw_ids, pol_ids = dd.getcol("SPECTRAL_WINDOW_ID"), dd.getcol("POLARIZATION_ID")
            channels, correlations = spw.getcol("NUM_CHAN"), pol.getcol("NUM_CORR")
        rows = taql("SELECT DATA_DESC_ID AS d, gcount() AS n FROM $main GROUPBY DATA_DESC_ID")
        return int(sum(int(n) * int(channels[spw_ids[d]]) * int(correlations[pol_ids[d]])
                       for d, n in zip(rows.getcol("d"), rows.getcol("n"))))


def disk_bytes(path) -> int:
    """Bytes allocated on disk by every file under ``path``."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


def summary(values: list[float]) -> dict:
    """Best (minimum), median and all repeats of a list of timings or sizes."""
    return {"best": min(values), "median": statistics.median(values), "all": list(values)}


def rate_summary(values: list[float]) -> dict:
    """Best (maximum), median and all repeats of a list of rates (vis/s: higher is better)."""
    return {"best": max(values), "median": statistics.median(values), "all": list(values)}


def machine() -> dict:
    """What the reader needs to judge a timing on a shared machine."""
    return {
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }


# -- CASA as a peer ------------------------------------------------------------------------------
# CASA (casatools + casatasks + casadata) lives in its own virtualenv: its wheels pin their own
# numpy and would fight radiocal's. Benchmarks run it as a separate interpreter, never import it.

DEFAULT_CASA_PYTHON = Path("/work/casa-venv/bin/python")
_CASA_PROBE = "import casatasks, casatools; print(casatools.version_string())"


def add_casa_option(parser) -> None:
    """``--casa-python PATH``: the interpreter that has casatools/casatasks (``--casa-python ''``
    skips CASA)."""
    default = str(DEFAULT_CASA_PYTHON) if DEFAULT_CASA_PYTHON.exists() else ""
    parser.add_argument("--casa-python", default=default, metavar="PATH",
                        help="Python with casatools/casatasks/casadata installed "
                             f"(default: {DEFAULT_CASA_PYTHON} when it exists; '' skips CASA)")


def casa_python(path: str) -> tuple[str | None, str]:
    """Check that ``path`` runs casatools + casatasks.

    Returns ``(path, version)`` when it does, else ``(None, reason)`` with a one-line reason that
    the report prints as the skip note.
    """
    if not path:
        return None, "skipped: no --casa-python (CASA is not installed)"
    if not os.path.exists(path):
        return None, f"skipped: {path} does not exist"
    with tempfile.TemporaryDirectory() as tmp:   # CASA may drop a log file in its cwd
        probe = subprocess.run([path, "-c", _CASA_PROBE], capture_output=True, text=True,
                               cwd=tmp, timeout=300)
    if probe.returncode:
        last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        return None, f"skipped: {path} cannot import casatasks ({last})"
    return path, probe.stdout.strip().splitlines()[-1]


def track_steps(runner_class, state: dict) -> None:
    """While a pipeline step runs, ``state["step"]`` is its name (None between steps): for
    benchmarks that attribute numba compiles to the steps that caused them."""
    original = runner_class._execute

    def execute(self, step, record):
        state["step"] = step.spec.name
        try:
            return original(self, step, record)
        finally:
            state["step"] = None
    runner_class._execute = execute
