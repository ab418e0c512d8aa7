"""``OUTDIR/provenance.json``: what ran, on what, with which versions, how long and how much memory."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

# Distribution names whose versions matter for reproducing a result.
PACKAGES = {
    "radiocal": "radiocal",
    "numpy": "numpy",
    "dask": "dask",
    "distributed": "distributed",
    "xarray": "xarray",
    "zarr": "zarr",
    "numba": "numba",
    "casacore": "python-casacore",
}


def versions() -> dict:
    """Installed versions of radiocal and the libraries its results depend on (None if absent)."""
    found = {}
    for label, dist in PACKAGES.items():
        try:
            found[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[label] = None
    found["python"] = platform.python_version()
    return found


def write_provenance(path: Path, document: dict) -> None:
    """Write ``document`` (plus versions and host) to ``path`` atomically."""
    full = {
        "versions": versions(),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "argv": sys.argv},
        **document,
    }
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(full, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
