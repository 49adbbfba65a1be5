"""The solver-name policy of ``solver=``: accepted names, the default by tolerance, and the check of an instance."""

from __future__ import annotations

SOLVER_NAMES = {
    "tsit5": "Tsit5",
    "dopri5": "Dopri5",
    "dopri8": "Dopri8",
    "heun": "Heun",
    "midpoint": "Midpoint",
    "ralston": "Ralston",
    "bosh3": "Bosh3",
    "kvaerno3": "Kvaerno3",
    "kvaerno4": "Kvaerno4",
    "kvaerno5": "Kvaerno5",
}
"""Names accepted for ``solver=`` (case-insensitive) → diffrax class names; adaptive solvers only."""


HIGH_ORDER_RTOL = 1e-7
"""``solver=None`` picks Dopri8 (8th order) for rtol ≤ this, Tsit5 (5th order) above: at rtol 1e-8 Dopri8 takes
4–6× fewer steps than Tsit5 for q-LLG trajectories, with errors within the tolerance (benchmarks/bench_core.py)."""


def check_solver(solver, name: str = "solver", rtol: float | None = None):
    """A diffrax solver instance from an instance, a name in :data:`SOLVER_NAMES` or None (→ Dopri8 when
    ``rtol`` ≤ :data:`HIGH_ORDER_RTOL`, else Tsit5)."""
    import diffrax

    if solver is None:
        return diffrax.Dopri8() if rtol is not None and rtol <= HIGH_ORDER_RTOL else diffrax.Tsit5()
    if isinstance(solver, str):
        key = solver.lower()
        if key not in SOLVER_NAMES:
            raise ValueError(f"unknown {name} {solver!r}; choose one of {sorted(SOLVER_NAMES)} or pass a diffrax solver")
        return getattr(diffrax, SOLVER_NAMES[key])()
    if isinstance(solver, type) and issubclass(solver, diffrax.AbstractSolver):
        raise ValueError(f"{name} must be a diffrax solver instance, e.g. diffrax.{solver.__name__}(), not the class")
    if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        raise ValueError(f"{name} must be an adaptive diffrax solver or a name, got {type(solver).__name__}")
    return solver
