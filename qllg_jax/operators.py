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


def _check_spin(s: float) -> float:
    two_s = 2 * float(s)
    if not (two_s > 0 and abs(two_s - round(two_s)) < 1e-12):
        raise ValueError(f"spin s must be a positive multiple of 1/2, got {s!r}")
    return round(two_s) / 2


def spin_dim(s: float) -> int:
    """Hilbert-space dimension 2s + 1 (an int) of one spin s (a positive multiple of 1/2)."""
    return round(2 * _check_spin(s)) + 1


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
    """
    return jnp.asarray(_spin_matrices_np(_check_spin(s)))


def pauli_matrices() -> jnp.ndarray:
    """Pauli matrices (σ_x, σ_y, σ_z) = 2 S for s = 1/2; shape (3, 2, 2)."""
    return 2 * spin_matrices(0.5)


def site_dims(spins: Sequence[float]) -> tuple[int, ...]:
    """Local dimensions (2s_k + 1 for each site k)."""
    return tuple(spin_dim(s) for s in spins)


def embed(op, site: int, dims: Sequence[int]) -> jnp.ndarray:
    """Embed a one-site operator ``op`` (d_site, d_site), or a stack (..., d_site, d_site), at ``site``.

    Returns 𝟙 ⊗ … ⊗ op ⊗ … ⊗ 𝟙 of shape (..., D, D) with D = prod(dims).
    """
    dims = tuple(dims)
    if not 0 <= site < len(dims):
        raise ValueError(f"site {site} out of range for {len(dims)} sites")
    op = jnp.asarray(op)
    if op.shape[-2:] != (dims[site], dims[site]):
        raise ValueError(f"operator of shape {op.shape[-2:]} does not fit site {site} of dimension {dims[site]}")
    left = jnp.eye(math.prod(dims[:site]))
    right = jnp.eye(math.prod(dims[site + 1 :]))
    kron3 = lambda o: jnp.kron(jnp.kron(left, o), right)  # noqa: E731
    batch = op.shape[:-2]
    flat = op.reshape((-1,) + op.shape[-2:])
    out = jnp.stack([kron3(o) for o in flat])
    return out.reshape(batch + out.shape[-2:])


def site_spin_operators(spins: Sequence[float]) -> list[jnp.ndarray]:
    """Embedded spin vectors: a list over sites of arrays (3, D, D) holding S_k = (S_kx, S_ky, S_kz)."""
    dims = site_dims(spins)
    return [embed(spin_matrices(s), k, dims) for k, s in enumerate(spins)]
