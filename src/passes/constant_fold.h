#pragma once
#include "ir/ir.h"

namespace parpy {
// Folds operations on literals with Python semantics (// and % floor; docs/language.md, Types),
// literal conditions of `if` expressions and statements, and conversions of literals.
Expr constant_fold(const Expr& e);
Block constant_fold(const Block& b);

// Python floor division and modulo on 64-bit integers (b != 0).
int64_t py_floordiv(int64_t a, int64_t b);
int64_t py_mod(int64_t a, int64_t b);
}  // namespace parpy
