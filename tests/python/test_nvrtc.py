"""NVRTC, the CUDA runtime compiler, compiles the device part of Cuda programs in process (no GPU
needed): the fuzzer's programs and programs with float16 data, clusters, index checks, helpers and
user headers compile to a cubin for sm_90 and sm_80; an architecture NVRTC does not know gets PTX;
a compile error raises with NVRTC's log; the disk cache serves a second process without NVRTC;
and the library search says where it found NVRTC, or why it found none. The tests that compile
skip where no NVRTC library is found (`pip install nvidia-cuda-nvrtc`)."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import parpy
import pytest
from parpy import CompileBackend, Target
from parpy.types import F32, I64, pointer
from common import child_timeout

ROOT = Path(__file__).resolve().parents[2]
INFO = parpy._nvrtc_info()
needs_nvrtc = pytest.mark.skipif(not INFO["found"], reason=f"no NVRTC here: {INFO['why_missing']}")
CUDA = CompileBackend.Cuda


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("parpy_fuzz_nvrtc", ROOT / "tools" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def device_code(fun, args, opts):
    code, device, host = parpy._print_compiled_parts(fun, args, opts)
    assert device and host and code
    return device


def compile_for(device, major, minor=0, includes=()):
    """The image of `device` for sm_<major><minor>; fails with NVRTC's log."""
    try:
        image, kind, arch, _ = parpy._nvrtc_compile(device, major, minor, includes=list(includes))
    except RuntimeError as e:
        pytest.fail(f"{e}\n--- device code ---\n{device}")
    assert kind == "cubin" and arch == f"sm_{major}{minor}"
    assert image[:4] == b"\x7fELF"  # a cubin is an ELF file
    return image


# ----- (a) the fuzzer's programs ----------------------------------------------------------------

CHUNKS, PER_CHUNK = 8, 30  # 240 programs, each for sm_90, and every other one for sm_80 too


@needs_nvrtc
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_fuzzed_device_parts_compile(chunk):
    import linecache

    fuzz = _load_fuzz()
    for index in range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK):
        p = fuzz.generate(4242, index, fuzz.CUDA)
        try:
            f = fuzz._load(p.module(), p.name, p.filename)
            device = device_code(f, fuzz.copy_inputs(p.inputs), fuzz.make_opts(p.spec, p.backend))
        finally:
            linecache.cache.pop(p.filename, None)
        compile_for(device, 9)
        # Thread-block clusters need sm_90.
        if index % 2 == 0 and "PARPY_USE_CLUSTERS" not in device:
            compile_for(device, 8)


# ----- (a) programs with the features the fuzzer does not make ----------------------------------


@parpy.external("my_scale", CUDA, Target.Device, header="my.h")
def nv_ext_scale(x: F32, s: F32) -> F32:
    return x * s + 1.0


@parpy.external("my_row_max", CUDA, Target.Device, header="my.h")
def nv_ext_row_max(p: pointer(F32), n: I64) -> F32:
    return max(p[:n])


MY_HEADER = """#pragma once
__device__ inline float my_scale(float x, float s) { return x * s + 1.0f; }
__device__ inline float my_row_max(const float* p, int64_t n) {
  float m = p[0];
  for (int64_t i = 1; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}
"""


@parpy.jit
def nv_ext_user(x, out, N, M):
    parpy.label("N")
    for i in range(N):
        out[i] = nv_ext_scale(nv_ext_row_max(x[i], M), 2.0)


@parpy.jit
def nv_helper(a: F32, b: F32):
    return parpy.operators.max(a, b) * 2.0 + parpy.operators.exp(a)


@parpy.jit
def nv_with_helper(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = nv_helper(x[i], y[i])


@parpy.jit
def nv_gather(x, k, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[k[i]] + 1.0


@parpy.jit
def nv_half_ops(x, y, out, N):
    parpy.label("N")
    for i in range(N):
        out[i] = x[i] * y[i] + parpy.operators.exp(x[i]) - parpy.operators.sqrt(y[i])
        out[i] = parpy.operators.max(out[i], x[i]) // y[i]


@parpy.jit
def nv_half_sum(x, out, N):
    parpy.label("N")
    out[0] = parpy.operators.sum(x[:])


def feature_programs():
    """name -> (device code, user include dirs) of programs with float16 data, clusters, index
    checks, jit helpers, user-header externals and the element types."""
    sys.path.insert(0, str(Path(__file__).parent))
    import test_cuda
    import test_cuda_clusters_graphs as cg
    import test_cuda_language as lang

    def cuda(par, **flags):
        o = parpy.par(par)
        o.backend = CUDA
        for k, v in flags.items():
            setattr(o, k, v)
        return o

    progs = {}
    for name, (fun, args, opts) in lang.type_programs().items():
        progs[f"types_{name}"] = (fun, args, opts)
    for i, (fun, args, par) in enumerate(test_cuda.programs()):
        progs[f"cuda_{i}_{fun.__name__}"] = (fun, args, test_cuda.opts_for(par))
    m32 = np.zeros((100, 3000), np.float32)
    x = np.zeros(1 << 14, np.float32)
    progs["softmax_clusters8"] = (test_cuda.softmax, [m32, m32, 100, 3000], cg.opts_for(cg.rows(4096), clusters=True))
    progs["rowsum_clusters16"] = (
        test_cuda.row_sum, [m32, m32[:, 0].copy(), 100, 3000],
        cg.opts_for({"outer": parpy.threads(100), "inner": parpy.threads(4096).reduce().tpb(256)}, True, 16))
    progs["sum_clusters_graphs"] = (test_cuda.sum_gpu, [x, x[:1], 1 << 14],
                                    cg.opts_for({"N": parpy.threads(4096).tpb(512)}, True, 8, True))
    h = np.zeros(1000, np.float16)
    progs["half_ops"] = (nv_half_ops, [h, h, h, 1000], cuda({"N": parpy.threads(1000)}))
    progs["half_sum_multiblock"] = (nv_half_sum, [h, h[:1], 1000], cuda({"N": parpy.threads(4096).tpb(512)}))
    progs["half_sum_clusters"] = (nv_half_sum, [h, h[:1], 1000],
                                  cuda({"N": parpy.threads(4096).tpb(512)}, use_cuda_thread_block_clusters=True))
    k = np.zeros(1000, np.int64)
    progs["bounds_check"] = (nv_gather, [x[:1000], k, x[:1000], 1000], cuda({"N": parpy.threads(256)}, bounds_check=True))
    progs["bounds_check_graphs"] = (nv_gather, [x[:1000], k, x[:1000], 1000],
                                    cuda({"N": parpy.threads(256)}, bounds_check=True, use_cuda_graphs=True))
    progs["helper"] = (nv_with_helper, [x[:1000], x[:1000], 1000], cuda({"N": parpy.threads(1000)}))
    progs["external_user_header"] = (nv_ext_user, [np.zeros((40, 17), np.float32), np.zeros(40, np.float32), 40, 17],
                                     cuda({"N": parpy.threads(40), "M": parpy.threads(32)}))
    # Strips in 128-bit groups of columns, loaded through the read-only path (parpy_ldg_chunk) with
    # 4, 2 and 8 lanes.
    from test_barriers import stencil3d
    for dt in (np.float32, np.float64, np.float16):
        g = np.zeros((34, 34, 2048), dt)
        progs[f"strip_groups_{np.dtype(dt).name}"] = (stencil3d, [g, g.copy(), 34, 2048],
                                                      cuda({"planes": parpy.threads(34), "cols": parpy.threads(2048)}))
    return progs


FEATURES = list(feature_programs())


@needs_nvrtc
@pytest.mark.parametrize("name", FEATURES)
def test_feature_device_parts_compile(name, tmp_path):
    fun, args, opts = feature_programs()[name]
    includes = []
    if name == "external_user_header":
        (tmp_path / "my.h").write_text(MY_HEADER)
        opts.includes = [str(tmp_path)]
        includes = [str(tmp_path)]
    device = device_code(fun, args, opts)
    if "#include <cuda_fp16.h>" in device and not INFO["fp16_include_dir"]:
        # NVRTC has no built-in cuda_fp16.h: without one found here, the error says where to get it.
        with pytest.raises(RuntimeError, match="Programs with float16 data need cuda_fp16.h"):
            parpy._nvrtc_compile(device, 9, 0)
        return
    compile_for(device, 9, includes=includes)
    if "PARPY_USE_CLUSTERS" not in device:
        compile_for(device, 8, includes=includes)


def test_feature_programs_cover_the_features():
    programs = feature_programs()
    devices = {n: device_code(*programs[n]) for n in ["half_sum_clusters", "bounds_check", "helper"]}
    assert "#include <cuda_fp16.h>" in devices["half_sum_clusters"]
    assert "PARPY_USE_CLUSTERS" in devices["half_sum_clusters"]
    assert "parpy_cluster_reduce_add" in devices["half_sum_clusters"]
    assert "PARPY_BOUNDS_CHECK" in devices["bounds_check"] and "parpy_bounds_check(" in devices["bounds_check"]
    assert "static __device__ inline" in devices["helper"]
    assert len(programs) >= 40
    for dt in ("float32", "float64", "float16"):
        assert "parpy_ldg_chunk(&" in device_code(*programs[f"strip_groups_{dt}"])


@needs_nvrtc
def test_support_headers_under_nvrtc():
    # What parpy_rtc.h stands in for behaves as the standard headers do.
    checks = r"""
#include "parpy_cuda.h"
static_assert(sizeof(int8_t) == 1 && sizeof(int16_t) == 2 && sizeof(int32_t) == 4 && sizeof(int64_t) == 8);
static_assert(sizeof(uint8_t) == 1 && sizeof(uint16_t) == 2 && sizeof(uint32_t) == 4 && sizeof(uint64_t) == 8);
static_assert(INT64_MAX == 9223372036854775807LL && INT64_MIN == -INT64_MAX - 1 && UINT64_MAX == ~0ULL);
static_assert(INT32_MAX == 2147483647 && INT32_MIN == -INT32_MAX - 1 && UINT32_MAX == 4294967295U);
static_assert(INT8_MIN == -128 && INT16_MAX == 32767 && UINT8_MAX == 255 && UINT16_MAX == 65535);
static_assert(INT64_C(5) == 5 && UINT64_C(5) == 5u && sizeof(INT64_C(1)) == 8 && sizeof(UINT64_C(1)) == 8);
static_assert(std::is_integral_v<bool> && std::is_integral_v<const int64_t> && !std::is_integral_v<float>);
static_assert(std::is_signed_v<int8_t> && std::is_signed_v<double> && !std::is_signed_v<uint64_t> &&
              !std::is_signed_v<bool>);
static_assert(std::is_same_v<std::make_unsigned_t<int64_t>, uint64_t>);
static_assert(std::is_same_v<std::make_unsigned_t<int8_t>, uint8_t>);
static_assert(std::is_same_v<std::make_unsigned_t<int32_t>, uint32_t>);
static_assert(std::is_same<std::conditional<true, int, float>::type, int>::value);
static_assert(std::is_same_v<std::conditional_t<false, int, float>, float>);
extern "C" __global__ void k(float* f, double* d, int64_t* i) {
  f[0] = NAN; f[1] = HUGE_VALF; f[2] = -INFINITY; d[0] = HUGE_VAL;
  i[0] = parpy_floordiv<int64_t>(i[1], i[2]) + parpy_mod<int8_t>(i[3], 3);
  parpy_atomic_max(i, i[4]);
  parpy_atomic_add(f, 1.0f);
}
"""
    compile_for(checks, 9)


@needs_nvrtc
def test_host_header_under_nvrtc_says_to_include_the_device_header():
    with pytest.raises(RuntimeError, match="parpy_cuda_host.h is host code, which NVRTC does not compile"):
        parpy._nvrtc_compile('#include "parpy_cuda_host.h"\n', 9, 0)


# ----- (b) an architecture NVRTC does not know gets PTX -----------------------------------------


@needs_nvrtc
def test_unknown_architecture_gets_ptx_of_the_newest_below_it():
    newest = max(INFO["archs"])
    code = 'extern "C" __global__ void k(float* x) { x[threadIdx.x] *= 2.0f; }\n'
    image, kind, arch, _ = parpy._nvrtc_compile(code, 99, 0)
    assert (kind, arch) == ("ptx", f"compute_{newest}")
    text = image.rstrip(b"\0").decode()
    assert image.endswith(b"\0")  # as cuModuleLoadData takes PTX
    assert f".target sm_{newest}" in text and ".entry k(" in text
    # Between two supported architectures: the one below.
    if 90 in INFO["archs"] and 91 not in INFO["archs"]:
        assert parpy._nvrtc_compile(code, 9, 1)[1:3] == ("ptx", "compute_90")
    # Below every supported architecture: an error that says so.
    oldest = min(INFO["archs"])
    with pytest.raises(RuntimeError, match=r"supports no GPU architecture at or below the device's "
                                           rf"sm_{oldest - 5}"):
        parpy._nvrtc_compile(code, (oldest - 5) // 10, (oldest - 5) % 10)


# ----- (c) compile errors ----------------------------------------------------------------------


@needs_nvrtc
def test_compile_error_raises_with_nvrtcs_log():
    code = '#include "parpy_cuda.h"\nextern "C" __global__ void k(float* x) { x[0] = parpy_no_such_fn(1); }\n'
    with pytest.raises(RuntimeError) as e:
        parpy._nvrtc_compile(code, 9, 0)
    msg = str(e.value)
    assert msg.startswith("Compilation of generated CUDA code with NVRTC ")
    assert "for sm_90 failed (NVRTC_ERROR_COMPILATION):" in msg
    assert 'identifier "parpy_no_such_fn" is undefined' in msg and "x[0] = parpy_no_such_fn(1);" in msg


@needs_nvrtc
def test_a_header_that_needs_the_standard_library_says_what_to_do():
    # An external's header written for nvcc, compiled where only NVRTC is.
    code = '#include <cstdint>\n#include <vector>\nextern "C" __global__ void k(float* x) { x[0] = 1.0f; }\n'
    with pytest.raises(RuntimeError) as e:
        parpy._nvrtc_compile(code, 9, 0)
    msg = str(e.value)
    assert 'cannot open source file "vector"' in msg and '"cstdint"' not in msg
    assert "NVRTC has no C++ standard library" in msg and "install nvcc" in msg
    assert "parpy gives it <cstdint>, <cstddef>, <climits>, <cfloat> and <cmath>" in msg


STAND_INS = ["cstdint", "stdint.h", "cstddef", "stddef.h", "climits", "limits.h", "cfloat", "float.h",
             "cmath", "math.h"]


@needs_nvrtc
def test_standard_header_stand_ins_under_nvrtc():
    # parpy's stand-ins for the standard headers an external's header may include: std:: names,
    # float and double overloads of the math functions, the types' sizes.
    code = "".join(f"#include <{h}>\n" for h in STAND_INS) + r"""
template <class T> struct Is;
template <> struct Is<float> { static constexpr int v = 4; };
template <> struct Is<double> { static constexpr int v = 8; };
static_assert(Is<decltype(std::sqrt(1.0f))>::v == 4 && Is<decltype(std::sqrt(1.0))>::v == 8);
static_assert(Is<decltype(std::hypot(1.0f, 2.0f))>::v == 4 && Is<decltype(std::pow(2.0, 3))>::v == 8);
static_assert(sizeof(std::int64_t) == 8 && sizeof(std::uint8_t) == 1 && sizeof(std::size_t) == 8 &&
              sizeof(std::ptrdiff_t) == 8 && sizeof(std::nullptr_t) == sizeof(void*));
// Other arithmetic arguments, as the standard's overloads: integers compute in double, so do
// float and double mixed.
static_assert(Is<decltype(std::sqrt(3))>::v == 8 && Is<decltype(std::fmax(1.0, 1.0f))>::v == 8 &&
              Is<decltype(std::hypot(1.0f, 2))>::v == 8 && Is<decltype(std::pow(2.0f, 1.0f))>::v == 4 &&
              Is<decltype(std::atan2(1, 2L))>::v == 8 && Is<decltype(std::fabs(1.0f))>::v == 4);
static_assert(CHAR_BIT == 8 && INT_MAX == 2147483647 && LLONG_MIN < 0);
extern "C" __global__ void k(float* f, double* d, long long* i) {
  f[0] = std::exp(f[1]) + std::floor(f[2]) + std::fmax(f[3], FLT_MAX) + std::copysign(1.0f, f[4]);
  d[0] = std::hypot(d[1], d[2]) + std::lgamma(d[3]) + std::fma(d[1], d[2], DBL_EPSILON) + std::nan("");
  i[0] = std::isnan(d[4]) + std::isinf(f[5]) + std::signbit(d[5]) + std::llround(d[6]) + std::abs(i[1]);
}
"""
    compile_for(code, 9)


def test_limits_of_the_stand_ins_match_numpy(tmp_path):
    # <climits> and <cfloat> need no NVRTC: compiled alone (no standard library) by the host
    # compiler, they print the values numpy gives.
    cxx = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    rtc = Path(parpy.get_include()) / "rtc"
    names = {"FLT_EPSILON": np.finfo(np.float32).eps, "DBL_EPSILON": np.finfo(np.float64).eps,
             "FLT_MIN": np.finfo(np.float32).tiny, "DBL_MIN": np.finfo(np.float64).tiny,
             "FLT_MAX": np.finfo(np.float32).max, "DBL_MAX": np.finfo(np.float64).max,
             "FLT_TRUE_MIN": np.finfo(np.float32).smallest_subnormal,
             "DBL_TRUE_MIN": np.finfo(np.float64).smallest_subnormal,
             "FLT_MANT_DIG": 24, "DBL_MANT_DIG": 53, "FLT_DIG": np.finfo(np.float32).precision,
             "DBL_DIG": np.finfo(np.float64).precision, "DBL_MAX_EXP": np.finfo(np.float64).maxexp,
             "FLT_MAX_EXP": np.finfo(np.float32).maxexp, "DBL_MIN_EXP": np.finfo(np.float64).minexp + 1,
             "FLT_MIN_EXP": np.finfo(np.float32).minexp + 1,
             "SCHAR_MIN": np.iinfo(np.int8).min, "SCHAR_MAX": np.iinfo(np.int8).max,
             "UCHAR_MAX": np.iinfo(np.uint8).max, "SHRT_MIN": np.iinfo(np.int16).min,
             "SHRT_MAX": np.iinfo(np.int16).max, "USHRT_MAX": np.iinfo(np.uint16).max,
             "INT_MIN": np.iinfo(np.int32).min, "INT_MAX": np.iinfo(np.int32).max,
             "UINT_MAX": np.iinfo(np.uint32).max, "LONG_MIN": np.iinfo(np.int64).min,
             "LONG_MAX": np.iinfo(np.int64).max, "ULONG_MAX": np.iinfo(np.uint64).max,
             "LLONG_MIN": np.iinfo(np.int64).min, "LLONG_MAX": np.iinfo(np.int64).max,
             "ULLONG_MAX": np.iinfo(np.uint64).max}
    prints = "\n".join(
        f'  printf("%s %.17g\\n", "{n}", (double)({n}));' if n.startswith(("FLT_", "DBL_")) and not
        n.endswith(("_DIG", "_EXP")) else f'  printf("%s %lld %llu\\n", "{n}", (long long)({n}), '
        f'(unsigned long long)({n}));' for n in names)
    src = tmp_path / "limits.cpp"
    src.write_text(f'#include "{rtc}/climits"\n#include "{rtc}/cfloat"\n'
                   'extern "C" int printf(const char*, ...);\nint main() {\n' + prints + "\n}\n")
    exe = tmp_path / "limits"
    subprocess.run([cxx, "-std=c++17", "-o", str(exe), str(src)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    got = {}
    for line in out:
        name, *values = line.split()
        got[name] = float(values[0]) if len(values) == 1 else (
            int(values[1]) if name.startswith("U") else int(values[0]))
    for name, want in names.items():
        assert got[name] == want, (name, got[name], want)


# ----- (d) the disk cache ----------------------------------------------------------------------

_COMPILE = """
import json, sys, parpy
image, kind, arch, built = parpy._nvrtc_compile(sys.stdin.read(), 9, 0)
print(json.dumps([len(image), kind, arch, built, parpy._nvrtc_info()["compiles"]]))
"""


def run_python(script, env=None, stdin=""):
    r = subprocess.run([sys.executable, "-c", script], input=stdin, capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, timeout=child_timeout(300), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return last_line(r.stdout)


def last_line(out):
    # An editable install may report its rebuild on stdout first.
    return out.strip().splitlines()[-1]


@needs_nvrtc
def test_second_process_reads_the_disk_cache(tmp_path):
    env = {"PARPY_CACHE_DIR": str(tmp_path / "cache")}
    code = '#include "parpy_cuda.h"\nextern "C" __global__ void k(int64_t* x) { x[threadIdx.x] += 1; }\n'
    size, kind, arch, built, compiles = json.loads(run_python(_COMPILE, env, code))
    assert (kind, arch, built, compiles) == ("cubin", "sm_90", True, 1)
    # Another process: the entry, verified, without calling NVRTC.
    again = json.loads(run_python(_COMPILE, env, code))
    assert again == [size, "cubin", "sm_90", False, 0]
    # A damaged (or planted) entry is never used: it is compiled again and replaced.
    [entry] = (tmp_path / "cache").glob("*-nvrtc.cubin")
    data = bytearray(entry.read_bytes())
    data[100] ^= 0xFF
    entry.write_bytes(bytes(data))
    assert json.loads(run_python(_COMPILE, env, code)) == [size, "cubin", "sm_90", True, 1]
    assert json.loads(run_python(_COMPILE, env, code)) == [size, "cubin", "sm_90", False, 0]
    # Other code is another entry.
    other = json.loads(run_python(_COMPILE, env, code.replace("+= 1", "+= 2")))
    assert other[3:] == [True, 1]


# ----- (e) where NVRTC is found -----------------------------------------------------------------

_INFO = """
import json, sys, parpy
# With paths: the search over those Python paths alone, run now (importing parpy may have
# searched sys.path already, to tell whether Cuda is available).
if len(sys.argv) > 1:
    print(json.dumps(parpy._native._nvrtc_search(json.loads(sys.argv[1]))))
else:
    print(json.dumps(parpy._nvrtc_info()))
"""


def nvrtc_info_in_subprocess(env=None, paths=None):
    argv = [sys.executable, "-c", _INFO] + ([json.dumps(paths)] if paths is not None else [])
    r = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})},
                       timeout=child_timeout(300), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(last_line(r.stdout))


@pytest.mark.parametrize("bogus", ["missing", "not_a_library"])
def test_bogus_parpy_nvrtc_says_why_missing(bogus, tmp_path):
    path = tmp_path / "libnvrtc.so.13"
    if bogus == "not_a_library":
        path.write_text("not a shared library\n" * 64)
    info = nvrtc_info_in_subprocess({"PARPY_NVRTC": str(path)})
    assert not info["found"] and info["path"] == ""
    why = info["why_missing"]
    assert why.startswith(f"PARPY_NVRTC names '{path}', which is not a usable NVRTC library: ")
    assert ("No such file" if bogus == "missing" else "invalid ELF header") in why
    assert why.endswith("Point it at libnvrtc.so, or unset it to search the pip wheels, the CUDA toolkit "
                        "and the system library path")
    # Compiling says so too, and so do the diagnostics.
    script = "import parpy\ntry:\n    parpy._nvrtc_compile('', 9, 0)\nexcept RuntimeError as e:\n    print(e)\n"
    out = run_python(script, {"PARPY_NVRTC": str(path)})
    assert out.startswith(f"NVRTC is not available: PARPY_NVRTC names '{path}'")
    diag = subprocess.run([sys.executable, "-m", "parpy"], capture_output=True, text=True,
                          timeout=child_timeout(300),
                          env={**os.environ, "PARPY_NVRTC": str(path)}, check=False).stdout
    assert f"  NVRTC: not found: PARPY_NVRTC names '{path}'" in diag


def _real_library():
    """The NVRTC library found here, resolved, with its libnvrtc-builtins files."""
    lib = Path(os.path.realpath(INFO["path"]))
    return lib, sorted(lib.parent.glob("libnvrtc-builtins*"))


def fake_wheel(site, layout):
    """A site-packages directory `site` with the real library in a wheel's layout."""
    lib, builtins = _real_library()
    directory = site / ("nvidia/cu13/lib" if layout == "cu13" else "nvidia/cuda_nvrtc/lib")
    directory.mkdir(parents=True)
    (directory / ("libnvrtc.so.13" if layout == "cu13" else "libnvrtc.so.12")).symlink_to(lib)
    for b in builtins:
        (directory / b.name).symlink_to(b)
    return directory


@needs_nvrtc
def test_parpy_nvrtc_names_the_library():
    lib, _ = _real_library()
    info = nvrtc_info_in_subprocess({"PARPY_NVRTC": str(lib)})
    assert info["found"] and info["source"] == "$PARPY_NVRTC" and os.path.realpath(info["path"]) == str(lib)
    assert tuple(info["version"]) == tuple(INFO["version"]) and info["archs"] == INFO["archs"]


@needs_nvrtc
def test_pip_wheels_in_python_paths_are_searched_newest_layout_first(tmp_path):
    env = {"PARPY_NVRTC": ""}
    old, new = tmp_path / "site_a", tmp_path / "site_b"
    fake_wheel(old, "cu12")
    cu13 = fake_wheel(new, "cu13")
    info = nvrtc_info_in_subprocess(env, [str(old), str(new)])
    # The path is the file the library is loaded from: the real one where importing parpy loaded
    # it already (to tell whether Cuda is available, where nvcc is not); the source names the wheel.
    assert info["found"] and same_file(info["path"], cu13 / "libnvrtc.so.13")
    assert info["source"] == f"pip wheel nvidia-cuda-nvrtc in {new}"
    # Only the cu12 layout: that one.
    info = nvrtc_info_in_subprocess(env, [str(old)])
    assert info["source"] == f"pip wheel nvidia-cuda-nvrtc-cu12 in {old}"
    assert same_file(info["path"], old / "nvidia/cuda_nvrtc/lib/libnvrtc.so.12")


def same_file(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def test_unusable_wheel_is_skipped_and_reported(tmp_path):
    site = tmp_path / "site"
    (site / "nvidia/cu13/lib").mkdir(parents=True)
    bogus = site / "nvidia/cu13/lib/libnvrtc.so.13"
    bogus.write_text("not a shared library\n" * 64)
    info = nvrtc_info_in_subprocess({"PARPY_NVRTC": "", "CUDA_HOME": str(tmp_path / "none")}, [str(site)])
    if info["found"]:  # a toolkit or the system library path has one
        assert info["path"] != str(bogus) and not info["source"].startswith("pip wheel")
    else:
        why = info["why_missing"]
        assert why.startswith("no NVRTC library (libnvrtc.so) was found in the pip wheels")
        assert f"(found but unusable; {bogus}: " in why and "invalid ELF header" in why
        assert why.endswith("Install one with `pip install nvidia-cuda-nvrtc`, or set PARPY_NVRTC to the library")


def test_diagnostics_say_which_nvrtc():
    out = subprocess.run([sys.executable, "-m", "parpy"], capture_output=True, text=True,
                         timeout=child_timeout(300),
                         check=False).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("  NVRTC: "))
    if INFO["found"]:
        major, minor = INFO["version"]
        assert line.startswith(f"  NVRTC: NVRTC {major}.{minor} at {INFO['path']} ({INFO['source']}); cubins for sm_")
        assert "cuda_fp16.h: " in line
    else:
        assert line == f"  NVRTC: not found: {INFO['why_missing']}"
