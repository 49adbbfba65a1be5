"""The Hamiltonian as the methods use it: a dense matrix or matrix-free local terms, for ONE trajectory.

:func:`as_operator` turns H — a (D, D) array or a :class:`~qllg_jax.SpinModel` — into an
:class:`Operator` once, before the time loop (a SpinModel's one- and two-site terms are built here, not on
every vector-field evaluation). ``apply`` maps ψ (D,) or U (D, r) to Hψ / HU; ``matrix()`` is the dense H.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._arrays import device_array
from .._linalg import matmul
from ..hamiltonians import SpinModel, apply_local_terms


EXACT_WIDTH_MAX_DIM = 256
"""Up to this D the spectral width is exact: one eigvalsh of the dense H per solve (a SpinModel is applied to
the identity first), only when differentiating."""


class Operator(eqx.Module):
    """H for one trajectory: ``dense`` (D, D), or the local terms of a SpinModel (``dense`` is None)."""

    dense: jax.Array | None
    site_terms: list | None = None
    bond_terms: list | None = None
    dims: tuple[int, ...] = eqx.field(static=True, default=())
    bonds: tuple[tuple[int, int], ...] = eqx.field(static=True, default=())

    @property
    def dim(self) -> int:
        if self.dense is not None:
            return self.dense.shape[-1]
        out = 1
        for d in self.dims:
            out *= d
        return out

    def apply(self, x: jax.Array) -> jax.Array:
        """Hx for x (D,) or (D, r)."""
        if self.dense is not None:
            return matmul(self.dense, x)
        return apply_local_terms(self.dims, self.bonds, self.site_terms, self.bond_terms, x)

    def spectral_width(self) -> jax.Array:
        """W ≥ E_max − E_min (energy units), shape (): exact for D ≤ :data:`EXACT_WIDTH_MAX_DIM` (eigvalsh of the
        dense H), else the sum of the local terms' widths (SpinModel) or 2‖H − (Tr H/D)𝟙‖_∞ (dense). Caps the
        step size of the integration that derivatives flow through
        (:func:`~qllg_jax._integrate.derivative_step_cap`): a loose bound costs steps, never accuracy."""
        if self.dim <= EXACT_WIDTH_MAX_DIM:
            energies = jnp.linalg.eigvalsh(self.matrix())
            return energies[-1] - energies[0]
        if self.dense is not None:
            shifted = self.dense - jnp.trace(self.dense) / self.dim * jnp.eye(self.dim)
            return 2 * jnp.max(jnp.sum(jnp.abs(shifted), axis=-1))
        widths = [jnp.ptp(jnp.linalg.eigvalsh(term)) for term in [*self.site_terms, *self.bond_terms]]
        return sum(widths) if widths else jnp.zeros(())

    def matrix(self) -> jax.Array:
        """Dense H (D, D)."""
        if self.dense is not None:
            return self.dense
        return self.apply(jnp.eye(self.dim, dtype=complex))


def as_operator(H, dense: bool) -> Operator:
    """An :class:`Operator` from a (D, D) array or an unbatched SpinModel; ``dense=True`` forms the matrix."""
    if isinstance(H, SpinModel):
        local = Operator(None, H.site_terms(), H.bond_terms(), H.dims, H.bonds)
        return Operator(local.matrix()) if dense else local
    return Operator(device_array(H, dtype=complex))
