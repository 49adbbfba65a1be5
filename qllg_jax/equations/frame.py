r"""Low-rank (isospectral) q-LLG: evolve only the eigenvectors of ϱ with nonzero weight (ħ = 1).

q-LLG is isospectral, ϱ̇ = −i[K, ϱ] with K = H + κϱ̇ Hermitian, so ϱ(t) = U(t) Λ U(t)† with the r nonzero
eigenvalues Λ = diag(λ_1 … λ_r) constant and U (D, r) orthonormal columns. In a full eigenbasis V = [U, W]
(W spans the kernel, λ = 0 there) the q-LLG solution of (1 − iκ ad_ϱ)ϱ̇ = i[ϱ, H] is

.. math:: (V^\dagger\dot\varrho V)_{ij} = \frac{i(\lambda_i-\lambda_j)(V^\dagger H V)_{ij}}{1 - i\kappa(\lambda_i-\lambda_j)}
          \;=\; i(\lambda_i-\lambda_j)\,\tilde K_{ij},
          \qquad \tilde K_{ij} = \frac{(V^\dagger H V)_{ij}}{1 - i\kappa(\lambda_i-\lambda_j)},

and V̇ = −iVK̃ reproduces it (K̃ is Hermitian, so V stays unitary). Only the first r columns are needed:

.. math:: \dot U = -i\Big[(\mathbb 1 - UU^\dagger)\,HU\,\mathrm{diag}\big(\tfrac{1}{1 + i\kappa\lambda_j}\big)
          + U\,(M \odot U^\dagger H U)\Big], \qquad M_{ij} = \frac{1}{1 - i\kappa(\lambda_i - \lambda_j)},

the first term from the kernel block (λ = 0 there) and the second from the range. K̃ is arbitrary inside
blocks of equal eigenvalues (those components commute with ϱ); the **gauge fix** sets M_ij = 0 there
(|λ_i − λ_j| ≤ ``degeneracy_tol``, the diagonal included), so the frame does not spin needlessly and the
adaptive integrator takes fewer steps (see ``benchmarks/bench_scaling.py``/tests for the counts).

Per evaluation: one H·U (matrix-free for a :class:`~qllg_jax.SpinModel`) and O(D r²) + r×r algebra;
the D×D matrix ϱ is never formed. For r = 1 this is the pure-state equation up to a global phase.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp


def frame_coupling(weights: jax.Array, kappa: jax.Array, gauge_fix: bool = True, degeneracy_tol: float = 1e-12):
    """The factors of the frame equation: (M (r, r), kernel factor (r,)) — see the module docstring."""
    gap = weights[:, None] - weights[None, :]
    coupling = 1.0 / (1 - 1j * kappa * gap)
    if gauge_fix:
        coupling = jnp.where(jnp.abs(gap) <= degeneracy_tol, 0.0, coupling)
    return coupling, 1.0 / (1 + 1j * kappa * weights)


class FrameQLLG(eqx.Module):
    """Frame field U ↦ U̇ of low-rank q-LLG for U (D, r) orthonormal and ϱ = U diag(weights) U†.

    Attributes:
        kappa: damping κ ≥ 0 (scalar).
        weights: the r nonzero eigenvalues λ_j of ϱ, shape (r,), constant in time.
        gauge_fix: zero K̃ inside equal-eigenvalue blocks (default; recommended).
    """

    kappa: jax.Array
    weights: jax.Array
    gauge_fix: bool = eqx.field(static=True, default=True)

    def __call__(self, frame: jax.Array, apply_H: Callable[[jax.Array], jax.Array]) -> jax.Array:
        coupling, kernel = frame_coupling(self.weights, self.kappa, self.gauge_fix)
        h_frame = apply_H(frame)
        projected = jnp.conj(frame.T) @ h_frame
        outside = h_frame - frame @ projected
        return -1j * (outside * kernel[None, :] + frame @ (coupling * projected))


def frame_density_matrix(frame: jax.Array, weights: jax.Array) -> jax.Array:
    """ϱ = U diag(λ) U† from a frame (..., D, r) and weights (r,); shape (..., D, D). Only for small D."""
    return jnp.einsum("...ir,r,...jr->...ij", frame, weights.astype(frame.dtype), jnp.conj(frame))
