"""Products of small matrices, written so XLA runs them fast on CPU.

XLA lowers a batched ``a @ b`` of tiny matrices (a batch of 4×4, as in a vmapped dimer sweep) to a generic
dot that is several times slower than the same product written as a broadcast multiply and a sum over the
contracted axis, which XLA fuses into one elementwise loop. Measured on the 2-core CPU for 256 complex
4×4 products (``benchmarks/bench_core.py`` documents the end-to-end effect): 90 µs as matmul, 21 µs
broadcast; at 16×16 the broadcast form is still 2× faster, at 32×32 it is 5× slower. :func:`matmul` picks
the form from the static shapes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BROADCAST_MAX_DIM = 16
"""Products whose three dimensions are all ≤ this use the broadcast form."""


def matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """a @ b for (..., m, k) @ (..., k, n) (or a vector b (..., k)), broadcast form for small m, k, n."""
    if b.ndim == 1:
        return matmul(a, b[:, None])[..., 0]
    if max(a.shape[-2], a.shape[-1], b.shape[-1]) <= BROADCAST_MAX_DIM:
        return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)
    return a @ b


def dagger(a: jax.Array) -> jax.Array:
    """Conjugate transpose of the last two axes."""
    return jnp.conj(jnp.swapaxes(a, -1, -2))
