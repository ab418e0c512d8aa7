"""Record ``radiocal/pipelines/kernels.json``: the kernels each step of a cold ``radiocal demo``
compiles on first use, with their argument types, for :func:`radiocal.engine.numba.prewarm`.

The demo runs in this process with an empty numba cache; every kernel compiled outside the flag
step's own compile-ahead (:func:`radiocal.engine.numba.compile_parallel`) is listed under the
step that compiled it. Re-run it when a step's kernels or the types it calls them with change
(a stale entry only costs a compile in the background).

    python benchmarks/record_kernels.py [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

# This checkout's radiocal, not an installed one (a script's own directory leads sys.path)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
work = Path(tempfile.mkdtemp(prefix="radiocal-record-kernels-"))
os.environ["NUMBA_CACHE_DIR"] = str(work / "numba-cache")

from numba.core import event  # noqa: E402

from radiocal.engine import numba as jit  # noqa: E402
from radiocal.engine import runner  # noqa: E402

sys.path.insert(1, str(Path(__file__).resolve().parent))
from _common import track_steps  # noqa: E402

_state = {"step": None, "ahead": 0}
_local = threading.local()
recorded: dict = {}


class _Listener(event.Listener):
    def on_start(self, ev):
        _local.depth = getattr(_local, "depth", 0) + 1

    def on_end(self, ev):
        _local.depth -= 1
        if _local.depth or _state["step"] is None or _state["ahead"]:
            return
        dispatcher, args = ev.data["dispatcher"], ev.data["args"]
        module = dispatcher.py_func.__module__
        if not module.startswith("radiocal."):
            return
        try:
            descriptions = [jit._describe(t) for t in args]
        except Exception:  # noqa: BLE001 - types prewarm cannot name: left to first use
            return
        entry = [module, dispatcher.py_func.__name__, descriptions]
        entries = recorded.setdefault(_state["step"], [])
        if entry not in entries:
            entries.append(entry)


def _wrap_ahead(original):
    def compile_parallel(wanted):
        _state["ahead"] += 1
        try:
            return original(wanted)
        finally:
            _state["ahead"] -= 1
    return compile_parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the file instead of writing it; exit 1 if different")
    args = parser.parse_args()
    event.register("numba:compile", _Listener())
    track_steps(runner.PipelineRunner, _state)
    jit.compile_parallel = _wrap_ahead(jit.compile_parallel)
    jit.prewarm = lambda steps: None     # everything compiles here, where it is recorded
    from radiocal.cli.main import cli

    try:
        cli.main(["demo", "-o", str(work / "demo"), "--no-progress"], standalone_mode=False)
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(recorded, indent=1) + "\n"
    path = jit.manifest_path()
    if args.check:
        same = path.exists() and json.loads(path.read_text()) == recorded
        print("kernels.json is current" if same else "kernels.json differs from this run")
        sys.exit(0 if same else 1)
    path.write_text(text)
    print(f"{sum(len(v) for v in recorded.values())} kernels in {path}")


if __name__ == "__main__":
    main()
