// Arithmetic with Python semantics shared by the C++ (Cpu) and CUDA support headers.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#ifdef __CUDACC__
#define PARPY_HD __host__ __device__ __forceinline__
#else
#define PARPY_HD static inline
#endif

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
    return static_cast<T>(::floor(static_cast<double>(a) / static_cast<double>(b)));
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
    double r = ::fmod(static_cast<double>(a), static_cast<double>(b));
    if (r != 0 && ((r < 0) != (static_cast<double>(b) < 0))) r += static_cast<double>(b);
    return static_cast<T>(r);
  }
}

template <class T>
PARPY_HD T parpy_pow(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
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


#ifdef PARPY_BOUNDS_CHECK
// Run-time index checks (opts.bounds_check; docs/language.md, Index bounds): the first index of a
// call found out of bounds. Defined only in code that checks indices.
struct parpy_bounds_record {
  int64_t site;  // 1-based; 0 while every checked index was in bounds
  int64_t index, extent;
};
// What an entry returns when an index was out of bounds: parpy then reads the calling thread's
// copy of the record (the exported parpy_bounds_<name>()) and raises an IndexError.
#define PARPY_INDEX_ERROR 2
static thread_local int64_t parpy_bounds_last[3];

static inline int32_t parpy_bounds_report(const parpy_bounds_record& r) {
  parpy_bounds_last[0] = r.site;
  parpy_bounds_last[1] = r.index;
  parpy_bounds_last[2] = r.extent;
  return r.site != 0 ? PARPY_INDEX_ERROR : 0;
}
#endif
