// Constant folding at the limits of the integer and float types: every folded value equals what
// the generated code computes (two's complement wrap-around for ints, as numpy; NaN-propagating
// max/min; one rounding per conversion), and folding itself never has undefined behaviour (the
// sanitizer build, tools/sanitize_suite.sh, runs these tests under UBSan).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "ir/ir.h"
#include "passes/constant_fold.h"
#include "ir_builders.h"

namespace parpy {
namespace {

using namespace parpy::testing;
using i128 = __int128;
using u128 = unsigned __int128;

const std::vector<int64_t> kValues = {
    INT64_MIN,   INT64_MIN + 1, -4294967296, -2147483649, -2147483648, -65536, -129, -128, -7,
    -2,          -1,            0,           1,           2,           3,      7,    31,   32,
    62,          63,            64,          65,          127,         255,    3037000499,
    3037000500,  2147483647,    2147483648,  4294967296,  INT64_MAX - 1, INT64_MAX};

int64_t wrap64(i128 v) { return static_cast<int64_t>(static_cast<uint64_t>(static_cast<u128>(v))); }

i128 floor_div(i128 a, i128 b) {
  i128 q = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --q;
  return q;
}

// x ** y modulo 2**64 (y >= 0), by recursion on the exponent's bits.
uint64_t pow_mod(uint64_t x, uint64_t y) {
  if (y == 0) return 1;
  uint64_t half = pow_mod(static_cast<uint64_t>((static_cast<u128>(x) * x)), y / 2);
  return static_cast<uint64_t>(static_cast<u128>(half) * ((y & 1) ? x : 1));
}

// The value of x op y in the generated code's semantics, or nothing where folding is left to it.
std::optional<int64_t> expected(BinOp op, int64_t x, int64_t y) {
  i128 a = x, b = y;
  switch (op) {
    case BinOp::Add: return wrap64(a + b);
    case BinOp::Sub: return wrap64(a - b);
    case BinOp::Mul: return wrap64(a * b);
    case BinOp::Div:
      if (y == 0 || (x == INT64_MIN && y == -1)) return std::nullopt;
      return wrap64(a / b);
    case BinOp::FloorDiv:
      if (y == 0 || (x == INT64_MIN && y == -1)) return std::nullopt;
      return wrap64(floor_div(a, b));
    case BinOp::Mod:
      if (y == 0 || (x == INT64_MIN && y == -1)) return std::nullopt;
      return wrap64(a - floor_div(a, b) * b);
    case BinOp::Pow:
      if (y < 0) return std::nullopt;
      return static_cast<int64_t>(pow_mod(static_cast<uint64_t>(x), static_cast<uint64_t>(y)));
    case BinOp::BitAnd: return x & y;
    case BinOp::BitOr: return x | y;
    case BinOp::BitXor: return x ^ y;
    case BinOp::Shl:
      if (y < 0 || y >= 63) return std::nullopt;
      return wrap64(a * (i128(1) << y));
    case BinOp::Shr:
      if (y < 0 || y >= 64) return std::nullopt;
      return wrap64(floor_div(a, i128(1) << y));
    case BinOp::Max: return x < y ? y : x;
    case BinOp::Min: return x < y ? x : y;
    default: return std::nullopt;
  }
}

const std::vector<BinOp> kIntOps = {BinOp::Add,    BinOp::Sub,    BinOp::Mul,    BinOp::Div,
                                    BinOp::FloorDiv, BinOp::Mod,  BinOp::Pow,    BinOp::BitAnd,
                                    BinOp::BitOr,  BinOp::BitXor, BinOp::Shl,    BinOp::Shr,
                                    BinOp::Max,    BinOp::Min};

TEST(ConstantFoldLimits, Int64ArithmeticWrapsLikeTheGeneratedCode) {
  for (BinOp op : kIntOps) {
    for (int64_t x : kValues) {
      for (int64_t y : kValues) {
        Expr e = constant_fold(binop(op, I(x), I(y), sp()));
        std::optional<int64_t> want = expected(op, x, y);
        if (!want) {
          EXPECT_EQ(e->kind, ExprKind::BinOp) << x << " " << binop_name(op) << " " << y;
          continue;
        }
        ASSERT_EQ(e->kind, ExprKind::Int) << x << " " << binop_name(op) << " " << y;
        EXPECT_EQ(e->ival, *want) << x << " " << binop_name(op) << " " << y;
        EXPECT_TRUE(e->weak);
      }
    }
  }
}

TEST(ConstantFoldLimits, TypedIntArithmeticWrapsToItsWidth) {
  struct Width {
    ElemSize elem;
    int bits;
  };
  for (Width w : {Width{ElemSize::I8, 8}, Width{ElemSize::I16, 16}, Width{ElemSize::I32, 32}}) {
    int64_t lo = -(int64_t(1) << (w.bits - 1)), hi = (int64_t(1) << (w.bits - 1)) - 1;
    std::vector<int64_t> values = {lo, lo + 1, -3, -1, 0, 1, 2, 7, w.bits - 1, w.bits, hi - 1, hi};
    for (BinOp op : kIntOps) {
      for (int64_t x : values) {
        for (int64_t y : values) {
          Expr e = constant_fold(binop(op, int_lit(x, sp(), false, w.elem), int_lit(y, sp(), false, w.elem), sp()));
          std::optional<int64_t> want = expected(op, x, y);
          if (!want) continue;  // left to the generated code, as for int64
          ASSERT_EQ(e->kind, ExprKind::Int) << x << " " << binop_name(op) << " " << y;
          uint64_t mask = (uint64_t(1) << w.bits) - 1, sign = uint64_t(1) << (w.bits - 1);
          uint64_t bits = static_cast<uint64_t>(*want) & mask;
          int64_t wrapped = static_cast<int64_t>(bits ^ sign) - static_cast<int64_t>(sign);
          EXPECT_EQ(e->ival, wrapped) << x << " " << binop_name(op) << " " << y;
          EXPECT_EQ(e->ty.elem, w.elem);
        }
      }
    }
  }
}

TEST(ConstantFoldLimits, ComparisonsAtTheLimits) {
  for (int64_t x : kValues) {
    for (int64_t y : kValues) {
      Expr lt = constant_fold(binop(BinOp::Lt, I(x), I(y), sp()));
      ASSERT_EQ(lt->kind, ExprKind::Bool);
      EXPECT_EQ(lt->bval, x < y);
      Expr ge = constant_fold(binop(BinOp::Ge, I(x), I(y), sp()));
      ASSERT_EQ(ge->kind, ExprKind::Bool);
      EXPECT_EQ(ge->bval, x >= y);
    }
  }
}

TEST(ConstantFoldLimits, NegationWraps) {
  for (int64_t x : kValues) {
    Expr e = constant_fold(unop(UnOp::Neg, I(x), sp()));
    ASSERT_EQ(e->kind, ExprKind::Int) << x;
    EXPECT_EQ(e->ival, wrap64(-i128(x))) << x;  // -INT64_MIN is INT64_MIN, as in numpy
  }
  Expr n8 = constant_fold(unop(UnOp::Neg, int_lit(-128, sp(), false, ElemSize::I8), sp()));
  ASSERT_EQ(n8->kind, ExprKind::Int);
  EXPECT_EQ(n8->ival, -128);
}

TEST(ConstantFoldLimits, FloatToIntConversionsFoldOnlyInRange) {
  for (double v : {9.1e18, -9.1e18, 4.5e18, -0.5, 0.99}) {
    Expr e = constant_fold(convert(F(v), Type::scalar(ElemSize::I64)));
    ASSERT_EQ(e->kind, ExprKind::Int) << v;
    EXPECT_EQ(e->ival, static_cast<int64_t>(v)) << v;
  }
  const double inf = std::numeric_limits<double>::infinity();
  for (double v : {9.2e18, -9.2e18, 9.3e18, 1e300, inf, -inf, std::nan("")}) {
    Expr e = constant_fold(convert(F(v), Type::scalar(ElemSize::I64)));
    EXPECT_EQ(e->kind, ExprKind::Convert) << v;
  }
}

TEST(ConstantFoldLimits, IntToFloat32RoundsOnce) {
  // 2**62 + 2**38 + 1 lies just above the midpoint of two float32 values: converted directly it
  // rounds up; rounded to float64 first it lands on the midpoint and then rounds to even, down.
  const int64_t v = (int64_t(1) << 62) + (int64_t(1) << 38) + 1;
  Expr e = constant_fold(convert(I(v), Type::scalar(ElemSize::F32)));
  ASSERT_EQ(e->kind, ExprKind::Float);
  volatile int64_t runtime = v;  // what the generated code's (float) cast computes
  EXPECT_EQ(e->fval, static_cast<double>(static_cast<float>(runtime)));
  EXPECT_EQ(e->fval, 4611686568183201792.0);  // 2**62 + 2**39
  for (int64_t x : kValues) {
    Expr f = constant_fold(convert(I(x), Type::scalar(ElemSize::F32)));
    ASSERT_EQ(f->kind, ExprKind::Float);
    EXPECT_EQ(f->fval, static_cast<double>(static_cast<float>(x))) << x;
    Expr d = constant_fold(convert(I(x), Type::scalar(ElemSize::F64)));
    ASSERT_EQ(d->kind, ExprKind::Float);
    EXPECT_EQ(d->fval, static_cast<double>(x)) << x;
  }
}

TEST(ConstantFoldLimits, FloatMaxMinPropagateNaN) {
  const double nan = std::nan("");
  for (BinOp op : {BinOp::Max, BinOp::Min}) {
    for (auto [x, y] : {std::pair{nan, 1.0}, std::pair{1.0, nan}, std::pair{nan, nan}}) {
      Expr e = constant_fold(binop(op, F(x), F(y), sp()));
      ASSERT_EQ(e->kind, ExprKind::Float);
      EXPECT_TRUE(std::isnan(e->fval)) << binop_name(op) << "(" << x << ", " << y << ")";
    }
  }
  Expr hi = constant_fold(binop(BinOp::Max, F(-0.5), F(2.0), sp()));
  ASSERT_EQ(hi->kind, ExprKind::Float);
  EXPECT_EQ(hi->fval, 2.0);
  Expr lo = constant_fold(binop(BinOp::Min, F(-0.5), F(2.0), sp()));
  ASSERT_EQ(lo->kind, ExprKind::Float);
  EXPECT_EQ(lo->fval, -0.5);
}

}  // namespace
}  // namespace parpy
