"""Contiguous copies of non-contiguous CUDA arrays (docs/language.md, Arguments).

On the Cuda backend a torch or CuPy array that is not C-contiguous runs on a C-contiguous copy
made on the GPU by the array's own library, so the copy is queued on the stream that library works
on, which is the stream the call launches on. After the call the copy is written back into the
array, also by its library on that stream, where the function may write it. The argument
marshalling (src/bindings/args.cpp) calls these functions; other arrays have no copy here."""

from typing import Any


def library(a: Any) -> str | None:
    """"torch" or "cupy" for an array of one of those libraries, else None."""
    for cls in type(a).__mro__:
        top = (getattr(cls, "__module__", None) or "").split(".")[0]
        if top == "torch" and cls.__name__ == "Tensor":
            return "torch"
        if top == "cupy" and "ndarray" in cls.__name__:
            return "cupy"
    return None


def copy(a: Any) -> tuple[Any, int, int] | None:
    """(a C-contiguous copy of `a`, the copy's device pointer, the stream it was made on), or None
    where `a` is of no library known here."""
    lib = library(a)
    if lib == "torch":
        import torch

        c = a.contiguous()
        return c, c.data_ptr(), torch.cuda.current_stream(a.device).cuda_stream
    if lib == "cupy":
        import cupy

        with a.device:  # a copy on the array's device, whichever device is current
            c = a.copy(order="C")
            return c, c.data.ptr, cupy.cuda.get_current_stream().ptr
    return None


def write_back(a: Any, c: Any) -> None:
    """Writes copy `c` (from copy()) back into `a`."""
    if library(a) == "torch":
        a.copy_(c)
    else:
        with a.device:
            a[...] = c
