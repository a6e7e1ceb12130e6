#pragma once
#include <map>
#include <string>
#include <vector>

#include "ir/calls.h"
#include "ir/ir.h"
#include "ir/options.h"

namespace parpy {

// Types every expression, applies the type rules of docs/language.md, Types (Python numbers are
// weakly typed; conversions are inserted), resolves neutral elements, marks defining assignments
// and enforces the rules of its Scoping section. `params` gives the type of every array
// parameter; `calls` the targets of the calls made in expressions (calls are renamed to their
// target's c_name).
Block typecheck(const Block& b, const std::map<std::string, Type>& params, const CompileOptions& opts,
                const std::string& fun_name, const CallTargets& calls = {});

// Types the body of a helper called in expressions: parameters take their annotations and
// `return` is allowed. `ret` is the annotation if given, else the common type of the returns.
Block typecheck_helper(const Function& f, const CompileOptions& opts, const CallTargets& calls,
                       Type& ret);
}  // namespace parpy
