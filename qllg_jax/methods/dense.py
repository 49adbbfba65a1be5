r"""The dense method: ϱ (D, D) integrated with the general linear solve of q-LLG on every step.

.. math:: (1 - i\kappa\,\mathrm{ad}_\varrho)\,\dot\varrho = i[\varrho, H]

(q-LL and von Neumann: their explicit right-hand sides). Any state, also a traced ϱ0; cost per step
O(D³) (``strategy="eigen"``) to O(D⁶) (``"kron"``). The reference every other method is tested against.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..equations import EQUATIONS, STRATEGIES  # noqa: F401  (STRATEGIES: the choices of `strategy`)
from ._method import Method
from .initial_state import InitialState


def density_invariants(rho: jax.Array, H) -> dict:
    """trace, purity Σ|ϱ_ij|², energy Re Tr(ϱH) and representation error max |ϱ − ϱ†| of ϱ (D, D)."""
    return {
        "trace": jnp.real(jnp.trace(rho)),
        "purity": jnp.sum(jnp.abs(rho) ** 2),
        "energy": jnp.real(jnp.sum(rho * H.matrix().T)),
        "representation_error": jnp.max(jnp.abs(rho - jnp.conj(rho.T))),
    }


class Dense(Method):
    """ϱ (D, D) with the linear solve ``strategy``: ``"auto"`` (= ``"eigen"``), ``"eigen"``, ``"kron"``, ``"krylov"``
    (see :mod:`qllg_jax.equations.resolvent`)."""

    strategy: str = eqx.field(static=True, default="auto")
    name = "dense"
    representation = "states"
    packing = "hermitian"
    needs_dense_H = True

    def initial(self, state: InitialState):
        if state.kind == "frame":
            return state.frame.density_matrix(), {}
        if state.kind == "ket":
            psi = state.array
            return psi[..., :, None] * jnp.conj(psi[..., None, :]), {}
        return state.array, {}

    def vector_field(self, rho, H, kappa, aux, equation: str):
        options = {"strategy": self.strategy} if equation == "qllg" else {}
        return EQUATIONS[equation](kappa, **options)(rho, H.matrix())

    def record(self, rho, H, aux, observables, save_states: bool) -> dict:
        out = {"invariants": density_invariants(rho, H), "observables": observables.of_density(rho)}
        if save_states:
            out["states"] = rho
        return out

    def spectrum_drift(self, rho, rho0, aux):
        return jnp.max(jnp.abs(jnp.linalg.eigvalsh(rho) - jnp.linalg.eigvalsh(rho0)))
