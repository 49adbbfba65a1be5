"""qllg-jax: a JAX-accelerated, differentiable solver for the quantum Landau–Lifshitz–Gilbert equation.

float64 is enabled on import. Units: energies in E0, times in ħ/E0 (ħ = 1); see :mod:`qllg_jax.units`.
"""

from . import _precision  # noqa: F401  (enables float64)
from .equations import QLL, QLLG, FrameQLLG, PureQLLG, VonNeumann, commutator, solve_resolvent
from ._checks import SOLVER_NAMES, InvariantWarning, as_array
from .classical import classical_dimer, classical_energy, classical_llg
from .config import System, build_system, load_config, with_overrides
from .exact import projector_exact, pure_state_exact, two_level_exact, two_level_split
from . import methods  # noqa: E402  (method objects: methods.Dense(), Frame(), ...)
from .methods import METHODS, LowRankState
from .hamiltonians import SpinModel, as_matrix, chain_bonds, chain_model, dimer_hamiltonian, dimer_model, spin_model
from .observables import (
    bell_nonlocality,
    bloch_vectors,
    concurrence,
    correlation_matrix,
    energy,
    expectation,
    hermiticity_error,
    partial_trace,
    passive_energy,
    passive_state,
    purity,
    renyi_entropy,
    spectrum,
    spin_expectations,
    trace,
    von_neumann_entropy,
)
from .interop import from_qutip, to_qutip
from .operators import embed, pauli_matrices, site_spin_operators, spin_dim, spin_matrices
from .solve import Diagnostics, Result, SolveError, estimate_memory, solve
from . import design  # noqa: E402  (inverse design: design.fit, loss helpers)
from .design import FitError, FitResult
from .ground_state import GroundStateResult, energy_and_variance, ground_state, passive_flow
from .sweeps import SweepFileError, SweepResult, SweepStore, grid, load_sweep, merge_sweeps, sweep, sweep_solve
from ._guards import SizeError, memory_limit, set_memory_limit
from ._compilation_cache import enable_compilation_cache
from .states import (
    BELL_STATES,
    basis_state,
    bell_state,
    coherent_product_state,
    coherent_state,
    density_matrix,
    product_state,
    random_density_matrix,
    random_hamiltonian,
    random_ket,
    thermal_state,
    up_down_state,
    validate_state,
    werner_state,
)
from .units import HBAR_MEV_PS, MU_B_MEV_PER_T, Units

__version__ = "0.1.0"

__all__ = [
    "QLL",
    "QLLG",
    "FrameQLLG",
    "PureQLLG",
    "VonNeumann",
    "commutator",
    "solve_resolvent",
    "SOLVER_NAMES",
    "InvariantWarning",
    "as_array",
    "classical_dimer",
    "classical_energy",
    "classical_llg",
    "System",
    "build_system",
    "load_config",
    "with_overrides",
    "projector_exact",
    "pure_state_exact",
    "two_level_exact",
    "two_level_split",
    "METHODS",
    "LowRankState",
    "methods",
    "SpinModel",
    "as_matrix",
    "chain_bonds",
    "chain_model",
    "dimer_hamiltonian",
    "dimer_model",
    "spin_model",
    "bell_nonlocality",
    "bloch_vectors",
    "concurrence",
    "correlation_matrix",
    "energy",
    "expectation",
    "hermiticity_error",
    "partial_trace",
    "passive_energy",
    "passive_state",
    "purity",
    "renyi_entropy",
    "spectrum",
    "spin_expectations",
    "trace",
    "von_neumann_entropy",
    "from_qutip",
    "to_qutip",
    "embed",
    "pauli_matrices",
    "site_spin_operators",
    "spin_dim",
    "spin_matrices",
    "Diagnostics",
    "Result",
    "SolveError",
    "estimate_memory",
    "solve",
    "design",
    "FitError",
    "FitResult",
    "GroundStateResult",
    "energy_and_variance",
    "ground_state",
    "passive_flow",
    "SweepResult",
    "grid",
    "sweep",
    "sweep_solve",
    "SweepStore",
    "SweepFileError",
    "load_sweep",
    "merge_sweeps",
    "SizeError",
    "memory_limit",
    "set_memory_limit",
    "enable_compilation_cache",
    "BELL_STATES",
    "basis_state",
    "bell_state",
    "coherent_product_state",
    "coherent_state",
    "density_matrix",
    "product_state",
    "random_density_matrix",
    "random_hamiltonian",
    "random_ket",
    "thermal_state",
    "up_down_state",
    "validate_state",
    "werner_state",
    "HBAR_MEV_PS",
    "MU_B_MEV_PER_T",
    "Units",
    "__version__",
]
