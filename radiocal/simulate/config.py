"""Configuration of the simulator: frozen dataclasses with small, fast defaults.

All angles are radians, frequencies Hz, times MJD seconds (UTC) or seconds. A configuration is
validated when it is built; a bad value raises :class:`radiocal.errors.ConfigError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from radiocal.astro import dms, hms, lm_from_radec, sidereal_time
from radiocal.errors import ConfigError

# Field roles and the CASA scan intents they map to (MS STATE::OBS_MODE)
ROLE_INTENTS = {
    "flux": "CALIBRATE_FLUX#ON_SOURCE",
    "bandpass": "CALIBRATE_BANDPASS#ON_SOURCE",
    "phase": "CALIBRATE_PHASE#ON_SOURCE",
    "amplitude": "CALIBRATE_AMPLI#ON_SOURCE",
    "delay": "CALIBRATE_DELAY#ON_SOURCE",
    "polarization": "CALIBRATE_POL_ANGLE#ON_SOURCE",
    "target": "OBSERVE_TARGET#ON_SOURCE",
}
LAYOUTS = ("vla", "lwa")
FEEDS = ("circular", "linear")

# Start of the default observations: the VLA fields below transit near this time (LST ~13.5 h at
# the VLA); the LWA start puts LST ~20 h at OVRO, so Cygnus A is high.
VLA_START = 5279076130.0
LWA_START = 5279102100.0


# Observatory sites: (east longitude, latitude, height above the WGS84 ellipsoid), radians,
# radians, metres
VLA_SITE = (math.radians(-107.6184), math.radians(34.0790), 2124.0)
LWA_SITE = (math.radians(-118.2817), math.radians(37.2398), 1183.0)


@dataclass(frozen=True)
class FieldSpec:
    """One field: a point source at the phase centre.

    Parameters
    ----------
    name : str
        FIELD::NAME.
    ra, dec : float
        Phase centre, J2000, radians.
    role : str
        Comma-separated roles, each a key of ``ROLE_INTENTS``: ``"flux,bandpass"``, ``"target"``…
    flux : float
        Stokes I of the central point source at ``SimConfig.reference_frequency``, Jy (0: none).
    spectral_index : float
        ``S(nu) = flux * (nu / reference_frequency) ** spectral_index``.
    circular_fraction : float
        Stokes V / I of the quiescent emission (a circularly polarised star).
    variability : float
        Peak of a drifting flare in units of the quiescent flux (0: constant source).
    flare_circular_fraction : float
        V / I of the flare.
    code : str
        FIELD::CODE.
    linear_fraction, polarization_angle : float
        Linear polarisation of the central source: ``Q + iU = linear_fraction * I *
        exp(2i polarization_angle)`` (angle in radians, north through east).
    """

    name: str
    ra: float
    dec: float
    role: str = "target"
    flux: float = 1.0
    spectral_index: float = 0.0
    circular_fraction: float = 0.0
    variability: float = 0.0
    flare_circular_fraction: float = -0.8
    code: str = ""
    linear_fraction: float = 0.0
    polarization_angle: float = 0.0

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r.strip() for r in self.role.split(",") if r.strip())

    @property
    def intents(self) -> list[str]:
        # Sorted, as the MS reader reports them, so that MS round trips compare equal.
        return sorted(ROLE_INTENTS[r] for r in self.roles)


@dataclass(frozen=True)
class PointSource:
    """A background point source, offset ``(l, m)`` (direction cosines) from a target's centre."""

    l: float
    m: float
    flux: float
    spectral_index: float = 0.0


DEFAULT_FIELDS = (
    FieldSpec("J1331+3030", hms(13, 31, 8.288), dms(30, 30, 32.96), "flux,bandpass",
              flux=15.0, spectral_index=-0.5),
    FieldSpec("J1407+2827", hms(14, 7, 0.394), dms(28, 27, 14.69), "phase",
              flux=2.5, spectral_index=-0.3),
    FieldSpec("STAR", hms(13, 50, 0.0), dms(25, 10, 0.0), "target", flux=0.1,
              spectral_index=0.0, circular_fraction=0.2, variability=3.0),
)
DEFAULT_BACKGROUND = (
    PointSource(-0.0013, -0.0007, 0.3, -0.78),
    PointSource(-0.0024, -0.0043, 0.6, -0.38),
    PointSource(0.0055, -0.0043, 0.4, -0.55),
)


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator needs; the defaults make a tiny VLA-like phase-referencing run.

    Parameters
    ----------
    n_antennas : int
        Number of antennas.
    layout : {"vla", "lwa"}
        ``"vla"``: a compact random Y of 25 m dishes at the VLA site; ``"lwa"``: a dense random
        core of dipoles (2 m "dishes") at the OVRO-LWA site.
    spws : tuple of (float, float, int)
        Per spectral window: (first channel frequency Hz, channel width Hz, number of channels).
    integration_time : float
        Seconds per integration (MS INTERVAL).
    schedule : tuple of (int, int)
        Scans in order: (field index, number of integrations). Scan numbers are 1, 2, ...
    scan_gap : float
        Seconds between the end of one scan and the start of the next (slewing).
    start_time : float
        Start of the first integration, MJD seconds UTC.
    fields : tuple of FieldSpec
    background : tuple of PointSource
        Point sources around every field whose role includes ``target``.
    reference_frequency : float
        Frequency at which field and background fluxes are given, Hz.
    feeds : {"circular", "linear"}
    n_correlations : {1, 2, 4}
        4: RR RL LR LL (XX XY YX YY); 2: the parallel hands; 1: RR (XX).
    autocorrelations : bool
        Include ``p == q`` baselines.
    gain_amp_rms, gain_phase_rms : float
        Rms of the gain amplitude (fraction) and of the phase drift (radians) per antenna and
        hand; every gain also has a random starting phase.
    gain_timescale : float
        Typical period of the gain drift, seconds.
    delay_rms : float
        Rms of the per antenna/hand delays, nanoseconds.
    bandpass_ripple : float
        Fractional amplitude of the bandpass ripple (its phase ripple is half of it, radians).
    bandpass_rolloff : float
        Amplitude lost at the band edges relative to the band centre (0 to < 1).
    dead_antenna : int or None
        Index of an antenna whose baselines hold noise only.
    noise : float
        Noise per complex visibility, Jy (real and imaginary parts each ``noise / sqrt(2)``).
    rfi_channels : int
        Persistent RFI channels per spectral window (every time and baseline).
    rfi_bursts : int
        Broadband bursts, each one integration long over all baselines and channels.
    rfi_spike_fraction : float
        Fraction of (time, baseline, channel) cells hit by a random spike.
    rfi_amplitude : float
        Typical RFI amplitude, Jy (log-normal spread around it).
    model_column : bool
        Also store the uncorrupted model as ``VISIBILITY_MODEL``.
    parallactic : bool
        Rotate the feeds of the (alt-az) antennas by the parallactic angle.
    xy_phase, xy_delay : float
        Cross-hand phase (radians at the spw's first channel) and delay (seconds) of the
        instrument: ``X = diag(exp(i (xy_phase + 2 pi xy_delay (nu - nu0))), 1)`` on every
        antenna, as CASA's X Jones.
    leakage_rms : float
        Rms of each antenna's leakages ``D = [[1, d_x], [d_y, 1]]`` (complex, constant).
    With any of these three the measurement equation is CASA's ``J = G B D X P`` in full, and
    the second hand's gain is the first hand's times a constant per antenna (the X-Y phase of
    an instrument is stable; independent drifts would leave nothing to calibrate).
    drift_scan : bool
        Phase every integration to the zenith of its own time, as OVRO-LWA writes its files:
        (local mean sidereal time, latitude) of the layout's site, UVW and visibilities towards
        it (``Truth.phase_centers``), while the sources stay where they are on the sky (the
        central source at the field's ``ra, dec``, the background around it). The datasets'
        ``phase_center`` attribute is then the field's; :func:`lwa_files` writes each
        integration with its own.
    telescope, observer, project : str
        OBSERVATION metadata (telescope defaults to the layout's: ``VLA`` or ``OVRO_MMA``…).
    seed : int
        Seed of every random draw: the same configuration gives the same data.
    """

    n_antennas: int = 6
    layout: str = "vla"
    spws: tuple = ((1.30e9, 4.0e6, 16),)
    integration_time: float = 10.0
    schedule: tuple = ((0, 6), (1, 3), (2, 8), (1, 3))
    scan_gap: float = 20.0
    start_time: float = VLA_START
    fields: tuple = DEFAULT_FIELDS
    background: tuple = DEFAULT_BACKGROUND
    reference_frequency: float = 1.4e9
    feeds: str = "circular"
    n_correlations: int = 4
    autocorrelations: bool = False
    gain_amp_rms: float = 0.1
    gain_phase_rms: float = 0.3
    gain_timescale: float = 900.0
    delay_rms: float = 3.0
    bandpass_ripple: float = 0.1
    bandpass_rolloff: float = 0.3
    dead_antenna: int | None = None
    noise: float = 0.05
    rfi_channels: int = 0
    rfi_bursts: int = 0
    rfi_spike_fraction: float = 0.0
    rfi_amplitude: float = 10.0
    model_column: bool = False
    parallactic: bool = False
    xy_phase: float = 0.0
    xy_delay: float = 0.0
    leakage_rms: float = 0.0
    drift_scan: bool = False
    telescope: str = ""
    observer: str = "radiocal simulator"
    project: str = "SIM"
    seed: int = 0

    def __post_init__(self):
        # Lists are accepted for convenience but stored as tuples so the config stays hashable.
        for name in ("spws", "schedule", "fields", "background"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(tuple(v) if isinstance(v, list) else v
                                                     for v in value))
        self._validate()

    def _validate(self):
        def bad(msg):
            raise ConfigError(f"simulator: {msg}")

        if self.layout not in LAYOUTS:
            bad(f"layout must be one of {LAYOUTS}, not {self.layout!r}")
        if self.feeds not in FEEDS:
            bad(f"feeds must be one of {FEEDS}, not {self.feeds!r}")
        if self.n_correlations not in (1, 2, 4):
            bad(f"n_correlations must be 1, 2 or 4, not {self.n_correlations}")
        if int(self.n_antennas) < 2:
            bad(f"need at least 2 antennas, not {self.n_antennas}")
        if not self.spws:
            bad("at least one spectral window is needed")
        for i, spw in enumerate(self.spws):
            if len(spw) != 3 or spw[0] <= 0 or spw[1] <= 0 or int(spw[2]) < 1:
                bad(f"spw {i} must be (first frequency > 0, width > 0, channels >= 1), not {spw}")
        if self.integration_time <= 0:
            bad("integration_time must be positive")
        if self.scan_gap < 0:
            bad("scan_gap must not be negative")
        if not self.fields:
            bad("at least one field is needed")
        for f in self.fields:
            unknown = [r for r in f.roles if r not in ROLE_INTENTS]
            if unknown or not f.roles:
                bad(f"field {f.name!r} has unknown role(s) {unknown or f.role!r}; "
                    f"use {sorted(ROLE_INTENTS)}")
        if not self.schedule:
            bad("the schedule needs at least one scan")
        for i, scan in enumerate(self.schedule):
            if len(scan) != 2 or not 0 <= scan[0] < len(self.fields) or int(scan[1]) < 1:
                bad(f"scan {i + 1} must be (field index < {len(self.fields)}, integrations >= 1),"
                    f" not {scan}")
        if self.dead_antenna is not None and not 0 <= self.dead_antenna < self.n_antennas:
            bad(f"dead_antenna {self.dead_antenna} is not an antenna index")
        if self.noise < 0 or self.rfi_amplitude < 0:
            bad("noise and rfi_amplitude must not be negative")
        if not 0 <= self.rfi_spike_fraction < 1:
            bad("rfi_spike_fraction must be in [0, 1)")
        if self.rfi_bursts < 0 or self.rfi_channels < 0:
            bad("rfi_bursts and rfi_channels must not be negative")
        if self.rfi_bursts > self.n_times:
            bad(f"{self.rfi_bursts} RFI bursts but only {self.n_times} integrations")
        if any(self.rfi_channels > int(s[2]) for s in self.spws):
            bad(f"{self.rfi_channels} persistent RFI channels exceed a spectral window's channels")
        if not 0 <= self.bandpass_rolloff < 1:
            bad("bandpass_rolloff must be in [0, 1)")
        if self.full_jones and self.n_correlations != 4:
            bad("parallactic, xy_phase, xy_delay and leakage_rms need n_correlations=4")

    @property
    def full_jones(self) -> bool:
        """Whether the instrument mixes the hands (leakage, cross-hand phase, feed rotation)."""
        return bool(self.parallactic or self.xy_phase or self.xy_delay or self.leakage_rms)

    @property
    def n_times(self) -> int:
        return sum(int(n) for _, n in self.schedule)

    @property
    def polarizations(self) -> tuple[str, ...]:
        hands = "RL" if self.feeds == "circular" else "XY"
        if self.n_correlations == 4:
            return tuple(a + b for a in hands for b in hands)
        if self.n_correlations == 2:
            return (hands[0] * 2, hands[1] * 2)
        return (hands[0] * 2,)

    @property
    def telescope_name(self) -> str:
        return self.telescope or ("VLA" if self.layout == "vla" else "OVRO_LWA")

    def replace(self, **changes) -> "SimConfig":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @classmethod
    def vla_small_like(cls, **changes) -> "SimConfig":
        """Like ``../shared/data/vla_small``: 10 antennas, 32 channels, a dead antenna and RFI."""
        base = dict(
            n_antennas=10, spws=((1.30e9, 2.0e6, 32),),
            schedule=((0, 12), (1, 6), (2, 24), (1, 6), (2, 24), (1, 6)),
            dead_antenna=6, noise=0.066, rfi_channels=2, rfi_bursts=6, rfi_spike_fraction=0.002,
            fields=(DEFAULT_FIELDS[0], DEFAULT_FIELDS[1],
                    replace(DEFAULT_FIELDS[2], flux=0.003, circular_fraction=1 / 6,
                            variability=50.0)),
            delay_rms=3.0, gain_phase_rms=0.5,
        )
        base.update(changes)
        return cls(**base)

    @classmethod
    def lwa(cls, n_subbands: int = 3, n_channels: int = 4, n_integrations: int = 3,
            **changes) -> "SimConfig":
        """OVRO-LWA-like: contiguous sub-bands of the real OVRO-LWA grid, linear feeds, a
        drift-scan field at the zenith with Cygnus A and Cassiopeia A as point sources."""
        chan0, width = 13.398e6, 23.926e3 * 192 / n_channels
        first = 9  # sub-band starting near 55 MHz, where the sky dominates the LWA
        spws = tuple((chan0 + (first + k) * 192 * 23.926e3, width, n_channels)
                     for k in range(n_subbands))
        start = changes.pop("start_time", LWA_START)
        ra0, dec0 = float(sidereal_time(start, LWA_SITE[0], kind="mean")), LWA_SITE[1]
        ateam = []
        for ra, dec, flux, index in (
            (hms(19, 59, 28.36), dms(40, 44, 2.1), 16500.0, -0.58),   # Cyg A at 74 MHz
            (hms(23, 23, 24.0), dms(58, 48, 54.0), 17000.0, -0.77),   # Cas A at 74 MHz
        ):
            l, m, n = lm_from_radec(ra, dec, ra0, dec0)
            if n > 0:   # in front of the tangent plane
                ateam.append(PointSource(float(l), float(m), flux, index))
        base = dict(
            n_antennas=8, layout="lwa", spws=spws, integration_time=10.0,
            schedule=((0, n_integrations),), scan_gap=0.0, start_time=start,
            fields=(FieldSpec("ZENITH", ra0, dec0, "target", flux=0.0),),
            background=tuple(ateam), reference_frequency=74e6, feeds="linear",
            autocorrelations=True, noise=50.0, rfi_amplitude=2000.0, delay_rms=20.0,
        )
        base.update(changes)
        return cls(**base)
