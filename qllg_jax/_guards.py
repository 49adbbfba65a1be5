"""Size guards: refuse to build a dense object that would not fit, before allocating it.

Every constructor or solve path that would allocate an object whose size grows with the Hilbert-space
dimension D (a D×D matrix, a D-vector for very many spins, a stack of saved states) calls
:func:`check_bytes` with its estimate first. Above the limit it raises :class:`SizeError` (a ``ValueError``)
with the estimate, the limit and how to change it, instead of letting the process be killed by the
operating system minutes later.

The limit (bytes) is, in order of precedence: :func:`set_memory_limit`, the environment variable
``QLLG_MAX_BYTES`` (a number of bytes, or with a suffix K/M/G/T, e.g. ``QLLG_MAX_BYTES=64G``), or the default,
half of the machine's physical memory (8 GiB where it cannot be read).
"""

from __future__ import annotations

import os

ENV_VAR = "QLLG_MAX_BYTES"
_FALLBACK_BYTES = 8 * 2**30
_override: int | None = None


class SizeError(ValueError):
    """An operation would allocate more memory than the configured limit (see :func:`set_memory_limit`)."""


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def parse_bytes(text: str | int | float) -> int:
    """``"64G"``, ``"512M"``, ``"1.5T"``, ``"1000000"`` or a number → bytes (int > 0)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    raw = str(text).strip().upper().removesuffix("B").removesuffix("I")
    factor = units.get(raw[-1:], 1)
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        value = float(number) * factor
    except ValueError:
        raise ValueError(f"a memory size must be a number of bytes or end in K/M/G/T, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"a memory size must be positive and finite, got {text!r}")
    return int(value)


def default_memory_limit() -> int:
    """Half of the physical memory (8 GiB where unknown)."""
    total = physical_memory()
    return _FALLBACK_BYTES if total is None else total // 2


def memory_limit() -> int:
    """The limit in bytes that :func:`check_bytes` enforces now."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV_VAR)
    if env:
        try:
            return parse_bytes(env)
        except ValueError as error:
            raise ValueError(f"environment variable {ENV_VAR}: {error}") from None
    return default_memory_limit()


def set_memory_limit(limit: int | str | None) -> int | None:
    """Set the size limit (bytes, or a string such as ``"64G"``); None restores the default / ``QLLG_MAX_BYTES``.

    Returns the previous override (None if there was none), so a caller can restore it.
    """
    global _override
    previous = _override
    _override = None if limit is None else parse_bytes(limit)
    return previous


def format_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            break
        n /= 1024
    if unit == "B":
        return f"{n:.0f} B"
    return f"{n:.1f} {unit}" if abs(n) < 1e6 else f"{n:.3g} {unit}"  # e.g. "1.41e+26 PiB" for D = 2^70


def check_bytes(nbytes: float, what: str, hint: str = "") -> int:
    """Raise :class:`SizeError` if allocating ``nbytes`` for ``what`` would exceed :func:`memory_limit`.

    ``what`` names the object (e.g. ``"SpinModel.matrix() for D = 65536"``); ``hint`` suggests an alternative
    (e.g. a matrix-free path). Returns ``nbytes`` as an int.
    """
    limit = memory_limit()
    if nbytes > limit:
        message = (
            f"{what} would allocate about {format_bytes(nbytes)}, above the memory limit of {format_bytes(limit)} "
            f"(qllg_jax.set_memory_limit(...) or the environment variable {ENV_VAR} changes it)"
        )
        raise SizeError(message + (f"; {hint}" if hint else ""))
    return int(nbytes)


def dense_bytes(dim: int, count: int = 1, itemsize: int = 16) -> int:
    """Bytes of ``count`` complex (``itemsize`` bytes per entry) matrices of shape (dim, dim)."""
    return int(count) * int(dim) * int(dim) * int(itemsize)
