"""Validation of the inputs of models, states, observables, design and classical LLG (complements ``_checks``).

Each helper raises ``ValueError`` whose message starts with the argument's name, before any compute.
Values are checked only where they are concrete; under ``jax.jit``/``jax.vmap``/``jax.grad`` a traced
argument is checked for dtype and shape only (its value passes).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_state, host_value, is_concrete

OBSERVABLE_TOL = 1e-6
"""Tolerance (relative to max(1, max|ϱ|)) of the hermiticity / positivity / trace checks of observables: loose
enough for integrated states that drifted by rounding (or float32 runs), tight enough to refuse a wrong matrix."""


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
        array = jnp.asarray(value)
    kind = np.dtype(array.dtype).kind
    if kind == "c":
        raise ValueError(f"{name} must be real, got a complex value" + (f"; {hint}" if hint else ""))
    if kind not in "iuf":
        raise ValueError(f"{name} must be an array of real numbers, got {_describe(value)} (dtype {array.dtype})")
    return array.astype(float) if isinstance(array, np.ndarray) else jnp.asarray(array, dtype=float)


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
    if not (math.isfinite(two_s) and two_s > 0 and abs(two_s - round(two_s)) < 1e-12):
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


def hermitian_matrix(rho, name: str = "rho", what: str = "this observable", tol: float = OBSERVABLE_TOL) -> jax.Array:
    """``check_state`` (square, finite) plus, for concrete input, max |ϱ − ϱ†| ≤ tol · max(1, max|ϱ|)."""
    raw, rho = rho, check_state(rho, name)
    value = host_value(raw, rho)
    if value is not None and value.size:
        error = float(np.max(np.abs(value - np.conj(np.swapaxes(value, -1, -2)))))
        if error > tol * max(1.0, float(np.max(np.abs(value)))):
            raise ValueError(f"{name} is not Hermitian: max |rho - rho^†| = {error:.3g}; {what} needs a Hermitian matrix")
    return rho


def check_probabilities(p, name: str = "rho", what: str = "this observable", tol: float = OBSERVABLE_TOL):
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
