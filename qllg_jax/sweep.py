"""Deprecated location: the sweep code lives in :mod:`qllg_jax.sweeps` (kept so that ``from qllg_jax.sweep import
...`` keeps working until every import site uses the package)."""

from .sweeps.engine import (  # noqa: F401
    CPU_MAX_CHUNK_SIZE,
    DEFAULT_MEMORY_BUDGET,
    MAX_CHUNK_SIZE,
    WORK_FACTOR,
    choose_chunk_size,
    estimate_point_bytes,
    sweep,
)
from .sweeps.params import check_params, grid  # noqa: F401
from .sweeps.result import SweepResult, missing_value  # noqa: F401
from .sweeps.solve import resolve_sweep_method, sweep_solve  # noqa: F401
