"""QuTiP interop: Qobj inputs, to_qutip outputs, and QuTiP's solvers as an independent second method."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q

qutip = pytest.importorskip("qutip")

TS = np.linspace(0.0, 3.0, 7)
TOL = {"atol": 1e-12, "rtol": 1e-10}


@pytest.fixture(scope="module")
def dimer():
    H = np.asarray(q.dimer_hamiltonian(B=(1.0, 0.3, 0.2), J=0.7, D=(0.1, 0.0, 0.2)))
    return H, qutip.Qobj(H, dims=[[2, 2], [2, 2]])


def _ket_up_down():
    return qutip.tensor(qutip.basis(2, 0), qutip.basis(2, 1))  # |↑↓⟩ (qutip basis(2, 0) = σ_z = +1)


def test_importing_qllg_jax_does_not_import_qutip():
    code = "import sys, qllg_jax; sys.exit(int('qutip' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_qobj_inputs_are_converted(dimer):
    H, Hq = dimer
    assert np.allclose(q.as_matrix(Hq), H)
    ket = _ket_up_down()
    assert np.allclose(q.density_matrix(ket), np.asarray(q.density_matrix(q.up_down_state())))
    rho = qutip.rand_dm([2, 2], seed=3)
    assert np.allclose(q.validate_state(rho), rho.full())
    assert np.isclose(float(q.purity(rho)), (rho * rho).tr().real)
    assert np.isclose(float(q.energy(rho, Hq)), qutip.expect(Hq, rho))
    # Qobj inputs are validated like arrays, also as constants inside jax.jit
    with pytest.raises(ValueError, match="rho0 must be normalised"):
        jax.jit(lambda k: q.solve(Hq, 2 * ket, TS, k).states)(0.1)
    with pytest.raises(ValueError, match="H is not Hermitian"):
        q.solve(qutip.Qobj(H + np.triu(np.ones((4, 4)), 1), dims=[[2, 2], [2, 2]]), ket, TS, 0.1)


def test_von_neumann_matches_mesolve(dimer):
    """κ = 0: our dense q-LLG (ϱ integrated) against qutip.mesolve without collapse operators."""
    H, Hq = dimer
    rho0 = qutip.rand_dm([2, 2], seed=11)
    ours = q.solve(Hq, rho0, TS, 0.0, method="dense")
    ref = qutip.mesolve(Hq, rho0, TS, options=TOL)
    assert np.max(np.abs(np.asarray(ours.states) - np.stack([s.full() for s in ref.states]))) < 1e-7
    back = q.to_qutip(ours)
    assert len(back) == len(TS) and back[0].dims == [[2, 2], [2, 2]]
    assert max(abs((a - b).norm()) for a, b in zip(back, ref.states)) < 1e-6


def test_pure_kappa_zero_matches_sesolve(dimer):
    H, Hq = dimer
    psi0 = _ket_up_down()
    ours = q.solve(H, psi0.full()[:, 0], TS, 0.0, method="dense", equation="von_neumann")
    ref = qutip.sesolve(Hq, psi0, TS, options=TOL)
    expected = np.stack([(s * s.dag()).full() for s in ref.states])
    assert np.max(np.abs(np.asarray(ours.states) - expected)) < 1e-7


def test_qllg_pure_state_matches_sesolve_with_effective_hamiltonian(dimer):
    """q-LLG of a pure state (dense ϱ integration) against QuTiP's sesolve of the non-Hermitian
    H_eff = (1 − iκ)H/(1 + κ²) followed by normalisation (paper eq. 28) — an independent method."""
    H, Hq = dimer
    kappa = 0.4
    psi0 = _ket_up_down()
    ours = q.solve(Hq, psi0, TS, kappa, method="dense")
    ref = qutip.sesolve(Hq * ((1 - 1j * kappa) / (1 + kappa**2)), psi0, TS, options=TOL)
    expected = np.stack([(s * s.dag()).full() / s.norm() ** 2 for s in ref.states])
    assert np.max(np.abs(np.asarray(ours.states) - expected)) < 1e-7


def test_qllg_from_qobj_equals_numpy_inputs_and_observables_agree(dimer):
    H, Hq = dimer
    rho0 = qutip.rand_dm([2, 2], seed=5)
    from_qobj = q.solve(Hq, rho0, TS, 0.3, method="dense")
    from_numpy = q.solve(H, rho0.full(), TS, 0.3, method="dense")
    assert np.max(np.abs(np.asarray(from_qobj.states) - np.asarray(from_numpy.states))) < 1e-12
    states = q.to_qutip(from_numpy)
    # observables computed by QuTiP on the converted states agree with ours (independent implementations)
    for k, op in enumerate([qutip.sigmax(), qutip.sigmay(), qutip.sigmaz()]):
        site0 = qutip.tensor(op, qutip.qeye(2))
        assert np.allclose([qutip.expect(site0, s) for s in states], np.asarray(q.bloch_vectors(from_numpy.states))[:, 0, k])
    assert np.allclose([qutip.concurrence(s) for s in states], np.asarray(q.concurrence(from_numpy.states)), atol=1e-7)
    assert np.allclose([qutip.entropy_vn(s) for s in states], np.asarray(q.von_neumann_entropy(from_numpy.states)))


def test_to_qutip_shapes_and_errors():
    ket = q.to_qutip(q.up_down_state())
    assert ket.isket and ket.dims == [[2, 2], [1]]
    spin1 = q.to_qutip(jnp.eye(6) / 6, dims=[3, 2])
    assert spin1.dims == [[3, 2], [3, 2]]
    nested = q.to_qutip(jnp.broadcast_to(jnp.eye(4) / 4, (2, 3, 4, 4)))
    assert len(nested) == 2 and len(nested[0]) == 3 and nested[1][2].dims == [[2, 2], [2, 2]]
    assert q.to_qutip(jnp.eye(3) / 3).dims == [[3], [3]]
    with pytest.raises(ValueError, match="dims"):
        q.to_qutip(jnp.eye(4) / 4, dims=[3, 2])
    with pytest.raises(ValueError, match="save_states"):
        q.to_qutip(q.solve(q.dimer_hamiltonian(), q.up_down_state(), TS[:2], method="exact", save_states=False))
    with pytest.raises(ValueError, match="x must be"):
        q.to_qutip(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="obj must be a qutip.Qobj"):
        q.from_qutip(np.eye(2))
    assert np.allclose(q.from_qutip([qutip.basis(2, 0), qutip.basis(2, 1)]), np.eye(2))
