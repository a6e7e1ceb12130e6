#include "passes/array_reductions.h"

#include <vector>

#include "ir/reductions.h"

namespace parpy {
namespace {

Expr strip_convert(const Expr& e) { return e->kind == ExprKind::Convert ? strip_convert(e->args[0]) : e; }

// Whether `st` updates an array element with a reduction operator, `a[k] = a[k] op v` or
// `a[k] = v op a[k]`, where v does not read a.
bool element_update(const Stmt& st) {
  if (st->kind != StmtKind::Assign || st->defines || st->lhs->kind != ExprKind::Access) return false;
  Expr rhs = strip_convert(st->rhs);
  if (rhs->kind != ExprKind::BinOp || !reduce_op_of(rhs->binop)) return false;
  std::string target = print_expr(st->lhs);
  const std::string& a = st->lhs->name;
  Expr l = strip_convert(rhs->args[0]), r = strip_convert(rhs->args[1]);
  if (print_expr(l) == target) return !mentions(rhs->args[1], a);
  if (print_expr(r) == target) return !mentions(rhs->args[0], a);
  return false;
}

// The reduce() loop `r` rewritten, or null.
Stmt lifted(const Stmt& r) {
  std::vector<Stmt> chain;  // the loops over the slice's elements, outermost first
  const Stmt* cur = &r;
  while ((*cur)->body.size() == 1 && (*cur)->body[0]->kind == StmtKind::For) {
    cur = &(*cur)->body[0];
    chain.push_back(*cur);
  }
  if (chain.empty() || (*cur)->body.size() != 1) return nullptr;
  const Stmt& st = (*cur)->body[0];
  if (!element_update(st) || mentions(st->lhs->args[0], r->var)) return nullptr;
  for (const auto& d : chain) {
    if (d->par.reduction || mentions(d->lo, r->var) || mentions(d->hi, r->var)) return nullptr;
    if (!mentions(st->lhs->args[0], d->var)) return nullptr;
  }
  auto rows = copy(r);
  rows->par = LoopPar{};
  rows->body = {st};
  Stmt inner = rows;
  for (size_t k = chain.size(); k-- > 0;) {
    auto d = copy(chain[k]);
    d->body = {inner};
    if (k == 0 && !d->par.is_parallel()) d->par = LoopPar{r->par.nthreads, false, r->par.tpb};
    inner = d;
  }
  return inner;
}

}  // namespace

Block lift_array_reductions(const Block& b) {
  return map_block(b, [](const Stmt& s) -> Block {
    if (s->kind == StmtKind::For && s->par.reduction)
      if (Stmt t = lifted(s)) return {t};
    return {s};
  });
}

}  // namespace parpy
