"""``radiocal image``: FITS images of a Measurement Set (or a pipeline's output) with WSClean or tclean."""

from __future__ import annotations

import os
from pathlib import Path

import click

from radiocal.cli.common import split_names, step_config
from radiocal.cli.config_options import config_options
from radiocal.errors import InputError
from radiocal.imaging.step import ImageConfig, image_fields, safe_name

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


def _prefixes(output: str):
    """``-o`` as ``prefix_of(label, several)``: a directory (existing, or written with a trailing
    /) gets ``DIR/FIELD``, as the image step's directory; a prefix is the prefix of a field
    imaged alone, and ``PREFIX-FIELD`` of each of several."""
    out = Path(output).expanduser()
    if out.is_dir() or output.endswith(("/", os.sep)):
        return lambda label, several: out / safe_name(label)
    return lambda label, several: out.with_name(f"{out.name}-{safe_name(label)}") if several else out


@click.command("image")
@click.argument("ms", metavar="IN", type=click.Path())
@click.option("-o", "--output", required=True, metavar="PREFIX_OR_DIR",
              help="Image name prefix (PREFIX-image.fits, ...; PREFIX-FIELD-image.fits when "
                   "several fields are imaged) or a directory (DIR/FIELD-image.fits).")
# the step's ms and output are IN and -o; its overwrite and required are the command's own:
# images of this command's making, and failing is all a command that only images can do
@config_options(ImageConfig, skip=("ms", "output", "required", "overwrite"),
                executable={"decls": ("--wsclean",), "metavar": "PATH"},
                field={"metavar": "NAME[,NAME...]"},
                size={"type": str, "metavar": "N|WxH"},
                polarizations={"decls": ("--pol",)},
                join_polarizations={"decls": ("--join-pols/--no-join-pols",)},
                shift={"multiple": False, "nargs": 2, "default": None, "metavar": "RA DEC"},
                threads={"decls": ("-j",)},
                extra_args={"decls": ("--extra",), "metavar": "ARG"})
@click.option("--overwrite", is_flag=True, default=False,
              help="Replace existing images with this prefix.")
@click.pass_context
def image(ctx, ms, output, overwrite, **options):
    """Image IN (a Measurement Set, or a pipeline OUTDIR holding calibrated.ms) to FITS, one
    image per field as the image step makes them, with its options (--field all: one image of
    every field).

    Images CORRECTED_DATA when the MS has it, else DATA. The MS is only read (WSClean runs with
    -no-update-model-required). WSClean's log is written next to the images as
    PREFIX-wsclean.log; -v also shows it on the terminal.
    """
    ms = _input_ms(ms)
    options["field"] = tuple(split_names(options["field"]))
    config = step_config("image", dict(options, shift=tuple(options["shift"] or ()),
                                       required=True))
    made, _ = image_fields(ms, _prefixes(output), config, overwrite=overwrite,
                           verbose=bool((ctx.obj or {}).get("verbose")))
    for label, result in made:
        click.echo(f"imaged {label} ({result.column}) of {ms} with {result.imager}: "
                   f"{len(result.files)} FITS file(s), log {result.log}")
        for path in result.images:
            click.echo(f"  {path}")


commands = [image]
