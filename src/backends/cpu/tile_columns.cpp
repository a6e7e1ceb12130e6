#include "backends/cpu/tile_columns.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <thread>

#include "passes/column_loops.h"

namespace parpy {
namespace {

// Whether the column loop `col` inside parallel loop `par` reads memory down columns.
bool walks_columns(const Stmt& par, const Stmt& col) {
  bool columns = false, rows = false, unknown = false;
  for (const auto& s : col->body)
    for (const Expr& root : {s->lhs, s->rhs})
      visit_expr(root, [&](const Expr& x) {
        if (x->kind != ExprKind::Access) return;
        auto st = loop_strides(x->args[0], par->var, col->var);
        if (!st) {
          unknown = true;
          return;
        }
        auto [sj, si] = *st;
        if (std::llabs(si) == 1) rows = true;
        if (sj == 1 && std::llabs(si) > 1) columns = true;
      });
  return columns && !rows && !unknown;
}

}  // namespace

int64_t column_tile(const Stmt& par) {
  if (par->lo->kind != ExprKind::Int || par->hi->kind != ExprKind::Int) return 256;
  int64_t columns = par->hi->ival - par->lo->ival;
  int64_t threads = std::max<int64_t>(1, std::min<int64_t>(par->par.nthreads, std::thread::hardware_concurrency()));
  int64_t each = (columns + threads - 1) / threads;
  return std::clamp<int64_t>((each + 15) / 16 * 16, 16, 2048);
}

namespace {

class ColumnTiler {
 public:
  Block block(const Block& b) {
    Block out;
    for (const auto& s : b) out.push_back(stmt(s));
    return out;
  }

 private:
  int next_ = 0;  // per function: the same program always gets the same names

  Stmt stmt(const Stmt& s) {
    if (s->kind == StmtKind::For && s->par.nthreads > 1) return tiled(s);
    if (auto t = interchanged(s)) return *t;
    if (s->kind != StmtKind::For && s->kind != StmtKind::While && s->kind != StmtKind::If) return s;
    auto n = copy(s);
    n->body = block(s->body);
    n->orelse = block(s->orelse);
    return n;
  }

  // A sequential loop over rows around a parallel loop over columns, `for i: for j (parallel):
  // y[j] += x[i, j]`: one parallel loop over tiles of columns, each running all rows, instead of
  // one parallel loop per row.
  std::optional<Stmt> interchanged(const Stmt& rows) {
    auto outer = interchange_rows(rows);
    if (!outer) return std::nullopt;
    Stmt t = tiled(*outer);
    if (t == *outer) return std::nullopt;
    return t;
  }

  // The parallel loop `s` tiled, or as it is.
  Stmt tiled(const Stmt& s) {
    if (s->par.reduction || s->step != 1) return s;
    const Stmt* col = nullptr;
    for (const auto& x : s->body) {
      if (x->kind == StmtKind::For && !col) {
        col = &x;
        continue;
      }
      if (!plain_store(x)) return s;
    }
    if (!col) return s;
    const Stmt& c = *col;
    if (c->par.is_parallel() || c->par.reduction || mentions(c->lo, s->var) || mentions(c->hi, s->var)) return s;
    for (const auto& x : c->body)
      if (!plain_store(x)) return s;
    if (!walks_columns(s, c)) return s;

    std::string jb = "$tile" + std::to_string(next_++);
    const int64_t width = column_tile(s);
    const Span& sp = s->span;
    Type it = s->lo->ty;
    Expr tile_end = binop(BinOp::Min, binop(BinOp::Add, var(jb, sp, it), int_lit(width, sp, false, it.elem), sp, it),
                          s->hi, sp, it);
    // The columns of the tile: a parallel loop inside the tile's, which the Cpu printer vectorises.
    auto columns = [&](Block body) {
      auto l = copy(for_loop(s->var, var(jb, sp, it), tile_end, 1, std::move(body), sp));
      l->par.nthreads = width;
      return Stmt(l);
    };
    Block tile;
    Block run;
    auto flush = [&] {
      if (!run.empty()) tile.push_back(columns(std::move(run)));
      run.clear();
    };
    for (const auto& x : s->body) {
      if (&x != col) {
        run.push_back(x);
        continue;
      }
      flush();
      auto rows = copy(c);
      rows->body = {columns(c->body)};
      tile.push_back(rows);
    }
    flush();
    auto out = copy(s);
    out->var = jb;
    out->step = width;
    out->body = std::move(tile);
    return out;
  }
};

}  // namespace

Block tile_column_loops(const Block& b) { return ColumnTiler().block(b); }

}  // namespace parpy
