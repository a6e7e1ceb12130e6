"""The kernels the benchmark scripts time, written as a user would."""

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
