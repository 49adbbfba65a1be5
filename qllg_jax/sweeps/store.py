r"""Sweeps on disk: an HDF5 file whose header is written once and whose chunks are appended in place.

Layout of a sweep file (every array has the point axis P first; h5py or any HDF5 reader can read it)::

    /                     attrs: format = "qllg-sweep/2", fingerprint (JSON: the physics, see
                                 :mod:`qllg_jax.sweeps.fingerprint`), config (JSON), layout (JSON: n_points,
                                 chunk_size, n_chunks, the output leaves with their shapes, dtypes and byte
                                 offsets), versions (JSON), created (UTC ISO), failure_reasons (JSON),
                                 header_digest (checksum of all of the above and of /params, /ts, /fingerprint)
    /params/<name>        (P, ...) the parameter points
    /ts                   (T,) save times (when known)
    /fingerprint/<field>  (P,) uint64: digest of a function of the point (H(J), ϱ0(p), κ(k)) at every point
    /chunk_done           (n_chunks,) uint8: 1 when chunk k = points [k·chunk_size, (k+1)·chunk_size) is stored
    /chunk_digest         (n_chunks, n_leaves) uint64: BLAKE2b-64 checksum of each leaf's rows of chunk k
    /success, /failure    (P,) bool, int32 (FAILURE_REASONS code; 0 = success)
    /diagnostics/<name>   (P,) invariant drifts (trace_error, hermiticity_error, purity_drift, ...)
    /outputs/...          (P, ...) run_point's output pytree (observables/<name> (P, T, ...), invariants/...,
                          stats/num_steps, states ...); a key containing "/" is stored as "%2F" ("%" as "%25")

Every dataset of results is contiguous and allocated when the file is created (HDF5 "early" allocation,
no fill: the file is sparse until written), so its byte offset in the file is fixed. After creation the
HDF5 structure is never modified again: a chunk is committed by writing its rows at their offsets
(``os.pwrite``), ``fdatasync``, then its checksums and its ``chunk_done`` flag ("flag after flush"). Hence:

- bytes written per chunk = the chunk's data (+ 8 bytes per leaf + 1): the whole sweep writes its file once;
- a SIGKILL at any moment leaves a valid file: the HDF5 metadata are never in flux, a chunk whose flag is
  unset is recomputed on resume, and a flagged chunk's data were flushed before its flag;
- the header (params, fingerprint, layout) is built in a private file ``<out>.qllg-partial-<pid>-<hex>``
  and published with ``os.link`` (which never replaces an existing file); a partial file left by a killed
  creation is removed by the next run (only files with that exact name pattern, and only when no live
  process holds them);
- readers (:func:`load_sweep`) may read while a sweep writes: they see whole chunks or none.

Checksums: each chunk's rows are checked against ``chunk_digest`` by :func:`load_sweep` and on resume; the
header against ``header_digest``; HDF5's own metadata checksums (file format 1.8 object headers) cover the
rest. A mismatch raises :class:`SweepFileError` naming the file, the dataset and the chunk.

Locking: the writer holds ``flock(LOCK_EX)`` on the file for the whole sweep; a second writer gets a
:class:`SweepFileError` at once. A read-only file is never written, replaced or re-moded; a file that is not
a sweep file (or holds another sweep) is replaced only with ``overwrite=True``, keeping its mode.

Why HDF5 in place (measured with ``python benchmarks/bench_sweep.py --io`` on a shared 2-core CPU): the
1024-point dimer sweep (201 saves) wrote 17.4 MiB for a 17.4 MiB file (1.00×; format 1, copy-and-replace,
wrote 26×), 1e5 points without states (21 saves) wrote 185.3 MiB for 185.2 MiB (1.00×; format 1: 76 GB),
with ``out=`` taking no longer than in memory within the machine's noise (fdatasync: ~3–10 ms per chunk).
The alternative "HDF5 chunked datasets + fletcher32, h5py writes, flush, then the chunk's flag" wrote 1.23×
the same data, and rewrites B-tree/heap metadata on every chunk, so a SIGKILL mid-flush can leave the
HDF5 structure itself inconsistent; SWMR avoids that but leaves superblock flags that need ``h5clear``
after a kill. zarr would be a new dependency, writes one file per array per chunk (10⁴–10⁵ small files for
a large sweep) and has no file lock. With contiguous pre-allocated datasets the data land at fixed offsets
and the guarantees above need no journal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import glob
import hashlib
import json
import os
import shutil
import stat
import sys
from collections.abc import Mapping, Sequence

import numpy as np

from .._failures import FAILURE_REASONS
from . import fingerprint as fp
from .result import NOT_RUN, SweepResult, missing_value

FORMAT = "qllg-sweep/2"
OLD_FORMATS = ("qllg-sweep/1",)
LIBVER = ("v108", "v108")
"""HDF5 file format 1.8: object headers with checksums, no SWMR status flags (which a SIGKILL would leave set)."""
PARTIAL = ".qllg-partial-"


class SweepFileError(ValueError):
    """A sweep file that cannot be used: damaged, locked by another writer, read-only, or another sweep."""


# ------------------------------------------------------------------------------------------------ names


def encode_key(key: str) -> str:
    """An output-tree key as an HDF5 link name: "%" → "%25", "/" → "%2F", "." alone → "%2E"."""
    key = str(key).replace("%", "%25").replace("/", "%2F")
    return "%2E" if key == "." else key


def decode_key(name: str) -> str:
    return name.replace("%2E", ".").replace("%2F", "/").replace("%25", "%")


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One output array of a sweep: its key path in the output tree, per-point shape and dtype."""

    path: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def dataset(self) -> str:
        return "/".join(encode_key(k) for k in self.path)

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def as_json(self) -> dict:
        return {"path": list(self.path), "shape": list(self.shape), "dtype": _le(self.dtype).str}

    @classmethod
    def from_json(cls, item: Mapping) -> Leaf:
        return cls(tuple(item["path"]), tuple(item["shape"]), np.dtype(item["dtype"]))


def _le(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype


def _le_bytes(rows: np.ndarray, dtype) -> bytes:
    return np.ascontiguousarray(rows, dtype=_le(dtype)).tobytes()


def _digest64(data) -> int:
    return int(np.frombuffer(hashlib.blake2b(data, digest_size=8).digest(), dtype="<u8")[0])


# -------------------------------------------------------------------------------------------- helpers


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine a sweep's numbers."""
    from importlib import metadata

    versions = {"qllg_jax": fp.version(), "python": sys.version.split()[0]}
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
    except (TypeError, ValueError) as error:
        raise ValueError(f"config must be JSON-serialisable (numbers, strings, lists, dicts): {error}") from None


def _json_default(x):
    if isinstance(x, np.ndarray) or hasattr(x, "tolist"):
        return np.asarray(x).tolist()
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")


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


_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _lock(fd: int, path: str, exclusive: bool) -> None:
    """flock the file; a second writer gets a clear error at once."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SweepFileError(
            f"out={path!r} is being written by another running sweep (it holds the file's lock); wait for it to "
            "finish, or write to another file"
        ) from None
    except OSError as error:  # a filesystem without flock (some network mounts): go on, but say so
        if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        import warnings

        warnings.warn(f"out={path!r}: the filesystem does not support file locks; make sure no other process "
                      "writes this sweep", stacklevel=4)


def _writable(path: str) -> bool:
    """Writable by this process and not marked read-only by its mode (root can write a 0o444 file: we don't)."""
    return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _remove_stale_partials(path: str) -> None:
    """Remove ``<path>.qllg-partial-*`` files left by a creation that was killed — before or after it linked the
    file to ``path`` — but never one that a live process holds locked."""
    for partial in glob.glob(glob.escape(path) + PARTIAL + "*"):
        try:
            fd = os.open(partial, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(partial)
        except OSError:
            pass
        finally:
            os.close(fd)


def _not_sweep_file(path: str, why: str) -> SweepFileError:
    return SweepFileError(
        f"out={path!r} exists and {why}; refusing to touch it. Pass overwrite=True (CLI: --overwrite) to replace "
        "it, or choose another file"
    )


# ------------------------------------------------------------------------------------------------ header


@dataclasses.dataclass
class Header:
    """What a sweep file says about itself (read and checked by :func:`read_header`)."""

    fingerprint: dict
    per_point: dict
    config: object
    layout: dict
    params: dict
    ts: np.ndarray | None
    versions: dict
    created: str

    @property
    def leaves(self) -> list[Leaf]:
        return [Leaf.from_json(item) for item in self.layout["leaves"]]


def _header_digest(fingerprint_json, config_json, layout_json, params, ts, per_point) -> str:
    h = fp.hasher()
    for text in (fingerprint_json, config_json, layout_json):
        h.update(text.encode())
    for name in sorted(params):
        h.update(name.encode())
        fp.array_digest(params[name], h)
    if ts is not None:
        fp.array_digest(ts, h)
    for name in sorted(per_point):
        h.update(name.encode())
        fp.array_digest(per_point[name], h)
    return h.hexdigest()


def read_header(f, path: str) -> Header:
    """Read and verify the header of an open h5py file of format 2 (raises SweepFileError when damaged)."""
    try:
        fingerprint_json, config_json = str(f.attrs["fingerprint"]), str(f.attrs["config"])
        layout_json = str(f.attrs["layout"])
        params = {decode_key(name): f["params"][name][()] for name in f["params"]}
        ts = f["ts"][()] if "ts" in f else None
        per_point = {decode_key(name): f["fingerprint"][name][()] for name in f.get("fingerprint", {})}
        stored_digest = str(f.attrs["header_digest"])
        header = Header(
            fingerprint=json.loads(fingerprint_json),
            per_point=per_point,
            config=json.loads(config_json),
            layout=json.loads(layout_json),
            params=params,
            ts=ts,
            versions=json.loads(str(f.attrs["versions"])),
            created=str(f.attrs["created"]),
        )
    except (KeyError, OSError, ValueError, TypeError) as error:
        raise SweepFileError(f"{path!r} is damaged: its header cannot be read ({error})") from None
    if _header_digest(fingerprint_json, config_json, layout_json, params, ts, per_point) != stored_digest:
        raise SweepFileError(
            f"{path!r} is damaged: its header (parameters, save times or fingerprint) does not match its checksum"
        )
    for item in header.layout["leaves"]:
        dataset = f.get(Leaf.from_json(item).dataset)
        offset = None if dataset is None else dataset.id.get_offset()
        if dataset is None or (item["offset"] is not None and offset != item["offset"]):
            raise SweepFileError(f"{path!r} is damaged: dataset {Leaf.from_json(item).dataset!r} is missing or moved")
    return header


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
TRUNCATED = "is truncated or damaged"


def _truncation(path: str, error: OSError) -> str | None:
    """Why HDF5 could not open ``path`` when the file is (the start of) an HDF5 file, else None."""
    import re

    try:
        with open(path, "rb") as handle:
            head = handle.read(len(HDF5_SIGNATURE))
    except OSError:
        return None
    if len(head) < len(HDF5_SIGNATURE) and HDF5_SIGNATURE.startswith(head):
        return f"it holds only {len(head)} bytes"
    if head != HDF5_SIGNATURE:
        return None
    sizes = re.search(r"eof = (\d+).*stored_eof = (\d+)", str(error))
    if sizes:
        return f"it has {int(sizes.group(1))} of the {int(sizes.group(2))} bytes its HDF5 superblock records"
    return f"it starts like an HDF5 file but HDF5 cannot open it ({error})"


def _open_h5(path: str, mode: str = "r"):
    import h5py

    try:
        return h5py.File(path, mode, locking=False)
    except OSError as error:
        why = _truncation(path, error)
        if why is not None:
            raise SweepFileError(
                f"{path!r} {TRUNCATED}: {why}. A sweep file has its full size from its start, so it was cut short "
                "(an interrupted copy, a full disk) or overwritten. To recover: copy it again from its source; "
                "otherwise move it aside and rerun the sweep to recompute it (or pass overwrite=True, CLI: "
                "--overwrite, to replace it)"
            ) from None
        raise SweepFileError(f"{path!r} is not an HDF5 file or cannot be read ({error})") from None


# ------------------------------------------------------------------------------------------------- store


class SweepStore:
    """One sweep file, open for appending chunks (created, or reopened to resume the same sweep).

    Use :meth:`open`; :func:`qllg_jax.sweep` drives it (``out=``). Holds the file's lock until :meth:`close`.
    """

    def __init__(self, path: str, fd: int, header: Header, writable: bool):
        self.path = path
        self._fd = fd
        self.header = header
        self.writable = writable
        layout = header.layout
        self.n_points = int(layout["n_points"])
        self.chunk_size = int(layout["chunk_size"])
        self.n_chunks = int(layout["n_chunks"])
        self.leaves = header.leaves
        self._offsets = [item["offset"] for item in layout["leaves"]]
        self.part = part_of(header)
        self._done_offset = int(layout["chunk_done_offset"])
        self._digest_offset = int(layout["chunk_digest_offset"])

    # -- opening ------------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path,
        *,
        params: Mapping,
        leaves: Sequence[Leaf],
        fingerprint: Mapping,
        per_point: Mapping | None = None,
        config=None,
        chunk_size: int | None = None,
        default_chunk_size: int,
        overwrite: bool = False,
        ts=None,
        part: tuple[int, int] | None = None,
    ) -> SweepStore:
        """Create ``path`` for this sweep, or reopen it to resume the same sweep.

        Args:
            params: name → (P, ...) parameter points. leaves: the output arrays (per-point shapes, dtypes).
            fingerprint, per_point: the physics (:mod:`~qllg_jax.sweeps.fingerprint`).
            chunk_size: requested chunk size (None: the stored one when resuming, else ``default_chunk_size``).
            part: (K, N) when this file holds part K of N of the sweep (chunks K::N; recorded in the layout and
                checked on resume); None for a whole sweep.

        Raises:
            SweepFileError (a ValueError): ``path`` is locked by another writer, read-only and incomplete,
                damaged, or holds something else (another sweep: the message names what changed; not a sweep
                file) — the last two unless ``overwrite=True``.
        """
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ValueError(f"out={path!r}: the directory {directory!r} does not exist")
        if os.path.isdir(path):
            raise ValueError(f"out={path!r} is a directory; give a file name such as 'sweep.h5'")
        params = {name: np.asarray(value) for name, value in params.items()}
        part = None if part is None or int(part[1]) == 1 else (int(part[0]), int(part[1]))
        per_point = {name: np.asarray(v, dtype=np.uint64) for name, v in (per_point or {}).items()}
        fingerprint = json.loads(fp.canonical(fingerprint))
        config_json = _json({} if config is None else config)
        _remove_stale_partials(path)
        replaced_fd = None
        if os.path.exists(path):
            store, replaced_fd = cls._reopen(path, params, list(leaves), fingerprint, per_point,
                                             json.loads(config_json), chunk_size, overwrite, part)
            if store is not None:
                return store
        n_points = int(next(iter(params.values())).shape[0])
        chunk_size = int(chunk_size or default_chunk_size)
        try:
            return cls._create(path, params, list(leaves), fingerprint, per_point, config_json, n_points, chunk_size,
                               ts, replaced_fd, part=part)
        finally:
            if replaced_fd is not None:
                os.close(replaced_fd)

    @classmethod
    def _reopen(cls, path, params, leaves, fingerprint, per_point, config, chunk_size, overwrite, part=None):
        """(store, None) to resume the existing file, or (None, its locked fd) when ``overwrite`` replaces it."""
        if not os.access(path, os.R_OK):
            raise SweepFileError(f"out={path!r} exists and is not readable; it is left untouched")
        writable = _writable(path)
        fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        _lock(fd, path, exclusive=writable)
        try:
            problem, header = cls._check_existing(path, params, leaves, fingerprint, per_point, config, chunk_size, part)
        except BaseException:
            os.close(fd)
            raise
        if problem is None:
            store = cls(path, fd, header, writable)
            if not writable and not store.done_chunks().all():
                store.close()
                raise SweepFileError(
                    f"out={path!r} is read-only and the sweep in it is not finished; it is not modified (make it "
                    "writable to resume, or write to another file)"
                )
            return store, None
        if not overwrite or not writable:
            os.close(fd)
            if not overwrite:
                raise problem
            raise SweepFileError(f"out={path!r} is read-only: not replaced, even with overwrite=True") from problem
        return None, fd  # the old file stays locked until the new one replaces it

    @staticmethod
    def _check_existing(path, params, leaves, fingerprint, per_point, config, chunk_size, part=None):
        """(None, header) for the same sweep, or (the error explaining why not, None)."""
        try:
            with _open_h5(path) as f:
                fmt = f.attrs.get("format")
                if fmt in OLD_FORMATS:
                    return _not_sweep_file(path, f"was written by an older qllg_jax (format {fmt}), which cannot "
                                           "be resumed (load_sweep still reads it)"), None
                if fmt != FORMAT:
                    return _not_sweep_file(path, "is not a qllg sweep file"), None
                header = read_header(f, path)
        except SweepFileError as error:  # not HDF5, or damaged: replaced only with overwrite=True
            if "is not an HDF5 file" in str(error):
                return _not_sweep_file(path, "is not an HDF5 file"), None
            return error, None
        stored_part = part_of(header)
        if stored_part is not None and stored_part != part:
            what = "a whole sweep" if part is None else f"part {part[0]} of {part[1]}"
            return SweepFileError(
                f"out={path!r} holds part {stored_part[0]} of {stored_part[1]} of a sweep, not {what}; run that part "
                f"(part=({stored_part[0]}, {stored_part[1]}), CLI: --part {stored_part[0]}/{stored_part[1]}) or merge "
                "the parts (qllg_jax.merge_sweeps, CLI: --merge)"
            ), None
        new_fp = {**fingerprint, "params": {n: fp.describe_array(v) for n, v in params.items()}}
        old_fp = {**header.fingerprint, "params": {n: fp.describe_array(v) for n, v in header.params.items()}}
        old_fp.setdefault("config", header.config)
        new_fp.setdefault("config", config)
        changes = fp.differences(old_fp, new_fp, header.per_point, per_point, params)
        if changes:
            return SweepFileError(
                f"out={path!r} holds a different sweep: " + fp.summarize(changes) + ". Refusing to mix results: pass "
                "overwrite=True (CLI: --overwrite) to replace it, or choose another file"
            ), None
        stored_chunk = int(header.layout["chunk_size"])
        if chunk_size is not None and int(chunk_size) != stored_chunk:
            raise SweepFileError(
                f"chunk_size={chunk_size} differs from the chunk_size={stored_chunk} that {path!r} was started with; "
                "resume with the same chunk size (or leave it unset) to keep results identical"
            )
        stored_leaves = header.leaves
        if [(l.path, l.shape, _le(l.dtype)) for l in stored_leaves] != [(l.path, l.shape, _le(l.dtype)) for l in leaves]:
            names = sorted({l.dataset for l in stored_leaves} ^ {l.dataset for l in leaves})
            return SweepFileError(
                f"out={path!r} holds outputs of another shape or name than this sweep's ({names or 'shapes/dtypes'} "
                "differ); pass overwrite=True to replace it, or choose another file"
            ), None
        return None, header

    @classmethod
    def _create(cls, path, params, leaves, fingerprint, per_point, config_json, n_points, chunk_size, ts,
                replaced_fd=None, part=None, publish=True) -> SweepStore:
        """Write the header into a private ``<path>.qllg-partial-*`` file and publish it as ``path`` (``publish``
        False: the store writes the private file, which :meth:`publish` gives its name later)."""
        n_chunks = -(-n_points // chunk_size)
        data_bytes = n_points * sum(leaf.row_bytes for leaf in leaves)
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        if data_bytes > free:
            from .._guards import format_bytes

            raise ValueError(f"out={path!r}: the sweep's results need about {format_bytes(data_bytes)} but only "
                             f"{format_bytes(free)} are free there")
        partial = f"{path}{PARTIAL}{os.getpid()}-{os.urandom(4).hex()}"
        fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            cls._write_header(partial, params, leaves, fingerprint, per_point, config_json, n_points, chunk_size,
                              n_chunks, ts, part)
            os.fsync(fd)
            with _open_h5(partial) as f:
                header = read_header(f, partial)
            if not publish:
                return cls(partial, fd, header, writable=True)
            cls._publish(partial, path, replace=replaced_fd is not None)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise
        return cls(path, fd, header, writable=True)

    @staticmethod
    def _publish(partial: str, path: str, replace: bool) -> None:
        """Give the finished header file its name: ``os.link`` never replaces a file; ``replace`` (overwrite=True,
        the old file locked by this process) swaps it in atomically with the old file's mode."""
        if replace:
            os.chmod(partial, stat.S_IMODE(os.stat(path).st_mode))
            os.replace(partial, path)
        else:
            try:
                os.link(partial, path)
            except FileExistsError:
                raise SweepFileError(f"out={path!r} was created by another process at the same moment; "
                                     "rerun to resume it or choose another file") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        _fsync_dir(path)

    @staticmethod
    def _write_header(partial, params, leaves, fingerprint, per_point, config_json, n_points, chunk_size, n_chunks, ts,
                      part=None):
        import h5py

        with h5py.File(partial, "w", libver=LIBVER, locking=False) as f:
            group = f.create_group("params")
            for name, value in params.items():
                group.create_dataset(encode_key(name), data=value)
            ts = None if ts is None else np.asarray(ts, dtype=float)
            if ts is not None:
                f.create_dataset("ts", data=ts)
            if per_point:
                group = f.create_group("fingerprint")
                for name, value in per_point.items():
                    group.create_dataset(encode_key(name), data=value)
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            done = f.create_dataset("chunk_done", data=np.zeros(n_chunks, dtype=np.uint8), dcpl=dcpl)
            digests = f.create_dataset("chunk_digest", data=np.zeros((n_chunks, len(leaves)), dtype="<u8"), dcpl=dcpl)
            sparse = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            sparse.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            sparse.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # unwritten rows are never read (chunk_done = 0)
            items = []
            for leaf in leaves:
                dataset = f.create_dataset(leaf.dataset, shape=(n_points,) + leaf.shape, dtype=_le(leaf.dtype), dcpl=sparse)
                items.append({**leaf.as_json(), "offset": dataset.id.get_offset()})
            layout = {
                "n_points": n_points, "chunk_size": chunk_size, "n_chunks": n_chunks, "leaves": items,
                "chunk_done_offset": done.id.get_offset(), "chunk_digest_offset": digests.id.get_offset(),
            }
            if part is not None:
                layout["part"] = [int(part[0]), int(part[1])]
            fingerprint_json, layout_json = fp.canonical(fingerprint), json.dumps(layout, sort_keys=True)
            f.attrs["format"] = FORMAT
            f.attrs["fingerprint"] = fingerprint_json
            f.attrs["config"] = config_json
            f.attrs["layout"] = layout_json
            f.attrs["versions"] = json.dumps(package_versions(), sort_keys=True)
            f.attrs["created"] = _now()
            f.attrs["failure_reasons"] = json.dumps({str(k): v for k, v in FAILURE_REASONS.items()})
            f.attrs["header_digest"] = _header_digest(fingerprint_json, config_json, layout_json, params, ts, per_point)

    # -- chunks -------------------------------------------------------------------------------------------

    def rows(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, self.n_points)

    def done_chunks(self) -> np.ndarray:
        """bool (n_chunks,): chunks already stored (raises SweepFileError for a damaged flag)."""
        raw = np.frombuffer(os.pread(self._fd, self.n_chunks, self._done_offset), dtype=np.uint8)
        return _check_flags(raw, self.path)

    def commit(self, chunk: int, rows: Sequence[np.ndarray]) -> None:
        """Write chunk ``chunk``'s rows (one array (stop − start, ...) per leaf, in :attr:`leaves` order) in place,
        flush them to disk, then set the chunk's checksums and its done flag."""
        if not self.writable:
            raise SweepFileError(f"{self.path!r} is read-only")
        start, stop = self.rows(chunk)
        digests = np.zeros(len(self.leaves), dtype="<u8")
        for i, (leaf, offset, value) in enumerate(zip(self.leaves, self._offsets, rows)):
            value = np.asarray(value)
            if value.shape != (stop - start,) + leaf.shape:
                raise ValueError(f"chunk {chunk}: {leaf.dataset} has shape {value.shape}, expected "
                                 f"{(stop - start,) + leaf.shape}")
            data = _le_bytes(value, leaf.dtype)
            if data:
                self._write_rows(data, offset + start * leaf.row_bytes)
            digests[i] = _digest64(data)
        self._flush()
        self._write_flag(chunk, digests)

    def _write_rows(self, data: bytes, offset: int) -> None:
        _pwrite_all(self._fd, data, offset)

    def _flush(self) -> None:
        _datasync(self._fd)

    def _write_flag(self, chunk: int, digests: np.ndarray) -> None:
        _pwrite_all(self._fd, digests.tobytes(), self._digest_offset + chunk * len(self.leaves) * 8)
        _pwrite_all(self._fd, b"\x01", self._done_offset + chunk)

    def read(self, chunks=None) -> dict[int, list[np.ndarray]]:
        """{chunk: rows per leaf} of stored chunks (default: all done), checked against their checksums."""
        with _open_h5(self.path) as f:
            return _read_chunks(f, self.path, self.header, chunks)

    def close(self) -> None:
        if self._fd is not None:
            if self.writable:
                _datasync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __del__(self):  # pragma: no cover - safety net; sweep() closes explicitly
        try:
            self.close()
        except Exception:
            pass


def part_of(header: Header) -> tuple[int, int] | None:
    """(K, N) for a file holding part K of N of a sweep (chunks K::N), None for a whole sweep."""
    part = header.layout.get("part")
    return None if part is None else (int(part[0]), int(part[1]))


def _check_flags(raw: np.ndarray, path: str) -> np.ndarray:
    bad = np.nonzero(raw > 1)[0]
    if bad.size:
        raise SweepFileError(f"{path!r} is damaged: chunk_done[{int(bad[0])}] = {int(raw[bad[0]])} (not 0 or 1)")
    return raw.astype(bool)


def _read_chunks(f, path, header: Header, chunks=None, leaf_indices=None) -> dict[int, list[np.ndarray]]:
    """Rows of the given done chunks for the given leaves, each verified against ``chunk_digest``."""
    layout = header.layout
    n_points, chunk_size = int(layout["n_points"]), int(layout["chunk_size"])
    leaves = header.leaves
    leaf_indices = range(len(leaves)) if leaf_indices is None else leaf_indices
    done = _check_flags(f["chunk_done"][()], path)
    digests = f["chunk_digest"][()]
    chunks = np.nonzero(done)[0] if chunks is None else [k for k in chunks if done[k]]
    out = {int(k): [None] * len(leaves) for k in chunks}
    if not out:
        return out
    first, last = min(out), max(out)
    lo, hi = first * chunk_size, min((last + 1) * chunk_size, n_points)
    for i in leaf_indices:
        leaf = leaves[i]
        try:
            block = f[leaf.dataset][lo:hi]
        except (OSError, KeyError) as error:
            raise SweepFileError(f"{path!r} is damaged: dataset {leaf.dataset!r} cannot be read ({error})") from None
        for k in out:
            start, stop = k * chunk_size, min((k + 1) * chunk_size, n_points)
            rows = block[start - lo : stop - lo]
            if _digest64(_le_bytes(rows, leaf.dtype)) != int(digests[k, i]):
                raise SweepFileError(
                    f"{path!r} is damaged: dataset {leaf.dataset!r}, chunk {k} (points {start}-{stop - 1}) does not "
                    "match its checksum; the file was changed outside qllg_jax or the disk is failing. Move the file "
                    "aside and rerun the sweep to recompute"
                )
            out[k][i] = rows
    return out


# ---------------------------------------------------------------------------------------------- reading


def _nest(items: Mapping[tuple, object]):
    """{("a", "b"): x, ("a", "c"): y} → {"a": {"b": x, "c": y}}; a path () is the whole value."""
    if () in items:
        return items[()]
    out: dict = {}
    for path, value in items.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def load_sweep(path, *, names=None, points=None) -> SweepResult:
    """Read one sweep file into a :class:`~qllg_jax.SweepResult` (outputs as nested dicts), verifying checksums.

    (:func:`qllg_jax.load_sweep` also reads a set of part files as one result.)

    Args:
        path: the HDF5 file written by :func:`~qllg_jax.sweep` / :func:`~qllg_jax.sweep_solve` / ``qllg sweep``.
        names: output datasets to read, e.g. ``["outputs/observables/bloch"]`` (default: all). ``success``,
            ``failure`` and ``diagnostics`` are always read.
        points: which points to read: a slice or an integer index array (default: all P). Only the chunks
            that hold them are read and verified.

    ``result.metadata`` holds ``path``, ``config`` (dict), ``fingerprint`` (dict), ``versions`` (dict),
    ``complete``, ``created``, ``chunk_size``, ``part`` ((K, N) for part K of N, else None) and ``done`` (bool
    per returned point; the other points hold :func:`~qllg_jax.sweeps.result.missing_value`: NaN, −1, False).

    Raises:
        ValueError: no such file, not an HDF5 / sweep file; :class:`SweepFileError` when a checksum fails
            (naming the dataset and chunk).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path={path!r}: no such sweep file")
    with _open_h5(path) as f:
        fmt = f.attrs.get("format")
        if fmt in OLD_FORMATS:
            return _load_format1(f, path)
        if fmt != FORMAT:
            raise SweepFileError(f"path={path!r} is not a qllg sweep file (no format attribute {FORMAT!r})")
        header = read_header(f, path)
        return read_sweep([(f, path, header)], names=names, points=points)


def open_sweep_file(path: str):
    """(open h5py file, header) of a sweep file of the current format (SweepFileError otherwise); close the file."""
    f = _open_h5(path)
    try:
        fmt = f.attrs.get("format")
        if fmt != FORMAT:
            old = f" (format {fmt}, written by an older qllg_jax)" if fmt in OLD_FORMATS else ""
            raise SweepFileError(f"{path!r} is not a qllg sweep file of format {FORMAT!r}{old}")
        return f, read_header(f, path)
    except BaseException:
        f.close()
        raise


def read_sweep(files, *, names=None, points=None) -> SweepResult:
    """The :class:`SweepResult` of one sweep stored in ``files`` = [(open h5py file, path, header)]: one file, or
    the part files of one sweep (same header, each chunk done in at most one of them: the caller checks)."""
    _, first_path, header = files[0]
    layout = header.layout
    n_points, chunk_size = int(layout["n_points"]), int(layout["chunk_size"])
    index = np.arange(n_points)[points if points is not None else slice(None)]
    index = np.atleast_1d(index)
    leaves = header.leaves
    wanted = set(names) if names is not None else None
    if wanted is not None:
        known = {leaf.dataset for leaf in leaves}
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(f"names: {unknown} are not datasets of {first_path!r}; it has {sorted(known)}")
    leaf_indices = [i for i, leaf in enumerate(leaves)
                    if wanted is None or leaf.dataset in wanted or leaf.path[0] in ("success", "failure", "diagnostics")]
    chunks = np.unique(index // chunk_size)
    lo = int(chunks[0]) * chunk_size  # rows lo:hi cover every requested point
    hi = min((int(chunks[-1]) + 1) * chunk_size, n_points)
    blocks = {i: np.full((hi - lo,) + leaves[i].shape, missing_value(leaves[i].dtype), dtype=leaves[i].dtype)
              for i in leaf_indices}
    done_points = np.zeros(n_points, dtype=bool)
    for f, path, part_header in files:
        stored = _read_chunks(f, path, part_header, chunks, leaf_indices)
        for k, rows in stored.items():
            done_points[k * chunk_size : min((k + 1) * chunk_size, n_points)] = True
            for i in leaf_indices:
                blocks[i][k * chunk_size - lo : k * chunk_size - lo + len(rows[i])] = rows[i]
    arrays = {leaves[i].path: block[index - lo] for i, block in blocks.items()}
    done = done_points[index]
    outputs = {p[1:]: v for p, v in arrays.items() if p[0] == "outputs"}
    failure = arrays.get(("failure",), np.full(len(index), NOT_RUN, dtype=np.int32))
    failure = np.where(done, failure, NOT_RUN)
    paths = [path for _, path, _ in files]
    return SweepResult(
        params={name: value[index] for name, value in header.params.items()},
        outputs=_nest(outputs) if outputs else {},
        success=arrays.get(("success",), np.zeros(len(index), dtype=bool)) & done,
        failure=failure,
        diagnostics=_nest({p[1:]: v for p, v in arrays.items() if p[0] == "diagnostics"}) or {},
        ts=header.ts,
        metadata={
            "path": paths[0] if len(files) == 1 else paths,
            "format": FORMAT,
            "config": header.config,
            "fingerprint": header.fingerprint,
            "versions": header.versions,
            "complete": bool(done_points.all()),
            "created": header.created,
            "chunk_size": chunk_size,
            "part": part_of(header) if len(files) == 1 else None,
            "done": done,
        },
    )


def _load_format1(f, path: str) -> SweepResult:
    """Files of format 1 (copy-and-replace commits, no checksums), read as they are."""
    import h5py

    def group(g):
        return {decode_key(k): group(v) if isinstance(v, h5py.Group) else v[()] for k, v in g.items()}

    n_points = int(f.attrs["n_points"])
    done = f["done"][()]
    return SweepResult(
        params=group(f["params"]),
        outputs=group(f["outputs"]) if "outputs" in f else {},
        success=f["success"][()] if "success" in f else np.zeros(n_points, dtype=bool),
        failure=f["failure"][()] if "failure" in f else np.full(n_points, NOT_RUN, dtype=np.int32),
        diagnostics=group(f["diagnostics"]) if "diagnostics" in f else {},
        ts=f["ts"][()] if "ts" in f else None,
        metadata={
            "path": path,
            "format": OLD_FORMATS[0],
            "config": json.loads(f.attrs["config"]),
            "versions": json.loads(f.attrs["versions"]),
            "complete": bool(f.attrs["complete"]),
            "created": str(f.attrs["created"]),
            "chunk_size": int(f.attrs["chunk_size"]),
            "done": done,
        },
    )
