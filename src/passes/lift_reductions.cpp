#include "passes/lift_reductions.h"

#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/reductions.h"

namespace parpy {
namespace {

bool contains_reduce(const Expr& e) {
  bool found = false;
  if (e)
    visit_expr(e, [&](const Expr& x) {
      if (x->kind == ExprKind::Reduce) found = true;
    });
  return found;
}

// Whether e has a slice that is not inside a reduction.
bool has_own_slice(const Expr& e) {
  if (!e || e->kind == ExprKind::Reduce) return false;
  if (e->kind == ExprKind::Slice) return true;
  for (const auto& a : e->args)
    if (has_own_slice(a)) return true;
  return false;
}

class Lifter {
 public:
  Block block(const Block& b) {
    Block out;
    for (const auto& s : b) stmt(s, out);
    return out;
  }

 private:
  // Fresh locals, counted afresh for every function: the same program always gets the same names.
  int next_ = 0;

  // e with each reduction in it replaced by a fresh local (innermost first), whose assignment is
  // appended to `pre` with `labels`.
  Expr lift(const Expr& e, Block& pre, const std::vector<std::string>& labels) {
    if (!e || !contains_reduce(e)) return e;
    std::vector<Expr> args;
    for (const auto& a : e->args) args.push_back(lift(a, pre, labels));
    Expr n = with_args(e, std::move(args));
    if (n->kind != ExprKind::Reduce) return n;
    if (n->has_axis)
      fail(std::string("The reduction ") + reduce_name(n->reduce) +
               " along one axis gives an array, so it must be the whole right-hand side of an assignment "
               "to a slice. Assign it to an array of its own first (t[:] = " + reduce_name(n->reduce) +
               "(x[:, :], axis=0)) and use that array here.",
           n->span);
    std::string name = "$red" + std::to_string(next_++);
    pre.push_back(assign(var(name, n->span), n, n->span, labels));
    return var(name, n->span);
  }

  void stmt(const Stmt& s, Block& out) {
    Block pre;
    auto n = with_blocks(s, [&](const Block& x) { return block(x); });
    switch (s->kind) {
      case StmtKind::Assign: {
        // `s = sum(...)` is a reduction statement already: only what its argument holds is lifted.
        bool top = s->rhs->kind == ExprKind::Reduce;
        const Expr& value = top ? s->rhs->args[0] : s->rhs;
        if (!contains_reduce(s->lhs) && !contains_reduce(value)) break;
        bool own_slices = has_own_slice(s->lhs) || has_own_slice(value);
        std::vector<std::string> labels = own_slices ? std::vector<std::string>{} : s->labels;
        n->lhs = lift(s->lhs, pre, labels);
        n->rhs = top ? with_args(s->rhs, {lift(value, pre, labels)}) : lift(s->rhs, pre, labels);
        if (!own_slices && !top) n->labels.clear();
        break;
      }
      case StmtKind::If: n->cond = lift(s->cond, pre, {}); break;
      case StmtKind::For:
        n->lo = lift(s->lo, pre, {});
        n->hi = lift(s->hi, pre, {});
        break;
      case StmtKind::Return:
      case StmtKind::Call: n->rhs = lift(s->rhs, pre, {}); break;
      default: break;
    }
    if (pre.empty()) {
      out.push_back(n);
    } else if (s->kind == StmtKind::Assign) {
      // Like `s = sum(...)`, which lower_slices puts in a gpu block, the statement and its lifted
      // reductions run together in GPU code (a gpu block is no block at all inside parallel code,
      // and on the Cpu).
      pre.push_back(n);
      out.push_back(with_gpu(pre, s->span));
    } else {
      out.insert(out.end(), pre.begin(), pre.end());
      out.push_back(n);
    }
  }
};

}  // namespace

Block lift_reductions(const Block& b) { return Lifter().block(b); }

}  // namespace parpy
