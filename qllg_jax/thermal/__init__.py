"""Finite temperature: Brown's thermal field for classical LLG and the thermal noise operator for q-LLG.

- :mod:`.noise`: τ = k_B T, the Brownian paths (diffrax ``VirtualBrownianTree`` or per-step draws), the fixed grid
  and its step check;
- :mod:`.lie`: rotations (Rodrigues) and Cayley maps, so every step is a group action;
- :mod:`.drive`: a driven H(t) in the fixed steps (midpoint evaluation, jumps as step boundaries, the drive's rate in
  the step check);
- :mod:`.frames`: the stochastic q-LLG / q-LL / von Neumann for frames and kets
  (:func:`stochastic_frames`); :mod:`.ensemble`: means and standard errors, the ensemble-averaged ϱ (:func:`ensemble_average` of a
  finite-temperature :func:`qllg_jax.solve`); :mod:`.solve`: ``solve(..., temperature=)`` as a Result; the classical counterpart is :func:`qllg_jax.classical.stochastic.stochastic_llg`.
"""

from .ensemble import EnsembleAverage, ensemble_average, ensemble_density_matrix, ensemble_energy, ensemble_mean, ensemble_spin_expectations
from .frames import FrameTrajectory, stochastic_frames
from .noise import DEFAULT_STEP_PHASE, MAX_STEP_PHASE, NOISES

__all__ = ["DEFAULT_STEP_PHASE", "EnsembleAverage", "FrameTrajectory", "ensemble_average", "ensemble_density_matrix", "ensemble_energy", "ensemble_mean",
           "ensemble_spin_expectations", "MAX_STEP_PHASE", "NOISES", "stochastic_frames"]
