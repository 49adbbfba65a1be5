"""Config files: the schema's errors name the key, the reference covers every key, sweep configs are built
vectorised and give the same H, ϱ0, κ per point as independent constructions."""

import re

import jax
import numpy as np
import pytest
import scipy.linalg

import qllg_jax as q
from qllg_jax.config import ConfigError, build_system, reference, tomllib, with_overrides
from qllg_jax.config import schema, sweep as sweep_config
from qllg_jax.config.sweep import build_sweep

BASE = """
[system]
dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6] }
[initial_state]
kind = "up_down"
[dynamics]
kappa = 0.5
t_end = 2.0
n_save = 5
[output]
observables = ["bloch", "energy"]
"""
SWEEP = BASE + """
[sweep]
chunk_size = 2
[sweep.parameters]
"system.dimer.J" = [0.5, 1.0]
"""

# (name): (text replaced, replacement, key named, words in the message)
BAD = {
    "kappa < 0": ("kappa = 0.5", "kappa = -1.0", r"dynamics\.kappa", ">= 0"),
    "kappa string": ("kappa = 0.5", 'kappa = "0.5"', r"dynamics\.kappa", "must be a number"),
    "typo with suggestion": ("kappa = 0.5", "kapa = 0.5", r"dynamics\.kapa", "did you mean 'kappa'"),
    "n_save not integral": ("n_save = 5", "n_save = 5.5", r"dynamics\.n_save", "integer"),
    "n_save boolean": ("n_save = 5", "n_save = true", r"dynamics\.n_save", "integer.*bool"),
    "n_save huge": ("n_save = 5", "n_save = 1e12", r"dynamics\.n_save", "<= 1e\\+07"),
    "max_steps 0": ("n_save = 5", "n_save = 5\nmax_steps = 0", r"dynamics\.max_steps", ">= 1"),
    "solver typo": ("n_save = 5", 'n_save = 5\nsolver = "tsit"', r"dynamics\.solver", "did you mean 'tsit5'"),
    "no end time": ("t_end = 2.0", "", "dynamics", "exactly one of t_end, times"),
    "B 2-vector": ("B = [1.0, 0.0, 0.0]", "B = [1.0, 0.0]", r"system\.dimer\.B", r"shape \(3,\)"),
    "B with a boolean": ("B = [1.0, 0.0, 0.0]", "B = [1.0, true, 0.0]", r"system\.dimer\.B\[1\]", "number"),
    "J on a chain": ("dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6] }", "chain = 3\nJ = 1.0",
                     r"system\.J", r"exchange.*sigma1\.sigma2.*S_i\.S_j"),
    "exchange in a dimer": ("J = 1.0,", "exchange = 1.0,", r"system\.dimer\.exchange", r"J sigma1\.sigma2 = 4J S1\.S2"),
    "field shape on a chain": ("dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6] }",
                               "chain = 3\nfield = [[1.0, 0.0, 0.0]]", r"system\.field", "3 sites"),
    "spin with spins": ("dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6] }",
                        "spins = [0.5, 0.5]\nspin = 1.0", r"system\.spin", "goes with chain"),
    "thermal without beta": ('kind = "up_down"', 'kind = "thermal"', "initial_state", "exactly one of beta, temperature_K"),
    "p for a bell state": ('kind = "up_down"', 'kind = "bell"\np = 0.5', r"initial_state\.p", "werner"),
    "werner p > 1": ('kind = "up_down"', 'kind = "werner"\np = 2.0', r"initial_state\.p", "<= 1"),
    "unknown observable": ('"energy"]', '"energy", "entanglement"]', r"output\.observables\[2\]", "unknown value"),
    "output.plot is not a key": ('"energy"]', '"energy"]\nplot = false', r"output\.plot", "--no-plot"),
    "output.states is not a key": ('"energy"]', '"energy"]\nstates = true', r"output\.states", "save_states"),
    "two-qubit observable on a chain": ("dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6] }",
                                        "chain = 3", r"output\.observables\[0\]", "two spin-1/2 sites"),
    "unknown table": ("[output]", "[outptu]", "config", r"unknown table \[outptu\]; did you mean \[output\]"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_one_line_naming_the_key(case):
    old, new, key, words = BAD[case]
    text = BASE.replace(old, new)
    if case == "two-qubit observable on a chain":
        text = text.replace('["bloch", "energy"]', '["correlation"]')
    assert text != BASE
    with pytest.raises(ConfigError) as info:
        build_system(tomllib.loads(text))
    message = str(info.value)
    assert re.match(rf"{key}(?![\w.])", message), message  # the message starts with the dotted key
    assert re.search(words, message), message
    assert "\n" not in message


def test_toml_numbers_keep_their_meaning():
    # an integer is a valid float, an integral float a valid count; the normalised values reach the System
    system = build_system(tomllib.loads(BASE.replace("kappa = 0.5", "kappa = 1").replace("n_save = 5", "n_save = 5.0\nmax_steps = 77")))
    assert system.kappa == 1.0 and isinstance(system.kappa, float)
    assert system.ts.shape == (5,) and system.max_steps == 77


def test_reference_lists_every_key_with_type_default_and_unit():
    text = reference()
    for name, table in schema.SCHEMA.items():
        assert f"[{name}]" in text
        for key in table.keys:
            line = re.search(rf"^  {re.escape(key)} +(.*)$", text, re.M)
            assert line, f"{name}.{key} missing"
            assert re.search(r"default|required|optional", line.group(1)), line.group(0)
    assert "[system.dimer]" in text
    for observable in q.config.OBSERVABLES:
        assert re.search(rf"^  {observable} ", text, re.M)
    # units and conditions that used to need trial and error
    assert re.search(r"^  temperature_K .*unit K; kind = thermal", text, re.M)
    assert re.search(r"^  beta .*unit 1/E0 \| 1/meV; kind = thermal", text, re.M)
    assert "exactly one of: beta, temperature_K (for kind = thermal)" in text
    assert re.search(r"^  t_end .*unit hbar/E0 \| ps", text, re.M)
    assert re.search(r"^  exchange .*unit E0 \| meV", text, re.M) and "4x weaker" in text
    assert not re.search(r"``|:mod:|:func:|:class:", text)


# ------------------------------------------------------------------------------------------------------ sweeps


def _sweep(text: str, parameters: str):
    table = tomllib.loads(text + "\n[sweep]\n[sweep.parameters]\n" + parameters)
    return build_sweep(table)


def test_sweep_hamiltonian_of_random_points_equals_eq8():
    problem = _sweep(BASE, '"system.dimer.J" = { linspace = [-1.5, 1.5, 7] }\n"system.dimer.B" = [[1, 0, 0], [0.3, -0.2, 0.9]]\n'
                           '"system.dimer.D.2" = { linspace = [0.0, 1.2, 5] }\n"dynamics.kappa" = [0.1, 0.7]')
    assert problem.n_points == 7 * 2 * 5 * 2
    rng = np.random.default_rng(1)
    for i in rng.choice(problem.n_points, 6, replace=False):
        point = {k: v[i] for k, v in problem.params.items()}
        D = (0.0, 0.0, point["system.dimer.D.2"])  # D_x, D_y from the base config
        expected = q.dimer_hamiltonian(point["system.dimer.B"], point["system.dimer.J"], D)
        np.testing.assert_allclose(problem.H(**point).matrix(), expected, atol=1e-13)
        assert problem.kappa(**point) == point["dynamics.kappa"]
    # the initial state is shared: a fixed ϱ0 = |↑↓⟩⟨↑↓|
    np.testing.assert_allclose(problem.rho0, q.density_matrix(q.up_down_state()), atol=1e-15)
    assert "energy" not in problem.observables and problem.energy


def test_sweep_in_physical_units_matches_a_direct_spin_model():
    text = """
[units]
kind = "physical"
b0_tesla = 2.0
[system]
chain = 3
field = [[0.0, 0.0, 1.0], [0.5, 0.0, 0.0], [0.0, 0.0, -1.0]]
exchange = [0.1, 0.2]
dmi = [0.0, 0.0, 0.02]
anisotropy = 0.01
[initial_state]
kind = "thermal"
temperature_K = 1.0
[dynamics]
t_end = 10.0
n_save = 3
[output]
observables = ["bloch"]
"""
    problem = _sweep(text, '"system.field.1" = [[0.5, 0.0, 0.0], [0.0, 1.5, -0.5]]\n"system.exchange.0" = [0.1, -0.3]\n'
                           '"system.anisotropy" = [0.0, 0.02]\n"initial_state.temperature_K" = [1.0, 3.0]')
    u = q.Units(q.MU_B_MEV_PER_T * 2.0)
    k_B = 1.380649e-23 / 1.602176634e-19 * 1e3  # meV/K, exact SI definitions
    for i in range(problem.n_points):
        point = {k: v[i] for k, v in problem.params.items()}
        fields = np.array([[0.0, 0.0, 1.0], point["system.field.1"], [0.0, 0.0, -1.0]])
        expected = q.spin_model(
            [0.5] * 3, bonds=[(0, 1), (1, 2)], field=2 * q.MU_B_MEV_PER_T * fields / u.energy_meV,
            exchange=np.array([point["system.exchange.0"], 0.2]) / u.energy_meV, dmi=np.array([0.0, 0.0, 0.02]) / u.energy_meV,
            anisotropy=point["system.anisotropy"] / u.energy_meV,
        ).matrix()
        np.testing.assert_allclose(problem.H(**point).matrix(), expected, atol=1e-12)
        beta = u.energy_meV / (k_B * point["initial_state.temperature_K"])  # 1/E0
        gibbs = scipy.linalg.expm(-beta * np.asarray(expected))
        np.testing.assert_allclose(problem.rho0(**point), gibbs / np.trace(gibbs), atol=1e-12)


def test_sweep_initial_state_per_value_and_under_vmap():
    text = BASE.replace('kind = "up_down"', 'kind = "werner"\nname = "phi-"')
    problem = _sweep(text, '"initial_state.p" = [0.9, 0.2, 0.9, -0.3]\n"system.dimer.J" = [1.0, 2.0]')
    params = {k: np.asarray(v) for k, v in problem.params.items()}
    rho = jax.vmap(lambda p: problem.rho0(**p))(params)  # traced lookup, as inside the sweep
    p_values = params["initial_state.p"]
    expected = np.stack([q.werner_state("phi-", p) for p in p_values])
    np.testing.assert_allclose(rho, expected, atol=1e-15)


def test_sweep_building_does_not_scale_with_the_number_of_points(monkeypatch):
    calls = []
    original = sweep_config.build_model
    monkeypatch.setattr(sweep_config, "build_model", lambda *a: calls.append(1) or original(*a))
    problem = _sweep(BASE, '"system.dimer.J" = { linspace = [-1.0, 1.0, 1000] }\n"system.dimer.D.2" = { linspace = [0.0, 1.0, 200] }')
    assert problem.n_points == 200_000
    assert len(calls) <= 1 + 1 + 1 + 3 + 1  # point 0, θ(0), one per component, 3 checked points
    np.testing.assert_array_equal(problem.params["system.dimer.D.2"][:3], [0.0, 1 / 199, 2 / 199])  # grid: last key fastest


SWEEP_BAD = {
    "chunk_size 1.5": ("chunk_size = 2", "chunk_size = 1.5", r"sweep\.chunk_size", "integer"),
    "chunk_size true": ("chunk_size = 2", "chunk_size = true", r"sweep\.chunk_size", "integer"),
    "linspace count 1e12": ('"system.dimer.J" = [0.5, 1.0]', '"system.dimer.J" = { linspace = [0, 1, 1e12] }',
                            r'sweep\.parameters\."system\.dimer\.J"\.linspace count', "<= 1e\\+08"),
    "grid too large": ('"system.dimer.J" = [0.5, 1.0]', '"system.dimer.J" = { linspace = [0, 1, 100000] }\n'
                       '"system.dimer.D.2" = { linspace = [0, 1, 100000] }', r"sweep\.parameters", "1e\\+10 points"),
    "not sweepable": ('"system.dimer.J" = [0.5, 1.0]', '"system.dimer.spin" = [0.5, 1.0]', r'sweep\.parameters\."system\.dimer\.spin"',
                      "cannot be swept"),
    "unknown key": ('"system.dimer.J" = [0.5, 1.0]', '"dynamics.kapa" = [0.5, 1.0]', r'sweep\.parameters\."dynamics\.kapa"',
                    "did you mean 'kappa'"),
    "negative kappa point": ('"system.dimer.J" = [0.5, 1.0]', '"dynamics.kappa" = [0.5, -1.0]',
                             r'sweep\.parameters\."dynamics\.kappa" \(point 1\)', ">= 0"),
    "string values": ('"system.dimer.J" = [0.5, 1.0]', '"system.dimer.J" = ["a"]', r'sweep\.parameters\."system\.dimer\.J"\[0\]',
                      "number"),
    "passive energy": ('["bloch", "energy"]', '["passive_energy"]', r"sweep point 0 .*: output\.observables", "constant"),
    "unknown sweep key": ("chunk_size = 2", "chunk = 2", r"sweep\.chunk", "did you mean 'chunk_size'"),
}


@pytest.mark.parametrize("case", list(SWEEP_BAD))
def test_bad_sweep_config_names_the_key(case):
    old, new, key, words = SWEEP_BAD[case]
    text = SWEEP.replace(old, new)
    assert text != SWEEP
    with pytest.raises(ConfigError) as info:
        build_sweep(tomllib.loads(text))
    message = str(info.value)
    assert re.match(key, message), message
    assert re.search(words, message), message


def test_exchange_on_two_qubits_carries_the_normalisation_note():
    from qllg_jax.config.system import coupling_note

    two = tomllib.loads(BASE.replace("dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6] }", "spins = [0.5, 0.5]\n"
                                     "bonds = [[0, 1]]\nexchange = 4.0\nfield = [2.0, 0.0, 0.0]"))
    assert "exchange = 4J" in coupling_note(two)
    # and the note is right: exchange = 4J, field = 2B on spins is eq. 8's dimer with J = 1, B = (1, 0, 0)
    np.testing.assert_allclose(build_system(two).hamiltonian, q.dimer_hamiltonian((1.0, 0.0, 0.0), 1.0, (0, 0, 0)), atol=1e-14)
    assert coupling_note(tomllib.loads(BASE)) is None
    assert coupling_note({"system": {"chain": 3, "exchange": 1.0}}) is None


def test_with_overrides_and_point_table_use_defaults():
    table = tomllib.loads(BASE.replace(", D = [0.0, 0.0, 0.6]", ""))
    # "system.dimer.D.2" works without D in the config: the schema default [0, 0, 0] is indexed
    assert sweep_config.point_table(table, {"system.dimer.D.2": 0.3})["system"]["dimer"]["D"] == [0.0, 0.0, 0.3]
    with pytest.raises(ConfigError, match=r"dynamics\.kappa: dynamics is not a table"):
        with_overrides({"dynamics": 1.0}, {"dynamics.kappa": 0.3})
