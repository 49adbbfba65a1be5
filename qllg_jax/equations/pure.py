r"""q-LLG for pure states as a state-vector equation (ħ = 1):

.. math:: \dot\psi = \frac{-iH\psi - \kappa\,(H - \langle H\rangle)\,\psi}{1 + \kappa^2},
          \qquad \langle H\rangle = \langle\psi|H|\psi\rangle / \langle\psi|\psi\rangle .

ϱ = |ψ⟩⟨ψ| then obeys q-LLG exactly (for pure states q-LLG = q-LL with time rescaled by 1 + κ²).
H enters only through ``apply_H`` (ψ ↦ Hψ), so a :class:`~qllg_jax.SpinModel` is applied matrix-free and
the D×D matrix is never formed. The norm of ψ is conserved by the flow.

``phase_free=True`` replaces −iHψ by −i(H − ⟨H⟩)ψ: the same ϱ(t), without the global phase e^{−i⟨H⟩t}
(whose oscillation the adaptive stepper otherwise has to resolve; fewer steps, used by ``solve``).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_kappa


class PureQLLG(eqx.Module):
    """State-vector q-LLG field ψ ↦ ψ̇ for ψ (D,) (or (D, r) columns, each evolved independently);
    κ dimensionless, H in energy units E0, time in ħ/E0."""

    kappa: jax.Array
    phase_free: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_kappa(self.kappa)

    def __call__(self, psi: jax.Array, apply_H: Callable[[jax.Array], jax.Array]) -> jax.Array:
        h_psi = apply_H(psi)
        mean = jnp.real(jnp.sum(jnp.conj(psi) * h_psi, axis=0)) / jnp.real(jnp.sum(jnp.conj(psi) * psi, axis=0))
        centred = h_psi - mean * psi
        return (-1j * (centred if self.phase_free else h_psi) - self.kappa * centred) / (1 + self.kappa**2)
