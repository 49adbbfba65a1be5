"""Initial states: spin-coherent products, |+s⟩⊗|−s⟩, Bell, Werner, thermal and seeded random states.

Kets have shape (D,), density matrices (D, D); basis conventions as in :mod:`qllg_jax.operators`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

import math

from ._arrays import device_array
from ._checks import (
    as_array,
    check_density_matrix,
    check_ket,
    check_positive,
    check_spin,
    check_spins,
    concrete_value,
    prng_key,
    real_array,
)
from ._guards import check_bytes, dense_bytes
from .hamiltonians import as_matrix
from .operators import MATRIX_FREE_HINT, spin_dim, spin_matrices

KET_BYTES = 16  # one complex128 amplitude


def _check_ket_size(dim: int, what: str, copies: int = 2) -> None:
    """Refuse a ket of dimension ``dim`` (``copies`` complex vectors of it in flight) above the memory limit."""
    check_bytes(copies * KET_BYTES * dim, f"{what} (a ket of dimension D = {dim})",
                "fewer or smaller spins; matrix-free solves still need one D-vector per saved state")

BELL_STATES = ("phi+", "phi-", "psi+", "psi-")


def basis_state(s: float, m: float) -> jax.Array:
    """|s, m⟩ with m ∈ {s, s−1, …, −s}; shape (2s+1,)."""
    s = check_spin(s)
    d = spin_dim(s)
    m = real_array(m, "m")
    if m.shape != ():
        raise ValueError(f"m must be a scalar projection quantum number, got shape {m.shape}")
    m = float(m)
    _check_ket_size(d, f"basis_state(s = {s:g})", copies=1)
    index = s - m
    if abs(index - round(index)) > 1e-12 or not 0 <= round(index) < d:
        raise ValueError(f"m = {m} is not a projection of spin {s}")
    ket = np.zeros(d, dtype=complex)
    ket[round(index)] = 1.0
    return device_array(ket)


def coherent_state(s: float, direction) -> jax.Array:
    """Spin-coherent state |n⟩ = e^{−iφS_z} e^{−iθS_y}|s, s⟩ with ⟨S⟩ = s n; ``direction`` (3,), any length > 0."""
    n = real_array(direction, "direction")
    value = concrete_value(n)  # a traced direction (differentiating w.r.t. angles) is only shape-checked
    if n.shape != (3,) or (value is not None and (not np.all(np.isfinite(value)) or float(np.linalg.norm(value)) == 0)):
        raise ValueError(f"direction must be a non-zero 3-vector, got {direction!r}")
    return _coherent_state(check_spin(s), n)


@functools.partial(jax.jit, static_argnums=0)
def _coherent_state(s: float, n: jax.Array) -> jax.Array:
    n = n / jnp.linalg.norm(n)
    theta, phi = jnp.arccos(jnp.clip(n[2], -1, 1)), jnp.arctan2(n[1], n[0])
    sx, sy, sz = spin_matrices(s)
    rotation = jax.scipy.linalg.expm(-1j * phi * sz) @ jax.scipy.linalg.expm(-1j * theta * sy)
    return rotation @ basis_state(s, s)


def product_state(kets: Sequence) -> jax.Array:
    """Kronecker product of normalised one-site kets (each (d_k,); site 0 leftmost); shape (Π d_k,).

    Raises SizeError before the product is formed when the ket (Π d_k complex numbers, two copies in flight)
    would exceed the memory limit.
    """
    if isinstance(kets, (str, bytes)) or not hasattr(kets, "__len__") or len(kets) == 0:
        raise ValueError(f"kets must list at least one one-site ket (a non-empty sequence), got {type(kets).__name__}")
    checked = []
    for k, ket in enumerate(kets):
        ket = check_ket(ket, f"kets[{k}]")
        if ket.ndim != 1:
            raise ValueError(f"kets[{k}] must be a vector (d,), got shape {ket.shape}")
        checked.append(ket)
    _check_ket_size(math.prod(int(ket.shape[0]) for ket in checked), f"product_state of {len(checked)} kets")
    values = [concrete_value(ket) for ket in checked]
    if all(v is not None for v in values):  # numpy: no per-site eager kernels to compile
        out = np.ones(1, dtype=complex)
        for value in values:
            out = np.kron(out, value)
        return device_array(out)
    out = jnp.ones(1, dtype=complex)
    for ket in checked:
        out = jnp.kron(out, ket)
    return out


def coherent_product_state(spins: Sequence[float], directions) -> jax.Array:
    """⊗_k |n_k⟩ for spins s_k (length N) along ``directions`` of shape (N, 3); shape (Π(2s_k + 1),).

    The size guard (SizeError) runs before any one-site state is built.
    """
    spins = check_spins(spins)
    directions = real_array(directions, "directions")
    if directions.shape != (len(spins), 3):
        raise ValueError(f"directions must have shape ({len(spins)}, 3), got {directions.shape}")
    _check_ket_size(math.prod(spin_dim(s) for s in spins), f"coherent_product_state of {len(spins)} spins")
    return product_state([coherent_state(s, n) for s, n in zip(spins, directions)])


def up_down_state(s: float = 0.5) -> jax.Array:
    """|+s⟩⊗|−s⟩ (|↑↓⟩ for s = 1/2), the paper's AFM-type product state; shape ((2s+1)²,)."""
    return product_state([basis_state(s, s), basis_state(s, -s)])


def bell_state(name: str) -> jax.Array:
    """Bell kets: 'phi+' = (|↑↑⟩+|↓↓⟩)/√2, 'phi-', 'psi+' = (|↑↓⟩+|↓↑⟩)/√2, 'psi-'; shape (4,)."""
    vectors = {
        "phi+": [1, 0, 0, 1],
        "phi-": [1, 0, 0, -1],
        "psi+": [0, 1, 1, 0],
        "psi-": [0, 1, -1, 0],
    }
    if name not in vectors:
        raise ValueError(f"unknown Bell state {name!r}; choose one of {list(vectors)}")
    return device_array(vectors[name], dtype=complex) / np.sqrt(2)


def density_matrix(psi, name: str = "psi") -> jax.Array:
    """|ψ⟩⟨ψ| for a ket (..., D) (validated: finite, normalised); shape (..., D, D).

    Raises SizeError when the (..., D, D) result would exceed the memory limit (a ket of 2^20 amplitudes
    is 16 MiB, its density matrix 16 TiB): keep the ket and use ``solve(..., method='ket')``.
    """
    psi = check_ket(psi, name)
    check_bytes(dense_bytes(psi.shape[-1], count=math.prod(psi.shape[:-1])),
                f"density_matrix of a ket of dimension D = {psi.shape[-1]}",
                "keep the ket: solve(H, psi, ts, method='ket') and the ket observables never form |psi><psi|")
    return _outer(psi)


@jax.jit
def _outer(psi):
    return psi[..., :, None] * jnp.conj(psi[..., None, :])


def werner_state(bell: str | jax.Array, p: float) -> jax.Array:
    """Werner state (1−p)/4 𝟙 + p |ψ⟩⟨ψ|, shape (4, 4), on a Bell state (name or ket (4,)); −1/3 ≤ p ≤ 1."""
    p_value = concrete_value(p)  # a traced p (jax.grad/jit/vmap over p) is not range-checked
    if p_value is not None and (np.ndim(p_value) != 0 or not -1 / 3 <= float(p_value) <= 1):
        raise ValueError(f"Werner mixing p must be a scalar in [-1/3, 1], got {p}")
    ket = bell_state(bell) if isinstance(bell, str) else check_ket(bell, "bell", 4)
    if ket.shape != (4,):
        raise ValueError(f"bell must be a Bell state name or a two-qubit ket (4,), got shape {ket.shape}")
    return _werner(ket, device_array(p, dtype=float))


@jax.jit
def _werner(ket: jax.Array, p: jax.Array) -> jax.Array:
    return (1 - p) / 4 * jnp.eye(4, dtype=complex) + p * ket[:, None] * jnp.conj(ket[None, :])


def thermal_state(H, beta: float) -> jax.Array:
    """Gibbs state e^{−βH}/Z, shape (D, D), for a Hermitian (D, D) ``H`` (array, ``Qobj`` or
    :class:`SpinModel`) at inverse temperature β ≥ 0 (energy units⁻¹).

    Raises SizeError when the eigenvectors, temporaries and the result (4 complex D × D arrays besides H;
    measured 3.4 at D = 4096) would exceed the memory limit.
    """
    beta = check_positive(beta, "beta", allow_zero=True)
    H = as_matrix(H, "H")
    if H.ndim != 2:
        raise ValueError(f"H must be one (D, D) matrix, got shape {H.shape}")
    check_bytes(dense_bytes(H.shape[-1], count=4), f"thermal_state for D = {H.shape[-1]}", MATRIX_FREE_HINT)
    return _thermal(H, beta)


@jax.jit
def _thermal(H: jax.Array, beta) -> jax.Array:
    energies, vectors = jnp.linalg.eigh(H)
    weights = jnp.exp(-beta * (energies - energies[0]))
    weights = weights / jnp.sum(weights)
    return (vectors * weights) @ jnp.conj(vectors.T)


def random_ket(key: jax.Array, dim: int) -> jax.Array:
    """Haar-random normalised ket of shape (dim,) from a ``jax.random`` key (or an integer seed, converted
    with ``jax.random.PRNGKey``). SizeError above the memory limit."""
    key = prng_key(key)
    dim = check_positive(dim, "dim", integer=True)
    _check_ket_size(dim, "random_ket", copies=3)
    return _random_ket(key, dim)


@functools.partial(jax.jit, static_argnums=1)
def _random_ket(key, dim: int) -> jax.Array:
    re, im = jax.random.normal(key, (2, dim))
    psi = re + 1j * im
    return psi / jnp.linalg.norm(psi)


def random_density_matrix(key: jax.Array, dim: int, rank: int | None = None) -> jax.Array:
    """Random mixed state G G†/Tr with G of shape (dim, rank) complex Gaussian (Hilbert–Schmidt for rank = dim).

    ``key``: a ``jax.random`` key or an integer seed (converted with ``jax.random.PRNGKey``). SizeError when
    G, its Gaussian draws and two (dim, dim) matrices (measured 3.3 complex (dim, dim) arrays for rank = dim)
    would exceed the memory limit.
    """
    key = prng_key(key)
    dim = check_positive(dim, "dim", integer=True)
    rank = dim if rank is None else check_positive(rank, "rank", integer=True)
    if not 1 <= rank <= dim:
        raise ValueError(f"rank must lie in [1, {dim}], got {rank}")
    check_bytes(KET_BYTES * (2 * dim * rank + 2 * dim * dim), f"random_density_matrix(dim = {dim}, rank = {rank})",
                "a pure state (random_ket) needs only O(dim) memory")
    return _random_density_matrix(key, dim, rank)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_density_matrix(key, dim: int, rank: int) -> jax.Array:
    re, im = jax.random.normal(key, (2, dim, rank))
    g = re + 1j * im
    rho = g @ jnp.conj(g.T)
    return rho / jnp.trace(rho)


def random_hamiltonian(key: jax.Array, dim: int) -> jax.Array:
    """Random Hermitian (GUE-like) matrix of shape (dim, dim), entries of order 1.

    ``key``: a ``jax.random`` key or an integer seed. SizeError when the draws, the result and a temporary
    (4 complex (dim, dim) arrays; measured 3.2) would exceed the memory limit.
    """
    key = prng_key(key)
    dim = check_positive(dim, "dim", integer=True)
    check_bytes(dense_bytes(dim, count=4), f"random_hamiltonian(dim = {dim})", MATRIX_FREE_HINT)
    return _random_hamiltonian(key, dim)


@functools.partial(jax.jit, static_argnums=1)
def _random_hamiltonian(key, dim: int) -> jax.Array:
    re, im = jax.random.normal(key, (2, dim, dim))
    a = re + 1j * im
    return (a + jnp.conj(a.T)) / 2


def state_from_spectrum(eigenvalues, basis) -> jax.Array:
    """ϱ = Σ_i λ_i |v_i⟩⟨v_i| from eigenvalues (D,) and orthonormal columns ``basis`` (D, D); validated."""
    basis = as_array(basis, "basis").astype(complex)
    rho = (basis * device_array(eigenvalues)) @ jnp.conj(basis.T)
    return check_density_matrix(rho, "rho")


def validate_state(rho, dim: int | None = None) -> jax.Array:
    """Check a density matrix (Hermitian, unit trace, PSD, finite, right shape); ValueError naming the problem."""
    return check_density_matrix(rho, "rho", dim)
