"""Physical units.

The solver is dimensionless: energies in a unit E0 of your choice and times in ħ/E0 (ħ = 1).
The paper's figures use E0 = μ_B·B0 with B0 = 1 T, so a field of 1 T on a g = 2 spin-1/2 is one unit
(H = −b·σ) and one time unit is ħ/(μ_B·1 T) ≈ 11.37 ps.

Constants (CODATA 2014, as used by UppASD): ħ = 0.6582119514 meV·ps, μ_B = 0.057883817555 meV/T.
"""

from __future__ import annotations

import equinox as eqx

HBAR_MEV_PS = 0.6582119514
MU_B_MEV_PER_T = 0.057883817555


class Units(eqx.Module):
    """A choice of energy unit ``energy_meV`` (E0 in meV); time unit is ħ/E0.

    Example: ``u = Units.from_field(1.0)`` is the paper's E0 = μ_B·(1 T); then
    ``u.energy(0.0579)`` ≈ 1.0 and ``u.time_to_ps(1.0)`` ≈ 11.37.
    """

    energy_meV: float

    def __check_init__(self):
        if not self.energy_meV > 0:
            raise ValueError(f"energy unit must be positive, got {self.energy_meV} meV")

    @classmethod
    def from_field(cls, b0_tesla: float = 1.0) -> Units:
        """E0 = μ_B·B0: a field B0 (tesla) on a g = 2 spin-1/2 gives the Pauli Zeeman term −(B/B0)·σ."""
        return cls(MU_B_MEV_PER_T * b0_tesla)

    def energy(self, meV):
        """Energy in meV → dimensionless (units of E0)."""
        return meV / self.energy_meV

    def energy_to_meV(self, e):
        """Dimensionless energy (units of E0) → meV; scalars or arrays of any shape."""
        return e * self.energy_meV

    def field(self, tesla, g: float = 2.0):
        """Magnetic field (T) → Zeeman coefficient b in units of E0 for H = −b·S (spin operators S).

        H_Z = −g μ_B B·S, so b = g μ_B B / E0. (For the Pauli form −b'·σ of the paper, b' = b/2.)
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
