"""Inverse design (qllg_jax.design): the fit machinery on closed-form losses, and the three demonstrations
of issue 6 on the dimer (short windows; the full Bell-design run is in notebooks/inverse_design.ipynb)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qllg_jax as q
from qllg_jax import design

TOL = dict(rtol=1e-10, atol=1e-12, invariant_tol=None)


def test_fit_bounds_constraint_multistart_on_a_closed_form_loss():
    """Loss with minima at x = ±2 (outside the box [−1, 1.5] for −2): projected optimum 1.5 from every start;
    the constraint fixes y = 0.3; multi-start picks the lowest final loss."""
    loss = lambda p: (p["x"] ** 2 - 4.0) ** 2 + 0.1 * p["x"] + jnp.sum((p["y"] - 1.0) ** 2)  # noqa: E731
    init = {"x": jnp.array(-0.5), "y": jnp.zeros(2)}
    constraint = lambda p: {"x": p["x"], "y": p["y"].at[1].set(0.3)}  # noqa: E731
    res = design.fit(loss, init, optax.adam(0.05), steps=300, bounds=(-1.0, 1.5), constraint=constraint, n_starts=4,
                     key=jax.random.PRNGKey(1), progress=False)
    np.testing.assert_allclose(res.params["x"], 1.5, atol=1e-12)  # on the bound
    np.testing.assert_allclose(res.params["y"], [1.0, 0.3], atol=1e-3)
    assert res.all_losses.shape == (4,) and res.all_histories.shape == (4, 300) and res.loss_history.shape == (300,)
    assert np.all(np.asarray(res.all_params["x"]) >= -1.0) and np.all(np.asarray(res.all_params["x"]) <= 1.5)
    assert float(res.loss) == pytest.approx(float(np.min(res.all_losses)))
    with pytest.raises(ValueError, match="bounds"):
        design.fit(loss, init, bounds=(0.0,), steps=1, progress=False)
    with pytest.raises(ValueError, match="steps"):
        design.fit(loss, init, steps=0, progress=False)


def test_loss_helpers_closed_forms():
    psi_minus = q.bell_state("psi-")  # singlet: T = −𝟙, B = √(1 + 1 − 1) = 1 (max), Bloch vectors 0
    rho = q.density_matrix(psi_minus)
    np.testing.assert_allclose(design.correlation_loss(rho, -jnp.eye(3)), 0.0, atol=1e-24)
    np.testing.assert_allclose(design.correlation_loss(rho, jnp.zeros((3, 3))), 3.0, atol=1e-12)
    np.testing.assert_allclose(design.bell_loss(rho), -1.0, atol=1e-12)
    np.testing.assert_allclose(design.bell_loss(rho, 0.5), 0.25, atol=1e-12)
    up_down = q.density_matrix(q.up_down_state())  # r1 = +ẑ, r2 = −ẑ
    np.testing.assert_allclose(design.bloch_loss(up_down, jnp.zeros((2, 3))), 2.0, atol=1e-12)
    traj = jnp.stack([up_down, rho])
    np.testing.assert_allclose(design.trajectory_loss(traj, jnp.zeros((2, 2, 3))), 2.0 / 12, atol=1e-12)


# (a) System identification: J and D (3 components) from a noisy Bloch trajectory.
B_ID, KAPPA_ID = (0.3, 0.0, 0.5), 0.2
TS_ID = jnp.linspace(0.0, 6.0, 31)
PSI_ID = q.product_state([q.coherent_state(0.5, jnp.array([1.0, 0.0, 0.3])),
                          q.coherent_state(0.5, jnp.array([0.0, 1.0, -0.5]))])


def _trajectory(x):
    model = q.dimer_model(B=B_ID, J=x[0], D=x[1:])
    return q.solve(model, PSI_ID, TS_ID, KAPPA_ID, **TOL).states


def test_system_identification_recovers_J_and_D():
    truth = jnp.array([0.8, 0.3, -0.2, 0.5])  # (J, D_x, D_y, D_z)
    measured = q.bloch_vectors(_trajectory(truth)) + 1e-3 * jax.random.normal(jax.random.PRNGKey(0), (31, 2, 3))
    loss = lambda x: design.trajectory_loss(_trajectory(x), measured)  # noqa: E731
    res = design.fit(loss, jnp.array([0.5, 0.0, 0.0, 0.0]), optax.lbfgs(), steps=25, progress=False)
    assert np.max(np.abs(np.asarray(res.params) - np.asarray(truth))) < 1e-3
    assert float(res.loss) < 1.2e-6  # at the noise floor σ² = 1e-6
    assert res.loss_history[0] > 1e3 * res.loss_history[-1]


# (c) A prescribed correlation matrix at a fixed time, reached by designing D (J = 1, B = x̂ fixed).
def test_reach_prescribed_correlation_matrix():
    ts = jnp.array([0.0, 3.0])
    rho0 = q.density_matrix(q.up_down_state())

    def build(d):
        return q.dimer_model(B=(1.0, 0.0, 0.0), J=1.0, D=d)

    target = q.correlation_matrix(q.solve(build(jnp.array([0.2, -0.3, 0.4])), rho0, ts, 0.3, **TOL).states[-1])
    loss = design.solve_loss(build, rho0, ts, lambda r: design.correlation_loss(r.states[-1], target), kappa=0.3, **TOL)
    start = jnp.array([0.1, 0.1, 0.1])
    # 4 vmapped starts (the first is `start`, the others Gaussian around it); the best one wins
    res = design.fit(loss, start, optax.lbfgs(), steps=30, n_starts=4, key=jax.random.PRNGKey(5), progress=False)
    assert float(loss(start)) > 0.1
    assert float(res.loss) < 1e-12  # ‖T − T*‖_F < 1e-6


# (b) Bell non-locality of the Werner Ψ+ state at t = 20, maximised over D (small version).
def test_bell_design_improves_and_is_stationary():
    rho0 = q.werner_state("psi+", 0.9)

    def bell(d):
        model = q.dimer_model(B=(1.0, 0.0, 0.0), J=1.0, D=d)
        return q.bell_nonlocality(q.solve(model, rho0, jnp.array([0.0, 20.0]), 0.1, rtol=1e-8, atol=1e-10,
                                          invariant_tol=None).states[-1])

    start = jnp.array([0.0, 0.2, 0.2])
    res = design.fit(lambda d: -bell(d), start, optax.adam(0.03), steps=60, bounds=(-1.0, 1.0), progress=False)
    best = -float(res.loss)
    assert best > float(bell(start)) + 1e-3
    assert np.all(np.abs(np.asarray(res.params)) <= 1.0)
    # not improvable along the coordinate axes by a small step (a local maximum inside the box or on its face)
    for k in range(3):
        for h in (-0.02, 0.02):
            trial = jnp.clip(res.params.at[k].add(h), -1.0, 1.0)
            assert float(bell(trial)) <= best + 2e-4
