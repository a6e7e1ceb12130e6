"""Transcendental functions are accurate, not fast-math (docs/language.md, Types), also where the
Cpu backend vectorises them with glibc's vector math library: every element within a few ULP of the
value numpy computes in float64, rounded to the array's type."""

import numpy as np
import parpy
import pytest
from conftest import backends

ops = parpy.operators


@parpy.jit
def unary_maps(x, e, lg, s, c, N):
    parpy.label("N")
    e[:] = ops.exp(x[:])
    parpy.label("N")
    lg[:] = ops.log(ops.abs(x[:]) + 0.5)
    parpy.label("N")
    s[:] = ops.sin(x[:])
    parpy.label("N")
    c[:] = ops.cos(x[:])


@parpy.jit
def power_map(x, y, p, N):
    parpy.label("N")
    for i in range(N):
        p[i] = (ops.abs(x[i]) + 0.5) ** y[i]


def ulp_distance(actual, exact):
    """The distance in units in the last place of actual's type between actual and `exact`
    (float64) rounded to that type."""
    with np.errstate(over="ignore"):
        want = exact.astype(actual.dtype)
    itype = np.int32 if actual.dtype == np.float32 else np.int64
    a, w = actual.view(itype).astype(np.int64), want.view(itype).astype(np.int64)
    # Map the sign-magnitude bit patterns onto one ordered integer line.
    a = np.where(a < 0, np.iinfo(itype).min - a, a)
    w = np.where(w < 0, np.iinfo(itype).min - w, w)
    return np.abs(a - w)


def opts_for(backend, N):
    opts = parpy.par({"N": parpy.threads(N)})
    opts.backend = backend
    return opts


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_log_sin_cos_within_a_few_ulp(backend, dtype):
    N = 100_003  # not a multiple of any vector width: the loops' remainders are checked too
    rng = np.random.default_rng()
    x = (rng.standard_normal(N) * 20).astype(dtype)
    outs = [np.zeros_like(x) for _ in range(4)]
    unary_maps(x, *outs, N, opts=opts_for(backend, N))
    x64 = x.astype(np.float64)
    # abs(x) + 0.5 is rounded to the array's type before the log, in numpy too.
    shifted = (np.abs(x) + dtype(0.5)).astype(np.float64)
    exact = [np.exp(x64), np.log(shifted), np.sin(x64), np.cos(x64)]
    for name, out, ref in zip(["exp", "log", "sin", "cos"], outs, exact):
        with np.errstate(over="ignore"):  # exp overflows float32 for x > 88.7
            finite = np.isfinite(ref.astype(dtype))
        assert np.array_equal(np.isfinite(out), finite), name
        # sin and cos near their zeros have a tiny exact value: judge those by absolute error.
        ulps = ulp_distance(out[finite], ref[finite])
        small = np.abs(ref[finite]) < 1e-3
        worst = int(ulps[~small].max())
        assert worst <= 4, f"{name}: {worst} ULP"
        eps = np.finfo(dtype).eps
        assert np.abs(out[finite][small] - ref[finite][small]).max(initial=0.0) <= 4 * eps, name


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_pow_within_a_few_ulp(backend):
    N = 50_001
    rng = np.random.default_rng()
    x = rng.standard_normal(N).astype(np.float32)
    y = (rng.standard_normal(N) * 4).astype(np.float32)
    p = np.zeros_like(x)
    power_map(x, y, p, N, opts=opts_for(backend, N))
    base = (np.abs(x) + np.float32(0.5)).astype(np.float64)
    ref = base ** y.astype(np.float64)
    assert int(ulp_distance(p, ref).max()) <= 4
