"""Generated Metal programs RUN in the CPU emulator of tests/metal_emulator and compared element by
element with numpy or plain Python (README, "Backends"; docs/gpu.md, Metal).

The emulator (tests/python/metal_emu.py) builds the Metal code of `parpy.print_compiled` with g++:
the kernels against a working Metal Shading Language library (threadgroups of fibers with real
barriers, SIMD-group functions over 32 lanes, threadgroup memory per threadgroup, atomics, no
double) and the host code against parpy_metal.h and a working fake metal-cpp. Each program is
printed once with the shapes of its case (the code depends on shapes and int values only) and run
on fresh random data. What it cannot prove: that Apple's Metal compiler accepts the code, and how
an Apple GPU schedules threads and orders memory (docs/gpu.md, Metal).
"""

import importlib.util
import random
import re
import sys

import metal_emu
import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from parpy import operators as op
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

pytestmark = pytest.mark.skipif(not metal_emu.available, reason="no C++ compiler (g++) for the Metal emulator")

RNG = np.random.default_rng()


def metal(par=None, **labels):
    o = parpy.par(dict(par or {}, **{k: parpy.threads(v) for k, v in labels.items()}))
    o.backend = CompileBackend.Metal
    return o


# ===== Programs ===================================================================================


@parpy.jit
def long_reductions(x, out):
    with parpy.gpu:
        parpy.label("R")
        out[0] = op.sum(x[:])
        parpy.label("R")
        out[1] = op.max(x[:])
        parpy.label("R")
        out[2] = op.min(x[:])


@parpy.jit
def updates(b, x, add, mx, N):
    parpy.label("N")
    for i in range(N):
        add[b[i]] += x[i]
        mx[b[i]] = op.max(mx[b[i]], x[i])


@parpy.jit
def gather(x, k, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[k[i]]


# ===== Cases: (function, fresh arguments, options, expected outputs) ==============================

N, M = 10, 70
DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float16, np.float32]


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def small(dt, shape, lo=-2, hi=3):
    """Values that every type holds (non-negative for unsigned types)."""
    if np.issubdtype(dt, np.unsignedinteger):
        lo, hi = 0, hi
    return RNG.integers(lo, hi, shape).astype(dt)


def float_rows(dt):
    x = RNG.choice([-1.0, 1.0], (N, M))
    for i in range(N):
        x[i, RNG.integers(0, M, 4)] *= RNG.choice([2.0, 0.5], 4)
    return x.astype(dt)


def row_refs(x):
    dt = x.dtype
    return [x.sum(axis=1, dtype=dt), x.max(axis=1), x.min(axis=1), x.prod(axis=1, dtype=dt)]


def softmax_ref(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def layer_norm_ref(x):
    m = x.mean(axis=1, keepdims=True)
    return (x - m) / np.sqrt(((x - m) ** 2).mean(axis=1, keepdims=True) + 1e-5)


def host_arrays_ref(x, y):
    y = y.copy()
    y[0] = x[0] + 1.0
    while y[0] < 3.0:
        y += 1.0
    if x[1] > 0.0:
        y[1] = 5.0
    return y


def updates_ref(b, x, add, mx):
    add, mx = add.copy(), mx.copy()
    np.add.at(add, b, x)
    np.maximum.at(mx, b, x)
    return add, mx


def math_ref(x):
    x = x.astype(np.float64)
    y = np.exp(x) + np.log(np.abs(x) + 1.0) + np.sin(x) * np.cos(x) + np.tanh(x)
    return y + np.arctan2(x, 2.0) + x**2


def conversions_ref(x, k):
    return (k // 3).astype(np.float32) + np.mod(x, np.float32(2.0)) + x.astype(np.int16).astype(np.float32)


# Each case: fun, make() -> args, opts, expect(args) -> {argument index: expected array}.
CASES = {
    "add_scaled": (add_scaled, lambda: [f32(N), f32(N), 0.75, N], metal(N=N),
                   lambda a: {1: a[0] * np.float32(0.75) + 2.0}),
    "full_sum": (full_sum, lambda: [f32(N, M), np.zeros(1, np.float32)], metal(R=256),
                 lambda a: {1: [a[0].sum()]}),
    "long_reductions": (long_reductions, lambda: [f32(5000), np.zeros(3, np.float32)],
                        metal(par={"R": parpy.threads(4096).tpb(256)}),
                        lambda a: {1: [a[0].sum(), a[0].max(), a[0].min()]}),
    "long_reductions_int32": (long_reductions, lambda: [small(np.int32, 5000, -50, 50), np.zeros(3, np.int32)],
                              metal(par={"R": parpy.threads(2048).tpb(128)}),
                              lambda a: {1: [a[0].sum(), a[0].max(), a[0].min()]}),
    "softmax": (softmax, lambda: [f32(N, M), f32(N, M), N], metal(N=N, M=128), lambda a: {1: softmax_ref(a[0])}),
    "layer_norm": (layer_norm, lambda: [f32(N, M), f32(N, M), N, M], metal(N=N, M=128),
                   lambda a: {1: layer_norm_ref(a[0])}),
    "normalize": (normalize, lambda: [f32(N, M), f32(N, M), N], metal(N=N, M=32),
                  lambda a: {1: a[0] / np.sqrt((a[0] ** 2).sum(axis=1, keepdims=True))}),
    "stencil": (stencil, lambda: [f32(N, M), np.zeros((N, M), np.float32), N, M], metal(N=N, M=64),
                lambda a: {1: np.pad(a[0][:, :-2] + a[0][:, 2:] - 2 * a[0][:, 1:-1], ((0, 0), (1, 1)))}),
    "helpers": (with_helpers, lambda: [f32(N, M), f32(N, M), f32(N), N, M], metal(N=N),
                lambda a: {2: (a[0] * a[1]).sum(axis=1) ** 2 + 1.0}),
    "external": (with_external, lambda: [f32(N), f32(N), N], metal(N=N), lambda a: {1: a[0] * a[0] + 1.0}),
    "dict": (with_dict, lambda: [f32(N), f32(N), {"scale": 2.5, "shift": np.float32(0.5)}, N], metal(N=N),
             lambda a: {1: a[0] * 2.5 + 0.5}),
    "host_arrays": (host_arrays, lambda: [f32(N), f32(N), N], metal(N=N), lambda a: {1: host_arrays_ref(a[0], a[1])}),
    "host_loop": (host_loop, lambda: [f32(N), f32(N), 4, N], metal(N=N), lambda a: {1: a[1] + a[0] * 6.0}),
    "histogram": (histogram, lambda: [RNG.integers(0, 8, 1000).astype(np.int32), np.zeros(8, np.int32), 1000],
                  metal(N=1000), lambda a: {1: np.bincount(a[0], minlength=8)}),
    "histogram_uint32": (histogram, lambda: [RNG.integers(0, 8, 3000).astype(np.int32), np.zeros(8, np.uint32), 3000],
                         metal(par={"N": parpy.threads(3000).tpb(256)}), lambda a: {1: np.bincount(a[0], minlength=8)}),
    "conversions": (conversions, lambda: [f32(N) * 4, RNG.integers(-9, 9, N).astype(np.int64), f32(N), N],
                    metal(N=N), lambda a: {2: conversions_ref(a[0], a[1])}),
    "math": (math_fns, lambda: [f32(N), f32(N), N], metal(N=N), lambda a: {1: math_ref(a[0])}),
    "gather": (gather, lambda: [f32(N), RNG.integers(0, N, N).astype(np.int32), f32(N), N], metal(N=N),
               lambda a: {2: a[0][a[1]]}),
}  # fmt: skip


def typed_cases():
    out = {}
    for dt in DTYPES:
        name = np.dtype(dt).name
        out[f"elementwise_{name}"] = (elementwise, lambda dt=dt: [small(dt, N), small(dt, N), N], metal(N=N),
                                      lambda a: {1: a[0] * a[0] + a[0] - a[1]})
        if np.issubdtype(dt, np.floating):
            # +-1 with a few +-2 and +-0.5: sums and products exact in any order, even in float16.
            out[f"reductions_{name}"] = (row_reductions, lambda dt=dt: [float_rows(dt)] + [np.zeros(N, dt) for _ in range(4)]
                                         + [N], metal(N=N, M=64), lambda a: dict(zip([1, 2, 3, 4], row_refs(a[0]))))
        else:
            out[f"reductions_{name}"] = (row_reductions, lambda dt=dt: [small(dt, (N, M))] + [np.zeros(N, dt) for _ in range(4)]
                                         + [N], metal(N=N, M=64), lambda a: dict(zip([1, 2, 3, 4], row_refs(a[0]))))
        if dt not in (np.int64, np.uint64):  # Metal has no 64-bit atomics
            out[f"updates_{name}"] = (updates, lambda dt=dt: [RNG.integers(0, 8, 300).astype(np.int32), small(dt, 300, -3, 4),
                                      np.zeros(8, dt), np.zeros(8, dt), 300], metal(N=300),
                                      lambda a: dict(zip([2, 3], updates_ref(*a[:4]))))
    out["logic_bool"] = (logic, lambda: [RNG.random(N) < 0.5, RNG.random(N) < 0.5, RNG.random(N) < 0.5, N], metal(N=N),
                         lambda a: {2: (a[0] & ~a[1]) | a[2]})
    return out


ALL = dict(CASES, **typed_cases())


def check(name, got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, name
    if got.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=name)
    else:
        tol = 1e-2 if got.dtype == np.float16 else 2e-5
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)


@pytest.fixture(scope="module")
def built():
    """Every case, printed once and built in one batch."""
    codes = [parpy.print_compiled(f, make(), opts) for f, make, opts, _ in ALL.values()]
    return dict(zip(ALL, metal_emu.build(codes)))


@pytest.mark.parametrize("name", list(ALL))
def test_program(name, built):
    f, make, _, expect = ALL[name]
    args = make()
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    built[name](f, args)
    want = expect(before)
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            # Every element of every array: the expected outputs, the other arrays unchanged.
            check(f"{name}: argument {i}", a, want.get(i, before[i]))


def test_metal_3_2_device_fence():
    # With Metal 3.2 the device fence of reductions across threadgroups is atomic_thread_fence.
    x = f32(5000)
    opts = metal(par={"R": parpy.threads(4096).tpb(256)})
    out = np.zeros(3, np.float32)
    (prog,) = metal_emu.build([parpy.print_compiled(long_reductions, [x, out], opts)], defines=["__METAL_VERSION__=320"])
    prog(long_reductions, [x, out])
    check("out", out, [x.sum(), x.max(), x.min()])


def test_bounds_checks_run():
    # The host code and kernels of programs with run-time index checks (parpy_bounds_check).
    x, k, y = f32(N), RNG.integers(0, N, N).astype(np.int32), f32(N)
    opts = metal(N=N)
    opts.bounds_check = True
    code = parpy.print_compiled(gather, [x, k, y, N], opts)
    assert "#define PARPY_BOUNDS_CHECK" in code
    (prog,) = metal_emu.build([code])
    prog(gather, [x, k, y, N])
    check("y", y, x[k])
    k[3] = N + 2
    with pytest.raises(metal_emu.CallError) as e:
        prog(gather, [x, k, y, N])
    assert e.value.status != 0


def test_emulator_reports_divergent_barriers():
    # A threadgroup_barrier that only one thread reaches (the device fence of reductions across
    # threadgroups, before Metal 3.2, was called by thread 0 alone): reported, not run.
    x = f32(5000)
    code = parpy.print_compiled(long_reductions, [x, np.zeros(3, np.float32)],
                                metal(par={"R": parpy.threads(4096).tpb(256)}))
    fixed = re.compile(r"    if \(tid == 0\) partials\[slot \* nb \+ b\] = v; *\\\n.*\\\n    parpy_device_fence\(\); *\\\n"
                       r"    if \(tid == 0\) \{ *\\\n")
    bad = "    if (tid == 0) { \\\n      partials[slot * nb + b] = v; \\\n      parpy_device_fence(); \\\n"
    code, n = fixed.subn(lambda m: bad, code)
    assert n == 1
    (prog,) = metal_emu.build([code])
    with pytest.raises(metal_emu.CallError, match="threadgroup_barrier"):
        prog(long_reductions, [x, np.zeros(3, np.float32)])


def test_double_does_not_compile():
    # As on Metal: a double in a kernel stops the build.
    code = parpy.print_compiled(add_scaled, [f32(N), f32(N), 0.5, N], metal(N=N))
    marker = "// ---- Generated by parpy (Metal backend) ----\n"
    code = code.replace(marker, marker + "inline float parpy_twice(float a) { double b = a; return float(2 * b); }\n")
    with pytest.raises(RuntimeError, match="parpy_emu_no_double_on_metal"):
        metal_emu.build([code])


@parpy.jit
def condition_written_inside(x, z, N):
    parpy.label("N")
    for i in range(N):
        if z[i] < 1.0:
            parpy.label("M")
            z[i] = op.min(x[i, :])


def test_condition_written_inside_its_body():
    # Every thread tests the condition, which reads z[i], while thread 0 stores the reduction's
    # neutral element into z[i] inside the body: the GPU layer reads the condition into a local,
    # behind a barrier, before the body runs (a thread testing late skipped the body's barriers).
    x, z = f32(N, M), np.zeros(N, np.float32)
    (prog,) = metal_emu.build([parpy.print_compiled(condition_written_inside, [x, z, N], metal(N=N, M=64))])
    prog(condition_written_inside, [x, z, N])
    check("z", z, x.min(axis=1))


# ===== Fuzzed programs ============================================================================


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("parpy_fuzz_metal_emu", metal_emu.ROOT / "tools" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def metal_inputs(inputs):
    """The fuzzer's inputs in the types Metal has: float32 and int32."""
    out = []
    for v in inputs:
        if isinstance(v, np.ndarray):
            v = v.astype(np.float32 if v.dtype == np.float64 else np.int32)
        out.append(v)
    return out


def fuzz_case(fuzz, p):
    """Program p for Metal (float64 conversions become float32 ones: Metal has no doubles, no
    clusters or graphs) with its plain-Python result on the same float32/int32 inputs, or None."""
    p.src = p.src.replace("float64(", "float32(")
    f = fuzz._load(p.module(), p.name, p.filename)
    plain = fuzz._load(p.module(jit=False), p.name, p.filename + " plain")
    args = metal_inputs(fuzz.copy_inputs(p.inputs))
    ref = fuzz.copy_inputs(args)
    try:
        with np.errstate(all="raise"):
            plain(*ref)
    except (FloatingPointError, OverflowError, ZeroDivisionError, ValueError):
        return None
    if not all(np.all(np.isfinite(v)) for v in ref[:6]):
        return None
    o = fuzz.make_opts(dict(p.spec, clusters=False, graphs=False), fuzz.CUDA)
    o.backend = CompileBackend.Metal
    return f, args, o, ref


FUZZ_ERRORS = ("Metal does not support double-precision", "Metal has no 64-bit atomic operations")


def test_fuzzed_programs():
    fuzz = _load_fuzz()
    cases, codes, mismatches = [], [], []
    # Bodies in `with parpy.gpu:` (the Cuda fuzzer's), and programs with host code that reads and
    # writes arrays between kernels (the Cpu fuzzer's, with GPU options).
    programs = [fuzz.generate(9300, index, fuzz.CUDA) for index in range(100)]
    for index in range(40):
        p = fuzz.generate(9400, index, fuzz.CPU)
        p.spec = fuzz.opts_spec(random.Random(index), fuzz.CUDA)
        programs.append(p)
    for p in programs:
        c = fuzz_case(fuzz, p)
        if c is None:
            continue
        try:
            code = parpy.print_compiled(c[0], c[1], c[2])
        except (RuntimeError, TypeError) as e:
            # The Metal errors, and the GPU layer's rejections without clusters (as on Cuda).
            assert not str(e).startswith("Internal error"), f"{p.filename}: {e}"
            continue
        cases.append((p, c))
        codes.append(code)
    assert len(cases) >= 100, f"only {len(cases)} fuzzed programs to run"
    for start in range(0, len(cases), 50):
        progs = metal_emu.build(codes[start : start + 50])
        for (p, (f, args, _, ref)), prog in zip(cases[start : start + 50], progs):
            try:
                prog(f, args)
            except metal_emu.CallError as e:
                raise AssertionError(f"{p.filename}: {e}\n{p.src}") from e
            for name, got, want in zip("xyzukw", args[:6], ref[:6]):
                try:
                    if got.dtype.kind in "iu":
                        np.testing.assert_array_equal(got, want)
                    else:
                        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
                except AssertionError as err:
                    mismatches.append(f"{p.filename}, output {name}:{err}\n{p.src}")
    print(f"{len(cases)} fuzzed programs run in the Metal emulator")
    assert not mismatches, f"{len(mismatches)} of {len(cases)} differ:\n" + "\n".join(mismatches[:3])


@parpy.jit
def scale_into(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = 2.0 * x[i] + y[i]


def test_metal_buffers_as_arguments():
    # parpy.buffer on Metal (host memory, as Apple GPUs share it): a program takes buffers as it
    # takes numpy arrays, and what it writes is in the buffer's memory after the call.
    n = 1000
    src = RNG.standard_normal(n).astype(np.float32)
    x = parpy.buffer.from_array(src, CompileBackend.Metal)
    y = parpy.buffer.zeros(n, parpy.types.F32, CompileBackend.Metal)
    y.numpy()[:] = RNG.standard_normal(n).astype(np.float32)
    want = 2.0 * src + y.numpy()
    code = parpy.print_compiled(scale_into, [x, y, n], metal(N=256))
    (prog,) = metal_emu.build([code])
    prog(scale_into, [x, y, n])
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6, atol=1e-6)
    assert np.shares_memory(x.numpy(), src)


@parpy.external("std::fmin", CompileBackend.Metal, parpy.Target.Host, header="<cmath>")
def host_fmin(a: parpy.types.F32, b: parpy.types.F32) -> parpy.types.F32:
    return min(a, b)


@parpy.jit
def host_external_then_kernel(x, y, N):
    y[0] = host_fmin(x[0], x[1])  # host code: a host function of the C++ standard library
    parpy.label("N")
    for i in range(1, N):
        y[i] = x[i] * 2.0


@parpy.jit
def host_external_in_kernel(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = host_fmin(x[i], 0.0)


@parpy.jit
def helper_calling_host_external(a: parpy.types.F32, b: parpy.types.F32) -> parpy.types.F32:
    return host_fmin(a, b)


@parpy.jit
def host_external_in_helper(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = helper_calling_host_external(x[i], 0.0)


def test_host_external_in_host_code():
    # A Target.Host external is a host function: the host code calls it (its header is included
    # by the host part, not by the kernels' MSL), next to the program's kernels.
    n = 500
    x = RNG.standard_normal(n).astype(np.float32)
    y = np.zeros(n, np.float32)
    code = parpy.print_compiled(host_external_then_kernel, [x, y, n], metal(N=128))
    msl = metal_emu.msl_of(code)
    host_part = code.replace(msl, "")
    assert "#include <cmath>" in host_part and "std::fmin(" in host_part
    assert "<cmath>" not in msl and "fmin" not in msl
    (prog,) = metal_emu.build([code])
    prog(host_external_then_kernel, [x, y, n])
    assert y[0] == min(x[0], x[1])
    np.testing.assert_array_equal(y[1:], x[1:] * np.float32(2.0))


@pytest.mark.parametrize("fun, where", [(host_external_in_kernel, "in parallel code"),
                                        (host_external_in_helper, "in the jit function "
                                                                  "helper_calling_host_external, which runs on "
                                                                  "the GPU")])
def test_host_external_on_the_gpu_is_an_error(fun, where):
    x = np.zeros(8, np.float32)
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(fun, [x, x.copy(), 8], metal(N=8))
    assert (f"The external function host_fmin is declared with Target.Host, a function of the host, so it "
            f"cannot be called {where}. Call it outside parallel code, or declare a device function with "
            "Target.Device to call it on the GPU.") in str(e.value)
