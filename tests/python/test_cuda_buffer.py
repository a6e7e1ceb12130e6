"""parpy.buffer on the Cuda backend (docs/language.md, Arguments: memory through parpy's own
runtime, no torch), jit calls on Cuda buffers, and the torch CUDA tensor fast path of the call,
which must agree with the __cuda_array_interface__ path in key and errors and launch on torch's
current stream (docs/gpu.md, Data, streams and devices). Everything here needs a GPU; test_buffer.py
covers what does not."""

import gc

import numpy as np
import parpy
import pytest
from parpy import buffer
from parpy.parpy import CompileBackend, DataType, ElemSize

CUDA = CompileBackend.Cuda
pytestmark = pytest.mark.skipif(not parpy.backend.is_enabled(CUDA), reason="no CUDA GPU here")


def opts(n):
    o = parpy.par({"N": parpy.threads(n)})
    o.backend = CUDA
    return o


@parpy.jit
def add1(x, N):
    parpy.label("N")
    for i in range(N):
        x[i] = x[i] + 1.0


@parpy.jit
def add1_int(x, N):
    parpy.label("N")
    for i in range(N):
        x[i] = x[i] + 1


class Interface:
    """Only the __cuda_array_interface__ of an array: forces the generic argument path."""

    def __init__(self, t):
        self.__cuda_array_interface__ = t.__cuda_array_interface__


def random_array(dtype, shape, rng):
    if np.dtype(dtype) == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32,
                                   np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_])
def test_round_trip_every_element(dtype):
    a = random_array(dtype, (1000, 1031), np.random.default_rng(1))
    b = buffer.from_array(a, CUDA)
    assert b.shape == a.shape and b.dtype == DataType(a.dtype.str) and b.src is a
    out = b.numpy()
    assert out.dtype == a.dtype
    np.testing.assert_array_equal(out, a)
    np.testing.assert_array_equal(b.copy().numpy(), a)
    assert not buffer.zeros(a.shape, b.dtype, CUDA).numpy().any()


def test_jit_on_buffers_and_copy_back_on_delete():
    n = 1 << 20
    a = np.arange(n, dtype=np.float32)
    b = buffer.from_array(a, CUDA)
    add1(b, n, opts=opts(n))
    add1(b.reshape(n), n, opts=opts(n))
    np.testing.assert_array_equal(b.numpy(), np.arange(n, dtype=np.float32) + 2)
    assert a[5] == 5  # the host array is untouched while the buffer lives...
    del b
    gc.collect()
    np.testing.assert_array_equal(a, np.arange(n, dtype=np.float32) + 2)  # ...then written back
    z = buffer.zeros(n, ElemSize.F64, CUDA)
    add1(z, n, opts=opts(n))
    assert z.src is None and (z.numpy() == 1.0).all()


def test_free_copies_back_into_src():
    n = 4099
    a = np.random.default_rng(3).standard_normal(n)
    expected = a + 1.0
    b = buffer.from_array(a, CUDA)
    assert b.src is a and b._get_ptr() == b.__cuda_array_interface__["data"][0]
    add1(b, n, opts=opts(n))
    b.free()
    np.testing.assert_array_equal(a, expected)
    with pytest.raises(RuntimeError):  # its memory is gone: not an argument any more
        add1(b, n, opts=opts(n))
    del b
    gc.collect()
    np.testing.assert_array_equal(a, expected)  # written back once


def test_views_copies_and_conversions():
    b = buffer.from_array(np.arange(12, dtype=np.int32), CUDA)
    r = b.reshape(3, 4)
    np.testing.assert_array_equal(r.numpy(), np.arange(12, dtype=np.int32).reshape(3, 4))
    with pytest.raises(ValueError, match=r"Cannot reshape buffer of shape \[12\] to \[5\]"):
        b.reshape(5)
    f = b.with_type(ElemSize.F32)  # same size: reinterprets the same memory
    assert f.ptr == b.ptr and f.refcount is b.refcount
    np.testing.assert_array_equal(f.numpy(), np.arange(12, dtype=np.int32).view(np.float32))
    d = b.with_type(ElemSize.F64)  # other size: a converted copy
    assert d.ptr != b.ptr
    np.testing.assert_array_equal(d.numpy(), np.arange(12, dtype=np.float64))
    with pytest.raises(ValueError, match="Found unsupported data type"):
        b.with_type(np.float64)
    c = b.copy()
    add1_int(c, 12, opts=opts(12))
    np.testing.assert_array_equal(c.numpy(), np.arange(12) + 1)
    np.testing.assert_array_equal(b.numpy(), np.arange(12))  # the copy has its own memory
    e = buffer.empty_like(c)
    assert isinstance(e, buffer.CudaBuffer) and e.shape == (12,) and e.ptr not in (b.ptr, c.ptr)
    assert not buffer.zeros_like(c).numpy().any()
    s = buffer.from_array(np.array(3, np.int64), CUDA)
    assert int(s) == 3 and float(s) == 3.0 and [0, 1, 2, 3][s] == 3
    assert buffer.empty((0,), ElemSize.F32, CUDA).numpy().shape == (0,)
    buffer.sync(CUDA)
    b.sync()


def test_torch_tensor_wrapped_without_copy():
    torch = pytest.importorskip("torch")
    t = torch.arange(1000, dtype=torch.float32, device="cuda")
    b = buffer.from_array(t, CUDA)
    assert b.buf is t and b.ptr == t.data_ptr() and b.src is None
    assert b.torch() is t and b.torch_ref() is t
    add1(b, 1000, opts=opts(1000))
    torch.cuda.synchronize()
    assert torch.equal(t, torch.arange(1000, dtype=torch.float32, device="cuda") + 1)
    v = b.reshape(10, 100).torch()  # a view: a new tensor over the same memory
    assert v.shape == (10, 100) and v.data_ptr() == t.data_ptr()
    # A tensor over parpy's own memory shares it and keeps the buffer alive.
    own = buffer.from_array(np.ones(5, np.float32), CUDA)
    ptr = own.ptr
    tt = own.torch()
    del own
    gc.collect()
    assert tt.data_ptr() == ptr and tt.device.type == "cuda"
    tt += 1
    assert tt.tolist() == [2.0] * 5


def test_cupy_array_wrapped_without_copy():
    cp = pytest.importorskip("cupy")
    x = cp.arange(1000, dtype=cp.float64)
    b = buffer.from_array(x, CUDA)
    assert b.buf is x and b.ptr == x.data.ptr
    add1(b, 1000, opts=opts(1000))
    cp.cuda.runtime.deviceSynchronize()
    assert cp.array_equal(x, cp.arange(1000, dtype=cp.float64) + 1)
    y = cp.asarray(b)  # CuPy reads the buffer's interface in place too
    assert y.data.ptr == b.ptr
    np.testing.assert_array_equal(b.numpy(), np.arange(1000) + 1)


def test_device_conversion_errors():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="to a CUDA buffer") as e:
        buffer.from_array(torch.zeros(4, 4, device="cuda").t(), CUDA)
    assert "contiguous" in str(e.value.__cause__)
    with pytest.raises(ValueError, match="to a CUDA buffer") as e:
        buffer.from_array(torch.zeros(4, device="cuda", requires_grad=True), CUDA)
    assert "requires grad" in str(e.value.__cause__)
    with pytest.raises(RuntimeError, match="cuMemAlloc"):
        buffer.empty(1 << 50, ElemSize.F64, CUDA)  # the driver's error, not an abort


# ----- the torch fast path of a jit call (Task: per-call overhead) ----------------------------


def outcome(f, *args):
    """What a call gives: ('ok', cache size) or the exception's type and text."""
    try:
        f(*args, opts=opts(args[-1]))
        return ("ok", f._cache_size())
    except (RuntimeError, TypeError, ValueError) as e:
        return (type(e).__name__, str(e))


def test_torch_fast_path_key_equals_interface_path():
    torch = pytest.importorskip("torch")

    @parpy.jit
    def scale(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = x[i] * 2.0

    t = torch.ones(4096, device="cuda")
    scale(Interface(t), 4096, opts=opts(4096))
    scale(t, 4096, opts=opts(4096))  # the fast path must find the same entry
    assert scale._cache_size() == 1
    torch.cuda.synchronize()
    assert (t == 4.0).all()
    for other in (torch.ones(4096, device="cuda", dtype=torch.float64), torch.ones(2048, device="cuda")):
        before = scale._cache_size()
        scale(Interface(other), other.shape[0], opts=opts(other.shape[0]))
        scale(other, other.shape[0], opts=opts(other.shape[0]))
        assert scale._cache_size() == before + 1


# A non-contiguous tensor is not among them: it runs on a copy that torch makes, which an object
# with only its interface has no way to make (test_strided_cuda.py).
@pytest.mark.parametrize("make", [
    lambda torch: torch.zeros(64, device="cuda", dtype=torch.bfloat16),
    lambda torch: torch.zeros(64, device="cuda", dtype=torch.complex64),
    lambda torch: torch.zeros((), device="cuda"),
    lambda torch: torch.zeros(64, device="cuda", dtype=torch.uint16),
    lambda torch: torch.zeros(64, device="cuda", dtype=torch.bool),
    lambda torch: torch.zeros(64, device="cuda", dtype=torch.float16),
])
def test_torch_fast_path_errors_equal_interface_path(make):
    torch = pytest.importorskip("torch")

    @parpy.jit
    def touch(x, N):
        parpy.label("N")
        for i in range(N):
            x[i] = x[i]

    t = make(torch)
    n = t.shape[0] if t.dim() > 0 else 1
    assert outcome(touch, t, n) == outcome(touch, Interface(t), n)


def test_torch_fast_path_other_tensors():
    torch = pytest.importorskip("torch")
    # requires_grad: the fast path leaves it to the interface, whose getter refuses it; that
    # error (it says to detach) reaches the caller as it is, not "unsupported type".
    with pytest.raises(RuntimeError, match="requires grad.*detach"):
        add1(torch.zeros(8, device="cuda", requires_grad=True), 8, opts=opts(8))
    # A CPU tensor on the Cuda backend is host memory: copied in and back.
    c = torch.zeros(8)
    add1(c, 8, opts=opts(8))
    assert c.tolist() == [1.0] * 8
    # A tensor subclass takes the interface path.
    p = torch.nn.Parameter(torch.zeros(8, device="cuda"), requires_grad=False)
    add1(p, 8, opts=opts(8))
    torch.cuda.synchronize()
    assert p.tolist() == [1.0] * 8
    with pytest.raises(RuntimeError, match=r"Argument #1 is a CUDA array, which is not supported in "
                                           r"CompileBackend\.Cpu\."):
        cpu = parpy.par({"N": parpy.threads(8)})
        cpu.backend = CompileBackend.Cpu
        add1(torch.zeros(8, device="cuda"), 8, opts=cpu)


@pytest.mark.parametrize("subclass", [False, True], ids=["tensor", "parameter"])
def test_launch_follows_torch_current_stream(subclass):
    # On a side stream, the kernel must wait for the torch work queued before it there
    # (docs/gpu.md, Data, streams and devices).
    # If parpy launched on the legacy stream instead, it would run during the sleep and read 0s.
    # A Parameter takes the interface path, which must pick the same stream.
    torch = pytest.importorskip("torch")

    def wrap(t):
        return torch.nn.Parameter(t, requires_grad=False) if subclass else t

    n = 1 << 16
    warm = torch.zeros(n, device="cuda")
    add1(wrap(warm), n, opts=opts(n))  # compile outside the timed window
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        x = torch.zeros(n, device="cuda")
        torch.cuda._sleep(200_000_000)  # ~0.1 s of GPU time on the side stream
        x.fill_(5.0)
        add1(wrap(x), n, opts=opts(n))
        result = x.clone()
    side.synchronize()
    assert (result == 6.0).all()
