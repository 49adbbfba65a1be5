"""The named baseline for every speed ratio: plain numpy/scipy q-LLG.

Each right-hand side forms the d²×d² matrix 1 − iκ(ϱ⊗𝟙 − 𝟙⊗ϱᵀ) and LU-solves it (numpy), and scipy's
DOP853 integrates the complex state at the same rtol/atol as qllg_jax. This is what a careful physicist
writes without JAX.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp


def qllg_rhs_numpy(rho: np.ndarray, H: np.ndarray, kappa: float) -> np.ndarray:
    d = rho.shape[0]
    eye = np.eye(d)
    matrix = np.eye(d * d) - 1j * kappa * (np.kron(rho, eye) - np.kron(eye, rho.T))
    b = 1j * (rho @ H - H @ rho)
    return np.linalg.solve(matrix, b.reshape(-1)).reshape(d, d)


def solve_numpy(H, rho0, ts, kappa, rtol=1e-8, atol=1e-10, method="DOP853") -> np.ndarray:
    """ϱ(t) of shape (T, d, d) by scipy.integrate.solve_ivp on the flattened complex matrix."""
    H, rho0, ts = np.asarray(H, complex), np.asarray(rho0, complex), np.asarray(ts, float)
    d = H.shape[0]

    def rhs(t, y):
        return qllg_rhs_numpy(y.reshape(d, d), H, kappa).reshape(-1)

    sol = solve_ivp(rhs, (ts[0], ts[-1]), rho0.reshape(-1), method=method, t_eval=ts, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(sol.message)
    return sol.y.T.reshape(len(ts), d, d)
