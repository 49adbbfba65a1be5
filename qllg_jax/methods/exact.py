r"""The exact method: pure states in closed form (paper eq. 28), no time stepping.

.. math:: \psi(t) = e^{-iH_\mathrm{eff}t}\psi_0 / \lVert e^{-iH_\mathrm{eff}t}\psi_0\rVert,
          \qquad H_\mathrm{eff} = (1 - i\kappa)H/(1 + \kappa^2)

with one eigendecomposition of the dense H (D ≲ 256). q-LL and von Neumann through
:func:`~qllg_jax.methods.ket.projector_reduction`. A piecewise-constant driven H (constant + ``pwc`` terms): the
same formula interval by interval between the drive's edges (:func:`~qllg_jax.exact.segmentwise_columns`).
"""

from __future__ import annotations

from ..exact import evolve_columns
from .ket import Ket, projector_reduction


class Exact(Ket):
    """Kets from eq. 28 (records as :class:`~qllg_jax.methods.Ket`); ``stats`` count no steps."""

    name = "exact"
    closed_form = True
    needs_dense_H = True

    def evolve(self, psi0, H, kappa, aux, ts, equation: str):
        scale, kappa_eff = projector_reduction(equation, kappa)
        return evolve_columns(H, psi0[:, None], ts, kappa_eff, scale)[..., 0]
