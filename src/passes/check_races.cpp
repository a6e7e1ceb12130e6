#include "passes/check_races.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "ir/affine.h"
#include "ir/intrinsics.h"

namespace parpy {
namespace {

// The values of a loop variable: first, first + step, ... (`trips` of them; -1 when not known).
struct Range {
  int64_t first = 0, step = 1, trips = -1;
  int64_t at(int64_t t) const { return first + step * t; }
  bool contains(int64_t v) const {
    int64_t d;
    if (trips < 0 || __builtin_sub_overflow(v, first, &d) || d % step != 0) return false;
    return d / step >= 0 && d / step < trips;
  }
};

Range range_of(const StmtNode& loop) {
  Range r;
  r.step = loop.step;
  if (loop.lo->kind != ExprKind::Int || loop.hi->kind != ExprKind::Int) return r;
  r.first = loop.lo->ival;
  int64_t span, s = loop.step > 0 ? loop.step : -loop.step;
  bool overflow = loop.step > 0 ? __builtin_sub_overflow(loop.hi->ival, loop.lo->ival, &span)
                                : __builtin_sub_overflow(loop.lo->ival, loop.hi->ival, &span);
  if (overflow) return r;
  r.trips = span <= 0 ? 0 : span / s + (span % s != 0);
  return r;
}

// Whether q = e / a exactly.
bool divides(int64_t a, int64_t e, int64_t& q) {
  if (a == 0 || (a == -1 && e == INT64_MIN) || e % a != 0) return false;
  q = e / a;
  return true;
}

// The affine forms of indices (ir/affine.h) use the atoms "I" (the parallel loop's variable),
// "L<n>" (the variable of the n-th loop of its body), "V:v" (a variable its body does not assign)
// and "E:e" (an expression of such variables).
using Linear = Affine;

Expr strip_convert(const Expr& e) { return e->kind == ExprKind::Convert ? strip_convert(e->args[0]) : e; }

// e with its run-time index checks (opts.bounds_check) replaced by the indices they check: a check
// either lets its index through unchanged or stops the code, and each access has its own check
// (with its own site), so `a[k] = a[k] + v` is an update whichever checks its indices carry.
Expr unchecked(const Expr& e) {
  return map_expr(e, [](const Expr& x) { return intrinsic_of(x) == Intrinsic::BoundsCheck ? x->args[0] : x; });
}

// `a[k] = a[k] op v` with op +, -, max or min (or `v op a[k]`, not for -) and v not reading a: the
// operator and v in the element's type. The operation may be done in a wider type of the same kind:
// integers wrap alike, and rounding keeps the order of floats (but narrowing an integer does not).
std::optional<std::pair<BinOp, Expr>> update_of(const StmtNode& s) {
  if (s.kind != StmtKind::Assign || s.lhs->kind != ExprKind::Access || !s.lhs->ty.is_scalar())
    return std::nullopt;
  Expr rhs = strip_convert(s.rhs);
  if (rhs->kind != ExprKind::BinOp) return std::nullopt;
  BinOp op = rhs->binop;
  if (op != BinOp::Add && op != BinOp::Sub && op != BinOp::Max && op != BinOp::Min) return std::nullopt;
  ElemSize t = s.lhs->ty.elem, rt = rhs->ty.elem;
  if (is_bool(t) || is_bool(rt) || is_float(t) != is_float(rt)) return std::nullopt;
  if (!is_float(t) && (op == BinOp::Max || op == BinOp::Min) && rt != t) return std::nullopt;
  std::string target = print_expr(unchecked(s.lhs));
  Expr value;
  if (print_expr(unchecked(strip_convert(rhs->args[0]))) == target)
    value = rhs->args[1];
  else if (op != BinOp::Sub && print_expr(unchecked(strip_convert(rhs->args[1]))) == target)
    value = rhs->args[0];
  else
    return std::nullopt;
  if (mentions(value, s.lhs->name)) return std::nullopt;
  if (value->ty != s.lhs->ty) value = convert(value, s.lhs->ty);
  return std::make_pair(op, value);
}

// Where an expression is evaluated in the body of the parallel loop: in `loops` (the for loops of
// the body around it, outermost first), in the statement numbered `order` (pre-order); under an if
// or while, or in a conditional part of an expression (`conditional`); under a condition or in a
// loop whose bounds depend on the loop variable (`guarded`); in a reduce() loop (`in_reduction`).
struct Place {
  std::vector<const StmtNode*> loops;
  int order = 0;
  bool conditional = false;
  bool guarded = false;
  bool in_reduction = false;
};

// An array access: a store (the left-hand side of an assignment) or a read.
struct Site {
  const StmtNode* stmt;
  Expr access;
  bool write;
  Place at;
};

struct Def {
  const StmtNode* stmt;
  Place at;
};

bool is_prefix(const std::vector<const StmtNode*>& a, const std::vector<const StmtNode*>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

class ParallelLoop {
 public:
  ParallelLoop(const StmtNode& loop, const std::map<std::string, std::vector<int64_t>>& shapes,
               std::set<const StmtNode*>& atomic)
      : loop_(loop), i_(loop.var), range_(range_of(loop)), shapes_(shapes), atomic_(atomic) {}

  void check() {
    bool changed = true;
    while (changed) {
      changed = false;
      find_dependent(loop_.body, false, changed);
    }
    collect(loop_.body, Place{});
    check_outer_local_updates();
    check_invariant_stores();
    check_carried();
    find_atomic();
  }

 private:
  const StmtNode& loop_;
  const std::string& i_;
  Range range_;
  const std::map<std::string, std::vector<int64_t>>& shapes_;
  std::set<const StmtNode*>& atomic_;
  // Locals and loop variables of the body whose value may differ between iterations.
  std::set<std::string> dependent_;
  std::map<std::string, std::vector<Def>> defs_;  // assignments to locals in the body
  std::set<std::string> inner_vars_;
  std::map<const StmtNode*, std::string> loop_atoms_;
  std::map<std::string, const StmtNode*> atom_loops_;
  std::vector<Site> sites_;
  int order_ = 0;

  bool depends(const Expr& e) const {
    bool found = false;
    visit_expr(e, [&](const Expr& x) {
      bool named = x->kind == ExprKind::Var || x->kind == ExprKind::Access;
      if (named && (x->name == i_ || dependent_.count(x->name))) found = true;
    });
    return found;
  }

  // A local depends on the loop variable when a value or a condition of one of its assignments does.
  void find_dependent(const Block& b, bool control, bool& changed) {
    auto add = [&](const std::string& n) {
      if (dependent_.insert(n).second) changed = true;
    };
    for (const auto& s : b) {
      switch (s->kind) {
        case StmtKind::Assign:
          if (s->lhs->kind == ExprKind::Var && (control || depends(s->rhs))) add(s->lhs->name);
          break;
        case StmtKind::For: {
          bool d = control || depends(s->lo) || depends(s->hi);
          if (d) add(s->var);
          find_dependent(s->body, d, changed);
          break;
        }
        case StmtKind::While: find_dependent(s->body, control || depends(s->cond), changed); break;
        case StmtKind::If:
          find_dependent(s->body, control || depends(s->cond), changed);
          find_dependent(s->orelse, control || depends(s->cond), changed);
          break;
        case StmtKind::WithGpu: find_dependent(s->body, control, changed); break;
        default: break;
      }
    }
  }

  void collect(const Block& b, const Place& at) {
    for (const auto& s : b) {
      Place here = at;
      here.order = order_++;
      switch (s->kind) {
        case StmtKind::Assign:
          reads(s->rhs, *s, here);
          if (s->lhs->kind == ExprKind::Access) {
            for (const auto& a : s->lhs->args) reads(a, *s, here);
            sites_.push_back({s.get(), s->lhs, true, here});
          } else if (s->lhs->kind == ExprKind::Var) {
            defs_[s->lhs->name].push_back({s.get(), here});
          }
          break;
        case StmtKind::For: {
          reads(s->lo, *s, here);
          reads(s->hi, *s, here);
          inner_vars_.insert(s->var);
          std::string atom = "L" + std::to_string(loop_atoms_.size());
          loop_atoms_[s.get()] = atom;
          atom_loops_[atom] = s.get();
          Place in = here;
          in.loops.push_back(s.get());
          in.guarded = here.guarded || depends(s->lo) || depends(s->hi);
          in.in_reduction = here.in_reduction || s->par.reduction;
          collect(s->body, in);
          break;
        }
        case StmtKind::While: case StmtKind::If: {
          reads(s->cond, *s, here);
          Place in = here;
          in.conditional = true;
          in.guarded = here.guarded || depends(s->cond);
          collect(s->body, in);
          collect(s->orelse, in);
          break;
        }
        case StmtKind::WithGpu: collect(s->body, here); break;
        case StmtKind::Call: case StmtKind::Return: reads(s->rhs, *s, here); break;
        default: break;
      }
    }
  }

  void reads(const Expr& e, const StmtNode& s, const Place& at) {
    if (!e) return;
    if (e->kind == ExprKind::Access) sites_.push_back({&s, e, false, at});
    // Only the condition of `a if c else b` and the left operand of and/or always run.
    bool lazy = e->kind == ExprKind::IfExpr ||
                (e->kind == ExprKind::BinOp && (e->binop == BinOp::And || e->binop == BinOp::Or));
    for (size_t k = 0; k < e->args.size(); ++k) {
      Place p = at;
      p.conditional = p.conditional || (lazy && k > 0);
      reads(e->args[k], s, p);
    }
  }

  // ---- Affine indices ----

  // No variable of the body and no memory: the same value in every iteration.
  bool invariant(const Expr& e) const {
    bool ok = true;
    visit_expr(e, [&](const Expr& x) {
      if (x->kind == ExprKind::Access || x->kind == ExprKind::Call) ok = false;
      if (x->kind == ExprKind::Var && (x->name == i_ || defs_.count(x->name) || inner_vars_.count(x->name)))
        ok = false;
    });
    return ok;
  }

  std::optional<Linear> linear(const Expr& e, const Place& at, int depth = 0) const {
    auto leaf = [&](const Expr& x) -> std::optional<Linear> {
      if (intrinsic_of(x) == Intrinsic::BoundsCheck) return linear(x->args[0], at, depth);
      if (x->kind == ExprKind::Var && is_int(x->ty.elem) && x->ty.is_scalar()) return linear_var(x->name, at, depth);
      if (!invariant(x)) return std::nullopt;
      return affine_atom("E:" + print_expr(x));
    };
    if (!is_int(e->ty.elem) || !e->ty.is_scalar()) return leaf(e);
    return affine(e, leaf);
  }

  // A local assigned once, unconditionally, before the use and in the loops around it, stands for
  // its value.
  std::optional<Linear> linear_var(const std::string& v, const Place& at, int depth) const {
    Linear l;
    if (v == i_) {
      l.terms["I"] = 1;
      return l;
    }
    for (size_t k = at.loops.size(); k-- > 0;)
      if (at.loops[k]->var == v) {
        l.terms[loop_atoms_.at(at.loops[k])] = 1;
        return l;
      }
    auto it = defs_.find(v);
    if (it != defs_.end()) {
      if (it->second.size() != 1 || depth > 16) return std::nullopt;
      const Def& d = it->second[0];
      if (d.at.conditional || d.at.order >= at.order || !is_prefix(d.at.loops, at.loops)) return std::nullopt;
      return linear(d.stmt->rhs, d.at, depth + 1);
    }
    if (inner_vars_.count(v)) return std::nullopt;
    l.terms["V:" + v] = 1;
    return l;
  }

  // ---- The checks ----

  std::string loop_name() const {
    std::string labels;
    for (const auto& l : loop_.labels)
      if (l != "_reduce") labels += (labels.empty() ? "'" : ", '") + l + "'";
    std::string s = "the parallel loop over " + i_;
    if (loop_.span.known()) s += " on line " + std::to_string(loop_.span.line);
    if (!labels.empty()) s += " (label " + labels + ")";
    return s;
  }

  // A store at an index that is the same in every iteration.
  // An update `s = s + v` (s += v, s = max(s, v), ...) of a scalar local defined outside the
  // loop: each thread would update its own copy (on a GPU, a register), so the value after the
  // loop would be one thread's.
  void check_outer_local_updates() const {
    std::set<std::string> inside = {i_};
    visit_block(loop_.body, [&](const Stmt& st) {
      if (st->kind == StmtKind::Assign && st->defines && st->lhs->kind == ExprKind::Var) inside.insert(st->lhs->name);
      if (st->kind == StmtKind::For) inside.insert(st->var);
    });
    visit_block(loop_.body, [&](const Stmt& st) {
      if (st->kind != StmtKind::Assign || st->lhs->kind != ExprKind::Var || st->lhs->ty.is_array()) return;
      const std::string& name = st->lhs->name;
      if (inside.count(name) || name.empty() || name[0] == '$') return;
      bool reads_itself = false;
      visit_expr(st->rhs, [&](const Expr& x) { reads_itself = reads_itself || (x->kind == ExprKind::Var && x->name == name); });
      if (!reads_itself) return;
      fail("This statement updates " + name + ", a local defined outside " + loop_name() +
               ", in every iteration, but the iterations run in parallel: each thread would update its own "
               "copy of " + name + " and the value after the loop would be one thread's. To combine the "
               "values of all iterations, make the loop a reduction (label it with parpy.threads(n).reduce()), "
               "or leave the loop sequential (no threads in its label).",
           st->span);
    });
  }

  void check_invariant_stores() const {
    for (const auto& w : sites_) {
      if (!w.write || w.at.guarded || depends(w.access) || dependent_.count(w.access->name)) continue;
      fail("This statement writes to " + w.access->name + " at an index that does not depend on " + i_ +
               ", so every iteration of " + loop_name() +
               " writes the same element at the same time (a data race). To combine the values of all "
               "iterations, make the loop a reduction (label it with parpy.threads(n).reduce()) or reduce "
               "inside it (a reduce() loop or sum(...)); or swap the loops so that the parallel loop runs "
               "over the written index. A store meant for one iteration only needs a condition on " +
               i_ + " (if " + i_ + " == 0:).",
           w.stmt->span);
    }
  }

  // Every iteration runs the access, once for every value of the loops around it.
  bool always_runs(const Place& at) const {
    if (at.conditional) return false;
    for (const StmtNode* l : at.loops)
      if (range_of(*l).trips < 1) return false;
    return true;
  }

  // Two iterations i1 != i2 where the store w at i1 and the access x at i2 address the same
  // element. Atoms other than i must have the same coefficient in both: a variable the body does not
  // assign has one value, and the variable of a loop around both takes the same values in both.
  std::optional<std::pair<int64_t, int64_t>> conflict(const Linear& w, const Linear& x) const {
    for (const auto* f : {&w, &x})
      for (const auto& [atom, c] : f->terms)
        if (atom != "I" && w.coef(atom) != x.coef(atom)) return std::nullopt;
    int64_t e;
    if (__builtin_sub_overflow(x.constant, w.constant, &e)) return std::nullopt;
    return solve(w.coef("I"), x.coef("I"), e);
  }

  // i1 != i2 among the loop's values with a*i1 - c*i2 == e.
  std::optional<std::pair<int64_t, int64_t>> solve(int64_t a, int64_t c, int64_t e) const {
    const Range& r = range_;
    auto other = [&](int64_t v) { return v == r.first ? r.at(1) : r.first; };
    int64_t q;
    if (a == c) {
      if (a == 0) return e == 0 ? std::make_optional(std::make_pair(r.first, r.at(1))) : std::nullopt;
      int64_t t;  // t1 - t2
      if (!divides(a, e, q) || q == 0 || !divides(r.step, q, t) || std::llabs(t) >= r.trips)
        return std::nullopt;
      return t > 0 ? std::make_pair(r.at(t), r.first) : std::make_pair(r.first, r.at(-t));
    }
    if (c == 0) {
      if (!divides(a, e, q) || !r.contains(q)) return std::nullopt;
      return std::make_pair(q, other(q));
    }
    if (a == 0) {
      if (e == INT64_MIN || !divides(c, -e, q) || !r.contains(q)) return std::nullopt;
      return std::make_pair(other(q), q);
    }
    for (int64_t t = 0; t < std::min<int64_t>(r.trips, 1 << 16); ++t) {
      int64_t i1 = r.at(t), n;
      if (__builtin_mul_overflow(a, i1, &n) || __builtin_sub_overflow(n, e, &n)) continue;
      if (divides(c, n, q) && q != i1 && r.contains(q)) return std::make_pair(i1, q);
    }
    return std::nullopt;
  }

  // A store and another access of the same element in different iterations.
  void check_carried() const {
    if (range_.trips < 2) return;
    for (const auto& w : sites_) {
      // A local naming arrays may name another array in another iteration.
      if (!w.write || !always_runs(w.at) || defs_.count(w.access->name)) continue;
      auto fw = linear(w.access->args[0], w.at);
      if (!fw) continue;
      for (const auto& x : sites_) {
        if (x.access->name != w.access->name || !x.access->ty.is_scalar() || (x.write && x.stmt == w.stmt) ||
            !always_runs(x.at))
          continue;
        auto fx = linear(x.access->args[0], x.at);
        if (!fx) continue;
        auto its = conflict(*fw, *fx);
        if (!its) continue;
        std::string it1 = "iteration " + i_ + " = " + std::to_string(its->first);
        std::string it2 = "iteration " + i_ + " = " + std::to_string(its->second);
        std::string line = w.stmt->span.known() ? " (on line " + std::to_string(w.stmt->span.line) + ")" : "";
        std::string fix =
            " The iterations of a parallel loop run in any order, at the same time, so they must not depend "
            "on each other. Run this loop sequentially (leave its label out of parpy.par), or write the "
            "results to another array than the one the loop reads.";
        if (!x.write)
          fail("This reads " + x.access->name + " at an element that another iteration of " + loop_name() +
                   " writes: " + it1 + " writes" + line + " the element that " + it2 + " reads here." + fix,
               x.access->span.known() ? x.access->span : x.stmt->span);
        fail("This statement writes to " + x.access->name + " at an element that another iteration of " +
                 loop_name() + " also writes: " + it1 + " writes it" + line + " and " + it2 + " here." + fix,
             x.stmt->span);
      }
    }
  }

  // The index split into its dimensions (one, the flat index, when the shape is not known).
  std::vector<Expr> dimensions(const Expr& access) const {
    const Expr& flat = access->args[0];
    auto it = shapes_.find(access->name);
    if (it == shapes_.end() || it->second.size() < 2) return {flat};
    const auto& shape = it->second;
    std::vector<Expr> dims(shape.size());
    Expr rest = flat;
    for (size_t k = shape.size() - 1; k > 0; --k) {
      if (rest->kind != ExprKind::BinOp || rest->binop != BinOp::Add) return {flat};
      const Expr& row = rest->args[0];
      if (row->kind != ExprKind::BinOp || row->binop != BinOp::Mul || row->args[1]->kind != ExprKind::Int ||
          row->args[1]->ival != shape[k])
        return {flat};
      dims[k] = rest->args[1];
      rest = row->args[0];
    }
    dims[0] = rest;
    return dims;
  }

  // Whether different iterations store to different elements: some dimension of the index is
  // a*i + r, a != 0, where r varies less than a step of a*i (indices stay within their dimension).
  bool distinct(const Site& w) const {
    for (const Expr& dim : dimensions(w.access)) {
      auto f = linear(dim, w.at);
      if (!f || f->coef("I") == 0) continue;
      bool known = true;
      int64_t spread = 0, stride;
      for (const auto& [atom, c] : f->terms) {
        if (atom[0] != 'L') continue;
        Range r = range_of(*atom_loops_.at(atom));
        int64_t width, steps = std::max<int64_t>(r.trips - 1, 0);
        if (r.trips < 0 || __builtin_mul_overflow(std::llabs(r.step), steps, &width) ||
            __builtin_mul_overflow(std::llabs(c), width, &width) ||
            __builtin_add_overflow(spread, width, &spread))
          known = false;
      }
      if (known && !__builtin_mul_overflow(std::llabs(f->coef("I")), std::llabs(range_.step), &stride) &&
          spread < stride)
        return true;
    }
    return false;
  }

  // Updates that two iterations may make to the same element become atomic.
  void find_atomic() {
    for (const auto& w : sites_) {
      if (!w.write || w.at.in_reduction || !update_of(*w.stmt)) continue;
      bool same_index = !depends(w.access) && !dependent_.count(w.access->name);  // guarded
      if (same_index || !distinct(w)) atomic_.insert(w.stmt);
    }
  }
};

bool runs_in_parallel(const StmtNode& s) {
  if (s.kind != StmtKind::For || s.par.nthreads <= 1 || s.par.reduction) return false;
  int64_t trips = range_of(s).trips;
  return trips < 0 || trips > 1;
}

Block with_atomics(const Block& b, const std::set<const StmtNode*>& atomic) {
  Block out;
  for (const auto& s : b) {
    auto n = with_blocks(s, [&](const Block& x) { return with_atomics(x, atomic); });
    if (atomic.count(s.get())) {
      auto [op, value] = *update_of(*s);
      n->atomic = true;
      n->rhs = binop(op, s->lhs, value, s->rhs->span, s->lhs->ty);
    }
    out.push_back(n);
  }
  return out;
}

}  // namespace

Block check_races(const Block& b, const std::map<std::string, Type>& arrays) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, t] : arrays) shapes[name] = t.shape;
  // Locals naming arrays have the arrays' type.
  visit_block(b, [&](const Stmt& s) {
    if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var && s->lhs->ty.is_array())
      shapes[s->lhs->name] = s->lhs->ty.shape;
  });
  std::set<const StmtNode*> atomic;
  visit_block(b, [&](const Stmt& s) {
    if (runs_in_parallel(*s)) ParallelLoop(*s, shapes, atomic).check();
  });
  return atomic.empty() ? b : with_atomics(b, atomic);
}

}  // namespace parpy
