"""QA figures (matplotlib, Agg): calibrator diagnostics, solutions per antenna, flag summary.

Each function returns a :class:`matplotlib.figure.Figure`; the report saves it as a PNG and as a
page of the PDF. Inputs are the small numpy summaries of :mod:`radiocal.qa.summaries`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radiocal.astro import to_datetime64
from radiocal.store import caltables as C
from radiocal.store import schema as S
from radiocal.qa.panels import grid_shape
from radiocal.qa.summaries import SAMPLE_POINTS, fraction

PAGE = (11.0, 8.5)   # landscape letter: every figure is also a report page
HAND_COLOURS = ("tab:blue", "tab:orange")
MAX_PANELS = 30      # antennas per page of solution plots
CALIBRATOR_GRID = dict(left=0.07, right=0.98, bottom=0.07, top=0.88, wspace=0.2, hspace=0.35)
SOLUTION_AXES = (0.07, 0.08, 0.92, 0.84)   # left, bottom, width, height of the panels


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _time_axis(ax, label=True):
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    if label:
        ax.set_xlabel("Time (UTC)")


def _scatter(ax, x, y, colour):
    ok = np.isfinite(y)
    # filled dots without edges: a third cheaper for Agg than "." markers
    ax.plot(np.asarray(x)[ok], np.asarray(y)[ok], "o", ms=1.6, mew=0, color=colour, alpha=0.5,
            rasterized=True)


def calibrator_figure(summaries, field_name: str, which: str):
    """Amplitude and phase against time, frequency and uv distance for one calibrator.

    Parameters
    ----------
    summaries : list of VisSummary
        From :func:`radiocal.qa.summaries.visibility_summaries` (decimated samples).
    field_name : str
    which : {"before", "after"}
        Raw (``VISIBILITY``) or calibrated (``VISIBILITY_CORRECTED``) data.
    """
    plt = _pyplot()
    mine = [s for s in summaries if s.field == field_name and which in s.by_time]
    # a fixed layout and legend place: constrained layout and loc="best" (which tests every
    # scatter point against candidate boxes) were a third of this page's cost
    fig, axes = plt.subplots(3, 2, figsize=PAGE, gridspec_kw=CALIBRATOR_GRID)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    scans: dict = {}    # a colour per scan: its spws' partitions are drawn as one
    for s in mine:
        scans.setdefault(s.partition.rsplit("scan", 1)[-1], []).append(s)
    for k, (scan, parts) in enumerate(scans.items()):
        colour = colours[k % len(colours)]
        times = np.concatenate([to_datetime64(s.time) for s in parts])
        freqs = np.concatenate([np.broadcast_to(s.frequency[None, :] / 1e6,
                                                s.by_frequency[which].shape).ravel() for s in parts])
        by_time = np.concatenate([s.by_time[which].ravel() for s in parts])
        by_freq = np.concatenate([s.by_frequency[which].ravel() for s in parts])
        uvdist = np.concatenate([s.uvdist for s in parts])
        for row, (x, values) in enumerate(((times, by_time), (freqs, by_freq), (uvdist, by_time))):
            _scatter(axes[row, 0], x, np.abs(values), colour)
            _scatter(axes[row, 1], x, np.degrees(np.angle(values)), colour)
        axes[0, 0].plot([], [], "o", ms=4, color=colour, label=f"scan {scan}")
    for row, xlabel in enumerate(("", "Frequency (MHz)", "uv distance (m)")):
        axes[row, 0].set_ylabel("Amplitude (Jy)" if which == "after" else "Amplitude (raw)")
        axes[row, 1].set_ylabel("Phase (deg)")
        axes[row, 1].set_ylim(-185, 185)
        axes[row, 1].set_yticks([-180, -90, 0, 90, 180])
        for ax in axes[row]:
            if xlabel:
                ax.set_xlabel(xlabel)
            else:
                _time_axis(ax)
            ax.grid(alpha=0.3)
    if mine:
        axes[0, 0].legend(loc="upper right", fontsize=7, ncol=2)
    else:
        for ax in axes.ravel():
            ax.text(0.5, 0.5, "no unflagged data", ha="center", transform=ax.transAxes)
    state = "after calibration (CORRECTED_DATA)" if which == "after" else "before calibration (DATA)"
    fig.suptitle(f"{field_name}: parallel hands {state}; one point per baseline and "
                 "integration (top, bottom) or channel (middle)\n"
                 f"(at most {SAMPLE_POINTS // 1000}k of each, spread evenly over the data)",
                 fontsize=11)
    return fig


def _antenna_pages(tds):
    names = [str(n) for n in tds[S.ANTENNA_NAME].values] if S.ANTENNA_NAME in tds.coords \
        else [str(i) for i in range(tds.sizes[S.ANTENNA])]
    for start in range(0, len(names), MAX_PANELS):
        yield list(range(start, min(start + MAX_PANELS, len(names)))), names


def solution_figures(tds, title: str, quantity: str):
    """Small multiples per antenna of one table's spw: amplitude or phase of its solutions.

    Bandpass tables are drawn against frequency (all solution times overlaid), gain tables
    against time (all solution channels overlaid); flagged solutions are left out. The panels
    are drawn on one Axes (:class:`radiocal.qa.panels.PanelGrid`).

    Parameters
    ----------
    tds : xr.Dataset
        One spw of a calibration table (``GAIN (time_solution, antenna, frequency_solution, hand)``).
    title : str
    quantity : {"amplitude", "phase"}

    Returns
    -------
    list of Figure
        One per page of up to ``MAX_PANELS`` antennas.
    """
    import matplotlib.dates as mdates

    from radiocal.qa.panels import PanelGrid, time_ticks, value_ticks

    plt = _pyplot()
    gains = tds[C.GAIN].values.astype(np.complex128)
    flags = tds[C.SOL_FLAG].values
    values = np.where(flags, np.nan, np.abs(gains) if quantity == "amplitude"
                      else np.degrees(np.angle(gains)))
    hands = [str(h) for h in tds[C.HAND].values]
    bandpass = tds.attrs.get(C.ATTR_CAL_TYPE) == "B"
    if bandpass:
        x = tds[C.SOL_FREQ].values / 1e6
    else:
        x = mdates.date2num(to_datetime64(tds[C.SOL_TIME].values))
    pad = 0.02 * (np.ptp(x) or 1.0)
    xlim = (x.min() - pad, x.max() + pad)
    xticks = value_ticks(*xlim) if bandpass else time_ticks(*xlim)
    finite = values[np.isfinite(values)]
    if quantity == "phase":
        ylim, yticks = (-185, 185), ([-180, -90, 0, 90, 180], ["-180", "-90", "0", "90", "180"])
    else:
        ylim = (0, 1.1 * np.percentile(finite, 99.5) if finite.size else 1.0)
        yticks = value_ticks(*ylim)
    # bandpass: lines over frequency; gains as points: a line would join scans of other fields
    # and phase wraps
    style = dict(ls="-", lw=0.8, marker=".", ms=2) if bandpass else dict(ls="none", marker=".", ms=3)
    figures = []
    for antennas, names in _antenna_pages(tds):
        fig = plt.figure(figsize=PAGE)
        grid = PanelGrid(fig.add_axes(SOLUTION_AXES), len(antennas), xlim, ylim, xticks, yticks)
        for k, ant in enumerate(antennas):
            for h in range(len(hands)):
                block = values[:, ant, :, h]       # (time, frequency)
                for curve in (block if bandpass else block.T):
                    grid.plot(k, x, curve, color=HAND_COLOURS[h % 2], **style)
            grid.text(k, names[ant], x=0.95, ha="right",
                      bbox=dict(fc="white", ec="none", alpha=0.7, pad=1))
            if not np.isfinite(values[:, ant]).any():
                grid.text(k, "all flagged", x=0.5, y=0.5, ha="center", va="center", color="tab:red")
        grid.finish()
        handles = [plt.Line2D([], [], color=HAND_COLOURS[h % 2], label=f"hand {hand}")
                   for h, hand in enumerate(hands)]
        fig.legend(handles=handles, loc="upper right", fontsize=8, ncol=len(hands),
                   frameon=False)
        fig.supxlabel("Frequency (MHz)" if bandpass else "Time (UTC)", fontsize=10)
        fig.supylabel("Amplitude" if quantity == "amplitude" else "Phase (deg)", fontsize=10)
        page = f" (antennas {antennas[0] + 1}-{antennas[-1] + 1})" if len(names) > MAX_PANELS else ""
        fig.suptitle(f"{title}: {quantity}, spw {tds.attrs.get(S.ATTR_SPW_ID, 0)}{page}",
                     fontsize=11)
        figures.append(fig)
    return figures


def flag_figure(fractions: dict):
    """Flagged fraction of the input and after the run, by antenna, field and correlation."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=PAGE, constrained_layout=True,
                             gridspec_kw={"height_ratios": [1.3, 1]})
    fig.delaxes(axes[0, 1])
    panels = ((plt.subplot2grid((2, 2), (0, 0), colspan=2, fig=fig), "antenna"),
              (axes[1, 0], "field"), (axes[1, 1], "correlation"))
    fig.delaxes(axes[0, 0])
    states = [("input", "input MS", "0.65"), ("now", "after flagging and calibration", "tab:red")]
    for ax, axis in panels:
        keys = list(fractions["now"][axis].keys())
        x = np.arange(len(keys))
        present = [s for s in states if s[0] in fractions]
        width = 0.8 / len(present)
        for k, (state, label, colour) in enumerate(present):
            values = [100 * fraction(fractions[state][axis].get(key, (0, 0))) for key in keys]
            ax.bar(x + (k - (len(present) - 1) / 2) * width, values, width, label=label,
                   color=colour)
        ax.set_xticks(x, keys, rotation=90 if len(keys) > 12 else 0, fontsize=8)
        ax.set_ylabel("flagged (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"by {axis}", loc="left", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    panels[0][0].legend(loc="upper right", fontsize=8)
    total = fraction(fractions["now"]["total"])
    fig.suptitle(f"Flagged data: {100 * total:.1f}% of all samples after the run", fontsize=11)
    return fig


def image_figure(path, markers=()):
    """A FITS image (first plane) with offsets from its centre in degrees.

    ``markers``: (name, ra, dec) radians of sources to circle (e.g. the calibration sky model),
    so a reader sees at once whether they are where the image puts them.
    """
    from radiocal.imaging.fits import read_fits, sky_to_pixel

    plt = _pyplot()
    header, data = read_fits(path)
    plane = data.reshape((-1,) + data.shape[-2:])[0]
    fig, ax = plt.subplots(figsize=PAGE)
    ny, nx = plane.shape
    dx, dy = float(header.get("CDELT1", 1.0)), float(header.get("CDELT2", 1.0))
    cx, cy = float(header.get("CRPIX1", nx / 2 + 1)) - 1, float(header.get("CRPIX2", ny / 2 + 1)) - 1
    extent = [(-0.5 - cx) * dx, (nx - 0.5 - cx) * dx, (-0.5 - cy) * dy, (ny - 0.5 - cy) * dy]
    finite = plane[np.isfinite(plane)]
    low, high = (np.percentile(finite, [1, 99.9]) if finite.size else (0.0, 1.0))
    shown = ax.imshow(plane, origin="lower", extent=extent, cmap="inferno", vmin=low, vmax=high,
                      interpolation="nearest")
    for name, ra, dec in markers:
        try:
            x, y = sky_to_pixel(header, ra, dec)
        except Exception:   # behind the tangent plane or another projection: nothing to mark
            continue
        px, py = (x - cx) * dx, (y - cy) * dy
        ax.plot(px, py, "o", mfc="none", mec="cyan", ms=14)
        ax.annotate(name, (px, py), xytext=(8, 8), textcoords="offset points", color="cyan")
    ax.set_xlabel("offset in RA (deg, SIN projection)")
    ax.set_ylabel("offset in Dec (deg)")
    ax.set_title(f"{path.name}: peak {finite.max() if finite.size else float('nan'):.4g} "
                 f"{header.get('BUNIT', '')}")
    fig.colorbar(shown, ax=ax, label=str(header.get("BUNIT", "")))
    return fig


def dynspec_figure(path):
    """The dynamic spectrum stored at ``path`` (:func:`radiocal.dynspec.plot.plot_dynamic_spectrum`)."""
    from radiocal.dynspec.dataset import open_dynspec
    from radiocal.dynspec.plot import plot_dynamic_spectrum

    return plot_dynamic_spectrum(open_dynspec(path))


def source_spectra_figure(rows, models):
    """Each modelled source's flux density on the channel images against its apparent model.

    ``rows``: :func:`radiocal.qa.skychecks.ateam_on_images`; ``models``: its ``(path, SkyModel)``.
    """
    plt = _pyplot()
    names = list(dict.fromkeys(r["source"] for r in rows if not r["band"]))
    nrows, ncols = grid_shape(len(names)) if len(names) > 2 else (1, max(1, len(names)))
    fig, axes = plt.subplots(nrows, ncols, figsize=PAGE, squeeze=False, constrained_layout=True)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    model = models[0][1]
    for ax, name in zip(axes.ravel(), names):
        mine = sorted((r for r in rows if r["source"] == name and not r["band"]),
                      key=lambda r: (r["prefix"], r["frequency_hz"]))
        freqs = np.array([r["frequency_hz"] for r in mine])
        ax.plot(freqs / 1e6, [r["measured_jy"] for r in mine], "o", color="tab:blue",
                label="measured (image peak)")
        k = list(model.name).index(name) if name in list(model.name) else None
        if k is not None and freqs.size:
            grid = np.linspace(freqs.min(), freqs.max(), 50) if freqs.size > 1 else freqs
            ax.plot(grid / 1e6, model.spectra(grid)[k, :, 0], "-", color="0.3",
                    label="model (apparent)")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("Frequency (MHz)")
        ax.set_ylabel("Flux density (Jy)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("A-team spectra on the channel images of the calibrated data", fontsize=11)
    return fig


def delay_figure(delays: dict):
    """Delays per antenna and hand; with a reference table, the reference and the differences
    (``delays``: one entry of :func:`radiocal.qa.skychecks.delay_comparison`)."""
    plt = _pyplot()
    with_reference = "reference" in delays
    fig, axes = plt.subplots(2 if with_reference else 1, 1, figsize=PAGE, sharex=True,
                             squeeze=False, constrained_layout=True)
    antennas = np.arange(len(delays["antennas"]))
    ax = axes[0, 0]
    for h, hand in enumerate(delays["hands"]):
        values = np.where(delays["flagged"][:, h], np.nan, delays["delay_ns"][:, h])
        ax.plot(antennas, values, "x", color=HAND_COLOURS[h % 2], label=f"this run, hand {hand}")
        if with_reference:
            ax.plot(antennas, delays["reference_ns"][:, h], "o", mfc="none",
                    color=HAND_COLOURS[h % 2], alpha=0.6, label=f"reference, hand {hand}")
    ax.set_ylabel("Delay (ns)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    if with_reference:
        ax = axes[1, 0]
        for h, hand in enumerate(delays["hands"]):
            ax.plot(antennas, delays["difference_ns"][:, h], "s", ms=4, color=HAND_COLOURS[h % 2],
                    label=f"hand {hand}")
        threshold = delays["threshold_ns"]
        for sign in (-1, 1):
            ax.axhline(sign * threshold, color="tab:red", ls="--", lw=1)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel("This run - reference (ns, median removed)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    bottom = axes[-1, 0]
    step = max(1, len(antennas) // 40)
    bottom.set_xticks(antennas[::step], [delays["antennas"][a] for a in antennas[::step]],
                      rotation=90, fontsize=7)
    bottom.set_xlabel("Antenna")
    title = f"Delay solutions (K), spw {delays['spw']}"
    if with_reference:
        title += (f" against {Path(delays['reference']).name}: rms "
                  f"{delays['rms_ns']:.2f} ns, {len(delays['moved'])} feed(s) beyond "
                  f"+-{delays['threshold_ns']:g} ns" if delays["rms_ns"] is not None else "")
    fig.suptitle(title, fontsize=11)
    return fig
