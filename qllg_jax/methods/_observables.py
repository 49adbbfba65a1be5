"""Observables saved during a solve: operators (array leaves) and callables ϱ ↦ array (static).

An operator A (D, D) is saved as Re Tr(ϱA), evaluated in each method's own representation (ϱ, ψ or the frame U),
never forming ϱ when it is not stored. Operators are leaves of the pytree passed into the compiled solve: a new
operator of the same shape reuses the compilation. Callables are static: the same callable object reuses the
compilation, a new lambda compiles again. Callables receive the dense ϱ (D, D).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._arrays import device_array
from .._linalg import matmul


def _evaluate(name: str, fn: Callable, rho: jax.Array) -> jax.Array:
    """fn(ϱ), checked to be an array of numbers (at trace time: nothing is computed twice)."""
    value = fn(rho)
    try:
        array = device_array(value)
    except TypeError:
        array = None
    if array is None or not (jnp.issubdtype(array.dtype, jnp.number) or array.dtype == bool):
        raise ValueError(f"observables[{name!r}] must return an array of numbers for a state rho (D, D), got "
                         f"{type(value).__name__}")
    return array


class Observables(eqx.Module):
    """Named observables, in the order given. ``operators``: name → (D, D); ``functions``: (name, callable) pairs."""

    operators: dict[str, jax.Array]
    functions: tuple[tuple[str, Callable], ...] = eqx.field(static=True, default=())
    names: tuple[str, ...] = eqx.field(static=True, default=())

    def _ordered(self, values: dict) -> dict:
        return {name: values[name] for name in self.names}

    def of_density(self, rho: jax.Array) -> dict:
        """Values for a density matrix ϱ (D, D)."""
        values = {name: jnp.real(jnp.sum(rho * op.T)) for name, op in self.operators.items()}
        values.update({name: _evaluate(name, fn, rho) for name, fn in self.functions})
        return self._ordered(values)

    def of_frame(self, frame: jax.Array, weights: jax.Array) -> dict:
        """Values for ϱ = U diag(w) U† given by U (D, r) and w (r,): Re Σ_j w_j (U†AU)_jj for operators."""
        values = {
            name: jnp.real(jnp.sum(jnp.conj(frame) * matmul(op, frame * weights[None, :])))
            for name, op in self.operators.items()
        }
        if self.functions:
            rho = (frame * weights[None, :]) @ jnp.conj(frame.T)
            values.update({name: _evaluate(name, fn, rho) for name, fn in self.functions})
        return self._ordered(values)

    def of_ket(self, psi: jax.Array) -> dict:
        """Values for ϱ = |ψ⟩⟨ψ|, ψ (D,)."""
        return self.of_frame(psi[:, None], jnp.ones(1))
