"""Module A: `step`, `update`, `ext_pick` and their callers (module B has the same names)."""

import parpy
from parpy import CompileBackend, Target
from parpy.types import F32, F64


@parpy.jit
def step(a: F32, b: F32):
    return a * 2.0 + b


# A statement-level (inlined) helper calling this module's `step` in an expression.
@parpy.jit
def update(x, y, i):
    y[i] = step(x[i], y[i]) - 1.0


@parpy.jit
def apply_step(x, y, out, N):
    parpy.label("N")
    for i in range(N):
        out[i] = step(x[i], y[i])


@parpy.jit
def apply_update(x, y, N):
    parpy.label("N")
    for i in range(N):
        update(x, y, i)


# One Python name declared once per backend, as separate definitions.
@parpy.external("std::fmin", CompileBackend.Cuda, Target.Device, header="<cmath>")
def ext_pick(a: F64, b: F64) -> F64:
    return min(a, b)


@parpy.external("std::fmin", CompileBackend.Cpu, Target.Device, header="<cmath>")
def ext_pick(a: F64, b: F64) -> F64:  # noqa: F811
    return min(a, b)


def plain_helper(x, i):
    """Not a jit function: calling it from jit code is an error."""
    x[i] = 0.0


# `later` is defined below: it is resolved at the first call.
@parpy.jit
def apply_later(x, out, N):
    parpy.label("N")
    for i in range(N):
        out[i] = later(x[i])


@parpy.jit
def later(a: F64):
    return a * a + 0.5
