"""Parameter sweeps (issue 5): sweep == loop of solve, chunking and sharding do not change results, failures."""

import json
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.sweep import WORK_FACTOR, check_params, choose_chunk_size, estimate_point_bytes, grid, sweep, sweep_solve

KAPPA = 0.4
TS = jnp.linspace(0.0, 1.0, 6)
RHO0 = q.werner_state("psi+", 0.9)
OBSERVABLES = {"bloch": q.bloch_vectors, "bell": q.bell_nonlocality}
# the last point (huge exchange) cannot finish within MAX_STEPS: it must fail alone
PARAMS = {"J": np.array([0.5, 1.0, 1.5, 0.7, 400.0]), "D": np.array([0.0, 0.2, 0.4, 0.1, 0.0])}
MAX_STEPS = 400
SOLVE_OPTIONS = dict(method="dense", max_steps=MAX_STEPS, rtol=1e-8, atol=1e-10)


def hamiltonian(J, D):
    return q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=J, D=(0.0, 0.0, D))


@pytest.fixture(scope="module")
def swept():
    return {
        size: sweep_solve(hamiltonian, RHO0, TS, KAPPA, PARAMS, observables=OBSERVABLES, chunk_size=size,
                          progress=False, solve_options=SOLVE_OPTIONS)
        for size in (2, 5)
    }


def test_sweep_equals_loop_of_solve(swept):
    result = swept[2]
    assert result.outputs["observables"]["bloch"].shape == (5, 6, 2, 3)
    assert result.outputs["observables"]["bell"].shape == (5, 6)
    for i in range(4):
        ref = q.solve(hamiltonian(PARAMS["J"][i], PARAMS["D"][i]), RHO0, TS, KAPPA, observables=OBSERVABLES, **SOLVE_OPTIONS)
        for name in OBSERVABLES:
            np.testing.assert_allclose(result.outputs["observables"][name][i], ref.observables[name], atol=1e-10, rtol=0)
        assert result.outputs["stats"]["num_steps"][i] == int(ref.stats["num_steps"])
    # and against the closed form for Werner states (ϱ = a𝟙 + bP, κ → κb): an independent method
    closed = q.two_level_exact(hamiltonian(1.5, 0.4), RHO0, TS, KAPPA)
    np.testing.assert_allclose(result.outputs["observables"]["bloch"][2], q.bloch_vectors(closed), atol=1e-6)


def test_auto_method_uses_two_level_closed_form(swept):
    """Werner ϱ0 fixed: sweep_solve's "auto" runs the exact two-level reduction (no steps) for every point;
    it must agree with the dense integrator (an independent method) on the points that finish."""
    auto = sweep_solve(hamiltonian, RHO0, TS, KAPPA, {k: v[:4] for k, v in PARAMS.items()}, observables=OBSERVABLES,
                       progress=False, solve_options={"rtol": 1e-8, "atol": 1e-10})
    assert auto.success.all() and np.all(auto.outputs["stats"]["num_steps"] == 0)
    for name in OBSERVABLES:
        np.testing.assert_allclose(auto.outputs["observables"][name], swept[2].outputs["observables"][name][:4],
                                   atol=1e-7, rtol=0)  # the integrator's error at rtol 1e-8


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
        np.testing.assert_allclose(a.outputs["observables"][name][:4], b.outputs["observables"][name][:4], atol=1e-12, rtol=0)
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
    assert choose_chunk_size(run, p, 100, 1, memory_budget=10**9) == 100
    per_point = estimate_point_bytes(run, p)  # WORK_FACTOR × (8 kB out + flags + 8 B in)
    assert WORK_FACTOR * 8008 <= per_point <= WORK_FACTOR * 8100
    assert choose_chunk_size(run, p, 100, 1, memory_budget=10 * per_point + 1) == 10
    assert choose_chunk_size(run, p, 100, 4, memory_budget=1) == 4  # at least one point per device
    many = {"x": np.arange(5000.0)}
    assert choose_chunk_size(run, many, 5000, 1, memory_budget=10**12) == 1024  # MAX_CHUNK_SIZE per device
    assert choose_chunk_size(run, many, 5000, 4, memory_budget=10**12, max_chunk=128) == 512  # CPU cap × devices


@pytest.mark.parametrize(
    "params, match",
    [
        ({}, "non-empty"),
        ({"J": np.zeros(3), "D": np.zeros(4)}, "same number of points"),
        ({"J": 1.0}, "leading point axis"),
        ({"J": np.array([1.0, np.nan])}, "NaN"),
        ({"a/b": np.zeros(2)}, "without '/'"),
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
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
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
    equal the unsharded single-device sweep."""
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(q.__file__)), env.get("PYTHONPATH", "")])
    spec = {"kappa": KAPPA, "params": {k: v.tolist() for k, v in PARAMS.items()}, "solve_options": SOLVE_OPTIONS}
    done = subprocess.run([sys.executable, str(script), json.dumps(spec)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    single = swept[2]
    assert report["success"] == single.success.tolist() and report["failed"] == {"4": "max_steps reached"}
    bloch = np.asarray(report["bloch"])
    assert bloch.shape == (5, 6, 2, 3)
    np.testing.assert_allclose(bloch[:4], single.outputs["observables"]["bloch"][:4], atol=1e-12, rtol=0)
