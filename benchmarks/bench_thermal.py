"""Finite-temperature ensembles: qllg_jax's stochastic Heun vs a vectorised numpy Heun of the same equations.

1. 4096 single-spin classical trajectories (s = 1/2, b = 2 ẑ, α = 0.5, τ = 1), t ∈ [0, 50], dt = 0.04
   (``q.classical_llg(..., temperature=, key=keys)``).
2. 1024 noisy q-LLG dimer trajectories (paper eq. 8, B = (1, 0, 0.5), J = 1, D = 0.3 ẑ; a full-rank mixed ϱ0 as a
   4 × 4 frame), κ = 0.5, τ = 0.5, t ∈ [0, 50], dt = 0.05 (``qllg_jax.thermal.stochastic_frames`` under vmap).

The numpy baseline is the same scheme (Heun in the Lie algebra: Rodrigues rotations / Cayley maps with
``np.linalg.solve``, batched over trajectories, numpy normals), run for fewer steps; the figure of merit is the
time per trajectory-step. JAX times: the second call (after compilation), ``noise="steps"`` and ``"tree"``.

    python benchmarks/bench_thermal.py [--numpy-steps 200]
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
import numpy as np

import qllg_jax as q
from qllg_jax.thermal import stochastic_frames


def _rotate(theta, m):
    angle = np.linalg.norm(theta, axis=-1, keepdims=True)
    safe = np.where(angle > 0, angle, 1.0)
    sinc = np.where(angle > 0, np.sin(safe) / safe, 1.0)
    half = np.where(angle > 0, 2 * (np.sin(safe / 2) / safe) ** 2, 0.5)
    cross = np.cross(theta, m)
    return m + sinc * cross + half * np.cross(theta, cross)


def numpy_spins(n, steps, dt, b, alpha, tau, s, rng):
    """Classical single spin, Heun–Rodrigues, vectorised over n trajectories."""
    m = np.tile([0.0, 0.0, 1.0], (n, 1))
    sigma = np.sqrt(2 * alpha * tau / s)

    def theta(m, kick):
        field = b * dt + kick
        return (-field + alpha * np.cross(m, field)) / (1 + alpha**2)

    for _ in range(steps):
        kick = sigma * np.sqrt(dt) * rng.standard_normal((n, 3))
        t0 = theta(m, kick)
        t1 = theta(_rotate(t0, m), kick)
        m = _rotate(0.5 * (t0 + t1), m)
    return m


def numpy_frames(frames, H, spin_ops, coupling, steps, dt, sigma, rng):
    """Full-rank frames (n, D, D), Heun–Cayley with the lab-frame generator K = U (M ⊙ U†dH U) U†."""
    n, dim = frames.shape[:2]
    eye = np.eye(dim)

    def generator(u, dh):
        inside = coupling * (u.conj().transpose(0, 2, 1) @ dh @ u)
        inside = (inside + inside.conj().transpose(0, 2, 1)) / 2
        return u @ inside @ u.conj().transpose(0, 2, 1)

    def cayley(k, u):
        return np.linalg.solve(eye + 0.5j * k, u - 0.5j * k @ u)

    u = frames
    for _ in range(steps):
        kicks = sigma * np.sqrt(dt) * rng.standard_normal((n, spin_ops.shape[0], 3))
        dh = dt * H - np.einsum("nka,kaij->nij", kicks, spin_ops)
        k0 = generator(u, dh)
        k1 = generator(cayley(k0, u), dh)
        u = cayley(0.5 * (k0 + k1), u)
    return u


def _time(f):
    start = time.perf_counter()
    out = f()
    jax.block_until_ready(out)
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numpy-steps", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()}; jax {jax.__version__} "
          f"on {jax.devices()[0].platform}")
    rng = np.random.default_rng(0)

    # 1. single spins
    n, dt, t1 = 4096, 0.04, 50.0
    model, ts = q.spin_model([0.5], field=[0.0, 0.0, 2.0]), np.array([0.0, t1])
    steps = int(round(t1 / dt))
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    t_np, m_np = _time(lambda: numpy_spins(n, args.numpy_steps, dt, np.array([0, 0, 2.0]), 0.5, 1.0, 0.5, rng))
    per_np = t_np / (n * args.numpy_steps)
    print(f"\n[spins] {n} trajectories x {steps} steps; numpy Heun {args.numpy_steps} steps: {t_np:.2f} s "
          f"({per_np * 1e9:.0f} ns per trajectory-step)")
    for noise in ("steps", "tree"):
        run = lambda: q.classical_llg(model, [[0.0, 0, 1]], ts, 0.5, temperature=1.0, key=keys, dt=dt, noise=noise)  # noqa: E731
        first, _ = _time(run)
        second, m = _time(run)
        per = second / (n * steps)
        mz = np.asarray(m[:, -1, 0, 2])
        print(f"  jax noise={noise}: first call {first:.2f} s, second {second:.2f} s ({per * 1e9:.0f} ns per "
              f"trajectory-step) -> {per_np / per:.1f}x numpy; <m_z> = {mz.mean():.4f} +- {mz.std() / np.sqrt(n):.4f} "
              f"(L(1) = {1 / np.tanh(1) - 1:.4f})")

    # 2. noisy mixed dimers
    n, dt = 1024, 0.05
    steps = int(round(t1 / dt))
    model = q.dimer_model(B=(1.0, 0.0, 0.5), J=1.0, D=(0.0, 0.0, 0.3))
    rho0 = np.asarray(q.random_density_matrix(jax.random.PRNGKey(5), 4))
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    values, vectors = np.linalg.eigh(rho0)
    gap = values[:, None] - values[None, :]
    coupling = np.where(np.abs(gap) <= 1e-12, 0.0, 1 / (1 - 0.5j * gap))
    spin_ops = np.stack([np.asarray(ops) for ops in q.site_spin_operators((0.5, 0.5))])
    frames = np.tile(vectors.astype(complex), (n, 1, 1))
    sigma = np.sqrt(2 * 0.5 * 0.5 / 0.5)
    t_np, _ = _time(lambda: numpy_frames(frames, np.asarray(model.matrix()), spin_ops, coupling, args.numpy_steps, dt,
                                         sigma, rng))
    per_np = t_np / (n * args.numpy_steps)
    print(f"\n[dimer frames] {n} trajectories x {steps} steps; numpy Heun {args.numpy_steps} steps: {t_np:.2f} s "
          f"({per_np * 1e6:.2f} us per trajectory-step)")
    for noise in ("steps", "tree"):
        run = jax.jit(jax.vmap(lambda k: stochastic_frames(model, rho0, ts, 0.5, temperature=0.5, key=k, dt=dt,  # noqa: B023
                                                           noise=noise).frames))
        first, _ = _time(lambda: run(keys))
        second, u = _time(lambda: run(keys))
        per = second / (n * steps)
        gram = np.asarray(u[:, -1].conj().transpose(0, 2, 1) @ u[:, -1]) - np.eye(4)
        print(f"  jax noise={noise}: first call {first:.2f} s, second {second:.2f} s ({per * 1e6:.2f} us per "
              f"trajectory-step) -> {per_np / per:.1f}x numpy; max |U†U - 1| = {np.max(np.abs(gram)):.1e}")


if __name__ == "__main__":
    main()
