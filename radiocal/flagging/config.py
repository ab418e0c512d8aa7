"""The ``flag`` step's options (pipeline YAML, ``radiocal flag``, ``radiocal.flag``).

Kept apart from the flaggers so that the CLI can build its options from these fields without
importing the numba kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from radiocal.errors import InputError
from radiocal.select.config import SelectionConfig


@dataclass(frozen=True)
class FlagConfig(SelectionConfig):
    """The flag step's options; with a selection, flags change only inside it."""

    strategy: str = field(default="default", metadata={
        "help": "strategy YAML file, a shipped strategy (generic, ovro_lwa, ata, atca, alma), or "
                "'default': the shipped one for the data's telescope"})
    propagate_correlations: bool | None = field(
        default=None, metadata={"help": "flag all correlations of a flagged sample "
                                        "(default: as the strategy says, on for 'default')"})
    save_version: bool = field(default=True, metadata={
        "help": "save the incoming flags as a flag version in the store first"})
    version_name: str = field(default="", metadata={
        "help": "name of that flag version (default: flag_N from radiocal flag, "
                "before_<step>_N in a pipeline)"})
    bad_antennas: tuple = field(default=(), metadata={
        "help": "antenna names flagged throughout, before the strategy runs"})
    bad_antennas_file: str = field(default="", metadata={
        "help": "text file of bad antenna names (commas/whitespace, '#' comments)",
        "input": True})

    def antennas(self) -> tuple[str, ...]:
        """``bad_antennas`` and the names in ``bad_antennas_file``, in order, once each."""
        names = [str(a) for a in self.bad_antennas]
        if self.bad_antennas_file:
            path = Path(self.bad_antennas_file).expanduser()
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError) as err:
                reason = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else err.strerror or err
                raise InputError(f"{path}: cannot read the bad-antenna list ({reason})") from None
            for line in text.splitlines():
                names += line.split("#", 1)[0].replace(",", " ").split()
        return tuple(dict.fromkeys(names))
