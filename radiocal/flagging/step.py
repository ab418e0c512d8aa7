"""The ``flag`` pipeline step and flagging of a store in place (``radiocal flag``).

Every flagging run first saves the flags it starts from as a flag version, so it can be undone
with ``radiocal flags restore``.
"""

from __future__ import annotations

from dataclasses import replace

import dask
import dask.array as da

from radiocal.engine import numba as jit
from radiocal.registry import register_step
from radiocal.flagging import dataset as fd
from radiocal.flagging import graph
from radiocal.flagging.config import FlagConfig
from radiocal.flagging.strategy import (
    FLAGGED,
    Strategy,
    apply_strategy,
    load_strategy,
)
from radiocal.select.config import SelectionConfig
from radiocal.store import schema as S


def strategy_for(config: FlagConfig, telescope: str | None = None) -> Strategy:
    """The strategy ``config`` asks for on ``telescope``'s data: its propagation choice and its
    bad antennas (a manual flagger first) applied."""
    strategy = load_strategy(config.strategy, telescope)
    if config.propagate_correlations is not None:
        strategy = replace(strategy, propagate_correlations=config.propagate_correlations)
    bad = config.antennas()
    if bad:
        # a manual flagger first: the data-driven flaggers then never see the bad antennas
        strategy = replace(strategy, flaggers=(("manual", SelectionConfig(antenna=",".join(bad))),)
                           + strategy.flaggers)
    return strategy


def per_telescope(make):
    """``make(telescope) -> Strategy`` called once per telescope (it logs its choice)."""
    made = {}

    def pick(telescope):
        if telescope not in made:
            made[telescope] = make(telescope)
        return made[telescope]
    return pick


def flag_datasets(datasets, strategy, selection=None):
    """Apply ``strategy`` to partitions, lazily, optionally only inside ``selection``.

    Parameters
    ----------
    datasets : list of xarray.Dataset
    strategy : Strategy, or callable
        A callable is given each partition's telescope (TELESCOPE_NAME) and returns its strategy
        (see :func:`per_telescope`).
    selection : radiocal.select.selection.Selection, optional
        Flags change only where the selection selects; unselected partitions pass unchanged.

    Returns
    -------
    datasets : list of xarray.Dataset
    counts : list of dict
        Per partition, lazy counts of newly flagged samples (see ``apply_strategy``).
    """
    reference = None
    if selection is not None:
        from radiocal.select.selection import check_selection, first_time

        check_selection(datasets, selection)
        reference = first_time(datasets)
    out, counts = [], []
    with jit.collect() as kernels:
        for ds in datasets:
            _flag_partition(ds, strategy, selection, reference, out, counts)
    # Cold, the detectors' kernels take ~30 CPU-s each to compile: in parallel processes.
    jit.compile_parallel(kernels)
    return out, counts


def _flag_partition(ds, strategy, selection, reference, out, counts):
    if selection is not None:
        from radiocal.select.selection import matches_partition, selection_mask

        if not matches_partition(
                selection, dict(ds.attrs), fd.small(ds, S.FREQUENCY),
                fd.small(ds, S.CHANNEL_WIDTH) if S.CHANNEL_WIDTH in ds.coords else None):
            out.append(ds)  # a partition outside the selection is not even looked at
            counts.append({})
            return
    chosen = strategy(ds.attrs.get(S.ATTR_TELESCOPE)) if callable(strategy) else strategy
    flagged, count = apply_strategy(ds, chosen, reference_time=reference)
    if selection is not None:
        mask = selection_mask(ds, selection, reference_time=reference).data
        old = fd._flag(ds)
        new = fd._flag(flagged)
        if new.chunks != old.chunks:
            old = graph.to_planes(old)   # the very planes the strategy started from
        flagged = fd.with_flags(ds, da.where(mask.rechunk(old.chunks), new, old))
    out.append(flagged)
    counts.append(count)


def flag_store(store, strategy, selection=None, version_name: str | None = None,
               comment: str = "", save_version: bool = True) -> dict:
    """Flag a store's partitions in place, saving the previous flags as a version first unless
    ``save_version`` is false (``strategy`` as in :func:`flag_datasets`).

    Returns
    -------
    dict
        ``version`` (the saved name, None when none was saved), ``counts`` (newly flagged
        samples by flagger, summed over partitions) and ``before``/``after`` (flagged, total)
        over all partitions.
    """
    from radiocal.store.flag_versions import next_version_name, save_flag_version
    from radiocal.store.zarr_store import open_store, spilling_into, update_store

    datasets = open_store(store)
    if selection is not None:
        from radiocal.select.selection import check_selection

        check_selection(datasets, selection)   # one that selects nothing leaves the store as it was
    name = None
    if save_version:
        name = version_name or next_version_name(store, "flag")
        label = "per telescope" if callable(strategy) else strategy.name
        save_flag_version(store, name, comment or f"before radiocal flag ({label})", opened=datasets)
    # Passes that need all of an earlier pass spill it into the store's staging area, which
    # update_store clears (a store far larger than memory then flags within the chunk budget)
    with spilling_into(store):
        flagged, counts = flag_datasets(datasets, strategy, selection)
    totals: dict = {}
    # One pass computes the new flags chunk by chunk into the store's staging area (safe although
    # they are computed from the flags they replace) together with the counts; nothing of the
    # data's size reaches this process.
    # Flagged samples before and after: the strategy counts them, unless a selection then
    # keeps only a part of its flags (the new flags are in planes, the old ones in the store's
    # chunks: counted apart).
    sums = [None if new is not ds and selection is None else
            tuple(fd.flagged_counts([ds[S.FLAG].data]) + fd.flagged_counts([new[S.FLAG].data]))
            if new is not ds else tuple(fd.flagged_counts([ds[S.FLAG].data])) * 2
            for ds, new in zip(datasets, flagged)]
    changed = [i for i, (ds, new) in enumerate(zip(datasets, flagged)) if new is not ds]
    same = sorted(set(range(len(datasets))) - set(changed))
    results = dict(zip(changed, update_store([flagged[i] for i in changed], store, [S.FLAG],
                                             also=[(counts[i], sums[i]) for i in changed])
                       if changed else []))
    results.update(zip(same, dask.compute(*[(counts[i], sums[i]) for i in same])))
    counts, sums = zip(*(results[i] for i in range(len(datasets)))) if datasets else ((), ())
    totals_counted = [(count.pop(FLAGGED[0], None), count.pop(FLAGGED[1], None))
                      for count in counts]
    sums = [counted if pair is None else pair for counted, pair in zip(totals_counted, sums)]
    for count in counts:
        for key, value in count.items():
            totals[key] = totals.get(key, 0) + int(value)
    before = sum(int(old) for old, _ in sums)
    after = sum(int(new) for _, new in sums)
    cells = sum(int(ds[S.FLAG].size) for ds in datasets)
    return {"version": name, "counts": totals, "before": (before, cells), "after": (after, cells)}


@register_step("flag", FlagConfig)
def run(datasets, config: FlagConfig, context):
    """Flag RFI and bad data with a strategy (default: the shipped one for the data's telescope:
    clip, shadow, antenna health, then along frequency for short scans or SumThreshold and MAD
    for long ones), only inside the selection when one is given; the incoming flags are saved
    as a flag version in the run's store."""
    strategy = per_telescope(lambda telescope: strategy_for(config, telescope))
    selection = config.selection()
    store = getattr(context, "store", None)
    from radiocal.store.zarr_store import is_store

    # Outside a pipeline (a library call) there may be no store yet: nothing to save into.
    if config.save_version and store is not None and is_store(store):
        from radiocal.store.flag_versions import next_version_name, save_flag_version

        name = config.version_name or next_version_name(
            store, f"before_{getattr(context, 'step_name', '') or 'flag'}")
        save_flag_version(store, name, f"flags before step {getattr(context, 'index', '')}",
                          datasets=None if getattr(context, "inputs_stored", False) else datasets)
    from radiocal.store.zarr_store import spilling_into

    # the runner writes the flags with update_store, which clears the spill (see flag_store)
    with spilling_into(store):
        return flag_datasets(datasets, strategy, selection)[0]
