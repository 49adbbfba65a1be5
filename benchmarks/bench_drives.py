"""Driven dynamics (issue 21 Targets): batches of driven mixed dimers and gradients over pwc amplitudes.

Every ratio is measured in one run against a named baseline:

- ``batch``: 64 generic full-rank mixed dimers (thermal ϱ0 of another Hamiltonian: no closed form) under
  H(t) = H0 + a·exp(−(t − 5)²/(2·1.5²))·σ_x⊗𝟙, a Gaussian field pulse whose amplitude a ∈ [0, 2] differs per dimer;
  t ∈ [0, 10], κ = 0.5, rtol 1e-8 / atol 1e-10, 101 saves of ⟨σ_z⊗𝟙⟩ and ⟨𝟙⊗σ_x⟩. Baseline: a Python loop of
  the numpy/scipy q-LLG of ``benchmarks/baseline.py`` (numpy kron solve per right-hand side, H(t) evaluated in
  numpy, scipy DOP853 at the same tolerances), timed on ``--baseline-points`` dimers and scaled to 64. qllg_jax
  rows: ``jax.jit(jax.vmap(solve))`` over the amplitude (``method="auto"`` → frame, and dense), and ONE
  ``solve`` whose pulse amplitude has a leading axis (64,) (batched drive: one ODE with shared steps) where the
  installed qllg_jax accepts it; each with its max deviation from the baseline.
- ``gradient``: reverse-mode gradient of ⟨σ_z⊗𝟙⟩(10) w.r.t. 64 pwc amplitudes (segments of 10/64 on [0, 10]) of
  H(t) = H0 + Σ_k v_k·σ_x⊗𝟙 on the dimer, from the same mixed ϱ0, rtol 1e-8 / atol 1e-10, Tsit5. At κ = 0:
  ``jax.jit(jax.grad)`` of qllg_jax (``equation="von_neumann"`` and ``"qllg"`` with κ = 0) against dynamiqs
  ``mesolve(H0 + dq.pwc(times, v, X), [], ϱ0, ts)`` (Tsit5, same tolerances), forward and gradient, same run.
  At κ = 0.5: gradient / forward of qllg_jax. Also the steps of the forward solve and of the capped solve the
  derivative differentiates (``Result.stats``).

    python benchmarks/bench_drives.py [--only batch gradient] [--repeats 5] [--baseline-points 8]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import qllg_jax as q
from baseline import qllg_rhs_numpy
from timing import median_time

RTOL, ATOL, KAPPA, T1 = 1e-8, 1e-10, 0.5, 10.0
TS = np.linspace(0.0, T1, 101)
H0 = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.0, D=(0.0, 0.0, 0.3)))
X1 = np.asarray(q.embed(q.pauli_matrices()[0], 0, (2, 2)))
SZ1 = np.asarray(q.embed(q.pauli_matrices()[2], 0, (2, 2)))
SX2 = np.asarray(q.embed(q.pauli_matrices()[0], 1, (2, 2)))
OBSERVABLES = {"sz1": SZ1, "sx2": SX2}
THERMAL = np.asarray(q.thermal_state(q.dimer_hamiltonian(B=(0.2, 0.1, 1.0), J=0.4), 0.7))
AMPLITUDES = np.linspace(0.0, 2.0, 64)
CENTRE, WIDTH = 5.0, 1.5
K_PWC = 64
PWC_TIMES = np.linspace(0.0, T1, K_PWC + 1)
PWC_VALUES = 0.5 * np.sin(np.linspace(0.0, 3 * np.pi, K_PWC))


def driven_numpy(H_of_t, rho0, ts, kappa, rtol=RTOL, atol=ATOL, max_step=np.inf) -> np.ndarray:
    """ϱ(t) (T, d, d): the baseline's numpy q-LLG right-hand side with H(t), scipy DOP853."""
    rho0, ts = np.asarray(rho0, complex), np.asarray(ts, float)
    d = rho0.shape[0]

    def rhs(t, y):
        return qllg_rhs_numpy(y.reshape(d, d), H_of_t(t), kappa).reshape(-1)

    sol = solve_ivp(rhs, (ts[0], ts[-1]), rho0.reshape(-1), method="DOP853", t_eval=ts, rtol=rtol, atol=atol,
                    max_step=max_step)
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y.T.reshape(len(ts), d, d)


def gaussian_H_numpy(a):
    return lambda t: H0 + a * np.exp(-((t - CENTRE) ** 2) / (2 * WIDTH**2)) * X1


def expect(states, op):
    return np.einsum("tij,ji->t", states, op).real


def row(label, seconds, extra=""):
    print(f"  {label:<62s} {seconds * 1e3:10.1f} ms  {extra}")
    return {"label": label, "seconds": seconds, "extra": extra}


def bench_batch(repeats: int, baseline_points: int) -> list[dict]:
    print(f"\n[batch] 64 driven mixed dimers, Gaussian pulse amplitude in [0, 2], t in [0, {T1:g}], kappa {KAPPA}, "
          f"rtol {RTOL:g}, {len(TS)} saves")
    rows = []
    picks = np.linspace(0, len(AMPLITUDES) - 1, baseline_points).astype(int)
    start = time.perf_counter()
    reference = {}
    for i in picks:
        states = driven_numpy(gaussian_H_numpy(AMPLITUDES[i]), THERMAL, TS, KAPPA)
        reference[i] = np.stack([expect(states, SZ1), expect(states, SX2)])
    per_point = (time.perf_counter() - start) / len(picks)
    base = per_point * len(AMPLITUDES)
    rows.append(row(f"numpy/scipy loop ({len(picks)} dimers) x 64", base, f"{per_point * 1e3:.1f} ms/dimer"))

    def single(a, method):
        H = H0 + q.pulses.gaussian(a, CENTRE, WIDTH) * X1
        r = q.solve(H, THERMAL, TS, KAPPA, method=method, rtol=RTOL, atol=ATOL, observables=OBSERVABLES,
                    save_states=False, invariant_tol=None)
        return jnp.stack([r.observables["sz1"], r.observables["sx2"]]), r.stats["num_steps"]

    def deviation(obs):
        return max(float(np.max(np.abs(np.asarray(obs)[i] - reference[i]))) for i in picks)

    amps = jnp.asarray(AMPLITUDES)
    for method in ("auto", "dense"):
        fn = jax.jit(jax.vmap(lambda a, m=method: single(a, m)))
        compile_start = time.perf_counter()
        jax.block_until_ready(fn(amps))
        first = time.perf_counter() - compile_start
        seconds, (obs, steps) = median_time(lambda: fn(amps), repeats)
        rows.append(row(f"jax.jit(jax.vmap(solve)) method={method}", seconds,
                        f"ratio {base / seconds:.1f}x, first call {first:.1f} s, steps/dimer mean "
                        f"{float(np.mean(steps)):.0f} max {int(np.max(steps))}, max dev {deviation(obs):.1e}"))

    for method in ("auto", "dense"):
        H = H0 + q.pulses.gaussian(amps, CENTRE, WIDTH) * X1  # one drive with a (64,) batch axis
        run = lambda m=method: q.solve(H, THERMAL, TS, KAPPA, method=m, rtol=RTOL, atol=ATOL,  # noqa: E731
                                       observables=OBSERVABLES, save_states=False, invariant_tol=None)
        try:
            compile_start = time.perf_counter()
            jax.block_until_ready(run().observables)
        except (ValueError, TypeError) as error:
            print(f"  batched solve (one ODE, 64 drives) method={method}: not available here: {str(error)[:150]}")
            continue
        first = time.perf_counter() - compile_start
        seconds, r = median_time(lambda: run().observables, repeats)
        obs = np.stack([np.asarray(r["sz1"]), np.asarray(r["sx2"])], axis=1)
        steps = run().stats["num_steps"]
        rows.append(row(f"solve(batched drive, shared steps) method={method}", seconds,
                        f"ratio {base / seconds:.1f}x, first call {first:.1f} s, steps {np.max(np.asarray(steps))}, "
                        f"max dev {deviation(obs):.1e}"))
    return rows


def capped_forward(kappa, equation, method, repeats):
    """(steps, median time) of the integration reverse mode differentiates, run forward only: the solve with the
    step capped at θ*/W (``qllg_jax._integrate.derivative_step_cap``, W the spectral-width bound of H(t) over
    [0, T]). gradient time / this time = the cost of the reverse pass itself."""
    from qllg_jax._integrate import derivative_step_cap
    from qllg_jax._options import SolveOptions

    H = H0 + q.pwc(PWC_TIMES, jnp.asarray(PWC_VALUES), X1)
    width = H.operator(True).spectral_width(0.0, T1)
    cap = float(derivative_step_cap(width, SolveOptions.read(rtol=RTOL, atol=ATOL, solver="tsit5")))

    @jax.jit
    def run(v):
        r = q.solve(H0 + q.pwc(PWC_TIMES, v, X1), THERMAL, np.array([0.0, T1]), kappa, equation=equation,
                    method=method, rtol=RTOL, atol=ATOL, solver="tsit5", max_step=cap, save_states=False,
                    observables={"sz1": SZ1}, invariant_tol=None)
        return r.observables["sz1"][-1], r.stats["num_steps"]

    seconds, (_, steps) = median_time(lambda: run(jnp.asarray(PWC_VALUES)), repeats)
    return int(steps), seconds


def bench_gradient(repeats: int, cases=None) -> list[dict]:
    print(f"\n[gradient] d<sz1>(10)/d(64 pwc amplitudes), dimer, mixed rho0, t in [0, {T1:g}], rtol {RTOL:g}, Tsit5")
    rows = []
    ts = np.array([0.0, T1])
    values = jnp.asarray(PWC_VALUES)

    def ours(kappa, equation, method):
        def loss(v):
            H = H0 + q.pwc(PWC_TIMES, v, X1)
            r = q.solve(H, THERMAL, ts, kappa, equation=equation, method=method, rtol=RTOL, atol=ATOL,
                        solver="tsit5", observables={"sz1": SZ1}, save_states=False, invariant_tol=None)
            return r.observables["sz1"][-1], r.stats["num_steps"]
        return loss

    results = {}
    for label, kappa, equation, method in (("qllg_jax von_neumann dense", 0.0, "von_neumann", "dense"),
                                           ("qllg_jax qllg kappa=0 auto", 0.0, "qllg", "auto"),
                                           ("qllg_jax qllg kappa=0.5 auto", KAPPA, "qllg", "auto"),
                                           ("qllg_jax qllg kappa=0.5 dense", KAPPA, "qllg", "dense")):
        if cases is not None and not any(c in label for c in cases):
            continue
        loss = ours(kappa, equation, method)
        forward = jax.jit(loss)
        grad = jax.jit(jax.grad(lambda v, f=loss: f(v)[0]))
        t0 = time.perf_counter()
        jax.block_until_ready(forward(values))
        c_fwd = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(grad(values))
        c_grad = time.perf_counter() - t0
        s_fwd, (value, steps) = median_time(lambda: forward(values), repeats)
        s_grad, g = median_time(lambda: grad(values), repeats)
        results[label] = (s_fwd, s_grad, np.asarray(g), float(value))
        capped_steps, s_capped = capped_forward(kappa, equation, method, repeats)
        rows.append(row(f"{label}: forward", s_fwd, f"{int(steps)} steps, first call {c_fwd:.1f} s"))
        rows.append(row(f"{label}: forward capped at the derivative's step", s_capped,
                        f"{capped_steps} steps; gradient / capped forward {s_grad / s_capped:.1f}"))
        rows.append(row(f"{label}: gradient", s_grad, f"grad/forward {s_grad / s_fwd:.1f}, first call {c_grad:.1f} s"))

    try:
        import dynamiqs as dq
    except ImportError:
        print("  dynamiqs not installed: skipped")
        return rows
    method = dq.method.Tsit5(rtol=RTOL, atol=ATOL)
    Hq, rho_q, sz1 = dq.asqarray(H0), dq.asqarray(THERMAL), dq.asqarray(SZ1)

    def dyn_loss(v):
        H = Hq + dq.pwc(PWC_TIMES, v, dq.asqarray(X1))
        r = dq.mesolve(H, [], rho_q, ts, exp_ops=[sz1], method=method, progress_meter=False)
        return jnp.real(r.expects[0, -1])

    forward = jax.jit(dyn_loss)
    grad = jax.jit(jax.grad(dyn_loss))
    s_fwd, value = median_time(lambda: forward(values), repeats)
    s_grad, g = median_time(lambda: grad(values), repeats)
    rows.append(row("dynamiqs mesolve dq.pwc: forward", s_fwd))
    rows.append(row("dynamiqs mesolve dq.pwc: gradient", s_grad, f"grad/forward {s_grad / s_fwd:.1f}"))
    for label in ("qllg_jax von_neumann dense", "qllg_jax qllg kappa=0 auto"):
        if label not in results:
            continue
        f, gr, gq, vq = results[label]
        print(f"  {label}: gradient time ratio qllg_jax/dynamiqs {gr / s_grad:.2f} (forward {f / s_fwd:.2f}); "
              f"max |grad - dynamiqs grad| {np.max(np.abs(gq - np.asarray(g))):.1e}, value dev {abs(vq - float(value)):.1e}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=["batch", "gradient"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-points", type=int, default=8)
    parser.add_argument("--gradient-cases", nargs="*", default=None,
                        help="substrings of the qllg_jax gradient rows to run (default all), e.g. 'kappa=0 auto'")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    print(f"qllg_jax {q.__version__}, jax {jax.__version__}, {platform.machine()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}")
    rows = []
    if "batch" in args.only:
        rows += bench_batch(args.repeats, args.baseline_points)
    if "gradient" in args.only:
        rows += bench_gradient(args.repeats, args.gradient_cases)
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
