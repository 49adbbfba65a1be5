"""Parameter points of a sweep: :func:`grid` and the checks of ``params`` and ``chunk_size``."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping

import numpy as np

from .._checks import check_positive


def grid(**axes) -> dict[str, np.ndarray]:
    """The Cartesian product of 1-D axes, flattened to P = ∏ len(axis) points (first name slowest).

    >>> p = grid(J=[0.5, 1.0], D=[0.0, 0.1, 0.2]); p["J"].shape
    (6,)
    """
    if not axes:
        raise ValueError("grid needs at least one axis, e.g. grid(J=[0.5, 1.0])")
    arrays = {}
    for name, values in axes.items():
        values = np.asarray(values)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"grid axis {name!r} must be a non-empty 1-D list of values, got shape {values.shape}")
        arrays[name] = values
    mesh = np.meshgrid(*arrays.values(), indexing="ij")
    return {name: m.reshape(-1) for name, m in zip(arrays, mesh)}


def check_params(params: Mapping) -> tuple[dict[str, np.ndarray], int]:
    """Validate ``params``: dict name → array (P, ...) with one common P ≥ 1. Returns (numpy dict, P)."""
    if not isinstance(params, Mapping) or not params:
        raise ValueError("params must be a non-empty dict name -> array of shape (P, ...)")
    out, sizes = {}, {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"params: names must be non-empty strings (run_point's keywords), got {name!r}")
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"params[{name!r}] must be an array of numbers: {error}") from None
        if array.ndim == 0 or array.shape[0] == 0:
            raise ValueError(f"params[{name!r}] must have a leading point axis of length P >= 1, got shape {array.shape}")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"params[{name!r}] must be numeric, got dtype {array.dtype}")
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            raise ValueError(f"params[{name!r}] contains NaN or inf")
        out[name], sizes[name] = array, array.shape[0]
    if len(set(sizes.values())) != 1:
        raise ValueError(f"params must all have the same number of points P, got lengths {sizes}")
    return out, next(iter(sizes.values()))


def check_point_signature(fn: Callable, names, what: str, *, all_used: bool) -> None:
    """``fn`` must accept the parameter names it is called with.

    ``all_used``: ``fn`` gets every name (``sweep``'s ``run_point(**point)``); otherwise it gets the names its
    signature lists (``sweep_solve``'s H / rho0 / kappa) and must list at least one of them. Builtins whose
    signature cannot be read are not checked.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    accepted = signature.parameters
    if any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        return
    keywords = {n for n, p in accepted.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    required = {n for n in keywords if accepted[n].default is inspect.Parameter.empty}
    if all_used:
        unknown = sorted(set(names) - keywords)
        if unknown:
            raise ValueError(f"params: {unknown} are not parameters of {what}{signature}; rename them or add **kwargs")
    missing = sorted(required - set(names))
    if missing:
        raise ValueError(f"{what}{signature} needs {missing}, which are not in params {sorted(names)}")


def check_chunk_size(chunk_size, n_points: int, n_devices: int) -> int | None:
    """None, or a positive integer rounded up to a multiple of ``n_devices`` and at most the points needed."""
    if chunk_size is None:
        return None
    chunk_size = check_positive(chunk_size, "chunk_size", integer=True)
    chunk_size = math.ceil(chunk_size / n_devices) * n_devices
    return min(chunk_size, math.ceil(n_points / n_devices) * n_devices)
