r"""Thermal noise: the temperature, the Brownian path from a key, the fixed time grid and its step check.

Brown's thermal field on site k is white noise ξ_k(t) with (Stratonovich)

.. math:: \langle \xi_{k,a}(t)\,\xi_{l,b}(t')\rangle = 2D_k\,\delta_{kl}\,\delta_{ab}\,\delta(t - t'),

D_k = α τ / s_k (classical LLG, Gilbert damping α) or κ τ / s_k (q-LLG, damping κ); τ = k_B T in the model's
energy unit E0 (:meth:`qllg_jax.Units.temperature` converts kelvin) and s_k the site's spin. Over a step
[t, t + h] the field enters only through its integral σ_k ΔW_k, σ_k = √(2D_k), with ΔW_k (3,) the increment of a
standard 3-vector Brownian motion per site: the noise array has shape (N, 3).

Two Brownian paths, both reproducible bit for bit from the key:

- ``"tree"`` (default): :class:`diffrax.VirtualBrownianTree` on [ts[0], ts[-1]] with resolution
  ``brownian_tol``. W(t) is a fixed function of (key, ts[0], ts[-1], brownian_tol): runs with steps h and h/2
  evaluate the **same path** (strong-convergence studies, resumed runs). Each step evaluates W once (the value
  at the step's start is carried), a binary search of depth log2((t1 − t0)/tol).
- ``"steps"``: an independent N(0, h) increment per step from ``fold_in(key, step index)`` (the integer index,
  not the float time). Cheaper (one draw per step) and exact in law, but a different step size is a different
  path. For large ensembles at one step size.

Time grid: every save interval [t_i, t_{i+1}] is split into n_i = ⌈(t_{i+1} − t_i)/dt⌉ equal steps (≤ dt), so
every save time is a step end; intervals with fewer steps than the longest are padded with no-op steps, so the
program's shape depends only on the number of save times and max n_i (host integers).

Step check: the integrators are fixed-step (diffrax has no Lie-group SDE solvers, and an additive update would not
keep |m_k| = 1 or the spectrum of ϱ). ``dt`` must resolve the fastest precession ω (classical: a bound of
max_k |b_eff,k|; quantum: the spectral width of H) and the noise: dt·ω ≤ :data:`MAX_STEP_PHASE` and the rms
noise rotation per step √(6 D_max dt) ≤ :data:`MAX_STEP_PHASE`, else a ValueError names the largest admissible dt.
The default dt is the largest with dt·ω ≤ :data:`DEFAULT_STEP_PHASE` and √(6 D_max dt) ≤ :data:`DEFAULT_NOISE_PHASE`.
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._arrays import device_array
from .._checks import as_array, concrete_value, key_batch_shape, prng_key  # noqa: F401  (key_batch_shape re-exported)

NOISES = ("tree", "steps")

MAX_STEP_PHASE = 0.5
"""Largest admissible rotation per step (rad) from the precession (dt·ω) or the noise (√(6 D dt)): above it Heun's
phase error per step, ≈ (dt·ω)³/12, exceeds 1 % and the noise bias grows like D·dt."""

DEFAULT_STEP_PHASE = 0.05
"""The default dt gives at most this precession per step (rad), dt·ω ≤ 0.05 (Heun's phase error ≈ 1e-5 per step)."""

DEFAULT_NOISE_PHASE = 0.25
"""... and at most this rms noise rotation per step, √(6 D dt) ≤ 0.25, i.e. dt ≤ 0.0104/D_max (the equilibrium bias
of one spin was measured below 0.004 in ⟨m_z⟩ at twice this rotation, dt = 0.04, D = 1)."""

TREE_LEVELS = 16
"""Default Brownian-tree resolution: brownian_tol = min((t1 − t0)/2^TREE_LEVELS, dt/2). Depth ≈ 16 per evaluation;
runs with dt and dt/2 share the path whenever (t1 − t0)/2^16 ≤ dt/4."""


def check_temperature(temperature, name: str = "temperature"):
    """τ = k_B T in E0: a real scalar, finite and ≥ 0 (checked on the host when known). Returns a float64 array."""
    if temperature is None or isinstance(temperature, (str, bytes, bool)):
        raise ValueError(f"{name} must be a real number k_B T >= 0 in the model's energy unit, got {temperature!r}")
    array = as_array(temperature, name)
    if jnp.iscomplexobj(array) or not jnp.issubdtype(array.dtype, jnp.number):
        raise ValueError(f"{name} must be a real number k_B T >= 0 (energy unit E0), got dtype {array.dtype}")
    if jnp.ndim(array) != 0:
        raise ValueError(f"{name} must be a scalar (one temperature per trajectory; vmap for several), "
                         f"got shape {jnp.shape(array)}")
    value = concrete_value(array)
    if value is not None and not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0 (k_B T in E0; Units.temperature converts kelvin), got {value}")
    return device_array(array, dtype=float) if value is None else np.asarray(value, dtype=float)


def check_noise_key(key, temperature, name: str = "key"):
    """The PRNG key of one trajectory; required unless the temperature is known to be 0."""
    if key is None:
        value = concrete_value(temperature)
        if value is not None and value == 0:
            return jax.random.PRNGKey(0)  # no noise drawn that matters: every increment is multiplied by σ = 0
        raise ValueError(f"{name} is required at temperature > 0 (one jax.random key per trajectory; "
                         "jax.vmap over keys for an ensemble)")
    return prng_key(key, name)


def noise_amplitudes(damping, temperature, spins) -> jax.Array:
    """σ_k = √(2 D_k) with D_k = damping · τ / s_k, shape (N,) (damping α or κ); numpy when both are known."""
    s = np.asarray(spins, dtype=float)
    damping_value, temperature_value = concrete_value(damping), concrete_value(temperature)
    if damping_value is not None and temperature_value is not None:
        return np.sqrt(2 * damping_value.astype(float) * temperature_value.astype(float) / s)
    return jnp.sqrt(2 * device_array(damping, dtype=float) * device_array(temperature, dtype=float) / s)


class TimeGrid(eqx.Module):
    """The fixed steps between save times (see the module docstring); arrays of shape (T − 1,).

    Attributes:
        starts, ends: t_i, t_{i+1}. steps: h_i = (t_{i+1} − t_i)/n_i. counts: n_i. offsets: global index of
        the first step of interval i. max_count: max n_i (static).
    """

    starts: np.ndarray
    ends: np.ndarray
    steps: np.ndarray
    counts: np.ndarray
    offsets: np.ndarray
    max_count: int = eqx.field(static=True)
    uniform: bool = eqx.field(static=True, default=False)  # every interval has max_count steps (no padding)

    @property
    def total_steps(self) -> int:
        return int(np.sum(self.counts))


def host_times(ts, name: str = "ts") -> np.ndarray:
    """Save times as a host array: 1-D, non-empty, finite, strictly increasing (a fixed grid needs them known)."""
    value = concrete_value(as_array(ts, name))
    if value is None:
        raise ValueError(f"{name} must be known when the call is traced (a numpy array or constant): the fixed "
                         "step grid is built on the host")
    if np.iscomplexobj(value) or value.ndim != 1 or value.shape[0] == 0 or not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be a non-empty 1-D array of finite real times, got shape {value.shape}")
    value = value.astype(float)
    if not np.all(np.diff(value) > 0):
        raise ValueError(f"{name} must be strictly increasing")
    return value


def time_grid(ts: np.ndarray, dt: float) -> TimeGrid:
    """Split each save interval into ⌈Δ/dt⌉ equal steps (a relative slack of 1e-9 avoids an extra tiny step)."""
    gaps = np.diff(ts)
    counts = np.maximum(1, np.ceil(gaps / dt * (1 - 1e-9))).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return TimeGrid(ts[:-1], ts[1:], gaps / counts, counts, offsets, int(counts.max()) if counts.size else 0,
                    bool(np.all(counts == counts.max())) if counts.size else True)


def check_step(dt, rate, max_diffusion, what: str) -> float:
    """Validate (or, for ``dt=None``, choose) the fixed step against the precession rate ω and the largest D.

    ``rate`` and ``max_diffusion`` are host floats or None (traced: no check, and dt must be given).
    """
    if dt is None:
        if rate is None or max_diffusion is None:
            raise ValueError(f"dt is required when the {what} or the temperature is traced (the default step is "
                             "chosen on the host from the fastest precession)")
        limit = _largest_step(rate, max_diffusion, DEFAULT_STEP_PHASE, DEFAULT_NOISE_PHASE)
        return limit if np.isfinite(limit) else 1.0
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)) or not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number (the fixed step, in hbar/E0), got {dt!r}")
    dt = float(dt)
    if rate is not None and max_diffusion is not None:
        limit = _largest_step(rate, max_diffusion, MAX_STEP_PHASE, MAX_STEP_PHASE)
        if dt > limit:
            raise ValueError(
                f"dt = {dt:.4g} is too coarse for the fastest precession omega = {rate:.4g} and the noise "
                f"D_max = {max_diffusion:.4g} (need dt*omega <= {MAX_STEP_PHASE} and sqrt(6 D_max dt) <= "
                f"{MAX_STEP_PHASE}): use dt <= {limit:.4g}, or dt=None for the default "
                f"{_largest_step(rate, max_diffusion, DEFAULT_STEP_PHASE, DEFAULT_NOISE_PHASE):.4g}")
    return dt


def _largest_step(rate: float, max_diffusion: float, phase: float, noise_phase: float) -> float:
    bounds = [phase / rate if rate > 0 else math.inf,
              noise_phase**2 / (6 * max_diffusion) if max_diffusion > 0 else math.inf]
    return min(bounds)


class TreeNoise(eqx.Module):
    """Increments of a :class:`diffrax.VirtualBrownianTree` (carry: W at the step's start)."""

    path: diffrax.VirtualBrownianTree

    def one(self):
        return runtime_one(jax.random.key_data(self.path.key))

    def start(self, t0):
        return self.path.evaluate(t0)

    def increment(self, carry, t0, t1, index):
        w1 = self.path.evaluate(t1)
        return w1 - carry, w1


U32 = jnp.uint32
_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k0, k1, x0, x1):
    """The Threefry-2x32 block cipher (20 rounds; Salmon et al. 2011), elementwise on uint32 arrays.

    The same function as ``jax.extend.random.threefry_2x32`` (tested bit for bit), written out so that XLA fuses it
    into one elementwise loop (jax's CPU lowering rolls the rounds into a while loop, ~10x slower per draw).
    """
    k2 = k0 ^ k1 ^ U32(0x1BD11BDA)
    schedule = (k0, k1, k2)
    x0, x1 = x0 + k0, x1 + k1
    for block in range(5):
        for r in _THREEFRY_ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = x0 ^ ((x1 << U32(r)) | (x1 >> U32(32 - r)))
        x0 = x0 + schedule[(block + 1) % 3]
        x1 = x1 + schedule[(block + 2) % 3] + U32(block + 1)
    return x0, x1


def normal_from_bits(bits: jax.Array) -> jax.Array:
    """Standard normals from uint32 bits by inversion: u = (⌊bits/2⁹⌋ + ½)·2⁻²² − 1 ∈ (−1, 1) (2²³ equally likely
    values, symmetric), z = √2 erf⁻¹(u) in float32 (relative error ≈ 1e-7), returned as float64.

    The law is N(0, 1) up to float32 resolution, with the tails cut at |z| ≤ 5.3 (probability 1e-7 per draw), as
    ``jax.random.normal`` in float32; ~10x cheaper than float64 ``erf_inv`` on CPUs.
    """
    u = ((bits >> U32(9)).astype(jnp.float32) + jnp.float32(0.5)) * jnp.float32(2.0**-22) - jnp.float32(1.0)
    return (jnp.float32(math.sqrt(2.0)) * jax.lax.erf_inv(u)).astype(jnp.float64)


@jax.jit
def key_words(key) -> jax.Array:
    """Two uint32 words per trajectory from its key (any jax.random key; a batch (K,) gives shape (2, K)).

    Independent keys give independent words (one draw of jax.random.bits); the words seed the per-step counters."""
    draw = lambda k: jax.random.bits(k, (2,), U32)  # noqa: E731
    is_typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    batch = key.shape if is_typed else key.shape[:-1]
    if not batch:
        return draw(key)
    flat = key.reshape((-1,) + (() if is_typed else (2,)))
    return jax.vmap(draw, out_axes=-1)(flat).reshape((2,) + batch)


def runtime_one(words: jax.Array) -> jax.Array:
    """The float 1.0, computed from runtime data so that XLA cannot fold it (see :func:`materialise`)."""
    return 1.0 + 0.0 * words.reshape(-1)[0].astype(jnp.float64)


def materialise(x, one):
    """x / 1 (bit for bit x): a division is "expensive" to XLA, so the value is stored once instead of being
    recomputed inside every consumer fusion (XLA:CPU drops optimisation barriers; measured 3x on a Heun step)."""
    return jax.tree_util.tree_map(lambda a: a / one, x)


class StepNoise(eqx.Module):
    """Independent N(0, h) increments from a counter-based generator (carry unused).

    Increment a of site k at global step j, trajectory with key words (k0, k1):
    z = normal_from_bits(y0 ^ y1), (y0, y1) = Threefry-2x32_(k0, k1)(j, 3k + a); ΔW = √h z. Same key ⇒ same
    increments bit for bit, on every batch layout; different keys ⇒ independent streams.
    ``words`` has shape (2, *batch); increments have shape (N, 3, *batch).
    """

    words: jax.Array
    shape: tuple[int, ...] = eqx.field(static=True)

    def one(self):
        return runtime_one(self.words)

    def start(self, t0):
        return jnp.zeros(())

    def increment(self, carry, t0, t1, index):
        batch = self.words.shape[1:]
        counter = jnp.arange(math.prod(self.shape), dtype=U32).reshape(self.shape + (1,) * len(batch))
        k0, k1 = self.words[0], self.words[1]
        y0, y1 = threefry2x32(k0, k1, jnp.broadcast_to(device_array(index).astype(U32), counter.shape), counter)
        return jnp.sqrt(t1 - t0) * normal_from_bits(y0 ^ y1), carry


def brownian_noise(kind: str, key, ts: np.ndarray, shape: tuple[int, ...], dt: float, tol=None):
    """The noise source for one trajectory (see the module docstring); ``shape`` = (N, 3)."""
    if not isinstance(kind, str) or kind not in NOISES:
        raise ValueError(f"unknown noise {kind!r}; choose one of {list(NOISES)}")
    if kind == "steps":
        if tol is not None:
            raise ValueError("brownian_tol applies to noise='tree' only")
        return StepNoise(key_words(key), shape)
    span = float(ts[-1] - ts[0])
    if tol is None:
        tol = min(span / 2**TREE_LEVELS, dt / 2)
    elif isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) or not (0 < tol < math.inf):
        raise ValueError(f"brownian_tol must be a positive finite number, got {tol!r}")
    elif tol > dt / 2:
        raise ValueError(f"brownian_tol = {tol:.4g} must be <= dt/2 = {dt / 2:.4g} (the tree resolves the path to tol; "
                         "coarser increments would have the wrong variance)")
    return TreeNoise(_brownian_tree(ts[0], ts[-1], float(tol), shape, key))


@eqx.filter_jit
def _brownian_tree(t0, t1, tol: float, shape, key):
    """diffrax's VirtualBrownianTree built in one program (eagerly its set-up compiles ≈ 8 small ones); tol and shape
    static, the same tree as a direct construction."""
    return diffrax.VirtualBrownianTree(t0, t1, tol, shape, key)


def integrate_fixed(step, y0, noise, grid: TimeGrid):
    """y at every save time, shape (T, *y0.shape), with ``step(y, t, h, dW, one) -> y`` on the grid.

    ``one`` is a runtime 1.0 for :func:`materialise`. The outer scan runs over save intervals, the inner over
    ``grid.max_count`` steps; when the intervals have different step counts, padded steps (j ≥ n_i) keep y and the
    noise carry unchanged (no masks when all counts are equal). Differentiable (scans and fori loops only).
    """
    if grid.starts.shape[0] == 0:
        return y0[None]
    xs = tuple(device_array(a) for a in (grid.starts, grid.ends, grid.steps, grid.counts, grid.offsets))
    uniform = grid.uniform
    one = noise.one()

    def interval(carry, x):
        start, end, h, count, offset = x

        def body(j, state):
            y, w = state
            t0 = jnp.minimum(start + j * h, end)  # padded steps: t0 = t1 = end, a zero step
            t1 = jnp.where(j + 1 >= count, end, jnp.minimum(start + (j + 1) * h, end))
            dw, w_next = noise.increment(w, t0, t1, offset + j)
            y_next = step(y, t0, t1 - t0, dw, one)
            if uniform:
                return y_next, w_next
            active = j < count
            keep = lambda new, old: jnp.where(active, new, old)  # noqa: E731
            return jax.tree_util.tree_map(keep, y_next, y), jax.tree_util.tree_map(keep, w_next, w)

        carry = jax.lax.fori_loop(0, grid.max_count, body, carry)
        return carry, carry[0]

    w0 = noise.start(device_array(grid.starts[0]))
    _, ys = jax.lax.scan(interval, (y0, w0), xs)
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
