"""Which field is the flux, bandpass and phase calibrator and which are targets, from the data.

Scan intents decide first (CASA's STATE::OBS_MODE: ``CALIBRATE_FLUX``, ``CALIBRATE_BANDPASS``,
``CALIBRATE_PHASE``, ``OBSERVE_TARGET``, matched as substrings, so ``#ON_SOURCE``, ALMA's
``.ON_SOURCE`` and VLA's ``#UNSPECIFIED`` all count). Without intents, field names do: the flux
standards of Perley & Butler (2017) and Reynolds (1994) under their usual names, then well-known
bandpass calibrators; the phase calibrator is then the other field visited most often, and the
rest are targets. Every role the user names wins over what the data say, and no field the user
named is given another role.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radiocal.model.flux_standards import ALIASES, OTHER_STANDARDS, PERLEY_BUTLER_2017
from radiocal.errors import ConfigError
from radiocal.store import schema

# Flux standards with a `standard` model (Perley & Butler 2017; Reynolds 1994 for 1934-638) and
# the names observatories give them; the A-team's models serve low-frequency sky models instead
_A_TEAM = ("CYGA", "CASA", "TAUA", "VIRA")
FLUX_STANDARDS = {name: tuple(alias for alias, canonical in ALIASES.items() if canonical == name)
                  for name in (*PERLEY_BUTLER_2017, *OTHER_STANDARDS) if name not in _A_TEAM}
# Bright compact sources observatories use for bandpasses (not flux standards: they vary)
BANDPASS_SOURCES = {
    "3C273": ("J1229+0203", "1226+023"), "3C279": ("J1256-0547", "1253-055"),
    "3C84": ("J0319+4130", "0316+413"), "3C454.3": ("J2253+1608", "2251+158"),
    "0537-441": ("J0538-4405",), "1921-293": ("J1924-2914",), "3C345": ("J1642+3948", "1641+399"),
}
# Fields that are no part of the sky: noise-source and load scans
_NOT_SKY = ("NOISE", "LOAD", "AMBIENT", "HOT", "COLD", "SKY_FREQ")
_NOT_SKY_INTENTS = ("CALIBRATE_ATMOSPHERE", "CALIBRATE_POINTING", "CALIBRATE_WVR",
                    "SYSTEM_CONFIGURATION", "CALIBRATE_SIDEBAND")


def _key(name: str) -> str:
    return str(name).strip().upper().replace(" ", "").replace("_", "")


def _index(table: dict) -> dict[str, str]:
    return {_key(alias): canonical for canonical, aliases in table.items()
            for alias in (canonical, *aliases)}


_FLUX = _index(FLUX_STANDARDS)
_BANDPASS = _index(BANDPASS_SOURCES)


def flux_standard(name: str) -> str | None:
    """The canonical name (3C286, ..., 1934-638) when ``name`` is a flux standard, else None."""
    return _FLUX.get(_key(name))


@dataclass
class _Field:
    name: str
    first: float
    scans: set = field(default_factory=set)
    seconds: float = 0.0
    intents: set = field(default_factory=set)

    def has(self, intent: str) -> bool:
        return any(intent in i for i in self.intents)

    @property
    def sky(self) -> bool:
        if any(self.name.upper().startswith(word) for word in _NOT_SKY):
            return False
        return not self.intents or not all(any(n in i for n in _NOT_SKY_INTENTS)
                                           for i in self.intents)


@dataclass
class Roles:
    fluxcal: str = ""
    bpcal: str = ""
    phasecal: str = ""
    targets: list = field(default_factory=list)
    why: dict = field(default_factory=dict)   # role -> how it was chosen

    def describe(self) -> str:
        parts = [f"flux calibrator {self.fluxcal or '-'} ({self.why.get('fluxcal', '')})",
                 f"bandpass calibrator {self.bpcal or '-'} ({self.why.get('bpcal', '')})",
                 f"phase calibrator {self.phasecal or '-'} ({self.why.get('phasecal', '')})",
                 f"targets {', '.join(self.targets) or '-'} ({self.why.get('targets', '')})"]
        return "roles: " + "; ".join(parts)


def _fields(datasets) -> dict[str, _Field]:
    fields: dict[str, _Field] = {}
    for ds in datasets:
        name = str(ds.attrs.get(schema.ATTR_FIELD_NAME, ""))
        times = ds[schema.TIME].values
        info = fields.setdefault(name, _Field(name, float(times.min()) if times.size else 0.0))
        info.scans.add(int(ds.attrs.get(schema.ATTR_SCAN, -1)))
        if schema.INTEGRATION_TIME in ds.coords:
            info.seconds = max(info.seconds, float(ds[schema.INTEGRATION_TIME].values.sum()))
        info.intents.update(str(i).upper() for i in ds.attrs.get(schema.ATTR_INTENTS, []) or [])
        if times.size:
            info.first = min(info.first, float(times.min()))
    return dict(sorted(fields.items(), key=lambda item: item[1].first))


def _longest(candidates: list[_Field]) -> _Field:
    return max(candidates, key=lambda f: (f.seconds, -f.first))


def infer_roles(datasets, fluxcal: str = "", bpcal: str = "", phasecal: str = "", targets=(),
                flux_model_given: bool = False) -> Roles:
    """Fill the roles the user left empty from the datasets' intents and field names.

    Parameters
    ----------
    datasets : canonical partitions (attributes and time coordinates are all that is read)
    fluxcal, bpcal, phasecal, targets : the user's choices ("" / empty: infer)
    flux_model_given : the user gave the flux calibrator's model (S,alpha,ref): then, with no
        flux standard in the data, the bandpass calibrator may set the flux scale.

    Returns
    -------
    Roles, with ``why`` saying for each role how it was chosen. Raises ConfigError naming the
    role and the fields there are when a needed role cannot be told.
    """
    fields = _fields(datasets)
    names = list(fields)
    for given in [fluxcal, bpcal, phasecal, *targets]:
        if given and given not in fields:
            raise ConfigError(f"field {given!r} is not in the data (fields: {', '.join(names)})")
    roles = Roles(fluxcal, bpcal, phasecal, list(targets))
    roles.why = {k: "given" for k in ("fluxcal", "bpcal", "phasecal", "targets") if getattr(roles, k)}
    taken = {fluxcal, bpcal, phasecal, *targets} - {""}
    sky = [f for f in fields.values() if f.sky]

    def free(candidates):
        return [f for f in candidates if f.name not in taken]

    if not roles.fluxcal:
        by_intent = [f for f in sky if f.has("CALIBRATE_FLUX")]
        by_name = [f for f in sky if flux_standard(f.name)]
        if by_intent:
            standard = [f for f in by_intent if flux_standard(f.name)]
            roles.fluxcal, roles.why["fluxcal"] = _longest(standard or by_intent).name, "CALIBRATE_FLUX intent"
        elif by_name:
            chosen = _longest(by_name)
            roles.fluxcal = chosen.name
            roles.why["fluxcal"] = f"known flux standard {flux_standard(chosen.name)}"
    if not roles.bpcal:
        by_intent = [f for f in sky if f.has("CALIBRATE_BANDPASS")]
        by_name = [f for f in sky if _BANDPASS.get(_key(f.name))]
        if roles.fluxcal and any(f.name == roles.fluxcal for f in by_intent):
            roles.bpcal, roles.why["bpcal"] = roles.fluxcal, "CALIBRATE_BANDPASS intent"
        elif by_intent:
            roles.bpcal, roles.why["bpcal"] = _longest(by_intent).name, "CALIBRATE_BANDPASS intent"
        elif roles.fluxcal:
            roles.bpcal, roles.why["bpcal"] = roles.fluxcal, "the flux calibrator"
        elif by_name:
            roles.bpcal = _longest(by_name).name
            roles.why["bpcal"] = f"known bandpass calibrator {_BANDPASS[_key(roles.bpcal)]}"
    if not roles.fluxcal and roles.bpcal and flux_model_given:
        roles.fluxcal, roles.why["fluxcal"] = roles.bpcal, "the bandpass calibrator, with the model given"
    taken |= {roles.fluxcal, roles.bpcal} - {""}
    if not roles.phasecal:
        by_intent = free(f for f in sky if f.has("CALIBRATE_PHASE"))
        if by_intent:
            roles.phasecal = max(by_intent, key=lambda f: (len(f.scans), -f.first)).name
            roles.why["phasecal"] = "CALIBRATE_PHASE intent"
        else:
            # Without intents: of the fields left, the one visited most often (it brackets the
            # targets), on shorter visits when that ties
            others = free(f for f in sky if not f.has("OBSERVE_TARGET"))
            if others:
                best = max(others, key=lambda f: (len(f.scans), -f.seconds / len(f.scans)))
                if len(others) == 1 or len(best.scans) > 1:
                    roles.phasecal, roles.why["phasecal"] = best.name, "the field visited most often"
    taken |= {roles.phasecal} - {""}
    if not roles.targets:
        by_intent = free(f for f in sky if f.has("OBSERVE_TARGET"))
        if by_intent:
            roles.targets, roles.why["targets"] = [f.name for f in by_intent], "OBSERVE_TARGET intent"
        else:
            rest = free(f for f in sky if not f.has("CALIBRATE_"))
            if rest:
                roles.targets, roles.why["targets"] = [f.name for f in rest], "fields of no calibrator role"
    return roles


def require(roles: Roles, names) -> Roles:
    """ConfigError for the first role still empty: what to give, and the fields there are."""
    options = {"fluxcal": "--fluxcal", "bpcal": "--bpcal", "phasecal": "--phasecal", "targets": "--target"}
    for role in ("fluxcal", "phasecal", "targets"):
        if not getattr(roles, role):
            raise ConfigError(f"cannot tell the {role.replace('cal', ' calibrator').replace('targets', 'target')} "
                              f"from the data (no scan intent or known calibrator name among "
                              f"{', '.join(names) or 'no fields'}); give {options[role]}")
    return roles
