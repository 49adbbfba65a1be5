"""Every ```python block of README.md and docs/*.md runs, and every ```toml config block of the README
builds a system, so documented code cannot rot; `.ci/run` runs the README's test command.

Blocks of one file run in order in one namespace (later blocks may use earlier names), in a temporary
working directory. A block fenced as ```python no-test is skipped on purpose (use sparingly); a block fenced as
```python file=NAME (or ```bash file=NAME) is a script that another test runs as its own processes (e.g.
tests/test_sweep_parts.py runs the README's jax.distributed script as two processes); blocks that
import an optional package that is not installed (e.g. qutip) are skipped with that reason.

Printed values are checked against the text: a ``print(...)`` on one line whose comment starts with ``# ->``
states what it prints, ``print(x)  # -> EXPECTED`` or ``# -> EXPECTED; explanation``. The printed text and
EXPECTED are compared token by token (numbers, words, single punctuation marks; whitespace ignored; "−" reads as
"-"). A number matches to the precision it is written with: ``1.7276`` stands for [1.72755, 1.72765]; a number
followed by ``…`` (or ``...``) is truncated, ``0.455…`` stands for [0.455, 0.456); ``~1e-8`` states an order of
magnitude, [1e-9, 1e-7). A lone ``…`` skips printed tokens up to the next expected one (or the rest of the line).
Words and other tokens must be equal. Every print of such a line (a loop prints several times) is checked.
"""

import builtins
import importlib.util
import io
import math
import re
import sys
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


EXPECT = re.compile(r"^[ \t]*(?!#).*\bprint\(.*#\s*->\s*(?P<expected>.*?)\s*$")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"(?P<approx>~)?(?P<number>{_NUMBER})(?P<cut>…|\.\.\.)?(?![\w.])|(?P<skip>…|\.\.\.)|\w+|\S")


def expected_outputs(code: str) -> dict[int, str]:
    """{line number within the block (1-based): EXPECTED} for every ``print(...)  # -> EXPECTED[; note]`` line."""
    found = {}
    for k, text in enumerate(code.splitlines(), start=1):
        match = EXPECT.match(text)
        if match:
            found[k] = match.group("expected").split(";")[0].strip()
    return found


def _tokens(text: str) -> list[re.Match]:
    return list(_TOKEN.finditer(text.replace("−", "-")))


def _number_matches(expected: re.Match, value: float) -> bool:
    """A printed number against a written one, at the precision it is written with."""
    written = expected.group("number")
    x = float(written)
    mantissa, _, exponent = written.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    unit = 10.0 ** (int(exponent or 0) - decimals)  # one unit of the last written digit
    if expected.group("approx"):  # an order of magnitude
        return x != 0 and abs(math.log10(abs(value) / abs(x))) < 1 if value else False
    if expected.group("cut"):  # truncated: the printed number starts with these digits
        return x == 0 and abs(value) < unit or (x != 0 and math.copysign(1, value) == math.copysign(1, x)
                                                and abs(x) <= abs(value) < abs(x) + unit)
    return abs(value - x) <= 0.5 * unit * (1 + 1e-9)


def output_matches(printed: str, expected: str) -> bool:
    """Whether ``printed`` reads as ``expected`` (rules: module docstring)."""
    got, want = _tokens(printed), _tokens(expected)

    def match(i: int, j: int) -> bool:
        if j == len(want):
            return i == len(got)
        w = want[j]
        if w.group("skip"):
            return any(match(k, j + 1) for k in range(i, len(got) + 1))
        if i == len(got):
            return False
        g = got[i]
        if w.group("number") is not None:
            if g.group("number") is None or g.group("cut") or g.group("approx"):
                return False
            return _number_matches(w, float(g.group("number"))) and match(i + 1, j + 1)
        return g.group(0) == w.group(0) and match(i + 1, j + 1)

    return match(0, 0)


@pytest.mark.parametrize("printed, expected, ok", [
    ("0.057883817982", "0.057883817982", True),
    ("0.057883817983", "0.057883817982", False),
    ("1.72764", "1.7276", True),
    ("1.72766", "1.7276", False),
    ("(4, 4) 8 (8, 8)", "(4, 4) 8 (8, 8)", True),
    ("(4, 4) 8 (8, 8)", "(4, 4) 8", False),
    ("(4, 4) 8", "(4, 4) 8 (8, 8)", False),
    ("frame (41, 4, 4)", "frame (41, 4, 4)", True),
    ("dense (41, 4, 4)", "frame (41, 4, 4)", False),
    ("-3.3749321 True 2 22", "−3.37493… True 2 22", True),
    ("-3.3748321 True 2 22", "−3.37493… True 2 22", False),
    ("max_steps reached at t = 0.455433 of [0, 10]; hint", "max_steps reached at t = 0.455… of [0, 10] …", True),
    ("max_steps reached at t = 0.0455433 of [0, 10]", "max_steps reached at t = 0.455… of [0, 10] …", False),
    ("['purity_drift', 'spectrum_drift']", "['purity_drift', …]", True),
    ("['trace_error', 'spectrum_drift']", "['purity_drift', …]", False),
    ("3.2e-10", "~1e-8", False),
    ("3.2e-08", "~1e-8", True),
    ("2.0", "2.0", True),
    ("2", "2.0", True),
])
def test_output_checker(printed, expected, ok):
    assert output_matches(printed, expected) is ok


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
        filename = f"{path.name}:{line}"
        printed: dict[int, list[str]] = {}

        def recording_print(*args, sep=" ", end="\n", file=None, flush=False, _filename=filename, _printed=printed):
            buffer = io.StringIO()
            builtins.print(*args, sep=sep, end=end, file=buffer)
            frame = sys._getframe(1)
            if frame.f_code.co_filename == _filename and file is None:
                _printed.setdefault(frame.f_lineno, []).append(buffer.getvalue())
            builtins.print(buffer.getvalue(), end="", file=file, flush=flush)

        namespace["print"] = recording_print
        start = time.perf_counter()
        try:
            exec(compile(code, filename, "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{path.relative_to(ROOT)}, python block at line {line} failed: {error!r}") from error
        elapsed = time.perf_counter() - start
        for k, expected in expected_outputs(code).items():
            outputs = printed.get(k)
            where = f"{path.relative_to(ROOT)}, line {line + k}"
            assert outputs, f"{where}: the print documented as printing {expected!r} did not run"
            for text in outputs:
                assert output_matches(" ".join(text.split()), expected), (
                    f"{where} prints {text.strip()!r}, the text says {expected!r}")
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
