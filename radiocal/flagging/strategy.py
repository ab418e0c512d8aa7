"""Flagging strategies: an ordered list of flaggers with parameters, from YAML or built in.

A strategy file looks like::

    name: my-strategy
    propagate_correlations: true      # flag every correlation of a sample flagged in any
    column: VISIBILITY                # which visibilities the data-driven flaggers look at
    long_scan: 16                     # scans of at least this many integrations are "long"
    flaggers:
      - flagger: clip
        max_amplitude: 1.0e4
      - flagger: spectral             # along frequency, for short scans
        scans: short
      - flagger: sumthreshold         # in time and frequency, for long scans
        scans: long
        threshold: 6.0

Each flagger's parameters and defaults are the fields of its frozen dataclass in ``params.py``
(the one source of truth; ``radiocal flag --show-strategy`` prints a strategy in full). The
data-driven flaggers have a ``scans`` option: a partition (one scan) runs those meant for its
length, so one strategy adapts to snapshots and long tracks alike, and says which it chose in
the log.

Strategies per telescope are shipped in ``strategies/`` (``generic.yaml`` for telescopes without
their own); ``default`` names the shipped strategy of the data's TELESCOPE_NAME.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import yaml

from radiocal.errors import ConfigError, InputError
from radiocal.flagging import dataset as fd
from radiocal.flagging import graph
from radiocal.flagging import passes
from radiocal.flagging import params as P
from radiocal.select.config import SelectionConfig
from radiocal.store import schema as S

log = logging.getLogger("radiocal.flagging")

STRATEGY_DIR = Path(__file__).with_name("strategies")
# TELESCOPE_NAME (upper case, '-' and ' ' read as '_') -> shipped strategy; others: generic.
TELESCOPE_STRATEGIES = {
    "OVRO_MMA": "ovro_lwa", "OVRO_LWA": "ovro_lwa", "LWA": "ovro_lwa", "LWA1": "ovro_lwa",
    "LWA_SV": "ovro_lwa", "LWASV": "ovro_lwa", "ATA": "ata", "ATCA": "atca", "ALMA": "alma",
    "MWA": "mwa",
}


def _manual(ds, p: SelectionConfig, column, reference_time):
    # Not p.selection(): that is None when every part is empty, where the manual flagger, as
    # the selection language reads it, flags everything
    from radiocal.select.selection import Selection

    return fd.flag_manual(ds, Selection(**dataclasses.asdict(p)), reference_time=reference_time)


def _autocorrelations(ds, params, column, reference_time):
    return fd.flag_autocorrelations(ds)


def _reading(function):
    """Adapt ``function(ds, params, column=...)`` (flaggers that look at visibilities)."""
    def run(ds, params, column, reference_time):
        return function(ds, params, column=column)
    return run


def _plain(function):
    """Adapt ``function(ds, params)`` (flaggers that do not look at visibilities)."""
    def run(ds, params, column, reference_time):
        return function(ds, params)
    return run


# name -> (parameters, run(ds, params, column, reference_time) -> ds, or (ds, clip counts)).
# Every flagger takes its parameters whole, down to its kernel (``scans`` is read here only).
FLAGGERS = {
    "clip": (P.ClipParams, _reading(fd.flag_clip)),
    "autocorrelations": (P.NoParams, _autocorrelations),
    "shadow": (P.ShadowParams, _plain(fd.flag_shadow)),
    "quack": (P.QuackParams, _plain(fd.flag_quack)),
    "elevation": (P.ElevationParams, _plain(fd.flag_elevation)),
    "manual": (SelectionConfig, _manual),   # CASA selection strings; what they select is flagged
    "sumthreshold": (P.SumThresholdParams, _reading(fd.flag_sumthreshold)),
    "mad": (P.MadParams, _reading(fd.flag_mad)),
    "spectral": (P.SpectralParams, _reading(fd.flag_spectral)),
    "array": (P.ArrayParams, _plain(fd.flag_array)),
    "antenna_health": (P.AntennaHealthParams, _reading(fd.flag_antenna_health)),
    "dilate": (P.DilateParams, _plain(fd.flag_dilate)),
}
# Flaggers that work on whole time x frequency planes: with any of them, a partition's flags are
# turned into planes once, before the first flagger, and stay in planes (``graph.to_planes``).
PLANE_FLAGGERS = {"sumthreshold", "mad", "spectral", "antenna_health", "dilate"}
# Flaggers that OR a decision taken over all planes into each (``graph.hold``).
HOLDING = {"antenna_health", "array"}
# Keys of the samples flagged before and after a strategy among its counts
FLAGGED = passes.FLAGGED


@dataclass(frozen=True)
class Strategy:
    """An ordered list of ``(flagger name, parameters)``."""

    name: str
    flaggers: tuple
    propagate_correlations: bool = True
    column: str = S.VISIBILITY
    long_scan: int = 16


def _shipped(name: str) -> dict:
    return yaml.safe_load((STRATEGY_DIR / f"{name}.yaml").read_text())


# The generic strategy (strategies/generic.yaml; its comments say why each flagger is there).
DEFAULT_STRATEGY = _shipped("generic")


def parse_strategy(spec: dict, source: str = "strategy") -> Strategy:
    """Validate a strategy mapping (as loaded from YAML) into a :class:`Strategy`."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: expected a mapping with a 'flaggers' list")
    unknown = sorted(set(spec) - {"name", "propagate_correlations", "column", "long_scan",
                                  "flaggers"})
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}")
    items = spec.get("flaggers")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{source}: 'flaggers' must be a non-empty list")
    column = spec.get("column", S.VISIBILITY)
    if column not in S.VISIBILITY_VARS:
        raise ConfigError(f"{source}: column {column!r} is not one of "
                          f"{', '.join(S.VISIBILITY_VARS)}")
    propagate = spec.get("propagate_correlations", True)
    if not isinstance(propagate, bool):
        raise ConfigError(f"{source}: propagate_correlations must be true or false")
    long_scan = spec.get("long_scan", 16)
    if isinstance(long_scan, bool) or not isinstance(long_scan, int) or long_scan < 1:
        raise ConfigError(f"{source}: long_scan must be a whole number of integrations >= 1")
    flaggers = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "flagger" not in item:
            raise ConfigError(f"{source}: flagger #{i + 1} needs a 'flagger: NAME' entry")
        name = item["flagger"]
        if name not in FLAGGERS:
            raise ConfigError(f"{source}: unknown flagger {name!r} "
                              f"(known: {', '.join(sorted(FLAGGERS))})")
        params_class = FLAGGERS[name][0]
        values = {k: v for k, v in item.items() if k != "flagger"}
        valid = {f.name for f in dataclasses.fields(params_class)}
        bad = sorted(set(values) - valid)
        if bad:
            raise ConfigError(f"{source}: flagger {name!r}: unknown option(s) {', '.join(bad)} "
                              f"(valid: {', '.join(sorted(valid)) or 'none'})")
        for f in dataclasses.fields(params_class):
            # A number or switch given as text (threshold: "six") is the user's mistake, not ours
            kind = type(f.default)
            if f.name in values and kind in (bool, int, float) and not (
                    isinstance(values[f.name], kind if kind is not float else (int, float))
                    and (kind is bool or not isinstance(values[f.name], bool))):
                raise ConfigError(f"{source}: flagger {name!r}: {f.name} must be "
                                  f"{'true or false' if kind is bool else 'a number'}, "
                                  f"not {values[f.name]!r}")
        for key in ("antennas", "widths"):
            if key in values:
                values[key] = tuple(values[key] or ())
        if not (values.get("subtract_model", "auto") == "auto"
                or isinstance(values["subtract_model"], bool)):
            raise ConfigError(f"{source}: flagger {name!r}: subtract_model must be auto, true or "
                              f"false, not {values['subtract_model']!r}")
        if values.get("scans", "all") not in P.SCANS:
            raise ConfigError(f"{source}: flagger {name!r}: scans must be one of "
                              f"{', '.join(P.SCANS)}, not {values['scans']!r}")
        if not 0 <= values.get("degree", 0) <= 3:
            # The background's solvers are closed forms up to cubics (flagging/background.py)
            raise ConfigError(f"{source}: flagger {name!r}: degree must be 0, 1, 2 or 3, not "
                              f"{values['degree']!r}")
        flaggers.append((name, params_class(**values)))
    return Strategy(str(spec.get("name", source)), tuple(flaggers), propagate, column, long_scan)


def shipped_strategies() -> list[str]:
    """Names of the strategies shipped with radiocal (``generic``, ``ovro_lwa``, ...)."""
    return sorted(p.stem for p in STRATEGY_DIR.glob("*.yaml"))


def strategy_name_for_telescope(telescope: str | None) -> str:
    """The shipped strategy for a TELESCOPE_NAME (``generic`` for telescopes without one)."""
    key = str(telescope or "").strip().upper().replace("-", "_").replace(" ", "_")
    return TELESCOPE_STRATEGIES.get(key, "generic")


def load_strategy(path_or_name: str | Path = "default", telescope: str | None = None) -> Strategy:
    """A strategy: ``default`` (the shipped strategy for ``telescope``, logged), a shipped one by
    name (``generic``, ``ovro_lwa``, ...), or one from a YAML file."""
    name = str(path_or_name)
    if name == "default":
        name = strategy_name_for_telescope(telescope)
        if telescope is not None:
            log.info("telescope %r: flagging strategy %r", telescope, name)
    if name in shipped_strategies():
        return parse_strategy(_shipped(name), name)
    path = Path(path_or_name)
    if not path.is_file():
        raise InputError(f"{path}: no such strategy file (or one of: default, "
                         f"{', '.join(shipped_strategies())})")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8)") from None
    return parse_strategy(spec, str(path))


def strategy_to_yaml(strategy: Strategy) -> str:
    """The strategy as YAML with every parameter spelled out (``parse_strategy`` reads it back)."""
    def plain(value):
        return list(value) if isinstance(value, tuple) else value

    items = [{"flagger": name, **{k: plain(v) for k, v in dataclasses.asdict(p).items()}}
             for name, p in strategy.flaggers]
    doc = {"name": strategy.name, "propagate_correlations": strategy.propagate_correlations,
           "column": strategy.column, "long_scan": strategy.long_scan, "flaggers": items}
    return yaml.safe_dump(doc, sort_keys=False)


def selected_flaggers(strategy: Strategy, n_integrations: int) -> tuple:
    """The flaggers of ``strategy`` that run on a scan of ``n_integrations``."""
    kind = "long" if n_integrations >= strategy.long_scan else "short"
    return tuple((name, p) for name, p in strategy.flaggers
                 if getattr(p, "scans", "all") in ("all", kind))


def apply_strategy(ds, strategy: Strategy, reference_time: float | None = None):
    """Run the flaggers of ``strategy`` meant for this partition's scan length, lazily.

    Returns
    -------
    ds : xarray.Dataset
        The partition with its new ``FLAG``.
    counts : dask.array, 0-d, whose one block is a dict str -> int
        Samples newly flagged by each flagger (keys ``"<index>:<name>"``), plus the clip reasons
        ``nonfinite``, ``zero_weight`` and ``zero`` (NaN/Inf, zero-weight and exactly-zero
        samples), and the samples flagged before and after the strategy (keys
        :data:`FLAGGED`).
    """
    counts = {}
    initial = fd._flag(ds)
    n_times = ds.sizes[S.TIME]
    flaggers = selected_flaggers(strategy, n_times)
    planes = any(name in PLANE_FLAGGERS for name, _ in flaggers)
    fused = planes and passes.fusable(flaggers)
    if planes and not fused:
        ds = fd.with_flags(ds, graph.to_planes(fd._flag(ds)))
    # the flags after each flagger, counted in one pass per group at the end (see
    # ``fd.new_counts``); ``counts`` holds a placeholder in each counted key's place meanwhile.
    # A flagger in HOLDING starts a group with its spilled input (``graph.hold``): counting it
    # against the flags before the spill would keep those in memory until its decision.
    groups = [[fd._flag(ds)]]
    log.info("partition %s: %d integration(s), %s scan (long from %d): %s",
             ds.attrs.get(S.ATTR_PARTITION, "?"), n_times,
             "long" if n_times >= strategy.long_scan else "short", strategy.long_scan,
             ", ".join(name for name, _ in flaggers))
    if fused:
        flag, counts = passes.fused_strategy(ds, flaggers, strategy.column,
                                             strategy.propagate_correlations)
        return fd.with_flags(ds, flag), counts
    i = 0
    while i < len(flaggers):
        name, params = flaggers[i]
        if name == "sumthreshold" and i + 1 < len(flaggers) and flaggers[i + 1][0] == "mad":
            # MAD straight after SumThreshold: one pass over the data for both (same flags).
            after_st, ds = fd.flag_sumthreshold_mad(ds, params, flaggers[i + 1][1],
                                                    column=strategy.column)
            groups[-1] += [fd._flag(after_st), fd._flag(ds)]
            counts[f"{i}:sumthreshold"] = counts[f"{i + 1}:mad"] = None
            i += 2
            continue
        if name in HOLDING:
            groups.append([graph.hold(fd._flag(ds))])
        result = FLAGGERS[name][1](ds, params, strategy.column, reference_time)
        if isinstance(result, tuple):
            result, reasons = result
            for j, key in enumerate(("nonfinite", "zero_weight", "zero")):
                counts[key] = counts[key] + reasons[j] if key in counts else reasons[j]
        ds = result
        groups[-1].append(fd._flag(ds))
        counts[f"{i}:{name}"] = None
        i += 1
    if strategy.propagate_correlations:
        ds = fd.propagate_correlations(ds)
        groups[-1].append(fd._flag(ds))
        counts["propagate_correlations"] = None
    counted = iter([count for stages in groups for count in fd.new_counts(stages)])
    counts.update(zip(FLAGGED, fd.flagged_counts([initial]) + fd.flagged_counts([fd._flag(ds)])))
    values = [next(counted) if value is None else value for value in counts.values()]
    pairs = [arg for value in values for arg in (value, ())]
    return ds, da.blockwise(_AsDict(tuple(counts)), (), *pairs, dtype=object,
                            meta=np.empty((), object))


class _AsDict:
    """The counts' values as a dict under their keys."""

    def __init__(self, keys):
        self.keys = keys

    def __dask_tokenize__(self):
        return (type(self).__name__, self.keys)

    def __call__(self, *values):
        return {key: int(value) for key, value in zip(self.keys, values)}
