r"""Stopping quantities of the ground-state and passive-state searches, and the scale of H they are judged on.

Pure state ψ (D,): the energy variance Var_ψ(H) = ⟨H²⟩ − ⟨H⟩², computed as ‖(H − ⟨H⟩)ψ‖² (a sum of
squares: no cancellation between ⟨H²⟩ and ⟨H⟩²). By Temple's inequality, when ⟨H⟩ < E1 (the next level),

.. math:: 0 \le \langle H\rangle - E_0 \le \frac{\mathrm{Var}_\psi(H)}{E_1 - \langle H\rangle},

so stopping at Var ≤ tol bounds the energy error by ≈ tol/gap (within the symmetry sector of ψ).

Mixed state ϱ = U diag(λ) U† (U (D, r) orthonormal, λ (r,)): with A = U†HU (r, r) and R = HU − UA (the part
of HU outside the range of U),

.. math:: \tfrac12\|[\varrho, H]\|_F^2 = \sum_j \lambda_j^2\,\|R_{:,j}\|^2
          + \tfrac12\sum_{ij} (\lambda_i - \lambda_j)^2\,|A_{ij}|^2 ,

again a sum of squares, from U and H·U only (ϱ is never formed); it is Var_ψ(H) for ϱ = |ψ⟩⟨ψ|.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..hamiltonians import SpinModel

RESOLUTION_FACTOR = 100.0
r"""Energies are resolved to δ_E = RESOLUTION_FACTOR · ε · ‖H‖ (ε = float64 machine epsilon): the rounding of
one H·ψ is ≈ ε‖H‖ per term. A variance below δ_E² cannot be told from zero, so ``tol`` must be ≥ δ_E²."""


def norm_bound(H) -> jax.Array:
    """An upper bound on the spectral norm ‖H‖₂ (energy units, scalar), cheap and jit-friendly.

    Dense (D, D): min(max row sum of |H_ij|, Frobenius norm), O(D²). :class:`~qllg_jax.SpinModel`: the sum of
    the Frobenius norms of its one- and two-site terms (each ≥ that term's spectral norm; no D×D matrix).
    """
    if isinstance(H, SpinModel):
        terms = H.site_terms() + H.bond_terms()
        return sum((jnp.sqrt(jnp.sum(jnp.abs(h) ** 2)) for h in terms), jnp.zeros(()))
    absolute = jnp.abs(H)
    return jnp.minimum(jnp.max(jnp.sum(absolute, axis=-1)), jnp.sqrt(jnp.sum(absolute**2)))


def energy_resolution(h_norm) -> jax.Array:
    """δ_E = RESOLUTION_FACTOR · ε · ‖H‖ (energy units): the smallest energy difference float64 resolves here."""
    return RESOLUTION_FACTOR * jnp.finfo(jnp.float64).eps * h_norm


def ket_energy_and_variance(psi: jax.Array, h_psi: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(⟨H⟩, ‖(H − ⟨H⟩)ψ‖²) of a normalised ψ (D,) given h_psi = Hψ (D,)."""
    mean = jnp.real(jnp.vdot(psi, h_psi))
    return mean, jnp.sum(jnp.abs(h_psi - mean * psi) ** 2)


def frame_energy_and_commutator(frame: jax.Array, h_frame: jax.Array, weights: jax.Array):
    """(Tr ϱH, ½‖[ϱ, H]‖²_F) of ϱ = U diag(λ) U† from U (D, r), H·U (D, r) and λ (r,) (module docstring)."""
    projected = jnp.conj(frame.T) @ h_frame
    outside = h_frame - frame @ projected
    energy = jnp.sum(weights * jnp.real(jnp.diagonal(projected)))
    gaps = weights[:, None] - weights[None, :]
    commutator = jnp.sum(weights**2 * jnp.sum(jnp.abs(outside) ** 2, axis=0)) + 0.5 * jnp.sum(
        gaps**2 * jnp.abs(projected) ** 2
    )
    return energy, commutator
