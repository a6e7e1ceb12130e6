"""Spec sweeps on the GPU: the same program under several parallel specs, each timed two ways.

Run on a machine with an NVIDIA GPU: python benchmarks/spec_sweep.py
For the CSR SpMV with lanes per row (power-law rows, mean 16 nonzeros) and the layer norm of
benchmarks/gpu.py, prints per spec the median time of one call between CUDA events (as
benchmarks/gpu.py measures: the call's host work before its launch included) and of 20 calls
back to back divided by 20 (the kernel's own time where the host keeps ahead of the GPU), beside
torch measured both ways in the same run. What the defaults should be is read from here.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from gpu import gpu_time, opts  # noqa: E402  (first: it gives the run a private disk cache)
from kernels import layer_norm, power_law_csr, spmv_csr_warp  # noqa: E402

import parpy  # noqa: E402
import torch  # noqa: E402


def burst_time(f):
    return gpu_time(f, reps=5, calls=20)


def row(name, f, peer_single, peer_burst):
    s, b = gpu_time(f), burst_time(f)
    print(f"| {name} | {s * 1e3:.3f} | {peer_single / s:.2f}x | {b * 1e3:.3f} | {peer_burst / b:.2f}x |", flush=True)


def main():
    N = 2**20
    indptr, indices, data = power_law_csr(N, 16)
    ip, ix, d = (torch.from_numpy(a).cuda() for a in (indptr, indices, data))
    x = torch.randn(N, device="cuda")
    y = torch.zeros(N, device="cuda")
    A = torch.sparse_csr_tensor(ip, ix, d, (N, N))
    peer = lambda: A @ x  # noqa: E731
    ps, pb = gpu_time(peer), burst_time(peer)
    print(f"CSR SpMV 2^20 rows, lanes per row; torch one call {ps * 1e3:.3f} ms, in a burst {pb * 1e3:.3f} ms\n")
    print("| spec | one call ms | vs torch | burst ms | vs torch |\n|---|---|---|---|---|")
    for lanes in [4, 8, 16]:
        for rows in [N, N // 2, N // 4, N // 8]:
            for tpb in [None, 64, 128, 256, 512]:
                r, nz = parpy.threads(rows), parpy.threads(lanes).reduce()
                if tpb:
                    r, nz = r.tpb(tpb), nz.tpb(tpb)
                o = opts({"rows": r, "nz": nz})
                y.zero_()
                f = lambda o=o: spmv_csr_warp(ip, ix, d, x, y, N, opts=o)  # noqa: E731
                f()
                torch.testing.assert_close(y, peer(), rtol=1e-3, atol=1e-3)
                row(f"nz {lanes} lanes, rows threads({rows})" + (f", tpb {tpb}" if tpb else ""), f, ps, pb)

    N = M = 8192
    x = torch.randn(N, M, device="cuda")
    g, b = torch.randn(M, device="cuda"), torch.randn(M, device="cuda")
    out = torch.empty_like(x)
    peer = lambda: torch.nn.functional.layer_norm(x, (M,), g, b, eps=1e-5)  # noqa: E731
    ps, pb = gpu_time(peer), burst_time(peer)
    print(f"\nLayer norm 8192x8192; torch one call {ps * 1e3:.3f} ms, in a burst {pb * 1e3:.3f} ms\n")
    print("| spec | one call ms | vs torch | burst ms | vs torch |\n|---|---|---|---|---|")
    for cols in [256, 512, 1024]:
        o = opts({"rows": parpy.threads(N), "cols": parpy.threads(cols)})
        f = lambda o=o: layer_norm(x, g, b, out, N, M, opts=o)  # noqa: E731
        f()
        torch.testing.assert_close(out, peer(), rtol=1e-4, atol=1e-4)
        row(f"cols threads({cols})", f, ps, pb)


if __name__ == "__main__":
    main()
