"""Ctrl-C (SIGINT) at any moment of a ``qllg`` command, sent to a real process: during the imports, during a
compilation, between chunks of a sweep, and after the work is done. While work is under way it ends with one line
on stderr and exit status 130 (a sweep then resumes); once the work is done it changes nothing (exit status 0)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import qllg_jax as q

RUN_CONFIG = """
[system]
dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.3] }
[initial_state]
kind = "random"
seed = 3
[dynamics]
kappa = 0.5
t_end = 2.0
n_save = 5
method = "dense"
[output]
observables = ["energy"]
"""

SWEEP_CONFIG = """
[system]
dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.0] }
[initial_state]
kind = "werner"
name = "psi+"
p = 0.9
[dynamics]
kappa = 0.5
t_end = 2.0
n_save = 11
[output]
observables = ["bell_nonlocality"]
[sweep]
chunk_size = 8
[sweep.parameters]
"system.dimer.J" = { linspace = [0.5, 1.5, POINTS] }
"""


def _start(args, env, **kwargs):
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def _wait_for(process, text: str) -> str:
    """Read stdout lines until one contains ``text`` (the process is then at a known point of its work)."""
    seen = ""
    while text not in seen:
        line = process.stdout.readline()
        assert line, f"the process ended before printing {text!r}: {process.communicate(timeout=60)}"
        seen += line
    return seen


def _interrupt(process) -> tuple[str, str]:
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return out, err


@pytest.fixture
def uncached_env(subprocess_env):
    """Compile for real (an empty cache could still be warm from an earlier test): the interrupt must land in it."""
    return {**subprocess_env, "QLLG_COMPILATION_CACHE": "off"}


@pytest.mark.parametrize("moment", ["imports", "compile"])
def test_run_interrupted_during_imports_or_compile_exits_130_with_one_line(moment, tmp_path, uncached_env):
    """`qllg run` prints its first line before importing JAX (a second or more): a SIGINT right after it lands in
    the imports; one right after "solving" lands in the compilation of the dense integrator (seconds)."""
    config = tmp_path / "run.toml"
    config.write_text(RUN_CONFIG)
    process = _start(["-m", "qllg_jax.cli", "run", str(config), "--out", str(tmp_path / "out"), "--no-plot"],
                     uncached_env)
    _wait_for(process, "->" if moment == "imports" else "solving")
    out, err = _interrupt(process)
    assert process.returncode == 130, err
    assert err.splitlines() == ["qllg run: interrupted; nothing was written"], err
    assert not (tmp_path / "out" / "observables.csv").exists()


def test_sweep_interrupted_between_chunks_exits_130_then_resumes(tmp_path, subprocess_env):
    """A SIGINT while chunks are computed and written: 130 and one line (after the progress bar); the same command
    then finishes the sweep (exit 0) with every point done."""
    config = tmp_path / "long.toml"
    config.write_text(SWEEP_CONFIG.replace("POINTS", "4000"))
    out = tmp_path / "long.h5"
    command = ["-m", "qllg_jax.cli", "sweep", str(config), "--out", str(out)]
    process = _start(command, subprocess_env)
    seen = ""
    while "pt/s" not in seen:  # the progress bar moves: chunks are being computed and written
        chunk = os.read(process.stderr.fileno(), 4096).decode()
        assert chunk, process.communicate(timeout=60)
        seen += chunk
    _, err = _interrupt(process)
    err = seen + err
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.rstrip().splitlines()[-1].endswith(f"qllg sweep: interrupted; finished chunks are saved in {out}; "
                                                  "rerun the same command to resume")
    resumed = subprocess.run([sys.executable, *command, "--quiet"], env=subprocess_env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = q.load_sweep(out)
    assert result.metadata["complete"] and result.success.all() and result.n_points == 4000


def test_sigint_after_a_finished_sweep_changes_nothing(tmp_path, subprocess_env):
    """The script runs the sweep as the `qllg` program, says so, then lingers like a slow interpreter teardown: a
    SIGINT then must neither print a traceback nor change the exit status 0."""
    config = tmp_path / "small.toml"
    config.write_text(SWEEP_CONFIG.replace("POINTS", "16"))
    script = textwrap.dedent(f"""
        import sys, time
        sys.argv = ["qllg", "sweep", {str(config)!r}, "--out", {str(tmp_path / "small.h5")!r}, "--quiet"]
        from qllg_jax.cli import main
        code = main()
        print("returned", code, flush=True)
        time.sleep(1.0)
        sys.exit(code)
    """)
    process = _start(["-c", script], subprocess_env)
    _wait_for(process, "returned 0")
    _, err = _interrupt(process)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "interrupted" not in err, err
