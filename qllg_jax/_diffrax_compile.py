r"""A compile-time fix for diffrax's end-time threshold (same numbers, a third less compile per solve).

``diffrax._integrate.loop`` computes t1 − 100 ULP (the threshold at which a step end is rounded onto t1) as 100
chained calls of ``equinox.internal.prevbefore``. With t1 traced — our solves keep ``ts`` an array leaf, so new
save times do not recompile — that is ≈ 1700 scalar HLO ops in one fusion plus 100 custom-JVP traces, ≈ 0.4 s of
XLA compile per solve program. Measured with ``benchmarks/bench_compile.py`` (fresh processes, XLA's default
optimisation, compile events summed, best of 3, 2-core x86_64, 2026-12-03): first frame / dense / ket / classical
solve 3.22 / 3.51 / 2.88 / 2.41 s without this fix, 2.68 / 2.84 / 2.14 / 2.08 s with it (1.16–1.35×).

:func:`prevbefore` returns the same value as ``eqxi.prevbefore`` but computes the k-th call of a chain from the
chain's first input in closed form on the bit pattern (IEEE floats are ordered like their sign-magnitude integers):

- x > 0 (normal): bits − k; x < 0: bits + k, clamped at −inf; x == 0: −tiny, then k − 1 further steps down
  (eqxi's rule: prevbefore(0) = −tiny); NaN: NaN; −inf: −inf;
- a positive normal x within k ULP of tiny steps into the subnormals, which compare equal to 0 (JAX flushes
  denormals: DAZ, as ``eqxi.nextafter`` notes), so the next step is −tiny again.

A chain is recognised by identity: a call whose input is the previous call's output continues that chain (so the
99 intermediate values are dead code that XLA removes; tracing costs a few elementwise ops per call). Unlike eqxi's
(whose tangent passes through), the value carries no tangent: diffrax only compares it with step ends.

Only ``diffrax._integrate``'s reference to ``equinox.internal`` is replaced (a proxy that forwards every other name),
and only when its ``loop`` contains exactly the chained code; ``QLLG_DIFFRAX_PATCH=0`` leaves diffrax untouched.
Tested bit for bit against the chained eqxi calls (tests/test_compile_time.py).
"""

from __future__ import annotations

import inspect
import os
import threading
import types

import jax.numpy as jnp
import numpy as np
from jax import lax

_INTEGER = {np.dtype(np.float64): np.int64, np.dtype(np.float32): np.int32, np.dtype(np.float16): np.int16}


def chain_start(x0) -> dict:
    """What every step of a chain from x0 needs, computed once (module docstring): y_k = bits − k while k ≤ J (a
    positive x, J the step that reaches the largest subnormal), else min(base + k, bits(−inf)), NaN kept."""
    x = lax.stop_gradient(jnp.asarray(x0))  # the threshold is only compared with step ends: no tangent
    dtype = np.dtype(x.dtype)
    if dtype not in _INTEGER:
        raise TypeError(f"prevbefore: unsupported dtype {dtype}")
    itype = _INTEGER[dtype]
    info = jnp.finfo(dtype)
    const = lambda v: np.asarray(np.asarray(v, dtype).view(itype), dtype=itype)  # noqa: E731
    tiny_bits, neg_tiny_bits = const(info.tiny), const(-info.tiny)
    bits = lax.bitcast_convert_type(x, itype)
    zero = x == 0  # a float comparison: subnormals count as 0 where denormals are flushed, as in eqxi
    positive = (bits > 0) & ~zero
    reach = bits - tiny_bits + 1  # a positive normal lands on the largest subnormal at this step ...
    last_down = jnp.where(positive, reach, -1)  # ... so it steps down while k <= last_down
    # ... and then sees a (DAZ) zero: −tiny, and further away from zero; zero itself: −tiny first; negative: away
    base = jnp.where(zero, neg_tiny_bits - 1, jnp.where(positive, neg_tiny_bits - reach - 1, bits))
    return {"x": x, "bits": bits, "last_down": last_down, "base": base, "nan": jnp.isnan(x), "dtype": dtype,
            "neg_inf": const(-np.inf)}


def chain_step(start: dict, k: int):
    """The k-th chained ``eqxi.prevbefore`` (k ≥ 1) from :func:`chain_start`: five elementwise raw ``lax`` ops, the
    constants numpy arrays of the input's shape (tracing cost is per op, and diffrax calls this 100 times)."""
    bits = start["bits"]
    k = np.full(bits.shape, k, dtype=bits.dtype)
    neg_inf = np.full(bits.shape, start["neg_inf"], dtype=bits.dtype)
    stepped = lax.select(lax.le(k, start["last_down"]), lax.sub(bits, k), lax.min(lax.add(start["base"], k), neg_inf))
    return lax.select(start["nan"], start["x"], lax.bitcast_convert_type(stepped, start["dtype"]))


def ulps_below(x0, k: int):
    """The k-th chained ``eqxi.prevbefore`` of x0 (k ≥ 1, a Python int), in closed form (module docstring)."""
    return chain_step(chain_start(x0), k)


class _Chain(threading.local):
    last: tuple | None = None  # (output, chain_start of the first input, k)


_chain = _Chain()


def prevbefore(x):
    """``eqxi.prevbefore(x)``, the same value; consecutive calls on the previous output are one chain."""
    last = _chain.last
    if last is not None and x is last[0]:
        start, k = last[1], last[2] + 1
    else:
        start, k = chain_start(x), 1
    y = chain_step(start, k)
    _chain.last = (y, start, k)
    return y


_CHAINED = "for _ in range(100):\n        t1_clip_floor = eqxi.prevbefore(t1_clip_floor)"


def install() -> bool:
    """Point ``diffrax._integrate`` at a proxy of ``equinox.internal`` with :func:`prevbefore` (module docstring).
    Returns whether it is installed (False: another diffrax layout, or ``QLLG_DIFFRAX_PATCH=0``)."""
    if os.environ.get("QLLG_DIFFRAX_PATCH", "1").strip() == "0":
        return False
    try:
        import diffrax._integrate as integrate
        import equinox.internal as eqxi

        if isinstance(integrate.eqxi, _EqxiProxy):
            return True
        if integrate.eqxi is not eqxi or _CHAINED not in inspect.getsource(integrate.loop):
            return False
    except (ImportError, AttributeError, OSError, TypeError):
        return False
    integrate.eqxi = _EqxiProxy(eqxi)
    return True


class _EqxiProxy(types.ModuleType):
    """``equinox.internal`` with :func:`prevbefore` replaced; every other name is the module's own."""

    def __init__(self, module):
        super().__init__(module.__name__, module.__doc__)
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    prevbefore = staticmethod(prevbefore)

