"""compile_string on the Cuda backend: the source is CUDA C++ built by nvcc (as one program), run
like a jit entry (numpy arrays copied in, and all of them copied back, since hand-written code
does not say what it writes), and CUDA errors raised in it reach Python. The round trip of
print_compiled and the hand-written programs need a GPU; that nvcc (not the host compiler) builds
the source is checked anywhere nvcc is, against a stand-in CUDA driver."""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import fake_driver
import parpy
import pytest
from parpy import CompileBackend
from common import child_timeout, axpy, row_sum

CUDA = CompileBackend.Cuda
needs_gpu = pytest.mark.skipif(not parpy.backend.is_enabled(CUDA), reason="no CUDA GPU here")
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


def cuda_opts(graphs=False, **labels):
    o = parpy.par({k: parpy.threads(v) for k, v in labels.items()})
    o.backend = CUDA
    o.use_cuda_graphs = graphs
    return o


@needs_gpu
@needs_nvcc  # host code and kernels in one source: nvcc only
@pytest.mark.parametrize("graphs", [False, True], ids=["launches", "graphs"])
def test_round_trip_of_print_compiled(graphs):
    rng = np.random.default_rng(1)
    n = 5000
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    o = cuda_opts(graphs, N=n)
    f = parpy.compile_string("axpy", parpy.print_compiled(axpy, [1.5, x, y, n], o), o)
    out = y.copy()
    f(1.5, x, out, n)
    np.testing.assert_allclose(out, 1.5 * x + y, rtol=1e-12, atol=1e-12)
    f(1.5, x, out, n)  # again: the built entry is cached (and with graphs, replayed)
    np.testing.assert_allclose(out, 3.0 * x + y, rtol=1e-12, atol=1e-12)
    # A multi-block reduction: scratch memory made by the entry on first use.
    m = rng.random((3, 30000), dtype=np.float32)
    ro = parpy.par({"rows": parpy.threads(3), "cols": parpy.threads(4096).reduce().tpb(512)})
    ro.backend = CUDA
    ro.use_cuda_graphs = graphs
    g = parpy.compile_string("row_sum", parpy.print_compiled(row_sum, [m, m[:, 0].copy(), 3, 30000], ro), ro)
    sums = np.zeros(3, np.float32)
    g(m, sums, 3, 30000)
    np.testing.assert_allclose(sums, m.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-3)


HAND_WRITTEN = r"""
#include "parpy_cuda.h"

__global__ void scale_kernel(const double* x, double* y, double a, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i];
}

// The call's stream as a last parameter (optional).
extern "C" int32_t scale(double* x, double* y, double a, int64_t n, cudaStream_t stream) {
  scale_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(x, y, a, n);
  parpy_cuda_check_error(cudaGetLastError());
  return 0;
}

extern "C" int32_t scale_default_stream(double* x, double* y, double a, int64_t n) {
  scale_kernel<<<(unsigned)((n + 255) / 256), 256>>>(x, y, a, n);
  parpy_cuda_check_error(cudaGetLastError());
  return 0;
}

extern "C" int32_t hog(double* x) {
  void* p = nullptr;
  parpy_cuda_check_error(cudaMalloc(&p, (size_t)1 << 52));  // 4 PiB
  cudaFree(p);
  return 0;
}

extern "C" int32_t refuse(double* x) { return 3; }
"""


@needs_gpu
@needs_nvcc  # host code and kernels in one source: nvcc only
def test_hand_written_cuda():
    rng = np.random.default_rng(2)
    n = 70000
    x = rng.standard_normal(n)
    o = cuda_opts()
    for name in ("scale", "scale_default_stream"):
        y = np.zeros(n)
        parpy.compile_string(name, HAND_WRITTEN, o)(x, y, -2.0, n)
        np.testing.assert_array_equal(y, -2.0 * x)


@needs_gpu
@needs_nvcc  # host code and kernels in one source: nvcc only
def test_cuda_errors_of_hand_written_code():
    x = np.zeros(10)
    o = cuda_opts()
    hog = parpy.compile_string("hog", HAND_WRITTEN, o)
    for _ in range(2):
        with pytest.raises(RuntimeError, match=r"cudaMalloc\(&p, \(size_t\)1 << 52\): out of memory"):
            hog(x)
    with pytest.raises(RuntimeError, match="The compiled function failed with status 3"):
        parpy.compile_string("refuse", HAND_WRITTEN, o)(x)
    # The error is reported once: the next call of the same module runs cleanly.
    y = np.zeros(10)
    parpy.compile_string("scale", HAND_WRITTEN, o)(np.ones(10), y, 2.0, 10)
    np.testing.assert_array_equal(y, np.full(10, 2.0))



# Valid CUDA only nvcc accepts (a kernel launch), then a missing semicolon.
CUDA_SYNTAX_ERROR = r"""
__global__ void fill(float* x) { x[threadIdx.x] = 1.0f; }
extern "C" int32_t broken(float* x) {
  fill<<<1, 32>>>(x);
  return 0
}
"""


@needs_nvcc
@pytest.mark.skipif(parpy.backend.host_cxx() is None, reason="no C++ compiler for the stand-in driver")
def test_cuda_source_is_built_by_nvcc(tmp_path):
    lib_dir = fake_driver.build(tmp_path / "driver").parent
    script = textwrap.dedent(f"""
        import numpy as np, parpy
        assert parpy.backend.is_enabled(parpy.CompileBackend.Cuda), parpy.backend.reasons()
        o = parpy.CompileOptions()
        o.backend = parpy.CompileBackend.Cuda
        f = parpy.compile_string("broken", {CUDA_SYNTAX_ERROR!r}, o)
        try:
            f(np.zeros(32, np.float32))
        except RuntimeError as e:
            print(e)
        # A valid program builds (with the entry parpy adds) and runs until its CUDA runtime
        # meets the stand-in driver: that error is raised, as any CUDA error of the program.
        g = parpy.compile_string("scale", {HAND_WRITTEN!r}, o)
        try:
            g(np.ones(10), np.zeros(10), 2.0, 10)
        except RuntimeError as e:
            print("runtime error:", e)
    """)
    env = dict(os.environ, LD_LIBRARY_PATH=str(lib_dir), PARPY_LIBCUDA=str(lib_dir / "libcuda.so.1"),
               PARPY_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=child_timeout(600),
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    # nvcc's front end reports the missing semicolon (g++ would already reject __global__).
    assert "Compilation of generated CUDA code failed with exit code" in r.stdout, r.stdout + r.stderr
    assert 'error: expected a ";"' in r.stdout, r.stdout
    assert "runtime error: cudaGetDevice: " in r.stdout, r.stdout
