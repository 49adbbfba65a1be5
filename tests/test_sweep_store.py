"""Sweeps on disk (issues 7, 15): in-place appends (bytes written ∝ data), exact round trip of every dtype,
checksums, the writer lock, the physics fingerprint, never touching other files, SIGKILL + resume."""

import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.sweeps import SweepFileError, load_sweep, sweep, sweep_solve
from qllg_jax.sweeps.store import FORMAT, PARTIAL

# One sweep definition shared by the in-process reference run and the subprocesses that get killed.
SWEEP_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np, jax, jax.numpy as jnp
    import qllg_jax  # float64
    from qllg_jax.sweeps import sweep
    from qllg_jax.sweeps.store import SweepStore

    PARAMS = {"J": np.linspace(0.3, 1.6, 11), "D": np.linspace(0.0, 0.5, 11)}
    CONFIG = {"system": "two-level toy", "t1": 1.0}

    def run_point(J, D):
        H = jnp.array([[J, D - 0.3j], [D + 0.3j, -J]])
        U = jax.vmap(jax.scipy.linalg.expm)(-1j * H * jnp.linspace(0.0, 1.0, 5)[:, None, None])  # (5, 2, 2)
        return {"U": U, "U64": U.astype(jnp.complex64), "trace": jnp.trace(U, axis1=-2, axis2=-1).real,
                "count": jnp.int32(J * 10), "positive": D > 0.2, "success": J < 1.5}

    def run(out, **kwargs):
        return sweep(run_point, PARAMS, chunk_size=2, out=out, config=CONFIG, progress=False, **kwargs)

    def slow(name, seconds):  # test hook: sleep before each phase of creating and committing
        original = SweepStore.__dict__[name]
        function = original.__func__ if isinstance(original, staticmethod) else original
        def wrapped(*args, **kwargs):
            time.sleep(seconds)
            return function(*args, **kwargs)
        setattr(SweepStore, name, staticmethod(wrapped) if isinstance(original, staticmethod) else wrapped)

    if __name__ == "__main__":
        if sys.argv[2] == "slow":
            for name in ("_write_header", "_publish", "_flush", "_write_flag"):
                slow(name, 0.1)
            slow("_write_rows", 0.03)
        print("ready", flush=True)
        run(sys.argv[1])
        print("finished", flush=True)
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


def _datasets(path) -> dict:
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda name, item: out.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return out


def _assert_files_equal_bitwise(path, ref_path):
    got, want = _datasets(path), _datasets(ref_path)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        assert got[name].dtype == value.dtype, name
        assert got[name].tobytes() == value.tobytes(), name  # bit for bit, NaN payloads and -0.0 included


def test_round_trip_of_every_dtype_and_metadata(reference):
    namespace, out, result = reference
    loaded = load_sweep(out)
    meta = loaded.metadata
    assert meta["complete"] and meta["done"].all() and meta["chunk_size"] == 2 and meta["format"] == FORMAT
    assert meta["config"] == namespace["CONFIG"]
    assert meta["versions"]["qllg_jax"] == q.__version__ and "jax" in meta["versions"]
    assert meta["fingerprint"]["run_point"]["callable"] == "run_point"
    np.testing.assert_array_equal(loaded.params["J"], namespace["PARAMS"]["J"])
    # independent value: the propagator from numpy/scipy, U(t) = exp(-iHt); and the dtypes as returned
    from scipy.linalg import expm

    J, D = namespace["PARAMS"]["J"][3], namespace["PARAMS"]["D"][3]
    H = np.array([[J, D - 0.3j], [D + 0.3j, -J]])
    np.testing.assert_allclose(loaded.outputs["U"][3, 4], expm(-1j * H), atol=1e-12)
    for name, dtype in (("U", np.complex128), ("U64", np.complex64), ("trace", np.float64), ("count", np.int32),
                        ("positive", np.bool_)):
        assert loaded.outputs[name].dtype == dtype
        assert loaded.outputs[name].tobytes() == result.outputs[name].tobytes(), name
    assert loaded.success.tolist() == (namespace["PARAMS"]["J"] < 1.5).tolist() == result.success.tolist()


def test_sweep_solve_kets_states_and_slash_names_round_trip(tmp_path):
    """Complex states and kets of a pure ϱ0 (issue 15: these failed to store), an observable named 'a/b'."""
    psi0 = q.up_down_state()
    ts = jnp.linspace(0.0, 0.5, 3)
    kwargs = dict(observables={"a/b": q.bloch_vectors, "%x": q.purity}, save_states=True, progress=False,
                  chunk_size=2)
    H = lambda J: q.dimer_hamiltonian(J=J)  # noqa: E731
    memory = sweep_solve(H, psi0, ts, 0.2, {"J": np.array([0.5, 1.0, 1.5])}, **kwargs)
    stored = sweep_solve(H, psi0, ts, 0.2, {"J": np.array([0.5, 1.0, 1.5])}, out=tmp_path / "k.h5", **kwargs)
    loaded = load_sweep(tmp_path / "k.h5")
    assert set(loaded.outputs["observables"]) == {"a/b", "%x"}
    for name in ("states", "kets"):
        assert loaded.outputs[name].dtype == np.complex128
        assert loaded.outputs[name].tobytes() == memory.outputs[name].tobytes() == stored.outputs[name].tobytes()
    np.testing.assert_array_equal(loaded.outputs["observables"]["a/b"], memory.outputs["observables"]["a/b"])
    ref = jax.jit(lambda J: q.solve(H(J), psi0, ts, 0.2, invariant_tol=None).states)(1.0)  # one plain solve
    np.testing.assert_allclose(loaded.outputs["states"][1], ref, atol=1e-12)
    with h5py.File(tmp_path / "k.h5", "r") as f:
        assert "outputs/observables/a%2Fb" in f and "outputs/observables/%25x" in f


def _wchar() -> int:
    with open("/proc/self/io") as handle:
        return int(next(line for line in handle if line.startswith("wchar")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_bytes_written_at_most_twice_the_file_size(tmp_path):
    """1024 points in 32 chunks: every chunk is written once in place (the copy-and-replace store of format 1
    wrote 26x the file size)."""
    params = {"x": np.arange(1024.0)}
    run = lambda x: {"v": jnp.arange(64.0) * x, "z": jnp.exp(1j * x) * jnp.ones(8)}  # noqa: E731
    sweep(run, {"x": params["x"][:32]}, chunk_size=32, progress=False)  # compile outside the measurement
    before = _wchar()
    result = sweep(run, params, chunk_size=32, progress=False, out=tmp_path / "io.h5")
    written = _wchar() - before
    size = os.path.getsize(tmp_path / "io.h5")
    assert size >= 1024 * (64 * 8 + 8 * 16)  # the data are all there
    assert written <= 2 * size, f"wrote {written} bytes for a file of {size} bytes"
    np.testing.assert_array_equal(load_sweep(tmp_path / "io.h5").outputs["v"], result.outputs["v"])


def _garbage(path, offset, n=4096):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8).tobytes())


def test_garbage_in_the_middle_is_detected_by_load_and_resume(tmp_path):
    params = {"x": np.arange(64.0)}
    run = lambda x: {"v": jnp.arange(256.0) * x}  # noqa: E731  data = 128 KiB of the file
    out = tmp_path / "c.h5"
    sweep(run, params, chunk_size=8, progress=False, out=out)
    _garbage(out, os.path.getsize(out) // 2)
    with pytest.raises(SweepFileError, match=r"c\.h5.* is damaged: dataset 'outputs/v', chunk \d+ \(points \d+-\d+\)"):
        load_sweep(out)
    with pytest.raises(SweepFileError, match="is damaged: dataset 'outputs/v', chunk"):
        sweep(run, params, chunk_size=8, progress=False, out=out)
    # the header (here: the parameter points) is checked too
    header = tmp_path / "h.h5"
    sweep(run, params, chunk_size=8, progress=False, out=header)
    with h5py.File(header, "r") as f:
        offset = f["params/x"].id.get_offset()
    _garbage(header, offset, 64)
    with pytest.raises(SweepFileError, match="header"):
        load_sweep(header)


def test_fingerprint_mismatch_names_what_changed(tmp_path):
    """A stored sweep_solve refuses other physics — even a complete file is never returned for a new κ, H or ts."""
    out = tmp_path / "f.h5"
    H = lambda J: q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=J)  # noqa: E731
    rho0, ts, params = q.werner_state("psi+", 0.9), jnp.linspace(0.0, 1.0, 3), {"J": np.array([0.5, 1.0])}
    first = sweep_solve(H, rho0, ts, 0.5, params, out=out, progress=False)
    again = sweep_solve(H, rho0, ts, 0.5, params, out=out, progress=False)  # the same physics: resumed (nothing to do)
    np.testing.assert_array_equal(again.outputs["observables"] if again.outputs["observables"] else again.outputs["invariants"]["trace"],
                                  first.outputs["observables"] if first.outputs["observables"] else first.outputs["invariants"]["trace"])
    cases = {
        "kappa differs: stored 0.5, now 0.1": dict(kappa=0.1),
        r"H\(point\) differs at point 1 \(J=1.0\)": dict(H=lambda J: q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=J * (J < 0.8))),
        "ts differs": dict(ts=jnp.linspace(0.0, 2.0, 3)),
        "rho0 differs": dict(rho0=q.werner_state("psi+", 0.8)),
        "solve_options differs": dict(solve_options={"rtol": 1e-6}),
        "observables differs": dict(observables={"bell": q.bell_nonlocality}),
    }
    for match, change in cases.items():
        args = {"H": H, "rho0": rho0, "ts": ts, "kappa": 0.5, **change}
        with pytest.raises(SweepFileError, match=match):
            sweep_solve(args.pop("H"), args.pop("rho0"), args.pop("ts"), args.pop("kappa"), params, out=out,
                        progress=False, **args)
    with pytest.raises(SweepFileError, match=r"params differs"):
        sweep_solve(H, rho0, ts, 0.5, {"J": np.array([0.5, 1.5])}, out=out, progress=False)
    # the generic sweep: config and run_point
    generic = tmp_path / "g.h5"
    sweep(lambda x: x + 1.0, {"x": np.arange(3.0)}, out=generic, config={"a": {"b": 1}}, progress=False)
    with pytest.raises(SweepFileError, match=r"config differs: a\.b: stored 1, now 2"):
        sweep(lambda x: x + 1.0, {"x": np.arange(3.0)}, out=generic, config={"a": {"b": 2}}, progress=False)
    with pytest.raises(SweepFileError, match="run_point differs"):
        sweep(lambda x: x + 2.0, {"x": np.arange(3.0)}, out=generic, config={"a": {"b": 1}}, progress=False)
    replaced = sweep(lambda x: x + 2.0, {"x": np.arange(3.0)}, out=generic, config={"a": {"b": 1}}, progress=False,
                     overwrite=True)
    np.testing.assert_array_equal(load_sweep(generic).outputs, replaced.outputs)


def test_never_touches_files_it_did_not_create(tmp_path):
    run = lambda x: x * 2.0  # noqa: E731
    params = {"x": np.arange(4.0)}
    out = tmp_path / "s.h5"
    user_tmp = tmp_path / "s.h5.tmp"
    user_tmp.write_text("my own notes")
    sweep(run, params, out=out, chunk_size=2, progress=False)
    assert user_tmp.read_text() == "my own notes"
    # a read-only complete file of the same sweep is read, not written; an incomplete one is refused
    os.chmod(out, 0o444)
    before = out.read_bytes()
    np.testing.assert_array_equal(sweep(run, params, out=out, chunk_size=2, progress=False).outputs, params["x"] * 2)
    with pytest.raises(SweepFileError, match="read-only"):
        sweep(lambda x: x * 3.0, params, out=out, progress=False, overwrite=True)
    assert out.read_bytes() == before and stat.S_IMODE(os.stat(out).st_mode) == 0o444
    # not a sweep file: refused; replaced only with overwrite=True, keeping its mode
    other = tmp_path / "notes.h5"
    with h5py.File(other, "w") as f:
        f["mine"] = np.arange(3)
    os.chmod(other, 0o640)
    with pytest.raises(SweepFileError, match="not a qllg sweep file"):
        sweep(run, params, out=other, progress=False)
    with h5py.File(other, "r") as f:
        assert f["mine"][()].tolist() == [0, 1, 2]
    text = tmp_path / "notes.txt"
    text.write_text("precious")
    with pytest.raises(SweepFileError, match="not an HDF5 file"):
        sweep(run, params, out=text, progress=False)
    assert text.read_text() == "precious"
    sweep(run, params, out=other, progress=False, overwrite=True)
    assert load_sweep(other).metadata["complete"] and stat.S_IMODE(os.stat(other).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.h5", "notes.txt", "s.h5", "s.h5.tmp"]
    with pytest.raises(ValueError, match="no such sweep file"):
        load_sweep(tmp_path / "missing.h5")


def test_stale_partial_files_are_removed_and_chunk_size_kept(tmp_path):
    """A creation killed after publishing (hard link) or before it leaves <out>.qllg-partial-*: the next run
    removes it (only that name pattern); a resumed sweep keeps the file's chunk size."""
    out = tmp_path / "p.h5"
    sweep(lambda x: x, {"x": np.arange(4.0)}, out=out, chunk_size=2, progress=False)
    os.link(out, str(out) + PARTIAL + "123-abcd")  # killed between link and unlink
    (tmp_path / ("p.h5" + PARTIAL + "456-ef01")).write_bytes(b"\x89HDF half written")  # killed while writing
    sweep(lambda x: x, {"x": np.arange(4.0)}, out=out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.h5"]
    with pytest.raises(SweepFileError, match="chunk_size=3 differs"):
        sweep(lambda x: x, {"x": np.arange(4.0)}, out=out, chunk_size=3, progress=False)


def _start(script, out, mode="slow"):
    child = subprocess.Popen([sys.executable, str(script), str(out), mode], env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready", child.stderr.read()[-3000:]
    return child


def test_second_writer_gets_the_lock_error_at_once(script, reference, tmp_path):
    namespace, ref_path, _ = reference
    out = tmp_path / "locked.h5"
    child = _start(script, out)
    try:
        deadline = time.monotonic() + 120
        while not out.exists():
            assert child.poll() is None, child.stderr.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(SweepFileError, match="being written by another running sweep"):
            namespace["run"](str(out))
        assert child.poll() is None  # refused while the first writer runs, not after it
    finally:
        child.kill()
        child.wait()
    namespace["run"](str(out))  # once the first writer is gone, the file resumes
    _assert_files_equal_bitwise(out, ref_path)


def _committed(path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["chunk_done"][()].sum())
    except (OSError, KeyError):
        return 0


def _wait_for(condition, child, what, timeout=180):
    deadline = time.monotonic() + timeout
    while not condition():
        assert child.poll() is None, f"the sweep ended before {what}: " + child.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted_run(script, reference, tmp_path):
    """Kill a real sweep (slowed by sleeps before every phase of creating and committing) at random moments —
    while its file is being created, around its first chunk, and among later commits — then resume in this
    process: every point exactly once, bit for bit equal to the uninterrupted run."""
    namespace, ref_path, _ = reference
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    for trial, (what, delay) in enumerate([("creation", rng.uniform(0.0, 0.25)), ("file", rng.uniform(0.0, 0.5)),
                                           ("commit", rng.uniform(0.0, 0.6))]):
        out = tmp_path / f"killed{trial}.h5"
        child = _start(script, out)
        conditions = {
            "creation": lambda: any(p.name.startswith(out.name + PARTIAL) for p in tmp_path.iterdir()) or out.exists(),
            "file": out.exists,
            "commit": lambda: _committed(out) >= 1,
        }
        _wait_for(conditions[what], child, what)
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if out.exists():  # readable after the kill, whatever it holds
            assert load_sweep(out).metadata["done"].sum() < 11, (seed, what, delay)
        namespace["run"](str(out))  # resume
        leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(out.name))
        assert leftovers == [out.name], (seed, what, delay, leftovers)
        _assert_files_equal_bitwise(out, ref_path)


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
