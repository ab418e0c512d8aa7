"""What the simulator does to the sky: antenna gains, bandpasses with delays, the variable star and
RFI. Plain numpy on small arrays; every draw comes from a Generator handed in by the caller.
"""

from __future__ import annotations

import numpy as np

from radiocal.simulate.config import FieldSpec, SimConfig

N_HANDS = 2


def _smooth_drift(rng: np.random.Generator, shape: tuple, times: np.ndarray,
                  timescale: float) -> np.ndarray:
    """Zero-mean, unit-rms smooth random processes: shape + (time,).

    A sum of three sinusoids with random periods between one and four ``timescale`` and random
    phases: smooth on the timescale, reproducible, and cheap.
    """
    periods = timescale * rng.uniform(1.0, 4.0, shape + (3,))
    phases = rng.uniform(0.0, 2 * np.pi, shape + (3,))
    t = (times - times[0])[(None,) * (len(shape) + 1)]
    x = np.sin(2 * np.pi * t / periods[..., None] + phases[..., None]).sum(axis=-2)
    return x / np.sqrt(1.5)


def gains(config: SimConfig, rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    """Time-variable complex gains: (antenna, hand, time) complex128.

    Each gain has a random starting phase, an amplitude scattered by ``gain_amp_rms`` about 1 and
    amplitude and phase drifts on ``gain_timescale``.
    """
    shape = (int(config.n_antennas), N_HANDS)
    phase0 = rng.uniform(-np.pi, np.pi, shape)[..., None]
    amp0 = rng.standard_normal(shape)[..., None]
    amp = 1.0 + config.gain_amp_rms * (amp0 + _smooth_drift(rng, shape, times,
                                                             config.gain_timescale)) / np.sqrt(2)
    phase = phase0 + config.gain_phase_rms * _smooth_drift(rng, shape, times,
                                                           config.gain_timescale)
    return np.clip(amp, 0.2, None) * np.exp(1j * phase)


def frequencies(config: SimConfig) -> list[np.ndarray]:
    """Channel frequencies of each spectral window: list of (frequency,) float64, Hz."""
    return [f0 + width * np.arange(int(n), dtype=np.float64) for f0, width, n in config.spws]


def pad(arrays: list[np.ndarray], fill=np.nan) -> np.ndarray:
    """Stack arrays whose last axes differ in length, padded with ``fill``: (..., spw, channel)."""
    n = max(a.shape[-1] for a in arrays)
    out = np.full(arrays[0].shape[:-1] + (len(arrays), n), fill,
                  dtype=np.result_type(arrays[0].dtype, type(fill)))
    for i, a in enumerate(arrays):
        out[..., i, : a.shape[-1]] = a
    return out


def bandpasses(config: SimConfig, rng: np.random.Generator,
               freqs: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Bandpass per antenna, hand and spectral window, delays included.

    ``B(nu) = A(nu) exp(i (2 pi nu tau + ripple phase))``: amplitude with a band-edge roll-off and
    a ripple, normalised to a mean amplitude of 1 per antenna/hand/spw; ``tau`` is the delay.

    Returns
    -------
    bandpass : list over spw of (antenna, hand, frequency) complex128
    delays : (antenna, hand) float64, seconds
    """
    shape = (int(config.n_antennas), N_HANDS)
    delays = config.delay_rms * 1e-9 * rng.standard_normal(shape)
    out = []
    for (f0, width, n), nu in zip(config.spws, freqs):
        centre, half = f0 + width * (n - 1) / 2, max(width * n / 2, width)
        x = ((nu - centre) / half)[None, None, :]                        # -1 .. 1 across the band
        cycles = rng.uniform(0.5, 1.5, shape + (2,))[..., None]
        offsets = rng.uniform(0, 2 * np.pi, shape + (2,))[..., None]
        amp = (1 - config.bandpass_rolloff * np.abs(x) ** 6) * (
            1 + config.bandpass_ripple * np.sin(np.pi * cycles[..., 0, :] * x + offsets[..., 0, :]))
        amp /= amp.mean(axis=-1, keepdims=True)
        phase = 0.5 * config.bandpass_ripple * np.sin(np.pi * cycles[..., 1, :] * x
                                                      + offsets[..., 1, :])
        out.append(amp * np.exp(1j * (2 * np.pi * nu[None, None, :] * delays[..., None] + phase)))
    return out, delays


def source_spectra(spec: FieldSpec, nu: np.ndarray, times: np.ndarray, observed: np.ndarray,
                   reference_frequency: float, band: tuple[float, float]) -> tuple:
    """Stokes I and V of a field's central source: (time, frequency) float64 each, Jy.

    The quiescent emission is a power law with ``V = circular_fraction * I``. A field with
    ``variability > 0`` also flares: a Gaussian in time and frequency whose peak time drifts
    across the band (like a stellar radio burst), centred in the field's observed time span
    ``observed`` (time,) bool, with ``V = flare_circular_fraction * I``.
    """
    quiet = spec.flux * (nu / reference_frequency) ** spec.spectral_index
    stokes_i = np.broadcast_to(quiet[None, :], (times.size, nu.size)).copy()
    stokes_v = spec.circular_fraction * stokes_i
    if spec.variability > 0 and observed.any():
        t_obs = times[observed]
        t_mid, span = 0.5 * (t_obs[0] + t_obs[-1]), max(t_obs[-1] - t_obs[0], 1.0)
        lo, hi = band
        nu_mid, bw = 0.5 * (lo + hi), max(hi - lo, 1.0)
        sigma_t, sigma_nu = span / 8.0, bw / 3.0
        t_peak = t_mid + 0.5 * sigma_t * (nu - nu_mid) / (bw / 2)      # drifting burst
        flare = spec.variability * spec.flux * np.exp(
            -0.5 * ((times[:, None] - t_peak[None, :]) / sigma_t) ** 2
            - 0.5 * ((nu[None, :] - nu_mid) / sigma_nu) ** 2)
        stokes_i += flare
        stokes_v += spec.flare_circular_fraction * flare
    return stokes_i, stokes_v


def rfi_plan(config: SimConfig, rng: np.random.Generator) -> dict:
    """Where the persistent and burst RFI sit: persistent channels per spw, burst time indices."""
    channels = [np.sort(rng.choice(int(n), config.rfi_channels, replace=False))
                for _, _, n in config.spws]
    bursts = np.sort(rng.choice(config.n_times, config.rfi_bursts, replace=False))
    return dict(channels=channels, bursts=bursts)


def rfi(config: SimConfig, rng: np.random.Generator, plan: dict, spw: int,
        time_index: np.ndarray, n_baselines: int) -> tuple[np.ndarray, np.ndarray]:
    """RFI of one partition, the same in every correlation.

    Parameters
    ----------
    plan : from :func:`rfi_plan`
    spw : spectral window index
    time_index : (time,) indices of the partition's times in the whole observation

    Returns
    -------
    mask : (time, baseline, frequency) bool
    values : (time, baseline, frequency) complex128, zero outside the mask
    """
    n_chan = int(config.spws[spw][2])
    shape = (time_index.size, n_baselines, n_chan)
    mask = np.zeros(shape, dtype=bool)
    mask[:, :, plan["channels"][spw]] = True
    mask[np.isin(time_index, plan["bursts"])] = True
    if config.rfi_spike_fraction > 0:
        mask |= rng.random(shape) < config.rfi_spike_fraction
    values = np.zeros(shape, dtype=np.complex128)
    if config.rfi_amplitude == 0:
        mask[:] = False
    n = int(mask.sum())
    if n:
        amp = config.rfi_amplitude * np.exp(0.5 * rng.standard_normal(n))
        values[mask] = amp * np.exp(2j * np.pi * rng.random(n))
    return mask, values
