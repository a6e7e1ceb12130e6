// What the support headers of CUDA device code take from the C and C++ standard libraries, for
// NVRTC (__CUDACC_RTC__), which compiles the device part of a program alone and has none of those
// headers: the fixed-width integers and their limits (<cstdint>), the floating-point constants of
// <cmath>, and the few type traits of <type_traits> that parpy's headers use. nvcc builds use the
// real headers instead.
#pragma once

#ifndef __CUDACC_RTC__
#error "parpy_rtc.h is for NVRTC only; nvcc and host compilers use the standard headers"
#endif

// ---- <cstdint> (the LP64 types of Linux; long is 32 bits on Windows) ----
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
#if defined(_WIN32)
typedef long long int64_t;
typedef unsigned long long uint64_t;
#define INT64_C(c) c##LL
#define UINT64_C(c) c##ULL
#else
typedef long int64_t;
typedef unsigned long uint64_t;
#define INT64_C(c) c##L
#define UINT64_C(c) c##UL
#endif
typedef int64_t intptr_t;
typedef uint64_t uintptr_t;
static_assert(sizeof(int64_t) == 8 && sizeof(void*) == 8, "parpy supports 64-bit targets only");

#define INT8_MIN (-128)
#define INT8_MAX 127
#define UINT8_MAX 255
#define INT16_MIN (-32767 - 1)
#define INT16_MAX 32767
#define UINT16_MAX 65535
#define INT32_MIN (-2147483647 - 1)
#define INT32_MAX 2147483647
#define UINT32_MAX 4294967295U
#define INT64_MAX INT64_C(9223372036854775807)
#define INT64_MIN (-INT64_MAX - 1)
#define UINT64_MAX UINT64_C(18446744073709551615)

// ---- <cmath>: NAN as glibc's (a positive quiet NaN), infinities ----
#define NAN __int_as_float(0x7fc00000)
#define INFINITY __int_as_float(0x7f800000)
#define HUGE_VALF INFINITY
#define HUGE_VAL __longlong_as_double(0x7ff0000000000000LL)

// ---- <type_traits>: what parpy's headers use ----
namespace std {
template <class T, T v>
struct integral_constant {
  static constexpr T value = v;
};
using true_type = integral_constant<bool, true>;
using false_type = integral_constant<bool, false>;

template <class T, class U>
struct is_same : false_type {};
template <class T>
struct is_same<T, T> : true_type {};
template <class T, class U>
inline constexpr bool is_same_v = is_same<T, U>::value;

template <class T>
struct remove_cv { using type = T; };
template <class T>
struct remove_cv<const T> { using type = T; };
template <class T>
struct remove_cv<volatile T> { using type = T; };
template <class T>
struct remove_cv<const volatile T> { using type = T; };
template <class T>
using remove_cv_t = typename remove_cv<T>::type;

template <bool B, class T, class F>
struct conditional { using type = T; };
template <class T, class F>
struct conditional<false, T, F> { using type = F; };
template <bool B, class T, class F>
using conditional_t = typename conditional<B, T, F>::type;

template <class T>
struct parpy_integral : false_type {};
#define PARPY_INTEGRAL(T) \
  template <>             \
  struct parpy_integral<T> : true_type {};
PARPY_INTEGRAL(bool)
PARPY_INTEGRAL(char)
PARPY_INTEGRAL(signed char)
PARPY_INTEGRAL(unsigned char)
PARPY_INTEGRAL(wchar_t)
PARPY_INTEGRAL(char16_t)
PARPY_INTEGRAL(char32_t)
PARPY_INTEGRAL(short)
PARPY_INTEGRAL(unsigned short)
PARPY_INTEGRAL(int)
PARPY_INTEGRAL(unsigned int)
PARPY_INTEGRAL(long)
PARPY_INTEGRAL(unsigned long)
PARPY_INTEGRAL(long long)
PARPY_INTEGRAL(unsigned long long)
#undef PARPY_INTEGRAL
template <class T>
struct is_integral : parpy_integral<remove_cv_t<T>> {};
template <class T>
inline constexpr bool is_integral_v = is_integral<T>::value;

template <class T>
struct is_floating_point
    : integral_constant<bool, is_same_v<remove_cv_t<T>, float> || is_same_v<remove_cv_t<T>, double> ||
                                  is_same_v<remove_cv_t<T>, long double>> {};
template <class T>
inline constexpr bool is_floating_point_v = is_floating_point<T>::value;

template <class T, bool = is_integral_v<T> || is_floating_point_v<T>>
struct parpy_signed : false_type {};
template <class T>
struct parpy_signed<T, true> : integral_constant<bool, static_cast<T>(-1) < static_cast<T>(0)> {};
template <class T>
struct is_signed : parpy_signed<remove_cv_t<T>> {};
template <class T>
inline constexpr bool is_signed_v = is_signed<T>::value;

// The unsigned integer of the same size (cv-qualifiers are not kept: parpy's headers pass none).
template <class T>
struct make_unsigned {
  static_assert(is_integral_v<T> && !is_same_v<remove_cv_t<T>, bool>,
                "make_unsigned of a type that is not an integer");
  using type = conditional_t<
      sizeof(T) == 1, unsigned char,
      conditional_t<sizeof(T) == 2, unsigned short,
                    conditional_t<sizeof(T) == 4, unsigned int, unsigned long long>>>;
};
template <>
struct make_unsigned<unsigned long> { using type = unsigned long; };
template <>
struct make_unsigned<long> { using type = unsigned long; };
template <class T>
using make_unsigned_t = typename make_unsigned<T>::type;
}  // namespace std
