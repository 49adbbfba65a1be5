r"""TOML description of a spin system for ``qllg run`` (and ``qllg sweep``).

A config file has four tables (plus an optional ``[units]``)::

    [units]                 # optional; default: the solver's dimensionless units
    kind = "physical"       # "E0" (default) or "physical": fields in tesla, energies in meV, times in ps
    b0_tesla = 1.0          # physical only: the energy unit E0 = mu_B * b0_tesla (the paper's choice)

    [system]                # exactly one of: spins (+ bonds), chain = n, dimer = {...}
    dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6], spin = 0.5 }   # the paper's eq. 8

    [initial_state]
    kind = "up_down"        # up_down | bell | werner | coherent | thermal | random | basis

    [dynamics]
    kappa = 0.5
    t_end = 20.0            # or times = [...]
    n_save = 401

    [output]
    observables = ["bloch", "correlation", "bell_nonlocality", "energy", "purity"]

General systems: ``spins = [0.5, 0.5, 0.5]`` with ``bonds = [[0, 1], [1, 2]]`` and ``field`` (b, H_Z = −Σ b_k·S_k;
(3,) or (N, 3)), ``exchange`` (J per bond, H ⊃ J S_i·S_j), ``dmi`` (D, H ⊃ D·(S_i×S_j)), ``anisotropy`` (K, H ⊃
−K (n·S)²), ``anisotropy_axis``; or ``chain = n`` with ``spin`` and ``periodic`` (nearest-neighbour bonds). These
are the :class:`~qllg_jax.SpinModel` terms with spin operators S. ``dimer = {B, J, D, spin}`` uses the paper's eq. 8
(H = −2B·(S1+S2) + 4J S1·S2 + 4D·(S1×S2), i.e. −B·(σ1+σ2) + J σ1·σ2 + D·(σ1×σ2) for spin 1/2).

Units: with ``kind = "E0"`` every energy is in E0 and times in ħ/E0. With ``kind = "physical"``, ``field`` and the
dimer's ``B`` are in tesla (g = 2), ``exchange``, ``dmi``, ``anisotropy`` and the dimer's ``J``, ``D`` in meV, the
thermal state's ``temperature_K`` in kelvin (or ``beta`` in 1/meV), ``t_end``/``times`` in ps; everything is converted
with :class:`qllg_jax.units.Units` (E0 = μ_B·b0_tesla) and the results are reported in ps and E0.

:func:`build_system` takes the parsed table (a plain dict), so sweeps override values with
:func:`with_overrides` (dotted keys, e.g. ``{"dynamics.kappa": 0.3, "system.dimer.J": -1.0}``).
Every invalid value raises ``ValueError`` naming its key (e.g. ``dynamics.kappa``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from . import observables as obs
from ._checks import check_choice
from .equations import EQUATIONS
from .hamiltonians import SpinModel, chain_bonds, dimer_model, spin_model
from .states import (
    BELL_STATES,
    basis_state,
    bell_state,
    coherent_product_state,
    density_matrix,
    product_state,
    random_density_matrix,
    thermal_state,
    werner_state,
)
from .units import Units

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BOLTZMANN_MEV_PER_K = 0.08617333262
"""k_B in meV/K (CODATA 2018)."""

INITIAL_STATES = ("up_down", "bell", "werner", "coherent", "thermal", "random", "basis")
OBSERVABLES = (
    "bloch",
    "spin",
    "correlation",
    "bell_nonlocality",
    "concurrence",
    "energy",
    "purity",
    "entropy",
    "passive_energy",
)
"""Names accepted in ``[output] observables``. ``bloch``: ⟨S_k⟩/s_k (N, 3); ``spin``: ⟨S_k⟩ (N, 3);
``correlation``: T_kl (3, 3), ``bell_nonlocality``, ``concurrence``: two spin-1/2 sites only; ``energy``: Tr ϱH (E0);
``purity``: Tr ϱ²; ``entropy``: von Neumann entropy (nats); ``passive_energy`` (E0)."""

TWO_QUBIT_OBSERVABLES = ("correlation", "bell_nonlocality", "concurrence")
_TABLES = ("units", "system", "initial_state", "dynamics", "output")
_SYSTEM_KEYS = ("spins", "spin", "chain", "periodic", "dimer", "bonds", "field", "exchange", "dmi", "anisotropy", "anisotropy_axis")
_DIMER_KEYS = ("B", "J", "D", "spin")
_DYNAMICS_KEYS = ("kappa", "t_start", "t_end", "n_save", "times", "equation", "rtol", "atol", "solver", "method")
_STATE_KEYS = ("kind", "name", "p", "directions", "beta", "temperature_K", "seed", "rank", "m")
_OUTPUT_KEYS = ("observables", "states", "plot")
_UNITS_KEYS = ("kind", "b0_tesla")


@dataclasses.dataclass(frozen=True)
class System:
    """A fully specified run: the model, the initial state, the save times and what to record.

    Attributes:
        model: the :class:`~qllg_jax.SpinModel` (energies in E0).
        rho0: initial density matrix, shape (d, d), d = Π(2s_k + 1).
        ts: save times (T,) in ħ/E0 (starting at ``dynamics.t_start``, default 0).
        kappa: dimensionless damping κ ≥ 0.
        observables: dict name → callable ϱ (d, d) ↦ array (see :data:`OBSERVABLES`).
        equation: ``"qllg"``, ``"qll"`` or ``"von_neumann"``.
        rtol, atol: solver tolerances; solver: diffrax solver name or None; method: :func:`~qllg_jax.solve` method.
        units: the :class:`~qllg_jax.units.Units` of a ``kind = "physical"`` config, else None.
        table: the validated config (plain dict, JSON-serialisable) this system was built from.
    """

    model: SpinModel
    rho0: jax.Array
    ts: jax.Array
    kappa: float
    observables: dict[str, Callable]
    equation: str = "qllg"
    rtol: float = 1e-8
    atol: float = 1e-10
    solver: str | None = None
    method: str = "auto"
    units: Units | None = None
    table: dict = dataclasses.field(default_factory=dict)

    @property
    def hamiltonian(self) -> jax.Array:
        """Dense H (d, d) in E0."""
        return self.model.matrix()

    @property
    def times_ps(self) -> np.ndarray | None:
        """Save times in ps for a physical-units config, else None."""
        return None if self.units is None else np.asarray(self.units.time_to_ps(self.ts))

    def solve(self, **kwargs):
        """Run :func:`qllg_jax.solve` on this system; keyword arguments override the config's options."""
        from .solve import solve

        options = dict(
            equation=self.equation, rtol=self.rtol, atol=self.atol, solver=self.solver, method=self.method,
            observables=self.observables,
        )
        options.update(kwargs)
        return solve(self.model, self.rho0, self.ts, self.kappa, **options)


def load_config(path) -> dict:
    """Parse a TOML config file into a plain dict (not yet validated; see :func:`build_system`)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config file {str(path)!r} is not valid TOML: {error}") from None


def with_overrides(table: Mapping, overrides: Mapping) -> dict:
    """A deep copy of ``table`` with dotted-key overrides, e.g. ``{"dynamics.kappa": 0.3, "system.exchange": -1}``."""
    out = copy.deepcopy(dict(table))
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ValueError(f"override {key!r}: {'.'.join(parts[: depth + 1])} is not a table")
            node = child
        node[parts[-1]] = value
    return out


# ---------------------------------------------------------------- validation helpers


def _unknown(table: Mapping, allowed, where: str):
    extra = sorted(set(table) - set(allowed))
    if extra:
        raise ValueError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _table(config: Mapping, name: str) -> dict:
    value = config.get(name, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"[{name}] must be a table, got {type(value).__name__}")
    return dict(value)


def _number(value, key: str, *, minimum=None, strict=False, integer=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if integer and float(value) != int(value):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{key} must be finite, got {value!r}")
    if minimum is not None and (number < minimum or (strict and number == minimum)):
        raise ValueError(f"{key} must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return int(number) if integer else number


def _array(value, key: str, shapes) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be numbers (or nested lists of numbers), got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{key} contains NaN or inf")
    if arr.shape not in shapes:
        raise ValueError(f"{key} must have shape {' or '.join(map(str, shapes))}, got {arr.shape}")
    return arr


def _spin(value, key: str) -> float:
    number = _number(value, key, minimum=0, strict=True)
    if abs(2 * number - round(2 * number)) > 1e-12:
        raise ValueError(f"{key} must be a positive multiple of 1/2, got {value!r}")
    return round(2 * number) / 2


# ---------------------------------------------------------------- tables


def _units(config: Mapping) -> Units | None:
    table = _table(config, "units")
    _unknown(table, _UNITS_KEYS, "[units]")
    kind = table.get("kind", "E0")
    check_choice(kind, ("E0", "physical"), "units.kind")
    if kind == "E0":
        if "b0_tesla" in table:
            raise ValueError("units.b0_tesla is only used with units.kind = 'physical'")
        return None
    return Units.from_field(_number(table.get("b0_tesla", 1.0), "units.b0_tesla", minimum=0, strict=True))


def _model(config: Mapping, units: Units | None) -> SpinModel:
    table = _table(config, "system")
    _unknown(table, _SYSTEM_KEYS, "[system]")
    kinds = [k for k in ("spins", "chain", "dimer") if k in table]
    if len(kinds) != 1:
        raise ValueError(f"[system] needs exactly one of 'spins', 'chain', 'dimer'; got {kinds or 'none'}")
    energy = (lambda x: x) if units is None else units.energy
    field = (lambda x: x) if units is None else units.field

    if "dimer" in table:
        dimer = table["dimer"]
        if not isinstance(dimer, Mapping):
            raise ValueError(f"system.dimer must be a table {{B = [...], J = ..., D = [...], spin = ...}}, got {dimer!r}")
        _unknown(dimer, _DIMER_KEYS, "system.dimer")
        others = sorted(set(table) - {"dimer"})
        if others:
            raise ValueError(f"[system] with 'dimer' takes no other keys, got {others}")
        B = _array(dimer.get("B", [1.0, 0.0, 0.0]), "system.dimer.B", [(3,)])
        J = _number(dimer.get("J", 1.0), "system.dimer.J")
        D = _array(dimer.get("D", [0.0, 0.0, 0.0]), "system.dimer.D", [(3,)])
        spin = _spin(dimer.get("spin", 0.5), "system.dimer.spin")
        # eq. 8 in E0 = μ_B B0: the Zeeman term −2B·S is −gμ_B B_T·S/E0 with g = 2, i.e. B = field(B_T)/2
        # (physical units); with kind = "E0", B is already eq. 8's B in E0.
        return dimer_model(B if units is None else field(B) / 2, energy(J), energy(D), spin=spin)

    if "chain" in table:
        n = _number(table["chain"], "system.chain", minimum=1, integer=True)
        spins = (_spin(table.get("spin", 0.5), "system.spin"),) * n
        periodic = table.get("periodic", False)
        if not isinstance(periodic, bool):
            raise ValueError(f"system.periodic must be true or false, got {periodic!r}")
        if "bonds" in table:
            raise ValueError("system.bonds: a chain has nearest-neighbour bonds; give 'spins' and 'bonds' instead")
        bonds = chain_bonds(n, periodic)
    else:
        if "spin" in table or "periodic" in table:
            raise ValueError("system.spin / system.periodic go with 'chain = n'; with 'spins' list each spin")
        raw = table["spins"]
        if not isinstance(raw, (list, tuple)) or not raw:
            raise ValueError(f"system.spins must be a non-empty list of spins, got {raw!r}")
        spins = tuple(_spin(s, f"system.spins[{k}]") for k, s in enumerate(raw))
        raw_bonds = table.get("bonds", [])
        if not isinstance(raw_bonds, (list, tuple)):
            raise ValueError(f"system.bonds must be a list of [i, j] pairs, got {raw_bonds!r}")
        bonds = []
        for k, bond in enumerate(raw_bonds):
            if (
                not isinstance(bond, (list, tuple))
                or len(bond) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in bond)
            ):
                raise ValueError(f"system.bonds[{k}] must be a pair [i, j] of site indices, got {bond!r}")
            i, j = bond
            if not (0 <= i < len(spins) and 0 <= j < len(spins)) or i == j:
                raise ValueError(f"system.bonds[{k}] = {bond} is invalid for {len(spins)} sites (need 0 <= i != j < {len(spins)})")
            bonds.append((i, j))
        bonds = tuple(bonds)
    n, nb = len(spins), len(bonds)
    if nb == 0:
        for key in ("exchange", "dmi"):
            if key in table:
                raise ValueError(f"system.{key} needs bonds (give system.bonds or use chain = n)")
    terms = {}
    if "field" in table:
        terms["field"] = field(_array(table["field"], "system.field", [(3,), (n, 3)]))
    if "exchange" in table:
        terms["exchange"] = energy(_array(table["exchange"], "system.exchange", [(), (nb,)]))
    if "dmi" in table:
        terms["dmi"] = energy(_array(table["dmi"], "system.dmi", [(3,), (nb, 3)]))
    if "anisotropy" in table:
        terms["anisotropy"] = energy(_array(table["anisotropy"], "system.anisotropy", [(), (n,)]))
    if "anisotropy_axis" in table:
        axis = _array(table["anisotropy_axis"], "system.anisotropy_axis", [(3,), (n, 3)])
        if np.any(np.linalg.norm(axis.reshape(-1, 3), axis=-1) == 0):
            raise ValueError("system.anisotropy_axis must be non-zero")
        terms["anisotropy_axis"] = axis
    return spin_model(spins, bonds=bonds, **terms)


def _initial_state(config: Mapping, model: SpinModel, units: Units | None) -> jax.Array:
    table = _table(config, "initial_state")
    _unknown(table, _STATE_KEYS, "[initial_state]")
    kind = table.get("kind", "up_down")
    check_choice(kind, INITIAL_STATES, "initial_state.kind")
    allowed = {
        "up_down": (),
        "bell": ("name",),
        "werner": ("name", "p"),
        "coherent": ("directions",),
        "thermal": ("beta", "temperature_K"),
        "random": ("seed", "rank"),
        "basis": ("m",),
    }[kind]
    extra = sorted(set(table) - {"kind", *allowed})
    if extra:
        raise ValueError(f"initial_state: key(s) {extra} do not apply to kind = {kind!r} (it takes {list(allowed)})")
    spins = model.spins
    is_two_qubits = spins == (0.5, 0.5)

    if kind == "up_down":
        # |+s⟩|−s⟩|+s⟩… (Néel product state; the paper's |↑↓⟩ for a spin-1/2 dimer)
        kets = [basis_state(s, s if k % 2 == 0 else -s) for k, s in enumerate(spins)]
        return density_matrix(product_state(kets))
    if kind == "basis":
        if "m" not in table:
            raise ValueError("initial_state.m is required for kind = 'basis' (one projection per site)")
        m = table["m"]
        if not isinstance(m, (list, tuple)) or len(m) != len(spins):
            raise ValueError(f"initial_state.m must list one projection per site ({len(spins)}), got {m!r}")
        kets = []
        for k, (s, mk) in enumerate(zip(spins, m)):
            mk = _number(mk, f"initial_state.m[{k}]")
            try:
                kets.append(basis_state(s, mk))
            except ValueError as error:
                raise ValueError(f"initial_state.m[{k}]: {error}") from None
        return density_matrix(product_state(kets))
    if kind in ("bell", "werner"):
        if not is_two_qubits:
            raise ValueError(f"initial_state.kind = {kind!r} needs two spin-1/2 sites, the system has spins {spins}")
        name = table.get("name", "psi+")
        check_choice(name, BELL_STATES, "initial_state.name")
        if kind == "bell":
            return density_matrix(bell_state(name))
        p = _number(table.get("p", 0.9), "initial_state.p")
        if not -1 / 3 <= p <= 1:
            raise ValueError(f"initial_state.p must lie in [-1/3, 1], got {p}")
        return werner_state(name, p)
    if kind == "coherent":
        if "directions" not in table:
            raise ValueError("initial_state.directions is required for kind = 'coherent' (one 3-vector per site)")
        directions = _array(table["directions"], "initial_state.directions", [(len(spins), 3)])
        if np.any(np.linalg.norm(directions, axis=-1) == 0):
            raise ValueError("initial_state.directions must be non-zero vectors")
        return density_matrix(coherent_product_state(spins, directions))
    if kind == "thermal":
        if ("beta" in table) == ("temperature_K" in table):
            raise ValueError("initial_state: kind = 'thermal' needs exactly one of 'beta' and 'temperature_K'")
        if "beta" in table:
            beta = _number(table["beta"], "initial_state.beta", minimum=0)
            if units is not None:  # beta in 1/meV → 1/E0
                beta = beta * units.energy_meV
        else:
            temperature = _number(table["temperature_K"], "initial_state.temperature_K", minimum=0, strict=True)
            energy_meV = units.energy_meV if units is not None else Units.from_field(1.0).energy_meV
            beta = energy_meV / (BOLTZMANN_MEV_PER_K * temperature)
        return thermal_state(model.matrix(), beta)
    # random
    seed = _number(table.get("seed", 0), "initial_state.seed", minimum=0, integer=True)
    rank = table.get("rank")
    if rank is not None:
        rank = _number(rank, "initial_state.rank", minimum=1, integer=True)
        if rank > model.dim:
            raise ValueError(f"initial_state.rank must be <= the dimension {model.dim}, got {rank}")
    return random_density_matrix(jax.random.PRNGKey(seed), model.dim, rank)


def _times(config: Mapping, units: Units | None) -> tuple[jax.Array, dict]:
    table = _table(config, "dynamics")
    _unknown(table, _DYNAMICS_KEYS, "[dynamics]")
    time = (lambda t: t) if units is None else units.time
    if "times" in table:
        for key in ("t_end", "n_save", "t_start"):
            if key in table:
                raise ValueError(f"dynamics.{key} cannot be combined with dynamics.times")
        raw = table["times"]
        ts = _array(raw, "dynamics.times", [(len(raw),)] if isinstance(raw, (list, tuple)) else [(-1,)])
        if ts.ndim != 1 or ts.size == 0 or not np.all(np.diff(ts) > 0):
            raise ValueError("dynamics.times must be a non-empty, strictly increasing list of times")
        ts = time(ts)
    else:
        if "t_end" not in table:
            raise ValueError("[dynamics] needs t_end (with optional t_start, n_save) or times")
        t_start = _number(table.get("t_start", 0.0), "dynamics.t_start")
        t_end = _number(table["t_end"], "dynamics.t_end")
        if not t_end > t_start:
            raise ValueError(f"dynamics.t_end must be > dynamics.t_start = {t_start}, got {t_end}")
        n_save = _number(table.get("n_save", 201), "dynamics.n_save", minimum=2, integer=True)
        ts = time(np.linspace(t_start, t_end, n_save))
    return jnp.asarray(ts, dtype=float), table


def _observables(config: Mapping, model: SpinModel) -> dict[str, Callable]:
    table = _table(config, "output")
    _unknown(table, _OUTPUT_KEYS, "[output]")
    names = table.get("observables", ["bloch", "energy", "purity"])
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"output.observables must be a list of names, got {names!r}")
    for key in ("states", "plot"):
        if key in table and not isinstance(table[key], bool):
            raise ValueError(f"output.{key} must be true or false, got {table[key]!r}")
    H = model.matrix()
    spins = model.spins
    factories = {
        "bloch": lambda: (lambda rho: obs.bloch_vectors(rho, spins)),
        "spin": lambda: (lambda rho: obs.spin_expectations(rho, spins)),
        "correlation": lambda: obs.correlation_matrix,
        "bell_nonlocality": lambda: obs.bell_nonlocality,
        "concurrence": lambda: obs.concurrence,
        "energy": lambda: (lambda rho: obs.energy(rho, H)),
        "purity": lambda: obs.purity,
        "entropy": lambda: obs.von_neumann_entropy,
        "passive_energy": lambda: (lambda rho: obs.passive_energy(rho, H)),
    }
    out = {}
    for k, name in enumerate(names):
        check_choice(name, OBSERVABLES, f"output.observables[{k}]")
        if name in TWO_QUBIT_OBSERVABLES and spins != (0.5, 0.5):
            raise ValueError(f"output.observables[{k}] = {name!r} needs two spin-1/2 sites, the system has spins {spins}")
        out[name] = factories[name]()
    return out


def build_system(table: Mapping) -> System:
    """Validate a parsed config (dict of tables) and build the :class:`System` it describes.

    Raises ValueError naming the offending key (``[system]``, ``dynamics.kappa``, ``initial_state.p``, ...).
    """
    if not isinstance(table, Mapping):
        raise ValueError(f"config must be a dict of tables, got {type(table).__name__}")
    _unknown(table, _TABLES, "config")
    for name in ("system",):
        if name not in table:
            raise ValueError(f"config needs a [{name}] table")
    units = _units(table)
    model = _model(table, units)
    if model.dim > 4096:
        raise ValueError(f"[system]: Hilbert-space dimension {model.dim} is too large for `qllg run` (max 4096)")
    rho0 = _initial_state(table, model, units)
    ts, dynamics = _times(table, units)
    kappa = _number(dynamics.get("kappa", 0.5), "dynamics.kappa", minimum=0)
    equation = dynamics.get("equation", "qllg")
    check_choice(equation, EQUATIONS, "dynamics.equation")
    rtol = _number(dynamics.get("rtol", 1e-8), "dynamics.rtol", minimum=0, strict=True)
    atol = _number(dynamics.get("atol", 1e-10), "dynamics.atol", minimum=0, strict=True)
    solver = dynamics.get("solver")
    if solver is not None:
        from ._checks import SOLVER_NAMES

        check_choice(str(solver).lower(), SOLVER_NAMES, "dynamics.solver")
    method = dynamics.get("method", "auto")
    from .methods import METHODS

    check_choice(method, METHODS, "dynamics.method")
    observables = _observables(table, model)
    return System(
        model=model,
        rho0=rho0,
        ts=ts,
        kappa=kappa,
        observables=observables,
        equation=equation,
        rtol=rtol,
        atol=atol,
        solver=solver,
        method=method,
        units=units,
        table=copy.deepcopy(dict(table)),
    )


__all__ = ["OBSERVABLES", "INITIAL_STATES", "System", "build_system", "load_config", "with_overrides"]
