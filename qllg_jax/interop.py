"""QuTiP interoperability (optional extra: ``pip install "qllg-jax[qutip]"``).

Inputs: every public function that takes a Hamiltonian, a density matrix or a ket also accepts a
``qutip.Qobj`` (converted at the API boundary by :func:`qllg_jax._checks.as_array`; a ket Qobj of shape
(d, 1) becomes a vector (d,)). Outputs: :func:`to_qutip` turns arrays or a :class:`~qllg_jax.Result` back
into ``Qobj`` with tensor-product ``dims``. Importing :mod:`qllg_jax` never imports qutip; only
:func:`to_qutip` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._checks import as_array, check_dims, is_qobj


def from_qutip(obj, name: str = "obj"):
    """A ``Qobj`` (or list of them) as a JAX array: operators (d, d), kets (d,), lists stacked (n, ...)."""
    if not (is_qobj(obj) or (isinstance(obj, (list, tuple)) and obj and all(is_qobj(x) for x in obj))):
        raise ValueError(f"{name} must be a qutip.Qobj or a list of them, got {type(obj).__name__}")
    return as_array(obj, name)


def default_site_dims(dim: int) -> list[int]:
    """Site dimensions used when none are given: [2]*n if dim = 2^n (spin-1/2 sites), else [dim]."""
    n = round(math.log2(dim)) if dim > 1 else 0
    return [2] * n if n > 0 and 2**n == dim else [dim]


def _site_dims(dim: int, dims: Sequence[int] | None) -> list[int]:
    if dims is None:
        return default_site_dims(dim)
    dims = list(check_dims(dims))
    if math.prod(dims) != dim:
        raise ValueError(f"dims {dims} must be positive site dimensions multiplying to the state dimension {dim}")
    return dims


def to_qutip(x, dims: Sequence[int] | None = None):
    """Convert arrays or a :class:`~qllg_jax.Result` to ``qutip.Qobj``.

    Args:
        x: a :class:`~qllg_jax.Result` (its ``states`` (T, d, d) → list of T operators), an operator (d, d)
            → one Qobj, a ket (d,) → one ket Qobj, or a stack (..., d, d) → (nested) lists of Qobj.
        dims: site dimensions, e.g. ``[2, 2]`` for two spins 1/2 or ``[3, 2]`` for spin 1 ⊗ spin 1/2; their
            product must equal d. Default: ``[2] * n`` when d = 2^n, else ``[d]``.

    Returns:
        ``Qobj`` with ``dims = [dims, dims]`` (operators) or ``[dims, [1]]`` (kets), or lists of them.

    Raises:
        ImportError: qutip is not installed. ValueError: a Result without saved states, or bad ``dims``.
    """
    try:
        import qutip
    except ImportError as error:  # pragma: no cover - exercised only without qutip
        raise ImportError('to_qutip needs qutip: pip install "qllg-jax[qutip]"') from error
    from .result import Result

    if isinstance(x, Result):
        if x.states is None:
            raise ValueError("x: this Result has no states (solve(..., save_states=False)); nothing to convert")
        x = x.states
    value = np.asarray(as_array(x, "x"))
    if value.ndim == 1:
        site = _site_dims(value.shape[0], dims)
        return qutip.Qobj(value[:, None], dims=[site, [1]])
    if value.ndim < 2 or value.shape[-1] != value.shape[-2]:
        raise ValueError(f"x must be a ket (d,), an operator (..., d, d) or a Result, got shape {value.shape}")
    site = _site_dims(value.shape[-1], dims)

    def convert(block):
        if block.ndim == 2:
            return qutip.Qobj(block, dims=[site, site])
        return [convert(b) for b in block]

    return convert(value)
