"""Where a single CSR SpMV call's time goes on the GPU: the host's work per call (many calls on
tiny arrays, wall clock) and one call between two events, for parpy and torch's CSR product.
Run on a machine with an NVIDIA GPU and torch: python tools/spmv_call_time.py"""
import sys
import time

import torch

sys.path.insert(0, "benchmarks")
import parpy
from kernels import power_law_csr, spmv_csr_warp
from parpy import parpy as native

from gpu import gpu_time


def wall_us(f, n=20000):
    f()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    t = (time.perf_counter() - t0) / n * 1e6
    torch.cuda.synchronize()
    return t


def setup(N):
    ip, ix, d = (torch.from_numpy(a).cuda() for a in power_law_csr(N, 16))
    x = torch.randn(N, device="cuda")
    y = torch.zeros(N, device="cuda")
    A = torch.sparse_csr_tensor(ip, ix, d, (N, N))
    o = parpy.par({"rows": parpy.threads(N), "nz": parpy.threads(8).reduce()})
    return (lambda: spmv_csr_warp(ip, ix, d, x, y, N, opts=o)), (lambda: A @ x), (lambda: x.add_(1.0))


for N in (256, 2**20):
    p, t, add = setup(N)
    print(f"N={N}: host us per call (wall, 20000 calls): parpy {wall_us(p):.1f}, torch A@x {wall_us(t):.1f}, "
          f"torch add_ {wall_us(add):.1f}" if N == 256 else f"N={N}:")
    print(f"  one call between events (us): parpy {1e6 * gpu_time(p):.1f}, torch A@x {1e6 * gpu_time(t):.1f}, "
          f"torch add_ {1e6 * gpu_time(add):.1f}")
    if N == 256:
        print("  cuda build:", native.cuda_build())
        t = torch.zeros(N, device="cuda")
        getters = (lambda: (t.is_cuda, t.requires_grad, t.layout, t.dtype, t.shape, t.is_contiguous(),
                            t.data_ptr(), t.get_device()))
        raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        print(f"  one tensor's 8 getters from Python: {wall_us(getters):.2f} us; the current stream: "
              f"{wall_us(lambda: raw(0)) if raw else float('nan'):.2f} us; an empty Python call "
              f"{wall_us(lambda: None):.2f} us")
        for name in ("is_cuda", "requires_grad", "layout", "dtype", "shape"):
            print(f"    t.{name}: {wall_us(lambda name=name: getattr(t, name)):.3f} us")
        for name in ("is_contiguous", "data_ptr", "get_device"):
            print(f"    t.{name}(): {wall_us(getattr(t, name)):.3f} us")
