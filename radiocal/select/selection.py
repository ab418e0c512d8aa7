"""Data selection familiar to CASA users, over canonical datasets (``docs/data-model.md``).

A :class:`Selection` holds CASA-syntax strings (field, scan, spw, antenna, uvrange, timerange,
correlation, intent); they are parsed when the selection is made, so a malformed string fails
early with a one-line :class:`radiocal.errors.SelectionError`. The grammar accepted, and what of
CASA's was left out, is described in :mod:`radiocal.select.syntax`.

How each part applies to a list of partitions (one per field, spw and scan):

- field, scan, spw and intent choose whole partitions (from their attributes; spw frequency
  ranges from the ``frequency`` coordinate);
- spw channels, correlation, antenna/baseline and timerange are separable by dimension, so
  :func:`select` keeps only the selected ``frequency``, ``polarization``, ``baseline`` and
  ``time`` indices (``isel``), and drops a partition left with none;
- uvrange is not separable: it depends on ``UVW`` (time, baseline) and, for wavelength units, on
  each channel's frequency. It is decided per (time, baseline, frequency) cell with
  ``sqrt(u**2 + v**2)`` in metres, times ``frequency / c`` for lambda units. Cells outside are
  flagged; rows (time, baseline) with no cell inside count as absent, as in CASA: they get
  ``ROW_PRESENT = False``, weight 0 and zero data, as the data model requires of absent rows.

Everything stays lazy: data variables keep their dask graphs and nothing is computed. Only small
coordinates (antenna names, baseline indices, channel widths) are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import dask.array as da
import numpy as np
import xarray as xr

from radiocal.errors import SelectionError
from radiocal.store import schema
from radiocal.select import resolve
from radiocal.select import syntax
from radiocal.select.resolve import first_time

_PARSERS = {
    "field": syntax.parse_field,
    "scan": syntax.parse_scan,
    "spw": syntax.parse_spw,
    "antenna": syntax.parse_antenna,
    "uvrange": syntax.parse_uvrange,
    "timerange": syntax.parse_timerange,
    "correlation": syntax.parse_correlation,
    "intent": syntax.parse_intent,
}


@dataclasses.dataclass(frozen=True)
class Selection:
    """A CASA-style data selection; every part is optional (None or "" selects everything).

    Parameters
    ----------
    field : str, optional
        Field ids, id ranges or names with ``*`` wildcards: ``0,2``, ``J1331+3030``, ``J13*``.
    scan : str, optional
        Scan numbers: ``1~3,5``, ``>4``, ``<3``.
    spw : str, optional
        Spectral windows and channels: ``0``, ``0:10~20``, ``*:4~27``, ``0:10~20;30~40``,
        ``0:0~31^2``, ``1.3~1.35GHz``.
    antenna : str, optional
        Antennas and baselines: ``W01,E04``, ``W01&E04``, ``W01&*``, ``!W01``, ``*&&&``.
    uvrange : str, optional
        uv distance: ``0~50m``, ``<2klambda``, ``>100lambda``, ``1~2km``.
    timerange : str, optional
        UTC times: ``2024/05/01/10:00:00~2024/05/01/10:30:00``, ``10:00:00~10:30:00``,
        ``>10:00:00``, ``<10:00``.
    correlation : str, optional
        Correlations: ``RR,LL``, ``XX``.
    intent : str, optional
        Scan intents, substring or pattern: ``*BANDPASS*``.
    """

    field: str | None = None
    scan: str | None = None
    spw: str | None = None
    antenna: str | None = None
    uvrange: str | None = None
    timerange: str | None = None
    correlation: str | None = None
    intent: str | None = None
    _parsed: dict = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        parsed = {}
        for name, parser in _PARSERS.items():
            value = getattr(self, name)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                value = str(value)
            if value is not None and not isinstance(value, str):
                raise SelectionError(f"{name} selection must be a string, got {value!r}")
            value = value.strip() or None if value is not None else None
            object.__setattr__(self, name, value)
            if value is not None:
                parsed[name] = parser(value)
        object.__setattr__(self, "_parsed", parsed)

    @property
    def selects_everything(self) -> bool:
        """True when no part is given."""
        return not self._parsed

    def describe(self, names: Iterable[str] | None = None) -> str:
        """The given parts as ``field='J13*', spw='0:10~20'`` (or only those in ``names``)."""
        wanted = list(self._parsed) if names is None else [n for n in names if n in self._parsed]
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in wanted)


def matches_partition(selection: Selection, attrs: dict, frequency=None, channel_width=None,
                      parts: Iterable[str] = ("field", "scan", "spw", "intent")) -> bool:
    """Whether a partition with these attributes passes the partition-level parts.

    For readers that want to skip partitions before building them.

    Parameters
    ----------
    selection : Selection
    attrs : dict
        The partition's attributes (``field_id``, ``field_name``, ``field_code``, ``spw_id``,
        ``spw_name``, ``scan_number``, ``intents``).
    frequency, channel_width : numpy.ndarray (frequency,), optional
        Channel frequencies and widths in Hz, needed only for spw frequency ranges.
    parts : iterable of str
        Which of field, scan, spw and intent to test.
    """
    parsed = selection._parsed
    freq = None if frequency is None else np.asarray(frequency, dtype=float)
    width = None if channel_width is None else np.asarray(channel_width, dtype=float)
    for part in parts:
        if part not in parsed:
            continue
        if part == "field" and not resolve.field_matches(parsed["field"], attrs):
            return False
        if part == "scan" and not resolve.scan_matches(parsed["scan"], attrs):
            return False
        if part == "spw" and not any(resolve.spw_item_matches(item, attrs, freq, width)
                                     for item in parsed["spw"]):
            return False
        if part == "intent":
            value = attrs.get(schema.ATTR_INTENTS) or []
            intents = value.split(",") if isinstance(value, str) else [str(v) for v in value]
            if not resolve.intent_matches(parsed["intent"], intents):
                return False
    return True


def _ds_matches(ds: xr.Dataset, selection: Selection, part: str) -> bool:
    frequency = width = None
    if part == "spw":
        frequency = resolve.coord_values(ds[schema.FREQUENCY])
        if schema.CHANNEL_WIDTH in ds.coords:
            width = resolve.coord_values(ds[schema.CHANNEL_WIDTH])
    attrs = dict(ds.attrs)
    attrs[schema.ATTR_INTENTS] = resolve.partition_intents(ds)
    return matches_partition(selection, attrs, frequency, width, parts=(part,))


# --- checks and the public entry points --------------------------------------------------------

def check_selection(datasets: Sequence[xr.Dataset], selection: Selection) -> None:
    """Raise :class:`SelectionError` for an explicit name, id or correlation that matches
    nothing in ``datasets`` (a typo, most likely). Ranges and comparisons are not checked."""
    parsed = selection._parsed
    attrs = [ds.attrs for ds in datasets]

    def known(key_a, key_b=None):
        return resolve.listing(f"{a.get(key_a)} {a.get(key_b, '') if key_b else ''}".strip()
                               for a in attrs)

    for spec in parsed.get("field", ()):
        if getattr(spec, "explicit", True) and not any(
                resolve.field_matches((spec,), a) for a in attrs):
            raise SelectionError(f"field {spec.token!r} matches no field "
                                 f"(fields: {known(schema.ATTR_FIELD_ID, schema.ATTR_FIELD_NAME)})")
    for spec in parsed.get("scan", ()):
        if spec.explicit and not any(resolve.scan_matches((spec,), a) for a in attrs):
            raise SelectionError(f"scan {spec.token!r} matches no scan "
                                 f"(scans: {known(schema.ATTR_SCAN)})")
    for item in parsed.get("spw", ()):
        if isinstance(item.spw, syntax.NameSpec) or (
                isinstance(item.spw, syntax.IdSpec) and item.spw.explicit):
            if not any(resolve.spw_item_matches(item, a, None, None) for a in attrs):
                raise SelectionError(f"spw {item.spw.token!r} matches no spectral window "
                                     f"(spws: {known(schema.ATTR_SPW_ID, schema.ATTR_SPW_NAME)})")
    tables = []
    if "antenna" in parsed:
        for ds in datasets:
            stations = (resolve.coord_values(ds[schema.ANTENNA_STATION]).astype(str)
                        if schema.ANTENNA_STATION in ds.coords else None)
            tables.append((resolve.coord_values(ds[schema.ANTENNA_NAME]).astype(str), stations))
    for spec in parsed.get("antenna", ()):
        for item in spec.left + (spec.right or ()):
            if item.kind in ("name", "int") and not any(
                    resolve.antenna_set((item,), names, stations).any()
                    for names, stations in tables):
                raise SelectionError(f"antenna {item.token!r} matches no antenna name, station "
                                     f"or id (antennas: {resolve.listing(tables[0][0])})")
    if "correlation" in parsed:
        present = {str(p) for ds in datasets
                   for p in resolve.coord_values(ds[schema.POLARIZATION])}
        for name in parsed["correlation"]:
            if name not in present:
                raise SelectionError(f"correlation {name!r} is not in the data "
                                     f"(correlations: {resolve.listing(sorted(present))})")
    for spec in parsed.get("intent", ()):
        intents = [i for ds in datasets for i in resolve.partition_intents(ds)]
        if not resolve.intent_matches((spec,), intents):
            raise SelectionError(f"intent {spec.token!r} matches no scan intent "
                                 f"(intents: {resolve.listing(intents) or 'none recorded'})")


_PARTITION_PARTS = ("field", "scan", "spw", "intent")


def _dimension_masks(ds: xr.Dataset, selection: Selection, reference: float | None):
    """``(part, dim, bool mask over dim)`` for each given part that is separable by dimension."""
    parsed = selection._parsed
    makers = (
        ("spw", schema.FREQUENCY, lambda: resolve.channel_mask(ds, parsed["spw"])),
        ("correlation", schema.POLARIZATION,
         lambda: resolve.polarization_mask(ds, parsed["correlation"])),
        ("antenna", schema.BASELINE, lambda: resolve.baseline_mask(ds, parsed["antenna"])),
        ("timerange", schema.TIME,
         lambda: resolve.time_mask(ds, parsed["timerange"], reference)),
    )
    return [(part, dim, make()) for part, dim, make in makers if part in parsed]


def _apply_uvrange(ds: xr.Dataset, specs) -> xr.Dataset:
    """Flag cells outside the uv ranges; rows with no cell inside become absent rows."""
    inside = resolve.uv_mask(ds, specs)
    row_inside = inside.any(schema.FREQUENCY) if schema.FREQUENCY in inside.dims else inside
    updates = {schema.FLAG: resolve.flagged_outside_uv(ds, specs)}
    if schema.ROW_PRESENT in ds.data_vars:
        present = ds[schema.ROW_PRESENT]
        updates[schema.ROW_PRESENT] = (present & row_inside).transpose(*present.dims)
    # absent rows carry weight 0 and zero data (data model), so sums need not consult ROW_PRESENT
    for name in (schema.WEIGHT,) + schema.VISIBILITY_VARS:
        if name in ds.data_vars:
            var = ds[name]
            updates[name] = var.where(row_inside, 0).astype(var.dtype).transpose(*var.dims)
    return ds.assign(updates)


def flag_outside_uv(ds: xr.Dataset, uvrange: str) -> xr.Dataset:
    """``ds`` with every cell outside ``uvrange`` (CASA syntax) flagged, lazily; nothing else
    changes (unlike :func:`select`, rows outside keep their weights and data). A task that reads
    the flags from the store makes the cut inside itself (see
    :func:`radiocal.select.resolve.flagged_outside_uv`)."""
    if not uvrange:
        return ds
    specs = syntax.parse_uvrange(uvrange)
    return ds.assign({schema.FLAG: resolve.flagged_outside_uv(ds, specs)})


def select(datasets: Sequence[xr.Dataset], selection: Selection) -> list[xr.Dataset]:
    """The partitions and cells of ``datasets`` that ``selection`` selects, lazily.

    Parameters
    ----------
    datasets : sequence of xarray.Dataset
        Canonical partitions: ``VISIBILITY``, ``FLAG``, ``WEIGHT`` (time, baseline, frequency,
        polarization), ``UVW`` (time, baseline, uvw_label), ``ROW_PRESENT`` (time, baseline).
    selection : Selection

    Returns
    -------
    list of xarray.Dataset
        The selected partitions in their input order. Field, scan, spw and intent drop
        partitions; channels, correlations, baselines and times are kept by ``isel`` (a
        partition left with none is dropped); uvrange flags the cells outside it and marks rows
        wholly outside as absent (``ROW_PRESENT`` False, weight 0, zero data). Dask-backed
        variables stay dask-backed; nothing is computed.

    Raises
    ------
    SelectionError
        A name, id or correlation matches nothing, the result is empty (the message names the
        part that emptied it), or the kept correlations are not a supported layout.
    """
    datasets = list(datasets)
    if selection.selects_everything:
        return datasets
    if not datasets:
        raise SelectionError("there is no data to select from")
    check_selection(datasets, selection)
    parsed = selection._parsed
    reference = first_time(datasets) if "timerange" in parsed else None
    applied: list[str] = []

    def emptied(part: str, why: str = "") -> SelectionError:
        context = selection.describe(p for p in applied if p != part)
        return SelectionError(f"{part}={getattr(selection, part)!r} selects no data"
                              + (f" together with {context}" if context else "") + why)

    for part in _PARTITION_PARTS:
        if part in parsed:
            datasets = [ds for ds in datasets if _ds_matches(ds, selection, part)]
            if not datasets:
                raise emptied(part)
            applied.append(part)

    indexers: list[dict] = [{} for _ in datasets]
    all_masks = [_dimension_masks(ds, selection, reference) for ds in datasets]
    for position, part in enumerate(p for p, _, _ in (all_masks[0] if all_masks else ())):
        kept = []
        for ds, indexer, masks in zip(datasets, indexers, all_masks):
            _, dim, mask = masks[position]
            if mask.any():
                if not mask.all():
                    indexer[dim] = np.flatnonzero(mask)
                kept.append((ds, indexer, masks))
        if not kept:
            why = ""
            if part == "timerange":
                span = [float(t) for ds in datasets if ds.sizes[schema.TIME]
                        for t in resolve.coord_values(ds[schema.TIME])[[0, -1]]]
                why = (f" (data from {syntax.format_time(min(span))} to "
                       f"{syntax.format_time(max(span))} UTC)")
            raise emptied(part, why)
        datasets, indexers, all_masks = (list(x) for x in zip(*kept))
        if part not in applied:
            applied.append(part)
    datasets = [ds.isel(indexer) if indexer else ds for ds, indexer in zip(datasets, indexers)]

    if "correlation" in parsed:
        for ds in datasets:
            layout = tuple(str(p) for p in resolve.coord_values(ds[schema.POLARIZATION]))
            if layout not in schema.STORED_POLARIZATIONS:
                raise SelectionError(
                    f"correlation={selection.correlation!r} leaves the layout {','.join(layout)}"
                    ", which is not supported (keep 1 or 2 parallel hands, the cross hands, or "
                    "all 4)")

    if "uvrange" in parsed:
        specs = parsed["uvrange"]
        datasets = [ds for ds in datasets if resolve.uv_possible(ds, specs)]
        if not datasets:
            raise emptied("uvrange", " (it starts beyond the longest baseline)")
        datasets = [_apply_uvrange(ds, specs) for ds in datasets]
    return datasets


def selection_mask(ds: xr.Dataset, selection: Selection, *,
                   reference_time: float | None = None) -> xr.DataArray:
    """Lazy bool mask of the cells of one partition that ``selection`` selects.

    Meant for the manual flagger (flag where True). It does not check names against the data:
    call :func:`check_selection` on all partitions first to catch typos.

    Parameters
    ----------
    ds : xarray.Dataset
        One canonical partition.
    selection : Selection
    reference_time : float, optional
        MJD seconds whose date completes date-less timerange stamps; pass
        ``first_time(all_partitions)`` so every partition reads ``hh:mm:ss`` the same way.
        Defaults to this partition's first time.

    Returns
    -------
    xarray.DataArray
        bool (time, baseline, frequency, polarization), dask-backed with ``FLAG``'s chunks (one
        chunk if ``FLAG`` is in memory); all False when the partition's field, scan, spw or
        intent is not selected. Building it computes nothing.
    """
    flag = ds[schema.FLAG]
    chunks = flag.chunks if flag.chunks is not None else -1
    parsed = selection._parsed
    selected = all(_ds_matches(ds, selection, p) for p in _PARTITION_PARTS if p in parsed)
    make = da.ones if selected else da.zeros
    mask = xr.DataArray(make(flag.shape, chunks=chunks, dtype=bool), dims=flag.dims,
                        coords=flag.coords, name="SELECTED")
    if not selected:
        return mask
    if "timerange" in parsed and reference_time is None:
        reference_time = first_time([ds])
    for _, dim, dim_mask in _dimension_masks(ds, selection, reference_time):
        mask = mask & xr.DataArray(dim_mask, dims=dim)
    if "uvrange" in parsed:
        mask = mask & resolve.uv_mask(ds, parsed["uvrange"])
    return mask.transpose(*flag.dims).rename("SELECTED")


__all__ = [
    "Selection", "select", "selection_mask", "flag_outside_uv", "check_selection", "matches_partition",
    "first_time",
]
