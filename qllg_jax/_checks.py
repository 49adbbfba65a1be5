"""Input validation shared by every public entry point (checks run before any compute).

Checks on values run only on concrete arrays; under ``jax.jit``/``jax.vmap`` tracing only shapes are checked.
Every check raises ``ValueError`` whose message starts with the argument's name. ``qutip.Qobj`` inputs are
converted to arrays here (:func:`as_array`) without importing qutip.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

HERMITIAN_TOL = 1e-8
STATE_TOL = 1e-8


def is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def concrete_value(x) -> np.ndarray | None:
    """``x`` as a numpy array when it is concrete (not traced), else None.

    Value checks use numpy: inside a jit trace even operations on constants return tracers.
    """
    return np.asarray(x) if is_concrete(x) else None


def is_qobj(x) -> bool:
    """True for a ``qutip.Qobj`` (detected without importing qutip)."""
    return type(x).__module__.startswith("qutip") and hasattr(x, "full") and hasattr(x, "dims")


def as_array(x, name: str = "x"):
    """``x`` as an array: a ``qutip.Qobj`` becomes its dense matrix (a ket (d, 1) becomes a vector (d,)),
    a list/tuple of Qobj is stacked. Host data (numpy arrays, lists, Python numbers) stays a numpy array —
    converting it with ``jnp.asarray`` would compile a small device kernel per shape on first use, and inside
    ``jax.jit`` turn a constant into a tracer; JAX arrays and tracers pass through ``jnp.asarray``."""
    if is_qobj(x):
        value = np.asarray(x.full())
        return value[:, 0] if getattr(x, "isket", False) else value
    if isinstance(x, (list, tuple)) and x and all(is_qobj(item) for item in x):
        return np.stack([as_array(item, name) for item in x])
    if isinstance(x, (str, bytes)) or x is None:
        raise ValueError(f"{name} must be an array-like of numbers, got {type(x).__name__} {x!r}")
    host = isinstance(x, (np.ndarray, np.generic, int, float, complex, list, tuple)) and not isinstance(x, bool)
    try:
        array = np.asarray(x) if host and not _holds_jax(x) else jnp.asarray(x)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array-like of numbers, got {type(x).__name__}: {error}") from None
    if not (jnp.issubdtype(array.dtype, jnp.number) or array.dtype == bool):
        raise ValueError(f"{name} must be an array-like of numbers, got dtype {array.dtype}")
    return array


def _holds_jax(x) -> bool:
    """A list/tuple holding JAX arrays or tracers (converted with jnp.asarray, never to numpy)."""
    return isinstance(x, (list, tuple)) and any(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(x))


def host_value(raw, array=None) -> np.ndarray | None:
    """The numpy value of an input for value checks, or None when it is traced.

    ``raw`` is the argument as given (numpy array, list, ``Qobj``, jax array), ``array`` its converted form
    (:func:`as_array`). Inside a ``jax.jit``/``vmap`` trace ``jnp.asarray`` turns even a constant numpy input
    into a tracer; the raw input is then still concrete and checked (reshaped like ``array``).
    """
    value = None if array is None else concrete_value(array)
    if value is not None:
        return value
    if is_qobj(raw):
        value = np.asarray(raw.full())
    elif isinstance(raw, (list, tuple)) and raw and all(is_qobj(item) for item in raw):
        value = np.stack([np.asarray(item.full()) for item in raw])
    elif is_concrete(raw):
        try:
            value = np.asarray(raw)
        except (TypeError, ValueError):
            return None
    else:
        return None
    if array is not None:
        try:
            value = value.reshape(jnp.shape(array))
        except ValueError:
            return None
    return value


def check_finite(x, name: str, raw=None):
    """Raise if a concrete ``x`` (or the concrete ``raw`` input it came from) holds NaN or inf (traced values pass)."""
    _finite(x, name, raw)
    return x


def _finite(x, name: str, raw=None):
    value = concrete_value(x) if raw is None else host_value(raw, x)
    if value is not None and value.dtype != object and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} contains NaN or inf")


def check_square(x, name: str, dim: int | None = None):
    """Shape (..., d, d) (and d == ``dim`` when given)."""
    shape = jnp.shape(x)
    if len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] == 0:
        raise ValueError(f"{name} must be a square matrix of shape (..., d, d) with d >= 1, got shape {shape}")
    if 0 in shape:
        raise ValueError(f"{name} has an empty batch axis: shape {shape}")
    if dim is not None and shape[-1] != dim:
        raise ValueError(f"{name} has dimension {shape[-1]} but the system has dimension {dim}")


def _hermiticity_error(value: np.ndarray) -> float:
    return float(np.max(np.abs(value - np.conj(np.swapaxes(value, -1, -2)))))


def check_hamiltonian(H, name: str = "H", tol: float = HERMITIAN_TOL) -> jax.Array:
    """Validate a dense Hamiltonian (..., d, d): square, finite, Hermitian. Returns it as complex."""
    raw, H = H, as_array(H, name)
    check_square(H, name)
    _finite(H, name, raw)
    value = host_value(raw, H)
    if value is not None:
        err = _hermiticity_error(value)
        if err > tol * max(1.0, float(np.max(np.abs(value)))):
            raise ValueError(f"{name} is not Hermitian: max |H - H^†| = {err:.3g}")
    return H.astype(complex)


def density_matrix_problem(value: np.ndarray, name: str, tol: float = STATE_TOL) -> str | None:
    """Why the numpy array ``value`` (..., d, d) is not a density matrix (Hermitian, unit trace, PSD), or None."""
    herm = _hermiticity_error(value)
    if herm > tol:
        return f"{name} is not Hermitian: max |rho - rho^†| = {herm:.3g}"
    trace = np.real(np.trace(value, axis1=-2, axis2=-1))
    if np.max(np.abs(trace - 1)) > tol:
        return f"{name} must have unit trace, got trace {trace.ravel()[np.argmax(np.abs(trace - 1))]:.10g}"
    lowest = float(np.min(np.linalg.eigvalsh(value)))
    if lowest < -tol:
        return f"{name} is not positive semidefinite: smallest eigenvalue {lowest:.3g}"
    return None


def ket_problem(value: np.ndarray, name: str, tol: float = STATE_TOL) -> str | None:
    """Why the numpy array ``value`` (..., d) is not a normalised ket, or None."""
    norm = np.linalg.norm(value, axis=-1)
    if np.max(np.abs(norm - 1)) > tol:
        return f"{name} must be normalised, got norm {norm.ravel()[np.argmax(np.abs(norm - 1))]:.10g}"
    return None


def check_density_matrix(rho, name: str = "rho0", dim: int | None = None, tol: float = STATE_TOL) -> jax.Array:
    """Validate a density matrix (..., d, d): square, finite, Hermitian, unit trace, PSD. Returns complex."""
    raw, rho = rho, as_array(rho, name)
    check_square(rho, name, dim)
    _finite(rho, name, raw)
    value = host_value(raw, rho)
    if value is not None and (problem := density_matrix_problem(value, name, tol)):
        raise ValueError(problem)
    return rho.astype(complex)


def check_ket(psi, name: str = "psi0", dim: int | None = None, tol: float = STATE_TOL) -> jax.Array:
    """Validate a state vector (..., d): finite, unit norm. Returns complex."""
    raw, psi = psi, as_array(psi, name)
    if psi.ndim < 1:
        raise ValueError(f"{name} must be a vector of shape (..., d), got a scalar")
    if dim is not None and psi.shape[-1] != dim:
        raise ValueError(f"{name} has dimension {psi.shape[-1]} but the system has dimension {dim}")
    _finite(psi, name, raw)
    value = host_value(raw, psi)
    if value is not None and (problem := ket_problem(value, name, tol)):
        raise ValueError(problem)
    return psi.astype(complex)


def check_times(ts, name: str = "ts") -> jax.Array:
    """Validate save times: 1-D, non-empty, finite, strictly increasing."""
    raw, ts = ts, as_array(ts, name)
    if jnp.iscomplexobj(ts):
        raise ValueError(f"{name} must be real times, got a complex array")
    ts = ts.astype(float)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of times, got shape {ts.shape}")
    _finite(ts, name, raw)
    value = host_value(raw, ts)
    if value is not None and not np.all(np.diff(value) > 0):
        raise ValueError(f"{name} must be strictly increasing")
    return ts


def check_kappa(kappa, name: str = "kappa") -> jax.Array:
    """Validate the damping κ: real, finite, ≥ 0."""
    raw, kappa = kappa, as_array(kappa, name)
    if jnp.iscomplexobj(kappa):
        raise ValueError(f"{name} must be real, got a complex value")
    _finite(kappa, name, raw)
    value = host_value(raw, kappa)
    if value is not None and np.any(value < 0):
        raise ValueError(f"{name} must be >= 0, got {value.tolist()}")
    return kappa.astype(float)


def check_choice(value: str, choices, name: str) -> str:
    """``value`` must be one of ``choices`` (names), e.g. an equation or strategy name."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")
    return value


def check_state(rho, name: str = "rho") -> jax.Array:
    """Light check for observables of (possibly integrated, slightly drifted) states (..., d, d):
    square and finite only (no trace/positivity test). Accepts ``qutip.Qobj``. Returns the array."""
    raw, rho = rho, as_array(rho, name)
    check_square(rho, name)
    _finite(rho, name, raw)
    return rho


def check_flag(value, name: str) -> bool:
    """A Python or numpy bool (not a string such as "no", which would be truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_positive(value, name: str, *, integer: bool = False, allow_zero: bool = False):
    """A finite real scalar > 0 (≥ 0 with ``allow_zero``); an int when ``integer``."""
    if integer and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return int(value) if integer else number


def check_spins(spins, name: str = "spins") -> tuple[float, ...]:
    """A non-empty sequence of spin quantum numbers, each a positive multiple of 1/2."""
    from ._validate import check_spin  # (_validate builds on this module)

    if isinstance(spins, (str, bytes)) or not hasattr(spins, "__len__") or len(spins) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of spins (multiples of 1/2), got {spins!r}")
    return tuple(check_spin(s, f"{name}[{k}]") for k, s in enumerate(spins))


def check_bonds(bonds, n_sites: int, name: str = "bonds") -> tuple[tuple[int, int], ...]:
    """Pairs (i, j) of distinct sites with 0 ≤ i, j < n_sites; returned as a tuple of int pairs."""
    out = []
    for bond in bonds:
        if len(np.shape(bond)) != 1 or np.shape(bond)[0] != 2:
            raise ValueError(f"{name} must be pairs (i, j) of site indices, got {bond!r}")
        i, j = bond
        if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in (i, j)):
            raise ValueError(f"{name}: site indices must be integers, got {bond!r}")
        if not (0 <= i < n_sites and 0 <= j < n_sites) or i == j:
            raise ValueError(f"{name}: bond ({i}, {j}) is invalid for {n_sites} sites (need 0 <= i != j < {n_sites})")
        out.append((int(i), int(j)))
    return tuple(out)


SOLVER_NAMES = {
    "tsit5": "Tsit5",
    "dopri5": "Dopri5",
    "dopri8": "Dopri8",
    "heun": "Heun",
    "midpoint": "Midpoint",
    "ralston": "Ralston",
    "bosh3": "Bosh3",
    "kvaerno3": "Kvaerno3",
    "kvaerno4": "Kvaerno4",
    "kvaerno5": "Kvaerno5",
}
"""Names accepted for ``solver=`` (case-insensitive) → diffrax class names; adaptive solvers only."""


HIGH_ORDER_RTOL = 1e-7
"""``solver=None`` picks Dopri8 (8th order) for rtol ≤ this, Tsit5 (5th order) above: at rtol 1e-8 Dopri8 takes
4–6× fewer steps than Tsit5 for q-LLG trajectories, with errors within the tolerance (benchmarks/bench_core.py)."""


def check_solver(solver, name: str = "solver", rtol: float | None = None):
    """A diffrax solver instance from an instance, a name in :data:`SOLVER_NAMES` or None (→ Dopri8 when
    ``rtol`` ≤ :data:`HIGH_ORDER_RTOL`, else Tsit5)."""
    import diffrax

    if solver is None:
        return diffrax.Dopri8() if rtol is not None and rtol <= HIGH_ORDER_RTOL else diffrax.Tsit5()
    if isinstance(solver, str):
        key = solver.lower()
        if key not in SOLVER_NAMES:
            raise ValueError(f"unknown {name} {solver!r}; choose one of {sorted(SOLVER_NAMES)} or pass a diffrax solver")
        return getattr(diffrax, SOLVER_NAMES[key])()
    if isinstance(solver, type) and issubclass(solver, diffrax.AbstractSolver):
        raise ValueError(f"{name} must be a diffrax solver instance, e.g. diffrax.{solver.__name__}(), not the class")
    if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        raise ValueError(f"{name} must be an adaptive diffrax solver or a name, got {type(solver).__name__}")
    return solver


class InvariantWarning(UserWarning):
    """An invariant of a q-LLG solve (trace, hermiticity, spectrum, energy) drifted beyond ``invariant_tol``."""


def warn_invariants(diagnostics, tol: float | None, where: str = "solve", scales=None, stacklevel: int = 3) -> list[str]:
    """Warn with :class:`InvariantWarning` when a concrete ``Diagnostics`` exceeds ``tol`` (None: off).

    ``scales``: optional dict name → scale; that invariant is compared with ``tol * scale`` (e.g. the
    energy rise relative to max(1, |E|)). Returns the names of the violated invariants ([] when traced
    or disabled).
    """
    import warnings

    if tol is None or not is_concrete(diagnostics):
        return []
    values = diagnostics.as_dict()
    scales = scales or {}
    bad = [k for k, v in values.items() if np.isfinite(v) and v > tol * scales.get(k, 1.0)]
    if bad:
        detail = ", ".join(f"{k} = {values[k]:.3g}" for k in bad)
        warnings.warn(
            f"{where}: invariant drift above invariant_tol = {tol:.3g}: {detail}; "
            "hint: tighten rtol/atol or use a higher-order solver (e.g. solver='dopri8')",
            InvariantWarning,
            stacklevel=stacklevel,
        )
    return bad
