"""parpy (Cuda backend) against torch on the same GPU, same run.

Run on a machine with an NVIDIA GPU: python benchmarks/gpu.py
Prints a markdown table: median kernel time of repeated calls on torch CUDA tensors (zero copy)
measured with CUDA events after a warm-up call (which compiles), and the effective bandwidth
(ideal bytes read + written / time). Also the first-call latency and the cached per-call host
overhead of a tiny kernel.
"""

import time

import numpy as np
import parpy
import torch

CUDA = parpy.CompileBackend.Cuda


@parpy.jit
def row_sum(x, y, N, M):
    parpy.label("rows")
    for i in range(N):
        parpy.label("cols")
        y[i] = parpy.operators.sum(x[i, :])


@parpy.jit
def softmax(x, out, N, M):
    parpy.label("rows")
    for i in range(N):
        m = parpy.operators.max(x[i, :])
        parpy.label("cols")
        out[i, :] = parpy.operators.exp(x[i, :] - m)
        s = parpy.operators.sum(out[i, :])
        parpy.label("cols")
        out[i, :] = out[i, :] / s


@parpy.jit
def axpy(a, x, y, N):
    parpy.label("N")
    for i in range(N):
        y[i] = a * x[i] + y[i]


@parpy.jit
def tiny(x, N):
    parpy.label("N")
    for i in range(N):
        x[i] = x[i] + 1.0


def opts(par):
    o = parpy.par(par)
    o.backend = CUDA
    return o


def gpu_time(f, reps=20):
    f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        f()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    return float(np.median(ts))


def cols_threads(N, M):
    # One block of 1024 threads per row when rows are many; several blocks per row otherwise.
    if N >= 132:
        return min(1024, max(32, M // 4))
    return 1024 * max(1, min(256, M // (1024 * 32)))


def bench_rows(N, M):
    """Row sum and softmax on an N x M float32 matrix: parpy and torch rows of the table."""
    out_rows = []
    x = torch.randn(N, M, device="cuda")
    y = torch.empty(N, device="cuda")
    o = opts({"rows": parpy.threads(N), "cols": parpy.threads(cols_threads(N, M))})
    try:
        tp = gpu_time(lambda: row_sum(x, y, N, M, opts=o))
        torch.testing.assert_close(y, x.sum(dim=1), rtol=1e-3, atol=1e-2)
    except RuntimeError as e:
        tp = float("nan")
        print(f"row sum {N}x{M}: {str(e).splitlines()[0]}")
    tt = gpu_time(lambda: x.sum(dim=1))
    out_rows.append(("row sum", f"{N}x{M}", 4 * N * M, tp, tt))

    out = torch.empty_like(x)
    try:
        tp = gpu_time(lambda: softmax(x, out, N, M, opts=o))
        torch.testing.assert_close(out, torch.softmax(x, dim=1), rtol=1e-4, atol=1e-6)
    except RuntimeError as e:
        tp = float("nan")
        print(f"softmax {N}x{M}: {str(e).splitlines()[0]}")
    tt = gpu_time(lambda: torch.softmax(x, dim=1))
    out_rows.append(("softmax", f"{N}x{M}", 8 * N * M, tp, tt))
    return out_rows


def main():
    rows = []
    for N, M in [(1024, 65536), (65536, 1024), (10, 10**7)]:
        rows += bench_rows(N, M)

    N = 2**27
    x = torch.randn(N, device="cuda")
    y = torch.randn(N, device="cuda")
    o = opts({"N": parpy.threads(N // 8)})
    tp = gpu_time(lambda: axpy(2.0, x, y, N, opts=o))
    tt = gpu_time(lambda: y.add_(x, alpha=2.0))
    rows.append(("axpy", "2^27", 12 * N, tp, tt))

    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, parpy {parpy.__version__}\n")
    print("| kernel | shape (f32) | parpy ms | parpy GB/s | torch ms | torch GB/s | parpy/torch |")
    print("|---|---|---|---|---|---|---|")
    for name, shape, nbytes, tp, tt in rows:
        print(f"| {name} | {shape} | {tp * 1e3:.3f} | {nbytes / tp / 1e9:.0f} | {tt * 1e3:.3f} | "
              f"{nbytes / tt / 1e9:.0f} | {tt / tp:.2f}x |")

    # First call (specialise + nvcc build) with an empty disk cache, then the cached call path.
    parpy.clear_cache()
    t = torch.zeros(32, device="cuda")
    o = opts({"N": parpy.threads(32)})
    t0 = time.perf_counter()
    tiny(t, 32, opts=o)
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        tiny(t, 32, opts=o)
    host = (time.perf_counter() - t0) / n
    torch.cuda.synchronize()
    print(f"\nfirst call (compile + build + run): {first:.2f} s; cached call host overhead: "
          f"{host * 1e6:.1f} us per call")


if __name__ == "__main__":
    main()
