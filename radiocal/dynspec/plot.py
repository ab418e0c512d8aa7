"""Plots of a dynamic spectrum: I, V and V/I panels over UTC time and MHz, plus light curves."""

from __future__ import annotations

import numpy as np
import xarray as xr

from radiocal.astro import to_datetime64
from radiocal.dynspec.dataset import ERR_SUFFIX, LIGHTCURVE_SUFFIX, RATIO
from radiocal.errors import InputError
from radiocal.store import schema

def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges from centres (half-way between neighbours, mirrored at the ends)."""
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def _scale(unit: str, values: list[np.ndarray]) -> tuple[float, str]:
    """Display Jy as mJy for faint sources; Kelvin stays Kelvin."""
    if unit != "Jy":
        return 1.0, unit
    peak = max((np.nanmax(np.abs(v)) for v in values if np.isfinite(v).any()), default=0.0)
    return (1e3, "mJy") if peak < 1.0 else (1.0, "Jy")


def plot_dynamic_spectrum(ds: xr.Dataset, path=None, products=None):
    """Draw panels of a dynamic spectrum and its light curves; save to ``path`` when given.

    Parameters
    ----------
    ds : xr.Dataset
        From :func:`radiocal.dynspec.dataset.dynamic_spectrum` (or read back from its zarr).
    path : str or Path, optional
        Image file to write (format from the suffix, e.g. ``.png``).
    products : sequence of str, optional
        Spectra to draw, top to bottom; missing ones are skipped. Default: I, V and V/I, or the
        parallel hands when the data have no Stokes I (a single correlation).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    if products is None:
        products = ("I", "V", RATIO) if "I" in ds else tuple(ds.attrs.get("products", ()))[:3]
    panels = [p for p in products if p in ds]
    if not panels:
        raise InputError(f"none of {', '.join(products)} in the dynamic spectrum "
                         f"(it has {', '.join(ds.attrs.get('products', [])) or 'nothing'})")
    ds = ds.compute()
    unit = ds.attrs.get("units", "Jy")
    flux_panels = [p for p in panels if p != RATIO]
    factor, shown_unit = _scale(unit, [ds[p].values for p in flux_panels])
    quantity = "T$_b$" if unit == "K" else "S"
    symbol = "T" if unit == "K" else "S"

    times = to_datetime64(ds[schema.TIME].values)
    t_edges = to_datetime64(_edges(ds[schema.TIME].values))
    f_edges = _edges(ds[schema.FREQUENCY].values) / 1e6
    curves = [p for p in ("I", "V") if p + LIGHTCURVE_SUFFIX in ds]
    nrows = len(panels) + (1 if curves else 0)
    fig, axes = plt.subplots(nrows, 1, figsize=(10, 2.6 * nrows + 0.6), sharex=True, squeeze=False,
                             constrained_layout=True)
    axes = axes[:, 0]
    for ax, name in zip(axes, panels):
        values = ds[name].transpose(schema.FREQUENCY, schema.TIME).values
        if name == RATIO:
            cmap, vmin, vmax, label = "RdBu_r", -1.0, 1.0, "V/I"
        else:
            values = values * factor
            finite = values[np.isfinite(values)]
            if name == "V" or name.startswith(("Q", "U")):
                top = np.percentile(np.abs(finite), 99.9) if finite.size else 1.0
                cmap, vmin, vmax = "RdBu_r", -top, top
            else:
                lo, hi = np.percentile(finite, [1, 99.9]) if finite.size else (0.0, 1.0)
                cmap, vmin, vmax = "viridis", lo, hi
            label = f"{symbol}$_{{{'b,' if unit == 'K' else ''}{name}}}$ ({shown_unit})"
        mesh = ax.pcolormesh(t_edges, f_edges, np.ma.masked_invalid(values), cmap=cmap,
                             vmin=vmin, vmax=vmax, shading="flat")
        fig.colorbar(mesh, ax=ax, pad=0.01).set_label(label)
        ax.set_ylabel("Frequency (MHz)")
        ax.set_title(f"Stokes {name}" if name in ("I", "Q", "U", "V") else
                     ("Fractional circular polarisation V/I" if name == RATIO else name),
                     loc="left", fontsize=10)
    if curves:
        ax = axes[-1]
        for name, colour in zip(curves, ("k", "tab:red")):
            lc = ds[name + LIGHTCURVE_SUFFIX].values * factor
            err = ds[name + LIGHTCURVE_SUFFIX + ERR_SUFFIX].values * factor
            ax.plot(times, lc, color=colour, lw=1.0, label=f"Stokes {name}")
            ax.fill_between(times, lc - err, lc + err, color=colour, alpha=0.25, lw=0)
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_ylabel(f"{quantity} ({shown_unit})")
        ax.set_title("Band-averaged light curves (shaded: 1 sigma)", loc="left", fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
        # Keep the light curve aligned with the spectra above, which carry colour bars.
        fig.colorbar(mesh, ax=ax, pad=0.01).ax.set_visible(False)
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    day = str(times[np.isfinite(ds[schema.TIME].values)][0].astype("datetime64[D]")) if times.size else ""
    axes[-1].set_xlabel(f"Time (UTC) on {day}")
    title = f"{ds.attrs.get('field_name', '')}  {ds.attrs.get('telescope', '')}  " \
            f"({ds.attrs.get('data_column', '')}{' - model' if ds.attrs.get('model_subtracted') else ''})"
    fig.suptitle(title.strip())
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
