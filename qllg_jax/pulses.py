r"""Pulse shapes f(t) for driven Hamiltonians, and field drives on spins.

A pulse is a real function of time with parameters as pytree leaves (differentiable, vmappable; leading axes
of the parameters are batch axes). Use one as the ``f`` of :func:`qllg_jax.modulated`, or write
``pulse * H1``. Shapes (t, centre, width, start, stop, rise in ħ/E0; ω in E0/ħ; rate in (E0/ħ)²; A as given):

- :func:`gaussian`: A·exp(−(t − t_c)²/(2σ²)) (σ = ``width``, the standard deviation);
- :func:`rectangular`: A on [start, stop), 0 elsewhere; with ``rise`` τ > 0 smooth edges
  A·½[tanh((t − start)/τ) − tanh((t − stop)/τ)];
- :func:`cosine`, :func:`sine`: A·cos(ωt + φ), A·sin(ωt + φ) (carriers);
- :func:`chirp`: A·cos(ωt + ½βt² + φ) (instantaneous angular frequency ω + βt);
- :func:`constant`: a constant A;
- sums and products of pulses and real numbers (``gaussian(...) * cosine(...)``: a wave packet).

Physical units: pass ``units=`` (a :class:`~qllg_jax.units.Units`) and give times in ps, frequencies in GHz
(ν, converted to ω = 2πν) and chirp rates in GHz/ps; amplitudes stay dimensionless factors. Field drives
(:func:`field_drive`, :func:`rotating_field`) take the field in tesla when ``units`` is given
(b = g μ_B B/E0, :meth:`Units.field`).

Pulses know their time scales: :meth:`Pulse.step_ts` lists times where an adaptive integrator must land (a
grid of spacing σ over t_c ± 6σ for a Gaussian, τ-spaced grids over the smooth edges of a rectangle), so that
a short pulse arriving while the state is at rest is not stepped over; :meth:`Pulse.discontinuity_ts` lists
hard edges (step boundaries); :meth:`Pulse.bound` bounds |f(t)| (for the spectral width of H(t)).
"""

from __future__ import annotations

import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._arrays import device_array
from ._checks import concrete_value, is_concrete, real_array
from .drives import modulated
from .hamiltonians import SpinModel, spin_model
from .units import Units

GAUSSIAN_STEP_GRID = 6
"""A Gaussian's step grid covers t_c ± 6σ at spacing σ (outside, |f| < 1.6e-8·A)."""
EDGE_STEP_GRID = 5
"""A smooth edge's step grid covers the edge ± 5τ at spacing τ (outside, 1 − tanh < 1e-4)."""


def _parameter(value, name: str, positive: bool = False):
    array = real_array(value, name)
    concrete = concrete_value(array)
    if concrete is not None:
        if not np.all(np.isfinite(concrete)):
            raise ValueError(f"{name} must be finite, got {concrete}")
        if positive and not np.all(concrete > 0):
            raise ValueError(f"{name} must be > 0, got {concrete}")
    return array.astype(float) if isinstance(array, np.ndarray) else array.astype(float)


def _time(value, name, units, positive=False):
    value = _parameter(value, name + (" (ps)" if units is not None else ""), positive)
    return value if units is None else _to_units(units, "time").time(value)


def _frequency(value, name, units):
    value = _parameter(value, name + (" (GHz)" if units is not None else ""))
    return value if units is None else _to_units(units, "frequency").frequency(value)


def _to_units(units, what):
    if not isinstance(units, Units):
        raise ValueError(f"units must be a qllg_jax.Units (e.g. Units.from_field(1.0)), got {type(units).__name__}")
    return units


def _stop(x):
    return jax.lax.stop_gradient(device_array(x, dtype=float))


def _grid(centres, spacing, half_count: int):
    """Flattened sorted times centres + spacing·k, k = −n..n, over every batch element."""
    k = np.arange(-half_count, half_count + 1, dtype=float)
    if is_concrete(centres, spacing):
        c, s = np.asarray(centres, dtype=float), np.asarray(spacing, dtype=float)
        return np.sort((c[..., None] + s[..., None] * k).ravel())
    c, s = jnp.broadcast_arrays(_stop(centres), _stop(spacing))
    return jnp.sort((c[..., None] + s[..., None] * k).ravel())


def _union(*arrays):
    arrays = [a for a in arrays if a is not None and np.size(a) > 0]
    if not arrays:
        return np.zeros((0,))
    if all(is_concrete(a) for a in arrays):
        return np.sort(np.concatenate([np.ravel(np.asarray(a, dtype=float)) for a in arrays]))
    return jnp.sort(jnp.concatenate([jnp.ravel(_stop(a)) for a in arrays]))


def _is_scalar(x) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, numbers.Real) or (isinstance(x, (np.ndarray, np.generic, jax.Array)) and np.ndim(x) == 0
                                            and not jnp.iscomplexobj(x))


def _is_operator(x) -> bool:
    return isinstance(x, SpinModel) or (isinstance(x, (np.ndarray, jax.Array, list)) and np.ndim(x) == 2)


class Pulse(eqx.Module):
    """A real function f(t) (t in ħ/E0) with its parameters as leaves; call ``pulse(t)`` for a scalar t
    (returns shape ``batch_shape``) or :meth:`sample` for a grid."""

    __array_priority__ = 1000
    __array_ufunc__ = None

    def __call__(self, t) -> jax.Array:
        raise NotImplementedError

    @property
    def batch_shape(self) -> tuple[int, ...]:
        leaves = [leaf for leaf in jtu.tree_leaves(self) if hasattr(leaf, "shape")]
        return tuple(np.broadcast_shapes(*[np.shape(leaf) for leaf in leaves])) if leaves else ()

    def sample(self, ts) -> jax.Array:
        """f at each of ``ts`` (T,): shape (T,) + batch_shape."""
        return jax.vmap(self)(device_array(ts, dtype=float))

    def bound(self) -> jax.Array:
        """A bound B ≥ max_t |f(t)|, shape batch_shape."""
        raise NotImplementedError

    def step_ts(self):
        """Times (1-D, sorted) where an adaptive integrator's steps must land; empty by default."""
        return np.zeros((0,))

    def discontinuity_ts(self):
        """Times (1-D, sorted) where f jumps; empty by default."""
        return np.zeros((0,))

    def time_scale(self):
        """The pulse's shortest time scale (ħ/E0), or None for a carrier (no window)."""
        return None

    def broadcast_batch(self, shape) -> Pulse:
        """The pulse with every parameter broadcast to ``shape`` (for jax.vmap over its batch)."""
        return jtu.tree_map(lambda leaf: jnp.broadcast_to(leaf, tuple(shape)), self)

    # arithmetic: pulses with pulses and real numbers; pulse * operator -> modulated drive
    def __add__(self, other):
        if _is_scalar(other):
            other = constant(other)
        if not isinstance(other, Pulse):
            return NotImplemented
        return PulseSum((self, other))

    __radd__ = __add__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        if _is_scalar(other) or isinstance(other, Pulse):
            return self + (-1.0) * other
        return NotImplemented

    def __rsub__(self, other):
        if _is_scalar(other):
            return constant(other) + (-1.0) * self
        return NotImplemented

    def __mul__(self, other):
        if _is_scalar(other):
            other = constant(other)
        if isinstance(other, Pulse):
            return PulseProduct((self, other))
        if _is_operator(other):
            return modulated(self, other)
        return NotImplemented

    __rmul__ = __mul__


class Constant(Pulse):
    """f(t) = value."""

    value: jax.Array

    def __call__(self, t):
        return device_array(self.value, dtype=float) + 0.0 * device_array(t, dtype=float)

    def bound(self):
        return jnp.abs(device_array(self.value))


class Gaussian(Pulse):
    """f(t) = A·exp(−(t − t_c)²/(2σ²)); ``width`` σ > 0 (the standard deviation)."""

    amplitude: jax.Array
    centre: jax.Array
    width: jax.Array

    def __call__(self, t):
        return self.amplitude * jnp.exp(-((t - self.centre) ** 2) / (2 * self.width**2))

    def bound(self):
        return jnp.abs(device_array(self.amplitude)) * jnp.ones(self.batch_shape)

    def step_ts(self):
        return _grid(self.centre, self.width, GAUSSIAN_STEP_GRID)

    def time_scale(self):
        return jnp.min(_stop(self.width)) if not is_concrete(self.width) else float(np.min(self.width))


class Rectangular(Pulse):
    """f(t) = A on [start, stop), 0 elsewhere; ``rise`` τ > 0 gives smooth edges
    A·½[tanh((t − start)/τ) − tanh((t − stop)/τ)] (``smooth`` is static)."""

    amplitude: jax.Array
    start: jax.Array
    stop: jax.Array
    rise: jax.Array
    smooth: bool = eqx.field(static=True)

    def __call__(self, t):
        if self.smooth:
            return self.amplitude * 0.5 * (jnp.tanh((t - self.start) / self.rise) - jnp.tanh((t - self.stop) / self.rise))
        return jnp.where((t >= self.start) & (t < self.stop), self.amplitude, 0.0) * jnp.ones(self.batch_shape)

    def bound(self):
        return jnp.abs(device_array(self.amplitude)) * jnp.ones(self.batch_shape)

    def step_ts(self):
        if not self.smooth:
            return np.zeros((0,))
        return _union(_grid(self.start, self.rise, EDGE_STEP_GRID), _grid(self.stop, self.rise, EDGE_STEP_GRID))

    def discontinuity_ts(self):
        return np.zeros((0,)) if self.smooth else _union(self.start, self.stop)

    def time_scale(self):
        scale = self.rise if self.smooth else device_array(self.stop) - device_array(self.start)
        return float(np.min(scale)) if is_concrete(scale) else jnp.min(_stop(scale))


class Carrier(Pulse):
    """f(t) = A·cos(ωt + φ) (``kind="cos"``) or A·sin(ωt + φ) (``kind="sin"``)."""

    amplitude: jax.Array
    frequency: jax.Array
    phase: jax.Array
    kind: str = eqx.field(static=True, default="cos")

    def __call__(self, t):
        wave = jnp.cos if self.kind == "cos" else jnp.sin
        return self.amplitude * wave(self.frequency * t + self.phase)

    def bound(self):
        return jnp.abs(device_array(self.amplitude)) * jnp.ones(self.batch_shape)


class Chirp(Pulse):
    """f(t) = A·cos(ωt + ½βt² + φ): instantaneous angular frequency ω + βt."""

    amplitude: jax.Array
    frequency: jax.Array
    rate: jax.Array
    phase: jax.Array

    def __call__(self, t):
        return self.amplitude * jnp.cos(self.frequency * t + 0.5 * self.rate * t**2 + self.phase)

    def bound(self):
        return jnp.abs(device_array(self.amplitude)) * jnp.ones(self.batch_shape)


class PulseSum(Pulse):
    """f(t) = Σ_i f_i(t)."""

    terms: tuple

    def __call__(self, t):
        return sum(term(t) for term in self.terms)

    def bound(self):
        return sum(term.bound() for term in self.terms)

    def step_ts(self):
        return _union(*[term.step_ts() for term in self.terms])

    def discontinuity_ts(self):
        return _union(*[term.discontinuity_ts() for term in self.terms])

    def time_scale(self):
        return _min_scale([term.time_scale() for term in self.terms])


class PulseProduct(Pulse):
    """f(t) = Π_i f_i(t) (e.g. an envelope times a carrier)."""

    factors: tuple

    def __call__(self, t):
        out = self.factors[0](t)
        for factor in self.factors[1:]:
            out = out * factor(t)
        return out

    def bound(self):
        out = self.factors[0].bound()
        for factor in self.factors[1:]:
            out = out * factor.bound()
        return out

    def step_ts(self):
        return _union(*[factor.step_ts() for factor in self.factors])

    def discontinuity_ts(self):
        return _union(*[factor.discontinuity_ts() for factor in self.factors])

    def time_scale(self):
        return _min_scale([factor.time_scale() for factor in self.factors])


def _min_scale(scales):
    scales = [s for s in scales if s is not None]
    if not scales:
        return None
    if all(is_concrete(s) for s in scales):
        return float(min(np.min(s) for s in scales))
    return jnp.min(jnp.stack([jnp.min(device_array(s)) for s in scales]))


# ----------------------------------------------------------------------------------------------------------
# constructors


def constant(value) -> Constant:
    """f(t) = value (real; leading axes: batch)."""
    return Constant(_parameter(value, "value"))


def gaussian(amplitude, centre, width, *, units: Units | None = None) -> Gaussian:
    """A·exp(−(t − t_c)²/(2σ²)): ``centre`` t_c and ``width`` σ > 0 in ħ/E0 (ps with ``units``)."""
    return Gaussian(_parameter(amplitude, "amplitude"), _time(centre, "centre", units),
                    _time(width, "width", units, positive=True))


def rectangular(amplitude, start, stop, *, rise=None, units: Units | None = None) -> Rectangular:
    """A on [start, stop) (hard edges: discontinuities), or with ``rise`` τ > 0 smooth tanh edges of width τ.
    Times in ħ/E0 (ps with ``units``)."""
    start, stop = _time(start, "start", units), _time(stop, "stop", units)
    s, e = concrete_value(start), concrete_value(stop)
    if s is not None and e is not None and not np.all(np.asarray(e) > np.asarray(s)):
        raise ValueError(f"rectangular: stop must be > start, got start = {s}, stop = {e}")
    smooth = rise is not None
    if smooth:
        value = concrete_value(rise)
        smooth = value is None or bool(np.any(np.asarray(value) != 0))
    rise = _time(rise, "rise", units, positive=True) if smooth else np.zeros(())
    return Rectangular(_parameter(amplitude, "amplitude"), start, stop, rise, smooth)


def cosine(amplitude, frequency, phase=0.0, *, units: Units | None = None) -> Carrier:
    """A·cos(ωt + φ): ``frequency`` ω in E0/ħ (ν in GHz with ``units``, ω = 2πν), ``phase`` φ in radians."""
    return Carrier(_parameter(amplitude, "amplitude"), _frequency(frequency, "frequency", units),
                   _parameter(phase, "phase"), "cos")


def sine(amplitude, frequency, phase=0.0, *, units: Units | None = None) -> Carrier:
    """A·sin(ωt + φ): ``frequency`` ω in E0/ħ (ν in GHz with ``units``), ``phase`` φ in radians."""
    return Carrier(_parameter(amplitude, "amplitude"), _frequency(frequency, "frequency", units),
                   _parameter(phase, "phase"), "sin")


def chirp(amplitude, frequency, rate, phase=0.0, *, units: Units | None = None) -> Chirp:
    """A·cos(ωt + ½βt² + φ): ω in E0/ħ and β in (E0/ħ)² (GHz and GHz/ps with ``units``), φ in radians."""
    rate = _parameter(rate, "rate" + (" (GHz/ps)" if units is not None else ""))
    rate = rate if units is None else _to_units(units, "rate").chirp_rate(rate)
    return Chirp(_parameter(amplitude, "amplitude"), _frequency(frequency, "frequency", units), rate,
                 _parameter(phase, "phase"))


# ----------------------------------------------------------------------------------------------------------
# field drives on spins


def _spins_of(spins):
    if isinstance(spins, SpinModel):
        return spins.spins
    return tuple(spins) if isinstance(spins, (list, tuple)) else (spins,)


def _site_fields(spins, vector, sites, units, g, name):
    n = len(spins)
    vector = _parameter(vector, name + (" (T)" if units is not None else ""))
    if vector.shape != (3,):
        raise ValueError(f"{name} must be a 3-vector, got shape {vector.shape}")
    if units is not None:
        vector = _to_units(units, "field").field(vector, g)
    sites = tuple(range(n)) if sites is None else tuple(int(k) for k in sites)
    for k in sites:
        if not 0 <= k < n:
            raise ValueError(f"sites: site {k} does not exist (the model has {n} sites)")
    mask = np.zeros((n, 1))
    mask[list(sites)] = 1.0
    return mask * vector


def field_drive(spins, pulse, direction, *, sites=None, units: Units | None = None, g: float = 2.0):
    r"""A field pulse on spins: H(t) = −f(t) Σ_{k ∈ sites} b·S_k (matrix-free, a SpinModel term).

    Args:
        spins: the spins of the sites (e.g. ``(0.5, 0.5)``) or the SpinModel H0 (its sites).
        pulse: f(t), a :class:`Pulse` or a real scalar function of t.
        direction: b (3,), energy units E0 (tesla with ``units``: b = g μ_B B/E0).
        sites: driven sites (default all).
    """

    spins = _spins_of(spins)
    model = spin_model(spins, field=_site_fields(spins, direction, sites, units, g, "direction"))
    return modulated(pulse, model)


def rotating_field(spins, amplitude, frequency, *, phase=0.0, axis=(0.0, 0.0, 1.0), envelope: Pulse | None = None,
                   sites=None, units: Units | None = None, g: float = 2.0):
    r"""A circularly polarised field b(t) = A·e(t)·[cos(ωt + φ) e₁ + sin(ωt + φ) e₂] on ``sites``,
    H(t) = −Σ_k b(t)·S_k, rotating counter-clockwise about ``axis`` for ω > 0 ((e₁, e₂, axis) right-handed;
    axis z gives e₁ = x, e₂ = y).

    A spin in H0 = −b₀ S_z (b₀ > 0) precesses clockwise about z (ṁ = m × b), so it is resonant with ω = −b₀.
    ``amplitude`` A in E0 (tesla with ``units``), ``frequency`` ω in E0/ħ (ν in GHz with ``units``), ``phase`` φ
    in radians, ``envelope`` e(t) an optional pulse (default 1).
    """
    spins = _spins_of(spins)
    n = _parameter(axis, "axis")
    value = concrete_value(n)
    if n.shape != (3,) or value is None or float(np.linalg.norm(value)) == 0:
        raise ValueError(f"axis must be a concrete non-zero 3-vector, got {axis!r}")
    n = value / np.linalg.norm(value)
    reference = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = reference - (reference @ n) * n
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    carrier_cos = cosine(amplitude, frequency, phase, units=units)
    carrier_sin = sine(amplitude, frequency, phase, units=units)
    if envelope is not None:
        carrier_cos, carrier_sin = carrier_cos * envelope, carrier_sin * envelope
    field_units = units
    return (field_drive(spins, carrier_cos, e1, sites=sites, units=field_units, g=g)
            + field_drive(spins, carrier_sin, e2, sites=sites, units=field_units, g=g))


__all__ = ["Pulse", "Gaussian", "Rectangular", "Carrier", "Chirp", "PulseSum", "PulseProduct", "constant",
           "gaussian", "rectangular", "cosine", "sine", "chirp", "field_drive", "rotating_field"]
