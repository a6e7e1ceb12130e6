"""The language on the Cuda backend without a GPU: jit helpers (printed as __device__ functions),
device externals (header included, called by their C name) and every element type. Representative
programs are printed with print_compiled and compiled with nvcc; the errors only the Cuda backend
reports are checked here too. The numeric tests of these features (test_functions.py,
test_externals.py, test_types.py) run on Cuda where a GPU is present."""

import shutil
import subprocess

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy import CompileBackend, Target
from parpy import operators as op
from parpy.types import F32, F64, I64, pointer

# The helpers of the Cpu/GPU numeric tests, compiled here for Cuda without a GPU.
from test_functions import (
    add,
    affine_i8,
    lerp_f16,
    mix_u16,
    mul,
    row_total,
    scale_row,
    scale_row_twice,
    sq,
    xor_bool,
)

CUDA = CompileBackend.Cuda
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")

LOCATIONS = SourceLocations(__file__)
loc = LOCATIONS.loc

N = 1000
ALL = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
       np.float16, np.float32, np.float64]
INTS = ALL[1:9]
FLOATS = ALL[9:]

MY_HEADER = """#pragma once
#include <cstdint>
__device__ static inline float my_scale(float x, float s) { return x * s + 1.0f; }
__device__ static inline float my_row_max(const float* p, int64_t n) {
  float m = p[0];
  for (int64_t i = 1; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}
"""


def cuda(par=None, **labels):
    o = parpy.par(dict(par or {}, **{k: parpy.threads(v) for k, v in labels.items()}))
    o.backend = CUDA
    return o


def nvcc_compile(code, tmp_path, includes=()):
    src = tmp_path / "k.cu"
    src.write_text(code)
    cmd = ["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include()]
    cmd += ["-I" + str(d) for d in includes]
    r = subprocess.run(cmd + [str(src), "-o", str(tmp_path / "k.o")], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, code + "\n" + r.stderr


# ----- jit helpers ------------------------------------------------------------------------------


@parpy.jit
def cl_clamp(v: F64, lo: F64, hi: F64) -> F64:
    if v < lo:
        return lo
    elif v > hi:
        return hi
    return v


@parpy.jit
def calls_loop(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = add(mul(add(x[i], y[i]), 2), 1.5)


@parpy.jit
def calls_slices(x, y):
    parpy.label("N")
    parpy.label("M")
    y[:, :] = mul(x[:, :], add(y[:, :], x[:, :]))


@parpy.jit
def calls_pointers(x, out, total, N, M):
    parpy.label("N")
    for i in range(N):
        out[i] = row_total(x[i], M)
    with parpy.gpu:
        total[0] = row_total(out, N)


@parpy.jit
def calls_control_flow(x, N):
    parpy.label("N")
    for i in range(N):
        x[i] = cl_clamp(x[i], -0.5, 0.5)


@parpy.jit
def calls_writes(x, counts, N, M):
    parpy.label("N")
    for i in range(N):
        counts[i] = scale_row_twice(x[i], M, 3.0)


@parpy.jit
def calls_reduction(x, out, N, M):
    parpy.label("N")
    for i in range(N):
        out[i] = 0.0
        parpy.label("M")
        for j in range(M):
            out[i] += sq(x[i, j])


@parpy.jit
def calls_between_layers(x, out, N, M):
    # A pure helper in statements every thread of the block runs.
    parpy.label("N")
    for i in range(N):
        s = row_total(x[i], M)
        parpy.label("M")
        for j in range(M):
            out[i, j] = x[i, j] / s


@parpy.jit
def calls_fixed_row(x, y, out, N):
    # An innermost loop over contiguous elements, which would get a 128-bit variant.
    parpy.label("N")
    for i in range(N):
        out[i] = row_total(x[0], 8) + y[i]


@parpy.jit
def calls_small_types(a8, b8, o8, a16, b16, o16, ah, bh, th, oh, ab, bb, ob, N):
    parpy.label("N")
    for i in range(N):
        o8[i] = affine_i8(a8[i], b8[i])
        o16[i] = mix_u16(a16[i], b16[i])
        oh[i] = lerp_f16(ah[i], bh[i], th[i])
        ob[i] = xor_bool(ab[i], bb[i])


def f32(*shape):
    return np.zeros(shape, np.float32)


def helper_programs():
    n = 300
    small = [np.zeros(n, np.int8), np.zeros(n, np.int8), np.zeros(n, np.int8), np.zeros(n, np.uint16),
             np.zeros(n, np.uint16), np.zeros(n, np.uint16), np.zeros(n, np.float16), np.zeros(n, np.float16),
             np.zeros(n, np.float16), np.zeros(n, np.float16), np.zeros(n, np.bool_), np.zeros(n, np.bool_),
             np.zeros(n, np.bool_), n]
    return {
        "loop": (calls_loop, [f32(N), f32(N), N], cuda(N=N)),
        "slices": (calls_slices, [f32(20, 30), f32(20, 30)], cuda(N=20, M=30)),
        "pointers": (calls_pointers, [f32(37, 53), f32(37), f32(1), 37, 53], cuda(N=37)),
        "control_flow": (calls_control_flow, [np.zeros(N), N], cuda(N=N)),
        "writes": (calls_writes, [f32(40, 17), np.zeros(40, np.int64), 40, 17], cuda(N=40)),
        "block_reduction": (calls_reduction, [f32(50, 300), f32(50), 50, 300],
                            cuda({"M": parpy.threads(128).reduce()}, N=50)),
        "multiblock_reduction": (calls_reduction, [f32(8, 5000), f32(8), 8, 5000],
                                 cuda({"M": parpy.threads(2048).tpb(512).reduce()}, N=8)),
        "between_layers": (calls_between_layers, [f32(64, 300), f32(64, 300), 64, 300], cuda(N=64, M=256)),
        "small_types": (calls_small_types, small, cuda(N=n)),
        "fixed_row": (calls_fixed_row, [f32(4, 8), f32(4096), f32(4096), 4096], cuda(N=1024)),
    }


@needs_nvcc
@pytest.mark.parametrize("name", list(helper_programs()))
def test_helper_program_compiles(name, tmp_path):
    fun, args, opts = helper_programs()[name]
    nvcc_compile(parpy.print_compiled(fun, args, opts), tmp_path)


def test_helpers_are_device_functions_before_the_kernels():
    code = parpy.print_compiled(calls_loop, [f32(N), f32(N), N], cuda(N=N))
    assert code.count("static __device__ inline float parpy_helper_add(float v_a, float v_b) {") == 1
    assert code.count("static __device__ inline float parpy_helper_mul(float v_a, float v_b) {") == 1
    assert code.index("helper_add(") < code.index("__global__")
    assert "double" not in code.split('extern "C"')[0]
    # Callees come first; each helper is printed once however often it is called.
    code = parpy.print_compiled(calls_writes, [f32(40, 17), np.zeros(40, np.int64), 40, 17], cuda(N=40))
    assert code.index("helper_scale_row(") < code.index("helper_scale_row_twice(")
    assert code.count("helper_scale_row(float* v_r, int64_t v_n, float v_v) {") == 1


def test_kernel_passing_a_row_has_no_vector_variant():
    code = parpy.print_compiled(*helper_programs()["fixed_row"])
    assert "helper_row_total((v_x + 0), 8)" in code and "_vec" not in code
    code = parpy.print_compiled(calls_loop, [f32(4096), f32(4096), 4096], cuda(N=1024))
    assert "calls_loop_k0_vec" in code


def test_f16_helper_includes_fp16_header():
    code = parpy.print_compiled(*helper_programs()["small_types"][:2], cuda(N=300))
    assert "#include <cuda_fp16.h>" in code
    assert "static __device__ inline __half parpy_helper_lerp_f16(__half v_a, __half v_b, __half v_t) {" in code


# ----- Cuda-only errors ---------------------------------------------------------------------------


def test_helper_call_in_host_code():
    @parpy.jit
    def f(x, N):
        s = add(1.0, 2.0)  # @host_helper
        parpy.label("N")
        for i in range(N):
            x[i] = s

    msg = "The jit function add runs on the GPU, so it cannot be called outside parallel code."
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(f, [f32(10), 10], cuda(N=10))
    assert str(e.value) == loc(msg, "host_helper", "add(1.0, 2.0)")
    # On the Cpu backend host code may call it.
    cpu = cuda(N=10)
    cpu.backend = CompileBackend.Cpu
    assert "helper_add(1.0f, 2.0f)" in parpy.print_compiled(f, [f32(10), 10], cpu)


def test_external_call_in_host_loop_bound():
    @parpy.jit
    def f(x, N):
        for k in range(op.int64(cl_ext_row_max(x, 3))):  # @host_ext
            parpy.label("N")
            for i in range(N):
                x[i] = x[i] + 1.0

    msg = "The external function cl_ext_row_max runs on the GPU, so it cannot be called outside parallel code."
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(f, [f32(10), 10], cuda(N=10))
    assert str(e.value) == loc(msg, "host_ext", "cl_ext_row_max(x, 3)")


def test_parallel_code_in_helper_on_cuda():
    @parpy.jit
    def h(r: pointer(F32), n: I64):
        parpy.label("M")
        for j in range(n):  # @par_helper
            r[j] = 0.0  # @par_helper_end
        return n

    @parpy.jit
    def f(x, out, N, M):
        parpy.label("N")
        for i in range(N):
            out[i] = h(x[i], M)

    msg = "Found parallel code outside main function definition, which is not allowed."
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(f, [f32(4, 8), np.zeros(4, np.int64), 4, 8], cuda(N=4, M=8))
    assert str(e.value) == LOCATIONS.loc_lines(msg, "par_helper", "for j", "par_helper_end", "r[j] = 0.0")


def test_writing_helper_run_by_every_thread_of_a_block():
    @parpy.jit
    def f(x, N, M):
        parpy.label("N")
        for i in range(N):
            t = scale_row(x[i], M, 2.0)  # noqa: F841 # @replicated
            parpy.label("M")
            for j in range(M):
                x[i, j] = x[i, j] + 1.0

    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(f, [f32(4, 8), 4, 8], cuda(N=4, M=8))
    msg = ("The jit function scale_row writes through a pointer parameter, so on the GPU it must be called in "
           "an innermost parallel loop or in an assignment to an array element; here every thread of the "
           "block would run it.")
    assert str(e.value) == loc(msg, "replicated", "scale_row(x[i], M, 2.0)")


# ----- externals ----------------------------------------------------------------------------------


@parpy.external("std::hypot", CUDA, Target.Device, header="<cmath>")
def cl_ext_hypot(a: F64, b: F64) -> F64:
    return float(np.hypot(a, b))


@parpy.external("my_scale", CUDA, Target.Device, header="my.h")
def cl_ext_scale(x: F32, s: F32) -> F32:
    return x * s + 1.0


@parpy.external("my_row_max", CUDA, Target.Device, header="my.h")
def cl_ext_row_max(p: pointer(F32), n: I64) -> F32:
    return max(p[:n])


@parpy.external("wide_fn", CUDA, Target.Device, parallelize=parpy.threads(64))
def cl_ext_wide(a: F32) -> F32:
    return a


@parpy.jit
def cl_hypot_norm(a: F64, b: F64):
    return cl_ext_hypot(a, b) * 2.0


@parpy.jit
def ext_system(x, y, out, N):
    parpy.label("N")
    for i in range(N):
        out[i] = cl_ext_hypot(x[i], y[i]) + cl_hypot_norm(x[i], 1.0)


@parpy.jit
def ext_user(x, out, N, M):
    parpy.label("N")
    for i in range(N):
        out[i] = cl_ext_scale(cl_ext_row_max(x[i], M), 2.0)


@parpy.jit
def ext_between_layers(x, out, N, M):
    parpy.label("N")
    for i in range(N):
        m = cl_ext_row_max(x[i], M)
        parpy.label("M")
        for j in range(M):
            out[i, j] = x[i, j] - m


@needs_nvcc
def test_system_header_external_compiles(tmp_path):
    x = np.zeros(N)
    code = parpy.print_compiled(ext_system, [x, x, x, N], cuda(N=N))
    assert code.count("#include <cmath>") == 1 and "std::hypot(" in code
    assert code.index("#include <cmath>") < code.index("helper_cl_hypot_norm")
    nvcc_compile(code, tmp_path)


@needs_nvcc
@pytest.mark.parametrize("fun", [ext_user, ext_between_layers])
def test_user_header_external_compiles(fun, tmp_path):
    (tmp_path / "my.h").write_text(MY_HEADER)
    opts = cuda(N=40, M=32)
    opts.includes = [str(tmp_path)]
    out = f32(40) if fun is ext_user else f32(40, 17)
    code = parpy.print_compiled(fun, [f32(40, 17), out, 40, 17], opts)
    assert code.count('#include "my.h"') == 1 and "my_row_max((v_x + (v_i * 17)), 17)" in code
    nvcc_compile(code, tmp_path, [tmp_path])


def test_parallel_external_adds_a_layer():
    # The call is a layer of 64 threads under N, which all call it; one of them stores
    # (tests/python/test_gpu_layers.py runs such externals).
    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = cl_ext_wide(x[i])

    code = parpy.print_compiled(f, [f32(10), 10], cuda(N=10))
    assert "__launch_bounds__(64)" in code and "<<<dim3(10), dim3(64)" in code
    # The threads read x[i] before it is overwritten.
    call = code.index("parpy_ext0 = wide_fn(v_x[v_i]);")
    assert call < code.index("parpy_syncthreads();", call) < code.index("if ((parpy_tid == 0)) {", call)


# ----- element types ------------------------------------------------------------------------------


@parpy.jit
def arith_int(x, y, out, lt, N):
    parpy.label("N")
    for i in range(N):
        out[i] = (x[i] + y[i]) * x[i] - y[i] // (y[i] | 1) + x[i] % (y[i] | 1) + op.max(x[i], y[i])
        out[i] += ((x[i] & y[i]) ^ (x[i] << 1)) + (y[i] >> 1) + ~x[i] + op.abs(x[i]) + x[i] ** 3
        lt[i] = x[i] < y[i] or x[i] == y[i]


@parpy.jit
def arith_float(x, y, out, lt, N):
    parpy.label("N")
    for i in range(N):
        out[i] = (x[i] + y[i]) * x[i] - y[i] / x[i] + x[i] // y[i] + x[i] % y[i] - op.min(x[i], y[i])
        out[i] += op.exp(x[i]) + op.log(op.abs(y[i])) + op.sin(x[i]) * op.cos(y[i]) + op.sqrt(op.abs(x[i]))
        out[i] += op.tanh(x[i]) + op.atan2(x[i], y[i]) - x[i] * 2 + 0.5
        lt[i] = (x[i] <= y[i] and x[i] != y[i]) or x[i] >= y[i]


@parpy.jit
def powers(x32, x64, k8, k64, N):
    # ** takes F32, F64 and integers (docs/language.md, Types).
    parpy.label("N")
    for i in range(N):
        x32[i] = x32[i] ** 2.5 + x32[i] ** x32[i]
        x64[i] = x64[i] ** 2.5 + k8[i] ** -2
        k8[i] = k8[i] ** 3
        k64[i] = k64[i] ** op.abs(k64[i])


@parpy.jit
def bool_ops(a, b, out, N):
    parpy.label("N")
    for i in range(N):
        out[i] = (a[i] and not b[i]) or (a[i] == b[i]) or (a[i] if b[i] else not a[i])


@parpy.jit
def conversions(x, b, i8, i16, i32, i64, u8, u16, u32, u64, h, f, d, N):
    parpy.label("N")
    for i in range(N):
        b[i] = x[i] > 0.5
        i8[i] = op.int8(x[i])
        i16[i] = op.int16(x[i])
        i32[i] = op.int32(x[i])
        i64[i] = op.int64(x[i])
        u8[i] = op.uint8(x[i])
        u16[i] = op.uint16(i16[i])
        u32[i] = op.uint32(x[i])
        u64[i] = op.uint64(u8[i])
        h[i] = op.float16(x[i])
        f[i] = op.float32(h[i])
        d[i] = op.float64(i8[i]) + op.float64(h[i]) + op.float64(u64[i]) + op.float64(b[i])


@parpy.jit
def small_reductions(x8, xu16, xh, o8, ou16, oh, N):
    parpy.label("N")
    o8[0] = op.max(x8[:])
    parpy.label("N")
    o8[1] = op.min(x8[:])
    parpy.label("N")
    ou16[0] = op.min(xu16[:])
    parpy.label("N")
    ou16[1] = op.sum(xu16[:])
    parpy.label("N")
    oh[0] = op.sum(xh[:])
    parpy.label("N")
    oh[1] = op.max(xh[:])


@parpy.jit
def control_flow(x, out, N):
    parpy.label("N")
    for i in range(N):
        v = x[i]
        steps = 0
        while v > 1:
            v = v // 2
            steps += 1
        if steps == 0:
            out[i] = -1
        elif steps < 4:
            out[i] = steps if x[i] % 2 == 0 else -steps
        else:
            out[i] = 100


@parpy.jit
def forced_sizes(k, x, out):
    with parpy.gpu:
        v = k + 1
        w = x * 2.0
        out[0] = op.float64(v) + op.float64(w)


def type_programs():
    def z(dt, n=N):
        return np.zeros(n, dt)

    progs = {}
    for dt in INTS:
        progs[f"arith_{np.dtype(dt).name}"] = (arith_int, [z(dt), z(dt), z(dt), z(np.bool_), N], cuda(N=N))
    for dt in FLOATS:
        progs[f"arith_{np.dtype(dt).name}"] = (arith_float, [z(dt), z(dt), z(dt), z(np.bool_), N], cuda(N=N))
    progs["powers"] = (powers, [z(np.float32), z(np.float64), z(np.int8), z(np.int64), N], cuda(N=N))
    progs["bool_ops"] = (bool_ops, [z(np.bool_), z(np.bool_), z(np.bool_), N], cuda(N=N))
    progs["conversions"] = (conversions, [z(np.float64)] + [z(dt) for dt in ALL] + [N], cuda(N=N))
    small = [z(np.int8, 4096), z(np.uint16, 4096), z(np.float16, 4096), z(np.int8, 2), z(np.uint16, 2),
             z(np.float16, 2), 4096]
    progs["small_reductions_block"] = (small_reductions, small, cuda(N=256))
    progs["small_reductions_multiblock"] = (small_reductions, small, cuda({"N": parpy.threads(4096).tpb(512)}))
    progs["control_flow"] = (control_flow, [z(np.int64), z(np.int64), N], cuda(N=N))
    forced = cuda()
    forced.force_int_size = parpy.types.I32
    forced.force_float_size = parpy.types.F32
    progs["forced_sizes"] = (forced_sizes, [3, 0.25, z(np.float64, 1)], forced)
    return progs


@needs_nvcc
@pytest.mark.parametrize("name", list(type_programs()))
def test_type_program_compiles(name, tmp_path):
    fun, args, opts = type_programs()[name]
    nvcc_compile(parpy.print_compiled(fun, args, opts), tmp_path)


def test_element_type_spellings():
    code = parpy.print_compiled(*type_programs()["conversions"])
    for t in ["bool*", "int8_t*", "int16_t*", "int32_t*", "int64_t*", "uint8_t*", "uint16_t*", "uint32_t*",
              "uint64_t*", "__half*", "float*", "double*"]:
        assert t in code
    assert "#include <cuda_fp16.h>" in code
    code = parpy.print_compiled(*type_programs()["forced_sizes"])
    assert "int32_t v_v;" in code and "float v_w;" in code
