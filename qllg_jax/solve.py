r"""The public solver: integrate ϱ̇ = f(ϱ, H) and save states, invariants and observables at chosen times.

:func:`solve` does three things in order, each in its own module:

1. reads its options once into :class:`~qllg_jax._options.SolveOptions` and every input on the host, once
   (:func:`qllg_jax._prepare.prepare`: values known on the host — also numpy constants closed over inside
   ``jax.jit`` — are checked before any compute; traced values get runtime checks instead);
2. resolves ``method`` to a method object (:mod:`qllg_jax.methods`) from those host values, so eager calls,
   ``jit``, ``vmap``, ``jit(vmap)`` and ``grad`` choose the same method, and prepares the initial state;
3. calls ONE compiled function (:func:`qllg_jax._core.solve_compiled`) that integrates — a batch as one ODE with
   shared steps — or evaluates the closed form, records what is saved, checks the result and computes the
   diagnostics; an eager failure then raises :class:`~qllg_jax.SolveError` (:mod:`qllg_jax._failures`).

:func:`estimate_memory` runs steps 1–2 only. A new H, ϱ0, κ, ts or observable operator of the same shapes reuses
the compilation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
from collections.abc import Callable, Mapping

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._core import core_ndim
from ._core import solve_compiled as _solve_compiled
from ._failures import error_if_failed, failure_message
from ._guards import check_bytes, dense_bytes
from ._options import DEFAULTS, SolveOptions
from ._prepare import Problem, prepare
from .methods import Method
from .result import Diagnostics, Result, SolveError, warn_invariants

__all__ = ["Diagnostics", "Result", "SolveError", "estimate_memory", "solve"]

CLOSED_FORM_CHUNK_BYTES = 2**30
"""A batch of closed-form solves (``exact``, ``two_level``) is evaluated in chunks of points whose states at every
save time, with intermediates (≈ 4× those), stay below this many bytes: memory ∝ the chunk, not the batch."""


def _closed_form_point_bytes(state_size: int, n_saves: int) -> int:
    """Bytes of one point of a closed form: its complex state (``state_size`` entries) at every save time, ×4
    for intermediates."""
    return 4 * 16 * state_size * n_saves


def _closed_form_chunk(y0, n_saves: int) -> int:
    """Points per chunk of a batched closed-form solve (y0: (n, …) flattened batch; only its shape is read)."""
    per_point = _closed_form_point_bytes(math.prod(y0.shape[1:]), n_saves)
    return max(1, min(y0.shape[0], CLOSED_FORM_CHUNK_BYTES // per_point))


def _estimate_bytes(problem: Problem, save_states: bool) -> int:
    """Memory of one solve: the state's solver copies and, when kept, the saved states (per batch element); a
    closed form: its states at every save time, per chunk (:data:`CLOSED_FORM_CHUNK_BYTES`)."""
    method, n, n_saves = problem.method, math.prod(problem.batch), problem.ts.shape[0]
    state_size = math.prod(problem.y0.shape[-core_ndim(method):])
    per_state = 16 * state_size
    saved = per_state * n_saves if save_states else 0
    working = 16 * per_state + (dense_bytes(problem.dim, 4) if method.needs_dense_H or method.name == "dense" else 0)
    closed_form = (min(n * _closed_form_point_bytes(state_size, n_saves), CLOSED_FORM_CHUNK_BYTES)
                   if method.closed_form else 0)
    return n * (saved + working) + closed_form


@dataclasses.dataclass(frozen=True)
class PreparedSolve:
    """A solve read and checked on the host (:func:`prepare_solve`), not yet run: ``method`` and ``nbytes`` (the
    estimated peak memory) are known; :meth:`run` computes. The CLI prints both before it runs."""

    problem: Problem
    options: SolveOptions
    nbytes: int

    @property
    def method(self) -> Method:
        return self.problem.method

    def run(self) -> Result:
        """The compiled solve, its :class:`Result`; an eager failure raises :class:`SolveError` (see :func:`solve`)."""
        p, options = self.problem, self.options
        check_bytes(self.nbytes, f"solve (method {p.method.name!r}, D = {p.dim}, batch {p.batch}, {p.ts.shape[0]} saves)",
                    "save fewer times, pass save_states=False, or split the batch")
        chunk = None
        if p.method.closed_form and p.batch:
            flat = jax.ShapeDtypeStruct((math.prod(p.batch),) + p.y0.shape[-core_ndim(p.method):], complex)
            chunk = _closed_form_chunk(flat, p.ts.shape[0])
        out = _solve_compiled(p.method, p.H, p.y0, p.aux, p.kappa, p.ts, p.observables, options.for_core(), p.checks,
                              chunk)
        if options.throw and not p.eager:  # under the caller's jit/vmap/grad: a runtime error, the eager message
            out = error_if_failed(out, out["stats"]["failure"], functools.partial(
                _runtime_message, batch=p.batch, max_steps=options.max_steps, where=_call_site(),
                implicit=isinstance(options.solver, diffrax.AbstractImplicitSolver)), p.ts)
        saved = out["saved"]
        result = Result(
            ts=p.ts, observables=saved["observables"], invariants=saved["invariants"], stats=out["stats"],
            success=out["success"], kets=saved.get("kets"), frames=saved.get("frames"),
            weights=_broadcast(p.aux["weights"], p.batch) if "frames" in saved else None,
            stored_states=saved.get("states"), checks=out["diagnostics"], method=p.method.name,
        )
        if p.eager:
            success = np.asarray(result.success)
            if options.throw and not success.all():
                raise SolveError(failure_message(saved, result.stats, success, p.ts, options.max_steps,
                                                 isinstance(options.solver, diffrax.AbstractImplicitSolver)))
            if options.invariant_tol is not None and success.all():
                energy_scale = max(1.0, float(np.max(np.abs(np.asarray(result.invariants["energy"])))))
                warn_invariants(result.checks, options.invariant_tol, f"solve (method {p.method.name!r})",
                                {"energy_increase": energy_scale}, stacklevel=4)
        return result


def _runtime_message(codes, out, ts, *, batch, max_steps, where, implicit) -> str:
    """The eager failure message from the host values of a traced solve (the caller's vmap axes first)."""
    if ts.ndim > 1:  # a vmapped ts: the row of the first failed element
        first = int(np.flatnonzero(np.asarray(codes).reshape(-1))[0]) // max(1, math.prod(batch))
        ts = ts.reshape(-1, ts.shape[-1])[first]
    message = failure_message(out["saved"], out["stats"], out["success"], ts, max_steps, implicit)
    return f"{message} (raised at run time by the solve called at {where})"


def _call_site() -> str:
    """"file:line (in function)" of the first caller outside qllg_jax, jax and equinox (read when traced)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_PATHS):
        frame = frame.f_back
    if frame is None:
        return "an unknown place"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} (in {frame.f_code.co_name})"


_INTERNAL_PATHS = tuple(os.path.dirname(m.__file__) + os.sep for m in (sys.modules["qllg_jax"], jax, eqx))


def _broadcast(weights, batch):
    """The frame weights (…, r) broadcast to the batch (numpy stays numpy: no eager device kernel)."""
    xp = np if isinstance(weights, np.ndarray) else jnp
    return xp.broadcast_to(weights, batch + weights.shape[-1:])


def prepare_solve(H, rho0, ts, kappa, options: SolveOptions, observables=None) -> PreparedSolve:
    """The one host preparation behind :func:`solve` and :func:`estimate_memory` (no compute)."""
    problem = prepare(H, rho0, ts, kappa, options, observables)
    return PreparedSolve(problem, options, _estimate_bytes(problem, options.save_states))


def estimate_memory(H, rho0, ts, kappa=0.0, *, method: str | Method = DEFAULTS.method,
                    save_states: bool = DEFAULTS.save_states, strategy: str = DEFAULTS.strategy,
                    gauge_fix: bool = DEFAULTS.gauge_fix) -> tuple[str, int]:
    """(the method ``solve`` would run, its estimated peak memory in bytes) for these inputs — the same host
    reading and method resolution as :func:`solve`, no compute. ``solve`` refuses with
    :class:`~qllg_jax.SizeError` when it exceeds :func:`~qllg_jax.memory_limit`."""
    options = SolveOptions.read(method=method, save_states=save_states, strategy=strategy, gauge_fix=gauge_fix)
    prepared = prepare_solve(H, rho0, ts, kappa, options)
    return prepared.method.name, prepared.nbytes


def solve(
    H,
    rho0,
    ts,
    kappa=0.0,
    *,
    method: str | Method = DEFAULTS.method,
    equation: str = DEFAULTS.equation,
    strategy: str = DEFAULTS.strategy,
    solver: diffrax.AbstractSolver | str | None = DEFAULTS.solver,
    rtol: float = DEFAULTS.rtol,
    atol: float = DEFAULTS.atol,
    max_steps: int = DEFAULTS.max_steps,
    max_step: float | None = DEFAULTS.max_step,
    observables: Mapping[str, Callable | jax.Array] | None = None,
    save_states: bool = DEFAULTS.save_states,
    gradient: str = DEFAULTS.gradient,
    batching: str = DEFAULTS.batching,
    complex_state: bool = DEFAULTS.complex_state,
    gauge_fix: bool = DEFAULTS.gauge_fix,
    throw: bool = DEFAULTS.throw,
    progress: bool = DEFAULTS.progress,
    invariant_tol: float | None = DEFAULTS.invariant_tol,
    temperature=DEFAULTS.temperature,
    key=DEFAULTS.key,
    spins=DEFAULTS.spins,
) -> Result:
    r"""Integrate q-LLG (or q-LL / von Neumann) from ``rho0`` at ``ts[0]`` and save at ``ts``.

    .. math:: \dot\varrho = i[\varrho, H] + i\kappa[\varrho, \dot\varrho] \qquad (\hbar = 1)

    Args:
        H: Hamiltonian (..., D, D) (Hermitian, energy units E0) or a :class:`SpinModel` (applied matrix-free by
            the ``frame`` and ``ket`` methods; leading axes of its parameters are batch axes).
        rho0: initial state: density matrices (..., D, D), kets (..., D), kets as columns (..., D, 1) (the
            unambiguous form for D kets of dimension D), or a :class:`~qllg_jax.LowRankState`.
        ts: save times (T,), strictly increasing, units ħ/E0; integration runs from ts[0] to ts[-1].
        kappa: dimensionless damping κ ≥ 0, scalar or (...,).
        method: ``"auto"`` (default) or ``"dense"``, ``"frame"``, ``"ket"``, ``"exact"``, ``"two_level"`` (or a
            method object from :mod:`qllg_jax.methods`); see :func:`~qllg_jax.methods.resolve_method` for what
            auto picks (pure → exact/ket, a𝟙 + bP → two_level, other mixed states → frame, traced ϱ0 → dense).
        equation: ``"qllg"`` (default), ``"qll"`` (Wieser) or ``"von_neumann"``.
        strategy: the dense method's linear solve: ``"auto"``, ``"eigen"``, ``"kron"`` or ``"krylov"`` (with a
            method object: its own, ``Dense(strategy=...)``; passing both is a ValueError).
        solver: an adaptive diffrax solver or its name (``"tsit5"`` (default), ``"dopri5"``, ``"dopri8"``,
            ``"kvaerno5"``, ...; see ``qllg_jax.SOLVER_NAMES``).
        rtol, atol: adaptive step-size tolerances (PID controller; a batch: per-trajectory RMS, max over it).
        max_steps: step budget; exceeding it fails the solve.
        max_step: largest step (ħ/E0), or None (no cap).
        observables: dict name → operator (D, D), saved as Re Tr(ϱA) (a new operator of the same shape does not
            recompile), or name → callable ϱ (D, D) ↦ array (static: reuse the same callable to reuse the
            compilation).
        save_states: keep the states (``states`` / ``kets`` / ``frames``); False keeps only invariants and
            observables (sweeps).
        gradient: how derivatives flow: ``"checkpoint"`` (reverse mode, default), ``"forward"`` (``jax.jacfwd``
            with few parameters), ``"backsolve"`` (continuous adjoint, O(1) memory).
        batching: ``"shared"`` (default: a batch is ONE ODE with shared steps, the error norm the max over
            trajectories of each one's RMS), ``"vmap"`` (each trajectory its own steps: better when the batch
            mixes very different stiffness) or ``"auto"`` (shared here; :func:`~qllg_jax.sweep_solve` recomputes a
            chunk in which a point failed with its own steps).
        complex_state: integrate the complex state instead of its real packing.
        gauge_fix: frame method: zero the generator inside equal-eigenvalue blocks (fewer steps); with a method
            object: ``Frame(gauge_fix=...)`` (passing both is a ValueError).
        throw: raise on failure. An eager call raises :class:`SolveError` (reason, time reached, hint); under
            ``jax.jit``/``vmap``/``grad`` (traced inputs) JAX raises a runtime error whose last line is the same
            message plus the line that called solve (:func:`~qllg_jax._failures.error_if_failed`). With
            ``throw=False`` check ``result.success`` and ``result.stats["failure"]``.
        progress: a tqdm progress bar over simulation time (integrating methods).
        invariant_tol: warn with :class:`~qllg_jax.InvariantWarning` when an eager result's
            :meth:`Result.diagnostics` exceed it (energy: relative to max(1, |E|)); None: no check.
        temperature: τ = k_B T ≥ 0 in E0 (``Units(...).temperature(kelvin)``), or None (default). τ > 0 adds the
            thermal noise operator, H(t) = H − Σ_k ξ_k(t)·S_k with ⟨ξ_k,a(t) ξ_l,b(t')⟩ = 2 D_k δ_kl δ_ab δ(t − t'),
            D_k = κ τ / s_k (Stratonovich), integrated by :func:`~qllg_jax.thermal.stochastic_frames` (a unitary
            Cayley–Heun step per fixed step: every trajectory keeps the spectrum of ϱ0). ``temperature=0`` (known
            on the host) or None is exactly the deterministic solve. At τ > 0: H is a SpinModel (or a raw matrix
            with ``spins``), or a driven H(t) of them without batch axes (the drive is evaluated at each step's
            midpoint, its jumps are step boundaries: :mod:`qllg_jax.thermal.drive`), one ϱ0 and a scalar κ; the
            method is ``ket`` (pure ϱ0) or
            ``frame``; the step is fixed (``max_step``, default from the spectral width of H and the noise) and
            rtol/atol/solver/max_steps/gradient/batching are not used; ``energy_increase`` is NaN (the noise does
            work: the energy is not monotone). A traced temperature needs ``max_step``.
        key: a ``jax.random`` key (one trajectory) or a batch of keys (..., K) (one trajectory each: the Result's
            arrays lead with the key axes); required at τ > 0; same key ⇒ same noise, bit for bit. A new key or
            temperature does not recompile.
        spins: the site spins (s_1, ..., s_N) of a raw matrix H (Π(2s_k + 1) = D) at τ > 0; a SpinModel brings
            its own.

    Raises:
        ValueError: invalid input (named), before any compute. SolveError: numerical failure (eager calls).

    Returns:
        :class:`Result`.
    """
    options = SolveOptions.read(
        method=method, equation=equation, strategy=strategy, solver=solver, rtol=rtol, atol=atol, max_steps=max_steps,
        max_step=max_step, save_states=save_states, gradient=gradient, batching=batching, complex_state=complex_state,
        gauge_fix=gauge_fix, throw=throw, progress=progress, invariant_tol=invariant_tol, temperature=temperature,
        key=key, spins=spins,
    )
    if options.temperature is not None:
        from .thermal.solve import is_thermal, solve_thermal

        if is_thermal(options):
            return solve_thermal(H, rho0, ts, kappa, options, observables)
        options = dataclasses.replace(options, temperature=None, key=None, spins=None)  # τ = 0: deterministic
    return prepare_solve(H, rho0, ts, kappa, options, observables).run()
