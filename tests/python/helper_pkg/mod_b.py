"""Module B: the names of module A with other bodies."""

import parpy
from parpy import CompileBackend, Target
from parpy.types import F32, F64


@parpy.jit
def step(a: F32, b: F32):
    return a - 3.0 * b


@parpy.jit
def update(x, y, i):
    y[i] = step(y[i], x[i]) * 0.5


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


@parpy.external("std::fmax", CompileBackend.Cuda, Target.Device, header="<cmath>")
def ext_pick(a: F64, b: F64) -> F64:
    return max(a, b)


@parpy.external("std::fmax", CompileBackend.Cpu, Target.Device, header="<cmath>")
def ext_pick(a: F64, b: F64) -> F64:  # noqa: F811
    return max(a, b)
