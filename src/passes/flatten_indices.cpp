#include "passes/flatten_indices.h"

namespace parpy {

static Expr flatten(const Expr& e) {
  return map_expr(e, [](const Expr& x) -> Expr {
    if (x->kind != ExprKind::Subscript) return x;
    const Expr& t = x->args[0];
    if (t->kind != ExprKind::Var)
      fail("Subscript operation on unsupported target " + print_expr(t), x->span);
    if (!x->ty.is_scalar())
      fail("Indexing a tensor of shape with " + std::to_string(x->args.size() - 1) +
               " indices yields a sub-tensor, which is only supported in slice statements",
           x->span);
    const auto& shape = t->ty.shape;
    ElemSize isz = x->args[1]->ty.elem;
    Expr flat;
    for (size_t k = 0; k < shape.size(); ++k) {
      Expr ix = x->args[k + 1];
      if (flat) {
        Expr scaled = binop(BinOp::Mul, flat, int_lit(shape[k], x->span, false, isz), x->span,
                            Type::scalar(isz));
        flat = binop(BinOp::Add, scaled, ix, x->span, Type::scalar(isz));
      } else {
        flat = ix;
      }
    }
    return access(t->name, flat, x->ty.elem, x->span);
  });
}

Block flatten_indices(const Block& b) { return map_block_exprs(b, flatten); }

}  // namespace parpy
