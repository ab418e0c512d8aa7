"""The simulator: canonical datasets with known gains, bandpasses, sky, noise and RFI.

Measurement equation, per baseline ``(p, q)``, time ``t`` and frequency ``nu``::

    DATA[p, q] = J_p M J_q^H + noise + RFI,   J_p = diag(G_p,h(t) B_p,h(nu))   (h: the two hands)

``M`` is the 2x2 coherency of the sky. Point sources enter with CASA's sign convention (checked
against ``casatasks.ft`` of a component list on the same MS, and WSClean images them where they
are)::

    V(u, v, w) = sum_s S_s(nu) exp(+2 pi i (u l_s + v m_s + w (n_s - 1)) nu / c)

(``../shared/data/vla_small``'s DATA uses the opposite sign: CASA's own ``ft`` + ``uvsub`` of its
``skymodel.txt`` leaves the sources mirrored through the phase centre.)

with (u, v, w) in metres from :func:`radiocal.simulate.geometry.uvw` (``antenna1 - antenna2``).
Circular feeds: ``RR = I + V``, ``LL = I - V``, ``RL = Q + iU``, ``LR = Q - iU``; linear feeds:
``XX = I + Q``, ``YY = I - Q``, ``XY = U + iV``, ``YX = U - iV`` (Q, U only for central sources
with ``linear_fraction``). With leakage, cross-hand phase or feed rotation
(:attr:`SimConfig.full_jones`) ``J_p`` is the full matrix of
:mod:`radiocal.simulate.polarization`. Noise is complex Gaussian with ``noise / sqrt(2)`` per part;
RFI is added after the gains, identically to every correlation. A dead antenna's baselines hold
noise (and RFI) only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from radiocal.astro import SPEED_OF_LIGHT, lm_from_radec, radec_from_lm, to_datetime
from radiocal.errors import ConfigError
from radiocal.store import schema as S
from radiocal.simulate import corruptions, geometry, polarization
from radiocal.simulate.config import FieldSpec, PointSource, SimConfig

_HAND = {"R": 0, "L": 1, "X": 0, "Y": 1}


@dataclass
class Sky:
    """The simulated sky.

    ``fields`` hold the central sources; ``background`` point sources (offsets from the centre)
    surround every field listed in ``background_fields``.
    """

    reference_frequency: float
    fields: tuple[FieldSpec, ...]
    background: tuple[PointSource, ...]
    background_fields: tuple[int, ...]

    def components(self, field_id: int) -> list[PointSource]:
        """Background sources around a field (the central source is not included)."""
        return list(self.background) if field_id in self.background_fields else []

    def skymodel_text(self, field_id: int) -> str:
        """The field's background sources in makesourcedb / DP3 / WSClean text format."""
        spec = self.fields[field_id]
        lines = ["Format = Name, Type, Ra, Dec, I, SpectralIndex, LogarithmicSI, "
                 f"ReferenceFrequency='{self.reference_frequency:.6e}'"]
        for i, src in enumerate(self.components(field_id)):
            ra, dec = radec_from_lm(src.l, src.m, spec.ra, spec.dec)
            lines.append(f"src{i}, POINT, {np.degrees(ra):.8f}deg, {np.degrees(dec):.8f}deg, "
                         f"{src.flux:.6f}, [{src.spectral_index:.4f}], true")
        return "\n".join(lines) + "\n"


@dataclass
class Truth:
    """The answer key of a simulation.

    Attributes
    ----------
    G : (antenna, hand, time) complex128
        Gains at ``times``; hand 0 is R (X), 1 is L (Y). The dead antenna keeps drawn values
        that its (noise-only) data do not use.
    B : (antenna, hand, spw, channel) complex128
        Bandpasses, mean amplitude 1 per antenna/hand/spw; NaN past a spw's last channel.
    delays : (antenna, hand) float64
        Delays, seconds (already inside ``B``'s phase ``2 pi nu tau``).
    times : (time,) float64
        Every integration of the observation, MJD seconds (the datasets' ``time`` values).
    freqs : (spw, channel) float64
        Channel frequencies, Hz; NaN padded.
    dead : int or None
    noise : float
        Noise per complex visibility, Jy.
    sky : Sky
    model : dict partition name -> (time, baseline, frequency, polarization) complex128
        ``M`` without corruptions, noise or RFI.
    rfi : dict partition name -> (time, baseline, frequency, polarization) bool
        Which visibilities carry injected RFI.
    star_I, star_V : (time, spw, channel) float64 or None
        Stokes I and V of the star (the central source of the first target field, ``star_field``),
        Jy, at every time of the observation; NaN padded like ``freqs``.
    star_field : int or None
    leakage : (antenna, 2) complex128 or None
        ``(d_x, d_y)`` of each antenna when the instrument leaks (:attr:`SimConfig.full_jones`).
    xy_phase : (spw, channel) float64 or None
        The instrument's cross-hand phase (radians, ``X = diag(exp(i xy_phase), 1)``).
    phase_centers : (time, 2) float64
        (ra, dec) radians each integration is phased to: its field's, or with
        :attr:`SimConfig.drift_scan` the zenith at its time.
    """

    G: np.ndarray
    B: np.ndarray
    delays: np.ndarray
    times: np.ndarray
    freqs: np.ndarray
    dead: int | None
    noise: float
    sky: Sky
    model: dict = field(default_factory=dict)
    rfi: dict = field(default_factory=dict)
    star_I: np.ndarray | None = None
    star_V: np.ndarray | None = None
    star_field: int | None = None
    leakage: np.ndarray | None = None
    xy_phase: np.ndarray | None = None
    phase_centers: np.ndarray | None = None

    def time_index(self, ds: xr.Dataset) -> np.ndarray:
        """Indices into ``times`` of a dataset's times: (time,) int."""
        idx = np.searchsorted(self.times, ds[S.TIME].values)
        if np.any(idx >= self.times.size) or np.any(self.times[np.minimum(idx, self.times.size - 1)]
                                                     != ds[S.TIME].values):
            raise ValueError("dataset times are not times of this simulation")
        return idx

    def jones(self, ds: xr.Dataset) -> np.ndarray:
        """``G(t) B(nu)`` of each antenna at a dataset's times and frequencies.

        Returns
        -------
        (time, antenna, hand, frequency) complex128
        """
        spw = int(ds.attrs[S.ATTR_SPW_ID])
        n = ds.sizes[S.FREQUENCY]
        g = self.G[:, :, self.time_index(ds)]                           # (antenna, hand, time)
        return g.transpose(2, 0, 1)[..., None] * self.B[None, :, :, spw, :n]

    def corrupt(self, ds: xr.Dataset, vis: np.ndarray) -> np.ndarray:
        """``J_p vis J_q^H`` for visibilities (time, baseline, frequency, polarization)."""
        return _corrupt(self.jones(ds), ds[S.BASELINE_ANTENNA1].values,
                        ds[S.BASELINE_ANTENNA2].values, vis, tuple(ds[S.POLARIZATION].values))


@dataclass
class Simulation:
    """Result of :func:`simulate`: canonical ``datasets``, their ``truth`` and written ``paths``."""

    config: SimConfig
    datasets: list[xr.Dataset]
    truth: Truth
    paths: list[Path] = field(default_factory=list)

    def partition(self, name: str) -> xr.Dataset:
        """The dataset of one partition, by name (``field0_spw0_scan1``)."""
        for ds in self.datasets:
            if ds.attrs[S.ATTR_PARTITION] == name:
                return ds
        raise KeyError(name)


def _times(config: SimConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """Integration mid-times of the whole observation and the indices of each scan's times."""
    dt = float(config.integration_time)
    times, scans, start, k = [], [], float(config.start_time), 0
    for _, n in config.schedule:
        n = int(n)
        times.append(start + (np.arange(n) + 0.5) * dt)
        scans.append(np.arange(k, k + n))
        start += n * dt + float(config.scan_gap)
        k += n
    return np.concatenate(times), scans


def _coherency(stokes_i: np.ndarray, stokes_v: np.ndarray, pols: tuple[str, ...],
               linear=0.0) -> np.ndarray:
    """2x2 coherency entries for the given correlations: (..., polarization) complex128.

    ``linear`` is ``Q + iU`` (broadcast against ``stokes_i``).
    """
    out = np.zeros(stokes_i.shape + (len(pols),), dtype=np.complex128)
    linear = np.broadcast_to(linear, stokes_i.shape)
    q, u = linear.real, linear.imag
    for k, pol in enumerate(pols):
        if pol == "RR":
            out[..., k] = stokes_i + stokes_v
        elif pol == "LL":
            out[..., k] = stokes_i - stokes_v
        elif pol == "RL":
            out[..., k] = q + 1j * u
        elif pol == "LR":
            out[..., k] = q - 1j * u
        elif pol == "XX":
            out[..., k] = stokes_i + q
        elif pol == "YY":
            out[..., k] = stokes_i - q
        elif pol == "XY":
            out[..., k] = u + 1j * stokes_v
        elif pol == "YX":
            out[..., k] = u - 1j * stokes_v
    return out


def _corrupt(jones: np.ndarray, a1: np.ndarray, a2: np.ndarray, vis: np.ndarray,
             pols: tuple[str, ...]) -> np.ndarray:
    """``J_p vis J_q^H`` with diagonal Jones (time, antenna, hand, frequency) per correlation."""
    out = np.empty(vis.shape, dtype=np.complex128)
    for k, pol in enumerate(pols):
        out[..., k] = (jones[:, a1, _HAND[pol[0]], :] * vis[..., k]
                       * np.conj(jones[:, a2, _HAND[pol[1]], :]))
    return out


def _fringe(uvw: np.ndarray, nu: np.ndarray, l, m, n) -> np.ndarray:
    """The DFT phase of the module docstring for a direction ``(l, m, n)`` (scalars, or one per
    time): (time, baseline, frequency) complex128."""
    l, m, n = (np.asarray(x, dtype=np.float64)[..., None] for x in (l, m, n))
    path = uvw[..., 0] * l + uvw[..., 1] * m + uvw[..., 2] * (n - 1.0)   # metres
    return np.exp(2j * np.pi * path[..., None] * (nu / SPEED_OF_LIGHT))


def _sky_model(sky: Sky, field_id: int, uvw: np.ndarray, nu: np.ndarray, stokes_i: np.ndarray,
               stokes_v: np.ndarray, pols: tuple[str, ...],
               centres: np.ndarray | None = None) -> np.ndarray:
    """Model coherencies of one partition: (time, baseline, frequency, polarization) complex128.

    ``stokes_i``, ``stokes_v`` (time, frequency): the central source; background sources are
    added with the DFT phase of the module docstring. ``centres`` (time, 2): the phase centre of
    each time when it is not the field's (drift scans); every source, the central one too, then
    sits at its own direction cosines about it.
    """
    spec = sky.fields[field_id]
    shape = (uvw.shape[0], uvw.shape[1], nu.size)
    central = np.ones(shape)
    if centres is not None:
        central = _fringe(uvw, nu, *lm_from_radec(spec.ra, spec.dec, centres[:, 0], centres[:, 1]))
    total_i = stokes_i[:, None, :] * central
    for src in sky.components(field_id):
        if centres is None:
            lmn = (src.l, src.m, np.sqrt(1.0 - src.l ** 2 - src.m ** 2))
        else:
            ra, dec = radec_from_lm(src.l, src.m, spec.ra, spec.dec)
            lmn = lm_from_radec(ra, dec, centres[:, 0], centres[:, 1])
        flux = src.flux * (nu / sky.reference_frequency) ** src.spectral_index
        total_i = total_i + flux * _fringe(uvw, nu, *lmn)
    linear = spec.linear_fraction * np.exp(2j * spec.polarization_angle) * stokes_i[:, None, :] * central
    return _coherency(total_i, stokes_v[:, None, :] * central, pols, linear)


def _dataset(config, ants, a1, a2, times, nu, spw, field_id, scan, vis, uvw, model, weight):
    spec = config.fields[field_id]
    f0, width, _ = config.spws[spw]
    pols = config.polarizations
    dims4 = (S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION)
    data_vars = {
        S.VISIBILITY: (dims4, vis.astype(np.complex64)),
        S.FLAG: (dims4, np.zeros(vis.shape, dtype=bool)),
        S.WEIGHT: (dims4, np.full(vis.shape, weight, dtype=np.float32)),
        S.UVW: ((S.TIME, S.BASELINE, S.UVW_LABEL), uvw),
        S.ROW_PRESENT: ((S.TIME, S.BASELINE), np.ones(vis.shape[:2], dtype=bool)),
    }
    if config.model_column:
        data_vars[S.VISIBILITY_MODEL] = (dims4, model.astype(np.complex64))
    coords = {
        S.TIME: times,
        S.FREQUENCY: nu,
        S.POLARIZATION: np.array(pols),
        S.UVW_LABEL: np.array(S.UVW_LABELS),
        S.CARTESIAN: np.array(S.CARTESIAN_LABELS),
        S.BASELINE_ANTENNA1: (S.BASELINE, a1),
        S.BASELINE_ANTENNA2: (S.BASELINE, a2),
        S.ANTENNA_NAME: (S.ANTENNA, ants["name"]),
        S.ANTENNA_STATION: (S.ANTENNA, ants["station"]),
        S.ANTENNA_POSITION: ((S.ANTENNA, S.CARTESIAN), ants["position"]),
        S.ANTENNA_DIAMETER: (S.ANTENNA, ants["diameter"]),
        S.ANTENNA_MOUNT: (S.ANTENNA, ants["mount"]),
        S.CHANNEL_WIDTH: (S.FREQUENCY, np.full(nu.size, float(width))),
        S.INTEGRATION_TIME: (S.TIME, np.full(times.size, float(config.integration_time))),
    }
    attrs = {
        S.ATTR_FIELD_ID: int(field_id),
        S.ATTR_FIELD_NAME: spec.name,
        S.ATTR_FIELD_CODE: spec.code,
        S.ATTR_PHASE_CENTER: [float(spec.ra), float(spec.dec)],
        S.ATTR_SPW_ID: int(spw),
        S.ATTR_SPW_NAME: f"spw{spw}",
        S.ATTR_FREQ_REF: "TOPO",
        S.ATTR_REF_FREQUENCY: float(f0),
        S.ATTR_SCAN: int(scan),
        S.ATTR_INTENTS: spec.intents,
        S.ATTR_TELESCOPE: config.telescope_name,
        S.ATTR_OBSERVER: config.observer,
        S.ATTR_PROJECT: config.project,
        S.ATTR_SOURCES: [],
        S.ATTR_PARTITION: S.partition_name(field_id, spw, scan),
    }
    return xr.Dataset(data_vars, coords, attrs)


def simulate(config: SimConfig | None = None) -> Simulation:
    """Simulate an observation in memory.

    Parameters
    ----------
    config : SimConfig, optional
        Defaults to ``SimConfig()``: 6 VLA-like antennas, 3 fields, 4 scans, 16 channels.

    Returns
    -------
    Simulation
        ``datasets``: one canonical, numpy-backed xr.Dataset per (field, spw, scan), ordered by
        scan then spw; ``truth``: the :class:`Truth` they were made from.
    """
    config = SimConfig() if config is None else config
    # One stream per component, so that changing e.g. the noise leaves the gains alone.
    seeds = np.random.SeedSequence(int(config.seed)).spawn(6)
    rng_layout, rng_gain, rng_bp, rng_noise, rng_rfi, rng_pol = (np.random.default_rng(s)
                                                                 for s in seeds)

    ants = geometry.layout(config, rng_layout)
    a1, a2 = geometry.baselines(int(config.n_antennas), config.autocorrelations)
    times, scan_index = _times(config)
    freqs = corruptions.frequencies(config)
    G = corruptions.gains(config, rng_gain, times)
    bandpass, delays = corruptions.bandpasses(config, rng_bp, freqs)
    plan = corruptions.rfi_plan(config, rng_rfi)
    pols = config.polarizations
    leakage = None
    if config.full_jones:
        leakage, ratio = polarization.instrument(config, rng_pol)
        G[:, 1, :] = G[:, 0, :] * ratio[:, None]
    band = (min(f[0] for f in freqs), max(f[-1] for f in freqs))

    background_fields = tuple(i for i, f in enumerate(config.fields) if "target" in f.roles)
    sky = Sky(float(config.reference_frequency), tuple(config.fields), tuple(config.background),
              background_fields)
    field_of_time = np.empty(times.size, dtype=int)
    for (fid, _), idx in zip(config.schedule, scan_index):
        field_of_time[idx] = fid
    centres = (geometry.zenith(times, ants["site"]) if config.drift_scan else
               np.array([[config.fields[f].ra, config.fields[f].dec] for f in field_of_time]))
    # Central-source spectra over the whole observation, per field and spw: (time, frequency)
    spectra = {
        (fid, spw): corruptions.source_spectra(spec, nu, times, field_of_time == fid,
                                               config.reference_frequency, band)
        for fid, spec in enumerate(config.fields) for spw, nu in enumerate(freqs)
    }
    star = background_fields[0] if background_fields else None

    dead = config.dead_antenna
    live = np.ones(a1.size, dtype=bool) if dead is None else (a1 != dead) & (a2 != dead)
    weight = 1.0 / config.noise ** 2 if config.noise > 0 else 1.0
    truth = Truth(
        G=G, B=corruptions.pad(bandpass), delays=delays, times=times,
        freqs=corruptions.pad(freqs), dead=dead, noise=float(config.noise), sky=sky,
        star_field=star, leakage=leakage, phase_centers=centres,
        xy_phase=(corruptions.pad([polarization.cross_phase(config, nu) for nu in freqs])
                  if config.full_jones else None),
    )
    if star is not None:
        # (time, frequency) per spw -> (time, spw, channel)
        truth.star_I = corruptions.pad([spectra[(star, s)][0] for s in range(len(freqs))])
        truth.star_V = corruptions.pad([spectra[(star, s)][1] for s in range(len(freqs))])

    datasets = []
    for scan_no, ((fid, _), tidx) in enumerate(zip(config.schedule, scan_index), start=1):
        spec = config.fields[fid]
        t = times[tidx]
        drift = centres[tidx] if config.drift_scan else None
        ra, dec = (drift[:, 0], drift[:, 1]) if config.drift_scan else (spec.ra, spec.dec)
        uvw = geometry.uvw(ants["position"], a1, a2, t, ra, dec)
        for spw, nu in enumerate(freqs):
            stokes_i, stokes_v = (s[tidx] for s in spectra[(fid, spw)])
            model = _sky_model(sky, fid, uvw, nu, stokes_i, stokes_v, pols, drift)
            jones = G[:, :, tidx].transpose(2, 0, 1)[..., None] * bandpass[spw][None]
            if config.full_jones:
                chi = (polarization.parallactic(t, ants["position"], ants["mount"], spec.ra,
                                                spec.dec) if config.parallactic
                       else np.zeros((t.size, int(config.n_antennas))))
                full = polarization.jones(jones, leakage, polarization.cross_phase(config, nu),
                                          chi, "circular" if config.feeds == "circular"
                                          else "linear")
                vis = polarization.corrupt(full, a1, a2, model, pols)
            else:
                vis = _corrupt(jones, a1, a2, model, pols)
            vis[:, ~live] = 0.0
            if config.noise > 0:
                draws = rng_noise.standard_normal(vis.shape + (2,))
                vis += (config.noise / np.sqrt(2)) * (draws[..., 0] + 1j * draws[..., 1])
            mask, values = corruptions.rfi(config, rng_rfi, plan, spw, tidx, a1.size)
            vis += values[..., None]
            ds = _dataset(config, ants, a1, a2, t, nu, spw, fid, scan_no, vis, uvw, model, weight)
            name = ds.attrs[S.ATTR_PARTITION]
            truth.model[name] = model
            truth.rfi[name] = np.repeat(mask[..., None], len(pols), axis=-1)
            datasets.append(ds)
    return Simulation(config, datasets, truth)


def simulate_ms(path, config: SimConfig | None = None, overwrite: bool = False) -> Simulation:
    """Simulate, then write one Measurement Set with :func:`radiocal.ms.write.write_ms`.

    Parameters
    ----------
    path : str or Path
        The MS to create.
    config : SimConfig, optional
    overwrite : bool
        Replace an existing ``path``; otherwise an existing output is an error.
    """
    from radiocal.ms.write import write_ms

    if config is not None and config.drift_scan:
        raise ConfigError("simulator: drift-scan integrations are written one file each "
                          "(lwa_files); one MS has one phase centre per field")
    sim = simulate(config)
    write_ms(sim.datasets, str(path), overwrite=overwrite)
    sim.paths = [Path(path)]
    return sim


def lwa_name(time: float, first_frequency: float) -> str:
    """OVRO-LWA file name ``YYYYMMDD_HHMMSS_XXMHz.ms`` of an integration starting at ``time``
    (MJD seconds) in a sub-band whose first channel is ``first_frequency`` Hz (rounded MHz, as the
    real files are named: 13, 18, 23, ... MHz)."""
    stamp = to_datetime(np.floor(time + 1e-6))
    return f"{stamp:%Y%m%d_%H%M%S}_{int(round(first_frequency / 1e6))}MHz.ms"


def lwa_files(directory, config: SimConfig | None = None, overwrite: bool = False) -> Simulation:
    """Write OVRO-LWA-style files: one MS per integration per sub-band.

    Each file holds one time and one spectral window (numbered 0 inside the file, as in the real
    files), all baselines, and is named by :func:`lwa_name`. With ``config.drift_scan`` each is
    phased to the zenith of its own time (FIELD PHASE_DIR, UVW and DATA), as the real files are. ``truth`` keeps the whole
    observation, with spectral windows numbered in frequency order.

    Parameters
    ----------
    directory : str or Path
        Created if missing.
    config : SimConfig, optional
        Defaults to ``SimConfig.lwa()`` (8 antennas, 3 sub-bands of 4 channels, 3 integrations).
    overwrite : bool
        Replace existing files of the same names.

    Returns
    -------
    Simulation
        ``paths``: the files written, sorted by name.
    """
    from radiocal.ms.write import write_ms

    config = SimConfig.lwa() if config is None else config
    names = [lwa_name(config.start_time, f0) for f0, _, _ in config.spws]
    if len({n.rsplit("_", 1)[1] for n in names}) != len(names):
        raise ConfigError("simulator: LWA sub-bands must start in different whole MHz "
                          "(file names carry the start frequency in MHz)")
    sim = simulate(config)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in sim.datasets:
        f0 = config.spws[ds.attrs[S.ATTR_SPW_ID]][0]
        for it in range(ds.sizes[S.TIME]):
            one = ds.isel({S.TIME: [it]})
            one.attrs = dict(ds.attrs)
            one.attrs[S.ATTR_SPW_ID] = 0
            one.attrs[S.ATTR_PARTITION] = S.partition_name(
                ds.attrs[S.ATTR_FIELD_ID], 0, ds.attrs[S.ATTR_SCAN])
            centre = sim.truth.phase_centers[sim.truth.time_index(one)[0]]
            one.attrs[S.ATTR_PHASE_CENTER] = [float(centre[0]), float(centre[1])]
            t_start = float(one[S.TIME].values[0] - 0.5 * config.integration_time)
            path = directory / lwa_name(t_start, f0)
            write_ms([one], str(path), overwrite=overwrite)
            paths.append(path)
    sim.paths = sorted(paths)
    return sim
