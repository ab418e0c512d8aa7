"""The ``image`` pipeline step: images in OUTDIR/images, a warning (not a failure) without WSClean."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from radiocal.engine.context import StepContext
from radiocal.registry import get_step, make_config
from radiocal.errors import ConfigError
from radiocal.imaging import ImagerNotFoundError
from radiocal.imaging.fits import read_fits
from tests.imaging.conftest import CAL_FLUX, peak


def _config(sky, **values):
    base = dict(size=sky["size"], scale=sky["scale"], niter=100, weight="natural", threads=1)
    base.update(values)
    return make_config(get_step("image"), base)


@pytest.fixture
def outdir(tmp_path, point_ms):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copytree(point_ms, out / "calibrated.ms")
    return out


def test_step_images_every_field(wsclean, outdir, sky):
    spec = get_step("image")
    assert spec.kind == "sink"
    context = StepContext.for_library(outdir)
    returned = spec.run(["datasets pass through"], _config(sky), context)
    assert returned == ["datasets pass through"]
    manifest = json.loads((outdir / "images" / "images.json").read_text())
    assert manifest["problems"] == [] and [m["field"] for m in manifest["images"]] == ["CAL", "TGT"]
    assert all(m["column"] == "CORRECTED_DATA" for m in manifest["images"])
    x, y, value = peak(read_fits(outdir / "images" / "CAL-image.fits")[1][0, 0])
    assert (abs(x - sky["size"] // 2), abs(y - sky["size"] // 2)) <= (1, 1)
    assert value == pytest.approx(CAL_FLUX, rel=0.1)
    x, y, value = peak(read_fits(outdir / "images" / "TGT-image.fits")[1][0, 0])
    centre = sky["size"] // 2
    assert abs(x - (centre - sky["offset"][0])) <= 1 and abs(y - (centre + sky["offset"][1])) <= 1
    assert value == pytest.approx(sky["flux"], rel=0.1)
    # a rerun (a resumed pipeline) replaces its own images inside the output directory
    spec.run([], _config(sky, field=("TGT",)), context)
    manifest = json.loads((outdir / "images" / "images.json").read_text())
    assert [m["field"] for m in manifest["images"]] == ["TGT"]


def test_absent_imager_warns_unless_required(outdir, sky, caplog):
    spec = get_step("image")
    context = StepContext.for_library(outdir)
    context.logger = logging.getLogger("radiocal.step.image")
    missing = str(outdir / "no-wsclean")
    with caplog.at_level(logging.WARNING, logger="radiocal.step.image"):
        spec.run([], _config(sky, executable=missing), context)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning, not one per field"
    assert "wsclean not found" in warnings[0].getMessage()
    manifest = json.loads((outdir / "images" / "images.json").read_text())
    assert manifest["images"] == [] and "wsclean not found" in manifest["problems"][0]
    assert not list((outdir / "images").glob("*.fits"))
    with pytest.raises(ImagerNotFoundError):
        spec.run([], _config(sky, executable=missing, required=True), context)


def test_step_config_errors(tmp_path, sky):
    with pytest.raises(ConfigError, match="step 'image'.*pixel scale '2'"):
        _config(sky, scale="2")
    with pytest.raises(ConfigError, match="unknown option"):
        _config(sky, pixels=12)
    context = StepContext.for_library(tmp_path)
    with pytest.raises(ConfigError, match="put an export step before image"):
        get_step("image").run([], _config(sky), context)


def test_fields_of_older_pipeline_files_is_field_with_a_warning(caplog):
    from radiocal.engine.pipeline import load_pipeline

    with caplog.at_level(logging.WARNING, logger="radiocal.engine"):
        steps = load_pipeline([{"step": "convert", "ms": ["in.ms"]},
                               {"step": "image", "fields": ["TGT"]}])
    assert steps[1].config.field == ("TGT",)
    assert any("'fields' is now called 'field'" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match="fields and field are one option"):
        make_config(get_step("image"), {"fields": ("A",), "field": ("B",)})


def test_pipeline_run_convert_export_image(wsclean, run_cli, point_ms, sky, tmp_path):
    pipeline = tmp_path / "image.yaml"
    pipeline.write_text(
        "- step: convert\n- step: export\n- step: image\n"
        f"  field: [TGT]\n  size: {sky['size']}\n  scale: {sky['scale']}\n  niter: 100\n"
        "  weight: natural\n  threads: 1\n")
    outdir = tmp_path / "run"
    result = run_cli("--scheduler", "sync", "run", pipeline, point_ms, "-o", outdir)
    assert result.exit_code == 0, result.err
    header, data = read_fits(outdir / "images" / "TGT-image.fits")
    assert header["WSCDATAC"] == "CORRECTED_DATA"
    x, y, value = peak(data[0, 0])
    centre = sky["size"] // 2
    assert abs(x - (centre - sky["offset"][0])) <= 1 and abs(y - (centre + sky["offset"][1])) <= 1
    assert value == pytest.approx(sky["flux"], rel=0.1)
    # without WSClean the run still succeeds, and its log carries the warning the QA report lists
    rerun = run_cli("--scheduler", "sync", "run", pipeline, point_ms, "-o", outdir,
                    "--set", f"image.executable={tmp_path / 'nowhere'}")
    assert rerun.exit_code == 0, rerun.err
    from radiocal.qa.report import run_warnings

    assert any("wsclean not found" in w for w in run_warnings(outdir / "log.txt"))


def test_field_labels_name_each_image(point_ms):
    """Each name once, in order, checked before anything is imaged; an id is labelled by its
    field's name, a name of digits that is no id by itself; the default is every field."""
    from radiocal.errors import InputError
    from radiocal.imaging.options import MSInfo
    from radiocal.imaging.step import field_labels

    read = MSInfo.read(point_ms)
    info = MSInfo(read.path, read.columns, ("CAL", "12"), read.channels)
    assert field_labels(info, ()) == [("CAL", "CAL"), ("12", "12")]
    assert field_labels(info, ("12", "0", "12", "all")) == [("12", "12"), ("0", "CAL"),
                                                             ("all", "all")]
    assert field_labels(info, ("1",)) == [("1", "12")]
    with pytest.raises(InputError, match="no field 'STAR'"):
        field_labels(info, ("CAL", "STAR"))
