"""The CASA selection-string parsers: good input parses to what CASA means, bad input raises a
one-line SelectionError naming the bad token."""

import datetime
import math

import pytest

from radiocal.errors import SelectionError
from radiocal.select import syntax as syn
from radiocal.select.selection import Selection


def _raises(parser, text, token):
    with pytest.raises(SelectionError) as info:
        parser(text)
    message = str(info.value)
    assert token in message, message
    assert "\n" not in message
    return message


def _mjd_seconds(*args):
    """Independent reference: MJD 51544.0 is 2000-01-01 00:00 UTC."""
    delta = datetime.datetime(*args) - datetime.datetime(2000, 1, 1)
    return 51544.0 * 86400.0 + delta.total_seconds()


# --- field and scan ----------------------------------------------------------------------------

def test_field_ids_ranges_and_names():
    specs = syn.parse_field("0,2, 4~5 ,J13*,>7")
    ids = [s for s in specs if isinstance(s, syn.IdSpec)]
    names = [s for s in specs if isinstance(s, syn.NameSpec)]
    assert [i for i in range(10) if any(s.contains(i) for s in ids)] == [0, 2, 4, 5, 8, 9]
    assert names[0].matches("J1331+3030") and not names[0].matches("J1407+2827")
    assert syn.parse_field("J1331+3030")[0].matches("J1331+3030")


@pytest.mark.parametrize("text, token", [
    ("0,,2", "0,,2"), ("0,", "0,"), ("3~1", "3~1"), ("J13 30", "J13 30"), ("a~b", "a~b"),
])
def test_field_bad(text, token):
    _raises(syn.parse_field, text, token)


def test_scan_forms():
    specs = syn.parse_scan("1~3,5")
    assert [n for n in range(8) if any(s.contains(n) for s in specs)] == [1, 2, 3, 5]
    (greater,) = syn.parse_scan(">4")
    assert greater.contains(5) and not greater.contains(4)
    (less,) = syn.parse_scan("<3")
    assert less.contains(2) and not less.contains(3)


@pytest.mark.parametrize("text, token", [("1~x", "1~x"), ("scan1", "scan1"), ("5~2", "5~2"),
                                         ("1,,2", "1,,2"), (">=3", ">=3")])
def test_scan_bad(text, token):
    _raises(syn.parse_scan, text, token)


# --- spw ---------------------------------------------------------------------------------------

def _channels(item, nchan=64):
    chosen = set()
    for chan in item.channels:
        stop = nchan - 1 if chan.stop is None else chan.stop
        chosen |= set(range(chan.start, stop + 1, chan.step))
    return sorted(chosen)


def test_spw_channel_syntax():
    (item,) = syn.parse_spw("0")
    assert item.spw.contains(0) and item.channels is None
    (item,) = syn.parse_spw("0:10~20")
    assert _channels(item) == list(range(10, 21))
    first, second = syn.parse_spw("0,1:5~10")
    assert first.channels is None and second.spw.contains(1) and _channels(second) == list(
        range(5, 11))
    (item,) = syn.parse_spw("*:4~27")
    assert isinstance(item.spw, syn.AllSpec) and _channels(item) == list(range(4, 28))
    (item,) = syn.parse_spw("0:10~20;30~40")
    assert _channels(item) == list(range(10, 21)) + list(range(30, 41))
    (item,) = syn.parse_spw("0:0~31^2")
    assert _channels(item) == list(range(0, 32, 2))
    (item,) = syn.parse_spw(":^4")
    assert isinstance(item.spw, syn.AllSpec) and _channels(item, 16) == [0, 4, 8, 12]
    (item,) = syn.parse_spw("0:7")
    assert _channels(item) == [7]
    (item,) = syn.parse_spw("1~3:2~3")
    assert [s for s in range(5) if item.spw.contains(s)] == [1, 2, 3]


def test_spw_frequency_ranges():
    (item,) = syn.parse_spw("1.3~1.35GHz")
    assert isinstance(item.spw, syn.FreqRange)
    assert (item.spw.low, item.spw.high) == pytest.approx((1.3e9, 1.35e9))
    (item,) = syn.parse_spw("*:1412~1415MHz")
    (chan,) = item.channels
    assert (chan.low, chan.high) == pytest.approx((1.412e9, 1.415e9))
    (item,) = syn.parse_spw("0:1.3GHz~1300.5MHz")
    assert (item.channels[0].low, item.channels[0].high) == pytest.approx((1.3e9, 1.3005e9))
    (item,) = syn.parse_spw("spw*:1~2")
    assert item.spw.matches("spw0") and not item.spw.matches("other")


@pytest.mark.parametrize("text, token", [
    ("0:10~5", "0:10~5"), ("0:a", "0:a"), ("0:1:2", "0:1:2"), ("1.3~1.35GQz", "1.3~1.35GQz"),
    ("0:0~31^0", "0:0~31^0"), ("1;2", "1;2"), ("1.3GHz", "1.3GHz"), ("0:", "0:"),
    ("0,,1", "0,,1"), ("0:1~2^x", "0:1~2^x"), ("0:1.3~1.2GHz", "0:1.3~1.2GHz"),
    ("0:1~3GHz^2", "0:1~3GHz^2"),
])
def test_spw_bad(text, token):
    _raises(syn.parse_spw, text, token)


# --- antenna -----------------------------------------------------------------------------------

def test_antenna_forms():
    (spec,) = syn.parse_antenna("W01,E04")
    assert spec.op is None and [i.name for i in spec.left] == ["W01", "E04"]
    (spec,) = syn.parse_antenna("W01&E04")
    assert spec.op == "&" and spec.right[0].name == "E04"
    (spec,) = syn.parse_antenna("W01&*")
    assert spec.right[0].kind == "all"
    (spec,) = syn.parse_antenna("!W01")
    assert spec.negate and spec.left[0].name == "W01"
    (spec,) = syn.parse_antenna("*&&*")
    assert spec.op == "&&" and spec.left[0].kind == "all"
    (spec,) = syn.parse_antenna("*&&&")
    assert spec.op == "&&&" and spec.right is None
    (spec,) = syn.parse_antenna("W01&")
    assert spec.op == "&" and spec.right is None
    first, second = syn.parse_antenna("1~3 & 4~6 ; 10&11")
    assert (first.left[0].kind, first.left[0].low, first.left[0].high) == ("range", 1, 3)
    assert second.left[0].kind == "int" and second.right[0].low == 11
    (spec,) = syn.parse_antenna("LWA-0*")
    assert spec.left[0].kind == "name"


@pytest.mark.parametrize("text, token", [
    ("W01&&&E04", "W01&&&E04"), ("W01&&&&E04", "W01&&&&E04"), ("&E04", "&E04"),
    ("W01!E04", "W01!E04"), ("W01@N06", "W01@N06"), ("W01&E04&N01", "W01&E04&N01"),
    ("W01;;E04", "W01;;E04"), ("W01,,E04", "W01,,E04"), ("3~1", "3~1"), ("W<1", "W<1"),
])
def test_antenna_bad(text, token):
    _raises(syn.parse_antenna, text, token)


# --- uvrange -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, base, low, high, low_inc, high_inc", [
    ("0~50m", "m", 0.0, 50.0, True, True),
    ("0~50", "m", 0.0, 50.0, True, True),            # CASA's default unit is the metre
    ("<2klambda", "lambda", -math.inf, 2000.0, False, False),
    (">100lambda", "lambda", 100.0, math.inf, False, False),
    ("1~2km", "m", 1000.0, 2000.0, True, True),
    ("0.5km~900m", "m", 500.0, 900.0, True, True),
    ("24~35Mlambda", "lambda", 24e6, 35e6, True, True),
    ("< 45klambda", "lambda", -math.inf, 45e3, False, False),
    ("100klambda:20%", "lambda", 80e3, 120e3, True, True),
])
def test_uvrange_good(text, base, low, high, low_inc, high_inc):
    (spec,) = syn.parse_uvrange(text)
    assert spec.base == base
    assert (spec.low, spec.high) == pytest.approx((low, high))
    assert (spec.low_inclusive, spec.high_inclusive) == (low_inc, high_inc)


def test_uvrange_list():
    specs = syn.parse_uvrange("0~10m, >3klambda")
    assert [s.base for s in specs] == ["m", "lambda"]


@pytest.mark.parametrize("text, token", [
    ("0~50parsec", "0~50parsec"), ("50m", "50m"), ("5~1m", "5~1m"),
    ("1km~2lambda", "1km~2lambda"), ("-5~3m", "-5~3m"), ("<", "<"), ("0~50m,", "0~50m,"),
    ("100klambda:x%", "100klambda:x%"), ("1~2mlambda", "1~2mlambda"),
])
def test_uvrange_bad(text, token):
    _raises(syn.parse_uvrange, text, token)


# --- timerange ---------------------------------------------------------------------------------

REFERENCE = _mjd_seconds(2026, 3, 1, 9, 58, 0)


def test_mjd_conversion_matches_reference_epoch():
    assert syn.mjd_seconds(datetime.date(2000, 1, 1), 0.0) == 51544.0 * 86400.0
    assert syn.mjd_seconds(datetime.date(1858, 11, 17), 12.5) == 12.5
    assert syn.date_of(REFERENCE) == datetime.date(2026, 3, 1)
    assert syn.format_time(_mjd_seconds(2026, 3, 1, 10, 2, 15)) == "2026/03/01/10:02:15.0"


@pytest.mark.parametrize("text, low, high", [
    ("2026/03/01/10:00:00~2026/03/01/10:30:00",
     _mjd_seconds(2026, 3, 1, 10), _mjd_seconds(2026, 3, 1, 10, 30)),
    ("10:00:00~10:30:00.5", _mjd_seconds(2026, 3, 1, 10),
     _mjd_seconds(2026, 3, 1, 10, 30, 0, 500000)),
    ("2026/03/02/23:00~01:00:00", None, None),   # end inherits the start's date: ends first
    ("2026/03/02/22:00~23:30:00", _mjd_seconds(2026, 3, 2, 22), _mjd_seconds(2026, 3, 2, 23, 30)),
    ("10:00:00+00:05:00", _mjd_seconds(2026, 3, 1, 10), _mjd_seconds(2026, 3, 1, 10, 5)),
    (">10:00:00.25", _mjd_seconds(2026, 3, 1, 10, 0, 0, 250000), math.inf),
    ("<2026/03/01/10:00", -math.inf, _mjd_seconds(2026, 3, 1, 10)),
    ("10:01:30", _mjd_seconds(2026, 3, 1, 10, 1, 30), _mjd_seconds(2026, 3, 1, 10, 1, 30)),
])
def test_timerange_resolution(text, low, high):
    (spec,) = syn.parse_timerange(text)
    if low is None:
        with pytest.raises(SelectionError, match="ends before it starts"):
            syn.resolve_time(spec, REFERENCE)
        return
    got = syn.resolve_time(spec, REFERENCE)
    assert got[0] == pytest.approx(low, abs=1e-6) and got[1] == pytest.approx(high, abs=1e-6)


@pytest.mark.parametrize("text, token", [
    ("25:00:00~26:00:00", "25:00:00~26:00:00"), ("2026/13/01/10:00:00", "2026/13/01/10:00:00"),
    ("10:00:00~", "10:00:00~"), ("yesterday", "yesterday"), ("10:61", "10:61"),
    ("10:00~2026/03/01/11:00", "10:00~2026/03/01/11:00"), ("10:00+5", "10:00+5"),
    ("2026/02/30/10:00", "2026/02/30/10:00"),
])
def test_timerange_bad(text, token):
    _raises(syn.parse_timerange, text, token)


# --- correlation and intent --------------------------------------------------------------------

def test_correlation():
    assert syn.parse_correlation("RR,LL") == ("RR", "LL")
    assert syn.parse_correlation("xx") == ("XX",)
    _raises(syn.parse_correlation, "RR,RX", "RX")
    _raises(syn.parse_correlation, "RR,,LL", "RR,,LL")


def test_intent():
    (spec,) = syn.parse_intent("*BANDPASS*")
    assert spec.matches("CALIBRATE_BANDPASS#ON_SOURCE") and not spec.matches("CALIBRATE_PHASE")
    (spec,) = syn.parse_intent("PHASE")
    assert spec.matches("CALIBRATE_PHASE#ON_SOURCE") and not spec.matches("OBSERVE_TARGET")
    (spec,) = syn.parse_intent("CALIBRATE_*")
    assert not spec.matches("OBSERVE_TARGET#CALIBRATE_X")
    _raises(syn.parse_intent, "OBSERVE TARGET", "OBSERVE TARGET")


# --- the Selection dataclass -------------------------------------------------------------------

def test_selection_parses_on_construction():
    with pytest.raises(SelectionError, match="'1~x'"):
        Selection(scan="1~x")
    with pytest.raises(SelectionError, match="must be a string"):
        Selection(field=1.5)
    sel = Selection(field="  J13* ", scan=5, spw="", antenna=None)
    assert sel.field == "J13*" and sel.scan == "5" and sel.spw is None
    assert sel.describe() == "field='J13*', scan='5'"
    assert not sel.selects_everything and Selection().selects_everything
    assert Selection(field="0") == Selection(field="0") and hash(Selection(scan="1"))


def test_time_conversion_agrees_with_casacore():
    quanta = pytest.importorskip("casacore.quanta")
    for stamp in ("2026/03/01/10:02:15.5", "1999/12/31/23:59:59", "2024/02/29/00:00:00.25"):
        (spec,) = syn.parse_timerange(stamp)
        low, _ = syn.resolve_time(spec, REFERENCE)
        assert low == pytest.approx(quanta.quantity(stamp).get_value("s"), abs=1e-6)
    t = 5279000123.25
    assert syn.format_time(t) == quanta.quantity(t, "s").formatted("YMD", precision=9)[:21]
