#include "gpu/strip_rows.h"

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include "ir/affine.h"
#include "passes/column_loops.h"

namespace parpy {
namespace {

int64_t trips(const Stmt& loop) {
  if (loop->lo->kind != ExprKind::Int || loop->hi->kind != ExprKind::Int || loop->step != 1) return -1;
  return std::max<int64_t>(0, loop->hi->ival - loop->lo->ival);
}

std::optional<Affine> affine_index(const Expr& index) {
  return affine(index, [](const Expr& e) -> std::optional<Affine> {
    if (e->kind == ExprKind::Var) return affine_atom(e->name);
    return std::nullopt;
  });
}

// Whether the statements read one array at two rows of `row` 1 to kStripRows apart: indices
// a*row + rest and a*row + rest + d*a (a != 0, the same rest).
bool reads_neighbouring_rows(const Block& stores, const std::string& row) {
  std::map<std::string, std::vector<Affine>> reads;
  for (const auto& s : stores)
    visit_expr(s->rhs, [&](const Expr& x) {
      if (x->kind != ExprKind::Access || x->args.size() != 1) return;
      if (auto a = affine_index(x->args[0]); a && a->coef(row) != 0) reads[x->name].push_back(*a);
    });
  for (const auto& [name, indices] : reads) {
    (void)name;
    for (size_t p = 0; p < indices.size(); ++p)
      for (size_t q = p + 1; q < indices.size(); ++q) {
        int64_t a = indices[p].coef(row);
        if (indices[q].coef(row) != a) continue;
        auto diff = combined(indices[p], indices[q], -1);
        if (!diff || !diff->is_constant() || diff->constant == 0 || diff->constant % a != 0) continue;
        int64_t d = diff->constant / a;
        if (d >= -kStripRows && d <= kStripRows) return true;
      }
  }
  return false;
}

class RowStripper {
 public:
  explicit RowStripper(int64_t min_threads) : min_threads_(min_threads) {}

  Block block(const Block& b) {
    Block out;
    for (const auto& s : b) {
      if (s->kind == StmtKind::For && s->par.is_parallel()) {
        out.push_back(strip(s));
        continue;
      }
      // (Not into `with parpy.gpu:` blocks, whose body is one kernel's.)
      if (s->kind == StmtKind::For || s->kind == StmtKind::While || s->kind == StmtKind::If) {
        auto n = copy(s);
        n->body = block(s->body);
        n->orelse = block(s->orelse);
        out.push_back(n);
        continue;
      }
      out.push_back(s);
    }
    return out;
  }

 private:
  int64_t min_threads_;
  int next_ = 0;  // per function: the same program always gets the same names

  // The rows loop `p` in strips, or as it is.
  Stmt strip(const Stmt& p) {
    if (p->par.reduction || p->par.nthreads <= 1 || p->body.size() != 1) return p;
    int64_t n = trips(p);
    if (n < 2 * kStripRows) return p;
    const Stmt& q = p->body[0];
    if (q->kind != StmtKind::For || !q->par.is_parallel() || q->par.reduction || q->body.empty()) return p;
    // The columns loop moves outside the row loop: its range may not depend on the row.
    if (mentions(q->lo, p->var) || mentions(q->hi, p->var)) return p;
    for (const auto& s : q->body)
      if (!plain_store(s)) return p;
    if (!reads_neighbouring_rows(q->body, p->var)) return p;
    int64_t strips = (n + kStripRows - 1) / kStripRows;
    int64_t width = trips(q);
    int64_t threads = std::min(p->par.nthreads, strips) * std::min(width < 0 ? q->par.nthreads : width, q->par.nthreads);
    if (threads < min_threads_) return p;
    const Span& sp = p->span;
    Type it = p->lo->ty;
    std::string sv = "$strip" + std::to_string(next_++);
    auto ilit = [&](int64_t v) { return int_lit(v, sp, false, it.elem); };
    Expr lo = binop(BinOp::Add, ilit(p->lo->ival), binop(BinOp::Mul, var(sv, sp, it), ilit(kStripRows), sp, it), sp, it);
    Expr hi = binop(BinOp::Min, binop(BinOp::Add, lo, ilit(kStripRows), sp, it), ilit(p->hi->ival), sp, it);
    auto rows = copy(p);  // the rows of one strip, in order, in each thread of the columns
    rows->lo = lo;
    rows->hi = hi;
    rows->par = LoopPar{};
    rows->body = q->body;
    auto columns = copy(q);
    columns->body = {Stmt(rows)};
    auto outer = copy(p);  // the strips, in parallel: the user's label and block size
    outer->var = sv;
    outer->lo = ilit(0);
    outer->hi = ilit(strips);
    outer->par.nthreads = std::min(p->par.nthreads, strips);
    outer->body = {Stmt(columns)};
    return outer;
  }
};

}  // namespace

Block strip_row_loops(const Block& b, const GpuTarget& target) {
  if (target.fill_threads <= 0) return b;
  return RowStripper(target.fill_threads / 2).block(b);
}

}  // namespace parpy
