"""A driven H(t) at finite temperature (issue 22 on the machinery of issue 21): the stochastic integrators with a
drive, classical and quantum.

- Without noise (τ = 0 in the integrators themselves) the fixed-step scheme must converge at order 2 to the adaptive
  driven solve (rtol 1e-11, an independent integrator), also across pwc edges that are not save times and through a
  short Gaussian pulse: that needs the drive's jumps as step boundaries and the drive evaluated inside each step
  (a step across an edge, or H taken at a step's end on a half-open pwc, is first order: error ratio ≈ 2 per halving).
- With noise, a field switched on by the drive thermalises each spin to its own Langevin law (4 standard errors; the
  quantum Brillouin law is excluded by the same data), and every trajectory keeps the spectrum of ϱ to round-off.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.classical.stochastic import stochastic_llg
from qllg_jax.thermal import stochastic_frames

DIMER = dict(B=(0.3, 0.0, 1.0), J=0.7, D=(0.0, 0.2, 0.1))
TS = np.array([0.0, 0.5, 1.5])
EDGES = np.array([0.1, 0.37, 0.81, 1.3])  # pwc edges between the save times (0.37, 0.81) and after the last (none)


def _driven(model):
    """Dimer + a transverse pwc field (three segments, edges off the save grid) + a Gaussian z-field pulse."""
    x_field = q.dimer_model(B=(1.0, 0.0, 0.0), J=0.0)
    z_field = q.dimer_model(B=(0.0, 0.0, 1.0), J=0.0)
    return (model + q.pwc(EDGES, np.array([0.8, -0.5, 0.3]), x_field)
            + q.modulated(q.pulses.gaussian(0.6, 1.0, 0.1), z_field))


def _order_two(errors, what):
    ratio = errors[0] / errors[1]
    # order 2: the error ratio per halving is 4 (1 + O(dt)); a first-order scheme (a step across an edge) gives ≈ 2
    assert 3.2 < ratio < 4.8, (what, errors)


def test_noise_free_driven_quantum_steps_converge_at_order_two():
    """A rank-2 mixed dimer state (the frame path; a ket is a frame of rank 1)."""
    H = _driven(q.dimer_model(**DIMER))
    psi0 = q.coherent_product_state([0.5, 0.5], [[1.0, 0, 0], [0, 0.6, 0.8]])
    rho0 = 0.7 * q.density_matrix(psi0) + 0.3 * q.density_matrix(q.up_down_state())
    ref = np.asarray(q.solve(H, rho0, TS, 0.4, rtol=1e-11, atol=1e-13).states)
    errors = [np.max(np.abs(np.asarray(stochastic_frames(H, rho0, TS, 0.4, temperature=0.0, key=jax.random.PRNGKey(0),
                                                         dt=dt).density_matrices()) - ref)) for dt in (4e-3, 2e-3)]
    _order_two(errors, "frames")
    assert errors[0] < 1e-4, errors  # (W dt)³/12 per step × 375 steps with W ≤ 6: ≤ 5e-5


def test_noise_free_driven_classical_steps_converge_at_order_two():
    model = _driven(q.dimer_model(**DIMER))
    m0 = np.array([[1.0, 0, 0], [0, 0.6, 0.8]])
    ref = np.asarray(q.classical_llg(model, m0, TS, 0.3, rtol=1e-11, atol=1e-12))
    errors = [np.max(np.abs(np.asarray(stochastic_llg(model, m0, TS, 0.3, temperature=0.0, key=jax.random.PRNGKey(0),
                                                      dt=dt)) - ref)) for dt in (4e-3, 2e-3)]
    _order_two(errors, "classical")
    assert errors[0] < 1e-4, errors


def langevin(x):
    return 1 / np.tanh(x) - 1 / x


SPINS = (0.5, 1.0)
FIELDS = np.array([2.0, 3.0])
TAU = 1.0  # x = s b / τ = (1, 3): Langevin (0.313, 0.667), Brillouin (0.762, 0.889)
T_EQ = 12.0  # the z-field is on from t = 2: ≥ 8 relaxation times (1.25 at b = 2, α = 0.5)
N_KEYS = 512


def _field_switched_on_by_a_drive():
    """No static field; a transverse pulse on [0, 2] (pwc), then the z-fields (s = 1/2 in b = 2, s = 1 in b = 3) from
    t = 2 to T_EQ (pwc, its last edge the end time)."""
    zero = q.spin_model(list(SPINS))
    x_kick = q.spin_model(list(SPINS), field=[[1.0, 0, 0], [1.0, 0, 0]])
    z_field = q.spin_model(list(SPINS), field=np.stack([np.zeros(2), np.zeros(2), FIELDS], axis=-1))
    return zero + q.pwc(np.array([0.0, 2.0]), np.array([0.5]), x_kick) + q.pwc(np.array([2.0, T_EQ]), np.array([1.0]),
                                                                                   z_field)


def _check_langevin(values):
    """values (keys, 2 sites) of ⟨S_z⟩/s at T_EQ: each site at its own Langevin value within 4 SE, not Brillouin."""
    mean, se = values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    x = np.asarray(SPINS) * FIELDS / TAU
    a, c = [(2 * s + 1) / (2 * s) for s in SPINS], [1 / (2 * s) for s in SPINS]
    brillouin = np.array([ai / np.tanh(ai * xi) - ci / np.tanh(ci * xi) for ai, ci, xi in zip(a, c, x)])
    assert np.all(np.abs(mean - langevin(x)) <= 4 * se), (mean, langevin(x), se)
    assert np.all(np.abs(mean - brillouin) > 4 * se), (mean, brillouin, se)


def test_a_field_switched_on_by_a_drive_thermalises_to_the_langevin_law():
    model, ts = _field_switched_on_by_a_drive(), np.array([0.0, T_EQ])
    keys = jax.random.split(jax.random.PRNGKey(7), N_KEYS)
    m = np.asarray(q.classical_llg(model, np.array([[0.0, 0, 1], [0, 0, 1]]), ts, 0.5, temperature=TAU, key=keys,
                                   dt=0.04, noise="steps"))
    assert m.shape == (N_KEYS, 2, 2, 3)
    assert np.max(np.abs(np.linalg.norm(m, axis=-1) - 1)) < 1e-12  # rotations: |m| = 1 to round-off
    _check_langevin(m[:, -1, :, 2])

    psi0 = q.coherent_product_state(SPINS, [[0, 0, 1.0], [0, 0, 1.0]])
    keys = jax.random.split(jax.random.PRNGKey(8), N_KEYS)
    psi = np.asarray(stochastic_frames(model, psi0, ts, 0.5, temperature=TAU, key=keys, dt=0.04,
                                       noise="steps").kets())[:, -1].reshape(N_KEYS, 2, 3)  # site 0 (d = 2) ⊗ site 1
    reduced = [np.einsum("nia,nja->nij", psi, psi.conj()), np.einsum("nai,naj->nij", psi, psi.conj())]
    _check_langevin(np.stack([np.real(np.einsum("nij,ji->n", r, np.asarray(q.spin_matrices(s)[2]))) / s
                              for r, s in zip(reduced, SPINS)], axis=-1))


def test_driven_noisy_mixed_dimer_keeps_the_spectrum_and_records_the_energy_of_h_t():
    H = _driven(q.dimer_model(**DIMER))
    rho0 = 0.6 * q.density_matrix(q.up_down_state()) + 0.3 * q.density_matrix(q.coherent_product_state(
        [0.5, 0.5], [[1.0, 0, 0], [0, 1.0, 0]])) + 0.1 * np.eye(4) / 4
    ts = np.linspace(0.0, 1.5, 7)
    result = q.solve(H, rho0, ts, 0.5, temperature=0.8, key=jax.random.split(jax.random.PRNGKey(3), 4),
                     max_step=5e-3)
    assert result.method == "frame" and bool(np.all(result.success))
    rho = np.asarray(result.states)  # (4 keys, T, 4, 4)
    spectra = np.linalg.eigvalsh(rho)
    assert np.max(np.abs(spectra - np.linalg.eigvalsh(np.asarray(rho0))[None, None])) < 1e-10  # unitary steps
    energies = np.einsum("ktij,tji->kt", rho, np.stack([np.asarray(H(t)) for t in ts])).real
    np.testing.assert_allclose(np.asarray(result.invariants["energy"]), energies, atol=1e-12)  # Tr ϱ(t) H(t)
    assert np.std(rho[:, -1], axis=0).max() > 1e-3  # the keys give different paths


def test_driven_thermal_bad_inputs_before_compute():
    model = q.dimer_model(**DIMER)
    batch = model + q.pwc(np.array([0.0, 1.0]), np.array([[0.5], [0.2]]), q.dimer_model(B=(1.0, 0, 0), J=0.0))
    with pytest.raises(ValueError, match="batch axes"):
        q.solve(batch, q.up_down_state(), TS, 0.5, temperature=0.5, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="batch axes"):
        q.classical_llg(batch, np.array([[1.0, 0, 0], [0, 0, 1]]), TS, 0.5, temperature=0.5, key=jax.random.PRNGKey(0))
    bad = model + q.modulated(lambda t: jnp.where(t > 0.2, jnp.nan, 1.0), q.dimer_model(B=(1.0, 0, 0), J=0.0))
    with pytest.raises(ValueError, match="not finite"):
        q.solve(bad, q.up_down_state(), TS, 0.5, temperature=0.5, key=jax.random.PRNGKey(0))
    fast = model + q.modulated(q.pulses.cosine(1.0, 200.0), q.dimer_model(B=(1.0, 0, 0), J=0.0))
    with pytest.raises(ValueError, match="too coarse"):  # a 200 rad/(ħ/E0) carrier is not resolved by dt = 0.01
        q.solve(fast, q.up_down_state(), TS, 0.5, temperature=0.5, key=jax.random.PRNGKey(0), max_step=0.01)


def test_driven_thermal_solve_under_eager_jit_vmap_and_grad():
    """One spin in b_z = 2 kicked by a transverse Gaussian pulse of amplitude a, τ = 0.3, one key: eager, jit (a
    traced, so max_step given), vmap over two amplitudes and jit(vmap) run the same method with the same numbers; the
    pathwise derivative d⟨S_x⟩(T)/da (same key, same path) equals central differences of the eager solve."""
    spin = q.spin_model([0.5], field=[0.0, 0.0, 2.0])
    psi0, ts, key = q.coherent_state(0.5, [0, 0, 1.0]), np.array([0.0, 1.0, 2.0]), jax.random.PRNGKey(4)
    sx = np.asarray(q.spin_matrices(0.5)[0])

    def run(a):
        H = spin + q.pulses.field_drive(spin, q.pulses.gaussian(a, 0.8, 0.2), [1.0, 0.0, 0.0])
        r = q.solve(H, psi0, ts, 0.5, temperature=0.3, key=key, max_step=0.01, observables={"sx": sx})
        return r.method, r.observables["sx"]

    amplitudes = np.array([0.7, 1.3])
    eager = [run(a) for a in amplitudes]
    assert {m for m, _ in eager} == {"ket"}
    jitted = jax.jit(lambda a: run(a)[1])
    vmapped = jax.vmap(lambda a: run(a)[1])(jnp.asarray(amplitudes))
    both = jax.jit(jax.vmap(lambda a: run(a)[1]))(jnp.asarray(amplitudes))
    for i, (_, value) in enumerate(eager):
        # the same program up to XLA's fusion choices: round-off (1e-12 ≫ 600 steps × ε)
        np.testing.assert_allclose(np.asarray(jitted(amplitudes[i])), np.asarray(value), atol=1e-12)
        np.testing.assert_allclose(np.asarray(vmapped[i]), np.asarray(value), atol=1e-12)
        np.testing.assert_allclose(np.asarray(both[i]), np.asarray(value), atol=1e-12)
    grad = float(jax.grad(lambda a: run(a)[1][-1])(1.0))
    h = 1e-4  # the path is a smooth function of a for a fixed key: truncation O(h²) ~ 1e-8, round-off ~1e-12/h
    fd = (float(run(1.0 + h)[1][-1]) - float(run(1.0 - h)[1][-1])) / (2 * h)
    assert abs(fd) > 1e-2  # a derivative that could be wrong
    np.testing.assert_allclose(grad, fd, atol=1e-6)
