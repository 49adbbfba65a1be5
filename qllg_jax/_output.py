"""Files the CLI writes: columns as CSV, metadata as strict JSON, and the rule that protects files it did not write.

Protection: ``qllg run`` and ``qllg reproduce`` replace an existing output file only when the JSON file written with
it (``run.json``, ``figN.json``) carries the marker ``"written_by": "qllg run"`` / ``"qllg reproduce"``, i.e. when
qllg wrote it; any other existing file is refused (before any compute) unless ``--overwrite``.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

MARKER = "written_by"


def to_json(x):
    """``x`` with arrays/NumPy scalars as lists/floats and NaN/±inf as None (strict, portable JSON)."""
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    if isinstance(x, (np.generic, np.ndarray)) or hasattr(x, "tolist"):
        return to_json(np.asarray(x).tolist())
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def write_json(path, data) -> None:
    """Strict JSON (non-finite numbers, e.g. an undefined diagnostic, are written as ``null``)."""
    with open(path, "w") as f:
        json.dump(to_json(data), f, indent=2, allow_nan=False)


def write_csv(path, columns: Mapping[str, np.ndarray]) -> None:
    """One header row with the column names, then one row per index of the equally long 1-D columns."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns))
        writer.writerows(np.column_stack([np.asarray(c) for c in columns.values()]).tolist())


def written_by(path: Path) -> str | None:
    """The ``written_by`` marker of a JSON file, or None (missing, unreadable, not ours)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data.get(MARKER) if isinstance(data, dict) else None


def prepare_output_dir(directory, groups: Mapping[str, Sequence[str]], writer: str, overwrite: bool,
                       option: str = "--out") -> list[Path]:
    """Create ``directory`` and check that the files of ``groups`` may be written there, before any compute.

    ``groups`` maps a JSON file name to the files written with it (itself included); existing files of a group are
    replaced only if that JSON file has ``"written_by": writer``, or with ``overwrite``. Returns the existing files
    that will be replaced. Raises ValueError naming ``option`` for an unusable directory or a foreign file.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{option}: {str(directory)!r} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".qllg-write-test-"):
            pass
    except OSError as error:
        raise ValueError(f"{option}: cannot write to {str(directory)!r} ({error.strerror or error})") from None
    replaced, foreign = [], []
    for marker_file, files in groups.items():
        existing = [directory / name for name in files if (directory / name).exists()]
        if not existing:
            continue
        ours = written_by(directory / marker_file) == writer
        (replaced if ours or overwrite else foreign).extend(existing)
    for path in replaced + foreign:
        if path.is_dir():
            raise ValueError(f"{option}: {str(path)!r} is a directory, where a file would be written")
        if not os.access(path, os.W_OK):
            raise ValueError(f"{option}: {str(path)!r} exists and is not writable")
    if foreign:
        names = ", ".join(p.name for p in foreign)
        raise ValueError(f"{option}: {str(directory)!r} already holds {names}, not written by {writer}; "
                         "choose another directory or pass --overwrite to replace them")
    return replaced
