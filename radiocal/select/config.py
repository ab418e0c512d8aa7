"""The CASA selection as step options, for the steps that take a selection (``convert``,
``export``, ``flag``); :meth:`SelectionConfig.selection` makes the parsed
:class:`radiocal.select.selection.Selection`.

Kept apart from the parser so that a command can build its options from these fields without
importing dask or xarray.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# part -> what it selects, with examples of CASA's syntax
SELECTION_HELP = {
    "field": "fields: ids, ranges or names with * wildcards (0,2 or J13*)",
    "scan": "scans: numbers and ranges (1~3,5 or >4)",
    "spw": "spectral windows and channels (0:10~20;30~40, *:4~27, 1.3~1.35GHz)",
    "antenna": "antennas/baselines (W01,E04 or W01&E04 or !W01 or *&&&)",
    "uvrange": "uv distance in m, km, lambda, klambda, Mlambda (0~50m, <2klambda)",
    "timerange": "UTC time range ([YYYY/MM/DD/]hh:mm:ss~hh:mm:ss, >T, <T)",
    "correlation": "correlations (RR,LL or XX)",
    "intent": "scan intents, substring or pattern (*BANDPASS*)",
}


def _part(name: str):
    return dataclasses.field(default="", metadata={"help": f"CASA selection of {SELECTION_HELP[name]}; "
                                                           "empty: all"})


@dataclass(frozen=True)
class SelectionConfig:
    """The CASA selection of a step that reads (``convert``), changes (``flag``) or writes
    (``export``) a subset."""

    # A field is named "field" (CASA's keyword), so dataclasses.field is spelled in full here.
    field: str = _part("field")
    scan: str = _part("scan")
    spw: str = _part("spw")
    antenna: str = _part("antenna")
    uvrange: str = _part("uvrange")
    timerange: str = _part("timerange")
    correlation: str = _part("correlation")
    intent: str = _part("intent")

    def selection(self):
        """The :class:`radiocal.select.selection.Selection` asked for, or None (everything)."""
        from radiocal.select.selection import Selection

        parts = {f.name: getattr(self, f.name) for f in dataclasses.fields(SelectionConfig)
                 if getattr(self, f.name)}
        return Selection(**parts) if parts else None
