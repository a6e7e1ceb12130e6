"""Loops down columns, written as users write them: a parallel loop over columns around a loop
over rows, or a loop over rows around a parallel loop over columns. On the Cpu backend both run
a tile of columns at a time (the innermost loop over contiguous elements); on every backend the
results are numpy's, including where tiling must not apply."""

import re

import numpy as np
import parpy
import pytest
from common import colsum_by_column, colsum_by_row, make_opts

RNG = np.random.default_rng(11)


@parpy.jit
def col_stats(x, mean, sq, N, M):
    """Statements before and after the row loop, two accumulators, a division."""
    parpy.label("cols")
    for j in range(M):
        mean[j] = 0.0
        sq[j] = 0.0
        for i in range(N):
            mean[j] += x[i, j]
            sq[j] += x[i, j] * x[i, j]
        mean[j] = mean[j] / N
        sq[j] = sq[j] / N - mean[j] * mean[j]


@parpy.jit
def scale_rows_in_place(x, s, N, M):
    """Writes the array it reads, at the same element: each column on its own."""
    for i in range(N):
        parpy.label("cols")
        for j in range(M):
            x[i, j] = x[i, j] * s[i] + 1.0


@parpy.jit
def shift_down_right(x, N, M):
    """Row i + 1 reads what row i wrote in the column to its left: the rows must run in order
    over all columns, so no tiling."""
    for i in range(N - 1):
        parpy.label("cols")
        for j in range(M - 1):
            x[i + 1, j + 1] = x[i + 1, j + 1] + x[i, j]


@parpy.jit
def row_sums_by_loop(x, y, N, M):
    """Rows are contiguous: the row loop already walks contiguous memory, no tiling."""
    parpy.label("rows")
    for i in range(N):
        y[i] = 0.0
        for j in range(M):
            y[i] += x[i, j]


SHAPES = [(1, 1), (3, 5), (50, 255), (37, 256), (64, 257), (9, 1000)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_column_sums_written_either_way(backend, shape):
    N, M = shape
    x = RNG.standard_normal((N, M))
    want = x.sum(axis=0)
    for f in (colsum_by_column, colsum_by_row):
        y = RNG.standard_normal(M)  # overwritten
        f(x, y, N, M, opts=make_opts(backend, cols=M))
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(20, 300), (7, 3)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_statements_around_the_row_loop(backend, shape):
    N, M = shape
    x = RNG.standard_normal((N, M)).astype(np.float32)
    mean, sq = np.zeros(M, np.float32), np.zeros(M, np.float32)
    col_stats(x, mean, sq, N, M, opts=make_opts(backend, cols=M))
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sq, x.var(axis=0), rtol=1e-3, atol=1e-4)


def test_in_place_update_by_rows(backend):
    N, M = 40, 300
    x = RNG.standard_normal((N, M))
    s = RNG.standard_normal(N)
    want = x * s[:, None] + 1.0
    scale_rows_in_place(x, s, N, M, opts=make_opts(backend, cols=M))
    # A fused multiply-add rounds once where numpy rounds twice.
    np.testing.assert_allclose(x, want, rtol=1e-13, atol=1e-15)


def test_a_dependence_across_columns_keeps_the_row_order(backend):
    N, M = 30, 400
    x = RNG.standard_normal((N, M))
    want = x.copy()
    for i in range(N - 1):
        want[i + 1, 1:] = want[i + 1, 1:] + want[i, :-1]
    shift_down_right(x, N, M, opts=make_opts(backend, cols=M - 1))
    np.testing.assert_allclose(x, want, rtol=1e-12, atol=1e-12)


def test_row_sums_by_loop(backend):
    N, M = 33, 700
    x = RNG.standard_normal((N, M))
    y = np.zeros(N)
    row_sums_by_loop(x, y, N, M, opts=make_opts(backend, rows=N))
    np.testing.assert_allclose(y, x.sum(axis=1), rtol=1e-12)


def _cpu_code(f, args, **labels):
    return parpy.print_compiled(f, args, make_opts(parpy.CompileBackend.Cpu, **labels))


def test_where_the_cpu_code_tiles():
    N, M = 64, 1000
    x, y = np.zeros((N, M)), np.zeros(M)
    for f in (colsum_by_column, colsum_by_row):
        code = _cpu_code(f, [x, y, N, M], cols=M)
        # One parallel loop over tiles of columns; the columns of a tile are vectorised.
        assert code.count("#pragma omp parallel for") == (1 if f is colsum_by_column else 2), code
        assert re.search(r"parpy_tile0 \+= \d+\)", code) and "#pragma omp simd" in code, code
    code = _cpu_code(shift_down_right, [np.zeros((N, M)), N, M], cols=M - 1)
    assert "parpy_tile" not in code
    code = _cpu_code(row_sums_by_loop, [x, np.zeros(N), N, M], rows=N)
    assert "parpy_tile" not in code
