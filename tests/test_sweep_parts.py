"""Sweeps in parts (issue 23): part=(K, N) / --part, merge_sweeps / --merge (bit-identical to one run, refused
with the reason and nothing written), load_sweep of a part set, --status, jax.distributed with two real CPU
processes (also killed and rerun), the README's SLURM array and one-process-per-GPU recipes, store messages."""

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.cli import main
from qllg_jax.sweeps import SweepFileError, load_sweep, merge_sweeps, sweep, sweep_solve, sweep_status
from qllg_jax.sweeps.parts import check_part, parse_part
from qllg_jax.sweeps.store import PARTIAL

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
"""Seconds any subprocess of these tests may run (they take a few seconds each)."""


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
        assert got[name].tobytes() == value.tobytes(), name  # bit for bit, NaN payloads included


def _only(directory, *names):
    """The directory holds exactly these files (no merged output, no private partial file left)."""
    assert sorted(p.name for p in Path(directory).iterdir()) == sorted(names)


# ------------------------------------------------------------------------------ parts in one process


PARAMS = {"J": np.linspace(0.3, 1.6, 11), "D": np.linspace(0.0, 0.5, 11)}


def run_point(J, D):
    H = jnp.array([[J, D - 0.3j], [D + 0.3j, -J]])
    U = jax.scipy.linalg.expm(-1j * H)
    return {"U": U, "trace": jnp.trace(U).real, "count": jnp.int32(J * 10), "success": J < 1.5}


def _run(out, **kwargs):
    return sweep(run_point, PARAMS, chunk_size=2, out=out, config={"toy": 1}, progress=False, **kwargs)


def test_parts_merge_bit_for_bit_into_a_single_run(tmp_path):
    """11 points in 6 chunks of 2 over 4 parts (parts 0, 1 hold 2 chunks, parts 2, 3 one): read together before
    the merge (missing chunks NaN), refused while a part is missing, then merged: every dataset equal bit for bit
    to the single-process file."""
    ref = _run(str(tmp_path / "ref.h5"))
    from scipy.linalg import expm

    J, D = PARAMS["J"][4], PARAMS["D"][4]  # independent value: U = exp(-iH)
    np.testing.assert_allclose(ref.outputs["U"][4], expm(-1j * np.array([[J, D - 0.3j], [D + 0.3j, -J]])), atol=1e-12)
    parts = tmp_path / "parts"
    parts.mkdir()
    out = parts / "s.h5"
    for k in (0, 1, 3):
        result = _run(str(out), part=(k, 4))
        mine = np.zeros(11, dtype=bool)
        for chunk in range(k, 6, 4):
            mine[2 * chunk : 2 * chunk + 2] = True
        assert result.metadata["part"] == (k, 4) and result.metadata["path"] == str(parts / f"s.process{k}of4.h5")
        assert (result.failure[~mine] == -1).all() and (result.failure[mine] != -1).all()
        np.testing.assert_array_equal(result.outputs["U"][mine], ref.outputs["U"][mine])
    # read as one result before merging: the chunk of the missing part 2 (points 4, 5) is not done
    together = load_sweep(out)
    assert not together.metadata["complete"] and together.metadata["path"] == [str(parts / f"s.process{k}of4.h5")
                                                                               for k in (0, 1, 3)]
    assert together.metadata["done"].tolist() == [i not in (4, 5) for i in range(11)]
    assert np.isnan(together.outputs["U"][4:6]).all() and (together.failure[4:6] == -1).all()
    np.testing.assert_array_equal(together.outputs["U"][together.metadata["done"]], ref.outputs["U"][together.metadata["done"]])
    with pytest.raises(SweepFileError, match=r"part 2 of 4 \('.*s\.process2of4\.h5'\) is missing: its chunks 2 are"):
        merge_sweeps(out)
    _only(parts, "s.process0of4.h5", "s.process1of4.h5", "s.process3of4.h5")
    status = sweep_status(out)
    assert [f["part"] for f in status["files"]] == [(0, 4), (1, 4), (3, 4)] and not status["merged"]
    assert [(f["chunks_done"], f["chunks"]) for f in status["files"]] == [(2, 2), (2, 2), (1, 1)]
    assert status["files"][1]["failed"] == {10: "solver failure"}  # J = 1.6 ≥ 1.5: success=False, in chunk 5
    _run(str(out), part=(2, 4))
    assert merge_sweeps(out) == str(out)
    _assert_files_equal_bitwise(out, tmp_path / "ref.h5")
    merged = load_sweep(out)
    assert merged.metadata["complete"] and merged.metadata["part"] is None
    assert merged.outputs["U"].tobytes() == ref.outputs["U"].tobytes()
    with pytest.raises(SweepFileError, match="exists; pass overwrite=True"):
        merge_sweeps(out)
    # the merged file is an ordinary sweep file: resuming it as the whole sweep has nothing to do
    assert _run(str(out)).outputs["trace"].tobytes() == ref.outputs["trace"].tobytes()



def test_process_split_and_part_mix(tmp_path):
    """The two ways write the same files: part 0 of 2 written the jax.distributed way (process_index=0,
    process_count=2, as process 0 of 2 does), part 1 as part=(1, 2): merged, equal bit for bit to one run."""
    _run(str(tmp_path / "ref.h5"))
    out = tmp_path / "m.h5"
    first = _run(str(out), process_index=0, process_count=2)
    assert first.metadata["path"] == str(tmp_path / "m.process0of2.h5")
    _run(str(out), part=(1, 2))
    assert merge_sweeps(out) == str(out)
    _assert_files_equal_bitwise(out, tmp_path / "ref.h5")


def _dimer(out, kappa=0.5, **kwargs):
    return sweep_solve(lambda J: q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=J), q.werner_state("psi+", 0.9),
                       jnp.linspace(0.0, 1.0, 5), kappa, {"J": np.array([0.5, 0.8, 1.1, 1.4])},
                       observables={"bloch": q.bloch_vectors}, chunk_size=1, progress=False, out=out, **kwargs)


@pytest.fixture(scope="module")
def dimer_parts(tmp_path_factory):
    """Parts 0 and 1 of 2 of a 4-point dimer sweep (chunks of 1), and part 1 of the same sweep at another κ."""
    directory = tmp_path_factory.mktemp("dimer")
    for k in (0, 1):
        _dimer(str(directory / "d.h5"), part=(k, 2))
    _dimer(str(directory / "other.h5"), kappa=0.1, part=(1, 2))
    return directory


def _corrupt_chunk(path, chunk):
    with h5py.File(path, "r") as f:
        dataset = f["outputs/observables/bloch"]
        offset, row = dataset.id.get_offset(), dataset.dtype.itemsize * int(np.prod(dataset.shape[1:]))
    with open(path, "r+b") as handle:
        handle.seek(offset + chunk * row + 8)
        handle.write(b"\x13" * 16)


def _unfinish(path, chunk):
    with h5py.File(path, "r") as f:
        offset = f["chunk_done"].id.get_offset()
    with open(path, "r+b") as handle:
        handle.seek(offset + chunk)
        handle.write(b"\x00")


MERGE_CASES = {
    "a part missing": ((["d.process0of2.h5"], None), r"part 1 of 2 \('.*d\.process1of2\.h5'\) is missing: its chunks 1, 3"),
    "a part of another sweep (other kappa)": (
        (["d.process0of2.h5", "other.process1of2.h5"], None),
        r"part 1 of 2 \('.*other\.process1of2\.h5'\) is not a part of the same sweep as '.*d\.process0of2\.h5': "
        r"kappa differs: 0\.1 here, 0\.5 in the others"),
    "a corrupted chunk": ((["d.process0of2.h5", "d.process1of2.h5"], lambda d: _corrupt_chunk(d / "d.process1of2.h5", 3)),
                          r"d\.process1of2\.h5' is damaged: dataset 'outputs/observables/bloch', chunk 3 \(points 3-3\) "
                          r"does not match its checksum; nothing was merged"),
    "two copies of one part": ((["d.process0of2.h5", "d.process1of2.h5", "copy.h5"],
                                lambda d: shutil.copy(d / "d.process0of2.h5", d / "copy.h5")),
                               r"two copies of part 0 of 2: '.*d\.process0of2\.h5' and '.*copy\.h5'"),
    "an unfinished part": ((["d.process0of2.h5", "d.process1of2.h5"], lambda d: _unfinish(d / "d.process1of2.h5", 3)),
                           r"part 1 of 2 \('.*d\.process1of2\.h5'\) is not finished: chunks 3 are not done; rerun that "
                           r"part \(CLI: --part 1/2\)"),
}


@pytest.mark.parametrize("case", list(MERGE_CASES))
def test_merge_refuses_with_the_reason_and_writes_nothing(case, dimer_parts, tmp_path):
    (names, damage), match = MERGE_CASES[case]
    for name in {"d.process0of2.h5", "d.process1of2.h5", "other.process1of2.h5"}:
        shutil.copy(dimer_parts / name, tmp_path / name)
    if damage is not None:
        damage(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SweepFileError, match=match) as error:
        merge_sweeps([tmp_path / n for n in names], tmp_path / "merged.h5")
    assert "\n" not in str(error.value) and len(str(error.value)) < 400
    _only(tmp_path, *before)  # no merged.h5, no merged.h5.qllg-partial-*


def test_part_arguments_are_checked(tmp_path):
    for part, match in (((2, 2), r"part=\(2, 2\): K must be in 0\.\.1"), ((1, 0), "N must be at least 1"),
                        ("0/2", "a pair"), ((0.5, 2), "pair of integers")):
        with pytest.raises(ValueError, match=match):
            check_part(part)
        with pytest.raises(ValueError, match="part"):
            sweep(run_point, PARAMS, part=part, progress=False)
    with pytest.raises(ValueError, match="not both"):
        sweep(run_point, PARAMS, part=(0, 2), process_index=0, process_count=2, progress=False)
    assert parse_part("3/4") == (3, 4)
    assert parse_part("auto", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1",
                               "SLURM_ARRAY_TASK_STEP": "2"}) == (3, 4)  # --array=1-7:2
    for text, match in (("2/2", "K must be in 0..1"), ("1/0", "N must be at least 1"), ("x", "expected K/N"),
                        ("auto", "SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set")):
        with pytest.raises(ValueError, match=re.escape(match)):
            parse_part(text, {})
    # a part file resumed as another part (renamed), or as the whole sweep: refused, named
    _run(str(tmp_path / "p.h5"), part=(0, 2))
    os.rename(tmp_path / "p.process0of2.h5", tmp_path / "p.process1of2.h5")
    with pytest.raises(SweepFileError, match=r"holds part 0 of 2 of a sweep, not part 1 of 2"):
        _run(str(tmp_path / "p.h5"), part=(1, 2))
    with pytest.raises(SweepFileError, match=r"holds part 0 of 2 of a sweep, not a whole sweep"):
        _run(str(tmp_path / "p.process1of2.h5"))


# ------------------------------------------------------------------------------------------- the CLI


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
chunk_size = 1

[sweep.parameters]
"system.dimer.J" = [0.5, 1.5]
"system.dimer.D.2" = { linspace = [0.0, 0.4, 2] }
"""


def test_cli_parts_auto_status_merge(tmp_path, capsys, monkeypatch):
    config = tmp_path / "dimer.toml"
    config.write_text(CLI_CONFIG)
    for bad in ("2/2", "1/0", "x"):
        with pytest.raises(SystemExit) as exit_:
            main(["sweep", str(config), "--part", bad])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and "argument --part" in err, err
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert main(["sweep", str(config), "--part", "auto", "--quiet"]) == 0
    _only(tmp_path, "dimer.toml", "dimer.process0of2.h5")
    capsys.readouterr()
    assert main(["sweep", str(config), "--merge"]) == 2  # part 1 was never run
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "part 1 of 2" in err and "is missing: its chunks 1, 3" in err, err
    _only(tmp_path, "dimer.toml", "dimer.process0of2.h5")
    assert main(["sweep", str(config), "--status"]) == 0
    out = capsys.readouterr().out
    assert "dimer.h5: 4 points in 4 chunks of 1; not merged, 1 part file(s)" in out
    assert "part 0/2 " in out and ": 2/2 chunks done (2/2 points), 0 failed" in out
    assert "parts not started (no file): 1/2" in out
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert main(["sweep", str(config), "--part", "auto", "--quiet"]) == 0
    other = tmp_path / "other.toml"  # the parts belong to dimer.toml, not to this config
    other.write_text(CLI_CONFIG.replace("kappa = 0.5", "kappa = 0.3"))
    capsys.readouterr()
    assert main(["sweep", str(other), "--merge", "--out", str(tmp_path / "dimer.h5")]) == 2
    assert "holds a sweep of another config than" in capsys.readouterr().err
    assert main(["sweep", str(config), "--merge", "--quiet"]) == 0
    assert main(["sweep", str(config), "--out", str(tmp_path / "single.h5"), "--quiet"]) == 0
    _assert_files_equal_bitwise(tmp_path / "dimer.h5", tmp_path / "single.h5")
    merged = load_sweep(tmp_path / "dimer.h5")  # and the physics: the exact two-level solution (paper eq. 28)
    ts = np.linspace(0.0, 2.0, 11)
    H = q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.5, D=(0.0, 0.0, 0.4))
    expected = q.bloch_vectors(q.two_level_exact(H, q.werner_state("psi+", 0.9), ts, 0.5))
    np.testing.assert_allclose(merged.outputs["observables"]["bloch"][3], expected, atol=1e-10)


# ------------------------------------------------------------------------------------- store messages


def test_truncated_file_and_changed_config_messages(tmp_path):
    """Audit findings: a truncated file was "not an HDF5 file"; a changed config on resume was one 2.3 kB line."""
    out = tmp_path / "t.h5"
    config = {f"key{i}": {"value": i, "label": "x" * 50} for i in range(12)}
    sweep(lambda x: {"v": x * jnp.ones(64)}, {"x": np.arange(8.0)}, chunk_size=2, out=out, config=config,
          progress=False)
    changed = {key: {"value": -1, "label": "y" * 50} for key in config}
    with pytest.raises(SweepFileError, match="holds a different sweep: config differs") as error:
        sweep(lambda x: {"v": x * jnp.ones(64)}, {"x": np.arange(8.0)}, chunk_size=2, out=out, config=changed,
              progress=False)
    message = str(error.value)
    # 24 changed entries: the first three named (values clipped), then "and 21 more"; one short line
    assert "key0.label: stored" in message and "; and 21 more" in message and len(message) < 600, message
    size = os.path.getsize(out)
    os.truncate(out, size // 2)  # e.g. an interrupted copy
    for attempt in (lambda: load_sweep(out),
                    lambda: sweep(lambda x: {"v": x * jnp.ones(64)}, {"x": np.arange(8.0)}, chunk_size=2, out=out,
                                  config=config, progress=False)):
        with pytest.raises(SweepFileError, match=rf"is truncated or damaged: it has {size // 2} of the {size} bytes") as error:
            attempt()
        assert "copy it again" in str(error.value) and "rerun the sweep" in str(error.value)
    assert os.path.getsize(out) == size // 2  # refused, not touched


# ---------------------------------------------------------------- the README's recipes, real processes


def _readme_file(name: str) -> str:
    """The README block fenced as ```LANG file=NAME."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(rf"^```\w+ file={re.escape(name)}\n(.*?)^```[ \t]*$", text, re.M | re.S)
    assert len(blocks) == 1, f"README.md has {len(blocks)} blocks file={name}"
    return blocks[0]


def test_readme_recipes_are_not_no_test_blocks():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Several jobs and hosts") : text.index("## Differentiable q-LLG")]
    assert "no-test" not in section
    assert set(re.findall(r"^```\w+ file=(\S+)", section, re.M)) == {"sweep_array.sh", "sweep_merge.sh",
                                                                    "sweep_hosts.py", "sweep_gpus.sh"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _qllg_on_path(tmp_path, env) -> dict:
    """A `qllg` command on PATH that runs this checkout's CLI (as the installed script does)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "qllg"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m qllg_jax.cli \"$@\"\n")
    shim.chmod(0o755)
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "JAX_PLATFORMS": "cpu"}


def _wait_all(children, what):
    outputs = []
    for child in children:
        try:
            out, err = child.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for c in children:
                c.kill()
            raise AssertionError(f"{what} did not finish within {TIMEOUT} s")
        assert child.returncode == 0, f"{what} failed ({child.returncode}): {err[-3000:]}"
        child.stderr_text = err
        outputs.append(out)
    return outputs


def test_readme_slurm_array_script_then_merge(tmp_path, subprocess_env, monkeypatch):
    """sweep_array.sh as SLURM would run it — every array task a process with its SLURM_ARRAY_* variables —
    then the merge and status commands of sweep_merge.sh: equal bit for bit to one `qllg sweep` run."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "dimer_sweep.toml").write_text(CLI_CONFIG)
    script = _readme_file("sweep_array.sh")
    (work / "sweep_array.sh").write_text(script)
    low, high = map(int, re.search(r"^#SBATCH --array=(\d+)-(\d+)$", script, re.M).groups())
    env = _qllg_on_path(tmp_path, subprocess_env)
    tasks = list(range(low, high + 1))
    for pair in (tasks[i : i + 2] for i in range(0, len(tasks), 2)):  # 2 cores: two tasks at a time
        _wait_all([subprocess.Popen(["bash", "sweep_array.sh"], cwd=work, text=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE,
                                    env={**env, "SLURM_ARRAY_TASK_ID": str(k), "SLURM_ARRAY_TASK_COUNT": str(len(tasks)),
                                         "SLURM_ARRAY_TASK_MIN": str(low)})
                   for k in pair], "an array task")
    assert sorted(p.name for p in work.glob("*.h5")) == [f"dimer_sweep.process{k}of4.h5" for k in range(4)]
    merge = _readme_file("sweep_merge.sh")
    commands = re.findall(r'--wrap "(qllg [^"]+)"', merge) + [line for line in merge.splitlines() if line.startswith("qllg")]
    assert [c.split()[-1] for c in commands] == ["--merge", "--status"]
    monkeypatch.chdir(work)
    for command in commands:  # the merge job and the status command, run by the CLI in this process
        assert main(shlex.split(command)[1:]) == 0, command
    assert main(["sweep", "dimer_sweep.toml", "--out", str(tmp_path / "single.h5"), "--quiet"]) == 0
    _assert_files_equal_bitwise(work / "dimer_sweep.h5", tmp_path / "single.h5")


@pytest.fixture(scope="module")
def hosts_reference(tmp_path_factory):
    """sweep_hosts.py run as one process (jax.distributed.initialize a no-op: process 0 of 1), in this process."""
    directory = tmp_path_factory.mktemp("single")
    code = _readme_file("sweep_hosts.py")
    cwd, argv, initialize = os.getcwd(), sys.argv, jax.distributed.initialize
    try:
        os.chdir(directory)
        sys.argv = ["sweep_hosts.py"]
        jax.distributed.initialize = lambda *args, **kwargs: None
        exec(compile(code, "sweep_hosts.py", "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(cwd)
        sys.argv, jax.distributed.initialize = argv, initialize
    return directory / "dimer_hosts.h5"


def test_readme_jax_distributed_two_processes_then_merge(tmp_path, subprocess_env, hosts_reference):
    """sweep_gpus.sh with 2 CPU processes for its 4 GPUs: two jax.distributed processes on 127.0.0.1 (coordinator
    process 0), each writing its part; read together, merged, equal bit for bit to the single-process run."""
    (tmp_path / "sweep_hosts.py").write_text(_readme_file("sweep_hosts.py"))
    script = _readme_file("sweep_gpus.sh")
    assert "for k in 0 1 2 3; do" in script and " 4 $k &" in script
    (tmp_path / "sweep_gpus.sh").write_text(script.replace("for k in 0 1 2 3; do", "for k in 0 1; do")
                                            .replace(" 4 $k &", " 2 $k &"))
    env = {**subprocess_env, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(["bash", "sweep_gpus.sh"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "process 0 of 2: 8 points done" in done.stdout and "process 1 of 2: 8 points done" in done.stdout
    parts = [tmp_path / f"dimer_hosts.process{k}of2.h5" for k in (0, 1)]
    together = load_sweep(parts)
    assert together.metadata["complete"]
    _assert_files_equal_bitwise(tmp_path / "dimer_hosts.h5", hosts_reference)


SLOW = """
import runpy, sys, time
from qllg_jax.sweeps.store import SweepStore

flush = SweepStore._flush
SweepStore._flush = lambda self: (time.sleep(0.4), flush(self))[1]  # each chunk's commit takes 0.4 s longer
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

COUNT = """
import runpy, sys
from qllg_jax.sweeps.store import SweepStore

commit = SweepStore.commit
def counted(self, chunk, rows):
    print(f"committed chunk {chunk}", file=sys.stderr, flush=True)
    return commit(self, chunk, rows)
SweepStore.commit = counted  # each chunk computed and written in this process is named on stderr
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _done_chunks(path) -> set:
    with h5py.File(path, "r", locking=False) as f:
        return {int(c) for c in np.flatnonzero(f["chunk_done"][()])}


def _committed(path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["chunk_done"][()].sum())
    except (OSError, KeyError):
        return 0


def _wait_until(condition, what):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_killed_distributed_process_rerun_then_merge(tmp_path, subprocess_env, hosts_reference):
    """Kill process 1 of a two-process jax.distributed sweep after its first chunk; process 0 finishes its part
    (then waits at exit for the dead process: killed too); rerunning both with the same command resumes: process
    0 has nothing to do, process 1 computes only its unfinished chunks; the merge equals the single run."""
    (tmp_path / "sweep_hosts.py").write_text(_readme_file("sweep_hosts.py"))
    (tmp_path / "slow.py").write_text(SLOW)
    env = {**subprocess_env, "JAX_PLATFORMS": "cpu"}

    (tmp_path / "count.py").write_text(COUNT)

    def start(k, port, slow):
        shim = "slow.py" if slow else "count.py"
        command = [sys.executable, shim, "sweep_hosts.py", f"127.0.0.1:{port}", "2", str(k)]
        return subprocess.Popen(command, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    parts = [tmp_path / f"dimer_hosts.process{k}of2.h5" for k in (0, 1)]
    port = _free_port()
    children = [start(k, port, slow=True) for k in (0, 1)]
    try:
        _wait_until(lambda: _committed(parts[1]) >= 1 or children[1].poll() is not None, "process 1's first chunk")
        os.kill(children[1].pid, signal.SIGKILL)
        _wait_until(lambda: _committed(parts[0]) == 4 or children[0].poll() is not None, "process 0's part")
        assert _committed(parts[0]) == 4, children[0].communicate()[1][-3000:]
    finally:
        for child in children:
            child.kill()
            child.communicate(timeout=TIMEOUT)
    assert 1 <= _committed(parts[1]) < 4
    with pytest.raises(SweepFileError, match=r"part 1 of 2 .* is not finished: chunks .* rerun that part"):
        merge_sweeps(tmp_path / "dimer_hosts.h5")
    before, done_before = parts[0].read_bytes(), _done_chunks(parts[1])
    port = _free_port()
    rerun = [start(k, port, slow=False) for k in (0, 1)]
    _wait_all(rerun, "the rerun")
    assert parts[0].read_bytes() == before  # process 0 resumed a finished part: nothing written
    # process 1 of 2 owns the global chunks 1, 3, 5, 7 (chunks 1::2 of 8): it computed only those not done
    committed = [{int(c) for c in re.findall(r"committed chunk (\d+)", child.stderr_text)} for child in rerun]
    assert committed[0] == set() and committed[1] == {1, 3, 5, 7} - done_before, (committed, done_before)
    assert merge_sweeps(tmp_path / "dimer_hosts.h5") == str(tmp_path / "dimer_hosts.h5")
    _assert_files_equal_bitwise(tmp_path / "dimer_hosts.h5", hosts_reference)
