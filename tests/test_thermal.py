"""Finite temperature: stochastic LLG and the stochastic q-LLG (issue 22).

Statistics: the equilibrium tests use the final value of independent trajectories (one per key), so the standard
error SE = std/√n is exact; n = 512 per temperature makes SE ≈ 0.005–0.02, small enough that the quantum
(Brillouin, tanh for s = 1/2) law — 10–40 SE away — is excluded. The finite-step bias of the Heun scheme at the
chosen dt was measured below SE(8192) ≈ 0.004 (≪ 4 SE(512)). Uncoupled sites are independent, so a two-site
model (s = 1/2 in b = 2, s = 1 in b = 3) tests one spin of each s and "each to its own L(x)" in one compile.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.classical.stochastic import stochastic_llg
from qllg_jax.thermal import stochastic_frames

SPINS = (0.5, 1.0)
FIELDS = np.array([2.0, 3.0])  # along z; s·b = (1, 3)
TEMPERATURES = np.array([1.0, 1.0 / 3.0])  # x = s b / τ = (1, 3) and (3, 9)
DAMPING = 0.5
N_KEYS = 512
DT = 0.04  # dt·ω = 0.12; rms noise rotation √(6 D dt) ≤ 0.49 (the step check's limit is 0.5)
T_EQ = 10.0  # ≥ 8 relaxation times (slowest: 1/(α b/(1+α²)) = 1.25 at b = 2)


def langevin(x):
    return 1 / np.tanh(x) - 1 / x


def brillouin(s, x):
    """The quantum thermal ⟨S_z⟩/s of one spin s, x = s b/τ (tanh x for s = 1/2)."""
    a, c = (2 * s + 1) / (2 * s), 1 / (2 * s)
    return a / np.tanh(a * x) - c / np.tanh(c * x)


def _two_site_model():
    return q.spin_model(list(SPINS), field=np.stack([np.zeros(2), np.zeros(2), FIELDS], axis=-1))


def _keys(seed, n=N_KEYS):
    return jax.random.split(jax.random.PRNGKey(seed), n)


def _check_thermal_law(values):
    """values (n_temperatures, n_keys, 2 sites) of m_z = ⟨S_z⟩/s at the final time."""
    mean = values.mean(axis=1)
    se = values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])
    x = np.asarray(SPINS)[None, :] * FIELDS[None, :] / TEMPERATURES[:, None]
    classical = langevin(x)
    quantum = np.stack([brillouin(s, x[:, k]) for k, s in enumerate(SPINS)], axis=-1)
    assert np.all(np.abs(mean - classical) <= 4 * se), (mean, classical, se)
    assert np.all(np.abs(mean - quantum) > 4 * se), (mean, quantum, se)  # the test can tell the two laws apart


def test_classical_langevin_law_two_temperatures(compiles):
    model, m0 = _two_site_model(), np.array([[0.0, 0, 1], [0, 0, 1]])
    ts = np.array([0.0, T_EQ])
    run = jax.jit(jax.vmap(jax.vmap(
        lambda key, tau: stochastic_llg(model, m0, ts, DAMPING, temperature=tau, key=key, dt=DT, noise="steps"),
        in_axes=(0, None)), in_axes=(None, 0)))
    keys = _keys(1)
    compiles.clear()
    m = np.asarray(run(keys, TEMPERATURES))
    assert len(compiles) == 1  # both temperatures and all keys: one program
    assert m.shape == (2, N_KEYS, 2, 2, 3)
    assert np.max(np.abs(np.linalg.norm(m, axis=-1) - 1)) < 1e-12  # rotations: |m| = 1 to round-off
    _check_thermal_law(m[:, :, -1, :, 2])


def test_quantum_langevin_law_product_coherent_state():
    """q-LLG from ⊗|ẑ⟩ (ket, low-rank Cayley path, D = 6): each ⟨S_z,k⟩/s_k → its own L(s_k b_k/τ) (that the
    product is kept is tested by convergence below: the Cayley step is not a product of one-site maps)."""
    model = _two_site_model()
    psi0 = q.coherent_product_state(SPINS, [[0, 0, 1.0], [0, 0, 1.0]])
    ts = np.array([0.0, T_EQ])
    run = jax.jit(jax.vmap(jax.vmap(
        lambda key, tau: stochastic_frames(model, psi0, ts, DAMPING, temperature=tau, key=key, dt=DT,
                                           noise="steps").kets(),
        in_axes=(0, None)), in_axes=(None, 0)))
    psi = np.asarray(run(_keys(2), TEMPERATURES))[:, :, -1]  # (2 temps, keys, D = 6)
    assert np.max(np.abs(np.linalg.norm(psi, axis=-1) - 1)) < 1e-12
    amplitudes = psi.reshape(psi.shape[:2] + (2, 3))  # site 0 (d = 2) ⊗ site 1 (d = 3)
    reduced0 = np.einsum("tnia,tnja->tnij", amplitudes, amplitudes.conj())
    reduced1 = np.einsum("tnai,tnaj->tnij", amplitudes, amplitudes.conj())
    sz = [np.real(np.einsum("tnij,ji->tn", r, np.asarray(q.spin_matrices(s)[2]))) / s
          for r, s in zip((reduced0, reduced1), SPINS)]
    _check_thermal_law(np.stack(sz, axis=-1))


def _rms_differences(ys):
    """rms over paths of |y(h) − y(h/2)| for successive runs ys (paths first)."""
    return np.array([np.sqrt(np.mean(np.sum(np.abs(a - b) ** 2, axis=tuple(range(1, a.ndim))))) for a, b in zip(ys, ys[1:])])


DTS = (0.02, 0.01, 0.005)
TOL = DTS[-1] / 4  # one Brownian tree (resolution) for every step size: the same path
N_PATHS = 256  # measured: the order estimate from 256 paths scatters by ±0.05 (4 disjoint subsets)
DIMER = dict(B=(0.3, 0.0, 1.0), J=0.7, D=(0.0, 0.2, 0.1))
M0 = np.array([[1.0, 0, 0], [0, 0.6, 0.8]])


def _classical_dimer_runs(temperature, dts):
    model, ts, keys = q.dimer_model(**DIMER), np.array([0.0, 1.0]), _keys(3, N_PATHS)
    run = lambda dt: jax.vmap(lambda k: stochastic_llg(model, M0, ts, 0.3, temperature=temperature, key=k, dt=dt,  # noqa: E731
                                                        brownian_tol=TOL)[-1])(keys)
    return [np.asarray(run(dt)) for dt in dts]


def test_strong_convergence_same_brownian_path():
    """Coupled classical dimer at τ = 0.5 on t ∈ [0, 1]: successive differences shrink at the strong order 1/2 of
    stochastic Heun for non-commutative noise (ratio √2 per halving); with a different path per step they would stay
    O(1), with commutative noise (order 1) they would halve."""
    diffs = _rms_differences(_classical_dimer_runs(0.5, DTS))
    order = np.log2(diffs[0] / diffs[1])
    assert 0.35 < order < 0.65, order  # 0.5 ± 3 × the measured scatter


def test_zero_temperature_classical_equals_deterministic_llg():
    """τ = 0 (the same programs as above): the deterministic Heun–Rodrigues scheme, order 2 against the adaptive
    classical_llg (rtol 1e-11); every path equal."""
    ref = np.asarray(q.classical_llg(q.dimer_model(**DIMER), M0, np.array([0.0, 1.0]), 0.3, rtol=1e-11, atol=1e-12))[-1]
    runs = _classical_dimer_runs(0.0, DTS[:2])
    errors = [np.max(np.abs(m - ref)) for m in runs]
    assert errors[0] < 1e-4  # (ω dt)³/12 per step × 50 steps, ω ≤ 4.6
    assert 3.2 < errors[0] / errors[1] < 4.8  # order 2: ratio 4 (1 + O(dt))


def _marginal_purity(psi, dims):
    amplitudes = psi.reshape(psi.shape[:-1] + dims)
    reduced = np.einsum("...ia,...ja->...ij", amplitudes, amplitudes.conj())
    return np.real(np.einsum("...ij,...ji->...", reduced, reduced))


def test_strong_convergence_quantum_product_kept():
    """Ket of two uncoupled spins (s = 1/2, 1): successive differences at strong order 1/2 on one Brownian path, and
    the product state is kept in the limit: the exact flow of a sum of one-site H's keeps ψ1⊗ψ2, the Cayley step only
    to O(h) in the amplitudes, so the mean marginal purity deficit shrinks as h² (ratio 4 per halving)."""
    model = _two_site_model()
    psi0, ts = q.coherent_product_state(SPINS, [[1.0, 0, 0], [0, 1.0, 0.5]]), np.array([0.0, 1.0])
    keys = _keys(4, N_PATHS)
    run = lambda dt: jax.vmap(lambda k: stochastic_frames(model, psi0, ts, DAMPING, temperature=1.0, key=k, dt=dt,  # noqa: E731
                                                           brownian_tol=TOL).kets()[-1])(keys)
    kets = [np.asarray(run(dt)) for dt in DTS]
    diffs = [np.sqrt(np.mean(np.sum(np.abs(a - b) ** 2, axis=-1))) for a, b in zip(kets, kets[1:])]
    order = np.log2(diffs[0] / diffs[1])
    assert 0.35 < order < 0.65, order
    deficits = [np.mean(1 - _marginal_purity(psi, (2, 3))) for psi in kets]
    assert 2.5 < deficits[0] / deficits[1] < 6.5 and 2.5 < deficits[1] / deficits[2] < 6.5, deficits


def _mixed_dimer():
    model = q.dimer_model(B=(1.0, 0.0, 0.5), J=1.0, D=(0.0, 0.0, 0.3))
    rho0 = np.asarray(q.random_density_matrix(jax.random.PRNGKey(5), 4))  # full rank, distinct eigenvalues
    return model, rho0


QTS = np.linspace(0.0, 2.0, 3)


def _dimer_frames(temperature, equation="qllg", dense=False, n=8, ensemble=False):
    """One program for every equation, temperature and key (the equation enters through arrays)."""
    model, rho0 = _mixed_dimer()
    H, spins = (np.asarray(model.matrix()), (0.5, 0.5)) if dense else (model, None)
    run = jax.vmap(lambda k: stochastic_frames(H, rho0, QTS, DAMPING, temperature=temperature, key=k, dt=0.02,
                                               equation=equation, spins=spins))
    trajectories = run(_keys(6, n))
    return (rho0, np.asarray(trajectories.density_matrices())) if not ensemble else trajectories


@pytest.mark.parametrize("equation", ["qllg", "qll", "von_neumann"])
def test_spectrum_conserved_per_trajectory_noisy_mixed_dimer(equation):
    rho0, rho = _dimer_frames(0.5, equation)
    initial = np.linalg.eigvalsh(rho0)
    assert np.max(np.abs(np.linalg.eigvalsh(rho) - initial)) < 1e-10
    assert np.max(np.abs(rho[:, -1] - rho[:1, -1])) > 1e-2  # the noise did act, differently per key
    if equation == "qllg":  # the ensemble average mixes: its entropy rises above every trajectory's
        entropy = lambda r: -np.sum(r * np.log(np.clip(r, 1e-300, None)))  # noqa: E731
        assert entropy(np.linalg.eigvalsh(rho[:, -1].mean(0))) > entropy(initial) + 1e-3
        # the dense noise operator (a raw H with spins, embedded S_k) gives the matrix-free trajectories
        np.testing.assert_allclose(_dimer_frames(0.5, dense=True)[1], rho, atol=1e-12)


def test_ensemble_helpers_against_numpy():
    from qllg_jax.thermal import ensemble_density_matrix, ensemble_energy, ensemble_mean, ensemble_spin_expectations

    trajectories = _dimer_frames(0.5, ensemble=True)
    rho = np.einsum("ntir,nr,ntjr->ntij", np.asarray(trajectories.frames), np.asarray(trajectories.weights),
                    np.asarray(trajectories.frames).conj())
    np.testing.assert_allclose(ensemble_density_matrix(trajectories), rho.mean(0), atol=1e-14)
    pauli = np.asarray(q.pauli_matrices())
    sigma1 = np.einsum("aij,kl->aikjl", pauli, np.eye(2)).reshape(3, 4, 4)  # σ ⊗ 1 (site 0)
    bloch = np.real(np.einsum("ntij,aji->nta", rho, sigma1))
    mean, se = ensemble_spin_expectations(trajectories, (0.5, 0.5), normalised=True)
    np.testing.assert_allclose(mean[:, 0], bloch.mean(0), atol=1e-13)
    np.testing.assert_allclose(se[:, 0], bloch.std(0, ddof=1) / np.sqrt(len(bloch)), atol=1e-13)
    H = np.asarray(q.dimer_model(B=(1.0, 0.0, 0.5), J=1.0, D=(0.0, 0.0, 0.3)).matrix())
    energies = np.real(np.einsum("ntij,ji->nt", rho, H))
    np.testing.assert_allclose(ensemble_energy(trajectories, H)[0], energies.mean(0), atol=1e-13)
    np.testing.assert_allclose(ensemble_energy(trajectories, H)[0][0], np.real(np.trace(_mixed_dimer()[1] @ H)), atol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        ensemble_mean(np.ones((1, 3)))


def test_zero_temperature_quantum_equals_deterministic_solve():
    """τ = 0: the deterministic Cayley–Heun scheme against the adaptive solve (rtol 1e-11), within its O(dt²) error."""
    model, rho0 = _mixed_dimer()
    ref = np.asarray(q.solve(model, rho0, QTS, DAMPING, rtol=1e-11, atol=1e-12).states)
    _, rho = _dimer_frames(0.0)
    assert np.max(np.abs(rho - ref)) < 1e-3  # (W dt)³/12 per step × 100 steps, W ≈ 6.6: 2e-4


def test_same_key_same_path_different_key_different(compiles):
    model, ts = q.spin_model([0.5], field=[0.0, 0.0, 1.0]), np.linspace(0.0, 2.0, 3)
    run = lambda key, tau=0.4: stochastic_llg(model, [[1.0, 0, 0]], ts, DAMPING, temperature=tau, key=key, dt=0.02)  # noqa: E731
    a = np.asarray(run(jax.random.PRNGKey(8)))
    compiles.clear()
    b = np.asarray(run(jax.random.PRNGKey(8)))
    c = np.asarray(run(jax.random.PRNGKey(9), 0.3))
    assert not compiles  # another key and temperature reuse the program
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - c)) > 1e-2
    keys = jax.random.split(jax.random.PRNGKey(10), 3)
    batched = np.asarray(jax.jit(jax.vmap(run))(keys))
    np.testing.assert_allclose(batched, np.stack([run(k) for k in keys]), atol=1e-12)
    # the public entry point: a batch of keys is vmapped (leading axis 3), one key is one trajectory
    public = q.classical_llg(model, [[1.0, 0, 0]], ts, DAMPING, temperature=0.4, key=keys, dt=0.02)
    np.testing.assert_allclose(public, batched, atol=1e-12)


def test_public_classical_llg_zero_temperature_is_the_deterministic_solve():
    model, ts = q.spin_model([0.5], field=[0.0, 0.0, 1.0]), np.linspace(0.0, 2.0, 3)
    deterministic = q.classical_llg(model, [[1.0, 0, 0]], ts, DAMPING)
    np.testing.assert_array_equal(q.classical_llg(model, [[1.0, 0, 0]], ts, DAMPING, temperature=0.0,
                                                  key=jax.random.PRNGKey(1)), deterministic)
    with pytest.raises(ValueError, match="key given without temperature"):
        q.classical_llg(model, [[1.0, 0, 0]], ts, DAMPING, key=jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match="deterministic solve only"):
        q.classical_llg(model, [[1.0, 0, 0]], ts, DAMPING, temperature=0.1, key=jax.random.PRNGKey(1), rtol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        q.classical_llg(model, [[1.0, 0, 0]], ts, DAMPING, temperature=-1.0, key=jax.random.PRNGKey(1))


def test_pathwise_gradient_matches_finite_differences():
    ts, key = np.array([0.0, 0.5]), jax.random.PRNGKey(11)

    def final_mz(b):
        model = q.spin_model([0.5], field=jnp.stack([0.2, 0.0, b]))
        return stochastic_llg(model, [[1.0, 0, 0]], ts, DAMPING, temperature=0.3, key=key, dt=0.02, noise="steps")[-1, 0, 2]

    eps = 1e-5
    fd = (final_mz(1.0 + eps) - final_mz(1.0 - eps)) / (2 * eps)  # error O(eps²) on a smooth map of b
    np.testing.assert_allclose(jax.grad(final_mz)(1.0), fd, rtol=1e-6)


def test_bad_inputs():
    model, m0, ts = q.spin_model([0.5], field=[0.0, 0.0, 1.0]), [[1.0, 0, 0]], np.array([0.0, 1.0])
    key = jax.random.PRNGKey(0)
    for bad in (-0.1, np.nan, np.inf, "hot", [0.1, 0.2]):
        with pytest.raises(ValueError, match="temperature"):
            stochastic_llg(model, m0, ts, 0.5, temperature=bad, key=key)
    with pytest.raises(ValueError, match="key is required"):
        stochastic_llg(model, m0, ts, 0.5, temperature=0.1)
    with pytest.raises(ValueError, match="too coarse"):
        stochastic_llg(model, m0, ts, 0.5, temperature=0.1, key=key, dt=0.9)
    with pytest.raises(ValueError, match="brownian_tol"):
        stochastic_llg(model, m0, ts, 0.5, temperature=0.1, key=key, dt=0.01, brownian_tol=0.01)
    with pytest.raises(ValueError, match="noise"):
        stochastic_llg(model, m0, ts, 0.5, temperature=0.1, key=key, noise="pink")
    H, psi = np.asarray(model.matrix()), q.coherent_state(0.5, [1.0, 0, 0])
    with pytest.raises(ValueError, match="spins="):
        stochastic_frames(H, psi, ts, 0.5, temperature=0.1, key=key)
    with pytest.raises(ValueError, match="matrix for spins"):
        stochastic_frames(H, psi, ts, 0.5, temperature=0.1, key=key, spins=(1.0,))
    with pytest.raises(ValueError, match="temperature"):
        stochastic_frames(model, psi, ts, 0.5, temperature=-1.0, key=key)
    with pytest.raises(ValueError, match="key is required"):
        stochastic_frames(model, psi, ts, 0.5, temperature=0.2)


def test_counter_noise_generator_and_law():
    """The unrolled Threefry is jax's threefry_2x32 bit for bit; the float32-inversion normals have mean 0, variance 1
    and kurtosis 3 within 5 standard errors of those estimators (n = 2^20 draws: SE 1e-3, 1.4e-3, 4.8e-3·√(96/...))."""
    import jax.extend.random as jr

    from qllg_jax.thermal.noise import normal_from_bits, threefry2x32

    key, counts = jnp.array([123, 4567], jnp.uint32), jnp.arange(8, dtype=jnp.uint32)
    ours = threefry2x32(key[0], key[1], counts[:4], counts[4:])
    np.testing.assert_array_equal(np.concatenate([np.asarray(o) for o in ours]), np.asarray(jr.threefry_2x32(key, counts)))
    n = 2**20
    bits = jax.random.bits(jax.random.PRNGKey(2), (n,), jnp.uint32)
    z = np.asarray(normal_from_bits(bits))
    m2, m4 = np.mean(z**2), np.mean(z**4)
    assert abs(z.mean()) < 5 / np.sqrt(n)  # SE of the mean: 1/√n
    assert abs(m2 - 1) < 5 * np.sqrt(2 / n)  # SE of the second moment: √(2/n)
    assert abs(m4 - 3) < 5 * np.sqrt(96 / n)  # SE of the fourth moment: √((105 − 9)/n)
    assert np.max(np.abs(z)) < 5.4  # tails cut at √2 erfinv(1 − 2^-23) = 5.3 (documented)


def test_rational_rotation_is_a_rotation_close_to_the_exponential():
    """|R m| = |m| to round-off for large angles; R(θ) − exp(θ) = O(|θ|³) with the constant 1/(12·4^q) of the angle."""
    from qllg_jax.thermal.lie import DOUBLINGS, rational_rotate, rotate

    rng = np.random.default_rng(0)
    axis, m = rng.normal(size=(64, 3)), rng.normal(size=(64, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    big = rational_rotate(tuple(3.0 * axis.T), tuple(m.T))
    np.testing.assert_allclose(np.linalg.norm(np.stack(big, -1), axis=-1), np.linalg.norm(m, axis=-1), rtol=1e-14)
    errors = []
    for angle in (0.2, 0.1):
        theta = angle * axis
        ours = np.stack(rational_rotate(tuple(theta.T), tuple(m.T)), axis=-1)
        errors.append(np.max(np.abs(ours - np.asarray(rotate(jnp.asarray(theta), jnp.asarray(m)))) / np.linalg.norm(m, axis=-1, keepdims=True)))
    assert errors[0] <= 1.05 * 0.2**3 / (12 * 4**DOUBLINGS)  # the angle error bounds the displacement of a unit vector
    assert 7.0 < errors[0] / errors[1] < 9.0  # third order: ratio 8 per halving


def test_ensemble_of_keys_equals_one_key_at_a_time():
    """A batch of keys (trajectories-last ensemble) gives each key's own trajectory (classical and full-rank frames,
    noise="steps"), to round-off: the noise is the same integers, only the arithmetic's vector layout differs."""
    model, ts = q.spin_model([0.5, 1.0], field=[[0.0, 0, 1.0], [0.5, 0, 0]], exchange=0.4, bonds=[(0, 1)]), np.array([0.0, 0.5, 1.0])
    keys = _keys(12, 3)
    m0 = [[1.0, 0, 0], [0, 0, 1.0]]
    batch = np.asarray(stochastic_llg(model, m0, ts, DAMPING, temperature=0.5, key=keys, dt=0.02, noise="steps"))
    single = np.stack([np.asarray(stochastic_llg(model, m0, ts, DAMPING, temperature=0.5, key=k, dt=0.02, noise="steps"))
                       for k in keys])
    np.testing.assert_allclose(batch, single, atol=1e-13)
    assert np.max(np.abs(batch[0] - batch[1])) > 1e-2


def test_full_rank_eigenframe_path_equals_lab_frame_step(monkeypatch):
    """The trajectories-last eigenframe step (U C(X), real pairs, Gauss–Jordan Cayley) against the lab-frame step
    (K = Y S Y†, LAPACK solve, vmapped over keys) on the same noise: equal to round-off (the same scheme in exact
    arithmetic); every frame unitary to round-off (spectrum of ϱ conserved)."""
    from qllg_jax.thermal import frames as frames_module

    dimer, rho0 = _mixed_dimer()
    keys = _keys(13, 4)
    run = lambda: np.asarray(stochastic_frames(dimer, rho0, QTS, DAMPING, temperature=0.5, key=keys, dt=0.02,  # noqa: E731
                                               noise="steps").frames)
    fast = run()
    monkeypatch.setattr(frames_module, "FULL_RANK_MAX_DIM", 0)
    lab = run()
    np.testing.assert_allclose(fast, lab, atol=1e-12)  # 100 steps of round-off (~1e-15 each) on unit-size entries
    gram = np.conj(np.swapaxes(fast, -1, -2)) @ fast
    assert np.max(np.abs(gram - np.eye(4))) < 1e-12
    assert np.max(np.abs(fast[0, -1] - fast[1, -1])) > 1e-2
