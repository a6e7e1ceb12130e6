// The parallel structure of a nest (docs/gpu.md, Grid and blocks) and parallel externals.
#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <set>

#include "gpu/kernel_builder.h"
#include "ir/intrinsics.h"
#include "ir/reductions.h"
#include "passes/array_locals.h"
#include "passes/constant_fold.h"

namespace parpy::gpu {

namespace {
std::string layer_str(int64_t threads, int64_t tpb) {
  return "ParLayer { threads: " + std::to_string(threads) + ", tpb: " + std::to_string(tpb) + " }";
}
}  // namespace

// ---- Parallel structure (docs/gpu.md, Grid and blocks) ----
// The layers (thread counts, outer to inner) of siblings or branches must agree except for the
// innermost one: the kernel runs the widest innermost layer, and each loop guards its own
// workers (README, "Backends").
std::vector<int64_t> KernelBuilder::unify(std::vector<int64_t> a, const std::vector<int64_t>& b, const Span& sp, bool branches) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  auto show = [&](const std::vector<int64_t>& l) {
    std::string s = "[";
    for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + layer_str(l[i], tpb_);
    return s + "]";
  };
  const std::string hint =
      "\nParallel loops next to each other in one kernel may differ only in the number of threads of "
      "their innermost parallel loops: give the loops around those the same number of threads.";
  bool same_outer = a.size() == b.size() && std::equal(a.begin(), a.end() - 1, b.begin());
  if (branches && !same_outer)
    fail("Found branches with inconsistent parallel structure: " + show(a) + " != " + show(b) +
             ".\nThis is not supported because the compiller cannot generate efficient code for this." +
             hint,
         sp);
  if (a.size() != b.size())
    fail("Found inconsistent number of layers in parallel structure (" + std::to_string(a.size()) +
             " != " + std::to_string(b.size()) +
             ")\nParallel loops next to each other in one kernel must nest the same number of parallel "
             "loops; mark the extra loops sequential or move them into a parallel loop of their own.",
         sp);
  for (size_t i = 0; i + 1 < a.size(); ++i)
    if (a[i] != b[i])
      fail("Found inconsistent parallel structures: " + layer_str(a[i], tpb_) + " != " +
               layer_str(b[i], tpb_) + hint,
           sp);
  a.back() = std::max(a.back(), b.back());
  return a;
}

std::vector<int64_t> KernelBuilder::layers_block(const Block& b) {
  std::vector<int64_t> out;
  for (const auto& s : b) out = unify(out, layers_stmt(s), s->span, false);
  return out;
}

// A statement calling a parallel external adds a layer of the external's threads (its own
// expressions only; a loop's body contributes through the loop).
std::vector<int64_t> KernelBuilder::layers_stmt(const Stmt& s) {
  int64_t calls = par_call_threads(s);
  if (calls == 0) return structure_of(s);
  return unify({calls}, structure_of(s), s->span, false);
}

std::vector<int64_t> KernelBuilder::structure_of(const Stmt& s) {
  switch (s->kind) {
    case StmtKind::For: {
      auto inner = layers_block(s->body);
      if (!s->par.is_parallel()) return inner;
      inner.insert(inner.begin(), s->par.nthreads);
      return inner;
    }
    case StmtKind::While: case StmtKind::WithGpu: return layers_block(s->body);
    case StmtKind::If: return unify(layers_block(s->body), layers_block(s->orelse), s->span, true);
    default: return {};
  }
}

void KernelBuilder::collect_tpb(const Stmt& s) {
  auto merge = [&](int64_t tpb, const Span& sp) {
    if (tpb == 1024) return;
    if (tpb_ != 1024 && tpb_ != tpb)
      fail("Found inconsistent threads per block " + std::to_string(tpb_) + " and " + std::to_string(tpb) +
               " among labels within parallel statements.",
           sp);
    tpb_ = tpb;
  };
  visit_block({s}, [&](const Stmt& x) {
    if (x->kind == StmtKind::For) merge(x->par.tpb, x->span);
    visit_stmt_exprs(x, [&](const Expr& e) {
      if (const ParallelExternal* ext = par_external(e)) merge(ext->par.tpb, e->span);
    });
  });
}

// ---- Parallel externals ----
const ParallelExternal* KernelBuilder::par_external(const Expr& e) const {
  if (!e || e->kind != ExprKind::Call) return nullptr;
  auto it = par_externals_.find(e->name);
  return it == par_externals_.end() ? nullptr : &it->second;
}

// The threads of the widest parallel external that the statement's own expressions call (0: none).
int64_t KernelBuilder::par_call_threads(const Stmt& s) const {
  int64_t n = 0;
  visit_stmt_exprs(s, [&](const Expr& e) {
    if (const ParallelExternal* ext = par_external(e)) n = std::max(n, ext->par.nthreads);
  });
  return n;
}

bool KernelBuilder::calls_par_external(const Block& b) const {
  bool found = false;
  visit_block(b, [&](const Stmt& s) { found = found || par_call_threads(s) > 0; });
  return found;
}

Stmt KernelBuilder::with_tpb(const Stmt& s) const {
  auto n = copy(s);
  if (n->kind == StmtKind::For && n->par.is_parallel()) n->par.tpb = tpb_;
  for (auto& st : n->body) st = with_tpb(st);
  for (auto& st : n->orelse) st = with_tpb(st);
  return n;
}

// An external runs in the threads of one block, which it indexes by threadIdx.x.
void KernelBuilder::check_par_externals(const Stmt& root) {
  visit_block({root}, [&](const Stmt& s) {
    visit_stmt_exprs(s, [&](const Expr& e) {
      const ParallelExternal* ext = par_external(e);
      if (!ext || ext->par.nthreads <= tpb_) return;
      fail("The external function " + ext->name + " is declared with parallelize=threads(" +
               std::to_string(ext->par.nthreads) + "), more than the " + std::to_string(tpb_) +
               " threads of one block that run it. Declare at most " + std::to_string(tpb_) + " threads.",
           e->span);
    });
    if ((s->kind == StmtKind::For || s->kind == StmtKind::While) && par_call_threads(s) > 0) {
      const Expr* e = nullptr;
      for (const Expr* x : {&s->cond, &s->lo, &s->hi})
        visit_expr(*x, [&](const Expr& y) {
          if (!e && par_external(y)) e = &y;
        });
      fail("The parallel external function " + par_external(*e)->name +
               " cannot be called in the header of a loop. Assign its result to a variable before "
               "the loop.",
           (*e)->span);
    }
  });
}

// A statement calling a parallel external runs in all threads of the external's layer, which
// cooperate in the call (warp shuffles, barriers). A store stays narrowed to one thread: the calls
// move before it into locals that every thread of the layer computes. Threads beyond the layer
// (the block is wider for a sibling loop) skip the calls, so only a store may use their result;
// the guard is warp-uniform, so warp shuffles in the external stay safe (block barriers do not).
Block KernelBuilder::par_call_stmt(const Stmt& s, size_t d, int64_t n) {
  int64_t width = round_up(n, 32);
  bool guard = width < g_.threads * g_.inner_blocks;
  bool store = s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Access;
  if (!store) {
    if (guard) {
      const Expr* e = nullptr;
      visit_stmt_exprs(s, [&](const Expr& y) {
        if (!e && par_external(y)) e = &y;
      });
      fail("The parallel external function " + par_external(*e)->name + " runs on " +
               std::to_string(width) + " threads, fewer than the " +
               std::to_string(g_.threads * g_.inner_blocks) +
               " threads of the parallel loops next to it, so the other threads do not have its "
               "result. Store the result to an array element directly, or give those loops at most " +
               std::to_string(width) + " threads.",
           (*e)->span);
    }
    auto t = with_blocks(s, [&](const Block& x) { return transform_block(x, d); });
    return {t};
  }
  Block calls;
  auto hoist = [&](const Expr& e) {
    return map_expr(e, [&](const Expr& x) -> Expr {
      if (!par_external(x)) return x;
      Expr t = var(fresh("ext"), x->span, x->ty);
      auto def = copy(assign(t, x, x->span));
      def->defines = true;
      calls.push_back(def);
      return t;
    });
  };
  auto st = copy(s);
  st->lhs = hoist(s->lhs);
  st->rhs = hoist(s->rhs);
  Block out;
  if (guard)
    out.push_back(if_stmt(iop(BinOp::Lt, ivar(worker(d)), ilit(width)), calls, {}, s->span));
  else
    out = calls;
  // Every thread reads the call's arguments before one of them overwrites the array.
  bool reads_target = false;
  for (const auto& c : calls) reads_target = reads_target || mentions(c->rhs, s->lhs->name);
  if (reads_target) out.push_back(barrier());
  out.push_back(if_stmt(leader(), {st}, {}, s->span));
  return out;
}

}  // namespace parpy::gpu
