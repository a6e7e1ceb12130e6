// HostProgram: GpuProgram::host prepared into operations over value slots (see host_program.h).
//
// Every expression is compiled with the C++ type its printed form has (CPrinter::expr), which is
// not always its IR type: an int64 literal that fits in 32 bits prints as an `int`, `a + b` on
// int8 values is computed in `int` and narrowed, `parpy_floordiv<T>` computes in the IR type of
// its first operand, and `(c ? a : b)`, comparisons and assignments convert as C++ does. Values
// live in 8-byte slots in one canonical form per C++ type (integers sign- or zero-extended to 64
// bits, float and double in place, __half as its 16 bits, addresses as 64-bit integers), so a
// slot's address is also the address of the value in its C++ type (little-endian).
#include "gpu/host_program.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>
#include <type_traits>

#include "codegen/c_printer.h"
#include "ir/bounds.h"
#include "ir/intrinsics.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "slots hold values at their own address");

namespace parpy {
namespace {

// The C++ types of host values: the element types (in ElemSize's order) and addresses.
enum class CT : uint8_t { Bool, I8, I16, I32, I64, U8, U16, U32, U64, F16, F32, F64, Ptr };

const char* ct_name(CT t) {
  static const char* names[] = {"bool",     "int8_t",   "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t",
                                "uint32_t", "uint64_t", "__half",  "float",   "double",  "pointer"};
  return names[static_cast<int>(t)];
}

CT ct_of(ElemSize e) { return static_cast<CT>(e); }

union Val {
  int64_t i;
  uint64_t u;
  double d;
  float f;
};
static_assert(sizeof(Val) == 8);

[[noreturn]] void unsupported(const std::string& what) {
  throw std::runtime_error("host code cannot be run without a host compiler: " + what);
}

CT ct_of(const Type& t, const std::string& what) {
  if (t.is_scalar()) return ct_of(t.elem);
  if (t.is_array() || t.is_pointer()) return CT::Ptr;
  unsupported(what + " has type " + t.str());
}

bool is_signed(CT t) { return t >= CT::I8 && t <= CT::I64; }
bool is_unsigned(CT t) { return t >= CT::U8 && t <= CT::U64; }
bool is_integral(CT t) { return t == CT::Bool || is_signed(t) || is_unsigned(t); }
bool is_fp(CT t) { return t == CT::F32 || t == CT::F64; }
bool is_arith(CT t) { return is_integral(t) || is_fp(t); }  // __half is a class type
int rank(CT t) { return t == CT::I64 || t == CT::U64 ? 2 : 1; }  // after promotion

// C++'s integral promotion: types narrower than int compute as int.
CT promote(CT t) {
  if (t == CT::Bool || t == CT::I8 || t == CT::I16 || t == CT::U8 || t == CT::U16) return CT::I32;
  return t;
}

// The usual arithmetic conversions of two operands.
CT usual(CT a, CT b, const char* where) {
  if (!is_arith(a) || !is_arith(b))
    unsupported(std::string("an operation on ") + ct_name(a) + " and " + ct_name(b) + " (" + where + ")");
  if (a == CT::F64 || b == CT::F64) return CT::F64;
  if (a == CT::F32 || b == CT::F32) return CT::F32;
  a = promote(a);
  b = promote(b);
  if (a == b) return a;
  if (is_signed(a) == is_signed(b)) return rank(a) >= rank(b) ? a : b;
  CT s = is_signed(a) ? a : b, u = is_signed(a) ? b : a;
  if (rank(u) >= rank(s)) return u;
  return s;  // int64 holds every uint32
}

// ---- Values in their C++ types ----

template <class T>
T get(Val v) {
  if constexpr (std::is_same_v<T, float>) return v.f;
  else if constexpr (std::is_same_v<T, double>) return v.d;
  else if constexpr (std::is_same_v<T, bool>) return v.i != 0;
  else if constexpr (std::is_signed_v<T>) return static_cast<T>(v.i);
  else return static_cast<T>(v.u);
}

template <class T>
Val put(T x) {
  Val v;
  v.u = 0;
  if constexpr (std::is_same_v<T, float>) v.f = x;
  else if constexpr (std::is_same_v<T, double>) v.d = x;
  else if constexpr (std::is_same_v<T, bool>) v.i = x ? 1 : 0;
  else if constexpr (std::is_signed_v<T>) v.i = x;
  else v.u = x;
  return v;
}

// Calls f with a value of the C++ type of t (not __half or an address).
template <class F>
decltype(auto) with_type(CT t, F&& f) {
  switch (t) {
    case CT::Bool: return f(bool{});
    case CT::I8: return f(int8_t{});
    case CT::I16: return f(int16_t{});
    case CT::I32: return f(int32_t{});
    case CT::I64: return f(int64_t{});
    case CT::U8: return f(uint8_t{});
    case CT::U16: return f(uint16_t{});
    case CT::U32: return f(uint32_t{});
    case CT::F32: return f(float{});
    case CT::F64: return f(double{});
    default: return f(uint64_t{});  // U64, and addresses
  }
}

// A value read from where the entry convention keeps it.
Val load(const void* p, CT t) {
  Val v;
  v.u = 0;
  switch (t) {
    case CT::Bool: v.i = *static_cast<const uint8_t*>(p) != 0; break;
    case CT::I8: v.i = *static_cast<const int8_t*>(p); break;
    case CT::I16: v.i = *static_cast<const int16_t*>(p); break;
    case CT::I32: v.i = *static_cast<const int32_t*>(p); break;
    case CT::U8: v.u = *static_cast<const uint8_t*>(p); break;
    case CT::U16: case CT::F16: v.u = *static_cast<const uint16_t*>(p); break;
    case CT::U32: v.u = *static_cast<const uint32_t*>(p); break;
    case CT::F32: v.f = *static_cast<const float*>(p); break;
    default: std::memcpy(&v, p, 8); break;
  }
  return v;
}

// ---- __half on the host, as cuda_fp16.hpp computes it for a host compiler ----

uint16_t half_from_float(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  uint32_t u = x & 0x7fffffffU, sign = (x >> 16U) & 0x8000U, remainder, result;
  if (u >= 0x7f800000U) {
    remainder = 0U;
    result = u == 0x7f800000U ? (sign | 0x7c00U) : 0x7fffU;
  } else if (u > 0x477fefffU) {
    remainder = 0x80000000U;
    result = sign | 0x7bffU;
  } else if (u >= 0x38800000U) {
    remainder = u << 19U;
    u -= 0x38000000U;
    result = sign | (u >> 13U);
  } else if (u < 0x33000001U) {
    remainder = u;
    result = sign;
  } else {
    uint32_t exponent = u >> 23U, shift = 0x7eU - exponent, mantissa = (u & 0x7fffffU) | 0x800000U;
    remainder = mantissa << (32U - shift);
    result = (sign | (mantissa >> shift)) & 0xffffU;
  }
  if (remainder > 0x80000000U || (remainder == 0x80000000U && (result & 1U) != 0U)) ++result;
  return static_cast<uint16_t>(result);
}

// Rounded to 11 bits in double first, so that the conversion to float and half rounds once.
uint16_t half_from_double(double a) {
  uint64_t ua;
  std::memcpy(&ua, &a, sizeof ua);
  uint64_t absa = ua & 0x7fffffffffffffffULL;
  if (absa >= 0x40f0000000000000ULL || absa <= 0x3e60000000000000ULL) return half_from_float(static_cast<float>(a));
  uint64_t shifter_bits = absa >= 0x3f10000000000000ULL ? (ua & 0x7ff0000000000000ULL) + 0x02A0000000000000ULL
                                                         : 0x41B0000000000000ULL;
  shifter_bits |= 0x0008000000000000ULL;
  double shifter;
  std::memcpy(&shifter, &shifter_bits, sizeof shifter);
  volatile double rounded = a + shifter;  // not folded into a + shifter - shifter
  return half_from_float(static_cast<float>(rounded - shifter));
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h >> 15U) & 1U, exponent = (h >> 10U) & 0x1fU, mantissa = (h & 0x3ffU) << 13U;
  if (exponent == 0x1fU) {
    sign = mantissa != 0U ? sign >> 1U : sign;
    mantissa = mantissa != 0U ? 0x7fffffU : 0U;
    exponent = 0xffU;
  } else if (exponent == 0U) {
    if (mantissa != 0U) {
      uint32_t msb;
      exponent = 0x71U;
      do {
        msb = mantissa & 0x400000U;
        mantissa <<= 1U;
        --exponent;
      } while (msb == 0U);
      mantissa &= 0x7fffffU;
    }
  } else {
    exponent += 0x70U;
  }
  uint32_t u = (sign << 31U) | (exponent << 23U) | mantissa;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ---- Conversions ----

// A floating-point value converted to an integer type as x86-64 code does it (cvttsd2si; C++
// leaves values out of range undefined): through int32 for types narrower than 64 bits except
// uint32, the "indefinite" minimum on overflow and NaN.
template <class I, class F>
I float_to_int(F x) {
  if constexpr (std::is_same_v<I, bool>) {
    return x != 0;
  } else if constexpr (sizeof(I) == 8 && std::is_unsigned_v<I>) {
    const F two63 = static_cast<F>(9223372036854775808.0);
    if (x >= two63) {
      F y = x - two63;
      int64_t r = y < two63 ? static_cast<int64_t>(y) : INT64_MIN;
      return static_cast<I>(static_cast<uint64_t>(r) ^ (uint64_t{1} << 63));
    }
    return static_cast<I>(float_to_int<int64_t>(x));
  } else if constexpr (sizeof(I) == 8 || std::is_same_v<I, uint32_t>) {
    bool ok = x >= static_cast<F>(-9223372036854775808.0) && x < static_cast<F>(9223372036854775808.0);
    return static_cast<I>(ok ? static_cast<int64_t>(x) : INT64_MIN);
  } else {
    bool ok = std::is_same_v<F, float> ? x >= F(-2147483648.0) && x < F(2147483648.0)
                                       : x > F(-2147483649.0) && x < F(2147483648.0);
    return static_cast<I>(ok ? static_cast<int32_t>(x) : INT32_MIN);
  }
}

template <class From, class To>
To convert_value(From x) {
  if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) return float_to_int<To>(x);
  else return static_cast<To>(x);
}

// (I)h for a __half h: its conversion operators, which truncate and saturate (NaN: 0, or the
// minimum for 64-bit types).
template <class I>
I half_to_int(uint16_t h) {
  float f = half_to_float(h);
  if (static_cast<uint16_t>(h << 1U) > 0xF800U) {
    if constexpr (sizeof(I) == 8) return static_cast<I>(uint64_t{1} << 63);
    return 0;
  }
  if (f > static_cast<float>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  if (f < static_cast<float>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  return static_cast<I>(f);
}

Val half(uint16_t bits) {
  Val r;
  r.u = bits;
  return r;
}

Val convert(Val v, CT from, CT to) {
  if (from == to) return v;
  if (from == CT::F16) {
    auto h = static_cast<uint16_t>(v.u);
    float f = half_to_float(h);
    if (to == CT::F64) return put<double>(f);
    if (to == CT::F32) return put<float>(f);
    return with_type(to, [&](auto b) {
      using B = decltype(b);
      if constexpr (std::is_integral_v<B> && !std::is_same_v<B, bool>) return put<B>(half_to_int<B>(h));
      else return put<B>(static_cast<B>(f));  // not reached: refused when prepared
    });
  }
  if (to == CT::F16) {
    if (from == CT::F64) return half(half_from_double(v.d));
    if (from == CT::F32) return half(half_from_float(v.f));
    // The integer constructors: through float, rounded to nearest.
    return with_type(from, [&](auto a) { return half(half_from_float(static_cast<float>(get<decltype(a)>(v)))); });
  }
  return with_type(from, [&](auto a) {
    using A = decltype(a);
    A x = get<A>(v);
    return with_type(to, [&](auto b) { return put(convert_value<A, decltype(b)>(x)); });
  });
}

// __half arithmetic as cuda_fp16.hpp computes it on the host: in float, rounded to half; `!=` is
// false when either operand is NaN.
Val half_infix(BinOp op, Val va, Val vb) {
  float a = half_to_float(static_cast<uint16_t>(va.u)), b = half_to_float(static_cast<uint16_t>(vb.u));
  auto h = static_cast<uint16_t>(va.u), k = static_cast<uint16_t>(vb.u);
  auto nan = [](uint16_t x) { return static_cast<uint16_t>(x << 1U) > 0xF800U; };
  switch (op) {
    case BinOp::Add: return half(half_from_float(a + b));
    case BinOp::Sub: return half(half_from_float(a - b));
    case BinOp::Mul: return half(half_from_float(a * b));
    case BinOp::Div: return half(half_from_float(a / b));
    case BinOp::Eq: return put<bool>(a == b);
    case BinOp::Neq: return put<bool>(a != b && !nan(h) && !nan(k));
    case BinOp::Lt: return put<bool>(a < b);
    case BinOp::Le: return put<bool>(a <= b);
    case BinOp::Gt: return put<bool>(a > b);
    default: return put<bool>(a >= b);  // Ge
  }
}

// ---- parpy_common.h's arithmetic, for the host ----

template <class T>
T p_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>)
      if (b == -1) return static_cast<T>(-static_cast<std::make_unsigned_t<T>>(a));
    return static_cast<T>(a / b);
  } else {
    return a / b;
  }
}

template <class F>
F float_floordiv(F a, F b) {
  if (b == 0) return a / b;
  F mod = std::fmod(a, b);
  F div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= F(1);
  if (div == 0) return std::copysign(F(0), a / b);
  F q = std::floor(div);
  if (div - q > F(0.5)) q += F(1);
  return q;
}

template <class F>
F float_mod(F a, F b) {
  F mod = std::fmod(a, b);
  if (b == 0) return mod;
  if (mod == 0) return std::copysign(F(0), b);
  if ((b < 0) != (mod < 0)) mod += b;
  return mod;
}

template <class T>
T p_floordiv(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return static_cast<T>(-static_cast<std::make_unsigned_t<T>>(a));
      T q = static_cast<T>(a / b);
      if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
      return q;
    } else {
      return static_cast<T>(a / b);
    }
  } else {
    return float_floordiv(a, b);
  }
}

template <class T>
T p_mod(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return 0;
      T r = static_cast<T>(a % b);
      if (r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
      return r;
    } else {
      return static_cast<T>(a % b);
    }
  } else {
    return float_mod(a, b);
  }
}

// Integer powers with wrap-around.
template <class T>
T p_pow_int(T a, T b) {
  if constexpr (std::is_same_v<T, bool>) {
    return b ? a : true;
  } else {
    if (b < 0) return a == 1 ? 1 : 0;
    uint64_t r = 1, x = static_cast<uint64_t>(a);  // mod 2^64, then T's width
    while (b > 0) {
      if (b & 1) r *= x;
      x *= x;
      b = static_cast<T>(b >> 1);
    }
    return static_cast<T>(r);
  }
}

template <class T>
T p_max(T a, T b) { return (a < b || b != b) ? b : a; }
template <class T>
T p_min(T a, T b) { return (b < a || b != b) ? b : a; }

// Wrapping +, -, * and shifts of the promoted types (int overflow is undefined in C++; this is
// what the generated code computes on x86-64 and ARM).
template <class T>
T wrap(BinOp op, T a, T b) {
  using U = std::make_unsigned_t<T>;
  U x = static_cast<U>(a), y = static_cast<U>(b);
  constexpr unsigned mask = sizeof(T) * 8 - 1;
  switch (op) {
    case BinOp::Add: return static_cast<T>(x + y);
    case BinOp::Sub: return static_cast<T>(x - y);
    case BinOp::Mul: return static_cast<T>(x * y);
    case BinOp::Shl: return static_cast<T>(x << (y & mask));
    default: return static_cast<T>(a >> (y & mask));  // Shr: arithmetic for signed T
  }
}

// ---- Prepared code ----

enum class NodeOp : uint8_t {
  Const,    // imm
  Slot,     // slots[a]
  Arg,      // the entry argument a, of type t
  Scratch,  // scratch[a]
  Conv,     // (t)child a of type from
  Neg, BitNot, Not, Abs, Math,  // unary on child a of type t (Math: fn is the UnOp)
  Infix,    // a fn b, both of type from; result t (bool for comparisons)
  Call2,    // parpy_<fn><from>(a, b): / // % ** max min atan2 as the helpers compute them
  And, Or,  // short-circuit on bool children
  Select,   // a ? b : c
  Trips,    // parpy_trips(a, b, imm)
  Iter,     // parpy_iter(a, b, imm)
};

struct Node {
  NodeOp op;
  CT t = CT::I64;
  CT from = CT::I64;
  uint8_t fn = 0;
  int32_t a = -1, b = -1, c = -1;
  Val imm{};
};

enum class OpKind : uint8_t { Eval, JumpIfNot, Jump, Launch };

struct Inst {
  OpKind kind;
  int32_t slot = -1;    // Eval: the destination
  int32_t node = -1;    // Eval, JumpIfNot
  int32_t target = -1;  // JumpIfNot, Jump: the next op; Launch: index in launches
};

// Where a launch finds a value: an entry argument, a scratch address or a slot.
enum class SrcKind : uint8_t { Arg, Scratch, Slot };
struct Src {
  SrcKind kind;
  int32_t index;
};

struct LaunchInfo {
  size_t kernel;
  int64_t grid, block, cluster;
  std::vector<std::pair<int32_t, int32_t>> temps = {};  // (slot, node): arguments computed first
  std::vector<Src> params = {};
  bool has_vector = false;
  std::vector<std::pair<Src, uint64_t>> alignment = {};  // (array, bytes)
};

struct Frame {
  Val* slots;
  void* const* args;
  const uint64_t* scratch;
};

}  // namespace

struct HostProgram::Impl {
  std::vector<Node> nodes;
  std::vector<Inst> ops;
  std::vector<LaunchInfo> launches;
  size_t nslots = 0;
  size_t max_params = 0;

  Val eval(int32_t n, const Frame& f) const;
  Val unary(const Node& x, Val a) const;
  Val infix(const Node& x, Val a, Val b) const;
  Val call2(const Node& x, Val a, Val b) const;
};

namespace {

// ---- Preparation ----

struct Var {
  enum Kind { Arg, Scratch, Slot } kind;
  int32_t index;
  CT t;
};

class Compiler {
 public:
  Compiler(const GpuProgram& p, HostProgram::Impl& out, const std::set<size_t>& params_in_slots)
      : p_(p), out_(out), params_in_slots_(params_in_slots) {}

  std::set<size_t> assigned_params;  // entry parameters the host code assigns

  void run() {
    scopes_.emplace_back();
    auto& top = scopes_.back();
    for (size_t i = 0; i < p_.params.size(); ++i) {
      const AbiParam& a = p_.params[i];
      CT t = ct_of(a.type, "parameter " + a.name);
      if (params_in_slots_.count(i)) {
        int32_t s = slot();
        emit_eval(s, node({NodeOp::Arg, t, t, 0, static_cast<int32_t>(i)}));
        top[a.name] = {Var::Slot, s, t};
        param_slots_[s] = i;
      } else {
        top[a.name] = {Var::Arg, static_cast<int32_t>(i), t};
      }
    }
    for (size_t j = 0; j < p_.scratch.size(); ++j) top[p_.scratch[j].name] = {Var::Scratch, static_cast<int32_t>(j), CT::Ptr};
    declare(p_.host);
    block(p_.host);
  }

 private:
  const GpuProgram& p_;
  HostProgram::Impl& out_;
  const std::set<size_t> params_in_slots_;
  std::vector<std::map<std::string, Var>> scopes_;
  std::map<int32_t, size_t> param_slots_;

  int32_t slot() { return static_cast<int32_t>(out_.nslots++); }
  int32_t node(Node n) {
    out_.nodes.push_back(n);
    return static_cast<int32_t>(out_.nodes.size() - 1);
  }
  int32_t constant(CT t, Val v) {
    Node n{NodeOp::Const, t, t};
    n.imm = v;
    return node(n);
  }
  void emit_eval(int32_t s, int32_t n) { out_.ops.push_back({OpKind::Eval, s, n, -1}); }
  size_t emit_jump(OpKind k, int32_t n = -1) {
    out_.ops.push_back({k, -1, n, -1});
    return out_.ops.size() - 1;
  }
  void patch(size_t op) { out_.ops[op].target = static_cast<int32_t>(out_.ops.size()); }

  const Var* lookup(const std::string& name) const {
    for (size_t i = scopes_.size(); i-- > 0;) {
      auto it = scopes_[i].find(name);
      if (it != scopes_[i].end()) return &it->second;
    }
    return nullptr;
  }

  // The locals the printer declares at the top of a function or loop body (CPrinter::declarations):
  // defined by an assignment anywhere in it but in nested for loops, typed by the first.
  void declare(const Block& b) {
    for (const auto& s : b) {
      if (s->kind == StmtKind::Assign && s->defines && s->lhs->kind == ExprKind::Var &&
          !scopes_.back().count(s->lhs->name))
        scopes_.back()[s->lhs->name] = {Var::Slot, slot(), ct_of(s->lhs->ty, "local " + s->lhs->name)};
      if (s->kind == StmtKind::For) continue;
      declare(s->body);
      declare(s->orelse);
    }
  }

  // The node of e converted to `to` as C++ converts implicitly (assignment, argument passing).
  int32_t conv(int32_t n, CT from, CT to) {
    if (from == to) return n;
    // __half converts to and from every arithmetic type but bool (its conversion to bool is
    // ambiguous in C++).
    if (from == CT::Ptr || to == CT::Ptr || (from == CT::F16 && to == CT::Bool))
      unsupported(std::string("a conversion from ") + ct_name(from) + " to " + ct_name(to));
    return node({NodeOp::Conv, to, from, 0, n});
  }

  struct Typed {
    int32_t n;
    CT t;
  };

  Typed as_bool(const Typed& x) { return {conv(x.n, x.t, CT::Bool), CT::Bool}; }

  // An integer literal as int_literal prints it: its C++ type and value.
  Typed int_literal(int64_t v, ElemSize e) {
    if (is_bool(e)) return {constant(CT::Bool, put<bool>(v != 0)), CT::Bool};
    if (is_float(e)) return float_literal(static_cast<double>(v), e);
    CT t = ct_of(e);
    if (is_unsigned_int(e)) {
      uint64_t u = static_cast<uint64_t>(v);
      return {constant(t, convert(put<uint64_t>(u), CT::U64, t)), t};
    }
    CT spelled = v >= -2147483647 && v <= 2147483647 ? CT::I32 : CT::I64;
    int32_t n = constant(spelled, put<int64_t>(v));
    if (e == ElemSize::I64 || e == ElemSize::I32) return {n, spelled};
    return {conv(n, spelled, t), t};
  }

  // A float literal as float_literal prints it: "%.17g" read back as float or double, then
  // converted for __half.
  Typed float_literal(double v, ElemSize e) {
    if (!is_float(e)) unsupported(std::string("a float literal of type ") + elem_long_name(e));
    Val x;
    if (std::isnan(v) || std::isinf(v)) {
      // ((double)NAN), HUGE_VAL, ((float)NAN), HUGE_VALF, ((__half)NAN), ...
      if (e == ElemSize::F64) return {constant(CT::F64, put<double>(std::isnan(v) ? static_cast<double>(NAN) : v)), CT::F64};
      float f = std::isnan(v) ? NAN : (v > 0 ? HUGE_VALF : -HUGE_VALF);
      x = e == ElemSize::F16 ? Val{static_cast<int64_t>(half_from_float(f))} : put<float>(f);
      return {constant(ct_of(e), x), ct_of(e)};
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    if (e == ElemSize::F64) return {constant(CT::F64, put<double>(std::strtod(buf, nullptr))), CT::F64};
    float f = std::strtof(buf, nullptr);
    if (e == ElemSize::F32) return {constant(CT::F32, put<float>(f)), CT::F32};
    x.u = half_from_float(f);
    return {constant(CT::F16, x), CT::F16};
  }

  Typed var_ref(const std::string& name) {
    const Var* v = lookup(name);
    if (!v) unsupported("the host code reads " + name + ", which it does not define");
    switch (v->kind) {
      case Var::Arg: return {node({NodeOp::Arg, v->t, v->t, 0, v->index}), v->t};
      case Var::Scratch: return {node({NodeOp::Scratch, CT::Ptr, CT::Ptr, 0, v->index}), CT::Ptr};
      default: return {node({NodeOp::Slot, v->t, v->t, 0, v->index}), v->t};
    }
  }

  Typed expr(const Expr& e) {
    switch (e->kind) {
      case ExprKind::Var: return var_ref(e->name);
      case ExprKind::Int: return int_literal(e->ival, e->ty.elem);
      case ExprKind::Float: return float_literal(e->fval, e->ty.elem);
      case ExprKind::Bool: return {constant(CT::Bool, put<bool>(e->bval)), CT::Bool};
      case ExprKind::Convert: {
        Typed a = expr(e->args[0]);
        CT t = ct_of(e->ty.elem);
        return {conv(a.n, a.t, t), t};
      }
      case ExprKind::IfExpr: {
        Typed c = as_bool(expr(e->args[0])), a = expr(e->args[1]), b = expr(e->args[2]);
        CT t = a.t == b.t ? a.t : usual(a.t, b.t, "a conditional expression");
        return {node({NodeOp::Select, t, t, 0, c.n, conv(a.n, a.t, t), conv(b.n, b.t, t)}), t};
      }
      case ExprKind::UnOp: return unary(e);
      case ExprKind::BinOp: return binary(e);
      case ExprKind::Call:
        if (intrinsic_of(e) == Intrinsic::None)
          unsupported("a call of " + e->name + " in host code");
        unsupported("the intrinsic " + e->name + " in host code");
      default: unsupported("the expression " + print_expr(e) + " in host code");
    }
  }

  // `((T)s)` of CPrinter::narrow: an integer narrower than int keeps its IR type.
  Typed narrow(const Expr& e, Typed x) {
    ElemSize t = e->ty.elem;
    if (e->ty.is_scalar() && elem_bytes(t) < 4 && !is_bool(t) && !is_float(t)) return {conv(x.n, x.t, ct_of(t)), ct_of(t)};
    return x;
  }

  Typed unary(const Expr& e) {
    Typed a = expr(e->args[0]);
    switch (e->unop) {
      case UnOp::Not: {
        Typed b = as_bool(a);
        return {node({NodeOp::Not, CT::Bool, CT::Bool, 0, b.n}), CT::Bool};
      }
      case UnOp::Neg:
      case UnOp::BitNot: {
        bool ok = e->unop == UnOp::Neg ? is_arith(a.t) || a.t == CT::F16 : is_integral(a.t);
        if (!ok)
          unsupported(std::string("the operator ") + unop_name(e->unop) + " on " + ct_name(a.t));
        CT t = promote(a.t);
        NodeOp op = e->unop == UnOp::Neg ? NodeOp::Neg : NodeOp::BitNot;
        return narrow(e, {node({op, t, t, 0, conv(a.n, a.t, t)}), t});
      }
      case UnOp::Abs:  // parpy_abs(a): the template deduces a's own type
        if (!is_arith(a.t) && a.t != CT::F16) unsupported(std::string("abs of ") + ct_name(a.t));
        return {node({NodeOp::Abs, a.t, a.t, 0, a.n}), a.t};
      default:  // parpy_exp(a) and co: overloads for float and double
        if (!is_fp(a.t)) unsupported(std::string("parpy_") + unop_name(e->unop) + " of " + ct_name(a.t));
        return {node({NodeOp::Math, a.t, a.t, static_cast<uint8_t>(e->unop), a.n}), a.t};
    }
  }

  Typed binary(const Expr& e) {
    BinOp op = e->binop;
    Typed a = expr(e->args[0]), b = expr(e->args[1]);
    // The helpers named with the IR type of the first operand: parpy_div<T>(a, b) and co.
    auto helper = [&]() -> Typed {
      CT t = ct_of(e->args[0]->ty, "an operand");
      bool half_ok = op == BinOp::FloorDiv || op == BinOp::Mod || op == BinOp::Max || op == BinOp::Min;
      if (t == CT::Ptr || (t == CT::F16 && !half_ok))
        unsupported(std::string("the operator ") + binop_name(op) + " on " + ct_name(t));
      return {node({NodeOp::Call2, t, t, static_cast<uint8_t>(op), conv(a.n, a.t, t), conv(b.n, b.t, t)}), t};
    };
    auto infix = [&](CT result_if_bool) -> Typed {
      // Two __half operands: cuda_fp16.hpp's operators (+ - * / and comparisons).
      CT t = a.t == CT::F16 && b.t == CT::F16 ? CT::F16 : usual(a.t, b.t, binop_name(op));
      CT r = result_if_bool == CT::Bool ? CT::Bool : t;
      return {node({NodeOp::Infix, r, t, static_cast<uint8_t>(op), conv(a.n, a.t, t), conv(b.n, b.t, t)}), r};
    };
    switch (op) {
      case BinOp::Add: case BinOp::Sub: case BinOp::Mul:
        return narrow(e, infix(CT::Ptr));
      case BinOp::BitAnd: case BinOp::BitOr: case BinOp::BitXor: case BinOp::Shl: case BinOp::Shr: {
        if (!is_integral(a.t) || !is_integral(b.t))
          unsupported(std::string("the operator ") + binop_name(op) + " on " + ct_name(a.t) + " and " + ct_name(b.t));
        Typed r = infix(CT::Ptr);
        return narrow(e, r);
      }
      case BinOp::Div:
        if (is_float(e->args[0]->ty.elem)) return infix(CT::Ptr);
        return helper();
      case BinOp::FloorDiv: case BinOp::Mod: case BinOp::Max: case BinOp::Min:
        return helper();
      case BinOp::Pow: {
        if (!is_float(e->args[0]->ty.elem)) return helper();
        // parpy_pow(a, b): powf for (float, float), the template's ::pow for (double, double),
        // and the float overload for a mix of the two.
        if (!is_fp(a.t) || !is_fp(b.t)) unsupported(std::string("** on ") + ct_name(a.t) + " and " + ct_name(b.t));
        CT t = a.t == CT::F64 && b.t == CT::F64 ? CT::F64 : CT::F32;
        return {node({NodeOp::Call2, t, t, static_cast<uint8_t>(op), conv(a.n, a.t, t), conv(b.n, b.t, t)}), t};
      }
      case BinOp::Atan2:
        if (!is_fp(a.t) || a.t != b.t) unsupported(std::string("atan2 of ") + ct_name(a.t) + " and " + ct_name(b.t));
        return {node({NodeOp::Call2, a.t, a.t, static_cast<uint8_t>(op), a.n, b.n}), a.t};
      case BinOp::And: case BinOp::Or: {
        Typed x = as_bool(a), y = as_bool(b);
        return {node({op == BinOp::And ? NodeOp::And : NodeOp::Or, CT::Bool, CT::Bool, 0, x.n, y.n}), CT::Bool};
      }
      case BinOp::Eq: case BinOp::Neq: case BinOp::Lt: case BinOp::Le: case BinOp::Gt: case BinOp::Ge:
        return infix(CT::Bool);
    }
    unsupported(std::string("the operator ") + binop_name(op));
  }

  void block(const Block& b) {
    for (const auto& s : b) stmt(s);
  }

  void stmt(const Stmt& s) {
    switch (s->kind) {
      case StmtKind::Assign: {
        if (s->atomic || s->lhs->kind != ExprKind::Var)
          unsupported("the assignment to " + print_expr(s->lhs) + " in host code");
        const Var* v = lookup(s->lhs->name);
        if (!v) unsupported("the assignment to undeclared " + s->lhs->name);
        if (v->kind == Var::Arg) {  // prepared again with the parameter in a slot
          assigned_params.insert(static_cast<size_t>(v->index));
          return;
        }
        if (v->kind != Var::Slot) unsupported("the assignment to " + s->lhs->name);
        if (auto it = param_slots_.find(v->index); it != param_slots_.end()) assigned_params.insert(it->second);
        Var dst = *v;
        Typed r = expr(s->rhs);
        emit_eval(dst.index, conv(r.n, r.t, dst.t));
        return;
      }
      case StmtKind::For: loop(s); return;
      case StmtKind::While: {
        size_t head = out_.ops.size();
        size_t exit = emit_jump(OpKind::JumpIfNot, as_bool(expr(s->cond)).n);
        block(s->body);
        out_.ops.push_back({OpKind::Jump, -1, -1, static_cast<int32_t>(head)});
        patch(exit);
        return;
      }
      case StmtKind::If: {
        size_t to_else = emit_jump(OpKind::JumpIfNot, as_bool(expr(s->cond)).n);
        block(s->body);
        if (s->orelse.empty()) {
          patch(to_else);
          return;
        }
        size_t to_end = emit_jump(OpKind::Jump);
        patch(to_else);
        block(s->orelse);
        patch(to_end);
        return;
      }
      case StmtKind::WithGpu: block(s->body); return;  // printed as its body
      case StmtKind::Launch: launch(s); return;
      default: unsupported("a statement of this kind in host code:\n" + print_block({s}));
    }
  }

  // CPrinter::open_loop: `for (int64_t v = lo; v < hi; v += step)` (lo and hi read with v in
  // scope, hi at every test), or a count of iterations (parpy_trips) with v = parpy_iter(...).
  void loop(const Stmt& s) {
    Node one{NodeOp::Const, CT::I64, CT::I64};
    if (plain_loop_is_exact(s, false)) {
      scopes_.emplace_back();
      int32_t v = slot();
      scopes_.back()[s->var] = {Var::Slot, v, CT::I64};
      Typed lo = expr(s->lo);
      emit_eval(v, conv(lo.n, lo.t, CT::I64));
      size_t head = out_.ops.size();
      Typed hi = expr(s->hi);
      CT t = usual(CT::I64, hi.t, "a loop bound");
      int32_t vn = node({NodeOp::Slot, CT::I64, CT::I64, 0, v});
      auto cmp = static_cast<uint8_t>(s->step > 0 ? BinOp::Lt : BinOp::Gt);
      int32_t test = node({NodeOp::Infix, CT::Bool, t, cmp, conv(vn, CT::I64, t), conv(hi.n, hi.t, t)});
      size_t exit = emit_jump(OpKind::JumpIfNot, test);
      body(s->body);
      one.imm = put<int64_t>(s->step);
      int32_t next = node({NodeOp::Infix, CT::I64, CT::I64, static_cast<uint8_t>(BinOp::Add), vn, node(one)});
      emit_eval(v, next);
      out_.ops.push_back({OpKind::Jump, -1, -1, static_cast<int32_t>(head)});
      patch(exit);
      scopes_.pop_back();
      return;
    }
    Typed lo = expr(s->lo), hi = expr(s->hi);
    int32_t lo_slot = slot(), n_slot = slot(), t_slot = slot();
    emit_eval(lo_slot, conv(lo.n, lo.t, CT::I64));
    int32_t lo_n = node({NodeOp::Slot, CT::I64, CT::I64, 0, lo_slot});
    Node trips{NodeOp::Trips, CT::I64, CT::I64, 0, lo_n, conv(hi.n, hi.t, CT::I64)};
    trips.imm = put<int64_t>(s->step);
    emit_eval(n_slot, node(trips));
    emit_eval(t_slot, constant(CT::I64, put<int64_t>(0)));
    int32_t t_n = node({NodeOp::Slot, CT::I64, CT::I64, 0, t_slot});
    int32_t n_n = node({NodeOp::Slot, CT::I64, CT::I64, 0, n_slot});
    size_t head = out_.ops.size();
    size_t exit = emit_jump(OpKind::JumpIfNot, node({NodeOp::Infix, CT::Bool, CT::I64, static_cast<uint8_t>(BinOp::Lt), t_n, n_n}));
    scopes_.emplace_back();
    int32_t v = slot();
    scopes_.back()[s->var] = {Var::Slot, v, CT::I64};
    Node iter{NodeOp::Iter, CT::I64, CT::I64, 0, lo_n, t_n};
    iter.imm = put<int64_t>(s->step);
    emit_eval(v, node(iter));
    body(s->body);
    scopes_.pop_back();
    one.imm = put<int64_t>(1);
    emit_eval(t_slot, node({NodeOp::Infix, CT::I64, CT::I64, static_cast<uint8_t>(BinOp::Add), t_n, node(one)}));
    out_.ops.push_back({OpKind::Jump, -1, -1, static_cast<int32_t>(head)});
    patch(exit);
  }

  // A loop body: a scope with its own declarations.
  void body(const Block& b) {
    scopes_.emplace_back();
    declare(b);
    block(b);
    scopes_.pop_back();
  }

  Src src_of(const Var& v) {
    switch (v.kind) {
      case Var::Arg: return {SrcKind::Arg, v.index};
      case Var::Scratch: return {SrcKind::Scratch, v.index};
      default: return {SrcKind::Slot, v.index};
    }
  }

  void launch(const Stmt& s) {
    const std::string& name = s->rhs->name;
    size_t k = 0;
    while (k < p_.kernels.size() && p_.kernels[k].name != name) ++k;
    if (k == p_.kernels.size()) unsupported("a launch of unknown kernel " + name);
    const Kernel& kern = p_.kernels[k];
    const auto& args = s->rhs->args;
    if (args.size() != kern.params.size())
      unsupported("a launch of " + name + " with " + std::to_string(args.size()) + " arguments for " +
                  std::to_string(kern.params.size()) + " parameters");
    LaunchInfo li{k, kern.grid_blocks, kern.block_threads, kern.cluster_blocks};
    for (size_t i = 0; i < args.size(); ++i) {
      CT t = ct_of(kern.params[i].type, "parameter " + kern.params[i].name + " of " + name);
      const Expr& a = args[i];
      if (a->kind == ExprKind::Var) {
        const Var* v = lookup(a->name);
        if (v && v->t == t) {
          li.params.push_back(src_of(*v));
          continue;
        }
      }
      Typed x = expr(a);
      int32_t tmp = slot();
      li.temps.push_back({tmp, conv(x.n, x.t, t)});
      li.params.push_back({SrcKind::Slot, tmp});
    }
    if (!kern.vector_body.empty()) {
      li.has_vector = true;
      for (const auto& [array, bytes] : kern.alignment) {
        const Var* v = lookup(array);
        if (!v || v->t != CT::Ptr) unsupported("the alignment test of " + array + ", which is not an array here");
        if (bytes <= 0) unsupported("an alignment of " + std::to_string(bytes) + " bytes");
        li.alignment.push_back({src_of(*v), static_cast<uint64_t>(bytes)});
      }
    }
    out_.max_params = std::max(out_.max_params, li.params.size());
    out_.launches.push_back(std::move(li));
    out_.ops.push_back({OpKind::Launch, -1, -1, static_cast<int32_t>(out_.launches.size() - 1)});
  }
};

// ---- Running ----

template <class T>
Val infix_typed(BinOp op, Val va, Val vb) {
  T a = get<T>(va), b = get<T>(vb);
  switch (op) {
    case BinOp::Eq: return put<bool>(a == b);
    case BinOp::Neq: return put<bool>(a != b);
    case BinOp::Lt: return put<bool>(a < b);
    case BinOp::Le: return put<bool>(a <= b);
    case BinOp::Gt: return put<bool>(a > b);
    case BinOp::Ge: return put<bool>(a >= b);
    default: break;
  }
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case BinOp::Add: return put<T>(a + b);
      case BinOp::Sub: return put<T>(a - b);
      case BinOp::Mul: return put<T>(a * b);
      default: return put<T>(a / b);  // Div
    }
  } else if constexpr (std::is_same_v<T, bool>) {
    return put<T>(false);  // bool operands are promoted first
  } else {
    switch (op) {
      case BinOp::BitAnd: return put<T>(a & b);
      case BinOp::BitOr: return put<T>(a | b);
      case BinOp::BitXor: return put<T>(a ^ b);
      default: return put<T>(wrap<T>(op, a, b));
    }
  }
}

template <class T>
Val call2_typed(BinOp op, Val va, Val vb) {
  T a = get<T>(va), b = get<T>(vb);
  switch (op) {
    case BinOp::Div: return put<T>(p_div(a, b));
    case BinOp::FloorDiv: return put<T>(p_floordiv(a, b));
    case BinOp::Mod: return put<T>(p_mod(a, b));
    case BinOp::Max: return put<T>(p_max(a, b));
    case BinOp::Min: return put<T>(p_min(a, b));
    case BinOp::Pow:
      if constexpr (std::is_same_v<T, float>) return put<T>(::powf(a, b));
      else if constexpr (std::is_same_v<T, double>) return put<T>(::pow(a, b));
      else return put<T>(p_pow_int(a, b));
    case BinOp::Atan2:
      if constexpr (std::is_same_v<T, float>) return put<T>(::atan2f(a, b));
      else if constexpr (std::is_same_v<T, double>) return put<T>(::atan2(a, b));
      else return put<T>(a);
    default: return put<T>(a);
  }
}

template <class T>
Val math_typed(UnOp op, Val va) {
  T a = get<T>(va);
  if constexpr (std::is_same_v<T, float>) {
    switch (op) {
      case UnOp::Exp: return put(::expf(a));
      case UnOp::Log: return put(::logf(a));
      case UnOp::Cos: return put(::cosf(a));
      case UnOp::Sin: return put(::sinf(a));
      case UnOp::Sqrt: return put(::sqrtf(a));
      default: return put(::tanhf(a));
    }
  } else {
    switch (op) {
      case UnOp::Exp: return put(::exp(a));
      case UnOp::Log: return put(::log(a));
      case UnOp::Cos: return put(::cos(a));
      case UnOp::Sin: return put(::sin(a));
      case UnOp::Sqrt: return put(::sqrt(a));
      default: return put(::tanh(a));
    }
  }
}


}  // namespace

Val HostProgram::Impl::unary(const Node& x, Val a) const {
  if (x.t == CT::F16) {  // __hneg; parpy_abs<__half>: a < 0 ? -a : a
    float f = half_to_float(static_cast<uint16_t>(a.u));
    if (x.op == NodeOp::Abs && !(f < 0.0f)) return a;
    return half(half_from_float(-f));
  }
  switch (x.op) {
    case NodeOp::Not: return put<bool>(a.i == 0);
    case NodeOp::Neg:
      return with_type(x.t, [&](auto z) {
        using T = decltype(z);
        if constexpr (std::is_floating_point_v<T>) return put<T>(-get<T>(a));
        else if constexpr (std::is_same_v<T, bool>) return a;
        else return put<T>(static_cast<T>(0 - static_cast<std::make_unsigned_t<T>>(get<T>(a))));
      });
    case NodeOp::BitNot:
      return with_type(x.t, [&](auto z) {
        using T = decltype(z);
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) return put<T>(static_cast<T>(~get<T>(a)));
        else return a;
      });
    case NodeOp::Abs:
      return with_type(x.t, [&](auto z) {
        using T = decltype(z);
        T v = get<T>(a);
        if constexpr (std::is_floating_point_v<T>) return put<T>(v < T(0) ? -v : v);
        else if constexpr (std::is_same_v<T, bool>) return a;
        else return put<T>(v < T(0) ? static_cast<T>(0 - static_cast<std::make_unsigned_t<T>>(v)) : v);
      });
    default:  // Math
      if (x.t == CT::F32) return math_typed<float>(static_cast<UnOp>(x.fn), a);
      return math_typed<double>(static_cast<UnOp>(x.fn), a);
  }
}

Val HostProgram::Impl::infix(const Node& x, Val a, Val b) const {
  auto op = static_cast<BinOp>(x.fn);
  switch (x.from) {
    case CT::F16: return half_infix(op, a, b);
    case CT::I32: return infix_typed<int32_t>(op, a, b);
    case CT::I64: return infix_typed<int64_t>(op, a, b);
    case CT::U32: return infix_typed<uint32_t>(op, a, b);
    case CT::U64: return infix_typed<uint64_t>(op, a, b);
    case CT::F32: return infix_typed<float>(op, a, b);
    default: return infix_typed<double>(op, a, b);
  }
}

Val HostProgram::Impl::call2(const Node& x, Val a, Val b) const {
  if (x.t == CT::F16) {
    auto op = static_cast<BinOp>(x.fn);
    if (op == BinOp::Max || op == BinOp::Min) {  // (a < b || b != b) ? b : a, with __half's != and <
      Val lt = op == BinOp::Max ? half_infix(BinOp::Lt, a, b) : half_infix(BinOp::Lt, b, a);
      return lt.i != 0 || half_infix(BinOp::Neq, b, b).i != 0 ? b : a;
    }
    float fa = half_to_float(static_cast<uint16_t>(a.u)), fb = half_to_float(static_cast<uint16_t>(b.u));
    return half(half_from_float(op == BinOp::FloorDiv ? float_floordiv(fa, fb) : float_mod(fa, fb)));
  }
  return with_type(x.t, [&](auto z) { return call2_typed<decltype(z)>(static_cast<BinOp>(x.fn), a, b); });
}

Val HostProgram::Impl::eval(int32_t n, const Frame& f) const {
  const Node& x = nodes[static_cast<size_t>(n)];
  switch (x.op) {
    case NodeOp::Const: return x.imm;
    case NodeOp::Slot: return f.slots[x.a];
    case NodeOp::Arg: return load(f.args[x.a], x.t);
    case NodeOp::Scratch: {
      Val v;
      v.u = f.scratch[x.a];
      return v;
    }
    case NodeOp::Conv: return convert(eval(x.a, f), x.from, x.t);
    case NodeOp::Neg: case NodeOp::BitNot: case NodeOp::Not: case NodeOp::Abs: case NodeOp::Math:
      return unary(x, eval(x.a, f));
    case NodeOp::Infix: return infix(x, eval(x.a, f), eval(x.b, f));
    case NodeOp::Call2: return call2(x, eval(x.a, f), eval(x.b, f));
    case NodeOp::And: return put<bool>(eval(x.a, f).i != 0 && eval(x.b, f).i != 0);
    case NodeOp::Or: return put<bool>(eval(x.a, f).i != 0 || eval(x.b, f).i != 0);
    case NodeOp::Select: return eval(x.a, f).i != 0 ? eval(x.b, f) : eval(x.c, f);
    case NodeOp::Trips: return put<int64_t>(range_trips(eval(x.a, f).i, eval(x.b, f).i, x.imm.i));
    case NodeOp::Iter:
      return put<int64_t>(static_cast<int64_t>(static_cast<uint64_t>(eval(x.a, f).i) +
                                               static_cast<uint64_t>(eval(x.b, f).i) * static_cast<uint64_t>(x.imm.i)));
  }
  return x.imm;
}

HostProgram::HostProgram(const GpuProgram& p) : impl_(std::make_unique<Impl>()) {
  Compiler first(p, *impl_, {});
  first.run();
  if (!first.assigned_params.empty()) {
    // Parameters the host code assigns are locals of the printed function: copied into slots.
    std::set<size_t> in_slots = first.assigned_params;
    impl_ = std::make_unique<Impl>();
    Compiler second(p, *impl_, in_slots);
    second.run();
  }
}

HostProgram::~HostProgram() = default;
HostProgram::HostProgram(HostProgram&&) noexcept = default;
HostProgram& HostProgram::operator=(HostProgram&&) noexcept = default;

size_t HostProgram::slots() const { return impl_->nslots; }
size_t HostProgram::ops() const { return impl_->ops.size(); }

int32_t HostProgram::run(void* const* args, const uint64_t* scratch, HostLauncher& launcher) const {
  const Impl& m = *impl_;
  Val stack_slots[kStackSlots];
  std::unique_ptr<Val[]> heap_slots;
  Val* slots = stack_slots;
  if (m.nslots > kStackSlots) {
    heap_slots.reset(new Val[m.nslots]);
    slots = heap_slots.get();
  }
  void* stack_params[kStackParams];
  std::unique_ptr<void*[]> heap_params;
  void** params = stack_params;
  if (m.max_params > kStackParams) {
    heap_params.reset(new void*[m.max_params]);
    params = heap_params.get();
  }
  if (m.nslots) std::memset(slots, 0, m.nslots * sizeof(Val));
  Frame f{slots, args, scratch};
  auto address = [&](const Src& s) -> void* {
    switch (s.kind) {
      case SrcKind::Arg: return const_cast<void*>(args[s.index]);
      case SrcKind::Scratch: return const_cast<uint64_t*>(&scratch[s.index]);
      default: return &slots[s.index];
    }
  };
  const Inst* ops = m.ops.data();
  const size_t n = m.ops.size();
  for (size_t pc = 0; pc < n;) {
    const Inst& op = ops[pc];
    switch (op.kind) {
      case OpKind::Eval:
        slots[op.slot] = m.eval(op.node, f);
        ++pc;
        break;
      case OpKind::JumpIfNot:
        pc = m.eval(op.node, f).i != 0 ? pc + 1 : static_cast<size_t>(op.target);
        break;
      case OpKind::Jump: pc = static_cast<size_t>(op.target); break;
      case OpKind::Launch: {
        const LaunchInfo& li = m.launches[static_cast<size_t>(op.target)];
        for (const auto& [s, node] : li.temps) slots[s] = m.eval(node, f);
        for (size_t i = 0; i < li.params.size(); ++i) params[i] = address(li.params[i]);
        bool vector = li.has_vector;
        for (const auto& [s, bytes] : li.alignment) {
          uint64_t a = *static_cast<const uint64_t*>(address(s));
          vector = vector && a % bytes == 0;
        }
        HostLaunch l{li.kernel, vector, li.grid, li.block, li.cluster, params};
        if (int32_t rc = launcher.launch(l)) return rc;
        ++pc;
        break;
      }
    }
  }
  return 0;
}

// ---- Census ----

std::map<std::string, int64_t> host_code_constructs(const GpuProgram& p) {
  std::map<std::string, int64_t> c;
  auto type_key = [](const Type& t) -> std::string {
    if (t.is_scalar()) return elem_name(t.elem);
    if (t.is_array() || t.is_pointer()) return "pointer";
    return "other";
  };
  visit_block(p.host, [&](const Stmt& s) {
    std::string k = "stmt:";
    switch (s->kind) {
      case StmtKind::Assign: k += s->lhs->ty.is_scalar() ? "Assign" : "Assign:array-local"; break;
      case StmtKind::For: k += plain_loop_is_exact(s, false) ? "For" : "For:counted"; break;
      case StmtKind::While: k += "While"; break;
      case StmtKind::If: k += s->orelse.empty() ? "If" : "If:else"; break;
      case StmtKind::Launch: k += "Launch"; break;
      case StmtKind::WithGpu: k += "WithGpu"; break;
      case StmtKind::Return: k += "Return"; break;
      case StmtKind::Call: k += "Call"; break;
      default: k += "other"; break;
    }
    ++c[k];
    if (s->kind == StmtKind::Launch) {
      for (const auto& a : s->rhs->args) {
        ++c["launch:arg:" + type_key(a->ty)];
        if (a->kind != ExprKind::Var) ++c["launch:arg-expression"];
      }
      return;  // its arguments are counted as launch arguments
    }
    visit_stmt_exprs(s, [&](const Expr& e) {
      std::string x = "expr:";
      switch (e->kind) {
        case ExprKind::Var: x += "Var"; break;
        case ExprKind::Int: x += std::string("Int:") + elem_name(e->ty.elem); break;
        case ExprKind::Float: x += std::string("Float:") + elem_name(e->ty.elem); break;
        case ExprKind::Bool: x += "Bool"; break;
        case ExprKind::UnOp: x += std::string("UnOp:") + unop_name(e->unop); break;
        case ExprKind::BinOp: x += std::string("BinOp:") + binop_name(e->binop) + ":" + elem_name(e->args[0]->ty.elem); break;
        case ExprKind::IfExpr: x += "IfExpr"; break;
        case ExprKind::Convert:
          x += std::string("Convert:") + elem_name(e->args[0]->ty.elem) + "->" + elem_name(e->ty.elem);
          break;
        case ExprKind::Call: x += "Call:" + e->name; break;
        case ExprKind::Access: x += "Access"; break;
        default: x += "other"; break;
      }
      ++c[x];
    });
  });
  for (const auto& k : p.kernels) {
    ++c["kernel"];
    if (!k.vector_body.empty()) ++c["kernel:vector-variant"];
    if (k.cluster_blocks > 1) ++c["kernel:cluster"];
    for (const auto& a : k.params) ++c["kernel:param:" + type_key(a.type)];
  }
  for (const auto& a : p.params) ++c["entry:param:" + type_key(a.type)];
  if (!p.scratch.empty()) c["program:scratch"] += static_cast<int64_t>(p.scratch.size());
  if (p.use_graphs) ++c["program:graphs"];
  bool checked = false;
  for (const auto& k : p.kernels) checked = checked || has_bounds_checks(k.body) || has_bounds_checks(k.vector_body);
  if (checked) ++c["program:bounds-check"];
  return c;
}

}  // namespace parpy
