"""A cached jit call (CSR SpMV on tiny torch arrays) run many times, for a native profiler:
perf record -g python tools/call_loop.py [calls]"""
import sys
import time

import torch

sys.path.insert(0, "benchmarks")
import parpy  # noqa: E402
from kernels import power_law_csr, spmv_csr_warp  # noqa: E402

N = 256
ip, ix, d = (torch.from_numpy(a).cuda() for a in power_law_csr(N, 16))
x = torch.randn(N, device="cuda")
y = torch.zeros(N, device="cuda")
o = parpy.par({"rows": parpy.threads(N), "nz": parpy.threads(8).reduce()})
spmv_csr_warp(ip, ix, d, x, y, N, opts=o)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
t0 = time.perf_counter()
for _ in range(n):
    spmv_csr_warp(ip, ix, d, x, y, N, opts=o)
torch.cuda.synchronize()
print(f"{(time.perf_counter() - t0) / n * 1e6:.2f} us per call")
