// The Metal Shading Language support that the CPU emulator gives generated kernels (included
// through this folder's `metal_stdlib`; the kernels are compiled as C++14, the language MSL is
// based on). Unlike tests/metal_shim, which only declares, everything here works:
// - every thread of a threadgroup is a fiber of the scheduler (metal_emu_runtime.cpp), which
//   switches between them at barriers; threadgroup_barrier waits for every thread of the
//   threadgroup, and a barrier that some threads never reach, or where threads meet at different
//   calls of threadgroup_barrier (divergent control flow), is reported as a fault;
// - SIMD-group functions (simd_sum, simd_product, simd_max, simd_min, simd_shuffle_xor) exchange
//   values between the active lanes of a SIMD group of 32 threads (lanes of threads that have
//   returned are inactive);
// - `threadgroup` arrays that a kernel declares are one per threadgroup, shared by its threads
//   (the harness writes `threadgroup T a[n];` declarations as PARPY_EMU_THREADGROUP(T, a, n));
//   they start filled with 0xcd bytes, as Metal leaves them undefined;
// - atomics on 32-bit integers are atomic (threadgroups of one dispatch run on several CPU
//   threads at once);
// - there is no `double`, as on Metal.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "metal_emu_runtime.h"

// Address spaces and function qualifiers.
#define device
#define threadgroup
#define thread
#define constant const
#define kernel

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef _Float16 half;

struct uint2 {
  uint x, y;
};
struct uint3 {
  uint x, y, z;
};

#define PARPY_EMU_THREADGROUP(T, name, n) \
  T* name = static_cast<T*>(parpy_emu::threadgroup_array(sizeof(T) * (n), alignof(T)))

namespace metal {

template <class T, class U>
inline T as_type(U v) {
  static_assert(sizeof(T) == sizeof(U), "as_type needs types of one size");
  T t;
  std::memcpy(&t, &v, sizeof t);
  return t;
}

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
// The line of each call in the code tells one call of threadgroup_barrier from another, so that
// threads meeting at different calls (divergent barriers) are reported. (Calls on one line, as in
// the body of a macro, are not told apart.)
inline void threadgroup_barrier_at(mem_flags, long line) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  parpy_emu::group_barrier(line);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
#define threadgroup_barrier(flags) threadgroup_barrier_at(flags, __LINE__)

enum memory_order { memory_order_relaxed, memory_order_seq_cst };
enum thread_scope { thread_scope_thread, thread_scope_simdgroup, thread_scope_threadgroup, thread_scope_device };
inline void atomic_thread_fence(mem_flags, memory_order, thread_scope) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- SIMD-group functions (over the active lanes of a SIMD group of 32 threads) ----
namespace emu {
template <class T>
inline uint64_t bits_of(T v) {
  // Metal's SIMD-group functions take 8-, 16- and 32-bit scalars (64-bit values travel as two
  // halves in parpy's support code).
  static_assert(std::is_arithmetic<T>::value && sizeof(T) <= 4, "Metal's SIMD-group functions take 32-bit values at most");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof v);
  return b;
}
template <class T>
inline T of_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}
template <class T, class Op>
inline T simd_fold(T data, Op op) {
  uint32_t mask = 0;
  const uint64_t* all = parpy_emu::simd_exchange(bits_of(data), &mask);
  bool first = true;
  T acc = data;
  for (unsigned l = 0; l < 32; ++l) {
    if (!((mask >> l) & 1u)) continue;
    T x = of_bits<T>(all[l]);
    acc = first ? x : op(acc, x);
    first = false;
  }
  return acc;
}
struct add_op { template <class T> T operator()(T a, T b) const { return T(a + b); } };
struct mul_op { template <class T> T operator()(T a, T b) const { return T(a * b); } };
struct max_op { template <class T> T operator()(T a, T b) const { return a < b ? b : a; } };
struct min_op { template <class T> T operator()(T a, T b) const { return b < a ? b : a; } };
}  // namespace emu

template <class T>
inline T simd_shuffle_xor(T data, ushort mask) {
  uint32_t active = 0;
  const uint64_t* all = parpy_emu::simd_exchange(emu::bits_of(data), &active);
  unsigned src = (parpy_emu::thread_index() % 32u) ^ mask;
  // A lane outside the SIMD group or inactive: undefined on Metal; a recognisable pattern here.
  if (src >= 32 || !((active >> src) & 1u)) return emu::of_bits<T>(0xcdcdcdcdcdcdcdcdull);
  return emu::of_bits<T>(all[src]);
}
template <class T> inline T simd_sum(T data) { return emu::simd_fold(data, emu::add_op()); }
template <class T> inline T simd_product(T data) { return emu::simd_fold(data, emu::mul_op()); }
template <class T> inline T simd_max(T data) { return emu::simd_fold(data, emu::max_op()); }
template <class T> inline T simd_min(T data) { return emu::simd_fold(data, emu::min_op()); }

// ---- Atomics on 32-bit integers in device or threadgroup memory ----
template <class T>
struct emu_atomic {
  static_assert(sizeof(T) == 4, "Metal's atomics used here are 32-bit");
  T value;
};
typedef emu_atomic<int> atomic_int;
typedef emu_atomic<uint> atomic_uint;

template <class T>
inline T atomic_load_explicit(const volatile emu_atomic<T>* a, memory_order) {
  return __atomic_load_n(&a->value, __ATOMIC_RELAXED);
}
template <class T>
inline void atomic_store_explicit(volatile emu_atomic<T>* a, T v, memory_order) {
  __atomic_store_n(&a->value, v, __ATOMIC_RELAXED);
}
template <class T>
inline T atomic_fetch_add_explicit(volatile emu_atomic<T>* a, T v, memory_order) {
  return __atomic_fetch_add(&a->value, v, __ATOMIC_RELAXED);
}
template <class T>
inline T atomic_fetch_sub_explicit(volatile emu_atomic<T>* a, T v, memory_order) {
  return __atomic_fetch_sub(&a->value, v, __ATOMIC_RELAXED);
}
template <class T>
inline T atomic_fetch_max_explicit(volatile emu_atomic<T>* a, T v, memory_order) {
  T old = __atomic_load_n(&a->value, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(&a->value, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <class T>
inline T atomic_fetch_min_explicit(volatile emu_atomic<T>* a, T v, memory_order) {
  T old = __atomic_load_n(&a->value, __ATOMIC_RELAXED);
  while (v < old && !__atomic_compare_exchange_n(&a->value, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <class T>
inline bool atomic_compare_exchange_weak_explicit(volatile emu_atomic<T>* a, T* expected, T desired, memory_order,
                                                  memory_order) {
  return __atomic_compare_exchange_n(&a->value, expected, desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

// ---- Math functions (float; Metal also has half overloads) ----
inline float exp(float x) { return std::exp(x); }
inline float log(float x) { return std::log(x); }
inline float cos(float x) { return std::cos(x); }
inline float sin(float x) { return std::sin(x); }
inline float sqrt(float x) { return std::sqrt(x); }
inline float tanh(float x) { return std::tanh(x); }
inline float pow(float x, float y) { return std::pow(x, y); }
inline float atan2(float y, float x) { return std::atan2(y, x); }
inline float fmod(float x, float y) { return std::fmod(x, y); }
inline float copysign(float x, float y) { return std::copysign(x, y); }
inline float floor(float x) { return std::floor(x); }
inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline float fabs(float x) { return std::fabs(x); }

}  // namespace metal

// ---- Calling a kernel by name: its arguments from the encoder's bindings ----
namespace parpy_emu {

template <class A>
struct KernelArg;
// A buffer: `device T*`.
template <class T>
struct KernelArg<T*> {
  static const char* check(const Binding& b) {
    if (!b.set) return "a buffer argument of the kernel is not bound";
    if (b.bytes) return "a buffer argument of the kernel was set with setBytes";
    if (reinterpret_cast<uintptr_t>(b.ptr) % alignof(T)) return "a buffer argument is bound at a misaligned offset";
    return nullptr;
  }
  static T* get(const Binding& b, uint3, uint3, size_t, size_t) { return static_cast<T*>(b.ptr); }
};
// A scalar set with setBytes: `constant T&`.
template <class T>
struct KernelArg<const T&> {
  static const char* check(const Binding& b) {
    if (!b.set) return "a scalar argument of the kernel is not bound";
    if (b.bytes != sizeof(T)) return "a scalar argument of the kernel was set with the wrong number of bytes";
    return nullptr;
  }
  static const T& get(const Binding& b, uint3, uint3, size_t, size_t) { return *static_cast<const T*>(b.ptr); }
};
// The thread's positions: [[thread_position_in_threadgroup]], then [[threadgroup_position_in_grid]].
template <>
struct KernelArg<uint3> {
  static const char* check(const Binding&) { return nullptr; }
  static uint3 get(const Binding&, uint3 t, uint3 g, size_t i, size_t n) { return i + 2 == n ? t : g; }
};

template <class F>
struct Invoker;
template <class... A>
struct Invoker<void (*)(A...)> {
  template <void (*F)(A...), size_t... I>
  static const char* run(const Binding* b, size_t nb, uint3 t, uint3 g, bool validate, std::index_sequence<I...>) {
    const size_t n = sizeof...(A);
    static const Binding unset;
    if (validate) {
      const char* errs[] = {KernelArg<A>::check(I + 2 < n ? (I < nb ? b[I] : unset) : unset)...};
      for (const char* e : errs)
        if (e) return e;
      return nullptr;
    }
    F(KernelArg<A>::get(I + 2 < n ? b[I] : unset, t, g, I, n)...);
    return nullptr;
  }
  template <void (*F)(A...)>
  static const char* launch(const Binding* b, size_t nb, uint3_ t, uint3_ g, bool validate) {
    static_assert(sizeof...(A) >= 2, "a kernel ends with its thread positions");
    return run<F>(b, nb, uint3{t.x, t.y, t.z}, uint3{g.x, g.y, g.z}, validate, std::index_sequence_for<A...>());
  }
};

struct Registrar {
  Registrar(const char* source, std::initializer_list<KernelEntry> k) { register_library(source, k.begin(), k.size()); }
};

}  // namespace parpy_emu

// Metal's math functions are reachable unqualified after `using namespace metal;` as well as by
// their metal:: names; double-precision ones do not exist on Metal.
#define double parpy_emu_no_double_on_metal
