"""Helpers of the pipeline tests: how to run `radiocal` in a subprocess, tree digests."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

RADIOCAL = [sys.executable, "-m", "radiocal.cli.main"]


def tree_digest(path: Path) -> str:
    """SHA-256 over every file's relative name, bytes and mtime under ``path``."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = Path(root) / name
            digest.update(str(full.relative_to(path)).encode())
            digest.update(full.read_bytes())
            digest.update(str(full.stat().st_mtime_ns).encode())
    return digest.hexdigest()
