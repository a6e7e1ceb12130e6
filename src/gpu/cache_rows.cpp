#include "gpu/cache_rows.h"

#include <map>
#include <optional>
#include <set>

#include "gpu/index_expr.h"

namespace parpy {
namespace {

using gpu::iadd;
using gpu::ilit;

// At most this many iterations per thread are unrolled, and this many elements per array kept.
constexpr int64_t kMaxTrips = 8;
constexpr int64_t kMaxValues = 32;

// The shape of a candidate loop: start L + c*w, bound H, step c*workers, trips per thread.
struct RowLoop {
  int64_t lo = 0, lanes = 1, hi = 0, trips = 0;
  std::string signature() const {
    return std::to_string(lo) + ":" + std::to_string(lanes) + ":" + std::to_string(hi);
  }
};

std::optional<RowLoop> row_loop(const Stmt& s, const std::string& worker, int64_t workers) {
  if (s->kind != StmtKind::For || s->hi->kind != ExprKind::Int) return std::nullopt;
  const Expr& lo = s->lo;
  if (lo->kind != ExprKind::BinOp || lo->binop != BinOp::Add || lo->args[0]->kind != ExprKind::Int) return std::nullopt;
  RowLoop r;
  r.lo = lo->args[0]->ival;
  r.hi = s->hi->ival;
  const Expr& w = lo->args[1];
  if (w->kind == ExprKind::Var && w->name == worker) {
    r.lanes = 1;
  } else if (w->kind == ExprKind::BinOp && w->binop == BinOp::Mul && w->args[0]->kind == ExprKind::Int &&
             w->args[1]->kind == ExprKind::Var && w->args[1]->name == worker) {
    r.lanes = w->args[0]->ival;
  } else {
    return std::nullopt;
  }
  if (r.lanes < 1 || r.lo < 0 || s->step != r.lanes * workers || r.hi <= r.lo || (r.hi - r.lo) % s->step != 0) return std::nullopt;
  r.trips = (r.hi - r.lo) / s->step;
  if (r.trips > kMaxTrips || r.trips * r.lanes > kMaxValues) return std::nullopt;
  for (const auto& st : s->body)
    if (st->kind != StmtKind::Assign || st->atomic || refers_to_arrays(st->rhs)) return std::nullopt;
  return r;
}

// `base + j` or `base + (j + u)` with u < lanes, where base = row * K with K >= hi, so that the
// rows of different threads cannot overlap: the printed base, or nothing.
std::optional<std::string> base_of(const Expr& idx, const std::string& j, int64_t lanes, int64_t hi) {
  if (idx->kind != ExprKind::BinOp || idx->binop != BinOp::Add || mentions(idx->args[0], j)) return std::nullopt;
  const Expr& base = idx->args[0];
  if (base->kind != ExprKind::BinOp || base->binop != BinOp::Mul) return std::nullopt;
  const Expr& k = base->args[1]->kind == ExprKind::Int ? base->args[1] : base->args[0];
  if (k->kind != ExprKind::Int || k->ival < hi) return std::nullopt;
  const Expr& x = idx->args[1];
  bool plain = x->kind == ExprKind::Var && x->name == j;
  bool lane = x->kind == ExprKind::BinOp && x->binop == BinOp::Add && x->args[0]->kind == ExprKind::Var &&
              x->args[0]->name == j && x->args[1]->kind == ExprKind::Int && x->args[1]->ival >= 0 &&
              x->args[1]->ival < lanes;
  if (!plain && !lane) return std::nullopt;
  return print_expr(idx->args[0]);
}

void accesses(const Stmt& s, const std::function<void(const Expr&)>& f) {
  visit_stmt_exprs(s, [&](const Expr& x) {
    if (x->kind == ExprKind::Access) f(x);
  });
}

class RowCache {
 public:
  RowCache(const std::string& worker, int64_t workers, const std::set<std::string>& aliased)
      : worker_(worker), workers_(workers), aliased_(aliased) {}

  Block run(const Block& body) {
    find_private(body);
    if (private_.empty()) return body;
    return rewrite(body);
  }

 private:
  const std::string& worker_;
  int64_t workers_;
  const std::set<std::string>& aliased_;
  std::set<std::string> private_;
  int counter_ = 0;

  // An array is private when all its accesses share one loop shape and one base.
  void find_private(const Block& body) {
    std::map<std::string, std::string> shape;  // array -> signature + base, or "" when not private
    std::function<void(const Block&)> scan = [&](const Block& b) {
      for (const auto& s : b) {
        auto r = row_loop(s, worker_, workers_);
        if (r) {
          for (const auto& st : s->body)
            accesses(st, [&](const Expr& a) {
              auto base = base_of(a->args[0], s->var, r->lanes, r->hi);
              std::string sig = base ? r->signature() + "|" + *base : "";
              auto it = shape.find(a->name);
              if (it == shape.end()) shape[a->name] = sig;
              else if (it->second != sig) it->second = "";
            });
          continue;
        }
        accesses(s, [&](const Expr& a) { shape[a->name] = ""; });
        // An array passed whole (to a helper or an external) may be touched anywhere.
        visit_stmt_exprs(s, [&](const Expr& x) {
          if (x->kind == ExprKind::Var && (x->ty.is_array() || x->ty.is_pointer())) shape[x->name] = "";
        });
        scan(s->body);
        scan(s->orelse);
      }
    };
    scan(body);
    for (const auto& [name, sig] : shape)
      if (!sig.empty() && !aliased_.count(name)) private_.insert(name);
  }

  bool touches_private(const Stmt& loop) const {
    bool found = false;
    for (const auto& st : loop->body) accesses(st, [&](const Expr& a) { found = found || private_.count(a->name); });
    return found;
  }

  // The loop's iterations as straight-line code: j is replaced by its value in iteration t, and
  // the locals of each iteration get names of their own.
  void unroll(const Stmt& loop, const RowLoop& r, Block& out) {
    for (int64_t t = 0; t < r.trips; ++t) {
      Expr jv = iadd(loop->lo, ilit(t * loop->step));
      std::map<std::string, std::string> renamed;
      auto sub = [&](const Expr& e) {
        return map_expr(e, [&](const Expr& x) -> Expr {
          if (x->kind != ExprKind::Var) return x;
          if (x->name == loop->var) return jv;
          auto it = renamed.find(x->name);
          return it == renamed.end() ? x : var(it->second, x->span, x->ty);
        });
      };
      for (const auto& st : loop->body) {
        auto n = copy(st);
        n->rhs = sub(st->rhs);
        if (st->lhs->kind == ExprKind::Var && st->defines) {
          const std::string& name = st->lhs->name;
          // `a` becomes `$a_r0` and a compiler temporary `$a` becomes `$$a_r0`: never the same.
          renamed[name] = "$" + name + "_r" + std::to_string(counter_++);
          n->lhs = var(renamed[name], st->lhs->span, st->lhs->ty);
        } else {
          n->lhs = sub(st->lhs);
        }
        out.push_back(n);
      }
    }
  }

  // Over one straight-line block: reads of private elements take the register of their last
  // value; stores that a later store of the same thread overwrites are dropped.
  Block forward(const Block& in) {
    Block out;
    std::map<std::string, std::pair<Expr, Expr>> value;  // printed access -> (access, local holding it)
    std::map<std::string, std::pair<Expr, size_t>> last_store;  // printed access -> (access, index in out)
    std::set<size_t> dead;
    for (const auto& s : in) {
      // A local that changes may change what an access names: forget what mentions it.
      if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var) {
        const std::string& v = s->lhs->name;
        std::erase_if(value, [&](const auto& kv) { return mentions(kv.second.first, v); });
        std::erase_if(last_store, [&](const auto& kv) { return mentions(kv.second.first, v); });
      }
      bool nested = !s->body.empty() || !s->orelse.empty();
      if (s->kind != StmtKind::Assign || nested) {
        // Unrolled code only: anything else touches no private array (find_private).
        out.push_back(s);
        continue;
      }
      auto n = copy(s);
      // Each private element is loaded once, into a local that later reads use.
      n->rhs = map_expr(s->rhs, [&](const Expr& x) -> Expr {
        if (x->kind != ExprKind::Access || !private_.count(x->name)) return x;
        std::string key = print_expr(x);
        auto it = value.find(key);
        if (it != value.end()) return it->second.second;
        Expr held = var("$held" + std::to_string(counter_++), x->span, Type::scalar(x->ty.elem));
        auto def = copy(assign(held, x, x->span));
        def->defines = true;
        out.push_back(def);
        value[key] = {x, held};
        return held;
      });
      if (n->lhs->kind == ExprKind::Access && private_.count(n->lhs->name)) {
        std::string key = print_expr(n->lhs);
        Expr held = n->rhs;
        if (held->kind != ExprKind::Var) {
          held = var("$held" + std::to_string(counter_++), n->span, n->lhs->ty);
          auto def = copy(assign(held, n->rhs, n->span));
          def->defines = true;
          out.push_back(def);
          n->rhs = held;
        }
        auto prev = last_store.find(key);
        if (prev != last_store.end()) dead.insert(prev->second.second);
        last_store[key] = {n->lhs, out.size()};
        value[key] = {n->lhs, held};
        out.push_back(n);
        continue;
      }
      out.push_back(n);
    }
    Block kept;
    for (size_t i = 0; i < out.size(); ++i)
      if (!dead.count(i)) kept.push_back(out[i]);
    return kept;
  }

  Block rewrite(const Block& b) {
    Block flat;
    bool unrolled = false;
    for (const auto& s : b) {
      auto r = row_loop(s, worker_, workers_);
      if (r && touches_private(s)) {
        unroll(s, *r, flat);
        unrolled = true;
        continue;
      }
      auto n = with_blocks(s, [&](const Block& x) { return rewrite(x); });
      flat.push_back(n);
    }
    return unrolled ? forward(flat) : flat;
  }
};

}  // namespace

Block cache_rows(const Block& body, const std::string& worker, int64_t workers,
                 const std::set<std::string>& aliased) {
  return RowCache(worker, workers, aliased).run(body);
}

void cache_kernel_rows(GpuProgram& prog) {
  for (auto& k : prog.kernels) {
    if (!k.vector_body.empty()) k.vector_body = cache_rows(k.vector_body, k.inner_worker, k.inner_workers, prog.aliased);
    k.body = cache_rows(k.body, k.inner_worker, k.inner_workers, prog.aliased);
  }
}

}  // namespace parpy
