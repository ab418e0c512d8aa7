"""``radiocal image``: through the real entry point, with WSClean when it is installed."""

from __future__ import annotations

import shutil

import pytest

from radiocal.imaging.fits import read_fits
from tests.imaging.conftest import CAL_FLUX, peak


def _args(sky, *extra):
    return ("--size", str(sky["size"]), "--scale", sky["scale"], "--weight", "natural",
            "--niter", "100", "-j", "1", *extra)


def test_image_a_pipeline_outdir(wsclean, run_cli, point_ms, sky, tmp_path):
    outdir = tmp_path / "run"
    outdir.mkdir()
    shutil.copytree(point_ms, outdir / "calibrated.ms")
    images = tmp_path / "images"
    images.mkdir()
    result = run_cli("image", outdir, "-o", images, *_args(sky, "--field", "TGT"))
    assert result.exit_code == 0, result.err
    assert "imaged TGT (CORRECTED_DATA)" in result.out
    fits = images / "TGT-image.fits"     # a directory's images are named as the step's
    assert str(fits) in result.out
    assert (images / "TGT-wsclean.log").exists() and not (images / "CAL-image.fits").exists()
    x, y, value = peak(read_fits(fits)[1][0, 0])
    centre = sky["size"] // 2
    assert abs(x - (centre - sky["offset"][0])) <= 1 and abs(y - (centre + sky["offset"][1])) <= 1
    assert value == pytest.approx(sky["flux"], rel=0.1)

    # again without --overwrite: refused, nothing touched; with it: replaced
    stamp = fits.stat().st_mtime_ns
    again = run_cli("image", outdir, "-o", images, *_args(sky, "--field", "TGT"))
    assert again.exit_code != 0 and "--overwrite" in again.err
    assert len(again.err.strip().splitlines()) == 1 and fits.stat().st_mtime_ns == stamp
    shifted = run_cli("image", outdir / "calibrated.ms", "-o", images / "shifted",
                      *_args(sky, "--field", "TGT", "--shift", "13h18m00s", "-30d00m00s"))
    assert shifted.exit_code == 0, shifted.err
    assert (images / "shifted-image.fits").exists()


def test_every_field_by_default_as_the_step(wsclean, run_cli, point_ms, sky, tmp_path):
    """No --field: one image per field, as the image step makes them; a prefix then gets the
    field's name."""
    result = run_cli("image", point_ms, "-o", tmp_path / "pre", *_args(sky))
    assert result.exit_code == 0, result.err
    assert "imaged CAL" in result.out and "imaged TGT" in result.out
    x, y, value = peak(read_fits(tmp_path / "pre-CAL-image.fits")[1][0, 0])
    assert (abs(x - sky["size"] // 2), abs(y - sky["size"] // 2)) <= (1, 1)
    assert value == pytest.approx(CAL_FLUX, rel=0.1)
    x, y, value = peak(read_fits(tmp_path / "pre-TGT-image.fits")[1][0, 0])
    centre = sky["size"] // 2
    assert abs(x - (centre - sky["offset"][0])) <= 1 and abs(y - (centre + sky["offset"][1])) <= 1
    assert not (tmp_path / "pre-image.fits").exists()


def test_absent_wsclean_is_one_line(run_cli, point_ms, sky, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("RADIOCAL_WSCLEAN", raising=False)
    result = run_cli("image", point_ms, "-o", tmp_path / "img", *_args(sky))
    assert result.exit_code != 0
    assert result.err.strip() == ("radiocal: error: wsclean not found: install the Debian/Ubuntu "
                                  "package 'wsclean' or set RADIOCAL_WSCLEAN")
    monkeypatch.setenv("RADIOCAL_WSCLEAN", str(tmp_path / "nowhere"))
    result = run_cli("image", point_ms, "-o", tmp_path / "img", *_args(sky))
    assert result.exit_code != 0 and "RADIOCAL_WSCLEAN=" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("img*"))


@pytest.mark.parametrize("bad, words", [
    (("--scale", "2"), "pixel scale '2'"),
    (("--scale", "2 parsecs"), "pixel scale"),
    (("--weight", "briggs"), "robustness"),
    (("--pol", "P"), "polarizations"),
    (("--shift", "13h00m00s", "95d00m00s"), "declination"),
    (("--field", "NOPE"), "no field 'NOPE'"),
    (("--column", "MODEL_DATA"), "has no MODEL_DATA column"),
    (("--size", "100x"), "image size"),
])
def test_bad_options_are_one_line(run_cli, point_ms, tmp_path, bad, words):
    result = run_cli("image", point_ms, "-o", tmp_path / "img", "--wsclean", shutil.which("true")
                     or "/bin/true", *bad)
    assert result.exit_code != 0
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert words in result.err
    assert not list(tmp_path.glob("img*"))


def test_bad_inputs(run_cli, point_ms, tmp_path):
    result = run_cli("image", tmp_path / "missing.ms", "-o", tmp_path / "img")
    assert result.exit_code != 0 and "does not exist" in result.err
    result = run_cli("image", tmp_path, "-o", tmp_path / "img")
    assert result.exit_code != 0 and "neither a Measurement Set" in result.err
    result = run_cli("image", point_ms, "-o", f"{point_ms}/inside")
    assert result.exit_code != 0 and "inputs are never written to" in result.err
