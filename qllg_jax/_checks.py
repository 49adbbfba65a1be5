r"""Every input check of qllg_jax, run before any compute; each physical predicate written once.

**Predicates** (:func:`hermiticity_error`, :func:`trace_error`, :func:`smallest_eigenvalue`, :func:`norm_error`,
:func:`is_hamiltonian`, :func:`is_density_matrix`, :func:`is_ket`, :func:`are_times`, :func:`is_damping`) take an
array namespace ``xp``: numpy on the host, where a failed check raises ``ValueError`` with the measured value,
and ``jax.numpy`` in the compiled solve, where the same predicate of a traced input marks the trajectory failed
(:mod:`qllg_jax._core`). Their tolerances come from ONE table, :data:`TOL`.

**Checks** (``check_*``, :func:`real_array`, ...) raise ``ValueError`` whose message starts with the argument's
name. Values are checked only where they are concrete; under ``jax.jit``/``jax.vmap``/``jax.grad`` a traced
argument is checked for dtype and shape only (its value is checked at run time where the solver can).
"""

from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
import numpy as np

from ._arrays import device_array, as_array, concrete_value, host_value, is_concrete, is_qobj  # noqa: F401  (re-exported)
from ._solvers import SOLVER_NAMES, check_solver  # noqa: F401  (solver=: its own policy module)

TOL = types.SimpleNamespace(
    hermitian=1e-8,
    state=1e-8,
    observable=1e-6,
    spin=1e-12,
    min_rtol=1e-14,
)
"""The tolerances of every input check:

- ``hermitian``: H, relative: max |H − H†| ≤ tol · max(1, max |H|) per matrix;
- ``state``: ϱ0 and ψ0, absolute: max |ϱ − ϱ†|, |Tr ϱ − 1|, −λ_min(ϱ), |‖ψ‖ − 1| (and |Tr ϱ² − 1| when a pure
  state is required) each ≤ tol;
- ``observable``: states given to observables (relative to max(1, max |ϱ|)): loose enough for integrated states
  that drifted by rounding (or float32 runs), tight enough to refuse a wrong matrix;
- ``spin``: 2s must be within this of an integer;
- ``min_rtol``: the smallest accepted ``rtol`` (≈ 50 float64 machine epsilons).
"""


# ------------------------------------------------------------------------------ predicates (numpy or jnp)


def hermiticity_error(x, xp=np):
    """max |x − x†| over the last two axes: (..., d, d) → (...,)."""
    return xp.max(xp.abs(x - xp.conj(xp.swapaxes(x, -1, -2))), axis=(-2, -1))


def trace_error(x, xp=np):
    """|Re Tr x − 1|: (..., d, d) → (...,)."""
    return xp.abs(xp.real(xp.trace(x, axis1=-2, axis2=-1)) - 1)


def smallest_eigenvalue(x, xp=np):
    """The smallest eigenvalue of the Hermitian part of x: (..., d, d) → (...,)."""
    return xp.min(xp.linalg.eigvalsh((x + xp.conj(xp.swapaxes(x, -1, -2))) / 2), axis=-1)


def norm_error(psi, xp=np):
    """|‖ψ‖ − 1|: (..., d) → (...,)."""
    return xp.abs(xp.linalg.norm(psi, axis=-1) - 1)


def _finite(x, xp, core: int):
    return xp.all(xp.isfinite(x), axis=tuple(range(-core, 0)))


def is_hamiltonian(h, xp=np, tol: float = TOL.hermitian):
    """Finite and Hermitian to ``tol`` relative to max(1, max |H|): (..., d, d) → bool (...,)."""
    finite = _finite(h, xp, 2)
    safe = xp.where(finite[..., None, None], h, 0.0)
    scale = xp.maximum(1.0, xp.max(xp.abs(safe), axis=(-2, -1)))
    return finite & (hermiticity_error(safe, xp) <= tol * scale)


def is_density_matrix(rho, xp=np, tol: float = TOL.state, pure: bool = False):
    """Finite, Hermitian, unit trace, positive semidefinite (and pure: Tr ϱ² = 1) to ``tol``: → bool (...,)."""
    finite = _finite(rho, xp, 2)
    safe = xp.where(finite[..., None, None], rho, 0.0)
    valid = (finite & (hermiticity_error(safe, xp) <= tol) & (trace_error(safe, xp) <= tol)
             & (smallest_eigenvalue(safe, xp) >= -tol))
    if pure:
        valid = valid & (xp.abs(xp.sum(xp.abs(safe) ** 2, axis=(-2, -1)) - 1) <= tol)
    return valid


def is_ket(psi, xp=np, tol: float = TOL.state):
    """Finite and normalised to ``tol``: (..., d) → bool (...,)."""
    finite = _finite(psi, xp, 1)
    return finite & (norm_error(xp.where(finite[..., None], psi, 0.0), xp) <= tol)


def are_times(ts, xp=np):
    """Save times (T,): finite and strictly increasing → bool ()."""
    return xp.all(xp.isfinite(ts)) & xp.all(xp.diff(ts) > 0)


def is_damping(kappa, xp=np):
    """κ finite and ≥ 0, elementwise."""
    return xp.isfinite(kappa) & (kappa >= 0)


# ------------------------------------------------------------------------------------------ host checks


def check_finite(x, name: str, raw=None):
    """Raise if a concrete ``x`` (or the concrete ``raw`` input it came from) holds NaN or inf (traced values pass)."""
    _check_finite(x, name, raw)
    return x


def _check_finite(x, name: str, raw=None):
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


def _worst(values: np.ndarray, bad: np.ndarray):
    """The entry of ``values`` at the first element where ``bad``."""
    return np.ravel(values)[int(np.argmax(np.ravel(bad)))]


def check_hamiltonian(H, name: str = "H", tol: float = TOL.hermitian) -> jax.Array:
    """Validate a dense Hamiltonian (..., d, d): square, finite, Hermitian (:func:`is_hamiltonian`). Complex."""
    raw, H = H, as_array(H, name)
    check_square(H, name)
    _check_finite(H, name, raw)
    value = host_value(raw, H)
    if value is not None and not np.all(valid := is_hamiltonian(value, np, tol)):
        raise ValueError(f"{name} is not Hermitian: max |H - H^†| = {_worst(hermiticity_error(value), ~valid):.3g}")
    return H.astype(complex)


def density_matrix_problem(value: np.ndarray, name: str, tol: float = TOL.state) -> str | None:
    """Why the finite numpy array ``value`` (..., d, d) is not a density matrix (Hermitian, unit trace, PSD), or
    None (the measured quantities of :func:`is_density_matrix`)."""
    herm = hermiticity_error(value)
    if np.any(herm > tol):
        return f"{name} is not Hermitian: max |rho - rho^†| = {np.max(herm):.3g}"
    trace = np.real(np.trace(value, axis1=-2, axis2=-1))
    if np.any(bad := trace_error(value) > tol):
        return f"{name} must have unit trace, got trace {_worst(trace, bad):.10g}"
    lowest = float(np.min(smallest_eigenvalue(value)))
    if lowest < -tol:
        return f"{name} is not positive semidefinite: smallest eigenvalue {lowest:.3g}"
    return None


def ket_problem(value: np.ndarray, name: str, tol: float = TOL.state) -> str | None:
    """Why the finite numpy array ``value`` (..., d) is not a normalised ket (:func:`is_ket`), or None."""
    if np.any(bad := norm_error(value) > tol):
        return f"{name} must be normalised, got norm {_worst(np.linalg.norm(value, axis=-1), bad):.10g}"
    return None


def check_density_matrix(rho, name: str = "rho0", dim: int | None = None, tol: float = TOL.state) -> jax.Array:
    """Validate a density matrix (..., d, d): square, finite, Hermitian, unit trace, PSD. Returns complex."""
    raw, rho = rho, as_array(rho, name)
    check_square(rho, name, dim)
    _check_finite(rho, name, raw)
    value = host_value(raw, rho)
    if value is not None and (problem := density_matrix_problem(value, name, tol)):
        raise ValueError(problem)
    return rho.astype(complex)


def check_ket(psi, name: str = "psi0", dim: int | None = None, tol: float = TOL.state) -> jax.Array:
    """Validate a state vector (..., d): finite, unit norm. Returns complex."""
    raw, psi = psi, as_array(psi, name)
    if psi.ndim < 1:
        raise ValueError(f"{name} must be a vector of shape (..., d), got a scalar")
    if dim is not None and psi.shape[-1] != dim:
        raise ValueError(f"{name} has dimension {psi.shape[-1]} but the system has dimension {dim}")
    _check_finite(psi, name, raw)
    value = host_value(raw, psi)
    if value is not None and (problem := ket_problem(value, name, tol)):
        raise ValueError(problem)
    return psi.astype(complex)


def check_times(ts, name: str = "ts") -> jax.Array:
    """Validate save times: 1-D, non-empty, finite, strictly increasing (:func:`are_times`)."""
    raw, ts = ts, as_array(ts, name)
    if jnp.iscomplexobj(ts):
        raise ValueError(f"{name} must be real times, got a complex array")
    ts = ts.astype(float)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of times, got shape {ts.shape}")
    _check_finite(ts, name, raw)
    value = host_value(raw, ts)
    if value is not None and not are_times(value):
        raise ValueError(f"{name} must be strictly increasing")
    return ts


def check_kappa(kappa, name: str = "kappa") -> jax.Array:
    """Validate the damping κ: real, finite, ≥ 0 (:func:`is_damping`)."""
    raw, kappa = kappa, as_array(kappa, name)
    if jnp.iscomplexobj(kappa):
        raise ValueError(f"{name} must be real, got a complex value")
    _check_finite(kappa, name, raw)
    value = host_value(raw, kappa)
    if value is not None and not np.all(is_damping(value)):
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
    _check_finite(rho, name, raw)
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


# ------------------------------------------------------- models, states, observables, design, classical LLG


def safe_ndim(value) -> int:
    """np.ndim, or -1 for input NumPy cannot shape (ragged lists)."""
    try:
        return np.ndim(value)
    except ValueError:
        return -1


def _describe(value) -> str:
    if hasattr(value, "dtype") and safe_ndim(value) > 0:
        return f"{type(value).__name__} of shape {np.shape(value)} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def real_array(value, name: str, hint: str = ""):
    """``value`` (scalar, list, numpy or JAX array, tracer) as float64: a NumPy array when it is concrete (so
    that value checks still work inside a ``jax.jit`` trace, where ``jnp.asarray`` of a constant is a tracer),
    else the traced JAX array.

    Refuses strings, None, booleans, non-numeric, ragged and complex input (``hint`` is appended to the
    complex error, e.g. why the quantity must be real); a tracer is checked for its dtype only.
    """
    if value is None or isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be an array of real numbers, got {_describe(value)}")
    if is_concrete(value):
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be an array of real numbers, got {_describe(value)} ({error})") from None
    else:
        array = device_array(value)
    kind = np.dtype(array.dtype).kind
    if kind == "c":
        raise ValueError(f"{name} must be real, got a complex value" + (f"; {hint}" if hint else ""))
    if kind not in "iuf":
        raise ValueError(f"{name} must be an array of real numbers, got {_describe(value)} (dtype {array.dtype})")
    return array.astype(float) if isinstance(array, np.ndarray) else device_array(array, dtype=float)


def real_scalar(value, name: str):
    """A real scalar (Python/numpy number, 0-d array or a traced scalar) as a float64 0-d array (see real_array)."""
    array = real_array(value, name)
    if array.shape != ():
        raise ValueError(f"{name} must be a scalar, got shape {array.shape}")
    return array


def check_spin(s, name: str = "s") -> float:
    """A spin quantum number: a finite positive multiple of 1/2 (Python float returned)."""
    if isinstance(s, (bool, str, bytes)) or s is None or safe_ndim(s) != 0:
        raise ValueError(f"{name} must be a spin quantum number (a positive multiple of 1/2), got {_describe(s)}")
    try:
        two_s = 2 * float(s)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a spin quantum number (a positive multiple of 1/2), got {_describe(s)}") from None
    if not (math.isfinite(two_s) and two_s > 0 and abs(two_s - round(two_s)) < TOL.spin):
        raise ValueError(f"{name} must be a spin quantum number (a positive multiple of 1/2), got {s!r}")
    return round(two_s) / 2


def check_dims(dims, name: str = "dims") -> tuple[int, ...]:
    """Site dimensions as Python ints ≥ 1 (so Π d_k never overflows a fixed-width integer)."""
    if isinstance(dims, (str, bytes)) or safe_ndim(dims) != 1 or len(dims) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of site dimensions, got {_describe(dims)}")
    out = []
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or int(d) < 1:
            raise ValueError(f"{name} must hold integers >= 1, got {d!r}")
        out.append(int(d))
    return tuple(out)


def key_batch_shape(key) -> tuple[int, ...] | None:
    """Leading batch axes of a batch of ``jax.random`` keys (typed keys (...,) or legacy uint32 (..., 2)); () for
    one key; None when ``key`` is not an array of keys (e.g. an integer seed)."""
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        return None
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return tuple(np.shape(key))
    if np.dtype(dtype) == np.uint32 and np.ndim(key) >= 1 and np.shape(key)[-1] == 2:
        return tuple(np.shape(key)[:-1])
    return None


def prng_key(key, name: str = "key") -> jax.Array:
    """A ``jax.random`` key: a typed key (``jax.random.key``), a legacy uint32 key of shape (2,)
    (``jax.random.PRNGKey``), or an integer seed (converted with ``jax.random.PRNGKey(seed)``)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return jax.random.PRNGKey(int(key))
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if jnp.shape(key) != ():
            raise ValueError(f"{name} must be a single PRNG key, got a batch of shape {jnp.shape(key)}")
        return key
    if dtype is not None and np.dtype(dtype) == np.uint32 and jnp.shape(key) == (2,):
        return key
    if dtype is not None and np.dtype(dtype).kind in "iu" and jnp.shape(key) == ():
        return jax.random.PRNGKey(key)
    raise ValueError(
        f"{name} must be a jax.random key (jax.random.PRNGKey(seed) or jax.random.key(seed)) or an integer seed, "
        f"got {_describe(key)}"
    )


def hermitian_matrix(rho, name: str = "rho", what: str = "this observable", tol: float = TOL.observable) -> jax.Array:
    """``check_state`` (square, finite) plus, for concrete input, max |ϱ − ϱ†| ≤ tol · max(1, max|ϱ|)."""
    raw, rho = rho, check_state(rho, name)
    value = host_value(raw, rho)
    if value is not None and value.size:
        error = float(np.max(hermiticity_error(value)))
        if error > tol * max(1.0, float(np.max(np.abs(value)))):
            raise ValueError(f"{name} is not Hermitian: max |rho - rho^†| = {error:.3g}; {what} needs a Hermitian matrix")
    return rho


def check_probabilities(p, name: str = "rho", what: str = "this observable", tol: float = TOL.observable):
    """Eigenvalues ``p`` (..., D) of a density matrix: each ≥ −tol and summing to 1 ± tol (concrete only)."""
    value = np.asarray(p) if is_concrete(p) else None
    if value is None or not value.size:
        return p
    lowest = float(np.min(value))
    if lowest < -tol:
        raise ValueError(f"{name} is not positive semidefinite (smallest eigenvalue {lowest:.3g}); {what} needs a density matrix")
    trace = np.sum(value, axis=-1)
    worst = float(np.ravel(trace)[np.argmax(np.abs(np.ravel(trace) - 1))])
    if abs(worst - 1) > tol:
        raise ValueError(f"{name} must have unit trace (got trace {worst:.10g}); {what} needs a density matrix")
    return p


def check_target(target, prediction_shape: tuple[int, ...], name: str = "target", what: str = "") -> jax.Array:
    """A real, finite ``target`` whose shape broadcasts to ``prediction_shape`` without changing it."""
    target = real_array(target, name)
    value = host_value(target, target)
    if value is not None and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} contains NaN or inf")
    try:
        fits = np.broadcast_shapes(target.shape, prediction_shape) == tuple(prediction_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{name} must have shape {what or tuple(prediction_shape)} to match the prediction "
                         f"of shape {tuple(prediction_shape)}, got {target.shape}")
    return target
