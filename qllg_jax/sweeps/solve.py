r"""``sweep_solve``: :func:`qllg_jax.solve` over parameter points, one batched solve per chunk.

Each of H, ϱ0 and κ is a fixed value or a function of the point's parameters. Inside the compiled chunk
function the functions are vmapped over the chunk's points, giving H (n, D, D), ϱ0 (n, …) and κ (n,), and
``solve(H, ϱ0, ts, κ, throw=False)`` runs once on the batch (``batching="shared"``): the solver core integrates
a batch as one ODE with shared steps. ``batching="vmap"`` instead vmaps one solve per point (each point keeps
its own adaptive steps inside the vmapped while loop), which wins when stiffness differs a lot across points.

Before any compute, every function of the point is evaluated on the host at every point (a cheap jitted,
vmapped pass): each H(point) must be finite and Hermitian, each ϱ0(point) a valid state and each κ(point) ≥ 0,
else a ``ValueError`` names the argument, the point and the problem. The same values give the per-point
digests of the physics fingerprint (:mod:`~qllg_jax.sweeps.fingerprint`) that a resumed file is checked against.
"""

from __future__ import annotations

import inspect
import json
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array
from ..drives import PWC, Constant, Modulated, TimeDependent, is_driven
from .._checks import TOL, check_density_matrix, check_hamiltonian, check_kappa, check_ket, check_times
from .._options import BATCHING, SolveOptions, defaults, option_names
from .._prepare import check_observable_names, read_observables
from . import fingerprint as fp
from .engine import run_sweep, split_output
from .params import check_params, check_point_signature

RESERVED = ("throw", "observables", "save_states", "progress")
"""``solve`` arguments that ``sweep_solve`` sets itself."""
BATCH_ALIASES = {"solve": "shared"}
"""The earlier name of ``batching="shared"``, still accepted."""
_PREPASS_BYTES = 2**27
"""Bytes per evaluation chunk of the host pass over H / ϱ0 / κ (128 MiB)."""


def resolve_method(options: SolveOptions, rho0, dim: int, per_point: bool, driven=None):
    """The method object every point of the sweep runs — the core's :func:`qllg_jax.methods.resolve_method` of
    ``options.method`` (with ``options.strategy`` / ``gauge_fix``, as ``solve`` reads them).

    ``rho0`` is the fixed initial state or, when ϱ0 depends on the point (``per_point``), its value at the first
    point; ϱ0 is then traced inside the compiled chunk, so it is resolved as a traced state (a density matrix
    integrates densely, kets use the ket methods).
    """
    from ..methods import InitialState, read_initial_state
    from ..methods import resolve_method as resolve

    state = read_initial_state(rho0, dim)
    if per_point and state.kind != "frame":
        state = InitialState(state.kind, dim, array=state.array)
    method = options.method
    if driven is not None:  # as solve picks for a driven H (``driven``: its value at the first point)
        from .._prepare import _driven_method

        method = _driven_method(method, state, dim, driven)
    method = resolve(method, state, dim, strategy=options.strategy, gauge_fix=options.gauge_fix)
    if driven is not None and method.closed_form and not driven.is_piecewise_constant:
        raise ValueError(f"method {method.name!r} is a closed form for a constant or piecewise-constant H; a "
                         "modulated or timecallable drive needs an integrating method: 'dense', 'frame' or 'ket' "
                         "(or method='auto')")
    return method


def _call_with(fn, point: Mapping):
    """fn(**the entries of point that fn's signature names)."""
    signature = inspect.signature(fn)
    if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        return fn(**point)
    return fn(**{k: v for k, v in point.items() if k in signature.parameters})


def _is_function(x) -> bool:
    return callable(x) and not hasattr(x, "shape") and not _is_model(x) and not isinstance(x, TimeDependent)


def _is_model(x) -> bool:
    from ..hamiltonians import SpinModel

    return isinstance(x, SpinModel)


def check_solve_options(solve_options) -> dict:
    """``solve_options`` as a dict of known :func:`~qllg_jax.solve` keywords (unknown key: ValueError naming it)."""
    if solve_options is None:
        return {}
    if not isinstance(solve_options, Mapping):
        raise ValueError(f"solve_options must be a dict of solve() keyword arguments, got {type(solve_options).__name__}")
    allowed = [n for n in option_names() if n not in RESERVED]
    for key in solve_options:
        if key in RESERVED:
            raise ValueError(f"solve_options[{key!r}] is set by sweep_solve; pass it as its own argument (or not at all)")
        if key not in allowed:
            import difflib

            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"solve_options: unknown key {key!r}{hint}; allowed: {sorted(allowed)}")
    return dict(solve_options)


def _full_options(options: Mapping) -> dict:
    """Every solve option but those sweep_solve sets, with its default filled in (what the fingerprint records)."""
    return {**{n: v for n, v in defaults().items() if n not in RESERVED}, **options}


def _describe_option(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"type": fp._qualname(type(value)), "repr": fp._stable_repr(value)}


# ------------------------------------------------------------------------------------- host pass over inputs


def _point_text(params: Mapping, i: int) -> str:
    return ", ".join(f"{k}={np.asarray(v[i]).tolist()}" for k, v in params.items())


def _validate(name: str, batch, dim_hint, params, offset: int):
    """Check a batch (n, ...) of H / ϱ0 / κ values on the host; an invalid point raises naming it."""
    checks = {
        "H": lambda v: check_hamiltonian(v, "H(point)"),
        "kappa": lambda v: check_kappa(v, "kappa(point)"),
        "rho0": lambda v: (check_ket(v, "rho0(point)", dim_hint) if np.ndim(v) == 1 else
                           check_density_matrix(v, "rho0(point)", dim_hint)),
    }
    if isinstance(batch, TimeDependent):
        _check_driven_batch(batch, params, offset)
        return
    if _is_model(batch) or name not in checks:
        for leaf in jax.tree_util.tree_leaves(batch):
            bad = np.nonzero(~np.all(np.isfinite(np.asarray(leaf)).reshape(len(leaf), -1), axis=1))[0]
            if bad.size:
                i = offset + int(bad[0])
                raise ValueError(f"{name}(point) contains NaN or inf at point {i} ({_point_text(params, i)})")
        return
    values = np.asarray(batch)
    try:
        checks[name](values)  # the core's check of a batch, as solve() does for a concrete batch (vectorised)
    except ValueError as error:
        for i, value in enumerate(values):  # name the first invalid point
            try:
                checks[name](value)
            except ValueError as point_error:
                error, offset = point_error, offset + i
                break
        raise ValueError(f"{error} at point {offset} ({_point_text(params, offset)}); no point was computed") from None


def _check_driven_batch(batch, params, offset: int) -> None:
    """A batch (n leading axes) of driven H(point): every leaf finite, every dense operator Hermitian."""
    for leaf in jax.tree_util.tree_leaves(batch):
        leaf = np.asarray(leaf)
        if leaf.ndim == 0:
            continue
        bad = np.nonzero(~np.all(np.isfinite(leaf).reshape(len(leaf), -1), axis=1))[0]
        if bad.size:
            i = offset + int(bad[0])
            raise ValueError(f"H(point) contains NaN or inf at point {i} ({_point_text(params, i)})")
    for term in batch.terms:
        op = getattr(term, "operator_", None)
        if isinstance(term, (Constant, Modulated, PWC)) and op is not None and not _is_model(op):
            ops = np.asarray(op)
            error = np.max(np.abs(ops - np.conj(np.swapaxes(ops, -1, -2))).reshape(len(ops), -1), axis=1)
            bad = np.nonzero(error > TOL.hermitian * np.maximum(1.0, np.max(np.abs(ops).reshape(len(ops), -1), axis=1)))[0]
            if bad.size:
                i = offset + int(bad[0])
                raise ValueError(f"H(point): an operator of its {type(term).__name__} term is not Hermitian at point "
                                 f"{i} ({_point_text(params, i)}); no point was computed")


_HOST_EVALUATORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _host_evaluator(fn: Callable) -> Callable:
    """jit(vmap(point ↦ fn(point))), one per function (a repeated sweep does not recompile it)."""
    evaluate = jax.jit(jax.vmap(lambda p: _call_with(fn, p)))
    try:
        return _HOST_EVALUATORS.setdefault(fn, evaluate)
    except TypeError:
        return evaluate


def host_pass(functions: Mapping[str, Callable], params: Mapping, n_points: int) -> tuple[dict, dict]:
    """Evaluate every function of the point at every point (jit + vmap, in bounded chunks), validate the
    values, and return ({name: value at point 0}, {name: per-point digests uint64 (P,)})."""
    first, digests = {}, {}
    for name, fn in functions.items():
        evaluate = _host_evaluator(fn)
        one = {k: jax.ShapeDtypeStruct(np.shape(v)[1:], np.asarray(v).dtype) for k, v in params.items()}
        shapes = jax.eval_shape(lambda p, fn=fn: _call_with(fn, p), one)
        per_point = sum(int(np.prod(s.shape, dtype=np.int64)) * np.dtype(s.dtype).itemsize
                        for s in jax.tree_util.tree_leaves(shapes))
        size = int(max(1, min(n_points, _PREPASS_BYTES // max(per_point, 1))))
        out = np.empty(n_points, dtype=np.uint64)
        dim_hint = None
        for start in range(0, n_points, size):
            stop = min(start + size, n_points)
            index = np.minimum(np.arange(start, start + size), stop - 1)
            values = jax.device_get(evaluate({k: v[index] for k, v in params.items()}))
            values = jax.tree_util.tree_map(lambda x: np.asarray(x)[: stop - start], values)
            if start == 0:
                first[name] = jax.tree_util.tree_map(lambda x: x[0], values)
            _validate(name, values, dim_hint, params, start)
            leaves = jax.tree_util.tree_leaves(values)
            out[start:stop] = fp.point_digests({str(i): leaf for i, leaf in enumerate(leaves)})
        digests[name] = out
    return first, digests


# --------------------------------------------------------------------------------------- the chunk functions


_CHUNK_FUNCTIONS: OrderedDict = OrderedDict()
_CACHE_SIZE = 8


def _chunk_function(key, build):
    """A chunk function per (callables by identity, fixed values by digest, options): a repeated sweep_solve
    with the same inputs reuses its compilation."""
    if key not in _CHUNK_FUNCTIONS:
        _CHUNK_FUNCTIONS[key] = build()
        while len(_CHUNK_FUNCTIONS) > _CACHE_SIZE:
            _CHUNK_FUNCTIONS.popitem(last=False)
    _CHUNK_FUNCTIONS.move_to_end(key)
    return _CHUNK_FUNCTIONS[key]


def _build_chunk_function(H, rho0, ts, kappa, observables, save_states, options, batching):
    from ..solve import solve

    def value(x, point):
        return _call_with(x, point) if _is_function(x) else x

    if batching == "thermal":
        options = dict(options)
        temperature, root = options.pop("temperature"), jax.random.PRNGKey(options.pop("seed"))

        def chunk_fn(points, constants):
            def one(p):
                key = jax.random.fold_in(root, p[POINT_INDEX])
                return split_output(solve(value(H, p), rho0, ts, value(kappa, p), observables=observables,
                                          save_states=save_states, throw=False, temperature=temperature, key=key,
                                          **options))

            return jax.vmap(one)(points)
    elif batching == "shared":
        def chunk_fn(points, constants):
            n = jax.tree_util.tree_leaves(points)[0].shape[0]
            batch = lambda x: jax.vmap(lambda p: _call_with(x, p))(points) if _is_function(x) else x  # noqa: E731
            kappas = batch(kappa) if _is_function(kappa) else jnp.broadcast_to(device_array(kappa, float), (n,))
            result = solve(batch(H), batch(rho0), ts, kappas, observables=observables, save_states=save_states,
                           throw=False, **options)
            return split_output(result)
    else:
        def chunk_fn(points, constants):
            def one(p):
                return split_output(solve(value(H, p), value(rho0, p), ts, value(kappa, p), observables=observables,
                                          save_states=save_states, throw=False, **options))

            return jax.vmap(one)(points)

    return chunk_fn


POINT_INDEX = "point_index"
"""The parameter a finite-temperature sweep adds: each point's index, from which its noise key is folded."""


def _read_thermal(temperature, seed, params, n_points, H, rho0, kappa, options):
    """(τ, seed) of a finite-temperature sweep, None for a deterministic one (τ None or 0); checked before compute."""
    from ..thermal.noise import check_temperature

    if temperature is None:
        if seed is not None:
            raise ValueError("seed given without temperature (it sets the thermal noise; pass temperature=k_B T in E0)")
        return None
    tau = float(check_temperature(temperature))
    if tau == 0:
        return None
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a non-negative integer at temperature > 0 (the per-point noise keys are "
                         f"fold_in(PRNGKey(seed), point index)), got {seed!r}")
    if POINT_INDEX in params:
        raise ValueError(f"params[{POINT_INDEX!r}] is reserved at temperature > 0 (the point index of the noise key)")
    if _is_function(rho0):
        raise ValueError("rho0 must be fixed at temperature > 0 (the stochastic integrator takes its spectrum on the "
                         "host), not a function of the point")
    if (_is_function(H) or _is_function(kappa)) and options.get("max_step") is None:
        raise ValueError("solve_options['max_step'] is required at temperature > 0 when H or kappa depends on the "
                         "point: the fixed step of the stochastic integrator is chosen on the host")
    return tau, int(seed)


def _key_part(x):
    if _is_function(x):
        return ("function", x)
    if isinstance(x, TimeDependent):  # the drive's code too: static functions are not leaves
        return ("value", json.dumps([fp.describe_tree(x), fp.describe_drive(x)], sort_keys=True))
    return ("value", json.dumps(fp.describe_tree(x), sort_keys=True))


# --------------------------------------------------------------------------------------------- sweep_solve


def sweep_solve(
    H,
    rho0,
    ts,
    kappa,
    params: Mapping,
    *,
    observables=None,
    save_states: bool = False,
    solve_options=None,
    batching: str = "auto",
    temperature=None,
    seed: int | None = None,
    **sweep_options,
):
    r"""Sweep :func:`qllg_jax.solve` over parameter points: the common case of :func:`~qllg_jax.sweep`.

    Each of ``H``, ``rho0`` and ``kappa`` is a fixed value or a function of the point's parameters (it gets
    the entries of ``params`` its signature names), e.g. ``H=lambda J, D: dimer_hamiltonian(J=J, D=(0, 0, D))``
    (JAX-traceable). Every point runs ``solve(H, rho0, ts, kappa, observables=observables,
    save_states=save_states, throw=False, invariant_tol=None, **solve_options)``; a failed point (max_steps,
    step-size collapse, NaN) is recorded with its reason and the others finish.

    Args:
        H: Hamiltonian (D, D) or SpinModel, or a function of the parameters returning one.
        rho0: initial state (D, D) or ket (D,), or a function of the parameters.
        ts: save times (T,) shared by all points, units ħ/E0.
        kappa: damping κ ≥ 0 (scalar) or a function of the parameters.
        params: dict name → array (P, ...) (see :func:`~qllg_jax.grid`).
        observables: dict name → callable ϱ ↦ array or operator (D, D), as in :func:`~qllg_jax.solve`.
        save_states: also keep ϱ(t) for every point (P, T, D, D) (memory! see ``keep_in_memory``).
        solve_options: further keyword arguments of :func:`~qllg_jax.solve` (rtol, atol, solver, method,
            max_steps, equation, ...); an unknown key is a ValueError naming it.
        batching: as in :func:`~qllg_jax.solve`: ``"shared"``: one batched solve per chunk (shared steps; the
            earlier name ``"solve"`` is still accepted); ``"vmap"``: one solve per point, vmapped (own steps per
            point; better when stiffness differs a lot across points); ``"auto"`` (default): ``"shared"``, and a
            chunk in which some point failed is computed again with ``"vmap"``, so that a stiff point that hits
            ``max_steps`` fails alone instead of taking its chunk with it.
        temperature: τ = k_B T ≥ 0 in E0 shared by every point (None: no noise; 0: the deterministic sweep).
            τ > 0: every point is one trajectory of ``solve(..., temperature=τ, key=k_i)`` with
            k_i = ``fold_in(PRNGKey(seed), i)``, i the point's index in ``params`` (added to the result's params
            as ``point_index``): a resumed or chunked sweep draws the same noise bit for bit, and points with equal
            parameters but different indices are independent trajectories (an ensemble: repeat a point). Needs
            ``seed``; ϱ0 fixed (not a function of the point); ``solve_options["max_step"]`` (the fixed step) when H
            or κ depends on the point; each point is solved alone (``batching`` is not used).
        seed: the integer the per-point keys are derived from (required with temperature > 0).
        **sweep_options: keyword arguments of :func:`~qllg_jax.sweep` (chunk_size, devices, progress, out,
            config, overwrite, keep_in_memory, ...).

    ``method="auto"`` is resolved once on the host (:func:`resolve_method`) from the fixed ϱ0 (e.g. the exact
    two-level reduction for Werner states, no time stepping) or from ϱ0 at the first point.

    Returns:
        :class:`~qllg_jax.SweepResult`; ``outputs["observables"][name]`` has shape (P, T, ...).

    Raises:
        ValueError before any compute: invalid fixed inputs, an invalid H / ϱ0 / κ at any point (named),
        unknown solve options, a stored ``out`` holding other physics (the message names what changed).
    """
    if BATCH_ALIASES.get(batching, batching) not in BATCHING:
        raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
    for reserved in ("ts", "fingerprint", "physics"):
        if reserved in sweep_options:
            raise ValueError(f"{reserved!r} is not an option of sweep_solve")
    ts = np.asarray(check_times(ts))
    options = check_solve_options(solve_options)
    for name in ("temperature", "key"):
        if name in options:
            raise ValueError(f"solve_options[{name!r}]: a sweep draws its noise itself; pass sweep_solve(..., "
                             "temperature=tau, seed=n) (per-point keys fold_in(PRNGKey(seed), point index))")
    options.setdefault("invariant_tol", None)
    read = SolveOptions.read(**options)  # every option checked once, before any compute
    params_np, n_points = check_params(params)
    thermal = _read_thermal(temperature, seed, params_np, n_points, H, rho0, kappa, options)
    if thermal is not None:
        params_np = {**params_np, POINT_INDEX: np.arange(n_points, dtype=np.int64)}
    functions = {name: x for name, x in (("H", H), ("rho0", rho0), ("kappa", kappa)) if _is_function(x)}
    for name, fn in functions.items():
        check_point_signature(fn, list(params_np), name, all_used=False)
    if isinstance(H, TimeDependent):
        H.check(ts)  # a fixed driven H: f(t) finite, timecallable matrices Hermitian on the save grid
    elif not _is_function(H) and not _is_model(H):
        H = check_hamiltonian(H, "H")
    if not _is_function(kappa):
        kappa = check_kappa(kappa)
        if kappa.ndim != 0:
            raise ValueError(f"kappa must be a scalar or a function of the point's parameters, got shape {kappa.shape}")
    if not _is_function(rho0):
        from ..methods import LowRankState

        if not isinstance(rho0, LowRankState):
            rho0 = check_ket(rho0, "rho0") if np.ndim(rho0) == 1 else check_density_matrix(rho0, "rho0")  # concrete
    observables = check_observable_names(observables)

    first, per_point = host_pass(functions, params_np, n_points)
    H0 = first.get("H", H)
    rho0_example = first.get("rho0", rho0)
    driven = is_driven(H0)
    dim = H0.dim if _is_model(H0) or isinstance(H0, TimeDependent) else np.shape(H0)[-1]
    method_object = resolve_method(read, rho0_example, dim, per_point="rho0" in functions,
                                   driven=H0 if driven else None)
    read_observables(observables, dim, method_object)  # operators: (D, D); callables allowed for this method
    method = method_object.name
    batching_requested = batching
    batching = "shared" if batching == "auto" else BATCH_ALIASES.get(batching, batching)
    if driven and "H" in functions:
        # solve takes a drive without batch axes only: the points' drives (their own pulse parameters / pwc values
        # as leaves) run as one vmapped program, each point with its own steps
        batching = "vmap"
    options["method"] = method_object
    if thermal is not None:  # the stochastic integrator picks ket / frame from ϱ0 itself
        options["method"], method = read.method, f"stochastic ({read.method})"

    physics = {
        "H": _describe_input(H, per_point.get("H"), H0 if driven else None),
        "rho0": _describe_input(rho0, per_point.get("rho0")),
        "kappa": _describe_input(kappa, per_point.get("kappa")),
        "ts": fp.describe_array(ts),
        "equation": read.equation,
        "method": method,
        "solve_options": {k: _describe_option(v) for k, v in sorted(_full_options(options).items())},
        "observables": {name: fp.describe_callable(op) if _is_function(op) else fp.describe_array(np.asarray(op))
                        for name, op in sorted(observables.items())},
        "save_states": bool(save_states),
        "batching": batching_requested,
        "version": fp.version(),
    }
    if thermal is not None:
        physics["thermal"] = {"temperature": float(thermal[0]), "seed": int(thermal[1]),
                              "keys": "fold_in(PRNGKey(seed), point_index)"}
        batching, batching_requested = "thermal", "thermal"
    key = (_key_part(H), _key_part(rho0), _key_part(kappa), physics["ts"]["digest"],
           tuple((n, op if _is_function(op) else json.dumps(physics["observables"][n])) for n, op in observables.items()),
           bool(save_states), json.dumps(physics["solve_options"], sort_keys=True),
           options.get("solver") if not isinstance(options.get("solver"), (str, type(None))) else None, batching)
    run_options = {k: v for k, v in options.items() if k not in ("strategy", "gauge_fix")}  # in the method object
    if thermal is not None:
        run_options = {**run_options, "temperature": float(thermal[0]), "seed": int(thermal[1])}

    def chunk_function(kind):
        return _chunk_function(key[:-1] + (kind,), lambda: _build_chunk_function(
            H, rho0, device_array(ts), kappa, observables, bool(save_states), run_options, kind))

    fallback = chunk_function("vmap") if batching_requested == "auto" and batching != "vmap" else None
    return run_sweep(chunk_function(batching), params_np, physics=physics, per_point=per_point, ts=ts,
                     fallback_fn=fallback, **sweep_options)


def _describe_input(x, digests, driven=None):
    drive = {} if driven is None else {"drive": fp.describe_drive(driven)}  # the drives' code (values: leaves)
    if digests is not None:  # a function of the point: its values at every point ARE the physics (not its code)
        return {"function of the point": True, "per_point": fp.array_digest(digests), **drive}
    if _is_model(x) or hasattr(x, "rank") or isinstance(x, TimeDependent):
        return {**fp.describe_tree(x), **drive}
    return fp.describe_array(np.asarray(x))
