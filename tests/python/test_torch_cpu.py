"""torch CPU tensors as arguments (through DLPack) and torch conversions of parpy objects."""

import numpy as np
import parpy
import pytest
from parpy import CompileBackend
from common import axpy

torch = pytest.importorskip("torch")
CPU = CompileBackend.Cpu


@parpy.jit
def row_max(x, y, N, M):
    parpy.label("rows")
    for i in range(N):
        y[i] = parpy.operators.max(x[i, :])


def cpu_opts(**par):
    opts = parpy.par({k: parpy.threads(v) for k, v in par.items()})
    opts.backend = CPU
    return opts


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_torch_tensors_in_place(dtype):
    x = torch.randn(1000, dtype=dtype)
    y = torch.randn(1000, dtype=dtype)
    ref = 2 * x + y
    ptr = y.data_ptr()
    axpy(2.0, x, y, 1000, opts=cpu_opts(N=1000))
    assert y.data_ptr() == ptr
    torch.testing.assert_close(y, ref)


def test_torch_2d_and_errors():
    x = torch.randn(37, 129)
    y = torch.zeros(37)
    row_max(x, y, 37, 129, opts=cpu_opts(rows=37))
    torch.testing.assert_close(y, x.max(dim=1).values)
    # A non-contiguous tensor runs on a contiguous copy.
    xt = x.t().contiguous().t()
    y.zero_()
    row_max(xt, y, 37, 129, opts=cpu_opts(rows=37))
    torch.testing.assert_close(y, x.max(dim=1).values)


def test_torch_conversions():
    assert parpy.types.F32.to_torch() is torch.float32
    assert parpy.types.U16.to_torch() is torch.int16
    b = parpy.buffer.from_array(np.arange(6, dtype=np.float32), CPU)
    t = b.torch()
    assert isinstance(t, torch.Tensor) and t.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    t[0] = 10.0  # shares memory with the buffer
    assert b.numpy()[0] == 10.0
    assert b.torch_ref().data_ptr() == t.data_ptr()
