r"""The ket method: a pure state ϱ = |ψ⟩⟨ψ| integrated as the state vector ψ (D,), matrix-free.

.. math:: \dot\psi = \frac{-i(H - \langle H\rangle)\psi - \kappa\,(H - \langle H\rangle)\,\psi}{1 + \kappa^2}

(:class:`~qllg_jax.equations.PureQLLG` without the global phase e^{−i⟨H⟩t}, which does not change ϱ but
would cost steps). H enters only through H·ψ, so a :class:`~qllg_jax.SpinModel` never forms the D×D matrix.

For a projector P (pure states, and ϱ = a𝟙 + bP with κ → κb) q-LL equals q-LLG with H → (1 + κ²)H and von
Neumann is κ = 0, so every equation is a (scale of H, κ) pair (:func:`projector_reduction`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..equations.pure import PureQLLG
from ._method import Method
from .frame import frame_invariants
from .initial_state import InitialState


def projector_reduction(equation: str, kappa, b=1.0):
    """(scale of H, κ') such that ϱ = a𝟙 + bP evolves as P under q-LLG with (scale·H, κ')."""
    kappa_eff = kappa * b
    if equation == "qllg":
        return 1.0, kappa_eff
    if equation == "qll":
        return 1.0 + kappa_eff**2, kappa_eff
    return 1.0, jnp.zeros_like(kappa_eff)


def top_eigenvector(state: InitialState):
    """The ket (..., D) of a pure ϱ0 (host eigendecomposition when known, else ``jnp.linalg.eigh``)."""
    if state.kind == "ket":
        return state.array
    if state.kind == "frame":
        return state.frame.frame[:, 0].astype(complex)
    if state.known:
        return np.asarray(state.eigh[1][..., :, 0], dtype=complex)
    return jnp.linalg.eigh(state.array)[1][..., :, -1]


class Ket(Method):
    """ψ (D,) integrated with the phase-free state-vector q-LLG (pure states only)."""

    name = "ket"
    representation = "kets"
    packing = "complex"

    def initial(self, state: InitialState):
        return top_eigenvector(state), {}

    def vector_field(self, psi, H, kappa, aux, equation: str):
        scale, kappa_eff = projector_reduction(equation, kappa)
        return PureQLLG(kappa_eff, phase_free=True)(psi, lambda x: scale * H.apply(x))

    def record(self, psi, H, aux, observables, save_states: bool) -> dict:
        invariants = frame_invariants(psi[:, None], jnp.ones(1), H)
        invariants["representation_error"] = jnp.abs(jnp.real(jnp.vdot(psi, psi)) - 1)
        out = {"invariants": invariants, "observables": observables.of_ket(psi)}
        if save_states:
            out["kets"] = psi
        return out

    def spectrum_drift(self, psi, psi0, aux):
        return jnp.abs(jnp.real(jnp.vdot(psi, psi)) - jnp.real(jnp.vdot(psi0, psi0)))
