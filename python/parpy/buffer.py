"""Buffers: arrays owned by a backend (SPEC B 1.12). On the Cpu backend a buffer is host memory
shared with numpy without copies; GPU buffers come with their backends."""

from __future__ import annotations

from typing import Any

import numpy as np

from .parpy import CompileBackend, DataType, ElemSize

__all__ = [
    "Buffer",
    "CpuBuffer",
    "DataType",
    "DummyBuffer",
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


def _unsupported(backend: Any) -> RuntimeError:
    return RuntimeError(f"Buffers of backend {backend} are not part of this version of parpy yet")


def sync(backend: CompileBackend) -> None:
    """Waits for all work submitted to ``backend``. Cpu work is synchronous."""
    if backend == CompileBackend.Cpu:
        return
    if backend == CompileBackend.Cuda:
        from .parpy import _cuda_sync

        _cuda_sync()
        return
    raise _unsupported(backend)


class Buffer:
    """An array of a backend. Views made by ``reshape``/``with_type`` share ``refcount``."""

    def __init__(self, buf: Any, shape: tuple[int, ...], dtype: DataType, src: Any = None,
                 refcount: list[int] | None = None) -> None:
        if type(self) is Buffer:
            raise RuntimeError("Cannot construct instance of base Buffer class")
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
        n = 1
        for d in self.shape:
            n *= d
        return n * self.dtype.size()

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


class CpuBuffer(Buffer):
    """Host memory of the Cpu backend; shares memory with ``numpy()`` (no copies)."""

    backend = CompileBackend.Cpu

    @property
    def __array_interface__(self) -> dict[str, Any]:
        return self.buf.__array_interface__

    def numpy(self) -> np.ndarray:
        return self.buf

    def copy(self) -> CpuBuffer:
        return CpuBuffer(self.buf.copy(), self.shape, self.dtype)

    def reshape(self, *dims: Any) -> CpuBuffer:
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        n = 1
        for d in dims:
            n *= d
        if n != self.buf.size:
            raise ValueError(f"Cannot reshape buffer of shape {list(self.shape)} to {list(dims)}")
        return CpuBuffer(self.buf.reshape(dims), tuple(dims), self.dtype, self.src, self.refcount)

    def with_type(self, dt: Any) -> CpuBuffer:
        dt = _dtype(dt)
        if dt.size() == self.dtype.size():
            view = self.buf.view(_np_dtype(dt))
            return CpuBuffer(view, self.shape, dt, self.src, self.refcount)
        return CpuBuffer(self.buf.astype(_np_dtype(dt)), self.shape, dt)


def _cpu(arr: np.ndarray) -> CpuBuffer:
    return CpuBuffer(arr, arr.shape, DataType(arr.__array_interface__["typestr"]))


def empty(shape: Any, dtype: Any, backend: CompileBackend) -> Buffer:
    if backend != CompileBackend.Cpu:
        raise _unsupported(backend)
    return _cpu(np.empty(shape, dtype=_np_dtype(_dtype(dtype))))


def zeros(shape: Any, dtype: Any, backend: CompileBackend) -> Buffer:
    if backend != CompileBackend.Cpu:
        raise _unsupported(backend)
    return _cpu(np.zeros(shape, dtype=_np_dtype(_dtype(dtype))))


def empty_like(b: Buffer) -> Buffer:
    return empty(b.shape, b.dtype, getattr(b, "backend", CompileBackend.Cpu))


def zeros_like(b: Buffer) -> Buffer:
    return zeros(b.shape, b.dtype, getattr(b, "backend", CompileBackend.Cpu))


def from_array(t: Any, backend: CompileBackend | None) -> Buffer:
    """Wraps an array for ``backend`` (``None``: a DummyBuffer for code generation)."""
    if backend is None:
        try:
            return DummyBuffer(np.asarray(t))
        except Exception as e:
            raise RuntimeError(f"Cannot convert argument {t} to CPU buffer") from e
    if backend != CompileBackend.Cpu:
        if backend in (CompileBackend.Cuda, CompileBackend.Metal):
            raise _unsupported(backend)
        raise ValueError(f"Cannot convert to buffer of unknown backend {backend}")
    if isinstance(t, CpuBuffer):
        return t
    arr = np.asarray(t)
    if not arr.flags.c_contiguous:
        raise ValueError("Buffers must only operate on contiguous memory")
    if not arr.flags.writeable:
        raise ValueError("Cannot construct buffer from read-only memory")
    return _cpu(arr)
