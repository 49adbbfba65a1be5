"""Spin operators, the Hamiltonian builder and units against independent constructions."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q

LEVI = np.zeros((3, 3, 3))
for a, b, c in itertools.permutations(range(3)):
    LEVI[a, b, c] = np.linalg.det(np.eye(3)[[a, b, c]])


@pytest.mark.parametrize("s", [0.5, 1, 1.5, 2, 5])
def test_spin_algebra(s):
    S = np.asarray(q.spin_matrices(s))
    for a, b, c in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
        np.testing.assert_allclose(S[a] @ S[b] - S[b] @ S[a], 1j * S[c], atol=1e-12)
    casimir = sum(S[a] @ S[a] for a in range(3))
    np.testing.assert_allclose(casimir, s * (s + 1) * np.eye(int(2 * s + 1)), atol=1e-12)
    np.testing.assert_allclose(np.diag(S[2]).real, s - np.arange(2 * s + 1))


def test_bad_spin():
    with pytest.raises(ValueError, match="s must be a spin quantum number"):
        q.spin_matrices(0.3)


def pauli_dimer(B, J, D):
    """Eq. 8 written out with explicit Pauli matrices and numpy Kronecker products."""
    sx = np.array([[0, 1], [1, 0]], complex)
    sy = np.array([[0, -1j], [1j, 0]])
    sz = np.diag([1.0, -1.0]).astype(complex)
    one = np.eye(2)
    s1 = [np.kron(p, one) for p in (sx, sy, sz)]
    s2 = [np.kron(one, p) for p in (sx, sy, sz)]
    H = -sum(B[a] * (s1[a] + s2[a]) for a in range(3)) + J * sum(s1[a] @ s2[a] for a in range(3))
    H = H + sum(LEVI[a, b, c] * D[a] * s1[b] @ s2[c] for a in range(3) for b in range(3) for c in range(3))
    return H


@pytest.mark.parametrize(
    "B,J,D", [((1, 0, 0), 1.0, (0, 0, 0)), ((1, 0, 0), -1.0, (0, 0, 0.6)), ((0.3, -0.2, 0.7), 0.4, (0.1, -0.5, 0.2))]
)
def test_dimer_hamiltonian_is_paper_eq8(B, J, D):
    H = q.dimer_hamiltonian(B, J, D)
    assert H.shape == (4, 4) and H.dtype == jnp.complex128
    np.testing.assert_allclose(H, pauli_dimer(np.array(B, float), J, np.array(D, float)), atol=1e-13)


def test_dimer_basis_convention():
    # σz on site 0 in basis |↑↑⟩, |↑↓⟩, |↓↑⟩, |↓↓⟩ is diag(1, 1, -1, -1): with B = (0,0,1), J = 0, H = -(σz1 + σz2).
    H = q.dimer_hamiltonian((0, 0, 1), 0.0, (0, 0, 0))
    np.testing.assert_allclose(np.diag(H).real, [-2, 0, 0, 2])


def test_spin_model_terms_match_embedded_operators(key):
    spins = (0.5, 1.0, 0.5)
    rng = np.random.default_rng(0)
    field = rng.normal(size=(3, 3))
    bonds = [(0, 1), (1, 2), (2, 0)]
    J, D, G = rng.normal(size=3), rng.normal(size=(3, 3)), rng.normal(size=(3, 3, 3))
    K, axis = rng.normal(size=3), rng.normal(size=(3, 3))
    model = q.spin_model(spins, field=field, bonds=bonds, exchange=J, dmi=D, anisotropic_exchange=G, anisotropy=K, anisotropy_axis=axis)
    S = [np.asarray(x) for x in q.site_spin_operators(spins)]
    axis = axis / np.linalg.norm(axis, axis=1, keepdims=True)
    expected = sum(-np.einsum("a,aij->ij", field[k], S[k]) for k in range(3))
    for k in range(3):
        ns = np.einsum("a,aij->ij", axis[k], S[k])
        expected = expected - K[k] * ns @ ns
    for n, (i, j) in enumerate(bonds):
        expected = expected + J[n] * sum(S[i][a] @ S[j][a] for a in range(3))
        expected = expected + np.einsum("abc,a,bij,cjk->ik", LEVI, D[n], S[i], S[j])
        expected = expected + np.einsum("ab,aij,bjk->ik", G[n], S[i], S[j])
    np.testing.assert_allclose(model.matrix(), expected, atol=1e-12)
    psi = q.random_ket(key, model.dim)
    np.testing.assert_allclose(model.apply(psi), expected @ np.asarray(psi), atol=1e-12)


def test_model_validation():
    with pytest.raises(ValueError, match="bond"):
        q.spin_model([0.5, 0.5], bonds=[(0, 2)])
    with pytest.raises(ValueError, match="field"):
        q.spin_model([0.5, 0.5], field=np.ones((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        q.spin_model([0.5, 0.5], bonds=[(0, 1)], exchange=np.nan)


def test_units_codata():
    u = q.Units.from_field(1.0)
    assert u.energy_meV == pytest.approx(0.057883817555)
    assert u.time_ps == pytest.approx(0.6582119514 / 0.057883817555)
    assert u.field(1.0, g=2.0) == pytest.approx(2.0)  # −g μ_B B·S = −b·σ with b = 1 for B = B0
    assert u.time(u.time_to_ps(3.0)) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        q.Units(-1.0)
