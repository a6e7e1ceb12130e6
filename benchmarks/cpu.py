"""parpy (Cpu backend) against numpy on the same machine, same run.

Run: python benchmarks/cpu.py [--quick]
Prints a markdown table: median wall time of repeated calls (after a warm-up call that compiles)
and effective bandwidth (bytes read + written by the ideal kernel / time). Then the first-call
latency and the cached per-call host overhead of a tiny function.
"""

import atexit
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

# A private disk cache: the first-call measurement clears it (not the user's ~/.cache/parpy).
os.environ["PARPY_CACHE_DIR"] = tempfile.mkdtemp(prefix="parpy-bench-")
atexit.register(shutil.rmtree, os.environ["PARPY_CACHE_DIR"], ignore_errors=True)

import parpy
from kernels import axpy, layer_norm, row_sum, softmax, tiny


def np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_layer_norm(x, g, b):
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(1e-5)) * g + b


def timeit(f, reps):
    f()  # warm-up (compiles on first parpy call)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main():
    quick = "--quick" in sys.argv
    reps = 3 if quick else 10
    rows = []
    cores = os.cpu_count() or 1

    N, M = (1024, 4096) if quick else (8192, 16384)
    x = np.random.randn(N, M).astype(np.float32)
    y = np.zeros(N, dtype=np.float32)
    opts = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M)})
    tp = timeit(lambda: row_sum(x, y, N, M, opts=opts), reps)
    tn = timeit(lambda: x.sum(axis=1), reps)
    np.testing.assert_allclose(y, x.sum(axis=1), rtol=1e-3, atol=1e-2)
    rows.append(("row sum", f"{N}x{M} f32", x.nbytes + y.nbytes, tp, tn))

    N, M = (1024, 2048) if quick else (4096, 8192)
    x = np.random.randn(N, M).astype(np.float32)
    out = np.empty_like(x)
    opts = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M)})
    tp = timeit(lambda: softmax(x, out, N, M, opts=opts), reps)
    tn = timeit(lambda: np_softmax(x), reps)
    np.testing.assert_allclose(out, np_softmax(x), rtol=1e-4, atol=1e-7)
    rows.append(("softmax", f"{N}x{M} f32", 2 * x.nbytes, tp, tn))

    N = 2**22 if quick else 2**26
    x = np.random.randn(N).astype(np.float32)
    y = np.random.randn(N).astype(np.float32)
    y0 = y.copy()
    opts = parpy.par({"N": parpy.threads(N)})
    axpy(2.5, x, y, N, opts=opts)
    np.testing.assert_allclose(y, np.float32(2.5) * x + y0, rtol=1e-5, atol=1e-6)
    tp = timeit(lambda: axpy(2.5, x, y, N, opts=opts), reps)
    tn = timeit(lambda: np.add(np.float32(2.5) * x, y, out=y), reps)
    rows.append(("axpy", f"{N} f32", 3 * x.nbytes, tp, tn))

    # Written with the reductions inside expressions (kernels.layer_norm).
    N, M = (1024, 2048) if quick else (4096, 8192)
    x = np.random.randn(N, M).astype(np.float32)
    g, b = np.random.randn(M).astype(np.float32), np.random.randn(M).astype(np.float32)
    out = np.empty_like(x)
    opts = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M)})
    tp = timeit(lambda: layer_norm(x, g, b, out, N, M, opts=opts), reps)
    tn = timeit(lambda: np_layer_norm(x, g, b), reps)
    np.testing.assert_allclose(out, np_layer_norm(x, g, b), rtol=1e-3, atol=1e-3)
    rows.append(("layer norm", f"{N}x{M} f32", 2 * x.nbytes, tp, tn))

    print(f"Machine: {platform.processor() or platform.machine()}, {cores} cores, "
          f"numpy {np.__version__}, parpy {parpy.__version__} (Cpu backend)\n")
    print("| kernel | size | parpy ms | parpy GB/s | numpy ms | numpy GB/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name, size, nbytes, tp, tn in rows:
        print(f"| {name} | {size} | {tp * 1e3:.2f} | {nbytes / tp / 1e9:.1f} | "
              f"{tn * 1e3:.2f} | {nbytes / tn / 1e9:.1f} | {tn / tp:.2f}x |")

    # First call (specialise + build + load + run) from an empty disk cache, median of three; then
    # the cached call of a `threads(1)` loop over 32 elements.
    t = np.zeros(32, np.float32)
    o = parpy.par({"N": parpy.threads(1)})
    firsts = []
    for _ in range(3):
        parpy.clear_cache()
        t0 = time.perf_counter()
        tiny(t, 32, opts=o)
        firsts.append(time.perf_counter() - t0)
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        tiny(t, 32, opts=o)
    host = (time.perf_counter() - t0) / n
    print(f"\nfirst call (specialise + build + load + run): {np.median(firsts):.2f} s; "
          f"cached call host overhead: {host * 1e6:.2f} us per call")


if __name__ == "__main__":
    main()
