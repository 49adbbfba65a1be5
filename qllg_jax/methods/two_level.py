r"""The two-level method: ϱ = a𝟙 + bP (two distinct eigenvalues, e.g. Werner states) in closed form.

Since [ϱ, ·] = b[P, ·], ϱ(t) = a𝟙 + bP(t) where the projector P evolves under q-LLG with κ → κb, i.e. by
eq. 28 applied to its range: range P(t) = e^{−iH_eff t} range P(0) (:func:`~qllg_jax.exact.projector_exact`).
a, b and range P(0) come from one host eigendecomposition of ϱ0; D ≲ 256 (dense H). A piecewise-constant
driven H: the projector's range interval by interval (:func:`~qllg_jax.exact.segmentwise_columns`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .._linalg import dagger, matmul
from ..exact import evolve_columns
from .dense import Dense
from .initial_state import RANK_TOL, InitialState
from .ket import projector_reduction


class TwoLevel(Dense):
    """ϱ(t) = a𝟙 + bP(t) (records as :class:`~qllg_jax.methods.Dense`); ``stats`` count no steps."""

    name = "two_level"
    closed_form = True
    needs_host_state = True

    def initial(self, state: InitialState):
        values, vectors = state.eigh
        if not np.all(state.levels() == 2):
            raise ValueError("method 'two_level' needs rho0 = a*1 + b*P: exactly two distinct eigenvalues per state")
        high, low = values[..., 0], values[..., -1]
        upper = np.abs(values - high[..., None]) <= RANK_TOL
        rank = np.sum(upper, axis=-1)
        if np.any(rank != rank.flat[0]):
            raise ValueError(f"method 'two_level' needs one projector rank across the batch, got ranks {np.unique(rank)}")
        rank = int(rank.flat[0])
        aux = {"a": np.asarray(low), "b": np.asarray(high - low), "range": np.asarray(vectors[..., :rank], dtype=complex)}
        return super().initial(state)[0], aux

    def evolve(self, rho0, H, kappa, aux, ts, equation: str):
        scale, kappa_eff = projector_reduction(equation, kappa, aux["b"])
        q = evolve_columns(H, aux["range"], ts, kappa_eff, scale)  # orthonormal (normalised when rank 1: no QR)
        projector = matmul(q, dagger(q))
        return aux["a"] * jnp.eye(rho0.shape[-1]) + aux["b"] * projector
