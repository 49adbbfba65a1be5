"""A pytest plugin that measures how far every passing numerical comparison of the suite is from its tolerance.

Not a test: a tool for the rule "no tolerance within a factor 10 of the measured error at both XLA optimisation
levels". For every comparison that passes it records the *margin* = tolerance / error (worst element):
``numpy.testing.assert_allclose``, ``numpy.allclose``/``isclose``, ``jax.numpy.allclose``/``isclose``
(tolerance atol + rtol·|desired|), ``pytest.approx`` of scalars, and plain ``assert a <= b`` / ``assert a < b``
between two numbers (margin b/a, read from pytest's assertion explanation). A margin below 1 is a comparison
that reported "not close" (e.g. ``assert not np.allclose(...)``) and is listed separately. Run, e.g.::

    QLLG_TOLERANCE_AUDIT=margins.json PYTHONPATH=tests python -m pytest -q -p no:xdist -p tolerance_audit \\
        -o enable_assertion_pass_hook=true -p no:cacheprovider

(``enable_assertion_pass_hook`` makes pytest re-rewrite the test modules' asserts: start from a checkout without
``tests/__pycache__`` or with ``PYTHONDONTWRITEBYTECODE=1`` and a fresh copy, so cached rewrites are not reused.)
The JSON maps "nodeid | file:line" to the smallest margin seen there; ``python tests/tolerance_audit.py a.json
[b.json]`` prints the sites below a margin of 10 (in either file).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
_margins: dict[str, float] = {}
_current = {"nodeid": "?"}


def _caller_site() -> str | None:
    """The test-file line that called the wrapped comparison (None when the library itself called it)."""
    frame = sys._getframe(3)  # _caller_site <- _record <- wrapper <- caller
    while "_pytest" in frame.f_code.co_filename and frame.f_back is not None:  # approx compares element-wise
        frame = frame.f_back
    name = frame.f_code.co_filename
    if name.startswith(_TESTS) and os.path.basename(name).startswith(("test_", "conftest")):
        return f"{_current['nodeid']} | {os.path.basename(name)}:{frame.f_lineno}"
    return None


def _record(margin: float, site: str | None = None) -> None:
    site = site or _caller_site()
    if site is not None and not math.isnan(margin):
        _margins[site] = min(_margins.get(site, math.inf), margin)


def _closeness_margin(actual, desired, rtol, atol) -> float:
    import numpy as np

    try:
        a = np.asarray(actual, dtype=complex)
        d = np.asarray(desired, dtype=complex)
        a, d = np.broadcast_arrays(a, d)
    except (TypeError, ValueError):
        return math.nan
    finite = np.isfinite(a) & np.isfinite(d)
    if not finite.any():
        return math.nan
    err = np.abs(a - d)[finite]
    tol = (atol + rtol * np.abs(d))[finite]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err > 0, tol / err, np.inf)
    return float(np.min(ratio))


def _wrap_close(module, name, default_rtol, default_atol):
    original = getattr(module, name)

    def wrapper(a, b, rtol=default_rtol, atol=default_atol, *args, **kwargs):
        result = original(a, b, rtol, atol, *args, **kwargs)
        _record(_closeness_margin(a, b, rtol, atol))
        return result

    wrapper.__wrapped__ = original
    setattr(module, name, wrapper)


def _wrap_assert_allclose():
    import numpy.testing

    original = numpy.testing.assert_allclose

    def assert_allclose(actual, desired, rtol=1e-7, atol=0, *args, **kwargs):
        original(actual, desired, rtol, atol, *args, **kwargs)
        _record(_closeness_margin(actual, desired, rtol, atol))

    numpy.testing.assert_allclose = assert_allclose


def _wrap_approx():
    import _pytest.python_api as api

    original = api.ApproxScalar.__eq__

    def __eq__(self, actual):
        result = original(self, actual)
        try:
            tolerance = self.tolerance
            err = abs(actual - self.expected)
            _record(tolerance / err if err else math.inf)
        except Exception:  # noqa: BLE001  (non-numeric approx)
            pass
        return result

    api.ApproxScalar.__eq__ = __eq__


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = re.compile(rf"^assert (?:np\.float64\()?({_NUMBER})\)? (<=|<) (?:np\.float64\()?({_NUMBER})\)?$")


def pytest_configure(config):
    import jax.numpy as jnp
    import numpy as np

    _wrap_assert_allclose()
    for module in (np, jnp):
        _wrap_close(module, "allclose", 1e-5, 1e-8)
        _wrap_close(module, "isclose", 1e-5, 1e-8)
    _wrap_approx()


def pytest_runtest_setup(item):
    _current["nodeid"] = item.nodeid


def pytest_assertion_pass(item, lineno, orig, expl):
    first = expl.splitlines()[0].strip() if expl else ""
    match = _COMPARISON.match(first)
    if match:
        a, b = abs(float(match.group(1))), abs(float(match.group(3)))
        if float(match.group(1)) >= 0 and b > 0:
            _record(b / a if a else math.inf, f"{item.nodeid} | {Path(str(item.fspath)).name}:{lineno}")


def pytest_sessionfinish(session):
    path = os.environ.get("QLLG_TOLERANCE_AUDIT")
    if path:
        Path(path).write_text(json.dumps({k: (v if math.isfinite(v) else None) for k, v in sorted(_margins.items())},
                                         indent=1))


def main(paths: list[str]) -> None:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    sites = sorted(set().union(*runs))
    rows = []
    for site in sites:
        values = [run.get(site) for run in runs]
        finite = [v for v in values if v is not None]
        worst = min(finite) if finite else math.inf
        if worst < 10:
            rows.append((worst, site, values))
    for worst, site, values in sorted(rows, key=lambda r: (r[0] >= 1, r[0])):
        shown = "  ".join("  n/a   " if v is None else f"{v:8.3g}" for v in values)
        print(f"{shown}  {'NOT-CLOSE ' if worst < 1 else ''}{site}")


if __name__ == "__main__":
    main(sys.argv[1:])
