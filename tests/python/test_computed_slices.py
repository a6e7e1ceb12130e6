"""Slices whose bounds are computed (docs/language.md, Indexing and slicing): `x[b*B:(b+1)*B]`
has a constant length whatever b is; results compared with numpy, every element."""

import numpy as np
import parpy
import pytest
from common import cpu, make_opts

RNG = np.random.default_rng()


@parpy.jit
def tile_sums(x, y, NB, B):
    parpy.label("NB")
    for b in range(NB):
        y[b] = parpy.operators.sum(x[b * B:(b + 1) * B])


@parpy.jit
def tile_scale(x, s, y, NB, B):
    parpy.label("NB")
    for b in range(NB):
        parpy.label("B")
        y[b * B:(b + 1) * B] = x[b * B:(b + 1) * B] * s[b]


@parpy.jit
def windows(x, y, N, W):
    parpy.label("N")
    for i in range(N):
        y[i] = parpy.operators.max(x[i:i + W]) - parpy.operators.min(x[i:W + i])


def test_tile_reductions(backend):
    NB, B = 13, 32
    x = RNG.standard_normal(NB * B)
    y = np.zeros(NB)
    tile_sums(x, y, NB, B, opts=make_opts(backend, NB=NB))
    np.testing.assert_allclose(y, x.reshape(NB, B).sum(axis=1), rtol=1e-12)


def test_tile_maps(backend):
    NB, B = 9, 40
    x, s = RNG.standard_normal(NB * B), RNG.standard_normal(NB)
    y = np.zeros(NB * B)
    tile_scale(x, s, y, NB, B, opts=make_opts(backend, NB=NB, B=B))
    np.testing.assert_array_equal(y, (x.reshape(NB, B) * s[:, None]).reshape(-1))


def test_sliding_windows(backend):
    N, W = 50, 7
    x = RNG.standard_normal(N + W - 1)
    y = np.zeros(N)
    windows(x, y, N, W, opts=make_opts(backend, N=N))
    expected = np.array([x[i:i + W].max() - x[i:i + W].min() for i in range(N)])
    np.testing.assert_array_equal(y, expected)


def test_computed_slice_past_the_end_is_an_index_error():
    @parpy.jit
    def f(x, y, NB, B):
        parpy.label("NB")
        for b in range(NB):
            y[b] = parpy.operators.sum(x[b * B:(b + 1) * B])

    with pytest.raises(IndexError) as e:
        f(np.zeros(100), np.zeros(4), 4, 32, opts=cpu(NB=4))  # the last tile ends at 128
    msg = str(e.value)
    assert msg.startswith(
        "Index out of bounds: b * B:(b + 1) * B covers the indices 0 to 127, but dimension 0 of x has extent 100"
    ), msg
    assert "The loop `for b in range(NB):` runs from 0 to 3 here." in msg, msg
    assert "so that the slice lies within the array" in msg, msg


def test_slice_of_computed_length_is_still_an_error():
    @parpy.jit
    def f(x, y, N):
        parpy.label("N")
        for i in range(N):
            y[i] = parpy.operators.sum(x[0:i + 1])

    with pytest.raises(RuntimeError) as e:
        f(np.zeros(8), np.zeros(8), 8, opts=cpu(N=8))
    assert str(e.value).startswith("Upper-bound of slice must be fixed."), str(e.value)
