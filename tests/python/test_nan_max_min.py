"""max/min propagate NaN like numpy (np.max, np.maximum): elementwise and in reductions."""

import numpy as np
import parpy
import pytest

N = 257


def opts(backend, **labels):
    o = parpy.par({k: parpy.threads(v) for k, v in labels.items()})
    o.backend = backend
    return o


@parpy.jit
def pairwise(a, b, hi, lo, N):
    parpy.label("N")
    for i in range(N):
        hi[i] = parpy.operators.max(a[i], b[i])
        lo[i] = parpy.operators.min(a[i], b[i])


@parpy.jit
def reductions(x, out):
    parpy.label("R")
    out[0] = parpy.operators.max(x[:])
    parpy.label("R")
    out[1] = parpy.operators.min(x[:])


@parpy.jit
def sequential_reductions(x, out, N):
    parpy.label("S")
    for j in range(1):
        out[0] = x[0]
        out[1] = x[0]
        for i in range(1, N):
            out[0] = parpy.operators.max(out[0], x[i])
            out[1] = parpy.operators.min(out[1], x[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pairwise_max_min_propagate_nan(backend, dtype):
    a = np.random.rand(N).astype(dtype)
    b = np.random.rand(N).astype(dtype)
    a[::3] = np.nan
    b[::5] = np.nan
    hi = np.zeros(N, dtype)
    lo = np.zeros(N, dtype)
    pairwise(a, b, hi, lo, N, opts=opts(backend, N=N))
    np.testing.assert_array_equal(hi, np.maximum(a, b))
    np.testing.assert_array_equal(lo, np.minimum(a, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nan_at", [None, 0, 1, N // 2, N - 1])
@pytest.mark.parametrize("threads", [1, 4, 64])
def test_max_min_reductions_propagate_nan(backend, dtype, nan_at, threads):
    x = np.random.rand(N).astype(dtype)
    if nan_at is not None:
        x[nan_at] = np.nan
    out = np.zeros(2, dtype)
    reductions(x, out, opts=opts(backend, R=threads))
    np.testing.assert_array_equal(out, [np.max(x), np.min(x)])


@pytest.mark.parametrize("nan_at", [0, 1, N - 1])
def test_sequential_max_min_propagate_nan(backend, nan_at):
    x = np.random.rand(N)
    x[nan_at] = np.nan
    out = np.zeros(2)
    sequential_reductions(x, out, N, opts=opts(backend, S=1))
    np.testing.assert_array_equal(out, [np.max(x), np.min(x)])


@parpy.jit
def f16_max_min_literals(a, y, N):
    parpy.label("N")
    for i in range(N):
        y[0, i] = parpy.operators.max(0.0, a[1])
        y[1, i] = parpy.operators.min(a[1], 0.0)
        y[2, i] = parpy.operators.max(a[i], 0.0)
        y[3, i] = parpy.operators.min(0.0, a[i])
        y[4, i] = parpy.operators.max(a[i], a[(i + 1) % N])
        y[5, i] = parpy.operators.min(a[i], a[(i + 1) % N])


@pytest.mark.parametrize("a1", [-1.5, 2.25, np.nan])
def test_f16_max_min_with_literals(backend, a1):
    # GCC 12 with -march=native on AVX512-FP16 CPUs assembled max/min of a float16 and 0.0 into
    # a zero-masked vmovsh store, which the assembler rejects.
    a = np.random.randn(N).astype(np.float16)
    a[1] = a1
    a[::7] = np.nan
    y = np.zeros((6, N), np.float16)
    f16_max_min_literals(a, y, N, opts=opts(backend, N=N))
    z = np.float16(0)
    b = np.roll(a, -1)
    want = [np.full(N, np.maximum(z, a[1])), np.full(N, np.minimum(a[1], z)), np.maximum(a, z), np.minimum(z, a),
            np.maximum(a, b), np.minimum(a, b)]
    for k in range(6):
        np.testing.assert_array_equal(y[k], want[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fill", [-np.inf, np.inf, 0.0])
@pytest.mark.parametrize("threads", [1, 64])
def test_max_min_reductions_of_constant_rows(backend, dtype, fill, threads):
    # Every private accumulator starts from the neutral element (-inf for max, +inf for min),
    # which must not leak into the result when every element is an infinity.
    x = np.full(N, fill, dtype)
    out = np.zeros(2, dtype)
    reductions(x, out, opts=opts(backend, R=threads))
    np.testing.assert_array_equal(out, [np.max(x), np.min(x)])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_row_max_min_reductions_propagate_nan(backend, dtype):
    x = np.random.randn(64, N).astype(dtype)
    x[3, 5] = np.nan
    x[10, :] = np.nan
    x[20, N - 1] = np.nan
    x[30, :] = -np.inf
    out = np.zeros((64, 2), dtype)
    row_reductions(x, out, 64, opts=opts(backend, R=64, C=32))
    np.testing.assert_array_equal(out[:, 0], np.max(x, axis=1))
    np.testing.assert_array_equal(out[:, 1], np.min(x, axis=1))


@parpy.jit
def row_reductions(x, out, R):
    parpy.label("R")
    for r in range(R):
        parpy.label("C")
        out[r, 0] = parpy.operators.max(x[r, :])
        parpy.label("C")
        out[r, 1] = parpy.operators.min(x[r, :])


NAN = float("nan")


@parpy.jit
def folded_max_min(out):
    with parpy.gpu:
        out[0] = parpy.operators.max(NAN, 1.0)
        out[1] = parpy.operators.max(1.0, NAN)
        out[2] = parpy.operators.min(NAN, 1.0)
        out[3] = parpy.operators.min(1.0, NAN)
        out[4] = parpy.operators.max(2.0, 1.0)
        out[5] = parpy.operators.min(2.0, 1.0)


def test_max_min_of_constants_propagate_nan(backend):
    # Folded when compiling (NAN is a global constant): the same rule as at run time.
    out = np.zeros(6)
    o = parpy.CompileOptions()
    o.backend = backend
    folded_max_min(out, opts=o)
    np.testing.assert_array_equal(out, [np.nan, np.nan, np.nan, np.nan, 2.0, 1.0])
