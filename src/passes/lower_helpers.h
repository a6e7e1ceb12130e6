#pragma once
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/calls.h"
#include "ir/ir.h"
#include "ir/options.h"

namespace parpy {

// The passes run over each helper, callees first: from its decorated form, with the targets of its
// own calls, to typed code ready for a printer (Function::ret set). lower() gives them.
using HelperPasses = std::function<Function(const Function& helper, const CallTargets& calls)>;

// Lowers the jit helpers called in expressions (transitively, each Function once, by `passes`)
// and resolves the externals declared for opts.backend; one declared for another backend stays
// unresolved, so the call is reported as unknown. Helpers must not contain parallel code.
Helpers lower_helpers(const Function& main, const CompileOptions& opts, const HelperPasses& passes);

// The arrays (and pointer parameters) that typed code `b` may write: stored to, or passed to a
// pointer parameter that the callee writes through (externals are assumed to write them).
std::set<std::string> written_arrays(const Block& b, const std::map<std::string, Callee>& callees);

}  // namespace parpy
