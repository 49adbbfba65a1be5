"""Every ```python block of README.md and docs/*.md runs, and every ```toml config block of the README
builds a system, so documented code cannot rot; `.ci/run` runs the README's test command.

Blocks of one file run in order in one namespace (later blocks may use earlier names), in a temporary
working directory. A block fenced as ```python no-test is skipped on purpose (use sparingly); a block fenced as
```python file=NAME is a script that another test runs as its own processes (e.g. tests/test_sweep_parts.py runs
the README's jax.distributed script as two processes); blocks that import an optional package that is not
installed (e.g. qutip) are skipped with that reason.
"""

import importlib.util
import re
import time
import warnings
from pathlib import Path

import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
OPTIONAL = ("qutip",)
SLOW_BLOCK_S = 15.0
"""A block running longer than this is reported with a warning (docs examples must stay small: CI budget)."""


def python_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, fence info after ``python``, code) for every ```python block of a markdown text."""
    return [(text[: m.start()].count("\n") + 1, m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def test_block_extraction():
    text = "x\n```python\na = 1\n```\n```python no-test\nraise SystemExit\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(2, "", "a = 1\n"), (5, "no-test", "raise SystemExit\n")]


def test_there_are_documented_examples():
    assert sum(len(python_blocks(p.read_text())) for p in DOCS if p.exists()) >= 3


@pytest.mark.parametrize("path", [p for p in DOCS if p.exists()], ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    ran = 0
    for line, info, code in python_blocks(path.read_text()):
        if "no-test" in info.split() or any(word.startswith("file=") for word in info.split()):
            continue
        missing = [m for m in OPTIONAL if re.search(rf"^\s*(import|from)\s+{m}\b", code, re.M) and not importlib.util.find_spec(m)]
        if missing:
            continue
        start = time.perf_counter()
        try:
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{path.relative_to(ROOT)}, python block at line {line} failed: {error!r}") from error
        elapsed = time.perf_counter() - start
        if elapsed > SLOW_BLOCK_S:
            warnings.warn(f"{path.relative_to(ROOT)}, python block at line {line} took {elapsed:.0f} s; shrink it", stacklevel=1)
        ran += 1
    if not ran and python_blocks(path.read_text()):
        pytest.skip(f"every python block of {path.name} is no-test or needs a missing optional package")



TOML_FENCE = re.compile(r"^```toml\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def test_readme_toml_configs_build():
    """Every config block of the README builds its system (a [sweep] block: every point), a short solve runs."""
    from qllg_jax.config import build_system, tomllib
    from qllg_jax.config.sweep import build_sweep

    blocks = TOML_FENCE.findall((ROOT / "README.md").read_text())
    assert len(blocks) >= 2
    for text in blocks:
        table = tomllib.loads(text)
        if "sweep" in table:
            plan = build_sweep(table)
            assert plan.n_points > 1 and plan.ts.ndim == 1
        else:
            system = build_system(table)
            result = system.solve()
            assert bool(result.success) and set(result.observables) == set(table["output"]["observables"])


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^(.*python -m pytest.*)$", (ROOT / ".ci" / "run").read_text(), re.M).group(1).strip()
    assert f"```bash\n{command}\n```" in readme
