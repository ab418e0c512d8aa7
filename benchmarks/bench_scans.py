"""A scan-rich MS against a scan-poor one of as many visibilities: does a visibility cost the
same whatever the number of partitions (issue 17)?

Both are VLA-like (27 antennas, 4 correlations, the phase-referencing fields of bench_pipeline)
with the same integrations and channels in all:

- scan-rich: 4 spectral windows x 16 channels; the flux calibrator for 6 integrations, then
  (phase calibrator 2, target 4) x 50, then the phase calibrator 2: 102 scans, 408 partitions;
- scan-poor: 1 spectral window of 64 channels; flux calibrator 6, phase calibrator 26, target
  250, phase calibrator 26: 4 scans, 4 partitions.

308 integrations x 351 baselines x 64 channels x 4 correlations = 27.7 M visibilities each
(0.25 GB). Each command is its own process (``wait4``: wall, CPU of the process and its reaped
children, peak RSS), on radiocal's default engine unless ``--radiocal-options`` says otherwise:
``convert``, ``flag``, ``calibrate``, ``dynspec`` (of the target) and ``export`` in turn on a fresh store. Repeats are
interleaved (rich, poor, rich, poor, ...); the best and median CPU and wall per visibility and
the ratio rich / poor are printed. CPU seconds compare better than wall seconds on a shared
machine.

    python benchmarks/bench_scans.py --repeat 3
    python benchmarks/bench_scans.py --radiocal-options '--scheduler threads'
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, machine, python_child, run_child  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FLUXCAL, PHASECAL, TARGET = "J1331+3030", "J1407+2827", "STAR"
N_ANTENNAS, N_CHANNELS = 27, 64
SETS = {
    "rich": dict(spws=4, schedule=((0, 6), *((1, 2), (2, 4)) * 50, (1, 2))),
    "poor": dict(spws=1, schedule=((0, 6), (1, 26), (2, 250), (1, 26))),
}
CELLS = sum(n for _, n in SETS["poor"]["schedule"]) * N_ANTENNAS * (N_ANTENNAS - 1) // 2 \
    * N_CHANNELS * 4
CALIBRATE = ["--fluxcal", FLUXCAL, "--fluxcal-model", "15.0,-0.5,1.4GHz", "--phasecal", PHASECAL,
             "--target", TARGET, "--refant", "0"]


def child_simulate(path: str, kind: str) -> None:
    from radiocal.simulate import SimConfig, simulate_ms

    spec = SETS[kind]
    width = N_CHANNELS // spec["spws"]
    config = SimConfig.vla_small_like(
        n_antennas=N_ANTENNAS,
        spws=tuple((1.3e9 + k * width * 1.0e6, 1.0e6, width) for k in range(spec["spws"])),
        schedule=spec["schedule"], seed=7)
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    simulate_ms(partial, config)
    os.rename(partial, path)
    emit_result(ok=True)


def _ms(data: Path, kind: str) -> Path:
    path = data / f"scans_{kind}_27ant_64ch.ms"
    if not path.is_dir():
        made = run_child(python_child(__file__, "--child", "simulate", path, kind))
        if made.returncode:
            sys.exit(f"simulating {path} failed:\n{made.output}")
    return path


def _run(ms: Path, work: Path, options: list[str]) -> dict:
    store, exported, spectrum = work / "store.zarr", work / "out.ms", work / "dynspec.zarr"
    rc = [sys.executable, "-m", "radiocal.cli.main", *options]
    commands = {"convert": [*rc, "convert", ms, "-o", store],
                "flag": [*rc, "flag", store],
                "calibrate": [*rc, "calibrate", store, *CALIBRATE],
                "dynspec": [*rc, "dynspec", store, "--field", TARGET, "-o", spectrum],
                "export": [*rc, "export", store, exported]}
    out = {}
    for name, argv in commands.items():
        result = run_child([str(a) for a in argv], cwd=REPO)
        if result.returncode:
            sys.exit(f"{name} on {ms.name} failed:\n{result.output[-2000:]}")
        out[name] = {"wall_s": round(result.wall_s, 2), "cpu_s": round(result.cpu_s, 2),
                     "peak_rss_mb": round(result.peak_rss_mb)}
        print(f"  {ms.name} {name}: {out[name]}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="interleaved runs of each set")
    parser.add_argument("--radiocal-options", default="", metavar="OPTS",
                        help="global radiocal options for every command, e.g. '--scheduler threads'")
    parser.add_argument("--data", type=Path, help="where the MS are made and kept "
                        "(default /work/benchdata, else benchmarks/data)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"simulate": child_simulate}[kind](*rest)
        return
    data = args.data or (Path("/work/benchdata") if Path("/work/benchdata").is_dir() else HERE / "data")
    data.mkdir(parents=True, exist_ok=True)
    options = args.radiocal_options.split()
    inputs = {kind: _ms(data, kind) for kind in SETS}
    start = machine()
    runs: dict = {kind: [] for kind in SETS}
    for _ in range(args.repeat):
        for kind, ms in inputs.items():
            with tempfile.TemporaryDirectory(dir=data, prefix="bench_scans_") as work:
                runs[kind].append(_run(ms, Path(work), options))
    end = machine()
    print(f"load average start/end: {start.get('loadavg')} / {end.get('loadavg')}; "
          f"{CELLS / 1e6:.1f} M visibilities each; options {options or 'default engine'}")
    print("| command | set | CPU s best / median | wall s best / median | CPU ns/vis (median) "
          "| peak RSS MB | rich/poor CPU (median) | rich/poor wall (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("convert", "flag", "calibrate", "dynspec", "export"):
        medians = {}
        for kind in SETS:
            cpu = [r[name]["cpu_s"] for r in runs[kind]]
            wall = [r[name]["wall_s"] for r in runs[kind]]
            medians[kind] = (statistics.median(cpu), statistics.median(wall))
            ratio = ""
            if kind == "poor":
                ratio = (f"| {medians['rich'][0] / medians['poor'][0]:.2f} "
                         f"| {medians['rich'][1] / medians['poor'][1]:.2f} |")
            print(f"| {name} | {kind} | {min(cpu):.2f} / {medians[kind][0]:.2f} | "
                  f"{min(wall):.2f} / {medians[kind][1]:.2f} | "
                  f"{medians[kind][0] / CELLS * 1e9:.0f} | "
                  f"{max(r[name]['peak_rss_mb'] for r in runs[kind])} {ratio or '| | |'}")


if __name__ == "__main__":
    main()
