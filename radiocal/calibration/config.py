"""The options of one solve (:class:`SolveOptions`), of the phase-referencing sequence
(``radiocal calibrate``, the ``calibrate`` step), of the ``solve`` and ``applycal`` steps and of
OVRO-LWA's ``ateam`` and ``sky_bandpass`` (whose steps are in :mod:`radiocal.calibration.skycal`).

A solve option is declared once, in :class:`SolveOptions`; a step config that offers it takes
its field from there (:func:`solve_option`), and the step hands the solver the options whole
(:meth:`SolveOptions.of`).

Kept apart from the solvers so that the CLI can build its options from these fields without
importing the numba kernels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from radiocal.errors import ConfigError
from radiocal.model.ateam import ATEAM, BEAM_EXPONENT, MIN_BEAM, pick_sources

INTERP_CHOICES = ("nearest", "linear", "hermite")
FLUXCAL_SCANS = ("all", "last")
SOLVE_TYPES = {"delay": "K", "bandpass": "B", "gain": "G"}


@dataclass(frozen=True)
class SolveOptions:
    """The options of one solve (CASA ``gaincal`` / ``bandpass``), as the solver takes them
    (:func:`radiocal.calibration.dataset.solve`)."""

    solint: str = field(default="inf", metadata={
        "help": "solution interval: int, inf or a duration (60s)"})
    combine: str = field(default="", metadata={
        "help": "axes a solution interval may span: scan, spw, field, obs (never another "
                "OBSERVATION_ID unless obs is named, as CASA)"})
    refant: str = field(default="", metadata={
        "help": "reference antenna(s) in preference order (default: automatic)"})
    calmode: str = field(default="ap", metadata={
        "help": "gain solutions: amplitude and phase, phase, or amplitude",
        "choices": ("ap", "p", "a")})
    solnorm: bool = field(default=False, metadata={
        "help": "bandpass: normalise to unit amplitude"})
    minsnr: float = field(default=3.0, metadata={
        "help": "flag solutions below this SNR"})
    minblperant: int = field(default=4, metadata={
        "help": "minimum unflagged baselines per antenna"})

    @classmethod
    def of(cls, config, **fixed) -> SolveOptions:
        """The solve options a step config offers (its fields of these names), the rest
        ``fixed`` or left at their defaults."""
        offered = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls)
                   if hasattr(config, f.name)}
        return cls(**{**offered, **fixed})


def solve_option(name: str, **default):
    """Field ``name`` of :class:`SolveOptions` for a step config: the same default and help
    (``default=`` a step's own default), so the option has one declaration."""
    spec = SolveOptions.__dataclass_fields__[name]
    return field(default=default.get("default", spec.default), metadata=spec.metadata)


@dataclass(frozen=True)
class CalibrateConfig:
    """Configuration of the phase-referencing sequence (CLI ``radiocal calibrate``)."""

    fluxcal: str = field(default="", metadata={"help": "flux calibrator field name"})
    bpcal: str = field(default="", metadata={"help": "bandpass calibrator (default: fluxcal)"})
    phasecal: str = field(default="", metadata={"help": "phase calibrator field name"})
    targets: tuple = field(default=(), metadata={"help": "target field names"})
    fluxcal_scans: str = field(default="all", metadata={
        "help": "flux calibrator scans solved on: all, or only the last (ATA's recipe: the final "
                "visit, after the system has settled)", "choices": FLUXCAL_SCANS})
    fluxcal_model: str = field(default="standard", metadata={
        "help": "'standard' (Perley-Butler 2017 by name) or 'S,alpha,reffreq' e.g. 15,-0.5,1.4GHz"})
    refant: str = solve_option("refant")
    minsnr: float = solve_option("minsnr")
    minblperant: int = solve_option("minblperant")
    solve_delay: bool = field(default=False, metadata={"help": "solve delays (K) before B"})
    cal_amp_solint: str = field(default="int", metadata={
        "help": "solint of the calibrators' own amplitude solutions ('inf' for CASA's recipe)"})
    calwt: bool = field(default=False, metadata={"help": "scale weights by the gains"})
    fluxscale_method: str = field(default="fit", metadata={
        "help": "fit (joint drift fit), interpolate, or mean (CASA's time-averaged ratio)",
        "choices": ("fit", "interpolate", "mean")})
    polcal: bool = field(default=True, metadata={
        "help": "with four correlations and a polarised calibrator (3C286, 3C138, 3C48 above "
                "2 GHz): solve and apply cross-hand delay, cross-hand phase and leakage, with "
                "the parallactic-angle rotation"})
    polcal_field: str = field(default="", metadata={
        "help": "the polarisation calibrator (default: the first calibrator with a known "
                "polarisation model)"})
    target_interp: str = field(default="hermite", metadata={
        "help": "gain transfer onto targets: hermite (per-scan value and rate of the phase "
                "calibrator's short-interval solutions), linear or nearest (its inf "
                "solutions, as CASA)", "choices": INTERP_CHOICES})

    def __post_init__(self):
        # Library calls get the check the YAML and the CLI make from the same field metadata
        for spec in dataclasses.fields(self):
            choices = spec.metadata.get("choices")
            value = getattr(self, spec.name)
            if choices is not None and value not in choices:
                raise ConfigError(f"{spec.name} {value!r} is not one of {', '.join(choices)}")


@dataclass(frozen=True)
class SolveConfig:
    """Solve one delay, bandpass or gain table (CASA ``gaincal`` / ``bandpass``)."""

    kind: str = dataclasses.field(default="gain", metadata={
        "help": "table to solve", "choices": tuple(sorted(SOLVE_TYPES))})
    output: str = dataclasses.field(default="", metadata={
        "help": "name of the table (caltables/<output> in the store and the output directory)"})
    field: tuple = dataclasses.field(default=(), metadata={
        "help": "field name(s) to solve on (default: every partition)"})
    solint: str = solve_option("solint")
    combine: str = solve_option("combine")
    refant: str = solve_option("refant")
    calmode: str = solve_option("calmode")
    gaintype: str = dataclasses.field(default="G", metadata={
        "help": "gain per hand (G) or one for both hands (T)", "choices": ("G", "T")})
    solnorm: bool = solve_option("solnorm")
    minsnr: float = solve_option("minsnr")
    minblperant: int = solve_option("minblperant")
    model: str = dataclasses.field(default="", metadata={
        "help": "source model: a flux (Jy), 'S,alpha,reffreq', 'standard', 'column'; "
                "default the model column if present, else a 1 Jy point"})
    gaintable: tuple = dataclasses.field(default=(), metadata={
        "help": "tables to pre-apply, in order (zarr table directories or CASA tables)"})

    def __post_init__(self):
        if not self.output:
            raise ValueError("output: name the table to write")


@dataclass(frozen=True)
class ApplyConfig:
    """Apply calibration tables in order (CASA ``applycal``)."""

    gaintable: tuple = dataclasses.field(default=(), metadata={
        "help": "calibration tables in order (zarr table directories or CASA tables)"})
    interp: tuple = dataclasses.field(default=(), metadata={
        "help": f"time interpolation per table ({', '.join(INTERP_CHOICES)}; default linear)"})
    gainfield: tuple = dataclasses.field(default=(), metadata={
        "help": "per table: '' (all fields), 'nearest' or a field name"})
    calwt: bool = dataclasses.field(default=False, metadata={"help": "scale weights by gains"})
    spwmap: tuple = dataclasses.field(default=(), metadata={
        "help": "table spectral window per data spectral window, for every table "
                "(CASA spwmap; default: the same window)"})
    field: tuple = dataclasses.field(default=(), metadata={
        "help": "field name(s) to apply to (default: every partition; the others pass unchanged)"})

    def __post_init__(self):
        for name in ("interp", "gainfield"):
            if len(getattr(self, name)) not in (0, 1, len(self.gaintable)):
                raise ValueError(f"{name} needs one value or one per gaintable")
        try:
            [int(s) for s in self.spwmap]
        except (TypeError, ValueError):
            raise ValueError(f"spwmap {list(self.spwmap)!r} must be integers, one per data "
                             "spectral window") from None


# The report finds the calibration sky model(s) by this name (one file per partition's sky when
# they differ: <stem>_<partition>.txt).
ATEAM_MODEL_FILE = "skymodel_ateam.txt"


@dataclass(frozen=True)
class ATeamConfig:
    """The ``ateam`` step: the apparent A-team (dipole beam, horizon cut) as the sky model
    (``radiocal lwa`` takes some of these as its options)."""

    sources: tuple = field(default=tuple(s.name for s in ATEAM), metadata={
        "help": "A-team sources to consider"})
    min_elevation: float = field(default=0.0, metadata={
        "help": "degrees; sources lower than this at any time are left out"})
    min_beam: float = field(default=MIN_BEAM, metadata={
        "help": "leave out sources the dipole beam attenuates below this"})
    beam_exponent: float = field(default=BEAM_EXPONENT, metadata={
        "help": "dipole power beam sin(elevation)^exponent"})
    output: str = field(default=ATEAM_MODEL_FILE, metadata={
        "help": "the apparent sky model used, DP3/WSClean text"})

    def __post_init__(self):
        pick_sources(self.sources)   # unknown names fail when the pipeline is loaded
        if not 0 <= self.min_beam < 1:
            raise ValueError(f"min_beam must be in [0, 1), not {self.min_beam}")


@dataclass(frozen=True)
class SkyBandpassConfig:
    """The ``sky_bandpass`` step: a bandpass against the sky model with a uv cut, post-flagged,
    filled, with a delay check (``radiocal lwa`` takes some of these as its options)."""

    uvrange: str = field(default=">10lambda", metadata={
        "help": "solve on baselines in this uv range only (CASA syntax)"})
    refant: str = solve_option("refant")
    solint: str = solve_option("solint")
    combine: str = solve_option("combine", default="scan,field")
    minsnr: float = solve_option("minsnr")
    minblperant: int = solve_option("minblperant")
    antenna_threshold: float = field(default=5.0, metadata={
        "help": "post-flag antennas whose median |B| is this many scaled MADs from the array's"})
    antenna_min_deviation: float = field(default=0.25, metadata={
        "help": "...and this fraction from the array's median (a bad antenna is off by tens of "
                "per cent)"})
    channel_threshold: float = field(default=5.0, metadata={
        "help": "post-flag channels departing this many sigma from a running median"})
    interpolate: bool = field(default=True, metadata={
        "help": "fill flagged channels from their neighbours"})
    delay_reference: str = field(default="", metadata={
        "help": "K table (zarr or CASA) to compare the delays with", "input": True})
    delay_threshold_ns: float = field(default=2.0, metadata={
        "help": "flag (and warn about) antennas whose delay moved more than this, in ns"})
