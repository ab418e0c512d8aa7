"""Benchmark: ``radiocal convert`` against a raw python-casacore read of the same MS.

The peer opens the MS and reads the whole main table's DATA and FLAG with ``getcol``; radiocal's
convert is ``read_ms`` + ``write_store`` (what ``radiocal convert MS -o OUT.zarr`` runs) on dask's
default threaded scheduler, and optionally the CLI itself. Every measurement runs in its own child
process (clean peak memory), the runs are interleaved, repeated, and start from a warm page cache.

    python benchmarks/bench_convert.py                 # simulate (once) and use a ~0.5 GB MS
    python benchmarks/bench_convert.py --ms my.ms --cli --json

See ``benchmarks/README.md`` for what is printed. The goal of issue 2: convert <= 3x getcol.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402  (benchmarks/ is not a package)
    DATA_DIR,
    cpu_seconds,
    disk_bytes,
    emit_result,
    launcher_rss_mb,
    machine,
    python_child,
    run_child,
    summary,
    warm_page_cache,
)

GOAL_RATIO = 3.0
# The default MS: VLA-like, 27 antennas (351 cross baselines), one spw of 64 channels, 4
# correlations, 10 s integrations in scans of 10 minutes; the integration count sets the size.
N_ANTENNAS = 27
N_CHANNELS = 64
N_CORRELATIONS = 4
SCAN_INTEGRATIONS = 60
INTEGRATION_TIME = 10.0
SCAN_GAP = 30.0


# -- children ----------------------------------------------------------------------------------

def child_simulate(path: str, n_integrations: int) -> None:
    """Write the default MS scan by scan, so memory holds one scan's model at a time."""
    from radiocal.store import schema as S
    from radiocal.ms.write import write_ms
    from radiocal.simulate import DEFAULT_FIELDS, SimConfig, simulate
    from radiocal.simulate.config import VLA_START

    start = time.perf_counter()
    datasets = []
    n_scans = math.ceil(n_integrations / SCAN_INTEGRATIONS)
    for k in range(n_scans):
        n = min(SCAN_INTEGRATIONS, n_integrations - k * SCAN_INTEGRATIONS)
        config = SimConfig(
            n_antennas=N_ANTENNAS, spws=((1.0e9, 2.0e6, N_CHANNELS),),
            n_correlations=N_CORRELATIONS,
            integration_time=INTEGRATION_TIME, schedule=((0, n),), fields=(DEFAULT_FIELDS[0],),
            background=(), seed=k,
            start_time=VLA_START + k * (SCAN_INTEGRATIONS * INTEGRATION_TIME + SCAN_GAP),
        )
        ds = simulate(config).datasets[0]   # the truth (complex128 model) is dropped here
        ds.attrs[S.ATTR_SCAN] = k + 1
        ds.attrs[S.ATTR_PARTITION] = S.partition_name(0, 0, k + 1)
        datasets.append(ds)
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    write_ms(datasets, partial)
    # Renamed only when complete, so an interrupted run is never reused as a cached MS
    os.rename(partial, path)
    emit_result(seconds=time.perf_counter() - start, scans=n_scans)


def child_getcol(ms: str) -> None:
    """The peer: whole-table getcol of DATA and FLAG."""
    import casacore.tables as pt

    cpu = cpu_seconds()
    start = time.perf_counter()
    table = pt.table(ms, readonly=True, ack=False)
    data = table.getcol("DATA")
    flag = table.getcol("FLAG")
    table.close()
    seconds = time.perf_counter() - start
    emit_result(seconds=seconds, cpu_s=cpu_seconds() - cpu, rows=int(data.shape[0]),
                visibilities=int(data.size), data_shape=list(data.shape),
                flagged=float(flag.mean()), data_gb=data.nbytes / 1e9)


def child_convert(ms: str, out: str, workers: int) -> None:
    """radiocal's convert in-process: read_ms (graph building) then write_store (compute)."""
    import casacore.tables  # noqa: F401
    import dask
    import distributed  # noqa: F401

    # Imported lazily by read_ms and by dask.compute (which looks for a distributed client):
    # imports are paid once per command, not per GB, so they are kept out of the timing (the
    # peer imports casacore before its clock starts too; the `cli` row includes everything).
    from radiocal.store import schema as S
    from radiocal.ms.read import read_ms
    from radiocal.store.zarr_store import write_store

    if workers:
        dask.config.set(scheduler="threads", num_workers=workers)
    cpu = cpu_seconds()
    start = time.perf_counter()
    datasets = read_ms(ms)
    built = time.perf_counter()
    write_store(datasets, out, overwrite=True)
    end = time.perf_counter()
    emit_result(seconds=end - start, cpu_s=cpu_seconds() - cpu, read_ms_s=built - start,
                write_store_s=end - built, partitions=len(datasets),
                grid_cells=int(sum(ds[S.VISIBILITY].size for ds in datasets)),
                chunks=int(sum(ds[S.VISIBILITY].data.npartitions for ds in datasets)))


CHILDREN = {"simulate": child_simulate, "getcol": child_getcol, "convert": child_convert}


# -- orchestration (standard library only: see _common) ---------------------------------------

def default_ms(size_gb: float) -> tuple[Path, int]:
    """Path of the cached simulated MS for ``size_gb`` of DATA, and its integration count."""
    per_integration = N_ANTENNAS * (N_ANTENNAS - 1) // 2 * N_CHANNELS * N_CORRELATIONS * 8
    n_integrations = max(1, round(size_gb * 1e9 / per_integration))
    name = f"convert_{N_ANTENNAS}ant_{N_CHANNELS}ch_{N_CORRELATIONS}corr_{n_integrations}int.ms"
    return DATA_DIR / name, n_integrations


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check(child, what: str, needs_result: bool = True):
    if child.returncode != 0 or (needs_result and child.result is None):
        log(child.output)
        raise SystemExit(f"bench_convert: {what} failed (exit {child.returncode})")
    return child


def measure(label: str, argv: list[str], ms: Path, out: Path) -> dict:
    """One timed child, starting from the same state every time: warm MS, no output, no
    dirty pages left by the previous write."""
    shutil.rmtree(out, ignore_errors=True)
    warm_page_cache(ms)
    os.sync()
    # The CLI prints no result line: its time is the child's wall time, interpreter start included
    child = check(run_child(argv), label, needs_result=label != "cli")
    seconds = child.result["seconds"] if child.result else child.wall_s
    cpu = child.result["cpu_s"] if child.result else child.cpu_s
    log(f"  {label:<8} {seconds:7.2f} s  (CPU {cpu:6.2f} s)  peak RSS {child.peak_rss_mb:6.0f} MB  "
        f"load {os.getloadavg()[0]:.1f}")
    return {"seconds": seconds, "cpu_s": cpu, "wall_s": child.wall_s,
            "peak_rss_mb": child.peak_rss_mb, "result": child.result}


def run(args) -> dict:
    load_start = os.getloadavg()
    script = Path(__file__).resolve()
    if args.ms:
        ms = Path(args.ms)
        if not (ms / "table.dat").exists():
            raise SystemExit(f"bench_convert: {ms} is not a Measurement Set")
        generated = None
    else:
        ms, n_int = default_ms(args.size_gb)
        generated = False
        if not (ms / "table.dat").exists():
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            log(f"simulating {ms.name} ({n_int} integrations) ...")
            argv = python_child(script, "_child", "simulate", ms, n_int)
            sim = check(run_child(argv), "simulate")
            log(f"  simulated in {sim.wall_s:.1f} s")
            generated = True
    out = DATA_DIR / f"bench_convert_out_{os.getpid()}.zarr"
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    warmed = warm_page_cache(ms)
    log(f"page cache warmed: read {warmed / 1e9:.2f} GB of {ms} once before timing")
    methods = {
        "getcol": python_child(script, "_child", "getcol", ms),
        "convert": python_child(script, "_child", "convert", ms, out, args.workers),
    }
    if args.cli:
        methods["cli"] = [sys.executable, "-m", "radiocal.cli.main", "convert", str(ms),
                          "-o", str(out), "--overwrite"]
    runs = {name: [] for name in methods}
    try:
        for rep in range(args.repeat):
            log(f"repeat {rep + 1}/{args.repeat}")
            for name, argv in methods.items():   # interleaved: a load spike hits every method
                runs[name].append(measure(name, argv, ms, out))
        store_bytes = disk_bytes(out)
    finally:
        if not args.keep_output:
            shutil.rmtree(out, ignore_errors=True)
    load_end = os.getloadavg()

    peer = runs["getcol"][0]["result"]
    report = {
        "ms": str(ms), "ms_generated_now": generated,
        "ms_disk_gb": disk_bytes(ms) / 1e9, "rows": peer["rows"],
        "visibilities": peer["visibilities"],
        "data_shape": peer["data_shape"], "store_disk_gb": store_bytes / 1e9,
        "repeat": args.repeat, "dask_workers": args.workers or "default",
        "page_cache": "warm (MS read once before timing and re-read before every run)",
        "machine_start": machine() | {"loadavg": [round(x, 2) for x in load_start]},
        "loadavg_end": [round(x, 2) for x in load_end],
        "launcher_rss_mb": launcher_rss_mb(),
        "methods": {},
    }
    for name, rs in runs.items():
        seconds = summary([r["seconds"] for r in rs])
        report["methods"][name] = {
            "seconds": seconds,
            "cpu_s": summary([r["cpu_s"] for r in rs]),
            "wall_s": summary([r["wall_s"] for r in rs]),
            "vis_per_s": peer["visibilities"] / seconds["best"],
            "peak_rss_mb": summary([r["peak_rss_mb"] for r in rs]),
            "details": [r["result"] for r in rs],
        }
    base = report["methods"]["getcol"]
    report["ratios"] = {
        name: {"best": m["seconds"]["best"] / base["seconds"]["best"],
               "median": m["seconds"]["median"] / base["seconds"]["median"],
               "cpu_median": m["cpu_s"]["median"] / base["cpu_s"]["median"],
               # issue 17 times both as whole processes: interpreter start and imports included
               "process_best": m["wall_s"]["best"] / base["wall_s"]["best"],
               "process_median": m["wall_s"]["median"] / base["wall_s"]["median"]}
        for name, m in report["methods"].items() if name != "getcol"
    }
    report["goal_ratio"] = GOAL_RATIO
    return report


def print_report(r: dict) -> None:
    print(f"MS                {r['ms']}")
    print(f"MS on disk        {r['ms_disk_gb']:.3f} GB   rows {r['rows']}   "
          f"DATA {tuple(r['data_shape'])}   visibilities {r['visibilities']:,}")
    print(f"zarr store        {r['store_disk_gb']:.3f} GB on disk")
    print(f"conditions        {r['page_cache']}; best/median of {r['repeat']} interleaved runs, "
          f"each in its own process; dask workers: {r['dask_workers']}")
    print(f"load average      start {r['machine_start']['loadavg']}  end {r['loadavg_end']}  "
          f"({r['machine_start']['cpus']} CPUs)")
    print()
    print(f"{'method':<10} {'best s':>8} {'median s':>9} {'CPU s':>7} {'Mvis/s':>8} "
          f"{'peak RSS MB':>12}")
    for name, m in r["methods"].items():
        print(f"{name:<10} {m['seconds']['best']:8.2f} {m['seconds']['median']:9.2f} "
              f"{m['cpu_s']['median']:7.2f} {m['vis_per_s'] / 1e6:8.1f} "
              f"{m['peak_rss_mb']['median']:12.0f}")
    conv = r["methods"]["convert"]["details"]
    print(f"  convert split (median): read_ms graph "
          f"{statistics.median(d['read_ms_s'] for d in conv):.2f} s, write_store "
          f"{statistics.median(d['write_store_s'] for d in conv):.2f} s; "
          f"{conv[0]['partitions']} partitions, {conv[0]['chunks']} chunks")
    if "cli" in r["methods"]:
        print("  cli: wall and CPU time of `python -m radiocal.cli.main convert`, "
              "interpreter start and imports included")
    print()
    for name, ratio in r["ratios"].items():
        verdict = "meets" if ratio["best"] <= r["goal_ratio"] else "MISSES"
        print(f"ratio {name}/getcol   best {ratio['best']:.2f}   median {ratio['median']:.2f}   "
              f"CPU {ratio['cpu_median']:.2f}   ({verdict} the goal <= {r['goal_ratio']:g} "
              f"on best times)")
        print(f"  as whole processes (wall, interpreter start and imports included)   best "
              f"{ratio['process_best']:.2f}   median {ratio['process_median']:.2f}")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        name, *rest = argv[1:]
        if name == "simulate":
            CHILDREN[name](rest[0], int(rest[1]))
        elif name == "convert":
            CHILDREN[name](rest[0], rest[1], int(rest[2]))
        else:
            CHILDREN[name](*rest)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ms", help="an existing MS to use (default: simulate one, cached in "
                                     "benchmarks/data/)")
    parser.add_argument("--size-gb", type=float, default=0.5,
                        help="DATA size of the simulated MS, GB (default 0.5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each method (default 3)")
    parser.add_argument("--cli", action="store_true", help="also time the `radiocal convert` CLI")
    parser.add_argument("--workers", type=int, default=0,
                        help="dask threads for convert (default: dask's default, one per CPU)")
    parser.add_argument("--keep-output", action="store_true", help="keep the last zarr store")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.size_gb <= 0 or args.workers < 0:
        parser.error("--repeat must be >= 1, --size-gb > 0 and --workers >= 0")
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
