// Calls made in expressions: what each resolves to, and the lowered helpers and externals that a
// main function calls (docs/language.md, Functions).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "ir/ir.h"
#include "ir/types.h"

namespace parpy {

// What an expression-level call resolves to: a lowered jit helper or an external
// (docs/language.md, Functions).
struct CallTarget {
  std::string c_name;       // the function the generated code calls
  std::vector<Type> params;  // declared parameter types (scalars or pointers)
  Type ret;
};
using CallTargets = std::map<std::string, CallTarget>;  // by call name (Function::helpers)

// A function the generated code calls in expressions: a jit helper or an external.
struct Callee {
  std::string name;          // Python name, for messages
  bool external = false;
  bool host = false;         // an external declared with Target.Host: a host function
  LoopPar par;               // externals: the declared parallelize (docs/language.md, Functions)
  std::string header;        // externals: the declared header (empty: none)
  std::vector<bool> writes;  // per parameter: a pointer the callee may write through
};

// The functions a main function calls in expressions, ready for a printer.
struct Helpers {
  std::vector<Function> functions;   // typed, folded and flattened; callees first; name = C name
  std::vector<std::string> headers;  // of the externals called, in first-use order
  CallTargets main_calls;            // what the main function's calls resolve to
  std::map<std::string, Callee> callees;  // every helper and external called, by C name
};

}  // namespace parpy
