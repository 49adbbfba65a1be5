"""Every public entry point rejects bad input before compute with a ValueError naming the argument;
numerical failures raise SolveError with the reason, the time reached and a hint; invariant drift warns."""

import importlib
import re
import sys
import warnings

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.design import fit
from qllg_jax.ground_state import ground_state, passive_flow
from qllg_jax._failures import Failure
from qllg_jax._integrate import SolveOptions, integrate
from qllg_jax.equations import QLLG

H2 = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.2, 0.0), J=0.5))
RHO = np.asarray(0.5 * q.density_matrix(q.up_down_state()) + 0.3 * q.density_matrix(q.bell_state("phi+")) + 0.2 * np.eye(4) / 4)
PSI = np.asarray(q.up_down_state())
TS = np.linspace(0.0, 1.0, 5)

NON_HERMITIAN = H2 + np.triu(np.ones((4, 4)), 1)
NAN_H = H2.copy()
NAN_H[0, 0] = np.nan
BAD_TRACE = 1.5 * RHO
NEGATIVE = np.diag([1.2, -0.2, 0.0, 0.0]).astype(complex)
NAN_RHO = RHO.copy()
NAN_RHO[1, 1] = np.inf


def _raises(fn, argument, problem=""):
    """fn() raises ValueError whose message names ``argument`` (and matches ``problem``)."""
    with pytest.raises(ValueError) as info:
        fn()
    message = str(info.value)
    assert re.search(rf"(?<!\w){argument}(?!\w)", message), f"{argument!r} not named in: {message}"
    assert re.search(problem, message, re.IGNORECASE), f"{problem!r} not in: {message}"


# ---------------------------------------------------------------- solve: one test per kind of bad input
SOLVE_CASES = {
    "non-Hermitian H": (dict(H=NON_HERMITIAN), "H", "Hermitian"),
    "NaN in H": (dict(H=NAN_H), "H", "NaN"),
    "H not square": (dict(H=np.ones((4, 3))), "H", "square"),
    "dimension mismatch": (dict(rho0=np.eye(2) / 2), "rho0", "dimension|match"),
    "ket dimension mismatch": (dict(rho0=np.ones(3) / np.sqrt(3)), "rho0", "match|dimension"),
    "trace != 1": (dict(rho0=BAD_TRACE), "rho0", "trace"),
    "negative eigenvalue": (dict(rho0=NEGATIVE), "rho0", "positive semidefinite"),
    "NaN in rho0": (dict(rho0=NAN_RHO), "rho0", "NaN or inf"),
    "non-Hermitian rho0": (dict(rho0=RHO + np.triu(np.full((4, 4), 0.01), 1)), "rho0", "Hermitian"),
    "unnormalised ket": (dict(rho0=2 * PSI), "rho0", "normalised"),
    "kappa < 0": (dict(kappa=-0.1), "kappa", ">= 0"),
    "complex kappa": (dict(kappa=0.1j), "kappa", "real"),
    "NaN kappa": (dict(kappa=np.nan), "kappa", "NaN"),
    "unsorted ts": (dict(ts=[0.0, 2.0, 1.0]), "ts", "increasing"),
    "repeated ts": (dict(ts=[0.0, 1.0, 1.0]), "ts", "increasing"),
    "empty ts": (dict(ts=[]), "ts", "non-empty"),
    "2-D ts": (dict(ts=np.ones((2, 2))), "ts", "1-D"),
    "inf in ts": (dict(ts=[0.0, np.inf]), "ts", "NaN or inf"),
    "unknown equation": (dict(equation="llg"), "equation", "unknown"),
    "unknown strategy": (dict(strategy="lu"), "strategy", "unknown"),
    "unknown method": (dict(method="fast"), "method", "unknown"),
    "unknown gradient": (dict(gradient="adjoint"), "gradient", "unknown"),
    "unknown solver name": (dict(solver="rk4"), "solver", "unknown"),
    "solver class instead of instance": (dict(solver=diffrax.Tsit5), "solver", "instance"),
    "non-adaptive solver": (dict(solver=diffrax.Euler()), "solver", "adaptive"),
    "rtol <= 0": (dict(rtol=0.0), "rtol", "> 0"),
    "atol negative": (dict(atol=-1e-9), "atol", "> 0"),
    "max_steps zero": (dict(max_steps=0), "max_steps", "> 0"),
    "max_steps not int": (dict(max_steps=10.5), "max_steps", "integer"),
    "invariant_tol negative": (dict(invariant_tol=-1.0), "invariant_tol", "> 0"),
    "observables not a dict": (dict(observables=[np.eye(4)]), "observables", "dict"),
    "observable operator of wrong shape": (dict(observables={"x": np.eye(3)}), "x", "square operator|shape"),
    "string flag": (dict(save_states="no"), "save_states", "True or False"),
}


@pytest.mark.parametrize("case", list(SOLVE_CASES))
def test_solve_rejects(case):
    overrides, argument, problem = SOLVE_CASES[case]
    args = dict(H=H2, rho0=RHO, ts=TS, kappa=0.2) | overrides
    H, rho0, ts, kappa = (args.pop(k) for k in ("H", "rho0", "ts", "kappa"))
    _raises(lambda: q.solve(H, rho0, ts, kappa, **args), argument, problem)


@pytest.mark.parametrize("method", ["dense", "exact", "pure", "two_level", "low_rank"])
def test_every_method_validates_the_state(method):
    _raises(lambda: q.solve(H2, BAD_TRACE, TS, 0.2, method=method), "rho0", "trace")
    _raises(lambda: q.solve(NON_HERMITIAN, PSI, TS, 0.2, method=method), "H", "Hermitian")


def test_solve_accepts_solver_names_and_instances():
    by_name = q.solve(H2, RHO, TS, 0.2, method="dense", solver="Bosh3")
    default = q.solve(H2, RHO, TS, 0.2, method="dense")  # Tsit5 (5th order) needs far fewer steps than Bosh3
    assert int(default.stats["num_steps"]) < int(by_name.stats["num_steps"])
    assert np.allclose(by_name.states, default.states, atol=1e-6)
    instance = diffrax.Bosh3()
    assert q._checks.check_solver(instance) is instance
    assert isinstance(q._checks.check_solver(None), diffrax.Tsit5)
    assert isinstance(q._checks.check_solver("kvaerno5"), diffrax.Kvaerno5)
    assert set(q.SOLVER_NAMES) >= {"tsit5", "dopri5", "dopri8", "kvaerno5"}


def test_validation_runs_before_compute(monkeypatch):
    """A bad ts must be reported without ever reaching the integrator."""
    solve_module = importlib.import_module("qllg_jax.solve")  # the module (qllg_jax.solve is the function)
    monkeypatch.setattr(solve_module, "_solve_compiled", lambda *a, **k: pytest.fail("compute ran before validation"))
    _raises(lambda: q.solve(H2, RHO, [1.0, 0.0], 0.2, method="dense"), "ts", "increasing")


def test_constant_inputs_are_value_checked_inside_jit():
    """numpy constants closed over by a jitted function stay checkable (jnp.asarray would trace them)."""
    _raises(lambda: jax.jit(lambda k: q.solve(NON_HERMITIAN, RHO, TS, k, method="dense").states)(0.2), "H", "Hermitian")
    _raises(lambda: jax.jit(lambda k: q.solve(H2, BAD_TRACE, TS, k, method="dense").states)(0.2), "rho0", "trace")
    _raises(lambda: jax.jit(lambda k: q.solve(H2, 2 * PSI, TS, k).states)(0.2), "rho0", "normalised")
    _raises(lambda: jax.jit(lambda k: q.solve(H2, RHO, TS[::-1], k).states)(0.2), "ts", "increasing")


def test_traced_inputs_skip_value_checks_but_keep_shapes():
    """Under jit only shapes are checkable: a valid traced call works, a shape error is still raised."""
    out = jax.jit(lambda k: q.solve(H2, RHO, TS, k, method="dense").states[-1])(0.2)
    assert out.shape == (4, 4)
    with pytest.raises(ValueError, match="H"):
        jax.jit(lambda h: q.solve(h, RHO, TS, 0.2, method="dense").states)(jnp.ones((4, 3)))


# ---------------------------------------------------------------- other entry points
OTHER_CASES = {
    "density_matrix NaN": (lambda: q.density_matrix(np.array([np.nan, 1.0])), "psi", "NaN"),
    "density_matrix unnormalised": (lambda: q.density_matrix(np.array([1.0, 1.0])), "psi", "normalised"),
    "validate_state trace": (lambda: q.validate_state(BAD_TRACE), "rho", "trace"),
    "validate_state negative": (lambda: q.validate_state(NEGATIVE), "rho", "positive"),
    "validate_state dimension": (lambda: q.validate_state(RHO, dim=8), "rho", "dimension"),
    "werner p": (lambda: q.werner_state("psi-", 1.5), "p", r"\[-1/3, 1\]"),
    "werner bell name": (lambda: q.werner_state("chi", 0.5), "Bell", "unknown"),
    "werner bell ket shape": (lambda: q.werner_state(np.ones(2) / np.sqrt(2), 0.5), "bell", "dimension|shape"),
    "thermal beta": (lambda: q.thermal_state(H2, -1.0), "beta", ">= 0"),
    "thermal H": (lambda: q.thermal_state(NON_HERMITIAN, 1.0), "H", "Hermitian"),
    "coherent direction": (lambda: q.coherent_state(0.5, [0.0, 0.0, 0.0]), "direction", "non-zero"),
    "coherent direction NaN": (lambda: q.coherent_state(0.5, [np.nan, 0.0, 1.0]), "direction", "3-vector"),
    "coherent spin": (lambda: q.coherent_state(0.3, [0.0, 0.0, 1.0]), "s", "multiple of 1/2"),
    "coherent_product directions": (lambda: q.coherent_product_state([0.5, 0.5], np.ones((3, 3))), "directions", "shape"),
    "coherent_product spins": (lambda: q.coherent_product_state([0.5, -1], np.ones((2, 3))), "spins", "multiple of 1/2"),
    "product_state ket": (lambda: q.product_state([PSI[:2], np.array([1.0, 1.0])]), r"kets\[1\]", "normalised"),
    "product_state empty": (lambda: q.product_state([]), "kets", "at least one"),
    "basis_state m": (lambda: q.basis_state(0.5, 1.5), "m", "projection"),
    "bell_state name": (lambda: q.bell_state("phi"), "Bell", "unknown"),
    "random_ket dim": (lambda: q.random_ket(jax.random.PRNGKey(0), 0), "dim", "> 0"),
    "random_density_matrix rank": (lambda: q.random_density_matrix(jax.random.PRNGKey(0), 3, rank=4), "rank", r"\[1, 3\]"),
    "random_hamiltonian dim": (lambda: q.random_hamiltonian(jax.random.PRNGKey(0), 2.5), "dim", "integer"),
    "spin_model spins": (lambda: q.spin_model([0.5, 0.7]), "spins", "multiple of 1/2"),
    "spin_model empty": (lambda: q.spin_model([]), "spins", "non-empty"),
    "spin_model bond range": (lambda: q.spin_model([0.5, 0.5], bonds=[(0, 2)]), "bonds", "invalid"),
    "spin_model self bond": (lambda: q.spin_model([0.5, 0.5], bonds=[(1, 1)]), "bonds", "invalid"),
    "spin_model bond shape": (lambda: q.spin_model([0.5, 0.5], bonds=[(0, 1, 1)]), "bonds", "pairs"),
    "spin_model field shape": (lambda: q.spin_model([0.5, 0.5], field=np.ones(2)), "field", "shape"),
    "spin_model exchange NaN": (lambda: q.spin_model([0.5, 0.5], bonds=[(0, 1)], exchange=np.nan), "exchange", "NaN"),
    "chain n": (lambda: q.chain_model(0), "n", "> 0"),
    "dimer B": (lambda: q.dimer_hamiltonian(B=(1.0, 0.0)), "B", "3-vectors"),
    "dimer J NaN": (lambda: q.dimer_hamiltonian(J=np.nan), "J", "NaN"),
    "spin_matrices": (lambda: q.spin_matrices(-0.5), "s", "multiple of 1/2"),
    "embed site": (lambda: q.embed(np.eye(2), 3, (2, 2)), "site", "out of range"),
    "embed shape": (lambda: q.embed(np.eye(3), 0, (2, 2)), "operator", "does not fit"),
    "pure_state_exact kappa": (lambda: q.pure_state_exact(H2, PSI, TS, -1.0), "kappa", ">= 0"),
    "pure_state_exact ket": (lambda: q.pure_state_exact(H2, 2 * PSI, TS, 0.1), "psi0", "normalised"),
    "pure_state_exact ts": (lambda: q.pure_state_exact(H2, PSI, TS[::-1], 0.1), "ts", "increasing"),
    "projector_exact W0": (lambda: q.projector_exact(H2, np.ones((3, 1)), TS, 0.1), "W0", "shape"),
    "projector_exact H": (lambda: q.projector_exact(NON_HERMITIAN, np.ones((4, 1)), TS, 0.1), "H", "Hermitian"),
    "two_level_exact rho0": (lambda: q.two_level_exact(H2, BAD_TRACE, TS, 0.1), "rho0", "trace"),
    "two_level_exact spectrum": (lambda: q.two_level_exact(H2, RHO, TS, 0.1), "rho", "two distinct|more than two"),
    "QLLG kappa": (lambda: q.QLLG(-1.0), "kappa", ">= 0"),
    "QLL kappa": (lambda: q.QLL(np.nan), "kappa", "NaN"),
    "solve_resolvent strategy": (lambda: q.solve_resolvent(RHO, RHO, 0.1, "qr"), "strategy", "unknown"),
    "solve_resolvent shape": (lambda: q.solve_resolvent(RHO, np.eye(2), 0.1), "b", "dimension"),
    "observable not square": (lambda: q.purity(np.ones((4, 3))), "rho", "square"),
    "observable NaN": (lambda: q.von_neumann_entropy(NAN_RHO), "rho", "NaN"),
    "expectation op dimension": (lambda: q.expectation(RHO, np.eye(2)), "op", "dimension"),
    "correlation not two qubits": (lambda: q.correlation_matrix(np.eye(2) / 2), "rho", "two-qubit"),
    "concurrence not two qubits": (lambda: q.concurrence(np.eye(8) / 8), "rho", "two-qubit"),
    "partial_trace dims": (lambda: q.partial_trace(RHO, (2, 3), [0]), "dims", "multiply"),
    "partial_trace keep": (lambda: q.partial_trace(RHO, (2, 2), [2]), "keep", "distinct sites"),
    "spin_expectations spins": (lambda: q.spin_expectations(RHO, [0.5, 0.2]), "spins", "multiple of 1/2"),
    "bloch_vectors dimension": (lambda: q.bloch_vectors(np.eye(3) / 3), "dimension", "power of 2"),
    "renyi alpha": (lambda: q.renyi_entropy(RHO, 1.0), "alpha", "!= 1"),
    "passive_energy H": (lambda: q.passive_energy(RHO, np.eye(2)), "H", "dimension"),
    "Units energy": (lambda: q.Units(-1.0), "energy unit", "positive"),
    "LowRankState shapes": (lambda: q.LowRankState(np.ones((4, 2)), np.ones(3)), "LowRankState", "frame"),
    "SpinModel.apply shape": (lambda: q.dimer_model().apply(np.ones(3)), "state", "dimension"),
    "SpinModel.classical_energy m": (lambda: q.dimer_model().classical_energy(np.ones((3, 3))), "m", "shape"),
    "classical_energy m": (lambda: q.classical_energy(q.dimer_model(), np.ones((3, 3))), "m", "shape"),
    "classical_llg alpha": (lambda: q.classical_llg(q.dimer_model(), np.eye(3)[[0, 2]], TS, -0.1), "alpha", ">= 0"),
    "classical_llg ts": (lambda: q.classical_llg(q.dimer_model(), np.eye(3)[[0, 2]], TS[::-1], 0.1), "ts", "increasing"),
    "classical_llg m0 shape": (lambda: q.classical_llg(q.dimer_model(), np.eye(3)[:1], TS, 0.1), "m0", "shape"),
    "classical_llg m0 zero": (lambda: q.classical_llg(q.dimer_model(), np.zeros((2, 3)), TS, 0.1), "m0", "non-zero"),
    "grid empty": (lambda: q.grid(), "grid", "at least one axis"),
    "grid empty axis": (lambda: q.grid(kappa=[]), "kappa", "non-empty"),
    "sweep_solve kappa": (lambda: q.sweep_solve(H2, PSI, TS, -1.0, q.grid(J=[1.0])), "kappa", ">= 0"),
    "sweep_solve ts": (lambda: q.sweep_solve(H2, PSI, TS[::-1], 0.1, q.grid(J=[1.0])), "ts", "increasing"),
    "sweep run_point": (lambda: q.sweep(3, q.grid(J=[1.0])), "run_point", "callable"),
    "sweep params": (lambda: q.sweep(lambda J: J, {}), "params", "non-empty"),
    "sweep params NaN": (lambda: q.sweep(lambda J: J, {"J": [np.nan]}), "params", "NaN"),
    "sweep_solve fixed H": (lambda: q.sweep_solve(NON_HERMITIAN, RHO, TS, 0.1, q.grid(J=[1.0]), progress=False), "H", "Hermitian"),
    "sweep_solve fixed rho0": (
        lambda: q.sweep_solve(H2, BAD_TRACE, TS, 0.1, q.grid(J=[1.0]), progress=False, solve_options={"method": "dense"}),
        "rho0",
        "trace",
    ),
    "sweep_solve solver": (lambda: q.sweep_solve(H2, RHO, TS, 0.1, q.grid(J=[1.0]), solve_options={"solver": "rk4"}), "solver", "unknown"),
    "passive_state H": (lambda: q.passive_state(RHO, NON_HERMITIAN), "H", "Hermitian"),
    "as_matrix": (lambda: q.as_matrix(NON_HERMITIAN), "hamiltonian", "Hermitian"),
    "commutator shapes": (lambda: q.commutator(np.eye(2), np.eye(3)), "commutator", "shapes"),
    "classical_energy NaN": (lambda: q.classical_energy(q.dimer_model(), np.full((2, 3), np.nan)), "m", "NaN"),
    "classical_llg solver": (lambda: q.classical_llg(q.dimer_model(), np.eye(3)[[0, 2]], TS, 0.1, solver="rk4"), "solver", "unknown"),
    "classical_dimer J": (lambda: q.classical_dimer((1, 0, 0), np.nan, (0, 0, 0), (0, 0, 1), (0, 0, -1), TS, 0.1), "J", "NaN"),
    "ground_state kappa": (lambda: ground_state(H2, kappa=-1.0), "kappa", ">= 0"),
    "ground_state H": (lambda: ground_state(NON_HERMITIAN), "H", "Hermitian"),
    "ground_state psi0": (lambda: ground_state(H2, 2 * PSI), "psi0", "normalised"),
    "ground_state solver": (lambda: ground_state(H2, PSI, solver="rk4"), "solver", "unknown"),
    "passive_flow rho0": (lambda: passive_flow(H2, BAD_TRACE), "rho0", "trace"),
    "passive_flow tol": (lambda: passive_flow(H2, RHO, tol=-1.0), "tol", "> 0"),
    "fit loss_fn": (lambda: fit(None, {"J": 1.0}, progress=False), "loss_fn", "callable"),
    "fit steps": (lambda: fit(lambda p: p["J"] ** 2, {"J": 1.0}, steps=0, progress=False), "steps", "> 0"),
    "fit bounds": (lambda: fit(lambda p: p["J"] ** 2, {"J": 1.0}, bounds=(0.0,), progress=False), "bounds", "pair"),
    "load_config missing": (lambda: q.load_config("/nonexistent/qllg.toml"), "config file", "does not exist"),
    "build_system unknown table": (lambda: q.build_system({"modell": {}}), "config", "unknown"),
}


CONFIG = {
    "system": {"dimer": {"B": [1.0, 0.0, 0.0], "J": 1.0}},
    "initial_state": {"kind": "up_down"},
    "dynamics": {"kappa": 0.5, "t_end": 1.0, "n_save": 3},
    "output": {"observables": ["energy"]},
}
CONFIG_CASES = {
    "kappa < 0": ({"dynamics.kappa": -0.5}, r"dynamics\.kappa", ">= 0"),
    "unknown equation": ({"dynamics.equation": "llg"}, r"dynamics\.equation", "unknown"),
    "unknown solver": ({"dynamics.solver": "rk4"}, r"dynamics\.solver", "unknown"),
    "unknown method": ({"dynamics.method": "fast"}, r"dynamics\.method", "unknown"),
    "unknown observable": ({"output.observables": ["foo"]}, r"output\.observables\[0\]", "unknown"),
    "NaN J": ({"system.dimer.J": float("nan")}, r"system\.dimer\.J", "finite"),
    "bad spin": ({"system.dimer.spin": 0.3}, r"system\.dimer\.spin", "multiple of 1/2"),
    "unknown state": ({"initial_state.kind": "xx"}, r"initial_state\.kind", "unknown"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_rejects(case):
    overrides, argument, problem = CONFIG_CASES[case]
    _raises(lambda: q.build_system(q.with_overrides(CONFIG, overrides)), argument, problem)


@pytest.mark.parametrize("case", list(OTHER_CASES))
def test_entry_point_rejects(case):
    fn, argument, problem = OTHER_CASES[case]
    _raises(fn, argument, problem)


# ---------------------------------------------------------------- numerical failures
def test_max_steps_raises_with_time_reached_and_hint():
    with pytest.raises(q.SolveError) as info:
        q.solve(H2, RHO, TS, 0.2, method="dense", max_steps=3)
    message = str(info.value)
    assert "max_steps reached" in message and "hint: raise max_steps (now 3)" in message
    t_reached = float(re.search(r"at t = ([0-9.e+-]+) of", message).group(1))
    assert 0.0 < t_reached < 1.0
    result = q.solve(H2, RHO, TS, 0.2, method="dense", max_steps=3, throw=False)
    assert not bool(result.success) and int(result.stats["failure"]) == 1
    # the message prints t with 6 significant digits (%g): relative rounding ≤ 5e-6
    assert np.isclose(float(result.stats["t_reached"]), t_reached, rtol=1e-4, atol=0)
    assert not np.all(np.isfinite(np.asarray(result.states)))  # unreached saves are inf, never plausible values


def test_overflowing_hamiltonian_is_a_step_size_collapse():
    """H finite but so large that ϱH overflows: the vector field is inf/NaN and the step size collapses."""
    with pytest.raises(q.SolveError, match=r"step size collapsed at t = 0 .*NaN/inf"):
        q.solve(H2 * 1e200, RHO, TS, 0.2, method="dense")


def _up_down_population(H, kappa, ts):
    """|⟨↑↓|ψ(t)⟩|² of the pure q-LLG state from |↑↓⟩, by numpy: ψ(t) ∝ V e^{−i(1 − iκ)E t/(1 + κ²)} V†ψ0."""
    energies, vectors = np.linalg.eigh(H)
    psi0 = np.asarray(q.up_down_state())
    phases = np.exp(-1j * (1 - 1j * kappa) / (1 + kappa**2) * np.outer(ts, energies))
    psi = (phases * (vectors.conj().T @ psi0)) @ vectors.T
    return np.abs(psi[:, 1]) ** 2 / np.sum(np.abs(psi) ** 2, axis=1)


def test_nan_vector_field_mid_run_reports_the_time_it_appeared():
    """A field that turns NaN once the |↑↓⟩ population drops below 0.9 (at t* ≈ 0.33 for this H):
    the solve stops there, reporting a collapse at t*, not at the end."""
    H = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.0))
    rho0 = q.density_matrix(q.up_down_state())
    field = QLLG(0.1)

    def poisoned(t, rho):  # integrate's field takes the time (a static H ignores it)
        return jnp.where(jnp.real(rho[1, 1]) < 0.9, jnp.nan, 1.0) * field(rho, H)

    options = SolveOptions(diffrax.Tsit5(), max_steps=10_000)
    ts = jnp.linspace(0.0, 2.0, 9)
    fine = np.linspace(0.0, 2.0, 2001)
    population = _up_down_population(H, 0.1, fine)
    crossing = fine[np.argmax(population < 0.9)]  # first time the field is NaN (to 1e-3)
    ys, final, stats = integrate(poisoned, lambda t, rho: {"rho": rho}, rho0, ts, options, "hermitian", batched=False)
    assert int(stats["failure"]) == Failure.DT_COLLAPSE
    # the last accepted step ends before the crossing, within one step (≲ 0.1 here) of it
    assert crossing - 0.15 < float(stats["t_reached"]) <= crossing + 1e-3
    assert int(stats["num_steps"]) < 1000  # the collapse is detected quickly, not after max_steps


def test_nan_observable_mid_run_is_an_error_not_a_silent_array():
    rho0 = q.density_matrix(q.up_down_state())
    H = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.0))
    ts = np.linspace(0.0, 2.0, 9)
    bad = {"log_pop": lambda rho: jnp.log(jnp.real(rho[1, 1]) - 0.9)}  # NaN once the population < 0.9
    population = _up_down_population(H, 0.1, ts)
    first_bad = ts[np.argmax(population < 0.9)]
    assert first_bad > 0
    with pytest.raises(q.SolveError, match=rf"'observables/log_pop' first non-finite at t = {first_bad:.6g}\)"):
        q.solve(H, rho0, ts, 0.1, method="dense", observables=bad)
    for method in ("exact", "dense"):  # closed-form paths are checked the same way
        result = q.solve(H, rho0, ts, 0.1, method=method, observables=bad, throw=False)
        assert not bool(result.success) and int(result.stats["failure"]) == 3


def test_batched_failure_names_the_element():
    kappas = jnp.array([0.1, 0.2])
    Hs = jnp.stack([H2, H2 * 1e200])
    with pytest.raises(q.SolveError, match="batch element 1"):
        q.solve(Hs, RHO, TS, kappas, method="dense")
    result = q.solve(Hs, RHO, TS, kappas, method="dense", throw=False)
    assert np.asarray(result.success).tolist() == [True, False]


def test_failure_under_jit_is_a_runtime_error():
    """The runtime error reads like the eager SolveError: the reason, the time reached, the hint."""
    with pytest.raises(Exception, match=r"q-LLG solve failed: max_steps reached at t = [0-9.e+-]+ of \[0, 1\]; "
                                        r"hint: raise max_steps \(now 3\)"):
        jax.block_until_ready(jax.jit(lambda k: q.solve(H2, RHO, TS, k, method="dense", max_steps=3).states)(0.2))


# ---------------------------------------------------------------- invariant warnings
def test_loose_tolerance_warns_and_tight_does_not():
    ts = np.linspace(0.0, 10.0, 11)
    with pytest.warns(q.InvariantWarning, match="invariant_tol = 1e-06.*(purity_drift|spectrum_drift)"):
        loose = q.solve(H2, RHO, ts, 0.5, method="dense", rtol=1e-2, atol=1e-2)
    # the warning reflects real drift: the conserved spectrum moved by more than the tolerance
    spectrum = np.asarray(q.spectrum(loose.states))
    assert np.max(np.abs(spectrum - spectrum[0])) > 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("error", q.InvariantWarning)
        q.solve(H2, RHO, ts, 0.5, method="dense")  # default tolerances: drift far below 1e-6
        q.solve(H2, RHO, ts, 0.5, method="dense", rtol=1e-2, atol=1e-2, invariant_tol=None)  # disabled


# ---------------------------------------------------------------- traced inputs: runtime checks inside the solve
def test_traced_invalid_inputs_fail_with_their_reason():
    """Audit rows 'jit: traced …' and 'vmap: … batch with one …': a traced invalid H, κ, ϱ0 or ts can only be checked
    at run time; each bad element fails with its own code (5 H, 6 κ, 7 ϱ0, 8 ts), the valid ones succeed."""
    nan_H = np.where(np.eye(4, dtype=bool), np.nan, H2)

    def codes(fn, batch):
        return np.asarray(jax.jit(jax.vmap(fn))(batch)).tolist()

    solve_code = lambda *args, **kw: q.solve(*args, throw=False, invariant_tol=None, **kw).stats["failure"]  # noqa: E731
    assert codes(lambda h: solve_code(h, RHO, TS, 0.2), np.stack([H2, NON_HERMITIAN, nan_H])) == [0, 5, 5]
    assert codes(lambda k: solve_code(H2, RHO, TS, k), np.array([0.2, -0.1, np.nan])) == [0, 6, 6]
    assert codes(lambda r: solve_code(H2, r, TS, 0.2), np.stack([RHO, BAD_TRACE, NEGATIVE])) == [0, 7, 7]
    assert codes(lambda psi: solve_code(H2, psi, TS, 0.2), np.stack([PSI, 2 * PSI])) == [0, 7]
    assert codes(lambda r: solve_code(H2, r, TS, 0.2, method="exact"), np.stack([q.density_matrix(PSI), RHO])) == [0, 7]
    assert codes(lambda t: solve_code(H2, RHO, t, 0.2), np.stack([TS, TS[::-1]])) == [0, 8]
    nan_field = lambda b: solve_code(q.dimer_model(B=jnp.stack([b, 0.0, 0.0])), RHO, TS, 0.2)  # noqa: E731
    assert codes(nan_field, np.array([1.0, np.nan])) == [0, 5]
    with pytest.raises(Exception, match="q-LLG solve failed: invalid input: kappa is negative or not finite"):
        jax.block_until_ready(jax.jit(lambda k: q.solve(H2, RHO, TS, k).states)(-0.1))


def _last_line(error) -> str:
    return [line for line in str(error).splitlines() if line.strip()][-1]


@pytest.mark.parametrize("transform", ["jit", "vmap", "grad"])
def test_traced_failure_ends_with_the_product_message(transform, caplog):
    """Issue 24 item 6: under jax.jit / jax.vmap / jax.grad a traced bad κ stops the run with JAX's runtime error
    whose LAST line is qllg_jax's message (reason, batch element, hint and the line that called solve), and JAX's
    duplicate "jax.pure_callback failed" log of the same traceback is not printed. (Before: equinox's banner
    "...Please wrap your program with equinox.filter_jit" was the last line, the log doubled the output.)"""
    line = sys._getframe().f_lineno + 3  # the line of the solve call below

    def energy(k):
        return q.solve(H2, RHO, TS, k, method="dense").invariants["energy"][..., -1]

    run = {"jit": lambda: jax.jit(energy)(-0.1), "vmap": lambda: jax.vmap(energy)(jnp.array([0.1, -0.1])),
           "grad": lambda: jax.grad(energy)(-0.1)}[transform]
    with pytest.raises(Exception) as info:
        jax.block_until_ready(run())
    last = _last_line(info.value)
    assert last.startswith("SolveError: q-LLG solve failed") and "kappa is negative or not finite; hint:" in last
    assert f"{__file__}:{line} (in energy)" in last
    assert ("(batch element 1)" in last) == (transform == "vmap")
    assert "jax.pure_callback failed" not in caplog.text


def test_diagnostics_after_a_failed_solve():
    """Audit row 'max_steps 5 throw=False': the diagnostics of a failed run are values, not an error."""
    result = q.solve(H2, RHO, TS, 0.2, max_steps=5, throw=False)
    assert not bool(result.success) and int(result.stats["failure"]) == 1
    assert set(result.diagnostics().as_dict()) == {"trace_error", "hermiticity_error", "purity_drift", "spectrum_drift",
                                                   "energy_increase"}
