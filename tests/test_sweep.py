"""Parameter sweeps (issue 5): sweep == loop of solve, chunking and sharding do not change results, failures."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.sweeps import grid, load_sweep, sweep, sweep_solve
from qllg_jax.sweeps.engine import WORK_FACTOR, choose_chunk_size, estimate_point_bytes
from qllg_jax.sweeps.params import check_params

KAPPA = 0.4
TS = jnp.linspace(0.0, 1.0, 6)
RHO0 = q.werner_state("psi+", 0.9)
OBSERVABLES = {"bloch": q.bloch_vectors, "bell": q.bell_nonlocality}
# the last point (huge exchange) cannot finish within MAX_STEPS: it must fail alone
PARAMS = {"J": np.array([0.5, 1.0, 1.5, 0.7, 400.0]), "D": np.array([0.0, 0.2, 0.4, 0.1, 0.0])}
MAX_STEPS = 400
RTOL = 1e-10
SOLVE_OPTIONS = dict(method="dense", max_steps=MAX_STEPS, rtol=RTOL, atol=1e-2 * RTOL)
# Two adaptive solutions with different step sequences (a chunk's shared steps vs one point's own steps) differ by
# the sum of their global errors. Each step's local error is held to ≈ rtol (observables and ϱ are O(1)); over the
# ≈ 20 steps of these runs (t ≤ 1, ‖H‖ ≤ 5) the global error is bounded by ≈ steps · e^{‖H‖t} · rtol ≈ 10³ rtol
# (measured 20–30 rtol against the closed form, at both XLA optimisation levels). Hence SOLVER_TOL = 10³ rtol.
# Solutions computed with the same steps (one solve per point, either way) agree to round-off:
SOLVER_TOL = 1e3 * RTOL
ROUNDOFF = 1e-11  # ≈ 1e-16 · steps · e^{‖H‖t} ≈ 1e-13, with 100× room


def hamiltonian(J, D):
    return q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=J, D=(0.0, 0.0, D))


@jax.jit
def single_solve(H, rho0, kappa):
    """One plain solve (the independent reference), jitted once for every point of the tests."""
    return q.solve(H, rho0, TS, kappa, observables=OBSERVABLES, invariant_tol=None, **SOLVE_OPTIONS)


@pytest.fixture(scope="module")
def swept():
    return {
        size: sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS, observables=OBSERVABLES, chunk_size=size,
                          progress=False, solve_options=SOLVE_OPTIONS)
        for size in (2, 5)
    }


def test_sweep_equals_loop_of_solve(swept):
    """Chunks of 2 (one ODE with shared steps per chunk): equal to single solves to the solver tolerance. Chunk of 5
    holds the failing point: it is computed again one solve per point, equal to single solves to round-off."""
    result = swept[2]
    assert result.outputs["observables"]["bloch"].shape == (5, 6, 2, 3)
    assert result.outputs["observables"]["bell"].shape == (5, 6)
    for i in range(4):
        ref = single_solve(hamiltonian(PARAMS["J"][i], PARAMS["D"][i]), RHO0, KAPPA)
        for name in OBSERVABLES:
            np.testing.assert_allclose(result.outputs["observables"][name][i], ref.observables[name], atol=SOLVER_TOL,
                                       rtol=0)
            np.testing.assert_allclose(swept[5].outputs["observables"][name][i], ref.observables[name], atol=ROUNDOFF,
                                       rtol=0)
        assert swept[5].outputs["stats"]["num_steps"][i] == int(ref.stats["num_steps"])
    pair = result.outputs["stats"]["num_steps"][:2]
    assert pair[0] == pair[1]  # shared steps
    # and against the closed form for Werner states (ϱ = a𝟙 + bP, κ → κb): an independent method
    closed = q.two_level_exact(hamiltonian(1.5, 0.4), RHO0, TS, KAPPA)
    np.testing.assert_allclose(result.outputs["observables"]["bloch"][2], q.bloch_vectors(closed), atol=SOLVER_TOL)


def test_auto_method_uses_two_level_closed_form(swept):
    """Werner ϱ0 fixed: sweep_solve's "auto" runs the exact two-level reduction (no steps) for every point;
    it must agree with the dense integrator (an independent method) on the points that finish."""
    auto = sweep_solve(hamiltonian, RHO0, TS, KAPPA, {k: v[:4] for k, v in PARAMS.items()}, observables=OBSERVABLES,
                       progress=False, solve_options={"rtol": 1e-8, "atol": 1e-10})
    assert auto.success.all() and np.all(auto.outputs["stats"]["num_steps"] == 0)
    for name in OBSERVABLES:
        np.testing.assert_allclose(auto.outputs["observables"][name], swept[2].outputs["observables"][name][:4],
                                   atol=SOLVER_TOL, rtol=0)  # the integrator's global error (a closed form has none)


def test_failing_point_recorded_others_finish(swept):
    result = swept[2]
    assert result.success.tolist() == [True, True, True, True, False]
    assert result.failed() == {4: "max_steps reached"}
    assert result.reasons[:4] == ["success"] * 4
    assert np.all(np.isfinite(result.outputs["observables"]["bloch"][:4]))
    assert result.diagnostics["trace_error"].shape == (5,)
    assert np.all(result.diagnostics["trace_error"][:4] < 1e-8)


def test_chunking_does_not_change_results(swept):
    a, b = swept[2], swept[5]
    for name in OBSERVABLES:
        np.testing.assert_allclose(a.outputs["observables"][name][:4], b.outputs["observables"][name][:4],
                                   atol=SOLVER_TOL, rtol=0)  # shared steps vs per-point steps
    np.testing.assert_array_equal(a.success, b.success)


def test_generic_run_point_and_grid():
    p = grid(x=[1.0, 2.0], y=[0.0, 1.0, 2.0])
    assert p["x"].tolist() == [1, 1, 1, 2, 2, 2] and p["y"].tolist() == [0, 1, 2, 0, 1, 2]
    result = sweep(lambda x, y: {"s": x + y, "v": jnp.stack([x, y])}, p, chunk_size=4, progress=False)
    np.testing.assert_array_equal(result.outputs["s"], p["x"] + p["y"])
    assert result.outputs["v"].shape == (6, 2) and result.success.all()


def test_chunk_size_from_memory_budget():
    run = lambda x: {"big": jnp.zeros(1000) + x}  # noqa: E731  8 kB out per point
    p = {"x": np.arange(100.0)}
    per_point = estimate_point_bytes(run, p)  # WORK_FACTOR × (8 kB out + success/failure flags + 8 B in)
    assert WORK_FACTOR * 8008 <= per_point <= WORK_FACTOR * 8100
    assert choose_chunk_size(per_point, 100, 1, memory_budget=10**9) == 100
    assert choose_chunk_size(per_point, 100, 1, memory_budget=10 * per_point + 1) == 10
    assert choose_chunk_size(per_point, 100, 4, memory_budget=1) == 4  # at least one point per device
    assert choose_chunk_size(per_point, 5000, 1, memory_budget=10**12) == 1024  # MAX_CHUNK_SIZE per device
    assert choose_chunk_size(per_point, 5000, 4, memory_budget=10**12, max_chunk=128) == 512  # CPU cap × devices


@pytest.mark.parametrize(
    "params, match",
    [
        ({}, "non-empty"),
        ({"J": np.zeros(3), "D": np.zeros(4)}, "same number of points"),
        ({"J": 1.0}, "leading point axis"),
        ({"J": np.array([1.0, np.nan])}, "NaN"),
        ({"": np.zeros(2)}, "non-empty strings"),
        ({"J": np.array(["a", "b"])}, "numeric"),
    ],
)
def test_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        check_params(params)


def test_bad_options():
    with pytest.raises(ValueError, match="chunk_size"):
        sweep(lambda x: x, {"x": np.zeros(2)}, chunk_size=0, progress=False)
    with pytest.raises(ValueError, match="throw"):
        sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS, solve_options={"throw": True})


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np
    import qllg_jax as q
    assert jax.local_device_count() == 4, jax.devices()
    spec = json.loads(sys.argv[1])
    H = lambda J, D: q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=J, D=(0.0, 0.0, D))
    sharded = q.sweep_solve(H, q.werner_state("psi+", 0.9), jnp.linspace(0.0, 1.0, 6), spec["kappa"],
                            {k: np.asarray(v) for k, v in spec["params"].items()},
                            observables={"bloch": q.bloch_vectors, "bell": q.bell_nonlocality}, chunk_size=8,
                            progress=False, solve_options=spec["solve_options"])
    print(json.dumps({"bloch": sharded.outputs["observables"]["bloch"].tolist(), "success": sharded.success.tolist(),
                      "failed": sharded.failed()}))
    """
)


def test_sharded_over_four_devices_equals_unsharded(tmp_path, swept):
    """The fixture's 5 points (one failing) in one chunk of 8 over 4 fake CPU devices (2 per device, 3 padded)
    equal the unsharded single-device sweep of one chunk (both computed again per point: the chunk has a failure)."""
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}  # the script adds 4 host devices to the suite's XLA_FLAGS
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(q.__file__)), env.get("PYTHONPATH", "")])
    spec = {"kappa": KAPPA, "params": {k: v.tolist() for k, v in PARAMS.items()}, "solve_options": SOLVE_OPTIONS}
    done = subprocess.run([sys.executable, str(script), json.dumps(spec)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    single = swept[5]
    assert report["success"] == single.success.tolist() and report["failed"] == {"4": "max_steps reached"}
    bloch = np.asarray(report["bloch"])
    assert bloch.shape == (5, 6, 2, 3)
    np.testing.assert_allclose(bloch[:4], single.outputs["observables"]["bloch"][:4], atol=1e-12, rtol=0)


def test_batched_solve_and_vmap_equal_a_loop_of_solve(swept):
    """batching="solve" (one batched solve per chunk, the fixture) and batching="vmap" (one solve per point) both
    equal single solve calls to the solver tolerance, and record the same failing point."""
    vmapped = sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS, observables=OBSERVABLES, chunk_size=5,
                          progress=False, solve_options=SOLVE_OPTIONS, batching="vmap")
    assert vmapped.success.tolist() == swept[5].success.tolist() == [True] * 4 + [False]
    for name in OBSERVABLES:
        np.testing.assert_allclose(vmapped.outputs["observables"][name][:4], swept[5].outputs["observables"][name][:4],
                                   atol=ROUNDOFF, rtol=0)  # both one solve per point: the same steps
    shared = sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS, observables=OBSERVABLES, chunk_size=5, progress=False,
                         solve_options=SOLVE_OPTIONS, batching="solve")
    assert shared.success.tolist() == [False] * 5  # without the fallback the stiff point takes its chunk with it


def test_point_dependent_rho0_and_kappa_equal_single_solves():
    """ϱ0(p) and κ(k) vary per point (vmapped inside the chunk); each point equals its own solve."""
    params = grid(p=[0.6, 0.9], k=[0.0, 0.3])
    rho0 = lambda p: q.werner_state("psi+", p)  # noqa: E731
    result = sweep_solve(hamiltonian(1.0, 0.2), rho0, TS, lambda k: 2 * k, params, observables=OBSERVABLES,
                         progress=False, solve_options=SOLVE_OPTIONS)
    assert result.success.all()
    for i in range(4):
        ref = single_solve(hamiltonian(1.0, 0.2), rho0(params["p"][i]), 2 * params["k"][i])
        np.testing.assert_allclose(result.outputs["observables"]["bell"][i], ref.observables["bell"], atol=SOLVER_TOL,
                                   rtol=0)


def _non_hermitian_above_one(J):
    return q.dimer_hamiltonian(J=1.0) + jnp.where(J > 1.0, 0.5, 0.0) * jnp.triu(jnp.ones((4, 4)), 1)


BAD_INPUTS = {
    "chunk_size str": (lambda out: sweep(lambda x: x, {"x": np.zeros(2)}, chunk_size="abc", progress=False), "chunk_size"),
    "chunk_size float": (lambda out: sweep(lambda x: x, {"x": np.zeros(2)}, chunk_size=1.5, progress=False), "chunk_size"),
    "chunk_size bool": (lambda out: sweep(lambda x: x, {"x": np.zeros(2)}, chunk_size=True, progress=False), "chunk_size"),
    "param not in run_point": (lambda out: sweep(lambda J: J, {"J": np.zeros(2), "K": np.zeros(2)}, progress=False),
                               r"\['K'\] are not parameters of run_point"),
    "run_point needs a missing param": (lambda out: sweep(lambda J, B: J, {"J": np.zeros(2)}, progress=False),
                                        r"needs \['B'\]"),
    "run_point returns str": (lambda out: sweep(lambda x: "text", {"x": np.zeros(2)}, progress=False),
                              "run_point must return arrays"),
    "out in missing directory": (lambda out: sweep(lambda x: x, {"x": np.zeros(2)}, progress=False,
                                                   out=out / "missing" / "s.h5"), "does not exist"),
    "keep_in_memory without out": (lambda out: sweep(lambda x: x, {"x": np.zeros(2)}, keep_in_memory=False),
                                   "needs out="),
    "solve_options unknown key": (lambda out: sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS,
                                                          solve_options={"rtoll": 1e-6}),
                                  "unknown key 'rtoll' \\(did you mean 'rtol'\\?\\)"),
    "solve_options reserved": (lambda out: sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS, solve_options={"throw": True}),
                               "throw"),
    "batching": (lambda out: sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS, batching="loop"), "batching"),
    "memory_budget": (lambda out: sweep(lambda x: x, {"x": np.zeros(2)}, memory_budget=0), "memory_budget"),
    "process_index": (lambda out: sweep(lambda x: x, {"x": np.zeros(2)}, process_index=2, process_count=2),
                      "process_index"),
    "H(J) non-Hermitian at one point": (
        lambda out: sweep_solve(_non_hermitian_above_one, RHO0, TS, KAPPA, {"J": np.array([0.5, 2.0])}, progress=False),
        r"H\(point\) is not Hermitian.* at point 1 \(J=2.0\)"),
    "kappa(k) negative at one point": (
        lambda out: sweep_solve(hamiltonian(1.0, 0.0), RHO0, TS, lambda k: k - 0.5, {"k": np.array([1.0, 0.2])},
                                progress=False), r"kappa\(point\) must be >= 0.* at point 1 \(k=0.2\)"),
    "rho0(p) unnormalised at one point": (
        lambda out: sweep_solve(hamiltonian(1.0, 0.0), lambda p: p * RHO0, TS, KAPPA, {"p": np.array([1.0, 2.0])},
                                progress=False), r"rho0\(point\) must have unit trace.* at point 1 \(p=2.0\)"),
    "load_sweep text file": (lambda out: (out.joinpath("notes.txt").write_text("x"), load_sweep(out / "notes.txt")),
                             "not an HDF5 file"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_sweep_inputs_are_clear_errors_before_compute(case, tmp_path):
    make, match = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=match):
        make(tmp_path)


def test_result_larger_than_memory_limit_needs_out_and_streams(tmp_path):
    """An in-memory result above the limit is refused before compute, suggesting out=; with out= and
    keep_in_memory=False it streams to the file and reads back in parts."""
    run = lambda x: {"big": jnp.zeros(1000) + x}  # noqa: E731  8 kB per point, 300 points = 2.4 MB
    params = {"x": np.arange(300.0)}
    previous = q._guards.set_memory_limit("1M")
    try:
        with pytest.raises(q._guards.SizeError, match="out="):
            sweep(run, params, chunk_size=8, progress=False)
        with pytest.raises(q._guards.SizeError, match="chunk_size"):  # 8 × 64 × 8 kB per chunk
            sweep(run, params, chunk_size=64, progress=False, out=tmp_path / "s.h5", keep_in_memory=False)
        streamed = sweep(run, params, chunk_size=8, progress=False, out=tmp_path / "s.h5", keep_in_memory=False)
    finally:
        q._guards.set_memory_limit(previous)
    assert streamed.outputs is None and streamed.success.all() and streamed.metadata["complete"]
    part = load_sweep(tmp_path / "s.h5", points=slice(10, 30, 7))
    np.testing.assert_array_equal(part.outputs["big"], np.arange(10.0, 30.0, 7)[:, None] + np.zeros(1000))
    np.testing.assert_array_equal(part.params["x"], [10.0, 17.0, 24.0])


def test_sweeps_package_has_no_import_cycles():
    """The modules of qllg_jax.sweeps import each other in one direction only (issue 15: sweep.py and
    sweep_store.py imported each other), and never the old alias modules."""
    import ast
    import pathlib

    import graphlib

    package = pathlib.Path(q.__file__).parent / "sweeps"
    graph = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported |= {node.module} if node.module else {alias.name for alias in node.names}
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert node.module not in ("sweep", "sweep_store"), f"{path.name} imports the old module {node.module}"
        graph[path.stem] = imported - {path.stem}
    order = list(graphlib.TopologicalSorter({k: v for k, v in graph.items() if k != "__init__"}).static_order())
    assert order.index("store") < order.index("engine") < order.index("solve")


def test_repeated_sweep_solve_does_not_recompile(compiles):
    """The same H function, ϱ0, κ and options again (e.g. a resumed or repeated sweep): no new compilation."""
    params = {k: v[:4] for k, v in PARAMS.items()}
    first = sweep_solve(hamiltonian, RHO0, TS, KAPPA, params, observables=OBSERVABLES, progress=False, chunk_size=2)
    assert compiles, "the first sweep compiles"
    compiles.clear()
    again = sweep_solve(hamiltonian, RHO0, TS, KAPPA, params, observables=OBSERVABLES, progress=False, chunk_size=2)
    assert compiles == []
    np.testing.assert_array_equal(again.outputs["observables"]["bell"], first.outputs["observables"]["bell"])
