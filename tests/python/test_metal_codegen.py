"""The Metal backend's code generation, checked without a Mac (README, "Backends"; docs/gpu.md, Metal).

`print_compiled` with CompileBackend.Metal works on every platform. Nothing here runs Metal: the
generated Metal Shading Language (the `parpy_msl` string of each program) is compiled as C++
(-std=c++14, the language MSL is based on) against tests/metal_shim, which declares the Metal
types, address spaces, attributes and builtins; the host part is compiled (-std=c++17) against
the same folder's declaration-only stand-ins for the metal-cpp headers. Programs are batched into
few compiler runs. Checked: the suite's kinds of programs, every element type Metal has, the Metal
errors (double precision, clusters, graphs, 64-bit atomics, external headers), and >= 200 fuzzed
programs (tools/fuzz.py's generator), each either compiling or raising a documented Metal error.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy import CompileBackend, Target
from parpy import operators as op
from parpy.types import F32
from metal_programs import (
    add_scaled,
    elementwise,
    logic,
    row_reductions,
    full_sum,
    softmax,
    layer_norm,
    normalize,
    stencil,
    with_helpers,
    with_external,
    with_dict,
    host_arrays,
    host_loop,
    histogram,
    conversions,
    math_fns,
)

ROOT = Path(__file__).resolve().parents[2]
SHIM = ROOT / "tests" / "metal_shim"
INCLUDE = ROOT / "python" / "parpy" / "include"
LOCATIONS = SourceLocations(__file__)
RNG = np.random.default_rng(5)
CXX = shutil.which("clang++") or shutil.which("g++") or shutil.which("c++")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler")

MSL_RE = re.compile(r'R"PARPY_MSL\((.*?)\)PARPY_MSL"', re.S)


def metal(par=None, **labels):
    o = parpy.par(dict(par or {}, **{k: parpy.threads(v) for k, v in labels.items()}))
    o.backend = CompileBackend.Metal
    return o


def msl_of(code):
    m = MSL_RE.search(code)
    assert m, "no embedded MSL"
    return m.group(1)


def compile_cxx(sources, std, tmp_path, name):
    """Compiles the sources as one translation unit, each in its own namespace; returns the
    compiler's output on failure."""
    parts = []
    for i, src in enumerate(sources):
        # Only the first include of a header counts (#pragma once): include them at file scope.
        head = "#include <metal_stdlib>\n" if std == "c++14" else '#include "parpy_metal.h"\n'
        if i == 0:
            parts.append(head)
        src = src.replace('extern "C" ', "")
        parts.append(f"namespace parpy_program_{i} {{\n{src}\n}}\n")
    path = tmp_path / f"{name}.cpp"
    path.write_text("".join(parts))
    cmd = [CXX, f"-std={std}", "-fsyntax-only", "-Wno-attributes", f"-I{SHIM}", f"-I{INCLUDE}", str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return None if r.returncode == 0 else (r.stdout + r.stderr)[-6000:]


def assert_compiles(codes, tmp_path):
    """The MSL and the host code of every program compile against the shim."""
    if CXX is None:
        pytest.skip("no C++ compiler")
    err = compile_cxx([msl_of(c) for c in codes], "c++14", tmp_path, "kernels")
    assert err is None, err
    err = compile_cxx(codes, "c++17", tmp_path, "host")
    assert err is None, err


# ===== The suite's kinds of programs ===========================================================


@parpy.jit
def long_sum(x, out):
    with parpy.gpu:
        parpy.label("R")
        out[0] = op.sum(x[:])


@parpy.jit
def float_updates(b, x, add, mx, N):
    parpy.label("N")
    for i in range(N):
        add[b[i]] += x[i]
        mx[b[i]] = op.max(mx[b[i]], x[i])


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


N, M = 10, 70

PROGRAMS = {
    "add_scaled": (add_scaled, lambda: [f32(N), f32(N), 0.5, N], metal(N=N)),
    "row_reductions": (row_reductions, lambda: [f32(N, M), f32(N), f32(N), f32(N), f32(N), N],
                       metal(N=N, M=64)),
    "row_reductions_int": (row_reductions, lambda: [RNG.integers(-3, 4, (N, M)).astype(np.int32)]
                           + [np.zeros(N, np.int32) for _ in range(4)] + [N], metal(N=N, M=64)),
    "full_sum": (full_sum, lambda: [f32(N, M), f32(1)], metal(R=256)),
    "multiblock_sum": (long_sum, lambda: [f32(5000), f32(1)],
                       metal(par={"R": parpy.threads(4096).tpb(256)})),
    "softmax": (softmax, lambda: [f32(N, M), f32(N, M), N], metal(N=N, M=128)),
    "layer_norm": (layer_norm, lambda: [f32(N, M), f32(N, M), N, M], metal(N=N, M=128)),
    "normalize": (normalize, lambda: [f32(N, M), f32(N, M), N], metal(N=N, M=32)),
    "stencil": (stencil, lambda: [f32(N, M), f32(N, M), N, M], metal(N=N, M=64)),
    "helpers": (with_helpers, lambda: [f32(N, M), f32(N, M), f32(N), N, M], metal(N=N)),
    "external": (with_external, lambda: [f32(N), f32(N), N], metal(N=N)),
    "dict": (with_dict, lambda: [f32(N), f32(N), {"scale": 2.0, "shift": np.float32(0.5)}, N], metal(N=N)),
    "host_arrays": (host_arrays, lambda: [f32(N), f32(N), N], metal(N=N)),
    "host_loop": (host_loop, lambda: [f32(N), f32(N), 3, N], metal(N=N)),
    "histogram": (histogram, lambda: [RNG.integers(0, 8, 100).astype(np.int32), np.zeros(8, np.int32), 100],
                  metal(N=100)),
    "float_updates": (float_updates, lambda: [RNG.integers(0, 8, 100).astype(np.int32), f32(100), f32(8), f32(8),
                                              100], metal(N=100)),
    "conversions": (conversions, lambda: [f32(N), RNG.integers(-9, 9, N).astype(np.int64), f32(N), N],
                    metal(N=N)),
    "math": (math_fns, lambda: [f32(N), f32(N), N], metal(N=N)),
}  # fmt: skip

# Every element type Metal has (no float64).
DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float16, np.float32]


def typed_programs():
    out = {}
    for dt in DTYPES:
        name = np.dtype(dt).name
        x = np.ones(N, dt)
        out[f"elementwise_{name}"] = (elementwise, lambda x=x: [x, x.copy(), N], metal(N=N))
        xs = np.ones((N, M), dt)
        out[f"reductions_{name}"] = (row_reductions, lambda xs=xs, dt=dt: [xs] + [np.zeros(N, dt) for _ in range(4)]
                                     + [N], metal(N=N, M=64))  # fmt: skip
        if dt not in (np.int64, np.uint64):  # Metal has no 64-bit atomics
            out[f"updates_{name}"] = (float_updates, lambda dt=dt: [RNG.integers(0, 8, 100).astype(np.int32),
                                      np.ones(100, dt), np.zeros(8, dt), np.zeros(8, dt), 100], metal(N=100))
    b = np.ones(N, np.bool_)
    out["logic_bool"] = (logic, lambda: [b, b.copy(), b.copy(), N], metal(N=N))
    return out


ALL = dict(PROGRAMS, **typed_programs())


@pytest.fixture(scope="module")
def codes():
    return {name: parpy.print_compiled(f, args(), opts) for name, (f, args, opts) in ALL.items()}


@pytest.mark.parametrize("name", list(ALL))
def test_structure(name, codes):
    f = ALL[name][0]
    code = codes[name]
    msl = msl_of(code)
    assert code.startswith("// Generated by parpy (Metal backend)")
    assert '#include "parpy_metal.h"' in code
    # Kernels named after the function, each a Metal kernel with its thread positions; one
    # launch per kernel, in order.
    kernels = re.findall(r"kernel void (parpy_kernel_(\w+)_k(\d+))\(", msl)
    assert kernels and all(k[1] == f.__name__ for k in kernels)
    assert [int(k[2]) for k in kernels] == list(range(len(kernels)))
    for k in kernels:
        assert f'{{"{k[0]}", ' in code
    assert "[[max_total_threads_per_threadgroup(" in msl
    assert "uint3 thread_idx [[thread_position_in_threadgroup]]" in msl
    assert "uint3 block_idx [[threadgroup_position_in_grid]]" in msl
    launches = [int(i) for i in re.findall(r"parpy_call\.launch\((\d+),", code)]
    assert sorted(set(launches)) == list(range(len(kernels)))
    assert "double" not in msl
    assert "__syncthreads" not in msl and "__shfl" not in msl and "__global__" not in msl
    assert "return parpy_call.finish();" in code


def test_defaults_are_int32_and_float32(codes):
    code = codes["add_scaled"]
    # The Python int N and float a are int32 and float on Metal (README, "Backends").
    assert "static int32_t v_add_scaled(float* v_x, float* v_y, float v_a, int32_t v_N)" in code
    assert "*(int32_t*)args[3]" in code and "*(float*)args[2]" in code


def test_reductions_use_simd_groups_and_threadgroup_memory(codes):
    msl = msl_of(codes["softmax"])
    assert "threadgroup uint64_t parpy_tg[33];" in msl
    assert re.search(r"parpy_block_reduce_max\(parpy_acc\d+, parpy_tg, uint\(parpy_tid\), 128u\)", msl)
    assert "inline float parpy_simd_reduce_add(float v) { return simd_sum(v); }" in msl
    assert "threadgroup_barrier(mem_flags::mem_threadgroup)" in msl
    # A sum over more threads than one threadgroup: partials in device memory, last group adds.
    code = codes["multiblock_sum"]
    assert "parpy_multiblock_reduce_add(" in msl_of(code)
    assert "parpy_call.scratch(" in code
    assert "parpy_call.launch(0, 16, 256," in code


def test_host_code_reads_arrays_in_place(codes):
    code = codes["host_arrays"]
    host = code.split("static int32_t v_host_arrays", 1)[1]
    # Host statements that touch arrays wait for the kernels before them.
    assert "PARPY_METAL_CHECK(parpy_call.wait());\n  v_y[0] = (v_x[0] + 1.0f);" in host
    assert "while (true) {\n    PARPY_METAL_CHECK(parpy_call.wait());\n    if (!((v_y[0] < 3.0f))) break;" in host
    # y is written by host code and kernels: copied back; x only read.
    assert 'parpy_call.array((void**)&v_x, 10 * sizeof(float), false)' in host
    assert 'parpy_call.array((void**)&v_y, 10 * sizeof(float), true)' in host


# With run-time index checks every index is wrapped in its check: the patterns below expect plain
# indices.
no_env_bounds = pytest.mark.skipif(os.environ.get("PARPY_BOUNDS_CHECK") == "1",
                                   reason="the expected code has unchecked indices")


@no_env_bounds
def test_atomics(codes):
    assert re.search(r"parpy_atomic_add\(v_counts, v_b\[v_i\], \(int32_t\)1\);", msl_of(codes["histogram"]))
    assert "parpy_atomic_max(v_mx," in msl_of(codes["float_updates"])


def test_helpers_and_externals(codes):
    msl = msl_of(codes["helpers"])
    assert re.search(r"inline float \w*row_dot\w*\(device float\* v_p, device float\* v_q, int32_t v_n\)", msl)
    assert "metal::fma(" in msl_of(codes["external"])


def test_kernels_and_host_code_compile(codes, tmp_path):
    assert_compiles(list(codes.values()), tmp_path)


@needs_cxx
@pytest.mark.parametrize("metal_version", [None, 320])
def test_support_code_compiles_for_every_type(metal_version, tmp_path):
    # Every function of the MSL support code, instantiated for every type it serves.
    code = parpy.print_compiled(add_scaled, [f32(N), f32(N), 0.5, N], metal(N=N))
    prelude = msl_of(code).split("// ---- Generated by parpy", 1)[0]
    uses = ["inline void parpy_use_all(device uint64_t* tg_dev, device uint32_t* counters, device atomic_uint* rec) {",
            "  threadgroup uint64_t* tg = (threadgroup uint64_t*)tg_dev;"]
    ints = ["int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t"]
    for t in ints + ["float", "half"]:
        uses.append(f"  {{ {t} a = {t}(3), b = {t}(2); device {t}* p = ({'device ' + t}*)tg_dev;")
        if t in ints:
            uses.append(f"    a = parpy_div<{t}>(a, b); a = parpy_pow<{t}>(a, b);")
        uses.append(f"    a = parpy_floordiv<{t}>(a, b); a = parpy_mod<{t}>(a, b);")
        uses.append(f"    a = parpy_max<{t}>(a, b); a = parpy_min<{t}>(a, b); a = parpy_abs(a);")
        if t not in ("int64_t", "uint64_t"):
            for o in ["add", "sub", "max", "min"]:
                uses.append(f"    parpy_atomic_{o}(p, 1, a);")
        uses.append(f"    a = parpy_bounds_check(rec, a, 4, 1); (void)p; }}")
    for t in ["float", "half"]:
        uses.append(f"  {{ {t} a = {t}(1); a = parpy_exp(a) + parpy_log(a) + parpy_cos(a) + parpy_sin(a) + "
                    f"parpy_sqrt(a) + parpy_tanh(a) + parpy_atan2(a, a) + parpy_pow(a, a); (void)a; }}")
    for t in ["int32_t", "uint32_t", "int64_t", "uint64_t", "float"]:
        for o in ["add", "mul", "max", "min"]:
            uses.append(f"  {{ {t} v = {t}(1); v = parpy_block_reduce_{o}(v, tg, 0u, 256u); "
                        f"bool last = parpy_multiblock_reduce_{o}(v, 0, (device {t}*)tg_dev, counters, 0, 0, 4, "
                        f"tg, 0u, 256u); (void)last; }}")
    uses.append("  (void)parpy_trips(0, 10, 3); (void)parpy_iter(0, 2, 3);")
    uses.append("}")
    src = tmp_path / "prelude.cpp"
    define = [] if metal_version is None else [f"-D__METAL_VERSION__={metal_version}"]
    src.write_text(prelude + "\n".join(uses) + "\n")
    cmd = [CXX, "-std=c++14", "-fsyntax-only", "-Wno-attributes", f"-I{SHIM}", *define, str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]


# ===== Errors ===================================================================================


@parpy.jit
def double_array(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] + 1.0  # @double_use


@parpy.jit
def double_literal(y, N):
    parpy.label("N")
    for i in range(N):
        t = 2.5  # @double_literal
        y[i] = y[i] + op.float32(t * y[i])


def test_double_array_is_a_type_error():
    x = np.ones(N)
    with pytest.raises(TypeError) as e:
        parpy.print_compiled(double_array, [x, x.copy(), N], metal(N=N))
    msg = str(e.value)
    assert msg.startswith("Metal does not support double-precision floating-point numbers.")
    assert "Use float32" in msg
    assert f"On line {LOCATIONS.line('double_use')} of file" in msg
    assert "^" in msg


def test_forced_double_floats_are_a_type_error():
    o = metal(N=N)
    o.force_float_size = parpy.types.F64
    with pytest.raises(TypeError, match="^Metal does not support double-precision floating-point numbers") as e:
        parpy.print_compiled(double_literal, [f32(N), N], o)
    assert f"On line {LOCATIONS.line('double_literal')} of file" in str(e.value)


def test_float64_on_the_host_is_fine():
    # Doubles in host code run on the CPU.
    code = parpy.print_compiled(host_loop, [f32(N), f32(N), 3, N], metal(N=N))
    assert "double" not in msl_of(code)


def test_clusters_and_graphs_are_cuda_only():
    o = metal(N=N)
    o.use_cuda_thread_block_clusters = True
    with pytest.raises(RuntimeError, match="^Thread block clusters are a CUDA feature, which the Metal backend"):
        parpy.print_compiled(add_scaled, [f32(N), f32(N), 0.5, N], o)
    o = metal(N=N)
    o.use_cuda_graphs = True
    with pytest.raises(RuntimeError, match="^CUDA graphs are a CUDA feature, which the Metal backend"):
        parpy.print_compiled(add_scaled, [f32(N), f32(N), 0.5, N], o)


@parpy.jit
def wide_updates(b, counts, N):
    parpy.label("N")
    for i in range(N):
        counts[b[i]] += 1  # @wide_update


def test_64_bit_atomics_are_a_type_error():
    b = RNG.integers(0, 8, 100).astype(np.int32)
    with pytest.raises(TypeError, match="^Metal has no 64-bit atomic operations") as e:
        parpy.print_compiled(wide_updates, [b, np.zeros(8, np.int64), 100], metal(N=100))
    assert f"On line {LOCATIONS.line('wide_update')} of file" in str(e.value)


@parpy.external("my_metal_fn", CompileBackend.Metal, Target.Device, header="my_metal.h")
def ext_with_header(a: F32) -> F32:
    return a


@parpy.jit
def uses_header_external(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = ext_with_header(x[i])


def test_device_external_headers_are_rejected():
    with pytest.raises(RuntimeError, match="only the Metal standard library is found"):
        parpy.print_compiled(uses_header_external, [f32(N), f32(N), N], metal(N=N))


def test_metal_is_not_enabled_here_with_its_reason():
    if sys.platform == "darwin":
        pytest.skip("macOS")
    assert not parpy.backend.is_enabled(CompileBackend.Metal)
    assert parpy.backend.reasons()[CompileBackend.Metal] == (False, "Metal is only available on macOS")
    with pytest.raises(RuntimeError, match="Specified backend CompileBackend.Metal is not available"):
        add_scaled(f32(N), f32(N), 0.5, N, opts=metal(N=N))


# ===== Fuzzed programs ==========================================================================


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("parpy_fuzz_metal", ROOT / "tools" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# The Metal errors a valid fuzzed program may meet (README, "Backends").
METAL_ERRORS = ("Metal does not support double-precision", "Metal has no 64-bit atomic operations")


def metal_inputs(inputs):
    """The fuzzer's inputs in the types Metal has: float32 and int32 arrays."""
    out = []
    for v in inputs:
        if isinstance(v, np.ndarray):
            v = v.astype(np.float32 if v.dtype == np.float64 else np.int32)
        out.append(v)
    return out


def fuzz_opts(fuzz, spec):
    o = fuzz.make_opts(dict(spec, clusters=False, graphs=False), fuzz.CUDA)
    o.backend = CompileBackend.Metal
    return o


def metal_program(fuzz, p):
    """Program p of the fuzzer for Metal: float64 conversions become float32 ones (Metal has no
    doubles), and no clusters or graphs."""
    p.src = p.src.replace("float64(", "float32(")
    f = fuzz._load(p.module(), p.name, p.filename)
    return f, metal_inputs(fuzz.copy_inputs(p.inputs)), fuzz_opts(fuzz, p.spec)


def cuda_error(f, args, opts):
    """The error of the Cuda backend for the same program and options, or None."""
    opts.backend = CompileBackend.Cuda
    try:
        parpy.print_compiled(f, args, opts)
    except (RuntimeError, TypeError, NameError, IndexError) as e:
        return str(e)
    return None


@needs_cxx
def test_fuzzed_programs(tmp_path):
    fuzz = _load_fuzz()
    codes, metal_errors, failures = [], 0, []
    # Valid programs that the Cuda backend accepts (bodies in `with parpy.gpu:`): on Metal each
    # compiles or raises one of the Metal errors.
    for index in range(200):
        p = fuzz.generate(9100, index, fuzz.CUDA)
        f, args, opts = metal_program(fuzz, p)
        try:
            codes.append(parpy.print_compiled(f, args, opts))
        except (RuntimeError, TypeError, NameError, IndexError) as e:
            if str(e).startswith(METAL_ERRORS):
                metal_errors += 1
            elif str(e) != cuda_error(f, args, opts):
                # Without clusters the GPU layer rejects some programs on Cuda too.
                failures.append(f"{p.filename}: {e}")
    # Programs with host code that reads and writes arrays (the Cpu fuzzer's), valid on Metal;
    # the GPU layer may reject some with user errors it also gives on Cuda, never an internal one.
    for index in range(60):
        p = fuzz.generate(9200, index, fuzz.CPU)
        p.spec = fuzz.opts_spec(__import__("random").Random(index), fuzz.CUDA)
        try:
            codes.append(parpy.print_compiled(*metal_program(fuzz, p)))
        except (RuntimeError, TypeError, NameError, IndexError) as e:
            if str(e).startswith("Internal error") or ("Metal" in str(e) and not str(e).startswith(METAL_ERRORS)):
                failures.append(f"{p.filename}: {e}")
    assert not failures, "\n".join(failures[:5])
    assert len(codes) >= 180, f"only {len(codes)} fuzzed programs compiled for Metal ({metal_errors} Metal errors)"
    # A handful of compiler runs (2 cores).
    for i in range(0, len(codes), 70):
        assert_compiles(codes[i : i + 70], tmp_path)
