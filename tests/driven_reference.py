r"""An independent reference for driven dynamics: plain NumPy/SciPy, no qllg_jax code.

Integrates the dense ϱ(t) under a Hamiltonian given as a NumPy function ``H(t) -> (D, D)`` with
``scipy.integrate.solve_ivp`` (DOP853, rtol 1e-11, atol 1e-13, a small maximum step so no drive feature is
stepped over):

- q-LLG (paper eq. 3):  (1 − iκ ad_ϱ) ϱ̇ = i[ϱ, H(t)], solved at every evaluation as a D² × D² linear system
  (row-major vec: vec(AXB) = (A ⊗ Bᵀ) vec X, so ad_ϱ = ϱ ⊗ 𝟙 − 𝟙 ⊗ ϱᵀ);
- q-LL (Wieser):        ϱ̇ = i[ϱ, H] − κ[ϱ, [ϱ, H]];
- von Neumann:          ϱ̇ = i[ϱ, H].

And the classical LLG of one spin in a field b(t) (LL form, ṁ = [m × b − α m × (m × b)]/(1 + α²)).
Global error of DOP853 at these tolerances is ~1e-10 on the O(1) short runs of the tests.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

RTOL, ATOL = 1e-11, 1e-13


def rho_dot(rho: np.ndarray, H: np.ndarray, kappa: float, equation: str) -> np.ndarray:
    """ϱ̇ for dense ϱ, H (D, D)."""
    c = rho @ H - H @ rho
    if equation == "von_neumann":
        return 1j * c
    if equation == "qll":
        return 1j * c - kappa * (rho @ c - c @ rho)
    if equation != "qllg":
        raise ValueError(equation)
    d = rho.shape[0]
    eye = np.eye(d)
    ad = np.kron(rho, eye) - np.kron(eye, rho.T)
    return np.linalg.solve(np.eye(d * d) - 1j * kappa * ad, (1j * c).reshape(-1)).reshape(d, d)


def reference_solve(H_of_t, rho0, ts, kappa, equation: str = "qllg", max_step: float = 0.02) -> np.ndarray:
    """ϱ(t) at ``ts`` (T, D, D) from ϱ0 (D, D) (a ket (D,) is turned into |ψ⟩⟨ψ|) under H_of_t(t) -> (D, D)."""
    rho0 = np.asarray(rho0, dtype=complex)
    if rho0.ndim == 1:
        rho0 = np.outer(rho0, rho0.conj())
    d = rho0.shape[0]
    ts = np.asarray(ts, dtype=float)

    def rhs(t, y):
        return rho_dot(y.reshape(d, d), np.asarray(H_of_t(t), dtype=complex), kappa, equation).reshape(-1)

    sol = solve_ivp(rhs, (ts[0], ts[-1]), rho0.reshape(-1), method="DOP853", t_eval=ts, rtol=RTOL, atol=ATOL,
                    max_step=max_step)
    assert sol.success, sol.message
    return sol.y.T.reshape(len(ts), d, d)


def reference_llg(b_of_t, m0, ts, alpha, max_step: float = 0.02) -> np.ndarray:
    """Unit vector m(t) at ``ts`` (T, 3) of one classical spin in the field b_of_t(t) -> (3,) (energy units)."""

    def rhs(t, m):
        b = np.asarray(b_of_t(t), dtype=float)
        p = np.cross(m, b)
        return (p - alpha * np.cross(m, p)) / (1 + alpha**2)

    m0 = np.asarray(m0, dtype=float)
    sol = solve_ivp(rhs, (ts[0], ts[-1]), m0 / np.linalg.norm(m0), method="DOP853", t_eval=ts, rtol=RTOL,
                    atol=ATOL, max_step=max_step)
    assert sol.success, sol.message
    return sol.y.T
