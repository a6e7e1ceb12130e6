"""Pickling of jit functions, compiler options and buffers, so that they reach other processes
(``multiprocessing``, Dask, Ray) as other Python objects do.

A jit function is pickled by reference, as a plain Python function is: its module and qualified
name, looked up again when it is loaded (each process compiles it on its first call, through the
shared disk cache). Options and parallel specs are pickled by value; a buffer by its data, loaded
into a new buffer of the same backend (on the current device for Cuda).
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any

import numpy as np

from . import buffer as _buffer
from .parpy import CompileBackend, CompileOptions, JitFunction, LoopPar


def load_jit(module: str, qualname: str) -> Any:
    """The jit function named `qualname` in `module`."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _reduce_jit(fn: Any) -> tuple[Any, tuple[str, str]]:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname:
        raise pickle.PicklingError("Cannot pickle a jit function that has no module and name")
    if "<locals>" in qualname:
        raise pickle.PicklingError(
            f"Cannot pickle the jit function {qualname}: it is defined inside another function, so other "
            "processes cannot find it by name. Define it at the top level of a module."
        )
    try:
        found = load_jit(module, qualname)
    except (ImportError, AttributeError) as e:
        raise pickle.PicklingError(
            f"Cannot pickle the jit function {qualname}: it is not found as {module}.{qualname} ({e})"
        ) from None
    if found is not fn:
        raise pickle.PicklingError(
            f"Cannot pickle the jit function {qualname}: {module}.{qualname} names another object"
        )
    return load_jit, (module, qualname)


def _option_fields() -> list[str]:
    return sorted(n for n, v in vars(CompileOptions).items() if not n.startswith("_") and hasattr(v, "__set__"))


def make_options(state: dict[str, Any]) -> CompileOptions:
    """Options with the given fields."""
    o = CompileOptions()
    for name, value in state.items():
        setattr(o, name, value)
    return o


def _reduce_options(o: CompileOptions) -> tuple[Any, tuple[dict[str, Any]]]:
    return make_options, ({name: getattr(o, name) for name in _option_fields()},)


def make_buffer(data: np.ndarray, backend: CompileBackend | None) -> Any:
    """A buffer of `backend` holding `data` (None: a buffer for code generation only)."""
    return _buffer.from_array(data, backend)


def _reduce_buffer(b: Any) -> tuple[Any, tuple[np.ndarray, CompileBackend | None]]:
    b.sync()
    return make_buffer, (np.array(b.numpy(), copy=True), getattr(b, "backend", None))


def install() -> None:
    JitFunction.__reduce__ = _reduce_jit  # type: ignore[method-assign,assignment]
    CompileOptions.__reduce__ = _reduce_options  # type: ignore[method-assign,assignment]
    _buffer.Buffer.__reduce__ = _reduce_buffer  # type: ignore[method-assign,assignment]
    # LoopPar pickles through its __getstate__/__setstate__ (bindings).
    assert hasattr(LoopPar, "__getstate__")
