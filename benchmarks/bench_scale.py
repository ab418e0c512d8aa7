"""Scaling of radiocal's main commands with the size of the data: is memory flat and time linear?

Each command runs as its own process (measured with ``wait4``: wall, CPU of the process and the
children it reaped, peak RSS of the largest of them; the engine's default local cluster runs
in-process on machines of up to 4 cores, so that is the whole process tree):

- VLA-like MS (27 antennas, 64 channels, vla_small's schedule x N, from bench_pipeline's
  simulator), N = 1, 2, 4, 8: ``convert``, ``flag``, ``calibrate``, ``dynspec``, ``export`` in
  turn on a fresh store;
- OVRO-LWA-like directories (352 antennas, 192-channel sub-bands, one MS per integration and
  sub-band, ``radiocal.simulate.lwa_files``): ``convert`` and the whole ``lwa`` route, with
  each step's time and memory from the run's provenance;
- existing stores (``--flag-stores``, ``--cal-stores``): ``radiocal flag`` or ``radiocal
  calibrate`` (VLA-like fields) on a hard-linked copy of each;
- ``--phaseref``: also the whole ``radiocal phaseref`` route on each VLA-like MS, with each
  step's time and memory from the run's provenance.

Visibilities/s counts the cells of the data (time x baseline x channel x correlation) per wall
second of the command. ``--threads 1,2`` runs everything with one and with two threads
(``--threads-per-worker``) and prints the speed-up.

    python benchmarks/bench_scale.py --vla 1,2,4 --threads 2
    flock /tmp/radiocal-heavy.lock memcap 12G python benchmarks/bench_scale.py --vla "" --lwa 1x4
    python benchmarks/bench_scale.py --vla "" --flag-stores DATA/lwa352_192ch_6int.zarr --threads 1,2
    python benchmarks/bench_scale.py --vla "" --cal-stores DATA/vla_x8.zarr --threads 1,2
    python benchmarks/bench_scale.py --vla 1,4 --phaseref

Data are made once under ``--data`` (default /work/benchdata, else benchmarks/data) and kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import disk_bytes, emit_result, machine, ms_cells, python_child, run_child  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FLUXCAL, PHASECAL, TARGET = "J1331+3030", "J1407+2827", "STAR"
LWA_ANTENNAS, LWA_CHANNELS = 352, 192


def _data_dir(arg) -> Path:
    if arg:
        return Path(arg)
    shared = Path("/work/benchdata")
    return shared if shared.is_dir() else HERE / "data"


def vla_ms(data: Path, scale: int) -> Path:
    path = data / f"vla_27ant_64ch_x{scale}.ms"
    if not path.is_dir():
        made = run_child(python_child(HERE / "bench_pipeline.py", "--child", "simulate", path, scale))
        if made.returncode:
            sys.exit(f"simulating {path} failed:\n{made.output}")
    return path


def child_lwa_files(path: str, integrations: str, subbands: str) -> None:
    from radiocal.simulate import SimConfig, lwa_files

    config = SimConfig.lwa(n_subbands=int(subbands), n_channels=LWA_CHANNELS,
                           n_integrations=int(integrations), n_antennas=LWA_ANTENNAS)
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    lwa_files(partial, config)
    os.rename(partial, path)
    emit_result(ok=True)


def lwa_dir(data: Path, integrations: int, subbands: int) -> Path:
    path = data / f"lwa_{LWA_ANTENNAS}ant_{subbands}sb_{LWA_CHANNELS}ch_{integrations}int"
    if not path.is_dir():
        made = run_child(python_child(__file__, "--child", "lwa_files", path, integrations, subbands))
        if made.returncode:
            sys.exit(f"simulating {path} failed:\n{made.output}")
    return path


def _measure(argv, cells: int, cwd) -> dict:
    load_start = round(os.getloadavg()[0], 1)
    result = run_child(argv, cwd=cwd)
    if result.returncode:
        tail = "\n".join(result.output.strip().splitlines()[-5:])
        return {"failed": result.returncode, "wall_s": result.wall_s, "peak_rss_mb": result.peak_rss_mb,
                "error": tail}
    # distributed's warning when a worker nears its memory limit and stops taking tasks
    paused = "pausing worker" in result.output.lower()
    return {"wall_s": round(result.wall_s, 2), "cpu_s": round(result.cpu_s, 2),
            "peak_rss_mb": round(result.peak_rss_mb), "vis_per_s": round(cells / result.wall_s),
            "load": [load_start, round(os.getloadavg()[0], 1)], "paused_workers": paused}


PHASEREF = False    # --phaseref: the whole route too, per step from provenance
PROCESSES = False   # --processes: N worker processes of one thread instead of one worker of N threads
GLOBAL_OPTIONS: list[str] = []   # --radiocal-options, before every command (e.g. --chunk-mb 8)


def _radiocal(threads: int) -> list[str]:
    layout = (["--worker-processes", "--workers", str(threads), "--threads-per-worker", "1"] if PROCESSES
              else ["--worker-threads", "--threads-per-worker", str(threads)])
    return [sys.executable, "-m", "radiocal.cli.main", *layout, *GLOBAL_OPTIONS]


def _steps(outdir: Path) -> dict:
    """Each step's wall time, CPU time (the process's, in-process workers included) and peak RSS
    (sampled over the process and its children) from a run's provenance."""
    provenance = next(iter(outdir.glob("**/provenance.json")), None)
    if provenance is None:
        return {}
    return {s.get("step", s.get("key")): {"wall_s": s.get("wall_time_s"), "cpu_s": s.get("cpu_time_s"),
                                          "peak_rss_mb": round((s.get("peak_memory_bytes") or 0) / 2**20)}
            for s in json.loads(provenance.read_text()).get("steps", [])}


CALIBRATE = ["--fluxcal", FLUXCAL, "--fluxcal-model", "15.0,-0.5,1.4GHz", "--phasecal", PHASECAL,
             "--target", TARGET, "--refant", "0"]


def vla_runs(ms: Path, threads: int, work: Path) -> dict:
    scale = int(ms.stem.rsplit("_x", 1)[1])
    cells = ms_cells(ms)
    store, spectrum, exported = work / "store.zarr", work / "ds.zarr", work / "out.ms"
    sky = str(ms) + ".sky.txt"
    rc = _radiocal(threads)
    commands = {
        "convert": [*rc, "convert", ms, "-o", store],
        "flag": [*rc, "flag", store],
        "calibrate": [*rc, "calibrate", store, *CALIBRATE],
        "dynspec": [*rc, "dynspec", store, "--field", TARGET, "--skymodel", sky, "-o", spectrum],
        "export": [*rc, "export", store, exported],
    }
    out = {}
    for name, argv in commands.items():
        out[name] = _measure([str(a) for a in argv], cells, REPO)
        print(f"  vla x{scale} {threads}t {name}: {out[name]}", file=sys.stderr)
        if "failed" in out[name]:
            break
    if PHASEREF:
        route = work / "phaseref"
        out["phaseref"] = _measure([str(a) for a in (*rc, "phaseref", ms, *CALIBRATE, "--skymodel", sky,
                                                     "-o", route)], cells, REPO)
        out["phaseref"]["steps"] = _steps(route)
        print(f"  vla x{scale} {threads}t phaseref: {out['phaseref']}", file=sys.stderr)
    return {"cells": cells, "ms_bytes": disk_bytes(ms), "commands": out}


def lwa_runs(directory: Path, threads: int, work: Path) -> dict:
    files = sorted(directory.glob("*.ms"))
    subbands = len({f.name.rsplit("_", 1)[1] for f in files})
    integrations = len(files) // max(1, subbands)
    cells = integrations * LWA_ANTENNAS * (LWA_ANTENNAS - 1) // 2 * subbands * LWA_CHANNELS * 4
    rc = _radiocal(threads)
    out = {"convert": _measure([str(a) for a in (*rc, "convert", directory, "-o", work / "store.zarr")],
                               cells, REPO)}
    print(f"  lwa {directory.name} {threads}t convert: {out['convert']}", file=sys.stderr)
    # lwa converts again into its own output: the store only held disk (6 GB at 4 x 4 sub-bands)
    shutil.rmtree(work / "store.zarr", ignore_errors=True)
    out["lwa"] = _measure([str(a) for a in (*rc, "lwa", directory, "-o", work / "lwa")], cells, REPO)
    out["lwa"]["steps"] = _steps(work / "lwa")
    print(f"  lwa {directory.name} {threads}t lwa: {out['lwa']}", file=sys.stderr)
    return {"cells": cells, "bytes": disk_bytes(directory), "commands": out}


def store_runs(store: Path, threads: int, work: Path, command: str = "flag") -> dict:
    """``radiocal flag`` (or ``calibrate``) on a copy of an existing store (its chunk files
    hard-linked: both write new arrays beside the old ones, never into a file they did not
    create)."""
    copy = work / "store.zarr"
    shutil.copytree(store, copy, copy_function=os.link)
    shape = json.loads((next(copy.glob("partitions/*/VISIBILITY/.zarray"))).read_text())["shape"]
    cells = sum(json.loads(p.read_text())["shape"][0] for p in copy.glob("partitions/*/VISIBILITY/.zarray")) \
        * shape[1] * shape[2] * shape[3]
    extra = CALIBRATE if command == "calibrate" else []
    out = {command: _measure([str(a) for a in (*_radiocal(threads), command, copy, *extra)], cells, REPO)}
    print(f"  store {store.name} {threads}t {command}: {out[command]}", file=sys.stderr)
    return {"cells": cells, "bytes": disk_bytes(store), "commands": out}


def _table(report) -> str:
    lines = ["| data | command | threads | wall s | CPU s | Mvis/s | peak RSS MB | load |",
             "|---|---|---|---|---|---|---|---|"]
    for label, by_threads in report["runs"].items():
        for threads, run in by_threads.items():
            for name, m in run["commands"].items():
                if "failed" in m:
                    lines.append(f"| {label} | {name} | {threads} | failed ({m['failed']}) | | | "
                                 f"{m['peak_rss_mb']:.0f} | |")
                    continue
                lines.append(f"| {label} | {name} | {threads} | {m['wall_s']} | {m['cpu_s']} | "
                             f"{m['vis_per_s'] / 1e6:.2f} | {m['peak_rss_mb']} | "
                             f"{'-'.join(map(str, m['load']))} |")
                for step, sm in m.get("steps", {}).items():
                    lines.append(f"| {label} | {name}: {step} | {threads} | {sm['wall_s']} | "
                                 f"{sm.get('cpu_s') or ''} | | {sm['peak_rss_mb']} | |")
    for label, by_threads in report["runs"].items():
        if "1" in by_threads and "2" in by_threads:
            for name, one in by_threads["1"]["commands"].items():
                two = by_threads["2"]["commands"].get(name, {})
                if "wall_s" in one and "wall_s" in two and "failed" not in one and "failed" not in two:
                    lines.append(f"| {label} | {name} | 1->2 speed-up | {one['wall_s'] / two['wall_s']:.2f} "
                                 "| | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vla", default="1,2,4", help="VLA-like scales, e.g. 1,2,4,8 ('' for none)")
    parser.add_argument("--lwa", default="", help="LWA-like sets INTxSUBBANDS, e.g. 1x4,2x4")
    parser.add_argument("--flag-stores", default="", metavar="STORES",
                        help="existing stores to flag (copies), e.g. DATA/lwa352_192ch_6int.zarr")
    parser.add_argument("--cal-stores", default="", metavar="STORES",
                        help="existing VLA-like stores to calibrate (copies)")
    parser.add_argument("--phaseref", action="store_true",
                        help="also run the phaseref route on each VLA-like MS (per-step peaks)")
    parser.add_argument("--threads", default="2", help="thread counts, e.g. 1,2")
    parser.add_argument("--processes", action="store_true",
                        help="N worker processes of one thread each, instead of N threads in-process")
    parser.add_argument("--radiocal-options", default="", metavar="OPTS",
                        help="global radiocal options for every command, e.g. '--chunk-mb 8'")
    parser.add_argument("--data", help="where inputs are made and kept (default /work/benchdata)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"lwa_files": child_lwa_files}[kind](*rest)
        return
    global PROCESSES, PHASEREF
    PROCESSES, PHASEREF = args.processes, args.phaseref
    GLOBAL_OPTIONS.extend(args.radiocal_options.split())
    data = _data_dir(args.data)
    data.mkdir(parents=True, exist_ok=True)
    threads = [int(t) for t in args.threads.split(",") if t]
    # the code the commands run: ``python -m radiocal`` with the repository as cwd imports its copy
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    report = {"machine_start": machine(), "commit": commit, "processes": PROCESSES,
              "options": GLOBAL_OPTIONS, "runs": {}}
    inputs = [(f"vla x{s}", vla_ms(data, int(s)), vla_runs) for s in args.vla.split(",") if s]
    for spec in (s for s in args.lwa.split(",") if s):
        integrations, subbands = (int(v) for v in spec.split("x"))
        inputs.append((f"lwa {integrations}int x {subbands}sb", lwa_dir(data, integrations, subbands),
                       lwa_runs))
    for store in (Path(s) for s in args.flag_stores.split(",") if s):
        inputs.append((f"store {store.name}", store, store_runs))
    for store in (Path(s) for s in args.cal_stores.split(",") if s):
        inputs.append((f"store {store.name}", store,
                       lambda path, n, work: store_runs(path, n, work, "calibrate")))
    for label, path, runner in inputs:
        report["runs"][label] = {}
        for n in threads:
            with tempfile.TemporaryDirectory(dir=data, prefix="bench_scale_") as work:
                report["runs"][label][str(n)] = runner(path, n, Path(work))
    report["machine_end"] = machine()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"commit {commit}; load average start/end: {report['machine_start'].get('loadavg')} / "
              f"{report['machine_end'].get('loadavg')}")
        print(_table(report))


if __name__ == "__main__":
    main()
