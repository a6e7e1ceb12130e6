// The front end: Python `ast` objects (walked through nanobind) -> parpy IR.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <functional>
#include <memory>
#include <string>

#include "ir/ir.h"

namespace parpy {

struct FrontendInput {
  nanobind::handle fdef;  // an ast.FunctionDef
  std::string file;       // source file of the function
  int line_offset = 0;    // absolute line of the source's first line, minus 1
  int col_offset = 0;     // indentation removed by dedent
  nanobind::object globals, locals;  // the decorating frame's namespaces
  // Registered jit functions and externals, by Python name.
  std::function<std::shared_ptr<const Function>(const std::string&)> find_jit;
  // Every backend's declaration of an external with this name (empty if none).
  std::function<std::vector<ExternalRef>(const std::string&)> find_externals;
};

// Converts, attaches labels, inlines statement-level calls to jit functions and records the
// callees of expression-level calls on the result.
std::shared_ptr<Function> python_to_ir(const FrontendInput& in);

}  // namespace parpy
