#include "gpu/split_rows.h"

#include <algorithm>
#include <optional>

#include "ir/reductions.h"
#include "passes/column_loops.h"

namespace parpy {
namespace {

// The smallest number of rows a chunk gets: fewer would spend more on the atomic update than on
// the rows.
constexpr int64_t kMinChunk = 64;

class RowSplitter {
 public:
  explicit RowSplitter(const GpuTarget& t) : target_(t) {}

  Block block(const Block& b) {
    return map_host_statements(b, [&](const Stmt& s) -> std::optional<Block> {
      // A loop over rows around a parallel loop over columns runs as one parallel loop over
      // the columns, each looping over the rows (one kernel instead of one per row).
      std::optional<Stmt> swapped = interchange_rows(s);
      if (swapped || (s->kind == StmtKind::For && s->par.is_parallel())) return split(swapped ? *swapped : s);
      return std::nullopt;
    });
  }

 private:
  const GpuTarget& target_;
  int next_ = 0;  // per function: the same program always gets the same names

  // The parallel loop `p` split, or as it is.
  Block split(const Stmt& p) {
    if (p->par.reduction || p->par.nthreads <= 1) return {p};
    int64_t columns = constant_trips(p);
    if (columns < 1) return {p};
    int64_t workers = std::min(columns, p->par.nthreads);
    if (workers >= target_.fill_threads) return {p};
    const Stmt* rows = nullptr;
    Block before, after;
    for (const auto& s : p->body) {
      if (s->kind == StmtKind::For && !rows) {
        rows = &s;
        continue;
      }
      if (!plain_store(s)) return {p};
      (rows ? after : before).push_back(s);
    }
    if (!rows) return {p};
    const Stmt& q = *rows;
    int64_t n = constant_trips(q);
    if (q->par.is_parallel() || q->par.reduction || n < 2 * kMinChunk || q->body.size() != 1) return {p};
    const Stmt& u = q->body[0];
    if (!plain_store(u) || mentions(u->lhs->args[0], q->var)) return {p};
    const Expr& rhs = u->rhs;
    if (rhs->kind != ExprKind::BinOp || print_expr(rhs->args[0]) != print_expr(u->lhs)) return {p};
    BinOp op = rhs->binop;
    if (op != BinOp::Add && op != BinOp::Max && op != BinOp::Min) return {p};
    const Expr& value = rhs->args[1];
    if (mentions(value, u->lhs->name) || value->ty != u->lhs->ty) return {p};
    ElemSize t = u->lhs->ty.elem;
    if (t == ElemSize::F16 || is_bool(t) || (elem_bytes(t) == 8 && !target_.atomics64)) return {p};
    for (const auto& s : before)
      if (mentions(s->rhs, q->var)) return {p};

    int64_t chunks = std::min((target_.fill_threads + workers - 1) / workers, n / kMinChunk);
    if (chunks < 2) return {p};
    int64_t chunk = (n + chunks - 1) / chunks;
    chunks = (n + chunk - 1) / chunk;
    const Span& sp = p->span;
    Type it = q->lo->ty;
    std::string r = "$rows" + std::to_string(next_), acc = "$part" + std::to_string(next_);
    ++next_;
    Expr rv = var(r, sp, it);
    auto ilit = [&](int64_t v) { return int_lit(v, sp, false, it.elem); };
    Expr lo = binop(BinOp::Add, ilit(q->lo->ival), binop(BinOp::Mul, rv, ilit(chunk), sp, it), sp, it);
    Expr hi = binop(BinOp::Min, binop(BinOp::Add, lo, ilit(chunk), sp, it), ilit(q->hi->ival), sp, it);
    Expr accv = var(acc, sp, u->lhs->ty);
    auto init = copy(assign(accv, neutral_literal(*reduce_op_of(op), t, sp), sp));
    init->defines = true;
    auto part = copy(q);
    part->lo = lo;
    part->hi = hi;
    part->body = {assign(accv, binop(op, accv, value, sp, u->lhs->ty), u->span)};
    auto add = copy(assign(u->lhs, binop(op, u->lhs, accv, sp, u->lhs->ty), u->span));
    add->atomic = true;
    auto columns_loop = [&](Block body) {
      auto l = copy(p);
      l->body = std::move(body);
      return Stmt(l);
    };
    auto outer = copy(for_loop(r, ilit(0), ilit(chunks), 1, {columns_loop({init, part, add})}, sp));
    outer->par = LoopPar{chunks, false, 1024};
    Block out;
    if (!before.empty()) out.push_back(columns_loop(before));
    out.push_back(outer);
    if (!after.empty()) out.push_back(columns_loop(after));
    return out;
  }
};

}  // namespace

Block split_row_loops(const Block& b, const GpuTarget& target) {
  if (target.fill_threads <= 0) return b;
  return RowSplitter(target).block(b);
}

}  // namespace parpy
