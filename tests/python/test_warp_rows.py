"""Rows packed into thread blocks on the Cuda backend (docs/gpu.md, Grid and blocks): when the
innermost parallel loops of a nest use at most 32 threads, each iteration of the outer loops (a
row) runs on a group of lanes of one warp, several rows per block, reducing with warp shuffles
and no block-wide barrier.

The numeric tests run on every enabled backend (on Cuda where a GPU is present) and compare every
element with numpy; the code tests print the Cuda program and compile it with nvcc (no GPU
needed); Metal keeps one row per threadgroup, run in the Metal emulator."""

import re

import metal_emu
import numpy as np
import parpy
import pytest
from common import needs_nvcc, nvcc_compile
from parpy import CompileBackend
from parpy import operators as op

CUDA = CompileBackend.Cuda
RNG = np.random.default_rng()


# ----- programs, as users write them -----------------------------------------------------------


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
def spmv_nonempty(indptr, indices, data, x, y, N):
    """The reduction under a branch on the row: the rows of a warp part ways."""
    parpy.label("rows")
    for i in range(N):
        if indptr[i + 1] > indptr[i]:
            s = 0.0
            parpy.label("nz")
            for k in range(indptr[i], indptr[i + 1]):
                s += data[k] * x[indices[k]]
            y[i] = s
        else:
            y[i] = -1.0


@parpy.jit
def spmv_twice(indptr, indices, data, x, y, N):
    """The reduction in a sequential loop of constant bounds: every row runs it as often."""
    parpy.label("rows")
    for i in range(N):
        y[i] = 0.0
        for r in range(2):
            s = 0.0
            parpy.label("nz")
            for k in range(indptr[i], indptr[i + 1]):
                s += data[k] * x[indices[k]]
            y[i] += s


@parpy.jit
def sums_upto(x, n, y, N, M):
    """Row i's sum added n[i] times: the reduction in a loop whose bounds are read at run time."""
    parpy.label("rows")
    for i in range(N):
        y[i] = 0.0
        for r in range(n[i]):
            s = 0.0
            parpy.label("cols")
            for j in range(M):
                s += x[i, j]
            y[i] += s


@parpy.jit
def spmv_into(indptr, indices, data, x, y, N):
    """The sum accumulated into y[i] itself (in y's element type)."""
    parpy.label("rows")
    for i in range(N):
        y[i] = 0.0
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            y[i] += data[k] * x[indices[k]]


@parpy.jit
def scaled_spmv(indptr, indices, data, x, scale, y, N):
    """A row's scale read before its reduction: scale is only read in the kernel."""
    parpy.label("rows")
    for i in range(N):
        c = scale[i]
        s = 0.0
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * x[indices[k]]
        y[i] = c * s


@parpy.jit
def rescaled_spmv(indptr, indices, data, x, y, N):
    """y[i] read before the reduction and written after it."""
    parpy.label("rows")
    for i in range(N):
        c = y[i]
        s = 0.0
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            s += data[k] * x[indices[k]]
        y[i] = c * s


@parpy.jit
def row_max(indptr, data, y, N):
    parpy.label("rows")
    for i in range(N):
        parpy.label("nz")
        for k in range(indptr[i], indptr[i + 1]):
            y[i] = op.max(y[i], data[k])


@parpy.jit
def centre_rows(x, y, N, M):
    """Two steps per row: its mean (a reduction), then every element less the mean (a parallel
    loop), and a row-dependent branch whose condition reads memory."""
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        parpy.label("sum")
        for j in range(M):
            s += x[i, j]
        m = s / M
        parpy.label("cols")
        for j in range(M):
            y[i, j] = x[i, j] - m
        if y[i, 0] > 0.0:
            parpy.label("cols")
            for j in range(M):
                y[i, j] = 2.0 * y[i, j]


@parpy.jit
def scaled_rows(x, y, N, M):
    """A row's columns on more than a warp, nothing shared between threads."""
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(M):
            y[i, j] = 2.0 * x[i, j] + x[i, M - 1 - j]


@parpy.jit
def row_sums(x, y, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(M):
            y[i] += x[i, j]


# ----- data ------------------------------------------------------------------------------------


def power_law_csr(rows, dtype, mean=12):
    """A CSR matrix with random power-law row lengths: empty rows, rows of a few entries and rows
    far longer than 32."""
    p = RNG.pareto(1.5, rows)
    lens = np.minimum(np.round(p / p.mean() * mean), 40 * mean).astype(np.int64)
    lens[RNG.choice(rows, rows // 10, replace=False)] = 0
    lens[RNG.choice(rows, 3, replace=False)] = [33, 100, 257]
    indptr = np.zeros(rows + 1, np.int64)
    indptr[1:] = np.cumsum(lens)
    indices = RNG.integers(0, rows, indptr[-1]).astype(np.int64)
    data = RNG.standard_normal(indptr[-1]).astype(dtype)
    return indptr, indices, data


def spmv_ref(indptr, indices, data, x):
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    prods = (data * x[indices]).astype(np.float64)  # each product in the element type, as the program
    return np.bincount(rows, weights=prods, minlength=len(indptr) - 1)


def opts(backend, k, rows, tpb=None):
    r = parpy.threads(rows) if tpb is None else parpy.threads(rows).tpb(tpb)
    o = parpy.par({"rows": r, "nz": parpy.threads(k).reduce()})
    o.backend = backend
    return o


def upto_opts(k):
    return parpy.par({"rows": parpy.threads(WHOLE), "cols": parpy.threads(k).reduce()})


def centre_opts(k):
    return parpy.par({"rows": parpy.threads(N), "sum": parpy.threads(k).reduce(), "cols": parpy.threads(k)})


# N is no multiple of any rows-per-block count, so the last block has rows past the end.
N = 1003
# WHOLE rows fill whole warps of rows for every group of lanes.
WHOLE = 1024


# ----- numbers, on every enabled backend (Cuda on a GPU) ---------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [4, 8, 16, 32])
def test_spmv(backend, k, dtype):
    indptr, indices, data = power_law_csr(N, dtype)
    x = RNG.standard_normal(N).astype(dtype)
    y = np.full(N, np.nan, dtype)
    spmv(indptr, indices, data, x, y, N, opts=opts(backend, k, N))
    np.testing.assert_allclose(y, spmv_ref(indptr, indices, data, x), rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [4, 8, 16, 32])
def test_spmv_into_the_output(backend, k, dtype):
    indptr, indices, data = power_law_csr(N, dtype)
    x = RNG.standard_normal(N).astype(dtype)
    y = np.full(N, np.nan, dtype)
    spmv_into(indptr, indices, data, x, y, N, opts=opts(backend, k, N))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, spmv_ref(indptr, indices, data, x), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [4, 8, 16, 32])
def test_row_max(backend, k, dtype):
    indptr, _, data = power_law_csr(N, dtype)
    y0 = RNG.standard_normal(N).astype(dtype) - 2.0  # empty rows keep their value
    y = y0.copy()
    row_max(indptr, data, y, N, opts=opts(backend, k, N))
    want = np.array([max([y0[i], *data[indptr[i]:indptr[i + 1]]]) for i in range(N)], dtype)
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("k", [8, 32])
def test_scaled_rows(backend, k):
    indptr, indices, data = power_law_csr(N, np.float64)
    x, scale = RNG.standard_normal(N), RNG.standard_normal(N)
    want = spmv_ref(indptr, indices, data, x)
    y = np.full(N, np.nan)
    scaled_spmv(indptr, indices, data, x, scale, y, N, opts=opts(backend, k, N))
    np.testing.assert_allclose(y, scale * want, rtol=1e-12, atol=1e-12)
    y = scale.copy()
    rescaled_spmv(indptr, indices, data, x, y, N, opts=opts(backend, k, N))
    np.testing.assert_allclose(y, scale * want, rtol=1e-12, atol=1e-12)
    # The same array as x and scale: both only read.
    y = np.full(N, np.nan)
    scaled_spmv(indptr, indices, data, x, x, y, N, opts=opts(backend, k, N))
    np.testing.assert_allclose(y, x * want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,rows,tpb", [(32, N, 128), (24, N, None), (8, 300, None), (4, 5, None)])
def test_spmv_other_shapes(backend, k, rows, tpb):
    # The outer label's tpb, a thread count that is no power of two, fewer outer workers than rows
    # (grid-stride over rows), and fewer rows than a block holds.
    indptr, indices, data = power_law_csr(N, np.float64)
    x = RNG.standard_normal(N)
    y = np.full(N, np.nan)
    spmv(indptr, indices, data, x, y, N, opts=opts(backend, k, rows, tpb))
    np.testing.assert_allclose(y, spmv_ref(indptr, indices, data, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,workers", [(4, WHOLE), (8, WHOLE), (16, WHOLE), (8, 256), (8, 300), (32, WHOLE)])
def test_spmv_rows_filling_whole_warps(backend, k, workers):
    # Rows that fill whole warps, one or four per worker, 300 workers for 1024 rows (some run one
    # row more than others), a branch on the row around the reduction and a sequential loop
    # around it.
    indptr, indices, data = power_law_csr(WHOLE, np.float64)
    x = RNG.standard_normal(WHOLE)
    want = spmv_ref(indptr, indices, data, x)
    for fun, expect in [(spmv, want), (spmv_nonempty, np.where(np.diff(indptr) > 0, want, -1.0)),
                        (spmv_twice, 2.0 * want)]:
        y = np.full(WHOLE, np.nan)
        fun(indptr, indices, data, x, y, WHOLE, opts=opts(backend, k, workers))
        np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12, err_msg=fun.__name__)
    y0 = RNG.standard_normal(WHOLE) - 2.0
    y = y0.copy()
    row_max(indptr, data, y, WHOLE, opts=opts(backend, k, workers))
    np.testing.assert_array_equal(y, [max([y0[i], *data[indptr[i]:indptr[i + 1]]]) for i in range(WHOLE)])


@pytest.mark.parametrize("k", [4, 16])
def test_reduction_in_a_loop_of_run_time_bounds(backend, k):
    x = RNG.standard_normal((WHOLE, k))
    n = RNG.integers(0, 4, WHOLE)
    y = np.full(WHOLE, np.nan)
    o = upto_opts(k)
    o.backend = backend
    sums_upto(x, n, y, WHOLE, k, opts=o)
    np.testing.assert_allclose(y, n * x.sum(axis=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("M", [3, 16, 45])
def test_several_steps_per_row(backend, M):
    x = RNG.standard_normal((N, M))
    y = np.full((N, M), np.nan)
    o = centre_opts(16)
    o.backend = backend
    centre_rows(x, y, N, M, opts=o)
    want = x - x.mean(axis=1, keepdims=True)
    want[want[:, 0] > 0] *= 2.0
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("M,tpb", [(64, 256), (100, 512), (96, 320), (40, 1024)])
def test_rows_of_whole_warps(backend, M, tpb):
    # Rows of 2, 4 (100 columns on 128 threads) and 3 warps packed into the blocks the label asks
    # for (Cuda), the last block's rows past the end; and no block size asked.
    x = RNG.standard_normal((N, M))
    y = np.full((N, M), np.nan)
    o = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M).tpb(tpb)})
    o.backend = backend
    scaled_rows(x, y, N, M, opts=o)
    np.testing.assert_array_equal(y, 2.0 * x + x[:, ::-1])


# ----- the Cuda code, here without a GPU -------------------------------------------------------


def cuda_code(fun, args, o):
    o.backend = CUDA
    return parpy.print_compiled(fun, args, o)


def spmv_args(dtype=np.float32, rows=N):
    indptr, indices, data = power_law_csr(rows, dtype)
    return [indptr, indices, data, np.zeros(rows, dtype), np.zeros(rows, dtype), rows]


def kernel_of(code):
    return code[code.index("__global__"):code.index("static int32_t")]


@pytest.mark.parametrize("k,group,rows_per_block", [(4, 4, 32), (8, 8, 16), (16, 16, 8), (32, 32, 4), (24, 32, 4),
                                                    (1, 1, 128)])
def test_cuda_packs_rows(k, group, rows_per_block):
    code = cuda_code(spmv, spmv_args(), opts(CUDA, k, N))
    blocks = -(-N // rows_per_block)
    assert f"<<<dim3({blocks}), dim3({rows_per_block * group}), 0, parpy_stream>>>" in code
    kern = kernel_of(code)
    assert f"// rows packed: {rows_per_block} rows per block of {rows_per_block * group} threads, each on " in kern
    assert f"__launch_bounds__({rows_per_block * group})" in kern
    assert f"parpy_group_reduce_add(" in kern and f", {group});" in kern
    assert "parpy_block_reduce" not in kern and "parpy_syncthreads" not in kern and "__syncthreads" not in kern
    # Rows past the end do nothing.
    assert f"if ((parpy_outer < {N}))" in kern
    # One lane of the row's group stores.
    assert "if ((parpy_w1 == 0))" in kern and "parpy_tid == 0" not in kern


def test_cuda_uses_the_outer_tpb():
    code = cuda_code(spmv, spmv_args(), opts(CUDA, 16, N, tpb=256))
    assert f"<<<dim3({-(-N // 16)}), dim3(256), 0, parpy_stream>>>" in code


def test_cuda_no_guard_when_rows_fill_the_blocks():
    code = cuda_code(spmv, spmv_args(rows=1024), opts(CUDA, 32, 1024))
    assert "<<<dim3(256), dim3(128), 0, parpy_stream>>>" in code
    assert "parpy_outer < " not in kernel_of(code)


def test_cuda_few_rows_use_a_smaller_block():
    code = cuda_code(spmv, spmv_args(rows=5), opts(CUDA, 4, 5))
    assert "<<<dim3(1), dim3(32), 0, parpy_stream>>>" in code  # 8 rows of 4 lanes, 3 of them idle


def test_cuda_barriers_become_group_barriers():
    M = 45
    code = cuda_code(centre_rows, [np.zeros((N, M)), np.zeros((N, M)), N, M], centre_opts(16))
    kern = kernel_of(code)
    assert "parpy_group_sync(16);" in kern
    assert "parpy_syncthreads" not in kern and "parpy_block_reduce" not in kern


def test_cuda_no_barrier_behind_reads_of_arrays_the_kernel_does_not_write():
    args = spmv_args(np.float64)
    # scale is read before the reduction and written nowhere: no barrier between the lanes there.
    code = cuda_code(scaled_spmv, args[:4] + [np.ones(N)] + args[4:], opts(CUDA, 8, N))
    kern = kernel_of(code)
    assert "v_c = v_scale[v_i];" in kern and "parpy_group_sync" not in kern, kern
    # y is read there and written after the reduction: the lanes meet before another lane's store.
    kern = kernel_of(cuda_code(rescaled_spmv, args, opts(CUDA, 8, N)))
    assert re.search(r"v_c = v_y\[v_i\];\n\s*parpy_group_sync\(8\);", kern), kern
    # scale is y under another name: written, so the barrier stays.
    y = np.zeros(N)
    kern = kernel_of(cuda_code(scaled_spmv, args[:4] + [y, y, N], opts(CUDA, 8, N)))
    assert re.search(r"v_c = v_scale\[v_i\];\n\s*parpy_group_sync\(8\);", kern), kern
    # A block per row (64 lanes): the same rule for block barriers.
    kern = kernel_of(cuda_code(scaled_spmv, args[:4] + [np.ones(N)] + args[4:], opts(CUDA, 64, N)))
    assert "parpy_syncthreads" not in kern.split("v_c = v_scale[v_i];")[1].split("for (")[0], kern


@pytest.mark.parametrize("labels", [
    {"rows": parpy.threads(N), "nz": parpy.threads(64).reduce()},  # more than a warp: a block per row
    {"rows": parpy.threads(1), "nz": parpy.threads(32).reduce()},  # one row at a time
])
def test_cuda_other_kernels_keep_a_block_per_row(labels):
    o = parpy.par(labels)
    code = cuda_code(spmv, spmv_args(), o)
    assert "rows packed" not in code and "parpy_group_" not in code


@parpy.jit
def one_row(indptr, indices, data, x, y):
    with parpy.gpu:
        s = 0.0
        parpy.label("nz")
        for k in range(indptr[0], indptr[1]):
            s += data[k] * x[indices[k]]
        y[0] = s


def test_cuda_a_single_row_is_not_packed():
    indptr, indices, data = power_law_csr(4, np.float32)
    code = cuda_code(one_row, [indptr, indices, data, np.zeros(4, np.float32), np.zeros(4, np.float32)],
                     parpy.par({"nz": parpy.threads(32).reduce()}))
    assert "rows packed" not in code and "parpy_block_reduce_add" in code


@pytest.mark.parametrize("M,tpb,rows,warps", [(64, 256, 4, 2), (100, 512, 4, 4), (96, 320, 3, 3)])
def test_cuda_packs_rows_of_whole_warps(M, tpb, rows, warps):
    # A row's threads are whole warps filling at most half the block the label asks for: several
    # rows per block, as long as they need no barrier (the one after the columns loop ends the
    # kernel, so it orders nothing and goes).
    code = cuda_code(scaled_rows, [np.zeros((N, M)), np.zeros((N, M)), N, M],
                     parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M).tpb(tpb)}))
    kern = kernel_of(code)
    assert f"// rows packed: {rows} rows per block of {rows * warps * 32} threads, each on {warps} warps" in kern
    assert f"<<<dim3({-(-N // rows)}), dim3({rows * warps * 32}), 0, parpy_stream>>>" in code
    assert "syncthreads" not in kern and "parpy_group_" not in kern
    assert f"if ((parpy_outer < {N}))" in kern


def test_cuda_rows_of_whole_warps_that_synchronise_keep_their_block():
    # A reduction over the row's 64 threads is a block reduction: a block per row.
    code = cuda_code(row_sums, [np.zeros((N, 64)), np.zeros(N), N, 64],
                     parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(64).tpb(256).reduce()}))
    assert "rows packed" not in code and "parpy_block_reduce_add" in code
    assert f"<<<dim3({N}), dim3(64), 0, parpy_stream>>>" in code
    # Without a block size asked, a block per row.
    code = cuda_code(scaled_rows, [np.zeros((N, 64)), np.zeros((N, 64)), N, 64],
                     parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(64)}))
    assert "rows packed" not in code and f"<<<dim3({N}), dim3(64), 0, parpy_stream>>>" in code


@needs_nvcc
@pytest.mark.parametrize("k", [4, 8, 16, 32])
def test_cuda_packed_code_compiles(tmp_path, k):
    progs = []
    for dtype in (np.float32, np.float64):
        a = spmv_args(dtype)
        progs.append(cuda_code(spmv, a, opts(CUDA, k, N)))
        progs.append(cuda_code(spmv_into, a, opts(CUDA, k, N)))
        progs.append(cuda_code(row_max, [a[0], a[2], a[4], N], opts(CUDA, k, N)))
    progs.append(cuda_code(spmv, spmv_args(rows=WHOLE), opts(CUDA, k, WHOLE)))
    progs.append(cuda_code(centre_rows, [np.zeros((N, 45)), np.zeros((N, 45)), N, 45], centre_opts(k)))
    progs.append(cuda_code(scaled_rows, [np.zeros((N, 8 * k)), np.zeros((N, 8 * k)), N, 8 * k],
                           parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(8 * k).tpb(512)})))
    for i, code in enumerate(progs):
        assert "rows packed" in code
        d = tmp_path / str(i)
        d.mkdir()
        nvcc_compile(code, d)


# ----- Metal: one row per threadgroup, run in the emulator --------------------------------------


@pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")
@pytest.mark.parametrize("k", [8, 32])
def test_metal_keeps_a_threadgroup_per_row(k):
    indptr, indices, data = power_law_csr(N, np.float32)
    x = RNG.standard_normal(N).astype(np.float32)
    y = np.full(N, np.nan, np.float32)
    o = opts(CompileBackend.Metal, k, N)
    code = parpy.print_compiled(spmv_into, [indptr.astype(np.int32), indices.astype(np.int32), data, x, y, N], o)
    assert "rows packed" not in code and re.search(r"launch\(0, 1003, 32,", code)
    (prog,) = metal_emu.build([code])
    prog(spmv_into, [indptr.astype(np.int32), indices.astype(np.int32), data, x, y, N])
    np.testing.assert_allclose(y, spmv_ref(indptr, indices, data, x), rtol=1e-4, atol=1e-4)
