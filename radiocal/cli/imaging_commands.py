"""``radiocal image``: FITS images of a Measurement Set (or a pipeline's output) with WSClean or tclean."""

from __future__ import annotations

import os
from pathlib import Path

import click

from radiocal.cli.common import split_names, step_config
from radiocal.cli.config_options import config_options
from radiocal.errors import InputError
from radiocal.imaging.step import ImageConfig

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
# the step's ms and output are IN and -o; its overwrite and required are the command's own:
# one prefix of this command's making, and failing is all a command that only images can do
@config_options(ImageConfig, skip=("ms", "output", "required", "overwrite"),
                executable={"decls": ("--wsclean",), "metavar": "PATH"},
                # one image of the fields named, not one each as the step makes
                field={"metavar": "NAME[,NAME...]",
                       "help": "field name(s) or id(s) in the image, or 'all' (default: the "
                               "first field)"},
                size={"type": str, "metavar": "N|WxH"},
                polarizations={"decls": ("--pol",)},
                join_polarizations={"decls": ("--join-pols/--no-join-pols",)},
                shift={"multiple": False, "nargs": 2, "default": None, "metavar": "RA DEC"},
                threads={"decls": ("-j",)},
                extra_args={"decls": ("--extra",), "metavar": "ARG"})
@click.option("--overwrite", is_flag=True, help="Replace existing images with this prefix.")
@click.pass_context
def image(ctx, ms, output, overwrite, **options):
    """Image IN (a Measurement Set, or a pipeline OUTDIR holding calibrated.ms) to FITS (the
    image step's options, as in pipeline YAML, but one image to one prefix).

    Images CORRECTED_DATA when the MS has it, else DATA. The MS is only read (WSClean runs with
    -no-update-model-required). WSClean's log is written next to the images as
    PREFIX-wsclean.log; -v also shows it on the terminal.
    """
    from radiocal.imaging import make_image

    ms = _input_ms(ms)
    fields = ",".join(split_names(options.pop("field")))
    config = step_config("image", dict(options, shift=tuple(options["shift"] or ())))
    verbose = bool((ctx.obj or {}).get("verbose"))
    result = make_image(ms, _prefix(output, ms), config.options(fields), config.imager,
                        overwrite=overwrite, verbose=verbose,
                        executable=config.executable or None)
    click.echo(f"imaged {result.column} of {ms} with {result.imager}: {len(result.files)} FITS "
               f"file(s), log {result.log}")
    for path in result.images:
        click.echo(f"  {path}")


commands = [image]
