"""Fixtures for imaging tests: a tiny simulated MS whose CORRECTED_DATA holds known point sources.

The MS comes from the project's simulator (layout, UVW, MS writing); its CORRECTED_DATA is set
here to point sources with the Measurement Set's phase convention, the one CASA's ``ft`` and
WSClean use: with the UVW the MS stores, a source at direction cosines (l, m) has visibility
``S exp(+2 pi i (u l + v m + w (n - 1)) nu / c)`` (checked against CASA 6.7 ``ft`` of a
component list on this MS, to 1e-8 rad).
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from radiocal.store import schema as S

C = 299792458.0
SIZE = 256                  # pixels
SCALE_ARCSEC = 30.0         # the beam is ~2.3 arcmin: ~5 pixels across it
OFFSET_PIXELS = (40, -25)   # target source: 40 pixels east (l > 0), 25 south of the centre
TARGET_FLUX = 2.0           # Jy, flat spectrum
CAL_FLUX = 1.0              # Jy at the calibrator's phase centre
NOISE = 0.01                # Jy per complex visibility in CORRECTED_DATA
RA0, DEC0 = math.radians(200.0), math.radians(30.0)


def point_visibilities(uvw: np.ndarray, nu: np.ndarray, l: float, m: float, flux: float):
    """(time, baseline, frequency) complex128 of a point source, MS sign convention."""
    n1 = math.sqrt(1.0 - l * l - m * m) - 1.0
    path = uvw[..., 0] * l + uvw[..., 1] * m + uvw[..., 2] * n1
    return flux * np.exp(2j * np.pi * path[..., None] * nu / C)


def wsclean_or_skip() -> str:
    exe = shutil.which("wsclean")
    if exe is None:
        pytest.skip("wsclean is not on PATH (Debian/Ubuntu package 'wsclean')")
    return exe


@pytest.fixture(scope="session")
def sky():
    """Where the target's source is: (l, m), RA/Dec radians, flux, and the pixel geometry."""
    from radiocal.astro import radec_from_lm

    scale = math.radians(SCALE_ARCSEC / 3600.0)
    l, m = OFFSET_PIXELS[0] * scale, OFFSET_PIXELS[1] * scale
    ra, dec = radec_from_lm(l, m, RA0, DEC0)
    return {"l": l, "m": m, "ra": ra, "dec": dec, "flux": TARGET_FLUX, "size": SIZE,
            "scale": f"{SCALE_ARCSEC:g}arcsec", "offset": OFFSET_PIXELS}


@pytest.fixture(scope="session")
def point_ms(tmp_path_factory, sky) -> str:
    """CAL (field 0, 1 Jy at its centre) then TGT (field 1, 2 Jy off-centre): 10 antennas,
    4 channels, 16 x 5 min, RR RL LR LL. DATA is the simulator's (gain-corrupted CAL, noise on
    TGT); CORRECTED_DATA the true sky plus noise."""
    simulator = pytest.importorskip("radiocal.simulate", reason="needs the project's simulator")
    from radiocal.ms.write import write_ms

    config = simulator.SimConfig(
        n_antennas=10, spws=((1.30e9, 4.0e6, 4),), schedule=((0, 8), (1, 8)),
        integration_time=300.0, scan_gap=0.0,
        fields=(simulator.FieldSpec("CAL", RA0 + 0.05, DEC0, "flux,bandpass", flux=CAL_FLUX),
                simulator.FieldSpec("TGT", RA0, DEC0, "target", flux=0.0)),
        background=(), noise=NOISE, seed=7)
    rng = np.random.default_rng(11)
    datasets = []
    for ds in simulator.simulate(config).datasets:
        uvw, nu = ds[S.UVW].values, ds[S.FREQUENCY].values
        if ds.attrs[S.ATTR_FIELD_NAME] == "TGT":
            stokes_i = point_visibilities(uvw, nu, sky["l"], sky["m"], TARGET_FLUX)
        else:
            stokes_i = point_visibilities(uvw, nu, 0.0, 0.0, CAL_FLUX)
        pols = [str(p) for p in ds[S.POLARIZATION].values]
        vis = np.zeros(ds[S.VISIBILITY].shape, dtype=np.complex128)
        for k, pol in enumerate(pols):
            if pol[0] == pol[1]:
                vis[..., k] = stokes_i   # unpolarised: RR = LL = I
        vis += NOISE / math.sqrt(2) * (rng.standard_normal(vis.shape)
                                       + 1j * rng.standard_normal(vis.shape))
        datasets.append(ds.assign({S.VISIBILITY_CORRECTED: (ds[S.VISIBILITY].dims,
                                                            vis.astype(np.complex64))}))
    path = tmp_path_factory.mktemp("imaging") / "point.ms"
    write_ms(datasets, path)
    return str(path)


@pytest.fixture(scope="session")
def data_only_ms(tmp_path_factory, point_ms) -> str:
    """A copy of ``point_ms`` without CORRECTED_DATA (as a raw observation would be)."""
    from casacore.tables import table

    path = tmp_path_factory.mktemp("raw") / "raw.ms"
    shutil.copytree(point_ms, path)
    with table(str(path), readonly=False, ack=False) as t:
        t.removecols(["CORRECTED_DATA"])
    return str(path)


@pytest.fixture
def wsclean() -> str:
    return wsclean_or_skip()


def peak(image: np.ndarray) -> tuple[int, int, float]:
    """(x, y, value) of the maximum of a (dec, ra) plane (tclean blanks beyond the primary beam)."""
    y, x = np.unravel_index(int(np.nanargmax(image)), image.shape)
    return int(x), int(y), float(image[y, x])
