"""What `__restrict__` on a kernel's pointers would gain: parpy's own kernels for the user-loop
programs (the 5- and 7-point stencils, CSR SpMV), built by NVRTC through CuPy as parpy prints them
and again with every pointer parameter `__restrict__` (valid only when the arrays share no
memory), timed in the same run beside a device-to-device copy of the same bytes.

Run on a machine with an NVIDIA GPU and CuPy: python benchmarks/restrict_probe.py
"""
import os
import re
import sys
import tempfile

import cupy
import numpy as np
import parpy
from kernels import power_law_csr, spmv_csr, stencil2d, stencil3d

C = parpy.CompileBackend.Cuda


def opts(p):
    o = parpy.par(p)
    o.backend = C
    return o


def kernels(code):
    """(name, source) of each __global__ kernel in printed code, with the code before it."""
    head = code[:code.index("__global__")]
    out = []
    for m in re.finditer(r"__global__ void __launch_bounds__\((\d+)\) (\w+)\(", code):
        end = code.index("\n}\n", m.start()) + 3
        out.append((m.group(2), int(m.group(1)), head + code[m.start():end]))
    return out


def restrict(src):
    return re.sub(r"\((([\w\s]+\*\s*\w+(,\s*)?)+)\)\s*\{", lambda m: "(" + re.sub(r"\*\s*(\w+)", r"* __restrict__ \1", m.group(1)) + ") {", src, count=1)


def launches(code):
    return {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(r"(\w+)<<<dim3\((\d+)\), dim3\((\d+)\)", code)}


def load(src, name):
    """The kernel `name` of `src`, compiled by parpy's NVRTC for this GPU."""
    from parpy import parpy as native

    d = cupy.cuda.Device()
    cc = d.compute_capability  # "90"
    image, kind, _, _ = native._nvrtc_compile(src, int(cc[:-1]), int(cc[-1]))
    path = tempfile.mkstemp(suffix="." + kind)[1]
    with open(path, "wb") as f:
        f.write(image)
    return cupy.RawModule(path=path).get_function(name)


def time_ms(f, reps=30):
    if os.environ.get("PARPY_PROBE_ONCE"):  # under a profiler: each kernel launched once, not timed
        f()
        cupy.cuda.Device().synchronize()
        return float("nan")
    f()
    cupy.cuda.Device().synchronize()
    s, e = cupy.cuda.Event(), cupy.cuda.Event()
    best = []
    for _ in range(5):
        s.record()
        for _ in range(reps):
            f()
        e.record()
        e.synchronize()
        best.append(cupy.cuda.get_elapsed_time(s, e) / reps)
    return float(np.median(best))


def probe(name, fn, host_args, spec, device_args, nbytes):
    code = parpy.print_compiled(fn, host_args, opts(spec))
    grid = launches(code)
    a = cupy.empty(nbytes // 8, dtype=cupy.float32)
    b = cupy.empty_like(a)
    copy = time_ms(lambda: b.__setitem__(slice(None), a))
    for kname, _, src in kernels(code):
        if kname.endswith("_vec") or kname not in grid:
            continue
        g, t = grid[kname]
        res = []
        for label, s in (("as printed", src), ("__restrict__", restrict(src))):
            k = load(s.replace("__global__ void", 'extern "C" __global__ void'), kname)
            ms = time_ms(lambda: k((g,), (t,), device_args))
            res.append(f"{label} {ms:.3f} ms ({nbytes / ms / 1e6:.0f} GB/s)")
        print(f"| {name} | {kname} | {' | '.join(res)} | copy {copy:.3f} ms ({nbytes / copy / 1e6:.0f} GB/s) |", flush=True)


def main():
    f32 = np.float32
    N = M = 8192
    x = cupy.random.standard_normal((N, M), dtype=f32)
    y = cupy.zeros_like(x)
    for spec in ({"rows": parpy.threads(N), "cols": parpy.threads(1024)},
                 {"rows": parpy.threads(32), "cols": parpy.threads(M)}):
        probe(f"5-point {N}x{M} {list(spec)}", stencil2d, [np.zeros((N, M), f32), np.zeros((N, M), f32), N, M],
              spec, (x, y), 8 * N * M)
    P = 512
    x3 = cupy.random.standard_normal((P, P, P), dtype=f32)
    y3 = cupy.zeros_like(x3)
    probe(f"7-point {P}^3", stencil3d, [np.zeros((P, P, P), f32), np.zeros((P, P, P), f32), P],
          {"planes": parpy.threads(P), "cols": parpy.threads(P)}, (x3, y3), 8 * P**3)
    R = 2**20
    ip, ix, d = power_law_csr(R, 16)
    xs = np.zeros(R, f32)
    args = (cupy.asarray(ip), cupy.asarray(ix), cupy.asarray(d), cupy.asarray(np.random.rand(R).astype(f32)),
            cupy.zeros(R, f32))
    probe(f"CSR SpMV {R} rows", spmv_csr, [ip, ix, d, xs, xs.copy(), R], {"rows": parpy.threads(R)}, args,
          int(ip.nbytes + ix.nbytes + d.nbytes + 8 * R))


if __name__ == "__main__":
    sys.exit(main())
