"""Compile time of a first solve with and without qllg_jax's fix for diffrax's t1 − 100 ULP chain
(qllg_jax/_diffrax_compile.py), each in a fresh process, no persistent cache, best of 3: forward solves, a reverse-mode
gradient (checkpoint adjoint) and a forward-mode Jacobian.

    python benchmarks/bench_compile.py            # XLA's default optimisation (what users get)
    QLLG_BENCH_XLA_FLAGS="--xla_backend_optimization_level=0" python benchmarks/bench_compile.py

Prints seconds per case (trace + lower + XLA compile + run, from jax.monitoring) and the ratio unpatched/patched.
"""

import json
import os
import subprocess
import sys

CASE = r"""
import collections, json, sys, time
import jax, jax.monitoring, jax.numpy as jnp, numpy as np
import qllg_jax as q
events = collections.defaultdict(float)
jax.monitoring.register_event_duration_secs_listener(lambda e, d, **k: events.__setitem__(e, events[e] + d))
H = q.dimer_hamiltonian(B=(1.0, 0, 0), J=1.0, D=(0.1, 0.2, 0.3))
rho0 = 0.8 * np.asarray(q.density_matrix(q.up_down_state())) + 0.05 * np.eye(4)
psi0 = np.asarray(q.up_down_state())
ts = np.linspace(0.0, 5.0, 11)
case = sys.argv[1]
start = time.perf_counter()
if case == "classical":
    out = q.classical_llg(q.dimer_model(B=(1.0, 0, 0), J=1.0), np.array([[0.0, 0, 1], [1.0, 0, 0]]), ts, 0.5)
elif case.endswith(("-grad", "-jacfwd")):  # d energy(t) / d kappa: reverse (checkpoint) or forward mode
    method, mode = case.split("-")
    gradient = "checkpoint" if mode == "grad" else "forward"
    energy = lambda kappa: q.solve(H, psi0 if method == "ket" else rho0, ts, kappa, method=method,  # noqa: E731
                                   gradient=gradient).invariants["energy"]
    out = jax.jit(jax.grad(lambda k: energy(k).sum()) if mode == "grad" else jax.jacfwd(energy))(0.5)
else:
    out = q.solve(H, psi0 if case == "ket" else rho0, ts, 0.5, method=case).states
jax.block_until_ready(out)
compile_s = sum(v for k, v in events.items() if "compile" in k)
print(json.dumps({"total": time.perf_counter() - start, "compile": compile_s}))
"""


def run(case: str, patched: bool) -> dict:
    env = {**os.environ, "QLLG_DIFFRAX_PATCH": "1" if patched else "0", "QLLG_COMPILATION_CACHE": "off"}
    flags = os.environ.get("QLLG_BENCH_XLA_FLAGS")
    if flags:
        env["XLA_FLAGS"] = flags
    out = subprocess.run([sys.executable, "-c", CASE, case], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    print(f"XLA_FLAGS={os.environ.get('QLLG_BENCH_XLA_FLAGS', '(default)')}")
    for case in sys.argv[1:] or ("frame", "dense", "ket", "classical", "dense-grad", "ket-jacfwd"):
        best = {p: min(run(case, p)["compile"] for _ in range(3)) for p in (False, True)}
        print(f"{case:9s} unpatched {best[False]:.2f} s  patched {best[True]:.2f} s  ratio {best[False] / best[True]:.2f}")


if __name__ == "__main__":
    main()
