r"""A compile-time fix for diffrax's end-time threshold (same numbers, a third less compile per solve).

``diffrax._integrate.loop`` computes t1 − 100 ULP (the threshold at which a step end is rounded onto t1) as 100
chained calls of ``equinox.internal.prevbefore``. With t1 traced — our solves keep ``ts`` an array leaf, so new
save times do not recompile — that is ≈ 1700 scalar HLO ops in one fusion plus 100 custom-JVP traces, ≈ 0.4 s of
XLA compile per solve program. Measured with ``benchmarks/bench_compile.py`` (fresh processes, XLA's default
optimisation, compile events summed, best of 3, 2-core x86_64, 2026-12-03): first frame / dense / ket / classical
solve 3.22 / 3.51 / 2.88 / 2.41 s without this fix, 2.68 / 2.84 / 2.14 / 2.08 s with it (1.16–1.35×).

:func:`ulps_below` computes the k-th call of such a chain from the chain's first input in closed form on the bit
pattern (IEEE floats are ordered like their sign-magnitude integers):

- x > 0 (normal): bits − k; x < 0: bits + k, clamped at −inf; x == 0: −tiny, then k − 1 further steps down
  (eqxi's rule: prevbefore(0) = −tiny); NaN: NaN; −inf: −inf;
- a positive normal x within k ULP of tiny steps into the subnormals, which compare equal to 0 (JAX flushes
  denormals: DAZ, as ``eqxi.nextafter`` notes), so the next step is −tiny again.

The proxy's :func:`prevbefore` sees the chain as a whole: the first call returns the chain's end (100 ULP below, in
closed form), and a call whose input is the previous call's output — the 99 further calls of the loop — returns its
input unchanged, so the loop traces one closed form and nothing else (tracing cost is per op, under jit, vmap and
each autodiff pass). This is exact because :func:`install` checks that ``diffrax._integrate`` calls ``prevbefore``
nowhere but in that loop. Unlike eqxi's (whose tangent passes through), the value carries no tangent: diffrax only
compares it with step ends.

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

from ._arrays import device_array

_INTEGER = {np.dtype(np.float64): np.int64, np.dtype(np.float32): np.int32, np.dtype(np.float16): np.int16}


def ulps_below(x0, k: int):
    """The k-th chained ``eqxi.prevbefore`` of x0 (k ≥ 1, a Python int), in closed form (module docstring):
    y_k = bits − k while k ≤ J (a positive x, J the step that reaches the largest subnormal), else
    min(base + k, bits(−inf)), NaN kept."""
    x = lax.stop_gradient(device_array(x0))  # the threshold is only compared with step ends: no tangent
    dtype = np.dtype(x.dtype)
    if dtype not in _INTEGER:
        raise TypeError(f"prevbefore: unsupported dtype {dtype}")
    itype = _INTEGER[dtype]
    info = jnp.finfo(dtype)
    const = lambda v: np.asarray(v, dtype).view(itype)  # noqa: E731  (the bit pattern of a float)
    full = lambda v: np.full(x.shape, const(v), dtype=itype)  # noqa: E731  (raw lax ops: one traced op each)
    bits = lax.bitcast_convert_type(x, itype)
    zero = lax.eq(x, np.zeros(x.shape, dtype))  # a float comparison: subnormals count as 0 (flushed), as in eqxi
    positive = lax.bitwise_and(lax.gt(bits, full(0)), lax.bitwise_not(zero))
    reach = lax.sub(bits, full(info.tiny) - 1)  # a positive normal lands on the largest subnormal at this step ...
    k = np.full(x.shape, k, dtype=itype)
    down = lax.bitwise_and(positive, lax.le(k, reach))  # ... so it steps down while k <= reach
    # ... and then sees a (DAZ) zero: −tiny, and further away from zero; zero itself: −tiny first; negative: away
    base = lax.select(zero, full(-info.tiny) - 1, lax.select(positive, lax.sub(full(-info.tiny) - 1, reach), bits))
    stepped = lax.select(down, lax.sub(bits, k), lax.min(lax.add(base, k), full(-np.inf)))
    return lax.select(lax.ne(x, x), x, lax.bitcast_convert_type(stepped, dtype))  # NaN stays NaN


CHAIN_LENGTH = 100
"""The number of chained calls in ``diffrax._integrate.loop`` (checked by :func:`install`)."""


class _Chain(threading.local):
    last: object = None  # the previous call's output: the end of the chain being traced


_chain = _Chain()


def prevbefore(x):
    """For diffrax's chain only (module docstring): the chain's end x − 100 ULP on a new input, the input itself on
    the previous output — the value of ``CHAIN_LENGTH`` chained ``eqxi.prevbefore`` calls after the last of them."""
    if _chain.last is not None and x is _chain.last:
        return x
    y = ulps_below(x, CHAIN_LENGTH)
    _chain.last = y
    return y


_CHAINED = f"for _ in range({CHAIN_LENGTH}):\n        t1_clip_floor = eqxi.prevbefore(t1_clip_floor)"


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
        source = inspect.getsource(integrate)
        if (integrate.eqxi is not eqxi or _CHAINED not in inspect.getsource(integrate.loop)
                or source.count("prevbefore") != 1):  # the proxy's prevbefore is exact only for that chain
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

