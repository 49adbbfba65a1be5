"""Start-up pays only for what is used: ``import qllg_jax`` and ``qllg --help`` import no JAX, no plotting, no HDF5,
no progress bars, no QuTiP; public names import their module on first use and keep the eager package's names;
importing everything compiles nothing and starts no JAX backend; float64 is on however JAX and qllg_jax are
imported. Each check runs in a fresh interpreter (a subprocess) so that the suite's own imports cannot hide one."""

import json
import subprocess
import sys
import textwrap

import pytest

import qllg_jax as q

HEAVY = ("jax", "jaxlib", "diffrax", "equinox", "lineax", "optimistix", "optax", "scipy", "matplotlib", "h5py",
         "tqdm", "qutip")


def _python(code: str, env) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loaded(modules) -> str:
    return f"sorted({{m.split('.')[0] for m in sys.modules}} & set({list(modules)!r}))"


def test_import_qllg_jax_imports_no_heavy_package(subprocess_env):
    report = _python(f"""
        import json, sys
        import qllg_jax
        print(json.dumps({{"loaded": {_loaded(HEAVY)}, "version": qllg_jax.__version__}}))
    """, subprocess_env)
    assert report == {"loaded": [], "version": q.__version__}


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["sweep", "--help"], ["reproduce", "--help"],
                                  ["config", "--help"]])
def test_qllg_help_imports_no_numerical_package(argv, subprocess_env):
    """`qllg --help` (and each subcommand's) builds the parser from the subcommand modules alone: no numpy either."""
    report = _python(f"""
        import contextlib, io, json, sys
        from qllg_jax.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as text:
            try:
                main({argv!r})
            except SystemExit as stop:
                code = stop.code
        print(json.dumps({{"loaded": {_loaded(HEAVY + ("numpy",))}, "code": code, "usage": "usage: qllg" in text.getvalue()}}))
    """, subprocess_env)
    assert report == {"loaded": [], "code": 0, "usage": True}


@pytest.mark.parametrize("order", ["qllg_jax first", "jax first", "jax.numpy via a submodule"])
def test_float64_is_on_whatever_the_import_order(order, subprocess_env):
    imports = {"qllg_jax first": "import qllg_jax\nimport jax",
               "jax first": "import jax\nimport qllg_jax",
               "jax.numpy via a submodule": "import qllg_jax\nfrom qllg_jax.states import up_down_state\nimport jax"}
    report = _python(f"""
        import json
        {imports[order].replace(chr(10), chr(10) + "        ")}
        import jax.numpy as jnp
        print(json.dumps({{"x64": bool(jax.config.jax_enable_x64), "dtype": str(jnp.ones(1).dtype),
                           "loader_restored": type(jax.__spec__.loader).__module__ != "qllg_jax._precision"}}))
    """, subprocess_env)
    assert report == {"x64": True, "dtype": "float64", "loader_restored": True}


def test_importing_every_public_name_compiles_nothing_and_starts_no_backend(subprocess_env):
    report = _python("""
        import json
        import jax, jax.monitoring
        from jax._src import xla_bridge
        events = []
        jax.monitoring.register_event_duration_secs_listener(lambda event, duration, **kw: events.append(event))
        jax.monitoring.register_event_listener(lambda event, **kw: events.append(event))
        import qllg_jax
        for name in qllg_jax.__all__:
            getattr(qllg_jax, name)
        import qllg_jax.cli.reproduce, qllg_jax.cli.run, qllg_jax.cli.sweep, qllg_jax.paper, qllg_jax.plotting
        print(json.dumps({"events": sorted(set(events)), "backend": xla_bridge.backends_are_initialized()}))
    """, subprocess_env)
    assert report == {"events": [], "backend": False}


def test_public_names_dir_and_star_import():
    """Every name of __all__ resolves (to what its module defines), dir() lists them, `import *` gives them; the
    functions named like their module (solve, ground_state) stay functions after `import qllg_jax.<module>`."""
    import importlib

    namespace = {}
    exec("from qllg_jax import *", namespace)
    assert set(q.__all__) <= set(namespace) and set(q.__all__) <= set(dir(q))
    for name in q.__all__:
        getattr(q, name)
    import qllg_jax.ground_state  # noqa: F401
    import qllg_jax.solve  # noqa: F401

    assert callable(q.solve) and q.solve is importlib.import_module("qllg_jax.solve").solve
    assert callable(q.ground_state) and q.ground_state is importlib.import_module("qllg_jax.ground_state").ground_state
    assert q.methods is importlib.import_module("qllg_jax.methods") and q.Units is importlib.import_module(
        "qllg_jax.units").Units
    assert q.paper is importlib.import_module("qllg_jax.paper")  # submodules are attributes on first use
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        q.no_such_name  # noqa: B018
