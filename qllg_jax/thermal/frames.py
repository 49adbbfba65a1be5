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
conserved to round-off on every trajectory, for any noise and step; only ensemble averages mix. A driven H(t)
(:mod:`.drive`) enters dH through its value at the step's midpoint, H(t + h/2)·h, in both stages; its jumps are step
boundaries. Strong order 1/2, deterministic order 2, fixed step checked against the spectral width of H (the fastest precession).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array
from .._checks import check_choice, check_flag, check_hamiltonian, check_kappa, check_spins, concrete_value, is_concrete
from .._linalg import dagger, matmul
from ..equations.frame import FRAME_EQUATIONS, frame_coupling, frame_density_matrix
from ..drives import DrivenOperator
from ..hamiltonians import SpinModel, apply_local_terms
from ..methods import Frame, read_initial_state
from ..methods._operator import as_operator
from ..operators import site_dims, site_spin_operators, spin_matrices
from .drive import drive_rate, drive_width, nodes_with_jumps, split_drive
from .lie import cayley_apply, pair_cayley, pair_dagger, pair_hermitian_part, pair_matmul
from .noise import (
    brownian_noise,
    check_noise_key,
    key_batch_shape,
    materialise,
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
    drive: DrivenOperator | None
    dims: tuple[int, ...] = eqx.field(static=True)
    bonds: tuple[tuple[int, int], ...] = eqx.field(static=True)

    def apply(self, t, h, dw, frame):
        """dH·U for the step h at the drive's time t (the step's midpoint) and noise increments dw (N, 3):
        dH = (H0 + Σ_k c_k(t) H_k + Σ_j F_j(t))·h − Σ_k σ_k dw_k·S_k."""
        kicks = self.sigma[:, None] * dw
        if self.dense is not None:
            dh = h * self.dense - jnp.einsum("ka,kaij->ij", kicks.astype(complex), self.spin_ops)
            out = matmul(dh, frame)
        else:
            sites = [h * term - jnp.einsum("a,aij->ij", kicks[k].astype(complex), self.spin_ops[k])
                     for k, term in enumerate(self.site_terms)]
            out = apply_local_terms(self.dims, self.bonds, sites, [h * term for term in self.bond_terms], frame)
        if self.drive is not None:
            out = out + h * self.drive.apply(t, frame)
        return out


def thermal_hamiltonian(H, spins, sigma, drive=None) -> ThermalHamiltonian:
    """From a SpinModel (its own spins) or a dense (D, D) H with the site ``spins`` (H None: no static part, a zero
    matrix); ``drive``: the time-dependent terms of a driven H (a :class:`~qllg_jax.TimeDependent`, or None)."""
    if isinstance(H, SpinModel):
        op = as_operator(H, dense=False)
        ops = [spin_matrices(s) for s in H.spins]
        driven = None if drive is None else drive.operator(dense=False)
        return ThermalHamiltonian(sigma, None, op.site_terms, op.bond_terms, ops, driven, H.dims, H.bonds)
    dims = site_dims(spins)
    dense = jnp.zeros((math.prod(dims),) * 2, dtype=complex) if H is None else as_operator(H, dense=True).dense
    driven = None if drive is None else drive.operator(dense=True)
    return ThermalHamiltonian(sigma, dense, None, None, jnp.stack(site_spin_operators(spins)), driven, dims, ())


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


def heun_step(thermal: ThermalHamiltonian, frame, t, h, dw, coupling, kernel):
    """One stochastic Heun step with Cayley maps (module docstring) over [t, t + h]; U (D, r) → U (D, r). A drive
    is evaluated at the midpoint t + h/2 in both stages (:mod:`.drive`)."""
    middle = t + h / 2
    piece0 = generator_pieces(frame, thermal.apply(middle, h, dw, frame), coupling, kernel)
    predictor = cayley_apply(frame, [piece0])
    piece1 = generator_pieces(predictor, thermal.apply(middle, h, dw, predictor), coupling, kernel)
    half = lambda piece: (piece[0], 0.5 * piece[1])  # noqa: E731
    return cayley_apply(frame, [half(piece0), half(piece1)])


FULL_RANK_MAX_DIM = 16
"""Full-rank frames (r = D) up to this D with ``noise="steps"`` take the eigenframe path (:func:`full_rank_heun_step`,
trajectories last); other cases the lab-frame :func:`heun_step` (vmapped over a batch of keys)."""


class HostArrays:
    """Host (numpy) constants passed as a static jit argument: hashed by their bytes, so a program specialises on them
    (zero entries are skipped when the program is built)."""

    def __init__(self, *arrays):
        self.arrays = tuple(np.asarray(a) for a in arrays)

    def __hash__(self):
        return hash(tuple((a.shape, a.tobytes()) for a in self.arrays))

    def __eq__(self, other):
        return isinstance(other, HostArrays) and len(self.arrays) == len(other.arrays) and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(self.arrays, other.arrays))


def _pair(a):
    a = device_array(a, dtype=complex)
    return jnp.real(a), jnp.imag(a)


def _times_coupling(coupling, x):
    (mr, mi), (xr, xi) = coupling, x
    lead = (1,) * (xr.ndim - 2)
    mr, mi = mr.reshape(mr.shape + lead), mi.reshape(mi.shape + lead)
    return pair_hermitian_part((mr * xr - mi * xi, mr * xi + mi * xr))


def full_rank_heun_step(frame, h, dw, H, spin_ops, sigma, coupling, one):
    r"""The Heun–Cayley step of the module docstring for a full-rank frame (r = D), in the frame's eigenbasis.

    With U unitary, Z = 0 and K = U X U†, X = M⊙(U†dH U) (Hermitian part taken), so C(K)U = U C(X):

    .. math:: X_0 = M\odot(U_n^\dagger dH U_n),\quad V_0 = \mathcal C(X_0),\quad
              X_1 = V_0\,[M\odot(V_0^\dagger U_n^\dagger dH U_n V_0)]\,V_0^\dagger,\quad
              U_{n+1} = U_n\,\mathcal C(\tfrac12(X_0 + X_1))

    (X_1: the predictor's generator U*†… written in U_n's basis). The same numbers as the lab-frame step in exact
    arithmetic, 8 small products and 2 Cayley maps per step, all elementwise over the trajectories.
    Shapes: frame pair (D, D, *K), dw (N, 3, *K), H pair (D, D), spin_ops :class:`HostArrays` (re, im) (N, 3, D, D),
    sigma (N,),
    coupling pair (D, D).
    """
    lead = (1,) * (frame[0].ndim - 2)
    kicks = jnp.reshape(sigma, (-1, 1) + lead) * dw
    dh = [h * H[0].reshape(H[0].shape + lead), h * H[1].reshape(H[1].shape + lead)]
    ops = spin_ops.arrays
    for k in range(ops[0].shape[0]):
        for a in range(3):
            for part in range(2):
                if np.any(ops[part][k, a]):
                    dh[part] = dh[part] - kicks[k, a][None, None] * ops[part][k, a].reshape(ops[part][k, a].shape + lead)
    dh = materialise(tuple(dh), one)
    projected = materialise(pair_hermitian_part(pair_matmul(pair_dagger(frame), materialise(pair_matmul(dh, frame), one))), one)
    x0 = materialise(_times_coupling(coupling, projected), one)
    v0 = materialise(pair_cayley(x0, one), one)
    moved = materialise(pair_matmul(materialise(pair_matmul(pair_dagger(v0), projected), one), v0), one)
    x1 = materialise(pair_matmul(v0, materialise(_times_coupling(coupling, moved), one)), one)
    x1 = pair_matmul(x1, pair_dagger(v0))
    mean = materialise(pair_hermitian_part((0.5 * (x0[0] + x1[0]), 0.5 * (x0[1] + x1[1]))), one)
    return pair_matmul(frame, materialise(pair_cayley(mean, one), one))


@eqx.filter_jit
def _integrate_full_rank(H, spin_ops, sigma, frame0, coupling, noise, grid):
    """frame0 pair (D, D, *K) → frames (T, *K, D, D) complex."""
    step = lambda u, t, h, dw, one: full_rank_heun_step(u, h, dw, H, spin_ops, sigma, coupling, one)  # noqa: E731
    re, im = integrate_fixed(step, frame0, noise, grid)
    frames = re + 1j * im  # (T, D, D, *K)
    return jnp.moveaxis(frames, (1, 2), (-2, -1))


class FrameTrajectory(eqx.Module):
    """One stochastic trajectory: ϱ(t) = U(t) diag(weights) U(t)†.

    Attributes:
        frames: U at the save times, shape (T, D, r) (kets: r = 1, weights (1.,)).
        weights: the eigenvalues λ of ϱ0 carried by the columns, shape (r,), constant in time.
        dt: the fixed step used (ħ/E0; static), None when not recorded.
        steps: the number of fixed steps taken (static; a drive's jumps add nodes), None when not recorded.
    """

    frames: jax.Array
    weights: jax.Array
    dt: float | None = eqx.field(static=True, default=None)
    steps: int | None = eqx.field(static=True, default=None)

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
    step = lambda u, t, h, dw, one: heun_step(thermal, u, t, h, dw, coupling, kernel)  # noqa: E731
    return integrate_fixed(step, frame0, noise, grid)


@eqx.filter_jit
def _coupling(weights, kappa, equation, gauge_fix):
    return frame_coupling(weights, kappa, equation, gauge_fix)


def _spectral_width(thermal: ThermalHamiltonian, H, ts=None) -> float | None:
    """E_max − E_min of the static H on the host (None when traced): eigvalsh of the dense matrix for D ≤ 256, else
    the sum of the local terms' widths; plus, for a drive, Σ_k max|c_k|·width(H_k) over [ts[0], ts[-1]]."""
    if not is_concrete(H) or not is_concrete(thermal.drive):
        return None
    dim = math.prod(thermal.dims)
    with jax.ensure_compile_time_eval():  # host values, also while an enclosing jit traces (H is a constant)
        if dim <= 256:
            matrix = np.asarray(H.matrix() if isinstance(H, SpinModel) else thermal.dense)
            energies = np.linalg.eigvalsh(matrix)
            width = float(energies[-1] - energies[0])
        else:
            terms = [*thermal.site_terms, *thermal.bond_terms]
            width = float(sum(np.ptp(np.linalg.eigvalsh(np.asarray(term))) for term in terms))
        if thermal.drive is not None:
            width += float(drive_width(thermal.drive, float(ts[0]), float(ts[-1])))
    return width


def _site_spins(H, spins, drive=None):
    """The site spins: a SpinModel's own (static part, else the drive's SpinModel terms), else ``spins=``."""
    own = tuple(H.spins) if isinstance(H, SpinModel) else (drive.spins if drive is not None else None)
    if own is not None:
        if spins is not None and tuple(check_spins(spins)) != tuple(own):
            raise ValueError(f"spins {tuple(spins)} disagree with the SpinModel's spins {own}")
        return tuple(own)
    if spins is None:
        raise ValueError("H is a raw matrix: pass spins=[s_1, ..., s_N] (the site spins S_k the thermal field "
                         "couples to), or give H as a SpinModel (qllg_jax.spin_model)")
    spins = check_spins(spins)
    dim = math.prod(site_dims(spins))
    shape = jnp.shape(H) if H is not None else (drive.dim,) * 2
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
        H: a :class:`~qllg_jax.SpinModel` (matrix-free), or a Hermitian (D, D) matrix together with ``spins``, or a
            driven H(t) (:mod:`qllg_jax.drives`: ``H0 + q.modulated(f, H1) + q.pwc(...)``, pulses) whose static part
            is one of them (or whose terms are SpinModels). The drive is evaluated at each step's midpoint and its
            jumps are step boundaries (:mod:`qllg_jax.thermal.drive`). One drive (no batch axes).
        rho0: ket (D,), density matrix (D, D) or :class:`~qllg_jax.LowRankState`, known on the host (its
            spectrum is taken there once). One state; ensembles by ``jax.vmap`` over keys.
        ts: save times (T,), strictly increasing, known on the host; ħ/E0.
        kappa: damping κ ≥ 0. temperature: τ = k_B T ≥ 0 in E0 (scalar). key: the trajectory's key (required
            at τ > 0; same key ⇒ same path, bit for bit). A batch of keys (K,) runs K trajectories as one ensemble
            (fast with ``noise="steps"``; frames (K, T, D, r)).
        spins: the site spins of a raw matrix H (Π(2s_k + 1) = D); a SpinModel brings its own.
        equation: ``"qllg"`` (default), ``"qll"`` or ``"von_neumann"``.
        dt, noise, brownian_tol: as in :func:`qllg_jax.classical.stochastic.stochastic_llg` (the precession
            rate is the spectral width of H, a drive's amplitude included, or the drive's own rate if faster).
        gauge_fix: zero the generator inside equal-eigenvalue blocks (default).

    Returns:
        :class:`FrameTrajectory` (frames (T, D, r), weights (r,)); every frame is orthonormal to round-off.
    """
    temperature = check_temperature(temperature)
    batch = key_batch_shape(key)
    if batch and len(batch) != 1:
        raise ValueError(f"key must be one key or a 1-D batch of keys, got a batch of shape {batch}")
    key = key if batch else check_noise_key(key, temperature)
    equation = check_choice(equation, FRAME_EQUATIONS, "equation")
    gauge_fix = check_flag(gauge_fix, "gauge_fix")
    H, drive = split_drive(H)
    site_spins = _site_spins(H, spins, drive)
    dim = math.prod(site_dims(site_spins))
    if H is not None and not isinstance(H, SpinModel):
        H = check_hamiltonian(H, "H")
    state = read_initial_state(rho0, dim)
    if state.batch_shape:
        raise ValueError(f"rho0 must be one state (one trajectory per call; vmap over keys for an ensemble), got "
                         f"a batch of shape {state.batch_shape}")
    if not state.known:
        raise ValueError("rho0 must be known on the host (its eigendecomposition is taken there), not traced")
    ts = host_times(ts)
    if drive is not None:
        if drive.dim != dim:
            raise ValueError(f"H: the drive acts on dimension {drive.dim}, the sites {tuple(site_spins)} on {dim}")
        drive.check(ts)  # f(t) finite, timecallable matrices Hermitian, before compute
    kappa = check_kappa(kappa)
    sigma = noise_amplitudes(kappa, temperature, site_spins)
    thermal = thermal_hamiltonian(H, site_spins, sigma, drive)
    diffusion = concrete_value(sigma)
    width, drive_speed = _spectral_width(thermal, H, ts), drive_rate(drive, ts[0], ts[-1])
    rate = None if width is None or drive_speed is None else max(width, drive_speed)
    dt = check_step(dt, rate, None if diffusion is None else float(np.max(diffusion) ** 2 / 2), "Hamiltonian")
    frame0, aux = Frame(gauge_fix=gauge_fix).initial(state)
    weights = device_array(aux["weights"], dtype=float)
    coupling, kernel = _coupling(weights, kappa, equation, gauge_fix)
    frame0 = device_array(frame0, dtype=complex)
    nodes, saved = nodes_with_jumps(ts, drive)  # a drive's jumps are step boundaries
    grid, shape = time_grid(nodes, dt), (len(site_spins), 3)
    if drive is None and noise == "steps" and frame0.shape[1] == dim <= FULL_RANK_MAX_DIM:  # eigenframe path
        dense = H.matrix() if isinstance(H, SpinModel) else thermal.dense
        ops = np.stack([np.asarray(o) for o in site_spin_operators(site_spins)]).astype(complex)
        start = tuple(jnp.broadcast_to(p.reshape(p.shape + (1,) * len(batch)), p.shape + tuple(batch))
                      for p in _pair(frame0))
        frames = _integrate_full_rank(_pair(dense), HostArrays(ops.real, ops.imag), device_array(sigma, dtype=float),
                                      start, _pair(coupling), brownian_noise(noise, key, ts, shape, dt, brownian_tol), grid)
        frames = jnp.moveaxis(frames, 1, 0) if batch else frames
        return FrameTrajectory(frames, jnp.broadcast_to(weights, tuple(batch) + weights.shape), dt, grid.total_steps)
    def single(k):
        frames = _integrate(thermal, frame0, coupling, kernel, brownian_noise(noise, k, ts, shape, dt, brownian_tol),
                            grid)
        return frames if nodes.shape == ts.shape else frames[saved]  # the save times among the nodes

    if batch:
        return FrameTrajectory(jax.vmap(single)(key), jnp.broadcast_to(weights, tuple(batch) + weights.shape), dt,
                               grid.total_steps)
    return FrameTrajectory(single(key), weights, dt, grid.total_steps)
