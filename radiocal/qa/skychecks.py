"""Checks of a sky-model (OVRO-LWA) calibration: the A-team on the images, the delays.

What the OVRO-LWA calibration pipeline's QA looks at, measured here without CASA:

- each modelled source's flux density and position on the WSClean images of the calibrated data
  (the peak within ``SEARCH_DEG`` of the model position, refined to a fraction of a pixel by a
  parabola through the peak and its neighbours), against the apparent model (dipole beam
  applied) at the image's frequency; with ``channels_out > 1`` one value per channel image, the
  source's spectrum;
- the delay solutions against a reference table (the sky_bandpass step's ``delay_reference``),
  the median over antennas removed as :func:`radiocal.calibration.postprocess.compare_delays`
  does.

A source more than ``FLUX_TOLERANCE`` off its model flux or ``POSITION_TOLERANCE_DEG`` off its
position on the band-averaged image fails the run (filed in ``unsuccessful/``): the bandpass
then does not reproduce the sky it was solved against.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

FLUX_TOLERANCE = 0.3           # |measured / model - 1| on the band-averaged image
POSITION_TOLERANCE_DEG = 1.0   # offset from the model position (LWA: ~0.25 deg beam at 60 MHz)
SEARCH_DEG = 2.0               # look for a source's peak this far from its model position

_CHANNEL = re.compile(r"^(?P<prefix>.+?)-(?P<channel>\d{4}|MFS)-image$")


def image_groups(images_dir: Path) -> dict:
    """``{prefix: {"band": path or None, "channels": [paths]}}`` of WSClean ``*-image.fits``."""
    groups: dict = {}
    for path in sorted(Path(images_dir).glob("*-image.fits")):
        match = _CHANNEL.match(path.name[:-len(".fits")])
        prefix = match.group("prefix") if match else path.name[:-len("-image.fits")]
        group = groups.setdefault(prefix, {"band": None, "channels": []})
        if match and match.group("channel") != "MFS":
            group["channels"].append(path)
        else:
            group["band"] = path
    for group in groups.values():
        if group["band"] is None and len(group["channels"]) == 1:
            group["band"] = group["channels"][0]
    return groups


def _parabola(left, centre, right) -> float:
    """Offset (pixels, within +-0.5) of a parabola's vertex through three samples."""
    denominator = left - 2 * centre + right
    return 0.0 if denominator >= 0 else float(np.clip(0.5 * (left - right) / denominator, -0.5, 0.5))


def measure_source(header: dict, plane: np.ndarray, ra: float, dec: float) -> dict | None:
    """Peak flux density and position offset of the source expected at (ra, dec) radians.

    Returns None when the direction is outside the image or behind its tangent plane.
    """
    from radiocal.errors import InputError
    from radiocal.imaging.fits import sky_to_pixel

    try:
        x0, y0 = sky_to_pixel(header, ra, dec)
    except InputError:
        return None
    ny, nx = plane.shape
    dx, dy = float(header["CDELT1"]), float(header["CDELT2"])
    radius = max(2, int(math.ceil(SEARCH_DEG / min(abs(dx), abs(dy)))))
    xi, yi = int(round(x0)), int(round(y0))
    if not (0 <= xi < nx and 0 <= yi < ny):
        return None
    box = plane[max(0, yi - radius):yi + radius + 1, max(0, xi - radius):xi + radius + 1]
    if not np.isfinite(box).any():
        return None
    py, px = np.unravel_index(np.nanargmax(box), box.shape)
    py, px = py + max(0, yi - radius), px + max(0, xi - radius)
    peak = float(plane[py, px])
    fx = _parabola(*plane[py, px - 1:px + 2]) if 0 < px < nx - 1 else 0.0
    fy = _parabola(*plane[py - 1:py + 2, px]) if 0 < py < ny - 1 else 0.0
    # offset in the image plane (direction cosines): the angle for offsets of a few degrees
    offset = math.hypot((px + fx - x0) * dx, (py + fy - y0) * dy)
    return {"measured_jy": peak, "offset_deg": offset}


def _frequency(header: dict) -> float:
    for axis in (3, 4):
        if str(header.get(f"CTYPE{axis}", "")).upper() == "FREQ":
            return float(header[f"CRVAL{axis}"])
    return float("nan")


def ateam_on_images(images_dir: Path, models: list) -> list[dict]:
    """Every modelled source measured on every image (band-averaged and per channel).

    Parameters
    ----------
    images_dir : Path
        WSClean products (``<prefix>[-NNNN|-MFS]-image.fits``).
    models : list of (path, SkyModel)
        The apparent sky models the calibration used (one per distinct sky, in field order: the
        k-th image prefix is compared with the k-th model, or the first when they differ in
        number).

    Returns
    -------
    list of dict
        ``image``, ``prefix``, ``band`` (True for the band-averaged image), ``source``,
        ``frequency_hz``, ``model_jy``, ``measured_jy``, ``ratio``, ``offset_deg``.
    """
    from radiocal.imaging.fits import read_fits

    if not models:
        return []
    groups = image_groups(images_dir)
    rows = []
    for k, (prefix, group) in enumerate(groups.items()):
        _, model = models[k] if len(models) == len(groups) else models[0]
        paths = ([group["band"]] if group["band"] is not None else []) + \
            [p for p in group["channels"] if p != group["band"]]
        for path in paths:
            header, data = read_fits(path)
            plane = data.reshape((-1,) + data.shape[-2:])[0]
            frequency = _frequency(header)
            flux = model.spectra([frequency])[:, 0, 0]
            for name, ra, dec, expected in zip(model.name, model.ra, model.dec, flux):
                found = measure_source(header, plane, float(ra), float(dec))
                if found is None:
                    continue
                rows.append({"image": path.name, "prefix": prefix, "band": path == group["band"],
                             "source": str(name), "frequency_hz": frequency,
                             "model_jy": float(expected), **found,
                             "ratio": found["measured_jy"] / float(expected) if expected else None})
    return rows


def source_problems(rows: list[dict]) -> list[str]:
    """The failures of the band-averaged measurements (see the module's tolerances)."""
    problems = []
    for row in rows:
        if not row["band"]:
            continue
        what = f"{row['source']} on {row['image']}"
        if row["ratio"] is None or abs(row["ratio"] - 1) > FLUX_TOLERANCE:
            problems.append(f"{what}: {row['measured_jy']:.0f} Jy/beam against a model of "
                            f"{row['model_jy']:.0f} Jy (more than {100 * FLUX_TOLERANCE:.0f}% off)")
        if row["offset_deg"] > POSITION_TOLERANCE_DEG:
            problems.append(f"{what}: {row['offset_deg']:.2f} deg from its model position (more "
                            f"than {POSITION_TOLERANCE_DEG:g} deg)")
    return problems


def delay_comparison(tables: dict, reference_path: str, threshold_ns: float) -> list[dict]:
    """Per spw of the run's delay table: delays (ns) per antenna and hand, and with a reference,
    its delays and the differences (median over antennas removed).

    Returns
    -------
    list of dict
        ``spw``, ``antennas``, ``hands``, ``delay_ns (solution time 0: antenna, hand)``, ``flagged``,
        and with a reference ``reference`` (its path), ``reference_ns``, ``difference_ns``,
        ``threshold_ns``, ``moved`` [(antenna, hand, ns)], ``rms_ns``.
    """
    from radiocal.store import caltables as C
    from radiocal.store import schema as S

    reference = {}
    if reference_path:
        from radiocal.calibration.step import load_table

        reference = {int(t.attrs[S.ATTR_SPW_ID]): t for t in load_table(reference_path)}
    out = []
    for tds in tables.get("delay", []):
        spw = int(tds.attrs.get(S.ATTR_SPW_ID, 0))
        delay = tds[C.DELAY].values[0, :, 0, :] * 1e9
        row = {"spw": spw, "antennas": [str(n) for n in tds[S.ANTENNA_NAME].values],
               "hands": [str(h) for h in tds[C.HAND].values], "delay_ns": delay,
               "flagged": tds[C.SOL_FLAG].values[0, :, 0, :]}
        ref = reference.get(spw)
        if ref is not None and ref.sizes[S.ANTENNA] == tds.sizes[S.ANTENNA]:
            ref_ns = np.where(ref[C.SOL_FLAG].values[0, :, 0, :], np.nan,
                              ref[C.DELAY].values[0, :, 0, :] * 1e9)
            # the run's own flags include the antennas the comparison moved: compare the values
            difference = delay - ref_ns
            with np.errstate(all="ignore"):
                difference = difference - np.nanmedian(difference, axis=0, keepdims=True)
            moved = [(row["antennas"][a], row["hands"][h], float(difference[a, h]))
                     for a, h in zip(*np.nonzero(np.abs(np.nan_to_num(difference)) > threshold_ns))]
            row.update(reference=str(reference_path), reference_ns=ref_ns,
                       difference_ns=difference, threshold_ns=threshold_ns, moved=moved,
                       rms_ns=float(np.sqrt(np.nanmean(difference ** 2)))
                       if np.isfinite(difference).any() else None)
        out.append(row)
    return out
