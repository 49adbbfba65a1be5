r"""The ``[[drive]]`` tables of a config: field pulses added to the system's H0.

Each ``[[drive]]`` table is one field drive on spins, envelope × carrier, built with :mod:`qllg_jax.pulses`:

.. math:: H(t) = H_0 - \sum_d f_d(t)\, A_d\, \hat{\mathbf n}_d \cdot \sum_{k \in \mathrm{sites}_d} \mathbf S_k

(spin operators S, like ``system.field``; a dimer's ``B`` multiplies σ = 2S, so in E0 units a drive amplitude A
acts like a dimer field B = A/2; in physical units both are tesla). ``shape``:

- ``gaussian``: f = exp(−(t − centre)²/(2 width²)), optionally × cos(ω t + φ) when ``frequency`` is given;
- ``rectangular``: f = 1 on [start, stop) (``rise`` τ > 0: tanh edges of width τ), optionally × cos(ω t + φ);
- ``cosine`` / ``sine``: f = cos(ω t + φ) / sin(ω t + φ); ``chirp``: f = cos(ω t + ½ β t² + φ);
  each optionally under a Gaussian (``centre``, ``width``) or rectangular (``start``, ``stop``, ``rise``) envelope;
- ``rotating``: a circularly polarised field A·e(t)·[cos(ωt + φ) e₁ + sin(ωt + φ) e₂] rotating counter-clockwise
  about ``axis`` (:func:`qllg_jax.pulses.rotating_field`; a spin in a field along +axis precesses clockwise, so
  it is resonant with a negative ``frequency``), with the same optional envelopes.

Units follow ``[units]``: with ``kind = "E0"`` the keys are ``amplitude`` (E0), ``centre``/``width``/``start``/
``stop``/``rise`` (ħ/E0), ``frequency`` (angular, E0/ħ) and ``rate`` ((E0/ħ)²); with ``kind = "physical"`` they
carry their unit in the name: ``amplitude_T`` (tesla, b = g μ_B B/E0 with g = 2), ``centre_ps`` ..., ``frequency_GHz``
(ν, ω = 2πν) and ``rate_GHz_per_ps``. The other spelling is refused with a message naming the right key, so a
number is never read in the wrong unit. ``phase`` is in radians, ``direction`` is normalised.

:func:`validate_drives` checks the tables (errors name ``drive[k].key``), :func:`build_drive` turns one validated
table into a :class:`~qllg_jax.TimeDependent` (its numbers may be traced: a sweep builds the drives of every
point inside a vmap), :func:`drive_field` evaluates the drive field b_k(t) of a driven H on a time grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array
from .. import pulses
from ..drives import PWC, Modulated
from ..hamiltonians import SpinModel
from ..units import Units
from . import schema
from .schema import REQUIRED, Choice, ConfigError, Key, Number, Numbers, Table, _describe, _unknown_key, validate_table

DRIVE_SHAPES = ("gaussian", "rectangular", "cosine", "sine", "chirp", "rotating")
CARRIERS = ("cosine", "sine", "chirp", "rotating")
LINEAR = ("gaussian", "rectangular", "cosine", "sine", "chirp")
"""Shapes with a fixed field direction (``direction``); ``rotating`` has an ``axis`` instead."""


@dataclasses.dataclass(frozen=True)
class Quantity:
    """A drive quantity with a solver-unit key (``name``) and a physical-unit key (``name + suffix``)."""

    name: str
    suffix: str
    e0_unit: str
    unit: str
    number: Number
    doc: str
    only: tuple[str, ...]

    @property
    def physical(self) -> str:
        return self.name + self.suffix


QUANTITIES = (
    Quantity("amplitude", "_T", "E0", "T", Number(), "required: field amplitude A (may be negative), H has -f(t) A n.S_k", ()),
    Quantity("centre", "_ps", "hbar/E0", "ps", Number(), "Gaussian centre t_c (required for gaussian; with width an envelope of a carrier)",
             ("gaussian",) + CARRIERS),
    Quantity("width", "_ps", "hbar/E0", "ps", Number(0, exclusive_minimum=True),
             "Gaussian standard deviation sigma, exp(-(t-t_c)^2/(2 sigma^2)) (required with centre)", ("gaussian",) + CARRIERS),
    Quantity("start", "_ps", "hbar/E0", "ps", Number(), "rectangle start (required for rectangular; with stop an envelope of a carrier)",
             ("rectangular",) + CARRIERS),
    Quantity("stop", "_ps", "hbar/E0", "ps", Number(), "rectangle end (> start; required with start)", ("rectangular",) + CARRIERS),
    Quantity("rise", "_ps", "hbar/E0", "ps", Number(0), "rectangle edge width tau (tanh edges); omitted or 0: hard edges",
             ("rectangular",) + CARRIERS),
    Quantity("frequency", "_GHz", "E0/hbar", "GHz", Number(),
             "carrier: angular frequency omega (E0 units) or frequency nu, omega = 2 pi nu (physical); required "
             "for the carrier shapes, optional for gaussian/rectangular (then a cos carrier)", ()),
    Quantity("rate", "_GHz_per_ps", "(E0/hbar)^2", "GHz/ps", Number(),
             "required for chirp: rate beta, instantaneous angular frequency omega + beta t (physical: d nu/dt)", ("chirp",)),
)
BY_NAME = {q.name: q for q in QUANTITIES}
BY_PHYSICAL = {q.physical: q for q in QUANTITIES}


def _quantity_keys() -> dict[str, Key]:
    keys = {}
    for q in QUANTITIES:
        keys[q.name] = Key(q.number, None, (q.e0_unit, ""), f"{q.doc} ([units] kind = \"E0\")", q.only)
        keys[q.physical] = Key(q.number, None, ("", q.unit), f"the same in {q.unit} ([units] kind = \"physical\")",
                               q.only)
    return keys


@dataclasses.dataclass(frozen=True)
class Sites:
    """A non-empty list of distinct non-negative site indices (checked against the system when it is built)."""

    def describe(self) -> str:
        return "list of site indices"

    def check(self, value, key: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key}: must be a non-empty list of site indices (e.g. [0, 1]), got {_describe(value)}")
        for i, site in enumerate(value):
            if isinstance(site, bool) or not isinstance(site, int) or site < 0:
                raise ConfigError(f"{key}[{i}]: must be a site index (an integer >= 0), got {_describe(site)}")
        if len(set(value)) != len(value):
            raise ConfigError(f"{key}: lists a site more than once: {value}")
        return tuple(value)


DRIVE = Table(
    "drive",
    {
        "shape": Key(Choice(DRIVE_SHAPES), REQUIRED, doc="gaussian | rectangular (envelopes, optional cos carrier) | "
                     "cosine | sine | chirp | rotating (carriers, optional envelope)"),
        "direction": Key(Numbers("3-vector", (1,)), REQUIRED, doc="field direction n (normalised)", only=LINEAR),
        "axis": Key(Numbers("3-vector", (1,)), [0.0, 0.0, 1.0],
                    doc="rotation axis (normalised); the field rotates counter-clockwise about it for frequency > 0",
                    only=("rotating",)),
        "sites": Key(Sites(), None, doc="driven sites (default: all)"),
        **_quantity_keys(),
        "phase": Key(Number(), 0.0, ("rad", "rad"), "carrier phase phi, cos(omega t + phi)"),
    },
    doc="one table per field drive, H(t) = H0 - sum_d f_d(t) A_d n_d.sum_(k in sites) S_k (spin operators, like "
        "system.field); envelope x carrier from qllg_jax.pulses",
    selector="shape",
    hints={
        "sigma": "use width (width_ps): the Gaussian's standard deviation",
        "t0": "use centre (centre_ps)", "center": "use centre (centre_ps)",
        "omega": "use frequency (angular, E0/hbar) or frequency_GHz", "B": "use amplitude_T (tesla) and direction",
        "field": "use amplitude (amplitude_T) and direction", "kind": "use shape",
    },
)


DRIVE_NOTE = (
    "Any number of [[drive]] tables (double brackets), each one field drive. Shapes: gaussian exp(-(t-t_c)^2/"
    "(2 sigma^2)) and rectangular (1 on [start, stop), tanh edges of width rise) are envelopes, optionally times "
    "cos(omega t + phase) when frequency is given; cosine, sine, chirp cos(omega t + rate t^2/2 + phase) and rotating "
    "(circular about axis, counter-clockwise for frequency > 0; a spin in a field along +axis is resonant at negative "
    "frequency) are carriers, optionally under a Gaussian (centre, width) or rectangular (start, stop, rise) "
    "envelope. With [units] kind = \"E0\" give amplitude, centre, width, start, stop, rise, frequency, rate; with "
    "kind = \"physical\" the same with their unit in the name (amplitude_T, centre_ps, ..., frequency_GHz, "
    "rate_GHz_per_ps): the other spelling is an error. The amplitude multiplies spin operators like system.field "
    "(a dimer's B multiplies sigma = 2S). The energy observable is Tr(rho H0) of the static H0."
)


# ------------------------------------------------------------------------------------------------- validation


def _where(k: int) -> str:
    return f"drive[{k}]"


def _unit_spelling(raw: Mapping, where: str, physical: bool) -> None:
    """A number is read in one unit only: solver-unit keys with E0 configs, unit-suffixed keys with physical ones."""
    for key in raw:
        if physical and key in BY_NAME:
            q = BY_NAME[key]
            raise ConfigError(f'{where}.{key}: with [units] kind = "physical" give {where}.{q.physical} (in {q.unit})')
        if not physical and key in BY_PHYSICAL:
            q = BY_PHYSICAL[key]
            raise ConfigError(f'{where}.{key}: needs [units] kind = "physical"; in E0 units give {where}.{q.name} '
                              f"(in {q.e0_unit})")


def quantity(drive: Mapping, name: str, physical: bool):
    """The value of quantity ``name`` of a validated drive table (its physical-unit key when ``physical``), or None."""
    return drive.get(BY_NAME[name].physical if physical else name)


def _check_drive(drive: dict, where: str, physical: bool) -> None:
    shape = drive["shape"]

    def given(name):
        return quantity(drive, name, physical) is not None

    def key(name):
        return f"{where}.{BY_NAME[name].physical if physical else name}"

    required = {"gaussian": ("centre", "width"), "rectangular": ("start", "stop"), "chirp": ("frequency", "rate")}
    needed = ("amplitude",) + required.get(shape, ("frequency",) if shape in CARRIERS else ())
    for name in needed:
        if not given(name):
            raise ConfigError(f"{key(name)}: required for shape = {shape!r} ({BY_NAME[name].doc})")
    if shape in CARRIERS:  # an optional envelope: both of its keys, and one envelope at most
        for pair in (("centre", "width"), ("start", "stop")):
            if given(pair[0]) != given(pair[1]):
                missing = pair[1] if given(pair[0]) else pair[0]
                raise ConfigError(f"{key(missing)}: required with {key(pair[0] if missing == pair[1] else pair[1])} "
                                  f"(an envelope of the {shape} carrier)")
        if given("centre") and given("start"):
            raise ConfigError(f"{key('start')}: a {shape} drive takes one envelope, Gaussian (centre, width) or "
                              f"rectangular (start, stop, rise), not both")
    if given("rise") and not given("start"):
        raise ConfigError(f"{key('rise')}: goes with a rectangular envelope (start, stop)")
    if given("start") and not quantity(drive, "stop", physical) > quantity(drive, "start", physical):
        raise ConfigError(f"{key('stop')}: must be > {key('start')} = {quantity(drive, 'start', physical):g}, got "
                          f"{quantity(drive, 'stop', physical):g}")
    for vector in ("direction", "axis"):
        if vector in drive:
            value = np.asarray(drive[vector])
            if value.shape != (3,):
                raise ConfigError(f"{where}.{vector}: must be a 3-vector, got shape {value.shape}")
            if not np.linalg.norm(value) > 0:
                raise ConfigError(f"{where}.{vector}: must be a non-zero vector (it is normalised)")


def validate_drives(raw, physical: bool) -> list[dict]:
    """Check the ``[[drive]]`` array (``raw``: the parsed list of tables) and fill defaults; ``physical``: whether
    the config has ``[units] kind = "physical"``. Errors name ``drive[k].key``."""
    if isinstance(raw, Mapping):
        raise ConfigError("drive: must be an array of tables, one [[drive]] per drive (double brackets), got a "
                          "single [drive] table")
    if not isinstance(raw, list):
        raise ConfigError(f"drive: must be an array of [[drive]] tables, got {_describe(raw)}")
    out = []
    for k, table in enumerate(raw):
        where = _where(k)
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: must be a table, got {_describe(table)}")
        for key in table:
            if key not in DRIVE.keys:
                raise _unknown_key(DRIVE, key, where)
        if "shape" not in table:
            raise ConfigError(f"{where}.shape: required (one of {', '.join(DRIVE_SHAPES)})")
        _unit_spelling(table, where, physical)
        drive = validate_table(DRIVE, table, where)
        _check_drive(drive, where, physical)
        out.append(drive)
    return out


# --------------------------------------------------------------------------------------------------- building


def solver_values(drive: Mapping, units: Units | None) -> dict:
    """The numbers of a validated drive in solver units: amplitude b (E0), times (ħ/E0), ω (E0/ħ), β ((E0/ħ)²),
    phase (rad); absent quantities are left out. Values may be traced (sweeps)."""
    physical = units is not None
    convert = {"amplitude": lambda x: units.field(x), "frequency": lambda x: units.frequency(x),
               "rate": lambda x: units.chirp_rate(x)}
    out = {}
    for q in QUANTITIES:
        value = quantity(drive, q.name, physical)
        if value is None:
            continue
        out[q.name] = value if not physical else convert.get(q.name, units.time)(value)
    out["phase"] = drive.get("phase", 0.0)
    return out


def _envelope(values: Mapping, amplitude):
    if "centre" in values:
        return pulses.gaussian(amplitude, values["centre"], values["width"])
    if "start" in values:
        rise = values.get("rise", 0.0)
        smooth = not (isinstance(rise, (int, float)) and rise == 0)
        return pulses.rectangular(amplitude, values["start"], values["stop"], rise=rise if smooth else None)
    return None


def _unit(vector):
    vector = device_array(vector, dtype=float) if not isinstance(vector, np.ndarray) else vector
    norm = np.linalg.norm(vector) if isinstance(vector, np.ndarray) else jnp.linalg.norm(vector)
    return vector / norm


def build_drive(drive: Mapping, spins, units: Units | None, k: int = 0):
    """One validated ``[[drive]]`` table as a :class:`~qllg_jax.TimeDependent` drive on a system with ``spins``
    (a tuple, one spin per site): a :func:`~qllg_jax.modulated` SpinModel term (two for ``rotating``)."""
    spins = tuple(spins)
    sites = drive.get("sites")
    if sites is not None and max(sites) >= len(spins):
        raise ConfigError(f"{_where(k)}.sites: site {max(sites)} does not exist (the system has {len(spins)} sites)")
    values = solver_values(drive, units)
    shape, amplitude, phase = drive["shape"], values["amplitude"], values["phase"]
    if shape == "rotating":
        return pulses.rotating_field(spins, amplitude, values["frequency"], phase=phase, axis=drive["axis"],
                                     envelope=_envelope(values, 1.0), sites=sites)
    if shape in ("gaussian", "rectangular"):
        pulse = _envelope(values, amplitude)
        if "frequency" in values:
            pulse = pulse * pulses.cosine(1.0, values["frequency"], phase)
    else:
        if shape == "chirp":
            pulse = pulses.chirp(amplitude, values["frequency"], values["rate"], phase)
        else:
            pulse = (pulses.cosine if shape == "cosine" else pulses.sine)(amplitude, values["frequency"], phase)
        envelope = _envelope(values, 1.0)
        if envelope is not None:
            pulse = envelope * pulse
    return pulses.field_drive(spins, pulse, _unit(drive["direction"]), sites=sites)


def build_drives(drives, spins, units: Units | None):
    """The sum of the drives of validated ``[[drive]]`` tables (None when there are none)."""
    total = None
    for k, drive in enumerate(drives):
        term = build_drive(drive, spins, units, k)
        total = term if total is None else total + term
    return total


def drive_field(H, ts) -> np.ndarray:
    r"""The drive field b_k(t) (E0, H ⊃ −Σ_k b_k(t)·S_k) of a driven H at the times ``ts`` (T,): shape (T, N, 3).

    Sums c(t)·field over the time-dependent SpinModel terms (modulated, pwc) of H; the constant part is left out.
    For tesla divide by ``Units.field(1.0)`` (g = 2)."""
    ts = device_array(ts, dtype=float)
    terms = [t for t in getattr(H, "terms", ()) if isinstance(t, (Modulated, PWC)) and isinstance(t.operator_, SpinModel)]
    if not terms:
        return np.zeros((ts.shape[0], 0, 3))
    total = 0.0
    for term in terms:
        coefficient = jax.vmap(term.coefficient)(ts)  # (T,)
        total = total + coefficient[:, None, None] * device_array(term.operator_.field)[None]
    return np.asarray(total)


def describe_drives(drives, units: Units | None) -> list[dict]:
    """The drives for a run's JSON: each validated table and its numbers in solver units."""
    out = []
    for drive in drives:
        values = {k: float(v) for k, v in solver_values(drive, units).items()}
        table = {k: (list(v) if isinstance(v, tuple) else np.asarray(v).tolist()) if not isinstance(v, str) else v
                 for k, v in drive.items()}
        out.append({"table": table, "solver_units": values,
                    "solver_units_are": "amplitude E0 (b of H = -b.S), times hbar/E0, frequency E0/hbar (angular), "
                                        "rate (E0/hbar)^2, phase rad"})
    return out


# registered with the schema (which validates configs and prints the reference without importing this module)
schema.TABLE_ARRAYS["drive"] = DRIVE
schema.TABLE_ARRAY_NOTES["drive"] = DRIVE_NOTE
schema.TABLE_ARRAY_VALIDATORS["drive"] = validate_drives

__all__ = ["DRIVE", "DRIVE_SHAPES", "build_drive", "build_drives", "describe_drives", "drive_field", "quantity",
           "solver_values", "validate_drives"]
