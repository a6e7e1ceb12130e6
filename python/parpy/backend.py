"""Which backends can run here, and how a CompileOptions backend is resolved.

Cuda needs a CUDA driver with a device and a way to compile (nvcc on PATH or NVRTC); Metal needs
macOS and the metal-cpp headers; Cpu needs a host C++ compiler. Nothing here imports torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import shlex
import shutil
import sys

from .parpy import CompileBackend

__all__ = ["available", "backends", "host_cxx", "is_enabled", "reasons", "resolve"]

backends = [CompileBackend.Cuda, CompileBackend.Metal, CompileBackend.Cpu]

_NVRTC_NAMES = [
    "libnvrtc.so",
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "libnvrtc.so.11.2",
]

_METAL_HEADER_MESSAGE = (
    "The METAL_CPP_HEADER_PATH environment variable is not set. It must point to the "
    "directory containing the metal-cpp headers (https://developer.apple.com/metal/cpp/), "
    "which are required to build the generated Metal code"
)


def host_cxx() -> str | None:
    """The host C++ compiler: $CXX if it names an existing program, else c++, g++ or clang++."""
    cxx = os.environ.get("CXX")
    if cxx:
        parts = shlex.split(cxx)
        if parts and shutil.which(parts[0]):
            return cxx
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cuda_driver() -> tuple[ctypes.CDLL | None, str]:
    """The initialised CUDA driver library, or None and why it is unusable."""
    if sys.platform == "darwin":
        return None, "CUDA is not supported on macOS"
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None, "Could not load the CUDA driver library (libcuda.so.1)"
    rc = lib.cuInit(0)
    if rc != 0:
        return None, f"The CUDA driver could not be initialised (cuInit returned {rc})"
    count = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value == 0:
        return None, "Found no CUDA devices"
    return lib, ""


def _nvrtc_loadable() -> bool:
    names = list(_NVRTC_NAMES)
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root:
            names += [os.path.join(root, "lib64", n) for n in _NVRTC_NAMES]
    found = ctypes.util.find_library("nvrtc")
    if found:
        names.append(found)
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _cuda_reason() -> str:
    lib, reason = _cuda_driver()
    if lib is None:
        return reason
    if shutil.which("nvcc") is None and not _nvrtc_loadable():
        return (
            "Could not find 'nvcc' in path or the NVRTC library - one of them is required to "
            "build the generated CUDA C++ code"
        )
    return ""


def _metal_reason() -> str:
    if sys.platform != "darwin":
        return "Metal is only available on macOS"
    if not os.environ.get("METAL_CPP_HEADER_PATH"):
        return _METAL_HEADER_MESSAGE
    return ""


def _cpu_reason() -> str:
    if host_cxx() is None:
        return (
            "Could not find a C++ compiler - set the CXX environment variable or put "
            "'c++', 'g++' or 'clang++' in path"
        )
    return ""


@functools.cache
def _reason(backend: CompileBackend) -> str:
    """Why `backend` is not enabled; empty when it is. Worked out once per process."""
    if backend == CompileBackend.Cuda:
        return _cuda_reason()
    if backend == CompileBackend.Metal:
        return _metal_reason()
    if backend == CompileBackend.Cpu:
        return _cpu_reason()
    return f"{backend} is not a concrete backend"


def is_enabled(backend: CompileBackend, verbose: bool = False) -> bool:
    """Whether `backend` can compile and run code here; with `verbose`, prints why not."""
    reason = _reason(backend)
    if reason and verbose:
        print(f"Backend {backend} is not enabled: {reason}")
    return not reason


def reasons() -> dict[CompileBackend, tuple[bool, str]]:
    """For each backend: whether it is enabled, and why not (empty when enabled)."""
    return {b: (not _reason(b), _reason(b)) for b in backends}


available = [b for b in backends if is_enabled(b)]


def resolve(backend: CompileBackend, strict: bool, verbose: bool = False) -> CompileBackend:
    """The backend to compile for.

    Auto picks the first enabled of Cuda, Metal and Cpu. In strict mode (jit calls,
    compile_string) an explicit backend must be available; otherwise it is accepted as is, so
    code can be generated for a backend this machine cannot run.
    """
    if verbose:
        for b in backends:
            is_enabled(b, verbose=True)
    if backend == CompileBackend.Auto:
        if not available:
            raise RuntimeError(
                "Found no enabled GPU backends. For detailed information on why this is, "
                "enable the 'verbose_backend_resolution' flag in the compiler options."
            )
        return available[0]
    if strict and backend not in available:
        raise RuntimeError(
            f"Specified backend {backend} is not available. For more information, enable the "
            "'verbose_backend_resolution' flag in the compiler options."
        )
    return backend
