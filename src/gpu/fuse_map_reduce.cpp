#include "gpu/fuse_map_reduce.h"

#include "passes/array_locals.h"

namespace parpy {
namespace {

// A local or an array element that is neither the map's array nor read by the map.
bool independent_target(const Expr& lhs, const Stmt& store) {
  if (lhs->kind != ExprKind::Var && lhs->kind != ExprKind::Access) return false;
  return lhs->name != store->lhs->name && !mentions(store->rhs, lhs->name) &&
         !mentions(store->lhs, lhs->name);
}

bool has_access(const Expr& e) {
  bool found = false;
  visit_expr(e, [&](const Expr& x) { found = found || x->kind == ExprKind::Access; });
  return found;
}

// A parallel, non-reducing loop whose body is one store `a[f(j)] = e` (not an atomic update: the
// value it leaves is not e).
bool is_map(const Stmt& s) {
  if (s->kind != StmtKind::For || !s->par.is_parallel() || s->par.reduction || s->body.size() != 1)
    return false;
  const Stmt& st = s->body[0];
  return st->kind == StmtKind::Assign && st->lhs->kind == ExprKind::Access && !st->atomic;
}

// Tries to fuse the map loop `a` with the statements of `next` (a gpu block `{init...; reduce}`
// or the reduce loop itself). Returns the replacement statements, or nothing.
std::optional<Block> fuse(const Stmt& a, const Stmt& next, const std::set<std::string>& aliased) {
  Block inits;
  Stmt red = next;
  if (next->kind == StmtKind::WithGpu) {
    if (next->body.empty()) return std::nullopt;
    inits.assign(next->body.begin(), next->body.end() - 1);
    red = next->body.back();
  }
  if (red->kind != StmtKind::For || !red->par.reduction || red->body.size() != 1) return std::nullopt;
  // The same iterations on the same workers: the reduction inherits the inner layer's threads
  // (no threads of its own) or asks for exactly the map's.
  bool same_workers = !red->par.is_parallel() ||
                      (red->par.nthreads == a->par.nthreads && red->par.tpb == a->par.tpb);
  if (!same_workers || red->step != a->step || print_expr(red->lo) != print_expr(a->lo) ||
      print_expr(red->hi) != print_expr(a->hi))
    return std::nullopt;
  const Stmt& store = a->body[0];
  const Stmt& acc = red->body[0];
  // A callee given an array may read or write any of it: keep the loops apart.
  if (refers_to_arrays(store->rhs) || refers_to_arrays(acc->rhs)) return std::nullopt;
  const std::string& target = store->lhs->name;
  // Another name for the target's memory would be read before the map wrote it.
  bool may_alias = aliased.count(target) > 0;
  visit_expr(acc->rhs, [&](const Expr& x) {
    may_alias = may_alias || (x->kind == ExprKind::Access && aliased.count(x->name));
  });
  if (may_alias) return std::nullopt;
  std::string index = print_expr(store->lhs->args[0]);
  // The statements between the loops initialise the accumulator: moving them before the map
  // must not change what the map computes.
  for (const auto& s : inits) {
    if (s->kind != StmtKind::Assign || !independent_target(s->lhs, store) || has_access(s->rhs) ||
        mentions(s->rhs, red->var) || mentions(s->rhs, a->var))
      return std::nullopt;
  }
  if (!independent_target(acc->lhs, store)) return std::nullopt;
  // The reduced value, in terms of the map's loop variable, with the stored element forwarded.
  std::string tmp = "$fused_" + target + "_" + a->var;
  Expr tv = var(tmp, store->span, store->lhs->ty);
  bool other_access = false;
  Expr value = map_expr(acc->rhs->args[1], [&](const Expr& x) -> Expr {
    if (x->kind == ExprKind::Var && x->name == red->var) return var(a->var, x->span, x->ty);
    return x;
  });
  value = map_expr(value, [&](const Expr& x) -> Expr {
    if (x->kind != ExprKind::Access || x->name != target) return x;
    if (print_expr(x->args[0]) != index) other_access = true;
    return tv;
  });
  if (other_access) return std::nullopt;
  Expr rhs = store->rhs;
  if (!(rhs->ty == store->lhs->ty)) rhs = convert(rhs, store->lhs->ty);
  auto def = copy(assign(tv, rhs, store->span));
  def->defines = true;
  auto st = copy(store);
  st->rhs = tv;
  auto upd = copy(acc);
  upd->rhs = with_args(acc->rhs, {acc->rhs->args[0], value});
  auto loop = copy(a);
  loop->par.reduction = true;
  loop->red_op = red->red_op;
  loop->body = {def, st, upd};
  // Keep the gpu block: the initialisation and its reduction stay one statement.
  Block out = inits;
  out.push_back(loop);
  if (next->kind == StmtKind::WithGpu) return Block{with_gpu(out, next->span)};
  return out;
}

Block fuse_block(const Block& b, bool in_parallel, const std::set<std::string>& aliased) {
  Block out;
  for (size_t i = 0; i < b.size(); ++i) {
    const Stmt& s = b[i];
    if (in_parallel && i + 1 < b.size() && is_map(s)) {
      if (auto fused = fuse(s, b[i + 1], aliased)) {
        out.insert(out.end(), fused->begin(), fused->end());
        ++i;
        continue;
      }
    }
    auto n = copy(s);
    bool par = in_parallel || (s->kind == StmtKind::For && s->par.is_parallel()) || s->kind == StmtKind::WithGpu;
    n->body = fuse_block(s->body, par, aliased);
    n->orelse = fuse_block(s->orelse, in_parallel, aliased);
    out.push_back(n);
  }
  return out;
}

}  // namespace

Block fuse_map_reduce(const Block& b) { return fuse_block(b, false, aliased_names(array_aliases(b))); }

}  // namespace parpy
