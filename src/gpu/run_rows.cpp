#include "gpu/run_rows.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gpu/strip_rows.h"
#include "passes/inline_calls.h"

namespace parpy {
namespace {

// Reads of one array at rows i + d of the rows loop (the same index otherwise), in the bounds of
// the lanes' loops: registers for rows dmin..dmax, the next row's dmax loaded one row ahead.
struct BoundGroup {
  std::string array;
  Expr index;  // the index of one of the reads, at row offset d0
  int64_t d0 = 0;
  ElemSize elem = ElemSize::I64;
  std::set<int64_t> offsets;
};

// Whether a statement of the rows loop's body is a loop of a row's lanes: parallel, at most 32
// threads (a group of lanes of one warp on Cuda), step 1.
bool lanes_loop(const Stmt& s) {
  return s->kind == StmtKind::For && s->par.is_parallel() && s->par.nthreads <= 32 && s->step == 1;
}

// The arrays a block writes, and whether it calls a function or defines a local naming an array
// (which may write an array under another name).
struct Writes {
  std::set<std::string> arrays;
  bool opaque = false;
};

Writes writes_of(const Block& body) {
  Writes w;
  visit_block(body, [&](const Stmt& s) {
    if (s->kind == StmtKind::Call || s->kind == StmtKind::Return) w.opaque = true;
    for (const Expr& e : {s->lhs, s->rhs, s->cond, s->lo, s->hi})
      if (e)
        visit_expr(e, [&](const Expr& x) {
          if (x->kind == ExprKind::Call) w.opaque = true;
        });
    if (s->kind != StmtKind::Assign || !s->lhs) return;
    if (s->lhs->kind == ExprKind::Access) w.arrays.insert(s->lhs->name);
    if (s->lhs->kind == ExprKind::Var && !s->lhs->ty.is_scalar()) w.opaque = true;
  });
  return w;
}

class RowRunner {
 public:
  explicit RowRunner(int64_t min_threads) : min_threads_(min_threads) {}

  Block block(const Block& b) {
    return map_host_statements(b, [&](const Stmt& s) -> std::optional<Block> {
      if (s->kind == StmtKind::For && s->par.is_parallel()) return Block{run(s)};
      return std::nullopt;
    });
  }

 private:
  int64_t min_threads_;
  int next_ = 0;  // per function: the same program always gets the same names

  // The groups of reads at rows of `row` in the bounds of the lanes' loops of `body` (its own
  // statements), of arrays `body` does not write, at most kRunRows rows apart.
  std::map<std::string, BoundGroup> bound_groups(const Block& body, const std::string& row, const Writes& w) {
    std::map<std::string, BoundGroup> groups;
    for (const auto& s : body) {
      if (!lanes_loop(s)) continue;
      for (const Expr& bound : {s->lo, s->hi}) {
        if (skips_evaluation(bound)) continue;
        visit_expr(bound, [&](const Expr& x) {
          if (x->kind != ExprKind::Access || w.arrays.count(x->name)) return;
          auto rd = row_read(x, row);
          if (!rd) return;
          BoundGroup& g = groups[rd->first];
          if (!g.index) {
            g.array = x->name;
            g.index = x->args[0];
            g.d0 = rd->second;
            g.elem = x->ty.elem;
          }
          g.offsets.insert(rd->second);
        });
      }
    }
    for (auto it = groups.begin(); it != groups.end();) {
      const auto& o = it->second.offsets;
      if (*o.rbegin() - *o.begin() > kRunRows)
        it = groups.erase(it);
      else
        ++it;
    }
    return groups;
  }

  // The rows loop `p` in runs, or as it is.
  Stmt run(const Stmt& p) {
    if (p->par.reduction || p->par.nthreads <= 1 || p->step != 1) return p;
    int64_t n = constant_trips(p);
    if (n < 2 * kRunRows) return p;
    Writes w = writes_of(p->body);
    if (w.opaque) return p;
    std::map<std::string, BoundGroup> groups = bound_groups(p->body, p->var, w);
    if (groups.empty()) return p;
    int64_t runs = (n + kRunRows - 1) / kRunRows, lanes = 1;
    for (const auto& s : p->body)
      if (lanes_loop(s)) lanes = std::max(lanes, s->par.nthreads);
    int64_t workers = std::min(p->par.nthreads, runs);
    if (workers * lanes < min_threads_) return p;

    const Span& sp = p->span;
    Type it = p->lo->ty;
    int id = next_++;
    auto ilit = [&](int64_t v) { return int_lit(v, sp, false, it.elem); };
    Expr rv = var("$run" + std::to_string(id), sp, it);
    Expr first = binop(BinOp::Add, ilit(p->lo->ival), binop(BinOp::Mul, rv, ilit(kRunRows), sp, it), sp, it);
    Expr end = binop(BinOp::Min, binop(BinOp::Add, first, ilit(kRunRows), sp, it), ilit(p->hi->ival), sp, it);
    Expr i = var(p->var, sp, it);
    auto at = [&](const BoundGroup& g, const Expr& row, int64_t d) {  // the read at row + d
      Expr shifted = binop(BinOp::Add, row, int_lit(d - g.d0, sp, false, it.elem), sp, it);
      return access(g.array, substitute(g.index, {{p->var, shifted}}), g.elem, sp);
    };
    auto zero = [&](ElemSize e) { return is_float(e) ? float_lit(0.0, sp, false, e) : int_lit(0, sp, false, e); };
    auto define = [&](const Expr& r, const Expr& init) {
      auto def = copy(assign(r, init, sp));
      def->defines = true;
      return Stmt(def);
    };

    // Registers: rows dmin..dmax of each group, loaded for the run's first row before its loop;
    // the next row's dmax loaded at the top of each row but the run's last, moved in at its end.
    Block before, ahead, bottom;
    std::map<std::string, std::map<int64_t, Expr>> regs;
    int k = 0;
    for (const auto& [key, g] : groups) {
      int64_t dmin = *g.offsets.begin(), dmax = *g.offsets.rbegin();
      std::string base = "$bound" + std::to_string(id) + "_" + std::to_string(k++) + "_";
      std::map<int64_t, Expr>& r = regs[key];
      for (int64_t d = dmin; d <= dmax; ++d) {
        r[d] = var(base + std::to_string(d - dmin), sp, Type::scalar(g.elem));
        before.push_back(define(r[d], at(g, first, d)));
      }
      Expr next = var(base + "next", sp, Type::scalar(g.elem));
      before.push_back(define(next, zero(g.elem)));
      ahead.push_back(assign(next, at(g, binop(BinOp::Add, i, ilit(1), sp, it), dmax), sp));
      for (int64_t d = dmin; d < dmax; ++d) bottom.push_back(assign(r[d], r[d + 1], sp));
      bottom.push_back(assign(r[dmax], next, sp));
    }
    auto from_registers = [&](const Expr& e) {
      return map_expr(e, [&](const Expr& x) -> Expr {
        auto rd = row_read(x, p->var);
        if (!rd || !regs.count(rd->first)) return x;
        return regs[rd->first].at(rd->second);
      });
    };
    Block body;
    Expr more = binop(BinOp::Lt, binop(BinOp::Add, i, ilit(1), sp, it), end, sp, Type::scalar(ElemSize::Bool));
    body.push_back(if_stmt(more, ahead, {}, sp));
    for (const auto& s : p->body) {
      if (!lanes_loop(s)) {
        body.push_back(s);
        continue;
      }
      auto l = copy(s);
      if (!skips_evaluation(s->lo)) l->lo = from_registers(s->lo);
      if (!skips_evaluation(s->hi)) l->hi = from_registers(s->hi);
      body.push_back(l);
    }
    body.insert(body.end(), bottom.begin(), bottom.end());

    auto rows = copy(p);  // the rows of one run, in order, on the lanes of one worker
    rows->lo = first;
    rows->hi = end;
    rows->par = LoopPar{};
    rows->body = std::move(body);
    before.push_back(rows);
    auto outer = copy(p);  // the runs, in parallel: the user's label and block size
    outer->var = rv->name;
    outer->lo = ilit(0);
    outer->hi = ilit(runs);
    outer->par.nthreads = workers;
    outer->body = std::move(before);
    return outer;
  }
};

}  // namespace

Block run_row_loops(const Block& b, const GpuTarget& target) {
  if (target.fill_threads <= 0) return b;
  return RowRunner(target.fill_threads / 2).block(b);
}

}  // namespace parpy
