r"""The q-LLG frame flow to a steady state, stopped by a diffrax Event inside one compiled solve (ħ = 1).

q-LLG is isospectral: ϱ(t) = U(t) Λ U(t)† with Λ = diag(λ) constant and U (D, r) orthonormal, and
U̇ = −iUK̃ with K̃_ij = (U†HU)_ij / (1 − iκ(λ_i − λ_j)) (zero inside equal-eigenvalue blocks);
:class:`~qllg_jax.equations.FrameQLLG` is the field. A pure state is the frame r = 1, λ = (1,), where the field is
the phase-free state-vector flow ψ̇ = −i(1 − iκ)(H − ⟨H⟩)ψ/(1 + κ²).

The solve runs from t = 0 towards ``max_time`` and stops at the first step where
½‖[ϱ, H]‖²_F ≤ tol (Var_ψ(H) for a pure state), evaluated from U and H·U
(:func:`~qllg_jax.ground_state.measures.frame_energy_and_commutator`, ϱ never formed) by a boolean
``diffrax.Event``; ``max_steps`` caps the number of steps. Energy and stopping quantity are saved at every step.

The field is evaluated at the nearest orthonormal frame U(U†U)^{−1/2} (Löwdin). Evaluated at U itself, the
integrator's drift off U†U = 1 grows exponentially during a long relaxation (random 3-qubit H, full-rank ϱ0,
Tsit5 at rtol 1e−10: max|U†U − 1| = 8e−11 at t = 10, 2e−5 at t = 100, 1 at t = 1000, then inf); at the
orthonormalised frame it stays below 1e−9 up to t = 3000 (an r×r eigh per evaluation).
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._arrays import device_array
from .._integrate import pack_complex, unpack_complex
from ..equations.frame import FrameQLLG
from ..methods._operator import as_operator
from .measures import frame_energy_and_commutator
from .result import CONVERGED, MAX_ITERATIONS, MAX_TIME, NONFINITE, SOLVER_FAILURE, GroundStateResult


def orthonormalise(frame: jax.Array) -> jax.Array:
    """Nearest orthonormal frame U (U†U)^{−1/2} (Löwdin) of U (D, r): removes the integrator's drift."""
    overlap, vectors = jnp.linalg.eigh(jnp.conj(frame.T) @ frame)
    return frame @ ((vectors / jnp.sqrt(overlap)) @ jnp.conj(vectors.T))


@eqx.filter_jit
def frame_flow(H, frame0, weights, kappa, tol, max_time, solver, *, rtol: float, atol: float, max_steps: int,
               progress: bool) -> GroundStateResult:
    """Integrate the frame U (D, r) from ``frame0`` until ½‖[ϱ, H]‖²_F ≤ tol (module docstring).

    Args:
        H: (D, D) array or SpinModel (matrix-free). frame0: orthonormal (D, r). weights: λ (r,).
        kappa, tol, max_time: scalars (traced). solver: a diffrax adaptive solver. rtol, atol, max_steps,
            progress: static options of the solve.

    Returns:
        :class:`GroundStateResult` with ``state`` the final frame U (D, r) (orthonormalised) and the history at
        every accepted step (padded with NaN to ``max_steps + 1``).
    """
    apply_H = as_operator(H, dense=False).apply
    field = FrameQLLG(kappa, weights)

    def measure(frame):
        frame = orthonormalise(frame)
        return frame_energy_and_commutator(frame, apply_H(frame), weights)

    # the field at the nearest orthonormal frame: keeps the integrator's drift off U†U = 1 from growing
    term = diffrax.ODETerm(lambda t, y, args: pack_complex(field(orthonormalise(unpack_complex(y)), apply_H)))
    event = diffrax.Event(lambda t, y, args, **kwargs: measure(unpack_complex(y))[1] <= tol)
    record = lambda t, y, args: (t, *measure(unpack_complex(y)))  # noqa: E731
    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(t0=True, steps=True, fn=record), diffrax.SubSaveAt(t1=True)])
    sol = diffrax.diffeqsolve(
        term, solver, t0=0.0, t1=max_time, dt0=None, y0=pack_complex(frame0), saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps, event=event,
        throw=False, progress_meter=diffrax.TqdmProgressMeter() if progress else diffrax.NoProgressMeter(),
    )
    frame = orthonormalise(unpack_complex(sol.ys[1][0]))
    energy, stop = measure(frame)
    times, energies, stops = (jnp.where(jnp.isfinite(x), x, jnp.nan) for x in sol.ys[0])
    status = jnp.where(sol.result == diffrax.RESULTS.max_steps_reached, MAX_ITERATIONS, SOLVER_FAILURE)
    status = jnp.where(sol.result == diffrax.RESULTS.successful, MAX_TIME, status)
    status = jnp.where(sol.event_mask, CONVERGED, status)
    status = jnp.where(jnp.isfinite(stop), status, NONFINITE)
    steps = sol.stats["num_accepted_steps"]
    return GroundStateResult(
        energy=energy, state=frame, variance=stop, converged=status == CONVERGED, status=status, iterations=steps,
        num_matvecs=device_array(-1),
        times=times, energies=energies, variances=stops, kappa=device_array(kappa, dtype=float), method="flow",
    )
