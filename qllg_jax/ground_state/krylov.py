r"""The pure-state q-LLG flow evaluated with restarted Lanczos: ground states at Lanczos speed (ħ = 1).

For a pure state q-LLG has the closed form (paper eq. 28)

.. math:: \psi(\tau) \propto e^{-iH_\mathrm{eff}\tau}\psi_0, \qquad H_\mathrm{eff} = \frac{1 - i\kappa}{1 + \kappa^2} H,

so e^{−iH_eff τ} = f(H) with f(E) = exp(−i(1 − iκ)Eτ/(1 + κ²)) is a function of the Hermitian H. One
**restart** evaluates it in the Krylov space K_k(H, ψ) = span{ψ, Hψ, …, H^{k−1}ψ}, k ≤ m:

1. Lanczos, with the three-term recurrence followed by one classical Gram–Schmidt pass against every earlier
   vector (full re-orthogonalisation), builds orthonormal V (k, D) and the tridiagonal T = V^*HV^T (k, k);
   H is applied matrix-free for a :class:`~qllg_jax.SpinModel` (:func:`qllg_jax.methods._operator.as_operator`).
2. T = S diag(θ) S^T (Ritz values θ ascending); ψ(τ) ≈ V^T y with y = S f(θ) S^T e₁, evaluated with the
   energies shifted by the dominant Ritz value θ_ref, in logarithms, so that no exponential overflows:
   y ∝ S [c_k exp(−(κ + i)(θ_k − θ_ref)τ/(1 + κ²))], c_k = S_{1k}.
3. Because HV^T = V^T T + β_k v_{k+1} e_k^T, the new state's variance is known before it is formed:
   Var = ‖(T − E)y‖² + β_k²|y_k|², E = y^T T y. Lanczos stops as soon as this is ≤ tol (or at k = m), so a
   restart costs only the matrix-vector products it needs. The new ψ is normalised; the first Lanczos step of the
   next restart measures it afresh (α₀ = ⟨H⟩, β₀² = ‖(H − ⟨H⟩)ψ‖² = Var), and the stopping rule uses that value.

τ is adaptive: it grows by ``growth`` after every restart in which the energy dropped (in exact arithmetic the
projected flow always lowers the energy) and shrinks by ``growth`` otherwise, and it is capped at the
**saturation time** τ_sat = L(1 + κ²)/(κ(θ₂ − θ₁)), L = 36, beyond which the damping factor
exp(−κ(θ_k − θ₁)τ/(1 + κ²)) ≤ e^{−36} has projected onto the lowest Ritz vector to float64 precision.
With ``tau0=None`` every restart uses τ_sat: the search is then explicitly restarted Lanczos, the τ → ∞ limit
of the flow within each Krylov space, which is the fastest. The reported ``times`` are Σ τ of this
Krylov-projected flow: beyond the Krylov accuracy of the exponential they are not the times at which the exact
flow (eq. 28) reaches the same state, but the fixed points (eigenvectors), the monotone energy and the limit
— the lowest eigenstate of H that ψ0 overlaps — are the same.

Costs per restart: k ≤ m applications of H, O(k·m·D) for the re-orthogonalisation, one m×m eigh per Lanczos
step. The whole search is one ``lax.while_loop`` (restarts) around a ``lax.while_loop`` (Lanczos steps).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._arrays import device_array
from ..methods._operator import as_operator
from .measures import energy_resolution
from .result import CONVERGED, MAX_ITERATIONS, MAX_TIME, NONFINITE, GroundStateResult

SATURATION_EXPONENT = 36.0
"""L: a damping factor e^{−L} ≈ 2e−16 counts as complete (τ_sat above)."""


def flow_coefficients(theta: jax.Array, vectors: jax.Array, tau, kappa) -> jax.Array:
    """y = S f(θ) S^T e₁ (m,), normalised: e^{−iH_eff τ}ψ in the Lanczos basis, f(E) = e^{−i(1−iκ)Eτ/(1+κ²)}.

    θ (m,), S (m, m): eigen-decomposition of T. Shifted by the dominant Ritz value (largest
    |c_k| e^{−κθ_kτ/(1+κ²)}, c = S^T e₁) and evaluated in logarithms: every magnitude is ≤ 1, the dominant one
    is 1, and nothing overflows or divides 0 by 0 (components with c_k = 0 stay 0).
    """
    c = vectors[0]
    log_weight = jnp.log(jnp.abs(c)) - kappa / (1 + kappa**2) * theta * tau
    top = jnp.argmax(log_weight)
    phase = -(theta - theta[top]) * tau / (1 + kappa**2)
    g = jnp.sign(c) * jnp.exp(log_weight - log_weight[top]) * jnp.exp(1j * phase)
    y = vectors @ g
    return y / jnp.linalg.norm(y)


def saturation_time(theta: jax.Array, kappa, resolution) -> jax.Array:
    """τ_sat = L(1 + κ²)/(κ·max(θ₂ − θ₁, δ_E)) (ħ/E0): beyond it the flow in the Krylov space is a projection."""
    return SATURATION_EXPONENT * (1 + kappa**2) / (kappa * jnp.maximum(theta[1] - theta[0], resolution))


class _Lanczos(eqx.Module):
    """State of the Lanczos loop after ``size`` vectors: rows ≥ size of ``basis`` are 0, α there is above the
    spectrum and β there is 0, so the padded (m, m) T is block diagonal and the padding never couples to e₁."""

    basis: jax.Array  # (m, D)
    alpha: jax.Array  # (m,); alpha[0] = ⟨ψ|H|ψ⟩
    beta: jax.Array  # (m − 1,)
    size: jax.Array  # k, int
    residual: jax.Array  # β_k, the coupling of the last vector to the next one
    alive: jax.Array  # no breakdown (β_k > δ_E)
    start_variance: jax.Array  # β_0² = ‖(H − ⟨H⟩)ψ‖², the variance of the start vector
    tau: jax.Array  # the τ used for y
    y: jax.Array  # (m,) coefficients of the flowed state
    variance: jax.Array  # its predicted variance


def lanczos_flow(apply_H, psi, tau_cap, kappa, tol, h_norm, dimension: int) -> _Lanczos:
    """Lanczos from the normalised ψ until the flowed state's predicted variance ≤ tol, breakdown (β ≤ δ_E: the
    Krylov space is invariant) or ``dimension`` vectors (module docstring, steps 1–3).

    The first step gives ⟨H⟩ = α₀ and Var_ψ(H) = β₀² of ψ itself (the flowed state of a one-vector space is ψ):
    a converged ψ costs one H·ψ. ``tau_cap``: the largest τ allowed; τ = min(tau_cap, τ_sat) at each step;
    ``tau_cap = 0`` only evaluates ψ.
    """
    resolution, above_spectrum = energy_resolution(h_norm), 4.0 * h_norm
    m = dimension

    def extend(s: _Lanczos) -> _Lanczos:
        j = s.size
        v = s.basis[j]
        w = apply_H(v)
        a = jnp.real(jnp.vdot(v, w))
        w = w - a * v - s.residual * s.basis[jnp.maximum(j - 1, 0)]  # three-term recurrence (residual = 0 at j = 0)
        w = w - jnp.conj(s.basis @ jnp.conj(w)) @ s.basis  # one full re-orthogonalisation pass
        norm = jnp.linalg.norm(w)
        alpha = s.alpha.at[j].set(a)
        beta = s.beta.at[j - 1].set(s.residual, mode="drop")  # j = 0: index −1 is dropped
        alive = norm > resolution
        basis = s.basis.at[j + 1].set(jnp.where(alive, w / jnp.where(alive, norm, 1.0), 0.0), mode="drop")
        theta, vectors = jnp.linalg.eigh(jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1))
        tau = jnp.minimum(tau_cap, saturation_time(theta, kappa, resolution))
        y = flow_coefficients(theta, vectors, tau, kappa)
        t_y = alpha * y + jnp.concatenate([beta * y[1:], jnp.zeros(1)]) + jnp.concatenate([jnp.zeros(1), beta * y[:-1]])
        energy = jnp.real(jnp.vdot(y, t_y))
        coupling = jnp.where(alive, norm, 0.0)
        variance = jnp.sum(jnp.abs(t_y - energy * y) ** 2) + coupling**2 * jnp.abs(y[j]) ** 2
        start_variance = jnp.where(j == 0, norm**2, s.start_variance)
        return _Lanczos(basis, alpha, beta, j + 1, coupling, alive, start_variance, tau, y, variance)

    def running(s: _Lanczos):
        return (s.size == 0) | ((s.size < m) & s.alive & (s.variance > tol) & (tau_cap > 0))

    start = _Lanczos(
        basis=jnp.zeros((m, psi.shape[0]), dtype=psi.dtype).at[0].set(psi), alpha=jnp.full(m, above_spectrum),
        beta=jnp.zeros(m - 1), size=jnp.zeros((), dtype=int), residual=jnp.zeros(()), alive=device_array(True),
        start_variance=device_array(jnp.inf), tau=jnp.zeros(()), y=jnp.zeros(m, dtype=psi.dtype),
        variance=device_array(jnp.inf),
    )
    return jax.lax.while_loop(running, extend, start)


class _Search(eqx.Module):
    psi: jax.Array  # the accepted state (D,)
    energy: jax.Array  # its ⟨H⟩ (+inf before the first evaluation)
    variance: jax.Array  # its variance
    time: jax.Array  # its simulated time
    candidate: jax.Array  # the flowed state to evaluate next (D,)
    candidate_time: jax.Array
    revisit: jax.Array  # the candidate is the accepted state again (after a rejected step): not recorded
    tau: jax.Array  # cap on the next flow step
    iteration: jax.Array  # Lanczos runs so far
    records: jax.Array  # entries in the history
    matvecs: jax.Array
    done: jax.Array
    finite: jax.Array
    times: jax.Array
    energies: jax.Array
    variances: jax.Array


@eqx.filter_jit
def krylov_search(H, psi0, kappa, tol, max_time, tau0, growth, h_norm, *, dimension: int, max_iterations: int):
    """Restarted-Lanczos q-LLG search (module docstring), one compiled loop with a single H·v site.

    Each pass runs :func:`lanczos_flow` from the candidate state: its first step evaluates the candidate
    (accepted if its energy did not rise by more than δ_E, stop if its variance ≤ tol), the rest builds the next
    candidate e^{−iH_eff τ}ψ. The pass after ``max_iterations`` flow steps, or at ``max_time``, only evaluates.

    Args:
        H: (D, D) array or SpinModel (matrix-free). psi0: normalised ket (D,). kappa, tol, max_time, growth:
            scalars (traced: new values do not recompile). tau0: first τ (ħ/E0), +inf for τ_sat. h_norm: an
            upper bound of ‖H‖ (sets the breakdown and energy-rise thresholds δ_E). dimension: m ≥ 2 (static).
            max_iterations: cap on flow steps (restarts) (static: sets the history length).

    Returns:
        :class:`GroundStateResult` with NaN-padded history of length ``max_iterations + 1``.
    """
    apply_H = as_operator(H, dense=False).apply
    resolution = energy_resolution(h_norm)
    psi0 = psi0 / jnp.linalg.norm(psi0)
    history = jnp.full(max_iterations + 1, jnp.nan)
    zero, inf, false = jnp.zeros((), dtype=int), device_array(jnp.inf), device_array(False)
    start = _Search(
        psi=psi0, energy=inf, variance=inf, time=jnp.zeros(()), candidate=psi0, candidate_time=jnp.zeros(()),
        revisit=false, tau=device_array(tau0, dtype=float), iteration=zero, records=zero, matvecs=zero, done=false,
        finite=device_array(True), times=history, energies=history, variances=history,
    )

    def running(c: _Search):
        return ~c.done & c.finite & (c.iteration <= max_iterations) & (c.time < max_time)

    def restart(c: _Search) -> _Search:
        flow_steps_left = c.iteration < max_iterations
        tau_cap = jnp.where(flow_steps_left, jnp.minimum(c.tau, max_time - c.candidate_time), 0.0)
        lanczos = lanczos_flow(apply_H, c.candidate, tau_cap, kappa, tol, h_norm, dimension)
        energy, variance = lanczos.alpha[0], lanczos.start_variance
        finite = jnp.isfinite(energy) & jnp.isfinite(variance)
        accept = (energy <= c.energy + resolution) & finite  # the projected flow never raises the energy
        record = accept & ~c.revisit
        flowed = lanczos.y @ lanczos.basis
        flowed = flowed / jnp.linalg.norm(flowed)
        pick = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
        step = c.candidate_time - c.time
        index = jnp.where(record, c.records, max_iterations + 1)  # out of range: dropped
        return _Search(
            psi=pick(c.candidate, c.psi), energy=pick(energy, c.energy), variance=pick(variance, c.variance),
            time=pick(c.candidate_time, c.time), candidate=pick(flowed, c.psi),
            candidate_time=pick(c.candidate_time + lanczos.tau, c.time), revisit=~accept,
            tau=pick(lanczos.tau * growth, step / growth), iteration=c.iteration + 1,
            records=c.records + record, matvecs=c.matvecs + lanczos.size, done=accept & (variance <= tol),
            finite=finite, times=c.times.at[index].set(c.candidate_time, mode="drop"),
            energies=c.energies.at[index].set(energy, mode="drop"),
            variances=c.variances.at[index].set(variance, mode="drop"),
        )

    final = jax.lax.while_loop(running, restart, start)
    status = jnp.where(final.time >= max_time, MAX_TIME, MAX_ITERATIONS)
    status = jnp.where(final.done, CONVERGED, status)
    status = jnp.where(final.finite, status, NONFINITE)
    return GroundStateResult(
        energy=final.energy, state=final.psi, variance=final.variance, converged=status == CONVERGED, status=status,
        iterations=final.records - 1, num_matvecs=final.matvecs, times=final.times, energies=final.energies,
        variances=final.variances, kappa=device_array(kappa, dtype=float), method="krylov",
    )
