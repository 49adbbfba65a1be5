"""The public :func:`classical_llg`: the deterministic integrator (:mod:`.llg`) or, with ``temperature=``, the
stochastic one (:mod:`.stochastic`), chosen from host values before any compute."""

from __future__ import annotations

import functools

import numpy as np

from .._checks import concrete_value, key_batch_shape
from . import llg
from .stochastic import stochastic_llg
from ..thermal.noise import check_temperature

_THERMAL_ONLY = ("key", "dt", "noise", "brownian_tol")

_THERMAL_DOC = """
    Finite temperature (keyword-only; see :mod:`qllg_jax.classical.stochastic`):
        temperature: τ = k_B T ≥ 0 in E0 (``Units(...).temperature(kelvin)``). Brown's field on every site,
            ⟨ξ_k,a(t) ξ_l,b(t')⟩ = 2 D_k δ_kl δ_ab δ(t − t'), D_k = α τ / s_k (Stratonovich); one spin in a field b
            thermalises to ⟨m_z⟩ = L(s b/τ). ``temperature=0`` (known on the host) is exactly the deterministic
            solve above; ``None`` (default): no noise.
        key: a ``jax.random`` key (one trajectory, m(t) (T, N, 3)) or a batch of keys (..., K) → (K..., T, N, 3);
            required at τ > 0. Same key ⇒ same path, bit for bit.
        dt, noise, brownian_tol: the fixed step (checked against the fastest precession; default from it), the
            Brownian path (``"tree"``: steps h and h/2 see one path; ``"steps"``: one draw per step) and the
            tree's resolution. rtol/atol/solver/max_steps apply to the deterministic solve only. A driven model
            (SpinModel terms) works at τ > 0 too: the field is evaluated at each step's midpoint and the drive's
            jumps are step boundaries (:mod:`qllg_jax.thermal.drive`).
"""


@functools.wraps(llg.classical_llg)
def classical_llg(model, m0, ts, alpha, *, temperature=None, key=None, dt=None, noise="tree", brownian_tol=None,
                  **options):
    thermal = {"key": key, "dt": dt, "noise": noise, "brownian_tol": brownian_tol}
    if temperature is None:
        given = [name for name in _THERMAL_ONLY if thermal[name] != {"noise": "tree"}.get(name)]
        if given:
            raise ValueError(f"{', '.join(given)} given without temperature (they set the thermal noise; pass "
                             "temperature=k_B T in E0)")
        return llg.classical_llg(model, m0, ts, alpha, **options)
    temperature = check_temperature(temperature)
    value = concrete_value(temperature)
    if value is not None and value == 0:
        return llg.classical_llg(model, m0, ts, alpha, **options)
    unused = sorted(set(options) & {"rtol", "atol", "solver", "max_steps"})
    if unused:
        raise ValueError(f"{', '.join(unused)} apply to the deterministic solve only; at temperature > 0 the step is "
                         "fixed (pass dt)")
    if options:
        raise TypeError(f"classical_llg got unexpected keyword arguments {sorted(options)}")
    batch = key_batch_shape(key)
    run = lambda k: stochastic_llg(model, m0, ts, alpha, temperature=temperature, key=k, dt=dt, noise=noise,  # noqa: E731
                                   brownian_tol=brownian_tol)
    if not batch:
        return run(key)
    flat = key.reshape((-1,) + tuple(np.shape(key))[len(batch):])
    out = run(flat)  # one ensemble: the trajectories are the minor axis inside the stepper
    return out.reshape(batch + out.shape[1:])


classical_llg.__doc__ = (llg.classical_llg.__doc__ or "") + _THERMAL_DOC
