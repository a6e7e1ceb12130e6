"""User identifiers never reach the generated C++/CUDA as-is: functions, parameters, locals and
helpers named like C keywords, macros, or functions of the C library or parpy's headers compute
their result, and a library's exported symbols are parpy's own (a function named like a libc
function used to call that function instead of the compiled code)."""

import shutil
import subprocess

import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from parpy.types import F64

N = 64
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


def opts(backend):
    o = parpy.par({"N": parpy.threads(N)})
    o.backend = backend
    return o


@parpy.jit
def index(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] + 1.0


@parpy.jit
def unlink(path, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = path[i] * 2.0


@parpy.jit
def sleep(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] - 3.0


@parpy.jit
def M_PI(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] * x[i]


@parpy.jit
def NULL(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] + x[i] + 1.0


@parpy.jit
def main(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = 4.0 - x[i]


@parpy.jit
def exp(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = parpy.operators.exp(x[i])


@parpy.jit
def params_named_like_c(int, float, NULL, M_PI):
    parpy.label("N")
    for i in range(M_PI):
        float[i] = int[i] * NULL


@parpy.jit
def locals_named_like_c(x, y, N):
    parpy.label("N")
    for i in range(N):
        restrict = x[i] * 2.0
        __restrict__ = restrict + 1.0
        signed = __restrict__ * 3.0
        y[i] = signed


@parpy.jit
def abs(v: F64) -> F64:  # noqa: A001 (a helper named like a C library function)
    return v * 10.0


@parpy.jit
def calls_helper_named_abs(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = abs(x[i])


UNARY = {
    index: lambda x: x + 1.0,
    unlink: lambda x: x * 2.0,
    sleep: lambda x: x - 3.0,
    M_PI: lambda x: x * x,
    NULL: lambda x: x + x + 1.0,
    main: lambda x: 4.0 - x,
    exp: np.exp,
    locals_named_like_c: lambda x: (x * 2.0 + 1.0) * 3.0,
    calls_helper_named_abs: lambda x: x * 10.0,
}
NAMES = ["index", "unlink", "sleep", "M_PI", "NULL", "main", "exp", "locals", "helper_abs"]


@pytest.mark.parametrize("fn", list(UNARY), ids=NAMES)
def test_function_named_like_a_c_name_computes_its_result(fn, backend):
    x = np.random.rand(N)
    y = np.zeros(N)
    fn(x, y, N, opts=opts(backend))
    np.testing.assert_allclose(y, UNARY[fn](x), rtol=1e-12)


def test_parameters_named_like_c_names(backend):
    a = np.random.rand(N)
    b = np.zeros(N)
    s = float(np.random.rand())
    params_named_like_c(a, b, s, N, opts=opts(backend))
    np.testing.assert_allclose(b, a * s, rtol=1e-12)


def test_function_named_unlink_does_not_delete_a_file(tmp_path, backend):
    path = tmp_path / "keep.txt"
    path.write_text("still here")
    # The first argument holds the path's bytes: libc's unlink would remove the file.
    raw = np.frombuffer(str(path).encode() + b"\0" * 8, dtype=np.uint8)
    x = np.zeros(N)
    x.view(np.uint8)[: raw.size] = raw
    y = np.zeros(N)
    unlink(x, y, N, opts=opts(backend))
    assert path.read_text() == "still here"
    np.testing.assert_allclose(y, x * 2.0)


def test_exported_symbols_are_parpy_names():
    x = np.random.rand(N)
    code = parpy.print_compiled(index, [x, np.zeros(N), N], opts(CompileBackend.Cpu))
    assert 'extern "C" int32_t parpy_entry_index(void** args)' in code
    assert "static int32_t v_index(double* v_x, double* v_y, int64_t v_N)" in code
    exported = [line for line in code.splitlines() if line.startswith('extern "C"')]
    assert exported == ['extern "C" int32_t parpy_entry_index(void** args) {']


def test_print_compiled_round_trips_through_compile_string():
    x = np.random.rand(N)
    code = parpy.print_compiled(M_PI, [x, np.zeros(N), N], opts(CompileBackend.Cpu))
    y = np.zeros(N)
    parpy.compile_string("M_PI", code, opts(CompileBackend.Cpu))(x, y, N)
    np.testing.assert_allclose(y, x * x)


def test_hand_written_compile_string_names_its_own_function():
    code = """
#include <cstdint>
extern "C" int32_t halve(double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / 2.0;
  return 0;
}
"""
    x = np.random.rand(N)
    y = np.zeros(N)
    parpy.compile_string("halve", code, opts(CompileBackend.Cpu))(x, y, N)
    np.testing.assert_allclose(y, x / 2.0)


@needs_nvcc
@pytest.mark.parametrize("fn", list(UNARY) + [params_named_like_c], ids=NAMES + ["params"])
def test_cuda_code_of_c_names_compiles(fn, tmp_path):
    x = np.random.rand(N)
    args = [x, np.zeros(N), 0.5, N] if fn is params_named_like_c else [x, np.zeros(N), N]
    code = parpy.print_compiled(fn, args, opts(CompileBackend.Cuda))
    src = tmp_path / "k.cu"
    src.write_text(code)
    cmd = ["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(), str(src), "-o",
           str(tmp_path / "k.o")]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, code + "\n" + r.stderr


@pytest.mark.parametrize("ext_name", ["fmin; system(\"rm\")", "1f", "a.b", "std::", "f(x)", ""])
def test_bad_external_name_is_refused(ext_name):
    with pytest.raises(Exception, match="is not a C/C\\+\\+ function name"):

        @parpy.external(ext_name, CompileBackend.Cpu, parpy.Target.Host)
        def f(x: F64) -> F64:
            return x


@pytest.mark.parametrize("header", ["<math.h>\n#define x 1", "<a.h> <b.h>", "<a.h", "\"a.h"])
def test_bad_external_header_is_refused(header):
    with pytest.raises(Exception, match="is not a header file name"):

        @parpy.external("fmin", CompileBackend.Cpu, parpy.Target.Host, header=header)
        def g(x: F64, y: F64) -> F64:
            return x


@pytest.mark.parametrize("ext_name,header", [("std::fmin", "<cmath>"), ("my_ns::f", '"my.h"'),
                                             ("::fmin", "math.h")])
def test_good_external_names_are_accepted(ext_name, header):
    @parpy.external(ext_name, CompileBackend.Cpu, parpy.Target.Host, header=header)
    def h(x: F64, y: F64) -> F64:
        return x

    assert h is not None


# ----- Names the compiler makes never meet the user's, and are the same in every compilation -----


@parpy.jit
def store_twice(y, x, i):
    t = x[i] * 2.0
    y[i] = t


@parpy.jit
def caller_with_locals_like_inlined_names(x, y, N):
    parpy.label("N")
    for i in range(N):
        t_store_twice0 = 1.0
        t_store_twice_0 = 3.0
        store_twice(y, x, i)
        y[i] = y[i] + t_store_twice0 + t_store_twice_0


def test_inlined_helper_locals_keep_apart_from_the_callers(backend):
    x, y = np.random.rand(N), np.zeros(N)
    caller_with_locals_like_inlined_names(x, y, N, opts=opts(backend))
    np.testing.assert_allclose(y, 2.0 * x + 4.0)


@parpy.jit
def slices_and_a_local_like_their_loop(x, y, N):
    slice_dim0 = 5.0
    slice_dim1 = 7.0
    parpy.label("N")
    y[:] = x[:] + slice_dim0 + slice_dim1
    parpy.label("N")
    y[:] = y[:] * slice_dim0


def test_slice_loops_keep_apart_from_user_locals(backend):
    x, y = np.random.rand(N), np.zeros(N)
    slices_and_a_local_like_their_loop(x, y, N, opts=opts(backend))
    np.testing.assert_allclose(y, (x + 12.0) * 5.0)


@pytest.mark.parametrize("backend_", [CompileBackend.Cpu, CompileBackend.Cuda], ids=["Cpu", "Cuda"])
def test_same_program_same_code(backend_):
    """The code (and so the disk cache key) of a program does not depend on what was compiled
    before it in the process."""
    x, y = np.random.rand(N), np.zeros(N)
    for f in (slices_and_a_local_like_their_loop, caller_with_locals_like_inlined_names):
        first = parpy.print_compiled(f, [x, y, N], opts(backend_))
        parpy.print_compiled(slices_and_a_local_like_their_loop, [x, y, N], opts(backend_))
        assert parpy.print_compiled(f, [x, y, N], opts(backend_)) == first
