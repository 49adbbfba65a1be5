"""Inverse design (qllg_jax.design): the fit machinery on closed-form losses, and the three demonstrations
of issue 6 on the dimer (short windows; the full Bell-design run is in notebooks/inverse_design.ipynb)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qllg_jax as q
from driven_reference import reference_solve
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


# Pulse design: drive parameters fitted through solve_loss (reverse mode), checked against central differences of
# the independent SciPy integrator (tests/driven_reference.py) at the fitted parameters.
PULSE_H0 = q.dimer_model(B=(1.0, 0.0, 0.0), J=1.0)
PULSE_KAPPA, PULSE_T = 0.5, 1.5
PULSE_TS = jnp.array([0.0, PULSE_T])
_SZ, _SX, _I2 = np.diag([0.5, -0.5]), np.array([[0.0, 0.5], [0.5, 0.0]]), np.eye(2)
_PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])


def _correlations_numpy(rho) -> np.ndarray:
    """T_kl = Tr ϱ σ_k⊗σ_l (3, 3) in NumPy (independent of qllg_jax.observables)."""
    return np.array([[np.real(np.trace(rho @ np.kron(a, b))) for b in _PAULI] for a in _PAULI])


def _bell_numpy(rho) -> float:
    """B(ϱ) = √(u1 + u2 − 1), u the eigenvalues of TᵀT."""
    t = _correlations_numpy(rho)
    u = np.linalg.eigvalsh(t.T @ t)
    return float(np.sqrt(max(u[-1] + u[-2] - 1.0, 0.0)))


def _reference_gradient(H_of_params, rho0, params, objective=lambda rho: -_bell_numpy(rho), h=1e-4, indices=None):
    """Central differences of objective(ϱ(T)) (default −B) from the SciPy integrator, one parameter at a time (those
    of ``indices``, default all; the others NaN). Truncation O(h²) ~ 1e-8, the reference's error (rtol 1e-11) over
    2h: ~1e-7."""
    flat = np.asarray(params, dtype=float)
    out = np.full_like(flat, np.nan)
    for i in (range(flat.size) if indices is None else indices):
        e = np.zeros_like(flat)
        e.flat[i] = h
        losses = [objective(reference_solve(H_of_params(flat + s * e), rho0, [0.0, PULSE_T], PULSE_KAPPA)[-1])
                  for s in (1.0, -1.0)]
        out.flat[i] = (losses[0] - losses[1]) / (2 * h)
    return out


def _pwc_numpy(times, field_op):
    h0 = np.asarray(PULSE_H0.matrix())

    def H_of_values(v):
        def H(t):  # as q.pwc: zero outside [times[0], times[-1]], the last segment closed
            k = min(np.searchsorted(times, t, side="right") - 1, len(v) - 1)
            return h0 + (v[k] * field_op if times[0] <= t <= times[-1] else 0.0)
        return H
    return H_of_values


def test_pwc_field_fit_lowers_the_loss_with_reference_gradients():
    """Bounded pwc field b_z(t) on site 1 (4 segments, |b| ≤ 0.6), maximise B(ϱ(T)) from |↑↓⟩ (moving) and from
    the thermal state of H0 at β = 1 (at rest until the field acts: the derivative must be error-controlled).
    Both designs in one fit (one compilation): row s of the (2, 4) parameters drives state s, the loss is the sum,
    and Adam acts elementwise, so the rows are optimised independently."""
    times = np.linspace(0.0, PULSE_T, 5)
    control = design.pwc_field(PULSE_H0, times, (0.0, 0.0, 1.0), sites=[0], max_field=0.6)
    states = jnp.stack([q.density_matrix(q.up_down_state()), q.thermal_state(PULSE_H0.matrix(), 1.0)])

    def final_state(values, rho0):
        return q.solve(control(values), rho0, PULSE_TS, PULSE_KAPPA, method="dense", invariant_tol=None).states[-1]

    def loss(values):  # values (2, 4)
        return design.bell_loss(jax.vmap(final_state)(values, states))

    res = design.fit(loss, jnp.stack([control.init(0.1)] * 2), optax.adam(0.15), steps=6, bounds=control.bounds,
                     progress=False)
    assert float(res.loss) < float(res.loss_history[0]) - 1e-3  # the optimised loss is lower than at the start
    assert np.all(np.abs(np.asarray(res.params)) <= 0.6 + 1e-15)  # projected onto the box
    field_op = -np.kron(_SZ, _I2)  # −b S_z on site 1 per unit value
    checked = [0, 3]  # the first segment (the state at rest longest) and the last (its right edge is T)
    for row in range(2):
        fd = _reference_gradient(_pwc_numpy(times, field_op), np.asarray(states[row]), res.params[row], indices=checked)
        # the capped reverse-mode derivative is rtol-accurate (1e-8); the differences carry ~1e-7: 1e-5 leaves ≥ 10×
        np.testing.assert_allclose(np.asarray(res.grad[row])[checked], fd[checked], atol=1e-5)
        assert np.max(np.abs(fd[checked])) > 1e-3  # ≥ 100× the tolerance: a derivative that could be wrong


def test_pulse_field_fit_of_amplitude_width_phase_from_a_werner_state():
    """A Gaussian-windowed carrier along x on site 1 (amplitude ∈ [−1, 1], width ∈ [0.1, 1], phase free) steering
    the Werner Ψ+ state (p = 0.9) towards singlet correlations T* = −𝟙 at T: loss ‖T(ϱ(T)) + 𝟙‖² (smooth)."""
    rho0 = q.werner_state("psi+", 0.9)

    def pulse(p):
        return q.pulses.gaussian(p["amplitude"], 0.75, p["width"]) * q.pulses.cosine(1.0, 3.0, p["phase"])

    control = design.pulse_field(PULSE_H0, pulse, (1.0, 0.0, 0.0), sites=[0],
                                 bounds={"amplitude": (-1.0, 1.0), "width": (0.1, 1.0)})
    target = -np.eye(3)
    loss = design.solve_loss(control, rho0, PULSE_TS, lambda r: design.correlation_loss(r.states[-1], target),
                             kappa=PULSE_KAPPA)
    start = {"amplitude": jnp.array(0.3), "width": jnp.array(0.3), "phase": jnp.array(0.5)}
    res = design.fit(loss, start, optax.adam(0.1), steps=6, bounds=control.bounds, progress=False)
    assert float(res.loss) < float(res.loss_history[0]) - 1e-3
    assert -1.0 <= float(res.params["amplitude"]) <= 1.0 and 0.1 <= float(res.params["width"]) <= 1.0
    h0, x1 = np.asarray(PULSE_H0.matrix()), -np.kron(_SX, _I2)
    names = ("amplitude", "width", "phase")

    def H_of_params(x):
        a, w, phi = x
        return lambda t: h0 + a * np.exp(-((t - 0.75) ** 2) / (2 * w**2)) * np.cos(3.0 * t + phi) * x1

    fd = _reference_gradient(H_of_params, np.asarray(rho0), np.array([float(res.params[n]) for n in names]),
                             lambda rho: float(np.sum((_correlations_numpy(rho) - target) ** 2)))
    np.testing.assert_allclose([float(res.grad[n]) for n in names], fd, atol=1e-5)  # as in the pwc test
    assert np.max(np.abs(fd)) > 1e-3


def test_field_control_bounds_and_bad_input():
    control = design.pwc_field(PULSE_H0, [0.0, 1.0, 2.0], [(0.0, 0.0, 1.0), (1.0, 0.0, 0.0)], max_field=0.5)
    assert control.init(2.0).shape == (2, 2) and float(control.init(2.0)[0, 0]) == 0.5  # clipped into the box
    H = control(jnp.array([[0.1, 0.2], [0.3, 0.4]]))
    sz1 = np.kron(_SZ, _I2) + np.kron(_I2, _SZ)  # all sites driven
    sx1 = np.kron(_SX, _I2) + np.kron(_I2, _SX)
    np.testing.assert_allclose(np.asarray(H(1.5)), np.asarray(PULSE_H0.matrix()) - 0.2 * sz1 - 0.4 * sx1, atol=1e-14)
    with pytest.raises(ValueError, match="shape"):
        control(jnp.zeros(3))
    with pytest.raises(ValueError, match="max_field"):
        design.pwc_field(PULSE_H0, [0.0, 1.0], max_field=-1.0)
    with pytest.raises(ValueError, match="times"):
        design.pwc_field(PULSE_H0, [0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="spins"):
        design.pwc_field(np.asarray(PULSE_H0.matrix()), [0.0, 1.0])
    with pytest.raises(ValueError, match="do not exist"):
        design.fit(lambda p: p["a"] ** 2, {"a": jnp.array(1.0)}, bounds=({"b": 0.0}, None), steps=1, progress=False)
    # units: values in tesla, times in ps (b = g μ_B B / E0 = 2 at 1 T with the paper's E0 = μ_B · 1 T)
    units = q.Units.from_field(1.0)
    tesla = design.pwc_field(PULSE_H0, [0.0, 11.37], sites=[1], units=units)
    np.testing.assert_allclose(float(tesla.times[-1]), 1.0, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(tesla(jnp.array([1.0]))(0.5)),
                               np.asarray(PULSE_H0.matrix()) - 2.0 * np.kron(_I2, _SZ), atol=1e-12)
