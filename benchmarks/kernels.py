"""The kernels the benchmark scripts time, written as a user would, and their test data."""

import numpy as np
import parpy


@parpy.jit
def row_sum(x, y, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        y[i] = parpy.operators.sum(x[i, :])


@parpy.jit
def softmax(x, out, N, M):
    parpy.label("rows")
    for i in range(N):
        m = parpy.operators.max(x[i, :])
        parpy.label("cols")
        out[i, :] = parpy.operators.exp(x[i, :] - m)
        s = parpy.operators.sum(out[i, :])
        parpy.label("cols")
        out[i, :] = out[i, :] / s


@parpy.jit
def axpy(a, x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = a * x[i] + y[i]


@parpy.jit
def tiny(x, N):
    """For the first-call latency and the per-call host overhead."""
    parpy.label("N")
    for i in range(N):
        x[i] = x[i] + 1.0


@parpy.jit
def layer_norm(x, g, b, out, N, M):
    """Written with the reductions inside expressions, as a numpy user would."""
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        mean = parpy.operators.sum(x[i, :]) / M
        parpy.label("cols")
        var = parpy.operators.sum((x[i, :] - mean) * (x[i, :] - mean)) / M
        parpy.label("cols")
        out[i, :] = (x[i, :] - mean) / parpy.operators.sqrt(var + 1e-5) * g[:] + b[:]


@parpy.jit
def colsum_by_column(x, y, N, M):
    """Column sums, a parallel loop over columns around the loop down each one."""
    parpy.label("cols")
    for j in range(M):
        y[j] = 0.0
        for i in range(N):
            y[j] += x[i, j]


@parpy.jit
def colsum_by_row(x, y, N, M):
    """Column sums, the rows added one after the other (as Numba users write them)."""
    parpy.label("cols")
    y[:] = 0.0
    for i in range(N):
        parpy.label("cols")
        y[:] += x[i, :]


@parpy.jit
def stencil2d(x, y, N, M):
    """A 5-point stencil (a Jacobi step of the Laplace equation) on the interior of a grid."""
    parpy.label("rows")
    for i in range(1, N - 1):
        parpy.label("cols")
        for j in range(1, M - 1):
            y[i, j] = 0.25 * (x[i - 1, j] + x[i + 1, j] + x[i, j - 1] + x[i, j + 1])


@parpy.jit
def stencil3d(x, y, N):
    """A 7-point stencil on the interior of an N x N x N grid."""
    parpy.label("planes")
    for i in range(1, N - 1):
        for j in range(1, N - 1):
            parpy.label("cols")
            for k in range(1, N - 1):
                y[i, j, k] = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                              + x[i, j, k - 1] + x[i, j, k + 1]) / 6.0


@parpy.jit
def stencil3d_par(x, y, N):
    """stencil3d with the loop over a plane's rows labelled too (every loop parallel)."""
    parpy.label("planes")
    for i in range(1, N - 1):
        parpy.label("rows")
        for j in range(1, N - 1):
            parpy.label("cols")
            for k in range(1, N - 1):
                y[i, j, k] = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                              + x[i, j, k - 1] + x[i, j, k + 1]) / 6.0


@parpy.jit
def spmv_csr(indptr, indices, data, x, y, N):
    """y = A x for A in CSR form (row i's values are data[indptr[i]:indptr[i + 1]]), a row per
    thread, as a user writes it first."""
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * x[indices[k]]
        y[i] = s


@parpy.jit
def spmv_csr_warp(indptr, indices, data, x, y, N):
    """spmv_csr with a label on the loop over a row's values: with `nz: threads(32).reduce()` a
    warp per row (rows packed into blocks, docs/gpu.md, Grid and blocks)."""
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * x[indices[k]]
        y[i] = s


def power_law_csr(rows, mean, seed=0):
    """A random CSR matrix (indptr, indices, data) with power-law row lengths of about `mean`."""
    rng = np.random.default_rng(seed)
    p = rng.pareto(2.0, rows) + 1.0
    lens = np.minimum(np.maximum(1, np.round(p / p.mean() * mean)), 64 * mean).astype(np.int64)
    indptr = np.zeros(rows + 1, np.int64)
    indptr[1:] = np.cumsum(lens)
    indices = np.sort(rng.integers(0, rows, indptr[-1]))  # sorted within each row below
    for_rows = np.repeat(np.arange(rows), lens)
    indices = indices[np.lexsort((indices, for_rows))]
    data = rng.standard_normal(indptr[-1]).astype(np.float32)
    return indptr, indices, data
