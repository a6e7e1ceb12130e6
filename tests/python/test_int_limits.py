"""Values at the limits of their types. Scalar arguments are compiled in as constants and folded:
the folded values are the ones the generated code (and numpy) computes at run time. Loop bounds
far apart: the compiler's own arithmetic on them must not overflow (the sanitizer build,
tools/sanitize_suite.sh, reports signed overflow in the compiler)."""

import numpy as np
import parpy
import pytest
from parpy import operators as op

N = 64
I64 = np.iinfo(np.int64)


def opts(backend):
    o = parpy.par({"N": parpy.threads(N)})
    o.backend = backend
    return o


@parpy.jit
def max_min_of_scalars(a, b, x, hi, lo, N):
    parpy.label("N")
    for i in range(N):
        hi[i] = op.max(a, b) + x[i]
        lo[i] = op.min(a, b) + x[i]


@pytest.mark.parametrize(
    "a, b", [(np.nan, 1.0), (1.0, np.nan), (np.nan, np.nan), (-0.5, 2.0), (2.0, -0.5)]
)
def test_folded_max_min_propagate_nan(backend, a, b):
    x = np.random.rand(N)
    hi = np.zeros(N)
    lo = np.zeros(N)
    max_min_of_scalars(a, b, x, hi, lo, N, opts=opts(backend))
    np.testing.assert_array_equal(hi, np.maximum(a, b) + x)
    np.testing.assert_array_equal(lo, np.minimum(a, b) + x)


@parpy.jit
def int_to_float32(v, w, folded, at_run_time, N):
    parpy.label("N")
    for i in range(N):
        folded[i] = op.float32(v) + op.float32(w[i])
        at_run_time[i] = op.float32(w[0]) + op.float32(w[i])


# Just above the midpoint of two float32 values: rounding to float64 first would round down.
@pytest.mark.parametrize("v", [2**62 + 2**38 + 1, -(2**62 + 2**38 + 1), 2**24 + 1, I64.max, I64.min])
def test_folded_int_to_float32_rounds_once(backend, v):
    w = np.zeros(N, dtype=np.int64)
    w[0] = v
    w[1:] = np.random.randint(-1000, 1000, N - 1)
    folded = np.zeros(N, dtype=np.float32)
    at_run_time = np.zeros(N, dtype=np.float32)
    int_to_float32(v, w, folded, at_run_time, N, opts=opts(backend))
    w32 = w.astype(np.float32)  # numpy's int64 -> float32 cast rounds once
    np.testing.assert_array_equal(at_run_time, w32[0] + w32)
    np.testing.assert_array_equal(folded, w32[0] + w32)


@parpy.jit
def int64_ops(a, b, out, N):
    # Only folded values are stored: int64 overflow in the generated code itself is undefined in
    # C and C++, so these limits are tested on the compiler's folding alone.
    parpy.label("N")
    for i in range(N):
        out[0, i] = a + b
        out[1, i] = a - b
        out[2, i] = a * b
        out[3, i] = -a
        out[4, i] = a**3
        out[5, i] = a << 5
        out[6, i] = a >> 3
        out[7, i] = a // b
        out[8, i] = a % b


@pytest.mark.parametrize(
    "a, b",
    [(I64.max, 1), (I64.min, -2), (I64.max, I64.max), (I64.min, 3), (3037000500, -3037000499),
     (-7, 2), (2**40 + 3, 2**33 - 1)],
)
def test_folded_int64_arithmetic_wraps_like_numpy(backend, a, b):
    out = np.zeros((9, N), dtype=np.int64)
    int64_ops(a, b, out, N, opts=opts(backend))
    A, B = np.int64(a), np.int64(b)
    with np.errstate(over="ignore"):
        expected = [A + B, A - B, A * B, -A, A * A * A, A << np.int64(5), A >> np.int64(3),
                    A // B, A % B]
    for k, e in enumerate(expected):
        np.testing.assert_array_equal(out[k], np.full(N, e), err_msg=f"row {k}")


def cuda_opts(labels):
    o = parpy.par({k: parpy.threads(v) for k, v in labels.items()})
    o.backend = parpy.CompileBackend.Cuda
    return o


@parpy.jit
def axpy_from_far_below(a, x, y, N):
    parpy.label("N")
    for i in range(-9223372036854775807, N):
        y[i % N] = a * x[i % N] + y[i % N]  # in bounds (the index check sees no range for it)


@parpy.jit
def axpy_from_zero(a, x, y, N):
    parpy.label("N")
    for i in range(0, N):
        y[i] = a * x[i] + y[i]


def test_vectorizer_skips_loops_whose_count_overflows():
    # GPU code generation needs no GPU. The loop's trip count does not fit in int64: it stays a
    # scalar loop (the same loop from 0 gets a vector variant).
    x = np.zeros(4099, np.float32)
    code = parpy.print_compiled(axpy_from_far_below, [2.0, x, x.copy(), 4099], cuda_opts({"N": 1024}))
    assert "_vec(" not in code
    code = parpy.print_compiled(axpy_from_zero, [2.0, x, x.copy(), 4099], cuda_opts({"N": 1024}))
    assert "_vec(" in code


@parpy.jit
def split_nest_far_below(x, out, N, M):
    parpy.label("i")
    for i in range(-9223372036854775807, N):  # @far
        s = x[i % N, 0]
        parpy.label("j")
        for j in range(M):
            out[i % N, j] = x[i % N, j] * s
        parpy.label("j")
        for j in range(M):
            out[i % N, j] = out[i % N, j] + s


def test_split_nest_with_bounds_too_far_apart_is_an_error():
    # More than 1024 inner threads split the nest into kernels, with one device array element per
    # outer iteration for s: their number must fit in int64 (it wrapped to 0 before).
    x = np.zeros((4, 4096))
    with pytest.raises(RuntimeError) as e:
        parpy.print_compiled(split_nest_far_below, [x, x.copy(), 4, 4096], cuda_opts({"i": 4, "j": 2048}))
    msg = str(e.value)
    assert msg.startswith("The bounds of this parallel loop are too far apart: its number of "
                          "iterations does not fit in 64 bits. Use a smaller range.")
    assert "for i in range(-9223372036854775807, N):  # @far" in msg and "^" in msg


@parpy.jit
def fill_ones(x, N):
    parpy.label("N")
    for i in range(N):
        x[i] = 1.0


@parpy.jit
def fill_ones_2d(x, N, M):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        for j in range(M):
            x[i, j] = 1.0


@pytest.mark.parametrize("threads", [I64.max, I64.max - 20, 2**41 + 1])
def test_huge_thread_counts_are_a_grid_size_error(threads):
    # The block count was computed as (n + 31) / 32 * 32 and so on in int64: it overflowed.
    with pytest.raises(RuntimeError, match="thread blocks, more than a GPU grid can hold"):
        parpy.print_compiled(fill_ones, [np.zeros(8), 8], cuda_opts({"N": threads}))
    with pytest.raises(RuntimeError, match="thread blocks, more than a GPU grid can hold"):
        parpy.print_compiled(fill_ones_2d, [np.zeros((2, 2)), 2, 2], cuda_opts({"N": threads, "M": threads}))
