"""The ``qllg`` command line end to end on short windows (``--quick``) in a temporary directory."""

import csv
import json

import numpy as np
import pytest

import qllg_jax as q
from qllg_jax import paper
from qllg_jax.cli import build_parser, main


def _strict_json(path):
    def reject(token):
        raise ValueError(f"non-standard JSON constant {token} in {path}")

    with open(path) as f:
        return json.load(f, parse_constant=reject)


def _csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def test_help_explains_units(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "E0" in text and "hbar/E0" in text and "tesla" in text and "ps" in text
    for command in ("reproduce", "run"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "Units" in text and "hbar/E0" in text


def test_reproduce_quick_writes_png_csv_json(tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["reproduce", "fig3", "fig6", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert "wrote 2 figure(s)" in capsys.readouterr().out
    for name in ("fig3", "fig6"):
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        meta = _strict_json(out / f"{name}.json")
        assert meta["figure"] == name and meta["qllg_jax_version"] == q.__version__
        assert meta["params"]["quick"] is True and meta["params"]["kappa"] == 0.5
        header, data = _csv(out / f"{name}.csv")
        assert header == meta["columns"] and header[0] == "t"
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


def test_reproduce_rejects_unknown_figure(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "fig7", "--quick"])
    assert "invalid choice" in capsys.readouterr().err


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
observables = ["bloch", "correlation", "bell_nonlocality", "energy", "purity"]
"""


def test_run_config_end_to_end(tmp_path, capsys):
    path = tmp_path / "dimer.toml"
    path.write_text(CONFIG)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 0
    header, data = _csv(out / "observables.csv")
    assert header[0] == "t" and data.shape == (21, len(header))
    columns = dict(zip(header, data.T))
    for name in ("bloch_0_x", "bloch_1_z", "correlation_xy", "bell_nonlocality", "energy", "purity"):
        assert name in columns
    np.testing.assert_allclose(columns["t"], np.linspace(0, 2, 21), atol=1e-12)
    # |↑↓⟩ at t = 0; q-LLG keeps the state pure and never raises the energy (E(0) = J·T_zz = +1)
    np.testing.assert_allclose([columns[f"bloch_{k}_z"][0] for k in (0, 1)], [1.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(columns["purity"], 1.0, atol=1e-7)
    assert columns["energy"][0] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(columns["energy"]) <= 1e-9)
    meta = _strict_json(out / "run.json")
    assert meta["qllg_jax_version"] == q.__version__ and meta["success"] is True
    assert meta["config"]["dynamics"]["kappa"] == 0.5 and meta["columns"] == header
    assert meta["diagnostics"]["trace_error"] < 1e-9
    assert (out / "observables.png").read_bytes()[:4] == b"\x89PNG"


def test_run_physical_units_and_errors_name_the_key(tmp_path):
    path = tmp_path / "phys.toml"
    path.write_text(
        CONFIG.replace("t_end = 2.0", "t_end = 20.0").replace("n_save = 21", "n_save = 3")
        + '\n[units]\nkind = "physical"\nb0_tesla = 1.0\n'
    )
    out = tmp_path / "phys"
    assert main(["run", str(path), "--out", str(out), "--no-plot"]) == 0
    header, data = _csv(out / "observables.csv")
    assert header[:2] == ["t", "t_ps"]
    # ħ/E0 with E0 = μ_B·1 T: t_ps = t · ħ/(μ_B·1 T), from the CODATA constants
    np.testing.assert_allclose(data[:, 1], data[:, 0] * q.HBAR_MEV_PS / q.MU_B_MEV_PER_T, rtol=1e-12)
    assert data[-1, 1] == pytest.approx(20.0)
    assert not (out / "observables.png").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.replace("kappa = 0.5", "kappa = -1.0"))
    with pytest.raises(ValueError, match="dynamics.kappa"):
        main(["run", str(bad), "--out", str(tmp_path / "bad")])
    bad.write_text(CONFIG.replace('"purity"]', '"purity", "nonsense"]'))
    with pytest.raises(ValueError, match=r"output.observables\[5\]"):
        main(["run", str(bad), "--out", str(tmp_path / "bad")])


def test_parser_has_all_subcommands():
    text = build_parser().format_help()
    for command in ("reproduce", "run", "sweep"):
        assert command in text
