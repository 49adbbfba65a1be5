"""q-LLG dynamics against closed forms, conserved quantities and second methods (issue 3, tests 1–7)."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import qllg_jax as q
from qllg_jax.equations import QLLG, commutator, solve_resolvent

KAPPA = 0.5
TS = jnp.linspace(0.0, 8.0, 41)


def random_spin_hamiltonian(key, n=3):
    """A random 3-spin Heisenberg + DMI + field Hamiltonian on a triangle."""
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    model = q.spin_model(
        [0.5] * n, field=rng.normal(size=(n, 3)), bonds=q.chain_bonds(n, periodic=True),
        exchange=rng.normal(size=n), dmi=rng.normal(size=(n, 3)) * 0.5,
    )
    return model.matrix()


@pytest.mark.parametrize("system", ["dimer", "three_spin"])
def test_pure_state_matches_eq28(system, key):
    if system == "dimer":
        H, psi0 = q.dimer_hamiltonian((1, 0, 0), 1.0, (0, 0, 0.6)), q.up_down_state()
    else:
        H, psi0 = random_spin_hamiltonian(key), q.random_ket(jax.random.fold_in(key, 1), 8)
    result = q.solve(H, psi0, TS, KAPPA, method="dense")  # default rtol 1e-8 (Dopri8): global error a few × rtol
    exact = q.density_matrix(q.pure_state_exact(H, psi0, TS, KAPPA))
    assert float(jnp.max(jnp.abs(result.states - exact))) <= 5e-8
    assert bool(result.success) and int(result.stats["num_accepted_steps"]) > 0


def eta_of(rho, s):
    """η from ϱ = (1 + η·S)/(2s+1): ⟨S⟩ = s(s+1)/3 η (paper ref. 17)."""
    S = q.spin_matrices(s)
    return 3 * jnp.real(jnp.einsum("tij,aji->ta", rho, S)) / (s * (s + 1))


@pytest.mark.parametrize("s", [0.5, 1.0])
def test_single_spin_is_classical_llg(s):
    """Paper eq. 6: η precesses about b and relaxes with Gilbert α = κ|η|/(2s+1); analytic damped precession."""
    b = 1.3
    S = q.spin_matrices(s)
    d = int(2 * s + 1)
    eta_len = 1.6 if s == 0.5 else 0.8  # mixed states: |η| < 2 for s = 1/2, |η| < 1 for s = 1
    theta0, phi0 = 2.0, 0.3
    n0 = np.array([np.sin(theta0) * np.cos(phi0), np.sin(theta0) * np.sin(phi0), np.cos(theta0)])
    rho0 = (jnp.eye(d) + eta_len * jnp.einsum("a,aij->ij", n0, S)) / d
    H = -b * S[2]
    ts = jnp.linspace(0, 10, 51)
    rho = q.solve(H, rho0, ts, KAPPA, rtol=1e-10, atol=1e-12, method="dense").states
    eta = eta_of(rho, s)
    alpha = KAPPA * eta_len / (2 * s + 1)
    nz = np.tanh(alpha * b * ts / (1 + alpha**2) + np.arctanh(np.cos(theta0)))
    phi = phi0 - b * ts / (1 + alpha**2)
    sin = np.sqrt(1 - nz**2)
    expected = eta_len * np.stack([sin * np.cos(phi), sin * np.sin(phi), nz], axis=1)
    np.testing.assert_allclose(eta, expected, atol=1e3 * 1e-10)  # global error ≲ 10³ rtol against the closed form
    # the state keeps the form (1 + η·S)/(2s+1) (exact for s = 1/2, a property of q-LLG for s = 1)
    rebuilt = (jnp.eye(d) + jnp.einsum("ta,aij->tij", eta, S)) / d
    np.testing.assert_allclose(rho, rebuilt, atol=1e-8)


def test_pure_qllg_equals_rescaled_qll(key):
    H, psi0 = random_spin_hamiltonian(key), q.random_ket(jax.random.fold_in(key, 2), 8)
    qllg = q.solve(H, psi0, TS, KAPPA, rtol=1e-10, atol=1e-12, method="dense").states
    qll = q.solve(H, psi0, TS / (1 + KAPPA**2), KAPPA, equation="qll", rtol=1e-10, atol=1e-12, method="dense").states
    np.testing.assert_allclose(qllg, qll, atol=1e-8)


@pytest.mark.parametrize("n_spins", [2, 3])
def test_invariants_of_mixed_states(n_spins, key):
    d = 2**n_spins
    H = q.dimer_hamiltonian((0.4, -0.3, 1.0), 0.7, (0.1, 0.2, 0.6)) if n_spins == 2 else random_spin_hamiltonian(key)
    rho0 = q.random_density_matrix(jax.random.fold_in(key, n_spins), d)
    result = q.solve(H, rho0, TS, KAPPA, rtol=1e-11, atol=1e-13, method="dense")
    spec0 = np.linalg.eigvalsh(np.asarray(rho0))
    assert np.max(np.abs(np.linalg.eigvalsh(np.asarray(result.states)) - spec0)) <= 1e-9
    assert np.max(np.abs(q.purity(result.states) - np.sum(spec0**2))) <= 1e-9
    assert np.max(np.abs(q.renyi_entropy(result.states, 2) + np.log(np.sum(spec0**2)))) <= 1e-9
    assert np.max(np.abs(q.von_neumann_entropy(result.states) - q.von_neumann_entropy(rho0))) <= 1e-8
    energy = np.asarray(q.energy(result.states, H))
    assert np.all(np.diff(energy) <= 1e-10) and energy[-1] < energy[0] - 1e-3
    diag = result.diagnostics().as_dict()
    assert diag["trace_error"] < 1e-12 and diag["spectrum_drift"] < 1e-9 and diag["energy_increase"] <= 1e-10


def test_generic_state_relaxes_to_passive_state(key):
    H = q.dimer_hamiltonian((0.4, -0.3, 1.0), 0.7, (0.1, 0.2, 0.6))
    rho0 = q.random_density_matrix(key, 4)
    final = q.solve(H, rho0, jnp.array([0.0, 300.0]), 1.0, rtol=1e-10, atol=1e-12, method="dense").states[-1]
    assert float(q.energy(final, H)) == pytest.approx(float(q.passive_energy(rho0, H)), abs=1e-7)
    np.testing.assert_allclose(final, q.passive_state(rho0, H), atol=1e-5)


def test_kappa_zero_is_unitary(key):
    H = random_spin_hamiltonian(key)
    rho0 = q.random_density_matrix(jax.random.fold_in(key, 3), 8)
    for equation, kappa in [("qllg", 0.0), ("von_neumann", 0.7)]:
        states = q.solve(H, rho0, TS, kappa, equation=equation, rtol=1e-10, atol=1e-12, method="dense").states
        for t, rho in zip(TS[::10], states[::10]):
            U = scipy.linalg.expm(-1j * float(t) * np.asarray(H))
            np.testing.assert_allclose(rho, U @ np.asarray(rho0) @ U.conj().T, atol=1e-8)


def test_mixed_qllg_and_qll_differ():
    """Paper's inequivalence: for a mixed two-qubit state ϱ̇ + κ²[ϱ,[ϱ,ϱ̇]] is not ∝ ϱ̇, and trajectories differ."""
    H = q.dimer_hamiltonian((1, 0, 0), 1.0, (0, 0, 0))
    rho0 = q.density_matrix(q.up_down_state()) * 0.7 + q.density_matrix(q.bell_state("phi+")) * 0.3
    rho_dot = QLLG(KAPPA)(rho0, H)
    lhs = rho_dot + KAPPA**2 * commutator(rho0, commutator(rho0, rho_dot))
    ratio = jnp.vdot(rho_dot, lhs) / jnp.vdot(rho_dot, rho_dot)
    assert float(jnp.max(jnp.abs(lhs - ratio * rho_dot))) > 1e-2
    qllg = q.solve(H, rho0, TS, KAPPA, method="dense").states
    for scale in (1.0, 1 + KAPPA**2):
        qll = q.solve(H, rho0, TS / scale, KAPPA, equation="qll", method="dense").states
        assert float(jnp.max(jnp.abs(qllg - qll))) > 1e-2


def test_paper_fig2a_afm_dimer_becomes_singlet():
    H = q.dimer_hamiltonian((1, 0, 0), 1.0, (0, 0, 0))
    result = q.solve(H, q.up_down_state(), jnp.array([0.0, 10.0, 40.0]), KAPPA, method="dense")
    np.testing.assert_allclose(q.correlation_matrix(result.states[-1]), -np.eye(3), atol=1e-6)
    np.testing.assert_allclose(q.bloch_vectors(result.states[-1]), np.zeros((2, 3)), atol=1e-6)
    assert float(q.bell_nonlocality(result.states[-1])) == pytest.approx(1.0, abs=1e-6)


def test_werner_two_level_reduction():
    H = q.dimer_hamiltonian(np.ones(3) / np.sqrt(3), 1.0, (0, 0, 0.4))
    rho0 = q.werner_state("psi+", 0.9)
    dense = q.solve(H, rho0, TS, KAPPA, rtol=1e-10, atol=1e-12, method="dense").states
    np.testing.assert_allclose(dense, q.two_level_exact(H, rho0, TS, KAPPA), atol=1e-8)


@pytest.mark.parametrize("strategy", ["eigen", "kron", "krylov"])
def test_linear_solve_strategies(strategy, key):
    rho = q.random_density_matrix(key, 8)
    H = random_spin_hamiltonian(key)
    b = 1j * commutator(rho, H)
    x = solve_resolvent(rho, b, 0.8, strategy)
    np.testing.assert_allclose(x - 0.8j * commutator(rho, x), b, atol=1e-12)  # residual of the defining system
    # explicit eigenbasis formula of the developers' guide, written with numpy
    lam, V = np.linalg.eigh(np.asarray(rho))
    Ht = V.conj().T @ np.asarray(H) @ V
    gap = lam[:, None] - lam[None, :]
    np.testing.assert_allclose(V.conj().T @ np.asarray(x) @ V, 1j * gap * Ht / (1 - 0.8j * gap), atol=1e-12)


@pytest.mark.parametrize("strategy", ["eigen", "krylov"])
def test_strategies_agree_along_trajectory(strategy, key):
    H = random_spin_hamiltonian(key)
    rho0 = q.random_density_matrix(key, 8, rank=3)
    ref = q.solve(H, rho0, TS, KAPPA, strategy="kron", rtol=1e-10, atol=1e-12, method="dense").states
    other = q.solve(H, rho0, TS, KAPPA, strategy=strategy, rtol=1e-10, atol=1e-12, method="dense").states
    np.testing.assert_allclose(other, ref, atol=1e-8)


def test_complex_state_integration_matches(key):
    H = q.dimer_hamiltonian((1, 0, 0), 1.0, (0, 0, 0.6))
    psi0 = q.up_down_state()
    with pytest.warns(UserWarning, match="Complex"):
        states = q.solve(H, psi0, TS, KAPPA, complex_state=True, method="dense", rtol=1e-11, atol=1e-13).states
    # integrator vs closed form: the global error of an adaptive solve, ≲ 10³ rtol (steps × growth × local error)
    np.testing.assert_allclose(states, q.density_matrix(q.pure_state_exact(H, psi0, TS, KAPPA)), atol=1e3 * 1e-11)


def test_higher_order_solver_and_observables_only():
    H = q.dimer_hamiltonian((1, 0, 0), -1.0, (0, 0, 0))
    psi0 = q.up_down_state()
    result = q.solve(
        H, psi0, TS, KAPPA, solver=diffrax.Dopri8(), rtol=1e-10, atol=1e-12, save_states=False,
        observables={"bloch": q.bloch_vectors, "sz1": q.embed(q.pauli_matrices()[2], 0, (2, 2))}, method="dense"
    )
    assert result.states is None
    exact = q.density_matrix(q.pure_state_exact(H, psi0, TS, KAPPA))
    # integrator vs closed form: the global error of an adaptive solve, ≲ 10³ rtol (steps × growth × local error)
    np.testing.assert_allclose(result.observables["bloch"], q.bloch_vectors(exact), atol=1e3 * 1e-10)
    np.testing.assert_allclose(result.observables["sz1"], q.bloch_vectors(exact)[:, 0, 2], atol=1e3 * 1e-10)
    assert result.diagnostics().as_dict()["spectrum_drift"] <= 1e-9  # measured from the final state


def test_batched_solve_vmaps_hamiltonians_and_states():
    Js = jnp.array([-1.0, 0.5, 1.0])
    Hs = jax.vmap(lambda J: q.dimer_hamiltonian((1, 0, 0), J, (0, 0, 0.3)))(Js)
    psi0 = q.up_down_state()
    tight = dict(method="dense", rtol=1e-10, atol=1e-12)
    tol = 1e3 * tight["rtol"]  # integrator vs closed form: global error ≲ 10³ rtol (steps × growth × local error)
    batched = q.solve(Hs, psi0, TS, KAPPA, **tight)
    assert batched.states.shape == (3, len(TS), 4, 4)
    for H, states in zip(Hs, batched.states):
        np.testing.assert_allclose(states, q.density_matrix(q.pure_state_exact(H, psi0, TS, KAPPA)), atol=tol)
    rhos = jnp.stack([q.werner_state(b, 0.9) for b in q.BELL_STATES])
    via_vmap = jax.vmap(lambda r: q.solve(Hs[0], r, TS, KAPPA, **tight).states)(rhos)
    for rho0, states in zip(rhos, via_vmap):
        np.testing.assert_allclose(states, q.two_level_exact(Hs[0], rho0, TS, KAPPA), atol=tol)


def test_solve_under_jit():
    psi0 = q.up_down_state()

    @jax.jit
    def final_nonlocality(J):
        H = q.dimer_hamiltonian((1, 0, 0), J, (0, 0, 0))
        return q.bell_nonlocality(q.solve(H, psi0, TS, KAPPA, method="dense").states[-1])

    H = q.dimer_hamiltonian((1, 0, 0), 1.0, (0, 0, 0))
    expected = q.bell_nonlocality(q.density_matrix(q.pure_state_exact(H, psi0, TS, KAPPA))[-1])
    assert float(final_nonlocality(1.0)) == pytest.approx(float(expected), abs=1e-8)


def test_max_steps_is_a_clear_error():
    H = q.dimer_hamiltonian((1, 0, 0), 1.0, (0, 0, 0))
    with pytest.raises(q.SolveError, match="max_steps"):
        q.solve(H, q.up_down_state(), TS, KAPPA, max_steps=5, method="dense")
    result = q.solve(H, q.up_down_state(), TS, KAPPA, max_steps=5, throw=False, method="dense")
    assert not bool(result.success)


@pytest.mark.parametrize(
    "H,rho0,message",
    [
        (np.array([[0, 1], [0, 0]]), np.eye(2) / 2, "H is not Hermitian"),
        (np.eye(2), np.eye(2), "unit trace"),
        (np.eye(2), np.diag([1.5, -0.5]), "positive semidefinite"),
        (np.eye(4), np.eye(2) / 2, "dimension"),
        (np.diag([1.0, np.nan]), np.eye(2) / 2, "NaN"),
        (np.eye(2), np.diag([np.nan, 1.0]), "rho0 contains NaN"),
        (np.eye(2), np.array([[0.5, 0.5j], [0.1, 0.5]]), "rho0 is not Hermitian"),
        (np.ones((2, 3)), np.eye(2) / 2, "square"),
    ],
)
def test_bad_inputs_raise(H, rho0, message):
    with pytest.raises(ValueError, match=message):
        q.solve(H, rho0, TS, KAPPA, method="dense")


def test_bad_options_raise():
    H, rho0 = np.eye(2), np.eye(2) / 2
    with pytest.raises(ValueError, match="kappa"):
        q.solve(H, rho0, TS, -0.1, method="dense")
    with pytest.raises(ValueError, match="ts"):
        q.solve(H, rho0, TS[::-1], 0.1, method="dense")
    with pytest.raises(ValueError, match="ts"):
        q.solve(H, rho0, [], 0.1, method="dense")
    with pytest.raises(ValueError, match="equation"):
        q.solve(H, rho0, TS, 0.1, equation="lindblad", method="dense")
    with pytest.raises(ValueError, match="strategy"):
        q.solve(H, rho0, TS, 0.1, strategy="magic", method="dense")
