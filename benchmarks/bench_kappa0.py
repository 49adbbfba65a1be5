"""κ = 0 (von Neumann) fairness check of the integrator stack: qllg_jax vs QuTiP and dynamiqs ``mesolve``.

With κ = 0 and no jump operators every code integrates the same linear equation ϱ̇ = −i[H, ϱ], so this
compares the integrators themselves (not q-LLG's linear solve). Cases: the paper's dimer (eq. 8) from the
Werner state, and an open spin-1/2 Heisenberg+DMI chain (N = 4) from a random full-rank ϱ; t ∈ [0, 20],
201 saves, rtol 1e-8, atol 1e-10 for every code. Error = max |ϱ(t) − e^{−iHt}ϱ0e^{iHt}| (exact, via eigh).

- qllg_jax: ``jax.jit(solve(..., equation="von_neumann", method="dense"))`` (Tsit5, real packing);
- QuTiP 5: ``qutip.mesolve(H, rho0, ts, options={"rtol", "atol", "method": "adams"/"dop853"})`` (CPU, scipy/cython);
- dynamiqs: ``dynamiqs.mesolve(H, [], rho0, ts, method=Tsit5(rtol, atol))`` (JAX + diffrax, like qllg_jax).

QuTiP and dynamiqs are optional extras of the benchmarks only (``pip install qutip dynamiqs``); a missing one
is reported and skipped. Times: median of ``--repeats`` runs after one warm-up (compilation).

    python benchmarks/bench_kappa0.py [--repeats 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import importlib
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np

import qllg_jax as q
from timing import median_time

T1, RTOL, ATOL = 20.0, 1e-8, 1e-10
TS = np.linspace(0.0, T1, 201)


def cases():
    dimer = q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.0, D=(0.0, 0.0, 0.5))
    yield "dimer Werner (d=4)", np.asarray(dimer), np.asarray(q.werner_state("psi-", 0.6))
    for n in (4,):
        chain = q.chain_model(n, exchange=1.0, dmi=(0.1, 0.2, 0.3), field=(0.2, 0.0, 0.1))
        rho0 = q.random_density_matrix(jax.random.PRNGKey(n), chain.dim)
        yield f"chain N={n} random ϱ (d={chain.dim})", np.asarray(chain.matrix()), np.asarray(rho0)


def exact(H, rho0):
    energies, vectors = np.linalg.eigh(H)
    phases = np.exp(-1j * np.outer(TS, energies))  # (T, d)
    in_basis = vectors.conj().T @ rho0 @ vectors
    evolved = phases[:, :, None] * in_basis[None] * phases.conj()[:, None, :]
    return vectors[None] @ evolved @ vectors.conj().T[None]


def runners(H, rho0):
    """name → zero-argument callable returning ϱ(t) (T, d, d) as numpy; libraries that are missing are skipped."""
    ts = jnp.asarray(TS)
    solve = jax.jit(lambda h, r: q.solve(h, r, ts, 0.0, equation="von_neumann", method="dense", rtol=RTOL, atol=ATOL).states)
    H_j, rho_j = jnp.asarray(H), jnp.asarray(rho0)
    yield "qllg_jax (Tsit5)", lambda: np.asarray(jax.block_until_ready(solve(H_j, rho_j)))
    try:
        qutip = importlib.import_module("qutip")
    except ImportError:
        print("  qutip not installed: skipped (pip install qutip)")
    else:
        Hq, rq = qutip.Qobj(H), qutip.Qobj(rho0)
        for method in ("adams", "dop853"):
            opts = {"rtol": RTOL, "atol": ATOL, "method": method, "progress_bar": False, "store_states": True, "nsteps": 10**6}
            yield f"QuTiP mesolve ({method})", lambda o=opts: np.stack([s.full() for s in qutip.mesolve(Hq, rq, TS, [], options=o).states])
    try:
        dq = importlib.import_module("dynamiqs")
    except ImportError:
        print("  dynamiqs not installed: skipped (pip install dynamiqs)")
    else:
        method = dq.method.Tsit5(rtol=RTOL, atol=ATOL)
        run = jax.jit(lambda h, r: dq.mesolve(h, [], r, ts, method=method, progress_meter=False).states.to_jax())
        yield "dynamiqs mesolve (Tsit5)", lambda: np.asarray(jax.block_until_ready(run(H_j, rho_j)))


def main(repeats: int) -> list[dict]:
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, jax devices: {jax.local_device_count()} x {jax.devices()[0].platform}")
    print(f"kappa = 0, t in [0, {T1}], 201 saves, rtol={RTOL}, atol={ATOL}; times = median of {repeats} after warm-up")
    rows = []
    for label, H, rho0 in cases():
        ref = exact(H, rho0)
        print(f"\n[{label}]")
        reference_time = None
        for name, fn in runners(H, rho0):
            try:
                seconds, states = median_time(fn, repeats)
            except Exception as error:  # an optional library that does not run here: report, go on
                print(f"  {name:26s} failed: {type(error).__name__}: {str(error)[:120]}")
                continue
            err = float(np.max(np.abs(states - ref)))
            reference_time = reference_time or seconds
            print(f"  {name:26s} {1e3 * seconds:9.2f} ms   (this / qllg_jax: {seconds / reference_time:6.2f}x)   max err {err:.1e}")
            rows.append(dict(case=label, code=name, ms=1e3 * seconds, err=err))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    main(parser.parse_args().repeats)
