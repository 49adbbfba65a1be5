"""The result of a ground-state / passive-state search, and why it stopped."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

CONVERGED, MAX_ITERATIONS, MAX_TIME, NONFINITE, SOLVER_FAILURE = 0, 1, 2, 3, 4
STATUS_REASONS = {
    CONVERGED: "converged (stopping quantity <= tol)",
    MAX_ITERATIONS: "max_iterations / max_steps reached before tol",
    MAX_TIME: "max_time reached before tol",
    NONFINITE: "NaN or inf in the state",
    SOLVER_FAILURE: "ODE solver failure (step size collapsed)",
}
"""``GroundStateResult.status`` codes → reason."""


class GroundStateResult(eqx.Module):
    """Output of :func:`~qllg_jax.ground_state.ground_state` / :func:`~qllg_jax.ground_state.passive_flow`.

    Attributes:
        energy: ⟨H⟩ of the final state (pure: of the normalised ket; mixed: Tr ϱH), energy units E0 (scalar).
        state: final ket ψ (D,) (``ground_state``), density matrix ϱ (D, D) or, for a
            :class:`~qllg_jax.LowRankState` input, a ``LowRankState`` (``passive_flow``).
        variance: final stopping quantity: Var_ψ(H) (pure) or ½‖[ϱ, H]‖²_F (mixed), E0².
        converged: ``variance ≤ tol`` reached (bool scalar); if False, ``reason`` says which cap stopped it.
        status: int code, see :data:`STATUS_REASONS` (0 = converged).
        iterations: Krylov restarts (``method="krylov"``) or accepted ODE steps (flows).
        num_matvecs: applications of H to a vector (``method="krylov"``); −1 for the flows (not counted).
        times: simulated q-LLG time (ħ/E0) at each check, shape (n,), starting with 0. Eagerly these history
            arrays are numpy arrays of the n checks; under ``jax.jit`` they keep their full length, NaN-padded.
        energies: energy at those times, shape (n,).
        variances: stopping quantity at those times, shape (n,).
        kappa: the damping κ used (scalar).
        method: ``"krylov"`` or ``"flow"``.
    """

    energy: jax.Array
    state: object
    variance: jax.Array
    converged: jax.Array
    status: jax.Array
    iterations: jax.Array
    num_matvecs: jax.Array
    times: jax.Array
    energies: jax.Array
    variances: jax.Array
    kappa: jax.Array
    method: str = eqx.field(static=True)

    @property
    def reason(self) -> str:
        """Why the search stopped, in words (needs a concrete ``status``)."""
        return STATUS_REASONS[int(self.status)]


def trim_history(result: GroundStateResult) -> GroundStateResult:
    """Drop the NaN padding of the history arrays when they are concrete (outside ``jax.jit``); they become
    numpy arrays (slicing a device array to a new length would compile a kernel per length)."""
    try:
        times, energies, variances = (np.asarray(x) for x in (result.times, result.energies, result.variances))
    except jax.errors.TracerArrayConversionError:
        return result
    keep = int(np.sum(np.isfinite(times)))
    return eqx.tree_at(
        lambda r: (r.times, r.energies, r.variances), result, (times[:keep], energies[:keep], variances[:keep])
    )
