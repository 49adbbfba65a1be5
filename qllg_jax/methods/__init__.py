"""Representations of ϱ for :func:`qllg_jax.solve`, one file each: ``Dense``, ``Frame``, ``Ket``, ``Exact``,
``TwoLevel``; :func:`resolve_method` turns ``method="auto"`` into one of them."""

from ._method import Method
from .dense import Dense
from .exact import Exact
from .frame import Frame
from .initial_state import RANK_TOL, InitialState, LowRankState, read_initial_state
from .ket import Ket, projector_reduction
from .resolve import ALIASES, EXACT_MAX_DIM, METHOD_CLASSES, METHODS, auto_method_name, resolve_method
from .two_level import TwoLevel

__all__ = [
    "ALIASES", "Dense", "EXACT_MAX_DIM", "Exact", "Frame", "InitialState", "Ket", "LowRankState", "METHODS",
    "METHOD_CLASSES", "Method", "RANK_TOL", "TwoLevel", "auto_method_name", "projector_reduction",
    "read_initial_state", "resolve_method",
]
