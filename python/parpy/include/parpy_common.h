// Arithmetic with Python semantics shared by the C++ (Cpu) and CUDA support headers.
#pragma once
#ifdef __CUDACC_RTC__
// NVRTC compiles the device part of a CUDA program alone, without the standard headers.
#include "parpy_rtc.h"
#else
#include <cmath>
#include <cstdint>
#include <type_traits>
#endif

#ifdef __CUDACC__
#define PARPY_HD __host__ __device__ __forceinline__
#else
#define PARPY_HD static inline
#endif

// range(lo, hi, step) without overflow near the ends of int64 (docs/language.md, Statements): the
// number of iterations (capped at INT64_MAX / 2, which no loop reaches), and the t-th value.
PARPY_HD int64_t parpy_trips(int64_t lo, int64_t hi, int64_t step) {
  if (step > 0 ? lo >= hi : lo <= hi) return 0;
  uint64_t span = step > 0 ? static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo)
                           : static_cast<uint64_t>(lo) - static_cast<uint64_t>(hi);
  uint64_t mag = step > 0 ? static_cast<uint64_t>(step) : 0 - static_cast<uint64_t>(step);
  uint64_t n = (span - 1) / mag + 1;
  return n > static_cast<uint64_t>(INT64_MAX / 2) ? INT64_MAX / 2 : static_cast<int64_t>(n);
}
PARPY_HD int64_t parpy_iter(int64_t lo, int64_t t, int64_t step) {
  return static_cast<int64_t>(static_cast<uint64_t>(lo) + static_cast<uint64_t>(t) * static_cast<uint64_t>(step));
}

// Python semantics for // and %; / on integers truncates; division by zero gives 0
// (docs/language.md, Types).
template <class T>
PARPY_HD T parpy_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>)
      if (b == -1) return static_cast<T>(-static_cast<std::make_unsigned_t<T>>(a));
    return a / b;
  } else {
    return a / b;
  }
}

// Float // and % computed like Python's float.__floordiv__/__mod__ and numpy's floor_divide and
// remainder (float16 in float, as numpy does): the quotient is (a - a % b) / b rounded, so
// inf // 2.0 is nan and 1.0 // 0.1 is 9.0, and a zero remainder has the divisor's sign. Division
// by zero gives numpy's a / b and nan (Python raises there).
template <class T>
using parpy_float_t = std::conditional_t<std::is_same_v<T, double>, double, float>;
PARPY_HD float parpy_fmod_(float a, float b) { return ::fmodf(a, b); }
PARPY_HD double parpy_fmod_(double a, double b) { return ::fmod(a, b); }
PARPY_HD float parpy_floor_(float a) { return ::floorf(a); }
PARPY_HD double parpy_floor_(double a) { return ::floor(a); }
PARPY_HD float parpy_copysign_(float a, float b) { return ::copysignf(a, b); }
PARPY_HD double parpy_copysign_(double a, double b) { return ::copysign(a, b); }

template <class F>
PARPY_HD F parpy_float_floordiv(F a, F b) {
  if (b == 0) return a / b;
  F mod = parpy_fmod_(a, b);
  F div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= F(1);
  if (div == 0) return parpy_copysign_(F(0), a / b);
  F q = parpy_floor_(div);
  if (div - q > F(0.5)) q += F(1);
  return q;
}

template <class F>
PARPY_HD F parpy_float_mod(F a, F b) {
  F mod = parpy_fmod_(a, b);
  if (b == 0) return mod;
  if (mod == 0) return parpy_copysign_(F(0), b);
  if ((b < 0) != (mod < 0)) mod += b;
  return mod;
}

template <class T>
PARPY_HD T parpy_floordiv(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return static_cast<T>(-static_cast<std::make_unsigned_t<T>>(a));
      T q = a / b;
      if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
      return q;
    } else {
      return a / b;
    }
  } else {
    return static_cast<T>(parpy_float_floordiv(static_cast<parpy_float_t<T>>(a),
                                               static_cast<parpy_float_t<T>>(b)));
  }
}

template <class T>
PARPY_HD T parpy_mod(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return 0;
      T r = a % b;
      if (r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    } else {
      return a % b;
    }
  } else {
    return static_cast<T>(parpy_float_mod(static_cast<parpy_float_t<T>>(a),
                                          static_cast<parpy_float_t<T>>(b)));
  }
}

template <class T>
PARPY_HD T parpy_pow(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    // The type checker lets only exponents that cannot be negative through (a negative one makes
    // the result a float: docs/language.md, Types); this is 1 / a ** -b truncated, for wrap-around.
    if (b < 0) return a == 1 ? 1 : 0;
    T r = 1;
    while (b > 0) {
      if (b & 1) r = static_cast<T>(r * a);
      a = static_cast<T>(a * a);
      b >>= 1;
    }
    return r;
  } else {
    return static_cast<T>(::pow(static_cast<double>(a), static_cast<double>(b)));
  }
}
PARPY_HD float parpy_pow(float a, float b) { return ::powf(a, b); }

// Like Python's max/min over numpy values (np.maximum, np.minimum): a NaN operand gives NaN.
template <class T>
PARPY_HD T parpy_max(T a, T b) { return (a < b || b != b) ? b : a; }
template <class T>
PARPY_HD T parpy_min(T a, T b) { return (b < a || b != b) ? b : a; }
template <class T>
PARPY_HD T parpy_abs(T a) { return a < T(0) ? static_cast<T>(-a) : a; }

// Run-time index checks (opts.bounds_check; docs/language.md, Index bounds): the first index of a
// call found out of bounds. Defined in every program (the Cpu backend's precompiled copy of its
// header serves code with and without checks).
struct parpy_bounds_record {
  int64_t site;  // 1-based; 0 while every checked index was in bounds
  int64_t index, extent;
};
// What an entry returns when an index was out of bounds: parpy then reads the calling thread's
// copy of the record (the exported parpy_bounds_<name>()) and raises an IndexError.
#define PARPY_INDEX_ERROR 2
#ifndef __CUDACC_RTC__
static thread_local int64_t parpy_bounds_last[3];

static inline int32_t parpy_bounds_report(const parpy_bounds_record& r) {
  parpy_bounds_last[0] = r.site;
  parpy_bounds_last[1] = r.index;
  parpy_bounds_last[2] = r.extent;
  return r.site != 0 ? PARPY_INDEX_ERROR : 0;
}
#endif
