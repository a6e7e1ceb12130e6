#include "passes/constant_fold.h"

#include <cmath>

namespace parpy {

int64_t py_floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

namespace {

// Wraps an integer to the width of a typed (non-weak) literal's element type.
int64_t wrap(int64_t v, ElemSize e) {
  switch (e) {
    case ElemSize::I8: return static_cast<int8_t>(v);
    case ElemSize::I16: return static_cast<int16_t>(v);
    case ElemSize::I32: return static_cast<int32_t>(v);
    case ElemSize::U8: return static_cast<uint8_t>(v);
    case ElemSize::U16: return static_cast<uint16_t>(v);
    case ElemSize::U32: return static_cast<uint32_t>(v);
    default: return v;
  }
}

Expr make_int(int64_t v, const Expr& like, const Span& sp) {
  return int_lit(wrap(v, like->ty.elem), sp, like->weak, like->ty.elem);
}

// A comparison of two literal values, or e unchanged for any other operator.
template <class T>
Expr compare(const Expr& e, T x, T y) {
  switch (e->binop) {
    case BinOp::Eq: return bool_lit(x == y, e->span);
    case BinOp::Neq: return bool_lit(x != y, e->span);
    case BinOp::Lt: return bool_lit(x < y, e->span);
    case BinOp::Le: return bool_lit(x <= y, e->span);
    case BinOp::Gt: return bool_lit(x > y, e->span);
    case BinOp::Ge: return bool_lit(x >= y, e->span);
    default: return e;
  }
}

Expr fold_binop(const Expr& e) {
  const Expr& a = e->args[0];
  const Expr& b = e->args[1];
  if (!is_literal(a) || !is_literal(b) || a->kind != b->kind) return e;
  const Span& sp = e->span;
  bool weak = a->weak && b->weak;
  // Typed operands must agree before folding (the type checker inserts conversions).
  if (!a->weak && !b->weak && a->ty.elem != b->ty.elem) return e;
  const Expr& typed = a->weak ? b : a;
  if (a->kind == ExprKind::Int) {
    int64_t x = a->ival, y = b->ival;
    if (is_unsigned_int(typed->ty.elem) && !weak) return e;  // keep unsigned semantics in C
    switch (e->binop) {
      case BinOp::Add: return make_int(static_cast<int64_t>(static_cast<uint64_t>(x) + static_cast<uint64_t>(y)), typed, sp);
      case BinOp::Sub: return make_int(static_cast<int64_t>(static_cast<uint64_t>(x) - static_cast<uint64_t>(y)), typed, sp);
      case BinOp::Mul: return make_int(static_cast<int64_t>(static_cast<uint64_t>(x) * static_cast<uint64_t>(y)), typed, sp);
      case BinOp::Div:
        if (y == 0 || (x == INT64_MIN && y == -1)) return e;
        return make_int(x / y, typed, sp);
      case BinOp::FloorDiv:
        if (y == 0 || (x == INT64_MIN && y == -1)) return e;
        return make_int(py_floordiv(x, y), typed, sp);
      case BinOp::Mod:
        if (y == 0 || (x == INT64_MIN && y == -1)) return e;
        return make_int(py_mod(x, y), typed, sp);
      case BinOp::Pow: {
        if (y < 0) return e;  // a fraction in Python; left to the generated code
        uint64_t r = 1, base = static_cast<uint64_t>(x);
        for (uint64_t k = static_cast<uint64_t>(y); k > 0; k >>= 1) {
          if (k & 1) r *= base;
          base *= base;
        }
        return make_int(static_cast<int64_t>(r), typed, sp);
      }
      case BinOp::BitAnd: return make_int(x & y, typed, sp);
      case BinOp::BitOr: return make_int(x | y, typed, sp);
      case BinOp::BitXor: return make_int(x ^ y, typed, sp);
      case BinOp::Shl:
        if (y < 0 || y >= 63) return e;
        return make_int(static_cast<int64_t>(static_cast<uint64_t>(x) << y), typed, sp);
      case BinOp::Shr:
        if (y < 0 || y >= 64) return e;
        return make_int(x >> y, typed, sp);
      case BinOp::Max: return make_int(std::max(x, y), typed, sp);
      case BinOp::Min: return make_int(std::min(x, y), typed, sp);
      default: return compare(e, x, y);
    }
  }
  if (a->kind == ExprKind::Float) {
    double x = a->fval, y = b->fval;
    if (!weak && typed->ty.elem != ElemSize::F64) return e;  // leave narrow float math to C
    auto mk = [&](double v) { return float_lit(v, sp, weak, typed->ty.elem); };
    switch (e->binop) {
      case BinOp::Add: return mk(x + y);
      case BinOp::Sub: return mk(x - y);
      case BinOp::Mul: return mk(x * y);
      case BinOp::Div: return y == 0.0 ? e : mk(x / y);
      // As parpy_max/parpy_min (parpy_common.h): a NaN operand gives NaN, unlike fmax/fmin.
      case BinOp::Max: return mk((x < y || y != y) ? y : x);
      case BinOp::Min: return mk((y < x || y != y) ? y : x);
      default: return compare(e, x, y);
    }
  }
  if (a->kind == ExprKind::Bool) {
    bool x = a->bval, y = b->bval;
    switch (e->binop) {
      case BinOp::And: return bool_lit(x && y, sp);
      case BinOp::Or: return bool_lit(x || y, sp);
      case BinOp::Eq: return bool_lit(x == y, sp);
      case BinOp::Neq: return bool_lit(x != y, sp);
      default: return e;
    }
  }
  return e;
}

Expr fold_node(const Expr& e) {
  switch (e->kind) {
    case ExprKind::BinOp: return fold_binop(e);
    case ExprKind::UnOp: {
      const Expr& a = e->args[0];
      // Wraps like the other integer operations: -INT64_MIN is INT64_MIN.
      if (e->unop == UnOp::Neg && a->kind == ExprKind::Int && (a->weak || is_signed_int(a->ty.elem)))
        return make_int(static_cast<int64_t>(0 - static_cast<uint64_t>(a->ival)), a, e->span);
      if (e->unop == UnOp::Neg && a->kind == ExprKind::Float)
        return float_lit(-a->fval, e->span, a->weak, a->ty.elem);
      if (e->unop == UnOp::Not && a->kind == ExprKind::Bool) return bool_lit(!a->bval, e->span);
      return e;
    }
    case ExprKind::IfExpr:
      if (e->args[0]->kind == ExprKind::Bool) return e->args[0]->bval ? e->args[1] : e->args[2];
      return e;
    case ExprKind::Convert: {
      const Expr& a = e->args[0];
      ElemSize t = e->ty.elem;
      if (!is_literal(a) || !e->ty.is_scalar()) return e;
      if (is_float(t) && (a->kind == ExprKind::Float || a->kind == ExprKind::Int)) {
        double v = a->kind == ExprKind::Float ? a->fval : static_cast<double>(a->ival);
        // An int converts to float32 with one rounding, as the generated code's cast does (through
        // float64 first, a value just past a float32 midpoint could round the other way).
        if (t == ElemSize::F32)
          v = a->kind == ExprKind::Float ? static_cast<float>(v) : static_cast<float>(a->ival);
        return float_lit(v, e->span, false, t);
      }
      if (is_int(t) && a->kind == ExprKind::Int)
        return int_lit(wrap(a->ival, t), e->span, false, t);
      if (is_int(t) && a->kind == ExprKind::Float && std::isfinite(a->fval) &&
          std::fabs(a->fval) < 9.2e18)
        return int_lit(wrap(static_cast<int64_t>(a->fval), t), e->span, false, t);
      return e;
    }
    default: return e;
  }
}

}  // namespace

Expr constant_fold(const Expr& e) { return e ? map_expr(e, fold_node) : e; }

// Replaces `if` statements with literal conditions by the branch taken.
static Block splice_literal_ifs(const Block& b) {
  return map_block(b, [](const Stmt& s) -> Block {
    if (s->kind == StmtKind::If && s->cond->kind == ExprKind::Bool) return s->cond->bval ? s->body : s->orelse;
    return {s};
  });
}

Block constant_fold(const Block& b) {
  return splice_literal_ifs(map_block_exprs(b, [](const Expr& e) { return constant_fold(e); }));
}

}  // namespace parpy
