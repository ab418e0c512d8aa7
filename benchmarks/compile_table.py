"""Where a cold ``radiocal demo`` spends its numba compiling: a table per kernel.

The demo runs in this process with an empty numba cache; the flag step's compile-ahead and the
background prewarm are made to compile here, in order, so that every compile is seen. Each
``numba:compile`` event (one per dispatcher and argument types) is timed in CPU seconds of its
thread, inclusive and without the compiles nested in it ("self"); a kernel compiled for more
than one signature, or twice for one, is marked. The per-pass split (typing, lowering, LLVM) of
the self time comes from the ``numba:run_pass`` events.

    python benchmarks/compile_table.py [--json FILE] [--top N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
work = Path(tempfile.mkdtemp(prefix="radiocal-compile-table-"))
os.environ["NUMBA_CACHE_DIR"] = str(work / "numba-cache")

from numba.core import event  # noqa: E402

from radiocal.engine import numba as jit  # noqa: E402
from radiocal.engine import runner  # noqa: E402

sys.path.insert(1, str(Path(__file__).resolve().parent))
from _common import track_steps  # noqa: E402

_local = threading.local()
rows: list = []
_state = {"step": None}


def _stack():
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


class _Compiles(event.Listener):
    def on_start(self, ev):
        _stack().append({"t0": time.thread_time(), "children": 0.0, "passes": defaultdict(float)})

    def on_end(self, ev):
        frame = _stack().pop()
        total = time.thread_time() - frame["t0"]
        dispatcher, args = ev.data["dispatcher"], ev.data["args"]
        func = dispatcher.py_func
        rows.append({"kernel": f"{func.__module__}.{func.__qualname__}",
                     "args": [str(a) for a in args], "incl": total,
                     "self": total - frame["children"], "passes": dict(frame["passes"]),
                     "depth": len(_stack()), "step": _state["step"]})
        if _stack():
            _stack()[-1]["children"] += total


class _Passes(event.Listener):
    """A pass's time without the compiles nested in it (typing a call compiles the callee)."""

    def on_start(self, ev):
        _local.passes = getattr(_local, "passes", [])
        nested = _stack()[-1]["children"] if _stack() else 0.0
        _local.passes.append((time.thread_time(), nested))

    def on_end(self, ev):
        t0, nested = _local.passes.pop()
        if _stack():
            frame = _stack()[-1]
            name = ev.data["name"].split(" [")[0]
            frame["passes"][name] += time.thread_time() - t0 - (frame["children"] - nested)


def _here(wanted):
    """compile_parallel, in this process: the ``first`` kernels (highest first), then the
    others."""
    jobs = list(dict.fromkeys(wanted))
    for kernel, signature, first in sorted(jobs, key=lambda j: -j[2]):
        kernel.compile(signature)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    event.register("numba:compile", _Compiles())
    event.register("numba:run_pass", _Passes())
    track_steps(runner.PipelineRunner, _state)
    jit.compile_parallel = _here
    jit.prewarm = lambda steps: None
    from radiocal.cli.main import cli

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        cli.main(["demo", "-o", str(work / "demo"), "--no-progress"], standalone_mode=False)
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    signatures = defaultdict(list)
    for r in rows:
        signatures[r["kernel"]].append(tuple(r["args"]))
    total_self = sum(r["self"] for r in rows)
    top = sum(r["incl"] for r in rows if r["depth"] == 0)
    print(f"demo in process: {wall:.1f} s wall, {cpu:.1f} CPU-s; compiling {top:.1f} CPU-s "
          f"(self sum {total_self:.1f}), {len(rows)} compiles of {len(signatures)} kernels; "
          f"load {os.getloadavg()[0]:.2f}")
    by_step = defaultdict(float)
    for r in rows:
        if r["depth"] == 0:
            by_step[r["step"]] += r["incl"]
    print("by step (top-level compiles, inclusive):",
          ", ".join(f"{k} {v:.1f}" for k, v in by_step.items()))
    print(f"\n{'kernel':60s} {'step':10s} {'incl':>6s} {'self':>6s} {'typing':>6s} "
          f"{'lower':>6s} sigs")
    for r in sorted(rows, key=lambda r: -r["self"])[:args.top]:
        passes = r["passes"]
        typing = sum(v for k, v in passes.items() if "type" in k.lower())
        lower = sum(v for k, v in passes.items() if "lowering" in k.lower())
        n = len(signatures[r["kernel"]])
        dup = len(set(signatures[r["kernel"]])) < n
        print(f"{r['kernel'][-60:]:60s} {str(r['step']):10s} {r['incl']:6.2f} {r['self']:6.2f} "
              f"{typing:6.2f} {lower:6.2f} {n}{' DUP' if dup else ''}")
    multi = {k: v for k, v in signatures.items() if len(v) > 1}
    if multi:
        print("\nkernels compiled for more than one signature (or twice):")
        for k, v in multi.items():
            print(f"  {k}: {len(v)}")
            for s in v:
                print(f"     {', '.join(s)[:150]}")


if __name__ == "__main__":
    main()
