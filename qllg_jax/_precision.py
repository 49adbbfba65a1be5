"""Enable float64 in JAX whenever ``qllg_jax`` is imported — without importing JAX for it.

q-LLG conserves the whole spectrum of ϱ; checking that to 1e-9 needs double precision. If JAX is already imported,
``jax_enable_x64`` is switched on at once; otherwise a one-shot import hook switches it on the moment JAX is first
imported (by ``qllg_jax`` itself or by you), so ``import qllg_jax`` alone costs no JAX import (``qllg --help``)
and leaves no environment variable behind for child processes. Users who want float32 (e.g. on a consumer GPU) call
``jax.config.update("jax_enable_x64", False)`` after importing JAX.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def _enable(jax_module) -> None:
    jax_module.config.update("jax_enable_x64", True)


class _LoaderThenFloat64(importlib.abc.Loader):
    """Runs JAX's own loader, then enables float64, then hands the module its own loader back."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            self.loader.exec_module(module)
        finally:
            module.__loader__ = self.loader
            if module.__spec__ is not None:
                module.__spec__.loader = self.loader
        _enable(module)

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: JAX's loader answers
        return getattr(self.loader, name)


class _Float64WhenJaxIsImported(importlib.abc.MetaPathFinder):
    """A meta-path finder that answers only the first ``import jax`` (then removes itself)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "jax":
            return None
        remove_hook()
        spec = importlib.util.find_spec("jax")
        if spec is not None and spec.loader is not None:
            spec.loader = _LoaderThenFloat64(spec.loader)
        return spec


_HOOK = _Float64WhenJaxIsImported()


def remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


if sys.modules.get("jax") is not None and hasattr(sys.modules["jax"], "config"):
    _enable(sys.modules["jax"])
elif _HOOK not in sys.meta_path:
    sys.meta_path.insert(0, _HOOK)
