r""":func:`qllg_jax.solve` at finite temperature: the stochastic q-LLG of :mod:`.frames`, returned as a :class:`Result`.

``solve(H, ϱ0, ts, κ, temperature=τ, key=key)`` with τ > 0 runs :func:`~qllg_jax.thermal.stochastic_frames` (the
thermal noise operator H(t) = H − Σ_k ξ_k(t)·S_k, D_k = κτ/s_k, Stratonovich, one unitary Cayley–Heun step per
fixed step; a driven H(t) as in :mod:`.drive`) once per key — a batch of keys (…, K) is vmapped, one trajectory
each — and records from the frames what a deterministic solve records (:meth:`~qllg_jax.methods.Method.record`:
trace, purity, energy Tr ϱH of the deterministic H (a driven H: Tr ϱ(t)H(t)), representation error, the
observables), in one compiled function. A pure ϱ0 gives the ``ket`` method's Result (``kets`` (…, T, D)), a mixed
one the ``frame`` method's (``frames`` (…, T, D, r), ``weights``).

Differences from the deterministic solve (documented in :func:`qllg_jax.solve`):

- the step is fixed: ``max_step`` sets it (None: chosen from the spectral width of H and the noise, see
  :mod:`.noise`); ``rtol``, ``atol``, ``solver``, ``max_steps``, ``gradient``, ``batching``, ``complex_state`` and
  ``progress`` are for the adaptive solve and are not used;
- ``Diagnostics.energy_increase`` is NaN: the thermal field does work, Tr ϱH(t) is not monotone (not measured);
- ``stats``: ``num_steps`` = ``num_accepted_steps`` = the fixed steps, ``num_rejected_steps`` = 0.

A new key or temperature (same ``max_step``) reuses the compilation: both are array leaves.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array, concrete_value, is_concrete
from .._checks import key_batch_shape
from .._core import hamiltonian_at
from .._failures import Failure
from .._prepare import read_observables
from ..drives import TimeDependent, is_driven
from ..hamiltonians import SpinModel
from ..methods import Frame, Ket, read_initial_state
from ..methods._operator import as_operator
from ..result import Diagnostics, Result, SolveError
from .frames import stochastic_frames
from .drive import split_drive
from .noise import host_times

THERMAL_METHODS = ("auto", "frame", "ket")
"""Methods at τ > 0: the stochastic integrator steps frames (kets are frames of rank 1)."""


def is_thermal(options) -> bool:
    """Whether a solve with these options runs the stochastic integrator: a temperature not known to be 0."""
    if options.temperature is None:
        return False
    value = concrete_value(options.temperature)
    return value is None or value != 0


def _static_model(H):
    """H itself (static or driven, checked for the stochastic integrator); a constant TimeDependent: its static part."""
    if isinstance(H, TimeDependent):
        split_drive(H)  # no batch axes
        return H if is_driven(H) else H.static
    if callable(H) and not isinstance(H, SpinModel) and not hasattr(H, "shape"):
        raise TypeError("H is a plain Python function; at temperature > 0 pass a SpinModel or a (D, D) matrix "
                        "with spins=")
    return H


def _method(options, rank: int):
    method = options.method
    name = method if isinstance(method, str) else getattr(method, "name", None)
    if name not in THERMAL_METHODS:
        raise ValueError(f"method={method!r} cannot run at temperature > 0: the stochastic integrator steps frames "
                         f"or kets; use method='auto', 'frame' or 'ket'")
    if name == "ket" and rank != 1:
        raise ValueError(f"method='ket' needs a pure rho0 (rank 1), got rank {rank}; use method='frame' or 'auto'")
    gauge_fix = method.gauge_fix if isinstance(method, Frame) else options.gauge_fix
    return (Ket() if rank == 1 and name != "frame" else Frame(gauge_fix=gauge_fix)), gauge_fix


def _dim(H) -> int:
    if isinstance(H, (SpinModel, TimeDependent)):
        return H.dim
    return int(np.shape(H)[-1])


def solve_thermal(H, rho0, ts, kappa, options, observables=None) -> Result:
    """The finite-temperature solve (module docstring); ``options``: a :class:`~qllg_jax._options.SolveOptions`
    with a temperature (not known to be 0)."""
    H = _static_model(H)
    if options.key is None:
        raise ValueError("key is required at temperature > 0: one jax.random key per trajectory (a batch of keys "
                         "(..., K) gives a batch of trajectories), e.g. key=jax.random.PRNGKey(0)")
    static = H.static if isinstance(H, TimeDependent) else H
    if isinstance(static, SpinModel) and static.field.ndim > 2:
        raise ValueError(f"H: a SpinModel with batch axes {tuple(H.field.shape[:-2])} is not accepted at "
                         "temperature > 0 (one model per solve; batch over keys, or jax.vmap over the model)")
    if static is not None and not isinstance(static, SpinModel) and np.ndim(static) > 2:
        raise ValueError(f"H: a batch of matrices {np.shape(H)} is not accepted at temperature > 0 (one H per solve; "
                         "batch over keys, or jax.vmap over H)")
    if options.spins is None and not isinstance(static, SpinModel) and getattr(H, "spins", None) is None:
        raise ValueError("H is a raw matrix: pass spins=[s_1, ..., s_N] (the site spins S_k the thermal field "
                         "couples to), or give H as a SpinModel (qllg_jax.spin_model)")
    if np.ndim(kappa) != 0:
        raise ValueError(f"kappa must be a scalar at temperature > 0 (one trajectory per key), got shape "
                         f"{np.shape(kappa)}")
    if options.temperature is not None and not is_concrete(options.temperature) and options.max_step is None:
        raise ValueError("max_step is required when the temperature is traced: the fixed step of the stochastic "
                         "integrator is chosen on the host from the noise strength")
    dim = _dim(H)
    state = read_initial_state(rho0, dim)
    weights0 = Frame().initial(state)[1]["weights"] if state.known else None
    rank = 1 if state.kind == "ket" else (np.shape(weights0)[-1] if weights0 is not None else dim)
    method, gauge_fix = _method(options, rank)
    observed = read_observables(observables, dim, method)
    ts = host_times(ts)
    batch = key_batch_shape(options.key)

    def run(key):
        return stochastic_frames(H, rho0, ts, kappa, temperature=options.temperature, key=key, spins=options.spins,
                                 equation=options.equation, dt=options.max_step, gauge_fix=gauge_fix)

    keys = options.key.reshape((-1,) + tuple(np.shape(options.key))[len(batch):]) if batch else options.key[None]
    trajectories = jax.vmap(run)(keys)
    steps = trajectories.steps
    # the energy Tr ϱH(t) of the deterministic H(t) (a driven H: its DrivenOperator, evaluated at every save time)
    operator = H.operator(method.needs_dense_H) if is_driven(H) else as_operator(H, dense=method.needs_dense_H)
    out = _record(method, operator, trajectories.frames, trajectories.weights, ts, observed, options.save_states,
                  steps)
    if not batch:
        out = jax.tree_util.tree_map(lambda x: x[0], out)
    else:
        out = jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)
    saved = out["saved"]
    weights = out["weights"] if isinstance(method, Frame) else None
    result = Result(ts=device_array(ts), observables=saved["observables"], invariants=saved["invariants"],
                    stats=out["stats"], success=out["success"], kets=saved.get("kets"), frames=saved.get("frames"),
                    weights=weights if "frames" in saved else None, stored_states=None, checks=out["diagnostics"],
                    method=method.name)
    if options.throw and is_concrete(result.success) and not np.all(np.asarray(result.success)):
        raise SolveError("the stochastic solve produced NaN/inf (check H, rho0 and the step max_step)")
    return result


@eqx.filter_jit
def _record(method, operator, frames, weights, ts, observables, save_states: bool, steps: int):
    """What a deterministic solve saves, from frames (n, T, D, r) with weights (n, r); n the flat key batch."""
    ket = isinstance(method, Ket)

    def one(frame_t, w):
        aux = {} if ket else {"weights": w}
        states = frame_t[..., 0] if ket else frame_t
        saved = jax.vmap(lambda y, t: method.record(y, hamiltonian_at(operator, t), aux, observables, save_states))(
            states, device_array(ts))
        return saved, method.spectrum_drift(states[-1], states[0], aux)

    saved, drift = jax.vmap(one)(frames, weights)
    n = frames.shape[0]
    finite = jnp.ones((n,), dtype=bool)
    for leaf in jax.tree_util.tree_leaves(saved):
        finite = finite & jnp.all(jnp.isfinite(leaf), axis=tuple(range(1, leaf.ndim)))
    failure = jnp.where(finite, Failure.NONE, Failure.NONFINITE).astype(jnp.int32)
    invariants = saved["invariants"]
    first = lambda x: x[..., :1]  # noqa: E731
    diagnostics = Diagnostics(
        trace_error=jnp.max(jnp.abs(invariants["trace"] - first(invariants["trace"])), axis=-1),
        hermiticity_error=jnp.max(invariants["representation_error"], axis=-1),
        purity_drift=jnp.max(jnp.abs(invariants["purity"] - first(invariants["purity"])), axis=-1),
        spectrum_drift=drift,
        # the thermal field does work: Tr ϱH(t) is not monotone at τ > 0 (NaN: not measured, never warned)
        energy_increase=jnp.full((n,), jnp.nan),
    )
    count = jnp.full((n,), steps, dtype=jnp.int32)
    stats = {"num_steps": count, "num_accepted_steps": count, "num_rejected_steps": jnp.zeros((n,), jnp.int32),
             "t_reached": jnp.full((n,), ts[-1]), "failure": failure}
    return {"saved": saved, "stats": stats, "success": failure == Failure.NONE, "diagnostics": diagnostics,
            "weights": weights}


class PreparedThermal:
    """A finite-temperature solve read on the host, not yet run (the counterpart of
    :class:`~qllg_jax.solve.PreparedSolve` for ``System.prepare`` and ``qllg run``): ``method``, ``nbytes`` (the
    saved states and the frames in flight, an estimate), :meth:`run`."""

    def __init__(self, H, rho0, ts, kappa, options, observables=None):
        self.args = (H, rho0, ts, kappa, options, observables)
        dim = _dim(_static_model(H))
        state = read_initial_state(rho0, dim)
        rank = 1 if state.kind == "ket" else np.shape(Frame().initial(state)[1]["weights"])[-1]
        self.method = _method(options, rank)[0]
        batch = key_batch_shape(options.key) if options.key is not None else ()
        self.nbytes = 16 * dim * rank * (np.shape(ts)[0] + 16) * max(1, math.prod(batch or ()))

    def run(self) -> Result:
        return solve_thermal(*self.args)
