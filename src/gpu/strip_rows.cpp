#include "gpu/strip_rows.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <vector>

#include "gpu/vectorize.h"
#include "ir/affine.h"
#include "passes/column_loops.h"
#include "passes/constant_fold.h"
#include "passes/inline_calls.h"

namespace parpy {
namespace {

// The strip loops' variables: $strip0, $strip1, ...
const std::string kStripVar = "$strip";

std::optional<Affine> affine_index(const Expr& index) {
  return affine(index, [](const Expr& e) -> std::optional<Affine> {
    if (e->kind == ExprKind::Var) return affine_atom(e->name);
    return std::nullopt;
  });
}

// Reads of one array at rows i + d of a strip's row loop (the same index otherwise): the
// registers that keep rows dmin..dmax while the loop walks down, one new row loaded per row.
struct RowGroup {
  std::string array;
  Expr index;    // the index of one of the reads, at row offset d0
  int64_t d0 = 0;
  ElemSize elem = ElemSize::F32;
  std::map<int64_t, int> offsets;  // d -> reads
};

// Whether e may skip evaluating part of itself (a conditional expression, `and`, `or`): a read
// inside it may not happen in the program, so it may not be loaded ahead.
bool conditional(const Expr& e) {
  bool c = false;
  visit_expr(e, [&](const Expr& x) {
    if (x->kind == ExprKind::IfExpr || (x->kind == ExprKind::BinOp && (x->binop == BinOp::And || x->binop == BinOp::Or)))
      c = true;
  });
  return c;
}

// A read's group (the array, the row's coefficient c, the residue of the constant modulo c and
// the other terms) and its row offset d: index = c * (row + d) + residue + other terms.
std::optional<std::pair<std::string, int64_t>> row_read(const Expr& x, const std::string& row) {
  if (x->kind != ExprKind::Access || x->args.size() != 1) return std::nullopt;
  auto a = affine_index(x->args[0]);
  if (!a || a->coef(row) == 0) return std::nullopt;
  int64_t c = a->coef(row), k = a->constant, m = c < 0 ? -c : c;
  int64_t r = ((k % m) + m) % m;
  int64_t d = (k - r) / c;
  std::string key = x->name + "|" + std::to_string(c) + "|" + std::to_string(r) + "|";
  for (const auto& [atom, coef] : a->terms)
    if (atom != row && coef != 0) key += atom + "*" + std::to_string(coef) + ",";
  return std::make_pair(key, d);
}

// The groups of reads at neighbouring rows of `row` in `stores`: those with reads at two rows or
// more, at most kStripRows apart. For `registers`, only the groups that may be kept in registers:
// float reads of arrays the stores do not write, none of them in a conditional expression.
std::map<std::string, RowGroup> row_groups(const Block& stores, const std::string& row, bool registers) {
  std::map<std::string, bool> written;
  for (const auto& s : stores) written[s->lhs->name] = true;
  std::map<std::string, RowGroup> groups;
  for (const auto& s : stores) {
    if (registers && conditional(s->rhs)) return {};
    visit_expr(s->rhs, [&](const Expr& x) {
      if (x->kind != ExprKind::Access) return;
      if (registers && (written.count(x->name) || !is_float(x->ty.elem))) return;
      auto rd = row_read(x, row);
      if (!rd) return;
      RowGroup& g = groups[rd->first];
      if (!g.index) {
        g.array = x->name;
        g.index = x->args[0];
        g.d0 = rd->second;
        g.elem = x->ty.elem;
      }
      g.offsets[rd->second]++;
    });
  }
  for (auto it = groups.begin(); it != groups.end();) {
    const auto& o = it->second.offsets;
    if (o.size() < 2 || o.rbegin()->first - o.begin()->first > kStripRows)
      it = groups.erase(it);
    else
      ++it;
  }
  return groups;
}

// A sequential loop `q` over a plane's rows around a parallel loop over its columns whose body
// is plain stores, as a parallel loop, where its iterations are independent: every array the
// stores write is accessed at one index only (columns_independent), affine in the row j and the
// column k, b*j + a*k + terms of neither, with a and b nonzero and |b| at least a row's reach
// |a| * columns (or |a| at least |b| * rows), so that each (row, column) iteration has elements
// of its own (the arrays do not share memory where strips apply). Subexpressions that are not
// affine may not mention j or k (`y[j + j % 2]` writes element 2 at rows 1 and 2). nullopt
// otherwise.
std::optional<Stmt> independent_rows(const Stmt& q) {
  if (q->kind != StmtKind::For || q->par.is_parallel() || q->par.reduction || q->body.size() != 1 || constant_trips(q) < 1)
    return std::nullopt;
  const Stmt& cols = q->body[0];
  if (cols->kind != StmtKind::For || !cols->par.is_parallel() || cols->par.reduction || cols->body.empty() ||
      constant_trips(cols) < 1)
    return std::nullopt;
  __int128 rows = constant_trips(q), width = constant_trips(cols);
  for (const auto& s : cols->body) {
    if (!plain_store(s)) return std::nullopt;
    auto a = affine(s->lhs->args[0], [&](const Expr& e) -> std::optional<Affine> {
      if (e->kind == ExprKind::Var) return affine_atom(e->name);
      if (mentions(e, q->var) || mentions(e, cols->var)) return std::nullopt;
      return affine_atom("$" + print_expr(e));
    });
    if (!a) return std::nullopt;
    __int128 b = std::llabs(a->coef(q->var)), c = std::llabs(a->coef(cols->var));
    if (b == 0 || c == 0 || (b < c * width && c < b * rows)) return std::nullopt;
  }
  if (!columns_independent(q, cols)) return std::nullopt;
  auto par = copy(q);
  par->par.nthreads = constant_trips(q);
  return Stmt(par);
}

class RowStripper {
 public:
  explicit RowStripper(int64_t min_threads) : min_threads_(min_threads) {}

  Block block(const Block& b) {
    return map_host_statements(b, [&](const Stmt& s) -> std::optional<Block> {
      if (s->kind == StmtKind::For && s->par.is_parallel()) return Block{strip(s)};
      return std::nullopt;
    });
  }

 private:
  // The strip's row loop `rows` with the reads of each group of neighbouring rows in registers
  // (row_groups): registers for rows i + dmin .. i + dmax - 1 loaded before the loop, row i + dmax
  // loaded at the top of each iteration, the reads taken from the registers, and the registers
  // moved down one row at the end. Every row it loads is one the loop reads (rows dmin and dmax
  // are read at its first row, those between them lie between in memory). Returns the statements
  // that replace the loop.
  Block rotate(const std::shared_ptr<StmtNode>& rows, const Span& sp) {
    std::map<std::string, RowGroup> groups = row_groups(rows->body, rows->var, true);
    if (groups.empty()) return {Stmt(rows)};
    Type it = rows->lo->ty;
    Expr i = var(rows->var, sp, it);
    auto at = [&](const RowGroup& g, const Expr& row, int64_t d) {  // the read at row + d
      Expr shifted = binop(BinOp::Add, row, int_lit(d - g.d0, sp, false, it.elem), sp, it);
      return access(g.array, substitute(g.index, {{rows->var, shifted}}), g.elem, sp);
    };
    Block before, top, bottom;
    std::map<std::string, std::map<int64_t, Expr>> regs;  // group -> row offset -> register
    for (const auto& [key, g] : groups) {
      int64_t dmin = g.offsets.begin()->first, dmax = g.offsets.rbegin()->first;
      std::map<int64_t, Expr>& r = regs[key];
      int n = next_rot_++;
      for (int64_t d = dmin; d <= dmax; ++d) {
        r[d] = var("$rot" + std::to_string(n) + "_" + std::to_string(d - dmin), sp, Type::scalar(g.elem));
        // Row dmax is loaded at the top of the loop; its register starts at zero.
        Expr init = d < dmax ? at(g, rows->lo, d) : float_lit(0.0, sp, false, g.elem);
        auto def = copy(assign(r[d], init, sp));
        def->defines = true;
        before.push_back(def);
      }
      top.push_back(assign(r[dmax], at(g, i, dmax), sp));
      for (int64_t d = dmin; d < dmax; ++d) bottom.push_back(assign(r[d], r[d + 1], sp));
    }
    Block body = top;
    for (const auto& s : rows->body) {
      auto n = copy(s);
      n->rhs = map_expr(s->rhs, [&](const Expr& x) -> Expr {
        auto rd = row_read(x, rows->var);
        if (!rd || !regs.count(rd->first)) return x;
        return regs[rd->first].at(rd->second);
      });
      body.push_back(n);
    }
    body.insert(body.end(), bottom.begin(), bottom.end());
    rows->body = std::move(body);
    before.push_back(rows);
    return before;
  }

  int64_t min_threads_;
  int next_rot_ = 0;
  int next_ = 0;  // per function: the same program always gets the same names

  // The rows loop `p` in strips, or as it is.
  Stmt strip(const Stmt& p) {
    if (p->par.reduction || p->par.nthreads <= 1 || p->body.size() != 1) return p;
    int64_t n = constant_trips(p);
    if (n < 2 * kStripRows) return p;
    // The parallel loops inside the rows loop, outer to inner (the columns; in a 3-D stencil with
    // every loop parallel, a plane's rows and its columns): each the only statement of the one
    // around it, the innermost holding only stores. They move outside the row loop: their ranges
    // may not depend on the row.
    std::vector<Stmt> inner;
    int64_t threads = std::min(p->par.nthreads, (n + kStripRows - 1) / kStripRows);
    for (Stmt q = p->body[0];; q = q->body[0]) {
      if (auto par = independent_rows(q)) q = *par;
      if (q->kind != StmtKind::For || !q->par.is_parallel() || q->par.reduction || q->body.empty()) return p;
      if (mentions(q->lo, p->var) || mentions(q->hi, p->var)) return p;
      inner.push_back(q);
      int64_t width = constant_trips(q);
      threads *= std::min(width < 0 ? q->par.nthreads : width, q->par.nthreads);
      if (q->body.size() != 1 || q->body[0]->kind != StmtKind::For) break;
    }
    const Block stores = inner.back()->body;
    for (const auto& s : stores)
      if (!plain_store(s)) return p;
    if (row_groups(stores, p->var, false).empty() || threads < min_threads_) return p;
    // Where the innermost loop runs its columns in 128-bit groups (gpu/vectorize.h), a thread per
    // group, not per column (the threads are counted by columns above: a thread does the work of
    // four); the other threads would have none (H200, 7-point stencil 512^3: 0.336 ms with a thread
    // per column, three in four idle). Not for a loop that the rows label's spare threads split
    // into chunks (the first).
    if (inner.size() > 1) {
      const Stmt& q = inner.back();
      int64_t lanes = column_group_lanes(stores, q->var);
      if (lanes > 1 && constant_trips(q) > 0) {
        int64_t first = py_floordiv(q->lo->ival, lanes) * lanes;  // the first group's column
        int64_t groups = (q->hi->ival - first + lanes - 1) / lanes;
        if (groups < q->par.nthreads) {
          auto n = copy(q);
          n->par.nthreads = groups;
          inner.back() = n;
        }
      }
    }
    int64_t strips = (n + kStripRows - 1) / kStripRows;
    const Span& sp = p->span;
    Type it = p->lo->ty;
    std::string sv = kStripVar + std::to_string(next_++);
    auto ilit = [&](int64_t v) { return int_lit(v, sp, false, it.elem); };
    Expr lo = binop(BinOp::Add, ilit(p->lo->ival), binop(BinOp::Mul, var(sv, sp, it), ilit(kStripRows), sp, it), sp, it);
    Expr hi = binop(BinOp::Min, binop(BinOp::Add, lo, ilit(kStripRows), sp, it), ilit(p->hi->ival), sp, it);
    auto rows = copy(p);  // the rows of one strip, in order, in each thread of the inner loops
    rows->lo = lo;
    rows->hi = hi;
    rows->par = LoopPar{};
    rows->body = stores;
    // The threads the rows label asked for beyond one per strip go to chunks of the columns
    // where each columns thread would otherwise walk several columns: chunk c of the first inner
    // loop runs its columns lo + c*C .. lo + c*C + C, C a multiple of its threads.
    const Stmt& cols = inner.front();
    int64_t width = constant_trips(cols), chunks = 1, chunk = 0;
    if (width > 0 && cols->par.nthreads > 0) {
      int64_t per_thread = (width + cols->par.nthreads - 1) / cols->par.nthreads;
      chunks = std::max<int64_t>(1, std::min(p->par.nthreads / std::min(p->par.nthreads, strips), per_thread));
      int64_t steps = (per_thread + chunks - 1) / chunks;  // columns per thread in a chunk
      chunk = steps * cols->par.nthreads;
      chunks = (width + chunk - 1) / chunk;
    }
    // Where the user left the block size to parpy (1024 on every loop of the nest), blocks of
    // kStripBlock threads (H200, 5-point stencil 8192x8192: 0.193 ms in blocks of 1024, 0.172 in
    // blocks of 256).
    bool default_tpb = p->par.tpb == 1024;
    for (const auto& q : inner) default_tpb = default_tpb && q->par.tpb == 1024;
    int64_t tpb = default_tpb ? kStripBlock : p->par.tpb;
    Block body = rotate(rows, sp);
    for (auto q = inner.rbegin(); q != inner.rend(); ++q) {
      auto l = copy(*q);
      l->par.tpb = tpb;
      l->body = std::move(body);
      if (*q == cols && chunks > 1) {
        std::string cv = "$chunk" + std::to_string(next_ - 1);
        Expr c = var(cv, sp, it);
        Expr clo = binop(BinOp::Add, ilit(cols->lo->ival), binop(BinOp::Mul, c, ilit(chunk), sp, it), sp, it);
        l->lo = clo;
        l->hi = binop(BinOp::Min, binop(BinOp::Add, clo, ilit(chunk), sp, it), ilit(cols->hi->ival), sp, it);
        auto ch = copy(p);  // the chunks, on the rows label's threads
        ch->var = cv;
        ch->lo = ilit(0);
        ch->hi = ilit(chunks);
        ch->par.nthreads = chunks;
        ch->par.tpb = tpb;
        ch->body = {Stmt(l)};
        body = {Stmt(ch)};
        continue;
      }
      body = {Stmt(l)};
    }
    auto outer = copy(p);  // the strips, in parallel: the user's label and block size
    outer->var = sv;
    outer->lo = ilit(0);
    outer->hi = ilit(strips);
    outer->par.nthreads = std::min(p->par.nthreads, strips);
    outer->par.tpb = tpb;
    outer->body = std::move(body);
    return outer;
  }
};

}  // namespace

bool runs_strips(const Block& body) {
  bool strips = false;
  visit_block(body, [&](const Stmt& s) {
    if (s->kind == StmtKind::For && s->var.rfind(kStripVar, 0) == 0) strips = true;
  });
  return strips;
}

Block strip_row_loops(const Block& b, const GpuTarget& target) {
  if (target.fill_threads <= 0) return b;
  return RowStripper(target.fill_threads / 2).block(b);
}

}  // namespace parpy
