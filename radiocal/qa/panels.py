"""Small multiples drawn on one matplotlib Axes: a page of per-antenna panels.

A page of 30 Axes cost 0.4-0.9 CPU-s to draw, nearly all of it in the tick, grid and spine
artists every Axes carries (~1000 Line2D on a page); the same page drawn here, as a handful of
lines on one Axes, costs ~0.07 s. Panel ``k`` fills a unit cell of the Axes' data coordinates
(row-major from the top left); every panel shares the x and y limits, and tick labels are drawn
along the bottom of each column and the left of each row.
"""

from __future__ import annotations

import math

import numpy as np

MARGIN = 0.04        # blank space inside each cell, as a fraction of it
GRID = dict(color="0.85", lw=0.6)
FRAME = dict(color="0.3", lw=0.8)
TICK_FONT = 7
EDGE = 0.08          # no tick label this close to a panel's edge: it would run into the next one

def grid_shape(n: int, max_cols: int = 5) -> tuple[int, int]:
    ncols = min(max_cols, max(1, n))
    return math.ceil(n / ncols), ncols


class PanelGrid:
    """``n`` panels on ``ax`` sharing ``xlim`` and ``ylim``.

    ``xticks``/``yticks``: ``(values, labels)`` drawn as light grid lines in every panel and as
    labels on the outer ones. Add data with :meth:`plot` (collected per style and drawn as one
    line each by :meth:`finish`), labels with :meth:`text`.
    """

    def __init__(self, ax, n: int, xlim, ylim, xticks=((), ()), yticks=((), ()), max_cols=5):
        self.ax, self.n = ax, n
        self.nrows, self.ncols = grid_shape(n, max_cols)
        self.xlim = tuple(float(v) for v in xlim)
        self.ylim = tuple(float(v) for v in ylim)
        self.xticks, self.yticks = xticks, yticks
        self._lines: dict = {}

    def _origin(self, k: int) -> tuple[int, int]:
        row, col = divmod(k, self.ncols)
        return col, self.nrows - 1 - row

    @staticmethod
    def _unit(value, lim):
        return (value - lim[0]) / ((lim[1] - lim[0]) or 1.0)

    def _scale(self, values, lim):
        scaled = self._unit(np.asarray(values, np.float64), lim)
        # outside the limits: hidden, as an Axes clips (else it would show in a neighbour)
        scaled[(scaled < 0) | (scaled > 1)] = np.nan
        return MARGIN + (1 - 2 * MARGIN) * scaled

    def plot(self, k: int, x, y, **style):
        """Add ``y`` against ``x`` (same shape, 1-d) to panel ``k``; NaN breaks a line."""
        x0, y0 = self._origin(k)
        key = tuple(sorted(style.items()))
        xs, ys = self._lines.setdefault(key, ([], []))
        xs += [x0 + self._scale(x, self.xlim), [np.nan]]
        ys += [y0 + self._scale(y, self.ylim), [np.nan]]

    def text(self, k: int, s: str, x=0.03, y=0.96, **kwargs):
        """Text at ``(x, y)`` in panel ``k``'s own unit coordinates."""
        x0, y0 = self._origin(k)
        self.ax.text(x0 + x, y0 + y, s, **{"va": "top", "fontsize": 8, **kwargs})

    def finish(self):
        """Draw the collected lines, frames, grid lines and outer tick labels."""
        from matplotlib.collections import LineCollection

        ax = self.ax
        for key, (xs, ys) in self._lines.items():
            ax.plot(np.concatenate(xs), np.concatenate(ys), **dict(key))
        frames, grid = [], []
        xt = [(v, lab) for v, lab in zip(*self.xticks) if self.xlim[0] <= v <= self.xlim[1]]
        yt = [(v, lab) for v, lab in zip(*self.yticks) if self.ylim[0] <= v <= self.ylim[1]]
        for k in range(self.n):
            x0, y0 = self._origin(k)
            lo, hi = MARGIN, 1 - MARGIN
            frames.append([(x0 + lo, y0 + lo), (x0 + hi, y0 + lo), (x0 + hi, y0 + hi),
                           (x0 + lo, y0 + hi), (x0 + lo, y0 + lo)])
            for v, _ in xt:
                x = x0 + self._scale([v], self.xlim)[0]
                grid.append([(x, y0 + lo), (x, y0 + hi)])
            for v, _ in yt:
                y = y0 + self._scale([v], self.ylim)[0]
                grid.append([(x0 + lo, y), (x0 + hi, y)])
        ax.add_collection(LineCollection(grid, zorder=0, **GRID))
        ax.add_collection(LineCollection(frames, zorder=3, **FRAME))
        labelled_x = [(v, lab) for v, lab in xt if EDGE <= self._unit(v, self.xlim) <= 1 - EDGE]
        labelled_y = [(v, lab) for v, lab in yt if EDGE <= self._unit(v, self.ylim) <= 1 - EDGE]
        for col in range(self.ncols):
            # the lowest panel of each column carries its x tick labels
            last = max(k for k in range(self.n) if k % self.ncols == col) if col < self.n else None
            if last is None:
                continue
            x0, y0 = self._origin(last)
            for v, label in labelled_x:
                ax.text(x0 + self._scale([v], self.xlim)[0], y0 + MARGIN - 0.02, label,
                        ha="center", va="top", fontsize=TICK_FONT)
        for row in range(self.nrows):
            x0, y0 = self._origin(row * self.ncols)
            for v, label in labelled_y:
                ax.text(x0 + MARGIN - 0.01, y0 + self._scale([v], self.ylim)[0], label,
                        ha="right", va="center", fontsize=TICK_FONT)
        ax.set_xlim(0, self.ncols)
        ax.set_ylim(0, self.nrows)
        ax.set_axis_off()


def value_ticks(lo: float, hi: float, n: int = 4):
    """Tick values and labels for a value axis."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    values = [v for v in MaxNLocator(n).tick_values(lo, hi) if lo <= v <= hi]
    formatter = ScalarFormatter(useOffset=False)
    formatter.create_dummy_axis()
    formatter.axis.set_view_interval(lo, hi)
    return values, formatter.format_ticks(values)


def time_ticks(lo: float, hi: float):
    """Tick values and labels for a time axis in matplotlib date numbers (days)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    values = [v for v in locator.tick_values(mdates.num2date(lo), mdates.num2date(hi))
              if lo <= v <= hi]
    return values, [mdates.num2date(v).strftime("%H:%M") for v in values]
