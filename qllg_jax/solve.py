r"""The public solver: integrate ϱ̇ = f(ϱ, H) and save states, invariants and observables at chosen times.

:func:`solve` does three things in order:

1. reads and validates every input on the host, once (values known on the host — also numpy constants closed
   over inside ``jax.jit`` — are checked before any compute; traced values get runtime checks instead);
2. resolves ``method`` to a method object (:mod:`qllg_jax.methods`) from those host values, so eager calls,
   ``jit``, ``vmap``, ``jit(vmap)`` and ``grad`` choose the same method, and prepares the initial state;
3. calls ONE compiled function (:func:`_solve_compiled`) that integrates — a batch as one ODE with shared steps —
   or evaluates the closed form, records what is saved, checks the result and computes the diagnostics.

A new H, ϱ0, κ, ts or observable operator of the same shapes reuses the compilation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import (
    as_array,
    check_choice,
    check_flag,
    check_finite,
    check_hamiltonian,
    check_kappa,
    check_positive,
    check_solver,
    check_times,
    host_value,
    is_concrete,
    warn_invariants,
)
from ._guards import check_bytes, dense_bytes
from ._integrate import (
    BATCHING,
    FAILURE_BAD_H,
    FAILURE_BAD_KAPPA,
    FAILURE_BAD_STATE,
    FAILURE_BAD_TIMES,
    FAILURE_NONFINITE,
    FAILURE_REASONS,
    GRADIENTS,
    SolveOptions,
    derivative_options,
    derivative_step_cap,
    integrate,
)
from .equations import EQUATIONS, STRATEGIES
from .equations.frame import frame_density_matrix
from .hamiltonians import SpinModel
from .methods import Method, read_initial_state, resolve_method
from .methods._observables import Observables
from .methods._operator import as_operator

STATES_MAX_DIM = 2048
"""``Result.states`` built from kets / frames: only up to this D (a (…, T, D, D) array)."""
OBSERVABLES_MAX_DIM = 2048
"""Callable observables get the dense ϱ (D, D) on the ket / frame methods: only up to this D."""


MIN_RTOL = 1e-14
"""Smallest accepted rtol (≈ 50 float64 machine epsilons)."""


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
            NaN with ``gradient="backsolve"``) and ``failure`` (a :data:`~qllg_jax._integrate.FAILURE_REASONS`
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


# ------------------------------------------------------------------------------------------ host side


def _read_hamiltonian(H):
    """(H as passed into the compiled solve, D, batch shape, whether its values were checked on the host)."""
    if isinstance(H, SpinModel):
        return H, H.dim, tuple(jnp.shape(H.field)[:-2]), is_concrete(H)
    raw = H
    H = check_hamiltonian(H, "H")
    value = host_value(raw, H)
    if value is not None:  # numpy goes into the compiled solve as is (no eager device op per call)
        H = np.asarray(value, dtype=complex)
    return H, H.shape[-1], tuple(H.shape[:-2]), value is not None


def _observables(observables, dim: int, method: Method) -> Observables:
    if observables is None:
        return Observables({})
    if not isinstance(observables, Mapping):
        raise ValueError(f"observables must be a dict name -> callable or operator, got {type(observables).__name__}")
    operators, functions = {}, []
    for name, value in observables.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"observables: names must be non-empty strings, got {name!r}")
        if callable(value) and not hasattr(value, "shape"):
            if method.representation != "states" and dim > OBSERVABLES_MAX_DIM:
                raise ValueError(f"observables[{name!r}]: callables get the dense rho, which method {method.name!r} "
                                 f"builds only for D <= {OBSERVABLES_MAX_DIM} (D = {dim}); pass an operator instead")
            functions.append((name, value))
            continue
        raw, op = value, as_array(value, f"observables[{name!r}]")
        if op.shape != (dim, dim):
            raise ValueError(f"observables[{name!r}] must be a callable rho -> array or an operator of shape "
                             f"({dim}, {dim}), got shape {op.shape}")
        operators[name] = check_finite(op, f"observables[{name!r}]", raw).astype(complex)
    return Observables(operators, tuple(functions), tuple(observables))


def _core_ndim(method: Method) -> int:
    return 1 if method.representation == "kets" else 2


def _broadcast_batch(shapes: dict[str, tuple]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"the batch axes do not broadcast: {listed} (leading axes of H, rho0 and kappa "
                         "must be equal or 1, numpy-style)") from None


CLOSED_FORM_CHUNK_BYTES = 2**30
"""A batch of closed-form solves (``exact``, ``two_level``) is evaluated in chunks of points whose states at every
save time, with intermediates (≈ 4× those), stay below this many bytes: memory ∝ the chunk, not the batch."""


def _closed_form_point_bytes(state_size: int, n_saves: int) -> int:
    """Bytes of one point of a closed form: its complex state (``state_size`` entries) at every save time, ×4
    for intermediates."""
    return 4 * 16 * state_size * n_saves


def _closed_form_chunk(y0, n_saves: int) -> int:
    """Points per chunk of a batched closed-form solve (y0: (n, …) flattened batch)."""
    per_point = _closed_form_point_bytes(math.prod(y0.shape[1:]), n_saves)
    return max(1, min(y0.shape[0], CLOSED_FORM_CHUNK_BYTES // per_point))


def _estimate_bytes(method: Method, dim: int, y0, n: int, n_saves: int, save_states: bool) -> int:
    """Memory of one solve: the state's solver copies and, when kept, the saved states (per batch element); a
    closed form: its states at every save time, per chunk (:data:`CLOSED_FORM_CHUNK_BYTES`)."""
    state_size = math.prod(y0.shape[-_core_ndim(method):])
    per_state = 16 * state_size
    saved = per_state * n_saves if save_states else 0
    working = 16 * per_state + (dense_bytes(dim, 4) if method.needs_dense_H or method.name == "dense" else 0)
    closed_form = (min(n * _closed_form_point_bytes(state_size, n_saves), CLOSED_FORM_CHUNK_BYTES)
                   if method.closed_form else 0)
    return n * (saved + working) + closed_form


def estimate_memory(H, rho0, ts, kappa=0.0, *, method: str | Method = "auto", save_states: bool = True,
                    strategy: str = "auto", gauge_fix: bool = True) -> tuple[str, int]:
    """(the method ``solve`` would run, its estimated peak memory in bytes) for these inputs — the same host
    reading and method resolution as :func:`solve`, no compute. The CLI prints it before long runs; ``solve``
    refuses with :class:`~qllg_jax.SizeError` when it exceeds :func:`~qllg_jax.memory_limit`."""
    H, dim, h_batch, _ = _read_hamiltonian(H)
    state = read_initial_state(rho0, dim)
    ts, kappa = check_times(ts), check_kappa(kappa)
    chosen = resolve_method(method, state, dim, strategy=strategy, gauge_fix=gauge_fix)
    y0, _ = chosen.initial(state)
    batch = _broadcast_batch({"H": h_batch, "rho0": state.batch_shape, "kappa": tuple(kappa.shape)})
    return chosen.name, _estimate_bytes(chosen, dim, y0, math.prod(batch), ts.shape[0], save_states)


def solve(
    H,
    rho0,
    ts,
    kappa=0.0,
    *,
    method: str | Method = "auto",
    equation: str = "qllg",
    strategy: str = "auto",
    solver: diffrax.AbstractSolver | str | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    max_step: float | None = None,
    observables: Mapping[str, Callable | jax.Array] | None = None,
    save_states: bool = True,
    gradient: str = "checkpoint",
    batching: str = "shared",
    complex_state: bool = False,
    gauge_fix: bool = True,
    throw: bool = True,
    progress: bool = False,
    invariant_tol: float | None = 1e-6,
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
        strategy: the dense method's linear solve: ``"auto"``, ``"eigen"``, ``"kron"`` or ``"krylov"``.
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
            trajectories of each one's RMS) or ``"vmap"`` (each trajectory its own steps: better when the batch
            mixes very different stiffness).
        complex_state: integrate the complex state instead of its real packing.
        gauge_fix: frame method: zero the generator inside equal-eigenvalue blocks (fewer steps).
        throw: raise on failure. An eager call raises :class:`SolveError` (reason, time reached, hint); under
            ``jax.jit``/``vmap`` (traced inputs) a runtime error with the reason and hint. With ``throw=False``
            check ``result.success`` and ``result.stats["failure"]``.
        progress: a tqdm progress bar over simulation time (integrating methods).
        invariant_tol: warn with :class:`~qllg_jax.InvariantWarning` when an eager result's
            :meth:`Result.diagnostics` exceed it (energy: relative to max(1, |E|)); None: no check.

    Raises:
        ValueError: invalid input (named), before any compute. SolveError: numerical failure (eager calls).

    Returns:
        :class:`Result`.
    """
    check_choice(equation, EQUATIONS, "equation")
    check_choice(strategy, STRATEGIES, "strategy")
    check_choice(gradient, GRADIENTS, "gradient")
    check_choice(batching, BATCHING, "batching")
    flags = {name: check_flag(value, name) for name, value in (
        ("save_states", save_states), ("complex_state", complex_state), ("gauge_fix", gauge_fix), ("throw", throw),
        ("progress", progress))}
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    if rtol < MIN_RTOL:
        raise ValueError(f"rtol must be >= {MIN_RTOL:g}, got {rtol:g}: float64 resolves relative changes of about "
                         "2.2e-16 per step, so the error control could never be met (the step size would collapse)")
    max_steps = check_positive(max_steps, "max_steps", integer=True)
    max_step = None if max_step is None else check_positive(max_step, "max_step")
    if invariant_tol is not None:
        invariant_tol = check_positive(invariant_tol, "invariant_tol")
    solver = check_solver(solver, rtol=rtol)

    H, dim, h_batch, h_checked = _read_hamiltonian(H)
    state = read_initial_state(rho0, dim)
    raw_ts, ts = ts, check_times(ts)
    raw_kappa, kappa = kappa, check_kappa(kappa)
    chosen = resolve_method(method, state, dim, strategy=strategy, gauge_fix=flags["gauge_fix"])
    observed = _observables(observables, dim, chosen)
    y0, aux = chosen.initial(state)
    batch = _broadcast_batch({"H": h_batch, "rho0": state.batch_shape, "kappa": tuple(kappa.shape)})
    check_bytes(_estimate_bytes(chosen, dim, y0, math.prod(batch), ts.shape[0], flags["save_states"]),
                f"solve (method {chosen.name!r}, D = {dim}, batch {batch}, {ts.shape[0]} saves)",
                "save fewer times, pass save_states=False, or split the batch")
    traced_state = not state.known and state.kind != "frame"
    checks = InputChecks(
        state=state.array if traced_state else None, H=not h_checked, kappa=host_value(raw_kappa, kappa) is None,
        ts=host_value(raw_ts, ts) is None, pure=state.kind == "density" and chosen.representation == "kets",
    )
    eager = is_concrete(H, y0, aux, kappa, ts, observed)
    options = SolveOptions(
        solver=solver, equation=equation, rtol=float(rtol), atol=float(atol), max_steps=int(max_steps),
        max_step=None if max_step is None else float(max_step), save_states=flags["save_states"], gradient=gradient,
        batching=batching, complex_state=flags["complex_state"], progress=flags["progress"],
        throw=flags["throw"] and not eager,
    )
    out = _solve_compiled(chosen, H, y0, aux, kappa, ts, observed, options, checks)
    saved = out["saved"]
    result = Result(
        ts=ts,
        observables=saved["observables"],
        invariants=saved["invariants"],
        stats=out["stats"],
        success=out["success"],
        kets=saved.get("kets"),
        frames=saved.get("frames"),
        weights=_broadcast(aux["weights"], batch) if "frames" in saved else None,
        stored_states=saved.get("states"),
        checks=out["diagnostics"],
        method=chosen.name,
    )
    if eager:
        success = np.asarray(result.success)
        if flags["throw"] and not success.all():
            raise SolveError(_failure_message(saved, result.stats, success, ts, max_steps,
                                              isinstance(solver, diffrax.AbstractImplicitSolver)))
        if invariant_tol is not None and success.all():
            energy_scale = max(1.0, float(np.max(np.abs(np.asarray(result.invariants["energy"])))))
            warn_invariants(result.checks, invariant_tol, f"solve (method {chosen.name!r})",
                            {"energy_increase": energy_scale})
    return result


def _broadcast(weights, batch):
    """The frame weights (…, r) broadcast to the batch (numpy stays numpy: no eager device kernel)."""
    xp = np if isinstance(weights, np.ndarray) else jnp
    return xp.broadcast_to(weights, batch + weights.shape[-1:])


# ---------------------------------------------------------------------------------------- compiled side


def _model_batch(H) -> tuple[int, ...]:
    return tuple(H.field.shape[:-2]) if isinstance(H, SpinModel) else tuple(H.shape[:-2])


def _flatten(tree, batch_ndim: int, batch: tuple[int, ...]):
    """Leaves with ``batch_ndim`` leading batch axes → broadcast to ``batch`` and flattened to (n, core)."""
    n = math.prod(batch)

    def flat(leaf):
        core = leaf.shape[batch_ndim:]
        return jnp.broadcast_to(leaf, batch + core).reshape((n,) + core)

    return jax.tree_util.tree_map(flat, tree)


class InputChecks(eqx.Module):
    """The runtime checks of inputs that were traced when solve was called (values known on the host are checked
    there, before compute). A failed check marks the trajectory failed with a FAILURE_REASONS code ≥ 5.

    Attributes:
        state: the traced ϱ0 (…, D, D) or ψ0 (…, D) as given, or None.
        H, kappa, ts: whether H (Hermitian, finite), κ (finite, ≥ 0) and ts (finite, increasing) are checked.
        pure: the state must be pure (a density matrix given to the ket / exact methods).
    """

    state: jax.Array | None
    H: bool = eqx.field(static=True, default=False)
    kappa: bool = eqx.field(static=True, default=False)
    ts: bool = eqx.field(static=True, default=False)
    pure: bool = eqx.field(static=True, default=False)


INPUT_TOL = 1e-8
"""Tolerance of the runtime input checks (as of the host checks in :mod:`qllg_jax._checks`)."""


def _valid_hamiltonian(h) -> jax.Array:
    if isinstance(h, SpinModel):
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(h)]))
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(h)))
    return jnp.all(jnp.isfinite(h)) & (jnp.max(jnp.abs(h - jnp.conj(h.T))) <= INPUT_TOL * scale)


def _valid_state(x, pure: bool) -> jax.Array:
    finite = jnp.all(jnp.isfinite(x))
    safe = jnp.where(finite, x, 0.0)
    if x.ndim == 1:
        return finite & (jnp.abs(jnp.linalg.norm(safe) - 1) <= INPUT_TOL)
    hermitian = jnp.max(jnp.abs(safe - jnp.conj(safe.T))) <= INPUT_TOL
    trace = jnp.abs(jnp.trace(safe) - 1) <= INPUT_TOL
    positive = jnp.min(jnp.linalg.eigvalsh((safe + jnp.conj(safe.T)) / 2)) >= -INPUT_TOL
    valid = finite & hermitian & trace & positive
    return valid & (jnp.abs(jnp.sum(jnp.abs(safe) ** 2) - 1) <= INPUT_TOL) if pure else valid


def _input_failures(checks: InputChecks, H, h_batched: bool, kappa, ts, n: int | None) -> jax.Array:
    """Failure code per element ((n,) for a flat batch, else ()) from the runtime input checks (0 where valid)."""
    code = jnp.zeros(() if n is None else (n,), dtype=jnp.int32)
    if checks.ts:
        code = jnp.where(jnp.all(jnp.isfinite(ts)) & jnp.all(jnp.diff(ts) > 0), code, FAILURE_BAD_TIMES)
    if checks.kappa:
        code = jnp.where(jnp.isfinite(kappa) & (kappa >= 0), code, FAILURE_BAD_KAPPA)
    if checks.state is not None:
        valid = _valid_state if n is None else jax.vmap(_valid_state, in_axes=(0, None))
        code = jnp.where(valid(checks.state, checks.pure), code, FAILURE_BAD_STATE)
    if checks.H:
        code = jnp.where(jax.vmap(_valid_hamiltonian)(H) if h_batched else _valid_hamiltonian(H), code, FAILURE_BAD_H)
    return code


def _trajectory(method: Method, options: SolveOptions, observables: Observables, batched: bool, axes):
    """(field, record, drift) of the (batched) complex state for one solve; drift(y, y0) is the spectrum drift."""
    h_axis, k_axis, aux_axis = axes
    equation, save = options.equation, options.save_states

    def over(fn, in_axes):
        return jax.vmap(fn, in_axes=in_axes) if batched else fn

    def field(y, H, kappa, aux):
        return over(lambda y, h, k, a: method.vector_field(y, h, k, a, equation), (0, h_axis, k_axis, aux_axis))(
            y, H, kappa, aux)

    def record(y, H, aux):
        return over(lambda y, h, a: method.record(y, h, a, observables, save), (0, h_axis, aux_axis))(y, H, aux)

    def drift(y, y0, aux):
        return over(method.spectrum_drift, (0, 0, aux_axis))(y, y0, aux)

    return field, record, drift


def _capped_derivatives(run: Callable, dynamic, gradient: str):
    """``run(dynamic, capped=False)``, differentiated through ``run(dynamic, capped=True)``.

    The adaptive controller sees only the primal, so derivatives flow through a second integration whose steps
    are capped at θ*/W (:func:`~qllg_jax._integrate.derivative_step_cap`: the step the solver's own error control
    accepts for the fastest Bohr frequency W = E_max − E_min) and whose options come from
    :func:`~qllg_jax._integrate.derivative_options`; the primal, when nothing is differentiated, runs uncapped.
    Reverse mode (``"checkpoint"``): a custom VJP whose forward pass is the capped solve (its outputs are the
    primal values seen under ``grad``). Forward mode (``"forward"``): a custom JVP through the capped solve.
    Both give the exact derivative of the capped discrete solve; errors vs the true derivative scale with rtol,
    stationary primal or not (measurements: ``derivative_step_cap``). ``"backsolve"`` controls the error of its
    backward adjoint ODE itself and runs uncapped.
    """
    if gradient == "checkpoint":
        @jax.custom_vjp
        def primal(d):
            return run(d, False)

        def forward(d):
            return jax.vjp(lambda x: run(x, True), d)

        primal.defvjp(forward, lambda pullback, cotangent: pullback(cotangent))
        return primal(dynamic)
    if gradient == "forward":
        @jax.custom_jvp
        def primal(d):
            return run(d, False)

        primal.defjvp(lambda primals, tangents: jax.jvp(lambda x: run(x, True), primals, tangents))
        return primal(dynamic)
    return run(dynamic, False)


@eqx.filter_jit
def _solve_compiled(method: Method, H, y0, aux, kappa, ts, observables: Observables, options: SolveOptions,
                    checks: InputChecks):
    """Everything after host preparation, in one compiled function (see the module docstring)."""
    core = _core_ndim(method)
    state_batch = tuple(y0.shape[:-core])
    h_batch, k_batch = _model_batch(H), tuple(kappa.shape)
    batch = tuple(np.broadcast_shapes(h_batch, state_batch, k_batch))
    batched = bool(batch)
    if batched:
        h_axis, k_axis = (0 if h_batch else None), (0 if k_batch else None)
        aux_axis = 0 if state_batch else None
        H = _flatten(H, len(h_batch), batch) if h_batch else H
        kappa = jnp.broadcast_to(kappa, batch).reshape(-1) if k_batch else kappa
        aux = _flatten(aux, len(state_batch), batch) if state_batch else aux
        y0 = _flatten(y0, len(state_batch), batch)
    else:
        h_axis = k_axis = aux_axis = None
    if checks.state is not None and batched:
        checks = eqx.tree_at(lambda c: c.state, checks, _flatten(checks.state, len(state_batch), batch))
    input_code = _input_failures(checks, H, h_axis == 0, kappa, ts, math.prod(batch) if batched else None)
    if checks.ts:  # a traced, invalid ts must not reach diffrax (it would raise whatever throw says)
        ts = jnp.where(jnp.all(jnp.isfinite(ts)) & jnp.all(jnp.diff(ts) > 0), ts, jnp.arange(ts.shape[0], dtype=ts.dtype))
    dense = method.needs_dense_H
    operator = (jax.vmap(lambda h: as_operator(h, dense))(H) if h_axis == 0 else as_operator(H, dense))
    drift = _trajectory(method, options, observables, batched, (h_axis, k_axis, aux_axis))[2]

    if method.closed_form:
        def one(y, h, k, a):
            ys = method.evolve(y, h, k, a, ts, options.equation)
            return jax.vmap(lambda x: method.record(x, h, a, observables, options.save_states))(ys), ys[-1]

        chunk = _closed_form_chunk(y0, ts.shape[0]) if batched else None
        if batched and chunk < y0.shape[0]:  # memory ∝ the chunk: the states at all save times exist per chunk
            def point(args):
                y, h, k, a = args
                return one(y, operator if h_axis is None else h, kappa if k_axis is None else k,
                           aux if aux_axis is None else a)

            mapped = (y0, operator if h_axis == 0 else None, kappa if k_axis == 0 else None,
                      aux if aux_axis == 0 else None)
            saved, final = jax.lax.map(point, mapped, batch_size=chunk)
        else:
            run = jax.vmap(one, in_axes=(0, h_axis, k_axis, aux_axis)) if batched else one
            saved, final = run(y0, operator, kappa, aux)
        zeros = jnp.zeros((math.prod(batch),) if batched else (), dtype=jnp.int32)
        stats = {"num_steps": zeros, "num_accepted_steps": zeros, "num_rejected_steps": zeros,
                 "t_reached": jnp.full(zeros.shape, ts[-1]), "failure": zeros}
    else:
        dynamic, static = eqx.partition((operator, y0, aux, kappa, ts, observables), eqx.is_array)

        def run(dynamic, capped: bool):
            operator, y0, aux, kappa, ts, observables = eqx.combine(dynamic, static)
            options_ = derivative_options(options, dynamic) if capped else options
            scale = 1 + jnp.max(kappa) ** 2 if options.equation == "qll" else 1.0

            def cap(h):
                return derivative_step_cap(scale * h.spectral_width(), options_) if capped else None

            if batched and options.batching == "vmap":
                def one(y, h, k, a):
                    f, r, _ = _trajectory(method, options, observables, False, (None, None, None))
                    return integrate(lambda x: f(x, h, k, a), lambda x: r(x, h, a), y, ts, options_,
                                     method.packing, batched=False, max_step=cap(h), differentiated=capped)

                return jax.vmap(one, in_axes=(0, h_axis, k_axis, aux_axis))(y0, operator, kappa, aux)
            step_cap = None
            if capped:
                step_cap = jnp.min(jax.vmap(cap)(operator)) if h_axis == 0 else cap(operator)
            field, record, _ = _trajectory(method, options, observables, batched, (h_axis, k_axis, aux_axis))
            saved, final, stats = integrate(
                lambda y: field(y, operator, kappa, aux), lambda y: record(y, operator, aux),
                y0, ts, options_, method.packing, batched=batched, max_step=step_cap, differentiated=capped,
            )
            if batched:
                saved = jax.tree_util.tree_map(lambda x: jnp.moveaxis(x, 0, 1), saved)
                stats = {k: jnp.broadcast_to(v, (math.prod(batch),)) for k, v in stats.items()}
            return saved, final, stats

        saved, final, stats = _capped_derivatives(run, dynamic, options.gradient)

    lead = 1 if batched else 0
    finite = jnp.ones((math.prod(batch),) if batched else (), dtype=bool)
    for leaf in jax.tree_util.tree_leaves(saved):
        finite = finite & jnp.all(jnp.isfinite(leaf), axis=tuple(range(lead, leaf.ndim)))
    failure = jnp.where((stats["failure"] == 0) & ~finite, FAILURE_NONFINITE, stats["failure"])
    failure = jnp.where(input_code > 0, input_code, failure).astype(jnp.int32)
    stats = {**stats, "failure": failure}
    success = failure == 0

    invariants = saved["invariants"]
    first = lambda x: x[..., :1]  # noqa: E731
    diagnostics = Diagnostics(
        trace_error=jnp.max(jnp.abs(invariants["trace"] - first(invariants["trace"])), axis=-1),
        hermiticity_error=jnp.max(invariants["representation_error"], axis=-1),
        purity_drift=jnp.max(jnp.abs(invariants["purity"] - first(invariants["purity"])), axis=-1),
        spectrum_drift=drift(final, y0, aux),
        energy_increase=jnp.max(jnp.diff(invariants["energy"], axis=-1), axis=-1, initial=0.0),
    )
    out = {"saved": saved, "stats": stats, "success": success, "diagnostics": diagnostics}
    if options.throw:
        index = jnp.max(jnp.where(success, 0, failure))
        out = eqx.branched_error_if(out, ~jnp.all(success), index, _runtime_messages(options.max_steps))
    if batched:
        out = jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)
    return out


# ------------------------------------------------------------------------------------------- failures

_HINTS = {
    "max_steps reached": "raise max_steps (now {max_steps}), loosen rtol/atol, or try a stiff solver (solver='kvaerno5')",
    "step size collapsed": "the vector field most likely produced NaN/inf there (check H and rho0 for huge entries, "
    "custom observables for NaN) or the problem is extremely stiff (try solver='kvaerno5')",
    "NaN/inf in the saved output": "check custom observables and H/rho0 for huge entries; tighten rtol/atol",
    "solver failure": "try another solver or tolerances",
}
_INPUT_HINT = "traced inputs are checked at run time; pass valid values (see the README section 'Errors and diagnostics')"
def _runtime_messages(max_steps: int) -> list[str]:
    """The messages of a failure under the caller's jit/vmap, one per FAILURE_REASONS code."""
    return [f"q-LLG solve failed: {reason}; hint: {_HINTS.get(reason, _INPUT_HINT).format(max_steps=max_steps)}"
            for _, reason in sorted(FAILURE_REASONS.items())]


def _failure_message(saved, stats, success: np.ndarray, ts, max_steps, implicit: bool = False) -> str:
    """Which trajectory failed, why, the time it reached and a hint (concrete arrays only)."""
    flat_success = success.reshape(-1)
    bad = int(np.argwhere(~flat_success)[0, 0])
    ts_np = np.asarray(ts)
    reason = FAILURE_REASONS[int(np.asarray(stats["failure"]).reshape(-1)[bad])]
    t_reached = float(np.asarray(stats["t_reached"]).reshape(-1)[bad])
    where = ""
    if reason == "NaN/inf in the saved output":
        for path, leaf in jax.tree_util.tree_flatten_with_path(saved)[0]:
            values = np.asarray(leaf).reshape((flat_success.size, len(ts_np), -1))[bad]
            rows = np.nonzero(~np.all(np.isfinite(values), axis=-1))[0]
            if rows.size:
                name = "/".join(str(getattr(k, "key", k)) for k in path)
                where = f" ('{name}' first non-finite at t = {ts_np[rows[0]]:.6g})"
                t_reached = ts_np[rows[0]]
                break
    elif not np.isfinite(t_reached):  # backsolve: the last save time with a finite trace
        trace = np.asarray(saved["invariants"]["trace"]).reshape(flat_success.size, -1)[bad]
        finite = np.isfinite(trace)
        t_reached = float(ts_np[finite.nonzero()[0][-1]]) if finite.any() else float(ts_np[0])
    element = f" (batch element {bad})" if flat_success.size > 1 or success.ndim > 0 else ""
    hint = _HINTS.get(reason, _INPUT_HINT).format(max_steps=max_steps)
    if implicit:  # the stiff-solver suggestion does not apply
        hint = hint.replace(", or try a stiff solver (solver='kvaerno5')", "").replace(
            " or the problem is extremely stiff (try solver='kvaerno5')", " or the problem is extremely stiff")
    return (f"q-LLG solve failed{element}: {reason}{where} at t = {t_reached:.6g} of [{ts_np[0]:.6g}, {ts_np[-1]:.6g}]; "
            f"hint: {hint}")
