"""``[[drive]]`` config tables: validation errors name ``drive[k].key``; the config's H(t) equals the same H
written with the API and with the physical constants by hand; ``qllg run`` writes the drive field columns and
panel and the response matches an independent SciPy integration; sweeps over drive keys (resonance curve,
resume refused when the drive changed) and ``sweep_solve`` with driven H(point)."""

import csv
import json
import re

import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from scipy import constants as si

import qllg_jax as q
from driven_reference import reference_solve
from qllg_jax.cli import main
from qllg_jax.config import ConfigError, build_system, reference, tomllib
from qllg_jax.config import schema
from qllg_jax.config.drives import DRIVE, drive_field

matplotlib.use("Agg")

SX = np.array([[0, 1], [1, 0]], dtype=complex) / 2
SY = np.array([[0, -1j], [1j, 0]], dtype=complex) / 2
SZ = np.array([[1, 0], [0, -1]], dtype=complex) / 2

# one spin-1/2 in B0 = 1 T along z, at rest (m = +1/2 is the ground state of H0 = -g mu_B B0 S_z), hit by a
# Gaussian wave packet along x
SPIN_AT_REST = """
[units]
kind = "physical"
b0_tesla = 1.0
[system]
spins = [0.5]
field = [0.0, 0.0, 1.0]
[initial_state]
kind = "basis"
m = [0.5]
"""
"""One spin-1/2 in 1 T along z, in the ground state of H0 (physical units)."""
PHYSICAL = SPIN_AT_REST + """[dynamics]
kappa = 0.1
t_end = 40.0
n_save = 9
[output]
observables = ["bloch"]
[[drive]]
shape = "gaussian"
direction = [2.0, 0.0, 0.0]
amplitude_T = 0.3
centre_ps = 20.0
width_ps = 5.0
frequency_GHz = 28.0
phase = 0.4
"""

E0_CONFIG = """
[system]
chain = 2
field = [0.0, 0.0, 1.0]
exchange = 0.5
[initial_state]
kind = "up_down"
[dynamics]
kappa = 0.2
t_end = 4.0
n_save = 5
[output]
observables = ["bloch"]
[[drive]]
shape = "rectangular"
direction = [0.0, 1.0, 0.0]
amplitude = 0.7
start = 0.5
stop = 2.5
rise = 0.2
sites = [1]
[[drive]]
shape = "rotating"
amplitude = 0.3
frequency = -1.0
phase = 0.5
axis = [0.0, 0.0, 1.0]
centre = 2.0
width = 0.8
"""


# ------------------------------------------------------------------------------------------------- validation

# (name): (config, {(drive index, key): new value or None to delete}, message start, words)
BAD = {
    "negative width": (PHYSICAL, {(0, "width_ps"): -1.0}, r"drive\[0\]\.width_ps", "must be > 0"),
    "width in E0 units in a physical config": (PHYSICAL, {(0, "width_ps"): None, (0, "width"): 1.0},
                                               r"drive\[0\]\.width", r'kind = "physical" give drive\[0\]\.width_ps'),
    "ps in an E0 config": (E0_CONFIG, {(1, "width"): None, (1, "width_ps"): 3.0}, r"drive\[1\]\.width_ps",
                           r'needs \[units\] kind = "physical"; in E0 units give drive\[1\]\.width'),
    "no shape": (PHYSICAL, {(0, "shape"): None}, r"drive\[0\]\.shape", "required"),
    "shape typo": (PHYSICAL, {(0, "shape"): "gausian"}, r"drive\[0\]\.shape", "did you mean 'gaussian'"),
    "no direction": (PHYSICAL, {(0, "direction"): None}, r"drive\[0\]\.direction", "required for shape = 'gaussian'"),
    "zero direction": (PHYSICAL, {(0, "direction"): [0, 0, 0]}, r"drive\[0\]\.direction", "non-zero"),
    "rate on a gaussian": (PHYSICAL, {(0, "rate_GHz_per_ps"): 1.0}, r"drive\[0\]\.rate_GHz_per_ps",
                           "does not apply to drive\\[0\\]\\.shape = 'gaussian'"),
    "no amplitude": (PHYSICAL, {(0, "amplitude_T"): None}, r"drive\[0\]\.amplitude_T", "required"),
    "no centre": (PHYSICAL, {(0, "centre_ps"): None}, r"drive\[0\]\.centre_ps", "required for shape = 'gaussian'"),
    "key typo": (PHYSICAL, {(0, "sigma"): 1.0}, r"drive\[0\]\.sigma", "use width"),
    "site out of range": (E0_CONFIG, {(0, "sites"): [2]}, r"drive\[0\]\.sites", "site 2 does not exist"),
    "stop before start": (E0_CONFIG, {(0, "stop"): 0.1}, r"drive\[0\]\.stop", "must be > drive\\[0\\]\\.start"),
    "envelope half given": (E0_CONFIG, {(1, "width"): None}, r"drive\[1\]\.width", "required with drive\\[1\\]\\.centre"),
    "two envelopes": (E0_CONFIG, {(1, "start"): 0.0, (1, "stop"): 1.0}, r"drive\[1\]\.start", "one envelope"),
    "direction on rotating": (E0_CONFIG, {(1, "direction"): [1, 0, 0]}, r"drive\[1\]\.direction",
                              "does not apply to drive\\[1\\]\\.shape = 'rotating'"),
    "amplitude as text": (E0_CONFIG, {(0, "amplitude"): "0.7"}, r"drive\[0\]\.amplitude", "must be a number"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_drive_is_one_line_naming_table_index_and_key(case):
    text, edits, key, words = BAD[case]
    with pytest.raises(ConfigError) as info:
        build_system(_edited(text, edits))
    message = str(info.value)
    assert re.match(rf"{key}(?![\w.])", message), message
    assert re.search(words, message), message
    assert "\n" not in message


def _edited(text, edits):
    table = tomllib.loads(text)
    for (k, key), value in edits.items():
        if value is None:
            table["drive"][k].pop(key)
        else:
            table["drive"][k][key] = value
    return table


def test_a_single_drive_table_is_refused():
    table = tomllib.loads(E0_CONFIG.split("[[drive]]")[0] + "[drive]\nshape = 'cosine'\n")
    with pytest.raises(ConfigError, match=r"^drive: must be an array of tables, one \[\[drive\]\]"):
        build_system(table)


def test_reference_documents_every_drive_key_with_unit():
    text = reference()
    section = text[text.index("[[drive]]"):]
    for key in DRIVE.keys:
        assert re.search(rf"^  {re.escape(key)} +.*(default|required|optional)", section, re.M), key
    assert re.search(r"^  amplitude_T .*unit T", section, re.M)
    assert re.search(r"^  width_ps .*number > 0.*unit ps", section, re.M)
    assert re.search(r"^  frequency_GHz .*unit GHz", section, re.M)
    assert re.search(r"^  frequency .*unit E0/hbar", section, re.M)
    assert re.search(r"^  phase .*default 0.0; unit rad", section, re.M)
    assert schema.TABLE_ARRAYS["drive"] is DRIVE and '"drive.0.frequency_GHz"' in text


# ---------------------------------------------------------------------------------------- config → H(t)

TIMES = np.array([0.0, 0.37, 1.1, 1.76, 2.4, 3.3])
TIME_PS = si.hbar / (si.physical_constants["Bohr magneton"][0] * 1.0) * 1e12
"""hbar/E0 in ps for E0 = mu_B * 1 T, from the SI constants directly (not through Units)."""


def physical_by_hand(t):
    """H(t) of PHYSICAL in E0: -g mu_B (B0 S_z + B1(t) S_x)/E0 with g = 2, B0 = 1 T = E0/mu_B."""
    t_ps = t * TIME_PS
    b1 = 0.3 * np.exp(-((t_ps - 20.0) ** 2) / (2 * 5.0**2)) * np.cos(2 * np.pi * 28e-3 * t_ps + 0.4)
    return -2.0 * (1.0 * SZ + b1 * SX)


def test_physical_config_H_equals_the_api_and_the_constants_by_hand():
    system = build_system(tomllib.loads(PHYSICAL))
    u = q.Units.from_field(1.0)
    pulse = q.pulses.gaussian(1.0, 20.0, 5.0, units=u) * q.pulses.cosine(1.0, 28.0, 0.4, units=u)
    by_api = q.spin_model((0.5,), field=u.field(np.array([0.0, 0.0, 1.0]))) + q.pulses.field_drive(
        (0.5,), pulse, [0.3, 0.0, 0.0], units=u)
    for t in TIMES * 4:  # t up to 13 hbar/E0 = 150 ps: across the pulse
        np.testing.assert_allclose(np.asarray(system.H(t)), np.asarray(by_api(t)), atol=1e-14)
        # CODATA edition of scipy vs Units' constants (same scipy): equal to round-off
        np.testing.assert_allclose(np.asarray(system.H(t)), physical_by_hand(t), atol=1e-12)


def test_e0_config_H_equals_the_api():
    system = build_system(tomllib.loads(E0_CONFIG))
    H0 = q.spin_model((0.5, 0.5), field=[0.0, 0.0, 1.0], bonds=[(0, 1)], exchange=0.5)
    by_api = (H0 + q.pulses.field_drive((0.5, 0.5), q.pulses.rectangular(0.7, 0.5, 2.5, rise=0.2), [0, 1, 0], sites=[1])
              + q.pulses.rotating_field((0.5, 0.5), 0.3, -1.0, phase=0.5, envelope=q.pulses.gaussian(1.0, 2.0, 0.8)))
    for t in TIMES:
        np.testing.assert_allclose(np.asarray(system.H(t)), np.asarray(by_api(t)), atol=1e-14)
    # the drive field of the config: b_1(t) = 0.7 f_rect(t) y + rotating part, b_0(t) = rotating part only
    rect = 0.7 * 0.5 * (np.tanh((TIMES - 0.5) / 0.2) - np.tanh((TIMES - 2.5) / 0.2))
    envelope = 0.3 * np.exp(-((TIMES - 2.0) ** 2) / (2 * 0.8**2))
    rotating = np.stack([envelope * np.cos(-TIMES + 0.5), envelope * np.sin(-TIMES + 0.5), 0 * TIMES], axis=-1)
    field = drive_field(system.H, TIMES)
    np.testing.assert_allclose(field[:, 0], rotating, atol=1e-14)
    np.testing.assert_allclose(field[:, 1], rotating + rect[:, None] * [0, 1, 0], atol=1e-14)


# ---------------------------------------------------------------------------------------------- qllg run


def _csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def test_run_writes_drive_columns_panel_and_metadata_and_matches_scipy(tmp_path):
    path = tmp_path / "pulse.toml"
    path.write_text(PHYSICAL)
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out)]) == 0
    header, data = _csv(out / "observables.csv")
    assert header == ["t_hbar_per_E0", "t_ps", "bloch_0_x", "bloch_0_y", "bloch_0_z", "b_0_x_T", "b_0_y_T", "b_0_z_T"]
    columns = dict(zip(header, data.T))
    t_ps = columns["t_ps"]
    b1 = 0.3 * np.exp(-((t_ps - 20.0) ** 2) / (2 * 5.0**2)) * np.cos(2 * np.pi * 28e-3 * t_ps + 0.4)
    np.testing.assert_allclose(columns["b_0_x_T"], b1, atol=1e-15)  # direction [2, 0, 0] normalised
    assert np.all(columns["b_0_y_T"] == 0.0) and np.all(columns["b_0_z_T"] == 0.0)
    meta = json.loads((out / "run.json").read_text())
    assert meta["units"]["columns"]["b_0_x_T"] == "T" and meta["columns"] == header
    drive = meta["drives"][0]
    assert drive["table"]["shape"] == "gaussian" and drive["table"]["frequency_GHz"] == 28.0
    u = q.Units.from_field(1.0)
    assert drive["solver_units"]["frequency"] == pytest.approx(u.frequency(28.0), rel=1e-14)
    assert drive["solver_units"]["amplitude"] == pytest.approx(u.field(0.3), rel=1e-14)
    assert (out / "observables.png").read_bytes()[:4] == b"\x89PNG"
    # the response: an independent SciPy integration of q-LLG under H(t) written with the SI constants
    rho = reference_solve(physical_by_hand, np.array([1.0, 0.0]), columns["t_hbar_per_E0"], 0.1, max_step=0.05)
    bloch = np.stack([np.real(np.einsum("tij,ji->t", rho, 2 * S)) for S in (SX, SY, SZ)], axis=-1)
    assert np.ptp(bloch[:, 0]) > 0.05  # the pulse does tip the spin
    # config rtol 1e-8 over ~10^2 steps: global error <~ 1e-6 on O(1) components; the reference is ~1e-10
    np.testing.assert_allclose(np.stack([columns[f"bloch_0_{a}"] for a in "xyz"], axis=-1), bloch, atol=1e-6)


def test_run_figure_draws_the_drive_under_the_response():
    from qllg_jax.plotting import observables_figure

    ts = np.linspace(0.0, 3.0, 7)
    fine = np.linspace(0.0, 3.0, 301)
    field = np.zeros((301, 2, 3))
    field[:, 1, 0] = np.cos(5 * fine)
    units = q.Units.from_field(1.0)
    fig = observables_figure(ts, {"bloch": np.zeros((7, 2, 3))}, units=units, drive=(fine, field))
    assert len(fig.axes) == 2
    drive_axis = fig.axes[-1]
    assert "drive" in drive_axis.get_ylabel() and "(T)" in drive_axis.get_ylabel()
    line = [ln for ln in drive_axis.lines if ln.get_label() == "x, site 1"][0]
    np.testing.assert_allclose(line.get_xdata(), units.time_to_ps(fine))
    np.testing.assert_allclose(line.get_ydata(), np.cos(5 * fine))
    matplotlib.pyplot.close(fig)


# ------------------------------------------------------------------------------------------------- sweeps

RESONANCE = SPIN_AT_REST + """[dynamics]
kappa = 0.05
t_end = 400.0
n_save = 81
rtol = 1e-6
atol = 1e-8
[output]
observables = ["bloch"]
[[drive]]
shape = "cosine"
direction = [1.0, 0.0, 0.0]
amplitude_T = 0.005
frequency_GHz = 28.0
[sweep]
[sweep.parameters]
"drive.0.frequency_GHz" = { linspace = [20.0, 36.0, 5] }
"""


def test_resonance_sweep_peaks_at_the_larmor_frequency_and_resumes_only_unchanged(tmp_path, capsys):
    config = tmp_path / "resonance.toml"
    config.write_text(RESONANCE)
    assert main(["sweep", str(config), "--quiet"]) == 0
    loaded = q.load_sweep(tmp_path / "resonance.h5")
    assert loaded.success.all()
    nu = loaded.params["drive.0.frequency_GHz"]
    bloch = np.asarray(loaded.outputs["observables"]["bloch"])[:, :, 0]  # (P, T, 3)
    # steady precession amplitude after the transient (relaxation time 1/(alpha omega_L) ~ 110 ps < 200 ps)
    amplitude = np.max(np.hypot(bloch[:, 40:, 0], bloch[:, 40:, 1]), axis=1)
    larmor = 2.0 * si.physical_constants["Bohr magneton"][0] * 1.0 / si.h / 1e9  # g mu_B B / h, GHz
    assert abs(nu[np.argmax(amplitude)] - larmor) <= (nu[1] - nu[0]) / 2
    assert amplitude.max() > 2 * np.delete(amplitude, np.argmax(amplitude)).max()  # a resolved peak
    # the same config resumes (nothing left to compute); a changed drive is refused before any compute
    assert main(["sweep", str(config), "--quiet"]) == 0
    capsys.readouterr()
    config.write_text(RESONANCE.replace("amplitude_T = 0.005", "amplitude_T = 0.006"))
    assert main(["sweep", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "drive" in err and "differs" in err and err.count("\n") == 1, err


def test_sweep_keys_of_drives_are_checked_and_build_the_point_drive():
    from qllg_jax.config.sweep import build_sweep

    table = tomllib.loads(RESONANCE.replace('"drive.0.frequency_GHz" = { linspace = [20.0, 36.0, 5] }',
                                            '"drive.0.frequency_GHz" = [20.0, 30.0]\n"drive.0.amplitude_T" = [0.1, 0.2]'))
    problem = build_sweep(table)
    point = {k: v[3] for k, v in problem.params.items()}  # 30 GHz, 0.2 T
    system = build_system(tomllib.loads(RESONANCE.split("[sweep]")[0].replace("amplitude_T = 0.005", "amplitude_T = 0.2")
                                        .replace("frequency_GHz = 28.0", "frequency_GHz = 30.0")))
    for t in TIMES:
        np.testing.assert_allclose(np.asarray(problem.H(**point)(t)), np.asarray(system.H(t)), atol=1e-14)
    for bad, words in (('"drive.1.amplitude_T" = [0.1]', r"drive has 1 table\(s\)"),
                       ('"drive.0.rate_GHz_per_ps" = [1.0]', r"does not apply to drive\[0\]\.shape = 'cosine'"),
                       ('"drive.0.frequency" = [1.0]', r'give drive\[0\]\.frequency_GHz'),
                       ('"drive.0.shape" = [1.0]', "cannot be swept")):
        text = RESONANCE.replace('"drive.0.frequency_GHz" = { linspace = [20.0, 36.0, 5] }', bad)
        with pytest.raises(ConfigError, match=words):
            build_sweep(tomllib.loads(text))


def test_fingerprint_covers_drive_code_and_captured_values():
    from qllg_jax.sweeps.fingerprint import describe_drive

    H1 = q.spin_model((0.5,), field=[1.0, 0.0, 0.0])
    w = 2.0
    first = describe_drive(q.modulated(lambda t: jnp.cos(w * t), H1))
    assert describe_drive(q.modulated(lambda t: jnp.cos(w * t), H1)) == first  # the same code: the same digest
    w = 2.5  # a captured Python number is part of the code (a literal of its jaxpr)
    assert describe_drive(q.modulated(lambda t: jnp.cos(w * t), H1)) != first
    cos, sin = q.pulses.cosine(1.0, 2.0), q.pulses.sine(1.0, 2.0)  # equal leaves, another static carrier
    assert describe_drive(cos * H1) != describe_drive(sin * H1)


def test_sweep_solve_with_driven_H_of_the_point_equals_single_solves_and_refuses_a_changed_drive(tmp_path):
    H0 = q.spin_model((0.5,), field=[0.0, 0.0, 2.0])
    H1 = q.spin_model((0.5,), field=[1.0, 0.0, 0.0])
    rho0 = np.diag([1.0, 0.0]).astype(complex)
    ts = np.linspace(0.0, 3.0, 4)
    options = {"method": "dense", "rtol": 1e-9, "atol": 1e-11}
    params = {"a": np.array([0.2, 0.5, 0.8]), "sigma": np.array([0.35, 0.5, 0.7])}

    def make_H(phase):
        def H(a, sigma):  # the pulse's amplitude and width are the point's (leaves); phase is captured
            return H0 + q.pulses.gaussian(a, 1.5, sigma) * q.pulses.cosine(1.0, 2.0, phase) * H1

        return H

    H = make_H(0.3)

    out = tmp_path / "driven.h5"
    result = q.sweep_solve(H, rho0, ts, 0.3, params, observables={"sx": 2 * SX}, solve_options=options, out=out,
                           progress=False)
    assert result.success.all()
    for i, (a, sigma) in enumerate(zip(params["a"], params["sigma"])):
        def numpy_H(t, a=a, sigma=sigma):
            return -2.0 * SZ - a * np.exp(-((t - 1.5) ** 2) / (2 * sigma**2)) * np.cos(2.0 * t + 0.3) * SX

        rho = reference_solve(numpy_H, rho0, ts, 0.3, max_step=0.02)
        # rtol 1e-9 over ~10^2 steps: <~ 1e-7 on O(1) entries; the reference is ~1e-10
        np.testing.assert_allclose(np.asarray(result.outputs["observables"]["sx"][i]),
                                   np.real(np.einsum("tij,ji->t", rho, 2 * SX)), atol=1e-7)
    # unchanged: resumes from the file (nothing to compute); a changed captured value: refused, naming H
    again = q.sweep_solve(H, rho0, ts, 0.3, params, observables={"sx": 2 * SX}, solve_options=options, out=out,
                          progress=False)
    np.testing.assert_array_equal(again.outputs["observables"]["sx"], result.outputs["observables"]["sx"])
    with pytest.raises(ValueError, match=r"H\(point\) differs at point 0"):  # as a rerun script with a new value
        q.sweep_solve(make_H(0.31), rho0, ts, 0.3, params, observables={"sx": 2 * SX}, solve_options=options, out=out,
                      progress=False)


def test_a_swept_thermal_state_is_the_gibbs_state_of_the_static_H0_not_of_the_drive():
    from qllg_jax.config.sweep import build_sweep
    from qllg_jax.units import BOLTZMANN_MEV_PER_K

    text = RESONANCE.replace('kind = "basis"\nm = [0.5]', 'kind = "thermal"\ntemperature_K = 1.0').replace(
        '"drive.0.frequency_GHz" = { linspace = [20.0, 36.0, 5] }',
        '"drive.0.frequency_GHz" = [20.0, 30.0]\n"system.field.2" = [1.0, 2.0]')
    problem = build_sweep(tomllib.loads(text))
    point = {k: v[3] for k, v in problem.params.items()}  # 30 GHz, B_z = 2 T
    u = q.Units.from_field(1.0)
    beta = u.energy_meV / (BOLTZMANN_MEV_PER_K * 1.0)  # 1/(k_B T) in 1/E0
    b = 2.0 * si.physical_constants["Bohr magneton"][0] * 2.0 / (si.physical_constants["Bohr magneton"][0] * 1.0)
    populations = np.exp(beta * b * np.array([0.5, -0.5]))  # H0 = -b S_z, b = g mu_B B / E0
    np.testing.assert_allclose(np.asarray(problem.rho0(**point)), np.diag(populations / populations.sum()), atol=1e-14)
    assert q.drives.is_driven(problem.H(**point))
