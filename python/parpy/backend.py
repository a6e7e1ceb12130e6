"""Which backends can run here, and how a CompileOptions backend is resolved.

Cuda needs a CUDA driver with a device and a way to compile (nvcc or NVRTC); Metal needs macOS
and the metal-cpp headers; Cpu needs a host C++ compiler. The native module decides both (one set
of rules for jit calls and for this module); nothing here imports torch.

Nothing is worked out at import: asking about Cuda initialises the CUDA driver (cuInit), after
which a process forked from this one cannot use CUDA, so only what is asked for is checked
(`available` when it is read, `is_enabled(b)` for `b` alone). A forked child asks again: where the
parent had initialised CUDA, Cuda is not enabled there, and resolving Auto fails with the reason
instead of choosing the CPU (README, "Backends").
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from .parpy import CompileBackend, _backend_reason, _host_cxx, _resolve_backend

if TYPE_CHECKING:
    available: list[CompileBackend]  # the enabled backends, worked out when read (__getattr__)

__all__ = ["available", "backends", "host_cxx", "is_enabled", "reasons", "resolve"]

backends = [CompileBackend.Cuda, CompileBackend.Metal, CompileBackend.Cpu]


def host_cxx() -> str | None:
    """The host C++ compiler's path: the first word of $CXX if set, else c++, g++ or clang++ on PATH."""
    return _host_cxx()


@functools.cache
def _reason(backend: CompileBackend) -> str:
    """Why `backend` is not enabled; empty when it is. Worked out once per process."""
    return _backend_reason(backend)


# A forked child inherits the parent's answers, which may not hold there (CUDA does not survive
# fork once initialised): it asks the native module again, which knows.
os.register_at_fork(after_in_child=_reason.cache_clear)


def is_enabled(backend: CompileBackend, verbose: bool = False) -> bool:
    """Whether `backend` can compile and run code here; with `verbose`, prints why not."""
    reason = _reason(backend)
    if reason and verbose:
        print(f"Backend {backend} is not enabled: {reason}")
    return not reason


def reasons() -> dict[CompileBackend, tuple[bool, str]]:
    """For each backend: whether it is enabled, and why not (empty when enabled)."""
    return {b: (not _reason(b), _reason(b)) for b in backends}


def _available() -> list[CompileBackend]:
    """The enabled backends; a list assigned to the module's `available` (as tests do) wins."""
    if "available" in globals():
        return globals()["available"]
    return [b for b in backends if is_enabled(b)]


def __getattr__(name: str) -> object:
    # `available` is computed when read (it asks about Cuda, which initialises the driver).
    if name == "available":
        return _available()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve(backend: CompileBackend, strict: bool, verbose: bool = False) -> CompileBackend:
    """The backend to compile for.

    Auto picks the first enabled of Cuda, Metal and Cpu that this version generates code for. In
    strict mode (jit calls, compile_string) an explicit backend must be available (only it is
    checked); otherwise it is accepted as is, so code can be generated for a backend this machine
    cannot run. In a process forked after its parent had initialised CUDA, Auto and Cuda raise
    RuntimeError saying so.
    """
    if verbose:
        for b in backends:
            is_enabled(b, verbose=True)
    if backend == CompileBackend.Auto:
        return _resolve_backend(backend, strict, _available())
    return _resolve_backend(backend, strict, [backend] if strict and is_enabled(backend) else [])
