"""Files the CLI writes: columns as CSV, metadata as strict JSON."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping

import numpy as np


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
