#pragma once
#include <map>
#include <string>
#include <vector>

#include "ir/abi.h"
#include "ir/ir.h"
#include "ir/options.h"

namespace parpy {

struct Specialized {
  Function fn;                   // scalar parameters inlined, dict fields resolved
  std::vector<AbiParam> params;  // entry parameters
  // The scalar parameters read when the code runs instead of inlined (Python floats), by the name
  // the code reads them by, with their types: weakly typed like a float literal.
  std::map<std::string, Type> runtime_scalars;
};

// The entry parameters for arguments bound to `names` (dicts expanded in key order).
std::vector<AbiParam> abi_params(const std::vector<std::string>& names, const std::vector<ArgValue>& args,
                                 const CompileOptions& opts);

// Errors unless a label of opts.parallelize or a `with parpy.gpu` block appears
// (docs/language.md, Labels).
void ensure_parallelism(const Function& f, const CompileOptions& opts);

// Substitutes every scalar argument but Python floats as a literal, and types the array parameters
// (docs/language.md, Scalars, 0-dimensional arrays and specialisation). A Python float (also as
// a dict field) is read when the code runs: a new value compiles nothing.
Specialized specialize(const Function& f, const std::vector<ArgValue>& args,
                       const CompileOptions& opts);

}  // namespace parpy
