"""fuse_map_reduce on the Cuda backend: a parallel map followed by a reduction over the same
range becomes one loop whose reduction reads the stored value from a register. Checked in the
generated code (no GPU needed) and against numpy on a GPU, including the cases it must not fuse."""

import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from test_cuda import softmax as softmax_rows

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
    return parpy.print_compiled(fun, [x, x.copy(), np.zeros(64, np.float32), 64, M], opts(PAR))


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
    assert "parpy_fused_out" in code and "parpy_max<float>(parpy_acc0, v_x[" in code


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


# ---- 128-bit accesses (gpu/vectorize) ----


@parpy.jit
def scale_add(a, x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = a * x[i] + y[i]


def test_vector_variant_and_alignment_check():
    x = np.zeros(4099, np.float32)
    code = parpy.print_compiled(scale_add, [2.0, x, x.copy(), 4099], opts({"N": parpy.threads(1024)}))
    assert "scale_add_k0_vec(" in code
    assert "if (parpy_aligned(v_x, 16) && parpy_aligned(v_y, 16))" in code
    d = np.zeros(4099, np.float64)
    code = parpy.print_compiled(scale_add, [2.0, d, d.copy(), 4099], opts({"N": parpy.threads(1024)}))
    assert "parpy_aligned(v_x, 16)" in code and "parpy_vl1 " in code and "parpy_vl2 " not in code.split("_vec(")[1].split("\n}")[0].replace("parpy_vl2 =", "")


def test_rows_not_multiple_of_the_vector_stay_scalar():
    x = np.zeros((64, 301), np.float32)
    code = parpy.print_compiled(tf_softmax_like, [x, x.copy(), 64, 301], opts({"rows": parpy.threads(64), "cols": parpy.threads(256)}))
    assert "_vec(" not in code


@parpy.jit
def tf_softmax_like(x, out, N, M):
    parpy.label("rows")
    for i in range(N):
        m = parpy.operators.max(x[i, :])
        parpy.label("cols")
        out[i, :] = parpy.operators.exp(x[i, :] - m)


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8])
@pytest.mark.parametrize("N", [7, 100003])
def test_vectorized_elementwise(dtype, N):
    rng = np.random.default_rng()
    x = (rng.standard_normal(N) * 10).astype(dtype)
    y = (rng.standard_normal(N) * 10).astype(dtype)
    a = dtype(3) if np.issubdtype(dtype, np.integer) else 3.0
    ref = (np.asarray(a, dtype) * x + y).astype(dtype)
    scale_add(a, x, y, N, opts=opts({"N": parpy.threads(min(N, 2048))}))
    if np.issubdtype(dtype, np.integer):
        np.testing.assert_array_equal(y, ref)
    else:
        # A fused multiply-add rounds once: allow two units in the last place of the terms.
        ulp = 2 * np.finfo(dtype).eps * (3 * np.abs(x.astype(np.float64)) + np.abs(ref.astype(np.float64)))
        assert np.all(np.abs(y.astype(np.float64) - ref.astype(np.float64)) <= ulp)


@needs_gpu
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4])
def test_misaligned_views_use_the_scalar_kernel(offset):
    torch = pytest.importorskip("torch")
    N = 100000
    base_x = torch.randn(N + 8, device="cuda")
    base_y = torch.randn(N + 8, device="cuda")
    x, y = base_x[offset:offset + N], base_y[8 - offset:8 - offset + N]
    ref = 2.0 * x + y
    scale_add(2.0, x, y, N, opts=opts({"N": parpy.threads(4096)}))
    torch.testing.assert_close(y, ref)
    M = 1024
    xs = torch.randn(64 * M + 8, device="cuda")[offset:offset + 64 * M].view(64, M)
    out = torch.empty(64 * M + 8, device="cuda")[3:3 + 64 * M].view(64, M)
    tf_softmax_like(xs, out, 64, M, opts=opts({"rows": parpy.threads(64), "cols": parpy.threads(256)}))
    torch.testing.assert_close(out, torch.exp(xs - xs.max(dim=1, keepdim=True).values))


# ---- Rows kept in registers (gpu/cache_rows) ----


@parpy.jit
def reverse_rows(x, out, N, M):
    # The second loop reads elements that other threads wrote: nothing may be cached.
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        for j in range(M):
            out[i, j] = x[i, j] * 2.0
        parpy.label("cols")
        for j in range(M):
            x[i, j] = out[i, M - 1 - j] + 1.0


def kernel_bodies(code):
    return [k for k in code.split("__global__")[1:]]


def test_softmax_row_is_read_once_and_written_once():
    x = np.zeros((64, 1024), np.float32)
    for cols in (128, 256):
        code = parpy.print_compiled(softmax_rows, [x, x.copy(), 64, 1024], opts({"rows": parpy.threads(64), "cols": parpy.threads(cols)}))
        for body in kernel_bodies(code):
            lines = body.splitlines()
            loads = [ln for ln in lines if "x[" in ln]
            assert all(ln.strip().startswith("parpy_held") and ln.endswith("];") for ln in loads)
            stores = [ln for ln in lines if ln.strip().startswith("v_out[")]
            assert not [ln for ln in lines if "out[" in ln and not ln.strip().startswith("v_out[")]
            assert len(loads) == len(stores) == 1024 // cols


def test_reads_of_other_threads_elements_are_not_cached():
    x = np.zeros((64, 1024), np.float32)
    code = parpy.print_compiled(reverse_rows, [x, x.copy(), 64, 1024], opts({"rows": parpy.threads(64), "cols": parpy.threads(256)}))
    scalar = kernel_bodies(code)[0]
    assert scalar.count("(v_out[((v_i * 1024) + (1023 - ") == 4  # read from memory in each unrolled iteration


@needs_gpu
@pytest.mark.parametrize("shape,cols,tpb,clusters", [((64, 1024), 128, 1024, False), ((64, 1024), 256, 1024, False),
                                                    ((300, 2048), 512, 1024, False), ((16, 16384), 4096, 512, True),
                                                    ((16, 1024), 64, 1024, False)])
def test_cached_rows_results(shape, cols, tpb, clusters):
    N, M = shape
    o = opts({"rows": parpy.threads(N), "cols": parpy.threads(cols).tpb(tpb)})
    o.use_cuda_thread_block_clusters = clusters
    x = rand(shape) * 4
    out = np.zeros_like(x)
    softmax_rows(x, out, N, M, opts=o)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-8)
    out = np.zeros_like(x)
    ref_x = x[:, ::-1] * 2.0 + 1.0
    reverse_rows(x, out, N, M, opts=o)
    np.testing.assert_allclose(x, ref_x, rtol=1e-6)
