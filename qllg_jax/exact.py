r"""Closed-form q-LLG solutions (ħ = 1).

Pure states (paper eq. 28): with H_eff = (1 − iκ) H / (1 + κ²),

.. math:: \psi(t) = e^{-iH_\mathrm{eff}t}\psi_0 / \lVert e^{-iH_\mathrm{eff}t}\psi_0\rVert .

The same holds for any projector P (rank r): the range of P(t) is e^{−iH_eff t}·range(P₀), because for
projectors q-LLG equals q-LL rescaled by 1 + κ². Two-eigenvalue states ϱ = a𝟙 + bP evolve as a𝟙 + bP(t) with
κ → κb (since [ϱ, ·] = b[P, ·]).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._checks import check_density_matrix, check_hamiltonian, check_kappa, check_ket, check_times


def _propagator_columns(H, W0, ts, kappa):
    """e^{−iH_eff t} W0 for each t, with energies shifted so the damping factor never overflows; (T, d, r)."""
    energies, vectors = jnp.linalg.eigh(H)
    energies = energies - energies[0]
    rate = (-1j - kappa) / (1 + kappa**2)
    phases = jnp.exp(rate * ts[:, None] * energies[None, :])
    coeffs = jnp.conj(vectors.T) @ W0
    return jnp.einsum("ij,tj,jr->tir", vectors, phases, coeffs)


def pure_state_exact(H, psi0, ts, kappa) -> jax.Array:
    """Kets ψ(t) of shape (T, d) from eq. 28 for H (d, d), ψ0 (d,), ts (T,), κ ≥ 0 (global phase: that of e^{−iH_eff t})."""
    H = check_hamiltonian(H)
    psi0 = check_ket(psi0, "psi0", H.shape[-1])
    ts, kappa = check_times(ts), check_kappa(kappa)
    psi = _propagator_columns(H, psi0[:, None], ts - ts[0], kappa)[..., 0]
    return psi / jnp.linalg.norm(psi, axis=-1, keepdims=True)


def projector_exact(H, W0, ts, kappa) -> jax.Array:
    """Projectors P(t) (T, d, d) onto span e^{−iH_eff t} W0, for W0 (d, r) with independent columns."""
    W = _propagator_columns(H, W0, ts - ts[0], kappa)
    Q, _ = jnp.linalg.qr(W)
    return Q @ jnp.conj(jnp.swapaxes(Q, -1, -2))


def two_level_split(rho, tol: float = 1e-9):
    """Write ϱ = a𝟙 + bP (b > 0) if its spectrum has exactly two distinct values (within ``tol``).

    Returns (a, b, W) with W (d, r) an orthonormal basis of range(P); raises ValueError otherwise.
    """
    p, v = jnp.linalg.eigh(rho)
    low, high = float(p[0]), float(p[-1])
    if high - low <= tol:
        raise ValueError("rho is proportional to the identity: it does not evolve")
    is_high = jnp.abs(p - high) <= tol
    is_low = jnp.abs(p - low) <= tol
    if not bool(jnp.all(is_high | is_low)):
        raise ValueError(f"rho has more than two distinct eigenvalues: {p}")
    return low, high - low, v[:, is_high]


def two_level_exact(H, rho0, ts, kappa) -> jax.Array:
    """ϱ(t) (T, d, d) for ϱ0 = a𝟙 + bP (e.g. Werner states) using the projector solution with κ → κb."""
    H = check_hamiltonian(H)
    rho0 = check_density_matrix(rho0, "rho0", H.shape[-1])
    ts, kappa = check_times(ts), check_kappa(kappa)
    a, b, W0 = two_level_split(rho0)
    P = projector_exact(H, W0, ts, kappa * b)
    return a * jnp.eye(H.shape[-1]) + b * P
