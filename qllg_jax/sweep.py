r"""Parameter sweeps: one function of a parameter point, run over P points, vmapped, chunked and sharded.

:func:`sweep` evaluates ``run_point(**point) -> pytree`` for every point ``{name: params[name][i]}``
(i = 0 … P−1). Points are grouped in chunks of ``chunk_size``; each chunk is one call of a compiled
``vmap(run_point)`` (all chunks have the same shape — the last one is padded by repeating its last point,
and the padding is dropped — so the sweep compiles once). With several local devices, a chunk is split
over a 1-D :class:`jax.sharding.Mesh` with axis ``"points"`` by :func:`jax.shard_map`: every device
integrates its own slice with its own adaptive while-loop (no per-step synchronisation between devices).

Failures: ``run_point`` should call :func:`qllg_jax.solve` with ``throw=False`` and return the
:class:`~qllg_jax.Result` (or a dict with ``"success"`` and optionally ``"failure"``): a failed point
(max_steps, step-size collapse, NaN) is then recorded with ``success=False`` and its reason
(:data:`qllg_jax._integrate.FAILURE_REASONS`), and every other point finishes.

Several hosts: each process of a :func:`jax.distributed` job runs the points ``process_index::process_count``
chunk-wise on its own local devices and (with ``out=``) writes its own file; see the README section “Parameter sweeps”.

Storage: with ``out="file.h5"`` every finished chunk is committed atomically to HDF5 and a restarted sweep
resumes where it stopped (:mod:`qllg_jax.sweep_store`).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
import weakref
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ._integrate import FAILURE_NONE, FAILURE_OTHER, FAILURE_REASONS

DEFAULT_MEMORY_BUDGET = 2**30
"""Bytes one chunk may use (default 1 GiB); see :func:`estimate_point_bytes`."""
MAX_CHUNK_SIZE = 1024
"""Upper bound of the automatic chunk size on accelerators (per device)."""
CPU_MAX_CHUNK_SIZE = 128
"""Upper bound of the automatic chunk size on CPU (per device): on a 2-core CPU chunks of 32–128 dimer points
ran 1.3–2× faster than chunks of 1024 (cache; benchmarks/bench_sweep.py)."""
WORK_FACTOR = 8
"""Working memory of one point ≈ WORK_FACTOR × (its inputs + outputs) (solver stages, saved buffers)."""


@dataclasses.dataclass
class SweepResult:
    """Results of a sweep over P points (numpy arrays on the host).

    Attributes:
        params: dict name → array (P, ...): the parameter points.
        outputs: the pytree returned by ``run_point`` with a leading point axis (P, ...) on every leaf; for a
            :class:`~qllg_jax.Result`, a dict with ``observables`` (P, T, ...), ``invariants`` (P, T),
            ``stats`` (P,) and ``states`` (P, T, D, D) when saved.
        success: bool (P,): the point's integration reached the final time with finite output.
        failure: int (P,): a :data:`~qllg_jax._integrate.FAILURE_REASONS` code (0 = success).
        diagnostics: dict name → (P,) invariant drifts (:class:`~qllg_jax.Diagnostics`), for Result outputs.
        ts: save times (T,) when known (``sweep_solve``, stored sweeps), else None.
        metadata: for :func:`~qllg_jax.sweep_store.load_sweep`: config, package versions, completeness.
    """

    params: dict
    outputs: object
    success: np.ndarray
    failure: np.ndarray
    diagnostics: dict = dataclasses.field(default_factory=dict)
    ts: np.ndarray | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return int(self.success.shape[0])

    @property
    def reasons(self) -> list[str]:
        """Failure reason per point (``"success"`` for points that finished)."""
        return [FAILURE_REASONS.get(int(code), "solver failure") for code in self.failure]

    def failed(self) -> dict[int, str]:
        """{point index: reason} of every failed point."""
        reasons = self.reasons
        return {int(i): reasons[i] for i in np.nonzero(~self.success)[0]}

    def point(self, index: int) -> dict:
        """The parameters of point ``index`` as a dict of numpy scalars/arrays."""
        return {name: value[index] for name, value in self.params.items()}


# ----------------------------------------------------------------------------------------------- parameters


def grid(**axes) -> dict[str, np.ndarray]:
    """The Cartesian product of 1-D axes, flattened to P = ∏ len(axis) points (first name slowest).

    >>> p = grid(J=[0.5, 1.0], D=[0.0, 0.1, 0.2]); p["J"].shape
    (6,)
    """
    if not axes:
        raise ValueError("grid needs at least one axis, e.g. grid(J=[0.5, 1.0])")
    arrays = {}
    for name, values in axes.items():
        values = np.asarray(values)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"grid axis {name!r} must be a non-empty 1-D list of values, got shape {values.shape}")
        arrays[name] = values
    mesh = np.meshgrid(*arrays.values(), indexing="ij")
    return {name: m.reshape(-1) for name, m in zip(arrays, mesh)}


def check_params(params: Mapping) -> tuple[dict[str, np.ndarray], int]:
    """Validate ``params``: dict name → array (P, ...) with one common P ≥ 1. Returns (numpy dict, P)."""
    if not isinstance(params, Mapping) or not params:
        raise ValueError("params must be a non-empty dict name -> array of shape (P, ...)")
    out, sizes = {}, {}
    for name, value in params.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"params: names must be non-empty strings without '/' (run_point's keywords), got {name!r}")
        array = np.asarray(value)
        if array.ndim == 0 or array.shape[0] == 0:
            raise ValueError(f"params[{name!r}] must have a leading point axis of length P >= 1, got shape {array.shape}")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"params[{name!r}] must be numeric, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            raise ValueError(f"params[{name!r}] contains NaN or inf")
        out[name], sizes[name] = array, array.shape[0]
    if len(set(sizes.values())) != 1:
        raise ValueError(f"params must all have the same number of points P, got lengths {sizes}")
    return out, next(iter(sizes.values()))


# ---------------------------------------------------------------------------------------- the point function


def _is_result(x) -> bool:
    from .solve import Result

    return isinstance(x, Result)


def _split_output(out):
    """run_point's output → (tree, success (), failure (), diagnostics dict)."""
    if _is_result(out):
        tree = {"observables": out.observables, "invariants": out.invariants, "stats": dict(out.stats)}
        for name in ("states", "kets", "frames"):
            if getattr(out, name) is not None:
                tree[name] = getattr(out, name)
        tree["stats"].pop("failure", None)
        success = out.success
        failure = out.stats.get("failure", jnp.where(success, FAILURE_NONE, FAILURE_OTHER))
        diagnostics = dict(vars(out.diagnostics()))
        return tree, success, failure, diagnostics
    if isinstance(out, Mapping) and "success" in out:
        tree = dict(out)
        success = jnp.asarray(tree.pop("success"), dtype=bool)
        failure = jnp.asarray(tree.pop("failure", jnp.where(success, FAILURE_NONE, FAILURE_OTHER)))
        return tree, success, failure, {}
    return out, jnp.asarray(True), jnp.asarray(0), {}


def _point_function(run_point: Callable) -> Callable:
    def point(p):
        tree, success, failure, diagnostics = _split_output(run_point(**p))
        success = jnp.asarray(success, dtype=bool)
        return {
            "outputs": tree,
            "success": success,
            "failure": jnp.asarray(failure, dtype=jnp.int32),
            "diagnostics": diagnostics,
        }

    return point


def estimate_point_bytes(run_point: Callable, params: Mapping) -> int:
    """Heuristic memory of one point: WORK_FACTOR × (bytes of one point's inputs + outputs).

    The outputs' size comes from :func:`jax.eval_shape` (no compute); the solver's internal buffers
    (a few copies of the state, the saved trajectory) are covered by :data:`WORK_FACTOR`.
    """
    one = {name: jax.ShapeDtypeStruct(np.shape(v)[1:], np.asarray(v).dtype) for name, v in params.items()}
    shapes = jax.eval_shape(_point_function(run_point), one)
    nbytes = lambda leaf: int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize  # noqa: E731
    total = sum(nbytes(leaf) for leaf in jax.tree_util.tree_leaves(shapes))
    total += sum(nbytes(leaf) for leaf in one.values())
    return WORK_FACTOR * max(total, 1)


def choose_chunk_size(run_point, params, n_points: int, n_devices: int, memory_budget: int, max_chunk: int = MAX_CHUNK_SIZE) -> int:
    """Largest chunk (a multiple of n_devices, ≤ max_chunk·n_devices and ≤ the points needed) within the budget."""
    per_point = estimate_point_bytes(run_point, params)
    size = max(1, min(int(memory_budget) // per_point, max_chunk * n_devices, math.ceil(n_points / n_devices) * n_devices))
    return max(n_devices, (size // n_devices) * n_devices)


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compile(run_point: Callable, devices):
    """(jit(vmap(point)) over a chunk, input sharding or None); several devices: shard_map over a "points" mesh.

    Cached per (run_point, devices): sweeping the same function again reuses the compiled code.
    """
    try:
        cache = _COMPILED.setdefault(run_point, {})
    except TypeError:  # not weak-referenceable
        cache = {}
    key = tuple(devices)
    if key not in cache:
        cache[key] = _build(run_point, devices)
    return cache[key]


def _build(run_point: Callable, devices):
    batched = jax.vmap(_point_function(run_point))
    if len(devices) == 1:
        return jax.jit(batched), None
    mesh = jax.sharding.Mesh(np.asarray(devices), ("points",))
    spec = jax.sharding.PartitionSpec("points")
    sharded = jax.shard_map(batched, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    return jax.jit(sharded), jax.sharding.NamedSharding(mesh, spec)


def _chunk_inputs(params, start, stop, chunk_size):
    """Rows start:stop of every parameter, padded to chunk_size by repeating the last row."""
    index = np.minimum(np.arange(start, start + chunk_size), stop - 1)
    return {name: value[index] for name, value in params.items()}


# ------------------------------------------------------------------------------------------------ the sweep


def sweep(
    run_point: Callable,
    params: Mapping,
    *,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    devices=None,
    progress: bool = True,
    out: str | None = None,
    config: Mapping | None = None,
    overwrite: bool = False,
    process_index: int | None = None,
    process_count: int | None = None,
    ts=None,
) -> SweepResult:
    r"""Run ``run_point(**point)`` for every parameter point, vmapped over chunks and sharded over devices.

    Args:
        run_point: a JAX-traceable function of one point's parameters (keyword arguments, each of shape
            ``params[name].shape[1:]``) returning a pytree of arrays, a :class:`~qllg_jax.Result` (call
            ``solve(..., throw=False, save_states=False)`` inside), or a dict with a ``"success"`` entry.
        params: dict name → array (P, ...): point i is ``{name: params[name][i]}``. See :func:`grid`.
        chunk_size: points per compiled call (rounded up to a multiple of the device count). Default: the
            largest that fits ``memory_budget`` (≤ :data:`CPU_MAX_CHUNK_SIZE` per CPU device,
            :data:`MAX_CHUNK_SIZE` per accelerator). Under ``vmap`` the adaptive solver
            steps a chunk together until its slowest member finishes, so chunks of similar parameters or
            smaller chunks help when step counts differ a lot.
        memory_budget: bytes per chunk for the automatic chunk size (:func:`estimate_point_bytes`).
        devices: the devices to shard over (default: all local devices, ``jax.local_devices()``).
        progress: tqdm progress bar (points done, rate, ETA); False: quiet.
        out: HDF5 file to write chunk by chunk (atomic commits, resumable; see
            :class:`~qllg_jax.sweep_store.SweepStore`). With several processes each writes
            ``<stem>.process<k>of<n>.h5``.
        config: JSON-serialisable description of the sweep stored in ``out`` (a restarted sweep must
            present the same config, else ValueError unless ``overwrite``).
        overwrite: replace an existing ``out`` holding a different sweep.
        process_index, process_count: this process's share of the points (default: ``jax.process_index()``,
            ``jax.process_count()``): it runs chunks ``process_index::process_count``.
        ts: save times (T,) stored with the results (informational).

    Returns:
        :class:`SweepResult` with the points this process ran (all P points in a single process);
        points of other processes are NaN / ``success=False`` with failure code −1.
    """
    params, n_points = check_params(params)
    if not callable(run_point):
        raise ValueError(f"run_point must be a callable (**point_params) -> pytree, got {type(run_point).__name__}")
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must be a non-empty list of jax devices")
    n_dev = len(devices)
    process_index = jax.process_index() if process_index is None else int(process_index)
    process_count = jax.process_count() if process_count is None else int(process_count)
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in [0, process_count), got {process_index} of {process_count}")
    memory_budget = int(memory_budget)
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget}")

    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
        chunk_size = math.ceil(int(chunk_size) / n_dev) * n_dev
    store = None
    if out is not None:
        from .sweep_store import SweepStore, process_path

        path = process_path(out, process_index, process_count)
        store = SweepStore.open(
            path, params=params, config=dict(config or {}), chunk_size=chunk_size, overwrite=overwrite, ts=ts
        )
        if chunk_size is None and store.chunk_size is not None:
            chunk_size = store.chunk_size  # resume with the layout the file was started with
    if chunk_size is None:
        cap = CPU_MAX_CHUNK_SIZE if devices[0].platform == "cpu" else MAX_CHUNK_SIZE
        chunk_size = choose_chunk_size(run_point, params, n_points, n_dev, memory_budget, max_chunk=cap)
    if store is not None:
        store.set_chunk_size(chunk_size)

    n_chunks = math.ceil(n_points / chunk_size)
    mine = list(range(process_index, n_chunks, process_count))
    done = store.done_chunks() if store is not None else set()
    compiled, sharding = _compile(run_point, devices)

    collected: dict[int, dict] = {}
    if store is not None and any(k in done for k in mine):
        example = _chunk_inputs(params, 0, min(chunk_size, n_points), chunk_size)
        names, treedef = _flat_names(jax.eval_shape(compiled, example))
        for k in mine:
            if k in done:
                flat = store.read_chunk(k, names)
                collected[k] = jax.tree_util.tree_unflatten(treedef, [flat[n] for n in names])
    todo = [k for k in mine if k not in done]
    n_mine = sum(min(chunk_size, n_points - k * chunk_size) for k in mine)
    with warnings.catch_warnings():  # tqdm.auto warns at import in a notebook without ipywidgets
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

    bar = tqdm(
        total=n_mine,
        initial=n_mine - sum(min(chunk_size, n_points - k * chunk_size) for k in todo),
        unit="pt",
        desc="sweep",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        for k in todo:
            start, stop = k * chunk_size, min((k + 1) * chunk_size, n_points)
            inputs = _chunk_inputs(params, start, stop, chunk_size)
            if sharding is not None:
                inputs = jax.device_put(inputs, sharding)
            result = jax.device_get(compiled(inputs))
            result = jax.tree_util.tree_map(lambda x: np.asarray(x)[: stop - start], result)
            if store is not None:
                names, _ = _flat_names(result)
                store.commit(k, start, stop, dict(zip(names, jax.tree_util.tree_leaves(result))))
            collected[k] = result
            bar.update(stop - start)
            bar.set_postfix(failed=int(sum(np.sum(~c["success"]) for c in collected.values())), refresh=False)
    finally:
        bar.close()
    if store is not None:
        store.finish(complete=len(collected) == n_chunks)
    return _assemble(params, n_points, chunk_size, collected, ts)


def _key_name(key) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _flat_names(tree) -> tuple[list[str], object]:
    """HDF5 dataset names ("outputs/observables/bloch", "success", ...) of the leaves, and the treedef."""
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    names = ["/".join(_key_name(k) for k in path) for path, _ in leaves_with_path]
    if len(set(names)) != len(names):
        raise ValueError(f"run_point's output has leaves with clashing names {names}; use a dict of arrays")
    return names, treedef


def _assemble(params, n_points, chunk_size, collected: dict, ts) -> SweepResult:
    """Stitch per-chunk results into (P, ...) arrays; points not run here are NaN / failure −1."""
    template = next(iter(collected.values()))

    def full(leaf):
        leaf = np.asarray(leaf)
        return np.full((n_points,) + leaf.shape[1:], missing_value(leaf.dtype), dtype=leaf.dtype)

    merged = jax.tree_util.tree_map(full, template)
    for k, chunk in collected.items():
        start = k * chunk_size
        merged = jax.tree_util.tree_map(
            lambda m, c, start=start: _set_rows(m, start, c), merged, chunk
        )
    return SweepResult(
        params=params,
        outputs=merged["outputs"],
        success=merged["success"].astype(bool),
        failure=merged["failure"],
        diagnostics=merged["diagnostics"],
        ts=None if ts is None else np.asarray(ts),
    )


def missing_value(dtype):
    """The value of a point that was not run (here or in a sweep file): NaN, −1 for integers, False for bools."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.inexact):
        return np.nan
    return False if dtype == bool else -1


def _set_rows(target, start, rows):
    target[start : start + len(rows)] = rows
    return target


# ------------------------------------------------------------------------------------ the common q-LLG case


def _call_with(fn, point: Mapping):
    """fn(**the entries of point that fn accepts) for a callable, else fn itself (a fixed value)."""
    if not callable(fn) or hasattr(fn, "shape"):
        return fn
    signature = inspect.signature(fn)
    if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        return fn(**point)
    return fn(**{k: v for k, v in point.items() if k in signature.parameters})


def resolve_sweep_method(method: str, rho0, equation: str = "qllg") -> str:
    """The :func:`~qllg_jax.solve` method for a sweep whose initial state ``rho0`` is the same for every point.

    ``"auto"`` is resolved here, on the host, from the concrete ``rho0`` (inside the vmapped sweep it would
    always fall back to dense): ϱ0 = a𝟙 + bP → ``"two_level"`` (closed form, H and κ may be traced per point),
    pure → ``"exact"``/``"pure"``; a ``"low_rank"`` choice becomes ``"dense"``. Other methods are returned as is.
    """
    if method != "auto":
        return method
    from .methods import read_initial_state, resolve_method

    dim = rho0.dim if hasattr(rho0, "dim") else np.shape(rho0)[-1]
    return resolve_method(method, read_initial_state(rho0, dim), dim).name


def sweep_solve(H, rho0, ts, kappa, params: Mapping, *, observables=None, save_states: bool = False, solve_options=None, **sweep_options) -> SweepResult:
    r"""Sweep :func:`qllg_jax.solve` over parameter points: the common case of :func:`sweep`.

    Each of ``H``, ``rho0`` and ``kappa`` is a fixed value or a function of the point's parameters (it gets
    the entries of ``params`` its signature names), e.g. ``H=lambda J, D: dimer_hamiltonian(J=J, D=(0, 0, D))``
    (must be JAX-traceable). Every point runs ``solve(H, rho0, ts, kappa, observables=observables,
    save_states=save_states, throw=False, invariant_tol=None, **solve_options)``. With the default
    ``method="auto"`` and a fixed ``rho0``, the method is chosen once from ``rho0`` (e.g. the exact two-level
    reduction for Werner states, no time stepping); a low-rank choice or a ``rho0`` that depends on the point
    integrate the dense equation.

    Args:
        H: Hamiltonian (D, D) or SpinModel, or a function of the parameters returning one.
        rho0: initial state (D, D) or ket (D,), or a function of the parameters.
        ts: save times (T,) (shared by all points), units ħ/E0.
        kappa: damping κ ≥ 0 (scalar) or a function of the parameters.
        params: dict name → array (P, ...) (see :func:`grid`).
        observables: dict name → callable ϱ ↦ array or operator (D, D), as in :func:`~qllg_jax.solve`.
        save_states: also keep ϱ(t) for every point (P, T, D, D) (memory!).
        solve_options: further keyword arguments of :func:`~qllg_jax.solve` (rtol, atol, solver, method, ...).
        **sweep_options: keyword arguments of :func:`sweep` (chunk_size, devices, progress, out, ...).

    Returns:
        :class:`SweepResult`; ``outputs["observables"][name]`` has shape (P, T, ...).
    """
    from ._checks import check_kappa, check_times
    from .solve import solve

    ts = check_times(ts)
    if not callable(kappa):
        check_kappa(kappa)
    options = dict(solve_options or {})
    for reserved in ("throw", "observables", "save_states"):
        if reserved in options:
            raise ValueError(f"solve_options[{reserved!r}] is set by sweep_solve; pass it as its own argument (or not at all)")
    options.setdefault("invariant_tol", None)
    if not callable(rho0):
        options["method"] = resolve_sweep_method(options.get("method", "auto"), rho0, options.get("equation", "qllg"))

    def run_point(**point):
        return solve(
            _call_with(H, point),
            _call_with(rho0, point),
            ts,
            _call_with(kappa, point),
            observables=observables,
            save_states=save_states,
            throw=False,
            **options,
        )

    return sweep(run_point, params, ts=ts, **sweep_options)
