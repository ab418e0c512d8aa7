"""The report's PDF, written directly: pages of monospaced text and pages showing PNG figures.

A PNG's compressed pixel data (its IDAT chunks) is already what a PDF image with the PNG
predictor holds, so each figure's page embeds the bytes of ``plots/<name>.png`` as they are:
nothing is decoded, drawn or compressed again. (Going through matplotlib's PDF backend, every
page was decoded, placed on a new figure and re-encoded: ~0.15 s a page, a fifth of the report.)
Text pages use the standard Courier and Helvetica fonts, so the summary stays searchable.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

POINTS_PER_INCH = 72
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_PAGE = (792, 612)    # landscape letter, points
TEXT_SIZE, TEXT_LEADING, TITLE_SIZE = 9, 11, 15
MARGIN = 32


def _escape(text: str) -> bytes:
    """A PDF string literal's contents in WinAnsiEncoding (unencodable characters become '?')."""
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def png_layout(png: bytes) -> tuple[int, int, int, bytes]:
    """``(width, height, colours, compressed pixel data)`` of an 8-bit, non-interlaced PNG."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    pos, header, data = len(PNG_SIGNATURE), None, []
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            data.append(body)
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    colours = {0: 1, 2: 3}.get(colour_type)
    if depth != 8 or interlace or colours is None:
        raise ValueError("only 8-bit, non-interlaced grey or RGB PNGs can be embedded as they are")
    return width, height, colours, b"".join(data)


class PdfWriter:
    """Write pages one at a time; :meth:`close` writes the page tree, cross-reference table and
    trailer. Use as a context manager."""

    def __init__(self, path, title: str = "", dpi: float = 100):
        self.path, self.title, self.dpi = Path(path), title, dpi
        self._file = open(self.path, "wb")
        self._offsets: list[int] = []
        self._pages: list[int] = []
        self._file.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self._root = self._reserve()      # catalog and page tree are written last
        self._tree = self._reserve()
        self._fonts = {name: self._object(
            f"<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>".encode())
            for name in ("Courier", "Helvetica-Bold")}

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self._file.close()

    def _reserve(self) -> int:
        self._offsets.append(0)
        return len(self._offsets)

    def _object(self, body: bytes, number: int | None = None) -> int:
        number = number or self._reserve()
        self._offsets[number - 1] = self._file.tell()
        self._file.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
        return number

    def _stream(self, dictionary: bytes, data: bytes) -> int:
        return self._object(b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data
                            + b"\nendstream")

    def _page(self, size, content: bytes, resources: bytes) -> None:
        contents = self._stream(b"/Filter /FlateDecode", zlib.compress(content))
        self._pages.append(self._object(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %.2f %.2f] /Contents %d 0 R "
            b"/Resources << %s >> >>" % (self._tree, size[0], size[1], contents, resources)))

    def text_page(self, title: str, lines, status: str = "", colour=(0, 0, 0)) -> None:
        """``lines`` in 9 pt Courier under a bold ``title`` and a coloured ``status`` line."""
        width, height = TEXT_PAGE
        top = height - MARGIN - TITLE_SIZE
        ops = [b"BT /F2 %d Tf %d %d Td (%s) Tj ET" % (TITLE_SIZE, MARGIN, top, _escape(title))]
        if status:
            ops.append(b"BT %.3f %.3f %.3f rg /F2 %d Tf %d %d Td (%s) Tj ET 0 g" % (
                *colour, TITLE_SIZE, MARGIN, top - 1.4 * TITLE_SIZE, _escape(status)))
        ops.append(b"BT /F1 %d Tf %d TL %d %d Td" % (TEXT_SIZE, TEXT_LEADING, MARGIN,
                                                    top - 2 * TITLE_SIZE - TEXT_LEADING))
        ops += [b"(%s) Tj T*" % _escape(line) for line in lines]
        ops.append(b"ET")
        fonts = b"/Font << /F1 %d 0 R /F2 %d 0 R >>" % (self._fonts["Courier"],
                                                       self._fonts["Helvetica-Bold"])
        self._page(TEXT_PAGE, b"\n".join(ops), fonts)

    def png_page(self, png: bytes) -> None:
        """A page of the PNG's size (at ``dpi``) showing its pixels."""
        width, height, colours, data = png_layout(png)
        image = self._stream(
            b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /%s "
            b"/BitsPerComponent 8 /Filter /FlateDecode /DecodeParms << /Predictor 15 "
            b"/Colors %d /BitsPerComponent 8 /Columns %d >>"
            % (width, height, b"DeviceRGB" if colours == 3 else b"DeviceGray", colours, width),
            data)
        size = (width * POINTS_PER_INCH / self.dpi, height * POINTS_PER_INCH / self.dpi)
        self._page(size, b"q %.2f 0 0 %.2f 0 0 cm /Im0 Do Q" % size,
                   b"/XObject << /Im0 %d 0 R >>" % image)

    def close(self) -> None:
        kids = b" ".join(b"%d 0 R" % p for p in self._pages)
        self._object(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(self._pages)),
                     self._tree)
        self._object(b"<< /Type /Catalog /Pages %d 0 R >>" % self._tree, self._root)
        info = self._object(b"<< /Title (%s) /Creator (radiocal) /Producer (radiocal) >>"
                            % _escape(self.title))
        xref = self._file.tell()
        self._file.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(self._offsets) + 1))
        self._file.write(b"".join(b"%010d 00000 n \n" % offset for offset in self._offsets))
        self._file.write(b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
                         % (len(self._offsets) + 1, self._root, info, xref))
        self._file.close()
