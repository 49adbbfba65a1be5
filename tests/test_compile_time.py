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
        reference, ours, chained = x, [], x
        out = []
        for k in range(1, 101):
            reference = eqxi.prevbefore(reference)
            chained = _diffrax_compile.prevbefore(chained)  # the chain diffrax builds: input = previous output
            if k in (1, 2, 37, 100):
                out.append((reference, chained, _diffrax_compile.ulps_below(x, k)))
        return out

    for reference, chained, direct in both(x):
        ref = np.asarray(reference)
        for got in (np.asarray(chained), np.asarray(direct)):
            same = (ref.view(np.int64 if dtype == np.float64 else np.int32) == got.view(ref.view(
                np.int64 if dtype == np.float64 else np.int32).dtype)) | (np.isnan(ref) & np.isnan(got))
            assert same.all(), (np.asarray(x)[~same], ref[~same], got[~same])


def test_the_threshold_carries_no_tangent_and_differentiation_through_t_end_works():
    """diffrax only compares t1 − 100 ULP with step ends: a zero tangent (eqxi's passes it through, unused there);
    d/dt_end of a solve still equals the closed form's (eq. 28 is differentiable in t)."""
    assert jax.jvp(lambda t: _diffrax_compile.prevbefore(_diffrax_compile.prevbefore(t)), (2.5,), (1.0,))[1] == 0.0
    H = np.asarray(q.dimer_hamiltonian(B=(1.0, 0, 0), J=1.0, D=(0.0, 0.0, 0.3)))
    psi0 = np.asarray(q.coherent_product_state([0.5, 0.5], [[1.0, 0, 0], [0, 0, 1.0]]))
    sz = np.asarray(q.site_spin_operators([0.5, 0.5])[0][2])
    value = lambda t, method: q.solve(H, psi0, jnp.stack([0.0, t]), 0.5, method=method, rtol=1e-10, atol=1e-12,  # noqa: E731
                                      observables={"sz": sz}).observables["sz"][-1]
    np.testing.assert_allclose(jax.grad(value)(1.3, "ket"), jax.grad(value)(1.3, "exact"), atol=1e-7)  # ~1e3 rtol


def test_installed_in_diffrax_and_the_solve_program_has_no_ulp_chain():
    import diffrax._integrate as integrate

    assert _diffrax_compile.install() and isinstance(integrate.eqxi, _diffrax_compile._EqxiProxy)
    assert integrate.eqxi.while_loop is eqxi.while_loop  # every other name forwarded
    H = q.dimer_hamiltonian(B=(1.0, 0, 0), J=1.0)
    rho0 = np.asarray(q.density_matrix(q.up_down_state()))
    text = jax.jit(lambda ts: q.solve(H, rho0, ts, 0.5, method="dense").states).lower(jnp.linspace(0, 1, 3)).as_text()
    assert text.count("chlo.next_after") == 0 and "nextafter" not in text.lower().replace("next_after", "")
