"""parpy.buffer on the Cpu backend, and buffers as jit arguments."""

import numpy as np
import parpy
import pytest
from parpy import buffer
from parpy.parpy import CompileBackend, DataType, ElemSize

CPU = CompileBackend.Cpu


@parpy.jit
def add_one(x, N):
    parpy.label("N")
    for i in range(N):
        x[i] = x[i] + 1.0


def test_from_array_shares_memory_and_runs():
    a = np.random.rand(100).astype(np.float32)
    ref = a + 1.0
    b = buffer.from_array(a, CPU)
    assert b.shape == (100,) and b.dtype == DataType("<f4") and b.size() == 400
    opts = parpy.par({"N": parpy.threads(100)})
    opts.backend = CPU
    add_one(b, 100, opts=opts)
    np.testing.assert_allclose(b.numpy(), ref)
    np.testing.assert_allclose(a, ref)  # same memory


def test_empty_zeros_like():
    z = buffer.zeros((3, 4), ElemSize.F64, CPU)
    assert z.numpy().shape == (3, 4) and not z.numpy().any()
    e = buffer.empty_like(z)
    assert e.shape == (3, 4) and e.dtype == z.dtype
    z2 = buffer.zeros_like(e)
    assert not z2.numpy().any()
    assert buffer.empty(5, DataType("<i4"), CPU).numpy().dtype == np.int32


def test_reshape_with_type_copy():
    b = buffer.from_array(np.arange(12, dtype=np.int32), CPU)
    r = b.reshape(3, 4)
    assert r.shape == (3, 4) and r.refcount is b.refcount
    with pytest.raises(ValueError, match=r"Cannot reshape buffer of shape \[12\] to \[5\]"):
        b.reshape(5)
    f = b.with_type(ElemSize.F32)  # same size: reinterpret
    assert f.numpy().dtype == np.float32 and f.numpy().shape == (12,)
    d = b.with_type(ElemSize.F64)  # other size: converting copy
    np.testing.assert_array_equal(d.numpy(), np.arange(12, dtype=np.float64))
    c = b.copy()
    c.numpy()[0] = 100
    assert b.numpy()[0] == 0
    with pytest.raises(ValueError, match="Found unsupported data type"):
        b.with_type("f4")


def test_zero_dim_conversions():
    s = buffer.from_array(np.array(7, dtype=np.int64), CPU)
    assert int(s) == 7 and float(s) == 7.0 and bool(s) and [0, 1, 2, 3, 4, 5, 6, 7][s] == 7
    v = buffer.from_array(np.zeros(3, dtype=np.float32), CPU)
    with pytest.raises(ValueError, match=r"Cannot convert buffer of shape \[3\] to float"):
        float(v)
    f = buffer.from_array(np.array(1.5, dtype=np.float32), CPU)
    with pytest.raises(ValueError, match="as index"):
        [0, 1][f]


def test_errors():
    with pytest.raises(RuntimeError, match="Cannot construct instance of base Buffer class"):
        buffer.Buffer(None, (), DataType("<f4"))
    ro = np.zeros(4, dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        buffer.from_array(ro, CPU)
    with pytest.raises(ValueError, match="contiguous"):
        buffer.from_array(np.zeros((4, 4))[:, 0], CPU)
    with pytest.raises(ValueError, match="unknown backend"):
        buffer.from_array(np.zeros(4), CompileBackend.Auto)
    d = buffer.from_array(np.zeros((2, 3), np.float32), None)
    assert isinstance(d, buffer.DummyBuffer) and d.shape == (2, 3)
    buffer.sync(CPU)
    parpy.buffer.sync(CPU)
