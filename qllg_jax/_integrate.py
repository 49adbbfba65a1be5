r"""The one diffrax call every integrating path of :func:`qllg_jax.solve` shares, and what is saved per time.

Complex states are integrated in real form: Hermitian ϱ (d, d) via :func:`pack_hermitian` (d² reals), kets
and frames (D, r) as a real (2, D, r) stack — diffrax's error control then sees every real degree of freedom
once and all stages run in real arithmetic (measurement: ``benchmarks/complex_vs_real.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from . import observables as obs

GRADIENTS = {
    "checkpoint": diffrax.RecursiveCheckpointAdjoint,
    "forward": diffrax.ForwardMode,
    "backsolve": diffrax.BacksolveAdjoint,
}


class SolverConfig(eqx.Module):
    """Static options of one solve (shared by the dense and fast paths)."""

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
    gauge_fix: bool = eqx.field(static=True, default=True)


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


def pack_complex(x: jax.Array) -> jax.Array:
    """Complex (...) → real (2, ...): real and imaginary parts stacked."""
    return jnp.stack([jnp.real(x), jnp.imag(x)])


def unpack_complex(y: jax.Array) -> jax.Array:
    return y[0] + 1j * y[1]


CHECKPOINT_BYTES = 4 * 2**20  # memory for reverse-mode checkpoints per trajectory (issue 6)


def _adjoint(config, y0):
    """The diffrax adjoint for ``config.gradient``. ``"checkpoint"``: as many checkpoints as fit in
    :data:`CHECKPOINT_BYTES` (≈ 16 copies of y per step of carry), at most ``max_steps``. With diffrax's
    default (log(max_steps) checkpoints) the backward pass recomputes the forward solve several times; with
    enough checkpoints (2048 for the dimer) it recomputes nothing (grad/forward time on the dimer sweep of
    benchmarks/bench_gradients.py: see the README, "Differentiable q-LLG")."""
    if config.gradient != "checkpoint":
        return GRADIENTS[config.gradient]()
    size = 16 * max(y0.size * y0.dtype.itemsize, 1)
    return diffrax.RecursiveCheckpointAdjoint(checkpoints=int(min(config.max_steps, max(64, CHECKPOINT_BYTES // size))))


def integrate(field: Callable, y0: jax.Array, ts: jax.Array, config: SolverConfig, record: Callable, hermitian: bool):
    """Integrate ẏ = field(y) for complex y from ts[0] to ts[-1], saving ``record(y)`` at ts.

    ``hermitian``: y is a Hermitian matrix (packed to d² reals) rather than a general complex array.
    Returns (saved pytree with leading T axis, stats dict, success bool). ``stats`` holds the diffrax step
    counts, ``t_reached`` (the time the integration got to; NaN with ``gradient="backsolve"``) and
    ``failure`` (a :data:`FAILURE_REASONS` code). success is False on a diffrax failure (max_steps, step
    size below ``DTMIN_FRACTION`` of the span); NaN/inf in the saved values is flagged by the caller.
    """
    if config.complex_state:
        to_state, from_state = (lambda y: y), (lambda x: x)
    elif hermitian:
        to_state, from_state = unpack_hermitian, pack_hermitian
    else:
        to_state, from_state = unpack_complex, pack_complex

    save = lambda t, y, args: record(to_state(y))  # noqa: E731
    if config.gradient == "backsolve":
        saveat = diffrax.SaveAt(ts=ts)  # BacksolveAdjoint supports neither SaveAt(subs=...) nor SaveAt(fn=...)
        # BacksolveAdjoint differentiates only w.r.t. `args`: hoist the arrays `field` closes over (H, κ, ...)
        # (complex constants travel as (re, im) pairs: the backward solve's buffers are real)
        converted, consts = jax.closure_convert(field, y0)
        args = tuple((c.real, c.imag) if jnp.iscomplexobj(c) else c for c in consts)
        rebuild = lambda c: [x[0] + 1j * x[1] if isinstance(x, tuple) else x for x in c]  # noqa: E731
        term = diffrax.ODETerm(lambda t, y, c: from_state(converted(to_state(y), *rebuild(c))))
    else:  # also save the time actually reached (t1 on success), for failure messages
        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts, fn=save), diffrax.SubSaveAt(t1=True, fn=lambda t, y, args: t)])
        term, args = diffrax.ODETerm(lambda t, y, args: from_state(field(to_state(y)))), None
    sol = diffrax.diffeqsolve(
        term,
        config.solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=from_state(y0),
        saveat=saveat,
        stepsize_controller=diffrax.PIDController(
            rtol=config.rtol, atol=config.atol, dtmin=DTMIN_FRACTION * (ts[-1] - ts[0]), force_dtmin=False
        ),
        args=args,
        adjoint=_adjoint(config, y0),
        max_steps=config.max_steps,
        throw=False,
        progress_meter=diffrax.TqdmProgressMeter() if config.progress else diffrax.NoProgressMeter(),
    )
    if config.gradient == "backsolve":  # record the saved raw states afterwards
        ys, t_reached = jax.vmap(lambda y: save(None, y, None))(sol.ys), jnp.asarray(jnp.nan)
    else:
        ys, t_reached = sol.ys[0], sol.ys[1][0]
    reason = failure_code(sol.result)
    stats = {k: sol.stats[k] for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
    stats["t_reached"] = t_reached
    stats["failure"] = reason
    return ys, stats, reason == FAILURE_NONE


DTMIN_FRACTION = 1e-12
"""Steps below this fraction of the time span count as a step-size collapse (a NaN/inf field or extreme stiffness)."""

FAILURE_NONE, FAILURE_MAX_STEPS, FAILURE_DT_COLLAPSE, FAILURE_NONFINITE, FAILURE_OTHER = 0, 1, 2, 3, 4
FAILURE_REASONS = {
    FAILURE_NONE: "success",
    FAILURE_MAX_STEPS: "max_steps reached",
    FAILURE_DT_COLLAPSE: "step size collapsed",
    FAILURE_NONFINITE: "NaN/inf in the saved output",
    FAILURE_OTHER: "solver failure",
}
"""``Result.stats["failure"]`` codes (int per trajectory) → reason."""


def failure_code(result) -> jax.Array:
    """Map a diffrax ``RESULTS`` item to a :data:`FAILURE_REASONS` code. NaN/inf in the saved output
    (:data:`FAILURE_NONFINITE`) is detected once for every path, closed forms included, by ``solve``."""
    code = jnp.where(result == diffrax.RESULTS.max_steps_reached, FAILURE_MAX_STEPS, FAILURE_OTHER)
    code = jnp.where(result == diffrax.RESULTS.dt_min_reached, FAILURE_DT_COLLAPSE, code)
    return jnp.where(result == diffrax.RESULTS.successful, FAILURE_NONE, code)


def dense_record(rho: jax.Array, H: jax.Array, config: SolverConfig) -> dict:
    """What is saved per time on the dense path: invariants, observables and (optionally) ϱ (d, d)."""
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


def frame_record(frame, weights, apply_H, config: SolverConfig, key: str, keep_states: bool, dense_observables: bool) -> dict:
    """What is saved per time for ϱ = U diag(w) U† given as a frame U (D, r) (or a ket (D,), w = (1,)).

    Invariants use only U†U and U†HU (r × r): trace Σ w_j G_jj, purity Tr(WGWG), energy Σ w_j Re(U†HU)_jj,
    ``orthonormality_error`` max |U†U − 𝟙| and ``spectrum`` eig(W^½ G W^½) (r,). The dense ϱ is built only
    for ``keep_states`` (saved as ``states``) or ``dense_observables`` (callables get ϱ), i.e. small D.
    """
    u = frame if frame.ndim == 2 else frame[:, None]
    w = weights.astype(u.real.dtype)
    gram = jnp.conj(u.T) @ u
    projected_h = jnp.conj(u.T) @ apply_H(u)
    sqrt_w = jnp.sqrt(w)
    weighted = w[:, None] * gram
    out = {
        "invariants": {
            "trace": jnp.real(jnp.sum(w * jnp.diagonal(gram))),
            "purity": jnp.real(jnp.sum(weighted * weighted.T)),
            "energy": jnp.real(jnp.sum(w * jnp.diagonal(projected_h))),
            "orthonormality_error": jnp.max(jnp.abs(gram - jnp.eye(u.shape[1]))),
            "spectrum": jnp.linalg.eigvalsh(sqrt_w[:, None] * gram * sqrt_w[None, :]),
        },
        key: frame,
    }
    out["observables"] = {}
    if keep_states or dense_observables:
        rho = (u * w) @ jnp.conj(u.T)
        out["observables"] = {name: fn(rho) for name, fn in config.observables}
        if keep_states:
            out["states"] = rho
    return out
