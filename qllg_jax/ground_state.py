r"""Ground-state search by q-LLG damping, and the passive state of mixed states as its mixed-state limit.

For a pure state q-LLG is the state-vector flow (:class:`~qllg_jax.equations.PureQLLG`, ħ = 1)

.. math:: \dot\psi = \frac{-iH\psi - \kappa\,(H - \langle H\rangle)\,\psi}{1 + \kappa^2},

which preserves the norm (and the spectrum of ϱ = |ψ⟩⟨ψ|) and lowers the energy,
dE/dt = −2κ/(1 + κ²) · Var_ψ(H). In the eigenbasis of H the amplitudes obey
|c_i/c_0|(t) = |c_i/c_0|(0) · exp(−κ/(1 + κ²) (E_i − E_0) t), so ψ converges to the ground state at the rate
κ/(1 + κ²)·gap — fastest at κ = 1 (rate gap/2; the energy variance then decays as e^{−gap·t}) — provided
the initial state overlaps the ground state. A generic random ket does (the default); a product state can be
orthogonal to it by symmetry (e.g. |↑…↑⟩ has S_z = N/2 while a Heisenberg ground state has S_z = 0), and
then the flow stops in the lowest state of that symmetry sector.

Stopping rule: integrate in chunks of simulation time and stop once Var_ψ(H) = ⟨H²⟩ − ⟨H⟩² ≤ ``tol``
(for a gap Δ the energy error is then ≲ tol/Δ). H is a dense (D, D) matrix or a
:class:`~qllg_jax.SpinModel` applied matrix-free (the D×D matrix is never formed).

Mixed states (:func:`passive_flow`): q-LLG conserves the spectrum λ of ϱ; its stable fixed points commute
with H and the generic long-time limit is the passive state Σ λ↓_i |E↑_i⟩⟨E↑_i| with energy Σ λ↓_i E↑_i
(:func:`~qllg_jax.passive_state`, :func:`~qllg_jax.passive_energy`). The stopping rule is then
‖[ϱ, H]‖²_F / 2 ≤ tol (which equals Var(H) for a pure state).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import check_density_matrix, check_hamiltonian, check_kappa, check_ket, check_positive, check_solver
from .hamiltonians import SpinModel
from .solve import solve
from .states import random_ket


class GroundStateResult(eqx.Module):
    """Output of :func:`ground_state` / :func:`passive_flow`.

    Attributes:
        energy: ⟨H⟩ (pure: of the normalised ket; mixed: Tr ϱH) at the end, energy units (scalar).
        state: final ket ψ (D,) (``ground_state``) or density matrix ϱ (D, D) (``passive_flow``).
        variance: final stopping quantity: Var_ψ(H) (pure) or ‖[ϱ, H]‖²_F / 2 (mixed).
        converged: whether ``variance ≤ tol`` was reached before ``max_time`` (bool array).
        times: simulation times of the checks, shape (n,) (ħ/E0), starting with 0.
        energies: energy at those times, shape (n,).
        variances: stopping quantity at those times, shape (n,).
        kappa: the damping used.
    """

    energy: jax.Array
    state: jax.Array
    variance: jax.Array
    converged: jax.Array
    times: jax.Array
    energies: jax.Array
    variances: jax.Array
    kappa: float = eqx.field(static=True)


def _apply(H):
    return H.apply if isinstance(H, SpinModel) else (lambda psi: H @ psi)


def energy_and_variance(H, psi) -> tuple[jax.Array, jax.Array]:
    """(⟨H⟩, ⟨H²⟩ − ⟨H⟩²) of the normalised ket ψ (D,); H a (D, D) array or a SpinModel (matrix-free)."""
    psi = psi / jnp.linalg.norm(psi)
    h_psi = _apply(H)(psi)
    mean = jnp.real(jnp.vdot(psi, h_psi))
    return mean, jnp.maximum(jnp.real(jnp.vdot(h_psi, h_psi)) - mean**2, 0.0)


@eqx.filter_jit
def _pure_chunk(H, psi, dt, *, kappa, rtol, atol, solver):
    """ψ(dt) from ψ under the pure-state q-LLG flow, renormalised (one compilation per H structure)."""
    res = solve(H, psi, jnp.stack([jnp.zeros_like(dt), dt]), kappa, method="pure", save_states=False, rtol=rtol,
                atol=atol, solver=solver, invariant_tol=None)
    psi = res.kets[-1]
    return psi / jnp.linalg.norm(psi)


@eqx.filter_jit
def _mixed_chunk(H, rho, dt, *, kappa, rtol, atol, solver):
    """ϱ(dt) from ϱ under dense q-LLG, re-Hermitised."""
    res = solve(H, rho, jnp.stack([jnp.zeros_like(dt), dt]), kappa, method="dense", rtol=rtol, atol=atol,
                solver=solver, invariant_tol=None)
    rho = res.states[-1]
    return (rho + jnp.conj(rho.T)) / 2


@eqx.filter_jit
def _mixed_measure(H, rho):
    c = rho @ H - H @ rho
    return jnp.real(jnp.trace(rho @ H)), jnp.sum(jnp.abs(c) ** 2) / 2


_energy_and_variance = eqx.filter_jit(lambda H, psi: energy_and_variance(H, psi))


def _check_relaxation(kappa, tol, max_time, chunk_time):
    kappa = float(check_kappa(kappa))
    if kappa == 0:
        raise ValueError("kappa must be > 0 for the flow to relax (κ = 0 is unitary)")
    tol = float(check_positive(tol, "tol"))
    return kappa, tol, check_positive(max_time, "max_time"), check_positive(chunk_time, "chunk_time")


def _relax(step, measure, state, *, kappa, tol, max_time, chunk_time, progress) -> GroundStateResult:
    """Run ``state = step(state, dt)`` in chunks of ``chunk_time`` until ``measure``'s variance ≤ tol."""
    times, energies, variances = [0.0], [], []
    e, v = measure(state)
    energies.append(float(e))
    variances.append(float(v))
    t = 0.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_time, desc="q-LLG relaxation", leave=False)
    while variances[-1] > tol and t < max_time:
        dt = min(chunk_time, max_time - t)
        state = step(state, dt)
        t += dt
        e, v = measure(state)
        times.append(t)
        energies.append(float(e))
        variances.append(float(v))
        if bar is not None:
            bar.update(dt)
            bar.set_postfix(variance=f"{variances[-1]:.2e}")
    if bar is not None:
        bar.close()
    return GroundStateResult(
        energy=jnp.asarray(energies[-1]),
        state=state,
        variance=jnp.asarray(variances[-1]),
        converged=jnp.asarray(variances[-1] <= tol),
        times=jnp.asarray(times),
        energies=jnp.asarray(energies),
        variances=jnp.asarray(variances),
        kappa=kappa,
    )


def ground_state(
    H,
    psi0=None,
    *,
    kappa: float = 1.0,
    tol: float = 1e-10,
    max_time: float = 1e4,
    chunk_time: float = 5.0,
    key: jax.Array | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    solver="tsit5",
    progress: bool = False,
) -> GroundStateResult:
    """Relax a pure state to the ground state of H with the damped q-LLG flow (see the module docstring).

    Args:
        H: Hermitian (D, D) array or a :class:`~qllg_jax.SpinModel` (matrix-free), energy units.
        psi0: initial ket (D,); default a Haar-random ket from ``key`` (generic overlap with the ground state).
        kappa: damping κ > 0; the convergence rate κ/(1 + κ²)·gap is largest at κ = 1.
        tol: stop when the energy variance ⟨H²⟩ − ⟨H⟩² ≤ tol (energy units²).
        max_time: give up after this simulation time (ħ/E0); then ``converged`` is False.
        chunk_time: simulation time between two checks of the stopping rule.
        key: PRNG key for the default ``psi0`` (default ``PRNGKey(0)``).
        rtol, atol, solver: passed to :func:`qllg_jax.solve` (method ``"pure"``). The flow is attracting,
            so integration errors do not accumulate; the ket is renormalised after every chunk.
        progress: tqdm bar over simulation time.

    Returns:
        :class:`GroundStateResult` with ``state`` ψ (D,).
    """
    kappa, tol, max_time, chunk_time = _check_relaxation(kappa, tol, max_time, chunk_time)
    solver = check_solver(solver)
    if isinstance(H, SpinModel):
        dim = H.dim
    else:
        H = check_hamiltonian(H, "H")
        if H.ndim != 2:
            raise ValueError(f"H must be one (D, D) matrix, got shape {H.shape}")
        dim = H.shape[-1]
    if psi0 is None:
        psi0 = random_ket(jax.random.PRNGKey(0) if key is None else key, dim)
    psi0 = check_ket(psi0, "psi0", dim)
    if psi0.ndim != 1:
        raise ValueError(f"psi0 must be one ket (D,), got shape {psi0.shape}")

    options = dict(kappa=kappa, rtol=rtol, atol=atol, solver=solver)

    def step(psi, dt):
        return _pure_chunk(H, psi, jnp.asarray(dt, dtype=float), **options)

    return _relax(
        step, lambda psi: _energy_and_variance(H, psi), psi0, kappa=kappa, tol=tol, max_time=max_time,
        chunk_time=chunk_time, progress=progress,
    )


def passive_flow(
    H,
    rho0,
    *,
    kappa: float = 1.0,
    tol: float = 1e-10,
    max_time: float = 1e4,
    chunk_time: float = 5.0,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    solver="tsit5",
    progress: bool = False,
) -> GroundStateResult:
    """Relax a mixed state with dense q-LLG to its (generic) limit, the passive state of its spectrum.

    Stops when ‖[ϱ, H]‖²_F / 2 ≤ ``tol``. The energy then approaches Σ λ↓_i E↑_i
    (:func:`~qllg_jax.passive_energy`) for generic ϱ0; non-generic ϱ0 (e.g. commuting with H, or
    orthogonal to a low-lying eigenvector by symmetry) stop at another stationary state. Dense: D ≲ 64.

    Args:
        H: Hermitian (D, D) array or SpinModel; rho0: density matrix (D, D); other arguments as in
        :func:`ground_state`.

    Returns:
        :class:`GroundStateResult` with ``state`` ϱ (D, D).
    """
    kappa, tol, max_time, chunk_time = _check_relaxation(kappa, tol, max_time, chunk_time)
    H = H.matrix() if isinstance(H, SpinModel) else check_hamiltonian(H, "H")
    if H.ndim != 2:
        raise ValueError(f"H must be one (D, D) matrix, got shape {H.shape}")
    rho0 = check_density_matrix(rho0, "rho0", H.shape[-1])
    if rho0.ndim != 2:
        raise ValueError(f"rho0 must be one density matrix (D, D), got shape {rho0.shape}")
    solver = check_solver(solver)

    options = dict(kappa=kappa, rtol=rtol, atol=atol, solver=solver)

    def step(rho, dt):
        return _mixed_chunk(H, rho, jnp.asarray(dt, dtype=float), **options)

    def measure(rho):
        return _mixed_measure(H, rho)

    return _relax(
        step, measure, rho0, kappa=kappa, tol=tol, max_time=max_time, chunk_time=chunk_time, progress=progress
    )
