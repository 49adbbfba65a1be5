"""Real packing of the Hermitian ϱ vs the complex state in diffrax: time, steps, max error vs closed forms.

Dense q-LLG path (``method="dense"``, Tsit5, rtol 1e-8, atol 1e-10, κ = 0.5, t ∈ [0, 20], 201 saves), the
solve under ``jax.jit`` (the compiled integrator alone), best of ``--repeats`` runs with the two variants
interleaved (so both see the same machine load). Cases: dimer (eq. 8) from |↑↓⟩ (vs eq. 28) and from a
Werner state (vs two_level_exact); 3-spin random chain from a random ket (vs eq. 28) and from
ϱ = a𝟙 + bP with rank-3 P (vs two_level_exact).

    python benchmarks/complex_vs_real.py [--repeats 9]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import qllg_jax as q

KAPPA, RTOL, ATOL = 0.5, 1e-8, 1e-10
TS = jnp.linspace(0.0, 20.0, 201)


def cases():
    dimer = q.dimer_hamiltonian((1.0, 0.0, 0.0), 1.0, (0.0, 0.0, 0.5))
    key = jax.random.PRNGKey(3)
    chain = q.spin_model(
        [0.5] * 3,
        bonds=q.chain_bonds(3),
        field=jax.random.normal(key, (3, 3)),
        exchange=1.0,
        dmi=(0.1, 0.2, 0.3),
    ).matrix()
    psi = q.random_ket(jax.random.fold_in(key, 1), 8)
    basis, _ = jnp.linalg.qr(jax.random.normal(jax.random.fold_in(key, 2), (8, 3)) + 0j)
    a, b = 0.05, (1 - 8 * 0.05) / 3
    two_level = a * jnp.eye(8) + b * basis @ jnp.conj(basis.T)
    werner = q.werner_state("psi-", 0.6)
    return {
        "dimer |ud>": (dimer, q.density_matrix(q.up_down_state()), q.density_matrix(q.pure_state_exact(dimer, q.up_down_state(), TS, KAPPA))),
        "dimer Werner": (dimer, werner, q.two_level_exact(dimer, werner, TS, KAPPA)),
        "3-spin pure": (chain, q.density_matrix(psi), q.density_matrix(q.pure_state_exact(chain, psi, TS, KAPPA))),
        "3-spin a1+bP": (chain, two_level, q.two_level_exact(chain, two_level, TS, KAPPA)),
    }


def main(repeats: int):
    print("| case | packing | best time (ms) | steps | max error vs closed form |")
    print("|---|---|---|---|---|")
    rows = []
    for name, (H, rho0, exact) in cases().items():
        runs = {}
        for packing, complex_state in (("real (default)", False), ("complex", True)):
            fn = jax.jit(
                lambda H, rho0, c=complex_state: q.solve(
                    H, rho0, TS, KAPPA, method="dense", rtol=RTOL, atol=ATOL, complex_state=c
                )
            )
            result = jax.block_until_ready(fn(H, rho0))
            runs[packing] = (fn, result)
        times = {p: [] for p in runs}
        for _ in range(repeats):
            for packing, (fn, _) in runs.items():
                start = time.perf_counter()
                jax.block_until_ready(fn(H, rho0))
                times[packing].append(time.perf_counter() - start)
        for packing, (_, result) in runs.items():
            err = float(np.max(np.abs(np.asarray(result.states) - np.asarray(exact))))
            steps = int(result.stats["num_steps"])
            best = 1e3 * min(times[packing])
            rows.append((name, packing, best, steps, err))
            print(f"| {name} | {packing} | {best:.2f} | {steps} | {err:.1e} |")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    main(parser.parse_args().repeats)
