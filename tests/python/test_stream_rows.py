"""Rows in streams on Cuda (docs/gpu.md, Optimisations): a parallel loop over rows whose lanes
reduce over `range(a[i], a[i + 1])` (a CSR product) runs 64 consecutive rows on a block of 256
threads, which computes the values of their whole range together into shared memory, each row's 4
lanes reducing its part there. The numeric tests run on every enabled backend (on Cuda where a GPU
is present) against numpy or plain Python, every element; the code tests print the Cuda program and
compile it with nvcc (no GPU needed)."""

import re

import numpy as np
import parpy
import pytest
from common import needs_nvcc, nvcc_compile
from parpy import CompileBackend
from parpy import operators as op

CUDA = CompileBackend.Cuda
RNG = np.random.default_rng()
STREAM = "parpy_stream_reduce<"
# Enough rows that the blocks fill half the GPU (2^17 threads: 512 blocks of 64 rows), and no
# multiple of 64: the last block has rows past the end.
N = 40003


@parpy.jit
def spmv(indptr, indices, data, x, y, N):
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * x[indices[k]]
        y[i] = s


@parpy.jit
def scaled_max(indptr, data, scale, y, N):
    """A local read before the reduction, a maximum, statements after it."""
    parpy.label("rows")
    for i in range(N):
        c = scale[i]
        m = -1.0e30
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            m = op.max(m, data[k])
        y[i] = c * m
        if m < -1.0e29:
            y[i] = -1.0


@parpy.jit
def shifted(indptr, data, y, N):
    """Rows 1 .. N - 1 over the range of the row before: a[i - 1] .. a[i]."""
    parpy.label("rows")
    for i in range(1, N):
        s = 0.0
        parpy.label("nz")
        for k in range(indptr[i - 1], indptr[i]):
            s += data[k]
        y[i] = s


@parpy.jit
def row_weighted(indptr, data, y, N):
    """The value reads the row: no streams."""
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * op.float64(i)
        y[i] = s


@parpy.jit
def two_arrays(starts, ends, data, y, N):
    """Bounds from two arrays: a row's range is not the next one's start."""
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        parpy.label("nz")
        for k in range(starts[i], ends[i]):
            s += data[k]
        y[i] = s


def csr(rows, dtype=np.float64, mean=10):
    """Random row lengths: empty rows, short ones and a few far longer than a block's share."""
    lens = RNG.integers(0, 2 * mean, rows)
    lens[RNG.choice(rows, rows // 10, replace=False)] = 0
    lens[RNG.choice(rows, 4, replace=False)] = [65, 700, 2049, 5000]
    indptr = np.zeros(rows + 1, np.int64)
    indptr[1:] = np.cumsum(lens)
    indices = RNG.integers(0, rows, indptr[-1]).astype(np.int64)
    return indptr, indices, RNG.standard_normal(indptr[-1]).astype(dtype)


def row_sums(indptr, values):
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return np.bincount(rows, weights=values.astype(np.float64), minlength=len(indptr) - 1)


def opts(backend, rows=N, k=8, tpb=None):
    r = parpy.threads(rows) if tpb is None else parpy.threads(rows).tpb(tpb)
    o = parpy.par({"rows": r, "nz": parpy.threads(k).reduce()})
    o.backend = backend
    return o


# ----- numbers, on every enabled backend (Cuda on a GPU) ---------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,rows,tpb", [(8, N, None), (32, N, None), (4, N, 128), (8, 600, None), (16, N, 512)])
def test_spmv(backend, dtype, k, rows, tpb):
    # The default blocks, the rows label's block size (128, 512: 32 and 128 rows a block) and fewer
    # threads than blocks of rows (600: each block walks several).
    indptr, indices, data = csr(N, dtype)
    x = RNG.standard_normal(N).astype(dtype)
    y = np.full(N, np.nan, dtype)
    spmv(indptr, indices, data, x, y, N, opts=opts(backend, rows, k, tpb))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, row_sums(indptr, data * x[indices]), rtol=tol, atol=tol)


def test_bounds_that_decrease(backend):
    # Bounds that are no CSR row pointers: many ranges empty (a[i + 1] <= a[i]), others overlapping
    # (each block's rows reduce their own ranges from memory), one block of them in order.
    a = RNG.integers(0, 1000, N + 1).astype(np.int64)
    a[640:705] = np.sort(a[640:705])
    data = RNG.standard_normal(1000)
    x = RNG.standard_normal(N)
    indices = RNG.integers(0, N, 1000).astype(np.int64)
    y = np.full(N, np.nan)
    spmv(a, indices, data, x, y, N, opts=opts(backend))
    want = [sum(data[k] * x[indices[k]] for k in range(a[i], a[i + 1])) for i in range(N)]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_statements_around_the_reduction(backend):
    indptr, _, data = csr(N)
    scale = RNG.standard_normal(N)
    y = np.full(N, np.nan)
    scaled_max(indptr, data, scale, y, N, opts=opts(backend))
    want = np.array([scale[i] * data[indptr[i]:indptr[i + 1]].max() if indptr[i + 1] > indptr[i] else -1.0
                     for i in range(N)])
    np.testing.assert_array_equal(y, want)
    y = np.full(N, np.nan)
    shifted(indptr, data, y, N, opts=opts(backend, N - 1))
    np.testing.assert_allclose(y[1:], row_sums(indptr, data)[:-1], rtol=1e-12, atol=1e-12)
    assert np.isnan(y[0])


# ----- the Cuda code, here without a GPU -------------------------------------------------------


def cuda_code(fn, args, o):
    o.backend = CUDA
    return parpy.print_compiled(fn, args, o)


def spmv_args(rows=N, dtype=np.float64):
    indptr, indices, data = csr(rows, dtype)
    return [indptr, indices, data, np.zeros(rows, dtype), np.zeros(rows, dtype), rows]


def test_streams_in_the_cuda_code():
    code = cuda_code(spmv, spmv_args(), opts(CUDA))
    # 626 blocks of 64 rows on 256 threads; 2048 values a round, 8 loads a thread.
    assert "<<<dim3(626), dim3(256), 0, parpy_stream>>>" in code, code
    assert re.search(r"parpy_stream_reduce<256, 64, 2048, 8>\(&v_indptr\[\(0 \+ \(parpy_sblock0 \* 64\)\)\], ", code), code
    assert "[&](int64_t parpy_sk0) -> double { return (v_data[parpy_sk0] * v_x[v_indices[parpy_sk0]]); }" in code, code
    # A row's first lane stores it.
    assert "parpy_mod<int64_t>(parpy_sthread0, 4) == 0" in code and "v_y[v_i] = " in code
    # The rows label's block size: 512 threads over 128 rows.
    code = cuda_code(spmv, spmv_args(), opts(CUDA, tpb=512))
    assert "<<<dim3(313), dim3(512), 0, parpy_stream>>>" in code and "parpy_stream_reduce<512, 128, 4096, 8>" in code


@pytest.mark.parametrize("what", ["few rows", "value reads the row", "two arrays", "shared memory",
                                  "sequential inner loop", "wide inner loop", "two lanes", "accumulated in the output"])
def test_no_streams(what):
    args, fn, o = spmv_args(), spmv, opts(CUDA)
    if what == "few rows":  # 500 blocks of 256 threads do not fill half the GPU
        args, o = spmv_args(32000), opts(CUDA, 32000)
    elif what == "value reads the row":
        fn, args = row_weighted, [args[0], args[2], args[4], N]
    elif what == "two arrays":
        fn, args = two_arrays, [args[0][:-1], args[0][1:].copy(), args[2], args[4], N]
    elif what == "shared memory":
        args[4] = args[3]
    elif what == "sequential inner loop":
        o = parpy.par({"rows": parpy.threads(N)})
    elif what == "wide inner loop":
        o = opts(CUDA, N, 64)
    elif what == "two lanes":  # a row gets 4 lanes in a stream: more threads than the label asked for
        o = opts(CUDA, N, 2)
    elif what == "accumulated in the output":
        from test_warp_rows import spmv_into
        fn = spmv_into
    assert STREAM not in cuda_code(fn, args, o)


@needs_nvcc
def test_stream_code_compiles(tmp_path):
    progs = []
    for dtype in (np.float32, np.float64):
        a = spmv_args(dtype=dtype)
        progs.append(cuda_code(spmv, a, opts(CUDA)))
        progs.append(cuda_code(scaled_max, [a[0], a[2], a[3], a[4], N], opts(CUDA)))
    a32 = spmv_args()
    a32[0] = a32[0].astype(np.int32)  # 32-bit row pointers
    progs.append(cuda_code(spmv, a32, opts(CUDA, tpb=128)))
    for i, code in enumerate(progs):
        assert STREAM in code
        d = tmp_path / str(i)
        d.mkdir()
        nvcc_compile(code, d)
