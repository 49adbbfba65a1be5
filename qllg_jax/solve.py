r"""The public solver: integrate ϱ̇ = f(ϱ, H) and save states or observables at chosen times.

:func:`solve` validates its inputs, picks a representation of ϱ (``method``, see
:mod:`qllg_jax.fast_paths`: dense matrix, eq. 28, state vector, two-level closed form or low-rank frame) and
runs the matching private path. All integrating paths share one diffrax call
(:func:`qllg_jax._integrate.integrate`).

The Hermitian ϱ (d, d) of the dense path is integrated as one real (d, d) array (real part on and above the
diagonal, imaginary part below): exactly the d² real degrees of freedom, so the error control sees each
once and diffrax works in real arithmetic. Measured in ``benchmarks/complex_vs_real.py``
(docs/complex_vs_real.md); ``complex_state=True`` integrates the complex matrix instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import fast_paths as fp
from . import observables as obs
from ._checks import (
    as_array,
    check_choice,
    check_density_matrix,
    check_flag,
    check_finite,
    check_hamiltonian,
    check_kappa,
    check_ket,
    check_positive,
    check_solver,
    check_times,
    host_value,
    is_concrete,
    warn_invariants,
)
from ._integrate import FAILURE_NONFINITE, FAILURE_REASONS, GRADIENTS, SolverConfig, dense_record, integrate
from .equations import EQUATIONS, STRATEGIES
from .hamiltonians import SpinModel
from .states import density_matrix


class SolveError(RuntimeError):
    """An integration that did not reach the final time (max_steps, step-size collapse, NaN)."""


class Diagnostics(eqx.Module):
    """Invariant checks of one solve (max over saved times; each is 0 for exact q-LLG dynamics).

    Attributes:
        trace_error: max |Tr ϱ(t) − Tr ϱ(0)|.
        hermiticity_error: max |ϱ − ϱ†| on the dense paths; on the ket / frame paths (where ϱ = UΛU† is
            Hermitian by construction) the representation error max |U†U − 𝟙| instead.
        purity_drift: max |Tr ϱ² (t) − Tr ϱ²(0)|.
        spectrum_drift: max |λ_i(t) − λ_i(0)|. NaN (not measured) on the dense and ``two_level`` paths
            with ``save_states=False``: the spectrum would cost an eigendecomposition per save, which
            dominates a sweep; ``purity_drift`` still checks Tr ϱ² there. Ket / frame paths always have it.
        energy_increase: largest rise of Tr(ϱH) between consecutive saves (≤ 0 for damped flows).
    """

    trace_error: jax.Array
    hermiticity_error: jax.Array
    purity_drift: jax.Array
    spectrum_drift: jax.Array
    energy_increase: jax.Array

    def as_dict(self) -> dict[str, float]:
        """Field name → its maximum over the batch (a Python float; NaN where not measurable)."""
        return {k: float(jnp.max(v)) for k, v in vars(self).items()}

    def check(self, tol: float = 1e-6) -> list[str]:
        """Names of the invariants violated by more than ``tol`` (energy: rises above tol·max(1, |E|))."""
        return [k for k, v in self.as_dict().items() if np.isfinite(v) and v > tol]


class Result(eqx.Module):
    """Output of :func:`solve`. Batch axes (...) of the inputs lead every array.

    Attributes:
        ts: save times, shape (T,).
        states: ϱ(t), shape (..., T, D, D); None when ``save_states=False`` or when a ket / frame path ran
            with D > ``fast_paths.STATES_MAX_DIM`` (then use ``kets`` / ``frames``).
        observables: dict name → array (..., T, *obs_shape) of requested observables.
        invariants: dict with ``trace``, ``purity``, ``energy`` (..., T) and ``hermiticity_error`` (dense
            paths) or ``orthonormality_error`` and ``spectrum`` (..., T, r) (ket / frame paths).
        stats: dict with ``num_steps``, ``num_accepted_steps``, ``num_rejected_steps`` (...,) (0 for the
            closed forms ``exact`` and ``two_level``), ``failure`` (...,) int (0 ok, 1 max_steps reached,
            2 step size collapsed, 3 NaN/inf in the saved output, 4 other) and, on integrating paths,
            ``t_reached`` (...,) (the time the integrator got to; NaN with ``gradient="backsolve"``).
        success: bool (...,): the integration reached ts[-1].
        method: the path that ran (``"dense"``, ``"exact"``, ``"pure"``, ``"two_level"``, ``"low_rank"``).
        kets: ψ(t), shape (..., T, D), for ``pure`` / ``exact`` (ϱ = |ψ⟩⟨ψ|), else None.
        frames: U(t), shape (T, D, r), for ``low_rank`` (ϱ = U diag(weights) U†), else None.
        weights: the constant nonzero eigenvalues (r,) for ``low_rank``, else None.
    """

    ts: jax.Array
    states: jax.Array | None
    observables: dict
    invariants: dict
    stats: dict
    success: jax.Array
    method: str = eqx.field(static=True, default="dense")
    kets: jax.Array | None = None
    frames: jax.Array | None = None
    weights: jax.Array | None = None

    def diagnostics(self) -> Diagnostics:
        """Invariant drifts of this run (:class:`Diagnostics`, each field of shape (...,) = the batch shape)."""
        inv = self.invariants
        first = lambda x: x[..., :1]  # noqa: E731
        energy_rise = jnp.max(jnp.diff(inv["energy"], axis=-1), axis=-1, initial=0.0)
        if "spectrum" in inv:
            drift = jnp.max(jnp.abs(inv["spectrum"] - inv["spectrum"][..., :1, :]), axis=(-2, -1))
        elif self.states is not None:
            spec = obs.spectrum(self.states)
            drift = jnp.max(jnp.abs(spec - spec[..., :1, :]), axis=(-2, -1))
        else:
            drift = jnp.full(inv["trace"].shape[:-1], jnp.nan)
        representation_error = inv["hermiticity_error"] if "hermiticity_error" in inv else inv["orthonormality_error"]
        return Diagnostics(
            trace_error=jnp.max(jnp.abs(inv["trace"] - first(inv["trace"])), axis=-1),
            hermiticity_error=jnp.max(representation_error, axis=-1),
            purity_drift=jnp.max(jnp.abs(inv["purity"] - first(inv["purity"])), axis=-1),
            spectrum_drift=drift,
            energy_increase=energy_rise,
        )


def _as_observable(name, value, dim: int | None = None) -> Callable:
    if callable(value) and not hasattr(value, "shape"):
        return value
    op = as_array(value, f"observables[{name!r}]")
    if op.ndim != 2 or op.shape[0] != op.shape[1] or (dim is not None and op.shape[0] != dim):
        raise ValueError(
            f"observables[{name!r}] must be a callable rho -> array or a square operator (D, D) with D = {dim}, "
            f"got shape {op.shape}"
        )
    return lambda rho: obs.expectation(rho, op)


@eqx.filter_jit
def _solve_one(H, rho0, kappa, ts, config: SolverConfig):
    """The dense path for one trajectory: ϱ (d, d) with the general linear solve. Returns (ys, stats, success)."""
    field = EQUATIONS[config.equation](kappa, **({"strategy": config.strategy} if config.equation == "qllg" else {}))
    return integrate(lambda rho: field(rho, H), rho0, ts, config, lambda rho: dense_record(rho, H, config), hermitian=True)


def _time_reached(ts, trace):
    finite = np.isfinite(np.asarray(trace))
    return float(np.asarray(ts)[finite.nonzero()[0][-1]]) if finite.any() else float(np.asarray(ts)[0])


def _map_batch(run, batch, args, cores):
    """Apply ``run(*args)`` over the broadcast leading ``batch`` axes (vmapped over one flat axis).

    ``cores[i]`` is the trailing (core) shape of ``args[i]``, or None for an argument shared by all
    elements (a SpinModel, ts, the config).
    """
    if not batch:
        return run(*args)
    n = int(np.prod(batch))
    flat = [a if c is None else jnp.broadcast_to(a, batch + c).reshape((n,) + c) for a, c in zip(args, cores)]
    out = jax.vmap(run, in_axes=tuple(None if c is None else 0 for c in cores))(*flat)
    return jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)


def _mark_nonfinite(ys, stats, success):
    """success &= every saved value of the trajectory is finite; stats["failure"] records the reason code."""
    lead = success.ndim
    finite = jnp.ones(success.shape, dtype=bool)
    for leaf in jax.tree_util.tree_leaves(ys):
        finite = finite & jnp.all(jnp.isfinite(leaf), axis=tuple(range(lead, jnp.ndim(leaf))))
    failure = stats.get("failure", jnp.zeros(success.shape, dtype=int))
    stats = {**stats, "failure": jnp.where(success & ~finite, FAILURE_NONFINITE, failure)}
    return stats, success & finite


_HINTS = {
    "max_steps reached": "raise max_steps (now {max_steps}), loosen rtol/atol, or try a stiff solver (solver='kvaerno5')",
    "step size collapsed": "the vector field most likely produced NaN/inf there (check H and rho0 for huge entries, "
    "custom observables for NaN) or the problem is extremely stiff (try solver='kvaerno5')",
    "NaN/inf in the saved output": "check custom observables and H/rho0 for huge entries; tighten rtol/atol",
    "solver failure": "try another solver or tolerances",
}


def _failure_message(ys, stats, success, ts, max_steps) -> str:
    """Which trajectory failed, why, the time it reached and a hint (concrete arrays only)."""
    flat_success = np.asarray(success).reshape(-1)
    bad = int(np.argwhere(~flat_success)[0, 0])
    ts_np = np.asarray(ts)
    reason = FAILURE_REASONS[int(np.asarray(stats["failure"]).reshape(-1)[bad])]
    t_reached = float(np.asarray(stats.get("t_reached", np.nan)).reshape(-1)[bad]) if "t_reached" in stats else np.nan
    where = ""
    if reason == "NaN/inf in the saved output":
        for path, leaf in jax.tree_util.tree_flatten_with_path(ys)[0]:
            values = np.asarray(leaf).reshape((flat_success.size, len(ts_np), -1))[bad]
            rows = np.nonzero(~np.all(np.isfinite(values), axis=-1))[0]
            if rows.size:
                name = "/".join(str(getattr(k, "key", k)) for k in path)
                where = f" ('{name}' first non-finite at t = {ts_np[rows[0]]:.6g})"
                t_reached = ts_np[rows[0]]
                break
    elif not np.isfinite(t_reached):  # backsolve: the last save time with a finite trace
        trace = np.asarray(ys["invariants"]["trace"]).reshape(flat_success.size, -1)[bad]
        t_reached = _time_reached(ts, trace)
    element = f" (batch element {bad})" if flat_success.size > 1 or np.ndim(success) > 0 else ""
    return (
        f"q-LLG solve failed{element}: {reason}{where} at t = {t_reached:.6g} of [{ts_np[0]:.6g}, {ts_np[-1]:.6g}]; "
        f"hint: {_HINTS[reason].format(max_steps=max_steps)}"
    )


def _check_success(ys, success, ts, max_steps, stats=None):
    """Raise :class:`SolveError` (concrete) or attach a runtime error (traced) when a trajectory failed."""
    stats = {} if stats is None else stats
    if is_concrete(success):
        if not bool(jnp.all(success)):
            if not is_concrete(ys, stats, ts):
                raise SolveError(f"q-LLG solve failed (reason code(s) {np.asarray(stats.get('failure'))}); hint: raise max_steps")
            raise SolveError(_failure_message(ys, stats, success, ts, max_steps))
        return ys
    return eqx.error_if(ys, ~success, "q-LLG integration failed (max_steps reached, step size collapsed or NaN/inf)")


def _is_ket(x) -> bool:
    return not isinstance(x, fp.LowRankState) and (x.ndim == 1 or x.shape[-1] != x.shape[-2])


def _initial_ket(rho0, dim):
    """A validated ket (..., D) from a ket, a rank-1 ϱ or a rank-1 LowRankState."""
    if isinstance(rho0, fp.LowRankState):
        if rho0.rank != 1:
            raise ValueError(f"method 'pure'/'exact' needs a pure rho0, got a LowRankState of rank {rho0.rank}")
        return rho0.frame[:, 0]
    if _is_ket(rho0):
        return check_ket(rho0, "rho0", dim)
    rho0 = check_density_matrix(rho0, "rho0", dim)
    if is_concrete(rho0):
        rho_np = np.asarray(rho0)  # numpy: under jit even jnp ops on constants are traced
        purity = np.real(np.einsum("...ij,...ji->...", rho_np, rho_np))
        if np.any(np.abs(purity - 1) > 1e-8):
            raise ValueError(f"method 'pure'/'exact' needs a pure rho0 (Tr rho0^2 = 1), got purity {purity.min():.6g}")
    return fp.top_eigenvector(rho0)


def _initial_frame(rho0, dim):
    if isinstance(rho0, fp.LowRankState):
        if rho0.dim != dim:
            raise ValueError(f"rho0 has dimension {rho0.dim} but the system has dimension {dim}")
        return rho0
    if _is_ket(rho0):
        return fp.LowRankState(check_ket(rho0, "rho0", dim)[:, None], jnp.ones(1))
    rho0 = check_density_matrix(rho0, "rho0", dim)
    if rho0.ndim != 2 or not is_concrete(rho0):
        raise ValueError("method 'low_rank' needs one concrete rho0 (D, D) (or a LowRankState); no batch/tracing")
    return fp.LowRankState.from_density_matrix(rho0)


def _initial_matrix(rho0, dim):
    if isinstance(rho0, fp.LowRankState):
        rho0 = rho0.density_matrix()
    elif _is_ket(rho0):
        rho0 = density_matrix(check_ket(rho0, "rho0", dim), "rho0")
    return check_density_matrix(rho0, "rho0", dim)


def _dense(H) -> jax.Array:
    """The (already validated) Hamiltonian as a dense array (..., D, D)."""
    return H.matrix() if isinstance(H, SpinModel) else H


def _run_dense(H, rho0, kappa, ts, config, d):
    H = _dense(H)
    rho0 = _initial_matrix(rho0, d)
    batch = jnp.broadcast_shapes(H.shape[:-2], rho0.shape[:-2], kappa.shape)
    return _map_batch(_solve_one, batch, (H, rho0, kappa, ts, config), ((d, d), (d, d), (), None, None))


def _run_kets(method, H, rho0, kappa, ts, config, d):
    psi0 = _initial_ket(rho0, d)
    if method == "exact":
        H = _dense(H)
    h_core = None if isinstance(H, SpinModel) else (d, d)
    h_batch = () if h_core is None else H.shape[:-2]
    batch = jnp.broadcast_shapes(h_batch, psi0.shape[:-1], kappa.shape)
    run = fp.run_exact if method == "exact" else fp.run_pure
    return _map_batch(run, batch, (H, psi0, kappa, ts, config), (h_core, (d,), (), None, None))


def _run_two_level(H, rho0, kappa, ts, config, d):
    H = _dense(H)
    rho0 = _initial_matrix(rho0, d)
    if H.ndim != 2 or rho0.ndim != 2 or kappa.ndim != 0 or not is_concrete(rho0):
        raise ValueError("method 'two_level' needs one concrete H (D, D), rho0 (D, D) and scalar kappa (no batch)")
    return fp.run_two_level(H, rho0, kappa, ts, config)


def _run_low_rank(H, rho0, kappa, ts, config, d):
    """Returns (saved pytree, stats, success, weights (r,))."""
    if config.equation == "qll":
        raise ValueError("method 'low_rank' supports equation 'qllg' and 'von_neumann' (q-LL of mixed states differs)")
    if not isinstance(H, SpinModel) and H.ndim != 2:
        raise ValueError(f"method 'low_rank' needs one H (D, D) (no batch), got shape {H.shape}")
    if kappa.ndim != 0:
        raise ValueError("method 'low_rank' needs a scalar kappa (no batch)")
    state = _initial_frame(rho0, d)
    return (*fp.run_low_rank(H, state.frame, state.weights, kappa, ts, config), state.weights)


def solve(
    H,
    rho0,
    ts,
    kappa=0.0,
    *,
    method: str = "auto",
    equation: str = "qllg",
    strategy: str = "auto",
    solver: diffrax.AbstractSolver | str | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    observables: Mapping[str, Callable | jax.Array] | None = None,
    save_states: bool = True,
    gradient: str = "checkpoint",
    complex_state: bool = False,
    gauge_fix: bool = True,
    throw: bool = True,
    progress: bool = False,
    invariant_tol: float | None = 1e-6,
) -> Result:
    r"""Integrate q-LLG (or q-LL / von Neumann) from ``rho0`` at ``ts[0]`` and save at ``ts``.

    .. math:: \dot\varrho = i[\varrho, H] + i\kappa[\varrho, \dot\varrho] \qquad (\hbar = 1)

    Args:
        H: Hamiltonian, array (..., D, D) (Hermitian, energy units) or a :class:`SpinModel` (applied
            matrix-free on the ``pure`` and ``low_rank`` paths).
        rho0: initial state: density matrix (..., D, D), ket (..., D) (ϱ = |ψ⟩⟨ψ|), or a
            :class:`~qllg_jax.LowRankState` (frame (D, r) + weights (r,)) for large low-rank states.
        ts: save times (T,), strictly increasing, units ħ/E0; integration runs from ts[0] to ts[-1].
        kappa: dimensionless damping κ ≥ 0, scalar or batch (...,).
        method: representation of ϱ (see :mod:`qllg_jax.fast_paths`): ``"auto"`` (default), ``"dense"``,
            ``"exact"`` (eq. 28, pure), ``"pure"`` (state vector, matrix-free), ``"two_level"`` (a𝟙 + bP,
            closed form) or ``"low_rank"`` (eigen-frame U (D, r)). auto: ket or rank-1 → exact (D ≤ 256) /
            pure; two eigenvalues → two_level; rank ≤ D/4 → low_rank; else (or traced/batched ϱ) dense.
        equation: ``"qllg"`` (default), ``"qll"`` (Wieser) or ``"von_neumann"``.
        strategy: dense q-LLG linear solve: ``"auto"``, ``"eigen"``, ``"kron"`` or ``"krylov"``
            (see :mod:`qllg_jax.equations.resolvent`).
        solver: an adaptive diffrax solver instance or its name (``"tsit5"`` (default), ``"dopri5"``,
            ``"dopri8"`` (tight tolerances), ``"kvaerno5"`` (stiff), ...; see ``qllg_jax.SOLVER_NAMES``).
        rtol, atol: adaptive step-size tolerances (PID controller).
        max_steps: step budget; exceeding it raises :class:`SolveError` (or marks ``success=False``
            when ``throw=False``).
        observables: dict name → callable ϱ ↦ array, or name → operator (D, D) for Re Tr(ϱA); saved at ts.
            On the ket / frame paths the callables get ϱ built per save time (D ≤ 2048).
        save_states: keep ϱ(t) (T, D, D) (ket / frame paths: only for D ≤ 256; kets/frames are always kept).
        gradient: how reverse/forward derivatives flow through the solve: ``"checkpoint"`` (reverse mode,
            recursive checkpointing; default), ``"forward"`` (forward mode, for jacfwd with few parameters),
            ``"backsolve"`` (continuous adjoint, O(1) memory for very long runs).
        complex_state: integrate the complex state instead of its real packing.
        gauge_fix: low-rank path: zero the frame generator inside equal-eigenvalue blocks (fewer steps).
        throw: raise on failure (max_steps reached; step size below 1e-12 of the time span, typically a
            NaN/inf vector field; NaN/inf in any saved state, invariant or observable). Outside ``jax.jit``
            this is a :class:`SolveError` naming the reason, the time reached and a hint; inside, an XLA
            runtime error. With ``throw=False`` check ``result.success`` and ``result.stats["failure"]``.
        progress: show a tqdm progress bar over simulation time.
        invariant_tol: warn with :class:`~qllg_jax.InvariantWarning` when a concrete result's
            :meth:`Result.diagnostics` exceed it (energy rises relative to max(1, max |Tr ϱH|)); None: no check.

    Raises:
        ValueError: invalid input (named argument), before any compute. SolveError: numerical failure.

    Batches: leading axes of ``H``, ``rho0`` and ``kappa`` broadcast and are vmapped (dense, exact and pure
    paths). ``solve`` works under ``jax.jit``, ``jax.vmap`` and ``jax.grad`` (the spectrum-based choices of
    ``auto`` need a concrete ``rho0``; a traced density matrix runs dense).

    Returns:
        :class:`Result` with ``ts`` (T,), ``states`` (..., T, D, D) or None, ``kets`` / ``frames`` on the fast
        paths, ``observables``, ``invariants``, ``stats``, ``method``.
    """
    check_choice(method, fp.METHODS, "method")
    check_choice(equation, EQUATIONS, "equation")
    check_choice(strategy, STRATEGIES, "strategy")
    check_choice(gradient, GRADIENTS, "gradient")
    ts = check_times(ts)
    kappa = check_kappa(kappa)
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    max_steps = check_positive(max_steps, "max_steps", integer=True)
    save_states, complex_state, gauge_fix, throw, progress = (
        check_flag(value, name)
        for value, name in ((save_states, "save_states"), (complex_state, "complex_state"), (gauge_fix, "gauge_fix"),
                            (throw, "throw"), (progress, "progress"))
    )
    if invariant_tol is not None:
        invariant_tol = check_positive(invariant_tol, "invariant_tol")
    if observables is not None and not isinstance(observables, Mapping):
        raise ValueError(f"observables must be a dict name -> callable or operator, got {type(observables).__name__}")
    observables = dict(observables or {})
    if not isinstance(H, SpinModel):
        H = check_hamiltonian(H, "H")
    dim = H.dim if isinstance(H, SpinModel) else H.shape[-1]
    config = SolverConfig(
        equation=equation,
        strategy=strategy,
        solver=check_solver(solver),
        rtol=float(rtol),
        atol=float(atol),
        max_steps=int(max_steps),
        save_states=save_states,
        observables=tuple((name, _as_observable(name, fn, dim)) for name, fn in observables.items()),
        gradient=gradient,
        complex_state=complex_state,
        progress=progress,
        gauge_fix=gauge_fix,
    )
    if not isinstance(rho0, fp.LowRankState):
        raw = rho0
        rho0 = check_finite(as_array(rho0, "rho0"), "rho0", raw)
        if rho0.ndim == 0 or rho0.shape[-1] != dim:
            raise ValueError(
                f"rho0 has dimension {rho0.shape[-1] if rho0.ndim else 'none'} but the system has dimension {dim}: "
                f"expected a ket (..., {dim}) or a density matrix (..., {dim}, {dim}), got shape {rho0.shape}"
            )
        if not is_concrete(rho0) and host_value(raw, rho0) is not None:  # constant rho0 inside jit/vmap/sweeps
            (check_ket if _is_ket(rho0) else check_density_matrix)(host_value(raw, rho0), "rho0", dim)
    batched = not isinstance(rho0, fp.LowRankState) and rho0.ndim > (1 if _is_ket(rho0) else 2)
    method = fp.select_method(method, rho0, equation, dim, batched or kappa.ndim > 0)
    if observables and method in ("pure", "low_rank", "exact") and dim > fp.OBSERVABLES_MAX_DIM:
        raise ValueError(f"observables on method {method!r} need D <= {fp.OBSERVABLES_MAX_DIM}, got D = {dim}")

    weights = None
    if method == "dense":
        ys, stats, success = _run_dense(H, rho0, kappa, ts, config, dim)
    elif method in ("pure", "exact"):
        ys, stats, success = _run_kets(method, H, rho0, kappa, ts, config, dim)
    elif method == "two_level":
        ys, stats, success = _run_two_level(H, rho0, kappa, ts, config, dim)
    else:
        ys, stats, success, weights = _run_low_rank(H, rho0, kappa, ts, config, dim)

    stats, success = _mark_nonfinite(ys, stats, success)
    if throw:
        ys = _check_success(ys, success, ts, max_steps, stats)
    result = Result(
        ts=ts,
        states=ys.get("states"),
        observables=ys["observables"],
        invariants=ys["invariants"],
        stats=stats,
        success=success,
        method=method,
        kets=ys.get("kets"),
        frames=ys.get("frames"),
        weights=weights,
    )
    if invariant_tol is not None and is_concrete(result) and bool(jnp.all(success)):
        energy_scale = max(1.0, float(jnp.max(jnp.abs(result.invariants["energy"]))))
        warn_invariants(result.diagnostics(), invariant_tol, f"solve (method {method!r})", {"energy_increase": energy_scale})
    return result
