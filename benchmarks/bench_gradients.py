"""Gradient cost of a dimer sweep: time of jax.grad (and jacfwd) vs the forward solve.

A batch of ``--batch`` dimers (paper eq. 8, B = x̂, J = 1, D = (D_x, 0, D_z) from a grid) evolving a Werner Ψ+
state (p = 0.9) over t ∈ [0, 20] with κ = 0.5, rtol 1e-8; the loss sums the Bell non-locality and T_zz at
21 save times. Timed (median of ``--repeats`` after compilation, all jitted and vmapped over the batch):

- forward:  loss(J, D, κ) per dimer,
- grad:     ∂loss/∂(J, D_x, D_y, D_z, κ) per dimer, reverse mode (``gradient="checkpoint"``, default),
- jacfwd:   the same 5 derivatives by forward mode (``gradient="forward"``),
- baseline: the numpy/scipy q-LLG baseline (benchmarks/baseline.py) for the forward sweep, for scale.

The goal of issue 6 is grad / forward ≤ 4.

    python benchmarks/bench_gradients.py [--batch 64] [--repeats 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import qllg_jax as q
from baseline import solve_numpy
from timing import median_time

T1, RTOL, ATOL = 20.0, 1e-8, 1e-10
TS = jnp.linspace(0.0, T1, 21)
RHO0 = q.werner_state("psi+", 0.9)


def loss(x, gradient="checkpoint"):
    """x = (J, D_x, D_y, D_z, κ) → scalar."""
    model = q.dimer_model(B=(1.0, 0.0, 0.0), J=x[0], D=x[1:4])
    res = q.solve(model, RHO0, TS, x[4], method="dense", rtol=RTOL, atol=ATOL, gradient=gradient, invariant_tol=None)
    return jnp.sum(q.bell_nonlocality(res.states)) + jnp.sum(q.correlation_matrix(res.states)[:, 2, 2])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    side = int(round(np.sqrt(args.batch)))
    dx, dz = np.meshgrid(np.linspace(-0.8, 0.8, side), np.linspace(-0.8, 0.8, args.batch // side))
    xs = jnp.stack([np.ones(dx.size), dx.ravel(), np.zeros(dx.size), dz.ravel(), np.full(dx.size, 0.5)], axis=1)

    forward = jax.jit(jax.vmap(loss))
    grad = jax.jit(jax.vmap(jax.grad(loss)))
    jacfwd = jax.jit(jax.vmap(jax.jacfwd(lambda x: loss(x, "forward"))))
    t_fwd, _ = median_time(lambda: forward(xs), args.repeats)
    t_grad, _ = median_time(lambda: grad(xs), args.repeats)
    t_jacfwd, _ = median_time(lambda: jacfwd(xs), args.repeats)
    g, jf = np.asarray(grad(xs)), np.asarray(jacfwd(xs))
    assert np.all(np.isfinite(g)), "NaN gradient"

    # numpy/scipy baseline, forward only (it has no gradients): a few dimers, extrapolated to the batch.
    n_base = min(4, xs.shape[0])
    start = time.perf_counter()
    for x in np.asarray(xs[:n_base]):
        H = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=x[0], D=x[1:4]))
        solve_numpy(H, np.asarray(RHO0), np.asarray(TS), x[4], rtol=RTOL, atol=ATOL)
    t_base = (time.perf_counter() - start) / n_base * xs.shape[0]

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {jax.devices()[0].device_kind}, "
          f"jax {jax.__version__}; batch {xs.shape[0]} dimers, t ∈ [0, {T1}], rtol {RTOL}")
    print(f"baseline numpy/scipy forward (extrapolated from {n_base}): {t_base:9.4f} s")
    print(f"qllg_jax forward  jit(vmap(loss))                : {t_fwd:9.4f} s   baseline/qllg = {t_base / t_fwd:6.1f}")
    print(f"qllg_jax grad     jit(vmap(grad)) checkpoint     : {t_grad:9.4f} s   grad/forward = {t_grad / t_fwd:5.2f}")
    print(f"qllg_jax jacfwd   jit(vmap(jacfwd)) forward mode : {t_jacfwd:9.4f} s   jacfwd/forward = {t_jacfwd / t_fwd:5.2f}")
    print(f"max |grad − jacfwd| = {np.max(np.abs(g - jf)):.2e}")


if __name__ == "__main__":
    main()
