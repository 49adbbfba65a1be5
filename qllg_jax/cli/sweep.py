r"""``qllg sweep CONFIG.toml``: a parameter sweep described by a ``qllg run`` config plus a ``[sweep]`` table.

The config is the one of ``qllg run`` (:mod:`qllg_jax.config`) with one more table::

    [sweep]
    mode = "grid"            # "grid" (Cartesian product, first key slowest) or "zip" (equal lengths)
    chunk_size = 64          # optional (default: from memory_budget_mb)
    memory_budget_mb = 1024  # optional

    [sweep.parameters]       # dotted keys into the config; a trailing integer indexes a vector
    "system.dimer.J" = [0.5, 1.0, 1.5]
    "system.dimer.D.2" = { linspace = [0.0, 0.6, 4] }   # D_z; also { logspace = [a, b, n] }, { values = [...] }
    "dynamics.kappa" = [0.1, 0.5]

Every point's config is validated and built with :func:`qllg_jax.config.build_system` (units included); the
points must share save times, equation, tolerances, solver and observable names. The sweep then integrates
H (P, d, d), ϱ0 (P, d, d) and κ (P,) with :func:`qllg_jax.sweep` and writes ``--out`` (default
``CONFIG.h5``) chunk by chunk (when every point has the same ϱ0, ``dynamics.method = "auto"`` is resolved once
from it, e.g. the exact two-level reduction for Werner states); rerunning the same command resumes a killed sweep. The file's
``/params/<dotted key>`` hold the varied values, ``/params/H``, ``/params/rho0``, ``/params/kappa`` the
built systems (E0 units).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

_SPEC_KINDS = ("linspace", "logspace", "values")
_SAME = ("equation", "rtol", "atol", "solver")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sweep",
        help="run a parameter sweep from a TOML config into a resumable HDF5 file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="TOML config: a `qllg run` config with a [sweep] table")
    parser.add_argument("--out", help="HDF5 output file (default: the config's name with .h5)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (batch jobs)")
    parser.add_argument("--chunk-size", type=int, help="points per compiled call (overrides [sweep] chunk_size)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file holding another sweep")
    parser.set_defaults(handler=main)
    return parser


def parameter_values(spec, key: str) -> np.ndarray:
    """The values of one swept key: a list (P,) / (P, ...) or {linspace|logspace = [a, b, n]} / {values = [...]}."""
    where = f"sweep.parameters.{key!r}"
    if isinstance(spec, dict):
        if len(spec) != 1 or next(iter(spec)) not in _SPEC_KINDS:
            raise ValueError(f"{where} must be a list or one of {{linspace = [a, b, n]}}, {{logspace = [a, b, n]}}, {{values = [...]}}, got {spec!r}")
        kind, args = next(iter(spec.items()))
        if kind == "values":
            spec = args
        else:
            if not isinstance(args, list) or len(args) != 3 or not all(isinstance(a, (int, float)) for a in args):
                raise ValueError(f"{where}: {kind} needs [start, stop, count], got {args!r}")
            if int(args[2]) != args[2] or args[2] < 1:
                raise ValueError(f"{where}: {kind} count must be a positive integer, got {args[2]!r}")
            return (np.linspace if kind == "linspace" else np.logspace)(args[0], args[1], int(args[2]))
    try:
        values = np.asarray(spec, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be numbers (or lists of numbers), got {spec!r}") from None
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError(f"{where} must be a non-empty list of values, got {spec!r}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{where} contains NaN or inf")
    return values


def sweep_points(table: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Parse ``[sweep]`` into the points {dotted key: values (P, ...)} and the sweep options."""
    spec = table.get("sweep")
    if not isinstance(spec, dict):
        raise ValueError("the config needs a [sweep] table with [sweep.parameters] (see `qllg sweep --help`)")
    unknown = sorted(set(spec) - {"mode", "chunk_size", "memory_budget_mb", "parameters"})
    if unknown:
        raise ValueError(f"[sweep]: unknown key(s) {unknown}; allowed: chunk_size, memory_budget_mb, mode, parameters")
    mode = spec.get("mode", "grid")
    if mode not in ("grid", "zip"):
        raise ValueError(f"sweep.mode must be 'grid' or 'zip', got {mode!r}")
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise ValueError("[sweep.parameters] must map dotted config keys to values, e.g. \"system.dimer.J\" = [0.5, 1.0]")
    axes = {key: parameter_values(value, key) for key, value in parameters.items()}
    if mode == "zip":
        lengths = {key: len(v) for key, v in axes.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"sweep.mode = 'zip' needs equally long parameter lists, got {lengths}")
        points = axes
    else:
        index = np.meshgrid(*[np.arange(len(v)) for v in axes.values()], indexing="ij")
        points = {key: v[i.reshape(-1)] for (key, v), i in zip(axes.items(), index)}
    options = {}
    if "chunk_size" in spec:
        options["chunk_size"] = spec["chunk_size"]
    if "memory_budget_mb" in spec:
        budget = spec["memory_budget_mb"]
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
            raise ValueError(f"sweep.memory_budget_mb must be a positive number, got {budget!r}")
        options["memory_budget"] = int(budget * 2**20)
    return points, options


def point_table(base: dict, point: dict) -> dict:
    """``base`` with one point's dotted overrides; a trailing integer part indexes into a list value."""
    from ..config import with_overrides

    plain, indexed = {}, {}
    for key, value in point.items():
        value = np.asarray(value).tolist()
        parts = key.split(".")
        (indexed if len(parts) > 1 and parts[-1].lstrip("-").isdigit() else plain)[key] = value
    table = with_overrides(base, plain)
    for key, value in indexed.items():
        *path, index = key.split(".")
        node = table
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ValueError(f"sweep.parameters.{key!r}: {'.'.join(path[:-1])} is not a table of the config")
        vector = node.get(path[-1]) if isinstance(node, dict) else None
        if not isinstance(vector, list) or not -len(vector) <= int(index) < len(vector):
            raise ValueError(f"sweep.parameters.{key!r}: {'.'.join(path)} must be a list in the config with an element {index}")
        vector = list(vector)
        vector[int(index)] = value
        node[path[-1]] = vector
    return table


def build_sweep(table: dict):
    """(params for :func:`qllg_jax.sweep`, run_point, ts, sweep options) from a parsed sweep config."""
    import jax.numpy as jnp

    from .. import observables as obs
    from ..config import build_system
    from ..solve import solve
    from ..sweep import resolve_sweep_method

    base = {k: v for k, v in table.items() if k != "sweep"}
    points, options = sweep_points(table)
    n_points = len(next(iter(points.values())))
    systems = []
    for i in range(n_points):
        point = {key: values[i] for key, values in points.items()}
        try:
            systems.append(build_system(point_table(base, point)))
        except ValueError as error:
            raise ValueError(f"sweep point {i} ({ {k: np.asarray(v).tolist() for k, v in point.items()} }): {error}") from None
    first = systems[0]
    for i, system in enumerate(systems[1:], start=1):
        if system.ts.shape != first.ts.shape or not np.array_equal(np.asarray(system.ts), np.asarray(first.ts)):
            raise ValueError(f"sweep point {i}: the save times differ from point 0; sweeping times is not supported")
        for name in _SAME:
            if getattr(system, name) != getattr(first, name):
                raise ValueError(f"sweep point {i}: dynamics.{name} differs from point 0; it cannot be swept")
        if list(system.observables) != list(first.observables) or system.model.dim != first.model.dim:
            raise ValueError(f"sweep point {i}: the observables or the Hilbert-space dimension differ from point 0")
    params = {
        "H": np.stack([np.asarray(s.hamiltonian) for s in systems]),
        "rho0": np.stack([np.asarray(s.rho0) for s in systems]),
        "kappa": np.asarray([s.kappa for s in systems], dtype=float),
        **points,
    }
    names = list(first.observables)
    shared_rho0 = all(np.array_equal(params["rho0"][0], r) for r in params["rho0"][1:])
    if shared_rho0:  # one concrete ϱ0 for all points: "auto" may pick a closed form (e.g. two_level for Werner)
        fixed_rho0 = jnp.asarray(params["rho0"][0])
        method = resolve_sweep_method(first.method, fixed_rho0, first.equation)
    else:  # ϱ0 varies (traced per point): the spectrum-based paths need a concrete ϱ0
        method = first.method if first.method in ("dense", "pure", "exact") else "dense"

    def run_point(H, rho0, kappa, **_):
        if shared_rho0:
            rho0 = fixed_rho0
        observables = {name: first.observables[name] for name in names}
        if "energy" in names:  # these depend on the point's H
            observables["energy"] = lambda rho: obs.energy(rho, H)
        if "passive_energy" in names:
            observables["passive_energy"] = lambda rho: obs.passive_energy(rho, H)
        return solve(
            H, rho0, first.ts, kappa, method=method, equation=first.equation, rtol=first.rtol, atol=first.atol,
            solver=first.solver, observables=observables, save_states=False, throw=False, invariant_tol=None,
        )

    return params, run_point, jnp.asarray(first.ts), options


def main(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..sweep import sweep

    out = args.out or os.path.splitext(args.config)[0] + ".h5"
    start = time.perf_counter()
    try:
        table = load_config(args.config)
        params, run_point, ts, options = build_sweep(table)
        if args.chunk_size is not None:
            options["chunk_size"] = args.chunk_size
        result = sweep(
            run_point, params, out=out, config=table, overwrite=args.overwrite, progress=not args.quiet, ts=ts, **options
        )
    except ValueError as error:
        print(f"qllg sweep: error: {error}", file=sys.stderr)
        return 2
    failed = result.failed()
    print(
        f"qllg sweep: {result.n_points} points, {len(failed)} failed, {time.perf_counter() - start:.1f} s -> {out}",
    )
    for index, reason in list(failed.items())[:10]:
        print(f"  point {index} failed: {reason}", file=sys.stderr)
    return 0 if not failed else 3
