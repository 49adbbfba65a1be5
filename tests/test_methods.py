"""The methods of solve (dense, frame, ket, exact, two_level) against each other and against closed forms;
the same method and the same numbers under eager calls, jit, vmap, jit(vmap) and grad; batches of H, ϱ0 and κ
for every method; no recompilation for new operator observables; unambiguous ket batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import qllg_jax as q

TS = jnp.linspace(0.0, 3.0, 5)
KAPPA = 0.4
TIGHT = dict(rtol=1e-10, atol=1e-12, invariant_tol=None)
H_DIMER = np.asarray(q.dimer_hamiltonian((1.0, 0.3, 0.0), 1.0, (0.0, 0.0, 0.5)))
WERNER = np.asarray(q.werner_state("psi-", 0.6))
KET = np.asarray(q.up_down_state())
THERMAL = np.asarray(q.thermal_state(q.dimer_hamiltonian((0.2, 0.1, 1.0), 0.4), 0.7))  # four distinct eigenvalues


def random_chain(key, n, spin=0.5):
    """Open chain with random exchange, DMI, per-site fields and anisotropy."""
    k = jax.random.split(key, 5)
    return q.spin_model(
        [spin] * n, bonds=q.chain_bonds(n), field=jax.random.normal(k[0], (n, 3)),
        exchange=1.0 + 0.3 * jax.random.normal(k[1], (n - 1,)), dmi=0.4 * jax.random.normal(k[2], (n - 1, 3)),
        anisotropy=0.3 * jax.random.normal(k[3], (n,)), anisotropy_axis=jax.random.normal(k[4], (n, 3)),
    )


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def eq28_states(H, psi0, ts, kappa):
    """ϱ(t) = |ψ⟩⟨ψ| from eq. 28 written with numpy: ψ ∝ V exp(−i(1 − iκ)E t/(1 + κ²)) V†ψ0."""
    energies, vectors = np.linalg.eigh(np.asarray(H))
    phases = np.exp(-1j * (1 - 1j * kappa) / (1 + kappa**2) * np.outer(np.asarray(ts), energies))
    psi = (phases * (vectors.conj().T @ np.asarray(psi0))) @ vectors.T
    psi /= np.linalg.norm(psi, axis=1, keepdims=True)
    return psi[:, :, None] * psi[:, None, :].conj()


# ---------------------------------------------------------------- every method against dense and closed forms
@pytest.mark.parametrize("equation", ["qllg", "qll", "von_neumann"])
def test_every_method_equals_dense(key, equation):
    model = random_chain(key, 3)
    H = np.asarray(model.matrix())
    cases = {
        "frame": q.random_density_matrix(jax.random.fold_in(key, 1), 8, rank=3),
        "ket": q.random_ket(jax.random.fold_in(key, 2), 8),
        "exact": q.random_ket(jax.random.fold_in(key, 2), 8),
        "two_level": 0.5 * q.density_matrix(q.random_ket(jax.random.fold_in(key, 3), 8)) + 0.5 * jnp.eye(8) / 8,
    }
    dense = q.solve(H, jnp.stack([q.density_matrix(r) if r.ndim == 1 else r for r in cases.values()]), TS, KAPPA,
                    method="dense", equation=equation, **TIGHT)
    for index, (method, rho0) in enumerate(cases.items()):
        result = q.solve(model, rho0, TS, KAPPA, method=method, equation=equation, **TIGHT)
        assert result.method == method
        assert max_diff(result.states, dense.states[index]) <= 1e-8, method
        assert max_diff(result.invariants["energy"], dense.invariants["energy"][index]) <= 1e-8, method
    if equation == "von_neumann":  # independent: e^{−iHt} ϱ0 e^{iHt}
        rho0 = np.asarray(cases["frame"])
        for t, rho in zip(np.asarray(TS), np.asarray(dense.states[0])):
            U = scipy.linalg.expm(-1j * t * H)
            assert max_diff(rho, U @ rho0 @ U.conj().T) <= 1e-8
    if equation == "qllg":  # independent: eq. 28 with numpy
        assert max_diff(dense.states[1], eq28_states(H, cases["ket"], TS, KAPPA)) <= 1e-8


def test_frame_full_rank_mixed_batch_of_ranks(key):
    """Full-rank thermal ϱ, and a batch mixing ranks 1, 2 and 4 (padded frame, λ = 0 columns)."""
    full = q.solve(H_DIMER, THERMAL, TS, KAPPA, **TIGHT)
    assert full.method == "frame" and full.frames.shape == (len(TS), 4, 4)
    dense = q.solve(H_DIMER, THERMAL, TS, KAPPA, method="dense", **TIGHT)
    assert max_diff(full.states, dense.states) <= 1e-8
    mixed = jnp.stack([q.density_matrix(KET), q.random_density_matrix(key, 4, rank=2), THERMAL])
    batch = q.solve(H_DIMER, mixed, TS, KAPPA, **TIGHT)
    assert batch.method == "frame" and batch.weights.shape == (3, 4)
    np.testing.assert_allclose(np.sum(batch.weights, axis=-1), 1.0)
    reference = q.solve(H_DIMER, mixed, TS, KAPPA, method="dense", **TIGHT)
    assert max_diff(batch.states, reference.states) <= 1e-8
    diag = batch.diagnostics().as_dict()
    assert diag["spectrum_drift"] <= 1e-9 and diag["energy_increase"] <= 1e-10


@pytest.mark.parametrize("method, rank", [("frame", 2), ("ket", 1)])
def test_complex_state_equals_dense(key, method, rank):
    model = random_chain(jax.random.fold_in(key, 7), 3)
    rho0 = q.random_density_matrix(jax.random.fold_in(key, 8), model.dim, rank=rank)
    with pytest.warns(UserWarning, match="Complex"):
        fast = q.solve(model, rho0, TS, KAPPA, method=method, complex_state=True, **TIGHT)
    dense = q.solve(model, rho0, TS, KAPPA, method="dense", **TIGHT)
    assert fast.method == method and max_diff(fast.states, dense.states) <= 1e-8


def test_gauge_fix_agrees_and_freezes_stationary_frames(key):
    """Gauge fix: K̃ = 0 inside equal-eigenvalue blocks (the diagonal included). Both gauges equal the dense
    method; for ϱ0 commuting with H the gauge-fixed frame does not move at all, the free one picks up the phases
    e^{−iE_j t} (ϱ is the same)."""
    model = random_chain(key, 3)
    frame, _ = jnp.linalg.qr(jax.random.normal(jax.random.fold_in(key, 3), (8, 3)) + 0j)
    state = q.LowRankState(frame, jnp.array([0.5, 0.25, 0.25]))
    ts = jnp.linspace(0.0, 6.0, 4)
    dense = q.solve(model, state.density_matrix(), ts, KAPPA, method="dense", **TIGHT)
    fixed = q.solve(model, state, ts, KAPPA, **TIGHT)
    free = q.solve(model, state, ts, KAPPA, method="frame", gauge_fix=False, **TIGHT)
    assert fixed.method == "frame"
    assert max_diff(fixed.states, dense.states) <= 1e-8 and max_diff(free.states, dense.states) <= 1e-8
    energies, vectors = np.linalg.eigh(np.asarray(model.matrix()))
    stationary = q.LowRankState(jnp.asarray(vectors[:, :3]), jnp.array([0.5, 0.3, 0.2]))
    still = q.solve(model, stationary, ts, KAPPA, **TIGHT)
    spinning = q.solve(model, stationary, ts, KAPPA, gauge_fix=False, **TIGHT)
    assert max_diff(still.frames, np.broadcast_to(vectors[:, :3], still.frames.shape)) <= 1e-10
    phases = np.exp(-1j * np.outer(np.asarray(ts), energies[:3]))[:, None, :]
    assert max_diff(spinning.frames, vectors[None, :, :3] * phases) <= 1e-8
    assert max_diff(still.states, spinning.states) <= 1e-8


# ---------------------------------------------------------------- transformations: same method, same numbers
STATES = {"ket": KET, "werner": WERNER, "thermal": THERMAL}
EXPECTED = {"ket": "exact", "werner": "two_level", "thermal": "frame"}


@pytest.mark.parametrize("name", list(STATES))
def test_eager_jit_vmap_grad_choose_the_same_method_and_numbers(name):
    rho0 = STATES[name]  # a numpy constant, closed over below
    Hs = np.stack([np.asarray(q.dimer_hamiltonian((1.0, 0.3, 0.0), J, (0.0, 0.0, 0.5))) for J in (0.6, 1.0, 1.4)])
    seen = []

    def final(H):
        result = q.solve(H, rho0, TS, KAPPA, invariant_tol=None)
        seen.append(result.method)
        return result.states[-1]

    eager = np.stack([final(H) for H in Hs])
    jitted = jax.jit(final)(Hs[0])
    mapped = jax.vmap(final)(Hs)
    jit_mapped = jax.jit(jax.vmap(final))(Hs)
    batch = q.solve(Hs, rho0, TS, KAPPA, invariant_tol=None)
    seen.append(batch.method)
    assert set(seen) == {EXPECTED[name]}, seen
    assert max_diff(jitted, eager[0]) <= 1e-10
    assert max_diff(mapped, eager) <= 1e-10 and max_diff(jit_mapped, eager) <= 1e-10
    assert max_diff(batch.states[:, -1], eager) <= 1e-7  # one ODE with shared steps: equal to the tolerance

    def loss(J):
        H = q.dimer_hamiltonian((1.0, 0.3, 0.0), J, (0.0, 0.0, 0.5))
        return jnp.real(final(H)[0, 1] + final(H)[1, 1])

    seen.clear()
    grad = jax.grad(loss)(1.0)
    assert set(seen) == {EXPECTED[name]}
    fd = (loss(1.0 + 1e-5) - loss(1.0 - 1e-5)) / 2e-5
    assert abs(float(grad) - float(fd)) <= 1e-6 * max(1.0, abs(float(fd)))


def test_traced_density_matrix_runs_dense_and_agrees():
    """A genuinely traced ϱ0 (built from a traced p) cannot be inspected on the host: dense, same numbers."""
    seen = []

    def final(p):
        result = q.solve(H_DIMER, q.werner_state("psi-", p), TS, KAPPA, **TIGHT)
        seen.append(result.method)
        return result.states[-1]

    traced = jax.jit(final)(0.6)
    eager = q.solve(H_DIMER, WERNER, TS, KAPPA, **TIGHT)
    assert seen == ["dense"] and eager.method == "two_level"
    assert max_diff(traced, eager.states[-1]) <= 1e-8


# ---------------------------------------------------------------- batches for every method
@pytest.mark.parametrize("method, rho0", [
    ("dense", THERMAL), ("frame", THERMAL), ("two_level", WERNER), ("exact", KET), ("ket", KET)])
def test_batches_of_hamiltonians_states_and_kappa(method, rho0):
    Hs = np.stack([H_DIMER, np.asarray(q.dimer_hamiltonian((0.0, 0.0, 1.0), -0.7, (0.3, 0.0, 0.0)))])
    kappas = np.array([0.2, 0.9])
    states = np.stack([rho0, rho0])
    cases = [(Hs, rho0, KAPPA, (2,)), (H_DIMER, states, KAPPA, (2,)), (H_DIMER, rho0, kappas, (2,)),
             (Hs[:, None], states, kappas, (2, 2))]
    for H, r, k, shape in cases:
        batch = q.solve(H, r, TS, k, method=method, **TIGHT)
        assert batch.method == method and batch.states.shape == shape + (len(TS), 4, 4)
        flat_states = batch.states.reshape((-1, len(TS), 4, 4))
        for index, element in enumerate(np.ndindex(*shape)):
            h = np.broadcast_to(H, shape + (4, 4))[element]
            k_i = float(np.broadcast_to(k, shape)[element])
            reference = q.solve(h, rho0, TS, k_i, method="dense", **TIGHT).states
            assert max_diff(flat_states[index], reference) <= 1e-8, (method, element)


@pytest.mark.parametrize("method, rho0", [("two_level", WERNER), ("exact", KET)])
def test_closed_form_batches_run_in_chunks_with_the_same_numbers(method, rho0, monkeypatch):
    """A batch bigger than CLOSED_FORM_CHUNK_BYTES allows runs as chunks (memory ∝ chunk): 7 points in chunks of
    3 (two chunks and a remainder) give the observables of the one-point eq. 28 / two-level closed forms, and
    the gradient of one-point solves."""
    import importlib

    solve_module = importlib.import_module("qllg_jax.solve")  # the module (qllg_jax.solve is the function)
    ts = jnp.linspace(0.0, 2.0, 13)  # a shape of its own: the chunk size is read when the solve is traced
    Js = np.linspace(-1.0, 2.0, 7)
    Hs = np.stack([np.asarray(q.dimer_hamiltonian((1.0, 0.3, 0.0), J, (0.0, 0.0, 0.5))) for J in Js])

    def loss(scale, H):
        return jnp.sum(q.solve(scale * H, rho0, ts, KAPPA, method=method, save_states=False,
                               observables={"zz": Hs[0]}).observables["zz"] ** 2)

    def observable(H):  # Re Tr(ϱ(t) Hs[0]) of the one-point closed forms
        states = (eq28_states(H, rho0, ts, KAPPA) if method == "exact"
                  else np.asarray(q.two_level_exact(H, rho0, ts, KAPPA)))
        return np.real(np.einsum("tij,ji->t", states, Hs[0]))

    def per_point_loss(scale):
        return sum(loss(scale, H) for H in Hs)

    per_point = 4 * 16 * (16 if method == "two_level" else 4) * len(ts)
    monkeypatch.setattr(solve_module, "CLOSED_FORM_CHUNK_BYTES", 3 * per_point)
    assert solve_module._closed_form_chunk(np.zeros((7, *rho0.shape)), len(ts)) == 3
    assert "scan" in str(jax.make_jaxpr(loss)(1.0, Hs)) and "scan" not in str(jax.make_jaxpr(loss)(1.0, Hs[0]))
    batch = q.solve(Hs, rho0, ts, KAPPA, method=method, save_states=False, observables={"zz": Hs[0]})
    assert batch.method == method and batch.observables["zz"].shape == (7, len(ts))
    assert max_diff(batch.observables["zz"], np.stack([observable(H) for H in Hs])) <= 1e-10
    chunked_grad, unchunked_grad = jax.grad(loss)(1.0, Hs), jax.grad(per_point_loss)(1.0)
    assert abs(float(chunked_grad) - float(unchunked_grad)) <= 1e-10 * abs(float(unchunked_grad))


def test_shared_steps_and_vmap_batching_agree():
    Hs = np.stack([np.asarray(q.dimer_hamiltonian((1.0, 0.0, 0.0), J, (0.0, 0.0, 0.4))) for J in (0.3, 1.0, 3.0)])
    shared = q.solve(Hs, THERMAL, TS, KAPPA, **TIGHT)
    mapped = q.solve(Hs, THERMAL, TS, KAPPA, batching="vmap", **TIGHT)
    assert max_diff(shared.states, mapped.states) <= 1e-8
    steps = np.asarray(mapped.stats["num_steps"])
    assert len(set(np.asarray(shared.stats["num_steps"]).tolist())) == 1  # one ODE: one step count
    assert int(shared.stats["num_steps"][0]) >= steps.max()  # shared steps follow the stiffest member
    assert steps.min() < steps.max()


def test_failed_member_does_not_stall_a_shared_batch():
    Hs = np.stack([H_DIMER, H_DIMER * 1e200])
    result = q.solve(Hs, THERMAL, TS, KAPPA, throw=False, invariant_tol=None)
    assert np.asarray(result.success).tolist() == [True, False]
    assert max_diff(result.states[0], q.solve(H_DIMER, THERMAL, TS, KAPPA, invariant_tol=None).states) <= 1e-7


def test_mismatched_batch_axes_are_a_clear_error():
    with pytest.raises(ValueError, match=r"batch axes do not broadcast: H \(3,\), rho0 \(2,\), kappa \(\)"):
        q.solve(np.stack([H_DIMER] * 3), np.stack([THERMAL] * 2), TS, KAPPA)
    with pytest.raises(ValueError, match=r"H \(2,\), rho0 \(\), kappa \(3,\)"):
        q.solve(np.stack([H_DIMER] * 2), THERMAL, TS, np.ones(3))


# ---------------------------------------------------------------- compilation
@pytest.mark.parametrize("rho0", [THERMAL, KET], ids=["frame", "exact"])
def test_new_operator_observable_or_new_values_do_not_recompile(rho0, compiles):
    sz = np.asarray(q.embed(q.pauli_matrices()[2], 0, (2, 2)))
    sx = np.asarray(q.embed(q.pauli_matrices()[0], 1, (2, 2)))
    first = q.solve(H_DIMER, rho0, np.asarray(TS), KAPPA, observables={"s": sz})
    H2, ts2 = 2 * H_DIMER, 2 * np.asarray(TS)
    compiles.clear()
    again = q.solve(H2, rho0, ts2, 0.3, observables={"s": sx})
    assert compiles == []
    reference = q.solve(H2, rho0, ts2, 0.3, method="dense", rtol=1e-10, atol=1e-12).states
    np.testing.assert_allclose(again.observables["s"], np.real(np.einsum("tij,ji->t", reference, sx)), atol=1e-7)
    np.testing.assert_allclose(first.observables["s"][0], np.real(np.trace(np.asarray(first.states[0]) @ sz)), atol=1e-12)


# ---------------------------------------------------------------- kets
def test_ket_batches_with_n_equal_to_D():
    kets = np.stack([KET, np.asarray(q.bell_state("phi+")), np.asarray(q.bell_state("psi-")), np.eye(4)[0]])
    result = q.solve(H_DIMER, kets[..., None], TS, KAPPA, **TIGHT)  # (4, 4, 1): four kets as columns
    assert result.method == "exact" and result.kets.shape == (4, len(TS), 4)
    for ket, states in zip(kets, result.states):
        assert max_diff(states, eq28_states(H_DIMER, ket, TS, KAPPA)) <= 1e-8
    with pytest.raises(ValueError, match=r"read as density matrices .*\(\.\.\., 4, 1\)"):
        q.solve(H_DIMER, kets, TS, KAPPA)


# ---------------------------------------------------------------- auto
def test_auto_selection_rules(key):
    """The rules of method="auto" (qllg_jax.methods.resolve_method, the one function solve, sweeps and the CLI use),
    read from host values; solve reports the same choice (the other tests run each method)."""
    from qllg_jax.methods import read_initial_state, resolve_method

    def method(rho, dim=4, name="auto"):
        return resolve_method(name, read_initial_state(rho, dim), dim).name

    assert method(KET) == "exact" and method(q.density_matrix(KET)) == "exact"
    assert method(WERNER) == "two_level" and method(q.werner_state("phi+", -0.2)) == "two_level"
    assert method(THERMAL) == "frame" and method(q.random_density_matrix(key, 16, rank=3), 16) == "frame"
    assert method(np.stack([WERNER, THERMAL])) == "frame"  # every element must qualify
    assert method(np.stack([q.werner_state("phi+", 0.5), q.werner_state("phi+", -0.2)])) == "frame"  # ranks 1 and 3
    psi = q.product_state([q.basis_state(0.5, 0.5)] * 8 + [q.basis_state(0.5, -0.5)])
    assert method(psi, 512) == "ket"  # D = 512 > EXACT_MAX_DIM
    assert method(THERMAL, name="low_rank") == "frame" and method(KET, name="pure") == "ket"
    with pytest.raises(ValueError, match="pure"):
        method(WERNER, name="ket")
    with pytest.raises(ValueError, match="unknown method"):
        method(KET, name="fastest")
    ts = jnp.array([0.0, 0.5])
    assert q.solve(H_DIMER, WERNER, ts, KAPPA, equation="qll").method == "two_level"
    with pytest.raises(ValueError, match="traced"):
        jax.jit(lambda p: q.solve(H_DIMER, q.werner_state("psi-", p), ts, KAPPA, method="frame").states)(0.5)


def test_result_fields_are_uniform_across_methods():
    for method, rho0 in [("dense", THERMAL), ("frame", THERMAL), ("ket", KET), ("exact", KET), ("two_level", WERNER)]:
        result = q.solve(H_DIMER, rho0, TS, KAPPA, method=method, invariant_tol=None, rtol=1e-10, atol=1e-12)
        assert set(result.invariants) == {"trace", "purity", "energy", "representation_error"}
        assert set(result.stats) == {"num_steps", "num_accepted_steps", "num_rejected_steps", "t_reached", "failure"}
        assert all(np.shape(v) == (len(TS),) for v in result.invariants.values())
        assert result.states.shape == (len(TS), 4, 4) and bool(result.success)
        # the flow conserves the trace; a frame's or ket's normalisation drifts with the global error, ≲ 10³ rtol
        np.testing.assert_allclose(result.invariants["trace"], 1.0, atol=1e3 * 1e-10)
        np.testing.assert_allclose(result.invariants["energy"], np.real(np.einsum("tij,ji->t", result.states, H_DIMER)), atol=1e-9)
        nothing = q.solve(H_DIMER, rho0, TS, KAPPA, method=method, save_states=False, invariant_tol=None)
        assert nothing.states is None and nothing.kets is None and nothing.frames is None


def test_twelve_spin_ket_method_is_matrix_free(monkeypatch):
    """D = 4096: forming H densely is forbidden; compare with a matrix-free Taylor propagator of eq. 28."""
    model = q.chain_model(12, exchange=1.0, dmi=(0.0, 0.0, 0.4), field=(0.3, 0.0, 0.2))
    monkeypatch.setattr(q.SpinModel, "matrix", lambda self: pytest.fail("the ket method formed the dense Hamiltonian"))
    psi0 = q.product_state([q.coherent_state(0.5, (np.cos(k), np.sin(k), 0.3)) for k in range(12)])
    ts = jnp.linspace(0.0, 0.5, 3)
    result = q.solve(model, psi0, ts, KAPPA, **TIGHT)
    assert result.method == "ket" and result.kets.shape == (3, 4096)

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
    overlap = jnp.abs(jnp.sum(jnp.conj(jnp.stack(out)) * result.kets, axis=-1))
    assert float(jnp.max(jnp.abs(overlap - 1))) <= 1e-8
    diag = result.diagnostics().as_dict()
    assert diag["trace_error"] <= 1e-9 and diag["energy_increase"] <= 1e-10


def test_low_rank_state_validation():
    with pytest.raises(ValueError, match="orthonormal"):
        q.LowRankState(jnp.ones((4, 2), dtype=complex), jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="weights"):
        q.LowRankState(jnp.eye(4, 2, dtype=complex), jnp.array([0.7, 0.7]))
    with pytest.raises(ValueError, match="dimension"):
        q.solve(H_DIMER, q.LowRankState(jnp.eye(8, 2, dtype=complex), jnp.array([0.5, 0.5])), TS, KAPPA)
