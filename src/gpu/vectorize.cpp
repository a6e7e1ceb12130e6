#include "gpu/vectorize.h"

#include <functional>
#include <set>

#include "gpu/index_expr.h"

namespace parpy {
namespace {

using gpu::iadd;
using gpu::ilit;
using gpu::iop;
using gpu::ivar;

bool mentions_any(const Expr& e, const std::set<std::string>& names) {
  bool found = false;
  visit_expr(e, [&](const Expr& x) { found = found || (x->kind == ExprKind::Var && names.count(x->name)); });
  return found;
}

// Whether e is a multiple of m for every value of its variables.
bool multiple_of(const Expr& e, int64_t m) {
  switch (e->kind) {
    case ExprKind::Int: return e->ival % m == 0;
    case ExprKind::Convert: return multiple_of(e->args[0], m);
    case ExprKind::BinOp:
      if (e->binop == BinOp::Mul) return multiple_of(e->args[0], m) || multiple_of(e->args[1], m);
      if (e->binop == BinOp::Add || e->binop == BinOp::Sub)
        return multiple_of(e->args[0], m) && multiple_of(e->args[1], m);
      return false;
    default: return false;
  }
}

class LoopVectorizer {
 public:
  LoopVectorizer(const Stmt& loop, const std::string& worker, int64_t workers,
                 const std::set<std::string>& aliased, int& counter)
      : s_(loop), worker_(worker), workers_(workers), aliased_(aliased), counter_(counter) {}

  // The vector loop and the remainder loop, or nothing when the loop does not qualify.
  std::optional<Block> run(std::map<std::string, int64_t>& alignment) {
    if (!match_header() || !scan_body()) return std::nullopt;
    int64_t count = 0;  // bounds too far apart for an int64 count stay scalar
    if (__builtin_sub_overflow(s_->hi->ival, lo_, &count)) return std::nullopt;
    int64_t groups = count / lanes_;
    if (groups <= 0 || lo_ % lanes_ != 0) return std::nullopt;
    for (const auto& [name, bytes] : widths_) {
      for (const auto& base : bases_[name])
        if (!multiple_of(base, lanes_)) return std::nullopt;
      int64_t need = bytes * lanes_;
      alignment[name] = std::max(alignment[name], need);
    }
    Block body;
    std::vector<std::map<std::string, Expr>> loaded(static_cast<size_t>(lanes_));
    for (int64_t u = 0; u < lanes_; ++u) hoist_loads(u, body, loaded[static_cast<size_t>(u)]);
    for (int64_t u = 0; u < lanes_; ++u) lane(u, body, loaded[static_cast<size_t>(u)]);
    Block out;
    auto vec = copy(for_loop(s_->var, iadd(ilit(lo_), iop(BinOp::Mul, ilit(lanes_), ivar(worker_))),
                             ilit(lo_ + lanes_ * groups), lanes_ * workers_, body, s_->span));
    out.push_back(vec);
    if (count % lanes_ != 0) {
      auto rest = copy(s_);
      rest->lo = iadd(ilit(lo_ + lanes_ * groups), ivar(worker_));
      out.push_back(rest);
    }
    return out;
  }

 private:
  const Stmt& s_;
  const std::string& worker_;
  int64_t workers_;
  const std::set<std::string>& aliased_;
  int64_t lo_ = 0, lanes_ = 1;
  std::set<std::string> locals_;                     // defined in the body
  std::map<std::string, int64_t> widths_;            // arrays indexed by the loop variable
  std::map<std::string, std::vector<Expr>> bases_;   // their index minus the loop variable

  bool match_header() {
    const Expr& lo = s_->lo;
    if (s_->step != workers_ || s_->hi->kind != ExprKind::Int || lo->kind != ExprKind::BinOp ||
        lo->binop != BinOp::Add || lo->args[0]->kind != ExprKind::Int || lo->args[1]->kind != ExprKind::Var ||
        lo->args[1]->name != worker_)
      return false;
    lo_ = lo->args[0]->ival;
    return true;
  }

  // `base + j`, `j + base` or `j`: the base, or nothing.
  std::optional<Expr> base_of(const Expr& idx) const {
    if (idx->kind == ExprKind::Var && idx->name == s_->var) return ilit(0);
    if (idx->kind != ExprKind::BinOp || idx->binop != BinOp::Add) return std::nullopt;
    for (int k = 0; k < 2; ++k) {
      const Expr& v = idx->args[static_cast<size_t>(k)];
      const Expr& base = idx->args[static_cast<size_t>(1 - k)];
      if (v->kind == ExprKind::Var && v->name == s_->var && !mentions(base, s_->var)) return base;
    }
    return std::nullopt;
  }

  // Straight-line assignments; every array access is loop-invariant or `base + j`; no array is
  // read after the same iteration wrote it (loads move to the front of the group).
  bool scan_body() {
    std::set<std::string> written;
    int64_t widest = 0;
    auto check_access = [&](const Expr& a) {
      const Expr& idx = a->args[0];
      // Moving loads before stores is only valid when no other name may refer to the array.
      if (aliased_.count(a->name) || mentions_any(idx, locals_)) return false;
      if (!mentions(idx, s_->var)) return true;
      auto base = base_of(idx);
      if (!base) return false;
      widths_[a->name] = elem_bytes(a->ty.elem);
      bases_[a->name].push_back(*base);
      widest = std::max<int64_t>(widest, elem_bytes(a->ty.elem));
      return true;
    };
    for (const auto& st : s_->body) {
      if (st->kind != StmtKind::Assign || st->atomic || refers_to_arrays(st->rhs)) return false;
      bool ok = true;
      visit_expr(st->rhs, [&](const Expr& x) {
        if (x->kind == ExprKind::Access) ok = ok && !written.count(x->name) && check_access(x);
      });
      if (st->lhs->kind == ExprKind::Access) {
        ok = ok && check_access(st->lhs);
        written.insert(st->lhs->name);
      } else if (st->defines) {
        locals_.insert(st->lhs->name);
      }
      if (!ok) return false;
    }
    if (widest == 0 || widest > 8) return false;
    lanes_ = 16 / widest;
    return true;
  }

  Expr at_lane(const Expr& e, int64_t u) const {
    return map_expr(e, [&](const Expr& x) -> Expr {
      if (x->kind == ExprKind::Var && x->name == s_->var) return u == 0 ? x : iadd(x, ilit(u));
      return x;
    });
  }

  // Lane u's loads, in order, into locals; `loaded` maps the printed access to its local.
  void hoist_loads(int64_t u, Block& out, std::map<std::string, Expr>& loaded) {
    for (const auto& st : s_->body)
      visit_expr(st->rhs, [&](const Expr& x) {
        if (!x || x->kind != ExprKind::Access) return;
        Expr a = at_lane(x, u);
        std::string key = print_expr(a);
        if (loaded.count(key)) return;
        Expr v = var("$vl" + std::to_string(counter_++), x->span, Type::scalar(x->ty.elem));
        auto def = copy(assign(v, a, x->span));
        def->defines = true;
        out.push_back(def);
        loaded[key] = v;
      });
  }

  // Lane u's statements: j is j + u, its locals are renamed, its reads come from the loads.
  void lane(int64_t u, Block& out, const std::map<std::string, Expr>& loaded) {
    std::map<std::string, std::string> renamed;
    auto rewrite = [&](const Expr& e) {
      return map_expr(at_lane(e, u), [&](const Expr& x) -> Expr {
        if (x->kind == ExprKind::Var && renamed.count(x->name)) return var(renamed.at(x->name), x->span, x->ty);
        if (x->kind == ExprKind::Access) {
          auto it = loaded.find(print_expr(x));
          if (it != loaded.end()) return it->second;
        }
        return x;
      });
    };
    for (const auto& st : s_->body) {
      auto n = copy(st);
      n->rhs = rewrite(st->rhs);
      if (st->lhs->kind == ExprKind::Access) {
        n->lhs = with_args(st->lhs, {rewrite(st->lhs->args[0])});
      } else if (st->defines) {
        const std::string& name = st->lhs->name;
        // A user's `a` becomes `$a_v1`, a compiler temporary `$a` becomes `$$a_v1`: never the same.
        renamed[name] = "$" + name + "_v" + std::to_string(u);
        n->lhs = var(renamed[name], st->lhs->span, st->lhs->ty);
      } else {
        n->lhs = rewrite(st->lhs);
      }
      out.push_back(n);
    }
  }

  int& counter_;  // numbers the loads' locals within one kernel
};

Block rewrite(const Block& b, const std::string& worker, int64_t workers,
              const std::set<std::string>& aliased, std::map<std::string, int64_t>& alignment, bool& changed,
              int& counter) {
  Block out;
  for (const auto& s : b) {
    if (s->kind == StmtKind::For) {
      if (auto v = LoopVectorizer(s, worker, workers, aliased, counter).run(alignment)) {
        out.insert(out.end(), v->begin(), v->end());
        changed = true;
        continue;
      }
    }
    auto n = with_blocks(
        s, [&](const Block& x) { return rewrite(x, worker, workers, aliased, alignment, changed, counter); });
    out.push_back(n);
  }
  return out;
}

}  // namespace

Vectorized vectorize_inner_loops(const Block& body, const std::string& worker, int64_t workers,
                                 const std::set<std::string>& aliased) {
  Vectorized v;
  bool changed = false;
  int counter = 0;
  Block b = rewrite(body, worker, workers, aliased, v.alignment, changed, counter);
  if (changed) v.body = std::move(b);
  return v;
}

void vectorize_kernels(GpuProgram& prog) {
  for (auto& k : prog.kernels) {
    Vectorized vec = vectorize_inner_loops(k.body, k.inner_worker, k.inner_workers, prog.aliased);
    k.vector_body = std::move(vec.body);
    k.alignment = std::move(vec.alignment);
  }
}

}  // namespace parpy
