"""Open a Measurement Set safely and read the metadata its subtables hold.

Everything here is small (subtables and the main table's index columns) and read eagerly; the
visibility columns are read lazily by :mod:`radiocal.ms.read_one`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from radiocal.errors import InputError
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


def _subtable(ms, name: str, path: str):
    if name not in ms.getkeywords():
        raise InputError(f"{path}: missing {name} subtable")
    sub = os.path.join(path, name)
    if not os.path.exists(os.path.join(sub, "table.dat")):
        raise InputError(f"{path}: missing {name} subtable")
    return read_table(sub)


def _strings(table, column: str, nrows: int) -> np.ndarray:
    if column not in table.colnames() or nrows == 0:
        return np.array([""] * nrows, dtype=object)
    return np.asarray(table.getcol(column), dtype=object)


def read_metadata(path: str) -> MSMetadata:
    """Read the subtables of the MS at ``path`` (validated, read-only)."""
    path = check_ms_path(path)
    with read_table(path) as ms:
        try:
            return _read_metadata(ms, path)
        except RuntimeError as err:
            raise InputError(f"{path}: damaged table ({str(err).strip().splitlines()[0]})") from None


def _read_metadata(ms, path) -> MSMetadata:
    for name in REQUIRED_SUBTABLES:
        with _subtable(ms, name, path):
            pass
    return MSMetadata(
        path=path,
        antennas=_read_antennas(ms, path),
        fields=_read_fields(ms, path),
        spws=_read_spws(ms, path),
        data_descriptions=_read_data_descriptions(ms, path),
        states=_read_states(ms, path),
        **_read_observation(ms, path),
    )


def _read_antennas(ms, path) -> Antennas:
    with _subtable(ms, "ANTENNA", path) as t:
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


def _read_fields(ms, path) -> dict[int, Field]:
    with _subtable(ms, "FIELD", path) as t:
        n = t.nrows()
        if n == 0:
            raise InputError(f"{path}: FIELD subtable is empty")
        names = _strings(t, "NAME", n)
        codes = _strings(t, "CODE", n)
        # PHASE_DIR is (field, poly, 2); the zeroth polynomial term is the direction
        phase_dir = np.asarray(t.getcol("PHASE_DIR"), dtype=np.float64).reshape(n, -1, 2)[:, 0, :]
        return {i: Field(str(names[i]), str(codes[i]), (float(phase_dir[i, 0]), float(phase_dir[i, 1])))
                for i in range(n)}


def _read_spws(ms, path) -> dict[int, SpectralWindow]:
    with _subtable(ms, "SPECTRAL_WINDOW", path) as t:
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


def _read_data_descriptions(ms, path) -> dict[int, tuple[int, tuple[str, ...]]]:
    with _subtable(ms, "POLARIZATION", path) as pol:
        if pol.nrows() == 0:
            raise InputError(f"{path}: POLARIZATION subtable is empty")
        corr_names = {}
        for i in range(pol.nrows()):
            codes = np.asarray(pol.getcell("CORR_TYPE", i)).tolist()
            unknown = [c for c in codes if c not in S.CORR_TYPES]
            if unknown:
                raise InputError(f"{path}: POLARIZATION row {i} has unsupported CORR_TYPE {unknown}")
            corr_names[i] = tuple(S.CORR_TYPES[c] for c in codes)
    with _subtable(ms, "DATA_DESCRIPTION", path) as dd:
        if dd.nrows() == 0:
            raise InputError(f"{path}: DATA_DESCRIPTION subtable is empty")
        spw_ids = dd.getcol("SPECTRAL_WINDOW_ID")
        pol_ids = dd.getcol("POLARIZATION_ID")
    result = {}
    for ddid, (spw, pid) in enumerate(zip(spw_ids, pol_ids)):
        if pid not in corr_names:
            raise InputError(f"{path}: DATA_DESCRIPTION row {ddid} names missing POLARIZATION row {pid}")
        result[ddid] = (int(spw), corr_names[pid])
    return result


def _read_states(ms, path) -> dict[int, tuple[str, ...]]:
    if "STATE" not in ms.getkeywords() or not os.path.exists(os.path.join(path, "STATE", "table.dat")):
        return {}
    with read_table(os.path.join(path, "STATE")) as t:
        modes = _strings(t, "OBS_MODE", t.nrows())
    return {i: tuple(m for m in str(mode).split(",") if m) for i, mode in enumerate(modes)}


def _read_observation(ms, path) -> dict:
    if "OBSERVATION" not in ms.getkeywords() or not os.path.exists(os.path.join(path, "OBSERVATION", "table.dat")):
        return {}
    with read_table(os.path.join(path, "OBSERVATION")) as t:
        if t.nrows() == 0:
            return {}
        return {key: str(_strings(t, col, t.nrows())[0])
                for key, col in (("telescope", "TELESCOPE_NAME"), ("observer", "OBSERVER"),
                                 ("project", "PROJECT"))}
