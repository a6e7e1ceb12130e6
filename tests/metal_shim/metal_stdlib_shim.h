// A C++ stand-in for the parts of the Metal Shading Language that parpy's generated kernels use,
// so that they compile with g++ or clang++ on any machine (tests/python/test_metal_codegen.py):
// address spaces and `kernel` as macros, the attributes (ignored: compile with -Wno-attributes),
// the vector and scalar types, as_type, the barrier, the SIMD-group functions, the atomics and
// the metal:: math functions.
//
// Enough for syntax and type checks; tests/metal_emulator has working versions of all of it, which
// run the kernels (tests/python/test_metal_emulator.py).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

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

namespace metal {

template <class T, class U>
inline T as_type(U v) {
  static_assert(sizeof(T) == sizeof(U), "as_type needs types of one size");
  T t;
  std::memcpy(&t, &v, sizeof t);
  return t;
}

enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
void threadgroup_barrier(mem_flags flags);

enum memory_order { memory_order_relaxed, memory_order_seq_cst };
enum thread_scope { thread_scope_thread, thread_scope_simdgroup, thread_scope_threadgroup, thread_scope_device };
void atomic_thread_fence(mem_flags flags, memory_order order, thread_scope scope);

// SIMD-group functions (over the 32 threads of a SIMD group).
template <class T> T simd_shuffle_xor(T data, ushort mask);
template <class T> T simd_sum(T data);
template <class T> T simd_product(T data);
template <class T> T simd_max(T data);
template <class T> T simd_min(T data);

// Atomics on 32-bit integers in device or threadgroup memory.
template <class T>
struct parpy_shim_atomic {
  T value;
};
typedef parpy_shim_atomic<int> atomic_int;
typedef parpy_shim_atomic<uint> atomic_uint;

template <class T>
inline T atomic_load_explicit(const volatile parpy_shim_atomic<T>* a, memory_order) {
  return __atomic_load_n(&a->value, __ATOMIC_RELAXED);
}
template <class T>
inline void atomic_store_explicit(volatile parpy_shim_atomic<T>* a, T v, memory_order) {
  __atomic_store_n(&a->value, v, __ATOMIC_RELAXED);
}
template <class T>
inline T atomic_fetch_add_explicit(volatile parpy_shim_atomic<T>* a, T v, memory_order) {
  return __atomic_fetch_add(&a->value, v, __ATOMIC_RELAXED);
}
template <class T>
inline T atomic_fetch_sub_explicit(volatile parpy_shim_atomic<T>* a, T v, memory_order) {
  return __atomic_fetch_sub(&a->value, v, __ATOMIC_RELAXED);
}
template <class T>
inline T atomic_fetch_max_explicit(volatile parpy_shim_atomic<T>* a, T v, memory_order) {
  T old = __atomic_load_n(&a->value, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(&a->value, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <class T>
inline T atomic_fetch_min_explicit(volatile parpy_shim_atomic<T>* a, T v, memory_order) {
  T old = __atomic_load_n(&a->value, __ATOMIC_RELAXED);
  while (v < old && !__atomic_compare_exchange_n(&a->value, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <class T>
inline bool atomic_compare_exchange_weak_explicit(volatile parpy_shim_atomic<T>* a, T* expected, T desired,
                                                  memory_order, memory_order) {
  return __atomic_compare_exchange_n(&a->value, expected, desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

// Math functions (float; Metal also has half overloads, which parpy's code does not call).
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

// Metal's math functions are reachable unqualified after `using namespace metal;` as well as by
// their metal:: names; double-precision ones do not exist on Metal.
#define double parpy_shim_no_double_on_metal
