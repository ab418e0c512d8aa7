"""The canonical data model: dimension, variable, coordinate and attribute names.

Every module refers to these constants, never to string literals, so the model can only change
here. One canonical dataset holds one (field, spectral window, scan) partition on a regular
``time x baseline`` grid (MSv4-style names); see ``docs/data-model.md``.
"""

from radiocal.errors import InputError

# Dimensions
TIME = "time"
BASELINE = "baseline"
FREQUENCY = "frequency"
POLARIZATION = "polarization"
UVW_LABEL = "uvw_label"
ANTENNA = "antenna"
CARTESIAN = "cartesian_pos_label"

# Data variables
VISIBILITY = "VISIBILITY"                      # (time, baseline, frequency, polarization) complex64
VISIBILITY_CORRECTED = "VISIBILITY_CORRECTED"  # calibrated data (MS CORRECTED_DATA)
VISIBILITY_MODEL = "VISIBILITY_MODEL"          # model data (MS MODEL_DATA)
FLAG = "FLAG"                                  # (time, baseline, frequency, polarization) bool
WEIGHT = "WEIGHT"                              # (time, baseline, frequency, polarization) float32
UVW = "UVW"                                    # (time, baseline, uvw_label) float64, metres
ROW_PRESENT = "ROW_PRESENT"                    # (time, baseline) bool: False where the MS had no row

VISIBILITY_VARS = (VISIBILITY, VISIBILITY_CORRECTED, VISIBILITY_MODEL)
REQUIRED_VARS = (VISIBILITY, FLAG, WEIGHT, UVW, ROW_PRESENT)   # in every canonical dataset
# MS main-table column for each visibility variable
MS_COLUMN = {
    VISIBILITY: "DATA",
    VISIBILITY_CORRECTED: "CORRECTED_DATA",
    VISIBILITY_MODEL: "MODEL_DATA",
}

# Coordinates
BASELINE_ANTENNA1 = "baseline_antenna1"        # (baseline) int32 index into the antenna dimension
BASELINE_ANTENNA2 = "baseline_antenna2"
ANTENNA_NAME = "antenna_name"                  # (antenna) str
ANTENNA_STATION = "antenna_station"            # (antenna) str
ANTENNA_POSITION = "antenna_position"          # (antenna, cartesian_pos_label) ITRF metres
ANTENNA_DIAMETER = "antenna_dish_diameter"     # (antenna) metres
ANTENNA_MOUNT = "antenna_mount"                # (antenna) str
CHANNEL_WIDTH = "channel_width"                # (frequency) Hz
INTEGRATION_TIME = "integration_time"          # (time) seconds (MS INTERVAL)
# (time) int32, the MS OBSERVATION_ID: a concatenation may repeat scan numbers and FIELD rows
# across observations, and solution intervals must not span them
OBSERVATION_ID = "observation_id"
# (time) int32, the MS ARRAY_ID (subarray): like OBSERVATION_ID, solution intervals never span
# two arrays, whose antennas are not connected by any baseline
ARRAY_ID = "array_id"

UVW_LABELS = ("u", "v", "w")
CARTESIAN_LABELS = ("x", "y", "z")

# Dataset attributes (scalars or short lists; all JSON-serialisable so they survive zarr)
ATTR_FIELD_ID = "field_id"
ATTR_FIELD_NAME = "field_name"
ATTR_FIELD_CODE = "field_code"
ATTR_PHASE_CENTER = "phase_center"             # [ra, dec] radians, J2000
ATTR_SPW_ID = "spw_id"
ATTR_SPW_NAME = "spw_name"
ATTR_FREQ_REF = "frequency_frame"              # MEAS_FREQ_REF name, e.g. "TOPO"
ATTR_REF_FREQUENCY = "reference_frequency"     # Hz
ATTR_SCAN = "scan_number"
ATTR_INTENTS = "intents"                       # list of str, e.g. ["CALIBRATE_BANDPASS#ON_SOURCE"]
ATTR_TELESCOPE = "telescope"
ATTR_OBSERVER = "observer"
ATTR_PROJECT = "project"
ATTR_SOURCES = "source_ms"                     # list of input MS paths the partition came from
ATTR_PARTITION = "partition"                   # the partition's name in a store
# first frequency (Hz) of each sub-band of a window joined from several files (ms/join.py):
# each has a bandpass of its own, so backgrounds along frequency are fitted piece by piece
ATTR_SUBBAND_STARTS = "subband_starts"
# set by polarisation calibration (radiocal.calibration.polapply): which terms corrected
# VISIBILITY_CORRECTED, {"cross_hand_phase": bool, "leakage": bool, "parallactic_angle": bool};
# Stokes products that need the cross-hand phase are only formed when it is true
ATTR_POLCAL = "polarization_calibration"

# Correlation types, as numbered by casacore's Stokes enumeration (MS POLARIZATION::CORR_TYPE)
CORR_TYPES = {
    1: "I", 2: "Q", 3: "U", 4: "V",
    5: "RR", 6: "RL", 7: "LR", 8: "LL",
    9: "XX", 10: "XY", 11: "YX", 12: "YY",
}
CORR_CODES = {name: code for code, name in CORR_TYPES.items()}
CIRCULAR = ("RR", "RL", "LR", "LL")
LINEAR = ("XX", "XY", "YX", "YY")

# Layouts the kernels support: the correlation count is explicit, anything else is an error
SUPPORTED_POLARIZATIONS = (
    ("RR",), ("LL",), ("XX",), ("YY",), ("I",),
    ("RR", "LL"), ("XX", "YY"),
    CIRCULAR, LINEAR,
)
# Cross hands alone (PAPER and HERA wrote one correlation per file, XY among them): a store holds
# them and they are flagged, selected and exported like any other, but they carry no total
# intensity, so calibration, prediction and Stokes products refuse them (SUPPORTED_POLARIZATIONS)
CROSS_HANDS = (("RL",), ("LR",), ("XY",), ("YX",), ("RL", "LR"), ("XY", "YX"))
STORED_POLARIZATIONS = SUPPORTED_POLARIZATIONS + CROSS_HANDS


def check_polarizations(polarizations) -> tuple[str, ...]:
    """Return the layout as a tuple, or raise InputError for an unsupported one."""
    layout = tuple(str(p) for p in polarizations)
    if layout not in SUPPORTED_POLARIZATIONS:
        raise InputError(
            f"correlation layout {list(layout)} is not supported "
            f"(1, 2 parallel-hand or 4 correlations of one feed basis)"
        )
    return layout


def canonical_order(polarizations) -> tuple[int, ...] | None:
    """Indices that put a layout a store holds, written in another order, into its canonical
    order.

    OVRO-LWA writes ``XX YY XY YX``; the kernels index correlations by position, so readers
    reorder such data on the way in. None when no stored layout has these correlations.
    """
    given = tuple(polarizations)
    for layout in STORED_POLARIZATIONS:
        if len(layout) == len(given) and set(layout) == set(given):
            return tuple(given.index(name) for name in layout)
    return None


def partition_name(field_id: int, spw_id: int, scan: int) -> str:
    """Name of a partition group in a store, e.g. ``field0_spw0_scan1``."""
    return f"field{field_id}_spw{spw_id}_scan{scan}"


def feed_basis(polarizations) -> str:
    """``"circular"`` or ``"linear"`` for a sequence of correlation names."""
    names = set(polarizations)
    if names <= set(CIRCULAR):
        return "circular"
    if names <= set(LINEAR):
        return "linear"
    raise ValueError(f"mixed or Stokes correlation layout {sorted(names)} has no single feed basis")


# -- The store's contract (docs/store.md). Attributes a stored coordinate or variable carries on
# disk, saying what its numbers mean.
COORD_ATTRS = {
    TIME: {"units": "s", "scale": "utc", "format": "mjd",
           "description": "MJD seconds, UTC, mid-integration: the MS TIME column"},
    INTEGRATION_TIME: {"units": "s", "description": "the MS INTERVAL column"},
    OBSERVATION_ID: {"description": "the MS OBSERVATION_ID column (row of its OBSERVATION table)"},
    ARRAY_ID: {"description": "the MS ARRAY_ID column (subarray number)"},
    FREQUENCY: {"units": "Hz", "description": "channel centre (frame: frequency_frame attribute)"},
    CHANNEL_WIDTH: {"units": "Hz"},
    BASELINE_ANTENNA1: {"description": "index of the first antenna on the antenna dimension"},
    BASELINE_ANTENNA2: {"description": "index of the second antenna on the antenna dimension"},
    ANTENNA_POSITION: {"units": "m", "frame": "ITRF"},
    ANTENNA_DIAMETER: {"units": "m"},
}
VARIABLE_ATTRS = {UVW: {"units": "m"}}

# What every stored partition holds, by name and dims; checked at write and at open
VIS_DIMS = (TIME, BASELINE, FREQUENCY, POLARIZATION)
_VARIABLE_DIMS = {VISIBILITY: VIS_DIMS, VISIBILITY_CORRECTED: VIS_DIMS,
                  VISIBILITY_MODEL: VIS_DIMS, FLAG: VIS_DIMS, WEIGHT: VIS_DIMS,
                  UVW: (TIME, BASELINE, UVW_LABEL), ROW_PRESENT: (TIME, BASELINE)}
REQUIRED_VARIABLES = {name: _VARIABLE_DIMS[name] for name in REQUIRED_VARS}
OPTIONAL_VARIABLES = {name: dims for name, dims in _VARIABLE_DIMS.items()
                      if name not in REQUIRED_VARS}
REQUIRED_COORDS = {TIME: (TIME,), FREQUENCY: (FREQUENCY,), POLARIZATION: (POLARIZATION,),
                   BASELINE_ANTENNA1: (BASELINE,), BASELINE_ANTENNA2: (BASELINE,),
                   ANTENNA_NAME: (ANTENNA,)}
REQUIRED_ATTRS = (ATTR_PARTITION, ATTR_FIELD_ID, ATTR_SPW_ID, ATTR_SCAN)


def schema_problem(ds) -> str | None:
    """The first way ``ds`` (a canonical partition) breaks the schema above, or None."""
    for what, table, required in (("coordinate", REQUIRED_COORDS, True),
                                  ("variable", REQUIRED_VARIABLES, True),
                                  ("variable", OPTIONAL_VARIABLES, False)):
        for name, dims in table.items():
            if name not in ds.variables:
                if required:
                    return f"no {what} {name!r}"
                continue
            # the variable, not ds[name]: a DataArray of a dataset costs ~0.1 ms to make
            found = tuple(ds.variables[name].dims)
            if found != dims:
                return f"{what} {name!r} has dims {found}, not {dims}"
    missing = [a for a in REQUIRED_ATTRS if a not in ds.attrs]
    return f"no attribute {missing[0]!r}" if missing else None
