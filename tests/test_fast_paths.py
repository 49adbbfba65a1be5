"""Fast paths of solve (exact, pure, two_level, low_rank) against the dense path or eq. 28; auto selection;
matrix-free SpinModel.apply against the dense matrix; a 12-spin pure run that never forms D×D."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax import fast_paths

TS = jnp.linspace(0.0, 4.0, 9)
KAPPA = 0.4
TIGHT = dict(rtol=1e-10, atol=1e-12)


def random_chain(key, n, spin=0.5, tensor=0.0):
    """Open chain with random exchange, DMI, per-site fields, anisotropy (and exchange tensors Γ)."""
    k = jax.random.split(key, 6)
    nb = n - 1
    return q.spin_model(
        [spin] * n,
        bonds=q.chain_bonds(n),
        field=jax.random.normal(k[0], (n, 3)),
        exchange=1.0 + 0.3 * jax.random.normal(k[1], (nb,)),
        dmi=0.4 * jax.random.normal(k[2], (nb, 3)),
        anisotropy=0.3 * jax.random.normal(k[3], (n,)),
        anisotropy_axis=jax.random.normal(k[4], (n, 3)),
        anisotropic_exchange=tensor * jax.random.normal(k[5], (nb, 3, 3)),
    )


def random_frame(key, dim, rank):
    re, im = jax.random.normal(key, (2, dim, rank))
    frame, _ = jnp.linalg.qr(re + 1j * im)
    return frame


def max_diff(a, b):
    return float(jnp.max(jnp.abs(a - b)))


@pytest.mark.parametrize("spin, n", [(0.5, 4), (1.0, 3)])
def test_apply_equals_dense_matrix(key, spin, n):
    model = random_chain(key, n, spin, tensor=0.2)
    # independent dense H: every term embedded with numpy Kronecker products
    dims = model.dims

    def embed(op, site):
        out = np.eye(1)
        for k, d in enumerate(dims):
            out = np.kron(out, op if k == site else np.eye(d))
        return out

    H = sum(embed(np.asarray(h), k) for k, h in enumerate(model.site_terms()))
    for (i, j), coupling in zip(model.bonds, np.asarray(model.bond_couplings())):
        si, sj = np.asarray(q.spin_matrices(model.spins[i])), np.asarray(q.spin_matrices(model.spins[j]))
        for a in range(3):
            for b in range(3):
                H = H + coupling[a, b] * embed(si[a], i) @ embed(sj[b], j)
    psi = random_frame(jax.random.fold_in(key, 7), model.dim, 3)
    assert max_diff(model.apply(psi), H @ psi) <= 1e-12
    assert max_diff(model.apply(psi[:, 0]), H @ psi[:, 0]) <= 1e-12


@pytest.mark.parametrize("equation", ["qllg", "qll", "von_neumann"])
def test_pure_and_exact_paths_equal_dense(key, equation):
    model = random_chain(key, 3)
    psi0 = q.random_ket(jax.random.fold_in(key, 1), model.dim)
    if equation == "von_neumann":  # closed form e^{−iHt}|ψ0⟩ instead of a third dense compile
        kets = jax.vmap(lambda t: jax.scipy.linalg.expm(-1j * t * model.matrix()) @ psi0)(TS)
        reference = q.density_matrix(kets)
    else:
        reference = q.solve(model, psi0, TS, KAPPA, equation=equation, method="dense", **TIGHT).states
    pure = q.solve(model, psi0, TS, KAPPA, equation=equation, method="pure", **TIGHT)
    exact = q.solve(model, psi0, TS, KAPPA, equation=equation, method="exact")
    assert pure.method == "pure" and exact.method == "exact"
    assert max_diff(pure.states, reference) <= 1e-8
    assert max_diff(exact.states, reference) <= 1e-8
    assert pure.kets.shape == (len(TS), model.dim)
    # pure path vs eq. 28 directly (global phase removed via the density matrix)
    if equation == "qllg":
        ref = q.density_matrix(q.pure_state_exact(model.matrix(), psi0, TS, KAPPA))
        assert max_diff(pure.states, ref) <= 1e-8


def test_pure_path_batches_over_kets_and_kappa(key):
    H = q.dimer_hamiltonian((1.0, 0.0, 0.0), 1.0, (0.0, 0.0, 0.5))
    kets = jnp.stack([q.up_down_state(), q.bell_state("phi+")])
    kappas = jnp.array([0.2, 0.7])
    result = q.solve(H, kets, TS, kappas, method="pure", **TIGHT)
    assert result.kets.shape == (2, len(TS), 4)
    for i in range(2):
        ref = q.density_matrix(q.pure_state_exact(H, kets[i], TS, kappas[i]))
        assert max_diff(result.states[i], ref) <= 1e-8


@pytest.mark.parametrize("equation", ["qllg", "qll", "von_neumann"])
def test_two_level_equals_dense(equation):
    H = q.dimer_hamiltonian((1.0, 0.3, 0.0), 1.0, (0.0, 0.0, 0.5))
    rho0 = q.werner_state("psi-", 0.6)
    fast = q.solve(H, rho0, TS, KAPPA, equation=equation)
    dense = q.solve(H, rho0, TS, KAPPA, equation=equation, method="dense", **TIGHT)
    assert fast.method == "two_level"
    assert max_diff(fast.states, dense.states) <= 1e-8


@pytest.mark.parametrize("n, rank", [(3, 2), (3, 3), (4, 2), (2, 4), (3, 8)])
def test_low_rank_equals_dense(key, n, rank):
    """Random mixed rank-2/3 states of 3–4 spins and full-rank states (r = D) of 2–3 spins."""
    model = random_chain(jax.random.fold_in(key, n), n)
    rho0 = q.random_density_matrix(jax.random.fold_in(key, 10 * n + rank), model.dim, rank=rank)
    fast = q.solve(model, rho0, TS, KAPPA, method="low_rank", **TIGHT)
    dense = q.solve(model, rho0, TS, KAPPA, method="dense", **TIGHT)
    assert fast.frames.shape == (len(TS), model.dim, rank) and fast.weights.shape == (rank,)
    assert max_diff(fast.states, dense.states) <= 1e-8
    assert max_diff(fast.invariants["energy"], dense.invariants["energy"]) <= 1e-8
    assert max_diff(fast.invariants["purity"], dense.invariants["purity"]) <= 1e-8
    diag = fast.diagnostics().as_dict()
    assert diag["spectrum_drift"] <= 1e-9 and diag["hermiticity_error"] <= 1e-9 and diag["energy_increase"] <= 1e-10


@pytest.mark.parametrize("method, rank", [("low_rank", 2), ("pure", 1)])
def test_complex_state_frame_and_ket_paths_equal_dense(key, method, rank):
    """complex_state=True on the matrix-free paths (integrating the complex frame / ket) vs the dense path."""
    model = random_chain(jax.random.fold_in(key, 7), 3)
    rho0 = q.random_density_matrix(jax.random.fold_in(key, 8), model.dim, rank=rank)
    with pytest.warns(UserWarning, match="Complex"):
        fast = q.solve(model, rho0, TS, KAPPA, method=method, complex_state=True, **TIGHT)
    dense = q.solve(model, rho0, TS, KAPPA, method="dense", **TIGHT)
    assert fast.method == method and max_diff(fast.states, dense.states) <= 1e-8


def test_low_rank_von_neumann_is_unitary(key):
    model = random_chain(key, 3)
    rho0 = q.random_density_matrix(jax.random.fold_in(key, 2), model.dim, rank=2)
    fast = q.solve(model, rho0, TS, KAPPA, method="low_rank", equation="von_neumann", **TIGHT)
    evolution = jax.vmap(lambda t: jax.scipy.linalg.expm(-1j * t * model.matrix()))(TS)
    exact = evolution @ rho0 @ jnp.conj(jnp.swapaxes(evolution, -1, -2))
    assert max_diff(fast.states, exact) <= 1e-8


def test_gauge_fix_agrees_and_saves_steps(key):
    """Equal weights inside the frame: the gauge-fixed frame needs fewer steps, both equal the dense path."""
    model = random_chain(key, 3)
    state = q.LowRankState(random_frame(jax.random.fold_in(key, 3), model.dim, 3), jnp.array([0.5, 0.25, 0.25]))
    ts = jnp.linspace(0.0, 6.0, 4)
    dense = q.solve(model, state.density_matrix(), ts, KAPPA, method="dense", **TIGHT)
    fixed = q.solve(model, state, ts, KAPPA, **TIGHT)
    free = q.solve(model, state, ts, KAPPA, method="low_rank", gauge_fix=False, **TIGHT)
    assert fixed.method == "low_rank"
    assert max_diff(fixed.states, dense.states) <= 1e-8 and max_diff(free.states, dense.states) <= 1e-8
    assert int(fixed.stats["num_steps"]) < int(free.stats["num_steps"])


def test_auto_selection(key):
    H = q.dimer_hamiltonian((1.0, 0.0, 0.0), 1.0, (0.0, 0.0, 0.0))
    ts = jnp.array([0.0, 0.5])
    assert q.solve(H, q.up_down_state(), ts, KAPPA).method == "exact"
    assert q.solve(H, q.density_matrix(q.up_down_state()), ts, KAPPA).method == "exact"
    assert q.solve(H, q.werner_state("phi+", 0.3), ts, KAPPA).method == "two_level"
    model = random_chain(key, 4)
    rank2 = q.random_density_matrix(key, 16, rank=2)
    assert q.solve(model, rank2, ts, KAPPA).method == "low_rank"
    # the rule itself (solve's result.method is this choice; the dense runs are covered elsewhere)
    select = fast_paths.select_method
    assert select("auto", q.random_density_matrix(key, 4), "qllg", 4, False) == "dense"  # full rank, 4 levels
    assert select("auto", rank2, "qll", 16, False) == "dense"  # q-LL of mixed states: dense only
    assert select("auto", q.random_density_matrix(key, 16, rank=8), "qllg", 16, False) == "dense"  # r > D/4
    assert select("auto", q.random_density_matrix(key, 16, rank=4), "qllg", 16, False) == "low_rank"  # r = D/4
    assert select("auto", q.werner_state("phi+", 0.3)[None], "qllg", 4, True) == "dense"  # batched
    assert select("pure", rank2, "qllg", 16, False) == "pure"  # explicit choices are kept
    big = q.chain_model(9, dmi=(0.0, 0.0, 0.3))  # D = 512 > EXACT_MAX_DIM
    assert big.dim > fast_paths.EXACT_MAX_DIM
    psi = q.product_state([q.basis_state(0.5, 0.5)] * 8 + [q.basis_state(0.5, -0.5)])
    assert fast_paths.select_method("auto", psi, "qllg", big.dim, False) == "pure"
    # traced density matrix → dense (the spectrum is unknown at trace time)
    traced = jax.jit(lambda r: q.solve(H, r, ts, KAPPA).states)(q.werner_state("phi+", 0.3))
    assert traced.shape == (2, 4, 4)


def test_twelve_spin_pure_path_is_matrix_free(key, monkeypatch):
    """D = 4096: forming H (or ϱ) densely is forbidden; compare with a matrix-free Taylor propagator of eq. 28."""
    model = q.chain_model(12, exchange=1.0, dmi=(0.0, 0.0, 0.4), field=(0.3, 0.0, 0.2))

    def forbidden(self):
        raise AssertionError("the pure path formed the dense Hamiltonian")

    monkeypatch.setattr(q.SpinModel, "matrix", forbidden)
    psi0 = q.product_state([q.coherent_state(0.5, (np.cos(k), np.sin(k), 0.3)) for k in range(12)])
    ts = jnp.linspace(0.0, 0.5, 3)
    result = q.solve(model, psi0, ts, KAPPA, **TIGHT)
    assert result.method == "pure" and result.states is None and result.kets.shape == (3, 4096)

    # eq. 28 independently: ψ(t) ∝ exp(−i H_eff t) ψ0 by a Taylor series of matrix-free applications
    @jax.jit
    def taylor_step(phi, h=0.025):
        def add_term(k, carry):
            term, acc = carry
            term = -1j * h * (1 - 1j * KAPPA) / (1 + KAPPA**2) * model.apply(term) / k
            return term, acc + term

        _, acc = jax.lax.fori_loop(1, 25, add_term, (phi, phi))
        return acc / jnp.linalg.norm(acc)

    phi, out = psi0, [psi0]
    for step in range(1, 21):
        phi = taylor_step(phi)
        if step % 10 == 0:
            out.append(phi)
    ref = jnp.stack(out)
    overlap = jnp.abs(jnp.sum(jnp.conj(ref) * result.kets, axis=-1))
    assert float(jnp.max(jnp.abs(overlap - 1))) <= 1e-8
    diag = result.diagnostics().as_dict()
    assert diag["trace_error"] <= 1e-9 and diag["energy_increase"] <= 1e-10


def test_low_rank_state_validation():
    with pytest.raises(ValueError, match="orthonormal"):
        q.LowRankState(jnp.ones((4, 2), dtype=complex), jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="weights"):
        q.LowRankState(jnp.eye(4, 2, dtype=complex), jnp.array([0.7, 0.7]))
    with pytest.raises(ValueError, match="method"):
        q.solve(q.dimer_hamiltonian(), q.up_down_state(), TS, KAPPA, method="fastest")
    with pytest.raises(ValueError, match="pure"):
        q.solve(q.dimer_hamiltonian(), q.werner_state("phi+", 0.5), TS, KAPPA, method="pure")
    with pytest.raises(ValueError, match="low_rank"):
        q.solve(q.dimer_hamiltonian(), q.werner_state("phi+", 0.5), TS, KAPPA, method="low_rank", equation="qll")
