#include "passes/column_loops.h"

#include <cstdlib>
#include <map>

#include "ir/affine.h"

namespace parpy {

bool plain_store(const Stmt& s) {
  if (s->kind != StmtKind::Assign || s->defines || s->atomic || s->lhs->kind != ExprKind::Access) return false;
  bool ok = true;
  auto check = [&](const Expr& x) {
    if (x->kind == ExprKind::Call) ok = false;
  };
  visit_expr(s->lhs, check);
  visit_expr(s->rhs, check);
  return ok;
}

// The coefficients of loop variables `j` and `i` in an index, if it is affine in them.
std::optional<std::pair<int64_t, int64_t>> loop_strides(const Expr& index, const std::string& j, const std::string& i) {
  auto leaf = [](const Expr& e) -> std::optional<Affine> {
    return affine_atom(e->kind == ExprKind::Var ? e->name : "$" + print_expr(e));
  };
  auto a = affine(index, leaf);
  if (!a) return std::nullopt;
  return std::make_pair(a->coef(j), a->coef(i));
}

// Whether running the iterations of `rows` (sequential, over i) column by column keeps every
// dependence of `par` (parallel, over j, inside it) in order: each array the body writes is
// accessed at one index, which names one column (a*j + b*i + c with a != 0 and |b| at least a
// row's length, or no i), so no two columns touch the same element.
bool columns_independent(const Stmt& rows, const Stmt& par) {
  if (par->lo->kind != ExprKind::Int || par->hi->kind != ExprKind::Int) return false;
  int64_t width = par->hi->ival - par->lo->ival;
  std::map<std::string, std::string> index_of;  // written array -> its one index
  for (const auto& s : par->body) index_of[s->lhs->name] = print_expr(s->lhs->args[0]);
  bool ok = true;
  for (const auto& s : par->body)
    for (const Expr& root : {s->lhs, s->rhs})
      visit_expr(root, [&](const Expr& x) {
        if (x->kind != ExprKind::Access || !index_of.count(x->name)) return;
        if (print_expr(x->args[0]) != index_of[x->name]) ok = false;
      });
  if (!ok) return false;
  for (const auto& [name, index] : index_of) {
    (void)index;
    for (const auto& s : par->body) {
      if (s->lhs->name != name) continue;
      auto st = loop_strides(s->lhs->args[0], par->var, rows->var);
      if (!st || st->first == 0) return false;
      auto [a, b] = *st;
      __int128 reach = static_cast<__int128>(std::llabs(a)) * width;
      if (b != 0 && static_cast<__int128>(std::llabs(b)) < reach) return false;
      break;
    }
  }
  return true;
}

std::optional<Stmt> interchange_rows(const Stmt& rows) {
  if (rows->kind != StmtKind::For || rows->par.is_parallel() || rows->par.reduction || rows->body.size() != 1)
    return std::nullopt;
  const Stmt& par = rows->body[0];
  if (par->kind != StmtKind::For || par->par.nthreads <= 1 || par->par.reduction || par->step != 1)
    return std::nullopt;
  if (mentions(par->lo, rows->var) || mentions(par->hi, rows->var)) return std::nullopt;
  for (const auto& x : par->body)
    if (!plain_store(x)) return std::nullopt;
  if (!columns_independent(rows, par)) return std::nullopt;
  auto inner = copy(rows);
  inner->body = par->body;
  auto outer = copy(par);
  outer->body = {inner};
  return Stmt(outer);
}

}  // namespace parpy
