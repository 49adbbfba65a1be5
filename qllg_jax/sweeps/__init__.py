"""Parameter sweeps: the generic engine (:func:`sweep`), the q-LLG layer (:func:`sweep_solve`), the on-disk
store (:class:`SweepStore`, :func:`load_sweep`) and the physics fingerprint of stored sweeps.

Modules (no cycles): ``result`` ← ``params`` ← ``fingerprint`` ← ``store`` ← ``engine`` ← ``solve``.
"""

from .engine import sweep
from .params import grid
from .result import SweepResult
from .solve import sweep_solve
from .store import SweepFileError, SweepStore, load_sweep, process_path

__all__ = ["SweepFileError", "SweepResult", "SweepStore", "grid", "load_sweep", "process_path", "sweep", "sweep_solve"]
