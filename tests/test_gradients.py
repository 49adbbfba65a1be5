"""Gradients through ``solve`` against central finite differences.

Reference: central differences of an independent solver (`numpy_qllg`: the numpy kron solve of
benchmarks/baseline.py, batched, + scipy DOP853 at rtol 1e-12); the 3-spin chain along a random direction against
differences of the same solve. Moving states (rtol 1e-11, t ≤ 2): pure, Werner (degenerate spectrum) and random
full-rank mixed states, the dimer and a 3-spin chain, at Hamiltonians with degenerate levels (where gradients of a
naive eigendecomposition are NaN or wrong). Stationary points (the section below): every method and gradient mode
at default settings. Cases are batched through one solve per test (one compilation).
"""

import re
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import qllg_jax as q
from qllg_jax._integrate import embedded_error, oscillation_step

TS = jnp.linspace(0.0, 2.0, 5)
TOL = dict(rtol=1e-11, atol=1e-13, invariant_tol=None)
WEIGHTS = jnp.arange(1.0, 10.0).reshape(3, 3) / 9

# x = (B_x, J, D_x, D_y, D_z, κ). At B = 0, J = 1, D = 0.4 ẑ, H has a doubly degenerate level (|↑↑⟩, |↓↓⟩).
# (Stationary states — D = 0 makes every Bell/Werner state an eigenstate — are tested further below.)
X0 = jnp.array([0.0, 1.0, 0.0, 0.0, 0.4, 0.5])
PURE = q.up_down_state()
WERNER = q.werner_state("psi+", 0.6)
MIXED = q.random_density_matrix(jax.random.PRNGKey(3), 4)
DIMER_STATES = jnp.stack([q.density_matrix(PURE), WERNER, MIXED])


def central_difference(f, x, h=1e-5):
    """Jacobian (..., n) of f at the float vector x (n,) by central differences."""
    x = np.asarray(x, dtype=float)
    f = jax.jit(f)  # one compilation for all 2n evaluations
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(f(jnp.asarray(x + e))) - np.asarray(f(jnp.asarray(x - e)))) / (2 * h))
    return np.stack(cols, axis=-1)


def assert_close_to_fd(grad, fd, tol=1e-5):
    grad, fd = np.asarray(grad), np.asarray(fd)
    assert np.all(np.isfinite(grad)), grad
    err = np.max(np.abs(grad - fd)) / max(np.max(np.abs(fd)), 1e-3)
    assert err <= tol, (err, grad, fd)


def numpy_qllg(H, rho0, ts, kappa, rtol=1e-12, atol=1e-14):
    """ϱ(t), shape (n, T, d, d), of n independent q-LLG problems (H, ϱ0: (n, d, d); κ: (n,)), integrated together
    by scipy's DOP853: per right-hand side the d²×d² system (𝟙 − iκ(ϱ⊗𝟙 − 𝟙⊗ϱᵀ)) vec ϱ̇ = vec i[ϱ, H] of
    benchmarks/baseline.py, batched. An implementation independent of qllg_jax."""
    n, d = H.shape[0], H.shape[-1]
    eye = np.eye(d)

    def rhs(t, y):
        rho = y.reshape(n, d, d)
        ad = np.einsum("nij,kl->nikjl", rho, eye) - np.einsum("ij,nlk->nikjl", eye, rho)
        matrix = np.eye(d * d) - 1j * kappa[:, None, None] * ad.reshape(n, d * d, d * d)
        b = 1j * (rho @ H - H @ rho)
        return np.linalg.solve(matrix, b.reshape(n, d * d, 1)).reshape(-1)

    sol = solve_ivp(rhs, (ts[0], ts[-1]), rho0.reshape(-1).astype(complex), method="DOP853", t_eval=ts, rtol=rtol,
                    atol=atol)
    assert sol.success, sol.message
    return np.moveaxis(sol.y.reshape(n, d, d, len(ts)), -1, 1)


def numpy_central_differences(build, x0, observe, h=1e-3):
    """∂ observe(ϱ(t))/∂x at x0 (n_cases, n_params) by 4-point central differences (error ~h⁴) of
    :func:`numpy_qllg`; build(x) → (H (n_cases, d, d), ϱ0 (n_cases, d, d), κ (n_cases,), ts); observe: states
    (n_cases, T, d, d) → (n_cases,). All 4·n_params perturbed problems run as one scipy solve."""
    stencil = ((-2, 1.0), (-1, -8.0), (1, 8.0), (2, -1.0))
    x0 = np.asarray(x0, dtype=float)
    points = [x0 + s * h * np.eye(x0.size)[p] for p in range(x0.size) for s, _ in stencil]
    built = [build(x) for x in points]
    H, rho0, kappa = (np.concatenate([b[i] for b in built]) for i in range(3))
    values = observe(numpy_qllg(H, rho0, np.asarray(built[0][3]), kappa)).reshape(x0.size, len(stencil), -1)
    return np.einsum("psn,s->np", values, np.array([w for _, w in stencil])) / (12 * h)


def dimer_loss_values(states):
    """Correlations and Bloch vectors of states (..., T, 4, 4) at several times → (...)."""
    t = q.correlation_matrix(states)
    bloch = q.bloch_vectors(states)
    return (jnp.sum(WEIGHTS * t[..., -1, :, :], axis=(-2, -1)) + jnp.sum(t[..., 2, :, :] ** 2, axis=(-2, -1))
            + jnp.sum(bloch[..., 0] ** 2, axis=(-2, -1)))


def dimer_losses(rho0, **options):
    """x ↦ loss per state (shape of rho0's batch)."""

    def losses(x):
        model = q.dimer_model(B=jnp.stack([x[0], 0.0, 0.0]), J=x[1], D=x[2:5])
        return dimer_loss_values(q.solve(model, rho0, TS, x[5], **options, **TOL).states)

    return losses


@pytest.fixture(scope="module")
def dimer_reference():
    """∂ loss/∂x of the DIMER_STATES (3, 6) by central differences of the numpy/scipy solver."""

    def build(x):
        H = np.asarray(q.dimer_hamiltonian(B=(x[0], 0.0, 0.0), J=x[1], D=x[2:5]))
        return np.stack([H] * 3), np.asarray(DIMER_STATES), np.full(3, x[5]), np.asarray(TS)

    return numpy_central_differences(build, X0, lambda states: np.asarray(dimer_loss_values(states)))


@pytest.mark.parametrize("strategy", ["kron", "krylov"])
def test_dimer_dense_gradients(strategy, dimer_reference):
    """Pure (rank 1), Werner (3-fold degenerate) and full-rank ϱ at a degenerate H; the linear-solve strategies
    other than the default (eigen, with every gradient mode: test_stationary_points). Forward mode: it runs
    each strategy's derivative rule (reverse mode transposes it) and compiles in half the time."""
    losses = dimer_losses(DIMER_STATES, method="dense", strategy=strategy, gradient="forward")
    assert_close_to_fd(jax.jacfwd(losses)(X0), dimer_reference)


@pytest.mark.parametrize("index", [0, 1], ids=["ket-eq28", "werner-two-level"])
def test_dimer_closed_form_gradients(index, dimer_reference):
    """method="auto" runs the closed forms (eigh of the degenerate H, Daleckii–Krein JVP)."""
    rho0 = PURE if index == 0 else WERNER
    assert_close_to_fd(jax.grad(dimer_losses(rho0))(X0), dimer_reference[index])


def _ghz_werner(p):
    ghz = jnp.zeros(8, dtype=complex).at[0].set(1).at[7].set(1) / jnp.sqrt(2.0)
    return (1 - p) / 8 * jnp.eye(8) + p * jnp.outer(ghz, jnp.conj(ghz))


def test_chain_gradient_wrt_spin_model_pytree():
    """jax.grad w.r.t. the SpinModel itself (Heisenberg chain + DMI, degenerate multiplets), 3 states at once;
    checked along a random direction in parameter space."""
    # The field along x keeps the GHZ-Werner state non-stationary (see the note at X0); the Heisenberg + DMI_z
    # multiplets and the Werner spectrum (7-fold degenerate) stay degenerate.
    model = q.chain_model(3, exchange=1.0, dmi=(0.0, 0.0, 0.3), field=(0.4, 0.0, 0.0))
    states = jnp.stack([
        q.density_matrix(q.random_ket(jax.random.PRNGKey(5), 8)),
        _ghz_werner(0.7),
        q.random_density_matrix(jax.random.PRNGKey(6), 8),
    ])

    def loss(m):
        rho = q.solve(m, states, TS, 0.3, method="dense", **TOL).states[:, -1]
        spins = q.spin_expectations(rho, m.spins)
        return jnp.sum(spins * jnp.arange(1.0, 10.0).reshape(3, 3)) + jnp.sum(q.purity(q.partial_trace(rho, (2, 2, 2), [0])))

    grads = jax.grad(loss)(model)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(7), len(leaves))
    direction = jax.tree_util.tree_unflatten(treedef, [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves)])
    direction = eqx.tree_at(lambda m: m.anisotropy_axis, direction, jnp.zeros((3, 3)))

    def along(eps):
        return loss(eqx.combine(jax.tree_util.tree_map(lambda p, d: p + eps[0] * d, params, direction), static))

    grad_leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert all(np.all(np.isfinite(leaf)) for leaf in grad_leaves)
    g_dir = sum(jnp.sum(g * d) for g, d in zip(grad_leaves, jax.tree_util.tree_leaves(direction)))
    # h = 1e-3: with h = 1e-5 the solver's 1e-10 tolerance on a loss of size ~10 dominates the difference.
    assert_close_to_fd(jnp.atleast_1d(g_dir), central_difference(along, jnp.zeros(1), h=1e-3)[0])


def test_initial_state_parameters():
    """Werner p (a traced ϱ0 → dense path) with κ; coherent-state angles (ket → eq. 28)."""
    B, J, D = (0.3, 0.0, 0.0), 1.0, (0.0, 0.0, 0.4)
    model, H = q.dimer_model(B=B, J=J, D=D), np.asarray(q.dimer_hamiltonian(B=B, J=J, D=D))

    def werner_loss(x):
        res = q.solve(model, q.werner_state("psi+", x[0]), TS, x[1], **TOL)
        return jnp.sum(WEIGHTS * q.correlation_matrix(res.states[-1]))

    x = np.array([0.6, 0.5])
    reference = numpy_central_differences(
        lambda x: (H[None], np.asarray(q.werner_state("psi+", x[0]))[None], np.array([x[1]]), np.asarray(TS)), x,
        lambda states: np.sum(WEIGHTS * np.asarray(q.correlation_matrix(states[:, -1])), axis=(-2, -1)))
    assert_close_to_fd(jax.grad(werner_loss)(jnp.asarray(x)), reference[0])

    def ket(a):
        n1 = jnp.stack([jnp.sin(a[0]) * jnp.cos(a[1]), jnp.sin(a[0]) * jnp.sin(a[1]), jnp.cos(a[0])])
        return q.product_state([q.coherent_state(0.5, n1), q.coherent_state(0.5, jnp.array([0.0, 1.0, -1.0]))])

    def angle_loss(a):
        res = q.solve(model, ket(a), TS, 0.5, **TOL)
        return jnp.sum(q.bloch_vectors(res.states[-1]) * jnp.arange(6.0).reshape(2, 3))

    a = np.array([1.1, 0.4])
    reference = numpy_central_differences(
        lambda a: (H[None], np.asarray(q.density_matrix(ket(a)))[None], np.array([0.5]), np.asarray(TS)), a,
        lambda states: np.sum(np.asarray(q.bloch_vectors(states[:, -1])) * np.arange(6.0).reshape(2, 3), axis=(-2, -1)))
    assert_close_to_fd(jax.grad(angle_loss)(jnp.asarray(a)), reference[0])


def test_bell_nonlocality_gradient_at_degenerate_correlations():
    """Werner Ψ+: TᵀT = p²𝟙 (threefold degenerate), B = √(2p² − 1); plain eigvalsh gives NaN here."""
    bell = lambda p: q.bell_nonlocality(q.werner_state("psi+", p))  # noqa: E731
    p = 0.9
    np.testing.assert_allclose(jax.grad(bell)(p), 2 * p / np.sqrt(2 * p**2 - 1), rtol=1e-10)
    assert jax.grad(bell)(0.5) == 0.0  # B = 0 region (√ at 0)
    rho = q.random_density_matrix(jax.random.PRNGKey(2), 4)
    direction = q.random_hamiltonian(jax.random.PRNGKey(4), 4)
    g = jax.grad(lambda r: q.bell_nonlocality(r))(rho)
    fd = central_difference(lambda e: q.bell_nonlocality(rho + e[0] * direction), jnp.zeros(1))[0]
    directional = jnp.real(jnp.sum(jnp.conj(g) * direction))  # JAX: grad of real f(z) is conj(∂f/∂z̄)·2 convention
    assert np.isfinite(directional)
    if q.bell_nonlocality(rho) > 0:
        np.testing.assert_allclose(directional, fd, rtol=1e-6)


def test_step_cap_phase_is_the_solvers_own_error_estimate():
    """θ* of the derivative step cap comes from the Butcher tableau (`embedded_error`); diffrax's own step of
    ż = −iz (as (Re z, Im z)) from z = 1 gives the same error estimate, and θ* sits where it crosses rtol."""
    term = diffrax.ODETerm(lambda t, y, args: jnp.stack([y[1], -y[0]]))
    for solver in (diffrax.Tsit5(), diffrax.Dopri5(), diffrax.Dopri8()):
        step = jax.jit(lambda theta: solver.step(term, 0.0, theta, jnp.array([1.0, 0.0]), None,
                                                 solver.init(term, 0.0, theta, jnp.array([1.0, 0.0]), None),
                                                 made_jump=False)[1])
        for theta in (0.3, 1.0):  # estimates ≥ 1e-11: above round-off (≈ 1e-17, the atol)
            np.testing.assert_allclose(embedded_error(solver.tableau, [theta])[0], np.linalg.norm(step(theta)),
                                       rtol=1e-6, atol=1e-16)
        theta = oscillation_step(solver, 1e-8)  # a bracket, not a tolerance: θ* is where the estimate crosses rtol
        assert np.linalg.norm(step(theta)) <= 1e-8 < np.linalg.norm(step(1.01 * theta))


# ------------------------------------------------------------------------------------------- stationary points
# Inverse design starts from equilibrium: ϱ0 commutes with H at x = X_STILL, so ϱ(t) does not move while its
# tangent oscillates with the Bohr frequencies. Each method and gradient mode, at DEFAULT solver settings, against
# central differences of an independent solver (numpy kron solve + scipy DOP853 at rtol 1e-12, `numpy_qllg`).
# x = (B_x, D_z, κ) perturbs a dimer family (paper eq. 8; B, J, D at x = 0 below).
FAMILIES = {
    "distinct": ((0.0, 0.0, 0.3), 1.0, (0.0, 0.0, 0.0)),  # four distinct levels
    "su2": ((0.0, 0.0, 0.0), 1.0, (0.0, 0.0, 0.0)),  # σ1·σ2: SU(2)-symmetric
    "generic": ((0.2, 0.0, 0.5), 0.7, (0.1, 0.2, 0.3)),
}
X_STILL = np.array([0.0, 0.0, 0.5])
SAVES = jnp.array([0.0, 1.0, 2.0])
SAVE_WEIGHTS = jnp.array([0.0, 0.7, 1.0])
OBSERVABLE = np.asarray(q.random_hamiltonian(jax.random.PRNGKey(11), 4))


def _family_hamiltonian(x, family):
    (bx, by, bz), coupling, (dx, dy, dz) = FAMILIES[family]
    return q.dimer_hamiltonian(B=jnp.stack([bx + x[0], by, bz]), J=coupling, D=jnp.stack([dx, dy, dz + x[1]]))


def _stationary_cases():
    """name → (family, ϱ0 (4, 4), ket (4,) or None): the stationary states first, then moving ones."""
    distinct = np.linalg.eigh(np.asarray(_family_hamiltonian(np.zeros(2), "distinct")))
    generic = np.linalg.eigh(np.asarray(_family_hamiltonian(np.zeros(2), "generic")))
    eigenket = distinct[1][:, 2]
    moving_ket = np.asarray(q.random_ket(jax.random.PRNGKey(5), 4))
    return {
        "thermal": ("distinct", np.asarray(q.thermal_state(_family_hamiltonian(np.zeros(2), "distinct"), 0.7)), None),
        "werner": ("su2", np.asarray(q.werner_state("psi+", 0.8)), None),
        "eigenstate": ("distinct", np.outer(eigenket, eigenket.conj()), eigenket),
        "passive": ("generic", (generic[1] * np.array([0.5, 0.3, 0.15, 0.05])) @ generic[1].conj().T, None),
        "moving mixed": ("generic", np.asarray(MIXED), None),
        "moving pure": ("generic", np.outer(moving_ket, moving_ket.conj()), moving_ket),
        "moving werner": ("generic", np.asarray(q.werner_state("psi+", 0.6)), None),
    }


CASES = _stationary_cases()
METHOD_CASES = {
    "dense": tuple(CASES),
    "frame": tuple(CASES),
    "ket": ("eigenstate", "moving pure"),
    "exact": ("eigenstate", "moving pure"),
    "two_level": ("werner", "eigenstate", "moving pure", "moving werner"),
}


@pytest.fixture(scope="module")
def stationary_reference():
    """Central differences of the numpy/scipy solver, (n_cases, 3), rows in CASES order."""
    names = tuple(CASES)

    def build(x):
        H = np.stack([np.asarray(_family_hamiltonian(x, CASES[c][0])) for c in names])
        return H, np.stack([CASES[c][1] for c in names]), np.full(len(names), x[2]), np.asarray(SAVES)

    def observe(states):
        return np.real(np.einsum("ntij,ji->nt", states, OBSERVABLE)) @ np.asarray(SAVE_WEIGHTS)

    jacobian = numpy_central_differences(build, X_STILL, observe)
    return dict(zip(names, jacobian))


def _case_losses(x, names, rho0, **options):
    """x = (B_x, D_z, κ) ↦ Σ_t w_t Re Tr(ϱ(t) A) per case, shape (len(names),), one batched solve. batching="vmap":
    each trajectory takes its own steps (with shared steps a moving neighbour would set the steps of a stationary
    state and hide a wrong derivative; solver and tolerances stay the defaults)."""
    H = jnp.stack([_family_hamiltonian(x, CASES[c][0]) for c in names])
    res = q.solve(H, rho0, SAVES, x[2], observables={"a": OBSERVABLE}, save_states=False, batching="vmap", **options)
    return res.observables["a"] @ SAVE_WEIGHTS, res.method


def assert_matches_reference(jacobian, names, reference, tol=1e-5):
    """Per case: max |∂ − ∂_FD| / max |∂_FD| ≤ tol."""
    jacobian = np.asarray(jacobian)
    assert np.all(np.isfinite(jacobian)), jacobian
    errors = {c: float(np.max(np.abs(j - reference[c])) / np.max(np.abs(reference[c])))
              for c, j in zip(names, jacobian)}
    assert max(errors.values()) <= tol, errors
    return errors


@pytest.mark.parametrize("gradient", ["checkpoint", "forward", "backsolve"])
@pytest.mark.parametrize("method", ["dense", "frame", "ket"])
def test_stationary_points(method, gradient, stationary_reference):
    """Thermal state of H0 (distinct levels), Werner Ψ+ under σ1·σ2, an eigenstate of H0 and a passive state (plus
    moving states) at default rtol/atol/solver: jacrev (checkpoint, backsolve) / jacfwd (forward) of all cases
    through ONE batched solve. dense + checkpoint instead runs jit(vmap(grad)) over the cases with a traced ϱ0,
    which method="auto" resolves to dense."""
    names = METHOD_CASES[method]
    kets = method == "ket"
    states = np.stack([CASES[c][2] if kets else CASES[c][1] for c in names])
    if method == "dense" and gradient == "checkpoint":
        families = jnp.asarray([[*FAMILIES[CASES[c][0]][0], FAMILIES[CASES[c][0]][1], *FAMILIES[CASES[c][0]][2]]
                                for c in names])
        chosen = []

        def loss(x, family, rho0):
            H = q.dimer_hamiltonian(B=family[:3] + jnp.array([1.0, 0.0, 0.0]) * x[0], J=family[3],
                                    D=family[4:] + jnp.array([0.0, 0.0, 1.0]) * x[1])
            res = q.solve(H, rho0, SAVES, x[2], observables={"a": OBSERVABLE}, save_states=False)
            chosen.append(res.method)
            return res.observables["a"] @ SAVE_WEIGHTS

        jacobian = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))(jnp.asarray(X_STILL), families, states)
        assert set(chosen) == {"dense"}
    else:
        differentiate = jax.jacfwd if gradient == "forward" else jax.jacrev
        chosen = []

        def losses(x):
            values, name = _case_losses(x, names, states, method=method, gradient=gradient)
            chosen.append(name)
            return values

        jacobian = jax.jit(differentiate(losses))(jnp.asarray(X_STILL))
        assert set(chosen) == {method}
    assert_matches_reference(jacobian, names, stationary_reference)


@pytest.mark.parametrize("method", ["exact", "two_level"])
def test_stationary_points_closed_forms(method, stationary_reference):
    """The closed forms (eq. 28; ϱ = a𝟙 + bP) are exact: jacrev and jacfwd at the same stationary and moving
    states (pure states count as a𝟙 + bP with a = 0, b = 1)."""
    names = METHOD_CASES[method]
    states = np.stack([CASES[c][2] if method == "exact" else CASES[c][1] for c in names])
    losses = jax.jit(lambda x: _case_losses(x, names, states, method=method)[0])
    for differentiate in (jax.jacrev, jax.jacfwd):
        assert_matches_reference(jax.jit(differentiate(losses))(jnp.asarray(X_STILL)), names, stationary_reference)


README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_gradient_example():
    """The README's "Gradients" example asserts its gradient g (tests/test_docs.py runs it); here those numbers
    against central differences of the numpy/scipy solver: thermal state of H0 = dimer(B = 0.3 ẑ, J = 1) at
    β = 0.7, κ = 0.5, ∂⟨S1x + S1z⟩(t = 2)/∂(D_z, B_x) at 0."""
    block = re.search(r"```python\n(.*?)```", README.read_text().split("### Gradients", 1)[1], re.DOTALL).group(1)
    documented = np.array(eval(re.search(r"assert jnp.allclose\(g, jnp.array\((\[.*?\])\)", block).group(1)))
    H0 = np.asarray(q.dimer_hamiltonian(B=(0.0, 0.0, 0.3), J=1.0))
    rho0 = np.asarray(q.thermal_state(H0, 0.7))
    spins = np.asarray(q.site_spin_operators([0.5, 0.5])[0])

    def build(x):
        H = np.asarray(q.dimer_hamiltonian(B=(x[1], 0.0, 0.3), J=1.0, D=(0.0, 0.0, x[0])))
        return H[None], rho0[None], np.array([0.5]), np.array([0.0, 2.0])

    def observe(states):
        return np.real(np.einsum("ntij,ji->nt", states, spins[0] + spins[2]))[:, -1]

    reference = numpy_central_differences(build, np.zeros(2), observe)[0]
    assert np.all(np.abs(reference) > 1e-2), reference  # a non-trivial gradient
    np.testing.assert_allclose(documented, reference, rtol=1e-5)
