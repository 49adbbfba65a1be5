r"""Inverse design with q-LLG: fit Hamiltonian (or initial-state) parameters by gradient descent.

The user supplies ``loss_fn(params) -> scalar``, typically "build a SpinModel / H from params, run
:func:`qllg_jax.solve`, score the trajectory or end state" (:func:`solve_loss` builds exactly that), and an
optax optimiser. :func:`fit` jits one optimiser step, vmaps it over ``n_starts`` starting points, applies
bounds by projection (clipping after every step) and an optional projection ``constraint``, and returns the
best start (:class:`FitResult`). Gradients flow through ``solve`` (see the README section “Differentiable q-LLG”).

Loss helpers (all return a real scalar; ϱ (D, D) or a batch of them):

- :func:`correlation_loss`: ‖T(ϱ) − T*‖² (two qubits, T (3, 3)),
- :func:`bell_loss`: −B(ϱ) (maximise the Bell non-locality) or (B(ϱ) − B*)²,
- :func:`bloch_loss`: Σ_k ‖r_k(ϱ) − r_k*‖² (Bloch vectors (N, 3)),
- :func:`trajectory_loss`: mean squared mismatch of Bloch-vector trajectories (T, N, 3) (least squares).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import observables as obs
from ._checks import (
    check_density_matrix,
    check_hamiltonian,
    check_kappa,
    check_ket,
    check_positive,
    check_target,
    prng_key,
    real_array,
)
from .hamiltonians import SpinModel
from .solve import solve


class FitError(RuntimeError):
    """The loss (or its gradient) of every start became NaN/inf during :func:`fit`; the message names the step."""


class FitResult(eqx.Module):
    """Output of :func:`fit`.

    Attributes:
        params: the best parameters found (lowest final loss over the starts), same PyTree as the input.
        loss: loss_fn(params) at the returned parameters (scalar).
        loss_history: loss of the best start before each step, shape (steps,).
        all_params: final parameters of every start (PyTree with a leading (n_starts,) axis).
        all_losses: final loss of every start, shape (n_starts,) (NaN for a start that stopped).
        all_histories: loss histories of every start, shape (n_starts, steps).
        stopped_at: per start, the step at which its loss or gradient first became NaN/inf (the start is frozen
            there and cannot win), −1 for a start that ran all steps; shape (n_starts,), int.
        best_start: index of the returned start.
    """

    params: object
    loss: jax.Array
    loss_history: jax.Array
    all_params: object
    all_losses: jax.Array
    all_histories: jax.Array
    stopped_at: jax.Array
    best_start: int = eqx.field(static=True)


def _path_name(path, root: str) -> str:
    return root + jax.tree_util.keystr(path)


def _check_init(init_params) -> list:
    """Leaves of a PyTree of initial parameters as float arrays: real and finite (named by their path)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(init_params)
    if not flat:
        raise ValueError("init_params must be a PyTree of float arrays (or a callable key -> params), got no leaves")
    leaves = []
    for path, leaf in flat:
        name = _path_name(path, "init_params")
        leaf = real_array(leaf, name)
        if not np.all(np.isfinite(np.asarray(leaf))):
            raise ValueError(f"{name} contains NaN or inf")
        leaves.append(leaf)
    return leaves


def _check_bounds(bounds, template) -> tuple[list, list] | None:
    """(lower, upper) leaves broadcast to the leaves of ``template``; each bound None (unbounded), a scalar,
    one array broadcast to every leaf or a PyTree like the parameters. Refuses shapes that do not fit, NaN and
    lower > upper (±inf are allowed: unbounded)."""
    if bounds is None:
        return None
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError(f"bounds must be a pair (lower, upper), got {bounds!r}")
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for side, (value, fill) in zip(("lower", "upper"), zip(bounds, (-np.inf, np.inf))):
        if value is None:
            out.append([jnp.full(jnp.shape(leaf), fill) for _, leaf in flat])
            continue
        given = jax.tree_util.tree_leaves(value)
        if jax.tree_util.tree_structure(value) == treedef:
            pairs = list(zip(given, flat))
        elif len(given) == 1 and not isinstance(value, (dict, list, tuple)):
            pairs = [(value, item) for item in flat]
        else:
            raise ValueError(f"bounds ({side}) must be None, a scalar, an array or a PyTree like the parameters, "
                             f"got {jax.tree_util.tree_structure(value)} for parameters {treedef}")
        leaves = []
        for bound, (path, leaf) in pairs:
            name = f"bounds ({side}{jax.tree_util.keystr(path)})"
            bound = np.asarray(real_array(bound, name))
            try:
                fits = np.broadcast_shapes(bound.shape, jnp.shape(leaf)) == jnp.shape(leaf)
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"{name} of shape {bound.shape} does not fit the parameter of shape {jnp.shape(leaf)}")
            if np.any(np.isnan(bound)):
                raise ValueError(f"{name} contains NaN (use -inf/inf or None for an unbounded side)")
            leaves.append(jnp.asarray(np.broadcast_to(bound, jnp.shape(leaf))))
        out.append(leaves)
    for (path, _), lo, hi in zip(flat, *out):
        bad = np.asarray(lo) > np.asarray(hi)
        if np.any(bad):
            where = jax.tree_util.keystr(path) or "params"
            raise ValueError(f"bounds: lower > upper for {where} (lower {np.asarray(lo)[bad].ravel()[0]:g}, "
                             f"upper {np.asarray(hi)[bad].ravel()[0]:g}); the box would be empty")
    return out[0], out[1]


def _project(params, bounds, constraint):
    if bounds is not None:
        leaves, treedef = jax.tree_util.tree_flatten(params)
        params = jax.tree_util.tree_unflatten(treedef, [jnp.clip(p, lo, hi) for p, lo, hi in zip(leaves, *bounds)])
    if constraint is not None:
        params = constraint(params)
    return params


def _starts(init_params, n_starts, key, spread, bounds):
    """Stack ``n_starts`` starting points of a validated PyTree: the first is ``init_params``, the others uniform
    in ``bounds`` (leaves with both bounds finite) or Gaussian with std ``spread`` around it."""
    leaves, treedef = jax.tree_util.tree_flatten(init_params)
    out = []
    for i, leaf in enumerate(leaves):
        leaf = jnp.asarray(leaf, dtype=float)
        sub = jax.random.fold_in(key, i)
        shape = (n_starts - 1,) + leaf.shape
        if bounds is not None and np.all(np.isfinite(np.asarray(bounds[0][i]))) and np.all(np.isfinite(np.asarray(bounds[1][i]))):
            others = jax.random.uniform(sub, shape, minval=bounds[0][i], maxval=bounds[1][i])
        else:
            others = leaf + spread * jax.random.normal(sub, shape)
        out.append(jnp.concatenate([leaf[None], others]))
    return jax.tree_util.tree_unflatten(treedef, out)


def _scalar_loss(loss_fn: Callable) -> Callable:
    """``loss_fn`` with a check, at trace time (before any compute), that it returns a real scalar."""

    def loss(params):
        value = loss_fn(params)
        try:
            shape, dtype = jnp.shape(value), jnp.result_type(value)
        except TypeError:
            raise ValueError(f"loss_fn must return a real scalar, got {type(value).__name__}") from None
        if shape != () or not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(f"loss_fn must return a real scalar (shape ()), got shape {shape} and dtype {dtype}")
        return value

    return loss


def _all_finite(value, grads) -> jax.Array:
    leaves = [value] + jax.tree_util.tree_leaves(grads)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def fit(
    loss_fn: Callable,
    init_params,
    optimizer: optax.GradientTransformation | None = None,
    *,
    steps: int = 200,
    bounds=None,
    constraint: Callable | None = None,
    n_starts: int = 1,
    key: jax.Array | None = None,
    spread: float = 0.5,
    progress: bool = True,
) -> FitResult:
    """Minimise ``loss_fn(params)`` with an optax optimiser from one or several (vmapped) starts.

    Args:
        loss_fn: params → real scalar; differentiable (e.g. built on :func:`qllg_jax.solve`, see
            :func:`solve_loss`).
        init_params: a PyTree of real, finite float arrays (the first start), or a callable key → params
            that samples starts.
        optimizer: an optax optimiser (default ``optax.adam(1e-2)``). Optimisers taking extra arguments
            (``optax.lbfgs`` with its line search) get ``value``, ``grad`` and ``value_fn=loss_fn``.
        steps: number of optimiser steps.
        bounds: (lower, upper) applied by clipping after every step (projected gradient); each None
            (unbounded), a scalar, or a PyTree like ``params`` whose leaves broadcast to the parameters'
            shapes; ±inf leave a side open; NaN or lower > upper is an error. Also the box for sampling extra
            starts.
        constraint: params → params, a projection applied after every step (e.g. normalise a vector).
        n_starts: number of starts, optimised together with ``jax.vmap``; the best final loss wins.
        key: PRNG key (or integer seed) for the extra starts (default ``PRNGKey(0)``).
        spread: std of the Gaussian perturbation of ``init_params`` for extra starts without finite bounds.
        progress: tqdm progress bar (shows the best current loss).

    NaN/inf: ``init_params``, ``bounds`` and a non-scalar loss are refused before any compute (ValueError);
    a loss built with :func:`solve_loss` has its H, ϱ0 and κ validated at every start first. A start whose
    loss or gradient becomes NaN/inf at some step is frozen there and reported in ``FitResult.stopped_at``;
    if the loss is NaN/inf at every start's initial parameters (step 0) this is a ValueError, and if every
    start has stopped at a later step, :class:`FitError` names that step.

    Returns:
        :class:`FitResult`.
    """
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a callable params -> scalar, got {type(loss_fn).__name__}")
    steps = check_positive(steps, "steps", integer=True)
    spread = check_positive(spread, "spread", allow_zero=True)
    n_starts = check_positive(n_starts, "n_starts", integer=True)
    if constraint is not None and not callable(constraint):
        raise ValueError("constraint must be a callable params -> params")
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    key = jax.random.PRNGKey(0) if key is None else prng_key(key)

    if callable(init_params):
        params = jax.vmap(init_params)(jax.random.split(key, n_starts))
        if not all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(params)):
            raise ValueError("init_params (a sampler key -> params) returned NaN or inf")
        template = jax.tree_util.tree_map(lambda x: x[0], params)
        bounds = _check_bounds(bounds, template)
    else:
        _, treedef = jax.tree_util.tree_flatten(init_params)
        init_params = jax.tree_util.tree_unflatten(treedef, _check_init(init_params))
        bounds = _check_bounds(bounds, init_params)
        params = _starts(init_params, n_starts, key, spread, bounds)
    params = jax.vmap(lambda p: _project(p, bounds, constraint))(params)
    check_inputs = getattr(loss_fn, "check_inputs", None)  # set by solve_loss: validate H, rho0, kappa per start
    if check_inputs is not None:
        for i in range(n_starts):
            check_inputs(jax.tree_util.tree_map(lambda x: x[i], params), f"start {i}")
    opt_state = jax.vmap(optimizer.init)(params)
    loss = _scalar_loss(loss_fn)

    def step(p, state):
        value, grads = jax.value_and_grad(loss)(p)
        if isinstance(optimizer, optax.GradientTransformationExtraArgs):  # e.g. optax.lbfgs (line search)
            updates, new_state = optimizer.update(grads, state, p, value=value, grad=grads, value_fn=loss)
        else:
            updates, new_state = optimizer.update(grads, state, p)
        new_p = _project(optax.apply_updates(p, updates), bounds, constraint)
        ok = _all_finite(value, grads)  # a start with a NaN/inf loss or gradient stays where it is
        keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        return jax.tree_util.tree_map(keep, new_p, p), jax.tree_util.tree_map(keep, new_state, state), value, ok

    step = jax.jit(jax.vmap(step))
    history = []
    stopped_at = np.full(n_starts, -1)
    iterator = range(steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(iterator, desc="fit", leave=False)
        iterator = bar
    for k in iterator:
        params, opt_state, values, ok = step(params, opt_state)
        history.append(values)
        ok = np.asarray(ok)
        stopped_at[(stopped_at < 0) & ~ok] = k
        if not ok.any():
            if k == 0:
                raise ValueError("loss_fn returned NaN/inf (or a NaN/inf gradient) at the initial parameters of every "
                                 "start; check loss_fn, init_params and bounds")
            last = np.asarray(jnp.stack(history[:-1]))
            raise FitError(
                f"fit: the loss or its gradient became NaN/inf at step {k} of {steps} for every start "
                f"(first at step {int(stopped_at.min())}); last finite loss {np.nanmin(last[np.isfinite(last)]):.6g}; "
                "hint: lower the learning rate, add bounds, or guard loss_fn against NaN (sqrt/log at 0)"
            )
        if bar is not None:
            bar.set_postfix(loss=f"{float(jnp.nanmin(values)):.3e}")
    final = jax.jit(jax.vmap(loss))(params)
    final = jnp.where(jnp.asarray(stopped_at) < 0, final, jnp.nan)
    histories = jnp.stack(history, axis=1)
    best = int(jnp.nanargmin(final))
    return FitResult(
        params=jax.tree_util.tree_map(lambda x: x[best], params),
        loss=final[best],
        loss_history=histories[best],
        all_params=params,
        all_losses=final,
        all_histories=histories,
        stopped_at=jnp.asarray(stopped_at),
        best_start=best,
    )


def solve_loss(build: Callable, rho0, ts, objective: Callable, kappa=0.0, **solve_options) -> Callable:
    """params ↦ objective(solve(H, ϱ0, ts, κ)) with ``build(params)`` giving H (a SpinModel or (D, D) array),
    or a pair (H, ϱ0) to fit initial-state parameters as well. ``objective`` takes the :class:`Result`.

    ``kappa`` may also be a callable params → κ. Solve options (rtol, method, ...) pass through;
    ``invariant_tol`` defaults to None (no warnings inside optimisation loops).

    Inside :func:`fit` the parameters are traced, so ``solve`` could check only shapes; ``fit`` therefore
    first calls the returned loss's ``check_inputs(params)`` at every start: H Hermitian, ϱ0 a valid state,
    κ ≥ 0, concretely (ValueError naming ``build(params)`` / ``kappa(params)``).
    """
    if not callable(build):
        raise ValueError(f"build must be a callable params -> H (or (H, rho0)), got {type(build).__name__}")
    if not callable(objective):
        raise ValueError(f"objective must be a callable Result -> scalar, got {type(objective).__name__}")
    solve_options.setdefault("invariant_tol", None)

    def parts(params):
        built = build(params)
        H, state = built if isinstance(built, tuple) else (built, rho0)
        return H, state, kappa(params) if callable(kappa) else kappa

    def loss(params):
        H, state, k = parts(params)
        return objective(solve(H, state, ts, k, **solve_options))

    def check_inputs(params, where: str = "") -> None:
        H, state, k = parts(params)
        suffix = f" ({where})" if where else ""
        try:
            if not isinstance(H, SpinModel):  # a SpinModel was validated when it was built
                check_hamiltonian(H, "H returned by build(params)")
            if state is not None and not hasattr(state, "rank"):  # arrays (a LowRankState is checked by solve)
                state = jnp.asarray(state)
                is_ket = state.ndim == 1 or state.shape[-1] != state.shape[-2]
                (check_ket if is_ket else check_density_matrix)(state, "rho0" if state is rho0 else "rho0 returned by build(params)")
            check_kappa(k, "kappa(params)" if callable(kappa) else "kappa")
        except ValueError as error:
            raise ValueError(f"{error}{suffix}") from None

    loss.check_inputs = check_inputs
    return loss


def correlation_loss(rho, target) -> jax.Array:
    """‖T(ϱ) − T*‖²_F summed over any batch; ϱ (..., 4, 4), target T* (3, 3) (or (..., 3, 3))."""
    prediction = obs.correlation_matrix(rho)
    return jnp.sum((prediction - check_target(target, prediction.shape, "target", "(3, 3) or (..., 3, 3)")) ** 2)


def bell_loss(rho, target=None) -> jax.Array:
    """−B(ϱ) (maximise the Bell non-locality) when ``target`` is None, else (B(ϱ) − target)²; summed over a batch."""
    value = obs.bell_nonlocality(rho)
    if target is None:
        return -jnp.sum(value)
    return jnp.sum((value - check_target(target, value.shape, "target", "() or the batch shape of rho")) ** 2)


def bloch_loss(rho, target, spins=None) -> jax.Array:
    """Σ_k ‖r_k(ϱ) − r_k*‖² with Bloch vectors r (N, 3) (⟨S_k⟩/s_k); ϱ (..., D, D), target (..., N, 3)."""
    prediction = obs.bloch_vectors(rho, spins)
    n = prediction.shape[-2]
    return jnp.sum((prediction - check_target(target, prediction.shape, "target", f"({n}, 3) or (..., {n}, 3)")) ** 2)


def trajectory_loss(states, measured, spins=None) -> jax.Array:
    """Least squares to a measured Bloch trajectory: mean over (T, N, 3) of (r_k(ϱ(t)) − r_measured)².

    ``states``: ϱ(t) (T, D, D) (e.g. ``Result.states``); ``measured``: (T, N, 3) at the same times.
    """
    prediction = obs.bloch_vectors(states, spins)
    return jnp.mean((prediction - check_target(measured, prediction.shape, "measured")) ** 2)
