"""CASA tclean through the same options, in the separate CASA Python when it exists (else skipped).

CASA is optional and not installed beside radiocal; ``RADIOCAL_CASA_PYTHON`` (default
``/work/casa-venv/bin/python``) names a Python with ``casatasks`` to run :func:`run_tclean` in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radiocal.imaging import ImagerNotFoundError, ImagingOptions, run_tclean
from radiocal.imaging.fits import read_fits, sky_to_pixel
from tests.imaging.conftest import peak

ROOT = Path(__file__).resolve().parents[2]
CASA_PYTHON = os.environ.get("RADIOCAL_CASA_PYTHON", "/work/casa-venv/bin/python")

SKIP = 77
SCRIPT = """
import json, sys
try:
    import casatasks
except ImportError:
    sys.exit(77)
from radiocal.imaging import ImagingOptions, run_tclean
ms, prefix, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
result = run_tclean(ms, prefix, ImagingOptions(**options))
print(json.dumps({"images": [str(p) for p in result.images], "column": result.column,
                  "files": [str(p) for p in result.files]}))
"""


def _casa_python() -> str:
    if not os.access(CASA_PYTHON, os.X_OK):
        pytest.skip(f"no CASA Python at {CASA_PYTHON} (set RADIOCAL_CASA_PYTHON)")
    return CASA_PYTHON


def test_tclean_absent_here_is_one_line(point_ms, tmp_path):
    if "casatasks" in sys.modules or _importable("casatasks"):
        pytest.skip("casatasks is installed in this Python")
    with pytest.raises(ImagerNotFoundError, match="^CASA tclean not available: .*casatasks"):
        run_tclean(point_ms, tmp_path / "x", ImagingOptions(scale="1amin"))


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_tclean_point_source(point_ms, sky, tmp_path):
    python = _casa_python()
    # a dirty image keeps CASA's share of the suite's time down (most of it is CASA starting)
    options = dict(size=sky["size"], scale=sky["scale"], niter=0, weight="natural", field="TGT")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([python, "-c", SCRIPT, point_ms, str(tmp_path / "casa"),
                          json.dumps(options)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, check=False, timeout=600)
    if run.returncode == SKIP:
        pytest.skip(f"casatasks does not import in {python}")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["column"] == "CORRECTED_DATA"
    assert result["images"] == [str(tmp_path / "casa-image.fits")]
    assert {Path(p).name for p in result["files"]} >= {"casa-image.fits", "casa-psf.fits"}
    header, data = read_fits(result["images"][0])
    plane = data.reshape(-1, *data.shape[-2:])[0]
    x, y, value = peak(plane)
    ex, ey = sky_to_pixel(header, sky["ra"], sky["dec"])
    assert abs(x - ex) <= 1.5 and abs(y - ey) <= 1.5
    assert value == pytest.approx(sky["flux"], rel=0.1)
