"""Argument kinds of a jit call and compile_string (docs/language.md, Arguments), on the Cpu
backend."""

import array

import numpy as np
import parpy
import pytest
from parpy import CompileBackend

CPU = CompileBackend.Cpu


def cpu_opts(par):
    opts = parpy.par(par)
    opts.backend = CPU
    return opts


@parpy.jit
def scale(x, y, a, N):
    parpy.label("N")
    for i in range(N):
        y[i] = a * x[i]


@parpy.jit
def total(x, y, N):
    parpy.label("N")
    y[0] = parpy.operators.sum(x[:])


class DLPackOnly:
    """An array that speaks only DLPack (as torch CPU tensors do)."""

    def __init__(self, arr):
        self.arr = arr

    def __dlpack__(self, **kwargs):
        return self.arr.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.arr.__dlpack_device__()


class InterfaceOnly:
    """An array that speaks only __array_interface__."""

    def __init__(self, arr):
        self.arr = arr
        self.__array_interface__ = arr.__array_interface__


OPTS = cpu_opts({"N": parpy.threads(64)})


def test_numpy_dlpack_interface_and_buffer_protocol_agree():
    x = np.random.default_rng(1).standard_normal(64)
    for wrap in [lambda a: a, DLPackOnly, InterfaceOnly]:
        y = np.zeros(64)
        scale(wrap(x), wrap(y), 1.5, 64, opts=OPTS)
        np.testing.assert_array_equal(y, 1.5 * x)
    xs = array.array("d", x.tolist())
    ys = array.array("d", [0.0] * 64)
    scale(xs, ys, 2.0, 64, opts=OPTS)
    np.testing.assert_array_equal(np.array(ys), 2.0 * x)


def test_parpy_buffers_and_typed_scalars():
    x = np.random.default_rng(2).random(64, dtype=np.float32)
    y = parpy.buffer.zeros((64,), parpy.types.F32, CPU)
    scale(parpy.buffer.from_array(x, CPU), y, np.float32(3.0), 64, opts=OPTS)
    np.testing.assert_allclose(y.numpy(), np.float32(3.0) * x)
    # A 0-dim array keeps its dtype (docs/language.md, Arguments): an int16 scale times int16 data
    # stays int16.
    xi = np.arange(64, dtype=np.int16)
    yi = np.zeros(64, dtype=np.int16)
    scale(xi, yi, np.array(3, dtype=np.int16), 64, opts=OPTS)
    np.testing.assert_array_equal(yi, xi * 3)
    # A Python bool is an int.
    scale(xi, yi, True, 64, opts=OPTS)
    np.testing.assert_array_equal(yi, xi)


def test_argument_errors():
    x = np.zeros(64)
    # A non-contiguous array runs on a contiguous copy (test_strided_arrays.py).
    m, y = np.random.rand(64, 2), np.zeros(1)
    total(m[:, 0], y, 64, opts=OPTS)
    np.testing.assert_allclose(y, [m[:, 0].sum()], rtol=1e-13)
    ro = np.zeros(64)
    ro.flags.writeable = False
    with pytest.raises(RuntimeError, match="Argument #1: Cannot construct buffer from read-only memory"):
        total(ro, np.zeros(1), 64, opts=OPTS)
    with pytest.raises(RuntimeError, match="Argument #1 has unsupported element type"):
        total(np.zeros(64, dtype=np.complex64), np.zeros(1), 64, opts=OPTS)
    with pytest.raises(RuntimeError, match="Argument #2 has unsupported type str"):
        total(x, "y", 64, opts=OPTS)
    with pytest.raises(RuntimeError, match="Argument #2 has unsupported type list"):
        total(x, [0.0], 64, opts=OPTS)
    with pytest.raises(TypeError, match="Function total expected 3 arguments but received 2"):
        total(x, np.zeros(1), opts=OPTS)
    with pytest.raises(RuntimeError, match="Dictionary argument #1 contains non-string key 1"):
        total({1: x}, np.zeros(1), 64, opts=OPTS)
    with pytest.raises(RuntimeError, match=r'Dictionary argument #1\["a"\] contains nested dictionary'):
        total({"a": {"b": 1}}, np.zeros(1), 64, opts=OPTS)
    with pytest.raises(RuntimeError, match="Argument #3 is an integer that does not fit in 64 bits"):
        total(x, np.zeros(1), 2**70, opts=OPTS)


def test_argument_interfaces_looked_up_as_python_does():
    # An argument's interfaces are looked up as getattr does: a __getattr__ that answers every
    # name with AttributeError means "none of them", any other error of a getter reaches the
    # caller as it is; an interface held in the instance's own dict is found.
    x = np.random.rand(64)

    class Nothing:
        def __getattr__(self, name):
            raise AttributeError(name)

    class Broken:
        @property
        def __cuda_array_interface__(self):
            raise ValueError("the interface's own error")

    class InstanceInterface:
        def __init__(self, a):
            self.__array_interface__ = a.__array_interface__
            self.keep = a

    with pytest.raises(RuntimeError, match="Argument #1 has unsupported type Nothing"):
        total(Nothing(), np.zeros(1), 64, opts=OPTS)
    with pytest.raises(ValueError, match="the interface's own error"):
        total(Broken(), np.zeros(1), 64, opts=OPTS)
    y = np.zeros(1)
    total(InstanceInterface(x), y, 64, opts=OPTS)
    np.testing.assert_allclose(y, [x.sum()], rtol=1e-13)


def test_failed_calls_leave_nothing_behind():
    # A rejected argument must not leak a DLPack capsule or break later calls.
    x = np.random.default_rng(3).standard_normal(64)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            total(DLPackOnly(x), "y", 64, opts=OPTS)
    y = np.zeros(1)
    total(DLPackOnly(x), y, 64, opts=OPTS)
    assert abs(y[0] - x.sum()) < 1e-12


def test_compile_string_round_trip_and_hand_written():
    x = np.random.default_rng(4).standard_normal(64)
    y = np.zeros(64)
    code = parpy.print_compiled(scale, [x, y, 2.5, 64], OPTS)
    f = parpy.compile_string("scale", code, OPTS)
    f(x, y, 2.5, 64)
    np.testing.assert_array_equal(y, 2.5 * x)
    hand = """
#include <cstdint>
extern "C" int32_t negate(double* x, int64_t n, double* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = -x[i];
  return 0;
}
"""
    g = parpy.compile_string("negate", hand, OPTS)
    out = np.zeros(64)
    g(x, 64, out)
    np.testing.assert_array_equal(out, -x)
    bad = parpy.compile_string("broken", "this is not C++", OPTS)
    with pytest.raises(RuntimeError, match="Compilation of generated C\\+\\+ code failed with exit code"):
        bad(x)


@pytest.mark.parametrize("size,value", [("I8", 200), ("I8", -129), ("I16", 40000), ("I32", 2**32 + 5),
                                        ("I32", -(2**31) - 1)])
def test_int_argument_that_does_not_fit_force_int_size_is_refused(size, value):
    o = cpu_opts({"N": parpy.threads(4)})
    o.force_int_size = getattr(parpy.types, size)
    x = np.random.rand(4)
    y = np.zeros(4)
    with pytest.raises(OverflowError, match=f"Argument #3 is {value}, which does not fit in {size}"):
        scale(x, y, value, 4, opts=o)


@pytest.mark.parametrize("size,value", [("I8", 127), ("I8", -128), ("I32", 2**31 - 1)])
def test_int_argument_at_the_limit_of_force_int_size_is_passed(size, value):
    o = cpu_opts({"N": parpy.threads(4)})
    o.force_int_size = getattr(parpy.types, size)
    x = np.random.rand(4)
    y = np.zeros(4)
    scale(x, y, value, 4, opts=o)
    np.testing.assert_allclose(y, x * value)
