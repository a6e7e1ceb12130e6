#include "ir/reductions.h"

#include <climits>
#include <cmath>
#include <cstdint>

namespace parpy {
namespace {

struct Reduction {
  ReduceOp op;
  BinOp combine;
  const char* name;          // as the user writes it (parpy.operators.sum)
  const char* combine_name;  // of the combining operator, in generated intrinsics
};

constexpr Reduction kReductions[] = {
    {ReduceOp::Sum, BinOp::Add, "sum", "add"},
    {ReduceOp::Prod, BinOp::Mul, "prod", "mul"},
    {ReduceOp::Max, BinOp::Max, "max", "max"},
    {ReduceOp::Min, BinOp::Min, "min", "min"},
};

const Reduction& entry(ReduceOp op) {
  for (const auto& r : kReductions)
    if (r.op == op) return r;
  return kReductions[0];
}

}  // namespace

BinOp combine_op(ReduceOp op) { return entry(op).combine; }

std::optional<ReduceOp> reduce_op_of(BinOp op) {
  for (const auto& r : kReductions)
    if (r.combine == op) return r.op;
  return std::nullopt;
}

const char* reduce_name(ReduceOp op) { return entry(op).name; }

const char* combine_name(ReduceOp op) { return entry(op).combine_name; }

Expr neutral_literal(ReduceOp op, ElemSize t, const Span& sp) {
  switch (op) {
    case ReduceOp::Sum: return is_float(t) ? float_lit(0.0, sp, false, t) : int_lit(0, sp, false, t);
    case ReduceOp::Prod: return is_float(t) ? float_lit(1.0, sp, false, t) : int_lit(1, sp, false, t);
    case ReduceOp::Max: case ReduceOp::Min: break;
  }
  bool mx = op == ReduceOp::Max;
  if (is_float(t)) return float_lit(mx ? -HUGE_VAL : HUGE_VAL, sp, false, t);
  // Integer max/min start from the type's minimum/maximum.
  int64_t lo = 0, hi = 0;
  switch (t) {
    case ElemSize::I8: lo = INT8_MIN; hi = INT8_MAX; break;
    case ElemSize::I16: lo = INT16_MIN; hi = INT16_MAX; break;
    case ElemSize::I32: lo = INT32_MIN; hi = INT32_MAX; break;
    case ElemSize::I64: lo = INT64_MIN; hi = INT64_MAX; break;
    case ElemSize::U8: hi = UINT8_MAX; break;
    case ElemSize::U16: hi = UINT16_MAX; break;
    case ElemSize::U32: hi = UINT32_MAX; break;
    case ElemSize::U64: hi = -1; break;  // all ones: printed as the unsigned maximum
    default: break;
  }
  return int_lit(mx ? lo : hi, sp, false, t);
}

}  // namespace parpy
