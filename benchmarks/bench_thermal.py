"""Finite-temperature ensembles: qllg_jax's stochastic Heun vs vectorised numpy Heun of the same equations.

1. 4096 single-spin classical trajectories (s = 1/2, b = 2 ẑ, α = 0.5, τ = 1), t ∈ [0, 50] (≥ 40 relaxation times:
   equilibrium), dt = 0.04 (``q.classical_llg(..., temperature=, key=keys, noise="steps")``: one ensemble).
2. 1024 noisy q-LLG dimer trajectories (paper eq. 8, B = (1, 0, 0.5), J = 1, D = 0.3 ẑ; a full-rank mixed ϱ0 as a
   4 × 4 frame), κ = 0.5, τ = 0.5, t ∈ [0, 50], dt = 0.05 (``qllg_jax.thermal.stochastic_frames(..., key=keys)``).

Baselines (numpy, float64, batched over trajectories, numpy's PCG64 + ziggurat normals drawn every step):
- spins: the same Heun scheme in so(3) with (a) the same rational rotation as ours (``lie.rational_rotate``) and
  (b) exact Rodrigues rotations (sin/cos); the ratio is taken against the faster of the two.
- dimers: (a) the lab-frame Heun–Cayley (K = U(M⊙U†dH U)U†, ``np.linalg.solve``) and (b) the eigenframe form we
  use (U_{n+1} = U C(½(X0 + V0 X1 V0†)), 7 products + 2 solves); the ratio is against the faster.
numpy runs fewer steps (``--numpy-steps``); the figure of merit is time per trajectory-step. JAX: second call
(compile = first − second). Both CPU time of this process (numpy and XLA:CPU each use one core here; robust to
other load) and wall time are printed. Where the time goes: the noise alone (ours vs numpy's normals).

    python benchmarks/bench_thermal.py [--numpy-steps 200] [--spins 4096] [--dimers 1024] [--two-devices]

``--two-devices``: also time the ensembles with the keys sharded over two host devices (XLA partitions the
trajectory axis; the two halves run on both cores). Wall time is then the figure (CPU time adds both cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import os
import platform
import time

if "--two-devices" in sys.argv:  # before JAX starts: two host devices, the trajectory axis split over both cores
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()

import jax
import jax.numpy as jnp
import numpy as np

import qllg_jax as q
from qllg_jax.thermal import stochastic_frames
from qllg_jax.thermal.noise import StepNoise, key_words


def _rodrigues(theta, m):
    angle = np.linalg.norm(theta, axis=-1, keepdims=True)
    safe = np.where(angle > 0, angle, 1.0)
    sinc = np.where(angle > 0, np.sin(safe) / safe, 1.0)
    half = np.where(angle > 0, 2 * (np.sin(safe / 2) / safe) ** 2, 0.5)
    cross = np.cross(theta, m)
    return m + sinc * cross + half * np.cross(theta, cross)


def _rational(theta, m, doublings=2):
    """The rotation of qllg_jax.thermal.lie.rational_rotate (same formulas)."""
    angle2 = np.sum(theta * theta, axis=-1, keepdims=True)
    quarter = 0.25 ** (doublings + 1)
    inverse = 1 / (1 + angle2 * quarter)
    s, c = inverse * 0.5**doublings, 2 * inverse * quarter
    for _ in range(doublings):
        s, c = 2 * s * (1 - angle2 * c), 2 * s * s
    cross = np.cross(theta, m)
    return m + s * cross + c * np.cross(theta, cross)


def numpy_spins(n, steps, dt, b, alpha, tau, s, rng, rotate=_rational):
    """Classical single spin, stochastic Heun in so(3), vectorised over n trajectories (n, 3)."""
    m = np.tile([0.0, 0.0, 1.0], (n, 1))
    sigma = np.sqrt(2 * alpha * tau / s)

    def theta(m, kick):
        field = b * dt + kick
        return (-field + alpha * np.cross(m, field)) / (1 + alpha**2)

    for _ in range(steps):
        kick = sigma * np.sqrt(dt) * rng.standard_normal((n, 3))
        t0 = theta(m, kick)
        t1 = theta(rotate(t0, m), kick)
        m = rotate(0.5 * (t0 + t1), m)
    return m


def _dagger(u):
    return u.conj().transpose(0, 2, 1)


def numpy_frames(frames, H, spin_ops, coupling, steps, dt, sigma, rng, eigenframe=False):
    """Full-rank frames (n, D, D), Heun–Cayley; lab frame K = U (M ⊙ U†dH U) U† or the eigenframe form."""
    n, dim = frames.shape[:2]
    eye = np.eye(dim)

    def hermitian(x):
        return (x + _dagger(x)) / 2

    def cayley(k, u):
        return np.linalg.solve(eye + 0.5j * k, u - 0.5j * k @ u)

    u = frames
    for _ in range(steps):
        kicks = sigma * np.sqrt(dt) * rng.standard_normal((n, spin_ops.shape[0], 3))
        dh = dt * H - np.einsum("nka,kaij->nij", kicks, spin_ops)
        if eigenframe:
            projected = hermitian(_dagger(u) @ dh @ u)
            x0 = hermitian(coupling * projected)
            v0 = np.linalg.solve(eye + 0.5j * x0, eye - 0.5j * x0)
            x1 = v0 @ hermitian(coupling * hermitian(_dagger(v0) @ projected @ v0)) @ _dagger(v0)
            mean = hermitian(0.5 * (x0 + x1))
            u = u @ np.linalg.solve(eye + 0.5j * mean, eye - 0.5j * mean)
            continue

        def generator(u):
            inside = hermitian(coupling * (_dagger(u) @ dh @ u))
            return u @ inside @ _dagger(u)

        k0 = generator(u)
        k1 = generator(cayley(k0, u))
        u = cayley(0.5 * (k0 + k1), u)
    return u


def _clock(f):
    """(wall s, CPU s of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(f())
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _best(f, repeats=2):
    runs = [_clock(f) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2]


def _noise_alone(n, steps, dt):
    """Per trajectory-step cost of 3 N(0, dt) increments: ours (StepNoise in a scan) vs numpy's normals."""
    source = StepNoise(key_words(jax.random.split(jax.random.PRNGKey(3), n)), (1, 3))

    @jax.jit
    def draw(source):
        def body(acc, j):
            dw, _ = source.increment(None, 0.0, dt, j)
            return acc + dw, None
        return jax.lax.scan(body, jnp.zeros((1, 3, n)), jnp.arange(steps))[0]

    draw(source).block_until_ready()
    wall, cpu, _ = _best(lambda: draw(source))
    rng = np.random.default_rng(0)
    npwall, npcpu, _ = _best(lambda: [rng.standard_normal((n, 3)) for _ in range(steps)])
    return cpu / (n * steps), npcpu / (n * steps), wall / (n * steps), npwall / (n * steps)


def _shard(keys):
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()[:2]), ("trajectories",))
    return jax.device_put(keys, NamedSharding(mesh, PartitionSpec("trajectories")))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numpy-steps", type=int, default=200)
    parser.add_argument("--spins", type=int, default=4096)
    parser.add_argument("--dimers", type=int, default=1024)
    parser.add_argument("--two-devices", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()}; jax {jax.__version__} "
          f"on {jax.devices()[0].platform}")
    rng = np.random.default_rng(0)
    ns = 1e9

    # 1. single spins to equilibrium
    n, dt, t1 = args.spins, 0.04, 50.0
    model, ts = q.spin_model([0.5], field=[0.0, 0.0, 2.0]), np.array([0.0, t1])
    steps = int(round(t1 / dt))
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    base = {}
    for name, rotate in (("rational", _rational), ("Rodrigues", _rodrigues)):
        wall, cpu, m_np = _best(lambda: numpy_spins(n, args.numpy_steps, dt, np.array([0, 0, 2.0]), 0.5, 1.0, 0.5,  # noqa: B023
                                                     rng, rotate))  # noqa: B023
        base[name] = (cpu / (n * args.numpy_steps), wall / (n * args.numpy_steps))
        print(f"\n[spins] numpy Heun ({name} rotation), {args.numpy_steps} steps: {base[name][0] * ns:.0f} ns CPU, "
              f"{base[name][1] * ns:.0f} ns wall per trajectory-step")
    ref = min(base.values())
    run = lambda: q.classical_llg(model, [[0.0, 0, 1]], ts, 0.5, temperature=1.0, key=keys, dt=dt, noise="steps")  # noqa: E731
    first, _, _ = _clock(run)
    wall, cpu, m = _best(run)
    mz = np.asarray(m[:, -1, 0, 2])
    print(f"  jax ensemble ({n} x {steps} steps): compile {first - wall:.2f} s; {cpu / (n * steps) * ns:.1f} ns CPU "
          f"({ref[0] / (cpu / (n * steps)):.1f}x numpy), {wall / (n * steps) * ns:.1f} ns wall "
          f"({ref[1] / (wall / (n * steps)):.1f}x); <m_z> = {mz.mean():.4f} +- {mz.std() / np.sqrt(n):.4f} "
          f"(L(1) = {1 / np.tanh(1) - 1:.4f}); max ||m| - 1| = {np.max(np.abs(np.linalg.norm(m, axis=-1) - 1)):.1e}")
    if args.two_devices:
        sharded = _shard(keys)
        run2 = lambda: q.classical_llg(model, [[0.0, 0, 1]], ts, 0.5, temperature=1.0, key=sharded, dt=dt, noise="steps")  # noqa: E731
        _clock(run2)
        wall2, _, m2 = _best(run2)
        print(f"  two devices: {wall2 / (n * steps) * ns:.1f} ns wall ({ref[1] / (wall2 / (n * steps)):.1f}x numpy wall, "
              f"{wall / wall2:.2f}x one device); max |difference| {float(jnp.max(jnp.abs(m2 - m))):.1e}")
    ours, theirs, _, _ = _noise_alone(n, 500, dt)
    print(f"  noise alone: ours {ours * ns:.1f} ns vs numpy normals {theirs * ns:.1f} ns CPU per trajectory-step "
          f"({theirs / ours:.1f}x); share of our step: {ours / (cpu / (n * steps)):.0%}")

    # 2. noisy mixed dimers
    n, dt = args.dimers, 0.05
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
    base = {}
    for name, eigen in (("lab frame", False), ("eigenframe", True)):
        numpy_steps = max(args.numpy_steps // 2, 1)
        wall, cpu, _ = _best(lambda: numpy_frames(frames, np.asarray(model.matrix()), spin_ops, coupling,  # noqa: B023
                                                  numpy_steps, dt, sigma, rng, eigen))  # noqa: B023
        base[name] = (cpu / (n * numpy_steps), wall / (n * numpy_steps))
        print(f"\n[dimer frames] numpy Heun-Cayley ({name}), {numpy_steps} steps: {base[name][0] * 1e6:.2f} us CPU, "
              f"{base[name][1] * 1e6:.2f} us wall per trajectory-step")
    ref = min(base.values())
    run = lambda: stochastic_frames(model, rho0, ts, 0.5, temperature=0.5, key=keys, dt=dt, noise="steps").frames  # noqa: E731
    first, _, _ = _clock(run)
    wall, cpu, u = _best(run)
    gram = np.asarray(jnp.conj(jnp.swapaxes(u[:, -1], -1, -2)) @ u[:, -1]) - np.eye(4)
    print(f"  jax ensemble ({n} x {steps} steps): compile {first - wall:.2f} s; {cpu / (n * steps) * 1e6:.2f} us CPU "
          f"({ref[0] / (cpu / (n * steps)):.1f}x numpy), {wall / (n * steps) * 1e6:.2f} us wall "
          f"({ref[1] / (wall / (n * steps)):.1f}x); max |U†U - 1| = {np.max(np.abs(gram)):.1e}")
    if args.two_devices:
        sharded = _shard(keys)
        run2 = lambda: stochastic_frames(model, rho0, ts, 0.5, temperature=0.5, key=sharded, dt=dt, noise="steps").frames  # noqa: E731
        _clock(run2)
        wall2, _, u2 = _best(run2)
        print(f"  two devices: {wall2 / (n * steps) * 1e6:.2f} us wall ({ref[1] / (wall2 / (n * steps)):.1f}x numpy wall, "
              f"{wall / wall2:.2f}x one device); max |difference| {float(jnp.max(jnp.abs(u2 - u))):.1e}")
    print(f"\nload at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
