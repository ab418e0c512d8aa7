"""Solution intervals: which solution cell each integration of each partition belongs to.

CASA semantics: ``solint`` is ``"int"`` (every integration), ``"inf"`` (everything a cell may
combine) or a duration (``"60s"``, ``"2min"``, ``"30"`` seconds) counted from the first integration
of the scan (or of the combined scans). Cells never span fields, spectral windows, scans or
observations (the MS OBSERVATION_ID) unless ``combine`` names them: a concatenation of two
observations may share FIELD rows and scan numbers, and CASA keeps them apart unless combine
has ``obs``. Nor do they ever span arrays (the MS ARRAY_ID): antennas of two subarrays share no
baseline, so one solve over both would tie nothing together and reference one of them to an
antenna it never saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from radiocal.errors import ConfigError
from radiocal.store import schema

COMBINE_CHOICES = ("scan", "spw", "field", "obs")
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|min|m|h)?\s*$")


def parse_solint(solint) -> float | str:
    """``"int"``, ``"inf"`` or a duration in seconds (float); anything else is a ConfigError."""
    if isinstance(solint, (int, float)) and not isinstance(solint, bool):
        if solint <= 0:
            raise ConfigError(f"solint must be positive, got {solint}")
        return float(solint)
    text = str(solint).strip().lower()
    if text in ("int", "inf"):
        return text
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"solint {solint!r} is not 'int', 'inf' or a duration such as '60s'")
    value = float(match.group(1)) * {"s": 1, "sec": 1, None: 1, "min": 60, "m": 60,
                                     "h": 3600}[match.group(2)]
    if value <= 0:
        raise ConfigError(f"solint must be positive, got {solint!r}")
    return value


def parse_combine(combine) -> frozenset:
    """A set of axes to combine from ``"scan,spw"`` or a sequence."""
    if combine is None:
        return frozenset()
    items = combine.split(",") if isinstance(combine, str) else list(combine)
    names = frozenset(item.strip().lower() for item in items if item.strip())
    unknown = sorted(names - set(COMBINE_CHOICES))
    if unknown:
        raise ConfigError(f"combine: unknown axis {', '.join(unknown)} "
                          f"(choose from {', '.join(COMBINE_CHOICES)})")
    return names


@dataclass(frozen=True)
class CellAssignment:
    """Cells of a solve over several partitions.

    ``cell_of_time[i]`` is the cell (``0 .. n_cells-1``) of each time of partition ``i``;
    per cell: ``time`` (mean of its integration times), ``interval`` (span), ``field_id``,
    ``scan_number`` (the first scan), ``spw_id`` (the lowest spw), ``observation_id`` (the
    lowest observation).
    """

    cell_of_time: list
    time: np.ndarray
    interval: np.ndarray
    field_id: np.ndarray
    scan_number: np.ndarray
    spw_id: np.ndarray
    observation_id: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.time)


def assign_cells(datasets, solint, combine) -> CellAssignment:
    """Assign every integration of ``datasets`` to a solution cell (eager: coordinates only)."""
    solint = parse_solint(solint)
    combine = parse_combine(combine)
    keys_per_ds = []
    group_start: dict = {}
    for ds in datasets:
        key = (
            -1 if "field" in combine else int(ds.attrs[schema.ATTR_FIELD_ID]),
            -1 if "spw" in combine else int(ds.attrs[schema.ATTR_SPW_ID]),
            -1 if "scan" in combine else int(ds.attrs[schema.ATTR_SCAN]),
        )
        times = np.asarray(ds[schema.TIME].values, dtype=np.float64)
        obs = np.zeros(times.size, np.int64) if "obs" in combine else observation_ids(ds)
        keys = [key + (int(o), int(a)) for o, a in zip(obs, array_ids(ds))]
        keys_per_ds.append((keys, times))
        for k, t in zip(keys, times):
            group_start[k] = min(group_start.get(k, np.inf), float(t))
    cell_keys = []
    for keys, times in keys_per_ds:
        if solint == "int":
            bins = np.round(times, 3)
        elif solint == "inf":
            bins = np.zeros(times.shape)
        else:
            # a little slack so an integration stamped exactly at a boundary stays in its bin
            start = np.array([group_start[k] for k in keys])
            bins = np.floor((times - start) / solint + 1e-6)
        cell_keys.append([(k, float(b)) for k, b in zip(keys, bins)])
    unique = sorted({k for keys in cell_keys for k in keys},
                    key=lambda k: (k[1] if solint == "int" else 0.0, k[0], k[1]))
    index = {k: i for i, k in enumerate(unique)}
    cell_of_time = [np.array([index[k] for k in keys], dtype=np.int64) for keys in cell_keys]
    n = len(unique)
    tmin = np.full(n, np.inf)
    tmax = np.full(n, -np.inf)
    tsum = np.zeros(n)
    tcount = np.zeros(n)
    big = np.iinfo(np.int32).max
    field, scan, spw, observation = (np.full(n, big, dtype=np.int64) for _ in range(4))
    for ds, cells in zip(datasets, cell_of_time):
        times = np.asarray(ds[schema.TIME].values, dtype=np.float64)
        half = 0.5 * _integration_times(ds)
        np.minimum.at(tmin, cells, times - half)
        np.maximum.at(tmax, cells, times + half)
        np.add.at(tsum, cells, times)
        np.add.at(tcount, cells, 1.0)
        np.minimum.at(field, cells, int(ds.attrs[schema.ATTR_FIELD_ID]))
        np.minimum.at(scan, cells, int(ds.attrs[schema.ATTR_SCAN]))
        np.minimum.at(spw, cells, int(ds.attrs[schema.ATTR_SPW_ID]))
        np.minimum.at(observation, cells, observation_ids(ds))
    # order cells by time so tables read naturally; remap
    mean_time = tsum / np.maximum(tcount, 1)
    order = np.lexsort((field, mean_time))
    remap = np.empty(n, dtype=np.int64)
    remap[order] = np.arange(n)
    return CellAssignment(
        cell_of_time=[remap[c] for c in cell_of_time],
        time=mean_time[order],
        interval=(tmax - tmin)[order],
        field_id=field[order],
        scan_number=scan[order],
        spw_id=spw[order],
        observation_id=observation[order],
    )


def observation_ids(ds) -> np.ndarray:
    """(time,) the OBSERVATION_ID of each integration (0 for data that do not say)."""
    if schema.OBSERVATION_ID in ds.coords:
        return np.asarray(ds[schema.OBSERVATION_ID].values, dtype=np.int64)
    return np.zeros(ds.sizes[schema.TIME], dtype=np.int64)


def array_ids(ds) -> np.ndarray:
    """(time,) the ARRAY_ID of each integration (0 for data that do not say)."""
    if schema.ARRAY_ID in ds.coords:
        return np.asarray(ds[schema.ARRAY_ID].values, dtype=np.int64)
    return np.zeros(ds.sizes[schema.TIME], dtype=np.int64)


def _integration_times(ds) -> np.ndarray:
    if schema.INTEGRATION_TIME in ds.coords:
        return np.asarray(ds[schema.INTEGRATION_TIME].values, dtype=np.float64)
    return np.zeros(ds.sizes[schema.TIME])
