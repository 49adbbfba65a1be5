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

(R = Rodrigues' rotation, the same ΔW in both stages). Every step is a rotation, so |m_k| = 1 to round-off
(no renormalisation). Consistent with Stratonovich calculus; strong order 1/2 (the noise is not commutative:
Lévy areas are not sampled), deterministic order 2 (τ = 0). Fixed step, checked against the fastest precession
(:func:`qllg_jax.thermal.noise.check_step`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_kappa, concrete_value
from ..hamiltonians import SpinModel
from ..thermal.lie import rotate
from ..thermal.noise import (
    brownian_noise,
    check_noise_key,
    check_step,
    check_temperature,
    host_times,
    integrate_fixed,
    noise_amplitudes,
    time_grid,
)
from .llg import _check_m0


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


def _rotation_vector(model, m, dw, sigma, h, alpha):
    """Θ(m) (N, 3) of the module docstring for the step h and noise increments dw (N, 3)."""
    b = model.classical_field(m) * h + sigma[:, None] * dw
    return (-b + alpha * jnp.cross(m, b)) / (1 + alpha**2)


def heun_step(model, m, h, dw, sigma, alpha):
    """One stochastic Heun step in so(3)^N (module docstring); m (N, 3) unit vectors → m (N, 3)."""
    theta0 = _rotation_vector(model, m, dw, sigma, h, alpha)
    predictor = rotate(theta0, m)
    theta1 = _rotation_vector(model, predictor, dw, sigma, h, alpha)
    return rotate(0.5 * (theta0 + theta1), m)


@eqx.filter_jit
def _integrate(model, m0, alpha, sigma, noise, grid):
    return integrate_fixed(lambda m, t, h, dw: heun_step(model, m, h, dw, sigma, alpha), m0, noise, grid)


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
        model: the :class:`~qllg_jax.SpinModel` (energies in E0).
        m0: initial directions (N, 3) (normalised here).
        ts: save times (T,), strictly increasing, known on the host; ħ/E0.
        alpha: Gilbert damping α ≥ 0.
        temperature: τ = k_B T ≥ 0 in E0 (scalar; vmap over it for several).
        key: the trajectory's ``jax.random`` key (required at τ > 0); same key ⇒ the same path, bit for bit.
        dt: fixed step (ħ/E0); default: precession ≤ 0.05 rad and rms noise rotation ≤ 0.25 rad per step.
        noise: ``"tree"`` (VirtualBrownianTree: h and h/2 see the same path) or ``"steps"`` (one draw per step).
        brownian_tol: the tree's resolution (default min((t1 − t0)/2^16, dt/2)); the path depends on it.

    Returns:
        m(t), shape (T, N, 3), unit vectors (to round-off). An ensemble: ``jax.vmap`` over keys.
        Works under ``jax.jit``/``vmap`` (model, m0, α, τ and the key may be traced; then pass ``dt``) and
        ``jax.grad`` (pathwise derivatives for a fixed key).
    """
    if not isinstance(model, SpinModel):
        raise ValueError(f"model must be a SpinModel (see qllg_jax.spin_model), got {type(model).__name__}")
    temperature = check_temperature(temperature)
    key = check_noise_key(key, temperature)
    m0 = _check_m0(m0, model.n_sites)
    ts = host_times(ts)
    alpha = check_kappa(alpha, "alpha")
    sigma = noise_amplitudes(alpha, temperature, model.spins)
    diffusion = concrete_value(sigma)
    rate = precession_bound(model)
    dt = check_step(dt, rate, None if diffusion is None else float(np.max(diffusion) ** 2 / 2), "model")
    grid = time_grid(ts, dt)
    source = brownian_noise(noise, key, ts, (model.n_sites, 3), dt, brownian_tol)
    return _integrate(model, m0, alpha, sigma, source, grid)
