"""Throughput on the default JAX device (a GPU when one is present): big sweeps and big spin chains.

Every ratio is against the numpy/scipy loop of ``benchmarks/baseline.py`` timed in the same run, on the CPU of the
same machine (``--baseline-points`` points, scaled):

- ``sweep``: the generic full-rank mixed dimer of ``bench_core.py`` (thermal ϱ0 of another Hamiltonian, κ = 0.5,
  t ∈ [0, 20], 201 saves of ⟨σz1⟩ and ⟨σx2⟩, rtol 1e-8 / atol 1e-10) over n (J, D) points for each ``--sizes``:
  one ``solve(H_batch, ...)`` (frame method, shared steps). Reports seconds, points per second and the ratio.
- ``werner``: the same grid from a Werner state: ``solve(H_batch, ...)`` (two-level closed form, no steps).
- ``chain``: the open spin-1/2 chain of ``bench_scaling.py`` (pure: ket method; rank 4: frame method) for each
  ``--chain`` N, time including compilation.

    python benchmarks/bench_gpu.py [--sizes 256 4096 65536] [--chain 16 20] [--json FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import qllg_jax as q
from bench_core import KAPPA, OBSERVABLES, THERMAL, TS, WERNER, baseline_per_point
from bench_scaling import run_one
from timing import median_time


def grid(n: int) -> np.ndarray:
    """n dimer Hamiltonians (n, 4, 4) over a √n × √n (J, D) grid (J ∈ [−1.5, 1.5], D ∈ [0, 0.8])."""
    side = int(np.ceil(np.sqrt(n)))
    J, D = np.meshgrid(np.linspace(-1.5, 1.5, side), np.linspace(0.0, 0.8, side), indexing="ij")
    points = np.stack([J.ravel(), D.ravel()], axis=1)[:n]
    sx, sy, sz = (np.asarray(p) for p in q.pauli_matrices())
    one = np.eye(2)
    heisenberg = sum(np.kron(s, s) for s in (sx, sy, sz))
    dmi_z = np.kron(sx, sy) - np.kron(sy, sx)
    zeeman = -(np.kron(sx, one) + np.kron(one, sx))
    return zeeman + points[:, 0, None, None] * heisenberg + points[:, 1, None, None] * dmi_z


def bench_sweep(sizes, repeats, baseline_points, rho0, label, method_kwargs):
    per_point, _ = baseline_per_point(grid(256), rho0, baseline_points)
    print(f"\n[{label}] numpy/scipy loop on the CPU: {1e3 * per_point:.1f} ms/point", flush=True)
    rows = []
    common = dict(observables=OBSERVABLES, save_states=False, invariant_tol=None, rtol=1e-8, atol=1e-10,
                  **method_kwargs)
    for n in sizes:
        Hs = grid(n)
        check = q.solve(Hs[:4], rho0, TS, KAPPA, method="dense", **{**common, "rtol": 1e-12, "atol": 1e-14})
        start = time.perf_counter()
        jax.block_until_ready(q.solve(Hs, rho0, TS, KAPPA, **common).observables)
        first = time.perf_counter() - start
        seconds, result = median_time(lambda: q.solve(Hs, rho0, TS, KAPPA, **common), repeats)
        err = float(np.max(np.abs(np.asarray(result.observables["sz1"])[:4] - np.asarray(check.observables["sz1"]))))
        row = {"bench": label, "n": n, "method": result.method, "seconds": seconds, "first_call_seconds": first,
               "points_per_second": n / seconds, "ratio_vs_numpy_loop": per_point * n / seconds, "max_err": err,
               "baseline_ms_per_point": 1e3 * per_point}
        print(f"  n = {n:7d} [{result.method}]  {seconds:8.3f} s (first call {first:.2f} s)  "
              f"{n / seconds:10.0f} points/s  ratio {per_point * n / seconds:8.0f}x  max err {err:.1e}", flush=True)
        rows.append(row)
    return rows


def bench_chain(ns):
    rows = []
    print("\n[chain] open spin-1/2 chain, t ∈ [0, 10], rtol 1e-6 (time includes compilation)", flush=True)
    for n in ns:
        for path in ("pure", "low_rank"):
            row = run_one(path, n, 1e-6)
            print(f"  N = {n:2d} {path:9s} {row['seconds']:8.2f} s  steps {row['steps']}  "
                  f"spectrum drift {row['spectrum_drift']:.1e}", flush=True)
            rows.append({"bench": "chain", **row})
    return rows


def main(args):
    device = jax.devices()[0]
    print(f"device: {device.platform} {getattr(device, 'device_kind', '')}; CPU: {platform.processor() or platform.machine()}; "
          f"jax {jax.__version__}", flush=True)
    rows = []
    if "sweep" in args.only:
        rows += bench_sweep(args.sizes, args.repeats, args.baseline_points, THERMAL, "sweep", {})
    if "werner" in args.only:
        rows += bench_sweep(args.sizes, args.repeats, args.baseline_points, WERNER, "werner", {})
    if "chain" in args.only:
        rows += bench_chain(args.chain)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "device_kind": getattr(device, "device_kind", ""),
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    jnp.zeros(())  # start the backend before timing anything
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=["sweep", "werner", "chain"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 4096, 65536])
    parser.add_argument("--chain", type=int, nargs="+", default=[16, 20])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-points", type=int, default=8)
    parser.add_argument("--json", help="write the rows to this file")
    main(parser.parse_args())
