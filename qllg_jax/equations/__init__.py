"""Vector fields ϱ ↦ ϱ̇ of the equations qllg_jax solves, one file each."""

from .frame import FrameQLLG, frame_density_matrix
from .pure import PureQLLG
from .qll import QLL
from .qllg import QLLG
from .resolvent import STRATEGIES, commutator, solve_resolvent
from .von_neumann import VonNeumann

EQUATIONS = {"qllg": QLLG, "qll": QLL, "von_neumann": VonNeumann}

__all__ = [
    "EQUATIONS",
    "FrameQLLG",
    "PureQLLG",
    "frame_density_matrix",
    "QLL", "QLLG", "STRATEGIES", "VonNeumann", "commutator", "solve_resolvent"]
