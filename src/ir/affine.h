// Integer expressions in affine form, sum(coef * atom) + constant: the form the race check and
// slice lowering reason in (which atoms they allow is theirs to say).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "ir/ir.h"

namespace parpy {

struct Affine {
  std::map<std::string, int64_t> terms;  // atom -> coefficient
  int64_t constant = 0;

  int64_t coef(const std::string& atom) const;
  // Whether every coefficient is zero.
  bool is_constant() const;
};

// k * a; nullopt when a coefficient or the constant overflows int64.
std::optional<Affine> scaled(Affine a, int64_t k);

// a + sign * b; nullopt on overflow.
std::optional<Affine> combined(Affine a, const Affine& b, int64_t sign);

// The form of a subexpression that is not a sum, difference, negation, product by a constant,
// integer literal or integer-to-integer conversion; nullopt: not affine.
using AffineLeaf = std::function<std::optional<Affine>(const Expr&)>;

// e in affine form: sums, differences, negations and products where one side is constant are
// expanded; any other subexpression (or one whose expansion overflows) is given by `leaf`.
std::optional<Affine> affine(const Expr& e, const AffineLeaf& leaf);

// The form `atom` with coefficient 1.
Affine affine_atom(const std::string& atom);

}  // namespace parpy
