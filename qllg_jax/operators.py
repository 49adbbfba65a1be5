"""Spin operators for any spin quantum number s, and their embedding into N-site systems.

Conventions: ħ = 1; basis of one site ordered m = +s, s−1, …, −s (so for s = 1/2 the basis is
|↑⟩, |↓⟩ with σ_z|↑⟩ = +|↑⟩); many-site basis is the Kronecker product, site 0 leftmost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import jax.numpy as jnp
import numpy as np

from ._arrays import device_array, is_concrete
from ._checks import check_dims, check_spin, check_spins
from ._guards import check_bytes, dense_bytes


def spin_dim(s: float) -> int:
    """Hilbert-space dimension 2s + 1 (a Python int) of one spin s (a finite positive multiple of 1/2)."""
    return round(2 * check_spin(s)) + 1


@lru_cache(maxsize=64)
def _spin_matrices_np(s: float) -> np.ndarray:
    d = spin_dim(s)
    m = s - np.arange(d)
    # ⟨m+1|S₊|m⟩ = sqrt(s(s+1) − m(m+1)); S₊ raises m, i.e. moves one row up in our ordering.
    s_plus = np.diag(np.sqrt(s * (s + 1) - m[1:] * (m[1:] + 1)), k=1).astype(complex)
    s_x = (s_plus + s_plus.conj().T) / 2
    s_y = (s_plus - s_plus.conj().T) / 2j
    s_z = np.diag(m).astype(complex)
    return np.stack([s_x, s_y, s_z])


def spin_matrices(s: float) -> jnp.ndarray:
    """Spin operators (S_x, S_y, S_z) for spin ``s`` (ħ = 1).

    Returns:
        complex array of shape (3, 2s+1, 2s+1), with [S_x, S_y] = i S_z.

    Raises:
        ValueError: ``s`` is not a positive multiple of 1/2. SizeError: the three matrices (and their
        NumPy construction copies) would exceed the memory limit (:func:`qllg_jax.set_memory_limit`).
    """
    s = check_spin(s)
    check_bytes(dense_bytes(spin_dim(s), count=6), f"spin_matrices(s = {s:g}) (dimension {spin_dim(s)})")
    return device_array(_spin_matrices_np(s))


def pauli_matrices() -> jnp.ndarray:
    """Pauli matrices (σ_x, σ_y, σ_z) = 2 S for s = 1/2; shape (3, 2, 2)."""
    return 2 * spin_matrices(0.5)


def site_dims(spins: Sequence[float]) -> tuple[int, ...]:
    """Local dimensions (2s_k + 1 for each site k), Python ints."""
    return tuple(spin_dim(s) for s in spins)


MATRIX_FREE_HINT = (
    "use the matrix-free SpinModel.apply(psi), or solve(model, ket, ts, method='ket'), which never form a D x D matrix"
)


def embed(op, site: int, dims: Sequence[int]) -> jnp.ndarray:
    """Embed a one-site operator ``op`` (d_site, d_site), or a stack (..., d_site, d_site), at ``site``.

    Returns 𝟙 ⊗ … ⊗ op ⊗ … ⊗ 𝟙 of shape (..., D, D) with D = prod(dims) (a Python int: no overflow).
    Raises SizeError when the peak, 2 × (batch) + 1 complex D × D arrays (result, stacking copy, identities;
    measured 2.2 for one operator at D = 4096), would exceed the memory limit.
    """
    dims = check_dims(dims)
    if isinstance(site, bool) or not isinstance(site, (int, np.integer)) or not 0 <= site < len(dims):
        raise ValueError(f"site {site!r} out of range for {len(dims)} sites (need an integer in [0, {len(dims)}))")
    if isinstance(op, (str, bytes)) or op is None:
        raise ValueError(f"op must be a matrix (d, d) or a stack (..., d, d), got {type(op).__name__}")
    op = np.asarray(op) if is_concrete(op) else jnp.asarray(op)  # host operators are embedded with numpy
    if op.ndim < 2 or op.shape[-2:] != (dims[site], dims[site]):
        raise ValueError(f"op: operator of shape {op.shape} does not fit site {site} of dimension {dims[site]}")
    dim, count = math.prod(dims), math.prod(op.shape[:-2])
    check_bytes(dense_bytes(dim, count=2 * count + 1), f"embed(...) of {count} operator(s) into D = {dim}", MATRIX_FREE_HINT)
    xp = np if isinstance(op, np.ndarray) else jnp
    left = np.eye(math.prod(dims[:site]))
    right = np.eye(math.prod(dims[site + 1 :]))
    kron3 = lambda o: xp.kron(xp.kron(left, o), right)  # noqa: E731
    batch = op.shape[:-2]
    flat = op.reshape((-1,) + op.shape[-2:])
    out = xp.stack([kron3(o) for o in flat])
    return device_array(out.reshape(batch + out.shape[-2:]))


def site_spin_operators(spins: Sequence[float]) -> list[jnp.ndarray]:
    """Embedded spin vectors: a list over sites of arrays (3, D, D) holding S_k = (S_kx, S_ky, S_kz).

    Raises SizeError before building any when the 3N matrices of dimension D = Π(2s_k + 1) and 3 temporaries
    (measured 39.4 D × D arrays for N = 12) would exceed the memory limit.
    """
    spins = check_spins(spins)
    dims = site_dims(spins)
    dim = math.prod(dims)
    check_bytes(
        dense_bytes(dim, count=3 * len(dims) + 3),
        f"site_spin_operators for {len(dims)} sites (3N = {3 * len(dims)} matrices of D = {dim})",
        MATRIX_FREE_HINT,
    )
    return [embed(spin_matrices(s), k, dims) for k, s in enumerate(spins)]
