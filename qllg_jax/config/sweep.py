r"""The ``[sweep]`` table of a config: parameter points and, for every point, H, ϱ0 and κ as functions of it.

Building a full :class:`~qllg_jax.config.System` per point costs ~20 ms, hours for 10⁶ points. Instead:

- **Hamiltonian.** The :class:`~qllg_jax.SpinModel`'s parameters (fields b_k, exchange J_ij, DMI D_ij, anisotropy
  K_k, all in E0) are affine in every swept coupling key (``system.field``, ``system.exchange``, ``system.dmi``,
  ``system.anisotropy``, ``system.dimer.B|J|D``, in E0 or physical units). So with x the point's swept values
  (flattened, x_c one component) and θ the model parameters,

  .. math:: θ(x) = θ(0) + \sum_c x_c\,[θ(e_c) − θ(0)],

  exact up to rounding, from 1 + (number of swept components) builds of the base config. ``H(**point)`` returns the
  SpinModel with θ(x): O(number of parameters) memory, no D×D matrix per point, matrix-free for large D.
- **Initial state.** Swept ``[initial_state]`` parameters (a Werner p, a random seed, coherent directions, ...):
  one ϱ0 per distinct value combination, looked up per point. A thermal state follows H (and β) per point:
  ϱ0 = e^{−βH}/Z inside the sweep.
- **Damping.** ``dynamics.kappa`` is the point's value.
- **Drives.** The ``[[drive]]`` tables' numbers (``drive.K.frequency_GHz``, ``drive.K.amplitude_T``, ...) are the
  point's values, traced: ``H(**point)`` returns model + drives (a :class:`~qllg_jax.TimeDependent`) whose pulse
  parameters are the point's, so one compiled program serves every point (``sweep_solve`` vmaps it).

Everything else (units, the system's sites and bonds, save times, solver options, observables) is shared by every
point and cannot be swept. The points' values are checked vectorised before anything is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array
from .._guards import check_bytes
from ..states import thermal_state
from .drives import build_drive
from .schema import SCHEMA, ConfigError, Number, Numbers, key_spec, numeric_array, validate, validate_table
from .system import (
    build_initial_state,
    build_model,
    build_observables,
    build_units,
    check_dimension,
    save_times,
    solver_options,
    thermal_options,
    thermal_beta,
    with_overrides,
)

MAX_SWEEP_POINTS = 10**8
"""Most points one sweep config may describe (per axis and in total)."""
MAX_STATE_TABLE = 10**5
"""Most distinct initial states (value combinations of swept ``[initial_state]`` keys)."""
AFFINE_KEYS = (
    "system.field", "system.exchange", "system.dmi", "system.anisotropy",
    "system.dimer.B", "system.dimer.J", "system.dimer.D",
)
"""Coupling keys the SpinModel's parameters are affine in (in E0 and in physical units)."""
SPEC_KINDS = ("linspace", "logspace", "values")
SWEEPABLE = ("system couplings (field, exchange, dmi, anisotropy, dimer B/J/D), [initial_state] parameters, "
             "dynamics.kappa, the numbers of a [[drive]] (drive.K.amplitude_T, drive.K.frequency_GHz, ...)")


def _where(key: str) -> str:
    return f'sweep.parameters."{key}"'


def parameter_values(spec, key: str) -> np.ndarray:
    """The values (P, ...) of one swept key: a list, or ``{linspace|logspace = [a, b, n]}``, or ``{values = [...]}``."""
    where = _where(key)
    if isinstance(spec, Mapping):
        if len(spec) != 1 or next(iter(spec)) not in SPEC_KINDS:
            raise ConfigError(f"{where}: must be a list or one of {{linspace = [a, b, n]}}, {{logspace = [a, b, n]}}, "
                              f"{{values = [...]}}, got {dict(spec)!r}")
        kind, args = next(iter(spec.items()))
        if kind == "values":
            return parameter_values(args, key)
        if not isinstance(args, list) or len(args) != 3:
            raise ConfigError(f"{where}: {kind} needs [start, stop, count], got {args!r}")
        start, stop = (float(x) for x in numeric_array(args[:2], f"{where}.{kind}"))
        count = Number(1, MAX_SWEEP_POINTS, integer=True).check(args[2], f"{where}.{kind} count")
        return (np.linspace if kind == "linspace" else np.logspace)(start, stop, count)
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"{where}: must be a non-empty list of values or a {{linspace = [a, b, n]}} table, got {spec!r}")
    if len(spec) > MAX_SWEEP_POINTS:
        raise ConfigError(f"{where}: at most {MAX_SWEEP_POINTS} values, got {len(spec)}")
    return numeric_array(spec, where)


def sweep_points(sweep: Mapping) -> dict[str, np.ndarray]:
    """The points {dotted key: values (P, ...)} of a validated ``[sweep]`` table (grid: first key slowest; zip)."""
    parameters = sweep["parameters"]
    if not isinstance(parameters, Mapping) or not parameters:
        raise ConfigError('sweep.parameters: must map dotted config keys to values, e.g. "system.dimer.J" = [0.5, 1.0]')
    axes = {str(key): parameter_values(value, str(key)) for key, value in parameters.items()}
    lengths = {key: len(values) for key, values in axes.items()}
    if sweep["mode"] == "zip":
        if len(set(lengths.values())) != 1:
            raise ConfigError(f"sweep.mode: 'zip' needs equally long parameter lists, got lengths {lengths}")
        return axes
    total = int(np.prod([float(n) for n in lengths.values()]))
    if total > MAX_SWEEP_POINTS:
        raise ConfigError(f"sweep.parameters: the grid has {total:.3g} points (lengths {lengths}), more than {MAX_SWEEP_POINTS:.0e}")
    check_bytes(8 * total * sum(int(np.prod(v.shape[1:])) for v in axes.values()), f"the {total} sweep points",
                "sweep fewer points")
    index = np.meshgrid(*[np.arange(n) for n in lengths.values()], indexing="ij")
    return {key: values[i.reshape(-1)] for (key, values), i in zip(axes.items(), index)}


# --------------------------------------------------------------------------------------------- one point's config


def _current(table: Mapping, path: list[str]):
    """The raw value at ``path`` in ``table``, else the schema default."""
    node = table
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        key, _ = key_spec(".".join(path))
        node = key.default
    return node


def split_key(key: str) -> tuple[str, int | None]:
    """``"system.dimer.D.2"`` → (``"system.dimer.D"``, 2); a key without a trailing index → (key, None)."""
    spec, rest = key_spec(key)
    if not rest:
        return key, None
    if not rest.lstrip("-").isdigit():
        raise ConfigError(f"{_where(key)}: '{rest}' after a key must be one integer index into its list")
    return key[: -len(rest) - 1], int(rest)


def point_table(base: Mapping, point: Mapping) -> dict:
    """``base`` with one point's values (dotted keys; a trailing integer indexes into a list value)."""
    plain, indexed = {}, []
    for key, value in point.items():
        value = np.asarray(value).tolist()
        path, index = split_key(key)
        if index is None:
            plain[key] = value
        else:
            indexed.append((key, path, index, value))
    table = with_overrides(base, plain)
    for key, path, index, value in indexed:
        vector = _current(table, path.split("."))
        if not isinstance(vector, list) or not -len(vector) <= index < len(vector):
            raise ConfigError(f"{_where(key)}: {path} must be a list (in the config or by default) with an element {index}")
        vector = list(vector)
        vector[index] = value
        table = with_overrides(table, {path: vector})
    return table


# ---------------------------------------------------------------------------------------------------- the sweep


@dataclasses.dataclass
class SweepProblem:
    """Everything ``qllg_jax.sweep_solve`` needs for a sweep config.

    Attributes:
        params: dict dotted key → values (P, ...): the points.
        H: a fixed :class:`~qllg_jax.SpinModel` (+ drives: a :class:`~qllg_jax.TimeDependent`), or a function of
            the point's values (keyword arguments named by the dotted keys) returning one (E0).
        rho0: fixed (D, D) or a function of the point; kappa: fixed float or a function of the point.
        ts: save times (T,) in ħ/E0; observables: name → callable ϱ ↦ array (energy comes from
            ``Result.invariants["energy"]``); solve_options: the config's solver options; options: chunk_size,
            memory_budget (bytes) for the sweep; energy: whether the config asked for the energy.
        thermal: ``{"temperature": k_B T in E0, "seed": n}`` of ``dynamics.temperature_K > 0`` (the keyword
            arguments of :func:`~qllg_jax.sweep_solve`), else empty.
        model: the SpinModel of point 0; units: the config's Units (None: E0 units).
    """

    params: dict[str, np.ndarray]
    H: object
    rho0: object
    kappa: object
    ts: jax.Array
    observables: dict[str, Callable]
    solve_options: dict
    options: dict
    energy: bool
    model: object
    units: object
    thermal: dict = dataclasses.field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return int(len(next(iter(self.params.values()))))


def _classify(keys) -> dict[str, list[str]]:
    groups = {"affine": [], "state": [], "kappa": [], "drive": []}
    for key in keys:
        try:
            path, _ = split_key(key)
            spec, _ = key_spec(path)
        except ConfigError as error:
            raise ConfigError(f"{_where(key)}: {error}") from None
        if path in AFFINE_KEYS:
            groups["affine"].append(key)
        elif path == "dynamics.kappa":
            groups["kappa"].append(key)
        elif path.startswith("drive.") and isinstance(spec.type, Number):
            groups["drive"].append(key)
        elif path.startswith("initial_state.") and isinstance(spec.type, (Number, Numbers)):
            groups["state"].append(key)
        else:
            raise ConfigError(f"{_where(key)}: {path} cannot be swept (every point shares it); sweepable: {SWEEPABLE}")
    for a in keys:
        for b in keys:
            if a != b and b.startswith(a + "."):
                raise ConfigError(f"{_where(b)}: sets part of {a!r}, which is swept too")
    return groups


def _check_values(key: str, values: np.ndarray) -> None:
    """Range checks of a swept Number key on all its values at once (the message names the first bad point)."""
    path, index = split_key(key)
    spec, _ = key_spec(path)
    kind = spec.type
    if not isinstance(kind, Number) or index is not None:
        return
    bad = np.zeros(len(values), dtype=bool)
    if kind.minimum is not None:
        bad |= (values < kind.minimum) | ((values == kind.minimum) if kind.exclusive_minimum else False)
    if kind.maximum is not None:
        bad |= values > kind.maximum
    if kind.integer:
        bad |= values != np.round(values)
    if np.any(bad):
        i = int(np.argmax(bad))
        kind.check(values[i].item(), f"{_where(key)} (point {i})")  # raises with the scalar check's message


def _affine_model(base: Mapping, units, keys: list[str], params: Mapping):
    """(H(**point) → SpinModel, flat model parameters θ(0), generators) for the affine keys."""
    zero = {key: np.zeros(params[key].shape[1:]) for key in keys}
    model0 = build_model(validate(point_table(base, zero)), units)
    leaves0, treedef = jax.tree_util.tree_flatten(model0)
    leaves0 = [np.asarray(leaf) for leaf in leaves0]
    columns = []  # one per swept component: θ(e_c) − θ(0)
    for key in keys:
        shape = params[key].shape[1:]
        for c in range(int(np.prod(shape))):
            unit = np.zeros(int(np.prod(shape)))
            unit[c] = 1.0
            model = build_model(validate(point_table(base, {**zero, key: unit.reshape(shape)})), units)
            columns.append([np.asarray(leaf) - l0 for leaf, l0 in zip(jax.tree_util.tree_leaves(model), leaves0)])
    generators = [device_array(np.stack([col[i] for col in columns])) for i in range(len(leaves0))]
    base_leaves = [device_array(leaf) for leaf in leaves0]

    def H(**point):
        x = [device_array(point[key], dtype=float) for key in keys]
        return jax.tree_util.tree_unflatten(treedef, _affine_leaves(x, base_leaves, generators))

    return H


def _check_affine(base: Mapping, units, H: Callable, keys: list[str], params: Mapping) -> None:
    """θ from the affine formula equals a full build at the first, middle and last point (guards the scheme)."""
    n = len(params[keys[0]])
    for i in sorted({0, n // 2, n - 1}):
        point = {key: params[key][i] for key in keys}
        expected = jax.tree_util.tree_leaves(build_model(validate(point_table(base, point)), units))
        got = jax.tree_util.tree_leaves(H(**point))
        for a, b in zip(expected, got):
            scale = max(1.0, float(np.max(np.abs(a), initial=0.0)))
            if not np.allclose(a, b, rtol=0, atol=1e-12 * scale):
                raise RuntimeError(f"sweep point {i}: the affine Hamiltonian differs from a full build (a bug; please report)")


def _state_table(base: Mapping, keys: list[str], params: Mapping, model, units, status):
    """rho0(**point) looking up one ϱ0 per distinct value combination of the swept [initial_state] keys."""
    rows = np.concatenate([params[k].reshape(len(params[k]), -1) for k in keys], axis=1)
    unique = np.unique(rows, axis=0)
    if len(unique) > MAX_STATE_TABLE:
        raise ConfigError(f"sweep.parameters: {len(unique)} distinct initial states, more than {MAX_STATE_TABLE}")
    check_bytes(len(unique) * model.dim**2 * 16, f"{len(unique)} initial states of dimension {model.dim}")
    if status is not None and len(unique) > 100:
        status(f"building {len(unique)} initial states")
    sizes = [int(np.prod(params[k].shape[1:])) for k in keys]
    states = []
    for row in unique:
        parts = np.split(row, np.cumsum(sizes)[:-1])
        point = {k: part.reshape(params[k].shape[1:]) for k, part in zip(keys, parts)}
        try:
            states.append(np.asarray(build_initial_state(validate(point_table(base, point)), model, units)))
        except ConfigError as error:
            raise ConfigError(f"sweep point with {_format(point)}: {error}") from None
    rows_j, states_j = device_array(unique), device_array(np.stack(states))

    def rho0(**point):
        x = jnp.concatenate([jnp.ravel(device_array(point[k], dtype=float)) for k in keys])
        return states_j[jnp.argmax(jnp.all(rows_j == x, axis=1))]

    return rho0


def _with_drives(H, drives, spins, units, keys: list[str], params: Mapping):
    """H (a SpinModel or a function of the point returning one) plus the ``[[drive]]`` drives, whose swept numbers
    (``drive.K.NAME``) are the point's values: traced inside the sweep, so they are leaves of each point's drive
    (pulse parameters) and one program serves every point."""
    if not drives:
        return H
    for key in keys:  # per-point checks that the vectorised range checks do not cover
        _, k, name = key.split(".")
        if name.startswith("rise") and np.any(params[key] <= 0):
            i = int(np.argmax(params[key] <= 0))
            raise ConfigError(f"{_where(key)} (point {i}): a swept rise must be > 0 (0 means hard edges, a "
                              f"different pulse), got {params[key][i]}")
        if name.startswith(("start", "stop")):
            drive = drives[int(k)]
            suffix = name[len("start"):] if name.startswith("start") else name[len("stop"):]
            start = params.get(f"drive.{k}.start{suffix}", drive.get(f"start{suffix}"))
            stop = params.get(f"drive.{k}.stop{suffix}", drive.get(f"stop{suffix}"))
            bad = ~(np.asarray(stop) > np.asarray(start))
            if np.any(bad):
                i = int(np.argmax(np.broadcast_to(bad, (len(params[key]),))))
                raise ConfigError(f"{_where(key)} (point {i}): drive[{k}].stop{suffix} must be > drive[{k}].start{suffix}")
    swept = {}
    for key in keys:
        _, k, name = key.split(".")
        swept.setdefault(int(k), []).append((name, key))

    def drive_of(point):
        total = None
        for k, drive in enumerate(drives):
            drive = {**drive, **{name: point[key] for name, key in swept.get(k, [])}}
            term = build_drive(drive, spins, units, k)
            total = term if total is None else total + term
        return total

    if not callable(H) and not keys:
        return H + drive_of({})

    def driven(**point):
        return (H(**point) if callable(H) else H) + drive_of(point)

    return driven


def _format(point: Mapping) -> str:
    return ", ".join(f"{k} = {np.asarray(v).tolist()}" for k, v in point.items())


def build_sweep(table: Mapping, status: Callable[[str], None] | None = None) -> SweepProblem:
    """Validate a sweep config and return its :class:`SweepProblem` (no per-point System is built).

    ``status(message)`` is called before slow steps. Raises :class:`ConfigError` naming the key (and the point).
    """
    if not isinstance(table, Mapping) or "sweep" not in table:
        raise ConfigError("sweep: the config needs a [sweep] table with [sweep.parameters] (see qllg config reference)")
    sweep = validate_table(SCHEMA["sweep"], table["sweep"])
    base = {k: v for k, v in table.items() if k != "sweep"}
    params = sweep_points(sweep)
    groups = _classify(list(params))
    for key, values in params.items():
        _check_values(key, values)
    first = {key: values[0] for key, values in params.items()}
    try:
        spec = validate(point_table(base, first))
        units = build_units(spec)
        model = build_model(spec, units)
        check_dimension(model)
        names = spec["output"]["observables"]
        if "passive_energy" in names:
            raise ConfigError(
                "output.observables: 'passive_energy' is not recorded by qllg sweep; under q-LLG and von Neumann "
                "dynamics ϱ's spectrum is conserved, so it is constant: qllg_jax.passive_energy(rho0, H) of each point"
            )
        observables = build_observables([n for n in names if n != "energy"], model)
        ts = save_times(spec, units)
    except ConfigError as error:
        raise ConfigError(f"sweep point 0 ({_format(first)}): {error}") from None

    H = model
    if groups["affine"]:
        H = _affine_model(base, units, groups["affine"], params)
        _check_affine(base, units, H, groups["affine"], params)
    state = spec["initial_state"]
    if state["kind"] == "thermal" and (groups["affine"] or groups["state"]):
        beta_key = groups["state"][0] if groups["state"] else None  # initial_state.beta or .temperature_K

        def rho0(**point):
            values = dict(state)
            if beta_key is not None:
                values[beta_key.rsplit(".", 1)[1]] = point[beta_key]
            model = H(**point) if callable(H) else H
            return thermal_state(thermal_beta(values, units) * model.matrix(), 1.0)  # e^{−βH}/Z
    elif groups["state"]:
        rho0 = _state_table(base, groups["state"], params, model, units, status)
    else:
        try:
            rho0 = build_initial_state(spec, model, units)
        except ConfigError as error:
            raise ConfigError(f"sweep point 0 ({_format(first)}): {error}") from None
    H_driven = _with_drives(H, spec["drive"], model.spins, units, groups["drive"], params)  # (rho0 closes over H)
    kappa = spec["dynamics"]["kappa"]
    if groups["kappa"]:
        kappa_key = groups["kappa"][0]

        def kappa(**point):
            return point[kappa_key]

    thermal = thermal_options(spec, units)
    solve_options = solver_options(spec)
    if thermal["max_step"] is not None:
        solve_options["max_step"] = thermal["max_step"]
    noise = {"temperature": thermal["temperature"], "seed": thermal["seed"]} if thermal["temperature"] else {}
    options = {}
    if "chunk_size" in sweep:
        options["chunk_size"] = sweep["chunk_size"]
    options["memory_budget"] = int(sweep["memory_budget_mb"] * 2**20)
    return SweepProblem(
        params=params, H=H_driven, rho0=rho0, kappa=kappa, ts=ts, observables=observables, solve_options=solve_options,
        options=options, energy="energy" in names, model=model, units=units, thermal=noise,
    )


@jax.jit
def _affine_leaves(x, base_leaves, generators):
    """leaf + Σ_i x_i G_i for every leaf (one program; eagerly, per point, each op would compile)."""
    x = jnp.concatenate([jnp.ravel(v) for v in x])
    return [leaf + jnp.tensordot(x, g, axes=1) for leaf, g in zip(base_leaves, generators)]
