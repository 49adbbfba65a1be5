"""The solver core (issue 13): mixed-state sweeps, Werner sweeps under jit(vmap), first-call and warm-call cost.

Every ratio is measured in one run against a named baseline:

- ``sweep``: generic full-rank mixed dimer (thermal ϱ0 of another Hamiltonian: four distinct eigenvalues, so no
  closed form applies), 256 (J, D) points, t ∈ [0, 20], 201 saves of the energy and two Bloch components,
  rtol 1e-8 / atol 1e-10. Baseline: a Python loop of ``benchmarks/baseline.py`` (numpy kron solve per
  right-hand side + scipy DOP853 at the same tolerances), timed on ``--baseline-points`` points and scaled to 256.
  qllg_jax rows: ``solve(H_batch, ...)`` (one ODE with shared steps, ``method="auto"`` → frame), the same with
  ``batching="vmap"``, ``jax.jit(jax.vmap(solve))`` over single problems, and the dense method for reference;
  each with its max deviation from a tight reference.
- ``werner``: the same 256 points from a Werner state (p = 0.9): ``jax.jit(jax.vmap(solve))`` and
  ``solve(H_batch)`` (auto → two-level closed form) against the same kind of baseline loop.
- ``checks``: cost of the runtime input checks of traced inputs (a ``jax.jit(jax.vmap(solve))`` sweep with a
  traced H and κ), against the same compiled solve with the checks switched off.
- ``first``: the first ``solve`` of a 4×4 mixed state in a fresh process vs dynamiqs ``mesolve``'s first call on a
  4×4 system (both κ = 0 … q-LLG needs the damping term, dynamiqs has none: each library's own first call),
  alternating fresh processes, median of ``--processes`` each; compilation cache off.
- ``warm``: a warm κ = 0 von Neumann call, 4×4, 201 saves, Tsit5 at rtol 1e-8: ``solve`` (and ``jax.jit(solve)``)
  vs dynamiqs ``mesolve`` at the same solver and tolerances.

    python benchmarks/bench_core.py [--only sweep werner checks first warm] [--repeats 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import json
import os
import platform
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np

import qllg_jax as q
from baseline import solve_numpy
from timing import median_time

T1, N_SAVE, RTOL, ATOL, KAPPA = 20.0, 201, 1e-8, 1e-10, 0.5
TS = np.linspace(0.0, T1, N_SAVE)
J_VALUES, D_VALUES = np.linspace(-1.5, 1.5, 16), np.linspace(0.0, 0.8, 16)
POINTS = [(J, D) for J in J_VALUES for D in D_VALUES]  # 256
SZ1 = np.asarray(q.embed(q.pauli_matrices()[2], 0, (2, 2)))
SX2 = np.asarray(q.embed(q.pauli_matrices()[0], 1, (2, 2)))
OBSERVABLES = {"sz1": SZ1, "sx2": SX2}
THERMAL = np.asarray(q.thermal_state(q.dimer_hamiltonian(B=(0.2, 0.1, 1.0), J=0.4), 0.7))
WERNER = np.asarray(q.werner_state("psi+", 0.9))


def hamiltonians() -> np.ndarray:
    return np.stack([np.asarray(q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=J, D=(0.0, 0.0, D))) for J, D in POINTS])


def baseline_per_point(Hs, rho0, n: int) -> tuple[float, np.ndarray]:
    """Seconds per point of the numpy/scipy loop (the same observables) on the first n points, and its results."""
    index = np.linspace(0, len(Hs) - 1, n).astype(int)
    out, start = [], time.perf_counter()
    for i in index:
        states = solve_numpy(Hs[i], rho0, TS, KAPPA, rtol=RTOL, atol=ATOL)
        out.append(np.real(np.einsum("tij,ji->t", states, SZ1)))
    return (time.perf_counter() - start) / n, np.stack(out)


def reference_sz1(Hs, rho0, index) -> np.ndarray:
    """Tight reference (dense method, rtol 1e-12) of ⟨σz1⟩(t) on the given points."""
    res = q.solve(Hs[index], rho0, TS, KAPPA, method="dense", rtol=1e-12, atol=1e-14, solver="dopri8",
                  observables={"sz1": SZ1}, save_states=False, invariant_tol=None)
    return np.asarray(res.observables["sz1"])


def print_row(label, seconds, base_total, err=None, extra=""):
    error = "" if err is None else f"  max err {err:.1e}"
    print(f"  {label:48s} {seconds:8.3f} s  ratio {base_total / seconds:7.1f}x{error}{extra}", flush=True)
    return {"label": label, "seconds": seconds, "ratio": base_total / seconds, "err": err}


def bench_sweep(repeats: int, baseline_points: int) -> list[dict]:
    Hs = hamiltonians()
    per_point, base_values = baseline_per_point(Hs, THERMAL, baseline_points)
    base_total = per_point * len(Hs)
    check = np.linspace(0, len(Hs) - 1, baseline_points).astype(int)
    reference = reference_sz1(Hs, THERMAL, check)
    print(f"\n[sweep] full-rank thermal dimer, {len(Hs)} points: baseline numpy/scipy DOP853 {1e3 * per_point:.1f} ms/pt "
          f"→ {base_total:.1f} s (max err {np.max(np.abs(base_values - reference)):.1e})")
    rows = []
    common = dict(observables=OBSERVABLES, save_states=False, invariant_tol=None, rtol=RTOL, atol=ATOL)
    configs = {
        "solve(H_batch) auto (frame, shared steps)": lambda: q.solve(Hs, THERMAL, TS, KAPPA, **common),
        "solve(H_batch, batching='vmap')": lambda: q.solve(Hs, THERMAL, TS, KAPPA, batching="vmap", **common),
        "solve(H_batch) frame, solver='tsit5'": lambda: q.solve(Hs, THERMAL, TS, KAPPA, solver="tsit5", **common),
        "solve(H_batch, method='dense')": lambda: q.solve(Hs, THERMAL, TS, KAPPA, method="dense", **common),
    }
    mapped = jax.jit(jax.vmap(lambda H: q.solve(H, THERMAL, TS, KAPPA, **common).observables))
    for label, run in configs.items():
        seconds, result = median_time(run, repeats)
        err = float(np.max(np.abs(np.asarray(result.observables["sz1"])[check] - reference)))
        steps = np.asarray(result.stats["num_steps"])
        rows.append(print_row(label, seconds, base_total, err, f"  steps {int(steps.max())} [{result.method}]"))
    seconds, values = median_time(lambda: mapped(jnp.asarray(Hs)), repeats)
    err = float(np.max(np.abs(np.asarray(values["sz1"])[check] - reference)))
    rows.append(print_row("jax.jit(jax.vmap(solve)) auto (frame)", seconds, base_total, err))
    return rows


def bench_werner(repeats: int, baseline_points: int) -> list[dict]:
    Hs = hamiltonians()
    per_point, _ = baseline_per_point(Hs, WERNER, baseline_points)
    base_total = per_point * len(Hs)
    print(f"\n[werner] Werner Ψ+ p = 0.9, {len(Hs)} points: baseline {1e3 * per_point:.1f} ms/pt → {base_total:.1f} s")
    closed = np.stack([np.real(np.einsum("tij,ji->t", np.asarray(q.two_level_exact(H, WERNER, TS, KAPPA)), SZ1))
                       for H in Hs[:8]])
    common = dict(observables=OBSERVABLES, save_states=False, invariant_tol=None)
    mapped = jax.jit(jax.vmap(lambda H: q.solve(H, WERNER, TS, KAPPA, **common).observables))
    rows = []
    seconds, values = median_time(lambda: mapped(jnp.asarray(Hs)), repeats)
    rows.append(print_row("jax.jit(jax.vmap(solve)) (two_level)", seconds, base_total,
                          float(np.max(np.abs(np.asarray(values["sz1"])[:8] - closed)))))
    seconds, result = median_time(lambda: q.solve(Hs, WERNER, TS, KAPPA, **common), repeats)
    rows.append(print_row(f"solve(H_batch) ({result.method})", seconds, base_total,
                          float(np.max(np.abs(np.asarray(result.observables["sz1"])[:8] - closed)))))
    return rows


def bench_checks(repeats: int) -> list[dict]:
    """The runtime checks run when H, κ are traced; compare with the same compiled solve, checks switched off."""
    import equinox as eqx

    solve_module = sys.modules["qllg_jax._prepare"]  # the host preparation builds the runtime checks
    Hs = jnp.asarray(hamiltonians())
    kappas = jnp.full(len(Hs), KAPPA)
    compiled = sys.modules["qllg_jax._core"].solve_compiled
    original = solve_module.InputChecks
    rows = []
    for label, switch in (("checks on (default)", False), ("checks off", True)):
        if switch:
            solve_module.InputChecks = lambda **kw: original(state=None)
        try:
            fn = jax.jit(jax.vmap(lambda H, k: q.solve(H, THERMAL, TS, k, save_states=False, invariant_tol=None,
                                                       observables=OBSERVABLES).observables["sz1"]))
            seconds, _ = median_time(lambda: fn(Hs, kappas), repeats)
        finally:
            solve_module.InputChecks = original
        rows.append({"label": label, "seconds": seconds})
    del compiled, eqx
    overhead = rows[0]["seconds"] / rows[1]["seconds"] - 1
    print(f"\n[checks] jit(vmap(solve)) with traced H and κ, 256 thermal dimers: checks on {rows[0]['seconds']:.3f} s, "
          f"off {rows[1]['seconds']:.3f} s → overhead {100 * overhead:+.1f} %")
    return rows


FIRST_QLLG = """
import time, numpy as np
t0 = time.perf_counter()
import jax, qllg_jax as q
H = np.array({H}); rho = np.array({rho}); ts = np.linspace(0, 20, 201)
t1 = time.perf_counter()
r = q.solve(H, rho, ts, 0.5); jax.block_until_ready(r.invariants)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""
FIRST_DYNAMIQS = """
import time, numpy as np
t0 = time.perf_counter()
import jax
jax.config.update("jax_enable_x64", True)
import dynamiqs as dq
H = dq.asqarray(np.array({H})); rho = dq.asqarray(np.array({rho})); ts = np.linspace(0, 20, 201)
t1 = time.perf_counter()
r = dq.mesolve(H, [], rho, ts, progress_meter=False); jax.block_until_ready(r.states.to_jax())
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def bench_first(processes: int) -> list[dict]:
    H = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.0, D=(0.0, 0.0, 0.5)))
    literal = lambda a: repr(a.tolist())  # noqa: E731
    scripts = {name: code.format(H=literal(H), rho=literal(THERMAL)) for name, code in
               (("qllg_jax solve", FIRST_QLLG), ("dynamiqs mesolve", FIRST_DYNAMIQS))}
    env = {**os.environ, "QLLG_COMPILATION_CACHE": "off", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    times = {name: [] for name in scripts}
    for _ in range(processes):
        for name, code in scripts.items():
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
            if done.returncode != 0:
                print(f"  {name}: failed: {done.stderr[-500:]}")
                return []
            times[name].append(float(done.stdout.split()[-1]))
    print(f"\n[first] first call in a fresh process (median of {processes}, alternating; compilation cache off):")
    rows = []
    for name, values in times.items():
        print(f"  {name:20s} {statistics.median(values):6.2f} s  (all: {', '.join(f'{v:.2f}' for v in values)})")
        rows.append({"label": name, "seconds": statistics.median(values), "all": values})
    print(f"  ratio qllg_jax / dynamiqs = {rows[0]['seconds'] / rows[1]['seconds']:.2f}")
    return rows


def bench_warm(repeats: int) -> list[dict]:
    import diffrax
    import dynamiqs as dq

    H = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.0, D=(0.0, 0.0, 0.5)))
    Hq, rho_q = dq.asqarray(H), dq.asqarray(THERMAL)
    method = dq.method.Tsit5(rtol=RTOL, atol=ATOL)
    dyn = lambda: dq.mesolve(Hq, [], rho_q, TS, method=method, progress_meter=False).states.to_jax()  # noqa: E731
    ours = lambda: q.solve(H, THERMAL, TS, 0.0, equation="von_neumann", solver=diffrax.Tsit5(), rtol=RTOL,  # noqa: E731
                           atol=ATOL).states
    jitted = jax.jit(lambda H: q.solve(H, THERMAL, TS, 0.0, equation="von_neumann", solver=diffrax.Tsit5(), rtol=RTOL,
                                       atol=ATOL).states)
    exact = np.stack([U @ THERMAL @ U.conj().T for U in (
        np.asarray(jax.scipy.linalg.expm(-1j * t * H)) for t in TS)])
    rows = []
    print(f"\n[warm] κ = 0 von Neumann, 4×4 thermal ϱ0, {N_SAVE} saves, Tsit5 rtol {RTOL}: warm calls (median of {repeats})")
    for label, run in (("dynamiqs mesolve", dyn), ("qllg_jax solve", ours), ("jax.jit(qllg_jax solve)", lambda: jitted(H))):
        seconds, states = median_time(run, repeats)
        err = float(np.max(np.abs(np.asarray(states) - exact)))
        print(f"  {label:28s} {1e3 * seconds:8.2f} ms  max err {err:.1e}")
        rows.append({"label": label, "seconds": seconds, "err": err})
    print(f"  ratio dynamiqs / qllg_jax solve = {rows[0]['seconds'] / rows[1]['seconds']:.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["sweep", "werner", "checks", "first", "warm"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-points", type=int, default=8)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, jax {jax.__version__} on "
          f"{jax.devices()[0].platform}; load average {os.getloadavg()[0]:.1f}")
    rows = {}
    if "sweep" in args.only:
        rows["sweep"] = bench_sweep(args.repeats, args.baseline_points)
    if "werner" in args.only:
        rows["werner"] = bench_werner(args.repeats, args.baseline_points)
    if "checks" in args.only:
        rows["checks"] = bench_checks(args.repeats)
    if "first" in args.only:
        rows["first"] = bench_first(args.processes)
    if "warm" in args.only:
        rows["warm"] = bench_warm(max(args.repeats, 20))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
