"""Parsers for CASA-style selection strings (MSSelection syntax), strict and data-independent.

Each ``parse_*`` function turns one selection string into a small immutable description; nothing
here looks at data. Resolution against a dataset (names -> ids, times -> MJD seconds, uv distance
-> cells) lives in :mod:`radiocal.select.resolve`. A malformed string raises
:class:`radiocal.errors.SelectionError` with one line naming the bad token.

What is accepted (CASA's documented grammar, minus the parts listed as left out):

field
    comma-separated ids (``0``), id ranges (``0~2``), ``<N``, ``>N`` (strict), and names or
    ``*``/``?`` patterns (``J1331+3030``, ``J13*``) matched against the field name and the field
    code (CASA tries the code only when no name matches). Left out: regular expressions.
scan
    ``N``, ``N~M`` (inclusive), ``<N``, ``>N`` (strict), comma-separated.
spw
    comma-separated ``SPW[:CHANNELS]``. SPW is ``*``, an id, ``N~M``, ``<N``, ``>N`` (strict, as
    CASA intends; some CASA releases include N), a name or pattern, a frequency range
    ``1.3~1.35GHz`` (whole spws holding channels in that range), or empty when channels follow
    (``:^4``). CHANNELS is a ``;``-separated list of ``C``, ``C~D``
    (inclusive), either with an optional ``^STEP``, ``^STEP`` alone, or a frequency range
    (channels whose extent overlaps it). Left out: velocity and percentage channel ranges,
    frequency steps (``^10MHz``), single-frequency spw matches, ``;`` between spw ids.
antenna
    ``;``-separated baseline specs ``[!]ANT[OP[ANT]]``; ANT is a comma-separated list of names,
    ``*``/``?`` patterns, ids or id ranges ``N~M`` (an integer is matched as a name first, then
    as an id; a name matching no antenna name is matched against station names, as in CASA). OP:
    ``&`` cross-correlations only, ``&&`` cross and auto, ``&&&`` autocorrelations only (no
    second list). ``ANT`` alone selects cross baselines involving ANT; ``ANT&`` (``ANT&&``)
    baselines within ANT; ``!spec`` removes what ``spec`` selects (``!ANT`` removes every
    baseline, auto included, involving ANT); negations alone start from all baselines.
    ``*&&*`` is everything, ``*&&&`` all autocorrelations. Left out: ``ANT@STATION``, regular
    expressions, baseline-length selection.
uvrange
    comma-separated ``A~B[UNIT]`` (inclusive), ``<X[UNIT]``, ``>X[UNIT]`` (strict),
    ``X[UNIT]:P%`` (within P per cent of X); UNIT is m (default), km, lambda, klambda or Mlambda.
    Distance is ``sqrt(u**2 + v**2)``; wavelength units use each channel's own frequency, so
    they are decided per (time, baseline, channel) cell. Left out: a bare single distance
    (CASA's exact match, never useful with float data).
timerange
    comma-separated ``T0~T1``, ``T0``, ``T0+dT``, ``>T0``, ``<T1``; T is
    ``[YYYY/MM/DD/]hh:mm[:ss[.fff]]`` UTC; dT is ``hh:mm[:ss[.fff]]``. Left out: partial dates
    (``DD/hh:mm``).
correlation
    comma-separated correlation names (``RR,LL``, ``XX``), case-insensitive.
intent
    comma-separated patterns: with ``*``/``?`` a whole-string match, otherwise a substring match
    against each of the partition's intents.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from radiocal.astro import FREQUENCY_UNITS
from radiocal.errors import SelectionError
from radiocal.store.schema import CORR_CODES

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_INT_RE = re.compile(r"\d+")
_RANGE_RE = re.compile(r"(\d+)\s*~\s*(\d+)")
_CMP_RE = re.compile(r"([<>])\s*(\d+)")
# Names may hold any character that is not part of the grammar around them
_NAME_RES = {
    "field": re.compile(r"[^\s,~<>]+"),
    "spw": re.compile(r"[^\s,;:~<>^]+"),
    "antenna": re.compile(r"[^\s,;:&!~<>^@]+"),
}
_FREQ_RANGE_RE = re.compile(
    rf"({_NUMBER})\s*([A-Za-z]*)\s*~\s*({_NUMBER})\s*([A-Za-z]+)"
)
# uv distance units: (metres or wavelengths, scale to that base unit)
_UV_UNITS = {
    "": ("m", 1.0), "m": ("m", 1.0), "km": ("m", 1e3),
    "lambda": ("lambda", 1.0), "klambda": ("lambda", 1e3), "Mlambda": ("lambda", 1e6),
}
_UV_VALUE = rf"({_NUMBER})\s*([A-Za-z]*)"
_MJD_EPOCH = datetime.date(1858, 11, 17)
_TIME_RE = re.compile(
    r"(?:(\d{4})/(\d{1,2})/(\d{1,2})/)?(\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?"
)
_DURATION_RE = re.compile(r"(\d+):(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?")


def _fail(param: str, token: str, why: str) -> SelectionError:
    return SelectionError(f"{param} selection: {why} in {token!r}")


def _items(param: str, text: str, sep: str = ",") -> list[str]:
    """Split on ``sep``, strip, and reject empty items (``0,,2`` or a trailing comma)."""
    items = [item.strip() for item in text.split(sep)]
    if any(not item for item in items):
        raise _fail(param, text, f"empty item (stray {sep!r})")
    return items


# --- integer ids: field, scan, spw -------------------------------------------------------------

@dataclass(frozen=True)
class IdSpec:
    """An integer id, an inclusive range, or a strict comparison."""

    kind: str          # "eq", "range", "lt", "gt"
    low: int
    high: int
    token: str

    def contains(self, value: int) -> bool:
        if self.kind == "lt":
            return value < self.high
        if self.kind == "gt":
            return value > self.low
        return self.low <= value <= self.high

    @property
    def explicit(self) -> bool:
        """True for a single id: it must exist in the data (a typo otherwise)."""
        return self.kind == "eq"


def _id_spec(param: str, token: str) -> IdSpec | None:
    if _INT_RE.fullmatch(token):
        return IdSpec("eq", int(token), int(token), token)
    match = _RANGE_RE.fullmatch(token)
    if match:
        low, high = int(match[1]), int(match[2])
        if low > high:
            raise _fail(param, token, f"range start {low} is after its end {high}")
        return IdSpec("range", low, high, token)
    match = _CMP_RE.fullmatch(token)
    if match:
        value = int(match[2])
        if match[1] == "<":
            return IdSpec("lt", 0, value, token)
        return IdSpec("gt", value, value, token)
    return None


@dataclass(frozen=True)
class NameSpec:
    """A literal name or a ``*``/``?`` pattern (case-sensitive, as in CASA)."""

    pattern: str
    token: str

    def matches(self, name) -> bool:
        return name is not None and fnmatchcase(str(name), self.pattern)


def _name_spec(param: str, token: str) -> NameSpec:
    if not _NAME_RES[param].fullmatch(token):
        raise _fail(param, token, "not a valid id, range or name")
    return NameSpec(token, token)


def parse_field(text: str) -> tuple[IdSpec | NameSpec, ...]:
    """Parse a field selection, e.g. ``0,2``, ``0~2``, ``J1331+3030``, ``J13*``."""
    specs = []
    for token in _items("field", text):
        spec = _id_spec("field", token)
        specs.append(spec if spec is not None else _name_spec("field", token))
    return tuple(specs)


def parse_scan(text: str) -> tuple[IdSpec, ...]:
    """Parse a scan selection, e.g. ``1~3,5``, ``>4``, ``<3``."""
    specs = []
    for token in _items("scan", text):
        spec = _id_spec("scan", token)
        if spec is None:
            raise _fail("scan", token, "not a scan number, N~M, <N or >N")
        specs.append(spec)
    return tuple(specs)


# --- spw and channels --------------------------------------------------------------------------

@dataclass(frozen=True)
class FreqRange:
    """An inclusive frequency range in Hz."""

    low: float
    high: float
    token: str


@dataclass(frozen=True)
class AllSpec:
    """``*`` (or an empty spw before ``:``): everything."""

    token: str


@dataclass(frozen=True)
class ChanRange:
    """Channels ``start..stop`` inclusive every ``step`` (stop None: to the last channel)."""

    start: int
    stop: int | None
    step: int
    token: str


@dataclass(frozen=True)
class SpwItem:
    """One comma-separated spw item: which spws and, optionally, which of their channels."""

    spw: IdSpec | NameSpec | FreqRange | AllSpec
    channels: tuple[ChanRange | FreqRange, ...] | None
    token: str


def _freq_range(param: str, token: str, context: str | None = None) -> FreqRange | None:
    match = _FREQ_RANGE_RE.fullmatch(token)
    where = context or token
    if not match:
        return None
    unit_low, unit_high = match[2] or match[4], match[4]
    for unit in (unit_low, unit_high):
        if unit not in FREQUENCY_UNITS:
            raise _fail(param, where, f"unknown frequency unit {unit!r} (use Hz, kHz, MHz, GHz)")
    low = float(match[1]) * FREQUENCY_UNITS[unit_low]
    high = float(match[3]) * FREQUENCY_UNITS[unit_high]
    if low > high:
        raise _fail(param, where, "frequency range start is above its end")
    return FreqRange(low, high, token)


def _channel_spec(item: str, token: str) -> ChanRange | FreqRange:
    """One ``;``-separated channel range; errors name the whole spw ``item`` for context."""
    body, _, step_text = token.partition("^")
    body = body.strip()
    step = 1
    if "^" in token:
        step_text = step_text.strip()
        if not _INT_RE.fullmatch(step_text) or int(step_text) == 0:
            raise _fail("spw", item, "channel step must be a positive integer")
        step = int(step_text)
    if not body:
        if "^" not in token:
            raise _fail("spw", item, "empty channel range")
        return ChanRange(0, None, step, token)
    if _INT_RE.fullmatch(body):
        return ChanRange(int(body), int(body), step, token)
    match = _RANGE_RE.fullmatch(body)
    if match:
        start, stop = int(match[1]), int(match[2])
        if start > stop:
            raise _fail("spw", item, f"channel range start {start} is after its end {stop}")
        return ChanRange(start, stop, step, token)
    freq = _freq_range("spw", body, item)
    if freq is not None:
        if step != 1:
            raise _fail("spw", item, "a step on a frequency range is not supported")
        return freq
    raise _fail("spw", item, "not a channel, channel range C~D[^STEP] or frequency range")


def parse_spw(text: str) -> tuple[SpwItem, ...]:
    """Parse an spw selection, e.g. ``0``, ``0:10~20``, ``0,1:5~10``, ``*:4~27``,
    ``0:10~20;30~40``, ``0:0~31^2``, ``1.3~1.35GHz``, ``*:1.30~1.31GHz``."""
    items = []
    for token in _items("spw", text):
        spw_text, colon, chan_text = token.partition(":")
        spw_text = spw_text.strip()
        if ";" in spw_text:
            raise _fail("spw", token, "';' separates channel ranges; separate spws with ','")
        if not spw_text:
            if not colon:
                raise _fail("spw", token, "empty spw")
            spw = AllSpec(token)
        elif spw_text == "*":
            spw = AllSpec(token)
        else:
            spw = _id_spec("spw", spw_text) or _freq_range("spw", spw_text)
            if spw is None:
                if re.fullmatch(_NUMBER + r"\s*[A-Za-z]+", spw_text):
                    raise _fail("spw", token, "a single frequency is not supported (give a range)")
                spw = _name_spec("spw", spw_text)
        channels = None
        if colon:
            if ":" in chan_text:
                raise _fail("spw", token, "more than one ':'")
            if not chan_text.strip():
                raise _fail("spw", token, "no channels after ':'")
            chans = [c.strip() for c in chan_text.split(";")]
            if any(not c for c in chans):
                raise _fail("spw", token, "empty channel range (stray ';')")
            channels = tuple(_channel_spec(token, c) for c in chans)
        items.append(SpwItem(spw, channels, token))
    return tuple(items)


# --- antennas and baselines --------------------------------------------------------------------

@dataclass(frozen=True)
class AntItem:
    """One element of an antenna list: ``*``, a name/pattern, an integer, or an id range."""

    kind: str          # "all", "name", "int", "range"
    name: str
    low: int
    high: int
    token: str


@dataclass(frozen=True)
class BaselineSpec:
    """``[!]ANT[OP[ANT]]``: op is None, ``&``, ``&&`` or ``&&&``; ``right`` None when absent."""

    negate: bool
    left: tuple[AntItem, ...]
    op: str | None
    right: tuple[AntItem, ...] | None
    token: str


def _antenna_list(token: str, text: str) -> tuple[AntItem, ...]:
    items = []
    for item in _items("antenna", text):
        if item == "*":
            items.append(AntItem("all", "*", 0, 0, item))
        elif _INT_RE.fullmatch(item):
            items.append(AntItem("int", item, int(item), int(item), item))
        elif _RANGE_RE.fullmatch(item):
            spec = _id_spec("antenna", item)
            items.append(AntItem("range", item, spec.low, spec.high, item))
        elif "@" in item:
            raise _fail("antenna", item, "ANT@STATION is not supported (give names or ids)")
        elif _NAME_RES["antenna"].fullmatch(item):
            items.append(AntItem("name", item, 0, 0, item))
        else:
            raise _fail("antenna", item, "not an antenna name, pattern, id or id range")
    return tuple(items)


def parse_antenna(text: str) -> tuple[BaselineSpec, ...]:
    """Parse an antenna/baseline selection, e.g. ``W01,E04``, ``W01&E04``, ``W01&*``,
    ``!W01``, ``*&&*``, ``*&&&``, ``1~3&4~6;10&11``."""
    specs = []
    for token in _items("antenna", text, ";"):
        body = token
        negate = body.startswith("!")
        if negate:
            body = body[1:].strip()
        if "!" in body:
            raise _fail("antenna", token, "'!' may only start a baseline spec")
        match = re.fullmatch(r"([^&]*?)\s*(&+)\s*([^&]*)", body)
        if match is None:
            if "&" in body:
                raise _fail("antenna", token, "more than one '&' operator")
            left_text, op, right_text = body, None, ""
        else:
            left_text, op, right_text = match[1].strip(), match[2], match[3].strip()
            if len(op) > 3:
                raise _fail("antenna", token, f"unknown operator {op!r} (use &, && or &&&)")
        if not left_text:
            raise _fail("antenna", token, "missing antenna list before the operator")
        if op == "&&&" and right_text:
            raise _fail("antenna", token, "'&&&' (autocorrelations) takes no second antenna list")
        left = _antenna_list(token, left_text)
        right = _antenna_list(token, right_text) if right_text else None
        specs.append(BaselineSpec(negate, left, op, right, token))
    return tuple(specs)


# --- uv range ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class UvRange:
    """A uv-distance interval in metres or wavelengths (``base`` "m" or "lambda")."""

    base: str
    low: float          # -inf when open
    high: float         # +inf when open
    low_inclusive: bool
    high_inclusive: bool
    token: str


def _uv_value(token: str, text: str) -> tuple[float, str | None]:
    match = re.fullmatch(_UV_VALUE, text.strip())
    if not match:
        raise _fail("uvrange", token, "not a non-negative distance with optional unit")
    if match[2] not in _UV_UNITS:
        raise _fail("uvrange", token,
                    f"unknown unit {match[2]!r} (use m, km, lambda, klambda or Mlambda)")
    return float(match[1]), (match[2] or None)


def parse_uvrange(text: str) -> tuple[UvRange, ...]:
    """Parse a uv-distance selection, e.g. ``0~50m``, ``<2klambda``, ``>100lambda``, ``1~2km``."""
    ranges = []
    for token in _items("uvrange", text):
        if token[0] in "<>":
            value, unit = _uv_value(token, token[1:])
            base, scale = _UV_UNITS[unit or ""]
            if token[0] == "<":
                ranges.append(UvRange(base, float("-inf"), value * scale, False, False, token))
            else:
                ranges.append(UvRange(base, value * scale, float("inf"), False, False, token))
        elif "~" in token:
            low_text, _, high_text = token.partition("~")
            low, low_unit = _uv_value(token, low_text)
            high, high_unit = _uv_value(token, high_text)
            # CASA writes the unit once, at the end: "1~2km" means 1 km to 2 km
            base, high_scale = _UV_UNITS[high_unit or low_unit or ""]
            low_base, low_scale = _UV_UNITS[low_unit] if low_unit else (base, high_scale)
            if low_base != base:
                raise _fail("uvrange", token, "one end is in metres, the other in wavelengths")
            low, high = low * low_scale, high * high_scale
            if low > high:
                raise _fail("uvrange", token, "range start is above its end")
            ranges.append(UvRange(base, low, high, True, True, token))
        elif token.endswith("%") and ":" in token:
            value_text, _, percent_text = token[:-1].partition(":")
            value, unit = _uv_value(token, value_text)
            if not re.fullmatch(_NUMBER, percent_text.strip()):
                raise _fail("uvrange", token, "percentage must be a number")
            base, scale = _UV_UNITS[unit or ""]
            width = value * float(percent_text) / 100.0
            ranges.append(UvRange(base, (value - width) * scale, (value + width) * scale,
                                  True, True, token))
        else:
            _uv_value(token, token)
            raise _fail("uvrange", token, "a single distance selects nothing; give A~B, <X or >X")
    return tuple(ranges)


# --- time range --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimeOfDay:
    """A time stamp whose date may be missing (filled in at resolution)."""

    date: datetime.date | None
    seconds: float      # seconds since midnight UTC


@dataclass(frozen=True)
class TimeSpec:
    """One timerange item: kind "range" (start~end), "single", "gt" or "lt"."""

    kind: str
    start: TimeOfDay | None
    end: TimeOfDay | None
    duration: float | None   # seconds, for T0+dT
    token: str


def mjd_seconds(date: datetime.date, seconds: float) -> float:
    """MJD seconds (UTC, the MS ``TIME`` convention) of ``seconds`` after midnight on ``date``."""
    return (date - _MJD_EPOCH).days * 86400.0 + seconds


def format_time(mjd_sec: float) -> str:
    """An MJD-seconds time stamp as CASA writes it: ``YYYY/MM/DD/hh:mm:ss.s``."""
    date = date_of(mjd_sec)
    seconds = mjd_sec - mjd_seconds(date, 0.0)
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    return f"{date:%Y/%m/%d}/{int(hours):02d}:{int(minutes):02d}:{secs:04.1f}"


def date_of(mjd_sec: float) -> datetime.date:
    """The UTC date holding an MJD-seconds time stamp."""
    return _MJD_EPOCH + datetime.timedelta(days=int(mjd_sec // 86400.0))


def _clock(token: str, hours: str, minutes: str, seconds: str | None, max_hours: int | None):
    h, m, s = int(hours), int(minutes), float(seconds) if seconds else 0.0
    if (max_hours is not None and h > max_hours) or m > 59 or s >= 61.0:
        raise _fail("timerange", token, "hours, minutes or seconds out of range")
    return h * 3600.0 + m * 60.0 + s


def _time_of_day(token: str, text: str) -> TimeOfDay:
    match = _TIME_RE.fullmatch(text.strip())
    if not match:
        raise _fail("timerange", token, "expected [YYYY/MM/DD/]hh:mm[:ss[.fff]]")
    date = None
    if match[1]:
        try:
            date = datetime.date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError as err:
            raise _fail("timerange", token, f"bad date ({err})") from None
    return TimeOfDay(date, _clock(token, match[4], match[5], match[6], 23))


def parse_timerange(text: str) -> tuple[TimeSpec, ...]:
    """Parse a time selection, e.g. ``2024/05/01/10:00:00~2024/05/01/10:30:00``,
    ``10:00:00~10:30:00.5``, ``>10:00:00``, ``<10:00``, ``10:00:00+00:05:00``."""
    specs = []
    for token in _items("timerange", text):
        if token[0] in "<>":
            stamp = _time_of_day(token, token[1:])
            kind = "gt" if token[0] == ">" else "lt"
            specs.append(TimeSpec(kind, stamp, stamp, None, token))
        elif "~" in token:
            start_text, _, end_text = token.partition("~")
            start = _time_of_day(token, start_text)
            end = _time_of_day(token, end_text)
            if start.date is None and end.date is not None:
                raise _fail("timerange", token, "the end has a date but the start does not")
            specs.append(TimeSpec("range", start, end, None, token))
        elif "+" in token:
            start_text, _, duration_text = token.partition("+")
            start = _time_of_day(token, start_text)
            match = _DURATION_RE.fullmatch(duration_text.strip())
            if not match:
                raise _fail("timerange", token, "duration must be hh:mm[:ss[.fff]]")
            duration = _clock(token, match[1], match[2], match[3], None)
            specs.append(TimeSpec("range", start, None, duration, token))
        else:
            stamp = _time_of_day(token, token)
            specs.append(TimeSpec("single", stamp, stamp, None, token))
    return tuple(specs)


def resolve_time(spec: TimeSpec, reference: float) -> tuple[float, float]:
    """``(low, high)`` MJD seconds of a time spec; missing dates come from ``reference``
    (MJD seconds of the data's first time), a missing end date from the start's date.
    Open ends are +-inf; "single" returns the stamp twice."""
    ref_date = date_of(reference)
    start = end = None
    if spec.start is not None:
        start = mjd_seconds(spec.start.date or ref_date, spec.start.seconds)
    if spec.kind == "range":
        if spec.duration is not None:
            end = start + spec.duration
        else:
            end_date = spec.end.date or spec.start.date or ref_date
            end = mjd_seconds(end_date, spec.end.seconds)
        if end < start:
            raise _fail("timerange", spec.token, "the range ends before it starts")
        return start, end
    if spec.kind == "gt":
        return start, float("inf")
    if spec.kind == "lt":
        return float("-inf"), start
    return start, start


# --- correlation and intent --------------------------------------------------------------------

def parse_correlation(text: str) -> tuple[str, ...]:
    """Parse a correlation selection, e.g. ``RR,LL`` or ``XX``."""
    names = []
    for token in _items("correlation", text):
        name = token.upper()
        if name not in CORR_CODES:
            known = ", ".join(CORR_CODES)
            raise _fail("correlation", token, f"unknown correlation (known: {known})")
        if name not in names:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class IntentSpec:
    """An intent pattern (``*``/``?``: whole-string match) or a plain substring."""

    pattern: str
    token: str

    def matches(self, intent: str) -> bool:
        if any(c in self.pattern for c in "*?["):
            return fnmatchcase(intent, self.pattern)
        return self.pattern in intent


def parse_intent(text: str) -> tuple[IntentSpec, ...]:
    """Parse an intent selection, e.g. ``*BANDPASS*`` or ``CALIBRATE_PHASE,OBSERVE_TARGET``."""
    specs = []
    for token in _items("intent", text):
        if re.search(r"\s", token):
            raise _fail("intent", token, "whitespace inside an intent")
        specs.append(IntentSpec(token, token))
    return tuple(specs)
