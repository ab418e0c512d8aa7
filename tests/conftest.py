"""Fixtures shared by the whole suite: reference data paths and an in-process CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VLA_SMALL = SHARED_DATA / "vla_small"


@pytest.fixture(scope="session")
def vla_small_dir() -> Path:
    """``../shared/data/vla_small`` (CASA-written MS, truth and CASA's tables), or skip."""
    if not (VLA_SMALL / "vla_small.ms" / "table.dat").exists():
        pytest.skip(f"reference data absent: {VLA_SMALL} (the shared/ checkout beside the project)")
    return VLA_SMALL


@pytest.fixture(scope="session")
def vla_small_ms(vla_small_dir) -> str:
    return str(vla_small_dir / "vla_small.ms")


# vla_small's DATA was computed with exp(-2 pi i (ul + vm + w(n-1)) nu / c), the opposite of CASA's
# sign that radiocal follows by default: CASA's own ft + uvsub of its skymodel.txt
# (casa_reference/cal.ms) leaves each source at -S where it is listed and +S at the mirror position.
# Tests that predict its sky model say so.
VLA_SMALL_PHASE_CONVENTION = "fourier"


class CliResult:
    def __init__(self, exit_code: int, out: str, err: str):
        self.exit_code, self.out, self.err = exit_code, out, err


@pytest.fixture
def run_cli(capsys):
    """Run ``radiocal ARGS`` in-process through the real entry point; return code and output."""
    from radiocal.cli.main import main

    def run(*args) -> CliResult:
        capsys.readouterr()
        try:
            main([os.fspath(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
