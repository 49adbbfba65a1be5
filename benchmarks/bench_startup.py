"""Start-up costs, each in fresh processes (interleaved, best of ``--repeats``):

1. ``import qllg_jax`` against a bare ``import jax`` (the baseline) and ``python -c pass``;
2. ``qllg --help`` (``python -m qllg_jax.cli --help``);
3. a first use (the README quickstart solve plus a mixed-state frame solve) with JAX's persistent compilation cache
   off, on but empty (the first run on a machine: compiles and writes), and on and warm — the measurement behind
   the decision to leave the cache off by default in the Python API (README, "Set-up").

    python benchmarks/bench_startup.py [--repeats 3]

Prints wall times in seconds and ratios against the baseline of the same run; state the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

FIRST_USE = """
import jax, jax.numpy as jnp, qllg_jax as q
if CACHE:
    q.enable_compilation_cache(CACHE)
H = q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.0, D=(0.0, 0.0, 0.2))
ts = jnp.linspace(0.0, 20.0, 201)
q.solve(H, q.up_down_state(), ts, kappa=0.5).states.block_until_ready()
q.solve(H, q.random_density_matrix(jax.random.PRNGKey(0), 4), ts, kappa=0.5).states.block_until_ready()
"""


def wall(args: list[str], env=None) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("QLLG_COMPILATION_CACHE", None)
    cases = {
        "python -c pass": ["-c", "pass"],
        "import jax (baseline)": ["-c", "import jax"],
        "import qllg_jax": ["-c", "import qllg_jax"],
        "import qllg_jax; import jax": ["-c", "import qllg_jax, jax"],
        "import qllg_jax; qllg_jax.solve": ["-c", "import qllg_jax; qllg_jax.solve"],
        "every public name": ["-c", "import qllg_jax as q; [getattr(q, n) for n in q.__all__]"],
        "qllg --help": ["-m", "qllg_jax.cli", "--help"],
    }
    times = {name: [] for name in cases}
    first = {"cache off": [], "cache on, empty": [], "cache on, warm": []}
    for _ in range(repeats):
        for name, args in cases.items():
            times[name].append(wall(args, env))
        cache = tempfile.mkdtemp(prefix="qllg-bench-cache-")
        try:
            first["cache off"].append(wall(["-c", f"CACHE = None\n{FIRST_USE}"], env))
            first["cache on, empty"].append(wall(["-c", f"CACHE = {cache!r}\n{FIRST_USE}"], env))
            first["cache on, warm"].append(wall(["-c", f"CACHE = {cache!r}\n{FIRST_USE}"], env))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    base = min(times["import jax (baseline)"])
    print(f"load average {os.getloadavg()[0]:.1f}; best of {repeats} fresh processes")
    for name, values in times.items():
        print(f"{name:32s} {min(values):6.2f} s   {min(values) / base:5.2f}x import jax")
    off = min(first["cache off"])
    for name, values in first.items():
        print(f"first use, {name:21s} {min(values):6.2f} s   {min(values) / off:5.2f}x cache off")


if __name__ == "__main__":
    main()
