"""ϱ0 as :func:`qllg_jax.solve` receives it: read, validated and (when known on the host) decomposed ONCE.

Accepted forms (D = the system's dimension, ``...`` batch axes):

- a ket ψ (..., D) — unless the last two axes are (D, D), which always means density matrices;
- kets as columns (..., D, 1): the unambiguous form for a batch of D kets of dimension D;
- density matrices (..., D, D);
- a :class:`LowRankState` (frame U (D, r) and weights (r,)), for large low-rank states never formed densely.

The value is read on the host when it is known — also for a numpy constant closed over inside ``jax.jit``,
which ``jnp.asarray`` would turn into a tracer — so method selection and validation see the same numbers
under eager calls, ``jit``, ``vmap`` and ``grad``. Only a genuinely traced ϱ0 is not inspected.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array
from .._checks import (
    TOL,
    as_array,
    check_finite,
    concrete_value,
    density_matrix_problem,
    host_value,
    ket_problem,
)
from .._guards import check_bytes, dense_bytes

RANK_TOL = 1e-10
"""Eigenvalues ≤ this count as zero (rank) and values closer than this as equal (distinct levels)."""


class LowRankState(eqx.Module):
    """A density matrix given by its eigen-frame: ϱ = U diag(weights) U†, never formed as a D×D matrix.

    Attributes:
        frame: U, shape (D, r), orthonormal columns.
        weights: the nonzero eigenvalues λ, shape (r,), positive, summing to 1.
    """

    frame: jax.Array
    weights: jax.Array

    def __check_init__(self):
        if jnp.ndim(self.frame) != 2 or jnp.shape(self.weights) != (jnp.shape(self.frame)[1],):
            raise ValueError(
                f"LowRankState needs frame (D, r) and weights (r,), got {jnp.shape(self.frame)} and {jnp.shape(self.weights)}"
            )
        frame, weights = concrete_value(self.frame), concrete_value(self.weights)
        if frame is not None and weights is not None:
            if not (np.all(np.isfinite(frame)) and np.all(np.isfinite(weights))):
                raise ValueError("LowRankState contains NaN or inf")
            gram_error = np.max(np.abs(frame.conj().T @ frame - np.eye(frame.shape[1])))
            if gram_error > TOL.state:
                raise ValueError(f"LowRankState.frame columns are not orthonormal: max |U†U - 1| = {gram_error:.3g}")
            if np.any(weights <= 0) or abs(np.sum(weights) - 1) > TOL.state:
                raise ValueError(f"LowRankState.weights must be positive and sum to 1, got {weights}")

    @property
    def dim(self) -> int:
        return self.frame.shape[0]

    @property
    def rank(self) -> int:
        return self.frame.shape[1]

    @classmethod
    def from_density_matrix(cls, rho, tol: float = RANK_TOL) -> LowRankState:
        """Eigen-frame of a concrete (D, D) density matrix, keeping eigenvalues > tol (renormalised)."""
        eigenvalues, vectors = np.linalg.eigh(np.asarray(rho))
        keep = eigenvalues > tol
        weights = eigenvalues[keep] / np.sum(eigenvalues[keep])
        return cls(device_array(vectors[:, keep], dtype=complex), device_array(weights))

    def density_matrix(self) -> jax.Array:
        """ϱ (D, D); only for small D."""
        return (self.frame * self.weights) @ jnp.conj(self.frame.T)


KETS_HINT = "to pass a batch of kets of dimension {d}, give them as columns, shape (..., {d}, 1)"


class InitialState:
    """ϱ0 read once (see the module docstring).

    Attributes:
        kind: ``"ket"`` (``array`` (..., D)), ``"density"`` (``array`` (..., D, D)) or ``"frame"`` (``frame``).
        array: the validated complex array (a tracer when ϱ0 is traced); None for a frame.
        host: its numpy value when known on the host, else None.
        frame: the :class:`LowRankState`, for ``kind == "frame"``.
        dim: D.
    """

    def __init__(self, kind: str, dim: int, array=None, host=None, frame: LowRankState | None = None):
        self.kind, self.dim, self.array, self.host, self.frame = kind, dim, array, host, frame

    @property
    def batch_shape(self) -> tuple[int, ...]:
        if self.kind == "frame":
            return ()
        return tuple(self.array.shape[: -1 if self.kind == "ket" else -2])

    @property
    def known(self) -> bool:
        """The value is known on the host (a frame counts as known when its arrays are concrete)."""
        if self.kind == "frame":
            return concrete_value(self.frame.weights) is not None
        return self.host is not None

    @functools.cached_property
    def eigh(self) -> tuple[np.ndarray, np.ndarray]:
        """Host eigendecomposition (eigenvalues DEScending (..., D), vectors (..., D, D)) of a known density."""
        check_bytes(dense_bytes(self.dim, 3 * max(1, int(np.prod(self.batch_shape)))),
                    f"the eigendecomposition of rho0 (D = {self.dim})")
        values, vectors = np.linalg.eigh(self.host)
        return values[..., ::-1], vectors[..., ::-1]

    def ranks(self) -> np.ndarray:
        """Number of eigenvalues > RANK_TOL per batch element (...,)."""
        if self.kind == "ket":
            return np.ones(self.batch_shape, dtype=int)
        if self.kind == "frame":
            return np.asarray(self.frame.rank)
        return np.sum(self.eigh[0] > RANK_TOL, axis=-1)

    def levels(self) -> np.ndarray:
        """Number of distinct eigenvalues (within RANK_TOL) per batch element (...,) of a known density."""
        values = self.eigh[0]
        return 1 + np.sum(-np.diff(values, axis=-1) > RANK_TOL, axis=-1)


def read_initial_state(rho0, dim: int, name: str = "rho0") -> InitialState:
    """Read and validate ϱ0 for a system of dimension ``dim`` (see the module docstring)."""
    if isinstance(rho0, LowRankState):
        if rho0.dim != dim:
            raise ValueError(f"{name} has dimension {rho0.dim} but the system has dimension {dim}")
        return InitialState("frame", dim, frame=rho0)
    raw, array = rho0, as_array(rho0, name)
    shape = array.shape
    if array.ndim == 0 or shape[-1] != dim and not (array.ndim >= 2 and shape[-2:] == (dim, 1)):
        raise ValueError(
            f"{name} has dimension {shape[-1] if array.ndim else 'none'} but the system has dimension {dim}: "
            f"expected a ket (..., {dim}), kets as columns (..., {dim}, 1) or density matrices (..., {dim}, {dim}), "
            f"got shape {shape}"
        )
    if 0 in shape:
        raise ValueError(f"{name} has an empty axis: shape {shape}")
    host = host_value(raw, array)
    check_finite(array, name, raw)
    if array.ndim >= 2 and shape[-2:] == (dim, 1) and dim > 1:
        kind, array = "ket", array[..., 0]
        host = None if host is None else host[..., 0]
    elif array.ndim >= 2 and shape[-2] == dim:
        kind = "density"
    else:
        kind = "ket"
    if host is not None:
        if kind == "ket":
            problem = ket_problem(host, name)
        else:
            problem = density_matrix_problem(host, name)
            if problem and shape[-2:] == (dim, dim):
                problem += f" (read as density matrices (..., {dim}, {dim}); {KETS_HINT.format(d=dim)})"
        if problem:
            raise ValueError(problem)
    return InitialState(kind, dim, array=array.astype(complex), host=host)
