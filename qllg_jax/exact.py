r"""Closed-form q-LLG solutions (ħ = 1).

Pure states (paper eq. 28): with H_eff = (1 − iκ) H / (1 + κ²),

.. math:: \psi(t) = e^{-iH_\mathrm{eff}t}\psi_0 / \lVert e^{-iH_\mathrm{eff}t}\psi_0\rVert .

The same holds for any projector P (rank r): the range of P(t) is e^{−iH_eff t}·range(P₀), because for
projectors q-LLG equals q-LL rescaled by 1 + κ². Two-eigenvalue states ϱ = a𝟙 + bP evolve as a𝟙 + bP(t) with
κ → κb (since [ϱ, ·] = b[P, ·]).

A piecewise-constant H(t) (a :class:`~qllg_jax.drives.TimeDependent` of constant and :func:`~qllg_jax.pwc`
terms) is exact segment by segment: on each segment [τ_k, τ_{k+1}) between the drive's edges, H is constant
(H_k) and the state at τ_{k+1} is eq. 28 with H_eff,k = (1 − iκ) H_k/(1 + κ²) applied to the state at τ_k
(renormalised, or re-orthonormalised for a projector): no time stepping.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._arrays import device_array
from ._linalg import dagger, matmul

from ._checks import (
    as_array,
    check_density_matrix,
    concrete_value,
    check_finite,
    check_hamiltonian,
    check_kappa,
    check_ket,
    check_times,
)


def _divided_exp(mu, s):
    """Divided differences F_tij = (e^{s_t μ_i} − e^{s_t μ_j})/(μ_i − μ_j) (→ s_t e^{s_t μ_i} at μ_i = μ_j); (T, d, d).

    Series for |s δ| < 1e-5 (no cancellation), the plain quotient otherwise (each exponential ≤ 1 in size).
    """
    delta = mu[:, None] - mu[None, :]
    z = s[:, None, None] * delta
    e_i = jnp.exp(s[:, None] * mu[None, :])
    e_j = e_i[:, None, :]
    small = jnp.abs(z) < 1e-5
    safe_delta = jnp.where(small, 1.0, delta)
    quotient = (e_i[:, :, None] - e_j) / safe_delta
    series = s[:, None, None] * e_j * (1 + z / 2 + z**2 / 6)
    return jnp.where(small, series, quotient)


@jax.custom_jvp
def _propagate(H, W0, s):
    """E_t W0 with E_t = exp(s_t (H − λ_min)), for Hermitian H (d, d), columns W0 (d, r) and complex rates s (T,);
    shape (T, d, r). Computed as V (e^{s_t μ} ⊙ V†W0) — the columns only, never the (T, d, d) exponentials.

    The custom JVP is the Daleckii–Krein formula dE = V (F ⊙ V†dH V) V† − s dλ_min E (+ ∂_s E ds) with divided
    differences F, applied to W0: exact and finite at degenerate spectra of H, where differentiating eigh is not.
    """
    energies, vectors = jnp.linalg.eigh(H)
    exps = jnp.exp(s[:, None] * (energies - energies[0])[None, :])
    return matmul(vectors[None], exps[:, :, None] * matmul(dagger(vectors), W0)[None])


@_propagate.defjvp
def _propagate_jvp(primals, tangents):
    H, W0, s = primals
    dH, dW0, ds = tangents
    energies, vectors = jnp.linalg.eigh(H)
    mu = energies - energies[0]
    exps = jnp.exp(s[:, None] * mu[None, :])
    coefficients = matmul(dagger(vectors), W0)
    out = matmul(vectors[None], exps[:, :, None] * coefficients[None])
    rotated = matmul(matmul(dagger(vectors), dH), vectors)
    d_lowest = jnp.real(rotated[0, 0])
    inner = matmul(_divided_exp(mu, s) * rotated[None], coefficients[None])
    inner = inner + (ds[:, None] * mu[None, :] * exps)[:, :, None] * coefficients[None]
    inner = inner + exps[:, :, None] * matmul(dagger(vectors), dW0)[None]
    tangent = matmul(vectors[None], inner) - (s * d_lowest)[:, None, None] * out
    return out, tangent


def propagate_columns(H, W0, ts, kappa):
    """e^{−iH_eff t} W0 for each t, with energies shifted so the damping factor never overflows; (T, d, r).

    Differentiable in H, W0, ts and κ, with finite exact derivatives at degenerate spectra of H.
    """
    rate = (-1j - kappa) / (1 + kappa**2)
    return _propagate(H.astype(complex), device_array(W0).astype(complex), (rate * ts).astype(complex))


def pure_state_exact(H, psi0, ts, kappa) -> jax.Array:
    """Kets ψ(t) of shape (T, d) from eq. 28 for H (d, d) (energy units E0), ψ0 (d,), ts (T,) (units ħ/E0) and
    dimensionless κ ≥ 0: ψ(t) = e^{−iH_eff t} ψ0 / ‖·‖ with H_eff = (1 − iκ) H / (1 + κ²) (global phase: that
    of e^{−iH_eff t}).

    H may be piecewise constant (constant + :func:`~qllg_jax.pwc` terms): eq. 28 segment by segment (see the
    module docstring; the global phase is then that of the product of the segments' propagators)."""
    if _is_driven(H):
        psi0 = check_ket(psi0, "psi0", H.dim)
        ts, kappa = check_times(ts), check_kappa(kappa)
        return _segmentwise(H, psi0[:, None], ts, kappa, _normalise)[..., 0]
    H = check_hamiltonian(H)
    psi0 = check_ket(psi0, "psi0", H.shape[-1])
    ts, kappa = check_times(ts), check_kappa(kappa)
    return _pure_state_exact(H, psi0, ts, kappa)


@jax.jit
def _pure_state_exact(H, psi0, ts, kappa):
    """Eq. 28 for a constant H as one program (eagerly, its eigh and products would each compile)."""
    psi = propagate_columns(H, psi0[:, None], ts - ts[0], kappa)[..., 0]
    return psi / jnp.linalg.norm(psi, axis=-1, keepdims=True)


def projector_exact(H, W0, ts, kappa) -> jax.Array:
    """Projectors P(t) (T, d, d) onto span e^{−iH_eff t} W0, for H (d, d), W0 (d, r) with independent
    columns, ts (T,) in ħ/E0 and κ ≥ 0; H may be piecewise constant (segment by segment, see the module docstring).
    """
    driven = _is_driven(H)
    H = H if driven else check_hamiltonian(H)
    shape = (H.dim, H.dim) if driven else H.shape
    W0 = check_finite(as_array(W0, "W0"), "W0")
    if len(shape) != 2 or W0.ndim != 2 or W0.shape[0] != shape[-1] or W0.shape[1] == 0:
        raise ValueError(f"W0 must have shape (d, r) with d = {shape[-1]} and r >= 1 (H is {shape}), got {W0.shape}")
    value = concrete_value(W0)
    if value is not None:
        singular = np.linalg.svd(value, compute_uv=False)
        if singular[-1] <= 1e-10 * max(1.0, singular[0]):
            raise ValueError(f"W0 must have linearly independent columns (it spans range P); its smallest singular "
                             f"value is {singular[-1]:.3g}")
    ts, kappa = check_times(ts), check_kappa(kappa)
    if driven:
        Q = _segmentwise(H, device_array(W0).astype(complex), ts, kappa, _orthonormalise)
        return Q @ jnp.conj(jnp.swapaxes(Q, -1, -2))
    return _projector_exact(H, W0, ts, kappa)


@jax.jit
def _projector_exact(H, W0, ts, kappa):
    """The constant-H projector solution as one program (eagerly, its eigh, products and QR would each compile)."""
    W = propagate_columns(H, W0, ts - ts[0], kappa)
    Q, _ = jnp.linalg.qr(W)
    return Q @ jnp.conj(jnp.swapaxes(Q, -1, -2))


@jax.jit
def _identity_plus_projectors(a, b, P):
    """a𝟙 + bP(t), (T, d, d)."""
    return a * jnp.eye(P.shape[-1]) + b * P


def two_level_split(rho, tol: float = 1e-9):
    """Write ϱ = a𝟙 + bP (b > 0) if its spectrum has exactly two distinct values (within ``tol``).

    Returns (a, b, W) with W (d, r) an orthonormal basis of range(P); raises ValueError otherwise.
    ``rho``: a density matrix (d, d).
    """
    rho = check_density_matrix(rho, "rho")
    if rho.ndim != 2:
        raise ValueError(f"rho must be one (d, d) matrix, got shape {rho.shape}")
    value = concrete_value(rho)  # numpy: also inside a jax.jit trace, where jnp ops on constants are traced
    if value is None:
        raise ValueError("rho must be concrete (not traced) to split it as a*1 + b*P; use the dense solver")
    p, v = np.linalg.eigh(value)
    low, high = float(p[0]), float(p[-1])
    if high - low <= tol:
        raise ValueError("rho is proportional to the identity: it does not evolve")
    is_high = np.abs(p - high) <= tol
    is_low = np.abs(p - low) <= tol
    if not bool(np.all(is_high | is_low)):
        raise ValueError(f"rho has more than two distinct eigenvalues: {p}")
    return low, high - low, device_array(v[:, is_high])


def two_level_exact(H, rho0, ts, kappa) -> jax.Array:
    """ϱ(t) (T, d, d) for ϱ0 = a𝟙 + bP (e.g. Werner states) using the projector solution with κ → κb.

    H (d, d) in energy units E0 (or piecewise constant, segment by segment), ϱ0 (d, d), ts (T,) in ħ/E0, κ ≥ 0
    dimensionless."""
    H = H if _is_driven(H) else check_hamiltonian(H)
    dim = H.dim if _is_driven(H) else H.shape[-1]
    rho0 = check_density_matrix(rho0, "rho0", dim)
    ts, kappa = check_times(ts), check_kappa(kappa)
    a, b, W0 = two_level_split(rho0)
    return _identity_plus_projectors(a, b, projector_exact(H, W0, ts, kappa * b))


def _is_driven(H) -> bool:
    from .drives import TimeDependent  # (import here: drives imports the methods, which import this module)

    if not isinstance(H, TimeDependent):
        if callable(H):
            from .drives import as_time_dependent

            as_time_dependent(H)  # raises the "wrap it" TypeError
        return False
    if not H.is_piecewise_constant:
        raise ValueError("H: closed forms need a piecewise-constant H (constant and q.pwc terms); a modulated or "
                         "timecallable drive has none — integrate it with solve")
    if H.batch_shape != ():
        raise ValueError(f"H has batch shape {H.batch_shape}: the closed form takes one H (use jax.vmap over the batch)")
    return True


def _normalise(W):
    """Columns of W (..., d, r) scaled to unit norm."""
    return W / jnp.linalg.norm(W, axis=-2, keepdims=True)


def _orthonormalise(W):
    return jnp.linalg.qr(W)[0]


def segmentwise_columns(H_at, edges, W0, ts, kappa, renormalise=None) -> jax.Array:
    r"""Columns W(t) (T, d, r) of eq. 28 chained over the intervals of a piecewise-constant H, no time stepping.

    The save times ``ts`` (T,) and the drive's ``edges`` (E,) (clipped to [ts[0], ts[-1]]) are merged into one
    sorted grid τ_0 ≤ … ≤ τ_{T+E−1}; H is constant on each interval (H_k = ``H_at`` at its midpoint, (d, d) in
    energy units) and W(τ_{k+1}) = e^{−iH_eff,k (τ_{k+1} − τ_k)} W(τ_k), H_eff,k = (1 − iκ)H_k/(1 + κ²), renormalised
    after every interval (``renormalise``: column norms for r = 1, QR otherwise). Zero-length intervals (a save
    time on an edge, clipped edges) are the identity. Every shape is static, so edges, ts and the pwc values may be
    traced (jit, vmap, grad; derivatives through :func:`propagate_columns`, exact at degenerate spectra)."""
    if renormalise is None:
        renormalise = _normalise if W0.shape[-1] == 1 else _orthonormalise
    ts = device_array(ts, dtype=float)
    edges = jnp.clip(jax.lax.stop_gradient(jnp.ravel(device_array(edges, dtype=float))), ts[0], ts[-1])
    grid = jnp.concatenate([ts, edges])
    order = jnp.argsort(grid, stable=True)  # stable, ts first: ts[0] stays at position 0 (edges are >= ts[0])
    points = grid[order]
    starts, ends = points[:-1], points[1:]
    hamiltonians = jax.vmap(H_at)((starts + ends) / 2)

    def step(W, interval):
        Hk, duration = interval
        W = renormalise(propagate_columns(Hk, W, duration[None], kappa)[0])
        return W, W

    W0 = renormalise(device_array(W0).astype(complex))
    _, after = jax.lax.scan(step, W0, (hamiltonians, ends - starts))
    at_points = jnp.concatenate([W0[None], after])  # W at every grid point
    return at_points[jnp.argsort(order)[: ts.shape[0]]]  # the inverse permutation: where each ts[j] landed


def evolve_columns(H, W0, ts, kappa, scale=1.0) -> jax.Array:
    """Orthonormal columns (T, d, r) spanning e^{−iH_eff t}·range(W0) for the closed-form methods: H an
    :class:`~qllg_jax.methods._operator.Operator` (constant: one propagation from ts[0]) or a piecewise-constant
    :class:`~qllg_jax.drives.DrivenOperator` (:func:`segmentwise_columns` between its edges); ``scale`` multiplies H
    (q-LL as rescaled q-LLG, :func:`~qllg_jax.methods.ket.projector_reduction`)."""
    from .drives import DrivenOperator  # (import here: drives imports the methods, which import this module)

    if isinstance(H, DrivenOperator):
        return segmentwise_columns(lambda t: scale * H.matrix(t), H.discontinuity_ts, W0, ts, kappa)
    W = propagate_columns(scale * H.matrix(), W0, ts - ts[0], kappa)
    return _normalise(W) if W.shape[-1] == 1 else _orthonormalise(W)


def _segmentwise(H, W0, ts, kappa, renormalise) -> jax.Array:
    """:func:`segmentwise_columns` for a piecewise-constant :class:`~qllg_jax.drives.TimeDependent` H."""
    return segmentwise_columns(H, H.discontinuity_ts, W0, ts, kappa, renormalise)
