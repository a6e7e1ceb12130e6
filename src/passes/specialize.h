#pragma once
#include <string>
#include <vector>

#include "ir/ir.h"
#include "ir/options.h"

namespace parpy {

// What the compiler knows about one call argument.
struct ArgValue {
  enum class Kind : uint8_t { Int, Float, Array, Dict } kind = Kind::Int;
  int64_t ival = 0;     // Int, or an integer/bool 0-dim array
  double fval = 0.0;    // Float, or a float 0-dim array
  ElemSize elem = ElemSize::I64;  // Array
  std::vector<int64_t> shape;     // Array; empty for a 0-dim array (a typed scalar)
  std::vector<std::pair<std::string, ArgValue>> fields;  // Dict, sorted by key
  // A 0-dim array left on the GPU (Cuda): its value is not known here. It is passed as a pointer
  // to its element (a one-element array parameter `p`), and specialize() turns each read into
  // `p[0]`, a load in device code. `path` names the argument as the call does ("#1", "#2[\"k\"]").
  bool on_device = false;
  std::string path;
};

// One parameter of the generated entry function, in calling order (dicts expanded by key).
struct AbiParam {
  std::string name;
  Type type;  // arrays: Tensor with shape; scalars: scalar type (passed, but inlined)
  bool on_device = false;  // a 0-dim array left on the GPU: a one-element array, only read
};

struct Specialized {
  Function fn;                   // scalar parameters inlined, dict fields resolved
  std::vector<AbiParam> params;  // entry parameters
};

// The entry parameters for arguments bound to `names` (dicts expanded in key order).
std::vector<AbiParam> abi_params(const std::vector<std::string>& names, const std::vector<ArgValue>& args,
                                 const CompileOptions& opts);

// Errors unless a label of opts.parallelize or a `with parpy.gpu` block appears
// (docs/language.md, Labels).
void ensure_parallelism(const Function& f, const CompileOptions& opts);

// Substitutes every scalar argument as a literal and types the array parameters
// (docs/language.md, Scalars, 0-dimensional arrays and specialisation).
Specialized specialize(const Function& f, const std::vector<ArgValue>& args,
                       const CompileOptions& opts);

}  // namespace parpy
