// Index arithmetic built by the GPU passes: 64-bit integer variables, literals and operations.
#pragma once
#include <string>

#include "ir/ir.h"

namespace parpy::gpu {

inline const Type kI64 = Type::scalar(ElemSize::I64);
inline const Type kBool = Type::scalar(ElemSize::Bool);

inline Expr ivar(const std::string& n) { return var(n, {}, kI64); }
inline Expr ilit(int64_t v) { return int_lit(v, {}, false, ElemSize::I64); }
// Comparisons and `and` are booleans, everything else a 64-bit integer.
inline Expr iop(BinOp op, Expr a, Expr b) {
  return binop(op, std::move(a), std::move(b), {}, is_comparison(op) || op == BinOp::And ? kBool : kI64);
}
inline Expr iadd(Expr a, Expr b) { return iop(BinOp::Add, std::move(a), std::move(b)); }

}  // namespace parpy::gpu
