#include "gpu/stream_rows.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string>

#include "ir/affine.h"
#include "ir/intrinsics.h"
#include "ir/reductions.h"
#include "passes/inline_calls.h"

namespace parpy {
namespace {

// The constant d of an index `row + d` (the row's coefficient 1, no other term), if it is one.
std::optional<int64_t> row_offset(const Expr& index, const std::string& row) {
  auto a = affine(index, [](const Expr& e) -> std::optional<Affine> {
    if (e->kind == ExprKind::Var) return affine_atom(e->name);
    return std::nullopt;
  });
  if (!a || a->coef(row) != 1) return std::nullopt;
  for (const auto& [atom, c] : a->terms)
    if (atom != row && c != 0) return std::nullopt;
  return a->constant;
}

// What a block writes (arrays, locals) and whether it calls a function or returns.
struct Effects {
  std::set<std::string> arrays, locals;
  bool opaque = false;
};

Effects effects_of(const Block& body) {
  Effects w;
  visit_block(body, [&](const Stmt& s) {
    if (s->kind == StmtKind::Return) w.opaque = true;
    visit_stmt_exprs(s, [&](const Expr& x) {
      if (x->kind == ExprKind::Call && intrinsic_of(x) == Intrinsic::None) w.opaque = true;
    });
    if (s->kind == StmtKind::For) w.locals.insert(s->var);
    if (s->kind != StmtKind::Assign || !s->lhs) return;
    if (s->lhs->kind == ExprKind::Access) w.arrays.insert(s->lhs->name);
    if (s->lhs->kind == ExprKind::Var) {
      w.locals.insert(s->lhs->name);
      if (!s->lhs->ty.is_scalar()) w.opaque = true;  // a local naming an array
    }
  });
  return w;
}

// A loop bound without its conversion to the loop's integer type (int64(indptr[i]) for int32
// row pointers): the read itself.
Expr bound_read(const Expr& e) {
  return e->kind == ExprKind::Convert && !is_float(e->args[0]->ty.elem) ? bound_read(e->args[0]) : e;
}

class RowStreamer {
 public:
  explicit RowStreamer(int64_t min_threads) : min_threads_(min_threads) {}

  Block block(const Block& b) {
    return map_host_statements(b, [&](const Stmt& s) -> std::optional<Block> {
      if (s->kind == StmtKind::For && s->par.is_parallel()) return Block{stream(s)};
      return std::nullopt;
    });
  }

 private:
  int64_t min_threads_;
  int next_ = 0;  // per function: the same program always gets the same names

  // The index in p's body of its reduction loop over range(a[i + d], a[i + d + 1]), if the body
  // has the form stream() needs.
  std::optional<size_t> reduction_loop(const Stmt& p, const Effects& w) {
    std::optional<size_t> found;
    for (size_t n = 0; n < p->body.size(); ++n) {
      const Stmt& s = p->body[n];
      // Lanes of a warp, at least the kStreamLanes each row gets: the user's threads are an upper bound.
      bool lanes = s->kind == StmtKind::For && s->par.is_parallel() && s->par.reduction && s->par.nthreads <= 32 &&
                   s->par.nthreads >= kStreamLanes && s->step == 1;
      if (lanes && !found) {
        found = n;
        continue;
      }
      if (contains_parallel({s})) return std::nullopt;
      // Before the loop, only assignments of locals (they run after the block's reduction).
      if (!found && (s->kind != StmtKind::Assign || s->lhs->kind != ExprKind::Var)) return std::nullopt;
    }
    if (!found) return std::nullopt;
    const Stmt& q = p->body[*found];
    Expr lo = bound_read(q->lo), hi = bound_read(q->hi);
    if (lo->kind != ExprKind::Access || hi->kind != ExprKind::Access || lo->name != hi->name || lo->args.size() != 1 ||
        hi->args.size() != 1 || w.arrays.count(lo->name))
      return std::nullopt;
    auto dlo = row_offset(lo->args[0], p->var), dhi = row_offset(hi->args[0], p->var);
    if (!dlo || !dhi || *dhi != *dlo + 1) return std::nullopt;
    if (q->body.size() != 1) return std::nullopt;
    const Stmt& u = q->body[0];
    if (u->kind != StmtKind::Assign || u->lhs->kind != ExprKind::Var || !u->lhs->ty.is_scalar() ||
        u->rhs->kind != ExprKind::BinOp || u->rhs->binop != q->red_op || !reduce_op_of(q->red_op) ||
        u->rhs->args[0]->kind != ExprKind::Var || u->rhs->args[0]->name != u->lhs->name)
      return std::nullopt;
    // The value: of k, arrays the rows loop does not write and values from outside the loop.
    bool plain = true;
    visit_expr(u->rhs->args[1], [&](const Expr& x) {
      if (x->kind == ExprKind::Access && w.arrays.count(x->name)) plain = false;
      if (x->kind == ExprKind::Var && x->name != q->var && (w.locals.count(x->name) || x->name == p->var)) plain = false;
    });
    if (!plain) return std::nullopt;
    return found;
  }

  // The rows loop `p` in streams, or as it is.
  Stmt stream(const Stmt& p) {
    if (p->par.reduction || p->step != 1) return p;
    int64_t n = constant_trips(p);
    if (n < 2) return p;
    Effects w = effects_of(p->body);
    if (w.opaque) return p;
    std::optional<size_t> at = reduction_loop(p, w);
    if (!at) return p;
    int64_t threads = p->par.tpb != 1024 ? p->par.tpb : kStreamBlock;
    if (threads < 32 || threads > 1024 || (threads & (threads - 1)) != 0) return p;
    int64_t rows_per_block = threads / kStreamLanes;
    int64_t blocks = (n + rows_per_block - 1) / rows_per_block;
    if (blocks * threads < min_threads_) return p;

    const Stmt& q = p->body[*at];
    const Stmt& u = q->body[0];
    const Expr& acc = u->lhs;
    ReduceOp op = *reduce_op_of(q->red_op);
    const Span& sp = p->span;
    Type it = p->lo->ty;
    int id = next_++;
    auto ilit = [&](int64_t v) { return int_lit(v, sp, false, it.elem); };
    auto iop = [&](BinOp o, Expr a, Expr b) { return binop(o, std::move(a), std::move(b), sp, it); };
    Type bool_t = Type::scalar(ElemSize::Bool);
    Expr bv = var("$sblock" + std::to_string(id), sp, it);
    Expr tv = var("$sthread" + std::to_string(id), sp, it);
    Expr kv = var("$sk" + std::to_string(id), sp, q->lo->ty);
    Expr first = iop(BinOp::Add, ilit(p->lo->ival), iop(BinOp::Mul, bv, ilit(rows_per_block)));
    Expr rows = iop(BinOp::Min, ilit(rows_per_block), iop(BinOp::Sub, ilit(p->hi->ival), first));
    Expr lo_read = bound_read(q->lo);
    Expr bound = access(lo_read->name, substitute(lo_read->args[0], {{p->var, first}}), lo_read->ty.elem, sp);
    Expr value = substitute(u->rhs->args[1], {{q->var, kv}});
    Expr part = intrinsic(Intrinsic::StreamReduce,
                          {bound, rows, kv, value, ilit(threads), ilit(rows_per_block),
                           ilit(rows_per_block * kStreamValuesPerRow), ilit(kStreamLoads)},
                          sp, acc->ty, op);
    Expr pv = var("$spart" + std::to_string(id), sp, acc->ty);
    auto define = [&](const Expr& lhs, const Expr& rhs) {
      auto d = copy(assign(lhs, rhs, sp));
      d->defines = true;
      return Stmt(d);
    };
    Expr row = iop(BinOp::FloorDiv, tv, ilit(kStreamLanes));
    Expr lead = binop(BinOp::And, binop(BinOp::Eq, iop(BinOp::Mod, tv, ilit(kStreamLanes)), ilit(0), sp, bool_t),
                      binop(BinOp::Lt, row, rows, sp, bool_t), sp, bool_t);
    // The row's statements, on its first lane: the reduction loop becomes `acc = acc op part`.
    Block per_row{define(var(p->var, sp, it), iop(BinOp::Add, first, row))};
    for (size_t s = 0; s < p->body.size(); ++s)
      per_row.push_back(s == *at ? assign(acc, binop(q->red_op, acc, pv, sp, acc->ty), sp) : p->body[s]);
    auto lanes = copy(for_loop(tv->name, ilit(0), ilit(threads), 1, {define(pv, part), if_stmt(lead, per_row, {}, sp)}, sp));
    lanes->par.nthreads = threads;
    lanes->par.tpb = threads;
    auto outer = copy(p);  // the blocks, in parallel: the user's label
    outer->var = bv->name;
    outer->lo = ilit(0);
    outer->hi = ilit(blocks);
    outer->par.nthreads = std::min(p->par.nthreads, blocks);
    outer->par.tpb = threads;
    outer->body = {Stmt(lanes)};
    return outer;
  }
};

}  // namespace

Block stream_row_loops(const Block& b, const GpuTarget& target) {
  if (!target.pack_rows || target.fill_threads <= 0) return b;
  return RowStreamer(target.fill_threads / 2).block(b);
}

}  // namespace parpy
