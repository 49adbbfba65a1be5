r"""Isospectral flows in the eigen-frame: evolve only U in ϱ = U Λ U† (ħ = 1).

q-LLG, q-LL and von Neumann are isospectral: ϱ̇ = −i[K, ϱ] with K Hermitian, so ϱ(t) = U(t) Λ U(t)† with the
eigenvalues Λ = diag(λ_1 … λ_r) constant and U (D, r) orthonormal columns. In a full eigenbasis V = [U, W]
(W spans the kernel, λ = 0 there) the generator K̃ = V†KV is an elementwise multiple of H̃ = V†HV:

.. math:: \tilde K_{ij} = c(\lambda_i - \lambda_j)\,\tilde H_{ij}, \qquad
          c(g) = \begin{cases} 1/(1 - i\kappa g) & \text{q-LLG (paper eq. 3)}\\
                               1 + i\kappa g & \text{q-LL (Wieser)}\\
                               1 & \text{von Neumann} \end{cases}

(q-LLG: from (V†ϱ̇V)_ij = i(λ_i − λ_j)H̃_ij / (1 − iκ(λ_i − λ_j)); q-LL: ϱ̇ = −i[H + iκ[ϱ, H], ϱ]). V̇ = −iVK̃
reproduces ϱ̇, and K̃ is Hermitian, so V stays unitary. Only the first r columns are needed:

.. math:: \dot U = -i\Big[(\mathbb 1 - UU^\dagger)\,HU\,\mathrm{diag}\big(c(-\lambda_j)\big)
          + U\,(M \odot U^\dagger H U)\Big], \qquad M_{ij} = c(\lambda_i - \lambda_j),

the first term from the kernel block (λ = 0 there; absent at full rank r = D) and the second from the range.
K̃ is arbitrary inside blocks of equal eigenvalues (those components commute with ϱ); the **gauge fix** sets
M_ij = 0 there (|λ_i − λ_j| ≤ ``degeneracy_tol``, the diagonal included), so the frame does not spin
needlessly and the adaptive integrator takes fewer steps.

Per evaluation: one H·U (matrix-free for a :class:`~qllg_jax.SpinModel`) and O(D r²) algebra; ϱ (D, D) is
never formed and no eigendecomposition is taken. Columns with λ = 0 may be included (a frame padded to a
common rank): they belong to the kernel block and the formula above still holds.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_kappa
from .._linalg import dagger, matmul

FRAME_EQUATIONS = ("qllg", "qll", "von_neumann")


def generator_factor(gap: jax.Array, kappa: jax.Array, equation: str) -> jax.Array:
    """c(g) of the module docstring: K̃_ij = c(λ_i − λ_j) H̃_ij; ``gap`` of any shape, complex result."""
    if equation == "qllg":
        return 1.0 / (1 - 1j * kappa * gap)
    if equation == "qll":
        return 1 + 1j * kappa * gap
    return jnp.ones(jnp.shape(gap), dtype=complex)


def frame_coupling(weights, kappa, equation: str = "qllg", gauge_fix: bool = True, degeneracy_tol: float = 1e-12):
    """The factors of the frame equation: (M (r, r), kernel factor c(−λ_j) (r,))."""
    gap = weights[:, None] - weights[None, :]
    coupling = generator_factor(gap, kappa, equation)
    if gauge_fix:
        coupling = jnp.where(jnp.abs(gap) <= degeneracy_tol, 0.0, coupling)
    return coupling, generator_factor(-weights, kappa, equation)


class FrameQLLG(eqx.Module):
    """Frame field U ↦ U̇ for U (D, r) orthonormal and ϱ = U diag(weights) U† (see the module docstring).

    Attributes:
        kappa: damping κ ≥ 0 (scalar).
        weights: the eigenvalues λ_j of ϱ carried by the columns, shape (r,), constant in time.
        gauge_fix: zero K̃ inside equal-eigenvalue blocks (default; recommended).
        equation: ``"qllg"`` (default), ``"qll"`` or ``"von_neumann"``.
    """

    kappa: jax.Array
    weights: jax.Array
    gauge_fix: bool = eqx.field(static=True, default=True)
    equation: str = eqx.field(static=True, default="qllg")

    def __check_init__(self):
        check_kappa(self.kappa)

    def __call__(self, frame: jax.Array, apply_H: Callable[[jax.Array], jax.Array]) -> jax.Array:
        coupling, kernel = frame_coupling(self.weights, self.kappa, self.equation, self.gauge_fix)
        h_frame = apply_H(frame)
        projected = matmul(dagger(frame), h_frame)
        inside = matmul(frame, coupling * projected)
        if frame.shape[1] == frame.shape[0]:  # full rank: no kernel block
            return -1j * inside
        return -1j * ((h_frame - matmul(frame, projected)) * kernel[None, :] + inside)


def frame_density_matrix(frame: jax.Array, weights: jax.Array) -> jax.Array:
    """ϱ = U diag(λ) U† from a frame (..., D, r) and weights (..., r); shape (..., D, D). Only for small D."""
    return jnp.einsum("...ir,...r,...jr->...ij", frame, weights.astype(frame.dtype), jnp.conj(frame))
