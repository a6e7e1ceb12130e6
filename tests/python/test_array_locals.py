"""Locals that name arrays: `alpha = alpha1`, reassigned in branches and loops (the parity swap
of the HMM forward algorithm), then indexed, sliced, reduced, passed to helpers and externals and
written like the arrays themselves. Every output element is compared with numpy on fresh random
data, on every enabled backend; the Cuda code of the same programs is compiled with nvcc here."""

import shutil
import subprocess

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy import CompileBackend, Target
from parpy.operators import exp, log
from parpy.operators import max as pmax
from parpy.operators import sum as psum
from parpy.types import F64, I64, pointer
from common import make_opts, cpu

LOCATIONS = SourceLocations(__file__)
loc = LOCATIONS.loc

RNG = np.random.default_rng()
CUDA = CompileBackend.Cuda
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")

ROW_MAX_HEADER = """#pragma once
#include <cstdint>
#ifdef __CUDACC__
#define ALIAS_FN static inline __host__ __device__
#else
#define ALIAS_FN static inline
#endif
ALIAS_FN double alias_row_max(const double* p, int64_t n) {
  double m = p[0];
  for (int64_t i = 1; i < n; ++i) m = p[i] > m ? p[i] : m;
  return m;
}
"""


pytestmark = pytest.mark.usefixtures("fresh_cache")


# ----- the programs -------------------------------------------------------------------------------


@parpy.jit
def forward(hmm, alpha1, alpha2, result, T, N, S):
    # The HMM forward algorithm of the original library's benchmark: two arrays swapped by parity.
    parpy.label("inst")
    for inst in range(N):
        parpy.label("state")
        for state in range(S):
            alpha1[inst, state] = hmm["init"][state] + hmm["emit"][state, 0]
        for t in range(1, T):
            alpha_src = alpha2
            alpha_dst = alpha1
            if t & 1:
                alpha_src = alpha1
                alpha_dst = alpha2
            parpy.label("state")
            for state in range(S):
                m = pmax(alpha_src[inst, :], axis=0)
                s = 0.0
                for pred in range(S):
                    s = s + exp(alpha_src[inst, pred] + hmm["trans"][pred, state] - m)
                alpha_dst[inst, state] = m + log(s) + hmm["emit"][state, t]
        alpha = alpha2
        if T & 1:
            alpha = alpha1
        maxp = pmax(alpha[inst, :], axis=0)
        total = psum(exp(alpha[inst, :] - maxp), axis=0)
        result[inst] = maxp + log(total)


def forward_reference(hmm, N, T):
    def logsumexp(a, axis):
        m = a.max(axis=axis, keepdims=True)
        return np.squeeze(m, axis) + np.log(np.exp(a - m).sum(axis=axis))

    alpha = np.tile(hmm["init"] + hmm["emit"][:, 0], (N, 1))
    for t in range(1, T):
        alpha = logsumexp(alpha[:, :, None] + hmm["trans"][None, :, :], 1) + hmm["emit"][:, t]
    return logsumexp(alpha, 1)


@parpy.jit
def last_written(x, a, b, out, N, M, K):
    # The alias of the last array written is chosen at run time, from another alias.
    parpy.label("i")
    for i in range(N):
        parpy.label("j")
        for j in range(M):
            a[i, j] = x[i, j]
        last = a
        for k in range(1, K):
            src = a
            dst = b
            if k % 2 == 0:
                src = b
                dst = a
            parpy.label("j")
            for j in range(M):
                dst[i, j] = src[i, (j + 1) % M] * 0.5 + src[i, j]
            last = dst
        parpy.label("j")
        out[i, :] = last[i, :] * 2.0


@parpy.jit
def host_choice(x, y, mx, sm, N, M):
    # Aliases assigned in host code (a sequential loop around the parallel ones), reduced along
    # an axis and in full.
    for k in range(2):
        src = x
        if k == 1:
            src = y
        parpy.label("i")
        parpy.label("j")
        mx[k, :] = pmax(src[:, :], axis=1)
        with parpy.gpu:
            parpy.label("r")
            sm[k] = psum(src[:, :])


@parpy.jit
def dict_alias(d, out, N):
    w = d["w"]
    parpy.label("i")
    for i in range(N):
        v = d["v"]
        out[i] = w[i] * 2.0 + v[i]
    parpy.label("i")
    out[N:] = w[:] - d["v"][:]


@parpy.jit
def alias_row_total(r: pointer(F64), n: I64) -> F64:
    s = 0.0
    for j in range(n):
        s = s + r[j]
    return s


@parpy.jit
def alias_scale_row(r: pointer(F64), n: I64, v: F64):
    # Writes through its pointer parameter: the array the alias names must be copied back.
    for j in range(n):
        r[j] = r[j] * v
    return n


@parpy.jit
def alias_bump(r: pointer(F64), n: I64, v: F64) -> F64:
    # A local naming the pointer parameter, inside a helper.
    q = r
    q[n - 1] = q[n - 1] + v
    return q[0]


@parpy.jit
def bump_rows(x, firsts, N, M):
    parpy.label("i")
    for i in range(N):
        firsts[i] = alias_bump(x[i], M, 1.5)


@parpy.jit
def copy_scaled(dst, src, N):
    # A statement-level helper (inlined): its parameters are the caller's aliases.
    parpy.label("i")
    dst[:] = src[:] * 3.0


@parpy.external("alias_row_max", CompileBackend.Cpu, Target.Device, header="alias_row_max.h")
@parpy.external("alias_row_max", CompileBackend.Cuda, Target.Device, header="alias_row_max.h")
def ext_row_max(p: pointer(F64), n: I64) -> F64:
    return max(p[:n])


@parpy.jit
def calls(x, y, z, sums, maxes, counts, c, N, M):
    parpy.label("i")
    for i in range(N):
        p = x
        if c[i] > 0:
            p = y
        sums[i] = alias_row_total(p[i], M)
        maxes[i] = ext_row_max(p[i], M)
        counts[i] = alias_scale_row(p[i], M, 2.0)
    q = z
    copy_scaled(q, y[0], M)


@parpy.jit
def write_through(x, out1, out2, N):
    # out1 and out2 are written only through the alias: both must be copied back on the GPU.
    dst = out1
    parpy.label("i")
    for i in range(N):
        dst[i] = x[i] + 1.0
    dst = out2
    parpy.label("i")
    for i in range(N):
        dst[i] = x[i] * 2.0


@parpy.jit
def split_nest(x, y, out, N, M):
    # On the GPU, more than 1024 inner threads split the nest into one kernel per inner loop:
    # each kernel assigns the local again.
    parpy.label("i")
    for i in range(N):
        a = x
        parpy.label("j")
        for j in range(M):
            out[i, j] = a[i, j] * 2.0
        parpy.label("j")
        for j in range(M):
            out[i, j] = out[i, j] + a[i, (j + 1) % M] + y[i, j]


def hmm_data(N, S, T):
    def log_normalised(shape, axis):
        p = RNG.random(shape) + 0.1
        return np.log(p / p.sum(axis=axis, keepdims=True))

    hmm = {
        "init": log_normalised(S, 0),
        "trans": log_normalised((S, S), 1),
        "emit": log_normalised((S, T), 0),
    }
    return hmm, np.zeros((N, S)), np.zeros((N, S)), np.zeros(N)


# ----- results on every enabled backend -----------------------------------------------------------


@pytest.mark.parametrize("T", [1, 2, 5, 8])
def test_forward_parity_swap(backend, T):
    N, S = 13, 37
    hmm, a1, a2, result = hmm_data(N, S, T)
    forward(hmm, a1, a2, result, T, N, S, opts=make_opts(backend, inst=N, state=S))
    np.testing.assert_allclose(result, forward_reference(hmm, N, T), rtol=1e-12)


@pytest.mark.parametrize("K", [1, 2, 3, 6])
def test_alias_chosen_at_run_time(backend, K):
    N, M = 9, 70
    x = RNG.standard_normal((N, M))
    a, b, out = np.zeros((N, M)), np.zeros((N, M)), np.zeros((N, M))
    last_written(x, a, b, out, N, M, K, opts=make_opts(backend, i=N, j=M))
    cur = x.copy()
    for _ in range(1, K):
        cur = np.roll(cur, -1, axis=1) * 0.5 + cur
    np.testing.assert_allclose(out, cur * 2.0, rtol=1e-13, atol=1e-13)


def test_host_alias_in_parallel_code(backend):
    N, M = 21, 300
    x, y = RNG.standard_normal((N, M)), RNG.standard_normal((N, M))
    mx, sm = np.zeros((2, N)), np.zeros(2)
    host_choice(x, y, mx, sm, N, M, opts=make_opts(backend, i=N, j=M, r=256))
    np.testing.assert_allclose(mx, np.stack([x.max(axis=1), y.max(axis=1)]), rtol=0)
    np.testing.assert_allclose(sm, [x.sum(), y.sum()], rtol=1e-12, atol=1e-10)


def test_alias_of_dict_entry(backend):
    N = 100
    d = {"w": RNG.standard_normal(N), "v": RNG.standard_normal(N)}
    out = np.zeros(2 * N)
    dict_alias(d, out, N, opts=make_opts(backend, i=N))
    np.testing.assert_allclose(out[:N], d["w"] * 2.0 + d["v"], rtol=1e-15)
    np.testing.assert_allclose(out[N:], d["w"] - d["v"], rtol=1e-15)


def test_alias_passed_to_helpers_and_externals(backend, tmp_path):
    (tmp_path / "alias_row_max.h").write_text(ROW_MAX_HEADER)
    N, M = 17, 23
    x, y, z = RNG.standard_normal((N, M)), RNG.standard_normal((N, M)), np.zeros(M)
    c = RNG.integers(0, 2, N)
    x0, y0 = x.copy(), y.copy()
    sums, maxes, counts = np.zeros(N), np.zeros(N), np.zeros(N, np.int64)
    opts = make_opts(backend, i=N)
    opts.includes = [str(tmp_path)]
    calls(x, y, z, sums, maxes, counts, c, N, M, opts=opts)
    chosen = np.where(c[:, None] > 0, y0, x0)
    np.testing.assert_allclose(sums, chosen.sum(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(maxes, chosen.max(axis=1), rtol=0)
    np.testing.assert_array_equal(counts, np.full(N, M))
    # The helper doubled the chosen rows through the alias: both arrays are copied back.
    np.testing.assert_allclose(x, np.where(c[:, None] > 0, x0, 2 * x0), rtol=0)
    np.testing.assert_allclose(y, np.where(c[:, None] > 0, 2 * y0, y0), rtol=0)
    np.testing.assert_allclose(z, y[0] * 3.0, rtol=1e-15)


def test_local_naming_a_pointer_in_a_helper(backend):
    N, M = 33, 12
    x = RNG.standard_normal((N, M))
    x0, firsts = x.copy(), np.zeros(N)
    bump_rows(x, firsts, N, M, opts=make_opts(backend, i=N))
    np.testing.assert_allclose(firsts, x0[:, 0], rtol=0)
    x0[:, M - 1] += 1.5
    np.testing.assert_allclose(x, x0, rtol=0)


def test_writes_through_alias_reach_the_arrays(backend):
    N = 1000
    x = RNG.standard_normal(N)
    out1, out2 = np.zeros(N), np.zeros(N)
    write_through(x, out1, out2, N, opts=make_opts(backend, i=N))
    np.testing.assert_allclose(out1, x + 1.0, rtol=1e-15)
    np.testing.assert_allclose(out2, x * 2.0, rtol=1e-15)


def test_alias_in_a_split_nest(backend):
    N, M = 3, 2500
    x, y = RNG.standard_normal((N, M)), RNG.standard_normal((N, M))
    out = np.zeros((N, M))
    split_nest(x, y, out, N, M, opts=make_opts(backend, i=N, j=M))
    np.testing.assert_allclose(out, x * 2.0 + np.roll(x, -1, axis=1) + y, rtol=1e-14, atol=1e-14)


def test_float32_alias_rows(backend):
    @parpy.jit
    def f(a, b, out, N, M):
        parpy.label("i")
        for i in range(N):
            src = a
            if i % 3 == 0:
                src = b
            parpy.label("j")
            out[i, :] = src[i, :] + src[i, :] * 2.0

    N, M = 40, 129
    a = RNG.standard_normal((N, M)).astype(np.float32)
    b = RNG.standard_normal((N, M)).astype(np.float32)
    out = np.zeros((N, M), np.float32)
    f(a, b, out, N, M, opts=make_opts(backend, i=N, j=M))
    src = np.where((np.arange(N) % 3 == 0)[:, None], b, a)
    np.testing.assert_allclose(out, src + src * 2.0, rtol=1e-6, atol=1e-6)


# ----- errors -------------------------------------------------------------------------------------


def test_arrays_of_different_shapes():
    @parpy.jit
    def f(x, y, out, N):
        parpy.label("i")
        for i in range(N):
            a = x
            if i > 2:
                a = y  # @shape_mismatch
            out[i] = a[0]

    with pytest.raises(TypeError) as e:
        f(np.zeros(4), np.zeros(5), np.zeros(4), 4, opts=cpu(i=4))
    msg = (
        "Cannot coerce incompatible tensor types (float64 array of shape (4,) != "
        "float64 array of shape (5,)): all arrays that a may name must have the same element "
        "type and shape."
    )
    assert str(e.value) == loc(msg, "shape_mismatch", "a = y")


def test_arrays_of_different_element_types():
    @parpy.jit
    def f(x, y, out, N):
        a = x
        a = y  # @type_mismatch
        parpy.label("i")
        out[:] = a[:]

    with pytest.raises(TypeError) as e:
        f(np.zeros(4), np.zeros(4, np.float32), np.zeros(4), 4, opts=cpu(i=4))
    msg = (
        "Cannot coerce incompatible tensor types (float64 array of shape (4,) != "
        "float32 array of shape (4,)): all arrays that a may name must have the same element "
        "type and shape."
    )
    assert str(e.value) == loc(msg, "type_mismatch", "a = y")


def test_alias_assigned_a_scalar():
    @parpy.jit
    def f(x, out, N):
        parpy.label("i")
        for i in range(N):
            a = x
            a = 1.0  # @alias_scalar
            out[i] = a[i]

    with pytest.raises(TypeError) as e:
        f(np.zeros(4), np.zeros(4), 4, opts=cpu(i=4))
    msg = (
        "The local a names an array of type float64 array of shape (4,), so it can only be "
        "assigned an array of that type (a parameter, a dict entry or another local naming one). "
        "Use a different local for other values."
    )
    assert str(e.value) == loc(msg, "alias_scalar", "a = 1.0")


def test_scalar_local_assigned_an_array():
    @parpy.jit
    def f(x, out, N):
        parpy.label("i")
        for i in range(N):
            a = 1.0
            a = x  # @scalar_alias
            out[i] = a

    with pytest.raises(TypeError) as e:
        f(np.zeros(4), np.zeros(4), 4, opts=cpu(i=4))
    msg = (
        "The local a was first assigned a value that is not an array, so it cannot name the "
        "array x. Use a different local for the array."
    )
    assert str(e.value) == loc(msg, "scalar_alias", "a = x")


def test_alias_reassigned_inside_parallel_loop():
    @parpy.jit
    def f(x, y, out, N):
        a = x
        parpy.label("i")
        for i in range(N):
            a = y  # @par_reassign
            out[i] = a[i]

    with pytest.raises(RuntimeError) as e:
        f(np.zeros(4), np.zeros(4), np.zeros(4), 4, opts=cpu(i=4))
    msg = (
        "The local a names an array and is defined outside this parallel loop, so it cannot be "
        "assigned inside it (every thread would overwrite it). Define it inside the loop instead."
    )
    assert str(e.value) == loc(msg, "par_reassign", "a = y")


def test_alias_chosen_in_gpu_code_used_by_another_kernel():
    # Cuda only (no GPU needed): the pointer chosen in one kernel does not outlive it.
    @parpy.jit
    def f(x, y, out, N):
        with parpy.gpu:
            a = x
            if x[0] > 0.0:
                a = y  # @gpu_choice
        parpy.label("i")
        for i in range(N):
            out[i] = a[i]  # @gpu_use

    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(f, [np.zeros(4), np.zeros(4), np.zeros(4), 4], make_opts(CUDA, i=4))
    msg = (
        f"The array that a names is chosen in GPU code (on line {LOCATIONS.line('gpu_choice')}), "
        "so code outside that parallel loop or 'with parpy.gpu:' block cannot use it. Assign a in "
        "host code (outside parallel code), or use it only in the code that assigns it."
    )
    assert str(e.value) == loc(msg, "gpu_use", "a[i]")


# ----- the Cuda code compiles -----------------------------------------------------------------


def nvcc_compile(code, tmp_path, includes=()):
    src = tmp_path / "k.cu"
    src.write_text(code)
    cmd = ["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include()]
    cmd += ["-I" + str(d) for d in includes]
    r = subprocess.run(
        cmd + [str(src), "-o", str(tmp_path / "k.o")], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, code + "\n" + r.stderr


def cuda_programs(tmp_path):
    N, M, S, T = 13, 70, 37, 5
    hmm, a1, a2, result = hmm_data(N, S, T)
    x, y = RNG.standard_normal((N, M)), RNG.standard_normal((N, M))
    d = {"w": RNG.standard_normal(N), "v": RNG.standard_normal(N)}
    ext = make_opts(CUDA, i=N)
    ext.includes = [str(tmp_path)]
    return {
        "forward": (forward, [hmm, a1, a2, result, T, N, S], make_opts(CUDA, inst=N, state=S)),
        "last_written": (last_written, [x, x, y, x, N, M, 4], make_opts(CUDA, i=N, j=M)),
        "host_choice": (
            host_choice,
            [x, y, np.zeros((2, N)), np.zeros(2), N, M],
            make_opts(CUDA, i=N, j=M, r=256),
        ),
        "dict_alias": (dict_alias, [d, np.zeros(2 * N), N], make_opts(CUDA, i=N)),
        "calls": (
            calls,
            [
                x,
                y,
                np.zeros(M),
                np.zeros(N),
                np.zeros(N),
                np.zeros(N, np.int64),
                np.zeros(N, np.int64),
                N,
                M,
            ],
            ext,
        ),
        "write_through": (write_through, [x[0], x[1], x[2], M], make_opts(CUDA, i=M)),
        "bump_rows": (bump_rows, [x, np.zeros(N), N, M], make_opts(CUDA, i=N)),
        "split_nest": (
            split_nest,
            [np.zeros((3, 2500)), np.zeros((3, 2500)), np.zeros((3, 2500)), 3, 2500],
            make_opts(CUDA, i=3, j=2500),
        ),
    }


@needs_nvcc
@pytest.mark.parametrize(
    "name",
    [
        "forward",
        "last_written",
        "host_choice",
        "dict_alias",
        "calls",
        "write_through",
        "split_nest",
        "bump_rows",
    ],
)
def test_cuda_code_compiles(name, tmp_path):
    (tmp_path / "alias_row_max.h").write_text(ROW_MAX_HEADER)
    fun, args, opts = cuda_programs(tmp_path)[name]
    code = parpy.print_compiled(fun, args, opts)
    nvcc_compile(code, tmp_path, [tmp_path])


def test_cuda_aliases_are_pointers_and_not_vectorized(tmp_path):
    fun, args, opts = cuda_programs(tmp_path)["forward"]
    code = parpy.print_compiled(fun, args, opts)
    assert "double* v_alpha_src;" in code
    assert "v_alpha_src = v_alpha1;" in code
    # Loads and stores through names that may share memory keep their order.
    assert "_vec" not in code and "assume_aligned(alpha" not in code
