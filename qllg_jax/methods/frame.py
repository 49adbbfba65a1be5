r"""The frame method: ϱ = U Λ U† with constant eigenvalues Λ; only the frame U (D, r) is integrated.

q-LLG (and q-LL, von Neumann) are isospectral flows; U̇ = −iUK̃ with K̃_ij = c(λ_i − λ_j)(U†HU)_ij
(:mod:`qllg_jax.equations.frame`). Per step: one H·U (matrix-free for a :class:`~qllg_jax.SpinModel`) and
O(D r²) algebra — no eigendecomposition and no linear solve, at any rank r ≤ D (full rank included). The
eigenvalues and the initial frame come from ONE host eigendecomposition of ϱ0. A batch of states of
different ranks shares r = the largest rank (the other columns carry λ = 0).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array
from .._linalg import dagger, matmul
from ..equations.frame import FrameQLLG
from ._method import Method
from .initial_state import RANK_TOL, InitialState


def frame_invariants(frame, weights, H) -> dict:
    """Invariants of ϱ = U diag(w) U† from the r × r matrices U†U and U†HU only."""
    gram = matmul(dagger(frame), frame)
    weighted = weights[:, None] * gram
    return {
        "trace": jnp.real(jnp.sum(weights * jnp.diagonal(gram))),
        "purity": jnp.real(jnp.sum(weighted * weighted.T)),
        "energy": jnp.real(jnp.sum(weights[None, :] * jnp.conj(frame) * H.apply(frame))),
        "representation_error": jnp.max(jnp.abs(gram - jnp.eye(frame.shape[1]))),
    }


class Frame(Method):
    """ϱ = U diag(λ) U†, U (D, r); ``gauge_fix`` zeroes the generator inside equal-eigenvalue blocks (fewer steps)."""

    gauge_fix: bool = eqx.field(static=True, default=True)
    name = "frame"
    representation = "frames"
    packing = "complex"
    needs_host_state = True

    def initial(self, state: InitialState):
        if state.kind == "frame":
            return state.frame.frame.astype(complex), {"weights": device_array(state.frame.weights, dtype=float)}
        if state.kind == "ket":
            psi = state.array
            return psi[..., None], {"weights": np.ones(psi.shape[:-1] + (1,))}
        values, vectors = state.eigh  # host arrays stay numpy until the compiled solve (no eager device kernels)
        rank = int(np.max(state.ranks()))
        weights = np.where(values[..., :rank] > RANK_TOL, values[..., :rank], 0.0)
        weights = weights / np.sum(weights, axis=-1, keepdims=True)
        return np.asarray(vectors[..., :rank], dtype=complex), {"weights": weights}

    def vector_field(self, frame, H, kappa, aux, equation: str):
        return FrameQLLG(kappa, aux["weights"], self.gauge_fix, equation)(frame, H.apply)

    def record(self, frame, H, aux, observables, save_states: bool) -> dict:
        weights = aux["weights"]
        out = {"invariants": frame_invariants(frame, weights, H), "observables": observables.of_frame(frame, weights)}
        if save_states:
            out["frames"] = frame
        return out

    def spectrum_drift(self, frame, frame0, aux):
        """‖W^½ (U†U − U0†U0) W^½‖_F: by Weyl's inequality an upper bound of the largest eigenvalue change of ϱ
        (its eigenvalues are those of W^½ U†U W^½), with no eigendecomposition."""
        root = jnp.sqrt(aux["weights"])
        change = matmul(dagger(frame), frame) - matmul(dagger(frame0), frame0)
        return jnp.sqrt(jnp.sum(jnp.abs(root[:, None] * change * root[None, :]) ** 2))
