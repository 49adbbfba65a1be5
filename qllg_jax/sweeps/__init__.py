"""Parameter sweeps: the generic engine (:func:`sweep`), the q-LLG layer (:func:`sweep_solve`), the on-disk
store (:class:`SweepStore`, :func:`load_sweep`) and the physics fingerprint of stored sweeps.

Modules (no cycles): ``result`` ← ``params`` ← ``fingerprint`` ← ``store`` ← ``parts`` ← ``engine`` ← ``solve``.
"""

from .engine import sweep
from .params import grid
from .result import SweepResult
from .solve import sweep_solve
from .parts import find_parts, load_sweep, merge_sweeps, sweep_status
from .store import SweepFileError, SweepStore, process_path

__all__ = ["SweepFileError", "SweepResult", "SweepStore", "find_parts", "grid", "load_sweep", "merge_sweeps",
           "process_path", "sweep", "sweep_solve", "sweep_status"]
