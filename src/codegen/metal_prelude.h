// The support code at the top of every generated MSL program (the Metal counterpart of
// parpy_common.h and parpy_cuda.h, for the device side): Python arithmetic, math functions,
// barriers, reductions over SIMD groups and threadgroups, atomic updates and run-time index checks.
//
// It is plain MSL in the C++14 subset that MSL is based on: no double, no lambdas, no `if
// constexpr`; threadgroup memory is declared by the kernel and passed in. The same text compiles
// as C++ against tests/metal_shim (which declares the Metal types and builtins it uses), which is
// how it is checked without a Mac.
#pragma once

namespace parpy {

inline constexpr const char* kMetalPrelude = R"PARPY_MSL(#include <metal_stdlib>
using namespace metal;

#ifndef INT64_C
#define INT64_C(c) c##L
#endif
#ifndef UINT64_C
#define UINT64_C(c) c##UL
#endif

// range(lo, hi, step) without overflow near the ends of int64 (docs/language.md, Statements).
inline int64_t parpy_trips(int64_t lo, int64_t hi, int64_t step) {
  if (step > 0 ? lo >= hi : lo <= hi) return 0;
  uint64_t span = step > 0 ? uint64_t(hi) - uint64_t(lo) : uint64_t(lo) - uint64_t(hi);
  uint64_t mag = step > 0 ? uint64_t(step) : uint64_t(0) - uint64_t(step);
  uint64_t n = (span - 1) / mag + 1;
  return n > uint64_t(INT64_MAX / 2) ? INT64_MAX / 2 : int64_t(n);
}
inline int64_t parpy_iter(int64_t lo, int64_t t, int64_t step) {
  return int64_t(uint64_t(lo) + uint64_t(t) * uint64_t(step));
}

// Python semantics for //, % and / on integers (truncating), division by zero gives 0; floats
// compute // and % like Python and numpy (half in float) (docs/language.md, Types).
template <class T> T parpy_div(T a, T b);
template <class T> T parpy_floordiv(T a, T b);
template <class T> T parpy_mod(T a, T b);

#define PARPY_SIGNED_OPS(T, U)                                                   \
  template <> inline T parpy_div<T>(T a, T b) {                                  \
    if (b == 0) return 0;                                                        \
    if (b == -1) return T(U(0) - U(a));                                          \
    return T(a / b);                                                             \
  }                                                                              \
  template <> inline T parpy_floordiv<T>(T a, T b) {                             \
    if (b == 0) return 0;                                                        \
    if (b == -1) return T(U(0) - U(a));                                          \
    T q = T(a / b);                                                              \
    if ((a % b != 0) && ((a < 0) != (b < 0))) q = T(q - 1);                      \
    return q;                                                                    \
  }                                                                              \
  template <> inline T parpy_mod<T>(T a, T b) {                                  \
    if (b == 0 || b == -1) return 0;                                             \
    T r = T(a % b);                                                              \
    if (r != 0 && ((r < 0) != (b < 0))) r = T(r + b);                            \
    return r;                                                                    \
  }
#define PARPY_UNSIGNED_OPS(T)                                                               \
  template <> inline T parpy_div<T>(T a, T b) { return b == 0 ? T(0) : T(a / b); }          \
  template <> inline T parpy_floordiv<T>(T a, T b) { return b == 0 ? T(0) : T(a / b); }     \
  template <> inline T parpy_mod<T>(T a, T b) { return b == 0 ? T(0) : T(a % b); }
PARPY_SIGNED_OPS(int8_t, uint8_t)
PARPY_SIGNED_OPS(int16_t, uint16_t)
PARPY_SIGNED_OPS(int32_t, uint32_t)
PARPY_SIGNED_OPS(int64_t, uint64_t)
PARPY_UNSIGNED_OPS(uint8_t)
PARPY_UNSIGNED_OPS(uint16_t)
PARPY_UNSIGNED_OPS(uint32_t)
PARPY_UNSIGNED_OPS(uint64_t)
#undef PARPY_SIGNED_OPS
#undef PARPY_UNSIGNED_OPS

inline float parpy_float_floordiv(float a, float b) {
  if (b == 0) return a / b;
  float mod = metal::fmod(a, b);
  float div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0f;
  if (div == 0) return metal::copysign(0.0f, a / b);
  float q = metal::floor(div);
  if (div - q > 0.5f) q += 1.0f;
  return q;
}
inline float parpy_float_mod(float a, float b) {
  float mod = metal::fmod(a, b);
  if (b == 0) return mod;
  if (mod == 0) return metal::copysign(0.0f, b);
  if ((b < 0) != (mod < 0)) mod += b;
  return mod;
}
template <> inline float parpy_floordiv<float>(float a, float b) { return parpy_float_floordiv(a, b); }
template <> inline float parpy_mod<float>(float a, float b) { return parpy_float_mod(a, b); }
template <> inline half parpy_floordiv<half>(half a, half b) { return half(parpy_float_floordiv(float(a), float(b))); }
template <> inline half parpy_mod<half>(half a, half b) { return half(parpy_float_mod(float(a), float(b))); }

// Integer powers by squaring (wrapping); a negative exponent gives 1 / a ** -b truncated.
template <class T>
inline T parpy_pow(T a, T b) {
  if (b < 0) return a == 1 ? T(1) : T(0);
  T r = 1;
  while (b > 0) {
    if (b & 1) r = T(r * a);
    a = T(a * a);
    b = T(b >> 1);
  }
  return r;
}
inline float parpy_pow(float a, float b) { return metal::pow(a, b); }
inline half parpy_pow(half a, half b) { return half(metal::pow(float(a), float(b))); }

// Like Python's max/min over numpy values: a NaN operand gives NaN.
template <class T> inline T parpy_max(T a, T b) { return (a < b || b != b) ? b : a; }
template <class T> inline T parpy_min(T a, T b) { return (b < a || b != b) ? b : a; }
template <class T> inline T parpy_abs(T a) { return a < T(0) ? T(-a) : a; }

// Math functions: Metal's, in float and half.
#define PARPY_MATH1(name)                                            \
  inline float parpy_##name(float a) { return metal::name(a); }      \
  inline half parpy_##name(half a) { return half(metal::name(float(a))); }
PARPY_MATH1(exp)
PARPY_MATH1(log)
PARPY_MATH1(cos)
PARPY_MATH1(sin)
PARPY_MATH1(sqrt)
PARPY_MATH1(tanh)
#undef PARPY_MATH1
inline float parpy_atan2(float a, float b) { return metal::atan2(a, b); }
inline half parpy_atan2(half a, half b) { return half(metal::atan2(float(a), float(b))); }

// ---- Reductions ----
// The neutral element of a reduction is printed in its own type: it takes the accumulator's.
template <class T> struct parpy_id { typedef T type; };
// Kernels run SIMD groups of 32 threads (the host checks each pipeline's execution width).
struct parpy_op_add { template <class T> T operator()(T a, T b) const { return T(a + b); } };
struct parpy_op_sub { template <class T> T operator()(T a, T b) const { return T(a - b); } };
struct parpy_op_mul { template <class T> T operator()(T a, T b) const { return T(a * b); } };
struct parpy_op_max { template <class T> T operator()(T a, T b) const { return parpy_max(a, b); } };
struct parpy_op_min { template <class T> T operator()(T a, T b) const { return parpy_min(a, b); } };

// simd_shuffle_xor of 32-bit values; 64-bit values travel as two halves.
inline int32_t parpy_shuffle_xor(int32_t v, ushort m) { return simd_shuffle_xor(v, m); }
inline uint32_t parpy_shuffle_xor(uint32_t v, ushort m) { return simd_shuffle_xor(v, m); }
inline float parpy_shuffle_xor(float v, ushort m) { return simd_shuffle_xor(v, m); }
inline uint64_t parpy_shuffle_xor(uint64_t v, ushort m) {
  uint2 h = as_type<uint2>(v);
  h.x = simd_shuffle_xor(h.x, m);
  h.y = simd_shuffle_xor(h.y, m);
  return as_type<uint64_t>(h);
}
inline int64_t parpy_shuffle_xor(int64_t v, ushort m) {
  return as_type<int64_t>(parpy_shuffle_xor(as_type<uint64_t>(v), m));
}

// All-reduce over one SIMD group: a butterfly of shuffles, or Metal's simd_ reduction where it
// has one with the same result (float max/min keep the butterfly: a NaN must win).
template <class T, class Op>
inline T parpy_simd_tree(T v, Op op) {
  for (ushort s = 16; s > 0; s >>= 1) v = op(v, parpy_shuffle_xor(v, s));
  return v;
}
template <class T> inline T parpy_simd_reduce_add(T v) { return parpy_simd_tree(v, parpy_op_add()); }
template <class T> inline T parpy_simd_reduce_mul(T v) { return parpy_simd_tree(v, parpy_op_mul()); }
template <class T> inline T parpy_simd_reduce_max(T v) { return parpy_simd_tree(v, parpy_op_max()); }
template <class T> inline T parpy_simd_reduce_min(T v) { return parpy_simd_tree(v, parpy_op_min()); }
inline float parpy_simd_reduce_add(float v) { return simd_sum(v); }
inline float parpy_simd_reduce_mul(float v) { return simd_product(v); }
inline int32_t parpy_simd_reduce_add(int32_t v) { return simd_sum(v); }
inline int32_t parpy_simd_reduce_mul(int32_t v) { return simd_product(v); }
inline int32_t parpy_simd_reduce_max(int32_t v) { return simd_max(v); }
inline int32_t parpy_simd_reduce_min(int32_t v) { return simd_min(v); }
inline uint32_t parpy_simd_reduce_add(uint32_t v) { return simd_sum(v); }
inline uint32_t parpy_simd_reduce_mul(uint32_t v) { return simd_product(v); }
inline uint32_t parpy_simd_reduce_max(uint32_t v) { return simd_max(v); }
inline uint32_t parpy_simd_reduce_min(uint32_t v) { return simd_min(v); }

// All-reduce over a threadgroup of `nthreads` threads (a multiple of 32): every thread gets the
// result. `smem` is the kernel's threadgroup scratch of 32 values.
#define PARPY_BLOCK_REDUCE(name)                                                                    \
  template <class T>                                                                                \
  inline T parpy_block_reduce_##name(T v, threadgroup uint64_t* tg, uint tid, uint nthreads) {      \
    threadgroup T* smem = (threadgroup T*)tg;                                                       \
    v = parpy_simd_reduce_##name(v);                                                                \
    if (nthreads <= 32) return v;                                                                   \
    threadgroup_barrier(mem_flags::mem_threadgroup); /* an earlier reduction may still read smem */ \
    if (tid % 32 == 0) smem[tid / 32] = v;                                                          \
    threadgroup_barrier(mem_flags::mem_threadgroup);                                                \
    T x = smem[0];                                                                                  \
    for (uint i = 1; i < nthreads / 32; ++i) x = parpy_op_##name()(x, smem[i]);                     \
    return x;                                                                                       \
  }
PARPY_BLOCK_REDUCE(add)
PARPY_BLOCK_REDUCE(mul)
PARPY_BLOCK_REDUCE(max)
PARPY_BLOCK_REDUCE(min)
#undef PARPY_BLOCK_REDUCE

// A device-wide memory fence between the threadgroups of one dispatch. Before Metal 3.2 it is a
// threadgroup_barrier: every thread of the threadgroup must call it.
inline void parpy_device_fence() {
#if defined(__METAL_VERSION__) && __METAL_VERSION__ >= 320
  atomic_thread_fence(mem_flags::mem_device, memory_order_seq_cst, thread_scope_device);
#else
  threadgroup_barrier(mem_flags::mem_device);
#endif
}

// Reduction across the nb threadgroups of one group, without a grid barrier: each stores its
// partial; the last to arrive (atomic ticket) combines them and returns true with the total in v,
// and resets the ticket counter for the next dispatch.
#define PARPY_MULTIBLOCK_REDUCE(name)                                                                \
  template <class T>                                                                                 \
  inline bool parpy_multiblock_reduce_##name(thread T& v, typename parpy_id<T>::type ne, device T* partials,                 \
                                             device uint32_t* counters, int64_t slot, int64_t b,     \
                                             int64_t nb, threadgroup uint64_t* tg, uint tid,         \
                                             uint nthreads) {                                        \
    threadgroup uint32_t* last = (threadgroup uint32_t*)(tg + 32);                                   \
    v = parpy_block_reduce_##name(v, tg, tid, nthreads);                                             \
    if (tid == 0) partials[slot * nb + b] = v;                                                       \
    /* Every thread: before Metal 3.2 the fence is a threadgroup_barrier, which all must reach. */   \
    parpy_device_fence();                                                                            \
    if (tid == 0) {                                                                                  \
      device atomic_uint* c = (device atomic_uint*)&counters[slot];                                  \
      uint ticket = atomic_fetch_add_explicit(c, 1u, memory_order_relaxed);                          \
      *last = ticket == uint(nb - 1) ? 1u : 0u;                                                      \
    }                                                                                                \
    threadgroup_barrier(mem_flags::mem_threadgroup);                                                 \
    if (*last == 0u) return false;                                                                   \
    parpy_device_fence();                                                                            \
    T acc = ne;                                                                                      \
    for (int64_t i = tid; i < nb; i += nthreads)                                                     \
      acc = parpy_op_##name()(acc, ((volatile device T*)partials)[slot * nb + i]);                   \
    v = parpy_block_reduce_##name(acc, tg, tid, nthreads);                                           \
    if (tid == 0) counters[slot] = 0;                                                                \
    return true;                                                                                     \
  }
PARPY_MULTIBLOCK_REDUCE(add)
PARPY_MULTIBLOCK_REDUCE(mul)
PARPY_MULTIBLOCK_REDUCE(max)
PARPY_MULTIBLOCK_REDUCE(min)
#undef PARPY_MULTIBLOCK_REDUCE

// ---- Atomic updates ----
// `base[i] = f(base[i], v)` when iterations of a parallel loop may update one element at once
// (docs/language.md, Parallel semantics): Metal's atomics on 32-bit integers, otherwise a
// compare-and-swap loop on the aligned 32-bit word that holds the element (arrays start at the
// start of their buffer, so words are aligned). Metal has no 64-bit compare-and-swap: the
// compiler rejects 64-bit atomic updates before printing.
template <class T> struct parpy_bits { typedef uint32_t type; };
template <> struct parpy_bits<bool> { typedef uint8_t type; };
template <> struct parpy_bits<int8_t> { typedef uint8_t type; };
template <> struct parpy_bits<uint8_t> { typedef uint8_t type; };
template <> struct parpy_bits<int16_t> { typedef uint16_t type; };
template <> struct parpy_bits<uint16_t> { typedef uint16_t type; };
template <> struct parpy_bits<half> { typedef uint16_t type; };

template <class T, class F>
inline void parpy_atomic_cas(device T* base, int64_t i, T v, F f) {
  typedef typename parpy_bits<T>::type B;
  device atomic_uint* w = (device atomic_uint*)base + (i * int64_t(sizeof(T))) / 4;
  const uint shift = uint((i * int64_t(sizeof(T))) % 4) * 8u;
  const uint mask = sizeof(T) == 4 ? 0xffffffffu : ((1u << (8u * uint(sizeof(T)))) - 1u) << shift;
  uint old = atomic_load_explicit(w, memory_order_relaxed);
  while (true) {
    T cur = as_type<T>(B((old & mask) >> shift));
    T next = f(cur, v);
    uint bits = (old & ~mask) | ((uint(as_type<B>(next)) << shift) & mask);
    if (bits == old) return;
    if (atomic_compare_exchange_weak_explicit(w, &old, bits, memory_order_relaxed, memory_order_relaxed))
      return;
  }
}

#define PARPY_ATOMIC(name)                                                                         \
  template <class T>                                                                               \
  inline void parpy_atomic_##name(device T* base, int64_t i, T v) {                                \
    parpy_atomic_cas(base, i, v, parpy_op_##name());                                               \
  }
PARPY_ATOMIC(add)
PARPY_ATOMIC(sub)
PARPY_ATOMIC(max)
PARPY_ATOMIC(min)
#undef PARPY_ATOMIC
#define PARPY_ATOMIC_HW(name, T, A)                                                                \
  template <> inline void parpy_atomic_##name<T>(device T* base, int64_t i, T v) {                 \
    atomic_fetch_##name##_explicit((device A*)(base + i), v, memory_order_relaxed);                \
  }
PARPY_ATOMIC_HW(add, int32_t, atomic_int)
PARPY_ATOMIC_HW(sub, int32_t, atomic_int)
PARPY_ATOMIC_HW(max, int32_t, atomic_int)
PARPY_ATOMIC_HW(min, int32_t, atomic_int)
PARPY_ATOMIC_HW(add, uint32_t, atomic_uint)
PARPY_ATOMIC_HW(sub, uint32_t, atomic_uint)
PARPY_ATOMIC_HW(max, uint32_t, atomic_uint)
PARPY_ATOMIC_HW(min, uint32_t, atomic_uint)
#undef PARPY_ATOMIC_HW

// ---- Run-time index checks (opts.bounds_check) ----
// i when 0 <= i < n; otherwise the first failure is recorded in the call's record (site, index,
// extent as three 64-bit values; the host clears it before the call and reads it after) and 0 is
// used, so no memory outside the array is touched.
template <class T>
inline T parpy_bounds_check(device atomic_uint* rec, T i, int64_t n, int32_t site) {
  if (i >= 0 && int64_t(i) < n) return i;
  uint expected = 0u;
  while (!atomic_compare_exchange_weak_explicit(rec, &expected, uint(site), memory_order_relaxed,
                                                memory_order_relaxed)) {
    if (expected != 0u) return 0;
  }
  device int64_t* r = (device int64_t*)rec;
  r[1] = int64_t(i);
  r[2] = n;
  return 0;
}
)PARPY_MSL";

}  // namespace parpy
