r"""The options of :func:`qllg_jax.solve`: ONE object, :class:`SolveOptions`, with every default written once.

:meth:`SolveOptions.read` checks the keyword arguments of ``solve`` once (each error names the option) and
refuses conflicting ones; ``solve``'s signature, :func:`~qllg_jax.estimate_memory`, :func:`~qllg_jax.sweep_solve`
(the keys ``solve_options`` accepts) and the sweep fingerprint (the options a run used, defaults filled in) read
their names and defaults from here (:data:`DEFAULTS`, :func:`option_names`) instead of introspecting ``solve``.

The compiled core gets :meth:`SolveOptions.for_core`: the same object with the options that only the host reads
(``method``, ``strategy``, ``gauge_fix``, ``invariant_tol``, ``throw``) fixed, so they never key a compilation.

Finite temperature (:mod:`qllg_jax.thermal`): ``temperature`` (τ = k_B T ≥ 0 in E0), ``key`` (one ``jax.random`` key
or a batch of keys, one trajectory each) and ``spins`` (the site spins of a raw matrix H) are options too. The
temperature and the keys are array leaves, not static fields: a new key or temperature does not recompile. They
never reach the deterministic core (:meth:`SolveOptions.for_core` clears them): :func:`~qllg_jax.solve` sends a
solve at τ > 0 to :func:`~qllg_jax.thermal.solve.solve_thermal`, and τ = 0 / None to the deterministic solve.

A driven H (a value with ``__call__(t)`` and ``discontinuity_ts``) is an input, not an option: it is read by
:func:`~qllg_jax._prepare.read_hamiltonian` and evaluated in the core at :func:`~qllg_jax._core.hamiltonian_at`;
its ``discontinuity_ts`` reach the step-size controller as ``jump_ts`` of :func:`~qllg_jax._integrate.integrate`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import equinox as eqx

from ._checks import TOL, check_choice, check_flag, check_positive, check_solver

GRADIENTS = ("checkpoint", "forward", "backsolve")
"""``gradient=``: reverse mode with checkpoints, forward mode, continuous adjoint."""
BATCHING = ("auto", "shared", "vmap")
"""``batching=``: ``"shared"``: a batch is ONE ODE with shared steps; ``"vmap"``: every trajectory its own steps;
``"auto"``: shared steps, and where a batch is split into parts (the chunks of a sweep) a part in which some
trajectory failed is computed again with its own steps (a single :func:`~qllg_jax.solve` is one part: shared)."""


class SolveOptions(eqx.Module):
    """Every keyword option of :func:`qllg_jax.solve` but ``observables`` (see its docstring for each meaning).

    Static fields (a change recompiles); ``solver`` is a diffrax solver (None: :meth:`read` picks one by rtol).
    """

    solver: Any = None
    method: Any = eqx.field(static=True, default="auto")
    equation: str = eqx.field(static=True, default="qllg")
    strategy: str = eqx.field(static=True, default="auto")
    rtol: float = eqx.field(static=True, default=1e-8)
    atol: float = eqx.field(static=True, default=1e-10)
    max_steps: int = eqx.field(static=True, default=100_000)
    max_step: float | None = eqx.field(static=True, default=None)
    save_states: bool = eqx.field(static=True, default=True)
    gradient: str = eqx.field(static=True, default="checkpoint")
    batching: str = eqx.field(static=True, default="shared")
    complex_state: bool = eqx.field(static=True, default=False)
    gauge_fix: bool = eqx.field(static=True, default=True)
    throw: bool = eqx.field(static=True, default=True)
    progress: bool = eqx.field(static=True, default=False)
    invariant_tol: float | None = eqx.field(static=True, default=1e-6)
    temperature: Any = None
    key: Any = None
    spins: tuple | None = eqx.field(static=True, default=None)

    @classmethod
    def read(cls, **options) -> SolveOptions:
        """Check ``solve``'s keyword options (absent ones take their defaults) and return them as one object.

        Raises ValueError naming the option: an unknown name or value, a non-bool flag, a non-positive
        tolerance, an ``rtol`` below float64's resolution, or a method object together with ``strategy`` /
        ``gauge_fix`` (its options are its own: ``Dense(strategy=...)``, ``Frame(gauge_fix=...)``).

        The same options read again come from a cache (building the Module costs more than a small solve's
        host work): a repeated call pays a dictionary lookup.
        """
        try:  # the key holds each value's type: 1 == True == 1.0 must not share an entry
            return _read_cached(tuple((name, type(value), value) for name, value in options.items()))
        except TypeError:  # an unhashable value (e.g. a solver holding arrays): read it uncached
            return cls._read(options)

    @classmethod
    def _read(cls, options: dict) -> SolveOptions:
        from .equations import EQUATIONS, STRATEGIES
        from .methods import Method

        unknown = sorted(set(options) - set(OPTION_NAMES))
        if unknown:
            raise ValueError(f"unknown solve option(s) {unknown}; known: {sorted(OPTION_NAMES)}")
        o = {**_DEFAULTS, **options}
        check_choice(o["equation"], EQUATIONS, "equation")
        check_choice(o["strategy"], STRATEGIES, "strategy")
        check_choice(o["gradient"], GRADIENTS, "gradient")
        check_choice(o["batching"], BATCHING, "batching")
        for flag in ("save_states", "complex_state", "gauge_fix", "throw", "progress"):
            o[flag] = check_flag(o[flag], flag)
        o["rtol"], o["atol"] = check_positive(o["rtol"], "rtol"), check_positive(o["atol"], "atol")
        if o["rtol"] < TOL.min_rtol:
            raise ValueError(f"rtol must be >= {TOL.min_rtol:g}, got {o['rtol']:g}: float64 resolves relative changes "
                             "of about 2.2e-16 per step, so the error control could never be met (the step size would "
                             "collapse)")
        o["max_steps"] = check_positive(o["max_steps"], "max_steps", integer=True)
        if o["max_step"] is not None:
            o["max_step"] = check_positive(o["max_step"], "max_step")
        if o["invariant_tol"] is not None:
            o["invariant_tol"] = check_positive(o["invariant_tol"], "invariant_tol")
        if isinstance(o["method"], Method):
            given = [f"{name}={o[name]!r}" for name in ("strategy", "gauge_fix") if o[name] != getattr(DEFAULTS, name)]
            if given:
                raise ValueError(f"method={o['method']!r} is a method object, whose options are its own, and "
                                 f"{' and '.join(given)} would be ignored: pass the option to the method object (e.g. "
                                 "methods.Dense(strategy='kron'), methods.Frame(gauge_fix=False)) or the method by name")
        o["solver"] = check_solver(o["solver"], rtol=o["rtol"])
        o["temperature"], o["key"], o["spins"] = _read_thermal(o["temperature"], o["key"], o["spins"])
        return cls(**o)

    def for_core(self) -> SolveOptions:
        """The options the compiled core sees: host-only options (``method``, ``strategy``, ``gauge_fix``,
        ``invariant_tol``, ``throw``: failures are raised by :func:`~qllg_jax.solve` around the core) at fixed values
        and ``batching="auto"`` as ``"shared"`` (one solve is one part: the same program). Cached."""
        entry = _CORE_OPTIONS.get(id(self))
        if entry is None or entry[0] is not self:  # by identity: read() returns the same object for the same options
            entry = _CORE_OPTIONS[id(self)] = (self, _for_core(self))
            while len(_CORE_OPTIONS) > 64:
                del _CORE_OPTIONS[next(iter(_CORE_OPTIONS))]
        return entry[1]


def _for_core(options: SolveOptions) -> SolveOptions:
    return dataclasses.replace(options, method=DEFAULTS.method, strategy=DEFAULTS.strategy,
                               gauge_fix=DEFAULTS.gauge_fix, invariant_tol=DEFAULTS.invariant_tol,
                               batching="vmap" if options.batching == "vmap" else "shared", throw=False,
                               temperature=None, key=None, spins=None)


def _read_thermal(temperature, key, spins):
    """(temperature, key, spins) checked: τ a real scalar, finite and ≥ 0 (when known); a key or a batch of keys
    (an integer seed becomes ``PRNGKey(seed)``); spins a tuple of multiples of 1/2. A key or spins without a
    temperature is refused (they would do nothing). A missing key at τ > 0 is refused by :func:`solve` (it
    knows whether τ is 0)."""
    from ._checks import check_spins, key_batch_shape, prng_key
    from .thermal.noise import check_temperature

    if temperature is None:
        given = [name for name, value in (("key", key), ("spins", spins)) if value is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} given without temperature: they set the thermal noise (pass "
                             "temperature=k_B T in E0, e.g. Units(...).temperature(kelvin))")
        return None, None, None
    temperature = check_temperature(temperature)
    if key is not None and key_batch_shape(key) is None:
        key = prng_key(key, "key")
    return temperature, key, None if spins is None else check_spins(spins)


@functools.lru_cache(maxsize=64)
def _read_cached(items: tuple) -> SolveOptions:
    return SolveOptions._read({name: value for name, _, value in items})


_CORE_OPTIONS: dict[int, tuple] = {}
"""id(options) → (options, its core options); the entry keeps ``options`` alive, so ids stay unique."""


def option_names() -> tuple[str, ...]:
    """The names of ``solve``'s keyword options (all but ``observables``), in signature order."""
    return OPTION_NAMES


def defaults() -> dict:
    """Option name → default."""
    return dict(_DEFAULTS)


DEFAULTS = SolveOptions()
"""The defaults, one object: ``solve``'s signature, ``System`` and ``sweep_solve`` read them from here."""
OPTION_NAMES = tuple(f.name for f in dataclasses.fields(SolveOptions))
_DEFAULTS = {name: getattr(DEFAULTS, name) for name in OPTION_NAMES}
