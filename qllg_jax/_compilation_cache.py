"""JAX's persistent compilation cache: compile once per machine, not once per process.

A JAX program (a ``solve`` of one shape, a sweep chunk) is compiled the first time it runs in a process. With
the persistent cache the compiled executable is also written to a directory and a later process loads it
instead of compiling again. The ``qllg`` command line turns the cache on; the library leaves it to you:
``qllg_jax.enable_compilation_cache()``.

Where (first that applies): the ``path`` argument; the environment variable ``QLLG_COMPILATION_CACHE``
(``off`` disables the cache, anything else is a directory); ``$XDG_CACHE_HOME/qllg-jax/jax``;
``~/.cache/qllg-jax/jax``.

Every program is cached, however short its compilation (``jax_persistent_cache_min_compile_time_secs = 0``;
JAX's default of 1 s would skip most of ours) and however small (``jax_persistent_cache_min_entry_size_bytes =
0``). JAX does not cache programs with host callbacks (``jax.debug.print``, progress meters). Only trusted users
should be able to write to the directory: JAX runs what it finds there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ENV_VAR = "QLLG_COMPILATION_CACHE"
OFF_VALUES = ("off", "0", "false", "no", "none", "")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/qllg-jax/jax``, or ``~/.cache/qllg-jax/jax`` when XDG_CACHE_HOME is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qllg-jax" / "jax"


def cache_dir_setting() -> Path | None:
    """The directory the environment asks for: None when ``QLLG_COMPILATION_CACHE=off``, else
    ``QLLG_COMPILATION_CACHE`` or :func:`default_cache_dir`."""
    value = os.environ.get(ENV_VAR)
    if value is None:
        return default_cache_dir()
    if value.strip().lower() in OFF_VALUES:
        return None
    return Path(os.path.expanduser(value.strip()))


def _writable_dir(path: Path) -> str | None:
    """None if ``path`` is (or can be made) a writable directory, else the reason it is not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".qllg-write-test-"):
            pass
    except OSError as error:
        return f"{type(error).__name__}: {error.strerror or error}"
    return None


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache; returns the directory, or None when it stays off.

    Args:
        path: the cache directory. Default: ``QLLG_COMPILATION_CACHE`` (``off`` disables it) or
            ``$XDG_CACHE_HOME/qllg-jax/jax`` (``~/.cache/qllg-jax/jax``).

    An explicit ``path`` that cannot be written raises ``ValueError``; a default directory that cannot be written
    leaves the cache off (returns None) and never fails. Call it before the first compilation you want cached;
    calling it again with another directory moves the cache (compilations so far stay in memory only).
    """
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    explicit = path is not None
    directory = Path(os.path.expanduser(os.fspath(path))) if explicit else cache_dir_setting()
    if directory is None:
        return None
    problem = _writable_dir(directory)
    if problem is not None:
        if explicit:
            raise ValueError(f"path: the compilation cache directory {str(directory)!r} is not writable ({problem})")
        return None
    directory = directory.resolve()
    current = jax.config.values.get("jax_compilation_cache_dir")
    if current is not None and Path(current) != directory:
        compilation_cache.reset_cache()  # the next compilation opens the new directory
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    compilation_cache.set_cache_dir(str(directory))
    return directory


def compilation_cache_dir() -> Path | None:
    """The directory JAX's persistent cache writes to now, or None when it is off."""
    import jax

    value = jax.config.values.get("jax_compilation_cache_dir")
    return None if not value or not jax.config.values.get("jax_enable_compilation_cache") else Path(value)


__all__ = ["ENV_VAR", "compilation_cache_dir", "default_cache_dir", "enable_compilation_cache"]
