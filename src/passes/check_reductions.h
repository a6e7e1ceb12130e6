#pragma once
#include "ir/ir.h"

namespace parpy {
// Checks that every reduce() loop has the one-statement body `dst = dst op e` with op one of
// +, *, max, min (docs/language.md, Reductions), normalises `dst = e op dst`, and records the
// operator.
Block check_reductions(const Block& b);
}  // namespace parpy
