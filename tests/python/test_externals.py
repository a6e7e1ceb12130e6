"""parpy.external on every enabled backend (docs/language.md, Functions): declaration checks,
registries, calls from jit expressions to a system header and to a user header found through
opts.includes. Each external is declared for Cpu and, as a device function, for Cuda."""

import math

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy import CompileBackend, Target
from parpy.types import F32, F64, I64, pointer
from common import make_opts

LOCATIONS = SourceLocations(__file__)
THIS, SRC = LOCATIONS.path, LOCATIONS.src
_line, loc, loc_lines = LOCATIONS.line, LOCATIONS.loc, LOCATIONS.loc_lines

RNG = np.random.default_rng(11)

MY_HEADER = """#pragma once
#include <cstdint>
#ifdef __CUDACC__
#define MY_FN static inline __host__ __device__
#else
#define MY_FN static inline
#endif
MY_FN float my_scale(float x, float s) { return x * s + 1.0f; }
MY_FN float my_row_max(const float* p, int64_t n) {
  float m = p[0];
  for (int64_t i = 1; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}
"""


pytestmark = pytest.mark.usefixtures("fresh_cache")


# The Cpu declaration is applied last, so it is the one in _ext_tops.
@parpy.external("std::hypot", CompileBackend.Cpu, Target.Device, header="<cmath>")
@parpy.external("std::hypot", CompileBackend.Cuda, Target.Device, header="<cmath>")
def ext_hypot(a: F64, b: F64) -> F64:
    return math.hypot(a, b)


@parpy.external("my_scale", CompileBackend.Cpu, Target.Host, header="my.h")
@parpy.external("my_scale", CompileBackend.Cuda, Target.Device, header="my.h")
def ext_scale(x: F32, s: F32) -> F32:
    return x * s + 1.0


@parpy.external("my_row_max", CompileBackend.Cpu, Target.Device, header="my.h")
@parpy.external("my_row_max", CompileBackend.Cuda, Target.Device, header="my.h")
def ext_row_max(p: pointer(F32), n: I64) -> F32:
    return max(p[:n])


@parpy.external("cuda_only_fn", CompileBackend.Cuda, Target.Device)
def ext_cuda_only(a: F32) -> F32:
    return a


@parpy.external("cpu_only_fn", CompileBackend.Cpu, Target.Device)
def ext_cpu_only(a: F32) -> F32:
    return a


def test_registries_and_python_body():
    assert parpy._ext_decls[CompileBackend.Cpu]["ext_hypot"] is parpy._ext_tops["ext_hypot"]
    assert parpy._ext_decls[CompileBackend.Cuda]["ext_hypot"].backend == CompileBackend.Cuda
    assert parpy._ext_tops["ext_hypot"].ext_name == "std::hypot"
    assert parpy._ext_tops["ext_hypot"].header == "<cmath>"
    assert "ext_cuda_only" in parpy._ext_decls[CompileBackend.Cuda]
    assert ext_hypot(3.0, 4.0) == 5.0
    assert ext_scale.__name__ == "ext_scale"
    assert ext_scale(2.0, 3.0) == 7.0


def test_system_header_external(backend):
    @parpy.jit
    def f(x, y, out, N):
        parpy.label("N")
        for i in range(N):
            out[i] = ext_hypot(x[i], y[i])

    x, y = RNG.standard_normal(1000), RNG.standard_normal(1000)
    out = np.zeros(1000)
    f(x, y, out, 1000, opts=make_opts(backend, N=4))
    np.testing.assert_allclose(out, np.hypot(x, y), rtol=1e-15)
    code = parpy.print_compiled(f, [x, y, out, 1000], make_opts(backend, N=4))
    assert "#include <cmath>" in code and "std::hypot(" in code


def test_user_header_with_includes(backend, tmp_path):
    (tmp_path / "my.h").write_text(MY_HEADER)

    @parpy.jit
    def f(x, out, N, M):
        parpy.label("N")
        for i in range(N):
            out[i] = ext_scale(ext_row_max(x[i], M), 2.0)

    x = RNG.standard_normal((40, 17)).astype(np.float32)
    out = np.zeros(40, np.float32)
    opts = make_opts(backend, N=4)
    opts.includes = [str(tmp_path)]
    f(x, out, 40, 17, opts=opts)
    np.testing.assert_allclose(out, x.max(axis=1) * 2 + 1, rtol=1e-6)
    code = parpy.print_compiled(f, [x, out, 40, 17], opts)
    assert code.count('#include "my.h"') == 1


def test_external_called_from_helper(backend):
    @parpy.jit
    def norm(a: F64, b: F64):
        return ext_hypot(a, b) * 2.0

    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = norm(x[i], y[i])

    x, y = RNG.standard_normal(64), RNG.standard_normal(64)
    expected = np.hypot(x, y) * 2
    f(x, y, 64, opts=make_opts(backend, N=2))
    np.testing.assert_allclose(y, expected, rtol=1e-15)


# ----- errors ---------------------------------------------------------------------------------


def test_cuda_host_external():
    with pytest.raises(RuntimeError, match="^Host externals are not supported in the CUDA backend$"):

        @parpy.external("g", CompileBackend.Cuda, Target.Host)
        def g(a: F32) -> F32:
            return a


def test_auto_backend_external():
    with pytest.raises(RuntimeError) as e:

        @parpy.external("g", CompileBackend.Auto, Target.Device)
        def g(a: F32) -> F32:
            return a

    assert str(e.value) == "Unsupported external backend: CompileBackend.Auto"


def test_metal_parallel_host_external():
    with pytest.raises(RuntimeError, match="^Host externals cannot be parallel$"):

        @parpy.external("g", CompileBackend.Metal, Target.Host, parallelize=parpy.threads(32))
        def g(a: F32) -> F32:
            return a


def test_unannotated_external_parameter():
    with pytest.raises(RuntimeError) as e:

        @parpy.external("g", CompileBackend.Cpu, Target.Device)
        def g(a: F32, b) -> F32:
            return a

    assert str(e.value) == "External declaration parameters must be annotated with types."


@pytest.mark.parametrize("annotation, shown", [(float, "<class 'float'>"),
                                               (np.ndarray, "<class 'numpy.ndarray'>")])
def test_external_parameter_with_python_type(annotation, shown):
    # An annotation that is not a parpy type is unsupported, not missing.
    with pytest.raises(RuntimeError) as e:

        @parpy.external("g", CompileBackend.Cpu, Target.Device)
        def g(a: F32, b: annotation) -> F32:
            return a

    assert str(e.value) == (
        "Unsupported parameter type annotation\nParameter b of external function g is annotated "
        f"with {shown}. Annotate parameters with types from parpy.types: parpy.types.F32, "
        "parpy.types.I64, ... for scalars and parpy.types.pointer(parpy.types.F32) for arrays."
    )


def test_missing_external_return_type():
    with pytest.raises(RuntimeError) as e:

        @parpy.external("g", CompileBackend.Cpu, Target.Device)
        def g(a: F32):
            return a

    assert str(e.value) == "Unsupported return type annotation on external function"


def test_statement_call_to_external():
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(x, N):
            parpy.label("N")
            for i in range(N):
                ext_scale(x[i], 2.0)  # @stmt_ext

    assert str(e.value) == loc("Cannot inline call to external function ext_scale", "stmt_ext",
                               "ext_scale(x[i], 2.0)")


def test_external_of_other_backend(backend):
    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = ext_cuda_only(x[i])  # @other_backend

    @parpy.jit
    def g(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = ext_cpu_only(x[i])  # @other_backend_cpu

    if backend == CompileBackend.Cuda:
        fun, expected = g, loc("Call to unknown function ext_cpu_only", "other_backend_cpu", "ext_cpu_only(x[i])")
    else:
        fun, expected = f, loc("Call to unknown function ext_cuda_only", "other_backend", "ext_cuda_only(x[i])")
    with pytest.raises(RuntimeError) as e:
        fun(np.zeros(4, np.float32), 4, opts=make_opts(backend, N=2))
    assert str(e.value) == expected


def test_external_argument_type(backend):
    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = ext_hypot(x[i], 1.0)  # @ext_arg

    with pytest.raises(TypeError) as e:
        f(np.zeros(4, np.int64), np.zeros(4), 4, opts=make_opts(backend, N=2))
    inner = "Expected element of type float64, found incompatible element type int64."
    assert str(e.value) == loc("Found incompatible types in function call:\n" + inner, "ext_arg", "x[i]")


@parpy.external("lib_twice_plus", CompileBackend.Cpu, Target.Device, header="twice.h")
def ext_twice_plus(x: F64, k: I64) -> F64:
    return 2.0 * x + k


@pytest.mark.parametrize("link", ["-l", "-l name", "static file"])
def test_linking_a_compiled_library_on_cpu(tmp_path, link):
    """A library named in opts.extra_flags is linked: parpy puts the linker's inputs after the
    generated source, where GNU ld (with --as-needed, as Debian's and Ubuntu's GCC run it) keeps a
    library that the code before it needs."""
    import subprocess

    cxx = parpy.backend.host_cxx()
    (tmp_path / "twice.cpp").write_text(
        'extern "C" double lib_twice_plus(double x, long k) { return 2.0 * x + k; }\n')
    (tmp_path / "twice.h").write_text('extern "C" double lib_twice_plus(double x, long k);\n')
    if link == "static file":
        obj = tmp_path / "twice.o"
        subprocess.run([cxx, "-c", "-fPIC", str(tmp_path / "twice.cpp"), "-o", str(obj)], check=True)
        subprocess.run(["ar", "rcs", str(tmp_path / "libtwice.a"), str(obj)], check=True)
        flags = [str(tmp_path / "libtwice.a")]
    else:
        subprocess.run([cxx, "-shared", "-fPIC", str(tmp_path / "twice.cpp"), "-o",
                        str(tmp_path / "libtwice.so")], check=True)  # fmt: skip
        flags = ["-ltwice"] if link == "-l" else ["-l", "twice"]
        flags.append("-Wl,-rpath," + str(tmp_path))

    @parpy.jit
    def twice_plus(x, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = ext_twice_plus(x[i], i)

    x = RNG.standard_normal(300)
    y = np.zeros(300)
    opts = make_opts(CompileBackend.Cpu, N=4)
    opts.includes = [str(tmp_path)]
    opts.libs = [str(tmp_path)]
    opts.extra_flags = flags
    twice_plus(x, y, 300, opts=opts)
    np.testing.assert_array_equal(y, 2.0 * x + np.arange(300))


def test_relative_include_dir(backend, tmp_path, monkeypatch):
    """opts.includes relative to the current directory: the compiler may run in a build directory
    of its own (Cpu with GCC's precompiled header), where the relative path would name nothing."""
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "my.h").write_text(MY_HEADER)
    monkeypatch.chdir(tmp_path)

    @parpy.jit
    def f(x, out, N):
        parpy.label("N")
        for i in range(N):
            out[i] = ext_scale(x[i], 3.0)

    x = RNG.standard_normal(300).astype(np.float32)
    out = np.zeros(300, np.float32)
    opts = make_opts(backend, N=4)
    opts.includes = ["inc"]
    f(x, out, 300, opts=opts)
    np.testing.assert_allclose(out, x * 3 + 1, rtol=1e-6, atol=1e-6)


STD_HEADER = """#pragma once
#include <cstdint>
#include <cstddef>
#include <climits>
#include <cfloat>
#include <cmath>
#include <math.h>
static inline __host__ __device__ double std_mix(double x, double y, int64_t k) {
  std::int64_t big = INT64_MAX / (k + 1);
  std::size_t words = sizeof(std::ptrdiff_t) + CHAR_BIT;  // 16
  double m = std::fmax(std::fabs(x), FLT_MIN) + std::hypot(x, y) + std::exp2(y / 8.0);
  float f = std::sqrt(static_cast<float>(x * x)) + std::floor(2.5f);  // float overloads
  return m + f + static_cast<double>(big % 7) + static_cast<double>(words) + (std::isnan(x) ? 1.0 : 0.0) +
         static_cast<double>(INT_MAX - 2147483647) + (DBL_EPSILON < 1e-15 ? 1.0 : 0.0);
}
"""


@parpy.external("std_mix", CompileBackend.Cuda, Target.Device, header="stdmix.h")
def std_mix(x: F64, y: F64, k: I64) -> F64:
    return x


def std_mix_expected(x, y, k):
    big = (2**63 - 1) // (k + 1)
    m = np.maximum(np.abs(x), np.finfo(np.float32).tiny) + np.hypot(x, y) + np.exp2(y / 8.0)
    f = np.sqrt((x * x).astype(np.float32)).astype(np.float64) + 2.0
    return m + f + (big % 7) + 16.0 + 0.0 + 0.0 + 1.0


@pytest.mark.skipif(not parpy.backend.is_enabled(CompileBackend.Cuda), reason="needs a CUDA GPU")
@pytest.mark.skipif(not parpy._nvrtc_info()["found"], reason="needs NVRTC")
def test_standard_headers_of_externals_under_nvrtc(tmp_path, monkeypatch):
    # Without nvcc (or with PARPY_CUDA_BUILD=nvrtc) NVRTC builds programs whose externals include
    # headers: parpy's <cstdint>, <cstddef>, <climits>, <cfloat> and <cmath> stand in for the
    # standard library's (README, "Backends").
    monkeypatch.setenv("PARPY_CUDA_BUILD", "nvrtc")
    (tmp_path / "stdmix.h").write_text(STD_HEADER)

    @parpy.jit
    def f(x, y, out, N, K):
        parpy.label("N")
        for i in range(N):
            out[i] = std_mix(x[i], y[i], K)

    n, k = 5000, 4
    x, y = RNG.standard_normal(n), RNG.standard_normal(n)
    out = np.zeros(n)
    o = make_opts(CompileBackend.Cuda, N=256)
    o.includes = [str(tmp_path)]
    before = parpy._nvrtc_info()["compiles"]
    f(x, y, out, n, k, opts=o)
    assert parpy._nvrtc_info()["compiles"] == before + 1  # built by NVRTC, not nvcc
    np.testing.assert_allclose(out, std_mix_expected(x, y, k), rtol=1e-6, atol=1e-6)
