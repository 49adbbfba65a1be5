"""Physics of the paper's figures on short windows, checked against closed forms and second methods.

(Fig. 2(a)'s long-time T → diag(−1, −1, −1) is a core test in test_dynamics.py.)
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax import paper
from qllg_jax.classical import llg_rhs


def test_spin_s_dimer_is_eq8_and_its_classical_limit_is_the_unit_vector_dimer():
    rng = np.random.default_rng(0)
    B, D = rng.normal(size=3), rng.normal(size=3)
    J = -0.7
    # s = 1/2: exactly the paper's eq. 8
    np.testing.assert_allclose(paper.spin_s_dimer(0.5, J, D, B).matrix(), q.dimer_hamiltonian(B, J, D), atol=1e-12)
    m = rng.normal(size=(2, 3))
    m /= np.linalg.norm(m, axis=-1, keepdims=True)
    # the classical dimer formula, coded here independently (b1 = B − J m2 − m2×D, b2 = B − J m1 + m1×D)
    b = np.stack([B - J * m[1] - np.cross(m[1], D), B - J * m[0] + np.cross(m[0], D)])
    expected = 2 / 1.25 * (np.cross(m, b) - 0.5 * np.cross(m, np.cross(m, b)))
    for s in (0.5, 1.5, 4.0):
        np.testing.assert_allclose(llg_rhs(paper.spin_s_dimer(s, J, D, B), jnp.asarray(m), 0.5), expected, atol=1e-12)


@pytest.mark.parametrize("s", [1.0, 2.5])
def test_spin_s_fast_hamiltonian_matches_model(s):
    np.testing.assert_allclose(paper.spin_s_hamiltonian(s, 1.0), paper.spin_s_dimer(s, 1.0).matrix(), atol=1e-12)


def test_fig3_monotone_decay_without_dmi_and_nonlocal_steady_state_with_dmi():
    data = paper.fig3(quick=True)
    B0 = data.columns["B_D0"]
    assert B0[0] == pytest.approx(1.0, abs=1e-9)  # Ψ+ is maximally non-local
    assert np.all(np.diff(B0) <= 1e-9)  # D = 0: monotone decay
    assert B0[-1] < 0.05
    for D in (0.4, 0.6, 1.0):  # D ≠ 0: non-monotone, back to strong non-locality
        values = data.columns[f"B_D{D:g}"]
        assert values.min() < 0.7 and values[-1] > 0.85
    assert set(data.diagnostics) == {f"B_D{D:g}" for D in paper.FIG3_D}
    assert all(d["trace_error"] < 1e-9 for d in data.diagnostics.values())


def test_fig3_d0_steady_state_is_the_fm_product_state():
    # D = 0 conserves the total spin, so Ψ+ (triplet) relaxes to the lowest triplet |→→⟩ (both spins along +B)
    ts = jnp.linspace(0.0, 14.0, 8)
    result = q.solve(q.dimer_hamiltonian(paper.B_X, 1.0, (0, 0, 0)), q.bell_state("psi+"), ts, paper.KAPPA,
                     observables={"r": q.bloch_vectors, "B": q.bell_nonlocality})
    np.testing.assert_allclose(result.observables["r"][-1], [[1, 0, 0], [1, 0, 0]], atol=1e-4)
    assert float(result.observables["B"][-1]) < 1e-6


def test_fig4_werner_revival_dense_solve_matches_two_level_exact():
    # AFM Werner state on Ψ+: non-locality vanishes and then revives (Fig. 4(b))
    ts = jnp.linspace(0.0, 2.5, 51)
    H = q.dimer_hamiltonian(paper.B_111, 1.0, (0.0, 0.0, 0.4))
    rho0 = q.werner_state("psi+", 0.9)
    result = q.solve(H, rho0, ts, paper.KAPPA, method="dense", observables={"B": q.bell_nonlocality}, rtol=1e-10,
                     atol=1e-12)
    exact = jax.vmap(q.bell_nonlocality)(q.two_level_exact(H, rho0, ts, paper.KAPPA))
    # global error ≲ 10³ rtol in ϱ; B = √(sum of two eigenvalues of TᵀT) has derivative ≤ 1/B ≈ 2 here (B ≥ 0.5)
    np.testing.assert_allclose(result.observables["B"], exact, atol=2e3 * 1e-10)
    B = np.asarray(exact)
    assert B[0] > 0.75
    k = int(np.argmin(B))
    assert B[k] < 1e-6  # lost ...
    assert B[k:].max() > 0.6  # ... and revived


def test_classical_fm_dimer_saturates_along_field():
    ts = jnp.linspace(0.0, 20.0, 3)
    m = q.classical_dimer(paper.B_X, -1.0, (0, 0, 0), (0, 0, 1), (0, 0, -1), ts, paper.ALPHA)
    np.testing.assert_allclose(m[-1], [[1, 0, 0], [1, 0, 0]], atol=1e-5)


def test_fig6_pure_state_exact_matches_dense_solve_and_approaches_classical():
    data = paper.fig6(quick=True)
    assert data.params["spins"] == [0.5, 1.0, 1.5]
    # s = 1 against an independent dense q-LLG solve of the same model
    ts = jnp.asarray(data.ts[::8])
    S = q.spin_matrices(1.0)
    S1 = [q.embed(S[k], 0, (3, 3)) for k in range(3)]
    result = q.solve(paper.spin_s_dimer(1.0, -1.0).matrix(), q.up_down_state(1.0), ts, paper.KAPPA, method="dense",
                     observables={"S": lambda rho: jnp.stack([jnp.real(jnp.trace(rho @ op)) for op in S1])})
    for k, a in enumerate("xyz"):
        np.testing.assert_allclose(data.columns[f"s1_S{a}"][::8], result.observables["S"][:, k], atol=1e-6)
    # the deviation from classical LLG shrinks as s grows (the paper's "slowly approaches classical")
    dev = [data.checks[f"s{s:g}_rms_deviation_from_classical"] for s in (0.5, 1.0, 1.5)]
    assert dev[0] > dev[1] > dev[2]
    # |<S>|/s dips less for larger s
    dips = [data.columns[f"s{s:g}_Snorm"].min() for s in (0.5, 1.0, 1.5)]
    assert dips[0] < dips[1] < dips[2] <= 1.0
