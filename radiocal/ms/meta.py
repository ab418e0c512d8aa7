"""Open a Measurement Set safely and read the metadata its subtables hold.

Everything here is small (subtables and the main table's index columns) and read eagerly; the
visibility columns are read lazily by :mod:`radiocal.ms.read_one`.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from radiocal.errors import InputError
from radiocal.ms.digest import table_digest
from radiocal.store import schema as S

# Subtables without which a main table cannot become a canonical dataset
REQUIRED_SUBTABLES = ("ANTENNA", "DATA_DESCRIPTION", "FIELD", "POLARIZATION", "SPECTRAL_WINDOW")

FREQ_FRAMES = {0: "REST", 1: "LSRK", 2: "LSRD", 3: "BARY", 4: "GEO", 5: "TOPO", 6: "GALACTO",
               7: "LGROUP", 8: "CMB", 64: "Undefined"}
FREQ_FRAME_CODES = {name: code for code, name in FREQ_FRAMES.items()}


@dataclass(frozen=True)
class Antennas:
    name: np.ndarray        # (antenna,) str
    station: np.ndarray     # (antenna,) str
    position: np.ndarray    # (antenna, 3) ITRF metres
    diameter: np.ndarray    # (antenna,) metres
    mount: np.ndarray       # (antenna,) str


@dataclass(frozen=True)
class Field:
    name: str
    code: str
    phase_center: tuple[float, float]   # ra, dec in radians, J2000


@dataclass(frozen=True)
class SpectralWindow:
    name: str
    chan_freq: np.ndarray    # (frequency,) Hz
    chan_width: np.ndarray   # (frequency,) Hz
    ref_frequency: float
    frame: str


@dataclass(frozen=True)
class MSMetadata:
    path: str
    antennas: Antennas
    fields: dict[int, Field]
    spws: dict[int, SpectralWindow]
    # data description id -> (spw id, correlation names)
    data_descriptions: dict[int, tuple[int, tuple[str, ...]]]
    states: dict[int, tuple[str, ...]] = field(default_factory=dict)   # state id -> intents
    telescope: str = ""
    observer: str = ""
    project: str = ""


def _casacore_tables():
    import casacore.tables as pt

    return pt


@contextmanager
def read_table(path: str):
    """Open a casacore table read-only and hold a read lock while it is used.

    casacore shares one table object per process: once dask-ms has opened a table with user
    locking, every reader must lock explicitly. Failures become a one-line :class:`InputError`.
    """
    pt = _casacore_tables()
    try:
        table = pt.table(path, readonly=True, ack=False)
        table.lock(write=False)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise InputError(f"{path}: cannot open as a casacore table ({reason})") from None
    try:
        yield table
    finally:
        table.unlock()
        table.close()


def check_ms_path(path: str) -> str:
    """Validate that ``path`` looks like a Measurement Set; return its normalised path."""
    path = os.path.normpath(os.fspath(path))
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file or directory")
    if not os.path.isdir(path):
        raise InputError(f"{path}: is a file, not a Measurement Set directory")
    if not os.path.exists(os.path.join(path, "table.dat")):
        raise InputError(f"{path}: not a casacore table (no table.dat)")
    return path


def _subtable_path(keywords, name: str, path: str, required: bool = True) -> str | None:
    sub = os.path.join(path, name)
    if name in keywords and os.path.exists(os.path.join(sub, "table.dat")):
        return sub
    if required:
        raise InputError(f"{path}: missing {name} subtable")
    return None


# Subtables parsed before, by (subtable, parser, digest of the subtable's files). OVRO-LWA writes
# an MS per integration and sub-band: thousands of files whose ANTENNA, POLARIZATION and
# DATA_DESCRIPTION are byte for byte the same, whose SPECTRAL_WINDOW is one of 16 and whose FIELD
# changes with the integration. Hashing a subtable's few small files costs a third of opening
# it (0.35 vs 0.64 ms), before its columns are read. Files that differ in a byte are parsed
# anew, so a hit is always right. Parsed values are shared: never change them.
_PARSED: OrderedDict = OrderedDict()
_PARSED_LOCK = threading.Lock()
_PARSED_ENTRIES = 256          # a few sub-bands' and integrations' worth
_DIGEST_MAX_BYTES = 4 << 20    # larger subtables (a long SOURCE, say) are read every time


def _parse_subtable(sub: str, parse, path: str):
    """``parse(table, path)`` of the subtable at ``sub``, reusing the result for identical files.

    Results are shared between MSMetadata objects: their arrays are made read-only.
    """
    digest = table_digest(sub, _DIGEST_MAX_BYTES)
    key = (os.path.basename(sub), parse.__name__, digest)
    with _PARSED_LOCK:
        value = _PARSED.get(key) if digest is not None else None
        if value is not None:
            _PARSED.move_to_end(key)
            return value
    with read_table(sub) as table:
        value = parse(table, path)
    if digest is not None:
        _freeze(value)
        with _PARSED_LOCK:
            _PARSED[key] = value
            if len(_PARSED) > _PARSED_ENTRIES:
                _PARSED.popitem(last=False)
    return value


def _freeze(value) -> None:
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, dict):
        for item in value.values():
            _freeze(item)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _freeze(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            _freeze(getattr(value, name))


def _strings(table, column: str, nrows: int) -> np.ndarray:
    if column not in table.colnames() or nrows == 0:
        return np.array([""] * nrows, dtype=object)
    return np.asarray(table.getcol(column), dtype=object)


def read_metadata(path: str) -> MSMetadata:
    """Read the subtables of the MS at ``path`` (validated, read-only)."""
    path = check_ms_path(path)
    with read_table(path) as ms:
        return metadata_of(ms, path)


def metadata_of(ms, path: str) -> MSMetadata:
    """The metadata of the MS at ``path`` (a checked path) whose main table ``ms`` is open."""
    try:
        return _read_metadata(ms, path)
    except RuntimeError as err:
        raise InputError(f"{path}: damaged table ({str(err).strip().splitlines()[0]})") from None


def _read_metadata(ms, path) -> MSMetadata:
    keywords = ms.getkeywords()
    subs = {name: _subtable_path(keywords, name, path) for name in REQUIRED_SUBTABLES}
    optional = {name: _subtable_path(keywords, name, path, required=False)
                for name in ("STATE", "OBSERVATION")}
    corr_names = _parse_subtable(subs["POLARIZATION"], _read_polarizations, path)
    dd = _parse_subtable(subs["DATA_DESCRIPTION"], _read_data_description_rows, path)
    return MSMetadata(
        path=path,
        antennas=_parse_subtable(subs["ANTENNA"], _read_antennas, path),
        fields=_parse_subtable(subs["FIELD"], _read_fields, path),
        spws=_parse_subtable(subs["SPECTRAL_WINDOW"], _read_spws, path),
        data_descriptions=_data_descriptions(corr_names, dd, path),
        states=_parse_subtable(optional["STATE"], _read_states, path) if optional["STATE"] else {},
        **(_parse_subtable(optional["OBSERVATION"], _read_observation, path)
           if optional["OBSERVATION"] else {}),
    )


def spectral_windows(path: str) -> dict[int, SpectralWindow]:
    """The spectral windows of the MS at ``path``, without opening its main table."""
    path = check_ms_path(path)
    try:
        return _parse_subtable(_subtable_path(os.listdir(path), "SPECTRAL_WINDOW", path),
                               _read_spws, path)
    except RuntimeError as err:
        raise InputError(f"{path}: damaged table ({str(err).strip().splitlines()[0]})") from None


def _read_antennas(t, path) -> Antennas:
    n = t.nrows()
    if n == 0:
        raise InputError(f"{path}: ANTENNA subtable is empty")
    position = np.asarray(t.getcol("POSITION"), dtype=np.float64).reshape(n, 3)
    diameter = (np.asarray(t.getcol("DISH_DIAMETER"), dtype=np.float64)
                if "DISH_DIAMETER" in t.colnames() else np.zeros(n))
    return Antennas(
        name=_strings(t, "NAME", n).astype(str),
        station=_strings(t, "STATION", n).astype(str),
        position=position,
        diameter=diameter,
        mount=_strings(t, "MOUNT", n).astype(str),
    )


def _read_fields(t, path) -> dict[int, Field]:
    n = t.nrows()
    if n == 0:
        raise InputError(f"{path}: FIELD subtable is empty")
    names = _strings(t, "NAME", n)
    codes = _strings(t, "CODE", n)
    # PHASE_DIR is (field, poly, 2); the zeroth polynomial term is the direction
    phase_dir = np.asarray(t.getcol("PHASE_DIR"), dtype=np.float64).reshape(n, -1, 2)[:, 0, :]
    return {i: Field(str(names[i]), str(codes[i]), (float(phase_dir[i, 0]), float(phase_dir[i, 1])))
            for i in range(n)}


def _read_spws(t, path) -> dict[int, SpectralWindow]:
    n = t.nrows()
    if n == 0:
        raise InputError(f"{path}: SPECTRAL_WINDOW subtable is empty")
    names = _strings(t, "NAME", n)
    frames = t.getcol("MEAS_FREQ_REF") if "MEAS_FREQ_REF" in t.colnames() else [5] * n
    spws = {}
    for i in range(n):
        # Per row, because spectral windows may have different channel counts
        freq = np.asarray(t.getcell("CHAN_FREQ", i), dtype=np.float64)
        width = np.asarray(t.getcell("CHAN_WIDTH", i), dtype=np.float64)
        spws[i] = SpectralWindow(
            name=str(names[i]), chan_freq=freq, chan_width=width,
            ref_frequency=float(t.getcell("REF_FREQUENCY", i)),
            frame=FREQ_FRAMES.get(int(frames[i]), "Undefined"),
        )
    return spws


def _read_polarizations(pol, path) -> dict[int, tuple[str, ...]]:
    if pol.nrows() == 0:
        raise InputError(f"{path}: POLARIZATION subtable is empty")
    corr_names = {}
    for i in range(pol.nrows()):
        codes = np.asarray(pol.getcell("CORR_TYPE", i)).tolist()
        unknown = [c for c in codes if c not in S.CORR_TYPES]
        if unknown:
            raise InputError(f"{path}: POLARIZATION row {i} has unsupported CORR_TYPE {unknown}")
        corr_names[i] = tuple(S.CORR_TYPES[c] for c in codes)
    return corr_names


def _read_data_description_rows(dd, path) -> tuple[tuple[int, int], ...]:
    """(spectral window id, polarization id) per DATA_DESCRIPTION row."""
    if dd.nrows() == 0:
        raise InputError(f"{path}: DATA_DESCRIPTION subtable is empty")
    return tuple((int(spw), int(pid)) for spw, pid in
                 zip(dd.getcol("SPECTRAL_WINDOW_ID"), dd.getcol("POLARIZATION_ID")))


def _data_descriptions(corr_names, rows, path) -> dict[int, tuple[int, tuple[str, ...]]]:
    result = {}
    for ddid, (spw, pid) in enumerate(rows):
        if pid not in corr_names:
            raise InputError(f"{path}: DATA_DESCRIPTION row {ddid} names missing POLARIZATION row {pid}")
        result[ddid] = (spw, corr_names[pid])
    return result


def _read_states(t, path) -> dict[int, tuple[str, ...]]:
    modes = _strings(t, "OBS_MODE", t.nrows())
    return {i: tuple(m for m in str(mode).split(",") if m) for i, mode in enumerate(modes)}


def _read_observation(t, path) -> dict:
    if t.nrows() == 0:
        return {}
    return {key: str(_strings(t, col, t.nrows())[0])
            for key, col in (("telescope", "TELESCOPE_NAME"), ("observer", "OBSERVER"),
                             ("project", "PROJECT"))}
