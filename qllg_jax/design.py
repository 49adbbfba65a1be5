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

from ._arrays import device_array
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
from .drives import TimeDependent, modulated, pwc
from .hamiltonians import SpinModel
from .solve import solve


class FitError(RuntimeError):
    """The loss (or its gradient) of every start became NaN/inf during :func:`fit`; the message names the step."""


class FitResult(eqx.Module):
    """Output of :func:`fit`.

    Attributes:
        params: the best parameters found (lowest final loss over the starts), same PyTree as the input.
        loss: loss_fn(params) at the returned parameters (scalar).
        grad: the gradient of loss_fn at the returned parameters (reverse mode, the one the optimiser uses; same
            PyTree as ``params``): ≈ 0 at an interior optimum, pointing out of the box where a bound is active.
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
    grad: object
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


def _bound_tree(value, template, side: str):
    """One side of the bounds as a PyTree like ``template``: None → unbounded (±inf), a scalar or array → the same
    for every leaf, a PyTree like the parameters as it is, and a dict naming only some keys of a dict of
    parameters → per key (the keys it leaves out are unbounded), recursively."""
    fill = -np.inf if side == "lower" else np.inf
    if value is None:
        return jax.tree_util.tree_map(lambda _: fill, template)
    if isinstance(value, dict) and isinstance(template, dict):
        unknown = sorted(set(value) - set(template), key=str)
        if unknown:
            raise ValueError(f"bounds ({side}) name parameters that do not exist: {unknown} (parameters: "
                             f"{sorted(template, key=str)})")
        return {k: _bound_tree(value.get(k), template[k], side) for k in template}
    treedef = jax.tree_util.tree_structure(template)
    if jax.tree_util.tree_structure(value) == treedef:
        return value
    if len(jax.tree_util.tree_leaves(value)) == 1 and not isinstance(value, (dict, list, tuple)):
        return jax.tree_util.tree_map(lambda _: value, template)
    raise ValueError(f"bounds ({side}) must be None, a scalar, an array, a PyTree like the parameters or a dict "
                     f"naming some of them, got {jax.tree_util.tree_structure(value)} for parameters {treedef}")


def _check_bounds(bounds, template) -> tuple[list, list] | None:
    """(lower, upper) leaves broadcast to the leaves of ``template``; each bound None (unbounded), a scalar,
    one array broadcast to every leaf, a PyTree like the parameters, or (parameters a dict) a dict naming some
    of its keys (:func:`_bound_tree`). Refuses shapes that do not fit, NaN and lower > upper (±inf are allowed:
    unbounded)."""
    if bounds is None:
        return None
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError(f"bounds must be a pair (lower, upper), got {bounds!r}")
    flat, _ = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for side, value in zip(("lower", "upper"), bounds):
        given = jax.tree_util.tree_leaves(_bound_tree(value, template, side))
        leaves = []
        for bound, (path, leaf) in zip(given, flat):
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
            leaves.append(device_array(np.broadcast_to(bound, jnp.shape(leaf)), dtype=float))
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


@eqx.filter_jit
def _projected_starts(params, bounds, constraint, optimizer):
    """The starts projected onto the bounds/constraint and the optimiser's state of each, as one program (eagerly,
    the vmapped clips and optax's init would compile op by op); constraint and optimiser are static (by identity)."""
    params = jax.vmap(lambda p: _project(p, bounds, constraint))(params)
    return params, jax.vmap(optimizer.init)(params)


def _starts(init_params, n_starts, key, spread, bounds):
    """Stack ``n_starts`` starting points of a validated PyTree: the first is ``init_params``, the others uniform
    in ``bounds`` (leaves with both bounds finite) or Gaussian with std ``spread`` around it."""
    leaves, treedef = jax.tree_util.tree_flatten(init_params)
    out = []
    for i, leaf in enumerate(leaves):
        leaf = device_array(leaf, dtype=float)
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


def _make_step(loss_fn: Callable, optimizer, constraint):
    """One optimiser step for a batch of starts, jitted: (params, opt_state, bounds) → (params, opt_state, loss
    before the step, finite?, gradient before the step)."""
    loss = _scalar_loss(loss_fn)

    def step(p, state, bounds):
        value, grads = jax.value_and_grad(loss)(p)
        if isinstance(optimizer, optax.GradientTransformationExtraArgs):  # e.g. optax.lbfgs (line search)
            updates, new_state = optimizer.update(grads, state, p, value=value, grad=grads, value_fn=loss)
        else:
            updates, new_state = optimizer.update(grads, state, p)
        new_p = _project(optax.apply_updates(p, updates), bounds, constraint)
        ok = _all_finite(value, grads)  # a start with a NaN/inf loss or gradient stays where it is
        keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        return (jax.tree_util.tree_map(keep, new_p, p), jax.tree_util.tree_map(keep, new_state, state), value, ok,
                grads)

    return jax.jit(jax.vmap(step, in_axes=(0, 0, None)))


_STEP_CACHE_ATTRIBUTE = "_qllg_fit_steps"


def _compiled_step(loss_fn: Callable, optimizer, constraint):
    """The jitted step of :func:`_make_step`, built once per (loss_fn, optimizer, constraint) and kept on the loss
    function itself: a second :func:`fit` of the same loss with the same optimiser object (more steps, other
    starts or bounds of the same shapes) reuses the compilation. Callables that take no attributes are not cached."""
    cache = getattr(loss_fn, _STEP_CACHE_ATTRIBUTE, None)
    if cache is None:
        cache = {}
        try:
            setattr(loss_fn, _STEP_CACHE_ATTRIBUTE, cache)
        except (AttributeError, TypeError):
            return _make_step(loss_fn, optimizer, constraint)
    key = (id(optimizer), id(constraint))
    if key not in cache:  # the entry holds optimizer and constraint, so their ids stay theirs
        cache[key] = (_make_step(loss_fn, optimizer, constraint), optimizer, constraint)
    return cache[key][0]


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
    params, opt_state = _projected_starts(params, bounds, constraint, optimizer)
    check_inputs = getattr(loss_fn, "check_inputs", None)  # set by solve_loss: validate H, rho0, kappa per start
    if check_inputs is not None:
        for i in range(n_starts):
            check_inputs(jax.tree_util.tree_map(lambda x: x[i], params), f"start {i}")
    step = _compiled_step(loss_fn, optimizer, constraint)
    history = []
    stopped_at = np.full(n_starts, -1)
    iterator = range(steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(iterator, desc="fit", leave=False)
        iterator = bar
    for k in iterator:
        params, opt_state, values, ok, _ = step(params, opt_state, bounds)
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
    # the loss and its gradient at the final parameters: one more evaluation of the compiled step (no new program)
    _, _, final, ok, grads = step(params, opt_state, bounds)
    final = jnp.where((device_array(stopped_at) < 0) & ok, final, jnp.nan)
    histories = jnp.stack(history, axis=1)
    best = int(jnp.nanargmin(final))
    return FitResult(
        params=jax.tree_util.tree_map(lambda x: x[best], params),
        loss=final[best],
        grad=jax.tree_util.tree_map(lambda x: x[best], grads),
        loss_history=histories[best],
        all_params=params,
        all_losses=final,
        all_histories=histories,
        stopped_at=device_array(stopped_at),
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
            if isinstance(H, TimeDependent):  # its terms were validated when built; f(t) on the save grid here
                H.check(np.asarray(ts))
            elif not isinstance(H, SpinModel):  # a SpinModel was validated when it was built
                check_hamiltonian(H, "H returned by build(params)")
            if state is not None and not hasattr(state, "rank"):  # arrays (a LowRankState is checked by solve)
                state = device_array(state)
                is_ket = state.ndim == 1 or state.shape[-1] != state.shape[-2]
                (check_ket if is_ket else check_density_matrix)(state, "rho0" if state is rho0 else "rho0 returned by build(params)")
            check_kappa(k, "kappa(params)" if callable(kappa) else "kappa")
        except ValueError as error:
            raise ValueError(f"{error}{suffix}") from None

    loss.check_inputs = check_inputs
    return loss


class FieldControl(eqx.Module):
    r"""A field drive on the spins of H0 as a function of its parameters: a ``build`` for :func:`solve_loss`,
    with its bounds for :func:`fit`.

    .. math:: H(t; p) = H_0 - \sum_m c_m(t; p) \sum_{k \in \text{sites}} \hat b_m\cdot\mathbf S_k

    ``control(params)`` returns that H (a :class:`~qllg_jax.TimeDependent`); ``control.bounds`` is the
    (lower, upper) pair to pass to :func:`fit` (None when unbounded); ``control.init(value)`` a starting point
    (piecewise-constant controls). Built by :func:`pwc_field` (c_m piecewise constant: params the values,
    (K,) for one direction or (M, K)) or :func:`pulse_field` (c(t; p) = pulse(params)(t), a pulse of
    :mod:`qllg_jax.pulses`). Field values in E0 (b = g μ_B B/E0 of :meth:`Units.field`), in tesla when the
    control was built with ``units``.

    Attributes:
        H0: the undriven Hamiltonian (SpinModel, (D, D) array or a TimeDependent with drives of its own).
        fields: per direction m, the SpinModel −Σ_{k ∈ sites} b̂_m·S_k (one unit of field, E0 per unit value).
        times: pwc segment edges (K+1,) (ħ/E0), None for a pulse control.
        pulse: params → pulse (pulse controls), None for pwc.
        lower, upper: the bounds (a PyTree like the parameters, or dicts naming some of their keys), or None.
    """

    H0: object
    fields: tuple
    times: jax.Array | None
    lower: object
    upper: object
    pulse: Callable | None = eqx.field(static=True, default=None)

    def __call__(self, params):
        if self.pulse is None:
            values = device_array(params, dtype=float)
            expected = self._shape()
            if values.shape[values.ndim - len(expected):] != expected:
                raise ValueError(f"params must be the pwc values of shape {expected} (one value per segment"
                                 f"{' and direction' if len(expected) == 2 else ''}; leading axes: a batch), got "
                                 f"shape {values.shape}")
            rows = [values] if len(expected) == 1 else [values[..., m, :] for m in range(expected[0])]
            drive = [pwc(self.times, row, field) for row, field in zip(rows, self.fields)]
        else:
            drive = [modulated(self.pulse(params), self.fields[0])]
        H = self.H0
        for term in drive:
            H = H + term
        return H

    def _shape(self) -> tuple[int, ...]:
        k = self.times.shape[0] - 1
        return (k,) if len(self.fields) == 1 else (len(self.fields), k)

    @property
    def bounds(self):
        """(lower, upper) for :func:`fit`'s ``bounds``, or None."""
        return None if self.lower is None and self.upper is None else (self.lower, self.upper)

    def init(self, value=0.0) -> jax.Array:
        """pwc values (K,) or (M, K) filled with ``value`` (clipped into the bounds)."""
        if self.pulse is not None:
            raise ValueError("init: a pulse control's parameters are the pulse's own; pass them to fit directly")
        out = jnp.full(self._shape(), float(value))
        lo = -jnp.inf if self.lower is None else self.lower
        hi = jnp.inf if self.upper is None else self.upper
        return jnp.clip(out, lo, hi)


def _control_spins(H0, spins):
    if isinstance(H0, SpinModel):
        return H0.spins
    if isinstance(H0, TimeDependent) and H0.spins is not None:
        return H0.spins
    if spins is None:
        raise ValueError("spins: H0 is not a SpinModel, so give the spins of its sites (e.g. spins=(0.5, 0.5))")
    return tuple(float(s) for s in spins)


def _unit_fields(spins, directions, sites, units, g) -> tuple:
    from .hamiltonians import spin_model
    from .pulses import _site_fields

    directions = np.asarray(real_array(directions, "directions"), dtype=float)
    if directions.shape == (3,):
        directions = directions[None]
    if directions.ndim != 2 or directions.shape[1] != 3 or directions.shape[0] == 0:
        raise ValueError(f"directions must be a 3-vector or (M, 3), got shape {directions.shape}")
    norms = np.linalg.norm(directions, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError(f"directions must be finite and non-zero, got {directions.tolist()}")
    unit = directions / norms[:, None]
    return tuple(spin_model(spins, field=_site_fields(spins, b, sites, units, g, "directions")) for b in unit)


def pwc_field(H0, times, directions=(0.0, 0.0, 1.0), *, sites=None, max_field=None, spins=None,
              units=None, g: float = 2.0) -> FieldControl:
    r"""A piecewise-constant field control: H(t; v) = H0 − Σ_m v[m, k] Σ_{k∈sites} b̂_m·S_k on
    [times[k], times[k+1]) (zero outside), params v (K,) for one direction or (M, K) for ``directions`` (M, 3).

    Args:
        H0: a SpinModel (its sites are driven), a (D, D) array (then give ``spins``) or a TimeDependent.
        times: (K+1,) increasing segment edges in ħ/E0 (ps with ``units``). One segment [0, T] is a constant field.
        directions: b̂ (3,) or (M, 3), normalised here.
        sites: driven sites (default all).
        max_field: |v| ≤ max_field (E0; tesla with ``units``): the box bounds of the control, or None.
        units: a :class:`~qllg_jax.Units` (values in T, times in ps), or None (E0, ħ/E0).

    Example: ``control = design.pwc_field(q.dimer_model(), jnp.linspace(0, 4, 9), sites=[0], max_field=1.0)``, then
    ``design.fit(design.solve_loss(control, rho0, ts, objective), control.init(0.1), bounds=control.bounds)``.
    """
    spins = _control_spins(H0, spins)
    times = np.asarray(real_array(times, "times"), dtype=float)
    if units is not None:
        times = units.time(times)
    fields = _unit_fields(spins, directions, sites, units, g)
    pwc(times, np.zeros(max(times.shape[0] - 1, 1) if times.ndim == 1 else 1), fields[0])  # validates times
    bound = None
    if max_field is not None:
        bound = check_positive(max_field, "max_field")
    return FieldControl(H0, fields, device_array(times), None if bound is None else -bound,
                        None if bound is None else bound)


def pulse_field(H0, pulse: Callable, direction=(0.0, 0.0, 1.0), *, sites=None, bounds=None, spins=None,
                units=None, g: float = 2.0) -> FieldControl:
    r"""A shaped field pulse: H(t; p) = H0 − f(t; p) Σ_{k∈sites} b̂·S_k with f = ``pulse(params)``.

    Args:
        H0: a SpinModel, a (D, D) array (then give ``spins``) or a TimeDependent.
        pulse: params → a :mod:`qllg_jax.pulses` pulse (or a real function of t), e.g.
            ``lambda p: q.pulses.gaussian(p["amplitude"], 2.0, p["width"]) * q.pulses.cosine(1.0, 2.0, p["phase"])``;
            its amplitude is the field in E0 (tesla with ``units``; build the pulse's times with the same units).
        direction: b̂ (3,), normalised here.
        bounds: a dict name → (lower, upper) for some parameters of a dict ``params`` (the others unbounded), or a
            (lower, upper) pair as :func:`fit` takes it; None: unbounded.
    """
    if not callable(pulse):
        raise ValueError(f"pulse must be a callable params -> pulse, got {type(pulse).__name__}")
    spins = _control_spins(H0, spins)
    if np.shape(direction) != (3,):
        raise ValueError(f"direction must be a 3-vector, got shape {np.shape(direction)}")
    fields = _unit_fields(spins, direction, sites, units, g)
    lower = upper = None
    if isinstance(bounds, dict):
        for name, pair in bounds.items():
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"bounds[{name!r}] must be a pair (lower, upper), got {pair!r}")
        lower = {name: pair[0] for name, pair in bounds.items()}
        upper = {name: pair[1] for name, pair in bounds.items()}
    elif bounds is not None:
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"bounds must be a dict name -> (lower, upper) or a pair (lower, upper), got {bounds!r}")
        lower, upper = bounds
    return FieldControl(H0, fields, None, lower, upper, pulse)


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
