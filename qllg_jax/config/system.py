"""Build the run a validated config describes: model, initial state, save times, observables (:class:`System`)."""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Callable, Mapping

import jax
import numpy as np

from .._arrays import device_array
from .._options import DEFAULTS
from .. import observables as obs
from ..hamiltonians import SpinModel, chain_bonds, dimer_model, spin_model
from ..states import (
    basis_state,
    bell_state,
    coherent_product_state,
    density_matrix,
    product_state,
    random_density_matrix,
    thermal_state,
    werner_state,
)
from ..units import BOLTZMANN_MEV_PER_K, Units
from .drives import build_drives
from .schema import TWO_QUBIT_OBSERVABLES, ConfigError, validate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_RUN_DIM = 4096
"""Largest Hilbert-space dimension ``qllg run`` accepts."""


@dataclasses.dataclass(frozen=True)
class System:
    """A fully specified run: the model, the initial state, the save times and what to record.

    Attributes:
        model: the :class:`~qllg_jax.SpinModel` (energies in E0).
        rho0: initial density matrix, shape (d, d), d = Π(2s_k + 1).
        ts: save times (T,) in ħ/E0 (starting at ``dynamics.t_start``, default 0).
        kappa: dimensionless damping κ ≥ 0.
        observables: dict name → callable ϱ (d, d) ↦ array, in the order of ``[output] observables``.
        equation: ``"qllg"``, ``"qll"`` or ``"von_neumann"``.
        rtol, atol, max_steps: solver tolerances and step limit; solver: diffrax solver name or None;
            method: :func:`~qllg_jax.solve` method.
        units: the :class:`~qllg_jax.units.Units` of a ``kind = "physical"`` config, else None.
        table: the config (plain dict, JSON-serialisable) this system was built from.
        drive: the ``[[drive]]`` field drives as one :class:`~qllg_jax.TimeDependent` (E0, ħ/E0), or None;
            ``drives``: their validated tables. The solve runs :attr:`H` = model + drive.
    """

    model: SpinModel
    rho0: jax.Array
    ts: jax.Array
    kappa: float
    observables: dict[str, Callable]
    equation: str = "qllg"
    rtol: float = DEFAULTS.rtol
    atol: float = DEFAULTS.atol
    solver: str | None = None
    method: str = "auto"
    max_steps: int = DEFAULTS.max_steps
    units: Units | None = None
    table: dict = dataclasses.field(default_factory=dict)
    drive: object = None
    drives: tuple = ()
    max_step: float | None = None
    temperature: float | None = None
    seed: int | None = None

    @property
    def hamiltonian(self) -> jax.Array:
        """Dense static H0 (d, d) in E0 (without the drives)."""
        return self.model.matrix()

    @property
    def H(self):
        """What the solve integrates: the SpinModel, or model + drive (a :class:`~qllg_jax.TimeDependent`)."""
        return self.model if self.drive is None else self.model + self.drive

    @property
    def times_ps(self) -> np.ndarray | None:
        """Save times in ps for a physical-units config, else None."""
        return None if self.units is None else np.asarray(self.units.time_to_ps(self.ts))

    def prepare(self, **kwargs):
        """The host preparation of :meth:`solve` (inputs read and checked once, the method resolved, no compute):
        a :class:`~qllg_jax.solve.PreparedSolve` with ``method``, ``nbytes`` and ``run()``."""
        from .._options import SolveOptions
        from ..solve import prepare_solve

        options = dict(equation=self.equation, rtol=self.rtol, atol=self.atol, solver=self.solver, method=self.method,
                       max_steps=self.max_steps, max_step=self.max_step)
        if self.temperature:  # dynamics.temperature_K > 0: one trajectory of the stochastic q-LLG
            options.update(temperature=self.temperature, key=jax.random.PRNGKey(self.seed))
        options.update(kwargs)
        observables = options.pop("observables", self.observables)
        read = SolveOptions.read(**options)
        if read.temperature is not None and float(read.temperature) > 0:
            from ..thermal.solve import PreparedThermal

            return PreparedThermal(self.H, self.rho0, self.ts, self.kappa, read, observables)
        return prepare_solve(self.H, self.rho0, self.ts, self.kappa, read, observables)

    def solve(self, **kwargs):
        """Run :func:`qllg_jax.solve` on this system; keyword arguments override the config's options."""
        return self.prepare(**kwargs).run()


def load_config(path) -> dict:
    """Parse a TOML config file into a plain dict (not yet validated; see :func:`build_system`)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory") from None
    except PermissionError:
        raise ConfigError(f"config file {str(path)!r} cannot be read (permission denied)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}") from None


def with_overrides(table: Mapping, overrides: Mapping) -> dict:
    """A deep copy of ``table`` with dotted-key overrides, e.g. ``{"dynamics.kappa": 0.3, "system.exchange": -1}``."""
    out = copy.deepcopy(dict(table))
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, list):  # an array of tables: drive.0.frequency_GHz
                node = _table_in_array(node, part, key, parts[:depth])
                continue
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, (dict, list)) or (isinstance(child, list) and not parts[depth + 1].isdigit()):
                raise ConfigError(f"{key}: {'.'.join(parts[: depth + 1])} is not a table")
            node = child
        if isinstance(node, list):
            raise ConfigError(f"{key}: {'.'.join(parts[:-1])} is an array of tables; name a key of one of them")
        node[parts[-1]] = value
    return out


def _table_in_array(tables: list, part: str, key: str, path: list[str]) -> dict:
    """Element ``part`` (an index from 0) of an array of tables, for the dotted ``key``."""
    name = ".".join(path)
    if not part.isdigit() or int(part) >= len(tables):
        raise ConfigError(f"{key}: {name} has {len(tables)} table(s) ([[{name}]]), so {part!r} is not one of its "
                          f"indices 0..{len(tables) - 1}")
    node = tables[int(part)]
    if not isinstance(node, dict):
        raise ConfigError(f"{key}: {name}[{part}] is not a table")
    return node


# ------------------------------------------------------------------------------------------------- the parts


def build_units(spec: Mapping) -> Units | None:
    """The :class:`Units` of a validated config with ``[units] kind = "physical"``, else None."""
    units = spec["units"]
    return Units.from_field(units["b0_tesla"]) if units["kind"] == "physical" else None


def _shaped(value: np.ndarray, key: str, shapes: list[tuple], what: str) -> np.ndarray:
    if value.shape not in shapes:
        raise ConfigError(f"{key}: must have shape {' or '.join(map(str, shapes))} ({what}), got {value.shape}")
    return value


def build_model(spec: Mapping, units: Units | None) -> SpinModel:
    """The :class:`SpinModel` of a validated config, energies in E0."""
    system = spec["system"]
    energy = (lambda x: x) if units is None else units.energy
    field = (lambda x: x) if units is None else units.field
    if "dimer" in system:
        dimer = system["dimer"]
        # eq. 8 in E0: the Zeeman term −2B·S is −gμ_B B_T·S/E0 with g = 2, so B = field(B_T)/2 in physical units.
        B = dimer["B"] if units is None else field(dimer["B"]) / 2
        return dimer_model(
            _shaped(B, "system.dimer.B", [(3,)], "a 3-vector"), energy(dimer["J"]),
            _shaped(energy(dimer["D"]), "system.dimer.D", [(3,)], "a 3-vector"), spin=dimer["spin"],
        )
    if "chain" in system:
        spins = (system["spin"],) * system["chain"]
        bonds = chain_bonds(system["chain"], system["periodic"])
    else:
        spins, bonds = system["spins"], system["bonds"]
        for k, (i, j) in enumerate(bonds):
            if not (0 <= i < len(spins) and 0 <= j < len(spins)) or i == j:
                raise ConfigError(f"system.bonds[{k}]: [{i}, {j}] is invalid for {len(spins)} sites (need 0 <= i != j < {len(spins)})")
    n, nb = len(spins), len(bonds)
    sites, per_bond = f"{n} sites", f"{nb} bonds"
    terms = {}
    if "field" in system:
        terms["field"] = field(_shaped(system["field"], "system.field", [(3,), (n, 3)], sites))
    for key, shapes in (("exchange", [(), (nb,)]), ("dmi", [(3,), (nb, 3)])):
        if key in system:
            if nb == 0:
                raise ConfigError(f"system.{key}: needs bonds (give system.bonds with spins, or use chain = n)")
            terms[key] = energy(_shaped(system[key], f"system.{key}", shapes, per_bond))
    if "anisotropy" in system:
        terms["anisotropy"] = energy(_shaped(system["anisotropy"], "system.anisotropy", [(), (n,)], sites))
    axis = _shaped(system["anisotropy_axis"], "system.anisotropy_axis", [(3,), (n, 3)], sites)
    if np.any(np.linalg.norm(axis.reshape(-1, 3), axis=-1) == 0):
        raise ConfigError("system.anisotropy_axis: must be non-zero")
    return spin_model(spins, bonds=bonds, anisotropy_axis=axis, **terms)


def thermal_beta(state: Mapping, units: Units | None):
    """β in 1/E0 of a validated thermal ``[initial_state]`` (``beta`` in 1/E0, or 1/meV in physical units; or
    ``temperature_K``, with E0 = μ_B·1 T when the config has no physical units). Works on arrays of values too."""
    if "beta" in state:
        return state["beta"] if units is None else state["beta"] * units.energy_meV
    energy_meV = (units or Units.from_field(1.0)).energy_meV
    return energy_meV / (BOLTZMANN_MEV_PER_K * state["temperature_K"])


def build_initial_state(spec: Mapping, model: SpinModel, units: Units | None) -> jax.Array:
    """ϱ0 (D, D) of a validated ``[initial_state]`` for ``model``."""
    state = spec["initial_state"]
    kind, spins = state["kind"], model.spins
    if kind == "up_down":  # |+s⟩|−s⟩|+s⟩… (Néel product state; the paper's |↑↓⟩ for a spin-1/2 dimer)
        return density_matrix(product_state([basis_state(s, s if k % 2 == 0 else -s) for k, s in enumerate(spins)]))
    if kind == "basis":
        m = _shaped(state["m"], "initial_state.m", [(len(spins),)], "one projection per site")
        kets = []
        for k, (s, mk) in enumerate(zip(spins, m)):
            try:
                kets.append(basis_state(s, float(mk)))
            except ValueError as error:
                raise ConfigError(f"initial_state.m[{k}]: {error}") from None
        return density_matrix(product_state(kets))
    if kind in ("bell", "werner"):
        if spins != (0.5, 0.5):
            raise ConfigError(f"initial_state.kind: {kind!r} needs two spin-1/2 sites; the system has spins {spins}")
        return density_matrix(bell_state(state["name"])) if kind == "bell" else werner_state(state["name"], state["p"])
    if kind == "coherent":
        directions = _shaped(state["directions"], "initial_state.directions", [(len(spins), 3)], "one 3-vector per site")
        if np.any(np.linalg.norm(directions, axis=-1) == 0):
            raise ConfigError("initial_state.directions: every direction must be a non-zero vector")
        return density_matrix(coherent_product_state(spins, directions))
    if kind == "thermal":
        return thermal_state(model.matrix(), thermal_beta(state, units))
    rank = state.get("rank")  # random
    if rank is not None and rank > model.dim:
        raise ConfigError(f"initial_state.rank: must be <= the dimension {model.dim}, got {rank}")
    return random_density_matrix(jax.random.PRNGKey(state["seed"]), model.dim, rank)


def save_times(spec: Mapping, units: Units | None) -> jax.Array:
    """Save times (T,) in ħ/E0 of a validated ``[dynamics]``."""
    dynamics = spec["dynamics"]
    if dynamics.get("times") is not None:
        ts = dynamics["times"]
    else:
        if not dynamics["t_end"] > dynamics["t_start"]:
            raise ConfigError(f"dynamics.t_end: must be > dynamics.t_start = {dynamics['t_start']:g}, got {dynamics['t_end']:g}")
        ts = np.linspace(dynamics["t_start"], dynamics["t_end"], dynamics["n_save"])
    return device_array(ts if units is None else units.time(ts), dtype=float)


def check_observables(names, spins) -> None:
    """Two-qubit observables need two spin-1/2 sites."""
    for k, name in enumerate(names):
        if name in TWO_QUBIT_OBSERVABLES and tuple(spins) != (0.5, 0.5):
            raise ConfigError(
                f"output.observables[{k}]: {name!r} is defined for two spin-1/2 sites only; the system has spins "
                f"{tuple(spins)} (use 'bloch' or 'spin' for any system)"
            )


def build_observables(names, model: SpinModel) -> dict[str, Callable]:
    """name → callable ϱ ↦ array for the ``[output] observables`` ``names``, in config order."""
    check_observables(names, model.spins)
    spins = model.spins
    factories = {
        "bloch": lambda: (lambda rho: obs.bloch_vectors(rho, spins)),
        "spin": lambda: (lambda rho: obs.spin_expectations(rho, spins)),
        "correlation": lambda: obs.correlation_matrix,
        "bell_nonlocality": lambda: obs.bell_nonlocality,
        "concurrence": lambda: obs.concurrence,
        "energy": lambda: (lambda rho, H=model.matrix(): obs.energy(rho, H)),
        "purity": lambda: obs.purity,
        "entropy": lambda: obs.von_neumann_entropy,
        "passive_energy": lambda: (lambda rho, H=model.matrix(): obs.passive_energy(rho, H)),
    }
    return {name: factories[name]() for name in names}


def thermal_options(spec: Mapping, units: Units | None) -> dict:
    """max_step (ħ/E0: ``dynamics.dt``, the fixed step at T > 0), temperature (k_B T in E0, from ``dynamics.temperature_K``; E0 = μ_B·1 T without physical
    units, as for thermal states) and seed of a validated ``[dynamics]``."""
    dynamics = spec["dynamics"]
    step = dynamics.get("dt")
    kelvin = dynamics.get("temperature_K")
    return {"max_step": None if step is None else float(step if units is None else units.time(step)),
            "temperature": 1.0 / thermal_beta({"temperature_K": kelvin}, units) if kelvin else None,
            "seed": dynamics.get("seed")}


def solver_options(spec: Mapping) -> dict:
    """The :func:`~qllg_jax.solve` options of a validated ``[dynamics]``: equation, method, solver, rtol, atol,
    max_steps."""
    dynamics = spec["dynamics"]
    return {key: dynamics.get(key) for key in ("equation", "method", "solver", "rtol", "atol", "max_steps")}


def coupling_note(table: Mapping) -> str | None:
    """A reminder of the J normalisation when two spin-1/2 sites are coupled with ``exchange`` (easily mistaken
    for the paper's dimer J, which multiplies σ1·σ2 = 4 S1·S2); None otherwise. ``table``: the raw config."""
    system = table.get("system") if isinstance(table, Mapping) else None
    if not isinstance(system, Mapping) or "exchange" not in system:
        return None
    two_qubits = (system.get("chain") == 2 and system.get("spin", 0.5) == 0.5) or system.get("spins") == [0.5, 0.5]
    if not two_qubits:
        return None
    return ("system.exchange multiplies S1.S2 = sigma1.sigma2/4: the paper's eq. 8 coupling J sigma1.sigma2 is "
            "exchange = 4J (or write dimer = {J = ...})")


def check_dimension(model: SpinModel) -> None:
    if model.dim > MAX_RUN_DIM:
        raise ConfigError(f"system: Hilbert-space dimension {model.dim} is too large for a config run (max {MAX_RUN_DIM})")


def build_system(table: Mapping) -> System:
    """Validate a parsed config (dict of tables) and build the :class:`System` it describes.

    Raises :class:`~qllg_jax.config.ConfigError` (a ValueError) naming the offending dotted key
    (``system.dimer.J``, ``dynamics.kappa``, ``initial_state.p``, ...).
    """
    spec = validate(table)
    units = build_units(spec)
    model = build_model(spec, units)
    check_dimension(model)
    check_observables(spec["output"]["observables"], model.spins)
    drive = build_drives(spec["drive"], model.spins, units)
    return System(
        drive=drive,
        drives=tuple(spec["drive"]),
        model=model,
        rho0=build_initial_state(spec, model, units),
        ts=save_times(spec, units),
        kappa=spec["dynamics"]["kappa"],
        observables=build_observables(spec["output"]["observables"], model),
        units=units,
        table=copy.deepcopy(dict(table)),
        **solver_options(spec),
        **thermal_options(spec, units),
    )
