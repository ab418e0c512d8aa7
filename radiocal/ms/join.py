"""Join the partitions of many Measurement Sets into one logical observation, without CASA concat.

Two joins, in this order:

1. **Frequency**: partitions from *different* MS with the same field, scan, correlations and
   times are sub-bands of one observation (OVRO-LWA writes one MS per sub-band and integration);
   they become one spectral window, channels sorted by frequency. Spectral windows within one MS are
   never merged.
   Between the two, drift-scan integrations (one field name, each phased to its own zenith) are
   rephased to one centre, or every partition to the one asked for (:mod:`radiocal.ms.rephase`).
2. **Time**: partitions with the same field, scan, correlations and channel frequencies are
   concatenated along time; overlapping times are an error.

Field and spectral-window ids are then renumbered across the whole set (fields by name and phase
centre in order of first appearance, spectral windows by first frequency), and partitions renamed.
All MS must share one antenna table; baseline axes are unified (baselines an MS lacks become absent
rows).
"""

from __future__ import annotations

from collections import defaultdict

import dask.array as da
import numpy as np
import xarray as xr
from dask.highlevelgraph import HighLevelGraph
from dask.utils import ensure_dict

from radiocal import budget
from radiocal.errors import InputError
from radiocal.store import schema as S
from radiocal.ms.rephase import common_phase_centre

_FILL = {S.VISIBILITY: 0, S.VISIBILITY_CORRECTED: 0, S.VISIBILITY_MODEL: 0, S.FLAG: True,
         S.WEIGHT: 0, S.UVW: 0.0, S.ROW_PRESENT: False}


def join_measurement_sets(per_ms: list[list[xr.Dataset]], chunk_bytes: int,
                          join_frequency: bool = True,
                          phase_centre: tuple[float, float] | None = None) -> list[xr.Dataset]:
    """Join the canonical partitions of several MS (one list per MS) into one list.

    ``join_frequency=False`` keeps each MS's spectral windows as they are (two LO tunings far
    apart in frequency, calibrated separately); times are still joined. ``phase_centre`` (J2000
    radians): rephase every partition to it (see :func:`radiocal.ms.rephase.common_phase_centre`).
    """
    _check_antennas(per_ms)
    datasets = _unify_baselines([ds for parts in per_ms for ds in parts])
    if join_frequency:
        datasets = _join_frequency(datasets)
    datasets = common_phase_centre(datasets, phase_centre)
    datasets = _join_time(datasets)
    datasets = _renumber(datasets)
    return [_one_layer(regular_chunks(ds, chunk_bytes)) for ds in datasets]


def regular_chunks(ds: xr.Dataset, chunk_bytes: int) -> xr.Dataset:
    """Rechunk to the budget's regular chunks (zarr needs regular chunks; see
    :func:`radiocal.budget.visibility_chunks`): whole integrations where they fit."""
    t, b, f = budget.visibility_chunks(ds.sizes[S.TIME], ds.sizes[S.BASELINE], ds.sizes[S.FREQUENCY],
                                       ds.sizes[S.POLARIZATION], chunk_bytes)
    chunks = {S.TIME: t, S.BASELINE: b, S.FREQUENCY: f, S.POLARIZATION: -1}
    return ds.chunk({dim: size for dim, size in chunks.items() if dim in ds.dims})


def _one_layer(ds: xr.Dataset) -> xr.Dataset:
    """Each variable's graph as one layer. A join leaves layers per file (reads, selections,
    concatenations), and dask culls a graph layer by layer, looking up every key it keeps in
    every layer: quadratic in the files (the write graph of 1600 OVRO-LWA-like files took 41
    s to optimise, of 400 files 2.7 s). One layer is culled in one walk; the writes fuse each
    chunk's tasks themselves (:mod:`radiocal.store.chunktasks`), so dask's fusing of layers is
    not missed."""
    layered = {}
    for name, var in ds.data_vars.items():
        data = var.data
        if isinstance(data, da.Array) and len(data.dask.layers) > 1:
            graph = HighLevelGraph.from_collections(data.name, ensure_dict(data.dask),
                                                    dependencies=())
            layered[name] = var.copy(data=da.Array(graph, data.name, data.chunks,
                                                   meta=data._meta))
    return ds.assign(layered) if layered else ds


def _key_field(ds):
    return (ds.attrs[S.ATTR_FIELD_NAME], tuple(np.round(ds.attrs[S.ATTR_PHASE_CENTER], 9)))


def _check_antennas(per_ms):
    first = per_ms[0][0]
    for parts in per_ms[1:]:
        ds = parts[0]
        same = (np.array_equal(ds[S.ANTENNA_NAME].values, first[S.ANTENNA_NAME].values)
                and np.allclose(ds[S.ANTENNA_POSITION].values, first[S.ANTENNA_POSITION].values, atol=1e-3))
        if not same:
            raise InputError(f"{ds.attrs[S.ATTR_SOURCES][0]}: antenna table differs from "
                             f"{first.attrs[S.ATTR_SOURCES][0]}; only MS of one array can be joined")


def _unify_baselines(datasets):
    nant = datasets[0].sizes[S.ANTENNA]
    codes = {tuple((ds[S.BASELINE_ANTENNA1].values * nant + ds[S.BASELINE_ANTENNA2].values).tolist())
             for ds in datasets}
    if len(codes) == 1:
        return datasets
    union = np.unique(np.concatenate([np.array(c) for c in codes]))
    out = []
    for ds in datasets:
        code = ds[S.BASELINE_ANTENNA1].values.astype(np.int64) * nant + ds[S.BASELINE_ANTENNA2].values
        keyed = ds.drop_vars([S.BASELINE_ANTENNA1, S.BASELINE_ANTENNA2]).assign_coords({S.BASELINE: code})
        fill = {k: v for k, v in _FILL.items() if k in ds}
        keyed = keyed.reindex({S.BASELINE: union}, fill_value=fill)
        keyed = keyed.assign_coords({S.BASELINE_ANTENNA1: (S.BASELINE, (union // nant).astype(np.int32)),
                                     S.BASELINE_ANTENNA2: (S.BASELINE, (union % nant).astype(np.int32))})
        out.append(keyed.drop_vars(S.BASELINE))
    return out


def _groups_sharing(datasets, axis: str):
    """Partitions with the same field, scan, correlations and ``axis`` coordinate, grouped."""
    groups = defaultdict(list)
    for ds in datasets:
        key = (_key_field(ds), ds.attrs[S.ATTR_SCAN], tuple(ds[S.POLARIZATION].values.tolist()),
               ds[axis].values.tobytes())
        groups[key].append(ds)
    return groups.values()


def _join_frequency(datasets):
    out = []
    for parts in _groups_sharing(datasets, S.TIME):
        sources = [tuple(ds.attrs[S.ATTR_SOURCES]) for ds in parts]
        if len(parts) == 1 or len(set(sources)) != len(sources):
            out.extend(parts)   # spectral windows of one MS stay separate
            continue
        parts = sorted(parts, key=lambda ds: float(ds[S.FREQUENCY].values.min()))
        freqs = np.concatenate([ds[S.FREQUENCY].values for ds in parts])
        if np.unique(freqs).size != freqs.size:
            raise InputError("overlapping channel frequencies in sub-bands of "
                             f"{parts[0].attrs[S.ATTR_FIELD_NAME]} scan {parts[0].attrs[S.ATTR_SCAN]}")
        # on the dask arrays: an xarray | aligns every coordinate first, 16 ms a sub-band
        present = parts[0][S.ROW_PRESENT].variable
        for ds in parts[1:]:
            present = present.copy(data=present.data | ds[S.ROW_PRESENT].data)
        joined = xr.concat([ds.drop_vars(S.ROW_PRESENT) for ds in parts], dim=S.FREQUENCY,
                           data_vars="minimal", coords="minimal", compat="override",
                           combine_attrs="override", join="override")
        joined[S.ROW_PRESENT] = present
        joined.attrs[S.ATTR_SOURCES] = [s for ds in parts for s in ds.attrs[S.ATTR_SOURCES]]
        joined.attrs[S.ATTR_SPW_NAME] = "+".join(ds.attrs.get(S.ATTR_SPW_NAME, "") for ds in parts)
        joined.attrs[S.ATTR_REF_FREQUENCY] = float(freqs.min())
        joined.attrs[S.ATTR_SUBBAND_STARTS] = [float(ds[S.FREQUENCY].values.min()) for ds in parts]
        out.append(joined)
    return out


def _join_time(datasets):
    out = []
    for parts in _groups_sharing(datasets, S.FREQUENCY):
        if len(parts) == 1:
            out.extend(parts)
            continue
        parts = sorted(parts, key=lambda ds: float(ds[S.TIME].values[0]))
        times = np.concatenate([ds[S.TIME].values for ds in parts])
        if np.any(np.diff(times) <= 0):
            raise InputError(f"overlapping times in {parts[0].attrs[S.ATTR_FIELD_NAME]} scan "
                             f"{parts[0].attrs[S.ATTR_SCAN]} across "
                             f"{', '.join(sorted({s for ds in parts for s in ds.attrs[S.ATTR_SOURCES]}))}")
        joined = xr.concat(parts, dim=S.TIME, data_vars="minimal", coords="minimal",
                           compat="override", combine_attrs="override", join="override")
        joined.attrs[S.ATTR_SOURCES] = list(dict.fromkeys(s for ds in parts for s in ds.attrs[S.ATTR_SOURCES]))
        out.append(joined)
    return out


def _renumber(datasets):
    fields = {}
    for ds in sorted(datasets, key=lambda d: float(d[S.TIME].values[0])):
        fields.setdefault(_key_field(ds), len(fields))
    spw_keys = sorted({ds[S.FREQUENCY].values.tobytes() for ds in datasets},
                      key=lambda b: float(np.frombuffer(b, dtype=np.float64)[0]))
    spws = {key: i for i, key in enumerate(spw_keys)}
    out = []
    for ds in datasets:
        ds = ds.copy()
        ds.attrs[S.ATTR_FIELD_ID] = fields[_key_field(ds)]
        ds.attrs[S.ATTR_SPW_ID] = spws[ds[S.FREQUENCY].values.tobytes()]
        ds.attrs[S.ATTR_PARTITION] = S.partition_name(ds.attrs[S.ATTR_FIELD_ID], ds.attrs[S.ATTR_SPW_ID],
                                                      ds.attrs[S.ATTR_SCAN])
        out.append(ds)
    names = [ds.attrs[S.ATTR_PARTITION] for ds in out]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"cannot join: partitions {', '.join(dupes)} occur twice with different "
                         "correlations or times that do not line up")
    return sorted(out, key=lambda d: (float(d[S.TIME].values[0]), d.attrs[S.ATTR_SPW_ID]))
