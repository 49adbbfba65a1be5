r"""Ground-state search by q-LLG damping, and the passive state as its mixed-state limit (ħ = 1, energies in E0,
times in ħ/E0).

Pure states (:func:`ground_state`): q-LLG is ψ̇ = [−iHψ − κ(H − ⟨H⟩)ψ]/(1 + κ²), with the closed form (paper
eq. 28) ψ(τ) ∝ e^{−iH_eff τ}ψ0, H_eff = (1 − iκ)H/(1 + κ²). In the eigenbasis of H the amplitudes obey
|c_i/c_0|(τ) = |c_i/c_0|(0)·exp(−κ(E_i − E_0)τ/(1 + κ²)): ψ converges to the lowest eigenstate that ψ0 overlaps.
``method="krylov"`` (default) evaluates the closed form by restarted Lanczos with adaptive τ
(:mod:`.krylov`); ``method="flow"`` integrates the state-vector ODE (the time-stepping baseline,
:mod:`.frame_flow`). Both stop when Var_ψ(H) = ⟨H²⟩ − ⟨H⟩² ≤ ``tol``; then E − E0 ≤ tol/(E1 − E) ≈ tol/gap
(Temple's inequality, :mod:`.measures`). A random ψ0 (the default) overlaps the ground state; a symmetric one
may not (|↑…↑⟩ has S_z = N/2, a Heisenberg ground state S_z = 0), and the search then ends in the lowest state
of ψ0's symmetry sector.

Mixed states (:func:`passive_flow`): q-LLG conserves the spectrum λ of ϱ; the generic limit is the passive state
Σ λ↓_i |E↑_i⟩⟨E↑_i| with energy Σ λ↓_i E↑_i (:func:`~qllg_jax.passive_energy`). The frame flow ϱ = UΛU†
runs in one compiled diffrax solve until ½‖[ϱ, H]‖²_F ≤ ``tol``.

Every loop is capped (``max_iterations`` restarts, ``max_steps`` ODE steps, ``max_time``); a capped search
returns ``converged=False`` with ``reason``. Both functions run eagerly (host-side checks first, then one
compiled function) and under ``jax.jit`` with traced H, ψ0/ϱ0 and κ (value checks on traced inputs are skipped,
the history arrays keep their NaN padding); tolerances, caps and τ options are Python numbers (checked on the
host, passed to the compiled function as arrays, so new values do not recompile).
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp

from .._arrays import device_array
from .._checks import (
    as_array,
    check_choice,
    check_density_matrix,
    check_flag,
    check_hamiltonian,
    check_kappa,
    check_ket,
    check_positive,
    check_solver,
    concrete_value,
)
from .._guards import check_bytes
from .._options import DEFAULTS
from ..methods import RANK_TOL, LowRankState
from ..methods._operator import as_operator
from ..hamiltonians import SpinModel
from ..states import random_ket
from .frame_flow import frame_flow
from .krylov import krylov_search
from .measures import energy_resolution, ket_energy_and_variance, norm_bound
from .result import STATUS_REASONS, GroundStateResult, trim_history

__all__ = ["GroundStateResult", "STATUS_REASONS", "energy_and_variance", "ground_state", "passive_flow"]

GROUND_STATE_METHODS = ("krylov", "flow")
FLOW_MAX_TIME = 1e4
"""Default ``max_time`` (ħ/E0) of the flows; the Krylov search has no time cap by default."""


@eqx.filter_jit
def energy_and_variance(H, psi) -> tuple[jax.Array, jax.Array]:
    """(⟨H⟩, ⟨H²⟩ − ⟨H⟩²) of the normalised ket ψ (D,), the variance as ‖(H − ⟨H⟩)ψ‖² (no cancellation);
    H a (D, D) array or a SpinModel (matrix-free). Energy units E0 and E0²."""
    psi = psi / jnp.linalg.norm(psi)
    return ket_energy_and_variance(psi, as_operator(H, dense=False).apply(psi))


def _scalar(x) -> jax.Array:
    """A float64 array: traced by ``eqx.filter_jit``, so a new value does not recompile (Python floats would)."""
    return device_array(x, dtype=float)


def _hamiltonian(H):
    """(H validated, D): a SpinModel passes through, an array must be one Hermitian (D, D) matrix."""
    if isinstance(H, SpinModel):
        return H, H.dim
    H = check_hamiltonian(H, "H")
    if H.ndim != 2:
        raise ValueError(f"H must be one (D, D) matrix or a SpinModel, got shape {H.shape}")
    return H, H.shape[-1]


def _check_kappa(kappa):
    kappa = check_kappa(kappa)
    if kappa.ndim != 0:
        raise ValueError(f"kappa must be a scalar, got shape {kappa.shape}")
    value = concrete_value(kappa)
    if value is not None and value == 0:
        raise ValueError("kappa must be > 0: at κ = 0 the flow is unitary and never relaxes")
    return kappa


_norm_bound = eqx.filter_jit(norm_bound)  # one dispatch instead of one per local term


def _check_tol(tol, h_norm, what: str) -> float:
    """tol > 0 and, for a concrete ‖H‖ bound, ≥ δ_E² (δ_E = energy resolution): smaller values cannot be reached."""
    tol = check_positive(tol, "tol")
    bound = concrete_value(h_norm)  # None under jax.jit
    if bound is not None:
        floor = float(energy_resolution(float(bound))) ** 2
        if tol < floor:
            raise ValueError(
                f"tol = {tol:.3g} is below what float64 resolves for this H: {what} is computed to about "
                f"(100·ε·‖H‖)² = {floor:.3g} (‖H‖ ≤ {float(bound):.3g}); use tol >= {floor:.3g}"
            )
    return tol


def _check_max_time(max_time, method: str) -> float:
    if max_time is None:
        return FLOW_MAX_TIME if method == "flow" else float("inf")
    return check_positive(max_time, "max_time")


def _check_history(length: int, name: str) -> None:
    """The history (time, energy, stopping quantity per check) is allocated for ``length`` entries."""
    check_bytes(3 * 8 * (length + 1), f"the history of {length} {name}", f"lower {name}")


def _check_chunk_time(chunk_time):
    if chunk_time is not None:
        check_positive(chunk_time, "chunk_time")
        warnings.warn(
            "chunk_time is deprecated and has no effect: the stopping rule is checked after every Krylov restart "
            "or ODE step inside one compiled loop (caps: max_iterations, max_steps, max_time)",
            DeprecationWarning,
            stacklevel=3,
        )


def ground_state(
    H,
    psi0=None,
    *,
    method: str = "krylov",
    kappa: float = 1.0,
    tol: float = 1e-10,
    max_time: float | None = None,
    key: jax.Array | None = None,
    krylov_dim: int = 16,
    max_iterations: int = 1000,
    tau0: float | None = None,
    growth: float = 10.0,
    rtol: float = DEFAULTS.rtol,
    atol: float = DEFAULTS.atol,
    solver="tsit5",
    max_steps: int = DEFAULTS.max_steps,
    progress: bool = False,
    chunk_time: float | None = None,
) -> GroundStateResult:
    r"""Relax a pure state to the ground state of H with the damped q-LLG flow (module docstring).

    Args:
        H: Hermitian (D, D) array or :class:`~qllg_jax.SpinModel` (applied matrix-free), energy units E0.
        psi0: initial ket (D,), normalised; default a Haar-random ket from ``key`` (generic overlap with the
            ground state).
        method: ``"krylov"`` (eq. 28 by restarted Lanczos, :mod:`qllg_jax.ground_state.krylov`) or ``"flow"``
            (time stepping of the ODE with ``solver``; the baseline).
        kappa: damping κ > 0; the relaxation rate κ/(1 + κ²)·gap is largest at κ = 1.
        tol: stop when Var_ψ(H) = ⟨H²⟩ − ⟨H⟩² ≤ tol (E0²); the energy error is then ≤ tol/(E1 − E) ≈ tol/gap.
            Must be ≥ (100·ε·‖H‖)², the resolution of float64 (ε = 2.2e−16).
        max_time: cap on the simulated time Σ τ (ħ/E0); default no cap for ``"krylov"``, 1e4 for ``"flow"``.
        key: PRNG key for the default ``psi0`` (default ``PRNGKey(0)``).
        krylov_dim: Lanczos vectors per restart m (≥ 2; at most D are used). Memory (m, D) complex; the
            re-orthogonalisation costs O(m·D) per vector. 16 was fastest on the 12–16-spin chains of
            ``benchmarks/bench_ground_state.py`` (matvec counts barely change between 16 and 40); raise it for
            clustered low-lying spectra.
        max_iterations: cap on Krylov restarts (sets the history length; changing it recompiles).
        tau0: first Krylov time step τ (ħ/E0); default None = the saturation time at every restart (fastest).
        growth: τ is multiplied by this (> 1) after a restart that lowered the energy, divided otherwise.
        rtol, atol, solver, max_steps: ODE tolerances, diffrax solver (name or instance) and cap on the steps
            of ``method="flow"``.
        progress: tqdm bar over simulated time (``method="flow"`` only).
        chunk_time: deprecated, has no effect (the stopping rule is checked at every restart / step).

    Returns:
        :class:`GroundStateResult` with ``state`` ψ (D,). ``converged`` False means a cap stopped the search
        (``reason``); ``energies`` never increase.
    """
    method = check_choice(method, GROUND_STATE_METHODS, "method")
    H, dim = _hamiltonian(H)
    kappa = _check_kappa(kappa)
    max_time = _check_max_time(max_time, method)
    solver = check_solver(solver)
    krylov_dim = check_positive(krylov_dim, "krylov_dim", integer=True)
    if krylov_dim < 2:
        raise ValueError(f"krylov_dim must be >= 2, got {krylov_dim}")
    max_iterations = check_positive(max_iterations, "max_iterations", integer=True)
    max_steps = check_positive(max_steps, "max_steps", integer=True)
    if method == "flow":
        _check_history(max_steps, "max_steps")
    else:
        _check_history(max_iterations, "max_iterations")
    tau0 = float("inf") if tau0 is None else check_positive(tau0, "tau0")
    growth = check_positive(growth, "growth")
    if growth <= 1:
        raise ValueError(f"growth must be > 1, got {growth}")
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    if check_flag(progress, "progress") and method != "flow":
        raise ValueError("progress is only available with method='flow' (the Krylov search is one compiled loop)")
    _check_chunk_time(chunk_time)
    if psi0 is None:
        psi0 = random_ket(jax.random.PRNGKey(0) if key is None else key, dim)
    elif jnp.shape(psi0) == (dim, 1):  # a column ket
        psi0 = as_array(psi0, "psi0")[:, 0]
    psi0 = check_ket(psi0, "psi0", dim)
    if psi0.ndim != 1:
        raise ValueError(f"psi0 must be one ket of shape (D,) or (D, 1), got shape {psi0.shape}")
    h_norm = _norm_bound(H)
    tol = _check_tol(tol, h_norm, "the variance ‖(H − ⟨H⟩)ψ‖²")

    if method == "flow":
        result = frame_flow(
            H, psi0[:, None], jnp.ones(1), kappa, _scalar(tol), _scalar(max_time), solver, rtol=rtol, atol=atol,
            max_steps=max_steps, progress=progress,
        )
        result = eqx.tree_at(lambda r: r.state, result, result.state[:, 0])
    else:
        dimension = min(krylov_dim, dim)
        check_bytes(16 * (dimension + 4) * dim, f"the Krylov basis ({dimension}, {dim})", "lower krylov_dim")
        if dimension < 2:  # D = 1: every state is the ground state
            dimension = 2
        result = krylov_search(
            H, psi0, kappa, _scalar(tol), _scalar(max_time), _scalar(tau0), _scalar(growth), h_norm, dimension=dimension,
            max_iterations=max_iterations,
        )
    return trim_history(result)


def passive_flow(
    H,
    rho0,
    *,
    kappa: float = 1.0,
    tol: float = 1e-10,
    max_time: float = FLOW_MAX_TIME,
    rtol: float = DEFAULTS.rtol,
    atol: float = DEFAULTS.atol,
    solver="tsit5",
    max_steps: int = DEFAULTS.max_steps,
    progress: bool = False,
    chunk_time: float | None = None,
) -> GroundStateResult:
    r"""Relax a mixed state with q-LLG to its generic limit, the passive state of its spectrum.

    Integrates the frame ϱ = U diag(λ) U† (:class:`~qllg_jax.equations.FrameQLLG`, only the r eigenvectors with
    λ > 0) in one compiled diffrax solve and stops when ½‖[ϱ, H]‖²_F ≤ ``tol``, computed from U and H·U. The
    energy then approaches Σ λ↓_i E↑_i (:func:`~qllg_jax.passive_energy`) for generic ϱ0; non-generic ϱ0 (e.g.
    commuting with H, or orthogonal to a low-lying eigenvector by symmetry) stop at another stationary state.

    Args:
        H: Hermitian (D, D) array or :class:`~qllg_jax.SpinModel` (matrix-free), energy units E0.
        rho0: density matrix (D, D), or a :class:`~qllg_jax.LowRankState` (frame (D, r), weights (r,)) for large
            D (never forms a D×D matrix with a SpinModel).
        kappa: damping κ > 0. tol: stop at ½‖[ϱ, H]‖²_F ≤ tol (E0²), ≥ (100·ε·‖H‖)².
        max_time: cap on simulated time (ħ/E0). max_steps: cap on ODE steps. rtol, atol, solver: the ODE solve.
        progress: tqdm bar over simulated time. chunk_time: deprecated, has no effect.

    Returns:
        :class:`GroundStateResult` with ``state`` ϱ (D, D), or a ``LowRankState`` for a ``LowRankState`` input.
    """
    H, dim = _hamiltonian(H)
    kappa = _check_kappa(kappa)
    max_time = _check_max_time(max_time, "flow")
    solver = check_solver(solver)
    max_steps = check_positive(max_steps, "max_steps", integer=True)
    _check_history(max_steps, "max_steps")
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    check_flag(progress, "progress")
    _check_chunk_time(chunk_time)
    low_rank = isinstance(rho0, LowRankState)
    if low_rank:
        if rho0.dim != dim:
            raise ValueError(f"rho0 has dimension {rho0.dim} but H has dimension {dim}")
        frame, weights = rho0.frame, rho0.weights
    else:
        rho0 = check_density_matrix(rho0, "rho0", dim)
        if rho0.ndim != 2:
            raise ValueError(f"rho0 must be one density matrix of shape (D, D), got shape {rho0.shape}")
        if concrete_value(rho0) is not None:  # evolve only the range of ϱ0
            decomposed = LowRankState.from_density_matrix(rho0, RANK_TOL)
            frame, weights = decomposed.frame, decomposed.weights
        else:
            weights, frame = jnp.linalg.eigh(rho0)
    tol = _check_tol(tol, _norm_bound(H), "½‖[ϱ, H]‖²")
    result = frame_flow(
        H, frame, weights, kappa, _scalar(tol), _scalar(max_time), solver, rtol=rtol, atol=atol, max_steps=max_steps,
        progress=progress,
    )
    u = result.state
    state = LowRankState(u, weights) if low_rank else (u * weights) @ jnp.conj(u.T)
    return trim_history(eqx.tree_at(lambda r: r.state, result, state))
