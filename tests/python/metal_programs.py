"""Programs that both Metal test files use: test_metal_codegen.py compiles their generated code
against the shim, test_metal_emulator.py runs it in the emulator."""

import parpy
from parpy import CompileBackend, Target
from parpy import operators as op
from parpy.types import F32, I32, pointer


@parpy.jit
def add_scaled(x, y, a, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] * a + 2.0

@parpy.jit
def elementwise(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] * x[i] + x[i] - y[i]

@parpy.jit
def logic(x, y, z, N):
    parpy.label("N")
    for i in range(N):
        z[i] = (x[i] and not y[i]) or z[i]

@parpy.jit
def row_reductions(x, s, mx, mn, pr, N):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        s[i] = op.sum(x[i, :])
        parpy.label("M")
        mx[i] = op.max(x[i, :])
        parpy.label("M")
        mn[i] = op.min(x[i, :])
        parpy.label("M")
        pr[i] = op.prod(x[i, :])

@parpy.jit
def full_sum(x, out):
    with parpy.gpu:
        parpy.label("R")
        out[0] = op.sum(x[:, :])

@parpy.jit
def softmax(x, out, N):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        m = op.max(x[i, :])
        parpy.label("M")
        out[i, :] = op.exp(x[i, :] - m)
        parpy.label("M")
        s = op.sum(out[i, :])
        parpy.label("M")
        out[i, :] = out[i, :] / s

@parpy.jit
def layer_norm(x, out, N, M):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        mean = op.sum(x[i, :]) / M
        parpy.label("M")
        var = op.sum((x[i, :] - mean) * (x[i, :] - mean)) / M
        parpy.label("M")
        out[i, :] = (x[i, :] - mean) / op.sqrt(var + 1e-5)

@parpy.jit
def normalize(x, out, N):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        out[i, :] = x[i, :] / op.sqrt(op.sum(x[i, :] * x[i, :]))

@parpy.jit
def stencil(x, y, N, M):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        y[i, 1 : M - 1] = x[i, 0 : M - 2] + x[i, 2:M] - 2.0 * x[i, 1 : M - 1]

@parpy.jit
def square_plus(a: F32, b: F32):
    return a * a + b

@parpy.jit
def row_dot(p: pointer(F32), q: pointer(F32), n: I32):
    s = 0.0
    for j in range(n):
        s += p[j] * q[j]
    return s

@parpy.jit
def with_helpers(x, y, out, N, M):
    parpy.label("N")
    for i in range(N):
        out[i] = square_plus(row_dot(x[i], y[i], M), 1.0)

@parpy.external("metal::fma", CompileBackend.Metal, Target.Device)
def ext_fma(a: F32, b: F32, c: F32) -> F32:
    return a * b + c

@parpy.jit
def with_external(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = ext_fma(x[i], x[i], 1.0)

@parpy.jit
def with_dict(x, y, d, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] * d["scale"] + d["shift"]

@parpy.jit
def host_arrays(x, y, N):
    # Host code reads and writes arrays in place, between kernels.
    y[0] = x[0] + 1.0
    while y[0] < 3.0:
        parpy.label("N")
        for i in range(N):
            y[i] = y[i] + 1.0
    if x[1] > 0.0:
        y[1] = 5.0

@parpy.jit
def host_loop(x, y, T, N):
    for t in range(T):
        parpy.label("N")
        for i in range(N):
            y[i] = y[i] + x[i] * op.float32(t)

@parpy.jit
def histogram(b, counts, N):
    parpy.label("N")
    for i in range(N):
        counts[b[i]] += 1

@parpy.jit
def conversions(x, k, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = op.float32(k[i] // 3) + x[i] % 2.0 + op.float32(op.int16(x[i]))

@parpy.jit
def math_fns(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = op.exp(x[i]) + op.log(op.abs(x[i]) + 1.0) + op.sin(x[i]) * op.cos(x[i]) + op.tanh(x[i])
        y[i] = y[i] + op.atan2(x[i], 2.0) + x[i] ** 2.0
