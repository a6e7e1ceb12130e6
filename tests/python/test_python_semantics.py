"""Arithmetic that follows Python's (and numpy's) rules at the edges: float // and % with
infinities, NaN, signed zeros and negative operands; integer ** with negative exponents
(docs/language.md, Types)."""

import itertools

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy import CompileBackend
from parpy import operators as op

LOCATIONS = SourceLocations(__file__)
loc = LOCATIONS.loc
needs_gpu = pytest.mark.skipif(not parpy.backend.is_enabled(CompileBackend.Cuda), reason="no CUDA GPU here")


def opts(backend, **labels):
    o = parpy.par({k: parpy.threads(v) for k, v in labels.items()})
    o.backend = backend
    return o


def assert_same_floats(actual, expected):
    """Every element equal, NaN where NaN, and zeros of the same sign."""
    np.testing.assert_array_equal(actual, expected)
    np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected))


# ----- float // and % ---------------------------------------------------------------------------


@parpy.jit
def float_floordiv_mod(a, b, q, r, N):
    parpy.label("N")
    for i in range(N):
        q[i] = a[i] // b[i]
        r[i] = a[i] % b[i]


SPECIAL = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 7.0, -7.0, 0.1, -0.1, 5.5, 1e4]


def special_pairs(dtype):
    a, b = zip(*itertools.product(SPECIAL, SPECIAL))
    return np.array(a, dtype), np.array(b, dtype)


def random_pairs(dtype, n=1000):
    a = (np.random.randn(n) * 50).astype(dtype)
    b = (np.random.randn(n) * 5).astype(dtype)
    b[b == 0] = dtype(1)
    a[::7] = np.round(a[::7])  # exact multiples: zero remainders of either sign
    b[::7] = dtype(1)
    return a, b


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("pairs", [special_pairs, random_pairs])
def test_float_floordiv_and_mod_match_numpy(backend, dtype, pairs):
    # numpy's floor_divide and remainder: inf // 2.0 and inf % 2.0 are nan, a zero remainder takes
    # the divisor's sign, and x // 0.0 is x / 0.0 (Python raises ZeroDivisionError there).
    a, b = pairs(dtype)
    q = np.zeros_like(a)
    r = np.zeros_like(a)
    float_floordiv_mod(a, b, q, r, len(a), opts=opts(backend, N=len(a)))
    with np.errstate(all="ignore"):
        assert_same_floats(q, np.floor_divide(a, b))
        assert_same_floats(r, np.remainder(a, b))


def test_float64_floordiv_and_mod_match_python(backend):
    a, b = special_pairs(np.float64)
    keep = b != 0  # Python raises for a zero divisor
    a, b = a[keep], b[keep]
    q = np.zeros_like(a)
    r = np.zeros_like(a)
    float_floordiv_mod(a, b, q, r, len(a), opts=opts(backend, N=len(a)))
    assert_same_floats(q, [float(x) // float(y) for x, y in zip(a, b)])
    assert_same_floats(r, [float(x) % float(y) for x, y in zip(a, b)])
    # The cases from the issue, by name.
    assert np.isnan(q[(a == np.inf) & (b == 2.0)]).all()
    assert q[(a == -7.0) & (b == 2.0)][0] == -4.0 and r[(a == -7.0) & (b == 2.0)][0] == 1.0
    assert q[(a == 7.0) & (b == -2.0)][0] == -4.0 and r[(a == 7.0) & (b == -2.0)][0] == -1.0
    assert q[(a == 1.0) & (b == 0.1)][0] == 9.0  # not floor(1.0 / 0.1) == 10.0


# ----- integer ** ---------------------------------------------------------------------------------


@parpy.jit
def int_negative_literal_powers(k, y1, y2, y3, N):
    parpy.label("N")
    for i in range(N):
        y1[i] = k[i] ** -1
        y2[i] = k[i] ** -3 + 2 ** -1
        y3[i] = 2 ** -2


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_int_to_negative_literal_power_is_a_float(backend, dtype):
    # In Python an int to a negative power is a float: 2 ** -1 is 0.5, not 0.
    k = np.random.randint(-60, 60, 500).astype(dtype)
    k[k == 0] = 3  # 0 ** -1 raises in Python
    y1, y2, y3 = np.zeros(500), np.zeros(500), np.zeros(500)
    int_negative_literal_powers(k, y1, y2, y3, 500, opts=opts(backend, N=500))
    np.testing.assert_array_equal(y1, [int(v) ** -1 for v in k])
    np.testing.assert_array_equal(y2, [int(v) ** -3 + 2**-1 for v in k])
    np.testing.assert_array_equal(y3, np.full(500, 0.25))


@parpy.jit
def int_scalar_power(k, e, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = op.float64(k[i] ** e)


@pytest.mark.parametrize("e", [-2, -1, 0, 1, 3])
def test_int_to_scalar_power_follows_the_sign_of_the_value(backend, e):
    # The scalar is compiled in: a negative one makes the power a float, a non-negative one an int.
    k = np.random.randint(1, 12, 300) * np.random.choice([-1, 1], 300)
    y = np.zeros(300)
    int_scalar_power(k, e, y, 300, opts=opts(backend, N=300))
    np.testing.assert_array_equal(y, [float(int(v) ** e) for v in k])


@parpy.jit
def int_loop_variable_powers(k, y, N):
    parpy.label("N")
    for i in range(N):
        for j in range(3, 0, -1):
            y[i, j] = k[i] ** j + 2 ** (i % 40) + k[i] ** op.max(k[(i + 1) % N], 0) + k[i] ** op.abs(k[i])


def test_int_powers_with_non_negative_exponents_stay_ints(backend):
    k = np.random.randint(-5, 6, 200)
    y = np.zeros((200, 4), np.int64)
    int_loop_variable_powers(k, y, 200, opts=opts(backend, N=200))
    want = np.zeros((200, 4), np.int64)
    for i in range(200):
        for j in range(3, 0, -1):
            a, b = int(k[i]), int(k[(i + 1) % 200])
            want[i, j] = a**j + 2 ** (i % 40) + a ** max(b, 0) + a ** abs(a)
    np.testing.assert_array_equal(y, want)


def test_int_power_with_an_exponent_of_unknown_sign_is_an_error():
    @parpy.jit
    def f(x, k, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = x[i] ** k[i]  # @pow_unknown_sign

    @parpy.jit
    def g(x, y, N):
        parpy.label("N")
        for i in range(N):
            e = 2
            y[i] = x[i] ** e  # @pow_local

    msg = ("The exponent of an integer ** may be negative, and a negative exponent makes the result a float "
           "(2 ** -1 is 0.5), so the result's type is not known when compiling.\nUse an exponent known when "
           "compiling (a literal or a scalar argument), one that is never negative "
           "(parpy.operators.max(k, 0), a loop variable counting up from 0), or a float base "
           "(parpy.operators.float64(x) ** k).")
    x = np.arange(4)
    with pytest.raises(TypeError) as e:
        f(x, x, x.copy(), 4, opts=opts(CompileBackend.Cpu, N=4))
    assert str(e.value) == loc(msg, "pow_unknown_sign", "x[i] ** k[i]")
    with pytest.raises(TypeError) as e:
        g(x, x.copy(), 4, opts=opts(CompileBackend.Cpu, N=4))
    assert str(e.value) == loc(msg, "pow_local", "x[i] ** e")


@parpy.jit
def int_device_scalar_power(k, e, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = op.float64(k[i] ** e)


@needs_gpu
def test_int_power_with_a_cuda_zero_dim_exponent_is_specialised():
    # The exponent's sign decides the result's type: its value is read at call time.
    torch = pytest.importorskip("torch")
    k = np.random.randint(1, 9, 300)
    for e in (-2, 3, -2):
        y = torch.zeros(300, dtype=torch.float64, device="cuda")
        int_device_scalar_power(torch.from_numpy(k).cuda(), torch.tensor(e, device="cuda"), y, 300,
                                opts=opts(CompileBackend.Cuda, N=300))
        np.testing.assert_array_equal(y.cpu().numpy(), [float(int(v) ** e) for v in k])
    assert int_device_scalar_power._cache_size() == 2
