#include "passes/typecheck.h"
#include "ir/intrinsics.h"
#include "ir/reductions.h"

#include <cmath>
#include <limits>
#include <set>
#include <sstream>

namespace parpy {
namespace {

enum class Cat { Bool, Signed, Unsigned, Float };

Cat cat(ElemSize e) {
  if (is_bool(e)) return Cat::Bool;
  if (is_signed_int(e)) return Cat::Signed;
  if (is_unsigned_int(e)) return Cat::Unsigned;
  return Cat::Float;
}

// "[2,3]" (the form of this message, without spaces).
std::string compact_shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << "]";
  return os.str();
}

class TypeChecker {
 public:
  TypeChecker(const std::map<std::string, Type>& params, const CompileOptions& opts, std::string fname,
              const CallTargets& calls)
      : opts_(opts), fname_(std::move(fname)), calls_(calls) {
    scopes_.emplace_back(params.begin(), params.end());
  }

  // Helper mode: `return` is allowed; with a declared result type returns convert to it.
  void allow_returns(std::optional<Type> declared) {
    helper_ = true;
    declared_ret_ = std::move(declared);
  }

  // The helper's result: the declared type, else the common type of its returns.
  Type result_type(const Span& def_span) {
    if (declared_ret_) return *declared_ret_;
    if (returns_.empty()) return Type::void_();
    std::optional<ElemSize> strong, weak;
    for (const Expr& r : returns_) {
      if (!r->ty.is_scalar()) {
        if (returns_.size() > 1 && r->ty != returns_[0]->ty)
          type_fail("Found conflicting types of return statements", def_span);
        continue;
      }
      std::optional<ElemSize>& slot = r->weak ? weak : strong;
      if (!slot) slot = r->ty.elem;
      else if (cat(*slot) != cat(r->ty.elem)) type_fail("Found conflicting types of return statements", r->span);
      else if (elem_bytes(r->ty.elem) > elem_bytes(*slot)) slot = r->ty.elem;
    }
    if (!returns_[0]->ty.is_scalar()) return returns_[0]->ty;
    if (!strong) return Type::scalar(is_float(*weak) ? fsz() : isz());
    // A weak return only needs to fit the typed ones' kind (an int literal fits a float).
    if (weak && (is_bool(*weak) != is_bool(*strong) || (is_float(*weak) && !is_float(*strong))))
      type_fail("Found conflicting types of return statements", def_span);
    return Type::scalar(*strong);
  }

  // Converts every return value to the helper's result type.
  Block convert_returns(const Block& b, const Type& ret) {
    return map_block(b, [&](const Stmt& s) -> Block {
      if (s->kind != StmtKind::Return || !ret.is_scalar()) return {s};
      auto n = copy(s);
      n->rhs = coerce(s->rhs, ret.elem);
      return {n};
    });
  }

  Block block(const Block& b) {
    Block out;
    for (const auto& s : b) out.push_back(stmt(s));
    return out;
  }

 private:
  const CompileOptions& opts_;
  std::string fname_;
  const CallTargets& calls_;
  std::vector<std::map<std::string, Type>> scopes_;
  bool helper_ = false;
  std::optional<Type> declared_ret_;
  std::vector<Expr> returns_;
  // Loop variables known to be non-negative.
  std::set<std::string> non_negative_vars_;

  static bool assigns(const Block& b, const std::string& name) {
    bool found = false;
    visit_block(b, [&](const Stmt& s) {
      if ((s->kind == StmtKind::Assign && s->lhs->kind == ExprKind::Var && s->lhs->name == name) ||
          (s->kind == StmtKind::For && s->var == name))
        found = true;
    });
    return found;
  }

  const Type* lookup(const std::string& n) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(n);
      if (f != it->end()) return &f->second;
    }
    return nullptr;
  }

  ElemSize isz() const { return opts_.int_size(); }
  ElemSize fsz() const { return opts_.float_size(); }

  // A weak literal or weak expression gets a concrete type; typed expressions get a conversion.
  Expr coerce(const Expr& e, ElemSize t) {
    if (e->ty.is_scalar() && e->ty.elem == t && !e->weak) return e;
    if (e->weak) {
      if (e->kind == ExprKind::Int) {
        if (is_float(t)) return float_lit(static_cast<double>(e->ival), e->span, false, t);
        return int_lit(e->ival, e->span, false, t);
      }
      if (e->kind == ExprKind::Float) return float_lit(e->fval, e->span, false, t);
      auto n = copy(e);
      n->weak = false;
      if (n->ty.elem == t) return n;
      return convert(n, Type::scalar(t));
    }
    return convert(e, Type::scalar(t));
  }

  void require_scalar(const Expr& e, const char* what) {
    if (!e->ty.is_scalar()) type_fail(what, e->span);
  }

  // The common type of two scalar operands (docs/language.md, Types).
  ElemSize unify(Expr& a, Expr& b, const Span& sp) {
    ElemSize A = a->ty.elem, B = b->ty.elem;
    ElemSize r;
    if (a->weak && b->weak) {
      bool fl = is_float(A) || is_float(B);
      r = fl ? fsz() : isz();
      if (fl) {
        a = weak_as(a, r);
        b = weak_as(b, r);
      }
      return r;
    }
    if (a->weak || b->weak) {
      Expr& w = a->weak ? a : b;
      Expr& s = a->weak ? b : a;
      ElemSize S = s->ty.elem, W = w->ty.elem;
      if (is_bool(S) || is_bool(W)) incompatible(A, B, sp);
      if (is_float(W) && !is_float(S)) {
        r = fsz();
        s = coerce(s, r);
        w = coerce(w, r);
        return r;
      }
      w = coerce(w, S);
      return S;
    }
    if (cat(A) != cat(B)) incompatible(A, B, sp);
    r = elem_bytes(A) >= elem_bytes(B) ? A : B;
    a = coerce(a, r);
    b = coerce(b, r);
    return r;
  }

  // Kinds do not mix implicitly: name both types and the conversion that makes them agree (to
  // the float, else the signed, else the non-bool type).
  [[noreturn]] static void incompatible(ElemSize a, ElemSize b, const Span& sp) {
    ElemSize to = is_float(a) || (!is_float(b) && (is_signed_int(a) || is_bool(b))) ? a : b;
    type_fail(std::string("Incompatible element types ") + elem_long_name(a) + " and " + elem_long_name(b) +
                  ".\nValues of different kinds (bool, signed integer, unsigned integer, float) do not mix: "
                  "convert one operand explicitly, as in parpy.operators." +
                  elem_long_name(to) + "(...).",
              sp);
  }

  // Keeps a weak expression weak while giving it another default type.
  Expr weak_as(const Expr& e, ElemSize t) {
    if (e->ty.elem == t) return e;
    Expr c = coerce(e, t);
    auto n = copy(c);
    n->weak = true;
    return n;
  }

  Expr typed(std::shared_ptr<ExprNode> n, Type t, bool weak = false) {
    n->ty = std::move(t);
    n->weak = weak;
    return n;
  }

  Expr expr(const Expr& e) {
    switch (e->kind) {
      case ExprKind::Var: {
        const Type* t = lookup(e->name);
        if (!t) name_fail("Found reference to unknown variable " + e->name, e->span);
        if (t->is_unknown()) type_fail("Variable " + e->name + " has unknown type", e->span);
        return with_type(e, *t);
      }
      case ExprKind::Int: case ExprKind::Float: case ExprKind::Bool: return e;
      case ExprKind::String: fail("String literal may only be used in dict lookups", e->span);
      case ExprKind::Tuple: fail("Tuples are not allowed outside of indexing", e->span);
      case ExprKind::Slice: fail("Slices are not allowed outside of indexing", e->span);
      case ExprKind::UnOp: return unary(e);
      case ExprKind::BinOp: return binary(e);
      case ExprKind::IfExpr: {
        Expr c = expr(e->args[0]);
        if (!c->ty.is_scalar() || !is_bool(c->ty.elem))
          type_fail("If expression has condition of invalid type " + c->ty.str(), c->span);
        Expr a = expr(e->args[1]), b = expr(e->args[2]);
        if (!a->ty.is_scalar() || !b->ty.is_scalar())
          type_fail("Unsupported type " + (a->ty.is_scalar() ? b : a)->ty.str() +
                        " of conditional expression",
                    e->span);
        ElemSize r = unify(a, b, e->span);
        auto n = copy(e);
        n->args = {c, a, b};
        return typed(n, Type::scalar(r), a->weak && b->weak);
      }
      case ExprKind::Subscript: return subscript(e);
      case ExprKind::Convert: {
        Expr a = expr(e->args[0]);
        if (!a->ty.is_scalar())
          type_fail("Expected scalar type in type conversion, found " + a->ty.str(), e->span);
        if (a->weak && (a->kind == ExprKind::Int || a->kind == ExprKind::Float)) {
          if (a->kind == ExprKind::Float && !is_float(e->ty.elem)) return with_args(e, {a});
          auto c = copy(coerce(a, e->ty.elem));
          c->span = e->span;
          return c;
        }
        return with_args(e, {a});
      }
      case ExprKind::Neutral: {
        Expr a = expr(e->args[0]);
        if (!a->ty.is_scalar())
          type_fail("Unexpected argument of type " + a->ty.str() + " passed to tensor reduction builtin",
                    e->span);
        ElemSize t = a->weak ? (is_float(a->ty.elem) ? fsz() : isz()) : a->ty.elem;
        if (is_bool(t))
          type_fail("Unexpected argument of type " + a->ty.str() + " passed to tensor reduction builtin",
                    e->span);
        return neutral_literal(e->reduce, t, e->span);
      }
      case ExprKind::Call: return call(e);
      case ExprKind::Reduce:
        fail(std::string("Found reduction operation ") + reduce_name(e->reduce) +
                 " in unsupported position.",
             e->span);
      case ExprKind::Access: return e;
    }
    internal_fail("unknown expression", e->span);
  }

  // Arguments unify with the declared parameter types; the call is renamed to its target.
  Expr call(const Expr& e) {
    auto it = calls_.find(e->name);
    if (it == calls_.end()) fail("Call to unknown function " + e->name, e->span);
    const CallTarget& t = it->second;
    if (t.params.size() != e->args.size())
      fail("Function " + e->name + " expected " + std::to_string(t.params.size()) +
               " arguments, but received " + std::to_string(e->args.size()) + ".",
           e->span);
    std::vector<Expr> args;
    for (size_t i = 0; i < e->args.size(); ++i) {
      Expr a = expr(e->args[i]);
      const Type& p = t.params[i];
      if (p.is_pointer()) {
        // A pointer accepts an array or a row of one (x or x[i]) with the same element type.
        bool ok = (a->ty.is_array() || a->ty.is_pointer()) && a->ty.elem == p.elem;
        if (!ok)
          type_fail("Found incompatible types in function call:\nCannot unify incompatible types " +
                        p.str() + " and " + a->ty.str(),
                    e->args[i]->span);
        args.push_back(a);
        continue;
      }
      try {
        args.push_back(store_value(a, p, e->args[i]->span));
      } catch (const CompileError& err) {
        type_fail("Found incompatible types in function call:\n" + err.message(), e->args[i]->span);
      }
    }
    auto n = copy(e);
    n->name = t.c_name;
    n->args = std::move(args);
    return typed(n, t.ret);
  }

  Expr unary(const Expr& e) {
    Expr a = expr(e->args[0]);
    if (!a->ty.is_scalar()) type_fail("Expected scalar but found non-scalar tensor", e->span);
    ElemSize t = a->ty.elem;
    auto n = copy(e);
    switch (e->unop) {
      case UnOp::Neg:
        if (is_bool(t)) type_fail("Invalid type " + a->ty.str() + " of unary minus", e->span);
        n->args = {a};
        return typed(n, a->ty, a->weak);
      case UnOp::Not:
        if (!is_bool(t)) type_fail("Invalid type " + a->ty.str() + " of boolean negation", e->span);
        n->args = {a};
        return typed(n, a->ty);
      case UnOp::BitNot:
        if (!is_int(t)) type_fail("Invalid type " + a->ty.str() + " of bitwise negation", e->span);
        n->args = {a};
        return typed(n, a->ty, a->weak);
      case UnOp::Abs:
        if (is_bool(t)) type_fail("Unexpected type " + a->ty.str() + " of abs builtin", e->span);
        if (is_unsigned_int(t) && !a->weak) return a;
        n->args = {a};
        return typed(n, a->ty, a->weak);
      default: {
        if (a->weak) a = coerce(a, fsz());
        if (!is_float(a->ty.elem)) {
          if (e->unop == UnOp::Tanh)
            type_fail("Unexpected type " + a->ty.str() + " of tanh builtin (expected float)", e->span);
          type_fail("Unexpected type " + a->ty.str() + " of unary builtin (expected float)", e->span);
        }
        n->args = {a};
        return typed(n, a->ty);
      }
    }
  }

  Expr binary(const Expr& e) {
    Expr a = expr(e->args[0]), b = expr(e->args[1]);
    if (!a->ty.is_scalar() || !b->ty.is_scalar())
      type_fail("Binary operator not supported for non-scalar tensors", e->span);
    BinOp op = e->binop;
    auto n = copy(e);
    if (op == BinOp::And || op == BinOp::Or) {
      if (!is_bool(a->ty.elem) || !is_bool(b->ty.elem))
        type_fail("Invalid type " + (is_bool(a->ty.elem) ? b : a)->ty.str() + " of boolean operation",
                  e->span);
      n->args = {a, b};
      return typed(n, Type::scalar(ElemSize::Bool));
    }
    bool weak = a->weak && b->weak;
    if (op == BinOp::Pow && is_int(a->ty.elem) && b->kind == ExprKind::Int && b->ival < 0 &&
        (b->weak || is_signed_int(b->ty.elem))) {
      // An integer to a negative power known when compiling is a float, as in Python
      // (docs/language.md, Types).
      ElemSize f = fsz();
      if (f == ElemSize::F16)
        type_fail("Invalid type float16 of floating-point arithmetic operation", e->span);
      n->args = {weak ? weak_as(a, f) : coerce(a, f), weak ? weak_as(b, f) : coerce(b, f)};
      return typed(n, Type::scalar(f), weak);
    }
    ElemSize r = unify(a, b, e->span);
    n->args = {a, b};
    std::string tstr = Type::scalar(r).str();
    if (is_comparison(op)) return typed(n, Type::scalar(ElemSize::Bool));
    switch (op) {
      case BinOp::Max: case BinOp::Min:
        if (is_bool(r)) type_fail("Unexpected type " + tstr + " of builtin", e->span);
        break;
      case BinOp::Add: case BinOp::Sub: case BinOp::Mul: case BinOp::Div:
        if (is_bool(r)) type_fail("Invalid type " + tstr + " of arithmetic operation", e->span);
        break;
      case BinOp::FloorDiv: case BinOp::Mod:
        if (is_bool(r)) type_fail("Invalid type " + tstr + " of integer arithmetic operation", e->span);
        break;
      case BinOp::Pow:
        if (is_bool(r) || r == ElemSize::F16)
          type_fail("Invalid type " + tstr + " of floating-point arithmetic operation", e->span);
        if (is_signed_int(r) && !non_negative(b))
          type_fail("The exponent of an integer ** may be negative, and a negative exponent makes the "
                    "result a float (2 ** -1 is 0.5), so the result's type is not known when compiling."
                    "\nUse an exponent known when compiling (a literal or a scalar argument), one that "
                    "is never negative (parpy.operators.max(k, 0), a loop variable counting up from 0), "
                    "or a float base (parpy.operators.float64(x) ** k).",
                    e->span);
        break;
      case BinOp::BitAnd: case BinOp::BitOr: case BinOp::BitXor: case BinOp::Shl: case BinOp::Shr:
        if (!is_int(r)) type_fail("Invalid type " + tstr + " of bitwise operation", e->span);
        break;
      case BinOp::Atan2:
        if (weak) {
          r = fsz();
          n->args = {coerce(a, r), coerce(b, r)};
          weak = false;
        }
        if (!is_float(r)) type_fail("Operation atan2 is only supported for floats.", e->span);
        break;
      default: break;
    }
    return typed(n, Type::scalar(r), weak);
  }

  // Whether a typed integer expression is provably never negative (wrap-around aside).
  bool non_negative(const Expr& e) const {
    if (is_unsigned_int(e->ty.elem)) return true;
    switch (e->kind) {
      case ExprKind::Int: return e->ival >= 0;
      case ExprKind::Var: return non_negative_vars_.count(e->name) > 0;
      case ExprKind::UnOp: return e->unop == UnOp::Abs;
      case ExprKind::Convert: {
        // A widening conversion of a non-negative integer.
        ElemSize from = e->args[0]->ty.elem, to = e->ty.elem;
        bool widens = is_signed_int(from) ? elem_bytes(to) >= elem_bytes(from) : elem_bytes(to) > elem_bytes(from);
        return is_int(from) && is_int(to) && widens && non_negative(e->args[0]);
      }
      case ExprKind::IfExpr: return non_negative(e->args[1]) && non_negative(e->args[2]);
      case ExprKind::BinOp: {
        const Expr &a = e->args[0], &b = e->args[1];
        switch (e->binop) {
          case BinOp::Add: case BinOp::Mul: case BinOp::FloorDiv: case BinOp::Div: case BinOp::Min:
          case BinOp::BitOr: case BinOp::Pow:
            return non_negative(a) && non_negative(b);
          case BinOp::Max: case BinOp::BitAnd: return non_negative(a) || non_negative(b);
          case BinOp::Mod: return non_negative(b);  // the sign of the divisor
          case BinOp::Shr: return non_negative(a);
          default: return false;
        }
      }
      default: return false;
    }
  }

  Expr index_expr(const Expr& i) {
    Expr t = expr(i);
    if (!t->ty.is_scalar() || (!t->weak && !is_signed_int(t->ty.elem)) ||
        (t->weak && is_float(t->ty.elem)))
      type_fail("Unsupported index of type " + t->ty.str() + " in subscript operation", i->span);
    return coerce(t, isz());
  }

  Expr subscript(const Expr& e) {
    Expr target = expr(e->args[0]);
    if (target->ty.is_dict() || (e->args.size() > 1 && e->args[1]->kind == ExprKind::String))
      type_fail("Cannot index using a string on non-dict expression", e->span);
    if (target->ty.is_pointer()) {
      // A pointer parameter of a helper has no shape: one flat index, not range-checked.
      if (e->args.size() != 2)
        type_fail("Indexing with " + std::to_string(e->args.size() - 1) +
                      " dimensions on pointer " + print_expr(e->args[0]) + " (pointers take one index)",
                  e->span);
      if (e->args[1]->kind == ExprKind::Slice)
        fail("Slice expressions are not supported in functions called from expressions", e->args[1]->span);
      auto node = copy(e);
      node->args = {target, index_expr(e->args[1])};
      return typed(node, Type::scalar(target->ty.elem));
    }
    if (!target->ty.is_array())
      type_fail("Subscript operation on unsupported target " + print_expr(e->args[0]), e->span);
    const auto& shape = target->ty.shape;
    size_t n = e->args.size() - 1;
    if (n > shape.size())
      type_fail("Indexing with " + std::to_string(n) + " dimensions on tensor of shape " +
                    compact_shape_str(shape),
                e->span);
    std::vector<Expr> args{target};
    for (size_t k = 0; k < n; ++k) {
      const Expr& ix = e->args[k + 1];
      // Slices are lowered in the main function only.
      if (ix->kind == ExprKind::Slice)
        fail("Slice expressions are not supported in functions called from expressions", ix->span);
      if (intrinsic_of(ix) == Intrinsic::SliceIndex) {
        // An index into a slice passed to an inlined helper; check_bounds resolves it.
        std::vector<Expr> parts;
        for (const auto& p : ix->args) parts.push_back(p ? index_expr(p) : p);
        args.push_back(typed(copy(with_args(ix, std::move(parts))), Type::scalar(isz())));
        continue;
      }
      Expr t = index_expr(ix);
      if (t->kind == ExprKind::Int) {
        int64_t v = t->ival < 0 ? t->ival + shape[k] : t->ival;
        if (v < 0 || v >= shape[k])
          type_fail("Index " + std::to_string(t->ival) + " out of range for shape " +
                        std::to_string(shape[k]),
                    ix->span);
        t = int_lit(v, t->span, false, isz());
      }
      args.push_back(t);
    }
    auto node = copy(e);
    node->args = std::move(args);
    std::vector<int64_t> rest(shape.begin() + n, shape.end());
    return typed(node, Type::tensor(target->ty.elem, rest));
  }

  Expr store_value(const Expr& rhs, const Type& target, const Span& sp) {
    if (!target.is_scalar()) {
      if (rhs->ty != target)
        type_fail("Cannot coerce incompatible tensor types (" + target.str() + " != " + rhs->ty.str() + ")",
                  sp);
      return rhs;
    }
    if (!rhs->ty.is_scalar())
      type_fail("Expected element of scalar type " + std::string(elem_long_name(target.elem)) +
                    ", but found type " + rhs->ty.str() + ".",
                sp);
    ElemSize T = target.elem, R = rhs->ty.elem;
    bool ok = rhs->weak ? (!is_bool(T) && !(is_float(R) && !is_float(T))) || (is_bool(T) && is_bool(R))
                        : cat(T) == cat(R);
    if (!ok)
      type_fail("Expected element of type " + std::string(elem_long_name(T)) +
                    ", found incompatible element type " + elem_long_name(R) + ".",
                sp);
    return coerce(rhs, T);
  }

  Stmt stmt(const Stmt& s) {
    auto n = copy(s);
    switch (s->kind) {
      case StmtKind::Assign: {
        Expr rhs = expr(s->rhs);
        if (s->lhs->kind == ExprKind::Var) {
          const Type* t = lookup(s->lhs->name);
          if (t) {
            n->rhs = store_value(rhs, *t, s->span);
            n->lhs = with_type(s->lhs, *t);
          } else {
            // A local may name an array (a tensor with a shape) or, in a helper, a pointer.
            if (rhs->ty.kind != Type::Kind::Tensor && rhs->ty.kind != Type::Kind::Pointer)
              type_fail("Variable " + s->lhs->name + " has unknown type", s->lhs->span);
            if (rhs->weak) rhs = coerce(rhs, is_float(rhs->ty.elem) ? fsz() : isz());
            scopes_.back()[s->lhs->name] = rhs->ty;
            n->rhs = rhs;
            n->lhs = with_type(s->lhs, rhs->ty);
            n->defines = true;
          }
        } else {
          Expr lhs = expr(s->lhs);
          if (!lhs->ty.is_scalar())
            type_fail("Expected element of scalar type, but found type " + lhs->ty.str() +
                          " as the target of an assignment.",
                      s->lhs->span);
          n->lhs = lhs;
          n->rhs = store_value(rhs, lhs->ty, s->span);
        }
        return n;
      }
      case StmtKind::For: {
        n->lo = loop_bound(s->lo);
        n->hi = loop_bound(s->hi);
        scopes_.emplace_back();
        scopes_.back()[s->var] = Type::scalar(isz());
        // range(lo, hi, step) counting up from lo >= 0, or down to hi >= -1, is never negative
        // (unless the body assigns the variable).
        auto saved = non_negative_vars_;
        non_negative_vars_.erase(s->var);
        bool up = s->step > 0 && non_negative(n->lo);
        bool down = s->step < 0 && (non_negative(n->hi) || (n->hi->kind == ExprKind::Int && n->hi->ival == -1));
        if ((up || down) && !assigns(s->body, s->var)) non_negative_vars_.insert(s->var);
        n->body = block(s->body);
        non_negative_vars_ = std::move(saved);
        scopes_.pop_back();
        return n;
      }
      case StmtKind::While: case StmtKind::If: {
        Expr c = expr(s->cond);
        if (!c->ty.is_scalar())
          type_fail("If expression has condition of invalid type " + c->ty.str(), s->cond->span);
        if (c->weak) c = coerce(c, is_float(c->ty.elem) ? fsz() : isz());
        n->cond = c;
        n->body = block(s->body);
        n->orelse = block(s->orelse);
        return n;
      }
      case StmtKind::WithGpu: n->body = block(s->body); return n;
      case StmtKind::Return: {
        if (!helper_) fail("The called function " + fname_ + " cannot return a value", s->span);
        Expr v = expr(s->rhs);
        if (declared_ret_) {
          v = store_value(v, *declared_ret_, s->span);
        } else {
          returns_.push_back(v);
        }
        n->rhs = v;
        return n;
      }
      case StmtKind::Call: fail("Call to unknown function " + s->rhs->name, s->span);
      case StmtKind::Label: internal_fail("label statement after label attachment", s->span);
      case StmtKind::Launch: internal_fail("kernel launch before the GPU layer", s->span);
    }
    return n;
  }

  Expr loop_bound(const Expr& e) {
    Expr t = expr(e);
    if (!t->ty.is_scalar() || (!t->weak && !is_signed_int(t->ty.elem)) ||
        (t->weak && is_float(t->ty.elem)))
      type_fail("Expected element of scalar type " + std::string(elem_long_name(isz())) +
                    ", but found type " + t->ty.str() + ".",
                e->span);
    return coerce(t, isz());
  }
};

}  // namespace

Block typecheck(const Block& b, const std::map<std::string, Type>& params, const CompileOptions& opts,
                const std::string& fun_name, const CallTargets& calls) {
  return TypeChecker(params, opts, fun_name, calls).block(b);
}

Block typecheck_helper(const Function& f, const CompileOptions& opts, const CallTargets& calls,
                       Type& ret) {
  std::map<std::string, Type> params;
  std::vector<std::string> untyped;
  for (const auto& p : f.params) {
    if (p.annotation) params[p.name] = *p.annotation;
    else untyped.push_back(p.name);
  }
  if (!untyped.empty()) {
    std::string names;
    for (size_t i = 0; i < untyped.size(); ++i) names += (i ? ", " : "") + untyped[i];
    type_fail("Parameters " + names + " of function " + f.name +
              " have unknown type.\nMake sure to annotate the parameters of functions called "
              "from expressions with types from parpy.types.");
  }
  TypeChecker tc(params, opts, f.name, calls);
  tc.allow_returns(f.ret.kind == Type::Kind::Void ? std::nullopt : std::optional<Type>(f.ret));
  Block body = tc.block(f.body);
  ret = tc.result_type(f.span);
  return tc.convert_returns(body, ret);
}

}  // namespace parpy
