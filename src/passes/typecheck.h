#pragma once
#include <map>
#include <string>

#include "ir/ir.h"
#include "ir/options.h"

namespace parpy {
// Types every expression, applies the unification rules of SPEC B 2.6 with A4's weak literals
// (inserting conversions), resolves neutral elements, marks defining assignments and enforces
// the scoping of 2.11. `params` gives the type of every array parameter.
Block typecheck(const Block& b, const std::map<std::string, Type>& params, const CompileOptions& opts,
                const std::string& fun_name);
}  // namespace parpy
