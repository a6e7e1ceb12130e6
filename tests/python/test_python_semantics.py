"""Arithmetic that follows Python's (and numpy's) rules at the edges: float // and % with
infinities, NaN, signed zeros and negative operands (docs/language.md, Types)."""

import itertools

import numpy as np
import parpy
import pytest


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
