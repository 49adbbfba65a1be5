"""The ``qllg`` command line end to end (short windows, tiny systems) in a temporary directory."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import matplotlib
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax import paper
from qllg_jax._output import prepare_output_dir
from qllg_jax.cli import SUBCOMMANDS, build_parser, main
from qllg_jax.cli.reproduce import FIGURES

matplotlib.use("Agg")


def _strict_json(path):
    def reject(token):
        raise ValueError(f"non-standard JSON constant {token} in {path}")

    with open(path) as f:
        return json.load(f, parse_constant=reject)


def _csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def _help(*command):
    parser = build_parser()
    for name in command:
        parser = parser._subparsers._group_actions[0].choices[name]
    return parser.format_help()


def test_help_texts_explain_units_and_carry_no_markup():
    texts = {"qllg": _help(), **{name: _help(name) for name in SUBCOMMANDS}}
    for name, text in texts.items():
        assert not re.search(r"``|:mod:|:func:|:class:|:data:", text), name
    assert all(word in texts["qllg"] for word in ("E0", "hbar/E0", "tesla", "ps", "QLLG_COMPILATION_CACHE"))
    for name in ("reproduce", "run"):
        assert "Units" in texts[name] and "hbar/E0" in texts[name]
    assert "qllg config reference" in texts["run"] and "temperature_K" in texts["run"]
    assert "4 S1.S2" in texts["run"] and "resume" in texts["sweep"]
    assert FIGURES == paper.FIGURES


@pytest.mark.parametrize("argv", [["reproduce", "fig7"], ["run"], ["sweep", "x.toml", "--chunk-size", "abc"], ["bogus"]])
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("qllg") and ": error: " in err and "--help)" in err


def test_reproduce_quick_writes_png_csv_json(tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["reproduce", "fig3", "fig6", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert "wrote 2 figure(s)" in capsys.readouterr().out
    for name in ("fig3", "fig6"):
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        meta = _strict_json(out / f"{name}.json")
        assert meta["figure"] == name and meta["qllg_jax_version"] == q.__version__
        assert meta["written_by"] == "qllg reproduce"
        assert meta["params"]["quick"] is True and meta["params"]["kappa"] == 0.5
        header, data = _csv(out / f"{name}.csv")
        assert header == meta["columns"] and header[0] == "t_hbar_per_E0"  # every CSV header names its unit
        assert meta["units"]["columns"] == {"t_hbar_per_E0": "hbar/E0", **dict.fromkeys(header[1:], "1")}
        assert data.shape == (meta["params"]["n_save"], len(header))
        assert data[-1, 0] == pytest.approx(meta["params"]["t_end"])
    meta3 = _strict_json(out / "fig3.json")
    assert set(meta3["diagnostics"]) == {f"B_D{D:g}" for D in paper.FIG3_D}
    for diagnostics in meta3["diagnostics"].values():
        assert diagnostics["trace_error"] < 1e-9 and diagnostics["purity_drift"] < 1e-6
    header, data = _csv(out / "fig3.csv")
    # B(t) of Ψ+ starts maximally non-local for every D
    np.testing.assert_allclose(data[0, 1:], 1.0, atol=1e-9)
    header6, data6 = _csv(out / "fig6.csv")
    assert {"m_x", "s0.5_Sy", "s1.5_Snorm"} <= set(header6)
    # the same figure again into the same folder: replaced (qllg wrote it); a foreign file there is refused
    (out / "fig1.csv").write_text("my data\n")
    assert main(["reproduce", "fig1", "--quick", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "fig1.csv" in err and "--overwrite" in err
    assert (out / "fig1.csv").read_text() == "my data\n"


def test_output_protection_rule(tmp_path):
    groups = {"run.json": ["run.json", "observables.csv", "observables.png"]}
    assert prepare_output_dir(tmp_path / "new" / "dir", groups, "qllg run", False) == []
    (tmp_path / "observables.csv").write_text("x")
    with pytest.raises(ValueError, match=r"--out: .* already holds observables.csv, not written by qllg run"):
        prepare_output_dir(tmp_path, groups, "qllg run", False)
    assert prepare_output_dir(tmp_path, groups, "qllg run", True) == [tmp_path / "observables.csv"]
    (tmp_path / "run.json").write_text(json.dumps({"written_by": "qllg run"}))
    assert len(prepare_output_dir(tmp_path, groups, "qllg run", False)) == 2
    (tmp_path / "run.json").write_text(json.dumps({"written_by": "someone else"}))
    with pytest.raises(ValueError, match="already holds run.json, observables.csv"):
        prepare_output_dir(tmp_path, groups, "qllg run", False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="--out: .* exists and is not a directory"):
        prepare_output_dir(blocker, groups, "qllg run", False)
    with pytest.raises(ValueError, match="--out: cannot write to"):
        prepare_output_dir(blocker / "sub", groups, "qllg run", False)


CONFIG = """
[system]
dimer = { B = [1.0, 0.0, 0.0], J = -1.0, D = [0.0, 0.0, 0.0] }

[initial_state]
kind = "up_down"

[dynamics]
kappa = 0.5
t_end = 2.0
n_save = 21

[output]
observables = ["purity", "bloch", "energy", "correlation", "bell_nonlocality"]
"""


def test_run_config_end_to_end(tmp_path, capsys):
    path = tmp_path / "dimer.toml"
    path.write_text(CONFIG)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 0
    header, data = _csv(out / "observables.csv")
    assert data.shape == (21, len(header))
    # columns in config order (not alphabetical)
    bloch = [f"bloch_{k}_{a}" for k in (0, 1) for a in "xyz"]
    correlation = [f"correlation_{a}{b}" for a in "xyz" for b in "xyz"]
    assert header == ["t_hbar_per_E0", "purity", *bloch, "energy_E0", *correlation, "bell_nonlocality"]
    columns = dict(zip(header, data.T))
    np.testing.assert_allclose(columns["t_hbar_per_E0"], np.linspace(0, 2, 21), atol=1e-12)
    # |↑↓⟩ at t = 0; q-LLG keeps the state pure and never raises the energy (E(0) = J·T_zz = +1)
    np.testing.assert_allclose([columns[f"bloch_{k}_z"][0] for k in (0, 1)], [1.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(columns["purity"], 1.0, atol=1e-7)
    assert columns["energy_E0"][0] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(columns["energy_E0"]) <= 1e-9)
    meta = _strict_json(out / "run.json")
    assert meta["qllg_jax_version"] == q.__version__ and meta["success"] is True and meta["written_by"] == "qllg run"
    assert meta["config"]["dynamics"]["kappa"] == 0.5 and meta["columns"] == header
    assert meta["units"]["columns"] == {name: {"t_hbar_per_E0": "hbar/E0", "energy_E0": "E0"}.get(name, "1")
                                        for name in header}
    assert meta["diagnostics"]["trace_error"] < 1e-9
    assert (out / "observables.png").read_bytes()[:4] == b"\x89PNG"
    # a second run into the same folder replaces qllg's own files, and says so
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(out), "--no-plot", "--progress"]) == 0
    printed = capsys.readouterr().out
    assert "replacing the earlier qllg run output" in printed
    assert "closed form" in printed  # |↑↓⟩ is pure: the exact eq. 28 path has no time steps to show


def test_run_figure_has_one_labelled_panel_per_observable():
    from qllg_jax.plotting import observables_figure

    ts = np.linspace(0.0, 3.0, 7)
    values = {"bloch": np.zeros((7, 2, 3)), "energy": -np.ones(7), "correlation": np.zeros((7, 3, 3)), "purity": np.ones(7)}
    units = q.Units.from_field(1.0)
    fig = observables_figure(ts, values, units=units)
    axes = fig.axes
    assert len(axes) == 4
    assert all(ax.get_ylabel() for ax in axes) and "meV" in axes[1].get_ylabel()
    assert axes[-1].get_xlabel() == "$t$ (ps)"
    np.testing.assert_allclose(axes[1].lines[0].get_xdata(), ts * q.HBAR_MEV_PS / q.MU_B_MEV_PER_T)
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), -q.MU_B_MEV_PER_T)  # -1 E0 in meV
    assert len(axes[0].get_legend().get_texts()) == 6 and len(axes[2].get_legend().get_texts()) == 9
    styles = {(line.get_color(), line.get_linestyle()) for line in axes[2].lines}
    assert len(styles) == 9  # every correlation component distinguishable
    matplotlib.pyplot.close(fig)


def test_run_physical_units_and_user_errors(tmp_path, capsys):
    path = tmp_path / "phys.toml"
    path.write_text(
        CONFIG.replace("t_end = 2.0", "t_end = 20.0").replace("n_save = 21", "n_save = 3")
        + '\n[units]\nkind = "physical"\nb0_tesla = 1.0\n'
    )
    out = tmp_path / "phys"
    assert main(["run", str(path), "--out", str(out), "--no-plot"]) == 0
    header, data = _csv(out / "observables.csv")
    assert header[:2] == ["t_hbar_per_E0", "t_ps"]
    # ħ/E0 with E0 = μ_B·1 T: t_ps = t · ħ/(μ_B·1 T)
    np.testing.assert_allclose(data[:, 1], data[:, 0] * q.HBAR_MEV_PS / q.MU_B_MEV_PER_T, rtol=1e-12)
    assert data[-1, 1] == pytest.approx(20.0)
    # energies in meV, as in the plot: J = −1 meV on σ1·σ2 and |↑↓⟩ (⟨σ1·σ2⟩ = −1, ⟨σx⟩ = 0) give E(0) = +1 meV
    assert "energy" not in header and "energy_E0" not in header
    assert dict(zip(header, data.T))["energy_meV"][0] == pytest.approx(1.0, abs=1e-9)
    meta = _strict_json(out / "run.json")
    assert meta["units"]["columns"]["energy_meV"] == "meV" and meta["units"]["columns"]["t_ps"] == "ps"
    from qllg_jax.cli.run import ENERGY_OBSERVABLES
    from qllg_jax.plotting import ENERGY_OBSERVABLES as PLOTTED_IN_ENERGY_UNITS

    assert ENERGY_OBSERVABLES == PLOTTED_IN_ENERGY_UNITS  # the CSV converts exactly what the plot draws in meV
    assert not (out / "observables.png").exists()
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    cases = {
        "kappa = 0.5": ("kappa = -1.0", "dynamics.kappa: must be >= 0"),
        '"bell_nonlocality"]': ('"bell_nonlocality", "nonsense"]', "output.observables[5]: unknown value 'nonsense'"),
        "n_save = 21": ("n_save = 21.5", "dynamics.n_save: must be an integer"),
    }
    for old, (new, words) in cases.items():
        bad.write_text(CONFIG.replace(old, new))
        assert main(["run", str(bad), "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert err == f"qllg run: error: {words}" + err[len(f"qllg run: error: {words}"):] and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists()  # nothing written for a bad config
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "observables.csv").write_text("precious\n")
    assert main(["run", str(path), "--out", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qllg run: error: --out: '{tmp_path / 'mine'}' already holds observables.csv") and err.count("\n") == 1
    assert (tmp_path / "mine" / "observables.csv").read_text() == "precious\n"
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_run_failure_exit_3_in_a_real_process(tmp_path, subprocess_env):
    """A real process: max_steps from the config reaches the solver; the failure is reported without a traceback."""
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace("n_save = 21", 'n_save = 21\nmax_steps = 2\nmethod = "dense"'))
    failed = subprocess.run([sys.executable, "-m", "qllg_jax.cli", "run", str(path), "--out", "run", "--no-plot"],
                            env=subprocess_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 3, failed.stderr
    assert failed.stderr.count("\n") == 1 and "max_steps" in failed.stderr and "Traceback" not in failed.stderr
    meta = _strict_json(tmp_path / "run" / "run.json")
    assert meta["success"] is False and "max_steps" in meta["failure"]


def test_config_check_and_reference(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace("kappa = 0.5", "kappa = 0.5\nmax_step = 2"))
    assert main(["config", "check", str(path)]) == 2
    assert capsys.readouterr().err == "qllg config: error: dynamics.max_step: unknown key; did you mean 'max_steps'?\n"
    path.write_text(CONFIG)
    assert main(["config", "check", str(path)]) == 0
    assert "valid config (D = 4, 21 save times)" in capsys.readouterr().out
    path.write_text(SWEEP_CONFIG)
    assert main(["config", "check", str(path)]) == 0
    assert "valid sweep config (4 points, D = 4)" in capsys.readouterr().out
    assert main(["config", "reference"]) == 0
    assert capsys.readouterr().out == q.config.reference() + "\n"


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
observables = ["bloch", "bell_nonlocality", "energy"]

[sweep]
chunk_size = 2

[sweep.parameters]
"system.dimer.J" = [0.5, 1.5]
"system.dimer.D.2" = { linspace = [0.0, 0.4, 2] }
"""


def test_sweep_end_to_end(tmp_path, capsys):
    config = tmp_path / "dimer.toml"
    config.write_text(SWEEP_CONFIG)
    assert main(["sweep", str(config), "--quiet"]) == 0  # default output: the config's name with .h5
    loaded = q.load_sweep(tmp_path / "dimer.h5")
    assert loaded.success.all()
    np.testing.assert_array_equal(loaded.params["system.dimer.J"], [0.5, 0.5, 1.5, 1.5])  # grid: first key slowest
    np.testing.assert_array_equal(loaded.params["system.dimer.D.2"], [0.0, 0.4, 0.0, 0.4])
    ts = np.linspace(0.0, 2.0, 11)
    rho0 = q.werner_state("psi+", 0.9)
    for i, (J, D) in enumerate([(0.5, 0.0), (0.5, 0.4), (1.5, 0.0), (1.5, 0.4)]):
        H = q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=J, D=(0.0, 0.0, D))
        states = q.two_level_exact(H, rho0, ts, 0.5)  # the closed form, independent of the sweep's method
        np.testing.assert_allclose(loaded.outputs["observables"]["bloch"][i], q.bloch_vectors(states), atol=1e-10)
        energy = np.real(np.einsum("tij,ji->t", np.asarray(states), np.asarray(H)))
        np.testing.assert_allclose(loaded.outputs["invariants"]["energy"][i], energy, atol=1e-10)
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text(SWEEP_CONFIG.replace("chunk_size = 2", "chunk_size = true"))
    assert main(["sweep", str(bad), "--quiet"]) == 2
    assert capsys.readouterr().err == "qllg sweep: error: sweep.chunk_size: must be an integer, got True (bool)\n"
    assert main(["sweep", str(config), "--quiet", "--out", str(tmp_path / "no" / "such" / "dir.h5")]) == 2
    assert "--out: the directory" in capsys.readouterr().err


def test_sweep_ctrl_c_exits_130_and_says_how_to_resume(tmp_path, subprocess_env):
    config = tmp_path / "long.toml"
    config.write_text(SWEEP_CONFIG.replace('[0.5, 1.5]', '{ linspace = [0.5, 1.5, 1000] }').replace("chunk_size = 2", "chunk_size = 8"))
    process = subprocess.Popen([sys.executable, "-m", "qllg_jax.cli", "sweep", str(config)], env=subprocess_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, deadline = "", time.monotonic() + 240
    while "sweep:" not in seen and time.monotonic() < deadline:  # wait for the progress bar
        seen += os.read(process.stderr.fileno(), 4096).decode()
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    err = seen + err
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.rstrip().splitlines()[-1] == (f"qllg sweep: interrupted; finished chunks are saved in {tmp_path / 'long.h5'}; "
                                            "rerun the same command to resume")
    assert out.startswith("qllg sweep: building the sweep points")
