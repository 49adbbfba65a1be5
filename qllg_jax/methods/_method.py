r"""What every method of :func:`qllg_jax.solve` provides: the contract of a representation of ϱ.

A method is a small :class:`eqx.Module` (its options are static fields) that owns, for ONE trajectory:

- ``initial(state)``: the representation of ϱ0 and constant auxiliary arrays, prepared once on the host from
  :class:`~qllg_jax.methods.InitialState` (arrays keep the batch axes of ϱ0 in front);
- ``vector_field(y, H, kappa, aux, equation)`` (integrating methods) or ``evolve(y0, H, kappa, aux, ts,
  equation)`` (closed forms, ``closed_form = True``): the dynamics;
- ``record(y, H, aux, observables, save_states)``: what is saved per time — the invariants ``trace``,
  ``purity``, ``energy`` and ``representation_error``, the observables and (when ``save_states``) the state;
- ``spectrum_drift(y, y0, aux)``: how far the spectrum of ϱ (conserved by q-LLG) moved from ϱ0 to ϱ: the exact
  largest eigenvalue change (dense), an upper bound of it (frame: Weyl), or the change of ‖ψ‖² (kets).

``H`` arrives as an :class:`~qllg_jax.methods._operator.Operator` (dense when ``needs_dense_H``).
Batching, packing into real arrays, the diffrax call and failure handling are :func:`solve`'s, not the method's.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx


class Method(eqx.Module):
    """Base class of the representations (see the module docstring)."""

    name: ClassVar[str] = ""
    representation: ClassVar[str] = ""
    """Key of the saved state in :class:`~qllg_jax.Result`: ``"states"``, ``"kets"`` or ``"frames"``."""
    packing: ClassVar[str] = "complex"
    closed_form: ClassVar[bool] = False
    needs_dense_H: ClassVar[bool] = False
    needs_host_state: ClassVar[bool] = False
    """The state must be known on the host (its spectrum is taken there), not traced."""
