"""Errors of the imaging hand-off: user-fixable, so the CLI prints them as one line."""

from radiocal.errors import RadiocalError


class ImagerError(RadiocalError):
    """The imager (WSClean or tclean) failed; the message carries its last meaningful log line."""


class ImagerNotFoundError(ImagerError):
    """The imager is not installed (or not where the configuration says)."""
