"""Parallel layers on the GPU beyond one uniform nest: sibling parallel loops (and if branches)
whose innermost loops ask for different thread counts run in one kernel as wide as the widest,
each loop guarding its own threads; and externals declared with parallelize=threads(n), which add
an innermost layer of n threads that all call the external. Every program runs on each enabled
backend against numpy (Cpu ignores thread counts; Cuda where a GPU is present), and its Cuda code is
compiled with nvcc here (no GPU needed)."""

import re
import shutil
import subprocess

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy import CompileBackend, Target
from parpy import operators as op
from parpy.types import F32, I64, pointer

CUDA = CompileBackend.Cuda
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")

LOCATIONS = SourceLocations(__file__)
loc = LOCATIONS.loc


def rng():
    return np.random.default_rng()


def make_opts(backend, par, **flags):
    o = parpy.par(par)
    o.backend = backend
    for k, v in flags.items():
        setattr(o, k, v)
    return o


def nvcc_compile(code, tmp_path, includes=()):
    src = tmp_path / "k.cu"
    src.write_text(code)
    cmd = ["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include()]
    cmd += ["-I" + str(d) for d in includes]
    r = subprocess.run(cmd + [str(src), "-o", str(tmp_path / "k.o")], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, code + "\n" + r.stderr


def kernels(code):
    """The kernels of a printed Cuda program (the text of each __global__ function), without their
    128-bit variants."""
    ks = ["__global__" + k.split("\n}\n")[0] for k in code.split("__global__")[1:]]
    return [k for k in ks if "_vec(" not in k.split("\n")[0]]


# ----- sibling parallel loops with different thread counts ----------------------------------------


@parpy.jit
def map_then_reduce(x, y, z, N, M):
    parpy.label('N')
    for j in range(N):
        parpy.label('K_1')
        for k in range(M):
            y[j, k] = x[j, k] * 2.0
        parpy.label('K_2')
        for k in range(M):
            z[j] += y[j, k]


EXAMPLE = {'N': parpy.threads(100), 'K_1': parpy.threads(32), 'K_2': parpy.threads(64).reduce()}


def test_example_siblings(backend):
    N, M = 100, 300
    x = rng().standard_normal((N, M)).astype(np.float32)
    y = np.zeros((N, M), np.float32)
    z0 = rng().standard_normal(N).astype(np.float32)
    z = z0.copy()
    map_then_reduce(x, y, z, N, M, opts=make_opts(backend, EXAMPLE))
    np.testing.assert_array_equal(y, x * 2)
    np.testing.assert_allclose(z, z0 + y.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-4)


@parpy.jit
def map_then_max(x, y, z, N, M):
    parpy.label('N')
    for j in range(N):
        parpy.label('K_1')
        for k in range(M):
            y[j, k] = x[j, k] - 10.0
        parpy.label('K_2')
        for k in range(M):
            z[j] = op.max(z[j], y[j, k])


@parpy.jit
def map_then_min_int(x, y, z, N, M):
    parpy.label('N')
    for j in range(N):
        parpy.label('K_1')
        for k in range(M):
            y[j, k] = x[j, k] + 1000
        parpy.label('K_2')
        for k in range(M):
            z[j] = op.min(z[j], y[j, k])


# A reduction narrower than its sibling: the threads beyond its 40 (not a multiple of 32) add the
# neutral element, here -inf, to the block's all-reduce.
def test_reduction_with_fewer_threads_than_its_sibling(backend):
    N, M = 37, 500
    x = rng().standard_normal((N, M)).astype(np.float32)
    y = np.zeros((N, M), np.float32)
    z0 = np.full(N, -1e30, np.float32)
    z = z0.copy()
    par = {'N': parpy.threads(N), 'K_1': parpy.threads(256), 'K_2': parpy.threads(40).reduce()}
    map_then_max(x, y, z, N, M, opts=make_opts(backend, par))
    np.testing.assert_array_equal(y, x - 10)
    np.testing.assert_array_equal(z, np.maximum(z0, y.max(axis=1)))


def test_integer_min_with_more_threads_than_its_sibling(backend):
    N, M = 20, 333
    x = rng().integers(-10**6, 10**6, (N, M)).astype(np.int64)
    y = np.zeros((N, M), np.int64)
    z0 = rng().integers(-10**6, 10**6, N).astype(np.int64)
    z = z0.copy()
    par = {'N': parpy.threads(N), 'K_1': parpy.threads(48), 'K_2': parpy.threads(200).reduce()}
    map_then_min_int(x, y, z, N, M, opts=make_opts(backend, par))
    np.testing.assert_array_equal(y, x + 1000)
    np.testing.assert_array_equal(z, np.minimum(z0, y.min(axis=1)))


@parpy.jit
def deeper_siblings(x, y, z, N, P, M):
    parpy.label('N')
    for i in range(N):
        parpy.label('P')
        for j in range(P):
            parpy.label('K_1')
            for k in range(M):
                y[i, j, k] = x[i, j, k] * x[i, j, k]
            parpy.label('K_2')
            for k in range(M):
                z[i, j] += y[i, j, k]


DEEPER = {'N': parpy.threads(4), 'P': parpy.threads(6), 'K_1': parpy.threads(32),
          'K_2': parpy.threads(96).reduce()}


def test_siblings_at_deeper_nesting(backend):
    N, P, M = 4, 6, 250
    x = rng().standard_normal((N, P, M)).astype(np.float32)
    y = np.zeros((N, P, M), np.float32)
    z = np.zeros((N, P), np.float32)
    deeper_siblings(x, y, z, N, P, M, opts=make_opts(backend, DEEPER))
    np.testing.assert_array_equal(y, x * x)
    np.testing.assert_allclose(z, y.astype(np.float64).sum(axis=2), rtol=1e-4, atol=1e-4)


@parpy.jit
def branch_siblings(x, y, N, M):
    parpy.label('N')
    for i in range(N):
        if i % 3 == 0:
            parpy.label('A')
            for k in range(M):
                y[i, k] = x[i, k] + 1.0
        else:
            parpy.label('B')
            for k in range(M):
                y[i, k] = x[i, k] * 3.0


def test_branches_with_different_thread_counts(backend):
    N, M = 30, 200
    x = rng().standard_normal((N, M)).astype(np.float32)
    y = np.zeros((N, M), np.float32)
    par = {'N': parpy.threads(N), 'A': parpy.threads(32), 'B': parpy.threads(160)}
    branch_siblings(x, y, N, M, opts=make_opts(backend, par))
    rows = (np.arange(N) % 3 == 0)[:, None]
    np.testing.assert_array_equal(y, np.where(rows, x + 1, x * 3))


# Four siblings of 64, 128, 32 and 96 threads sharing locals: a max, a shift, a sum, a scale.
@parpy.jit
def normalise_rows(x, y, N, M):
    parpy.label('N')
    for i in range(N):
        m = x[i, 0]
        parpy.label('R1')
        for k in range(M):
            m = op.max(m, x[i, k])
        parpy.label('M1')
        for k in range(M):
            y[i, k] = op.exp(x[i, k] - m)
        s = 0.0
        parpy.label('R2')
        for k in range(M):
            s = s + y[i, k]
        parpy.label('M2')
        for k in range(M):
            y[i, k] = y[i, k] / s


NORMALISE = {'N': parpy.threads(50), 'R1': parpy.threads(64).reduce(), 'M1': parpy.threads(128),
             'R2': parpy.threads(32).reduce(), 'M2': parpy.threads(96)}


def test_four_siblings_sharing_locals(backend):
    N, M = 50, 777
    x = rng().standard_normal((N, M)).astype(np.float32)
    y = np.zeros((N, M), np.float32)
    normalise_rows(x, y, N, M, opts=make_opts(backend, NORMALISE))
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


# A sibling wider than a block: the nest is split into kernels at the loops (or, with clusters,
# stays one kernel whose narrower loop runs in the first block of each cluster).
WIDE = {'N': parpy.threads(8), 'K_1': parpy.threads(2048), 'K_2': parpy.threads(256).reduce()}


@pytest.mark.parametrize("clusters", [False, True])
def test_sibling_wider_than_a_block(backend, clusters):
    N, M = 8, 5000
    x = rng().standard_normal((N, M)).astype(np.float32)
    y = np.zeros((N, M), np.float32)
    z = np.zeros(N, np.float32)
    opts = make_opts(backend, WIDE, use_cuda_thread_block_clusters=clusters)
    map_then_reduce(x, y, z, N, M, opts=opts)
    np.testing.assert_array_equal(y, x * 2)
    np.testing.assert_allclose(z, y.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-3)


def test_guards_and_block_width_in_cuda_code():
    x = np.zeros((100, 300), np.float32)
    code = parpy.print_compiled(map_then_reduce, [x, x, np.zeros(100, np.float32), 100, 300], make_opts(CUDA, EXAMPLE))
    [k] = kernels(code)
    assert "__launch_bounds__(64)" in k and "dim3(100), dim3(64)" in code
    # The 32-thread loop is guarded and strides by 32; the 64-thread reduction strides by 64 (four
    # of its iterations per round: it only adds in a register) and all threads reach the barrier
    # and the block reduction.
    guard = k.index("if ((parpy_w1 < 32)) {")
    assert k.index("k += 32)") > guard
    assert k.index("parpy_syncthreads();") > k.index("k += 32)")
    assert "parpy_g0 += 256)" in k and "parpy_u0 * 64;" in k
    assert "parpy_acc0 = parpy_block_reduce_add(parpy_acc0);" in k
    assert "if ((parpy_w1 < 64))" not in k
    # Branches: the block has the wider branch's 160 threads; the narrower branch guards its 32.
    code = parpy.print_compiled(branch_siblings, [x, x, 30, 300],
                                make_opts(CUDA, {'N': parpy.threads(30), 'A': parpy.threads(32),
                                                 'B': parpy.threads(160)}))
    [k] = kernels(code)
    assert "__launch_bounds__(160)" in k and "(parpy_w1 < 32)" in k and "(parpy_w1 < 160)" not in k


CUDA_PROGRAMS = [
    (map_then_reduce, lambda: [np.zeros((100, 300), np.float32)] * 2 + [np.zeros(100, np.float32), 100, 300],
     EXAMPLE, {}),
    (map_then_max, lambda: [np.zeros((37, 500), np.float32)] * 2 + [np.zeros(37, np.float32), 37, 500],
     {'N': parpy.threads(37), 'K_1': parpy.threads(256), 'K_2': parpy.threads(40).reduce()}, {}),
    (map_then_min_int, lambda: [np.zeros((20, 333), np.int64)] * 2 + [np.zeros(20, np.int64), 20, 333],
     {'N': parpy.threads(20), 'K_1': parpy.threads(48), 'K_2': parpy.threads(200).reduce()}, {}),
    (deeper_siblings, lambda: [np.zeros((4, 6, 250), np.float32)] * 2 + [np.zeros((4, 6), np.float32), 4, 6, 250],
     DEEPER, {}),
    (branch_siblings, lambda: [np.zeros((30, 200), np.float32)] * 2 + [30, 200],
     {'N': parpy.threads(30), 'A': parpy.threads(32), 'B': parpy.threads(160)}, {}),
    (normalise_rows, lambda: [np.zeros((50, 777), np.float32)] * 2 + [50, 777], NORMALISE, {}),
    (map_then_reduce, lambda: [np.zeros((8, 5000), np.float32)] * 2 + [np.zeros(8, np.float32), 8, 5000],
     WIDE, {}),
    (map_then_reduce, lambda: [np.zeros((8, 5000), np.float32)] * 2 + [np.zeros(8, np.float32), 8, 5000],
     WIDE, {'use_cuda_thread_block_clusters': True}),
]


@needs_nvcc
@pytest.mark.parametrize("case", range(len(CUDA_PROGRAMS)))
def test_cuda_code_compiles(case, tmp_path):
    fun, args, par, flags = CUDA_PROGRAMS[case]
    code = parpy.print_compiled(fun, args(), make_opts(CUDA, par, **flags))
    nvcc_compile(code, tmp_path)


# ----- layers that cannot differ ------------------------------------------------------------------


def test_siblings_with_different_outer_layers_are_an_error():
    @parpy.jit
    def outer_differs(x, N, M):
        parpy.label('N')
        for i in range(N):
            parpy.label('P1')
            for j in range(N):
                parpy.label('K')
                for k in range(M):
                    x[i, j, k] = 1.0
            parpy.label('P2')  # @outer_differs
            for j in range(N):
                parpy.label('K')
                for k in range(M):
                    x[i, j, k] = 2.0

    x = np.zeros((4, 4, 64), np.float32)
    par = {'N': parpy.threads(4), 'P1': parpy.threads(4), 'P2': parpy.threads(2), 'K': parpy.threads(64)}
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(outer_differs, [x, 4, 64], make_opts(CUDA, par))
    msg = str(e.value)
    assert msg.startswith("Found inconsistent parallel structures: ParLayer { threads: 4, tpb: 1024 } != "
                          "ParLayer { threads: 2, tpb: 1024 }\nParallel loops next to each other in one "
                          "kernel may differ only in the number of threads of their innermost parallel loops"), msg
    assert "On line" in msg and "^" in msg


def test_siblings_with_different_depths_are_an_error():
    @parpy.jit
    def depth_differs(x, N, M):
        parpy.label('N')
        for i in range(N):
            parpy.label('K')
            for k in range(M):
                x[i, 0, k] = 1.0
            parpy.label('P')
            for j in range(N):
                parpy.label('K')
                for k in range(M):
                    x[i, j, k] = 2.0

    x = np.zeros((4, 4, 64), np.float32)
    par = {'N': parpy.threads(4), 'P': parpy.threads(4), 'K': parpy.threads(64)}
    with pytest.raises(RuntimeError, match=r"^Found inconsistent number of layers in parallel structure "
                                           r"\(1 != 2\)\nParallel loops next to each other"):
        parpy.print_compiled(depth_differs, [x, 4, 64], make_opts(CUDA, par))


# ----- parallel externals -------------------------------------------------------------------------

# Warp-cooperative sums for Cuda (threadIdx.x picks each thread's share), plain loops for Cpu.
WARP_HEADER = """#pragma once
#include <cstdint>
#ifdef __CUDACC__
// Lane 0 returns the sum of p[0..n).
__device__ inline float layers_warp_sum(const float* p, int64_t n) {
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += 32) acc += p[i];
  for (int s = 16; s > 0; s >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, s);
  return acc;
}
// Every lane returns the sum of p[0..n).
__device__ inline float layers_warp_allsum(const float* p, int64_t n) {
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += 32) acc += p[i];
  for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
  return acc;
}
#else
static inline float layers_warp_sum(const float* p, int64_t n) {
  float acc = 0.0f;
  for (int64_t i = 0; i < n; ++i) acc += p[i];
  return acc;
}
static inline float layers_warp_allsum(const float* p, int64_t n) { return layers_warp_sum(p, n); }
#endif
"""


@parpy.external("layers_warp_sum", CompileBackend.Cpu, Target.Device, header="layers_warp.h")
@parpy.external("layers_warp_sum", CUDA, Target.Device, header="layers_warp.h",
                parallelize=parpy.threads(32))
def warp_sum(p: pointer(F32), n: I64) -> F32:
    return sum(p[:n])


@parpy.external("layers_warp_allsum", CompileBackend.Cpu, Target.Device, header="layers_warp.h")
@parpy.external("layers_warp_allsum", CUDA, Target.Device, header="layers_warp.h",
                parallelize=parpy.threads(32))
def warp_allsum(p: pointer(F32), n: I64) -> F32:
    return sum(p[:n])


@pytest.fixture
def warp_header(tmp_path):
    (tmp_path / "layers_warp.h").write_text(WARP_HEADER)
    return tmp_path


def ext_opts(backend, includes, par):
    o = make_opts(backend, par)
    o.includes = [str(includes)]
    return o


@parpy.jit
def row_sums_ext(x, y, N, M):
    parpy.label('N')
    for i in range(N):
        y[i] = warp_sum(x[i], M) * 2.0


@parpy.jit
def row_sums_ext_and_map(x, y, z, N, M):
    parpy.label('N')
    for i in range(N):
        y[i] = warp_sum(x[i], M)
        parpy.label('K')
        for k in range(M):
            z[i, k] = x[i, k] * 3.0


@parpy.jit
def scale_by_row_sum(x, y, N, M):
    parpy.label('N')
    for i in range(N):
        s = warp_allsum(x[i], M)
        parpy.label('K')
        for k in range(M):
            y[i, k] = x[i, k] / s


def positive_rows(N, M):
    return rng().uniform(0.5, 1.5, (N, M)).astype(np.float32)


def test_warp_sum_external_per_row(backend, warp_header):
    N, M = 300, 1000
    x = rng().standard_normal((N, M)).astype(np.float32)
    y = np.zeros(N, np.float32)
    row_sums_ext(x, y, N, M, opts=ext_opts(backend, warp_header, {'N': parpy.threads(N)}))
    np.testing.assert_allclose(y, 2 * x.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-3)


def test_warp_sum_external_next_to_a_wider_loop(backend, warp_header):
    N, M = 64, 500
    x = rng().standard_normal((N, M)).astype(np.float32)
    y = np.zeros(N, np.float32)
    z = np.zeros((N, M), np.float32)
    par = {'N': parpy.threads(N), 'K': parpy.threads(128)}
    row_sums_ext_and_map(x, y, z, N, M, opts=ext_opts(backend, warp_header, par))
    np.testing.assert_allclose(y, x.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(z, x * 3)


def test_external_result_in_a_local(backend, warp_header):
    N, M = 50, 200
    x = positive_rows(N, M)
    y = np.zeros((N, M), np.float32)
    par = {'N': parpy.threads(N), 'K': parpy.threads(32)}
    scale_by_row_sum(x, y, N, M, opts=ext_opts(backend, warp_header, par))
    np.testing.assert_allclose(y, x / x.astype(np.float64).sum(axis=1, keepdims=True), rtol=1e-5)


def test_external_layer_in_cuda_code(warp_header):
    x = np.zeros((300, 1000), np.float32)
    code = parpy.print_compiled(row_sums_ext, [x, np.zeros(300, np.float32), 300, 1000],
                                ext_opts(CUDA, warp_header, {'N': parpy.threads(300)}))
    [k] = kernels(code)
    # One row per block of 32 threads; every thread calls the external, one thread stores.
    assert "__launch_bounds__(32)" in k and "dim3(300), dim3(32)" in code
    call = k.index("parpy_ext0 = layers_warp_sum((v_x + (v_i * 1000)), 1000);")
    assert k.index("if ((parpy_tid == 0)) {") > call
    assert "v_y[v_i] = (parpy_ext0 * 2.0f);" in k
    # Next to a 128-thread loop, only the external's 32 threads call it.
    code = parpy.print_compiled(row_sums_ext_and_map, [x, np.zeros(300, np.float32), x, 300, 1000],
                                ext_opts(CUDA, warp_header, {'N': parpy.threads(300), 'K': parpy.threads(128)}))
    [k] = kernels(code)
    assert "__launch_bounds__(128)" in k
    assert k.index("if ((parpy_w1 < 32)) {") < k.index("parpy_ext0 = layers_warp_sum(") < k.index("parpy_tid == 0")


EXT_PROGRAMS = [
    (row_sums_ext, lambda: [np.zeros((300, 1000), np.float32), np.zeros(300, np.float32), 300, 1000],
     {'N': parpy.threads(300)}),
    (row_sums_ext_and_map, lambda: [np.zeros((64, 500), np.float32), np.zeros(64, np.float32),
                                    np.zeros((64, 500), np.float32), 64, 500],
     {'N': parpy.threads(64), 'K': parpy.threads(128)}),
    (scale_by_row_sum, lambda: [np.zeros((50, 200), np.float32)] * 2 + [50, 200],
     {'N': parpy.threads(50), 'K': parpy.threads(32)}),
]


@needs_nvcc
@pytest.mark.parametrize("case", range(len(EXT_PROGRAMS)))
def test_external_cuda_code_compiles(case, warp_header, tmp_path):
    fun, args, par = EXT_PROGRAMS[case]
    code = parpy.print_compiled(fun, args(), ext_opts(CUDA, warp_header, par))
    nvcc_compile(code, tmp_path, [warp_header])


@parpy.external("wide_ext", CUDA, Target.Device, parallelize=parpy.threads(2048))
def wide_ext(a: F32) -> F32:
    return a


@parpy.external("tpb_ext", CUDA, Target.Device, parallelize=parpy.threads(32).tpb(64))
def tpb_ext(a: F32) -> F32:
    return a


def test_external_result_in_a_local_next_to_a_wider_loop_is_an_error():
    @parpy.jit
    def f(x, y, N, M):
        parpy.label('N')
        for i in range(N):
            s = warp_allsum(x[i], M)  # @narrow_local
            parpy.label('K')
            for k in range(M):
                y[i, k] = x[i, k] / s

    x = np.zeros((8, 200), np.float32)
    msg = ("The parallel external function warp_allsum runs on 32 threads, fewer than the 128 threads of "
           "the parallel loops next to it, so the other threads do not have its result. Store the result "
           "to an array element directly, or give those loops at most 32 threads.")
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(f, [x, x, 8, 200], make_opts(CUDA, {'N': parpy.threads(8), 'K': parpy.threads(128)}))
    assert str(e.value) == loc(msg, "narrow_local", "warp_allsum(x[i], M)")


def test_parallel_external_in_a_helper_is_an_error():
    @parpy.jit
    def twice_sum(p: pointer(F32), n: I64):
        return warp_sum(p, n) * 2.0  # @in_helper

    @parpy.jit
    def f(x, y, N, M):
        parpy.label('N')
        for i in range(N):
            y[i] = twice_sum(x[i], M)

    x = np.zeros((8, 200), np.float32)
    msg = ("The external function warp_sum is declared with parallelize=threads(32), so the threads of a "
           "parallel loop call it together; the jit function twice_sum runs in one thread and cannot call "
           "it. Call it in the parallel code of the main function instead.")
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(f, [x, np.zeros(8, np.float32), 8, 200], make_opts(CUDA, {'N': parpy.threads(8)}))
    assert str(e.value) == loc(msg, "in_helper", "warp_sum(p, n)")


def test_parallel_external_wider_than_a_block_is_an_error():
    @parpy.jit
    def f(x, N):
        parpy.label('N')
        for i in range(N):
            x[i] = wide_ext(x[i])  # @wide

    msg = ("The external function wide_ext is declared with parallelize=threads(2048), more than the 1024 "
           "threads of one block that run it. Declare at most 1024 threads.")
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(f, [np.zeros(8, np.float32), 8], make_opts(CUDA, {'N': parpy.threads(8)}))
    assert str(e.value) == loc(msg, "wide", "wide_ext(x[i])")


def test_parallel_external_tpb_merges_with_the_nest():
    @parpy.jit
    def f(x, y, N, M):
        parpy.label('N')
        for i in range(N):
            y[i, 0] = tpb_ext(x[i, 0])
            parpy.label('K')
            for k in range(M):
                y[i, k] = x[i, k]

    x = np.zeros((8, 256), np.float32)
    code = parpy.print_compiled(f, [x, x, 8, 256], make_opts(CUDA, {'N': parpy.threads(8), 'K': parpy.threads(256)}))
    # The loop needs a barrier across its 4 blocks of 64 threads: a kernel of its own, still with
    # the external's tpb.
    assert "f_k0<<<dim3(8), dim3(32)" in code and "f_k1<<<dim3(32), dim3(64)" in code
    with pytest.raises(RuntimeError, match="^Found inconsistent threads per block 64 and 128 among labels"):
        parpy.print_compiled(f, [x, x, 8, 256],
                             make_opts(CUDA, {'N': parpy.threads(8), 'K': parpy.threads(256).tpb(128)}))


def test_parallel_external_in_a_loop_header_is_an_error():
    @parpy.jit
    def f(x, y, N, M):
        parpy.label('N')
        for i in range(N):
            n = 0.0
            while n < warp_allsum(x[i], M):  # @header
                n = n + 1.0
            y[i] = n

    x = np.zeros((8, 200), np.float32)
    msg = ("The parallel external function warp_allsum cannot be called in the header of a loop. Assign its "
           "result to a variable before the loop.")
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(f, [x, np.zeros(8, np.float32), 8, 200], make_opts(CUDA, {'N': parpy.threads(8)}))
    assert str(e.value) == loc(msg, "header", "warp_allsum(x[i], M)")


# ===== A condition that the branch it guards writes ==============================================


@parpy.jit
def min_where_small(x, z, N):
    parpy.label("N")
    for i in range(N):
        if z[i] < 1.0:
            parpy.label("M")
            z[i] = op.min(x[i, :])


def test_condition_is_read_before_the_branch_writes(backend, tmp_path):
    # The reduction sets z[i] to its neutral element (+inf) before reducing: a thread of the
    # block that tested `z[i] < 1.0` after that store skipped the branch and its barriers. The
    # condition is read by every thread first (docs/gpu.md, Synchronisation and kernel splits).
    n, m = 40, 300
    x = rng().standard_normal((n, m)).astype(np.float32)
    z = np.where(rng().random(n) < 0.5, 5.0, 0.0).astype(np.float32)
    want = np.where(z < 1.0, x.min(axis=1), z)
    spec = {"N": parpy.threads(n), "M": parpy.threads(256)}
    min_where_small(x, z, n, opts=make_opts(backend, spec))
    np.testing.assert_array_equal(z, want)
    code = parpy.print_compiled(min_where_small, [x, z, n], make_opts(CUDA, spec))
    kernel = code.split("__global__", 1)[1]
    assert re.search(r"(parpy_cond\d+) = \(v_z\[v_i\] < 1\.0f\);\n\s*parpy_syncthreads\(\);\n\s*if \(\1\) \{",
                     kernel), kernel
    if shutil.which("nvcc"):
        nvcc_compile(code, tmp_path)
