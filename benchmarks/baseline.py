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


_PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]])
_SIGMA_1 = np.stack([np.kron(s, np.eye(2)) for s in _PAULI])   # σ_k ⊗ 𝟙, (3, 4, 4)
_SIGMA_2 = np.stack([np.kron(np.eye(2), s) for s in _PAULI])   # 𝟙 ⊗ σ_k
_SIGMA_12 = np.einsum("kab,lcd->klacbd", _PAULI, _PAULI).reshape(3, 3, 4, 4)   # σ_k ⊗ σ_l


def two_qubit_observables_numpy(states: np.ndarray) -> dict[str, np.ndarray]:
    """Bloch vectors (T, 2, 3) and Bell non-locality (T,) of two-qubit states (T, 4, 4), in numpy."""
    bloch = np.stack([np.einsum("kab,tba->tk", _SIGMA_1, states).real, np.einsum("kab,tba->tk", _SIGMA_2, states).real], axis=1)
    T = np.einsum("klab,tba->tkl", _SIGMA_12, states).real
    u = np.linalg.eigvalsh(np.einsum("tkl,tkm->tlm", T, T))[:, ::-1]
    return {"bloch": bloch, "bell": np.sqrt(np.maximum(u[:, 0] + u[:, 1] - 1, 0.0))}

