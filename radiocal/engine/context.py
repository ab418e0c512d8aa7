"""What a step gets besides its datasets and config: where outputs go, a logger, the engine."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StepContext:
    """Per-step surroundings passed to ``run(datasets, config, context)``.

    Attributes
    ----------
    outdir : Path
        The run's output directory (products such as ``calibrated.ms`` or ``plots/`` go here).
    store : Path
        The run's zarr store (``outdir / "store.zarr"``); the runner owns writes to its partitions.
    logger : logging.Logger
        Logger for this step (``radiocal.step.<name>``); messages also reach ``outdir/log.txt``.
    engine : radiocal.engine.cluster.Engine or None
        Where work runs; None when a step is called outside a pipeline.
    step_name : str
        The registered name of the step being run.
    index : int
        Position of the step in the pipeline (0-based).
    inputs : list of Path
        Paths the pipeline read from (never written to): a step writing files must not target them.
    inputs_stored : bool
        The datasets handed to the step are ``store``'s current partitions, unchanged (as the
        runner opens them), so what the step needs of them can be taken from the store's files.
    """

    outdir: Path
    store: Path
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("radiocal.step"))
    engine: object | None = None
    step_name: str = ""
    index: int = 0
    inputs: list[Path] = field(default_factory=list)
    inputs_stored: bool = False

    def output_path(self, path: str | Path) -> Path:
        """Resolve ``path`` against the output directory (absolute paths are kept)."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.outdir / path

    @classmethod
    def for_library(cls, outdir: str | Path, engine=None) -> "StepContext":
        """A context for calling a step's ``run`` from a script, outside ``radiocal run``."""
        outdir = Path(outdir)
        return cls(outdir=outdir, store=outdir / "store.zarr", engine=engine)
