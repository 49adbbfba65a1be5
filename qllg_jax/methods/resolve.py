"""``method="auto"`` and method names → a method object, decided once from host values.

One function, :func:`resolve_method`, serves :func:`qllg_jax.solve`, the sweeps and the command line. Rules for
``"auto"`` (ϱ0 read by :func:`~qllg_jax.methods.read_initial_state`; for a batch, every element must qualify):

1. kets, pure ϱ0 (rank 1) or a rank-1 :class:`LowRankState` → ``exact`` (eq. 28) for D ≤ :data:`EXACT_MAX_DIM`,
   else ``ket`` (matrix-free state vector);
2. two distinct eigenvalues (a𝟙 + bP, e.g. Werner) with one projector rank and D ≤ EXACT_MAX_DIM → ``two_level``;
3. any other ϱ0 known on the host, or a LowRankState → ``frame`` (ϱ = UΛU†, rank r = the largest rank);
4. a traced ϱ0 (its value is not known when solve is called) → ``dense``.

Because the rules read host values (also of numpy constants closed over inside ``jax.jit``), eager calls,
``jit``, ``vmap``, ``jit(vmap)`` and ``grad`` choose the same method.
"""

from __future__ import annotations

import numpy as np

from .dense import Dense
from .exact import Exact
from .frame import Frame
from .initial_state import InitialState
from .ket import Ket
from ._method import Method
from .two_level import TwoLevel

EXACT_MAX_DIM = 256
"""auto uses the closed forms (a dense eigendecomposition of H) up to this D."""

METHOD_CLASSES = {cls.name: cls for cls in (Dense, Frame, Ket, Exact, TwoLevel)}
ALIASES = {"pure": "ket", "low_rank": "frame"}
"""Earlier names, still accepted."""
METHODS = ("auto", *METHOD_CLASSES, *ALIASES)


def auto_method_name(state: InitialState, dim: int) -> str:
    """The method ``"auto"`` picks (see the module docstring)."""
    small = dim <= EXACT_MAX_DIM
    if state.kind == "ket":
        return "exact" if small else "ket"
    if not state.known:
        return "dense"
    ranks = state.ranks()
    if np.all(ranks == 1):
        return "exact" if small else "ket"
    if state.kind == "density" and small and np.all(state.levels() == 2):
        values = state.eigh[0]
        upper_ranks = np.sum(np.abs(values - values[..., :1]) <= 1e-10, axis=-1)
        if np.all(upper_ranks == upper_ranks.flat[0]):
            return "two_level"
    return "frame"


def resolve_method(method, state: InitialState, dim: int, *, strategy: str = "auto", gauge_fix: bool = True) -> Method:
    """A :class:`Method` object from ``method`` (a name, an alias or a Method instance).

    ``strategy`` / ``gauge_fix``: options of the dense / frame method when given by name.
    Raises ValueError when the method cannot represent this ϱ0 (e.g. ``"ket"`` for a mixed state, ``"two_level"``
    for a ket).
    """
    if isinstance(method, Method):
        chosen = method
    else:
        if not isinstance(method, str) or method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)} or pass a method object "
                             "(qllg_jax.methods.Dense(), Frame(), Ket(), Exact(), TwoLevel())")
        name = ALIASES.get(method, method)
        if name == "auto":
            name = auto_method_name(state, dim)
        options = {"dense": {"strategy": strategy}, "frame": {"gauge_fix": gauge_fix}}.get(name, {})
        chosen = METHOD_CLASSES[name](**options)
    if chosen.needs_host_state and not state.known:
        raise ValueError(f"method {chosen.name!r} needs rho0 known when solve is called (its eigendecomposition is "
                         "taken on the host), but rho0 is traced; use method='dense' for a traced rho0")
    if isinstance(chosen, Ket) and state.kind != "ket" and state.known and not np.all(state.ranks() == 1):
        raise ValueError(f"method {chosen.name!r} needs a pure rho0 (a ket or a rank-1 density matrix), got rank "
                         f"{int(np.max(state.ranks()))}")
    if isinstance(chosen, TwoLevel) and state.kind != "density":
        given = "a ket (a pure state: use method='exact' or 'ket')" if state.kind == "ket" else (
            "a LowRankState (use method='frame')")
        raise ValueError(f"method 'two_level' needs rho0 as a density matrix (D, D) = a*1 + b*P, got {given}")
    return chosen
