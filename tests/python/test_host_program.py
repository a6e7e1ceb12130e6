"""The host code of Cuda programs run without a host compiler (src/gpu/host_program.h).

`parpy._host_launches(fun, args, opts)` lowers a call for the Cuda backend as print_compiled does
and runs its host code in the interpreter with the arrays' host addresses as device addresses,
recording the launches: (kernel, 128-bit variant, grid blocks, block threads, cluster blocks,
parameter values). No GPU is needed. Each test writes the launches it expects from the language's
and the GPU layer's rules (docs/gpu.md: one kernel per outermost parallel loop, named after the
function; arrays in the entry's order, then scratch buffers, then host scalars by name; a 128-bit
variant when every array is 16-byte aligned) and values computed here in Python.

The differential tests compile the printed host part (CudaProgram::host_code) with the host
compiler against a recording CUDA runtime (tools/host_program/) and compare its launches with the
interpreter's byte for byte, for these programs and for fuzzer programs (tools/fuzz.py);
tools/host_program_corpus.py runs the same comparison on more programs.
"""

import math
import random
import sys
from pathlib import Path

import numpy as np
import parpy
import pytest
from parpy.operators import float16, float32, float64, int8, uint16

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tools" / "host_program"))

import harness  # noqa: E402

needs_host_build = pytest.mark.skipif(not harness.available(), reason="needs a host C++ compiler and CUDA headers")

SCRATCH = [1 << 32, 2 << 32, 3 << 32, 4 << 32]  # the addresses _host_launches gives scratch buffers


def opts(par=None, **fields):
    o = parpy.par(par or {})
    o.backend = parpy.CompileBackend.Cuda
    for k, v in fields.items():
        setattr(o, k, v)
    return o


def aligned(n, dtype=np.float32, offset=0):
    """A fresh random array of n elements whose data starts `offset` elements after a 64-byte
    boundary."""
    itemsize = np.dtype(dtype).itemsize
    buf = np.empty(n + 64, dtype)
    start = (-buf.ctypes.data % 64) // itemsize + offset
    a = buf[start:start + n]
    a[:] = np.random.default_rng().random(n)
    return a


def addr(a):
    return a.ctypes.data


def geometry(n, tpb=1024):
    """(grid, block) of one parallel layer of n threads (docs/gpu.md, Grid and blocks)."""
    threads = -(-n // 32) * 32
    return (1, threads) if threads <= tpb else (-(-threads // tpb), tpb)


def vector_ok(*arrays):
    return all(addr(a) % 16 == 0 for a in arrays)


def has_vector_variant(fun, args, o, kernel):
    return f"parpy_kernel_{kernel}_vec(" in parpy._host_program(fun, args, o)["host_code"]


# ---- Straight launches ----

@parpy.jit
def two_maps(x, y, z, a, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] * a
    parpy.label("N")
    for i in range(N):
        z[i] = y[i] - x[i]


def test_straight_launches_with_arrays_and_a_float():
    rng = random.Random()
    for _ in range(4):
        n = rng.choice([rng.randint(1, 64), rng.randint(100, 5000)])
        x, y, z = (aligned(n, np.float64) for _ in range(3))
        a = rng.uniform(-10, 10)
        o = opts({"N": parpy.threads(n)})
        grid, block = geometry(n)
        got = parpy._host_launches(two_maps, [x, y, z, a, n], o)
        vec0 = has_vector_variant(two_maps, [x, y, z, a, n], o, "two_maps_k0") and vector_ok(x, y)
        vec1 = has_vector_variant(two_maps, [x, y, z, a, n], o, "two_maps_k1") and vector_ok(x, y, z)
        assert got == [
            ("two_maps_k0", vec0, grid, block, 1, [addr(x), addr(y), a]),
            ("two_maps_k1", vec1, grid, block, 1, [addr(x), addr(y), addr(z)]),
        ]


@parpy.jit
def scale_f32(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[i] * 2.0 + 1.0


def test_vector_variant_chosen_by_alignment():
    n = 4 * random.randint(64, 2000)
    o = opts({"N": parpy.threads(n // 4)})
    x, y = aligned(n + 4), aligned(n + 4)
    assert has_vector_variant(scale_f32, [x[:n], y[:n], n], o, "scale_f32_k0")
    cases = [(x[:n], y[:n], True), (x[1:n + 1], y[:n], False), (x[:n], y[3:n + 3], False),
             (x[4:n + 4], y[4:n + 4], True), (x[2:n + 2], y[2:n + 2], False)]
    grid, block = geometry(n // 4)
    for xs, ys, vec in cases:
        got = parpy._host_launches(scale_f32, [xs, ys, n], o)
        assert got == [("scale_f32_k0", vec, grid, block, 1, [addr(xs), addr(ys)])]


# ---- Host loops, branches and scalar arithmetic ----

@parpy.jit
def time_steps(x, y, a, T, N):
    for t in range(T):
        s = t * 3 - 7 // 2
        q = (t - 5) // 3
        r = (t - 5) % 3
        w = (t - 5) / 2
        m = parpy.operators.max(t - 2, 1)
        f = a * float64(t) + 0.25
        c8 = int8(t * 37)
        u16 = uint16(t - 3)
        h = float16(f)
        g = float32(f)
        b = t % 2 == 0
        parpy.label("N")
        for i in range(N):
            y[i] = x[i] + float32(s + q + r + w + m) + float32(c8) + float32(u16) + float32(h) + g
        parpy.label("N")
        for i in range(N):
            if b:
                x[i] = y[i] * 0.5
            else:
                x[i] = y[i]


def c_int8(v):
    return (v + 128) % 256 - 128


def test_time_step_loop_with_scalar_arithmetic():
    rng = random.Random()
    n, steps = rng.randint(1, 3000), rng.randint(1, 12)
    a = rng.uniform(-3, 3)
    x, y = aligned(n), aligned(n)
    o = opts({"N": parpy.threads(n)})
    grid, block = geometry(n)
    got = parpy._host_launches(time_steps, [x, y, a, steps, n], o)
    vec = [has_vector_variant(time_steps, [x, y, a, steps, n], o, f"time_steps_k{k}") and vector_ok(x, y)
           for k in range(2)]
    want = []
    for t in range(steps):
        s = t * 3 - 7 // 2
        q = (t - 5) // 3
        r = (t - 5) % 3
        w = int((t - 5) / 2)  # C's integer division truncates
        m = max(t - 2, 1)
        f = a * float(t) + 0.25
        h = float(np.float16(f))
        g = float(np.float32(f))
        # Host scalars by name: c8, f (not read), g, h, m, q, r, s, u16, w.
        scalars = {"c8": c_int8(t * 37), "g": g, "h": h, "m": m, "q": q, "r": r, "s": s, "u16": (t - 3) % 65536,
                   "w": w}
        want.append(("time_steps_k0", vec[0], grid, block, 1, [addr(x), addr(y)] + [scalars[k] for k in sorted(scalars)]))
        want.append(("time_steps_k1", vec[1], grid, block, 1, [addr(x), addr(y), t % 2 == 0]))
    assert got == want


@parpy.jit
def branches(x, y, a, N):
    for t in range(7):
        if a * float64(t) > 1.5:
            parpy.label("N")
            for i in range(N):
                y[i] = x[i] + 1.0
        elif t == 3:
            parpy.label("N")
            for i in range(N):
                y[i] = x[i] - 1.0
        else:
            parpy.label("N")
            for i in range(N):
                y[i] = x[i] * float64(t)
    k = 0.0
    while k < a:
        parpy.label("N")
        for i in range(N):
            x[i] = y[i] + k
        k = k + 1.0


def test_host_branches_and_while_choose_launches():
    rng = random.Random()
    for a in [rng.uniform(-1, 4) for _ in range(5)] + [0.0, 3.0]:
        n = rng.randint(1, 2000)
        x, y = aligned(n, np.float64), aligned(n, np.float64)
        o = opts({"N": parpy.threads(n)})
        grid, block = geometry(n)
        got = parpy._host_launches(branches, [x, y, a, n], o)
        want = []
        for t in range(7):
            if a * t > 1.5:
                want.append(("branches_k0", [addr(x), addr(y)]))
            elif t == 3:
                want.append(("branches_k1", [addr(x), addr(y)]))
            else:
                want.append(("branches_k2", [addr(x), addr(y), t]))
        k = 0.0
        while k < a:
            want.append(("branches_k3", [addr(x), addr(y), k]))
            k += 1.0
        assert [(g[0], g[5]) for g in got] == want
        assert all(g[2:5] == (grid, block, 1) for g in got)


@parpy.jit
def counted(x, y, lo, hi, N):
    for t in range(lo, hi, 3):
        parpy.label("N")
        for i in range(N):
            x[i] = x[i] + float64(t)
        parpy.label("N")
        for i in range(N):
            y[i] = x[N - 1 - i]


def test_loop_with_step_near_the_ends_of_int64():
    # Near the ends of int64 the printed loop counts its iterations first (docs/language.md,
    # Statements); the bounds are compiled in.
    for lo, hi in [(-7, 11), (5, 5), (2**63 - 10, 2**63 - 1), (-(2**63), -(2**63) + 8)]:
        x, y = aligned(64, np.float64), aligned(64, np.float64)
        got = parpy._host_launches(counted, [x, y, lo, hi, 64], opts({"N": parpy.threads(64)}))
        want = []
        for t in range(lo, hi, 3):
            want += [("counted_k0", [addr(x), t]), ("counted_k1", [addr(x), addr(y)])]
        assert [(g[0], g[5]) for g in got] == want


# ---- Parameter types ----

@parpy.jit
def scalar_params(x, a, b, N):
    parpy.label("N")
    for i in range(N):
        x[i] = x[i] * a + b


@pytest.mark.parametrize("size", [parpy.ElemSize.F16, parpy.ElemSize.F32, parpy.ElemSize.F64])
def test_float_arguments_in_their_size(size):
    dtype = {parpy.ElemSize.F16: np.float16, parpy.ElemSize.F32: np.float32, parpy.ElemSize.F64: np.float64}[size]
    n = random.randint(1, 500)
    x = aligned(n, dtype)
    a, b = random.uniform(-100, 100), random.uniform(-1, 1)
    o = opts({"N": parpy.threads(n)}, force_float_size=size)
    got = parpy._host_launches(scalar_params, [x, a, b, n], o)
    assert [g[5] for g in got] == [[addr(x), float(dtype(a)), float(dtype(b))]]
    raw = parpy._host_launches(scalar_params, [x, a, b, n], o, raw=True)
    assert raw[0][5][1:] == [dtype(a).tobytes(), dtype(b).tobytes()]


@parpy.jit
def half_host(x, a, b, N):
    k = a * b + a
    m = parpy.operators.max(a, b) - b / a
    c = k < m
    parpy.label("N")
    for i in range(N):
        if c:
            x[i] = x[i] * k + m
        else:
            x[i] = x[i] - m


def test_float16_arithmetic_on_the_host():
    # float16 scalars (force_float_size) computed on the host: each operation in float32 and
    # rounded to float16, as numpy computes float16 too.
    rng = random.Random()
    for _ in range(5):
        n = rng.randint(1, 300)
        x = aligned(n, np.float16)
        a, b = np.float16(rng.uniform(-8, 8)), np.float16(rng.uniform(-8, 8))
        o = opts({"N": parpy.threads(n)}, force_float_size=parpy.ElemSize.F16)
        got = parpy._host_launches(half_host, [x, float(a), float(b), n], o, raw=True)
        k = a * b + a
        m = np.maximum(a, b) - b / a
        assert [g[5] for g in got] == [[np.uint64(addr(x)).tobytes(), np.bool_(k < m).tobytes(), k.tobytes(),
                                        m.tobytes()]]


@parpy.jit
def small_types(x, T, N):
    for t in range(T):
        c = int8(t * 100)
        u = uint16(t * 5000)
        z = t > 2
        parpy.label("N")
        for i in range(N):
            if z:
                x[i] = x[i] + float32(c) + float32(u)


def test_bool_int8_and_unsigned_parameters():
    steps = random.randint(4, 30)
    x = aligned(100)
    raw = parpy._host_launches(small_types, [x, steps, 100], opts({"N": parpy.threads(100)}), raw=True)
    assert [g[5] for g in raw] == [
        [np.uint64(addr(x)).tobytes(), np.int8(c_int8(t * 100)).tobytes(), np.uint16(t * 5000 % 65536).tobytes(),
         np.bool_(t > 2).tobytes()]
        for t in range(steps)
    ]


# ---- Scratch buffers, clusters, bounds checks ----

@parpy.jit
def total(x, out, N):
    parpy.label("N")
    for i in range(N):
        out[0] += x[i]


def test_multi_block_reduction_passes_scratch_buffers():
    n = random.randint(5000, 100000)
    x, out = aligned(n, np.float64), aligned(1, np.float64)
    o = opts({"N": parpy.threads(n).reduce()})
    got = parpy._host_launches(total, [x, out, n], o)
    assert len(got) == 1
    name, vec, grid, block, cluster, params = got[0]
    assert (name, grid, block, cluster) == ("total_k0", -(-n // 1024), 1024, 1)
    assert params[:2] == [addr(x), addr(out)]
    scratch = params[2:]
    assert 1 <= len(scratch) <= len(SCRATCH) and scratch == SCRATCH[:len(scratch)]


def test_cluster_reduction():
    n = 1024 * random.choice([2, 4, 8])
    x, out = aligned(n, np.float64), aligned(1, np.float64)
    o = opts({"N": parpy.threads(n).reduce()}, use_cuda_thread_block_clusters=True)
    got = parpy._host_launches(total, [x, out, n], o)
    assert [(g[0], g[2], g[3], g[4], g[5][:2]) for g in got] == [("total_k0", n // 1024, 1024, n // 1024,
                                                                    [addr(x), addr(out)])]


@parpy.jit
def gather(x, idx, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = x[idx[i]]


def test_bounds_check_keeps_the_launches():
    n = random.randint(1, 3000)
    x, y = aligned(n, np.float64), aligned(n, np.float64)
    idx = np.arange(n, dtype=np.int64)
    info = parpy._host_program(gather, [x, idx, y, n], opts({"N": parpy.threads(n)}, bounds_check=True))
    assert info["constructs"].get("program:bounds-check") == 1 and "error" not in info
    grid, block = geometry(n)
    for check in (False, True):
        got = parpy._host_launches(gather, [x, idx, y, n], opts({"N": parpy.threads(n)}, bounds_check=check))
        assert [(g[0], g[2], g[3], g[5]) for g in got] == [("gather_k0", grid, block, [addr(x), addr(idx), addr(y)])]


def test_graphs_option_keeps_the_launches():
    n = random.randint(1, 3000)
    x, y, z = (aligned(n, np.float64) for _ in range(3))
    plain = parpy._host_launches(two_maps, [x, y, z, 1.5, n], opts({"N": parpy.threads(n)}))
    graphs = parpy._host_launches(two_maps, [x, y, z, 1.5, n], opts({"N": parpy.threads(n)}, use_cuda_graphs=True))
    assert graphs == plain and len(plain) == 2


def test_rejects_non_jit_functions():
    with pytest.raises(TypeError, match="parpy.jit"):
        parpy._host_launches(lambda x: x, [1], opts())


# ---- Against the compiled host part ----

def program_cases():
    """(function, args, opts) of the programs above, with fresh values."""
    rng = random.Random()
    n = rng.randint(100, 3000)
    x32, y32 = aligned(4 * n), aligned(4 * n)
    x, y, z = (aligned(n, np.float64) for _ in range(3))
    out = aligned(1, np.float64)
    a = rng.uniform(-3, 3)
    cases = [
        (two_maps, [x, y, z, a, n], opts({"N": parpy.threads(n)})),
        (two_maps, [x, y, z, a, n], opts({"N": parpy.threads(n)}, use_cuda_graphs=True)),
        (scale_f32, [x32, y32, 4 * n], opts({"N": parpy.threads(n)})),
        (scale_f32, [x32[1:], y32[1:], 4 * n - 1], opts({"N": parpy.threads(n)})),
        (time_steps, [x32[:n], y32[:n], a, rng.randint(1, 9), n], opts({"N": parpy.threads(n)})),
        (branches, [x, y, a, n], opts({"N": parpy.threads(n)})),
        (counted, [x, y, -7, 11, n], opts({"N": parpy.threads(n)})),
        (counted, [x, y, 2**63 - 10, 2**63 - 1, n], opts({"N": parpy.threads(n)})),
        (small_types, [x32, rng.randint(4, 20), n], opts({"N": parpy.threads(n)})),
        (total, [x, out, n], opts({"N": parpy.threads(n).reduce()})),
        (total, [aligned(2048, np.float64), out, 2048], opts({"N": parpy.threads(2048).reduce()},
                                                           use_cuda_thread_block_clusters=True)),
        (gather, [x, np.arange(n, dtype=np.int64), y, n], opts({"N": parpy.threads(n)}, bounds_check=True)),
    ]
    cases.append((half_host, [aligned(n, np.float16), a, 1.0 - a, n], opts({"N": parpy.threads(n)},
                                                                          force_float_size=parpy.ElemSize.F16)))
    for size in (parpy.ElemSize.F16, parpy.ElemSize.F32):
        dtype = np.float16 if size == parpy.ElemSize.F16 else np.float32
        cases.append((scalar_params, [aligned(n, dtype), a, -a, n], opts({"N": parpy.threads(n)}, force_float_size=size)))
    return cases


def compare_with_compiled(cases, tmp_path):
    infos = [parpy._host_program(f, args, o) for f, args, o in cases]
    assert all("error" not in i for i in infos), [i.get("error") for i in infos]
    lib, entries = harness.build(infos, tmp_path)
    for (f, args, o), entry in zip(cases, entries):
        compiled = parpy._host_launches(f, args, o, library=lib, entry=entry, raw=True)
        interpreted = parpy._host_launches(f, args, o, raw=True)
        assert interpreted == compiled, entry
        assert compiled, entry


@needs_host_build
def test_same_launches_as_compiled_host_code(tmp_path):
    compare_with_compiled(program_cases(), tmp_path)


@needs_host_build
def test_fuzz_programs_same_launches_as_compiled_host_code(tmp_path):
    import fuzz

    seed = random.randrange(1 << 30)
    cases = []
    for i in range(24):
        p = fuzz.generate(seed, i, fuzz.CUDA)
        f = fuzz._load(p.module(), p.name, p.filename)
        cases.append((f, fuzz.copy_inputs(p.inputs), fuzz.make_opts(p.spec, p.backend)))
    compare_with_compiled(cases, tmp_path)
