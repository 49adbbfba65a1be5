r"""Time-dependent Hamiltonians as values: H(t) = H0 + Σ_k c_k(t) H_k + Σ_j F_j(t).

Constructors (names as in dynamiqs): :func:`modulated` (f(t)·H1), :func:`pwc` (piecewise-constant
values[k]·H1 on [times[k], times[k+1])), :func:`timecallable` (fn(t) → (D, D)) and :func:`constant`. They
are small :class:`eqx.Module` pytrees sharing the interface of :class:`TimeDependent`; ``+``, ``-`` and
multiplication by real scalars build sums, with H0 a NumPy array, a JAX array or a
:class:`~qllg_jax.SpinModel` on either side::

    H = H0 + q.modulated(lambda t: a * jnp.sin(w * t), H1) + q.pwc(times, values, H2)

Units are those of the solver: energies (H, f·H1) in E0, times in ħ/E0 (see :mod:`qllg_jax.units`;
:mod:`qllg_jax.pulses` builds f from physical units).

User functions become pytrees: a plain Python function is closure-converted once
(:func:`jax.closure_convert`), so values it closes over that are being traced — an amplitude inside
``jax.grad``, ``jax.jit`` or ``jax.vmap`` — are leaves of the Hamiltonian and flow through the integration;
a :class:`jax.tree_util.Partial` or an :class:`eqx.Module` (every :mod:`~qllg_jax.pulses` pulse) is a pytree
already, and a new value of its leaves does not recompile (a new lambda is a new function: it compiles once).

Batches: leading axes of ``pwc`` values, of a pulse's parameters and of a constant (..., D, D) array are
batch axes (``batch_shape``, broadcast over the terms); ``H(t)`` then has shape batch_shape + (D, D).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._arrays import device_array
from ._checks import TOL, as_array, check_hamiltonian, concrete_value, is_concrete, real_array
from .hamiltonians import SpinModel
from .methods._operator import Operator, as_operator

WRAP_HINT = ("wrap a function of t: q.modulated(f, H1) for f(t)·H1 with f a real scalar function, or "
             "q.timecallable(fn) for fn(t) -> (D, D); add a constant part with H0 + ...")


# ----------------------------------------------------------------------------------------------------------
# user functions as pytrees


class _ClosureConverted(eqx.Module):
    """A user function f(t) with the traced values it closes over hoisted into ``consts`` (pytree leaves)."""

    fn: Callable = eqx.field(static=True)
    consts: tuple

    def __call__(self, t):
        return self.fn(device_array(t, dtype=float), *self.consts)


def _as_pytree_function(f, name: str):
    """``f`` as a pytree callable of t: Modules and Partials as they are, other callables closure-converted."""
    if isinstance(f, TimeDependent) or isinstance(f, SpinModel):
        raise TypeError(f"{name} must be a function of t, got a {type(f).__name__} (an operator, not a function)")
    if not callable(f):
        raise TypeError(f"{name} must be a function of t (a JAX-traceable callable), got {type(f).__name__}")
    if isinstance(f, (eqx.Module, jtu.Partial)):
        return f
    try:
        fn, consts = jax.closure_convert(f, jnp.zeros((), dtype=float))
    except jax.errors.ConcretizationTypeError as error:
        raise ValueError(f"{name} must be JAX-traceable in t (use jnp.where, not Python `if`, on t): {error}") from None
    return _ClosureConverted(fn, tuple(consts))


@eqx.filter_jit
def sample(f, grid):
    """f at every time of ``grid`` (n,) in ONE compiled program (an eager ``jax.vmap`` would compile a kernel per
    operation of f); f a pytree callable (a Module, Partial or closure-converted function): new parameter values of
    the same f reuse the program."""
    return jax.vmap(f)(grid)


def _output_shape(f, name: str):
    """Shape and dtype of f(t) for a scalar float t, by abstract evaluation (no compute)."""
    try:
        out = jax.eval_shape(f, jax.ShapeDtypeStruct((), jnp.float64))
    except Exception as error:  # noqa: BLE001  (any failure of the user's function, reported with its name)
        raise ValueError(f"{name} could not be evaluated at a scalar time t: {type(error).__name__}: {error}") from None
    if not hasattr(out, "shape"):
        raise ValueError(f"{name} must return an array, got {type(out).__name__}")
    return out.shape, out.dtype


def _real_scalar_function(f, name: str, allow_batch: bool):
    """A pytree function of t returning a real array (shape () unless ``allow_batch``); checked abstractly."""
    f = _as_pytree_function(f, name)
    shape, dtype = _output_shape(f, name)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError(f"{name} must return real values: a complex f(t) makes f(t)·H1 non-Hermitian (write "
                         f"Re f·H1 + Im f·H2 with two Hermitian operators); got dtype {dtype}")
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer) or dtype == bool):
        raise ValueError(f"{name} must return real numbers, got dtype {dtype}")
    if shape != () and not allow_batch:
        raise ValueError(f"{name} must return a scalar f(t) (shape ()), got shape {shape}; for a batch of drives "
                         f"use jax.vmap, pwc values with leading axes, or a pulse with batched parameters")
    return f, shape


def _sorted_times(*arrays):
    """Sorted concatenation of 1-D time arrays (numpy when all are concrete), without gradients."""
    arrays = [a for a in arrays if a is not None and np.size(a) > 0]
    if not arrays:
        return np.zeros((0,))
    if all(is_concrete(a) for a in arrays):
        return np.sort(np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in arrays]))
    return jnp.sort(jnp.concatenate([jnp.ravel(jax.lax.stop_gradient(device_array(a, dtype=float))) for a in arrays]))


def _declared_times(discontinuity_ts, name="discontinuity_ts"):
    if discontinuity_ts is None:
        return np.zeros((0,))
    ts = real_array(discontinuity_ts, name)
    if ts.ndim > 1:
        raise ValueError(f"{name} must be a 1-D array of times, got shape {ts.shape}")
    return _sorted_times(ts.reshape(-1))


# ----------------------------------------------------------------------------------------------------------
# operators


def _check_operator(H1, name: str):
    """H1: a (D, D) Hermitian array (complex) or a SpinModel (returned as it is)."""
    if isinstance(H1, SpinModel):
        return H1
    if isinstance(H1, TimeDependent):
        raise TypeError(f"{name} must be a constant operator (a (D, D) array or a SpinModel), got a {type(H1).__name__}")
    if callable(H1):
        raise TypeError(f"{name} must be a (D, D) Hermitian array or a SpinModel, got a function; {WRAP_HINT}")
    H1 = check_hamiltonian(as_array(H1, name), name)
    if H1.ndim != 2:
        raise ValueError(f"{name} must be one (D, D) matrix (batches go in the values/parameters), got shape {H1.shape}")
    return H1


def _operator_dim(H) -> int:
    return H.dim if isinstance(H, SpinModel) else H.shape[-1]


def _scale_model(model: SpinModel, factor) -> SpinModel:
    """factor·H for a SpinModel (every term of H is linear in b, J, D, Γ and K)."""
    names = ("field", "exchange", "dmi", "anisotropic_exchange", "anisotropy")
    return eqx.tree_at(lambda m: [getattr(m, n) for n in names], model, [factor * getattr(model, n) for n in names])


def _dense(H) -> jax.Array:
    return H.matrix() if isinstance(H, SpinModel) else device_array(H, dtype=complex)


def _is_pulse(f) -> bool:
    """A :mod:`qllg_jax.pulses` pulse, by its protocol (bound, step_ts, time_scale): pulses imports this module."""
    return isinstance(f, eqx.Module) and all(callable(getattr(f, n, None)) for n in ("bound", "step_ts", "sample"))


def _is_real_scalar(x) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, numbers.Real):
        return True
    return isinstance(x, (np.ndarray, np.generic, jax.Array)) and np.ndim(x) == 0 and not jnp.iscomplexobj(x)


# ----------------------------------------------------------------------------------------------------------
# the values


class TimeDependent(eqx.Module):
    r"""A Hamiltonian H(t) (energy units E0, t in ħ/E0): the common interface of all drive values.

    ``H(t)``: the dense H(t), shape batch_shape + (D, D), complex. ``terms``: the single terms of the sum.
    ``static``: the constant part as given (array or SpinModel; None when there is none). ``dim``: D.
    ``spins``: the sites of its SpinModel terms (None when all terms are dense). ``batch_shape``: the batch
    axes of its values and parameters. ``discontinuity_ts``: sorted times where H jumps (pwc edges, hard
    pulse edges, declared discontinuities) — step boundaries (diffrax ``jump_ts``). ``step_ts``: times where
    steps must land so a short pulse is not stepped over (a grid of spacing ≈ the pulse width over its support;
    diffrax ``step_ts``). ``time_scale``: the shortest drive time scale (pulse width, shortest pwc segment;
    None when no term declares one). :meth:`operator` builds the per-trajectory :class:`DrivenOperator` (dense
    or matrix-free) once before the time loop; :meth:`check` validates values on a time grid before compute.
    """

    __array_priority__ = 1000  # a NumPy array on the left defers to __radd__/__rmul__ ...
    __array_ufunc__ = None  # ... and never broadcasts H into an object array

    # --- the interface every single term implements
    @property
    def terms(self) -> tuple:
        return (self,)

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def discontinuity_ts(self):
        return np.zeros((0,))

    def step_ts(self):
        return np.zeros((0,))

    @property
    def time_scale(self):
        return None

    # --- derived from the terms
    @property
    def spins(self) -> tuple[float, ...] | None:
        models = [t.operator_ for t in self.terms if isinstance(getattr(t, "operator_", None), SpinModel)]
        return models[0].spins if models else None

    @property
    def static(self):
        """The constant part: the one constant term as given (array or SpinModel), a sum of several (dense
        unless all are arrays), or None."""
        constants = [t.operator_ for t in self.terms if isinstance(t, Constant)]
        if not constants:
            return None
        if len(constants) == 1:
            return constants[0]
        return sum(_dense(c) for c in constants)

    @property
    def drive(self) -> TimeDependent | None:
        """The time-dependent terms only (None when H is constant)."""
        drives = [t for t in self.terms if not isinstance(t, Constant)]
        if not drives:
            return None
        return drives[0] if len(drives) == 1 else DriveSum(tuple(drives))

    @property
    def is_piecewise_constant(self) -> bool:
        """True when every term is constant or pwc (closed forms exist segment by segment)."""
        return all(isinstance(t, (Constant, PWC)) for t in self.terms)

    def amplitude_bound(self, t0, t1):
        """Per term, a bound on |c_k(t)| over [t0, t1] (shape batch_shape of the term); see the terms."""
        return tuple(t._amplitude_bound(t0, t1) for t in self.terms)

    def operator(self, dense: bool) -> DrivenOperator:
        """The per-trajectory :class:`DrivenOperator` (unbatched H only): dense matrices (``dense=True``) or
        the local terms of SpinModel parts (matrix-free)."""
        if self.batch_shape != ():
            raise ValueError(f"H has batch shape {self.batch_shape}: build the operator per trajectory (jax.vmap "
                             f"over H.in_axes()) ")
        return DrivenOperator.build(self.terms, dense)

    def check(self, ts) -> None:
        """Validate the drive on the save times ``ts`` (and their midpoints) before compute: f(t) finite,
        timecallable matrices finite and Hermitian. Values that are traced are not checked."""
        grid = concrete_value(ts)
        if grid is None:
            return
        grid = np.asarray(grid, dtype=float).reshape(-1)
        if grid.size > 1:
            grid = np.sort(np.concatenate([grid, (grid[1:] + grid[:-1]) / 2]))
        for term in self.terms:
            term._check_on(grid)

    def in_axes(self):
        """A pytree like H with 0 on leaves that carry batch axes and None elsewhere (for ``jax.vmap`` after
        :meth:`broadcast_batch`)."""
        return DriveSum(tuple(t._in_axes() for t in self.terms)) if isinstance(self, DriveSum) else self._in_axes()

    def broadcast_batch(self, batch_shape=None) -> TimeDependent:
        """H with every batched leaf broadcast to ``batch_shape`` (default: H's own), so that
        ``jax.vmap(..., in_axes=(H.in_axes(),))`` maps all terms together (once per batch axis)."""
        shape = self.batch_shape if batch_shape is None else tuple(batch_shape)
        terms = tuple(t._broadcast(shape) for t in self.terms)
        return DriveSum(terms) if isinstance(self, DriveSum) else terms[0]

    # --- term defaults
    def _amplitude_bound(self, t0, t1):
        return jnp.ones(())

    def _check_on(self, grid) -> None:
        return None

    def _in_axes(self):
        return jtu.tree_map(lambda _: None, self)

    def _broadcast(self, shape):
        return self

    # --- arithmetic
    def __add__(self, other):
        other = _as_time_dependent(other, "the operand of +")
        if other is NotImplemented:
            return NotImplemented
        return DriveSum.of(self.terms + other.terms)

    def __radd__(self, other):
        other = _as_time_dependent(other, "the operand of +")
        if other is NotImplemented:
            return NotImplemented
        return DriveSum.of(other.terms + self.terms)

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        other = _as_time_dependent(other, "the operand of -")
        if other is NotImplemented:
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other):
        other = _as_time_dependent(other, "the operand of -")
        if other is NotImplemented:
            return NotImplemented
        return other + (-self)

    def __mul__(self, factor):
        if not _is_real_scalar(factor):
            return NotImplemented
        return DriveSum.of(tuple(t._scaled(factor) for t in self.terms))

    def __rmul__(self, factor):
        return self.__mul__(factor)


def _as_time_dependent(x, name):
    if isinstance(x, TimeDependent):
        return x
    if isinstance(x, SpinModel):
        return Constant(x)
    if callable(x) and not isinstance(x, (np.ndarray, jax.Array)):
        raise TypeError(f"{name} is a plain function; {WRAP_HINT}")
    if isinstance(x, (np.ndarray, jax.Array, list, tuple)) and np.ndim(x) >= 2:
        return constant(x)
    if _is_real_scalar(x):
        raise TypeError(f"cannot add the scalar {x!r} to a Hamiltonian: add c * identity (a (D, D) array) instead")
    return NotImplemented


class Constant(TimeDependent):
    """A constant H0: a (..., D, D) Hermitian array (leading axes are batch axes) or a SpinModel."""

    operator_: jax.Array | SpinModel

    @property
    def dim(self) -> int:
        return _operator_dim(self.operator_)

    @property
    def batch_shape(self):
        return () if isinstance(self.operator_, SpinModel) else tuple(self.operator_.shape[:-2])

    def __call__(self, t):
        return _dense(self.operator_)

    def _scaled(self, factor):
        if isinstance(self.operator_, SpinModel):
            return Constant(_scale_model(self.operator_, factor))
        return Constant(self.operator_ * factor)

    def _in_axes(self):
        return Constant(None if isinstance(self.operator_, SpinModel) else (0 if self.batch_shape else None))

    def _broadcast(self, shape):
        if isinstance(self.operator_, SpinModel) or not shape:
            return self
        return Constant(jnp.broadcast_to(self.operator_, shape + self.operator_.shape[-2:]))


class Modulated(TimeDependent):
    r"""H(t) = weight · f(t) · H1 with f a real scalar function of t (a pulse may carry batch axes)."""

    f: Callable
    operator_: jax.Array | SpinModel
    weight: jax.Array
    declared_ts: jax.Array

    @property
    def dim(self) -> int:
        return _operator_dim(self.operator_)

    @property
    def batch_shape(self):
        return tuple(getattr(self.f, "batch_shape", ()))

    def coefficient(self, t):
        """c(t) = weight·f(t), real, shape batch_shape."""
        return self.weight * device_array(self.f(t), dtype=float)

    def __call__(self, t):
        return self.coefficient(t)[..., None, None] * _dense(self.operator_)

    @property
    def discontinuity_ts(self):
        own = self.f.discontinuity_ts() if hasattr(self.f, "discontinuity_ts") else None
        return _sorted_times(self.declared_ts, own)

    def step_ts(self):
        return _sorted_times(self.f.step_ts()) if hasattr(self.f, "step_ts") else np.zeros((0,))

    @property
    def time_scale(self):
        return self.f.time_scale() if hasattr(self.f, "time_scale") else None

    def _amplitude_bound(self, t0, t1):
        if hasattr(self.f, "bound"):
            return jnp.abs(self.weight) * self.f.bound()
        grid = jnp.linspace(t0, t1, 257)  # a sampled estimate for a user function (no bound is known)
        return jnp.abs(self.weight) * jnp.max(jnp.abs(jax.vmap(self.f)(grid)), axis=0)

    def _check_on(self, grid):
        if not is_concrete(self.f, self.weight):
            return
        values = np.asarray(sample(self.f, device_array(grid)))
        bad = ~np.isfinite(values)
        if np.any(bad):
            where = grid[np.nonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0][0]]
            raise ValueError(f"modulated: f(t) is not finite (NaN or inf) at t = {where:.6g}")

    def _scaled(self, factor):
        return eqx.tree_at(lambda m: m.weight, self, self.weight * factor)

    def _in_axes(self):
        axes = jtu.tree_map(lambda _: None, self)
        if self.batch_shape:
            axes = eqx.tree_at(lambda m: m.f, axes, jtu.tree_map(lambda _: 0, self.f))
        return axes

    def _broadcast(self, shape):
        if not shape or not hasattr(self.f, "broadcast_batch"):
            return self
        return eqx.tree_at(lambda m: m.f, self, self.f.broadcast_batch(shape))


class PWC(TimeDependent):
    r"""H(t) = weight · values[..., k] · H1 for t ∈ [times[k], times[k+1]) (the last segment closed: [times[K−1],
    times[K]]), zero outside [times[0], times[K]].

    ``times`` (K+1,) increasing, ``values`` (..., K) real (leading axes: batch), ``H1`` (D, D) or SpinModel."""

    times: jax.Array
    values: jax.Array
    operator_: jax.Array | SpinModel
    weight: jax.Array

    @property
    def dim(self) -> int:
        return _operator_dim(self.operator_)

    @property
    def batch_shape(self):
        return tuple(self.values.shape[:-1])

    def coefficient(self, t):
        """c(t) = weight·values[..., k(t)] (0 outside the segments), shape batch_shape."""
        t = device_array(t, dtype=float)
        times = device_array(self.times)
        index = jnp.clip(jnp.searchsorted(times, t, side="right") - 1, 0, self.values.shape[-1] - 1)
        # the last segment includes its right edge: when it is the end of the integration, the solver's last stage
        # is evaluated at exactly that time (with a half-open last segment reverse mode lost ≈ 13 % of
        # ∂/∂values[-1]; tests/test_drives.py::test_gradient_wrt_the_last_pwc_value_when_the_last_edge_is_t_end)
        inside = (t >= times[0]) & (t <= times[-1])
        return self.weight * jnp.where(inside, device_array(self.values)[..., index], 0.0)

    def __call__(self, t):
        return self.coefficient(t)[..., None, None] * _dense(self.operator_)

    @property
    def discontinuity_ts(self):
        return _sorted_times(self.times)

    @property
    def time_scale(self):
        return jnp.min(jnp.diff(jax.lax.stop_gradient(device_array(self.times))))

    def _amplitude_bound(self, t0, t1):
        return jnp.abs(self.weight) * jnp.max(jnp.abs(device_array(self.values)), axis=-1)

    def _scaled(self, factor):
        return eqx.tree_at(lambda m: m.weight, self, self.weight * factor)

    def _in_axes(self):
        axes = jtu.tree_map(lambda _: None, self)
        return eqx.tree_at(lambda m: m.values, axes, 0, is_leaf=lambda x: x is None) if self.batch_shape else axes

    def _broadcast(self, shape):
        if not shape:
            return self
        return eqx.tree_at(lambda m: m.values, self, jnp.broadcast_to(self.values, shape + self.values.shape[-1:]))


class TimeCallable(TimeDependent):
    """H(t) = weight · fn(t) with fn returning a Hermitian (D, D) array (dense only)."""

    fn: Callable
    weight: jax.Array
    declared_ts: jax.Array
    size: int = eqx.field(static=True)

    @property
    def dim(self) -> int:
        return self.size

    def __call__(self, t):
        return self.weight * device_array(self.fn(t), dtype=complex)

    @property
    def discontinuity_ts(self):
        return _sorted_times(self.declared_ts)

    def _amplitude_bound(self, t0, t1):
        return jnp.abs(self.weight)

    def _check_on(self, grid):
        if not is_concrete(self.fn, self.weight):
            return
        values = np.asarray(sample(self.fn, device_array(grid)))
        finite = np.isfinite(values).all(axis=(-2, -1))
        if not finite.all():
            raise ValueError(f"timecallable: fn(t) is not finite (NaN or inf) at t = {grid[np.argmin(finite)]:.6g}")
        error = np.max(np.abs(values - np.conj(np.swapaxes(values, -1, -2))), axis=(-2, -1))
        scale = np.maximum(1.0, np.max(np.abs(values), axis=(-2, -1)))
        if np.any(error > TOL.hermitian * scale):
            k = int(np.argmax(error / scale))
            raise ValueError(f"timecallable: fn(t) is not Hermitian at t = {grid[k]:.6g}: max |H - H^†| = {error[k]:.3g}")

    def _scaled(self, factor):
        return eqx.tree_at(lambda m: m.weight, self, self.weight * factor)


class DriveSum(TimeDependent):
    """A sum of terms (constant, modulated, pwc, timecallable); built by ``+``."""

    terms_: tuple

    @classmethod
    def of(cls, terms) -> TimeDependent:
        """The sum of ``terms`` after checking they act on one space (same D; SpinModels on the same sites)."""
        terms = tuple(terms)
        spins = {t.operator_.spins for t in terms if isinstance(getattr(t, "operator_", None), SpinModel)}
        if len(spins) > 1:
            raise ValueError(f"a drive SpinModel must be on the sites of H0's SpinModel: got spins {sorted(spins)} "
                             f"(build the drive with the same spins, zero field on the undriven sites)")
        dims = {t.dim for t in terms}
        if len(dims) > 1:
            raise ValueError(f"the terms of H act on spaces of different dimension D: {sorted(dims)}")
        shapes = [t.batch_shape for t in terms]
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"the batch shapes of the terms of H do not broadcast: {shapes}") from None
        return terms[0] if len(terms) == 1 else cls(terms)

    @property
    def terms(self):
        return self.terms_

    @property
    def dim(self) -> int:
        return self.terms_[0].dim

    @property
    def batch_shape(self):
        return tuple(np.broadcast_shapes(*[t.batch_shape for t in self.terms_]))

    def __call__(self, t):
        return sum(term(t) for term in self.terms_)

    @property
    def discontinuity_ts(self):
        return _sorted_times(*[t.discontinuity_ts for t in self.terms_])

    def step_ts(self):
        return _sorted_times(*[t.step_ts() for t in self.terms_])

    @property
    def time_scale(self):
        scales = [s for s in (t.time_scale for t in self.terms_) if s is not None]
        if not scales:
            return None
        return scales[0] if len(scales) == 1 else jnp.min(jnp.stack([jnp.min(device_array(s)) for s in scales]))


# ----------------------------------------------------------------------------------------------------------
# constructors


def constant(H) -> Constant:
    """A constant H0: a (..., D, D) Hermitian array (leading axes: batch) or a :class:`~qllg_jax.SpinModel`."""
    if isinstance(H, SpinModel):
        return Constant(H)
    if isinstance(H, TimeDependent):
        return H
    if callable(H):
        raise TypeError(f"H is a plain function; {WRAP_HINT}")
    return Constant(check_hamiltonian(as_array(H, "H"), "H"))


def modulated(f, H1, *, discontinuity_ts=None) -> Modulated:
    r"""H(t) = f(t)·H1.

    Args:
        f: a JAX-traceable real scalar function of t (ħ/E0), e.g. ``lambda t: a * jnp.cos(w * t)`` or a
            :mod:`qllg_jax.pulses` pulse (whose parameters may carry batch axes). Values it closes over may be
            traced (grad/jit/vmap).
        H1: a Hermitian (D, D) array or a :class:`~qllg_jax.SpinModel` (matrix-free, e.g. a field on some sites),
            energy units E0.
        discontinuity_ts: times where f jumps (step boundaries), optional.

    Raises:
        TypeError/ValueError before compute: f not callable, not traceable, returning complex or non-scalar values;
        H1 not Hermitian or not (D, D).
    """
    f, _ = _real_scalar_function(f, "f", allow_batch=_is_pulse(f))
    H1 = _check_operator(H1, "H1")
    return Modulated(f, H1, np.ones(()), _declared_times(discontinuity_ts))


def pwc(times, values, H1) -> PWC:
    r"""Piecewise-constant H(t) = values[..., k]·H1 on [times[k], times[k+1]) (the last one closed), zero outside.

    Args:
        times: (K+1,) strictly increasing segment edges (ħ/E0).
        values: (..., K) real amplitudes (may be traced: what pulse design differentiates); leading axes are
            batch axes.
        H1: a Hermitian (D, D) array or a SpinModel (energy units E0).
    """
    times = real_array(times, "times")
    if times.ndim != 1 or times.shape[0] < 2:
        raise ValueError(f"pwc: times must be a 1-D array of K+1 >= 2 segment edges, got shape {times.shape}")
    value = concrete_value(times)
    if value is not None:
        if not np.all(np.isfinite(value)):
            raise ValueError("pwc: times must be finite")
        if not np.all(np.diff(value) > 0):
            k = int(np.argmin(np.diff(value) > 0))
            raise ValueError(f"pwc: times must be strictly increasing, but times[{k + 1}] = {value[k + 1]:.6g} <= "
                             f"times[{k}] = {value[k]:.6g}")
    values = real_array(values, "values", "a complex amplitude makes values·H1 non-Hermitian")
    if values.ndim < 1 or values.shape[-1] != times.shape[0] - 1:
        raise ValueError(f"pwc: values must have shape (..., K) with K = len(times) - 1 = {times.shape[0] - 1} "
                         f"(one value per segment), got shape {values.shape}")
    concrete = concrete_value(values)
    if concrete is not None and not np.all(np.isfinite(concrete)):
        raise ValueError("pwc: values contain NaN or inf")
    H1 = _check_operator(H1, "H1")
    return PWC(times, values, H1, np.ones(()))


def timecallable(fn, *, discontinuity_ts=None) -> TimeCallable:
    """H(t) = fn(t) for a JAX-traceable fn returning a Hermitian (D, D) array (energy units E0; dense only).

    Hermiticity and finiteness are checked on the save times before a solve (:meth:`TimeDependent.check`)."""
    fn = _as_pytree_function(fn, "fn")
    shape, dtype = _output_shape(fn, "fn")
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"timecallable: fn(t) must return a square (D, D) matrix, got shape {shape}")
    return TimeCallable(fn, np.ones(()), _declared_times(discontinuity_ts), shape[-1])


# ----------------------------------------------------------------------------------------------------------
# per-trajectory operator


class DrivenOperator(eqx.Module):
    r"""H(t) for ONE trajectory, prepared once before the time loop:

    H(t) = static + Σ_k c_k(t)·parts[k] + Σ_j callables[j](t),

    with ``static`` and ``parts`` :class:`~qllg_jax.methods._operator.Operator` s (dense, or the local terms of
    a SpinModel) and c_k(t) the real coefficients of the modulated/pwc terms (``coefficients``)."""

    static: Operator | None
    parts: tuple
    coefficients: tuple
    callables: tuple
    dim: int = eqx.field(static=True)

    @classmethod
    def build(cls, terms, dense: bool) -> DrivenOperator:
        constants = [t for t in terms if isinstance(t, Constant)]
        static = None
        if constants:
            ops = [as_operator(t.operator_, dense) for t in constants]
            static = ops[0] if len(ops) == 1 else _sum_operators(ops, dense)
        driven = [t for t in terms if isinstance(t, (Modulated, PWC))]
        parts = tuple(as_operator(t.operator_, dense) for t in driven)
        callables = tuple(t for t in terms if isinstance(t, TimeCallable))
        return cls(static, parts, tuple(driven), callables, terms[0].dim)

    @property
    def discontinuity_ts(self):
        """Sorted times where this H(t) jumps (pwc edges, declared jumps): the closed forms' interval edges."""
        return _sorted_times(*[c.discontinuity_ts for c in self.coefficients + self.callables])

    @property
    def is_piecewise_constant(self) -> bool:
        """No modulated or timecallable part: H(t) is constant between :attr:`discontinuity_ts`."""
        return not self.callables and all(isinstance(c, PWC) for c in self.coefficients)

    def coefficient_values(self, t) -> jax.Array:
        """(c_k(t)) for the modulated/pwc parts, shape (K,) (real)."""
        if not self.coefficients:
            return jnp.zeros((0,))
        return jnp.stack([c.coefficient(t) for c in self.coefficients])

    def apply(self, t, x):
        """H(t)·x for x (D,) or (D, r)."""
        out = jnp.zeros(x.shape, dtype=jnp.result_type(x.dtype, jnp.complex64))
        if self.static is not None:
            out = out + self.static.apply(x)
        for c, op in zip(self.coefficient_values(t), self.parts):
            out = out + c * op.apply(x)
        for fn in self.callables:
            out = out + fn(t) @ x
        return out

    def matrix(self, t) -> jax.Array:
        """Dense H(t), (D, D)."""
        out = jnp.zeros((self.dim, self.dim), dtype=complex)
        if self.static is not None:
            out = out + self.static.matrix()
        for c, op in zip(self.coefficient_values(t), self.parts):
            out = out + c * op.matrix()
        for fn in self.callables:
            out = out + fn(t)
        return out

    def at(self, t) -> Operator:
        """H(t) as one :class:`Operator`: the SpinModel local terms with the coefficients folded in when every part
        is a SpinModel (matrix-free), else the dense H(t) (a dense H0 or a timecallable part: D is small anyway)."""
        ops = ([self.static] if self.static is not None else []) + list(self.parts)
        if self.callables or any(op.dense is not None for op in ops):  # a dense part: the whole H(t) is dense
            return Operator(self.matrix(t))
        weights = [jnp.ones(())] * (self.static is not None) + list(self.coefficient_values(t))
        return _sum_operators(ops, False, weights)

    def spectral_width(self, t0, t1) -> jax.Array:
        """W ≥ max_t (E_max − E_min) of H(t) on [t0, t1] (energy units): the static width plus Σ_k
        max|c_k|·width(part_k) (triangle inequality), callables sampled on 65 points."""
        width = self.static.spectral_width() if self.static is not None else jnp.zeros(())
        for term, op in zip(self.coefficients, self.parts):
            width = width + term._amplitude_bound(t0, t1) * op.spectral_width()
        for fn in self.callables:
            grid = jnp.linspace(t0, t1, 65)
            energies = jnp.linalg.eigvalsh(jax.vmap(fn)(grid))
            width = width + jnp.max(energies[:, -1] - energies[:, 0])
        return width


def _sum_operators(ops, dense: bool, weights=None) -> Operator:
    """Σ w_i op_i as one Operator (dense matrices added, or local terms of SpinModels on the same sites)."""
    weights = weights if weights is not None else [jnp.ones(())] * len(ops)
    if dense or any(op.dense is not None for op in ops):
        return Operator(sum(w * op.matrix() for w, op in zip(weights, ops)))
    site_terms = [sum(w * op.site_terms[k] for w, op in zip(weights, ops)) for k in range(len(ops[0].site_terms))]
    bond_terms, bonds = [], []
    for w, op in zip(weights, ops):
        bond_terms += [w * b for b in op.bond_terms]
        bonds += list(op.bonds)
    return Operator(None, site_terms, bond_terms, ops[0].dims, tuple(bonds))


def as_time_dependent(H, name: str = "H") -> TimeDependent:
    """H as a :class:`TimeDependent` (arrays and SpinModels become :func:`constant`); a plain Python callable
    raises TypeError saying how to wrap it."""
    if isinstance(H, TimeDependent):
        return H
    if callable(H) and not isinstance(H, SpinModel):
        raise TypeError(f"{name} is a plain Python function; {WRAP_HINT}")
    return constant(H)


def drive_times(H, ts=None) -> tuple:
    """(jump_ts, step_ts) of a driven H for the step-size controller, or (None, None): the drive's
    discontinuities (pwc edges, hard pulse edges, declared jumps) and the σ-spaced grid of its short pulses (so
    a pulse arriving while the state is at rest is not stepped over).

    With the save times ``ts`` (T,), times within round-off of the integration's ends ts[0], ts[-1] are moved
    onto them too (a grid point at 5.6e-17 = −0.3 + 0.3 after t0 = 0 would ask for a 5.6e-17 step)."""
    if not isinstance(H, TimeDependent):
        return None, None
    jumps, steps = H.discontinuity_ts, H.step_ts()
    ends = None if ts is None else (np if is_concrete(ts) else jnp).asarray(ts, dtype=float)[np.array([0, -1])]
    if np.size(jumps) and ends is not None:
        jumps = _snap_to(jumps, ends)
    if np.size(steps):
        targets = [t for t in (jumps if np.size(jumps) else None, ends) if t is not None]
        for target in targets:
            steps = _snap_to(steps, target)
    return (jumps if np.size(jumps) else None), (steps if np.size(steps) else None)


SNAP_TOL = 1e-12
"""Step times within SNAP_TOL·(1 + |t|) of a jump are moved onto it: a pulse grid point and a pwc edge that differ
by round-off (0.5 − 3·0.1 vs 0.2) would otherwise make the clipping controller take ulp-sized steps between them
until the step size collapses."""


def _snap_to(steps, jumps):
    """``steps`` (S,) with each time that is within :data:`SNAP_TOL` of one of ``jumps`` (J,) replaced by it
    (numpy or jax; shapes kept, so traced times work)."""
    xp = np if is_concrete(steps, jumps) else jnp
    steps, jumps = xp.asarray(steps, dtype=float), xp.asarray(jumps, dtype=float)
    distance = xp.abs(steps[:, None] - jumps[None, :])
    nearest = xp.argmin(distance, axis=1)
    close = xp.min(distance, axis=1) <= SNAP_TOL * (1 + xp.abs(steps))
    return xp.where(close, jumps[nearest], steps)


def is_driven(H) -> bool:
    """True when H is a :class:`TimeDependent` with at least one time-dependent term."""
    return isinstance(H, TimeDependent) and H.drive is not None


__all__ = ["TimeDependent", "Constant", "Modulated", "PWC", "TimeCallable", "DriveSum", "DrivenOperator",
           "constant", "modulated", "pwc", "timecallable", "as_time_dependent", "drive_times", "is_driven"]

