"""Where images go and what an imager run returns, shared by both back ends."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from radiocal.errors import ConfigError, OutputExistsError

# WSClean's kinds of FITS product, by the suffix of their names (prefix[-t0000][-0000][-I]-KIND.fits)
IMAGE_KINDS = ("image", "dirty", "residual", "model", "psf", "image-pb", "residual-pb", "beam")


@dataclass(frozen=True)
class ImagingResult:
    """The products of one imager run.

    Attributes
    ----------
    imager : str
        ``"wsclean"`` or ``"tclean"``.
    command : tuple of str
        The WSClean argument list as run (for tclean: ``("tclean", "key=value", ...)``).
    log : Path
        The imager's log, next to the images.
    files : tuple of Path
        Every FITS file the run wrote, sorted.
    column : str
        The data column imaged.
    """

    imager: str
    command: tuple
    log: Path
    files: tuple = field(default=())
    column: str = ""

    def kind(self, kind: str) -> list[Path]:
        """The FITS files of one kind (``"image"``, ``"dirty"``, ``"residual"``, ``"model"``, ``"psf"``)."""
        return [p for p in self.files if p.name.endswith(f"-{kind}.fits")]

    @property
    def images(self) -> list[Path]:
        """The restored images (the dirty images when nothing was cleaned); MFS images first."""
        images = self.kind("image")
        return sorted(images, key=lambda p: ("-MFS-" not in p.name, p.name))


def output_prefix(prefix, ms: Path, inputs=()) -> Path:
    """Check an image prefix: not inside the MS nor any input; its directory is created later."""
    prefix = Path(prefix).expanduser()
    if not prefix.name or prefix.name in (".", ".."):
        raise ConfigError(f"image prefix {str(prefix)!r} has no file name part")
    target = prefix.resolve()
    for source in (Path(ms), *map(Path, inputs)):
        source = source.resolve()
        if target == source or source in target.parents:
            raise ConfigError(f"image prefix {prefix} is inside the input {source}; "
                              f"inputs are never written to")
    return prefix


def existing_products(prefix: Path, extra=()) -> list[Path]:
    """Files a run with this prefix would write that exist already (FITS, logs, CASA images)."""
    if not prefix.parent.is_dir():
        return []
    pattern = re.compile(re.escape(prefix.name) + r"-.*\.fits$")
    found = [p for p in prefix.parent.iterdir() if p.is_file() and pattern.match(p.name)]
    found += [p for p in (prefix.parent / name for name in extra) if p.exists()]
    return sorted(found)


def claim_prefix(prefix: Path, overwrite: bool, extra=()) -> None:
    """Refuse a prefix with products unless ``overwrite``; then remove them (stale images mislead)."""
    found = existing_products(prefix, extra)
    if found and not overwrite:
        raise OutputExistsError(f"{found[0]} exists ({len(found)} file(s) with prefix {prefix}; "
                                f"use --overwrite to replace them)")
    for path in found:
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    prefix.parent.mkdir(parents=True, exist_ok=True)
