r"""The compiled core of :func:`qllg_jax.solve`: everything after host preparation, in ONE compiled function.

:func:`solve_compiled` flattens a batch (leading axes of H, ϱ0 and κ, broadcast numpy-style) to (n, …), runs
the runtime checks of inputs that were traced when solve was called (:class:`InputChecks`, the predicates of
:mod:`qllg_jax._checks` over ``jax.numpy``), integrates — a batch as ONE ODE with shared steps, or one solve per
trajectory under ``batching="vmap"`` — or evaluates the closed form, records what is saved, and computes the
diagnostics; derivatives flow through a second, step-capped integration (:func:`capped_derivatives`).

The method sees H only through :func:`hamiltonian_at`: the one place where "H at time t" is produced (a static
H is the same at every t; a driven H will be evaluated there), and the integrator calls the vector field as
``field(t, y)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import are_times, is_damping, is_density_matrix, is_hamiltonian, is_ket
from ._failures import Failure
from ._integrate import derivative_options, derivative_step_cap, integrate
from ._options import SolveOptions
from .drives import DrivenOperator, TimeDependent, drive_times
from .hamiltonians import SpinModel
from .methods import Method
from .methods._observables import Observables
from .methods._operator import Operator, as_operator
from .result import Diagnostics


def hamiltonian_at(H: Operator, t) -> Operator:
    """H(t) as the methods take it (an :class:`~qllg_jax.methods._operator.Operator`), for ONE trajectory.

    A static H: itself, at every t (the operator is built once, before the integration). A driven H (its
    :class:`~qllg_jax.drives.DrivenOperator`, built once from the drive's terms): H(t) as one Operator, dense
    ``H0 + Σ c_k(t) H_k`` or the SpinModel local terms with the coefficients c_k(t) folded in (matrix-free).
    """
    if isinstance(H, DrivenOperator):
        return H.at(t)
    return H


def spectral_width(H: Operator, ts) -> jax.Array:
    """W ≥ E_max − E_min of H over the solve: a static H's width, or for a driven H a bound over [ts[0], ts[-1]]
    (static width + Σ_k max|c_k|·width(H_k), :meth:`DrivenOperator.spectral_width`)."""
    if isinstance(H, DrivenOperator):
        return H.spectral_width(ts[0], ts[-1])
    return H.spectral_width()


class InputChecks(eqx.Module):
    """The runtime checks of inputs that were traced when solve was called (values known on the host are checked
    there, before compute). A failed check marks the trajectory failed with a :class:`~qllg_jax._failures.Failure`
    code ≥ ``BAD_H``.

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


def _valid_hamiltonian(h) -> jax.Array:
    if isinstance(h, SpinModel):
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(h)]))
    return is_hamiltonian(h, jnp)


def _valid_state(x, pure: bool) -> jax.Array:
    return is_ket(x, jnp) if x.ndim == 1 else is_density_matrix(x, jnp, pure=pure)


def _input_failures(checks: InputChecks, H, h_batched: bool, kappa, ts, n: int | None) -> jax.Array:
    """Failure code per element ((n,) for a flat batch, else ()) from the runtime input checks (0 where valid)."""
    code = jnp.zeros(() if n is None else (n,), dtype=jnp.int32)
    if checks.ts:
        code = jnp.where(are_times(ts, jnp), code, Failure.BAD_TIMES)
    if checks.kappa:
        code = jnp.where(is_damping(kappa, jnp), code, Failure.BAD_KAPPA)
    if checks.state is not None:
        valid = _valid_state if n is None else jax.vmap(_valid_state, in_axes=(0, None))
        code = jnp.where(valid(checks.state, checks.pure), code, Failure.BAD_STATE)
    if checks.H:
        code = jnp.where(jax.vmap(_valid_hamiltonian)(H) if h_batched else _valid_hamiltonian(H), code, Failure.BAD_H)
    return code


def core_ndim(method: Method) -> int:
    """Trailing axes of one state: 1 (kets) or 2 (matrices, frames)."""
    return 1 if method.representation == "kets" else 2


def _model_batch(H) -> tuple[int, ...]:
    if isinstance(H, TimeDependent):
        return tuple(H.batch_shape)
    return tuple(H.field.shape[:-2]) if isinstance(H, SpinModel) else tuple(H.shape[:-2])


def _flatten(tree, batch_ndim: int, batch: tuple[int, ...]):
    """Leaves with ``batch_ndim`` leading batch axes → broadcast to ``batch`` and flattened to (n, core)."""
    n = math.prod(batch)

    def flat(leaf):
        core = leaf.shape[batch_ndim:]
        return jnp.broadcast_to(leaf, batch + core).reshape((n,) + core)

    return jax.tree_util.tree_map(flat, tree)


def _flatten_drive(H: TimeDependent, batch: tuple[int, ...]) -> TimeDependent:
    """A driven H with batch axes (pwc values (..., K), pulse parameters (...,)): every batched leaf broadcast to
    ``batch`` and flattened to (n, core); unbatched leaves (pwc times, the operators) as they are."""
    n, H = math.prod(batch), H.broadcast_batch(batch)
    return jax.tree_util.tree_map(lambda axis, leaf: leaf if axis is None else leaf.reshape((n,) + leaf.shape[len(batch):]),
                                  H.in_axes(), H, is_leaf=lambda x: x is None)


def _trajectory(method: Method, options: SolveOptions, observables: Observables, batched: bool, axes):
    """(field, record, drift) of the (batched) complex state for one solve: field(t, y, H, κ, aux),
    record(t, y, H, aux), drift(y, y0, aux) (the spectrum drift)."""
    h_axis, k_axis, aux_axis = axes
    equation, save = options.equation, options.save_states

    def over(fn, in_axes):
        return jax.vmap(fn, in_axes=in_axes) if batched else fn

    def field(t, y, H, kappa, aux):
        return over(lambda y, h, k, a: method.vector_field(y, hamiltonian_at(h, t), k, a, equation),
                    (0, h_axis, k_axis, aux_axis))(y, H, kappa, aux)

    def record(t, y, H, aux):
        return over(lambda y, h, a: method.record(y, hamiltonian_at(h, t), a, observables, save),
                    (0, h_axis, aux_axis))(y, H, aux)

    def drift(y, y0, aux):
        return over(method.spectrum_drift, (0, 0, aux_axis))(y, y0, aux)

    return field, record, drift


def capped_derivatives(run: Callable, dynamic, gradient: str):
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


def _closed_form(method, operator, y0, aux, kappa, ts, observables, options, batched, axes, chunk):
    """(saved, final state, stats) of a closed form; a batch in chunks of ``chunk`` points (memory ∝ the chunk)."""
    h_axis, k_axis, aux_axis = axes

    def one(y, h, k, a):
        ys = method.evolve(y, h, k, a, ts, options.equation)
        record = lambda t, x: method.record(x, hamiltonian_at(h, t), a, observables, options.save_states)  # noqa: E731
        return jax.vmap(record)(ts, ys), ys[-1]

    if batched and chunk is not None and chunk < y0.shape[0]:
        def point(args):
            y, h, k, a = args
            return one(y, operator if h_axis is None else h, kappa if k_axis is None else k,
                       aux if aux_axis is None else a)

        mapped = (y0, operator if h_axis == 0 else None, kappa if k_axis == 0 else None, aux if aux_axis == 0 else None)
        saved, final = jax.lax.map(point, mapped, batch_size=chunk)
    else:
        run = jax.vmap(one, in_axes=(0, h_axis, k_axis, aux_axis)) if batched else one
        saved, final = run(y0, operator, kappa, aux)
    zeros = jnp.zeros((y0.shape[0],) if batched else (), dtype=jnp.int32)
    stats = {"num_steps": zeros, "num_accepted_steps": zeros, "num_rejected_steps": zeros,
             "t_reached": jnp.full(zeros.shape, ts[-1]), "failure": zeros}
    return saved, final, stats


def _integrated(method, operator, y0, aux, kappa, ts, observables, options, batched, axes, times=(None, None)):
    """(saved, final state, stats) of an integrating method, derivatives through the capped integration;
    ``times``: (jump_ts, step_ts) of a driven H (:func:`drive_times`)."""
    h_axis, k_axis, aux_axis = axes
    dynamic, static = eqx.partition((operator, y0, aux, kappa, ts, observables, times), eqx.is_array)

    def run(dynamic, capped: bool):
        operator, y0, aux, kappa, ts, observables, (jump_ts, step_ts) = eqx.combine(dynamic, static)
        options_ = derivative_options(options, dynamic) if capped else options
        scale = 1 + jnp.max(kappa) ** 2 if options.equation == "qll" else 1.0

        def cap(h):
            return derivative_step_cap(scale * spectral_width(h, ts), options_) if capped else None

        if batched and options.batching == "vmap":
            def one(y, h, k, a):
                f, r, _ = _trajectory(method, options, observables, False, (None, None, None))
                return integrate(lambda t, x: f(t, x, h, k, a), lambda t, x: r(t, x, h, a), y, ts, options_,
                                 method.packing, batched=False, max_step=cap(h), differentiated=capped,
                                 jump_ts=jump_ts, step_ts=step_ts)

            return jax.vmap(one, in_axes=(0, h_axis, k_axis, aux_axis))(y0, operator, kappa, aux)
        step_cap = None
        if capped:
            step_cap = jnp.min(jax.vmap(cap)(operator)) if h_axis == 0 else cap(operator)
        field, record, _ = _trajectory(method, options, observables, batched, axes)
        saved, final, stats = integrate(
            lambda t, y: field(t, y, operator, kappa, aux), lambda t, y: record(t, y, operator, aux),
            y0, ts, options_, method.packing, batched=batched, max_step=step_cap, differentiated=capped,
            jump_ts=jump_ts, step_ts=step_ts,
        )
        if batched:
            saved = jax.tree_util.tree_map(lambda x: jnp.moveaxis(x, 0, 1), saved)
            stats = {k: jnp.broadcast_to(v, (y0.shape[0],)) for k, v in stats.items()}
        return saved, final, stats

    return capped_derivatives(run, dynamic, options.gradient)


@eqx.filter_jit
def solve_compiled(method: Method, H, y0, aux, kappa, ts, observables: Observables, options: SolveOptions,
                   checks: InputChecks, chunk: int | None = None):
    """Everything after host preparation (see the module docstring). ``options``: :meth:`SolveOptions.for_core`;
    ``chunk``: points per chunk of a batched closed form (None: all at once).

    Returns a dict with ``saved`` (``invariants``, ``observables`` and the states, each (..., T, …)), ``stats``
    and ``success`` (each (...,)) and ``diagnostics`` (:class:`~qllg_jax.Diagnostics`), the batch axes leading.
    """
    state_batch = tuple(y0.shape[:-core_ndim(method)])
    h_batch, k_batch = _model_batch(H), tuple(kappa.shape)
    batch = tuple(np.broadcast_shapes(h_batch, state_batch, k_batch))
    batched = bool(batch)
    if batched:
        h_axis, k_axis = (0 if h_batch else None), (0 if k_batch else None)
        aux_axis = 0 if state_batch else None
        if h_batch:
            H = _flatten_drive(H, batch) if isinstance(H, TimeDependent) else _flatten(H, len(h_batch), batch)
        kappa = jnp.broadcast_to(kappa, batch).reshape(-1) if k_batch else kappa
        aux = _flatten(aux, len(state_batch), batch) if state_batch else aux
        y0 = _flatten(y0, len(state_batch), batch)
    else:
        h_axis = k_axis = aux_axis = None
    axes = (h_axis, k_axis, aux_axis)
    if checks.state is not None and batched:
        checks = eqx.tree_at(lambda c: c.state, checks, _flatten(checks.state, len(state_batch), batch))
    input_code = _input_failures(checks, H, h_axis == 0, kappa, ts, math.prod(batch) if batched else None)
    if checks.ts:  # a traced, invalid ts must not reach diffrax (it would raise whatever throw says)
        ts = jnp.where(are_times(ts, jnp), ts, jnp.arange(ts.shape[0], dtype=ts.dtype))
    dense = method.needs_dense_H
    driven = isinstance(H, TimeDependent)
    if driven:  # the DrivenOperator (one per trajectory of a batch of drives: shared steps, like a batch of H)
        operator = (jax.vmap(lambda h: h.operator(dense), in_axes=(H.in_axes(),))(H) if h_axis == 0 else
                    H.operator(dense))
    else:
        operator = (jax.vmap(lambda h: as_operator(h, dense))(H) if h_axis == 0 else as_operator(H, dense))
    drift = _trajectory(method, options, observables, batched, axes)[2]
    if method.closed_form:
        saved, final, stats = _closed_form(method, operator, y0, aux, kappa, ts, observables, options, batched, axes,
                                           chunk)
    else:
        saved, final, stats = _integrated(method, operator, y0, aux, kappa, ts, observables, options, batched, axes,
                                          drive_times(H, ts))

    lead = 1 if batched else 0
    finite = jnp.ones((math.prod(batch),) if batched else (), dtype=bool)
    for leaf in jax.tree_util.tree_leaves(saved):
        finite = finite & jnp.all(jnp.isfinite(leaf), axis=tuple(range(lead, leaf.ndim)))
    failure = jnp.where((stats["failure"] == Failure.NONE) & ~finite, Failure.NONFINITE, stats["failure"])
    failure = jnp.where(input_code > 0, input_code, failure).astype(jnp.int32)
    stats = {**stats, "failure": failure}
    success = failure == Failure.NONE

    invariants = saved["invariants"]
    first = lambda x: x[..., :1]  # noqa: E731
    diagnostics = Diagnostics(
        trace_error=jnp.max(jnp.abs(invariants["trace"] - first(invariants["trace"])), axis=-1),
        hermiticity_error=jnp.max(invariants["representation_error"], axis=-1),
        purity_drift=jnp.max(jnp.abs(invariants["purity"] - first(invariants["purity"])), axis=-1),
        spectrum_drift=drift(final, y0, aux),
        # under a drive Tr ϱH(t) is not monotone (the drive does work): NaN, "not measurable" (never warned)
        energy_increase=(jnp.full(finite.shape, jnp.nan) if driven else
                         jnp.max(jnp.diff(invariants["energy"], axis=-1), axis=-1, initial=0.0)),
    )
    out = {"saved": saved, "stats": stats, "success": success, "diagnostics": diagnostics}
    if batched:
        out = jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)
    return out
