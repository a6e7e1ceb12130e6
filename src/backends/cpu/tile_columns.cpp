#include "backends/cpu/tile_columns.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <thread>

#include "ir/affine.h"

namespace parpy {
namespace {

// An assignment to an array element with no call: what a tile may repeat over its columns.
bool plain_store(const Stmt& s) {
  if (s->kind != StmtKind::Assign || s->defines || s->atomic || s->lhs->kind != ExprKind::Access) return false;
  bool ok = true;
  auto check = [&](const Expr& x) {
    if (x->kind == ExprKind::Call) ok = false;
  };
  visit_expr(s->lhs, check);
  visit_expr(s->rhs, check);
  return ok;
}

// The coefficients of loop variables `j` and `i` in an index, if it is affine in them.
std::optional<std::pair<int64_t, int64_t>> strides(const Expr& index, const std::string& j, const std::string& i) {
  auto leaf = [](const Expr& e) -> std::optional<Affine> {
    return affine_atom(e->kind == ExprKind::Var ? e->name : "$" + print_expr(e));
  };
  auto a = affine(index, leaf);
  if (!a) return std::nullopt;
  return std::make_pair(a->coef(j), a->coef(i));
}

// Whether the column loop `col` inside parallel loop `par` reads memory down columns.
bool walks_columns(const Stmt& par, const Stmt& col) {
  bool columns = false, rows = false, unknown = false;
  for (const auto& s : col->body)
    for (const Expr& root : {s->lhs, s->rhs})
      visit_expr(root, [&](const Expr& x) {
        if (x->kind != ExprKind::Access) return;
        auto st = strides(x->args[0], par->var, col->var);
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

// Whether running the iterations of `rows` (sequential, over i) column by column keeps every
// dependence of `par` (parallel, over j, inside it) in order: each array the body writes is
// accessed at one index, which names one column (a*j + b*i + c with a != 0 and |b| at least a
// row's length, or no i), so no two columns touch the same element.
bool columns_independent(const Stmt& rows, const Stmt& par) {
  if (par->lo->kind != ExprKind::Int || par->hi->kind != ExprKind::Int) return false;
  int64_t width = par->hi->ival - par->lo->ival;
  std::map<std::string, std::string> index_of;  // written array -> its one index
  for (const auto& s : par->body) index_of[s->lhs->name] = print_expr(s->lhs->args[0]);
  bool ok = true;
  for (const auto& s : par->body)
    for (const Expr& root : {s->lhs, s->rhs})
      visit_expr(root, [&](const Expr& x) {
        if (x->kind != ExprKind::Access || !index_of.count(x->name)) return;
        if (print_expr(x->args[0]) != index_of[x->name]) ok = false;
      });
  if (!ok) return false;
  for (const auto& [name, index] : index_of) {
    (void)index;
    for (const auto& s : par->body) {
      if (s->lhs->name != name) continue;
      auto st = strides(s->lhs->args[0], par->var, rows->var);
      if (!st || st->first == 0) return false;
      auto [a, b] = *st;
      __int128 reach = static_cast<__int128>(std::llabs(a)) * width;
      if (b != 0 && static_cast<__int128>(std::llabs(b)) < reach) return false;
      break;
    }
  }
  return true;
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
    if (s->kind == StmtKind::For && !s->par.is_parallel() && !s->par.reduction && s->body.size() == 1)
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
    const Stmt& par = rows->body[0];
    if (par->kind != StmtKind::For || par->par.nthreads <= 1 || par->par.reduction || par->step != 1)
      return std::nullopt;
    if (mentions(par->lo, rows->var) || mentions(par->hi, rows->var)) return std::nullopt;
    for (const auto& x : par->body)
      if (!plain_store(x)) return std::nullopt;
    if (!columns_independent(rows, par)) return std::nullopt;
    auto inner = copy(rows);
    inner->body = par->body;
    auto outer = copy(par);
    outer->body = {inner};
    Stmt t = tiled(outer);
    if (t == Stmt(outer)) return std::nullopt;
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
