"""One dimer trajectory (paper eq. 8), t ∈ [0, 20], rtol 1e-8: qllg_jax vs the numpy/scipy baseline.

Prints, for the Werner state (p = 0.6 on |ψ−⟩), |↑↓⟩ and a full-rank thermal state, the baseline time (numpy kron
solve + scipy DOP853), the compiled qllg_jax time of several configurations (dense and frame methods × solver ×
strategy × state packing, ``jax.jit`` (no per-call Python validation/dispatch), and ``method="auto"``: closed forms
for Werner and |↑↓⟩, the frame for the thermal state), the ratios and the max deviation from the closed form
(two_level_exact / eq. 28) or from a baseline run at rtol 1e-13. Times are the median of ``--repeats`` runs after compilation.

    python benchmarks/bench_dimer.py [--repeats 7]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import os
import platform

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import qllg_jax as q
from baseline import solve_numpy
from timing import median_time

T1, RTOL, ATOL, KAPPA = 20.0, 1e-8, 1e-10, 0.5
H = q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.0, D=(0.0, 0.0, 0.5))
TS = jnp.linspace(0.0, T1, 201)

STATES = {
    "werner": q.werner_state("psi-", 0.6),
    "updown": q.density_matrix(q.up_down_state()),
    "thermal": q.thermal_state(q.dimer_hamiltonian(B=(0.2, 0.1, 1.0), J=0.4), 0.7),  # four distinct eigenvalues
}
CONFIGS = {
    # name: solve keyword arguments; solver=None is Dopri8 at rtol 1e-8 (Tsit5 above 1e-7)
    "dense (default solver Dopri8, eigen)": dict(method="dense"),
    "dense Tsit5 eigen": dict(method="dense", solver=diffrax.Tsit5()),
    "dense Tsit5 kron": dict(method="dense", solver=diffrax.Tsit5(), strategy="kron"),
    "dense Dopri8 complex state": dict(method="dense", complex_state=True),
    "frame (Dopri8)": dict(method="frame"),
    "frame Tsit5": dict(method="frame", solver=diffrax.Tsit5()),
    "jit(solve) frame": dict(method="frame", jit=True),
    "auto": dict(method="auto"),
}


def reference(name, rho0):
    if name == "updown":
        return q.density_matrix(q.pure_state_exact(H, q.up_down_state(), TS, KAPPA))
    if name == "werner":
        return q.two_level_exact(H, rho0, TS, KAPPA)
    return solve_numpy(H, rho0, TS, KAPPA, rtol=1e-13, atol=1e-15)  # no closed form: a tight baseline run


def main(repeats: int) -> list[dict]:
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, jax devices: {jax.local_device_count()} x {jax.devices()[0].platform}")
    print(f"dimer eq. 8, B=(1,0,0) J=1 D=(0,0,0.5), kappa={KAPPA}, t in [0, {T1}], rtol={RTOL}, atol={ATOL}, 201 saves")
    rows = []
    for name, rho0 in STATES.items():
        ref = np.asarray(reference(name, rho0))
        H_np, rho_np, ts_np = np.asarray(H), np.asarray(rho0), np.asarray(TS)
        base, _ = median_time(lambda: solve_numpy(H_np, rho_np, ts_np, KAPPA, rtol=RTOL, atol=ATOL), max(3, repeats // 2))
        base_err = np.max(np.abs(solve_numpy(H_np, rho_np, ts_np, KAPPA, rtol=RTOL, atol=ATOL) - ref))
        print(f"\n[{name}] baseline numpy/scipy DOP853: {1e3 * base:8.2f} ms   max err {base_err:.1e}")
        for label, kwargs in CONFIGS.items():
            kwargs = dict(kwargs)
            solve = lambda H, rho0, kw=kwargs: q.solve(H, rho0, TS, KAPPA, rtol=RTOL, atol=ATOL, **kw)  # noqa: E731
            if kwargs.pop("jit", False):  # no per-call validation / dispatch: the compiled integrator alone
                jitted = jax.jit(lambda H, rho0=rho0, kw=kwargs: q.solve(H, rho0, TS, KAPPA, rtol=RTOL, atol=ATOL, **kw))
                solve = lambda H, rho0, jitted=jitted: jitted(H)  # noqa: E731  (ϱ0 a constant: frame reads it on the host)

            t, result = median_time(lambda solve=solve: solve(H, rho0), repeats)
            err = float(np.max(np.abs(np.asarray(result.states) - ref)))
            steps = int(result.stats["num_steps"])
            print(f"  {label:28s} {1e3 * t:8.3f} ms  ratio {base / t:7.1f}x  steps {steps:5d}  max err {err:.1e}  [{result.method}]")
            rows.append(dict(state=name, config=label, baseline_ms=1e3 * base, ms=1e3 * t, ratio=base / t, err=err))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    main(parser.parse_args().repeats)
