"""The package version (a leaf: imports nothing from qllg_jax), read from the installed distribution's metadata."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("qllg-jax")
except metadata.PackageNotFoundError:  # a source tree on sys.path, not installed: pyproject.toml's version
    __version__ = "0.1.0"
