"""Configuration of the predict, subtract and dynspec steps: the one source of defaults and help.

A config field is called ``field`` (CASA's keyword), so ``dataclasses.field`` is spelled in full.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from radiocal.errors import ConfigError

SENSES = ("", "+", "-")
# Blank by default the channels that carry less than half the information (inverse variance) of
# a typical channel: error above sqrt(2) times the band's median. After calibration these are the
# channels where the bandpass has rolled off to below ~0.84 of its typical gain (the band edges),
# whose noise is lifted by 1/|B|^2 and would dominate the rms of the spectrum.
MAX_CHANNEL_NOISE = math.sqrt(2.0)


PHASE_CONVENTIONS = ("casa", "fourier")


def _phase_convention_field():
    return dataclasses.field(
        default="casa", metadata={"help": "sign of the predicted fringe: 'casa' (exp(+2 pi i "
                                          "(ul+vm+w(n-1))/lambda), as CASA's ft and real data) or "
                                          "'fourier' (data written with the opposite sign)",
                                  "choices": PHASE_CONVENTIONS})


def _check_convention(value):
    if value not in PHASE_CONVENTIONS:
        raise ConfigError(f"phase_convention must be 'casa' or 'fourier', not {value!r}")


@dataclass(frozen=True)
class PredictConfig:
    skymodel: str = dataclasses.field(
        default="", metadata={"help": "makesourcedb/DP3/WSClean sky model file", "input": True}
    )
    field: str = dataclasses.field(default="", metadata={"help": "field name or id to predict (empty: all)"})
    phase_convention: str = _phase_convention_field()

    def __post_init__(self):
        if not self.skymodel:
            raise ConfigError("predict: a skymodel file is required")
        _check_convention(self.phase_convention)


@dataclass(frozen=True)
class SubtractConfig:
    field: str = dataclasses.field(default="", metadata={"help": "field name or id to subtract (empty: all)"})


@dataclass(frozen=True)
class DynspecConfig:
    field: str = dataclasses.field(default="", metadata={"help": "target field name or id"})
    skymodel: str = dataclasses.field(
        default="", metadata={"help": "sky model (makesourcedb/DP3/WSClean text) to predict and "
                                      "subtract before averaging", "input": True}
    )
    subtract_model: bool = dataclasses.field(
        default=False,
        metadata={"help": "subtract VISIBILITY_MODEL already present (implied by skymodel)"},
    )
    timeavg: int = dataclasses.field(default=1, metadata={"help": "integrations averaged per time cell"})
    freqavg: int = dataclasses.field(default=1, metadata={"help": "channels averaged per frequency cell"})
    uvrange: str = dataclasses.field(
        default="", metadata={"help": "keep baselines in this uv range, e.g. '>500m', '1~20klambda'"}
    )
    exclude_baselines: tuple[str, ...] = dataclasses.field(
        default=(), metadata={"help": "baselines to leave out: 'ANT1&ANT2' or 'ANT' (all of its)"}
    )
    clip_i: float = dataclasses.field(default=0.0, metadata={"help": "blank cells with |I| above this, Jy (0: off)"})
    clip_v: float = dataclasses.field(default=0.0, metadata={"help": "blank cells with |V| above this, Jy (0: off)"})
    sense: str = dataclasses.field(
        default="",
        metadata={"help": "keep only cells with V of this sign: '+' or '-' ('': off)", "choices": SENSES},
    )
    min_fraction: float = dataclasses.field(
        default=0.0, metadata={"help": "keep only cells with |V/I| at least this (0: off)"}
    )
    max_channel_noise: float = dataclasses.field(
        default=MAX_CHANNEL_NOISE,
        metadata={"help": "blank channels whose median error over time exceeds this multiple of "
                          "the band's median (default sqrt 2: less than half a typical channel's "
                          "information; 0: keep all)"},
    )
    tb_distance_pc: float = dataclasses.field(
        default=0.0, metadata={"help": "distance (pc) for brightness temperature (0: flux density)"}
    )
    tb_radius_rsun: float = dataclasses.field(
        default=0.0, metadata={"help": "emitting radius (solar radii) for brightness temperature"}
    )
    max_gap_rows: int = dataclasses.field(
        default=360, metadata={"help": "at most this many blank rows stand for one gap in time"}
    )
    output: str = dataclasses.field(default="dynspec.zarr", metadata={"help": "output zarr (dynspec step)"})
    phase_convention: str = _phase_convention_field()

    def __post_init__(self):
        if isinstance(self.exclude_baselines, (list, str)):
            items = [self.exclude_baselines] if isinstance(self.exclude_baselines, str) else self.exclude_baselines
            object.__setattr__(self, "exclude_baselines", tuple(s for s in items if s))
        for name in ("timeavg", "freqavg", "max_gap_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "max_gap_rows" else 1):
                raise ConfigError(f"dynspec: {name} must be a positive integer, not {value!r}")
        for name in ("clip_i", "clip_v", "min_fraction", "max_channel_noise", "tb_distance_pc", "tb_radius_rsun"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"dynspec: {name} must be >= 0, not {getattr(self, name)!r}")
        if self.min_fraction > 1:
            raise ConfigError(f"dynspec: min_fraction must be in [0, 1], not {self.min_fraction}")
        _check_convention(self.phase_convention)
        if self.sense not in SENSES:
            raise ConfigError(f"dynspec: sense must be '+', '-' or '', not {self.sense!r}")
        if (self.tb_distance_pc > 0) != (self.tb_radius_rsun > 0):
            raise ConfigError("dynspec: brightness temperature needs both tb_distance_pc and tb_radius_rsun")

    @property
    def brightness_temperature(self) -> bool:
        return self.tb_distance_pc > 0 and self.tb_radius_rsun > 0
