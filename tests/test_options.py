"""The one options object of solve (qllg_jax._options): its names and defaults are solve's, a method object's own
options are the ones that run, and ``batching="auto"`` is the shared-steps program of a single solve."""

from __future__ import annotations

import inspect

import jax.numpy as jnp
import numpy as np

import qllg_jax as q
from qllg_jax._options import DEFAULTS, option_names

H = np.asarray(q.dimer_hamiltonian((1.0, 0.0, 0.0), 1.0, (0.0, 0.0, 0.5)))
THERMAL = np.asarray(q.thermal_state(q.dimer_hamiltonian((0.2, 0.1, 1.0), 0.4), 0.7))
TS = jnp.linspace(0.0, 0.5, 4)


def test_solve_signature_is_the_options_object():
    """Every keyword of solve but observables is an option with the same default (written once, in _options), and
    estimate_memory's keywords are options too: sweep_solve and the fingerprint read these names."""
    keywords = {n: p.default for n, p in inspect.signature(q.solve).parameters.items() if p.kind == p.KEYWORD_ONLY}
    assert set(keywords) - {"observables"} == set(option_names())
    assert all(keywords[n] == getattr(DEFAULTS, n) for n in option_names())
    estimate = inspect.signature(q.estimate_memory).parameters
    assert all(estimate[n].default == getattr(DEFAULTS, n) for n in estimate if estimate[n].kind == estimate[n].KEYWORD_ONLY)


def test_a_method_object_runs_its_own_options_and_auto_batching_is_shared(compiles):
    """Dense(strategy="kron") is the program of method="dense", strategy="kron" (same numbers, no new compile);
    batching="auto" on a batch is the program of "shared"."""
    by_name = q.solve(H, THERMAL, TS, 0.3, method="dense", strategy="kron", save_states=False, observables={"h": H})
    compiles.clear()
    by_object = q.solve(H, THERMAL, TS, 0.3, method=q.methods.Dense(strategy="kron"), save_states=False,
                        observables={"h": H})
    assert compiles == [] and by_object.method == "dense"
    np.testing.assert_array_equal(np.asarray(by_object.observables["h"]), np.asarray(by_name.observables["h"]))
    Hs = np.stack([H, 2 * H])
    shared = q.solve(Hs, THERMAL, TS, 0.3, method="dense", batching="shared", save_states=False, observables={"h": H})
    compiles.clear()
    auto = q.solve(Hs, THERMAL, TS, 0.3, method="dense", batching="auto", save_states=False, observables={"h": H})
    assert compiles == []
    np.testing.assert_array_equal(np.asarray(auto.observables["h"]), np.asarray(shared.observables["h"]))


def test_read_options_are_cached_but_not_conflated():
    """Reading the same options again returns the same object (no per-call Module build); 1 == True must not hit the
    cached entry of True (it is not a flag), nor 1 the entry of 1.0."""
    import pytest

    from qllg_jax._options import SolveOptions

    assert SolveOptions.read(save_states=True, rtol=1e-6) is SolveOptions.read(save_states=True, rtol=1e-6)
    with pytest.raises(ValueError, match="save_states must be True or False"):
        SolveOptions.read(save_states=1, rtol=1e-6)
    assert SolveOptions.read(max_step=1.0).max_step == 1.0
    with pytest.raises(ValueError, match="max_steps must be an integer"):
        SolveOptions.read(max_steps=1e4)
    assert SolveOptions.read(max_steps=10_000).max_steps == 10_000
