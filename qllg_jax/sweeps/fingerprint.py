r"""Physics fingerprints: what a stored sweep computed, compared field by field on resume.

A fingerprint is a dict field → JSON description, e.g. ``{"kappa": {"value": "0.5", ...}, "ts": ..., "H":
{"callable": "mymod.H", "per_point": "…"}}``, plus, for quantities that vary per point, one 64-bit digest per
point (``per_point[field]`` of shape (P,)). Two fingerprints are compared with :func:`differences`, which names
every field that changed (``"kappa differs: stored 0.5, now 0.1"``, ``"H(point) differs at point 3 (J=1.5)"``).

What is exact and what is not:

- arrays (fixed H, ϱ0, κ, ts, operators, parameter points) are hashed by dtype, shape and bytes: exact;
- functions of the point (``sweep_solve``'s H(J), ϱ0(p), κ(k)) are hashed by their *output* at every point,
  evaluated on the host before the sweep starts: exact, whatever the function captures (globals included),
  and it costs one evaluation of the function per point (O(D²) per point for a dense H);
- a driven H (:class:`~qllg_jax.TimeDependent`): its values as above (fixed, or per point), and the code of
  each drive's time function f(t) as its jaxpr (:func:`describe_drive`): a changed pulse shape, carrier or
  captured constant is a changed fingerprint;
- other callables (``run_point``, observables ϱ ↦ array) are identified by their qualified name, a digest
  of their byte code and constants, and the values of the numbers/arrays they capture (closure cells and
  default arguments, recursively through captured functions). Module-level globals they read are not
  covered: a change of a global constant inside ``run_point`` goes unnoticed — put such values in
  ``config=`` (or make them parameters).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import types
from collections.abc import Callable, Mapping

import numpy as np
from .._arrays import device_array

_SHOW = 16
"""Arrays with at most this many entries are shown by value in the description (and in error messages)."""


def hasher():
    return hashlib.blake2b(digest_size=16)


def _array_bytes(value: np.ndarray) -> bytes:
    value = np.ascontiguousarray(value)
    if value.dtype.byteorder == ">":
        value = value.astype(value.dtype.newbyteorder("<"))
    return value.tobytes()


def array_digest(value, h=None) -> str:
    """Digest of an array's dtype, shape and bytes (hex)."""
    value = np.asarray(value)
    h = hasher() if h is None else h
    h.update(f"{value.dtype.str.lstrip('<>=|')}{value.shape}".encode())
    h.update(_array_bytes(value))
    return h.hexdigest()


def _show(value: np.ndarray) -> str:
    if value.ndim == 0:
        return repr(value.item())
    return np.array2string(value, precision=17, separator=", ", threshold=_SHOW)


def describe_array(value) -> dict:
    """{"dtype", "shape", "digest"} and, for at most 16 entries, "value" (a string)."""
    value = np.asarray(value)
    out = {"dtype": value.dtype.str.lstrip("<>=|"), "shape": list(value.shape), "digest": array_digest(value)}
    if value.size <= _SHOW:
        out["value"] = _show(value)
    return out


def describe_tree(value) -> dict:
    """An array, or a pytree of arrays (e.g. a :class:`~qllg_jax.SpinModel`): its structure and leaves."""
    import jax

    if isinstance(value, (np.ndarray, np.generic, int, float, complex, bool)) or hasattr(value, "__array__"):
        return describe_array(value)
    leaves, treedef = jax.tree_util.tree_flatten(value)
    h = hasher()
    h.update(_stable_repr(treedef).encode())
    for leaf in leaves:
        array_digest(np.asarray(leaf), h)
    out = {"type": _qualname(type(value)), "digest": h.hexdigest()}
    if sum(np.size(leaf) for leaf in leaves) <= _SHOW:
        out["value"] = str(jax.tree_util.tree_map(lambda x: _show(np.asarray(x)), value))
    return out


def _stable_repr(obj) -> str:
    """repr without memory addresses (``<function f at 0x7f…>`` → ``<function f>``)."""
    import re

    return re.sub(r" at 0x[0-9a-f]+", "", repr(obj))


def _qualname(obj) -> str:
    module = getattr(obj, "__module__", None) or "?"
    return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', type(obj).__name__))}"


def _update_code(code: types.CodeType, h) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _update_code(const, h)
        elif isinstance(const, frozenset):
            h.update(repr(sorted(map(repr, const))).encode())
        else:
            h.update(repr(const).encode())


def _update_object(obj, h, depth: int) -> None:
    """Feed what identifies ``obj`` (a captured value or a callable) into the hash."""
    if depth > 6:
        h.update(b"<deep>")
        return
    if isinstance(obj, (str, bytes, int, float, complex, bool, type(None))):
        h.update(repr(obj).encode())
    elif isinstance(obj, (np.ndarray, np.generic)) or type(obj).__module__.startswith("jax"):
        try:
            array_digest(np.asarray(obj), h)
        except (TypeError, ValueError):
            h.update(_qualname(type(obj)).encode())
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _update_object(item, h, depth + 1)
    elif isinstance(obj, Mapping):
        for key in sorted(obj, key=repr):
            h.update(repr(key).encode())
            _update_object(obj[key], h, depth + 1)
    elif isinstance(obj, functools.partial):
        _update_object(obj.func, h, depth + 1)
        _update_object(obj.args, h, depth + 1)
        _update_object(obj.keywords, h, depth + 1)
    elif inspect.ismethod(obj):
        _update_object(obj.__func__, h, depth + 1)
        h.update(_qualname(type(obj.__self__)).encode())
    elif isinstance(obj, types.FunctionType):
        h.update(obj.__qualname__.encode())  # not the module: `python sweep.py` (__main__) = `import sweep`
        _update_code(obj.__code__, h)
        for cell in obj.__closure__ or ():
            try:
                _update_object(cell.cell_contents, h, depth + 1)
            except ValueError:  # an empty cell
                h.update(b"<empty>")
        _update_object(obj.__defaults__ or (), h, depth + 1)
        _update_object(obj.__kwdefaults__ or {}, h, depth + 1)
    elif hasattr(obj, "__wrapped__"):  # jax.jit, functools.wraps
        _update_object(obj.__wrapped__, h, depth + 1)
    else:  # another object (e.g. an equinox Module): its type and array leaves
        import jax

        h.update(_qualname(type(obj)).encode())
        leaves, treedef = jax.tree_util.tree_flatten(obj)
        if leaves != [obj]:
            h.update(_stable_repr(treedef).encode())
            _update_object(leaves, h, depth + 1)


def describe_callable(fn: Callable) -> dict:
    """{"callable": qualified name, "code": digest of byte code, constants and captured values}.

    The module is left out (a script run as ``__main__`` and imported as a module is the same function)."""
    h = hasher()
    _update_object(fn, h, 0)
    name = getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", type(fn).__qualname__)
    return {"callable": name, "code": h.hexdigest()}


def function_code(fn) -> str:
    """Digest of what a drive's time function computes, independent of its parameter values: the jaxpr of
    ``t ↦ fn(t)`` traced with fn's pytree leaves as arguments (the code, static fields such as a carrier's kind,
    and constants inlined as literals) plus its structure and any constant arrays it closes over."""
    import jax
    import jax.numpy as jnp

    leaves, treedef = jax.tree_util.tree_flatten(fn)

    def traced(t, leaves):
        return jax.tree_util.tree_unflatten(treedef, leaves)(t)

    closed = jax.make_jaxpr(traced)(jnp.zeros(()), [device_array(leaf) for leaf in leaves])
    h = hasher()
    h.update(_stable_repr(closed.jaxpr).encode())
    h.update(_stable_repr(treedef).encode())
    for const in closed.consts:
        _update_object(const, h, 0)
    return h.hexdigest()


def describe_drive(H) -> dict:
    """A driven H (:class:`~qllg_jax.TimeDependent`): per term its type and, for modulated / timecallable terms,
    the :func:`function_code` of f(t) / fn(t). Values (pulse parameters, pwc times and values, operators) are
    leaves: :func:`describe_tree` (fixed H) or the per-point digests (H of the point) cover them."""
    terms = []
    for term in H.terms:
        entry = {"type": type(term).__name__}
        fn = getattr(term, "f", None) or getattr(term, "fn", None)
        if fn is not None:
            entry["code"] = function_code(fn)
        terms.append(entry)
    return {"terms": terms}


def point_digests(batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """One 64-bit digest per point (uint64 (n,)) of arrays with a leading point axis (n, ...)."""
    leaves = [np.asarray(value) for _, value in sorted(batch.items())]
    n = leaves[0].shape[0]
    out = np.empty(n, dtype=np.uint64)
    rows = [np.ascontiguousarray(leaf).reshape(n, -1) for leaf in leaves]
    for i in range(n):
        h = hashlib.blake2b(digest_size=8)
        for row in rows:
            h.update(_array_bytes(row[i]))
        out[i] = np.frombuffer(h.digest(), dtype=np.uint64)[0]
    return out


def version() -> str:
    from .._version import __version__

    return __version__


def canonical(fingerprint: Mapping) -> str:
    """The JSON text stored in a sweep file (sorted keys)."""
    return json.dumps(fingerprint, sort_keys=True, default=str)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(description) -> str:
    if not isinstance(description, Mapping):
        return _clip(json.dumps(description, sort_keys=True, default=str))
    if "value" in description:
        return _clip(str(description["value"]))
    if "callable" in description:
        what = description["callable"]
        if "code" in description:
            what += f" (code {description['code'][:12]}…)"
        return what
    if "digest" in description:
        shape = f" shape {tuple(description['shape'])}" if "shape" in description else ""
        return f"digest {description['digest'][:12]}…{shape}"
    return _clip(json.dumps(description, sort_keys=True, default=str))


def _config_paths(old, new, prefix="") -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{where}: not stored, now {_clip(json.dumps(new[key], default=str))}")
            elif key not in new:
                out.append(f"{where}: stored {_clip(json.dumps(old[key], default=str))}, now absent")
            else:
                out.extend(_config_paths(old[key], new[key], where))
        return out
    if old != new:
        return [f"{prefix or 'config'}: stored {_clip(json.dumps(old, default=str))}, now {_clip(json.dumps(new, default=str))}"]
    return []


def summarize(items: list[str], first: int = 3) -> str:
    """The first ``first`` items joined by "; ", then "and N more" (messages stay one short line)."""
    shown = "; ".join(items[:first])
    return shown + (f"; and {len(items) - first} more" if len(items) > first else "")


def differences(stored: Mapping, new: Mapping, stored_points: Mapping, new_points: Mapping, params: Mapping) -> list[str]:
    """Human-readable differences between two fingerprints (empty: the same physics)."""
    out = []
    for field in sorted(set(stored) | set(new)):
        old, now = stored.get(field), new.get(field)
        if field in stored_points or field in new_points:
            a, b = stored_points.get(field), new_points.get(field)
            if a is not None and b is not None and a.shape == b.shape and not np.array_equal(a, b):
                bad = np.nonzero(a != b)[0]
                i = int(bad[0])
                point = ", ".join(f"{k}={np.asarray(v[i]).tolist()}" for k, v in params.items())
                more = f" and at {len(bad) - 1} other point(s)" if len(bad) > 1 else ""
                out.append(f"{field}(point) differs at point {i} ({point}){more}: the function's output changed")
                continue
        if old == now:
            continue
        if old is None:
            out.append(f"{field} was not part of the stored sweep (now {_short(now)})")
        elif now is None:
            out.append(f"{field} is not given now (stored {_short(old)})")
        elif field == "config":
            out.append("config differs: " + summarize(_config_paths(old, now)))
        else:
            out.append(f"{field} differs: stored {_short(old)}, now {_short(now)}")
    return out
