"""Bad input through the real command line, each in its own process.

Every case must end with a non-zero exit (not a signal), exactly one line on stderr that names
the problem, no traceback, and every input file byte-for-byte and mtime unchanged.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..engine.engine_testing import tree_digest

RADIOCAL = [sys.executable, "-m", "radiocal.cli.main", "--scheduler", "threads"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small simulated MS, its store (converted), its target's sky model."""
    from radiocal.simulate import SimConfig, simulate_ms

    root = tmp_path_factory.mktemp("good")
    ms = root / "good.ms"
    sim = simulate_ms(ms, SimConfig(n_antennas=4, seed=2))
    store = root / "good.zarr"
    done = subprocess.run([*RADIOCAL, "convert", str(ms), "-o", str(store)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    sky = root / "sky.txt"
    sky.write_text(sim.truth.sky.skymodel_text(2))
    return {"ms": ms, "store": store, "sky": sky}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _chunk(store: Path, variable: str) -> Path:
    return next((store / "partitions").glob(f"*/{variable}/0.0*"))


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _data_tiles(ms: Path) -> Path:
    """The tile file holding the MS's DATA column (its number follows the data managers')."""
    import casacore.tables as ct

    with ct.table(str(ms), ack=False) as t:
        seqnr = t.getdminfo("DATA")["SEQNR"]
    return next(ms.glob(f"table.f{seqnr}_TSM*"))


def _ms_edit(ms: Path, fn) -> None:
    import casacore.tables as ct

    with ct.table(str(ms), readonly=False, ack=False) as t:
        fn(t, ct)


# Each case: tmp, good -> (arguments after `radiocal`, input paths to keep unchanged, words the
# error line must contain[, subprocess.run options])

def missing_path(tmp, good):
    return ["convert", str(tmp / "nope.ms"), "-o", str(tmp / "o.zarr")], [], ["nope.ms"]


def not_an_ms(tmp, good):
    d = tmp / "notes.ms"
    d.mkdir()
    (d / "readme.txt").write_text("hello")
    return ["convert", str(d), "-o", str(tmp / "o.zarr")], [d], ["notes.ms", "not"]


def ms_is_a_file(tmp, good):
    f = tmp / "file.ms"
    f.write_text("not a table")
    return ["info", str(f)], [f], ["file.ms"]


def truncated_main_file(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    _truncate(ms / "table.f0")
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["table.f0"]


def truncated_column_file(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    tiles = _data_tiles(ms)
    _truncate(tiles)
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], [tiles.name]


def empty_storage_file(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    (ms / "table.f0").write_bytes(b"")
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["table.f0", "empty"]


def corrupt_table_dat(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    _truncate(ms / "table.dat", 0.3)
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["t.ms"]


def empty_main_table(tmp, good):
    ms = tmp / "empty.ms"
    with _open_ms(good["ms"]) as t:
        t.selectrows([]).copy(str(ms), deep=True).close()
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["empty.ms", "no rows"]


def _pipeline(tmp, good, content, expect: str):
    """``radiocal run`` of a pipeline file holding ``content`` (text, or bytes as they are)."""
    f = tmp / "pipe.yaml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    return ["run", str(f), str(good["ms"]), "-o", str(tmp / "out")], [good["ms"], f], [expect]


def _open_ms(path):
    import casacore.tables as ct

    return ct.table(str(path), ack=False)


def missing_subtable(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    shutil.rmtree(ms / "SPECTRAL_WINDOW")
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["SPECTRAL_WINDOW"]


def unsupported_correlations(tmp, good):
    from radiocal.simulate import SimConfig, simulate_ms

    ms = tmp / "rr_rl.ms"
    simulate_ms(ms, SimConfig(n_antennas=3, n_correlations=2, schedule=((0, 2),), seed=2))
    import casacore.tables as ct

    with ct.table(str(ms / "POLARIZATION"), readonly=False, ack=False) as pol:
        pol.putcell("CORR_TYPE", 0, [5, 6])   # RR RL: one parallel hand and a cross hand
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["correlation"]


def store_not_complete(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    attrs = json.loads((store / ".zattrs").read_text())
    attrs.pop("radiocal_complete", None)
    (store / ".zattrs").write_text(json.dumps(attrs))
    return ["flag", str(store)], [store], ["s.zarr", "incomplete"]


def truncated_visibility_chunk(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    chunk = _chunk(store, "VISIBILITY")
    _truncate(chunk)
    return ["flag", str(store)], [store], [chunk.name, "VISIBILITY", "truncated"]


def truncated_flag_chunk(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    chunk = _chunk(store, "FLAG")
    _truncate(chunk)
    return ["flag", str(store)], [store], ["FLAG"]


def corrupt_zarray(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    zarray = _chunk(store, "VISIBILITY").parent / ".zarray"
    zarray.write_text(zarray.read_text()[:40])
    return ["flag", str(store)], [store], ["VISIBILITY", ".zarray"]


def store_missing_a_partition(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    partition = sorted(p for p in (store / "partitions").iterdir() if p.is_dir())[0]
    shutil.rmtree(partition)
    return ["flag", str(store)], [store], [partition.name]


def bad_selection_syntax(tmp, good):
    return (["convert", str(good["ms"]), "-o", str(tmp / "o.zarr"), "--scan", "1~~x"],
            [good["ms"]], ["scan"])


def selection_matches_nothing(tmp, good):
    return (["convert", str(good["ms"]), "-o", str(tmp / "o.zarr"), "--scan", "99"],
            [good["ms"]], ["99"])


def unknown_field(tmp, good):
    return (["dynspec", str(good["store"]), "--field", "NOSUCH", "-o", str(tmp / "d.zarr")],
            [good["store"]], ["NOSUCH"])


def bad_strategy_yaml(tmp, good):
    f = tmp / "strategy.yaml"
    f.write_text("flaggers: [\n  - flagger: clip\n  bad: {")
    return ["flag", str(good["store"]), "--strategy", str(f)], [good["store"], f], ["strategy.yaml"]


def strategy_wrong_type(tmp, good):
    f = tmp / "strategy.yaml"
    f.write_text("flaggers:\n  - flagger: sumthreshold\n    threshold: \"six\"\n")
    return ["flag", str(good["store"]), "--strategy", str(f)], [good["store"], f], ["threshold"]


def output_inside_input(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    return ["convert", str(ms), "-o", str(ms / "out.zarr")], [ms], ["t.ms"]


def output_is_input(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    return ["export", str(store), str(store), "--overwrite"], [store], ["s.zarr"]


def unwritable_output(tmp, good):
    blocker = tmp / "plainfile"
    blocker.write_text("x")
    return (["convert", str(good["ms"]), "-o", str(blocker / "o.zarr")], [good["ms"], blocker],
            ["plainfile"])


def bad_skymodel(tmp, good):
    f = tmp / "sky.txt"
    f.write_text("Format = Name, Type, Ra, Dec, I\nsrc0, POINT, notanangle, 12deg, x\n")
    return (["dynspec", str(good["store"]), "--field", "STAR", "--skymodel", str(f), "-o",
             str(tmp / "d.zarr")], [good["store"], f], ["sky.txt"])


def missing_skymodel(tmp, good):
    return (["dynspec", str(good["store"]), "--field", "STAR", "--skymodel", str(tmp / "no.txt"),
             "-o", str(tmp / "d.zarr")], [good["store"]], ["no.txt"])


def bad_chunk_mb(tmp, good):
    return (["--chunk-mb", "-3", "convert", str(good["ms"]), "-o", str(tmp / "o.zarr")],
            [good["ms"]], ["chunk-mb"])


def bad_memory_limit(tmp, good):
    return (["--memory-limit", "lots", "convert", str(good["ms"]), "-o", str(tmp / "o.zarr")],
            [good["ms"]], ["memory-limit", "lots"])


def unknown_refant(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    return (["calibrate", str(store), "--fluxcal", "J1331+3030", "--phasecal", "J1407+2827",
             "--target", "STAR", "--refant", "XX99"], [good["ms"]], ["XX99"])


def unknown_calibrator(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    return (["calibrate", str(store), "--fluxcal", "3C999", "--phasecal", "J1407+2827",
             "--target", "STAR"], [good["ms"]], ["3C999"])


def bad_pipeline_yaml(tmp, good):
    return _pipeline(tmp, good, "- step: convert\n- step: nosuchstep\n", "nosuchstep")


def not_a_dynspec(tmp, good):
    return ["plot", str(good["store"]), "-o", str(tmp / "p.png")], [good["store"]], ["good.zarr"]


def info_on_garbage_store(tmp, good):
    store = tmp / "junk.zarr"
    store.mkdir()
    (store / ".zattrs").write_text("{not json")
    return ["info", str(store)], [store], ["junk.zarr"]


def store_partition_missing_a_variable(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    flag = _chunk(store, "FLAG").parent
    shutil.rmtree(flag)
    return ["flag", str(store)], [store], [flag.parent.name, "FLAG"]


def no_spectral_window_rows(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms / "SPECTRAL_WINDOW", lambda t, ct: t.removerows(list(range(t.nrows()))))
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["SPECTRAL_WINDOW"]


def data_shape_differs_between_rows(tmp, good):
    import numpy as np

    def append_short_row(t, ct):
        """A copy of the last row, 1 s later, with half the channels in DATA and FLAG."""
        last = t.nrows() - 1
        t.addrows(1)
        for column in t.colnames():
            if t.iscelldefined(column, last) and column not in ("DATA", "FLAG"):
                t.putcell(column, last + 1, t.getcell(column, last))
        t.putcell("TIME", last + 1, t.getcell("TIME", last) + 1.0)
        nchan, ncorr = t.getcell("DATA", last).shape
        t.putcell("DATA", last + 1, np.zeros((nchan // 2, ncorr), dtype=np.complex64))
        t.putcell("FLAG", last + 1, np.zeros((nchan // 2, ncorr), dtype=bool))

    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms, append_short_row)
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["t.ms", "DATA"]


def zero_byte_ms(tmp, good):
    f = tmp / "zero.ms"
    f.write_bytes(b"")
    return ["convert", str(f), "-o", str(tmp / "o.zarr")], [f], ["zero.ms"]


def antenna_beyond_the_table(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms, lambda t, ct: t.putcell("ANTENNA2", 0, 99))
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["t.ms", "antennas"]


def bad_phase_centre(tmp, good):
    return (["convert", str(good["ms"]), "-o", str(tmp / "o.zarr"), "--phase-centre",
             "13h50m00s +95d00m00s"], [good["ms"]], ["phase_centre", "declination"])


def pipeline_option_wrong_type(tmp, good):
    return _pipeline(tmp, good, "- step: convert\n  chunk_mb: lots\n", "chunk_mb")


def join_of_different_arrays(tmp, good):
    from radiocal.simulate import SimConfig, simulate_ms

    other = tmp / "other.ms"
    simulate_ms(other, SimConfig(n_antennas=5, schedule=((0, 2),), seed=2))
    return (["convert", str(good["ms"]), str(other), "-o", str(tmp / "o.zarr")],
            [good["ms"], other], ["antenna table differs"])


def _partition(store: Path) -> Path:
    return sorted(p for p in (store / "partitions").iterdir() if p.is_dir())[0]


def _small_files(limit=20_000):
    """Files may not grow beyond ``limit`` bytes: a write fails as on a full disk (EFBIG; Python
    ignores SIGXFSZ, so the write returns the error rather than killing the process)."""
    return {"preexec_fn": lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))}


def pipeline_unknown_option(tmp, good):
    return _pipeline(tmp, good, "- step: convert\n  chunk_mbb: 3\n", "chunk_mbb")


def pipeline_not_a_list(tmp, good):
    return _pipeline(tmp, good, "step: convert\n", "pipe.yaml")


def pipeline_not_text(tmp, good):
    return _pipeline(tmp, good, b"\xff\xfe\x00- step\x00", "pipe.yaml")


def strategy_not_text(tmp, good):
    f = tmp / "strategy.yaml"
    f.write_bytes(b"\xff\xfe\x00flaggers\x00")
    return ["flag", str(good["store"]), "--strategy", str(f)], [good["store"], f], ["strategy.yaml"]


def bad_antenna_list_not_text(tmp, good):
    f = tmp / "bad.txt"
    f.write_bytes(b"\xff\xfe\x00ea01\x00")
    return (["flag", str(good["store"]), "--bad-antennas-file", str(f)], [good["store"], f],
            ["bad.txt"])


def store_root_attributes_corrupt(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    (store / ".zattrs").write_text((store / ".zattrs").read_text()[:30])
    return ["flag", str(store)], [store], ["s.zarr", "metadata"]


def store_root_group_corrupt(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    (store / ".zgroup").write_text("{")
    return ["info", str(store)], [store], ["s.zarr", "metadata"]


def partition_attributes_corrupt(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    partition = _partition(store)
    (partition / ".zattrs").write_text("{garbage")
    return (["dynspec", str(store), "--field", "STAR", "-o", str(tmp / "d.zarr")], [store],
            [partition.name, "metadata"])


def disk_full_convert(tmp, good):
    return (["convert", str(good["ms"]), "-o", str(tmp / "o.zarr")], [good["ms"]],
            ["o.zarr", "writing failed"], _small_files())


def disk_full_export(tmp, good):
    return (["export", str(good["store"]), str(tmp / "o.ms")], [good["store"]],
            ["o.ms", "writing failed"], _small_files())


def disk_full_export_rows(tmp, good):
    """The subtables fit, the main table's rows do not: the table open at the failure, whose
    destructor would flush again at exit and abort the process, is closed or never freed."""
    return (["export", str(good["store"]), str(tmp / "o.ms")], [good["store"]],
            ["o.ms", "writing failed"], _small_files(100_000))


def disk_full_caltable(tmp, good):
    """A CASA calibration table whose subtables do not fit: one line, not casacore's abort in
    the destructor of the table left open (the main table)."""
    store = _copy(good["store"], tmp / "s.zarr")
    done = subprocess.run([*RADIOCAL, "solve", "gain", str(store), "-o", "g"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return (["caltable", "export", str(store), "g", str(tmp / "g.tb")], [store],
            ["g.tb", "writing failed"], _small_files(8_000))


def disk_full_flag(tmp, good):
    """Flags are written in place: the store is the output (it stays readable, see test_store)."""
    store = _copy(good["store"], tmp / "s.zarr")
    return ["flag", str(store)], [], ["s.zarr", "writing failed"], _small_files(2_000)


def disk_full_dynspec(tmp, good):
    return (["dynspec", str(good["store"]), "--field", "STAR", "-o", str(tmp / "d.zarr")],
            [good["store"]], ["d.zarr", "writing failed"], _small_files(2_000))


def _spw_of_8_channels(t, ct):
    for column in ("CHAN_FREQ", "CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
        t.putcell(column, 0, t.getcell(column, 0)[:8])
    t.putcell("NUM_CHAN", 0, 8)


def data_channels_not_the_spws(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms / "SPECTRAL_WINDOW", _spw_of_8_channels)
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["t.ms", "16 channels", "8 channels"]


def data_correlations_not_the_polarizations(tmp, good):
    import numpy as np

    def rr_ll(t, ct):
        t.putcell("CORR_TYPE", 0, np.array([5, 8], np.int32))
        t.putcell("NUM_CORR", 0, 2)
        t.putcell("CORR_PRODUCT", 0, np.array([[0, 1], [0, 1]], np.int32))
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms / "POLARIZATION", rr_ll)
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["t.ms", "4 correlations", "2 correlations"]


def no_uvw_column(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms, lambda t, ct: t.removecols(["UVW"]))
    return ["info", str(ms)], [ms], ["t.ms", "UVW"]


def time_not_finite(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms, lambda t, ct: t.putcell("TIME", 3, float("nan")))
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["t.ms", "TIME"]


def frequency_not_finite(tmp, good):
    def nan_channel(t, ct):
        freq = t.getcell("CHAN_FREQ", 0)
        freq[2] = float("nan")
        t.putcell("CHAN_FREQ", 0, freq)
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms / "SPECTRAL_WINDOW", nan_channel)
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["t.ms", "CHAN_FREQ"]


def phase_centre_not_finite(tmp, good):
    def nan_direction(t, ct):
        t.putcell("PHASE_DIR", 2, t.getcell("PHASE_DIR", 2) * float("nan"))
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms / "FIELD", nan_direction)
    return (["dynspec", str(ms), "--field", "STAR", "--skymodel", str(good["sky"]), "-o",
             str(tmp / "d.zarr")], [ms, good["sky"]], ["t.ms", "PHASE_DIR"])


def negative_antenna_id(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms, lambda t, ct: t.putcell("ANTENNA1", 0, -1))
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["t.ms", "ANTENNA1"]


def negative_data_description_id(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    _ms_edit(ms, lambda t, ct: t.putcell("DATA_DESC_ID", 0, -1))
    return ["convert", str(ms), "-o", str(tmp / "o.zarr")], [ms], ["t.ms", "DATA_DESCRIPTION"]


def flag_selection_matches_nothing(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    return ["flag", str(store), "--scan", "99"], [store], ["99"]


def export_selection_matches_nothing(tmp, good):
    return (["export", str(good["store"]), str(tmp / "o.ms"), "--field", "NOPE"], [good["store"]],
            ["NOPE"])


def phaseref_of_a_truncated_ms(tmp, good):
    ms = _copy(good["ms"], tmp / "t.ms")
    tiles = _data_tiles(ms)
    _truncate(tiles)
    return ["phaseref", str(ms), "-o", str(tmp / "out")], [ms], [tiles.name]


def lwa_of_a_truncated_ms(tmp, good):
    ms = _copy(good["ms"], tmp / "20240101_000000_55MHz.ms")
    tiles = _data_tiles(ms)
    _truncate(tiles)
    return ["lwa", str(ms), "-o", str(tmp / "out"), "--no-image"], [ms], [tiles.name]


def missing_calibration_table(tmp, good):
    store = _copy(good["store"], tmp / "s.zarr")
    return ["apply", str(store), "--gaintable", "nosuch"], [store], ["nosuch"]


def dynspec_uvrange_keeps_nothing(tmp, good):
    return (["dynspec", str(good["store"]), "--field", "STAR", "--uvrange", ">1000km", "-o",
             str(tmp / "d.zarr")], [good["store"]], ["uvrange", ">1000km"])


def skymodel_is_a_directory(tmp, good):
    d = tmp / "skydir"
    d.mkdir()
    return (["dynspec", str(good["store"]), "--field", "STAR", "--skymodel", str(d), "-o",
             str(tmp / "d.zarr")], [good["store"]], ["skydir"])


def skymodel_not_text(tmp, good):
    f = tmp / "sky.bin"
    f.write_bytes(bytes(range(256)) * 4)
    return (["dynspec", str(good["store"]), "--field", "STAR", "--skymodel", str(f), "-o",
             str(tmp / "d.zarr")], [good["store"], f], ["sky.bin"])


CASES = [missing_path, not_an_ms, ms_is_a_file, truncated_main_file, truncated_column_file,
         empty_storage_file, corrupt_table_dat, empty_main_table, missing_subtable,
         unsupported_correlations, store_not_complete, truncated_visibility_chunk,
         truncated_flag_chunk, corrupt_zarray, store_missing_a_partition, bad_selection_syntax, selection_matches_nothing,
         unknown_field, bad_strategy_yaml, strategy_wrong_type, output_inside_input,
         output_is_input, unwritable_output, bad_skymodel, missing_skymodel, bad_chunk_mb, bad_memory_limit,
         unknown_refant, unknown_calibrator, bad_pipeline_yaml, not_a_dynspec,
         info_on_garbage_store, store_partition_missing_a_variable, no_spectral_window_rows,
         data_shape_differs_between_rows, zero_byte_ms, antenna_beyond_the_table,
         bad_phase_centre, pipeline_option_wrong_type, join_of_different_arrays,
         pipeline_unknown_option, pipeline_not_a_list, pipeline_not_text, strategy_not_text,
         bad_antenna_list_not_text, store_root_attributes_corrupt, store_root_group_corrupt,
         partition_attributes_corrupt, disk_full_convert, disk_full_export,
         disk_full_export_rows, disk_full_caltable, disk_full_flag, disk_full_dynspec,
         data_channels_not_the_spws, data_correlations_not_the_polarizations, no_uvw_column,
         time_not_finite, frequency_not_finite, phase_centre_not_finite, negative_antenna_id,
         negative_data_description_id, flag_selection_matches_nothing,
         export_selection_matches_nothing, phaseref_of_a_truncated_ms, lwa_of_a_truncated_ms,
         missing_calibration_table, skymodel_is_a_directory, skymodel_not_text,
         dynspec_uvrange_keeps_nothing]


def _digest(path: Path):
    return tree_digest(path) if path.is_dir() else path.read_bytes()


def _run_case(case, good, tmp: Path) -> dict:
    tmp.mkdir()
    args, inputs, words, *options = case(tmp, good)
    before = {str(p): _digest(p) for p in inputs}
    done = subprocess.run([*RADIOCAL, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, **(options[0] if options else {}))
    return {"done": done, "words": words, "before": before,
            "after": {str(p): _digest(p) for p in inputs}}


@pytest.fixture(scope="module")
def outcomes(good, tmp_path_factory):
    """Every case run once, three processes at a time (most of a case is Python starting)."""
    root = tmp_path_factory.mktemp("bad")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {c.__name__: pool.submit(_run_case, c, good, root / c.__name__) for c in CASES}
        return {name: future.result() for name, future in futures.items()}


def test_enough_kinds():
    assert len(CASES) >= 18


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_line(case, outcomes):
    outcome = outcomes[case.__name__]
    done = outcome["done"]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode > 0, (done.returncode, done.stderr)     # an exit, not a signal
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("radiocal: ") and "internal error" not in lines[0], lines[0]
    for word in outcome["words"]:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    assert outcome["after"] == outcome["before"]


def test_a_runs_own_products_are_no_inputs(good, tmp_path, monkeypatch):
    """Only the source step's MS are inputs: the image step's ``ms`` (calibrated.ms, a product
    inside the output directory) is not, so an output directory below the working directory
    is not refused as overlapping the input '.' (radiocal lwa was refused so)."""
    from radiocal.cli.engine_commands import refuse_writing_inputs
    from radiocal.engine.pipeline import load_pipeline
    from radiocal.errors import InputError

    monkeypatch.chdir(tmp_path)
    steps = load_pipeline([{"step": "convert", "ms": [str(good["ms"])]}, {"step": "export"},
                           {"step": "image"}])
    refuse_writing_inputs(steps, "out")
    with pytest.raises(InputError, match="overlaps the input"):
        refuse_writing_inputs(steps, good["ms"] / "out")
