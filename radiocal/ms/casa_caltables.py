"""CASA calibration tables read into and written from radiocal's calibration-table layout
(:mod:`radiocal.store.caltables`), with casacore.

CASA's layout (``docs/calibration.md``): main-table rows per (solution, antenna, spectral
window), ``CPARAM`` (G, T, B) or ``FPARAM`` (K) shaped (channel, hand), ``ANTENNA2`` the
solution's reference antenna; subtables ``ANTENNA``, ``FIELD``, ``SPECTRAL_WINDOW``,
``OBSERVATION``.
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from radiocal.errors import InputError, OutputExistsError
from radiocal.ms.tables import put_channels, staged, written
from radiocal.store import schema
from radiocal.store.caltables import (
    ATTR_DELAY_REF, ATTR_FIELD_CENTERS, ATTR_FIELD_IDS, ATTR_FIELD_NAMES, ATTR_REFANT, DELAY,
    DELAY_TYPES, GAIN, HAND, PARAMERR, SNR, SOL_CHAN_WIDTH, SOL_FIELD, SOL_FLAG, SOL_FREQ,
    SOL_INTERVAL, SOL_OBS, SOL_REFANT, SOL_SCAN, SOL_TIME, make_table_dataset, table_type,
)

_VISCAL = {"G": "G Jones", "T": "T Jones", "B": "B Jones", "K": "K Jones",
           "KCROSS": "Kcross Jones", "Xf": "Xf Jones", "Df": "Df Jones"}
_CAL_TYPE_OF = {v: k for k, v in _VISCAL.items()}

_POLBASIS_HANDS = {"circular": ("R", "L"), "linear": ("X", "Y")}


def read_casa_table(path) -> list[xr.Dataset]:
    """Read a CASA calibration table (G, T, B or K Jones) into the xarray layout.

    Parameters
    ----------
    path : str
        The table directory (e.g. ``bp.B``).

    Returns
    -------
    list of xarray.Dataset
        One dataset per spectral window with solutions, rows ordered by time. Antennas without
        a row in a solution slot are flagged.
    """
    import casacore.tables as ct

    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InputError(f"calibration table {path} does not exist")
    try:
        main = ct.table(path, ack=False)
    except RuntimeError as err:
        raise InputError(f"cannot open calibration table {path}: {err}") from None
    with main:
        kw = main.getkeywords()
        viscal = kw.get("VisCal", "")
        if viscal not in _CAL_TYPE_OF:
            raise InputError(f"{path}: calibration type {viscal!r} is not supported "
                             f"(G, T, B, K, Kcross, Xf or Df Jones)")
        cal_type = _CAL_TYPE_OF[viscal]
        param = "FPARAM" if kw.get("ParType") == "Float" else "CPARAM"
        cols = {c: main.getcol(c) for c in ("TIME", "FIELD_ID", "SPECTRAL_WINDOW_ID", "ANTENNA1",
                                            "ANTENNA2", "INTERVAL", "SCAN_NUMBER",
                                            "OBSERVATION_ID")}
        values = main.getcol(param) if main.nrows() else np.zeros((0, 1, 1))
        flags = main.getcol("FLAG") if main.nrows() else np.zeros((0, 1, 1), bool)
        snr = main.getcol("SNR") if main.nrows() else np.zeros((0, 1, 1))
        err = main.getcol("PARAMERR") if main.nrows() else np.zeros((0, 1, 1))
        ms_name = kw.get("MSName", "")
        pol_basis = str(kw.get("PolBasis", "unknown")).lower()
    ant = _read_sub(path, "ANTENNA", ("NAME", "STATION", "POSITION", "DISH_DIAMETER", "MOUNT"))
    fld = _read_sub(path, "FIELD", ("NAME", "PHASE_DIR"))
    spw = _read_sub(path, "SPECTRAL_WINDOW", ("CHAN_FREQ", "CHAN_WIDTH", "NAME",
                                              "REF_FREQUENCY", "MEAS_FREQ_REF"), varlen=True)
    nant = len(ant["NAME"])
    npol = values.shape[2]
    basis_hands = _POLBASIS_HANDS.get(pol_basis, ("R", "L"))
    hands = (basis_hands[:1] if cal_type == "Xf" else ("I",)) if npol == 1 else basis_hands
    antennas = {
        schema.ANTENNA_NAME: ((schema.ANTENNA,), np.asarray(ant["NAME"], dtype=str)),
        schema.ANTENNA_STATION: ((schema.ANTENNA,), np.asarray(ant["STATION"], dtype=str)),
        schema.ANTENNA_POSITION: ((schema.ANTENNA, schema.CARTESIAN),
                                  np.asarray(ant["POSITION"], dtype=np.float64)),
        schema.ANTENNA_DIAMETER: ((schema.ANTENNA,), np.asarray(ant["DISH_DIAMETER"], float)),
        schema.ANTENNA_MOUNT: ((schema.ANTENNA,), np.asarray(ant["MOUNT"], dtype=str)),
    }
    field_ids = list(range(len(fld["NAME"])))
    centers = [list(np.asarray(d, float).reshape(-1, 2)[0]) for d in fld["PHASE_DIR"]]
    table = []
    for spw_id in np.unique(cols["SPECTRAL_WINDOW_ID"]):
        rows = np.flatnonzero(cols["SPECTRAL_WINDOW_ID"] == spw_id)
        keys = np.stack([cols["TIME"][rows], cols["FIELD_ID"][rows], cols["SCAN_NUMBER"][rows],
                         cols["OBSERVATION_ID"][rows]], axis=1)
        slots, slot_of_row = np.unique(keys, axis=0, return_inverse=True)
        slot_of_row = slot_of_row.ravel()
        nslot, nchan = len(slots), values.shape[1]
        shape = (nslot, nant, nchan, npol)
        val = (np.zeros(shape) if cal_type in DELAY_TYPES else
               np.zeros(shape, dtype=values.dtype) if cal_type == "Df" else
               np.ones(shape, dtype=values.dtype))
        flg = np.ones(shape, dtype=bool)
        sn = np.zeros(shape, dtype=np.float32)
        er = np.zeros(shape, dtype=np.float32)
        a1 = cols["ANTENNA1"][rows]
        val[slot_of_row, a1] = values[rows]
        flg[slot_of_row, a1] = flags[rows]
        sn[slot_of_row, a1] = snr[rows]
        er[slot_of_row, a1] = err[rows]
        interval = np.zeros(nslot)
        interval[slot_of_row] = cols["INTERVAL"][rows]
        refant = np.full(nslot, -1, np.int32)
        refant[slot_of_row] = cols["ANTENNA2"][rows]
        freq = np.asarray(spw["CHAN_FREQ"][spw_id], dtype=np.float64)
        width = np.asarray(spw["CHAN_WIDTH"][spw_id], dtype=np.float64)
        attrs = {
            schema.ATTR_SPW_ID: int(spw_id), "combined_spws": [int(spw_id)],
            schema.ATTR_SPW_NAME: str(spw["NAME"][spw_id]),
            schema.ATTR_REF_FREQUENCY: float(spw["REF_FREQUENCY"][spw_id]),
            ATTR_REFANT: "", ATTR_FIELD_IDS: field_ids,
            ATTR_FIELD_NAMES: [str(n) for n in fld["NAME"]], ATTR_FIELD_CENTERS: centers,
            schema.ATTR_SOURCES: [str(ms_name)] if ms_name else [],
            "pol_basis": pol_basis,
        }
        if cal_type in DELAY_TYPES:
            # CASA K tables store ns; the reference frequency is the spw's first channel
            val = val.real * 1e-9
            er = er * 1e-9
            attrs[ATTR_DELAY_REF] = float(freq[0])
        table.append(make_table_dataset(
            cal_type, val, flg, sn, er, time=slots[:, 0], interval=interval,
            field_id=slots[:, 1], scan_number=slots[:, 2], observation_id=slots[:, 3],
            frequency=freq, channel_width=width, hands=hands, antennas=antennas, attrs=attrs,
            reference_antenna=refant))
    if not table:
        raise InputError(f"calibration table {path} has no solutions")
    return table


def _read_sub(path, name, columns, varlen=False):
    import casacore.tables as ct

    sub = os.path.join(path, name)
    if not os.path.isdir(sub):
        raise InputError(f"{path} has no {name} subtable")
    with ct.table(sub, ack=False) as t:
        out = {}
        for c in columns:
            if varlen or t.isvarcol(c):
                out[c] = [t.getcell(c, r) for r in range(t.nrows())]
            else:
                out[c] = t.getcol(c) if t.nrows() else []
    return out


def write_casa_table(table: list[xr.Dataset], path, overwrite: bool = False,
                     ms_name: str = "") -> None:
    """Write a calibration table as a CASA calibration table (CASA's own column layout).

    Main table: one row per (solution, antenna, spw) with ``ANTENNA2`` the reference antenna of
    the solution (-1 where unknown, e.g. a table made by hand); ``CPARAM`` (G, T, B)
    or ``FPARAM`` (K, nanoseconds) shaped (channel, hand); keywords ``ParType``, ``VisCal``,
    ``MSName``, ``PolBasis``; subtables ANTENNA, FIELD, SPECTRAL_WINDOW, OBSERVATION, HISTORY
    with the Measurement Set's standard descriptions.
    """
    import casacore.tables as ct

    path = os.path.normpath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"{path} exists (use --overwrite)")
    cal_type = table_type(table)
    first = table[0]
    delay = cal_type in DELAY_TYPES
    param = "FPARAM" if delay else "CPARAM"
    # CASA's layout: variable-shape arrays; scalars with options=5 (direct, fixed)
    array_col = dict(options=0, ndim=-1, datamanagergroup="MSMTAB",
                     datamanagertype="StandardStMan")
    scalar = dict(datamanagergroup="MSMTAB", datamanagertype="StandardStMan", options=5)
    columns = [
        ct.makescacoldesc("TIME", 0.0, keywords={"QuantumUnits": ["s"],
                                                 "MEASINFO": {"type": "epoch", "Ref": "UTC"}},
                          **scalar),
        ct.makescacoldesc("FIELD_ID", 0, **scalar),
        ct.makescacoldesc("SPECTRAL_WINDOW_ID", 0, **scalar),
        ct.makescacoldesc("ANTENNA1", 0, **scalar),
        ct.makescacoldesc("ANTENNA2", 0, **scalar),
        ct.makescacoldesc("INTERVAL", 0.0, keywords={"QuantumUnits": ["s"]},
                          **scalar),
        ct.makescacoldesc("SCAN_NUMBER", 0, **scalar),
        ct.makescacoldesc("OBSERVATION_ID", 0, **scalar),
        ct.makearrcoldesc(param, 0.0 if delay else 0j,
                          valuetype="float" if delay else "complex", **array_col),
        ct.makearrcoldesc("PARAMERR", 0.0, valuetype="float", **array_col),
        ct.makearrcoldesc("FLAG", False, **array_col),
        ct.makearrcoldesc("SNR", 0.0, valuetype="float", **array_col),
        ct.makearrcoldesc("WEIGHT", 0.0, valuetype="float", **array_col),
    ]
    desc = ct.maketabdesc(columns)
    rows = _casa_rows(table, cal_type)
    hands = [str(h) for h in first[HAND].values]
    basis = ("circular" if set(hands) <= {"R", "L"} else
             "linear" if set(hands) <= {"X", "Y"} else "unknown")
    with staged(path) as tmp, written(ct.table(tmp, desc, nrow=len(rows["TIME"]), ack=False)) as main:
        for name, values in rows.items():
            start = 0
            for block in (values if isinstance(values, list) else [values]):
                if len(block):
                    main.putcol(name, block, startrow=start, nrow=len(block))
                start += len(block)
        main.putkeywords({
            "ParType": "Float" if delay else "Complex",
            "MSName": ms_name or next(iter(first.attrs.get(schema.ATTR_SOURCES, [])), ""),
            "VisCal": _VISCAL[cal_type],
            "PolBasis": basis,
            "CASA_Version": "radiocal",
        })
        # CASA's applycal refuses a table whose info is not "Calibration" / the VisCal type
        main.putinfo({"type": "Calibration", "subType": _VISCAL[cal_type], "readme": ""})
        for sub, writer in (("OBSERVATION", _write_observation), ("ANTENNA", _write_antenna),
                            ("FIELD", _write_field), ("SPECTRAL_WINDOW", _write_spw),
                            ("HISTORY", None)):
            subpath = os.path.abspath(os.path.join(tmp, sub))
            with written(ct.default_ms_subtable(sub, subpath)) as st:
                if writer is not None:
                    writer(st, table)
            # casacore keeps a subtable inside its table by a relative name: renamed with it
            main.putkeyword(sub, "Table: " + subpath)


def _casa_rows(table, cal_type):
    out = {k: [] for k in ("TIME", "FIELD_ID", "SPECTRAL_WINDOW_ID", "ANTENNA1", "ANTENNA2",
                           "INTERVAL", "SCAN_NUMBER", "OBSERVATION_ID")}
    arrays = {k: [] for k in ("PARAM", "PARAMERR", "FLAG", "SNR")}
    for ds in table:
        delay = cal_type in DELAY_TYPES
        var = DELAY if delay else GAIN
        values = np.asarray(ds[var].values)
        if delay:
            values = values.real * 1e9
        nsol, nant = values.shape[:2]
        # One row per (solution, antenna), solutions outermost
        per_solution = {"TIME": (SOL_TIME, np.float64), "FIELD_ID": (SOL_FIELD, np.int32),
                        "INTERVAL": (SOL_INTERVAL, np.float64), "SCAN_NUMBER": (SOL_SCAN, np.int32),
                        "OBSERVATION_ID": (SOL_OBS, np.int32)}
        for column, (coord, dtype) in per_solution.items():
            out[column].append(np.repeat(np.asarray(ds[coord].values, dtype), nant))
        out["SPECTRAL_WINDOW_ID"].append(np.full(nsol * nant, int(ds.attrs[schema.ATTR_SPW_ID]),
                                                 np.int32))
        out["ANTENNA1"].append(np.tile(np.arange(nant, dtype=np.int32), nsol))
        refant = (ds[SOL_REFANT].values if SOL_REFANT in ds.coords else np.full(nsol, -1))
        out["ANTENNA2"].append(np.repeat(np.asarray(refant, np.int32), nant))
        err = np.asarray(ds[PARAMERR].values) * (1e9 if delay else 1.0)
        arrays["PARAM"].append(values.reshape((nsol * nant,) + values.shape[2:]))
        arrays["PARAMERR"].append(err.reshape((nsol * nant,) + values.shape[2:]))
        arrays["FLAG"].append(np.asarray(ds[SOL_FLAG].values).reshape(
            (nsol * nant,) + values.shape[2:]))
        arrays["SNR"].append(np.asarray(ds[SNR].values).reshape((nsol * nant,) + values.shape[2:]))
    result = {k: np.concatenate(v) for k, v in out.items()}
    # The array columns are variable-shape (CASA's layout): spectral windows with different
    # channel counts stay separate blocks, each written at its first row.
    dtypes = {"PARAMERR": np.float32, "SNR": np.float32, "FLAG": bool,
              "PARAM": np.float32 if cal_type in DELAY_TYPES else np.complex64}
    for k, blocks in arrays.items():
        name = ("FPARAM" if cal_type in DELAY_TYPES else "CPARAM") if k == "PARAM" else k
        result[name] = [np.asarray(b, dtypes[k]) for b in blocks]
    return result


def _write_antenna(st, table):
    ds = table[0]
    n = ds.sizes[schema.ANTENNA]
    st.addrows(n)
    st.putcol("NAME", [str(x) for x in ds[schema.ANTENNA_NAME].values])
    if schema.ANTENNA_STATION in ds.coords:
        st.putcol("STATION", [str(x) for x in ds[schema.ANTENNA_STATION].values])
    if schema.ANTENNA_POSITION in ds.coords:
        st.putcol("POSITION", np.asarray(ds[schema.ANTENNA_POSITION].values, np.float64))
    if schema.ANTENNA_DIAMETER in ds.coords:
        st.putcol("DISH_DIAMETER", np.asarray(ds[schema.ANTENNA_DIAMETER].values, np.float64))
    if schema.ANTENNA_MOUNT in ds.coords:
        st.putcol("MOUNT", [str(x) for x in ds[schema.ANTENNA_MOUNT].values])
    st.putcol("TYPE", ["GROUND-BASED"] * n)
    st.putcol("OFFSET", np.zeros((n, 3)))
    st.putcol("FLAG_ROW", np.zeros(n, bool))


def _write_field(st, table):
    ds = table[0]
    ids = [int(i) for i in ds.attrs.get(ATTR_FIELD_IDS, [])]
    names = list(ds.attrs.get(ATTR_FIELD_NAMES, []))
    centers = list(ds.attrs.get(ATTR_FIELD_CENTERS, []))
    used = {int(f) for t in table for f in t[SOL_FIELD].values}
    n = max(ids + list(used) + [-1]) + 1
    st.addrows(n)
    name_col = [""] * n
    dirs = np.zeros((n, 1, 2))
    for i, fid in enumerate(ids):
        name_col[fid] = str(names[i]) if i < len(names) else ""
        if i < len(centers):
            dirs[fid, 0] = centers[i]
    st.putcol("NAME", name_col)
    for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
        st.putcol(col, dirs)
    st.putcol("CODE", [""] * n)
    st.putcol("SOURCE_ID", np.arange(n, dtype=np.int32))
    st.putcol("FLAG_ROW", np.array([i not in ids for i in range(n)]))


def _write_spw(st, table):
    n = max(int(ds.attrs[schema.ATTR_SPW_ID]) for ds in table) + 1
    st.addrows(n)
    by_id = {int(ds.attrs[schema.ATTR_SPW_ID]): ds for ds in table}
    for i in range(n):
        ds = by_id.get(i)
        freq = np.asarray(ds[SOL_FREQ].values, np.float64) if ds is not None else np.zeros(1)
        width = (np.asarray(ds[SOL_CHAN_WIDTH].values, np.float64) if ds is not None
                 else np.zeros(1))
        put_channels(st, i, freq, width)
        st.putcell("REF_FREQUENCY", i, float(ds.attrs.get(schema.ATTR_REF_FREQUENCY, freq[0]))
                   if ds is not None else 0.0)
        st.putcell("NAME", i, str(ds.attrs.get(schema.ATTR_SPW_NAME, "")) if ds is not None
                   else "")
        st.putcell("MEAS_FREQ_REF", i, 5)  # TOPO
        st.putcell("NET_SIDEBAND", i, 1)
        st.putcell("FLAG_ROW", i, ds is None)


def _write_observation(st, table):
    # one row per OBSERVATION_ID the solutions carry (rows are indexed by it), each spanning
    # its own solutions
    ds = table[0]
    times = np.concatenate([t[SOL_TIME].values for t in table])
    obs = np.concatenate([t[SOL_OBS].values for t in table]).astype(np.int64)
    nobs = int(obs.max()) + 1 if obs.size else 1
    st.addrows(nobs)
    for row in range(nobs):
        mine = times[obs == row]
        st.putcell("TIME_RANGE", row, np.array([mine.min(), mine.max()]) if mine.size
                   else np.zeros(2))
        st.putcell("TELESCOPE_NAME", row, str(ds.attrs.get(schema.ATTR_TELESCOPE, "")))
