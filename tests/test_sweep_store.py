"""Sweeps on disk (issue 7): HDF5 round trip and metadata, SIGKILL + resume of a real subprocess, no clobbering."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.sweep_store import FORMAT, SweepStore, fingerprint, load_sweep

# One sweep definition shared by the in-process reference run and the subprocess that gets killed.
SWEEP_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np, jax.numpy as jnp
    import qllg_jax as q
    from qllg_jax.sweep_store import SweepStore

    PARAMS = {"J": np.linspace(0.3, 1.6, 11), "D": np.linspace(0.0, 0.5, 11)}
    CONFIG = {"system": "dimer", "kappa": 0.4, "t1": 1.0, "rho0": "werner psi+ 0.9"}

    def run(out, config=CONFIG, **kwargs):
        return q.sweep_solve(
            lambda J, D: q.dimer_hamiltonian(J=J, D=(0.0, 0.0, D)), q.werner_state("psi+", 0.9),
            jnp.linspace(0.0, 1.0, 6), 0.4, PARAMS, observables={"bloch": q.bloch_vectors},
            solve_options=dict(method="dense"), chunk_size=2, out=out, config=config, progress=False, **kwargs)

    if __name__ == "__main__":
        if sys.argv[2] == "slow":  # test hook: every commit waits 0.3 s with its copy written but not yet moved
            publish = SweepStore._publish
            SweepStore._publish = staticmethod(lambda tmp, path: (time.sleep(0.3), publish(tmp, path)))
        run(sys.argv[1])
        print("finished")
    """
)


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "sweep_script.py"
    path.write_text(SWEEP_SCRIPT)
    return path


@pytest.fixture(scope="module")
def reference(script, tmp_path_factory):
    """The uninterrupted sweep, run in this process (same code as the subprocess)."""
    namespace = {"__name__": "sweep_script"}
    exec(compile(script.read_text(), str(script), "exec"), namespace)
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    result = namespace["run"](str(out))
    return namespace, out, result


def _env():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(q.__file__)), env.get("PYTHONPATH", "")])
    return env


def _committed_chunks(path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(np.sum(f["chunk_done"][()])) if "chunk_done" in f else 0
    except (OSError, KeyError):
        return 0  # not yet created


def test_round_trip_and_metadata(reference):
    namespace, out, result = reference
    loaded = load_sweep(out)
    meta = loaded.metadata
    assert meta["complete"] and meta["done"].all() and meta["chunk_size"] == 2
    assert meta["config"] == namespace["CONFIG"]
    assert meta["versions"]["qllg_jax"] == q.__version__ and "jax" in meta["versions"] and "diffrax" in meta["versions"]
    np.testing.assert_array_equal(loaded.params["J"], namespace["PARAMS"]["J"])
    np.testing.assert_array_equal(loaded.outputs["observables"]["bloch"], result.outputs["observables"]["bloch"])
    np.testing.assert_array_equal(loaded.outputs["stats"]["num_steps"], result.outputs["stats"]["num_steps"])
    np.testing.assert_array_equal(loaded.success, np.ones(11, dtype=bool))
    assert set(loaded.diagnostics) == {"trace_error", "hermiticity_error", "purity_drift", "spectrum_drift", "energy_increase"}
    assert loaded.diagnostics["trace_error"].shape == (11,) and np.all(loaded.diagnostics["trace_error"] < 1e-8)
    np.testing.assert_allclose(loaded.ts, np.linspace(0, 1, 6))


def test_sigkill_then_resume_matches_uninterrupted_run(script, reference, tmp_path):
    _, ref_path, _ = reference
    out = tmp_path / "killed.h5"
    child = subprocess.Popen([sys.executable, str(script), str(out), "slow"], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _committed_chunks(out) < 1:
        assert child.poll() is None, child.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the sweep never committed a chunk"
        time.sleep(0.05)
    time.sleep(0.15)  # land inside the next chunk's commit (its copy written, not yet moved over the file)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    committed = _committed_chunks(out)
    assert 1 <= committed < 6, f"the kill must interrupt the sweep (committed {committed} of 6 chunks)"
    partial = load_sweep(out)  # readable after the kill
    assert not partial.metadata["complete"] and 2 <= partial.metadata["done"].sum() < 11

    done = subprocess.run([sys.executable, str(script), str(out), "fast"], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "finished" in done.stdout, done.stderr[-3000:]
    assert not os.path.exists(str(out) + ".tmp")
    with h5py.File(out, "r") as resumed, h5py.File(ref_path, "r") as ref:
        assert resumed.attrs["complete"] and resumed["done"][()].all() and resumed["chunk_done"][()].all()
        assert resumed.attrs["fingerprint"] == ref.attrs["fingerprint"]
        names = []
        ref.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        assert "outputs/observables/bloch" in names and "diagnostics/trace_error" in names
        for name in names:  # bit for bit
            np.testing.assert_array_equal(resumed[name][()], ref[name][()], err_msg=name)


def test_refuses_to_clobber(reference, tmp_path):
    namespace, ref_path, _ = reference
    with pytest.raises(ValueError, match="different sweep"):
        namespace["run"](str(ref_path), config={**namespace["CONFIG"], "kappa": 0.5})
    other = tmp_path / "notes.h5"
    with h5py.File(other, "w") as f:
        f["mine"] = np.arange(3)
    params = {"x": np.arange(3.0)}
    with pytest.raises(ValueError, match="not a qllg sweep file"):
        SweepStore.open(other, params=params, config={})
    text = tmp_path / "notes.txt"
    text.write_text("precious")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        SweepStore.open(text, params=params, config={})
    assert text.read_text() == "precious"
    with h5py.File(other, "r") as f:
        assert f["mine"][()].tolist() == [0, 1, 2]
    store = SweepStore.open(other, params=params, config={"a": 1}, overwrite=True)
    with h5py.File(other, "r") as f:
        assert f.attrs["format"] == FORMAT and "mine" not in f
    assert store.done_chunks() == set()
    # a resumed sweep must keep its chunk layout
    store.set_chunk_size(2)
    with pytest.raises(ValueError, match="chunk_size"):
        SweepStore.open(other, params=params, config={"a": 1}, chunk_size=3)
    with pytest.raises(ValueError, match="non-empty"):
        SweepStore.open(tmp_path / "empty.h5", params={}, config={})
    with pytest.raises(ValueError, match="no such sweep file"):
        load_sweep(tmp_path / "missing.h5")


def test_fingerprint_sees_config_and_params():
    base = fingerprint({"a": 1}, {"x": np.arange(3.0)})
    assert base == fingerprint({"a": 1}, {"x": np.arange(3.0)})
    assert base != fingerprint({"a": 2}, {"x": np.arange(3.0)})
    assert base != fingerprint({"a": 1}, {"x": np.arange(3.0) + 1e-15 * 0 + np.array([0, 0, 1e-12])})


CLI_CONFIG = """
[system]
dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6] }

[initial_state]
kind = "werner"
name = "psi+"
p = 0.9

[dynamics]
kappa = 0.5
t_end = 2.0
n_save = 11

[output]
observables = ["bloch", "bell_nonlocality"]

[sweep]
mode = "grid"
chunk_size = 2

[sweep.parameters]
"system.dimer.J" = [0.5, 1.5]
"system.dimer.D.2" = { linspace = [0.0, 0.4, 2] }
"""


def test_cli_sweep_writes_resumes_and_refuses(tmp_path, capsys):
    from qllg_jax.cli import main

    config = tmp_path / "dimer.toml"
    config.write_text(CLI_CONFIG)
    out = tmp_path / "dimer.h5"
    assert main(["sweep", str(config), "--quiet"]) == 0  # default output: the config's name with .h5
    loaded = load_sweep(out)
    assert loaded.metadata["complete"] and loaded.success.all()
    assert loaded.metadata["config"]["sweep"]["parameters"]["system.dimer.J"] == [0.5, 1.5]
    # grid order: first key slowest; each point's H is the paper's eq. 8 with the swept J, D_z
    np.testing.assert_array_equal(loaded.params["system.dimer.J"], [0.5, 0.5, 1.5, 1.5])
    np.testing.assert_array_equal(loaded.params["system.dimer.D.2"], [0.0, 0.4, 0.0, 0.4])
    ts = np.linspace(0.0, 2.0, 11)
    np.testing.assert_allclose(loaded.ts, ts)
    rho0 = q.werner_state("psi+", 0.9)
    for i, (J, D) in enumerate([(0.5, 0.0), (0.5, 0.4), (1.5, 0.0), (1.5, 0.4)]):
        H = q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=J, D=(0.0, 0.0, D))
        np.testing.assert_allclose(loaded.params["H"][i], H, atol=1e-14)
        states = q.two_level_exact(H, rho0, ts, 0.5)
        np.testing.assert_allclose(loaded.outputs["observables"]["bloch"][i], q.bloch_vectors(states), atol=1e-10)
    before = {name: loaded.outputs["observables"][name].copy() for name in ("bloch", "bell_nonlocality")}
    # the same command again: nothing to do, results unchanged
    assert main(["sweep", str(config), "--quiet"]) == 0
    again = load_sweep(out)
    for name, value in before.items():
        np.testing.assert_array_equal(again.outputs["observables"][name], value)
    # another config into the same file: refused with a clear error, file untouched
    other = tmp_path / "other.toml"
    other.write_text(CLI_CONFIG.replace("kappa = 0.5", "kappa = 0.3"))
    capsys.readouterr()
    assert main(["sweep", str(other), "--out", str(out), "--quiet"]) == 2
    assert "different sweep" in capsys.readouterr().err
    assert load_sweep(out).metadata["config"]["dynamics"]["kappa"] == 0.5
    assert main(["sweep", str(other), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert load_sweep(out).metadata["config"]["dynamics"]["kappa"] == 0.3
