"""A digest of a casacore table's files, to tell tables with the same bytes apart cheaply.

Imports nothing heavy: the probe child (:mod:`radiocal.ms.probe`) uses it too.
"""

from __future__ import annotations

import hashlib
import os


def table_digest(path: str, max_bytes: int) -> bytes | None:
    """A digest of the files of the table directory ``path`` (not its lock file); None when
    they hold more than ``max_bytes``, cannot be read, or the table has subdirectories (tables
    of its own, which the digest would not cover)."""
    h = hashlib.blake2b(digest_size=20)
    total = 0
    try:
        with os.scandir(path) as entries:
            entries = list(entries)
        if any(e.is_dir() for e in entries):
            return None
        files = sorted((e.name, e.path) for e in entries if e.name != "table.lock" and e.is_file())
        for name, file in files:
            with open(file, "rb") as f:
                data = f.read(max_bytes + 1 - total)
            total += len(data)
            if total > max_bytes:
                return None
            h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little"))
            h.update(data)
    except OSError:
        return None
    return h.digest()
