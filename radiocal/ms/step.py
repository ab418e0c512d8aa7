"""Pipeline steps at the ends of a pipeline: ``convert`` (MS -> datasets) and ``export`` (-> MS).

``convert`` is the source step: it reads the input Measurement Set(s) read-only and the runner
writes the datasets to the run's store. ``export`` is a sink: it writes the current datasets (with
``VISIBILITY_CORRECTED`` when a step made it) as a new MS in the output directory.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from radiocal.budget import CHUNK_MB_HELP, mib_to_bytes
from radiocal.registry import register_step
from radiocal.errors import ConfigError, OutputExistsError
from radiocal.select.config import SelectionConfig


@dataclass(frozen=True)
class ConvertConfig(SelectionConfig):
    ms: tuple[str, ...] = dataclasses.field(default=(), metadata={
        "help": "input Measurement Set(s), opened read-only (radiocal run PIPELINE IN.ms ... sets it)",
        "input": True})
    chunk_mb: float = dataclasses.field(default=0.0, metadata={
        "help": CHUNK_MB_HELP + " for the store's chunks; 0: the run's budget (radiocal --chunk-mb)"})
    renumber_scans: bool = dataclasses.field(default=False, metadata={
        "help": "number scans from the data, a new scan wherever the field changes in time "
                "(for correlators that keep one SCAN_NUMBER across sources)"})
    join_subbands: bool = dataclasses.field(default=True, metadata={
        "help": "join MS recorded at the same times along frequency into one spectral window; "
                "off: keep each MS's spectral windows (LO tunings far apart, calibrated separately)"})
    phase_centre: str = dataclasses.field(default="", metadata={
        "help": "rephase every partition to this J2000 centre, 'RA DEC' (e.g. '19h59m28.36s "
                "+40d44m02.1s'); empty: drift-scan files phased to the zenith of each "
                "integration (OVRO-LWA) are rephased to the first one's"})

    def __post_init__(self):
        if not self.chunk_mb >= 0:
            raise ValueError(f"chunk_mb must be positive (or 0: the run's budget), got {self.chunk_mb}")
        try:
            self.centre()   # a bad direction fails when the pipeline is loaded
        except ValueError as err:
            raise ValueError(f"phase_centre: {err}") from None

    def centre(self) -> tuple[float, float] | None:
        """``phase_centre`` as J2000 (ra, dec) radians, None when empty."""
        from radiocal.astro import parse_direction

        return parse_direction(self.phase_centre) if self.phase_centre else None


@register_step("convert", ConvertConfig, kind="source")
def convert(datasets, config: ConvertConfig, context):
    """Read Measurement Set(s) into canonical datasets (the start of every pipeline)."""
    if not config.ms:
        raise ConfigError("step 'convert': no input Measurement Set (set ms: or pass IN.ms to radiocal run)")
    from radiocal.ms.read import read_ms

    paths = [os.fspath(Path(p).expanduser()) for p in config.ms]
    chunk_bytes = mib_to_bytes(config.chunk_mb) if config.chunk_mb else None
    datasets = read_ms(paths, selection=config.selection(), chunk_bytes=chunk_bytes,
                       renumber_scans=config.renumber_scans, join_subbands=config.join_subbands,
                       phase_centre=config.centre())
    context.logger.info("convert: %d partition(s) from %s", len(datasets), ", ".join(paths))
    return datasets


@dataclass(frozen=True)
class ExportConfig(SelectionConfig):
    path: str = dataclasses.field(default="calibrated.ms", metadata={
        "help": "MS to write; relative paths are inside the output directory"})
    overwrite: bool = dataclasses.field(default=False, metadata={
        "help": "replace an existing MS outside the output directory (never an input)"})


@register_step("export", ExportConfig, kind="sink")
def export(datasets, config: ExportConfig, context):
    """Write the datasets (with CORRECTED_DATA when calibrated) as a new Measurement Set."""
    from radiocal.ms.write import write_ms
    from radiocal.select.selection import select

    target = context.output_path(config.path).resolve()
    for source in context.inputs:
        if target == source or source in target.parents:
            raise ConfigError(f"step 'export': {target} is an input; inputs are never written to")
    # Inside the output directory the MS is this run's own product (a redo replaces it);
    # elsewhere replacing something needs an explicit overwrite.
    ours = context.outdir.resolve() in target.parents
    if target.exists() and not (ours or config.overwrite):
        raise OutputExistsError(f"step 'export': {target} exists (set overwrite: true to replace it)")
    selection = config.selection()
    write_ms(datasets if selection is None else select(datasets, selection), target, overwrite=True)
    context.logger.info("export: wrote %s", target)
    return datasets

