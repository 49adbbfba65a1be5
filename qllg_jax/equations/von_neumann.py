r"""The Liouville–von Neumann equation, ħ = 1: :math:`\dot\varrho = -i[H, \varrho]` (q-LLG at κ = 0)."""

from __future__ import annotations

import equinox as eqx
import jax

from .._checks import check_kappa

from .resolvent import commutator


class VonNeumann(eqx.Module):
    """Undamped vector field ϱ ↦ i[ϱ, H] for ϱ, H (d, d) → (d, d); ``kappa`` is accepted and ignored so all
    equations share a signature."""

    kappa: jax.Array = 0.0

    def __check_init__(self):
        check_kappa(self.kappa)

    def __call__(self, rho: jax.Array, H: jax.Array) -> jax.Array:
        return 1j * commutator(rho, H)
