"""Subtract and dynamic spectra on canonical datasets (xr.Dataset -> xr.Dataset, lazy); the
predict is :func:`radiocal.model.dataset.predict_model`."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil

import dask
import dask.array as da
import numpy as np
import xarray as xr

from radiocal import nanstats
from radiocal.astro import BOLTZMANN, JANSKY, PARSEC, SOLAR_RADIUS, SPEED_OF_LIGHT
from radiocal.dynspec import graph, kernels
from radiocal.dynspec.config import DynspecConfig
from radiocal.dynspec.products import product_matrix, withheld_products
from radiocal.errors import InputError, OutputError, OutputExistsError, SelectionError
from radiocal.store import schema
from radiocal.select.selection import Selection, selection_mask
from radiocal.model.dataset import dask_backed, predict_model
from radiocal.model.skymodel import read_skymodel

# Attributes a dataset carries after subtract_model, so later steps can say what they used.
ATTR_MODEL_SUBTRACTED = "model_subtracted"
ATTR_SUBTRACTED_FROM = "model_subtracted_from"

RATIO = "V_over_I"  # "V/I"; a slash cannot name a zarr array
CELL_FLAG = "cell_flag"
CHANNEL_FLAG = "channel_flag"
CHANNEL_NOISE = "channel_noise"
N_BASELINES = "n_baselines"
SCAN_COORD = "scan_number"
LIGHTCURVE_SUFFIX = "_lightcurve"
ERR_SUFFIX = "_err"
# Until the spectrum is stitched, its products lie along one axis (see partition_spectrum).
PRODUCT = "product"
MEAN = "spectrum_mean"
ERR = "spectrum_err"

log = logging.getLogger(__name__)


def cross_hand_calibrated(ds: xr.Dataset) -> bool:
    """Whether the data's cross-hand phase was calibrated (``polarization_calibration``)."""
    return bool(dict(ds.attrs.get(schema.ATTR_POLCAL) or {}).get("cross_hand_phase"))


def matches_field(ds: xr.Dataset, field: str) -> bool:
    """True when ``field`` (a name or an id; empty matches all) names this partition's field."""
    return names_field(ds.attrs, field)


def names_field(attrs: dict, field: str) -> bool:
    """:func:`matches_field` of a partition with attributes ``attrs`` (a store's, before opening
    it: :func:`radiocal.store.zarr_store.partition_attrs`)."""
    if not field:
        return True
    return field == str(attrs.get(schema.ATTR_FIELD_NAME)) or field == str(attrs.get(schema.ATTR_FIELD_ID))


def source_variable(ds: xr.Dataset) -> str:
    """The visibilities to use: calibrated when present, else the raw data."""
    return schema.VISIBILITY_CORRECTED if schema.VISIBILITY_CORRECTED in ds else schema.VISIBILITY


def subtract_model(ds: xr.Dataset) -> xr.Dataset:
    """uvsub: ``VISIBILITY_CORRECTED = (VISIBILITY_CORRECTED or VISIBILITY) - VISIBILITY_MODEL``.

    Returns
    -------
    xr.Dataset
        Lazy; attribute ``model_subtracted_from`` names the variable the model came off.
    """
    if schema.VISIBILITY_MODEL not in ds:
        raise InputError(f"partition {ds.attrs.get(schema.ATTR_PARTITION, '?')}: no VISIBILITY_MODEL to subtract")
    if ds.attrs.get(ATTR_MODEL_SUBTRACTED):
        raise InputError(f"partition {ds.attrs.get(schema.ATTR_PARTITION, '?')}: model already subtracted")
    ds = dask_backed(ds)
    base = source_variable(ds)
    model = ds[schema.VISIBILITY_MODEL].data.rechunk(ds[base].data.chunks)
    residual = graph.subtract(ds[base].data, model)
    out = ds.assign({schema.VISIBILITY_CORRECTED: (ds[base].dims, residual)})
    out.attrs.update({ATTR_MODEL_SUBTRACTED: True, ATTR_SUBTRACTED_FROM: base})
    return out


def baseline_keep(ds: xr.Dataset, exclude=()) -> np.ndarray:
    """(baseline,) bool: cross-correlations not excluded by ``'A&B'`` or ``'A'`` antenna names."""
    names = [str(n) for n in ds[schema.ANTENNA_NAME].values]
    a1 = ds[schema.BASELINE_ANTENNA1].values
    a2 = ds[schema.BASELINE_ANTENNA2].values
    keep = a1 != a2
    for spec in exclude:
        parts = [p.strip() for p in spec.split("&")]
        for p in parts:
            if p not in names:
                raise SelectionError(f"exclude baseline {spec!r}: no antenna {p!r} (have {', '.join(names)})")
        idx = [names.index(p) for p in parts]
        if len(idx) == 1:
            keep &= (a1 != idx[0]) & (a2 != idx[0])
        elif len(idx) == 2:
            keep &= ~(((a1 == idx[0]) & (a2 == idx[1])) | ((a1 == idx[1]) & (a2 == idx[0])))
        else:
            raise SelectionError(f"exclude baseline {spec!r}: expected 'ANT' or 'ANT1&ANT2'")
    return keep


def _selection_flags(ds: xr.Dataset, var: str, config: DynspecConfig) -> xr.DataArray:
    """FLAG plus everything the configuration leaves out (lazy, canonical dims)."""
    dims = ds[var].dims
    flag = ds[schema.FLAG]
    keep = xr.DataArray(baseline_keep(ds, config.exclude_baselines), dims=(schema.BASELINE,))
    if not keep.any():
        raise SelectionError("no baselines left after exclusions")
    if not keep.all():    # an array operation costs ~1 ms a partition to build; most keep all
        flag = flag | ~keep
    if config.uvrange:
        # CASA uvrange semantics (m, km, lambda, klambda, Mlambda) from the selection module.
        flag = flag | ~selection_mask(ds, Selection(uvrange=config.uvrange))
    return flag.transpose(*dims)


# Rows of a dynamic spectrum per chunk (in memory and in its zarr).
SPECTRUM_TIME_CHUNK = 4096


def _block_mean(values: np.ndarray, size: int) -> np.ndarray:
    n = values.shape[0]
    return np.array([values[i:i + size].mean() for i in range(0, n, size)], dtype=np.float64)


def partition_stats(ds: xr.Dataset, config: DynspecConfig) -> da.Array:
    """The products' (mean, error, count) of one partition over baselines, lazy: (time,
    frequency, product, 3) float64, the products of :func:`partition_spectrum`."""
    ds = dask_backed(ds)
    var = source_variable(ds)
    vis = ds[var]
    if (config.subtract_model or config.skymodel) and not ds.attrs.get(ATTR_MODEL_SUBTRACTED):
        vis = subtract_model(ds)[schema.VISIBILITY_CORRECTED]
    _, coeffs = product_matrix(ds[schema.POLARIZATION].values, cross_hand_calibrated(ds))
    flag = _selection_flags(ds, var, config)
    return graph.baseline_average(
        vis.data, flag.data, ds[schema.WEIGHT].transpose(*vis.dims).data, coeffs,
        config.timeavg, config.freqavg,
    )


def partition_spectrum(ds: xr.Dataset, config: DynspecConfig, stats: da.Array | None = None) -> xr.Dataset:
    """Dynamic spectrum of one partition: products averaged over baselines, lazy.

    ``stats``: the partition's :func:`partition_stats` when already made (perhaps computed).

    Returns
    -------
    xr.Dataset
        ``spectrum_mean`` and ``spectrum_err`` on (time, frequency, product) float64 (the
        products: ``RR``, ``LL``, ``I``, ``V``, ...), ``n_baselines`` (time, frequency),
        coordinate ``scan_number``. The products stay on one axis until the whole spectrum is
        stitched (:func:`dynamic_spectrum` splits them): one task per chunk for all of them.
    """
    ds = dask_backed(ds)
    if stats is None:
        stats = partition_stats(ds, config)
    names, _ = product_matrix(ds[schema.POLARIZATION].values, cross_hand_calibrated(ds))
    times = _block_mean(ds[schema.TIME].values, config.timeavg)
    freqs = _block_mean(ds[schema.FREQUENCY].values, config.freqavg)
    dims = (schema.TIME, schema.FREQUENCY)
    count_index = names.index("I") if "I" in names else 0
    scan = int(ds.attrs.get(schema.ATTR_SCAN, -1))
    return xr.Dataset(
        {MEAN: (dims + (PRODUCT,), stats[..., kernels.STAT_MEAN]),
         ERR: (dims + (PRODUCT,), stats[..., kernels.STAT_ERR]),
         N_BASELINES: (dims, stats[:, :, count_index, kernels.STAT_COUNT].astype(np.int32))},
        coords={schema.TIME: times, schema.FREQUENCY: freqs, PRODUCT: list(names),
                SCAN_COORD: (schema.TIME, np.full(times.size, scan))},
    )


def _split_products(ds: xr.Dataset) -> xr.Dataset:
    """``spectrum_mean`` / ``spectrum_err`` (time, frequency, product) -> a variable ``P`` and
    ``P_err`` (time, frequency) per product ``P``."""
    data = {}
    for index, name in enumerate(ds[PRODUCT].values.tolist()):
        data[name] = ds[MEAN][..., index].drop_vars(PRODUCT)
        data[name + ERR_SUFFIX] = ds[ERR][..., index].drop_vars(PRODUCT)
    return ds.drop_vars([MEAN, ERR, PRODUCT]).assign(data)


def _insert_gaps(ds: xr.Dataset, step: float, max_rows: int) -> xr.Dataset:
    """Reindex time so a gap longer than 1.5 steps becomes blank (NaN) rows."""
    times = ds[schema.TIME].values
    if times.size < 2 or not step > 0:
        return ds
    pieces = [times[:1]]
    for before, after in zip(times[:-1], times[1:]):
        missing = int(round((after - before) / step)) - 1
        if after - before > 1.5 * step and missing > 0 and max_rows > 0:
            rows = min(missing, max_rows)
            pieces.append(before + (after - before) * np.arange(1, rows + 1) / (rows + 1))
        pieces.append(np.array([after]))
    grid = np.concatenate(pieces)
    if grid.size == times.size:
        return ds
    scans = ds[SCAN_COORD].values
    out = ds.drop_vars(SCAN_COORD).reindex({schema.TIME: grid})
    scan_grid = np.full(grid.size, -1, dtype=scans.dtype)
    scan_grid[np.searchsorted(grid, times)] = scans
    return out.assign_coords({SCAN_COORD: (schema.TIME, scan_grid)})


def _time_step(partitions, config: DynspecConfig) -> float:
    diffs = [np.diff(p[schema.TIME].values) for p in partitions if p.sizes[schema.TIME] > 1]
    diffs = np.concatenate(diffs) if diffs else np.array([])
    if diffs.size:
        return float(np.median(diffs)) * config.timeavg
    widths = [p[schema.INTEGRATION_TIME].values for p in partitions if schema.INTEGRATION_TIME in p.coords]
    return float(np.median(np.concatenate(widths))) * config.timeavg if widths else 0.0


def select_field(datasets, field: str) -> list[xr.Dataset]:
    """Partitions of one field, or a SelectionError that lists the fields there are."""
    chosen = [dask_backed(ds) for ds in datasets if matches_field(ds, field)]
    if not chosen:
        names = sorted({str(ds.attrs.get(schema.ATTR_FIELD_NAME)) for ds in datasets})
        raise SelectionError(f"no partition of field {field!r} (fields: {', '.join(names) or 'none'})")
    fields = {ds.attrs.get(schema.ATTR_FIELD_NAME) for ds in chosen}
    if len(fields) > 1:
        raise SelectionError(f"field {field!r} is ambiguous: {', '.join(sorted(map(str, fields)))}")
    return chosen


def _time_blocks(partitions) -> list[list]:
    """Partitions grouped by overlapping time ranges, blocks in time order.

    An integration observed in several spectral windows (or observations, or arrays) is one
    block whatever scan numbers its partitions carry; blocks are disjoint in time.
    """
    spans = sorted(((float(p[schema.TIME].values.min()), float(p[schema.TIME].values.max()), k)
                    for k, p in enumerate(partitions) if p.sizes[schema.TIME]), key=lambda s: s[:2])
    blocks, end = [], -math.inf
    for t0, t1, k in spans:
        if t0 > end:
            blocks.append([])
        blocks[-1].append(partitions[k])
        end = max(end, t1)
    return blocks


def _snap_times(pieces: list[xr.Dataset]) -> list[xr.Dataset]:
    """Give times that differ by less than 1% of the shortest step (rounding in a concatenated
    MS) one value, so that the same integration in two spectral windows is one row."""
    times = np.unique(np.concatenate([p[schema.TIME].values for p in pieces]))
    steps = [np.diff(p[schema.TIME].values) for p in pieces if p.sizes[schema.TIME] > 1]
    step = min((s.min() for s in steps), default=0.0)
    tol = min(1e-3, 0.01 * step) if step > 0 else 1e-3
    keep = np.concatenate([[True], np.diff(times) >= tol])
    grid = times[keep]
    out = []
    for p in pieces:
        snapped = grid[np.searchsorted(grid, p[schema.TIME].values, side="right") - 1]
        out.append(p.assign_coords({schema.TIME: snapped}) if not np.array_equal(snapped, p[schema.TIME].values) else p)
    return out


def _merge_layers(layers: list[xr.Dataset]) -> xr.Dataset:
    """Cells measured in several layers (on one grid): baseline-count weighted means.

    Weights are fixed numbers (the baselines that went into each cell), so the error of the
    mean follows from the layers' errors exactly: ``sqrt(sum (w e)^2) / sum w``. A product a
    layer lacks is NaN there (the outer join of the products) and has no weight.
    """
    layers = xr.align(*layers, join="outer", exclude=[schema.TIME, schema.FREQUENCY])
    counts = [layer[N_BASELINES].fillna(0) for layer in layers]
    total = wsum = wvar = 0
    for layer, n in zip(layers, counts):
        value, err = layer[MEAN], layer[ERR]
        w = xr.where(np.isfinite(value), np.maximum(n, 1), 0)
        total = total + w * value.fillna(0)
        wsum = wsum + w
        wvar = wvar + xr.where(w > 0, (w * err) ** 2, 0)
    usable = wsum.where(wsum > 0)
    dims = (schema.TIME, schema.FREQUENCY, PRODUCT)
    return xr.Dataset({N_BASELINES: sum(counts).astype(np.int32),
                       MEAN: (total / usable).transpose(*dims),
                       ERR: (np.sqrt(wvar) / usable).transpose(*dims)})


def _stack(pieces: list[xr.Dataset], dim: str) -> xr.Dataset:
    """Pieces alike in their other dimension, combined along ``dim``.

    Pieces with disjoint ``dim`` values are concatenated; where several measure the same cell
    (overlapping spectral windows, the same times in two observations) they are averaged.
    """
    layers: list[tuple[set, list]] = []
    for piece in pieces:
        values = set(piece[dim].values.tolist())
        for seen, members in layers:
            if not seen & values:
                seen |= values
                members.append(piece)
                break
        else:
            layers.append((values, [piece]))
    stacked = [xr.concat(members, dim=dim, join="outer", data_vars="all", coords="minimal",
                         compat="override").sortby(dim) if len(members) > 1 else members[0]
               for _, members in layers]
    if len(stacked) == 1:
        return stacked[0]
    grid = np.array(sorted(set().union(*(seen for seen, _ in layers))))
    return _merge_layers([layer.reindex({dim: grid}) for layer in stacked])


def _combine_block(pieces: list[xr.Dataset]) -> xr.Dataset:
    """Spectra of partitions overlapping in time -> one spectrum on their times and frequencies.

    Partitions with the same channels are joined along time first, then the spectral setups
    side by side along frequency; ids (scan, spectral window, observation) play no part.
    """
    scans = [(p[schema.TIME].values, int(p[SCAN_COORD].values[0])) for p in pieces]
    pieces = _snap_times([p.drop_vars(SCAN_COORD) for p in pieces])
    setups: dict[tuple, list] = {}
    for p in pieces:
        setups.setdefault(tuple(p[schema.FREQUENCY].values.tolist()), []).append(p)
    per_setup = [_stack(members, schema.TIME) for members in setups.values()]
    times = np.unique(np.concatenate([p[schema.TIME].values for p in per_setup]))
    per_setup = [p if np.array_equal(p[schema.TIME].values, times) else p.reindex({schema.TIME: times})
                 for p in per_setup]
    merged = _stack(per_setup, schema.FREQUENCY)
    # A spectral window without a row at some time contributes no baselines there (not NaN).
    merged[N_BASELINES] = merged[N_BASELINES].fillna(0).astype(np.int32)
    # Scan number of a row: the lowest of the partitions observing then (-1 marks gaps later).
    scan = np.full(times.size, np.iinfo(np.int64).max)
    for piece, (_, number) in zip(pieces, scans):
        rows = np.searchsorted(times, piece[schema.TIME].values)
        scan[rows] = np.minimum(scan[rows], number)
    return merged.assign_coords({SCAN_COORD: (schema.TIME, scan)})


def block_spectra(datasets, config: DynspecConfig, computed: bool = False) -> list[xr.Dataset]:
    """Dynamic spectra of the target field's time blocks (:func:`_time_blocks`), in time order;
    each holds every spectral window observing in it side by side.

    ``computed``: the partitions' sums over baselines are computed first, in one pass (a task
    per chunk), and the spectra are built on them, small arrays in memory chunked as before.
    """
    partitions = select_field(datasets, config.field)
    if config.skymodel:
        sky = read_skymodel(config.skymodel)
        partitions = [predict_model(ds, sky, config.phase_convention) for ds in partitions]
    blocks = _time_blocks(partitions)
    stats = [[partition_stats(ds, config) for ds in block] for block in blocks]
    if computed:
        values = iter(dask.compute(*(s for block in stats for s in block)))
        stats = [[da.from_array(next(values), chunks=s.chunks) for s in block] for block in stats]
    spectra = []
    for block, sums in zip(blocks, stats):
        pieces = [partition_spectrum(ds, config, s) for ds, s in zip(block, sums)]
        spectra.append(_combine_block(pieces) if len(pieces) > 1 else pieces[0])
    return spectra


def dynamic_spectrum(datasets, config: DynspecConfig, computed: bool = False) -> xr.Dataset:
    """The target's dynamic spectrum over the whole observation (lazy).

    Spectra of time blocks are stitched along time; gaps between scans stay as blank (NaN) rows. Adds
    ``V/I`` and its error, blanks channels whose typical error is above ``max_channel_noise``
    times the band's (``channel_flag``, ``channel_noise``), applies clip and polarisation masks
    (``cell_flag``, which includes the blanked channels), converts to
    brightness temperature when asked, and adds band-averaged light curves ``P_lightcurve``.

    Parameters
    ----------
    datasets : list of canonical partitions (any fields; ``config.field`` picks the target)
    config : DynspecConfig
    computed : bool
        Compute the sums over baselines now (:func:`block_spectra`); what is left is the
        spectrum's own small arrays (:func:`write_dynspec` with ``here=True``).

    Returns
    -------
    xr.Dataset on (time, frequency): products, ``*_err``, ``n_baselines``, ``cell_flag``, and on
    (time): ``*_lightcurve`` and errors. Attributes record the field, phase centre, data column,
    units and averaging.
    """
    partitions = select_field(datasets, config.field)
    first = partitions[0]
    var = source_variable(first)
    withheld = sorted({p for ds in partitions if not cross_hand_calibrated(ds)
                       for p in withheld_products(ds[schema.POLARIZATION].values)})
    if withheld:
        basis = schema.feed_basis(first[schema.POLARIZATION].values)
        log.info("dynspec: Stokes %s not written: the cross-hand (%s) phase of these %s-feed "
                 "data is not calibrated (calibrate with a polarised calibrator: 3C286, 3C138)",
                 ", ".join(withheld), "X-Y" if basis == "linear" else "R-L", basis)
    spectra = block_spectra(partitions, config, computed)
    ds = xr.concat(spectra, dim=schema.TIME, join="outer", data_vars="all", coords="minimal",
                   compat="override") if len(spectra) > 1 else spectra[0]
    # From here on every array is small (time x frequency): chunks of many scans' rows keep the
    # few dozen derived products from becoming thousands of tiny tasks.
    chunks = {schema.TIME: SPECTRUM_TIME_CHUNK, schema.FREQUENCY: -1, PRODUCT: -1}
    ds = ds.assign({name: var.chunk({d: chunks[d] for d in var.dims})
                    for name, var in ds.data_vars.items()})
    ds = ds.sortby(schema.TIME)
    ds = _insert_gaps(ds, _time_step(partitions, config), config.max_gap_rows)
    ds = _split_products(ds)
    products = [v for v in ds.data_vars if v not in (N_BASELINES,) and not v.endswith(ERR_SUFFIX)]
    ds = _mask_noisy_channels(ds, products, config)
    if "I" in ds and "V" in ds:
        ratio = ds["V"] / ds["I"].where(ds["I"] != 0)
        ds[RATIO] = ratio
        ds[RATIO + ERR_SUFFIX] = np.sqrt(ds["V" + ERR_SUFFIX] ** 2 + ratio**2 * ds["I" + ERR_SUFFIX] ** 2) / abs(ds["I"])
    ds = _apply_cell_flags(ds, config)
    unit = "Jy"
    if config.brightness_temperature:
        unit = "K"
        scale = (JANSKY * SPEED_OF_LIGHT**2 * (config.tb_distance_pc * PARSEC) ** 2
                 / (2 * BOLTZMANN * ds[schema.FREQUENCY] ** 2 * math.pi * (config.tb_radius_rsun * SOLAR_RADIUS) ** 2))
        for name in products:
            ds[name] = ds[name] * scale
            ds[name + ERR_SUFFIX] = ds[name + ERR_SUFFIX] * scale
    ds = _add_light_curves(ds, products)
    for name in list(ds.data_vars):
        base = name.removesuffix(ERR_SUFFIX).removesuffix(LIGHTCURVE_SUFFIX)
        if base in products:
            ds[name].attrs["units"] = unit
        elif base == RATIO:
            ds[name].attrs["units"] = "1"
    ds[N_BASELINES].attrs["long_name"] = "baselines contributing to each cell"
    ds[schema.TIME].attrs.update({"units": "s", "long_name": "MJD seconds (UTC), as in the MS TIME column"})
    ds[schema.FREQUENCY].attrs["units"] = "Hz"
    ds.attrs.update({
        "field_name": str(first.attrs.get(schema.ATTR_FIELD_NAME, "")),
        "field_id": int(first.attrs.get(schema.ATTR_FIELD_ID, -1)),
        "phase_center": [float(x) for x in first.attrs.get(schema.ATTR_PHASE_CENTER, [math.nan, math.nan])],
        "phase_center_units": "rad (J2000 ra, dec)",
        "telescope": str(first.attrs.get(schema.ATTR_TELESCOPE, "")),
        "data_column": var,
        "model_subtracted": bool(config.skymodel or config.subtract_model or first.attrs.get(ATTR_MODEL_SUBTRACTED)),
        "skymodel": config.skymodel,
        "products": products + ([RATIO] if RATIO in ds else []),
        "units": unit,
        "timeavg": config.timeavg,
        "freqavg": config.freqavg,
        "uvrange": config.uvrange,
        "exclude_baselines": list(config.exclude_baselines),
        "max_channel_noise": config.max_channel_noise,
        "stokes_convention": ("I = (RR+LL)/2, V = (RR-LL)/2; linear feeds: I = (XX+YY)/2, "
                              "V = -i(XY-YX)/2 (IAU/CASA); real part of the baseline mean"),
        "withheld_products": withheld,
        "brightness_temperature": (
            {"distance_pc": config.tb_distance_pc, "radius_rsun": config.tb_radius_rsun}
            if config.brightness_temperature else {}
        ),
        "partitions": [str(p.attrs.get(schema.ATTR_PARTITION, "")) for p in partitions],
    })
    return ds


# Errors below this fraction of the values are float32 rounding, not noise (noise-free data).
_ROUNDING = 1e-5


def _relative_channel_noise(value: np.ndarray, err: np.ndarray) -> np.ndarray:
    """(time, frequency) values and errors -> (frequency,) median error over time relative to
    the median of that over channels; NaN where the errors are at rounding level."""
    per_channel = nanstats.nanmedian(err, axis=0)      # all-blank channels stay NaN
    typical = nanstats.nanmedian(per_channel)
    if not typical > _ROUNDING * nanstats.nanmedian(np.abs(value)):
        return np.full(per_channel.shape, np.nan)
    return per_channel / typical


def _mask_noisy_channels(ds: xr.Dataset, products: list[str], config: DynspecConfig) -> xr.Dataset:
    """Blank whole channels whose typical error is far above the band's typical error.

    The noise of a channel is the median over time of its measured error (Stokes I, else the
    first product), relative to the median of that over channels: ``channel_noise``
    (frequency). A channel above ``config.max_channel_noise`` carries less than
    ``1 / max_channel_noise**2`` of a typical channel's information (for instance where the
    bandpass rolls off at the band edges and calibration lifts the noise); its cells are
    blanked in every product and marked in ``channel_flag`` (frequency). The visibilities are
    not touched. Errors at float32 rounding level (noise-free data) measure nothing: no channel
    is blanked then (``channel_noise`` NaN).
    """
    reference = "I" if "I" in products else products[0]
    value, err = ds[reference], ds[reference + ERR_SUFFIX]
    if isinstance(err.data, da.Array):
        value = value.chunk({schema.TIME: -1, schema.FREQUENCY: -1})
        err = err.chunk({schema.TIME: -1, schema.FREQUENCY: -1})
    core = [schema.TIME, schema.FREQUENCY]
    noise = xr.apply_ufunc(_relative_channel_noise, value, err, input_core_dims=[core, core],
                           output_core_dims=[[schema.FREQUENCY]], dask="parallelized", output_dtypes=[np.float64])
    bad = (noise > config.max_channel_noise) if config.max_channel_noise > 0 else xr.zeros_like(noise, dtype=bool)
    for name in ds.data_vars:
        if name != N_BASELINES and set(ds[name].dims) == {schema.TIME, schema.FREQUENCY}:
            ds[name] = ds[name].where(~bad)
    ds[CHANNEL_NOISE] = noise
    ds[CHANNEL_NOISE].attrs.update({"units": "1", "long_name": (
        f"median error of {reference} over time, relative to the median over channels")})
    ds[CHANNEL_FLAG] = bad
    ds[CHANNEL_FLAG].attrs["long_name"] = f"channel blanked: channel_noise above {config.max_channel_noise}"
    return ds


def _apply_cell_flags(ds: xr.Dataset, config: DynspecConfig) -> xr.Dataset:
    """Blank cells beyond clip levels or outside the expected sense/fraction of circular pol."""
    bad = xr.zeros_like(ds[N_BASELINES], dtype=bool)
    if config.clip_i and "I" in ds:
        bad = bad | (abs(ds["I"]) > config.clip_i)
    if config.clip_v and "V" in ds:
        bad = bad | (abs(ds["V"]) > config.clip_v)
    if "V" in ds and config.sense:
        bad = bad | ((ds["V"] <= 0) if config.sense == "+" else (ds["V"] >= 0))
    if config.min_fraction and RATIO in ds:
        # A cell with I <= 0 has no meaningful fraction: it cannot pass the cut.
        bad = bad | ~((abs(ds[RATIO]) >= config.min_fraction) & (ds["I"] > 0))
    if (config.sense or config.min_fraction) and "V" not in ds:
        raise InputError("sense / min_fraction masks need Stokes V (both parallel hands)")
    for name in ds.data_vars:
        if name != N_BASELINES and set(ds[name].dims) == {schema.TIME, schema.FREQUENCY}:
            ds[name] = ds[name].where(~bad)
    if CHANNEL_FLAG in ds:
        bad = bad | ds[CHANNEL_FLAG]
    ds[CELL_FLAG] = bad.transpose(*ds[N_BASELINES].dims)
    ds[CELL_FLAG].attrs["long_name"] = "cell blanked by clip, polarisation or channel-noise masks"
    return ds


def _add_light_curves(ds: xr.Dataset, products: list[str]) -> xr.Dataset:
    """Band-averaged light curves: inverse-variance mean over frequency of each product."""
    for name in products:
        value, err = ds[name], ds[name + ERR_SUFFIX]
        usable = np.isfinite(value) & np.isfinite(err) & (err > 0)
        weight = (1.0 / err.where(usable) ** 2).fillna(0.0)
        total = weight.sum(schema.FREQUENCY)
        ds[name + LIGHTCURVE_SUFFIX] = (weight * value.fillna(0)).sum(schema.FREQUENCY) / total.where(total > 0)
        ds[name + LIGHTCURVE_SUFFIX + ERR_SUFFIX] = 1.0 / np.sqrt(total.where(total > 0))
    if "I" in products and "V" in products:
        i_lc, v_lc = ds["I" + LIGHTCURVE_SUFFIX], ds["V" + LIGHTCURVE_SUFFIX]
        ratio = v_lc / i_lc.where(i_lc != 0)
        ds[RATIO + LIGHTCURVE_SUFFIX] = ratio
        ds[RATIO + LIGHTCURVE_SUFFIX + ERR_SUFFIX] = np.sqrt(
            ds["V" + LIGHTCURVE_SUFFIX + ERR_SUFFIX] ** 2 + ratio**2 * ds["I" + LIGHTCURVE_SUFFIX + ERR_SUFFIX] ** 2
        ) / abs(i_lc)
    return ds


def write_dynspec(spectrum: xr.Dataset, path, overwrite: bool = False, here: bool = False) -> str:
    """Compute a dynamic spectrum and write it to zarr (read it back with :func:`open_dynspec`).

    ``here``: compute it in this thread, not on the engine: a spectrum whose sums over baselines
    are computed (``dynamic_spectrum(..., computed=True)``) is a few hundred tasks on arrays of a
    few kB, each of which would cost an engine's cluster more to schedule than to run.
    """
    path = os.fspath(path)
    if os.path.exists(path):
        if not overwrite:
            raise OutputExistsError(f"{path}: already exists (use --overwrite to replace it)")
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    # zarr needs regular chunks; per-scan pieces are not, and the product is small.
    # Encodings of a spectrum read back from any zarr would pin its old layout: start afresh.
    spectrum = spectrum.drop_encoding().chunk({schema.TIME: SPECTRUM_TIME_CHUNK,
                                               schema.FREQUENCY: -1})
    try:
        with dask.config.set(scheduler="sync") if here else contextlib.nullcontext():
            spectrum.to_zarr(path, mode="w", consolidated=True, zarr_format=2)
    except OSError as err:
        if err.filename is not None:
            raise
        # no space, a file size limit: the OS names no file, but this product is what failed
        shutil.rmtree(path, ignore_errors=True)
        raise OutputError.writing(path, err) from None
    return path


def open_dynspec(path) -> xr.Dataset:
    """Open a dynamic spectrum written by :func:`write_dynspec`."""
    path = os.fspath(path)
    try:
        spectrum = xr.open_zarr(path, consolidated=True, zarr_format=2)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise InputError(f"{path}: not a dynamic spectrum zarr ({err})") from None
    if "products" not in spectrum.attrs:
        raise InputError(f"{path}: not a dynamic spectrum (no products; `radiocal dynspec` makes one)")
    return spectrum
