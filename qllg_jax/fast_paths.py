r"""Fast paths of :func:`qllg_jax.solve`: which representation of ϱ to integrate, and how.

Methods (``solve(..., method=...)``):

- ``"dense"``: ϱ (D, D) with the general q-LLG linear solve (any state, O(D³)–O(D⁶) per step).
- ``"exact"``: pure states, paper eq. 28 (ψ(t) ∝ e^{−iH_eff t}ψ0, H_eff = (1 − iκ)H/(1 + κ²)); one eigh of H.
- ``"pure"``: pure states, the state vector ψ (D,) integrated with :class:`~qllg_jax.equations.PureQLLG`;
  H is applied matrix-free when it is a :class:`~qllg_jax.SpinModel` (never a D×D matrix).
- ``"two_level"``: ϱ = a𝟙 + bP (two distinct eigenvalues, e.g. Werner): closed form via
  :func:`~qllg_jax.two_level_exact` (κ → κb).
- ``"low_rank"``: ϱ = UΛU† with r ≪ D, the frame U (D, r) integrated with
  :class:`~qllg_jax.equations.FrameQLLG` (one H·U and r×r algebra per step).

Equations on the pure / projector paths: for a projector P, q-LL equals q-LLG with H → (1 + κ²)H and
von Neumann is κ = 0, so every equation reduces to a (scale of H, κ) pair (:func:`projector_reduction`).
The low-rank frame supports ``"qllg"`` and ``"von_neumann"`` (q-LL of a mixed state is a different flow).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import concrete_value
from .hamiltonians import SpinModel, apply_local_terms
from ._integrate import SolverConfig, dense_record, frame_record, integrate
from .equations.frame import FrameQLLG
from .equations.pure import PureQLLG
from .exact import projector_exact, pure_state_exact, two_level_split

METHODS = ("auto", "dense", "pure", "exact", "two_level", "low_rank")

EXACT_MAX_DIM = 256
"""auto uses eq. 28 (dense eigh of H) for pure states up to this D, the matrix-free integrator above."""
LOW_RANK_MAX_FRACTION = 0.25
"""auto uses the low-rank frame when rank r ≤ this fraction of D (and r < D)."""
STATES_MAX_DIM = 256
"""fast paths materialise ``Result.states`` (T, D, D) only up to this D (frames/kets are always kept)."""
OBSERVABLES_MAX_DIM = 2048
"""callable observables on fast paths get the dense ϱ (built per save time) up to this D."""
RANK_TOL = 1e-10
"""eigenvalues ≤ this count as zero (rank) and values closer than this as equal (two-level detection)."""


class LowRankState(eqx.Module):
    """A density matrix given by its eigen-frame: ϱ = U diag(weights) U†, never formed as a D×D matrix.

    Attributes:
        frame: U, shape (D, r), orthonormal columns.
        weights: the nonzero eigenvalues λ, shape (r,), positive, summing to 1.
    """

    frame: jax.Array
    weights: jax.Array

    def __check_init__(self):
        if jnp.ndim(self.frame) != 2 or jnp.shape(self.weights) != (jnp.shape(self.frame)[1],):
            raise ValueError(
                f"LowRankState needs frame (D, r) and weights (r,), got {jnp.shape(self.frame)} and {jnp.shape(self.weights)}"
            )
        frame, weights = concrete_value(self.frame), concrete_value(self.weights)
        if frame is not None and weights is not None:
            if not (np.all(np.isfinite(frame)) and np.all(np.isfinite(weights))):
                raise ValueError("LowRankState contains NaN or inf")
            gram_error = np.max(np.abs(frame.conj().T @ frame - np.eye(frame.shape[1])))
            if gram_error > 1e-8:
                raise ValueError(f"LowRankState.frame columns are not orthonormal: max |U†U - 1| = {gram_error:.3g}")
            if np.any(weights <= 0) or abs(np.sum(weights) - 1) > 1e-8:
                raise ValueError(f"LowRankState.weights must be positive and sum to 1, got {weights}")

    @property
    def dim(self) -> int:
        return self.frame.shape[0]

    @property
    def rank(self) -> int:
        return self.frame.shape[1]

    @classmethod
    def from_density_matrix(cls, rho, tol: float = RANK_TOL) -> LowRankState:
        """Eigen-frame of a concrete (D, D) density matrix, keeping eigenvalues > tol (renormalised)."""
        eigenvalues, vectors = np.linalg.eigh(np.asarray(rho))
        keep = eigenvalues > tol
        weights = eigenvalues[keep] / np.sum(eigenvalues[keep])
        return cls(jnp.asarray(vectors[:, keep], dtype=complex), jnp.asarray(weights))

    def density_matrix(self) -> jax.Array:
        """ϱ (D, D); only for small D."""
        return (self.frame * self.weights) @ jnp.conj(self.frame.T)


def projector_reduction(equation: str, kappa, b=1.0):
    """(scale of H, κ') such that ϱ = a𝟙 + bP evolves as P under q-LLG with (scale·H, κ')."""
    kappa_eff = kappa * b
    if equation == "qllg":
        return 1.0, kappa_eff
    if equation == "qll":
        return 1.0 + kappa_eff**2, kappa_eff
    return 1.0, jnp.zeros_like(kappa_eff)


def select_method(method: str, rho0, equation: str, dim: int, batched: bool) -> str:
    """Resolve ``method="auto"`` from the form and (when concrete) spectrum of ``rho0``.

    Rules: a ket (or a rank-1 ϱ / LowRankState) → ``"exact"`` if D ≤ EXACT_MAX_DIM else ``"pure"``;
    two distinct eigenvalues (a𝟙 + bP) with D ≤ EXACT_MAX_DIM → ``"two_level"``; rank r ≤ D/4 →
    ``"low_rank"`` (q-LLG and von Neumann only); anything else (or a traced / batched ϱ) → ``"dense"``.
    """
    if method != "auto":
        return method
    pure_choice = "exact" if dim <= EXACT_MAX_DIM else "pure"
    if isinstance(rho0, LowRankState):
        if rho0.rank == 1:
            return pure_choice
        return "low_rank" if equation != "qll" else "dense"
    if rho0.ndim == 1 or (rho0.ndim >= 1 and rho0.shape[-1] != rho0.shape[-2]):
        return pure_choice
    value = concrete_value(rho0)
    if value is None or batched:
        return "dense"
    spectrum = np.linalg.eigvalsh(value)
    rank = int(np.sum(spectrum > RANK_TOL))
    levels = 1 + int(np.sum(np.diff(spectrum) > RANK_TOL))
    if rank == 1:
        return pure_choice
    if levels == 2 and dim <= EXACT_MAX_DIM:
        return "two_level"
    if rank <= LOW_RANK_MAX_FRACTION * dim and equation != "qll":
        return "low_rank"
    return "dense"


def top_eigenvector(rho) -> jax.Array:
    """The ket of a rank-1 density matrix (D, D) (batched: (..., D))."""
    _, vectors = jnp.linalg.eigh(rho)
    return vectors[..., :, -1]


def _matvec(H):
    """ψ ↦ Hψ for a SpinModel (matrix-free; local terms built once, outside the ODE loop) or a dense
    (D, D) array; ψ (D,) or (D, r)."""
    if isinstance(H, SpinModel):
        return functools.partial(apply_local_terms, H.dims, H.bonds, H.site_terms(), H.bond_terms())
    return lambda psi: H @ psi


def _record(apply_H, weights, config: SolverConfig, dim: int, key: str):
    keep_states = config.save_states and dim <= STATES_MAX_DIM
    dense_observables = bool(config.observables) and dim <= OBSERVABLES_MAX_DIM
    return lambda frame: frame_record(frame, weights, apply_H, config, key, keep_states, dense_observables)


def _no_steps(success=True):
    zero = jnp.zeros((), dtype=int)
    return {"num_steps": zero, "num_accepted_steps": zero, "num_rejected_steps": zero}, jnp.asarray(success)


@eqx.filter_jit
def run_pure(H, psi0, kappa, ts, config: SolverConfig):
    """Integrate the ket ψ (D,) with PureQLLG (H matrix-free if a SpinModel). Returns (ys, stats, success)."""
    apply_H = _matvec(H)
    scale, kappa_eff = projector_reduction(config.equation, kappa)
    field = PureQLLG(kappa_eff, phase_free=True)
    record = _record(apply_H, jnp.ones(1), config, psi0.shape[-1], "kets")
    return integrate(lambda psi: field(psi, lambda x: scale * apply_H(x)), psi0, ts, config, record, hermitian=False)


@eqx.filter_jit
def run_low_rank(H, frame0, weights, kappa, ts, config: SolverConfig):
    """Integrate the frame U (D, r) with FrameQLLG (ϱ = U diag(weights) U†). Returns (ys, stats, success)."""
    apply_H = _matvec(H)
    kappa_eff = kappa if config.equation == "qllg" else jnp.zeros_like(kappa)
    field = FrameQLLG(kappa_eff, weights, config.gauge_fix)
    record = _record(apply_H, weights, config, frame0.shape[0], "frames")
    return integrate(lambda u: field(u, apply_H), frame0, ts, config, record, hermitian=False)


@eqx.filter_jit
def run_exact(H, psi0, kappa, ts, config: SolverConfig):
    """Kets from paper eq. 28 (dense H (D, D)); no time stepping (stats are zero)."""
    scale, kappa_eff = projector_reduction(config.equation, kappa)
    kets = pure_state_exact(scale * H, psi0, ts, kappa_eff)
    ys = jax.vmap(_record(_matvec(H), jnp.ones(1), config, H.shape[-1], "kets"))(kets)
    return (ys, *_no_steps())


def run_two_level(H, rho0, kappa, ts, config: SolverConfig):
    """ϱ(t) = a𝟙 + bP(t) in closed form (dense H (D, D), concrete ϱ0 (D, D)); no time stepping."""
    a, b, W0 = two_level_split(rho0, tol=RANK_TOL)
    return _run_projector(H, jnp.asarray(a), jnp.asarray(b), W0, kappa, ts, config)


@eqx.filter_jit
def _run_projector(H, a, b, W0, kappa, ts, config: SolverConfig):
    scale, kappa_eff = projector_reduction(config.equation, kappa, b)
    states = a * jnp.eye(H.shape[-1]) + b * projector_exact(scale * H, W0, ts, kappa_eff)
    ys = jax.vmap(lambda rho: dense_record(rho, H, config))(states)
    return (ys, *_no_steps())
