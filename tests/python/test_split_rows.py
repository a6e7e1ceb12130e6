"""Filling the GPU (docs/gpu.md, Optimisations): a parallel loop over too few columns to fill the
GPU, around a long loop accumulating over rows, runs the rows in chunks on more threads, each
chunk's partial result added atomically. Results against numpy on every backend (Cpu does not
split), the split Cuda code's shape and nvcc, and the split Metal code run in the Metal emulator."""

import numpy as np
import parpy
import pytest
from common import colsum_by_column, colsum_by_row, make_opts, needs_nvcc, nvcc_compile

import metal_emu

RNG = np.random.default_rng(5)
CUDA, METAL = parpy.CompileBackend.Cuda, parpy.CompileBackend.Metal


@parpy.jit
def colsum_int(x, y, N, M):
    parpy.label("cols")
    for j in range(M):
        y[j] = 0
        for i in range(N):
            y[j] += x[i, j]


@parpy.jit
def colmean(x, y, N, M):
    parpy.label("cols")
    for j in range(M):
        y[j] = 0.0
        for i in range(N):
            y[j] += x[i, j]
        y[j] = y[j] / N


@parpy.jit
def colmax(x, y, N, M):
    parpy.label("cols")
    for j in range(M):
        y[j] = -1.0e30
        for i in range(N):
            y[j] = parpy.operators.max(y[j], x[i, j] * 2.0)


@parpy.jit
def running(x, y, N, M):
    """y[j] is read by each step's value: a recurrence, not an accumulation; not split."""
    parpy.label("cols")
    for j in range(M):
        y[j] = 1.0
        for i in range(N):
            y[j] += x[i, j] * y[j] * 0.001


def test_results(backend):
    for N, M in [(1000, 37), (4099, 300), (130, 5)]:
        x = RNG.standard_normal((N, M)).astype(np.float32)
        y = np.zeros(M, np.float32)
        colsum_by_column(x, y, N, M, opts=make_opts(backend, cols=M))
        np.testing.assert_allclose(y, x.sum(axis=0, dtype=np.float64), rtol=1e-4, atol=1e-3)
        colmean(x, y, N, M, opts=make_opts(backend, cols=M))
        np.testing.assert_allclose(y, x.mean(axis=0, dtype=np.float64), rtol=1e-4, atol=1e-5)
        colmax(x, y, N, M, opts=make_opts(backend, cols=M))
        np.testing.assert_array_equal(y, 2.0 * x.max(axis=0))
        colsum_by_row(x, y, N, M, opts=make_opts(backend, cols=M))
        np.testing.assert_allclose(y, x.sum(axis=0, dtype=np.float64), rtol=1e-4, atol=1e-3)
    xi = RNG.integers(-100, 100, (3000, 20)).astype(np.int64)
    yi = np.zeros(20, np.int64)
    colsum_int(xi, yi, 3000, 20, opts=make_opts(backend, cols=20))
    np.testing.assert_array_equal(yi, xi.sum(axis=0))
    x = RNG.standard_normal((500, 8))
    y = np.zeros(8)
    running(x, y, 500, 8, opts=make_opts(backend, cols=8))
    want = np.ones(8)
    for i in range(500):
        want += x[i] * want * 0.001
    np.testing.assert_allclose(y, want, rtol=1e-12)


def cuda_code(f, x, y, labels):
    return parpy.print_compiled(f, [x, y, *x.shape], make_opts(CUDA, **labels))


def test_cuda_code_splits_the_rows():
    x, y = np.zeros((32768, 8192), np.float32), np.zeros(8192, np.float32)
    code = cuda_code(colsum_by_column, x, y, {"cols": 8192})
    # One kernel sets y to 0, the next runs 32 chunks of 1024 rows on 8192 threads each.
    assert "parpy_rows0 < 32" in code and "parpy_atomic_add(&v_y[v_j], (float)parpy_part0);" in code, code
    assert "parpy_kernel_colsum_by_column_k1<<<dim3(256), dim3(1024)" in code, code
    # Enough columns to fill the GPU, or a recurrence: as written.
    wide = cuda_code(colsum_by_column, np.zeros((1024, 1 << 19), np.float32), np.zeros(1 << 19, np.float32),
                     {"cols": 1 << 19})
    assert "parpy_rows" not in wide
    assert "parpy_rows" not in cuda_code(running, np.zeros((500, 8)), np.zeros(8), {"cols": 8})
    # Rows added one after the other: no host loop launching a kernel per row, the rows split.
    code = cuda_code(colsum_by_row, x, y, {"cols": 8192})
    host = code.split("static int32_t v_colsum_by_row")[1]
    assert "for (" not in host and host.count("PARPY_CHECK(cudaGetLastError(), \"launch of") == 2, host
    assert "parpy_rows0 < 32" in code and "parpy_atomic_add" in code, code


@needs_nvcc
def test_split_cuda_code_compiles(tmp_path):
    x, y = np.zeros((4000, 64)), np.zeros(64)
    for f in (colsum_by_column, colmean, colmax, colsum_by_row):
        nvcc_compile(cuda_code(f, x, y, {"cols": 64}), tmp_path)
    nvcc_compile(cuda_code(colsum_by_column, np.zeros((32768, 8192), np.float32), np.zeros(8192, np.float32),
                           {"cols": 8192}), tmp_path)


@pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")
def test_split_metal_code_runs_in_the_emulator():
    N, M = 3000, 50
    x = RNG.standard_normal((N, M)).astype(np.float32)
    opts = make_opts(METAL, cols=M)
    funs = (colsum_by_column, colmean, colmax, colsum_by_row)
    codes = [parpy.print_compiled(f, [x, np.zeros(M, np.float32), N, M], opts) for f in funs]
    assert all("parpy_rows0" in c for c in codes)
    progs = metal_emu.build(codes)
    wants = (x.sum(axis=0, dtype=np.float64), x.mean(axis=0, dtype=np.float64), 2.0 * x.max(axis=0),
             x.sum(axis=0, dtype=np.float64))
    for f, prog, want in zip(funs, progs, wants):
        y = np.zeros(M, np.float32)
        prog(f, [x, y, N, M])
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_no_split_when_arguments_share_memory():
    # y is row 0 of x: a split would read x[0, j] while other blocks add into it. The call is
    # specialised on the sharing and keeps the rows in order, as written.
    x = np.zeros((4096, 64), np.float32)
    assert "parpy_rows0" in cuda_code(colsum_by_column, x, np.zeros(64, np.float32), {"cols": 64})
    assert "parpy_rows0" not in cuda_code(colsum_by_column, x, x[0], {"cols": 64})


def test_arguments_sharing_memory_give_the_sequential_result(backend):
    N, M = 1000, 40
    x = RNG.standard_normal((N, M)).astype(np.float32)
    want = x.copy()
    # y is x[0]: `y[j] = 0` clears row 0, row 0 then adds itself (0), and the other rows follow.
    colsum_by_column(x, x[0], N, M, opts=make_opts(backend, cols=M))
    np.testing.assert_allclose(x[0], want[1:].sum(axis=0, dtype=np.float64), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(x[1:], want[1:])


@pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")
def test_arguments_sharing_memory_share_one_metal_buffer():
    # As on the host: y is row 0 of x, so the Metal program copies the matrix into one buffer that
    # both arguments point into (each in its own buffer, row 0 of x would keep its first values).
    N, M = 1000, 40
    x = RNG.standard_normal((N, M)).astype(np.float32)
    want = x.copy()
    code = parpy.print_compiled(colsum_by_column, [x, x[0], N, M], make_opts(METAL, cols=M))
    assert "parpy_rows0" not in code
    (prog,) = metal_emu.build([code])
    prog(colsum_by_column, [x, x[0], N, M])
    np.testing.assert_allclose(x[0], want[1:].sum(axis=0, dtype=np.float64), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(x[1:], want[1:])
