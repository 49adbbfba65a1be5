r"""The generic sweep: a function of one parameter point, run over P points in chunks, vmapped and sharded.

:func:`sweep` evaluates ``run_point(**point) -> pytree`` for every point ``{name: params[name][i]}``
(i = 0 … P−1). Points are grouped in chunks of ``chunk_size``; each chunk is one call of a compiled chunk
function (here ``vmap(run_point)``; :func:`~qllg_jax.sweep_solve` uses one batched ``solve`` per chunk). All
chunks have the same shape — the last one is padded by repeating its last point, and the padding is dropped —
so a sweep compiles once. With several local devices a chunk is split over a 1-D
:class:`jax.sharding.Mesh` with axis ``"points"`` by :func:`jax.shard_map`: every device integrates its own
slice (no per-step synchronisation between devices).

Several hosts: each process of a :func:`jax.distributed` job runs the chunks ``process_index::process_count``
on its own local devices and (with ``out=``) writes its own file (:func:`~qllg_jax.sweeps.store.process_path`);
``part=(K, N)`` does the same without a coordinator (independent jobs, e.g. a SLURM array). The part files are
merged by :func:`~qllg_jax.sweeps.parts.merge_sweeps` (:mod:`~qllg_jax.sweeps.parts`).

Before any compute the sweep knows, from :func:`jax.eval_shape` (no compute), the shape of every output, hence
the bytes of one chunk and of the whole result: it refuses (:func:`qllg_jax._guards.check_bytes`) a chunk or
an in-memory result above the memory limit, and prints both estimates when ``progress`` is on.
"""

from __future__ import annotations

import math
import sys
import warnings
import weakref
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array
from .._guards import check_bytes, format_bytes
from .._failures import Failure
from . import fingerprint as fp
from .params import check_chunk_size, check_params, check_point_signature
from .parts import check_part
from .result import SweepResult, missing_value
from .store import Leaf, SweepStore, process_path

DEFAULT_MEMORY_BUDGET = 2**30
"""Bytes one chunk may use (default 1 GiB) for the automatic chunk size; see :func:`chunk_bytes`."""
MAX_CHUNK_SIZE = 1024
"""Upper bound of the automatic chunk size on accelerators (per device)."""
CPU_MAX_CHUNK_SIZE = 128
"""Upper bound of the automatic chunk size on CPU (per device): on a 2-core CPU chunks of 32–128 dimer points
ran 1.3–2× faster than chunks of 1024 (cache; benchmarks/bench_sweep.py)."""
WORK_FACTOR = 8
"""Working memory of one point ≈ WORK_FACTOR × (its inputs + outputs) (solver stages, saved buffers)."""
SMALL_OUTPUTS = ("success", "failure", "diagnostics")
"""Per-point results (P,) that a sweep keeps in memory even with ``keep_in_memory=False``."""


# ---------------------------------------------------------------------------------------- the point function


def split_output(out) -> dict:
    """A chunk's or point's output → {"outputs", "success", "failure", "diagnostics"}.

    ``out`` is a :class:`~qllg_jax.Result` (batched or not), a dict with ``"success"`` (and optionally
    ``"failure"``), or any pytree of arrays (then every point succeeded).
    """
    from ..result import Result

    if isinstance(out, Result):
        tree = {"observables": out.observables, "invariants": out.invariants, "stats": dict(out.stats)}
        for name in ("states", "kets", "frames"):
            if getattr(out, name) is not None:
                tree[name] = getattr(out, name)
        tree["stats"].pop("failure", None)
        success = out.success
        failure = out.stats.get("failure", jnp.where(success, Failure.NONE, Failure.OTHER))
        diagnostics = dict(vars(out.diagnostics()))
    elif isinstance(out, Mapping) and "success" in out:
        tree = dict(out)
        success = device_array(tree.pop("success"), dtype=bool)
        failure = device_array(tree.pop("failure", jnp.where(success, Failure.NONE, Failure.OTHER)))
        diagnostics = {}
    else:
        tree, success, failure, diagnostics = out, device_array(True), device_array(Failure.NONE), {}
    _check_array_leaves(tree)
    success = device_array(success, dtype=bool)
    return {"outputs": tree, "success": success, "failure": device_array(failure, dtype=jnp.int32),
            "diagnostics": diagnostics}


def _check_array_leaves(tree) -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, complex, bool)):
            where = "".join(str(k) for k in path) or "(the whole output)"
            raise ValueError(
                f"run_point must return arrays (a pytree of arrays, a qllg_jax.Result, or a dict with 'success'); "
                f"got {type(leaf).__name__} at output {where}"
            )


_POINT_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def point_chunk_function(run_point: Callable) -> Callable:
    """``chunk_fn(points, constants) = vmap(point ↦ split_output(run_point(**point)))(points)``, one per run_point
    (so that sweeping the same function again reuses its compilation)."""

    def chunk_fn(points, constants):
        return jax.vmap(lambda p: split_output(run_point(**p)))(points)

    try:
        return _POINT_FUNCTIONS.setdefault(run_point, chunk_fn)
    except TypeError:  # not weak-referenceable
        return chunk_fn


# ----------------------------------------------------------------------------------------------- estimates


def _key_name(key) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def output_leaves(chunk_fn: Callable, params: Mapping, constants=None) -> tuple[list[Leaf], object]:
    """The output arrays of one point (per-point shapes, dtypes, key paths) and the output treedef, from
    :func:`jax.eval_shape` of a one-point chunk (no compute)."""
    one = {name: jax.ShapeDtypeStruct((1,) + np.shape(v)[1:], np.asarray(v).dtype) for name, v in params.items()}
    shapes = jax.eval_shape(chunk_fn, one, constants)
    with_path, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    leaves = [Leaf(tuple(_key_name(k) for k in path), tuple(s.shape[1:]), np.dtype(s.dtype)) for path, s in with_path]
    names = [leaf.path for leaf in leaves]
    if len(set(names)) != len(names):
        raise ValueError(f"run_point's output has leaves with clashing names {names}; use a dict of arrays")
    return leaves, treedef


def point_bytes(leaves, params: Mapping) -> int:
    """Bytes of one point's inputs and outputs."""
    out = sum(leaf.row_bytes for leaf in leaves)
    return out + sum(int(np.prod(np.shape(v)[1:], dtype=np.int64)) * np.asarray(v).dtype.itemsize for v in params.values())


def chunk_bytes(leaves, params: Mapping, chunk_size: int) -> int:
    """Estimated working memory of one chunk: WORK_FACTOR × chunk_size × (a point's inputs + outputs)."""
    return WORK_FACTOR * chunk_size * max(point_bytes(leaves, params), 1)


def estimate_point_bytes(run_point: Callable, params: Mapping) -> int:
    """WORK_FACTOR × (bytes of one point's inputs + outputs) for ``run_point`` (see :func:`chunk_bytes`)."""
    return chunk_bytes(output_leaves(point_chunk_function(run_point), params)[0], params, 1)


def choose_chunk_size(per_point: int, n_points: int, n_devices: int, memory_budget: int, max_chunk: int = MAX_CHUNK_SIZE) -> int:
    """Largest chunk (a multiple of n_devices, ≤ max_chunk·n_devices and ≤ the points needed) whose memory
    (``per_point`` bytes each) fits the budget."""
    size = max(1, min(int(memory_budget) // max(per_point, 1), max_chunk * n_devices, math.ceil(n_points / n_devices) * n_devices))
    return max(n_devices, (size // n_devices) * n_devices)


# ------------------------------------------------------------------------------------------------ compiling


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compile(chunk_fn: Callable, devices):
    """(jit(chunk_fn), input sharding or None); several devices: shard_map over a "points" mesh. Cached."""
    try:
        cache = _COMPILED.setdefault(chunk_fn, {})
    except TypeError:
        cache = {}
    key = tuple(devices)
    if key not in cache:
        if len(devices) == 1:
            cache[key] = jax.jit(chunk_fn), None
        else:
            mesh = jax.sharding.Mesh(np.asarray(devices), ("points",))
            spec, replicated = jax.sharding.PartitionSpec("points"), jax.sharding.PartitionSpec()
            sharded = jax.shard_map(chunk_fn, mesh=mesh, in_specs=(spec, replicated), out_specs=spec, check_vma=False)
            cache[key] = jax.jit(sharded), jax.sharding.NamedSharding(mesh, spec)
    return cache[key]


def _chunk_inputs(params, start, stop, padded_size):
    """Rows start:stop of every parameter, padded to padded_size by repeating the last row."""
    index = np.minimum(np.arange(start, start + padded_size), stop - 1)
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
    keep_in_memory: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    part: tuple[int, int] | None = None,
    ts=None,
) -> SweepResult:
    r"""Run ``run_point(**point)`` for every parameter point, vmapped over chunks and sharded over devices.

    Args:
        run_point: a JAX-traceable function of one point's parameters (keyword arguments, each of shape
            ``params[name].shape[1:]``) returning a pytree of arrays, a :class:`~qllg_jax.Result` (call
            ``solve(..., throw=False, save_states=False)`` inside), or a dict with a ``"success"`` entry.
        params: dict name → array (P, ...): point i is ``{name: params[name][i]}``. See :func:`grid`.
        chunk_size: points per compiled call, a positive integer (rounded up to a multiple of the device count,
            at most the points needed). Default: the largest that fits ``memory_budget`` (≤
            :data:`CPU_MAX_CHUNK_SIZE` per CPU device, :data:`MAX_CHUNK_SIZE` per accelerator); when resuming
            ``out``, the file's chunk size. Under ``vmap`` the adaptive solver steps a chunk together until its
            slowest member finishes, so similar parameters per chunk or smaller chunks help when step counts
            differ a lot.
        memory_budget: bytes per chunk for the automatic chunk size (:func:`chunk_bytes`).
        devices: the devices to shard over (default: all local devices, ``jax.local_devices()``).
        progress: tqdm progress bar (points done, rate, ETA, failures) and the size estimates; False: quiet.
        out: HDF5 file written chunk by chunk in place, checksummed and resumable
            (:mod:`qllg_jax.sweeps.store`). With several processes each writes ``<stem>.process<k>of<n>.h5``.
        config: JSON-serialisable description of the sweep, stored in ``out`` and part of its fingerprint.
        overwrite: replace an existing writable ``out`` that holds something else (another sweep, another file).
        keep_in_memory: False (needs ``out``): stream results to the file without keeping them; the returned
            result has ``outputs=None`` (``success``, ``failure``, ``diagnostics`` are kept): read outputs with
            :func:`~qllg_jax.load_sweep` (``names=``, ``points=``).
        part: (K, N): run only part K (from 0) of N — the chunks K, K+N, K+2N, … — e.g. one task of a SLURM
            array job; with ``out=`` into ``<stem>.process<K>of<N>.h5``, the file process K of an N-process
            :func:`jax.distributed` job writes (so the two mix). Each part resumes on its own; merge the parts
            with :func:`~qllg_jax.merge_sweeps` or read them together with :func:`~qllg_jax.load_sweep`.
            Default: ``(jax.process_index(), jax.process_count())`` (the whole sweep in a single process).
        process_index, process_count: the same as ``part=(process_index, process_count)``.
        ts: save times (T,) stored with the results (informational).

    Returns:
        :class:`SweepResult` with the points of this part (all P points for a whole sweep); points of other
        parts are NaN / ``success=False`` with failure code −1.

    Resuming ``out`` checks the fingerprint: ``config``, the parameter points, ``run_point``'s identity
    (qualified name, byte code, captured values; :mod:`~qllg_jax.sweeps.fingerprint`) and the package version.
    """
    if not callable(run_point):
        raise ValueError(f"run_point must be a callable (**point_params) -> pytree, got {type(run_point).__name__}")
    params_np, _ = check_params(params)
    check_point_signature(run_point, list(params_np), "run_point", all_used=True)
    physics = {"run_point": fp.describe_callable(run_point), "version": fp.version()}
    return run_sweep(point_chunk_function(run_point), params_np, physics=physics, chunk_size=chunk_size,
                     memory_budget=memory_budget, devices=devices, progress=progress, out=out, config=config,
                     overwrite=overwrite, keep_in_memory=keep_in_memory, process_index=process_index,
                     process_count=process_count, part=part, ts=ts)


def run_sweep(
    chunk_fn: Callable,
    params: Mapping,
    constants=None,
    *,
    physics: Mapping,
    per_point: Mapping | None = None,
    chunk_size=None,
    memory_budget=DEFAULT_MEMORY_BUDGET,
    devices=None,
    progress=True,
    out=None,
    config=None,
    overwrite=False,
    keep_in_memory=True,
    process_index=None,
    process_count=None,
    part=None,
    ts=None,
    fallback_fn: Callable | None = None,
) -> SweepResult:
    """The engine behind :func:`sweep` and :func:`~qllg_jax.sweep_solve`.

    ``chunk_fn(points, constants)`` maps a chunk of points (dict name → (n, ...)) and the shared ``constants``
    (a pytree of arrays, replicated on every device) to ``split_output``'s dict with a leading axis n.
    ``physics`` (+ ``per_point`` digests) is the fingerprint stored in / checked against ``out``.
    ``fallback_fn``: same signature; a chunk in which some point failed is computed again with it (compiled on
    first need) and its rows replace the chunk's — :func:`~qllg_jax.sweep_solve` passes per-point solves here, so
    that one stiff point of a chunk integrated with shared steps fails alone.
    """
    params, n_points = check_params(params)
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must be a non-empty list of jax devices")
    n_dev = len(devices)
    if part is not None:
        if process_index is not None or process_count is not None:
            raise ValueError("give part=(K, N) or process_index/process_count, not both")
        process_index, process_count = check_part(part)
        if jax.process_count() > 1:
            raise ValueError(f"part={part!r}: this process is one of {jax.process_count()} jax.distributed processes, "
                             "which split the sweep already; leave part unset (or run without jax.distributed)")
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    for value, name in ((process_index, "process_index"), (process_count, "process_count")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in [0, process_count), got {process_index} of {process_count}")
    process_index, process_count = int(process_index), int(process_count)
    from .._checks import check_flag, check_positive

    memory_budget = int(check_positive(memory_budget, "memory_budget"))
    progress, overwrite, keep_in_memory = (check_flag(v, n) for v, n in
                                           ((progress, "progress"), (overwrite, "overwrite"), (keep_in_memory, "keep_in_memory")))
    if not keep_in_memory and out is None:
        raise ValueError("keep_in_memory=False needs out='file.h5' (the results must go somewhere)")
    if out is not None and not isinstance(out, (str, bytes)) and not hasattr(out, "__fspath__"):
        raise ValueError(f"out must be a file path, got {type(out).__name__}")
    chunk_size = check_chunk_size(chunk_size, n_points, n_dev)

    leaves, treedef = output_leaves(chunk_fn, params, constants)
    per_point_bytes = chunk_bytes(leaves, params, 1)
    cap = CPU_MAX_CHUNK_SIZE if devices[0].platform == "cpu" else MAX_CHUNK_SIZE
    auto_chunk = choose_chunk_size(per_point_bytes, n_points, n_dev, memory_budget, max_chunk=cap)

    kept = [keep_in_memory or leaf.path[0] in SMALL_OUTPUTS for leaf in leaves]
    _check_sizes(leaves, kept, params, n_points, chunk_size or auto_chunk, n_dev, out is not None)
    store = None
    if out is not None:
        path = process_path(out, process_index, process_count)
        store = SweepStore.open(path, params=params, leaves=leaves, fingerprint={**physics, "config": config},
                                per_point=per_point, config=config, chunk_size=chunk_size,
                                default_chunk_size=chunk_size or auto_chunk, overwrite=overwrite, ts=ts,
                                part=(process_index, process_count))
        if store.chunk_size != (chunk_size or auto_chunk):  # resuming with the file's chunk size
            try:
                _check_sizes(leaves, kept, params, n_points, store.chunk_size, n_dev, True)
            except BaseException:
                store.close()
                raise
        chunk_size = store.chunk_size
    chunk_size = chunk_size or auto_chunk
    try:
        return _run(chunk_fn, params, constants, n_points, leaves, treedef, kept, chunk_size, devices, store, progress,
                    process_index, process_count, ts, fallback_fn)
    finally:
        if store is not None:
            store.close()


def _check_sizes(leaves, kept, params, n_points, chunk_size, n_dev, stored) -> tuple[int, int]:
    """(bytes of one chunk, bytes kept in memory), each refused above the memory limit (before any I/O)."""
    padded = math.ceil(chunk_size / n_dev) * n_dev
    per_chunk = chunk_bytes(leaves, params, padded)
    check_bytes(per_chunk, f"one sweep chunk of {padded} points (estimated {WORK_FACTOR} x its inputs and outputs)",
                "use a smaller chunk_size")
    result_bytes = n_points * sum(leaf.row_bytes for leaf, keep in zip(leaves, kept) if keep)
    hint = ("pass keep_in_memory=False to stream them to the file" if stored
            else "pass out='sweep.h5', keep_in_memory=False to stream them to disk")
    check_bytes(result_bytes, f"the in-memory results of {n_points} sweep points", hint)
    return per_chunk, result_bytes


def _run(chunk_fn, params, constants, n_points, leaves, treedef, kept, chunk_size, devices, store, progress,
         process_index, process_count, ts, fallback_fn=None) -> SweepResult:
    n_dev = len(devices)
    padded = math.ceil(chunk_size / n_dev) * n_dev
    n_chunks = math.ceil(n_points / chunk_size)
    per_chunk, result_bytes = _check_sizes(leaves, kept, params, n_points, chunk_size, n_dev, store is not None)
    if progress:
        share = f" (part {process_index} of {process_count}: chunks {process_index}::{process_count})" if process_count > 1 else ""
        where = f"; results {format_bytes(n_points * sum(l.row_bytes for l in leaves))} -> {store.path}" if store else ""
        print(f"sweep: {n_points} points in {n_chunks} chunks of {chunk_size}{share} on {n_dev} device(s); about "
              f"{format_bytes(per_chunk)} per chunk, {format_bytes(result_bytes)} kept in memory{where}",
              file=sys.stderr)

    mine = list(range(process_index, n_chunks, process_count))
    done = store.done_chunks() if store is not None else np.zeros(n_chunks, dtype=bool)
    collected: dict[int, list] = {}
    if store is not None:  # read back (and verify) what an earlier run stored, a bounded batch at a time
        stored = [k for k in mine if done[k]]
        batch = max(1, 2**26 // max(chunk_size * sum(l.row_bytes for l in leaves), 1))
        for i in range(0, len(stored), batch):
            for k, rows in store.read(stored[i : i + batch]).items():
                collected[k] = [r if keep else None for r, keep in zip(rows, kept)]
    todo = [k for k in mine if not done[k]]
    sizes = {k: min(chunk_size, n_points - k * chunk_size) for k in mine}
    with warnings.catch_warnings():  # tqdm.auto warns at import in a notebook without ipywidgets
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

    n_mine = sum(sizes.values())
    bar = tqdm(total=n_mine, initial=n_mine - sum(sizes[k] for k in todo), unit="pt", desc="sweep",
               disable=not progress, dynamic_ncols=True)
    success_at = next(i for i, leaf in enumerate(leaves) if leaf.path == ("success",))
    n_failed = int(sum(np.sum(~rows[success_at]) for rows in collected.values()))
    try:
        if todo:
            compiled, sharding = _compile(chunk_fn, devices)
        for k in todo:
            start, stop = k * chunk_size, k * chunk_size + sizes[k]
            inputs = _chunk_inputs(params, start, stop, padded)
            if sharding is not None:
                inputs = jax.device_put(inputs, sharding)
            rows = [np.asarray(x)[: stop - start] for x in jax.tree_util.tree_leaves(jax.device_get(compiled(inputs, constants)))]
            if fallback_fn is not None and not rows[success_at].all():
                fallback, _ = _compile(fallback_fn, devices)
                rows = [np.asarray(x)[: stop - start]
                        for x in jax.tree_util.tree_leaves(jax.device_get(fallback(inputs, constants)))]
            if store is not None:
                store.commit(k, rows)
            collected[k] = [r if keep else None for r, keep in zip(rows, kept)]
            bar.update(stop - start)
            n_failed += int(np.sum(~rows[success_at]))
            bar.set_postfix(failed=n_failed, refresh=False)
    finally:
        bar.close()
    return _assemble(params, n_points, chunk_size, leaves, treedef, kept, collected, ts, store, mine,
                     (process_index, process_count))


def _assemble(params, n_points, chunk_size, leaves, treedef, kept, collected, ts, store, mine, part) -> SweepResult:
    """Stitch per-chunk rows into (P, ...) arrays; points not run here are NaN / −1 / False."""
    arrays = []
    for i, (leaf, keep) in enumerate(zip(leaves, kept)):
        full = None
        if keep:
            full = np.full((n_points,) + leaf.shape, missing_value(leaf.dtype), dtype=leaf.dtype)
            for k, rows in collected.items():
                full[k * chunk_size : k * chunk_size + len(rows[i])] = rows[i]
        arrays.append(full)
    by_path = {leaf.path: a for leaf, a in zip(leaves, arrays)}
    if all(kept):
        merged = jax.tree_util.tree_unflatten(treedef, arrays)
        outputs, diagnostics = merged["outputs"], merged["diagnostics"]
    else:
        outputs = None
        diagnostics = {p[1]: a for p, a in by_path.items() if p[0] == "diagnostics"}
    metadata = {"part": part if part[1] > 1 else None}
    if store is not None:
        metadata.update(path=store.path, chunk_size=chunk_size, complete=len(collected) == len(mine))
    return SweepResult(params=params, outputs=outputs, success=by_path[("success",)].astype(bool),
                       failure=by_path[("failure",)], diagnostics=diagnostics, ts=None if ts is None else np.asarray(ts),
                       metadata=metadata)
