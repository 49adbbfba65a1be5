r"""Wieser's quantum Landau–Lifshitz equation (PRL 110, 147201 (2013)), ħ = 1:

.. math:: \dot\varrho = i[\varrho, H] - \kappa\,[\varrho, [\varrho, H]].

For pure states it equals q-LLG with time rescaled by (1 + κ²); for mixed multi-spin states it differs.
"""

from __future__ import annotations

import equinox as eqx
import jax

from .._checks import check_kappa
from .resolvent import commutator


class QLL(eqx.Module):
    """q-LL vector field ϱ ↦ ϱ̇ for dense ϱ (d, d) and H (d, d) (energy units E0; ϱ̇ per ħ/E0; κ dimensionless)."""

    kappa: jax.Array

    def __check_init__(self):
        check_kappa(self.kappa)

    def __call__(self, rho: jax.Array, H: jax.Array) -> jax.Array:
        c = commutator(rho, H)
        return 1j * c - self.kappa * commutator(rho, c)
