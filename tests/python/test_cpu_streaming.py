"""Streaming stores on the Cpu backend (docs/performance.md, Cpu): the innermost loop of a nest
that only writes an array larger than the caches, with a body of + - * / over unit-stride reads,
loop-invariant scalars and literals, stores whole vectors with non-temporal stores (x86). The code
is checked for the streamed loop where it applies and not elsewhere, and every result element
against numpy, for rows that start aligned or not, with a tail, in float and double."""

import numpy as np
import parpy
import pytest
from parpy import CompileBackend

CPU = CompileBackend.Cpu
RNG = np.random.default_rng()
STREAMED = "parpy_vstream("


def opts(**labels):
    o = parpy.par({k: parpy.threads(v) for k, v in labels.items()})
    o.backend = CPU
    return o


@parpy.jit
def combine(x, y, a, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(1, M - 1):
            y[i, j] = a * x[i, j] + (x[i, j + 1] - x[i, j - 1]) / 2.0 - -x[i, j]


def combine_ref(x, y, a):
    y = y.copy()
    y[:, 1:-1] = a * x[:, 1:-1] + (x[:, 2:] - x[:, :-2]) / x.dtype.type(2.0) - -x[:, 1:-1]
    return y


@parpy.jit
def accumulate(x, y, N, M):
    """y is read: not streamed."""
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(M):
            y[i, j] = y[i, j] + x[i, j]


@parpy.jit
def with_exp(x, y, N, M):
    """A call in the body: not streamed."""
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(M):
            y[i, j] = parpy.operators.exp(x[i, j])


def arrays(dtype, n, m):
    return RNG.standard_normal((n, m)).astype(dtype), np.zeros((n, m), dtype)


# 32 MiB and more: 4096 x 2050 floats, 2048 x 2050 doubles; 2051 columns: rows start unaligned.
SHAPES = [(np.float32, 4096, 2050), (np.float32, 4096, 2051), (np.float64, 2048, 2050), (np.float64, 2048, 2053)]


@pytest.mark.parametrize("dtype,n,m", SHAPES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_streamed_results(dtype, n, m):
    x, y = arrays(dtype, n, m)
    a = 1.5
    o = opts(rows=n, cols=m)
    assert STREAMED in parpy.print_compiled(combine, [x, y, a, n, m], o)
    combine(x, y, a, n, m, opts=o)
    np.testing.assert_allclose(y, combine_ref(x, np.zeros_like(y), dtype(a)), rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_small_arrays_are_not_streamed():
    x, y = arrays(np.float32, 64, 2050)
    assert STREAMED not in parpy.print_compiled(combine, [x, y, 1.5, 64, 2050], opts(rows=64, cols=2050))


def test_short_rows_are_not_streamed():
    # 32 MiB in rows of 254: each row would end with a store fence (slower).
    x, y = arrays(np.float32, 33100, 256)
    code = parpy.print_compiled(combine, [x, y, 1.5, 33100, 256], opts(rows=33100, cols=256))
    assert STREAMED not in code


@pytest.mark.parametrize("fn", [accumulate, with_exp], ids=lambda f: f.__name__)
def test_other_loops_are_not_streamed(fn):
    n, m = 4096, 2050
    x, y = arrays(np.float32, n, m)
    y0 = RNG.standard_normal((n, m)).astype(np.float32)
    y[...] = y0
    o = opts(rows=n, cols=m)
    assert STREAMED not in parpy.print_compiled(fn, [x, y, n, m], o)
    fn(x, y, n, m, opts=o)
    want = y0 + x if fn is accumulate else np.exp(x)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
