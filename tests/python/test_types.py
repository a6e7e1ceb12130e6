# ruff: noqa: F841
"""Every element type on every enabled backend, operators, builtins, control flow and the typing
rules of docs/language.md, Types (weakly typed Python numbers) and the force_*_size options."""

import os
import re

import numpy as np
import parpy
import pytest
from parpy import operators as op
from common import make_opts

RNG = np.random.default_rng(3)
N = 257
ALL = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
       np.uint64, np.float16, np.float32, np.float64]
NUMERIC = ALL[1:]


pytestmark = pytest.mark.usefixtures("fresh_cache")


def rand(dtype, n=N, lo=-50, hi=50):
    if dtype == np.bool_:
        return RNG.integers(0, 2, n).astype(np.bool_)
    if np.issubdtype(dtype, np.unsignedinteger):
        lo = 0
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(lo, hi, n).astype(dtype)
    return RNG.uniform(lo, hi, n).astype(dtype)


@parpy.jit
def copy_add(x, y, out, n):
    parpy.label("N")
    for i in range(n):
        out[i] = x[i] + y[i]


@pytest.mark.parametrize("dtype", NUMERIC)
def test_elementwise_add(backend, dtype):
    x, y = rand(dtype), rand(dtype)
    out = np.zeros(N, dtype)
    copy_add(x, y, out, N, opts=make_opts(backend, N=4))
    np.testing.assert_array_equal(out, (x + y).astype(dtype))


@parpy.jit
def bool_ops(a, b, out, n):
    parpy.label("N")
    for i in range(n):
        out[i] = (a[i] and not b[i]) or (a[i] == b[i])


def test_bool_arrays(backend):
    a, b = rand(np.bool_), rand(np.bool_)
    out = np.zeros(N, np.bool_)
    bool_ops(a, b, out, N, opts=make_opts(backend, N=2))
    np.testing.assert_array_equal(out, (a & ~b) | (a == b))


@parpy.jit
def compare(x, y, lt, eq, n):
    parpy.label("N")
    for i in range(n):
        lt[i] = x[i] < y[i]
        eq[i] = x[i] == y[i]


@pytest.mark.parametrize("dtype", NUMERIC)
def test_comparisons_produce_bool(backend, dtype):
    x, y = rand(dtype, lo=-3, hi=3), rand(dtype, lo=-3, hi=3)
    lt, eq = np.zeros(N, np.bool_), np.zeros(N, np.bool_)
    compare(x, y, lt, eq, N, opts=make_opts(backend, N=2))
    np.testing.assert_array_equal(lt, x < y)
    np.testing.assert_array_equal(eq, x == y)


@parpy.jit
def conversions(x, f16, f32, i8, u16, n):
    parpy.label("N")
    for i in range(n):
        f16[i] = op.float16(x[i])
        f32[i] = op.float32(x[i])
        i8[i] = op.int8(x[i])
        u16[i] = op.uint16(x[i])


def test_conversions(backend):
    x = rand(np.float64, lo=0, hi=100)
    f16, f32 = np.zeros(N, np.float16), np.zeros(N, np.float32)
    i8, u16 = np.zeros(N, np.int8), np.zeros(N, np.uint16)
    conversions(x, f16, f32, i8, u16, N, opts=make_opts(backend, N=2))
    np.testing.assert_array_equal(f16, x.astype(np.float16))
    np.testing.assert_array_equal(f32, x.astype(np.float32))
    np.testing.assert_array_equal(i8, x.astype(np.int8))
    np.testing.assert_array_equal(u16, x.astype(np.uint16))


@parpy.jit
def f16_sum(x, out, n):
    parpy.label("N")
    out[0] = op.sum(x[:])


def test_f16_reduction_accumulates_in_float(backend):
    x = RNG.uniform(0, 1, 4096).astype(np.float16)
    out = np.zeros(1, np.float16)
    f16_sum(x, out, 4096, opts=make_opts(backend, N=4))
    expected = x.astype(np.float32).sum()
    assert abs(float(out[0]) - expected) <= 0.01 * expected


@parpy.jit
def f16_math(x, y, out, n):
    parpy.label("N")
    for i in range(n):
        out[i] = x[i] * y[i] + op.sqrt(op.abs(x[i])) - op.max(x[i], y[i])


def test_f16_elementwise(backend):
    x, y = rand(np.float16, lo=-4, hi=4), rand(np.float16, lo=-4, hi=4)
    out = np.zeros(N, np.float16)
    f16_math(x, y, out, N, opts=make_opts(backend, N=2))
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    expected = x32 * y32 + np.sqrt(np.abs(x32)) - np.maximum(x32, y32)
    np.testing.assert_allclose(out.astype(np.float32), expected, rtol=1e-2, atol=2e-2)


@parpy.jit
def unsigned_ops(a, b, out, n):
    parpy.label("N")
    for i in range(n):
        out[i] = (a[i] - b[i]) * a[i] + a[i] // (b[i] + 1) + a[i] % (b[i] + 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_unsigned_arithmetic_wraps(backend, dtype):
    a, b = rand(dtype, lo=0, hi=200), rand(dtype, lo=0, hi=200)
    out = np.zeros(N, dtype)
    unsigned_ops(a, b, out, N, opts=make_opts(backend, N=2))
    with np.errstate(over="ignore"):
        expected = (a - b) * a + a // (b + dtype(1)) + a % (b + dtype(1))
    np.testing.assert_array_equal(out, expected.astype(dtype))


@parpy.jit
def bit_ops(a, b, out, n):
    parpy.label("N")
    for i in range(n):
        out[i] = ((a[i] & b[i]) | (a[i] ^ 5)) + (a[i] << 2) + (b[i] >> 1) + ~a[i]


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint32])
def test_bitwise_and_shifts(backend, dtype):
    a, b = rand(dtype, lo=0, hi=1000), rand(dtype, lo=0, hi=1000)
    out = np.zeros(N, dtype)
    bit_ops(a, b, out, N, opts=make_opts(backend, N=2))
    with np.errstate(over="ignore"):
        expected = ((a & b) | (a ^ dtype(5))) + (a << dtype(2)) + (b >> dtype(1)) + ~a
    np.testing.assert_array_equal(out, expected.astype(dtype))


@parpy.jit
def powers(x, k, xo, ko, n):
    parpy.label("N")
    for i in range(n):
        xo[i] = x[i] ** 2.5
        ko[i] = k[i] ** 3


def test_pow_on_floats_and_ints(backend):
    x = rand(np.float64, lo=0, hi=5)
    k = rand(np.int64, lo=-20, hi=20)
    xo, ko = np.zeros(N), np.zeros(N, np.int64)
    powers(x, k, xo, ko, N, opts=make_opts(backend, N=2))
    np.testing.assert_allclose(xo, x**2.5, rtol=1e-14)
    np.testing.assert_array_equal(ko, k**3)


@parpy.jit
def builtins_f32(x, y, out, n):
    parpy.label("N")
    for i in range(n):
        out[i] = op.atan2(x[i], y[i]) + op.tanh(x[i]) + op.sqrt(op.abs(y[i])) + op.min(x[i], y[i])


def test_builtins_f32(backend):
    x, y = rand(np.float32, lo=-3, hi=3), rand(np.float32, lo=-3, hi=3)
    out = np.zeros(N, np.float32)
    builtins_f32(x, y, out, N, opts=make_opts(backend, N=2))
    expected = np.arctan2(x, y) + np.tanh(x) + np.sqrt(np.abs(y)) + np.minimum(x, y)
    # atan2f and tanhf may be a few ulp off (CUDA documents 3 and 2); the sum can cancel.
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=4e-6)


@parpy.jit
def control_flow(x, out, n):
    parpy.label("N")
    for i in range(n):
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


def test_while_if_elif_else_and_if_expression(backend):
    x = rand(np.int64, lo=0, hi=64)
    out = np.zeros(N, np.int64)
    control_flow(x, out, N, opts=make_opts(backend, N=4))

    def py(v):
        steps = 0
        w = v
        while w > 1:
            w //= 2
            steps += 1
        if steps == 0:
            return -1
        if steps < 4:
            return steps if v % 2 == 0 else -steps
        return 100

    np.testing.assert_array_equal(out, [py(int(v)) for v in x])


@parpy.jit
def nested(x, out, n, m):
    parpy.label("N")
    for i in range(n):
        parpy.label("M")
        for j in range(m):
            out[i, j] = x[i, j] * 2 + op.float64(i - j)


def test_nested_labelled_loops(backend):
    x = RNG.standard_normal((31, 45))
    out = np.zeros((31, 45))
    nested(x, out, 31, 45, opts=make_opts(backend, N=4, M=8))
    i, j = np.meshgrid(np.arange(31), np.arange(45), indexing="ij")
    np.testing.assert_allclose(out, x * 2 + (i - j), rtol=1e-15)


@parpy.jit
def scale(x, a, n):
    parpy.label("N")
    for i in range(n):
        x[i] = x[i] * 2 + a * x[i] - 0.5


def parallel_code(code, backend):
    """The generated parallel code: the OpenMP loop (Cpu) or the kernels (Cuda)."""
    if backend == parpy.CompileBackend.Cuda:
        # The kernels come before the host function (static int32_t v_<name>), which holds the
        # scalar parameters in their own types; a kernel's parameter list keeps them too (a
        # Python float arrives as a double and is converted where it is used).
        kernels = code.split("__global__", 1)[1].split("static int32_t v_")[0]
        return "\n".join(l for l in kernels.splitlines() if "__launch_bounds__" not in l)
    return code.split("#pragma omp")[1].split("return 0;")[0]


def test_weak_literals_keep_f32(backend):
    x = rand(np.float32, lo=-1, hi=1)
    expected = x * np.float32(2) + np.float32(1.5) * x - np.float32(0.5)
    code = parpy.print_compiled(scale, [x, 1.5, N], make_opts(backend, N=2))
    assert "double" not in parallel_code(code, backend)
    scale(x, 1.5, N, opts=make_opts(backend, N=2))
    # A fused multiply-add rounds once where numpy rounds twice.
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)


@parpy.jit
def literals(out):
    with parpy.gpu:
        out[0] = 7
        out[1] = 2.5 + 1


def test_force_sizes(backend):
    opts = make_opts(backend)
    opts.force_int_size = parpy.types.I32
    opts.force_float_size = parpy.types.F32

    @parpy.jit
    def f(k, x, out):
        with parpy.gpu:
            v = k + 1
            w = x * 2.0
            out[0] = op.float64(v) + op.float64(w)

    code = parpy.print_compiled(f, [3, 0.25, np.zeros(1)], opts)
    assert "int32_t v_v;" in code and "float v_w;" in code
    out = np.zeros(1)
    f(3, 0.25, out, opts=opts)
    assert out[0] == 4.5


def test_mixing_kinds_is_a_type_error(backend):
    @parpy.jit
    def f(x, y, n):
        parpy.label("N")
        for i in range(n):
            x[i] = x[i] + y[i]

    with pytest.raises(TypeError, match="Incompatible element types"):
        f(np.zeros(4, np.int32), np.zeros(4, np.uint32), 4, opts=make_opts(backend, N=2))


# ----- constant folding of ** and dict values (with error locations) ----------------------------

THIS = os.path.abspath(__file__)
with open(THIS) as _fh:
    SRC = _fh.read().splitlines()


def loc(msg, tag, text):
    n = next(i + 1 for i, s in enumerate(SRC) if re.search(f"# @{tag}(\\s|$)", s))
    col = SRC[n - 1].split("# @")[0].index(text)
    return f"{msg}\n\nOn line {n} of file {THIS}:\n{SRC[n - 1]}\n{' ' * col}{'^' * len(text)}\n"


def test_integer_pow_is_folded(backend):
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[2**3 - 1] = 2**10 + 3**0

    x = np.zeros(8, np.int64)
    code = parpy.print_compiled(f, [x], make_opts(backend))
    assert "x[7] = 1025;" in code
    f(x, opts=make_opts(backend))
    assert x[7] == 1025


def test_folded_pow_index_is_range_checked(backend):
    @parpy.jit
    def f(x):
        with parpy.gpu:
            x[2**4] = 1.0  # @pow_index

    with pytest.raises(TypeError) as e:
        f(np.zeros(8), opts=make_opts(backend))
    assert str(e.value) == loc("Index 16 out of range for shape 8", "pow_index", "2**4")


def test_dict_parameter_as_value(backend):
    @parpy.jit
    def f(x, d):
        with parpy.gpu:
            y = d  # @dict_value
            x[0] = d["a"]

    with pytest.raises(RuntimeError) as e:
        f(np.zeros(2), {"a": 1.0}, opts=make_opts(backend))
    assert str(e.value).startswith("Encountered unknown dictionary type ")
    assert "\n\nOn line " in str(e.value) and str(e.value).endswith(
        loc("", "dict_value", "d").split("\n\n", 1)[1]
    )
