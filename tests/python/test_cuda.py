"""The Cuda backend: generated CUDA compiles everywhere nvcc is (no GPU needed); the programs
run on a GPU where one is present, with numpy, torch and CuPy arrays."""

import re
import shutil
import subprocess

import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from common import axpy

CUDA = CompileBackend.Cuda
cuda_enabled = parpy.backend.is_enabled(CUDA)
needs_gpu = pytest.mark.skipif(not cuda_enabled, reason="no CUDA GPU here")
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


# Host code (outside parallel code) that touches an array: what was found, and the rewrites.
OUTSIDE = (" of an array outside parallel code: on a GPU backend that code runs on the CPU, which "
           "cannot reach the array in GPU memory. ")
WRITE_OUTSIDE = ("Found a write" + OUTSIDE + "Write it in a `with parpy.gpu:` block or a parallel "
                 "loop of one thread (parpy.threads(1)), or with numpy before or after the call.")
READ_OUTSIDE = ("Found a read" + OUTSIDE + "Read it in a `with parpy.gpu:` block or a parallel loop "
                "of one thread (parpy.threads(1)), or read it with numpy before the call and pass "
                "the value as an argument.")


def opts_for(par, backend=CUDA):
    opts = parpy.par(par)
    opts.backend = backend
    return opts


@parpy.jit
def sum_op(x, y, N):
    parpy.label("N")
    y[0] = parpy.operators.sum(x[:])


@parpy.jit
def sum_gpu(x, y, N):
    with parpy.gpu:
        parpy.label("N")
        y[0] = parpy.operators.sum(x[:])


@parpy.jit
def row_sum(x, y, N, M):
    parpy.label("outer")
    for i in range(N):
        y[i] = 0.0
        parpy.label("inner")
        for j in range(M):
            y[i] += x[i, j]


@parpy.jit
def row_max(x, y, N, M):
    parpy.label("outer")
    for i in range(N):
        parpy.label("inner")
        y[i] = parpy.operators.max(x[i, :])


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
def normalize(x, N, M):
    parpy.label("rows")
    for i in range(N):
        s = 0.0
        parpy.label("red")
        for j in range(M):
            s += x[i, j]
        parpy.label("cols")
        for j in range(M):
            x[i, j] = x[i, j] / s


@parpy.jit
def strided(x, y, N):
    parpy.label("N")
    for i in range(0, N, 2):
        y[i] = x[i] + 1.0


@parpy.jit
def matvec(A, x, y, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        y[i] = parpy.operators.sum(A[i, :] * x[:])


@parpy.jit
def int_ops(a, b, out, N):
    parpy.label("N")
    for i in range(N):
        out[i] = a[i] // b[i] + a[i] % b[i]


@parpy.jit
def half_scale(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] * parpy.operators.float16(2.0)


# (function, args, parallelize) of representative programs, for the compile-only check.
def programs():
    f32 = np.zeros(4096, np.float32)
    m32 = np.zeros((64, 300), np.float32)
    return [
        (sum_op, [f32, f32[:1], 4096], {"N": parpy.threads(4096)}),
        (sum_op, [f32, f32[:1], 4096], {"N": parpy.threads(100)}),
        (sum_gpu, [f32, f32[:1], 4096], {"N": parpy.threads(4096).tpb(512)}),
        (sum_gpu, [f32[:10], f32[:1], 10], {"N": parpy.threads(10)}),
        (row_sum, [m32, m32[:, 0].copy(), 64, 300], {"outer": parpy.threads(64), "inner": parpy.threads(128).reduce()}),
        (row_sum, [m32, m32[:, 0].copy(), 64, 300], {"outer": parpy.threads(64), "inner": parpy.threads(32).reduce()}),
        (row_sum, [m32, m32[:, 0].copy(), 64, 300], {"outer": parpy.threads(64)}),
        (row_max, [m32, m32[:, 0].copy(), 64, 300], {"outer": parpy.threads(64), "inner": parpy.threads(256)}),
        (row_max, [m32, m32[:, 0].copy(), 64, 300], {"outer": parpy.threads(64), "inner": parpy.threads(2048).tpb(512)}),
        (softmax, [m32, m32.copy(), 64, 300], {"rows": parpy.threads(64), "cols": parpy.threads(256)}),
        (softmax, [m32, m32.copy(), 64, 300], {"rows": parpy.threads(64), "cols": parpy.threads(1024)}),
        (normalize, [m32, 64, 300], {"rows": parpy.threads(64), "cols": parpy.threads(300), "red": parpy.threads(300).reduce()}),
        (axpy, [2.0, f32, f32.copy(), 4096], {"N": parpy.threads(4096)}),
        (axpy, [2.0, f32, f32.copy(), 4096], {"N": parpy.threads(1000)}),
        (axpy, [np.float32(2.0)[()], f32, f32.copy(), 4096], {"N": parpy.threads(4096).tpb(256)}),
        (strided, [f32, f32.copy(), 4096], {"N": parpy.threads(3000)}),
        (matvec, [m32, np.zeros(300, np.float32), np.zeros(64, np.float32), 64, 300], {"rows": parpy.threads(64), "cols": parpy.threads(128)}),
        (int_ops, [np.zeros(100, np.int64), np.ones(100, np.int64), np.zeros(100, np.int64), 100], {"N": parpy.threads(100)}),
        (int_ops, [np.zeros(100, np.int32), np.ones(100, np.int32), np.zeros(100, np.int32), 100], {"N": parpy.threads(100)}),
        (half_scale, [np.zeros(100, np.float16), np.zeros(100, np.float16), 100], {"N": parpy.threads(100)}),
        (matvec, [np.zeros((8, 5000), np.float64), np.zeros(5000), np.zeros(8), 8, 5000], {"rows": parpy.threads(8), "cols": parpy.threads(1024)}),
        (softmax, [m32, m32.copy(), 64, 300], {"rows": parpy.threads(64), "cols": parpy.threads(4096).tpb(512)}),
    ]


@needs_nvcc
@pytest.mark.parametrize("i", range(22))
def test_generated_cuda_compiles(i, tmp_path):
    fun, args, par = programs()[i]
    code = parpy.print_compiled(fun, args, opts_for(par))
    src = tmp_path / "k.cu"
    src.write_text(code)
    r = subprocess.run(["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(),
                        str(src), "-o", str(tmp_path / "k.o")], capture_output=True, text=True, check=False)
    assert r.returncode == 0, code + "\n" + r.stderr


def test_seed_error_without_gpu():
    @parpy.jit
    def sum_loop(x, y, N):
        y[0] = 0.0
        parpy.label("N")
        for i in range(N):
            y[0] += x[i]

    x = np.zeros(10, np.float32)
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(sum_loop, [x, x[:1], 10], opts_for({"N": parpy.threads(10).reduce()}))
    msg = str(e.value)
    assert msg.startswith(WRITE_OUTSIDE + "\n\nOn line "), msg
    assert msg.endswith("        y[0] = 0.0\n        ^^^^\n")


def test_host_read_is_rejected():
    @parpy.jit
    def host_read(x, y, N):
        n = x[0]
        with parpy.gpu:
            y[0] = n

    x = np.zeros(10, np.float32)
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(host_read, [x, x[:1], 10], opts_for({}))
    msg = str(e.value)
    assert msg.startswith(READ_OUTSIDE + "\n\nOn line "), msg
    assert msg.endswith("        n = x[0]\n            ^^^^\n"), msg


def test_inconsistent_parallel_structure():
    # Siblings may differ in their innermost layer only (tests/python/test_gpu_layers.py).
    @parpy.jit
    def siblings(x, N):
        parpy.label("N")
        for i in range(N):
            parpy.label("A")
            for j in range(N):
                parpy.label("C")
                for k in range(N):
                    x[i, j, k] = 1.0
            parpy.label("B")
            for j in range(N):
                parpy.label("C")
                for k in range(N):
                    x[i, j, k] = 2.0

    x = np.zeros((8, 8, 8), np.float32)
    opts = opts_for({"N": parpy.threads(8), "A": parpy.threads(8), "B": parpy.threads(4), "C": parpy.threads(64)})
    with pytest.raises(RuntimeError, match="Found inconsistent parallel structures"):
        parpy.print_compiled(siblings, [x, 8], opts)


def test_wide_loop_under_a_branch_after_a_shared_local_is_an_error_not_a_crash():
    # Found by the Cuda fuzzer: splitting the nest at `c` left a branch holding a loop wider than
    # a block, which was split again without end (a stack overflow).
    @parpy.jit
    def branchy(x, y, N, M):
        parpy.label("N")
        for i in range(N):
            c = x[i, 0]
            if c > 0.0:
                parpy.label("M")
                for j in range(M):
                    y[i, j] = c

    x = np.zeros((8, 3000), np.float32)
    # A ParallelismError (a RuntimeError): the spec asks for more than a block gives the nest.
    with pytest.raises(parpy.ParallelismError, match="needs a barrier across thread blocks inside a statement"):
        parpy.print_compiled(branchy, [x, x, 8, 3000], opts_for({"N": parpy.threads(8), "M": parpy.threads(2048).tpb(512)}))
    assert issubclass(parpy.ParallelismError, RuntimeError)


@parpy.jit
def layer_norm_plain(x, out, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        mean = parpy.operators.sum(x[i, :]) / M
        parpy.label("cols")
        var = parpy.operators.sum((x[i, :] - mean) * (x[i, :] - mean)) / M
        parpy.label("cols")
        out[i, :] = (x[i, :] - mean) / parpy.operators.sqrt(var + 1e-5)


@needs_gpu
def test_autotuning_searches_below_a_spec_asking_too_many_threads():
    # threads(M) on the inner loops asks for more threads than a block holds where the nest needs
    # a barrier across them (a ParallelismError without autotuning); autotuning takes the user's
    # counts as upper bounds and finds a spec that runs.
    N, M = 64, 4096
    x = np.random.default_rng(3).standard_normal((N, M)).astype(np.float32)
    out = np.zeros_like(x)
    plain = {"rows": parpy.threads(N), "cols": parpy.threads(M)}
    with pytest.raises(parpy.ParallelismError):
        layer_norm_plain(x, out, N, M, opts=opts_for(plain))
    o = parpy.par(plain, autotune=True)
    o.backend = CompileBackend.Cuda
    layer_norm_plain(x, out, N, M, opts=o)
    mean = x.mean(axis=1, keepdims=True)
    want = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    t = parpy.tuned(layer_norm_plain, [x, out, N, M], o)
    assert t.candidates[0].error.startswith("ParallelismError") and t.spec["cols"][0] <= M


@parpy.jit
def normalize_by_total(x, y, N):
    s = parpy.operators.sum(x[:])
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] / s


def test_gpu_local_used_by_a_later_kernel(tmp_path):
    # s is computed in one kernel and read by the next through a one-element device array.
    x = np.zeros(1000, np.float32)
    code = parpy.print_compiled(normalize_by_total, [x, x, 1000], opts_for({"N": parpy.threads(256)}))
    assert "parpy_device_s0[0] = v_s;" in code and "v_s = parpy_device_s0[0];" in code
    if shutil.which("nvcc"):
        src = tmp_path / "k.cu"
        src.write_text(code)
        r = subprocess.run(["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(), str(src),
                            "-o", str(tmp_path / "k.o")], capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr


def test_gpu_local_read_by_host_code_is_an_error():
    @parpy.jit
    def host_branch(x, y, N):
        s = parpy.operators.sum(x[:])
        if s > 0.0:
            parpy.label("N")
            for i in range(N):
                y[i] = x[i]

    x = np.zeros(100, np.float32)
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(host_branch, [x, x, 100], opts_for({"N": parpy.threads(100)}))
    msg = str(e.value)
    assert msg.startswith("The value of s is computed on the GPU, so host code cannot use it.")
    assert "        if s > 0.0:\n           ^" in msg


def test_print_compiled_includes_fp16_only_when_used():
    f32 = np.zeros(100, np.float32)
    code = parpy.print_compiled(axpy, [2.0, f32, f32, 100], opts_for({"N": parpy.threads(100)}))
    assert "cuda_fp16.h" not in code and "__global__" in code
    f16 = np.zeros(100, np.float16)
    code = parpy.print_compiled(half_scale, [f16, f16, 100], opts_for({"N": parpy.threads(100)}))
    assert "#include <cuda_fp16.h>" in code


# ---- On a GPU ----


def rand(shape, dtype=np.float32):
    return np.random.default_rng().standard_normal(shape).astype(dtype)


@needs_gpu
@pytest.mark.parametrize("N", [100, 10**7])
@pytest.mark.parametrize("fun", [sum_op, sum_gpu])
def test_seed_sums_numpy(fun, N):
    x = rand(N)
    y = np.full(1, 5.0, np.float32)
    fun(x, y, N, opts=opts_for({"N": parpy.threads(N)}))
    ref = x.astype(np.float64).sum()
    assert abs(float(y[0]) - ref) <= 1e-3 * np.abs(x).sum() / np.sqrt(N) + 1e-3 * abs(ref)


@needs_gpu
@pytest.mark.parametrize("inner", [32, 128, 1024, 2048, 4096])
def test_row_sum_multi_block(inner):
    N, M = 37, 5001
    x = rand((N, M))
    y = np.zeros(N, np.float32)
    row_sum(x, y, N, M, opts=opts_for({"outer": parpy.threads(N), "inner": parpy.threads(inner).reduce().tpb(512)}))
    np.testing.assert_allclose(y, x.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-3)


@needs_gpu
@pytest.mark.parametrize("inner", [64, 2048, 4096])
def test_row_max_multi_block(inner):
    N, M = 50, 3000
    x = rand((N, M))
    y = np.zeros(N, np.float32)
    row_max(x, y, N, M, opts=opts_for({"outer": parpy.threads(N), "inner": parpy.threads(inner).tpb(512)}))
    np.testing.assert_array_equal(y, x.max(axis=1))


@needs_gpu
@pytest.mark.parametrize("shape", [(1, 1), (33, 77), (300, 1025)])
def test_softmax_normalize(shape):
    N, M = shape
    x = rand(shape)
    out = np.zeros_like(x)
    softmax(x, out, N, M, opts=opts_for({"rows": parpy.threads(N), "cols": parpy.threads(min(M, 1024))}))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    x = np.abs(rand(shape)) + 0.1
    ref = x / x.sum(axis=1, keepdims=True)
    c = parpy.threads(min(M, 512))
    normalize(x, N, M, opts=opts_for({"rows": parpy.threads(N), "cols": c, "red": parpy.threads(min(M, 512)).reduce()}))
    np.testing.assert_allclose(x, ref, rtol=1e-5)


@needs_gpu
@pytest.mark.parametrize("shape,cols", [((3, 50000), 4096), ((10, 1000003), 65536), ((5, 3000), 2048)])
def test_split_kernels_across_blocks(shape, cols):
    # Inner loops wider than a block: the nest is split into kernels at each inner loop, and the
    # per-row locals (m, s) live in device memory between them.
    N, M = shape
    x = rand(shape)
    out = np.zeros_like(x)
    softmax(x, out, N, M, opts=opts_for({"rows": parpy.threads(N), "cols": parpy.threads(cols).tpb(512)}))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-9)
    x = np.abs(rand(shape)) + 0.1
    ref = x / x.astype(np.float64).sum(axis=1, keepdims=True)
    normalize(x, N, M, opts=opts_for({"rows": parpy.threads(N), "cols": parpy.threads(cols),
                                      "red": parpy.threads(cols).reduce()}))
    np.testing.assert_allclose(x, ref, rtol=1e-4)


@needs_gpu
def test_axpy_strided_matvec_int_half():
    N = 100003
    x, y = rand(N), rand(N)
    ref = np.float32(2.5) * x + y
    axpy(2.5, x, y, N, opts=opts_for({"N": parpy.threads(4096)}))
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
    y2 = np.zeros(N, np.float32)
    strided(x, y2, N, opts=opts_for({"N": parpy.threads(3000)}))
    ref2 = np.zeros(N, np.float32)
    ref2[::2] = x[::2] + 1.0
    np.testing.assert_array_equal(y2, ref2)
    A, v = rand((100, 777)), rand(777)
    out = np.zeros(100, np.float32)
    matvec(A, v, out, 100, 777, opts=opts_for({"rows": parpy.threads(100), "cols": parpy.threads(256)}))
    np.testing.assert_allclose(out, A.astype(np.float64) @ v, rtol=1e-4, atol=1e-3)
    a = np.random.randint(-1000, 1000, 1000).astype(np.int64)
    b = np.random.randint(1, 50, 1000).astype(np.int64) * np.random.choice([-1, 1], 1000)
    o = np.zeros(1000, np.int64)
    int_ops(a, b, o, 1000, opts=opts_for({"N": parpy.threads(1000)}))
    np.testing.assert_array_equal(o, a // b + a % b)
    h = rand(500).astype(np.float16)
    ho = np.zeros(500, np.float16)
    half_scale(h, ho, 500, opts=opts_for({"N": parpy.threads(500)}))
    np.testing.assert_array_equal(ho, h * np.float16(2))


@needs_gpu
def test_gpu_local_used_by_a_later_kernel_runs():
    N = 100003
    x = np.abs(rand(N)) + 0.5
    y = np.zeros(N, np.float32)
    normalize_by_total(x, y, N, opts=opts_for({"N": parpy.threads(4096)}))
    np.testing.assert_allclose(y, x / x.astype(np.float64).sum(), rtol=1e-4)


@needs_gpu
def test_numpy_inputs_not_written_are_not_copied_back():
    # x is only read: a concurrent change to the host copy must survive the call
    # (docs/gpu.md, Data, streams and devices).
    N = 1000
    x, y = rand(N), rand(N)
    x_before = x.copy()
    axpy(1.0, x, y, N, opts=opts_for({"N": parpy.threads(N)}))
    np.testing.assert_array_equal(x, x_before)


@needs_gpu
def test_torch_and_cupy_in_place():
    torch = pytest.importorskip("torch")
    N = 1 << 20
    x = torch.randn(N, device="cuda")
    y = torch.randn(N, device="cuda")
    ref = 3.0 * x + y
    ptr = y.data_ptr()
    axpy(3.0, x, y, N, opts=opts_for({"N": parpy.threads(N)}))
    assert y.data_ptr() == ptr
    torch.testing.assert_close(y, ref)
    s = torch.zeros(1, device="cuda")
    sum_op(x, s, N, opts=opts_for({"N": parpy.threads(N)}))
    torch.testing.assert_close(s[0], x.sum(), rtol=1e-4, atol=1e-2)
    # On a non-default stream: ordered with torch's work there without a device sync.
    st = torch.cuda.Stream()
    with torch.cuda.stream(st):
        z = torch.ones(N, device="cuda") * 2
        axpy(1.0, x, z, N, opts=opts_for({"N": parpy.threads(N)}))
        r = z.sum()
    st.synchronize()
    torch.testing.assert_close(r, (x + 2).sum(), rtol=1e-4, atol=1e-1)
    cp = pytest.importorskip("cupy")
    xc = cp.asarray(rand(N))
    yc = cp.asarray(rand(N))
    refc = 2.0 * xc + yc
    axpy(2.0, xc, yc, N, opts=opts_for({"N": parpy.threads(N)}))
    cp.testing.assert_allclose(yc, refc, rtol=1e-6)


@needs_gpu
def test_sync_and_aliasing_arguments():
    torch = pytest.importorskip("torch")
    x = torch.ones(10, device="cuda")
    axpy(1.0, x, x, 10, opts=opts_for({"N": parpy.threads(10)}))  # y aliases x
    parpy.sync(CUDA)
    torch.testing.assert_close(x, torch.full((10,), 2.0, device="cuda"))


@needs_gpu
@needs_nvcc
@pytest.mark.parametrize("mode", ["nvcc", "two-part"])
def test_whole_and_two_part_builds_run(mode, monkeypatch, tmp_path):
    # Default: kernels by `nvcc -cubin` and the host part by the host compiler, side by side;
    # PARPY_CUDA_BUILD=nvcc: the whole program by nvcc. Both on fresh data, from an empty cache.
    monkeypatch.setenv("PARPY_CUDA_BUILD", mode)
    monkeypatch.setenv("PARPY_CACHE_DIR", str(tmp_path))
    parpy.clear_cache()
    N, M = 6, 30001
    x = rand((N, M))
    y = np.zeros(N, np.float32)
    row_sum(x, y, N, M, opts=opts_for({"outer": parpy.threads(N), "inner": parpy.threads(2048).reduce().tpb(512)}))
    np.testing.assert_allclose(y, x.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-3)
    out = np.zeros_like(x)
    softmax(x, out, N, M, opts=opts_for({"rows": parpy.threads(N), "cols": parpy.threads(1024)}))
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)
    cubins = list(tmp_path.glob("*-cuda.cubin"))
    assert (len(cubins) == 2) == (mode == "two-part"), sorted(p.name for p in tmp_path.iterdir())
    parpy.clear_cache()


# Each iteration of a loop of an outer layer runs on several blocks (those of the layers inside it).
# A statement next to such a loop must run once, after every block of the loop (found by the Cuda
# fuzzer: the store below ran once per block, here eight times).
@parpy.jit
def gpu_block_store_after_blocks(x, y, z, N):
    with parpy.gpu:
        parpy.label("N")
        for i in range(N):
            s = 1.0
            parpy.label("R")
            for r in range(N):
                s = s + x[i, r]
            y[i] = s
        z[0] *= y[N - 1] + 1.0


@needs_gpu
def test_gpu_block_statement_after_a_loop_over_blocks_runs_once():
    rng = np.random.default_rng(31)
    x = rng.random((4, 4))
    y = np.zeros(4)
    z = rng.random(1) + 0.5
    want_y = 1.0 + x.sum(axis=1)
    want_z = z * (want_y[3] + 1.0)
    gpu_block_store_after_blocks(x, y, z, 4, opts=opts_for({"N": parpy.threads(8), "R": parpy.threads(32).reduce()}))
    np.testing.assert_allclose(y, want_y, rtol=1e-12)
    np.testing.assert_allclose(z, want_z, rtol=1e-12)


# The second middle loop reads, reversed, what other blocks of the first one wrote.
@parpy.jit
def two_middle_loops(x, y, N, M, K):
    parpy.label("O")
    for i in range(N):
        parpy.label("M")
        for k in range(M):
            parpy.label("P")
            for j in range(K):
                y[i, k, j] = x[i, k, j] * 2.0
        parpy.label("M")
        for k in range(M):
            parpy.label("P")
            for j in range(K):
                x[i, k, j] = y[i, M - 1 - k, K - 1 - j] + 1.0


@needs_gpu
@pytest.mark.parametrize("inner", [64, 4096])
def test_three_level_nest_with_two_middle_loops(inner):
    rng = np.random.default_rng(32)
    x = rng.random((6, 4, inner)).astype(np.float32)
    y = np.zeros_like(x)
    want_y = x * 2.0
    want_x = want_y[:, ::-1, ::-1] + 1.0
    opts = opts_for({"O": parpy.threads(6), "M": parpy.threads(4), "P": parpy.threads(inner)})
    two_middle_loops(x, y, 6, 4, inner, opts=opts)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(x, want_x)


def test_statement_after_a_loop_over_blocks_is_a_kernel_of_its_own():
    # Without a GPU: the code shows the store in a one-block kernel of its own.
    x = np.zeros((4, 4))
    code = parpy.print_compiled(gpu_block_store_after_blocks, [x, x[0], x[0, :1], 4],
                                opts_for({"N": parpy.threads(8), "R": parpy.threads(32).reduce()}))
    launches = set(re.findall(r"_k(\d+)(?:_vec)?<<<dim3\((\d+)\), dim3\((\d+)\)", code))
    # The 8 rows of the first kernel run 4 to a block of 128 threads (rows packed into blocks).
    assert launches == {("0", "2", "128"), ("1", "1", "32")}, code
    k1 = code[code.index("void __launch_bounds__(32) parpy_kernel_gpu_block_store_after_blocks_k1"):]
    assert "v_z[" in k1 and "v_z[" not in code[: code.index("parpy_kernel_gpu_block_store_after_blocks_k1")], code


# A sequential loop of a gpu block that holds such a loop runs on the host and launches the kernels
# of its body in every iteration; a local of the block lives in device memory across them.
@parpy.jit
def gpu_block_time_steps(x, y, N, T):
    with parpy.gpu:
        c = x[0, 0] + 1.0
        for t in range(T):
            parpy.label("N")
            for i in range(N):
                parpy.label("R")
                for j in range(N):
                    y[i, j] = y[i, j] + x[i, j] * c
            y[0, 0] = y[0, 0] * 0.5 + y[N - 1, N - 1]
            c = c * 0.5 + parpy.operators.float64(t)


def time_steps_reference(x, y, N, T):
    c = x[0, 0] + 1.0
    for t in range(T):
        y += x * c
        y[0, 0] = y[0, 0] * 0.5 + y[N - 1, N - 1]
        c = c * 0.5 + t


TIME_STEP_OPTS = {"N": parpy.threads(8), "R": parpy.threads(32)}


def test_gpu_block_sequential_loop_over_blocks_runs_on_the_host():
    x = np.zeros((8, 8))
    code = parpy.print_compiled(gpu_block_time_steps, [x, x, 8, 3], opts_for(TIME_STEP_OPTS))
    entry = code[code.index("static int32_t v_gpu_block_time_steps"):]
    assert re.search(r"for \(int64_t v_t = 0; v_t < 3; \+\+v_t\) \{", entry), entry


@needs_gpu
def test_gpu_block_sequential_loop_over_blocks():
    rng = np.random.default_rng(33)
    x = rng.random((8, 8))
    y = rng.random((8, 8))
    want = y.copy()
    time_steps_reference(x, want, 8, 5)
    gpu_block_time_steps(x, y, 8, 5, opts=opts_for(TIME_STEP_OPTS))
    np.testing.assert_allclose(y, want, rtol=1e-12)


# More rows than outer workers with a reduction over several blocks per row: each worker runs
# several rows, and every row's reduction must complete (found by the Cuda fuzzer).
@parpy.jit
def row_max_gpu_block(y, z, N):
    with parpy.gpu:
        parpy.label("N")
        for i in range(N):
            parpy.label("M")
            z[i] = parpy.operators.max(y[i, :])


@needs_gpu
@pytest.mark.parametrize("fun", [row_max, row_max_gpu_block])
@pytest.mark.parametrize("rows,workers", [(12, 8), (37, 5), (8, 8)])
def test_multiblock_reduction_over_more_rows_than_workers(fun, rows, workers):
    rng = np.random.default_rng(34)
    y = rng.standard_normal((rows, 6000))
    z = np.zeros(rows)
    labels = {"N": parpy.threads(workers), "M": parpy.threads(2048).tpb(512).reduce()}
    if fun is row_max:
        fun(y, z, rows, 6000, opts=opts_for({"outer": labels["N"], "inner": labels["M"]}))
    else:
        fun(y, z, rows, opts=opts_for(labels))
    np.testing.assert_array_equal(z, y.max(axis=1))


def test_debug_print_shows_every_kernel_pass(capfd):
    # Without a GPU: the stages after extract_kernels, the vectorised variant included.
    o = opts_for({"rows": parpy.threads(4), "cols": parpy.threads(256)})
    o.debug_print = True
    x = np.zeros((4, 256), np.float32)
    parpy.print_compiled(softmax, [x, x.copy(), 4, 256], o)
    out, err = capfd.readouterr()
    stages = [ln.split(" (time")[0][6:] for ln in (out + err).splitlines() if ln.startswith("===== ")]
    want = ["extract_kernels: softmax_k0", "extract_kernels: host", "vectorize_kernels: softmax_k0_vec",
            "cache_kernel_rows: softmax_k0", "cache_kernel_rows: softmax_k0_vec", "print_cuda"]
    assert stages[-len(want):] == want, stages
