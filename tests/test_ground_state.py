"""q-LLG ground-state search and passive-state limit vs exact diagonalisation (numpy.linalg.eigvalsh).

Initial states: the default Haar-random ket (generic overlap with the ground state). A symmetric product
state can be orthogonal to the ground state; that documented failure mode is checked too.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.ground_state import energy_and_variance, ground_state, passive_flow


def exact_levels(H):
    return np.linalg.eigvalsh(np.asarray(H))


def test_random_hamiltonian_dense_and_rate():
    """Random 5-qubit H (dense): E = E0 to 1e-8; at κ = 1 the variance decays as e^{−gap·t} (rate κ/(1+κ²)·gap
    for the amplitudes)."""
    H = q.random_hamiltonian(jax.random.PRNGKey(11), 32)
    levels = exact_levels(H)
    res = ground_state(H, tol=1e-12, chunk_time=2.0)
    assert bool(res.converged)
    assert abs(float(res.energy) - levels[0]) < 1e-8
    np.testing.assert_allclose(abs(np.vdot(np.linalg.eigh(np.asarray(H))[1][:, 0], np.asarray(res.state))), 1.0, atol=1e-6)
    energies, variances, times = map(np.asarray, (res.energies, res.variances, res.times))
    assert np.all(np.diff(energies) <= 1e-12)  # energy decreases monotonically
    tail = variances < 1e-6  # asymptotic regime: only the first excited level matters
    slope = np.polyfit(times[tail], np.log(variances[tail]), 1)[0]
    np.testing.assert_allclose(-slope, levels[1] - levels[0], rtol=0.1)


def test_heisenberg_chain_10_spins_matrix_free():
    """Open antiferromagnetic Heisenberg chain, N = 10 (D = 1024), H applied matrix-free as a SpinModel."""
    model = q.chain_model(10, exchange=1.0)
    res = ground_state(model, tol=1e-11, chunk_time=10.0)
    e0 = exact_levels(model.matrix())[0]
    assert bool(res.converged)
    assert abs(float(res.energy) - e0) < 1e-8
    mean, var = energy_and_variance(model.matrix(), res.state)  # dense re-evaluation of the returned ket
    assert abs(float(mean) - e0) < 1e-8 and float(var) < 1e-10


def test_transverse_field_ising_chain_dense():
    """H = −Σ σᶻσᶻ − g Σ σˣ (open, N = 8, g = 1.5: gapped paramagnet), passed as a dense matrix."""
    n, g = 8, 1.5
    zz = jnp.zeros((3, 3)).at[2, 2].set(-4.0)  # S = σ/2: S Γ S with Γ_zz = −4 is −σᶻσᶻ
    model = q.spin_model([0.5] * n, bonds=q.chain_bonds(n), anisotropic_exchange=zz, field=(2 * g, 0.0, 0.0))
    H = model.matrix()
    res = ground_state(H, tol=1e-11, chunk_time=4.0, key=jax.random.PRNGKey(3))
    assert bool(res.converged)
    assert abs(float(res.energy) - exact_levels(H)[0]) < 1e-8


def test_symmetric_product_state_misses_the_ground_state():
    """|↑…↑⟩ is an eigenstate of the Heisenberg chain (S_z = N/2 sector): variance 0, no flow, E ≠ E0."""
    model = q.chain_model(4, exchange=1.0)
    up = jnp.zeros(16, dtype=complex).at[0].set(1.0)
    res = ground_state(model, up, tol=1e-10)
    assert bool(res.converged) and res.times.shape == (1,)
    assert float(res.energy) > exact_levels(model.matrix())[0] + 0.5


def test_passive_state_reached_by_generic_mixed_state():
    """Random 3-qubit H, random full-rank ϱ0: energy → Σ λ↓ E↑ and ϱ → the passive state; spectrum kept."""
    H = q.random_hamiltonian(jax.random.PRNGKey(21), 8)
    lam = 0.5 ** np.arange(1.0, 9.0)
    lam /= lam.sum()  # full rank, well separated (the relaxation rate grows with λ_i − λ_j)
    u = np.linalg.eigh(np.asarray(q.random_hamiltonian(jax.random.PRNGKey(22), 8)))[1]  # random eigenbasis
    rho0 = jnp.asarray((u * lam) @ u.conj().T)
    res = passive_flow(H, rho0, tol=1e-14, chunk_time=10.0, rtol=1e-10, atol=1e-12)
    target = float(np.sum(lam * exact_levels(H)))  # independent Σ λ↓ E↑
    assert bool(res.converged)
    assert abs(float(res.energy) - target) < 1e-8
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(np.asarray(res.state)))[::-1], lam, atol=1e-8)
    np.testing.assert_allclose(np.asarray(res.state), np.asarray(q.passive_state(rho0, H)), atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(kappa=0.0), dict(tol=-1.0), dict(max_time=0.0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ground_state(jnp.eye(2), **kwargs)
