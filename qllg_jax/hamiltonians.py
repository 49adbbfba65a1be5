r"""Spin Hamiltonians built from physical terms, usable densely or matrix-free.

A :class:`SpinModel` holds the parameters of

.. math::

    H = -\sum_k \mathbf b_k\cdot\mathbf S_k \;-\; \sum_k K_k (\mathbf n_k\cdot\mathbf S_k)^2
        \;+\; \sum_{(i,j)} \Big[J_{ij}\,\mathbf S_i\cdot\mathbf S_j
        + \mathbf D_{ij}\cdot(\mathbf S_i\times\mathbf S_j) + \mathbf S_i^{\mathsf T}\Gamma_{ij}\mathbf S_j\Big]

with spin operators S (ħ = 1), energies in the unit E0 (see :mod:`qllg_jax.units`). The same object gives
the dense matrix (:meth:`SpinModel.matrix`), matrix-free application to states (:meth:`SpinModel.apply`,
never forming the D×D matrix) and the classical energy of unit vectors (:meth:`SpinModel.classical_energy`,
S_k → s_k m_k), so quantum and classical runs of one system come from one object.
All parameters are JAX arrays: differentiable and vmappable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import (
    check_bonds,
    check_finite,
    check_hamiltonian,
    check_positive,
    check_spin,
    check_spins,
    concrete_value,
    real_array,
)
from ._arrays import device_array, is_concrete
from ._guards import check_bytes, dense_bytes
from .operators import MATRIX_FREE_HINT, _spin_matrices_np, site_dims

REAL_PARAMETER_HINT = "H is Hermitian only for real b, J, D, Γ, K and n (a complex Γ makes S_i^T Γ S_j non-Hermitian)"

_LEVI_CIVITA = np.zeros((3, 3, 3))
for _a, _b, _c in [(0, 1, 2), (1, 2, 0), (2, 0, 1)]:
    _LEVI_CIVITA[_a, _b, _c], _LEVI_CIVITA[_a, _c, _b] = 1.0, -1.0


class SpinModel(eqx.Module):
    """Parameters of a spin Hamiltonian on N sites (see the module docstring for H).

    Attributes:
        spins: spin quantum number of each site (static), e.g. ``(0.5, 0.5)``.
        bonds: pairs of sites (i, j) carrying two-site terms (static), shape (nb, 2).
        field: Zeeman coefficients b_k, shape (N, 3), energy units (H_Z = −Σ b_k·S_k).
        exchange: isotropic exchange J per bond, shape (nb,).
        dmi: Dzyaloshinskii–Moriya vectors D per bond, shape (nb, 3).
        anisotropic_exchange: symmetric/anisotropic tensors Γ per bond, shape (nb, 3, 3).
        anisotropy: single-ion constants K per site, shape (N,) (K > 0: easy axis).
        anisotropy_axis: unit axes n_k, shape (N, 3).
    """

    spins: tuple[float, ...] = eqx.field(static=True)
    bonds: tuple[tuple[int, int], ...] = eqx.field(static=True)
    field: jax.Array
    exchange: jax.Array
    dmi: jax.Array
    anisotropic_exchange: jax.Array
    anisotropy: jax.Array
    anisotropy_axis: jax.Array

    def __check_init__(self):
        n, nb = len(self.spins), len(self.bonds)
        shapes = {
            "field": (self.field, (n, 3)),
            "exchange": (self.exchange, (nb,)),
            "dmi": (self.dmi, (nb, 3)),
            "anisotropic_exchange": (self.anisotropic_exchange, (nb, 3, 3)),
            "anisotropy": (self.anisotropy, (n,)),
            "anisotropy_axis": (self.anisotropy_axis, (n, 3)),
        }
        for name, (value, shape) in shapes.items():
            real_array(value, f"SpinModel.{name}", REAL_PARAMETER_HINT)  # dtype only for a traced value
            if len(jnp.shape(value)) < len(shape) or jnp.shape(value)[len(jnp.shape(value)) - len(shape) :] != shape:
                raise ValueError(f"SpinModel.{name} must have shape {shape} (trailing), got {jnp.shape(value)}")
            concrete = concrete_value(value)
            if concrete is not None and not np.all(np.isfinite(concrete)):
                raise ValueError(f"SpinModel.{name} contains NaN or inf")
        for i, j in self.bonds:
            if not (0 <= i < n and 0 <= j < n) or i == j:
                raise ValueError(f"bond ({i}, {j}) is invalid for {n} sites (need 0 <= i != j < {n})")

    @property
    def n_sites(self) -> int:
        return len(self.spins)

    @property
    def dims(self) -> tuple[int, ...]:
        return site_dims(self.spins)

    @property
    def dim(self) -> int:
        """Total Hilbert-space dimension D = Π (2s_k + 1)."""
        return math.prod(self.dims)

    def _numpy(self) -> bool:
        """Whether the model's arrays are concrete: its local terms are then built with numpy on the host (a few
        small arrays; eagerly, each jnp op would compile a kernel of its own on first use)."""
        return is_concrete(self)

    def bond_couplings(self) -> jax.Array:
        """Coupling matrices C_b with two-site term S_i^T C_b S_j; shape (nb, 3, 3) (numpy for a concrete model)."""
        xp = np if self._numpy() else jnp
        dmi = xp.einsum("abc,na->nbc", _LEVI_CIVITA, xp.asarray(self.dmi))
        return xp.asarray(self.exchange)[:, None, None] * np.eye(3) + dmi + xp.asarray(self.anisotropic_exchange)

    def site_terms(self) -> list[jax.Array]:
        """One-site operators h_k = −b_k·S − K_k (n_k·S)², a list of (d_k, d_k) arrays (numpy for a concrete model)."""
        xp = np if self._numpy() else jnp
        field, anisotropy, axis = (xp.asarray(a) for a in (self.field, self.anisotropy, self.anisotropy_axis))
        terms = []
        for k, s in enumerate(self.spins):
            spin = _spin_matrices_np(s)
            n_dot_s = xp.einsum("a,aij->ij", axis[k], spin)
            terms.append(-xp.einsum("a,aij->ij", field[k], spin) - anisotropy[k] * n_dot_s @ n_dot_s)
        return terms

    def bond_terms(self) -> list[jax.Array]:
        """Two-site operators Σ_ab C_ab S^a ⊗ S^b, a list of (d_i d_j, d_i d_j) arrays (numpy for a concrete model)."""
        xp = np if self._numpy() else jnp
        terms = []
        for (i, j), coupling in zip(self.bonds, self.bond_couplings()):
            si, sj = _spin_matrices_np(self.spins[i]), _spin_matrices_np(self.spins[j])
            terms.append(xp.einsum("ab,aij,bkl->ikjl", coupling, si, sj).reshape(si.shape[1] * sj.shape[1], -1))
        return terms

    def apply(self, psi: jax.Array) -> jax.Array:
        """Matrix-free H·ψ for ψ of shape (D,) or (D, r); never forms the D×D matrix.

        Cost O(D·r·Σ_terms d_term); memory O(D·r).
        """
        dims = self.dims
        psi = device_array(psi)
        if psi.shape[0] != self.dim:
            raise ValueError(f"state of leading dimension {psi.shape[0]} does not fit a model of dimension {self.dim}")
        return _apply_local_terms(dims, self.bonds, self.site_terms(), self.bond_terms(), psi)

    def matrix(self) -> jax.Array:
        """Dense Hamiltonian, complex array of shape (D, D).

        Raises SizeError (before allocating) when the peak memory, 8 complex D × D arrays (the identity it is
        applied to, the result and XLA temporaries; measured 7.8 at D = 4096 on CPU), would exceed the memory
        limit (:func:`qllg_jax.set_memory_limit`).
        """
        dim = self.dim
        check_bytes(dense_bytes(dim, count=8), f"SpinModel.matrix() for D = {dim} ({self.n_sites} sites)", MATRIX_FREE_HINT)
        return _dense_matrix(self)

    def classical_energy(self, m: jax.Array) -> jax.Array:
        """Classical energy with S_k → s_k m_k for unit vectors ``m`` of shape (N, 3).

        For s = 1/2 single-ion anisotropy is a constant in the quantum model and is dropped here too.
        Returns a scalar in energy units.
        """
        return _classical_energy(self, self._unit_vectors(m))

    def classical_field(self, m: jax.Array) -> jax.Array:
        """Effective field b_eff,k = −(1/s_k) ∂E/∂m_k, shape (N, 3); the classical LLG precesses m_k about it."""
        return _classical_field(self, self._unit_vectors(m))

    def _unit_vectors(self, m):
        m = device_array(m)
        if m.shape != (self.n_sites, 3):
            raise ValueError(f"m must have shape ({self.n_sites}, 3) (one vector per site), got {m.shape}")
        return m


def _classical_energy_of(model: SpinModel, m) -> jax.Array:
    s = np.asarray(model.spins)
    spin = s[:, None] * m
    zeeman = -jnp.sum(model.field * spin)
    weight = np.where(s > 0.5, 1.0, 0.0)
    anisotropy = -jnp.sum(weight * model.anisotropy * jnp.sum(model.anisotropy_axis * spin, axis=-1) ** 2)
    if not model.bonds:
        return zeeman + anisotropy
    idx = np.asarray(model.bonds)
    pair = jnp.einsum("na,nab,nb->", spin[idx[:, 0]], model.bond_couplings(), spin[idx[:, 1]])
    return zeeman + anisotropy + pair


_classical_energy = eqx.filter_jit(_classical_energy_of)
"""One program per model structure for an eager call (inlined inside an enclosing trace)."""


@eqx.filter_jit
def _classical_field(model: SpinModel, m) -> jax.Array:
    return -jax.grad(_classical_energy_of, argnums=1)(model, m) / np.asarray(model.spins)[:, None]


@eqx.filter_jit
def _dense_matrix(model: SpinModel) -> jax.Array:
    """H·𝟙 in one compiled program (eagerly, each local term would compile kernels of its own)."""
    return model.apply(jnp.eye(model.dim, dtype=complex))


def fold_site_terms(dims, bonds, site_terms, bond_terms) -> tuple[list, list]:
    """Add each one-site term h_k to the first bond (i, j) containing site k (as h_k ⊗ 𝟙 or 𝟙 ⊗ h_k).

    Returns ([(k, h_k)] for sites in no bond, bond terms (d_i d_j, d_i d_j)); Σ_k h_k + Σ_b h_b is unchanged.
    """
    bond_terms = list(bond_terms)
    remaining = []
    for k, h in enumerate(site_terms):
        b = next((b for b, bond in enumerate(bonds) if k in bond), None)
        if b is None:
            remaining.append((k, h))
            continue
        i, j = bonds[b]
        xp = np if isinstance(h, np.ndarray) and isinstance(bond_terms[b], np.ndarray) else jnp  # host terms stay host
        bond_terms[b] = bond_terms[b] + (xp.kron(h, np.eye(dims[j])) if k == i else xp.kron(np.eye(dims[i]), h))
    return remaining, bond_terms


def apply_local_terms(dims, bonds, site_terms, bond_terms, psi: jax.Array) -> jax.Array:
    """H·ψ for H = Σ_k h_k + Σ_b h_b given as one-site (d_k, d_k) and two-site (d_i d_j, d_i d_j) terms.

    ψ: (D,) or (D, r). Precompute the terms once (``SpinModel.site_terms()``, ``.bond_terms()``) when
    applying H many times, e.g. inside an ODE loop. Never forms a D×D matrix.
    """
    # Each local term acts on a reshaped view (L, d_i, M, d_j, R) as a sum of broadcast products
    # (elementwise, fused by XLA; no transposes of the D-sized state): ~6x faster at N = 20 than
    # tensordot + moveaxis. One-site terms are folded into a bond on their site (h ⊗ 𝟙 or 𝟙 ⊗ h), which
    # saves one pass over ψ per site (1.7x faster at N = 20).
    site_terms, bond_terms = fold_site_terms(dims, bonds, site_terms, bond_terms)
    columns = math.prod(psi.shape[1:])
    flat = psi.reshape(-1)
    out = jnp.zeros(flat.shape, dtype=jnp.result_type(flat.dtype, jnp.complex64))
    for k, h in site_terms:
        x = flat.reshape(math.prod(dims[:k]), dims[k], math.prod(dims[k + 1 :]) * columns)
        out = out + sum(h[:, b][None, :, None] * x[:, b : b + 1, :] for b in range(dims[k])).reshape(-1)
    for (i, j), h in zip(bonds, bond_terms):
        h4 = h.reshape(dims[i], dims[j], dims[i], dims[j])
        if i > j:
            i, j, h4 = j, i, h4.transpose(1, 0, 3, 2)
        shape = (math.prod(dims[:i]), dims[i], math.prod(dims[i + 1 : j]), dims[j], math.prod(dims[j + 1 :]) * columns)
        x = flat.reshape(shape)
        terms = (
            h4[:, :, b, c][None, :, None, :, None] * x[:, b : b + 1, :, c : c + 1, :]
            for b in range(dims[i])
            for c in range(dims[j])
        )
        out = out + sum(terms).reshape(-1)
    return out.reshape(psi.shape)


_apply_local_terms = jax.jit(apply_local_terms, static_argnums=(0, 1))
"""One program per (dims, bonds, shapes) for an eager H·ψ (inlined inside an enclosing trace)."""


def _per_site(value, n: int, name: str, shape=(3,)):
    """(n, *shape) from a uniform or per-site value; host (numpy) values are broadcast with numpy (no eager kernel)."""
    arr = real_array(0.0 if value is None else value, name, REAL_PARAMETER_HINT)
    xp = np if isinstance(arr, np.ndarray) else jnp
    if arr.shape == shape or arr.shape == ():
        return xp.broadcast_to(arr, (n,) + shape)
    if arr.shape == (n,) + shape:
        return arr
    raise ValueError(f"{name} must have shape {shape} (uniform) or {(n,) + shape} (per site), got {arr.shape}")


def spin_model(
    spins: Sequence[float],
    *,
    field=None,
    bonds: Sequence[tuple[int, int]] = (),
    exchange=None,
    dmi=None,
    anisotropic_exchange=None,
    anisotropy=None,
    anisotropy_axis=(0.0, 0.0, 1.0),
) -> SpinModel:
    """Build a :class:`SpinModel`; uniform values broadcast over sites/bonds.

    Args:
        spins: spin of each site, length N (e.g. ``[0.5] * 3``).
        field: b, shape (3,) or (N, 3), energy units, H_Z = −Σ b_k·S_k.
        bonds: list of site pairs (i, j).
        exchange: J, scalar or (nb,). dmi: D, (3,) or (nb, 3). anisotropic_exchange: Γ, (3, 3) or (nb, 3, 3).
        anisotropy: K, scalar or (N,). anisotropy_axis: n, (3,) or (N, 3) (normalised here).
    """
    spins = check_spins(spins)
    bonds = check_bonds(bonds, len(spins))
    n, nb = len(spins), len(bonds)
    axis = _per_site(anisotropy_axis, n, "anisotropy_axis")
    axis_value = concrete_value(axis)
    if axis_value is not None and np.any(np.linalg.norm(axis_value, axis=-1) == 0):
        raise ValueError("anisotropy_axis must be non-zero (it is normalised), got a zero vector")
    xp = np if axis_value is not None else jnp
    arrays = {
        "field": _per_site(field, n, "field"),
        "exchange": _per_site(exchange, nb, "exchange", ()),
        "dmi": _per_site(dmi, nb, "dmi"),
        "anisotropic_exchange": _per_site(anisotropic_exchange, nb, "anisotropic_exchange", (3, 3)),
        "anisotropy": _per_site(anisotropy, n, "anisotropy", ()),
        "anisotropy_axis": axis / xp.linalg.norm(axis, axis=-1, keepdims=True),
    }
    # host values become device arrays by a transfer (no compiled kernel); traced ones stay traced
    return SpinModel(spins=spins, bonds=bonds, **{k: device_array(v) for k, v in arrays.items()})


def chain_bonds(n: int, periodic: bool = False) -> tuple[tuple[int, int], ...]:
    """Nearest-neighbour bonds (k, k+1) of an n-site chain (n ≥ 1); with ``periodic`` also (n−1, 0).

    Returns a tuple of nb integer pairs (nb = n − 1, or n when periodic and n > 2)."""
    n = check_positive(n, "n", integer=True)
    bonds = [(k, k + 1) for k in range(n - 1)]
    if periodic and n > 2:
        bonds.append((n - 1, 0))
    return tuple(bonds)


def chain_model(n: int, *, exchange=1.0, dmi=None, field=None, spin: float = 0.5, periodic=False, **terms) -> SpinModel:
    """An n-site chain with nearest-neighbour exchange/DMI; other :func:`spin_model` terms pass through.

    ``exchange`` J: scalar or (nb,); ``dmi``: (3,) or (nb, 3); ``field`` b: (3,) or (n, 3); all in energy
    units E0. The resulting :class:`SpinModel` has dimension D = (2s + 1)^n.
    """
    n = check_positive(n, "n", integer=True)
    spin = check_spin(spin, "spin")
    return spin_model([spin] * n, bonds=chain_bonds(n, periodic), exchange=exchange, dmi=dmi, field=field, **terms)


def dimer_model(B=(1.0, 0.0, 0.0), J=1.0, D=(0.0, 0.0, 0.0), spin: float = 0.5) -> SpinModel:
    r"""The paper's dimer (eq. 8) in units E0 = μ_B·B0, as a :class:`SpinModel` (``B``, ``D``: (3,); ``J``: scalar).

    .. math:: H = -2\,\mathbf B\cdot(\mathbf S_1+\mathbf S_2) + 4J\,\mathbf S_1\cdot\mathbf S_2
              + 4\mathbf D\cdot(\mathbf S_1\times\mathbf S_2),

    which for s = 1/2 (σ = 2S) is −B·(σ1+σ2) + J σ1·σ2 + D·(σ1×σ2).
    """
    B, D = real_array(B, "B", REAL_PARAMETER_HINT), real_array(D, "D", REAL_PARAMETER_HINT)
    for name, value in (("B", B), ("D", D)):
        if value.shape != (3,):
            raise ValueError(f"{name}: B and D must be 3-vectors, got {name} of shape {value.shape}")
    J = real_array(J, "J", REAL_PARAMETER_HINT)
    if J.shape != ():
        raise ValueError(f"J must be a scalar, got shape {J.shape}")
    for name, value in (("B", B), ("J", J), ("D", D)):
        check_finite(value, name)
    return spin_model([spin, spin], field=2 * B, bonds=[(0, 1)], exchange=4 * J, dmi=4 * D)


def dimer_hamiltonian(B=(1.0, 0.0, 0.0), J=1.0, D=(0.0, 0.0, 0.0)) -> jax.Array:
    r"""The paper's spin-1/2 dimer, eq. 8, as a (4, 4) complex matrix:

    .. math:: H = -\mathbf B\cdot(\boldsymbol\sigma_1+\boldsymbol\sigma_2) + J\,\boldsymbol\sigma_1\cdot\boldsymbol\sigma_2
              + \mathbf D\cdot(\boldsymbol\sigma_1\times\boldsymbol\sigma_2)

    in units E0 = μ_B·B0; basis |↑↑⟩, |↑↓⟩, |↓↑⟩, |↓↓⟩ with σ_z|↑⟩ = +|↑⟩. ``B``, ``D``: (3,); ``J``: scalar.
    """
    return dimer_model(B, J, D).matrix()


def as_matrix(hamiltonian, name: str = "hamiltonian") -> jax.Array:
    """A dense Hermitian (D, D) matrix (complex) from a :class:`SpinModel`, an array-like or a ``qutip.Qobj``
    (validated: square, finite, Hermitian; a batch (..., D, D) passes through). A SpinModel too large to
    densify raises SizeError (see :meth:`SpinModel.matrix`)."""
    if isinstance(hamiltonian, SpinModel):
        return hamiltonian.matrix()
    return check_hamiltonian(hamiltonian, name)
