// Interval analysis of indices. Scalars and shapes are compiled in, so after specialisation loop
// bounds are mostly literals: each index gets a range of values from the loops around it, the
// conditions that guard it and the locals it reads. An index whose range lies in its dimension is
// proved; one that takes a value outside it for an iteration that surely runs is an IndexError;
// the rest are checked at run time when asked (docs/language.md, Index bounds).
#include "ir/intrinsics.h"
#include "passes/check_bounds.h"

#include <algorithm>
#include <climits>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

namespace parpy {
namespace {

using i128 = __int128;

std::string str(i128 v) { return std::to_string(static_cast<long long>(v)); }

// Python's floor division and its ceiling counterpart (b > 0).
i128 fdiv(i128 a, i128 b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
i128 cdiv(i128 a, i128 b) { return -fdiv(-a, b); }

// An inclusive range of values, empty when lo > hi.
struct Range {
  i128 lo = 0, hi = -1;
  bool empty() const { return lo > hi; }
};

// What is known of an integer expression: a range of its values and, where it is affine in loop
// variables, its form sum(coef[v] * v) + c. `deps` names the loop variables it depends on.
struct Value {
  bool known = false;
  Range r;
  bool affine = false;
  std::map<std::string, i128> coef;
  i128 c = 0;
  std::set<std::string> deps;
};

Value constant(i128 v) {
  Value x;
  x.known = x.affine = true;
  x.r = {v, v};
  x.c = v;
  return x;
}

Value ranged(i128 lo, i128 hi, const Value& a, const Value& b) {
  Value x;
  x.known = true;
  x.r = {lo, hi};
  x.deps = a.deps;
  x.deps.insert(b.deps.begin(), b.deps.end());
  return x;
}

// A loop variable in scope. Exact: every value of `r` on the lattice base + k * step is taken, for
// every value of the other exact variables (constant bounds, narrowed by one-variable conditions).
struct LoopVar {
  Range r;
  bool exact = false;
  i128 base = 0, step = 1;
  Stmt loop;  // for the messages
};

struct Env {
  std::map<std::string, LoopVar> loops;
  std::map<std::string, Value> locals;  // locals assigned once, from what they were assigned
  bool reached = true;  // runs for every combination of values of the exact loop variables
  bool dead = false;    // never runs
};

bool fits(const Range& r, ElemSize e) {
  if (!is_int(e)) return true;
  int bits = static_cast<int>(elem_bytes(e)) * 8;
  i128 lo = is_signed_int(e) ? -(i128(1) << (bits - 1)) : 0;
  i128 hi = is_signed_int(e) ? (i128(1) << (bits - 1)) - 1 : (i128(1) << bits) - 1;
  return r.lo >= lo && r.hi <= hi;
}

// The source text of e, or its IR form where the source is unknown.
std::string text(const Expr& e) {
  std::string s = source_text(e->span);
  return s.empty() ? print_expr(e) : s;
}

class BoundsChecker {
 public:
  BoundsChecker(const Block& b, bool runtime, std::vector<BoundsSite>& sites) : runtime_(runtime), sites_(sites) {
    visit_block(b, [&](const Stmt& s) {
      if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var) ++assigned_[s->lhs->name];
      if (s->kind == StmtKind::For) loop_names_.insert(s->var);
    });
  }

  Block block(const Block& b, Env env) {
    Block out;
    for (const auto& s : b) out.push_back(stmt(s, env));
    return out;
  }

 private:
  bool runtime_;
  std::vector<BoundsSite>& sites_;
  std::map<std::string, int> assigned_;
  mutable int if_depth_ = 0;  // conditional expressions being evaluated
  std::set<std::string> loop_names_;

  Stmt stmt(const Stmt& s, Env& env) {
    auto n = copy(s);
    switch (s->kind) {
      case StmtKind::For:
        n->lo = rewrite(s->lo, env);
        n->hi = rewrite(s->hi, env);
        n->body = block(s->body, loop_env(s, env));
        return n;
      case StmtKind::While: {
        n->cond = rewrite(s->cond, env);
        Env inner = env;
        inner.reached = false;
        n->body = block(s->body, inner);
        return n;
      }
      case StmtKind::If:
        n->cond = rewrite(s->cond, env);
        n->body = block(s->body, narrow(s->cond, true, env));
        n->orelse = block(s->orelse, narrow(s->cond, false, env));
        return n;
      case StmtKind::WithGpu: n->body = block(s->body, env); return n;
      default: break;
    }
    n->lhs = rewrite(s->lhs, env);
    n->rhs = rewrite(s->rhs, env);
    n->cond = rewrite(s->cond, env);
    if (s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var) {
      const std::string& name = s->lhs->name;
      env.locals.erase(name);
      if (assigned_[name] == 1 && !loop_names_.count(name)) {
        Value v = eval(s->rhs, env);
        if (v.known) env.locals[name] = v;
      }
    }
    return n;
  }

  // The environment of a loop's body: its variable's range, and whether every iteration runs.
  Env loop_env(const Stmt& s, const Env& env) {
    Env inner = env;
    const std::string& v = s->var;
    for (auto it = inner.locals.begin(); it != inner.locals.end();)
      it = it->second.deps.count(v) ? inner.locals.erase(it) : std::next(it);
    inner.loops.erase(v);
    inner.locals.erase(v);
    if (env.dead) return inner;
    Value lo = eval(s->lo, env), hi = eval(s->hi, env);
    if (assigned_.count(v) || !lo.known || !hi.known) {
      inner.reached = false;
      return inner;
    }
    LoopVar lv;
    lv.loop = s;
    i128 step = s->step;
    bool constant = lo.r.lo == lo.r.hi && hi.r.lo == hi.r.hi;
    if (constant) {
      i128 a = lo.r.lo, b = hi.r.lo;
      if (step > 0 ? a >= b : a <= b) {
        inner.dead = true;  // range() is empty
        return inner;
      }
      i128 last = step > 0 ? a + step * fdiv(b - 1 - a, step) : a + step * fdiv(a - b - 1, -step);
      lv.r = step > 0 ? Range{a, last} : Range{last, a};
      lv.exact = true;
      lv.base = a;
      lv.step = step > 0 ? step : -step;
    } else {
      // Some iterations of the loops around may run this one zero times.
      lv.r = step > 0 ? Range{lo.r.lo, hi.r.hi - 1} : Range{hi.r.lo + 1, lo.r.hi};
      inner.reached = false;
      if (lv.r.empty()) {
        inner.dead = true;
        return inner;
      }
    }
    inner.loops[v] = lv;
    return inner;
  }

  static std::string loop_header(const Stmt& s) {
    Span h = s->span;
    h.end_line = h.line;
    h.end_col = INT_MAX;
    std::string t = source_text(h);
    t = t.substr(0, t.find('#'));  // without a comment
    while (!t.empty() && (t.back() == ' ' || t.back() == '\r')) t.pop_back();
    return t.empty() ? "for " + s->var + " in range(...)" : t;
  }

  // ---- Values ----

  bool affine_range(const Value& v, const Env& env, Range& out) const {
    out = {v.c, v.c};
    for (const auto& [name, a] : v.coef) {
      auto it = env.loops.find(name);
      if (it == env.loops.end()) return false;
      const Range& r = it->second.r;
      if (r.empty()) return false;
      out.lo += a > 0 ? a * r.lo : a * r.hi;
      out.hi += a > 0 ? a * r.hi : a * r.lo;
    }
    return true;
  }

  Value finish_affine(Value v, const Env& env) const {
    Range r;
    if (!affine_range(v, env, r)) return {};
    v.known = true;
    v.r = r;
    return v;
  }

  static bool in_int64(const Range& r) {
    return r.lo >= std::numeric_limits<int64_t>::min() && r.hi <= std::numeric_limits<int64_t>::max();
  }

  Value eval(const Expr& e, const Env& env) const {
    if (!e || !e->ty.is_scalar() || !is_int(e->ty.elem)) return {};
    Value v = eval_node(e, env);
    if (v.known && (!in_int64(v.r) || !fits(v.r, e->ty.elem))) return {};
    return v;
  }

  Value eval_node(const Expr& e, const Env& env) const {
    switch (e->kind) {
      case ExprKind::Int: return constant(e->ival);
      case ExprKind::Var: {
        auto l = env.loops.find(e->name);
        if (l != env.loops.end()) {
          Value v;
          v.known = v.affine = true;
          v.r = l->second.r;
          v.coef[e->name] = 1;
          v.deps = {e->name};
          return v;
        }
        auto x = env.locals.find(e->name);
        if (x == env.locals.end()) return {};
        // Conditions may have narrowed the loop variables it reads since.
        return x->second.affine ? finish_affine(x->second, env) : x->second;
      }
      case ExprKind::Convert: return eval(e->args[0], env);
      case ExprKind::UnOp: {
        if (e->unop != UnOp::Neg) return {};
        return scale(eval(e->args[0], env), -1, env);
      }
      case ExprKind::IfExpr: {
        // Each arm where the condition holds (or not); conditions nested in conditions are not
        // followed further, so that the work stays linear.
        bool deep = ++if_depth_ > 2;
        Value a = eval(e->args[1], deep ? env : narrow(e->args[0], true, env));
        Value b = eval(e->args[2], deep ? env : narrow(e->args[0], false, env));
        --if_depth_;
        if (!a.known || !b.known) return {};
        Value v = ranged(std::min(a.r.lo, b.r.lo), std::max(a.r.hi, b.r.hi), a, b);
        return v;
      }
      case ExprKind::BinOp: return binary(e, env);
      default: return {};
    }
  }

  Value scale(Value v, i128 k, const Env& env) const {
    if (!v.known) return {};
    if (v.affine) {
      for (auto& [n, a] : v.coef) a *= k;
      v.c *= k;
      if (k == 0) v.coef.clear();
      return finish_affine(v, env);
    }
    v.r = k >= 0 ? Range{v.r.lo * k, v.r.hi * k} : Range{v.r.hi * k, v.r.lo * k};
    return v;
  }

  Value binary(const Expr& e, const Env& env) const {
    Value a = eval(e->args[0], env), b = eval(e->args[1], env);
    auto is_const = [](const Value& v) { return v.known && v.affine && v.coef.empty(); };
    switch (e->binop) {
      case BinOp::Add:
      case BinOp::Sub: {
        if (!a.known || !b.known) return {};
        if (e->binop == BinOp::Sub) b = scale(b, -1, env);
        if (!b.known) return {};
        if (a.affine && b.affine) {
          Value v = a;
          for (const auto& [n, k] : b.coef)
            if ((v.coef[n] += k) == 0) v.coef.erase(n);
          v.c += b.c;
          v.deps.insert(b.deps.begin(), b.deps.end());
          return finish_affine(v, env);
        }
        return ranged(a.r.lo + b.r.lo, a.r.hi + b.r.hi, a, b);
      }
      case BinOp::Mul: {
        if (is_const(a)) return scale(b, a.c, env);
        if (is_const(b)) return scale(a, b.c, env);
        if (!a.known || !b.known) return {};
        i128 p[] = {a.r.lo * b.r.lo, a.r.lo * b.r.hi, a.r.hi * b.r.lo, a.r.hi * b.r.hi};
        return ranged(*std::min_element(p, p + 4), *std::max_element(p, p + 4), a, b);
      }
      case BinOp::FloorDiv:
      case BinOp::Div: {
        if (!a.known || !is_const(b) || b.c <= 0) return {};
        // Both roundings are monotonic in a for a positive divisor.
        if (e->binop == BinOp::FloorDiv) return ranged(fdiv(a.r.lo, b.c), fdiv(a.r.hi, b.c), a, b);
        return ranged(a.r.lo / b.c, a.r.hi / b.c, a, b);
      }
      case BinOp::Mod: {
        // Python's modulo: the divisor's sign.
        if (!is_const(b) || b.c <= 0) return {};
        if (a.known && a.r.lo >= 0 && a.r.hi < b.c) return a;
        return ranged(0, b.c - 1, a, b);
      }
      case BinOp::Max:
      case BinOp::Min: {
        if (!a.known || !b.known) return {};
        if (e->binop == BinOp::Max) return ranged(std::max(a.r.lo, b.r.lo), std::max(a.r.hi, b.r.hi), a, b);
        return ranged(std::min(a.r.lo, b.r.lo), std::min(a.r.hi, b.r.hi), a, b);
      }
      case BinOp::BitAnd: {
        if (is_const(b) && b.c >= 0) return ranged(0, b.c, a, b);
        if (is_const(a) && a.c >= 0) return ranged(0, a.c, a, b);
        return {};
      }
      default: return {};
    }
  }

  // ---- Conditions ----

  static Env inexact(Env env) {
    env.reached = false;
    return env;
  }

  // The environment where `c` is `truth`.
  Env narrow(const Expr& c, bool truth, const Env& env) const {
    if (env.dead || !c) return env;
    switch (c->kind) {
      case ExprKind::Bool: {
        Env out = env;
        if (c->bval != truth) out.dead = true;
        return out;
      }
      case ExprKind::UnOp:
        if (c->unop == UnOp::Not) return narrow(c->args[0], !truth, env);
        return inexact(env);
      case ExprKind::BinOp: break;
      default: return inexact(env);
    }
    BinOp op = c->binop;
    if (op == BinOp::And || op == BinOp::Or) {
      // Both operands hold (And true, Or false); otherwise only one of them is known to.
      if ((op == BinOp::And) != truth) return inexact(env);
      return narrow(c->args[1], truth, narrow(c->args[0], truth, env));
    }
    if (!is_comparison(op)) return inexact(env);
    if (!truth) {
      switch (op) {
        case BinOp::Lt: op = BinOp::Ge; break;
        case BinOp::Le: op = BinOp::Gt; break;
        case BinOp::Gt: op = BinOp::Le; break;
        case BinOp::Ge: op = BinOp::Lt; break;
        case BinOp::Eq: op = BinOp::Neq; break;
        default: op = BinOp::Eq; break;
      }
    }
    Value a = eval(c->args[0], env), b = eval(c->args[1], env);
    if (!a.known || !b.known || !a.affine || !b.affine) return inexact(env);
    // d = a - b; each constraint is `form <= 0`.
    Value d = a;
    for (const auto& [n, k] : b.coef)
      if ((d.coef[n] -= k) == 0) d.coef.erase(n);
    d.c -= b.c;
    Value neg = d;
    for (auto& [n, k] : neg.coef) k = -k;
    neg.c = -neg.c;
    Env out = env;
    auto le0 = [&](Value f, i128 shift) {
      f.c += shift;
      constrain(f, out);
    };
    switch (op) {
      case BinOp::Lt: le0(d, 1); break;    // d + 1 <= 0
      case BinOp::Le: le0(d, 0); break;
      case BinOp::Gt: le0(neg, 1); break;  // -d + 1 <= 0
      case BinOp::Ge: le0(neg, 0); break;
      case BinOp::Eq:
        le0(d, 0);
        le0(neg, 0);
        break;
      default:  // !=: true for all but one value
        if (d.coef.empty() && d.c == 0) out.dead = true;
        else if (!d.coef.empty()) out.reached = false;
        break;
    }
    return out;
  }

  // Narrows `env` to where f <= 0.
  static void constrain(const Value& f, Env& env) {
    if (env.dead) return;
    if (f.coef.empty()) {
      if (f.c > 0) env.dead = true;
      return;
    }
    if (f.coef.size() > 1) {
      env.reached = false;
      return;
    }
    const auto& [name, a] = *f.coef.begin();
    LoopVar& lv = env.loops.at(name);
    // a * v + c <= 0
    if (a > 0) lv.r.hi = std::min(lv.r.hi, fdiv(-f.c, a));
    else lv.r.lo = std::max(lv.r.lo, cdiv(f.c, -a));
    if (lv.exact) {  // only values on the loop's lattice are taken
      lv.r.lo = lv.base + lv.step * cdiv(lv.r.lo - lv.base, lv.step);
      lv.r.hi = lv.base + lv.step * fdiv(lv.r.hi - lv.base, lv.step);
    }
    if (lv.r.empty()) env.dead = true;
  }

  // ---- Subscripts ----

  Expr rewrite(const Expr& e, const Env& env) {
    if (!e) return e;
    std::vector<Expr> args(e->args.size());
    if (e->kind == ExprKind::IfExpr) {
      args[0] = rewrite(e->args[0], env);
      args[1] = rewrite(e->args[1], narrow(e->args[0], true, env));
      args[2] = rewrite(e->args[2], narrow(e->args[0], false, env));
    } else if (e->kind == ExprKind::BinOp && (e->binop == BinOp::And || e->binop == BinOp::Or)) {
      // The right operand is evaluated only where the left one did not decide.
      args[0] = rewrite(e->args[0], env);
      args[1] = rewrite(e->args[1], narrow(e->args[0], e->binop == BinOp::And, env));
    } else if (e->kind == ExprKind::Subscript) {
      return subscript(e, env);
    } else {
      for (size_t i = 0; i < e->args.size(); ++i) args[i] = rewrite(e->args[i], env);
    }
    bool changed = false;
    for (size_t i = 0; i < args.size(); ++i) changed |= args[i] != e->args[i];
    return changed ? with_args(e, std::move(args)) : e;
  }

  Expr subscript(const Expr& e, const Env& env) {
    const Expr& target = e->args[0];
    std::vector<Expr> args{rewrite(target, env)};
    for (size_t k = 1; k < e->args.size(); ++k) {
      const Expr& ix = e->args[k];
      bool slice_index = intrinsic_of(ix) == Intrinsic::SliceIndex;
      if (!target->ty.is_array() || k > target->ty.shape.size()) {
        if (slice_index) internal_fail("slice index outside an array's dimensions", ix->span);
        args.push_back(rewrite(ix, env));
        continue;
      }
      int64_t dim = target->ty.shape[k - 1];
      // The site's texts are read from the source only when needed.
      BoundsSite site{e->span, "", "", static_cast<int64_t>(k - 1), dim, target->ty.shape, ""};
      if (!slice_index) {
        args.push_back(check(ix, rewrite(ix, env), site, [&](BoundsSite& s) {
          s.array = text(target);
          s.index = text(ix);
        }, env));
        continue;
      }
      // j into the slice lo:hi: check j against the slice's length, then index lo + j.
      int64_t lo = slice_bound(ix->args[1], 0, dim, true), hi = slice_bound(ix->args[2], dim, dim, false);
      if (lo < 0 || hi > dim || lo > dim)
        fail("Slice dimensions " + std::to_string(lo) + " and " + std::to_string(hi) +
                 " out of range for shape " + std::to_string(dim),
             ix->span);
      site.extent = std::max<int64_t>(hi - lo, 0);
      Expr j = ix->args[0];
      auto describe = [&, j](BoundsSite& s) {
        s.index = text(j);
        s.array = text(ix);
        s.slice_of = text(target);
      };
      // A literal negative index counts from the slice's end, as for an array.
      if (j->kind == ExprKind::Int && j->ival < 0) j = int_lit(j->ival + site.extent, j->span, false, j->ty.elem);
      Expr checked = check(j, rewrite(j, env), site, describe, env);
      if (lo != 0) checked = binop(BinOp::Add, int_lit(lo, ix->span, false, j->ty.elem), checked, ix->span, j->ty);
      args.push_back(checked);
    }
    return with_args(e, std::move(args));
  }

  static int64_t slice_bound(const Expr& b, int64_t missing, int64_t dim, bool lower) {
    if (!b) return missing;
    if (b->kind != ExprKind::Int)
      fail(lower ? "Lower-bound of slice must be fixed." : "Upper-bound of slice must be fixed.", b->span);
    return b->ival < 0 ? b->ival + dim : b->ival;
  }

  // The index `ix` (rewritten: `rix`) against site.extent; `describe` fills in the site's texts.
  Expr check(const Expr& ix, const Expr& rix, BoundsSite site, const std::function<void(BoundsSite&)>& describe,
             const Env& env) {
    if (env.dead) return rix;
    Value v = eval(ix, env);
    int64_t n = site.extent;
    if (v.known && v.r.lo >= 0 && v.r.hi < n) return rix;
    bool exact = v.known && v.affine && env.reached;
    for (const auto& [name, a] : v.coef) exact = exact && env.loops.at(name).exact;
    if (!exact && !runtime_) return rix;
    describe(site);
    if (exact) out_of_range(v, site, env);
    sites_.push_back(site);
    const Span& sp = ix->span;
    ElemSize isz = ix->ty.elem;
    return intrinsic(Intrinsic::BoundsCheck,
                     {rix, int_lit(n, sp, false, isz), int_lit(static_cast<int64_t>(sites_.size()), sp, false, ElemSize::I32)},
                     sp, ix->ty);
  }

  [[noreturn]] static void out_of_range(const Value& v, const BoundsSite& site, const Env& env) {
    // A slice (x[b*B:(b+1)*B]) is checked through the indices of its elements.
    bool slice = site.index.find(':') != std::string::npos;
    std::string values = v.r.lo == v.r.hi ? "is " + str(v.r.lo)
                         : slice          ? "covers the indices " + str(v.r.lo) + " to " + str(v.r.hi)
                                          : "takes the values " + str(v.r.lo) + " to " + str(v.r.hi);
    std::string msg = bounds_message(site, values);
    for (const auto& [name, a] : v.coef) {
      if (name.rfind("$slice", 0) == 0) continue;  // the slice's own elements
      const LoopVar& lv = env.loops.at(name);
      msg += "\nThe loop `" + loop_header(lv.loop) + "` runs from " + str(lv.r.lo) + " to " + str(lv.r.hi) + " here.";
    }
    if (slice) {
      msg += "\nMake the loop's range match the array's shape, so that the slice lies within the array, or pass a "
             "larger array.";
    } else {
      std::string guard =
          v.r.hi >= site.extent ? site.index + " < " + std::to_string(site.extent) : site.index + " >= 0";
      msg += "\nMake the loop's range match the array's shape, guard the access (`if " + guard +
             ":`) or pass a larger array.";
    }
    index_fail(msg, site.span);
  }
};

}  // namespace

Block check_bounds(const Block& b, bool runtime, std::vector<BoundsSite>& sites) {
  return BoundsChecker(b, runtime, sites).block(b, Env{});
}

}  // namespace parpy
