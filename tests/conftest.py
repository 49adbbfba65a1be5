import ctypes
import ctypes.util
import gc
import importlib.util
import mmap
import os
from pathlib import Path


def _jaxlib_knows(flag: str) -> bool:
    """Whether this jaxlib registers the XLA flag ``flag`` (an unknown flag in XLA_FLAGS aborts the process, so a
    flag that a newer or older jaxlib lacks must not be set): its name is a string in one of jaxlib's libraries."""
    spec = importlib.util.find_spec("jaxlib")
    if spec is None or spec.origin is None:
        return False
    for library in Path(spec.origin).parent.glob("*.so"):
        try:
            with open(library, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                if data.find(flag.encode()) >= 0:
                    return True
        except (OSError, ValueError):
            continue
    return False


# The suite is compile-bound (hundreds of small programs, each run a few times): XLA's cheaper CPU backend
# optimisation compiles ≈ 20 % faster (cold suite on 2 cores: 335 → 269 s), and XLA's older elemental CPU emitters
# (xla_cpu_use_fusion_emitters=false, where this jaxlib has the flag) compile a solve ≈ 35 % faster again (one
# frame + one dense 4×4 solve: 12.4 → 7.7 s CPU, 2026-12-02). Both change results only at round-off (and, through
# adaptive step acceptance, at ≈ rtol) — every test compares against an independent value at its own tolerance.
# Set before JAX starts its backend; subprocesses of the tests inherit it. QLLG_TEST_XLA_FLAGS="" runs the suite
# at XLA's default optimisation and emitters.
_LEVEL_0 = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
_ELEMENTAL = "--xla_cpu_use_fusion_emitters=false"
TEST_XLA_FLAGS = os.environ.get("QLLG_TEST_XLA_FLAGS")
if TEST_XLA_FLAGS is None:
    TEST_XLA_FLAGS = f"{_LEVEL_0} {_ELEMENTAL}" if _jaxlib_knows(_ELEMENTAL[2:].partition("=")[0]) else _LEVEL_0
if TEST_XLA_FLAGS and TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import jax  # noqa: E402
import jax.monitoring  # noqa: E402
import pytest  # noqa: E402

import qllg_jax  # noqa: F401, E402  (enables float64)
from qllg_jax._compilation_cache import cache_dir_setting, enable_compilation_cache  # noqa: E402


def pytest_configure(config):
    """One persistent compilation cache for the whole test run, shared by the pytest-xdist workers and with later
    runs: the user cache (``QLLG_COMPILATION_CACHE`` / ``XDG_CACHE_HOME`` respected; ``off`` disables it), or, where
    that cannot be written, a folder under pytest's per-user temp root. Never fails: without a writable folder the
    tests run uncached."""
    if cache_dir_setting() is None:  # QLLG_COMPILATION_CACHE=off
        return
    if enable_compilation_cache() is not None:
        return
    try:
        root = Path(config._tmp_path_factory.getbasetemp()).parent  # shared by the workers of one run
        enable_compilation_cache(root / "qllg-jax-compilation-cache")
    except (ValueError, OSError, AttributeError):
        pass


# One event per program JAX builds: lowering to MLIR precedes every compilation, also one that the persistent
# compilation cache then answers (backend_compile_duration is not recorded for those: a warm cache would hide
# recompilations from a count of backend compiles).
LOWERING = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_compile_logs: list[list[float]] = []  # one list per running `compiles` fixture


def _record_compile(event, duration, **kwargs):
    if event == LOWERING:
        for log in _compile_logs:
            log.append(duration)


# registered once per process: jax.monitoring has no public unregister before JAX 0.8.1 (the floor is 0.6.1)
jax.monitoring.register_event_duration_secs_listener(_record_compile)


@pytest.fixture
def compiles():
    """A list that gets one entry (the lowering's duration in s) per program compiled — or fetched from the
    persistent compilation cache — while the test runs; clear it before the call whose compilations you count."""
    log: list[float] = []
    _compile_logs.append(log)
    yield log
    _compile_logs.remove(log)


def _glibc_malloc_trim():
    """glibc's ``malloc_trim`` (returns freed heap memory to the OS), or None where there is no glibc."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _glibc_malloc_trim()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's in-memory caches of traced and compiled programs after each test module: a worker's memory then
    holds one module's programs, not the whole suite's (≈ 5 GB single-process without this). Programs shared by
    later modules come back from the persistent compilation cache. QLLG_TEST_KEEP_CACHES=1 keeps them. glibc keeps
    freed memory in its heap, so the worker's RSS would still only grow: ``malloc_trim`` hands it back (six 4×4
    solves: clear + gc 410 → 404 MB, then trim → 294 MB)."""
    yield
    if not os.environ.get("QLLG_TEST_KEEP_CACHES"):
        jax.clear_caches()
        gc.collect()
        if _malloc_trim is not None:
            _malloc_trim(0)


@pytest.fixture
def key():
    return jax.random.PRNGKey(20241231)


@pytest.fixture
def subprocess_env(tmp_path):
    """Environment for a subprocess that imports this checkout's qllg_jax (not an installed copy)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env
