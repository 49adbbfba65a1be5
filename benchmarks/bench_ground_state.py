"""Ground state of 12-spin chains: q-LLG relaxation vs scipy Lanczos (eigsh) vs imaginary-time evolution.

Chains (open, N = 12, D = 4096): the antiferromagnetic Heisenberg chain and the transverse-field Ising chain
−Σσᶻσᶻ − 1.5 Σσˣ. Each method is timed (wall clock, min of 3 runs after one warm-up call that compiles) to an energy
within 1e-8 of the exact E0 (eigsh with tol 1e-13 as reference):

- eigsh:      scipy.sparse.linalg.eigsh(k=1, which="SA", tol=1e-10) on the sparse (CSR) Hamiltonian,
- qllg:       qllg_jax.ground_state.ground_state(model, kappa=1) matrix-free (SpinModel.apply), random ψ0,
              stopping on Var H ≤ tol,
- imag-time:  diffrax Tsit5 on ψ̇ = −(H − ⟨H⟩)ψ (normalised imaginary-time flow, same matrix-free H with the
              local terms precomputed as on the q-LLG path,
              same ψ0, same tolerances and chunked stopping rule).

q-LLG at κ = 1 relaxes excited amplitudes at rate gap/2, imaginary time at rate gap: the q-LLG flow needs
~2× the simulation time; it also carries the unitary part −iHψ/(1+κ²).

    python benchmarks/bench_ground_state.py [--n 12]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's qllg_jax, not an installed copy

import argparse
import platform
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

import qllg_jax as q
from qllg_jax.ground_state import energy_and_variance, ground_state
from qllg_jax.hamiltonians import apply_local_terms

ACCURACY = 1e-8


def sparse_matrix(model) -> sp.csr_matrix:
    """CSR Hamiltonian of a nearest-neighbour chain SpinModel from its local terms (kron with identities)."""
    dims = model.dims
    dim = int(np.prod(dims))
    out = sp.csr_matrix((dim, dim), dtype=complex)
    for k, h in enumerate(model.site_terms()):
        out = out + sp.kron(sp.kron(sp.identity(int(np.prod(dims[:k]))), np.asarray(h)), sp.identity(int(np.prod(dims[k + 1:]))))
    for (i, j), h in zip(model.bonds, model.bond_terms()):
        assert j == i + 1, "nearest-neighbour chains only"
        out = out + sp.kron(sp.kron(sp.identity(int(np.prod(dims[:i]))), np.asarray(h)), sp.identity(int(np.prod(dims[j + 1:]))))
    return out.tocsr()


@eqx.filter_jit
def _imag_chunk(model, psi, dt):
    # the local terms are built once per chunk, as on the q-LLG pure path
    site_terms, bond_terms = model.site_terms(), model.bond_terms()

    def field(t, y, args):  # y = (Re ψ, Im ψ) (2, D): diffrax integrates real states
        psi = y[0] + 1j * y[1]
        h = apply_local_terms(model.dims, model.bonds, site_terms, bond_terms, psi)
        out = -(h - jnp.vdot(psi, h).real * psi)
        return jnp.stack([out.real, out.imag])

    y0 = jnp.stack([psi.real, psi.imag])
    sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, dt, None, y0,
                              stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10), max_steps=100_000)
    psi = sol.ys[-1, 0] + 1j * sol.ys[-1, 1]
    return psi / jnp.linalg.norm(psi)


def imaginary_time(model, psi0, tol, chunk_time=5.0, max_time=1e4):
    psi, t = psi0, 0.0
    while float(energy_and_variance(model, psi)[1]) > tol and t < max_time:
        psi = _imag_chunk(model, psi, jnp.asarray(chunk_time))
        t += chunk_time
    return float(energy_and_variance(model, psi)[0]), t


def timed(fn, repeats=3):
    """(min wall time over ``repeats`` runs after a warm-up call that compiles, result)."""
    out = fn()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    args = parser.parse_args()
    n = args.n
    zz = jnp.zeros((3, 3)).at[2, 2].set(-4.0)
    models = {
        "Heisenberg": q.chain_model(n, exchange=1.0),
        "TFIM g=1.5": q.spin_model([0.5] * n, bonds=q.chain_bonds(n), anisotropic_exchange=zz, field=(3.0, 0.0, 0.0)),
    }
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {jax.devices()[0].device_kind}, "
          f"jax {jax.__version__}; N = {n} spins, D = {2 ** n}, target |E − E0| ≤ {ACCURACY}")
    print(f"{'model':12s} {'gap':>7s} | {'eigsh s':>8s} | {'qllg s':>8s} {'err':>8s} {'t_sim':>6s} | "
          f"{'imag s':>8s} {'err':>8s} {'t_sim':>6s} | qllg/eigsh qllg/imag")
    for name, model in models.items():
        H = sparse_matrix(model)
        levels = eigsh(H, k=2, which="SA", tol=1e-13)[0]
        e0, gap = float(np.min(levels)), float(np.ptp(levels))
        v0 = np.asarray(q.random_ket(jax.random.PRNGKey(1), H.shape[0]))
        t_eigsh, val = timed(lambda: eigsh(H, k=1, which="SA", tol=1e-10, v0=v0)[0][0])
        assert abs(val - e0) <= ACCURACY
        tol = ACCURACY * max(gap, 1e-3) / 10  # Var H ≤ tol ⇒ E − E0 ≤ Var/gap ≤ 1e-9
        psi0 = q.random_ket(jax.random.PRNGKey(0), H.shape[0])
        t_qllg, res = timed(lambda: ground_state(model, psi0, kappa=1.0, tol=tol, chunk_time=5.0))
        t_imag, (e_imag, tsim_imag) = timed(lambda: imaginary_time(model, psi0, tol))
        err_q, err_i = abs(float(res.energy) - e0), abs(e_imag - e0)
        print(f"{name:12s} {gap:7.4f} | {t_eigsh:8.3f} | {t_qllg:8.3f} {err_q:8.1e} {float(res.times[-1]):6.0f} | "
              f"{t_imag:8.3f} {err_i:8.1e} {tsim_imag:6.0f} | {t_qllg / t_eigsh:10.1f} {t_qllg / t_imag:9.2f}")


if __name__ == "__main__":
    main()
