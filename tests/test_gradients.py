"""Gradients through ``solve`` vs central finite differences (rtol 1e-10 / atol 1e-12 solves, t ≤ 2).

Pure, Werner (degenerate spectrum) and random full-rank mixed states; the dimer and a 3-spin chain, at
Hamiltonians with degenerate levels, where gradients of a naive eigendecomposition are NaN or wrong.
Each dense test batches the three states through one vmapped solve (one compilation per test).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q

TS = jnp.linspace(0.0, 2.0, 5)
TOL = dict(rtol=1e-11, atol=1e-13, invariant_tol=None)
WEIGHTS = jnp.arange(1.0, 10.0).reshape(3, 3) / 9

# x = (B_x, J, D_x, D_y, D_z, κ). At B = 0, J = 1, D = 0.4 ẑ, H has a doubly degenerate level (|↑↑⟩, |↓↓⟩).
# (Not D = 0: there every Bell/Werner state is an eigenstate, ϱ is stationary and the adaptive step size,
# controlled on ϱ only, grows past what the tangent needs; see the README section “Differentiable q-LLG”.)
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


def dimer_losses(rho0, **options):
    """x ↦ loss per state: correlations and Bloch vectors at several times (shape of rho0's batch)."""

    def losses(x):
        model = q.dimer_model(B=jnp.stack([x[0], 0.0, 0.0]), J=x[1], D=x[2:5])
        res = q.solve(model, rho0, TS, x[5], **options, **TOL)
        t = q.correlation_matrix(res.states)
        bloch = q.bloch_vectors(res.states)
        return jnp.sum(WEIGHTS * t[..., -1, :, :], axis=(-2, -1)) + jnp.sum(t[..., 2, :, :] ** 2, axis=(-2, -1)) + jnp.sum(bloch[..., 0] ** 2, axis=(-2, -1))

    return losses


@pytest.mark.parametrize("strategy", ["kron", "eigen", "krylov"])
def test_dimer_dense_gradients(strategy):
    """Pure (rank 1), Werner (3-fold degenerate) and full-rank ϱ; all three linear-solve strategies."""
    losses = dimer_losses(DIMER_STATES, method="dense", strategy=strategy)
    assert_close_to_fd(jax.jacrev(losses)(X0), central_difference(losses, X0))


@pytest.mark.parametrize("rho0", [PURE, WERNER], ids=["ket-eq28", "werner-two-level"])
def test_dimer_closed_form_gradients(rho0):
    """method="auto" runs the closed forms (eigh of the degenerate H, Daleckii–Krein JVP)."""
    losses = dimer_losses(rho0)
    assert_close_to_fd(jax.grad(losses)(X0), central_difference(losses, X0))


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
    model = q.dimer_model(B=(0.3, 0.0, 0.0), J=1.0, D=(0.0, 0.0, 0.4))

    def werner_loss(x):
        res = q.solve(model, q.werner_state("psi+", x[0]), TS, x[1], **TOL)
        return jnp.sum(WEIGHTS * q.correlation_matrix(res.states[-1]))

    x = jnp.array([0.6, 0.5])
    assert_close_to_fd(jax.grad(werner_loss)(x), central_difference(werner_loss, x))

    def angle_loss(a):
        n1 = jnp.stack([jnp.sin(a[0]) * jnp.cos(a[1]), jnp.sin(a[0]) * jnp.sin(a[1]), jnp.cos(a[0])])
        ket = q.product_state([q.coherent_state(0.5, n1), q.coherent_state(0.5, jnp.array([0.0, 1.0, -1.0]))])
        res = q.solve(model, ket, TS, 0.5, **TOL)
        return jnp.sum(q.bloch_vectors(res.states[-1]) * jnp.arange(6.0).reshape(2, 3))

    a = jnp.array([1.1, 0.4])
    assert_close_to_fd(jax.grad(angle_loss)(a), central_difference(angle_loss, a))


def _bloch_end(x, gradient="checkpoint"):
    model = q.dimer_model(B=(0.5, 0.0, 0.0), J=x[0], D=jnp.stack([0.0, 0.0, x[1]]))
    res = q.solve(model, MIXED, TS, x[2], method="dense", gradient=gradient, **TOL)
    return q.bloch_vectors(res.states[-1]).reshape(-1)


def test_jit_vmap_grad():
    xs = jnp.array([[1.0, 0.2, 0.5], [0.7, -0.3, 1.0]])
    scalar = lambda x: jnp.sum(_bloch_end(x) ** 2)  # noqa: E731
    batched = jax.jit(jax.vmap(jax.grad(scalar)))(xs)
    assert batched.shape == (2, 3)
    for x, g in zip(xs, batched):
        assert_close_to_fd(g, central_difference(scalar, x))


def test_jacfwd_with_forward_mode():
    x = jnp.array([1.0, 0.2, 0.5])
    jac = jax.jacfwd(lambda y: _bloch_end(y, "forward"))(x)
    assert jac.shape == (6, 3)
    assert_close_to_fd(jac, central_difference(_bloch_end, x))


def test_backsolve_adjoint():
    """The continuous adjoint: its own error control, so agreement is at the solver tolerance."""
    losses = dimer_losses(MIXED, method="dense", gradient="backsolve")
    assert_close_to_fd(jax.grad(losses)(X0), central_difference(losses, X0), tol=1e-4)


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
