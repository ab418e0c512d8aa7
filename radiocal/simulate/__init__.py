"""The project's own Measurement Set simulator: the test suite's data source.

``simulate(SimConfig(...))`` returns canonical datasets (see ``docs/data-model.md``) with a
:class:`Truth` holding the gains, bandpasses, delays, sky, model visibilities, star spectra and RFI
masks they were made from; ``simulate_ms`` also writes them as one MS, and ``lwa_files`` writes
OVRO-LWA-style per-integration, per-sub-band MS files.
"""

from radiocal.simulate.config import (
    DEFAULT_BACKGROUND,
    DEFAULT_FIELDS,
    ROLE_INTENTS,
    FieldSpec,
    PointSource,
    SimConfig,
)
from radiocal.simulate.simulator import (
    Simulation,
    Sky,
    Truth,
    lwa_files,
    lwa_name,
    simulate,
    simulate_ms,
)

__all__ = [
    "DEFAULT_BACKGROUND",
    "DEFAULT_FIELDS",
    "ROLE_INTENTS",
    "FieldSpec",
    "PointSource",
    "SimConfig",
    "Simulation",
    "Sky",
    "Truth",
    "lwa_files",
    "lwa_name",
    "simulate",
    "simulate_ms",
]
