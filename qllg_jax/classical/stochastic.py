r"""Stochastic (finite-temperature) classical LLG: Brown's thermal field, integrated by rotations.

On every site k a white-noise field ξ_k(t) joins the effective field b_k = −(1/s_k) ∂E/∂m_k in Gilbert's form,

.. math:: \dot{\mathbf m}_k = \mathbf m_k\times(\mathbf b_k + \boldsymbol\xi_k) - \alpha\,\mathbf m_k\times\dot{\mathbf m}_k,
          \qquad \langle \xi_{k,a}(t)\,\xi_{l,b}(t')\rangle = 2D_k\,\delta_{kl}\delta_{ab}\,\delta(t-t'),
          \qquad D_k = \frac{\alpha\,\tau}{s_k},

integrated in Landau–Lifshitz form (ṁ = [m×B − α m×(m×B)]/(1 + α²), B = b + ξ) in the **Stratonovich** sense;
τ = k_B T in the model's energy unit E0 (:meth:`qllg_jax.Units.temperature`), s_k the site's spin (S_k → s_k m_k).
This D is Brown's fluctuation–dissipation value: the stationary law of the directions is Boltzmann's,
P(m) ∝ exp(−E(m)/τ); one spin in a field b along z has ⟨m_z⟩ = L(s b/τ), L(x) = coth x − 1/x (Langevin).

Integrator (structure preserving): ṁ_k = ω_k × m_k with the angular velocity
ω_k = [−B_k + α m_k × B_k]/(1 + α²). Over a step h with noise increments ΔW_k (noise.py), the rotation vector is
Θ_k(m) = [−B_k + α m_k×B_k]/(1 + α²) with B_k = b_k(m) h + σ_k ΔW_k, σ_k = √(2D_k), and a stochastic Heun step in
the Lie algebra so(3)^N:

.. math:: \mathbf m^* = R(\Theta(\mathbf m_n))\,\mathbf m_n,\qquad
          \mathbf m_{n+1} = R\big(\tfrac12[\Theta(\mathbf m_n) + \Theta(\mathbf m^*)]\big)\,\mathbf m_n

(R = :func:`~qllg_jax.thermal.lie.rational_rotate`, an exact rotation equal to the exponential map to O(|Θ|³), the same
ΔW in both stages). Every step is a rotation, so |m_k| = 1 to round-off (no renormalisation). Consistent with Stratonovich calculus; strong order 1/2 (the noise is not commutative:
Lévy areas are not sampled), deterministic order 2 (τ = 0). Fixed step, checked against the fastest precession
(:func:`qllg_jax.thermal.noise.check_step`).

Implementation: the classical energy is quadratic in m, so b(m) = b⁰ + A m exactly (b⁰ = b(0), A = ∂b/∂m, taken once);
the state is kept as three component arrays (N, *K) with the trajectories (K) last and contiguous, and a batch of
keys runs as one ensemble (``noise="steps"``: counter-based Threefry draws, :class:`~qllg_jax.thermal.noise.StepNoise`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array
from .._checks import check_kappa, concrete_value, is_concrete
from ..drives import Constant
from ..hamiltonians import SpinModel
from ..thermal.drive import drive_rate, nodes_with_jumps, split_drive
from ..thermal.lie import cross, rational_rotate
from ..thermal.noise import (
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
from .llg import _check_m0, read_classical_model


def precession_bound(model: SpinModel) -> float | None:
    """A host upper bound of max_k |b_eff,k| (the fastest classical precession, rad per ħ/E0), None if traced.

    |b_eff,k| ≤ |b_k| + 2|K_k| s_k (s_k > 1/2) + Σ_{bonds ∋ k} ‖C_b‖_F s_other.
    """
    values = [concrete_value(x) for x in (model.field, model.anisotropy, model.exchange, model.dmi,
                                          model.anisotropic_exchange)]
    if any(v is None for v in values):
        return None
    field, anisotropy = values[0], values[1]
    s = np.asarray(model.spins, dtype=float)
    bound = np.linalg.norm(field, axis=-1) + np.where(s > 0.5, 2 * np.abs(anisotropy) * s, 0.0)
    if model.bonds:
        with jax.ensure_compile_time_eval():  # a constant model inside an enclosing jit
            couplings = np.linalg.norm(np.asarray(model.bond_couplings()), axis=(-2, -1))
        for (i, j), c in zip(model.bonds, couplings):
            bound[i] += c * s[j]
            bound[j] += c * s[i]
    return float(np.max(bound))


UNROLL_SITES = 8
"""Up to this many sites b⁰ + A m is written out term by term (fused with the step); above, one contraction."""


class AffineField(eqx.Module):
    """b_k(m) = b⁰_k + Σ_l A_kl m_l (exact: the classical energy is quadratic in m). b0 (N, 3), A (N, 3, N, 3);
    ``terms``: the (a, l, c) with a non-zero column A[:, a, l, c] (all of them when A is traced)."""

    b0: jax.Array
    A: jax.Array
    terms: tuple[tuple[int, int, int], ...] = eqx.field(static=True)

    def __call__(self, m):
        """b(m) for component arrays m = (mx, my, mz), each (N, *K); returns the same layout."""
        n = self.b0.shape[0]
        lead = lambda v: v.reshape(v.shape + (1,) * (m[0].ndim - 1))  # noqa: E731  (N,) -> (N, 1, ...)
        if n > UNROLL_SITES:
            stacked = jnp.stack(m, axis=1)  # (N, 3, *K)
            field = jnp.einsum("kalc,lc...->ka...", self.A, stacked) + self.b0.reshape(self.b0.shape + (1,) * (m[0].ndim - 1))
            return tuple(field[:, a] for a in range(3))
        out = [lead(self.b0[:, a]) for a in range(3)]
        for a, l, c in self.terms:
            out[a] = out[a] + lead(self.A[:, a, l, c]) * m[c][l]
        return tuple(jnp.broadcast_to(o, m[0].shape) for o in out)


class DrivenField(eqx.Module):
    """b_k(m, t) = b_static(m) + Σ_j c_j(t)·b_j(m) for a driven model (every term a SpinModel, each field affine
    in m: :class:`AffineField`); ``coefficients``: the modulated/pwc terms (their ``coefficient(t)``)."""

    statics: tuple
    parts: tuple
    coefficients: tuple

    def __call__(self, m, t):
        out = None
        for static in self.statics:
            field = static(m)
            out = field if out is None else tuple(a + b for a, b in zip(out, field))
        for term, part in zip(self.coefficients, self.parts):
            c = term.coefficient(t)
            contribution = tuple(c * x for x in part(m))
            out = contribution if out is None else tuple(a + b for a, b in zip(out, contribution))
        return out


def driven_field(model) -> AffineField | DrivenField:
    """The classical field of a SpinModel (:class:`AffineField`) or of a driven model (:class:`DrivenField`)."""
    if isinstance(model, SpinModel):
        return affine_field(model)
    statics = tuple(affine_field(t.operator_) for t in model.terms if isinstance(t, Constant))
    driven = [t for t in model.terms if not isinstance(t, Constant)]
    return DrivenField(statics, tuple(affine_field(t.operator_) for t in driven), tuple(driven))


def driven_precession_bound(model, t0: float, t1: float) -> float | None:
    """:func:`precession_bound` of a SpinModel, or for a driven model the static bound plus Σ_j max|c_j|·bound_j."""
    if isinstance(model, SpinModel):
        return precession_bound(model)
    statics = [precession_bound(t.operator_) for t in model.terms if isinstance(t, Constant)]
    driven = [t for t in model.terms if not isinstance(t, Constant)]
    with jax.ensure_compile_time_eval():  # host values, also while an enclosing jit traces
        amplitudes = [concrete_value(t._amplitude_bound(t0, t1)) if is_concrete(t) else None for t in driven]
    parts = [precession_bound(t.operator_) for t in driven]
    if any(x is None for x in statics + amplitudes + parts):
        return None
    return sum(statics) + sum(float(np.max(a)) * p for a, p in zip(amplitudes, parts))


@eqx.filter_jit
def _field_and_jacobian(model: SpinModel):
    """b(0) and ∂b/∂m of the (affine) classical field, in one program (eagerly, jacfwd's ops would each compile)."""
    zero = jnp.zeros((model.n_sites, 3))
    return model.classical_field(zero), jax.jacfwd(model.classical_field)(zero)


def affine_field(model: SpinModel) -> AffineField:
    b0, A = _field_and_jacobian(model)
    value = concrete_value(A)
    n = model.n_sites
    mask = np.ones((3, n, 3), bool) if value is None else np.any(value != 0, axis=0)
    terms = tuple((a, l, c) for a in range(3) for l in range(n) for c in range(3) if mask[a, l, c])
    return AffineField(b0, A, terms)


def _rotation_vector(field, m, kick, h, alpha):
    """Θ(m) of the module docstring, component tuples (N, *K): B = b(m) h + σ ΔW, Θ = (−B + α m×B)/(1 + α²)."""
    b = tuple(f * h + k for f, k in zip(field(m), kick))
    turn = cross(m, b)
    return tuple((alpha * t - x) / (1 + alpha**2) for t, x in zip(turn, b))


def heun_step(field, m, t, h, dw, sigma, alpha, one):
    """One stochastic Heun step in so(3)^N (module docstring) over [t, t + h] on component tuples m (N, *K), dw
    (N, 3, *K). A driven field is evaluated at the midpoint t + h/2 in both stages (:mod:`qllg_jax.thermal.drive`)."""
    if isinstance(field, DrivenField):
        middle, driven = t + h / 2, field
        field = lambda m: driven(m, middle)  # noqa: E731
    scale = sigma.reshape(sigma.shape + (1,) * (dw.ndim - 2))
    kick = materialise(tuple(scale * dw[:, a] for a in range(3)), one)
    theta0 = materialise(_rotation_vector(field, m, kick, h, alpha), one)
    predictor = materialise(rational_rotate(theta0, m), one)
    theta1 = _rotation_vector(field, predictor, kick, h, alpha)
    mean = materialise(tuple(0.5 * (a + b) for a, b in zip(theta0, theta1)), one)
    return rational_rotate(mean, m)


@eqx.filter_jit
def _integrate(field, m0, alpha, sigma, noise, grid):
    """m0 components (N, *K) → m(t) (T, N, *K, 3)."""
    step = lambda m, t, h, dw, one: heun_step(field, m, t, h, dw, sigma, alpha, one)  # noqa: E731
    return jnp.stack(integrate_fixed(step, m0, noise, grid), axis=-1)


def stochastic_llg(
    model: SpinModel,
    m0,
    ts,
    alpha,
    *,
    temperature,
    key=None,
    dt: float | None = None,
    noise: str = "tree",
    brownian_tol: float | None = None,
) -> jax.Array:
    """One trajectory of the stochastic LLG (module docstring) from ``m0``, saved at ``ts``.

    Args:
        model: the :class:`~qllg_jax.SpinModel` (energies in E0), or a driven H of SpinModel terms (``H0 +
            q.pulses.field_drive(H0, pulse, b)``, ``q.pwc`` of a SpinModel): the field b(m, t) is evaluated at each
            step's midpoint and the drive's jumps are step boundaries (:mod:`qllg_jax.thermal.drive`).
        m0: initial directions (N, 3) (normalised here).
        ts: save times (T,), strictly increasing, known on the host; ħ/E0.
        alpha: Gilbert damping α ≥ 0.
        temperature: τ = k_B T ≥ 0 in E0 (scalar; vmap over it for several).
        key: the trajectory's ``jax.random`` key (required at τ > 0); same key ⇒ the same path, bit for bit. A batch
            of keys (K,) runs K trajectories as one ensemble (fast with ``noise="steps"``) → m(t) (K, T, N, 3).
        dt: fixed step (ħ/E0); default: precession (a drive's amplitude included, or the drive's own rate if
            faster) ≤ 0.05 rad and rms noise rotation ≤ 0.25 rad per step.
        noise: ``"tree"`` (VirtualBrownianTree: h and h/2 see the same path) or ``"steps"`` (one counter-based draw
            per step: the fast choice for ensembles).
        brownian_tol: the tree's resolution (default min((t1 − t0)/2^16, dt/2)); the path depends on it.

    Returns:
        m(t), shape (T, N, 3), unit vectors (to round-off). An ensemble: ``jax.vmap`` over keys.
        Works under ``jax.jit``/``vmap`` (model, m0, α, τ and the key may be traced; then pass ``dt``) and
        ``jax.grad`` (pathwise derivatives for a fixed key).
    """
    model, n_sites = read_classical_model(model)
    drive = split_drive(model)[1]
    temperature = check_temperature(temperature)
    batch = key_batch_shape(key)
    if batch and len(batch) != 1:
        raise ValueError(f"key must be one key or a 1-D batch of keys, got a batch of shape {batch}")
    key = key if batch else check_noise_key(key, temperature)
    m0 = _check_m0(m0, n_sites)
    ts = host_times(ts)
    if drive is not None:
        drive.check(ts)  # f(t) finite on the save grid, before compute
    alpha = check_kappa(alpha, "alpha")
    sigma = noise_amplitudes(alpha, temperature, model.spins)
    diffusion = concrete_value(sigma)
    bound, drive_speed = driven_precession_bound(model, ts[0], ts[-1]), drive_rate(drive, ts[0], ts[-1])
    rate = None if bound is None or drive_speed is None else max(bound, drive_speed)
    dt = check_step(dt, rate, None if diffusion is None else float(np.max(diffusion) ** 2 / 2), "model")
    nodes, saved = nodes_with_jumps(ts, drive)  # a drive's jumps are step boundaries
    grid = time_grid(nodes, dt)
    field = driven_field(model)
    sigma = device_array(sigma, dtype=float)
    pick = (lambda m: m) if nodes.shape == ts.shape else (lambda m: m[saved])  # noqa: E731  (the save times)
    if batch and noise == "tree":  # one Brownian tree per key
        run = lambda k: pick(_integrate(field, _components(m0, ()), alpha, sigma,  # noqa: E731
                                        brownian_noise(noise, k, ts, (n_sites, 3), dt, brownian_tol), grid))
        return jax.vmap(run)(key)
    source = brownian_noise(noise, key, ts, (n_sites, 3), dt, brownian_tol)
    m = pick(_integrate(field, _components(m0, batch), alpha, sigma, source, grid))  # (T, N, *K, 3)
    return jnp.moveaxis(m, 2, 0) if batch else m


def _components(m0, batch):
    return tuple(jnp.broadcast_to(m0[:, a].reshape((-1,) + (1,) * len(batch)), m0.shape[:1] + tuple(batch))
                 for a in range(3))
