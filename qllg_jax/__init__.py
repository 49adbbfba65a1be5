"""qllg-jax: a JAX-accelerated, differentiable solver for the quantum Landau–Lifshitz–Gilbert equation.

float64 is enabled on import. Units: energies in E0, times in ħ/E0 (ħ = 1); see :mod:`qllg_jax.units`.
"""

from . import _config  # noqa: F401  (enables float64)
from .equations import QLL, QLLG, VonNeumann, commutator, solve_resolvent
from .exact import projector_exact, pure_state_exact, two_level_exact, two_level_split
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
from .operators import embed, pauli_matrices, site_spin_operators, spin_dim, spin_matrices
from .solve import Diagnostics, Result, SolveError, solve
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
