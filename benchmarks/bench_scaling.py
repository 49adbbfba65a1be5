"""N-spin scaling of the methods: dense and frame (full-rank mixed), frame of rank 4, ket (pure): time and memory vs N.

System: open spin-1/2 chain, Heisenberg J = 1 + DMI D = (0.1, 0.2, 0.3) + field b = (0.2, 0, 0.1), κ = 0.1,
t ∈ [0, 10], 11 saved times. Initial states: pure — a spin-spiral product state (coherent states);
rank 4 — ϱ = Σ_k w_k |u_k⟩⟨u_k| with w = (0.4, 0.3, 0.2, 0.1) and u_k four orthonormal spiral product
states' Gram–Schmidt (passed as a LowRankState: never a D×D matrix); dense and frame (full rank) — a random
full-rank ϱ, integrated by the dense linear-solve method and by the frame method (the default for it).
Paths keep their earlier names: "pure" runs method "ket", "low_rank" method "frame" with a rank-4 state.

Each (path, N) runs in a fresh subprocess (so peak RSS = resource.getrusage ru_maxrss of that run) with a
wall-clock limit; the reported time includes JIT compilation (seconds; it is < 3 s here). Results go to
benchmarks/results/scaling.json and a plot benchmarks/results/scaling.png.

    python benchmarks/bench_scaling.py [--rtol 1e-6] [--limit 200] [--nmax 20] [--paths pure low_rank] [--ns 12 20] [--merge]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import json
import os
import resource
import subprocess
import time

RESULTS = Path(__file__).resolve().parent / "results"
KAPPA, T1 = 0.1, 10.0
WEIGHTS = (0.4, 0.3, 0.2, 0.1)
PATHS = ("dense", "frame", "low_rank", "pure")


def spiral(n, offset=0.0):
    import numpy as np

    angles = 0.7 * np.arange(n) + offset
    return np.stack([np.cos(angles), np.sin(angles), 0.4 * np.ones(n)], axis=1)


def run_one(path: str, n: int, rtol: float) -> dict:
    import jax
    import jax.numpy as jnp

    import qllg_jax as q

    model = q.chain_model(n, exchange=1.0, dmi=(0.1, 0.2, 0.3), field=(0.2, 0.0, 0.1))
    ts = jnp.linspace(0.0, T1, 11)
    if path == "pure":
        rho0, method = q.coherent_product_state([0.5] * n, spiral(n)), "pure"
    elif path == "low_rank":
        columns = jnp.stack([q.coherent_product_state([0.5] * n, spiral(n, k)) for k in range(4)], axis=1)
        frame, _ = jnp.linalg.qr(columns)
        rho0, method = q.LowRankState(frame, jnp.asarray(WEIGHTS)), "low_rank"
    else:
        rho0, method = q.random_density_matrix(jax.random.PRNGKey(n), model.dim), path  # "dense" or "frame"
    def run():
        start = time.perf_counter()
        out = q.solve(model, rho0, ts, KAPPA, method=method, rtol=rtol, atol=rtol * 1e-2, save_states=False, invariant_tol=None)
        jax.block_until_ready(out.invariants)
        return out, time.perf_counter() - start

    result, seconds = run()
    warm = run()[1] if n <= 12 else None  # second call: without compilation (skipped for big N: doubles the cost)
    diag = result.diagnostics().as_dict()
    return {
        "path": path,
        "N": n,
        "D": model.dim,
        "seconds": seconds,
        "warm_seconds": warm,
        "steps": int(result.stats["num_steps"]),
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_energy": float(result.invariants["energy"][-1]),
        "trace_error": diag["trace_error"],
        "spectrum_drift": diag["spectrum_drift"],
    }


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for name in PATHS:
        sel = [r for r in rows if r["path"] == name and "seconds" in r]
        if sel:
            ax_t.semilogy([r["N"] for r in sel], [r["seconds"] for r in sel], "o-", label=name)
            ax_m.semilogy([r["N"] for r in sel], [r["peak_rss_MiB"] for r in sel], "o-", label=name)
    ax_t.axhline(60, color="gray", ls="--", lw=0.8, label="60 s target")
    ax_t.set(xlabel="spins N", ylabel="wall time incl. compile (s)", title="q-LLG chain, t ∈ [0, 10]")
    ax_m.set(xlabel="spins N", ylabel="peak RSS (MiB)", title="peak memory")
    for ax in (ax_t, ax_m):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(args):
    RESULTS.mkdir(exist_ok=True)
    plan = [(p, n) for p in ("dense", "frame") for n in range(2, args.dense_nmax + 1)]
    plan += [(p, n) for p in ("low_rank", "pure") for n in args.ns if n <= args.nmax]
    plan = [(p, n) for p, n in plan if p in args.paths]
    previous = RESULTS / "scaling.json"
    rows = []
    if args.merge and previous.exists():  # keep earlier rows of (path, N) not re-run now
        rows = [r for r in json.loads(previous.read_text())["rows"] if (r["path"], r["N"]) not in plan]
    for path, n in plan:
        if any(r["path"] == path and r["N"] < n and r.get("timed_out") for r in rows):
            continue  # larger N of a path that already ran out of time
        cmd = [sys.executable, __file__, "--one", path, str(n), "--rtol", str(args.rtol)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.limit, env=os.environ)
            row = json.loads(out.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            row = {"path": path, "N": n, "timed_out": True, "limit_s": args.limit}
        except (json.JSONDecodeError, IndexError):
            row = {"path": path, "N": n, "error": out.stderr[-500:]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        (RESULTS / "scaling.json").write_text(json.dumps({"rtol": args.rtol, "rows": rows}, indent=1))
    rows.sort(key=lambda r: (PATHS.index(r["path"]), r["N"]))
    plot(rows, RESULTS / "scaling.png")
    print("| path | N | D | steps | time incl. compile (s) | warm time (s) | peak RSS (MiB) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        if "seconds" in r:
            warm = "—" if r["warm_seconds"] is None else f"{r['warm_seconds']:.2f}"
            print(f"| {r['path']} | {r['N']} | {r['D']} | {r['steps']} | {r['seconds']:.2f} | {warm} | {r['peak_rss_MiB']:.0f} |")
        else:
            print(f"| {r['path']} | {r['N']} | — | — | > {r.get('limit_s', args.limit)} (limit) | — | — |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("PATH", "N"))
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--limit", type=float, default=200.0, help="seconds per run")
    parser.add_argument("--nmax", type=int, default=20)
    parser.add_argument("--dense-nmax", type=int, default=6)
    parser.add_argument("--ns", type=int, nargs="+", default=[4, 8, 12, 16, 18, 20], help="N of the fast paths")
    parser.add_argument("--paths", nargs="+", default=list(PATHS))
    parser.add_argument("--merge", action="store_true", help="keep rows of benchmarks/results/scaling.json not re-run")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.rtol)))
    else:
        main(args)
