r"""The diffrax driver: integrate ϱ̇ = f(ϱ, H) with an adaptive solver and save states or observables.

Internally the Hermitian ϱ (d, d) is integrated as one real (d, d) array (real part on and above the
diagonal, imaginary part below): exactly the d² real degrees of freedom, so the error control sees each
once and diffrax works in real arithmetic (``complex_state=True`` integrates the complex matrix instead;
both are tested, see ``benchmarks/complex_vs_real.py`` for the measurement behind the default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import observables as obs
from ._checks import check_choice, check_density_matrix, check_hamiltonian, check_kappa, check_ket, check_times, is_concrete
from .equations import EQUATIONS, STRATEGIES
from .hamiltonians import SpinModel
from .states import density_matrix


class SolveError(RuntimeError):
    """An integration that did not reach the final time (max_steps, step-size collapse, NaN)."""


GRADIENTS = {
    "checkpoint": diffrax.RecursiveCheckpointAdjoint,
    "forward": diffrax.ForwardMode,
    "backsolve": diffrax.BacksolveAdjoint,
}


def pack_hermitian(rho: jax.Array) -> jax.Array:
    """Hermitian (..., d, d) → real (..., d, d): Re ϱ on/above the diagonal, Im ϱ strictly below."""
    upper = jnp.triu(jnp.ones(rho.shape[-2:], dtype=bool))
    return jnp.where(upper, jnp.real(rho), jnp.imag(rho))


def unpack_hermitian(packed: jax.Array) -> jax.Array:
    """Inverse of :func:`pack_hermitian`."""
    re_upper = jnp.triu(packed)
    im_lower = jnp.tril(packed, -1)
    re = re_upper + jnp.swapaxes(jnp.triu(packed, 1), -1, -2)
    im = im_lower - jnp.swapaxes(im_lower, -1, -2)
    return re + 1j * im


class Diagnostics(eqx.Module):
    """Invariant checks of one solve (max over saved times; each is 0 for exact q-LLG dynamics).

    Attributes:
        trace_error: max |Tr ϱ(t) − Tr ϱ(0)|.
        hermiticity_error: max |ϱ − ϱ†|.
        purity_drift: max |Tr ϱ² (t) − Tr ϱ²(0)|.
        spectrum_drift: max |λ_i(t) − λ_i(0)| (NaN when states were not saved).
        energy_increase: largest rise of Tr(ϱH) between consecutive saves (≤ 0 for damped flows).
    """

    trace_error: jax.Array
    hermiticity_error: jax.Array
    purity_drift: jax.Array
    spectrum_drift: jax.Array
    energy_increase: jax.Array

    def as_dict(self) -> dict[str, float]:
        return {k: float(jnp.max(v)) for k, v in vars(self).items()}

    def check(self, tol: float = 1e-6) -> list[str]:
        """Names of the invariants violated by more than ``tol`` (energy: rises above tol·max(1, |E|))."""
        return [k for k, v in self.as_dict().items() if np.isfinite(v) and v > tol]


class Result(eqx.Module):
    """Output of :func:`solve`. Batch axes (...) of the inputs lead every array.

    Attributes:
        ts: save times, shape (T,).
        states: ϱ(t), shape (..., T, d, d), or None when ``save_states=False``.
        observables: dict name → array (..., T, *obs_shape) of requested observables.
        invariants: dict with ``trace``, ``purity``, ``energy``, ``hermiticity_error``, each (..., T).
        stats: dict with ``num_steps``, ``num_accepted_steps``, ``num_rejected_steps`` (...,).
        success: bool (...,): the integration reached ts[-1].
    """

    ts: jax.Array
    states: jax.Array | None
    observables: dict
    invariants: dict
    stats: dict
    success: jax.Array

    def diagnostics(self) -> Diagnostics:
        inv = self.invariants
        first = lambda x: x[..., :1]  # noqa: E731
        energy_rise = jnp.max(jnp.diff(inv["energy"], axis=-1), axis=-1, initial=0.0)
        if self.states is not None:
            spec = obs.spectrum(self.states)
            drift = jnp.max(jnp.abs(spec - spec[..., :1, :]), axis=(-2, -1))
        else:
            drift = jnp.full(inv["trace"].shape[:-1], jnp.nan)
        return Diagnostics(
            trace_error=jnp.max(jnp.abs(inv["trace"] - first(inv["trace"])), axis=-1),
            hermiticity_error=jnp.max(inv["hermiticity_error"], axis=-1),
            purity_drift=jnp.max(jnp.abs(inv["purity"] - first(inv["purity"])), axis=-1),
            spectrum_drift=drift,
            energy_increase=energy_rise,
        )


def _as_observable(name, value) -> Callable:
    if callable(value):
        return value
    op = jnp.asarray(value)
    if op.ndim != 2 or op.shape[0] != op.shape[1]:
        raise ValueError(f"observable {name!r} must be a callable rho -> array or a square operator, got shape {op.shape}")
    return lambda rho: obs.expectation(rho, op)


class _Config(eqx.Module):
    equation: str = eqx.field(static=True)
    strategy: str = eqx.field(static=True)
    solver: diffrax.AbstractSolver
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    save_states: bool = eqx.field(static=True)
    observables: tuple = eqx.field(static=True)
    gradient: str = eqx.field(static=True)
    complex_state: bool = eqx.field(static=True)
    progress: bool = eqx.field(static=True)


@eqx.filter_jit
def _solve_one(H, rho0, kappa, ts, config: _Config):
    field = EQUATIONS[config.equation](kappa, **({"strategy": config.strategy} if config.equation == "qllg" else {}))
    if config.complex_state:
        to_state, from_state, y0 = (lambda y: y), (lambda r: r), rho0
    else:
        to_state, from_state, y0 = unpack_hermitian, pack_hermitian, pack_hermitian(rho0)

    def vector_field(t, y, args):
        return from_state(field(to_state(y), H))

    def save(t, y, args):
        rho = to_state(y)
        out = {
            "invariants": {
                "trace": obs.trace(rho),
                "purity": obs.purity(rho),
                "energy": obs.energy(rho, H),
                "hermiticity_error": obs.hermiticity_error(rho),
            },
            "observables": {name: fn(rho) for name, fn in config.observables},
        }
        if config.save_states:
            out["states"] = rho
        return out

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        config.solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y0,
        saveat=diffrax.SaveAt(ts=ts, fn=save),
        stepsize_controller=diffrax.PIDController(rtol=config.rtol, atol=config.atol),
        adjoint=GRADIENTS[config.gradient](),
        max_steps=config.max_steps,
        throw=False,
        progress_meter=diffrax.TqdmProgressMeter() if config.progress else diffrax.NoProgressMeter(),
    )
    stats = {k: sol.stats[k] for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
    success = sol.result == diffrax.RESULTS.successful
    return sol.ys, stats, success


def _time_reached(ts, trace):
    finite = np.isfinite(np.asarray(trace))
    return float(np.asarray(ts)[finite.nonzero()[0][-1]]) if finite.any() else float(np.asarray(ts)[0])


def solve(
    H,
    rho0,
    ts,
    kappa=0.0,
    *,
    equation: str = "qllg",
    strategy: str = "auto",
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    max_steps: int = 100_000,
    observables: Mapping[str, Callable | jax.Array] | None = None,
    save_states: bool = True,
    gradient: str = "checkpoint",
    complex_state: bool = False,
    throw: bool = True,
    progress: bool = False,
) -> Result:
    r"""Integrate q-LLG (or q-LL / von Neumann) from ``rho0`` at ``ts[0]`` and save at ``ts``.

    .. math:: \dot\varrho = i[\varrho, H] + i\kappa[\varrho, \dot\varrho] \qquad (\hbar = 1)

    Args:
        H: Hamiltonian, array (..., d, d) (Hermitian, energy units) or a :class:`SpinModel`.
        rho0: initial density matrix (..., d, d), or a ket (..., d) (turned into |ψ⟩⟨ψ|).
        ts: save times (T,), strictly increasing, units ħ/E0; integration runs from ts[0] to ts[-1].
        kappa: dimensionless damping κ ≥ 0, scalar or batch (...,).
        equation: ``"qllg"`` (default), ``"qll"`` (Wieser) or ``"von_neumann"``.
        strategy: q-LLG linear solve: ``"auto"``, ``"eigen"``, ``"kron"`` or ``"krylov"``
            (see :mod:`qllg_jax.equations.resolvent`).
        solver: a diffrax solver; default ``diffrax.Tsit5()`` (``diffrax.Dopri8()`` for tight tolerances).
        rtol, atol: adaptive step-size tolerances (PID controller).
        max_steps: step budget; exceeding it raises :class:`SolveError` (or marks ``success=False``
            when ``throw=False``).
        observables: dict name → callable ϱ ↦ array, or name → operator (d, d) for Re Tr(ϱA); saved at ts.
        save_states: keep ϱ(t) (T, d, d); set False on long runs to save only observables.
        gradient: how reverse/forward derivatives flow through the solve: ``"checkpoint"`` (reverse mode,
            recursive checkpointing; default), ``"forward"`` (forward mode, for jacfwd with few parameters),
            ``"backsolve"`` (continuous adjoint, O(1) memory for very long runs).
        complex_state: integrate the complex matrix instead of the real packing.
        throw: raise on failure. Outside ``jax.jit`` this is a :class:`SolveError` naming the time reached;
            inside, an XLA runtime error. With ``throw=False`` check ``result.success``.
        progress: show a tqdm progress bar over simulation time.

    Batches: leading axes of ``H``, ``rho0`` and ``kappa`` broadcast and are vmapped. ``solve`` itself
    works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.

    Returns:
        :class:`Result` with ``ts`` (T,), ``states`` (..., T, d, d), ``observables``, ``invariants``, ``stats``.
    """
    check_choice(equation, EQUATIONS, "equation")
    check_choice(strategy, STRATEGIES, "strategy")
    check_choice(gradient, GRADIENTS, "gradient")
    if isinstance(H, SpinModel):
        H = H.matrix()
    H = check_hamiltonian(H, "H")
    d = H.shape[-1]
    rho0 = jnp.asarray(rho0)
    if rho0.ndim >= 1 and (rho0.ndim == 1 or rho0.shape[-1] != rho0.shape[-2]):
        rho0 = density_matrix(check_ket(rho0, "rho0", d), "rho0")
    rho0 = check_density_matrix(rho0, "rho0", d)
    ts = check_times(ts)
    kappa = check_kappa(kappa)
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
    if int(max_steps) < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    observables = dict(observables or {})
    config = _Config(
        equation=equation,
        strategy=strategy,
        solver=diffrax.Tsit5() if solver is None else solver,
        rtol=float(rtol),
        atol=float(atol),
        max_steps=int(max_steps),
        save_states=save_states,
        observables=tuple((name, _as_observable(name, fn)) for name, fn in observables.items()),
        gradient=gradient,
        complex_state=complex_state,
        progress=progress,
    )

    batch = jnp.broadcast_shapes(H.shape[:-2], rho0.shape[:-2], kappa.shape)
    if batch:
        n = int(np.prod(batch))
        flat = lambda x, core: jnp.broadcast_to(x, batch + core).reshape((n,) + core)  # noqa: E731
        run = jax.vmap(_solve_one, in_axes=(0, 0, 0, None, None))
        ys, stats, success = run(flat(H, (d, d)), flat(rho0, (d, d)), flat(kappa, ()), ts, config)
        ys, stats, success = jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), (ys, stats, success))
    else:
        ys, stats, success = _solve_one(H, rho0, kappa, ts, config)

    if throw:
        if is_concrete(success):
            if not bool(jnp.all(success)):
                bad = np.argwhere(~np.asarray(success).reshape(-1))[0, 0]
                trace_hist = np.asarray(ys["invariants"]["trace"]).reshape(-1, len(ts))[bad]
                raise SolveError(
                    f"integration failed (batch element {bad}) after reaching t = {_time_reached(ts, trace_hist):.6g} "
                    f"of {float(ts[-1]):.6g}; hint: raise max_steps (now {max_steps}), loosen rtol/atol, "
                    "or check H and rho0 for NaN/huge entries"
                )
        else:
            ys = eqx.error_if(ys, ~success, "q-LLG integration failed (max_steps reached or step size collapsed)")
    return Result(
        ts=ts,
        states=ys.get("states"),
        observables=ys["observables"],
        invariants=ys["invariants"],
        stats=stats,
        success=success,
    )
