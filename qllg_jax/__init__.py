"""qllg-jax: a JAX-accelerated, differentiable solver for the quantum Landau–Lifshitz–Gilbert equation.

float64 is enabled on import (:mod:`qllg_jax._precision`). Units: energies in E0, times in ħ/E0 (ħ = 1); see
:mod:`qllg_jax.units`.

The public names below are imported on first use (PEP 562 module ``__getattr__``): ``import qllg_jax`` itself
imports neither JAX nor diffrax, matplotlib, h5py, tqdm, optax or QuTiP, so ``qllg --help`` and scripts that
touch only part of the package start quickly; ``qllg_jax.solve`` imports what a solve needs. ``from qllg_jax
import *``, ``dir(qllg_jax)`` and ``qllg_jax.__all__`` list the same names as before.
"""

from __future__ import annotations

import importlib
import sys
import types

from . import _precision  # float64 on, without importing JAX for it

# public name -> the submodule that defines it (imported when the name is first used)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".equations": ("QLL", "QLLG", "FrameQLLG", "PureQLLG", "VonNeumann", "commutator", "solve_resolvent"),
    "._arrays": ("as_array",),
    "._solvers": ("SOLVER_NAMES",),
    ".classical": ("classical_dimer", "classical_energy", "classical_llg"),
    ".config": ("System", "build_system", "load_config", "with_overrides"),
    ".drives": ("TimeDependent", "constant", "modulated", "pwc", "timecallable"),
    ".exact": ("projector_exact", "pure_state_exact", "two_level_exact", "two_level_split"),
    ".methods": ("METHODS", "LowRankState"),
    ".hamiltonians": ("SpinModel", "as_matrix", "chain_bonds", "chain_model", "dimer_hamiltonian", "dimer_model",
                      "spin_model"),
    ".observables": ("bell_nonlocality", "bloch_vectors", "concurrence", "correlation_matrix", "energy",
                     "expectation", "hermiticity_error", "partial_trace", "passive_energy", "passive_state", "purity",
                     "renyi_entropy", "spectrum", "spin_expectations", "trace", "von_neumann_entropy"),
    ".interop": ("from_qutip", "to_qutip"),
    ".operators": ("embed", "pauli_matrices", "site_spin_operators", "spin_dim", "spin_matrices"),
    ".result": ("Diagnostics", "InvariantWarning", "Result", "SolveError"),
    ".solve": ("estimate_memory", "solve"),
    ".design": ("FitError", "FitResult"),
    ".ground_state": ("GroundStateResult", "energy_and_variance", "ground_state", "passive_flow"),
    ".sweeps": ("SweepFileError", "SweepResult", "SweepStore", "grid", "load_sweep", "merge_sweeps", "sweep",
                 "sweep_solve"),
    ".thermal.ensemble": ("EnsembleAverage", "ensemble_average"),
    "._guards": ("SizeError", "memory_limit", "set_memory_limit"),
    "._compilation_cache": ("enable_compilation_cache",),
    ".states": ("BELL_STATES", "basis_state", "bell_state", "coherent_product_state", "coherent_state",
                "density_matrix", "product_state", "random_density_matrix", "random_hamiltonian", "random_ket",
                "thermal_state", "up_down_state", "validate_state", "werner_state"),
    ".units": ("HBAR_MEV_PS", "MU_B_MEV_PER_T", "Units"),
    "._version": ("__version__",),  # read from the installed metadata: only when asked for
}
_SOURCE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBPACKAGES_EXPORTED = ("methods", "design", "thermal", "pulses")  # public names that are submodules themselves
# submodules reachable as attributes (``qllg_jax.paper``, ``qllg_jax.observables``), imported on first access
_SUBMODULES = ("classical", "cli", "config", "design", "drives", "equations", "exact", "ground_state",
               "hamiltonians", "interop", "methods", "observables", "operators", "paper", "plotting", "result", "solve", "states",
               "sweeps", "thermal", "units")
# public functions with the name of the submodule that defines them: the attribute stays the function, also after
# the import system binds the submodule to the package (``import qllg_jax.solve``)
_FUNCTIONS_NAMED_LIKE_MODULES = ("solve", "ground_state")

__all__ = [
    "QLL", "QLLG", "FrameQLLG", "PureQLLG", "VonNeumann", "commutator", "solve_resolvent",
    "SOLVER_NAMES", "InvariantWarning", "as_array",
    "classical_dimer", "classical_energy", "classical_llg",
    "System", "build_system", "load_config", "with_overrides",
    "TimeDependent", "constant", "modulated", "pwc", "timecallable", "pulses",
    "projector_exact", "pure_state_exact", "two_level_exact", "two_level_split",
    "METHODS", "LowRankState", "methods",
    "SpinModel", "as_matrix", "chain_bonds", "chain_model", "dimer_hamiltonian", "dimer_model", "spin_model",
    "bell_nonlocality", "bloch_vectors", "concurrence", "correlation_matrix", "energy", "expectation",
    "hermiticity_error", "partial_trace", "passive_energy", "passive_state", "purity", "renyi_entropy", "spectrum",
    "spin_expectations", "trace", "von_neumann_entropy",
    "from_qutip", "to_qutip",
    "embed", "pauli_matrices", "site_spin_operators", "spin_dim", "spin_matrices",
    "Diagnostics", "Result", "SolveError", "estimate_memory", "solve",
    "design", "thermal", "FitError", "FitResult", "EnsembleAverage", "ensemble_average",
    "GroundStateResult", "energy_and_variance", "ground_state", "passive_flow",
    "SweepResult", "grid", "sweep", "sweep_solve", "SweepStore", "SweepFileError", "load_sweep", "merge_sweeps",
    "SizeError", "memory_limit", "set_memory_limit",
    "enable_compilation_cache",
    "BELL_STATES", "basis_state", "bell_state", "coherent_product_state", "coherent_state", "density_matrix",
    "product_state", "random_density_matrix", "random_hamiltonian", "random_ket", "thermal_state", "up_down_state",
    "validate_state", "werner_state",
    "HBAR_MEV_PS", "MU_B_MEV_PER_T", "Units",
    "__version__",
]


def __getattr__(name: str):
    if name in _SOURCE:
        value = getattr(importlib.import_module(_SOURCE[name], __name__), name)
    elif name in _SUBPACKAGES_EXPORTED or name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
        value = getattr(value, name) if name in _FUNCTIONS_NAMED_LIKE_MODULES else value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        if name in _FUNCTIONS_NAMED_LIKE_MODULES and isinstance(value, types.ModuleType):
            value = getattr(value, name)  # `import qllg_jax.solve` binds the module: keep the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
