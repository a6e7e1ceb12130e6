"""parpy (Cuda backend) against torch on the same GPU, same run.

Run on a machine with an NVIDIA GPU: python benchmarks/gpu.py [--first-call | --user-loops]
Prints a markdown table: median kernel time of repeated calls on torch CUDA tensors (zero copy)
measured with CUDA events after a warm-up call (which compiles), and the effective bandwidth
(ideal bytes read + written / time). Also the first-call latency and the cached per-call host
overhead of a tiny kernel. --user-loops: only the table of stencils and CSR sparse
matrix-vector products (a thread per row; a warp, or 8 lanes, per row) written as users write
them, beside torch and the copy bandwidth (the ceiling of a kernel that reads and writes each byte
once).
"""

import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

# A private disk cache: the first-call measurement clears it (not the user's ~/.cache/parpy).
os.environ["PARPY_CACHE_DIR"] = tempfile.mkdtemp(prefix="parpy-bench-")
atexit.register(shutil.rmtree, os.environ["PARPY_CACHE_DIR"], ignore_errors=True)

import parpy
import torch
from kernels import (axpy, colsum_by_column, colsum_by_row, layer_norm, power_law_csr, row_sum, softmax, spmv_csr,
                     spmv_csr_warp, stencil2d, stencil3d, stencil3d_par, tiny)

CUDA = parpy.CompileBackend.Cuda


def opts(par, clusters=False):
    o = parpy.par(par)
    o.backend = CUDA
    o.use_cuda_thread_block_clusters = clusters
    return o


def paired_times(f, g, rounds=3, calls=1):
    """Median times of f and g, measured in alternating rounds so that clock and power changes
    during the run reach both alike (`calls`: as gpu_time's)."""
    tf, tg = [], []
    for _ in range(rounds):
        tf.append(gpu_time(f, calls=calls))
        tg.append(gpu_time(g, calls=calls))
    return float(np.median(tf)), float(np.median(tg))


def gpu_time(f, reps=20, calls=1):
    """Median seconds per call of f over `reps` measurements, each of `calls` calls back to back
    between two CUDA events (one call: its host work before the launch counts; a burst: the
    kernel's own time where the host keeps ahead of the GPU)."""
    f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(calls):
            f()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1e3 / calls)
    return float(np.median(ts))


# The parallelisation a user would pick per shape (threads of the column loop, threads per block,
# clusters): many short rows -> one small block per row; few long rows -> many blocks per row.
CONFIGS = {
    (1024, 65536): {"row sum": (512, 1024, False), "softmax": (4096, 512, True)},
    (65536, 1024): {"row sum": (128, 1024, False), "softmax": (128, 1024, False)},
    (10, 10**7): {"row sum": (131072, 1024, False), "softmax": (131072, 1024, False)},
}


def describe(cfg):
    cols, tpb, clusters = cfg
    return f"cols threads({cols})" + (f".tpb({tpb})" if tpb != 1024 else "") + (" + clusters" if clusters else "")


def bench_rows(N, M):
    """Row sum and softmax on an N x M float32 matrix: parpy and torch rows of the table."""
    out_rows = []
    x = torch.randn(N, M, device="cuda")
    y = torch.empty(N, device="cuda")
    out = torch.empty_like(x)
    cases = [
        ("row sum", 4 * N * M, lambda o: row_sum(x, y, N, M, opts=o), lambda: x.sum(dim=1),
         lambda: torch.testing.assert_close(y, x.sum(dim=1), rtol=1e-3, atol=1e-2)),
        ("softmax", 8 * N * M, lambda o: softmax(x, out, N, M, opts=o), lambda: torch.softmax(x, dim=1),
         lambda: torch.testing.assert_close(out, torch.softmax(x, dim=1), rtol=1e-4, atol=1e-6)),
    ]
    for name, nbytes, run, peer, check in cases:
        cfg = CONFIGS[(N, M)][name]
        cols, tpb, clusters = cfg
        o = opts({"rows": parpy.threads(N), "cols": parpy.threads(cols).tpb(tpb)}, clusters)
        try:
            tp, tt = paired_times(lambda run=run, o=o: run(o), peer)
            check()
        except RuntimeError as e:
            tp, tt = float("nan"), gpu_time(peer)
            print(f"{name} {N}x{M}: {str(e).splitlines()[0]}")
        out_rows.append((name, f"{N}x{M}", nbytes, tp, tt, describe(cfg)))
    return out_rows


def user_loop_rows():
    """Stencils and CSR SpMV as users write them; parpy beside torch and the copy bandwidth."""
    rows = []

    def copy_time(nbytes_each):
        a = torch.empty(nbytes_each // 4, device="cuda")
        b = torch.empty_like(a)
        return gpu_time(lambda: b.copy_(a))

    N = M = 8192
    x = torch.randn(N, M, device="cuda")
    y = torch.zeros_like(x)
    w = torch.tensor([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], device="cuda").view(1, 1, 3, 3)
    o = opts({"rows": parpy.threads(N), "cols": parpy.threads(1024)})
    peer = lambda: torch.nn.functional.conv2d(x.view(1, 1, N, M), w)  # noqa: E731
    tp, tt = paired_times(lambda: stencil2d(x, y, N, M, opts=o), peer)
    torch.testing.assert_close(y[1:-1, 1:-1], peer()[0, 0], rtol=1e-5, atol=1e-5)
    rows.append(("5-point stencil (conv2d)", f"{N}x{M}", 8 * N * M, tp, tt, copy_time(4 * N * M),
                 "rows threads(N), cols threads(1024)"))

    N = 512
    x = torch.randn(N, N, N, device="cuda")
    y = torch.zeros_like(x)
    w = torch.zeros(3, 3, 3, device="cuda")
    for d in [(0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2)]:
        w[d] = 1.0 / 6.0
    o = opts({"planes": parpy.threads(N), "cols": parpy.threads(N)})
    peer = lambda: torch.nn.functional.conv3d(x.view(1, 1, N, N, N), w.view(1, 1, 3, 3, 3))  # noqa: E731
    tp, tt = paired_times(lambda: stencil3d(x, y, N, opts=o), peer)
    torch.testing.assert_close(y[1:-1, 1:-1, 1:-1], peer()[0, 0], rtol=1e-4, atol=1e-5)
    rows.append(("7-point stencil (conv3d)", f"{N}^3", 8 * N**3, tp, tt, copy_time(4 * N**3),
                 "planes threads(N), cols threads(N)"))
    # The loop over a plane's rows labelled too.
    o = opts({"planes": parpy.threads(N), "rows": parpy.threads(N), "cols": parpy.threads(N)})
    y.zero_()
    tp, tt = paired_times(lambda: stencil3d_par(x, y, N, opts=o), peer)
    torch.testing.assert_close(y[1:-1, 1:-1, 1:-1], peer()[0, 0], rtol=1e-4, atol=1e-5)
    rows.append(("7-point stencil (conv3d), every loop parallel", f"{N}^3", 8 * N**3, tp, tt, copy_time(4 * N**3),
                 "planes, rows, cols threads(N)"))

    N = 2**20
    indptr, indices, data = power_law_csr(N, 16)
    nnz = int(indptr[-1])
    ip, ix, d = (torch.from_numpy(a).cuda() for a in (indptr, indices, data))
    x = torch.randn(N, device="cuda")
    y = torch.zeros(N, device="cuda")
    A = torch.sparse_csr_tensor(ip, ix, d, (N, N))
    o = opts({"rows": parpy.threads(N)})
    peer = lambda: A @ x  # noqa: E731
    tp, tt = paired_times(lambda: spmv_csr(ip, ix, d, x, y, N, opts=o), peer)
    torch.testing.assert_close(y, peer(), rtol=1e-3, atol=1e-3)
    nbytes = 8 * (N + 1) + 12 * nnz + 8 * N  # indptr, indices and values, x and y once each
    rows.append((f"CSR SpMV (nnz {nnz / N:.1f}/row, power law)", "2^20 rows", nbytes, tp, tt, None,
                 "rows threads(N)"))
    # The loop over a row's values labelled: its lanes of one warp per row, several rows per block.
    burst = []  # the same calls 10 back to back: the kernels' time where the host keeps ahead
    for lanes, name in [(32, "a warp per row"), (8, "8 lanes per row")]:
        o = opts({"rows": parpy.threads(N), "nz": parpy.threads(lanes).reduce()})
        y.zero_()
        tp, tt = paired_times(lambda o=o: spmv_csr_warp(ip, ix, d, x, y, N, opts=o), peer)
        torch.testing.assert_close(y, peer(), rtol=1e-3, atol=1e-3)
        rows.append((f"CSR SpMV, {name} (nnz {nnz / N:.1f}/row)", "2^20 rows", nbytes, tp, tt, None,
                     f"rows threads(N), nz threads({lanes}).reduce()"))
        burst.append((name, *paired_times(lambda o=o: spmv_csr_warp(ip, ix, d, x, y, N, opts=o), peer, calls=10)))

    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, parpy {parpy.__version__}\n")
    print("| program | shape (f32) | parpy ms | parpy GB/s | torch ms | parpy/torch | copy GB/s | parpy/copy | "
          "parpy options |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, shape, nbytes, tp, tt, tc, cfg in rows:
        copy = f"{nbytes / tc / 1e9:.0f} | {tc / tp:.2f}x" if tc else "— | —"
        print(f"| {name} | {shape} | {tp * 1e3:.3f} | {nbytes / tp / 1e9:.0f} | {tt * 1e3:.3f} | {tt / tp:.2f}x | "
              f"{copy} | {cfg} |")
    print("\nCSR SpMV, 10 calls back to back between two events (ms per call: the host's work for a call")
    print("overlaps the GPU's for the one before; the table above times one call, host work included):\n")
    print("| program | parpy ms | torch ms | parpy/torch |\n|---|---|---|---|")
    for name, tp, tt in burst:
        print(f"| CSR SpMV, {name} | {tp * 1e3:.3f} | {tt * 1e3:.3f} | {tt / tp:.2f}x |")


def main():
    rows = []
    if "--user-loops" in sys.argv:
        user_loop_rows()
        return
    if "--first-call" not in sys.argv:  # --first-call: only the first-call and per-call numbers
        for N, M in [(1024, 65536), (65536, 1024), (10, 10**7)]:
            rows += bench_rows(N, M)

        N = 2**27
        x = torch.randn(N, device="cuda")
        y = torch.randn(N, device="cuda")
        o = opts({"N": parpy.threads(N // 8)})
        tp, tt = paired_times(lambda: axpy(2.0, x, y, N, opts=o), lambda: y.add_(x, alpha=2.0))
        rows.append(("axpy", "2^27", 12 * N, tp, tt, "N threads(2^24)"))

        # Programs as users write them (reductions inside expressions).
        N = M = 8192
        x = torch.randn(N, M, device="cuda")
        g, b = torch.randn(M, device="cuda"), torch.randn(M, device="cuda")
        out = torch.empty_like(x)
        o = opts({"rows": parpy.threads(N), "cols": parpy.threads(1024)})
        peer = lambda: torch.nn.functional.layer_norm(x, (M,), g, b, eps=1e-5)  # noqa: E731
        tp, tt = paired_times(lambda: layer_norm(x, g, b, out, N, M, opts=o), peer)
        torch.testing.assert_close(out, peer(), rtol=1e-4, atol=1e-4)
        rows.append(("layer norm", f"{N}x{M}", 4 * (2 * N * M + 2 * M), tp, tt, "cols threads(1024)"))

        # Column sums written the two ways users write them, against torch.sum(dim=0).
        N, M = 32768, 8192
        x = torch.randn(N, M, device="cuda")
        y = torch.empty(M, device="cuda")
        o = opts({"cols": parpy.threads(M)})
        for name, f in [("column sum (loop per column)", colsum_by_column), ("column sum (rows added)", colsum_by_row)]:
            try:
                tp, tt = paired_times(lambda f=f: f(x, y, N, M, opts=o), lambda: x.sum(dim=0))
                torch.testing.assert_close(y, x.sum(dim=0), rtol=1e-3, atol=1e-2)
            except (RuntimeError, AssertionError) as e:
                tp, tt = float("nan"), gpu_time(lambda: x.sum(dim=0))
                print(f"{name}: {str(e).splitlines()[0]}")
            rows.append((name, f"{N}x{M}", 4 * (N * M + M), tp, tt, f"cols threads({M})"))

        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, parpy {parpy.__version__}\n")
        print("| kernel | shape (f32) | parpy ms | parpy GB/s | torch ms | torch GB/s | parpy/torch | parpy options |")
        print("|---|---|---|---|---|---|---|---|")
        for name, shape, nbytes, tp, tt, cfg in rows:
            print(f"| {name} | {shape} | {tp * 1e3:.3f} | {nbytes / tp / 1e9:.0f} | {tt * 1e3:.3f} | "
                  f"{nbytes / tt / 1e9:.0f} | {tt / tp:.2f}x | {cfg} |")

    # First call (specialise + build + load + run) with an empty disk cache, for the default build
    # (kernels by NVRTC, host code run by parpy), for nvcc in two parts (PARPY_CUDA_BUILD=two-part)
    # and for nvcc building the whole program (PARPY_CUDA_BUILD=nvcc); the median of three each.
    # Then the cached call path of each.
    t = torch.zeros(32, device="cuda")
    o = opts({"N": parpy.threads(32)})
    first, host = {}, {}
    for mode in ["nvcc", "two-part", "default"]:
        if mode == "default":
            os.environ.pop("PARPY_CUDA_BUILD", None)
        else:
            os.environ["PARPY_CUDA_BUILD"] = mode
        times = []
        for _ in range(3):
            parpy.clear_cache()
            t0 = time.perf_counter()
            tiny(t, 32, opts=o)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        first[mode] = statistics.median(times)
        n = 20000
        t0 = time.perf_counter()
        for _ in range(n):
            tiny(t, 32, opts=o)
        host[mode] = (time.perf_counter() - t0) / n
        torch.cuda.synchronize()
    from parpy import parpy as native

    print(f"\nCuda build: {native.cuda_build()}")
    print(f"first call (compile + build + run): {first['default']:.2f} s (nvcc in two parts: {first['two-part']:.2f} s, "
          f"nvcc for the whole program: {first['nvcc']:.2f} s); cached call host overhead: "
          f"{host['default'] * 1e6:.1f} us per call (two-part: {host['two-part'] * 1e6:.1f} us, "
          f"whole: {host['nvcc'] * 1e6:.1f} us)")


if __name__ == "__main__":
    main()
