#pragma once
#include <string>
#include <vector>

#include "ir/ir.h"
#include "ir/options.h"
#include "passes/typecheck.h"

namespace parpy {

// The functions a main function calls in expressions, ready for a printer.
struct Helpers {
  std::vector<Function> functions;   // typed, folded and flattened; callees first; name = C name
  std::vector<std::string> headers;  // of the externals called, in first-use order
  CallTargets main_calls;            // what the main function's calls resolve to
};

// Lowers the jit helpers called in expressions (transitively, each Function once) and resolves
// the externals declared for opts.backend; one declared for another backend stays unresolved,
// so the call is reported as unknown (SPEC B 2.9). Helpers must not contain parallel code.
Helpers lower_helpers(const Function& main, const CompileOptions& opts);

}  // namespace parpy
