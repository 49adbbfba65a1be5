"""Gradient cost of a dimer sweep: time of jax.grad (and jacfwd) vs the forward solve.

A batch of ``--batch`` dimers (paper eq. 8, B = x̂, J = 1, D = (D_x, 0, D_z) from a grid) evolving a Werner Ψ+
state (p = 0.9) over t ∈ [0, 20] with κ = 0.5, rtol 1e-8 (default solver: Dopri8); the loss sums the Bell
non-locality and T_zz at 21 save times. Timed (median of ``--repeats`` after compilation, all jitted and vmapped
over the batch), for each ``--methods`` (``dense``: the integrator; ``auto``: what ``solve`` picks, here the
two-level closed form; ``frame``):

- forward:  loss(J, D, κ) per dimer,
- grad:     ∂loss/∂(J, D_x, D_y, D_z, κ) per dimer, reverse mode (``gradient="checkpoint"``, default),
- jacfwd:   the same 5 derivatives by forward mode (``gradient="forward"``),
- backsolve: reverse mode by the continuous adjoint (``gradient="backsolve"``),
- steps:    mean steps per dimer of the forward solve and of the solve derivatives flow through (its step is
            capped at θ*/W, :func:`qllg_jax._integrate.derivative_step_cap`),
- baseline: the numpy/scipy q-LLG baseline (benchmarks/baseline.py) for the forward sweep, for scale.

Issue 14's goal: grad / forward ≤ 3.

``--accuracy`` instead measures what justifies ``STEP_CAP_SAFETY`` (the table in
:func:`qllg_jax._integrate.derivative_step_cap`): max relative error of ∂/∂(B_x, D_z, κ) of Σ_t w_t Re Tr(ϱ(t)A)
(t = 1, 2) at four stationary dimer states (thermal, Werner Ψ+ under σ1·σ2, an eigenstate, a passive state; κ = 0.5)
vs 4-point central differences of the numpy/scipy baseline (rtol 1e-13), for each solver × rtol × safety factor.

    python benchmarks/bench_gradients.py [--batch 16] [--repeats 5] [--methods dense auto frame]
    python benchmarks/bench_gradients.py --accuracy [--safety 1 2 inf]
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
import qllg_jax._integrate as integrate_module
from baseline import solve_numpy
from timing import median_time

T1, RTOL, ATOL = 20.0, 1e-8, 1e-10
TS = jnp.linspace(0.0, T1, 21)
RHO0 = q.werner_state("psi+", 0.9)


def loss_and_steps(x, method="dense", gradient="checkpoint"):
    """x = (J, D_x, D_y, D_z, κ) → (scalar loss, steps of the solve)."""
    model = q.dimer_model(B=(1.0, 0.0, 0.0), J=x[0], D=x[1:4])
    res = q.solve(model, RHO0, TS, x[4], method=method, rtol=RTOL, atol=ATOL, gradient=gradient, invariant_tol=None)
    loss = jnp.sum(q.bell_nonlocality(res.states)) + jnp.sum(q.correlation_matrix(res.states)[:, 2, 2])
    return loss, res.stats["num_steps"]


def time_method(method, xs, repeats):
    """(forward, grad, jacfwd, backsolve-grad times in s; forward and derivative steps per dimer;
    max |grad − jacfwd|, max |grad − backsolve grad|)."""
    forward = jax.jit(jax.vmap(lambda x: loss_and_steps(x, method)[0]))
    grad = jax.jit(jax.vmap(jax.grad(lambda x: loss_and_steps(x, method)[0])))
    jacfwd = jax.jit(jax.vmap(jax.jacfwd(lambda x: loss_and_steps(x, method, "forward")[0])))
    backsolve = jax.jit(jax.vmap(jax.grad(lambda x: loss_and_steps(x, method, "backsolve")[0])))
    t_fwd, _ = median_time(lambda: forward(xs), repeats)
    t_grad, g = median_time(lambda: grad(xs), repeats)
    t_jacfwd, jf = median_time(lambda: jacfwd(xs), repeats)
    t_back, gb = median_time(lambda: backsolve(xs), repeats)
    assert np.all(np.isfinite(np.asarray(g))), "NaN gradient"
    steps = np.asarray(jax.jit(jax.vmap(lambda x: loss_and_steps(x, method)[1]))(xs))
    derivative_steps = np.asarray(jax.jit(jax.vmap(
        lambda x: jax.value_and_grad(lambda y: loss_and_steps(y, method), has_aux=True)(x)[0][1]))(xs))
    g = np.asarray(g)
    return (t_fwd, t_grad, t_jacfwd, t_back, steps.mean(), derivative_steps.mean(), float(np.max(np.abs(g - jf))),
            float(np.max(np.abs(g - gb))))


ACCURACY_TS = np.array([0.0, 1.0, 2.0])
ACCURACY_WEIGHTS = np.array([0.0, 0.7, 1.0])


def stationary_cases():
    """name → (H(x) for x = (B_x, D_z), ϱ0): each ϱ0 commutes with H(0)."""
    def family(b, coupling, d):
        return lambda x: q.dimer_hamiltonian(B=jnp.stack([b[0] + x[0], b[1], b[2]]), J=coupling,
                                             D=jnp.stack([d[0], d[1], d[2] + x[1]]))
    distinct, su2, generic = family((0, 0, 0.3), 1.0, (0, 0, 0)), family((0, 0, 0), 1.0, (0, 0, 0)), \
        family((0.2, 0, 0.5), 0.7, (0.1, 0.2, 0.3))
    energies, vectors = np.linalg.eigh(np.asarray(distinct(np.zeros(2))))
    weights = np.exp(-0.7 * (energies - energies[0]))
    _, generic_vectors = np.linalg.eigh(np.asarray(generic(np.zeros(2))))
    return {
        "thermal": (distinct, (vectors * weights / weights.sum()) @ vectors.conj().T),
        "werner": (su2, np.asarray(q.werner_state("psi+", 0.8))),
        "eigenstate": (distinct, np.outer(vectors[:, 2], vectors[:, 2].conj())),
        "passive": (generic, (generic_vectors * np.array([0.5, 0.3, 0.15, 0.05])) @ generic_vectors.conj().T),
    }


def accuracy(safety_factors):
    """Print max relative gradient error per solver × rtol × STEP_CAP_SAFETY (see the module docstring)."""
    cases = stationary_cases()
    observable = np.asarray(q.random_hamiltonian(jax.random.PRNGKey(11), 4))
    x0, h = np.array([0.0, 0.0, 0.5]), 2.5e-4  # stencil error ~1e-10 relative (1e-7 at h = 1e-3)

    def numpy_loss(x, case):
        H, rho0 = cases[case]
        states = solve_numpy(np.asarray(H(x[:2])), rho0, ACCURACY_TS, x[2], rtol=1e-13, atol=1e-15)
        return np.real(np.einsum("tij,ji->t", states, observable)) @ ACCURACY_WEIGHTS

    stencil = ((-2, 1), (-1, -8), (1, 8), (2, -1))
    reference = np.array([[sum(w * numpy_loss(x0 + s * h * np.eye(3)[p], case) for s, w in stencil) / (12 * h)
                           for p in range(3)] for case in cases])
    rho0s = np.stack([rho0 for _, rho0 in cases.values()])
    print(f"max relative error over {', '.join(cases)} (t ≤ 2, κ = 0.5) vs numpy/scipy central differences")
    print("solver   rtol    " + "".join(f"s = {s:<8g}" for s in safety_factors) + "  (steps per trajectory at s = 1)")
    compilation = 0
    for solver in ("tsit5", "dopri5", "dopri8"):
        for rtol in (1e-6, 1e-8, 1e-10):
            errors, steps = [], None
            for safety in safety_factors:
                integrate_module.STEP_CAP_SAFETY = safety
                compilation += 1  # a new, never-binding max_step forces a new trace that reads STEP_CAP_SAFETY

                def losses(x):
                    H = jnp.stack([H_of(x[:2]) for H_of, _ in cases.values()])
                    res = q.solve(H, rho0s, jnp.asarray(ACCURACY_TS), x[2], solver=solver, rtol=rtol, atol=rtol / 100,
                                  observables={"a": observable}, save_states=False, batching="vmap",
                                  max_step=1e9 + compilation, invariant_tol=None)
                    return res.observables["a"] @ jnp.asarray(ACCURACY_WEIGHTS), res.stats["num_steps"]

                jacobian, n_steps = jax.jacrev(losses, has_aux=True)(jnp.asarray(x0))
                errors.append(np.max(np.max(np.abs(np.asarray(jacobian) - reference), axis=1)
                                     / np.max(np.abs(reference), axis=1)))
                steps = np.asarray(n_steps) if safety == 1 else steps
            print(f"{solver:8s} {rtol:6.0e}  " + "".join(f"{e:<12.1e}" for e in errors) + f"  {steps}")
    integrate_module.STEP_CAP_SAFETY = 1.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=["dense", "auto"], choices=["dense", "auto", "frame"])
    parser.add_argument("--accuracy", action="store_true", help="the STEP_CAP_SAFETY study instead of timings")
    parser.add_argument("--safety", nargs="+", type=float, default=[1.0, 2.0, float("inf")])
    args = parser.parse_args()
    if args.accuracy:
        accuracy(args.safety)
        return
    side = int(round(np.sqrt(args.batch)))
    dx, dz = np.meshgrid(np.linspace(-0.8, 0.8, side), np.linspace(-0.8, 0.8, args.batch // side))
    xs = jnp.stack([np.ones(dx.size), dx.ravel(), np.zeros(dx.size), dz.ravel(), np.full(dx.size, 0.5)], axis=1)

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {jax.devices()[0].device_kind}, "
          f"jax {jax.__version__}; batch {xs.shape[0]} dimers, t ∈ [0, {T1}], rtol {RTOL}; "
          f"load average {os.getloadavg()[0]:.2f} at start")
    rows = {method: time_method(method, xs, args.repeats) for method in args.methods}

    # numpy/scipy baseline, forward only (it has no gradients): a few dimers, extrapolated to the batch.
    n_base = min(4, xs.shape[0])
    start = time.perf_counter()
    for x in np.asarray(xs[:n_base]):
        H = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=x[0], D=x[1:4]))
        solve_numpy(H, np.asarray(RHO0), np.asarray(TS), x[4], rtol=RTOL, atol=ATOL)
    t_base = (time.perf_counter() - start) / n_base * xs.shape[0]
    print(f"baseline numpy/scipy forward (extrapolated from {n_base}): {t_base:9.4f} s")
    for method, (t_fwd, t_grad, t_jacfwd, t_back, steps, derivative_steps, diff, diff_back) in rows.items():
        print(f"method={method!r}: forward {t_fwd:8.4f} s (baseline/qllg {t_base / t_fwd:6.1f}), grad {t_grad:8.4f} s, "
              f"jacfwd {t_jacfwd:8.4f} s, backsolve grad {t_back:8.4f} s\n    grad/forward = {t_grad / t_fwd:5.2f}, "
              f"jacfwd/forward = {t_jacfwd / t_fwd:5.2f}, backsolve/forward = {t_back / t_fwd:5.2f} | steps/dimer: "
              f"forward {steps:6.1f}, differentiated {derivative_steps:6.1f} | max |grad − jacfwd| = {diff:.1e}, "
              f"max |grad − backsolve| = {diff_back:.1e}")
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
