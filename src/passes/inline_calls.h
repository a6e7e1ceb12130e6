#pragma once
#include <functional>
#include <map>
#include <memory>

#include "ir/ir.h"

namespace parpy {
// Replaces statement-level calls to jit functions by the callee's body, substituting each
// argument expression for its parameter (call by name) and renaming the callee's locals.
// find_jit maps a call's name (its key) to the callee.
Block inline_calls(const Block& b,
                   const std::function<std::shared_ptr<const Function>(const std::string&)>& find_jit,
                   const std::function<bool(const std::string&)>& is_external);

// Substitutes expressions for variables; a subscript of a substituted subscript is merged.
Expr substitute(const Expr& e, const std::map<std::string, Expr>& sub);
}  // namespace parpy
