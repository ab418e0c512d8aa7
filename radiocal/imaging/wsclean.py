"""Image a Measurement Set with WSClean: an argument list (never a shell), a log next to the images.

WSClean is found on ``PATH`` (Debian/Ubuntu package ``wsclean``) unless ``RADIOCAL_WSCLEAN`` or the
``executable`` argument names it. The MS is opened read-only: ``-no-update-model-required`` keeps
WSClean from writing MODEL_DATA back, and reordered copies go to a temporary directory beside the
images. A failure becomes a one-line :class:`ImagerError` quoting WSClean's own last word.

WSClean 3.x ``-shift RA DEC`` keeps the tangent point at the phase centre and moves the image
centre along the tangent plane: the FITS header then has ``CRVAL`` at the phase centre and ``CRPIX``
off the image centre, so world coordinates stay exact.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from radiocal.errors import ConfigError
from radiocal.imaging.errors import ImagerError, ImagerNotFoundError
from radiocal.astro import format_dec, format_ra
from radiocal.imaging.options import ImagingOptions, MSInfo
from radiocal.imaging.result import ImagingResult, claim_prefix, existing_products, output_prefix

ENV_VAR = "RADIOCAL_WSCLEAN"
NOT_FOUND = ("wsclean not found: install the Debian/Ubuntu package 'wsclean' "
             f"or set {ENV_VAR}")

log = logging.getLogger("radiocal.imaging")


def find_wsclean(executable: str | os.PathLike | None = None) -> str:
    """The WSClean executable: ``executable``, else ``$RADIOCAL_WSCLEAN``, else ``wsclean`` on PATH.

    Raises
    ------
    ImagerNotFoundError
        When the named program (or ``wsclean`` on PATH) does not exist or is not executable.
    """
    named = executable if executable is not None else os.environ.get(ENV_VAR) or None
    if named is None:
        found = shutil.which("wsclean")
        if found is None:
            raise ImagerNotFoundError(NOT_FOUND)
        return found
    named = os.path.expanduser(os.fspath(named))
    found = shutil.which(named) if os.sep not in named else (
        named if os.path.isfile(named) and os.access(named, os.X_OK) else None)
    if found is None:
        source = f"{ENV_VAR}={named}" if executable is None else named
        raise ImagerNotFoundError(f"{NOT_FOUND} ({source} is not an executable)")
    return found


def wsclean_version(executable: str) -> tuple[int, ...]:
    """WSClean's version, e.g. (3, 1, 0), from ``wsclean -version``; () when it does not say."""
    try:
        out = subprocess.run([executable, "-version"], capture_output=True, text=True,
                             errors="replace", timeout=60, check=False).stdout
    except OSError as err:
        raise ImagerNotFoundError(f"{NOT_FOUND} ({executable}: {err.strerror})") from None
    match = re.search(r"WSClean version (\d+(?:\.\d+)*)", out)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def wsclean_arguments(ms, prefix, options: ImagingOptions, info: MSInfo | None = None,
                      executable: str = "wsclean", temp_dir=None) -> list[str]:
    """The WSClean command as an argument list (each item one argv word; no shell involved).

    Parameters
    ----------
    ms : path
        The Measurement Set (the last argument).
    prefix : path
        Image name prefix (``-name``): products are ``PREFIX-image.fits`` etc.
    options : ImagingOptions
    info : MSInfo, optional
        Columns and fields of ``ms`` (read when not given) to resolve the data column and field
        names; the column defaults to CORRECTED_DATA when present, else DATA.
    executable : str
        argv[0].
    temp_dir : path, optional
        Where WSClean may write reordered copies (``-temp-dir``).
    """
    info = MSInfo.read(ms) if info is None else info
    options = options.resolved(ms)
    width, height = options.size
    args = [os.fspath(executable),
            "-name", os.fspath(prefix),
            "-size", str(width), str(height),
            "-scale", f"{options.scale_arcsec:.10g}asec",
            "-data-column", info.data_column(options.column),
            "-pol", ",".join(p.lower() for p in options.pols),
            "-no-update-model-required"]
    mode, robust = options.weighting
    args += ["-weight", mode] + ([f"{robust:g}"] if robust is not None else [])
    fields = info.field_ids(options.field)
    if fields is None:
        args += ["-field", "all"]
    elif fields:
        args += ["-field", ",".join(str(i) for i in fields)]
    args += ["-niter", str(options.niter)]
    if options.niter > 0:
        args += ["-mgain", f"{options.mgain:g}", "-gain", f"{options.gain:g}"]
        if options.auto_threshold is not None:
            args += ["-auto-threshold", f"{options.auto_threshold:g}"]
        if options.threshold > 0:
            args += ["-threshold", f"{options.threshold:g}"]
        if options.multiscale:
            args += ["-multiscale"]
        if options.join_polarizations and len(options.pols) > 1:
            args += ["-join-polarizations"]
    if options.channels_out > 1:
        args += ["-channels-out", str(options.channels_out)]
        if options.join_channels:
            args += ["-join-channels"]
    if options.intervals_out > 1:
        args += ["-intervals-out", str(options.intervals_out)]
    if options.minuv_l is not None:
        args += ["-minuv-l", f"{options.minuv_l:g}"]
    if options.maxuv_l is not None:
        args += ["-maxuv-l", f"{options.maxuv_l:g}"]
    if options.shift is not None:
        ra, dec = options.shift_radians
        args += ["-shift", format_ra(ra), format_dec(dec)]
    if options.threads is not None:
        args += ["-j", str(options.threads)]
    if len(info.channels) > 1 and not {"-reorder", "-no-reorder"} & set(options.extra_args):
        # WSClean refuses to read several spectral windows in place (OVRO-LWA sub-bands)
        args += ["-reorder"]
    if temp_dir is not None:
        args += ["-temp-dir", os.fspath(temp_dir)]
    args += list(options.extra_args)
    args.append(os.fspath(ms))
    return args


def _check_version(exe: str, options: ImagingOptions) -> None:
    """Refuse, with a clear reason, what the installed WSClean is known not to do."""
    separate_pols = len(options.pols) > 1 and not options.join_polarizations
    cube_clean = options.niter > 0 and options.channels_out > 1 and options.join_channels
    if options.shift is None and not (separate_pols and cube_clean):
        return
    version = wsclean_version(exe)
    name = f"WSClean {'.'.join(map(str, version))}"
    if options.shift is not None and version and version < (3, 0):
        raise ImagerError(f"{exe} is {name}; shifting the image centre needs WSClean 3.0 or later")
    if separate_pols and cube_clean and version and version <= (3, 1, 0):
        # WSClean 3.1 loses a temporary PSF file and stops with a CFITSIO error
        raise ConfigError(f"{name} cannot clean several polarizations separately with "
                          f"join_channels: add join_polarizations (--join-pols)")


_DECORATION = re.compile(r"^[+\s]*$")


def failure_line(text: str) -> str:
    """The line of a WSClean log that says what went wrong (its exception text when it has one)."""
    # ("# " starts the command line radiocal writes at the top of the log)
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()
             if not line.startswith("# ")]
    # WSClean frames exceptions as "+ An exception occured:" / "+ >>> message" between "+ + +" rows
    quoted = [line.lstrip("+ ").removeprefix(">>>").strip() for line in lines if ">>>" in line]
    if quoted:
        return quoted[-1]
    for line in reversed(lines):
        if line and not _DECORATION.match(line) and not line.startswith("Cleaning up"):
            return line
    return "no output"


def _run(args: list[str], log_path: Path, verbose: bool) -> int:
    """Run ``args`` with the log written to ``log_path`` (and echoed to stderr when verbose)."""
    with open(log_path, "w", encoding="utf-8") as log_file:
        log_file.write("# " + " ".join(args) + "\n")
        log_file.flush()
        if not verbose:
            return subprocess.run(args, stdout=log_file, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, check=False).returncode
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, errors="replace") as proc:
            for line in proc.stdout:
                log_file.write(line)
                sys.stderr.write(line)
            return proc.wait()


def run_wsclean(ms, prefix, options: ImagingOptions | None = None, *, executable=None,
                overwrite: bool = False, verbose: bool = False, inputs=()) -> ImagingResult:
    """Image ``ms`` with WSClean into ``PREFIX-*.fits``; the log is ``PREFIX-wsclean.log``.

    Parameters
    ----------
    ms : path
        Measurement Set, never written to.
    prefix : path
        Output name prefix, e.g. ``images/target``; its directory is created.
    options : ImagingOptions, optional
        Defaults: 1024 x 1024 pixels of a fifth of the beam, Briggs 0, Stokes I cleaned to
        3 sigma (at most 1000 components).
    executable : path, optional
        WSClean to run (default: ``$RADIOCAL_WSCLEAN``, else ``wsclean`` on PATH).
    overwrite : bool
        Replace existing products of this prefix (refused otherwise).
    verbose : bool
        Echo WSClean's output to stderr as well as to the log.
    inputs : sequence of path
        Further paths the images must not be written into.

    Returns
    -------
    ImagingResult
        The FITS files written (``.images``: restored images), the command and the log.

    Raises
    ------
    ImagerNotFoundError
        WSClean is absent.
    ImagerError
        WSClean failed (the message quotes its log) or wrote no image.
    InputError, ConfigError, OutputExistsError
        A bad MS, option or output prefix.
    """
    options = ImagingOptions() if options is None else options
    exe = find_wsclean(executable)
    ms = Path(ms).expanduser()
    info = MSInfo.read(ms)
    options = options.resolved(ms)
    prefix = output_prefix(prefix, ms, inputs)
    _check_version(exe, options)
    log_path = prefix.parent / f"{prefix.name}-wsclean.log"
    claim_prefix(prefix, overwrite, extra=[log_path.name])
    temp_dir = Path(tempfile.mkdtemp(prefix=f".{prefix.name}-wsclean-", dir=prefix.parent))
    try:
        args = wsclean_arguments(ms, prefix, options, info, exe, temp_dir)
        log.info("wsclean: %s", " ".join(args))
        code = _run(args, log_path, verbose)
    except OSError as err:
        raise ImagerNotFoundError(f"{NOT_FOUND} ({exe}: {err.strerror})") from None
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    text = log_path.read_text(errors="replace")
    if code != 0:
        raise ImagerError(f"wsclean failed (exit {code}): {failure_line(text)} (log: {log_path})")
    files = tuple(existing_products(prefix))
    result = ImagingResult("wsclean", tuple(args), log_path, files, info.data_column(options.column))
    if not result.images:
        raise ImagerError(f"wsclean wrote no image: {failure_line(text)} (log: {log_path})")
    return result
