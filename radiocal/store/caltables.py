"""Calibration tables: the xarray layout and its zarr round trip (CASA tables:
:mod:`radiocal.ms.casa_caltables`).

A calibration table is a list of :class:`xarray.Dataset`, one per spectral window it holds
(layout in ``docs/calibration.md``):

``GAIN (time_solution, antenna, frequency_solution, hand)`` complex64 (G, T, B) or
``DELAY`` float64 seconds (K); ``FLAG`` bool and ``SNR``, ``PARAMERR`` float32 alike; coordinates
``time_solution`` (MJD s), ``interval``, ``field_id``, ``scan_number``, ``observation_id`` (per
solution), ``frequency_solution`` (Hz), ``hand`` (``R``/``L``/``X``/``Y``, or ``I`` for T) and the
antenna table; attributes ``cal_type``, ``spw_id``, ``refant``, ``field_names``/``field_ids``/
``field_phase_centers`` and the solve parameters.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import xarray as xr
import zarr

from radiocal.errors import InputError, OutputExistsError
from radiocal.store import schema
from radiocal.store.zarr_store import json_ready, read_group, write_group

# Dimensions and names of the calibration-table layout
SOL_TIME = "time_solution"
SOL_FREQ = "frequency_solution"
HAND = "hand"
GAIN = "GAIN"
DELAY = "DELAY"
SOL_FLAG = "FLAG"
SNR = "SNR"
PARAMERR = "PARAMERR"
SOL_INTERVAL = "interval"
SOL_FIELD = "field_id"
SOL_SCAN = "scan_number"
SOL_OBS = "observation_id"
SOL_CHAN_WIDTH = "channel_width_solution"
SOL_REFANT = "reference_antenna"    # antenna index used as phase reference per solution, -1 none

ATTR_CAL_TYPE = "cal_type"          # "G", "T", "B", "K"; "KCROSS", "Xf", "Df"
ATTR_REFANT = "refant"              # name of the preferred reference antenna ("" if none)
ATTR_FIELD_NAMES = "field_names"    # names of the fields in field_ids order
ATTR_FIELD_IDS = "field_ids"
ATTR_FIELD_CENTERS = "field_phase_centers"   # [[ra, dec], ...] radians
ATTR_DELAY_REF = "delay_reference_frequency"  # Hz: K phase = 2 pi tau (nu - ref)
ATTR_COUNTS = "solution_counts"     # {"expected": n, "attempted": n, "succeeded": n}
ATTR_PARAMS = "solve_parameters"    # JSON string of the solve configuration

CAL_TYPES = ("G", "T", "B", "K")
# Polarisation tables (radiocal.calibration.polcal), in CASA's parameter layout: KCROSS a delay
# (s) on the first hand and 0 on the second; Xf one complex per channel on the first hand
# (CASA's X Jones diag(p, 1)); Df the leakages (d_x, d_y) of D = [[1, d_x], [d_y, 1]] per channel
POL_CAL_TYPES = ("KCROSS", "Xf", "Df")
DELAY_TYPES = ("K", "KCROSS")
CALTABLES_GROUP = "caltables"   # tables' group in a store, and their folder in an output directory
ZARR_FORMAT = 2   # as the store's partitions (radiocal.store.zarr_store)
TABLE_MARKER = "radiocal_caltable"
ANTENNA_COORDS = (schema.ANTENNA_NAME, schema.ANTENNA_STATION, schema.ANTENNA_POSITION,
                  schema.ANTENNA_DIAMETER, schema.ANTENNA_MOUNT)


def make_table_dataset(cal_type, values, flag, snr, paramerr, *, time, interval, field_id,
                       scan_number, frequency, channel_width, hands, antennas, attrs,
                       observation_id=None, reference_antenna=None) -> xr.Dataset:
    """Assemble one spectral window of a calibration table in the documented layout.

    ``values`` is complex (time_solution, antenna, frequency_solution, hand) for G/T/B and float
    delays in seconds for K; ``antennas`` maps antenna coordinate names to variables
    (:func:`antenna_coords`); ``reference_antenna`` (time_solution,) is the antenna each
    solution is referenced to (CASA's ``ANTENNA2``), -1 where unknown.
    """
    if cal_type not in CAL_TYPES + POL_CAL_TYPES:
        raise ValueError(f"unknown calibration type {cal_type!r}")
    dims = (SOL_TIME, schema.ANTENNA, SOL_FREQ, HAND)
    name, dtype = (DELAY, np.float64) if cal_type in DELAY_TYPES else (GAIN, np.complex64)
    ntime = len(time)
    coords = {
        SOL_TIME: np.asarray(time, dtype=np.float64),
        SOL_INTERVAL: (SOL_TIME, np.asarray(interval, dtype=np.float64)),
        SOL_FIELD: (SOL_TIME, np.asarray(field_id, dtype=np.int32)),
        SOL_SCAN: (SOL_TIME, np.asarray(scan_number, dtype=np.int32)),
        SOL_OBS: (SOL_TIME, np.zeros(ntime, np.int32) if observation_id is None
                  else np.asarray(observation_id, dtype=np.int32)),
        SOL_REFANT: (SOL_TIME, np.full(ntime, -1, np.int32) if reference_antenna is None
                     else np.asarray(reference_antenna, dtype=np.int32)),
        SOL_FREQ: np.asarray(frequency, dtype=np.float64),
        SOL_CHAN_WIDTH: (SOL_FREQ, np.asarray(channel_width, dtype=np.float64)),
        HAND: np.asarray(list(hands), dtype=str),
    }
    coords.update(antennas)
    attrs = dict(attrs)
    attrs[ATTR_CAL_TYPE] = cal_type
    return xr.Dataset(
        {
            name: (dims, values.astype(dtype) if hasattr(values, "astype") else values),
            SOL_FLAG: (dims, flag),
            SNR: (dims, snr.astype(np.float32) if hasattr(snr, "astype") else snr),
            PARAMERR: (dims, paramerr.astype(np.float32) if hasattr(paramerr, "astype")
                       else paramerr),
        },
        coords=coords,
        attrs=attrs,
    )


def antenna_coords(ds: xr.Dataset) -> dict:
    """The antenna-table coordinates of a canonical dataset (or a table), as variables."""
    return {name: ds[name].variable for name in ANTENNA_COORDS if name in ds.coords}


def field_ids(tds: xr.Dataset, name) -> list[int]:
    """Ids of every field of the table named ``name`` (several when concatenated observations
    list one source in several FIELD rows), or ``[name]`` when it is one of the ids."""
    ids = [int(i) for i in tds.attrs.get(ATTR_FIELD_IDS, [])]
    names = [str(n) for n in tds.attrs.get(ATTR_FIELD_NAMES, [])]
    named = [i for i, n in zip(ids, names) if n == str(name)]
    if named:
        return named
    return [int(name)] if str(name).strip().isdigit() and int(name) in ids else []


def table_type(table: list[xr.Dataset]) -> str:
    """The calibration type (``G``, ``T``, ``B``, ``K``) of a table, checking it is consistent."""
    types = {ds.attrs[ATTR_CAL_TYPE] for ds in table}
    if len(types) != 1:
        raise InputError(f"calibration table mixes types {sorted(types)}")
    return types.pop()


# -- zarr store ------------------------------------------------------------------------------


def write_table_zarr(table: list[xr.Dataset], path, overwrite: bool = False) -> None:
    """Write a calibration table as zarr groups ``<path>/spw<S>`` (a ``caltables/<name>`` entry).

    The group attribute ``radiocal_caltable`` listing the spw groups is written last: a table
    without it is incomplete.
    """
    path = os.fspath(path)
    if os.path.exists(path):
        if not overwrite:
            raise OutputExistsError(f"{path} exists (use overwrite)")
        shutil.rmtree(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(os.path.join(os.path.dirname(parent), ".zgroup")):
        # inside a store: make caltables/ a group so the store's hierarchy stays valid
        zarr.open_group(parent, mode="a", zarr_format=ZARR_FORMAT)
    zarr.open_group(path, mode="w", zarr_format=ZARR_FORMAT)
    groups = []
    for ds in table:
        group = f"spw{int(ds.attrs[schema.ATTR_SPW_ID])}"
        out = ds.copy()
        out.attrs = json_ready(ds.attrs)
        for var in out.variables.values():
            # encodings inherited from a store's partitions would pin their codecs
            var.encoding = {}
        write_group(out, os.path.join(path, group))
        groups.append(group)
    # the marker attribute goes last: a table without it is incomplete
    zarr.open_group(path, mode="r+", zarr_format=ZARR_FORMAT).attrs[TABLE_MARKER] = {
        "groups": groups, "cal_type": table_type(table)}


def is_table_zarr(path) -> bool:
    """Whether ``path`` is a complete calibration table written by :func:`write_table_zarr`."""
    path = os.fspath(path)
    if not os.path.exists(os.path.join(path, ".zgroup")):
        return False
    return TABLE_MARKER in zarr.open_group(path, mode="r", zarr_format=ZARR_FORMAT).attrs


def read_table_zarr(path) -> list[xr.Dataset]:
    """Read a table written by :func:`write_table_zarr` (loaded into memory: tables are small)."""
    path = os.fspath(path)
    if not is_table_zarr(path):
        raise InputError(f"{path} is not a complete radiocal calibration table")
    groups = zarr.open_group(path, mode="r", zarr_format=ZARR_FORMAT).attrs[TABLE_MARKER]["groups"]
    return [read_group(os.path.join(path, g)) for g in groups]
