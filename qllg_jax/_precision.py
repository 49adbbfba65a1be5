"""Enable float64 in JAX the moment ``qllg_jax`` is imported.

q-LLG conserves the whole spectrum of ϱ; checking that to 1e-9 needs double precision. Users who want
float32 (e.g. on a consumer GPU) can call ``jax.config.update("jax_enable_x64", False)`` after import.
"""

import jax

jax.config.update("jax_enable_x64", True)
