"""One table of bad inputs over the public functions: each row calls ``function(*args, **kwargs, argument=value)``
and expects ``error`` whose message names the argument (or the object being built) and contains ``words``.

Rows from the adversarial audit (../shared/audits/bad-inputs-2026-11-25.md) carry the audit's wording as their id
("area | input"). Size-guard rows lower the memory limit (``qllg_jax.set_memory_limit``) so that small systems
trip the guard: nothing large is allocated and nothing is compiled. To add a row, append a ``Case``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qllg_jax as q
from qllg_jax import design
from qllg_jax._guards import SizeError, set_memory_limit

KEY = jax.random.PRNGKey(0)
TS = jnp.linspace(0.0, 1.0, 3)
RHO = np.diag([0.4, 0.3, 0.2, 0.1]).astype(complex)
NON_HERMITIAN = np.array([[0.5, 1.0], [0.0, 0.5]], dtype=complex)
NON_PSD = np.diag([1.5, -0.5]).astype(complex)
COMPLEX_GAMMA = np.array([[0.0, 1j, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
DIMER = q.spin_model([0.5, 0.5], bonds=[(0, 1)], exchange=1.0)
SPIN_MODEL_FIELDS = {name: getattr(DIMER, name) for name in
                     ("spins", "bonds", "field", "exchange", "dmi", "anisotropic_exchange", "anisotropy", "anisotropy_axis")}
CHAIN8 = q.chain_model(8)  # D = 256: SpinModel.matrix() needs 8 · 16 · 256² B = 8 MiB
SMALL_LIMIT = "1M"
QUADRATIC = lambda p: jnp.sum((p - 1.0) ** 2)  # noqa: E731
FIT = dict(steps=2, progress=False)


@dataclass(frozen=True)
class Case:
    """``function(*args, **{**kwargs, argument: value})`` raises ``error``; its message contains ``names`` (default:
    the argument's name, as a word) and each of ``words`` (case-insensitive). ``memory_limit`` (bytes or "1M")
    is set around the call."""

    id: str
    function: Callable
    argument: str
    value: object
    error: type = ValueError
    words: tuple[str, ...] = ()
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    names: str | None = None
    memory_limit: int | str | None = None


def _traced_gamma(anisotropic_exchange):
    """spin_model with Γ traced by jax.jit: the dtype rule (Γ real) holds under tracing too."""
    return jax.jit(lambda g: q.spin_model([0.5, 0.5], bonds=[(0, 1)], anisotropic_exchange=g).exchange)(anisotropic_exchange)


def _non_hermitian_build(p):
    return jnp.array([[p[0], 1.0], [0.0, -p[0]]])


NON_HERMITIAN_FIT_LOSS = design.solve_loss(_non_hermitian_build, jnp.array([1.0, 0.0]), TS, lambda r: jnp.real(r.states[-1, 0, 0]))

CASES = [
    # ------------------------------------------------------------------ models (audit)
    Case("models | field string", q.spin_model, "field", "x", words=("real numbers",), args=([0.5],)),
    Case("models | spin_matrices('a')", q.spin_matrices, "s", "a", words=("multiple of 1/2",)),
    Case("models | spin_matrices(None)", q.spin_matrices, "s", None, words=("multiple of 1/2",)),
    Case("models | spin_dim(inf)", q.spin_dim, "s", float("inf"), words=("multiple of 1/2",)),
    Case("models | chain_model(2.5)", q.chain_model, "n", 2.5, words=("integer",)),
    Case("models | SpinModel direct anisotropic_exchange non-symmetric complex", q.SpinModel, "anisotropic_exchange",
         jnp.asarray(COMPLEX_GAMMA)[None], words=("must be real", "Hermitian"), kwargs=SPIN_MODEL_FIELDS,
         names="SpinModel.anisotropic_exchange"),
    Case("models | random_density_matrix key=1.5 (a float is no seed)", q.random_density_matrix, "key", 1.5,
         words=("PRNGKey", "integer seed"), kwargs={"dim": 4}),
    # ------------------------------------------------------------------ models (same causes, other functions)
    Case("spin_model complex anisotropic_exchange (spin_model dropped Im)", q.spin_model, "anisotropic_exchange",
         COMPLEX_GAMMA, words=("must be real", "Hermitian"), args=([0.5, 0.5],), kwargs={"bonds": [(0, 1)]}),
    Case("spin_model complex anisotropic_exchange traced under jit", _traced_gamma, "anisotropic_exchange",
         jnp.asarray(COMPLEX_GAMMA), words=("must be real",)),
    Case("spin_model complex field", q.spin_model, "field", [0.0, 0.0, 1j], words=("must be real",), args=([0.5],)),
    Case("spin_model field None-list", q.spin_model, "field", [None, 0.0, 1.0], words=("real numbers",), args=([0.5],)),
    Case("spin_model field ragged", q.spin_model, "field", [[1.0, 0.0], [1.0]], words=("real numbers",), args=([0.5, 0.5],)),
    Case("spin_model zero anisotropy_axis", q.spin_model, "anisotropy_axis", [0.0, 0.0, 0.0], words=("non-zero",),
         args=([1.0],), kwargs={"anisotropy": 0.5}),
    Case("chain_model field string", q.chain_model, "field", "x", words=("real numbers",), args=(2,)),
    Case("chain_model spin 'a'", q.chain_model, "spin", "a", words=("multiple of 1/2",), args=(2,)),
    Case("chain_model n True", q.chain_model, "n", True, words=("integer",)),
    Case("dimer_model J string", q.dimer_model, "J", "1", words=("real numbers",)),
    Case("dimer_model complex B", q.dimer_model, "B", [1j, 0.0, 0.0], words=("must be real",)),
    Case("spin_dim nan", q.spin_dim, "s", float("nan"), words=("multiple of 1/2",)),
    Case("spin_matrices array", q.spin_matrices, "s", np.array([0.5, 1.0]), words=("multiple of 1/2",)),
    Case("basis_state m string", q.basis_state, "m", "up", words=("real numbers",), args=(0.5,)),
    Case("coherent_state direction string", q.coherent_state, "direction", "z", words=("real numbers",), args=(0.5,)),
    Case("random_ket key string", q.random_ket, "key", "seed", words=("PRNGKey",), kwargs={"dim": 2}),
    Case("random_hamiltonian key batch", q.random_hamiltonian, "key", jax.random.split(KEY, 3), words=("PRNGKey",),
         kwargs={"dim": 2}),
    Case("embed site float", q.embed, "site", 1.0, words=("out of range",), args=(np.eye(2),), kwargs={"dims": [2, 2]}),
    Case("embed dims float", q.embed, "dims", [2, 2.5], words=("integers",), args=(np.eye(2), 0)),
    Case("embed op string", q.embed, "op", "sz", words=("matrix",), kwargs={"site": 0, "dims": [2]}),
    Case("classical_llg m0 complex", q.classical_llg, "m0", np.array([[1j, 0.0, 1.0]]), words=("must be real",),
         args=(q.spin_model([0.5]),), kwargs={"ts": TS, "alpha": 0.1}),
    Case("classical_energy m wrong shape", q.classical_energy, "m", np.ones(3), words=("shape",), args=(DIMER,)),
    Case("to_qutip dims float", q.to_qutip, "dims", [2, 2.0], words=("integers",), args=(np.eye(4) / 4,)),
    # ------------------------------------------------------------------ observables (audit)
    Case("observables | renyi alpha array", q.renyi_entropy, "alpha", np.array([2.0, 3.0]), words=("scalar",), args=(RHO,)),
    Case("observables | renyi alpha NaN", q.renyi_entropy, "alpha", float("nan"), words=("finite",), args=(RHO,)),
    Case("observables | spectrum of non-Hermitian", q.spectrum, "rho", NON_HERMITIAN, words=("not Hermitian",)),
    Case("observables | von_neumann_entropy of non-PSD", q.von_neumann_entropy, "rho", NON_PSD,
         words=("positive semidefinite", "-0.5")),
    Case("observables | classical_dimer m1 2-vector", q.classical_dimer, "m1", [1.0, 0.0], words=("3-vector",),
         args=((1.0, 0.0, 0.0), 1.0, (0.0, 0.0, 0.0)), kwargs={"m2": [0.0, 0.0, 1.0], "ts": TS, "alpha": 0.1}),
    Case("observables | classical_dimer max_steps=3 (hit)", q.classical_dimer, "max_steps", 3, error=q.SolveError,
         words=("max_steps reached", "t = ", "hint", "now 3"), args=((1.0, 0.0, 0.0), 1.0, (0.0, 0.0, 0.0)),
         kwargs={"m1": [1.0, 0.0, 0.0], "m2": [0.0, 0.0, 1.0], "ts": jnp.linspace(0.0, 10.0, 3), "alpha": 0.1}),
    # ------------------------------------------------------------------ observables (same causes)
    Case("renyi alpha 1", q.renyi_entropy, "alpha", 1.0, words=("!= 1", "von_neumann_entropy"), args=(RHO,)),
    Case("renyi alpha string", q.renyi_entropy, "alpha", "2", words=("real numbers",), args=(RHO,)),
    Case("renyi of non-PSD", q.renyi_entropy, "rho", NON_PSD, words=("positive semidefinite",)),
    Case("von_neumann_entropy trace 2", q.von_neumann_entropy, "rho", 2 * RHO, words=("unit trace",)),
    Case("purity of non-Hermitian", q.purity, "rho", NON_HERMITIAN, words=("not Hermitian",)),
    Case("passive_energy of non-Hermitian rho", q.passive_energy, "rho", NON_HERMITIAN, words=("not Hermitian",),
         kwargs={"H": np.eye(2)}),
    Case("concurrence of non-PSD", q.concurrence, "rho", np.diag([1.2, -0.2, 0.0, 0.0]).astype(complex),
         words=("positive semidefinite",)),
    Case("partial_trace dims float", q.partial_trace, "dims", (2, 2.0), words=("integers",), args=(RHO,),
         kwargs={"keep": [0]}),
    Case("partial_trace keep string", q.partial_trace, "keep", "0", words=("integer",), args=(RHO,),
         kwargs={"dims": (2, 2)}),
    # ------------------------------------------------------------------ design (audit)
    Case("design | fit bounds wrong shape", design.fit, "bounds", (jnp.zeros(2), jnp.ones(2)), words=("shape (2,)", "(3,)"),
         args=(QUADRATIC, jnp.zeros(3)), kwargs=FIT),
    Case("design | fit bounds lower>upper", design.fit, "bounds", (1.0, -1.0), words=("lower > upper",),
         args=(QUADRATIC, jnp.zeros(2)), kwargs=FIT),
    Case("design | fit bounds lower>upper n_starts=4", design.fit, "bounds", (1.0, -1.0), words=("lower > upper",),
         args=(QUADRATIC, jnp.zeros(2)), kwargs={**FIT, "n_starts": 4}),
    Case("design | fit bounds NaN", design.fit, "bounds", (np.nan, 1.0), words=("NaN",),
         args=(QUADRATIC, jnp.zeros(2)), kwargs=FIT),
    Case("design | fit loss always NaN", design.fit, "loss_fn", lambda p: jnp.nan * jnp.sum(p), words=("NaN", "initial"),
         args=(), kwargs={**FIT, "init_params": jnp.zeros(2)}),
    Case("design | fit init NaN", design.fit, "init_params", jnp.array([np.nan, 0.0]), words=("NaN",),
         args=(QUADRATIC,), kwargs=FIT),
    Case("design | fit loss non-scalar", design.fit, "loss_fn", lambda p: p**2, words=("scalar", "(2,)"),
         kwargs={**FIT, "init_params": jnp.zeros(2)}),
    Case("design | correlation_loss wrong target shape", design.correlation_loss, "target", np.zeros((2, 2)),
         words=("(3, 3)", "(2, 2)"), args=(RHO,)),
    Case("design | fit solve_loss with non-Hermitian build", design.fit, "loss_fn", NON_HERMITIAN_FIT_LOSS,
         words=("build(params)", "not Hermitian", "start 0"), kwargs={**FIT, "init_params": jnp.array([1.0])},
         names="H"),
    # ------------------------------------------------------------------ design (same causes)
    Case("fit init string leaf", design.fit, "init_params", {"J": "1"}, words=("real numbers",), args=(QUADRATIC,),
         kwargs=FIT, names="init_params['J']"),
    Case("fit bounds naming parameters that do not exist", design.fit, "bounds", ({"a": 0.0}, 1.0),
         words=("do not exist", "'a'"),
         args=(QUADRATIC, {"x": jnp.zeros(2)}), kwargs=FIT),
    Case("fit key float", design.fit, "key", 0.5, words=("PRNGKey",), args=(QUADRATIC, jnp.zeros(2)), kwargs=FIT),
    Case("solve_loss kappa negative", design.fit, "loss_fn",
         design.solve_loss(lambda p: DIMER, jnp.eye(4) / 4, TS, lambda r: 0.0, kappa=-0.1), words=(">= 0",),
         kwargs={**FIT, "init_params": jnp.zeros(1)}, names="kappa"),
    Case("bloch_loss wrong target shape", design.bloch_loss, "target", np.zeros((3, 3)), words=("(2, 3)",), args=(RHO,)),
    Case("bell_loss target vector for one state", design.bell_loss, "target", np.zeros(3), words=("shape",), args=(RHO,)),
    Case("trajectory_loss measured wrong length", design.trajectory_loss, "measured", np.zeros((3, 2, 3)),
         words=("(2, 2, 3)",), args=(np.stack([RHO, RHO]),)),
    Case("correlation_loss NaN target", design.correlation_loss, "target", np.full((3, 3), np.nan), words=("NaN",),
         args=(RHO,)),
    # ------------------------------------------------------------------ size guards (issue 15 item 3)
    Case("size | SpinModel.matrix() for D = 256 above 1 MiB", q.SpinModel.matrix, "self", CHAIN8, error=SizeError,
         words=("8.0 MiB", "1.0 MiB", "SpinModel.apply", "method='ket'"), names="SpinModel.matrix()",
         memory_limit=SMALL_LIMIT),
    Case("size | as_matrix(SpinModel)", q.as_matrix, "hamiltonian", CHAIN8, error=SizeError, words=("D = 256",),
         names="SpinModel.matrix()", memory_limit=SMALL_LIMIT),
    Case("size | thermal_state(SpinModel)", q.thermal_state, "H", CHAIN8, error=SizeError, words=("D = 256",),
         kwargs={"beta": 1.0}, names="SpinModel.matrix()", memory_limit=SMALL_LIMIT),
    Case("size | thermal_state(array)", q.thermal_state, "H", np.eye(256), error=SizeError, words=("4.0 MiB",),
         kwargs={"beta": 1.0}, names="thermal_state", memory_limit=SMALL_LIMIT),
    Case("size | embed into 8 spins", q.embed, "dims", [2] * 8, error=SizeError, words=("D = 256", "3.0 MiB"),
         args=(np.eye(2), 0), names="embed", memory_limit=SMALL_LIMIT),
    Case("size | embed: dims as int64 never overflow (D = 2^70)", q.embed, "dims", np.full(70, 2, dtype=np.int64),
         error=SizeError, words=(f"D = {2**70}",), args=(np.eye(2), 0), names="embed"),
    Case("size | site_spin_operators for 8 spins", q.site_spin_operators, "spins", [0.5] * 8, error=SizeError,
         words=("D = 256",), names="site_spin_operators", memory_limit=SMALL_LIMIT),
    Case("size | spin_matrices(s = 100)", q.spin_matrices, "s", 100, error=SizeError, words=("dimension 201",),
         names="spin_matrices", memory_limit="100K"),
    Case("size | basis_state(s = 10**9)", q.basis_state, "s", 1e9, error=SizeError, words=("D = 2000000001",),
         kwargs={"m": 0.0}, names="basis_state", memory_limit=SMALL_LIMIT),
    Case("size | product_state of 40 spin-1/2 kets (2^40, the issue's 16 TiB ket)", q.product_state, "kets",
         [np.array([1.0, 0.0])] * 40, error=SizeError, words=("32.0 TiB",), names="product_state"),
    Case("size | coherent_product_state of 40 spins", q.coherent_product_state, "spins", [0.5] * 40, error=SizeError,
         words=(f"D = {2**40}",), kwargs={"directions": np.tile([0.0, 0.0, 1.0], (40, 1))},
         names="coherent_product_state"),
    Case("size | random_ket(dim = 2^16)", q.random_ket, "dim", 2**16, error=SizeError, words=("3.0 MiB",), args=(KEY,),
         names="random_ket", memory_limit=SMALL_LIMIT),
    Case("size | random_density_matrix(dim = 256)", q.random_density_matrix, "dim", 256, error=SizeError,
         words=("4.0 MiB",), args=(KEY,), names="random_density_matrix", memory_limit=SMALL_LIMIT),
    Case("size | random_hamiltonian(dim = 256)", q.random_hamiltonian, "dim", 256, error=SizeError, words=("4.0 MiB",),
         args=(KEY,), names="random_hamiltonian", memory_limit=SMALL_LIMIT),
    Case("size | density_matrix of a 2^9 ket", q.density_matrix, "psi", np.ones(512) / np.sqrt(512), error=SizeError,
         words=("D = 512", "4.0 MiB", "method='ket'"), names="density_matrix", memory_limit=SMALL_LIMIT),
    Case("size | chain_model(70).matrix(): D = 2^70 exactly", lambda n: q.chain_model(n).matrix(), "n", 70,
         error=SizeError, words=(f"D = {2**70}",), names="SpinModel.matrix()"),
    # ------------------------------------------------------------------ solve (audit rows; host checks before compute)
    Case("solve_H | H string", q.solve, "H", "H", words=("array-like of numbers",), kwargs=dict(rho0=RHO, ts=TS)),
    Case("solve_H | H (0,0) empty", q.solve, "H", np.zeros((0, 0)), words=("d >= 1",), kwargs=dict(rho0=RHO, ts=TS)),
    Case("solve_H | H batch mismatched with rho batch (3,4,4) vs (2,4,4)", q.solve, "H", np.stack([np.eye(4)] * 3),
         words=("batch axes do not broadcast", "rho0 (2,)"), kwargs=dict(rho0=np.stack([RHO] * 2), ts=TS)),
    Case("solve_kappa | kappa array wrong shape (3,) vs H batch (2)", q.solve, "kappa", np.ones(3),
         words=("batch axes do not broadcast", "H (2,)"), kwargs=dict(H=np.stack([np.eye(4)] * 2), rho0=RHO, ts=TS)),
    Case("solve_kappa | observable callable returning string", q.solve, "observables", {"x": lambda rho: "text"},
         words=("array of numbers",), kwargs=dict(H=np.eye(4), rho0=RHO, ts=TS)),
    Case("solve rtol 1e-30 (the failure hint blamed NaN)", q.solve, "rtol", 1e-30, words=(">= 1e-14", "float64"),
         kwargs=dict(H=np.eye(4), rho0=RHO, ts=TS)),
    Case("solve four kets of dimension 4 read as a density matrix", q.solve, "rho0", np.eye(4)[::-1] * 2,
         words=("(..., 4, 1)",), kwargs=dict(H=np.eye(4), ts=TS)),
    Case("solve method 'ket' for a mixed state", q.solve, "method", "ket", words=("pure",),
         kwargs=dict(H=np.eye(4), rho0=RHO, ts=TS)),
    Case("solve a method object with strategy= (was silently ignored)", q.solve, "strategy", "kron",
         words=("method object", "would be ignored", "Dense(strategy="), kwargs=dict(
             H=np.eye(4), rho0=RHO, ts=TS, method=q.methods.Dense("eigen"))),
    Case("solve a method object with gauge_fix=", q.solve, "gauge_fix", False,
         words=("method object", "would be ignored", "Frame(gauge_fix="), kwargs=dict(
             H=np.eye(4), rho0=RHO, ts=TS, method=q.methods.Frame())),
    Case("estimate_memory a method object with strategy=", q.estimate_memory, "strategy", "krylov",
         words=("method object",), kwargs=dict(H=np.eye(4), rho0=RHO, ts=TS, method=q.methods.Dense())),
    Case("sweep_solve solve_options: a method object with strategy=", q.sweep_solve, "solve_options",
         {"method": q.methods.Dense(), "strategy": "kron"}, words=("strategy='kron'", "method object"), names="strategy",
         kwargs=dict(H=np.eye(4), rho0=RHO, ts=TS, kappa=0.1, params={"J": np.zeros(2)})),
    Case("solve method 'two_level' for a ket (was numpy's LinAlgError)", q.solve, "method", "two_level",
         words=("density matrix", "ket", "'exact'"), kwargs=dict(H=np.eye(4), rho0=np.eye(4)[0], ts=TS)),
    Case("solve method 'two_level' for a LowRankState (was numpy's LinAlgError)", q.solve, "method", "two_level",
         words=("density matrix", "LowRankState", "'frame'"), kwargs=dict(
             H=np.eye(4), rho0=q.LowRankState.from_density_matrix(RHO), ts=TS)),
    Case("observables | projector_exact W0 zero", q.projector_exact, "W0", np.zeros((4, 1)),
         words=("independent columns",), kwargs=dict(H=np.eye(4), ts=TS, kappa=0.1)),
    Case("observables | projector_exact W0 dependent columns", q.projector_exact, "W0", np.ones((4, 2)),
         words=("independent columns",), kwargs=dict(H=np.eye(4), ts=TS, kappa=0.1)),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case):
    previous = set_memory_limit(case.memory_limit) if case.memory_limit is not None else None
    try:
        with pytest.raises(case.error) as info:
            case.function(*case.args, **{**case.kwargs, case.argument: case.value})
    finally:
        if case.memory_limit is not None:
            set_memory_limit(previous)
    message = str(info.value)
    names = case.names or case.argument
    assert re.search(rf"(?<!\w){re.escape(names)}(?!\w)" if names[-1].isalnum() else re.escape(names), message), (
        f"{names!r} not named in: {message}")
    for word in case.words:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def test_every_size_error_is_a_value_error():
    assert issubclass(SizeError, ValueError)


# ---------------------------------------------------------------------- decisions the table cannot show
def test_integer_seed_is_accepted_as_prng_key():
    """random_* accept an int seed: the same state as jax.random.PRNGKey(seed), and a valid density matrix."""
    rho = q.random_density_matrix(0, 3)
    np.testing.assert_array_equal(rho, q.random_density_matrix(jax.random.PRNGKey(0), 3))
    np.testing.assert_array_equal(q.random_ket(np.int64(7), 3), q.random_ket(jax.random.PRNGKey(7), 3))
    np.testing.assert_array_equal(q.random_hamiltonian(jax.random.key(1), 2), q.random_hamiltonian(jax.random.key(1), 2))
    assert np.isclose(np.trace(rho).real, 1.0) and np.min(np.linalg.eigvalsh(rho)) > 0


def test_real_non_symmetric_gamma_gives_a_hermitian_hamiltonian():
    """The rule 'Γ real' is exactly hermiticity: S_i^T Γ S_j is Hermitian for every real Γ, symmetric or not."""
    gamma = np.random.default_rng(0).normal(size=(3, 3))
    H = np.asarray(q.spin_model([0.5, 1.0], bonds=[(0, 1)], anisotropic_exchange=gamma).matrix())
    np.testing.assert_allclose(H, H.conj().T, atol=1e-14)
    # independent construction from spin matrices: Σ_ab Γ_ab S^a ⊗ S^b
    s1, s2 = np.asarray(q.spin_matrices(0.5)), np.asarray(q.spin_matrices(1.0))
    np.testing.assert_allclose(H, sum(gamma[a, b] * np.kron(s1[a], s2[b]) for a in range(3) for b in range(3)), atol=1e-14)


def test_size_guard_boundary_and_environment_variable(monkeypatch):
    """SpinModel.matrix() for D = 4 needs 8 · 16 · 4² = 2048 B: allowed at exactly that limit, refused 1 B below;
    QLLG_MAX_BYTES sets the limit when set_memory_limit has not."""
    model = q.chain_model(2)
    previous = set_memory_limit(2048)
    try:
        H = model.matrix()
        assert H.shape == (4, 4)
        set_memory_limit(2047)
        with pytest.raises(SizeError, match="2.0 KiB"):
            model.matrix()
        set_memory_limit(None)
        monkeypatch.setenv("QLLG_MAX_BYTES", "2047")
        with pytest.raises(SizeError, match="QLLG_MAX_BYTES"):
            model.matrix()
    finally:
        set_memory_limit(previous)


def test_fit_stops_with_the_step_number_when_every_start_turns_nan():
    """SGD with rate 0.1 on (p − 1)² from 0: p_k = 1 − 0.8^k, so p first exceeds 0.5 (where the loss is NaN) at k = 4."""
    loss = lambda p: jnp.where(p[0] > 0.5, jnp.nan, jnp.sum((p - 1.0) ** 2))  # noqa: E731
    with pytest.raises(design.FitError, match="at step 4 of 10"):
        design.fit(loss, jnp.zeros(1), optax.sgd(0.1), steps=10, progress=False)


def test_fit_freezes_a_start_that_turns_nan_and_the_others_win():
    """(p² − 1)² has minima at ±1; the loss is NaN for p > 0.5, so starts with p > 0 stop (frozen, NaN final loss)
    and the best start is a negative one at the closed-form minimum p = −1."""
    loss = lambda p: jnp.where(p[0] > 0.5, jnp.nan, jnp.sum((p**2 - 1.0) ** 2))  # noqa: E731
    sampler = lambda key: jax.random.uniform(key, (1,), minval=-1.0, maxval=1.0)  # noqa: E731
    res = design.fit(loss, sampler, optax.sgd(0.05), steps=150, n_starts=8, key=jax.random.PRNGKey(3), progress=False)
    stopped = np.asarray(res.stopped_at) >= 0
    assert stopped.any() and not stopped.all()  # this key gives both kinds of starts
    starts = np.asarray(res.all_params)[:, 0]
    assert np.all(starts[stopped] > 0.5) and np.all(np.isnan(np.asarray(res.all_losses)[stopped]))
    assert res.stopped_at[res.best_start] == -1
    np.testing.assert_allclose(res.params, [-1.0], atol=1e-6)
    assert np.all(np.isfinite(np.asarray(res.loss_history)))


def test_classical_max_steps_reports_the_time_reached_and_fails_at_runtime_under_jit():
    """The SolveError's time lies inside the span; under jit the same failure is a runtime error, not NaN output."""
    model, m0, ts = q.dimer_model(), np.eye(3)[[0, 2]], jnp.linspace(0.0, 10.0, 3)
    with pytest.raises(q.SolveError) as info:
        q.classical_llg(model, m0, ts, 0.1, max_steps=3)
    t_reached = float(re.search(r"at t = ([0-9.e+-]+)", str(info.value)).group(1))
    assert 0.0 < t_reached < 10.0
    with pytest.raises(RuntimeError, match="classical LLG integration failed"):
        jax.block_until_ready(jax.jit(lambda a: q.classical_llg(model, m0, ts, a, max_steps=3))(0.1))
