// The front end's result, before the decoration passes.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>

#include "ir/ir.h"

namespace parpy {

// A function as written: labels are still statements and statement-level calls still calls, with
// what those calls resolve to; the callees of expression-level calls are recorded on `fn`. The
// decoration passes (decorate() in lower.h) take it from here.
struct Parsed {
  std::shared_ptr<Function> fn;
  std::map<std::string, FunctionRef> inlined;  // statement-level jit callees, by call key
  std::set<std::string> externals;             // call keys of externals
  bool unbound = false;  // a callee name is not bound yet and in.defer_unbound is set
};

}  // namespace parpy
