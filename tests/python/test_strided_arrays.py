"""Non-contiguous host arrays (a column, a transposed or Fortran-ordered array, a stepped or
reversed slice, a torch view) are accepted: the code runs on a contiguous copy, which is written
back after the call; such an array may not share memory with another argument."""

import numpy as np
import parpy
import pytest
from common import make_opts
from locations import SourceLocations

RNG = np.random.default_rng(7)
SRC = SourceLocations(__file__)


@parpy.jit
def scale_into(x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = 2.0 * x[i] + 1.0


@parpy.jit
def row_sums(x, y, N, M):
    parpy.label("N")
    for i in range(N):
        y[i] = parpy.operators.sum(x[i, :])


@parpy.jit
def add_one_2d(x, N, M):
    parpy.label("N")
    for i in range(N):
        for j in range(M):
            x[i, j] = x[i, j] + 1.0


@parpy.jit
def add_one_3d(x, A, B, C):
    parpy.label("A")
    for i in range(A):
        for j in range(B):
            for k in range(C):
                x[i, j, k] = x[i, j, k] * 3.0 + parpy.operators.float64(i - k)


@parpy.jit
def from_dict(d, N):
    parpy.label("N")
    for i in range(N):
        d["y"][i] = d["x"][i] - d["z"][i]


@parpy.jit
def copy_over(src, dst, N):  # @copy_over_def
    parpy.label("N")
    for i in range(N):
        dst[i] = src[i]


def test_a_column_is_read_and_a_column_written(backend):
    a = RNG.standard_normal((50, 3))
    out = np.zeros((50, 4))
    scale_into(a[:, 1], out[:, 2], 50, opts=make_opts(backend, N=50))
    want = np.zeros((50, 4))
    want[:, 2] = 2.0 * a[:, 1] + 1.0
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("view", ["transposed", "fortran", "stepped", "reversed", "reversed-rows"])
def test_two_dimensional_views(backend, view):
    base = RNG.standard_normal((40, 60)).astype(np.float32)
    x = {"transposed": lambda: base.T[:30],
         "fortran": lambda: np.asfortranarray(base),
         "stepped": lambda: base[::3, 1::2],
         "reversed": lambda: base[:, ::-1],
         "reversed-rows": lambda: base[::-2, ::-1]}[view]()
    assert not x.flags.c_contiguous
    want_sums = x.sum(axis=1, dtype=np.float64)
    y = np.zeros(x.shape[0], np.float32)
    row_sums(x, y, x.shape[0], x.shape[1], opts=make_opts(backend, N=x.shape[0]))
    np.testing.assert_allclose(y, want_sums, rtol=1e-5, atol=1e-4)
    before = base.copy()
    want = x + np.float32(1)
    add_one_2d(x, x.shape[0], x.shape[1], opts=make_opts(backend, N=x.shape[0]))
    np.testing.assert_array_equal(x, want)
    # Elements of the base outside the view are untouched.
    untouched = np.ones(base.shape, bool)
    marker = np.zeros(base.shape, bool)
    {"transposed": lambda: marker.T[:30], "fortran": lambda: marker, "stepped": lambda: marker[::3, 1::2],
     "reversed": lambda: marker[:, ::-1], "reversed-rows": lambda: marker[::-2, ::-1]}[view]()[...] = True
    untouched &= ~marker
    if view != "fortran":
        np.testing.assert_array_equal(base[untouched], before[untouched])


def test_permuted_three_dimensional_array(backend):
    base = RNG.standard_normal((5, 6, 7))
    x = base.transpose(2, 0, 1)
    A, B, C = x.shape
    i = np.arange(A)[:, None, None]
    k = np.arange(C)[None, None, :]
    want = x * 3.0 + i - k
    add_one_3d(x, A, B, C, opts=make_opts(backend, A=A))
    np.testing.assert_allclose(x, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(base, want.transpose(1, 2, 0), rtol=1e-12, atol=1e-14)


def test_dict_entries(backend):
    m = RNG.standard_normal((20, 3))
    y = np.zeros((2, 20))
    from_dict({"x": m[:, 0], "y": y[1], "z": m[:, 2]}, 20, opts=make_opts(backend, N=20))
    np.testing.assert_array_equal(y[1], m[:, 0] - m[:, 2])
    np.testing.assert_array_equal(y[0], np.zeros(20))


def test_contiguous_and_strided_share_one_specialisation(backend):
    n = 33
    o = make_opts(backend, N=n)
    entries = scale_into._cache_size()
    x, y = RNG.standard_normal(n), np.zeros(n)
    scale_into(x, y, n, opts=o)
    np.testing.assert_array_equal(y, 2.0 * x + 1.0)
    xs = RNG.standard_normal((n, 2))[:, 1]
    scale_into(xs, y, n, opts=o)
    np.testing.assert_array_equal(y, 2.0 * xs + 1.0)
    assert scale_into._cache_size() - entries == 1


def test_empty_and_zero_stride_views(backend):
    y = np.zeros((0, 2))
    scale_into(np.zeros((0, 2))[:, 0], y[:, 1], 0, opts=make_opts(backend, N=1))
    # A broadcast view is read-only (numpy): refused as any read-only array.
    with pytest.raises(RuntimeError, match="read-only"):
        scale_into(np.broadcast_to(np.float64(3.0), (8,)), np.zeros(8), 8, opts=make_opts(backend, N=8))


def test_array_interface_with_strides(backend):
    base = RNG.standard_normal((16, 2))

    class Wrapped:
        def __init__(self, a):
            self.a = a
            self.__array_interface__ = a.__array_interface__

    y = np.zeros(16)
    scale_into(Wrapped(base[:, 1]), y, 16, opts=make_opts(backend, N=16))
    np.testing.assert_array_equal(y, 2.0 * base[:, 1] + 1.0)


def test_torch_views(backend):
    torch = pytest.importorskip("torch")
    x = torch.randn(30, 20, dtype=torch.float64)
    y = torch.zeros(20, dtype=torch.float64)
    row_sums(x.t(), y, 20, 30, opts=make_opts(backend, N=20))
    torch.testing.assert_close(y, x.sum(dim=0))
    z = torch.zeros(20, 4, dtype=torch.float64)
    scale_into(x[::2, 3][:10], z[:10, 1], 10, opts=make_opts(backend, N=10))
    torch.testing.assert_close(z[:10, 1], 2.0 * x[::2, 3][:10] + 1.0)
    assert z[:, [0, 2, 3]].abs().sum() == 0 and z[10:].abs().sum() == 0


def test_a_copied_array_may_not_share_memory_with_another_argument():
    m = np.zeros((8, 2))
    with pytest.raises(RuntimeError) as e:
        copy_over(m[:4, 0], m[::2, 0], 4, opts=make_opts(parpy.CompileBackend.Cpu, N=4))
    msg = ("Argument #1 (parameter src) is a non-contiguous array, which the function reads and "
           "writes through a contiguous copy, and it shares memory with argument #2 (parameter dst): "
           "writes through one would not be seen through the other.\nPass arrays that do not share "
           "memory, or a contiguous copy of one (np.ascontiguousarray(src)).")
    assert str(e.value) == SRC.loc(msg, "copy_over_def", "src")
    # Also with a contiguous array that holds it.
    with pytest.raises(RuntimeError, match=r"shares memory with argument #1 \(parameter src\)"):
        copy_over(m.reshape(-1), m[:, 1], 8, opts=make_opts(parpy.CompileBackend.Cpu, N=8))
    # Two columns of one matrix interleave but share no element: fine.
    src = RNG.standard_normal((8, 3))
    copy_over(src[:, 0], src[:, 2], 8, opts=make_opts(parpy.CompileBackend.Cpu, N=8))
    np.testing.assert_array_equal(src[:, 2], src[:, 0])
    copy_over(m[:, 0], m[:, 1], 8, opts=make_opts(parpy.CompileBackend.Cpu, N=8))
    # Separate memory is fine.
    src = RNG.standard_normal((8, 2))
    copy_over(src[:, 0], m[:, 1], 8, opts=make_opts(parpy.CompileBackend.Cpu, N=8))
    np.testing.assert_array_equal(m[:, 1], src[:, 0])
