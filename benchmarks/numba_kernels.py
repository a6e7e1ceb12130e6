"""The benchmark kernels written for Numba (`prange`, no fastmath), as its users write them: the
peer of parpy's Cpu backend in benchmarks/cpu.py. Importing this module needs Numba."""

import numpy as np
from numba import njit, prange


@njit(parallel=True)
def row_sum(x, y):
    for i in prange(x.shape[0]):
        s = np.float32(0)
        for j in range(x.shape[1]):
            s += x[i, j]
        y[i] = s


@njit(parallel=True)
def softmax(x, out):
    for i in prange(x.shape[0]):
        m = x[i, 0]
        for j in range(x.shape[1]):
            m = max(m, x[i, j])
        s = np.float32(0)
        for j in range(x.shape[1]):
            out[i, j] = np.exp(x[i, j] - m)
            s += out[i, j]
        for j in range(x.shape[1]):
            out[i, j] = out[i, j] / s


@njit(parallel=True)
def axpy(a, x, y):
    for i in prange(x.shape[0]):
        y[i] = a * x[i] + y[i]


@njit(parallel=True)
def layer_norm(x, g, b, out):
    M = x.shape[1]
    for i in prange(x.shape[0]):
        s = np.float32(0)
        for j in range(M):
            s += x[i, j]
        mean = s / M
        v = np.float32(0)
        for j in range(M):
            v += (x[i, j] - mean) * (x[i, j] - mean)
        inv = np.float32(1) / np.sqrt(v / M + np.float32(1e-5))
        for j in range(M):
            out[i, j] = (x[i, j] - mean) * inv * g[j] + b[j]


@njit(parallel=True)
def colsum_by_column(x, y):
    for j in prange(x.shape[1]):
        s = np.float32(0)
        for i in range(x.shape[0]):
            s += x[i, j]
        y[j] = s


@njit(parallel=True)
def colsum_by_row(x, y):
    y[:] = 0
    for i in range(x.shape[0]):
        for j in prange(x.shape[1]):
            y[j] += x[i, j]


@njit(parallel=True)
def stencil2d(x, y):
    for i in prange(1, x.shape[0] - 1):
        for j in range(1, x.shape[1] - 1):
            y[i, j] = 0.25 * (x[i - 1, j] + x[i + 1, j] + x[i, j - 1] + x[i, j + 1])


@njit(parallel=True)
def stencil3d(x, y):
    n = x.shape[0]
    for i in prange(1, n - 1):
        for j in range(1, n - 1):
            for k in range(1, n - 1):
                y[i, j, k] = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                              + x[i, j, k - 1] + x[i, j, k + 1]) / 6.0


@njit(parallel=True)
def spmv_csr(indptr, indices, data, x, y):
    for i in prange(indptr.shape[0] - 1):
        s = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * x[indices[k]]
        y[i] = s
