// Kernel bodies: loops over workers, narrowed stores and barriers (docs/gpu.md, Grid and blocks;
// Synchronisation and kernel splits).
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

Expr KernelBuilder::leader() {
  if (g_.packed()) return iop(BinOp::Eq, ivar(worker(g_.k)), ilit(0));  // the row's first lane
  Expr first = iop(BinOp::Eq, ivar(kThreadIdx), ilit(0));
  if (g_.inner_blocks == 1) return first;
  return iop(BinOp::And, first, iop(BinOp::Eq, iop(BinOp::Mod, ivar(kBlockIdx), ilit(g_.inner_blocks)), ilit(0)));
}

Stmt KernelBuilder::barrier() const {
  // Packed rows: the lanes of the row's group, which may be in divergent code.
  if (g_.packed()) return call_stmt(intrinsic(Intrinsic::GroupSync, {ilit(g_.group)}, {}), {});
  return call_stmt(intrinsic(g_.cluster ? Intrinsic::ClusterSync : Intrinsic::SyncThreads, {}, {}), {});
}

bool KernelBuilder::is_barrier(const Stmt& s) {
  return calls_intrinsic(s, Intrinsic::SyncThreads) || calls_intrinsic(s, Intrinsic::ClusterSync) ||
         calls_intrinsic(s, Intrinsic::GroupSync);
}

// Whether b synchronises the block (or cluster) somewhere: a barrier or an all-reduction.
bool KernelBuilder::holds_barrier(const Block& b) {
  bool found = false;
  visit_block(b, [&](const Stmt& x) {
    if (is_barrier(x)) found = true;
    visit_stmt_exprs(x, [&](const Expr& y) {
      Intrinsic i = intrinsic_of(y);
      if (i == Intrinsic::BlockReduce || i == Intrinsic::ClusterReduce || i == Intrinsic::MultiblockReduce ||
          i == Intrinsic::GroupReduce)
        found = true;
    });
  });
  return found;
}

bool KernelBuilder::reads_memory(const Expr& e) {
  bool found = false;
  visit_expr(e, [&](const Expr& y) {
    if (y->kind == ExprKind::Access) found = true;
  });
  return found;
}

bool KernelBuilder::contains_loop(const Block& b) {
  bool found = false;
  visit_block(b, [&](const Stmt& x) {
    if (x->kind == StmtKind::For || x->kind == StmtKind::While) found = true;
  });
  return found;
}

// Any array access: threads of the block read or write memory that a later (or, in a loop,
// earlier) parallel loop of other threads touches.
bool KernelBuilder::contains_array_access(const Stmt& s) { return accesses_other_than(s, {}); }

bool KernelBuilder::accesses_other_than(const Stmt& s, const std::set<std::string>& arrays) {
  bool found = false;
  visit_block({s}, [&](const Stmt& x) {
    visit_stmt_exprs(x, [&](const Expr& y) {
      if (y->kind == ExprKind::Access && !arrays.count(y->name)) found = true;
    });
  });
  return found;
}

void KernelBuilder::find_read_only(const Stmt& root) {
  read_only_.clear();
  std::set<std::string> written;
  bool calls = false;
  visit_block({root}, [&](const Stmt& x) {
    if (x->kind == StmtKind::Assign && x->lhs && x->lhs->kind == ExprKind::Access) written.insert(x->lhs->name);
    visit_stmt_exprs(x, [&](const Expr& y) {
      if (y->kind == ExprKind::Call && intrinsic_of(y) == Intrinsic::None) calls = true;
    });
  });
  if (calls) return;
  for (const auto& p : prog_.params)
    if (p.type.is_array() && !p.shares_memory && !written.count(p.name) && !aliased_.count(p.name))
      read_only_.insert(p.name);
}

Block KernelBuilder::transform_block(const Block& b, size_t d) {
  Block out;
  for (const auto& s : b) {
    for (const auto& t : transform_stmt(s, d)) out.push_back(t);
    // Statements run by the whole block order their memory accesses against the parallel
    // loops of other threads around them.
    bool after_barrier = !out.empty() && (is_barrier(out.back()) || allreduce_into_local(s, d));
    if (d >= 1 && d <= g_.k && (g_.inner_blocks == 1 || g_.cluster) && !after_barrier &&
        (contains_parallel({s}) || accesses_other_than(s, read_only_)))
      out.push_back(barrier());
  }
  return out;
}

Block KernelBuilder::kernel_work(const Stmt& root) {
  once_.clear();
  Block work = transform_stmt(root, 0);
  drop_final_barriers(work);
  return work;
}

void KernelBuilder::drop_final_barriers(Block& b) const {
  while (!b.empty() && is_barrier(b.back())) b.pop_back();
  if (b.empty()) return;
  const Stmt& s = b.back();
  if (s->kind == StmtKind::If || (s->kind == StmtKind::For && once_.count(s))) {
    auto n = copy(s);
    drop_final_barriers(n->body);
    drop_final_barriers(n->orelse);
    b.back() = n;
  }
}

// A reduction that every thread of the block (or cluster) completes together and that writes
// only a local: its all-reduce already ordered every memory access before it against every
// access after it, so no barrier is needed behind it.
bool KernelBuilder::allreduce_into_local(const Stmt& s, size_t d) const {
  if (s->kind == StmtKind::WithGpu) return !s->body.empty() && allreduce_into_local(s->body.back(), d);
  if (s->kind != StmtKind::For || !s->par.reduction || d != g_.k || (g_.inner_blocks > 1 && !g_.cluster)) return false;
  bool reduced = s->par.is_parallel() || (g_.k >= 1 && !contains_loop(s->body));
  return reduced && s->body.back()->lhs->kind == ExprKind::Var;
}

// The workers of loop s at depth d: a parallel loop's own threads (fewer than its layer's when a
// sibling loop is wider), else the layer's.
int64_t KernelBuilder::workers_of(const Stmt& s, size_t d) const {
  return s->par.is_parallel() ? s->par.nthreads : g_.layers[d];
}

// for v in range(lo, hi, step) with n workers: worker w runs lo + step*w, lo + step*(w+n), ...
Stmt KernelBuilder::grid_stride(const Stmt& s, size_t d, Block body) {
  int64_t n = workers_of(s, d);
  Expr w = ivar(worker(d));
  if (!grid_stride_is_exact(s, n)) return counted_grid_stride(s, w, n, std::move(body));
  Expr start = s->step == 1 ? w : iop(BinOp::Mul, ilit(s->step), w);
  auto loop = copy(for_loop(s->var, iop(BinOp::Add, s->lo, start), s->hi, s->step * n, std::move(body), s->span));
  loop->par = LoopPar{};
  int64_t trips = range_trips(s->lo->ival, s->hi->ival, s->step);
  if (trips <= n) once_.insert(loop);
  return loop;
}

// Whether the values the plain grid-stride loop computes (every worker's start, the value after
// each one's last) all stay within int64: constant bounds away from its ends.
bool KernelBuilder::grid_stride_is_exact(const Stmt& s, int64_t n) {
  if (s->lo->kind != ExprKind::Int || s->hi->kind != ExprKind::Int) return false;
  __int128 stride = static_cast<__int128>(s->step) * n;
  __int128 last_start = s->lo->ival + static_cast<__int128>(s->step) * (n - 1);
  auto fits = [](__int128 v) { return v <= INT64_MAX && v >= INT64_MIN; };
  return fits(stride) && fits(last_start) && fits(static_cast<__int128>(s->step) * (n - 1)) &&
         increment_stays_in_range(s->hi->ival, static_cast<int64_t>(stride));
}

// Bounds known only at run time, or near the ends of int64: the workers share the iteration
// numbers 0 .. parpy_trips(lo, hi, step) - 1 and compute each value from its number; the bounds
// are evaluated once, as Python's range does.
Stmt KernelBuilder::counted_grid_stride(const Stmt& s, const Expr& w, int64_t n, Block body) {
  std::string lo = fresh("lo"), hi = fresh("hi"), t = fresh("t");
  auto def = [&](const std::string& name, const Expr& e) {
    auto a = copy(assign(ivar(name), e, s->span));
    a->defines = true;
    return Stmt(a);
  };
  body.insert(body.begin(), def(s->var, intrinsic(Intrinsic::Iter, {ivar(lo), ivar(t), ilit(s->step)}, s->span, gpu::kI64)));
  Expr trips = intrinsic(Intrinsic::Trips, {ivar(lo), ivar(hi), ilit(s->step)}, s->span, gpu::kI64);
  auto loop = copy(for_loop(t, w, trips, n, std::move(body), s->span));
  loop->par = LoopPar{};
  return if_stmt(bool_lit(true, s->span), {def(lo, s->lo), def(hi, s->hi), loop}, {}, s->span);
}

// Threads beyond the n workers of an innermost loop skip it; they still reach the barriers and
// block reductions after it, which stay outside the guard.
Stmt KernelBuilder::guarded(const Stmt& loop, size_t d, int64_t n) {
  if (d == g_.k && g_.row_threads() != n)
    return if_stmt(iop(BinOp::Lt, ivar(worker(d)), ilit(n)), {loop}, {}, loop->span);
  return loop;
}

Block KernelBuilder::transform_stmt(const Stmt& s, size_t d) {
  if (int64_t n = par_call_threads(s)) return par_call_stmt(s, d, n);
  switch (s->kind) {
    case StmtKind::For: {
      // A declared reduction without threads, run by the whole block, uses the block's
      // threads of the innermost layer instead of repeating the loop in every thread (not when
      // its body calls a parallel external, which every thread of the block must call alike).
      if (!s->par.is_parallel() && s->par.reduction && d == g_.k && g_.k >= 1 && !contains_loop(s->body) &&
          !calls_par_external(s->body))
        return reduction(s, d);
      if (!s->par.is_parallel()) {
        auto n = copy(s);
        n->body = transform_block(s->body, d);
        return {n};
      }
      if (d == g_.k && s->par.reduction) return reduction(s, d);
      if (s->par.reduction)
        fail("A reduction over a parallel loop that has parallel loops inside it is not supported.", s->span);
      enclosing_.push_back(s);
      Block inner = transform_block(s->body, d + 1);
      enclosing_.pop_back();
      return {guarded(grid_stride(s, d, std::move(inner)), d, workers_of(s, d))};
    }
    case StmtKind::While: case StmtKind::If: {
      auto n = with_blocks(s, [&](const Block& x) { return transform_block(x, d); });
      // Every thread of the block evaluates the condition of an `if` whose branches hold
      // barriers; when it reads memory, a thread that evaluates it late could see a store the
      // branch made (a reduction's target set to its neutral element) and skip the branch and
      // its barriers. The condition is read into a local by all threads first, behind a barrier.
      if (s->kind == StmtKind::If && d >= 1 && d <= g_.k && reads_memory(s->cond) &&
          (holds_barrier(n->body) || holds_barrier(n->orelse))) {
        Expr c = var(fresh("cond"), s->cond->span, s->cond->ty);
        auto def = copy(assign(c, s->cond, s->span));
        def->defines = true;
        n->cond = c;
        return {def, barrier(), n};
      }
      return {n};
    }
    case StmtKind::WithGpu: return transform_block(s->body, d);
    case StmtKind::Assign:
      if (d >= 1 && d <= g_.k && s->lhs->kind == ExprKind::Access)
        return {if_stmt(leader(), {s}, {}, s->span)};
      return {s};
    default: return {s};
  }
}

}  // namespace parpy::gpu
