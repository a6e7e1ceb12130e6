#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ir/ir.h"
#include "ir/options.h"
#include "passes/typecheck.h"

namespace parpy {

// A function the generated code calls in expressions: a jit helper or an external.
struct Callee {
  std::string name;          // Python name, for messages
  bool external = false;
  LoopPar par;               // externals: the declared parallelize (docs/language.md, Functions)
  std::vector<bool> writes;  // per parameter: a pointer the callee may write through
};

// The functions a main function calls in expressions, ready for a printer.
struct Helpers {
  std::vector<Function> functions;   // typed, folded and flattened; callees first; name = C name
  std::vector<std::string> headers;  // of the externals called, in first-use order
  CallTargets main_calls;            // what the main function's calls resolve to
  std::map<std::string, Callee> callees;  // every helper and external called, by C name
};

// Lowers the jit helpers called in expressions (transitively, each Function once) and resolves
// the externals declared for opts.backend; one declared for another backend stays unresolved,
// so the call is reported as unknown. Helpers must not contain parallel code.
Helpers lower_helpers(const Function& main, const CompileOptions& opts);

// The arrays (and pointer parameters) that typed code `b` may write: stored to, or passed to a
// pointer parameter that the callee writes through (externals are assumed to write them).
std::set<std::string> written_arrays(const Block& b, const std::map<std::string, Callee>& callees);

}  // namespace parpy
