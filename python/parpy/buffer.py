"""Buffers: arrays owned by a backend (docs/language.md, Arguments). On the Cpu backend a buffer is
host memory shared with numpy without copies. On the Cuda backend it is device memory of parpy's own
runtime (no torch) or a wrapped ``__cuda_array_interface__`` array; both pass to jit functions
without copies. On the Metal backend it is host memory too (Apple GPUs share memory with the CPU),
which a call places in Metal buffers as it does numpy arrays (docs/howto/buffers.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import parpy as _native
from .parpy import CompileBackend, DataType, ElemSize

__all__ = [
    "Buffer",
    "CpuBuffer",
    "CudaBuffer",
    "DataType",
    "DummyBuffer",
    "MetalBuffer",
    "empty",
    "empty_like",
    "from_array",
    "sync",
    "zeros",
    "zeros_like",
]


def _dtype(dtype: Any) -> DataType:
    if isinstance(dtype, DataType):
        return dtype
    if isinstance(dtype, ElemSize):
        return DataType.from_elem_size(dtype)
    raise ValueError(f"Found unsupported data type: {type(dtype)}")


def _np_dtype(dt: DataType) -> np.dtype:
    return np.dtype(str(dt))


def _count(shape: tuple[Any, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _shape(shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(int(d) < 0 for d in dims):
        raise ValueError(f"Cannot create a buffer of negative shape {list(dims)}")
    return tuple(int(d) for d in dims)


def _unsupported(backend: Any) -> RuntimeError:
    return RuntimeError(f"Buffers of backend {backend} are not part of this version of parpy yet")


def sync(backend: CompileBackend) -> None:
    """Waits for all work submitted to ``backend``. Cpu work is synchronous; so is a Metal call,
    which waits for its kernels before it returns."""
    if backend in (CompileBackend.Cpu, CompileBackend.Metal):
        return
    if backend == CompileBackend.Cuda:
        _native._cuda_sync()
        return
    raise _unsupported(backend)


class Buffer:
    """An array of a backend. Views made by ``reshape``/``with_type`` share ``refcount``."""

    def __init__(self, buf: Any, shape: tuple[int, ...], dtype: DataType, src: Any = None,
                 refcount: list[int] | None = None) -> None:
        if type(self) is Buffer:
            raise RuntimeError("Cannot construct instance of base Buffer class")
        if refcount is not None and refcount[0] <= 0:
            raise RuntimeError("Cannot use a buffer after it was freed")
        self.buf = buf
        self.shape = tuple(shape)
        self.dtype = dtype
        self.src = src
        self.refcount = refcount if refcount is not None else [0]
        self.refcount[0] += 1

    def __del__(self) -> None:
        rc = getattr(self, "refcount", None)
        if rc is not None:
            rc[0] -= 1
            if rc[0] == 0:
                self._deconstruct()

    def _deconstruct(self) -> None:
        """Runs once, when the last view of the memory goes or at ``free()``."""

    def free(self) -> None:
        """Releases the memory now instead of when the last view goes: the data is first copied
        back into ``src`` (the array the buffer was made from), if there is one. Neither this
        buffer nor its views may be used afterwards."""
        if self.refcount[0] > 0:
            self.refcount[0] = 0  # no view's __del__ reaches 0 again
            self._deconstruct()

    def _check_alive(self) -> None:
        if self.refcount[0] <= 0:
            raise RuntimeError("Cannot use a buffer after it was freed")

    def _get_ptr(self) -> int:
        """The address of the buffer's data."""
        raise NotImplementedError

    def _reshaped(self, dims: tuple[Any, ...]) -> tuple[int, ...]:
        """The shape ``reshape(*dims)`` asks for, checked against the element count."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if _count(dims) != _count(self.shape):
            raise ValueError(f"Cannot reshape buffer of shape {list(self.shape)} to {list(dims)}")
        return tuple(dims)

    def _scalar(self, what: str) -> Any:
        if self.shape != ():
            raise ValueError(f"Cannot convert buffer of shape {list(self.shape)} to {what}")
        return self.numpy()[()]

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def __bool__(self) -> bool:
        return bool(self._scalar("bool"))

    def __index__(self) -> int:
        if self.shape != () or not self.dtype.is_integer():
            raise ValueError(
                f"Cannot use buffer of shape {list(self.shape)} and type {self.dtype} as index")
        return int(self.numpy()[()])

    def sync(self) -> None:
        pass

    def size(self) -> int:
        """Size in bytes."""
        return _count(self.shape) * self.dtype.size()

    def numpy(self) -> np.ndarray:
        raise NotImplementedError

    def torch(self) -> Any:
        import torch

        return torch.from_numpy(self.numpy())

    torch_ref = torch


class DummyBuffer(Buffer):
    """Shape and dtype of a host array, for code generation only."""

    def __init__(self, arr: np.ndarray) -> None:
        super().__init__(arr, arr.shape, DataType(arr.__array_interface__["typestr"]))

    @property
    def __array_interface__(self) -> dict[str, Any]:
        return self.buf.__array_interface__

    def numpy(self) -> np.ndarray:
        return self.buf

    def _get_ptr(self) -> int:
        return int(self.buf.ctypes.data)


class CpuBuffer(Buffer):
    """Host memory of the Cpu backend; shares memory with ``numpy()`` (no copies).

    A buffer made by ``from_array`` keeps the array as ``src``. It normally shares that array's
    memory; when it had to copy (an object whose ``__array__`` returns a copy), its data is
    copied back into ``src`` when the last view goes or at ``free()``.
    """

    backend = CompileBackend.Cpu

    @property
    def __array_interface__(self) -> dict[str, Any]:
        self._check_alive()
        return self.buf.__array_interface__

    def numpy(self) -> np.ndarray:
        self._check_alive()
        return self.buf

    def _get_ptr(self) -> int:
        self._check_alive()
        return int(self.buf.ctypes.data)

    def _deconstruct(self) -> None:
        if self.src is None:
            return
        dst = _writable_host_memory(self.src)
        if dst is not None and not np.shares_memory(dst, self.buf):
            np.copyto(dst, self.buf.reshape(dst.shape), casting="no")

    def copy(self) -> CpuBuffer:
        self._check_alive()
        return CpuBuffer(self.buf.copy(), self.shape, self.dtype)

    def reshape(self, *dims: Any) -> CpuBuffer:
        shape = self._reshaped(dims)
        return CpuBuffer(self.buf.reshape(shape), shape, self.dtype, self.src, self.refcount)

    def with_type(self, dt: Any) -> CpuBuffer:
        self._check_alive()
        dt = _dtype(dt)
        if dt.size() == self.dtype.size():
            view = self.buf.view(_np_dtype(dt))
            return CpuBuffer(view, self.shape, dt, self.src, self.refcount)
        return CpuBuffer(self.buf.astype(_np_dtype(dt)), self.shape, dt)


class MetalBuffer(CpuBuffer):
    """An array of the Metal backend: host memory shared with ``numpy()``, as on the Cpu backend,
    since an Apple GPU shares memory with the CPU. A jit call places it in Metal buffers and
    copies written data back, as it does numpy arrays: it passes to jit functions as they do, and
    code written with buffers runs unchanged on Metal."""

    backend = CompileBackend.Metal

    def copy(self) -> MetalBuffer:
        self._check_alive()
        return MetalBuffer(self.buf.copy(), self.shape, self.dtype)

    def reshape(self, *dims: Any) -> MetalBuffer:
        shape = self._reshaped(dims)
        return MetalBuffer(self.buf.reshape(shape), shape, self.dtype, self.src, self.refcount)

    def with_type(self, dt: Any) -> MetalBuffer:
        self._check_alive()
        dt = _dtype(dt)
        if dt.size() == self.dtype.size():
            return MetalBuffer(self.buf.view(_np_dtype(dt)), self.shape, dt, self.src, self.refcount)
        return MetalBuffer(self.buf.astype(_np_dtype(dt)), self.shape, dt)


class CudaBuffer(Buffer):
    """Device memory of the Cuda backend.

    ``buf`` is either the address (an int) of an allocation made by parpy's runtime on the
    current device, freed when the last view goes, or a wrapped ``__cuda_array_interface__``
    object (torch, CuPy, ...) whose memory is used in place and which the buffer keeps alive.
    ``ptr`` is the data address and ``device`` the CUDA device that holds it. The buffer exports
    ``__cuda_array_interface__`` itself, so jit calls, torch and CuPy use it in place (a jit call
    runs on the buffer's device). Methods that read the data first wait for the device, since
    work on any stream may still be writing it.
    """

    backend = CompileBackend.Cuda
    lib = _native

    def __init__(self, buf: Any, shape: tuple[int, ...], dtype: DataType, src: Any = None,
                 refcount: list[int] | None = None, ptr: int | None = None) -> None:
        super().__init__(buf, shape, dtype, src, refcount)
        self.ptr = buf if ptr is None else ptr
        self._device: int | None = None

    @property
    def device(self) -> int:
        """The CUDA device that holds the buffer (the current device for an empty buffer)."""
        if self._device is None:
            self._device = (_native._cuda_pointer_device(self.ptr) if self.ptr
                            else _native._cuda_current_device())
        return self._device

    def _get_ptr(self) -> int:
        self._check_alive()
        return int(self.ptr)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        self._check_alive()
        # Stream 1 (the legacy default stream): parpy launches work on buffers there unless a
        # torch or CuPy argument of the call names another stream.
        return {"version": 3, "typestr": str(self.dtype), "shape": self.shape, "strides": None,
                "data": (self.ptr, False), "stream": 1}

    def _view(self, shape: tuple[int, ...], dtype: DataType) -> CudaBuffer:
        view = CudaBuffer(self.buf, shape, dtype, self.src, self.refcount, self.ptr)
        view._device = self._device
        return view

    def _deconstruct(self) -> None:
        try:
            if self.src is not None:
                # The data goes back to the host array the buffer was made from.
                self.sync()
                _native._cuda_copy_dtoh(_host_view(self.src).ctypes.data, self.ptr, self.size())
        finally:
            if isinstance(self.buf, int):
                _native._cuda_free(self.buf)

    def sync(self) -> None:
        _native._cuda_sync(self.device)

    def numpy(self) -> np.ndarray:
        self._check_alive()
        out = np.empty(self.shape, dtype=_np_dtype(self.dtype))
        self.sync()
        _native._cuda_copy_dtoh(out.ctypes.data, self.ptr, out.nbytes)
        return out

    def torch(self) -> Any:
        """A torch CUDA tensor sharing this buffer's memory (it keeps the buffer alive)."""
        import torch

        buf = self.buf
        if isinstance(buf, torch.Tensor) and tuple(buf.shape) == self.shape and \
                DataType(buf.__cuda_array_interface__["typestr"]) == self.dtype:
            return buf
        return torch.as_tensor(self, device=f"cuda:{self.device}")

    torch_ref = torch

    def copy(self) -> CudaBuffer:
        self._check_alive()
        out = _cuda_alloc(self.shape, self.dtype, device=self.device)
        self.sync()
        _native._cuda_copy_dtod(out.ptr, self.ptr, self.size())
        return out

    def reshape(self, *dims: Any) -> CudaBuffer:
        return self._view(self._reshaped(dims), self.dtype)

    def with_type(self, dt: Any) -> CudaBuffer:
        self._check_alive()
        dt = _dtype(dt)
        if dt.size() == self.dtype.size():
            return self._view(self.shape, dt)
        # A converting copy through the host: parpy has no conversion kernel of its own.
        return _cuda_from_host(self.numpy().astype(_np_dtype(dt)), dt, None)


def _host_view(t: Any) -> np.ndarray:
    """``t``'s memory as a numpy array (no copy): writable, C-contiguous, native byte order."""
    if not (isinstance(t, np.ndarray) or hasattr(t, "__array_interface__")
            or hasattr(t, "__array__") or _has_buffer(t)):
        raise ValueError("Buffer protocol not supported")
    arr = np.asarray(t)
    if not arr.flags.writeable:
        raise ValueError("Cannot construct buffer from read-only memory")
    if not arr.flags.c_contiguous:
        raise ValueError("Buffers must only operate on contiguous memory")
    if not arr.dtype.isnative:
        raise ValueError("Buffers must use the native byte order")
    return arr


def _writable_host_memory(t: Any) -> np.ndarray | None:
    """``t``'s own memory as a numpy array, or None if it exposes none to write into."""
    if not (isinstance(t, np.ndarray) or hasattr(t, "__array_interface__") or _has_buffer(t)):
        return None
    arr = np.asarray(t)
    return arr if arr.flags.writeable else None


def _has_buffer(t: Any) -> bool:
    try:
        memoryview(t)
    except TypeError:
        return False
    return True


def _contiguous(shape: tuple[int, ...], strides: Any, itemsize: int) -> bool:
    """Whether interface ``strides`` describe C-contiguous memory (None does)."""
    if strides is None:
        return True
    expect = itemsize
    for n, stride in zip(reversed(shape), reversed(tuple(strides))):
        if n != 1 and stride != expect:
            return False
        expect *= n
    return True


def _device_interface(ai: dict[str, Any]) -> tuple[tuple[int, ...], DataType, int]:
    """Shape, dtype and address from a ``__cuda_array_interface__`` of writable, unmasked,
    C-contiguous memory."""
    data = ai.get("data")
    if data is None:
        raise ValueError("Buffer protocol not supported")
    ptr, readonly = data
    if readonly:
        raise ValueError("Cannot construct buffer from read-only memory")
    if ai.get("mask") is not None:
        raise ValueError("Masked arrays are not supported")
    shape = tuple(int(d) for d in ai["shape"])
    dtype = DataType(ai["typestr"])
    if not _contiguous(shape, ai.get("strides"), dtype.size()):
        raise ValueError("Buffers must only operate on contiguous memory")
    return shape, dtype, int(ptr)


def _cuda_alloc(shape: tuple[int, ...], dtype: DataType, src: Any = None, device: int = -1) -> CudaBuffer:
    nbytes = _count(shape) * dtype.size()
    ptr = _native._cuda_alloc(nbytes) if device < 0 else _native._cuda_alloc(nbytes, device)
    return CudaBuffer(ptr, shape, dtype, src)


def _cuda_from_host(arr: np.ndarray, dtype: DataType, src: Any, device: int = -1) -> CudaBuffer:
    b = _cuda_alloc(arr.shape, dtype, device=device)
    _native._cuda_copy_htod(b.ptr, arr.ctypes.data, arr.nbytes)
    b.src = src  # only now: a buffer whose copy-in failed must not write back into src
    return b


def _cuda_from_array(t: Any, device: int | None = None) -> CudaBuffer:
    if isinstance(t, CudaBuffer) and (device is None or t.device == device):
        return t
    # Only the checks are wrapped: a failing driver stays a RuntimeError naming its cause.
    try:
        ai = getattr(t, "__cuda_array_interface__", None)
        if ai is not None:
            shape, dtype, ptr = _device_interface(ai)
        else:
            arr = _host_view(t)
            dtype = DataType(arr.dtype.str)
    except Exception as e:
        raise ValueError(f"Cannot convert argument {t} to a CUDA buffer") from e
    if ai is not None:
        if device is not None and ptr and _native._cuda_pointer_device(ptr) != device:
            raise ValueError(f"Cannot make a buffer on CUDA device {device} of an array on device "
                             f"{_native._cuda_pointer_device(ptr)}: it is used in place. Copy it to that "
                             "device first (for example with tensor.to(\"cuda:" + str(device) + "\")).")
        return CudaBuffer(t, shape, dtype, ptr=ptr)
    return _cuda_from_host(arr, dtype, t, -1 if device is None else device)


def _host(arr: np.ndarray, backend: CompileBackend) -> CpuBuffer:
    kind = MetalBuffer if backend == CompileBackend.Metal else CpuBuffer
    return kind(arr, arr.shape, DataType(arr.__array_interface__["typestr"]))


def _host_backend(backend: CompileBackend) -> CompileBackend:
    if backend not in (CompileBackend.Cpu, CompileBackend.Metal):
        raise _unsupported(backend)
    return backend


def _device(backend: CompileBackend, device: int | None) -> int:
    """The CUDA device a new buffer goes to (-1: the current one); only Cuda buffers choose."""
    if device is None:
        return -1
    if backend != CompileBackend.Cuda:
        raise ValueError(f"Only Cuda buffers are made on a chosen device, not those of {backend}")
    if isinstance(device, bool) or not isinstance(device, int) or device < 0:
        raise ValueError(f"A CUDA device is a non-negative int, not {device!r}")
    return device


def empty(shape: Any, dtype: Any, backend: CompileBackend, device: int | None = None) -> Buffer:
    """An uninitialised buffer; on Cuda on CUDA device `device` (default: the current one)."""
    dev = _device(backend, device)
    if backend == CompileBackend.Cuda:
        return _cuda_alloc(_shape(shape), _dtype(dtype), device=dev)
    return _host(np.empty(shape, dtype=_np_dtype(_dtype(dtype))), _host_backend(backend))


def zeros(shape: Any, dtype: Any, backend: CompileBackend, device: int | None = None) -> Buffer:
    """A buffer of zeros; on Cuda on CUDA device `device` (default: the current one)."""
    dev = _device(backend, device)
    if backend == CompileBackend.Cuda:
        b = _cuda_alloc(_shape(shape), _dtype(dtype), device=dev)
        _native._cuda_memset(b.ptr, 0, b.size())
        return b
    return _host(np.zeros(shape, dtype=_np_dtype(_dtype(dtype))), _host_backend(backend))


def empty_like(b: Buffer) -> Buffer:
    return empty(b.shape, b.dtype, getattr(b, "backend", CompileBackend.Cpu))


def zeros_like(b: Buffer) -> Buffer:
    return zeros(b.shape, b.dtype, getattr(b, "backend", CompileBackend.Cpu))


def from_array(t: Any, backend: CompileBackend | None, device: int | None = None) -> Buffer:
    """Wraps an array for ``backend`` (``None``: a DummyBuffer for code generation).

    Cuda: ``__cuda_array_interface__`` objects are used in place (on ``device`` if given, else
    ValueError); host arrays are copied to a new allocation on CUDA device ``device`` (default:
    the current one) that remembers them as ``src`` and copies its data back when it goes.
    """
    if backend is None:
        try:
            return DummyBuffer(np.asarray(t))
        except Exception as e:
            raise RuntimeError(f"Cannot convert argument {t} to CPU buffer") from e
    if backend == CompileBackend.Cuda:
        return _cuda_from_array(t, None if device is None else _device(backend, device))
    if device is not None:
        _device(backend if backend is not None else CompileBackend.Cpu, device)
    if backend not in (CompileBackend.Cpu, CompileBackend.Metal):
        raise ValueError(f"Cannot convert to buffer of unknown backend {backend}")
    kind = MetalBuffer if backend == CompileBackend.Metal else CpuBuffer
    if type(t) is kind:
        return t
    arr = np.asarray(t)
    if not arr.flags.c_contiguous:
        raise ValueError("Buffers must only operate on contiguous memory")
    if not arr.flags.writeable:
        raise ValueError("Cannot construct buffer from read-only memory")
    return kind(arr, arr.shape, DataType(arr.__array_interface__["typestr"]), src=t)
