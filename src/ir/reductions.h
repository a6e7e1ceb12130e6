// The reductions (docs/language.md, Reductions): each one's combining operator, neutral element
// and name, in one table for the passes and the GPU layer.
#pragma once
#include <optional>

#include "ir/ir.h"

namespace parpy {

// The binary operator that combines two partial results (Sum: Add, Prod: Mul, Max, Min).
BinOp combine_op(ReduceOp op);

// The reduction an update `acc = acc op value` performs, if op is one.
std::optional<ReduceOp> reduce_op_of(BinOp op);

// The neutral element of op for element type t: 0, 1, or for max/min -inf/inf on floats and the
// type's minimum/maximum on integers.
Expr neutral_literal(ReduceOp op, ElemSize t, const Span& span);

// The name of op's combining operator in generated intrinsics: "add", "mul", "max", "min" (its
// own name, "sum", ..., is reduce_name in ir.h).
const char* combine_name(ReduceOp op);

}  // namespace parpy
