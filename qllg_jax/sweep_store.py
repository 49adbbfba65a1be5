r"""Sweeps on disk: an HDF5 file written chunk by chunk, with atomic commits and resume.

Layout of a sweep file (h5py; every array has the point axis P first)::

    /                     attrs: format = "qllg-sweep/1", config (JSON), fingerprint (sha256 of config + params),
                                 versions (JSON: qllg_jax, jax, jaxlib, diffrax, equinox, numpy, scipy, h5py,
                                 python), created, updated (UTC ISO), n_points, chunk_size, complete,
                                 failure_reasons (JSON code → reason)
    /params/<name>        (P, ...) the parameter points
    /ts                   (T,) save times (when known)
    /chunk_done           (n_chunks,) bool: chunk k = points [k·chunk_size, (k+1)·chunk_size) is committed
    /done                 (P,) bool: the point's results are present
    /success, /failure    (P,) bool, int32 (FAILURE_REASONS code; 0 = success)
    /diagnostics/<name>   (P,) invariant drifts (trace_error, hermiticity_error, purity_drift, ...)
    /outputs/...          (P, ...) run_point's output pytree (observables/<name> (P, T, ...), invariants/...,
                          stats/num_steps, ...); rows of points not yet done hold NaN (or 0)

Atomic commits: every change (creation, each chunk) is made on a copy ``<file>.tmp`` that is flushed,
fsync'ed and then moved over the file with :func:`os.replace` (atomic on POSIX). A SIGKILL at any moment
therefore leaves either the previous or the new complete file — always readable, never half a chunk — and
the restarted sweep recomputes exactly the chunks whose ``chunk_done`` flag is unset. Chunks are computed
by the same compiled function with the same shapes, so a resumed file is bit-for-bit equal to an
uninterrupted run. The price is one file copy per chunk (O(file size)); for very large outputs use larger
chunks. One writer per file (several processes write ``<stem>.process<k>of<n>.h5``, see :func:`process_path`).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Mapping

import numpy as np

from .sweep import missing_value

FORMAT = "qllg-sweep/1"


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine a sweep's numbers."""
    from importlib import metadata

    from . import __version__

    versions = {"qllg_jax": __version__, "python": sys.version.split()[0]}
    for name in ("jax", "jaxlib", "diffrax", "equinox", "lineax", "numpy", "scipy", "h5py"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def process_path(path: str | os.PathLike, process_index: int, process_count: int) -> str:
    """The file of one process: ``path`` itself for a single process, else ``<stem>.process<k>of<n><suffix>``."""
    path = os.fspath(path)
    if process_count == 1:
        return path
    stem, suffix = os.path.splitext(path)
    return f"{stem}.process{process_index}of{process_count}{suffix or '.h5'}"


def _json(config) -> str:
    try:
        return json.dumps(config, sort_keys=True, default=_json_default)
    except TypeError as error:
        raise ValueError(f"config must be JSON-serialisable (numbers, strings, lists, dicts): {error}") from None


def _json_default(x):
    if isinstance(x, np.ndarray) or hasattr(x, "tolist"):
        return np.asarray(x).tolist()
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")


def fingerprint(config: Mapping, params: Mapping) -> str:
    """sha256 of the canonical JSON config and the parameter arrays (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256(_json(config).encode())
    for name in sorted(params):
        value = np.ascontiguousarray(params[name])
        digest.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class SweepStore:
    """One sweep file: create or reopen (with a config check), commit chunks atomically, read them back.

    Use :meth:`open`; :func:`qllg_jax.sweep` drives it (``out=``). Not for concurrent writers.
    """

    def __init__(self, path: str, n_points: int, chunk_size: int | None):
        self.path = path
        self.n_points = n_points
        self.chunk_size = chunk_size

    # -- opening ------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path, *, params: Mapping, config: Mapping, chunk_size=None, overwrite: bool = False, ts=None) -> SweepStore:
        """Create ``path`` for this sweep, or reopen it to resume the same sweep.

        Raises:
            ValueError: ``path`` exists and holds a different sweep (other config or params), or is not a
                sweep file — unless ``overwrite=True``, which replaces it (atomically).
        """
        import h5py

        path = os.fspath(path)
        params = {name: np.asarray(value) for name, value in params.items()}
        if not params or any(value.ndim == 0 for value in params.values()):
            raise ValueError("params must be a non-empty dict name -> array (P, ...) of parameter points")
        n_points = int(next(iter(params.values())).shape[0])
        config_json = _json(config)
        fp = fingerprint(json.loads(config_json), params)
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + ".tmp")  # a copy left by a killed commit: never the committed file
        if os.path.exists(path) and not overwrite:
            try:
                with h5py.File(path, "r") as f:
                    fmt, stored_fp = f.attrs.get("format"), f.attrs.get("fingerprint")
                    stored_chunk = int(f.attrs.get("chunk_size", -1))
                    stored_config = f.attrs.get("config", "")
            except OSError as error:
                raise ValueError(f"out={path!r} exists and is not an HDF5 file ({error}); pass overwrite=True "
                                 "(CLI: --overwrite) to replace it or choose another file") from None
            if fmt != FORMAT:
                raise ValueError(f"out={path!r} exists and is not a qllg sweep file; pass overwrite=True "
                                 "(CLI: --overwrite) to replace it or choose another file")
            if stored_fp != fp:
                raise ValueError(
                    f"out={path!r} holds a different sweep (its config or parameter points differ from this one; "
                    f"stored config: {stored_config[:300]}); refusing to overwrite it. Pass overwrite=True "
                    "(CLI: --overwrite) to replace it, or choose another file"
                )
            store = cls(path, n_points, None if stored_chunk < 0 else stored_chunk)
            if chunk_size is not None and store.chunk_size is not None:
                store.set_chunk_size(chunk_size)
            return store

        tmp = path + ".tmp"
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["config"] = config_json
            f.attrs["fingerprint"] = fp
            f.attrs["versions"] = json.dumps(package_versions(), sort_keys=True)
            f.attrs["created"] = f.attrs["updated"] = _now()
            f.attrs["n_points"] = n_points
            f.attrs["chunk_size"] = -1
            f.attrs["complete"] = False
            from ._integrate import FAILURE_REASONS

            f.attrs["failure_reasons"] = json.dumps({str(k): v for k, v in FAILURE_REASONS.items()})
            group = f.create_group("params")
            for name, value in params.items():
                group.create_dataset(name, data=value)
            if ts is not None:
                f.create_dataset("ts", data=np.asarray(ts))
            f.create_dataset("done", data=np.zeros(n_points, dtype=bool))
        cls._publish(tmp, path)
        return cls(path, n_points, None)

    @staticmethod
    def _publish(tmp: str, path: str) -> None:
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path)

    @contextlib.contextmanager
    def _transaction(self):
        """Yield the file copy ``<path>.tmp`` open for writing; on success it atomically replaces ``path``."""
        import h5py

        tmp = self.path + ".tmp"
        shutil.copyfile(self.path, tmp)
        try:
            with h5py.File(tmp, "r+") as f:
                yield f
                f.attrs["updated"] = _now()
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
        self._publish(tmp, self.path)

    def set_chunk_size(self, chunk_size: int) -> None:
        """Fix the chunk layout (stored on first use; a resumed sweep must keep it)."""
        chunk_size = int(chunk_size)
        if self.chunk_size is not None:
            if chunk_size != self.chunk_size:
                raise ValueError(
                    f"chunk_size={chunk_size} differs from the chunk_size={self.chunk_size} that {self.path!r} was "
                    "started with; resume with the same chunk size (or leave it unset) to keep results identical"
                )
            return
        n_chunks = -(-self.n_points // chunk_size)
        with self._transaction() as f:
            f.attrs["chunk_size"] = chunk_size
            f.create_dataset("chunk_done", data=np.zeros(n_chunks, dtype=bool))
        self.chunk_size = chunk_size

    # -- chunks -------------------------------------------------------------------------------------------

    def done_chunks(self) -> set[int]:
        import h5py

        with h5py.File(self.path, "r") as f:
            if "chunk_done" not in f:
                return set()
            return {int(k) for k in np.nonzero(f["chunk_done"][()])[0]}

    def commit(self, chunk: int, start: int, stop: int, flat: Mapping[str, np.ndarray]) -> None:
        """Write rows start:stop of every dataset named in ``flat`` (name → (stop − start, ...)) and mark the
        chunk done, in one atomic replacement of the file."""
        with self._transaction() as f:
            for name, rows in flat.items():
                rows = np.asarray(rows)
                if name not in f:
                    f.create_dataset(
                        name,
                        shape=(self.n_points,) + rows.shape[1:],
                        dtype=rows.dtype,
                        fillvalue=missing_value(rows.dtype),
                        chunks=True if rows.ndim > 0 else None,
                    )
                f[name][start:stop] = rows
            f["done"][start:stop] = True
            f["chunk_done"][chunk] = True

    def read_chunk(self, chunk: int, names) -> dict[str, np.ndarray]:
        """Rows of a committed chunk for each dataset name."""
        import h5py

        start, stop = chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, self.n_points)
        with h5py.File(self.path, "r") as f:
            return {name: f[name][start:stop] for name in names}

    def finish(self, complete: bool) -> None:
        import h5py

        with h5py.File(self.path, "r") as f:
            already = bool(f.attrs["complete"])
        if complete and not already:
            with self._transaction() as f:
                f.attrs["complete"] = True


def _read_group(group) -> dict:
    import h5py

    out = {}
    for name, item in group.items():
        out[name] = _read_group(item) if isinstance(item, h5py.Group) else item[()]
    return out


def load_sweep(path):
    """Read a sweep file into a :class:`~qllg_jax.sweep.SweepResult` (outputs as nested dicts).

    ``result.metadata`` holds ``config`` (dict), ``versions`` (dict), ``complete``, ``created``, ``updated``,
    ``chunk_size`` and ``done`` (P,) bool (points present; the others hold :func:`~qllg_jax.sweep.missing_value`: NaN, −1, False).
    """
    import h5py

    from .sweep import SweepResult

    if not os.path.isfile(os.fspath(path)):
        raise ValueError(f"path={os.fspath(path)!r}: no such sweep file")
    with h5py.File(os.fspath(path), "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"path={os.fspath(path)!r} is not a qllg sweep file")
        metadata = {
            "config": json.loads(f.attrs["config"]),
            "versions": json.loads(f.attrs["versions"]),
            "complete": bool(f.attrs["complete"]),
            "created": str(f.attrs["created"]),
            "updated": str(f.attrs["updated"]),
            "chunk_size": int(f.attrs["chunk_size"]),
            "done": f["done"][()],
        }
        n_points = int(f.attrs["n_points"])
        return SweepResult(
            params=_read_group(f["params"]),
            outputs=_read_group(f["outputs"]) if "outputs" in f else {},
            success=f["success"][()] if "success" in f else np.zeros(n_points, dtype=bool),
            failure=f["failure"][()] if "failure" in f else np.full(n_points, -1, dtype=np.int32),
            diagnostics=_read_group(f["diagnostics"]) if "diagnostics" in f else {},
            ts=f["ts"][()] if "ts" in f else None,
            metadata=metadata,
        )
