"""``radiocal convert / export / info``: results and bad input (one line, non-zero, nothing written)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from radiocal.store import schema as S
from radiocal.store.zarr_store import COMPLETE_ATTR, open_store


def _assert_one_line_error(result, *words):
    assert result.exit_code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def ms_copy(vla_small_ms, tmp_path):
    """A private copy of vla_small.ms that a test may damage."""
    path = tmp_path / "copy.ms"
    shutil.copytree(vla_small_ms, path)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
    os.chmod(path, 0o755)
    return path


def test_convert_then_info(vla_small_ms, tmp_path, run_cli):
    store = tmp_path / "obs.zarr"
    result = run_cli("convert", vla_small_ms, "-o", store)
    assert result.exit_code == 0, result.err
    assert "6 partitions" in result.out
    info = run_cli("info", store, "--json")
    assert info.exit_code == 0, info.err
    summary = json.loads(info.out)
    assert [f["name"] for f in summary["fields"]] == ["J1331+3030", "J1407+2827", "STAR"]
    assert [s["scan"] for s in summary["scans"]] == [1, 2, 3, 4, 5, 6]
    assert summary["rows"] == 3510 and summary["flagged_fraction"] == 0.0
    assert summary["spws"][0]["nchan"] == 32
    text = run_cli("info", vla_small_ms)
    assert text.exit_code == 0 and "J1407+2827" in text.out and "13:31:08.2880" in text.out


def test_convert_with_selection(vla_small_ms, tmp_path, run_cli):
    store = tmp_path / "star.zarr"
    result = run_cli("convert", vla_small_ms, "-o", store, "--field", "STAR", "--spw", "0:4~7",
                     "--antenna", "!W01", "--correlation", "RR,LL")
    assert result.exit_code == 0, result.err
    datasets = open_store(store)
    assert [ds.attrs[S.ATTR_SCAN] for ds in datasets] == [3, 5]
    ds = datasets[0]
    assert ds.sizes[S.FREQUENCY] == 4 and ds[S.POLARIZATION].values.tolist() == ["RR", "LL"]
    assert 0 not in ds[S.BASELINE_ANTENNA1].values and ds.sizes[S.BASELINE] == 36


def test_existing_output_is_refused_and_kept(vla_small_ms, tmp_path, run_cli):
    store = tmp_path / "obs.zarr"
    assert run_cli("convert", vla_small_ms, "-o", store).exit_code == 0
    before = sorted(os.listdir(store))
    _assert_one_line_error(run_cli("convert", vla_small_ms, "-o", store), "already exists")
    assert sorted(os.listdir(store)) == before
    assert run_cli("convert", vla_small_ms, "-o", store, "--overwrite").exit_code == 0
    out = tmp_path / "out.ms"
    assert run_cli("export", store, out).exit_code == 0
    _assert_one_line_error(run_cli("export", store, out), "already exists")


def _damage(kind, path):
    if kind == "plain file":
        shutil.rmtree(path)
        path.write_text("not a table")
    elif kind == "not a table":
        shutil.rmtree(path)
        path.mkdir()
        (path / "README").write_text("just a directory")
    elif kind == "truncated data":
        with open(path / "table.f2_TSM1", "r+b") as f:
            f.truncate(1000)
    elif kind == "truncated table.dat":
        with open(path / "table.dat", "r+b") as f:
            f.truncate(100)
    else:   # a missing subtable
        shutil.rmtree(path / kind)


@pytest.mark.parametrize("kind, words", [
    ("plain file", ["is a file"]),
    ("not a table", ["not a casacore table"]),
    ("truncated data", ["damaged"]),
    ("truncated table.dat", ["cannot open"]),
    ("SPECTRAL_WINDOW", ["missing SPECTRAL_WINDOW subtable"]),
    ("POLARIZATION", ["missing POLARIZATION subtable"]),
    ("ANTENNA", ["missing ANTENNA subtable"]),
])
def test_bad_measurement_sets(ms_copy, tmp_path, run_cli, kind, words):
    _damage(kind, ms_copy)
    store = tmp_path / "out.zarr"
    result = run_cli("convert", ms_copy, "-o", store)
    _assert_one_line_error(result, str(ms_copy), *words)
    assert not store.exists()
    _assert_one_line_error(run_cli("info", ms_copy), *words)


def test_missing_path_and_empty_selection(vla_small_ms, tmp_path, run_cli):
    store = tmp_path / "out.zarr"
    _assert_one_line_error(run_cli("convert", tmp_path / "nope.ms", "-o", store), "no such file")
    _assert_one_line_error(run_cli("convert", vla_small_ms, "-o", store, "--field", "NOPE"), "NOPE")
    _assert_one_line_error(run_cli("convert", vla_small_ms, "-o", store, "--scan", "1~x"), "1~x")
    assert not store.exists()


def test_debug_shows_the_traceback(tmp_path, run_cli):
    with pytest.raises(Exception, match="no such file"):
        run_cli("--debug", "convert", tmp_path / "nope.ms", "-o", tmp_path / "x.zarr")


def test_incomplete_store_is_refused(vla_small_ms, tmp_path, run_cli):
    import zarr

    store = tmp_path / "obs.zarr"
    assert run_cli("convert", vla_small_ms, "-o", store).exit_code == 0
    zarr.open_group(str(store), mode="r+").attrs[COMPLETE_ATTR] = False
    _assert_one_line_error(run_cli("info", store), "incomplete")
    _assert_one_line_error(run_cli("export", store, tmp_path / "x.ms"), "incomplete")


def test_input_ms_is_not_modified(ms_copy, tmp_path, run_cli):
    before = {p: os.path.getmtime(os.path.join(ms_copy, p)) for p in os.listdir(ms_copy)}
    os.chmod(ms_copy, 0o555)   # read-only input must be enough
    try:
        assert run_cli("convert", ms_copy, "-o", tmp_path / "obs.zarr").exit_code == 0
    finally:
        os.chmod(ms_copy, 0o755)
    assert {p: os.path.getmtime(os.path.join(ms_copy, p)) for p in os.listdir(ms_copy)} == before
    _assert_one_line_error(run_cli("export", tmp_path / "obs.zarr", ms_copy, "--overwrite"),
                           "refusing to overwrite an input")
