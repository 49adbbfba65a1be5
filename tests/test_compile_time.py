"""The compile-time fix for diffrax's end-time threshold (qllg_jax/_diffrax_compile.py): the same values as the
chained ``equinox.internal.prevbefore`` calls it replaces, bit for bit, and a smaller solve program."""

import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qllg_jax as q
from qllg_jax import _diffrax_compile


def _values(dtype):
    info = np.finfo(dtype)
    rng = np.random.default_rng(0)
    decades = np.log10(info.max) - 8
    regular = np.concatenate([rng.uniform(-1e3, 1e3, 20), 10.0 ** rng.uniform(-decades, decades, 20) * rng.choice([-1, 1], 20)])
    special = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, 5.0, 10.0, 10.0 ** -decades, info.tiny, -info.tiny, info.tiny * (1 + 50 * info.eps),
               info.max, -info.max, np.inf, -np.inf, np.nan]
    return np.concatenate([regular, special]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_closed_form_equals_the_chained_eqxi_calls_bit_for_bit(dtype):
    x = jnp.asarray(_values(dtype))

    @jax.jit
    def both(x):
        reference, chained, out = x, x, []
        for k in range(1, 101):
            reference = eqxi.prevbefore(reference)
            previous, chained = chained, _diffrax_compile.prevbefore(chained)  # the chain diffrax builds
            assert k == 1 or chained is previous  # the chain's end on the first call; no op traced after it
            if k in (1, 2, 37, 100):
                out.append((reference, _diffrax_compile.ulps_below(x, k)))
        return out, (reference, chained)

    steps, end = both(x)
    for reference, got in [*steps, end]:
        ref, got = np.asarray(reference), np.asarray(got)
        integer = np.int64 if dtype == np.float64 else np.int32
        same = (ref.view(integer) == got.view(integer)) | (np.isnan(ref) & np.isnan(got))
        assert same.all(), (np.asarray(x)[~same], ref[~same], got[~same])


def test_the_threshold_carries_no_tangent_and_differentiation_through_t_end_works():
    """diffrax only compares t1 − 100 ULP with step ends: a zero tangent (eqxi's passes it through, unused there).
    d/dt1 of a (patched) diffrax solve of y' = −y still equals the closed form −e^{−t1}."""
    import diffrax

    assert jax.jvp(lambda t: _diffrax_compile.prevbefore(t), (2.5,), (1.0,))[1] == 0.0
    assert _diffrax_compile.install()

    def y_end(t1):
        sol = diffrax.diffeqsolve(diffrax.ODETerm(lambda t, y, args: -y), diffrax.Tsit5(), 0.0, t1, 0.1, jnp.array(1.0),
                                  stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12))
        return sol.ys[-1]

    # the solution is rtol-accurate (1e-10) and so is its derivative in t1 (the vector field at t1): 1e-7 ≫ 1e-10
    np.testing.assert_allclose(jax.jit(jax.grad(y_end))(1.3), -np.exp(-1.3), rtol=1e-7)


def test_installed_in_diffrax_and_the_solve_program_has_no_ulp_chain():
    import diffrax._integrate as integrate

    assert _diffrax_compile.install() and isinstance(integrate.eqxi, _diffrax_compile._EqxiProxy)
    assert integrate.eqxi.while_loop is eqxi.while_loop  # every other name forwarded
    H = q.dimer_hamiltonian(B=(1.0, 0, 0), J=1.0)
    rho0 = np.asarray(q.density_matrix(q.up_down_state()))
    text = jax.jit(lambda ts: q.solve(H, rho0, ts, 0.5, method="dense").states).lower(jnp.linspace(0, 1, 3)).as_text()
    assert text.count("chlo.next_after") == 0 and "nextafter" not in text.lower().replace("next_after", "")
    # the closed form traced once: its single bitcast to integers, not one per chained call
    jaxpr = str(jax.make_jaxpr(lambda ts: q.solve(H, rho0, ts, 0.5, method="dense").states)(jnp.linspace(0, 1, 3)))
    assert jaxpr.count("bitcast_convert_type") <= 4, jaxpr.count("bitcast_convert_type")
