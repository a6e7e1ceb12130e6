"""parpy.buffer on the Cpu backend, and buffers as jit arguments."""

import ctypes

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


def test_from_array_keeps_src_and_pointer():
    a = np.random.rand(16)
    b = buffer.from_array(a, CPU)
    assert b.src is a and b._get_ptr() == a.ctypes.data
    r = b.reshape(4, 4)
    assert r.src is a and r._get_ptr() == a.ctypes.data
    assert buffer.zeros(4, ElemSize.F32, CPU).src is None
    d = buffer.from_array(a, None)
    assert d._get_ptr() == a.ctypes.data


def test_free_writes_back_into_src_once():
    # A buffer whose memory is not its source's (here made by hand: from_array shares memory
    # whenever it can) copies its data back into the source when freed.
    src = np.zeros(6, dtype=np.float32)
    data = np.random.rand(6).astype(np.float32)
    b = buffer.CpuBuffer(data.copy(), (6,), DataType("<f4"), src=src)
    v = b.reshape(2, 3)
    assert b.refcount[0] == 2
    b.free()
    np.testing.assert_array_equal(src, data)
    src[:] = 0.0
    b.free()  # freeing again, or dropping the views, does nothing more
    del b, v
    assert not src.any()
    with pytest.raises(RuntimeError, match="Cannot use a buffer after it was freed"):
        c = buffer.CpuBuffer(data.copy(), (6,), DataType("<f4"), src=src)
        c.free()
        c.reshape(3, 2)


FREED = "Cannot use a buffer after it was freed"


def test_freed_cpu_buffer_cannot_be_used():
    """A freed Cpu buffer (and its views) refuses every use, as a freed Cuda buffer does: reading
    it, passing it to a call, and making views or copies of it."""
    a = np.random.rand(12)
    want = a + 1.0
    b = buffer.from_array(a, CPU)
    v, w = b.reshape(3, 4), b.reshape(12)
    opts = parpy.par({"N": parpy.threads(12)})
    opts.backend = CPU
    add_one(b, 12, opts=opts)  # still alive: runs
    np.testing.assert_array_equal(v.numpy().reshape(12), want)
    b.free()
    for x in (b, v):
        for op in (x.numpy, x.copy, x._get_ptr, lambda x=x: x.__array_interface__,
                   lambda x=x: x.reshape(12), lambda x=x: x.with_type(ElemSize.I64),
                   lambda x=x: x.with_type(ElemSize.F32), lambda x=x: np.asarray(x)):
            with pytest.raises(RuntimeError, match=FREED):
                op()
    for x in (b, w):
        with pytest.raises(RuntimeError, match=FREED):
            add_one(x, 12, opts=opts)
    np.testing.assert_array_equal(a, want)  # no call ran on it
    s = buffer.from_array(np.array(2.5), CPU)
    s.free()
    with pytest.raises(RuntimeError, match=FREED):
        float(s)


def test_cleanup_writes_back_into_src():
    src = np.zeros(4, dtype=np.int32)
    b = buffer.CpuBuffer(np.arange(4, dtype=np.int32), (4,), DataType("<i4"), src=src)
    del b  # the last view goes
    np.testing.assert_array_equal(src, np.arange(4))


def test_jit_writes_reach_src_through_a_buffer():
    a = np.random.rand(50)
    ref = a + 1.0
    b = buffer.from_array(a, CPU)
    add_one(b, 50, opts=_cpu_opts())
    b.free()
    np.testing.assert_array_equal(a, ref)


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


def test_metal_buffers_are_host_memory():
    metal = CompileBackend.Metal
    src = np.arange(12, dtype=np.float32)
    b = buffer.from_array(src, metal)
    assert type(b) is buffer.MetalBuffer and b.backend == metal and b.src is src
    assert np.shares_memory(b.numpy(), src) and b._get_ptr() == src.ctypes.data
    r = b.reshape(3, 4)
    assert type(r) is buffer.MetalBuffer and r.shape == (3, 4) and np.shares_memory(r.numpy(), src)
    c = b.copy()
    assert type(c) is buffer.MetalBuffer and not np.shares_memory(c.numpy(), src)
    np.testing.assert_array_equal(c.numpy(), src)
    w = b.with_type(parpy.ElemSize.I32)
    assert type(w) is buffer.MetalBuffer and w.dtype == DataType("<i4")
    z = buffer.zeros((2, 5), parpy.ElemSize.F64, metal)
    assert type(z) is buffer.MetalBuffer and z.numpy().shape == (2, 5) and not z.numpy().any()
    e = buffer.empty_like(z)
    assert type(e) is buffer.MetalBuffer and e.shape == (2, 5) and e.dtype == z.dtype
    assert type(buffer.zeros_like(b)) is buffer.MetalBuffer
    # A Cpu buffer made into a Metal one shares its memory.
    cpu = buffer.from_array(src, CPU)
    m = buffer.from_array(cpu, metal)
    assert type(m) is buffer.MetalBuffer and np.shares_memory(m.numpy(), src)
    assert buffer.from_array(m, metal) is m
    buffer.sync(metal)  # a Metal call waits for its kernels: nothing to wait for
    b.free()
    with pytest.raises(RuntimeError, match="Cannot use a buffer after it was freed"):
        b.numpy()


# ----- Cuda buffers without a GPU ------------------------------------------------------------
# The wrapping and checking logic needs no device; operations that touch memory go through
# parpy's driver runtime, which FakeDevice below stands in for (host memory, same calls).

CUDA = CompileBackend.Cuda
driver_available = parpy.parpy._cuda_device()["available"]
no_driver = pytest.mark.skipif(driver_available, reason="a CUDA driver is present here")


class FakeCudaArray:
    """A __cuda_array_interface__ exporter at an address that is never dereferenced here."""

    def __init__(self, shape, typestr="<f4", ptr=0x7F0000001000, **extra):
        self.__cuda_array_interface__ = {"version": 3, "shape": shape, "typestr": typestr,
                                         "data": (ptr, False), "strides": None, **extra}


class FakeDevice:
    """The _cuda_* functions of parpy.parpy over host memory, recording allocations."""

    def __init__(self):
        self.blocks = {}
        self.freed = []
        self.syncs = 0
        self.alloc_devices = []  # the device of each allocation (-1: the current one)
        self.block_device = {}

    def _cuda_alloc(self, n, device=-1):
        self.alloc_devices.append(device)
        if n == 0:
            return 0
        block = ctypes.create_string_buffer(n)
        self.blocks[ctypes.addressof(block)] = block
        self.block_device[ctypes.addressof(block)] = max(device, 0)
        return ctypes.addressof(block)

    def _cuda_free(self, ptr):
        if ptr:
            assert ptr in self.blocks, "freed twice or never allocated"
            del self.blocks[ptr]
            self.freed.append(ptr)

    def _cuda_copy_htod(self, dst, src, n):
        ctypes.memmove(dst, src, n)

    _cuda_copy_dtoh = _cuda_copy_dtod = _cuda_copy_htod

    def _cuda_memset(self, ptr, value, n):
        ctypes.memset(ptr, value, n)

    def _cuda_sync(self, device=-1):
        self.syncs += 1

    def _cuda_pointer_device(self, ptr):
        assert ptr in self.blocks, "not memory of this device"
        return self.block_device[ptr]

    def _cuda_current_device(self):
        return 0


@pytest.fixture
def fake_device(monkeypatch):
    dev = FakeDevice()
    monkeypatch.setattr(buffer, "_native", dev)
    return dev


@no_driver
def test_cuda_buffers_need_a_driver():
    msg = "CUDA driver not available"
    with pytest.raises(RuntimeError, match=msg):
        buffer.empty((4,), ElemSize.F32, CUDA)
    with pytest.raises(RuntimeError, match=msg):
        buffer.zeros(4, DataType("<i4"), CUDA)
    with pytest.raises(RuntimeError, match=msg):
        buffer.from_array(np.ones(4, np.float32), CUDA)
    with pytest.raises(RuntimeError, match=msg):
        buffer.empty((0,), ElemSize.F32, CUDA)  # nothing to allocate, still no driver
    with pytest.raises(RuntimeError, match=msg):
        buffer.sync(CUDA)
    b = buffer.from_array(FakeCudaArray((4,)), CUDA)  # wrapping needs no driver...
    s = buffer.from_array(FakeCudaArray(()), CUDA)
    for op in (b.numpy, b.copy, b.sync, lambda: b.with_type(ElemSize.F64), lambda: float(s)):
        with pytest.raises(RuntimeError, match=msg):  # ...touching its memory does
            op()
    for name in ("_cuda_alloc", "_cuda_free", "_cuda_memset", "_cuda_copy_htod",
                 "_cuda_copy_dtoh", "_cuda_copy_dtod"):
        args = (0,) * {"_cuda_alloc": 1, "_cuda_free": 1}.get(name, 3)
        with pytest.raises(RuntimeError, match=msg):
            getattr(parpy.parpy, name)(*args)


def test_cuda_wraps_array_interface_without_copy():
    src = FakeCudaArray((2, 6), "<i4", ptr=0x7F0000002000)
    b = buffer.from_array(src, CUDA)
    assert isinstance(b, buffer.CudaBuffer) and b.backend == CUDA
    assert b.buf is src and b.ptr == 0x7F0000002000 and b.src is None
    assert b.shape == (2, 6) and b.dtype == DataType("<i4") and b.size() == 48
    assert buffer.from_array(b, CUDA) is b
    ai = b.__cuda_array_interface__
    assert ai["version"] == 3 and ai["typestr"] == "<i4" and ai["shape"] == (2, 6)
    assert ai["data"] == (0x7F0000002000, False) and ai["strides"] is None
    r = b.reshape(3, 4)
    assert r.shape == (3, 4) and r.ptr == b.ptr and r.buf is src and r.refcount is b.refcount
    assert b.refcount[0] == 2
    assert b.reshape((12,)).shape == (12,)
    assert b.refcount[0] == 2  # the temporary view is gone again
    with pytest.raises(ValueError, match=r"Cannot reshape buffer of shape \[2, 6\] to \[5\]"):
        b.reshape(5)
    f = b.with_type(ElemSize.F32)
    assert f.dtype == DataType("<f4") and f.ptr == b.ptr and f.refcount is b.refcount
    with pytest.raises(ValueError, match="Found unsupported data type: <class 'str'>"):
        b.with_type("f4")
    # Contiguous memory described with explicit strides is accepted (size-1 dims: any stride).
    s = FakeCudaArray((3, 1, 2), "<f8", strides=(16, 999, 8))
    assert buffer.from_array(s, CUDA).shape == (3, 1, 2)


@pytest.mark.parametrize("make, cause", [
    (lambda: FakeCudaArray((4,), data=(0x1000, True)), "read-only"),
    (lambda: FakeCudaArray((4, 4), strides=(4, 16)), "contiguous"),
    (lambda: FakeCudaArray((4,), data=None), "Buffer protocol not supported"),
    (lambda: FakeCudaArray((4,), "<c8"), "Unknown type identifier"),
    (lambda: FakeCudaArray((4,), mask=object()), "Masked"),
    (lambda: np.zeros((4, 4), np.float32)[:, 1], "contiguous"),
    (lambda: np.zeros(4, np.dtype(">f4")), "byte order"),
    (lambda: [1.0, 2.0], "Buffer protocol not supported"),
])
def test_cuda_conversion_errors(make, cause):
    t = make()
    with pytest.raises(ValueError, match="to a CUDA buffer") as e:
        buffer.from_array(t, CUDA)
    assert cause in str(e.value.__cause__)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"Cannot convert argument \[0. 0. 0. 0.\] to a CUDA buffer"):
        buffer.from_array(ro, CUDA)


def test_cuda_conversion_error_raised_by_the_interface():
    class RequiresGrad:  # torch raises RuntimeError from the property for such tensors
        @property
        def __cuda_array_interface__(self):
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad")

    with pytest.raises(ValueError, match="to a CUDA buffer") as e:
        buffer.from_array(RequiresGrad(), CUDA)
    assert "requires grad" in str(e.value.__cause__)
    with pytest.raises(ValueError, match="Found unsupported data type"):
        buffer.empty(4, np.float32, CUDA)


def test_cuda_buffer_as_jit_argument_without_gpu():
    b = buffer.from_array(FakeCudaArray((100,)), CUDA)
    with pytest.raises(RuntimeError, match=r"Argument #1 is a CUDA array, which is not supported "
                                           r"in CompileBackend\.Cpu\."):
        add_one(b, 100, opts=_cpu_opts())
    opts = parpy.par({"N": parpy.threads(100)})
    opts.backend = CUDA
    code = parpy.print_compiled(add_one, [b, 100], opts)  # code generation needs no GPU
    assert "__global__" in code


def test_freed_cuda_buffer_is_refused_by_a_call():
    """The error of a freed buffer's __cuda_array_interface__ reaches the caller (not "unsupported
    type")."""
    b = buffer.from_array(FakeCudaArray((100,)), CUDA)
    b.free()
    with pytest.raises(RuntimeError, match=FREED):
        add_one(b, 100, opts=_cpu_opts())


def _cpu_opts():
    opts = parpy.par({"N": parpy.threads(100)})
    opts.backend = CPU
    return opts


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8,
                                   np.float16, np.bool_, np.int16, np.uint64])
def test_cuda_round_trip_on_fake_device(fake_device, dtype):
    a = (np.arange(24) % 7).astype(dtype).reshape(4, 6)
    b = buffer.from_array(a, CUDA)
    assert b.src is a and b.ptr in fake_device.blocks
    assert b.dtype == DataType(a.dtype.str) and b.shape == (4, 6)
    out = b.numpy()
    assert out.dtype == a.dtype and out.ctypes.data != a.ctypes.data
    np.testing.assert_array_equal(out, a)
    c = b.copy()
    assert c.src is None and c.ptr != b.ptr
    np.testing.assert_array_equal(c.numpy(), a)


def test_cuda_views_free_once_and_copy_back(fake_device):
    a = np.arange(12, dtype=np.int32)
    b = buffer.from_array(a, CUDA)
    ptr = b.ptr
    r = b.reshape(3, 4)
    f = r.with_type(ElemSize.F32)  # same size: a view of the same memory
    assert f.ptr == ptr and f.src is a and b.refcount[0] == 3
    ctypes.memset(ptr, 0xFF, 4)  # "a kernel" writes -1 into element 0
    del b, r
    assert fake_device.freed == [] and a[0] == 0  # views alive: nothing freed or copied yet
    del f
    assert fake_device.freed == [ptr]  # freed exactly once, by the last view
    assert a[0] == -1 and a[1:].tolist() == list(range(1, 12))  # ... after copying back into src
    assert fake_device.syncs >= 1  # waited for the device before copying back


def test_cuda_free_copies_back_and_frees_once(fake_device):
    a = np.arange(8, dtype=np.int32)
    b = buffer.from_array(a, CUDA)
    ptr = b.ptr
    assert b._get_ptr() == ptr
    v = b.reshape(2, 4)
    ctypes.memset(ptr, 0xFF, 8)  # "a kernel" writes -1 into elements 0 and 1
    b.free()
    assert fake_device.freed == [ptr] and fake_device.syncs >= 1
    assert a[:2].tolist() == [-1, -1] and a[2:].tolist() == list(range(2, 8))
    for op in (b.numpy, v.numpy, b.copy, b._get_ptr, lambda view=v: view.__cuda_array_interface__,
               lambda view=v: view.reshape(8)):
        with pytest.raises(RuntimeError, match="Cannot use a buffer after it was freed"):
            op()
    b.free()
    del b, v
    assert fake_device.freed == [ptr]  # not freed twice


def test_cuda_empty_zeros_with_type_on_fake_device(fake_device):
    z = buffer.zeros((2, 3), ElemSize.F64, CUDA)
    assert z.src is None and z.shape == (2, 3) and z.size() == 48
    np.testing.assert_array_equal(z.numpy(), np.zeros((2, 3)))
    e = buffer.empty_like(z)
    assert isinstance(e, buffer.CudaBuffer) and e.dtype == z.dtype and e.ptr != z.ptr
    assert buffer.zeros_like(e).numpy().sum() == 0
    assert buffer.empty(7, DataType("<u1"), CUDA).shape == (7,)
    assert buffer.empty((0,), ElemSize.F32, CUDA).numpy().shape == (0,)
    i = buffer.from_array(np.arange(5, dtype=np.int32), CUDA)
    d = i.with_type(ElemSize.F64)  # other size: a converted copy, not a view
    assert d.refcount is not i.refcount and d.src is None and d.ptr != i.ptr
    np.testing.assert_array_equal(d.numpy(), np.arange(5, dtype=np.float64))
    s = buffer.from_array(np.array(2.5, np.float32), CUDA)
    assert float(s) == 2.5 and s.shape == ()
    with pytest.raises(ValueError, match="negative"):
        buffer.empty((-1,), ElemSize.F32, CUDA)
    ptrs = set(fake_device.blocks)
    del z, e, i, d, s
    assert not (ptrs & set(fake_device.blocks))  # all freed


def test_cuda_copy_in_failure_keeps_src(fake_device, monkeypatch):
    def broken(dst, src, n):
        raise RuntimeError("cuMemcpyHtoD: CUDA_ERROR_ILLEGAL_ADDRESS")

    monkeypatch.setattr(fake_device, "_cuda_copy_htod", broken)
    a = np.arange(4, dtype=np.float32)
    with pytest.raises(RuntimeError, match="ILLEGAL_ADDRESS"):
        buffer.from_array(a, CUDA)
    np.testing.assert_array_equal(a, np.arange(4, dtype=np.float32))  # not overwritten
    assert not fake_device.blocks  # the allocation was freed


def test_cuda_buffers_on_a_chosen_device(fake_device):
    z = buffer.zeros(8, ElemSize.F32, CUDA, device=1)
    e = buffer.empty((2, 3), ElemSize.I32, CUDA, device=0)
    a = np.arange(6, dtype=np.float64)
    f = buffer.from_array(a, CUDA, device=1)
    d = buffer.zeros(4, ElemSize.F32, CUDA)  # the current device
    assert fake_device.alloc_devices == [1, 0, 1, -1]
    assert z.device == 1 and e.device == 0 and f.device == 1 and not z.numpy().any()
    np.testing.assert_array_equal(f.numpy(), a)
    assert f.copy().device == 1  # a copy stays on its device
    # A buffer of a device array is that array, in place: on another device it is an error.
    assert buffer.from_array(f, CUDA, device=1) is f
    with pytest.raises(ValueError, match=r"Cannot make a buffer on CUDA device 0 of an array on device 1: it is "
                                         r"used in place\. Copy it to that device first"):
        buffer.from_array(f, CUDA, device=0)
    for bad in (-1, True, 1.0, "1"):
        with pytest.raises(ValueError, match="A CUDA device is a non-negative int"):
            buffer.zeros(4, ElemSize.F32, CUDA, device=bad)
    for backend in (CPU, CompileBackend.Metal):
        with pytest.raises(ValueError, match="Only Cuda buffers are made on a chosen device"):
            buffer.zeros(4, ElemSize.F32, backend, device=0)
        with pytest.raises(ValueError, match="Only Cuda buffers are made on a chosen device"):
            buffer.from_array(np.zeros(4), backend, device=0)
    del z, e, f, d
