"""Physical constants and unit conversions against the SI definitions (independent of scipy's tables)."""

import math

import pytest

import qllg_jax as q
from qllg_jax.units import BOLTZMANN_MEV_PER_K

# exact by the 2019 SI definitions
H_PLANCK, E_CHARGE, K_BOLTZMANN = 6.62607015e-34, 1.602176634e-19, 1.380649e-23
M_ELECTRON = 9.1093837139e-31  # CODATA 2022 (kg); 2018: 9.1093837015e-31


def test_constants_follow_from_the_si_definitions():
    hbar = H_PLANCK / (2 * math.pi)
    assert q.HBAR_MEV_PS == pytest.approx(hbar / E_CHARGE * 1e15, rel=1e-15)
    assert BOLTZMANN_MEV_PER_K == pytest.approx(K_BOLTZMANN / E_CHARGE * 1e3, rel=1e-15)
    # μ_B = eħ/(2 m_e): in eV/T that is ħ/(2 m_e); m_e differs between CODATA editions at 1e-9
    assert q.MU_B_MEV_PER_T == pytest.approx(hbar / (2 * M_ELECTRON) * 1e3, rel=3e-9)


def test_paper_units():
    u = q.Units.from_field(1.0)
    assert u.time_ps == pytest.approx(0.6582119569509067 / 0.057883817982, rel=1e-12)  # ħ/(μ_B·1 T) ≈ 11.371 ps
    assert u.field(1.0) == pytest.approx(2.0)  # g = 2: b = 2 for 1 T in units of μ_B·1 T
    assert u.temperature(1.0) == pytest.approx(K_BOLTZMANN / (9.2740100657e-24), rel=1e-8)  # k_B·1 K / (μ_B·1 T)


@pytest.mark.parametrize("bad", ["1", True, float("nan"), -1.0, 0, [1.0], None, float("inf")])
def test_from_field_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match="b0_tesla"):
        q.Units.from_field(bad)
    with pytest.raises(ValueError, match="energy_meV"):
        q.Units(bad)
