"""Classical atomistic LLG: closed forms, the issue's dimer formula, invariants, quantum ↔ classical (eq. 6)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import qllg_jax as q
from qllg_jax.classical import llg_rhs


def _damped_precession(b, alpha, ts):
    """Closed form for m0 = x̂ in a field b ẑ (H = −b·S): polar angle from tan(θ/2) = e^{−u}, u = αbt/(1+α²)."""
    u = alpha * b * ts / (1 + alpha**2)
    phi = -b * ts / (1 + alpha**2)
    return np.stack([np.cos(phi) / np.cosh(u), np.sin(phi) / np.cosh(u), np.tanh(u)], axis=-1)


def test_single_spin_matches_analytic_damped_precession():
    ts = jnp.linspace(0.0, 6.0, 61)
    b, alpha = 1.7, 0.3
    m = q.classical_llg(q.spin_model([0.5], field=[0.0, 0.0, b]), [[1.0, 0.0, 0.0]], ts, alpha)
    assert m.shape == (61, 1, 3)
    np.testing.assert_allclose(m[:, 0], _damped_precession(b, alpha, np.asarray(ts)), atol=1e-7)


def test_single_spin_paper_units_tanh():
    # the issue's form: with B the paper's field (H = −B·σ), m_z = tanh(αφ), φ = 2|B|t/(1+α²)
    ts = jnp.linspace(0.0, 3.0, 31)
    B, alpha = 0.8, 0.5
    m = q.classical_llg(q.dimer_model([0, 0, B], 0.0, spin=0.5), [[1.0, 0, 0], [0, 1.0, 0]], ts, alpha)
    phi = 2 * B * np.asarray(ts) / (1 + alpha**2)
    np.testing.assert_allclose(m[:, :, 2], np.tanh(alpha * phi)[:, None] * np.ones(2), atol=1e-7)


def _issue_dimer_rhs(t, y, B, J, D, alpha):
    """The issue's formula coded independently: b1 = B − J m2 − m2×D, b2 = B − J m1 + m1×D."""
    m1, m2 = y[:3], y[3:]
    b1 = B - J * m2 - np.cross(m2, D)
    b2 = B - J * m1 + np.cross(m1, D)
    out = []
    for m, b in ((m1, b1), (m2, b2)):
        out.append(2 / (1 + alpha**2) * (np.cross(m, b) - alpha * np.cross(m, np.cross(m, b))))
    return np.concatenate(out)


@pytest.mark.parametrize("J", [1.0, -0.7])
def test_classical_dimer_matches_issue_formula(J):
    rng = np.random.default_rng(3)
    B, D = rng.normal(size=3), rng.normal(size=3)
    m1, m2 = rng.normal(size=3), rng.normal(size=3)
    m1, m2 = m1 / np.linalg.norm(m1), m2 / np.linalg.norm(m2)
    alpha = 0.4
    # the right-hand side itself, at the initial point
    rhs = llg_rhs(q.dimer_model(B, J, D), jnp.stack([m1, m2]), alpha)
    np.testing.assert_allclose(np.asarray(rhs).ravel(), _issue_dimer_rhs(0, np.concatenate([m1, m2]), B, J, D, alpha), atol=1e-12)
    # and the trajectory against scipy's DOP853 on the independent formula
    ts = np.linspace(0.0, 4.0, 21)
    ref = solve_ivp(_issue_dimer_rhs, (0, 4), np.concatenate([m1, m2]), t_eval=ts, args=(B, J, D, alpha),
                    method="DOP853", rtol=1e-11, atol=1e-12).y.T.reshape(-1, 2, 3)
    m = q.classical_dimer(B, J, D, m1, m2, jnp.asarray(ts), alpha)
    assert m.shape == (21, 2, 3)
    np.testing.assert_allclose(m, ref, atol=1e-6)


def test_norm_conserved_and_energy_non_increasing():
    model = q.chain_model(3, exchange=[1.0, -0.5], dmi=[0.3, 0.1, 0.2], field=[0.2, 0.5, 0.1], spin=1.0,
                          anisotropy=0.4, anisotropy_axis=[1.0, 1.0, 0.0])
    m0 = jnp.array([[0.1, 0.2, 1.0], [1.0, -0.3, 0.2], [-0.5, 0.5, 0.5]])
    ts = jnp.linspace(0.0, 10.0, 201)
    m = q.classical_llg(model, m0, ts, 0.2)
    np.testing.assert_allclose(np.linalg.norm(m, axis=-1), 1.0, atol=1e-7)
    energy = np.asarray(q.classical_energy(model, m))
    assert energy.shape == (201,)
    assert np.all(np.diff(energy) <= 1e-9)
    assert energy[-1] < energy[0] - 0.1
    # undamped: energy conserved
    e_free = np.asarray(q.classical_energy(model, q.classical_llg(model, m0, ts, 0.0)))
    np.testing.assert_allclose(e_free, e_free[0], atol=1e-6)


def test_quantum_single_spin_equals_classical():
    # eq. 6: a pure spin-coherent state under q-LLG (κ) follows classical LLG with α = κ
    # (s = 1 exercises general spin operators; spin 1/2 runs the same code with 2x2 matrices)
    s = 1.0
    b = jnp.array([0.3, -0.4, 1.1])
    model = q.spin_model([s], field=b)
    n0 = np.array([1.0, 0.5, -0.3])
    ts = jnp.linspace(0.0, 5.0, 26)
    kappa = 0.5
    result = q.solve(model.matrix(), q.coherent_state(s, n0), ts, kappa, method="dense",
                     observables={"r": lambda rho: q.bloch_vectors(rho, [s])})
    m = q.classical_llg(model, n0[None], ts, kappa)
    np.testing.assert_allclose(result.observables["r"], m, atol=1e-6)


def test_vmap_and_grad():
    # vmap over α and jax.grad w.r.t. α, both against the closed-form damped precession (m_z = tanh u)
    b, t_end = 1.3, 2.0
    model = q.spin_model([0.5], field=[0.0, 0.0, b])
    ts = jnp.linspace(0.0, t_end, 5)
    alphas = jnp.array([0.1, 0.5])
    batched = jax.vmap(lambda a: q.classical_llg(model, [[1.0, 0.0, 0.0]], ts, a))(alphas)
    for k, a in enumerate(np.asarray(alphas)):
        np.testing.assert_allclose(batched[k, :, 0], _damped_precession(b, a, np.asarray(ts)), atol=1e-7)
    f = lambda a: q.classical_llg(model, [[1.0, 0.0, 0.0]], ts, a)[-1, 0, 2]  # noqa: E731
    a = 0.3
    u = a * b * t_end / (1 + a**2)
    du_da = b * t_end * (1 - a**2) / (1 + a**2) ** 2
    np.testing.assert_allclose(jax.grad(f)(a), (1 - np.tanh(u) ** 2) * du_da, rtol=1e-5)


def test_validation():
    model = q.dimer_model()
    ts = jnp.linspace(0.0, 1.0, 3)
    with pytest.raises(ValueError, match="m0"):
        q.classical_llg(model, jnp.zeros((3, 3)) + 1, ts, 0.5)
    with pytest.raises(ValueError, match="m0"):
        q.classical_llg(model, jnp.zeros((2, 3)), ts, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        q.classical_llg(model, jnp.ones((2, 3)), ts, -0.1)
    with pytest.raises(ValueError, match="model"):
        q.classical_llg(np.eye(4), jnp.ones((2, 3)), ts, 0.5)
    with pytest.raises(ValueError, match="ts"):
        q.classical_llg(model, jnp.ones((2, 3)), jnp.array([1.0, 0.0]), 0.5)
