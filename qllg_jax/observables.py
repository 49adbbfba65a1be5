r"""Observables of density matrices ϱ (..., D, D); all functions broadcast over leading batch axes.

Bloch vectors and correlation matrices follow the paper: r_k = Tr(ϱ_k σ), T_kl = Tr(ϱ σ_k⊗σ_l),
B(ϱ) = sqrt(max(u1 + u2 − 1, 0)) with u1 ≥ u2 the two largest eigenvalues of TᵀT (Horodecki CHSH measure).

Checks (concrete inputs; under ``jax.jit``/``vmap`` only shapes): every ϱ square and finite; functions built on
eigenvalues or on Tr ϱ² = Σ|ϱ_ij|² (``purity``, ``spectrum``, the entropies, ``concurrence``, ``passive_*``)
also need ϱ Hermitian, and the entropies and ``concurrence`` a density matrix (eigenvalues ≥ −1e-6, trace
1 ± 1e-6; :data:`qllg_jax._checks.TOL` ``.observable``). Each observable allocates at most a few arrays of
the size of its input, so none needs a size guard of its own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import (
    as_array,
    check_dims,
    check_hamiltonian,
    check_probabilities,
    check_spins,
    check_square,
    check_state,
    concrete_value,
    hermitian_matrix,
    real_scalar,
    safe_ndim,
)
from .operators import _spin_matrices_np, spin_dim, spin_matrices


def expectation(rho: jax.Array, op: jax.Array) -> jax.Array:
    """Re Tr(ϱ A) for ϱ (..., D, D) and Hermitian A (D, D); shape (...,)."""
    rho = check_state(rho, "rho")
    op = as_array(op, "op")
    check_square(op, "op", rho.shape[-1])
    return jnp.real(jnp.einsum("...ij,ji->...", rho, op))


def energy(rho: jax.Array, H: jax.Array) -> jax.Array:
    """Tr(ϱ H) in energy units for ϱ (..., D, D), H (D, D); shape (...,)."""
    return expectation(rho, H)


def trace(rho: jax.Array) -> jax.Array:
    """Re Tr ϱ for ϱ (..., D, D); shape (...,)."""
    rho = check_state(rho, "rho")
    return jnp.real(jnp.trace(rho, axis1=-2, axis2=-1))


def purity(rho: jax.Array) -> jax.Array:
    """Tr ϱ² (= Σ|ϱ_ij|² for Hermitian ϱ (..., D, D)); shape (...,)."""
    rho = hermitian_matrix(rho, "rho", "purity")
    return jnp.sum(jnp.abs(rho) ** 2, axis=(-2, -1))


def hermiticity_error(rho: jax.Array) -> jax.Array:
    """max |ϱ − ϱ†| for ϱ (..., D, D); shape (...,)."""
    rho = check_state(rho, "rho")
    return jnp.max(jnp.abs(rho - jnp.conj(jnp.swapaxes(rho, -1, -2))), axis=(-2, -1))


def spectrum(rho: jax.Array) -> jax.Array:
    """Eigenvalues of Hermitian ϱ (..., D, D) in ascending order; shape (..., D). A concrete non-Hermitian
    ϱ raises ValueError (``eigvalsh`` would silently read one triangle only)."""
    rho = hermitian_matrix(rho, "rho", "spectrum")
    return eigvalsh(rho)


@jax.custom_jvp
def eigvalsh(a: jax.Array) -> jax.Array:
    """Eigenvalues (ascending) of Hermitian a (..., n, n), shape (..., n), with a first-order-perturbation JVP.

    The tangent is dλ_i = Re(V† dA V)_ii, computed without the eigenvector derivative (whose 1/(λ_i − λ_j)
    factors make plain ``jnp.linalg.eigvalsh`` gradients NaN at repeated eigenvalues). Exact for simple
    eigenvalues; at a repeated eigenvalue, where λ_i(A) is not differentiable, it is finite and equals the
    derivative of the eigenvalue path along the basis ``eigh`` returns (a one-sided directional derivative).
    """
    return jnp.linalg.eigvalsh(a)


@eigvalsh.defjvp
def _eigvalsh_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    w, v = jnp.linalg.eigh(a)
    return w, jnp.real(jnp.einsum("...ji,...jk,...ki->...i", jnp.conj(v), da, v))


def renyi_entropy(rho: jax.Array, alpha: float = 2.0) -> jax.Array:
    """Rényi entropy S_α = ln Tr ϱ^α / (1 − α) (nats) of a density matrix ϱ (..., D, D); shape (...,).

    ``alpha``: a real scalar, finite, > 0 and ≠ 1 (von_neumann_entropy is the limit α → 1); a traced α
    (e.g. ``jax.grad`` with respect to it) is only checked to be a real scalar.
    """
    alpha = real_scalar(alpha, "alpha")
    value = concrete_value(alpha)
    if value is not None and not (np.isfinite(value) and value > 0 and value != 1):
        raise ValueError(f"alpha (the Renyi order) must be finite, > 0 and != 1, got {float(value)}; "
                         "use von_neumann_entropy for alpha = 1")
    p = jnp.clip(check_probabilities(spectrum(rho), "rho", "renyi_entropy"), 0.0, None)
    return jnp.log(jnp.sum(p**alpha, axis=-1)) / (1 - alpha)


def von_neumann_entropy(rho: jax.Array) -> jax.Array:
    """S = −Tr ϱ ln ϱ (nats) for a density matrix ϱ (..., D, D); shape (...,)."""
    return _entropy(check_probabilities(spectrum(rho), "rho", "von_neumann_entropy"))


@jax.jit
def _entropy(p):
    """−Σ p ln p over the last axis (0 ln 0 = 0); one program (eagerly, each op would compile its own)."""
    p = jnp.clip(p, 0.0, None)
    safe = jnp.where(p > 0, p, 1.0)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(safe), 0.0), axis=-1)


def partial_trace(rho: jax.Array, dims: Sequence[int], keep: Sequence[int]) -> jax.Array:
    """Reduced density matrix on the sites ``keep`` (in increasing order); shape (..., Π d_keep, Π d_keep)."""
    rho = check_state(rho, "rho")
    dims = check_dims(dims)
    n = len(dims)
    if isinstance(keep, (str, bytes)) or safe_ndim(keep) != 1 or not all(
        isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)) for k in keep
    ):
        raise ValueError(f"keep must be a sequence of integer site indices, got {keep!r}")
    keep = sorted(int(k) for k in keep)
    if not keep or len(set(keep)) != len(keep) or not all(0 <= k < n for k in keep):
        raise ValueError(f"keep must list distinct sites in [0, {n}), got {keep}")
    if math.prod(dims) != rho.shape[-1]:
        raise ValueError(f"dims {dims} do not multiply to the state dimension {rho.shape[-1]}")
    batch = rho.shape[:-2]
    tensor = rho.reshape(batch + dims + dims)
    nb = len(batch)
    for offset, site in enumerate(sorted(set(range(n)) - set(keep), reverse=True)):
        remaining = n - offset
        tensor = jnp.trace(tensor, axis1=nb + site, axis2=nb + remaining + site)
    d_keep = math.prod(dims[k] for k in keep)
    return tensor.reshape(batch + (d_keep, d_keep))


def spin_expectations(rho: jax.Array, spins: Sequence[float]) -> jax.Array:
    """⟨S_k⟩ for every site k (ħ = 1) of ϱ (..., D, D), D = Π(2s_k + 1); shape (..., N, 3)."""
    return _spin_expectations(check_state(rho, "rho"), check_spins(spins))


@functools.partial(jax.jit, static_argnums=1)
def _spin_expectations(rho, spins):
    """:func:`spin_expectations` after its checks, as one program per (shape, spins)."""
    dims = tuple(spin_dim(s) for s in spins)
    out = []
    for k, s in enumerate(spins):
        reduced = partial_trace(rho, dims, [k])
        out.append(jnp.real(jnp.einsum("...ij,aji->...a", reduced, spin_matrices(s))))
    return jnp.stack(out, axis=-2)


def bloch_vectors(rho: jax.Array, spins: Sequence[float] | None = None) -> jax.Array:
    """Normalised spin vectors ⟨S_k⟩/s_k, i.e. Bloch vectors r_k = Tr(ϱ_k σ) for spin 1/2; shape (..., N, 3).

    ``spins`` defaults to all spin-1/2 (N = log2 D). ϱ: (..., D, D).
    """
    rho = check_state(rho, "rho")
    if spins is None:
        n = round(math.log2(rho.shape[-1]))
        if 2**n != rho.shape[-1]:
            raise ValueError(f"dimension {rho.shape[-1]} is not a power of 2; pass spins=")
        spins = [0.5] * n
    return spin_expectations(rho, spins) / np.asarray(spins, dtype=float)[:, None]  # spins checked by the call


def _two_qubit_check(rho, what: str):
    rho = hermitian_matrix(rho, "rho", what)
    if rho.shape[-2:] != (4, 4):
        raise ValueError(f"rho: this observable needs a two-qubit state of shape (..., 4, 4), got {rho.shape}")
    return rho


def correlation_matrix(rho: jax.Array) -> jax.Array:
    """Two-qubit correlation matrix T_kl = Tr(ϱ σ_k⊗σ_l) for ϱ (..., 4, 4); shape (..., 3, 3)."""
    rho = _two_qubit_check(rho, "correlation_matrix")
    sigma = 2 * _spin_matrices_np(0.5)
    pairs = np.einsum("aij,bkl->abikjl", sigma, sigma).reshape(3, 3, 4, 4)
    return _correlations(rho, pairs)


@jax.jit
def _correlations(rho, pairs):
    return jnp.real(jnp.einsum("...ij,abji->...ab", rho, pairs))


BELL_ROUND_OFF = 1e-14
"""u1 + u2 − 1 at or below this is round-off (u1 + u2 ≤ 2, float64): :func:`bell_nonlocality` returns 0 there, so
B < 1e-7 is reported as 0."""


def bell_nonlocality(rho: jax.Array) -> jax.Array:
    """B(ϱ) = sqrt(max(u1 + u2 − 1, 0)), u1 ≥ u2 the largest eigenvalues of TᵀT; in [0, 1].

    ϱ: two-qubit state (..., 4, 4); returns shape (...,).

    u1 + u2 − 1 ≤ :data:`BELL_ROUND_OFF` counts as 0: the eigenvalues carry round-off of that size, and √ would
    turn it into B ~ 1e-8 for product states (measured: 29 of 64 random product states).

    Gradients are finite everywhere: exact where u2 > u3 and B > 0 (B is smooth there); at u2 = u3 (e.g.
    Werner states, TᵀT ∝ 𝟙) u1 + u2 has only one-sided derivatives and the value returned is that of
    :func:`eigvalsh`; at B = 0 (where √ has an infinite slope) the gradient is set to 0.
    """
    return _bell_from_correlations(correlation_matrix(rho))


@jax.jit
def _bell_from_correlations(t):
    u = eigvalsh(jnp.swapaxes(t, -1, -2) @ t)
    excess = u[..., -1] + u[..., -2] - 1
    positive = excess > BELL_ROUND_OFF
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, excess, 1.0)), 0.0)


def concurrence(rho: jax.Array) -> jax.Array:
    """Wootters concurrence of a two-qubit state ϱ (..., 4, 4); shape (...,).

    C = max(0, μ1 − μ2 − μ3 − μ4), μ_i the decreasing eigenvalues of sqrt(√ϱ ϱ̃ √ϱ), ϱ̃ = σ_y⊗σ_y ϱ* σ_y⊗σ_y.

    Gradients are finite at degenerate spectra of ϱ (Werner states): √ϱ is differentiated by the Daleckii–Krein
    formula, not through eigh's eigenvectors. Inside the kernel of a rank-deficient ϱ (e.g. pure states) √ has no finite
    slope: that block of the derivative is set to 0.
    """
    rho = _two_qubit_check(rho, "concurrence")
    check_probabilities(eigvalsh(rho), "rho", "concurrence")
    return _concurrence(rho)


@jax.jit
def _concurrence(rho):
    sy = 2 * _spin_matrices_np(0.5)[1]
    yy = np.kron(sy, sy)
    tilde = yy @ jnp.conj(rho) @ yy
    root = _psd_sqrt(rho)
    mu = jnp.sqrt(jnp.clip(eigvalsh(root @ tilde @ root), 0.0, None))
    return jnp.maximum(0.0, mu[..., 3] - mu[..., 2] - mu[..., 1] - mu[..., 0])


@jax.custom_jvp
def _psd_sqrt(rho):
    """√ϱ = V diag(√λ) V† of a positive semi-definite ϱ (..., d, d) (negative round-off eigenvalues clipped)."""
    p, v = jnp.linalg.eigh(rho)
    return (v * jnp.sqrt(jnp.clip(p, 0.0, None))[..., None, :]) @ jnp.conj(jnp.swapaxes(v, -1, -2))


@_psd_sqrt.defjvp
def _psd_sqrt_jvp(primals, tangents):
    r"""Daleckii–Krein: d√ϱ = V (F ⊙ V†dϱV) V† with F_ij = (√λ_i − √λ_j)/(λ_i − λ_j) = 1/(√λ_i + √λ_j) — finite at
    degenerate spectra (e.g. Werner states), where the derivative of eigh's vectors is not; F = 0 where
    λ_i = λ_j = 0 (√ has no finite slope there)."""
    (rho,), (drho,) = primals, tangents
    p, v = jnp.linalg.eigh(rho)
    roots = jnp.sqrt(jnp.clip(p, 0.0, None))
    vh = jnp.conj(jnp.swapaxes(v, -1, -2))
    total = roots[..., :, None] + roots[..., None, :]
    factor = jnp.where(total > 0, 1 / jnp.where(total > 0, total, 1.0), 0.0)
    return (v * roots[..., None, :]) @ vh, v @ (factor * (vh @ drho @ v)) @ vh


def passive_energy(rho: jax.Array, H: jax.Array) -> jax.Array:
    """Lowest energy Σ_i λ_i↓ E_i↑ reachable at ϱ's spectrum (the passive state's energy), energy units.

    ϱ: (..., D, D); H: Hermitian (D, D); returns shape (...,).
    """
    rho, H = hermitian_matrix(rho, "rho", "passive_energy"), check_hamiltonian(H, "H")
    check_square(H, "H", rho.shape[-1])
    p = eigvalsh(rho)[..., ::-1]
    return jnp.sum(p * eigvalsh(H), axis=-1)


def passive_state(rho: jax.Array, H: jax.Array) -> jax.Array:
    """The passive state Σ_i λ_i↓ |E_i↑⟩⟨E_i↑| (lowest energy with ϱ's spectrum): q-LLG's generic long-time limit.

    ϱ: (..., D, D); H: Hermitian (D, D); returns (..., D, D).
    """
    rho, H = hermitian_matrix(rho, "rho", "passive_state"), check_hamiltonian(H, "H")
    check_square(H, "H", rho.shape[-1])
    p = eigvalsh(rho)[..., ::-1]
    _, vectors = jnp.linalg.eigh(H)
    return (vectors * p[..., None, :]) @ jnp.conj(jnp.swapaxes(vectors, -1, -2))
