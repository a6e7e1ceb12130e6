"""Arithmetic that follows Python's (and numpy's) rules at the edges: float // and % with
infinities, NaN, signed zeros and negative operands; integer ** with negative exponents
(docs/language.md, Types); `range` loops whose bounds or steps reach the ends of int64."""

import importlib.util
import itertools
import pathlib
import tempfile

import numpy as np
import parpy
import pytest
from locations import SourceLocations
from parpy import CompileBackend
from parpy import operators as op
from test_cuda_language import needs_nvcc, nvcc_compile

LOCATIONS = SourceLocations(__file__)
loc = LOCATIONS.loc
needs_gpu = pytest.mark.skipif(not parpy.backend.is_enabled(CompileBackend.Cuda), reason="no CUDA GPU here")


def opts(backend, **labels):
    o = parpy.par({k: parpy.threads(v) for k, v in labels.items()})
    o.backend = backend
    return o


def assert_same_floats(actual, expected):
    """Every element equal, NaN where NaN, and zeros of the same sign (a NaN's sign bit is not part
    of Python's or numpy's semantics: it differs between CPU and GPU instructions)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    np.testing.assert_array_equal(actual, expected)
    numbers = ~np.isnan(expected)
    np.testing.assert_array_equal(np.signbit(actual[numbers]), np.signbit(expected[numbers]))


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
    # CUDA's pow may differ from Python's in the last bit.
    np.testing.assert_allclose(y1, [int(v) ** -1 for v in k], rtol=5e-16, atol=0)
    np.testing.assert_allclose(y2, [int(v) ** -3 + 2**-1 for v in k], rtol=5e-16, atol=0)
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
    np.testing.assert_allclose(y, [float(int(v) ** e) for v in k], rtol=5e-16, atol=0)  # CUDA's pow: last bit


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
        np.testing.assert_allclose(y.cpu().numpy(), [float(int(v) ** e) for v in k], rtol=5e-16, atol=0)
    assert int_device_scalar_power._cache_size() == 2


# ----- range near the ends of int64 -----------------------------------------------------------------

I64_MAX, I64_MIN = 2**63 - 1, -(2**63)
# (lo, hi, step): the value after the last one, lo + k * step, is beyond int64; or the span is.
EDGE_RANGES = [
    (I64_MAX - 10, I64_MAX, 7),
    (I64_MAX - 10, I64_MAX - 1, 7),
    (I64_MAX - 1, I64_MAX, 3),
    (I64_MAX - 3, I64_MAX, 1),
    (0, I64_MAX, 2**62),
    (-5, I64_MAX, 2**62 + 1),
    (I64_MIN + 10, I64_MIN, -7),
    (I64_MIN + 2, I64_MIN, -2**62),
    (I64_MAX, 0, -2**62),
    (I64_MIN, I64_MAX, 2**63 - 1),
    (I64_MAX, I64_MIN, -(2**63 - 1)),
    (5, 5, 3),
    (I64_MAX, I64_MAX - 4, 2),
    (3, 20, 4),
]
W = 8  # room for every range above


def range_functions(step):
    """Jit functions over range(lo, hi, step) for a literal step: sequential, parallel, reduction."""
    src = f"""
import parpy


@parpy.jit
def seq(out, count, lo, hi):
    parpy.label("N")
    for q in range(1):
        c = 0
        for i in range(lo, hi, {step}):
            out[c] = i
            c += 1
        count[0] = c


@parpy.jit
def par(out, lo, hi):
    parpy.label("N")
    for i in range(lo, hi, {step}):
        out[(i - lo) // {step}] = i


@parpy.jit
def red(count, total, lo, hi):
    parpy.label("R")
    for i in range(lo, hi, {step}):
        count[0] += 1
    parpy.label("R")
    for i in range(lo, hi, {step}):
        total[0] += i % 1000003


@parpy.jit
def rows(out, b, R):
    parpy.label("N")
    for r in range(R):
        parpy.label("I")
        for i in range(b[r, 0], b[r, 1], {step}):
            out[r, (i - b[r, 0]) // {step}] = i
"""
    path = _MODULE_DIR / f"ranges_{abs(step)}_{'n' if step < 0 else 'p'}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_MODULE_DIR = pathlib.Path(tempfile.mkdtemp(prefix="parpy-ranges-"))
_RANGE_FUNCTIONS = {}


def range_fns(step):
    if step not in _RANGE_FUNCTIONS:
        _RANGE_FUNCTIONS[step] = range_functions(step)
    return _RANGE_FUNCTIONS[step]


def range_opts(backend):
    o = parpy.par({"N": parpy.threads(4), "R": parpy.threads(4).reduce(), "I": parpy.threads(32)})
    o.backend = backend
    return o


@pytest.mark.parametrize("lo,hi,step", EDGE_RANGES)
def test_sequential_range_near_int64_ends(backend, lo, hi, step):
    want = list(range(lo, hi, step))
    out = np.zeros(W, np.int64)
    count = np.zeros(1, np.int64)
    range_fns(step).seq(out, count, lo, hi, opts=range_opts(backend))
    assert count[0] == len(want)
    np.testing.assert_array_equal(out[: len(want)], want)


@pytest.mark.parametrize("lo,hi,step", EDGE_RANGES)
def test_parallel_range_near_int64_ends(backend, lo, hi, step):
    want = list(range(lo, hi, step))
    if any(not I64_MIN <= i - lo <= I64_MAX for i in want):
        pytest.skip("i - lo is beyond int64")
    out = np.zeros(W, np.int64)
    range_fns(step).par(out, lo, hi, opts=range_opts(backend))
    np.testing.assert_array_equal(out[: len(want)], want)
    count = np.zeros(1, np.int64)
    total = np.zeros(1, np.int64)
    range_fns(step).red(count, total, lo, hi, opts=range_opts(backend))
    assert count[0] == len(want)
    assert total[0] == sum(i % 1000003 for i in want)


@pytest.mark.parametrize("step", [1, 7, -3, 2**62])
def test_range_with_bounds_read_at_run_time(backend, step):
    # Bounds from an array: the kernels and SIMD loops cannot check them when compiling.
    bounds = [(lo, hi) for lo, hi, _ in EDGE_RANGES] + [(0, 40 * step), (-100, 100), (100, -100)]
    ranges = [(lo, hi) for lo, hi in bounds if range(lo, hi, step)[40:] == range(0)]
    ranges = [(lo, hi) for lo, hi in ranges if all(I64_MIN <= i - lo <= I64_MAX for i in range(lo, hi, step))]
    assert len(ranges) >= 6
    b = np.array(ranges, np.int64)
    out = np.zeros((len(b), 40), np.int64)
    range_fns(step).rows(out, b, len(b), opts=range_opts(backend))
    for r, (lo, hi) in enumerate(ranges):
        want = list(range(lo, hi, step))
        np.testing.assert_array_equal(out[r, : len(want)], want)
        assert not out[r, len(want):].any()


@needs_nvcc
@pytest.mark.parametrize("step", [7, -3, 1])
def test_cuda_ranges_near_int64_ends_compile(step, tmp_path):
    o = range_opts(CompileBackend.Cuda)
    fns = range_fns(step)
    lo, hi = (I64_MAX - 10, I64_MAX) if step > 0 else (I64_MIN + 10, I64_MIN)
    b = np.zeros((4, 2), np.int64)
    for fun, args in [(fns.seq, [np.zeros(W, np.int64), np.zeros(1, np.int64), lo, hi]),
                      (fns.par, [np.zeros(W, np.int64), lo, hi]),
                      (fns.red, [np.zeros(1, np.int64), np.zeros(1, np.int64), lo, hi]),
                      (fns.rows, [np.zeros((4, 40), np.int64), b, 4])]:
        code = parpy.print_compiled(fun, args, o)
        if fun is fns.rows or step != 1:
            assert "parpy_trips(" in code
        nvcc_compile(code, tmp_path)


def test_range_step_beyond_int64_is_an_error():
    with pytest.raises(RuntimeError) as e:

        @parpy.jit
        def f(out):
            parpy.label("N")
            for i in range(0, 10, 9223372036854775808):  # @huge_step
                out[0] = i

    msg = "Range step size 9223372036854775808 does not fit in 64 bits: use a value from -2**63 to 2**63 - 1"
    assert str(e.value) == loc(msg, "huge_step", "9223372036854775808")
