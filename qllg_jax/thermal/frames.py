r"""The stochastic q-LLG (and q-LL, von Neumann) for frames and kets: a thermal noise operator, unitary steps.

The thermal field of :mod:`qllg_jax.classical.stochastic` as an operator (ħ = 1, energies in E0):

.. math:: H(t) = H - \sum_k \boldsymbol\xi_k(t)\cdot\mathbf S_k, \qquad
          \langle \xi_{k,a}(t)\,\xi_{l,b}(t')\rangle = 2D_k\,\delta_{kl}\delta_{ab}\,\delta(t-t'), \qquad
          D_k = \frac{\kappa\,\tau}{s_k},

in the Stratonovich sense, τ = k_B T in E0. Why this D: a pure spin-s coherent state under a Zeeman H follows
classical LLG with α = κ exactly (paper eq. 6 / eq. 28; at every instant, so also with a random field), so one
spin thermalises to the **classical** Boltzmann law of its direction, ⟨S_z⟩/s = L(s b/τ), L(x) = coth x − 1/x —
not the quantum thermal (Brillouin; tanh for s = 1/2) law. That is a prediction of this model, to be compared
with experiments, not a property of quantum statistical mechanics. For q-LL (pure states: q-LLG with
H → (1 + κ²)H, noise included) the same D gives L(s b/((1 + κ²)τ)); von Neumann has no damping, and κ > 0 there
only sets the noise (the state heats without bound).

Representation: ϱ = UΛU† (frame U (D, r), eigenvalues Λ constant; a ket is r = 1, λ = 1). The frame equation
(:mod:`qllg_jax.equations.frame`) is U̇ = −iKU with a Hermitian generator K linear in H; in the eigenbasis
K̃_ij = c(λ_i − λ_j)H̃_ij (q-LLG: c(g) = 1/(1 − iκg)), zero inside equal-eigenvalue blocks (the gauge fix). So
over a step h the noise enters K through the same factors: K[dH] with the Hamiltonian increment
dH = H h − Σ_k σ_k ΔW_k·S_k (σ_k = √(2D_k)). From G = dH·U (one matrix-free application for a SpinModel):

.. math:: K = U\,(M\odot U^\dagger G)\,U^\dagger + Z C U^\dagger + U C^* Z^\dagger,
          \qquad Z = (\mathbb 1 - UU^\dagger)G,\quad C = \mathrm{diag}\,c(-\lambda_j),

i.e. K = Y S Y† with Y = [U, Z] and S = [[M⊙U†G, C*], [C, 0]] (KU = U̇·i h, and K is Hermitian). Stochastic Heun
in the Lie algebra, with the Cayley map C(K) (:func:`~qllg_jax.thermal.lie.cayley_apply`):

.. math:: U^* = \mathcal C(K[U_n])\,U_n, \qquad U_{n+1} = \mathcal C\big(\tfrac12(K[U_n] + K[U^*])\big)\,U_n,

with the same ΔW in both stages. Each step multiplies U by a unitary, so the spectrum of ϱ (Λ, and U†U = 𝟙) is
conserved to round-off on every trajectory, for any noise and step; only ensemble averages mix. Strong order 1/2,
deterministic order 2, fixed step checked against the spectral width of H (the fastest precession).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_choice, check_flag, check_hamiltonian, check_kappa, check_spins, concrete_value, is_concrete
from .._linalg import dagger, matmul
from ..equations.frame import FRAME_EQUATIONS, frame_coupling, frame_density_matrix
from ..hamiltonians import SpinModel, apply_local_terms
from ..methods import Frame, read_initial_state
from ..methods._operator import as_operator
from ..operators import site_dims, site_spin_operators, spin_matrices
from .lie import cayley_apply
from .noise import (
    brownian_noise,
    check_noise_key,
    check_step,
    check_temperature,
    host_times,
    integrate_fixed,
    noise_amplitudes,
    time_grid,
)


class ThermalHamiltonian(eqx.Module):
    """The Hamiltonian increment dH = H h − Σ_k σ_k ΔW_k·S_k, applied to frames U (D, r).

    Either local terms of a SpinModel (``site_terms``/``bond_terms``, ``spin_ops`` the one-site (3, d_k, d_k)
    spin matrices) or a dense H (``dense`` (D, D), ``spin_ops`` the embedded (N, 3, D, D) operators).
    """

    sigma: jax.Array
    dense: jax.Array | None
    site_terms: list | None
    bond_terms: list | None
    spin_ops: list | jax.Array
    dims: tuple[int, ...] = eqx.field(static=True)
    bonds: tuple[tuple[int, int], ...] = eqx.field(static=True)

    def apply(self, h, dw, frame):
        """dH·U for the step h and noise increments dw (N, 3)."""
        kicks = self.sigma[:, None] * dw
        if self.dense is not None:
            dh = h * self.dense - jnp.einsum("ka,kaij->ij", kicks.astype(complex), self.spin_ops)
            return matmul(dh, frame)
        sites = [h * term - jnp.einsum("a,aij->ij", kicks[k].astype(complex), self.spin_ops[k])
                 for k, term in enumerate(self.site_terms)]
        return apply_local_terms(self.dims, self.bonds, sites, [h * term for term in self.bond_terms], frame)


def thermal_hamiltonian(H, spins, sigma) -> ThermalHamiltonian:
    """From a SpinModel (its own spins) or a dense (D, D) H with the site ``spins``."""
    if isinstance(H, SpinModel):
        op = as_operator(H, dense=False)
        ops = [spin_matrices(s) for s in H.spins]
        return ThermalHamiltonian(sigma, None, op.site_terms, op.bond_terms, ops, H.dims, H.bonds)
    op = as_operator(H, dense=True)
    return ThermalHamiltonian(sigma, op.dense, None, None, jnp.stack(site_spin_operators(spins)), site_dims(spins), ())


def generator_pieces(frame, g, coupling, kernel):
    """K = Y S Y† (module docstring) from U (D, r) and G = dH·U; returns (Y (D, 2r), S (2r, 2r))."""
    projected = matmul(dagger(frame), g)
    inside = coupling * projected
    inside = (inside + dagger(inside)) / 2
    z = g - matmul(frame, projected)
    c = jnp.diag(kernel)
    top = jnp.concatenate([inside, jnp.conj(c)], axis=1)
    bottom = jnp.concatenate([c, jnp.zeros_like(c)], axis=1)
    return jnp.concatenate([frame, z], axis=1), jnp.concatenate([top, bottom], axis=0)


def heun_step(thermal: ThermalHamiltonian, frame, h, dw, coupling, kernel):
    """One stochastic Heun step with Cayley maps (module docstring); U (D, r) → U (D, r)."""
    piece0 = generator_pieces(frame, thermal.apply(h, dw, frame), coupling, kernel)
    predictor = cayley_apply(frame, [piece0])
    piece1 = generator_pieces(predictor, thermal.apply(h, dw, predictor), coupling, kernel)
    half = lambda piece: (piece[0], 0.5 * piece[1])  # noqa: E731
    return cayley_apply(frame, [half(piece0), half(piece1)])


class FrameTrajectory(eqx.Module):
    """One stochastic trajectory: ϱ(t) = U(t) diag(weights) U(t)†.

    Attributes:
        frames: U at the save times, shape (T, D, r) (kets: r = 1, weights (1.,)).
        weights: the eigenvalues λ of ϱ0 carried by the columns, shape (r,), constant in time.
        dt: the fixed step used (ħ/E0; static), None when not recorded.
    """

    frames: jax.Array
    weights: jax.Array
    dt: float | None = eqx.field(static=True, default=None)

    def density_matrices(self) -> jax.Array:
        """ϱ(t), shape (..., T, D, D) (small D only)."""
        return frame_density_matrix(self.frames, self.weights[..., None, :])

    def kets(self) -> jax.Array:
        """ψ(t), shape (..., T, D), for a pure trajectory (r = 1)."""
        if self.frames.shape[-1] != 1:
            raise ValueError(f"kets() needs a pure trajectory (rank 1), got rank {self.frames.shape[-1]}")
        return self.frames[..., 0]


@eqx.filter_jit
def _integrate(thermal, frame0, coupling, kernel, noise, grid):
    """The equation and the gauge fix enter only through the arrays M and c(−λ): one program for all three."""
    step = lambda u, t, h, dw: heun_step(thermal, u, h, dw, coupling, kernel)  # noqa: E731
    return integrate_fixed(step, frame0, noise, grid)


@eqx.filter_jit
def _coupling(weights, kappa, equation, gauge_fix):
    return frame_coupling(weights, kappa, equation, gauge_fix)


def _spectral_width(thermal: ThermalHamiltonian, H) -> float | None:
    """E_max − E_min of H on the host (None when traced): eigvalsh of the dense matrix for D ≤ 256, else the sum
    of the local terms' widths."""
    if not is_concrete(H):
        return None
    dim = math.prod(thermal.dims)
    with jax.ensure_compile_time_eval():  # host values, also while an enclosing jit traces (H is a constant)
        if dim <= 256:
            matrix = np.asarray(H.matrix() if isinstance(H, SpinModel) else thermal.dense)
            energies = np.linalg.eigvalsh(matrix)
            return float(energies[-1] - energies[0])
        terms = [*thermal.site_terms, *thermal.bond_terms]
        return float(sum(np.ptp(np.linalg.eigvalsh(np.asarray(term))) for term in terms))


def _site_spins(H, spins):
    if isinstance(H, SpinModel):
        if spins is not None and tuple(check_spins(spins)) != tuple(H.spins):
            raise ValueError(f"spins {tuple(spins)} disagree with the SpinModel's spins {H.spins}")
        return tuple(H.spins)
    if spins is None:
        raise ValueError("H is a raw matrix: pass spins=[s_1, ..., s_N] (the site spins S_k the thermal field "
                         "couples to), or give H as a SpinModel (qllg_jax.spin_model)")
    spins = check_spins(spins)
    dim = math.prod(site_dims(spins))
    shape = jnp.shape(H)
    if len(shape) != 2 or shape != (dim, dim):
        raise ValueError(f"H must be a ({dim}, {dim}) matrix for spins {tuple(spins)} (D = {dim}), got shape {shape}")
    return spins


def stochastic_frames(
    H,
    rho0,
    ts,
    kappa,
    *,
    temperature,
    key=None,
    spins=None,
    equation: str = "qllg",
    dt: float | None = None,
    noise: str = "tree",
    brownian_tol: float | None = None,
    gauge_fix: bool = True,
) -> FrameTrajectory:
    """One trajectory of the stochastic q-LLG / q-LL / von Neumann equation (module docstring).

    Args:
        H: a :class:`~qllg_jax.SpinModel` (matrix-free), or a Hermitian (D, D) matrix together with ``spins``.
        rho0: ket (D,), density matrix (D, D) or :class:`~qllg_jax.LowRankState`, known on the host (its
            spectrum is taken there once). One state; ensembles by ``jax.vmap`` over keys.
        ts: save times (T,), strictly increasing, known on the host; ħ/E0.
        kappa: damping κ ≥ 0. temperature: τ = k_B T ≥ 0 in E0 (scalar). key: the trajectory's key (required
            at τ > 0; same key ⇒ same path, bit for bit).
        spins: the site spins of a raw matrix H (Π(2s_k + 1) = D); a SpinModel brings its own.
        equation: ``"qllg"`` (default), ``"qll"`` or ``"von_neumann"``.
        dt, noise, brownian_tol: as in :func:`qllg_jax.classical.stochastic.stochastic_llg` (the precession
            rate is the spectral width of H).
        gauge_fix: zero the generator inside equal-eigenvalue blocks (default).

    Returns:
        :class:`FrameTrajectory` (frames (T, D, r), weights (r,)); every frame is orthonormal to round-off.
    """
    temperature = check_temperature(temperature)
    key = check_noise_key(key, temperature)
    equation = check_choice(equation, FRAME_EQUATIONS, "equation")
    gauge_fix = check_flag(gauge_fix, "gauge_fix")
    site_spins = _site_spins(H, spins)
    dim = math.prod(site_dims(site_spins))
    if not isinstance(H, SpinModel):
        H = check_hamiltonian(H, "H")
    state = read_initial_state(rho0, dim)
    if state.batch_shape:
        raise ValueError(f"rho0 must be one state (one trajectory per call; vmap over keys for an ensemble), got "
                         f"a batch of shape {state.batch_shape}")
    if not state.known:
        raise ValueError("rho0 must be known on the host (its eigendecomposition is taken there), not traced")
    ts = host_times(ts)
    kappa = check_kappa(kappa)
    sigma = noise_amplitudes(kappa, temperature, site_spins)
    thermal = thermal_hamiltonian(H, site_spins, sigma)
    diffusion = concrete_value(sigma)
    dt = check_step(dt, _spectral_width(thermal, H),
                    None if diffusion is None else float(np.max(diffusion) ** 2 / 2), "Hamiltonian")
    frame0, aux = Frame(gauge_fix=gauge_fix).initial(state)
    weights = jnp.asarray(aux["weights"], dtype=float)
    source = brownian_noise(noise, key, ts, (len(site_spins), 3), dt, brownian_tol)
    coupling, kernel = _coupling(weights, kappa, equation, gauge_fix)
    frames = _integrate(thermal, jnp.asarray(frame0, dtype=complex), coupling, kernel, source, time_grid(ts, dt))
    return FrameTrajectory(frames, weights, dt)
