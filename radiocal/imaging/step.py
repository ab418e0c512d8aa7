"""The ``image`` pipeline step: diagnostic FITS images of the run's exported MS in ``images/``.

A sink: it images ``OUTDIR/calibrated.ms`` (the ``export`` step's product; CORRECTED_DATA when it
has it) with WSClean, or CASA tclean, one image per field, into ``OUTDIR/images/FIELD-*.fits``
and lists what it made in ``OUTDIR/images/images.json``. Diagnostic imaging is not required by
default: when the imager is absent or fails, the step logs a warning (which the QA report lists)
and the pipeline goes on; with ``required: true`` it stops the pipeline instead.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import ClassVar

from radiocal.registry import register_step
from radiocal.errors import ConfigError, OutputExistsError


def _opt(default, help_text, **extra):
    return dataclasses.field(default=default, metadata={"help": help_text, **extra})


@dataclass(frozen=True)
class ImageConfig:
    ms: str = _opt("calibrated.ms", "MS to image; relative paths are inside the output directory")
    output: str = _opt("images", "directory of the FITS images, inside the output directory "
                                 "unless absolute")
    imager: str = _opt("wsclean", "imager (tclean needs the modular CASA, casatasks, in this "
                                "Python)", choices=("wsclean", "tclean"))
    executable: str = _opt("", "WSClean program (default: $RADIOCAL_WSCLEAN, else wsclean on PATH)")
    required: bool = _opt(False, "stop the pipeline when the imager is absent or fails "
                                 "(false: log a warning and go on)")
    field: tuple = _opt((), "field name(s) or id(s) to image, one image each (default: every "
                            "field; all: one image of every field)")
    size: int | str = _opt(1024, "image width and height in pixels, or WIDTHxHEIGHT")
    scale: str = _opt("auto", "pixel size with unit, e.g. 2arcsec or 0.25deg "
                              "(auto: a fifth of the synthesised beam)")
    niter: int = _opt(1000, "maximum CLEAN iterations (0: dirty image)")
    threshold: float = _opt(0.0, "stop cleaning at this residual peak, Jy (0: none)")
    auto_threshold: float = _opt(3.0, "clean down to this many times the residual's robust rms")
    mgain: float = _opt(0.8, "major-cycle gain (WSClean -mgain)")
    weight: str = _opt("briggs 0", "natural, uniform or 'briggs R'")
    column: str = _opt("", "data column (default: CORRECTED_DATA when present, else DATA)")
    polarizations: str = _opt("I", "polarizations, e.g. I or I,V or XX,YY")
    channels_out: int = _opt(1, "images across the band")
    join_channels: bool = _opt(False, "joint deconvolution of the channel images plus an MFS image")
    join_polarizations: bool = _opt(False, "clean the polarizations jointly (WSClean "
                                                 "-join-polarizations)")
    intervals_out: int = _opt(1, "images in time (WSClean only)")
    minuv_l: float = _opt(0.0, "drop baselines shorter than this, wavelengths (0: keep all)")
    maxuv_l: float = _opt(0.0, "drop baselines longer than this, wavelengths (0: keep all)")
    multiscale: bool = _opt(False, "multi-scale CLEAN")
    shift: tuple = _opt((), "image centre: RA and Dec, e.g. 13h50m00s +25d10m00s or 207.5deg "
                            "25.17deg (empty: the phase centre)")
    threads: int = _opt(0, "imager threads (0: the imager's default)")
    extra_args: tuple = _opt((), "further WSClean arguments, passed as they are, one per word")
    overwrite: bool = _opt(False, "replace existing images outside the output directory")

    # `field` as the solve and applycal steps and radiocal image name it; pipeline files written
    # with `fields` still run, with a warning
    RENAMED: ClassVar[dict] = {"fields": "field"}

    def __post_init__(self):
        try:
            self.options("")
        except ConfigError as err:
            # ValueError: the registry reports it as a ConfigError naming the step
            raise ValueError(str(err)) from None

    def options(self, field: str):
        """The :class:`ImagingOptions` of one field's image."""
        from radiocal.imaging.options import ImagingOptions

        return ImagingOptions(
            size=self.size, scale=self.scale, niter=self.niter, threshold=self.threshold,
            auto_threshold=self.auto_threshold, mgain=self.mgain, weight=self.weight,
            column=self.column, polarizations=self.polarizations, field=field,
            channels_out=self.channels_out, join_channels=self.join_channels,
            join_polarizations=self.join_polarizations,
            intervals_out=self.intervals_out, minuv_l=self.minuv_l or None,
            maxuv_l=self.maxuv_l or None, multiscale=self.multiscale,
            shift=tuple(self.shift) or None, threads=self.threads or None,
            extra_args=tuple(self.extra_args))


def safe_name(name: str) -> str:
    """``name`` as a file name's part: anything but letters, digits and ``_.+-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name) or "field"


def field_labels(info, names) -> list[tuple[str, str]]:
    """``(name, label)`` of each field to image, in order and once each: ``names`` as given
    (names, ids, or ``all`` for one image of every field), default every field of the MS; the
    label names the image (a field's name for an id). A name the MS lacks is an InputError now,
    before anything is imaged."""
    names = list(dict.fromkeys(str(n) for n in names)) or list(info.fields)
    for name in names:
        info.field_ids(name)
    # a name of digits is an id where there is such a field (MSInfo.field_ids' rule)
    return [(name, info.fields[int(name)] if name.isdigit() and int(name) < len(info.fields)
             else name) for name in names]


def image_fields(ms, prefix_of, config: ImageConfig, *, overwrite: bool, verbose: bool = False,
                 inputs=(), logger=None):
    """Image each field of ``config.field`` of ``ms`` apart, to ``prefix_of(label, several)``
    (``several``: more than one image is made): the one loop of the image step and of
    ``radiocal image``.

    Returns ``(made, problems)``: ``(label, ImagingResult)`` of each image, and the imager's
    errors, which are raised instead when ``config.required``.
    """
    from radiocal.imaging import make_image
    from radiocal.imaging.errors import ImagerError, ImagerNotFoundError
    from radiocal.imaging.options import MSInfo

    labels = field_labels(MSInfo.read(ms), config.field)
    made, problems = [], []
    for name, label in labels:
        try:
            result = make_image(ms, prefix_of(label, len(labels) > 1), config.options(name),
                                config.imager, overwrite=overwrite, verbose=verbose,
                                executable=config.executable or None, inputs=inputs)
        except ImagerError as err:
            if config.required:
                raise
            problems.append(str(err))
            # a missing imager fails every field alike: say it once
            if isinstance(err, ImagerNotFoundError):
                break
            continue
        made.append((label, result))
        if logger is not None:
            logger.info("image: %s -> %s", label, ", ".join(p.name for p in result.images))
    return made, problems


@register_step("image", ImageConfig, kind="sink")
def image(datasets, config: ImageConfig, context):
    """Diagnostic images of the exported MS with WSClean (or tclean), one per field, in images/."""
    ms = context.output_path(config.ms)
    if not (ms / "table.dat").exists():
        raise ConfigError(f"step 'image': {ms} is not a Measurement Set "
                          f"(put an export step before image, or set ms:)")
    outdir = context.output_path(config.output).resolve()
    ours = outdir == context.outdir.resolve() or context.outdir.resolve() in outdir.parents
    try:
        made, problems = image_fields(ms, lambda label, _: outdir / safe_name(label), config,
                                      overwrite=ours or config.overwrite, inputs=context.inputs,
                                      logger=context.logger)
    except OutputExistsError as err:
        raise ConfigError(f"step 'image': {err}") from None
    for problem in problems:
        context.logger.warning("%s; no diagnostic image made", problem)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "images.json").write_text(json.dumps(
        {"ms": str(ms),
         "images": [{"field": label, "imager": result.imager, "column": result.column,
                     "images": [str(p) for p in result.images],
                     "files": [str(p) for p in result.files], "log": str(result.log),
                     "command": list(result.command)} for label, result in made],
         "problems": problems}, indent=2) + "\n")
    return datasets
