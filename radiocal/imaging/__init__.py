"""Imaging hand-off: a Measurement Set (CORRECTED_DATA by default) to FITS images.

WSClean is the default imager (:func:`run_wsclean`), CASA ``tclean`` an option when ``casatasks``
is installed (:func:`run_tclean`); both take the same :class:`ImagingOptions` and return an
:class:`ImagingResult`. :func:`make_image` picks one by name. The ``image`` pipeline step and
``radiocal image`` build on these.

Example (a pipeline's diagnostic image)::

    from radiocal.imaging import ImagingOptions, make_image
    result = make_image("OUT/calibrated.ms", "OUT/images/allsky",
                        ImagingOptions(size=512, scale="0.25deg", weight="briggs 0"))
    result.images  # [Path("OUT/images/allsky-image.fits")]
"""

from radiocal.imaging.errors import ImagerError, ImagerNotFoundError
from radiocal.imaging.options import ImagingOptions, MSInfo
from radiocal.imaging.result import ImagingResult
from radiocal.imaging.tclean import run_tclean, tclean_parameters
from radiocal.imaging.wsclean import find_wsclean, run_wsclean, wsclean_arguments

IMAGERS = ("wsclean", "tclean")


def make_image(ms, prefix, options: ImagingOptions | None = None, imager: str = "wsclean", *,
               overwrite: bool = False, verbose: bool = False, executable=None,
               inputs=()) -> ImagingResult:
    """Image ``ms`` into ``PREFIX-*.fits`` with ``imager`` (``"wsclean"`` or ``"tclean"``).

    See :func:`radiocal.imaging.wsclean.run_wsclean` for the parameters and errors;
    ``executable`` and ``verbose`` apply to WSClean only.
    """
    if imager == "wsclean":
        return run_wsclean(ms, prefix, options, executable=executable, overwrite=overwrite,
                           verbose=verbose, inputs=inputs)
    if imager == "tclean":
        return run_tclean(ms, prefix, options, overwrite=overwrite, inputs=inputs)
    from radiocal.errors import ConfigError

    raise ConfigError(f"imager {imager!r}: expected one of {', '.join(IMAGERS)}")


__all__ = [
    "IMAGERS",
    "ImagerError",
    "ImagerNotFoundError",
    "ImagingOptions",
    "ImagingResult",
    "MSInfo",
    "find_wsclean",
    "make_image",
    "run_tclean",
    "run_wsclean",
    "tclean_parameters",
    "wsclean_arguments",
]
