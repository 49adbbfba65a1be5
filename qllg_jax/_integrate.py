r"""The one diffrax call behind every integrating method of :func:`qllg_jax.solve`.

A trajectory, or a batch of n trajectories integrated as ONE ODE with shared steps (state (n, …)), is
integrated from ts[0] to ts[-1] with an adaptive solver and PID step control. For a batch the error norm is
the maximum over trajectories of each trajectory's RMS error (:func:`batch_max_rms`), so every trajectory
keeps its own error control while the steps are shared (a member whose state turns NaN/inf is left out of the
norm and flagged by the caller, so it cannot stall the others).

Complex states are integrated in real form by default: a Hermitian ϱ (d, d) as d² reals
(:func:`pack_hermitian`), kets and frames as a real (2, …) array (a batch: (n, 2, …)) — the error control then
sees every real degree of freedom once and every stage runs in real arithmetic (measured:
``benchmarks/complex_vs_real.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._arrays import device_array
from ._failures import Failure
from ._options import SolveOptions
from ._diffrax_compile import install as _install_diffrax_compile_fix

_install_diffrax_compile_fix()  # diffrax's t1 − 100 ULP chain in closed form: same numbers, less compile

ADJOINTS = {
    "checkpoint": diffrax.RecursiveCheckpointAdjoint,
    "forward": diffrax.ForwardMode,
    "backsolve": diffrax.BacksolveAdjoint,
}
"""``gradient=`` (:data:`~qllg_jax._options.GRADIENTS`) → the diffrax adjoint class."""

DTMIN_FRACTION = 1e-12
"""Steps below this fraction of the time span count as a step-size collapse (a NaN/inf field or extreme stiffness)."""

CHECKPOINT_BYTES = 4 * 2**20
"""Memory for reverse-mode checkpoints per solve (see :func:`adjoint`)."""

def pack_hermitian(rho: jax.Array) -> jax.Array:
    """Hermitian (..., d, d) → real (..., d, d): Re ϱ on/above the diagonal, Im ϱ strictly below."""
    upper = jnp.triu(jnp.ones(rho.shape[-2:], dtype=bool))
    return jnp.where(upper, jnp.real(rho), jnp.imag(rho))


def unpack_hermitian(packed: jax.Array) -> jax.Array:
    """Inverse of :func:`pack_hermitian`."""
    re = jnp.triu(packed) + jnp.swapaxes(jnp.triu(packed, 1), -1, -2)
    im_lower = jnp.tril(packed, -1)
    return re + 1j * (im_lower - jnp.swapaxes(im_lower, -1, -2))


def pack_complex(x: jax.Array, axis: int = 0) -> jax.Array:
    """Complex (...) → real: real and imaginary parts stacked as a new ``axis`` (0: two contiguous halves,
    the fast layout for large kets and frames; 1 for a batch (n, ...), so the batch axis stays first)."""
    return jnp.stack([jnp.real(x), jnp.imag(x)], axis=axis)


def unpack_complex(y: jax.Array, axis: int = 0) -> jax.Array:
    real, imag = jnp.moveaxis(y, axis, 0)
    return real + 1j * imag


def packing(kind: str, batched: bool):
    """(pack, unpack) for a Hermitian matrix (``"hermitian"``) or any complex array (``"complex"``)."""
    if kind == "hermitian":
        return pack_hermitian, unpack_hermitian
    axis = 1 if batched else 0
    return (lambda x: pack_complex(x, axis)), (lambda y: unpack_complex(y, axis))


def batch_max_rms(x) -> jax.Array:
    """max over the leading (batch) axis of each member's RMS; members that are NaN/inf are left out. A pytree (the
    augmented state (y, adjoint of y, adjoint of the args) of BacksolveAdjoint's backward solve): max over leaves."""
    leaves = jax.tree_util.tree_leaves(x)
    if len(leaves) != 1:
        return jnp.max(jnp.stack([batch_max_rms(leaf) for leaf in leaves]))
    x = leaves[0]
    rms = jnp.sqrt(jnp.mean(jnp.abs(x) ** 2, axis=tuple(range(1, x.ndim))))
    finite = jnp.isfinite(rms)
    return jnp.where(jnp.any(finite), jnp.max(jnp.where(finite, rms, 0.0)), jnp.inf)


def adjoint(options: SolveOptions, y0: jax.Array):
    """The diffrax adjoint for ``options.gradient``. ``"checkpoint"``: as many checkpoints as fit in
    :data:`CHECKPOINT_BYTES` (≈ 16 copies of y per step of carry), at most ``max_steps``: with diffrax's default
    (log(max_steps) checkpoints) the backward pass recomputes the forward solve several times."""
    if options.gradient != "checkpoint":
        return ADJOINTS[options.gradient]()
    size = 16 * max(y0.size * y0.dtype.itemsize, 1)
    return diffrax.RecursiveCheckpointAdjoint(checkpoints=int(min(options.max_steps, max(64, CHECKPOINT_BYTES // size))))


STEP_CAP_SAFETY = 1.0
"""Safety factor s of :func:`derivative_step_cap`: 1 = the step the solver's own error control accepts for the
fastest oscillation. Measured (see :func:`derivative_step_cap`): s = 1 gives ≤ 5·rtol, s = 2 already 13–600·rtol."""

_PHASES = np.geomspace(1e-7, 1e2, 3000)


def embedded_error(tableau, phases) -> np.ndarray:
    r"""|error estimate| of one Runge–Kutta step of ż = −iωz from |z(0)| = 1, at phases θ = ω·dt (n,) → (n,).

    For a linear ODE the stages are hk = z(𝟙 − zA)⁻¹𝟙 with z = −iθ (A the Butcher matrix, its diagonal too for
    diagonally implicit methods), and the estimate is b_errorᵀ hk.
    """
    stages = len(tableau.c) + 1
    a = np.zeros((stages, stages))
    for i, row in enumerate(tableau.a_lower):
        a[i + 1, : len(row)] = row
    if getattr(tableau, "a_diagonal", None) is not None:
        a[np.diag_indices(stages)] = tableau.a_diagonal
    z = -1j * np.asarray(phases, dtype=float).reshape(-1)[:, None, None]
    hk = z[..., 0] * np.linalg.solve(np.eye(stages) - z * a, np.ones((z.shape[0], stages, 1)))[..., 0]
    return np.abs(hk @ np.asarray(tableau.b_error, dtype=float))


def _oscillation_step(solver, rtol: float) -> float:
    tableau = getattr(solver, "tableau", None)
    if not all(hasattr(tableau, name) for name in ("a_lower", "b_error", "c")) or tableau.b_error is None:
        return float(rtol ** (1.0 / (solver.order(diffrax.ODETerm(lambda t, y, args: y)) + 1)))
    above = np.nonzero(~(embedded_error(tableau, _PHASES) <= rtol))[0]
    return float(_PHASES[max(above[0] - 1, 0)] if above.size else _PHASES[-1])


_cached_oscillation_step = functools.lru_cache(maxsize=256)(_oscillation_step)


def oscillation_step(solver: diffrax.AbstractSolver, rtol: float) -> float:
    r"""θ*: the largest phase ω·dt per step at which ``solver``'s embedded error estimate for a pure oscillation
    ż = −iωz of unit amplitude stays ≤ ``rtol`` — the step its own error control accepts for frequency ω.

    Computed from the Butcher tableau (:func:`embedded_error`; explicit and diagonally implicit Runge–Kutta, 0.3 %
    resolution in θ), once per (solver, rtol). Solvers without a tableau: θ* = rtol^{1/(p+1)}, p the order.
    At rtol = 1e-6 / 1e-8 / 1e-10: Tsit5 0.30 / 0.118 / 0.047, Dopri5 0.28 / 0.113 / 0.045, Dopri8 1.18 / 0.667
    / 0.376.
    """
    try:
        return _cached_oscillation_step(solver, float(rtol))
    except TypeError:  # an unhashable solver
        return _oscillation_step(solver, float(rtol))


def derivative_step_cap(width: jax.Array, options: SolveOptions) -> jax.Array:
    r"""Largest step (ħ/E0) of the integration that derivatives flow through: :math:`s\,\theta^*/W`, W the
    spectral width E_max − E_min of H (energy units), θ* = :func:`oscillation_step` of the solver at
    ``options.rtol``, s = :data:`STEP_CAP_SAFETY`; at most ``options.max_step``.

    Why: the adaptive controller sees only the primal. A still (or slow) primal — a thermal or passive state, an
    eigenstate, a Werner state under an SU(2)-symmetric H — lets it take huge steps, but a tangent oscillates
    with the Bohr frequencies E_i − E_j (|·| ≤ W) and was not resolved: gradients came out 10× wrong. Under the
    cap every step resolves frequency W as the solver's own error control would (error estimate ≤ rtol per
    step, whatever the primal does), for every parameter: H, κ and ϱ0 (a perturbed ϱ0 excites every Bohr
    frequency). Measured at stationary points (``python benchmarks/bench_gradients.py --accuracy``: dimer,
    thermal / Werner / eigen / passive states, t ∈ [0, 2], κ = 0.5, vs central differences of the numpy/scipy
    baseline at rtol 1e-13), max relative error of the gradient:

    ========  =========  =========  ==========  ==========================
    solver    rtol 1e-6  rtol 1e-8  rtol 1e-10  s = 2 / uncapped, any rtol
    ========  =========  =========  ==========  ==========================
    tsit5     6.0e-7     5.6e-9     1.4e-10     13–19·rtol / 0.96
    dopri5    2.5e-6     2.4e-8     2.6e-10     74–80·rtol / 1.7
    dopri8    2.6e-7     2.2e-8     4.7e-10     110–600·rtol / 5.7e-3
    ========  =========  =========  ==========  ==========================

    i.e. ≤ 5·rtol at s = 1 (the frame method gives the same numbers). Cost: about T·W/θ* steps over [0, T];
    a moving primal whose frequency-W components are small takes fewer (the Werner sweep of
    ``benchmarks/bench_gradients.py``: 61 vs 205 steps with Dopri8 at rtol 1e-8).
    """
    theta = oscillation_step(options.solver, options.rtol)
    cap = STEP_CAP_SAFETY * theta / jnp.maximum(jax.lax.stop_gradient(width), 1e-300)
    return cap if options.max_step is None else jnp.minimum(cap, options.max_step)


STAGE_STORE_BYTES = CHECKPOINT_BYTES
"""Reverse mode keeps a Runge–Kutta step's stages (instead of recomputing them) while stages × the bytes of the
solve's inputs stay below this (see :func:`derivative_options`)."""


def derivative_options(options: SolveOptions, inputs) -> SolveOptions:
    """The options of the integration that derivatives flow through (its steps: :func:`derivative_step_cap`).

    Reverse mode (``"checkpoint"``) with a diffrax Runge–Kutta solver: its stages run in a stored scan
    (``scan_kind="bounded"``) rather than diffrax's default checkpointed stage loop, which re-evaluates every
    stage once more in the backward pass — one vector-field evaluation per stage less. The stored stages and
    their cotangents cost about stages × the bytes of ``inputs`` (H, ϱ0, …), so only below
    :data:`STAGE_STORE_BYTES`.
    """
    solver = options.solver
    if options.gradient != "checkpoint" or not isinstance(solver, diffrax.AbstractERK) or solver.scan_kind:
        return options
    stages = len(solver.tableau.c) + 1 if hasattr(solver.tableau, "c") else 16
    nbytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(inputs) if hasattr(x, "dtype"))
    if stages * nbytes > STAGE_STORE_BYTES:
        return options
    return eqx.tree_at(lambda o: o.solver, options, eqx.tree_at(lambda s: s.scan_kind, solver, "bounded",
                                                                is_leaf=lambda x: x is None))


def controller(options: SolveOptions, ts: jax.Array, batched: bool, max_step=None, jump_ts=None, step_ts=None):
    """The step-size controller: PID on ``options.rtol``/``atol`` (a batch: the norm :func:`batch_max_rms`), steps
    ≥ :data:`DTMIN_FRACTION` of the span (smaller: a collapse), ≤ ``max_step`` (default ``options.max_step``);
    with ``jump_ts``, clipped to step to just before and after each of those times (diffrax's
    ``ClipStepSizeController``); with ``step_ts``, steps also land on those times (a short pulse's grid).

    A clipped controller has no minimum step: when a step ends just short of a jump (by a few ULP), the clipped
    remainder is that small and the PID's next proposal (≤ 10× the step taken) falls below any span-relative minimum —
    a false "step size collapsed" on a state at rest (a thermal state under a weak pwc field, 1–2 solves in 84 of a
    scan). Without the minimum the steps grow back ×10 per step; a NaN field then ends at ``max_steps``."""
    clipped = jump_ts is not None or step_ts is not None
    pid = diffrax.PIDController(
        rtol=options.rtol, atol=options.atol, dtmin=None if clipped else DTMIN_FRACTION * (ts[-1] - ts[0]),
        force_dtmin=False,
        dtmax=options.max_step if max_step is None else max_step, **({"norm": batch_max_rms} if batched else {}),
    )
    if jump_ts is None and step_ts is None:
        return pid
    return diffrax.ClipStepSizeController(pid, step_ts=step_ts, jump_ts=jump_ts)


def integrate(field: Callable, record: Callable, y0: jax.Array, ts: jax.Array, options: SolveOptions,
              packing_kind: str, batched: bool, max_step=None, differentiated: bool = True, jump_ts=None,
              step_ts=None):
    """Integrate ẏ = field(t, y) for complex y from ts[0] to ts[-1].

    Args:
        field, record: functions of the time t and the complex state y (batched: (n, …)): the vector field and
            what is saved at each of ``ts`` (a pytree). A static H ignores t.
        y0: complex initial state, (n, …) when ``batched``.
        packing_kind: ``"hermitian"`` (y is a Hermitian matrix) or ``"complex"`` (any complex array).
        batched: y has a leading batch axis integrated with shared steps (norm :func:`batch_max_rms`).
        max_step: largest step (a traced scalar is fine); default ``options.max_step``.
        differentiated: this integration is differentiated by JAX (use ``options.gradient``'s adjoint); False: a
            plain while loop (the primal of solve, whose derivatives go through a separate capped integration).
        jump_ts: times (J,) where the field jumps (a driven H's discontinuities), or None: the step-size
            controller steps to just before and after each (:func:`controller`).
        step_ts: times (S,) where steps must land (a short pulse's σ-spaced grid), or None.

    Returns:
        (saved pytree with the time axis leading (T, …), the complex state at the final time reached, stats dict of
        scalars (num_steps, num_accepted_steps, num_rejected_steps, t_reached (NaN with backsolve), failure (a
        :class:`~qllg_jax._failures.Failure` code))).
    """
    if options.complex_state:
        pack = unpack = lambda x: x  # noqa: E731
    else:
        pack, unpack = packing(packing_kind, batched)
    step_control = controller(options, ts, batched, max_step, jump_ts, step_ts)
    if options.gradient == "backsolve":
        # BacksolveAdjoint supports neither SaveAt(subs=...) nor SaveAt(fn=...), and differentiates only w.r.t.
        # `args`: hoist the arrays `field` closes over (complex ones as (re, im) pairs: its buffers are real)
        saveat = diffrax.SaveAt(ts=ts)
        converted, consts = jax.closure_convert(field, ts[0], y0)
        args = tuple((c.real, c.imag) if jnp.iscomplexobj(c) else c for c in consts)
        rebuild = lambda c: [x[0] + 1j * x[1] if isinstance(x, tuple) else x for x in c]  # noqa: E731
        term = diffrax.ODETerm(lambda t, y, c: pack(converted(t, unpack(y), *rebuild(c))))
    else:
        saveat = diffrax.SaveAt(subs=[
            diffrax.SubSaveAt(ts=ts, fn=lambda t, y, args: record(t, unpack(y))),
            diffrax.SubSaveAt(t1=True, fn=lambda t, y, args: (t, y)),
        ])
        term, args = diffrax.ODETerm(lambda t, y, args: pack(field(t, unpack(y)))), None
    sol = diffrax.diffeqsolve(
        term, options.solver, t0=ts[0], t1=ts[-1], dt0=None, y0=pack(y0), saveat=saveat,
        stepsize_controller=step_control, args=args, max_steps=options.max_steps,
        adjoint=adjoint(options, y0) if differentiated or options.gradient == "backsolve" else diffrax.ForwardMode(),
        throw=False, progress_meter=diffrax.TqdmProgressMeter() if options.progress else diffrax.NoProgressMeter(),
    )
    if options.gradient == "backsolve":
        states = jax.vmap(unpack)(sol.ys)
        saved, last, t_reached = jax.vmap(record)(ts, states), states[-1], device_array(jnp.nan)
    else:
        saved, (t_reached, last) = sol.ys[0], jax.tree_util.tree_map(lambda x: x[0], sol.ys[1])
        last = unpack(last)
    stats = {k: sol.stats[k] for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
    stats["t_reached"] = t_reached
    stats["failure"] = Failure.from_diffrax(sol.result)
    return saved, last, stats
