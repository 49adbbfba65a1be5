"""JAX's persistent compilation cache: where it goes, that it is written, and that a second process reuses it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qllg_jax import _compilation_cache as cc

PROBE = r"""
import collections, json, sys
import jax
events = collections.Counter()
jax.monitoring.register_event_listener(lambda name, **kw: events.update([name]))
from qllg_jax._compilation_cache import enable_compilation_cache
path = enable_compilation_cache()
import jax.numpy as jnp
jax.jit(lambda x: jnp.sin(x) @ x.T + 17.0)(jnp.ones((3, 3))).block_until_ready()
print(json.dumps({"path": str(path), "hits": events["/jax/compilation_cache/cache_hits"],
                  "misses": events["/jax/compilation_cache/cache_misses"]}))
"""


def _probe(env):
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_from_the_cache(tmp_path, subprocess_env):
    env = dict(subprocess_env, QLLG_COMPILATION_CACHE=str(tmp_path / "cache"))
    first = _probe(env)
    assert first["path"] == str((tmp_path / "cache").resolve()) and first["misses"] >= 1
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) >= first["misses"]  # every miss was compiled and written
    second = _probe(env)
    assert second["misses"] == 0 and second["hits"] == first["misses"]
    off = _probe(dict(env, QLLG_COMPILATION_CACHE="off"))
    assert off["path"] == "None" and off["hits"] == off["misses"] == 0


def test_cache_directory_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(cc.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cc.cache_dir_setting() == tmp_path / "xdg" / "qllg-jax" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cc.default_cache_dir() == Path.home() / ".cache" / "qllg-jax" / "jax"
    monkeypatch.setenv(cc.ENV_VAR, "OFF")
    assert cc.cache_dir_setting() is None
    monkeypatch.setenv(cc.ENV_VAR, str(tmp_path / "mine"))
    assert cc.cache_dir_setting() == tmp_path / "mine"


def test_unwritable_directory_never_fails_by_default(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.delenv(cc.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # <file>/qllg-jax/jax cannot be created
    assert cc.enable_compilation_cache() is None  # the default location: silently off
    with pytest.raises(ValueError, match="path: the compilation cache directory .* is not writable"):
        cc.enable_compilation_cache(blocker / "cache")  # an explicit path: a clear error
