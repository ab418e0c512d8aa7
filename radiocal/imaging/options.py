"""Imaging options shared by the WSClean and tclean back ends, parsed strictly.

:class:`ImagingOptions` is the one description of an image; :mod:`radiocal.imaging.wsclean` turns
it into a WSClean argument list and :mod:`radiocal.imaging.tclean` into ``casatasks.tclean``
parameters. Every value is checked when the options are built: a bad angle, weighting or
polarisation raises :class:`radiocal.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from radiocal.astro import ANGLE_UNITS, ARCSEC, SPEED_OF_LIGHT
from radiocal.errors import ConfigError, InputError

# Arcseconds per unit; the spellings CASA and WSClean users type.
_ANGLE_UNITS = {name: radians / ARCSEC for name, radians in ANGLE_UNITS.items()}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_ANGLE = re.compile(rf"^\s*({_NUMBER})\s*({'|'.join(_ANGLE_UNITS)})\s*$")
# Sexagesimal: 13h50m00.0s, 13:50:00.0 (RA); +25d10m00s, 25:10:00, 25.10.00.0 (Dec, CASA style)
_RA_HMS = re.compile(r"^\s*(\d{1,2})[h:](\d{1,2})[m:](\d{1,2}(?:\.\d*)?)s?\s*$")
_DEC_DMS = re.compile(r"^\s*([+-]?)(\d{1,2})[d:.](\d{1,2})[m:.](\d{1,2}(?:\.\d*)?)s?\s*$")

WEIGHTINGS = ("natural", "uniform", "briggs")
# What WSClean's -pol accepts (tclean's stokes takes the same names, joined)
POLARIZATIONS = ("I", "Q", "U", "V", "XX", "XY", "YX", "YY", "RR", "RL", "LR", "LL")
DATA_COLUMNS = ("CORRECTED_DATA", "DATA", "MODEL_DATA")
AUTO = "auto"
PIXELS_PER_BEAM = 5.0


def parse_angle(text: str, what: str = "angle") -> float:
    """An angle with its unit (``'2arcsec'``, ``'0.05deg'``, ``'1.5amin'``, ``'1e-4rad'``) in arcsec.

    A bare number is refused: WSClean reads it as degrees and CASA as arcseconds.
    """
    match = _ANGLE.match(str(text))
    if not match:
        raise ConfigError(f"{what} {text!r}: expected a number with a unit "
                          f"({', '.join(_ANGLE_UNITS)}), e.g. '2arcsec' or '0.05deg'")
    return float(match.group(1)) * _ANGLE_UNITS[match.group(2)]


def parse_ra(text: str) -> float:
    """Right ascension ``'13h50m00.0s'``, ``'13:50:00'``, ``'207.5deg'`` or ``'3.62rad'`` in radians."""
    match = _RA_HMS.match(str(text))
    if match:
        h, m, s = int(match.group(1)), int(match.group(2)), float(match.group(3))
        if h >= 24 or m >= 60 or s >= 60:
            raise ConfigError(f"right ascension {text!r}: hours < 24, minutes and seconds < 60")
        return math.radians(15.0 * (h + m / 60.0 + s / 3600.0))
    if _ANGLE.match(str(text)):
        ra = math.radians(parse_angle(text, "right ascension") / 3600.0)
        if not 0.0 <= ra < 2 * math.pi:
            raise ConfigError(f"right ascension {text!r} is outside [0, 360) degrees")
        return ra
    raise ConfigError(f"right ascension {text!r}: expected e.g. '13h50m00.0s', '13:50:00' or "
                      f"'207.5deg'")


def parse_dec(text: str) -> float:
    """Declination ``'+25d10m00s'``, ``'25:10:00'``, ``'25.10.00.0'`` or ``'25.17deg'`` in radians."""
    match = _DEC_DMS.match(str(text))
    if match and not _ANGLE.match(str(text)):
        sign = -1.0 if match.group(1) == "-" else 1.0
        d, m, s = int(match.group(2)), int(match.group(3)), float(match.group(4))
        if m >= 60 or s >= 60:
            raise ConfigError(f"declination {text!r}: minutes and seconds must be < 60")
        dec = sign * math.radians(d + m / 60.0 + s / 3600.0)
    elif _ANGLE.match(str(text)):
        dec = math.radians(parse_angle(text, "declination") / 3600.0)
    else:
        raise ConfigError(f"declination {text!r}: expected e.g. '+25d10m00s', '25:10:00' or "
                          f"'25.17deg'")
    if abs(dec) > math.pi / 2:
        raise ConfigError(f"declination {text!r} is outside [-90, 90] degrees")
    return dec


def parse_weighting(text: str) -> tuple[str, float | None]:
    """``'briggs 0.5'`` -> ``('briggs', 0.5)``; ``'natural'`` / ``'uniform'`` -> ``(mode, None)``."""
    words = str(text).lower().replace(",", " ").split()
    if not words or words[0] not in WEIGHTINGS:
        raise ConfigError(f"weighting {text!r}: expected 'natural', 'uniform' or 'briggs R' "
                          f"(R from -2 to 2)")
    mode = words[0]
    if mode != "briggs":
        if len(words) > 1:
            raise ConfigError(f"weighting {text!r}: {mode} takes no robustness")
        return mode, None
    if len(words) != 2 or not re.fullmatch(_NUMBER, words[1]):
        raise ConfigError(f"weighting {text!r}: briggs needs a robustness, e.g. 'briggs 0'")
    robust = float(words[1])
    if not -2.0 <= robust <= 2.0:
        raise ConfigError(f"weighting {text!r}: the Briggs robustness must be in [-2, 2]")
    return mode, robust


_POL_TOKEN = re.compile("|".join(sorted(POLARIZATIONS, key=len, reverse=True)))


def parse_polarizations(text: str) -> tuple[str, ...]:
    """``'I'``, ``'I,V'``, ``'xx,yy'``, CASA's ``'IQUV'`` -> ``('I', 'V')`` ..., each one WSClean
    and tclean know."""
    pols: list[str] = []
    for word in str(text).upper().replace(" ", ",").split(","):
        if not word:
            continue
        tokens = _POL_TOKEN.findall(word)
        if "".join(tokens) != word:
            pols = []
            break
        pols += tokens
    if not pols:
        raise ConfigError(f"polarizations {text!r}: use a comma-separated list of "
                          f"{', '.join(POLARIZATIONS)}")
    if len(set(pols)) != len(pols):
        raise ConfigError(f"polarizations {text!r}: a polarization is listed twice")
    return tuple(pols)


_SIZE = re.compile(r"^\s*(\d+)\s*(?:[x,]\s*(\d+)\s*)?$")


def parse_size(value) -> tuple[int, int]:
    """Image size in pixels: ``256``, ``'256'``, ``'512x256'`` or ``(512, 256)`` -> (width, height)."""
    sizes: list[int] = []
    if isinstance(value, (tuple, list)):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            sizes = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        sizes = [value]
    else:
        match = _SIZE.match(str(value).lower())
        if match:
            sizes = [int(g) for g in match.groups() if g is not None]
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 16 or any(s % 2 for s in sizes):
        raise ConfigError(f"image size {value!r}: expected an even number of pixels >= 16, "
                          f"or WIDTHxHEIGHT, e.g. 1024 or 512x256")
    return sizes[0], sizes[1]


@dataclass(frozen=True)
class ImagingOptions:
    """One image (or cube) of a Measurement Set, independent of the imager.

    Parameters
    ----------
    size : tuple of (int, int) or int or str
        Width and height in pixels (``1024``, ``'512x256'``).
    scale : str
        Pixel size with its unit: ``'2arcsec'``, ``'0.05deg'``, ``'1amin'``; ``'auto'``: a fifth
        of the synthesised beam, from the MS's longest baseline (:func:`auto_scale`).
    niter : int
        Maximum number of CLEAN components (0: dirty image only).
    threshold : float
        Stop cleaning at this peak residual, Jy (0: none).
    auto_threshold : float or None
        Stop cleaning at this many times the robust rms of the residual (WSClean ``-auto-threshold``;
        tclean ``nsigma``).
    mgain : float
        Fraction of the peak cleaned per major cycle (WSClean ``-mgain``; tclean ``cyclefactor``
        is left alone).
    gain : float
        Loop gain of the minor cycle.
    weight : str
        ``'briggs R'``, ``'natural'`` or ``'uniform'``.
    column : str
        Data column to image; empty: ``CORRECTED_DATA`` when the MS has it, else ``DATA``.
    polarizations : str
        Comma-separated: ``'I'``, ``'I,V'``, ``'XX,YY'``...
    field : str
        Field name(s) or id(s), comma-separated, or ``'all'``; empty: the first field (id 0).
    channels_out : int
        Images across the band (WSClean ``-channels-out``; tclean ``specmode='cube'``).
    join_channels : bool
        Deconvolve the channel images jointly and write an MFS image (WSClean ``-join-channels``).
    join_polarizations : bool
        Find CLEAN components in the sum of squares of the polarizations (WSClean
        ``-join-polarizations``; tclean always deconvolves its Stokes planes together).
    intervals_out : int
        Images in time (WSClean ``-intervals-out``; not supported by tclean).
    minuv_l, maxuv_l : float or None
        Keep baselines between these uv distances, wavelengths.
    shift : tuple of (str, str) or None
        Image centre (RA, Dec), e.g. ``('13h50m00s', '+25d10m00s')``.
    multiscale : bool
        Multi-scale CLEAN.
    threads : int or None
        Imager threads (WSClean ``-j``); None: the imager's default (all cores).
    extra_args : tuple of str
        Further WSClean arguments passed through as they are, one list item per word.
    """

    size: tuple = (1024, 1024)
    scale: str = AUTO
    niter: int = 1000
    threshold: float = 0.0
    auto_threshold: float | None = 3.0
    mgain: float = 0.8
    gain: float = 0.1
    weight: str = "briggs 0"
    column: str = ""
    polarizations: str = "I"
    field: str = ""
    channels_out: int = 1
    join_channels: bool = False
    join_polarizations: bool = False
    intervals_out: int = 1
    minuv_l: float | None = None
    maxuv_l: float | None = None
    shift: tuple | None = None
    multiscale: bool = False
    threads: int | None = None
    extra_args: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "size", parse_size(self.size))
        if self.scale != AUTO and parse_angle(self.scale, "pixel scale") <= 0:
            raise ConfigError(f"pixel scale {self.scale!r} must be positive")
        parse_weighting(self.weight)
        parse_polarizations(self.polarizations)
        for name in ("niter", "channels_out", "intervals_out"):
            value = getattr(self, name)
            low = 0 if name == "niter" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, not {value!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer, not {self.threads!r}")
        if not self.threshold >= 0:
            raise ConfigError(f"threshold must be >= 0 Jy, not {self.threshold!r}")
        if self.auto_threshold is not None and not self.auto_threshold > 0:
            raise ConfigError(f"auto_threshold must be positive, not {self.auto_threshold!r}")
        for name in ("mgain", "gain"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in (0, 1], not {getattr(self, name)!r}")
        for name in ("minuv_l", "maxuv_l"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigError(f"{name} must be >= 0 wavelengths, not {value!r}")
        if self.minuv_l is not None and self.maxuv_l is not None and self.minuv_l >= self.maxuv_l:
            raise ConfigError(f"minuv_l ({self.minuv_l}) must be below maxuv_l ({self.maxuv_l})")
        if self.column and self.column.upper() not in DATA_COLUMNS:
            raise ConfigError(f"column {self.column!r}: expected one of {', '.join(DATA_COLUMNS)}")
        object.__setattr__(self, "column", self.column.upper())
        if self.shift is not None:
            if isinstance(self.shift, str) or len(self.shift) != 2:
                raise ConfigError(f"shift {self.shift!r}: expected (RA, Dec)")
            parse_ra(self.shift[0])
            parse_dec(self.shift[1])
            object.__setattr__(self, "shift", (str(self.shift[0]), str(self.shift[1])))
        if isinstance(self.extra_args, str):
            raise ConfigError("extra_args must be a list of words, not one string")
        object.__setattr__(self, "extra_args", tuple(str(a) for a in self.extra_args))

    @property
    def scale_arcsec(self) -> float:
        if self.scale == AUTO:
            raise ConfigError("pixel scale 'auto' must be resolved against the MS first "
                              "(ImagingOptions.resolved)")
        return parse_angle(self.scale, "pixel scale")

    def resolved(self, ms) -> "ImagingOptions":
        """These options with ``scale='auto'`` replaced by :func:`auto_scale` of ``ms``."""
        if self.scale != AUTO:
            return self
        from dataclasses import replace

        return replace(self, scale=auto_scale(ms))

    @property
    def weighting(self) -> tuple[str, float | None]:
        return parse_weighting(self.weight)

    @property
    def pols(self) -> tuple[str, ...]:
        return parse_polarizations(self.polarizations)

    @property
    def shift_radians(self) -> tuple[float, float] | None:
        return None if self.shift is None else (parse_ra(self.shift[0]), parse_dec(self.shift[1]))


# ---------------------------------------------------------------- the Measurement Set, read-only

def _open_table(path: str):
    """A read-only table: python-casacore when installed, else casatools (a CASA-only Python)."""
    try:
        from casacore.tables import table

        return table(path, readonly=True, ack=False)
    except ImportError:
        from casatools import table

        tb = table()
        tb.open(path, nomodify=True)
        return tb


def _read_ms(ms: Path) -> tuple[list[str], list[str], list[int]]:
    """(main-table columns, FIELD names, channels per spw) of ``ms``, read-only, closed again."""
    if not (ms / "table.dat").exists():
        raise InputError(f"{ms}: not a Measurement Set (no table.dat)")
    try:
        main = _open_table(str(ms))
        try:
            columns = list(main.colnames())
        finally:
            main.close()  # releases the lock at once: WSClean opens the MS next
        found = []
        for name, column in (("FIELD", "NAME"), ("SPECTRAL_WINDOW", "NUM_CHAN")):
            sub = _open_table(str(ms / name))
            try:
                found.append(list(sub.getcol(column)))
            finally:
                sub.close()
    except RuntimeError as err:
        raise InputError(f"{ms}: cannot read ({str(err).strip().splitlines()[0]})") from None
    return columns, [str(n) for n in found[0]], [int(n) for n in found[1]]


@dataclass(frozen=True)
class MSInfo:
    """What imaging needs to know of a Measurement Set: columns, field names, channels per spw."""

    path: Path
    columns: tuple[str, ...]
    fields: tuple[str, ...]
    channels: tuple[int, ...] = ()

    @classmethod
    def read(cls, ms) -> "MSInfo":
        ms = Path(ms)
        columns, names, channels = _read_ms(ms)
        return cls(ms, tuple(columns), tuple(names), tuple(channels))

    def data_column(self, requested: str = "") -> str:
        """The column to image: ``requested``, or CORRECTED_DATA when present, else DATA."""
        if requested:
            if requested not in self.columns:
                raise InputError(f"{self.path}: has no {requested} column "
                                 f"(has {', '.join(c for c in DATA_COLUMNS if c in self.columns)})")
            return requested
        return "CORRECTED_DATA" if "CORRECTED_DATA" in self.columns else "DATA"

    def field_ids(self, selection: str) -> list[int] | None:
        """Field ids of a comma-separated list of names or ids; None for all; [] for the default."""
        if not selection:
            return []
        if selection.strip().lower() == "all":
            return None
        ids = []
        for item in (s.strip() for s in selection.split(",") if s.strip()):
            if item.isdigit() and int(item) < len(self.fields):
                ids.append(int(item))
            elif item in self.fields:
                ids.append(self.fields.index(item))
            else:
                raise InputError(f"{self.path}: no field {item!r} (fields: "
                                 f"{', '.join(f'{i}={n}' for i, n in enumerate(self.fields))})")
        return sorted(set(ids))


def auto_scale(ms, pixels_per_beam: float = PIXELS_PER_BEAM) -> str:
    """A pixel scale giving ``pixels_per_beam`` pixels across the synthesised beam of ``ms``.

    The beam is taken as ``lambda_min / B_max`` radians: the highest frequency of any spectral
    window and the longest unflagged-row baseline (UVW, read-only).
    """
    ms = Path(ms)
    try:
        main = _open_table(str(ms))
        try:
            uvw = main.getcol("UVW")
            flag_row = main.getcol("FLAG_ROW") if "FLAG_ROW" in main.colnames() else None
        finally:
            main.close()
        spw = _open_table(str(ms / "SPECTRAL_WINDOW"))
        try:
            frequencies = [float(f) for row in spw.getcol("CHAN_FREQ") for f in row]
        finally:
            spw.close()
    except RuntimeError as err:
        raise InputError(f"{ms}: cannot read ({str(err).strip().splitlines()[0]})") from None
    import numpy as np

    uvw = np.asarray(uvw, dtype=np.float64).reshape(-1, 3)
    if flag_row is not None:
        uvw = uvw[~np.asarray(flag_row, dtype=bool).reshape(-1)]
    baseline = float(np.sqrt((uvw[:, :2] ** 2).sum(axis=1)).max()) if uvw.size else 0.0
    if not baseline > 0 or not frequencies:
        raise InputError(f"{ms}: no baselines to size the pixels from; give the scale explicitly")
    beam_arcsec = math.degrees(SPEED_OF_LIGHT / max(frequencies) / baseline) * 3600.0
    return f"{beam_arcsec / pixels_per_beam:.4g}arcsec"
