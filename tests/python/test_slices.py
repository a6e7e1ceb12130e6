"""Slice statements (docs/language.md, Indexing and slicing; Reductions): numpy's right-aligned
broadcasting, negative bounds, and slice reductions along one axis or all axes, against numpy on
fresh random data."""

import numpy as np
import parpy
import pytest
from conftest import backends
from parpy.operators import max as pmax
from parpy.operators import min as pmin
from parpy.operators import prod as pprod
from parpy.operators import sum as psum

RNG = np.random.default_rng()


def opts_for(backend, par):
    opts = parpy.par(par)
    opts.backend = backend
    return opts


@parpy.jit
def add_row(x, b, out, N, M):
    parpy.label("i")
    parpy.label("j")
    out[:, :] = x[:, :] + b[:]


@parpy.jit
def scale_cols(x, c, out, N, M):
    parpy.label("i")
    parpy.label("j")
    out[:, :] = x[:, :] * c[:, 0:1]


@parpy.jit
def shifts(x, y, z, N):
    parpy.label("N")
    y[:] = x[-3:]
    parpy.label("N")
    z[0:-1] = x[1:] - x[:-1]


@parpy.jit
def reductions(x, s0, s1, m2, p, lo, N, M, K):
    parpy.label("a")
    parpy.label("b")
    parpy.label("k")
    s0[:, :] = psum(x[:, :, :], axis=0)
    parpy.label("a")
    parpy.label("b")
    parpy.label("k")
    s1[:, :] = psum(x[:, :, :], axis=-2)
    parpy.label("a")
    parpy.label("b")
    parpy.label("k")
    m2[:, :] = pmax(x[:, :, :], axis=2)
    parpy.label("r")
    p[0] = pprod(x[0, 0, :])
    parpy.label("r")
    lo[0] = pmin(x[:, :, :])


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (64, 100)])
def test_broadcasting(backend, shape):
    N, M = shape
    x = RNG.standard_normal(shape)
    b = RNG.standard_normal(M)
    c = RNG.standard_normal((N, 3))
    out = np.zeros(shape)
    opts = opts_for(backend, {"i": parpy.threads(N), "j": parpy.threads(M)})
    add_row(x, b, out, N, M, opts=opts)
    np.testing.assert_allclose(out, x + b, rtol=1e-14)
    scale_cols(x, c, out, N, M, opts=opts)
    np.testing.assert_allclose(out, x * c[:, 0:1], rtol=1e-14)


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
def test_negative_bounds(backend):
    N = 10
    x = RNG.standard_normal(N)
    y = np.zeros(3)
    z = np.zeros(N)
    shifts(x, y, z, N, opts=opts_for(backend, {"N": parpy.threads(16)}))
    np.testing.assert_array_equal(y, x[-3:])
    expect = np.zeros(N)
    expect[0:-1] = x[1:] - x[:-1]
    np.testing.assert_array_equal(z, expect)


@pytest.mark.parametrize("backend", backends, ids=lambda b: b.name)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (4, 33, 65)])
def test_axis_and_full_reductions(backend, shape):
    N, M, K = shape
    x = RNG.uniform(0.5, 1.5, shape)
    s0 = np.zeros((M, K))
    s1 = np.zeros((N, K))
    m2 = np.zeros((N, M))
    p = np.zeros(1)
    lo = np.zeros(1)
    opts = opts_for(backend, {"a": parpy.threads(8), "b": parpy.threads(32), "k": parpy.threads(32),
                                "r": parpy.threads(64)})
    reductions(x, s0, s1, m2, p, lo, N, M, K, opts=opts)
    np.testing.assert_allclose(s0, x.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s1, x.sum(axis=-2), rtol=1e-12)
    np.testing.assert_array_equal(m2, x.max(axis=2))
    np.testing.assert_allclose(p[0], x[0, 0, :].prod(), rtol=1e-12)
    assert lo[0] == x.min()
