"""Operators usable inside jit functions, with their plain-Python meaning.

Outside a jit function these behave like the numpy/builtin functions they name, so a decorated
function still runs as ordinary Python. Inside compiled code the compiler gives them their
parpy meaning (see docs/language.md).
"""

from __future__ import annotations

import builtins
import contextlib
from typing import Any

import numpy as np

__all__ = [
    "abs",
    "atan2",
    "cos",
    "exp",
    "float16",
    "float32",
    "float64",
    "gpu",
    "inf",
    "int8",
    "int16",
    "int32",
    "int64",
    "label",
    "log",
    "max",
    "min",
    "prod",
    "sin",
    "sqrt",
    "sum",
    "tanh",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
]

abs = builtins.abs
cos = np.cos
exp = np.exp
inf = np.inf
log = np.log
sin = np.sin
sqrt = np.sqrt
tanh = np.tanh
atan2 = np.arctan2


def min(x: Any, y: Any = None, axis: int | None = None) -> Any:
    """Reduces `x` with numpy, or takes the element-wise minimum of `x` and `y`."""
    if y is None:
        return np.min(x, axis=axis)
    assert axis is None, "axis must be None when min is given two arguments"
    return np.minimum(x, y)


def max(x: Any, y: Any = None, axis: int | None = None) -> Any:
    """Reduces `x` with numpy, or takes the element-wise maximum of `x` and `y`."""
    if y is None:
        return np.max(x, axis=axis)
    assert axis is None, "axis must be None when max is given two arguments"
    return np.maximum(x, y)


def sum(x: Any, axis: int | None = None) -> Any:
    return np.sum(x, axis=axis)


def prod(x: Any, axis: int | None = None) -> Any:
    return np.prod(x, axis=axis)


def float16(x: Any) -> float:
    return float(x)


def float32(x: Any) -> float:
    return float(x)


def float64(x: Any) -> float:
    return float(x)


def int8(x: Any) -> int:
    return int(x)


def int16(x: Any) -> int:
    return int(x)


def int32(x: Any) -> int:
    return int(x)


def int64(x: Any) -> int:
    return int(x)


def uint8(x: Any) -> int:
    return int(x)


def uint16(x: Any) -> int:
    return int(x)


def uint32(x: Any) -> int:
    return int(x)


def uint64(x: Any) -> int:
    return int(x)


def label(x: str) -> None:
    """Labels the next statement for parallelisation; does nothing in plain Python."""
    assert x is not None


# Marks host code that should run on the device; a no-op context in plain Python.
gpu = contextlib.nullcontext()
