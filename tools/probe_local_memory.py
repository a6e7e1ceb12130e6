"""Whether the layer norm's stepped kernel (31 registers and 8 bytes of local memory, see
benchmarks/RESULTS.md, "Layer norm and the NVRTC build") slows down when the context's local
memory reservation changes: its time in a fresh process, after a kernel with a large local array
ran (the driver grows the reservation, then may shrink it), and with the stack limit raised once.
Run on a machine with an NVIDIA GPU, torch and CuPy: python3 tools/probe_local_memory.py"""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "benchmarks"))
import cupy  # noqa: E402
import parpy  # noqa: E402
import torch  # noqa: E402
from kernels import layer_norm  # noqa: E402

N = M = 8192
x = torch.randn(N, M, device="cuda")
g, b = torch.randn(M, device="cuda"), torch.randn(M, device="cuda")
out = torch.empty_like(x)
o = parpy.par({"rows": parpy.threads(N), "cols": parpy.threads(1024)})
o.backend = parpy.CompileBackend.Cuda


def one_call_ms(reps=20):
    """The median of single calls between events (as benchmarks/gpu.py times them)."""
    ts = []
    for _ in range(reps):
        a, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        layer_norm(x, g, b, out, N, M, opts=o)
        e.record()
        e.synchronize()
        ts.append(a.elapsed_time(e))
    return sorted(ts)[len(ts) // 2]


layer_norm(x, g, b, out, N, M, opts=o)
torch.cuda.synchronize()
print(f"fresh process: {one_call_ms():.3f} ms", flush=True)
big = cupy.RawKernel(r'''
extern "C" __global__ void big_local(float* y, int n) {
  volatile float buf[4096];
  for (int i = 0; i < 4096; ++i) buf[i] = i * y[0];
  if (threadIdx.x == 0 && blockIdx.x == 0) y[1] = buf[n % 4096];
}''', "big_local")
yb = cupy.zeros(2, cupy.float32)
big((264,), (1024,), (yb, cupy.int32(7)))
cupy.cuda.Device().synchronize()
print(f"after a kernel with 16 KiB of local memory per thread: {one_call_ms():.3f} ms", flush=True)
for _ in range(3):
    big((264,), (1024,), (yb, cupy.int32(7)))
    print(f"  again after it: {one_call_ms(5):.3f} ms", flush=True)
cupy.cuda.runtime.deviceSetLimit(cupy.cuda.runtime.cudaLimitStackSize, 4096)
print(f"with the stack limit set to 4 KiB: {one_call_ms():.3f} ms", flush=True)
