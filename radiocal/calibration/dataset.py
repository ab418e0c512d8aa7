"""Calibration on canonical datasets: solve G/T/B/K tables and apply chains of tables.

``solve(datasets, "G", SolveOptions(solint="int", ...)) -> table`` (a list of per-spw datasets in
the layout of :mod:`radiocal.store.caltables`) and ``apply(datasets, [ApplyTable(table, ...), ...])
-> datasets``.
Solving computes (a table is a small reduction of the data; :func:`solve_graph` is the lazy part);
applying is lazy.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr

from radiocal.calibration import graph
from radiocal.calibration import kernels as K
from radiocal.calibration.config import SolveOptions
from radiocal.calibration.intervals import assign_cells, parse_combine, parse_solint
from radiocal.calibration.jones import chain_in_blocks, data_hands
from radiocal.calibration.models import model_visibilities
from radiocal.errors import ConfigError, SelectionError
from radiocal.store import caltables as C
from radiocal.store import schema as S


@dataclass(frozen=True)
class SolveGraph:
    """The lazy part of a solve: packed solutions plus what is needed to make a table."""

    packed: da.Array          # (cell, frequency cell, antenna, hand, 5)
    cells: object             # CellAssignment
    datasets: tuple
    hands: tuple
    fcells: int


def automatic_refant(refant) -> bool:
    """Whether ``refant`` names no antenna ("" or None): any antenna may be the reference."""
    return refant is None or (isinstance(refant, str) and not refant.strip())


def parse_refant(ds: xr.Dataset, refant) -> np.ndarray:
    """Antenna indices from ``"ea05,ea06"`` (preference order); empty means automatic."""
    names = [str(n) for n in ds[S.ANTENNA_NAME].values]
    if automatic_refant(refant):
        return np.arange(len(names))
    items = refant.split(",") if isinstance(refant, str) else list(refant)
    out = []
    for item in (str(i).strip() for i in items):
        if item in names:
            out.append(names.index(item))
        elif item.isdigit() and int(item) < len(names):
            out.append(int(item))
        else:
            raise ConfigError(f"refant {item!r} is not an antenna of the data "
                              f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
    # fall back on every other antenna, in index order, when all preferred ones are flagged
    return np.array(out + [a for a in range(len(names)) if a not in out], dtype=np.int64)


def solve_graph(datasets, cal_type, options: SolveOptions = SolveOptions(), *, model=None,
                prior=()) -> SolveGraph:
    """Build the (lazy) solve of one spectral-window group; see :func:`solve`."""
    datasets = list(datasets)
    if cal_type not in C.CAL_TYPES:
        raise ConfigError(f"unknown calibration type {cal_type!r} (choose G, T, B or K)")
    if options.calmode not in K.CALMODES:
        raise ConfigError(f"calmode {options.calmode!r} is not one of {', '.join(K.CALMODES)}")
    first = datasets[0]
    hands, _, _, parallel = data_hands(first)
    nchan = first.sizes[S.FREQUENCY]
    for ds in datasets[1:]:
        if data_hands(ds)[0] != hands:
            raise ConfigError("datasets of one solve must have the same correlations")
        if cal_type in ("B", "K") and ds.sizes[S.FREQUENCY] != nchan:
            raise ConfigError(f"{cal_type} solve: partitions differ in channel count")
    cells = assign_cells(datasets, options.solint, options.combine)
    if cal_type == "T":
        out_hands = ("I",)
        corr_out = np.where(parallel, 0, -1)
    else:
        out_hands = hands
        corr_out = np.where(parallel, np.array([hands.index(p[0]) for p in _pols(first)]), -1)
    per_channel = cal_type in ("B", "K")
    nant = first.sizes[S.ANTENNA]
    ant1 = first[S.BASELINE_ANTENNA1].values
    ant2 = first[S.BASELINE_ANTENNA2].values
    stats, piece_cells = [], []
    for ds, cell_of_time in zip(datasets, cells.cell_of_time):
        vis = ds[S.VISIBILITY].data
        _, hand1, hand2, _ = data_hands(ds)
        if prior:
            # a flagged prior solution makes its samples unusable: zero model -> zero weight;
            # made inside the accumulate tasks when they are in the data's chunks
            recipe = chain_in_blocks(ds, prior, flagged=0)
            jones = graph.made_in_blocks(
                graph.from_recipe(recipe, "tafh", {"a": nant, "h": len(hands)}, np.complex128),
                recipe)
        else:
            jones = da.ones((ds.sizes[S.TIME], nant, nchan, len(hands)), dtype=np.complex64,
                            chunks=(_time_chunks(vis), -1, _freq_chunks(vis), -1))
        s, pc = graph.accumulate(vis, model_visibilities(ds, model), ds[S.WEIGHT].data,
                                 ds[S.FLAG].data, jones, cell_of_time, per_channel,
                                 ant1, ant2, hand1, hand2, corr_out, len(out_hands))
        stats.append(s)
        piece_cells.append(pc)
    mode = graph.MODE_DELAY if cal_type == "K" else K.CALMODES[options.calmode]
    if cal_type == "B":
        mode = K.MODE_AP
    packed = graph.reduce_and_solve(
        stats, piece_cells, ant1, ant2, nant, parse_refant(first, options.refant), mode,
        K.SolveLimits.of(options.minblperant),
        freqs=first[S.FREQUENCY].values, ref_freq=_ref_freq(first))
    return SolveGraph(packed, cells, tuple(datasets), tuple(out_hands),
                      nchan if per_channel else 1)


def solve(datasets, cal_type="G", options: SolveOptions = SolveOptions(), *, model=None,
          prior=()) -> list[xr.Dataset]:
    """Solve a calibration table from canonical datasets.

    Parameters
    ----------
    datasets : list of xarray.Dataset
        Canonical partitions to solve on (select the calibrator's fields first).
    cal_type : {"G", "T", "B", "K"}
        Complex gain per hand, one gain for both hands, bandpass per channel, delay.
    options : SolveOptions
        ``solint``: "int", "inf" or a duration ("60s", "2min", seconds as a number);
        ``combine``: str or sequence of "scan", "spw", "field", "obs", the axes a solution
        interval may span (never another OBSERVATION_ID unless ``"obs"`` is named, CASA's
        rule); ``refant``: reference antenna names in order of preference (``"ea05,ea06"``; the
        first one with a solution in a cell is used, then any other antenna); ``calmode``
        (G and T); ``minsnr``: solutions with a lower SNR are flagged; ``minblperant``:
        antennas with fewer unflagged baselines in a cell are not solved; ``solnorm`` (B):
        scale each antenna's bandpass to unit rms amplitude and zero mean phase.
    model : None, float, FluxModel or "column"
        Source model (:func:`radiocal.calibration.models.model_visibilities`).
    prior : sequence of ApplyTable
        Terms already solved; they corrupt the model rather than divide the data.

    Returns
    -------
    list of xarray.Dataset
        One dataset per spectral window, in memory, with ``solution_counts`` like CASA's
        expected / attempted / succeeded.
    """
    (table,) = solve_jointly([(datasets, cal_type, options, dict(model=model, prior=prior))])
    return table


def solve_jointly(requests) -> list[list[xr.Dataset]]:
    """Several :func:`solve` calls in one pass over the data.

    Parameters
    ----------
    requests : sequence of (datasets, cal_type, SolveOptions, dict of model and prior)
        What :func:`solve` takes. Solves on the same partitions with the same prior (e.g. phases
        at two solution intervals) then read and correct the data once, not once each.

    Returns
    -------
    list of tables, in the order of ``requests``.
    """
    plans = [_plan(datasets, cal_type, options, **data)
             for datasets, cal_type, options, data in requests]
    packed = dask.compute(*[[g.packed for g in graphs] for graphs, _ in plans])
    return [finish(p) for (_, finish), p in zip(plans, packed)]


def _plan(datasets, cal_type="G", options: SolveOptions = SolveOptions(), *, model=None,
          prior=()):
    """The lazy solve graphs of one request and how to turn their results into a table."""
    datasets = list(datasets)
    if not datasets:
        raise SelectionError("nothing to solve on: the selection is empty")
    parse_solint(options.solint)
    combined = parse_combine(options.combine)
    if "spw" in combined and cal_type in ("B", "K"):
        raise ConfigError(f"combine='spw' is not possible for a {cal_type} (per-channel) solve")
    groups: dict = {}
    for ds in datasets:
        key = -1 if "spw" in combined else int(ds.attrs[S.ATTR_SPW_ID])
        groups.setdefault(key, []).append(ds)
    per_group = dataclasses.replace(options, combine=combined)
    graphs = [solve_graph(group, cal_type, per_group, model=model, prior=prior)
              for group in groups.values()]
    params = dict(solint=str(options.solint), combine=",".join(sorted(combined)),
                  calmode=options.calmode, minsnr=options.minsnr,
                  minblperant=options.minblperant, solnorm=options.solnorm)

    def finish(packed):
        return [_table_from_packed(g, p, cal_type, options, params)
                for g, p in zip(graphs, packed)]

    return graphs, finish


def _table_from_packed(g: SolveGraph, packed: np.ndarray, cal_type, options: SolveOptions,
                       params):
    first = g.datasets[0]
    cells = g.cells
    packed = packed.transpose(0, 2, 1, 3, 4)     # -> (time_solution, antenna, frequency, hand)
    snr = packed[..., 2]
    err = packed[..., 3]
    # minsnr is the table's rule on the solver's SNR, applied here (the solver flags only what
    # it could not solve): a flagged gain is 1, a flagged delay keeps its value
    below = ~(snr >= options.minsnr)
    flag = (packed[..., 4] > 0.5) | below
    if cal_type == "K":
        values = packed[..., 0]
    else:
        values = np.where(below, 1.0 + 0j, packed[..., 0] + 1j * packed[..., 1])
        if cal_type == "B" and options.solnorm:
            values = normalise_bandpass(values, flag)
    freqs = first[S.FREQUENCY].values
    widths = (first[S.CHANNEL_WIDTH].values if S.CHANNEL_WIDTH in first.coords
              else np.full(freqs.shape, np.nan))
    if cal_type == "K":
        # a delay table's single "channel" is its phase reference (as CASA's K tables read)
        sol_freq, sol_width = np.array([_ref_freq(first)]), np.array([np.abs(widths).sum()])
    elif packed.shape[2] == 1:
        sol_freq, sol_width = np.array([freqs.mean()]), np.array([np.abs(widths).sum()])
    else:
        sol_freq, sol_width = freqs, widths
    fields = {}
    for ds in g.datasets:
        fields[int(ds.attrs[S.ATTR_FIELD_ID])] = (str(ds.attrs.get(S.ATTR_FIELD_NAME, "")),
                                                  list(ds.attrs.get(S.ATTR_PHASE_CENTER,
                                                                    [0.0, 0.0])))
    field_ids = sorted(fields)
    attempted = err.reshape(len(cells.time), -1).max(axis=1) > 0
    succeeded = (~flag).reshape(len(cells.time), -1).any(axis=1)
    spws = sorted({int(ds.attrs[S.ATTR_SPW_ID]) for ds in g.datasets})
    ref = parse_refant(first, options.refant)
    attrs = {
        S.ATTR_SPW_ID: spws[0],
        "combined_spws": spws,
        S.ATTR_SPW_NAME: str(first.attrs.get(S.ATTR_SPW_NAME, "")),
        S.ATTR_REF_FREQUENCY: float(first.attrs.get(S.ATTR_REF_FREQUENCY, freqs[0])),
        C.ATTR_REFANT: ("" if automatic_refant(options.refant)
                        else str(first[S.ANTENNA_NAME].values[ref[0]])),
        C.ATTR_FIELD_IDS: field_ids,
        C.ATTR_FIELD_NAMES: [fields[f][0] for f in field_ids],
        C.ATTR_FIELD_CENTERS: [fields[f][1] for f in field_ids],
        C.ATTR_COUNTS: {"expected": int(len(cells.time)), "attempted": int(attempted.sum()),
                        "succeeded": int(succeeded.sum())},
        C.ATTR_PARAMS: json.dumps(params),
        S.ATTR_TELESCOPE: str(first.attrs.get(S.ATTR_TELESCOPE, "")),
        S.ATTR_SOURCES: list(first.attrs.get(S.ATTR_SOURCES, [])),
    }
    if cal_type == "K":
        attrs[C.ATTR_DELAY_REF] = _ref_freq(first)
    return C.make_table_dataset(
        cal_type, values, flag, snr, err, time=cells.time, interval=cells.interval,
        field_id=cells.field_id, scan_number=cells.scan_number,
        observation_id=cells.observation_id, frequency=sol_freq,
        channel_width=sol_width, hands=g.hands, antennas=C.antenna_coords(first), attrs=attrs,
        reference_antenna=_used_reference(packed[:, 0, :, :, 5]))


def _used_reference(used) -> np.ndarray:
    """(time_solution,) the reference antenna of each cell: the one used by most of its
    frequency cells and hands (they differ only where the preferred one lacks a solution), -1
    where nothing was solved."""
    out = np.full(used.shape[0], -1, dtype=np.int32)
    for cell, refs in enumerate(used.reshape(used.shape[0], -1).astype(np.int64)):
        refs = refs[refs >= 0]
        if refs.size:
            out[cell] = np.bincount(refs).argmax()
    return out


def normalise_bandpass(values, flag):
    """Scale each (time, antenna, hand) bandpass to unit rms amplitude and zero mean phase
    (circular mean).

    ``values``, ``flag``: (time_solution, antenna, frequency_solution, hand). Flagged channels
    are left out of the averages (CASA's ``solnorm``).
    """
    good = ~flag
    n = good.sum(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.where(good, np.abs(values) ** 2, 0).sum(axis=2, keepdims=True) / n)
        # circular mean: wrapping cannot move it, so normalising twice changes nothing
        unit = np.where(good & (values != 0), values / np.abs(values), 0)
        phase = np.angle(unit.sum(axis=2, keepdims=True))
    scale = np.where(n > 0, rms * np.exp(1j * phase), 1.0)
    scale = np.where(scale == 0, 1.0, scale)
    return np.where(good, values / scale, values)


def _pols(ds):
    return [str(p) for p in ds[S.POLARIZATION].values]


def _ref_freq(ds) -> float:
    freqs = ds[S.FREQUENCY].values
    return float(ds.attrs.get(S.ATTR_REF_FREQUENCY, freqs[0]))


def _time_chunks(array):
    return array.chunks[0] if isinstance(array, da.Array) else -1


def _freq_chunks(array):
    return array.chunks[2] if isinstance(array, da.Array) else -1
