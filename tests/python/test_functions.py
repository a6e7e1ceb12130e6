# ruff: noqa: F811, F821
"""Jit helpers called in expressions (docs/language.md, Functions) on every enabled backend: printed
as static inline C++ functions (Cpu) or __device__ functions (Cuda), typed from their annotations,
and resolved when the caller is decorated."""


import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy.types import F16, F32, F64, I8, I64, U16, Bool, pointer
from common import make_opts

LOCATIONS = SourceLocations(__file__)
THIS, SRC = LOCATIONS.path, LOCATIONS.src
_line, loc, loc_lines = LOCATIONS.line, LOCATIONS.loc, LOCATIONS.loc_lines

RNG = np.random.default_rng(7)


pytestmark = pytest.mark.usefixtures("fresh_cache")


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


@parpy.jit
def add(a: F32, b: F32):
    return a + b


@parpy.jit
def mul(a: F32, b: F32):
    return a * b


def test_scalar_helper(backend):
    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = add(x[i], y[i])

    x, y = rand(1000), rand(1000)
    expected = x + y
    f(x, y, 1000, opts=make_opts(backend, N=8))
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    code = parpy.print_compiled(f, [x, y, 1000], make_opts(backend, N=8))
    assert "inline float parpy_helper_add(float v_a, float v_b)" in code


def test_nested_calls_and_weak_literal(backend):
    @parpy.jit
    def f(x, y, z, N):
        parpy.label("N")
        for i in range(N):
            z[i] = mul(add(x[i], y[i]), 2) + add(z[i], 1.5)

    x, y, z = rand(257), rand(257), rand(257)
    expected = (x + y) * 2 + (z + np.float32(1.5))
    f(x, y, z, 257, opts=make_opts(backend, N=4))
    np.testing.assert_allclose(z, expected, rtol=1e-6)
    code = parpy.print_compiled(f, [x, y, z, 257], make_opts(backend, N=4))
    assert "double" not in code.split("extern")[0]


def test_helper_in_slice_statement(backend):
    @parpy.jit
    def f(x, y):
        parpy.label("N")
        y[:] = add(x[:], y[:])

    @parpy.jit
    def g(x, y):
        parpy.label("N")
        parpy.label("M")
        y[:, :] = mul(x[:, :], add(y[:, :], x[:, :]))

    x, y = rand(300), rand(300)
    expected = x + y
    f(x, y, opts=make_opts(backend, N=4))
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    a, b = rand(20, 30), rand(20, 30)
    expected = a * (b + a)
    g(a, b, opts=make_opts(backend, N=4))
    np.testing.assert_allclose(b, expected, rtol=1e-5)


@parpy.jit
def row_total(r: pointer(F32), n: I64):
    s = 0.0
    for j in range(n):
        s = s + r[j]
    return s


def test_pointer_parameter_row_and_array(backend):
    @parpy.jit
    def f(x, out, total, N, M):
        parpy.label("N")
        for i in range(N):
            out[i] = row_total(x[i], M)
        with parpy.gpu:
            total[0] = row_total(out, N)

    x = rand(37, 53)
    out = np.zeros(37, np.float32)
    total = np.zeros(1, np.float32)
    f(x, out, total, 37, 53, opts=make_opts(backend, N=4))
    np.testing.assert_allclose(out, x.astype(np.float64).sum(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(total[0], out.astype(np.float64).sum(), rtol=1e-4, atol=1e-4)


def test_same_row_for_every_iteration(backend):
    @parpy.jit
    def f(x, y, out, N):
        parpy.label("N")
        for i in range(N):
            out[i] = row_total(x[0], 8) + y[i]

    x, y = rand(4, 8), rand(4096)
    out = np.zeros(4096, np.float32)
    f(x, y, out, 4096, opts=make_opts(backend, N=1024))
    expected = (x[0].astype(np.float64).sum() + y.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_helper_with_control_flow_and_declared_return(backend):
    @parpy.jit
    def clamp(v: F64, lo: F64, hi: F64) -> F64:
        if v < lo:
            return lo
        elif v > hi:
            return hi
        return v

    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = clamp(x[i], -0.5, 0.5)

    x = rand(500, dtype=np.float64)
    expected = np.clip(x, -0.5, 0.5)
    f(x, 500, opts=make_opts(backend, N=4))
    np.testing.assert_array_equal(x, expected)


def test_redefining_helper_keeps_existing_callers(backend):
    @parpy.jit
    def h(a: F32):
        return a + 1.0

    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = h(x[i])

    @parpy.jit
    def h(a: F32):
        return a * 10.0

    @parpy.jit
    def g(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = h(x[i])

    x = np.ones(10, np.float32)
    f(x, 10, opts=make_opts(backend, N=2))
    np.testing.assert_array_equal(x, np.full(10, 2.0, np.float32))
    g(x, 10, opts=make_opts(backend, N=2))
    np.testing.assert_array_equal(x, np.full(10, 20.0, np.float32))


def test_same_name_helpers_in_one_program(backend):
    @parpy.jit
    def h(a: F32):
        return a + 1.0

    @parpy.jit
    def k(a: F32):
        return h(a) * 2.0

    @parpy.jit
    def h(a: F32):
        return a - 1.0

    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = k(x[i]) + h(x[i])

    x, y = rand(64), rand(64)
    f(x, y, 64, opts=make_opts(backend, N=2))
    np.testing.assert_allclose(y, (x + 1) * 2 + (x - 1), rtol=1e-6)


@parpy.jit
def scale_row(r: pointer(F32), n: I64, v: F32):
    for j in range(n):
        r[j] = r[j] * v + 1.0
    return n


@parpy.jit
def scale_row_twice(r: pointer(F32), n: I64, v: F32):
    return scale_row(r, n, v) * 2


def test_helper_writes_through_pointer(backend):
    # x is written only inside the helper (through a row passed to a pointer parameter, then
    # passed on to another helper): a GPU backend must still copy it back
    # (docs/gpu.md, Data, streams and devices).
    @parpy.jit
    def f(x, counts, N, M):
        parpy.label("N")
        for i in range(N):
            counts[i] = scale_row_twice(x[i], M, 3.0)

    x = rand(40, 17)
    counts = np.zeros(40, np.int64)
    expected = x * np.float32(3) + np.float32(1)
    f(x, counts, 40, 17, opts=make_opts(backend, N=40))
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(counts, np.full(40, 34))


@parpy.jit
def sq(a: F32):
    return a * a


def test_helper_in_parallel_reduction(backend):
    @parpy.jit
    def f(x, out, N, M):
        parpy.label("N")
        for i in range(N):
            out[i] = 0.0
            parpy.label("M")
            for j in range(M):
                out[i] += sq(x[i, j])

    x = rand(50, 300)
    out = np.full(50, 7.0, np.float32)
    opts = parpy.par({"N": parpy.threads(50), "M": parpy.threads(128).reduce()})
    opts.backend = backend
    f(x, out, 50, 300, opts=opts)
    np.testing.assert_allclose(out, (x.astype(np.float64) ** 2).sum(axis=1), rtol=1e-4)


@parpy.jit
def affine_i8(a: I8, b: I8):
    return a * b + 3


@parpy.jit
def mix_u16(a: U16, b: U16):
    return (a - b) // 3 + a % 7


@parpy.jit
def lerp_f16(a: F16, b: F16, t: F16):
    return a + (b - a) * t


@parpy.jit
def xor_bool(a: Bool, b: Bool):
    return (a or b) and not (a and b)


def test_helpers_of_small_element_types(backend):
    @parpy.jit
    def f(a8, b8, o8, a16, b16, o16, ah, bh, th, oh, ab, bb, ob, N):
        parpy.label("N")
        for i in range(N):
            o8[i] = affine_i8(a8[i], b8[i])
            o16[i] = mix_u16(a16[i], b16[i])
            oh[i] = lerp_f16(ah[i], bh[i], th[i])
            ob[i] = xor_bool(ab[i], bb[i])

    n = 300
    a8, b8 = RNG.integers(-128, 128, n).astype(np.int8), RNG.integers(-128, 128, n).astype(np.int8)
    a16, b16 = RNG.integers(0, 65536, n).astype(np.uint16), RNG.integers(0, 65536, n).astype(np.uint16)
    ah, bh = rand(n, dtype=np.float16), rand(n, dtype=np.float16)
    th = RNG.uniform(0, 1, n).astype(np.float16)
    ab, bb = RNG.integers(0, 2, n).astype(np.bool_), RNG.integers(0, 2, n).astype(np.bool_)
    o8, o16, oh, ob = np.zeros(n, np.int8), np.zeros(n, np.uint16), np.zeros(n, np.float16), np.zeros(n, np.bool_)
    f(a8, b8, o8, a16, b16, o16, ah, bh, th, oh, ab, bb, ob, n, opts=make_opts(backend, N=n))
    np.testing.assert_array_equal(o8, a8 * b8 + np.int8(3))
    np.testing.assert_array_equal(o16, (a16 - b16) // np.uint16(3) + a16 % np.uint16(7))
    a32, b32, t32 = ah.astype(np.float32), bh.astype(np.float32), th.astype(np.float32)
    np.testing.assert_allclose(oh.astype(np.float32), a32 + (b32 - a32) * t32, rtol=1e-2, atol=1e-2)
    np.testing.assert_array_equal(ob, ab ^ bb)


# ----- errors ---------------------------------------------------------------------------------


def test_conflicting_return_types(backend):
    @parpy.jit
    def h(a: F32, b: I64):
        if a > 0.0:
            return a
        return b  # @conflict

    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = h(x[i], i)

    with pytest.raises(TypeError) as e:
        f(np.zeros(4, np.float32), 4, opts=make_opts(backend, N=2))
    assert str(e.value) == loc("Found conflicting types of return statements", "conflict", "b")


def test_unannotated_parameters(backend):
    @parpy.jit
    def h(x, y: F32, z):
        return y

    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = h(x[i], x[i], x[i])

    with pytest.raises(TypeError) as e:
        f(np.zeros(4, np.float32), 4, opts=make_opts(backend, N=2))
    assert str(e.value).startswith("Parameters x, z of function h have unknown type.\nMake sure to annotate")


def test_incompatible_argument_type(backend):
    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            x[i] = add(x[i], y[i])  # @incompat

    with pytest.raises(TypeError) as e:
        f(np.zeros(4, np.float32), np.zeros(4, np.int32), 4, opts=make_opts(backend, N=2))
    inner = "Expected element of type float32, found incompatible element type int32."
    assert str(e.value) == loc("Found incompatible types in function call:\n" + inner, "incompat", "y[i]")


def test_pointer_argument_of_wrong_element_type(backend):
    @parpy.jit
    def f(x, out, N, M):
        parpy.label("N")
        for i in range(N):
            out[i] = row_total(x[i], M)  # @ptr_incompat

    with pytest.raises(TypeError) as e:
        f(np.zeros((4, 4), np.float64), np.zeros(4, np.float64), 4, 4, opts=make_opts(backend, N=2))
    inner = "Cannot unify incompatible types pointer to float32 and float64 array of shape (4,)"
    assert str(e.value) == loc("Found incompatible types in function call:\n" + inner, "ptr_incompat", "x[i]")


def test_parallel_code_in_helper(backend):
    @parpy.jit
    def h(a: F32):
        parpy.label("N")
        b = a * 2.0  # @par_helper
        return b

    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = h(x[i])

    with pytest.raises(RuntimeError) as e:
        f(np.zeros(4, np.float32), 4, opts=make_opts(backend, N=2))
    msg = "Found parallel code outside main function definition, which is not allowed."
    assert str(e.value) == loc(msg, "par_helper", "b = a * 2.0")


def test_wrong_argument_count(backend):
    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = add(x[i])  # @argc

    with pytest.raises(RuntimeError) as e:
        f(np.zeros(4, np.float32), 4, opts=make_opts(backend, N=2))
    assert str(e.value) == loc("Function add expected 2 arguments, but received 1.", "argc", "add(x[i])")


def test_unknown_function_at_first_call(backend):
    # Not bound at decoration (it could be a helper defined later): reported at the first call.
    @parpy.jit
    def f(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = not_defined_anywhere(x[i])  # @unknown_fn

    with pytest.raises(RuntimeError) as e:
        f(np.zeros(4, np.float32), 4, opts=make_opts(backend, N=2))
    msg = (
        "Call to unknown function not_defined_anywhere.\nA jit function can call the builtins of "
        "parpy.operators (exp, log, sin, cos, sqrt, tanh, atan2, abs, min, max, sum, prod and "
        "conversions such as float32), other @parpy.jit functions, and C functions declared with "
        "@parpy.external."
    )
    assert str(e.value) == loc(msg, "unknown_fn", "not_defined_anywhere(x[i])")


@parpy.jit
def calls_later_helper(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = later_helper(x[i])


@parpy.jit
def later_helper(a: F64) -> F64:
    return a * 2.0 + 1.0


def test_deferred_function_names_parameters_in_argument_errors(backend):
    # later_helper is unbound when calls_later_helper is decorated, so it is converted at its first
    # call: the arguments, checked first, were named through a function that did not exist yet.
    m = np.zeros((8, 2))
    with pytest.raises(RuntimeError, match=r"Argument #1 \(parameter x\) is a non-contiguous array, .* "
                                           r"shares memory with argument #2 \(parameter y\)"):
        calls_later_helper(m[:4, 0], m[::2, 0], 4, opts=make_opts(backend, N=4))
    x = np.random.rand(8)
    y = np.zeros(8)
    calls_later_helper(x, y, 8, opts=make_opts(backend, N=8))
    np.testing.assert_array_equal(y, x * 2.0 + 1.0)
