r"""What :func:`~qllg_jax.solve` returns and raises: :class:`Result`, its :class:`Diagnostics`, :class:`SolveError`
and :class:`InvariantWarning` (warned by :func:`warn_invariants` when a concrete result's invariants drift)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._arrays import is_concrete
from ._guards import check_bytes, dense_bytes
from .equations.frame import frame_density_matrix

STATES_MAX_DIM = 2048
"""``Result.states`` built from kets / frames: only up to this D (a (…, T, D, D) array)."""


class SolveError(RuntimeError):
    """An integration that did not reach the final time (max_steps, step-size collapse, NaN)."""


class Diagnostics(eqx.Module):
    """Invariant checks of one solve, each of shape (...,) = the batch shape (0 for exact q-LLG dynamics).

    Attributes:
        trace_error: max over saves |Tr ϱ(t) − Tr ϱ(0)|.
        hermiticity_error: max over saves of the representation error: |ϱ − ϱ†| (dense states), |U†U − 𝟙|
            (frames) or |⟨ψ|ψ⟩ − 1| (kets).
        purity_drift: max over saves |Tr ϱ²(t) − Tr ϱ²(0)|.
        spectrum_drift: max_i |λ_i(ϱ(t_end)) − λ_i(ϱ0)| (dense and two-level: exact; frame: its upper bound
            ‖W^½(U†U − U0†U0)W^½‖_F by Weyl's inequality; kets: |‖ψ‖² − ‖ψ0‖²|).
        energy_increase: largest rise of Tr(ϱH) between consecutive saves (≤ 0 for damped flows).
    """

    trace_error: jax.Array
    hermiticity_error: jax.Array
    purity_drift: jax.Array
    spectrum_drift: jax.Array
    energy_increase: jax.Array

    def as_dict(self) -> dict[str, float]:
        """Field name → its maximum over the batch (a Python float; NaN where not measurable)."""
        return {k: float(np.max(np.asarray(v))) for k, v in vars(self).items()}

    def check(self, tol: float = 1e-6) -> list[str]:
        """Names of the invariants violated by more than ``tol``."""
        return [k for k, v in self.as_dict().items() if np.isfinite(v) and v > tol]


class Result(eqx.Module):
    """Output of :func:`solve`; the batch axes (...) of H, ϱ0 and κ lead every array.

    Attributes:
        ts: save times, shape (T,).
        states: ϱ(t), shape (..., T, D, D): stored by the ``dense`` and ``two_level`` methods, built on access
            from ``kets`` / ``frames`` otherwise (D ≤ :data:`STATES_MAX_DIM`); None with ``save_states=False``.
        kets: ψ(t), shape (..., T, D), for ``ket`` / ``exact`` (ϱ = |ψ⟩⟨ψ|), else None.
        frames: U(t), shape (..., T, D, r), for ``frame`` (ϱ = U diag(weights) U†), else None.
        weights: the constant eigenvalues carried by the frame, shape (..., r), for ``frame``, else None.
        observables: dict name → array (..., T, *shape) of the requested observables.
        invariants: dict with ``trace``, ``purity``, ``energy`` (Tr ϱH, energy units) and
            ``representation_error`` (see :class:`Diagnostics`), each (..., T).
        stats: dict with ``num_steps``, ``num_accepted_steps``, ``num_rejected_steps`` (0 for the closed
            forms; shared by a batch integrated as one ODE), ``t_reached`` (the time the integration got to;
            NaN with ``gradient="backsolve"``) and ``failure`` (a :class:`~qllg_jax._failures.Failure`
            code: 0 success), each (...,).
        success: bool (...,): the trajectory reached ts[-1] with finite output and valid inputs.
        method: the method that ran (``"dense"``, ``"frame"``, ``"ket"``, ``"exact"``, ``"two_level"``).
    """

    ts: jax.Array
    observables: dict
    invariants: dict
    stats: dict
    success: jax.Array
    kets: jax.Array | None
    frames: jax.Array | None
    weights: jax.Array | None
    stored_states: jax.Array | None
    checks: Diagnostics
    method: str = eqx.field(static=True, default="dense")

    @property
    def states(self) -> jax.Array | None:
        if self.stored_states is not None:
            return self.stored_states
        source = self.kets if self.kets is not None else self.frames
        if source is None:
            return None
        dim = source.shape[-1] if self.kets is not None else source.shape[-2]
        if dim > STATES_MAX_DIM:
            raise ValueError(f"Result.states: D = {dim} > STATES_MAX_DIM = {STATES_MAX_DIM}; use Result.kets / "
                             "Result.frames (the dense ϱ(t) would not fit)")
        check_bytes(dense_bytes(dim, math.prod(source.shape[:-2 if self.kets is not None else -3])),
                    f"Result.states ({source.shape[:-1 if self.kets is not None else -2]} states of D = {dim})")
        if self.kets is not None:
            return _kets_to_states(self.kets)
        return _frames_to_states(self.frames, self.weights)

    def diagnostics(self) -> Diagnostics:
        """Invariant drifts of this run (:class:`Diagnostics`, each field of shape (...,) = the batch shape)."""
        return self.checks


@jax.jit
def _kets_to_states(kets):
    return kets[..., :, None] * jnp.conj(kets[..., None, :])


@jax.jit
def _frames_to_states(frames, weights):
    return frame_density_matrix(frames, weights[..., None, :])


class InvariantWarning(UserWarning):
    """An invariant of a q-LLG solve (trace, hermiticity, spectrum, energy) drifted beyond ``invariant_tol``."""


def warn_invariants(diagnostics, tol: float | None, where: str = "solve", scales=None, stacklevel: int = 3) -> list[str]:
    """Warn with :class:`InvariantWarning` when a concrete ``Diagnostics`` exceeds ``tol`` (None: off).

    ``scales``: optional dict name → scale; that invariant is compared with ``tol * scale`` (e.g. the
    energy rise relative to max(1, |E|)). Returns the names of the violated invariants ([] when traced
    or disabled).
    """
    import warnings

    if tol is None or not is_concrete(diagnostics):
        return []
    values = diagnostics.as_dict()
    scales = scales or {}
    bad = [k for k, v in values.items() if np.isfinite(v) and v > tol * scales.get(k, 1.0)]
    if bad:
        detail = ", ".join(f"{k} = {values[k]:.3g}" for k in bad)
        warnings.warn(
            f"{where}: invariant drift above invariant_tol = {tol:.3g}: {detail}; "
            "hint: tighten rtol/atol or use a higher-order solver (e.g. solver='dopri8')",
            InvariantWarning,
            stacklevel=stacklevel,
        )
    return bad
