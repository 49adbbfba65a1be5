r"""The host preparation of :func:`qllg_jax.solve` (and :func:`~qllg_jax.estimate_memory`): inputs read and checked
once, the method resolved, the initial state prepared — no compute.

Values known on the host (also numpy constants closed over inside ``jax.jit``) are checked here, before any
compute (:mod:`qllg_jax._checks`); inputs that are traced get runtime checks in the compiled core
(:class:`~qllg_jax._core.InputChecks`). Resolving the method from host values makes eager calls, ``jit``,
``vmap``, ``jit(vmap)`` and ``grad`` choose the same method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import numpy as np

from ._arrays import as_array, host_value, is_concrete
from ._checks import check_finite, check_hamiltonian, check_kappa, check_times
from ._core import InputChecks
from ._options import SolveOptions
from .drives import WRAP_HINT, TimeDependent, is_driven
from .hamiltonians import SpinModel
from .methods import Method, read_initial_state, resolve_method
from .methods.resolve import auto_method_name
from .methods._observables import Observables

OBSERVABLES_MAX_DIM = 2048
"""Callable observables get the dense ϱ (D, D) on the ket / frame methods: only up to this D."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """One solve's inputs as the compiled core takes them.

    Attributes:
        method: the resolved :class:`~qllg_jax.methods.Method`.
        H: dense H (..., D, D) (numpy when known on the host) or a SpinModel; a driven H will be kept as given
            here and evaluated at t in the core (:func:`~qllg_jax._core.hamiltonian_at`).
        dim: D.
        y0, aux: the method's initial representation and its constant auxiliary arrays (batch axes of ϱ0 first).
        kappa: κ (...,); ts: save times (T,).
        batch: the broadcast batch shape of H, ϱ0 and κ.
        observables: the checked :class:`~qllg_jax.methods._observables.Observables`.
        checks: the runtime checks of traced inputs.
        eager: every input is concrete (the solve runs eagerly: failures raise on the host).
    """

    method: Method
    H: object
    dim: int
    y0: object
    aux: dict
    kappa: object
    ts: object
    batch: tuple[int, ...]
    observables: Observables
    checks: InputChecks
    eager: bool


def read_hamiltonian(H):
    """(H as passed into the compiled solve, D, batch shape, whether its values were checked on the host).

    A driven H (a :class:`~qllg_jax.TimeDependent` with a time-dependent term) is kept as given: the core builds
    its operator once and evaluates it at every t (:func:`~qllg_jax._core.hamiltonian_at`); its values are checked
    on the time grid by :func:`prepare`. Its batch shape (leading axes of pwc values or of a pulse's parameters)
    is a batch axis of the solve like the leading axes of a dense H. A TimeDependent without a drive is its constant part."""
    if isinstance(H, TimeDependent):
        if not is_driven(H):
            return read_hamiltonian(H.static)
        return H, H.dim, tuple(H.batch_shape), True  # batch axes of pwc values / pulse parameters: a batch of H
    if callable(H) and not isinstance(H, SpinModel) and not hasattr(H, "shape"):
        raise TypeError(f"H is a plain Python function; {WRAP_HINT}")
    if isinstance(H, SpinModel):
        return H, H.dim, tuple(jax.numpy.shape(H.field)[:-2]), is_concrete(H)
    raw = H
    H = check_hamiltonian(H, "H")
    value = host_value(raw, H)
    if value is not None:  # numpy goes into the compiled solve as is (no eager device op per call)
        H = np.asarray(value, dtype=complex)
    return H, H.shape[-1], tuple(H.shape[:-2]), value is not None


def _driven_method(method, state, dim: int, H):
    """``method`` for a driven H: "auto" picks as for the static part; a piecewise-constant H (constant + pwc
    terms) keeps the closed forms (exact, two_level: eq. 28 interval by interval), any other drive gets the
    integrating method of the same representation (exact → ket, two_level → frame)."""
    if isinstance(method, str) and method == "auto":
        name = auto_method_name(state, dim)
        return name if H.is_piecewise_constant else {"exact": "ket", "two_level": "frame"}.get(name, name)
    return method


def check_observable_names(observables) -> dict:
    """``observables`` (None or a dict name → callable or operator) as a dict with non-empty string names."""
    if observables is None:
        return {}
    if not isinstance(observables, Mapping):
        raise ValueError(f"observables must be a dict name -> callable or operator, got {type(observables).__name__}")
    for name in observables:
        if not isinstance(name, str) or not name:
            raise ValueError(f"observables: names must be non-empty strings, got {name!r}")
    return dict(observables)


def read_observables(observables, dim: int, method: Method) -> Observables:
    """The observables, checked: operators (D, D) finite (complex), callables allowed for this method and D."""
    observables = check_observable_names(observables)
    operators, functions = {}, []
    for name, value in observables.items():
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


def broadcast_batch(shapes: dict[str, tuple]) -> tuple[int, ...]:
    """The batch shape the leading axes of the named inputs broadcast to (ValueError naming them if they don't)."""
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"the batch axes do not broadcast: {listed} (leading axes of H, rho0 and kappa "
                         "must be equal or 1, numpy-style)") from None


def prepare(H, rho0, ts, kappa, options: SolveOptions, observables=None) -> Problem:
    """Read and check every input once, resolve ``options.method`` and prepare the initial state (see the module
    docstring). Raises ValueError naming the input, before any compute."""
    H, dim, h_batch, h_checked = read_hamiltonian(H)
    state = read_initial_state(rho0, dim)
    raw_ts, ts = ts, check_times(ts)
    raw_kappa, kappa = kappa, check_kappa(kappa)
    driven = is_driven(H)
    if driven and host_value(raw_ts, ts) is not None:
        H.check(np.asarray(host_value(raw_ts, ts)))  # H(t) finite and Hermitian on the save grid, before compute
    method = resolve_method(_driven_method(options.method, state, dim, H) if driven else options.method, state, dim,
                            strategy=options.strategy, gauge_fix=options.gauge_fix)
    if driven and method.closed_form and not H.is_piecewise_constant:
        raise ValueError(f"method {method.name!r} is a closed form for a constant or piecewise-constant H (constant "
                         "+ q.pwc terms); a modulated or timecallable drive needs an integrating method: 'dense', "
                         "'frame' or 'ket' (or method='auto')")
    observed = read_observables(observables, dim, method)
    y0, aux = method.initial(state)
    batch = broadcast_batch({"H": h_batch, "rho0": state.batch_shape, "kappa": tuple(kappa.shape)})
    traced_state = not state.known and state.kind != "frame"
    checks = InputChecks(
        state=state.array if traced_state else None, H=not h_checked, kappa=host_value(raw_kappa, kappa) is None,
        ts=host_value(raw_ts, ts) is None, pure=state.kind == "density" and method.representation == "kets",
    )
    eager = is_concrete(H, y0, aux, kappa, ts, observed)
    return Problem(method, H, dim, y0, aux, kappa, ts, batch, observed, checks, eager)
