#include "passes/check_reductions.h"

#include "ir/reductions.h"

namespace parpy {

static Expr strip_convert(const Expr& e) {
  return e->kind == ExprKind::Convert ? strip_convert(e->args[0]) : e;
}

static Stmt check_loop(const Stmt& s) {
  if (s->body.size() != 1) fail("Reduction for-loop must contain a single statement.", s->span);
  const Stmt& st = s->body[0];
  if (st->kind != StmtKind::Assign) fail("Reduction for-loop statement must be an assignment.", st->span);
  Expr rhs = strip_convert(st->rhs);
  if (rhs->kind != ExprKind::BinOp) fail("RHS of reduction statement should be a binary operation.", st->span);
  BinOp op = rhs->binop;
  const Expr& lhs = st->lhs;
  if (lhs->kind != ExprKind::Var && lhs->kind != ExprKind::Access)
    fail("Left-hand side of reduction must be a variable or tensor access.", st->span);
  std::string target = print_expr(lhs);
  Expr left = strip_convert(rhs->args[0]), right = strip_convert(rhs->args[1]);
  bool commutative = reduce_op_of(op).has_value();
  Expr value = rhs->args[1];
  if (print_expr(left) != target) {
    if (commutative && print_expr(right) == target)
      value = rhs->args[0];
    else
      fail("Invalid reduction. Left-hand side of binary operation " + print_expr(left) +
               " is not equal to the assignment target " + target + ".",
           st->span);
  }
  if (!commutative) fail(std::string("Parallel reductions not supported for operator ") + binop_name(op) + ".", st->span);
  if (!lhs->ty.is_scalar())
    fail("Expected the result of reduction to be a scalar value, found " + lhs->ty.str(), st->span);
  auto body = copy(st);
  // Canonical form: dst = dst op value.
  body->rhs = binop(op, lhs, value, rhs->span, lhs->ty);
  if (value->ty.is_scalar() && value->ty.elem != lhs->ty.elem)
    body->rhs = binop(op, lhs, convert(value, lhs->ty), rhs->span, lhs->ty);
  auto n = copy(s);
  n->body = {body};
  n->red_op = op;
  return n;
}

Block check_reductions(const Block& b) {
  return map_block(b, [](const Stmt& s) -> Block {
    if (s->kind == StmtKind::For && s->par.reduction) return {check_loop(s)};
    return {s};
  });
}

}  // namespace parpy
