"""fuse_map_reduce on the Cuda backend: a parallel map followed by a reduction over the same
range becomes one loop whose reduction reads the stored value from a register. Checked in the
generated code (no GPU needed) and against numpy on a GPU, including the cases it must not fuse."""

import numpy as np
import parpy
import pytest
from parpy import CompileBackend

CUDA = CompileBackend.Cuda
needs_gpu = pytest.mark.skipif(not parpy.backend.is_enabled(CUDA), reason="no CUDA GPU here")


@parpy.jit
def exp_sum(x, out, y, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        out[i, :] = parpy.operators.exp(x[i, :])
        y[i] = parpy.operators.sum(out[i, :])


@parpy.jit
def square_then_sum_shifted(x, out, y, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(M):
            out[i, j] = x[i, j] * x[i, j]
        s = 0.0
        parpy.label("red")
        for j in range(M - 1):
            s += out[i, j + 1]
        y[i] = s


@parpy.jit
def map_then_max_other(x, out, y, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        out[i, :] = x[i, :] + 1.0
        y[i] = parpy.operators.max(x[i, :])


def opts(par):
    o = parpy.par(par)
    o.backend = CUDA
    return o


def rand(shape):
    return np.random.default_rng().standard_normal(shape).astype(np.float32)


PAR = {"rows": parpy.threads(64), "cols": parpy.threads(256), "red": parpy.threads(256).reduce()}


def code_of(fun, M=300):
    x = np.zeros((64, M), np.float32)
    return parpy.print_compiled(fun, [x, x, np.zeros(64, np.float32), 64, M], opts(PAR))


def test_map_and_sum_fuse():
    code = code_of(exp_sum)
    assert "parpy_fused_out" in code
    # The reduction reads the register, not out.
    assert "parpy_acc0 = (parpy_acc0 + parpy_fused_out" in code


def test_other_index_does_not_fuse():
    code = code_of(square_then_sum_shifted)
    assert "parpy_fused" not in code


def test_reduction_over_another_array_fuses_without_forwarding():
    code = code_of(map_then_max_other)
    assert "parpy_fused_out" in code and "parpy_max<float>(parpy_acc0, x[" in code


@needs_gpu
@pytest.mark.parametrize("M,cols", [(300, 256), (5000, 1024), (3000, 4096)])
def test_fused_results(M, cols):
    N = 64
    par = {"rows": parpy.threads(N), "cols": parpy.threads(cols).tpb(512), "red": parpy.threads(cols).tpb(512).reduce()}
    x = rand((N, M))
    out, y = np.zeros_like(x), np.zeros(N, np.float32)
    exp_sum(x, out, y, N, M, opts=opts(par))
    np.testing.assert_allclose(out, np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(y, np.exp(x).astype(np.float64).sum(axis=1), rtol=1e-4)
    out, y = np.zeros_like(x), np.zeros(N, np.float32)
    square_then_sum_shifted(x, out, y, N, M, opts=opts(par))
    np.testing.assert_allclose(out, x * x, rtol=1e-6)
    np.testing.assert_allclose(y, (x * x)[:, 1:].astype(np.float64).sum(axis=1), rtol=1e-4)
    out, y = np.zeros_like(x), np.zeros(N, np.float32)
    map_then_max_other(x, out, y, N, M, opts=opts(par))
    np.testing.assert_allclose(out, x + 1.0, rtol=1e-6)
    np.testing.assert_array_equal(y, x.max(axis=1))
