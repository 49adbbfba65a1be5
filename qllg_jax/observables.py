r"""Observables of density matrices ϱ (..., D, D); all functions broadcast over leading batch axes.

Bloch vectors and correlation matrices follow the paper: r_k = Tr(ϱ_k σ), T_kl = Tr(ϱ σ_k⊗σ_l),
B(ϱ) = sqrt(max(u1 + u2 − 1, 0)) with u1 ≥ u2 the two largest eigenvalues of TᵀT (Horodecki CHSH measure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from .operators import pauli_matrices, spin_dim, spin_matrices


def expectation(rho: jax.Array, op: jax.Array) -> jax.Array:
    """Re Tr(ϱ A) for Hermitian A (D, D); shape (...,)."""
    return jnp.real(jnp.einsum("...ij,ji->...", rho, op))


def energy(rho: jax.Array, H: jax.Array) -> jax.Array:
    """Tr(ϱ H) in energy units; shape (...,)."""
    return expectation(rho, H)


def trace(rho: jax.Array) -> jax.Array:
    """Re Tr ϱ; shape (...,)."""
    return jnp.real(jnp.trace(rho, axis1=-2, axis2=-1))


def purity(rho: jax.Array) -> jax.Array:
    """Tr ϱ² (= Σ|ϱ_ij|² for Hermitian ϱ); shape (...,)."""
    return jnp.sum(jnp.abs(rho) ** 2, axis=(-2, -1))


def hermiticity_error(rho: jax.Array) -> jax.Array:
    """max |ϱ − ϱ†|; shape (...,)."""
    return jnp.max(jnp.abs(rho - jnp.conj(jnp.swapaxes(rho, -1, -2))), axis=(-2, -1))


def spectrum(rho: jax.Array) -> jax.Array:
    """Eigenvalues of ϱ in ascending order; shape (..., D)."""
    return jnp.linalg.eigvalsh(rho)


def renyi_entropy(rho: jax.Array, alpha: float = 2.0) -> jax.Array:
    """Rényi entropy S_α = ln Tr ϱ^α / (1 − α), α > 0, α ≠ 1 (nats); shape (...,)."""
    if alpha <= 0 or alpha == 1:
        raise ValueError(f"Renyi order alpha must be > 0 and != 1, got {alpha}; use von_neumann_entropy for 1")
    p = jnp.clip(spectrum(rho), 0.0, None)
    return jnp.log(jnp.sum(p**alpha, axis=-1)) / (1 - alpha)


def von_neumann_entropy(rho: jax.Array) -> jax.Array:
    """S = −Tr ϱ ln ϱ (nats); shape (...,)."""
    p = jnp.clip(spectrum(rho), 0.0, None)
    safe = jnp.where(p > 0, p, 1.0)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(safe), 0.0), axis=-1)


def partial_trace(rho: jax.Array, dims: Sequence[int], keep: Sequence[int]) -> jax.Array:
    """Reduced density matrix on the sites ``keep`` (in increasing order); shape (..., Π d_keep, Π d_keep)."""
    dims, keep = tuple(dims), sorted(keep)
    n = len(dims)
    if math.prod(dims) != rho.shape[-1]:
        raise ValueError(f"dims {dims} do not multiply to the state dimension {rho.shape[-1]}")
    batch = rho.shape[:-2]
    tensor = rho.reshape(batch + dims + dims)
    nb = len(batch)
    for offset, site in enumerate(sorted(set(range(n)) - set(keep), reverse=True)):
        remaining = n - offset
        tensor = jnp.trace(tensor, axis1=nb + site, axis2=nb + remaining + site)
    d_keep = math.prod(dims[k] for k in keep)
    return tensor.reshape(batch + (d_keep, d_keep))


def spin_expectations(rho: jax.Array, spins: Sequence[float]) -> jax.Array:
    """⟨S_k⟩ for every site k (ħ = 1); shape (..., N, 3)."""
    dims = tuple(spin_dim(s) for s in spins)
    out = []
    for k, s in enumerate(spins):
        reduced = partial_trace(rho, dims, [k])
        out.append(jnp.real(jnp.einsum("...ij,aji->...a", reduced, spin_matrices(s))))
    return jnp.stack(out, axis=-2)


def bloch_vectors(rho: jax.Array, spins: Sequence[float] | None = None) -> jax.Array:
    """Normalised spin vectors ⟨S_k⟩/s_k, i.e. Bloch vectors r_k = Tr(ϱ_k σ) for spin 1/2; shape (..., N, 3).

    ``spins`` defaults to all spin-1/2 (N = log2 D).
    """
    if spins is None:
        n = round(math.log2(rho.shape[-1]))
        if 2**n != rho.shape[-1]:
            raise ValueError(f"dimension {rho.shape[-1]} is not a power of 2; pass spins=")
        spins = [0.5] * n
    return spin_expectations(rho, spins) / jnp.asarray(spins)[:, None]


def _two_qubit_check(rho):
    if rho.shape[-2:] != (4, 4):
        raise ValueError(f"this observable needs a two-qubit state of shape (..., 4, 4), got {rho.shape}")


def correlation_matrix(rho: jax.Array) -> jax.Array:
    """Two-qubit correlation matrix T_kl = Tr(ϱ σ_k⊗σ_l); shape (..., 3, 3)."""
    _two_qubit_check(rho)
    sigma = pauli_matrices()
    pairs = jnp.einsum("aij,bkl->abikjl", sigma, sigma).reshape(3, 3, 4, 4)
    return jnp.real(jnp.einsum("...ij,abji->...ab", rho, pairs))


def bell_nonlocality(rho: jax.Array) -> jax.Array:
    """B(ϱ) = sqrt(max(u1 + u2 − 1, 0)), u1 ≥ u2 the largest eigenvalues of TᵀT; in [0, 1]; shape (...,)."""
    t = correlation_matrix(rho)
    u = jnp.linalg.eigvalsh(jnp.swapaxes(t, -1, -2) @ t)
    excess = u[..., -1] + u[..., -2] - 1
    return jnp.sqrt(jnp.where(excess > 0, excess, 0.0))


def concurrence(rho: jax.Array) -> jax.Array:
    """Wootters concurrence of a two-qubit state; shape (...,).

    C = max(0, μ1 − μ2 − μ3 − μ4), μ_i the decreasing eigenvalues of sqrt(√ϱ ϱ̃ √ϱ), ϱ̃ = σ_y⊗σ_y ϱ* σ_y⊗σ_y.
    """
    _two_qubit_check(rho)
    sy = pauli_matrices()[1]
    yy = jnp.kron(sy, sy)
    tilde = yy @ jnp.conj(rho) @ yy
    p, v = jnp.linalg.eigh(rho)
    root = (v * jnp.sqrt(jnp.clip(p, 0.0, None))[..., None, :]) @ jnp.conj(jnp.swapaxes(v, -1, -2))
    mu = jnp.sqrt(jnp.clip(jnp.linalg.eigvalsh(root @ tilde @ root), 0.0, None))
    return jnp.maximum(0.0, mu[..., 3] - mu[..., 2] - mu[..., 1] - mu[..., 0])


def passive_energy(rho: jax.Array, H: jax.Array) -> jax.Array:
    """Lowest energy Σ_i λ_i↓ E_i↑ reachable at ϱ's spectrum (the passive state's energy); shape (...,)."""
    p = spectrum(rho)[..., ::-1]
    return jnp.sum(p * jnp.linalg.eigvalsh(H), axis=-1)


def passive_state(rho: jax.Array, H: jax.Array) -> jax.Array:
    """The passive state Σ_i λ_i↓ |E_i↑⟩⟨E_i↑| (lowest energy with ϱ's spectrum): q-LLG's generic long-time limit."""
    p = spectrum(rho)[..., ::-1]
    _, vectors = jnp.linalg.eigh(H)
    return (vectors * p[..., None, :]) @ jnp.conj(jnp.swapaxes(vectors, -1, -2))
