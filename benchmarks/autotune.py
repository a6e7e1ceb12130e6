"""Autotuning from the user's plain spec against the hand-picked spec of benchmarks/gpu.py.

Run on a machine with an NVIDIA GPU: python benchmarks/autotune.py [--budget S]
or on the Cpu backend, with small shapes:  python benchmarks/autotune.py --cpu

For each program: the time per call of the hand-picked spec (the one benchmarks/gpu.py uses), the
time per call of the spec autotuning chose starting from the plain spec (threads(n) on each
label, with .reduce() where the label reduces, no tpb, no clusters), the ratio, the tuning time of
the first call (the whole call) and of its search alone (what `opts.autotune_budget_s` bounds),
the candidates tried and the chosen spec. Every result is checked against numpy.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ["PARPY_CACHE_DIR"] = tempfile.mkdtemp(prefix="parpy-autotune-")
atexit.register(shutil.rmtree, os.environ["PARPY_CACHE_DIR"], ignore_errors=True)

import parpy  # noqa: E402
from kernels import (axpy, colsum_by_column, colsum_by_row, layer_norm, power_law_csr, row_sum,  # noqa: E402
                     softmax, spmv_csr, spmv_csr_warp, stencil2d, stencil3d, stencil3d_par)

T = parpy.threads


def cases(small: bool) -> list[tuple[str, Any, Callable[[], tuple[Any, ...]], dict, dict, Callable[..., None]]]:
    """(name, function, make arguments, plain spec, hand-picked spec, check(args))."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    out = []
    shapes = [(64, 4096), (4096, 64)] if small else [(1024, 65536), (65536, 1024), (10, 10**7)]
    hand = {(1024, 65536): ((512, 1024, False), (4096, 512, True)), (65536, 1024): ((128, 1024, False),) * 2,
            (10, 10**7): ((131072, 1024, False),) * 2}
    for N, M in shapes:
        (rs_cols, rs_tpb, _), (sm_cols, sm_tpb, _) = hand.get((N, M), ((1024, 1024, False),) * 2)

        def rs_args(N=N, M=M):
            return rng.standard_normal((N, M)).astype(f32), np.zeros(N, f32), N, M

        out.append((f"row sum {N}x{M}", row_sum, rs_args, {"rows": T(N), "cols": T(M).reduce()},
                    {"rows": T(N), "cols": T(min(rs_cols, M)).tpb(rs_tpb).reduce()},
                    lambda x, y, N, M: np.testing.assert_allclose(y, x.sum(axis=1), rtol=1e-3, atol=1e-2)))

        def sm_args(N=N, M=M):
            return rng.standard_normal((N, M)).astype(f32), np.zeros((N, M), f32), N, M

        def sm_check(x, o, N, M):
            e = np.exp(x - x.max(axis=1, keepdims=True))
            np.testing.assert_allclose(o, e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)

        out.append((f"softmax {N}x{M}", softmax, sm_args, {"rows": T(N), "cols": T(M)},
                    {"rows": T(N), "cols": T(min(sm_cols, M)).tpb(sm_tpb)}, sm_check))
    A = 2**16 if small else 2**27

    def ax_args():  # y starts at zero: after one call it is a * x
        return 2.0, rng.standard_normal(A).astype(f32), np.zeros(A, f32), A

    def ax_check(a, x, y, N):
        np.testing.assert_allclose(y, a * x, rtol=1e-6, atol=0)

    out.append((f"axpy 2^{A.bit_length() - 1}", axpy, ax_args, {"N": T(A)}, {"N": T(A // 8)}, ax_check))
    N = M = 512 if small else 8192

    def ln_args():
        return (rng.standard_normal((N, M)).astype(f32), rng.standard_normal(M).astype(f32),
                rng.standard_normal(M).astype(f32), np.zeros((N, M), f32), N, M)

    def ln_check(x, g, b, o, N, M):
        mean = x.mean(axis=1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
        np.testing.assert_allclose(o, (x - mean) / np.sqrt(var + 1e-5) * g + b, rtol=1e-3, atol=1e-3)

    out.append((f"layer norm {N}x{M}", layer_norm, ln_args, {"rows": T(N), "cols": T(M)},
                {"rows": T(N), "cols": T(1024)}, ln_check))
    N, M = (1024, 512) if small else (32768, 8192)

    def cs_args():
        return rng.standard_normal((N, M)).astype(f32), np.zeros(M, f32), N, M

    def cs_check(x, y, N, M):
        np.testing.assert_allclose(y, x.sum(axis=0), rtol=1e-3, atol=1e-2)

    out.append((f"column sum (loop per column) {N}x{M}", colsum_by_column, cs_args, {"cols": T(M)},
                {"cols": T(M)}, cs_check))
    out.append((f"column sum (rows added) {N}x{M}", colsum_by_row, cs_args, {"cols": T(M)}, {"cols": T(M)},
                cs_check))
    N = M = 512 if small else 8192

    def st_args():
        return rng.standard_normal((N, M)).astype(f32), np.zeros((N, M), f32), N, M

    def st_check(x, y, N, M):
        w = 0.25 * (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:])
        np.testing.assert_allclose(y[1:-1, 1:-1], w, rtol=1e-5, atol=1e-5)

    out.append((f"5-point stencil {N}x{M}", stencil2d, st_args, {"rows": T(N), "cols": T(M)},
                {"rows": T(N), "cols": T(1024)}, st_check))
    P = 64 if small else 512

    def s3_args():
        return rng.standard_normal((P, P, P)).astype(f32), np.zeros((P, P, P), f32), P

    def s3_check(x, y, P):
        w = (x[:-2, 1:-1, 1:-1] + x[2:, 1:-1, 1:-1] + x[1:-1, :-2, 1:-1] + x[1:-1, 2:, 1:-1]
             + x[1:-1, 1:-1, :-2] + x[1:-1, 1:-1, 2:]) / 6.0
        np.testing.assert_allclose(y[1:-1, 1:-1, 1:-1], w, rtol=1e-4, atol=1e-5)

    out.append((f"7-point stencil {P}^3", stencil3d, s3_args, {"planes": T(P), "cols": T(P)},
                {"planes": T(P), "cols": T(P)}, s3_check))
    out.append((f"7-point stencil, every loop parallel {P}^3", stencil3d_par, s3_args,
                {"planes": T(P), "rows": T(P), "cols": T(P)}, {"planes": T(P), "rows": T(P), "cols": T(P)}, s3_check))
    R = 2**12 if small else 2**20

    def sp_args():
        indptr, indices, data = power_law_csr(R, 16)
        return indptr, indices, data, rng.standard_normal(R).astype(f32), np.zeros(R, f32), R

    def sp_check(indptr, indices, data, x, y, R):
        rows = np.repeat(np.arange(R), np.diff(indptr))
        want = np.bincount(rows, weights=data.astype(np.float64) * x[indices], minlength=R)
        np.testing.assert_allclose(y, want, rtol=1e-3, atol=1e-3)

    out.append((f"CSR SpMV {R} rows", spmv_csr, sp_args, {"rows": T(R)}, {"rows": T(R)}, sp_check))
    out.append((f"CSR SpMV, a warp per row {R} rows", spmv_csr_warp, sp_args, {"rows": T(R), "nz": T(32).reduce()},
                {"rows": T(R), "nz": T(32).reduce()}, sp_check))
    # The same plain spec against the best lanes per row of benchmarks/gpu.py.
    out.append((f"CSR SpMV, 8 lanes per row {R} rows", spmv_csr_warp, sp_args, {"rows": T(R), "nz": T(32).reduce()},
                {"rows": T(R), "nz": T(8).reduce()}, sp_check))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", action="store_true", help="the Cpu backend, small shapes")
    ap.add_argument("--budget", type=float, default=10.0, help="autotune_budget_s per program")
    a = ap.parse_args()
    backend = parpy.CompileBackend.Cpu if a.cpu else parpy.CompileBackend.Cuda
    if backend == parpy.CompileBackend.Cuda:
        import torch

        def to_device(args: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(torch.from_numpy(v).cuda() if isinstance(v, np.ndarray) else v for v in args)

        def to_host(args: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(v.cpu().numpy() if hasattr(v, "cpu") else v for v in args)

        sync = torch.cuda.synchronize
    else:
        def to_device(args: tuple[Any, ...]) -> tuple[Any, ...]:
            return args

        to_host = to_device

        def sync() -> None:
            pass

    def per_call(f: Any, args: tuple[Any, ...], o: parpy.CompileOptions) -> float:
        f(*args, opts=o)
        sync()
        ts = []
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(5):
                f(*args, opts=o)
            sync()
            ts.append((time.perf_counter() - t0) / 5)
        return float(np.median(ts))

    print(f"parpy {parpy.__version__}, backend {backend}, budget {a.budget} s per program\n")
    print("| program | hand-picked ms | autotuned ms | hand/auto | tuning s | search s | candidates | chosen |")
    print("|---|---|---|---|---|---|---|---|")
    for name, f, make, plain, hand, check in cases(a.cpu):
        host = make()
        args = to_device(host)
        oh = parpy.par(hand)
        oh.backend = backend
        oa = parpy.par(plain, autotune=True)
        oa.backend = backend
        oa.autotune_budget_s = a.budget
        try:
            t0 = time.perf_counter()
            f(*args, opts=oa)  # tunes
            sync()
            tuning = time.perf_counter() - t0
            check(*to_host(args))  # the tuned first call's result
            t = parpy.tuned(f, list(args), oa)
            ta = per_call(f, args, oa)
            th = per_call(f, args, oh)
            check_args = to_device(make())
            f(*check_args, opts=oa)
            check(*to_host(check_args))
            print(f"| {name} | {th * 1e3:.3f} | {ta * 1e3:.3f} | {th / ta:.2f}x | {tuning:.1f} | "
                  f"{t.search_seconds:.1f} | {len(t.candidates)} | {t.source()} |")
        except Exception as e:  # noqa: BLE001 - a row that fails says why and the table goes on
            print(f"| {name} | failed: {type(e).__name__}: {str(e).splitlines()[0]} | | | | | | |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
