#include "ir/affine.h"

#include "ir/types.h"

namespace parpy {

int64_t Affine::coef(const std::string& atom) const {
  auto it = terms.find(atom);
  return it == terms.end() ? 0 : it->second;
}

bool Affine::is_constant() const {
  for (const auto& [atom, c] : terms)
    if (c != 0) return false;
  return true;
}

std::optional<Affine> scaled(Affine a, int64_t k) {
  if (__builtin_mul_overflow(a.constant, k, &a.constant)) return std::nullopt;
  for (auto& [atom, c] : a.terms)
    if (__builtin_mul_overflow(c, k, &c)) return std::nullopt;
  return a;
}

std::optional<Affine> combined(Affine a, const Affine& b, int64_t sign) {
  auto sb = scaled(b, sign);
  if (!sb || __builtin_add_overflow(a.constant, sb->constant, &a.constant)) return std::nullopt;
  for (const auto& [atom, c] : sb->terms)
    if (__builtin_add_overflow(a.terms[atom], c, &a.terms[atom])) return std::nullopt;
  return a;
}

Affine affine_atom(const std::string& atom) {
  Affine a;
  a.terms[atom] = 1;
  return a;
}

namespace {

std::optional<Affine> expanded(const Expr& e, const AffineLeaf& leaf) {
  switch (e->kind) {
    case ExprKind::Int: {
      Affine a;
      a.constant = e->ival;
      return a;
    }
    case ExprKind::Convert:
      // Only typed code has conversions; one from a float is an atom.
      if (is_int(e->ty.elem) && is_int(e->args[0]->ty.elem)) return affine(e->args[0], leaf);
      return std::nullopt;
    case ExprKind::UnOp:
      if (e->unop != UnOp::Neg) return std::nullopt;
      if (auto a = affine(e->args[0], leaf)) return scaled(*a, -1);
      return std::nullopt;
    case ExprKind::BinOp: {
      BinOp op = e->binop;
      if (op != BinOp::Add && op != BinOp::Sub && op != BinOp::Mul) return std::nullopt;
      auto a = affine(e->args[0], leaf), b = affine(e->args[1], leaf);
      if (!a || !b) return std::nullopt;
      if (op != BinOp::Mul) return combined(*a, *b, op == BinOp::Add ? 1 : -1);
      if (b->is_constant()) return scaled(*a, b->constant);
      if (a->is_constant()) return scaled(*b, a->constant);
      return std::nullopt;
    }
    default: return std::nullopt;
  }
}

}  // namespace

std::optional<Affine> affine(const Expr& e, const AffineLeaf& leaf) {
  if (auto a = expanded(e, leaf)) return a;
  return leaf(e);
}

}  // namespace parpy
