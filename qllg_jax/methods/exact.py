r"""The exact method: pure states in closed form (paper eq. 28), no time stepping.

.. math:: \psi(t) = e^{-iH_\mathrm{eff}t}\psi_0 / \lVert e^{-iH_\mathrm{eff}t}\psi_0\rVert,
          \qquad H_\mathrm{eff} = (1 - i\kappa)H/(1 + \kappa^2)

with one eigendecomposition of the dense H (D ≲ 256). q-LL and von Neumann through
:func:`~qllg_jax.methods.ket.projector_reduction`.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..exact import propagate_columns
from .ket import Ket, projector_reduction


class Exact(Ket):
    """Kets from eq. 28 (records as :class:`~qllg_jax.methods.Ket`); ``stats`` count no steps."""

    name = "exact"
    closed_form = True
    needs_dense_H = True

    def evolve(self, psi0, H, kappa, aux, ts, equation: str):
        scale, kappa_eff = projector_reduction(equation, kappa)
        psi = propagate_columns(scale * H.matrix(), psi0[:, None], ts - ts[0], kappa_eff)[..., 0]
        return psi / jnp.linalg.norm(psi, axis=-1, keepdims=True)
