"""Observables and states against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q


@pytest.mark.parametrize("p", [0.3, 0.6, 0.9, 1.0])
@pytest.mark.parametrize("bell", q.BELL_STATES)
def test_werner_nonlocality_and_concurrence(bell, p):
    rho = q.werner_state(bell, p)
    # Werner T = p·diag(±1, ±1, ±1): u1 + u2 = 2p², so B = sqrt(max(2p² − 1, 0)); C = max(0, (3p − 1)/2)
    assert float(q.bell_nonlocality(rho)) == pytest.approx(np.sqrt(max(2 * p**2 - 1, 0)), abs=1e-12)
    assert float(q.concurrence(rho)) == pytest.approx(max(0.0, (3 * p - 1) / 2), abs=1e-7)
    signs = {"phi+": (1, -1, 1), "phi-": (-1, 1, 1), "psi+": (1, 1, -1), "psi-": (-1, -1, -1)}[bell]
    np.testing.assert_allclose(q.correlation_matrix(rho), p * np.diag(signs), atol=1e-12)


@pytest.mark.parametrize("bell", ["phi+", "psi-"])
def test_concurrence_gradient_is_finite_at_degenerate_spectra(bell):
    """Werner states have a triply degenerate spectrum, where eigh's vectors have no derivative: dC/dp of
    C = (3p − 1)/2 is 3/2 exactly (closed form; round-off of eigh only, so 1e-8). A generic mixed state (distinct
    eigenvalues) against central differences along a Hermitian direction: h = 1e-5 gives O(h²) ≈ 1e-10 truncation
    and ≈ 1e-11 round-off, so 1e-6 relative."""
    for p in (0.5, 0.8):
        assert float(jax.grad(lambda x: q.concurrence(q.werner_state(bell, x)))(p)) == pytest.approx(1.5, abs=1e-8)
    rho0 = 0.4 * np.asarray(q.werner_state(bell, 0.9)) + 0.6 * np.asarray(q.random_density_matrix(jax.random.PRNGKey(3), 4))
    direction = np.array(q.random_hamiltonian(jax.random.PRNGKey(4), 4))
    direction -= np.trace(direction) / 4 * np.eye(4)  # traceless: ϱ0 + x·direction stays a unit-trace state near x = 0
    c = lambda x: q.concurrence(rho0 + 0.01 * x * direction)  # noqa: E731
    assert float(c(0.0)) > 0.05  # entangled: the max(0, ·) is not active
    h = 1e-5
    reference = (float(c(h)) - float(c(-h))) / (2 * h)
    assert float(jax.grad(c)(0.0)) == pytest.approx(reference, rel=1e-6)


def test_product_state_observables():
    n1, n2 = np.array([0.3, -0.4, 0.5]), np.array([-1.0, 0.2, 0.1])
    psi = q.coherent_product_state([0.5, 0.5], [n1, n2])
    rho = q.density_matrix(psi)
    r = q.bloch_vectors(rho)
    np.testing.assert_allclose(r, [n1 / np.linalg.norm(n1), n2 / np.linalg.norm(n2)], atol=1e-12)
    np.testing.assert_allclose(q.correlation_matrix(rho), np.outer(r[0], r[1]), atol=1e-12)
    assert float(q.concurrence(rho)) == pytest.approx(0.0, abs=1e-7)
    assert float(q.bell_nonlocality(rho)) == 0.0
    np.testing.assert_allclose(q.partial_trace(rho, (2, 2), [1]), q.density_matrix(q.coherent_state(0.5, n2)), atol=1e-12)


def test_product_states_have_no_bell_nonlocality_and_the_threshold_keeps_small_violations():
    """Product states: u1 + u2 = 1 exactly, so B = 0 — not √(round-off) ~ 1e-8 (29 of these 64 gave that before);
    Werner Ψ− just above p = 1/√2 keeps B = √(2p² − 1) ≈ 1.7e-3 (closed form)."""
    directions = np.random.default_rng(0).normal(size=(64, 2, 3))
    rhos = jnp.stack([q.density_matrix(q.coherent_product_state([0.5, 0.5], list(n))) for n in directions])
    assert np.all(np.asarray(q.bell_nonlocality(rhos)) == 0.0)
    p = 1 / np.sqrt(2) + 1e-6
    np.testing.assert_allclose(q.bell_nonlocality(q.werner_state("psi-", p)), np.sqrt(2 * p**2 - 1), rtol=1e-8)


@pytest.mark.parametrize("s", [0.5, 1.0, 2.5])
def test_coherent_state_spin_expectation(s):
    n = np.array([0.2, 0.9, -0.4])
    rho = q.density_matrix(q.coherent_state(s, n))
    np.testing.assert_allclose(q.spin_expectations(rho, [s])[0], s * n / np.linalg.norm(n), atol=1e-12)


def test_up_down_state_spin_s():
    rho = q.density_matrix(q.up_down_state(1.5))
    np.testing.assert_allclose(q.spin_expectations(rho, [1.5, 1.5]), [[0, 0, 1.5], [0, 0, -1.5]], atol=1e-12)


def test_partial_trace_three_sites(key):
    a, b, c = (q.random_density_matrix(jax.random.fold_in(key, i), d) for i, d in enumerate((2, 3, 2)))
    rho = jnp.kron(jnp.kron(a, b), c)
    np.testing.assert_allclose(q.partial_trace(rho, (2, 3, 2), [0, 2]), jnp.kron(a, c), atol=1e-12)
    np.testing.assert_allclose(q.partial_trace(rho, (2, 3, 2), [1]), b, atol=1e-12)


def test_entropies():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    rho = jnp.diag(p).astype(complex)
    nz = p[p > 0]
    assert float(q.von_neumann_entropy(rho)) == pytest.approx(-np.sum(nz * np.log(nz)))
    assert float(q.renyi_entropy(rho, 2)) == pytest.approx(-np.log(np.sum(p**2)))
    assert float(q.renyi_entropy(rho, 3)) == pytest.approx(np.log(np.sum(p**3)) / -2)
    assert float(q.purity(rho)) == pytest.approx(np.sum(p**2))
    with pytest.raises(ValueError, match="alpha"):
        q.renyi_entropy(rho, 1.0)


def test_thermal_and_random_states(key):
    H = q.dimer_hamiltonian((1, 0, 0), 1.0, (0, 0, 0))
    beta = 0.7
    E, V = np.linalg.eigh(np.asarray(H))
    w = np.exp(-beta * E) / np.sum(np.exp(-beta * E))
    np.testing.assert_allclose(q.thermal_state(H, beta), (V * w) @ V.conj().T, atol=1e-12)
    rho = q.random_density_matrix(key, 6, rank=2)
    assert np.linalg.matrix_rank(np.asarray(rho), tol=1e-10) == 2
    q.validate_state(rho)
    assert float(jnp.linalg.norm(q.random_ket(key, 5))) == pytest.approx(1.0)


def test_passive_state_energy(key):
    H = q.dimer_hamiltonian((0.4, 0.1, 1.0), 0.7, (0, 0, 0.5))
    rho = q.random_density_matrix(key, 4)
    passive = q.passive_state(rho, H)
    np.testing.assert_allclose(np.linalg.eigvalsh(np.asarray(passive)), np.linalg.eigvalsh(np.asarray(rho)), atol=1e-12)
    assert float(q.energy(passive, H)) == pytest.approx(float(q.passive_energy(rho, H)))
    # no unitary orbit point is lower: try random unitaries
    for i in range(20):
        U, _ = np.linalg.qr(np.asarray(q.random_hamiltonian(jax.random.fold_in(key, i), 4)) + 1j * np.eye(4))
        assert float(q.energy(U @ rho @ U.conj().T, H)) >= float(q.passive_energy(rho, H)) - 1e-12


def test_state_validation_errors():
    with pytest.raises(ValueError, match="Werner"):
        q.werner_state("psi+", 1.2)
    with pytest.raises(ValueError, match="Bell"):
        q.bell_state("chi")
    with pytest.raises(ValueError, match="normalised"):
        q.density_matrix(jnp.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="positive semidefinite"):
        q.validate_state(jnp.diag(jnp.array([1.2, -0.2])))
    with pytest.raises(ValueError, match="rank"):
        q.random_density_matrix(jax.random.PRNGKey(0), 3, rank=4)
    with pytest.raises(ValueError, match="two-qubit"):
        q.correlation_matrix(jnp.eye(3) / 3)
    with pytest.raises(ValueError, match="not a projection"):
        q.basis_state(1.0, 0.5)
