"""Inputs as arrays: host values stay numpy, JAX arrays and tracers stay JAX, ``qutip.Qobj`` becomes its matrix.

The leaf under every input check (:mod:`qllg_jax._checks`): whether a value is concrete (known on the host) or
traced, its numpy value for value checks, and the conversion of ``qutip.Qobj`` inputs without importing qutip.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def device_array(x, dtype=None):
    """``jnp.asarray(x, dtype)`` without a compiled program for host data: a numpy array (or a nested list/tuple of
    numbers) is converted by numpy and transferred with ``jax.device_put``. (``jnp.asarray`` of a numpy array compiles
    a small ``stage`` program per new shape and dtype, ≈ 18 ms each on CPU; eagerly, a few dozen of them made a
    first solve's set-up slower than its integration.) JAX arrays, tracers and Python scalars (weakly typed) go
    through ``jnp.asarray`` unchanged."""
    if isinstance(x, np.ndarray) or (isinstance(x, (list, tuple)) and is_concrete(x)
                                     and not any(isinstance(v, jax.Array) for v in jax.tree_util.tree_leaves(x))):
        value = np.asarray(x, dtype=dtype)
        if value.dtype.kind in "biufc":
            return jax.device_put(value)
    return jnp.asarray(x, dtype=dtype)


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
