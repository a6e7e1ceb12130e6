#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/calls.h"
#include "ir/ir.h"
#include "ir/options.h"

namespace parpy {

// Lowers the jit helpers called in expressions (transitively, each Function once) and resolves
// the externals declared for opts.backend; one declared for another backend stays unresolved,
// so the call is reported as unknown. Helpers must not contain parallel code.
Helpers lower_helpers(const Function& main, const CompileOptions& opts);

// The arrays (and pointer parameters) that typed code `b` may write: stored to, or passed to a
// pointer parameter that the callee writes through (externals are assumed to write them).
std::set<std::string> written_arrays(const Block& b, const std::map<std::string, Callee>& callees);

}  // namespace parpy
