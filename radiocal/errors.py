"""Errors raised for problems with what the user gave us.

The CLI prints these as one line (no traceback unless --debug) and exits non-zero. Internal bugs are
plain exceptions: the CLI prints them as one "internal error" line too (exit 70), and --debug
shows their tracebacks.
"""


class RadiocalError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    exit_code = 1


class InputError(RadiocalError):
    """An input path, table or file is missing, unreadable or malformed."""


class SelectionError(RadiocalError):
    """A selection string is malformed or selects nothing."""


class OutputExistsError(RadiocalError):
    """The output exists and --overwrite was not given."""


class ConfigError(RadiocalError):
    """A configuration value or pipeline file is invalid."""


class OutputError(RadiocalError):
    """An output could not be written (the disk is full, a file grew beyond a limit, ...)."""

    @classmethod
    def writing(cls, path, err: BaseException) -> "OutputError":
        """``path``: writing failed, with the first line of what the OS or casacore said."""
        lines = str(err).strip().splitlines()
        text = getattr(err, "strerror", None) or (lines[0] if lines else type(err).__name__)
        return cls(f"{path}: writing failed ({text})")
