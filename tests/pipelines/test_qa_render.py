"""The report's PDF writer and one-Axes panel grid."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest

from radiocal.qa import pdf, render
from radiocal.qa.panels import PanelGrid


def _figure():
    from radiocal.qa.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [1, 0], color="tab:red")
    return fig


def test_drawn_png_is_embedded_as_it_is(tmp_path):
    (stem, png), = render.draw_all([("line", _figure, ())], processes=1)
    width, height, colours, data = pdf.png_layout(png)
    assert (stem, width, height, colours) == ("line", 4 * render.DPI, 3 * render.DPI, 3)
    path = tmp_path / "r.pdf"
    with pdf.PdfWriter(path, "radiocal report (test)") as writer:
        writer.text_page("radiocal report (test)", ["Output a\\b (c)", "SNR ± 3"], "FAILED",
                         (0.8, 0.1, 0.1))
        writer.png_page(png)
    raw = path.read_bytes()
    assert raw.startswith(b"%PDF-1.4") and raw.rstrip().endswith(b"%%EOF")
    assert data in raw                    # the PNG's compressed pixels, not re-encoded
    if shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None:
        pytest.skip("poppler's pdfinfo/pdftotext not installed: the PDF's contents not checked")
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    assert "Pages:           2" in info.stdout and "radiocal report (test)" in info.stdout
    assert "Syntax Error" not in info.stderr
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Output a\\b (c)" in text and "SNR ± 3" in text and "FAILED" in text


def test_png_layout_refuses_what_it_cannot_embed():
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(buffer, format="png")
    with pytest.raises(ValueError, match="grey or RGB"):
        pdf.png_layout(buffer.getvalue())
    with pytest.raises(ValueError, match="not a PNG"):
        pdf.png_layout(b"GIF89a")


def test_panel_grid_places_and_clips_each_panel():
    from radiocal.qa.plots import _pyplot

    plt = _pyplot()
    fig = plt.figure()
    ax = fig.add_axes((0, 0, 1, 1))
    grid = PanelGrid(ax, 7, xlim=(0, 10), ylim=(0, 1), xticks=([0, 5, 10], ["0", "5", "10"]),
                     yticks=([0.5], ["0.5"]))
    assert (grid.nrows, grid.ncols) == (2, 5)
    for k in range(7):
        grid.plot(k, [0, 5, 10], [0.5, 2.0, 0.5], color="k")    # 2.0: outside the limits
    grid.finish()
    (line,) = ax.lines                    # one line per style, panels separated by NaN
    x, y = line.get_data()
    x, y = np.asarray(x).reshape(7, 4), np.asarray(y).reshape(7, 4)
    assert np.isnan(y[:, 1]).all() and np.isnan(x[:, 3]).all()
    # panel 6 is the second of the lower row: x in [1, 2], y in [0, 1]
    assert 1 < x[6, 0] < x[6, 2] < 2 and 0 < y[6, 0] < 1
    # panel 0 is the first of the upper row
    assert 0 < x[0, 0] < 1 and 1 < y[0, 0] < 2
    plt.close(fig)
