"""Fixed costs per partition: a partition-rich store against a single-partition one of the same
size.

The partition-rich store is the real CARMA/SZA set (32 spectral windows x 3 fields = 96
partitions, 397,440 visibility cells, 7.5 MB) when ``../shared`` holds it, or ``--ms`` given; the
single-partition one is simulated with the same antennas' baseline count, correlations and number
of cells (one field, one spectral window of as many channels as all of the spws together, as many
integrations as make up the rest). Each command runs as its own process on a fresh copy of each
store, with ``--scheduler threads``; CPU seconds (user + system, all threads) count more than wall
on a shared machine. The last column is the ratio of CPU per visibility cell, partitioned /
single: the goal is <= ~2.

    python benchmarks/bench_partitions.py                  # CARMA from ../shared
    python benchmarks/bench_partitions.py --ms other.ms --field NAME --repeat 3

Measured 2026-12-06, 2 shared cores, CPU s (CARMA 96 partitions / single partition, 397,440
cells each; ratio of CPU per cell):

    command      before (load 8.8)        after (load 4.8)
    flag         12.19 / 2.46  (4.9x)     9.98 / 2.10  (4.8x)
    solve gain    4.87 / 2.26  (2.2x)     4.18 / 1.93  (2.2x)
    apply         7.17 / 2.06  (3.5x)     5.47 / 1.86  (2.9x)

Read the flag row with care: CARMA's 1- and 2-integration scans (NOISE, 1159+292) are short
scans, flagged along frequency by the spectral flagger (~26 ms a call on 36 baselines x 15
channels, 1.7 CPU-s of the 10), while the single partition's 23 integrations take SumThreshold.
What is left per partition: opening (~7 ms), dask's graph optimisation (culling ~3000 layers,
~1 CPU-s), the per-partition graph (~18 ms) and the staging writes of update_store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import run_child  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CARMA = ROOT.parent / "shared" / "data" / "real" / "carma_sza_3c273" / "carma_sza_3c273.ms"
DATA = Path("/work/benchdata") if Path("/work/benchdata").is_dir() else ROOT / "benchmarks" / "data"
CLI = [sys.executable, "-m", "radiocal.cli.main", "--scheduler", "threads"]

SIMULATE = """
import sys
from radiocal.simulate import SimConfig, simulate_ms
from radiocal.simulate.config import DEFAULT_FIELDS
n_ant, n_chan, n_int, n_corr, telescope = (int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                            int(sys.argv[5]), sys.argv[6])
simulate_ms(sys.argv[1], SimConfig(n_antennas=n_ant, spws=((30e9, 31.25e6, n_chan),),
            schedule=((0, n_int),), fields=DEFAULT_FIELDS[:1], n_correlations=n_corr,
            integration_time=30.0, telescope=telescope), overwrite=True)
"""

SHAPE = """
import json, sys
from radiocal.store.zarr_store import open_store
dss = open_store(sys.argv[1])
ds = dss[0]
print(json.dumps({"partitions": len(dss), "cells": sum(int(d.FLAG.size) for d in dss),
                  "baselines": ds.sizes["baseline"], "correlations": ds.sizes["polarization"],
                  "antennas": ds.sizes["antenna"],
                  "fields": sorted({d.attrs["field_name"] for d in dss}),
                  "telescope": ds.attrs.get("telescope", "")}))
"""


def _python(code: str, *args) -> str:
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, cwd=ROOT,
                          capture_output=True, text=True).stdout


def _convert(ms: Path, store: Path) -> None:
    if not store.exists():
        subprocess.run(CLI + ["-q", "convert", str(ms), "-o", str(store)], check=True, cwd=ROOT)


def _single_partition(shape: dict, out: Path) -> Path:
    """A one-partition store of (about) ``shape['cells']`` cells and the same baselines."""
    n_ant = next(n for n in range(2, 100) if n * (n - 1) // 2 >= shape["baselines"])
    per_int = n_ant * (n_ant - 1) // 2 * shape["correlations"]
    n_chan = 480
    n_int = max(1, round(shape["cells"] / (per_int * n_chan)))
    ms = out / f"single_{n_ant}ant_{n_chan}ch_{n_int}int.ms"
    if not ms.exists():
        _python(SIMULATE, ms, n_ant, n_chan, n_int, shape["correlations"], shape["telescope"])
    store = ms.with_suffix(".zarr")
    _convert(ms, store)
    return store


def _commands(field: str) -> list[tuple[str, list[str]]]:
    return [("flag", ["flag", "{store}"]),
            ("solve gain", ["solve", "gain", "{store}", "-o", "g", "--field", field,
                            "--solint", "int", "--calmode", "p"]),
            ("apply", ["apply", "{store}", "--gaintable", "g"])]


def _run_all(store: Path, field: str, repeat: int) -> dict:
    best: dict = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=store.parent) as tmp:
            copy = Path(tmp) / store.name
            shutil.copytree(store, copy)
            for name, argv in _commands(field):
                res = run_child(CLI + [a.format(store=copy) for a in argv], cwd=ROOT)
                if res.returncode:
                    raise SystemExit(f"{name} failed on {store}:\n{res.output[-2000:]}")
                old = best.get(name)
                if old is None or res.cpu_s < old[0]:
                    best[name] = (res.cpu_s, res.wall_s)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ms", type=Path, default=CARMA, help="partition-rich MS (default CARMA)")
    parser.add_argument("--field", default="3C273", help="field the gain solve uses")
    parser.add_argument("--repeat", type=int, default=1, help="runs per command; best CPU kept")
    parser.add_argument("--data", type=Path, default=DATA / "partcost")
    args = parser.parse_args(argv)
    if not args.ms.exists():
        raise SystemExit(f"{args.ms}: not found (the real sets are in ../shared; or give --ms)")
    args.data.mkdir(parents=True, exist_ok=True)
    rich = args.data / (args.ms.stem + ".zarr")
    _convert(args.ms, rich)
    import json
    shape = json.loads(_python(SHAPE, rich))
    single = _single_partition(shape, args.data)
    single_shape = json.loads(_python(SHAPE, single))
    stores = [(rich, shape, args.field), (single, single_shape, single_shape["fields"][0])]
    results = [_run_all(store, field, args.repeat) for store, _, field in stores]
    print(f"load average {os.getloadavg()[0]:.1f}; --scheduler threads; best CPU of {args.repeat}")
    print(f"{'command':12s} {'store':28s} {'parts':>5s} {'cells':>8s} {'CPU s':>7s} "
          f"{'wall s':>7s} {'CPU us/cell':>11s} {'ratio':>6s}")
    for name, _ in _commands(args.field):
        per_cell = []
        for (store, sh, _), res in zip(stores, results):
            cpu, wall = res[name]
            per_cell.append(cpu / sh["cells"] * 1e6)
            ratio = f"{per_cell[0] / per_cell[1]:6.1f}" if len(per_cell) == 2 else ""
            print(f"{name:12s} {store.name[:28]:28s} {sh['partitions']:5d} {sh['cells']:8d} "
                  f"{cpu:7.2f} {wall:7.2f} {per_cell[-1]:11.2f} {ratio:>6s}")


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
