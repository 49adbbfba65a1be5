r"""A driven H(t) in the fixed-step stochastic integrators (:mod:`.frames`, :mod:`qllg_jax.classical.stochastic`).

H(t) = H0 + Σ_k c_k(t) H_k + Σ_j F_j(t) (:mod:`qllg_jax.drives`) and the thermal field together:

- every step [t, t + h] evaluates the drive once, at the midpoint t + h/2, in both Heun stages. For a smooth
  drive that is second order in h, like the trapezoidal rule (y* = y + h f(t_m, y), y₁ = y + ½h[f(t_m, y) +
  f(t_m, y*)] reproduces y + h f + ½h²(∂_t f + f_y f) + O(h³)), and it never evaluates H exactly at a jump;
- the drive's jumps inside (ts[0], ts[-1]) (pwc edges, hard pulse edges, declared discontinuities) become step
  boundaries: the save grid is refined by them (:func:`nodes_with_jumps`), so no step straddles an edge and a pwc is
  integrated segment by segment. Jump times that are traced (not known on the host) cannot refine the grid; a
  step across such an edge then has a local error O(h·|Δc|);
- the step check treats the drive's fastest relative rate ω_d = max_t |ċ_k(t)| / max_t |c_k(t)| (sampled on the host
  with a spacing ≤ 1/8 of the shortest declared time scale, e.g. a pulse width) like a precession rate:
  dt·ω_d ≤ 0.5, default 0.05 (:data:`~qllg_jax.thermal.noise.MAX_STEP_PHASE`), so a pulse is resolved, not
  stepped over. The drive's amplitude enters the precession bound (spectral width, classical field bound).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import numpy as np

from .._arrays import device_array
from .._checks import concrete_value, is_concrete
from ..drives import PWC, SNAP_TOL, Constant, TimeCallable, TimeDependent, is_driven, sample

MAX_SAMPLES = 2**16
"""At most this many host samples of one drive term for its rate (the grid of :func:`drive_rate`)."""

SAMPLES_PER_SCALE = 8
"""Samples per declared time scale (pulse width, rise time) in :func:`drive_rate`."""



def split_drive(H):
    """(static part, time-dependent part or None) of H: a static H is (H, None); a driven one (H.static,
    H.drive), raising a clear error for batch axes (one drive per trajectory; vmap over the drive's parameters)."""
    if not isinstance(H, TimeDependent):
        return H, None
    if H.batch_shape != ():
        raise ValueError(f"H: a driven H with batch axes {H.batch_shape} is not accepted at temperature > 0 (one drive "
                         "per solve; batch over keys, or jax.vmap over the drive's parameters)")
    return H.static, (H.drive if is_driven(H) else None)


def nodes_with_jumps(ts: np.ndarray, drive) -> tuple[np.ndarray, np.ndarray]:
    """(nodes (T',), save_index (T,)): the save times ``ts`` refined by the drive's jumps strictly inside
    (ts[0], ts[-1]) — a jump within :data:`~qllg_jax.drives.SNAP_TOL` of a save time is that save time;
    ``nodes[save_index] == ts``. Without a drive, or with traced jump times: (ts, arange(T))."""
    jumps = None if drive is None else concrete_value(drive.discontinuity_ts)
    if jumps is None or np.size(jumps) == 0:
        return ts, np.arange(ts.shape[0])
    jumps = np.asarray(jumps, dtype=float).reshape(-1)
    inside = jumps[(jumps > ts[0]) & (jumps < ts[-1])]
    if inside.size:
        distance = np.min(np.abs(inside[:, None] - ts[None, :]), axis=1)
        inside = inside[distance > SNAP_TOL * (1 + np.abs(inside))]
    nodes = np.unique(np.concatenate([ts, inside]))
    return nodes, np.searchsorted(nodes, ts)


@eqx.filter_jit
def drive_width(operator, t0, t1):
    """:meth:`~qllg_jax.drives.DrivenOperator.spectral_width` in one compiled program."""
    return operator.spectral_width(t0, t1)


def _scale(term) -> float | None:
    scale = term.time_scale
    value = None if scale is None else concrete_value(scale)
    return None if value is None else float(np.min(value))


def drive_rate(drive, t0: float, t1: float) -> float | None:
    """ω_d = max over the drive's smooth terms of max|ċ| / max|c| on [t0, t1] (rad per ħ/E0; 0 for pwc and constant
    terms, whose jumps are step boundaries), from host samples; None when a term is traced (then pass ``dt``)."""
    if drive is None:
        return 0.0
    rate = 0.0
    for term in drive.terms:
        if isinstance(term, (Constant, PWC)):
            continue
        if not is_concrete(term):
            return None
        span = t1 - t0
        spacing = span / 2048
        scale = _scale(term)
        if scale is not None and scale > 0:
            spacing = min(spacing, scale / SAMPLES_PER_SCALE)
        count = int(min(MAX_SAMPLES, math.ceil(span / spacing) + 1))
        grid = np.linspace(t0, t1, count)
        with jax.ensure_compile_time_eval():  # host values, also while an enclosing jit traces
            if isinstance(term, TimeCallable):
                values = np.asarray(sample(term, device_array(grid))).reshape(count, -1)
                size = np.linalg.norm(values, axis=1)
                change = np.linalg.norm(np.diff(values, axis=0), axis=1)
            else:
                # c(t): a bound method of a Module is a pytree, so new parameter values reuse the program
                values = np.asarray(sample(term.coefficient, device_array(grid))).reshape(count)
                size, change = np.abs(values), np.abs(np.diff(values))
        peak = float(np.max(size))
        if peak > 0 and count > 1:
            rate = max(rate, float(np.max(change)) / (peak * (grid[1] - grid[0])))
    return rate
