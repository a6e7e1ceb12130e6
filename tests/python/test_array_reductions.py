"""Array reductions across a reduce() loop: `y[:] += x[i, :]` in a loop labelled
`threads(n).reduce()` reduces every element of y over i (docs/language.md, Reductions), the form
Numba users write for column sums; on every backend, against numpy."""

import numpy as np
import parpy
import pytest
from common import make_opts, needs_nvcc, nvcc_compile

RNG = np.random.default_rng(23)


@parpy.jit
def column_sums(x, y, N):
    parpy.label("rows")
    for i in range(N):
        y[:] += x[i, :]


@parpy.jit
def column_products(x, y, N):
    parpy.label("rows")
    for i in range(N):
        y[:] *= x[i, :]


@parpy.jit
def column_max(x, y, N):
    parpy.label("rows")
    for i in range(N):
        y[:] = parpy.operators.max(y[:], x[i, :])


@parpy.jit
def plane_sums(x, y, N):
    parpy.label("rows")
    for i in range(N):
        y[:, :] += x[i, :, :] * 2.0


@parpy.jit
def column_sums_parallel_columns(x, y, N):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        y[:] += x[i, :]


@parpy.jit
def reads_the_sum(x, y, N):
    parpy.label("rows")
    for i in range(N):
        y[:] += y[:] * x[i, :]  # @reads_the_sum


def reduce_opts(backend, n, **labels):
    return make_opts(backend, {"rows": parpy.threads(n).reduce()}, **labels)


@pytest.mark.parametrize("shape", [(1, 1), (64, 100), (300, 7), (33, 2050)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_column_sums(backend, shape):
    N, M = shape
    x = RNG.standard_normal((N, M))
    y = RNG.standard_normal(M)
    want = y + x.sum(axis=0)
    column_sums(x, y, N, opts=reduce_opts(backend, N))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_integer_column_sums(backend):
    x = RNG.integers(-1000, 1000, (50, 70)).astype(np.int32)
    y = np.zeros(70, np.int32)
    column_sums(x, y, 50, opts=reduce_opts(backend, 50))
    np.testing.assert_array_equal(y, x.sum(axis=0))


def test_products_and_max(backend):
    N, M = 20, 130
    x = RNG.uniform(0.5, 1.5, (N, M))
    y = RNG.uniform(0.5, 1.5, M)
    want = y * x.prod(axis=0)
    column_products(x, y, N, opts=reduce_opts(backend, N))
    np.testing.assert_allclose(y, want, rtol=1e-12)
    x = RNG.standard_normal((N, M)).astype(np.float32)
    y = np.full(M, -np.inf, np.float32)
    column_max(x, y, N, opts=reduce_opts(backend, N))
    np.testing.assert_array_equal(y, x.max(axis=0))


def test_two_dimensional_elements(backend):
    x = RNG.standard_normal((9, 20, 30))
    y = np.zeros((20, 30))
    plane_sums(x, y, 9, opts=reduce_opts(backend, 9))
    np.testing.assert_allclose(y, 2.0 * x.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_with_parallel_columns(backend):
    x = RNG.standard_normal((40, 500))
    y = np.zeros(500)
    column_sums_parallel_columns(x, y, 40, opts=reduce_opts(backend, 40, cols=500))
    np.testing.assert_allclose(y, x.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_a_value_that_reads_the_array_is_not_a_reduction():
    x, y = np.zeros((4, 5)), np.zeros(5)
    with pytest.raises(RuntimeError, match="Reduction for-loop statement must be an assignment"):
        reads_the_sum(x, y, 4, opts=reduce_opts(parpy.CompileBackend.Cpu, 4))


@needs_nvcc
def test_cuda_code_compiles(tmp_path):
    for f, x, y in [(column_sums, np.zeros((64, 100), np.float32), np.zeros(100, np.float32)),
                    (plane_sums, np.zeros((9, 20, 30)), np.zeros((20, 30)))]:
        code = parpy.print_compiled(f, [x, y, x.shape[0]], reduce_opts(parpy.CompileBackend.Cuda, x.shape[0]))
        nvcc_compile(code, tmp_path)
