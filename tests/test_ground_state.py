"""Ground-state search (q-LLG eq. 28 by restarted Lanczos, and the time-stepping flow) and the passive-state flow,
against exact diagonalisation (numpy eigh / scipy eigsh), scipy's matrix exponential and closed forms.

Small systems and shared shapes keep compilation cheap: dense tests use D = 32, model tests the 10-spin chain.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

import qllg_jax as q
from qllg_jax.ground_state import STATUS_REASONS, energy_and_variance, ground_state, passive_flow
from qllg_jax.ground_state.result import CONVERGED, MAX_ITERATIONS, MAX_TIME

H32 = q.random_hamiltonian(jax.random.PRNGKey(11), 32)


def chain_sparse(n, exchange=1.0, field=(0.0, 0.0, 0.0)):
    """Open spin-1/2 chain J Σ S_k·S_{k+1} − Σ b·S_k (S = σ/2) and S² = (Σ S_k)², built independently of
    SpinModel from scipy.sparse Kronecker products (basis |↑…⟩ first, σ_z|↑⟩ = +|↑⟩)."""
    pauli = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.array([[1, 0], [0, -1]])]

    def site(op, k):
        return sp.kron(sp.kron(sp.identity(2**k), op / 2), sp.identity(2 ** (n - k - 1)), format="csr")

    spins = [[site(p, k) for p in pauli] for k in range(n)]
    H = sum(exchange * spins[k][a] @ spins[k + 1][a] for k in range(n - 1) for a in range(3))
    H = H - sum(field[a] * spins[k][a] for k in range(n) for a in range(3))
    total = [sum(spins[k][a] for k in range(n)) for a in range(3)]
    return sp.csr_matrix(H), sum(t @ t for t in total)


def lowest(H_sparse):
    value, vector = scipy.sparse.linalg.eigsh(H_sparse, k=1, which="SA", tol=0, v0=np.ones(H_sparse.shape[0]))
    return value[0], vector[:, 0]


def eigh(H):
    return np.linalg.eigh(np.asarray(H))


def overlap(a, b):
    return abs(np.vdot(np.asarray(a), np.asarray(b)))


def test_one_restart_is_the_closed_form_eq_28():
    """With a small first step τ0 the first restart is ψ(τ0) ∝ exp(−iH_eff τ0)ψ0, H_eff = (1 − iκ)H/(1 + κ²)
    (scipy expm), at κ = 0.3; max_iterations=1 stops it there, not converged, with the reason."""
    kappa, tau0 = 0.3, 0.05
    psi0 = q.random_ket(jax.random.PRNGKey(1), 32)
    res = ground_state(H32, psi0, kappa=kappa, tau0=tau0, max_iterations=1, krylov_dim=8, tol=1e-20)
    exact = scipy.linalg.expm(-1j * (1 - 1j * kappa) / (1 + kappa**2) * tau0 * np.asarray(H32)) @ np.asarray(psi0)
    exact /= np.linalg.norm(exact)
    psi = np.asarray(res.state)
    psi = psi * np.vdot(psi, exact) / abs(np.vdot(psi, exact))  # the flow's global phase is arbitrary
    np.testing.assert_allclose(psi, exact, atol=1e-11)
    assert not bool(res.converged) and int(res.status) == MAX_ITERATIONS and res.reason == STATUS_REASONS[MAX_ITERATIONS]
    np.testing.assert_allclose(np.asarray(res.times), [0.0, tau0])
    np.testing.assert_allclose(float(res.energies[1]), np.real(np.vdot(exact, np.asarray(H32) @ exact)), atol=1e-12)


def test_random_hamiltonian_restarted_krylov():
    """Random H (D = 32), Krylov spaces of 8 (several restarts): E0 to 1e-8 relative, the exact ground state
    (overlap 1 − 1e−9), energies non-increasing, Var = ‖(H − E)ψ‖² re-evaluated with numpy ≤ tol."""
    levels, vectors = eigh(H32)
    res = ground_state(H32, krylov_dim=8, tol=1e-12)
    assert bool(res.converged) and int(res.iterations) > 1
    assert abs(float(res.energy) - levels[0]) <= 1e-8 * abs(levels[0])
    assert overlap(vectors[:, 0], res.state) > 1 - 1e-9
    assert np.all(np.diff(np.asarray(res.energies)) <= 1e-12)
    psi, h = np.asarray(res.state), np.asarray(H32)
    e = np.real(np.vdot(psi, h @ psi))
    assert np.linalg.norm(h @ psi - e * psi) ** 2 <= 1e-12
    assert abs(float(res.variance) - np.linalg.norm(h @ psi - e * psi) ** 2) < 1e-14


def test_adaptive_tau_and_time_cap():
    """From a small τ0 the steps grow by ``growth`` while the energy drops; ``max_time`` stops the search at
    exactly that simulated time, not converged."""
    res = ground_state(H32, tau0=0.01, growth=3.0, max_time=0.5, krylov_dim=8, tol=1e-12)
    steps = np.diff(np.asarray(res.times))
    np.testing.assert_allclose(steps[:3], [0.01, 0.03, 0.09])
    assert int(res.status) == MAX_TIME and not bool(res.converged)
    np.testing.assert_allclose(float(res.times[-1]), 0.5)
    assert np.all(np.diff(np.asarray(res.energies)) <= 1e-12)


def test_flow_baseline_rate_and_caps():
    """Time-stepping baseline (``method="flow"``): E0 to 1e-8; at κ = 1 the variance decays as e^{−gap·t}
    (gap from numpy); ``max_time`` caps it (status MAX_TIME), the energy never rises."""
    levels = eigh(H32)[0]
    res = ground_state(H32, method="flow", tol=1e-12)
    assert bool(res.converged) and res.method == "flow"
    assert abs(float(res.energy) - levels[0]) <= 1e-8 * abs(levels[0])
    times, variances = np.asarray(res.times), np.asarray(res.variances)
    assert np.all(np.diff(np.asarray(res.energies)) <= 1e-12)
    tail = variances < 1e-6  # asymptotic regime: only the first excited level matters
    slope = np.polyfit(times[tail], np.log(variances[tail]), 1)[0]
    np.testing.assert_allclose(-slope, levels[1] - levels[0], rtol=0.1)
    capped = ground_state(H32, method="flow", tol=1e-12, max_time=0.5)
    assert int(capped.status) == MAX_TIME and not bool(capped.converged)
    np.testing.assert_allclose(float(capped.times[-1]), 0.5)


def test_heisenberg_chain_matrix_free_vs_eigsh():
    """Open AFM Heisenberg chain, N = 10 (D = 1024), H applied matrix-free as a SpinModel, vs scipy eigsh."""
    model = q.chain_model(10, exchange=1.0)
    H, _ = chain_sparse(10)
    value, vector = lowest(H)
    res = ground_state(model, tol=1e-11)
    assert bool(res.converged) and int(res.num_matvecs) < 200
    assert abs(float(res.energy) - value) <= 1e-8 * abs(value)
    assert overlap(vector, res.state) > 1 - 1e-9
    psi = np.asarray(res.state)  # scipy re-evaluation of the returned ket
    energy = np.real(np.vdot(psi, H @ psi))
    assert abs(energy - value) <= 1e-8 * abs(value) and np.linalg.norm(H @ psi - energy * psi) ** 2 <= 1e-11
    mean, var = energy_and_variance(model, res.state)
    np.testing.assert_allclose([float(mean), float(var)], [energy, np.linalg.norm(H @ psi - energy * psi) ** 2], atol=1e-13)


def sz_sector(n, ups):
    """Basis indices with ``ups`` spins up (bit 0 = up, basis |↑…⟩ first) of n spins 1/2."""
    return np.array([i for i in range(2**n) if n - bin(i).count("1") == ups])


def test_symmetry_sector_ends_in_its_lowest_state():
    """ψ0 in the S_z = +1 sector of the 10-spin Heisenberg chain is orthogonal to the (S_z = 0) ground state:
    the search ends in the lowest state of that sector (exact diagonalisation of H restricted to it), above E0."""
    model = q.chain_model(10, exchange=1.0)
    H = chain_sparse(10)[0]
    sector = sz_sector(10, 6)
    amplitudes = np.asarray(q.random_ket(jax.random.PRNGKey(5), len(sector)))
    psi0 = np.zeros(2**10, dtype=complex)
    psi0[sector] = amplitudes
    res = ground_state(model, jnp.asarray(psi0), tol=1e-11)
    sector_levels, sector_vectors = np.linalg.eigh(H[sector][:, sector].toarray())
    assert bool(res.converged)
    assert abs(float(res.energy) - sector_levels[0]) <= 1e-8 * abs(sector_levels[0])
    assert float(res.energy) > lowest(H)[0] + 0.1
    assert overlap(sector_vectors[:, 0], np.asarray(res.state)[sector]) > 1 - 1e-9


def test_eigenstate_stops_at_once():
    """|↑…↑⟩ is an eigenstate of the Heisenberg chain with E = (N − 1)J/4: variance 0, no restart."""
    model = q.chain_model(10, exchange=1.0)
    up = jnp.zeros(2**10, dtype=complex).at[0].set(1.0)
    res = ground_state(model, up, tol=1e-11)
    assert bool(res.converged) and int(res.iterations) == 0 and res.times.shape == (1,)
    np.testing.assert_allclose(float(res.energy), 9 / 4, atol=1e-14)


def test_degenerate_ground_multiplet():
    """Ferromagnetic chain J = −1, N = 10: the ground level is the 11-fold degenerate S = 5 multiplet with
    E0 = −(N − 1)/4. The search converges to a state inside it: ⟨S²⟩ = S(S + 1) = 30 (scipy, S² built
    independently)."""
    model = q.chain_model(10, exchange=-1.0)
    _, total_spin_squared = chain_sparse(10)
    res = ground_state(model, tol=1e-11)
    assert bool(res.converged)
    np.testing.assert_allclose(float(res.energy), -9 / 4, rtol=1e-8)
    psi = np.asarray(res.state)
    np.testing.assert_allclose(np.real(np.vdot(psi, total_spin_squared @ psi)), 30.0, rtol=1e-8)


def test_jit_and_no_recompilation_for_a_new_hamiltonian(compiles):
    """A second call with another H of the same structure (other couplings, κ and tol) compiles nothing (counted
    with jax.monitoring); ground_state also runs under jax.jit with a traced H and κ (same energy as eagerly)."""
    model = q.chain_model(10, exchange=1.0)
    other = q.chain_model(10, exchange=0.7, field=(0.1, 0.0, 0.2))
    ground_state(model, tol=1e-11)
    compiles.clear()
    second = ground_state(other, tol=2e-11, kappa=0.8)
    assert compiles == []
    value = lowest(chain_sparse(10, 0.7, (0.1, 0.0, 0.2))[0])[0]
    assert bool(second.converged) and abs(float(second.energy) - value) <= 1e-8 * abs(value)
    jitted = jax.jit(lambda h, k: ground_state(h, kappa=k, krylov_dim=8, tol=1e-12))(H32, 0.5)
    np.testing.assert_allclose(float(jitted.energy), eigh(H32)[0][0], atol=1e-10)
    assert bool(jitted.converged) and jitted.times.shape == (1001,)  # NaN-padded history under jit


def test_single_qubit():
    """D = 2 (Krylov space = whole space): E0 = −|b| for H = b·σ."""
    H = 0.7 * q.pauli_matrices()[0] + 0.2 * q.pauli_matrices()[2]
    res = ground_state(H, tol=1e-14)
    np.testing.assert_allclose(float(res.energy), -np.hypot(0.7, 0.2), atol=1e-12)


def random_mixed_state(seed, lam):
    u = eigh(q.random_hamiltonian(jax.random.PRNGKey(seed), len(lam)))[1]  # random eigenbasis
    return jnp.asarray((u * lam) @ u.conj().T)


def test_passive_state_reached_by_generic_mixed_state():
    """Random 3-qubit H, random full-rank ϱ0: energy → Σ λ↓ E↑ (numpy) and ϱ → the passive state, spectrum kept;
    one compiled solve with the steady-state Event."""
    H = q.random_hamiltonian(jax.random.PRNGKey(21), 8)
    lam = np.arange(8.0, 0.0, -1.0) / 36  # full rank, evenly separated (relaxation rates grow with λ_i − λ_j)
    rho0 = random_mixed_state(22, lam)
    res = passive_flow(H, rho0, tol=1e-14)
    levels, vectors = eigh(H)
    assert bool(res.converged)
    assert abs(float(res.energy) - float(np.sum(lam * levels))) < 1e-8
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(np.asarray(res.state)))[::-1], lam, atol=1e-8)
    np.testing.assert_allclose(np.asarray(res.state), (vectors * lam) @ vectors.conj().T, atol=1e-5)
    rho = np.asarray(res.state)
    commutator = rho @ np.asarray(H) - np.asarray(H) @ rho
    np.testing.assert_allclose(float(res.variance), np.sum(np.abs(commutator) ** 2) / 2, rtol=1e-6, atol=1e-20)
    # non-generic: ϱ0 commuting with H (weights ascending with energy) is stationary, the stop is immediate
    stationary = passive_flow(H, jnp.asarray((vectors * lam[::-1]) @ vectors.conj().T), tol=1e-14)
    assert bool(stationary.converged) and stationary.times.shape == (1,)
    np.testing.assert_allclose(float(stationary.energy), np.sum(lam[::-1] * levels), atol=1e-12)


def test_passive_flow_low_rank_matrix_free():
    """Rank-2 ϱ0 as a LowRankState on the 6-spin Heisenberg chain (SpinModel, never a D×D ϱ): energy → λ1 E0 + λ2 E1
    (numpy eigvalsh; E1 is a degenerate triplet)."""
    model = q.chain_model(6, exchange=1.0)
    gaussian = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (2, 64, 2)))
    frame = np.linalg.qr(gaussian[0] + 1j * gaussian[1])[0]  # random orthonormal (64, 2)
    rho0 = q.LowRankState(jnp.asarray(frame), jnp.asarray([0.7, 0.3]))
    res = passive_flow(model, rho0, tol=1e-12)
    levels = np.linalg.eigvalsh(np.asarray(model.matrix()))
    assert bool(res.converged) and isinstance(res.state, q.LowRankState)
    assert abs(float(res.energy) - (0.7 * levels[0] + 0.3 * levels[1])) < 1e-8


H2 = jnp.asarray(q.pauli_matrices()[0])
RHO = jnp.eye(2) / 2 + 0.1 * jnp.asarray(q.pauli_matrices()[2])
BAD_INPUTS = {
    # audit 2026-11-25 (area ground): chunk_time 1e-9 ran > 150 s; tol 1e-300 is unreachable in float64
    "ground_state tol 1e-300 (audit row)": (lambda: ground_state(H2, tol=1e-300), "tol", "float64"),
    "ground_state tol 0": (lambda: ground_state(H2, tol=0.0), "tol", "> 0"),
    "ground_state tol negative": (lambda: ground_state(H2, tol=-1.0), "tol", "> 0"),
    "ground_state tol nan": (lambda: ground_state(H2, tol=float("nan")), "tol", "finite"),
    "ground_state kappa 0": (lambda: ground_state(H2, kappa=0.0), "kappa", "> 0"),
    "ground_state kappa vector": (lambda: ground_state(H2, kappa=[1.0, 2.0]), "kappa", "scalar"),
    "ground_state method": (lambda: ground_state(H2, method="lanczos"), "method", "krylov"),
    "ground_state krylov_dim 1": (lambda: ground_state(H2, krylov_dim=1), "krylov_dim", ">= 2"),
    "ground_state krylov_dim float": (lambda: ground_state(H2, krylov_dim=2.5), "krylov_dim", "integer"),
    "ground_state max_iterations 0": (lambda: ground_state(H2, max_iterations=0), "max_iterations", "> 0"),
    "ground_state max_iterations huge": (lambda: ground_state(H2, max_iterations=10**12), "max_iterations", "memory"),
    "ground_state max_time 0": (lambda: ground_state(H2, max_time=0.0), "max_time", "> 0"),
    "ground_state max_time inf": (lambda: ground_state(H2, max_time=float("inf")), "max_time", "finite"),
    "ground_state max_steps 0": (lambda: ground_state(H2, method="flow", max_steps=0), "max_steps", "> 0"),
    "ground_state tau0": (lambda: ground_state(H2, tau0=-1.0), "tau0", "> 0"),
    "ground_state growth 1": (lambda: ground_state(H2, growth=1.0), "growth", "> 1"),
    "ground_state chunk_time": (lambda: ground_state(H2, chunk_time=-1.0), "chunk_time", "> 0"),
    "ground_state progress krylov": (lambda: ground_state(H2, progress=True), "progress", "flow"),
    "ground_state psi0 dimension": (lambda: ground_state(H2, jnp.ones(3) / np.sqrt(3)), "psi0", "dimension"),
    "ground_state psi0 batch": (lambda: ground_state(H2, jnp.eye(2, dtype=complex)), "psi0", "one ket"),
    "ground_state psi0 unnormalised": (lambda: ground_state(H2, jnp.ones(2)), "psi0", "normalised"),
    "ground_state H batch": (lambda: ground_state(jnp.stack([H2, H2])), "H", "one (D, D)"),
    "ground_state H string": (lambda: ground_state("H"), "H", "array-like"),
    "passive_flow tol 1e-300": (lambda: passive_flow(H2, RHO, tol=1e-300), "tol", "float64"),
    "passive_flow kappa 0": (lambda: passive_flow(H2, RHO, kappa=0.0), "kappa", "> 0"),
    "passive_flow rho0 dimension": (lambda: passive_flow(H2, jnp.eye(3) / 3), "rho0", "dimension"),
    "passive_flow rho0 low-rank dimension": (
        lambda: passive_flow(H2, q.LowRankState(jnp.eye(3, 1, dtype=complex), jnp.ones(1))), "rho0", "dimension"),
    "passive_flow max_steps": (lambda: passive_flow(H2, RHO, max_steps=1.5), "max_steps", "integer"),
    "passive_flow max_steps huge": (lambda: passive_flow(H2, RHO, max_steps=10**12), "max_steps", "memory"),
    "passive_flow max_time": (lambda: passive_flow(H2, RHO, max_time=-2.0), "max_time", "> 0"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input(name):
    call, argument, detail = BAD_INPUTS[name]
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert argument in message and detail in message, message


def test_audit_row_chunk_time_is_bounded():
    """The audit's chunk_time = 1e-9, max_time = 1e4 call (a > 150 s host loop before) is one bounded solve now:
    chunk_time only warns (deprecated, no effect) and the search converges."""
    with pytest.warns(DeprecationWarning, match="chunk_time"):
        res = ground_state(H2, chunk_time=1e-9, max_time=1e4, tol=1e-12)
    assert bool(res.converged) and int(res.status) == CONVERGED
    np.testing.assert_allclose(float(res.energy), -1.0, atol=1e-12)
