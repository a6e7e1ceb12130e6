"""Host time of a cached jit call: µs per call of a tiny kernel, by argument kind.

Usage: PYTHONPATH=python python tools/call_overhead.py [calls]   (default 20000)

Cuda rows need a GPU (and torch or CuPy for theirs); rows that cannot run here say why. The
"interface" row passes the tensor's __cuda_array_interface__ through a plain object, the path
torch tensors took before the fast path, for comparison. Each row launches `calls` kernels and
synchronises once at the end, so the time is what the host spends per call (the GPU keeps up with
a 1024-element kernel). The "peer" rows launch the same kernel without parpy, in the same run:
torch's own in-place add, a CuPy RawKernel and a Triton kernel; the "floor" rows launch it from
C++ (benchmarks/launch_floor.cu, built where nvcc is found), the least any launcher can spend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import parpy

N = 1024
CUDA = parpy.CompileBackend.Cuda
CPU = parpy.CompileBackend.Cpu


@parpy.jit
def add1(x, N):
    parpy.label("N")
    for i in range(N):
        x[i] = x[i] + 1.0


def options(backend: parpy.CompileBackend) -> parpy.CompileOptions:
    # On Cpu, threads(n) is the OpenMP team size: one thread per core, not one per element.
    threads = N if backend == CUDA else os.cpu_count() or 1
    opts = parpy.par({"N": parpy.threads(threads)})
    opts.backend = backend
    return opts


class Interface:
    """The generic __cuda_array_interface__ path: the property is read on every call."""

    def __init__(self, t: Any) -> None:
        self.t = t

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return self.t.__cuda_array_interface__


def per_call_us(x: Any, backend: parpy.CompileBackend, sync: Callable[[], None], calls: int) -> float:
    opts = options(backend)
    for _ in range(10):  # compile and warm up
        add1(x, N, opts=opts)
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        add1(x, N, opts=opts)
    sync()
    return (time.perf_counter() - start) / calls * 1e6


def cuda_rows() -> tuple[list[tuple[str, Callable[[], Any], Callable[[], None]]], list[str]]:
    """(name, make argument, synchronise) for each Cuda row that can run, and why others can't."""
    rows: list[tuple[str, Callable[[], Any], Callable[[], None]]] = []
    skipped: list[str] = []
    if not parpy.backend.is_enabled(CUDA):
        _, why = parpy.backend.reasons()[CUDA]
        return rows, [f"all Cuda rows: the Cuda backend is not enabled ({why})"]
    sync = parpy.parpy._cuda_sync
    rows.append(("cuda  numpy array (copy in/out)", lambda: np.zeros(N, np.float32), sync))
    rows.append(("cuda  parpy CudaBuffer",
                 lambda: parpy.buffer.zeros(N, parpy.types.F32, CUDA), sync))
    try:
        import torch

        if not torch.cuda.is_available():
            raise ImportError("torch has no CUDA here")
        rows.append(("cuda  torch tensor", lambda: torch.zeros(N, device="cuda"),
                     torch.cuda.synchronize))
        rows.append(("cuda  torch via interface object",
                     lambda: Interface(torch.zeros(N, device="cuda")), torch.cuda.synchronize))
    except ImportError as e:
        skipped.append(f"torch rows: {e}")
    try:
        import cupy

        rows.append(("cuda  cupy array", lambda: cupy.zeros(N, cupy.float32),
                     cupy.cuda.runtime.deviceSynchronize))
    except ImportError as e:
        skipped.append(f"cupy row: {e}")
    return rows, skipped


RAW_ADD1 = r"""
extern "C" __global__ void add1(float* x, long long n) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) x[i] = x[i] + 1.0f;
}
"""


def timed_us(call: Callable[[], Any], sync: Callable[[], None], calls: int) -> float:
    for _ in range(10):
        call()
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    sync()
    return (time.perf_counter() - start) / calls * 1e6


def peer_rows() -> tuple[list[tuple[str, Callable[[], Any], Callable[[], None]]], list[str]]:
    """(name, one launch of the same kernel without parpy, synchronise) for each peer that can run."""
    rows: list[tuple[str, Callable[[], Any], Callable[[], None]]] = []
    skipped: list[str] = []
    try:
        import torch

        if not torch.cuda.is_available():
            raise ImportError("torch has no CUDA here")
        t = torch.zeros(N, device="cuda")
        rows.append(("peer  torch x.add_(1.0)", lambda: t.add_(1.0), torch.cuda.synchronize))
    except ImportError as e:
        return rows, [f"peer rows: {e}"]
    try:
        import cupy

        kernel = cupy.RawKernel(RAW_ADD1, "add1")
        c = cupy.zeros(N, cupy.float32)
        n = np.int64(N)
        rows.append(("peer  cupy RawKernel", lambda: kernel((1,), (N,), (c, n)),
                     cupy.cuda.runtime.deviceSynchronize))
    except ImportError as e:
        skipped.append(f"cupy peer: {e}")
    try:
        import triton
        import triton.language as tl

        @triton.jit
        def tadd1(x_ptr, n, BLOCK: tl.constexpr):
            i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
            tl.store(x_ptr + i, tl.load(x_ptr + i, mask=i < n) + 1.0, mask=i < n)

        tt = torch.zeros(N, device="cuda")
        rows.append(("peer  triton kernel", lambda: tadd1[(1,)](tt, N, BLOCK=N), torch.cuda.synchronize))
    except ImportError as e:
        skipped.append(f"triton peer: {e}")
    return rows, skipped


def floor_rows(calls: int) -> tuple[list[tuple[str, float]], list[str]]:
    """µs per launch from C++ (driver API, runtime API), or why not."""
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc")
                                    else None)
    if nvcc is None:
        return [], ["floor rows: nvcc not found"]
    src = Path(__file__).resolve().parents[1] / "benchmarks" / "launch_floor.cu"
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "launch_floor")
        r = subprocess.run([nvcc, "-O2", "-o", exe, str(src), "-ldl"], capture_output=True, text=True,
                           check=False)
        if r.returncode != 0:
            return [], [f"floor rows: nvcc failed: {r.stderr.strip()[-300:]}"]
        r = subprocess.run([exe, str(calls)], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            return [], [f"floor rows: launch_floor exited with {r.returncode}"]
    driver, runtime = (float(v) for v in r.stdout.split())
    return [("floor C++ cuLaunchKernel", driver), ("floor C++ <<<...>>>", runtime)], []


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    print(f"{calls} cached calls of a {N}-element kernel; host µs per call")
    if parpy.backend.is_enabled(CPU):
        print(f"  {'cpu   numpy array':36s} {per_call_us(np.zeros(N), CPU, lambda: None, calls):8.2f}")
    rows, skipped = cuda_rows()
    for name, make, sync in rows:
        print(f"  {name:36s} {per_call_us(make(), CUDA, sync, calls):8.2f}")
    peers, peers_skipped = peer_rows() if rows else ([], [])
    for name, call, sync in peers:
        print(f"  {name:36s} {timed_us(call, sync, calls):8.2f}")
    floors, floors_skipped = floor_rows(calls) if rows else ([], [])
    for name, us in floors:
        print(f"  {name:36s} {us:8.2f}")
    for why in skipped + peers_skipped + floors_skipped:
        print(f"  skipped {why}")


if __name__ == "__main__":
    main()
