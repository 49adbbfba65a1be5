r"""The quantum Landau–Lifshitz–Gilbert equation (Liu et al. 2024, eq. 3), ħ = 1:

.. math:: \dot\varrho = i[\varrho, H] + i\kappa[\varrho, \dot\varrho]
          \;\Longleftrightarrow\; (1 - i\kappa\,\mathrm{ad}_\varrho)\,\dot\varrho = i[\varrho, H].

Each evaluation solves that linear system (see :mod:`.resolvent` for the strategies).
"""

from __future__ import annotations

import equinox as eqx
import jax

from .._checks import check_kappa
from .resolvent import commutator, solve_resolvent


class QLLG(eqx.Module):
    """q-LLG vector field ϱ ↦ ϱ̇ for dense ϱ (d, d) and H (d, d) (energy units E0; ϱ̇ per ħ/E0; κ
    dimensionless ≥ 0); ``strategy`` picks the linear solve."""

    kappa: jax.Array
    strategy: str = eqx.field(static=True, default="auto")

    def __check_init__(self):
        check_kappa(self.kappa)

    def __call__(self, rho: jax.Array, H: jax.Array) -> jax.Array:
        return solve_resolvent(rho, 1j * commutator(rho, H), self.kappa, self.strategy)
