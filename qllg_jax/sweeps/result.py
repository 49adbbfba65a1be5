"""The in-memory result of a sweep (:class:`SweepResult`) and the value of a point that was not run."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._failures import FAILURE_REASONS

NOT_RUN = -1
"""Failure code of a point that this process did not run (another process's share, or an unfinished file)."""


def failure_reason(code: int) -> str:
    """The reason of a failure code (``"success"`` for 0, ``"not run"`` for −1)."""
    return {**FAILURE_REASONS, NOT_RUN: "not run"}.get(int(code), "solver failure")


def missing_value(dtype):
    """The value of a point that was not run (here or in a sweep file): NaN, −1 for integers, False for bools."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.inexact):
        return np.nan
    return False if dtype == bool else -1


@dataclasses.dataclass
class SweepResult:
    """Results of a sweep over P points (numpy arrays on the host).

    Attributes:
        params: dict name → array (P, ...): the parameter points.
        outputs: the pytree returned by ``run_point`` with a leading point axis (P, ...) on every leaf; for a
            :class:`~qllg_jax.Result`, a dict with ``observables`` (P, T, ...), ``invariants`` (P, T),
            ``stats`` (P,) and ``states`` (P, T, D, D) / ``kets`` (P, T, D) when saved. None for a sweep run
            with ``keep_in_memory=False``: read the file with :func:`~qllg_jax.load_sweep` (``names=``, ``points=``).
        success: bool (P,): the point's integration reached the final time with finite output.
        failure: int (P,): a :class:`~qllg_jax._failures.Failure` code (0 = success, −1 = not run).
        diagnostics: dict name → (P,) invariant drifts (:class:`~qllg_jax.Diagnostics`), for Result outputs.
        ts: save times (T,) when known (``sweep_solve``, stored sweeps), else None.
        metadata: for stored sweeps: ``path``, ``config``, ``fingerprint``, ``versions``, ``complete``,
            ``created``, ``chunk_size``, ``done`` (P,) bool.
    """

    params: dict
    outputs: object
    success: np.ndarray
    failure: np.ndarray
    diagnostics: dict = dataclasses.field(default_factory=dict)
    ts: np.ndarray | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return int(self.success.shape[0])

    @property
    def reasons(self) -> list[str]:
        """Failure reason per point (``"success"`` for points that finished, ``"not run"`` for code −1)."""
        return [failure_reason(code) for code in self.failure]

    def failed(self) -> dict[int, str]:
        """{point index: reason} of every point that did not succeed."""
        reasons = self.reasons
        return {int(i): reasons[i] for i in np.nonzero(~self.success)[0]}

    def point(self, index: int) -> dict:
        """The parameters of point ``index`` as a dict of numpy scalars/arrays."""
        return {name: value[index] for name, value in self.params.items()}
