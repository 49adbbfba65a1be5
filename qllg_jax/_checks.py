"""Input validation shared by every public entry point (checks run before any compute).

Checks on values run only on concrete arrays; under ``jax.jit``/``jax.vmap`` tracing only shapes are checked.
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


def _finite(x, name: str):
    value = concrete_value(x)
    if value is not None and not np.all(np.isfinite(value)):
        raise ValueError(f"{name} contains NaN or inf")


def check_square(x, name: str, dim: int | None = None):
    shape = jnp.shape(x)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name} must be a square matrix of shape (..., d, d), got shape {shape}")
    if dim is not None and shape[-1] != dim:
        raise ValueError(f"{name} has dimension {shape[-1]} but the system has dimension {dim}")


def _hermiticity_error(value: np.ndarray) -> float:
    return float(np.max(np.abs(value - np.conj(np.swapaxes(value, -1, -2)))))


def check_hamiltonian(H, name: str = "H", tol: float = HERMITIAN_TOL) -> jax.Array:
    """Validate a dense Hamiltonian (..., d, d): square, finite, Hermitian. Returns it as complex."""
    H = jnp.asarray(H)
    check_square(H, name)
    _finite(H, name)
    value = concrete_value(H)
    if value is not None:
        err = _hermiticity_error(value)
        if err > tol * max(1.0, float(np.max(np.abs(value)))):
            raise ValueError(f"{name} is not Hermitian: max |H - H^†| = {err:.3g}")
    return H.astype(complex)


def check_density_matrix(rho, name: str = "rho0", dim: int | None = None, tol: float = STATE_TOL) -> jax.Array:
    """Validate a density matrix (..., d, d): square, finite, Hermitian, unit trace, PSD. Returns complex."""
    rho = jnp.asarray(rho)
    check_square(rho, name, dim)
    _finite(rho, name)
    value = concrete_value(rho)
    if value is not None:
        herm = _hermiticity_error(value)
        if herm > tol:
            raise ValueError(f"{name} is not Hermitian: max |rho - rho^†| = {herm:.3g}")
        trace = np.real(np.trace(value, axis1=-2, axis2=-1))
        if np.max(np.abs(trace - 1)) > tol:
            raise ValueError(f"{name} must have unit trace, got trace {trace.ravel()[np.argmax(np.abs(trace - 1))]:.10g}")
        lowest = float(np.min(np.linalg.eigvalsh(value)))
        if lowest < -tol:
            raise ValueError(f"{name} is not positive semidefinite: smallest eigenvalue {lowest:.3g}")
    return rho.astype(complex)


def check_ket(psi, name: str = "psi0", dim: int | None = None, tol: float = STATE_TOL) -> jax.Array:
    """Validate a state vector (..., d): finite, unit norm. Returns complex."""
    psi = jnp.asarray(psi)
    if psi.ndim < 1:
        raise ValueError(f"{name} must be a vector of shape (..., d), got a scalar")
    if dim is not None and psi.shape[-1] != dim:
        raise ValueError(f"{name} has dimension {psi.shape[-1]} but the system has dimension {dim}")
    _finite(psi, name)
    value = concrete_value(psi)
    if value is not None:
        norm = np.linalg.norm(value, axis=-1)
        if np.max(np.abs(norm - 1)) > tol:
            raise ValueError(f"{name} must be normalised, got norm {norm.ravel()[np.argmax(np.abs(norm - 1))]:.10g}")
    return psi.astype(complex)


def check_times(ts, name: str = "ts") -> jax.Array:
    """Validate save times: 1-D, non-empty, finite, strictly increasing."""
    ts = jnp.asarray(ts, dtype=float)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of times, got shape {ts.shape}")
    _finite(ts, name)
    value = concrete_value(ts)
    if value is not None and not np.all(np.diff(value) > 0):
        raise ValueError(f"{name} must be strictly increasing")
    return ts


def check_kappa(kappa, name: str = "kappa") -> jax.Array:
    """Validate the damping κ: real, finite, ≥ 0."""
    kappa = jnp.asarray(kappa)
    if jnp.iscomplexobj(kappa):
        raise ValueError(f"{name} must be real, got a complex value")
    _finite(kappa, name)
    value = concrete_value(kappa)
    if value is not None and np.any(value < 0):
        raise ValueError(f"{name} must be >= 0, got {kappa}")
    return kappa.astype(float)


def check_choice(value: str, choices, name: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(choices)}")
    return value
