r"""Ensemble statistics of stochastic trajectories (leading axis = trajectories, one per key).

For K independent trajectories x_1 … x_K of a quantity: the mean x̄ = Σ x_j / K and its standard error
SE = s/√K, s² = Σ (x_j − x̄)²/(K − 1) (independent keys: SE is exact for the ensemble mean, not for time
averages along one trajectory). The ensemble-averaged state ϱ̄(t) = Σ_j ϱ_j(t)/K mixes: each ϱ_j keeps its
spectrum (the noise is Hermitian), but the entropy of ϱ̄ grows.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ..observables import bloch_vectors, energy, spin_expectations
from .frames import FrameTrajectory


def ensemble_mean(values, axis: int = 0) -> tuple[jax.Array, jax.Array]:
    """(mean, standard error) over ``axis`` (the trajectories; K ≥ 2) of any real or complex array."""
    values = jnp.asarray(values)
    count = values.shape[axis]
    if count < 2:
        raise ValueError(f"an ensemble needs at least 2 trajectories along axis {axis}, got {count}")
    mean = jnp.mean(values, axis=axis)
    spread = jnp.sqrt(jnp.sum(jnp.abs(values - jnp.expand_dims(mean, axis)) ** 2, axis=axis) / (count - 1))
    return mean, spread / jnp.sqrt(count)


def _states(trajectories: FrameTrajectory) -> jax.Array:
    if not isinstance(trajectories, FrameTrajectory) or trajectories.frames.ndim != 4:
        raise ValueError("expected a FrameTrajectory of an ensemble: frames (K, T, D, r) (jax.vmap over keys)")
    return trajectories.density_matrices()


def ensemble_density_matrix(trajectories: FrameTrajectory) -> jax.Array:
    """ϱ̄(t) = mean over trajectories of U diag(λ) U†, shape (T, D, D) (small D)."""
    return jnp.mean(_states(trajectories), axis=0)


def ensemble_spin_expectations(trajectories: FrameTrajectory, spins: Sequence[float], normalised: bool = False):
    """(mean, SE) of ⟨S_k⟩(t) (or ⟨S_k⟩/s_k with ``normalised``), each shape (T, N, 3)."""
    rho = _states(trajectories)
    values = bloch_vectors(rho, spins) if normalised else spin_expectations(rho, spins)
    return ensemble_mean(values)


def ensemble_energy(trajectories: FrameTrajectory, H) -> tuple[jax.Array, jax.Array]:
    """(mean, SE) of Tr(ϱ H)(t) for a (D, D) H (``SpinModel.matrix()``), each shape (T,)."""
    return ensemble_mean(energy(_states(trajectories), jnp.asarray(H)))
