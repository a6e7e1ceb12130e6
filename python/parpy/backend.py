"""Which backends can run here, and how a CompileOptions backend is resolved.

Cuda needs a CUDA driver with a device and a way to compile (nvcc or NVRTC); Metal needs macOS
and the metal-cpp headers; Cpu needs a host C++ compiler. The native module decides both (one set
of rules for jit calls and for this module); nothing here imports torch.
"""

from __future__ import annotations

import functools

from .parpy import CompileBackend, _backend_reason, _host_cxx, _resolve_backend

__all__ = ["available", "backends", "host_cxx", "is_enabled", "reasons", "resolve"]

backends = [CompileBackend.Cuda, CompileBackend.Metal, CompileBackend.Cpu]


def host_cxx() -> str | None:
    """The host C++ compiler's path: the first word of $CXX if set, else c++, g++ or clang++ on PATH."""
    return _host_cxx()


@functools.cache
def _reason(backend: CompileBackend) -> str:
    """Why `backend` is not enabled; empty when it is. Worked out once per process."""
    return _backend_reason(backend)


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

    Auto picks the first enabled of Cuda, Metal and Cpu that this version generates code for. In
    strict mode (jit calls, compile_string) an explicit backend must be available; otherwise it is
    accepted as is, so code can be generated for a backend this machine cannot run.
    """
    if verbose:
        for b in backends:
            is_enabled(b, verbose=True)
    return _resolve_backend(backend, strict, available)
