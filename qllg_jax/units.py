"""Physical units.

The solver is dimensionless: energies in a unit E0 of your choice and times in ħ/E0 (ħ = 1).
The paper's figures use E0 = μ_B·B0 with B0 = 1 T, so a field of 1 T on a g = 2 spin-1/2 is one unit
(H = −b·σ) and one time unit is ħ/(μ_B·1 T) ≈ 11.37 ps.

Constants come from :mod:`scipy.constants` (the CODATA edition of the installed SciPy: 2022 for SciPy ≥ 1.15,
2018 before). ħ and k_B are exact in the SI since 2019, so only μ_B differs between the two editions
(relative 1.3·10⁻⁹).
"""

from __future__ import annotations

import numbers

import equinox as eqx
import numpy as np
from scipy import constants as _si

HBAR_MEV_PS = _si.hbar / _si.e * 1e15
"""ħ in meV·ps (ħ/e in eV·s × 10³ meV/eV × 10¹² ps/s)."""
MU_B_MEV_PER_T = _si.physical_constants["Bohr magneton in eV/T"][0] * 1e3
"""Bohr magneton μ_B in meV/T."""
BOLTZMANN_MEV_PER_K = _si.k / _si.e * 1e3
"""Boltzmann constant k_B in meV/K."""


def _positive_real(value, name: str) -> float:
    """A finite real scalar > 0 (a Python/NumPy number or a 0-d array; strings and bools are refused)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive real number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not (np.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return number


class Units(eqx.Module):
    """A choice of energy unit ``energy_meV`` (E0 in meV); time unit is ħ/E0.

    Example: ``u = Units.from_field(1.0)`` is the paper's E0 = μ_B·(1 T); then
    ``u.energy(0.0579)`` ≈ 1.0 and ``u.time_to_ps(1.0)`` ≈ 11.37.
    """

    energy_meV: float

    def __init__(self, energy_meV: float):
        self.energy_meV = _positive_real(energy_meV, "energy_meV (the energy unit E0 in meV)")

    @classmethod
    def from_field(cls, b0_tesla: float = 1.0) -> Units:
        """E0 = μ_B·B0 for a field ``b0_tesla`` > 0 (tesla): a field B0 on a g = 2 spin-1/2 gives the Pauli
        Zeeman term −(B/B0)·σ."""
        return cls(MU_B_MEV_PER_T * _positive_real(b0_tesla, "b0_tesla (the field B0 of E0 = mu_B B0, in tesla)"))

    def energy(self, meV):
        """Energy in meV → dimensionless (units of E0)."""
        return meV / self.energy_meV

    def energy_to_meV(self, e):
        """Dimensionless energy (units of E0) → meV; scalars or arrays of any shape."""
        return e * self.energy_meV

    def field(self, tesla, g: float = 2.0):
        """Magnetic field (T) → Zeeman coefficient b in units of E0 for H_Z = −b·S (spin operators S).

        b = g μ_B B / E0, shape of ``tesla``. (For the Pauli form −b'·σ of the paper, b' = b/2.)
        Like the paper, the package takes the magnetic moment along S, H_Z = −g μ_B B·S; for an electron
        (moment −g μ_B S) the physical term is +g μ_B B·S, i.e. pass −B.
        """
        return g * MU_B_MEV_PER_T * tesla / self.energy_meV

    @property
    def time_ps(self) -> float:
        """One dimensionless time unit ħ/E0 in picoseconds."""
        return HBAR_MEV_PS / self.energy_meV

    def time(self, ps):
        """Time in ps → dimensionless (units of ħ/E0)."""
        return ps / self.time_ps

    def time_to_ps(self, t):
        """Dimensionless time (units of ħ/E0) → ps; scalars or arrays of any shape."""
        return t * self.time_ps

    def frequency(self, GHz):
        """Frequency ν (GHz) → angular frequency ω = 2πν in units of E0/ħ (radians per time unit ħ/E0):
        ω = 2π · ν · 10⁻³ ps⁻¹/GHz · ``time_ps``; scalars or arrays of any shape."""
        return 2 * np.pi * 1e-3 * self.time_ps * GHz

    def frequency_to_GHz(self, omega):
        """Angular frequency ω (units of E0/ħ) → frequency ν = ω/2π in GHz (inverse of :meth:`frequency`)."""
        return omega / (2 * np.pi * 1e-3 * self.time_ps)

    def chirp_rate(self, GHz_per_ps):
        """Frequency sweep rate dν/dt (GHz/ps) → dω/dt in units of (E0/ħ)² (per time unit squared):
        2π · 10⁻³ · rate · ``time_ps``²."""
        return 2 * np.pi * 1e-3 * self.time_ps**2 * GHz_per_ps

    def temperature(self, kelvin):
        """Temperature (K) → k_B T in units of E0 (β = 1/that, in 1/E0)."""
        return BOLTZMANN_MEV_PER_K * kelvin / self.energy_meV
