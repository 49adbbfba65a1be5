"""The schema of a qllg config file: every table and key with its type, default, unit and meaning.

One description serves two purposes: :func:`validate` checks a parsed TOML table against it (unknown keys,
types, ranges, which keys go together) and :func:`reference` prints it (``qllg config reference``). Checks
that need the built system (shapes per site or bond, two-qubit observables) live in :mod:`.system`.

Every error is a :class:`ConfigError` (a ``ValueError``) whose message starts with the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import textwrap
from collections.abc import Mapping

import numpy as np

from .._checks import SOLVER_NAMES, check_spin
from .._options import SolveOptions
from ..equations import EQUATIONS
from ..methods import METHODS
from ..states import BELL_STATES

MAX_SAVE_POINTS = 10**7
"""Largest ``dynamics.n_save`` / ``len(dynamics.times)``."""

INITIAL_STATES = ("up_down", "bell", "werner", "coherent", "thermal", "random", "basis")
OBSERVABLES = (
    "bloch", "spin", "correlation", "bell_nonlocality", "concurrence", "energy", "purity", "entropy", "passive_energy",
)
"""Names accepted in ``[output] observables``."""
TWO_QUBIT_OBSERVABLES = ("correlation", "bell_nonlocality", "concurrence")
"""Observables defined for two spin-1/2 sites only."""

J_NOTE = (
    "A dimer's J multiplies sigma1.sigma2 (eq. 8: J sigma1.sigma2 = 4J S1.S2), while exchange (chain = n or spins) "
    "multiplies S_i.S_j: the same number is a 4x weaker coupling as exchange."
)


class ConfigError(ValueError):
    """An invalid config value; the message starts with its dotted key (e.g. ``dynamics.kappa: ...``)."""


REQUIRED = "required"


# ----------------------------------------------------------------------------------------------- value types


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


@dataclasses.dataclass(frozen=True)
class Number:
    """A real number (a TOML integer or float; booleans and strings are refused), optionally bounded / integral."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    integer: bool = False
    text: str | None = None

    def describe(self) -> str:
        if self.text:
            return self.text
        text = "integer" if self.integer else "number"
        if self.minimum is not None:
            text += f" {'>' if self.exclusive_minimum else '>='} {self.minimum:g}"
        if self.maximum is not None:
            text += f" <= {self.maximum:g}"
        return text

    def check(self, value, key: str):
        if not _is_number(value):
            raise ConfigError(f"{key}: must be {'an integer' if self.integer else 'a number'}, got {_describe(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"{key}: must be finite, got {value!r}")
        if self.integer and number != int(number):
            raise ConfigError(f"{key}: must be an integer, got {value!r}")
        low, high = self.minimum, self.maximum
        if low is not None and (number < low or (self.exclusive_minimum and number == low)):
            raise ConfigError(f"{key}: must be {'>' if self.exclusive_minimum else '>='} {low:g}, got {value!r}")
        if high is not None and number > high:
            raise ConfigError(f"{key}: must be <= {high:g}, got {value!r}")
        return int(number) if self.integer else number


@dataclasses.dataclass(frozen=True)
class Spin:
    """A spin quantum number s > 0, a multiple of 1/2."""

    def describe(self) -> str:
        return "spin (0.5, 1, 1.5, ...)"

    def check(self, value, key: str) -> float:
        if not _is_number(value):
            raise ConfigError(f"{key}: must be a number, got {_describe(value)}")
        try:  # the one spin predicate (qllg_jax._checks); the config error names the key
            return check_spin(value, key)
        except ValueError:
            raise ConfigError(f"{key}: must be a positive multiple of 1/2, got {value!r}") from None


@dataclasses.dataclass(frozen=True)
class Boolean:
    def describe(self) -> str:
        return "true | false"

    def check(self, value, key: str) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {_describe(value)}")
        return value


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a fixed set of names."""

    choices: tuple[str, ...]
    ignore_case: bool = False

    def describe(self) -> str:
        return " | ".join(f'"{c}"' for c in self.choices)

    def check(self, value, key: str) -> str:
        if self.ignore_case and isinstance(value, str):
            value = value.lower()
        if not isinstance(value, str) or value not in self.choices:
            close = difflib.get_close_matches(str(value), self.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{key}: unknown value {value!r}{hint}; choose one of {list(self.choices)}")
        return value


def numeric_array(value, key: str) -> np.ndarray:
    """A number or a rectangular nested list of numbers (no booleans, no strings) → finite float array."""

    def walk(x, path):
        if isinstance(x, (list, tuple)):
            for i, item in enumerate(x):
                walk(item, f"{path}[{i}]")
        elif not _is_number(x):
            raise ConfigError(f"{path}: must be a number, got {_describe(x)}")

    walk(value, key)
    try:
        array = np.asarray(value, dtype=float)
    except ValueError:
        raise ConfigError(f"{key}: must be a rectangular list of numbers (every row equally long), got {value!r}") from None
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{key}: must be finite (contains NaN or inf)")
    return array


@dataclasses.dataclass(frozen=True)
class Numbers:
    """A number, vector or matrix; ``shapes`` describes the accepted shapes (N = sites, nb = bonds), checked once the
    system is known; here the value must be a rectangular nested list of finite numbers with ``ndims``."""

    shapes: str
    ndims: tuple[int, ...]

    def describe(self) -> str:
        return self.shapes

    def check(self, value, key: str) -> np.ndarray:
        array = numeric_array(value, key)
        if array.ndim not in self.ndims:
            raise ConfigError(f"{key}: must be {self.shapes}, got shape {array.shape}")
        return array


@dataclasses.dataclass(frozen=True)
class Times:
    """A non-empty, strictly increasing list of at most MAX_SAVE_POINTS numbers."""

    def describe(self) -> str:
        return "increasing list"

    def check(self, value, key: str) -> np.ndarray:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key}: must be a non-empty list of times, got {_describe(value)}")
        if len(value) > MAX_SAVE_POINTS:
            raise ConfigError(f"{key}: at most {MAX_SAVE_POINTS} save times, got {len(value)}")
        times = numeric_array(value, key)
        if times.ndim != 1 or not np.all(np.diff(times) > 0):
            raise ConfigError(f"{key}: must be a strictly increasing list of numbers")
        return times


@dataclasses.dataclass(frozen=True)
class Spins:
    def describe(self) -> str:
        return "list of spins, one per site"

    def check(self, value, key: str) -> tuple[float, ...]:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key}: must be a non-empty list of spins (e.g. [0.5, 0.5]), got {_describe(value)}")
        return tuple(Spin().check(s, f"{key}[{k}]") for k, s in enumerate(value))


@dataclasses.dataclass(frozen=True)
class Pairs:
    def describe(self) -> str:
        return "list of [i, j] site pairs"

    def check(self, value, key: str) -> tuple[tuple[int, int], ...]:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list of [i, j] pairs of site indices, got {_describe(value)}")
        pairs = []
        for k, pair in enumerate(value):
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in pair)):
                raise ConfigError(f"{key}[{k}]: must be a pair [i, j] of integer site indices, got {pair!r}")
            pairs.append(tuple(pair))
        return tuple(pairs)


@dataclasses.dataclass(frozen=True)
class Names:
    """A list of names, each one of ``choices``."""

    choices: tuple[str, ...]

    def describe(self) -> str:
        return "list of names"

    def check(self, value, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list of names, got {_describe(value)}")
        names = tuple(Choice(self.choices).check(name, f"{key}[{k}]") for k, name in enumerate(value))
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"{key}: lists {repeated} more than once")
        return names


@dataclasses.dataclass(frozen=True)
class Anything:
    """A value checked elsewhere (e.g. ``[sweep.parameters]``)."""

    text: str

    def describe(self) -> str:
        return self.text

    def check(self, value, key: str):
        return value


# ------------------------------------------------------------------------------------------------ keys, tables


@dataclasses.dataclass(frozen=True)
class Key:
    """One config key.

    Attributes:
        type: the value type (``check(value, key)`` → normalised value, ``describe()`` → text).
        default: the value used when the key is absent, None (optional, no value), or REQUIRED.
        unit: (unit with [units] kind = "E0", unit with kind = "physical"); ("", "") for dimensionless/none.
        doc: one line: the meaning.
        only: the values of the table's selector key (``kind`` / the system's mode) this key applies to.
    """

    type: object
    default: object = None
    unit: tuple[str, str] = ("", "")
    doc: str = ""
    only: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Table:
    """A TOML table: its keys, which key selects the variant (``selector``), groups of which exactly one is
    required, and hints for keys people try that do not exist."""

    name: str
    keys: dict[str, Key]
    doc: str = ""
    required: bool = False
    selector: str | None = None
    exactly_one: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    """(keys, for selector values (empty: always)): exactly one of the keys must be given."""
    hints: dict[str, str] = dataclasses.field(default_factory=dict)


ENERGY = ("E0", "meV")
FIELD = ("E0", "T")
TIME = ("hbar/E0", "ps")
MODES = ("spins", "chain", "dimer")
SITE_MODES = ("spins", "chain")

DIMER = Table(
    "system.dimer",
    {
        "B": Key(Numbers("3-vector", (1,)), [1.0, 0.0, 0.0], FIELD, "field of eq. 8, H has -B.(sigma1+sigma2) (physical: tesla, g = 2)"),
        "J": Key(Number(), 1.0, ENERGY, "exchange of eq. 8, H has J sigma1.sigma2 = 4J S1.S2 (J > 0: AFM)"),
        "D": Key(Numbers("3-vector", (1,)), [0.0, 0.0, 0.0], ENERGY, "DMI of eq. 8, H has D.(sigma1 x sigma2) = 4D.(S1 x S2)"),
        "spin": Key(Spin(), 0.5, doc="spin s of both sites (eq. 8 written with sigma = 2S)"),
    },
    doc="the paper's dimer, eq. 8: H = -B.(sigma1+sigma2) + J sigma1.sigma2 + D.(sigma1 x sigma2)",
    hints={
        "exchange": "the dimer's coupling is J (H has J sigma1.sigma2 = 4J S1.S2)",
        "field": "the dimer's field is B (H has -B.(sigma1+sigma2))",
        "dmi": "the dimer's DMI vector is D",
    },
)

SCHEMA: dict[str, Table] = {
    "units": Table(
        "units",
        {
            "kind": Key(Choice(("E0", "physical")), "E0", doc='"E0": energies in E0, times in hbar/E0; "physical": T, meV, K, ps'),
            "b0_tesla": Key(Number(0, exclusive_minimum=True), 1.0, ("", "T"), "physical only: the energy unit E0 = mu_B * b0_tesla"),
        },
        doc="default: the solver's dimensionless units",
        selector="kind",
    ),
    "system": Table(
        "system",
        {
            "dimer": Key(DIMER, None, doc="the paper's two-spin model (eq. 8); takes no other [system] key", only=("dimer",)),
            "chain": Key(Number(1, integer=True), None, doc="n sites in a row, bonds (k, k+1)", only=("chain",)),
            "spin": Key(Spin(), 0.5, doc="spin s of every chain site", only=("chain",)),
            "periodic": Key(Boolean(), False, doc="add the bond (n-1, 0)", only=("chain",)),
            "spins": Key(Spins(), None, doc="spin s_k of each site, e.g. [0.5, 1.0, 0.5]", only=("spins",)),
            "bonds": Key(Pairs(), [], doc="site pairs (i, j) that carry exchange and dmi", only=("spins",)),
            "field": Key(Numbers("3-vector or N x 3", (1, 2)), None, FIELD,
                         "H has -sum_k b_k.S_k (physical: B in tesla, b = g mu_B B, g = 2)", SITE_MODES),
            "exchange": Key(Numbers("number or one per bond", (0, 1)), None, ENERGY,
                            "H has sum_bonds J S_i.S_j with spin operators S (= J/4 sigma_i.sigma_j for spin 1/2)", SITE_MODES),
            "dmi": Key(Numbers("3-vector or nb x 3", (1, 2)), None, ENERGY, "H has sum_bonds D.(S_i x S_j)", SITE_MODES),
            "anisotropy": Key(Numbers("number or one per site", (0, 1)), None, ENERGY,
                              "H has -sum_k K_k (n_k.S_k)^2 (K > 0: easy axis)", SITE_MODES),
            "anisotropy_axis": Key(Numbers("3-vector or N x 3", (1, 2)), [0.0, 0.0, 1.0], doc="n_k (normalised)", only=SITE_MODES),
        },
        doc="exactly one of dimer, chain, spins. " + J_NOTE,
        required=True,
        selector="mode",
        exactly_one=((MODES, ()),),
        hints={
            "J": "use exchange (H has J S_i.S_j) with chain/spins, or dimer = {J = ...} (H has J sigma1.sigma2). " + J_NOTE,
            "B": "use field (H has -b.S) with chain/spins, or dimer = {B = ...}",
            "D": "use dmi with chain/spins, or dimer = {D = ...}",
            "n": "use chain = n",
        },
    ),
    "initial_state": Table(
        "initial_state",
        {
            "kind": Key(Choice(INITIAL_STATES), "up_down", doc="up_down: |+s,-s,+s,...> (the paper's |up,down>)"),
            "name": Key(Choice(BELL_STATES), "psi+", doc="Bell state (two spin-1/2 sites)", only=("bell", "werner")),
            "p": Key(Number(-1 / 3, 1, text="number in [-1/3, 1]"), 0.9, doc="Werner mixing: (1-p)/4 + p |Bell><Bell|", only=("werner",)),
            "directions": Key(Numbers("N x 3", (2,)), REQUIRED, doc="spin-coherent product state, one direction per site",
                              only=("coherent",)),
            "beta": Key(Number(0), None, ("1/E0", "1/meV"), "Gibbs state exp(-beta H)/Z; give beta or temperature_K",
                        ("thermal",)),
            "temperature_K": Key(Number(0, exclusive_minimum=True), None, ("K", "K"),
                                 "Gibbs state at temperature T, beta = 1/(k_B T)", ("thermal",)),
            "seed": Key(Number(0, integer=True), 0, doc="random density matrix (Hilbert-Schmidt) from this seed", only=("random",)),
            "rank": Key(Number(1, integer=True), None, doc="rank of the random state (default: full)", only=("random",)),
            "m": Key(Numbers("one projection per site", (1,)), REQUIRED, doc="product of S_z eigenstates |s_k, m_k>",
                     only=("basis",)),
        },
        selector="kind",
        exactly_one=((("beta", "temperature_K"), ("thermal",)),),
    ),
    "dynamics": Table(
        "dynamics",
        {
            "kappa": Key(Number(0), 0.5, doc="q-LLG damping kappa (dimensionless)"),
            "t_end": Key(Number(), None, TIME, "last save time; give t_end (+ t_start, n_save) or times"),
            "t_start": Key(Number(), 0.0, TIME, "first save time (with t_end)"),
            "n_save": Key(Number(2, MAX_SAVE_POINTS, integer=True), 201, doc="number of equally spaced save times (with t_end)"),
            "times": Key(Times(), None, TIME, "explicit save times (instead of t_end)"),
            "equation": Key(Choice(tuple(EQUATIONS)), "qllg", doc="the equation of motion"),
            "method": Key(Choice(tuple(METHODS)), "auto", doc="solve's method (auto picks closed forms where they apply)"),
            "solver": Key(Choice(tuple(SOLVER_NAMES), ignore_case=True), None, doc="diffrax solver (default: chosen by the method)"),
            "rtol": Key(Number(0, exclusive_minimum=True), SolveOptions.rtol, doc="relative tolerance of the adaptive step"),
            "atol": Key(Number(0, exclusive_minimum=True), SolveOptions.atol, doc="absolute tolerance of the adaptive step"),
            "max_steps": Key(Number(1, integer=True), SolveOptions.max_steps, doc="steps before a run stops with 'max_steps reached'"),
            # finite temperature (issue 22): the stochastic q-LLG, D_k = kappa k_B T / s_k
            "temperature_K": Key(Number(0), None, ("K", "K"), "thermal noise at temperature T (stochastic q-LLG, "
                                 "D_k = kappa k_B T/s_k; E0 = mu_B*1T without [units]); 0 or absent: none"),
            "seed": Key(Number(0, integer=True), None, doc="seed of the thermal noise (required with temperature_K > 0; "
                        "sweeps: point i gets fold_in(PRNGKey(seed), i))"),
            "dt": Key(Number(0, exclusive_minimum=True), None, TIME, "fixed step of the stochastic q-LLG (temperature_K > 0; "
                      "default: from the spectral width and the noise; required in a sweep of H or kappa)"),
        },
        required=True,
        exactly_one=((("t_end", "times"), ()),),
        hints={
            "t_max": "use t_end", "n_steps": "use n_save (save points; steps are adaptive)", "alpha": "use kappa",
            "damping": "use kappa", "tol": "use rtol / atol",
        },
    ),
    "output": Table(
        "output",
        {
            "observables": Key(Names(OBSERVABLES), ["bloch", "energy", "purity"],
                               doc="recorded at every save time; correlation, bell_nonlocality, concurrence need two spin-1/2 sites"),
        },
        hints={
            "plot": "the plot is written unless `qllg run --no-plot`",
            "states": "qllg run records observables only; from Python, System.solve(save_states=True) keeps rho(t)",
        },
    ),
    "sweep": Table(
        "sweep",
        {
            "parameters": Key(Anything("table: dotted key -> values"), REQUIRED,
                              doc='e.g. "system.dimer.J" = [0.5, 1.0] or {linspace = [a, b, n]}, {logspace = [a, b, n]}, {values = [...]}'),
            "mode": Key(Choice(("grid", "zip")), "grid", doc="grid: Cartesian product (first key slowest); zip: equal lengths"),
            "chunk_size": Key(Number(1, integer=True), None, doc="points per compiled call (default: from memory_budget_mb)"),
            "memory_budget_mb": Key(Number(0, exclusive_minimum=True), 1024, ("MiB", "MiB"), "memory per chunk"),
        },
        doc="qllg sweep only",
    ),
}

OBSERVABLE_DOCS = {
    "bloch": "<S_k>/s_k per site, (N, 3); columns bloch_<k>_<x|y|z>",
    "spin": "<S_k> per site, (N, 3); columns spin_<k>_<x|y|z>",
    "correlation": "T_ab = Tr(rho sigma_a x sigma_b), (3, 3); two spin-1/2 sites only",
    "bell_nonlocality": "Bell non-locality B(rho) (Horodecki); two spin-1/2 sites only",
    "concurrence": "Wootters concurrence; two spin-1/2 sites only",
    "energy": "Tr(rho H) in E0",
    "purity": "Tr rho^2",
    "entropy": "von Neumann entropy -Tr rho ln rho (nats)",
    "passive_energy": "lowest energy reachable with rho's spectrum, E0 (qllg run only)",
}


# ------------------------------------------------------------------------------------------------ validation


def _unknown_key(table: Table, key: str, where: str) -> ConfigError:
    hint = table.hints.get(key)
    if hint is None:
        close = difflib.get_close_matches(key, list(table.keys), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(table.keys)}"
    return ConfigError(f"{where}.{key}: unknown key; {hint}")


def _selector_value(table: Table, raw: Mapping, where: str):
    if table.selector is None:
        return None
    if table.selector == "mode":  # [system]: which of dimer / chain / spins is given
        given = [m for m in MODES if m in raw]
        if len(given) != 1:
            raise ConfigError(f"{where}: needs exactly one of {', '.join(MODES)}; got {', '.join(given) or 'none'}")
        return given[0]
    return table.keys[table.selector].type.check(raw.get(table.selector, table.keys[table.selector].default),
                                                 f"{where}.{table.selector}")


def validate_table(table: Table, raw, where: str | None = None) -> dict:
    """Check one table (recursively for nested tables) and fill its defaults. Returns a plain dict."""
    where = where or table.name
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table, got {_describe(raw)}")
    for key in raw:
        if key not in table.keys:
            raise _unknown_key(table, key, where)
    selected = _selector_value(table, raw, where)
    for keys, when in table.exactly_one:
        if when and selected not in when:
            continue
        given = [k for k in keys if k in raw]
        if len(given) != 1:
            context = f" for {table.selector} = {selected!r}" if when else ""
            raise ConfigError(f"{where}: needs exactly one of {', '.join(keys)}{context}; got {', '.join(given) or 'none'}")
    out = {}
    for name, key in table.keys.items():
        dotted = f"{where}.{name}"
        applies = not key.only or selected in key.only
        if name in raw:
            if not applies:
                label = "[system] mode" if table.selector == "mode" else f"{where}.{table.selector}"
                raise ConfigError(f"{dotted}: does not apply to {label} = {selected!r} (it goes with {', '.join(key.only)})")
            value = raw[name]
            out[name] = validate_table(key.type, value, dotted) if isinstance(key.type, Table) else key.type.check(value, dotted)
        elif applies and key.default == REQUIRED:
            context = f" for {table.selector} = {selected!r}" if key.only else ""
            raise ConfigError(f"{dotted}: required{context} ({key.doc})")
        elif applies and key.default is not None:
            default = key.default
            out[name] = key.type.check(default, dotted) if not isinstance(key.type, Table) else default
    if table.name == "units" and selected == "E0" and "b0_tesla" in raw:
        raise ConfigError("units.b0_tesla: only used with units.kind = 'physical'")
    return out


def validate(config) -> dict:
    """Check a parsed config (dict of tables) against :data:`SCHEMA`; returns the tables with defaults filled in.

    Raises :class:`ConfigError` naming the first offending dotted key.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"config: must be a dict of tables, got {_describe(config)}")
    for name in config:
        if name not in SCHEMA and name not in TABLE_ARRAYS:
            close = difflib.get_close_matches(str(name), list(SCHEMA) + list(TABLE_ARRAYS), n=1)
            hint = f"did you mean [{close[0]}]?" if close else f"tables: {', '.join(f'[{t}]' for t in SCHEMA)}"
            raise ConfigError(f"config: unknown table [{name}]; {hint}")
    out = {}
    for name, table in SCHEMA.items():
        if name in config:
            out[name] = validate_table(table, config[name])
        elif table.required:
            raise ConfigError(f"config: needs a [{name}] table ({table.doc or 'see qllg config reference'})")
        elif REQUIRED not in [key.default for key in table.keys.values()]:
            out[name] = validate_table(table, {})
    dynamics = out["dynamics"]
    if dynamics.get("temperature_K") and dynamics.get("seed") is None:
        raise ConfigError("dynamics.seed: required with dynamics.temperature_K > 0 (the thermal noise's seed)")
    if dynamics.get("seed") is not None and not dynamics.get("temperature_K"):
        raise ConfigError("dynamics.seed: given without dynamics.temperature_K > 0 (it seeds the thermal noise)")
    out.update(_validate_table_arrays(config, out))
    if out["dynamics"].get("times") is not None:
        for key in ("t_start", "n_save"):
            if key in config["dynamics"]:
                raise ConfigError(f"dynamics.{key}: cannot be combined with dynamics.times")
    return out


def key_spec(dotted: str) -> tuple[Key, str]:
    """The :class:`Key` of a dotted config key (``system.dimer.J``, ``drive.0.frequency_GHz``) and the part after
    it (a vector index, or "")."""
    parts = dotted.split(".")
    if parts[0] in TABLE_ARRAYS:
        return _array_key_spec(dotted, parts)
    table = SCHEMA.get(parts[0])
    if table is None:
        raise ConfigError(f"{dotted}: unknown table [{parts[0]}]")
    for depth in range(1, len(parts)):
        name = parts[depth]
        if name not in table.keys:
            raise _unknown_key(table, name, ".".join(parts[:depth]))
        key = table.keys[name]
        if isinstance(key.type, Table) and depth + 1 < len(parts):
            table = key.type
            continue
        return key, ".".join(parts[depth + 1 :])
    raise ConfigError(f"{dotted}: names a table, not a key")


# ------------------------------------------------------------------------------------------------- reference


def _toml_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_text(x) for x in value) + "]"
    return repr(value)


def _default_text(key: Key) -> str:
    if key.default == REQUIRED:
        return "required"
    return "-" if key.default is None else _toml_text(key.default)


def _unit_text(key: Key) -> str:
    e0, physical = key.unit
    if not e0 and not physical:
        return ""
    if not physical:
        return e0
    if e0 == physical or not e0:
        return physical
    return f"{e0} | {physical}"


def _table_lines(table: Table, prefix: str) -> list[str]:
    status = "required" if table.required else "optional"
    lines = textwrap.wrap(f"[{prefix}]  ({status}{'; ' + table.doc if table.doc else ''})", 110, subsequent_indent="  ")
    for keys, when in table.exactly_one:
        scope = f" (for {table.selector} = {', '.join(when)})" if when else ""
        lines.append(f"  exactly one of: {', '.join(keys)}{scope}")
    width = max(map(len, table.keys))
    nested = []
    for name, key in table.keys.items():
        if isinstance(key.type, Table):
            nested.append((name, key.type))
            kind = "inline table, see below"
        else:
            kind = key.type.describe()
        facts = [f"default {_default_text(key)}" if key.default not in (None, REQUIRED) else
                 ("required" if key.default == REQUIRED else "optional")]
        if _unit_text(key):
            facts.append(f"unit {_unit_text(key)}")
        if key.only and table.selector:
            selector = "with" if table.selector == "mode" else f"{table.selector} ="
            facts.append(f"{selector} {' | '.join(key.only)}")
        lines.append(f"  {name:<{width}}  {kind}; {'; '.join(facts)}")
        lines.extend(textwrap.wrap(key.doc, 100, initial_indent=" " * (width + 6), subsequent_indent=" " * (width + 6)))
    for name, sub in nested:
        lines.append("")
        lines.extend(_table_lines(sub, f"{prefix}.{name}"))
    return lines


def reference() -> str:
    """Every table and key with type, default, unit and meaning (the text of ``qllg config reference``)."""
    lines = [
        "qllg config reference: every table and key of a qllg run / qllg sweep TOML file.",
        "Each key: its type; default (or required / optional); unit as 'E0 config | physical config' (the second",
        "applies with [units] kind = \"physical\"); the kinds or [system] modes it goes with; then its meaning.",
        "Spin operators S have eigenvalues -s..s; sigma = 2S for spin 1/2; hbar = 1.",
        "",
    ]
    for name, table in SCHEMA.items():
        lines.extend(_table_lines(table, name))
        lines.append("")
    for name, table in TABLE_ARRAYS.items():
        lines.extend(_table_lines(table, f"[{name}]"))
        lines.extend(textwrap.wrap(TABLE_ARRAY_NOTES[name], 110, initial_indent="  ", subsequent_indent="  "))
        lines.append("")
    lines.append("[output] observables:")
    width = max(map(len, OBSERVABLE_DOCS))
    lines.extend(f"  {name:<{width}}  {doc}" for name, doc in OBSERVABLE_DOCS.items())
    lines += [
        "",
        "Coupling conventions: " + J_NOTE,
        "Physical units: fields in tesla (g = 2, H_Z = -g mu_B B.S), exchange/dmi/anisotropy and the dimer's J, D in meV,",
        "beta in 1/meV, temperature_K in kelvin, times in ps; E0 = mu_B * b0_tesla (CODATA constants from scipy).",
        "qllg sweep: [sweep.parameters] keys are dotted config keys; a trailing integer indexes a list",
        '("system.dimer.D.2" is D_z). Swept: [system] couplings (field, exchange, dmi, anisotropy, dimer B/J/D),',
        "[initial_state] parameters, dynamics.kappa and the numbers of a [[drive]] (\"drive.0.frequency_GHz\");",
        "everything else is shared by all points.",
        "Finite temperature: dynamics.temperature_K > 0 with dynamics.seed runs the stochastic q-LLG (one trajectory;",
        "qllg sweep: one per point, key fold_in(PRNGKey(seed), point index), so a resumed sweep draws the same noise).",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ arrays of tables ([[drive]])
# The array tables live in their own modules (config/drives.py); these hooks are all schema.py knows of them.

TABLE_ARRAYS: dict[str, Table] = {}
"""name → the :class:`Table` of each element of a TOML array of tables (``[[drive]]``), registered by its module."""
TABLE_ARRAY_NOTES: dict[str, str] = {}


TABLE_ARRAY_VALIDATORS: dict = {}
"""name → validate(raw list, physical: bool) → list of validated tables; each array's module registers itself
(config/drives.py at import; config/__init__ imports it), so schema.py imports none of them (no import cycle)."""


def _validate_table_arrays(config: Mapping, out: Mapping) -> dict:
    """The validated arrays of tables (``drive``: a list, empty when absent), given the validated tables ``out``."""
    physical = out["units"]["kind"] == "physical"
    return {name: validate(config.get(name, []), physical) for name, validate in TABLE_ARRAY_VALIDATORS.items()}


def _array_key_spec(dotted: str, parts: list[str]) -> tuple[Key, str]:
    """``drive.K.key[.index]``: the :class:`Key` of an element of an array of tables."""
    name = parts[0]
    if len(parts) < 3 or not parts[1].isdigit():
        raise ConfigError(f"{dotted}: a [[{name}]] key is {name}.K.KEY with K the table's index from 0 "
                          f"(e.g. {name}.0.frequency_GHz)")
    table = TABLE_ARRAYS[name]
    if parts[2] not in table.keys:
        raise _unknown_key(table, parts[2], f"{name}[{parts[1]}]")
    return table.keys[parts[2]], ".".join(parts[3:])
