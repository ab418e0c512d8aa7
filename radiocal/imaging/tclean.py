"""Image a Measurement Set with CASA's ``tclean`` when the modular CASA (``casatasks``) is installed.

CASA is optional: nothing here imports it until :func:`run_tclean` runs. The same
:class:`ImagingOptions` as for WSClean map onto tclean's parameters
(:func:`tclean_parameters`); products are ``PREFIX-tclean.{image,residual,psf,model,...}`` CASA
images, exported with ``exportfits`` to ``PREFIX-{image,residual,psf,model}.fits`` like WSClean's.
``savemodel='none'`` keeps tclean from writing to the MS.

Differences from WSClean: ``shift`` becomes ``phasecenter`` (tclean reprojects about the new
centre, WSClean keeps the tangent point); ``mgain`` has no exact tclean counterpart and is not
passed; ``intervals_out``, ``join_channels`` and ``extra_args`` are WSClean-only and refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

from radiocal.errors import ConfigError
from radiocal.imaging.errors import ImagerError, ImagerNotFoundError
from radiocal.astro import format_dec, format_ra
from radiocal.imaging.options import ImagingOptions, MSInfo
from radiocal.imaging.result import ImagingResult, claim_prefix, existing_products, output_prefix

NOT_FOUND = ("CASA tclean not available: install the modular CASA ('pip install casatasks') "
             "into this Python, or use --imager wsclean")
# Stokes products tclean can make (its 'stokes' parameter)
TCLEAN_STOKES = ("I", "Q", "U", "V", "IV", "QU", "IQ", "UV", "IQU", "IUV", "IQUV",
                 "RR", "LL", "RRLL", "XX", "YY", "XXYY")
# CASA image suffix -> the WSClean-style FITS kind it is exported as
EXPORTS = (("image", "image"), ("residual", "residual"), ("psf", "psf"), ("model", "model"),
           ("pb", "pb"))
_COLUMNS = {"CORRECTED_DATA": "corrected", "DATA": "data", "MODEL_DATA": "model"}

log = logging.getLogger("radiocal.imaging")


def casa_available() -> bool:
    """Whether ``casatasks`` imports in this Python."""
    import importlib.util

    return importlib.util.find_spec("casatasks") is not None


def tclean_parameters(ms, imagename, options: ImagingOptions, info: MSInfo | None = None) -> dict:
    """The ``casatasks.tclean`` keyword arguments for ``options`` (CASA is not imported).

    Raises
    ------
    ConfigError
        For options tclean cannot honour (time intervals, joined channels, WSClean arguments, a
        polarisation list tclean does not make, a band that does not split evenly).
    """
    info = MSInfo.read(ms) if info is None else info
    options = options.resolved(ms)
    if options.intervals_out > 1:
        raise ConfigError("intervals_out > 1 is WSClean-only (tclean images one time range)")
    if options.join_channels:
        raise ConfigError("join_channels is WSClean-only (for tclean use channels_out alone)")
    if options.extra_args:
        raise ConfigError("extra_args are WSClean arguments and cannot be passed to tclean")
    stokes = "".join(options.pols)
    if stokes not in TCLEAN_STOKES:
        raise ConfigError(f"tclean cannot make polarizations {options.polarizations!r} "
                          f"(it makes {', '.join(TCLEAN_STOKES)})")
    mode, robust = options.weighting
    fields = info.field_ids(options.field)
    params = dict(
        vis=str(ms), imagename=str(imagename),
        datacolumn=_COLUMNS[info.data_column(options.column)],
        field="" if fields is None else ",".join(str(i) for i in (fields or [0])),
        imsize=list(options.size), cell=f"{options.scale_arcsec:.10g}arcsec",
        stokes=stokes, weighting=mode, niter=options.niter, gain=options.gain,
        threshold=f"{options.threshold:g}Jy", savemodel="none", specmode="mfs",
        deconvolver="multiscale" if options.multiscale else "hogbom",
    )
    if robust is not None:
        params["robust"] = robust
    if options.multiscale:
        params["scales"] = [0, 5, 15]
    if options.niter > 0 and options.auto_threshold is not None:
        params["nsigma"] = options.auto_threshold
    if options.channels_out > 1:
        nchan = info.channels[0] if info.channels else 0
        if nchan % options.channels_out:
            raise ConfigError(f"channels_out {options.channels_out} does not divide the "
                              f"{nchan} channels of spw 0 (tclean cube planes are whole channels)")
        params.update(specmode="cube", nchan=options.channels_out, start=0,
                      width=nchan // options.channels_out)
    if options.minuv_l is not None and options.maxuv_l is not None:
        params["uvrange"] = f"{options.minuv_l:g}~{options.maxuv_l:g}lambda"
    elif options.minuv_l is not None:
        params["uvrange"] = f">{options.minuv_l:g}lambda"
    elif options.maxuv_l is not None:
        params["uvrange"] = f"<{options.maxuv_l:g}lambda"
    if options.shift is not None:
        ra, dec = options.shift_radians
        params["phasecenter"] = f"J2000 {format_ra(ra)} {format_dec(dec)}"
    return params


def run_tclean(ms, prefix, options: ImagingOptions | None = None, *, overwrite: bool = False,
               inputs=()) -> ImagingResult:
    """Image ``ms`` with ``casatasks.tclean``; FITS products ``PREFIX-{image,residual,psf,model}.fits``.

    Raises
    ------
    ImagerNotFoundError
        ``casatasks`` does not import here.
    ImagerError
        tclean or exportfits failed.
    """
    options = ImagingOptions() if options is None else options
    try:
        import casatasks
    except ImportError:
        raise ImagerNotFoundError(NOT_FOUND) from None
    ms = Path(ms).expanduser()
    info = MSInfo.read(ms)
    options = options.resolved(ms)
    prefix = output_prefix(prefix, ms, inputs)
    imagename = prefix.parent / f"{prefix.name}-tclean"
    log_path = prefix.parent / f"{prefix.name}-tclean.log"
    casa_dirs = [f"{imagename.name}.{suffix}" for suffix in
                 ("image", "residual", "psf", "model", "pb", "sumwt", "mask", "weight")]
    params = tclean_parameters(ms, imagename, options, info)
    claim_prefix(prefix, overwrite, extra=[log_path.name, *casa_dirs])
    previous = casatasks.casalog.logfile()
    casatasks.casalog.setlogfile(str(log_path))
    try:
        log.info("tclean: %s", params)
        try:
            casatasks.tclean(**params)
        except Exception as err:  # CASA raises bare RuntimeError/AssertionError with its reason
            raise ImagerError(f"tclean failed: {_first_line(err)} (log: {log_path})") from None
        files = []
        for suffix, kind in EXPORTS:
            source = Path(f"{imagename}.{suffix}")
            if source.is_dir():
                target = prefix.parent / f"{prefix.name}-{kind}.fits"
                try:
                    casatasks.exportfits(imagename=str(source), fitsimage=str(target),
                                         overwrite=True)
                except Exception as err:
                    raise ImagerError(f"exportfits of {source} failed: {_first_line(err)}") from None
                files.append(target)
    finally:
        casatasks.casalog.setlogfile(previous)
    command = ("tclean",) + tuple(f"{k}={v!r}" for k, v in params.items())
    result = ImagingResult("tclean", command, log_path,
                           tuple(p for p in existing_products(prefix) if p in files),
                           info.data_column(options.column))
    if not result.images:
        raise ImagerError(f"tclean wrote no image (log: {log_path})")
    return result


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
