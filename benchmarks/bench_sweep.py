"""Issue-5 sweep throughput: the paper's dimer over 1024 (J, D) points vs the per-trajectory numpy/scipy loop.

Setup (paper Fig. 4): H = −B·(σ1+σ2) + J σ1·σ2 + D ẑ·(σ1×σ2), B = (1, 1, 1)/√3, κ = 0.5, Werner initial state
p = 0.9 on |Ψ+⟩, t ∈ [0, 20], rtol 1e-8, atol 1e-10, 201 saved times of the observables Bloch vectors (2, 3)
and Bell non-locality. Grid: J ∈ linspace(−1.5, 1.5, 32) × D ∈ linspace(0, 1.2, 32) = 1024 points.

Baseline (benchmarks/baseline.py): scipy DOP853 on the complex 4×4 state with the kron LU solve per RHS, one
trajectory at a time, then the same observables from the saved states. It is timed on a subset of
``--baseline-points`` evenly spread points (default 32) and scaled to 1024 (stated in the output).

qllg_jax rows (each a :func:`qllg_jax.sweep` over all 1024 points; time after a warm-up call that compiles,
median of ``--repeats``): the dense integrator with several solver/strategy/chunk settings, and the exact
two-level reduction (ϱ = a𝟙 + bP, κ → κb, paper eq. 28 for P; no time stepping) that ``solve`` selects for
Werner states. Every row reports its max deviation from the closed form and how many points deviate by more
than 1e-6: a few points (J ≳ 1.3, D = 0) are ill-conditioned (the trajectory passes close to an unstable
configuration, so 1e-9 perturbations grow to 1e-4…1e-3 — there even the vmapped and the single closed form differ
by ~1e-4); everywhere else the integrators agree with the closed form to ~1e-7.

    python benchmarks/bench_sweep.py [--repeats 3] [--baseline-points 32] [--only NAME ...] [--json FILE]

The machine may be shared: the baseline is timed before and after the qllg_jax rows and both ratios printed.

``sweep_solve batching=...`` rows compare one batched ``solve`` per chunk (``batching="solve"``) with one
vmapped solve per point (``batching="vmap"``) on the dense integrator.

``--io`` measures the on-disk store instead (issue 15): bytes written (``wchar`` of /proc/self/io, every byte
passed to write/pwrite) vs the final file size and the time with ``out=`` vs in memory, for the 1024-point
dimer sweep (201 saves) and for ``--io-points`` (default 1e5) points of the closed form with 21 saves and no
states; and, for the same data, the alternative HDF5 layout "chunked datasets + fletcher32, written with
h5py, flush, then the chunk's flag" (bytes written and time per chunk).

    python benchmarks/bench_sweep.py --io [--io-points 100000]

``--merge`` measures merging a sweep written in parts (issue 23): ``--io-points`` (default 1e5) points of the
closed form with 21 saves, written as ``--parts`` (default 4) part files with ``sweep_solve(..., part=(K, N))``;
then the time of ``merge_sweeps`` (check every part, copy and verify every chunk, write one file) against the
named baseline "read every part once" (``load_sweep`` of each part file: reads and verifies every chunk it holds),
median of ``--repeats``, both in the same run; plus a raw h5py read of every dataset of every part. Target: merge
≤ 2× the baseline.

    python benchmarks/bench_sweep.py --merge [--io-points 100000] [--parts 4] [--repeats 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import qllg_jax as q
from baseline import solve_numpy, two_qubit_observables_numpy

KAPPA, T1, RTOL, ATOL = 0.5, 20.0, 1e-8, 1e-10
B_FIELD = tuple(np.ones(3) / np.sqrt(3))
TS = jnp.linspace(0.0, T1, 201)
RHO0 = q.werner_state("psi+", 0.9)
PARAMS = q.grid(J=np.linspace(-1.5, 1.5, 32), D=np.linspace(0.0, 1.2, 32))
OBSERVABLES = {"bloch": q.bloch_vectors, "bell": q.bell_nonlocality}


def hamiltonian(J, D):
    return q.dimer_hamiltonian(B=B_FIELD, J=J, D=(0.0, 0.0, D))


def dense_point(method="dense", **solve_options):
    def run_point(J, D):
        return q.solve(hamiltonian(J, D), RHO0, TS, KAPPA, method=method, rtol=RTOL, atol=ATOL, observables=OBSERVABLES,
                       save_states=False, throw=False, invariant_tol=None, **solve_options)

    return run_point


_A, _B, _W0 = q.two_level_split(RHO0)  # ϱ0 = a𝟙 + bP0 on the host (P0 = W0 W0†)


def two_level_point(J, D):
    """The exact two-level reduction (what ``solve(method="two_level")`` computes), traceable in H."""
    P = q.projector_exact(hamiltonian(J, D), _W0, TS, KAPPA * _B)
    states = _A * jnp.eye(4) + _B * P
    return {"observables": {name: jax.vmap(fn)(states) for name, fn in OBSERVABLES.items()},
            "success": jnp.asarray(True)}


CONFIGS = {
    "dense tsit5 eigen (default) chunk=1024": (dense_point(), 1024),
    "dense tsit5 eigen (default) chunk=128": (dense_point(), 128),
    "dense tsit5 eigen (default) chunk=32": (dense_point(), 32),
    "dense tsit5 kron chunk=128": (dense_point(strategy="kron"), 128),
    "dense tsit5 kron chunk=32": (dense_point(strategy="kron"), 32),
    "dense dopri5 eigen chunk=128": (dense_point(solver="dopri5"), 128),
    "dense dopri8 eigen chunk=128": (dense_point(solver="dopri8"), 128),
    "dense dopri8 kron chunk=128": (dense_point(solver="dopri8", strategy="kron"), 128),
    "solve two_level (sweep_solve auto) chunk=1024": (dense_point(method="two_level"), 1024),
    "solve two_level (sweep_solve auto) chunk=128": (dense_point(method="two_level"), 128),
    "two_level closed form chunk=1024": (two_level_point, 1024),
    "two_level closed form chunk=128": (two_level_point, 128),
}


def solve_rows():
    """sweep_solve over the same points with the dense integrator: batched solve per chunk vs vmap per point."""
    options = {"method": "dense", "rtol": RTOL, "atol": ATOL}
    return {
        f"sweep_solve dense batching={batching} chunk=128": (
            lambda batching=batching: q.sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS, observables=OBSERVABLES,
                                                    solve_options=options, batching=batching, chunk_size=128,
                                                    progress=False))
        for batching in ("solve", "vmap")
    }


def baseline_observables(states):
    return two_qubit_observables_numpy(states)


def reference_observables():
    """Closed form for all 1024 points (independent of the integrators), for the error column."""
    result = q.sweep(two_level_point, PARAMS, chunk_size=1024, progress=False)
    return result.outputs["observables"]


def main(repeats: int, n_base: int, only) -> list[dict]:
    n = len(PARAMS["J"])
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cpus, jax devices {jax.devices()}")
    print(f"dimer (paper Fig. 4 field), kappa={KAPPA}, Werner p=0.9 psi+, t in [0,{T1}], rtol={RTOL}, atol={ATOL}, "
          f"201 saves, {n} (J, D) points")
    ref = reference_observables()
    subset = np.linspace(0, n - 1, n_base).round().astype(int)

    def time_baseline():
        start = time.perf_counter()
        err = 0.0
        for i in subset:
            states = solve_numpy(np.asarray(hamiltonian(PARAMS["J"][i], PARAMS["D"][i])), np.asarray(RHO0),
                                 np.asarray(TS), KAPPA, rtol=RTOL, atol=ATOL)
            out = baseline_observables(states)
            err = max(err, float(np.max(np.abs(out["bloch"] - ref["bloch"][i]))))
        return (time.perf_counter() - start) / len(subset), err

    per_point, base_err = time_baseline()
    base_total = per_point * n
    print(f"baseline numpy/scipy DOP853 loop: {1e3 * per_point:.1f} ms/point on {len(subset)} points, "
          f"scaled to {n}: {base_total:.1f} s   (max bloch err vs closed form {base_err:.1e})")
    rows = []
    runs = {label: (lambda run_point=run_point, chunk=chunk: q.sweep(run_point, PARAMS, chunk_size=chunk, progress=False))
            for label, (run_point, chunk) in CONFIGS.items()}
    runs.update(solve_rows())
    for label, run in runs.items():
        if only and not any(o in label for o in only):
            continue
        t0 = time.perf_counter()
        result = run()  # compiles
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - t0)
        t = float(np.median(times))
        err = float(np.max(np.abs(result.outputs["observables"]["bloch"] - ref["bloch"])))
        steps = result.outputs.get("stats", {}).get("num_steps")
        step_info = f"steps mean {np.mean(steps):.0f} max {np.max(steps)}" if steps is not None else "no steps"
        n_bad = int(np.sum(np.abs(result.outputs["observables"]["bloch"] - ref["bloch"]).reshape(n, -1).max(1) > 1e-6))
        print(f"  {label:46s} {t:8.3f} s ({1e3 * t / n:.3f} ms/pt, first call {first:.1f} s)  ratio {base_total / t:7.1f}x  "
              f"{step_info}  ok {int(result.success.sum())}/{n}  max bloch err {err:.1e} ({n_bad} pts > 1e-6)")
        rows.append(dict(config=label, seconds=t, ratio=base_total / t, err=err, points_err_gt_1e6=n_bad,
                         first_call_s=first))
    # the machine is shared: time the baseline again after the rows and give the ratios against both
    per_point_after, _ = time_baseline()
    print(f"baseline again after the rows: {1e3 * per_point_after:.1f} ms/point; ratios against it:")
    for row in rows:
        row["ratio_after"] = per_point_after * n / row["seconds"]
        print(f"  {row['config']:46s} ratio {row['ratio']:7.1f}x (before) {row['ratio_after']:7.1f}x (after)")
    return dict(baseline_s_per_point=per_point, baseline_s_per_point_after=per_point_after, baseline_points=len(subset),
                baseline_total_s=base_total, machine=f"{platform.machine()}, {os.cpu_count()} cpus", rows=rows)


def _wchar() -> int:
    with open("/proc/self/io") as handle:
        return int(next(line for line in handle if line.startswith("wchar")).split()[1])


def _measure_io(label, run, path) -> dict:
    """Time and bytes written by ``run(out)`` into a fresh ``path`` vs ``run(None)`` in memory."""
    run(None)  # compile
    t0 = time.perf_counter()
    run(None)
    memory_s = time.perf_counter() - t0
    if os.path.exists(path):
        os.remove(path)
    before, t0 = _wchar(), time.perf_counter()
    result = run(path)
    file_s, written = time.perf_counter() - t0, _wchar() - before
    size = os.path.getsize(path)
    n_chunks = -(-result.n_points // result.metadata["chunk_size"])
    row = dict(case=label, points=result.n_points, chunks=n_chunks, file_bytes=size, written_bytes=written,
               written_over_size=written / size, seconds_out=file_s, seconds_memory=memory_s,
               ms_per_chunk_extra=1e3 * (file_s - memory_s) / n_chunks)
    print(f"  {label}: {result.n_points} points, {n_chunks} chunks: file {size / 2**20:.1f} MiB, written "
          f"{written / 2**20:.1f} MiB ({written / size:.2f}x), {file_s:.2f} s with out= vs {memory_s:.2f} s in memory "
          f"({row['ms_per_chunk_extra']:.2f} ms/chunk extra)")
    return row


def _h5py_chunked_variant(path, result) -> dict:
    """The alternative layout on the same data: chunked datasets with fletcher32, h5py writes, flush, flag."""
    import h5py
    import jax as _jax

    leaves = _jax.tree_util.tree_leaves({"o": result.outputs, "s": result.success, "f": result.failure,
                                         "d": result.diagnostics})
    chunk, n = result.metadata["chunk_size"], result.n_points
    if os.path.exists(path):
        os.remove(path)
    before, t0 = _wchar(), time.perf_counter()
    with h5py.File(path, "w", libver=("v108", "v108")) as f:
        sets = [f.create_dataset(f"l{i}", shape=leaf.shape, dtype=leaf.dtype, chunks=(chunk,) + leaf.shape[1:],
                                 fletcher32=True) for i, leaf in enumerate(leaves)]
        done = f.create_dataset("done", shape=(-(-n // chunk),), dtype=np.uint8)
        for k in range(-(-n // chunk)):
            for dset, leaf in zip(sets, leaves):
                dset[k * chunk : (k + 1) * chunk] = leaf[k * chunk : (k + 1) * chunk]
            f.flush()
            done[k] = 1
            f.flush()
    seconds, written = time.perf_counter() - t0, _wchar() - before
    size = os.path.getsize(path)
    print(f"  same data, h5py chunked + fletcher32 + flush + flag: file {size / 2**20:.1f} MiB, written "
          f"{written / 2**20:.1f} MiB ({written / size:.2f}x), {seconds:.2f} s (write only)")
    os.remove(path)
    return dict(case="h5py chunked fletcher32 flag-after-flush", file_bytes=size, written_bytes=written,
                written_over_size=written / size, seconds_write=seconds)


def io_main(n_points: int) -> dict:
    import tempfile

    workdir = tempfile.mkdtemp(prefix="bench_sweep_io_")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; store measurements in {workdir}")
    rows = []
    dimer = lambda out: q.sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS, observables=OBSERVABLES,  # noqa: E731
                                      solve_options={"rtol": RTOL, "atol": ATOL}, progress=False, out=out)
    rows.append(_measure_io("dimer 1024 points, 201 saves (two_level auto)", dimer, os.path.join(workdir, "d.h5")))
    many = q.grid(J=np.linspace(-1.5, 1.5, int(np.ceil(np.sqrt(n_points)))),
                  D=np.linspace(0.0, 1.2, int(np.ceil(n_points / np.ceil(np.sqrt(n_points))))))
    many = {k: v[:n_points] for k, v in many.items()}
    ts_short = jnp.linspace(0.0, T1, 21)
    big = lambda out: q.sweep_solve(hamiltonian, RHO0, ts_short, KAPPA, many, observables=OBSERVABLES,  # noqa: E731
                                    progress=False, out=out, keep_in_memory=out is None)
    path = os.path.join(workdir, "big.h5")
    rows.append(_measure_io(f"{n_points} points, 21 saves, no states", big, path))
    rows.append(_h5py_chunked_variant(os.path.join(workdir, "variant.h5"), q.load_sweep(path)))
    return dict(machine=f"{platform.machine()}, {os.cpu_count()} cpus", io=rows)


def merge_main(n_points: int, n_parts: int, repeats: int) -> dict:
    import shutil
    import tempfile

    import h5py

    workdir = tempfile.mkdtemp(prefix="bench_sweep_merge_")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; load {os.getloadavg()}; files in {workdir}")
    many = q.grid(J=np.linspace(-1.5, 1.5, int(np.ceil(np.sqrt(n_points)))),
                  D=np.linspace(0.0, 1.2, int(np.ceil(n_points / np.ceil(np.sqrt(n_points))))))
    many = {k: v[:n_points] for k, v in many.items()}
    out = os.path.join(workdir, "big.h5")
    t0 = time.perf_counter()
    for k in range(n_parts):
        q.sweep_solve(hamiltonian, RHO0, jnp.linspace(0.0, T1, 21), KAPPA, many, observables=OBSERVABLES,
                      progress=False, out=out, part=(k, n_parts), keep_in_memory=False)
    parts = q.sweeps.find_parts(out)
    assert len(parts) == n_parts, parts
    size = sum(os.path.getsize(p) for p in parts)
    print(f"  {n_points} points in {n_parts} parts written in {time.perf_counter() - t0:.1f} s "
          f"({size / 2**20:.1f} MiB of part files)")

    def read_parts():
        for path in parts:
            q.load_sweep(path)

    def read_raw():
        def read(name, item):  # returns None: visititems stops at the first non-None return
            if isinstance(item, h5py.Dataset):
                item[()]

        for path in parts:
            with h5py.File(path, "r") as f:
                f.visititems(read)

    def merge():
        if os.path.exists(out):
            os.remove(out)
        q.merge_sweeps(out)

    timed = {}
    for label, run in (("read every part once (load_sweep)", read_parts), ("raw h5py read of every part", read_raw),
                       ("merge_sweeps", merge)):
        run()  # warm (page cache, imports)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        timed[label] = float(np.median(times))
        print(f"  {label:36s} {timed[label]:7.3f} s (median of {repeats})")
    merged = q.load_sweep(out)
    assert merged.metadata["complete"] and merged.success.all()
    ratio = timed["merge_sweeps"] / timed["read every part once (load_sweep)"]
    print(f"  merge / read every part once = {ratio:.2f}x (target <= 2x); merge / raw read = "
          f"{timed['merge_sweeps'] / timed['raw h5py read of every part']:.2f}x; merged file "
          f"{os.path.getsize(out) / 2**20:.1f} MiB")
    shutil.rmtree(workdir)
    return dict(machine=f"{platform.machine()}, {os.cpu_count()} cpus", points=n_points, parts=n_parts,
                part_bytes=size, seconds=timed, merge_over_read=ratio)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-points", type=int, default=32)
    parser.add_argument("--only", nargs="*", help="run only configs whose label contains one of these strings")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    parser.add_argument("--io", action="store_true", help="measure the on-disk store (bytes written, time) instead")
    parser.add_argument("--io-points", type=int, default=100_000)
    parser.add_argument("--merge", action="store_true", help="measure merge_sweeps against reading every part once")
    parser.add_argument("--parts", type=int, default=4)
    args = parser.parse_args()
    if args.merge:
        report = merge_main(args.io_points, args.parts, args.repeats)
    else:
        report = io_main(args.io_points) if args.io else main(args.repeats, args.baseline_points, args.only)
    if args.json:
        import json

        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
