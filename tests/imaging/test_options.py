"""Strict parsing of imaging options and the argument lists they become (no imager run here)."""

from __future__ import annotations

import math

import pytest

from radiocal.errors import ConfigError, InputError
from radiocal.imaging import ImagingOptions, MSInfo, tclean_parameters, wsclean_arguments
from radiocal.astro import format_dec, format_ra
from radiocal.imaging.options import (auto_scale, parse_angle, parse_dec, parse_polarizations,
                                      parse_ra, parse_size, parse_weighting)
from radiocal.imaging.wsclean import failure_line


@pytest.mark.parametrize("text, arcsec", [
    ("2arcsec", 2.0), ("2 asec", 2.0), ("0.05deg", 180.0), ("1.5amin", 90.0), ("1arcmin", 60.0),
    ("250mas", 0.25), ("1e-4rad", math.degrees(1e-4) * 3600), (".5deg", 1800.0),
])
def test_angles_with_units(text, arcsec):
    assert parse_angle(text) == pytest.approx(arcsec)


@pytest.mark.parametrize("text", ["2", "2 arcsecs", "two arcsec", "2arcsec3", "", "2 deg deg",
                                  "1,5deg"])
def test_bad_angles_are_one_line_errors(text):
    with pytest.raises(ConfigError) as err:
        ImagingOptions(scale=text)
    assert "\n" not in str(err.value) and "pixel scale" in str(err.value)


def test_ra_dec_forms_agree_and_round_trip():
    ra = parse_ra("13h50m00.5s")
    assert parse_ra("13:50:00.5") == pytest.approx(ra)
    assert parse_ra(f"{math.degrees(ra):.10f}deg") == pytest.approx(ra)
    dec = parse_dec("-25d10m30s")
    assert dec < 0
    assert parse_dec("-25:10:30") == pytest.approx(dec)
    assert parse_dec("-25.10.30") == pytest.approx(dec)        # CASA's dd.mm.ss
    assert parse_dec("-25.175deg") == pytest.approx(dec)
    assert parse_ra(format_ra(ra)) == pytest.approx(ra, abs=1e-10)
    assert parse_dec(format_dec(dec)) == pytest.approx(dec, abs=1e-10)
    # a declination between 0 and -1 degree keeps its sign in writing
    assert format_dec(math.radians(-0.5)) == "-00d30m00.00000s"
    for bad in ("25h00m00s", "13h61m00s", "400deg", "13.5"):
        with pytest.raises(ConfigError):
            parse_ra(bad)
    for bad in ("+91d00m00s", "95deg", "25d70m00s", "north"):
        with pytest.raises(ConfigError):
            parse_dec(bad)


def test_weighting_polarizations_size():
    assert parse_weighting("briggs -0.5") == ("briggs", -0.5)
    assert parse_weighting("Natural") == ("natural", None)
    for bad in ("briggs", "briggs 3", "natural 0", "robust 0", "briggs x"):
        with pytest.raises(ConfigError):
            parse_weighting(bad)
    assert parse_polarizations("i, v") == ("I", "V")
    assert parse_polarizations("IQUV") == ("I", "Q", "U", "V")      # CASA's spelling
    assert parse_polarizations("xxyy") == ("XX", "YY")
    for bad in ("", "I,I", "P", "IP", "IXV", "XXX"):
        with pytest.raises(ConfigError):
            parse_polarizations(bad)
    assert parse_size(256) == (256, 256) and parse_size("512x256") == (512, 256)
    assert parse_size((64, 32)) == (64, 32) and parse_size("64, 32") == (64, 32)
    for bad in ("0", "255", "big", (1, 2, 3), "100x", "x100", "1e3", 256.0, True):
        with pytest.raises(ConfigError):
            parse_size(bad)


@pytest.mark.parametrize("changes", [
    dict(niter=-1), dict(channels_out=0), dict(mgain=0.0), dict(gain=1.5), dict(threads=0),
    dict(column="CORRECTED"), dict(shift=("13h00m00s",)), dict(shift=("13h00m00s", "north")),
    dict(minuv_l=100.0, maxuv_l=50.0), dict(extra_args="-no-reorder -j 2"),
    dict(auto_threshold=0.0),
])
def test_bad_options(changes):
    with pytest.raises(ConfigError):
        ImagingOptions(**changes)


def test_argument_list_is_argv_words(point_ms, tmp_path):
    # A path with a space and a quote must stay one argv item: nothing passes through a shell
    prefix = tmp_path / "my images" / "it's"
    options = ImagingOptions(size="512x256", scale="1.5amin", niter=10, weight="briggs -0.5",
                             polarizations="I,V", field="TGT", channels_out=2, join_channels=True,
                             join_polarizations=True, intervals_out=3, minuv_l=10.0,
                             shift=("13h20m00s", "+30d00m00s"), threads=2)
    args = wsclean_arguments(point_ms, prefix, options, executable="wsclean")
    assert all(isinstance(a, str) for a in args)
    assert args[0] == "wsclean" and args[-1] == point_ms
    assert args[args.index("-name") + 1] == str(prefix)

    def after(flag, n=1):
        i = args.index(flag)
        return args[i + 1:i + 1 + n]

    assert after("-size", 2) == ["512", "256"]
    assert after("-scale") == ["90asec"]
    assert after("-weight", 2) == ["briggs", "-0.5"]
    assert after("-pol") == ["i,v"]
    assert after("-field") == ["1"]                 # TGT is field 1
    assert after("-data-column") == ["CORRECTED_DATA"]
    assert after("-shift", 2) == ["13h20m00.000000s", "+30d00m00.00000s"]
    assert after("-channels-out") == ["2"] and "-join-channels" in args
    assert after("-intervals-out") == ["3"] and after("-minuv-l") == ["10"]
    assert after("-j") == ["2"] and after("-niter") == ["10"]
    assert "-no-update-model-required" in args      # the MS is never written to
    # without cleaning, no clean-only flags
    dirty = wsclean_arguments(point_ms, prefix, ImagingOptions(niter=0, scale="1amin"))
    assert "-auto-threshold" not in dirty and "-mgain" not in dirty


def test_field_names_and_columns(point_ms, data_only_ms):
    info = MSInfo.read(point_ms)
    assert info.fields == ("CAL", "TGT") and info.channels == (4,)
    assert info.field_ids("TGT,0") == [0, 1] and info.field_ids("all") is None
    assert info.field_ids("") == []
    with pytest.raises(InputError, match="no field 'STAR'"):
        info.field_ids("STAR")
    assert info.data_column() == "CORRECTED_DATA"
    assert MSInfo.read(data_only_ms).data_column() == "DATA"
    with pytest.raises(InputError, match="not a Measurement Set"):
        MSInfo.read(point_ms + "/FIELD/nothing")


def test_auto_scale_follows_the_longest_baseline(point_ms):
    from casacore.tables import table

    with table(point_ms, ack=False) as t:
        uvw = t.getcol("UVW")
    with table(point_ms + "/SPECTRAL_WINDOW", ack=False) as t:
        top = t.getcol("CHAN_FREQ").max()
    beam = 299792458.0 / top / float(((uvw[:, :2] ** 2).sum(axis=1) ** 0.5).max())
    assert parse_angle(auto_scale(point_ms)) == pytest.approx(math.degrees(beam) * 3600 / 5, rel=1e-3)
    args = wsclean_arguments(point_ms, "x", ImagingOptions(scale="auto"))
    assert parse_angle(args[args.index("-scale") + 1]) == pytest.approx(parse_angle(auto_scale(point_ms)))


def test_tclean_parameters(point_ms):
    options = ImagingOptions(size=256, scale="30arcsec", niter=100, weight="briggs 0.5",
                             polarizations="I,V", field="TGT", channels_out=2, minuv_l=20.0,
                             shift=("13h20m00s", "-05d00m00s"), multiscale=True)
    params = tclean_parameters(point_ms, "out/img-tclean", options)
    assert params["vis"] == point_ms and params["imagename"] == "out/img-tclean"
    assert params["datacolumn"] == "corrected" and params["field"] == "1"
    assert params["imsize"] == [256, 256] and params["cell"] == "30arcsec"
    assert params["stokes"] == "IV" and params["weighting"] == "briggs" and params["robust"] == 0.5
    assert params["specmode"] == "cube" and params["nchan"] == 2 and params["width"] == 2
    assert params["uvrange"] == ">20lambda" and params["nsigma"] == 3.0
    assert params["phasecenter"] == "J2000 13h20m00.000000s -05d00m00.00000s"
    assert params["deconvolver"] == "multiscale" and params["savemodel"] == "none"
    assert tclean_parameters(point_ms, "x", ImagingOptions(scale="1amin"))["field"] == "0"
    for bad in (dict(intervals_out=2), dict(join_channels=True, channels_out=2),
                dict(extra_args=("-no-reorder",)), dict(polarizations="V,I"),
                dict(channels_out=3)):
        with pytest.raises(ConfigError):
            tclean_parameters(point_ms, "x", ImagingOptions(scale="1amin", **bad))


def test_failure_line_picks_the_exception():
    log = ("WSClean version 3.1.0\nReading...\n+ + + +\n+ An exception occured:\n"
           "+ >>> Missing 'h' or ':' in string 'x'\n+ + + +\nCleaning up temporary files...\n")
    assert failure_line(log) == "Missing 'h' or ':' in string 'x'"
    assert failure_line("line one\nSegmentation fault\n\n") == "Segmentation fault"
    assert failure_line("") == "no output"


def test_several_spectral_windows_are_reordered(point_ms):
    # WSClean refuses to read several spws in place; OVRO-LWA sub-bands are spws
    one = MSInfo.read(point_ms)
    several = MSInfo(one.path, one.columns, one.fields, channels=(4, 4, 4))
    options = ImagingOptions(scale="1amin")
    assert "-reorder" not in wsclean_arguments(point_ms, "x", options, one)
    assert "-reorder" in wsclean_arguments(point_ms, "x", options, several)
    kept = ImagingOptions(scale="1amin", extra_args=("-no-reorder",))
    assert "-reorder" not in wsclean_arguments(point_ms, "x", kept, several)
