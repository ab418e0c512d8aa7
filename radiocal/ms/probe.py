"""Checks of user inputs before radiocal reads them: Measurement Sets probed in a child
process, outputs that would overwrite an input.

casacore trusts its storage files: a truncated ``table.f0`` (a failed copy) makes it read past
the end of a mapped file and die with SIGSEGV, which no ``try`` can catch. So before radiocal
reads an MS, a child process opens it and every subtable and reads the first and last cell of
each column (all cells of small tables, a column in one call): truncation removes the last
buckets or tiles, so these reads hit it. The child says what it is about to read; when it dies
or fails, the parent names the file of the column it was reading in a one-line
:class:`~radiocal.errors.InputError`.
Paths probed once in a process are not probed again.

The child takes 0.6-0.9 s of wall time (an interpreter and casacore), most of it start-up: a
command calls :func:`start_probe` before it starts the engine and imports dask, xarray and
zarr, and :func:`probe_measurement_sets` (before anything reads the MS) takes that child's verdict.
"""

from __future__ import annotations

import atexit
import glob
import os
import signal
import subprocess
import sys


from radiocal.errors import InputError
from radiocal.ms.digest import table_digest

# Tables up to this many rows are read whole (subtables); longer ones at their first and last row
_FULL_ROWS = 1000
_ERROR = "ERROR"
# Subtables up to this size are skipped when a byte-for-byte copy was probed already
_DIGEST_MAX_BYTES = 4 << 20
_probed: set[str] = set()
_started: dict[tuple[str, ...], subprocess.Popen] = {}   # probes started ahead, by their paths


def expand_inputs(paths) -> list[str]:
    """Expand the user's inputs into MS paths: a directory holding ``*.ms`` stands for all of them."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    expanded = []
    for path in map(os.fspath, paths):
        is_table = os.path.exists(os.path.join(path, "table.dat"))
        inside = sorted(glob.glob(os.path.join(glob.escape(path), "*.ms"))) if os.path.isdir(path) else []
        if not is_table and inside:
            expanded.extend(inside)
        else:
            expanded.append(path)
    if not expanded:
        raise InputError("no input Measurement Sets given")
    duplicates = sorted({p for p in expanded if expanded.count(p) > 1})
    if duplicates:
        raise InputError(f"the same MS is given twice: {', '.join(duplicates)}")
    return expanded


def _command(paths) -> tuple[list[str], dict]:
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return [sys.executable, "-m", "radiocal.ms.probe", *paths], env


def start_probe(paths) -> None:
    """Start probing the inputs ``paths`` (expanded as :func:`radiocal.ms.read.read_ms` expands
    them) in a child process, now; :func:`probe_measurement_sets` of the same paths waits for
    it. Inputs that are no MS are left for that call to refuse."""
    try:
        todo = tuple(os.path.normpath(p) for p in expand_inputs(paths))
    except InputError:
        return
    todo = tuple(p for p in todo if os.path.realpath(p) not in _probed)
    if not todo or todo in _started or \
            not all(os.path.isfile(os.path.join(p, "table.dat")) for p in todo):
        return
    argv, env = _command(todo)
    _started[todo] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env)


def _end_started() -> None:
    """End the probes nobody waited for (the command failed before it read its inputs)."""
    for started in _started.values():
        if started.poll() is None:
            started.kill()
        started.communicate()
    _started.clear()


atexit.register(_end_started)


def probe_measurement_sets(paths) -> None:
    """Raise InputError naming the damaged file when reading any of ``paths`` would fail or crash.

    ``paths`` are validated first (exist, are casacore tables); those already probed by this
    process are skipped. One child process probes them all.
    """
    from radiocal.ms.meta import check_ms_path

    todo = [p for p in (check_ms_path(p) for p in paths) if os.path.realpath(p) not in _probed]
    if not todo:
        return
    for path in todo:
        _check_storage_files(path)
    started = _started.pop(tuple(todo), None)
    if started is not None:
        stdout, stderr = started.communicate()
        result = subprocess.CompletedProcess(started.args, started.returncode, stdout, stderr)
    else:
        argv, env = _command(todo)
        result = subprocess.run(argv, capture_output=True, text=True, env=env)
    lines = [line.split("\t") for line in result.stdout.splitlines() if line]
    if result.returncode == 0:
        _probed.update(os.path.realpath(p) for p in todo)
        return
    where = next((f for f in reversed(lines) if f[0] != _ERROR and len(f) == 3), None)
    if lines and lines[-1][0] == _ERROR:
        reason = lines[-1][1] if len(lines[-1]) > 1 else "unreadable"
        # casacore's message often names the file itself (e.g. the table.f0 it could not read)
        named = [w.rstrip(",:;") for w in reason.split() if any(w.startswith(p + os.sep) for p in todo)]
        target = named[0] if named else where[0] if where else todo[0]
        what = "cannot open as a casacore table" if where and where[2] == "(open)" else "damaged table"
        raise InputError(f"{target}: {what} ({reason})")
    if result.returncode < 0:
        name = signal.Signals(-result.returncode).name
        if where:
            raise InputError(f"{where[0]}: damaged or truncated file (casacore crashed with {name} "
                             f"reading column {where[2]} of {where[1]})")
        raise InputError(f"{todo[0]}: damaged table (casacore crashed with {name} opening it)")
    detail = (result.stderr.strip().splitlines() or ["no message"])[-1]
    raise InputError(f"{todo[0]}: could not be probed (exit {result.returncode}: {detail})")


def _check_storage_files(path: str) -> None:
    """An empty storage file (``table.f*``) of the table or a subtable: the copy failed there."""
    for root, _, files in os.walk(path):
        for name in sorted(files):
            if name.startswith("table.") and name != "table.lock" and \
                    os.path.getsize(os.path.join(root, name)) == 0:
                raise InputError(f"{os.path.join(root, name)}: empty file (a damaged or "
                                 "incomplete copy of the table)")


def refuse_overlap(output, inputs) -> None:
    """Raise InputError when ``output`` is one of ``inputs`` or inside one (or holds one):
    writing it would change the user's input."""
    out = os.path.realpath(os.fspath(output))
    for path in inputs:
        src = os.path.realpath(os.fspath(path))
        if out == src or out.startswith(src + os.sep) or src.startswith(out + os.sep):
            raise InputError(f"{output}: output overlaps the input {path}; choose another path")


def _column_files(table, path: str) -> dict[str, str]:
    """Column -> the storage file holding it (``table.fN``, or the tile file ``table.fN_TSM1``)."""
    files = {}
    for info in table.getdminfo().values():
        stem = os.path.join(path, f"table.f{info['SEQNR']}")
        tiles = sorted(f for f in os.listdir(path) if f.startswith(f"table.f{info['SEQNR']}_TSM"))
        name = os.path.join(path, tiles[-1]) if tiles else stem
        for column in info.get("COLUMNS", ()):
            files[column] = name
    return files


def _read_cells(table, column: str, rows: range | tuple) -> None:
    """Read ``rows`` of ``column``: a whole column in one call where casacore can (a cell at a
    time costs ~15 us, most of a many-file probe), cell by cell where it cannot (cells of
    varying shape, or undefined)."""
    if isinstance(rows, range) and len(rows) > 2:
        try:
            table.getcol(column)
            return
        except RuntimeError:
            pass
    for row in rows:
        if table.iscelldefined(column, row):
            table.getcell(column, row)


def _probe_table(pt, path: str, say, seen: set | None = None) -> None:
    """Probe the table at ``path`` and its subtables; ``seen``: digests of subtables probed
    already, whose byte-for-byte copies are skipped (thousands of OVRO-LWA files share their
    ANTENNA, POLARIZATION, ... tables)."""
    digest = table_digest(path, _DIGEST_MAX_BYTES) if seen is not None else None
    if digest is not None and digest in seen:
        return
    say(os.path.join(path, "table.dat"), path, "(open)")
    with pt.table(path, readonly=True, ack=False) as table:
        files = _column_files(table, path)
        nrow = table.nrows()
        rows = range(nrow) if nrow <= _FULL_ROWS else (0, nrow - 1)
        for column in table.colnames():
            say(files.get(column, os.path.join(path, "table.dat")), path, column)
            _read_cells(table, column, rows)
        subtables = [name for name, value in table.getkeywords().items()
                     if isinstance(value, str) and value.startswith("Table:")]
    for name in subtables:
        sub = os.path.join(path, name)
        if os.path.exists(os.path.join(sub, "table.dat")):
            _probe_table(pt, sub, say, seen)
    if digest is not None:
        seen.add(digest)


def _child(paths) -> int:
    import casacore.tables as pt

    def say(*fields):
        print("\t".join(fields), flush=True)

    seen = set()
    try:
        for path in paths:
            _probe_table(pt, path, say, seen)
    except (RuntimeError, OSError, ValueError) as err:
        text = " ".join(str(err).split()) or type(err).__name__
        say(_ERROR, text[:300])
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
