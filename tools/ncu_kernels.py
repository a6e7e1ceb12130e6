"""Launches each kernel of the user-loop table once (after a warm-up call), for Nsight Compute.

Usage on a GPU machine (ncu reads the hardware counters there):
  PYTHONPATH=python ncu --clock-control none --target-processes all -k regex:'parpy|copy|csr|conv' \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_bytes.sum,\
l1tex__t_bytes.sum,sm__warps_active.avg.pct_of_peak_sustained_active,\
dram__throughput.avg.pct_of_peak_sustained_elapsed,lts__throughput.avg.pct_of_peak_sustained_elapsed \
      python3 tools/ncu_kernels.py
(`tools/gpu_check.sh` step `ncu` runs this.) The DRAM bytes of a stencil kernel against the ideal
(each input and output element once) say whether its neighbours' loads reach DRAM again; the L2
and L1 bytes and throughputs say whether the caches are the bound instead.
"""

import os
import sys

import parpy
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from gpu import opts  # noqa: E402
from kernels import power_law_csr, spmv_csr_warp, stencil2d, stencil3d, stencil3d_par  # noqa: E402


def twice(f):
    f()
    torch.cuda.synchronize()
    f()
    torch.cuda.synchronize()


def main():
    N = M = 8192
    x = torch.randn(N, M, device="cuda")
    y = torch.zeros_like(x)
    print(f"5-point 8192x8192: ideal {8 * N * M / 2**20:.0f} MiB", flush=True)
    twice(lambda: stencil2d(x, y, N, M, opts=opts({"rows": parpy.threads(N), "cols": parpy.threads(1024)})))
    twice(lambda: y.copy_(x))

    N = 512
    x = torch.randn(N, N, N, device="cuda")
    y = torch.zeros_like(x)
    print(f"7-point 512^3: ideal {8 * N**3 / 2**20:.0f} MiB", flush=True)
    twice(lambda: stencil3d(x, y, N, opts=opts({"planes": parpy.threads(N), "cols": parpy.threads(N)})))
    twice(lambda: stencil3d_par(x, y, N, opts=opts({"planes": parpy.threads(N), "rows": parpy.threads(N),
                                                     "cols": parpy.threads(N)})))
    twice(lambda: y.copy_(x))
    w = torch.zeros(3, 3, 3, device="cuda")
    for d in [(0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2)]:
        w[d] = 1.0 / 6.0
    twice(lambda: torch.nn.functional.conv3d(x.view(1, 1, N, N, N), w.view(1, 1, 3, 3, 3)))

    N = 2**20
    indptr, indices, data = power_law_csr(N, 16)
    ip, ix, d = (torch.from_numpy(a).cuda() for a in (indptr, indices, data))
    xv = torch.randn(N, device="cuda")
    yv = torch.zeros(N, device="cuda")
    nnz = int(indptr[-1])
    print(f"SpMV 2^20 rows: ideal {(8 * (N + 1) + 12 * nnz + 8 * N) / 2**20:.0f} MiB", flush=True)
    twice(lambda: spmv_csr_warp(ip, ix, d, xv, yv, N, opts=opts({"rows": parpy.threads(N),
                                                                 "nz": parpy.threads(8).reduce()})))
    A = torch.sparse_csr_tensor(ip, ix, d, (N, N))
    twice(lambda: A @ xv)


if __name__ == "__main__":
    main()
