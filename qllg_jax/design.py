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
from ._checks import check_positive
from .solve import solve


class FitResult(eqx.Module):
    """Output of :func:`fit`.

    Attributes:
        params: the best parameters found (lowest final loss over the starts), same PyTree as the input.
        loss: loss_fn(params) at the returned parameters (scalar).
        loss_history: loss of the best start before each step, shape (steps,).
        all_params: final parameters of every start (PyTree with a leading (n_starts,) axis).
        all_losses: final loss of every start, shape (n_starts,).
        all_histories: loss histories of every start, shape (n_starts, steps).
        best_start: index of the returned start.
    """

    params: object
    loss: jax.Array
    loss_history: jax.Array
    all_params: object
    all_losses: jax.Array
    all_histories: jax.Array
    best_start: int = eqx.field(static=True)


def _project(params, bounds, constraint):
    if bounds is not None:
        lower, upper = bounds
        params = jax.tree_util.tree_map(
            lambda p, lo, hi: jnp.clip(p, lo, hi),
            params,
            _broadcast_like(lower, params, -jnp.inf),
            _broadcast_like(upper, params, jnp.inf),
        )
    if constraint is not None:
        params = constraint(params)
    return params


def _broadcast_like(value, params, fill=jnp.inf):
    """A bound given as a scalar (or None → ``fill``, i.e. unbounded) or as a PyTree matching ``params``."""
    if value is None:
        return jax.tree_util.tree_map(lambda p: jnp.full(jnp.shape(p), fill), params)
    if jax.tree_util.tree_structure(value) == jax.tree_util.tree_structure(params):
        return value
    return jax.tree_util.tree_map(lambda p: jnp.broadcast_to(jnp.asarray(value, dtype=float), jnp.shape(p)), params)


def _starts(init_params, n_starts, key, spread, bounds):
    """Stack ``n_starts`` starting points: a callable key → params is sampled; a PyTree is the first start
    and the others are uniform in ``bounds`` (when both bounds are finite) or Gaussian with std ``spread``."""
    keys = jax.random.split(key, n_starts)
    if callable(init_params):
        return jax.vmap(init_params)(keys)
    leaves, treedef = jax.tree_util.tree_flatten(init_params)
    if n_starts == 1:
        return jax.tree_util.tree_map(lambda p: jnp.asarray(p, dtype=float)[None], init_params)
    if bounds is not None and all(b is not None for b in bounds):
        lower = jax.tree_util.tree_leaves(_broadcast_like(bounds[0], init_params, -jnp.inf))
        upper = jax.tree_util.tree_leaves(_broadcast_like(bounds[1], init_params, jnp.inf))
    else:
        lower = upper = None
    out = []
    for i, leaf in enumerate(leaves):
        leaf = jnp.asarray(leaf, dtype=float)
        sub = jax.random.fold_in(key, i)
        shape = (n_starts - 1,) + leaf.shape
        if lower is not None and np.all(np.isfinite(np.asarray(lower[i]))) and np.all(np.isfinite(np.asarray(upper[i]))):
            others = jax.random.uniform(sub, shape, minval=lower[i], maxval=upper[i])
        else:
            others = leaf + spread * jax.random.normal(sub, shape)
        out.append(jnp.concatenate([leaf[None], others]))
    return jax.tree_util.tree_unflatten(treedef, out)


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
        init_params: a PyTree of float arrays (the first start), or a callable key → params that samples
            starts.
        optimizer: an optax optimiser (default ``optax.adam(1e-2)``). Optimisers taking extra arguments
            (``optax.lbfgs`` with its line search) get ``value``, ``grad`` and ``value_fn=loss_fn``.
        steps: number of optimiser steps.
        bounds: (lower, upper) applied by clipping after every step (projected gradient); each a scalar,
            None (unbounded) or a PyTree like ``params``. Also the box for sampling extra starts.
        constraint: params → params, a projection applied after every step (e.g. normalise a vector).
        n_starts: number of starts, optimised together with ``jax.vmap``; the best final loss wins.
        key: PRNG key for the extra starts (default ``PRNGKey(0)``).
        spread: std of the Gaussian perturbation of ``init_params`` for extra starts without finite bounds.
        progress: tqdm progress bar (shows the best current loss).

    Returns:
        :class:`FitResult`.
    """
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be a callable params -> scalar, got {type(loss_fn).__name__}")
    steps = check_positive(steps, "steps", integer=True)
    spread = check_positive(spread, "spread", allow_zero=True)
    n_starts = check_positive(n_starts, "n_starts", integer=True)
    if bounds is not None and (not isinstance(bounds, (tuple, list)) or len(bounds) != 2):
        raise ValueError(f"bounds must be a pair (lower, upper), got {bounds!r}")
    if constraint is not None and not callable(constraint):
        raise ValueError("constraint must be a callable params -> params")
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    key = jax.random.PRNGKey(0) if key is None else key

    params = _starts(init_params, n_starts, key, spread, bounds)
    params = jax.vmap(lambda p: _project(p, bounds, constraint))(params)
    opt_state = jax.vmap(optimizer.init)(params)

    def step(p, state):
        value, grads = jax.value_and_grad(loss_fn)(p)
        if isinstance(optimizer, optax.GradientTransformationExtraArgs):  # e.g. optax.lbfgs (line search)
            updates, state = optimizer.update(grads, state, p, value=value, grad=grads, value_fn=loss_fn)
        else:
            updates, state = optimizer.update(grads, state, p)
        p = _project(optax.apply_updates(p, updates), bounds, constraint)
        return p, state, value

    step = jax.jit(jax.vmap(step))
    history = []
    iterator = range(steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(iterator, desc="fit", leave=False)
        iterator = bar
    for _ in iterator:
        params, opt_state, values = step(params, opt_state)
        history.append(values)
        if bar is not None:
            bar.set_postfix(loss=f"{float(jnp.nanmin(values)):.3e}")
    final = jax.jit(jax.vmap(loss_fn))(params)
    histories = jnp.stack(history, axis=1)
    best = int(jnp.nanargmin(final))
    return FitResult(
        params=jax.tree_util.tree_map(lambda x: x[best], params),
        loss=final[best],
        loss_history=histories[best],
        all_params=params,
        all_losses=final,
        all_histories=histories,
        best_start=best,
    )


def solve_loss(build: Callable, rho0, ts, objective: Callable, kappa=0.0, **solve_options) -> Callable:
    """params ↦ objective(solve(H, ϱ0, ts, κ)) with ``build(params)`` giving H (a SpinModel or (D, D) array),
    or a pair (H, ϱ0) to fit initial-state parameters as well. ``objective`` takes the :class:`Result`.

    ``kappa`` may also be a callable params → κ. Solve options (rtol, method, ...) pass through;
    ``invariant_tol`` defaults to None (no warnings inside optimisation loops).
    """
    solve_options.setdefault("invariant_tol", None)

    def loss(params):
        built = build(params)
        H, state = built if isinstance(built, tuple) else (built, rho0)
        k = kappa(params) if callable(kappa) else kappa
        return objective(solve(H, state, ts, k, **solve_options))

    return loss


def correlation_loss(rho, target) -> jax.Array:
    """‖T(ϱ) − T*‖²_F summed over any batch; ϱ (..., 4, 4), target T* (3, 3) (or (..., 3, 3))."""
    return jnp.sum((obs.correlation_matrix(rho) - jnp.asarray(target)) ** 2)


def bell_loss(rho, target=None) -> jax.Array:
    """−B(ϱ) (maximise the Bell non-locality) when ``target`` is None, else (B(ϱ) − target)²; summed over a batch."""
    value = obs.bell_nonlocality(rho)
    return -jnp.sum(value) if target is None else jnp.sum((value - target) ** 2)


def bloch_loss(rho, target, spins=None) -> jax.Array:
    """Σ_k ‖r_k(ϱ) − r_k*‖² with Bloch vectors r (N, 3) (⟨S_k⟩/s_k); ϱ (..., D, D), target (..., N, 3)."""
    return jnp.sum((obs.bloch_vectors(rho, spins) - jnp.asarray(target)) ** 2)


def trajectory_loss(states, measured, spins=None) -> jax.Array:
    """Least squares to a measured Bloch trajectory: mean over (T, N, 3) of (r_k(ϱ(t)) − r_measured)².

    ``states``: ϱ(t) (T, D, D) (e.g. ``Result.states``); ``measured``: (T, N, 3) at the same times.
    """
    return jnp.mean((obs.bloch_vectors(states, spins) - jnp.asarray(measured)) ** 2)
