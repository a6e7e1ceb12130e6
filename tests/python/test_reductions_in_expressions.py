"""Reductions inside expressions (docs/language.md, Reductions): each is lifted into a statement of
its own, on every backend; results compared with numpy, every element."""

import numpy as np
import parpy
import pytest
from common import make_opts

RNG = np.random.default_rng()
sum_, max_, min_, sqrt = parpy.operators.sum, parpy.operators.max, parpy.operators.min, parpy.operators.sqrt


@parpy.jit
def layer_norm(x, g, b, out, N, M):
    parpy.label("N")
    for i in range(N):
        mean = sum_(x[i, :]) / M
        var = sum_((x[i, :] - mean) * (x[i, :] - mean)) / M
        parpy.label("M")
        out[i, :] = (x[i, :] - mean) / sqrt(var + 1e-5) * g[:] + b[:]


@parpy.jit
def layer_norm_parallel_sums(x, g, b, out, N, M):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        mean = sum_(x[i, :]) / M
        parpy.label("M")
        var = sum_((x[i, :] - mean) * (x[i, :] - mean)) / M
        parpy.label("M")
        out[i, :] = (x[i, :] - mean) / sqrt(var + 1e-5) * g[:] + b[:]


def expected_layer_norm(x, g, b):
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * g + b


@pytest.mark.parametrize("fn", [layer_norm, layer_norm_parallel_sums], ids=["sequential", "parallel"])
def test_layer_norm_with_reductions_in_expressions(backend, fn):
    N, M = 37, 300
    x, g, b = RNG.standard_normal((N, M)), RNG.standard_normal(M), RNG.standard_normal(M)
    out = np.zeros((N, M))
    fn(x, g, b, out, N, M, opts=make_opts(backend, N=N, M=128))
    np.testing.assert_allclose(out, expected_layer_norm(x, g, b), rtol=1e-10, atol=1e-12)


@parpy.jit
def normalise_rows(x, out, N):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        out[i, :] = x[i, :] / max_(x[i, :])


def test_reduction_inside_a_slice_statement(backend):
    N, M = 20, 70
    x = RNG.random((N, M)) + 0.5
    out = np.zeros((N, M))
    normalise_rows(x, out, N, opts=make_opts(backend, N=N, M=M))
    np.testing.assert_allclose(out, x / x.max(axis=1, keepdims=True), rtol=1e-14)


@parpy.jit
def spread_and_sign(x, spread, sign, N):
    parpy.label("N")
    for i in range(N):
        parpy.label("M")
        spread[i] = max_(x[i, :]) - min_(x[i, :])
        if sum_(x[i, :]) > 0.0:
            sign[i] = 1.0
        else:
            sign[i] = -1.0


def test_several_reductions_in_one_statement_and_in_a_condition(backend):
    N, M = 50, 33
    x = RNG.standard_normal((N, M))
    spread, sign = np.zeros(N), np.zeros(N)
    spread_and_sign(x, spread, sign, N, opts=make_opts(backend, N=N, M=32))
    np.testing.assert_allclose(spread, x.max(axis=1) - x.min(axis=1), rtol=1e-14)
    np.testing.assert_array_equal(sign, np.where(x.sum(axis=1) > 0.0, 1.0, -1.0))


@parpy.jit
def centred_sum_of_squares(x, y, N, M):
    parpy.label("N")
    for i in range(N):
        y[i] = sum_((x[i, :] - sum_(x[i, :]) / M) * (x[i, :] - sum_(x[i, :]) / M))


def test_nested_reductions(backend):
    N, M = 16, 45
    x = RNG.standard_normal((N, M))
    y = np.zeros(N)
    centred_sum_of_squares(x, y, N, M, opts=make_opts(backend, N=N))
    np.testing.assert_allclose(y, ((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=1), rtol=1e-12)


@parpy.jit
def gather_at_smallest(k, z, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = z[min_(k[i, :])] + 1.0


def test_reduction_as_an_index(backend):
    N, M = 24, 9
    k = RNG.integers(0, 100, (N, M))
    z = RNG.standard_normal(100)
    y = np.zeros(N)
    gather_at_smallest(k, z, y, N, opts=make_opts(backend, N=N))
    np.testing.assert_array_equal(y, z[k.min(axis=1)] + 1.0)


@parpy.jit
def plus_total(x, y, N):
    parpy.label("N")
    y[0] = sum_(x[:]) + 1.0


def test_labelled_scalar_statement_parallelises_its_reduction(backend):
    x = RNG.standard_normal(1000)
    y = np.zeros(1)
    plus_total(x, y, 1000, opts=make_opts(backend, par={"N": parpy.threads(256).reduce()}))
    np.testing.assert_allclose(y, [x.sum() + 1.0], rtol=1e-12)
    code = parpy.print_compiled(plus_total, [x, y, 1000], make_opts(backend, par={"N": parpy.threads(256).reduce()}))
    assert "parpy_red0" in code


def test_axis_reduction_inside_an_expression_says_what_to_do():
    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        y[:] = parpy.operators.sum(x[:, :], axis=0) * 2.0

    with pytest.raises(RuntimeError) as e:
        f(np.zeros((4, 8)), np.zeros(8), 4, opts=make_opts(parpy.CompileBackend.Cpu, N=8))
    msg = str(e.value)
    assert msg.startswith(
        "The reduction sum along one axis gives an array, so it must be the whole right-hand side of an "
        "assignment to a slice. Assign it to an array of its own first"), msg
    assert "parpy.operators.sum(x[:, :], axis=0)" in msg and "^^^" in msg, msg
