r"""Ensemble statistics of stochastic trajectories (leading axis = trajectories, one per key).

For K independent trajectories x_1 … x_K of a quantity: the mean x̄ = Σ x_j / K and its standard error
SE = s/√K, s² = Σ (x_j − x̄)²/(K − 1) (independent keys: SE is exact for the ensemble mean, not for time
averages along one trajectory). The ensemble-averaged state ϱ̄(t) = Σ_j ϱ_j(t)/K mixes: each ϱ_j keeps its
spectrum (the noise is Hermitian), but the entropy of ϱ̄ grows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._arrays import device_array
from .._checks import check_spins
from ..observables import bloch_vectors, energy, spin_expectations, von_neumann_entropy
from ..operators import site_dims, site_spin_operators
from .frames import FrameTrajectory


def ensemble_mean(values, axis: int = 0) -> tuple[jax.Array, jax.Array]:
    """(mean, standard error) over ``axis`` (the trajectories; K ≥ 2) of any real or complex array."""
    values = device_array(values)
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
    return ensemble_mean(energy(_states(trajectories), device_array(H)))


class EnsembleAverage(eqx.Module):
    r"""Ensemble statistics of K trajectories of :func:`qllg_jax.solve` at finite temperature (one per key).

    Every ``*_se`` is the standard error s/√K of the mean beside it (module docstring). Sites k = 0 … N−1,
    spins s_k; pairs (k, l), k < l, in ``pairs``.

    Attributes:
        count: K. ts: save times (T,). spins: (s_1, …, s_N). pairs: the site pairs of ``correlations``.
        rho: the ensemble-averaged state ϱ̄(t) = Σ_j ϱ_j(t)/K, shape (T, D, D).
        entropy: S(ϱ̄(t)) = −Tr ϱ̄ ln ϱ̄ (nats), shape (T,): grows as the trajectories spread.
        trajectory_entropy: S(ϱ_j(t)), shape (K, T): constant on every trajectory (the noise is Hermitian).
        spin, spin_se: ⟨S_k⟩(t), shape (T, N, 3). bloch, bloch_se: ⟨S_k⟩/s_k, shape (T, N, 3).
        energy, energy_se: Tr ϱH(t) of the static H (the Result's ``invariants["energy"]``), shape (T,).
        correlations, correlations_se: ⟨S_k,a S_l,b⟩(t) for each pair, shape (T, P, 3, 3).
    """

    ts: jax.Array
    rho: jax.Array
    entropy: jax.Array
    trajectory_entropy: jax.Array
    spin: jax.Array
    spin_se: jax.Array
    bloch: jax.Array
    bloch_se: jax.Array
    energy: jax.Array
    energy_se: jax.Array
    correlations: jax.Array
    correlations_se: jax.Array
    count: int = eqx.field(static=True)
    spins: tuple = eqx.field(static=True)
    pairs: tuple = eqx.field(static=True)


def _site_spins(spins) -> tuple[float, ...]:
    from ..hamiltonians import SpinModel

    if isinstance(spins, SpinModel):
        return tuple(spins.spins)
    return check_spins(spins)


def ensemble_average(result, spins) -> EnsembleAverage:
    r"""Means and standard errors over the trajectories of ``result`` (:class:`EnsembleAverage`).

    Args:
        result: a :class:`~qllg_jax.Result` of ``solve(..., temperature=τ, key=keys)`` with keys (K,) (K ≥ 2
            trajectories on the leading axis), or a :class:`FrameTrajectory` of ``jax.vmap(stochastic_frames)``
            (then ``energy`` is NaN: it carries no H).
        spins: the site spins (s_1, …, s_N) or the :class:`~qllg_jax.SpinModel` that was solved.

    Dense ϱ_j(t) (K, T, D, D) are formed: small D only (the notebook's dimer: D = 4).
    """
    from ..result import Result

    site_spins = _site_spins(spins)
    if isinstance(result, Result):
        rho = result.states
        if rho is None or rho.ndim != 4:
            raise ValueError("result must hold the states of an ensemble: solve(..., temperature=, key=keys) with keys "
                             f"of shape (K,) and save_states=True; got states of shape {None if rho is None else rho.shape}")
        energies = result.invariants["energy"]
        ts = result.ts
    elif isinstance(result, FrameTrajectory):
        rho = _states(result)
        energies = jnp.full(rho.shape[:2], jnp.nan)
        ts = jnp.arange(rho.shape[1], dtype=float)
    else:
        raise ValueError(f"result must be a Result or a FrameTrajectory, got {type(result).__name__}")
    if rho.shape[-1] != math.prod(site_dims(site_spins)):
        raise ValueError(f"spins {site_spins} (D = {math.prod(site_dims(site_spins))}) do not match the states' "
                         f"D = {rho.shape[-1]}")
    pairs = tuple((k, l) for k in range(len(site_spins)) for l in range(k + 1, len(site_spins)))
    out = _ensemble_statistics(device_array(rho), device_array(energies), site_spins, pairs)
    return EnsembleAverage(ts=device_array(ts), count=int(rho.shape[0]), spins=site_spins, pairs=pairs, **out)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _ensemble_statistics(rho, energies, spins, pairs) -> dict:
    count = rho.shape[0]
    if count < 2:
        raise ValueError(f"an ensemble needs at least 2 trajectories, got {count}")
    mean_rho = jnp.mean(rho, axis=0)
    ops = jnp.stack(site_spin_operators(spins))  # (N, 3, D, D)
    spin = jnp.real(jnp.einsum("ktij,naji->ktna", rho, ops))
    bloch = spin / device_array(spins)[:, None]
    if pairs:
        products = jnp.stack([jnp.einsum("aij,bjk->abik", ops[k], ops[l]) for k, l in pairs])  # (P, 3, 3, D, D)
        correlations = jnp.real(jnp.einsum("ktij,pabji->ktpab", rho, products))
    else:
        correlations = jnp.zeros(rho.shape[:2] + (0, 3, 3))
    stats = {}
    for name, values in (("spin", spin), ("bloch", bloch), ("energy", energies), ("correlations", correlations)):
        stats[name], stats[f"{name}_se"] = ensemble_mean(values)
    return {"rho": mean_rho, "entropy": von_neumann_entropy(mean_rho), "trajectory_entropy": von_neumann_entropy(rho),
            **stats}
