"""Driven Hamiltonians as values (qllg_jax.drives, qllg_jax.pulses) and the pwc closed forms.

Every dynamical check compares against tests/driven_reference.py (SciPy DOP853 at rtol 1e-11 on the dense
equation), an analytic formula, or segment-wise eq. 28 built from the static closed form by hand.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import constants as si

import qllg_jax as q
from driven_reference import reference_llg, reference_solve

SX, SY, SZ = (np.asarray(m) for m in q.spin_matrices(0.5))
I2 = np.eye(2)
H0 = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.0, 0.2), J=0.5, D=(0.0, 0.0, 0.3)))
X1 = np.kron(SX, I2)  # a field along x on site 0
Z2 = np.kron(I2, SZ)


# ---------------------------------------------------------------------------------------------- the values


def test_sums_in_either_order_evaluate_to_the_formula():
    f = lambda t: 0.3 * jnp.sin(2.0 * t)  # noqa: E731
    t = 0.7
    expected = H0 + 0.3 * np.sin(1.4) * X1 + (-0.5) * Z2
    drive = q.modulated(f, X1)
    step = q.pwc([0.0, 0.5, 1.0], [1.0, -0.5], Z2)
    for H in (H0 + drive + step, drive + H0 + step, step + (drive + jnp.asarray(H0)), jnp.asarray(H0) + step + drive):
        assert isinstance(H, q.TimeDependent)  # a NumPy array on the left did not broadcast into an object array
        np.testing.assert_allclose(np.asarray(H(t)), expected, atol=1e-14)
    np.testing.assert_allclose(np.asarray((H0 - drive)(t)), H0 - 0.3 * np.sin(1.4) * X1, atol=1e-14)
    np.testing.assert_allclose(np.asarray((2.0 * step)(0.2)), 2 * Z2, atol=1e-14)
    assert np.all(np.asarray(step(1.0 + 1e-9)) == 0) and np.all(np.asarray(step(-0.1)) == 0)  # zero outside [t0, tK]
    np.testing.assert_array_equal(np.asarray(step(1.0)), -0.5 * Z2)  # the last segment includes its right edge
    H = H0 + drive + step
    np.testing.assert_array_equal(H.static, H0)
    assert H.drive is not None and not H.is_piecewise_constant
    np.testing.assert_array_equal(H.discontinuity_ts, [0.0, 0.5, 1.0])


def test_spin_model_drive_is_matrix_free_and_matches_the_dense_field():
    model = q.dimer_model(B=(1.0, 0.0, 0.0), J=0.5)
    pulse = q.pulses.gaussian(0.8, centre=1.0, width=0.25)
    H = model + q.pulses.field_drive(model, pulse, (0.0, 0.0, 1.0), sites=[1])
    t = 1.1
    expected = np.asarray(model.matrix()) - 0.8 * np.exp(-(0.1**2) / (2 * 0.25**2)) * Z2  # H_Z = −b·S on site 1
    np.testing.assert_allclose(np.asarray(H(t)), expected, atol=1e-13)
    assert H.spins == (0.5, 0.5) and H.static is model
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 2)) + 0j)
    matrix_free = H.operator(dense=False)
    assert matrix_free.parts[0].dense is None  # local terms, no (D, D) matrix
    np.testing.assert_allclose(np.asarray(matrix_free.apply(t, x)), expected @ np.asarray(x), atol=1e-13)
    np.testing.assert_allclose(np.asarray(matrix_free.at(t).matrix()), expected, atol=1e-13)
    np.testing.assert_allclose(np.asarray(H.operator(dense=True).matrix(t)), expected, atol=1e-13)
    # spectral width bound covers the drive: W(H(t)) <= bound for all t
    bound = float(H.operator(dense=True).spectral_width(0.0, 2.0))
    widths = [np.ptp(np.linalg.eigvalsh(np.asarray(H(s)))) for s in np.linspace(0, 2, 21)]
    assert max(widths) <= bound + 1e-12


def test_timecallable_and_its_checks():
    H = q.timecallable(lambda t: jnp.cos(t) * jnp.asarray(X1) + jnp.asarray(H0))
    np.testing.assert_allclose(np.asarray(H(0.4)), H0 + np.cos(0.4) * X1, atol=1e-14)
    H.check(np.linspace(0.0, 1.0, 5))  # Hermitian and finite: no error
    with pytest.raises(ValueError, match="not Hermitian"):
        q.timecallable(lambda t: t * jnp.asarray(np.triu(np.ones((4, 4))))).check(np.linspace(0.0, 1.0, 3))
    with pytest.raises(ValueError, match="square"):
        q.timecallable(lambda t: t * jnp.ones((4, 3)))


def test_traced_parameters_flow_through_grad_jit_vmap():
    def entry(a):
        H = H0 + q.modulated(lambda t: a * jnp.sin(t), X1)
        return jnp.real(H(1.0)[0, 2])  # H0[0, 2] + a·sin(1)·(X1)[0, 2]; X1[0, 2] = 1/2

    expected = lambda a: H0[0, 2].real + a * np.sin(1.0) / 2  # noqa: E731
    np.testing.assert_allclose(float(jax.grad(entry)(0.3)), np.sin(1.0) / 2, rtol=1e-14)
    np.testing.assert_allclose(float(jax.jit(entry)(0.3)), expected(0.3), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(entry))(jnp.arange(3.0))), expected(np.arange(3.0)), rtol=1e-14)

    def pwc_entry(values):
        return jnp.real((H0 + q.pwc([0.0, 1.0, 2.0, 3.0], values, X1))(1.5)[0, 2])

    np.testing.assert_allclose(np.asarray(jax.grad(pwc_entry)(jnp.array([1.0, 2.0, 3.0]))), [0, 0.5, 0], atol=1e-15)


def test_batch_axes_of_values_and_pulse_parameters():
    values = np.arange(6.0).reshape(3, 2)
    H = H0 + q.pwc([0.0, 1.0, 2.0], values, X1) + q.pulses.gaussian(np.array([1.0, 2.0, 3.0]), 1.0, 0.5) * Z2
    assert H.batch_shape == (3,)
    out = np.asarray(H(1.5))
    for b in range(3):
        expected = H0 + values[b, 1] * X1 + (b + 1) * np.exp(-0.5) * Z2
        np.testing.assert_allclose(out[b], expected, atol=1e-13)
    broadcast = H.broadcast_batch()
    mapped = jax.vmap(lambda h: h(1.5), in_axes=(broadcast.in_axes(),))(broadcast)
    np.testing.assert_allclose(np.asarray(mapped), out, atol=1e-13)


def test_a_new_pulse_amplitude_does_not_recompile(compiles):
    @eqx.filter_jit
    def evaluate(H, t):
        return H(t)

    pulse = lambda a: q.pulses.gaussian(a, 1.0, 0.5) * X1 + H0  # noqa: E731
    evaluate(pulse(1.0), 0.3)
    compiles.clear()
    evaluate(pulse(2.0), 0.3)
    values = lambda v: H0 + q.pwc([0.0, 1.0, 2.0], v, X1)  # noqa: E731
    evaluate(values(np.array([1.0, 2.0])), 0.3)
    compiles.clear()
    evaluate(values(np.array([3.0, 4.0])), 0.3)
    assert len(compiles) == 0


def test_bad_inputs_raise_before_compute():
    bad_h1 = X1 + 1j * np.triu(np.ones((4, 4)), 1)
    cases = [
        (lambda: q.modulated(lambda t: 1j * t, X1), "f must return real values"),
        (lambda: q.modulated(lambda t: jnp.ones(2) * t, X1), "scalar"),
        (lambda: q.modulated(lambda t: 1.0 if t > 1 else 0.0, X1), "JAX-traceable"),
        (lambda: q.modulated(2.0, X1), "function of t"),
        (lambda: q.modulated(lambda t: t, bad_h1), "H1 is not Hermitian"),
        (lambda: q.pwc([0.0, 2.0, 1.0], [1.0, 2.0], X1), "strictly increasing"),
        (lambda: q.pwc([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], X1), "values must have shape"),
        (lambda: q.pwc([0.0, 1.0], [1.0j], X1), "values must be real"),
        (lambda: q.dimer_model() + q.pulses.field_drive((1.0, 0.5), q.pulses.gaussian(1, 1, 1), (0, 0, 1)),
         "sites of H0"),
        (lambda: q.modulated(lambda t: t, X1) + (lambda t: t), "plain function"),
        (lambda: q.drives.as_time_dependent(lambda t: t * X1), "wrap"),
        (lambda: (H0 + q.modulated(lambda t: 1 / t, X1)).check(np.linspace(0.0, 1.0, 3)), "not finite"),
        (lambda: q.solve(H0 + q.modulated(lambda t: jnp.sqrt(t - 0.5), X1), np.eye(4)[0], [0.0, 1.0]), "not finite"),
        (lambda: q.pwc([0.0, 1.0, 2.0], [1.0, np.nan], X1), "NaN or inf"),
        (lambda: q.pwc([[0.0, 1.0]], [1.0], X1), "1-D array"),
        (lambda: q.pulses.gaussian(1.0, 0.0, -1.0), "width must be > 0"),
        (lambda: q.pulses.rectangular(1.0, 2.0, 1.0), "stop must be > start"),
    ]
    for build, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            build()


# ---------------------------------------------------------------------------------------------- pulses


def test_pulse_shapes_and_units():
    t = np.linspace(-1.0, 3.0, 9)
    g = q.pulses.gaussian(2.0, 1.0, 0.5)
    np.testing.assert_allclose(np.asarray(g.sample(t)), 2.0 * np.exp(-((t - 1.0) ** 2) / 0.5), rtol=1e-12)  # exp of -20: ~20 ulp
    r = q.pulses.rectangular(1.5, 0.0, 2.0)
    np.testing.assert_array_equal(np.asarray(r.sample(t)), np.where((t >= 0) & (t < 2), 1.5, 0.0))
    np.testing.assert_array_equal(r.discontinuity_ts(), [0.0, 2.0])
    smooth = q.pulses.rectangular(1.0, 0.0, 2.0, rise=0.1)
    # a difference of two tanh ≈ ±1: round-off is absolute (~1e-16), not relative
    np.testing.assert_allclose(np.asarray(smooth.sample(t)), 0.5 * (np.tanh(t / 0.1) - np.tanh((t - 2) / 0.1)), atol=1e-15)
    packet = q.pulses.gaussian(1.0, 1.0, 0.5) * q.pulses.cosine(1.0, 3.0, 0.2) + 0.5 * q.pulses.sine(1.0, 2.0)
    np.testing.assert_allclose(np.asarray(packet.sample(t)),
                               np.exp(-((t - 1) ** 2) / 0.5) * np.cos(3 * t + 0.2) + 0.5 * np.sin(2 * t), rtol=1e-13)
    c = q.pulses.chirp(1.0, 2.0, 0.5, 0.1)
    np.testing.assert_allclose(np.asarray(c.sample(t)), np.cos(2 * t + 0.25 * t**2 + 0.1), rtol=1e-13)
    assert float(packet.bound()) == 1.5 and g.time_scale() == 0.5 and packet.time_scale() == 0.5
    # steps must land on a σ-spaced grid over t_c ± 6σ
    np.testing.assert_allclose(g.step_ts(), 1.0 + 0.5 * np.arange(-6, 7), rtol=1e-15)
    # physical units: ħ/(μ_B·1 T) from SciPy's constants directly
    u = q.Units.from_field(1.0)
    time_ps = si.hbar / (si.physical_constants["Bohr magneton"][0] * 1.0) * 1e12
    gp = q.pulses.gaussian(1.0, centre=2 * time_ps, width=time_ps, units=u)
    np.testing.assert_allclose([float(gp.centre), float(gp.width)], [2.0, 1.0], rtol=1e-9)
    cp = q.pulses.cosine(1.0, 10.0, units=u)  # 10 GHz → ω = 2π·10⁹ s⁻¹ × time unit
    np.testing.assert_allclose(float(cp.frequency), 2 * np.pi * 10e9 * time_ps * 1e-12, rtol=1e-9)
    np.testing.assert_allclose(u.frequency_to_GHz(u.frequency(7.0)), 7.0, rtol=1e-14)


def test_rotating_field_in_tesla_is_the_circular_zeeman_term():
    u = q.Units.from_field(1.0)
    drive = q.pulses.rotating_field((0.5,), 0.01, 5.0, phase=0.3, units=u)  # 10 mT at 5 GHz, g = 2
    t = 1.7
    b = 2 * 0.01  # g μ_B B / (μ_B·1 T)
    w = 2 * np.pi * 5e9 * u.time_ps * 1e-12
    expected = -b * (np.cos(w * t + 0.3) * SX + np.sin(w * t + 0.3) * SY)
    np.testing.assert_allclose(np.asarray(drive(t)), expected, atol=1e-15)


# ---------------------------------------------------------------------------------------------- dynamics


@pytest.fixture(scope="module")
def pwc_problem():
    times, values = [0.3, 1.0, 1.7, 2.5], [0.8, -0.5, 1.2]
    ts = np.linspace(0.0, 3.0, 7)

    def numpy_H(t):
        k = np.searchsorted(times, t, side="right") - 1
        return H0 + (values[k] * X1 if 0 <= k < 3 else 0.0)

    return times, values, ts, numpy_H


def _segmentwise_eq28(psi0, ts, kappa, times, values):
    """Eq. 28 chained by hand: the static closed form on each constant piece."""
    pieces = [(0.0, times[0], 0.0)] + [(times[k], times[k + 1], values[k]) for k in range(3)] + [(times[-1], 9.0, 0.0)]
    out = []
    for t in ts:
        psi = psi0
        for a, b, v in pieces:
            if t <= a:
                break
            psi = np.asarray(q.pure_state_exact(H0 + v * X1, psi, [0.0, min(t, b) - a], kappa)[-1])
        out.append(psi)
    return np.array(out)


def test_pwc_pure_and_werner_closed_forms(pwc_problem):
    times, values, ts, numpy_H = pwc_problem
    H = H0 + q.pwc(times, values, X1)
    kappa = 0.5
    psi0 = np.array([0.0, 1.0, 0.0, 0.0], complex)
    psi = np.asarray(q.pure_state_exact(H, psi0, ts, kappa))
    manual = _segmentwise_eq28(psi0, ts, kappa, times, values)
    # eq. 28 per segment, both sides exact: agreement to round-off up to the global phase (ϱ = ψψ† compared)
    np.testing.assert_allclose(np.einsum("ti,tj->tij", psi, psi.conj()), np.einsum("ti,tj->tij", manual, manual.conj()),
                               atol=1e-12)
    reference = reference_solve(numpy_H, psi0, ts, kappa)
    # DOP853 at rtol 1e-11 over ~150 steps: global error ≲ 1e-10 on O(1) entries
    np.testing.assert_allclose(np.einsum("ti,tj->tij", psi, psi.conj()), reference, atol=1e-9)
    rho0 = np.asarray(q.werner_state("psi+", 0.6))
    rho = np.asarray(q.two_level_exact(H, rho0, ts, kappa))
    np.testing.assert_allclose(rho, reference_solve(numpy_H, rho0, ts, kappa), atol=1e-9)
    P = np.asarray(q.projector_exact(H, np.eye(4)[:, :2], ts, kappa))  # a rank-2 projector = 0·𝟙 + 1·P
    np.testing.assert_allclose(P, reference_solve(numpy_H, np.diag([1.0, 1.0, 0, 0]), ts, kappa), atol=1e-9)


def test_pwc_closed_form_gradient_matches_reference_differences(pwc_problem):
    times, values, ts, _ = pwc_problem
    kappa, psi0 = 0.5, np.array([0.0, 1.0, 0.0, 0.0], complex)
    observable = np.kron(SZ, I2)

    def loss(v):  # solve's closed form (auto → exact: eq. 28 interval by interval), differentiated in the values
        result = q.solve(H0 + q.pwc(times, v, X1), psi0, ts, kappa, observables={"z": observable})
        assert result.method == "exact"
        return result.observables["z"][-1]

    def reference_loss(v):
        def numpy_H(t):
            k = np.searchsorted(times, t, side="right") - 1
            return H0 + (v[k] * X1 if 0 <= k < 3 else 0.0)

        rho = reference_solve(numpy_H, psi0, ts[[0, -1]], kappa)[-1]
        return float(np.real(np.trace(rho @ observable)))

    grad = np.asarray(jax.grad(loss)(jnp.asarray(values)))
    h = 1e-4  # central differences: truncation O(h²) ~ 1e-8, reference noise 1e-10/h ~ 1e-6
    fd = [(reference_loss(np.add(values, h * e)) - reference_loss(np.subtract(values, h * e))) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(grad, fd, atol=1e-5)


def test_solve_runs_pwc_drives_in_closed_form_under_every_transformation(pwc_problem):
    """solve(H0 + pwc) from a ket (auto → exact) and a Werner state (auto → two_level): eq. 28 interval by
    interval, no steps; the same method and numbers eager, under jit, vmap, jit(vmap) and grad."""
    times, values, ts, numpy_H = pwc_problem
    kappa, psi0 = 0.5, np.array([0.0, 1.0, 0.0, 0.0], complex)
    rho0 = np.asarray(q.werner_state("psi+", 0.6))
    manual = _segmentwise_eq28(psi0, ts, kappa, times, values)
    manual = np.einsum("ti,tj->tij", manual, manual.conj())
    references = {"exact": manual, "two_level": reference_solve(numpy_H, rho0, ts, kappa)}
    chosen = []

    def states(v, state):
        result = q.solve(H0 + q.pwc(times, v, X1), state, ts, kappa)
        chosen.append(result.method)
        return result.states, result.stats["num_steps"]

    v = jnp.asarray(values)
    for method, state in (("exact", psi0), ("two_level", rho0)):
        run = lambda v: states(v, state)  # noqa: E731
        chosen.clear()
        eager, steps = run(v)
        mapped, _ = jax.jit(jax.vmap(run))(v[None])
        for transform in (jax.jit, jax.vmap, jax.grad):  # traced only (the method is chosen at trace time)
            argument = v[None] if transform is jax.vmap else v
            fn = (lambda v: jnp.real(run(v)[0][-1, 1, 1])) if transform is jax.grad else run  # noqa: E731
            jax.eval_shape(transform(fn), argument)
        assert chosen == [method] * 5, chosen
        assert int(steps) == 0  # closed form: no time stepping
        for out in (eager, mapped[0]):
            # eq. 28 on both sides (exact to round-off; ≤ 1e-9 asked): the manual chain or the reference (DOP853 at
            # rtol 1e-11 over ~150 steps: global error ≲ 1e-10)
            np.testing.assert_allclose(np.asarray(out), references[method], atol=1e-9)
    # modulated and timecallable drives keep the integrating methods
    smooth = H0 + q.modulated(lambda t: 0.3 * jnp.sin(t), X1) + q.pwc(times, values, X1)
    assert q.estimate_memory(smooth, psi0, ts)[0] == "ket" and q.estimate_memory(smooth, rho0, ts)[0] == "frame"
    with pytest.raises(ValueError, match="integrating method"):
        q.solve(smooth, psi0, ts, kappa, method="exact")


def test_rabi_oscillation_at_kappa_zero():
    """Spin-1/2 in H = −b0 S_z plus a field b1 rotating about z: in the frame rotating with the field,
    H_rot = −(Δ S_z + b1 S_x) with Δ = b0 + ω, so P_↓(t) = (b1/Ω)² sin²(Ωt/2), Ω = √(Δ² + b1²)."""
    b0, b1 = 1.0, 0.2
    ts = np.linspace(0.0, 12.0, 7)
    for w in (-b0, -b0 + 0.15):  # resonant (full flip) and detuned; the frequency is a leaf: one compilation
        H = -b0 * SZ + q.pulses.rotating_field((0.5,), b1, w)
        result = q.solve(H, np.array([1.0, 0.0]), ts, 0.0, observables={"down": np.diag([0.0, 1.0])}, **SOLVE_TOL)
        delta = b0 + w
        omega = np.hypot(delta, b1)
        # solver at rtol 1e-10 over ≲ 200 steps: ≲ 2e-8 on a probability (DRIVEN_ATOL)
        np.testing.assert_allclose(np.asarray(result.observables["down"]),
                                   (b1 / omega) ** 2 * np.sin(omega * ts / 2) ** 2, atol=DRIVEN_ATOL)


@pytest.mark.parametrize("s", [0.5, 1.0])
def test_coherent_state_under_rotating_field_follows_llg(s):
    """Eq. 6 for a pure spin-coherent state: ⟨S⟩/s obeys LLG with α = κ at every instant (H linear in S). The same
    driven SpinModel H goes to solve (q-LLG, matrix-free ket) and to classical_llg; both against SciPy's LLG."""
    kappa, b0, b1, w = 0.5, 1.0, 0.4, -0.8
    model = q.spin_model((s,), field=(0.0, 0.0, b0))
    H = model + q.pulses.rotating_field(model, b1, w)
    ts = np.linspace(0.0, 4.0, 9)
    m0 = np.array([1.0, 0.0, 0.3])
    spin = np.asarray(q.spin_matrices(s))
    result = q.solve(H, np.asarray(q.coherent_state(s, m0)), ts, kappa,
                     observables={a: spin[k] / s for k, a in enumerate("xyz")}, **SOLVE_TOL)
    assert result.method == "ket"
    m_quantum = np.stack([np.asarray(result.observables[a]) for a in "xyz"], axis=-1)
    m_classical = np.asarray(q.classical_llg(H, m0[None], ts, kappa, **SOLVE_TOL))[:, 0]
    m_reference = reference_llg(lambda t: (b1 * np.cos(w * t), b1 * np.sin(w * t), b0), m0, ts, kappa)
    # both solvers at rtol 1e-10 over ≲ 200 steps: ≲ 2e-8 on unit vectors (DRIVEN_ATOL); the reference ~1e-10
    np.testing.assert_allclose(m_quantum, m_reference, atol=DRIVEN_ATOL)
    np.testing.assert_allclose(m_classical, m_reference, atol=DRIVEN_ATOL)


# ---------------------------------------------------------------------------------------------- solve(H_driven)
# The solver runs at rtol 1e-10 / atol 1e-12: its global error over these O(1) runs of ≲ 200 steps is bounded by
# ~steps × rtol ≈ 2e-8 on O(1) entries; the reference (DOP853 at 1e-11, max step 0.02) is ~1e-10. Hence atol 2e-8.
SOLVE_TOL = dict(rtol=1e-10, atol=1e-12)
DRIVEN_ATOL = 2e-8


def _drive():
    """H0 + 0.7 sin(2t)·X1 + pwc 0.5·Z2 on [0.3, 1.1): a smooth drive plus two jumps; and its numpy H(t)."""
    H = H0 + q.modulated(lambda t: 0.7 * jnp.sin(2.0 * t), X1) + q.pwc([0.3, 1.1], [0.5], Z2)
    return H, lambda t: H0 + 0.7 * np.sin(2 * t) * X1 + (0.5 * Z2 if 0.3 <= t < 1.1 else 0.0)


@pytest.mark.parametrize("method, equation, state", [
    ("dense", "qllg", "mixed"), ("frame", "qllg", "mixed"), ("ket", "qllg", "pure"),
    ("frame", "qll", "mixed"), ("dense", "von_neumann", "mixed"),
])
def test_driven_solve_matches_the_reference(method, equation, state):
    H, numpy_H = _drive()
    rho0 = np.asarray(q.random_density_matrix(1, 4)) if state == "mixed" else np.array([0.0, 1.0, 0.0, 0.0], complex)
    ts = np.linspace(0.0, 2.0, 5)
    result = q.solve(H, rho0, ts, 0.5, method=method, equation=equation, **SOLVE_TOL)
    assert result.method == method
    reference = reference_solve(numpy_H, rho0, ts, 0.5, equation)
    np.testing.assert_allclose(np.asarray(result.states), reference, atol=DRIVEN_ATOL)
    # the energy is not monotone under a drive: not measured (NaN), so never warned about
    assert np.isnan(result.checks.as_dict()["energy_increase"])
    assert result.checks.trace_error < 1e-9  # trace conserved to the method's round-off/tolerance


def test_timecallable_solve_matches_the_reference():
    """H(t) = fn(t) (a rotating coupling no modulated/pwc term writes) via solve (dense) vs the SciPy reference."""
    def numpy_H(t):
        return H0 + 0.6 * (np.cos(1.5 * t) * X1 + np.sin(1.5 * t) * np.kron(SY, I2))

    fn = lambda t: jnp.asarray(H0) + 0.6 * (jnp.cos(1.5 * t) * X1 + jnp.sin(1.5 * t) * np.kron(SY, I2))  # noqa: E731
    rho0 = np.asarray(q.random_density_matrix(1, 4))
    ts = np.linspace(0.0, 2.0, 5)
    result = q.solve(q.timecallable(fn), rho0, ts, 0.5, **SOLVE_TOL)
    assert result.method == "frame"  # as for a constant H: a mixed state known on the host
    np.testing.assert_allclose(np.asarray(result.states), reference_solve(numpy_H, rho0, ts, 0.5), atol=DRIVEN_ATOL)


def test_auto_picks_an_integrating_method_for_a_driven_pure_or_werner_state():
    H, _ = _drive()
    ts = np.linspace(0.0, 0.5, 2)
    assert q.estimate_memory(H, np.array([0.0, 1.0, 0.0, 0.0]), ts)[0] == "ket"  # static part: "exact"
    assert q.estimate_memory(H, np.asarray(q.werner_state("psi+", 0.6)), ts)[0] == "frame"  # static: "two_level"
    assert q.estimate_memory(H0, np.asarray(q.werner_state("psi+", 0.6)), ts)[0] == "two_level"


def test_a_short_pulse_on_states_at_rest_is_not_stepped_over():
    """An eigenstate and the thermal state of H0 do not move until a Gaussian pulse (σ = 0.05 ≪ t_end = 6) arrives
    at t = 4: an adaptive controller on a still state takes huge steps and steps over it unless the pulse's σ-grid
    (step_ts) clips them. Control: the same pulse as a plain function of t (no grid declared) IS stepped over."""
    energies, vectors = np.linalg.eigh(H0)
    psi0, thermal = vectors[:, 0], np.asarray(q.thermal_state(H0, 2.0))
    ts = np.array([0.0, 6.0])
    tol = dict(rtol=1e-6, atol=1e-8)  # loose: the still state's steps grow ×10 each (tight tolerances hide the miss)
    # global error ≲ steps × rtol ≈ 50 × 1e-6 on O(1) entries (measured ~3e-8)
    atol = 5e-5

    def numpy_H(t):
        return H0 + 3.0 * np.exp(-((t - 4.0) ** 2) / (2 * 0.05**2)) * X1

    pulse = H0 + q.pulses.gaussian(3.0, centre=4.0, width=0.05) * X1
    for state, method in ((psi0, "ket"), (thermal, "frame")):
        reference = reference_solve(numpy_H, state, ts, 0.5, max_step=0.005)
        moved = np.abs(reference[-1] - reference[0]).max()
        assert moved > 1e-2  # the pulse does excite the state: stepping over it is an error of ~moved ≫ atol
        result = q.solve(pulse, state, ts, 0.5, method=method, **tol)
        np.testing.assert_allclose(np.asarray(result.states), reference, atol=atol)
        if method == "ket":  # the control: without the grid the controller never sees the pulse
            plain = H0 + q.modulated(lambda t: 3.0 * jnp.exp(-((t - 4.0) ** 2) / (2 * 0.05**2)), X1)
            missed = q.solve(plain, state, ts, 0.5, method=method, **tol)
            assert np.abs(np.asarray(missed.states[-1]) - reference[-1]).max() > moved / 2


def test_jit_vmap_over_a_pulse_amplitude_equals_a_loop():
    rho0 = np.asarray(q.random_density_matrix(2, 4))
    ts = np.linspace(0.0, 1.0, 3)

    def final(a):
        H = H0 + q.pulses.gaussian(a, centre=0.5, width=0.2) * X1
        return q.solve(H, rho0, ts, 0.5, method="dense", **SOLVE_TOL).states[-1]

    amplitudes = np.array([0.0, 0.5, 1.0])
    batched = np.asarray(jax.jit(jax.vmap(final))(jnp.asarray(amplitudes)))
    looped = np.stack([np.asarray(final(a)) for a in amplitudes])
    # the same method at the same tolerance; a vmapped adaptive solve takes each trajectory's own steps
    np.testing.assert_allclose(batched, looped, atol=DRIVEN_ATOL)


def test_a_batch_of_drives_is_one_solve_with_shared_steps():
    """Leading axes of pwc values (B, K) and of a pulse's amplitude (B,) are batch axes of ONE solve (shared steps,
    like a batch of H): a ket runs the closed form (pwc only), a mixed state the frame method, also under
    jit(vmap); every member against the SciPy reference."""
    times, values = [0.2, 0.6, 1.0], np.array([[0.8, -0.5], [0.0, 1.0], [1.5, 0.3]])
    amplitudes = np.array([0.0, 0.5, 1.0])
    ts = np.linspace(0.0, 1.2, 3)
    psi0, rho0 = np.array([0.0, 1.0, 0.0, 0.0], complex), np.asarray(q.random_density_matrix(1, 4))

    def numpy_H(b, pulse):
        def H(t):
            k = np.searchsorted(times, t, side="right") - 1
            out = H0 + (values[b, k] * X1 if 0 <= k < 2 else 0.0)
            return out + (amplitudes[b] * np.exp(-((t - 0.5) ** 2) / (2 * 0.1**2)) * Z2 if pulse else 0.0)
        return H

    closed = q.solve(H0 + q.pwc(times, values, X1), psi0, ts, 0.5)
    assert closed.method == "exact" and closed.states.shape == (3, 3, 4, 4)

    def mixed(v, a):
        H = H0 + q.pwc(times, v, X1) + q.pulses.gaussian(a, 0.5, 0.1) * Z2
        return q.solve(H, rho0, ts, 0.5, **SOLVE_TOL)

    batched = mixed(values, amplitudes)
    assert batched.method == "frame" and len(set(np.asarray(batched.stats["num_steps"]).tolist())) == 1  # shared
    mapped = jax.jit(jax.vmap(lambda v, a: mixed(v, a).states))(values[None], amplitudes[None])[0]
    for b in range(3):
        # closed form: exact vs DOP853 (~1e-10); integrated: DRIVEN_ATOL (solver at rtol 1e-10, see SOLVE_TOL)
        np.testing.assert_allclose(np.asarray(closed.states[b]), reference_solve(numpy_H(b, False), psi0, ts, 0.5),
                                   atol=1e-9)
        reference = reference_solve(numpy_H(b, True), rho0, ts, 0.5)
        np.testing.assert_allclose(np.asarray(batched.states[b]), reference, atol=DRIVEN_ATOL)
        np.testing.assert_allclose(np.asarray(mapped[b]), reference, atol=DRIVEN_ATOL)


def test_gradients_of_pulse_and_pwc_parameters_from_a_thermal_state_match_reference_differences():
    """d⟨S_x⟩(t_end)/d(pulse amplitude, pulse width, a pwc value) for a spin-1/2 starting in the thermal state of
    H0 = −S_z (at rest until the drive acts), through solve's capped integration, against central differences of
    the SciPy reference."""
    h0, times, t_end = -SZ, [0.1, 0.35, 0.6], 0.7
    rho0 = np.asarray(q.thermal_state(h0, 2.0))
    ts = np.array([0.0, t_end])

    def drive(p, xp):
        amplitude, width, value = p[0], p[1], p[2]
        return lambda t: amplitude * xp.exp(-((t - 0.3) ** 2) / (2 * width**2)), value

    def loss(p):
        f, value = drive(p, jnp)
        H = h0 + q.pulses.gaussian(p[0], 0.3, p[1]) * SX + q.pwc(times, jnp.stack([0.4, value]), SY)
        result = q.solve(H, rho0, ts, 0.5, method="dense", observables={"x": SX}, **SOLVE_TOL)
        return result.observables["x"][-1]

    def reference_loss(p):
        f, value = drive(p, np)

        def numpy_H(t):
            k = np.searchsorted(times, t, side="right") - 1
            return h0 + f(t) * SX + ([0.4, value][k] * SY if 0 <= k < 2 else 0.0)

        return float(np.real(np.trace(reference_solve(numpy_H, rho0, ts, 0.5)[-1] @ SX)))

    p = np.array([1.5, 0.1, -0.8])
    grad = np.asarray(jax.grad(loss)(jnp.asarray(p)))
    h = 1e-4  # central differences: truncation O(h²) ~ 1e-8 (×1/σ² for the width), reference noise ~1e-10/h ~ 1e-6
    fd = np.array([(reference_loss(p + h * e) - reference_loss(p - h * e)) / (2 * h) for e in np.eye(3)])
    # the capped solve's derivative error scales with rtol (1e-10): far below the differences' noise
    np.testing.assert_allclose(grad, fd, atol=2e-5)
    assert np.all(np.abs(fd) > 1e-3)  # every derivative is non-trivial


def test_driven_solve_bad_inputs():
    H, _ = _drive()
    ts = np.linspace(0.0, 1.0, 3)
    psi0 = np.array([0.0, 1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="closed form for a constant or piecewise-constant H"):
        q.solve(H, psi0, ts, 0.5, method="exact")
    with pytest.raises(TypeError, match="plain Python function"):
        q.solve(lambda t: H0, psi0, ts, 0.5)
    with pytest.raises(ValueError, match="batch axes do not broadcast"):  # a batch of 3 drives, 2 states
        q.solve(H0 + q.pwc([0.0, 1.0], np.ones((3, 1)), X1), np.stack([psi0, psi0]), ts, 0.5)
    model = q.dimer_model(B=(1.0, 0.0, 0.0), J=0.5)
    driven_model = model + q.pulses.field_drive(model, q.pulses.gaussian(0.8, 1.0, 0.25), (0.0, 0.0, 1.0), sites=[1])
    m0 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    with pytest.raises(TypeError, match="timecallable matrix"):  # no classical energy: one clear error
        q.classical_llg(model + q.timecallable(lambda t: t * jnp.asarray(Z2)), m0, ts, 0.5)
    with pytest.raises(TypeError, match="dense matrix term"):
        q.classical_llg(model + q.modulated(jnp.sin, Z2), m0, ts, 0.5)
    with pytest.raises(TypeError, match="timecallable matrix"):  # at temperature > 0 too (tests/test_thermal_drive.py)
        q.classical_llg(driven_model + q.timecallable(lambda t: t * jnp.asarray(Z2)), m0, ts, 0.5, temperature=0.1,
                        key=jax.random.key(0))
    with pytest.raises(ValueError, match="H is not Hermitian|not Hermitian"):  # timecallable checked on the grid
        q.solve(q.timecallable(lambda t: t * jnp.asarray(np.triu(np.ones((4, 4))))), psi0, ts, 0.5)


def test_the_controller_gets_the_drive_edges_and_the_pulse_grid():
    """pwc edges are jump_ts; a pulse's σ-spaced grid over t_c ± 6σ is step_ts (steps land there); the result:
    test_a_short_pulse_on_states_at_rest_is_not_stepped_over."""
    from qllg_jax._core import drive_times

    H = H0 + q.pwc([0.3, 1.1], [0.5], Z2) + q.pulses.gaussian(1.0, centre=4.0, width=0.05) * X1
    jumps, steps = drive_times(H)
    np.testing.assert_array_equal(jumps, [0.3, 1.1])
    np.testing.assert_allclose(steps, 4.0 + 0.05 * np.arange(-6, 7), rtol=1e-15)
    assert drive_times(H0) == (None, None)
    # a grid point that misses an edge by round-off (0.5 − 3·0.1 ≠ 0.2 in floating point) is moved onto it: two
    # boundaries one ulp apart would make the clipping controller's step size collapse
    near = H0 + q.pwc([0.2, 1.0], [0.5], Z2) + q.pulses.gaussian(1.0, centre=0.5, width=0.1) * X1
    grid = 0.5 + 0.1 * np.arange(-6, 7)
    # (the solve itself: test_a_batch_of_drives_is_one_solve_with_shared_steps has this edge and grid; without the
    # snap its frame solve collapsed at t = 0.2 under the suite's XLA flags)
    assert grid[3] != 0.2 and drive_times(near)[1][3] == 0.2


def test_a_pulse_grid_point_within_round_off_of_t0_is_moved_onto_it():
    """A Gaussian at 1.5 with σ = 0.3 has its 6σ grid from −0.3 in steps of 0.3, so one point is −0.3 + 0.3 =
    5.6e-17, not 0, as the compiled core computes it: left there, the clipping controller is asked for a 5.6e-17 first step and the solve stops
    ("step size collapsed", seen under the default XLA flags). The ends of the save grid are snap targets."""
    from qllg_jax.drives import drive_times

    H = H0 + q.pulses.gaussian(0.5, centre=1.5, width=0.3) * q.pulses.cosine(1.0, 2.0, 0.3) * X1
    ts = np.linspace(0.0, 3.0, 4)
    steps = np.asarray(drive_times(H, ts)[1])
    assert not np.any((steps > 0) & (steps < 1e-9))  # (the grid is computed in the compiled core, where 0 can come out as 5.6e-17)
    rho0 = np.diag([0.4, 0.3, 0.2, 0.1]).astype(complex)
    result = q.solve(H, rho0, ts, 0.3, method="dense", **SOLVE_TOL)

    def numpy_H(t):
        return H0 + 0.5 * np.exp(-((t - 1.5) ** 2) / (2 * 0.3**2)) * np.cos(2.0 * t + 0.3) * X1

    np.testing.assert_allclose(np.asarray(result.states), reference_solve(numpy_H, rho0, ts, 0.3), atol=DRIVEN_ATOL)


def test_gradient_wrt_the_last_pwc_value_when_the_last_edge_is_t_end():
    """A pwc whose last segment ends at t_end: the solver's last stage is evaluated at t = t_end itself, so the
    last segment must include its right edge there (with a half-open [t_{K−1}, t_K) the field was off at that stage
    and reverse mode lost ≈ 13 % of ∂/∂values[-1] with Tsit5). Mixed dimer state, Tsit5, the first and the last
    value's derivative against central differences of the SciPy reference."""
    t_end, k = 2.0, 8
    times, values = np.linspace(0.0, t_end, k + 1), 0.5 * np.sin(np.linspace(0.0, 3 * np.pi, k))
    rho0 = np.asarray(q.thermal_state(q.dimer_hamiltonian(B=(0.2, 0.1, 1.0), J=0.4), 0.7))
    observable, ts = np.kron(SZ, I2), np.array([0.0, t_end])

    def loss(v):
        result = q.solve(H0 + q.pwc(times, v, X1), rho0, ts, 0.5, method="dense", solver="tsit5",
                         observables={"z": observable}, rtol=1e-8, atol=1e-10)
        return result.observables["z"][-1]

    def reference_loss(v):
        def numpy_H(t):
            j = min(np.searchsorted(times, t, side="right") - 1, k - 1)  # the last segment closed at t_end
            return H0 + (v[j] * X1 if times[0] <= t <= times[-1] else 0.0)

        return float(np.real(np.trace(reference_solve(numpy_H, rho0, ts, 0.5)[-1] @ observable)))

    grad = np.asarray(jax.grad(loss)(jnp.asarray(values)))
    h = 1e-4  # central differences: truncation O(h²) ~ 1e-8, reference noise ~1e-10/h ~ 1e-6
    checked = (0, k - 1)  # the first segment (an interior edge only) and the last (its right edge is t_end)
    fd = np.array([(reference_loss(values + h * e) - reference_loss(values - h * e)) / (2 * h) for e in np.eye(k)[list(checked)]])
    # the capped solve's derivative error scales with rtol (1e-8) times the solution scale (≤ 1): ≪ 2e-5
    np.testing.assert_allclose(grad[list(checked)], fd, atol=2e-5)
    assert abs(fd[-1]) > 1e-3  # the last segment's derivative is non-trivial


def test_a_state_at_rest_under_a_weak_pwc_field_does_not_report_a_false_step_size_collapse():
    """The thermal state (β = 1) of the AFM dimer under a weak pwc B_z on site 1 (the notebooks/pulse_design.ipynb
    control, values rounded from one of its fits): a step ended a few ULP short of the edge at t = 0.7475, the
    clipped remainder was that small and the PID's next proposal fell below the span-relative minimum step ("step
    size collapsed" at the edge). Now the solve succeeds and matches the SciPy reference."""
    from qllg_jax import design

    model = q.dimer_model(B=(1.0, 0.0, 0.0), J=1.0)
    control = design.pwc_field(model, np.linspace(0.0, 17.0, 9), (0.0, 0.0, 1.0), sites=[0], max_field=0.5,
                               units=q.Units.from_field(1.0))
    tesla = np.array([-0.014, 0.004, 0.020, 0.028, 0.025, 0.015, -0.002, -0.023])
    rho0 = np.asarray(q.thermal_state(model.matrix(), 1.0))
    times = np.asarray(control.times)
    ts = np.array([0.0, times[-1]])
    result = q.solve(control(jnp.asarray(tesla)), rho0, ts, 0.5, method="dense", throw=False)
    assert int(result.stats["failure"]) == 0, result.stats
    H0, field = np.asarray(model.matrix()), -np.asarray(q.embed(np.diag([1.0, -1.0]), 0, (2, 2)))  # −g μ_B B S_z, g = 2

    def numpy_H(t):
        j = min(np.searchsorted(times, t, side="right") - 1, len(tesla) - 1)
        return H0 + (tesla[j] * field if times[0] <= t <= times[-1] else 0.0)

    np.testing.assert_allclose(np.asarray(result.states), reference_solve(numpy_H, rho0, ts, 0.5), atol=DRIVEN_ATOL)
