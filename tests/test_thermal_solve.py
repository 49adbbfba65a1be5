"""q.solve at finite temperature (issue 22, item 1): the public path to the stochastic q-LLG.

Small sizes: one spin s = 1/2 (kets, D = 2) and the paper's dimer in a mixed state (frames, D = 4), t ∈ [0, 1] at a
fixed step 0.05 (20 steps): every program compiles once per shape and is reused through module-level fixtures.
The physics of the integrator (Langevin law, strong order, spectrum) is tested in tests/test_thermal.py; here:
the routing (τ = 0 is the deterministic solve bit for bit; a Result equal to the integrator's trajectories and
to numpy evaluations of its invariants and observables), the batching and transformation rules, the compile
counts, and the bad inputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax.thermal import stochastic_frames

TS = np.linspace(0.0, 1.0, 3)
DT = 0.05  # fixed step: dt·ω = 0.1 (ω = b = 2); rms noise rotation √(6 κτ/s dt) = 0.42 at τ = 0.7 (limit 0.5)
KAPPA, TAU = 0.5, 0.7
ONE = q.spin_model([0.5], field=np.array([[0.0, 0.0, 2.0]]))
PSI0 = q.coherent_state(0.5, [1.0, 0.0, 0.0])
DIMER = q.dimer_model(B=(0.3, 0.0, 1.0), J=0.7, D=(0.0, 0.2, 0.1))
KEYS = jax.random.split(jax.random.PRNGKey(7), 4)
SZ = np.asarray(q.spin_matrices(0.5)[2])


def _solve(H=ONE, rho0=PSI0, key=KEYS, tau=TAU, **kw):
    return q.solve(H, rho0, TS, KAPPA, temperature=tau, key=key, max_step=DT, **kw)


@pytest.fixture(scope="module")
def one_spin():
    return _solve(observables={"sz": SZ})


@pytest.fixture(scope="module")
def mixed_dimer():
    rho0 = 0.6 * np.asarray(q.werner_state("psi-", 0.5)) + 0.4 * np.diag([0.5, 0.3, 0.15, 0.05])  # 4 distinct λ
    return rho0, _solve(DIMER, rho0)


def test_zero_temperature_is_the_deterministic_solve_bit_for_bit():
    """τ = 0 (with or without a key) and τ = None: the same program and the same numbers as solve without noise."""
    reference = q.solve(ONE, PSI0, TS, KAPPA)
    for extra in ({"temperature": 0.0, "key": KEYS}, {"temperature": 0}, {"temperature": None}):
        result = q.solve(ONE, PSI0, TS, KAPPA, **extra)
        assert result.method == reference.method
        np.testing.assert_array_equal(np.asarray(result.kets), np.asarray(reference.kets))
        np.testing.assert_array_equal(np.asarray(result.invariants["energy"]), np.asarray(reference.invariants["energy"]))


def test_result_is_the_integrators_trajectories_with_their_invariants(one_spin):
    """Each key's kets equal stochastic_frames with that key bit for bit (the same path and program); the energy, the
    observable and the invariants equal numpy evaluations on the saved states (to round-off: ≤ 1e-12)."""
    assert one_spin.method == "ket" and one_spin.kets.shape == (4, 3, 2)
    own = jax.vmap(lambda k: stochastic_frames(ONE, PSI0, TS, KAPPA, temperature=TAU, key=k, dt=DT).kets())(KEYS)
    np.testing.assert_array_equal(np.asarray(one_spin.kets), np.asarray(own))
    rho = np.asarray(one_spin.states)
    H = np.asarray(ONE.matrix())
    np.testing.assert_allclose(one_spin.invariants["energy"], np.real(np.einsum("ktij,ji->kt", rho, H)), atol=1e-12)
    np.testing.assert_allclose(one_spin.observables["sz"], np.real(np.einsum("ktij,ji->kt", rho, SZ)), atol=1e-12)
    np.testing.assert_allclose(one_spin.invariants["purity"], 1.0, atol=1e-12)
    checks = one_spin.diagnostics()
    assert np.all(np.isnan(np.asarray(checks.energy_increase)))  # not monotone under noise: not measured
    assert checks.spectrum_drift.shape == (4,) and float(np.max(checks.spectrum_drift)) < 1e-12
    assert np.all(np.asarray(one_spin.stats["num_steps"]) == 20) and np.all(np.asarray(one_spin.success))
    # different keys: different paths (the noise rotates ⟨S⟩ by ≈ 0.4 rad per step)
    assert np.min(np.abs(np.diff(np.asarray(one_spin.observables["sz"])[:, -1]))) > 1e-6


def test_mixed_dimer_frames_keep_the_spectrum(mixed_dimer):
    """A mixed dimer state (rank 4): frames and weights; every trajectory keeps the spectrum of ϱ0 (eigvalsh in
    numpy, ≤ 1e-10), while the states differ across keys."""
    rho0, result = mixed_dimer
    assert result.method == "frame" and result.frames.shape[:3] == (4, 3, 4)
    rho = np.asarray(result.states)
    spectrum0 = np.linalg.eigvalsh(rho0)
    assert np.max(np.abs(np.linalg.eigvalsh(rho) - spectrum0)) < 1e-10
    assert np.max(np.abs(rho[0, -1] - rho[1, -1])) > 1e-4
    np.testing.assert_allclose(result.invariants["trace"], 1.0, atol=1e-12)


def test_batch_vmap_jit_and_jit_vmap_agree(one_spin, compiles):
    """A batch of keys, jax.vmap over keys, jax.jit over one key and jit(vmap): the same method, the same numbers
    (round-off: ≤ 1e-13); a new key or a new temperature reuses the compiled program."""
    single = jax.jit(lambda k: _solve(key=k).kets)
    mapped = jax.vmap(lambda k: _solve(key=k).kets)
    both = jax.jit(mapped)
    reference = np.asarray(one_spin.kets)
    for out in (mapped(KEYS), both(KEYS), np.stack([single(k) for k in KEYS])):
        np.testing.assert_allclose(np.asarray(out), reference, atol=1e-13)
    tau = jax.jit(lambda t, k: _solve(key=k, tau=t).kets)
    tau(0.3, KEYS[0])
    new = jax.random.split(jax.random.PRNGKey(5), 5)
    one, batch = new[4], new[:4]  # (eager indexing compiles its own small programs: before the count)
    compiles.clear()
    single(one)
    both(batch)
    tau(0.6, KEYS[1])
    _solve(key=batch, tau=0.4, observables={"sz": SZ})  # eager: the fixture's program, new keys and τ
    assert len(compiles) == 0, len(compiles)


def test_pathwise_gradient_matches_finite_differences():
    """d⟨S_z⟩(t_end)/db along one noise path (same key) vs central differences (step 1e-4: error O(1e-8))."""
    def sz(b):
        model = q.spin_model([0.5], field=jnp.stack([jnp.zeros(1), jnp.zeros(1), jnp.asarray(b)[None]], axis=-1))
        return _solve(model, key=KEYS[0], observables={"sz": SZ}).observables["sz"][-1]

    grad = jax.grad(sz)(2.0)
    step = 1e-4
    numeric = (sz(2.0 + step) - sz(2.0 - step)) / (2 * step)
    assert abs(float(grad) - float(numeric)) < 1e-6


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": -0.1, "key": KEYS[0]}, "temperature must be finite and >= 0"),
    ({"temperature": np.nan, "key": KEYS[0]}, "temperature must be finite and >= 0"),
    ({"temperature": 0.5}, "key is required"),
    ({"key": KEYS[0]}, "key given without temperature"),
    ({"temperature": 0.5, "key": KEYS[0], "method": "dense"}, "cannot run at temperature > 0"),
    ({"temperature": 0.5, "key": KEYS[0], "spins": [0.5, 0.5]}, "disagree"),
    ({"temperature": 0.5, "key": "abc"}, "key"),
])
def test_bad_inputs_raise_before_compute(kwargs, match):
    with pytest.raises(ValueError, match=match):
        q.solve(ONE, PSI0, TS, KAPPA, **kwargs)


def test_bad_hamiltonians_and_batches():
    H = np.asarray(ONE.matrix())
    with pytest.raises(ValueError, match="spins="):
        q.solve(H, PSI0, TS, KAPPA, temperature=0.5, key=KEYS[0])
    with pytest.raises(ValueError, match="batch axes"):  # one drive per solve (driven solves: test_thermal_drive.py)
        q.solve(ONE + q.pwc(np.array([0.0, 1.0]), np.ones((2, 1)), np.asarray(q.spin_matrices(0.5)[0])), PSI0, TS,
                KAPPA, temperature=0.5, key=KEYS[0])
    with pytest.raises(ValueError, match="kappa must be a scalar"):
        q.solve(ONE, PSI0, TS, np.array([0.1, 0.2]), temperature=0.5, key=KEYS[0])
    with pytest.raises(ValueError, match="one state"):
        q.solve(ONE, np.stack([PSI0, PSI0])[..., None], TS, KAPPA, temperature=0.5, key=KEYS[0])
    with pytest.raises(ValueError, match="max_step is required"):
        jax.jit(lambda t: q.solve(ONE, PSI0, TS, KAPPA, temperature=t, key=KEYS[0]).kets)(0.5)
    # a raw matrix with its spins: the same trajectory as the SpinModel (dense vs matrix-free H: round-off)
    raw = q.solve(H, PSI0, TS, KAPPA, temperature=TAU, key=KEYS[0], spins=[0.5], max_step=DT)
    model = _solve(key=KEYS[0])
    np.testing.assert_allclose(np.asarray(raw.kets), np.asarray(model.kets), atol=1e-13)


def test_ensemble_average_against_numpy_and_entropy_growth(mixed_dimer, one_spin):
    """Means and SE = std(ddof=1)/√K from numpy on the saved states (≤ 1e-12: the same sums); the entropy of each
    trajectory stays S(ϱ0) (≤ 1e-10: the noise is Hermitian), that of the average starts there and grows (the
    trajectories differ by O(0.1) at t = 1, so S(ϱ̄) − S(ϱ0) is O(1e-2) by strict concavity; 1e-3 is 10× below)."""
    rho0, result = mixed_dimer
    ens = q.ensemble_average(result, DIMER)
    rho = np.asarray(result.states)  # (K, T, 4, 4)
    ops = np.stack([np.asarray(o) for o in q.site_spin_operators([0.5, 0.5])])  # (2, 3, 4, 4)
    spin = np.real(np.einsum("ktij,naji->ktna", rho, ops))
    corr = np.real(np.einsum("ntij,ajl,bli->ntab", rho, ops[0], ops[1]))
    energy = np.real(np.einsum("ktij,ji->kt", rho, np.asarray(DIMER.matrix())))
    se = lambda x: x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])  # noqa: E731
    for got, want in ((ens.spin, spin.mean(0)), (ens.spin_se, se(spin)), (ens.bloch, spin.mean(0) / 0.5),
                      (ens.bloch_se, se(spin) / 0.5), (ens.correlations[:, 0], corr.mean(0)),
                      (ens.correlations_se[:, 0], se(corr)), (ens.energy, energy.mean(0)), (ens.energy_se, se(energy)),
                      (ens.rho, rho.mean(0))):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-12)
    assert ens.count == 4 and ens.pairs == ((0, 1),)
    p = np.linalg.eigvalsh(rho0)
    s0 = -np.sum(p * np.log(p))
    assert np.max(np.abs(np.asarray(ens.trajectory_entropy) - s0)) < 1e-10
    assert abs(float(ens.entropy[0]) - s0) < 1e-10 and float(ens.entropy[-1]) - s0 > 1e-3
    pure = q.ensemble_average(one_spin, [0.5])  # pure trajectories: S = 0 each, the average's grows from 0
    assert np.max(np.abs(np.asarray(pure.trajectory_entropy))) < 1e-10 and float(pure.entropy[-1]) > 1e-3
    with pytest.raises(ValueError, match="do not match"):
        q.ensemble_average(result, [0.5])


def _field_model(b):
    return q.spin_model([0.5], field=jnp.stack([0 * b, 0 * b, b])[None, :])


SWEEP = dict(observables={"sz": SZ}, solve_options={"max_step": DT}, progress=False, temperature=TAU, seed=3)
POINTS = {"b": np.array([2.0, 2.0, 1.0, 2.0, 1.5])}


def test_sweep_keys_per_point_chunked_and_resumed_bit_for_bit(tmp_path, monkeypatch):
    """Per-point keys fold_in(PRNGKey(seed), i): the point equals solve with that key (≤ 1e-13: a vmapped chunk vs
    one solve, round-off), points 0, 1, 3 (same b) differ, and a sweep in chunks of 2 interrupted after its first
    chunk and resumed from its file equals the uninterrupted run in chunks of 2 bit for bit (the one-chunk run to round-off)."""
    from qllg_jax.sweeps.store import SweepStore

    whole = q.sweep_solve(_field_model, PSI0, TS, KAPPA, POINTS, **SWEEP)
    sz = np.asarray(whole.outputs["observables"]["sz"])
    np.testing.assert_array_equal(whole.params["point_index"], np.arange(5))
    for i in (1, 4):
        key = jax.random.fold_in(jax.random.PRNGKey(3), i)
        own = _solve(_field_model(jnp.asarray(POINTS["b"][i])), key=key, observables={"sz": SZ})
        np.testing.assert_allclose(sz[i], np.asarray(own.observables["sz"]), atol=1e-13)
    assert min(abs(sz[0, -1] - sz[1, -1]), abs(sz[1, -1] - sz[3, -1]), abs(sz[0, -1] - sz[3, -1])) > 1e-6
    commit, calls = SweepStore.commit, []

    def interrupted(self, *args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return commit(self, *args, **kwargs)

    path = str(tmp_path / "thermal.h5")
    monkeypatch.setattr(SweepStore, "commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        q.sweep_solve(_field_model, PSI0, TS, KAPPA, POINTS, chunk_size=2, out=path, **SWEEP)
    monkeypatch.setattr(SweepStore, "commit", commit)
    resumed = q.sweep_solve(_field_model, PSI0, TS, KAPPA, POINTS, chunk_size=2, out=path, **SWEEP)
    # the same chunking uninterrupted: bit for bit (same keys, same programs); the one-chunk run differs only by
    # the round-off of another batch shape (XLA vectorises a chunk of 2 and of 5 differently)
    chunked = q.sweep_solve(_field_model, PSI0, TS, KAPPA, POINTS, chunk_size=2, **SWEEP)
    np.testing.assert_array_equal(np.asarray(resumed.outputs["observables"]["sz"]),
                                  np.asarray(chunked.outputs["observables"]["sz"]))
    np.testing.assert_allclose(np.asarray(resumed.outputs["observables"]["sz"]), sz, atol=1e-13)


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature": 0.5}, "seed must be a non-negative integer"),
    ({"temperature": 0.5, "seed": -1}, "seed must be a non-negative integer"),
    ({"seed": 1}, "seed given without temperature"),
    ({"temperature": -1.0, "seed": 1}, "temperature must be finite and >= 0"),
    ({"temperature": 0.5, "seed": 1, "solve_options": {"key": KEYS[0]}}, "draws its noise itself"),
    ({"temperature": 0.5, "seed": 1, "solve_options": {}}, "max_step.*is required"),
])
def test_sweep_thermal_bad_inputs(kwargs, match):
    options = {"progress": False, "solve_options": {"max_step": DT}, **kwargs}
    with pytest.raises(ValueError, match=match):
        q.sweep_solve(_field_model, PSI0, TS, KAPPA, POINTS, **options)


CONFIG = """
[system]
field = [0.0, 0.0, 2.0]
spins = [0.5]
[initial_state]
kind = "coherent"
directions = [[1.0, 0.0, 0.0]]
[dynamics]
kappa = 0.5
t_end = 1.0
n_save = 3
temperature_K = 0.4702
seed = 7
dt = 0.05
[output]
observables = ["bloch", "energy"]
"""


def test_config_temperature_seed_and_errors():
    """dynamics.temperature_K (E0 = μ_B·1 T: k_B·0.4702 K = 0.7 E0: k_B/μ_B = 1.48874 T/K) and seed: the run
    is solve(..., temperature=τ, key=PRNGKey(seed)) (≤ 1e-13: same path, vmapped vs one key); validation errors
    name the key; the reference documents both keys."""
    from qllg_jax.config import ConfigError, build_system, reference, tomllib
    from qllg_jax.config.sweep import build_sweep

    system = build_system(tomllib.loads(CONFIG))
    assert abs(system.temperature - 0.4702 * 1.488740) < 1e-4
    prepared = system.prepare()
    assert prepared.method.name == "ket"
    result = prepared.run()
    own = q.solve(ONE, PSI0, TS, KAPPA, temperature=system.temperature, key=jax.random.PRNGKey(7), max_step=DT)
    np.testing.assert_allclose(np.asarray(result.states), np.asarray(own.states), atol=1e-13)  # ψ up to a phase
    for old, new, match in (("seed = 7\n", "", r"dynamics\.seed: required"),
                            ("temperature_K = 0.4702\n", "", r"dynamics\.seed: given without"),
                            ("temperature_K = 0.4702", "temperature_K = -1.0", r"dynamics\.temperature_K"),
                            ("seed = 7", "seed = 1.5", r"dynamics\.seed")):
        with pytest.raises(ConfigError, match=match):
            build_system(tomllib.loads(CONFIG.replace(old, new)))
    problem = build_sweep(tomllib.loads(CONFIG + '[sweep]\n[sweep.parameters]\n"dynamics.kappa" = [0.3, 0.5]\n'))
    assert problem.thermal == {"temperature": system.temperature, "seed": 7}
    assert problem.solve_options["max_step"] == DT
    text = reference()
    assert "temperature_K" in text and "fold_in(PRNGKey(seed)" in text
