r"""Why a solve failed: ONE enumeration of failure codes, each with its message and hint (as diffrax's ``RESULTS``).

``Result.stats["failure"]`` holds one code per trajectory (int32; 0 = success); the sweep store writes the same
codes (``/failure``) and :data:`FAILURE_REASONS` into its file, the sweep engine, the CLI and classical LLG read
them from here. Codes ≥ :attr:`Failure.BAD_H` come from the runtime checks of inputs that were traced when
:func:`~qllg_jax.solve` was called (values known on the host are checked before compute and raise ValueError).

To add a failure: append a member with the next free code (codes are stored in files: never renumber) and its
``(message, hint)``; the hint may use ``{max_steps}``. Everything that reports failures picks it up.
"""

from __future__ import annotations

import enum

_INPUT_HINT = ("traced inputs are checked at run time; pass valid values (see the README section "
               "'Errors and diagnostics')")
_STIFF = ", or try a stiff solver (solver='kvaerno5')"
_STIFF_COLLAPSE = " or the problem is extremely stiff (try solver='kvaerno5')"


class Failure(enum.IntEnum):
    """Failure codes of one trajectory. ``.message``: what happened; ``.hint``: what to try (``{max_steps}``)."""

    NONE = 0, "success", ""
    MAX_STEPS = 1, "max_steps reached", "raise max_steps (now {max_steps}), loosen rtol/atol" + _STIFF
    DT_COLLAPSE = (2, "step size collapsed", "the vector field most likely produced NaN/inf there (check H, rho0 or "
                   "the model for huge entries, custom observables for NaN)" + _STIFF_COLLAPSE)
    NONFINITE = 3, "NaN/inf in the saved output", "check custom observables and H/rho0 for huge entries; tighten rtol/atol"
    OTHER = 4, "solver failure", "try another solver or tolerances"
    BAD_H = 5, "invalid input: H is not Hermitian or not finite", _INPUT_HINT
    BAD_KAPPA = 6, "invalid input: kappa is negative or not finite", _INPUT_HINT
    BAD_STATE = 7, "invalid input: rho0 is not a state (trace, hermiticity, positivity or norm)", _INPUT_HINT
    BAD_TIMES = 8, "invalid input: ts is not finite and strictly increasing", _INPUT_HINT

    def __new__(cls, code: int, message: str, hint: str):
        member = int.__new__(cls, code)
        member._value_ = code
        member.message, member._hint = message, hint
        return member

    def hint(self, max_steps: int | None = None, implicit: bool = False) -> str:
        """The hint; ``implicit``: the solver is already implicit (no stiff-solver suggestion)."""
        text = self._hint.format(max_steps=max_steps)
        if implicit:
            text = text.replace(_STIFF, "").replace(_STIFF_COLLAPSE, " or the problem is extremely stiff")
        return text

    @classmethod
    def of(cls, code) -> Failure:
        """The member of an int code; an unknown code reads as :attr:`OTHER`."""
        try:
            return cls(int(code))
        except ValueError:
            return cls.OTHER

    @classmethod
    def from_diffrax(cls, result):
        """A diffrax ``RESULTS`` item (traced) → the code (int array)."""
        import diffrax
        import jax.numpy as jnp

        code = jnp.where(result == diffrax.RESULTS.max_steps_reached, cls.MAX_STEPS, cls.OTHER)
        code = jnp.where(result == diffrax.RESULTS.dt_min_reached, cls.DT_COLLAPSE, code)
        return jnp.where(result == diffrax.RESULTS.successful, cls.NONE, code)


FAILURE_REASONS = {int(f): f.message for f in Failure}
"""code → message, as stored in sweep files (``failure_reasons``)."""


def failure_message(saved, stats, success, ts, max_steps: int, implicit: bool = False, what: str = "q-LLG solve") -> str:
    """Which trajectory failed, why, the time it reached and a hint, from a concrete result: ``saved`` (pytree of
    (..., T, …) arrays), ``stats`` (``failure``, ``t_reached`` (...,)), ``success`` bool (...,), ``ts`` (T,)."""
    import jax
    import numpy as np

    success = np.asarray(success)
    flat_success = success.reshape(-1)
    bad = int(np.argwhere(~flat_success)[0, 0])
    ts_np = np.asarray(ts)
    failure = Failure.of(np.asarray(stats["failure"]).reshape(-1)[bad])
    t_reached = float(np.asarray(stats["t_reached"]).reshape(-1)[bad])
    where = ""
    if failure == Failure.NONFINITE:
        for path, leaf in jax.tree_util.tree_flatten_with_path(saved)[0]:
            values = np.asarray(leaf).reshape((flat_success.size, len(ts_np), -1))[bad]
            rows = np.nonzero(~np.all(np.isfinite(values), axis=-1))[0]
            if rows.size:
                name = "/".join(str(getattr(k, "key", k)) for k in path)
                where = f" ('{name}' first non-finite at t = {ts_np[rows[0]]:.6g})"
                t_reached = ts_np[rows[0]]
                break
    elif not np.isfinite(t_reached):  # backsolve: the last save time with a finite trace
        trace = np.asarray(saved["invariants"]["trace"]).reshape(flat_success.size, -1)[bad]
        finite = np.isfinite(trace)
        t_reached = float(ts_np[finite.nonzero()[0][-1]]) if finite.any() else float(ts_np[0])
    element = f" (batch element {bad})" if flat_success.size > 1 or success.ndim > 0 else ""
    if failure >= Failure.BAD_H:  # an input check: nothing was integrated
        return f"{what} failed{element}: {failure.message}; hint: {failure.hint(max_steps, implicit)}"
    return (f"{what} failed{element}: {failure.message}{where} at t = {t_reached:.6g} of [{ts_np[0]:.6g}, "
            f"{ts_np[-1]:.6g}]; hint: {failure.hint(max_steps, implicit)}")


def _quiet_callback_log():
    """JAX logs every exception raised in a callback ("jax.pure_callback failed" and its traceback on stderr) before
    it raises it again wrapped in its runtime error: drop that duplicate for ours (the error itself still raises)."""
    import logging

    class _Ours(logging.Filter):
        def filter(self, record):
            error = record.exc_info[1] if record.exc_info else None
            return not getattr(error, "qllg_failure", False)

    logging.getLogger("jax._src.callback").addFilter(_Ours())


_quiet_callback_log()


def error_if_failed(tree, failure, describe, context=None):
    """``tree`` (a pytree) unchanged, but running it raises :class:`~qllg_jax.SolveError` when any ``failure`` code
    (int array) is nonzero: the runtime error of a solve that runs under the caller's ``jax.jit``/``vmap``/``grad``.

    ``describe(codes, host_tree, host_context)`` builds the message on the host from numpy values (``codes`` with
    the caller's vmap axes first, ``tree`` and ``context`` alike), so the message can be the eager one (reason,
    batch element, time reached, hint). The check costs one ``lax.cond`` per call; the host callback (which moves
    the tree to the host) runs only when something failed. Tangents pass through unchanged.

    JAX shows the error as ``JaxRuntimeError: INTERNAL: CpuCallback error calling callback: Traceback …`` with the
    frames of the call inside and this message as its LAST line, ``qllg_jax.SolveError: q-LLG solve failed …``.
    """
    import equinox as eqx
    import equinox.internal as eqxi
    import jax
    import jax.numpy as jnp
    import numpy as np

    from .result import SolveError

    dynamic, static = eqx.partition(tree, eqx.is_array)
    leaves, treedef = jax.tree_util.tree_flatten(dynamic)

    def raise_on_host(codes, ctx, *values):
        codes = np.asarray(codes)
        if np.any(codes != 0):
            host = eqx.combine(jax.tree_util.tree_unflatten(treedef, [np.asarray(v) for v in values]), static)
            error = SolveError(describe(codes, host, None if context is None else np.asarray(ctx)))
            error.qllg_failure = True
            raise error
        return values

    @jax.custom_jvp
    def checked(codes, ctx, *values):
        def fail():
            shapes = tuple(jax.ShapeDtypeStruct(v.shape, v.dtype) for v in values)
            return jax.pure_callback(raise_on_host, shapes, codes, ctx, *values, vmap_method="broadcast_all")

        return jax.lax.cond(eqxi.unvmap_any(jnp.any(codes != 0)), fail, lambda: tuple(values))

    @checked.defjvp
    def checked_jvp(primals, tangents):
        return checked(*primals), tuple(tangents[2:])

    ctx = jnp.zeros(()) if context is None else context
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, list(checked(failure, ctx, *leaves))), static)
