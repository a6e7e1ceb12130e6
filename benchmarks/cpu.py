"""parpy (Cpu backend) against numpy and Numba (`prange`, when installed) on the same machine,
same run.

Run: python benchmarks/cpu.py [--quick]
Prints a markdown table: median wall time of repeated calls (after a warm-up call that compiles;
one call of parpy, numpy and Numba in turn per round, so that the machine's drift reaches all
three alike) and effective bandwidth (bytes read + written by the ideal kernel / time), and parpy's speed-up
over each peer. Then the first-call latency and the cached per-call host overhead of a tiny
function.
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

try:
    import numba_kernels as nb
except ImportError:  # Numba is optional: its column shows "-"
    nb = None
from kernels import (axpy, colsum_by_column, colsum_by_row, layer_norm, power_law_csr, row_sum, softmax,
                     spmv_csr, stencil2d, stencil3d, tiny)


def np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_layer_norm(x, g, b):
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(1e-5)) * g + b


def paired(fp, fn, fb, reps, check=None):
    """Median times of parpy's `fp`, numpy's `fn` and Numba's `fb` (None without Numba: its time
    is None), one call of each in turn per round, so that the machine's drift during the run
    (other load, clocks) reaches all three alike. Each is warmed up first (parpy and Numba
    compile), parpy's and Numba's results checked by `check` after their warm-up calls, and
    parpy's again after the timing."""
    fb = fb if nb is not None else None
    fp()
    if check:
        check()
    fn()
    if fb is not None:
        fb()
        if check:
            check()
    ts = {0: [], 1: [], 2: []}
    for _ in range(reps):
        for k, f in enumerate((fp, fn, fb)):
            if f is None:
                continue
            t0 = time.perf_counter()
            f()
            ts[k].append(time.perf_counter() - t0)
    fp()
    if check:
        check()
    return (float(np.median(ts[0])), float(np.median(ts[1])), float(np.median(ts[2])) if ts[2] else None)


def main():
    quick = "--quick" in sys.argv
    reps = 3 if quick else 10
    rows = []
    cores = os.cpu_count() or 1

    N, M = (1024, 4096) if quick else (8192, 16384)
    x = np.random.randn(N, M).astype(np.float32)
    y = np.zeros(N, dtype=np.float32)
    opts = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M)})
    tp, tn, tb = paired(lambda: row_sum(x, y, N, M, opts=opts), lambda: x.sum(axis=1), lambda: nb.row_sum(x, y), reps,
                        lambda: np.testing.assert_allclose(y, x.sum(axis=1), rtol=1e-3, atol=1e-2))
    rows.append(("row sum", f"{N}x{M} f32", x.nbytes + y.nbytes, tp, tn, tb))

    N, M = (1024, 2048) if quick else (4096, 8192)
    x = np.random.randn(N, M).astype(np.float32)
    out = np.empty_like(x)
    opts = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M)})
    want = np_softmax(x)
    tp, tn, tb = paired(lambda: softmax(x, out, N, M, opts=opts), lambda: np_softmax(x), lambda: nb.softmax(x, out), reps,
                        lambda: np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-7))
    rows.append(("softmax", f"{N}x{M} f32", 2 * x.nbytes, tp, tn, tb))

    N = 2**22 if quick else 2**26
    x = np.random.randn(N).astype(np.float32)
    y = np.random.randn(N).astype(np.float32)
    y0 = y.copy()
    opts = parpy.par({"N": parpy.threads(N)})
    axpy(2.5, x, y, N, opts=opts)
    np.testing.assert_allclose(y, np.float32(2.5) * x + y0, rtol=1e-5, atol=1e-6)
    tp, tn, tb = paired(lambda: axpy(2.5, x, y, N, opts=opts), lambda: np.add(np.float32(2.5) * x, y, out=y),
                        lambda: nb.axpy(np.float32(2.5), x, y), reps)
    rows.append(("axpy", f"{N} f32", 3 * x.nbytes, tp, tn, tb))

    # Written with the reductions inside expressions (kernels.layer_norm).
    N, M = (1024, 2048) if quick else (4096, 8192)
    x = np.random.randn(N, M).astype(np.float32)
    g, b = np.random.randn(M).astype(np.float32), np.random.randn(M).astype(np.float32)
    out = np.empty_like(x)
    opts = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(M)})
    want = np_layer_norm(x, g, b)
    tp, tn, tb = paired(lambda: layer_norm(x, g, b, out, N, M, opts=opts), lambda: np_layer_norm(x, g, b),
                        lambda: nb.layer_norm(x, g, b, out), reps,
                        lambda: np.testing.assert_allclose(out, want, rtol=1e-3, atol=1e-3))
    rows.append(("layer norm", f"{N}x{M} f32", 2 * x.nbytes, tp, tn, tb))

    # Column sums written the two ways users write them, against numpy's x.sum(axis=0).
    N, M = (2048, 2048) if quick else (32768, 8192)
    x = np.random.randn(N, M).astype(np.float32)
    y = np.zeros(M, dtype=np.float32)
    opts = parpy.par({"cols": parpy.threads(M)})
    want = x.sum(axis=0, dtype=np.float64)
    check = lambda: np.testing.assert_allclose(y, want, rtol=1e-3, atol=1e-1)  # noqa: E731
    for name, f, g in [("column sum (loop per column)", colsum_by_column, "colsum_by_column"),
                       ("column sum (rows added)", colsum_by_row, "colsum_by_row")]:
        tp, tn, tb = paired(lambda: f(x, y, N, M, opts=opts), lambda: x.sum(axis=0), lambda: getattr(nb, g)(x, y), reps,
                            check)
        rows.append((name, f"{N}x{M} f32", x.nbytes + y.nbytes, tp, tn, tb))

    # The GPU table's user loops (benchmarks/gpu.py --user-loops), written the same way.
    N = 1024 if quick else 4096
    x = np.random.randn(N, N).astype(np.float32)
    y = np.zeros_like(x)
    want = np.zeros_like(x)
    want[1:-1, 1:-1] = np.float32(0.25) * (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:])
    check = lambda: np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)  # noqa: E731
    opts = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(N)})
    tp, tn, tb = paired(lambda: stencil2d(x, y, N, N, opts=opts),
                        lambda: np.float32(0.25) * (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:]),
                        lambda: nb.stencil2d(x, y), reps, check)
    rows.append(("5-point stencil", f"{N}x{N} f32", 2 * x.nbytes, tp, tn, tb))

    P = 128 if quick else 256
    x = np.random.randn(P, P, P).astype(np.float32)
    y = np.zeros_like(x)
    c = (slice(1, -1),) * 3

    def np_stencil3d():
        return (x[:-2, 1:-1, 1:-1] + x[2:, 1:-1, 1:-1] + x[1:-1, :-2, 1:-1] + x[1:-1, 2:, 1:-1]
                + x[1:-1, 1:-1, :-2] + x[1:-1, 1:-1, 2:]) / np.float32(6.0)

    want = np_stencil3d()
    check = lambda: np.testing.assert_allclose(y[c], want, rtol=1e-5, atol=1e-5)  # noqa: E731
    opts = parpy.par({"planes": parpy.threads(P), "cols": parpy.threads(P)})
    tp, tn, tb = paired(lambda: stencil3d(x, y, P, opts=opts), np_stencil3d, lambda: nb.stencil3d(x, y), reps, check)
    rows.append(("7-point stencil", f"{P}^3 f32", 2 * x.nbytes, tp, tn, tb))

    R = 2**16 if quick else 2**20
    ip, ix, d = power_law_csr(R, 16)
    xs = np.random.rand(R).astype(np.float32)
    y = np.zeros(R, np.float32)
    want = np.add.reduceat(d.astype(np.float64) * xs[ix], ip[:-1])  # every row has a nonzero
    check = lambda: np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)  # noqa: E731
    opts = parpy.par({"rows": parpy.threads(R)})
    tp, tn, tb = paired(lambda: spmv_csr(ip, ix, d, xs, y, R, opts=opts), lambda: np.add.reduceat(d * xs[ix], ip[:-1]),
                        lambda: nb.spmv_csr(ip, ix, d, xs, y), reps, check)
    rows.append((f"CSR SpMV (nnz {len(d) / R:.1f}/row)", f"{R} rows", ip.nbytes + ix.nbytes + d.nbytes + 2 * xs.nbytes,
                 tp, tn, tb))

    print(f"Machine: {platform.processor() or platform.machine()}, {cores} cores, "
          f"numpy {np.__version__}, parpy {parpy.__version__} (Cpu backend)\n")
    print("| kernel | size | parpy ms | parpy GB/s | numpy ms | Numba ms | parpy vs numpy | parpy vs Numba |")
    print("|---|---|---|---|---|---|---|---|")
    for name, size, nbytes, tp, tn, tb in rows:
        nbm, nbx = ("-", "-") if tb is None else (f"{tb * 1e3:.2f}", f"{tb / tp:.2f}x")
        print(f"| {name} | {size} | {tp * 1e3:.2f} | {nbytes / tp / 1e9:.1f} | "
              f"{tn * 1e3:.2f} | {nbm} | {tn / tp:.2f}x | {nbx} |")

    # First call (specialise + build + load + run) from an empty disk cache, median of three (it
    # builds the precompiled support header too, once per cache); then the first call of a new
    # specialisation with that header built (a size not called before), median of three; then the
    # cached call of a `threads(1)` loop over 32 elements.
    t = np.zeros(32, np.float32)
    o = parpy.par({"N": parpy.threads(1)})
    firsts, news = [], []
    for _ in range(3):
        parpy.clear_cache()
        t0 = time.perf_counter()
        tiny(t, 32, opts=o)
        firsts.append(time.perf_counter() - t0)
    for k in range(3):
        u = np.zeros(33 + k, np.float32)
        t0 = time.perf_counter()
        tiny(u, 33 + k, opts=o)
        news.append(time.perf_counter() - t0)
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        tiny(t, 32, opts=o)
    host = (time.perf_counter() - t0) / n
    print(f"\nfirst call (specialise + build + load + run): {np.median(firsts):.2f} s from an empty cache, "
          f"{np.median(news):.2f} s for a new specialisation; cached call host overhead: {host * 1e6:.2f} us per call")

if __name__ == "__main__":
    main()
