"""A new user's first `radiocal demo`: cold (empty numba cache) and warm, as whole processes.

Each repeat gives the command an empty ``NUMBA_CACHE_DIR`` (so no kernel is in any cache, the
source tree's ``__pycache__`` included) and a new output directory, runs it (cold), then runs it
again with the cache it filled and another new output directory (warm). The issue's goal: cold
<= 45 s, warm <= 15 s on 2 cores.

    python benchmarks/bench_first_run.py [--repeats N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, run_child, summary  # noqa: E402


def demo(outdir: Path, cache: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    child = run_child([sys.executable, "-m", "radiocal.cli.main", "demo", "-o", str(outdir),
                       "--no-progress"], env=env)
    if child.returncode:
        raise SystemExit(f"demo failed ({child.returncode}):\n{child.output[-2000:]}")
    return {"wall_s": round(child.wall_s, 2), "cpu_s": round(child.cpu_s, 2),
            "peak_rss_mb": round(child.peak_rss_mb)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    start = machine()
    runs = []
    for i in range(args.repeats):
        work = Path(tempfile.mkdtemp(prefix="radiocal-first-run-"))
        try:
            cold = demo(work / "cold", work / "numba-cache")
            warm = demo(work / "warm", work / "numba-cache")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        runs.append({"cold": cold, "warm": warm})
        print(f"repeat {i + 1}: cold {cold['wall_s']} s wall / {cold['cpu_s']} CPU-s, "
              f"warm {warm['wall_s']} s / {warm['cpu_s']} CPU-s", file=sys.stderr)
    result = {
        "machine_start": start, "machine_end": machine(), "runs": runs,
        **{f"{kind}_{key}": summary([r[kind][key] for r in runs])
           for kind in ("cold", "warm") for key in ("wall_s", "cpu_s", "peak_rss_mb")},
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for kind in ("cold", "warm"):
        print(f"{kind:5s}: wall {result[kind + '_wall_s']['best']:.1f} s (median "
              f"{result[kind + '_wall_s']['median']:.1f}), CPU {result[kind + '_cpu_s']['best']:.1f}"
              f" s, peak RSS {result[kind + '_peak_rss_mb']['best']:.0f} MB")
    print(f"load average {start['loadavg']} -> {result['machine_end']['loadavg']}, "
          f"{start['cpus']} CPUs")


if __name__ == "__main__":
    main()
