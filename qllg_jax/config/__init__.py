r"""TOML description of a spin system for ``qllg run`` and ``qllg sweep``.

A config file has the tables ``[system]``, ``[initial_state]``, ``[dynamics]``, ``[output]``, an optional
``[units]``, any number of ``[[drive]]`` field drives (:mod:`.drives`) and, for ``qllg sweep``, ``[sweep]``::

    [system]                # exactly one of: spins (+ bonds), chain = n, dimer = {...}
    dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6], spin = 0.5 }   # the paper's eq. 8

    [initial_state]
    kind = "up_down"        # up_down | bell | werner | coherent | thermal | random | basis

    [dynamics]
    kappa = 0.5
    t_end = 20.0            # or times = [...]
    n_save = 401

    [output]
    observables = ["bloch", "correlation", "bell_nonlocality", "energy", "purity"]

Every key, its type, default and unit: ``qllg config reference`` (:func:`reference`), generated from the same
schema (:mod:`.schema`) that validates configs. Coupling conventions: a dimer's ``J`` multiplies σ1·σ2 (eq. 8,
= 4J S1·S2), a chain's or spin list's ``exchange`` multiplies S_i·S_j.

:func:`build_system` takes the parsed table (a plain dict); :func:`with_overrides` sets dotted keys
(``{"dynamics.kappa": 0.3, "system.dimer.J": -1.0}``). Every invalid value raises :class:`ConfigError`
(a ``ValueError``) whose message starts with its dotted key.
"""

from . import drives as _drives  # noqa: F401  (registers [[drive]] with the schema)
from .schema import INITIAL_STATES, OBSERVABLES, TWO_QUBIT_OBSERVABLES, ConfigError, reference, validate
from .system import System, build_system, load_config, tomllib, with_overrides

__all__ = [
    "ConfigError",
    "INITIAL_STATES",
    "OBSERVABLES",
    "System",
    "TWO_QUBIT_OBSERVABLES",
    "build_system",
    "load_config",
    "reference",
    "tomllib",  # tomllib (Python ≥ 3.11) or tomli: the TOML reader the configs are read with
    "validate",
    "with_overrides",
]
