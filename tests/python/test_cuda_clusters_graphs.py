"""Thread-block clusters and CUDA graphs on the Cuda backend: the generated code (checked and
compiled with nvcc without a GPU) and the results on a GPU, against numpy."""

import shutil
import subprocess

import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from test_cuda import normalize, row_max, row_sum, softmax, sum_gpu, sum_op

CUDA = CompileBackend.Cuda
needs_gpu = pytest.mark.skipif(not parpy.backend.is_enabled(CUDA), reason="no CUDA GPU here")
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


def opts_for(par, clusters=False, max_blocks=8, graphs=False):
    opts = parpy.par(par)
    opts.backend = CUDA
    opts.use_cuda_thread_block_clusters = clusters
    opts.max_thread_blocks_per_cluster = max_blocks
    opts.use_cuda_graphs = graphs
    return opts


def rand(shape, dtype=np.float32):
    return np.random.default_rng().standard_normal(shape).astype(dtype)


def softmax_ref(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def rows(inner, tpb=512):
    return {"rows": parpy.threads(100), "cols": parpy.threads(inner).tpb(tpb)}


def kernels(code):
    """Kernels in the generated code, not counting their 128-bit variants."""
    return sum(1 for line in code.splitlines() if line.startswith("__global__") and "_vec(" not in line)


def compiles(code, tmp_path):
    src = tmp_path / "k.cu"
    src.write_text(code)
    r = subprocess.run(["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(),
                        str(src), "-o", str(tmp_path / "k.o")], capture_output=True, text=True, check=False)
    assert r.returncode == 0, code + "\n" + r.stderr


# ---- Generated code (no GPU needed) ----

M32 = np.zeros((100, 3000), np.float32)


def test_cluster_kernel_is_one_kernel_with_cluster_dims():
    # Inner threads(4096).tpb(512) is a cluster of 8 blocks per row, in one kernel
    # (docs/gpu.md, Synchronisation and kernel splits).
    code = parpy.print_compiled(softmax, [M32, M32, 100, 3000], opts_for(rows(4096), clusters=True))
    assert "__cluster_dims__(8, 1, 1)" in code
    assert kernels(code) == 1
    assert "<<<dim3(800), dim3(512)" in code
    assert "parpy_cluster_reduce_max" in code and "parpy_cluster_reduce_add" in code
    assert "#define PARPY_USE_CLUSTERS" in code
    assert "cudaFuncSetAttribute" not in code


def test_without_clusters_the_nest_is_split():
    # max | exp fused with sum | divide: three kernels; later kernels read m and s once.
    code = parpy.print_compiled(softmax, [M32, M32, 100, 3000], opts_for(rows(4096)))
    assert "__cluster_dims__" not in code and "PARPY_USE_CLUSTERS" not in code
    assert kernels(code) == 3
    assert "v_m = parpy_shared_m0[v_i];" in code and "v_s = parpy_shared_s1[v_i];" in code


def test_cluster_above_eight_blocks_sets_the_non_portable_attribute():
    code = parpy.print_compiled(row_sum, [M32, M32[:, 0].copy(), 100, 3000],
                                opts_for({"outer": parpy.threads(100), "inner": parpy.threads(4096).reduce().tpb(256)},
                                         clusters=True, max_blocks=16))
    assert "__cluster_dims__(16, 1, 1)" in code
    # Both variants of the kernel (scalar and 128-bit) may be launched: both get the attribute.
    assert "cudaFuncSetAttribute(parpy_kernel_row_sum_k0, cudaFuncAttributeNonPortableClusterSizeAllowed, 1)" in code
    assert "cudaFuncSetAttribute(parpy_kernel_row_sum_k0_vec, cudaFuncAttributeNonPortableClusterSizeAllowed, 1)" in code


def test_too_many_blocks_for_a_cluster_fall_back_to_multi_block():
    # 16 blocks per row with at most 8 per cluster: the multi-block forms, no cluster.
    code = parpy.print_compiled(row_sum, [M32, M32[:, 0].copy(), 100, 3000],
                                opts_for({"outer": parpy.threads(100), "inner": parpy.threads(8192).reduce().tpb(512)},
                                         clusters=True))
    assert "__cluster_dims__" not in code and "parpy_multiblock_reduce_add" in code


def test_clusters_only_for_multi_block_layers():
    code = parpy.print_compiled(row_sum, [M32, M32[:, 0].copy(), 100, 3000],
                                opts_for({"outer": parpy.threads(100), "inner": parpy.threads(256).reduce()},
                                         clusters=True))
    assert "__cluster_dims__" not in code and "cooperative_groups" not in code


def test_graph_entry():
    code = parpy.print_compiled(row_sum, [M32, M32[:, 0].copy(), 100, 3000],
                                opts_for({"outer": parpy.threads(100), "inner": parpy.threads(256).reduce()}, graphs=True))
    assert "#define PARPY_USE_GRAPHS" in code and "parpy_graph_cache<float*, float*, int64_t, int64_t>" in code
    plain = parpy.print_compiled(row_sum, [M32, M32[:, 0].copy(), 100, 3000],
                                 opts_for({"outer": parpy.threads(100), "inner": parpy.threads(256).reduce()}))
    assert "graph" not in plain


@needs_nvcc
@pytest.mark.parametrize("case", ["softmax8", "rowsum16", "sum8_graphs", "normalize4_graphs", "split_graphs"])
def test_cluster_and_graph_code_compiles(case, tmp_path):
    x = np.zeros(1 << 14, np.float32)
    code = {
        "softmax8": lambda: parpy.print_compiled(softmax, [M32, M32, 100, 3000], opts_for(rows(4096), clusters=True)),
        "rowsum16": lambda: parpy.print_compiled(
            row_sum, [M32, M32[:, 0].copy(), 100, 3000],
            opts_for({"outer": parpy.threads(100), "inner": parpy.threads(4096).reduce().tpb(256)}, True, 16)),
        "sum8_graphs": lambda: parpy.print_compiled(
            sum_gpu, [x, x[:1], 1 << 14], opts_for({"N": parpy.threads(4096).tpb(512)}, True, 8, True)),
        "normalize4_graphs": lambda: parpy.print_compiled(
            normalize, [M32, 100, 3000],
            opts_for({"rows": parpy.threads(100), "cols": parpy.threads(2048).tpb(512),
                      "red": parpy.threads(2048).tpb(512).reduce()}, True, 8, True)),
        "split_graphs": lambda: parpy.print_compiled(softmax, [M32, M32, 100, 3000], opts_for(rows(4096), graphs=True)),
    }[case]()
    compiles(code, tmp_path)


def test_clusters_and_graphs_are_ignored_on_cpu():
    x = rand((20, 30))
    out = np.zeros_like(x)
    o = parpy.par({"rows": parpy.threads(20), "cols": parpy.threads(30)})
    o.backend = CompileBackend.Cpu
    o.use_cuda_thread_block_clusters = True
    o.use_cuda_graphs = True
    softmax(x, out, 20, 30, opts=o)
    np.testing.assert_allclose(out, softmax_ref(x), rtol=1e-5, atol=1e-7)


# ---- On a GPU ----


@needs_gpu
@pytest.mark.parametrize("inner,tpb,max_blocks", [(1024, 512, 8), (2048, 512, 8), (4096, 512, 8),
                                                  (4096, 256, 16), (1024, 128, 8)])
def test_cluster_reductions(inner, tpb, max_blocks):
    N, M = 37, 5001
    x = rand((N, M))
    y = np.full(N, 7.0, np.float32)
    par = {"outer": parpy.threads(N), "inner": parpy.threads(inner).reduce().tpb(tpb)}
    row_sum(x, y, N, M, opts=opts_for(par, True, max_blocks))
    np.testing.assert_allclose(y, x.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-3)
    ym = np.zeros(N, np.float32)
    row_max(x, ym, N, M, opts=opts_for({"outer": parpy.threads(N), "inner": parpy.threads(inner).tpb(tpb)},
                                      True, max_blocks))
    np.testing.assert_array_equal(ym, x.max(axis=1))


@needs_gpu
@pytest.mark.parametrize("shape,cols", [((100, 3000), 4096), ((7, 50001), 2048), ((3, 5), 1024)])
def test_cluster_softmax_and_normalize_in_one_kernel(shape, cols):
    N, M = shape
    x = rand(shape)
    out = np.zeros_like(x)
    par = {"rows": parpy.threads(N), "cols": parpy.threads(cols).tpb(512)}
    softmax(x, out, N, M, opts=opts_for(par, clusters=True))
    np.testing.assert_allclose(out, softmax_ref(x), rtol=1e-4, atol=1e-9)
    x = np.abs(rand(shape)) + 0.1
    ref = x / x.astype(np.float64).sum(axis=1, keepdims=True)
    par["red"] = parpy.threads(cols).tpb(512).reduce()
    normalize(x, N, M, opts=opts_for(par, clusters=True))
    np.testing.assert_allclose(x, ref, rtol=1e-4)


@needs_gpu
@pytest.mark.parametrize("N", [100, 10**7])
@pytest.mark.parametrize("fun", [sum_op, sum_gpu])
def test_seed_sums_with_clusters(fun, N):
    x = rand(N)
    y = np.full(1, 5.0, np.float32)
    fun(x, y, N, opts=opts_for({"N": parpy.threads(4096).tpb(512)}, clusters=True))
    ref = x.astype(np.float64).sum()
    assert abs(float(y[0]) - ref) <= 1e-3 * np.abs(x).sum() / np.sqrt(N) + 1e-3 * abs(ref)


@needs_gpu
def test_graphs_replay_and_recapture():
    torch = pytest.importorskip("torch")
    N, M = 64, 3000
    par = {"rows": parpy.threads(N), "cols": parpy.threads(2048).tpb(512)}
    for clusters in (False, True):
        o = opts_for(par, clusters=clusters, graphs=True)
        x = torch.randn(N, M, device="cuda")
        out = torch.empty_like(x)
        for _ in range(3):  # same arguments: the graph is replayed on the current data
            x.normal_()
            softmax(x, out, N, M, opts=o)
            torch.testing.assert_close(out, torch.softmax(x, dim=1), rtol=1e-4, atol=1e-7)
        x2 = torch.randn(N, M, device="cuda")  # new pointers: captured again
        out2 = torch.empty_like(x2)
        softmax(x2, out2, N, M, opts=o)
        torch.testing.assert_close(out2, torch.softmax(x2, dim=1), rtol=1e-4, atol=1e-7)
        softmax(x, out, N, M, opts=o)  # and back
        torch.testing.assert_close(out, torch.softmax(x, dim=1), rtol=1e-4, atol=1e-7)
    # On a non-default stream, ordered with torch's work there.
    st = torch.cuda.Stream()
    with torch.cuda.stream(st):
        x = torch.randn(N, M, device="cuda") * 3
        out = torch.empty_like(x)
        softmax(x, out, N, M, opts=opts_for(par, graphs=True))
        r = out.sum(dim=1)
    st.synchronize()
    torch.testing.assert_close(r, torch.ones(N, device="cuda"), rtol=1e-4, atol=1e-4)


@needs_gpu
def test_graphs_with_numpy_inputs():
    N = 10**6
    for _ in range(2):
        x = rand(N)
        y = np.zeros(1, np.float32)
        sum_gpu(x, y, N, opts=opts_for({"N": parpy.threads(4096).tpb(512)}, graphs=True))
        ref = x.astype(np.float64).sum()
        assert abs(float(y[0]) - ref) <= 1e-3 * np.abs(x).sum() / np.sqrt(N) + 1e-3 * abs(ref)
