"""The makesourcedb / DP3 / WSClean sky-model parser: good files, bad files, positions, spectra."""

import math
from pathlib import Path

import numpy as np
import pytest

from radiocal.errors import InputError
from radiocal.model.skymodel import parse_angle, parse_skymodel, read_skymodel

VLA_SMALL = Path(__file__).resolve().parents[3] / "shared" / "data" / "vla_small"
ARCSEC = math.pi / 180 / 3600


def test_real_vla_small_skymodel_matches_truth():
    if not (VLA_SMALL / "skymodel.txt").exists():
        pytest.skip("../shared/data/vla_small is not available")
    sky = read_skymodel(VLA_SMALL / "skymodel.txt")
    truth = np.load(VLA_SMALL / "truth.npz")
    from casacore.tables import table

    with table(str(VLA_SMALL / "vla_small.ms" / "FIELD"), ack=False) as field:
        centre = field.getcol("PHASE_DIR")[2, 0]
    assert list(sky.name) == [f"src{k}" for k in range(5)]
    lmn = sky.lmn(centre)
    # The file rounds positions to 1e-8 deg (1.7e-10 rad); truth's l, m are exact.
    np.testing.assert_allclose(lmn[:, :2], truth["bg"][:, :2], atol=1e-8)
    flux = sky.spectra(truth["freqs"][0])[:, :, 0]
    want = truth["bg"][:, 2:3] * (truth["freqs"][0] / truth["nu0"]) ** truth["bg"][:, 3:4]
    np.testing.assert_allclose(flux, want, rtol=1e-5)


GOOD = """\
# a comment before the header
Format = Name, Type, Ra, Dec, I, Q, U, V, SpectralIndex, LogarithmicSI, ReferenceFrequency='1.0e9', MajorAxis, MinorAxis, Orientation

p1, POINT, 12:30:00.0, +45.30.00.0, 2.0, 0.1, -0.2, 0.5, [-0.7, 0.1], true
g1, GAUSSIAN, 12h30m36s, -05d15m00s, 1.5, , , , [0.5, 0.2], false, 1.2e9, 40, 20, 30
d1, point, 187.5deg, 0.7854rad, 0.3
c1, POINT, 12:30:00, -00:30:00, 1.0, 0, 0, 0, [], , , , ,
"""


def test_parse_formats_and_defaults():
    sky = parse_skymodel(GOOD, "good.txt")
    assert len(sky) == 4
    assert list(sky.shape) == ["POINT", "GAUSSIAN", "POINT", "POINT"]
    np.testing.assert_allclose(sky.ra[0], math.radians(187.5))
    np.testing.assert_allclose(sky.dec[0], math.radians(45.5))
    np.testing.assert_allclose(sky.ra[1], math.radians(15 * (12.5 + 36 / 3600)))
    np.testing.assert_allclose(sky.dec[1], -math.radians(5.25))
    np.testing.assert_allclose([sky.ra[2], sky.dec[2]], [math.radians(187.5), 0.7854])
    np.testing.assert_allclose(sky.dec[3], -math.radians(0.5))     # "-00" keeps its sign
    np.testing.assert_allclose(sky.stokes[0], [2.0, 0.1, -0.2, 0.5])
    np.testing.assert_allclose(sky.stokes[1], [1.5, 0, 0, 0])
    # Header default for the reference frequency, explicit value on g1.
    np.testing.assert_allclose(sky.reference_frequency, [1e9, 1.2e9, 1e9, 1e9])
    np.testing.assert_allclose(sky.spectral_index[0], [-0.7, 0.1])
    np.testing.assert_allclose([sky.major[1], sky.minor[1]], [40 * ARCSEC, 20 * ARCSEC])
    np.testing.assert_allclose(sky.orientation[1], math.radians(30))
    assert sky.major[0] == 0 and list(sky.logarithmic_si) == [True, False, True, True]


def test_spectra_logarithmic_and_linear():
    sky = parse_skymodel(GOOD, "good.txt")
    nu = np.array([0.8e9, 1.0e9, 1.5e9])
    spec = sky.spectra(nu)
    x = np.log10(nu / 1e9)
    np.testing.assert_allclose(spec[0, :, 0], 2.0 * 10 ** (-0.7 * x + 0.1 * x**2))
    # Q, U, V keep their fraction of I.
    np.testing.assert_allclose(spec[0, :, 3] / spec[0, :, 0], 0.25)
    y = nu / 1.2e9 - 1
    np.testing.assert_allclose(spec[1, :, 0], 1.5 + 0.5 * y + 0.2 * y**2)
    np.testing.assert_allclose(spec[2, :, 0], 0.3)


def test_makesourcedb_header_and_patches():
    text = """\
# (Name, Type, Patch, Ra, Dec, I, ReferenceFrequency='150e6', SpectralIndex='[-0.8]') = format
, , P1, 01:00:00, +10.00.00
s1, POINT, P1, 01:00:00, +10.00.00, 5.0
s2, POINT, P1, 01:00:01, +10.00.01, 4.0, , [-0.5]
"""
    sky = parse_skymodel(text)
    assert list(sky.name) == ["s1", "s2"]
    np.testing.assert_allclose(sky.spectral_index[:, 0], [-0.8, -0.5])
    np.testing.assert_allclose(sky.reference_frequency, 150e6)


def test_lmn_sin_projection():
    sky = parse_skymodel("Format = Name, Ra, Dec, I\na, 10deg, 20deg, 1\nb, 10.5deg, 20deg, 1\nc, 10deg, 21deg, 1\n")
    lmn = sky.lmn([math.radians(10), math.radians(20)])
    np.testing.assert_allclose(lmn[0], [0, 0, 1], atol=1e-15)
    dec = math.radians(20)
    np.testing.assert_allclose(lmn[1, 0], math.cos(dec) * math.sin(math.radians(0.5)))   # east is +l
    np.testing.assert_allclose(lmn[2, 1], math.sin(math.radians(1)), rtol=1e-12)          # north is +m
    np.testing.assert_allclose((lmn**2).sum(1), 1.0)


@pytest.mark.parametrize("value,kind,degrees", [
    ("12:00:00", "ra", 180.0), ("-12:30:00", "dec", -12.5), ("+45.30.00.5", "dec", 45.5 + 0.5 / 3600),
    ("1h0m0s", "ra", 15.0), ("10d30m", "dec", 10.5), ("33.25", "dec", 33.25), ("1e1deg", "ra", 10.0),
])
def test_angles(value, kind, degrees):
    assert parse_angle(value, kind) == pytest.approx(math.radians(degrees), abs=1e-14)


HEADER = "Format = Name, Type, Ra, Dec, I, SpectralIndex, LogarithmicSI, ReferenceFrequency, MajorAxis, MinorAxis\n"


@pytest.mark.parametrize("line,message", [
    ("s, POINT, 12:61:00, +10.00.00, 1", "minutes"),
    ("s, POINT, 12:00:00, +95.00.00, 1", "beyond"),
    ("s, POINT, 12:00:00, +10.00.00, abc", "'abc' is not a number"),
    ("s, POINT, 12:00:00, +10.00.00, nan", "not finite"),
    ("s, DISK, 12:00:00, +10.00.00, 1", "POINT or GAUSSIAN"),
    ("s, POINT, 12:00:00, +10.00.00, 1, [-0.7", "unterminated"),
    ("s, POINT, 12:00:00, +10.00.00, 1, [-0.7, x]", "SpectralIndex term"),
    ("s, POINT, 12:00:00, +10.00.00, 1, [-0.7], maybe, 1e9", "true or false"),
    ("s, POINT, 12:00:00, +10.00.00, 1, [-0.7]", "ReferenceFrequency"),
    ("s, GAUSSIAN, 12:00:00, +10.00.00, 1", "MajorAxis"),
    ("s, GAUSSIAN, 12:00:00, +10.00.00, 1, , , , -3, 1", "negative"),
    ("s, POINT, 12:00:00, , 1", "missing Ra or Dec"),
    ("s, POINT, 12:00:00, ten, 1", "cannot read Dec"),
    ("s, POINT, 12:00:00, +10.00.00, 1, [], true, 1e9, 1, 1, 99", "11 values"),
])
def test_bad_lines_name_file_and_line(line, message):
    text = HEADER + "# comment\n\nok, POINT, 01:00:00, +10.00.00, 1\n" + line + "\n"
    with pytest.raises(InputError, match=rf"^model\.txt:5: .*{message}"):
        parse_skymodel(text, "model.txt")


@pytest.mark.parametrize("text,message", [
    ("a, POINT, 1deg, 1deg, 1\n", r"model\.txt:1: component before"),
    ("Format = Name, Ra, Dec, I, Flux\n", r"model\.txt:1: unknown column 'Flux'"),
    ("Format = Name, Ra, Dec, I, RotationMeasure\n", r"model\.txt:1: .*not supported"),
    ("Format = Name, Ra, Dec\n", r"model\.txt:1: .*no I column"),
    ("Format = Name, Ra, Dec, I, I\n", r"model\.txt:1: .*twice"),
    ("# only a comment\n", r"model\.txt: no 'Format"),
    ("Format = Name, Ra, Dec, I\nFormat = Name, Ra, Dec, I\n", r"model\.txt:2: a second format"),
])
def test_bad_headers(text, message):
    with pytest.raises(InputError, match=message):
        parse_skymodel(text, "model.txt")


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read sky model"):
        read_skymodel(tmp_path / "nope.txt")


def test_component_list_needs_casatools(tmp_path):
    try:
        import casatools  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="needs casatools"):
            read_skymodel(tmp_path)
    else:
        pytest.skip("casatools installed: a component-list test needs a real list")
