"""The timer every benchmark uses: median wall time of compiled calls."""

from __future__ import annotations

import time

import jax
import numpy as np


def median_time(fn, repeats: int):
    """(median wall time in s over ``repeats`` calls after one warm-up call that compiles, last output).

    Every call waits for its JAX outputs (``jax.block_until_ready``), so asynchronous dispatch is timed too.
    """
    out = jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out
