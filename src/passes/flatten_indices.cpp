#include "passes/flatten_indices.h"

namespace parpy {

// Only a call argument may be a row (x[i] of a 2-D x): it is passed as the row's address.
static void reject_rows(const Expr& e, bool call_arg) {
  if (!e) return;
  if (e->kind == ExprKind::Access && !e->ty.is_scalar() && !call_arg)
    fail("Indexing a tensor with fewer indices than dimensions yields a sub-tensor, which is only "
         "supported in slice statements and as an argument of a function call",
         e->span);
  for (const auto& a : e->args) reject_rows(a, e->kind == ExprKind::Call);
}

static Expr flatten(const Expr& e) {
  Expr out = map_expr(e, [](const Expr& x) -> Expr {
    if (x->kind != ExprKind::Subscript) return x;
    const Expr& t = x->args[0];
    if (t->kind != ExprKind::Var)
      fail("Subscript operation on unsupported target " + print_expr(t), x->span);
    // A helper's pointer parameter takes its one index as it is.
    if (t->ty.is_pointer()) return access(t->name, x->args[1], x->ty.elem, x->span);
    const auto& shape = t->ty.shape;
    ElemSize isz = x->args[1]->ty.elem;
    size_t n = x->args.size() - 1;
    Expr flat;
    // Row-major: indices beyond the given ones are 0 (a row starts there).
    for (size_t k = 0; k < shape.size(); ++k) {
      Expr ix = k < n ? x->args[k + 1] : int_lit(0, x->span, false, isz);
      if (flat) {
        Expr scaled = binop(BinOp::Mul, flat, int_lit(shape[k], x->span, false, isz), x->span,
                            Type::scalar(isz));
        flat = k < n ? binop(BinOp::Add, scaled, ix, x->span, Type::scalar(isz)) : scaled;
      } else {
        flat = ix;
      }
    }
    auto a = copy(access(t->name, flat, x->ty.elem, x->span));
    a->ty = x->ty;  // non-scalar: the address of a row
    return a;
  });
  reject_rows(out, false);
  return out;
}

Block flatten_indices(const Block& b) { return map_block_exprs(b, flatten); }

}  // namespace parpy
