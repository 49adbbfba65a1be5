"""Classical atomistic spin dynamics on the same :class:`~qllg_jax.SpinModel` as the quantum solver."""

from .api import classical_llg
from .llg import classical_dimer, classical_energy, llg_rhs
from .stochastic import stochastic_llg

__all__ = ["classical_dimer", "classical_energy", "classical_llg", "llg_rhs", "stochastic_llg"]
