"""The pipeline runner on the threaded scheduler: checkpoints, resume, redo, provenance, safety."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

import radiocal
from radiocal.engine import checkpoint
from radiocal.engine.pipeline import load_pipeline
from radiocal.engine.runner import run_pipeline
from radiocal.errors import ConfigError, InputError
from radiocal.store import schema as S

from .engine_testing import assert_same_outputs, chain, load_outputs, tree_digest


def _run(ms, outdir, **kwargs):
    overrides = kwargs.pop("overrides", ())
    with radiocal.Engine(scheduler="threads") as engine:
        return run_pipeline(load_pipeline(chain(ms, **kwargs), overrides=overrides), outdir, engine)


def test_chain_writes_store_records_products_and_provenance(small_ms, tmp_path):
    before = tree_digest(small_ms)
    document = _run(small_ms, tmp_path / "out")
    out = tmp_path / "out"
    assert tree_digest(small_ms) == before  # the input MS is never written to
    assert (out / "calibrated.ms").is_dir() and (out / "log.txt").read_text().count("running") == 5

    records = checkpoint.read_records(out / "store.zarr")
    assert [r["name"] for r in records] == ["convert", "test_scale", "test_clip", "test_correct", "export"]
    assert all(r["status"] == "complete" for r in records)
    assert records[1]["overwrites"] == [S.VISIBILITY] and records[3]["creates"] == [S.VISIBILITY_CORRECTED]
    assert len({r["chain"] for r in records}) == 5

    # the store holds what the steps computed, checked against numpy on the source data
    source = [ds.compute() for ds in radiocal.open(small_ms)]
    result = load_outputs(out)
    for src, ds in zip(source, result):
        scaled = (src[S.VISIBILITY].values.astype(np.complex128) * 1.5).astype(np.complex64)
        np.testing.assert_array_equal(ds[S.VISIBILITY].values, scaled)
        np.testing.assert_array_equal(ds[S.FLAG].values, src[S.FLAG].values | (np.abs(scaled) > 20.0))
        np.testing.assert_allclose(ds[S.VISIBILITY_CORRECTED].values, scaled * 0.25, rtol=1e-6)
    assert any(ds[S.FLAG].values.any() and not ds[S.FLAG].values.all() for ds in result)

    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["steps"] == json.loads(json.dumps(document["steps"]))
    assert provenance["status"] == "complete"
    for name in ("radiocal", "numpy", "dask", "distributed", "xarray", "zarr", "numba", "casacore"):
        assert provenance["versions"][name]
    assert provenance["pipeline"][2] == {"step": "test_clip", "threshold": 20.0, "delay": 0.0,
                                      "marker": "", "fail_if": ""}
    assert provenance["inputs"][0]["path"] == str(small_ms.resolve())
    for step in provenance["steps"]:
        assert step["status"] == "ran" and step["wall_time_s"] > 0 and step["peak_memory_bytes"] > 10e6


def test_rerun_skips_completed_steps(small_ms, tmp_path):
    out = tmp_path / "out"
    _run(small_ms, out)
    store_before = tree_digest(out / "store.zarr")
    document = _run(small_ms, out)
    assert [s["status"] for s in document["steps"]] == ["skipped"] * 5
    assert "already complete, skipped" in (out / "log.txt").read_text()
    assert tree_digest(out / "store.zarr") == store_before  # nothing was rewritten


def test_changed_config_redoes_that_step_and_later_ones_only(small_ms, tmp_path):
    out = tmp_path / "out"
    _run(small_ms, out, threshold=20.0, export=False)
    first = load_outputs(out)
    document = _run(small_ms, out, threshold=8.0, export=False)
    assert [s["status"] for s in document["steps"]] == ["skipped", "skipped", "ran", "ran"]
    _run(small_ms, tmp_path / "fresh", threshold=8.0, export=False)
    # the redo started from the flags as they were before the first clip (restored from backup)
    assert_same_outputs(out, tmp_path / "fresh")
    # and going back to the first config reproduces the first result again
    _run(small_ms, out, threshold=20.0, export=False)
    for before, after in zip(first, load_outputs(out)):
        xr.testing.assert_identical(before, after)


def test_a_step_passing_partitions_by_writes_and_undoes_only_its_own(small_ms, tmp_path):
    """A transform limited to one field (applycal's field) leaves the other partitions as they
    were, without the variable it creates; a redo undoes it in its partitions only."""
    out = tmp_path / "out"
    steps = chain(small_ms, export=False)
    steps[-1]["field_id"] = "0"
    with radiocal.Engine(scheduler="threads") as engine:
        run_pipeline(load_pipeline(steps), out, engine)
    fields = [str(ds.attrs[S.ATTR_FIELD_ID]) for ds in load_outputs(out)]
    assert sorted(set(fields)) == ["0", "1"]
    assert [S.VISIBILITY_CORRECTED in ds for ds in load_outputs(out)] == [f == "0" for f in fields]
    record = checkpoint.read_records(out / "store.zarr")[-1]
    assert record["creates"] == [S.VISIBILITY_CORRECTED] and len(record["partitions"]) == fields.count("0")
    steps[-1]["field_id"] = "1"
    with radiocal.Engine(scheduler="threads") as engine:
        document = run_pipeline(load_pipeline(steps), out, engine)
    assert [s["status"] for s in document["steps"]] == ["skipped"] * 3 + ["ran"]
    assert [S.VISIBILITY_CORRECTED in ds for ds in load_outputs(out)] == [f == "1" for f in fields]


def test_changed_input_redoes_everything(small_ms, tmp_path):
    import shutil

    copy = tmp_path / "copy.ms"
    shutil.copytree(small_ms, copy)
    out = tmp_path / "out"
    _run(copy, out, export=False)
    (copy / "table.info").write_text((copy / "table.info").read_text() + "\n")  # a new version
    document = _run(copy, out, export=False)
    assert [s["status"] for s in document["steps"]] == ["ran"] * 4


def test_interrupted_step_is_redone_and_store_refused_meanwhile(small_ms, tmp_path):
    out, stop = tmp_path / "out", tmp_path / "stop"
    _run(small_ms, tmp_path / "fresh", export=False)
    stop.touch()  # the clip step's chunks fail while this exists: a step dying mid-computation
    with pytest.raises(RuntimeError, match="clip interrupted"):
        _run(small_ms, out, fail_if=str(stop), export=False)
    assert checkpoint.incomplete_steps(out / "store.zarr") == ["02_test_clip"]
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["status"] == "failed" and "clip interrupted" in provenance["error"]
    assert [s["step"] for s in provenance["steps"]] == ["convert", "test_scale"]
    assert "ERROR radiocal.runlog: pipeline failed: clip interrupted" in (out / "log.txt").read_text()
    with pytest.raises(InputError, match="interrupted"):
        radiocal.open(out)
    stop.unlink()
    document = _run(small_ms, out, fail_if=str(stop), export=False)
    assert [s["status"] for s in document["steps"]] == ["skipped", "skipped", "ran", "ran"]
    assert_same_outputs(out, tmp_path / "fresh")


def test_outputs_never_go_into_an_input(small_ms, tmp_path):
    with pytest.raises(ConfigError, match="overlaps input"):
        run_pipeline(load_pipeline(chain(small_ms)), small_ms / "out")
    steps = chain(small_ms)
    steps[-1] = {"step": "export", "path": str(small_ms), "overwrite": True}
    before = tree_digest(small_ms)
    with radiocal.Engine(scheduler="sync") as engine, pytest.raises(ConfigError, match="is an input"):
        run_pipeline(load_pipeline(steps), tmp_path / "out", engine)
    assert tree_digest(small_ms) == before


def test_library_open_is_lazy(small_ms, tmp_path):
    import dask

    def refuse(*args, **kwargs):
        raise AssertionError("computed")

    with dask.config.set(scheduler=refuse):
        datasets = radiocal.open(small_ms)
    assert len(datasets) == 2
    assert all(hasattr(ds[S.VISIBILITY].data, "dask") for ds in datasets)
    with pytest.raises(InputError, match="no such file"):
        radiocal.open(tmp_path / "missing.ms")


def test_a_step_is_prepared_as_the_step_before_it_starts(tmp_path):
    from engine_test_steps import EVENTS     # as conftest imported it (it registers the steps)

    pipeline = [{"step": "test_simulate"}, {"step": "test_mark", "label": "a"},
                {"step": "test_mark", "label": "b"}, {"step": "test_prepared", "label": "run"}]
    EVENTS.clear()
    with radiocal.Engine(scheduler="threads") as engine:
        run_pipeline(load_pipeline(pipeline), tmp_path / "out", engine)
    # not when the run starts (the steps before keep the cores busy): with the step before it
    assert EVENTS == ["a", "prepare test_prepared", "b", "run"]
    # resumed at the prepared step itself: prepared as it starts
    EVENTS.clear()
    pipeline[-1]["label"] = "again"
    with radiocal.Engine(scheduler="threads") as engine:
        run_pipeline(load_pipeline(pipeline), tmp_path / "out", engine)
    assert EVENTS == ["prepare test_prepared", "again"]


def test_memory_monitor_walks_children_and_grandchildren_as_psutil_does():
    import subprocess
    import time

    import psutil

    from radiocal.engine.progress import _process_tree

    # a child shell with a grandchild (the backgrounded sleep)
    child = subprocess.Popen(["sh", "-c", "sleep 5 & sleep 5"])
    try:
        deadline = time.monotonic() + 5
        while len(psutil.Process(child.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        me = psutil.Process()
        expected = sorted([me.pid, *(p.pid for p in me.children(recursive=True))])
        assert sorted(p.pid for p in _process_tree()) == expected
        assert child.pid in expected and len(expected) >= 4
    finally:
        for proc in psutil.Process(child.pid).children(recursive=True):
            proc.kill()
        child.kill()
        child.wait()
