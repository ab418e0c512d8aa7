"""The flaggers' parameters: one frozen dataclass per flagger of a strategy, whose fields are
that flagger's options in a strategy file (names, defaults and help: their one declaration).
The detectors' kernels take them whole (:func:`radiocal._numba.record`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SCANS = ("short", "long", "all")


def _opt(default, help_text):
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class ClipParams:
    """NaN/Inf, zero weight, exact zeros and an amplitude range."""

    min_amplitude: float = _opt(0.0, "flag |V| below this")
    max_amplitude: float = _opt(math.inf, "flag |V| above this")
    zeros: bool = _opt(True, "flag samples that are exactly 0")


@dataclass(frozen=True)
class NoParams:
    """No parameters."""


@dataclass(frozen=True)
class ShadowParams:
    tolerance: float = _opt(0.0, "metres of dish overlap tolerated before flagging")


@dataclass(frozen=True)
class QuackParams:
    begin_seconds: float = _opt(0.0, "flag this many seconds at the start of each scan")
    end_seconds: float = _opt(0.0, "flag this many seconds at the end of each scan")


@dataclass(frozen=True)
class ElevationParams:
    min_elevation: float = _opt(0.0, "degrees; flag when either antenna is lower")
    max_elevation: float = _opt(90.0, "degrees; flag when either antenna is higher")


# A merged wideband window (CASA's combinespws, receivers or sub-bands of different system
# temperature) steps in noise; one noise level per plane flags its noisier part whole.
NOISE_CHANNELS_HELP = ("the noise is estimated per channel as a running median over +/- this "
                       "many channels of each channel's residual MAD (a step in noise between "
                       "sub-bands is kept; 0: one noise level per plane)")


def _scans(default="all"):
    return _opt(default, "which scans run this flagger: short (fewer integrations than the "
                         "strategy's long_scan), long, or all")


@dataclass(frozen=True)
class SumThresholdParams:
    scans: str = _scans()
    threshold: float = _opt(6.0, "single-sample threshold in robust sigma (final iteration)")
    rho: float = _opt(1.5, "threshold drop per doubling of the window")
    iterations: int = _opt(3, "background/threshold iterations (thresholds x4, x2, x1)")
    sigma_time: float = _opt(3.0, "background kernel width along time, integrations")
    sigma_frequency: float = _opt(0.0, "background kernel width along frequency, channels "
                                       "(0: background along time only, per channel)")
    robust_iterations: int = _opt(2, "bisquare passes of the background fit")
    degree: int = _opt(2, "local polynomial degree of the background fit, 0 to 3")
    max_window_time: int = _opt(64, "largest SumThreshold window along time")
    max_window_frequency: int = _opt(128, "largest SumThreshold window along frequency")
    combine_correlations: bool = _opt(True, "share detections across correlations between "
                                            "iterations")
    variance_test: bool = _opt(True, "flag channels/integrations whose residual variance is "
                                     "beyond the chi-square tail at `threshold` sigma")
    line_threshold: float = _opt(0.0, "steady-line test threshold in robust spreads (0: off; "
                                   "for calibrated data, where the band is flat)")
    line_sigma_frequency: float = _opt(2.0, "kernel width of the spectrum's smooth fit, channels")
    max_line_width: int = _opt(8, "widest steady line looked for, channels")
    noise_channels: int = _opt(16, NOISE_CHANNELS_HELP)


@dataclass(frozen=True)
class MadParams:
    scans: str = _scans()
    half_window_time: int = _opt(2, "sliding window half-width along time")
    half_window_frequency: int = _opt(2, "sliding window half-width along frequency")
    threshold: float = _opt(5.0, "point outliers: deviation from the window median, in sigma")
    variance_threshold: float = _opt(3.0, "raised variance: window sigma over typical sigma")
    sigma_time: float = _opt(3.0, "background kernel width along time")
    sigma_frequency: float = _opt(0.0, "background kernel width along frequency (0: time only)")
    robust_iterations: int = _opt(2, "bisquare passes of the background fit")
    degree: int = _opt(2, "local polynomial degree of the background fit, 0 to 3")
    noise_channels: int = _opt(16, NOISE_CHANNELS_HELP)


@dataclass(frozen=True)
class SpectralParams:
    """Per spectrum along frequency, on the complex visibilities (``spectral.py``)."""

    scans: str = _scans()
    threshold: float = _opt(6.0, "single-sample threshold in standard normal units (final "
                                 "iteration)")
    rho: float = _opt(1.5, "threshold drop per doubling of the window")
    iterations: int = _opt(3, "fit/threshold iterations (thresholds x4, x2, x1)")
    widths: tuple = _opt((1.5, 3.0, 6.0, 12.0, 24.0), "candidate background kernel widths, "
                         "channels; cross-validation picks one per baseline")
    tolerance: float = _opt(1.1, "prefer a wider kernel while its cross-validation error is "
                                 "within this factor of the best")
    noise_block: int = _opt(32, "channels per block of the noise estimate")
    burst_factor: float = _opt(4.0, "flag a whole spectrum whose noise power exceeds this "
                                    "factor times its baseline's median over time (3+ "
                                    "integrations)")
    robust_iterations: int = _opt(2, "bisquare passes of the first background fit")
    degree: int = _opt(3, "local polynomial degree of the background fit, 0 to 3 (odd: a "
                          "band edge, where the fit extrapolates, is fitted as well as the "
                          "middle)")
    max_window: int = _opt(64, "largest SumThreshold window, channels")
    amplitude_snr: float = _opt(2.0, "judge a baseline's correlation on its amplitude when its "
                                     "phase is incoherent from channel to channel and its "
                                     "amplitude steady at this S/N or more (0: never)")
    combine_correlations: bool = _opt(True, "a sample flagged in any correlation is flagged "
                                            "in all between iterations")
    subtract_model: object = _opt("auto", "detect on the data minus VISIBILITY_MODEL (times its "
                                          "gain along frequency): auto (when the partition has "
                                          "one and column is VISIBILITY_CORRECTED), true "
                                          "(required) or false")
    model_gain_width: float = _opt(8.0, "Gaussian width, channels, of the fit of the model's "
                                        "gain along frequency (bandpass, delays)")
    coarse_channel: float = _opt(0.0, "Hz; above 0, each coarse channel of this width (a "
                                      "polyphase filterbank's, centred on its multiples: the "
                                      "MWA's 1.28 MHz) is fitted on its own, its bandpass being "
                                      "its own (when it holds 4 or more channels)")


@dataclass(frozen=True)
class ArrayParams:
    """Statistics across the array: cells most baselines flag are flagged on all of them."""

    scans: str = _scans()
    fraction: float = _opt(0.5, "flag a (time, channel, correlation) on every baseline when "
                                "more than this fraction of the live cross-correlations have it "
                                "flagged (1 disables)")


@dataclass(frozen=True)
class AntennaHealthParams:
    antennas: tuple = _opt((), "antenna names or indices always flagged")
    channel_window: int = _opt(8, "channels per coherence measurement")
    dead_fraction: float = _opt(0.2, "dead below this fraction of the peers' coherence excess")
    min_coherence_excess: float = _opt(0.3, "peers' coherence excess needed to judge deadness")
    amplitude_factor: float = _opt(5.0, "amplitude outlier: factor from the peers' median")
    amplitude_sigma: float = _opt(5.0, "amplitude outlier: robust sigmas from the peers' median")


@dataclass(frozen=True)
class DilateParams:
    eta_time: float = _opt(0.2, "SIR dilation along time (0 disables)")
    eta_frequency: float = _opt(0.2, "SIR dilation along frequency (0 disables)")
    grow_time: float = _opt(1.0, "flag a channel at all times when more than this fraction of "
                                 "it is flagged (1 disables)")
    grow_frequency: float = _opt(1.0, "flag an integration in all channels when more than this "
                                      "fraction of it is flagged (1 disables)")
