"""Helpers of the pipeline tests: how to run `radiocal` in a subprocess, tree digests."""

from __future__ import annotations

import sys

from ..engine.engine_testing import tree_digest  # noqa: F401  (one digest for both suites)

RADIOCAL = [sys.executable, "-m", "radiocal.cli.main"]


