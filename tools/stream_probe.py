"""The printed CSR SpMV kernel in streams (docs/gpu.md, Optimisations) against variants of its
helper parpy_stream_reduce, each one edit of the printed source, with each kernel's registers a
thread. Run on a machine with an NVIDIA GPU, CuPy and torch: python tools/stream_probe.py
(PARPY_STREAM_HELPERS=folder also times each file there, a helper named v_stream, instead).

What it found on an H200 (2026-12-03/04; the kernel alone, 2^20 rows, every element checked):
- the helper without any check of the bounds' order ("mine, no order check"): 0.074 ms;
- a branch on the result of __syncthreads_and, even one that only returns early: 0.118 ms (64
  registers); the same flag written to shared memory and read back at one address: 0.080 ms, as
  the compiler then knows the branch is uniform;
- a loop over the rows in turn for the unordered case (f called in one place): 0.097-0.102 ms;
- the helper as it is (that flag, each row's lanes on their own range where the bounds decrease,
  a full-warp shuffle at the end): 0.076 ms; parpy_group_allreduce's mask of the row's lanes at the
  end took 40 registers and 0.096 ms;
- values kept in f's own type (float) in shared memory ("value typed"): no faster.
"""
import re, sys
sys.path.insert(0, "benchmarks")
import numpy as np, cupy, parpy
from stencil_probe import printed, time_ms, check, EDITS
from kernels import power_law_csr, spmv_csr_warp
EDITS["no unroll"] = lambda src: re.sub(r"#pragma unroll \d+\n", "", src)

HELPER = r"""
template <class V, class Op, class F>
__device__ __noinline__ V my_fallback(int64_t rb, int64_t re, int lane, int L, V acc, Op op, F f) {
  for (int64_t k = rb + lane; k < re; k += L) acc = op(acc, (V)f(k));
  return acc;
}
template <int T, int RB, int CAP, int P, int ORD, class B, class V, class Op, class F>
__device__ __forceinline__ V my_stream(const B* bounds, int64_t rows, V ne, Op op, F f) {
  constexpr int L = T / RB;
  __shared__ V vals[CAP];
  __shared__ int64_t bnd[RB + 1];
  const int t = threadIdx.x, row = t / L, lane = t % L;
  if (t <= rows) bnd[t] = (int64_t)bounds[t];
  __syncthreads();
  bool ordered = true;
  if (ORD) ordered = __syncthreads_and(t >= rows || bnd[t] <= bnd[t + 1]);
  if (ORD == 2) ordered = true;
  const int64_t rb = row < rows ? bnd[row] : 0, re = row < rows ? bnd[row + 1] : 0;
  V acc = ne;
  if (ORD == 4 || ordered) {
    const int64_t b = ORD == 4 && !ordered ? 0 : bnd[0], e = ORD == 4 && !ordered ? 0 : bnd[rows];
    for (int64_t c = b; c < e; c += CAP) {
      const int64_t ce = c + CAP < e ? c + CAP : e;
      for (int64_t k0 = c + t; k0 < ce; k0 += (int64_t)T * P) {
        V v[P];
        #pragma unroll
        for (int u = 0; u < P; ++u) { int64_t k = k0 + (int64_t)u * T; v[u] = k < ce ? (V)f(k) : ne; }
        #pragma unroll
        for (int u = 0; u < P; ++u) { int64_t k = k0 + (int64_t)u * T; if (k < ce) vals[k - c] = v[u]; }
      }
      __syncthreads();
      const int64_t lo = rb > c ? rb : c, hi = re < ce ? re : ce;
      for (int64_t k = lo + lane; k < hi; k += L) acc = op(acc, vals[k - c]);
      __syncthreads();
    }
  }
  if (ORD == 4) {
    if (!ordered) for (int64_t k = rb + lane; k < re; k += L) acc = op(acc, (V)f(k));
  } else if (ordered) {
  } else if (ORD == 3) {
    acc = my_fallback(rb, re, lane, L, acc, op, f);
  } else {
    for (int64_t k = rb + lane; k < re; k += L) acc = op(acc, (V)f(k));
  }
  for (int o = L / 2; o > 0; o /= 2) acc = op(acc, __shfl_down_sync(0xffffffffu, acc, o, L));
  return acc;
}
"""
def mine(order):
    def edit(src):
        src = src.replace("parpy_stream_reduce<256, 64, 2048, 8>", f"my_stream<256, 64, 2048, 8, {order}>")
        i = src.index("__global__")
        return src[:i] + HELPER + src[i:]
    return edit
EDITS["mine"] = mine(1)
EDITS["mine, no order check"] = mine(0)
EDITS["mine, check ignored"] = mine(2)
EDITS["mine, empty stream"] = mine(4)
EDITS["mine, fallback not inlined"] = mine(3)


def helper_variant(name, edit):
    """The header's parpy_stream_reduce, renamed and edited, called instead."""
    head = open("python/parpy/include/parpy_cuda.h").read()
    i = head.index("template <int T, int RB, int CAP, int P, class B, class V, class Op, class F>\n"
                   "__device__ __forceinline__ V parpy_stream_reduce")
    end = "  return acc;\n}\n"
    j = head.index(end, i) + len(end)
    helper = edit(head[i:j].replace("parpy_stream_reduce", name).replace("parpy_vals", "pv")
                  .replace("parpy_bnd", "pb"))
    def apply(src):
        src = src.replace("parpy_stream_reduce<", name + "<")
        k = src.index("__global__")
        return src[:k] + helper + src[k:]
    return apply
def value_typed(h):
    """Values kept in f's own type (a float product), widened to V as a row reduces them."""
    h = h.replace("__shared__ V pv[CAP];", "using W = decltype(f(int64_t{0}));\n  __shared__ W pv[CAP];")
    h = h.replace("V v[P];", "W v[P];").replace("static_cast<V>(f(k)) : ne", "f(k) : W{}")
    return h.replace("acc = op(acc, pv[k - c])", "acc = op(acc, static_cast<V>(pv[k - c]))")
def untyped_lambda(src):
    return re.sub(r"-> double \{ return \(\(double\)\((.*?)\)\); \}", r"{ return \1; }", src)
EDITS["value typed"] = lambda src: helper_variant("typed_stream", value_typed)(untyped_lambda(src))
EDITS["8 blocks an SM"] = lambda src: src.replace("__launch_bounds__(256)", "__launch_bounds__(256, 8)")
EDITS["6 blocks an SM"] = lambda src: src.replace("__launch_bounds__(256)", "__launch_bounds__(256, 6)")
# Candidate helpers, each a file defining v_stream (an edit of parpy_stream_reduce), in the folder
# $PARPY_STREAM_HELPERS: each timed as printed and with 8 blocks an SM.
import os
CANDIDATES = []
for name in sorted(os.listdir(os.environ.get("PARPY_STREAM_HELPERS", "/nonexistent"))
                   if os.environ.get("PARPY_STREAM_HELPERS") else []):
    text = open(os.path.join(os.environ["PARPY_STREAM_HELPERS"], name)).read()
    def apply(src, text=text):
        src = src.replace("parpy_stream_reduce<", "v_stream<")
        k = src.index("__global__")
        return src[:k] + text + src[k:]
    EDITS[name] = apply
    CANDIDATES += [(name,), (name, "8 blocks an SM")]
R = 2**20
ip, ix, d = power_law_csr(R, 16)
xs = np.random.default_rng(1).random(R).astype(np.float32)
args = (cupy.asarray(ip), cupy.asarray(ix), cupy.asarray(d), cupy.asarray(xs), cupy.zeros(R, np.float32))
import cupyx.scipy.sparse as sp
want = sp.csr_matrix((args[2], args[1], args[0]), shape=(R, R)) @ args[3]
spec = {"rows": parpy.threads(R), "nz": parpy.threads(8).reduce()}
for edits in ((), ("mine, no order check",), ("8 blocks an SM",), ("value typed",),
              ("value typed", "8 blocks an SM"), *CANDIDATES):
    for kname, launch, f in printed(spmv_csr_warp, [ip, ix, d, xs, xs.copy(), R], spec, args, False, edits):
        args[4].fill(0)
        ms = time_ms(f)
        check(kname, args[4], want, 1e-4)
        print(f"| {', '.join(edits) or 'as printed'} {launch} | {ms:.3f} | {f.regs} |", flush=True)
