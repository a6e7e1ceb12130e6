"""What code the user-loop stencils and CSR SpMV need to reach the copy bandwidth (and cuSPARSE):
parpy's own kernels as printed, beside hand-written variants of the same loops, each a candidate
for what the compiler could generate, timed in one run with a device-to-device copy of the same
bytes (and cuSPARSE through CuPy for SpMV). Each variant's output is compared with the printed
kernel's, every element.

Variants (a name says what changed from the printed kernel):
- with barriers: the printed kernel of a call whose arrays may share memory (the same array
           passed twice), which keeps a barrier after each parallel loop
- i32:     32-bit index arithmetic, no barrier at the end of a row (the kernels use no shared memory)
- i32+ldg: that, with the read-only array's loads through the read-only cache (`__ldg`)
- rot R:   each thread keeps a column (2-D) or a (j, k) line (3-D) and walks R rows or planes,
           keeping the two it read before in registers: one new row read per row written
- tiled S: strips of S rows in registers (3-D), in blocks of columns by planes, so that a
           thread's planes i - 1 and i + 1 are its block's own (L1) rather than fetched from L2
- rotv R:  rot R (3-D) with 4 columns a thread: 128-bit loads and stores
- rot4s R: rot R (3-D) with 4 consecutive interior columns a thread from column 1 (unaligned),
           scalar loads, the centre plane's columns shared by the four (`3dnext`)
- rotp R:  rot R (3-D) with the next plane's five loads issued one plane ahead; rotu R: rot R
           with its plane loop unrolled by 4
- shfl R:  rot R, with the left and right neighbours taken from the next lanes (`__shfl_*`)
           instead of loaded (2-D)
- shflk R: the same for the 3-D rot R (`3dnext`)
- 2.5-D R: blocks of BX x BY threads walk R planes of their tile, the plane's tile and halo
           through shared memory (double-buffered, one barrier a plane), the planes above and
           below in registers, the centre values D planes ahead in flight (`3dnext`)
- printed, <edits>: the printed kernel with the named EDITS made (its unroll pragmas removed, its
           barriers removed, 32-bit indices; for SpMV: float accumulators, unrolled by 8)
- lanes L: SpMV with L lanes of a warp per row, 32-bit row indices, `__ldg`, a shuffle reduction;
           L_gP: P values per lane at a time through guarded loads (all in flight together), plain
           loads, double sums

Run on a machine with an NVIDIA GPU and CuPy: python benchmarks/stencil_probe.py [2d] [3d] [3dnext] [3dvec] [spmv]
(2d, 3d and spmv by default; PARPY_PROBE_ONCE=1 launches each kernel once, untimed, for a profiler)
"""
import re
import sys
import traceback

import cupy
import numpy as np
import parpy
from kernels import power_law_csr, spmv_csr, spmv_csr_warp, stencil2d, stencil3d, stencil3d_par
from restrict_probe import kernels, launches, load, opts, restrict, time_ms

# NVRTC through CuPy finds no C++ standard headers here; the fixed-width types the kernels use.
HEAD = "typedef long long i64;\ntypedef int i32;\ntypedef unsigned int u32;\n"

STENCIL2D = HEAD + r"""
extern "C" __global__ void __launch_bounds__(1024) s2_i32(const float* x, float* y, int n, int m, int ldg) {
  int i = 1 + blockIdx.x;
  if (i >= n - 1) return;
  for (int j = 1 + threadIdx.x; j < m - 1; j += blockDim.x) {
    const float* r = x + i * m + j;
    float v = ldg ? (__ldg(r - m) + __ldg(r + m)) + __ldg(r - 1) + __ldg(r + 1)
                  : (r[-m] + r[m]) + r[-1] + r[1];
    y[i * m + j] = 0.25f * v;
  }
}

// A block of blockDim.x columns walks rows [i0, i0 + R): one new row loaded per row written.
extern "C" __global__ void __launch_bounds__(256) s2_rot(const float* __restrict__ x, float* __restrict__ y,
                                                          int n, int m, int R) {
  int j = blockIdx.x * blockDim.x + threadIdx.x + 1;
  int i0 = 1 + blockIdx.y * R;
  if (j >= m - 1 || i0 >= n - 1) return;
  int i1 = min(i0 + R, n - 1);
  float up = __ldg(x + (i0 - 1) * m + j), mid = __ldg(x + i0 * m + j);
  for (int i = i0; i < i1; ++i) {
    const float* r = x + i * m + j;
    float dn = __ldg(r + m);
    y[i * m + j] = 0.25f * (((up + dn) + __ldg(r - 1)) + __ldg(r + 1));
    up = mid;
    mid = dn;
  }
}

// rot without the registers: every neighbour loaded in every row, plain loads as parpy prints them
// (does walking a short strip of rows, with the rows reused through L1, gain by itself?).
extern "C" __global__ void __launch_bounds__(256) s2_strip(const float* x, float* y, int n, int m, int R) {
  int j = blockIdx.x * blockDim.x + threadIdx.x + 1;
  int i0 = 1 + blockIdx.y * R;
  if (j >= m - 1 || i0 >= n - 1) return;
  int i1 = min(i0 + R, n - 1);
  for (int i = i0; i < i1; ++i) {
    const float* r = x + (i64)i * m + j;
    y[(i64)i * m + j] = 0.25f * (((r[-m] + r[m]) + r[-1]) + r[1]);
  }
}

// rot, with the row's left and right neighbours from the next lanes; a warp's edge lanes load theirs.
extern "C" __global__ void __launch_bounds__(256) s2_shfl(const float* __restrict__ x, float* __restrict__ y,
                                                           int n, int m, int R) {
  int j = blockIdx.x * blockDim.x + threadIdx.x + 1;
  int i0 = 1 + blockIdx.y * R;
  if (i0 >= n - 1) return;
  bool in = j < m - 1;
  int jj = in ? j : m - 1;  // every lane takes part in the shuffles; column m - 1 is read, not written
  int i1 = min(i0 + R, n - 1);
  int lane = threadIdx.x & 31;
  float up = __ldg(x + (i0 - 1) * m + jj), mid = __ldg(x + i0 * m + jj);
  for (int i = i0; i < i1; ++i) {
    const float* r = x + i * m + jj;
    float dn = __ldg(r + m);
    float l = __shfl_up_sync(0xffffffffu, mid, 1), rr = __shfl_down_sync(0xffffffffu, mid, 1);
    if (lane == 0) l = __ldg(r - 1);
    if (lane == 31) rr = __ldg(r + 1);
    if (in) y[i * m + j] = 0.25f * (((up + dn) + l) + rr);
    up = mid;
    mid = dn;
  }
}
"""

STENCIL3D = HEAD + r"""
extern "C" __global__ void __launch_bounds__(512) s3_i32(const float* x, float* y, int n, int ldg) {
  int i = 1 + blockIdx.x;
  if (i >= n - 1) return;
  int p = n * n;
  for (int j = 1; j < n - 1; ++j) {
    for (int k = 1 + threadIdx.x; k < n - 1; k += blockDim.x) {
      const float* r = x + i * p + j * n + k;
      float v = ldg ? ((((__ldg(r - p) + __ldg(r + p)) + __ldg(r - n)) + __ldg(r + n)) + __ldg(r - 1)) + __ldg(r + 1)
                    : ((((r[-p] + r[p]) + r[-n]) + r[n]) + r[-1]) + r[1];
      y[i * p + j * n + k] = v / 6.0f;
    }
  }
}

// parpy's layout (a block per plane, its threads over k, walking the rows j) with a barrier after
// every U rows instead of every row; R: the pointers __restrict__ (loads of the next rows may then
// move above the stores of this one).
template <int U>
__device__ void rows_u(const float* x, float* y, int n) {
  int i = 1 + blockIdx.x;
  if (i >= n - 1) return;
  int p = n * n;
  for (int j = 1; j < n - 1; j += U) {
    #pragma unroll
    for (int u = 0; u < U; ++u) {
      if (j + u >= n - 1) break;
      for (int k = 1 + threadIdx.x; k < n - 1; k += blockDim.x) {
        const float* r = x + (i64)i * p + (j + u) * n + k;
        y[(i64)i * p + (j + u) * n + k] = (((((r[-p] + r[p]) + r[-n]) + r[n]) + r[-1]) + r[1]) / 6.0f;
      }
    }
    __syncthreads();
  }
}
template <int U>
__device__ void rows_u_r(const float* __restrict__ x, float* __restrict__ y, int n) {
  int i = 1 + blockIdx.x;
  if (i >= n - 1) return;
  int p = n * n;
  for (int j = 1; j < n - 1; j += U) {
    #pragma unroll
    for (int u = 0; u < U; ++u) {
      if (j + u >= n - 1) break;
      for (int k = 1 + threadIdx.x; k < n - 1; k += blockDim.x) {
        const float* r = x + (i64)i * p + (j + u) * n + k;
        y[(i64)i * p + (j + u) * n + k] = (((((r[-p] + r[p]) + r[-n]) + r[n]) + r[-1]) + r[1]) / 6.0f;
      }
    }
    __syncthreads();
  }
}
#define ROWS_KERNEL(U) \
  extern "C" __global__ void __launch_bounds__(512) s3_rows##U(const float* x, float* y, int n) { rows_u<U>(x, y, n); } \
  extern "C" __global__ void __launch_bounds__(512) s3_rows##U##r(const float* x, float* y, int n) { rows_u_r<U>(x, y, n); }
ROWS_KERNEL(1)
ROWS_KERNEL(2)
ROWS_KERNEL(4)
ROWS_KERNEL(8)

// A thread walks planes [i0, i0 + R) of its line (j, k), every neighbour loaded (no registers).
extern "C" __global__ void __launch_bounds__(256) s3_strip(const float* x, float* y, int n, int R) {
  int k = blockIdx.x * blockDim.x + threadIdx.x + 1;
  int j = blockIdx.y * blockDim.y + threadIdx.y + 1;
  int i0 = 1 + blockIdx.z * R;
  if (k >= n - 1 || j >= n - 1 || i0 >= n - 1) return;
  int p = n * n;
  int i1 = min(i0 + R, n - 1);
  for (int i = i0; i < i1; ++i) {
    const float* r = x + (i64)i * p + j * n + k;
    y[(i64)i * p + j * n + k] = (((((r[-p] + r[p]) + r[-n]) + r[n]) + r[-1]) + r[1]) / 6.0f;
  }
}

// Planes marched as in s3_rot, the plane's (j, k) neighbours from a shared-memory tile of the
// block's (blockDim.y + 2) x (blockDim.x + 2) elements (the classic 2.5-D blocking).
extern "C" __global__ void __launch_bounds__(256) s3_smem(const float* __restrict__ x, float* __restrict__ y,
                                                           int n, int R) {
  extern __shared__ float t[];
  int tx = threadIdx.x, ty = threadIdx.y, W = blockDim.x + 2;
  int k = blockIdx.x * blockDim.x + tx + 1;
  int j = blockIdx.y * blockDim.y + ty + 1;
  int i0 = 1 + blockIdx.z * R;
  if (i0 >= n - 1) return;
  bool in = k < n - 1 && j < n - 1;
  int p = n * n;
  int i1 = min(i0 + R, n - 1);
  i64 c = (i64)j * n + k;
  float up = in ? __ldg(x + (i64)(i0 - 1) * p + c) : 0.0f, mid = in ? __ldg(x + (i64)i0 * p + c) : 0.0f;
  float* me = t + (ty + 1) * W + tx + 1;
  for (int i = i0; i < i1; ++i) {
    const float* r = x + (i64)i * p + c;
    __syncthreads();  // the previous plane's tile is read by all
    if (in) {
      me[0] = mid;
      if (tx == 0) me[-1] = __ldg(r - 1);
      if (tx == blockDim.x - 1 || k == n - 2) me[1] = __ldg(r + 1);
      if (ty == 0) me[-W] = __ldg(r - n);
      if (ty == blockDim.y - 1 || j == n - 2) me[W] = __ldg(r + n);
    }
    __syncthreads();
    float dn = in ? __ldg(r + p) : 0.0f;
    if (in) y[(i64)i * p + c] = (((((up + dn) + me[-W]) + me[W]) + me[-1]) + me[1]) / 6.0f;
    up = mid;
    mid = dn;
  }
}

// A thread keeps the line (j, k) and walks planes [i0, i0 + R).
extern "C" __global__ void __launch_bounds__(1024) s3_rot(const float* __restrict__ x, float* __restrict__ y,
                                                          int n, int R) {
  int k = blockIdx.x * blockDim.x + threadIdx.x + 1;
  int j = blockIdx.y * blockDim.y + threadIdx.y + 1;
  int i0 = 1 + blockIdx.z * R;
  if (k >= n - 1 || j >= n - 1 || i0 >= n - 1) return;
  int p = n * n;
  int i1 = min(i0 + R, n - 1);
  float up = __ldg(x + (i0 - 1) * p + j * n + k), mid = __ldg(x + i0 * p + j * n + k);
  for (int i = i0; i < i1; ++i) {
    const float* r = x + i * p + j * n + k;
    float dn = __ldg(r + p);
    y[i * p + j * n + k] = (((((up + dn) + __ldg(r - n)) + __ldg(r + n)) + __ldg(r - 1)) + __ldg(r + 1)) / 6.0f;
    up = mid;
    mid = dn;
  }
}

// s3_rot with the loads of the next plane's five values issued one plane ahead (software
// pipelining: they are in flight while this plane's sum is computed and stored).
extern "C" __global__ void __launch_bounds__(1024) s3_rotp(const float* __restrict__ x, float* __restrict__ y,
                                                           int n, int R) {
  int k = blockIdx.x * blockDim.x + threadIdx.x + 1;
  int j = blockIdx.y * blockDim.y + threadIdx.y + 1;
  int i0 = 1 + blockIdx.z * R;
  if (k >= n - 1 || j >= n - 1 || i0 >= n - 1) return;
  int p = n * n;
  int i1 = min(i0 + R, n - 1);
  const float* r = x + i0 * p + j * n + k;
  float up = __ldg(r - p), mid = __ldg(r);
  float dn = __ldg(r + p), a = __ldg(r - n), b = __ldg(r + n), c = __ldg(r - 1), d = __ldg(r + 1);
  for (int i = i0; i < i1; ++i) {
    float dn2 = 0.0f, a2 = 0.0f, b2 = 0.0f, c2 = 0.0f, d2 = 0.0f;
    if (i + 1 < i1) {
      const float* q = r + p;
      dn2 = __ldg(q + p); a2 = __ldg(q - n); b2 = __ldg(q + n); c2 = __ldg(q - 1); d2 = __ldg(q + 1);
    }
    y[i * p + j * n + k] = (((((up + dn) + a) + b) + c) + d) / 6.0f;
    up = mid; mid = dn; dn = dn2; a = a2; b = b2; c = c2; d = d2;
    r += p;
  }
}

// s3_rot with its plane loop unrolled by 4.
extern "C" __global__ void __launch_bounds__(256) s3_rotu(const float* __restrict__ x, float* __restrict__ y,
                                                           int n, int R) {
  int k = blockIdx.x * blockDim.x + threadIdx.x + 1;
  int j = blockIdx.y * blockDim.y + threadIdx.y + 1;
  int i0 = 1 + blockIdx.z * R;
  if (k >= n - 1 || j >= n - 1 || i0 >= n - 1) return;
  int p = n * n;
  int i1 = min(i0 + R, n - 1);
  float up = __ldg(x + (i0 - 1) * p + j * n + k), mid = __ldg(x + i0 * p + j * n + k);
  #pragma unroll 4
  for (int i = i0; i < i1; ++i) {
    const float* r = x + i * p + j * n + k;
    float dn = __ldg(r + p);
    y[i * p + j * n + k] = (((((up + dn) + __ldg(r - n)) + __ldg(r + n)) + __ldg(r - 1)) + __ldg(r + 1)) / 6.0f;
    up = mid;
    mid = dn;
  }
}
// Strips of S rows (a thread: column k of rows j0 .. j0 + S - 1 of plane i, the rows kept in
// registers, as parpy's 2-D strips), in blocks of bx columns by bz planes, so that the planes
// i - 1 and i + 1 a thread reads are the planes its block's other threads read as theirs (L1
// hits), where blocks of one plane's columns (bz = 1) fetch them again from L2 (as parpy's 3-D
// strips, planes in registers, fetch the rows j - 1 and j + 1). blockIdx.y: the strip;
// blockIdx.z: the block's planes.
template <int S>
__device__ void tiled(const float* __restrict__ x, float* __restrict__ y, int n) {
  int k = blockIdx.x * blockDim.x + threadIdx.x + 1;
  int i = blockIdx.z * blockDim.y + threadIdx.y + 1;
  int j0 = 1 + blockIdx.y * S;
  if (k >= n - 1 || i >= n - 1) return;
  int p = n * n;
  const float* c = x + (i64)i * p + k;
  float up = __ldg(c + (j0 - 1) * n), mid = __ldg(c + j0 * n);
  #pragma unroll
  for (int s = 0; s < S; ++s) {
    int j = j0 + s;
    if (j < n - 1) {
      const float* r = c + j * n;
      float dn = __ldg(r + n);
      y[(i64)i * p + j * n + k] = (((((__ldg(r - p) + __ldg(r + p)) + up) + dn) + __ldg(r - 1)) + __ldg(r + 1)) / 6.0f;
      up = mid;
      mid = dn;
    }
  }
}
extern "C" __global__ void __launch_bounds__(256) s3_tiled4(const float* x, float* y, int n) { tiled<4>(x, y, n); }
extern "C" __global__ void __launch_bounds__(256) s3_tiled8(const float* x, float* y, int n) { tiled<8>(x, y, n); }

__device__ __forceinline__ float4 ld4(const float* q) { return __ldg(reinterpret_cast<const float4*>(q)); }

// rot R with 4 columns per thread (k0 .. k0 + 3, n a multiple of 4): the centre line, its
// neighbouring rows and the next plane in 128-bit loads (a quarter of the load instructions of
// rot), the columns k0 - 1 and k0 + 4 as scalars. Blocks of bx x by threads over (k, j).
extern "C" __global__ void __launch_bounds__(256) s3_rotv(const float* __restrict__ x, float* __restrict__ y,
                                                           int n, int R) {
  int k0 = 4 * (blockIdx.x * blockDim.x + threadIdx.x);
  int j = blockIdx.y * blockDim.y + threadIdx.y + 1;
  int i0 = 1 + blockIdx.z * R;
  if (k0 >= n || j >= n - 1 || i0 >= n - 1) return;
  i64 p = (i64)n * n;
  int i1 = min(i0 + R, n - 1);
  const float* r = x + i0 * p + (i64)j * n + k0;
  float* w = y + i0 * p + (i64)j * n + k0;
  float4 up = ld4(r - p), mid = ld4(r);
  for (int i = i0; i < i1; ++i, r += p, w += p) {
    float4 dn = ld4(r + p), a = ld4(r - n), b = ld4(r + n);
    float l = k0 > 0 ? __ldg(r - 1) : 0.0f, rr = k0 + 4 < n ? __ldg(r + 4) : 0.0f;
    float4 o;
    o.x = (((((up.x + dn.x) + a.x) + b.x) + l) + mid.y) / 6.0f;
    o.y = (((((up.y + dn.y) + a.y) + b.y) + mid.x) + mid.z) / 6.0f;
    o.z = (((((up.z + dn.z) + a.z) + b.z) + mid.y) + mid.w) / 6.0f;
    o.w = (((((up.w + dn.w) + a.w) + b.w) + mid.z) + rr) / 6.0f;
    if (k0 > 0 && k0 + 4 < n) {
      *reinterpret_cast<float4*>(w) = o;
    } else if (k0 == 0) {  // column 0 is the boundary
      w[1] = o.y; w[2] = o.z; w[3] = o.w;
    } else {  // column n - 1 is the boundary
      w[0] = o.x; w[1] = o.y; w[2] = o.z;
    }
    up = mid;
    mid = dn;
  }
}

// rot R with 4 consecutive interior columns a thread (k0 = 1 + 4t .. k0 + 3, the last group cut at
// column n - 2), each column a scalar load: what unrolling the columns loop of parpy's strips by 4
// and jamming it into the plane loop gives without 128-bit accesses. Columns k0 - 1 .. k0 + 4 of
// the centre plane are loaded once each and shared by the four columns.
extern "C" __global__ void __launch_bounds__(256) s3_rot4s(const float* __restrict__ x, float* __restrict__ y,
                                                            int n, int R) {
  int k0 = 1 + 4 * (blockIdx.x * blockDim.x + threadIdx.x);
  int j = blockIdx.y * blockDim.y + threadIdx.y + 1;
  int i0 = 1 + blockIdx.z * R;
  if (k0 >= n - 1 || j >= n - 1 || i0 >= n - 1) return;
  i64 p = (i64)n * n;
  int i1 = min(i0 + R, n - 1);
  int m = min(4, n - 1 - k0);  // columns of this group
  const float* r = x + i0 * p + (i64)j * n + k0;
  float* w = y + i0 * p + (i64)j * n + k0;
  float up[4], mid[6];
  #pragma unroll
  for (int u = 0; u < 4; ++u) up[u] = u < m ? __ldg(r - p + u) : 0.0f;
  #pragma unroll
  for (int u = 0; u < 6; ++u) mid[u] = u <= m + 1 ? __ldg(r - 1 + u) : 0.0f;
  for (int i = i0; i < i1; ++i, r += p, w += p) {
    float dn[6], a[4], b[4];
    #pragma unroll
    for (int u = 0; u < 6; ++u) dn[u] = u <= m + 1 ? __ldg(r + p - 1 + u) : 0.0f;
    #pragma unroll
    for (int u = 0; u < 4; ++u) {
      a[u] = u < m ? __ldg(r - n + u) : 0.0f;
      b[u] = u < m ? __ldg(r + n + u) : 0.0f;
    }
    #pragma unroll
    for (int u = 0; u < 4; ++u)
      if (u < m) w[u] = (((((up[u] + dn[u + 1]) + a[u]) + b[u]) + mid[u]) + mid[u + 2]) / 6.0f;
    #pragma unroll
    for (int u = 0; u < 4; ++u) up[u] = mid[u + 1];
    #pragma unroll
    for (int u = 0; u < 6; ++u) mid[u] = dn[u];
  }
}

"""

STENCIL3D_NEXT = HEAD + r"""
#define FULL 0xffffffffu
// rot R (planes in registers, a block of bx x by threads over (k, j)) with the columns k - 1 and
// k + 1 taken from the next lanes' centre values (warp shuffles) instead of loaded: a warp's lanes
// are consecutive columns (blockDim.x a multiple of 32), lane 0 and lane 31 (and the last interior
// column) load theirs. By the count of bytes, the loads of k - 1 and k + 1 are what takes the
// printed kernel's L2 traffic (3.2 GB) past its 2.3 GB of the other loads and the stores.
extern "C" __global__ void __launch_bounds__(256) s3_shflk(const float* __restrict__ x, float* __restrict__ y,
                                                            int n, int R) {
  int k = blockIdx.x * blockDim.x + threadIdx.x + 1;
  int j = blockIdx.y * blockDim.y + threadIdx.y + 1;
  int i0 = 1 + blockIdx.z * R;
  if (j >= n - 1 || i0 >= n - 1) return;  // whole warps: j is one per warp
  bool in = k < n - 1;
  int lane = threadIdx.x & 31;
  i64 p = (i64)n * n, c = (i64)j * n + k;
  int i1 = min(i0 + R, n - 1);
  float up = in ? __ldg(x + (i0 - 1) * p + c) : 0.0f, mid = in ? __ldg(x + i0 * p + c) : 0.0f;
  for (int i = i0; i < i1; ++i) {
    i64 o = i * p + c;
    float dn = in ? __ldg(x + o + p) : 0.0f;
    float a = in ? __ldg(x + o - n) : 0.0f, b = in ? __ldg(x + o + n) : 0.0f;
    float l = __shfl_up_sync(FULL, mid, 1), r = __shfl_down_sync(FULL, mid, 1);
    if (in && lane == 0) l = __ldg(x + o - 1);
    if (in && (lane == 31 || k == n - 2)) r = __ldg(x + o + 1);
    if (in) y[o] = (((((up + dn) + a) + b) + l) + r) / 6.0f;
    up = mid;
    mid = dn;
  }
}

// The classic 2.5-D blocking: a block of BX x BY threads owns a BX x BY tile of every plane and
// walks planes [i0, i0 + R); the plane's tile and its one-element halo go through shared memory
// (two buffers: one barrier per plane), the planes i - 1 and i + 1 of a thread's own (j, k) stay in
// registers, the centre values of the next D planes are loaded ahead (D loads in flight per
// thread; a block's L2 traffic is its tile plus halo, about 1.3x the tile, against the printed
// kernel's 3x), and the halo of the next plane one plane ahead.
template <int BX, int BY, int D>
__device__ void s25(const float* __restrict__ x, float* __restrict__ y, int n, int R) {
  __shared__ float t[2][BY + 2][BX + 2];
  int tx = threadIdx.x, ty = threadIdx.y;
  int k = blockIdx.x * BX + tx + 1, j = blockIdx.y * BY + ty + 1;
  int i0 = 1 + blockIdx.z * R;
  if (i0 >= n - 1) return;  // the whole block
  bool in = k < n - 1 && j < n - 1;
  bool hl = in && tx == 0, hr = in && (tx == BX - 1 || k == n - 2);
  bool ht = in && ty == 0, hb = in && (ty == BY - 1 || j == n - 2);
  i64 p = (i64)n * n, c = (i64)j * n + k;
  int i1 = min(i0 + R, n - 1);
  // q[0] = plane i - 1, q[1] = plane i, q[2 ..] = planes i + 1 .. i + D (loaded ahead).
  float q[D + 2];
  #pragma unroll
  for (int d = 0; d < D + 2; ++d) q[d] = in && i0 - 1 + d < n ? __ldg(x + (i0 - 1 + d) * p + c) : 0.0f;
  i64 o = i0 * p + c;
  float vl = hl ? __ldg(x + o - 1) : 0.0f, vr = hr ? __ldg(x + o + 1) : 0.0f;
  float vt = ht ? __ldg(x + o - n) : 0.0f, vb = hb ? __ldg(x + o + n) : 0.0f;
  int b = 0;
  for (int i = i0; i < i1; ++i, b ^= 1) {
    o = i * p + c;
    if (in) t[b][ty + 1][tx + 1] = q[1];  // (a thread past the last column would overwrite its halo)
    if (hl) t[b][ty + 1][tx] = vl;
    if (hr) t[b][ty + 1][tx + 2] = vr;
    if (ht) t[b][ty][tx + 1] = vt;
    if (hb) t[b][ty + 2][tx + 1] = vb;
    // The next plane's halo, and the centre value D + 1 planes ahead, in flight across the barrier.
    bool more = i + 1 < i1;
    vl = hl && more ? __ldg(x + o + p - 1) : 0.0f;
    vr = hr && more ? __ldg(x + o + p + 1) : 0.0f;
    vt = ht && more ? __ldg(x + o + p - n) : 0.0f;
    vb = hb && more ? __ldg(x + o + p + n) : 0.0f;
    float ahead = in && i + D + 1 < n ? __ldg(x + o + (D + 1) * p) : 0.0f;
    __syncthreads();
    if (in)
      y[o] = (((((q[0] + q[2]) + t[b][ty][tx + 1]) + t[b][ty + 2][tx + 1]) + t[b][ty + 1][tx]) + t[b][ty + 1][tx + 2]) / 6.0f;
    #pragma unroll
    for (int d = 0; d < D + 1; ++d) q[d] = q[d + 1];
    q[D + 1] = ahead;
  }
}
#define S25(BX, BY, D) extern "C" __global__ void __launch_bounds__(BX * BY) s25_##BX##x##BY##_d##D( \
    const float* x, float* y, int n, int R) { s25<BX, BY, D>(x, y, n, R); }
S25(32, 8, 1)
S25(32, 8, 2)
S25(32, 8, 4)
S25(32, 16, 1)
S25(32, 16, 2)
S25(64, 4, 2)
S25(64, 8, 1)
S25(64, 8, 2)
S25(64, 8, 4)
S25(128, 4, 2)
S25(128, 8, 2)
S25(256, 2, 2)
"""

SPMV = HEAD + r"""
// L lanes per row (L divides 32), rows packed into the block's warps, accumulated in A; U: the
// unroll factor of the loop over a row's values (parpy prints `#pragma unroll 4`).
template <int L, typename A, int U>
__device__ void spmv_lanes(const i64* __restrict__ ip, const i64* __restrict__ ix, const float* __restrict__ d,
                           const float* __restrict__ x, float* __restrict__ y, int n) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  int row = t / L, lane = t % L;
  A s = 0;
  if (row < n) {
    i64 b = __ldg(ip + row), e = __ldg(ip + row + 1);
    #pragma unroll U
    for (i64 k = b + lane; k < e; k += L) s += (A)(__ldg(d + k) * __ldg(x + __ldg(ix + k)));
  }
  for (int o = L / 2; o > 0; o /= 2) s += __shfl_down_sync(0xffffffffu, s, o, L);
  if (row < n && lane == 0) y[row] = (float)s;
}
#define SPMV_KERNEL(name, L, A, U) extern "C" __global__ void __launch_bounds__(256) name( \
    const i64* ip, const i64* ix, const float* d, const float* x, float* y, int n) { spmv_lanes<L, A, U>(ip, ix, d, x, y, n); }
SPMV_KERNEL(spmv_l1, 1, float, 1)
SPMV_KERNEL(spmv_l2, 2, float, 1)
SPMV_KERNEL(spmv_l4, 4, float, 1)
SPMV_KERNEL(spmv_l8, 8, float, 1)
SPMV_KERNEL(spmv_l16, 16, float, 1)
SPMV_KERNEL(spmv_l4_f64, 4, double, 1)
SPMV_KERNEL(spmv_l8_f64, 8, double, 1)
SPMV_KERNEL(spmv_l4_f64_u4, 4, double, 4)
SPMV_KERNEL(spmv_l8_f64_u4, 8, double, 4)

// The sum of a row's values b..e that lane `lane` of S takes: P at a time with guarded loads (a value
// past the row's end reads nothing and adds 0), so that the lane's loads for up to P values are all
// in flight at once. Plain loads and a double accumulator, as parpy prints them.
template <int S, int P>
__device__ __forceinline__ double spmv_lane_sum(i64 b, i64 e, int lane, const i64* ix, const float* d, const float* x) {
  double s = 0;
  for (i64 k = b + lane; k < e; k += S * P) {
    float v[P];
    #pragma unroll
    for (int u = 0; u < P; ++u) {
      i64 kk = k + u * S;
      v[u] = kk < e ? d[kk] * x[ix[kk]] : 0.0f;
    }
    #pragma unroll
    for (int u = 0; u < P; ++u) s += (double)v[u];
  }
  return s;
}

// L lanes per row, each lane's values taken P at a time with guarded loads, where the unrolled loop
// above loads a short row's values one branch after another.
template <int L, int P>
__device__ void spmv_guarded(const i64* ip, const i64* ix, const float* d, const float* x, float* y, int n) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  int row = t / L, lane = t % L;
  double s = row < n ? spmv_lane_sum<L, P>(ip[row], ip[row + 1], lane, ix, d, x) : 0.0;
  for (int o = L / 2; o > 0; o /= 2) s += __shfl_down_sync(0xffffffffu, s, o, L);
  if (row < n && lane == 0) y[row] = (float)s;
}
#define SPMV_GUARDED(name, L, P) extern "C" __global__ void __launch_bounds__(256) name( \
    const i64* ip, const i64* ix, const float* d, const float* x, float* y, int n) { spmv_guarded<L, P>(ip, ix, d, x, y, n); }
SPMV_GUARDED(spmv_l4_g2, 4, 2)
SPMV_GUARDED(spmv_l4_g4, 4, 4)
SPMV_GUARDED(spmv_l8_g2, 8, 2)
SPMV_GUARDED(spmv_l8_g4, 8, 4)
SPMV_GUARDED(spmv_l16_g2, 16, 2)

// spmv_guarded with the long rows (more than T rounds of its L lanes) left to the whole warp: the
// groups of a warp run their short rows, then the warp runs each of its long rows with all 32
// lanes, P guarded loads a lane at a time, and a warp reduction.
template <int L, int P, int T>
__device__ void spmv_coop(const i64* ip, const i64* ix, const float* d, const float* x, float* y, int n) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  int row = t / L, lane = t % L, wl = threadIdx.x % 32;
  i64 b = 0, e = 0;
  if (row < n) { b = ip[row]; e = ip[row + 1]; }
  bool long_row = e - b > (i64)T * L * P;
  double s = long_row ? 0.0 : spmv_lane_sum<L, P>(b, e, lane, ix, d, x);
  for (int o = L / 2; o > 0; o /= 2) s += __shfl_down_sync(0xffffffffu, s, o, L);
  if (row < n && lane == 0 && !long_row) y[row] = (float)s;
  unsigned todo = __ballot_sync(0xffffffffu, long_row && lane == 0);
  while (todo) {
    int src = __ffs(todo) - 1;
    todo &= todo - 1;
    i64 bb = __shfl_sync(0xffffffffu, b, src), ee = __shfl_sync(0xffffffffu, e, src);
    double ss = spmv_lane_sum<32, P>(bb, ee, wl, ix, d, x);
    for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (wl == src) y[row] = (float)ss;
  }
}
#define SPMV_COOP(name, L, P, T) extern "C" __global__ void __launch_bounds__(256) name( \
    const i64* ip, const i64* ix, const float* d, const float* x, float* y, int n) { spmv_coop<L, P, T>(ip, ix, d, x, y, n); }
SPMV_COOP(spmv_l8_c1, 8, 4, 1)
SPMV_COOP(spmv_l8_c2, 8, 4, 2)
SPMV_COOP(spmv_l8_c4, 8, 4, 4)
SPMV_COOP(spmv_l4_c2, 4, 4, 2)

// CSR-stream: a block of T threads takes RB consecutive rows, whose values are one contiguous
// range; the block computes the products of up to CAP of them at a time (P guarded loads a thread
// in flight, coalesced over the whole block, no lane idle at a row's end) into shared memory, then
// each row's T / RB lanes add up its part of them there. Rows longer than CAP take several rounds.
template <int T, int RB, int CAP, int P>
__device__ void spmv_stream(const i64* ip, const i64* ix, const float* d, const float* x, float* y, int n) {
  constexpr int L = T / RB;
  __shared__ float prod[CAP];
  __shared__ i64 bnd[RB + 1];
  int r0 = blockIdx.x * RB, rows = min(RB, n - r0), t = threadIdx.x;
  if (t <= rows) bnd[t] = ip[r0 + t];
  __syncthreads();
  i64 b = bnd[0], e = bnd[rows];
  int row = t / L, lane = t % L;
  i64 rb = row < rows ? bnd[row] : 0, re = row < rows ? bnd[row + 1] : 0;
  float s = 0.0f;
  for (i64 c = b; c < e; c += CAP) {
    i64 ce = min(c + (i64)CAP, e);
    for (i64 k0 = c + t; k0 < ce; k0 += (i64)T * P) {
      float v[P];
      #pragma unroll
      for (int u = 0; u < P; ++u) {
        i64 k = k0 + (i64)u * T;
        v[u] = k < ce ? d[k] * x[ix[k]] : 0.0f;
      }
      #pragma unroll
      for (int u = 0; u < P; ++u) {
        i64 k = k0 + (i64)u * T;
        if (k < ce) prod[k - c] = v[u];
      }
    }
    __syncthreads();
    for (i64 k = max(rb, c) + lane; k < min(re, ce); k += L) s += prod[k - c];
    __syncthreads();
  }
  for (int o = L / 2; o > 0; o /= 2) s += __shfl_down_sync(0xffffffffu, s, o, L);
  if (row < rows && lane == 0) y[r0 + row] = s;
}
#define SPMV_STREAM(name, T, RB, CAP, P) extern "C" __global__ void __launch_bounds__(T) name( \
    const i64* ip, const i64* ix, const float* d, const float* x, float* y, int n) { spmv_stream<T, RB, CAP, P>(ip, ix, d, x, y, n); }
SPMV_STREAM(spmv_s256_32, 256, 32, 1024, 4)
SPMV_STREAM(spmv_s256_64, 256, 64, 2048, 4)
SPMV_STREAM(spmv_s256_64p8, 256, 64, 2048, 8)
SPMV_STREAM(spmv_s128_16, 128, 16, 512, 4)
SPMV_STREAM(spmv_s128_32, 128, 32, 1024, 4)
SPMV_STREAM(spmv_s512_64, 512, 64, 2048, 4)
SPMV_STREAM(spmv_s512_128, 512, 128, 4096, 4)
SPMV_STREAM(spmv_s1024_128, 1024, 128, 4096, 2)
"""


def module(src):
    return cupy.RawModule(code=src, options=("-std=c++17",))


def row(name, ms, nbytes, copy, extra=""):
    print(f"| {name} | {ms:.3f} | {nbytes / ms / 1e6:.0f} | {copy / ms:.2f}x |{extra}", flush=True)


# Edits of a printed kernel's source, each isolating one difference from the hand-written
# variants: its loops' unroll pragmas, its barriers, 64-bit index arithmetic (stencils only: their
# pointers are all float), double accumulators (SpMV).
EDITS = {
    "no unroll": lambda src: re.sub(r"#pragma unroll \d+\n", "", src),
    "no barriers": lambda src: src.replace("parpy_syncthreads();", ""),
    "i32": lambda src: src.replace("int64_t", "int32_t"),
    "float sums": lambda src: src.replace("double", "float"),
    "unroll 8": lambda src: src.replace("#pragma unroll 4", "#pragma unroll 8"),
    # SpMV: its locals (row, lane, positions) in 32 bits, its int64 index arrays as they are.
    "i32 locals": lambda src: re.sub(r"\bint64_t(?=\s)", "int32_t", src),
    "no group sync": lambda src: re.sub(r"parpy_group_sync\(\d+\);", "", src),
    "guarded": lambda src: guarded(src),
}


def guarded(src):
    """SpMV: the unrolled loop over a lane's values computes each value under its guard (the
    reduction's 0 past the row's end), then adds them up, as spmv_guarded does."""
    m = re.search(r"( *)#pragma unroll\n *for \(int64_t (parpy_u\d+) = 0; \2 < (\d+); \+\+\2\) \{\n"
                  r"(?P<body>(?:.*\n)*?) *(parpy_acc\d+) = \(\5 \+ (?P<val>.*)\);\n *\}\n *\}\n", src)
    if not m:
        raise ValueError("guarded: no unrolled reduction loop")
    ind, u, n, acc = m.group(1), m.group(2), m.group(3), m.group(5)
    new = (f"{ind}double parpy_v[{n}];\n{ind}#pragma unroll\n{ind}for (int64_t {u} = 0; {u} < {n}; ++{u}) {{\n"
           f"{ind}  parpy_v[{u}] = 0.0;\n{m.group('body')}{ind}    parpy_v[{u}] = {m.group('val')};\n{ind}  }}\n{ind}}}\n"
           f"{ind}#pragma unroll\n{ind}for (int64_t {u} = 0; {u} < {n}; ++{u}) {acc} = {acc} + parpy_v[{u}];\n")
    return src[:m.start()] + new + src[m.end():]


def printed(fn, host_args, spec, device_args, restricted=False, edits=()):
    """(kernel name, launch, callable) of each kernel parpy prints for this call (with every pointer
    parameter `__restrict__` for `restricted`, and the EDITS named in `edits` made)."""
    code = parpy.print_compiled(fn, host_args, opts(spec))
    grid = launches(code)
    out = []
    for kname, _, src in kernels(code):
        if kname in grid:
            src = restrict(src) if restricted else src
            for e in edits:
                src = EDITS[e](src)
            k = load(src.replace("__global__ void", 'extern "C" __global__ void'), kname)
            g, t = grid[kname]
            run = lambda k=k, g=g, t=t: k((g,), (t,), device_args)
            run.regs = k.num_regs  # registers a thread
            out.append((kname, (g, t), run))
    return out


def copy_ms(nbytes):
    a = cupy.empty(nbytes // 8, dtype=cupy.float32)
    b = cupy.empty_like(a)
    return time_ms(lambda: b.__setitem__(slice(None), a))


def check(name, got, want, tol=1e-5):
    if not cupy.allclose(got, want, rtol=tol, atol=tol):
        print(f"  {name}: WRONG (max error {float(cupy.abs(got - want).max())})", flush=True)


def probe_2d():
    f32 = np.float32
    N = M = 8192
    nbytes = 8 * N * M
    x = cupy.random.standard_normal((N, M), dtype=f32)
    y = cupy.zeros_like(x)
    copy = copy_ms(nbytes)
    print(f"\n5-point stencil {N}x{M} f32 (copy of the same bytes: {copy:.3f} ms)\n")
    print("| variant | ms | GB/s | of copy |\n|---|---|---|---|")
    want = None
    for spec in ({"rows": parpy.threads(N), "cols": parpy.threads(1024)},
                 {"rows": parpy.threads(32), "cols": parpy.threads(M)}):
        for kname, launch, f in printed(stencil2d, [np.zeros((N, M), f32), np.zeros((N, M), f32), N, M], spec, (x, y)):
            y.fill(0)
            ms = time_ms(f)
            if want is None:
                want = y.copy()
            check(kname, y, want)
            row(f"printed, {' '.join(f'{k} threads({v.__getstate__()[0]})' for k, v in spec.items())}, {launch}", ms, nbytes,
                copy)
    # The printed kernels (strips) with one difference from the hand-written rot R removed at a time.
    for spec in ({"rows": parpy.threads(N), "cols": parpy.threads(1024)},
                 {"rows": parpy.threads(N), "cols": parpy.threads(M)}):
        for edits in ((), ("no unroll",), ("no barriers",), ("i32",), ("no unroll", "no barriers", "i32")):
            for kname, launch, f in printed(stencil2d, [np.zeros((N, M), f32), np.zeros((N, M), f32), N, M], spec,
                                            (x, y), restricted=True, edits=edits):
                y.fill(0)
                ms = time_ms(f)
                check(kname, y, want)
                row(f"printed __restrict__{', ' if edits else ''}{', '.join(edits)}, "
                    f"cols threads({spec['cols'].__getstate__()[0]}), {launch}",
                    ms, nbytes, copy)
    mod = module(STENCIL2D)
    k = mod.get_function("s2_i32")
    for ldg in (0, 1):
        y.fill(0)
        ms = time_ms(lambda: k((N - 2,), (1024,), (x, y, np.int32(N), np.int32(M), np.int32(ldg))))
        check("i32", y, want)
        row("i32" + ("+ldg" if ldg else ""), ms, nbytes, copy)
    for name in ("s2_strip", "s2_rot", "s2_shfl"):
        k = mod.get_function(name)
        for R in (4, 8, 16, 32, 128):
            grid = ((M - 2 + 255) // 256, (N - 2 + R - 1) // R)
            y.fill(0)
            ms = time_ms(lambda: k(grid, (256,), (x, y, np.int32(N), np.int32(M), np.int32(R))))
            check(f"{name} {R}", y, want)
            row(f"{name[3:]} {R}", ms, nbytes, copy)


def probe_3d():
    f32 = np.float32
    P = 512
    nbytes = 8 * P**3
    x = cupy.random.standard_normal((P, P, P), dtype=f32)
    y = cupy.zeros_like(x)
    copy = copy_ms(nbytes)
    print(f"\n7-point stencil {P}^3 f32 (copy: {copy:.3f} ms)\n")
    print("| variant | ms | GB/s | of copy |\n|---|---|---|---|")
    want = None
    spec = {"planes": parpy.threads(P), "cols": parpy.threads(P)}
    host = np.zeros((P,) * 3, f32)
    # Printed for two arrays, the kernel has no barriers; for one array passed twice (which may
    # share memory), a barrier after each row: the same kernel otherwise.
    for what, host_args in (("printed", [host, host.copy(), P]), ("printed with barriers", [host, host, P])):
        for kname, launch, f in printed(stencil3d, host_args, spec, (x, y)):
            y.fill(0)
            ms = time_ms(f)
            if want is None:
                want = y.copy()
            check(kname, y, want, 1e-4)
            row(f"{what} {launch}", ms, nbytes, copy)
    spec = {"planes": parpy.threads(P), "rows": parpy.threads(P), "cols": parpy.threads(P)}
    for edits in ((), ("no unroll",), ("no barriers",), ("i32",), ("no unroll", "no barriers", "i32")):
        for kname, launch, f in printed(stencil3d_par, [host, host.copy(), P], spec, (x, y), restricted=bool(edits),
                                        edits=edits):
            y.fill(0)
            ms = time_ms(f)
            check(kname, y, want, 1e-4)
            row(f"printed, every loop parallel{' __restrict__, ' if edits else ''}{', '.join(edits)} {launch}", ms,
                nbytes, copy)
    mod = module(STENCIL3D)
    k = mod.get_function("s3_i32")
    for ldg in (0, 1):
        y.fill(0)
        ms = time_ms(lambda: k((P - 2,), (512,), (x, y, np.int32(P), np.int32(ldg))))
        check("i32", y, want, 1e-4)
        row("i32" + ("+ldg" if ldg else ""), ms, nbytes, copy)
    for U in (1, 2, 4, 8):
        for r in ("", "r"):
            k = mod.get_function(f"s3_rows{U}{r}")
            y.fill(0)
            ms = time_ms(lambda: k((P - 2,), (512,), (x, y, np.int32(P))))
            check(f"rows {U}{r}", y, want, 1e-4)
            row(f"a barrier every {U} rows{', restrict' if r else ''}", ms, nbytes, copy)
    for name in ("s3_strip", "s3_rot", "s3_rotp", "s3_rotu", "s3_smem"):
        k = mod.get_function(name)
        for bx, by in ((128, 2), (64, 4), (32, 8)):
            for R in (4, 8, 16, 64):
                grid = ((P - 2 + bx - 1) // bx, (P - 2 + by - 1) // by, (P - 2 + R - 1) // R)
                smem = 4 * (bx + 2) * (by + 2) if name == "s3_smem" else 0
                y.fill(0)
                ms = time_ms(lambda: k(grid, (bx, by), (x, y, np.int32(P), np.int32(R)), shared_mem=smem))
                check(f"{name} {R}", y, want, 1e-4)
                row(f"{name[3:]} {R}, blocks {bx}x{by}", ms, nbytes, copy)
    # Larger 2-D blocks: a block's rows j - 1 and j + 1 and columns k - 1 and k + 1 are its own but
    # for the edges (2 / by of the rows, 2 sectors of each row's 4 * bx bytes), so more of the loads
    # can come from the L1 instead of the L2, which bounds these kernels.
    for name in ("s3_rot", "s3_rotp"):
        k = mod.get_function(name)
        for bx, by in ((128, 4), (128, 8), (64, 8), (64, 16), (256, 4), (32, 32)):
            for R in (16, 64):
                grid = ((P - 2 + bx - 1) // bx, (P - 2 + by - 1) // by, (P - 2 + R - 1) // R)
                y.fill(0)
                ms = time_ms(lambda: k(grid, (bx, by), (x, y, np.int32(P), np.int32(R))))
                check(f"{name} {R}", y, want, 1e-4)
                row(f"{name[3:]} {R}, blocks {bx}x{by}", ms, nbytes, copy)
    k = mod.get_function("s3_rotv")
    for bx, by in ((128, 2), (64, 4), (32, 8), (16, 16)):
        for R in (8, 16, 64):
            grid = ((P // 4 + bx - 1) // bx, (P - 2 + by - 1) // by, (P - 2 + R - 1) // R)
            y.fill(0)
            ms = time_ms(lambda: k(grid, (bx, by), (x, y, np.int32(P), np.int32(R))))
            check(f"rotv {R}", y, want, 1e-4)
            row(f"rotv {R}, blocks {bx}x{by} (4 columns a thread)", ms, nbytes, copy)
    for S in (4, 8):
        k = mod.get_function(f"s3_tiled{S}")
        for bx, bz in ((256, 1), (128, 2), (64, 4), (32, 8)):
            grid = ((P - 2 + bx - 1) // bx, (P - 2 + S - 1) // S, (P - 2 + bz - 1) // bz)
            y.fill(0)
            ms = time_ms(lambda: k(grid, (bx, bz), (x, y, np.int32(P))))
            check(f"tiled {S}", y, want, 1e-4)
            row(f"tiled {S}, blocks {bx} columns x {bz} planes", ms, nbytes, copy)


def setup_3d(P, what):
    """A P^3 grid x, its output y, the bytes one stencil pass moves and a copy's time of them; the
    table's heading printed."""
    nbytes = 8 * P**3
    x = cupy.random.standard_normal((P, P, P), dtype=np.float32)
    y = cupy.zeros_like(x)
    copy = copy_ms(nbytes)
    print(f"\n7-point stencil {P}^3 f32{what} (copy: {copy:.3f} ms)\n")
    print("| variant | ms | GB/s | of copy |\n|---|---|---|---|")
    return x, y, nbytes, copy


def variant(label, launch, y, want, nbytes, copy):
    """Times `launch` (which writes y), checks y against `want` and prints the table row."""
    y.fill(0)
    ms = time_ms(launch)
    check(label, y, want, 1e-4)
    row(label, ms, nbytes, copy)


def grid_3d(P, bx, by, R):
    """The grid of blocks of bx x by threads over a plane's interior (k, j), R planes each."""
    return ((P - 2 + bx - 1) // bx, (P - 2 + by - 1) // by, (P - 2 + R - 1) // R)


def probe_3dnext():
    """The 3-D variants not yet measured: k - 1 and k + 1 by warp shuffles (`shflk`), 2.5-D blocking
    with loads ahead (`s25 BXxBY dD`), rot and rotp in larger 2-D blocks, and rotv."""
    P = 512
    x, y, nbytes, copy = setup_3d(P, ", the variants not yet measured")
    host = np.zeros((P,) * 3, np.float32)
    spec = {"planes": parpy.threads(P), "rows": parpy.threads(P), "cols": parpy.threads(P)}
    want = None
    for kname, launch, f in printed(stencil3d_par, [host, host.copy(), P], spec, (x, y)):
        y.fill(0)
        ms = time_ms(f)
        want = y.copy()
        row(f"printed, every loop parallel {launch}", ms, nbytes, copy)
    p, nxt, mod = np.int32(P), module(STENCIL3D_NEXT), module(STENCIL3D)
    k = nxt.get_function("s3_shflk")
    for bx, by in ((256, 1), (128, 2), (64, 4), (32, 8)):
        for R in (8, 16, 32):
            variant(f"shflk {R}, blocks {bx}x{by}", lambda: k(grid_3d(P, bx, by, R), (bx, by), (x, y, p, np.int32(R))),
                    y, want, nbytes, copy)
    for name in re.findall(r"^S25\((\d+), (\d+), (\d+)\)$", STENCIL3D_NEXT, re.MULTILINE):
        bx, by, d = (int(v) for v in name)
        k = nxt.get_function(f"s25_{bx}x{by}_d{d}")
        for R in (32, 64, 128, 510):
            variant(f"2.5-D {R} planes, blocks {bx}x{by}, {d} ahead",
                    lambda: k(grid_3d(P, bx, by, R), (bx, by), (x, y, p, np.int32(R))), y, want, nbytes, copy)
    for name in ("s3_rot", "s3_rotp"):
        k = mod.get_function(name)
        for bx, by in ((128, 4), (64, 8), (32, 32)):
            for R in (8, 16):
                variant(f"{name[3:]} {R}, blocks {bx}x{by}",
                        lambda: k(grid_3d(P, bx, by, R), (bx, by), (x, y, p, np.int32(R))), y, want, nbytes, copy)
    probe_3dvec(x, y, want, nbytes, copy)


def probe_3dvec(x=None, y=None, want=None, nbytes=None, copy=None):
    """Several columns a thread: rotv (128-bit, aligned groups) in the compiler's launch geometry
    too, and rot4s (interior groups, scalar loads)."""
    P = 512
    if x is None:
        x, y, nbytes, copy = setup_3d(P, ", several columns a thread")
        host = np.zeros((P,) * 3, np.float32)
        spec = {"planes": parpy.threads(P), "rows": parpy.threads(P), "cols": parpy.threads(P)}
        for kname, launch, f in printed(stencil3d_par, [host, host.copy(), P], spec, (x, y)):
            y.fill(0)
            ms = time_ms(f)
            want = y.copy()
            row(f"printed, every loop parallel {launch}", ms, nbytes, copy)
    p, mod = np.int32(P), module(STENCIL3D)
    k = mod.get_function("s3_rotv")
    for bx, by in ((128, 2), (32, 8)):
        for R in (8, 16):
            grid = ((P // 4 + bx - 1) // bx, (P - 2 + by - 1) // by, (P - 2 + R - 1) // R)
            variant(f"rotv {R}, blocks {bx}x{by} (4 columns a thread)",
                    lambda: k(grid, (bx, by), (x, y, p, np.int32(R))), y, want, nbytes, copy)
    # As the compiler would launch it without changing its geometry: one thread for each column
    # of the spec's threads(P), three in four of them with no group of columns.
    for bx, by in ((256, 1), (128, 2)):
        for R in (8,):
            grid = ((P + bx - 1) // bx, (P - 2 + by - 1) // by, (P - 2 + R - 1) // R)
            variant(f"rotv {R}, blocks {bx}x{by}, threads for every column (3 in 4 idle)",
                    lambda: k(grid, (bx, by), (x, y, p, np.int32(R))), y, want, nbytes, copy)
    k = mod.get_function("s3_rot4s")
    for bx, by in ((128, 2), (32, 8), (256, 1)):
        for R in (8, 16):
            grid = ((P // 4 + bx - 1) // bx, (P - 2 + by - 1) // by, (P - 2 + R - 1) // R)
            variant(f"rot4s {R}, blocks {bx}x{by} (4 interior columns a thread, scalar loads)",
                    lambda: k(grid, (bx, by), (x, y, p, np.int32(R))), y, want, nbytes, copy)


def probe_spmv():
    f32 = np.float32
    R = 2**20
    ip, ix, d = power_law_csr(R, 16)
    nbytes = int(ip.nbytes + ix.nbytes + d.nbytes + 8 * R)
    xs = np.random.default_rng(1).random(R).astype(f32)
    args = (cupy.asarray(ip), cupy.asarray(ix), cupy.asarray(d), cupy.asarray(xs), cupy.zeros(R, f32))
    copy = copy_ms(nbytes)
    print(f"\nCSR SpMV {R} rows, {len(d) / R:.1f} nonzeros per row (copy: {copy:.3f} ms)\n")
    print("| variant | ms | GB/s | of copy | vs cuSPARSE |\n|---|---|---|---|---|")
    import cupyx.scipy.sparse as sp
    A = sp.csr_matrix((args[2], args[1], args[0]), shape=(R, R))
    xv = args[3]
    ms_cusparse = time_ms(lambda: A @ xv)
    want = A @ xv
    row("cuSPARSE (CuPy)", ms_cusparse, nbytes, copy)
    try:  # torch's CSR product (int64 indices, as parpy's), the acceptance's peer
        import torch
        At = torch.sparse_csr_tensor(*(torch.from_dlpack(a) for a in args[:3]), (R, R))
        xt = torch.from_dlpack(xv).reshape(R, 1)
        row("torch CSR A @ x", time_ms(lambda: At @ xt), nbytes, copy, f" {ms_cusparse / time_ms(lambda: At @ xt):.2f}x cuSPARSE |")
    except Exception as e:  # noqa: BLE001 (the probe goes on without torch)
        print(f"  torch: {type(e).__name__}: {e}")
    for fn, spec in ((spmv_csr, {"rows": parpy.threads(R)}),
                     (spmv_csr_warp, {"rows": parpy.threads(R), "nz": parpy.threads(8).reduce()}),
                     (spmv_csr_warp, {"rows": parpy.threads(R), "nz": parpy.threads(4).reduce()})):
        for restricted in (False, True):
            for kname, launch, f in printed(fn, [ip, ix, d, xs, xs.copy(), R], spec, args, restricted):
                args[4].fill(0)
                ms = time_ms(f)
                check(kname, args[4], want, 1e-4)
                what = f"printed{' __restrict__' if restricted else ''} {kname} {launch}"
                row(what, ms, nbytes, copy, f" {ms_cusparse / ms:.2f}x cuSPARSE |")
    spec = {"rows": parpy.threads(R), "nz": parpy.threads(8).reduce()}
    for edits in (("float sums",), ("unroll 8",), ("float sums", "unroll 8"), ("i32 locals",), ("no group sync",),
                  ("i32 locals", "no group sync", "float sums"), ("guarded",), ("guarded", "float sums")):
        try:
            variants = printed(spmv_csr_warp, [ip, ix, d, xs, xs.copy(), R], spec, args, True, edits)
        except ValueError as e:  # an edit that does not apply to the printed kernel
            print(f"  {', '.join(edits)}: {e}")
            continue
        for kname, launch, f in variants:
            args[4].fill(0)
            ms = time_ms(f)
            check(kname, args[4], want, 1e-4)
            row(f"printed __restrict__, {', '.join(edits)}, {kname} {launch}", ms, nbytes, copy,
                f" {ms_cusparse / ms:.2f}x cuSPARSE |")
    mod = module(SPMV)
    # f64: parpy accumulates `s = 0.0` in double (a Python float); u4: with its `#pragma unroll 4`.
    # _cT: rows longer than T rounds run on the whole warp after the short ones (spmv_coop).
    for L, tpb in (("1", 256), ("2", 256), ("4", 256), ("8", 256), ("16", 256), ("4_f64", 256), ("8_f64", 256),
                   ("4_f64_u4", 256), ("8_f64_u4", 256), ("4_g2", 256), ("4_g4", 256), ("8_g2", 256), ("8_g4", 256),
                   ("8_g4", 128), ("16_g2", 256), ("8_c1", 256), ("8_c2", 256), ("8_c4", 256), ("8_c1", 128),
                   ("8_c2", 128), ("4_c2", 128), ("8_f64_u4", 128), ("8_f64_u4", 64), ("8_g4", 64), ("8_c2", 64),
                   ("8_g4", 32), ("8_c1", 64)):
        k = mod.get_function(f"spmv_l{L}")
        grid = ((R * int(L.split("_")[0]) + tpb - 1) // tpb,)
        args[4].fill(0)
        ms = time_ms(lambda: k(grid, (tpb,), (*args, np.int32(R))))
        check(f"lanes {L}", args[4], want, 1e-4)
        row(f"lanes {L}, blocks of {tpb}", ms, nbytes, copy, f" {ms_cusparse / ms:.2f}x cuSPARSE |")
    # CSR-stream: blocks of T threads over RB rows each (spmv_s{T}_{RB}).
    for name in ("s256_32", "s256_64", "s256_64p8", "s128_16", "s128_32", "s512_64", "s512_128", "s1024_128"):
        k = mod.get_function(f"spmv_{name}")
        T, RB = (int(v) for v in re.findall(r"\d+", name)[:2])
        args[4].fill(0)
        ms = time_ms(lambda: k(((R + RB - 1) // RB,), (T,), (*args, np.int32(R))))
        check(f"stream {name}", args[4], want, 1e-4)
        row(f"stream {name}: blocks of {T} over {RB} rows", ms, nbytes, copy, f" {ms_cusparse / ms:.2f}x cuSPARSE |")


def main():
    failed = 0
    chosen = sys.argv[1:] or ["2d", "3d", "spmv"]  # e.g. `3d`: only that probe; `3dnext`: the new 3-D variants
    for probe in (probe_2d, probe_3d, probe_3dnext, probe_3dvec, probe_spmv):
        if probe.__name__.removeprefix("probe_") not in chosen:
            continue
        try:
            probe()
        except Exception:  # one probe's failure leaves the others' numbers
            traceback.print_exc()
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
