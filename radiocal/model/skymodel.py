"""Sky models: makesourcedb / DP3 / WSClean text, and CASA component lists when casatools exists.

The text format is one header line that names the columns and their defaults, then one component
per line::

    Format = Name, Type, Ra, Dec, I, SpectralIndex, LogarithmicSI, ReferenceFrequency='1.4e+09'
    src0, POINT, 13:49:39.98, +25.07.31.0, 0.23, [-0.78], true

makesourcedb's spelling of the header, ``# (Name, Type, ...) = format``, is accepted too. Values may
be left empty (or a line may stop early) to take the column default. Right ascension is read as
``hh:mm:ss.s``, ``hhHmmMss.s``, ``dd.mm.ss.s``, or an angle with a unit (``deg``, ``rad``) or a
plain number of degrees; declination as ``dd.mm.ss.s`` (DP3), ``+dd:mm:ss.s``, ``ddDmmMss.s`` or
degrees. The parser is strict: anything it cannot read is an :class:`~radiocal.errors.InputError`
naming the file and line (``skymodel.txt:12: ...``).

Spectra follow DP3 and WSClean. With ``LogarithmicSI=true``
``S(nu) = S0 (nu/nu0) ** (a0 + a1 log10(nu/nu0) + a2 log10(nu/nu0)**2 + ...)``; with ``false``
(WSClean's ordinary polynomial) ``S(nu) = S0 + a0 (nu/nu0 - 1) + a1 (nu/nu0 - 1)**2 + ...``. Q, U and
V follow I's spectral shape (their fraction of I is constant over frequency), as in DP3.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radiocal.astro import ANGLE_UNITS, ARCSEC, FREQUENCY_UNITS
from radiocal.errors import InputError

POINT = "POINT"
GAUSSIAN = "GAUSSIAN"
_TYPES = (POINT, GAUSSIAN)

# Canonical column names, keyed by their lower-case spelling (makesourcedb is case-insensitive).
_COLUMNS = {
    name.lower(): name
    for name in (
        "Name", "Type", "Ra", "Dec", "I", "Q", "U", "V", "SpectralIndex", "LogarithmicSI",
        "ReferenceFrequency", "MajorAxis", "MinorAxis", "Orientation", "Patch", "Category",
    )
}
# Columns read but not used: grouping labels with no effect on a predict.
_IGNORED = ("Patch", "Category")
_UNSUPPORTED = ("rotationmeasure", "polarizationangle", "polarizedfraction", "shapelet")

_HEADER_MAKESOURCEDB = re.compile(r"^#?\s*\((?P<cols>.*)\)\s*=\s*format\s*$", re.IGNORECASE)
_HEADER_DP3 = re.compile(r"^\s*format\s*=\s*(?P<cols>.*)$", re.IGNORECASE)
_HMS_LETTERS = re.compile(
    r"^(?P<sign>[+-]?)(?P<a>\d+(?:\.\d*)?)[hH](?:(?P<b>\d+(?:\.\d*)?)[mM](?:(?P<c>\d+(?:\.\d*)?)[sS]?)?)?$"
)
_DMS_LETTERS = re.compile(
    r"^(?P<sign>[+-]?)(?P<a>\d+(?:\.\d*)?)[dD](?:(?P<b>\d+(?:\.\d*)?)[mM](?:(?P<c>\d+(?:\.\d*)?)[sS]?)?)?$"
)
_UNIT_ANGLE = re.compile(r"^(?P<value>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>deg|rad)?$")


@dataclass(frozen=True)
class SkyModel:
    """Components of a sky model as parallel numpy arrays (one entry per component, ``source``).

    Attributes
    ----------
    name : (source,) str
    shape : (source,) str, ``"POINT"`` or ``"GAUSSIAN"``
    ra, dec : (source,) float64, radians (J2000)
    stokes : (source, 4) float64, I, Q, U, V in Jy at ``reference_frequency``
    spectral_index : (source, nterm) float64, zero-padded coefficients
    logarithmic_si : (source,) bool
    reference_frequency : (source,) float64, Hz (0 where no spectral index was given)
    major, minor : (source,) float64, Gaussian FWHM in radians (0 for points)
    orientation : (source,) float64, position angle of the major axis, radians east of north
    """

    name: np.ndarray
    shape: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    stokes: np.ndarray
    spectral_index: np.ndarray
    logarithmic_si: np.ndarray
    reference_frequency: np.ndarray
    major: np.ndarray
    minor: np.ndarray
    orientation: np.ndarray

    def __len__(self) -> int:
        return len(self.name)

    def lmn(self, phase_center) -> np.ndarray:
        """Direction cosines of every component relative to ``phase_center`` (SIN projection).

        Parameters
        ----------
        phase_center : (2,) float, [ra, dec] radians

        Returns
        -------
        (source, 3) float64 : l (towards east), m (towards north), n = sqrt(1 - l^2 - m^2)
        """
        ra0, dec0 = float(phase_center[0]), float(phase_center[1])
        dra = self.ra - ra0
        l = np.cos(self.dec) * np.sin(dra)
        m = np.sin(self.dec) * np.cos(dec0) - np.cos(self.dec) * np.sin(dec0) * np.cos(dra)
        n = np.sin(self.dec) * np.sin(dec0) + np.cos(self.dec) * np.cos(dec0) * np.cos(dra)
        return np.stack([l, m, n], axis=-1)

    def spectra(self, frequency) -> np.ndarray:
        """Stokes I, Q, U, V of every component at each frequency.

        Parameters
        ----------
        frequency : (frequency,) float, Hz

        Returns
        -------
        (source, frequency, 4) float64, Jy
        """
        nu = np.asarray(frequency, dtype=np.float64)[None, :]
        nsrc = len(self)
        out = np.empty((nsrc, nu.shape[1], 4), dtype=np.float64)
        for s in range(nsrc):
            coeffs = self.spectral_index[s]
            i0 = self.stokes[s, 0]
            if not np.any(coeffs):
                scale_i = np.full(nu.shape[1], i0)
            elif self.logarithmic_si[s]:
                x = np.log10(nu[0] / self.reference_frequency[s])
                exponent = sum(c * x**k for k, c in enumerate(coeffs))
                scale_i = i0 * 10.0 ** (exponent * x)
            else:
                x = nu[0] / self.reference_frequency[s] - 1.0
                scale_i = i0 + sum(c * x ** (k + 1) for k, c in enumerate(coeffs))
            out[s, :, 0] = scale_i
            # Q, U, V keep their fraction of I across the band (DP3 applies one spectral shape).
            ratio = scale_i / i0 if i0 != 0 else np.ones_like(scale_i)
            for k in (1, 2, 3):
                out[s, :, k] = self.stokes[s, k] * ratio
        return out

    def gaussian_shape(self) -> np.ndarray:
        """``(source, 3)`` float64: major FWHM, minor FWHM (radians), orientation (radians)."""
        return np.stack([self.major, self.minor, self.orientation], axis=-1)


def read_skymodel(path) -> SkyModel:
    """Read a makesourcedb / DP3 / WSClean text sky model (or a CASA component list directory).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    SkyModel

    Raises
    ------
    InputError
        When the file is missing or any line cannot be read; the message names ``file:line``.
    """
    path = Path(path)
    if path.is_dir():
        return _read_componentlist(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read sky model ({err.__class__.__name__}: {err})") from None
    return parse_skymodel(text, source=path.name)


def format_skymodel(model: SkyModel) -> str:
    """The sky model as DP3 / WSClean text (what :func:`parse_skymodel` reads back).

    Angles are written in degrees, Gaussian axes in arcseconds, every Stokes parameter in full.
    """
    lines = ["Format = Name, Type, Ra, Dec, I, Q, U, V, SpectralIndex, LogarithmicSI, "
             "ReferenceFrequency, MajorAxis, MinorAxis, Orientation"]
    for k in range(len(model)):
        indices = ", ".join(f"{c:.6g}" for c in model.spectral_index[k])
        i, q, u, v = (f"{x:.8g}" for x in model.stokes[k])
        lines.append(
            f"{model.name[k]}, {model.shape[k]}, {math.degrees(model.ra[k]):.8f}deg, "
            f"{math.degrees(model.dec[k]):.8f}deg, {i}, {q}, {u}, {v}, [{indices}], "
            f"{'true' if model.logarithmic_si[k] else 'false'}, {model.reference_frequency[k]:.10g}, "
            f"{model.major[k] / ARCSEC:.6g}, {model.minor[k] / ARCSEC:.6g}, "
            f"{math.degrees(model.orientation[k]):.6g}")
    return "\n".join(lines) + "\n"


def parse_skymodel(text: str, source: str = "<skymodel>") -> SkyModel:
    """Parse sky-model text; ``source`` names the file in error messages.

    Returns
    -------
    SkyModel
        Empty when the text has a header but no components.
    """
    columns: list[str] | None = None
    defaults: dict[str, str] = {}
    rows: list[dict] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{source}:{lineno}"
        if not line:
            continue
        header = _HEADER_MAKESOURCEDB.match(line) or _HEADER_DP3.match(line)
        if header:
            if columns is not None:
                raise InputError(f"{where}: a second format line")
            columns, defaults = _parse_header(header.group("cols"), where)
            continue
        if line.startswith("#"):
            continue
        if columns is None:
            raise InputError(f"{where}: component before the 'Format = ...' line")
        values = _split_fields(line, where)
        if len(values) > len(columns):
            raise InputError(f"{where}: {len(values)} values but the format has {len(columns)} columns")
        record = dict(defaults)
        for column, value in zip(columns, values):
            if value != "":
                record[column] = value
        if "Patch" in columns and record.get("Name", "") == "" and record.get("Type", "") == "":
            continue  # a DP3 patch-direction line: it has no flux of its own
        rows.append(_parse_component(record, where))
    if columns is None:
        raise InputError(f"{source}: no 'Format = ...' line: not a makesourcedb/DP3/WSClean sky model")
    return _to_arrays(rows)


def _parse_header(spec: str, where: str) -> tuple[list[str], dict[str, str]]:
    columns: list[str] = []
    defaults: dict[str, str] = {}
    for item in _split_fields(spec, where):
        key, _, default = item.partition("=")
        key = key.strip()
        canonical = _COLUMNS.get(key.lower())
        if canonical is None:
            if key.lower() in _UNSUPPORTED:
                raise InputError(f"{where}: column {key!r} is not supported")
            raise InputError(f"{where}: unknown column {key!r} in the format line")
        if canonical in columns:
            raise InputError(f"{where}: column {key!r} appears twice in the format line")
        columns.append(canonical)
        default = default.strip()
        if default:
            if len(default) >= 2 and default[0] == default[-1] and default[0] in "'\"":
                default = default[1:-1]
            defaults[canonical] = default.strip()
    for required in ("Ra", "Dec", "I"):
        if required not in columns:
            raise InputError(f"{where}: the format line has no {required} column")
    return columns, defaults


def _split_fields(line: str, where: str) -> list[str]:
    """Split on commas outside brackets and quotes."""
    fields, current, depth, quote = [], [], 0, ""
    for char in line:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == "[":
            depth += 1
            current.append(char)
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise InputError(f"{where}: unbalanced ']'")
            current.append(char)
        elif char == "," and depth == 0:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth or quote:
        raise InputError(f"{where}: unterminated {'[' if depth else quote}")
    fields.append("".join(current).strip())
    return fields


def _float(value: str, what: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InputError(f"{where}: {what} {value!r} is not finite")
    return number


def _sexagesimal(sign: str, parts: list[str], what: str, value: str, where: str) -> float:
    """Combine ``[a, b, c]`` (hours or degrees, minutes, seconds) into one number."""
    numbers = [_float(p, what, where) for p in parts]
    for label, x in zip(("minutes", "seconds"), numbers[1:]):
        if not 0 <= x < 60:
            raise InputError(f"{where}: {what} {value!r}: {label} must be in [0, 60)")
    total = sum(x / 60.0**k for k, x in enumerate(numbers))
    return -total if sign == "-" else total


def parse_angle(value: str, kind: str, where: str = "<angle>") -> float:
    """Read a right ascension (``kind="ra"``) or declination (``kind="dec"``) in radians."""
    text = value.strip().replace(" ", "")
    what = "Ra" if kind == "ra" else "Dec"
    if not text:
        raise InputError(f"{where}: {what} is empty")
    sign = text[0] if text[0] in "+-" else ""
    body = text[1:] if sign else text
    if ":" in body:
        parts = body.split(":")
        if len(parts) > 3 or any(p == "" for p in parts):
            raise InputError(f"{where}: {what} {value!r} is not hh:mm:ss.s / dd:mm:ss.s")
        # Colons mean hours for a right ascension and degrees for a declination.
        angle = _sexagesimal(sign, parts, what, value, where) * (15.0 if kind == "ra" else 1.0)
    elif body.count(".") >= 2:
        parts = body.split(".", 2)
        if any(p == "" for p in parts[:2]) or not parts[2]:
            raise InputError(f"{where}: {what} {value!r} is not dd.mm.ss.s")
        angle = _sexagesimal(sign, parts, what, value, where)
    elif (match := _HMS_LETTERS.match(text)) or (match := _DMS_LETTERS.match(text)):
        parts = [p for p in (match.group("a"), match.group("b"), match.group("c")) if p]
        angle = _sexagesimal(match.group("sign"), parts, what, value, where)
        if match.re is _HMS_LETTERS:
            angle *= 15.0
    elif match := _UNIT_ANGLE.match(text):
        number = float(match.group("value"))
        angle = math.degrees(number) if match.group("unit") == "rad" else number
    else:
        raise InputError(f"{where}: cannot read {what} {value!r}")
    if kind == "dec" and abs(angle) > 90.0:
        raise InputError(f"{where}: Dec {value!r} is beyond +-90 degrees")
    if kind == "ra" and not -360.0 <= angle <= 360.0:
        raise InputError(f"{where}: Ra {value!r} is beyond 360 degrees")
    return math.radians(angle)


def _parse_bool(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InputError(f"{where}: LogarithmicSI {value!r} is not true or false")


def _parse_list(value: str, where: str) -> list[float]:
    text = value.strip()
    if not (text.startswith("[") and text.endswith("]")):
        # A bare number is a one-term list (makesourcedb writes both).
        return [_float(text, "SpectralIndex", where)]
    inner = text[1:-1].strip()
    if not inner:
        return []
    return [_float(item.strip(), "SpectralIndex term", where) for item in inner.split(",")]


def _parse_component(record: dict, where: str) -> dict:
    shape = record.get("Type", POINT).strip().upper() or POINT
    if shape not in _TYPES:
        raise InputError(f"{where}: Type {record.get('Type')!r} is not POINT or GAUSSIAN")
    if "Ra" not in record or "Dec" not in record:
        raise InputError(f"{where}: missing Ra or Dec")
    if "I" not in record:
        raise InputError(f"{where}: missing I")
    stokes = [_float(record.get(k, "0"), k, where) for k in ("I", "Q", "U", "V")]
    spectral_index = _parse_list(record.get("SpectralIndex", "[]"), where)
    ref = _float(record.get("ReferenceFrequency", "0"), "ReferenceFrequency", where)
    if any(spectral_index) and ref <= 0:
        raise InputError(f"{where}: a SpectralIndex needs a positive ReferenceFrequency")
    log_si = _parse_bool(record.get("LogarithmicSI", "true"), where)
    if any(spectral_index) and log_si and stokes[0] == 0:
        raise InputError(f"{where}: a logarithmic SpectralIndex needs a non-zero I")
    major = _float(record.get("MajorAxis", "0"), "MajorAxis", where)
    minor = _float(record.get("MinorAxis", "0"), "MinorAxis", where)
    orientation = _float(record.get("Orientation", "0"), "Orientation", where)
    if major < 0 or minor < 0:
        raise InputError(f"{where}: MajorAxis and MinorAxis must not be negative")
    if shape == GAUSSIAN and major == 0 and minor == 0:
        raise InputError(f"{where}: a GAUSSIAN needs MajorAxis and MinorAxis (arcsec)")
    if shape == POINT:
        major = minor = orientation = 0.0
    return {
        "name": record.get("Name", ""),
        "shape": shape,
        "ra": parse_angle(record["Ra"], "ra", where),
        "dec": parse_angle(record["Dec"], "dec", where),
        "stokes": stokes,
        "spectral_index": spectral_index,
        "logarithmic_si": log_si,
        "reference_frequency": ref,
        "major": major * ARCSEC,
        "minor": minor * ARCSEC,
        "orientation": math.radians(orientation),
    }


def _to_arrays(rows: list[dict]) -> SkyModel:
    nterm = max((len(r["spectral_index"]) for r in rows), default=0)
    si = np.zeros((len(rows), max(nterm, 1)), dtype=np.float64)
    for k, r in enumerate(rows):
        si[k, : len(r["spectral_index"])] = r["spectral_index"]
    column = {f.name: [r[f.name] for r in rows] for f in dataclasses.fields(SkyModel) if f.name != "spectral_index"}
    return SkyModel(
        name=np.array(column["name"], dtype=str),
        shape=np.array(column["shape"], dtype=str),
        ra=np.array(column["ra"], dtype=np.float64),
        dec=np.array(column["dec"], dtype=np.float64),
        stokes=np.array(column["stokes"], dtype=np.float64).reshape(len(rows), 4),
        spectral_index=si,
        logarithmic_si=np.array(column["logarithmic_si"], dtype=bool),
        reference_frequency=np.array(column["reference_frequency"], dtype=np.float64),
        major=np.array(column["major"], dtype=np.float64),
        minor=np.array(column["minor"], dtype=np.float64),
        orientation=np.array(column["orientation"], dtype=np.float64),
    )


def _quantity(q: dict, units: dict, where: str) -> float:
    try:
        return float(q["value"]) * units[q["unit"]]
    except KeyError:
        raise InputError(f"{where}: unit {q.get('unit')!r} not understood") from None


def _read_componentlist(path: Path) -> SkyModel:
    """A CASA component list (a casacore table directory), through casatools when installed."""
    try:
        from casatools import componentlist  # optional: CASA is never required
    except ImportError:
        raise InputError(
            f"{path}: is a directory (a CASA component list?); reading one needs casatools, "
            "which is not installed: convert it to makesourcedb text"
        ) from None
    cl = componentlist()
    if not cl.open(str(path)):
        raise InputError(f"{path}: casatools cannot open this component list")
    rows = []
    try:
        for k in range(cl.length()):
            where = f"{path}: component {k}"
            comp = cl.getcomponent(k)
            flux = comp["flux"]
            if flux.get("polarisation", "Stokes").lower() != "stokes":
                raise InputError(f"{where}: flux is not in Stokes")
            shape = comp["shape"]["type"].upper()
            if shape not in _TYPES:
                raise InputError(f"{where}: shape {shape} is not supported")
            spectrum = comp.get("spectrum", {})
            index = []
            if spectrum.get("type", "Constant").lower() == "spectral index":
                index = [float(x) for x in np.atleast_1d(spectrum["index"])[:1]]
            gauss = shape == GAUSSIAN
            direction = comp["shape"]["direction"]
            rows.append({
                "name": comp.get("label", "") or f"component{k}",
                "shape": shape,
                "ra": _quantity(direction["m0"], ANGLE_UNITS, where),
                "dec": _quantity(direction["m1"], ANGLE_UNITS, where),
                "stokes": list(np.real(np.asarray(flux["value"], dtype=complex))[:4]),
                "spectral_index": index,
                "logarithmic_si": True,
                "reference_frequency": (
                    _quantity(spectrum["frequency"]["m0"], FREQUENCY_UNITS, where) if index else 0.0
                ),
                "major": _quantity(comp["shape"]["majoraxis"], ANGLE_UNITS, where) if gauss else 0.0,
                "minor": _quantity(comp["shape"]["minoraxis"], ANGLE_UNITS, where) if gauss else 0.0,
                "orientation": (
                    _quantity(comp["shape"]["positionangle"], ANGLE_UNITS, where) if gauss else 0.0
                ),
            })
    finally:
        cl.close()
    return _to_arrays(rows)
