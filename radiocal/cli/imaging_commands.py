"""``radiocal image``: FITS images of a Measurement Set (or a pipeline's output) with WSClean or tclean."""

from __future__ import annotations

import os
from pathlib import Path

import click

from radiocal.cli.common import split_names
from radiocal.errors import InputError

PIPELINE_MS = "calibrated.ms"


def _input_ms(path: str) -> Path:
    """The MS to image: ``path`` itself, or ``path/calibrated.ms`` for a pipeline output directory."""
    path = Path(path).expanduser()
    if (path / "table.dat").exists():
        return path
    if (path / PIPELINE_MS / "table.dat").exists():
        return path / PIPELINE_MS
    if not path.exists():
        raise InputError(f"{path}: does not exist")
    raise InputError(f"{path}: neither a Measurement Set nor a pipeline output directory "
                     f"holding {PIPELINE_MS}")


def _prefix(output: str, ms: Path) -> Path:
    """``-o``: a directory (existing, or written with a trailing /) gets ``DIR/<MS name>``."""
    out = Path(output).expanduser()
    if out.is_dir() or output.endswith(("/", os.sep)):
        return out / ms.name.removesuffix(".ms").removesuffix(".MS")
    return out


@click.command("image")
@click.argument("ms", metavar="IN", type=click.Path())
@click.option("-o", "--output", required=True, metavar="PREFIX_OR_DIR",
              help="Image name prefix (PREFIX-image.fits, ...) or an existing directory "
                   "(DIR/<MS name>-image.fits).")
@click.option("--imager", type=click.Choice(["wsclean", "tclean"]), default="wsclean",
              show_default=True, help="tclean needs the modular CASA (casatasks) in this Python.")
@click.option("--size", default="1024", show_default=True, metavar="N|WxH",
              help="Image size in pixels.")
@click.option("--scale", default="auto", show_default=True,
              help="Pixel size with unit (2arcsec, 0.05deg, 1amin); auto: a fifth of the beam.")
@click.option("--niter", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Maximum CLEAN iterations (0: dirty image only).")
@click.option("--threshold", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Stop cleaning at this residual peak, Jy.")
@click.option("--auto-threshold", type=click.FloatRange(min=0, min_open=True), default=3.0,
              show_default=True, help="Stop cleaning at this many times the residual rms.")
@click.option("--mgain", type=click.FloatRange(0, 1, min_open=True), default=0.8,
              show_default=True, help="Major-cycle gain (WSClean -mgain).")
@click.option("--weight", default="briggs 0", show_default=True,
              help="'natural', 'uniform' or 'briggs R'.")
@click.option("--column", default="", metavar="COLUMN",
              help="CORRECTED_DATA, DATA or MODEL_DATA (default: CORRECTED_DATA when present, "
                   "else DATA).")
@click.option("--polarizations", "--pol", "pol", default="I", show_default=True, help="Polarizations, e.g. I or I,V or XX,YY.")
@click.option("--field", multiple=True, help="Field name(s) or id(s) in the image (repeat, or "
                                             "comma-separate), or 'all' (default: the first "
                                             "field).")
@click.option("--shift", nargs=2, metavar="RA DEC",
              help="Image centre, e.g. --shift 13h50m00s +25d10m00s (or 207.5deg 25.17deg).")
@click.option("--channels-out", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images across the band.")
@click.option("--join-channels", is_flag=True,
              help="Deconvolve the channel images jointly and write an MFS image.")
@click.option("--join-polarizations", "--join-pols", "join_polarizations", is_flag=True,
              help="Clean the polarizations jointly (WSClean -join-polarizations).")
@click.option("--intervals-out", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images in time (WSClean only).")
@click.option("--minuv-l", type=click.FloatRange(min=0), help="Minimum uv distance, wavelengths.")
@click.option("--maxuv-l", type=click.FloatRange(min=0), help="Maximum uv distance, wavelengths.")
@click.option("--multiscale", is_flag=True, help="Multi-scale CLEAN.")
@click.option("-j", "--threads", type=click.IntRange(min=1), help="Imager threads.")
@click.option("--executable", "--wsclean", "executable", metavar="PATH",
              help="The WSClean program (default: $RADIOCAL_WSCLEAN, else wsclean on PATH).")
@click.option("--extra-args", "--extra", "extra", multiple=True, metavar="ARG",
              help="A further WSClean argument, passed as it is (repeat for each word).")
@click.option("--overwrite", is_flag=True, help="Replace existing images with this prefix.")
@click.pass_context
def image(ctx, ms, output, imager, size, scale, niter, threshold, auto_threshold, mgain,
          weight, column, pol, field, shift, channels_out, join_channels, join_polarizations,
          intervals_out, minuv_l,
          maxuv_l, multiscale, threads, executable, extra, overwrite):
    """Image IN (a Measurement Set, or a pipeline OUTDIR holding calibrated.ms) to FITS.

    Images CORRECTED_DATA when the MS has it, else DATA. The MS is only read (WSClean runs with
    -no-update-model-required). WSClean's log is written next to the images as
    PREFIX-wsclean.log; -v also shows it on the terminal.
    """
    from radiocal.imaging import ImagingOptions, make_image

    ms = _input_ms(ms)
    options = ImagingOptions(
        size=size, scale=scale, niter=niter, threshold=threshold, auto_threshold=auto_threshold,
        mgain=mgain, weight=weight, column=column, polarizations=pol,
        field=",".join(split_names(field)),
        channels_out=channels_out, join_channels=join_channels,
        join_polarizations=join_polarizations, intervals_out=intervals_out,
        minuv_l=minuv_l, maxuv_l=maxuv_l, shift=tuple(shift) if shift else None,
        multiscale=multiscale, threads=threads, extra_args=tuple(extra))
    verbose = bool((ctx.obj or {}).get("verbose"))
    result = make_image(ms, _prefix(output, ms), options, imager, overwrite=overwrite,
                        verbose=verbose, executable=executable)
    click.echo(f"imaged {result.column} of {ms} with {result.imager}: {len(result.files)} FITS "
               f"file(s), log {result.log}")
    for path in result.images:
        click.echo(f"  {path}")


commands = [image]
