r"""Classical atomistic LLG (paper eq. 1 in Landau–Lifshitz form) on the same :class:`~qllg_jax.SpinModel`.

Each site carries a unit vector m_k (S_k → s_k m_k) and precesses about its effective field
b_k = −(1/s_k) ∂E/∂m_k (:meth:`SpinModel.classical_field`, autodiff of the classical energy):

.. math:: \dot{\mathbf m}_k = \frac{1}{1+\alpha^2}\Big[\mathbf m_k\times\mathbf b_k
          - \alpha\,\mathbf m_k\times(\mathbf m_k\times\mathbf b_k)\Big],

equivalent to Gilbert's form ṁ = m×b − α m×ṁ (eq. 1). Units are those of the model: energies in E0, times in
ħ/E0 (a spin-1/2 in H = −b·S precesses at angular frequency |b|, exactly like its quantum Bloch vector; the paper's
eq. 6). For physical inputs (tesla, meV, ps) convert with :class:`qllg_jax.units.Units`.

Drives: ``model`` may be a driven H built from SpinModels (``H0 + q.pulses.field_drive(H0, pulse, b)``,
``+ q.pulses.rotating_field(...)``, ``+ q.pwc(times, values, model_1)``): H(t) = H0 + Σ_k c_k(t) H_k, and since the
classical energy is linear in the model's parameters the field is b_k(t) = b_k^{H0}(m) + Σ_j c_j(t) b_k^{H_j}(m) —
a field pulse drives the classical spins with the same b(t) as the quantum ones. The step-size controller lands
on the drive's edges and its short pulses' grids (as in :func:`~qllg_jax.solve`).
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import (
    check_finite,
    check_kappa,
    check_positive,
    check_solver,
    check_times,
    concrete_value,
    is_concrete,
    real_array,
)
from .._failures import Failure, error_if_failed
from .._options import DEFAULTS
from ..drives import Constant, TimeCallable, TimeDependent, drive_times
from ..hamiltonians import SpinModel, dimer_model
from ..result import SolveError
from .._diffrax_compile import install as _install_diffrax_compile_fix

_install_diffrax_compile_fix()  # diffrax's t1 − 100 ULP chain in closed form: same numbers, less compile


def effective_field(model, m: jax.Array, t=0.0) -> jax.Array:
    """b_eff (N, 3) at time t: ``model.classical_field(m)`` for a SpinModel; for a driven H (a
    :class:`~qllg_jax.TimeDependent` of SpinModel terms, see :func:`read_classical_model`) the sum of its terms'
    fields weighted by their coefficients c_j(t) (1 for the constant terms)."""
    if isinstance(model, SpinModel):
        return model.classical_field(m)
    fields = [(jnp.ones(()) if isinstance(term, Constant) else term.coefficient(t)) * term.operator_.classical_field(m)
              for term in model.terms]
    return sum(fields)


def read_classical_model(model):
    """``model`` checked for classical LLG: a SpinModel, or a driven H whose every term is a SpinModel (constant,
    modulated or pwc) on the same sites, unbatched. Returns (model, number of sites)."""
    if isinstance(model, SpinModel):
        return model, model.n_sites
    if not isinstance(model, TimeDependent):
        raise ValueError(f"model must be a SpinModel (see qllg_jax.spin_model) or a driven H built from SpinModels, "
                         f"got {type(model).__name__}")
    for term in model.terms:
        if isinstance(term, TimeCallable) or not isinstance(getattr(term, "operator_", None), SpinModel):
            kind = "a timecallable matrix" if isinstance(term, TimeCallable) else "a dense matrix term"
            raise TypeError(f"model: classical LLG needs every term of a driven H to be a SpinModel (a field or "
                            f"coupling on the model's sites, e.g. q.pulses.field_drive(H0, pulse, b)); got {kind} "
                            f"({type(term).__name__}), which has no classical energy")
    if model.batch_shape:
        raise ValueError(f"model: a driven H with batch axes {model.batch_shape} (pwc values or pulse parameters with "
                         "leading axes); map classical_llg over the drive parameter with jax.vmap")
    return model, len(model.spins)


def llg_rhs(model, m: jax.Array, alpha, t=0.0) -> jax.Array:
    """Right-hand side ṁ (N, 3) of the LL-form LLG for unit vectors ``m`` (N, 3), damping α ≥ 0 and a SpinModel
    or driven ``model`` (evaluated at time ``t``)."""
    b = effective_field(model, m, t)
    precession = jnp.cross(m, b)
    return (precession - alpha * jnp.cross(m, precession)) / (1 + alpha**2)


@eqx.filter_jit
def _integrate(model, m0, ts, alpha, solver, rtol, atol, max_steps, times=(None, None)):
    """m(t) at ts (T, N, 3), the failure code (0 = success; a :class:`~qllg_jax._failures.Failure`) and the time
    reached; ``times``: (jump_ts, step_ts) of a driven model (:func:`~qllg_jax.drives.drive_times`)."""
    term = diffrax.ODETerm(lambda t, m, args: llg_rhs(args[0], m, args[1], t))
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    jump_ts, step_ts = times
    if jump_ts is not None or step_ts is not None:
        controller = diffrax.ClipStepSizeController(controller, step_ts=step_ts, jump_ts=jump_ts)
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=m0,
        args=(model, alpha),
        saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True, fn=lambda t, y, args: t)]),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    return sol.ys[0], Failure.from_diffrax(sol.result), sol.ys[1][0]


def _failure_text(code, t_reached, ts, max_steps, what: str = "classical LLG solve") -> str:
    failure, ts = Failure.of(code), np.asarray(ts)
    return (f"{what} failed: {failure.message} at t = {float(t_reached):.6g} of [{ts[0]:.6g}, "
            f"{ts[-1]:.6g}]; hint: {failure.hint(max_steps)}")


def _check_failure(ms, code, t_reached, ts, max_steps):
    """Raise :class:`~qllg_jax.SolveError` (reason, time reached, hint) when the integration failed; under
    ``jax.jit``/``vmap`` the same message as a runtime error (:func:`~qllg_jax._failures.error_if_failed`)."""
    if not is_concrete(code, t_reached, ts):
        def describe(codes, host, ts):  # on the host, at run time (the caller's vmap axes first)
            first = int(np.flatnonzero(codes.reshape(-1))[0])
            return _failure_text(codes.reshape(-1)[first], host[1].reshape(-1)[first], ts.reshape(-1, ts.shape[-1])[0],
                                 max_steps, "classical LLG integration")

        return error_if_failed((ms, t_reached), code, describe, ts)[0]
    code = np.max(np.asarray(code))
    if code == 0:
        return ms
    raise SolveError(_failure_text(code, np.min(np.asarray(t_reached)), ts, max_steps))


def _check_m0(m0, n_sites: int):
    m0 = check_finite(real_array(m0, "m0"), "m0")
    if m0.shape != (n_sites, 3):
        raise ValueError(f"m0 must have shape ({n_sites}, 3) (one vector per site), got {m0.shape}")
    value = concrete_value(m0)  # a traced m0 (differentiating w.r.t. it) is only shape-checked
    if value is not None and np.any(np.linalg.norm(value, axis=-1) == 0):
        raise ValueError("m0 must hold non-zero vectors (they are normalised)")
    return m0 / jnp.linalg.norm(m0, axis=-1, keepdims=True)


def classical_llg(
    model,
    m0,
    ts,
    alpha,
    *,
    rtol: float = DEFAULTS.rtol,
    atol: float = DEFAULTS.atol,
    solver: diffrax.AbstractSolver | str | None = None,
    max_steps: int = DEFAULTS.max_steps,
) -> jax.Array:
    """Integrate classical LLG for the model's N spins from ``m0`` and save unit vectors at ``ts``.

    Args:
        model: the :class:`~qllg_jax.SpinModel` (Zeeman, exchange, DMI, anisotropy; energies in E0), or a driven H
            of SpinModel terms (``H0 + q.pulses.field_drive(H0, pulse, b)``, rotating fields, ``q.pwc`` of a
            SpinModel): the field then follows the drive (see the module docstring).
        m0: initial directions, shape (N, 3) (normalised here).
        ts: save times (T,), strictly increasing, in ħ/E0; integration starts at ts[0].
        alpha: Gilbert damping α ≥ 0 (dimensionless).
        rtol, atol: adaptive tolerances; solver: diffrax solver or name (default Tsit5).

        max_steps: step budget of the adaptive integrator.

    Returns:
        m(t), shape (T, N, 3). Works under ``jax.jit``, ``jax.vmap`` and ``jax.grad`` (w.r.t. model
        parameters, m0 and α).

    Raises:
        ValueError: invalid input (named argument), before any compute. :class:`~qllg_jax.SolveError`: the
        integration stopped early (max_steps reached, step size collapsed), with the time reached and a hint;
        inside ``jax.jit``/``vmap`` the same failure is a runtime error whose last line is this message.
    """
    model, n_sites = read_classical_model(model)
    m0 = _check_m0(m0, n_sites)
    ts = check_times(ts)
    times = (None, None)
    if isinstance(model, TimeDependent):
        grid = concrete_value(ts)
        if grid is not None:
            model.check(np.asarray(grid))  # f(t) finite on the save grid, before compute
        times = drive_times(model, ts)
    alpha = check_kappa(alpha, "alpha")
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    max_steps = check_positive(max_steps, "max_steps", integer=True)
    ms, code, t_reached = _integrate(model, m0, ts, alpha, check_solver(solver), rtol, atol, max_steps, times)
    return _check_failure(ms, code, t_reached, ts, max_steps)


def classical_dimer(B, J, D, m1, m2, ts, alpha, **kwargs) -> jax.Array:
    r"""The paper's classical dimer in figure units (E0 = μ_B·B0, time ħ/E0); returns m(t) of shape (T, 2, 3).

    The classical counterpart of :func:`~qllg_jax.dimer_hamiltonian`, built on ``dimer_model(B, J, D)``:
    fields b1 = B − J m2 − m2×D, b2 = B − J m1 + m1×D and

    .. math:: \dot{\mathbf m}_i = \frac{2}{1+\alpha^2}\big[\mathbf m_i\times\mathbf b_i
              - \alpha\,\mathbf m_i\times(\mathbf m_i\times\mathbf b_i)\big].

    ``B``, ``D``: (3,); ``J``: scalar; ``m1``, ``m2``: initial directions (3,); ``ts`` (T,); α ≥ 0.
    Keyword arguments go to :func:`classical_llg`.
    """
    directions = [real_array(m, name) for name, m in (("m1", m1), ("m2", m2))]
    for name, m in zip(("m1", "m2"), directions):
        if m.shape != (3,):
            raise ValueError(f"{name} must be a 3-vector (the initial direction of spin {name[1]}), got shape {m.shape}")
    m0 = jnp.stack(directions)
    return classical_llg(dimer_model(B, J, D), m0, ts, alpha, **kwargs)


def classical_energy(model: SpinModel, m) -> jax.Array:
    """Classical energy E(m) (energy units) for m of shape (..., N, 3) (vmapped over leading axes)."""
    if not isinstance(model, SpinModel):
        raise ValueError(f"model must be a SpinModel (see qllg_jax.spin_model), got {type(model).__name__}")
    m = check_finite(real_array(m, "m"), "m")
    if m.ndim < 2 or m.shape[-2:] != (model.n_sites, 3):
        raise ValueError(f"m must have shape (..., {model.n_sites}, 3) (one unit vector per site), got {m.shape}")
    f = model.classical_energy
    for _ in range(m.ndim - 2):
        f = jax.vmap(f)
    return f(m)
