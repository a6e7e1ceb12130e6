// The front end: Python `ast` objects (walked through nanobind) -> parpy IR.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <functional>
#include <memory>
#include <string>

#include "ir/ir.h"
#include "ir/parsed.h"

namespace parpy {

// A called object, as the bindings classify it.
struct ResolvedCall {
  enum Kind {
    Other,      // not a parpy function (a Python function, a builtin, a number, ...)
    Jit,        // a @parpy.jit function: `fn` is its IR
    External,   // a @parpy.external wrapper: `exts` are its declarations, one per backend
    Unbound,    // a jit function whose own callees are not bound yet
    Recursive,  // a jit function whose IR is being built: the call is recursive
  } kind = Other;
  FunctionRef fn;
  std::vector<ExternalRef> exts;
};

struct FrontendInput {
  nanobind::handle fdef;  // an ast.FunctionDef
  std::string file;       // source file of the function
  int line_offset = 0;    // absolute line of the source's first line, minus 1
  int col_offset = 0;     // indentation removed by dedent
  nanobind::object globals, locals;  // the decorating frame's namespaces
  // What a called object is: the callee of `f(...)` is the value of `f` in the namespaces above,
  // as Python would find it, never a registry entry looked up by name.
  std::function<ResolvedCall(nanobind::handle)> resolve_call;
  // A call to a name that is not bound yet makes python_to_ir return nullptr (the caller then
  // resolves it at the first call) instead of failing with "Call to unknown function f".
  bool defer_unbound = false;
};

// Converts the ast.FunctionDef to IR.
Parsed python_to_ir(const FrontendInput& in);

}  // namespace parpy
