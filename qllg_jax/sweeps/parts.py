r"""A sweep split into parts: part K of N runs the chunks K, K+N, K+2N, … into its own file; merging the parts.

Who splits: the processes of a :func:`jax.distributed` job (process K of N, automatically), or independent jobs
given ``part=(K, N)`` (a SLURM array: ``qllg sweep CONFIG --part auto``). Both write the same file,
``<stem>.process<K>of<N>.h5`` (:func:`~qllg_jax.sweeps.store.process_path`), so the two ways mix: a part of a
``jax.distributed`` job can be rerun alone as ``part=(K, N)``. Every part file holds the whole header (all
parameter points, the physics fingerprint, every output dataset allocated) and the chunks of its part; its
layout records (K, N), which a resume checks. Each part resumes on its own.

:func:`merge_sweeps` checks a set of part files — one sweep (same fingerprint, configuration, points and
layout in every part), every chunk done in exactly one part, every chunk's checksum — and only then gives the
merged file its name: an ordinary sweep file whose datasets are bit for bit those of a single-process run with
the same chunk size (the chunks' bytes are copied, not recomputed or re-encoded). :func:`load_sweep` reads a
part set as one result without merging (chunks not done yet are NaN / −1 / False); :func:`sweep_status`
reports the progress of every part.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence

import numpy as np

from . import fingerprint as fp
from .result import SweepResult, failure_reason
from .store import (
    PARTIAL,
    FORMAT,
    SweepFileError,
    SweepStore,
    _check_flags,
    _digest64,
    _le,
    _pwrite_all,
    _remove_stale_partials,
    _writable,
    open_sweep_file,
    part_of,
    process_path,
    read_sweep,
)
from .store import load_sweep as load_sweep_file

PART_NAME = re.compile(r"\.process(\d+)of(\d+)$")
"""``<stem>.process<K>of<N><suffix>``: the file of part K of N."""
MAX_LISTED = 8
"""Chunks named in a message before "and N more"."""


# ------------------------------------------------------------------------------------------------- parts


def check_part(part, name: str = "part") -> tuple[int, int]:
    """``part`` as (K, N): two integers with N ≥ 1 and 0 ≤ K < N (ValueError naming ``name`` otherwise)."""
    if isinstance(part, (str, bytes)) or not hasattr(part, "__len__") or len(part) != 2:
        raise ValueError(f"{name} must be a pair (K, N): run part K (from 0) of N, got {part!r}")
    k, n = part
    for value in (k, n):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be a pair of integers (K, N), got {part!r}")
    if n < 1:
        raise ValueError(f"{name}=({k}, {n}): the number of parts N must be at least 1")
    if not 0 <= k < n:
        raise ValueError(f"{name}=({k}, {n}): K must be in 0..{n - 1} (parts count from 0)")
    return int(k), int(n)


def parse_part(text: str, environ=None) -> tuple[int, int]:
    """``"K/N"`` → (K, N); ``"auto"``: from a SLURM array job's environment (``SLURM_ARRAY_TASK_ID`` minus
    ``SLURM_ARRAY_TASK_MIN``, divided by ``SLURM_ARRAY_TASK_STEP``, of ``SLURM_ARRAY_TASK_COUNT``).
    ValueError with a one-line reason otherwise."""
    text = str(text).strip()
    if text == "auto":
        env = os.environ if environ is None else environ
        if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
            raise ValueError("auto: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set (not a SLURM array "
                             "job); give the part as K/N, e.g. 0/4")
        try:
            task, count = int(env["SLURM_ARRAY_TASK_ID"]), int(env["SLURM_ARRAY_TASK_COUNT"])
            low, step = int(env.get("SLURM_ARRAY_TASK_MIN", 0)), int(env.get("SLURM_ARRAY_TASK_STEP", 1) or 1)
        except ValueError:
            raise ValueError("auto: the SLURM_ARRAY_TASK_* variables are not integers") from None
        k, rest = divmod(task - low, step)
        if rest or not 0 <= k < count:
            raise ValueError(f"auto: array task {task} is not one of {count} evenly spaced tasks from {low} (step "
                             f"{step}); use --array=0-{count - 1} or give --part K/N")
        return k, count
    match = re.fullmatch(r"(-?\d+)/(-?\d+)", text)
    if not match:
        raise ValueError(f"{text!r}: expected K/N (part K, from 0, of N; e.g. 0/4) or auto")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1:
        raise ValueError(f"{text}: the number of parts N must be at least 1")
    if not 0 <= k < n:
        raise ValueError(f"{text}: K must be in 0..{n - 1} (parts count from 0)")
    return k, n


def find_parts(path) -> list[str]:
    """The part files ``<stem>.process<K>of<N><suffix>`` of ``path`` that exist, sorted by (N, K)."""
    path = os.fspath(path)
    stem, suffix = os.path.splitext(path)
    suffix = suffix or ".h5"
    found = []
    for candidate in glob.glob(glob.escape(stem) + ".process*of*" + glob.escape(suffix)):
        match = PART_NAME.search(candidate[: len(candidate) - len(suffix)])
        if match and candidate[: match.start()] == stem:
            found.append((int(match.group(2)), int(match.group(1)), candidate))
    return [p for _, _, p in sorted(found)]


def _chunk_list(chunks) -> str:
    chunks = [int(k) for k in chunks]
    shown = ", ".join(map(str, chunks[:MAX_LISTED]))
    return shown + (f" and {len(chunks) - MAX_LISTED} more" if len(chunks) > MAX_LISTED else "")


def _name_part(path: str, part) -> str:
    return f"{path!r}" if part is None else f"part {part[0]} of {part[1]} ({path!r})"


# -------------------------------------------------------------------------------------------- a part set


class PartSet:
    """The open files of one sweep split into parts, checked to be one sweep (:meth:`open`). Close it."""

    def __init__(self, files, done):
        self.files = files  # [(h5py file, path, header)]
        self.done = done  # [bool (n_chunks,)] per file

    @property
    def header(self):
        return self.files[0][2]

    @property
    def paths(self) -> list[str]:
        return [path for _, path, _ in self.files]

    @property
    def n_chunks(self) -> int:
        return int(self.header.layout["n_chunks"])

    def close(self) -> None:
        for f, _, _ in self.files:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @classmethod
    def open(cls, paths: Sequence, *, complete: bool) -> PartSet:
        """Open and check ``paths``: one sweep in every file, no chunk done twice, and (``complete``) every chunk
        done once. Raises :class:`SweepFileError` naming the file and the chunks at the first problem."""
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError("paths: give at least one part file")
        seen = {}
        for path in paths:
            if not os.path.isfile(path):
                raise ValueError(f"{path!r}: no such sweep file")
            real = os.path.realpath(path)
            if real in seen:
                raise SweepFileError(f"{path!r} is given twice (also as {seen[real]!r})")
            seen[real] = path
        files = []
        try:
            for path in paths:
                f, header = open_sweep_file(path)
                files.append((f, path, header))
            done = [_check_flags(f["chunk_done"][()], path) for f, path, _ in files]
            parts = cls(files, done)
            parts._check_one_sweep()
            parts._check_chunks(complete)
        except BaseException:
            for item in files:
                item[0].close()
            raise
        return parts

    def _check_one_sweep(self) -> None:
        """Every file holds the same sweep: physics, configuration, points, save times and layout."""
        keys = [_sweep_key(header) for _, _, header in self.files]
        counts = {key: keys.count(key) for key in keys}
        reference = max(counts, key=lambda key: (counts[key], -keys.index(key)))  # the majority, else the first
        ref_index = keys.index(reference)
        _, ref_path, ref = self.files[ref_index]
        for (_, path, header), key in zip(self.files, keys):
            if key == reference:
                continue
            changes = _differences(ref, header)
            raise SweepFileError(
                f"{_name_part(path, part_of(header))} is not a part of the same sweep as {ref_path!r}: "
                f"{fp.summarize(changes) or 'their layouts differ'}; merge only the parts of one sweep"
            )
        counts_n = {part[1] for part in (part_of(h) for _, _, h in self.files) if part is not None}
        if len(counts_n) > 1:
            listing = ", ".join(f"{path!r} is part {p[0]} of {p[1]}" for _, path, h in self.files
                                if (p := part_of(h)) is not None)
            raise SweepFileError(f"the files split the sweep into different numbers of parts ({listing}); "
                                 "merge the parts of one split")
        by_part = {}
        for _, path, header in self.files:
            part = part_of(header)
            if part is not None and part in by_part:
                raise SweepFileError(f"two copies of part {part[0]} of {part[1]}: {by_part[part]!r} and {path!r}; "
                                     "give each part once")
            by_part[part] = path

    def _check_chunks(self, complete: bool) -> None:
        n_chunks = self.n_chunks
        counts = np.sum(self.done, axis=0) if self.done else np.zeros(n_chunks, dtype=int)
        for (_, path, header), done in zip(self.files, self.done):
            part = part_of(header)
            if part is not None:
                foreign = np.nonzero(done & (np.arange(n_chunks) % part[1] != part[0]))[0]
                if foreign.size:
                    raise SweepFileError(f"{_name_part(path, part)} holds chunks {_chunk_list(foreign)}, which are "
                                         f"not chunks of its part ({part[0]}::{part[1]}); the file was changed "
                                         "outside qllg_jax")
        twice = np.nonzero(counts > 1)[0]
        if twice.size:
            k = int(twice[0])
            holders = [path for (_, path, _), done in zip(self.files, self.done) if done[k]]
            raise SweepFileError(f"chunks {_chunk_list(twice)} are done in more than one file (chunk {k}: "
                                 f"{' and '.join(map(repr, holders))}); give each part once")
        if not complete:
            return
        missing = np.nonzero(counts == 0)[0]
        if not missing.size:
            return
        split = {part_of(h)[1] for _, _, h in self.files if part_of(h) is not None}
        if not split:
            raise SweepFileError(f"chunks {_chunk_list(missing)} are done in none of the files "
                                 f"{', '.join(map(repr, self.paths))}; finish the sweep (rerun it) before merging")
        n = split.pop()
        given = {part_of(h): path for _, path, h in self.files}
        k = int(missing[0]) % n
        chunks = missing[missing % n == k]
        if (k, n) not in given:
            where = process_path(_stem_path(self.paths[0]), k, n)
            raise SweepFileError(f"part {k} of {n} ({where!r}) is missing: its chunks {_chunk_list(chunks)} are in "
                                 f"none of the files; run that part (part=({k}, {n}), CLI: --part {k}/{n}) and merge again")
        raise SweepFileError(f"part {k} of {n} ({given[(k, n)]!r}) is not finished: chunks {_chunk_list(chunks)} are "
                             f"not done; rerun that part (CLI: --part {k}/{n}) to finish it, then merge")


def _stem_path(path: str) -> str:
    """``a.process0of2.h5`` → ``a.h5`` (the whole sweep's file name)."""
    stem, suffix = os.path.splitext(path)
    match = PART_NAME.search(stem)
    return stem[: match.start()] + suffix if match else path


def _sweep_key(header) -> tuple:
    """What must be equal in every part of one sweep (everything in the header but the part, offsets, dates)."""
    layout = header.layout
    leaves = [(tuple(item["path"]), tuple(item["shape"]), item["dtype"]) for item in layout["leaves"]]
    return (
        fp.canonical(header.fingerprint), fp.canonical(header.config),
        tuple((n, fp.array_digest(v)) for n, v in sorted(header.params.items())),
        None if header.ts is None else fp.array_digest(header.ts),
        tuple((n, fp.array_digest(v)) for n, v in sorted(header.per_point.items())),
        int(layout["n_points"]), int(layout["chunk_size"]), tuple(leaves),
    )


def _differences(ref, other) -> list[str]:
    """Why ``other``'s header is not ``ref``'s sweep ("kappa differs: stored 0.5, now 0.1" = ref's, other's)."""
    old = {**ref.fingerprint, "config": ref.config,
           "params": {n: fp.describe_array(v) for n, v in ref.params.items()}}
    new = {**other.fingerprint, "config": other.config,
           "params": {n: fp.describe_array(v) for n, v in other.params.items()}}
    if (ref.ts is None) != (other.ts is None) or (ref.ts is not None and not np.array_equal(ref.ts, other.ts)):
        old.setdefault("ts", fp.describe_array(ref.ts if ref.ts is not None else np.zeros(0)))
        new.setdefault("ts", fp.describe_array(other.ts if other.ts is not None else np.zeros(0)))
    changes = fp.differences(old, new, ref.per_point, other.per_point, ref.params)
    for name in ("n_points", "chunk_size"):
        a, b = ref.layout[name], other.layout[name]
        if a != b:
            changes.append(f"{name} differs: {a} vs {b}")
    if [item["path"] for item in ref.layout["leaves"]] != [item["path"] for item in other.layout["leaves"]] or \
            [(item["shape"], item["dtype"]) for item in ref.layout["leaves"]] != \
            [(item["shape"], item["dtype"]) for item in other.layout["leaves"]]:
        changes.append("the outputs (names, shapes or dtypes) differ")
    # fingerprint.differences says "stored <ref's>, now <other's>": here both are stored
    out = []
    for change in changes:
        change = re.sub(r"\bnot stored, now (.+?)(?=;|$)", r"\1 here, absent in the others", change)
        change = re.sub(r"\bstored (.+?), now absent(?=;|$)", r"absent here, \1 in the others", change)
        out.append(re.sub(r"\bstored (.+?), now (.+?)(?=;|$)", r"\2 here, \1 in the others", change))
    return out


# ------------------------------------------------------------------------------------------------- merge


def _leaf_rows(header, chunk: int):
    layout = header.layout
    start = chunk * int(layout["chunk_size"])
    return start, min(start + int(layout["chunk_size"]), int(layout["n_points"]))


def merge_sweeps(paths, out=None, *, overwrite: bool = False) -> str:
    """Merge the part files of one sweep into one ordinary sweep file ``out``; returns ``out``.

    Args:
        paths: the part files (e.g. ``sweep.process0of4.h5`` … ``sweep.process3of4.h5``; any names), or one
            path ``sweep.h5`` whose part files ``sweep.process<K>of<N>.h5`` are then found
            (:func:`find_parts`).
        out: the merged file (default, when ``paths`` is one whole-sweep path: that path); it must not exist
            unless ``overwrite=True`` (then it is replaced atomically).

    Before anything is written the parts are checked: one sweep in all of them (same physics fingerprint,
    configuration, parameter points, save times and layout), each chunk done in exactly one part. While the
    chunks are copied each is checked against its checksum. Any problem raises :class:`SweepFileError` naming
    the part and the chunks, and ``out`` is not created (the merge writes a private file that gets its name only
    once it is complete and flushed). ``out`` is then bit for bit, in every dataset, the file a single-process
    run with the same chunk size writes (attributes ``created`` and ``versions`` aside); the parts are left as
    they are.
    """
    if out is None:
        if not (isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__")):
            raise ValueError("out: give the merged file's name (needed when paths is a list of part files)")
        out = paths
    out = os.fspath(out)
    paths = _resolve_paths(paths)
    real_out = os.path.realpath(out)
    for path in paths:
        if os.path.realpath(path) == real_out:
            raise ValueError(f"out={out!r} is one of the parts; merge into another file")
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise ValueError(f"out={out!r}: the directory {directory!r} does not exist")
    if os.path.isdir(out):
        raise ValueError(f"out={out!r} is a directory; give a file name such as 'sweep.h5'")
    if os.path.exists(out):
        if not overwrite:
            raise SweepFileError(f"out={out!r} exists; pass overwrite=True (CLI: --overwrite) to replace it, or "
                                 "choose another file")
        if not _writable(out):
            raise SweepFileError(f"out={out!r} is read-only: not replaced, even with overwrite=True")
    with PartSet.open(paths, complete=True) as parts:
        header = parts.header
        layout = header.layout
        leaves = header.leaves
        _remove_stale_partials(out)
        store = SweepStore._create(
            out, header.params, leaves, header.fingerprint, header.per_point, fp.canonical(header.config),
            int(layout["n_points"]), int(layout["chunk_size"]), header.ts, publish=False,
        )
        try:
            digests = np.zeros((parts.n_chunks, len(leaves)), dtype="<u8")
            for (f, path, part_header), done in zip(parts.files, parts.done):
                _copy_chunks(path, part_header, np.nonzero(done)[0], store, digests)
            _pwrite_all(store._fd, digests.tobytes(), store._digest_offset)
            _pwrite_all(store._fd, b"\x01" * parts.n_chunks, store._done_offset)
            store._flush()
            SweepStore._publish(store.path, out, replace=os.path.exists(out))
        except BaseException:
            partial = store.path
            store.close()
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise
        store.close()
    return out


def _copy_chunks(path: str, header, chunks, store: SweepStore, digests: np.ndarray) -> None:
    """Copy the stored bytes of ``chunks`` from part file ``path`` into ``store`` at the same rows, checking each
    chunk's checksum (the bytes are the little-endian rows that the part's checksum covers)."""
    layout = header.layout
    stored = np.frombuffer(_pread_file(path, int(layout["chunk_digest_offset"]),
                                       int(layout["n_chunks"]) * len(layout["leaves"]) * 8), dtype="<u8")
    stored = stored.reshape(int(layout["n_chunks"]), len(layout["leaves"]))
    fd = os.open(path, os.O_RDONLY)
    try:
        for k in chunks:
            start, stop = _leaf_rows(header, int(k))
            for i, (item, leaf, offset) in enumerate(zip(layout["leaves"], store.leaves, store._offsets)):
                row_bytes = leaf.row_bytes
                size = (stop - start) * row_bytes
                data = _pread_all(fd, size, item["offset"] + start * row_bytes) if size else b""
                if _digest64(data) != int(stored[k, i]):
                    raise SweepFileError(
                        f"{path!r} is damaged: dataset {leaf.dataset!r}, chunk {int(k)} (points {start}-{stop - 1}) "
                        "does not match its checksum; nothing was merged. Move the part aside and rerun it to "
                        "recompute it, then merge again"
                    )
                if size:
                    _pwrite_all(store._fd, data, offset + start * row_bytes)
                digests[k, i] = stored[k, i]
    finally:
        os.close(fd)


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    parts, got = [], 0
    while got < size:
        data = os.pread(fd, size - got, offset + got)
        if not data:
            raise SweepFileError(f"unexpected end of file at byte {offset + got} (the file is truncated)")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _pread_file(path: str, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return _pread_all(fd, size, offset)
    finally:
        os.close(fd)


def _resolve_paths(paths) -> list[str]:
    """A list of part files as given, or the parts of one whole-sweep path."""
    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        path = os.fspath(paths)
        found = find_parts(path)
        if not found:
            raise ValueError(f"no part files {os.path.splitext(path)[0]}.process<K>of<N>"
                             f"{os.path.splitext(path)[1] or '.h5'} found")
        splits = {PART_NAME.search(os.path.splitext(p)[0]).group(2) for p in found}
        if len(splits) > 1:
            raise SweepFileError(f"the parts of {path!r} come from splits into {' and '.join(sorted(splits))} parts "
                                 f"({', '.join(map(repr, found))}); give the files to merge explicitly")
        return found
    return [os.fspath(p) for p in paths]


# ------------------------------------------------------------------------------------------------ reading


def load_sweep(path, *, names=None, points=None) -> SweepResult:
    """Read a sweep file — or the part files of one sweep, as one result — into a :class:`~qllg_jax.SweepResult`.

    Args:
        path: a sweep file written by :func:`~qllg_jax.sweep` / :func:`~qllg_jax.sweep_solve` / ``qllg sweep``;
            or a list of part files of one sweep (``sweep.process<K>of<N>.h5``); or the whole sweep's name
            ``sweep.h5`` when only its part files exist (they are found and read together, without merging).
        names: output datasets to read, e.g. ``["outputs/observables/bloch"]`` (default: all). ``success``,
            ``failure`` and ``diagnostics`` are always read.
        points: which points to read: a slice or an integer index array (default: all P). Only the chunks
            that hold them are read and verified.

    ``result.metadata`` holds ``path`` (a list for a part set), ``config`` (dict), ``fingerprint`` (dict),
    ``versions`` (dict), ``complete`` (every chunk done), ``created``, ``chunk_size``, ``part`` ((K, N) for one
    part file) and ``done`` (bool per returned point; the other points hold
    :func:`~qllg_jax.sweeps.result.missing_value`: NaN, −1, False).

    Raises:
        ValueError: no such file, not an HDF5 / sweep file; :class:`SweepFileError` when a checksum fails
            (naming the dataset and chunk), or when part files do not belong to one sweep or hold a chunk twice.
    """
    if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__"):
        path = os.fspath(path)
        if os.path.exists(path) or not find_parts(path):
            return load_sweep_file(path, names=names, points=points)
        paths = _resolve_paths(path)
    else:
        paths = [os.fspath(p) for p in path]
    with PartSet.open(paths, complete=False) as parts:
        return read_sweep(parts.files, names=names, points=points)


def sweep_status(path) -> dict:
    """Progress of a sweep: the file ``path`` and/or its part files.

    Returns {"n_points", "n_chunks", "chunk_size", "merged": bool (``path`` exists), "files": [{"path", "part"
    ((K, N) or None), "chunks_done", "chunks" (of this file's share), "points_done", "failed": {point: reason}}]}.
    Only flags and the small per-point outputs (success, failure) are read, checked against their checksums.
    """
    path = os.fspath(path)
    paths = ([path] if os.path.exists(path) else []) + find_parts(path)
    if not paths:
        raise ValueError(f"{path!r}: no such sweep file, and no part files "
                         f"{os.path.splitext(path)[0]}.process<K>of<N>{os.path.splitext(path)[1] or '.h5'}")
    from .store import _read_chunks

    files = []
    info = None
    for name in paths:
        f, header = open_sweep_file(name)
        try:
            layout = header.layout
            n_chunks, chunk_size, n_points = int(layout["n_chunks"]), int(layout["chunk_size"]), int(layout["n_points"])
            info = info or {"n_points": n_points, "n_chunks": n_chunks, "chunk_size": chunk_size,
                            "merged": os.path.exists(path)}
            done = _check_flags(f["chunk_done"][()], name)
            part = part_of(header)
            mine = np.arange(n_chunks) if part is None else np.arange(part[0], n_chunks, part[1])
            small = [i for i, leaf in enumerate(header.leaves) if leaf.path in (("success",), ("failure",))]
            stored = _read_chunks(f, name, header, np.nonzero(done)[0], small)
            failed = {}
            success_i, failure_i = small if header.leaves[small[0]].path == ("success",) else small[::-1]
            for k, rows in sorted(stored.items()):
                for j in np.nonzero(~rows[success_i].astype(bool))[0]:
                    failed[k * chunk_size + int(j)] = int(rows[failure_i][j])
            points_done = sum(min(chunk_size, n_points - k * chunk_size) for k in stored)
            files.append({"path": name, "part": part, "chunks_done": int(done[mine].sum()), "chunks": int(len(mine)),
                          "points_done": int(points_done), "points": int(sum(min(chunk_size, n_points - k * chunk_size)
                                                                              for k in mine)),
                          "failed": _reasons(failed)})
        finally:
            f.close()
    return {**info, "files": files}


def _reasons(codes: dict) -> dict:
    return {i: failure_reason(code) for i, code in codes.items()}


__all__ = ["FORMAT", "PARTIAL", "PartSet", "check_part", "find_parts", "load_sweep", "merge_sweeps", "parse_part",
           "sweep_status"]
