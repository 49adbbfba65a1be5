"""Deprecated location: the sweep store lives in :mod:`qllg_jax.sweeps.store`."""

from .sweeps.store import FORMAT, SweepFileError, SweepStore, load_sweep, package_versions, process_path  # noqa: F401
